//! `--isio`: ImageStreamIO streams (`ipcmem::isio`). Frames of 512×512 `f32` (1 MiB) written
//! (`write_frame`: write flag, copy, counters and times, posts) and read (`read_frame`: the
//! counters checked before and after the copy) against `memcpy` between the same bytes of the
//! same file (mapped a second time by this module) and a private buffer; then the latency from
//! a writer's post to a waiting reader's return, as round trips between two processes through
//! two isio streams, against the same through two `ipcmem::stream` streams.
//!
//! The two variants of a copy take turns, batch by batch, and each repetition gives one ratio
//! from its own pair of batch times (the machine is shared: a limit timed a second before its
//! subject measures another machine). The table shows the median ratio and its spread.
#![allow(clippy::similar_names)] // `ping` and `pong` name the two directions

use std::ffi::CString;
use std::hint::black_box;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use ipcmem::array::ElementType;
use ipcmem::isio::{DataType, Dir, StreamSpec};
use ipcmem::stream::{RawReader, RawWriter};

use crate::failure::{failure, Failure, Outcome};
use crate::raw::PrivateMemory;
use crate::section::{Counts, Section};
use crate::stats::{self, Samples, Table};
use crate::{progress, stop, warm_up, Settings, PATIENCE};

/// `--isio`.
pub const SECTION: Section = Section {
    flag: "isio",
    help: "ImageStreamIO streams: 512x512 f32 frames written and read against memcpy, and the latency \
           from a post to a waiting reader, against ipcmem's own streams",
    in_default_run: false,
    large: false,
    reps: Counts { full: 21, quick: 3 },
    iterations: Counts { full: 5000, quick: 100 },
    run,
};

/// The frame: 512×512 `f32`, a camera frame of adaptive optics.
const WIDTH: u32 = 512;
/// Frames in a batch of copies.
const BATCH: usize = 64;
/// The same with `--quick`.
const QUICK_BATCH: usize = 4;
/// The medians of round trips are of means of this many consecutive ones.
const MEAN_OF: usize = 10;

/// Which streams a round trip goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// Two ImageStreamIO streams: a claimed semaphore each, `sem_clockwait`.
    Isio,
    /// Two ipcmem streams, the reader's default spin before it parks.
    Stream,
    /// Two ipcmem streams, parking at once.
    StreamPark,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Isio, Kind::Stream, Kind::StreamPark];

    fn arg(self) -> String {
        self.to_possible_value().map(|value| value.get_name().to_owned()).unwrap_or_default()
    }

    fn describe(self) -> &'static str {
        match self {
            Kind::Isio => "isio: write_frame, Reader::wait_timeout + read_frame",
            Kind::Stream => "ipcmem stream: publish, next_into (default spin)",
            Kind::StreamPark => "ipcmem stream: publish, next_into (spin 0: parks at once)",
        }
    }
}

/// The arguments of the hidden `isio-pong`.
#[derive(Debug, Args)]
pub struct PongArgs {
    /// Which streams.
    #[arg(value_enum)]
    kind: Kind,
    /// The directory of the isio streams, or the prefix of the ipcmem streams' names.
    place: String,
}

/// A directory of streams of this run under /dev/shm, removed with its content on drop.
struct StreamDir(PathBuf);

impl StreamDir {
    fn new() -> Result<StreamDir, Failure> {
        let path = PathBuf::from(format!("/dev/shm/ipcmem-bench-{}-isio", std::process::id()));
        std::fs::create_dir_all(&path).map_err(|error| failure(format!("mkdir {}: {error}", path.display())))?;
        Ok(StreamDir(path))
    }
}

impl Drop for StreamDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Measures and prints the two tables.
fn run(settings: &Settings) -> Outcome {
    let dir = StreamDir::new()?;
    progress("isio: 512x512 f32 frames written and read");
    copies(settings, &dir.0)?;
    progress("isio: round trips through isio streams and ipcmem streams");
    round_trips(settings, &dir.0)
}

// ---------------------------------------------------------------------------------------------
// Copies.

/// The stream's file mapped a second time, for `memcpy` into and out of its data.
struct FileMapping {
    ptr: *mut u8,
    len: usize,
}

impl FileMapping {
    fn new(path: &Path) -> Result<FileMapping, Failure> {
        let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|_| failure("a path with NUL"))?;
        // SAFETY: a NUL-terminated path; plain flags.
        let fd = unsafe { libc::open(c_path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(failure(format!("open {}: {}", path.display(), std::io::Error::last_os_error())));
        }
        let len = std::fs::metadata(path).map_err(|error| failure(format!("stat: {error}")))?.len();
        let len = usize::try_from(len).map_err(|_| failure("a file larger than memory"))?;
        // SAFETY: a new shared mapping of the whole file at an address the kernel chooses.
        let ptr = unsafe {
            libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, 0)
        };
        // SAFETY: our own descriptor; the mapping keeps the file.
        unsafe { libc::close(fd) };
        if ptr == libc::MAP_FAILED {
            return Err(failure(format!("mmap: {}", std::io::Error::last_os_error())));
        }
        Ok(FileMapping { ptr: ptr.cast(), len })
    }
}

impl Drop for FileMapping {
    fn drop(&mut self) {
        // SAFETY: our own mapping, which no reference outlives.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// What one row of the copy table measured.
struct CopyFigures {
    what: &'static str,
    isio: Samples,
    memcpy: Samples,
    ratios: Vec<f64>,
}

/// Batches of each variant in one repetition (taking turns); the repetition's figure is their
/// median.
const BATCHES: usize = 3;
/// How often a batch the scheduler interrupted is timed again.
const RETRIES: usize = 10;

/// The involuntary context switches of this thread so far (`getrusage(RUSAGE_THREAD)`).
fn preemptions() -> Result<i64, Failure> {
    // SAFETY: all zeros is a valid `rusage` (plain integers); getrusage fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid place for the result.
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &raw mut usage) } != 0 {
        return Err(failure(format!("getrusage: {}", std::io::Error::last_os_error())));
    }
    Ok(usage.ru_nivcsw)
}

/// Times `work`, again (up to [`RETRIES`] times) while this thread lost its CPU meanwhile;
/// counts in `kept` a time kept although preempted every time.
fn timed(kept: &mut usize, mut work: impl FnMut() -> Result<(), Failure>) -> Result<Duration, Failure> {
    let mut time = Duration::ZERO;
    for _ in 0..RETRIES {
        let before = preemptions()?;
        let started = Instant::now();
        work()?;
        time = started.elapsed();
        if preemptions()? == before {
            return Ok(time);
        }
    }
    *kept += 1;
    Ok(time)
}

fn copies(settings: &Settings, dir: &Path) -> Outcome {
    let streams = Dir::new(dir);
    let stream = streams.create(&StreamSpec::new("bench", DataType::F32, &[WIDTH, WIDTH]).replace(true))?;
    let frame_len = stream.frame_len();
    let data = stream.layout().data;
    let mapping = FileMapping::new(stream.path())?;
    let batch = if settings.quick { QUICK_BATCH } else { BATCH };
    // Page-aligned, as the file's mapping is.
    let mut memory = PrivateMemory::new(frame_len)?;
    let private = memory.as_mut_slice();
    for (i, byte) in private.iter_mut().enumerate() {
        *byte = u8::try_from(i % 251).unwrap_or(0);
    }
    // Every page of both resident before anything is timed.
    stream.write_frame(private)?;
    stream.read_frame(private)?;

    let mut kept = 0;
    let mut rows = Vec::new();
    for (what, write) in [("write: write_frame / memcpy into the data", true), ("read: read_frame / memcpy out", false)]
    {
        let mut figures =
            CopyFigures { what, isio: Samples::default(), memcpy: Samples::default(), ratios: Vec::new() };
        for _ in 0..settings.reps {
            stop::check()?;
            let (mut isio, mut memcpy) = (Samples::default(), Samples::default());
            for _ in 0..BATCHES {
                isio.push(timed(&mut kept, || {
                    for _ in 0..batch {
                        if write {
                            stream.write_frame(black_box(&*private))?;
                        } else {
                            stream.read_frame(black_box(&mut *private))?;
                        }
                    }
                    Ok(())
                })?);
                memcpy.push(timed(&mut kept, || {
                    for _ in 0..batch {
                        // SAFETY: the data part lies within the mapping (the stream's layout,
                        // checked at open, of this very file); this run's own stream, which no
                        // other process touches; the private buffer is another mapping.
                        unsafe {
                            let shared = mapping.ptr.add(data);
                            if write {
                                std::ptr::copy_nonoverlapping(
                                    black_box(private.as_ptr()),
                                    black_box(shared),
                                    frame_len,
                                );
                            } else {
                                std::ptr::copy_nonoverlapping(
                                    black_box(shared),
                                    black_box(private.as_mut_ptr()),
                                    frame_len,
                                );
                            }
                        }
                        black_box(&mut *private);
                    }
                    Ok(())
                })?);
            }
            let (isio, memcpy) = (isio.median(), memcpy.median());
            figures.ratios.push(stats::ratio(memcpy, isio));
            figures.isio.push(isio / u32::try_from(batch).unwrap_or(1));
            figures.memcpy.push(memcpy / u32::try_from(batch).unwrap_or(1));
        }
        rows.push(figures);
    }
    let mut table = Table::new(&["copy of a 512x512 f32 frame (1 MiB)", "isio", "memcpy", "memcpy / isio (spread)"]);
    for figures in &rows {
        let mut ratios = figures.ratios.clone();
        ratios.sort_by(f64::total_cmp);
        let median = ratios.get(ratios.len() / 2).copied().unwrap_or(0.0);
        let (low, high) = (ratios.first().copied().unwrap_or(0.0), ratios.last().copied().unwrap_or(0.0));
        table.row(vec![
            figures.what.into(),
            stats::duration(figures.isio.median()),
            stats::duration(figures.memcpy.median()),
            format!("{} ({}–{})", stats::format_ratio(median), stats::format_ratio(low), stats::format_ratio(high)),
        ]);
    }
    let about = format!(
        "One stream of 512×512 f32 in a tmpfs directory. Each of {} repetitions times, taking \
         turns, {BATCHES} batches of {batch} frames through isio and {BATCHES} of {batch} memcpy \
         between the same file bytes (mapped a second time) and the same page-aligned private \
         buffer; a batch during which this thread lost its CPU is timed again (up to {RETRIES} \
         times). Times are per frame (median of the repetitions); the ratio is memcpy's time \
         over isio's, per repetition: median, then lowest–highest. A write includes the \
         counters, times and the posts of 10 semaphores (their values stay at 10: no reader \
         takes them); a read includes the checks of write flag and counters before and after.",
        settings.reps
    );
    let notes = [format!("Batches kept although preempted every time: {kept}.")];
    stats::print_section("ImageStreamIO frames: write and read against memcpy", &about, &table, &notes);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Round trips.

fn round_trips(settings: &Settings, dir: &Path) -> Outcome {
    let mut results = Vec::new();
    for kind in Kind::ALL {
        stop::check()?;
        let samples = match kind {
            Kind::Isio => isio_round_trips(settings.iterations, dir)?,
            Kind::Stream | Kind::StreamPark => stream_round_trips(kind, settings.iterations)?,
        };
        results.push((kind, samples));
    }
    let isio = results.first().map(|(_, s)| s.median_of_means(MEAN_OF)).unwrap_or_default();
    let mut table = Table::new(&["round trip through two streams", "median", "p99", "ratio to isio"]);
    for (kind, samples) in &results {
        let median = samples.median_of_means(MEAN_OF);
        table.row(vec![
            kind.describe().into(),
            stats::duration(median),
            stats::duration(samples.percentile(0.99)),
            stats::format_ratio(stats::ratio(median, isio)),
        ]);
    }
    let about = format!(
        "This process writes a 1-element frame to a ping stream; a second process (this program \
         again), waiting on it, writes one to a pong stream, on which this process waits: {} \
         round trips (after {} unmeasured), each timed on its own. The latency from a post to \
         the waiting reader's return is about half a round trip. Median: of the means of \
         {MEAN_OF} consecutive round trips; p99: of single ones.",
        settings.iterations,
        warm_up(settings.iterations)
    );
    stats::print_section("ImageStreamIO: from a post to the waiting reader", &about, &table, &[]);
    Ok(())
}

/// Starts the second process for `kind`, with `place` (a directory or a name prefix).
fn start_pong(kind: Kind, place: &str) -> Result<Child, Failure> {
    let exe = std::env::current_exe().map_err(|error| failure(format!("the bench's own path: {error}")))?;
    Command::new(exe)
        .args(["isio-pong", &kind.arg(), place])
        .stdin(Stdio::null())
        .spawn()
        .map_err(|error| failure(format!("start the second process: {error}")))
}

/// Times `iterations` round trips of `trip` after a warm-up.
fn measure(iterations: usize, mut trip: impl FnMut() -> Result<(), Failure>) -> Result<Samples, Failure> {
    for _ in 0..warm_up(iterations) {
        trip()?;
    }
    let mut samples = Samples::with_capacity(iterations);
    let mut last = Instant::now();
    for _ in 0..iterations {
        trip()?;
        let now = Instant::now();
        samples.push(now - last);
        last = now;
        stop::check()?;
    }
    Ok(samples)
}

fn no_answer() -> Failure {
    failure(format!("the second process did not answer in {} s", PATIENCE.as_secs()))
}

/// Kills and reaps the second process when dropped.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn isio_round_trips(iterations: usize, dir: &Path) -> Result<Samples, Failure> {
    let streams = Dir::new(dir);
    let spec = |name| StreamSpec::new(name, DataType::U32, &[1]).replace(true);
    let ping = streams.create(&spec("ping"))?;
    let _ = streams.remove("pong");
    let _peer = Peer(start_pong(Kind::Isio, &dir.display().to_string())?);
    let started = Instant::now();
    let pong = loop {
        match streams.open("pong") {
            Ok(pong) => break pong,
            Err(ipcmem::Error::NotFound { .. }) if started.elapsed() < PATIENCE => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(error) => return Err(error.into()),
        }
    };
    let reader = pong.reader()?;
    let mut frame = [0_u8; 4];
    measure(iterations, || {
        ping.write_frame(&frame)?;
        reader.wait_frame(PATIENCE, &mut frame)?.ok_or_else(no_answer)?;
        Ok(())
    })
}

fn stream_round_trips(kind: Kind, iterations: usize) -> Result<Samples, Failure> {
    let prefix = stop::unique_name();
    let (ping_name, pong_name) = (format!("{prefix}-ping"), format!("{prefix}-pong"));
    let mut ping = RawWriter::create(ping_name.as_str(), ElementType::U32, &[1], 4)?;
    let _peer = Peer(start_pong(kind, &prefix)?);
    let mut reader = RawReader::open_wait(pong_name.as_str(), PATIENCE)?;
    if kind == Kind::StreamPark {
        reader = reader.with_spin(Duration::ZERO);
    }
    let mut frame = [0_u8; 4];
    let samples = measure(iterations, || {
        ping.publish(&frame)?;
        reader.next_into(&mut frame, PATIENCE)?.ok_or_else(no_answer)?;
        Ok(())
    });
    let _ = ipcmem::shmrm(pong_name.as_str());
    samples
}

/// The hidden `isio-pong`: answers every ping frame with a pong frame until the ping stream
/// stops (its parent is gone, or the patience runs out).
pub fn pong(args: &PongArgs) -> Outcome {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes plain integers and changes only this process: it
    // dies with its parent.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    let mut frame = [0_u8; 4];
    match args.kind {
        Kind::Isio => {
            let streams = Dir::new(&args.place);
            // The reader claims its semaphore before the pong stream appears: the parent's
            // first ping comes after it saw the pong stream, so it is never missed.
            let ping = streams.open("ping")?;
            let reader = ping.reader()?;
            let pong = streams.create(&StreamSpec::new("pong", DataType::U32, &[1]).replace(true))?;
            while reader.wait_frame(PATIENCE, &mut frame)?.is_some() {
                pong.write_frame(&frame)?;
            }
        }
        Kind::Stream | Kind::StreamPark => {
            let mut reader = RawReader::open_wait(format!("{}-ping", args.place).as_str(), PATIENCE)?;
            if args.kind == Kind::StreamPark {
                reader = reader.with_spin(Duration::ZERO);
            }
            let mut pong = RawWriter::create(format!("{}-pong", args.place).as_str(), ElementType::U32, &[1], 4)?;
            while reader.next_into(&mut frame, PATIENCE)?.is_some() {
                pong.publish(&frame)?;
            }
        }
    }
    Ok(())
}
