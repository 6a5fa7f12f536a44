//! `demo`: two processes share a volatile POSIX object, a volatile System V segment and a frame
//! stream, and say step by step what they do and see. Nothing is left behind: every object is
//! volatile.
//!
//! The second process is this program again, run as the hidden command `demo-child`, which
//! opens the POSIX object by name, the segment by id, and reads a few frames of the stream.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ipcmem::stream::{StreamReader, StreamWriter};
use ipcmem::{inventory, Id, Key, SharedMemory};

use crate::failure::{Failure, Outcome};

/// The text of `demo --help`.
pub const DEMO_HELP: &str = "\
Creates a volatile POSIX object and a volatile System V segment, starts a second process that
opens them (by name, by id) and writes a message into each, reads the messages back, and shows
that both objects are gone once their last handle is dropped. Meanwhile the first process
publishes frames into a stream (every element of frame n is n) and the second one receives a
few of them, with their serials and latencies.

Example:
  $ ipcmem demo
  [parent 4242] created the volatile POSIX object /ipcmem-demo-4242 (4096 bytes, mode 0600)
  ...";

/// The size of both objects.
const SIZE: usize = 4096;
/// Where each process writes its message: the parent at 0, the child at 256.
const PARENT_AT: usize = 0;
const CHILD_AT: usize = 256;
/// The longest message read back.
const MESSAGE_MAX: usize = 256;
/// The frames of the demo's stream: 4x4 u32, 4 slots, one every 50 ms.
const FRAME_DIMS: [usize; 2] = [4, 4];
const SLOTS: usize = 4;
const FRAME_PERIOD: Duration = Duration::from_millis(50);
/// How many frames the second process receives.
const FRAMES_RECEIVED: u64 = 3;
/// How long the second process may take before the demo gives up on it.
const CHILD_TIMEOUT: Duration = Duration::from_secs(30);

/// `ipcmem demo`.
pub fn run() -> Outcome {
    let pid = std::process::id();
    let name = format!("/ipcmem-demo-{pid}");
    let posix = SharedMemory::create(name.as_str(), SIZE)?;
    say("parent", format!("created the volatile POSIX object {name} ({SIZE} bytes, mode 0600)"));
    let sysv = SharedMemory::create(Key::PRIVATE, SIZE)?;
    let segment = sysv.id();
    say(
        "parent",
        format!("created the volatile System V segment {segment} ({SIZE} bytes): marked for removal at once, so the kernel frees it at its last detach"),
    );
    for (shm, how) in [(&posix, "by name"), (&sysv, "by id")] {
        let message = format!("hello from the parent, pid {pid}, to whoever opens {} {how}", shm.id());
        shm.write_at(PARENT_AT, message.as_bytes())?;
        say("parent", format!("wrote {message:?} into {}", shm.id()));
    }
    let stream_name = format!("/ipcmem-demo-{pid}-frames");
    let mut camera = StreamWriter::<u32>::create(stream_name.as_str(), &FRAME_DIMS, SLOTS)?;
    say(
        "parent",
        format!("created the stream {stream_name}: {SLOTS} slots of 4x4 u32 frames; publishing one every 50 ms"),
    );
    let stop = AtomicBool::new(false);
    let (child_ran, publishing) = std::thread::scope(|scope| {
        let publisher = scope.spawn(|| publish_frames(&mut camera, &stop));
        let child_ran = run_child(&name, &segment, &stream_name);
        stop.store(true, Ordering::Relaxed);
        (child_ran, publisher.join().unwrap_or(Ok(0)))
    });
    child_ran?;
    let published = publishing?;
    say("parent", format!("published {published} frames into {stream_name}"));
    drop(camera);
    check_gone(&Id::Name(stream_name.clone()), &format!("the stream {stream_name} is gone"))?;
    for shm in [&posix, &sysv] {
        say("parent", format!("read back from {}: {:?}", shm.id(), read_message(shm, CHILD_AT)?));
    }
    drop(posix);
    drop(sysv);
    say("parent", "dropped both handles, the last ones anywhere");
    check_gone(&Id::Name(name.clone()), &format!("/dev/shm{name} is gone"))?;
    check_gone(&segment, &format!("segment {segment} is gone from ipcs -m"))?;
    say("parent", "nothing is left behind");
    Ok(())
}

/// Publishes a frame every [`FRAME_PERIOD`] until `stop`; returns how many.
fn publish_frames(camera: &mut StreamWriter<u32>, stop: &AtomicBool) -> Result<u64, Failure> {
    while !stop.load(Ordering::Relaxed) {
        let serial = camera.last_serial() + 1;
        let value = u32::try_from(serial).unwrap_or(u32::MAX);
        camera.publish_with(|frame| frame.fill(value))?;
        std::thread::sleep(FRAME_PERIOD);
    }
    Ok(camera.last_serial())
}

/// Starts `ipcmem demo-child NAME ID STREAM` and waits for it (at most [`CHILD_TIMEOUT`]).
fn run_child(name: &str, segment: &Id, stream: &str) -> Outcome {
    let exe = std::env::current_exe().map_err(|error| Failure::about("demo", error))?;
    say("parent", format!("starting a second process: ipcmem demo-child {name} {segment} {stream}"));
    let mut child = Command::new(exe)
        .args(["demo-child", name, &segment.to_string(), stream])
        .stdin(Stdio::null())
        .spawn()
        .map_err(|error| Failure::about("demo", format!("cannot start the second process: {error}")))?;
    let deadline = Instant::now() + CHILD_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|error| Failure::about("demo", error))? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Failure::about("demo", "the second process did not finish in time"));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if !status.success() {
        return Err(Failure::about("demo", format!("the second process failed ({status})")));
    }
    say("parent", format!("the second process (pid {}) has exited", child.id()));
    Ok(())
}

/// Fails unless `object` is gone.
fn check_gone(object: &Id, place: &str) -> Outcome {
    match inventory::info(object) {
        Err(ipcmem::Error::NotFound { .. }) => {
            say("parent", place);
            Ok(())
        }
        Ok(_) => Err(Failure::about(object, "still exists after its last handle was dropped")),
        Err(error) => Err(error.into()),
    }
}

/// `ipcmem demo-child NAME ID STREAM`: the second process of the demo.
pub fn child(name: &Id, segment: &Id, stream: &Id) -> Outcome {
    let pid = std::process::id();
    for (object, how) in [(name, "by name"), (segment, "by id")] {
        let shm = SharedMemory::open(object)?;
        say("child", format!("opened {object} {how}: {} bytes, volatile: {}", shm.len(), shm.is_volatile()));
        say("child", format!("read from {object}: {:?}", read_message(&shm, PARENT_AT)?));
        let reply = format!("hello from the child, pid {pid}, who opened {object} {how}");
        shm.write_at(CHILD_AT, reply.as_bytes())?;
        say("child", format!("wrote {reply:?} into {object}"));
    }
    let mut frames = StreamReader::<u32>::open(stream)?;
    say("child", format!("opened the stream {stream}: waiting for its frames"));
    for _ in 0..FRAMES_RECEIVED {
        let frame = frames.next(CHILD_TIMEOUT)?.ok_or_else(|| Failure::about(stream, "no frame came in time"))?;
        let latency = frame.info.published().elapsed().unwrap_or_default();
        let whole = frame.data.iter().all(|&value| u64::from(value) == frame.info.serial);
        say(
            "child",
            format!(
                "received frame {} (lost {} before it), every element {}: {}, {} µs after its publication",
                frame.info.serial,
                frame.info.lost,
                frame.info.serial,
                if whole { "yes" } else { "NO" },
                latency.as_micros()
            ),
        );
    }
    say("child", "exiting: my handles drop, the parent still holds its objects");
    Ok(())
}

/// The message at `offset`: the bytes up to the first NUL.
fn read_message(shm: &SharedMemory, offset: usize) -> Result<String, Failure> {
    let mut buffer = [0; MESSAGE_MAX];
    shm.read_at(offset, &mut buffer)?;
    let end = buffer.iter().position(|&byte| byte == 0).unwrap_or(MESSAGE_MAX);
    Ok(String::from_utf8_lossy(&buffer[..end]).into_owned())
}

/// Prints one step of `who` (`parent` or `child`), with its process id.
fn say(who: &str, what: impl std::fmt::Display) {
    println!("[{who:<6} {}] {what}", std::process::id());
}
