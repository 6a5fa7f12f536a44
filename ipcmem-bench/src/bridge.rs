//! `--zenoh` (cargo feature `zenoh`): a stream mirrored over Zenoh on the loopback, side by
//! side with the local stream it mirrors, in the same run.
//!
//! A camera thread publishes frames into a local stream, at full rate or at 1 kHz. Two readers
//! receive them: one reads the local stream itself (the local path), the other reads the
//! stream that an `ipcmem_zenoh::subscribe` writes, fed by an `ipcmem_zenoh::publish` of the
//! local stream through two Zenoh sessions joined over `tcp/127.0.0.1:PORT` (multicast
//! scouting off): the Zenoh path. All run in this process, as threads (the bridge's work is
//! the same in one process or two: two sessions, a TCP connection, copies in and out).
//!
//! Latency is from the frame's acquisition time (stamped by the camera just before it
//! publishes; the bridge carries it) to its receipt by the reader, on the same clock. Lost is
//! the share of frames the reader missed (serial gaps: overruns of a ring, Zenoh's drops under
//! congestion); for the Zenoh path, the share the publishing bridge itself missed in the
//! camera's ring is shown apart (the bridge is slower than the camera: it drops, the camera
//! never waits). Each case runs `--reps` times (3 by default) for a few seconds; the table shows
//! the median over the repetitions and, for frames per second, their spread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use ipcmem::array::ElementType;
use ipcmem::stream::{now_ns, RawReader, RawWriter};
use ipcmem_zenoh::{Context, Event, SessionOptions, Stats, SubscribeOptions};

use crate::failure::{failure, Failure, Outcome};
use crate::section::{Counts, Section};
use crate::stats::{self, Table};
use crate::{progress, stop, Settings};

/// The section.
pub const SECTION: Section = Section {
    flag: "zenoh",
    help: "A stream mirrored over Zenoh on the loopback, beside the local stream (64 KiB and 1 MiB \
           frames, full rate and 1 kHz)",
    in_default_run: false,
    large: false,
    reps: Counts { full: 3, quick: 1 },
    iterations: Counts::NONE,
    run,
};

/// The frame sizes measured.
const FRAME_SIZES: [usize; 2] = [64 << 10, 1 << 20];

/// Slots of the camera's stream and of the mirrored one.
const SLOTS: usize = 8;

/// How long the readers count, after a warm-up, in a full run and with `--quick`.
const MEASURE: (Duration, Duration) = (Duration::from_secs(3), Duration::from_millis(500));

/// The warm-up before the readers count: the sessions connect, the bridge's first frames pass.
const WARM_UP: Duration = Duration::from_millis(700);

/// What one reader saw in one run.
#[derive(Debug, Clone, Default)]
struct Seen {
    frames: u64,
    lost: u64,
    latencies_ns: Vec<u64>,
    seconds: f64,
    /// For the Zenoh path: the share of frames the publishing bridge missed in the camera's
    /// ring (over the whole run), the rest of the loss being Zenoh's and the subscriber's.
    at_source: f64,
}

impl Seen {
    #[allow(clippy::cast_precision_loss)] // figures for a table
    fn rate(&self) -> f64 {
        self.frames as f64 / self.seconds.max(1e-9)
    }

    #[allow(clippy::cast_precision_loss)]
    fn lost_share(&self) -> f64 {
        self.lost as f64 / (self.frames + self.lost).max(1) as f64
    }

    fn latency(&self, fraction: f64) -> u64 {
        let mut sorted = self.latencies_ns.clone();
        sorted.sort_unstable();
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
        let index = ((sorted.len().saturating_sub(1)) as f64 * fraction).round() as usize;
        sorted.get(index).copied().unwrap_or(0)
    }
}

fn run(settings: &Settings) -> Outcome {
    let measure = if settings.quick { MEASURE.1 } else { MEASURE.0 };
    let mut table = Table::new(&[
        "frame",
        "rate asked",
        "path",
        "frames/s",
        "spread",
        "MB/s",
        "latency p50",
        "latency p99",
        "lost",
        "missed by the bridge in the camera's ring",
    ]);
    for frame_bytes in FRAME_SIZES {
        for rate in [None, Some(1000.0)] {
            let asked = rate.map_or("full".to_owned(), |hz| format!("{hz:.0} Hz"));
            progress(&format!("zenoh: {} frames at {asked}", stats::bytes(frame_bytes)));
            let mut local = Vec::new();
            let mut remote = Vec::new();
            for _ in 0..settings.reps {
                stop::check()?;
                let (here, there) = measure_once(frame_bytes, rate, measure)?;
                local.push(here);
                remote.push(there);
            }
            for (path, runs) in [("local stream", &local), ("Zenoh, loopback TCP", &remote)] {
                table.row(row(frame_bytes, &asked, path, runs));
            }
        }
    }
    stats::print_section(
        "Streams over Zenoh (loopback)",
        "A camera thread publishes into a local stream; one reader reads it, another reads its mirror \
         made by ipcmem-zenoh publish -> Zenoh (two sessions, tcp/127.0.0.1) -> subscribe. Latency: \
         acquisition to receipt, same clock. Median of the repetitions; spread of frames/s is min-max.",
        &table,
        &[],
    );
    Ok(())
}

/// A table row: medians over the runs of one path.
fn row(frame_bytes: usize, asked: &str, path: &str, runs: &[Seen]) -> Vec<String> {
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied().unwrap_or(0.0)
    };
    let rates: Vec<f64> = runs.iter().map(Seen::rate).collect();
    let (low, high) = rates.iter().fold((f64::MAX, 0.0f64), |(low, high), &rate| (low.min(rate), high.max(rate)));
    let rate = median(rates);
    #[allow(clippy::cast_precision_loss)]
    let megabytes = rate * frame_bytes as f64 / 1e6;
    #[allow(clippy::cast_precision_loss)]
    let latency = |fraction: f64| median(runs.iter().map(|seen| seen.latency(fraction) as f64).collect()) / 1e9;
    let lost = median(runs.iter().map(Seen::lost_share).collect());
    let at_source = median(runs.iter().map(|seen| seen.at_source).collect());
    vec![
        stats::bytes(frame_bytes),
        asked.to_owned(),
        path.to_owned(),
        stats::significant(rate),
        format!("{}-{}", stats::significant(low), stats::significant(high)),
        stats::significant(megabytes),
        stats::seconds(latency(0.5)),
        stats::seconds(latency(0.99)),
        format!("{:.1} %", lost * 100.0),
        if path.starts_with("Zenoh") { format!("{:.1} %", at_source * 100.0) } else { "-".into() },
    ]
}

/// One run: camera, bridge and both readers for `measure` after the warm-up.
fn measure_once(frame_bytes: usize, rate: Option<f64>, measure: Duration) -> Result<(Seen, Seen), Failure> {
    let (source, mirror) = (stop::unique_name(), stop::unique_name());
    let key = format!("ipcmem-bench/{}", mirror.trim_start_matches('/'));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map_err(|error| failure(format!("no free port on the loopback: {error}")))?
        .port();
    let endpoint = format!("tcp/127.0.0.1:{port}");
    let open = |listen: bool| {
        let (listen, connect) =
            if listen { (vec![endpoint.clone()], vec![]) } else { (vec![], vec![endpoint.clone()]) };
        SessionOptions { connect, listen, multicast: false, client: false }.open().map_err(failure)
    };
    let far = open(true)?;
    let near = open(false)?;
    let mut camera = RawWriter::create(source.as_str(), ElementType::U8, &[frame_bytes], SLOTS)?;
    let bridge_reader = RawReader::open(source.as_str())?;
    let stop_bridge = AtomicBool::new(false);
    let stop_camera = AtomicBool::new(false);
    let (publish_stats, subscribe_stats) = (Stats::default(), Stats::default());
    let quiet = |_: &Event| {};
    let options = SubscribeOptions { slots: SLOTS, ..SubscribeOptions::default() };
    let outcome = thread::scope(|scope| {
        let publisher = scope.spawn(|| {
            let context = Context { stop: &stop_bridge, stats: &publish_stats, on_event: &quiet };
            ipcmem_zenoh::publish(bridge_reader, &near, &key, &context)
        });
        let subscriber = scope.spawn(|| {
            let context = Context { stop: &stop_bridge, stats: &subscribe_stats, on_event: &quiet };
            ipcmem_zenoh::subscribe(&far, &key, mirror.as_str(), &options, &context)
        });
        let camera_thread = scope.spawn(|| run_camera(&mut camera, frame_bytes, rate, &stop_camera));
        let local = scope.spawn(|| read(RawReader::open(source.as_str())?, frame_bytes, measure));
        let remote = scope.spawn(|| {
            let reader = RawReader::open_wait(mirror.as_str(), WARM_UP * 10)?;
            read(reader, frame_bytes, measure)
        });
        let seen = (join(local), join(remote));
        stop_camera.store(true, Ordering::Relaxed);
        stop_bridge.store(true, Ordering::Relaxed);
        let camera = join(camera_thread);
        let bridges = (
            publisher.join().map_err(|_| failure("the publishing bridge panicked"))?.map_err(failure),
            subscriber.join().map_err(|_| failure("the subscribing bridge panicked"))?.map_err(failure),
        );
        camera?;
        bridges.0?;
        bridges.1?;
        let (local, mut remote) = (seen.0?, seen.1?);
        let carried = publish_stats.totals();
        #[allow(clippy::cast_precision_loss)] // a share for a table
        let share = carried.lost as f64 / (carried.frames + carried.lost).max(1) as f64;
        remote.at_source = share;
        Ok((local, remote))
    });
    for name in [&source, &mirror] {
        let _ = ipcmem::SharedMemory::open(name.as_str()).and_then(|shm| shm.remove());
    }
    outcome
}

fn join<T>(handle: thread::ScopedJoinHandle<'_, Result<T, Failure>>) -> Result<T, Failure> {
    handle.join().map_err(|_| failure("a thread of the zenoh bench panicked"))?
}

/// Publishes frames (acquired now) at `rate`, or as fast as it can, until `stop`.
fn run_camera(camera: &mut RawWriter, frame_bytes: usize, rate: Option<f64>, stop: &AtomicBool) -> Result<(), Failure> {
    let frame = vec![0x5a; frame_bytes];
    let period = rate.map(|hz| Duration::from_secs_f64(1.0 / hz));
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if let Some(period) = period {
            next += period;
            let now = Instant::now();
            if next > now {
                thread::sleep(next - now);
            }
        }
        camera.publish_at(&frame, now_ns())?;
    }
    Ok(())
}

/// Reads frames for `measure` after [`WARM_UP`].
fn read(mut reader: RawReader, frame_bytes: usize, measure: Duration) -> Result<Seen, Failure> {
    let mut buf = vec![0; frame_bytes];
    let started = Instant::now();
    let mut seen = Seen::default();
    let mut counting_since = None;
    while counting_since.is_none_or(|since: Instant| since.elapsed() < measure) {
        let Some(info) = reader.next_into(&mut buf, Duration::from_millis(100))? else {
            if started.elapsed() > WARM_UP * 10 {
                return Err(failure("no frame came through within 7 s"));
            }
            continue;
        };
        let latency = now_ns().saturating_sub(info.acquired_ns);
        if counting_since.is_none() {
            if started.elapsed() >= WARM_UP {
                counting_since = Some(Instant::now());
            }
            continue;
        }
        seen.frames += 1;
        seen.lost += info.lost;
        seen.latencies_ns.push(latency);
    }
    seen.seconds = counting_since.map_or(0.0, |since| since.elapsed().as_secs_f64());
    Ok(seen)
}
