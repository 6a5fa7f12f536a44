//! Copies in and out of memory that other processes may write at the same time.
//!
//! A plain `memcpy` over such memory is a data race, which Rust counts as undefined behaviour.
//! These copies are *byte-wise atomic* (in the sense of the C++ proposal P1478 and Rust's
//! RFC 3301): every byte is read or written by a relaxed atomic access, done a machine word at
//! a time where the address is aligned. A copy that races with a writer may see a mix of old and
//! new bytes, never undefined behaviour; ordering the data is the business of the user's own
//! synchronisation (an atomic flag, a lock, a semaphore).
//!
//! The `atomic-memcpy` crate offers the same for values of a fixed type; shared memory needs it
//! for slices of any length, hence these few lines.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

const WORD: usize = size_of::<usize>();

/// Copies `dst.len()` bytes from `src` into `dst`.
///
/// # Safety
/// `src..src + dst.len()` must be mapped and readable for the whole call. Other processes may
/// write it concurrently; nothing in this process may hold a `&mut` to it.
pub(crate) unsafe fn load(src: *const u8, dst: &mut [u8]) {
    let len = dst.len();
    let (head, words) = split(src, len);
    let body_end = head + words * WORD;
    for i in (0..head).chain(body_end..len) {
        // SAFETY: `src + i` is within the readable range (i < len); an `AtomicU8` has alignment 1.
        // Relaxed atomic loads are allowed on read-only memory (std::sync::atomic, "Atomic
        // accesses to read-only memory").
        dst[i] = unsafe { AtomicU8::from_ptr(src.add(i).cast_mut()) }.load(Ordering::Relaxed);
    }
    // Raw pointers and no slicing in the word loop: no bounds checks, so that the compiler
    // unrolls it into a plain run of loads and stores.
    // SAFETY: `head <= len`, within `src`'s range and `dst`.
    #[allow(clippy::cast_ptr_alignment)] // aligned: `head` is the alignment offset
    let (from, to) = unsafe { (src.add(head).cast::<usize>(), dst.as_mut_ptr().add(head)) };
    for w in 0..words {
        // SAFETY: word `w` of the body is word aligned (the body starts at the alignment
        // offset) and lies within the readable range (head + words * WORD <= len); relaxed
        // atomic loads are allowed on read-only memory.
        let word = unsafe { AtomicUsize::from_ptr(from.add(w).cast_mut()) }.load(Ordering::Relaxed);
        // SAFETY: the same bytes of `dst`, which we borrow mutably; unaligned is allowed.
        unsafe { to.add(w * WORD).cast::<usize>().write_unaligned(word) };
    }
}

/// Copies `src` to `dst..dst + src.len()`.
///
/// # Safety
/// `dst..dst + src.len()` must be mapped and writable for the whole call. Other processes may
/// access it concurrently; nothing in this process may hold a reference to it.
pub(crate) unsafe fn store(dst: *mut u8, src: &[u8]) {
    let len = src.len();
    let (head, words) = split(dst, len);
    let body_end = head + words * WORD;
    for i in (0..head).chain(body_end..len) {
        // SAFETY: `dst + i` is within the writable range (i < len); alignment 1.
        unsafe { AtomicU8::from_ptr(dst.add(i)) }.store(src[i], Ordering::Relaxed);
    }
    // SAFETY: `head <= len`, within `src` and `dst`'s range.
    #[allow(clippy::cast_ptr_alignment)] // aligned: `head` is the alignment offset
    let (from, to) = unsafe { (src.as_ptr().add(head), dst.add(head).cast::<usize>()) };
    for w in 0..words {
        // SAFETY: the bytes of `src` for word `w` lie within it; unaligned is allowed.
        let word = unsafe { from.add(w * WORD).cast::<usize>().read_unaligned() };
        // SAFETY: word `w` of the body is word aligned and lies within the writable range, as
        // in `load`.
        unsafe { AtomicUsize::from_ptr(to.add(w)) }.store(word, Ordering::Relaxed);
    }
}

/// How a copy of `len` bytes at `shared` splits: the bytes before the first word boundary
/// (`head`, at most `len`) and the number of whole words after them; the rest is the tail.
fn split(shared: *const u8, len: usize) -> (usize, usize) {
    let head = shared.align_offset(WORD).min(len);
    (head, (len - head) / WORD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_every_length_and_alignment() {
        let source: Vec<u8> = (0..=255).collect();
        for start in 0..WORD {
            for len in 0..64 {
                let mut out = vec![0; len];
                // SAFETY: the range lies within `source`, which nothing else touches.
                unsafe { load(source.as_ptr().add(start), &mut out) };
                assert_eq!(out, source[start..start + len]);
                let mut target = vec![0_u8; 80];
                // SAFETY: as above, within `target`.
                unsafe { store(target.as_mut_ptr().add(start), &source[..len]) };
                assert_eq!(&target[start..start + len], &source[..len]);
                assert!(target[..start].iter().chain(&target[start + len..]).all(|b| *b == 0));
            }
        }
    }
}
