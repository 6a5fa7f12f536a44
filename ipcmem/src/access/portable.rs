//! The portable copy: relaxed atomic accesses only, of the width each byte is claimed at
//! ([`super::claims`]); byte-wise where nothing is claimed. Used under Miri (which checks it)
//! and on architectures without an assembly routine. It is sound, but not fault-safe: a fault
//! of the mapping kills the process, as it would in `memcpy`, and it is slower than the routine.

use std::ops::Range;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};

use super::claims::{self, Claim};

/// Copies `dst.len()` bytes from `src` into `dst`.
///
/// # Safety
/// As [`super::load`]: the source range stays mapped and readable for the call.
pub(super) unsafe fn load(src: *const u8, dst: &mut [u8]) {
    let claims = claims::read();
    for (range, width) in segments(&claims, src as usize, dst.len()) {
        // SAFETY: `range` lies within the source (`segments`); its words of `width` are
        // claimed, so they lie within the mapping too and are aligned.
        unsafe { load_segment(src, range, width, dst) };
    }
}

/// Copies `src` to `dst..dst + src.len()`.
///
/// # Safety
/// As [`super::store`]: the destination range stays mapped and writable for the call.
pub(super) unsafe fn store(dst: *mut u8, src: &[u8]) {
    let claims = claims::read();
    for (range, width) in segments(&claims, dst as usize, src.len()) {
        // SAFETY: as in `load`.
        unsafe { store_segment(dst, range, width, src) };
    }
}

/// The copy of `len` bytes at address `start` cut into ranges of offsets (from `start`), each
/// with the width its bytes are accessed at: 1 where unclaimed, else the claim's.
fn segments(claims: &[Claim], start: usize, len: usize) -> Vec<(Range<usize>, usize)> {
    let end = start + len;
    let mut segments = Vec::new();
    let mut at = start;
    for claim in claims::overlapping(claims, start, end) {
        let from = at.max(claim.start);
        if at < from {
            segments.push((at - start..from - start, 1));
        }
        let to = end.min(claim.end);
        segments.push((from - start..to - start, claim.width));
        at = to;
    }
    if at < end {
        segments.push((at - start..end - start, 1));
    }
    segments
}

/// For each word of `width` (aligned) that `range` of the bytes at address `base` touches:
/// the distance from `base` to the word (which may start before `base`: a copy may begin in
/// the middle of a claimed word), and the part of the word within `range`, as offsets from
/// `base` and from the word.
fn words(base: usize, range: Range<usize>, width: usize) -> impl Iterator<Item = (usize, Range<usize>, Range<usize>)> {
    let (start, end) = (base + range.start, base + range.end);
    let first = start - start % width;
    (first..end).step_by(width).map(move |word| {
        let (from, to) = (word.max(start), (word + width).min(end));
        (word.wrapping_sub(base), from - base..to - base, from - word..to - word)
    })
}

/// # Safety
/// `range` lies within the readable bytes at `src`, and every word of `width` it touches lies
/// within the mapping, aligned.
unsafe fn load_segment(src: *const u8, range: Range<usize>, width: usize, dst: &mut [u8]) {
    for (distance, part, within) in words(src as usize, range, width) {
        // SAFETY: the caller's promise for the word; the pointer is derived from `src`
        // (wrapping back when the word starts before it), within the same mapping.
        let bytes = unsafe { load_word(src.wrapping_add(distance), width) };
        dst[part].copy_from_slice(&bytes[within]);
    }
}

/// # Safety
/// `range` lies within the writable bytes at `dst`, and every word of `width` it touches lies
/// within the mapping, aligned.
unsafe fn store_segment(dst: *mut u8, range: Range<usize>, width: usize, src: &[u8]) {
    for (distance, part, within) in words(dst as usize, range, width) {
        let at = dst.wrapping_add(distance);
        if within.len() == width {
            let mut bytes = [0; 8];
            bytes[..width].copy_from_slice(&src[part]);
            // SAFETY: the caller's promise for the word at `at`.
            unsafe { store_word(at, width, bytes) };
        } else {
            // A part of a claimed word: replace the part, keep the rest, with a
            // compare-exchange of the whole word (no other size ever touches it).
            // SAFETY: as above.
            unsafe { merge_word(at, width, within, &src[part]) };
        }
    }
}

/// Loads the word of `width` bytes at `at`; its bytes in memory order.
///
/// # Safety
/// `at` is aligned for `width` and within a readable mapping.
unsafe fn load_word(at: *const u8, width: usize) -> [u8; 8] {
    let mut bytes = [0; 8];
    // SAFETY: the caller's promise; relaxed atomic loads are allowed on read-only memory.
    unsafe {
        match width {
            1 => bytes[0] = AtomicU8::from_ptr(at.cast_mut()).load(Relaxed),
            4 => bytes[..4].copy_from_slice(&AtomicU32::from_ptr(at.cast_mut().cast()).load(Relaxed).to_ne_bytes()),
            _ => bytes = AtomicU64::from_ptr(at.cast_mut().cast()).load(Relaxed).to_ne_bytes(),
        }
    }
    bytes
}

/// Stores the first `width` of `bytes` as one word at `at`.
///
/// # Safety
/// `at` is aligned for `width` and within a writable mapping.
unsafe fn store_word(at: *mut u8, width: usize, bytes: [u8; 8]) {
    // SAFETY: the caller's promise.
    unsafe {
        match width {
            1 => AtomicU8::from_ptr(at).store(bytes[0], Relaxed),
            4 => AtomicU32::from_ptr(at.cast())
                .store(u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]), Relaxed),
            _ => AtomicU64::from_ptr(at.cast()).store(u64::from_ne_bytes(bytes), Relaxed),
        }
    }
}

/// Replaces bytes `part` of the word of `width` at `at` by `new`, keeping the others.
///
/// # Safety
/// `at` is aligned for `width` (4 or 8) and within a writable mapping.
unsafe fn merge_word(at: *mut u8, width: usize, part: Range<usize>, new: &[u8]) {
    let merged = |old: [u8; 8]| {
        let mut bytes = old;
        bytes[part.clone()].copy_from_slice(new);
        bytes
    };
    // SAFETY: the caller's promise.
    unsafe {
        if width == 4 {
            let word = AtomicU32::from_ptr(at.cast());
            let _ = word.fetch_update(Relaxed, Relaxed, |old| {
                let mut wide = [0; 8];
                wide[..4].copy_from_slice(&old.to_ne_bytes());
                let new = merged(wide);
                Some(u32::from_ne_bytes([new[0], new[1], new[2], new[3]]))
            });
        } else {
            let word = AtomicU64::from_ptr(at.cast());
            let _ = word.fetch_update(Relaxed, Relaxed, |old| Some(u64::from_ne_bytes(merged(old.to_ne_bytes()))));
        }
    }
}
