//! `stream create`, `stream publish`, `stream watch` and `stream info`: frame streams (see
//! `ipcmem::stream`) from the command line, made for testing readers and writers.
//!
//! `publish` writes into a [`FrameSink`] and `watch` reads from a [`FrameSource`]: ipcmem's own
//! streams today; another kind of stream (milk's `isio:NAME` streams) plugs in by giving
//! [`StreamTarget`] a variant and the two traits an implementation.

use std::fmt;
use std::io::{self, BufWriter, Write};
use std::time::{Duration, Instant};

use ipcmem::array::ElementType;
use ipcmem::stream::{self, FrameInfo, RawReader, RawWriter, StreamInfo, StreamOptions};
use ipcmem::{Id, Outcome as Made};
use serde::Serialize;

use crate::args::{self, Mode};
use crate::array::Dims;
use crate::failure::{Failure, Outcome};
use crate::inspect::print_line;
use crate::{manage, signals};

/// The example of `stream --help`.
pub const STREAM_HELP: &str = "\
A stream is a ring of frames with serials and timestamps: one writer, any number of readers,
no torn frame, every lost frame counted. It is a shared array of dims (frame dims..., slots)
followed by a control block (docs/stream-layout.md), so Julia and NumPy open it as an array.

Example:
  $ ipcmem stream publish /cam --create f32 512x512 --slots 4 --rate 1000 &
  $ ipcmem stream watch /cam --count 3
  serial 118  lost 0  latency 31.2us
  serial 119  lost 0  latency 28.9us
  serial 120  lost 0  latency 30.4us
  frames 3  lost 0  rate 1000.2 Hz  latency p50 30.4us  p99 31.2us
  $ ipcmem stream info /cam

ImageStreamIO streams of milk and cacao (isio:NAME, the file $MILK_SHM_DIR/NAME.im.shm) take
publish, watch and info too: publish writes as ImageStreamIO's writers do (cnt0 is the serial,
every semaphore posted), watch claims a semaphore and waits on it as milk's readers do, info is
`ipcmem info isio:NAME`. publish --create makes a plain stream of DIMS for --slots 1, else a
circular buffer of N frames (DIMS of 1 or 2 axes); it stays after publish ends, as streams do.
  $ MILK_SHM_DIR=/tmp/milk ipcmem stream publish isio:cam --create f32 512x512 --slots 1 &
  $ MILK_SHM_DIR=/tmp/milk ipcmem stream watch isio:cam --count 100 --check";

/// The example of `stream create --help`.
pub const CREATE_HELP: &str = "\
Makes the stream with no writer: readers (`stream watch`) wait for one, and `stream publish OBJ`
or a program (StreamWriter::attach) becomes it. Persistent, as `ipcmem create`, unless
--volatile --hold. Readers need only read permission: --mode 0644 lets every user watch.

Example:
  $ ipcmem stream create /cam f32 512x512 --slots 4 --mode 0644
  /cam";

/// The example of `stream publish --help`.
pub const PUBLISH_HELP: &str = "\
Writes test frames: every element of frame n (its serial) equals n, as TYPE (wrapping for small
integer types; a complex number n+0i). Becomes the writer of an existing stream, or, with
--create, makes it first if it does not exist (volatile: it goes when no one holds it). Runs
until --count frames are published, or SIGINT or SIGTERM; prints what it published.

Example:
  $ ipcmem stream publish /cam --create u16 640x480 --slots 8 --rate 100
  ^C
  published 1234 frames to /cam, serials 1 to 1234";

/// The example of `stream watch --help`.
pub const WATCH_HELP: &str = "\
Prints one line per frame received (serial, frames lost since the previous one, latency from
publication to receipt), then a summary: frames, lost, rate, latency p50 and p99. Waits up to
--timeout seconds for the stream to appear and for each frame: past it, exits 1 saying it timed
out. A writer that dies (or closes the stream) makes it exit 1 at once. --check verifies the
test pattern of `stream publish` and exits 1 on the first wrong frame. Without --count, runs
until SIGINT or SIGTERM (exit 0). JSON: one object per frame (serial, lost, latency_ns,
restarted), then the summary (frames, lost, rate_hz, p50_ns, p99_ns).

Example:
  $ ipcmem stream watch /cam --count 1000 --check --json | tail -1
  {\"frames\":1000,\"lost\":0,\"rate_hz\":999.98,\"p50_ns\":30412,\"p99_ns\":61230}";

/// The example of `stream info --help`.
pub const INFO_HELP: &str = "\
Type, frame dims, slots, the newest serial and its publication time, the rate over the last
second (from the frames in the ring), the writer's pid and whether it lives. Opens the stream
read-only. JSON fields: object, type, frame_dims, slots, frame_bytes, serial,
last_published_ns, rate_hz, writer_pid, writer (none, alive, dead, closed, unknown),
writer_alive, created_ns.

Example:
  $ ipcmem stream info /cam --json";

/// How long `publish` and `watch` go without looking for a stop signal.
const SIGNAL_CHECK: Duration = Duration::from_millis(20);

/// How often `watch` flushes its lines when they come faster.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// The most latencies `watch` keeps for its percentiles (a uniform sample beyond).
const LATENCY_SAMPLE: usize = 1 << 20;

/// A stream on the command line: ipcmem's own (`/name`, `key:N`, `id:N`), or an ImageStreamIO
/// stream of milk (`isio:NAME`, in `$MILK_SHM_DIR`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamTarget {
    /// An ipcmem stream.
    Ipcmem(Id),
    /// An ImageStreamIO stream.
    Isio(String),
}

impl fmt::Display for StreamTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamTarget::Ipcmem(id) => write!(f, "{id}"),
            StreamTarget::Isio(name) => write!(f, "{}{name}", crate::isio::PREFIX),
        }
    }
}

/// Parses a stream: `/name`, `key:N`, `id:N` or `isio:NAME`.
pub fn parse_stream(text: &str) -> Result<StreamTarget, String> {
    if text.starts_with(crate::isio::PREFIX) {
        return match args::parse_target(text)? {
            args::Target::Isio(name) => Ok(StreamTarget::Isio(name)),
            _ => Err(format!("{text}: not an ImageStreamIO stream")),
        };
    }
    args::parse_object(text).map(StreamTarget::Ipcmem)
}

/// Parses a number of slots: at least 1.
pub fn parse_slots(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("a stream needs at least one slot".into()),
        Ok(slots) => Ok(slots),
        Err(_) => Err(format!("{text:?} is not a number of slots")),
    }
}

/// Parses a rate in Hz: a positive number.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!("{text:?} is not a rate: write frames per second, as 1000 or 0.5")),
    }
}

/// Parses a timeout in seconds: a number of at least 0.
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
        .ok_or_else(|| format!("{text:?} is not a number of seconds, as 10 or 0.5"))
}

/// Where `watch` reads frames: one frame at a time, as bytes of its element type.
pub trait FrameSource {
    /// The element type of the frames.
    fn element(&self) -> ElementType;
    /// The bytes of one frame.
    fn frame_bytes(&self) -> usize;
    /// The next frame, waiting up to `timeout`: `None` if none came.
    fn next_frame(&mut self, buf: &mut [u8], timeout: Duration) -> ipcmem::Result<Option<FrameInfo>>;
}

/// Where `publish` writes frames.
pub trait FrameSink {
    /// The element type of the frames.
    fn element(&self) -> ElementType;
    /// The bytes of one frame.
    fn frame_bytes(&self) -> usize;
    /// The serial the next frame gets.
    fn next_serial(&self) -> u64;
    /// Publishes one frame; returns its serial.
    fn publish(&mut self, frame: &[u8]) -> ipcmem::Result<u64>;
}

impl FrameSource for RawReader {
    fn element(&self) -> ElementType {
        self.geometry().element()
    }

    fn frame_bytes(&self) -> usize {
        self.geometry().frame_bytes()
    }

    fn next_frame(&mut self, buf: &mut [u8], timeout: Duration) -> ipcmem::Result<Option<FrameInfo>> {
        self.next_into(buf, timeout)
    }
}

impl FrameSink for RawWriter {
    fn element(&self) -> ElementType {
        self.geometry().element()
    }

    fn frame_bytes(&self) -> usize {
        self.geometry().frame_bytes()
    }

    fn next_serial(&self) -> u64 {
        self.last_serial() + 1
    }

    fn publish(&mut self, frame: &[u8]) -> ipcmem::Result<u64> {
        RawWriter::publish(self, frame)
    }
}

/// What `publish --create` makes when the stream does not exist.
#[derive(Debug, Clone)]
pub struct NewStream {
    pub element: ElementType,
    pub dims: Dims,
    pub slots: usize,
}

/// The stream that `--create TYPE DIMS --slots N` describes.
pub fn new_stream(spec: &[String], slots: usize) -> Result<NewStream, Failure> {
    let usage = |reason: String| Failure::about("--create", reason);
    let [element, dims] = spec else { return Err(usage("takes TYPE and DIMS".into())) };
    let element = crate::array::parse_element(element).map_err(usage)?;
    let dims = crate::array::parse_dims(dims).map_err(usage)?;
    Ok(NewStream { element, dims, slots })
}

/// Opens the source that `watch` reads, waiting up to `timeout` for it to appear.
fn open_source(target: &StreamTarget, timeout: Duration) -> Result<Box<dyn FrameSource>, Failure> {
    match target {
        StreamTarget::Ipcmem(id) => match RawReader::open_wait(id, timeout) {
            Ok(reader) => Ok(Box::new(reader)),
            Err(ipcmem::Error::NotFound { .. }) => Err(timed_out(target, "no stream appeared", timeout)),
            Err(error) => Err(error.into()),
        },
        StreamTarget::Isio(name) => match crate::isio::open_source(name, timeout)? {
            Some(source) => Ok(Box::new(source)),
            None => Err(timed_out(target, "no stream appeared", timeout)),
        },
    }
}

/// `OBJ: timed out: WHAT in N s`.
fn timed_out(target: &StreamTarget, what: &str, timeout: Duration) -> Failure {
    Failure::about(target, format!("timed out: {what} in {} s", timeout.as_secs_f64()))
}

/// Opens the sink that `publish` writes, making it first if asked.
fn open_sink(target: &StreamTarget, create: Option<&NewStream>, mode: Mode) -> ipcmem::Result<Box<dyn FrameSink>> {
    match target {
        StreamTarget::Ipcmem(id) => {
            let writer = match create {
                None => RawWriter::attach(id)?,
                Some(new) => {
                    let options = StreamOptions::new().volatile(true).perms(mode | 0o600);
                    let (writer, outcome) = options.create_or_attach_raw(id, new.element, &new.dims.0, new.slots)?;
                    if outcome == Made::Created && mode & 0o600 != 0o600 {
                        manage::set_mode(&writer.id(), mode)?;
                    }
                    writer
                }
            };
            Ok(Box::new(writer))
        }
        StreamTarget::Isio(name) => {
            let create = create.map(|new| (new.element, new.dims.0.as_slice(), new.slots));
            Ok(Box::new(crate::isio::open_sink(name, create, mode)?))
        }
    }
}

/// `ipcmem stream create OBJ TYPE DIMS --slots N [--mode MODE] [--volatile --hold]`.
pub fn create(
    object: &Id,
    element: ElementType,
    dims: &Dims,
    slots: usize,
    mode: Mode,
    volatile: bool,
    hold: bool,
) -> Outcome {
    let stop = if hold { Some(signals::block().map_err(|error| Failure::about("signals", error))?) } else { None };
    let options = StreamOptions::new().volatile(volatile).perms(mode | 0o600);
    let shm = options.create_without_writer(object, element, &dims.0, slots)?;
    if mode & 0o600 != 0o600 {
        if let Err(error) = manage::set_mode(&shm.id(), mode) {
            let _ = shm.remove();
            return Err(error.into());
        }
    }
    print_line(&shm.id().to_string())?;
    if let Some(stop) = stop {
        stop.wait().map_err(|error| Failure::about("signals", error))?;
    }
    drop(shm);
    Ok(())
}

/// `ipcmem stream publish OBJ [--count N] [--rate HZ] [--create TYPE DIMS --slots N]`.
pub fn publish(
    target: &StreamTarget,
    count: Option<u64>,
    rate: Option<f64>,
    create: Option<&NewStream>,
    mode: Mode,
) -> Outcome {
    let stop = signals::block().map_err(|error| Failure::about("signals", error))?;
    let mut sink = open_sink(target, create, mode)?;
    let element = sink.element();
    let mut frame = vec![0; sink.frame_bytes()];
    let period = rate.map(|rate| Duration::from_secs_f64(1.0 / rate));
    let start = Instant::now();
    let mut last_signal_check = start;
    let (mut published, mut first, mut last) = (0_u64, None, 0);
    while count.is_none_or(|count| published < count) {
        if let Some(period) = period {
            // On a schedule from the start, so that the rate does not drift.
            #[allow(clippy::cast_precision_loss)]
            let due = start + period.mul_f64(published as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                if stop.wait_timeout(wait).map_err(|error| Failure::about("signals", error))?.is_some() {
                    break;
                }
                last_signal_check = Instant::now();
            }
        }
        if last_signal_check.elapsed() >= SIGNAL_CHECK {
            last_signal_check = Instant::now();
            if stop.wait_timeout(Duration::ZERO).map_err(|error| Failure::about("signals", error))?.is_some() {
                break;
            }
        }
        fill_pattern(element, sink.next_serial(), &mut frame);
        last = sink.publish(&frame)?;
        first.get_or_insert(last);
        published += 1;
    }
    let serials = first.map_or_else(String::new, |first| format!(", serials {first} to {last}"));
    print_line(&format!("published {published} frames to {target}{serials}"))
}

/// The bytes of one element of value `n` (wrapping) of `element`.
fn pattern_element(element: ElementType, n: u64) -> Vec<u8> {
    #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap, clippy::cast_precision_loss)]
    let bytes: Vec<u8> = match element {
        ElementType::I8 => (n as i8).to_ne_bytes().to_vec(),
        ElementType::U8 => (n as u8).to_ne_bytes().to_vec(),
        ElementType::I16 => (n as i16).to_ne_bytes().to_vec(),
        ElementType::U16 => (n as u16).to_ne_bytes().to_vec(),
        ElementType::I32 => (n as i32).to_ne_bytes().to_vec(),
        ElementType::U32 => (n as u32).to_ne_bytes().to_vec(),
        ElementType::I64 => (n as i64).to_ne_bytes().to_vec(),
        ElementType::U64 => n.to_ne_bytes().to_vec(),
        ElementType::F32 => (n as f32).to_ne_bytes().to_vec(),
        ElementType::F64 => (n as f64).to_ne_bytes().to_vec(),
        // A complex number: its real part, then its imaginary part (0).
        ElementType::C32 => [(n as f32).to_ne_bytes(), 0.0_f32.to_ne_bytes()].concat(),
        ElementType::C64 => [(n as f64).to_ne_bytes(), 0.0_f64.to_ne_bytes()].concat(),
    };
    bytes
}

/// Fills `frame` with the test pattern of frame `n`: one element, then copies of what is filled
/// so far (a few `memcpy`s, not one per element: fast enough in a debug build, which the tests
/// run, to keep a reader of 1 MiB frames busy).
fn fill_pattern(element: ElementType, n: u64, frame: &mut [u8]) {
    let value = pattern_element(element, n);
    let end = frame.len() / value.len().max(1) * value.len();
    if end == 0 {
        return;
    }
    frame[..value.len()].copy_from_slice(&value);
    let mut filled = value.len();
    while filled < end {
        let more = filled.min(end - filled);
        frame.copy_within(..more, filled);
        filled += more;
    }
}

/// The first element of `frame` that is not the test pattern of frame `n`, if any. The common
/// case (a right frame) is two slice comparisons: the first element is the value, and every
/// byte equals the byte one element before it.
fn pattern_mismatch(element: ElementType, n: u64, frame: &[u8]) -> Option<usize> {
    let value = pattern_element(element, n);
    let width = value.len().max(1);
    let end = frame.len() / width * width;
    let whole = &frame[..end];
    if end == 0 || (whole[..width] == value[..] && whole[width..] == whole[..end - width]) {
        return None;
    }
    whole.chunks_exact(width).position(|chunk| chunk != value.as_slice())
}

/// The options of `watch`.
#[derive(Debug, Clone, Copy)]
pub struct WatchOptions {
    pub count: Option<u64>,
    pub timeout: Duration,
    pub check: bool,
    pub json: bool,
}

#[derive(Serialize)]
struct FrameLine {
    serial: u64,
    lost: u64,
    latency_ns: u64,
    restarted: bool,
}

#[derive(Serialize)]
struct Summary {
    frames: u64,
    lost: u64,
    rate_hz: f64,
    p50_ns: u64,
    p99_ns: u64,
}

/// `ipcmem stream watch OBJ [--count N] [--timeout SECONDS] [--check] [--json]`.
pub fn watch(target: &StreamTarget, options: WatchOptions) -> Outcome {
    let stop = signals::block().map_err(|error| Failure::about("signals", error))?;
    let mut source = open_source(target, options.timeout)?;
    let mut out = BufWriter::new(io::stdout().lock());
    let mut tally = Tally::default();
    let ended = watch_frames(target, source.as_mut(), options, &stop, &mut out, &mut tally);
    let summary = tally.summary();
    let text = if options.json {
        serde_json::to_string(&summary).unwrap_or_default()
    } else {
        format!(
            "frames {}  lost {}  rate {:.1} Hz  latency p50 {}  p99 {}",
            summary.frames,
            summary.lost,
            summary.rate_hz,
            micros(summary.p50_ns),
            micros(summary.p99_ns)
        )
    };
    writeln!(out, "{text}").and_then(|()| out.flush()).map_err(|error| Failure::io("stdout", &error))?;
    ended
}

/// Receives frames until the count, a stop signal, a timeout, the writer's end, or a wrong
/// frame; prints a line for each.
fn watch_frames(
    target: &StreamTarget,
    source: &mut dyn FrameSource,
    options: WatchOptions,
    stop: &signals::Blocked,
    out: &mut impl Write,
    tally: &mut Tally,
) -> Outcome {
    let io_error = |error: io::Error| Failure::io("stdout", &error);
    let element = source.element();
    let mut frame = vec![0; source.frame_bytes()];
    let mut last_flush = Instant::now();
    while options.count.is_none_or(|count| tally.frames < count) {
        let waiting_since = Instant::now();
        let info = loop {
            let left = options.timeout.saturating_sub(waiting_since.elapsed());
            if let Some(info) =
                source.next_frame(&mut frame, left.min(SIGNAL_CHECK)).map_err(|error| gone(target, error))?
            {
                break info;
            }
            // No frame in this slice: what was printed goes out now, not with the next frame
            // (a quiet stream would hold its last lines back from a pipe).
            out.flush().map_err(io_error)?;
            last_flush = Instant::now();
            if stop.wait_timeout(Duration::ZERO).map_err(|error| Failure::about("signals", error))?.is_some() {
                return Ok(());
            }
            if left.is_zero() {
                return Err(timed_out(target, "no frame came", options.timeout));
            }
        };
        let latency_ns = stream::now_ns().saturating_sub(info.published_ns);
        tally.add(&info, latency_ns);
        let line = FrameLine { serial: info.serial, lost: info.lost, latency_ns, restarted: info.restarted };
        if options.json {
            writeln!(out, "{}", serde_json::to_string(&line).unwrap_or_default()).map_err(io_error)?;
        } else {
            let restarted = if info.restarted { "  (stream re-created)" } else { "" };
            writeln!(out, "serial {}  lost {}  latency {}{restarted}", info.serial, info.lost, micros(latency_ns))
                .map_err(io_error)?;
        }
        if last_flush.elapsed() >= FLUSH_EVERY {
            out.flush().map_err(io_error)?;
            last_flush = Instant::now();
            if stop.wait_timeout(Duration::ZERO).map_err(|error| Failure::about("signals", error))?.is_some() {
                return Ok(());
            }
        }
        if options.check {
            if let Some(index) = pattern_mismatch(element, info.serial, &frame) {
                return Err(Failure::about(
                    target,
                    format!(
                        "frame {} is not the test pattern: element {index} differs from {}",
                        info.serial, info.serial
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The failure of a read: the writer's end said plainly.
fn gone(target: &StreamTarget, error: ipcmem::Error) -> Failure {
    match error {
        ipcmem::Error::WriterGone { pid, reason, .. } => {
            Failure::about(target, format!("the writer is gone (pid {pid}: {reason})"))
        }
        other => other.into(),
    }
}

/// `12.3us`.
fn micros(ns: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let us = ns as f64 / 1000.0;
    format!("{us:.1}us")
}

/// What `watch` counts.
#[derive(Default)]
struct Tally {
    frames: u64,
    lost: u64,
    first: Option<Instant>,
    last: Option<Instant>,
    latencies: Vec<u64>,
    /// The state of the sampler beyond [`LATENCY_SAMPLE`] latencies.
    random: u64,
}

impl Tally {
    fn add(&mut self, info: &FrameInfo, latency_ns: u64) {
        let now = Instant::now();
        self.first.get_or_insert(now);
        self.last = Some(now);
        self.frames += 1;
        self.lost += info.lost;
        if self.latencies.len() < LATENCY_SAMPLE {
            self.latencies.push(latency_ns);
        } else {
            // Reservoir sampling: each latency so far is kept with the same chance.
            self.random = self.random.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let slot = (self.random >> 11) % self.frames;
            if let Some(kept) = usize::try_from(slot).ok().and_then(|slot| self.latencies.get_mut(slot)) {
                *kept = latency_ns;
            }
        }
    }

    fn summary(&mut self) -> Summary {
        self.latencies.sort_unstable();
        let percentile = |p: usize| {
            let n = self.latencies.len();
            if n == 0 {
                0
            } else {
                self.latencies[((n - 1) * p).div_ceil(100).min(n - 1)]
            }
        };
        #[allow(clippy::cast_precision_loss)]
        let rate_hz = match (self.first, self.last) {
            (Some(first), Some(last)) if self.frames > 1 && last > first => {
                (self.frames - 1) as f64 / last.duration_since(first).as_secs_f64()
            }
            _ => 0.0,
        };
        Summary { frames: self.frames, lost: self.lost, rate_hz, p50_ns: percentile(50), p99_ns: percentile(99) }
    }
}

/// The JSON of `stream info` and the `stream` field of `info --json`.
#[derive(Debug, Serialize)]
pub struct StreamJson {
    #[serde(rename = "type")]
    pub element: &'static str,
    pub frame_dims: Vec<usize>,
    pub slots: usize,
    pub frame_bytes: usize,
    pub serial: u64,
    pub last_published_ns: Option<u64>,
    pub rate_hz: Option<f64>,
    pub writer_pid: Option<u32>,
    pub writer: &'static str,
    pub writer_alive: bool,
    pub created_ns: u64,
}

impl From<&StreamInfo> for StreamJson {
    fn from(info: &StreamInfo) -> StreamJson {
        StreamJson {
            element: info.element.name(),
            frame_dims: info.frame_dims.clone(),
            slots: info.slots,
            frame_bytes: info.frame_bytes,
            serial: info.last_serial,
            last_published_ns: (info.last_published_ns != 0).then_some(info.last_published_ns),
            rate_hz: info.rate_hz,
            writer_pid: (info.writer_pid != 0).then_some(info.writer_pid),
            writer: info.writer.name(),
            writer_alive: info.writer_alive(),
            created_ns: info.created_ns,
        }
    }
}

/// `ipcmem stream info OBJ [--json]`.
pub fn info(target: &StreamTarget, json: bool) -> Outcome {
    let id = match target {
        StreamTarget::Ipcmem(id) => id,
        StreamTarget::Isio(name) => return crate::inspect::info(&args::Target::Isio(name.clone()), json),
    };
    let info = stream::inspect(id)?;
    let shown = StreamJson::from(&info);
    if json {
        #[derive(Serialize)]
        struct WithObject<'a> {
            object: String,
            #[serde(flatten)]
            stream: &'a StreamJson,
        }
        let text = serde_json::to_string_pretty(&WithObject { object: target.to_string(), stream: &shown });
        return print_line(&text.unwrap_or_default());
    }
    let dash = || "-".to_owned();
    let now = stream::now_ns();
    let published = shown.last_published_ns.map_or_else(dash, |ns| {
        #[allow(clippy::cast_precision_loss)]
        let ago = now.saturating_sub(ns) as f64 * 1e-9;
        format!("{}.{:09} ({ago:.3} s ago)", ns / 1_000_000_000, ns % 1_000_000_000)
    });
    let lines = [
        ("object", target.to_string()),
        ("type", shown.element.to_owned()),
        ("frame dims", stream_dims(&shown.frame_dims)),
        ("slots", shown.slots.to_string()),
        ("serial", shown.serial.to_string()),
        ("last published", published),
        ("rate", shown.rate_hz.map_or_else(|| "0 Hz".to_owned(), |rate| format!("{rate:.1} Hz"))),
        ("writer pid", shown.writer_pid.map_or_else(dash, |pid| pid.to_string())),
        ("writer", shown.writer.to_owned()),
    ];
    let text: Vec<String> = lines.iter().map(|(field, value)| format!("{field:<14}  {value}")).collect();
    print_line(&text.join("\n"))
}

fn stream_dims(dims: &[usize]) -> String {
    dims.iter().map(ToString::to_string).collect::<Vec<_>>().join("x")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_wrap_and_check() {
        assert_eq!(pattern_element(ElementType::U8, 257), vec![1]);
        assert_eq!(pattern_element(ElementType::F32, 3), 3.0_f32.to_ne_bytes().to_vec());
        let mut frame = vec![0; 16];
        fill_pattern(ElementType::I16, 70_000, &mut frame);
        assert_eq!(pattern_mismatch(ElementType::I16, 70_000, &frame), None);
        frame[4] ^= 1;
        assert_eq!(pattern_mismatch(ElementType::I16, 70_000, &frame), Some(2));
        // Many elements (the doubling copies), a wrong first or last one.
        let mut frame = vec![0; 8 * 1000];
        fill_pattern(ElementType::C32, 7, &mut frame);
        assert!(frame.chunks_exact(8).all(|chunk| chunk == pattern_element(ElementType::C32, 7)));
        assert_eq!(pattern_mismatch(ElementType::C32, 7, &frame), None);
        frame[7999] ^= 1;
        assert_eq!(pattern_mismatch(ElementType::C32, 7, &frame), Some(999));
        frame[7999] ^= 1;
        frame[0] ^= 1;
        assert_eq!(pattern_mismatch(ElementType::C32, 7, &frame), Some(0));
    }

    #[test]
    fn arguments() {
        assert_eq!(parse_stream("isio:cam"), Ok(StreamTarget::Isio("cam".into())));
        assert!(parse_stream("isio:a/b").is_err());
        assert_eq!(parse_slots("4"), Ok(4));
        assert!(parse_slots("0").is_err());
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("nan").is_err());
        assert_eq!(parse_seconds("0.5"), Ok(Duration::from_millis(500)));
        assert!(parse_seconds("-1").is_err());
    }
}
