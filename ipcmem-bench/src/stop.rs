//! Ending a run cleanly: the names of the objects a run makes, interruption by a signal, and
//! the sweep that removes whatever a run leaves.
//!
//! The stop signals (SIGINT, SIGTERM, SIGHUP) are blocked and taken by a watching thread,
//! which only raises a flag: the measurements check it between iterations and return an
//! error, so every handle is dropped as usual. A second signal (a run that does not stop)
//! sweeps and exits at once. [`Sweep`] runs when `bench` returns, also by a panic.

use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use ipcmem::Key;

use crate::failure::failure;
use crate::failure::Failure;

/// Set by the watching thread when a stop signal came.
static STOP: AtomicBool = AtomicBool::new(false);
/// The number in the next name or key.
static NEXT: AtomicU32 = AtomicU32::new(0);

/// The exit status of a run ended by a second signal, as a shell reports an interrupted
/// command (128 + SIGINT).
const INTERRUPTED: i32 = 130;

/// Blocks the stop signals and starts the thread that waits for them. Called by the main
/// thread before it starts any other thread, so that the mask covers the whole process.
pub fn watch() -> std::io::Result<()> {
    let blocked = block()?;
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        while wait(&blocked).is_ok() {
            if STOP.swap(true, Ordering::SeqCst) {
                sweep();
                std::process::exit(INTERRUPTED);
            }
        }
    })?;
    Ok(())
}

/// Blocks the stop signals in this thread (and the threads it starts afterwards); gives them
/// as a set for [`wait`].
fn block() -> std::io::Result<libc::sigset_t> {
    // SAFETY: sigset_t is a plain C bit set, for which all zeros is a valid value;
    // sigemptyset initialises it anyway.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, exclusively borrowed sigset_t; the signal numbers are valid.
    unsafe {
        libc::sigemptyset(&raw mut set);
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&raw mut set, signal);
        }
    }
    // SAFETY: `set` is initialised; the old mask is not asked for (null).
    let error = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &raw const set, std::ptr::null_mut()) };
    if error != 0 {
        return Err(std::io::Error::from_raw_os_error(error));
    }
    Ok(set)
}

/// Waits until one of the blocked signals of `set` arrives.
fn wait(set: &libc::sigset_t) -> std::io::Result<libc::c_int> {
    let mut signal: libc::c_int = 0;
    // SAFETY: `set` is an initialised sigset_t of blocked signals; `signal` is a valid place for
    // the result.
    let error = unsafe { libc::sigwait(set, &raw mut signal) };
    if error != 0 {
        return Err(std::io::Error::from_raw_os_error(error));
    }
    Ok(signal)
}

/// Fails if a stop signal came: the caller returns, dropping what it holds.
pub fn check() -> Result<(), Failure> {
    if requested() {
        return Err(failure("interrupted"));
    }
    Ok(())
}

/// Whether a stop signal came.
pub fn requested() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// A POSIX name for a new object: this process's prefix and a counter.
pub fn unique_name() -> String {
    format!("{}{}", prefix(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// [`unique_name`], also as a C string for the raw calls.
pub fn unique_names() -> (String, CString) {
    let name = unique_name();
    // The name is digits and ASCII letters: no NUL.
    let c_name = CString::new(name.as_bytes()).unwrap_or_default();
    (name, c_name)
}

/// A System V key for a new segment, from the process id and a counter. A key another
/// process happens to use makes creation fail with "exists": the caller tries the next one.
pub fn unique_key() -> Key {
    // Bit 30, then 22 bits of the pid (pid_max is at most 2^22), then 6 of the counter.
    let pid = std::process::id() & 0x003f_ffff;
    let n = NEXT.fetch_add(1, Ordering::Relaxed) & 0x3f;
    Key::from_raw((0x4000_0000 | pid << 6 | n).cast_signed())
}

/// The prefix of this process's POSIX names.
fn prefix() -> String {
    format!("/ipcmem-bench-{}-", std::process::id())
}

/// Runs [`sweep`] when dropped.
pub struct Sweep;

impl Drop for Sweep {
    fn drop(&mut self) {
        sweep();
    }
}

/// Removes the POSIX objects under this process's prefix and the System V segments this
/// process created, and gives the pool of huge pages its size back if `--huge` grew it.
/// Errors are ignored: this is the last resort.
pub fn sweep() {
    ipcmem::gc::sweep(&prefix());
    crate::huge::restore_pool();
}
