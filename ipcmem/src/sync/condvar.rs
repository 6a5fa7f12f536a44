//! [`Condvar`]: a process-shared condition variable in shared memory.

use std::fmt;
use std::mem::MaybeUninit;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytemuck::Pod;

use super::{monotonic_deadline, pthread_error, Kind, LockResult, MutexGuard, Place};
use crate::error::Result;
use crate::shm::{Outcome, SharedMemory};

/// The layout in shared memory: state word and the glibc condition variable.
#[repr(C)]
struct Repr {
    header: super::Header,
    raw: libc::pthread_cond_t,
}

/// A condition variable shared between processes, used with a [`Mutex`](super::Mutex): wait
/// until another process changes the data and notifies.
///
/// A glibc process-shared `pthread_cond_t` on `CLOCK_MONOTONIC`. Waits may wake spuriously:
/// check the condition in a loop. Use one mutex with a condition variable at a time. A waiting
/// process that dies may swallow one [`notify_one`](Self::notify_one) meant for another
/// waiter; where waiters may crash, prefer [`notify_all`](Self::notify_all) or timed waits.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use ipcmem::{sync::{Condvar, Mutex}, SharedMemory};
///
/// let name = format!("/ipcmem-doc-condvar-{}", std::process::id());
/// let shm = Arc::new(SharedMemory::create(name.as_str(), 4096)?);
/// // SAFETY: the mutex's bytes are written only through its handles.
/// let ready = unsafe { Mutex::init_at(&shm, 0, 0_u32)? };
/// let changed = Condvar::init_at(&shm, 128)?;
///
/// // A waiter (in real use, another process) waits until `ready` is set, at most 10 ms here.
/// let mut guard = ready.lock()?.into_guard();
/// while guard.get() == 0 {
///     let (again, result) = changed.wait_timeout(guard, Duration::from_millis(10))?;
///     guard = again.into_guard();
///     if result.timed_out() {
///         break;
///     }
/// }
/// drop(guard);
///
/// // The notifier: change the data under the lock, then wake every waiter.
/// ready.lock()?.into_guard().set(1);
/// changed.notify_all()?;
/// # Ok::<(), ipcmem::Error>(())
/// ```
pub struct Condvar {
    place: Place,
}

/// Whether a timed wait ended because its time ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// Whether the wait timed out (rather than being notified or woken spuriously).
    pub fn timed_out(self) -> bool {
        self.0
    }
}

impl Condvar {
    /// The bytes the condition variable takes in shared memory.
    pub const SIZE: usize = size_of::<Repr>();
    /// The alignment its offset needs.
    pub const ALIGN: usize = align_of::<Repr>();

    /// Makes a new condition variable at `offset` of `shm`; fails if something is there.
    pub fn init_at(shm: &Arc<SharedMemory>, offset: usize) -> Result<Condvar> {
        let place = Place::new::<Repr>(shm, offset)?;
        place.initialise(Kind::Condvar, 0, || init_raw(&place))?;
        Ok(Condvar { place })
    }

    /// Uses the condition variable already at `offset` of `shm`, without touching it.
    pub fn attach_at(shm: &Arc<SharedMemory>, offset: usize) -> Result<Condvar> {
        let place = Place::new::<Repr>(shm, offset)?;
        place.attach(Kind::Condvar, 0)?;
        Ok(Condvar { place })
    }

    /// Makes the condition variable if the place is unused, else attaches; says which.
    pub fn init_or_attach_at(shm: &Arc<SharedMemory>, offset: usize) -> Result<(Condvar, Outcome)> {
        let place = Place::new::<Repr>(shm, offset)?;
        let outcome = place.initialise_or_attach(Kind::Condvar, 0, || init_raw(&place))?;
        Ok((Condvar { place }, outcome))
    }

    /// Releases the lock of `guard`, waits for a notification, and takes the lock again.
    ///
    /// Gives [`LockResult::OwnerDied`] if a process died holding the lock meanwhile. Waiting
    /// with a guard that is not [consistent](MutexGuard::is_consistent) releases a broken
    /// lock: it becomes unusable, and this fails.
    pub fn wait<'a, T: Pod>(&self, guard: MutexGuard<'a, T>) -> Result<LockResult<MutexGuard<'a, T>>> {
        let (mutex, consistent) = guard.into_held();
        // SAFETY: `raw` is an initialised process-shared condition variable and `mutex.raw()` an
        // initialised mutex that this thread holds (the guard said so), both in mappings kept
        // by their handles.
        let code = unsafe { libc::pthread_cond_wait(self.raw(), mutex.raw()) };
        Self::retaken(mutex, code, consistent).map_err(|code| pthread_error(self.place.object(), "wait", code))
    }

    /// [`wait`](Self::wait), for at most `timeout`.
    pub fn wait_timeout<'a, T: Pod>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> Result<(LockResult<MutexGuard<'a, T>>, WaitTimeoutResult)> {
        let started = Instant::now();
        let deadline = monotonic_deadline(timeout);
        let (mutex, consistent) = guard.into_held();
        // SAFETY: as in `wait`; the condition variable waits on CLOCK_MONOTONIC (set at
        // initialisation), the clock of `deadline`.
        let code = unsafe { libc::pthread_cond_timedwait(self.raw(), mutex.raw(), &raw const deadline) };
        // An owner's death hides a timeout in the return code: the clock tells.
        let timed_out = code == libc::ETIMEDOUT || started.elapsed() >= timeout;
        let code = if code == libc::ETIMEDOUT { 0 } else { code };
        let result = Self::retaken(mutex, code, consistent)
            .map_err(|code| pthread_error(self.place.object(), "wait_timeout", code))?;
        Ok((result, WaitTimeoutResult(timed_out)))
    }

    /// Turns the return code of a wait into the guard of the retaken lock.
    fn retaken<T: Pod>(
        mutex: &super::Mutex<T>,
        code: libc::c_int,
        consistent: bool,
    ) -> std::result::Result<LockResult<MutexGuard<'_, T>>, libc::c_int> {
        match code {
            0 => mutex.reclaim(true, consistent).map(LockResult::Acquired).ok_or(code),
            libc::EOWNERDEAD => mutex.reclaim(true, false).map(LockResult::OwnerDied).ok_or(code),
            // Any other error: the lock is not held any more.
            code => {
                let _ = mutex.reclaim(false, consistent);
                Err(code)
            }
        }
    }

    /// Wakes one waiting thread, in any process.
    pub fn notify_one(&self) -> Result<()> {
        // SAFETY: `raw` is an initialised process-shared condition variable.
        let code = unsafe { libc::pthread_cond_signal(self.raw()) };
        self.check(code, "notify_one")
    }

    /// Wakes every waiting thread, in every process.
    pub fn notify_all(&self) -> Result<()> {
        // SAFETY: as in `notify_one`.
        let code = unsafe { libc::pthread_cond_broadcast(self.raw()) };
        self.check(code, "notify_all")
    }

    /// The shared memory object the condition variable lives in.
    pub fn shared_memory(&self) -> &Arc<SharedMemory> {
        self.place.shm()
    }

    /// Its offset in the shared memory object.
    pub fn offset(&self) -> usize {
        self.place.offset()
    }

    fn check(&self, code: libc::c_int, operation: &'static str) -> Result<()> {
        if code == 0 {
            Ok(())
        } else {
            Err(pthread_error(self.place.object(), operation, code))
        }
    }

    fn raw(&self) -> *mut libc::pthread_cond_t {
        // SAFETY: `ptr` points to a `Repr` within the mapping (checked by `Place::new`);
        // taking a field's address creates no reference.
        unsafe { &raw mut (*self.place.ptr::<Repr>()).raw }
    }
}

impl fmt::Debug for Condvar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condvar").field("place", &self.place).finish()
    }
}

/// Initialises the glibc condition variable: process-shared, on `CLOCK_MONOTONIC`.
fn init_raw(place: &Place) -> Result<()> {
    let repr = place.ptr::<Repr>();
    let mut attr = MaybeUninit::<libc::pthread_condattr_t>::uninit();
    // SAFETY: `attr` is initialised before use and destroyed after; `repr` points to a `Repr`
    // within the mapping that only this process touches while the state word says
    // "initialising".
    let code = unsafe {
        let attr = attr.as_mut_ptr();
        let mut code = libc::pthread_condattr_init(attr);
        if code == 0 {
            code = libc::pthread_condattr_setpshared(attr, libc::PTHREAD_PROCESS_SHARED);
            if code == 0 {
                code = libc::pthread_condattr_setclock(attr, libc::CLOCK_MONOTONIC);
            }
            if code == 0 {
                code = libc::pthread_cond_init(&raw mut (*repr).raw, attr);
            }
            libc::pthread_condattr_destroy(attr);
        }
        code
    };
    if code == 0 {
        Ok(())
    } else {
        Err(pthread_error(place.object(), "pthread_cond_init", code))
    }
}
