//! ImageStreamIO streams: the layout against a C program of ours (compiled here with `cc`),
//! both directions between that C peer (plain stores, glibc `sem_t`, as ImageStreamIO) and
//! ipcmem in real processes, hostile files, property tests of the metadata parser, and
//! `$MILK_SHM_DIR`.
//!
//! Every test works in its own directory `/dev/shm/ipcmem-test-isio-PID-N` (a tmpfs), removed
//! by a guard, never in `/milk/shm`.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ipcmem::isio::layout::{self, METADATA_SIZE};
use ipcmem::isio::{parse_metadata, DataType, Dir, KeywordValue, LayoutError, Metadata, Stream, StreamSpec, Timespec};
use ipcmem::Error;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Directories and the C peer.

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A directory of streams of its own on a tmpfs, removed with its content on drop.
struct TestDir {
    path: PathBuf,
}

impl TestDir {
    fn new() -> TestDir {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = PathBuf::from(format!("/dev/shm/ipcmem-test-isio-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path).expect("make the test directory");
        TestDir { path }
    }

    fn dir(&self) -> Dir {
        Dir::new(&self.path)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The C peer, compiled once per test run with `cc`.
fn peer_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/isio/peer.c");
        let binary = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("isio-peer-{}", std::process::id()));
        let status = Command::new("cc")
            .args(["-O2", "-Wall", "-Werror", "-o"])
            .arg(&binary)
            .arg(&source)
            .status()
            .expect("run cc (a C compiler is needed: .ci/run installs gcc)");
        assert!(status.success(), "cc failed on {}", source.display());
        binary
    })
}

fn peer(dir: &TestDir, args: &[&str]) -> Command {
    let mut command = Command::new(peer_binary());
    command.args(args).env("MILK_SHM_DIR", &dir.path).stdin(Stdio::null());
    command
}

/// Runs the peer to its end; its `@@ ` lines, and fails the test if it failed.
fn run_peer(dir: &TestDir, args: &[&str]) -> Vec<String> {
    let output = peer(dir, args).output().expect("run the C peer");
    let lines = reports(&output);
    assert!(output.status.success(), "peer {args:?} failed: {lines:?} {}", String::from_utf8_lossy(&output.stderr));
    lines
}

fn reports(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout).lines().filter_map(|l| l.strip_prefix("@@ ")).map(str::to_owned).collect()
}

/// Starts the peer with its stdout piped, and reads its first `@@ ` line.
fn start_peer(dir: &TestDir, args: &[&str]) -> (Child, BufReader<std::process::ChildStdout>, String) {
    let mut child = peer(dir, args).stdout(Stdio::piped()).spawn().expect("start the C peer");
    let mut out = BufReader::new(child.stdout.take().expect("the peer's stdout"));
    let first = next_report(&mut out);
    (child, out, first)
}

fn next_report(out: &mut impl BufRead) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(out.read_line(&mut line).expect("read the peer's output") > 0, "the peer ended early");
        if let Some(report) = line.trim_end().strip_prefix("@@ ") {
            return report.to_owned();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Children of this test binary.

#[test]
fn child_entry() {
    let Some((scenario, args)) = common::scenario() else { return };
    match scenario.as_str() {
        "open-from-env" => {
            // Knows only the name: the directory comes from $MILK_SHM_DIR.
            let stream = Stream::open(&args[0]).expect("open from $MILK_SHM_DIR");
            common::report(format!("{} {}", Dir::from_env().path().display(), stream.cnt0().expect("cnt0")));
        }
        other => panic!("unknown scenario {other}"),
    }
    common::exit(0);
}

// ---------------------------------------------------------------------------------------------
// The layout.

#[test]
fn layout_agrees_with_c_field_by_field() {
    let dir = TestDir::new();
    let structure = |c: &str| match c {
        "isio_metadata" => "IMAGE_METADATA",
        "isio_keyword" => "IMAGE_KEYWORD",
        "isio_proc_trace" => "STREAM_PROC_TRACE",
        "isio_cb_frame" => "CBFRAMEMD",
        other => panic!("unknown C structure {other}"),
    };
    let mut from_c = BTreeSet::new();
    for line in run_peer(&dir, &["layout"]) {
        let words: Vec<&str> = line.split(' ').collect();
        let [s, field, offset, size] = words[..] else { panic!("bad line {line}") };
        if s == "sem_t" {
            assert_eq!(size.parse::<usize>().unwrap(), layout::SEM_SIZE);
            continue;
        }
        from_c.insert((
            structure(s).to_owned(),
            field.to_owned(),
            offset.parse::<usize>().unwrap(),
            size.parse::<usize>().unwrap(),
        ));
    }
    let from_rust: BTreeSet<_> =
        layout::fields().into_iter().map(|f| (f.structure.to_owned(), f.name.to_owned(), f.offset, f.size)).collect();
    assert_eq!(from_c, from_rust);
    assert_eq!(from_rust.len(), 31 + 1 + 5 + 1 + 8 + 1 + 4 + 1);
}

// ---------------------------------------------------------------------------------------------
// C writes, ipcmem reads.

#[test]
fn c_made_stream_opens_with_its_metadata_and_keywords() {
    let dir = TestDir::new();
    let created = run_peer(&dir, &["create", "cam", "9", "10", "4", "0", "8", "6"]);
    let stream = dir.dir().open("cam").expect("open a stream made in C");
    let md = stream.metadata().expect("metadata");
    assert_eq!(created, [format!("created {}", stream.layout().total)]);
    assert_eq!((md.name.as_str(), md.naxis, md.size, md.nelement), ("cam", 2, [8, 6, 0], 48));
    assert_eq!((md.datatype, md.semaphores, md.keywords, md.cnt0, md.write), (DataType::F32, 10, 4, 0, false));
    assert_eq!((md.imagetype, md.shared, md.location, md.proc_traces), (layout::MATH_DATA, 1, -1, 10));
    assert!(md.creation_time.sec > 1_600_000_000, "creation time {}", md.creation_time);
    assert_eq!(stream.frame_len(), 8 * 6 * 4);
    let keywords: Vec<_> =
        stream.keywords().unwrap().into_iter().map(|k| (k.name, k.value, k.comment, k.cnt)).collect();
    assert_eq!(
        keywords,
        [
            ("GAIN".into(), KeywordValue::Long(42), "loop gain".into(), 1),
            ("EXPTIME".into(), KeywordValue::Double(0.25), "exposure [s]".into(), 1),
            ("MODE".into(), KeywordValue::String("fast".into()), "readout mode".into(), 1),
        ]
    );
    let sems = stream.semaphores().unwrap();
    assert_eq!(sems.len(), 10);
    assert!(sems.iter().all(|s| s.value == 0 && s.reader_pid == -1 && s.writer_pid == -1));
}

#[test]
fn frames_counters_times_and_posts_from_a_c_writer() {
    let dir = TestDir::new();
    run_peer(&dir, &["create", "wfs", "4", "3", "4", "0", "5", "3"]);
    let stream = dir.dir().open("wfs").unwrap();
    let mut child = peer(&dir, &["write", "wfs", "3"]).spawn().unwrap();
    let writer_pid = child.id().cast_signed();
    assert!(child.wait().unwrap().success());

    let mut frame = vec![0; stream.frame_len()];
    let info = stream.read_frame(&mut frame).unwrap();
    assert!(frame.iter().all(|&b| b == 3), "{frame:?}");
    assert_eq!((info.cnt0, info.slice, info.atime), (3, 0, Timespec { sec: 1003, nsec: 3 }));
    assert!(info.write_time.sec > 1_600_000_000);
    // Three posts each, below SEMAPHORE_MAXVAL; the writer's pid on each.
    for sem in stream.semaphores().unwrap() {
        assert_eq!((sem.value, sem.writer_pid, sem.reader_pid), (3, writer_pid, -1), "{sem:?}");
    }
    let cnt = stream.keyword("CNT").unwrap().expect("keyword CNT");
    assert_eq!((cnt.value, cnt.cnt), (KeywordValue::Long(3), 3));
}

#[test]
fn slices_of_a_c_written_circular_buffer() {
    let dir = TestDir::new();
    run_peer(&dir, &["create", "tel", "1", "4", "0", "1", "4", "4", "5"]);
    run_peer(&dir, &["write", "tel", "7"]);
    let stream = dir.dir().open("tel").unwrap();
    assert!(stream.is_circular());
    assert_eq!((stream.layout().slices, stream.frame_len()), (5, 16));
    let mut frame = vec![0; 16];
    // Slices 0,1,2,3,4,0,1: the seventh frame is in slice 1.
    let info = stream.read_frame(&mut frame).unwrap();
    assert_eq!((info.cnt0, info.cnt1, info.slice, info.slice_cnt0), (7, 1, 1, 7));
    assert_eq!(info.atime, Timespec { sec: 1007, nsec: 7 });
    assert!(frame.iter().all(|&b| b == 7));
    let older = stream.read_slice(4, &mut frame).unwrap();
    assert_eq!((older.slice_cnt0, older.atime.sec), (5, 1005));
    assert!(frame.iter().all(|&b| b == 5));
    assert!(matches!(stream.read_slice(5, &mut frame), Err(Error::InvalidArgument { .. })));
}

#[test]
fn an_ipcmem_reader_claims_a_semaphore_and_wakes_on_a_c_writer() {
    let dir = TestDir::new();
    let stream = dir.dir().create(&StreamSpec::new("dm", DataType::F32, &[2, 2]).semaphores(3)).unwrap();
    let reader = stream.reader().unwrap();
    let me = std::process::id().to_string();
    let info = run_peer(&dir, &["info", "dm"]);
    assert!(info.contains(&format!("sem {} 0 {me} -1", reader.index())), "{info:?}");

    let waiting = std::thread::scope(|scope| {
        let waiter = scope.spawn(|| reader.wait_timeout(Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(50));
        run_peer(&dir, &["write", "dm", "1"]);
        waiter.join().unwrap()
    });
    assert!(waiting.unwrap(), "the reader timed out");
    let mut frame = vec![0; 16];
    assert_eq!(stream.read_frame(&mut frame).unwrap().cnt0, 1);
    assert_eq!(frame, [1; 16]);
    // Nothing more posted: the next wait times out.
    assert!(!reader.wait_timeout(Duration::from_millis(20)).unwrap());
    let index = reader.index();
    drop(reader);
    assert_eq!(stream.semaphores().unwrap()[index].reader_pid, 0, "released on drop");
}

// ---------------------------------------------------------------------------------------------
// ipcmem writes, C reads.

#[test]
fn a_c_reader_claims_waits_and_reads_an_ipcmem_frame() {
    let dir = TestDir::new();
    let stream = dir.dir().create(&StreamSpec::new("sci", DataType::U8, &[64]).keywords(3)).unwrap();
    stream.set_keyword("GAIN", &KeywordValue::Long(-7), "gain").unwrap();
    stream.set_keyword("TEMP", &KeywordValue::Double(1.5), "kelvin").unwrap();
    stream.set_keyword("NAME", &KeywordValue::String("ipcmem".into()), "who").unwrap();
    stream.set_keyword("GAIN", &KeywordValue::Long(8), "gain again").unwrap();
    assert!(stream.set_keyword("FULL", &KeywordValue::Long(0), "").is_err(), "three slots only");

    let (mut child, mut out, claimed) = start_peer(&dir, &["read", "sci", "10000"]);
    let index: usize = claimed.strip_prefix("claimed ").expect(&claimed).parse().unwrap();
    let sems = stream.semaphores().unwrap();
    assert_eq!(sems[index].reader_pid, child.id().cast_signed(), "the C reader's claim");
    // Another reader gets another semaphore.
    let mine = stream.reader().unwrap();
    assert_ne!(mine.index(), index);

    stream.write_frame_at(&[9; 64], Some(Timespec { sec: 2000, nsec: 5 })).unwrap();
    let frame = next_report(&mut out);
    assert_eq!(frame, format!("frame 1 0 9 2000 5 {}", std::process::id()));
    assert!(child.wait().unwrap().success());

    let info = run_peer(&dir, &["info", "sci"]);
    assert!(info[0].starts_with(&format!("md sci 1 64 0 0 1 1 0 0 2000 5 {}", std::process::id())), "{info:?}");
    assert!(info.contains(&"kw GAIN L 8 2 gain again".to_owned()), "{info:?}");
    assert!(info.contains(&"kw TEMP D 1.5 1 kelvin".to_owned()), "{info:?}");
    assert!(info.contains(&"kw NAME S ipcmem 1 who".to_owned()), "{info:?}");
    assert!(info.contains(&"byte0 9".to_owned()));
}

#[test]
fn an_ipcmem_circular_buffer_reads_in_c() {
    let dir = TestDir::new();
    let stream = dir.dir().create(&StreamSpec::new("rb", DataType::U16, &[2, 2, 3]).circular(true)).unwrap();
    assert_eq!(stream.frame_len(), 8);
    for n in 1..=4_u8 {
        let info = stream.write_frame_at(&[n; 8], Some(Timespec { sec: i64::from(n), nsec: 0 })).unwrap();
        assert_eq!((info.cnt0, info.slice), (u64::from(n), usize::from(n - 1) % 3));
    }
    let info = run_peer(&dir, &["info", "rb"]);
    for expected in ["slice 0 4 4 0 4", "slice 1 2 2 0 2", "slice 2 3 3 0 3"] {
        assert!(info.contains(&expected.to_owned()), "{expected} not in {info:?}");
    }
    assert!(info[0].starts_with("md rb 3 2 2 3 3 4 0 0 4 0"), "{info:?}");
}

#[test]
fn posts_stop_at_semaphore_maxval() {
    let dir = TestDir::new();
    let stream = dir.dir().create(&StreamSpec::new("max", DataType::I8, &[1]).semaphores(2)).unwrap();
    for _ in 0..15 {
        stream.write_frame(&[1]).unwrap();
    }
    assert!(stream.semaphores().unwrap().iter().all(|s| s.value == 10));
    assert_eq!(stream.cnt0().unwrap(), 15);
}

// ---------------------------------------------------------------------------------------------
// Claims.

#[test]
fn claims_skip_live_readers_and_take_over_dead_ones() {
    let dir = TestDir::new();
    let stream = dir.dir().create(&StreamSpec::new("claim", DataType::F64, &[1]).semaphores(2)).unwrap();
    // A C reader claims semaphore 0 and ends (timed out): its pid is left, dead.
    let output = peer(&dir, &["read", "claim", "10"]).output().unwrap();
    assert_eq!(reports(&output), ["claimed 0", "timeout"]);
    let first = stream.reader().unwrap();
    assert_eq!(first.index(), 0, "a dead reader's semaphore is free");
    let second = stream.reader().unwrap();
    assert_eq!(second.index(), 1);
    assert!(matches!(stream.reader(), Err(Error::Busy { .. })), "all claimed");
    drop(first);
    assert_eq!(stream.reader().unwrap().index(), 0);
    let readonly = dir.dir().open_readonly("claim").unwrap();
    assert!(matches!(readonly.reader(), Err(Error::ReadOnly { .. })));
    assert!(matches!(readonly.write_frame(&[0; 8]), Err(Error::ReadOnly { .. })));
}

// ---------------------------------------------------------------------------------------------
// Consistency under a concurrent writer.

#[test]
fn reads_are_never_torn_by_a_concurrent_writer() {
    let dir = TestDir::new();
    let stream = dir.dir().create(&StreamSpec::new("race", DataType::U8, &[128, 128])).unwrap();
    let reader = dir.dir().open_readonly("race").unwrap();
    let done = Arc::new(AtomicBool::new(false));
    std::thread::scope(|scope| {
        let writer = {
            let done = Arc::clone(&done);
            let stream = stream.clone();
            scope.spawn(move || {
                let mut frame = vec![0; 16384];
                for n in 1..=1000_u64 {
                    frame.fill(n.to_le_bytes()[0]);
                    stream.write_frame(&frame).unwrap();
                    // A camera leaves time between frames; a writer that never pauses could
                    // keep every copy from being consistent.
                    std::thread::sleep(Duration::from_micros(100));
                }
                done.store(true, Ordering::Relaxed);
            })
        };
        let mut frame = vec![0; 16384];
        let mut reads = 0;
        while !done.load(Ordering::Relaxed) || reads == 0 {
            let info = reader.read_frame(&mut frame).unwrap();
            let expected = info.cnt0.to_le_bytes()[0];
            assert!(frame.iter().all(|&b| b == expected), "torn frame at cnt0 {}", info.cnt0);
            reads += 1;
        }
        writer.join().unwrap();
    });
}

#[test]
fn circular_reads_keep_up_with_a_writer_that_never_pauses() {
    let dir = TestDir::new();
    let spec = StreamSpec::new("fast", DataType::U8, &[64, 64, 8]).circular(true);
    let stream = dir.dir().create(&spec).unwrap();
    let reader = dir.dir().open_readonly("fast").unwrap();
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut frame = vec![0; 4096];
            for n in 1..=50_000_u64 {
                frame.fill(n.to_le_bytes()[0]);
                stream.write_frame(&frame).unwrap();
            }
            done.store(true, Ordering::Relaxed);
        });
        let mut frame = vec![0; 4096];
        let mut older = vec![0; 4096];
        let mut reads = 0;
        while !done.load(Ordering::Relaxed) {
            reads += 1;
            // Never busy: the writer fills the other slices while a slice is copied.
            let info = reader.read_frame(&mut frame).unwrap();
            // The slice of `cnt1`: written by frame `cnt0`, or by the next one when the writer
            // had stored `cnt1` but not yet `cnt0`.
            assert!(info.slice_cnt0 == info.cnt0 || info.slice_cnt0 == info.cnt0 + 1, "{info:?}");
            let expected = info.slice_cnt0.to_le_bytes()[0];
            assert!(frame.iter().all(|&b| b == expected), "torn slice {} at cnt0 {}", info.slice, info.cnt0);
            let previous = (info.slice + 7) % 8;
            let old = reader.read_slice(previous, &mut older).unwrap();
            let expected = old.slice_cnt0.to_le_bytes()[0];
            assert!(older.iter().all(|&b| b == expected), "torn slice {previous}");
        }
        assert!(reads > 10, "the reader ran alongside the writer only {reads} times");
    });
}

#[test]
fn a_write_flag_left_set_makes_reads_report_busy() {
    let dir = TestDir::new();
    dir.dir().create(&StreamSpec::new("stuck", DataType::U8, &[4])).unwrap();
    let path = dir.dir().file("stuck").unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[288] = 1; // `write`, as a writer that died half-way leaves it
    std::fs::write(&path, &bytes).unwrap();
    let stream = dir.dir().open("stuck").unwrap();
    let error = stream.read_frame(&mut [0; 4]).unwrap_err();
    assert!(matches!(error, Error::Busy { .. }), "{error}");
    assert!(error.to_string().contains("isio:stuck"), "{error}");
}

// ---------------------------------------------------------------------------------------------
// $MILK_SHM_DIR, names, listing, removal.

#[test]
fn milk_shm_dir_is_honoured() {
    let dir = TestDir::new();
    let stream = dir.dir().create(&StreamSpec::new("env", DataType::C64, &[3])).unwrap();
    stream.write_frame(&[0; 48]).unwrap();
    let mut child = common::child("open-from-env", &["env"]);
    child.env("MILK_SHM_DIR", &dir.path);
    let run = common::wait_child(child.spawn().unwrap());
    assert_eq!(run.report(), format!("{} 1", dir.path.display()));
}

#[test]
fn list_create_replace_and_remove() {
    let dir = TestDir::new();
    let d = dir.dir();
    assert!(d.list().unwrap().is_empty());
    d.create(&StreamSpec::new("b", DataType::F16, &[2])).unwrap();
    d.create(&StreamSpec::new("a", DataType::I64, &[2])).unwrap();
    std::fs::write(dir.path.join("not-a-stream.txt"), b"x").unwrap();
    assert_eq!(d.list().unwrap(), ["a", "b"]);
    let again = d.create(&StreamSpec::new("a", DataType::I64, &[2]));
    assert!(matches!(again, Err(Error::AlreadyExists { .. })), "{again:?}");
    let old = d.open("a").unwrap();
    let new = d.create(&StreamSpec::new("a", DataType::U32, &[7]).replace(true)).unwrap();
    assert_eq!((old.datatype(), new.datatype(), d.open("a").unwrap().dims()), (DataType::I64, DataType::U32, &[7][..]));
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(new.path()).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o666, "ImageStreamIO's mode");
    d.remove("a").unwrap();
    assert!(matches!(d.open("a"), Err(Error::NotFound { .. })));
    assert!(matches!(d.remove("a"), Err(Error::NotFound { .. })));
    for bad in ["", "x/y", "..", &"n".repeat(80)] {
        assert!(matches!(d.open(bad), Err(Error::InvalidArgument { .. })), "{bad:?}");
    }
    assert!(StreamSpec::new("c", DataType::U8, &[2, 2]).circular(true).metadata().is_err());
    assert!(StreamSpec::new("c", DataType::U8, &[1, 1, 1, 1]).metadata().is_err());
    assert!(StreamSpec::new("c", DataType::U8, &[0]).metadata().is_err());
    // No temporary file left behind; one that a dead creator left goes with the next create.
    assert_eq!(std::fs::read_dir(&dir.path).unwrap().count(), 2);
    let mut gone = Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    let stale = dir.path.join(format!(".c.im.shm.ipcmem-{dead}-0"));
    let alive = dir.path.join(format!(".d.im.shm.ipcmem-{}-0", std::process::id()));
    std::fs::write(&stale, b"half made").unwrap();
    std::fs::write(&alive, b"being made").unwrap();
    d.create(&StreamSpec::new("e", DataType::U8, &[1])).unwrap();
    assert!(!stale.exists() && alive.exists());
    std::fs::remove_file(&alive).unwrap();
}

#[test]
fn all_thirteen_datatypes_round_trip() {
    let dir = TestDir::new();
    for datatype in DataType::ALL {
        let name = datatype.name();
        assert_eq!(name.parse::<DataType>().unwrap(), datatype);
        assert_eq!(DataType::from_code(datatype.code()), Some(datatype));
        let stream = dir.dir().create(&StreamSpec::new(name, datatype, &[3, 2])).unwrap();
        assert_eq!(stream.frame_len(), 6 * datatype.size());
        let data: Vec<u8> = (0..stream.frame_len()).map(|i| i.to_le_bytes()[0]).collect();
        stream.write_frame(&data).unwrap();
        let mut out = vec![0; data.len()];
        dir.dir().open_readonly(name).unwrap().read_frame(&mut out).unwrap();
        assert_eq!(out, data);
        let info = run_peer(&dir, &["info", name]);
        assert!(info[0].starts_with(&format!("md {name} 2 3 2 0 {} 1 ", datatype.code())), "{info:?}");
    }
    assert_eq!(DataType::from_code(0), None);
    assert_eq!(DataType::from_code(14), None);
}

// ---------------------------------------------------------------------------------------------
// Against milk's ImageStreamIO library itself (opt-in: it is not part of ipcmem, and CI has no
// copy of it).

/// The environment variable naming a checkout of milk-org/ImageStreamIO.
const IMAGESTREAMIO_VAR: &str = "IPCMEM_IMAGESTREAMIO";

#[test]
fn streams_open_both_ways_with_imagestreamio_itself() {
    let Some(source) = std::env::var_os(IMAGESTREAMIO_VAR).map(PathBuf::from) else {
        eprintln!("not run: set {IMAGESTREAMIO_VAR} to a checkout of milk-org/ImageStreamIO to run it");
        return;
    };
    let program = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/isio/with_imagestreamio.c");
    let binary = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("with-imagestreamio-{}", std::process::id()));
    let status = Command::new("cc")
        .args(["-O1", "-w", "-I"])
        .arg(&source)
        .arg(&program)
        .arg(source.join("ImageStreamIO.c"))
        .arg("-o")
        .arg(&binary)
        .args(["-lpthread", "-lm"])
        .status()
        .expect("run cc");
    assert!(status.success(), "cc failed on {}", program.display());
    let dir = TestDir::new();
    let theirs = |args: &[&str]| {
        let mut command = Command::new(&binary);
        command.args(args).env("MILK_SHM_DIR", &dir.path).stdin(Stdio::null());
        command
    };
    let run = |args: &[&str]| {
        let output = theirs(args).output().unwrap();
        assert!(output.status.success(), "{args:?}: {:?}", reports(&output));
        reports(&output)
    };

    // Made by ImageStreamIO, read by ipcmem.
    run(&["create", "made-in-c"]);
    let stream = dir.dir().open("made-in-c").unwrap();
    let md = stream.metadata().unwrap();
    assert_eq!((md.naxis, md.size, md.datatype, md.semaphores, md.keywords), (3, [16, 8, 4], DataType::I16, 5, 3));
    assert!(stream.is_circular());
    let gain = stream.keyword("GAIN").unwrap().expect("GAIN");
    assert_eq!(gain.value, KeywordValue::Long(7));
    let mut frame = vec![0; stream.frame_len()];
    let info = stream.read_frame(&mut frame).unwrap();
    assert_eq!((info.cnt0, info.slice), (1, 2));
    assert!(frame.iter().all(|&b| b == 3));
    assert!(info.write_time.sec > 1_600_000_000, "UpdateIm's time, as the slice has none: {info:?}");
    // ImageStreamIO writes, an ipcmem reader wakes.
    let reader = stream.reader().unwrap();
    run(&["write", "made-in-c"]);
    assert!(reader.wait_timeout(Duration::from_secs(5)).unwrap());
    assert_eq!(stream.read_frame(&mut frame).unwrap().cnt0, 2);
    assert!(frame.iter().all(|&b| b == 42));

    // Made by ipcmem, opened by ImageStreamIO.
    let ours = dir.dir().create(&StreamSpec::new("made-in-rust", DataType::U16, &[32, 32]).keywords(2)).unwrap();
    ours.set_keyword("MODE", &KeywordValue::String("ao".into()), "").unwrap();
    for _ in 0..3 {
        ours.write_frame(&[5; 2048]).unwrap();
    }
    let opened = run(&["open", "made-in-rust"]);
    let me = std::process::id();
    assert_eq!(
        opened[0],
        format!(
            "opened made-in-rust naxis=2 32x32x0 type=3 cnt0=3 cnt1=0 sem=10 NBkw=2 memsize={}",
            ours.layout().total
        )
    );
    assert!(opened.contains(&"kw MODE S".to_owned()), "{opened:?}");
    assert!(opened.contains(&format!("sem 9 value=3 read=-1 write={me}")), "{opened:?}");
    // An ImageStreamIO reader claims a semaphore and wakes on ipcmem's write.
    let mut child = theirs(&["wait", "made-in-rust"]).stdout(Stdio::piped()).spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let claimed = loop {
        let line = next_report(&mut out);
        if line.starts_with("claimed") {
            break line;
        }
    };
    let index: usize = claimed["claimed ".len()..].parse().unwrap();
    assert_eq!(ours.semaphores().unwrap()[index].reader_pid, child.id().cast_signed());
    ours.write_frame(&[7; 2048]).unwrap();
    assert_eq!(next_report(&mut out), "waited r=0 cnt0=4 byte0=7");
    assert!(child.wait().unwrap().success());
}

// ---------------------------------------------------------------------------------------------
// Hostile files.

fn valid_file(spec: &StreamSpec) -> (Metadata, Vec<u8>) {
    let (metadata, layout) = spec.metadata().unwrap();
    let mut file = vec![0; layout.total];
    file[..METADATA_SIZE].copy_from_slice(&metadata.encode());
    (metadata, file)
}

fn parse(file: &[u8]) -> Result<Metadata, LayoutError> {
    parse_metadata(file, file.len() as u64).map(|(metadata, _)| metadata)
}

fn set(file: &mut [u8], offset: usize, bytes: &[u8]) {
    file[offset..offset + bytes.len()].copy_from_slice(bytes);
}

#[test]
fn hostile_metadata_gives_clear_errors() {
    let spec = StreamSpec::new("h", DataType::F32, &[16, 16]).keywords(2);
    let (metadata, good) = valid_file(&spec);
    assert_eq!(parse(&good), Ok(metadata));

    let check = |edit: &dyn Fn(&mut Vec<u8>), expected: &dyn Fn(&LayoutError) -> bool| {
        let mut file = good.clone();
        edit(&mut file);
        let error = parse(&file).expect_err("a hostile file");
        assert!(expected(&error), "unexpected {error:?}");
    };
    check(&|f| f.truncate(METADATA_SIZE), &|e| matches!(e, LayoutError::TooSmall { len: 384 }));
    check(&|f| f.truncate(1000), &|e| matches!(e, LayoutError::SizeMismatch { found: 1000, .. }));
    check(&|f| f.push(0), &|e| matches!(e, LayoutError::SizeMismatch { .. }));
    check(&|f| set(f, 0, b"1.99"), &|e| matches!(e, LayoutError::BadVersion { found } if found == "1.99"));
    check(&|f| f[0] = 0, &|e| matches!(e, LayoutError::BadVersion { found } if found.is_empty()));
    check(&|f| f[32] = 0, &|e| matches!(e, LayoutError::NoName));
    check(&|f| f[112] = 4, &|e| matches!(e, LayoutError::BadNaxis { naxis: 4 }));
    check(&|f| set(f, 120, &0_u32.to_ne_bytes()), &|e| matches!(e, LayoutError::ZeroSize { axis: 1 }));
    check(&|f| f[136] = 14, &|e| matches!(e, LayoutError::BadDatatype { code: 14 }));
    check(&|f| f[240] = 0, &|e| matches!(e, LayoutError::NotInFile { location: 0 }));
    check(&|f| f[224] = 0, &|e| matches!(e, LayoutError::NotShared { shared: 0 }));
    check(&|f| set(f, 144, &1_u64.to_ne_bytes()), &|e| matches!(e, LayoutError::CircularNot3D { .. }));
    check(&|f| set(f, 128, &255_u64.to_ne_bytes()), &|e| matches!(e, LayoutError::BadElementCount { .. }));
    check(&|f| set(f, 312, &1_u64.to_ne_bytes()), &|e| matches!(e, LayoutError::BadDataSize { .. }));
    // sem = 65535 and NBkw past the end: the parts no longer fit the file.
    check(&|f| set(f, 258, &u16::MAX.to_ne_bytes()), &|e| {
        matches!(e, LayoutError::SizeMismatch { semaphores: 65535, .. })
    });
    check(&|f| set(f, 290, &u16::MAX.to_ne_bytes()), &|e| {
        matches!(e, LayoutError::SizeMismatch { keywords: 65535, .. })
    });
    // Sizes whose products overflow.
    check(
        &|f| {
            f[112] = 3;
            for axis in 0..3 {
                set(f, 116 + 4 * axis, &u32::MAX.to_ne_bytes());
            }
            set(f, 128, &u64::MAX.to_ne_bytes());
        },
        &|e| matches!(e, LayoutError::BadElementCount { expected: u64::MAX, .. }),
    );
    check(
        &|f| {
            set(f, 128, &u64::from(u32::MAX).to_ne_bytes());
            set(f, 116, &u32::MAX.to_ne_bytes());
            set(f, 120, &1_u32.to_ne_bytes());
            f[136] = DataType::C64.code();
            set(f, 312, &(u64::from(u32::MAX) * 16).to_ne_bytes());
            set(f, 292, &u32::MAX.to_ne_bytes()); // CBsize: data x CBsize overflows
        },
        &|e| matches!(e, LayoutError::Overflow { part: "fast circular buffer" }),
    );
}

#[test]
fn hostile_files_on_disk_give_errors_that_name_the_stream() {
    let dir = TestDir::new();
    let (_, good) = valid_file(&StreamSpec::new("x", DataType::U8, &[8]).keywords(1));
    let cases: [(&str, Vec<u8>); 5] = [
        ("empty", Vec::new()),
        ("short", good[..100].to_vec()),
        ("truncated", good[..good.len() - 8].to_vec()),
        ("version", {
            let mut f = good.clone();
            f[..4].copy_from_slice(b"3.00");
            f
        }),
        ("nbkw", {
            let mut f = good.clone();
            f[290..292].copy_from_slice(&1000_u16.to_ne_bytes());
            f
        }),
    ];
    for (name, bytes) in cases {
        std::fs::write(dir.path.join(format!("{name}.im.shm")), &bytes).unwrap();
        let error = dir.dir().open(name).expect_err(name);
        assert!(matches!(error, Error::BadImageStream { .. }), "{name}: {error}");
        assert!(error.to_string().starts_with(&format!("isio:{name}: not a valid ImageStreamIO stream")), "{error}");
    }
    std::fs::create_dir(dir.path.join("dir.im.shm")).unwrap();
    assert!(dir.dir().open("dir").is_err());
}

#[test]
fn a_garbage_semaphore_is_an_error_not_an_abort() {
    let dir = TestDir::new();
    let stream = dir.dir().create(&StreamSpec::new("garbage", DataType::U8, &[4]).semaphores(2)).unwrap();
    let flag_of_sem = |index: usize| stream.layout().semaphores + 32 * index + 8;
    let mut bytes = std::fs::read(stream.path()).unwrap();
    // The flag word glibc turns into a futex operation; with waiters recorded, sem_post would
    // make the kernel refuse an unknown operation and glibc abort.
    bytes[flag_of_sem(1)..flag_of_sem(1) + 4].copy_from_slice(&0x7777_i32.to_ne_bytes());
    bytes[flag_of_sem(1) - 4..flag_of_sem(1)].copy_from_slice(&1_u32.to_ne_bytes());
    std::fs::write(stream.path(), &bytes).unwrap();
    let stream = dir.dir().open("garbage").unwrap();
    let error = stream.write_frame(&[1; 4]).unwrap_err();
    assert!(error.to_string().contains("no glibc semaphore"), "{error}");
    let first = stream.reader().unwrap();
    assert_eq!(first.index(), 0);
    assert!(matches!(stream.reader(), Err(Error::InvalidArgument { .. })));
    assert_eq!(stream.semaphores().unwrap()[1].reader_pid, -1, "no claim left behind");
}

#[test]
fn a_stream_shrunk_under_its_readers_is_an_error_not_a_sigbus() {
    let dir = TestDir::new();
    let stream = dir.dir().create(&StreamSpec::new("shrunk", DataType::U8, &[64, 64]).keywords(1)).unwrap();
    let reader = dir.dir().open_readonly("shrunk").unwrap();
    let waiter = stream.reader().unwrap();
    // Another process cuts the file after its first page: the data's end and all that follows
    // (keywords, semaphores, pids) are gone from every mapping.
    std::fs::OpenOptions::new().write(true).open(stream.path()).unwrap().set_len(4096).unwrap();
    let mut frame = vec![0; 4096];
    for error in [
        reader.read_frame(&mut frame).unwrap_err(),
        stream.write_frame(&frame).unwrap_err(),
        stream.keywords().unwrap_err(),
        stream.semaphores().unwrap_err(),
        stream.post_all().unwrap_err(),
        stream.reader().unwrap_err(),
        waiter.wait_timeout(Duration::from_millis(1)).unwrap_err(),
    ] {
        assert!(matches!(error, Error::Shrunk { size: 4096, .. }), "{error}");
        assert!(error.to_string().starts_with("isio:shrunk: the object was shrunk"), "{error}");
    }
}

/// Opens a file of hostile bytes and does everything a program may do with it.
fn exercise(dir: &TestDir, name: &str, bytes: &[u8]) {
    std::fs::write(dir.path.join(format!("{name}.im.shm")), bytes).unwrap();
    let Ok(stream) = dir.dir().open(name) else { return };
    let _ = stream.metadata();
    let _ = stream.keywords();
    let _ = stream.semaphores();
    let mut frame = vec![0; stream.frame_len()];
    let _ = stream.read_frame(&mut frame);
    let _ = stream.write_frame(&frame);
    let _ = stream.set_keyword("K", &KeywordValue::Long(1), "");
    if let Ok(reader) = stream.reader() {
        let _ = reader.wait_timeout(Duration::from_millis(1));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn hostile_bytes_after_valid_metadata_never_crash(
        seed in proptest::collection::vec(any::<u8>(), 64),
        shared_flags in any::<bool>(),
    ) {
        let dir = TestDir::new();
        let spec = StreamSpec::new("h", DataType::U16, &[3, 2, 2]).semaphores(3).keywords(2).circular(true);
        let (_, mut file) = valid_file(&spec);
        let layout = spec.metadata().unwrap().1;
        // Everything after the metadata: bytes repeated from the seed.
        for (i, byte) in file.iter_mut().enumerate().skip(METADATA_SIZE) {
            *byte = seed[i % seed.len()];
        }
        if shared_flags {
            for index in 0..3 {
                let at = layout.semaphores + 32 * index + 8;
                file[at..at + 4].copy_from_slice(&128_i32.to_ne_bytes());
            }
        }
        exercise(&dir, "h", &file);
    }
}

proptest! {
    #[test]
    fn parser_never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600), len in any::<u64>()) {
        let _ = parse_metadata(&bytes, len);
    }

    #[test]
    fn parser_never_panics_on_mutated_metadata(
        edits in proptest::collection::vec((0..METADATA_SIZE, any::<u8>()), 1..8),
        len_delta in -64_i64..64,
    ) {
        let (_, mut file) = valid_file(&StreamSpec::new("p", DataType::U16, &[5, 3, 2]).keywords(3).circular(true));
        for (offset, byte) in edits {
            file[offset] = byte;
        }
        let len = (file.len() as u64).saturating_add_signed(len_delta);
        if let Ok((metadata, layout)) = parse_metadata(&file, len) {
            // Whatever it accepts is self-consistent.
            prop_assert_eq!(layout.total as u64, len);
            prop_assert!(layout.data + layout.data_len <= layout.total);
            prop_assert_eq!(layout.frame_len * layout.slices, layout.data_len);
            prop_assert_eq!(metadata.layout(), Ok(layout));
        }
    }

    #[test]
    fn every_valid_stream_parses_back(
        datatype in proptest::sample::select(DataType::ALL.to_vec()),
        dims in proptest::collection::vec(1_u32..20, 1..=3),
        semaphores in 0_u16..40,
        keywords in 0_u16..40,
        circular in any::<bool>(),
    ) {
        let circular = circular && dims.len() == 3;
        let spec = StreamSpec::new("v", datatype, &dims).semaphores(semaphores).keywords(keywords).circular(circular);
        let (metadata, file) = valid_file(&spec);
        let (parsed, layout) = parse_metadata(&file, file.len() as u64).unwrap();
        prop_assert_eq!(&parsed, &metadata);
        prop_assert_eq!(layout.circular, circular);
        prop_assert_eq!(parsed.dims(), &dims[..]);
    }
}
