//! [`Event`]: a wake-up between processes on a word of shared memory, spinning briefly, then
//! parking on a futex.

use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::thread::futex;

use crate::error::{Error, Result};
use crate::shm::{AsSharedMemory, SharedMemory};
use crate::sync::futex::RECHECK;

/// How many checks of the word go between two looks at the clock while spinning.
const CHECKS_PER_CLOCK_READ: u32 = 64;
/// How often a spinning waiter yields its CPU (once): a notifier that the scheduler put on the
/// same CPU then runs within this time rather than at the end of the spin budget. Seldom, so
/// that a notification rarely comes during the yield (a system call): yielding at each look at
/// the clock made a spinning stream reader about 0.2 µs later at the median than one that never
/// yields. The default budget (20 µs) is shorter: it never yields.
const YIELD_EVERY: Duration = Duration::from_micros(50);

/// The layout in shared memory: the notification count (the futex word) and the number of
/// parked waiters, so that a notification without waiters costs no system call.
#[repr(C)]
struct Repr {
    count: AtomicU32,
    waiters: AtomicU32,
}

/// An event shared between processes: waiters sleep until a notifier says something changed.
///
/// The event is a count of notifications in shared memory ([`SIZE`](Self::SIZE) bytes, aligned
/// to [`ALIGN`](Self::ALIGN)). A waiter reads it ([`value`](Self::value)), checks its own
/// condition, and if it must wait, waits until the count differs from what it read
/// ([`wait`](Self::wait)), so a notification between the check and the wait is never lost.
/// [`notify_one`](Self::notify_one) and [`notify_all`](Self::notify_all) add one to the count and
/// wake one or all of the parked waiters, in any process.
///
/// A waiter first spins on the word for its *spin budget* ([`with_spin`](Self::with_spin),
/// default [`DEFAULT_SPIN`](Self::DEFAULT_SPIN), none on a single CPU), which answers in about
/// the time the hardware takes to pass a cache line between cores, then parks on a futex
/// (`FUTEX_WAIT`, shared between processes), which costs a system call and a wake-up on each
/// side. A budget of zero parks at once. A waiter that spins longer than 50 µs also yields the
/// CPU once every 50 µs, so that a notifier that the scheduler put on the same CPU gets to run
/// instead of waiting for the budget to run out.
///
/// As with a condition variable, a wait may return without its waiter being the one woken (a
/// waiter still spinning sees any change): check the condition again. Zeroed memory is a valid
/// event, and so is any other value: there is nothing to initialise and nothing a stray write
/// can break beyond a spurious wake-up or a late one: a parked waiter looks at the count at
/// least every 100 ms, so that one whose wake-up was lost (garbage zeroed the waiter count, and
/// the notifier saw no one to wake) returns at most that late. A waiter killed while parked
/// leaves the waiter count raised, which only makes each later notification pay a system call.
///
/// The event may live in any handle that owns a mapping ([`AsSharedMemory`]: a
/// [`SharedMemory`], a [`SharedArray`](crate::SharedArray), …), read-write or **read-only**.
/// A read-only handle can wait (`FUTEX_WAIT` needs only read access) but cannot register as a
/// parked waiter, so a notification skips its system call when only read-only waiters are
/// parked: they are woken by the notifier's [`wake_all_parked`](Self::wake_all_parked), or by
/// the end of their timeout. Notifying through a read-only handle does nothing (returns 0).
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use ipcmem::{Event, SharedMemory};
///
/// let name = format!("/ipcmem-doc-event-{}", std::process::id());
/// let shm = Arc::new(SharedMemory::create(name.as_str(), 4096)?);
/// let frame_ready = Event::attach_at(&shm, 0)?;
///
/// // The waiter (in real use, another process): read the count, check, then wait for a change.
/// let seen = frame_ready.value();
/// // ... nothing to do yet ...
/// frame_ready.notify_all(); // the producer, here before the wait: the wait returns at once
/// let now = frame_ready.wait_timeout(seen, Duration::from_secs(1))?;
/// assert_eq!(now, Some(seen.wrapping_add(1)));
/// # Ok::<(), ipcmem::Error>(())
/// ```
pub struct Event {
    /// Keeps the mapping alive for as long as the event is used.
    host: Arc<dyn AsSharedMemory>,
    offset: usize,
    repr: NonNull<Repr>,
    readonly: bool,
    spin: Duration,
}

// SAFETY: an `Event` is an `Arc` of a thread-safe handle and an address into the mapping that
// the handle keeps alive; the memory is accessed only through atomics and futex calls.
unsafe impl Send for Event {}
// SAFETY: as above.
unsafe impl Sync for Event {}

impl Event {
    /// The bytes an event takes in shared memory.
    pub const SIZE: usize = size_of::<Repr>();
    /// The alignment its offset needs.
    pub const ALIGN: usize = align_of::<Repr>();
    /// How long a waiter spins before it parks, unless told otherwise: about the cost of
    /// parking and waking, so that spinning never costs much more than parking would.
    pub const DEFAULT_SPIN: Duration = Duration::from_micros(20);

    /// The event at `offset` of the memory of `host` ([`SIZE`](Self::SIZE) bytes, aligned to
    /// [`ALIGN`](Self::ALIGN)), with the default spin budget; `host` is any handle that owns a
    /// mapping, read-write or read-only (see the type's documentation). Nothing is
    /// initialised: the bytes are used as they are (zero in new shared memory). Fails on a
    /// misaligned offset or one out of bounds.
    pub fn attach_at<H: AsSharedMemory>(host: &Arc<H>, offset: usize) -> Result<Event> {
        let shm = host.as_shared_memory();
        let object = || shm.id().to_string();
        if offset.checked_add(Event::SIZE).is_none_or(|end| end > shm.len()) {
            return Err(Error::OutOfBounds { object: object(), offset, length: Event::SIZE, len: shm.len() });
        }
        // In bounds (checked above): the address lies within the mapping; aligned: checked below.
        #[allow(clippy::cast_ptr_alignment)]
        let address = shm.as_mut_ptr().wrapping_add(offset).cast::<Repr>();
        if !address.is_aligned() {
            return Err(Error::Misaligned { object: object(), offset, align: Event::ALIGN });
        }
        let repr = NonNull::new(address)
            .ok_or_else(|| Error::InvalidArgument { object: object(), reason: "the mapping has no address".into() })?;
        let readonly = shm.is_readonly();
        if !readonly {
            // The count and waiter words are 32-bit atomics: claimed at that width, so that no
            // view of another width can be made over them through this mapping (see
            // `access::claims`). A read-only handle only loads, and loads of any width may race.
            shm.claim::<AtomicU32>(offset, 2)?;
        }
        let single_cpu = std::thread::available_parallelism().is_ok_and(|n| n.get() == 1);
        let spin = if single_cpu { Duration::ZERO } else { Event::DEFAULT_SPIN };
        let host: Arc<dyn AsSharedMemory> = Arc::clone(host) as Arc<dyn AsSharedMemory>;
        Ok(Event { host, offset, repr, readonly, spin })
    }

    /// Whether the event was attached through a read-only handle: it can wait, not notify.
    pub fn is_readonly(&self) -> bool {
        self.readonly
    }

    /// This handle's spin budget: how long its waits spin before parking; zero parks at once.
    #[must_use]
    pub fn with_spin(mut self, spin: Duration) -> Event {
        self.spin = spin;
        self
    }

    /// Sets this handle's spin budget, as [`with_spin`](Self::with_spin) does.
    pub fn set_spin(&mut self, spin: Duration) {
        self.spin = spin;
    }

    /// The spin budget of this handle's waits.
    pub fn spin(&self) -> Duration {
        self.spin
    }

    /// The shared memory object the event lives in.
    pub fn shared_memory(&self) -> &SharedMemory {
        self.host.as_shared_memory()
    }

    /// Its offset in the shared memory object.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The event as errors name it: `"/name at offset 64"`.
    fn object(&self) -> String {
        format!("{} at offset {}", self.shared_memory().id(), self.offset)
    }

    /// The number of notifications so far (wrapping): read it before checking the condition,
    /// then [`wait`](Self::wait) for a change.
    pub fn value(&self) -> u32 {
        // Relaxed, then a fence: the mapping may be read-only, where std allows only relaxed
        // atomic loads. Acquire is enough: what the caller reads after this (its condition)
        // is at least as new as the notifications counted, so a condition found false was
        // set, if at all, by a notification still to come, which `wait` will see. (SeqCst is
        // a full barrier on x86_64: `mfence`.)
        let value = self.repr().count.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        value
    }

    /// Waits until the count differs from `seen`, and returns it. What the notifier wrote
    /// before notifying is visible once this returns.
    pub fn wait(&self, seen: u32) -> Result<u32> {
        self.wait_until(seen, None).map(|value| value.unwrap_or(seen))
    }

    /// Waits at most `timeout` until the count differs from `seen`: `Some(count)`, or `None` if
    /// the time ran out.
    pub fn wait_timeout(&self, seen: u32, timeout: Duration) -> Result<Option<u32>> {
        self.wait_until(seen, Some(timeout))
    }

    /// Adds one to the count and wakes at most one parked waiter, in any process; returns how
    /// many it woke. Waiters that are spinning see the change as well.
    pub fn notify_one(&self) -> usize {
        self.notify(1)
    }

    /// Adds one to the count and wakes every parked waiter, in every process; returns how many
    /// it woke.
    pub fn notify_all(&self) -> usize {
        // FUTEX_WAKE takes an int: i32::MAX means all.
        self.notify(i32::MAX.cast_unsigned())
    }

    /// Wakes every waiter parked on the futex, in every process, without adding to the count:
    /// for a notifier that must also reach waiters that could not register (those of read-only
    /// handles), which [`notify_all`](Self::notify_all) skips when no registered waiter is
    /// parked. Costs a system call; returns how many it woke (0 through a read-only handle).
    #[doc(alias = "FUTEX_WAKE")]
    pub fn wake_all_parked(&self) -> usize {
        if self.readonly {
            return 0;
        }
        futex::wake(&self.repr().count, futex::Flags::empty(), i32::MAX.cast_unsigned()).unwrap_or(0)
    }

    fn notify(&self, count: u32) -> usize {
        if self.readonly {
            return 0;
        }
        let repr = self.repr();
        // SeqCst on both sides: either the waiter sees the new count, or this sees the waiter.
        repr.count.fetch_add(1, Ordering::SeqCst);
        if repr.waiters.load(Ordering::SeqCst) == 0 {
            return 0;
        }
        // Not private: the waiters are in other processes. A valid, mapped, aligned word cannot
        // make FUTEX_WAKE fail.
        futex::wake(&repr.count, futex::Flags::empty(), count).unwrap_or(0)
    }

    /// Waits for a change of the count from `seen`, at most `timeout` (none: no limit):
    /// checks, spins, then parks. The clock is first read after a round of checks: a change
    /// that comes within it (the common case of a busy stream or a ping-pong) costs no look at
    /// the clock (a vDSO call).
    fn wait_until(&self, seen: u32, timeout: Option<Duration>) -> Result<Option<u32>> {
        let rounds = if self.spin.is_zero() { 1 } else { CHECKS_PER_CLOCK_READ };
        if let Some(value) = self.check(seen, rounds) {
            return Ok(Some(value));
        }
        let start = Instant::now();
        let deadline = timeout.map(|timeout| start.checked_add(timeout).unwrap_or_else(far_future));
        match self.spin_until(seen, start, deadline) {
            Some(value) => Ok(Some(value)),
            None => self.park(seen, deadline),
        }
    }

    /// Checks `times` times (with a pause between two) whether the count differs from `seen`:
    /// a relaxed load (read-only mappings allow no other), and an acquire fence once it
    /// changed.
    fn check(&self, seen: u32, times: u32) -> Option<u32> {
        let count = &self.repr().count;
        for _ in 0..times {
            let value = count.load(Ordering::Relaxed);
            if value != seen {
                fence(Ordering::Acquire);
                return Some(value);
            }
            std::hint::spin_loop();
        }
        None
    }

    /// Spins, from `start` on, until the count differs from `seen` or the spin budget (or the
    /// deadline) is spent.
    fn spin_until(&self, seen: u32, start: Instant, deadline: Option<Instant>) -> Option<u32> {
        if self.spin.is_zero() {
            return None;
        }
        let stop = start.checked_add(self.spin).unwrap_or_else(far_future);
        let stop = deadline.map_or(stop, |deadline| stop.min(deadline));
        let mut yielded = start;
        loop {
            if let Some(value) = self.check(seen, CHECKS_PER_CLOCK_READ) {
                return Some(value);
            }
            let now = Instant::now();
            if now >= stop {
                return None;
            }
            if now.duration_since(yielded) >= YIELD_EVERY {
                std::thread::yield_now();
                yielded = now;
            }
        }
    }

    /// Sleeps on the futex until the count differs from `seen` or the deadline passes.
    fn park(&self, seen: u32, deadline: Option<Instant>) -> Result<Option<u32>> {
        let repr = self.repr();
        // A read-only mapping cannot take the store: its waiter parks unregistered.
        if !self.readonly {
            repr.waiters.fetch_add(1, Ordering::SeqCst);
        }
        let result = loop {
            // The fence orders the registration above before the load, as a SeqCst load would
            // (a notifier sees the waiter, or this sees the notification); the load itself is
            // relaxed, the only kind std allows on a read-only mapping.
            fence(Ordering::SeqCst);
            let value = repr.count.load(Ordering::Relaxed);
            if value != seen {
                fence(Ordering::Acquire);
                break Ok(Some(value));
            }
            // Every sleep is bounded by RECHECK: should garbage zero the waiter count, so that
            // a notifier wakes nobody, this still sees the new count soon.
            let left = match deadline {
                None => RECHECK,
                Some(deadline) => match deadline.saturating_duration_since(Instant::now()) {
                    left if left.is_zero() => break Ok(None),
                    left => left.min(RECHECK),
                },
            };
            let left =
                Some(futex::Timespec::try_from(left).unwrap_or(futex::Timespec { tv_sec: i64::MAX, tv_nsec: 0 }));
            // FUTEX_WAIT sleeps only if the word still holds `seen` (so no notification between
            // the load above and the sleep is lost); its timeout is relative, on CLOCK_MONOTONIC.
            match futex::wait(&repr.count, futex::Flags::empty(), seen, left.as_ref()) {
                Ok(()) | Err(Errno::AGAIN | Errno::INTR | Errno::TIMEDOUT) => {}
                Err(errno) => break Err(Error::Os { object: self.object(), operation: "futex wait", errno }),
            }
        };
        if !self.readonly {
            // Saturating: garbage may have zeroed the count meanwhile.
            repr.waiters.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| Some(n.saturating_sub(1))).ok();
        }
        result
    }

    fn repr(&self) -> &Repr {
        // SAFETY: `repr` points to a `Repr` in bounds and aligned (checked by `attach_at`) in a
        // mapping that `host` keeps for the life of `self`; a `Repr` is atomics only, which
        // other processes may access concurrently, and any bits are valid. Through a read-only
        // mapping only loads and FUTEX_WAIT touch it (stores are skipped when `readonly`).
        unsafe { self.repr.as_ref() }
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("object", &self.shared_memory().id())
            .field("offset", &self.offset)
            .field("readonly", &self.readonly)
            .field("value", &self.value())
            .field("spin", &self.spin)
            .finish_non_exhaustive()
    }
}

/// An instant so far ahead that no wait reaches it.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}
