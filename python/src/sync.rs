//! `ipcmem.Event`, `ipcmem.Semaphore` and `ipcmem.gc`. Every wait releases the GIL, and wakes
//! up every 50 ms to let Python handle signals (Ctrl-C interrupts a wait).

use std::sync::Arc;
use std::time::{Duration, Instant};

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

use crate::array::{memory_of, PySharedArray};
use crate::convert::{to_perms, to_timeout, to_usize};
use crate::errors::OrRaise;
use crate::memory::PySharedMemory;
use ipcmem::gc::Mode;
use ipcmem::{Outcome, SharedMemory};

/// The longest a wait stays without the GIL before it checks for signals.
pub const SIGNAL_CHECK: Duration = Duration::from_millis(50);

/// Runs `attempt` (a wait of at most the duration it is given, without the GIL) until it
/// gives `Some` or `timeout` runs out (`None`), checking for signals between slices.
pub fn wait_in_slices<T: Send>(
    py: Python<'_>,
    timeout: Option<Duration>,
    mut attempt: impl FnMut(Duration) -> ipcmem::Result<Option<T>> + Send,
) -> PyResult<Option<T>> {
    let deadline = timeout.and_then(|timeout| Instant::now().checked_add(timeout));
    loop {
        let left = deadline.map(|deadline| deadline.saturating_duration_since(Instant::now()));
        let slice = left.map_or(SIGNAL_CHECK, |left| left.min(SIGNAL_CHECK));
        if let Some(value) = py.detach(|| attempt(slice)).or_raise()? {
            return Ok(Some(value));
        }
        if left.is_some_and(|left| left <= slice) {
            return Ok(None);
        }
        py.check_signals()?;
    }
}

/// The shared memory a `SharedMemory` or `SharedArray` handle holds.
pub fn memory(obj: &Bound<'_, PyAny>) -> PyResult<Arc<SharedMemory>> {
    if let Ok(shm) = obj.cast::<PySharedMemory>() {
        return shm.borrow().handle().cloned();
    }
    if let Ok(array) = obj.cast::<PySharedArray>() {
        return memory_of(&array.borrow());
    }
    Err(PyTypeError::new_err("the memory is an ipcmem.SharedMemory or an ipcmem.SharedArray"))
}

/// An event shared between processes, at an offset of a shared memory object (``Event.SIZE``
/// bytes, aligned to ``Event.ALIGN``; zeroed memory is a valid event, nothing to initialise).
///
/// A waiter reads ``value``, checks its condition, and if it must wait, calls
/// ``wait(seen)``, which returns once the count differs (a notification between the check and
/// the wait is never lost). ``notify_all()`` adds one and wakes every waiter, in any process.
/// Waits spin briefly, then sleep on a futex, without the GIL.
///
/// >>> import ipcmem
/// >>> shm = ipcmem.SharedMemory("/example-event", 4096)
/// >>> ready = ipcmem.Event(shm, 0)
/// >>> seen = ready.value
/// >>> ready.notify_all()          # another process, normally
/// 0
/// >>> ready.wait(seen, timeout=1.0) == seen + 1
/// True
#[pyclass(module = "ipcmem", name = "Event", frozen)]
pub struct PyEvent {
    event: ipcmem::Event,
}

#[pymethods]
impl PyEvent {
    /// The bytes an event takes.
    #[classattr]
    const SIZE: usize = ipcmem::Event::SIZE;
    /// The alignment its offset needs.
    #[classattr]
    const ALIGN: usize = ipcmem::Event::ALIGN;

    /// The event at `offset` of `memory` (a writable ``SharedMemory`` or ``SharedArray``);
    /// `spin`: seconds a wait spins before it sleeps (default 20 µs; 0 sleeps at once).
    #[new]
    #[pyo3(signature = (memory, offset = None, *, spin = None),
            text_signature = "(memory, offset=0, *, spin=None)")]
    fn new(memory: &Bound<'_, PyAny>, offset: Option<&Bound<'_, PyAny>>, spin: Option<f64>) -> PyResult<PyEvent> {
        let shm = self::memory(memory)?;
        let offset = offset.map(|offset| to_usize(offset, "offset")).transpose()?.unwrap_or(0);
        let mut event = ipcmem::Event::attach_at(&shm, offset).or_raise()?;
        if let Some(spin) = to_timeout(spin)? {
            event = event.with_spin(spin);
        }
        Ok(PyEvent { event })
    }

    /// The number of notifications so far (wrapping at 2**32).
    #[getter]
    fn value(&self) -> u32 {
        self.event.value()
    }

    /// The offset in its memory.
    #[getter]
    fn offset(&self) -> usize {
        self.event.offset()
    }

    /// Waits until the count differs from `seen` and returns it; None if `timeout` seconds
    /// pass first. Releases the GIL while waiting.
    #[pyo3(signature = (seen, timeout = None))]
    fn wait(&self, py: Python<'_>, seen: u32, timeout: Option<f64>) -> PyResult<Option<u32>> {
        wait_in_slices(py, to_timeout(timeout)?, |slice| self.event.wait_timeout(seen, slice))
    }

    /// Adds one to the count and wakes one waiter; returns how many sleeping waiters it woke.
    fn notify_one(&self) -> usize {
        self.event.notify_one()
    }

    /// Adds one to the count and wakes every waiter; returns how many sleeping waiters it woke.
    fn notify_all(&self) -> usize {
        self.event.notify_all()
    }

    fn __repr__(&self) -> String {
        format!("<ipcmem.Event at {} offset {} value {}>", self.event.shared_memory().id(), self.offset(), self.value())
    }
}

/// A counting semaphore shared between processes: named (``/dev/shm/sem.NAME``, the very
/// object of C's and Python's ``sem_open("/NAME")``) or placed at an offset of a shared memory
/// object (``Semaphore.SIZE`` bytes, aligned to ``Semaphore.ALIGN``).
///
/// >>> import ipcmem
/// >>> tickets = ipcmem.Semaphore.create("/example-sem", 1)    # volatile, mode 0o600
/// >>> other = ipcmem.Semaphore.open("/example-sem")           # another process would
/// >>> other.wait(timeout=1.0)
/// True
/// >>> tickets.value
/// 0
/// >>> other.post()
/// >>> with tickets:                # takes one on entry, gives it back on exit
/// ...     tickets.value
/// 0
/// >>> tickets.value
/// 1
#[pyclass(module = "ipcmem", name = "Semaphore", frozen)]
pub struct PySemaphore {
    sem: ipcmem::Semaphore,
}

#[pymethods]
impl PySemaphore {
    /// The bytes a placed semaphore takes.
    #[classattr]
    const SIZE: usize = ipcmem::Semaphore::SIZE;
    /// The alignment the offset of a placed semaphore needs.
    #[classattr]
    const ALIGN: usize = ipcmem::Semaphore::ALIGN;

    /// Makes the named semaphore `name` (``"/NAME"``) with `value`; raises `AlreadyExists` if
    /// it exists. Volatile (removed with its last ipcmem handle) unless told otherwise.
    #[staticmethod]
    #[pyo3(signature = (name, value = 0, *, perms = None, volatile = true),
            text_signature = "(name, value=0, *, perms=0o600, volatile=True)")]
    fn create(name: &str, value: u32, perms: Option<&Bound<'_, PyAny>>, volatile: bool) -> PyResult<PySemaphore> {
        let perms = perms.map(to_perms).transpose()?.unwrap_or(0o600);
        let sem = ipcmem::Semaphore::options().perms(perms).volatile(volatile).create(name, value).or_raise()?;
        Ok(PySemaphore { sem })
    }

    /// Opens the existing named semaphore `name`.
    #[staticmethod]
    fn open(name: &str) -> PyResult<PySemaphore> {
        Ok(PySemaphore { sem: ipcmem::Semaphore::open(name).or_raise()? })
    }

    /// Opens the named semaphore if it exists, else makes it with `value`:
    /// ``(semaphore, created)``.
    #[staticmethod]
    #[pyo3(signature = (name, value = 0, *, perms = None, volatile = true),
            text_signature = "(name, value=0, *, perms=0o600, volatile=True)")]
    fn open_or_create(
        name: &str,
        value: u32,
        perms: Option<&Bound<'_, PyAny>>,
        volatile: bool,
    ) -> PyResult<(PySemaphore, bool)> {
        let perms = perms.map(to_perms).transpose()?.unwrap_or(0o600);
        let (sem, outcome) =
            ipcmem::Semaphore::options().perms(perms).volatile(volatile).open_or_create(name, value).or_raise()?;
        Ok((PySemaphore { sem }, outcome == Outcome::Created))
    }

    /// Makes a semaphore with `value` at `offset` of `memory`; raises `AlreadyExists` if one
    /// is there (a semaphore in use is never initialised again).
    #[staticmethod]
    #[pyo3(signature = (memory, offset, value = 0))]
    fn init_at(memory: &Bound<'_, PyAny>, offset: &Bound<'_, PyAny>, value: u32) -> PyResult<PySemaphore> {
        let offset = to_usize(offset, "offset")?;
        Ok(PySemaphore { sem: ipcmem::Semaphore::init_at(&self::memory(memory)?, offset, value).or_raise()? })
    }

    /// Uses the semaphore already at `offset` of `memory`, as it is.
    #[staticmethod]
    fn attach_at(memory: &Bound<'_, PyAny>, offset: &Bound<'_, PyAny>) -> PyResult<PySemaphore> {
        let offset = to_usize(offset, "offset")?;
        Ok(PySemaphore { sem: ipcmem::Semaphore::attach_at(&self::memory(memory)?, offset).or_raise()? })
    }

    /// Removes the name of the named semaphore `name` (handles keep working); a name that does
    /// not exist is not an error.
    #[staticmethod]
    fn unlink(name: &str) -> PyResult<()> {
        ipcmem::Semaphore::unlink(name).or_raise()
    }

    /// Adds one, waking a waiter if there is one.
    fn post(&self) -> PyResult<()> {
        self.sem.post().or_raise()
    }

    /// Takes one, waiting while the count is zero: True, or False if `timeout` seconds pass
    /// first. Releases the GIL while waiting.
    #[pyo3(signature = (timeout = None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let taken = wait_in_slices(py, to_timeout(timeout)?, |slice| {
            self.sem.wait_timeout(slice).map(|taken| taken.then_some(()))
        })?;
        Ok(taken.is_some())
    }

    /// Takes one if the count is above zero, without waiting: whether it did.
    fn try_wait(&self) -> PyResult<bool> {
        self.sem.try_wait().or_raise()
    }

    /// The count now.
    #[getter]
    fn value(&self) -> u32 {
        self.sem.value()
    }

    /// The name of a named semaphore; None for a placed one.
    #[getter]
    fn name(&self) -> Option<&str> {
        self.sem.name()
    }

    /// Removes the name of a named semaphore (handles keep working).
    fn remove(&self) -> PyResult<()> {
        self.sem.remove().or_raise()
    }

    /// ``with semaphore:`` waits (takes one) on entry and posts on exit.
    fn __enter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, Self>> {
        slf.get().wait(slf.py(), None)?;
        Ok(slf.clone())
    }

    fn __exit__(
        &self,
        _kind: &Bound<'_, PyAny>,
        _value: &Bound<'_, PyAny>,
        _traceback: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        self.post()
    }

    fn __repr__(&self) -> String {
        match self.sem.placement() {
            Some((shm, offset)) => format!("<ipcmem.Semaphore at {} offset {offset} value {}>", shm.id(), self.value()),
            None => format!("<ipcmem.Semaphore {} value {}>", self.name().unwrap_or_default(), self.value()),
        }
    }
}

/// Removes the volatile POSIX objects of this user that no process holds any more (their
/// holders were killed); with ``dry_run=True`` only lists them. Returns their names.
#[pyfunction]
#[pyo3(name = "gc", signature = (dry_run = false))]
pub fn collect_garbage(dry_run: bool) -> PyResult<Vec<String>> {
    let mode = if dry_run { Mode::DryRun } else { Mode::Remove };
    let found = ipcmem::gc::collect(mode).or_raise()?;
    Ok(found.into_iter().filter(|found| dry_run || found.removed).map(|found| found.name).collect())
}
