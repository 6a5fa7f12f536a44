//! [`Mutex`]: a robust, process-shared lock with its data, in shared memory.

use std::fmt;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytemuck::Pod;

use super::{monotonic_deadline, pthread_error, Kind, Place};
use crate::error::{Error, Result};
use crate::shm::{Outcome, SharedMemory};

/// The layout in shared memory: state word, the glibc mutex, the data.
#[repr(C)]
struct Repr<T> {
    header: super::Header,
    raw: libc::pthread_mutex_t,
    data: T,
}

/// A mutual exclusion lock shared between processes, holding a `T` in shared memory, that
/// survives the death of its owner.
///
/// It is a glibc mutex made *robust* and *process-shared* (and error-checking, so that a thread
/// locking it twice gets an error, not a deadlock). When a process or thread dies while holding
/// it, the kernel releases it, and the next locker gets [`LockResult::OwnerDied`]: the data may be
/// half updated. That locker repairs what needs repairing and calls
/// [`MutexGuard::make_consistent`]; if it drops the guard without doing so, the lock becomes
/// unusable for everyone (every later `lock` fails), so that no one works on broken data.
///
/// The data is read and written by copy, see [the module docs](super) for why `T: Pod`.
///
/// ```
/// use std::sync::Arc;
/// use ipcmem::{sync::{LockResult, Mutex}, SharedMemory};
///
/// let name = format!("/ipcmem-doc-mutex-{}", std::process::id());
/// let shm = Arc::new(SharedMemory::create(name.as_str(), 4096)?);
/// // SAFETY: nothing writes the mutex's bytes but its handles (no `write_at` over them).
/// let counter = unsafe { Mutex::init_at(&shm, 0, 0_u64)? };
///
/// // Another process: SharedMemory::open(name) and Mutex::<u64>::attach_at(&shm, 0).
/// // SAFETY: as above.
/// let same = unsafe { Mutex::<u64>::attach_at(&shm, 0)? };
///
/// match same.lock()? {
///     LockResult::Acquired(mut guard) => guard.update(|n| *n += 1)?,
///     LockResult::OwnerDied(mut guard) => {
///         // The previous owner died holding the lock: check (here: reset) the data.
///         guard.set(0)?;
///         guard.make_consistent()?;
///     }
/// }
/// // The guard's copies fail only if another process shrinks the object under the lock.
/// assert_eq!(counter.lock()?.into_guard().get()?, 1);
/// # Ok::<(), ipcmem::Error>(())
/// ```
pub struct Mutex<T: Pod> {
    place: Place,
    /// Guards of this handle that are alive (or were forgotten): see `Drop`.
    held: AtomicUsize,
    _data: PhantomData<T>,
}

// SAFETY: the handle is a `Place` (Send + Sync) and a counter; the mutex is a process-shared
// pthread mutex, safe to lock from any thread; the data is only copied in and out (needs
// `T: Send`), under the lock.
unsafe impl<T: Pod + Send> Send for Mutex<T> {}
// SAFETY: as above.
unsafe impl<T: Pod + Send> Sync for Mutex<T> {}

/// How a lock was acquired: normally, or from an owner that died holding it.
#[must_use = "a lock whose previous owner died must be checked and made consistent"]
#[derive(Debug)]
pub enum LockResult<G> {
    /// The lock was free or released normally.
    Acquired(G),
    /// The previous owner died holding the lock (`EOWNERDEAD`): the protected data may be half
    /// updated. Repair it and call `make_consistent` on the guard, or the lock becomes unusable
    /// when the guard is dropped.
    OwnerDied(G),
}

impl<G> LockResult<G> {
    /// The guard, however it was acquired.
    pub fn into_guard(self) -> G {
        match self {
            LockResult::Acquired(guard) | LockResult::OwnerDied(guard) => guard,
        }
    }

    /// Whether the previous owner died holding the lock.
    pub fn owner_died(&self) -> bool {
        matches!(self, LockResult::OwnerDied(_))
    }
}

impl<T: Pod> Mutex<T> {
    /// The bytes the mutex and its data take in shared memory.
    pub const SIZE: usize = size_of::<Repr<T>>();
    /// The alignment its offset needs (at least 8).
    pub const ALIGN: usize = align_of::<Repr<T>>();

    /// Makes a new mutex holding `value` at `offset` of `shm`. Fails with
    /// [`Error::AlreadyExists`](crate::Error::AlreadyExists) if a mutex is there already, and
    /// with a clear error if the place is out of bounds, misaligned (see [`ALIGN`](Self::ALIGN)),
    /// read-only, or holds another kind of object.
    ///
    /// # Safety
    /// While any handle of this mutex lives, in any process, its bytes (`offset` to
    /// `offset + SIZE`) must be written only through `Mutex` handles: glibc keeps pointers of
    /// its owner's robust list inside the mutex and writes through them when the lock is taken
    /// or released, so bytes written over a held mutex (by `write_at`, an unsafe slice, or
    /// another process) could make the owner write anywhere in its memory. Give write
    /// permission on the object only to processes that keep to this.
    pub unsafe fn init_at(shm: &Arc<SharedMemory>, offset: usize, value: T) -> Result<Mutex<T>> {
        let place = place::<T>(shm, offset)?;
        place.initialise(Kind::Mutex, size_of::<T>(), || init_raw(&place, value))?;
        Ok(Mutex::with_place(place))
    }

    /// Uses the mutex already at `offset` of `shm`, without touching it: if another process
    /// holds it, it stays held. Fails if no `Mutex<T>` (with a `T` of this size) is there.
    ///
    /// # Safety
    /// As for [`init_at`](Self::init_at): the mutex's bytes are written only through `Mutex`
    /// handles while any handle lives.
    pub unsafe fn attach_at(shm: &Arc<SharedMemory>, offset: usize) -> Result<Mutex<T>> {
        let place = place::<T>(shm, offset)?;
        place.attach(Kind::Mutex, size_of::<T>())?;
        Ok(Mutex::with_place(place))
    }

    /// Makes a mutex holding `value` at `offset` if the place is unused, else attaches to the
    /// one there; says which. Of processes racing on one place, exactly one initialises.
    ///
    /// # Safety
    /// As for [`init_at`](Self::init_at): the mutex's bytes are written only through `Mutex`
    /// handles while any handle lives.
    pub unsafe fn init_or_attach_at(shm: &Arc<SharedMemory>, offset: usize, value: T) -> Result<(Mutex<T>, Outcome)> {
        let place = place::<T>(shm, offset)?;
        let outcome = place.initialise_or_attach(Kind::Mutex, size_of::<T>(), || init_raw(&place, value))?;
        Ok((Mutex::with_place(place), outcome))
    }

    fn with_place(place: Place) -> Mutex<T> {
        Mutex { place, held: AtomicUsize::new(0), _data: PhantomData }
    }

    /// The shared memory object the mutex lives in.
    pub fn shared_memory(&self) -> &Arc<SharedMemory> {
        self.place.shm()
    }

    /// Its offset in the shared memory object.
    pub fn offset(&self) -> usize {
        self.place.offset()
    }

    /// Waits for the lock and takes it. Fails if this thread holds it already, or if the lock
    /// was made unusable (an owner died and the next one did not make it consistent).
    ///
    /// Waits for ever if the lock stays held: the kernel releases it when its owner dies, but
    /// not when garbage written over it names an owner that never was. Where that can happen,
    /// use [`lock_timeout`](Self::lock_timeout).
    pub fn lock(&self) -> Result<LockResult<MutexGuard<'_, T>>> {
        let code = self.lock_raw();
        self.acquired(code, "lock")?.ok_or_else(|| pthread_error(self.place.object(), "lock", code))
    }

    /// Takes the lock if it is free; `Ok(None)` if another thread or process holds it.
    pub fn try_lock(&self) -> Result<Option<LockResult<MutexGuard<'_, T>>>> {
        self.check_kind("try_lock")?;
        // SAFETY: `raw` is an initialised process-shared mutex (the state word said so, and its
        // kind is still the one ipcmem made) in memory that the place keeps mapped.
        let code = unsafe { libc::pthread_mutex_trylock(self.raw()) };
        self.acquired(code, "try_lock")
    }

    /// Waits at most `timeout` for the lock; `Ok(None)` if it was not free in time.
    pub fn lock_timeout(&self, timeout: Duration) -> Result<Option<LockResult<MutexGuard<'_, T>>>> {
        self.check_kind("lock_timeout")?;
        let deadline = monotonic_deadline(timeout);
        // SAFETY: as in `try_lock`; `deadline` is a valid timespec for the call.
        let code = unsafe { super::pthread_mutex_clocklock(self.raw(), libc::CLOCK_MONOTONIC, &raw const deadline) };
        self.acquired(code, "lock_timeout")
    }

    /// `pthread_mutex_lock`, after checking the mutex's kind; its return code.
    pub(super) fn lock_raw(&self) -> libc::c_int {
        if self.check_kind("lock").is_err() {
            return libc::EINVAL;
        }
        // SAFETY: as in `try_lock`.
        unsafe { libc::pthread_mutex_lock(self.raw()) }
    }

    /// `pthread_mutex_unlock`, after checking the mutex's kind; its return code.
    ///
    /// # Safety
    /// This thread holds the lock, and gives up the guard that said so.
    pub(super) unsafe fn unlock_raw(&self) -> libc::c_int {
        if self.check_kind("unlock").is_err() {
            return libc::EINVAL;
        }
        // SAFETY: as in `try_lock`; this thread holds the lock (the caller's promise).
        unsafe { libc::pthread_mutex_unlock(self.raw()) }
    }

    /// Checks, before glibc reads it, the word that tells glibc what kind of mutex this is:
    /// garbage there would send glibc down the paths of other kinds (priority inheritance, with
    /// assertions that abort the process). The other words of a robust mutex that is not held
    /// are safe for glibc whatever they hold: see the module docs for what remains.
    fn check_kind(&self, operation: &'static str) -> Result<()> {
        // SAFETY: the word lies within the mutex (aligned to 8: the offset keeps it aligned to
        // 4), in the mapping the place keeps; glibc reads and writes it atomically too.
        let kind = unsafe { AtomicU32::from_ptr(self.raw().cast::<u32>().add(KIND_OFFSET / 4)) };
        let found = kind.load(Ordering::Relaxed);
        let expected = expected_kind();
        if found == expected {
            return Ok(());
        }
        Err(Error::InvalidArgument {
            object: self.place.object(),
            reason: format!(
                "{operation}: the bytes there are no longer the robust mutex ipcmem made (its kind \
                 word is {found:#x}, not {expected:#x}): something wrote over them"
            ),
        })
    }

    /// Turns the return code of a locking call into a guard: `None` for "busy" or "timed out".
    fn acquired(&self, code: libc::c_int, operation: &'static str) -> Result<Option<LockResult<MutexGuard<'_, T>>>> {
        match code {
            0 => Ok(Some(LockResult::Acquired(self.guard(true)))),
            libc::EOWNERDEAD => Ok(Some(LockResult::OwnerDied(self.guard(false)))),
            libc::EBUSY | libc::ETIMEDOUT => Ok(None),
            code => Err(pthread_error(self.place.object(), operation, code)),
        }
    }

    /// A guard for the lock this thread has just taken.
    pub(super) fn guard(&self, consistent: bool) -> MutexGuard<'_, T> {
        self.held.fetch_add(1, Ordering::Relaxed);
        MutexGuard { mutex: self, consistent, _not_send: PhantomData }
    }

    pub(super) fn raw(&self) -> *mut libc::pthread_mutex_t {
        // SAFETY: `ptr` points to a `Repr<T>` within the mapping (checked by `Place::new`);
        // taking a field's address creates no reference.
        unsafe { &raw mut (*self.place.ptr::<Repr<T>>()).raw }
    }

    fn data(&self) -> *mut T {
        // SAFETY: as in `raw`.
        unsafe { &raw mut (*self.place.ptr::<Repr<T>>()).data }
    }
}

impl<T: Pod> Drop for Mutex<T> {
    fn drop(&mut self) {
        // A guard was forgotten (`mem::forget`), or its unlock failed: this thread still holds
        // the lock (or glibc thinks so), and glibc keeps the mutex on the thread's robust list,
        // which it walks and writes through when the thread takes or releases any robust mutex.
        // Unmapping the memory would leave that list pointing at nothing, so keep the memory
        // mapped for good.
        if *self.held.get_mut() > 0 {
            std::mem::forget(Arc::clone(self.place.shm()));
        }
    }
}

impl<T: Pod> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mutex").field("place", &self.place).finish_non_exhaustive()
    }
}

/// The offset of glibc's `__kind` in a `pthread_mutex_t` on 64-bit Linux (after `__lock`,
/// `__count`, `__owner`, `__nusers`; the same on x86-64 and aarch64).
const KIND_OFFSET: usize = 16;
const _: () = assert!(size_of::<libc::pthread_mutex_t>() >= KIND_OFFSET + 4);

/// The kind word glibc gives our mutexes (robust, process-shared, error-checking), learnt once
/// from a mutex of this process's own.
fn expected_kind() -> u32 {
    static KIND: OnceLock<u32> = OnceLock::new();
    *KIND.get_or_init(|| {
        let mut probe = MaybeUninit::<libc::pthread_mutex_t>::zeroed();
        // SAFETY: `probe` is a live, writable mutex of this thread's own, used by nothing else.
        unsafe { init_glibc_mutex(probe.as_mut_ptr()) };
        // SAFETY: the word lies within `probe` (checked above), initialised (zeroed, then by
        // glibc); `u32` has no invalid bits, and the read is unaligned-safe.
        unsafe { probe.as_ptr().cast::<u8>().add(KIND_OFFSET).cast::<u32>().read_unaligned() }
    })
}

/// `pthread_mutex_init` with our attributes (robust, process-shared, error-checking); its
/// return code.
///
/// # Safety
/// `raw` is valid for writes of a `pthread_mutex_t` that no other thread accesses meanwhile.
unsafe fn init_glibc_mutex(raw: *mut libc::pthread_mutex_t) -> libc::c_int {
    let mut attr = MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
    // SAFETY: `attr` is initialised by `pthread_mutexattr_init` before any other use, and
    // destroyed once the mutex is made; `raw` is the caller's promise.
    unsafe {
        let attr = attr.as_mut_ptr();
        let mut code = libc::pthread_mutexattr_init(attr);
        if code == 0 {
            code = libc::pthread_mutexattr_settype(attr, libc::PTHREAD_MUTEX_ERRORCHECK);
            if code == 0 {
                code = libc::pthread_mutexattr_setpshared(attr, libc::PTHREAD_PROCESS_SHARED);
            }
            if code == 0 {
                code = libc::pthread_mutexattr_setrobust(attr, libc::PTHREAD_MUTEX_ROBUST);
            }
            if code == 0 {
                code = libc::pthread_mutex_init(raw, attr);
            }
            libc::pthread_mutexattr_destroy(attr);
        }
        code
    }
}

/// Initialises the glibc mutex (robust, process-shared, error-checking) and stores `value`.
fn init_raw<T: Pod>(place: &Place, value: T) -> Result<()> {
    let repr = place.ptr::<Repr<T>>();
    // SAFETY: `repr` points to a `Repr<T>` within the mapping that this process alone touches
    // while the state word says "initialising" (the other processes wait for "ready"), so the
    // plain writes of `pthread_mutex_init` race with no one.
    let code = unsafe { init_glibc_mutex(&raw mut (*repr).raw) };
    if code != 0 {
        return Err(pthread_error(place.object(), "pthread_mutex_init", code));
    }
    // SAFETY: the data lies within the writable mapping (`Repr<T>` checked by `Place::new`).
    unsafe { place.store(&raw mut (*repr).data, value) }
}

/// Holds a [`Mutex`] until dropped; reads and writes its data by copy.
///
/// Not `Send`: a pthread mutex must be released by the thread that took it.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct MutexGuard<'a, T: Pod> {
    mutex: &'a Mutex<T>,
    consistent: bool,
    _not_send: PhantomData<*const ()>,
}

impl<'a, T: Pod> MutexGuard<'a, T> {
    /// A copy of the data. Fails only if the object was shrunk under the lock (a fault of the
    /// mapping, caught: see [`SharedMemory::read_at`]).
    pub fn get(&self) -> Result<T> {
        // SAFETY: the data lies within the mapping, kept by the mutex that this guard borrows.
        unsafe { self.mutex.place.load(self.mutex.data()) }
    }

    /// Replaces the data with `value`. Fails only if the object was shrunk under the lock (the
    /// data may then be partly written).
    pub fn set(&mut self, value: T) -> Result<()> {
        // SAFETY: as in `get`; the mapping is writable (checked by `Place::new`).
        unsafe { self.mutex.place.store(self.mutex.data(), value) }
    }

    /// Copies the data out, lets `f` change the copy, and stores it back; returns what `f` does.
    pub fn update<R>(&mut self, f: impl FnOnce(&mut T) -> R) -> Result<R> {
        let mut value = self.get()?;
        let result = f(&mut value);
        self.set(value)?;
        Ok(result)
    }

    /// The address of the data in this process, for `unsafe` code that wants to access it in
    /// place. Only accesses made while the guard lives are protected by the lock.
    pub fn as_ptr(&self) -> *mut T {
        self.mutex.data()
    }

    /// Whether the state is consistent: false after [`LockResult::OwnerDied`] until
    /// [`make_consistent`](Self::make_consistent).
    pub fn is_consistent(&self) -> bool {
        self.consistent
    }

    /// Marks the state protected by the lock as repaired after [`LockResult::OwnerDied`]
    /// (`pthread_mutex_consistent`), so that the lock stays usable once released. Does nothing
    /// if the state is consistent already.
    pub fn make_consistent(&mut self) -> Result<()> {
        if self.consistent {
            return Ok(());
        }
        self.mutex.check_kind("make_consistent")?;
        // SAFETY: this thread holds the initialised mutex (the guard says so), of our kind.
        let code = unsafe { libc::pthread_mutex_consistent(self.mutex.raw()) };
        if code != 0 {
            return Err(pthread_error(self.mutex.place.object(), "pthread_mutex_consistent", code));
        }
        self.consistent = true;
        Ok(())
    }

    /// The mutex this guard holds.
    pub fn mutex(&self) -> &'a Mutex<T> {
        self.mutex
    }

    /// Gives up the guard without releasing the lock (for a condition variable's wait, which
    /// releases and retakes it itself); `reclaim` makes a new guard or forgets this one.
    pub(super) fn into_held(self) -> (&'a Mutex<T>, bool) {
        let this = std::mem::ManuallyDrop::new(self);
        (this.mutex, this.consistent)
    }
}

impl<T: Pod> Mutex<T> {
    /// After a condition variable's wait: a guard again if the lock is held, else nothing held.
    pub(super) fn reclaim(&self, held: bool, consistent: bool) -> Option<MutexGuard<'_, T>> {
        // The guard given up by `into_held` still counts in `held`.
        self.held.fetch_sub(1, Ordering::Relaxed);
        held.then(|| self.guard(consistent))
    }
}

impl<T: Pod> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: this thread holds the initialised mutex (the guard says so). An unlock of a
        // mutex whose owner died and that was not made consistent marks it unrecoverable, as
        // documented. Garbage in its kind word leaves it as it is.
        let code = unsafe { self.mutex.unlock_raw() };
        // A failed unlock (garbage written over the held mutex) may leave it on this thread's
        // robust list: the guard stays counted, so that the memory stays mapped (see `Drop` of
        // `Mutex`).
        if code == 0 {
            self.mutex.held.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MutexGuard").field("data", &self.get().ok()).field("consistent", &self.consistent).finish()
    }
}

/// The place at `offset` of `shm` for a `Repr<T>`, with its atomics claimed.
fn place<T: Pod>(shm: &Arc<SharedMemory>, offset: usize) -> Result<Place> {
    let place = Place::new::<Repr<T>>(shm, offset)?;
    place.claim::<AtomicU32>(std::mem::offset_of!(Repr<T>, raw) + KIND_OFFSET, 1)?;
    Ok(place)
}
