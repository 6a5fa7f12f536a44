//! Case 1, the lifecycle of a 4 KiB object: create, write one byte, drop (and remove), POSIX and
//! System V: ipcmem (non-volatile and volatile), the raw system calls, and the
//! `shared_memory` crate (POSIX).
//!
//! The variants take turns, iteration by iteration, so that a change of load on the machine
//! touches them all alike. Each iteration uses a fresh name, made before the clock starts.

use std::time::{Duration, Instant};

use ipcmem::{shmrm, Key, SharedMemory};

use crate::failure::failure;
use crate::failure::{Failure, Outcome};
use crate::section::{Counts, Section};
use crate::stats::{self, Samples};
use crate::{progress, raw, stop, warm_up, Settings};

/// The size of the objects: one page.
const LEN: usize = 4096;

/// One way through the lifecycle.
struct Variant {
    kind: &'static str,
    how: &'static str,
    /// The raw calls of its kind, the others' baseline.
    raw: bool,
    /// One lifecycle, timed.
    once: fn() -> Result<Duration, Failure>,
}

const VARIANTS: [Variant; 7] = [
    Variant {
        kind: "POSIX",
        how: "raw: shm_open, ftruncate, mmap, close, write, munmap, shm_unlink",
        raw: true,
        once: posix_raw,
    },
    Variant {
        kind: "POSIX",
        how: "ipcmem, non-volatile: create, write_at, drop, shmrm",
        raw: false,
        once: posix_ipcmem,
    },
    Variant {
        kind: "POSIX",
        how: "ipcmem, volatile: create, write_at, drop (unlinks)",
        raw: false,
        once: posix_ipcmem_volatile,
    },
    Variant {
        kind: "POSIX",
        how: "shared_memory 0.12: create, write, drop (unlinks)",
        raw: false,
        once: posix_shared_memory,
    },
    Variant { kind: "System V", how: "raw: shmget, shmat, write, shmdt, IPC_RMID", raw: true, once: sysv_raw },
    Variant {
        kind: "System V",
        how: "ipcmem, non-volatile: create, write_at, drop, shmrm",
        raw: false,
        once: sysv_ipcmem,
    },
    Variant {
        kind: "System V",
        how: "ipcmem, volatile: create (IPC_RMID at once), write_at, drop",
        raw: false,
        once: sysv_ipcmem_volatile,
    },
];

/// The lifecycle section, in the default run (`--lifecycle` alone).
pub const SECTION: Section = Section {
    flag: "lifecycle",
    help: "Lifecycle of a 4 KiB object (create, write a byte, drop): ipcmem, raw calls, shared_memory",
    in_default_run: true,
    large: false,
    reps: Counts::NONE,
    iterations: Counts { full: 2000, quick: 50 },
    run,
};

/// Measures and prints the table.
pub fn run(settings: &Settings) -> Outcome {
    progress("lifecycle of a 4 KiB object");
    let warm = warm_up(settings.iterations);
    let mut samples = vec![Samples::with_capacity(settings.iterations); VARIANTS.len()];
    for iteration in 0..warm + settings.iterations {
        stop::check()?;
        for (variant, samples) in VARIANTS.iter().zip(&mut samples) {
            let time = (variant.once)()?;
            if iteration >= warm {
                samples.push(time);
            }
        }
    }
    let table = stats::ratio_to_raw_table(VARIANTS.iter().zip(&samples).map(|(variant, samples)| stats::Compared {
        kind: variant.kind,
        how: variant.how,
        raw: variant.raw,
        median: samples.median(),
    }));
    let about = format!(
        "Create a 4 KiB object, write one byte, drop it (and remove it): the median of {} \
         iterations of each, taking turns. Ratio: the median over that of the raw calls of the \
         same kind.",
        settings.iterations
    );
    stats::print_section("Lifecycle of a 4 KiB object", &about, &table, &[]);
    Ok(())
}

fn posix_raw() -> Result<Duration, Failure> {
    let (_, c_name) = stop::unique_names();
    let start = Instant::now();
    let mapping = raw::posix_create(&c_name, LEN, false)?;
    mapping.touch_pages();
    drop(mapping);
    raw::posix_unlink(&c_name)?;
    Ok(start.elapsed())
}

fn posix_ipcmem() -> Result<Duration, Failure> {
    let name = stop::unique_name();
    let start = Instant::now();
    let shm = SharedMemory::options().volatile(false).create(name.as_str(), LEN)?;
    shm.write_at(0, &[1])?;
    drop(shm);
    shmrm(name.as_str())?;
    Ok(start.elapsed())
}

fn posix_ipcmem_volatile() -> Result<Duration, Failure> {
    let name = stop::unique_name();
    let start = Instant::now();
    let shm = SharedMemory::create(name.as_str(), LEN)?;
    shm.write_at(0, &[1])?;
    drop(shm);
    Ok(start.elapsed())
}

fn posix_shared_memory() -> Result<Duration, Failure> {
    let name = stop::unique_name();
    let start = Instant::now();
    // The creator owns the object: its drop unlinks it.
    let shm = shared_memory::ShmemConf::new()
        .size(LEN)
        .os_id(&name)
        .create()
        .map_err(|error| failure(format!("shared_memory: {error}")))?;
    // SAFETY: the crate maps LEN writable bytes for the life of `shm`; the name is unique, so
    // no one else writes them.
    unsafe { raw::touch_pages(shm.as_ptr(), LEN) };
    drop(shm);
    Ok(start.elapsed())
}

fn sysv_raw() -> Result<Duration, Failure> {
    let start = Instant::now();
    let id = raw::sysv_create(libc::IPC_PRIVATE, LEN)?;
    let mapping = raw::sysv_attach(id, LEN)?;
    mapping.touch_pages();
    drop(mapping);
    raw::sysv_remove(id)?;
    Ok(start.elapsed())
}

fn sysv_ipcmem() -> Result<Duration, Failure> {
    let start = Instant::now();
    let shm = SharedMemory::options().volatile(false).create(Key::PRIVATE, LEN)?;
    shm.write_at(0, &[1])?;
    let id = shm.id();
    drop(shm);
    shmrm(id)?;
    Ok(start.elapsed())
}

fn sysv_ipcmem_volatile() -> Result<Duration, Failure> {
    let start = Instant::now();
    let shm = SharedMemory::create(Key::PRIVATE, LEN)?;
    shm.write_at(0, &[1])?;
    drop(shm);
    Ok(start.elapsed())
}
