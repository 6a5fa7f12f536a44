//! Stopping cleanly on `SIGINT`, `SIGTERM` or `SIGHUP`.
//!
//! The signals are blocked in the main thread before any other thread exists (Zenoh's runtime
//! threads then inherit the mask), and one thread takes them synchronously with `sigwait(3)`
//! and raises a flag that the bridge's loop checks between frames. No handler runs in signal
//! context, and the loop returns normally, so every handle is dropped in order: the Zenoh
//! session closes and says goodbye to its peers, and the local stream is released.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The signals that stop a bridge.
const STOP_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Blocks the stop signals and starts the thread that waits for them. Call it from the main
/// thread before any other thread starts. Returns the flag the signal raises.
#[doc(alias = "sigwait")]
#[doc(alias = "pthread_sigmask")]
pub fn on_stop_signals() -> io::Result<Arc<AtomicBool>> {
    let set = stop_set();
    // SAFETY: `set` is an initialised sigset_t; the old mask is not asked for (null).
    let error = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &raw const set, std::ptr::null_mut()) };
    if error != 0 {
        return Err(io::Error::from_raw_os_error(error));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let raised = Arc::clone(&stop);
    std::thread::Builder::new().name("stop-signals".into()).spawn(move || {
        let mut signal: libc::c_int = 0;
        // SAFETY: `set` is an initialised sigset_t of signals blocked in every thread (the
        // mask is inherited); `signal` is a valid place for the result.
        let error = unsafe { libc::sigwait(&raw const set, &raw mut signal) };
        if error == 0 {
            raised.store(true, Ordering::Relaxed);
        }
    })?;
    Ok(stop)
}

fn stop_set() -> libc::sigset_t {
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
    set
}
