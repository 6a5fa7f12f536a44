//! Frame streams between real processes: no torn frame and every loss counted, read-only
//! readers, a writer's death and a new writer, `open_wait`, no system call per publish, and
//! hostile control blocks.

mod common;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{report, spawn_held, unique_name, Guard};
use ipcmem::array::{self, ElementType};
use ipcmem::stream::{self, RawReader, RawWriter, StreamReader, StreamWriter, WriterStatus};
use ipcmem::{Error, SharedArray, SharedMemory};
use proptest::prelude::*;

/// The entry point of child processes (see `common`); a no-op in the parent's test run.
#[test]
fn child_entry() {
    let Some((scenario, args)) = common::scenario() else { return };
    let arg = |i: usize| args[i].as_str();
    let number = |i: usize| args[i].parse::<u64>().expect("a number");
    let code = match scenario.as_str() {
        "writer" => writer(arg(0), number(1), number(2), number(3), number(4), arg(5) == "close"),
        "reader" => reader(arg(0), false),
        "reader-nobody" => {
            common::become_nobody();
            reader(arg(0), true)
        }
        "publish-only" => publish_only(arg(0), number(1)),
        other => panic!("unknown scenario {other}"),
    };
    common::exit(code);
}

/// Writes `frames` pattern frames (every element of frame n is n) of `side`×`side` f32 into
/// a new stream of `slots`, `pace_us` apart (0: full speed, and at most 10 s), after a `go`
/// on stdin; then closes the stream if `close` (else keeps it, as a writer killed would) and
/// holds until released.
fn writer(name: &str, frames: u64, slots: u64, side: u64, pace_us: u64, close: bool) -> i32 {
    let side = usize::try_from(side).unwrap();
    let slots = usize::try_from(slots).unwrap();
    let mut stream = StreamWriter::<f32>::options().perms(0o644).create(name, &[side, side], slots).expect("create");
    report("ready");
    if common::read_line().as_deref() != Some("go") {
        return 1;
    }
    let start = Instant::now();
    let mut published = 0;
    while published < frames && (pace_us > 0 || start.elapsed() < Duration::from_secs(10)) {
        let serial = stream.last_serial() + 1;
        #[allow(clippy::cast_precision_loss)]
        let value = serial as f32;
        stream.publish_with(|frame| frame.fill(value)).expect("publish");
        published += 1;
        if pace_us > 0 {
            std::thread::sleep(Duration::from_micros(pace_us));
        }
    }
    // Closing the stream (dropping the writer) tells the readers it is over.
    if close {
        drop(stream);
        report(format!("published {published}"));
        common::wait_for_release();
    } else {
        report(format!("published {published}"));
        common::wait_for_release();
        drop(stream);
    }
    0
}

/// Reads until the writer is gone: reports `returned lost torn first last readonly cpu_ms
/// wall_ms`, `lost` counting from the first frame returned.
fn reader(name: &str, report_cpu: bool) -> i32 {
    let mut reader = StreamReader::<f32>::open_wait(name, Duration::from_secs(10)).expect("open");
    let readonly = reader.raw().memory().is_readonly();
    report(format!("open {readonly}"));
    let mut frame = vec![0.0; reader.frame_len()];
    let (mut returned, mut lost, mut torn, mut first, mut newest) = (0_u64, 0, 0, 0, 0);
    let wall = Instant::now();
    let cpu = cpu_time();
    loop {
        match reader.next_into(&mut frame, Duration::from_secs(20)) {
            Ok(Some(info)) => {
                #[allow(clippy::cast_precision_loss)]
                let expected = info.serial as f32;
                if frame.iter().any(|&value| value.to_bits() != expected.to_bits()) {
                    torn += 1;
                }
                if returned == 0 {
                    first = info.serial;
                } else {
                    lost += info.lost;
                }
                returned += 1;
                newest = info.serial;
            }
            Ok(None) => {
                report("timeout");
                return 1;
            }
            Err(Error::WriterGone { .. }) => break,
            Err(error) => panic!("{error}"),
        }
    }
    let cpu_ms = if report_cpu { cpu_time().saturating_sub(cpu).as_millis() } else { 0 };
    report(format!("{returned} {lost} {torn} {first} {newest} {readonly} {cpu_ms} {}", wall.elapsed().as_millis()));
    0
}

/// The CPU time of this process, user and system.
fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the struct it is given; all zeros is a valid rusage.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &raw mut usage);
        usage
    };
    let micros = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.unsigned_abs()) + Duration::from_micros(t.tv_usec.unsigned_abs())
    };
    micros(usage.ru_utime) + micros(usage.ru_stime)
}

/// Makes a stream of 64x64 u16 frames and publishes `frames` of them, no reader: for strace.
fn publish_only(name: &str, frames: u64) -> i32 {
    let mut stream = RawWriter::create(name, ElementType::U16, &[64, 64], 4).expect("create");
    let frame = vec![7; stream.geometry().frame_bytes()];
    for _ in 0..frames {
        stream.publish(&frame).expect("publish");
    }
    0
}

/// The parsed report of a reader.
#[derive(Debug)]
struct Read {
    returned: u64,
    lost: u64,
    torn: u64,
    first: u64,
    last: u64,
    readonly: bool,
    cpu_ms: u64,
    wall_ms: u64,
}

fn parse_read(line: &str) -> Read {
    let fields: Vec<&str> = line.split(' ').collect();
    let n = |i: usize| fields[i].parse::<u64>().unwrap_or_else(|_| panic!("a reader's report: {line}"));
    Read {
        returned: n(0),
        lost: n(1),
        torn: n(2),
        first: n(3),
        last: n(4),
        readonly: fields[5] == "true",
        cpu_ms: n(6),
        wall_ms: n(7),
    }
}

/// A writer process at full speed and two reader processes: every frame returned is whole, and
/// returned plus lost is what was published since each reader's first frame.
fn no_torn_frame(slots: u64) {
    let name = unique_name("torn");
    let mut guard = Guard::new();
    guard.track(name.as_str());
    let mut writer = spawn_held("writer", &[&name, "100000", &slots.to_string(), "512", "0", "close"]);
    assert_eq!(writer.next_report(), "ready");
    let mut readers: Vec<_> = (0..2).map(|_| spawn_held("reader", &[&name])).collect();
    for reader in &mut readers {
        // Root may write: a reader maps read-write when permitted, to register as a waiter.
        assert_eq!(reader.next_report(), "open false");
    }
    writer.send("go");
    let published: u64 = writer.next_report().strip_prefix("published ").unwrap().parse().unwrap();
    for reader in &mut readers {
        let read = parse_read(&reader.next_report());
        eprintln!("{slots} slots: published {published}, read {read:?}");
        assert_eq!(read.torn, 0, "torn frames returned: {read:?}");
        assert_eq!(read.last, published, "the last frame stays in the ring until read");
        assert_eq!(read.returned + read.lost, read.last - read.first + 1, "every frame is returned or counted lost");
        assert!(read.returned > 0);
    }
    for reader in readers {
        assert!(reader.release().status.success());
    }
    assert!(writer.release().status.success());
}

#[test]
fn no_torn_frame_with_4_slots() {
    no_torn_frame(4);
}

#[test]
fn no_torn_frame_with_1_slot() {
    no_torn_frame(1);
}

/// A reader as uid 65534 on a 0644 stream maps it read-only, receives every frame (published
/// 20 ms apart, so it parks between them) and, parked, uses little CPU.
#[test]
fn a_read_only_reader_as_another_user() {
    let name = unique_name("nobody");
    let mut guard = Guard::new();
    guard.track(name.as_str());
    let mut writer = spawn_held("writer", &[&name, "40", "4", "16", "20000", "close"]);
    assert_eq!(writer.next_report(), "ready");
    assert_eq!(common::posix_mode(&name), Some(0o644));
    let mut reader = spawn_held("reader-nobody", &[&name]);
    assert_eq!(reader.next_report(), "open true");
    writer.send("go");
    let read = parse_read(&reader.next_report());
    eprintln!("read-only reader: {read:?}");
    assert!(read.readonly, "uid 65534 cannot map a 0644 object read-write");
    assert_eq!((read.torn, read.last), (0, 40));
    assert_eq!(read.returned + read.lost, read.last - read.first + 1);
    assert!(read.returned >= 35, "a parked read-only reader is woken for the frames: {read:?}");
    assert!(read.cpu_ms * 2 < read.wall_ms, "a waiting reader does not spin: {read:?}");
    assert!(reader.release().status.success());
    assert!(writer.release().status.success());
}

/// SIGKILL of the writer: parked readers get `WriterGone` within 100 ms. A new writer
/// re-creates the stream under the same name: the same readers go on with its frames.
#[test]
fn writer_death_then_a_new_writer() {
    let name = unique_name("death");
    let mut guard = Guard::new();
    guard.track(name.as_str());
    let mut first = spawn_held("writer", &[&name, "3", "4", "8", "0", "hold"]);
    assert_eq!(first.next_report(), "ready");
    let readers: Vec<_> = (0..2).map(|_| StreamReader::<f32>::open(name.as_str()).unwrap()).collect();
    first.send("go");
    assert_eq!(first.next_report(), "published 3");
    let parked = Arc::new(Barrier::new(3));
    let noticed = Arc::new(Barrier::new(3));
    let killed_at = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let threads: Vec<_> = readers
        .into_iter()
        .map(|mut reader| {
            let (parked, noticed, killed_at) = (Arc::clone(&parked), Arc::clone(&noticed), Arc::clone(&killed_at));
            std::thread::spawn(move || {
                let serials: Vec<u64> =
                    (0..3).map(|_| reader.next(Duration::from_secs(10)).unwrap().unwrap().info.serial).collect();
                assert_eq!(serials, [1, 2, 3]);
                parked.wait();
                let error = reader.next(Duration::from_secs(10)).unwrap_err();
                let seen = Instant::now();
                assert!(matches!(error, Error::WriterGone { reason: "its process died", .. }), "{error}");
                let delay = seen - killed_at.lock().unwrap().expect("the kill time");
                noticed.wait();
                // The new writer's frames, on the new stream, from serial 1.
                let frame = reader.next(Duration::from_secs(20)).unwrap().expect("a frame of the new writer");
                (delay, frame)
            })
        })
        .collect();
    parked.wait();
    std::thread::sleep(Duration::from_millis(150)); // the readers park
    *killed_at.lock().unwrap() = Some(Instant::now());
    let run = first.kill();
    assert_eq!(run.signal(), Some(libc::SIGKILL));
    noticed.wait();
    let mut second = spawn_held("writer", &[&name, "3", "4", "8", "1000", "hold"]);
    assert_eq!(second.next_report(), "ready");
    second.send("go");
    for thread in threads {
        let (delay, frame) = thread.join().unwrap();
        eprintln!("writer-gone after {delay:?}; then {:?}", frame.info);
        assert!(delay < Duration::from_millis(100), "writer-gone came {delay:?} after the SIGKILL");
        assert!(frame.info.restarted);
        assert_eq!((frame.info.serial, frame.info.lost), (1, 0));
        assert!(frame.data.iter().all(|&value| value.to_bits() == 1.0_f32.to_bits()));
    }
    assert_eq!(second.next_report(), "published 3");
    assert!(second.release().status.success());
}

/// A reader that waits for a stream not made yet receives the writer's first frame.
#[test]
fn open_wait_receives_the_first_frame() {
    let name = unique_name("wait");
    let mut guard = Guard::new();
    guard.track(name.as_str());
    let waiting = {
        let name = name.clone();
        std::thread::spawn(move || {
            let mut reader = StreamReader::<f32>::open_wait(name.as_str(), Duration::from_secs(20)).unwrap();
            reader.next(Duration::from_secs(20)).unwrap().expect("a frame")
        })
    };
    std::thread::sleep(Duration::from_millis(150));
    assert!(!waiting.is_finished());
    // The writer holds its stream open (a volatile stream that its writer closes goes with it,
    // unless a reader holds it already).
    let mut writer = spawn_held("writer", &[&name, "3", "4", "8", "0", "hold"]);
    assert_eq!(writer.next_report(), "ready");
    // The writer may publish before the reader sees the stream: its first frame stays in the
    // ring until the writer publishes slots more, and this test publishes fewer.
    writer.send("go");
    let frame = waiting.join().unwrap();
    assert_eq!((frame.info.serial, frame.info.lost, frame.info.restarted), (1, 0, false));
    assert!(frame.data.iter().all(|&value| value.to_bits() == 1.0_f32.to_bits()));
    assert_eq!(writer.next_report(), "published 3");
    assert!(writer.release().status.success());
    let error = StreamReader::<f32>::open_wait(unique_name("never").as_str(), Duration::from_millis(30)).unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error}");
}

/// The number of system calls of the `publish-only` child for `frames` frames, by strace.
fn syscalls_of(frames: u64) -> u64 {
    let name = unique_name("strace");
    let mut guard = Guard::new();
    guard.track(name.as_str());
    let out = std::env::temp_dir().join(format!("ipcmem-strace-{}-{frames}", std::process::id()));
    let test = common::child("publish-only", &[&name, &frames.to_string()]);
    let status = std::process::Command::new("strace")
        .args(["-f", "-c", "-o"])
        .arg(&out)
        .arg(test.get_program())
        .args(test.get_args())
        .envs(test.get_envs().filter_map(|(key, value)| Some((key, value?))))
        .stdout(std::process::Stdio::null())
        .status()
        .expect("strace runs (apt-get install strace; .ci/run installs it)");
    assert!(status.success(), "the traced writer failed: {status}");
    let table = std::fs::read_to_string(&out).expect("strace's table");
    let _ = std::fs::remove_file(&out);
    // The last line: "100.00 seconds usecs/call calls [errors] total".
    let total = table.lines().rev().find(|line| line.trim_end().ends_with("total")).expect("a total line");
    total.split_whitespace().nth(3).and_then(|calls| calls.parse().ok()).unwrap_or_else(|| panic!("{table}"))
}

/// With no reader waiting, publishing makes no system call: 100,000 more frames cost (almost)
/// no more calls; only the read-only wake-up probe, at most once per 5 ms, remains.
#[test]
fn no_system_call_per_publish() {
    let few = syscalls_of(1_000);
    let many = syscalls_of(101_000);
    eprintln!("system calls: {few} for 1,000 frames, {many} for 101,000");
    assert!(many.saturating_sub(few) < 1_000, "{few} calls for 1,000 frames, {many} for 101,000");
}

/// The API in one process: gaps in serials are counted lost, `latest`, the checks of sizes,
/// types and writers, the layout as an array, a closed stream, and a stream made anew.
#[test]
fn serials_latest_checks_and_restart() {
    let name = unique_name("api");
    let mut guard = Guard::new();
    guard.track(name.as_str());
    let mut writer = StreamWriter::<u16>::create(name.as_str(), &[3, 2], 4).unwrap();
    let mut reader = StreamReader::<u16>::open(name.as_str()).unwrap();
    assert!(reader.latest().unwrap().is_none());
    assert_eq!(writer.publish(&[1; 6]).unwrap(), 1);
    let first = reader.next(Duration::from_secs(1)).unwrap().unwrap();
    assert_eq!((first.info.serial, first.info.lost, first.data), (1, 0, vec![1; 6]));
    let mut readonly = StreamReader::<u16>::open_readonly(name.as_str()).unwrap();
    assert!(readonly.raw().memory().is_readonly());
    assert_eq!(readonly.latest().unwrap().unwrap().info.serial, 1);
    // A relay keeps a remote stream's serials: the gap is counted lost.
    assert_eq!(writer.publish_with_serial(5, 123, &[5; 6]).unwrap(), 5);
    assert!(writer.publish_with_serial(5, 0, &[5; 6]).is_err(), "serials must increase");
    let gap = reader.next(Duration::from_secs(1)).unwrap().unwrap();
    assert_eq!((gap.info.serial, gap.info.lost, gap.info.acquired_ns), (5, 3, 123));
    assert!(gap.info.published_ns >= first.info.published_ns);
    writer.publish(&[6; 6]).unwrap();
    for _ in 0..2 {
        let latest = reader.latest().unwrap().unwrap();
        assert_eq!((latest.info.serial, latest.info.lost, latest.data), (6, 0, vec![6; 6]));
    }
    assert!(writer.publish(&[1; 5]).is_err());
    assert!(reader.next_into(&mut [0; 5], Duration::ZERO).is_err());
    assert!(matches!(StreamReader::<f32>::open(name.as_str()), Err(Error::TypeMismatch { .. })));
    assert!(StreamWriter::<u16>::attach(name.as_str()).is_err(), "one live writer at a time");
    assert!(StreamWriter::<u16>::create(name.as_str(), &[3, 2], 4).is_err(), "a live stream is not replaced");

    let info = stream::inspect(name.as_str()).unwrap();
    assert_eq!(
        (info.element, info.frame_dims.as_slice(), info.slots, info.last_serial),
        (ElementType::U16, &[3, 2][..], 4, 6)
    );
    assert_eq!((info.writer, info.writer_pid), (WriterStatus::Alive, std::process::id()));
    assert_eq!(info.to_string(), "stream u16 3x2 x4");
    assert_eq!(
        stream::try_inspect(name.as_str()),
        Some(info.clone()).map(|mut i| {
            i.rate_hz = stream::try_inspect(name.as_str()).unwrap().rate_hz;
            i
        })
    );

    // The ring is a WA-1 array of dims (frame dims, slots), at WA-1's data offset.
    let ring = SharedArray::<u16>::open_readonly(name.as_str()).unwrap();
    assert_eq!(ring.dims(), &[3, 2, 4]);
    assert_eq!(array::inspect(name.as_str()).unwrap().data_offset(), array::data_offset(3));
    let mut slot = [0; 6];
    let (frame_len, serial, slots) = (6, 6, 4);
    ring.read_range(frame_len * ((serial - 1) % slots), &mut slot).unwrap();
    assert_eq!(slot, [6; 6]);

    // A closed stream: the reader gets what is left, then WriterGone once, then waits.
    drop(writer);
    assert_eq!(stream::inspect(name.as_str()).unwrap().writer, WriterStatus::Closed);
    assert!(matches!(
        reader.next(Duration::from_secs(1)),
        Err(Error::WriterGone { reason: "it closed the stream", .. })
    ));
    assert!(reader.next(Duration::from_millis(50)).unwrap().is_none());

    // A new writer makes the stream anew under the name: the reader follows.
    let mut again = StreamWriter::<u16>::create(name.as_str(), &[3, 2], 4).unwrap();
    again.publish(&[9; 6]).unwrap();
    let frame = reader.next(Duration::from_secs(1)).unwrap().unwrap();
    assert_eq!((frame.info.serial, frame.info.restarted, frame.data), (1, true, vec![9; 6]));
    again.publish(&[10; 6]).unwrap();
    let frame = reader.next(Duration::from_secs(1)).unwrap().unwrap();
    assert_eq!((frame.info.serial, frame.info.restarted), (2, false));
}

/// A relay's gaps in a ring of many slots: the reader finds the frames by the slot table.
#[test]
fn gaps_in_a_large_ring() {
    let name = unique_name("gaps");
    let mut guard = Guard::new();
    guard.track(name.as_str());
    let mut writer = StreamWriter::<u8>::create(name.as_str(), &[3], 200).unwrap();
    let mut reader = StreamReader::<u8>::open(name.as_str()).unwrap();
    for serial in [2, 150, 151, 10_000] {
        writer.publish_with_serial(serial, 0, &[u8::try_from(serial % 256).unwrap(); 3]).unwrap();
    }
    // Frames 2 to 151 are older than the ring's 200 serials once 10,000 is published: lost.
    let frame = reader.next(Duration::from_secs(1)).unwrap().unwrap();
    assert_eq!((frame.info.serial, frame.info.lost), (10_000, 9_999));
    assert!(reader.next(Duration::from_millis(20)).unwrap().is_none());
    writer.publish_with_serial(10_100, 0, &[7; 3]).unwrap();
    writer.publish_with_serial(10_150, 0, &[8; 3]).unwrap();
    let frame = reader.next(Duration::from_secs(1)).unwrap().unwrap();
    assert_eq!((frame.info.serial, frame.info.lost, frame.data), (10_100, 99, vec![7; 3]));
    let newest = reader.latest().unwrap().unwrap();
    assert_eq!((newest.info.serial, newest.info.lost), (10_150, 49));
}

/// A System V stream, by key and by id; a new writer under the key, followed by the reader that
/// opened the key.
#[test]
fn a_system_v_stream_by_key_and_by_id() {
    let key = common::unique_key();
    let mut guard = Guard::new();
    guard.track(key);
    let options = StreamWriter::<i32>::options().volatile(false);
    let mut writer = options.create(key, &[4], 3).unwrap();
    let mut by_key = StreamReader::<i32>::open(key).unwrap();
    let mut by_id = StreamReader::<i32>::open(writer.id()).unwrap();
    writer.publish(&[5; 4]).unwrap();
    for reader in [&mut by_key, &mut by_id] {
        let frame = reader.next(Duration::from_secs(1)).unwrap().unwrap();
        assert_eq!((frame.info.serial, frame.data), (1, vec![5; 4]));
    }
    let first_segment = writer.id();
    drop(writer);
    let mut again = options.create(key, &[4], 3).unwrap();
    assert_ne!(again.id(), first_segment, "a new segment under the key");
    again.publish(&[6; 4]).unwrap();
    let frame = by_key.next(Duration::from_secs(1)).unwrap().unwrap();
    assert_eq!((frame.info.serial, frame.info.restarted, frame.data), (1, true, vec![6; 4]));
    // The reader by id keeps its segment (an id names one segment for good): its writer closed.
    assert!(matches!(by_id.next(Duration::from_secs(1)), Err(Error::WriterGone { .. })));
}

/// The options of `StreamWriter::<T>` make a stream of `T`, whatever the frames published later
/// would let the compiler infer.
#[test]
fn typed_options_keep_their_element_type() {
    let name = unique_name("typed");
    let mut guard = Guard::new();
    guard.track(name.as_str());
    let mut writer = StreamWriter::<f32>::options().perms(0o640).create(name.as_str(), &[2, 2], 2).unwrap();
    writer.publish(&[0.5; 4]).unwrap();
    assert_eq!(stream::inspect(name.as_str()).unwrap().element, ElementType::F32);
    assert_eq!(common::posix_mode(&name), Some(0o640));
}

/// A stream made without a writer (`ipcmem stream create`): readers wait; a writer attaches,
/// and one that closed is followed by another on the same object, serials going on.
#[test]
fn writers_attach_to_a_stream_made_without_one() {
    let name = unique_name("attach");
    let mut guard = Guard::new();
    guard.track(name.as_str());
    let shm = stream::StreamOptions::new().create_without_writer(name.as_str(), ElementType::F64, &[2], 2).unwrap();
    let mut reader = RawReader::open(name.as_str()).unwrap();
    let mut buf = [0; 16];
    assert!(
        reader.next_into(&mut buf, Duration::from_millis(30)).unwrap().is_none(),
        "no writer yet: a wait, no error"
    );
    let mut writer = RawWriter::attach(name.as_str()).unwrap();
    writer.publish(&[1; 16]).unwrap();
    drop(writer);
    let mut writer = RawWriter::attach(name.as_str()).unwrap();
    assert_eq!(writer.publish(&[2; 16]).unwrap(), 2, "serials go on");
    assert_eq!(reader.next_into(&mut buf, Duration::from_secs(1)).unwrap().unwrap().serial, 1);
    let info = reader.next_into(&mut buf, Duration::from_secs(1)).unwrap().unwrap();
    assert_eq!((info.serial, info.restarted, buf), (2, false, [2; 16]));
    drop(shm);
}

/// A stream object to damage: small, one frame published.
fn damaged_stream(damage: &[(usize, u64)]) -> (String, RawWriter) {
    let name = unique_name("hostile");
    let mut writer = RawWriter::create(name.as_str(), ElementType::U8, &[4, 2], 3).unwrap();
    writer.publish(&[1; 8]).unwrap();
    let shm = SharedMemory::open(name.as_str()).unwrap();
    for &(at, value) in damage {
        let at = (at % (shm.len() / 8)) * 8;
        shm.write_at(at, &value.to_ne_bytes()).unwrap();
    }
    (name, writer)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Garbage anywhere in a stream (header, frames, control block): readers give frames or
    /// clear errors, never a panic, and never wait past their timeout.
    #[test]
    fn hostile_control_blocks(writes in prop::collection::vec((0_usize..64, prop_oneof![
        Just(0_u64), Just(u64::MAX), Just(1), Just(2), Just(u64::MAX / 2), any::<u64>()
    ]), 1..6)) {
        let (name, writer) = damaged_stream(&writes);
        let mut guard = Guard::new();
        guard.track(name.as_str());
        let timeout = Duration::from_millis(40);
        let start = Instant::now();
        if let Ok(mut reader) = RawReader::open_wait(name.as_str(), timeout) {
            let mut buf = vec![0; reader.geometry().frame_bytes()];
            for _ in 0..3 {
                let _ = reader.next_into(&mut buf, timeout);
            }
            let _ = reader.latest_into(&mut buf);
        }
        let _ = stream::inspect(name.as_str());
        let _ = stream::try_inspect(name.as_str());
        // Each of the four waits is bounded by its timeout, plus one look at the writer.
        prop_assert!(start.elapsed() < timeout * 4 + Duration::from_millis(400), "waited {:?}", start.elapsed());
        drop(writer);
    }

    /// The checks of the control block take any bytes.
    #[test]
    fn control_checks_take_any_bytes(fixed in prop::collection::vec(any::<u8>(), 0..160), slots in 1_usize..5, len in 0_usize..2000) {
        let header = array::Header::new(ElementType::I16, &[3, slots]).unwrap();
        let _ = stream::check_control(&header, len, &fixed);
    }
}
