//! The fixed cost of a 64-byte copy: `write_at`/`read_at` (the fault-safe routine of issue 9)
//! against glibc's `memcpy` and against the byte-wise atomic loop that the library used before
//! (kept here, as it was, for this comparison only). Same process, same buffers (a prefaulted
//! object and a private buffer), each variant in a loop of its own, the variants taking turns;
//! the median of 15 batches of 4 million copies each.
//!
//! ```sh
//! cargo run --release -p ipcmem-bench --example fixed_cost
//! ```

use std::time::Instant;

use ipcmem::SharedMemory;

/// Copies in a batch.
const COPIES: usize = 4_000_000;
/// Batches of each variant.
const BATCHES: usize = 15;
/// The length of a copy.
const LEN: usize = 64;

fn main() -> ipcmem::Result<()> {
    let name = format!("/ipcmem-fixed-cost-{}", std::process::id());
    let shm = SharedMemory::options().prefault(true).create(name.as_str(), 4096)?;
    let mut private = vec![0_u8; 4096];
    let names = ["memcpy in", "write_at", "old loop in", "memcpy out", "read_at", "old loop out"];
    let mut batches: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let (private, shared) = (private.as_mut_ptr(), shm.as_mut_ptr());
    // SAFETY (of each `unsafe` below): `private` is `len` bytes of this program's buffer,
    // `shared` the first `len` of the object, which this program alone uses; they do not
    // overlap.
    for _ in 0..BATCHES {
        batches[0].push(per_copy(private, shared, |p, s, len| {
            // SAFETY: see above.
            unsafe { std::ptr::copy_nonoverlapping(p, s, len) };
            Ok(())
        })?);
        // SAFETY: see above.
        batches[1].push(per_copy(private, shared, |p, _, len| {
            shm.write_at(0, unsafe { std::slice::from_raw_parts(p, len) })
        })?);
        batches[2].push(per_copy(private, shared, |p, s, len| {
            // SAFETY: see above.
            unsafe { old_loop::store(s, std::slice::from_raw_parts(p, len)) };
            Ok(())
        })?);
        batches[3].push(per_copy(private, shared, |p, s, len| {
            // SAFETY: see above.
            unsafe { std::ptr::copy_nonoverlapping(s, p, len) };
            Ok(())
        })?);
        // SAFETY: see above.
        batches[4].push(per_copy(private, shared, |p, _, len| {
            shm.read_at(0, unsafe { std::slice::from_raw_parts_mut(p, len) })
        })?);
        batches[5].push(per_copy(private, shared, |p, s, len| {
            // SAFETY: see above.
            unsafe { old_loop::load(s, std::slice::from_raw_parts_mut(p, len)) };
            Ok(())
        })?);
    }
    for (name, mut times) in names.iter().zip(batches) {
        times.sort_by(f64::total_cmp);
        println!(
            "{name:13} median {:.2} ns  (lowest {:.2}, highest {:.2})",
            times[times.len() / 2],
            times[0],
            times[times.len() - 1]
        );
    }
    Ok(())
}

/// The time of one copy, in nanoseconds: `copy` (private buffer, object, length) done
/// [`COPIES`] times in a loop of its own (no dispatch between variants inside it).
fn per_copy(
    private: *mut u8,
    shared: *mut u8,
    mut copy: impl FnMut(*mut u8, *mut u8, usize) -> ipcmem::Result<()>,
) -> ipcmem::Result<f64> {
    let start = Instant::now();
    for _ in 0..COPIES {
        let (private, shared, len) = opaque(private, shared, LEN);
        copy(private, shared, len)?;
    }
    #[allow(clippy::cast_precision_loss)] // nanoseconds of a batch: far below 2^52
    Ok(start.elapsed().as_nanos() as f64 / COPIES as f64)
}

/// The same values, unknown to the compiler (an empty `asm!`): no copy is hoisted or merged,
/// and nothing goes through the stack.
fn opaque(private: *mut u8, shared: *mut u8, len: usize) -> (*mut u8, *mut u8, usize) {
    let (mut private, mut shared, mut len) = (private, shared, len);
    // SAFETY: the assembly is empty: it changes no register, memory or flag.
    unsafe {
        std::arch::asm!("/* {0} {1} {2} */", inout(reg) private, inout(reg) shared, inout(reg) len, options(nostack, preserves_flags));
    }
    (private, shared, len)
}

/// The copy of `ipcmem` before issue 9 (`git show 177889b:ipcmem/src/access.rs`): byte-wise
/// atomic, a machine word at a time where aligned.
mod old_loop {
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
}
