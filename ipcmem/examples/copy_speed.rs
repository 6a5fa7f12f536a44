//! How fast the copy mechanism is, against `memcpy`: a measuring tool for the copy of
//! `read_at`/`write_at` (the official tables are those of the benchmark crate).
//!
//! `cargo run --release -p ipcmem --example copy_speed [--offset N] [SIZE…]` (sizes in bytes;
//! default 64 B, 4 KiB, 256 KiB, 1 MiB, 16 MiB, 1 GiB). For each size and direction it times,
//! on the same buffers, all resident and written before timing (the private buffer `N` bytes
//! past a page boundary, default 0; a large `Vec` of glibc's allocator is 16 bytes past one):
//! - `memcpy` between two private buffers (the floor: what copying that many bytes costs);
//! - `write_at`/`read_at` (bounds check, then the fault-safe routine);
//! - `memcpy` into or out of the mapping (what `unsafe` code does, unprotected);
//! - the byte-wise atomic loop that `read_at`/`write_at` used before (words where aligned).
//!
//! Each figure is the median of 31 samples, taken in turns with the other copies of the same
//! size and direction (so that a busy moment of the machine weighs on all alike); a sample
//! repeats the copy as often as fits in 200 µs (at least once) and gives the time of one
//! copy. The spread is the interquartile range over the median.

#![allow(
    clippy::cast_precision_loss,
    clippy::cast_ptr_alignment,
    reason = "times as f64 are far below 2^52 ns; the old loop casts only at the alignment offset"
)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use ipcmem::SharedMemory;

/// A copy to time.
type Copier<'a> = Box<dyn FnMut() + 'a>;

const SAMPLES: usize = 31;
const SAMPLE_TIME: Duration = Duration::from_micros(200);

fn main() -> Result<(), ipcmem::Error> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let offset = match args.iter().position(|arg| arg == "--offset") {
        Some(at) => {
            let offset = args.remove(at + 1).parse().expect("an offset in bytes");
            args.remove(at);
            offset
        }
        None => 0,
    };
    let sizes: Vec<usize> = args.iter().map(|size| size.parse().expect("a size in bytes")).collect();
    let sizes = if sizes.is_empty() { vec![64, 4 << 10, 256 << 10, 1 << 20, 16 << 20, 1 << 30] } else { sizes };
    println!("| size | direction | copy | median | GB/s | spread | ratio to memcpy |");
    println!("|---|---|---|---|---|---|---|");
    for size in sizes {
        measure(size, offset)?;
    }
    Ok(())
}

fn measure(size: usize, offset: usize) -> Result<(), ipcmem::Error> {
    let name = format!("/ipcmem-copy-speed-{}-{size}", std::process::id());
    let shm = SharedMemory::create(name.as_str(), size)?;
    let mut buffer = Private::new(size, offset);
    let mut private = Private::new(size, 0);
    let pattern: Vec<u8> = (0..size).map(|i| (i % 251).to_le_bytes()[0]).collect();
    buffer.bytes().copy_from_slice(&pattern);
    private.bytes().copy_from_slice(&pattern);
    shm.write_at(0, &pattern)?;
    drop(pattern);
    let mapped = shm.as_mut_ptr();
    let (buf, other) = (buffer.0, private.0);
    // SAFETY (all closures): every range is `size` bytes of a live, resident mapping; this
    // process is the only user of the object (a unique name), so the `unsafe` memcpy to and
    // from it races with nothing.
    let ins: [(&str, Copier<'_>); 4] = [
        ("memcpy private to private", Box::new(|| unsafe { memcpy(other, buf, size) })),
        (
            "write_at",
            Box::new(|| shm.write_at(0, black_box(unsafe { std::slice::from_raw_parts(buf, size) })).unwrap()),
        ),
        ("memcpy into the mapping (unsafe)", Box::new(|| unsafe { memcpy(mapped, buf, size) })),
        ("old byte-wise atomic loop", Box::new(|| unsafe { old_store(mapped, std::slice::from_raw_parts(buf, size)) })),
    ];
    report(size, "in", ins);
    let outs: [(&str, Copier<'_>); 4] = [
        ("memcpy private to private", Box::new(|| unsafe { memcpy(buf, other, size) })),
        (
            "read_at",
            Box::new(|| shm.read_at(0, black_box(unsafe { std::slice::from_raw_parts_mut(buf, size) })).unwrap()),
        ),
        ("memcpy out of the mapping (unsafe)", Box::new(|| unsafe { memcpy(buf, mapped, size) })),
        (
            "old byte-wise atomic loop",
            Box::new(|| unsafe { old_load(mapped, std::slice::from_raw_parts_mut(buf, size)) }),
        ),
    ];
    report(size, "out", outs);
    Ok(())
}

fn report(size: usize, direction: &str, mut copies: [(&str, Copier<'_>); 4]) {
    // Interleaved: sample i of every copy, then sample i + 1, so that a busy moment of the
    // machine weighs on all copies alike.
    let repeats: Vec<u64> = copies.iter_mut().map(|(_, copy)| calibrate(copy.as_mut())).collect();
    let mut samples = vec![Vec::with_capacity(SAMPLES); copies.len()];
    for _ in 0..SAMPLES {
        for (((_, copy), repeat), samples) in copies.iter_mut().zip(&repeats).zip(&mut samples) {
            let start = Instant::now();
            for _ in 0..*repeat {
                copy();
            }
            samples.push(start.elapsed().as_nanos() as f64 / *repeat as f64);
        }
    }
    let mut floor = f64::NAN;
    for (i, ((how, _), samples)) in copies.iter().zip(&mut samples).enumerate() {
        samples.sort_by(f64::total_cmp);
        let median = samples[SAMPLES / 2];
        let spread = (samples[SAMPLES * 3 / 4] - samples[SAMPLES / 4]) / median;
        if i == 0 {
            floor = median;
        }
        println!(
            "| {} | {direction} | {how} | {} | {:.2} | ±{:.1}% | {:.2} |",
            bytes(size),
            duration(median),
            size as f64 / median,
            spread * 100.0,
            floor / median
        );
    }
}

/// How many copies make one sample of at least [`SAMPLE_TIME`] (one copy at least), after a
/// first unmeasured copy.
fn calibrate(copy: &mut dyn FnMut()) -> u64 {
    copy();
    let start = Instant::now();
    let mut repeat = 0_u64;
    while start.elapsed() < SAMPLE_TIME {
        copy();
        repeat += 1;
    }
    repeat.max(1)
}

fn bytes(size: usize) -> String {
    match size {
        s if s >= 1 << 30 && s % (1 << 30) == 0 => format!("{} GiB", s >> 30),
        s if s >= 1 << 20 && s % (1 << 20) == 0 => format!("{} MiB", s >> 20),
        s if s >= 1 << 10 && s % (1 << 10) == 0 => format!("{} KiB", s >> 10),
        s => format!("{s} B"),
    }
}

fn duration(ns: f64) -> String {
    match ns {
        ns if ns >= 1e6 => format!("{:.2} ms", ns / 1e6),
        ns if ns >= 1e3 => format!("{:.2} µs", ns / 1e3),
        ns => format!("{ns:.1} ns"),
    }
}

/// glibc's `memcpy`, with a length the compiler cannot see.
unsafe fn memcpy(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: the caller's ranges.
    unsafe { libc::memcpy(dst.cast(), src.cast(), black_box(len)) };
}

/// `len` bytes of private anonymous memory, `offset` bytes past a page boundary.
struct Private(*mut u8, usize, usize);

impl Private {
    fn new(len: usize, offset: usize) -> Private {
        let mapped = len + offset;
        // SAFETY: a new private mapping at an address the kernel chooses.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                mapped,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED);
        // SAFETY: within the new mapping.
        Private(unsafe { ptr.cast::<u8>().add(offset) }, len, offset)
    }

    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: our own mapping of `len` bytes.
        unsafe { std::slice::from_raw_parts_mut(self.0, self.1) }
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        // SAFETY: our own mapping, unused from now on.
        unsafe { libc::munmap(self.0.sub(self.2).cast(), self.1 + self.2) };
    }
}

const WORD: usize = size_of::<usize>();

/// The copy out that `read_at` used before: relaxed atomic loads, a word at a time where
/// aligned, bytes at the ends.
unsafe fn old_load(src: *const u8, dst: &mut [u8]) {
    let len = dst.len();
    let head = src.align_offset(WORD).min(len);
    let words = (len - head) / WORD;
    for i in (0..head).chain(head + words * WORD..len) {
        // SAFETY: within the range.
        dst[i] = unsafe { AtomicU8::from_ptr(src.add(i).cast_mut()) }.load(Relaxed);
    }
    // SAFETY: aligned words within the range.
    let (from, to) = unsafe { (src.add(head).cast::<usize>(), dst.as_mut_ptr().add(head)) };
    for w in 0..words {
        // SAFETY: as above.
        let word = unsafe { AtomicUsize::from_ptr(from.add(w).cast_mut()) }.load(Relaxed);
        // SAFETY: within `dst`.
        unsafe { to.add(w * WORD).cast::<usize>().write_unaligned(word) };
    }
}

/// The copy in that `write_at` used before.
unsafe fn old_store(dst: *mut u8, src: &[u8]) {
    let len = src.len();
    let head = dst.align_offset(WORD).min(len);
    let words = (len - head) / WORD;
    for i in (0..head).chain(head + words * WORD..len) {
        // SAFETY: within the range.
        unsafe { AtomicU8::from_ptr(dst.add(i)) }.store(src[i], Relaxed);
    }
    // SAFETY: aligned words within the range.
    let (from, to) = unsafe { (src.as_ptr().add(head), dst.add(head).cast::<usize>()) };
    for w in 0..words {
        // SAFETY: within `src`.
        let word = unsafe { from.add(w * WORD).cast::<usize>().read_unaligned() };
        // SAFETY: as above.
        unsafe { AtomicUsize::from_ptr(to.add(w)) }.store(word, Relaxed);
    }
}
