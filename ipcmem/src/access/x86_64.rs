//! The copy routine of x86_64: plain `mov`/`movups`/`rep movsb`/`movntdq` between two labels,
//! so that the fault handler ([`super::fault`]) knows every instruction that may fault on the
//! shared mapping, and a fix-up address where such a fault resumes.
//!
//! Calling convention (System V): `rdi` = destination, `rsi` = source, `rdx` = length, `rcx` =
//! the length from which non-temporal stores are used. Returns [`Outcome`] in `rax:rdx`: `rax`
//! is 0 when every byte was copied; after a fault the handler makes the routine return the
//! signal number in `rax` and the faulting address in `rdx`.
//!
//! What the routine does, by length (none touches the stack or a callee-saved register, so a
//! fault can resume at a bare `ret`):
//! - 0 to 64 bytes: two to four loads that may overlap (the first and last 1, 4, 8, 16 or 32
//!   bytes), then the same stores: no loop, no branch on alignment.
//! - 65 bytes up to [`REP_MOVSB_FROM`]: 64-byte blocks of four 16-byte moves, the last 64 bytes
//!   loaded first and stored last (overlapping the last block).
//! - from [`REP_MOVSB_FROM`] to the non-temporal threshold: `rep movsb`, which processors with
//!   ERMS/FSRM run at full cache-line speed (the choice of glibc's `memcpy` too).
//! - from the non-temporal threshold: 64-byte blocks stored with `movntdq` (aligned to the
//!   destination's cache lines), which bypass the caches for copies larger than they are,
//!   then `sfence`, so that a later store (a release flag) is seen after the data.
//!
//! The direction flag is clear on entry (the ABI says so) and not changed.

/// From this length on the routine uses `rep movsb`; glibc's threshold on this class of
/// processor is 2112 bytes (`glibc.cpu.x86_rep_movsb_threshold`).
pub(super) const REP_MOVSB_FROM: usize = 2048;

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
    ".globl __ipcmem_access_begin",
    ".hidden __ipcmem_access_begin",
    ".globl __ipcmem_access_copy",
    ".hidden __ipcmem_access_copy",
    ".globl __ipcmem_access_touch_read",
    ".hidden __ipcmem_access_touch_read",
    ".globl __ipcmem_access_touch_write",
    ".hidden __ipcmem_access_touch_write",
    ".globl __ipcmem_access_end",
    ".hidden __ipcmem_access_end",
    ".globl __ipcmem_access_fixup",
    ".hidden __ipcmem_access_fixup",
    "__ipcmem_access_begin:",
    "__ipcmem_access_copy:",
    "    cmp rdx, 16",
    "    ja 20f",
    "    cmp rdx, 8",
    "    jae 12f",
    "    cmp rdx, 4",
    "    jae 11f",
    "    test rdx, rdx",
    "    je 90f",
    // 1 to 3 bytes: the first, the middle and the last (some the same).
    "    mov r8, rdx",
    "    shr r8, 1",
    "    movzx eax, byte ptr [rsi]",
    "    movzx r9d, byte ptr [rsi + r8]",
    "    movzx ecx, byte ptr [rsi + rdx - 1]",
    "    mov byte ptr [rdi], al",
    "    mov byte ptr [rdi + r8], r9b",
    "    mov byte ptr [rdi + rdx - 1], cl",
    "    jmp 90f",
    // 4 to 7 bytes: the first 4 and the last 4.
    "11:",
    "    mov eax, dword ptr [rsi]",
    "    mov ecx, dword ptr [rsi + rdx - 4]",
    "    mov dword ptr [rdi], eax",
    "    mov dword ptr [rdi + rdx - 4], ecx",
    "    jmp 90f",
    // 8 to 16 bytes: the first 8 and the last 8.
    "12:",
    "    mov rax, qword ptr [rsi]",
    "    mov rcx, qword ptr [rsi + rdx - 8]",
    "    mov qword ptr [rdi], rax",
    "    mov qword ptr [rdi + rdx - 8], rcx",
    "    jmp 90f",
    "20:",
    "    cmp rdx, 32",
    "    ja 30f",
    // 17 to 32 bytes: the first 16 and the last 16.
    "    movups xmm0, xmmword ptr [rsi]",
    "    movups xmm1, xmmword ptr [rsi + rdx - 16]",
    "    movups xmmword ptr [rdi], xmm0",
    "    movups xmmword ptr [rdi + rdx - 16], xmm1",
    "    jmp 90f",
    "30:",
    "    cmp rdx, 64",
    "    ja 40f",
    // 33 to 64 bytes: the first 32 and the last 32.
    "    movups xmm0, xmmword ptr [rsi]",
    "    movups xmm1, xmmword ptr [rsi + 16]",
    "    movups xmm2, xmmword ptr [rsi + rdx - 32]",
    "    movups xmm3, xmmword ptr [rsi + rdx - 16]",
    "    movups xmmword ptr [rdi], xmm0",
    "    movups xmmword ptr [rdi + 16], xmm1",
    "    movups xmmword ptr [rdi + rdx - 32], xmm2",
    "    movups xmmword ptr [rdi + rdx - 16], xmm3",
    "    jmp 90f",
    "40:",
    "    cmp rdx, {rep_from}",
    "    jae 50f",
    // 65 bytes up to `rep_from`: the last 64 bytes first (kept in xmm4-7), then 64-byte blocks
    // while more than 64 bytes remain, then the last 64 bytes.
    "    movups xmm4, xmmword ptr [rsi + rdx - 64]",
    "    movups xmm5, xmmword ptr [rsi + rdx - 48]",
    "    movups xmm6, xmmword ptr [rsi + rdx - 32]",
    "    movups xmm7, xmmword ptr [rsi + rdx - 16]",
    "    lea r8, [rdi + rdx - 64]",
    "41:",
    "    movups xmm0, xmmword ptr [rsi]",
    "    movups xmm1, xmmword ptr [rsi + 16]",
    "    movups xmm2, xmmword ptr [rsi + 32]",
    "    movups xmm3, xmmword ptr [rsi + 48]",
    "    movups xmmword ptr [rdi], xmm0",
    "    movups xmmword ptr [rdi + 16], xmm1",
    "    movups xmmword ptr [rdi + 32], xmm2",
    "    movups xmmword ptr [rdi + 48], xmm3",
    "    add rsi, 64",
    "    add rdi, 64",
    "    sub rdx, 64",
    "    cmp rdx, 64",
    "    ja 41b",
    "    movups xmmword ptr [r8], xmm4",
    "    movups xmmword ptr [r8 + 16], xmm5",
    "    movups xmmword ptr [r8 + 32], xmm6",
    "    movups xmmword ptr [r8 + 48], xmm7",
    "    jmp 90f",
    "50:",
    "    cmp rdx, rcx",
    "    jae 60f",
    "    mov rcx, rdx",
    "    rep movsb",
    "    jmp 90f",
    // Non-temporal: the first 64 bytes with plain stores, then from the destination's next
    // cache line on, 64-byte blocks with non-temporal stores while more than 64 bytes remain,
    // `sfence`, and the last 64 bytes with plain stores.
    "60:",
    "    movups xmm0, xmmword ptr [rsi]",
    "    movups xmm1, xmmword ptr [rsi + 16]",
    "    movups xmm2, xmmword ptr [rsi + 32]",
    "    movups xmm3, xmmword ptr [rsi + 48]",
    "    movups xmmword ptr [rdi], xmm0",
    "    movups xmmword ptr [rdi + 16], xmm1",
    "    movups xmmword ptr [rdi + 32], xmm2",
    "    movups xmmword ptr [rdi + 48], xmm3",
    "    lea r8, [rdi + rdx - 64]",
    "    lea r9, [rsi + rdx - 64]",
    "    mov rcx, rdi",
    "    neg rcx",
    "    and rcx, 63",
    "    add rsi, rcx",
    "    add rdi, rcx",
    "    sub rdx, rcx",
    "61:",
    "    movups xmm0, xmmword ptr [rsi]",
    "    movups xmm1, xmmword ptr [rsi + 16]",
    "    movups xmm2, xmmword ptr [rsi + 32]",
    "    movups xmm3, xmmword ptr [rsi + 48]",
    "    movntdq xmmword ptr [rdi], xmm0",
    "    movntdq xmmword ptr [rdi + 16], xmm1",
    "    movntdq xmmword ptr [rdi + 32], xmm2",
    "    movntdq xmmword ptr [rdi + 48], xmm3",
    "    add rsi, 64",
    "    add rdi, 64",
    "    sub rdx, 64",
    "    cmp rdx, 64",
    "    ja 61b",
    "    sfence",
    "    movups xmm0, xmmword ptr [r9]",
    "    movups xmm1, xmmword ptr [r9 + 16]",
    "    movups xmm2, xmmword ptr [r9 + 32]",
    "    movups xmm3, xmmword ptr [r9 + 48]",
    "    movups xmmword ptr [r8], xmm0",
    "    movups xmmword ptr [r8 + 16], xmm1",
    "    movups xmmword ptr [r8 + 32], xmm2",
    "    movups xmmword ptr [r8 + 48], xmm3",
    "90:",
    "    xor eax, eax",
    "    ret",
    // One byte of a page, read: the read fault maps or allocates the page.
    "__ipcmem_access_touch_read:",
    "    movzx eax, byte ptr [rdi]",
    "    xor eax, eax",
    "    ret",
    // One byte of a page, added 0 to atomically: a write fault that changes no byte, even if
    // another process writes it at that moment.
    "__ipcmem_access_touch_write:",
    "    lock add byte ptr [rdi], 0",
    "    xor eax, eax",
    "    ret",
    "__ipcmem_access_end:",
    // Where a fault inside the routines resumes, with `rax` and `rdx` set by the handler. The
    // `sfence` orders any non-temporal stores done before the fault.
    "__ipcmem_access_fixup:",
    "    sfence",
    "    ret",
    ".popsection",
    rep_from = const REP_MOVSB_FROM,
);

extern "C" {
    /// Copies `len` bytes from `src` to `dst`; from `non_temporal_from` bytes on with
    /// non-temporal stores.
    fn __ipcmem_access_copy(dst: *mut u8, src: *const u8, len: usize, non_temporal_from: usize) -> Outcome;
    /// Reads the byte at `at`.
    fn __ipcmem_access_touch_read(at: *const u8) -> Outcome;
    /// Adds 0 atomically to the byte at `at`.
    fn __ipcmem_access_touch_write(at: *mut u8) -> Outcome;
    /// The first instruction of the routines (a label, never called).
    fn __ipcmem_access_begin();
    /// Just past the last instruction of the routines (a label, never called).
    fn __ipcmem_access_end();
    /// Where a fault inside the routines resumes (a label, never called directly).
    fn __ipcmem_access_fixup();
}

/// The addresses of the routines' instructions, `begin..end`, and of the fix-up.
pub(super) fn code_range() -> (usize, usize, usize) {
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
pub(super) unsafe fn copy(dst: *mut u8, src: *const u8, len: usize, non_temporal_from: usize) -> Outcome {
    // SAFETY: the caller's promises are the routine's.
    unsafe { __ipcmem_access_copy(dst, src, len, non_temporal_from) }
}

/// Reads (or, if `write`, adds 0 atomically to) the byte at `at`, with the fault caught.
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
