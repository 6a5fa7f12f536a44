//! The bridge between real processes on one machine: `ipcmem stream publish` feeds a local
//! stream, `ipcmem-bridge publish` puts it on Zenoh, `ipcmem-bridge subscribe` writes it into
//! another local stream, and `ipcmem stream watch --check` reads that one.
//!
//! Loopback only: explicit `tcp/127.0.0.1:PORT` endpoints on free ports, multicast scouting
//! off. Every process is bounded in time (killed, and the test failed, past its deadline) and
//! every stream is removed by a guard, also when a test fails.

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The `ipcmem` command: built next to this test by `cargo test --workspace`; else built here,
/// in a target directory of its own (the running `cargo test` holds the lock of its own).
fn ipcmem() -> PathBuf {
    static BUILT: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    built
        .get_or_insert_with(|| {
            let exe = std::env::current_exe().expect("the test's path");
            let dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps/..");
            let path = dir.join("ipcmem");
            if path.exists() {
                return path;
            }
            let own = dir.join("ipcmem-zenoh-tests");
            let status = Command::new(env!("CARGO"))
                .args(["build", "-p", "ipcmem-cli", "--bin", "ipcmem", "--target-dir"])
                .arg(&own)
                .status()
                .expect("cargo runs");
            assert!(status.success(), "cannot build the ipcmem command");
            own.join("debug").join("ipcmem")
        })
        .clone()
}

fn bridge() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ipcmem-bridge"))
}

/// A port free now on the loopback.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).expect("a free port").port()
}

/// Unique names for this test's streams and key expressions.
fn unique(what: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!("ipcmem-zt-{}-{}-{what}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A process whose stderr is collected (for the test's assertions and its failure message),
/// killed when dropped.
struct Proc {
    name: &'static str,
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Proc {
    fn spawn(name: &'static str, command: &mut Command) -> Proc {
        let mut child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect(name);
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().expect("piped stderr");
        let collected = Arc::clone(&stderr);
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut text = collected.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                text.push_str(&line);
                text.push('\n');
            }
        });
        Proc { name, child, stderr }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Waits until stderr holds `text`; fails the test past `timeout`.
    fn wait_for(&self, text: &str, timeout: Duration) {
        let start = Instant::now();
        while !self.stderr().contains(text) {
            assert!(
                start.elapsed() < timeout,
                "{} did not say {text:?} within {timeout:?}:\n{}",
                self.name,
                self.stderr()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid");
        // SAFETY: kill(2) with a pid of our own child, which we have not reaped yet.
        unsafe { libc::kill(pid, signal) };
    }

    /// Waits for the end, with its stdout; fails the test past `timeout`.
    fn finish(mut self, timeout: Duration) -> (ExitStatus, String, String) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                let mut stdout = String::new();
                if let Some(mut out) = self.child.stdout.take() {
                    std::io::Read::read_to_string(&mut out, &mut stdout).expect("stdout");
                }
                thread::sleep(Duration::from_millis(20)); // the stderr thread's last lines
                return (status, stdout, self.stderr());
            }
            assert!(start.elapsed() < timeout, "{} did not end within {timeout:?}:\n{}", self.name, self.stderr());
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops it with SIGTERM and checks that it stopped cleanly (status 0).
    fn stop(self) -> String {
        self.stop_with(libc::SIGTERM)
    }

    /// Stops it with `signal` and checks that it stopped cleanly (status 0).
    fn stop_with(self, signal: libc::c_int) -> String {
        self.signal(signal);
        let name = self.name;
        let (status, _, stderr) = self.finish(Duration::from_secs(10));
        assert!(status.success(), "{name} did not stop cleanly on signal {signal} ({status}):\n{stderr}");
        stderr
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Removes the test's streams at the end, also when the test fails.
struct Streams(Vec<String>);

impl Streams {
    fn new(names: &[&str]) -> Streams {
        Streams(names.iter().map(|name| (*name).to_owned()).collect())
    }
}

impl Drop for Streams {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = fs::remove_file(Path::new("/dev/shm").join(name.trim_start_matches('/')));
        }
    }
}

fn run(command: &mut Command) -> Output {
    let output = command.output().expect("the command runs");
    assert!(output.status.success(), "{command:?} failed:\n{}", String::from_utf8_lossy(&output.stderr));
    output
}

/// One side of the bridge, on the loopback, multicast off.
fn bridge_publish(source: &str, key: &str, endpoint: (&str, u16)) -> Proc {
    Proc::spawn(
        "ipcmem-bridge publish",
        bridge()
            .args(["publish", source, "--key", key, "--no-multicast"])
            .arg(format!("--{}", endpoint.0))
            .arg(format!("tcp/127.0.0.1:{}", endpoint.1)),
    )
}

fn bridge_subscribe(key: &str, local: &str, endpoint: (&str, u16)) -> Proc {
    Proc::spawn(
        "ipcmem-bridge subscribe",
        bridge()
            .args(["subscribe", key, local, "--no-multicast", "--slots", "16"])
            .arg(format!("--{}", endpoint.0))
            .arg(format!("tcp/127.0.0.1:{}", endpoint.1)),
    )
}

/// `ipcmem stream watch OBJ --json --check` and the given options.
fn watch(local: &str, options: &[&str]) -> Proc {
    Proc::spawn(
        "ipcmem stream watch",
        Command::new(ipcmem()).args(["stream", "watch", local, "--json", "--check"]).args(options),
    )
}

/// What `watch --json` printed: the serials of the frames, and the summary's frames and lost.
struct Watched {
    serials: Vec<u64>,
    frames: u64,
    lost: u64,
}

fn parse_watch(stdout: &str) -> Watched {
    let number = |line: &str, field: &str| -> Option<u64> {
        let start = line.find(&format!("\"{field}\":"))? + field.len() + 3;
        line[start..].split([',', '}']).next()?.trim().parse().ok()
    };
    let mut watched = Watched { serials: Vec::new(), frames: 0, lost: 0 };
    for line in stdout.lines() {
        if line.contains("\"rate_hz\"") {
            watched.frames = number(line, "frames").expect("frames in the summary");
            watched.lost = number(line, "lost").expect("lost in the summary");
        } else if let Some(serial) = number(line, "serial") {
            watched.serials.push(serial);
        }
    }
    watched
}

/// Every frame exact (`--check`), serials rising, and received + lost = published: the
/// watch's first frame counts the frames before it as lost, so frames + lost is the last
/// serial, which is the count published.
#[test]
fn frames_arrive_exact_and_every_loss_is_counted() {
    let (source, local, key) = (format!("/{}", unique("src")), format!("/{}", unique("dst")), unique("key"));
    let _streams = Streams::new(&[&source, &local]);
    run(Command::new(ipcmem()).args(["stream", "create", &source, "u16", "32x16", "--slots", "32"]));
    // Made before, so that the watch reads it from its first frame and the subscriber takes
    // it over (it matches in type and dims).
    run(Command::new(ipcmem()).args(["stream", "create", &local, "u16", "32x16", "--slots", "16"]));
    let port = free_port();
    let subscriber = bridge_subscribe(&key, &local, ("listen", port));
    let publisher = bridge_publish(&source, &key, ("connect", port));
    publisher.wait_for("subscribers match", Duration::from_secs(20));
    let watcher = watch(&local, &["--timeout", "30"]);
    let sent = 600;
    run(Command::new(ipcmem()).args(["stream", "publish", &source, "--count", &sent.to_string(), "--rate", "300"]));
    // The source's writer closed: the publisher withdraws its token, the subscriber closes
    // its writer, and the watch ends saying so, after its summary.
    let (status, stdout, stderr) = watcher.finish(Duration::from_secs(30));
    assert!(!status.success() && stderr.contains("writer is gone"), "watch: {status}\n{stderr}");
    let seen = parse_watch(&stdout);
    assert!(seen.serials.windows(2).all(|pair| pair[0] < pair[1]), "serials rise");
    assert_eq!(seen.frames, seen.serials.len() as u64);
    assert_eq!(seen.serials.last().copied(), Some(sent), "the last frame arrived");
    assert_eq!(seen.frames + seen.lost, sent, "received + lost = published");
    let subscriber_log = subscriber.stop();
    assert!(subscriber_log.contains("attached to the existing stream"), "{subscriber_log}");
    assert!(subscriber_log.contains("remote publisher gone"), "{subscriber_log}");
    let publisher_log = publisher.stop();
    assert!(publisher_log.contains("frames/s"), "a status line: {publisher_log}");
}

/// At full rate the bridge may lose frames (the source ring has 4 slots only), but never a
/// wrong one, and counts every loss.
#[test]
fn at_full_rate_losses_are_counted_and_frames_exact() {
    let (source, local, key) = (format!("/{}", unique("src")), format!("/{}", unique("dst")), unique("key"));
    let _streams = Streams::new(&[&source, &local]);
    run(Command::new(ipcmem()).args(["stream", "create", &source, "f32", "64x64", "--slots", "4"]));
    run(Command::new(ipcmem()).args(["stream", "create", &local, "f32", "64x64", "--slots", "16"]));
    let port = free_port();
    let publisher = bridge_publish(&source, &key, ("listen", port));
    let subscriber = bridge_subscribe(&key, &local, ("connect", port));
    publisher.wait_for("subscribers match", Duration::from_secs(20));
    let watcher = watch(&local, &["--timeout", "30"]);
    run(Command::new(ipcmem()).args(["stream", "publish", &source, "--count", "1000"]));
    let (status, stdout, stderr) = watcher.finish(Duration::from_secs(120));
    assert!(!status.success() && stderr.contains("writer is gone"), "watch: {status}\n{stderr}");
    let seen = parse_watch(&stdout);
    assert_eq!(seen.serials.last().copied(), Some(1000), "the last frame arrived (repeated reliably)");
    assert_eq!(seen.frames + seen.lost, 1000, "received + lost = published");
    drop(subscriber.stop());
    drop(publisher.stop());
}

/// A subscriber killed and started again takes its stream over, and frames flow again.
#[test]
fn a_restarted_subscriber_gets_frames_again() {
    let (source, local, key) = (format!("/{}", unique("src")), format!("/{}", unique("dst")), unique("key"));
    let _streams = Streams::new(&[&source, &local]);
    let port = free_port();
    let publisher = bridge_publish(&source, &key, ("listen", port));
    let camera = Proc::spawn(
        "ipcmem stream publish",
        Command::new(ipcmem())
            .args(["stream", "publish", &source, "--create", "i32", "8x8", "--slots", "8", "--rate", "200"]),
    );
    let first = bridge_subscribe(&key, &local, ("connect", port));
    let (status, _, stderr) = watch(&local, &["--count", "20", "--timeout", "20"]).finish(Duration::from_secs(30));
    assert!(status.success(), "first watch: {stderr}");
    first.signal(libc::SIGKILL);
    drop(first);
    let second = bridge_subscribe(&key, &local, ("connect", port));
    // Until it takes the stream over, the stream's writer is the killed one: a reader would
    // rightly hear that it is gone.
    second.wait_for("local stream", Duration::from_secs(20));
    let (status, _, stderr) = watch(&local, &["--count", "20", "--timeout", "20"]).finish(Duration::from_secs(30));
    assert!(status.success(), "watch after the restart: {stderr}");
    let log = second.stop();
    assert!(log.contains("local stream"), "{log}");
    drop(camera.stop());
    drop(publisher.stop());
}

/// A publisher killed: the subscriber's local stream says its writer is gone within 1 s.
#[test]
fn a_killed_publisher_is_a_writer_gone_within_a_second() {
    let (source, local, key) = (format!("/{}", unique("src")), format!("/{}", unique("dst")), unique("key"));
    let _streams = Streams::new(&[&source, &local]);
    let port = free_port();
    let subscriber = bridge_subscribe(&key, &local, ("listen", port));
    let publisher = bridge_publish(&source, &key, ("connect", port));
    let camera = Proc::spawn(
        "ipcmem stream publish",
        Command::new(ipcmem())
            .args(["stream", "publish", &source, "--create", "u8", "64", "--slots", "8", "--rate", "200"]),
    );
    let watcher = watch(&local, &["--timeout", "20"]);
    subscriber.wait_for("remote publisher alive", Duration::from_secs(20));
    thread::sleep(Duration::from_millis(300)); // frames flow
    publisher.signal(libc::SIGKILL);
    let killed = Instant::now();
    let (status, _, stderr) = watcher.finish(Duration::from_secs(10));
    let noticed = killed.elapsed();
    assert!(!status.success() && stderr.contains("writer is gone"), "watch: {status}\n{stderr}");
    eprintln!("the local stream said writer gone {noticed:?} after the publisher was killed");
    assert!(noticed < Duration::from_secs(1), "writer gone after {noticed:?}");
    drop(camera.stop());
    drop(subscriber.stop());
}

/// The remote stream re-created with another type and dims: the subscriber re-creates its
/// local stream to match, and frames of the new kind arrive exact.
#[test]
fn a_change_of_type_and_dims_recreates_the_local_stream() {
    let (source, local, key) = (format!("/{}", unique("src")), format!("/{}", unique("dst")), unique("key"));
    let _streams = Streams::new(&[&source, &local]);
    let port = free_port();
    let subscriber = bridge_subscribe(&key, &local, ("listen", port));
    run(Command::new(ipcmem()).args(["stream", "create", &source, "u16", "16x16", "--slots", "8"]));
    let publisher = bridge_publish(&source, &key, ("connect", port));
    publisher.wait_for("subscribers match", Duration::from_secs(20));
    run(Command::new(ipcmem()).args(["stream", "publish", &source, "--count", "50", "--rate", "200"]));
    subscriber.wait_for("local stream created: u16 16x16", Duration::from_secs(20));
    // Re-made with other frames: the bridge's reader follows the name to the new stream.
    fs::remove_file(Path::new("/dev/shm").join(source.trim_start_matches('/'))).expect("remove the source");
    let camera = Proc::spawn(
        "ipcmem stream publish",
        Command::new(ipcmem())
            .args(["stream", "publish", &source, "--create", "f64", "4x3x2", "--slots", "8", "--rate", "200"]),
    );
    // "re-created" if the old stream is still held, "created" if it went with its writer.
    subscriber.wait_for("f64 4x3x2", Duration::from_secs(20));
    let (status, _, stderr) = watch(&local, &["--count", "20", "--timeout", "20"]).finish(Duration::from_secs(30));
    assert!(status.success(), "watch of the re-created stream: {stderr}");
    let info = run(Command::new(ipcmem()).args(["stream", "info", &local, "--json"]));
    let info: String = String::from_utf8_lossy(&info.stdout).split_whitespace().collect();
    assert!(info.contains(r#""type":"f64""#) && info.contains(r#""frame_dims":[4,3,2]"#), "{info}");
    drop(camera.stop());
    drop(publisher.stop());
    drop(subscriber.stop());
}

/// Hostile messages on the key expression are refused and counted; the bridge goes on.
#[test]
fn a_hostile_message_is_refused_and_the_bridge_goes_on() {
    use zenoh::Wait;
    let (local, key) = (format!("/{}", unique("dst")), unique("key"));
    let _streams = Streams::new(&[&local]);
    let port = free_port();
    let subscriber = bridge_subscribe(&key, &local, ("listen", port));
    let options = ipcmem_zenoh::SessionOptions {
        connect: vec![format!("tcp/127.0.0.1:{port}")],
        multicast: false,
        ..ipcmem_zenoh::SessionOptions::default()
    };
    let session = options.open().expect("a session");
    let publisher = session.declare_publisher(key.clone()).wait().expect("a publisher");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !publisher.matching_status().wait().expect("matching status").matching() {
        assert!(Instant::now() < deadline, "the subscriber never matched");
        thread::sleep(Duration::from_millis(20));
    }
    publisher.put(b"IPZM garbage".to_vec()).wait().expect("put");
    let header = ipcmem_zenoh::message::FrameHeader {
        serial: 5,
        acquired_ns: 1,
        published_ns: 2,
        publisher_lost: 0,
        element: ipcmem::array::ElementType::U8,
        dims: vec![4],
    };
    publisher.put(ipcmem_zenoh::message::encode(&header, &[5; 4])).wait().expect("put");
    subscriber.wait_for("message refused", Duration::from_secs(10));
    subscriber.wait_for("local stream created: u8 4", Duration::from_secs(10));
    session.close().wait().expect("close");
    let log = subscriber.stop_with(libc::SIGINT);
    assert!(log.contains("shorter than the 48-byte header"), "{log}");
}

/// Removes a directory of the test (its `MILK_SHM_DIR`) at the end, also when the test fails.
struct RemoveDir(PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// An ImageStreamIO stream as the source (`publish isio:NAME`, in a `MILK_SHM_DIR` of the
/// test's own): its frames arrive exact, with `cnt0` as their serial, and every loss counted.
/// ImageStreamIO has no writer liveness, so the watch is stopped by a signal at the end.
#[test]
fn an_imagestreamio_stream_is_bridged() {
    let dir = PathBuf::from("/dev/shm").join(unique("milk"));
    fs::create_dir(&dir).expect("a MILK_SHM_DIR of the test's own");
    let _dir = RemoveDir(dir.clone());
    let (source, local, key) = (format!("isio:{}", unique("cam")), format!("/{}", unique("dst")), unique("key"));
    let _streams = Streams::new(&[&local]);
    let publish = |count: &str| {
        run(Command::new(ipcmem())
            .env("MILK_SHM_DIR", &dir)
            .args(["stream", "publish", &source])
            .args(["--create", "u16", "32x16", "--slots", "1", "--count", count, "--rate", "300"]));
    };
    // The stream exists (cnt0 = 1) before the bridge claims one of its semaphores.
    publish("1");
    run(Command::new(ipcmem()).args(["stream", "create", &local, "u16", "32x16", "--slots", "16"]));
    let port = free_port();
    let subscriber = bridge_subscribe(&key, &local, ("listen", port));
    let publisher = Proc::spawn(
        "ipcmem-bridge publish",
        bridge()
            .env("MILK_SHM_DIR", &dir)
            .args(["publish", &source, "--key", &key, "--no-multicast", "--connect"])
            .arg(format!("tcp/127.0.0.1:{port}")),
    );
    publisher.wait_for("subscribers match", Duration::from_secs(20));
    let watcher = watch(&local, &["--timeout", "30"]);
    let sent = 300;
    publish(&sent.to_string());
    thread::sleep(Duration::from_secs(3));
    watcher.signal(libc::SIGTERM);
    let (status, stdout, stderr) = watcher.finish(Duration::from_secs(10));
    assert!(status.success(), "watch --check: {status}\n{stderr}");
    let seen = parse_watch(&stdout);
    assert!(seen.serials.windows(2).all(|pair| pair[0] < pair[1]), "serials rise");
    assert_eq!(seen.serials.last().copied(), Some(sent + 1), "the last frame arrived (cnt0 counts the first one)");
    assert_eq!(seen.frames + seen.lost, sent + 1, "received + lost = written");
    subscriber.stop();
    publisher.stop();
}
