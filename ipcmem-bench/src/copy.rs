//! Case 4, bulk copy bandwidth: the whole of a large object in (`write_at`) and out
//! (`read_at`), against `memcpy` between the same buffer and private memory mapped the same
//! way (anonymous, page-aligned), the limit. Plain `memcpy` into and out of the shared
//! mapping (what `unsafe` code may do when nobody else writes) shows what the byte-wise atomic
//! copies cost on their own.
//!
//! The buffer (a `Vec`) and the mappings keep their alignments throughout, so that every copy
//! of one direction sees the same relative alignment of source and target (which matters: two
//! addresses a multiple of 4 KiB apart slow copies down on x86).

use std::hint::black_box;

use ipcmem::SharedMemory;

use crate::failure::{Failure, Outcome};
use crate::raw::PrivateMemory;
use crate::section::{Counts, Section};
use crate::stats::{self, timed, Samples, Table};
use crate::{progress, stop, Settings};

/// A copy of the whole object's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Copy {
    /// The buffer into private memory: the limit of copies in.
    PrivateIn,
    WriteAt,
    MemcpyIn,
    /// Private memory into the buffer: the limit of copies out.
    PrivateOut,
    ReadAt,
    MemcpyOut,
}

impl Copy {
    fn is_limit(self) -> bool {
        matches!(self, Copy::PrivateIn | Copy::PrivateOut)
    }
}

const COPIES: [(Copy, &str); 6] = [
    (Copy::PrivateIn, "in: memcpy into private memory (the limit)"),
    (Copy::WriteAt, "in: write_at (byte-wise atomic)"),
    (Copy::MemcpyIn, "in: memcpy into the mapping (unsafe)"),
    (Copy::PrivateOut, "out: memcpy out of private memory (the limit)"),
    (Copy::ReadAt, "out: read_at (byte-wise atomic)"),
    (Copy::MemcpyOut, "out: memcpy out of the mapping (unsafe)"),
];

/// The memory a run copies between, all resident: the object, private memory mapped as it is,
/// and a buffer.
struct Buffers {
    shm: SharedMemory,
    private: PrivateMemory,
    buffer: Vec<u8>,
}

/// The copy section, in the default run (`--copy` alone).
pub const SECTION: Section = Section {
    flag: "copy",
    help: "Copies in and out (read_at, write_at) against memcpy, from 64 B to --size",
    in_default_run: true,
    large: true,
    reps: Counts { full: 5, quick: 2 },
    iterations: Counts::NONE,
    run,
};

/// Measures, and gives the section to print.
pub fn run(settings: &Settings) -> Outcome {
    progress(&format!("bulk copy of {}", stats::bytes(settings.size)));
    let mut buffers = buffers(settings.size)?;
    let mut samples = vec![Samples::with_capacity(settings.reps); COPIES.len()];
    for rep in 0..=settings.reps {
        for ((copy, _), samples) in COPIES.iter().zip(&mut samples) {
            stop::check()?;
            let ((), time) = timed(|| buffers.copy(*copy))?;
            // The first round warms caches and TLBs up, and is not counted.
            if rep > 0 {
                samples.push(time);
            }
        }
    }
    println!("{}", section(settings, &samples));
    Ok(())
}

fn section(settings: &Settings, samples: &[Samples]) -> String {
    let mut table = Table::new(&["copy", "median", "GB/s", "ratio to the limit"]);
    let mut limit = f64::NAN;
    for ((copy, how), samples) in COPIES.iter().zip(samples) {
        let median = samples.median();
        let speed = stats::bandwidth(settings.size, median);
        if copy.is_limit() {
            limit = speed;
        }
        table.row(vec![
            (*how).into(),
            stats::duration(median),
            stats::significant(speed),
            stats::format_ratio(speed / limit),
        ]);
    }
    let about = format!(
        "Copy {} at once between a buffer (a Vec) and a resident object (POSIX, volatile), or \
         private anonymous memory, page-aligned as the object is (the limit): the median of {} \
         runs, after one unmeasured round. GB/s: 10^9 bytes a second. Ratio: the bandwidth over \
         that of the limit of the same direction.",
        stats::bytes(settings.size),
        settings.reps
    );
    stats::section("Bulk copy bandwidth", &about, &table, &[])
}

/// A new object, private memory and a buffer of `size` bytes, every page written once.
fn buffers(size: usize) -> Result<Buffers, Failure> {
    let name = stop::unique_name();
    let shm = SharedMemory::create(name.as_str(), size)?;
    let buffer: Vec<u8> = (0..size).map(|i| u8::try_from(i % 251).unwrap_or(0)).collect();
    shm.write_at(0, &buffer)?;
    Ok(Buffers { shm, private: PrivateMemory::new(size)?, buffer })
}

impl Buffers {
    fn copy(&mut self, copy: Copy) -> Result<(), Failure> {
        match copy {
            Copy::PrivateIn => self.private.as_mut_slice().copy_from_slice(&self.buffer),
            Copy::PrivateOut => self.buffer.copy_from_slice(self.private.as_slice()),
            Copy::WriteAt => self.shm.write_at(0, &self.buffer)?,
            Copy::ReadAt => self.shm.read_at(0, &mut self.buffer)?,
            // SAFETY: the mapping is `len` (= the buffer's length) writable bytes for the life
            // of `shm`; the object is this run's own, under a unique name, and nothing else in
            // this process refers to it, so no one accesses the bytes during the copy.
            Copy::MemcpyIn => unsafe { self.shm.as_mut_slice()?.copy_from_slice(&self.buffer) },
            // SAFETY: as above; no one writes the object during the copy.
            Copy::MemcpyOut => self.buffer.copy_from_slice(unsafe { self.shm.as_slice() }),
        }
        black_box(&mut self.buffer);
        black_box(&mut self.private);
        black_box(&self.shm);
        Ok(())
    }
}
