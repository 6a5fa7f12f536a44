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
//! - **Paired, at the same moment.** The machine is shared (other processes build and test on
//!   its 2 CPUs): a limit timed a second before its subject measures another machine. The two
//!   variants of a direction take turns, batch by batch, and every repetition gives one ratio
//!   from its own pair of medians; the table shows the median ratio and its spread.
//! - **Only time on the CPU, no faults.** A batch during which this thread was taken off its
//!   CPU (its involuntary context switches rose, `getrusage(RUSAGE_THREAD)`) is timed again, up
//!   to [`RETRIES`] times; page faults during timed batches are counted and printed (none are
//!   expected: both buffers are resident).
//! - **Enough work per sample.** Small copies are repeated in a batch of about [`BATCH_BYTES`]
//!   (so a batch lasts milliseconds, far above the clock's tick); arguments pass through
//!   `black_box`, so the repeated copies are not merged or hoisted.

use std::hint::black_box;
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
    help: "Copies in and out (write_at, read_at) against memcpy between the same buffers, 64 B to --size",
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
const RETRIES: usize = 10;

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

    /// Copies `len` bytes `times` times, the safe way (`write_at`, `read_at`) or by `memcpy`.
    fn copy(&mut self, direction: Direction, safe: bool, len: usize, times: usize) -> Result<(), Failure> {
        let private = &mut self.private.as_mut_slice()[..len];
        for _ in 0..times {
            match (direction, safe) {
                (Direction::In, true) => self.shm.write_at(black_box(0), black_box(&*private))?,
                (Direction::Out, true) => self.shm.read_at(black_box(0), black_box(&mut *private))?,
                // SAFETY: the object is `len` or more writable bytes for the life of `shm`; it is
                // this run's own, under a unique name, and nothing else accesses it meanwhile;
                // the private buffer is another mapping, so the two do not overlap.
                (Direction::In, false) => unsafe {
                    std::ptr::copy_nonoverlapping(black_box(private.as_ptr()), black_box(self.shm.as_mut_ptr()), len);
                },
                // SAFETY: as above.
                (Direction::Out, false) => unsafe {
                    std::ptr::copy_nonoverlapping(black_box(self.shm.as_ptr()), black_box(private.as_mut_ptr()), len);
                },
            }
            black_box(&mut *private);
        }
        Ok(())
    }
}

/// The figures of one size and direction: per repetition, the median batch of each variant.
struct Figures {
    len: usize,
    direction: Direction,
    /// Copies in a batch.
    times: usize,
    /// Time of a batch of `memcpy`, one a repetition.
    memcpy: Samples,
    /// Time of a batch of safe copies, one a repetition.
    safe: Samples,
    /// memcpy time / safe time, one a repetition.
    ratios: Vec<f64>,
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
            buffers.copy(direction, false, len, times)?;
            buffers.copy(direction, true, len, times)?;
            let mut figure = Figures {
                len,
                direction,
                times,
                memcpy: Samples::default(),
                safe: Samples::default(),
                ratios: Vec::new(),
            };
            for _ in 0..settings.reps {
                let (memcpy, safe) = repetition(&mut buffers, direction, len, times, &mut disturbance)?;
                figure.ratios.push(stats::ratio(memcpy, safe));
                figure.memcpy.push(memcpy);
                figure.safe.push(safe);
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

/// One repetition: [`BATCHES`] batches of each variant, taking turns; the median batch of
/// each.
fn repetition(
    buffers: &mut Buffers,
    direction: Direction,
    len: usize,
    times: usize,
    disturbance: &mut Disturbance,
) -> Result<(Duration, Duration), Failure> {
    let mut memcpy = Samples::with_capacity(BATCHES);
    let mut safe = Samples::with_capacity(BATCHES);
    for _ in 0..BATCHES {
        for (is_safe, samples) in [(false, &mut memcpy), (true, &mut safe)] {
            stop::check()?;
            let time = batch(buffers, direction, is_safe, len, times, disturbance)?;
            samples.push(time);
        }
    }
    Ok((memcpy.median(), safe.median()))
}

/// Times one batch, again if the scheduler took the CPU away meanwhile.
fn batch(
    buffers: &mut Buffers,
    direction: Direction,
    safe: bool,
    len: usize,
    times: usize,
    disturbance: &mut Disturbance,
) -> Result<Duration, Failure> {
    let mut tries = 0;
    loop {
        let before = usage()?;
        let start = Instant::now();
        buffers.copy(direction, safe, len, times)?;
        let time = start.elapsed();
        let after = usage()?;
        disturbance.faults += after.faults - before.faults;
        if after.preempted == before.preempted {
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

/// This thread's counts of page faults and involuntary context switches.
struct Usage {
    faults: u64,
    preempted: u64,
}

/// `getrusage(RUSAGE_THREAD)`.
fn usage() -> Result<Usage, Failure> {
    // SAFETY: all zeros is a valid `rusage` (plain integers); getrusage fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid place for the result.
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &raw mut usage) } != 0 {
        return Err(failure(format!("getrusage: {}", std::io::Error::last_os_error())));
    }
    let count = |n: libc::c_long| u64::try_from(n).unwrap_or(0);
    Ok(Usage { faults: count(usage.ru_minflt) + count(usage.ru_majflt), preempted: count(usage.ru_nivcsw) })
}

fn print(settings: &Settings, batch_bytes: usize, figures: &[Figures], disturbance: &Disturbance) {
    let mut table =
        Table::new(&["size", "direction", "memcpy", "safe copy", "memcpy GB/s", "safe GB/s", "ratio", "spread"]);
    for figure in figures {
        // The time of one copy, finer than the nanoseconds of a `Duration`.
        #[allow(clippy::cast_precision_loss)] // batches are far fewer than 2^52 copies
        let per_copy = |samples: &Samples| samples.median().as_secs_f64() / figure.times as f64;
        let (memcpy, safe) = (per_copy(&figure.memcpy), per_copy(&figure.safe));
        let mut ratios = figure.ratios.clone();
        ratios.sort_by(f64::total_cmp);
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
        ]);
    }
    let about = format!(
        "Copy the first SIZE bytes of a resident object (POSIX) to or from a resident private \
         buffer, both page-aligned and the same for every variant: the safe copy (write_at, \
         read_at) against memcpy between the same addresses (the limit). Times are of one \
         copy: small ones are repeated in batches of {}; the two variants take turns, {BATCHES} \
         batches each per repetition. Ratio: memcpy time / safe time (1 = as fast as memcpy, \
         goal ≥ 0.9), the median over {} repetitions of each repetition's ratio of medians; \
         spread: the lowest and highest of those ratios. GB/s: 10^9 bytes a second.",
        stats::bytes(batch_bytes),
        settings.reps
    );
    let notes = [format!(
        "Batches timed again because this thread lost its CPU meanwhile: {}; kept although \
         preempted every time: {}. Page faults during timed batches: {}.",
        disturbance.retried, disturbance.kept_preempted, disturbance.faults
    )];
    stats::print_section("Copy in and out: safe copy against memcpy", &about, &table, &notes);
}

/// The median of sorted values (the mean of the two middle ones of an even count).
fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => f64::midpoint(sorted[n / 2 - 1], sorted[n / 2]),
    }
}
