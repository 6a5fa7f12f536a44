//! Process-shared locks that live in shared memory: a robust [`Mutex`] that survives a crashed
//! owner, a [`RwLock`] and a [`Condvar`] with timed waits.
//!
//! Each object is placed at an offset of a [`SharedMemory`] and is made there exactly once:
//! a *state word* before it says whether the bytes are unused (0), being initialised, or a
//! ready object of a given kind. [`Mutex::init_at`] claims an unused place and initialises it;
//! [`Mutex::attach_at`] uses the object already there and never initialises it again, so a lock
//! that another process holds stays held; [`Mutex::init_or_attach_at`] does whichever applies
//! and says which. Attaching as the wrong kind (or the wrong data type) is a clear error.
//!
//! The handles keep their memory mapped: they hold an [`Arc`] of the [`SharedMemory`].
//!
//! # The data: plain bytes, copied in and out
//!
//! `Mutex<T>` and `RwLock<T>` protect a `T` stored right after the lock. `T` must be
//! [`Pod`] (`bytemuck::Pod`): plain data that is valid for any bit pattern and has no padding.
//! Both properties are needed because the bytes are shared with other processes, which may be
//! built from other code, may die half-way through an update (see [`LockResult::OwnerDied`]),
//! or may not play by the rules: whatever bytes are there must still make a valid `T`, and a
//! `T` must be copyable out as bytes. Guards therefore hand out copies
//! ([`MutexGuard::get`], [`MutexGuard::set`], [`MutexGuard::update`]) made with the copy of
//! `SharedMemory::read_at`/`write_at`, never `&T` or `&mut T`: a process that writes the bytes
//! without the lock (or `SharedMemory::write_at` in this one) gives torn values, not undefined
//! behaviour. Should another process shrink the object under a held lock, these methods
//! return the error of the fault, which names the object ([`Error::Shrunk`]); `set` may have
//! stored part of the value (on `x86_64` and `aarch64`; elsewhere the copy is not fault-safe,
//! and the lock calls of glibc on the same object are not fault-safe anywhere).
//!
//! # Trust, and garbage
//!
//! The [`Mutex`] is glibc's robust, process-shared pthread mutex (only glibc and the kernel
//! keep the robust list that frees a dead owner's locks). A [`Semaphore`](crate::Semaphore)
//! keeps glibc's `sem_t` layout, so that programs using `sem_open` share it, but its waits and
//! posts are ipcmem's own. [`RwLock`], [`Condvar`] and [`Event`](crate::Event) are ipcmem's own,
//! on futex words.
//!
//! Every process that can write the memory can break these objects (by overwriting their
//! bytes), as with any shared-memory lock; the state word catches the honest mistakes (wrong
//! offset, wrong kind, not yet initialised). What garbage (a stray `write_at`, another process)
//! can and cannot do:
//!
//! - **Semaphores, read-write locks, condition variables, events**: any bytes are a valid
//!   state. No call aborts, and no timed call waits past its deadline. Garbage gives wrong
//!   counts, spurious wake-ups, late ones (a parked waiter looks at its word at least every
//!   100 ms, so a wake-up lost because garbage zeroed a count of waiters comes at most that
//!   late), or a lock that reads as held for ever: the untimed calls ([`RwLock::read`],
//!   [`RwLock::write`]) then wait for ever, as they do for a holder that died; the timed ones
//!   time out. C programs that use the semaphore through glibc's `sem_*` calls run glibc's
//!   code, which garbage can still make abort.
//! - **Mutexes**: before every call into glibc, ipcmem checks the word that tells glibc what
//!   kind of mutex it is (garbage there sends glibc down paths that abort). Garbage over a
//!   mutex that no thread holds then gives an error, a timeout, [`LockResult::OwnerDied`] or a
//!   lock that reads as held ([`Mutex::lock`] then waits for ever; [`Mutex::lock_timeout`]
//!   times out). Two things remain beyond any check. Garbage written while a thread *holds*
//!   the mutex does more than break it: glibc links the robust mutexes a thread holds through
//!   pointers stored inside them, and follows them when the thread unlocks, so bytes written
//!   there can make the holder write to memory it never meant to. And garbage written by
//!   another process between ipcmem's check and glibc's read of the word is not caught. Share
//!   robust mutexes only with processes trusted as much as this one, and never write a lock's
//!   bytes other than through its handle: that is the promise the `unsafe` constructors of
//!   [`Mutex`] ask for, since safe code of this process (`write_at`) could otherwise break it.
//!
//! Requires glibc 2.34 or later (the `*_clock*` calls, used to wait on `CLOCK_MONOTONIC`).

mod condvar;
pub(crate) mod futex;
mod mutex;
mod rwlock;

use std::alloc::Layout;
use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use bytemuck::Pod;
use rustix::io::Errno;

pub use condvar::{Condvar, WaitTimeoutResult};
pub use mutex::{LockResult, Mutex, MutexGuard};
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::error::{Error, Result};
use crate::shm::{Outcome, SharedMemory};

/// What a placed object is; recorded in its state word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Semaphore = 1,
    Mutex = 2,
    RwLock = 3,
    Condvar = 4,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Semaphore, Kind::Mutex, Kind::RwLock, Kind::Condvar];

    fn word(self, phase: u32) -> u32 {
        STATE_MAGIC | (self as u32) << 4 | phase
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Semaphore => "semaphore",
            Kind::Mutex => "mutex",
            Kind::RwLock => "read-write lock",
            Kind::Condvar => "condition variable",
        }
    }
}

/// The high bits of every non-zero state word, so that stray bytes are unlikely to look like an
/// object.
const STATE_MAGIC: u32 = 0x4950_5300;
/// State word phase: an initialiser has claimed the place and is filling it.
const INITIALISING: u32 = 1;
/// State word phase: the object is ready.
const READY: u32 = 2;
/// How long attaching waits for an object that another process is initialising.
const ATTACH_WAIT: Duration = Duration::from_secs(1);

/// The 8 bytes before every placed object: its state word and the size of its data, so that
/// attaching as `Mutex<u64>` what was made as `Mutex<u32>` fails.
#[repr(C, align(8))]
pub(crate) struct Header {
    state: AtomicU32,
    data_size: AtomicU32,
}

/// A place in a shared memory object, checked for bounds, alignment and write access, that
/// keeps the memory mapped.
pub(crate) struct Place {
    shm: Arc<SharedMemory>,
    offset: usize,
    base: NonNull<u8>,
}

// SAFETY: a `Place` is an `Arc` and an address into the mapping that the `Arc` keeps alive; it
// grants no access by itself, and the objects built on it access the memory only through
// atomics and thread-safe libc calls.
unsafe impl Send for Place {}
// SAFETY: as above.
unsafe impl Sync for Place {}

impl Place {
    /// Checks that an `R` fits at `offset` of `shm`, aligned, in a writable mapping.
    pub(crate) fn new<R>(shm: &Arc<SharedMemory>, offset: usize) -> Result<Place> {
        let layout = Layout::new::<R>();
        if shm.is_readonly() {
            return Err(Error::ReadOnly { object: shm.id().to_string() });
        }
        if offset.checked_add(layout.size()).is_none_or(|end| end > shm.len()) {
            return Err(Error::OutOfBounds {
                object: shm.id().to_string(),
                offset,
                length: layout.size(),
                len: shm.len(),
            });
        }
        // SAFETY: `offset + size <= len` (checked above): the address is within the mapping.
        let base = unsafe { shm.as_mut_ptr().add(offset) };
        if !base.cast::<R>().is_aligned() {
            return Err(Error::Misaligned { object: shm.id().to_string(), offset, align: layout.align() });
        }
        // Every representation placed here starts with two 32-bit atomic words (the `Header`
        // of the sync objects and semaphores, the count and waiters of an `Event`): claimed at
        // that width, so that no 64-bit view of the same bytes can race with them.
        shm.claim::<AtomicU32>(offset, 2)?;
        let base = NonNull::new(base).ok_or_else(|| Error::InvalidArgument {
            object: shm.id().to_string(),
            reason: "the mapping has no address".into(),
        })?;
        Ok(Place { shm: Arc::clone(shm), offset, base })
    }

    /// Claims `count` atomic words of type `A` at `at` bytes into the place (see
    /// `SharedMemory::atomic_u32s`): the atomics a representation uses past its first two
    /// words, so that no view of another width can be made over them.
    pub(crate) fn claim<A>(&self, at: usize, count: usize) -> Result<()> {
        self.shm.claim::<A>(self.offset + at, count).map(drop)
    }

    /// The object's address, as a pointer to its representation `R` (the type given to `new`).
    pub(crate) fn ptr<R>(&self) -> *mut R {
        self.base.as_ptr().cast()
    }

    pub(crate) fn shm(&self) -> &Arc<SharedMemory> {
        &self.shm
    }

    pub(crate) fn offset(&self) -> usize {
        self.offset
    }

    /// A copy of the `T` at `data`; a fault of the mapping (the object shrunk under the lock)
    /// is an error that names the object and the cause.
    ///
    /// # Safety
    /// `data` lies within this place's mapping, which the place keeps.
    pub(crate) unsafe fn load<T: bytemuck::Pod>(&self, data: *const T) -> Result<T> {
        let mut value = T::zeroed();
        // SAFETY: the caller's promise; the copy is sound against concurrent access (see
        // `access`), and any bytes make a valid `T` (`Pod`).
        let loaded = unsafe { crate::access::load(data.cast(), bytemuck::bytes_of_mut(&mut value)) };
        loaded.map(|()| value).map_err(|fault| self.fault_error(fault, data, size_of::<T>()))
    }

    /// Stores `value` at `data`; a fault (the object shrunk under the lock, the data perhaps
    /// partly written) is an error that names the object and the cause.
    ///
    /// # Safety
    /// `data` lies within this place's mapping, writable, which the place keeps.
    pub(crate) unsafe fn store<T: bytemuck::Pod>(&self, data: *mut T, value: T) -> Result<()> {
        // SAFETY: the caller's promise; the copy is sound against concurrent access.
        let stored = unsafe { crate::access::store(data.cast(), bytemuck::bytes_of(&value)) };
        stored.map_err(|fault| self.fault_error(fault, data.cast_const(), size_of::<T>()))
    }

    /// The error of `fault` during an access of `length` bytes at `data`: the offset it names
    /// is the data's in the object, not the place's.
    fn fault_error<T>(&self, fault: crate::access::Fault, data: *const T, length: usize) -> Error {
        let offset = (data as usize).wrapping_sub(self.shm.as_ptr() as usize);
        self.shm.fault_error(fault, offset, length)
    }

    /// The object as errors name it: `"/name at offset 64"`.
    pub(crate) fn object(&self) -> String {
        format!("{} at offset {}", self.shm.id(), self.offset)
    }

    fn header(&self) -> &Header {
        // SAFETY: every representation placed with a state starts with a `Header` (repr(C)),
        // checked in bounds and aligned by `new`; a `Header` is atomics only, which other
        // processes may access concurrently; the `Arc` keeps the mapping for the life of `self`.
        unsafe { &*self.ptr::<Header>() }
    }

    /// Claims the unused place for a `kind` holding `data_size` bytes of data and runs `init`
    /// on it; fails if anything is there already.
    pub(crate) fn initialise(&self, kind: Kind, data_size: usize, init: impl FnOnce() -> Result<()>) -> Result<()> {
        let data_size = self.data_size(data_size)?;
        let state = &self.header().state;
        if let Err(found) = state.compare_exchange(0, kind.word(INITIALISING), Ordering::Acquire, Ordering::Acquire) {
            return Err(self.occupied(kind, found));
        }
        if let Err(error) = init() {
            state.store(0, Ordering::Release);
            return Err(error);
        }
        self.header().data_size.store(data_size, Ordering::Relaxed);
        // Release: whoever sees READY sees the initialised object.
        state.store(kind.word(READY), Ordering::Release);
        Ok(())
    }

    /// Checks that a ready `kind` holding `data_size` bytes of data is there, waiting a little
    /// for one being initialised. Never touches the object.
    pub(crate) fn attach(&self, kind: Kind, data_size: usize) -> Result<()> {
        let data_size = self.data_size(data_size)?;
        let deadline = Instant::now() + ATTACH_WAIT;
        loop {
            let found = self.header().state.load(Ordering::Acquire);
            if found == kind.word(READY) {
                return self.check_data_size(kind, data_size);
            }
            if found != kind.word(INITIALISING) || Instant::now() > deadline {
                return Err(Error::InvalidArgument {
                    object: self.object(),
                    reason: format!("cannot attach a {}: {}", kind.name(), describe(found)),
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Initialises the place if it is unused, else attaches to the `kind` there.
    pub(crate) fn initialise_or_attach(
        &self,
        kind: Kind,
        data_size: usize,
        init: impl FnOnce() -> Result<()>,
    ) -> Result<Outcome> {
        match self.initialise(kind, data_size, init) {
            Ok(()) => Ok(Outcome::Created),
            Err(Error::AlreadyExists { .. }) => self.attach(kind, data_size).map(|()| Outcome::Opened),
            Err(error) => Err(error),
        }
    }

    fn data_size(&self, data_size: usize) -> Result<u32> {
        u32::try_from(data_size).map_err(|_| Error::InvalidArgument {
            object: self.object(),
            reason: format!("{data_size} bytes of data: a lock protects at most 4 GiB"),
        })
    }

    fn check_data_size(&self, kind: Kind, expected: u32) -> Result<()> {
        let found = self.header().data_size.load(Ordering::Relaxed);
        if found == expected {
            return Ok(());
        }
        Err(Error::InvalidArgument {
            object: self.object(),
            reason: format!("the {} there protects {found} bytes of data, not {expected}", kind.name()),
        })
    }

    /// The error for an initialisation that found `found` in the state word.
    fn occupied(&self, kind: Kind, found: u32) -> Error {
        if found == kind.word(READY) || found == kind.word(INITIALISING) {
            return Error::AlreadyExists { object: self.object() };
        }
        Error::InvalidArgument {
            object: self.object(),
            reason: format!("cannot initialise a {} there: {}", kind.name(), describe(found)),
        }
    }
}

impl fmt::Debug for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.object())
    }
}

/// What a state word says is at a place.
fn describe(found: u32) -> String {
    if found == 0 {
        return "nothing has been initialised there".into();
    }
    for kind in Kind::ALL {
        if found == kind.word(READY) {
            return format!("a {} is there", kind.name());
        }
        if found == kind.word(INITIALISING) {
            return format!("a {} is being initialised there (or its initialiser died half-way)", kind.name());
        }
    }
    format!("the bytes there are no ipcmem object (state word {found:#010x})")
}

/// `CLOCK_MONOTONIC` now plus `timeout`, as the absolute deadline of the `*_clock*` calls;
/// saturates far in the future.
pub(crate) fn monotonic_deadline(timeout: Duration) -> libc::timespec {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut now) };
    let nanos = u64::try_from(now.tv_nsec).unwrap_or(0) + u64::from(timeout.subsec_nanos());
    let secs =
        u64::try_from(now.tv_sec).unwrap_or(0).saturating_add(timeout.as_secs()).saturating_add(nanos / 1_000_000_000);
    libc::timespec {
        tv_sec: libc::time_t::try_from(secs).unwrap_or(libc::time_t::MAX),
        // Below 10^9: fits any c_long.
        tv_nsec: libc::c_long::try_from(nanos % 1_000_000_000).unwrap_or(0),
    }
}

/// The error of a pthread call that returned `code`.
pub(crate) fn pthread_error(object: String, operation: &'static str, code: libc::c_int) -> Error {
    let errno = Errno::from_raw_os_error(code);
    match errno {
        Errno::DEADLK => Error::InvalidArgument {
            object,
            reason: format!("{operation}: this thread holds the lock already (it would deadlock)"),
        },
        Errno::NOTRECOVERABLE => Error::InvalidArgument {
            object,
            reason: format!(
                "{operation}: the lock is unusable: an owner died holding it, and the next owner \
                 released it without marking the state consistent"
            ),
        },
        errno => Error::Os { object, operation, errno },
    }
}

// glibc 2.30+ calls that wait until a deadline on a chosen clock; the `libc` crate lacks them.
unsafe extern "C" {
    pub(crate) fn pthread_mutex_clocklock(
        mutex: *mut libc::pthread_mutex_t,
        clock: libc::clockid_t,
        abstime: *const libc::timespec,
    ) -> libc::c_int;
}
