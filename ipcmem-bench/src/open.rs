//! Case 3, open (attach) of an existing large object: ipcmem against the raw calls that give the
//! same, a read-write mapping of the whole object and its length; both kinds, and the
//! `shared_memory` crate (POSIX). Only the open is timed; the detach follows, untimed.

use std::ffi::CString;
use std::time::{Duration, Instant};

use ipcmem::{Id, Key, SharedMemory};

use crate::failure::failure;
use crate::failure::{Failure, Outcome};
use crate::section::{Counts, Section};
use crate::stats::{self, Samples};
use crate::{progress, raw, stop, warm_up, Settings};

/// How many keys to try for the segment before giving up (another process may use one).
const KEY_TRIES: usize = 64;

/// Removes an object when dropped, also when the run fails.
struct Remove(Id);

impl Drop for Remove {
    fn drop(&mut self) {
        let _ = ipcmem::shmrm(&self.0);
    }
}

/// One way to open, timed: it gives what it opened, dropped after the clock stopped.
type Open<'a> = Box<dyn Fn() -> Result<(Box<dyn std::any::Any>, Duration), Failure> + 'a>;

/// One row of the table.
struct Variant<'a> {
    kind: &'static str,
    how: &'static str,
    raw: bool,
    once: Open<'a>,
}

/// The open section, in the default run (`--open` alone).
pub const SECTION: Section = Section {
    flag: "open",
    help: "Open (attach) of an existing object of --size: ipcmem, raw calls, shared_memory",
    in_default_run: true,
    large: true,
    reps: Counts::NONE,
    iterations: Counts { full: 2000, quick: 50 },
    run,
};

/// Measures and prints the table.
pub fn run(settings: &Settings) -> Outcome {
    progress(&format!("open of an existing {} object", stats::bytes(settings.size)));
    let (name, c_name) = stop::unique_names();
    SharedMemory::options().volatile(false).create(name.as_str(), settings.size)?;
    let _remove_posix = Remove(Id::Name(name.clone()));
    let volatile_name = stop::unique_name();
    // Held for the whole case: a volatile object lives as long as a handle does.
    let _volatile = SharedMemory::create(volatile_name.as_str(), settings.size)?;
    let key = sysv_segment(settings.size)?;
    let _remove_sysv = Remove(Id::Key(key));
    let variants = variants(&name, &c_name, &volatile_name, key);
    let warm = warm_up(settings.iterations);
    let mut samples = vec![Samples::with_capacity(settings.iterations); variants.len()];
    for iteration in 0..warm + settings.iterations {
        stop::check()?;
        for (variant, samples) in variants.iter().zip(&mut samples) {
            let (opened, time) = (variant.once)()?;
            drop(opened);
            if iteration >= warm {
                samples.push(time);
            }
        }
    }
    print(settings, &variants, &samples);
    Ok(())
}

fn variants<'a>(name: &'a str, c_name: &'a CString, volatile_name: &'a str, key: Key) -> Vec<Variant<'a>> {
    vec![
        Variant {
            kind: "POSIX",
            how: "raw: shm_open, fstat, mmap, close",
            raw: true,
            once: Box::new(move || timed(|| raw::posix_open(c_name))),
        },
        Variant {
            kind: "POSIX",
            how: "ipcmem: open (a non-volatile object)",
            raw: false,
            once: Box::new(move || timed(|| Ok(SharedMemory::open(name)?))),
        },
        Variant {
            kind: "POSIX",
            how: "ipcmem: open (a volatile object: one more flock)",
            raw: false,
            once: Box::new(move || timed(|| Ok(SharedMemory::open(volatile_name)?))),
        },
        Variant {
            kind: "POSIX",
            how: "shared_memory 0.12: open",
            raw: false,
            once: Box::new(move || {
                timed(|| {
                    shared_memory::ShmemConf::new()
                        .os_id(name)
                        .open()
                        .map_err(|error| failure(format!("shared_memory: {error}")))
                })
            }),
        },
        Variant {
            kind: "System V",
            how: "raw: shmget(key), shmctl(IPC_STAT), shmat",
            raw: true,
            once: Box::new(move || {
                timed(|| {
                    let id = raw::sysv_get(key.as_raw())?;
                    raw::sysv_attach(id, raw::sysv_size(id)?)
                })
            }),
        },
        Variant {
            kind: "System V",
            how: "ipcmem: open(key)",
            raw: false,
            once: Box::new(move || timed(|| Ok(SharedMemory::open(key)?))),
        },
    ]
}

/// Times `open`, and boxes what it opened so that the caller drops it after the clock.
fn timed<T: 'static>(open: impl FnOnce() -> Result<T, Failure>) -> Result<(Box<dyn std::any::Any>, Duration), Failure> {
    let start = Instant::now();
    let opened = open()?;
    let time = start.elapsed();
    Ok((Box::new(opened), time))
}

/// Makes a persistent segment of `size` bytes under a fresh key; gives the key.
fn sysv_segment(size: usize) -> Result<Key, Failure> {
    for _ in 0..KEY_TRIES {
        let key = stop::unique_key();
        match SharedMemory::options().volatile(false).create(key, size) {
            Ok(_) => return Ok(key),
            Err(ipcmem::Error::AlreadyExists { .. }) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Err(failure(format!("no free System V key after {KEY_TRIES} tries")))
}

fn print(settings: &Settings, variants: &[Variant<'_>], samples: &[Samples]) {
    let table = stats::ratio_to_raw_table(variants.iter().zip(samples).map(|(variant, samples)| stats::Compared {
        kind: variant.kind,
        how: variant.how,
        raw: variant.raw,
        median: samples.median(),
    }));
    let about = format!(
        "Open an existing {} object read-write, mapping all of it and learning its length: the \
         median of {} iterations of each, taking turns; the detach is not timed. Ratio: the \
         median over that of the raw calls of the same kind.",
        stats::bytes(settings.size),
        settings.iterations
    );
    stats::print_section("Open of an existing object", &about, &table, &[]);
}
