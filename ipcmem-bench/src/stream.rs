//! `--stream`: frame streams (`ipcmem::stream`) for frames of 64 KiB, 1 MiB and 16 MiB.
//!
//! - **Publishing** a frame (`RawWriter::publish`: the copy into the next slot under its
//!   seqlock, serial, times, notification) against `memcpy` of the frame into the same slots.
//! - **Reading** a frame (`RawReader::latest_into`: the copy out, checked by the seqlock)
//!   against `memcpy` out of the same slot into the same buffer.
//! - **Latency** from publication to receipt: a reader in a second process (this program
//!   again, as the hidden command `stream-reader`) spins on the stream; the writer publishes a
//!   frame every few milliseconds, so that each finds the reader waiting. The latency is the
//!   reader's clock at return less the frame's publication time (`CLOCK_REALTIME`, the same
//!   clock in both processes). The goal compares it with half an `Event` round trip (measured
//!   in the same run, spinning) plus one frame copy (the `memcpy` out, above).
//!
//! The variants of a comparison take turns, batch by batch, and each repetition gives one
//! ratio from its own pair of medians: the machine is shared, and a figure timed a second
//! before its baseline measures another machine.

use std::hint::black_box;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use ipcmem::array::ElementType;
use ipcmem::stream::{self, RawReader, RawWriter, StreamOptions};

use crate::failure::{failure, Failure, Outcome};
use crate::raw::PrivateMemory;
use crate::section::{Counts, Section};
use crate::stats::{self, Samples, Table};
use crate::{pingpong, progress, stop, Settings, PATIENCE};

/// `--stream`.
pub const SECTION: Section = Section {
    flag: "stream",
    help: "Frame streams: publishing and reading frames of 64 KiB, 1 MiB and 16 MiB against memcpy, and the \
           latency from publication to receipt with a spinning reader in a second process",
    in_default_run: false,
    large: false,
    reps: Counts { full: 5, quick: 2 },
    iterations: Counts { full: 2000, quick: 50 },
    run,
};

/// The frame sizes of the table.
const FRAME_SIZES: [usize; 3] = [64 << 10, 1 << 20, 16 << 20];
/// The slots of every stream.
const SLOTS: usize = 4;
/// Bytes a batch copies at least: small frames are repeated.
const BATCH_BYTES: usize = 64 << 20;
/// The same with `--quick`.
const QUICK_BATCH_BYTES: usize = 4 << 20;
/// Batches of each variant per repetition.
const BATCHES: usize = 3;
/// Frames whose latency is measured, at most (fewer for large frames: see [`latency_frames`]).
const LATENCY_FRAMES: usize = 2000;
/// Rounds of the latency: in each, the stream, then its floor (the raw transfer).
const LATENCY_ROUNDS: usize = 5;

/// The arguments of the hidden `stream-reader`.
#[derive(Debug, Args)]
pub struct ReaderArgs {
    /// The stream (with `--raw`: the object of the raw transfer).
    name: String,
    /// How many frames to receive.
    frames: usize,
    /// The floor: spin on a counter word and `memcpy` the frame out, no stream (see
    /// [`raw_reader`]); the frame's size in bytes.
    #[arg(long, value_name = "FRAME_BYTES")]
    raw: Option<usize>,
}

/// The figures of one frame size.
struct Figures {
    frame: usize,
    memcpy_in: Duration,
    publish: Duration,
    publish_ratios: Vec<f64>,
    memcpy_out: Duration,
    read: Duration,
    read_ratios: Vec<f64>,
    latency: Samples,
    lost: u64,
    /// The same transfer without the stream: memcpy in, a counter word, memcpy out.
    raw_latency: Samples,
    /// The copy out of that transfer alone (a frame just written by the other process).
    raw_copy: Samples,
    /// Per round: the stream's latency p50 over the goal of the round.
    goal_ratios: Vec<f64>,
}

/// Measures and prints the table.
fn run(settings: &Settings) -> Outcome {
    progress("frame streams: Event round trip (the reference of the latency)");
    let round_trip = pingpong::event_spin_round_trip(settings.iterations.max(200))?;
    let mut figures = Vec::new();
    for frame in FRAME_SIZES {
        stop::check()?;
        progress(&format!("frame streams: frames of {}", stats::bytes(frame)));
        figures.push(measure(settings, frame, round_trip)?);
    }
    print(settings, round_trip, &figures);
    #[cfg(feature = "iceoryx2")]
    {
        let before = crate::iceoryx::entries();
        let beside = beside_iceoryx2(settings, &figures);
        crate::iceoryx::clean_up(&before);
        beside?;
    }
    Ok(())
}

/// The same frames through iceoryx2's publish-subscribe, in the same run.
#[cfg(feature = "iceoryx2")]
fn beside_iceoryx2(settings: &Settings, ours: &[Figures]) -> Outcome {
    let mut table = Table::new(&[
        "frame",
        "ipcmem publish + read",
        "iceoryx2 loan, copy, send + receive, copy",
        "ipcmem / iceoryx2",
        "latency p50: ipcmem",
        "iceoryx2",
        "p99: ipcmem",
        "iceoryx2",
        "lost: ipcmem",
        "iceoryx2",
    ]);
    for figure in ours {
        stop::check()?;
        progress(&format!("frame streams: iceoryx2, frames of {}", stats::bytes(figure.frame)));
        let batch_bytes = if settings.quick { QUICK_BATCH_BYTES } else { BATCH_BYTES };
        let rounds = (batch_bytes / figure.frame).max(4);
        let theirs = crate::iceoryx::measure(
            figure.frame,
            rounds,
            latency_frames(settings, figure.frame),
            latency_gap(figure.frame),
        )?;
        table.row(vec![
            stats::bytes(figure.frame),
            stats::duration(theirs.ipcmem_round),
            stats::duration(theirs.iceoryx2_round),
            stats::format_ratio(stats::ratio(theirs.ipcmem_round, theirs.iceoryx2_round)),
            stats::duration(figure.latency.median()),
            stats::duration(theirs.latency.median()),
            stats::duration(figure.latency.percentile(0.99)),
            stats::duration(theirs.latency.percentile(0.99)),
            figure.lost.to_string(),
            theirs.lost.to_string(),
        ]);
    }
    let about = "The same frames through iceoryx2's publish-subscribe ([u8] slices, an inter-process \
                 service with a buffer of 4 and safe overflow), built with the cargo feature \
                 iceoryx2 (what iceoryx2 leaves in /dev/shm and /tmp/iceoryx2 is removed after). Publish + read: one process, per frame, the median of 5 batches: ipcmem \
                 publishes and a reader copies the frame out; iceoryx2 loans a sample, copies the \
                 frame in, sends it, receives it and copies it out (the same two copies). Ratio: \
                 ipcmem's time over iceoryx2's. Latency: a subscriber in a second process polls \
                 receive() without pause on the schedule of the stream's latency run; ipcmem's \
                 columns repeat the table above.";
    stats::print_section("Frame streams beside iceoryx2", about, &table, &[]);
    Ok(())
}

/// Everything measured for frames of `frame` bytes.
fn measure(settings: &Settings, frame: usize, round_trip: Duration) -> Result<Figures, Failure> {
    let name = stop::unique_name();
    let mut writer = StreamOptions::new().prefault(true).create_raw(name.as_str(), ElementType::U8, &[frame], SLOTS)?;
    let mut reader = RawReader::open(name.as_str())?;
    let mut private = PrivateMemory::new(frame)?;
    for (i, byte) in private.as_mut_slice().iter_mut().enumerate() {
        *byte = u8::try_from(i % 251).unwrap_or(0);
    }
    let batch_bytes = if settings.quick { QUICK_BATCH_BYTES } else { BATCH_BYTES };
    let times = (batch_bytes / frame).max(1);
    let slots = slot_addresses(&writer);
    let mut figures = Figures {
        frame,
        memcpy_in: Duration::ZERO,
        publish: Duration::ZERO,
        publish_ratios: Vec::new(),
        memcpy_out: Duration::ZERO,
        read: Duration::ZERO,
        read_ratios: Vec::new(),
        latency: Samples::default(),
        lost: 0,
        raw_latency: Samples::default(),
        raw_copy: Samples::default(),
        goal_ratios: Vec::new(),
    };
    let (mut memcpy_in, mut publish, mut memcpy_out, mut read) =
        (Samples::default(), Samples::default(), Samples::default(), Samples::default());
    // Repetition 0 is not recorded: caches, TLB and branch predictors warm up.
    for repetition in 0..=settings.reps {
        let mut batches = [Samples::default(), Samples::default(), Samples::default(), Samples::default()];
        for _ in 0..BATCHES {
            stop::check()?;
            batches[0].push(timed(times, |i| copy_in(&private, slots[i % SLOTS], frame)));
            batches[1].push(timed_result(times, |_| Ok(writer.publish(private.as_slice()).map(drop)?))?);
            batches[2].push(timed(times, |_| copy_out(slots[0], &mut private, frame)));
            let last = writer.last_serial();
            let buffer = private.as_mut_slice();
            batches[3].push(timed_result(times, |_| match reader.latest_into(buffer)? {
                Some(info) if info.serial == last => Ok(()),
                _ => Err(failure("the reader did not get the newest frame")),
            })?);
        }
        if repetition == 0 {
            continue;
        }
        let [copied_in, published, copied_out, read_back] = batches.map(|samples| samples.median());
        figures.publish_ratios.push(stats::ratio(published, copied_in));
        figures.read_ratios.push(stats::ratio(copied_out, read_back));
        memcpy_in.push(copied_in);
        publish.push(published);
        memcpy_out.push(copied_out);
        read.push(read_back);
    }
    let per_frame = |samples: &Samples| samples.median() / u32::try_from(times).unwrap_or(u32::MAX);
    figures.memcpy_in = per_frame(&memcpy_in);
    figures.publish = per_frame(&publish);
    figures.memcpy_out = per_frame(&memcpy_out);
    figures.read = per_frame(&read);
    drop(reader);
    // The stream and its floor take turns, round by round: the machine is shared, and a
    // floor measured a second apart measures another machine.
    let frames = latency_frames(settings, frame).div_ceil(LATENCY_ROUNDS);
    for _ in 0..LATENCY_ROUNDS {
        let (latency, lost) = latency(&mut writer, &name, &private, frames)?;
        let (raw_latency, raw_copy) = raw_latency(&private, frames)?;
        figures.goal_ratios.push(stats::ratio(latency.median(), latency_goal(round_trip, &raw_copy)));
        figures.lost += lost;
        figures.latency.extend(&latency);
        figures.raw_latency.extend(&raw_latency);
        figures.raw_copy.extend(&raw_copy);
    }
    Ok(figures)
}

/// The address of each slot of the stream (for the `memcpy` baseline, into the same bytes).
fn slot_addresses(writer: &RawWriter) -> [*mut u8; SLOTS] {
    let geometry = writer.geometry();
    let data = ipcmem::array::data_offset(2);
    // In bounds: the slots lie within the stream's mapping.
    std::array::from_fn(|slot| writer.memory().as_mut_ptr().wrapping_add(data + slot * geometry.frame_bytes()))
}

/// `memcpy` of a frame from the private buffer into the slot at `address`.
fn copy_in(private: &PrivateMemory, address: *mut u8, frame: usize) {
    // SAFETY: `address` is a slot of `frame` writable bytes of the stream's mapping, which the
    // writer keeps for the whole measurement; the stream is this run's own (unique name) and
    // no reader copies from it while this runs; the private buffer is another mapping.
    unsafe { std::ptr::copy_nonoverlapping(black_box(private.as_slice().as_ptr()), black_box(address), frame) };
}

/// `memcpy` of a frame out of the slot at `address` into the private buffer.
fn copy_out(address: *const u8, private: &mut PrivateMemory, frame: usize) {
    // SAFETY: as in `copy_in`: a slot of the stream, which nothing writes meanwhile.
    unsafe {
        std::ptr::copy_nonoverlapping(black_box(address), black_box(private.as_mut_slice().as_mut_ptr()), frame);
    };
}

/// Times `times` calls of `step`.
fn timed(times: usize, mut step: impl FnMut(usize)) -> Duration {
    let start = Instant::now();
    for i in 0..times {
        step(i);
    }
    start.elapsed()
}

/// Times `times` calls of a fallible `step`.
fn timed_result(times: usize, mut step: impl FnMut(usize) -> Result<(), Failure>) -> Result<Duration, Failure> {
    let start = Instant::now();
    for i in 0..times {
        step(i)?;
    }
    Ok(start.elapsed())
}

/// The latency goal: half an `Event` round trip plus one frame copy, the reader's copy of a
/// frame that the other processor has just written (`copies`, measured by the raw transfer).
fn latency_goal(round_trip: Duration, copies: &Samples) -> Duration {
    round_trip / 2 + copies.median()
}

/// How many frames the latency run publishes: fewer for large frames, so that it lasts seconds.
fn latency_frames(settings: &Settings, frame: usize) -> usize {
    let most = if settings.quick { 50 } else { LATENCY_FRAMES };
    most.min((1 << 30) / frame).max(40)
}

/// The gap between two frames of the latency run: the reader is back to waiting long before.
fn latency_gap(frame: usize) -> Duration {
    Duration::from_micros(500) + Duration::from_nanos(u64::try_from(frame).unwrap_or(u64::MAX) / 2)
}

/// Publishes frames one by one to a spinning reader in a second process; gives the latencies
/// it measured and the frames it lost.
fn latency(
    writer: &mut RawWriter,
    name: &str,
    private: &PrivateMemory,
    frames: usize,
) -> Result<(Samples, u64), Failure> {
    let mut child = ReaderChild::start(name, frames)?;
    let gap = latency_gap(writer.geometry().frame_bytes());
    for _ in 0..frames {
        stop::check()?;
        std::thread::sleep(gap);
        writer.publish(private.as_slice())?;
    }
    Ok(child.results()?.0)
}

/// Where the raw transfer keeps its counter (the serial of the newest frame) and the frame's
/// publication time; its slots start at [`RAW_SLOTS_AT`].
const RAW_COUNTER_AT: usize = 0;
const RAW_PUBLISHED_AT: usize = 8;
const RAW_SLOTS_AT: usize = 4096;

/// The floor of the latency, measured as [`latency`] is, between the same processes, with the
/// same frames, slots and gaps, but no stream: the writer `memcpy`s the frame into the next of
/// [`SLOTS`] slots, reads the clock, stores it and then the frame's serial in a counter word
/// (release); the reader spins on that word (no pause), copies the slot out (`memcpy` and
/// `rep movsb` in turns, the faster kept), reads the clock. Gives the latencies, and the reader's copies alone: a copy of a frame that the
/// other processor has just written, which is what "one frame copy" costs a reader.
fn raw_latency(private: &PrivateMemory, frames: usize) -> Result<(Samples, Samples), Failure> {
    let frame = private.as_slice().len();
    let name = stop::unique_name();
    let shm = ipcmem::SharedMemory::options().prefault(true).create(name.as_str(), RAW_SLOTS_AT + SLOTS * frame)?;
    let base = shm.as_mut_ptr();
    // SAFETY: the words lie at the start of the mapping (page-aligned, so 8-aligned), which
    // lives until the end of this function; the two processes access them only atomically.
    let (counter, published) = unsafe { raw_words(base) };
    let mut child = ReaderChild::start_raw(name.as_str(), frames, frame)?;
    let gap = latency_gap(frame);
    for serial in 1..=frames {
        stop::check()?;
        std::thread::sleep(gap);
        // SAFETY: slot `serial % SLOTS` is `frame` bytes of the mapping; the reader copies
        // the previous frame's slot at most (it is done with it: the gap is far longer than a
        // copy), and nothing else touches the object.
        unsafe {
            std::ptr::copy_nonoverlapping(
                private.as_slice().as_ptr(),
                base.add(RAW_SLOTS_AT + (serial % SLOTS) * frame),
                frame,
            );
        }
        published.store(stream::now_ns(), Ordering::Relaxed);
        counter.store(serial as u64, Ordering::Release);
    }
    let ((latencies, _lost), copies) = child.results()?;
    Ok((latencies, copies.unwrap_or_default()))
}

/// The counter and publication-time words of the raw transfer.
///
/// # Safety
/// `base` is the start of a mapping of at least 16 bytes that outlives `'a`, which every
/// process accesses at those bytes only atomically, as `u64`s.
unsafe fn raw_words<'a>(base: *mut u8) -> (&'a AtomicU64, &'a AtomicU64) {
    // SAFETY: the caller's promises: in bounds, aligned (a mapping starts on a page), alive,
    // and only atomic accesses.
    unsafe {
        (AtomicU64::from_ptr(base.add(RAW_COUNTER_AT).cast()), AtomicU64::from_ptr(base.add(RAW_PUBLISHED_AT).cast()))
    }
}

/// The second process of the latency run.
struct ReaderChild {
    child: Child,
    lines: BufReader<std::process::ChildStdout>,
}

impl ReaderChild {
    /// Starts `ipcmem-bench stream-reader NAME FRAMES` and waits until it is reading.
    fn start(name: &str, frames: usize) -> Result<ReaderChild, Failure> {
        ReaderChild::start_with(&[name, &frames.to_string()])
    }

    /// Starts `ipcmem-bench stream-reader NAME FRAMES --raw FRAME_BYTES` (see [`raw_latency`]).
    fn start_raw(name: &str, frames: usize, frame: usize) -> Result<ReaderChild, Failure> {
        ReaderChild::start_with(&[name, &frames.to_string(), "--raw", &frame.to_string()])
    }

    fn start_with(args: &[&str]) -> Result<ReaderChild, Failure> {
        let exe = std::env::current_exe().map_err(|error| failure(format!("cannot find this program: {error}")))?;
        let mut child = Command::new(exe)
            .arg("stream-reader")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|error| failure(format!("cannot start the reader: {error}")))?;
        let stdout = child.stdout.take().ok_or_else(|| failure("no pipe from the reader"))?;
        let mut reader = ReaderChild { child, lines: BufReader::new(stdout) };
        if reader.line()? != "ready" {
            return Err(failure("the reader did not start"));
        }
        Ok(reader)
    }

    fn line(&mut self) -> Result<String, Failure> {
        let mut line = String::new();
        self.lines.read_line(&mut line).map_err(|error| failure(format!("read from the reader: {error}")))?;
        Ok(line.trim_end().to_owned())
    }

    /// The reader's report: `lost`, then one latency in nanoseconds per frame; from a raw
    /// reader, a second line of copy times in nanoseconds.
    fn results(&mut self) -> Result<((Samples, u64), Option<Samples>), Failure> {
        let report = self.line()?;
        let mut numbers = report.split_whitespace().map(str::parse::<u64>);
        let lost = numbers.next().and_then(Result::ok).ok_or_else(|| failure(format!("the reader said {report:?}")))?;
        let latencies = durations(numbers)?;
        let copies = self.line()?;
        let copies = if copies.is_empty() { None } else { Some(durations(copies.split_whitespace().map(str::parse))?) };
        Ok(((latencies, lost), copies))
    }
}

/// Durations in nanoseconds, as a reader printed them.
fn durations(numbers: impl Iterator<Item = Result<u64, std::num::ParseIntError>>) -> Result<Samples, Failure> {
    let mut samples = Samples::default();
    for nanoseconds in numbers {
        samples.push(Duration::from_nanos(nanoseconds.map_err(|_| failure("a duration that is no number"))?));
    }
    Ok(samples)
}

impl Drop for ReaderChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ipcmem-bench stream-reader NAME FRAMES`: reads FRAMES frames, spinning, and prints the frames
/// it lost and the latency of each frame (ns), on one line.
pub fn reader(args: &ReaderArgs) -> Outcome {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes plain integers and changes only this process.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    if let Some(frame) = args.raw {
        return raw_reader(args, frame);
    }
    // A spin budget longer than the gap between frames: the reader never parks.
    let mut reader = RawReader::open(args.name.as_str())?.with_spin(Duration::from_secs(1));
    // Page-aligned and resident, as the raw reader's: the copies differ in nothing else.
    let mut buffer = PrivateMemory::new(reader.geometry().frame_bytes())?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").and_then(|()| out.flush()).map_err(|error| failure(format!("stdout: {error}")))?;
    let (mut latencies, mut lost) = (Vec::with_capacity(args.frames), 0);
    // The newest frame at open, if any, is not one of the run's; the run's last is `end`.
    let start = reader.last_returned() + 1;
    let end = start + u64::try_from(args.frames).unwrap_or(u64::MAX);
    let mut newest = start;
    while newest < end {
        let info = reader
            .next_into(buffer.as_mut_slice(), PATIENCE)?
            .ok_or_else(|| failure(format!("no frame came after frame {newest} (the run ends at {end})")))?;
        let received = stream::now_ns();
        newest = info.serial;
        if info.serial <= start {
            continue;
        }
        lost += info.lost;
        latencies.push(received.saturating_sub(info.published_ns).to_string());
    }
    writeln!(out, "{lost} {}\n", latencies.join(" "))
        .and_then(|()| out.flush())
        .map_err(|error| failure(format!("stdout: {error}")))
}

/// The reader of [`raw_latency`]: spins on the counter word, copies the newest slot out,
/// and prints `0` (lost: not counted), the latencies, and on a second line the copies' times.
fn raw_reader(args: &ReaderArgs, frame: usize) -> Outcome {
    let shm = ipcmem::SharedMemory::open(args.name.as_str())?;
    if shm.len() < RAW_SLOTS_AT + SLOTS * frame {
        return Err(failure(format!("{} is smaller than {SLOTS} frames of {frame} bytes", args.name)));
    }
    let base = shm.as_mut_ptr();
    // SAFETY: the start of the mapping, which lives until the end of this function; both
    // processes access these words only atomically.
    let (counter, published) = unsafe { raw_words(base) };
    let mut buffer = PrivateMemory::new(frame)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").and_then(|()| out.flush()).map_err(|error| failure(format!("stdout: {error}")))?;
    // Per way (`memcpy` for even serials, `rep movsb` for odd ones): latencies and copies.
    let mut ways: [(Samples, Samples); 2] = Default::default();
    let (mut seen, mut deadline, mut spins) = (0, Instant::now() + PATIENCE, 0_u32);
    while seen < args.frames as u64 {
        let serial = counter.load(Ordering::Acquire);
        if serial == seen {
            // The clock only now and then: a check of the word is a load, a look at the clock
            // tens of nanoseconds.
            spins = spins.wrapping_add(1);
            if spins % 4096 == 0 && Instant::now() > deadline {
                return Err(failure(format!("no frame came after frame {seen}")));
            }
            continue;
        }
        let start = stream::now_ns();
        let slot = base.wrapping_add(RAW_SLOTS_AT + (usize::try_from(serial).unwrap_or(0) % SLOTS) * frame);
        // SAFETY: the slot of `serial`, `frame` bytes within the mapping (checked above); the
        // writer writes the next slot meanwhile, not this one. The two ways take turns (see
        // `raw_latency`).
        unsafe {
            if serial % 2 == 0 {
                std::ptr::copy_nonoverlapping(slot, buffer.as_mut_slice().as_mut_ptr(), frame);
            } else {
                crate::copy::rep_movsb(slot, buffer.as_mut_slice().as_mut_ptr(), frame);
            }
        }
        let received = stream::now_ns();
        let (latencies, copies) = &mut ways[usize::from(serial % 2 == 1)];
        latencies.push(Duration::from_nanos(received.saturating_sub(published.load(Ordering::Relaxed))));
        copies.push(Duration::from_nanos(received.saturating_sub(start)));
        seen = serial;
        deadline = Instant::now() + PATIENCE;
    }
    // The floor is the faster way's: glibc's `memcpy` stores large frames past the caches
    // (non-temporal), `rep movsb` into them, and which is faster depends on the size.
    let [memcpy, rep_movsb] = ways;
    let (latencies, copies) = if memcpy.0.median() <= rep_movsb.0.median() { memcpy } else { rep_movsb };
    let words =
        |samples: &Samples| samples.iter().map(|time| time.as_nanos().to_string()).collect::<Vec<_>>().join(" ");
    let (latencies, copies) = (words(&latencies), words(&copies));
    writeln!(out, "0 {latencies}\n{copies}")
        .and_then(|()| out.flush())
        .map_err(|error| failure(format!("stdout: {error}")))
}

fn print(settings: &Settings, round_trip: Duration, figures: &[Figures]) {
    let mut table = Table::new(&[
        "frame",
        "memcpy in",
        "publish",
        "publish / memcpy",
        "memcpy out",
        "read",
        "read throughput / memcpy's",
        "latency p50",
        "p99",
        "raw transfer p50",
        "p99",
        "copy by the reader p50",
        "goal: ½ round trip + that copy",
        "p50 / goal",
    ]);
    for figure in figures {
        let spread = |ratios: &[f64]| {
            let mut sorted = ratios.to_vec();
            sorted.sort_by(f64::total_cmp);
            let middle = sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN);
            format!(
                "{} ({}–{})",
                stats::format_ratio(middle),
                stats::format_ratio(sorted.first().copied().unwrap_or(f64::NAN)),
                stats::format_ratio(sorted.last().copied().unwrap_or(f64::NAN))
            )
        };
        table.row(vec![
            stats::bytes(figure.frame),
            stats::duration(figure.memcpy_in),
            stats::duration(figure.publish),
            spread(&figure.publish_ratios),
            stats::duration(figure.memcpy_out),
            stats::duration(figure.read),
            spread(&figure.read_ratios),
            stats::duration(figure.latency.median()),
            stats::duration(figure.latency.percentile(0.99)),
            stats::duration(figure.raw_latency.median()),
            stats::duration(figure.raw_latency.percentile(0.99)),
            stats::duration(figure.raw_copy.median()),
            stats::duration(latency_goal(round_trip, &figure.raw_copy)),
            spread(&figure.goal_ratios),
        ]);
    }
    let about = format!(
        "A stream of {SLOTS} slots of u8 frames (prefaulted). Publish: RawWriter::publish of a \
         frame from a resident private buffer, against memcpy of it into the same slots (goal: \
         ≤ 1.10). Read: RawReader::latest_into of the newest frame (copy out and seqlock \
         check), against memcpy out of the same slot into the same buffer (goal: throughput \
         ≥ 0.90 of memcpy's). Times are per frame, the median of {BATCHES} batches of at least \
         {} per repetition, the variants taking turns; ratios: the median of {} repetitions, \
         their lowest and highest in parentheses. Latency: a reader in a second process spins \
         (never parks) while the writer publishes a frame every 0.5 ms plus 0.5 ns a byte; \
         its clock at return less the frame's publication time (CLOCK_REALTIME), up to \
         {LATENCY_FRAMES} frames. Raw transfer: the floor, the same frames, slots, gaps and \
         processes with no stream: memcpy in, clock, a counter word stored; the reader spins on \
         the word, copies the slot out (memcpy and rep movsb in turns, the faster kept), reads \
         the clock. Copy by the reader: that copy alone, of a frame the other processor has \
         just written (memcpy out, in the table's fifth column, copies a frame already in this \
         processor's caches, which is faster). Latency and floor take turns in \
         {LATENCY_ROUNDS} rounds; p50 / goal is per round, median and spread. Goal: p50 ≤ half \
         an Event round trip (spinning, measured in this run: {}) plus one frame copy, the copy a \
         reader makes (p50 / goal ≤ 1).",
        stats::bytes(if settings.quick { QUICK_BATCH_BYTES } else { BATCH_BYTES }),
        settings.reps,
        stats::duration(round_trip)
    );
    let lost: Vec<String> =
        figures.iter().map(|figure| format!("{}: {}", stats::bytes(figure.frame), figure.lost)).collect();
    let notes = [format!("Frames the latency reader lost (expected none): {}.", lost.join(", "))];
    stats::print_section("Frame streams: publish, read, latency", &about, &table, &notes);
}
