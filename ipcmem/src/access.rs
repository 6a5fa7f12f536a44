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
    let head = src.align_offset(WORD).min(len);
    let body_end = head + (len - head) / WORD * WORD;
    for i in (0..head).chain(body_end..len) {
        // SAFETY: `src + i` is within the readable range (i < len); an `AtomicU8` has alignment 1.
        // Relaxed atomic loads are allowed on read-only memory (std::sync::atomic, "Atomic
        // accesses to read-only memory").
        dst[i] = unsafe { AtomicU8::from_ptr(src.add(i).cast_mut()) }.load(Ordering::Relaxed);
    }
    for (i, chunk) in (head..body_end).step_by(WORD).zip(dst[head..body_end].chunks_exact_mut(WORD)) {
        // SAFETY: `src + i` is word aligned (i starts at the alignment offset and steps by
        // WORD) and the word lies within the readable range (i + WORD <= body_end <= len).
        #[allow(clippy::cast_ptr_alignment)] // aligned: `i` steps from the alignment offset
        let word = unsafe { AtomicUsize::from_ptr(src.add(i).cast::<usize>().cast_mut()) }.load(Ordering::Relaxed);
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
}

/// Copies `src` to `dst..dst + src.len()`.
///
/// # Safety
/// `dst..dst + src.len()` must be mapped and writable for the whole call. Other processes may
/// access it concurrently; nothing in this process may hold a reference to it.
pub(crate) unsafe fn store(dst: *mut u8, src: &[u8]) {
    let len = src.len();
    let head = dst.align_offset(WORD).min(len);
    let body_end = head + (len - head) / WORD * WORD;
    for i in (0..head).chain(body_end..len) {
        // SAFETY: `dst + i` is within the writable range (i < len); alignment 1.
        unsafe { AtomicU8::from_ptr(dst.add(i)) }.store(src[i], Ordering::Relaxed);
    }
    for (i, chunk) in (head..body_end).step_by(WORD).zip(src[head..body_end].chunks_exact(WORD)) {
        let word = usize::from_ne_bytes(chunk.try_into().expect("chunks_exact gives WORD bytes"));
        // SAFETY: `dst + i` is word aligned and the word lies within the writable range, as in `load`.
        #[allow(clippy::cast_ptr_alignment)] // aligned: `i` steps from the alignment offset
        unsafe { AtomicUsize::from_ptr(dst.add(i).cast::<usize>()) }.store(word, Ordering::Relaxed);
    }
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
