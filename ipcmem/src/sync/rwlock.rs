//! [`RwLock`]: a process-shared read-write lock with its data, in shared memory.

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytemuck::Pod;

use super::futex::{self, Woken};
use super::{Kind, Place};
use crate::error::{Error, Result};
use crate::shm::{Outcome, SharedMemory};

/// The layout in shared memory: state word, the lock, the data.
#[repr(C)]
struct Repr<T> {
    header: super::Header,
    raw: RawRwLock,
    data: T,
}

/// The lock: a word that says who holds it (and the futex word waiters sleep on), and the
/// thread id of the writer, to turn a thread's second lock into an error, not a deadlock.
#[repr(C)]
struct RawRwLock {
    state: AtomicU32,
    writer: AtomicU32,
}

/// The bits of the state word that say who holds the lock: the number of readers, or
/// [`WRITE_LOCKED`]. Any value is a valid state: garbage reads as a lock held by readers or a
/// writer that never release it, on which timed waits time out.
const HOLDERS: u32 = (1 << 30) - 1;
/// A writer holds the lock.
const WRITE_LOCKED: u32 = HOLDERS;
/// The most readers at once.
const MAX_READERS: u32 = HOLDERS - 1;
/// Someone sleeps on the state word: who releases the lock next clears it and wakes them all.
const PARKED: u32 = 1 << 30;

/// How long a lock call waits.
#[derive(Clone, Copy)]
enum Patience {
    /// Not at all (`try_*`).
    None,
    /// Until the deadline.
    Until(Instant),
    /// For ever.
    Forever,
}

/// A read-write lock shared between processes, holding a `T` in shared memory: many readers or
/// one writer.
///
/// Our own lock on a futex word (no glibc object), which prefers readers, as glibc's default
/// does. Unlike [`super::Mutex`] it is **not robust**: if a process dies holding it, it stays
/// held. Use the timed calls
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
/// config.write()?.set([1, 2, 3, 4])?;
/// let reader = RwLock::<[u32; 4]>::attach_at(&shm, 0)?; // as another process would
/// let first = reader.read()?;
/// let second = reader.read_timeout(Duration::from_secs(1))?.expect("readers share the lock");
/// assert_eq!(first.get()?, second.get()?);
/// assert!(config.try_write()?.is_none()); // readers hold it
/// # Ok::<(), ipcmem::Error>(())
/// ```
pub struct RwLock<T: Pod> {
    place: Place,
    _data: PhantomData<T>,
}

// SAFETY: the handle is a `Place` (Send + Sync); the lock is atomics and futex calls, safe to
// use from any thread; the data is only copied in and out (needs
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
        let place = place::<T>(shm, offset)?;
        place.initialise(Kind::RwLock, size_of::<T>(), || init_raw(&place, value))?;
        Ok(RwLock { place, _data: PhantomData })
    }

    /// Uses the lock already at `offset` of `shm`, without touching it.
    pub fn attach_at(shm: &Arc<SharedMemory>, offset: usize) -> Result<RwLock<T>> {
        let place = place::<T>(shm, offset)?;
        place.attach(Kind::RwLock, size_of::<T>())?;
        Ok(RwLock { place, _data: PhantomData })
    }

    /// Makes the lock if the place is unused, else attaches to the one there; says which.
    pub fn init_or_attach_at(shm: &Arc<SharedMemory>, offset: usize, value: T) -> Result<(RwLock<T>, Outcome)> {
        let place = place::<T>(shm, offset)?;
        let outcome = place.initialise_or_attach(Kind::RwLock, size_of::<T>(), || init_raw(&place, value))?;
        Ok((RwLock { place, _data: PhantomData }, outcome))
    }

    /// Waits for shared (read) access.
    ///
    /// Waits for ever if the lock stays held: by a process that died holding it, or because
    /// garbage written over it reads as held. Where either can happen, use
    /// [`read_timeout`](Self::read_timeout).
    pub fn read(&self) -> Result<RwLockReadGuard<'_, T>> {
        self.acquire(false, Patience::Forever, "read")?;
        Ok(RwLockReadGuard { lock: self, _not_send: PhantomData })
    }

    /// Takes shared access if no writer holds the lock; `Ok(None)` otherwise.
    pub fn try_read(&self) -> Result<Option<RwLockReadGuard<'_, T>>> {
        let taken = self.acquire(false, Patience::None, "try_read")?;
        Ok(taken.then(|| RwLockReadGuard { lock: self, _not_send: PhantomData }))
    }

    /// Waits at most `timeout` for shared access; `Ok(None)` if it timed out.
    pub fn read_timeout(&self, timeout: Duration) -> Result<Option<RwLockReadGuard<'_, T>>> {
        let taken = self.acquire(false, deadline(timeout), "read_timeout")?;
        Ok(taken.then(|| RwLockReadGuard { lock: self, _not_send: PhantomData }))
    }

    /// Waits for exclusive (write) access. Waits for ever if the lock stays held, as
    /// [`read`](Self::read) does.
    pub fn write(&self) -> Result<RwLockWriteGuard<'_, T>> {
        self.acquire(true, Patience::Forever, "write")?;
        Ok(RwLockWriteGuard { lock: self, _not_send: PhantomData })
    }

    /// Takes exclusive access if nobody holds the lock; `Ok(None)` otherwise.
    pub fn try_write(&self) -> Result<Option<RwLockWriteGuard<'_, T>>> {
        let taken = self.acquire(true, Patience::None, "try_write")?;
        Ok(taken.then(|| RwLockWriteGuard { lock: self, _not_send: PhantomData }))
    }

    /// Waits at most `timeout` for exclusive access; `Ok(None)` if it timed out.
    pub fn write_timeout(&self, timeout: Duration) -> Result<Option<RwLockWriteGuard<'_, T>>> {
        let taken = self.acquire(true, deadline(timeout), "write_timeout")?;
        Ok(taken.then(|| RwLockWriteGuard { lock: self, _not_send: PhantomData }))
    }

    /// Takes the lock, for writing or reading, waiting as `patience` says; whether it did.
    fn acquire(&self, write: bool, patience: Patience, operation: &'static str) -> Result<bool> {
        let raw = self.raw();
        let mut seen = raw.state.load(Ordering::Relaxed);
        loop {
            let holders = seen & HOLDERS;
            let free = if write { holders == 0 } else { holders < MAX_READERS };
            if free {
                let taken = if write { seen | WRITE_LOCKED } else { seen + 1 };
                match raw.state.compare_exchange_weak(seen, taken, Ordering::Acquire, Ordering::Relaxed) {
                    Ok(_) => {
                        if write {
                            raw.writer.store(this_thread(), Ordering::Relaxed);
                        }
                        return Ok(true);
                    }
                    Err(now) => {
                        seen = now;
                        continue;
                    }
                }
            }
            if holders == WRITE_LOCKED && raw.writer.load(Ordering::Relaxed) == this_thread() {
                return Err(Error::InvalidArgument {
                    object: self.place.object(),
                    reason: format!("{operation}: this thread holds the write lock already (it would deadlock)"),
                });
            }
            let deadline = match patience {
                Patience::None => return Ok(false),
                Patience::Until(deadline) => Some(deadline),
                Patience::Forever => None,
            };
            // Ask to be woken, then sleep while the word stays as it is.
            let parked = seen | PARKED;
            if parked != seen {
                if let Err(now) = raw.state.compare_exchange_weak(seen, parked, Ordering::Relaxed, Ordering::Relaxed) {
                    seen = now;
                    continue;
                }
            }
            // SAFETY: the state word lies in the lock, mapped while `self` lives.
            match unsafe { futex::wait(raw.state.as_ptr(), parked, deadline) } {
                Ok(Woken::LookAgain) => seen = raw.state.load(Ordering::Relaxed),
                Ok(Woken::DeadlinePassed) => return Ok(false),
                Err(errno) => return Err(Error::Os { object: self.place.object(), operation: "futex wait", errno }),
            }
        }
    }

    /// Releases a read lock: one reader fewer; the last one wakes the sleepers.
    fn unlock_read(&self) {
        let raw = self.raw();
        let mut seen = raw.state.load(Ordering::Relaxed);
        loop {
            let holders = seen & HOLDERS;
            if holders == 0 || holders == WRITE_LOCKED {
                // Garbage overwrote the lock: it does not count this reader any more.
                return;
            }
            // Readers wait only for a writer or for a free place among the readers; writers wait
            // for the last reader.
            let wake = seen & PARKED != 0 && (holders == 1 || holders == MAX_READERS);
            let released = if wake { (seen - 1) & !PARKED } else { seen - 1 };
            match raw.state.compare_exchange_weak(seen, released, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => {
                    if wake {
                        // SAFETY: as in `acquire`.
                        unsafe { futex::wake_all(raw.state.as_ptr()) };
                    }
                    return;
                }
                Err(now) => seen = now,
            }
        }
    }

    /// Releases the write lock and wakes the sleepers.
    fn unlock_write(&self) {
        let raw = self.raw();
        raw.writer.store(0, Ordering::Relaxed);
        let seen = raw.state.fetch_and(!(HOLDERS | PARKED), Ordering::Release);
        if seen & PARKED != 0 {
            // SAFETY: as in `acquire`.
            unsafe { futex::wake_all(raw.state.as_ptr()) };
        }
    }

    /// The shared memory object the lock lives in.
    pub fn shared_memory(&self) -> &Arc<SharedMemory> {
        self.place.shm()
    }

    /// Its offset in the shared memory object.
    pub fn offset(&self) -> usize {
        self.place.offset()
    }

    fn raw(&self) -> &RawRwLock {
        // SAFETY: `ptr` points to a `Repr<T>` within the mapping (checked by `Place::new`) that
        // the place keeps for the life of `self`; the lock is atomics only, which other
        // processes access concurrently, and any bits are valid.
        unsafe { &(*self.place.ptr::<Repr<T>>()).raw }
    }

    fn data(&self) -> *mut T {
        // SAFETY: as in `raw`.
        unsafe { &raw mut (*self.place.ptr::<Repr<T>>()).data }
    }

    fn load(&self) -> Result<T> {
        // SAFETY: the data lies within the mapping, kept by the place.
        unsafe { self.place.load(self.data()) }
    }
}

impl<T: Pod> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RwLock").field("place", &self.place).finish_non_exhaustive()
    }
}

/// Initialises the lock (free) and stores `value`; fails if the object was shrunk meanwhile.
fn init_raw<T: Pod>(place: &Place, value: T) -> Result<()> {
    let repr = place.ptr::<Repr<T>>();
    // SAFETY: `repr` points to a `Repr<T>` within the writable mapping (checked by
    // `Place::new`); the stores are atomic, the data's a copy that catches faults.
    unsafe {
        (*repr).raw.state.store(0, Ordering::Relaxed);
        (*repr).raw.writer.store(0, Ordering::Relaxed);
        place.store(&raw mut (*repr).data, value)
    }
}

/// The deadline `timeout` from now.
fn deadline(timeout: Duration) -> Patience {
    Instant::now().checked_add(timeout).map_or(Patience::Forever, Patience::Until)
}

/// This thread's id, as the kernel knows it.
fn this_thread() -> u32 {
    rustix::thread::gettid().as_raw_nonzero().get().cast_unsigned()
}

/// Shared access to a [`RwLock`] until dropped. Not `Send`: the thread that took the lock
/// releases it.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RwLockReadGuard<'a, T: Pod> {
    lock: &'a RwLock<T>,
    _not_send: PhantomData<*const ()>,
}

impl<T: Pod> RwLockReadGuard<'_, T> {
    /// A copy of the data. Fails only if the object was shrunk under the lock (a fault of the
    /// mapping, caught: see [`SharedMemory::read_at`]).
    pub fn get(&self) -> Result<T> {
        self.lock.load()
    }

    /// The address of the data in this process, for `unsafe` code that reads it in place.
    pub fn as_ptr(&self) -> *const T {
        self.lock.data().cast_const()
    }
}

impl<T: Pod> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.unlock_read();
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RwLockReadGuard").field("data", &self.get().ok()).finish()
    }
}

/// Exclusive access to a [`RwLock`] until dropped. Not `Send`.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RwLockWriteGuard<'a, T: Pod> {
    lock: &'a RwLock<T>,
    _not_send: PhantomData<*const ()>,
}

impl<T: Pod> RwLockWriteGuard<'_, T> {
    /// A copy of the data. Fails only if the object was shrunk under the lock.
    pub fn get(&self) -> Result<T> {
        self.lock.load()
    }

    /// Replaces the data with `value`. Fails only if the object was shrunk under the lock (the
    /// data may then be partly written).
    pub fn set(&mut self, value: T) -> Result<()> {
        // SAFETY: the data lies within the writable mapping, kept by the lock this guard
        // borrows.
        unsafe { self.lock.place.store(self.lock.data(), value) }
    }

    /// Copies the data out, lets `f` change the copy, and stores it back; returns what `f` does.
    pub fn update<R>(&mut self, f: impl FnOnce(&mut T) -> R) -> Result<R> {
        let mut value = self.get()?;
        let result = f(&mut value);
        self.set(value)?;
        Ok(result)
    }

    /// The address of the data in this process, for `unsafe` code that accesses it in place.
    pub fn as_ptr(&self) -> *mut T {
        self.lock.data()
    }
}

impl<T: Pod> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.unlock_write();
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RwLockWriteGuard").field("data", &self.get().ok()).finish()
    }
}

/// The place at `offset` of `shm` for a `Repr<T>`, with its atomics claimed.
fn place<T: Pod>(shm: &Arc<SharedMemory>, offset: usize) -> Result<Place> {
    let place = Place::new::<Repr<T>>(shm, offset)?;
    place.claim::<AtomicU32>(std::mem::offset_of!(Repr<T>, raw), 2)?;
    Ok(place)
}
