//! `bench`: measures ipcmem against the raw system calls and its peers in one run and prints
//! Markdown tables of medians and ratios; `bench --pingpong` measures round trips between two
//! processes.
//!
//! Every object is made under a name of this process (`/ipcmem-bench-<pid>-<n>`) or, for
//! System V, by this process: what an error, a panic or an interruption (SIGINT, SIGTERM,
//! SIGHUP) leaves is removed by a sweep when [`run`] returns (see [`stop`]).

mod copy;
mod lifecycle;
mod open;
mod pingpong;
mod raw;
mod ready;
mod stats;
mod stop;

use std::time::Duration;

use clap::Args;

use crate::args;
use crate::failure::{Failure, Outcome};

pub use pingpong::PongArgs;

/// The text of `bench --help`.
pub const BENCH_HELP: &str = "\
Without --pingpong, four comparisons, each a Markdown table:
  1. lifecycle of a 4 KiB object (create, write a byte, drop), POSIX and System V: ipcmem
     (non-volatile and volatile), raw system calls, and the shared_memory crate;
  2. time until a fresh object (--size) is fully usable, one write per page: first touch,
     single-thread populate (MAP_POPULATE, MADV_POPULATE_WRITE), ipcmem prefault;
  3. open (attach) of an existing object (--size), ipcmem against raw, both kinds;
  4. bulk copy in and out with write_at/read_at against memcpy of private memory.
With --pingpong, the round trip between two processes (the second is this program again)
through Event (spinning, and parked at once), semaphores, a robust mutex with a condition
variable, a pipe and a Unix socket, against a busy-wait on a shared word.

Build with --release for figures that mean something. The full run takes a minute or two
and needs 3 times --size of free memory; --quick takes seconds (its figures mean little).
Every object it makes is removed, also on an error or Ctrl-C.

Examples:
  $ cargo run --release -- bench --size 256MiB --reps 3
  $ ipcmem bench --pingpong
  ...
  | mechanism                               | median  | p99     | ratio to busy-wait |
  |-----------------------------------------|---------|---------|--------------------|
  | busy-wait on a shared word (the floor)  | 106 ns  | 150 ns  | 1.00               |
  | Event, spinning (default budget, 20 µs) | 148 ns  | 8.64 µs | 1.40               |
  | Event, parking at once (spin budget 0)  | 47.1 µs | 66.4 µs | 443.99             |
  ...";

/// The options of `bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Round trips between two processes instead of the four comparisons.
    #[arg(long)]
    pub pingpong: bool,
    /// Small and fast (4 MiB objects, few repetitions), for tests: the figures mean little.
    #[arg(long)]
    pub quick: bool,
    /// The size of the large objects (ready, open, copy) [default: 1GiB, 4MiB with --quick].
    #[arg(long, value_name = "SIZE", value_parser = args::parse_size)]
    pub size: Option<usize>,
    /// Runs of each measurement on a large object; the table shows the median [default: 5, 2
    /// with --quick].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub reps: Option<u32>,
    /// Iterations of each small measurement (lifecycle, open, round trip) [default: 2000, and
    /// 20000 round trips; 50 and 200 with --quick].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub iterations: Option<u32>,
}

/// What one run measures, and how often.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// The size of the large objects.
    pub size: usize,
    /// Runs of each measurement on a large object.
    pub reps: usize,
    /// Iterations of each small measurement.
    pub iterations: usize,
}

impl Settings {
    fn from_args(args: &BenchArgs) -> Settings {
        let (size, reps, iterations) = match (args.quick, args.pingpong) {
            (false, false) => (1 << 30, 5, 2000),
            (false, true) => (0, 0, 20_000),
            (true, false) => (4 << 20, 2, 50),
            (true, true) => (0, 0, 200),
        };
        Settings {
            size: args.size.unwrap_or(size),
            reps: args.reps.map_or(reps, |n| n as usize),
            iterations: args.iterations.map_or(iterations, |n| n as usize),
        }
    }
}

/// `ipcmem bench`.
pub fn run(args: &BenchArgs) -> Outcome {
    let settings = Settings::from_args(args);
    stop::watch().map_err(|error| Failure::about("bench", format!("cannot watch for signals: {error}")))?;
    // Removes whatever this run leaves, however it ends (also on a panic, by unwinding).
    let _sweep = stop::Sweep;
    println!("{}", machine(&settings, args.pingpong));
    if args.pingpong {
        return pingpong::run(&settings);
    }
    check_room(settings.size)?;
    lifecycle::run(&settings)?;
    // The copies are measured before the cases that make and free objects by the GiB, and
    // printed after them: once a process had done that, its read_at into fresh private memory
    // ran a third slower on our machine (reproducibly; memcpy and write_at did not), which is
    // that history, not the copy.
    let copies = copy::run(&settings)?;
    ready::run(&settings)?;
    open::run(&settings)?;
    println!("{copies}");
    Ok(())
}

/// `ipcmem bench-pong MODE [NAME]`: the second process of `bench --pingpong`.
pub fn pong(args: &PongArgs) -> Outcome {
    pingpong::pong(args)
}

/// The first lines of the output: what the machine and the run are.
fn machine(settings: &Settings, pingpong: bool) -> String {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let build =
        if cfg!(debug_assertions) { "debug build (figures mean little: use --release)" } else { "release build" };
    let what = if pingpong {
        format!("{} round trips each", settings.iterations)
    } else {
        format!(
            "large objects of {}, {} runs each; {} iterations of each small measurement",
            stats::bytes(settings.size),
            settings.reps,
            settings.iterations
        )
    };
    format!("{cpus} CPUs ({model}), Linux {}, pages of {} bytes; {build}; {what}.", kernel.trim(), ipcmem::page_size())
}

/// Fails unless `/dev/shm` has room for an object of `size` bytes and memory for three (the
/// copy case holds the object, private memory and a buffer of that size): the raw calls
/// measured here would fault on a page that cannot be had (`SIGBUS`), not return an error.
fn check_room(size: usize) -> Outcome {
    let hint = "choose a smaller --size";
    let free = shm_free().map_err(|error| failure(format!("cannot read the free space of /dev/shm: {error}")))?;
    if free < size as u64 {
        return Err(failure(format!(
            "an object of {} needs that much free in /dev/shm, which has {}: {hint}",
            stats::bytes(size),
            stats::approximate_bytes(free)
        )));
    }
    let available = mem_available();
    if available.is_some_and(|available| available / 3 < size as u64) {
        return Err(failure(format!(
            "a run with objects of {} needs three times that of free memory, and MemAvailable \
             in /proc/meminfo says less: {hint}",
            stats::bytes(size)
        )));
    }
    Ok(())
}

/// The bytes free in `/dev/shm` for an unprivileged user.
fn shm_free() -> std::io::Result<u64> {
    // SAFETY: all zeros is a valid `statvfs` (plain integers); statvfs fills it.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: the path is a NUL-terminated literal; `stat` is a valid place for the result.
    if unsafe { libc::statvfs(c"/dev/shm".as_ptr(), &raw mut stat) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// `MemAvailable` of /proc/meminfo, in bytes, if it can be read.
fn mem_available() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|line| line.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

/// Says on stderr which measurement runs now (a full run takes a while).
fn progress(what: &str) {
    eprintln!("ipcmem bench: {what}...");
}

/// A failure of the benchmark itself (a system call that failed, a peer that did not answer).
fn failure(cause: impl std::fmt::Display) -> Failure {
    Failure::about("bench", cause)
}

/// Warm-up iterations before `iterations` timed ones: a tenth, at least 2.
fn warm_up(iterations: usize) -> usize {
    (iterations / 10).max(2)
}

/// How long any wait on another process may take before the bench gives up on it.
const PATIENCE: Duration = Duration::from_secs(5);
