//! `ipcmem-bench`: measures ipcmem against the raw system calls, `memcpy` and its peers in one
//! run and prints Markdown tables of medians and ratios.
//!
//! The benchmark is made of sections, each a module with a [`Section`] that names its flag
//! (`--pingpong`, `--copy`, …), its default counts and its `run`. A run without a section flag
//! runs the sections marked `in_default_run`; with flags, only those. To add a section, write
//! its module and add its `SECTION` to [`SECTIONS`] (behind a cargo feature if it needs one).
//!
//! Every object is made under a name of this process (`/ipcmem-bench-<pid>-<n>`) or, for
//! System V, by this process: what an error, a panic or an interruption (SIGINT, SIGTERM,
//! SIGHUP) leaves is removed by a sweep when the run ends (see [`stop`]).

#[cfg(feature = "zenoh")]
mod bridge;
mod copy;
mod failure;
#[cfg(feature = "iceoryx2")]
mod iceoryx;
mod isio;
mod lifecycle;
mod open;
mod pingpong;
mod raw;
mod ready;
mod section;
mod stats;
mod stop;
mod stream;

use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgAction, ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::failure::{failure, Outcome};
use crate::section::{Section, Settings};

/// Every section, in the order a run measures them (`--zenoh` with the cargo feature `zenoh`).
const SECTIONS: &[Section] = &[
    lifecycle::SECTION,
    copy::SECTION,
    ready::SECTION,
    open::SECTION,
    pingpong::SECTION,
    stream::SECTION,
    isio::SECTION,
    #[cfg(feature = "zenoh")]
    bridge::SECTION,
];

/// The text after the options in `--help`.
const AFTER_HELP: &str = "\
Without a section flag, the default sections run: lifecycle, copy, ready and open, each a
Markdown table. With one or more section flags, only those run.

Build with --release for figures that mean something. The full default run takes a few
minutes and needs 3 times --size of free memory; --quick takes seconds (its figures mean
little). Every object it makes is removed, also on an error or Ctrl-C.

Examples:
  $ cargo run --release -p ipcmem-bench
  $ cargo run --release -p ipcmem-bench -- --size 256MiB --reps 3
  $ cargo run --release -p ipcmem-bench -- --pingpong
  ...
  | mechanism                               | median  | p99     | ratio to busy-wait |
  |-----------------------------------------|---------|---------|--------------------|
  | busy-wait on a shared word (the floor)  | 106 ns  | 150 ns  | 1.00               |
  | Event, spinning (default budget, 20 µs) | 148 ns  | 8.64 µs | 1.40               |
  ...";

/// The command line: the options every section shares; the section flags are added from
/// [`SECTIONS`] (see [`command`]).
#[derive(Debug, Parser)]
#[command(name = "ipcmem-bench", version, about, after_help = AFTER_HELP, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(flatten)]
    options: Options,
    #[command(subcommand)]
    hidden: Option<Hidden>,
}

/// What every section takes.
#[derive(Debug, Args)]
pub struct Options {
    /// Small and fast (4 MiB objects, few repetitions), for tests: the figures mean little.
    #[arg(long)]
    pub quick: bool,
    /// The size of the large objects (ready, open, the largest copy) [default: 1GiB, 4MiB with
    /// --quick].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub size: Option<usize>,
    /// Repetitions of each measurement that is repeated whole (large objects, copies, round
    /// trips); the tables show the median [default: per section, fewer with --quick].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub reps: Option<u32>,
    /// Iterations of each small measurement (lifecycle, open, round trip) [default: 2000, and
    /// 20000 round trips; 50 and 200 with --quick].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub iterations: Option<u32>,
}

/// The commands a run starts as second processes.
#[derive(Debug, Subcommand)]
enum Hidden {
    /// The second process of `--pingpong`.
    #[command(hide = true)]
    Pong(pingpong::PongArgs),
    /// The second process of `--isio`.
    #[command(hide = true)]
    IsioPong(isio::PongArgs),
    /// The second process of `--stream`.
    #[command(hide = true)]
    StreamReader(stream::ReaderArgs),
    /// The second process of `--stream`'s iceoryx2 rows.
    #[cfg(feature = "iceoryx2")]
    #[command(hide = true)]
    Iceoryx2Reader(iceoryx::ReaderArgs),
}

fn main() -> ExitCode {
    let matches = command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    let outcome = match &cli.hidden {
        Some(Hidden::Pong(args)) => pingpong::pong(args),
        Some(Hidden::IsioPong(args)) => isio::pong(args),
        Some(Hidden::StreamReader(args)) => stream::reader(args),
        #[cfg(feature = "iceoryx2")]
        Some(Hidden::Iceoryx2Reader(args)) => iceoryx::reader(args),
        None => run(&cli.options, &selected(&matches)),
    };
    failure::exit_code(outcome)
}

/// The command line parser: [`Cli`] and a flag for each section.
fn command() -> clap::Command {
    SECTIONS.iter().fold(Cli::command(), |command, section| {
        command.arg(clap::Arg::new(section.flag).long(section.flag).help(section.help).action(ArgAction::SetTrue))
    })
}

/// The sections the command line asks for: those flagged, or the default ones.
fn selected(matches: &ArgMatches) -> Vec<&'static Section> {
    let flagged: Vec<&Section> = SECTIONS.iter().filter(|section| matches.get_flag(section.flag)).collect();
    if flagged.is_empty() {
        SECTIONS.iter().filter(|section| section.in_default_run).collect()
    } else {
        flagged
    }
}

/// Runs `sections`, in the order of [`SECTIONS`].
fn run(options: &Options, sections: &[&Section]) -> Outcome {
    stop::watch().map_err(|error| failure(format!("cannot watch for signals: {error}")))?;
    // Removes whatever this run leaves, however it ends (also on a panic, by unwinding).
    let _sweep = stop::Sweep;
    let settings: Vec<Settings> = sections.iter().map(|section| Settings::new(options, section)).collect();
    // Before anything is measured: a run that cannot finish should not start.
    for (section, settings) in sections.iter().zip(&settings) {
        if section.large {
            check_room(settings.size)?;
        }
    }
    println!("{}", machine());
    for (section, settings) in sections.iter().zip(&settings) {
        (section.run)(settings)?;
    }
    Ok(())
}

/// The first line of the output: what the machine and the build are.
fn machine() -> String {
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
    format!("{cpus} CPUs ({model}), Linux {}, pages of {} bytes; {build}.", kernel.trim(), ipcmem::page_size())
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

/// Parses a size: bytes, or a number with `KiB`, `MiB` or `GiB` (also `k`, `m`, `g`), at least
/// one byte.
fn parse_size(text: &str) -> Result<usize, String> {
    let digits_end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, suffix) = text.split_at(digits_end);
    let shift = match suffix.to_ascii_lowercase().as_str() {
        "" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        _ => return Err(format!("unknown unit {suffix:?}: write bytes, or a number with KiB, MiB or GiB")),
    };
    match digits.parse::<usize>().ok().and_then(|number| number.checked_mul(1 << shift)) {
        Some(0) => Err("the objects need at least one byte".into()),
        Some(size) => Ok(size),
        None if digits.is_empty() => Err("a size is a number of bytes, optionally with KiB, MiB or GiB".into()),
        None => Err(format!("{text} is too large for this machine")),
    }
}

/// Says on stderr which measurement runs now (a full run takes a while).
fn progress(what: &str) {
    eprintln!("ipcmem-bench: {what}...");
}

/// Warm-up iterations before `iterations` timed ones: a tenth, at least 2.
fn warm_up(iterations: usize) -> usize {
    (iterations / 10).max(2)
}

/// How long any wait on another process may take before the bench gives up on it.
const PATIENCE: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("2m"), Ok(2 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        for bad in ["0", "", "KiB", "-1", "4kb", "99999999999999999999"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_section_has_its_own_flag() {
        command().debug_assert();
        let mut flags: Vec<&str> = SECTIONS.iter().map(|section| section.flag).collect();
        flags.sort_unstable();
        flags.dedup();
        assert_eq!(flags.len(), SECTIONS.len());
    }
}
