//! The `SIGBUS`/`SIGSEGV` handler that turns a fault inside the copy routine into an error.
//!
//! **What is installed, and when.** One handler for `SIGBUS` and one for `SIGSEGV` (the same
//! function), installed once per process by [`install`], when the process makes its first
//! `SharedMemory` handle (or, before that, makes its first copy or prefault touch through the
//! crate's internal `load`/`store`/`touch`), not before: a program that links ipcmem but maps
//! no shared memory never gets it. It is
//! installed with `SA_SIGINFO | SA_ONSTACK` (it runs on the thread's alternate signal stack if
//! there is one, as Rust's own stack-overflow handler does), the signal mask and `SA_RESTART`
//! of the action it replaces. It is never uninstalled, except as said below for a fault that
//! kills the process.
//!
//! **What it does.** For a fault raised by the kernel (`si_code > 0`) whose instruction lies in
//! the copy routines (of `x86_64` or `aarch64`), it sets the interrupted context's instruction
//! pointer to the routine's fix-up, with the signal number and faulting address in the
//! registers the routine returns, and returns: the routine returns the fault to its caller, which turns it
//! into an [`Error`](crate::Error). Nothing else changes: the thread goes on, other threads
//! never noticed.
//!
//! Any other signal goes to the action that was installed before ours, exactly as the kernel
//! would have run it: a handler is called with the arguments its `SA_SIGINFO` flag asks for
//! (with its own signal blocked unless it has `SA_NODEFER`, and for `SA_RESETHAND` only once),
//! so that Rust's stack-overflow report, a test program's own handler or a crash reporter work
//! as before. If that action was the default (or "ignore", which the kernel does not honour for
//! a fault), the handler restores the default action and returns: the faulting instruction
//! runs again and the process dies of the signal, with the same status and core dump as without
//! ipcmem. A `SIGSEGV` or `SIGBUS` sent by `kill` is passed on the same way (re-raised under the
//! default action, or dropped if it was ignored).
//!
//! **Limits.** A handler that another library installs *after* ours replaces it, and our copies
//! are then protected only if that handler passes faults on to the one it replaced (as ours
//! does). Everything the handler calls is async-signal-safe: it reads the saved actions
//! (written before the handler is installed), and calls `sigaction`, `pthread_sigmask` and
//! `raise`.

use std::ffi::c_int;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Once, OnceLock};

use super::routine;

/// The action installed before ours, for one signal.
struct Previous {
    action: libc::sigaction,
    /// For an action with `SA_RESETHAND`: whether it ran once (after which the default applies).
    spent: AtomicBool,
}

// SAFETY: `libc::sigaction` is plain data (a function address, a mask, flags); it is written
// once, before the handler is installed, and only read afterwards.
unsafe impl Sync for Previous {}
// SAFETY: as above.
unsafe impl Send for Previous {}

static PREVIOUS_BUS: OnceLock<Previous> = OnceLock::new();
static PREVIOUS_SEGV: OnceLock<Previous> = OnceLock::new();
/// Whether the processor has AVX (the fix-up then clears the upper halves of its registers).
static AVX: AtomicBool = AtomicBool::new(false);

/// Installs the handler for `SIGBUS` and `SIGSEGV`, once per process; `avx` says whether the
/// copy routine may use AVX registers.
pub(super) fn install(avx: bool) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        AVX.store(avx, Ordering::Relaxed);
        install_for(libc::SIGBUS, &PREVIOUS_BUS);
        install_for(libc::SIGSEGV, &PREVIOUS_SEGV);
    });
}

fn install_for(signal: c_int, previous: &OnceLock<Previous>) {
    let mut old = MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: a query (no new action); `old` is written by the kernel.
    if unsafe { libc::sigaction(signal, std::ptr::null(), old.as_mut_ptr()) } != 0 {
        return; // Not installed: copies are then as fault-unsafe as memcpy, never unsound.
    }
    // SAFETY: filled by the successful call above.
    let old = unsafe { old.assume_init() };
    // Saved before ours is installed, so that the handler always finds it.
    let _ = previous.set(Previous { action: old, spent: AtomicBool::new(false) });
    // SAFETY: all-zero is a valid `sigaction` (no handler, empty mask, no flags).
    let mut ours: libc::sigaction = unsafe { std::mem::zeroed() };
    ours.sa_sigaction = on_fault as *const () as usize;
    ours.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | (old.sa_flags & libc::SA_RESTART);
    ours.sa_mask = old.sa_mask;
    // SAFETY: `ours` is a valid action whose handler is async-signal-safe.
    unsafe { libc::sigaction(signal, &raw const ours, std::ptr::null_mut()) };
}

/// The handler.
extern "C" fn on_fault(signal: c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid `siginfo_t` and `ucontext_t` to an SA_SIGINFO handler.
    unsafe {
        let (begin, end, fixup) = routine::code_range(AVX.load(Ordering::Relaxed));
        let registers = &mut (*context.cast::<libc::ucontext_t>()).uc_mcontext;
        if (*info).si_code > 0 && (begin..end).contains(&pc(registers)) {
            resume(registers, fixup, signal, (*info).si_addr() as usize);
            return;
        }
        pass_on(signal, info, context);
    }
}

/// The interrupted instruction's address.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::cast_sign_loss, clippy::cast_possible_truncation, reason = "a register holds an address as 64 bits")]
fn pc(registers: &libc::mcontext_t) -> usize {
    registers.gregs[libc::REG_RIP as usize] as usize
}

/// Makes the interrupted routine go on at `fixup`, returning `signal` and `address`.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::cast_possible_wrap, reason = "a register holds an address as 64 bits")]
fn resume(registers: &mut libc::mcontext_t, fixup: usize, signal: c_int, address: usize) {
    registers.gregs[libc::REG_RIP as usize] = fixup as i64;
    registers.gregs[libc::REG_RAX as usize] = i64::from(signal);
    registers.gregs[libc::REG_RDX as usize] = address as i64;
}

/// The interrupted instruction's address.
#[cfg(target_arch = "aarch64")]
#[allow(clippy::cast_possible_truncation, reason = "a register holds an address as 64 bits")]
fn pc(registers: &libc::mcontext_t) -> usize {
    registers.pc as usize
}

/// Makes the interrupted routine go on at `fixup`, returning `signal` and `address`.
#[cfg(target_arch = "aarch64")]
#[allow(clippy::cast_sign_loss, reason = "signal numbers are positive")]
fn resume(registers: &mut libc::mcontext_t, fixup: usize, signal: c_int, address: usize) {
    registers.pc = fixup as u64;
    registers.regs[0] = signal as u64;
    registers.regs[1] = address as u64;
}

/// Runs the action installed before ours, as the kernel would have.
///
/// # Safety
/// Called from the handler with its arguments.
unsafe fn pass_on(signal: c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    let previous = if signal == libc::SIGBUS { PREVIOUS_BUS.get() } else { PREVIOUS_SEGV.get() };
    let handler = previous
        .filter(|p| p.action.sa_flags & libc::SA_RESETHAND == 0 || !p.spent.swap(true, Ordering::Relaxed))
        .map(|p| (p.action.sa_sigaction, p.action.sa_flags))
        .filter(|(handler, _)| *handler != libc::SIG_DFL && *handler != libc::SIG_IGN);
    // SAFETY: the kernel's arguments; sigaction, pthread_sigmask and raise are async-signal-safe.
    unsafe {
        if let Some((handler, flags)) = handler {
            if flags & libc::SA_NODEFER != 0 {
                unblock(signal);
            }
            if flags & libc::SA_SIGINFO != 0 {
                let handler: extern "C" fn(c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    std::mem::transmute(handler);
                handler(signal, info, context);
            } else {
                let handler: extern "C" fn(c_int) = std::mem::transmute(handler);
                handler(signal);
            }
        } else {
            let ignored = previous.is_some_and(|p| p.action.sa_sigaction == libc::SIG_IGN);
            let from_kernel = (*info).si_code > 0;
            if ignored && !from_kernel {
                return; // Sent by a process, and ignored before ipcmem: ignored still.
            }
            let mut default: libc::sigaction = std::mem::zeroed();
            default.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(signal, &raw const default, std::ptr::null_mut());
            if !from_kernel {
                // Pending until this handler returns and unblocks it: then the default action.
                libc::raise(signal);
            }
            // A fault: on return the instruction faults again, under the default action.
        }
        *libc::__errno_location() = errno;
    }
}

/// Unblocks `signal` in this thread (for a handler with `SA_NODEFER`).
///
/// # Safety
/// Async-signal-safe; called from the handler.
unsafe fn unblock(signal: c_int) {
    // SAFETY: a local signal set, initialised by sigemptyset.
    unsafe {
        let mut set = MaybeUninit::<libc::sigset_t>::zeroed();
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigaddset(set.as_mut_ptr(), signal);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, set.as_ptr(), std::ptr::null_mut());
    }
}
