//! The copy routine of `aarch64`: plain loads and stores (`ldrb`/`ldr`/`ldp` and their stores,
//! of general and SIMD registers) between two labels, so that the fault handler
//! ([`super::fault`]) knows every instruction that may fault on the shared mapping, and a
//! fix-up address where such a fault resumes.
//!
//! Calling convention (AAPCS64): `x0` = destination, `x1` = source, `x2` = length. Returns
//! [`Outcome`] in `x0:x1`: `x0` is 0 when every byte was copied; after a fault the handler
//! makes the routine return the signal number in `x0` and the faulting address in `x1`.
//!
//! What the routine does, by length (it touches neither the stack, nor the link register, nor
//! a callee-saved register, so a fault can resume at a bare `ret`):
//! - 0 to 64 bytes: two to four loads that may overlap (the first and last 1, 4, 8, 16 or 32
//!   bytes), then the same stores.
//! - 65 bytes and more: 64-byte blocks of two `ldp`/`stp` of 16-byte SIMD registers, the last
//!   64 bytes loaded first and stored last (overlapping the last block).
//!
//! Unlike the `x86_64` routine, it has no variant for copies larger than the caches
//! (non-temporal `stnp`): not measured on an `aarch64` machine yet.

/// What the routine returns: `signal` 0, or the signal and address of a fault.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(super) struct Outcome {
    /// 0 after a full copy; `SIGBUS` or `SIGSEGV` after a fault.
    pub signal: u64,
    /// The faulting address (`si_addr`); meaningless when `signal` is 0.
    pub address: u64,
}

std::arch::global_asm!(
    ".pushsection .text.ipcmem_access,\"ax\",@progbits",
    ".p2align 6",
    concat!(".globl ", symbol!("begin")),
    concat!(".hidden ", symbol!("begin")),
    concat!(".globl ", symbol!("copy")),
    concat!(".hidden ", symbol!("copy")),
    concat!(".globl ", symbol!("touch_read")),
    concat!(".hidden ", symbol!("touch_read")),
    concat!(".globl ", symbol!("touch_write")),
    concat!(".hidden ", symbol!("touch_write")),
    concat!(".globl ", symbol!("end")),
    concat!(".hidden ", symbol!("end")),
    concat!(".globl ", symbol!("fixup")),
    concat!(".hidden ", symbol!("fixup")),
    concat!(symbol!("begin"), ":"),
    concat!(symbol!("copy"), ":"),
    "    add x3, x1, x2", // the end of the source
    "    add x4, x0, x2", // the end of the destination
    "    cmp x2, 16",
    "    b.hi 20f",
    "    cmp x2, 8",
    "    b.hs 12f",
    "    cmp x2, 4",
    "    b.hs 11f",
    "    cbz x2, 90f",
    // 1 to 3 bytes: the first, the middle and the last (some the same).
    "    lsr x5, x2, 1",
    "    ldrb w6, [x1]",
    "    ldrb w7, [x1, x5]",
    "    ldurb w8, [x3, -1]",
    "    strb w6, [x0]",
    "    strb w7, [x0, x5]",
    "    sturb w8, [x4, -1]",
    "    b 90f",
    // 4 to 7 bytes: the first 4 and the last 4.
    "11:",
    "    ldr w6, [x1]",
    "    ldur w7, [x3, -4]",
    "    str w6, [x0]",
    "    stur w7, [x4, -4]",
    "    b 90f",
    // 8 to 16 bytes: the first 8 and the last 8.
    "12:",
    "    ldr x6, [x1]",
    "    ldur x7, [x3, -8]",
    "    str x6, [x0]",
    "    stur x7, [x4, -8]",
    "    b 90f",
    "20:",
    "    cmp x2, 32",
    "    b.hi 30f",
    // 17 to 32 bytes: the first 16 and the last 16.
    "    ldr q0, [x1]",
    "    ldur q1, [x3, -16]",
    "    str q0, [x0]",
    "    stur q1, [x4, -16]",
    "    b 90f",
    "30:",
    "    cmp x2, 64",
    "    b.hi 40f",
    // 33 to 64 bytes: the first 32 and the last 32.
    "    ldp q0, q1, [x1]",
    "    ldp q2, q3, [x3, -32]",
    "    stp q0, q1, [x0]",
    "    stp q2, q3, [x4, -32]",
    "    b 90f",
    // 65 bytes and more: the last 64 bytes first (kept in q4-q7), then 64-byte blocks while
    // more than 64 bytes remain, then the last 64 bytes.
    "40:",
    "    ldp q4, q5, [x3, -64]",
    "    ldp q6, q7, [x3, -32]",
    "41:",
    "    ldp q0, q1, [x1]",
    "    ldp q2, q3, [x1, 32]",
    "    stp q0, q1, [x0]",
    "    stp q2, q3, [x0, 32]",
    "    add x1, x1, 64",
    "    add x0, x0, 64",
    "    sub x2, x2, 64",
    "    cmp x2, 64",
    "    b.hi 41b",
    "    stp q4, q5, [x4, -64]",
    "    stp q6, q7, [x4, -32]",
    "90:",
    "    mov x0, 0",
    "    ret",
    // One byte of a page, read: the read fault maps or allocates the page.
    concat!(symbol!("touch_read"), ":"),
    "    ldrb w1, [x0]",
    "    mov x0, 0",
    "    ret",
    // One byte of a page, stored back as it was, atomically (an exclusive pair): a write fault
    // that changes no byte, even if another process writes it at that moment.
    concat!(symbol!("touch_write"), ":"),
    "1:",
    "    ldxrb w1, [x0]",
    "    stxrb w2, w1, [x0]",
    "    cbnz w2, 1b",
    "    mov x0, 0",
    "    ret",
    concat!(symbol!("end"), ":"),
    // Where a fault inside the routines resumes, with `x0` and `x1` set by the handler.
    concat!(symbol!("fixup"), ":"),
    "    ret",
    ".popsection",
);

extern "C" {
    /// Copies `len` bytes from `src` to `dst` (see the module's documentation).
    #[link_name = symbol!("copy")]
    fn __ipcmem_access_copy(dst: *mut u8, src: *const u8, len: usize) -> Outcome;
    /// Reads the byte at `at`.
    #[link_name = symbol!("touch_read")]
    fn __ipcmem_access_touch_read(at: *const u8) -> Outcome;
    /// Stores the byte at `at` back, atomically.
    #[link_name = symbol!("touch_write")]
    fn __ipcmem_access_touch_write(at: *mut u8) -> Outcome;
    /// The first instruction of the routines (a label, never called).
    #[link_name = symbol!("begin")]
    fn __ipcmem_access_begin();
    /// Just past the last instruction of the routines (a label, never called).
    #[link_name = symbol!("end")]
    fn __ipcmem_access_end();
    /// Where a fault inside the routines resumes (never called directly).
    #[link_name = symbol!("fixup")]
    fn __ipcmem_access_fixup();
}

/// How the routine copies: one way on `aarch64` (the type matches the `x86_64` routine's).
#[derive(Debug, Clone, Copy)]
pub(super) struct Strategy {
    /// Always `false`: no AVX here.
    pub avx: bool,
}

/// The strategy for this processor.
pub(super) fn strategy() -> Strategy {
    Strategy { avx: false }
}

/// The addresses of the routines' instructions, `begin..end`, and of the fix-up.
pub(super) fn code_range(_avx: bool) -> (usize, usize, usize) {
    (
        __ipcmem_access_begin as *const () as usize,
        __ipcmem_access_end as *const () as usize,
        __ipcmem_access_fixup as *const () as usize,
    )
}

/// Copies `len` bytes from `src` to `dst` with the routine.
///
/// # Safety
/// Both ranges are mapped for the call (a fault of the shared one is caught once
/// [`super::fault::install`] ran; a fault of the other is a crash, as for `memcpy`); they do
/// not overlap; `dst` is writable.
#[inline]
pub(super) unsafe fn copy(dst: *mut u8, src: *const u8, len: usize, _strategy: &Strategy) -> Outcome {
    // SAFETY: the caller's promises are the routine's.
    unsafe { __ipcmem_access_copy(dst, src, len) }
}

/// Reads (or, if `write`, stores back atomically) the byte at `at`, with the fault caught.
///
/// # Safety
/// `at` lies in a mapping that stays mapped for the call; writable if `write`.
pub(super) unsafe fn touch(at: *mut u8, write: bool) -> Outcome {
    // SAFETY: the caller's promises are the routine's.
    unsafe {
        if write {
            __ipcmem_access_touch_write(at)
        } else {
            __ipcmem_access_touch_read(at)
        }
    }
}
