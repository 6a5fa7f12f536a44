//! `--copy`: copies in (`write_at`) and out (`read_at`) of a shared object, from 64 bytes to
//! the size of the large objects, against `memcpy` between the very same bytes.
//!
//! How the limit is kept right:
//!
//! - **The same buffers.** One object (POSIX, volatile) and one private buffer, both
//!   page-aligned (`mmap`) and prefaulted before anything is timed; every variant of every size
//!   copies between the start of the object and the start of the buffer. The limit of a
//!   direction is `memcpy` (`ptr::copy_nonoverlapping`) between those same addresses (allowed
//!   here: nothing else touches the object). Before, the limit copied between *other* memory
//!   (private to private, and a `Vec` 16 bytes past a page boundary), whose relative alignment
//!   alone changes glibc's `memcpy` by up to 1.7× on this machine.
//! - **The fastest copy.** The limit of each repetition is the fastest of glibc's `memcpy`,
//!   `rep movsb` and a plain AVX2 loop: for copies that fit in the caches yet are past glibc's
//!   threshold for non-temporal stores (16 MiB here), glibc's stores go to memory while an
//!   ordinary copy's stay in the caches, and a safe copy that does the latter beat "the limit"
//!   by 1.4×; at 4 KiB glibc starts `rep movsb`, which a vector loop beats by 10%.
//! - **Paired, at the same moment.** The machine is shared (other processes build and test on
//!   its 2 CPUs): a limit timed a second before its subject measures another machine. The
//!   variants of a direction take turns, batch by batch; a ratio is of two batches of one
//!   turn, a repetition's ratio the median of its turns', and the table shows the median
//!   over the repetitions and the spread.
//! - **Only time on the CPU, no faults.** A batch during which this thread spent more than
//!   [`OFF_CPU`] of the time off its CPU (wall time against `CLOCK_THREAD_CPUTIME_ID`: the
//!   scheduler gave the CPU to another process) is timed again, up to [`RETRIES`] times; page
//!   faults during timed batches (`getrusage(RUSAGE_THREAD)`) are counted and printed (none are
//!   expected: both buffers are resident).
//! - **Enough work per sample.** Small copies are repeated in a batch of about [`BATCH_BYTES`]
//!   (so a batch lasts milliseconds, far above the clock's tick); the addresses and length
//!   pass through an empty `asm!` at every copy (`opaque`), so the repeated copies are not
//!   merged or hoisted. Not through `black_box`: its store and reload of every value cost more
//!   than a 64-byte copy, and the safe copy, with fewer values to pass, beat memcpy by 7%.

use std::time::{Duration, Instant};

use ipcmem::SharedMemory;

use crate::failure::{failure, Failure, Outcome};
use crate::raw::PrivateMemory;
use crate::section::{Counts, Section};
use crate::stats::{self, Samples, Table};
use crate::{progress, stop, Settings};

/// `--copy`, in the default run.
pub const SECTION: Section = Section {
    flag: "copy",
    help: "Copies in and out (write_at, read_at), 64 B to --size, against the fastest of memcpy, rep movsb \
           and an AVX2 loop between the same buffers",
    in_default_run: true,
    large: true,
    reps: Counts { full: 5, quick: 2 },
    iterations: Counts::NONE,
    run,
};

/// The sizes of the table (those up to `--size`, then `--size` itself).
const SIZES: [usize; 6] = [64, 4 << 10, 256 << 10, 1 << 20, 16 << 20, 1 << 30];
/// Bytes a batch copies at least (a whole copy if larger): small copies are repeated.
const BATCH_BYTES: usize = 64 << 20;
/// The same with `--quick`.
const QUICK_BATCH_BYTES: usize = 64 << 10;
/// Batches of each variant in one repetition (taking turns); the repetition's figure is their
/// median.
const BATCHES: usize = 3;
/// How often a batch the scheduler interrupted is timed again.
const RETRIES: usize = 3;
/// The share of a batch's time this thread may spend off its CPU before the batch is retimed.
const OFF_CPU: f64 = 0.05;

/// Which way the bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// Private buffer into the object.
    In,
    /// The object into the private buffer.
    Out,
}

impl Direction {
    fn describe(self) -> &'static str {
        match self {
            Direction::In => "in: write_at / memcpy into the mapping",
            Direction::Out => "out: read_at / memcpy out of the mapping",
        }
    }
}

/// The two buffers every copy goes between, both resident.
struct Buffers {
    shm: SharedMemory,
    private: PrivateMemory,
}

impl Buffers {
    /// A new object and private memory of `size` bytes, every page allocated before use.
    fn new(size: usize) -> Result<Buffers, Failure> {
        let name = stop::unique_name();
        let shm = SharedMemory::options().prefault(true).create(name.as_str(), size)?;
        let mut private = PrivateMemory::new(size)?;
        for (i, byte) in private.as_mut_slice().iter_mut().enumerate() {
            *byte = u8::try_from(i % 251).unwrap_or(0);
        }
        shm.write_at(0, private.as_slice())?;
        Ok(Buffers { shm, private })
    }

    /// Copies `len` bytes `times` times, in `way`: one loop per way, so that no variant pays
    /// for a dispatch inside its loop (an indirect jump per copy, which LLVM left in some loops
    /// and not in others).
    fn copy(&mut self, direction: Direction, way: Way, len: usize, times: usize) -> Result<(), Failure> {
        let private = self.private.as_mut_slice()[..len].as_mut_ptr();
        let shared = self.shm.as_mut_ptr();
        let (src, dst) = match direction {
            Direction::In => (private, shared),
            Direction::Out => (shared, private),
        };
        let shm = &self.shm;
        let avx2 = has_avx2();
        // What every `unsafe` below relies on: `src` and `dst` are `len` or more bytes of two
        // different mappings (the private buffer and the object), readable and writable for
        // the life of `self`; the object is this run's own, under a unique name, and nothing
        // else accesses either meanwhile.
        let done = match (way, direction) {
            (Way::Safe, Direction::In) => repeat(times, src, dst, len, |src, _, offset, len| {
                // SAFETY: `src` is the private buffer (see above).
                shm.write_at(offset, unsafe { std::slice::from_raw_parts(src, len) })
            }),
            (Way::Safe, Direction::Out) => repeat(times, src, dst, len, |_, dst, offset, len| {
                // SAFETY: `dst` is the private buffer (see above).
                shm.read_at(offset, unsafe { std::slice::from_raw_parts_mut(dst, len) })
            }),
            (Way::Memcpy, _) => repeat(times, src, dst, len, |src, dst, _, len| {
                // SAFETY: see above.
                unsafe { std::ptr::copy_nonoverlapping(src, dst, len) };
                Ok(())
            }),
            (Way::RepMovsb, _) => repeat(times, src, dst, len, |src, dst, _, len| {
                // SAFETY: see above.
                unsafe { rep_movsb(src, dst, len) };
                Ok(())
            }),
            (Way::Avx2, _) => repeat(times, src, dst, len, |src, dst, _, len| {
                // SAFETY: see above; `avx2` only where the processor has AVX2 (`has_avx2`).
                unsafe { avx2_copy(avx2, src, dst, len) };
                Ok(())
            }),
        };
        Ok(done?)
    }
}

/// Calls `copy` `times` times with the source, the destination, offset 0 and `len`. Each
/// turn the addresses and the length are new to the compiler, and memory may have changed (see
/// [`opaque`]): nothing is hoisted or merged, and nothing goes through the stack (as
/// `black_box` would: a store and a reload per value, which cost more than a 64-byte copy and
/// hid the copies' own cost).
#[allow(clippy::inline_always)]
#[inline(always)]
fn repeat(
    times: usize,
    src: *mut u8,
    dst: *mut u8,
    len: usize,
    mut copy: impl FnMut(*mut u8, *mut u8, usize, usize) -> ipcmem::Result<()>,
) -> ipcmem::Result<()> {
    for _ in 0..times {
        let (src, dst, offset, len) = opaque(src, dst, 0, len);
        copy(src, dst, offset, len)?;
    }
    Ok(())
}

/// Whether the processor has AVX2 (the `AVX2` way is `memcpy` elsewhere).
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx2");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// The same values, unknown to the compiler: an empty `asm!` that takes them in registers,
/// may change them, and may read and write any memory (no `nomem`), so that the copies before
/// it are done and those after it are not merged with them. It costs no instruction.
#[allow(clippy::inline_always)]
#[inline(always)]
fn opaque(src: *mut u8, dst: *mut u8, offset: usize, len: usize) -> (*mut u8, *mut u8, usize, usize) {
    let (mut src, mut dst, mut offset, mut len) = (src, dst, offset, len);
    // SAFETY: the assembly is empty: it changes no register, no memory, no flag.
    unsafe {
        std::arch::asm!(
            "/* {0} {1} {2} {3} */",
            inout(reg) src,
            inout(reg) dst,
            inout(reg) offset,
            inout(reg) len,
            options(nostack, preserves_flags)
        );
    }
    (src, dst, offset, len)
}

/// How a copy is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    /// glibc's `memcpy` (`ptr::copy_nonoverlapping`).
    Memcpy,
    /// `rep movsb`, the processor's own copy, with ordinary (cached) stores: where glibc
    /// chooses non-temporal stores and a copy that stays in the caches is faster, this is the
    /// limit.
    RepMovsb,
    /// A plain loop of 32-byte AVX2 loads and stores, 128 bytes a turn, the rest in 32-byte
    /// moves (where the processor has AVX2; `memcpy` elsewhere): where glibc starts
    /// `rep movsb`, whose start-up costs tens of cycles on AMD processors, this is the limit;
    /// at 33-64 bytes (two moves, a direct call) it is the fastest copy a call can make.
    Avx2,
    /// `write_at` / `read_at`.
    Safe,
}

impl Way {
    fn describe(self) -> &'static str {
        match self {
            Way::Memcpy => "memcpy",
            Way::RepMovsb => "rep movsb",
            Way::Avx2 => "AVX2",
            Way::Safe => "safe",
        }
    }
}

/// The ways each repetition times, taking turns: the limits, then the safe copy.
const WAYS: [Way; 4] = [Way::Memcpy, Way::RepMovsb, Way::Avx2, Way::Safe];

/// `rep movsb` from `src` to `dst`, `len` bytes; `memcpy` where there is no such instruction.
///
/// # Safety
/// As `ptr::copy_nonoverlapping`: `len` readable bytes at `src`, `len` writable at `dst`, not
/// overlapping, and no one else accessing either meanwhile.
pub unsafe fn rep_movsb(src: *const u8, dst: *mut u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the caller vouches for the ranges; `rep movsb` copies `rcx` bytes from `rsi` to
    // `rdi` forwards (the direction flag is clear, as the ABI requires at every call) and
    // touches nothing else; it uses no stack.
    unsafe {
        std::arch::asm!(
            "rep movsb",
            inout("rcx") len => _,
            inout("rsi") src => _,
            inout("rdi") dst => _,
            options(nostack, preserves_flags)
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: as above.
    unsafe {
        std::ptr::copy_nonoverlapping(src, dst, len);
    }
}

/// A loop of 32-byte AVX2 loads and stores from `src` to `dst`, `len` bytes, if `avx2`;
/// `memcpy` otherwise.
///
/// # Safety
/// As `ptr::copy_nonoverlapping`; `avx2` only where the processor has AVX2.
#[allow(clippy::inline_always)]
#[inline(always)]
unsafe fn avx2_copy(avx2: bool, src: *const u8, dst: *mut u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: AVX2 is there (the caller's promise); the caller vouches for the ranges.
        unsafe { avx2_loop(src, dst, len) };
        return;
    }
    let _ = avx2;
    // SAFETY: the caller vouches for the ranges.
    unsafe { std::ptr::copy_nonoverlapping(src, dst, len) };
}

/// The loop of [`avx2_copy`].
///
/// # Safety
/// As `ptr::copy_nonoverlapping`, on a processor with AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn avx2_loop(src: *const u8, dst: *mut u8, len: usize) {
    use std::arch::x86_64::{__m256i, _mm256_loadu_si256, _mm256_storeu_si256};
    const TURN: usize = 128;
    if (32..=64).contains(&len) {
        // The first 32 bytes and the last 32 (overlapping): the fastest small copy, as the
        // safe copy's own (a direct call, no branch taken).
        // SAFETY: `32 <= len`: both moves lie within both ranges.
        unsafe {
            #[allow(clippy::cast_ptr_alignment)]
            let (first, last) = (_mm256_loadu_si256(src.cast()), _mm256_loadu_si256(src.add(len - 32).cast()));
            #[allow(clippy::cast_ptr_alignment)]
            _mm256_storeu_si256(dst.cast(), first);
            #[allow(clippy::cast_ptr_alignment)]
            _mm256_storeu_si256(dst.add(len - 32).cast(), last);
        }
        return;
    }
    let whole = len - len % TURN;
    let mut offset = 0;
    while offset < whole {
        // SAFETY: `offset + TURN <= len`: within both ranges; unaligned loads and stores.
        unsafe {
            // The loads and stores are unaligned ones (`loadu`, `storeu`): any address will do.
            #[allow(clippy::cast_ptr_alignment)]
            let (from, to) = (src.add(offset).cast::<__m256i>(), dst.add(offset).cast::<__m256i>());
            // Four loads, then four stores (no closure: it would not inherit AVX2).
            let v0 = _mm256_loadu_si256(from);
            let v1 = _mm256_loadu_si256(from.add(1));
            let v2 = _mm256_loadu_si256(from.add(2));
            let v3 = _mm256_loadu_si256(from.add(3));
            _mm256_storeu_si256(to, v0);
            _mm256_storeu_si256(to.add(1), v1);
            _mm256_storeu_si256(to.add(2), v2);
            _mm256_storeu_si256(to.add(3), v3);
        }
        offset += TURN;
    }
    if len < 32 {
        // SAFETY: the rest, within both ranges.
        unsafe { std::ptr::copy_nonoverlapping(src.add(whole), dst.add(whole), len - whole) };
        return;
    }
    // The rest in 32-byte moves, the last one ending at `len` (overlapping the one before),
    // not a call of `memcpy`.
    let mut offset = whole;
    while offset < len {
        let at = offset.min(len - 32);
        // SAFETY: `at + 32 <= len`: within both ranges; unaligned loads and stores.
        unsafe {
            #[allow(clippy::cast_ptr_alignment)]
            let (from, to) = (src.add(at).cast::<__m256i>(), dst.add(at).cast::<__m256i>());
            _mm256_storeu_si256(to, _mm256_loadu_si256(from));
        }
        offset += 32;
    }
}

/// The figures of one size and direction: per repetition, the median batch of each variant.
struct Figures {
    len: usize,
    direction: Direction,
    /// Copies in a batch.
    times: usize,
    /// Time of a batch of the faster of `memcpy` and `rep movsb` (the limit), one a repetition.
    memcpy: Samples,
    /// Which way was the limit, in each repetition.
    limit_by: Vec<Way>,
    /// Time of a batch of safe copies, one a repetition.
    safe: Samples,
    /// Limit time / safe time, one a repetition.
    ratios: Vec<f64>,
    /// glibc's `memcpy` time / safe time, one a repetition.
    memcpy_ratios: Vec<f64>,
}

/// What disturbed the timed batches.
#[derive(Debug, Default)]
struct Disturbance {
    /// Batches timed again because the thread was preempted.
    retried: usize,
    /// Batches kept although preempted every time.
    kept_preempted: usize,
    /// Page faults during timed batches.
    faults: u64,
}

/// Measures and prints the table.
fn run(settings: &Settings) -> Outcome {
    let sizes = sizes(settings.size);
    let largest = sizes.last().copied().unwrap_or(settings.size);
    progress(&format!("copies of 64 B to {}", stats::bytes(largest)));
    let mut buffers = Buffers::new(largest)?;
    let batch_bytes = if settings.quick { QUICK_BATCH_BYTES } else { BATCH_BYTES };
    let mut disturbance = Disturbance::default();
    let mut figures = Vec::new();
    for &len in &sizes {
        for direction in [Direction::In, Direction::Out] {
            let times = (batch_bytes / len).max(1);
            // One batch of each, unmeasured: caches, TLB and branch predictors warm up.
            for way in WAYS {
                buffers.copy(direction, way, len, times)?;
            }
            let mut figure = Figures {
                len,
                direction,
                times,
                memcpy: Samples::default(),
                limit_by: Vec::new(),
                safe: Samples::default(),
                ratios: Vec::new(),
                memcpy_ratios: Vec::new(),
            };
            for _ in 0..settings.reps {
                let repetition = repetition(&mut buffers, direction, len, times, &mut disturbance)?;
                figure.limit_by.push(repetition.way);
                figure.ratios.push(repetition.ratio);
                figure.memcpy_ratios.push(repetition.memcpy_ratio);
                figure.memcpy.push(repetition.limit);
                figure.safe.push(repetition.safe);
            }
            figures.push(figure);
        }
    }
    print(settings, batch_bytes, &figures, &disturbance);
    Ok(())
}

/// The sizes measured: those of [`SIZES`] up to `size`, and `size` itself.
fn sizes(size: usize) -> Vec<usize> {
    let mut sizes: Vec<usize> = SIZES.iter().copied().filter(|&len| len <= size).collect();
    if sizes.last() != Some(&size) {
        sizes.push(size);
    }
    sizes
}

/// What one repetition gave.
struct Repetition {
    /// The fastest limit, by its median batch.
    way: Way,
    /// Its median batch.
    limit: Duration,
    /// The median batch of the safe copy.
    safe: Duration,
    /// The median over the turns of the limit's batch over the safe copy's batch of the same
    /// turn: batches timed a few milliseconds apart share the machine's state (other
    /// processes taking memory bandwidth), where medians of the whole repetition need not.
    ratio: f64,
    /// The same for glibc's `memcpy` alone (the goal is against it).
    memcpy_ratio: f64,
}

/// One repetition: [`BATCHES`] turns, each a batch of each of [`WAYS`].
fn repetition(
    buffers: &mut Buffers,
    direction: Direction,
    len: usize,
    times: usize,
    disturbance: &mut Disturbance,
) -> Result<Repetition, Failure> {
    let mut samples: [Samples; WAYS.len()] = Default::default();
    for _ in 0..BATCHES {
        for (way, samples) in WAYS.iter().zip(&mut samples) {
            stop::check()?;
            samples.push(batch(buffers, direction, *way, len, times, disturbance)?);
        }
    }
    let safe = &samples[WAYS.len() - 1];
    let (way, limit) = WAYS
        .iter()
        .zip(&samples)
        .filter(|(way, _)| **way != Way::Safe)
        .min_by_key(|(_, samples)| samples.median())
        .map_or((Way::Memcpy, safe), |(way, samples)| (*way, samples));
    let paired = |limit: &Samples| {
        let ratios: Vec<f64> = limit.iter().zip(safe.iter()).map(|(limit, safe)| stats::ratio(*limit, *safe)).collect();
        median(&sorted(&ratios))
    };
    Ok(Repetition {
        way,
        limit: limit.median(),
        safe: safe.median(),
        ratio: paired(limit),
        memcpy_ratio: paired(&samples[0]),
    })
}

/// Times one batch, again if the scheduler took the CPU away meanwhile.
fn batch(
    buffers: &mut Buffers,
    direction: Direction,
    way: Way,
    len: usize,
    times: usize,
    disturbance: &mut Disturbance,
) -> Result<Duration, Failure> {
    let mut tries = 0;
    loop {
        let faults = page_faults()?;
        let (start, cpu_start) = (Instant::now(), thread_cpu_time()?);
        buffers.copy(direction, way, len, times)?;
        let (time, cpu_time) = (start.elapsed(), thread_cpu_time()?.saturating_sub(cpu_start));
        disturbance.faults += page_faults()? - faults;
        if time.saturating_sub(cpu_time).as_secs_f64() <= OFF_CPU * time.as_secs_f64() {
            return Ok(time);
        }
        tries += 1;
        if tries > RETRIES {
            disturbance.kept_preempted += 1;
            return Ok(time);
        }
        disturbance.retried += 1;
    }
}

/// This thread's page faults so far (`getrusage(RUSAGE_THREAD)`, minor and major).
fn page_faults() -> Result<u64, Failure> {
    // SAFETY: all zeros is a valid `rusage` (plain integers); getrusage fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid place for the result.
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &raw mut usage) } != 0 {
        return Err(failure(format!("getrusage: {}", std::io::Error::last_os_error())));
    }
    let count = |n: libc::c_long| u64::try_from(n).unwrap_or(0);
    Ok(count(usage.ru_minflt) + count(usage.ru_majflt))
}

/// The CPU time this thread has used (`clock_gettime(CLOCK_THREAD_CPUTIME_ID)`).
fn thread_cpu_time() -> Result<Duration, Failure> {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid place for the result.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut now) } != 0 {
        return Err(failure(format!("clock_gettime: {}", std::io::Error::last_os_error())));
    }
    let secs = u64::try_from(now.tv_sec).unwrap_or(0);
    Ok(Duration::new(secs, u32::try_from(now.tv_nsec).unwrap_or(0)))
}

fn print(settings: &Settings, batch_bytes: usize, figures: &[Figures], disturbance: &Disturbance) {
    let mut table = Table::new(&[
        "size",
        "direction",
        "limit",
        "safe copy",
        "limit GB/s",
        "safe GB/s",
        "ratio",
        "spread",
        "limit by",
        "vs memcpy",
    ]);
    for figure in figures {
        // The time of one copy, finer than the nanoseconds of a `Duration`.
        #[allow(clippy::cast_precision_loss)] // batches are far fewer than 2^52 copies
        let per_copy = |samples: &Samples| samples.median().as_secs_f64() / figure.times as f64;
        let (memcpy, safe) = (per_copy(&figure.memcpy), per_copy(&figure.safe));
        let ratios = sorted(&figure.ratios);
        table.row(vec![
            stats::bytes(figure.len),
            figure.direction.describe().into(),
            stats::seconds(memcpy),
            stats::seconds(safe),
            stats::significant(stats::bandwidth(figure.len, memcpy)),
            stats::significant(stats::bandwidth(figure.len, safe)),
            stats::format_ratio(median(&ratios)),
            format!(
                "{}–{}",
                stats::format_ratio(ratios.first().copied().unwrap_or(f64::NAN)),
                stats::format_ratio(ratios.last().copied().unwrap_or(f64::NAN))
            ),
            limit_by(&figure.limit_by),
            stats::format_ratio(median(&sorted(&figure.memcpy_ratios))),
        ]);
    }
    let about = format!(
        "Copy the first SIZE bytes of a resident object (POSIX) to or from a resident private \
         buffer, both page-aligned and the same for every variant: the safe copy (write_at, \
         read_at) against the limit, the fastest of glibc's memcpy, rep movsb and an AVX2 loop \
         between the same addresses (limit by: which, in how many repetitions). Times are of one \
         copy: small ones are repeated in batches of {}; the four take turns, {BATCHES} batches each per \
         repetition. Ratio: limit time / safe time (1 = as fast as the limit): in \
         each repetition, the median over its turns of the ratio of the two batches of a turn; \
         the median of that over {} repetitions, and its spread, the lowest and highest. vs memcpy: \
         the same ratio against glibc's memcpy alone, the issue's goal ≥ 0.9 (memcpy, which the limit beats at 64 B by a direct call \
         with no branch, and from 4 KiB on by the choice of loop). GB/s: 10^9 bytes a second.",
        stats::bytes(batch_bytes),
        settings.reps
    );
    let notes = [format!(
        "Batches timed again because this thread spent more than {:.0}% of the time off its CPU: \
         {}; kept although it did every time: {}. Page faults during timed batches: {}.",
        OFF_CPU * 100.0,
        disturbance.retried,
        disturbance.kept_preempted,
        disturbance.faults
    )];
    stats::print_section("Copy in and out: safe copy against memcpy", &about, &table, &notes);
}

/// Which copies were the limit, and in how many repetitions: `rep movsb`, `memcpy 3, AVX2 2`.
fn limit_by(ways: &[Way]) -> String {
    let mut parts = Vec::new();
    for way in [Way::Memcpy, Way::RepMovsb, Way::Avx2] {
        let count = ways.iter().filter(|limit| **limit == way).count();
        if count > 0 {
            parts.push((way.describe(), count));
        }
    }
    match parts.as_slice() {
        [(way, _)] => (*way).to_owned(),
        _ => parts.iter().map(|(way, count)| format!("{way} {count}")).collect::<Vec<_>>().join(", "),
    }
}

/// The median of sorted values (the mean of the two middle ones of an even count).
/// A sorted copy.
fn sorted(values: &[f64]) -> Vec<f64> {
    let mut values = values.to_vec();
    values.sort_by(f64::total_cmp);
    values
}

fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => f64::midpoint(sorted[n / 2 - 1], sorted[n / 2]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_up_to_the_largest() {
        assert_eq!(sizes(1 << 30), SIZES.to_vec());
        assert_eq!(sizes(4 << 20), vec![64, 4 << 10, 256 << 10, 1 << 20, 4 << 20]);
        assert_eq!(sizes(100), vec![64, 100]);
        assert_eq!(sizes(10), vec![10]);
    }

    #[test]
    fn limits_are_named_with_their_counts() {
        assert_eq!(limit_by(&[Way::RepMovsb, Way::RepMovsb]), "rep movsb");
        assert_eq!(limit_by(&[Way::Avx2, Way::Memcpy, Way::Avx2]), "memcpy 1, AVX2 2");
    }

    #[test]
    fn medians_of_ratios() {
        assert!((median(&[0.5, 1.0, 2.0]) - 1.0).abs() < 1e-12);
        assert!((median(&[0.5, 1.0]) - 0.75).abs() < 1e-12);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn every_way_copies_the_bytes() {
        let mut buffers = Buffers::new(8192).unwrap();
        for (way, direction) in WAYS.iter().flat_map(|way| [(*way, Direction::In), (*way, Direction::Out)]) {
            for len in [0, 1, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 160, 4095, 8192] {
                let private: Vec<u8> = (0..len).map(|i| u8::try_from((i * 7 + len) % 256).unwrap()).collect();
                buffers.private.as_mut_slice()[..len].copy_from_slice(&private);
                buffers.shm.write_at(0, &vec![0xee; len]).unwrap();
                if direction == Direction::Out {
                    buffers.shm.write_at(0, &private).unwrap();
                    buffers.private.as_mut_slice()[..len].fill(0xee);
                }
                buffers.copy(direction, way, len, 2).unwrap();
                let mut shared = vec![0; len];
                buffers.shm.read_at(0, &mut shared).unwrap();
                assert_eq!(shared, private, "{way:?} {direction:?} {len}: the object");
                assert_eq!(&buffers.private.as_slice()[..len], &private[..], "{way:?} {direction:?} {len}: the buffer");
            }
        }
    }
}
