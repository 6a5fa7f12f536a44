//! Signals: waiting for the end of a hold, and the default action of `SIGPIPE`.
//!
//! A holding command blocks `SIGINT`, `SIGTERM` and `SIGHUP` *before* it makes or opens its
//! object and then waits for one of them with `sigwait(3)`: the signal is taken synchronously,
//! as a value, by the main thread. No handler runs in signal context (nothing to keep
//! async-signal-safe), no thread or self-pipe is needed (as `signal-hook` would use), and a
//! signal that arrives while the object is being made is not lost: it stays pending and ends
//! the wait at once. The command then returns normally, so every handle is dropped and a
//! volatile object vanishes if no one else holds it.

use std::io;

/// The signals that end a hold.
const STOP_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// The stop signals, blocked in this thread from creation on, until [`Blocked::wait`].
#[derive(Debug)]
pub struct Blocked {
    set: libc::sigset_t,
}

/// Blocks the stop signals. Called by the main thread before any other thread exists, so the
/// mask covers the whole process.
pub fn block() -> io::Result<Blocked> {
    // SAFETY: sigset_t is a plain C bit set, for which all zeros is a valid value;
    // sigemptyset initialises it anyway.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, exclusively borrowed sigset_t; the signal numbers are valid.
    unsafe {
        libc::sigemptyset(&raw mut set);
        for signal in STOP_SIGNALS {
            libc::sigaddset(&raw mut set, signal);
        }
    }
    // SAFETY: `set` is initialised; the old mask is not asked for (null).
    let error = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &raw const set, std::ptr::null_mut()) };
    if error != 0 {
        return Err(io::Error::from_raw_os_error(error));
    }
    Ok(Blocked { set })
}

impl Blocked {
    /// The stop signal that has arrived since [`block`], if one has; takes it.
    pub fn pending(&self) -> Option<libc::c_int> {
        let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `self.set` is an initialised sigset_t of blocked signals; no siginfo is asked
        // for (null); `zero` is a valid timespec: the call only polls.
        let signal = unsafe { libc::sigtimedwait(&raw const self.set, std::ptr::null_mut(), &raw const zero) };
        (signal > 0).then_some(signal)
    }

    /// Waits until a stop signal arrives (or has arrived since [`block`]); returns its number.
    pub fn wait(&self) -> io::Result<libc::c_int> {
        let mut signal: libc::c_int = 0;
        // SAFETY: `self.set` is an initialised sigset_t of blocked signals; `signal` is a valid
        // place for the result.
        let error = unsafe { libc::sigwait(&raw const self.set, &raw mut signal) };
        if error != 0 {
            return Err(io::Error::from_raw_os_error(error));
        }
        Ok(signal)
    }
}

impl Blocked {
    /// Takes a stop signal that arrived (or arrives within `timeout`): its number, or `None`.
    /// Zero looks without waiting.
    pub fn wait_timeout(&self, timeout: std::time::Duration) -> io::Result<Option<libc::c_int>> {
        let spec = libc::timespec {
            tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: libc::c_long::from(timeout.subsec_nanos().cast_signed()),
        };
        loop {
            // SAFETY: `self.set` is an initialised sigset_t of blocked signals; the siginfo is
            // not asked for (null); `spec` is a valid timespec.
            let signal = unsafe { libc::sigtimedwait(&raw const self.set, std::ptr::null_mut(), &raw const spec) };
            if signal >= 0 {
                return Ok(Some(signal));
            }
            let error = io::Error::last_os_error();
            match error.raw_os_error() {
                Some(libc::EAGAIN) => return Ok(None),
                Some(libc::EINTR) => {}
                _ => return Err(error),
            }
        }
    }
}

/// Restores the default action of `SIGPIPE`, which Rust programs ignore: `ipcmem read … | head`
/// then ends quietly when `head` has had enough, as other Unix filters do, instead of
/// reporting a broken pipe.
pub fn default_sigpipe() {
    // SAFETY: sets the disposition of SIGPIPE to its default; no handler is involved, and no
    // other thread exists yet.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}
