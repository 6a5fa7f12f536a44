//! `ipcmem-bench` and `ipcmem-bench --pingpong` end to end in their quick mode: they succeed, print every
//! table with every row measured, and leave nothing behind (no object in /dev/shm, no System V
//! segment, no second process), also when interrupted. No figure is checked: timings depend on
//! the machine.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a run may take before the test gives up on it.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The binary under test.
fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ipcmem-bench")
}

/// Whether `condition` became true within [`TIMEOUT`].
fn wait_until(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + TIMEOUT;
    while !condition() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

/// What a finished `ipcmem-bench` run gave.
struct Run {
    pid: u32,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Starts `ipcmem-bench ARGS…` with stdout and stderr piped.
fn start(args: &[&str]) -> Child {
    Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ipcmem-bench")
}

/// Waits for `child` (at most [`TIMEOUT`], then kills it and fails) and collects its output.
/// `stderr_lines` receives stderr line by line while it runs, if given.
fn finish(mut child: Child, stderr_lines: Option<mpsc::Sender<String>>) -> Run {
    let pid = child.id();
    let mut stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(sender) = &stderr_lines {
                let _ = sender.send(line.clone());
            }
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for ipcmem-bench") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ipcmem-bench did not finish within {TIMEOUT:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let stdout = out.join().expect("stdout reader");
    let stderr = err.join().expect("stderr reader");
    Run { pid, code: status.code(), stdout, stderr }
}

/// Runs `ipcmem-bench ARGS…` to the end.
fn run(args: &[&str]) -> Run {
    finish(start(args), None)
}

/// Fails if the run with process id `pid` left an object, a segment or a second process.
fn assert_nothing_left(pid: u32) {
    let prefix = format!("ipcmem-bench-{pid}-");
    let left: Vec<String> = std::fs::read_dir("/dev/shm")
        .expect("read /dev/shm")
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "left in /dev/shm: {left:?}");
    let table = std::fs::read_to_string("/proc/sysvipc/shm").expect("read /proc/sysvipc/shm");
    let segments: Vec<&str> =
        table.lines().skip(1).filter(|line| line.split_whitespace().nth(4) == Some(&pid.to_string())).collect();
    assert!(segments.is_empty(), "segments left: {segments:?}");
    // The second processes of --pingpong name the parent's objects on their command line; the
    // parent kills them, and they die with it anyway: wait a little for the kernel to reap them.
    let alive = || {
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| std::fs::read(entry.path().join("cmdline")).ok())
            .filter(|cmdline| String::from_utf8_lossy(cmdline).contains(&prefix))
            .count()
    };
    assert!(wait_until(|| alive() == 0), "second processes left: {}", alive());
}

/// The data rows of every Markdown table in `text`, as cells.
fn rows(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut in_table = false;
    for line in text.lines() {
        if !line.starts_with('|') {
            in_table = false;
            continue;
        }
        let cells: Vec<String> = line.trim_matches('|').split('|').map(|cell| cell.trim().to_owned()).collect();
        if cells.iter().all(|cell| cell.chars().all(|c| c == '-')) {
            in_table = true; // the rule under the header: data rows follow
            continue;
        }
        if in_table {
            rows.push(cells);
        }
    }
    rows
}

/// Whether `cell` is a measured time: a number and a unit.
fn is_time(cell: &str) -> bool {
    let Some((number, unit)) = cell.split_once(' ') else { return false };
    number.parse::<f64>().is_ok_and(f64::is_finite) && ["ns", "µs", "ms", "s"].contains(&unit)
}

/// Checks that `text` has a row containing each of `expected`, with a measured median.
fn assert_rows(text: &str, expected: &[&str]) {
    let rows = rows(text);
    assert_eq!(rows.len(), expected.len(), "the tables have {} rows, not {}:\n{text}", rows.len(), expected.len());
    for wanted in expected {
        let row = rows.iter().find(|row| row.join(" | ").contains(wanted));
        let row = row.unwrap_or_else(|| panic!("no row {wanted:?}:\n{text}"));
        assert!(row.iter().any(|cell| is_time(cell)), "row {wanted:?} has no measured time: {row:?}");
        assert!(!row.iter().any(|cell| cell == "—" || cell.contains("NaN") || cell.contains("inf")), "{row:?}");
    }
}

#[test]
fn bench_quick_prints_every_table_and_leaves_nothing() {
    let run = run(&["--quick"]);
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    for title in [
        "## Lifecycle of a 4 KiB object",
        "## Time until a fresh object is fully usable",
        "## Open of an existing object",
        "## Copy in and out: safe copy against memcpy",
    ] {
        assert!(run.stdout.contains(title), "no {title:?}:\n{}", run.stdout);
    }
    assert_rows(
        &run.stdout,
        &[
            // lifecycle
            "raw: shm_open, ftruncate, mmap, close",
            "POSIX | ipcmem, non-volatile",
            "POSIX | ipcmem, volatile",
            "shared_memory 0.12: create",
            "raw: shmget, shmat",
            "System V | ipcmem, non-volatile",
            "System V | ipcmem, volatile",
            // ready
            "first touch: shm_open",
            "mmap(MAP_POPULATE)",
            "POSIX | single thread: madvise(MADV_POPULATE_WRITE)",
            "POSIX | ipcmem: create with prefault(true)",
            "first touch: shmget",
            "System V | single thread: madvise(MADV_POPULATE_WRITE)",
            "System V | ipcmem: create with prefault(true)",
            // open
            "raw: shm_open, fstat, mmap, close",
            "ipcmem: open (a non-volatile object)",
            "ipcmem: open (a volatile object",
            "shared_memory 0.12: open",
            "raw: shmget(key), shmctl(IPC_STAT), shmat",
            "ipcmem: open(key)",
            // copy: 64 B to --size (4 MiB with --quick), each way
            "64 B | in: write_at",
            "64 B | out: read_at",
            "4 KiB | in: write_at",
            "4 KiB | out: read_at",
            "256 KiB | in: write_at",
            "256 KiB | out: read_at",
            "1 MiB | in: write_at",
            "1 MiB | out: read_at",
            "4 MiB | in: write_at",
            "4 MiB | out: read_at",
        ],
    );
    assert!(run.stdout.contains("prefault is"), "the speed-ups of prefault:\n{}", run.stdout);
    assert_nothing_left(run.pid);
}

#[test]
fn bench_pingpong_quick_prints_every_mechanism_and_leaves_nothing() {
    let run = run(&["--pingpong", "--quick"]);
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert!(run.stdout.contains("## Round trip between two processes"), "{}", run.stdout);
    assert_rows(
        &run.stdout,
        &[
            "busy-wait on a shared word, pause at each check",
            "busy-wait on a shared word, no pause",
            "busy-wait on a shared word, no pause, pinned",
            "Event, spinning",
            "Event, parking at once",
            "anonymous semaphores",
            "robust mutex + condition variable",
            "pipe",
            "Unix socket",
        ],
    );
    assert!(run.stdout.contains("Event spinning / the floor:"), "{}", run.stdout);
    assert_nothing_left(run.pid);
}

#[test]
fn bench_isio_quick_prints_both_tables_and_leaves_nothing() {
    let run = run(&["--isio", "--quick"]);
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert!(run.stdout.contains("## ImageStreamIO frames: write and read against memcpy"), "{}", run.stdout);
    assert!(run.stdout.contains("## ImageStreamIO: from a post to the waiting reader"), "{}", run.stdout);
    assert_rows(
        &run.stdout,
        &["write: write_frame", "read: read_frame", "isio: write_frame", "next_into (default spin)", "parks at once"],
    );
    assert_nothing_left(run.pid);
}

#[test]
fn bench_stream_quick_prints_every_frame_size_and_leaves_nothing() {
    let run = run(&["--stream", "--quick"]);
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert!(run.stdout.contains("## Frame streams: publish, read, latency"), "{}", run.stdout);
    assert_rows(&run.stdout, &["64 KiB", "1 MiB", "16 MiB"]);
    assert!(run.stdout.contains("Frames the latency reader lost"), "{}", run.stdout);
    assert_nothing_left(run.pid);
}

/// Starts a run far too long to finish, interrupts it with `signal` once it has started
/// measuring, and checks that it stops at once, says so, and leaves nothing.
fn interrupted(args: &[&str], signal: i32) {
    let child = start(args);
    let pid = i32::try_from(child.id()).expect("a pid");
    let (send, receive) = mpsc::channel();
    let waiter = std::thread::spawn(move || finish(child, Some(send)));
    let line = receive.recv_timeout(TIMEOUT).expect("a progress line on stderr");
    assert!(line.starts_with("ipcmem-bench: "), "{line}");
    // Let it make and remove objects (or start a second process) for a moment.
    std::thread::sleep(std::time::Duration::from_millis(300));
    // SAFETY: kill sends a signal to our own child, which has not been reaped (the waiter
    // reaps it only once it has ended).
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "signal the bench");
    let run = waiter.join().expect("the waiting thread");
    assert_eq!(run.code, Some(1), "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    assert!(run.stderr.contains("ipcmem-bench: interrupted"), "{}", run.stderr);
    assert_nothing_left(run.pid);
}

#[test]
fn an_interrupted_bench_removes_what_it_made() {
    interrupted(&["--quick", "--iterations", "1000000"], libc::SIGINT);
    interrupted(&["--quick", "--reps", "1000000", "--iterations", "2"], libc::SIGTERM);
}

#[test]
fn an_interrupted_pingpong_ends_its_second_process() {
    interrupted(&["--pingpong", "--iterations", "10000000"], libc::SIGINT);
    interrupted(&["--isio", "--iterations", "10000000"], libc::SIGTERM);
}

#[test]
fn bench_help_shows_an_example_and_bad_options_are_usage_errors() {
    let help = run(&["--help"]);
    assert_eq!(help.code, Some(0), "{}", help.stderr);
    assert!(help.stdout.contains("Examples:") && help.stdout.contains("ipcmem-bench -- --pingpong"), "{}", help.stdout);
    for flag in ["--pingpong", "--copy", "--lifecycle", "--ready", "--open"] {
        assert!(help.stdout.contains(flag), "no {flag} in the help: {}", help.stdout);
    }
    for bad in [&["--reps", "0"][..], &["--size", "0"], &["--iterations", "x"], &["--no-such-section"]] {
        assert_eq!(run(bad).code, Some(2), "{bad:?}");
    }
}

#[test]
fn a_size_beyond_the_free_space_is_refused_before_anything_is_made() {
    let run = run(&["--size", "1000000GiB"]);
    assert_eq!(run.code, Some(1), "stdout: {}", run.stdout);
    assert!(run.stderr.contains("needs that much free in /dev/shm"), "{}", run.stderr);
    assert!(run.stderr.contains("choose a smaller --size"), "{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    assert!(!run.stdout.contains("##"), "nothing measured: {}", run.stdout);
    assert_nothing_left(run.pid);
}

/// `--zenoh --quick` (cargo feature `zenoh`): both paths of every case measured, nothing left.
#[cfg(feature = "zenoh")]
#[test]
fn bench_zenoh_quick_measures_both_paths_and_leaves_nothing() {
    let run = run(&["--zenoh", "--quick"]);
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert!(run.stdout.contains("## Streams over Zenoh (loopback)"), "{}", run.stdout);
    let rows = rows(&run.stdout);
    assert_eq!(rows.len(), 8, "2 sizes x 2 rates x 2 paths:\n{}", run.stdout);
    for size in ["64 KiB", "1 MiB"] {
        for rate in ["full", "1000 Hz"] {
            for path in ["local stream", "Zenoh, loopback TCP"] {
                let wanted = format!("{size} | {rate} | {path}");
                let row = rows.iter().find(|row| row.join(" | ").contains(&wanted));
                let row = row.unwrap_or_else(|| panic!("no row {wanted:?}:\n{}", run.stdout));
                assert!(row.iter().any(|cell| is_time(cell)), "{row:?}");
            }
        }
    }
    assert_nothing_left(run.pid);
}
