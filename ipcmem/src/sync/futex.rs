//! The futex calls of our own synchronisation objects: sleep while a word of shared memory
//! holds a value, and wake those sleeping on it, in any process.
//!
//! Every sleep is bounded: at most until the caller's deadline, and at most [`RECHECK`] for an
//! untimed wait, so that a waiter whose wake-up was lost (garbage written over a waiter count
//! told the notifier that nobody sleeps) still sees the change on the word by itself.

use std::time::{Duration, Instant};

use rustix::io::Errno;

/// The longest one sleep of a wait lasts before the waiter looks at the word again: it bounds
/// how late a waiter whose wake-up was lost to garbage notices the change.
pub(crate) const RECHECK: Duration = Duration::from_millis(100);

/// An instant so far ahead that no wait reaches it: the deadline of a timeout too large for
/// `Instant`.
pub(crate) fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}

/// Why a [`wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Woken {
    /// Woken, interrupted, the word did not hold the value, or the sleep slice ended: look again.
    LookAgain,
    /// The deadline has passed.
    DeadlinePassed,
}

/// Sleeps while the 32-bit word at `word` holds `expected`, until `deadline` (`None`: no
/// deadline) and at most [`RECHECK`]. Not private: the word is shared between processes.
///
/// # Safety
/// `word` is aligned and points into memory mapped for the whole call (it is read by the
/// kernel, never by Rust code).
pub(crate) unsafe fn wait(word: *const u32, expected: u32, deadline: Option<Instant>) -> Result<Woken, Errno> {
    let slice = match deadline {
        None => RECHECK,
        Some(deadline) => match deadline.saturating_duration_since(Instant::now()) {
            left if left.is_zero() => return Ok(Woken::DeadlinePassed),
            left => left.min(RECHECK),
        },
    };
    let timeout = libc::timespec {
        tv_sec: libc::time_t::try_from(slice.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(slice.subsec_nanos()),
    };
    // SAFETY: FUTEX_WAIT (shared) reads the aligned, mapped word (the caller's promise) and
    // sleeps at most `timeout`, a valid relative timespec on CLOCK_MONOTONIC.
    let code =
        unsafe { libc::syscall(libc::SYS_futex, word, libc::FUTEX_WAIT, expected, &raw const timeout, 0_usize, 0_u32) };
    if code == 0 {
        return Ok(Woken::LookAgain);
    }
    match Errno::from_raw_os_error(std::io::Error::last_os_error().raw_os_error().unwrap_or(0)) {
        Errno::AGAIN | Errno::INTR | Errno::TIMEDOUT => Ok(Woken::LookAgain),
        errno => Err(errno),
    }
}

/// Wakes at most `count` of the waiters sleeping on `word`, in any process; returns how many.
///
/// # Safety
/// As for [`wait`].
pub(crate) unsafe fn wake(word: *const u32, count: u32) -> usize {
    let count = i32::try_from(count).unwrap_or(i32::MAX);
    // SAFETY: FUTEX_WAKE (shared) on an aligned, mapped word (the caller's promise); it only
    // looks the word up, so it cannot fail for any value of it.
    let woken = unsafe { libc::syscall(libc::SYS_futex, word, libc::FUTEX_WAKE, count, 0_usize, 0_usize, 0_u32) };
    usize::try_from(woken).unwrap_or(0)
}

/// Wakes every waiter sleeping on `word`.
///
/// # Safety
/// As for [`wait`].
pub(crate) unsafe fn wake_all(word: *const u32) -> usize {
    // SAFETY: the caller's promise.
    unsafe { wake(word, u32::MAX) }
}
