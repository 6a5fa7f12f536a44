//! The copy routine of `x86_64`: plain moves (`mov`, `movups`, `vmovdqu`, `rep movsb`,
//! `movntdq`) between two labels, so that the fault handler ([`super::fault`]) knows every
//! instruction that may fault on the shared mapping, and a fix-up address where such a fault
//! resumes.
//!
//! Calling convention (System V): `rdi` = destination, `rsi` = source, `rdx` = length, `rcx` =
//! the address of the [`Strategy`]: the length from which non-temporal stores are used, the
//! length from which `rep movsb` is used, whether the processor has AVX2 (and the system saves
//! its registers). The routine reads it only where needed (a small copy, one byte of it), so
//! that callers pass one register instead of loading three. Returns [`Outcome`] in `rax:rdx`:
//! `rax` is 0 when every byte was copied; after a fault the handler makes the routine return
//! the signal number in `rax` and the faulting address in `rdx`.
//!
//! What the routine does, by length (none touches the stack or a callee-saved register, so a
//! fault can resume at a bare `ret`):
//! - 0 to 64 bytes: two to four loads that may overlap (the first and last 1, 4, 8, 16 or 32
//!   bytes), then the same stores: no loop, no branch on alignment. 33 to 64 bytes come first
//!   and take no branch, with two 32-byte AVX moves where the processor has AVX2.
//! - 65 bytes and more: a loop of blocks (128 bytes of four 32-byte AVX moves where the
//!   processor has AVX2, else 64 bytes of four 16-byte SSE moves), the last block loaded
//!   first and stored last (overlapping the last block), `vzeroupper` after AVX.
//! - from the `rep movsb` threshold on, where source and destination are equally aligned to a
//!   cache line: `rep movsb` after the first 64 bytes, from the destination's next cache line
//!   on, which processors with ERMS/FSRM run at full cache-line speed (glibc's `memcpy` does
//!   the same). Misaligned ones stay in the loop: `rep movsb` ran at 0.4-0.7 of `memcpy` for
//!   1-16 MiB on AMD Zen with the destination 16 bytes past the source's alignment (where a
//!   `Vec` of the allocator is against a page).
//! - from the non-temporal threshold on: 64-byte blocks stored with `movntdq` (aligned to the
//!   destination's cache lines), which bypass the caches for copies larger than they are,
//!   then `sfence`, so that a later store (a release flag) is seen after the data.
//!
//! The direction flag is clear on entry (the ABI says so) and not changed.

/// What the routine returns: `signal` 0, or the signal and address of a fault.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(super) struct Outcome {
    /// 0 after a full copy; `SIGBUS` or `SIGSEGV` after a fault.
    pub signal: u64,
    /// The faulting address (`si_addr`); meaningless when `signal` is 0.
    pub address: u64,
}

/// How the routine copies long runs, chosen once per process. The routine reads it at the
/// offsets 0, 8 and 16 (`repr(C)`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(super) struct Strategy {
    /// From this length on, non-temporal stores.
    pub non_temporal_from: usize,
    /// From this length on, `rep movsb` (where source and destination are equally aligned).
    pub rep_movsb_from: usize,
    /// Whether the loop uses 32-byte AVX moves.
    pub avx: bool,
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
    concat!(".globl ", symbol!("fixup_avx")),
    concat!(".hidden ", symbol!("fixup_avx")),
    concat!(".globl ", symbol!("fixup")),
    concat!(".hidden ", symbol!("fixup")),
    concat!(symbol!("begin"), ":"),
    concat!(symbol!("copy"), ":"),
    // 33 to 64 bytes first, with no branch taken: the first 32 and the last 32, as two AVX
    // moves where the processor has AVX2 (two stores where SSE needs four), else four SSE.
    // Each path returns where it ends (a taken jump to a shared `ret` costs a cycle).
    "    cmp rdx, 32",
    "    jbe 10f",
    "    cmp rdx, 64",
    "    ja 40f",
    "    cmp byte ptr [rcx + 16], 0",
    "    je 31f",
    "    vmovdqu ymm0, ymmword ptr [rsi]",
    "    vmovdqu ymm1, ymmword ptr [rsi + rdx - 32]",
    "    vmovdqu ymmword ptr [rdi], ymm0",
    "    vmovdqu ymmword ptr [rdi + rdx - 32], ymm1",
    "    vzeroupper",
    "    xor eax, eax",
    "    ret",
    "31:",
    "    movups xmm0, xmmword ptr [rsi]",
    "    movups xmm1, xmmword ptr [rsi + 16]",
    "    movups xmm2, xmmword ptr [rsi + rdx - 32]",
    "    movups xmm3, xmmword ptr [rsi + rdx - 16]",
    "    movups xmmword ptr [rdi], xmm0",
    "    movups xmmword ptr [rdi + 16], xmm1",
    "    movups xmmword ptr [rdi + rdx - 32], xmm2",
    "    movups xmmword ptr [rdi + rdx - 16], xmm3",
    "    xor eax, eax",
    "    ret",
    // 0 to 32 bytes.
    "10:",
    "    cmp rdx, 16",
    "    ja 20f",
    "    cmp rdx, 8",
    "    jae 12f",
    "    cmp rdx, 4",
    "    jae 11f",
    "    test rdx, rdx",
    "    je 90f",
    // 1 to 3 bytes: the first, the middle and the last (some the same).
    "    mov r10, rdx",
    "    shr r10, 1",
    "    movzx eax, byte ptr [rsi]",
    "    movzx r11d, byte ptr [rsi + r10]",
    "    movzx ecx, byte ptr [rsi + rdx - 1]",
    "    mov byte ptr [rdi], al",
    "    mov byte ptr [rdi + r10], r11b",
    "    mov byte ptr [rdi + rdx - 1], cl",
    "    xor eax, eax",
    "    ret",
    // 4 to 7 bytes: the first 4 and the last 4.
    "11:",
    "    mov eax, dword ptr [rsi]",
    "    mov ecx, dword ptr [rsi + rdx - 4]",
    "    mov dword ptr [rdi], eax",
    "    mov dword ptr [rdi + rdx - 4], ecx",
    "    xor eax, eax",
    "    ret",
    // 8 to 16 bytes: the first 8 and the last 8.
    "12:",
    "    mov rax, qword ptr [rsi]",
    "    mov rcx, qword ptr [rsi + rdx - 8]",
    "    mov qword ptr [rdi], rax",
    "    mov qword ptr [rdi + rdx - 8], rcx",
    "    xor eax, eax",
    "    ret",
    // 17 to 32 bytes: the first 16 and the last 16.
    "20:",
    "    movups xmm0, xmmword ptr [rsi]",
    "    movups xmm1, xmmword ptr [rsi + rdx - 16]",
    "    movups xmmword ptr [rdi], xmm0",
    "    movups xmmword ptr [rdi + rdx - 16], xmm1",
    "    xor eax, eax",
    "    ret",
    // 65 bytes and more: non-temporal from `[rcx]` bytes on; `rep movsb` from `[rcx + 8]`
    // bytes on if source and destination are equally aligned to a cache line; else the loop.
    "40:",
    "    cmp rdx, qword ptr [rcx + 8]",
    "    jb 41f",
    "    cmp rdx, qword ptr [rcx]",
    "    jae 60f",
    "    mov r10, rdi",
    "    xor r10, rsi",
    "    test r10, 63",
    "    jz 50f",
    "41:",
    "    cmp byte ptr [rcx + 16], 0",
    "    je 43f",
    "    cmp rdx, 128",
    "    jbe 43f",
    // The AVX loop: the last 128 bytes first (kept in ymm4-7), then 128-byte blocks while
    // more than 128 bytes remain, then the last 128 bytes.
    "    vmovdqu ymm4, ymmword ptr [rsi + rdx - 128]",
    "    vmovdqu ymm5, ymmword ptr [rsi + rdx - 96]",
    "    vmovdqu ymm6, ymmword ptr [rsi + rdx - 64]",
    "    vmovdqu ymm7, ymmword ptr [rsi + rdx - 32]",
    "    lea r10, [rdi + rdx - 128]",
    "42:",
    "    vmovdqu ymm0, ymmword ptr [rsi]",
    "    vmovdqu ymm1, ymmword ptr [rsi + 32]",
    "    vmovdqu ymm2, ymmword ptr [rsi + 64]",
    "    vmovdqu ymm3, ymmword ptr [rsi + 96]",
    "    vmovdqu ymmword ptr [rdi], ymm0",
    "    vmovdqu ymmword ptr [rdi + 32], ymm1",
    "    vmovdqu ymmword ptr [rdi + 64], ymm2",
    "    vmovdqu ymmword ptr [rdi + 96], ymm3",
    "    add rsi, 128",
    "    add rdi, 128",
    "    sub rdx, 128",
    "    cmp rdx, 128",
    "    ja 42b",
    "    vmovdqu ymmword ptr [r10], ymm4",
    "    vmovdqu ymmword ptr [r10 + 32], ymm5",
    "    vmovdqu ymmword ptr [r10 + 64], ymm6",
    "    vmovdqu ymmword ptr [r10 + 96], ymm7",
    "    vzeroupper",
    "    jmp 90f",
    // The SSE loop: the same with 64-byte blocks (ymm registers untouched).
    "43:",
    "    movups xmm4, xmmword ptr [rsi + rdx - 64]",
    "    movups xmm5, xmmword ptr [rsi + rdx - 48]",
    "    movups xmm6, xmmword ptr [rsi + rdx - 32]",
    "    movups xmm7, xmmword ptr [rsi + rdx - 16]",
    "    lea r10, [rdi + rdx - 64]",
    "44:",
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
    "    ja 44b",
    "    movups xmmword ptr [r10], xmm4",
    "    movups xmmword ptr [r10 + 16], xmm5",
    "    movups xmmword ptr [r10 + 32], xmm6",
    "    movups xmmword ptr [r10 + 48], xmm7",
    "    jmp 90f",
    // `rep movsb` from the destination's next cache line on, the first 64 bytes copied with
    // plain moves first: source and destination are then both aligned to a cache line.
    "50:",
    "    movups xmm0, xmmword ptr [rsi]",
    "    movups xmm1, xmmword ptr [rsi + 16]",
    "    movups xmm2, xmmword ptr [rsi + 32]",
    "    movups xmm3, xmmword ptr [rsi + 48]",
    "    movups xmmword ptr [rdi], xmm0",
    "    movups xmmword ptr [rdi + 16], xmm1",
    "    movups xmmword ptr [rdi + 32], xmm2",
    "    movups xmmword ptr [rdi + 48], xmm3",
    "    mov rcx, rdi",
    "    neg rcx",
    "    and rcx, 63",
    "    add rsi, rcx",
    "    add rdi, rcx",
    "    sub rdx, rcx",
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
    "    lea r10, [rdi + rdx - 64]",
    "    lea r11, [rsi + rdx - 64]",
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
    "    movups xmm0, xmmword ptr [r11]",
    "    movups xmm1, xmmword ptr [r11 + 16]",
    "    movups xmm2, xmmword ptr [r11 + 32]",
    "    movups xmm3, xmmword ptr [r11 + 48]",
    "    movups xmmword ptr [r10], xmm0",
    "    movups xmmword ptr [r10 + 16], xmm1",
    "    movups xmmword ptr [r10 + 32], xmm2",
    "    movups xmmword ptr [r10 + 48], xmm3",
    "90:",
    "    xor eax, eax",
    "    ret",
    // One byte of a page, read: the read fault maps or allocates the page.
    concat!(symbol!("touch_read"), ":"),
    "    movzx eax, byte ptr [rdi]",
    "    xor eax, eax",
    "    ret",
    // One byte of a page, added 0 to atomically: a write fault that changes no byte, even if
    // another process writes it at that moment.
    concat!(symbol!("touch_write"), ":"),
    "    lock add byte ptr [rdi], 0",
    "    xor eax, eax",
    "    ret",
    concat!(symbol!("end"), ":"),
    // Where a fault inside the routines resumes, with `rax` and `rdx` set by the handler: on a
    // processor with AVX, `vzeroupper` first (the fault may have left the AVX loop), then
    // `sfence` to order any non-temporal stores done before the fault.
    concat!(symbol!("fixup_avx"), ":"),
    "    vzeroupper",
    concat!(symbol!("fixup"), ":"),
    "    sfence",
    "    ret",
    ".popsection",
);

extern "C" {
    /// Copies `len` bytes from `src` to `dst` (see the module's documentation).
    #[link_name = symbol!("copy")]
    fn __ipcmem_access_copy(dst: *mut u8, src: *const u8, len: usize, strategy: *const Strategy) -> Outcome;
    /// Reads the byte at `at`.
    #[link_name = symbol!("touch_read")]
    fn __ipcmem_access_touch_read(at: *const u8) -> Outcome;
    /// Adds 0 atomically to the byte at `at`.
    #[link_name = symbol!("touch_write")]
    fn __ipcmem_access_touch_write(at: *mut u8) -> Outcome;
    /// The first instruction of the routines (a label, never called).
    #[link_name = symbol!("begin")]
    fn __ipcmem_access_begin();
    /// Just past the last instruction of the routines (a label, never called).
    #[link_name = symbol!("end")]
    fn __ipcmem_access_end();
    /// Where a fault inside the routines resumes on a processor with AVX (never called).
    #[link_name = symbol!("fixup_avx")]
    fn __ipcmem_access_fixup_avx();
    /// Where a fault inside the routines resumes otherwise (never called directly).
    #[link_name = symbol!("fixup")]
    fn __ipcmem_access_fixup();
}

/// The addresses of the routines' instructions, `begin..end`, and of the fix-up for a
/// processor with AVX (`avx`) or without.
pub(super) fn code_range(avx: bool) -> (usize, usize, usize) {
    let fixup = if avx { __ipcmem_access_fixup_avx as *const () } else { __ipcmem_access_fixup as *const () };
    (__ipcmem_access_begin as *const () as usize, __ipcmem_access_end as *const () as usize, fixup as usize)
}

/// The strategy for this processor: AVX2 for the loop where the processor has it (and the
/// kernel saves its registers, which `is_x86_feature_detected!` checks), `rep movsb` from
/// 2 KiB on without AVX2 (glibc's threshold here is 2112 bytes), from 16 KiB on with it (the
/// AVX loop was faster below: 1.2 times at 4 KiB in cache), non-temporal stores from 3/4 of the
/// last-level cache (as glibc's `memcpy`; above it, a copy evicts the whole cache anyway).
pub(super) fn strategy() -> Strategy {
    let avx = std::arch::is_x86_feature_detected!("avx2");
    // SAFETY: sysconf has no preconditions.
    let cache = unsafe { libc::sysconf(libc::_SC_LEVEL3_CACHE_SIZE) };
    let cache = usize::try_from(cache).ok().filter(|size| *size > 0).unwrap_or(8 << 20);
    Strategy { non_temporal_from: cache / 4 * 3, rep_movsb_from: if avx { 16 << 10 } else { 2 << 10 }, avx }
}

/// Copies `len` bytes from `src` to `dst` with the routine.
///
/// # Safety
/// Both ranges are mapped for the call (a fault of the shared one is caught once
/// [`super::fault::install`] ran; a fault of the other is a crash, as for `memcpy`); they do
/// not overlap; `dst` is writable; `strategy.avx` only if the processor has AVX2.
#[inline]
pub(super) unsafe fn copy(dst: *mut u8, src: *const u8, len: usize, strategy: &Strategy) -> Outcome {
    let (signal, address): (u64, u64);
    // A direct call (the routine is hidden in this object: no detour through the GOT), which
    // follows the C calling convention, and so clobbers what a C call clobbers.
    // SAFETY: the caller's promises are the routine's.
    unsafe {
        std::arch::asm!(
            "call {copy}",
            copy = sym __ipcmem_access_copy,
            inout("rdi") dst => _,
            inout("rsi") src => _,
            inout("rdx") len => address,
            inout("rcx") std::ptr::from_ref(strategy) => _,
            out("rax") signal,
            clobber_abi("C"),
        );
    }
    Outcome { signal, address }
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
