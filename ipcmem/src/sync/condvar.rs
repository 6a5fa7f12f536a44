//! [`Condvar`]: a process-shared condition variable in shared memory.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytemuck::Pod;

use super::futex::{self, far_future, Woken};
use super::{pthread_error, Kind, LockResult, MutexGuard, Place};
use crate::error::{Error, Result};
use crate::shm::{Outcome, SharedMemory};

/// The layout in shared memory: state word, the number of notifications (the futex word) and
/// of the waiters, so that a notification without waiters costs no system call.
#[repr(C)]
struct Repr {
    header: super::Header,
    sequence: AtomicU32,
    waiters: AtomicU32,
}

/// A condition variable shared between processes, used with a [`Mutex`](super::Mutex): wait
/// until another process changes the data and notifies.
///
/// Our own condition variable on a futex word (no glibc object): a count of notifications that
/// waiters sleep on, and a count of waiters. Waits may wake spuriously: check the condition in
/// a loop. Any bytes are a valid state: garbage written over it costs spurious wake-ups or a
/// system call per notification, and a wake-up it loses (by zeroing the count of waiters) is
/// seen by the waiter within 100 ms. Timeouts are measured on `CLOCK_MONOTONIC`.
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
/// while guard.get()? == 0 {
///     let (again, result) = changed.wait_timeout(guard, Duration::from_millis(10))?;
///     guard = again.into_guard();
///     if result.timed_out() {
///         break;
///     }
/// }
/// drop(guard);
///
/// // The notifier: change the data under the lock, then wake every waiter.
/// ready.lock()?.into_guard().set(1)?;
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
        let place = place(shm, offset)?;
        place.initialise(Kind::Condvar, 0, || {
            init_raw(&place);
            Ok(())
        })?;
        Ok(Condvar { place })
    }

    /// Uses the condition variable already at `offset` of `shm`, without touching it.
    pub fn attach_at(shm: &Arc<SharedMemory>, offset: usize) -> Result<Condvar> {
        let place = place(shm, offset)?;
        place.attach(Kind::Condvar, 0)?;
        Ok(Condvar { place })
    }

    /// Makes the condition variable if the place is unused, else attaches; says which.
    pub fn init_or_attach_at(shm: &Arc<SharedMemory>, offset: usize) -> Result<(Condvar, Outcome)> {
        let place = place(shm, offset)?;
        let outcome = place.initialise_or_attach(Kind::Condvar, 0, || {
            init_raw(&place);
            Ok(())
        })?;
        Ok((Condvar { place }, outcome))
    }

    /// Releases the lock of `guard`, waits for a notification, and takes the lock again.
    ///
    /// Gives [`LockResult::OwnerDied`] if a process died holding the lock meanwhile. Waiting
    /// with a guard that is not [consistent](MutexGuard::is_consistent) releases a broken
    /// lock: it becomes unusable, and this fails.
    pub fn wait<'a, T: Pod>(&self, guard: MutexGuard<'a, T>) -> Result<LockResult<MutexGuard<'a, T>>> {
        self.wait_until(guard, None).map(|(result, _)| result)
    }

    /// [`wait`](Self::wait), for at most `timeout`. The time bounds the wait for a
    /// notification; taking the lock again afterwards waits as [`Mutex::lock`](super::Mutex::lock)
    /// does.
    pub fn wait_timeout<'a, T: Pod>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> Result<(LockResult<MutexGuard<'a, T>>, WaitTimeoutResult)> {
        let deadline = Instant::now().checked_add(timeout);
        let (result, timed_out) = self.wait_until(guard, Some(deadline.unwrap_or_else(far_future)))?;
        Ok((result, WaitTimeoutResult(timed_out)))
    }

    /// Releases the lock, sleeps until a notification or the deadline, and retakes the lock;
    /// says whether the deadline passed.
    fn wait_until<'a, T: Pod>(
        &self,
        guard: MutexGuard<'a, T>,
        deadline: Option<Instant>,
    ) -> Result<(LockResult<MutexGuard<'a, T>>, bool)> {
        let repr = self.repr();
        // Read under the lock: a notifier that changes the data under the lock after this
        // notifies after this too, and the change of the count is seen.
        let seen = repr.sequence.load(Ordering::SeqCst);
        // SeqCst with `notify`: either it sees this waiter, or this sees its notification.
        repr.waiters.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| Some(n.saturating_add(1))).ok();
        let (mutex, consistent) = guard.into_held();
        // SAFETY: this thread holds the mutex (the guard said so).
        let code = unsafe { mutex.unlock_raw() };
        if code != 0 {
            repr.waiters.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| Some(n.saturating_sub(1))).ok();
            // Not released (garbage written over the held mutex): it may still be on this
            // thread's robust list, so the guard given up stays counted and its memory mapped
            // (see `Drop` of `Mutex`).
            return Err(pthread_error(self.place.object(), "wait", code));
        }
        let outcome = self.sleep(seen, deadline);
        repr.waiters.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| Some(n.saturating_sub(1))).ok();
        let code = mutex.lock_raw();
        let result =
            Self::retaken(mutex, code, consistent).map_err(|code| pthread_error(self.place.object(), "wait", code))?;
        Ok((result, outcome?))
    }

    /// Sleeps until the count of notifications differs from `seen` or the deadline passes;
    /// whether it passed.
    fn sleep(&self, seen: u32, deadline: Option<Instant>) -> Result<bool> {
        let sequence = &self.repr().sequence;
        while sequence.load(Ordering::SeqCst) == seen {
            // SAFETY: the word lies in the condition variable, mapped while `self` lives.
            match unsafe { futex::wait(sequence.as_ptr(), seen, deadline) } {
                Ok(Woken::LookAgain) => {}
                Ok(Woken::DeadlinePassed) => return Ok(true),
                Err(errno) => return Err(Error::Os { object: self.place.object(), operation: "futex wait", errno }),
            }
        }
        Ok(false)
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
        self.notify(1);
        Ok(())
    }

    /// Wakes every waiting thread, in every process.
    pub fn notify_all(&self) -> Result<()> {
        self.notify(u32::MAX);
        Ok(())
    }

    fn notify(&self, count: u32) {
        let repr = self.repr();
        repr.sequence.fetch_add(1, Ordering::SeqCst);
        if repr.waiters.load(Ordering::SeqCst) > 0 {
            // SAFETY: the word lies in the condition variable, mapped while `self` lives.
            unsafe { futex::wake(repr.sequence.as_ptr(), count) };
        }
    }

    /// The shared memory object the condition variable lives in.
    pub fn shared_memory(&self) -> &Arc<SharedMemory> {
        self.place.shm()
    }

    /// Its offset in the shared memory object.
    pub fn offset(&self) -> usize {
        self.place.offset()
    }

    fn repr(&self) -> &Repr {
        // SAFETY: `ptr` points to a `Repr` within the mapping (checked by `Place::new`) that the
        // place keeps for the life of `self`; a `Repr` is atomics only, which other processes
        // access concurrently, and any bits are valid.
        unsafe { &*self.place.ptr::<Repr>() }
    }
}

impl fmt::Debug for Condvar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condvar").field("place", &self.place).finish()
    }
}

/// Initialises the condition variable: no notification, no waiter.
fn init_raw(place: &Place) {
    let repr = place.ptr::<Repr>();
    // SAFETY: `repr` points to a `Repr` within the writable mapping (checked by `Place::new`);
    // the stores are atomic.
    unsafe {
        (*repr).sequence.store(0, Ordering::Relaxed);
        (*repr).waiters.store(0, Ordering::Relaxed);
    }
}

/// The place at `offset` of `shm` for a `Repr`, with its atomics claimed.
fn place(shm: &Arc<SharedMemory>, offset: usize) -> Result<Place> {
    let place = Place::new::<Repr>(shm, offset)?;
    place.claim::<AtomicU32>(std::mem::offset_of!(Repr, sequence), 2)?;
    Ok(place)
}
