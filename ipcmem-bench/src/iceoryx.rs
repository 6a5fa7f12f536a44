//! iceoryx2 beside ipcmem's streams (cargo feature `iceoryx2`), in the run of `--stream`: the
//! same frames through iceoryx2's publish-subscribe (`[u8]` slices, inter-process service).
//!
//! - **Publish and read in one process**: per frame, iceoryx2 loans a sample, copies the frame
//!   in, sends it, and the subscriber receives it and copies it out; ipcmem publishes the frame
//!   (copy in) and a reader takes it (copy out) — the same two copies each.
//! - **Latency** between two processes: a subscriber in a second process (this program again,
//!   as the hidden command `iceoryx2-reader`) polls `receive` without pause, while this process
//!   sends a frame on the same schedule as the stream's latency run; the publication time (ns,
//!   `CLOCK_REALTIME`) travels in the frame's first 8 bytes.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Args;
use iceoryx2::prelude::*;
use ipcmem::array::ElementType;
use ipcmem::stream::{self, RawReader, RawWriter};

use crate::failure::{failure, Failure};
use crate::stats::Samples;
use crate::{stop, PATIENCE};

/// Subscriber buffer and history of the service: as many as the stream's slots.
const BUFFER: usize = 4;

/// The arguments of the hidden `iceoryx2-reader`.
#[derive(Debug, Args)]
pub struct ReaderArgs {
    /// The service.
    service: String,
    /// The frame size.
    frame: usize,
    /// How many frames to receive.
    frames: usize,
}

/// The figures of one frame size.
pub struct Figures {
    /// ipcmem: publish, then read, one frame.
    pub ipcmem_round: Duration,
    /// iceoryx2: loan, copy in, send, receive, copy out, one frame.
    pub iceoryx2_round: Duration,
    /// Latencies of iceoryx2 between processes.
    pub latency: Samples,
    /// Frames the iceoryx2 reader missed.
    pub lost: u64,
}

/// The entries of iceoryx2 in /dev/shm (`iox2_…`) now.
pub fn entries() -> Vec<std::ffi::OsString> {
    std::fs::read_dir("/dev/shm")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|entry| entry.file_name())
                .filter(|name| name.as_encoded_bytes().starts_with(b"iox2_"))
                .collect()
        })
        .unwrap_or_default()
}

/// Removes the iceoryx2 entries of /dev/shm that were not there `before` (iceoryx2 keeps a global
/// management object after its last node is gone), and its empty directories in /tmp.
pub fn clean_up(before: &[std::ffi::OsString]) {
    for name in entries() {
        if !before.contains(&name) {
            let _ = std::fs::remove_file(std::path::Path::new("/dev/shm").join(name));
        }
    }
    for dir in ["/tmp/iceoryx2/nodes", "/tmp/iceoryx2/services", "/tmp/iceoryx2"] {
        let _ = std::fs::remove_dir(dir);
    }
}

fn ice(error: impl std::fmt::Debug) -> Failure {
    failure(format!("iceoryx2: {error:?}"))
}

/// A unique service name of this run.
fn service_name() -> String {
    stop::unique_name().trim_start_matches('/').replace('-', "_")
}

type Node = iceoryx2::node::Node<ipc::Service>;
type Service = iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, [u8], ()>;

fn open_service(node: &Node, name: &str) -> Result<Service, Failure> {
    let name: ServiceName = name.try_into().map_err(ice)?;
    node.service_builder(&name)
        .publish_subscribe::<[u8]>()
        .subscriber_max_buffer_size(BUFFER)
        .history_size(0)
        .enable_safe_overflow(true)
        .open_or_create()
        .map_err(ice)
}

/// Measures frames of `frame` bytes: `rounds` rounds of each in one process (taking turns in
/// `batches`), then `frames` frames between processes, `gap` apart.
pub fn measure(frame: usize, rounds: usize, frames: usize, gap: Duration) -> Result<Figures, Failure> {
    let node = NodeBuilder::new().create::<ipc::Service>().map_err(ice)?;
    let name = service_name();
    let service = open_service(&node, &name)?;
    let publisher = service.publisher_builder().initial_max_slice_len(frame).create().map_err(ice)?;
    let subscriber = service.subscriber_builder().create().map_err(ice)?;
    let data = vec![7_u8; frame];
    let mut out = vec![0_u8; frame];

    let stream_name = stop::unique_name();
    let mut writer = RawWriter::create(stream_name.as_str(), ElementType::U8, &[frame], BUFFER)?;
    let mut reader = RawReader::open(stream_name.as_str())?;

    let (mut ipcmem_times, mut iceoryx2_times) = (Samples::default(), Samples::default());
    for batch in 0..=5 {
        stop::check()?;
        let start = Instant::now();
        for _ in 0..rounds {
            writer.publish(&data)?;
            reader.next_into(&mut out, PATIENCE)?.ok_or_else(|| failure("ipcmem: no frame"))?;
        }
        let ipcmem_time = start.elapsed();
        let start = Instant::now();
        for _ in 0..rounds {
            let sample = publisher.loan_slice_uninit(frame).map_err(ice)?;
            sample.write_from_slice(&data).send().map_err(ice)?;
            let received = subscriber.receive().map_err(ice)?.ok_or_else(|| failure("iceoryx2: no sample"))?;
            out.copy_from_slice(received.payload());
        }
        let iceoryx2_time = start.elapsed();
        // Batch 0 warms up.
        if batch > 0 {
            ipcmem_times.push(ipcmem_time / u32::try_from(rounds).unwrap_or(u32::MAX));
            iceoryx2_times.push(iceoryx2_time / u32::try_from(rounds).unwrap_or(u32::MAX));
        }
    }
    drop(subscriber);
    let (latency, lost) = latency(&publisher, &name, frame, frames, gap)?;
    Ok(Figures { ipcmem_round: ipcmem_times.median(), iceoryx2_round: iceoryx2_times.median(), latency, lost })
}

/// Sends `frames` frames `gap` apart to a polling subscriber in a second process.
fn latency(
    publisher: &iceoryx2::port::publisher::Publisher<ipc::Service, [u8], ()>,
    name: &str,
    frame: usize,
    frames: usize,
    gap: Duration,
) -> Result<(Samples, u64), Failure> {
    let exe = std::env::current_exe().map_err(|error| failure(format!("cannot find this program: {error}")))?;
    let mut child = Reader(
        Command::new(exe)
            .args(["iceoryx2-reader", name, &frame.to_string(), &frames.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|error| failure(format!("cannot start the iceoryx2 reader: {error}")))?,
    );
    let mut lines = BufReader::new(child.0.stdout.take().ok_or_else(|| failure("no pipe from the reader"))?);
    let mut line = String::new();
    lines.read_line(&mut line).map_err(|error| failure(format!("read from the reader: {error}")))?;
    if line.trim() != "ready" {
        return Err(failure("the iceoryx2 reader did not start"));
    }
    let mut data = vec![0_u8; frame];
    for serial in 1..=frames {
        stop::check()?;
        std::thread::sleep(gap);
        data[8..16].copy_from_slice(&(serial as u64).to_ne_bytes());
        data[..8].copy_from_slice(&stream::now_ns().to_ne_bytes());
        let sample = publisher.loan_slice_uninit(frame).map_err(ice)?;
        sample.write_from_slice(&data).send().map_err(ice)?;
    }
    line.clear();
    lines.read_line(&mut line).map_err(|error| failure(format!("read from the reader: {error}")))?;
    let mut numbers = line.split_whitespace().map(str::parse::<u64>);
    let lost = numbers.next().and_then(Result::ok).ok_or_else(|| failure(format!("the reader said {line:?}")))?;
    let mut samples = Samples::default();
    for latency in numbers {
        samples.push(Duration::from_nanos(latency.map_err(|_| failure("a latency that is no number"))?));
    }
    Ok((samples, lost))
}

/// Kills and reaps the reader when dropped.
struct Reader(Child);

impl Drop for Reader {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `ipcmem-bench iceoryx2-reader SERVICE FRAME FRAMES`: polls for FRAMES frames and prints the
/// frames it missed and each latency (ns) on one line.
pub fn reader(args: &ReaderArgs) -> crate::failure::Outcome {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes plain integers and changes only this process.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    let node = NodeBuilder::new().create::<ipc::Service>().map_err(ice)?;
    let service = open_service(&node, &args.service)?;
    let subscriber = service.subscriber_builder().create().map_err(ice)?;
    let mut copy = vec![0_u8; args.frame];
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").and_then(|()| out.flush()).map_err(|error| failure(format!("stdout: {error}")))?;
    let (mut latencies, mut previous, mut lost) = (Vec::with_capacity(args.frames), 0_u64, 0);
    let final_serial = u64::try_from(args.frames).unwrap_or(u64::MAX);
    let deadline = Instant::now() + PATIENCE + Duration::from_secs(60);
    while previous < final_serial {
        let Some(sample) = subscriber.receive().map_err(ice)? else {
            if Instant::now() > deadline {
                return Err(failure("the iceoryx2 reader got no frame in time"));
            }
            std::hint::spin_loop();
            continue;
        };
        copy.copy_from_slice(sample.payload());
        let received = stream::now_ns();
        let published = u64::from_ne_bytes(copy[..8].try_into().unwrap_or_default());
        let serial = u64::from_ne_bytes(copy[8..16].try_into().unwrap_or_default());
        lost += serial.saturating_sub(previous + 1);
        previous = serial;
        latencies.push(received.saturating_sub(published).to_string());
    }
    writeln!(out, "{lost} {}", latencies.join(" "))
        .and_then(|()| out.flush())
        .map_err(|error| failure(format!("stdout: {error}")))
}
