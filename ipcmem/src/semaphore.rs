//! [`Semaphore`]: POSIX semaphores shared between processes, named or placed in shared memory,
//! with the calls of the Julia package (`Semaphore`, `post`, `wait`, `trywait`, `timedwait`,
//! `sem[]`, `rm`).
//!
//! A *named* semaphore is the file `/dev/shm/sem.NAME`, the very object glibc's `sem_open("/NAME")`
//! makes and opens, so C and Python programs share it. ipcmem makes it as it makes shared memory:
//! complete before its name appears, with the exact mode asked for, and volatile unless told
//! otherwise (removed when the last ipcmem handle, in any process, is gone).
//!
//! An *anonymous* semaphore lives at an offset of a [`SharedMemory`], after a state word that
//! makes sure it is initialised exactly once (see [`crate::sync`]).
//!
//! Both are glibc's `sem_t`, made by `sem_init`, and on 64-bit targets laid out as glibc lays it
//! out: one 64-bit word whose low 32 bits are the count (the futex word waiters sleep on) and
//! whose high 32 bits count the waiters, then a flag word and padding. The waits and posts are
//! ipcmem's own, on that layout, so that they interoperate with glibc's `sem_wait` and
//! `sem_post` in other programs while garbage in the bytes never aborts this process nor blocks
//! it past a deadline (glibc's own calls abort on some garbage): see [`crate::sync`].

use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{last_errno, Error, NameRule, Result};
use crate::posix;
use crate::shm::{Outcome, SharedMemory, ShmOptions};
use crate::sync::futex::{self, far_future, Woken};
use crate::sync::{Kind, Place};

// The waits follow glibc's `sem_t` layout of 64-bit targets: one 64-bit word with the count and
// the number of waiters, so that C programs using `sem_open` share the semaphore.
#[cfg(not(target_pointer_width = "64"))]
compile_error!("ipcmem's semaphores follow the 64-bit layout of glibc's sem_t");

/// The largest value a semaphore can hold (`SEM_VALUE_MAX` of glibc).
pub const SEM_VALUE_MAX: u32 = i32::MAX.cast_unsigned();

/// The prefix glibc gives the file of a named semaphore in `/dev/shm`.
const FILE_PREFIX: &str = "sem.";

/// The layout of an anonymous semaphore: state word, then the `sem_t`.
#[repr(C)]
struct Repr {
    header: crate::sync::Header,
    sem: libc::sem_t,
}

/// A counting semaphore shared between processes: [`post`](Self::post) adds one,
/// [`wait`](Self::wait) waits until it can take one.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use ipcmem::{Semaphore, SharedMemory};
///
/// // Named: /dev/shm/sem.NAME, as sem_open makes it; another process opens it by name.
/// let name = format!("/ipcmem-doc-sem-{}", std::process::id());
/// let tickets = Semaphore::create(name.as_str(), 2)?; // volatile, mode 0o600
/// let other = Semaphore::open(name.as_str())?;
/// other.wait()?;
/// assert_eq!(tickets.value(), 1);
///
/// // Anonymous: inside shared memory, at an offset aligned to Semaphore::ALIGN.
/// let shm_name = format!("/ipcmem-doc-sem-shm-{}", std::process::id());
/// let shm = Arc::new(SharedMemory::create(shm_name.as_str(), 4096)?);
/// let frames = Semaphore::init_at(&shm, 64, 0)?;
/// let same = Semaphore::attach_at(&shm, 64)?; // never re-initialises
/// assert!(!same.try_wait()?); // zero: would block
/// frames.post()?;
/// assert!(same.wait_timeout(Duration::from_secs(1))?);
/// # Ok::<(), ipcmem::Error>(())
/// ```
pub struct Semaphore {
    sem: NonNull<libc::sem_t>,
    origin: Origin,
}

/// Where a semaphore lives; keeps its memory mapped.
enum Origin {
    Named { name: String, shm: SharedMemory },
    Placed(Place),
}

// SAFETY: `sem` points into memory that `origin` keeps mapped for the life of the handle; the
// semaphore is accessed through atomics and futex calls only, which are thread-safe (it is
// shared with other processes anyway).
unsafe impl Send for Semaphore {}
// SAFETY: as above: every method goes through atomics and futex calls.
unsafe impl Sync for Semaphore {}

/// Options for making a named [`Semaphore`]: its mode and whether it is volatile.
///
/// ```
/// use ipcmem::{Outcome, Semaphore};
/// let name = format!("/ipcmem-doc-semopt-{}", std::process::id());
/// let (sem, outcome) = Semaphore::options().perms(0o660).open_or_create(name.as_str(), 0)?;
/// assert_eq!(outcome, Outcome::Created);
/// # Ok::<(), ipcmem::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct SemaphoreOptions {
    shm: ShmOptions,
}

impl Default for SemaphoreOptions {
    fn default() -> SemaphoreOptions {
        SemaphoreOptions { shm: ShmOptions::new() }
    }
}

impl SemaphoreOptions {
    /// The defaults: mode 0o600, volatile.
    pub fn new() -> SemaphoreOptions {
        SemaphoreOptions::default()
    }

    /// The 9 permission bits of a new semaphore (default 0o600), exact whatever the umask. The
    /// owner always keeps read and write.
    pub fn perms(mut self, perms: u32) -> SemaphoreOptions {
        self.shm = self.shm.perms(perms);
        self
    }

    /// Whether a new semaphore is removed when the last ipcmem handle to it, in any process, is
    /// gone (default `true`). Programs that open it with `sem_open` do not count.
    pub fn volatile(mut self, volatile: bool) -> SemaphoreOptions {
        self.shm = self.shm.volatile(volatile);
        self
    }

    /// Makes the named semaphore `name` (`"/NAME"`) with `value`, as `Semaphore(name, value)`
    /// in Julia; fails with [`Error::AlreadyExists`] if it exists.
    pub fn create(&self, name: &str, value: u32) -> Result<Semaphore> {
        let file = file_name(name)?;
        check_value(name, value)?;
        let shm = self
            .shm
            .create_with(file.as_str(), size_of::<libc::sem_t>(), init_named(value))
            .map_err(|e| renamed(e, name))?;
        Semaphore::named(name, shm)
    }

    /// Opens the named semaphore if it exists, else makes it with `value`; says which.
    pub fn open_or_create(&self, name: &str, value: u32) -> Result<(Semaphore, Outcome)> {
        let file = file_name(name)?;
        check_value(name, value)?;
        let (shm, outcome) = self
            .shm
            .open_or_create_with(file.as_str(), size_of::<libc::sem_t>(), init_named(value))
            .map_err(|e| renamed(e, name))?;
        Ok((Semaphore::named(name, shm)?, outcome))
    }
}

/// Initialises the `sem_t` at the start of a new, still unnamed, semaphore file.
fn init_named(value: u32) -> impl FnOnce(&SharedMemory) {
    move |shm| {
        // SAFETY: the object is new, has no name yet (nobody else can see it), and is at least a
        // `sem_t` long and page aligned. `value` was checked against SEM_VALUE_MAX, the only
        // reason `sem_init` can fail on Linux.
        let code = unsafe { libc::sem_init(shm.as_mut_ptr().cast(), 1, value) };
        debug_assert_eq!(code, 0, "sem_init of a checked value");
    }
}

impl Semaphore {
    /// The bytes an anonymous semaphore takes in shared memory (state word and `sem_t`).
    pub const SIZE: usize = size_of::<Repr>();
    /// The alignment the offset of an anonymous semaphore needs.
    pub const ALIGN: usize = align_of::<Repr>();

    /// The options builder for named semaphores.
    pub fn options() -> SemaphoreOptions {
        SemaphoreOptions::new()
    }

    /// Makes the named semaphore `name` (`"/NAME"`, stored as `/dev/shm/sem.NAME`) with
    /// `value`: volatile, mode 0o600. See [`SemaphoreOptions::create`].
    pub fn create(name: &str, value: u32) -> Result<Semaphore> {
        SemaphoreOptions::new().create(name, value)
    }

    /// Opens the existing named semaphore `name`, as `Semaphore(name)` in Julia; also one made
    /// by `sem_open`.
    pub fn open(name: &str) -> Result<Semaphore> {
        let file = file_name(name)?;
        let shm = SharedMemory::open(file.as_str()).map_err(|e| renamed(e, name))?;
        Semaphore::named(name, shm)
    }

    /// Removes the name of the named semaphore `name`, as `sem_unlink` (and `rm(Semaphore, name)`
    /// in Julia). Handles keep working. A name that does not exist is not an error.
    #[doc(alias = "sem_unlink")]
    pub fn unlink(name: &str) -> Result<()> {
        posix::unlink(&file_name(name)?).map_err(|e| renamed(e, name))
    }

    /// Makes an anonymous semaphore with `value` at `offset` of `shm` (aligned to
    /// [`ALIGN`](Self::ALIGN), [`SIZE`](Self::SIZE) bytes), as `Semaphore(mem, value; offset)` in
    /// Julia. Fails with [`Error::AlreadyExists`] if one is there: a semaphore in use is never
    /// initialised again.
    pub fn init_at(shm: &Arc<SharedMemory>, offset: usize, value: u32) -> Result<Semaphore> {
        let place = place(shm, offset)?;
        check_value(&place.object(), value)?;
        place.initialise(Kind::Semaphore, 0, || init_placed(&place, value))?;
        Ok(Semaphore::placed(place))
    }

    /// Uses the anonymous semaphore already at `offset` of `shm`, as `Semaphore(mem; offset)`
    /// in Julia, without touching its count.
    pub fn attach_at(shm: &Arc<SharedMemory>, offset: usize) -> Result<Semaphore> {
        let place = place(shm, offset)?;
        place.attach(Kind::Semaphore, 0)?;
        Ok(Semaphore::placed(place))
    }

    /// Makes an anonymous semaphore at `offset` if the place is unused, else attaches to the
    /// one there (whose count stays as it is); says which.
    pub fn init_or_attach_at(shm: &Arc<SharedMemory>, offset: usize, value: u32) -> Result<(Semaphore, Outcome)> {
        let place = place(shm, offset)?;
        check_value(&place.object(), value)?;
        let outcome = place.initialise_or_attach(Kind::Semaphore, 0, || init_placed(&place, value))?;
        Ok((Semaphore::placed(place), outcome))
    }

    fn named(name: &str, shm: SharedMemory) -> Result<Semaphore> {
        if shm.len() < size_of::<libc::sem_t>() {
            return Err(Error::InvalidSize {
                object: name.to_owned(),
                size: shm.len() as u64,
                reason: "too small to be a semaphore",
            });
        }
        // A mapping starts on a page boundary: aligned for a `sem_t`.
        let sem = NonNull::new(shm.as_mut_ptr()).map(NonNull::cast::<libc::sem_t>).filter(|sem| sem.is_aligned());
        let sem = sem.ok_or_else(|| Error::InvalidArgument {
            object: name.to_owned(),
            reason: "the mapping is not aligned for a semaphore".into(),
        })?;
        Ok(Semaphore { sem, origin: Origin::Named { name: name.to_owned(), shm } })
    }

    fn placed(place: Place) -> Semaphore {
        let repr = place.ptr::<Repr>();
        // SAFETY: `repr` points to a `Repr` within the mapping (checked by `Place::new`);
        // taking a field's address creates no reference.
        let sem = unsafe { &raw mut (*repr).sem };
        let sem = NonNull::new(sem).unwrap_or(NonNull::dangling());
        Semaphore { sem, origin: Origin::Placed(place) }
    }

    /// The name of a named semaphore (`"/NAME"`); `None` for an anonymous one.
    pub fn name(&self) -> Option<&str> {
        match &self.origin {
            Origin::Named { name, .. } => Some(name),
            Origin::Placed(_) => None,
        }
    }

    /// The shared memory object and offset of an anonymous semaphore; `None` for a named one.
    pub fn placement(&self) -> Option<(&Arc<SharedMemory>, usize)> {
        match &self.origin {
            Origin::Named { .. } => None,
            Origin::Placed(place) => Some((place.shm(), place.offset())),
        }
    }

    /// Removes the name of a named semaphore (if it still names this one); handles keep
    /// working. An anonymous semaphore has no name: remove its shared memory object instead.
    pub fn remove(&self) -> Result<()> {
        match &self.origin {
            Origin::Named { name, shm } => shm.remove().map_err(|e| renamed(e, name)),
            Origin::Placed(place) => Err(Error::InvalidArgument {
                object: place.object(),
                reason: "an anonymous semaphore has no name to remove: remove its shared memory object".into(),
            }),
        }
    }

    /// Adds one to the count, waking a waiter if there is one, as `post(sem)` in Julia.
    ///
    /// Fails if the count is at [`SEM_VALUE_MAX`] (or above it: garbage in the semaphore).
    #[doc(alias = "sem_post")]
    pub fn post(&self) -> Result<()> {
        let data = self.data();
        let mut seen = data.load(Ordering::Relaxed);
        loop {
            let value = count_of(seen);
            if value >= SEM_VALUE_MAX {
                return Err(Error::InvalidArgument {
                    object: self.object(),
                    reason: format!("the count ({value}) is at its largest, SEM_VALUE_MAX ({SEM_VALUE_MAX})"),
                });
            }
            // Release: whoever takes this one sees what was written before the post.
            match data.compare_exchange_weak(seen, seen + 1, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => seen = now,
            }
        }
        if waiters_of(seen) > 0 {
            // SAFETY: the count word lies in the semaphore, mapped while `self` lives.
            unsafe { futex::wake(self.count_word(), 1) };
        }
        Ok(())
    }

    /// Waits until the count is above zero and takes one, as `wait(sem)` in Julia.
    ///
    /// The wait ends at the next [`post`](Self::post), by any process. Should garbage written
    /// over the semaphore have zeroed its count of waiters, so that a post wakes nobody, the
    /// wait still sees the post within 100 ms: its sleeps are that long at most.
    #[doc(alias = "sem_wait")]
    pub fn wait(&self) -> Result<()> {
        self.wait_until(None).map(|_| ())
    }

    /// Takes one if the count is above zero: `Ok(true)`; `Ok(false)` if it is zero (the wait
    /// would block), as `trywait(sem)` in Julia.
    #[doc(alias = "sem_trywait")]
    #[doc(alias = "trywait")]
    pub fn try_wait(&self) -> Result<bool> {
        let data = self.data();
        let mut seen = data.load(Ordering::Relaxed);
        while count_of(seen) > 0 {
            // Acquire: this sees what the poster wrote before its post.
            match data.compare_exchange_weak(seen, seen - 1, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return Ok(true),
                Err(now) => seen = now,
            }
        }
        Ok(false)
    }

    /// Waits at most `timeout` to take one: `Ok(true)` if it did, `Ok(false)` if the time ran
    /// out, as `timedwait(sem, secs)` in Julia. Measured on `CLOCK_MONOTONIC`.
    #[doc(alias = "sem_clockwait")]
    #[doc(alias = "timedwait")]
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        self.wait_until(Some(Instant::now().checked_add(timeout).unwrap_or_else(far_future)))
    }

    /// The waits of glibc's `sem_clockwait`, on its layout, with bounded sleeps: registers as a
    /// waiter (so that posts wake it), sleeps while the count is zero, and takes one.
    fn wait_until(&self, deadline: Option<Instant>) -> Result<bool> {
        if self.try_wait()? {
            return Ok(true);
        }
        let data = self.data();
        let mut seen = update(data, |d| with_waiters(d, waiters_of(d).saturating_add(1)));
        loop {
            if count_of(seen) == 0 {
                // SAFETY: the count word lies in the semaphore, mapped while `self` lives.
                match unsafe { futex::wait(self.count_word(), 0, deadline) } {
                    Ok(Woken::LookAgain) => {}
                    Ok(Woken::DeadlinePassed) => {
                        update(data, |d| with_waiters(d, waiters_of(d).saturating_sub(1)));
                        return Ok(false);
                    }
                    Err(errno) => {
                        update(data, |d| with_waiters(d, waiters_of(d).saturating_sub(1)));
                        return Err(Error::Os { object: self.object(), operation: "futex wait", errno });
                    }
                }
                seen = data.load(Ordering::Relaxed);
                continue;
            }
            let taken = with_waiters(seen - 1, waiters_of(seen).saturating_sub(1));
            match data.compare_exchange_weak(seen, taken, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return Ok(true),
                Err(now) => seen = now,
            }
        }
    }

    /// The current count, as `sem[]` in Julia. Other processes may change it at any time.
    #[doc(alias = "sem_getvalue")]
    pub fn value(&self) -> u32 {
        count_of(self.data().load(Ordering::Relaxed))
    }

    /// The word of glibc's `sem_t` (64-bit layout) that holds the count (low 32 bits) and the
    /// number of waiters (high 32 bits).
    fn data(&self) -> &AtomicU64 {
        // SAFETY: `sem` points to a `sem_t` (32 bytes, aligned to 8) in memory that `origin`
        // keeps mapped for the life of `self`; its first 8 bytes are that word, which every
        // process accesses atomically (glibc as well), and any bits are a valid `AtomicU64`.
        unsafe { &*self.sem.as_ptr().cast::<AtomicU64>() }
    }

    /// The 32-bit half of [`data`](Self::data) that holds the count: the futex word.
    fn count_word(&self) -> *const u32 {
        let offset = usize::from(cfg!(target_endian = "big"));
        // SAFETY: within the 8 bytes of the data word.
        unsafe { self.sem.as_ptr().cast::<u32>().add(offset).cast_const() }
    }

    /// The semaphore as errors name it.
    fn object(&self) -> String {
        match &self.origin {
            Origin::Named { name, .. } => name.clone(),
            Origin::Placed(place) => place.object(),
        }
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore").field("object", &self.object()).field("value", &self.value()).finish()
    }
}

/// The count in the data word of a `sem_t`.
fn count_of(data: u64) -> u32 {
    // The low 32 bits: truncation intended.
    #[allow(clippy::cast_possible_truncation)]
    let count = data as u32;
    count
}

/// The number of registered waiters in the data word of a `sem_t`.
fn waiters_of(data: u64) -> u32 {
    // The high 32 bits: fits.
    #[allow(clippy::cast_possible_truncation)]
    let waiters = (data >> 32) as u32;
    waiters
}

/// The data word with its number of waiters replaced by `waiters`.
fn with_waiters(data: u64, waiters: u32) -> u64 {
    (u64::from(waiters) << 32) | u64::from(count_of(data))
}

/// Atomically replaces the data word by `change` of it; returns the new word.
fn update(data: &AtomicU64, change: impl Fn(u64) -> u64) -> u64 {
    let mut seen = data.load(Ordering::Relaxed);
    loop {
        match data.compare_exchange_weak(seen, change(seen), Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return change(seen),
            Err(now) => seen = now,
        }
    }
}

/// Initialises the `sem_t` of an anonymous semaphore while its state word says "initialising".
fn init_placed(place: &Place, value: u32) -> Result<()> {
    let repr = place.ptr::<Repr>();
    // SAFETY: `repr` points to a `Repr` within the mapping (checked by `Place::new`), which no
    // other process touches while the state word says "initialising"; process-shared.
    if unsafe { libc::sem_init(&raw mut (*repr).sem, 1, value) } == 0 {
        return Ok(());
    }
    Err(Error::Os { object: place.object(), operation: "sem_init", errno: last_errno() })
}

/// The shared memory name of the file of named semaphore `name`: `/NAME` gives `/sem.NAME`.
pub(crate) fn file_name(name: &str) -> Result<String> {
    posix::check_name(name)?;
    if name.len() - 1 + FILE_PREFIX.len() > 255 {
        return Err(Error::InvalidName { name: name.to_owned(), rule: NameRule::TooLong });
    }
    Ok(format!("/{FILE_PREFIX}{}", &name[1..]))
}

fn check_value(object: &str, value: u32) -> Result<()> {
    if value > SEM_VALUE_MAX {
        return Err(Error::InvalidArgument {
            object: object.to_owned(),
            reason: format!("initial value {value} is above SEM_VALUE_MAX ({SEM_VALUE_MAX})"),
        });
    }
    Ok(())
}

/// `error` about the semaphore's file (`/sem.NAME`), told about the semaphore (`/NAME`).
fn renamed(mut error: Error, name: &str) -> Error {
    match &mut error {
        Error::NotFound { object, hint } => {
            name.clone_into(object);
            *hint = hint.or(Some("no named semaphore: it would be the file /dev/shm/sem.NAME"));
        }
        Error::AlreadyExists { object }
        | Error::PermissionDenied { object, .. }
        | Error::InvalidSize { object, .. }
        | Error::LimitExceeded { object, .. }
        | Error::InvalidArgument { object, .. }
        | Error::Os { object, .. } => name.clone_into(object),
        Error::InvalidName { name: shown, .. } => name.clone_into(shown),
        // The others are about accesses to a mapping, which making or opening does not do.
        _ => {}
    }
    error
}

/// The place at `offset` of `shm` for a `Repr`, with its atomics claimed.
fn place(shm: &Arc<SharedMemory>, offset: usize) -> Result<Place> {
    let place = Place::new::<Repr>(shm, offset)?;
    place.claim::<AtomicU64>(std::mem::offset_of!(Repr, sem), 1)?;
    Ok(place)
}
