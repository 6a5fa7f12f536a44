//! [`RwLock`]: a process-shared read-write lock with its data, in shared memory.

use std::fmt;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::sync::Arc;
use std::time::Duration;

use bytemuck::Pod;

use super::{monotonic_deadline, pthread_error, Kind, Place};
use crate::access;
use crate::error::Result;
use crate::shm::{Outcome, SharedMemory};

/// The layout in shared memory: state word, the glibc read-write lock, the data.
#[repr(C)]
struct Repr<T> {
    header: super::Header,
    raw: libc::pthread_rwlock_t,
    data: T,
}

/// A read-write lock shared between processes, holding a `T` in shared memory: many readers or
/// one writer.
///
/// A glibc process-shared `pthread_rwlock_t`, which prefers readers. Unlike [`super::Mutex`] it is
/// **not robust**: if a process dies holding it, it stays held. Use the timed calls
/// ([`read_timeout`](Self::read_timeout), [`write_timeout`](Self::write_timeout)) where a holder
/// may crash. A thread that asks for the write lock while it holds a read lock deadlocks; one
/// that asks for either while it holds the write lock gets an error.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use ipcmem::{sync::RwLock, SharedMemory};
///
/// let name = format!("/ipcmem-doc-rwlock-{}", std::process::id());
/// let shm = Arc::new(SharedMemory::create(name.as_str(), 4096)?);
/// let config = RwLock::init_at(&shm, 0, [0_u32; 4])?;
///
/// config.write()?.set([1, 2, 3, 4]);
/// let reader = RwLock::<[u32; 4]>::attach_at(&shm, 0)?; // as another process would
/// let first = reader.read()?;
/// let second = reader.read_timeout(Duration::from_secs(1))?.expect("readers share the lock");
/// assert_eq!(first.get(), second.get());
/// assert!(config.try_write()?.is_none()); // readers hold it
/// # Ok::<(), ipcmem::Error>(())
/// ```
pub struct RwLock<T: Pod> {
    place: Place,
    _data: PhantomData<T>,
}

// SAFETY: the handle is a `Place` (Send + Sync); the lock is a process-shared pthread
// read-write lock, safe to use from any thread; the data is only copied in and out (needs
// `T: Send`), under the lock.
unsafe impl<T: Pod + Send> Send for RwLock<T> {}
// SAFETY: as above.
unsafe impl<T: Pod + Send> Sync for RwLock<T> {}

impl<T: Pod> RwLock<T> {
    /// The bytes the lock and its data take in shared memory.
    pub const SIZE: usize = size_of::<Repr<T>>();
    /// The alignment its offset needs (at least 8).
    pub const ALIGN: usize = align_of::<Repr<T>>();

    /// Makes a new lock holding `value` at `offset` of `shm`; fails if something is there.
    pub fn init_at(shm: &Arc<SharedMemory>, offset: usize, value: T) -> Result<RwLock<T>> {
        let place = Place::new::<Repr<T>>(shm, offset)?;
        place.initialise(Kind::RwLock, size_of::<T>(), || init_raw(&place, value))?;
        Ok(RwLock { place, _data: PhantomData })
    }

    /// Uses the lock already at `offset` of `shm`, without touching it.
    pub fn attach_at(shm: &Arc<SharedMemory>, offset: usize) -> Result<RwLock<T>> {
        let place = Place::new::<Repr<T>>(shm, offset)?;
        place.attach(Kind::RwLock, size_of::<T>())?;
        Ok(RwLock { place, _data: PhantomData })
    }

    /// Makes the lock if the place is unused, else attaches to the one there; says which.
    pub fn init_or_attach_at(shm: &Arc<SharedMemory>, offset: usize, value: T) -> Result<(RwLock<T>, Outcome)> {
        let place = Place::new::<Repr<T>>(shm, offset)?;
        let outcome = place.initialise_or_attach(Kind::RwLock, size_of::<T>(), || init_raw(&place, value))?;
        Ok((RwLock { place, _data: PhantomData }, outcome))
    }

    /// Waits for shared (read) access.
    pub fn read(&self) -> Result<RwLockReadGuard<'_, T>> {
        // SAFETY: `raw` is an initialised process-shared lock in memory the place keeps mapped.
        let code = unsafe { libc::pthread_rwlock_rdlock(self.raw()) };
        self.taken(code, "read")?
            .map(|()| RwLockReadGuard { lock: self, _not_send: PhantomData })
            .ok_or_else(|| pthread_error(self.place.object(), "read", code))
    }

    /// Takes shared access if no writer holds the lock; `Ok(None)` otherwise.
    pub fn try_read(&self) -> Result<Option<RwLockReadGuard<'_, T>>> {
        // SAFETY: as in `read`.
        let code = unsafe { libc::pthread_rwlock_tryrdlock(self.raw()) };
        Ok(self.taken(code, "try_read")?.map(|()| RwLockReadGuard { lock: self, _not_send: PhantomData }))
    }

    /// Waits at most `timeout` for shared access; `Ok(None)` if it timed out.
    pub fn read_timeout(&self, timeout: Duration) -> Result<Option<RwLockReadGuard<'_, T>>> {
        let deadline = monotonic_deadline(timeout);
        // SAFETY: as in `read`; `deadline` is a valid timespec for the call.
        let code = unsafe { super::pthread_rwlock_clockrdlock(self.raw(), libc::CLOCK_MONOTONIC, &raw const deadline) };
        Ok(self.taken(code, "read_timeout")?.map(|()| RwLockReadGuard { lock: self, _not_send: PhantomData }))
    }

    /// Waits for exclusive (write) access.
    pub fn write(&self) -> Result<RwLockWriteGuard<'_, T>> {
        // SAFETY: as in `read`.
        let code = unsafe { libc::pthread_rwlock_wrlock(self.raw()) };
        self.taken(code, "write")?
            .map(|()| RwLockWriteGuard { lock: self, _not_send: PhantomData })
            .ok_or_else(|| pthread_error(self.place.object(), "write", code))
    }

    /// Takes exclusive access if nobody holds the lock; `Ok(None)` otherwise.
    pub fn try_write(&self) -> Result<Option<RwLockWriteGuard<'_, T>>> {
        // SAFETY: as in `read`.
        let code = unsafe { libc::pthread_rwlock_trywrlock(self.raw()) };
        Ok(self.taken(code, "try_write")?.map(|()| RwLockWriteGuard { lock: self, _not_send: PhantomData }))
    }

    /// Waits at most `timeout` for exclusive access; `Ok(None)` if it timed out.
    pub fn write_timeout(&self, timeout: Duration) -> Result<Option<RwLockWriteGuard<'_, T>>> {
        let deadline = monotonic_deadline(timeout);
        // SAFETY: as in `read`; `deadline` is a valid timespec for the call.
        let code = unsafe { super::pthread_rwlock_clockwrlock(self.raw(), libc::CLOCK_MONOTONIC, &raw const deadline) };
        Ok(self.taken(code, "write_timeout")?.map(|()| RwLockWriteGuard { lock: self, _not_send: PhantomData }))
    }

    /// The shared memory object the lock lives in.
    pub fn shared_memory(&self) -> &Arc<SharedMemory> {
        self.place.shm()
    }

    /// Its offset in the shared memory object.
    pub fn offset(&self) -> usize {
        self.place.offset()
    }

    /// `Some(())` if the call took the lock, `None` if it was busy or timed out.
    fn taken(&self, code: libc::c_int, operation: &'static str) -> Result<Option<()>> {
        match code {
            0 => Ok(Some(())),
            libc::EBUSY | libc::ETIMEDOUT => Ok(None),
            code => Err(pthread_error(self.place.object(), operation, code)),
        }
    }

    fn raw(&self) -> *mut libc::pthread_rwlock_t {
        // SAFETY: `ptr` points to a `Repr<T>` within the mapping (checked by `Place::new`);
        // taking a field's address creates no reference.
        unsafe { &raw mut (*self.place.ptr::<Repr<T>>()).raw }
    }

    fn data(&self) -> *mut T {
        // SAFETY: as in `raw`.
        unsafe { &raw mut (*self.place.ptr::<Repr<T>>()).data }
    }

    fn load(&self) -> T {
        let mut value = T::zeroed();
        // SAFETY: the data lies within the mapping, kept by the place; the load is sound
        // against concurrent access (see `access`), and any bytes make a valid `T` (`Pod`). A
        // fault (the object shrunk under the lock) leaves `value` zero: this method has no error.
        let _ = unsafe { access::load(self.data().cast_const().cast(), bytemuck::bytes_of_mut(&mut value)) };
        value
    }

    fn unlock(&self) {
        // SAFETY: called by a guard's drop: this thread holds the lock.
        unsafe { libc::pthread_rwlock_unlock(self.raw()) };
    }
}

impl<T: Pod> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RwLock").field("place", &self.place).finish_non_exhaustive()
    }
}

/// Initialises the glibc read-write lock (process-shared) and stores `value`.
fn init_raw<T: Pod>(place: &Place, value: T) -> Result<()> {
    let repr = place.ptr::<Repr<T>>();
    let mut attr = MaybeUninit::<libc::pthread_rwlockattr_t>::uninit();
    // SAFETY: `attr` is initialised before use and destroyed after; `repr` points to a
    // `Repr<T>` within the mapping that only this process touches while the state word says
    // "initialising".
    let code = unsafe {
        let attr = attr.as_mut_ptr();
        let mut code = libc::pthread_rwlockattr_init(attr);
        if code == 0 {
            code = libc::pthread_rwlockattr_setpshared(attr, libc::PTHREAD_PROCESS_SHARED);
            if code == 0 {
                code = libc::pthread_rwlock_init(&raw mut (*repr).raw, attr);
            }
            libc::pthread_rwlockattr_destroy(attr);
        }
        code
    };
    if code != 0 {
        return Err(pthread_error(place.object(), "pthread_rwlock_init", code));
    }
    // SAFETY: the data lies within the writable mapping; the store is sound against
    // concurrent access (see `access`).
    let stored = unsafe { access::store((&raw mut (*repr).data).cast(), bytemuck::bytes_of(&value)) };
    stored.map_err(|fault| place.shm().fault_error(fault, place.offset(), size_of::<Repr<T>>()))
}

/// Shared access to a [`RwLock`] until dropped. Not `Send`: the thread that took the lock
/// releases it.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RwLockReadGuard<'a, T: Pod> {
    lock: &'a RwLock<T>,
    _not_send: PhantomData<*const ()>,
}

impl<T: Pod> RwLockReadGuard<'_, T> {
    /// A copy of the data.
    pub fn get(&self) -> T {
        self.lock.load()
    }

    /// The address of the data in this process, for `unsafe` code that reads it in place.
    pub fn as_ptr(&self) -> *const T {
        self.lock.data().cast_const()
    }
}

impl<T: Pod> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.unlock();
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RwLockReadGuard").field("data", &self.get()).finish()
    }
}

/// Exclusive access to a [`RwLock`] until dropped. Not `Send`.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RwLockWriteGuard<'a, T: Pod> {
    lock: &'a RwLock<T>,
    _not_send: PhantomData<*const ()>,
}

impl<T: Pod> RwLockWriteGuard<'_, T> {
    /// A copy of the data.
    pub fn get(&self) -> T {
        self.lock.load()
    }

    /// Replaces the data with `value`.
    pub fn set(&mut self, value: T) {
        // SAFETY: the data lies within the writable mapping, kept by the lock this guard
        // borrows; the store is sound against concurrent access. A fault (the object
        // shrunk under the lock) leaves the data unchanged: this method has no error to return.
        let _ = unsafe { access::store(self.lock.data().cast(), bytemuck::bytes_of(&value)) };
    }

    /// Copies the data out, lets `f` change the copy, and stores it back; returns what `f` does.
    pub fn update<R>(&mut self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut value = self.get();
        let result = f(&mut value);
        self.set(value);
        result
    }

    /// The address of the data in this process, for `unsafe` code that accesses it in place.
    pub fn as_ptr(&self) -> *mut T {
        self.lock.data()
    }
}

impl<T: Pod> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.unlock();
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RwLockWriteGuard").field("data", &self.get()).finish()
    }
}
