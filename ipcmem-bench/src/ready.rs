//! Case 2, the time until a fresh object is fully usable: from the call that makes it to the end of
//! one write in every page. First touch (the writes fault the pages in), a single-thread
//! populate (`MAP_POPULATE`, `MADV_POPULATE_WRITE`), and ipcmem's `prefault`.
//!
//! Every variant ends with the same writes, so a populate that left pages out pays for them
//! there. Removing the object (freeing its pages) is not timed.

use std::time::{Duration, Instant};

use ipcmem::{Key, SharedMemory};

use crate::failure::{Failure, Outcome};
use crate::section::{Counts, Section};
use crate::stats::{self, Samples, Table};
use crate::{progress, raw, stop, Settings};

/// How a variant makes its object ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    /// The writes fault the pages in.
    FirstTouch,
    /// `mmap(MAP_POPULATE)`, on this thread.
    MapPopulate,
    /// `madvise(MADV_POPULATE_WRITE)`, on this thread.
    PopulateWrite,
    /// ipcmem's `prefault`.
    Prefault,
}

/// One way to get a ready object.
struct Variant {
    kind: &'static str,
    how: &'static str,
    way: Way,
    /// One object made ready, timed.
    once: fn(usize, Way) -> Result<Duration, Failure>,
}

const VARIANTS: [Variant; 7] = [
    Variant {
        kind: "POSIX",
        how: "first touch: shm_open, ftruncate, mmap, then the writes",
        way: Way::FirstTouch,
        once: posix_raw,
    },
    Variant { kind: "POSIX", how: "single thread: mmap(MAP_POPULATE)", way: Way::MapPopulate, once: posix_raw },
    Variant {
        kind: "POSIX",
        how: "single thread: madvise(MADV_POPULATE_WRITE)",
        way: Way::PopulateWrite,
        once: posix_raw,
    },
    Variant { kind: "POSIX", how: "ipcmem: create with prefault(true)", way: Way::Prefault, once: ipcmem_posix },
    Variant {
        kind: "System V",
        how: "first touch: shmget, shmat, then the writes",
        way: Way::FirstTouch,
        once: sysv_raw,
    },
    Variant {
        kind: "System V",
        how: "single thread: madvise(MADV_POPULATE_WRITE)",
        way: Way::PopulateWrite,
        once: sysv_raw,
    },
    Variant { kind: "System V", how: "ipcmem: create with prefault(true)", way: Way::Prefault, once: ipcmem_sysv },
];

/// The ready section, in the default run (`--ready` alone).
pub const SECTION: Section = Section {
    flag: "ready",
    help: "Time until a fresh object of --size is usable: first touch, single-thread populate, prefault",
    in_default_run: true,
    large: true,
    reps: Counts { full: 5, quick: 2 },
    iterations: Counts::NONE,
    run,
};

/// Measures and prints the table.
pub fn run(settings: &Settings) -> Outcome {
    progress(&format!("time until a fresh {} object is usable", stats::bytes(settings.size)));
    let mut samples = vec![Samples::with_capacity(settings.reps); VARIANTS.len()];
    for _ in 0..settings.reps {
        for (variant, samples) in VARIANTS.iter().zip(&mut samples) {
            stop::check()?;
            samples.push((variant.once)(settings.size, variant.way)?);
        }
    }
    let medians: Vec<Duration> = samples.iter().map(Samples::median).collect();
    let mut table = Table::new(&["kind", "how", "median", "ratio to first touch"]);
    let mut first_touch = Duration::ZERO;
    for (variant, &median) in VARIANTS.iter().zip(&medians) {
        if variant.way == Way::FirstTouch {
            first_touch = median;
        }
        table.row(vec![
            variant.kind.into(),
            variant.how.into(),
            stats::duration(median),
            stats::format_ratio(stats::ratio(median, first_touch)),
        ]);
    }
    let about = format!(
        "From the call that makes a {} object to the end of one write in every page, the \
         median of {} runs; removing the object is not timed. Ratio: the median over that of \
         first touch of the same kind.",
        stats::bytes(settings.size),
        settings.reps
    );
    stats::print_section("Time until a fresh object is fully usable", &about, &table, &speed_ups(&medians));
    Ok(())
}

/// How much faster `prefault` is than the fastest single-thread populate and than first
/// touch, for each kind.
fn speed_ups(medians: &[Duration]) -> Vec<String> {
    let mut notes = Vec::new();
    for kind in ["POSIX", "System V"] {
        let of = |wanted: &dyn Fn(Way) -> bool| {
            VARIANTS.iter().zip(medians).filter(|(v, _)| v.kind == kind && wanted(v.way)).map(|(_, m)| *m).min()
        };
        let (Some(prefault), Some(populate), Some(first_touch)) = (
            of(&|way| way == Way::Prefault),
            of(&|way| matches!(way, Way::MapPopulate | Way::PopulateWrite)),
            of(&|way| way == Way::FirstTouch),
        ) else {
            continue;
        };
        notes.push(format!(
            "{kind}: prefault is {}× as fast as the fastest single-thread populate and {}× as fast as first touch.",
            stats::format_ratio(stats::ratio(populate, prefault)),
            stats::format_ratio(stats::ratio(first_touch, prefault)),
        ));
    }
    notes
}

fn posix_raw(size: usize, way: Way) -> Result<Duration, Failure> {
    let (_, c_name) = stop::unique_names();
    let start = Instant::now();
    let mapping = raw::posix_create(&c_name, size, way == Way::MapPopulate)?;
    if way == Way::PopulateWrite {
        mapping.populate_write()?;
    }
    mapping.touch_pages();
    let time = start.elapsed();
    drop(mapping);
    raw::posix_unlink(&c_name)?;
    Ok(time)
}

fn sysv_raw(size: usize, way: Way) -> Result<Duration, Failure> {
    let start = Instant::now();
    let id = raw::sysv_create(libc::IPC_PRIVATE, size)?;
    let mapping = raw::sysv_attach(id, size)?;
    if way == Way::PopulateWrite {
        mapping.populate_write()?;
    }
    mapping.touch_pages();
    let time = start.elapsed();
    raw::sysv_remove(id)?;
    drop(mapping);
    Ok(time)
}

fn ipcmem_posix(size: usize, _: Way) -> Result<Duration, Failure> {
    let name = stop::unique_name();
    ipcmem_ready(|| SharedMemory::options().prefault(true).create(name.as_str(), size))
}

fn ipcmem_sysv(size: usize, _: Way) -> Result<Duration, Failure> {
    ipcmem_ready(|| SharedMemory::options().prefault(true).create(Key::PRIVATE, size))
}

/// Times `create` and the writes; the object (volatile) goes when dropped, untimed.
fn ipcmem_ready(create: impl FnOnce() -> ipcmem::Result<SharedMemory>) -> Result<Duration, Failure> {
    let start = Instant::now();
    let shm = create()?;
    // SAFETY: the mapping is `len` writable bytes for the life of `shm`; the object is new,
    // under a unique name or none, so no one else writes it.
    unsafe { raw::touch_pages(shm.as_mut_ptr(), shm.len()) };
    let time = start.elapsed();
    drop(shm);
    Ok(time)
}
