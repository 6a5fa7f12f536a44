//! What the CLI tests share: the built `ipcmem` binary, unique names and keys, guards that
//! remove what a test made (also when it fails), holder processes, and runs as another user.
//!
//! Every object is real (a file of /dev/shm, a System V segment) and every process a real
//! `ipcmem`. Changes of uid happen only in a spawned child, between fork and exec.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ipcmem::{Id, Key, ShmId};

/// How long any process may run before the test gives up on it.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The uid and gid of the unprivileged user the permission tests run as.
pub const NOBODY: u32 = 65534;

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn next() -> u32 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// The path of the `ipcmem` binary under test.
pub fn bin() -> &'static std::path::Path {
    assert_cmd::cargo::cargo_bin!("ipcmem")
}

/// `ipcmem ARGS…`, ready to run and assert on, with a timeout.
pub fn ipcmem<I, S>(args: I) -> assert_cmd::Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut command = assert_cmd::Command::new(bin());
    command.args(args).timeout(TIMEOUT);
    command
}

/// `ipcmem ARGS…` run as uid and gid 65534.
pub fn ipcmem_as_nobody<I, S>(args: I) -> assert_cmd::Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut command = Command::new(bin());
    command.args(args);
    as_nobody(&mut command);
    let mut command = assert_cmd::Command::from_std(command);
    command.timeout(TIMEOUT);
    command
}

/// Makes `command` drop to uid and gid 65534 in the child, before it runs `ipcmem`.
pub fn as_nobody(command: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec and makes only the system calls
    // setgroups, setgid and setuid, which are async-signal-safe; it allocates nothing.
    unsafe {
        command.pre_exec(|| {
            let ok =
                libc::setgroups(0, std::ptr::null()) == 0 && libc::setgid(NOBODY) == 0 && libc::setuid(NOBODY) == 0;
            if ok {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

/// A POSIX name no other test or run uses: process id plus a counter.
pub fn unique_name(tag: &str) -> String {
    format!("/ipcmem-cli-{}-{}-{tag}", std::process::id(), next())
}

/// A System V key no other test uses, from the process id and a counter.
pub fn unique_key() -> Key {
    let pid = std::process::id() & 0x7_ffff;
    Key::from_raw(((0x3c << 24) ^ (pid << 5) ^ (next() & 0x1f)).cast_signed() | 0x4000_0000)
}

/// The `key:0x…` argument of `key`.
pub fn key_arg(key: Key) -> String {
    format!("key:{:#010x}", key.as_raw().cast_unsigned())
}

/// Removes every object it was given when dropped, also when the test panics.
#[derive(Default)]
pub struct Guard(Vec<Id>);

impl Guard {
    pub fn new() -> Guard {
        Guard::default()
    }

    /// Remembers `id` (a name, key or id) for removal and gives back its text.
    pub fn track(&mut self, id: impl Into<Id>) -> String {
        let id = id.into();
        let text = id.to_string();
        self.0.push(id);
        text
    }

    /// Remembers what `ipcmem create` printed (`/name` or `id:N`) and gives it back.
    pub fn track_printed(&mut self, printed: &str) -> String {
        let id: Id = printed.trim().parse().expect("create prints an object");
        self.track(id)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for id in self.0.drain(..) {
            let _ = ipcmem::shmrm(id);
        }
    }
}

/// Runs `ipcmem create ARGS…`, expects success, and tracks what it made.
pub fn create(guard: &mut Guard, args: &[&str]) -> String {
    let output = ipcmem(["create"].iter().chain(args)).output().expect("run ipcmem create");
    assert!(output.status.success(), "create {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    guard.track_printed(&String::from_utf8_lossy(&output.stdout))
}

/// The stdout of a successful `ipcmem ARGS…`.
pub fn stdout_of(args: &[&str]) -> String {
    let output = ipcmem(args).output().expect("run ipcmem");
    assert!(output.status.success(), "ipcmem {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// The parsed JSON that `ipcmem ARGS…` prints.
pub fn json_of(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&stdout_of(args)).expect("valid JSON")
}

/// A long-running `ipcmem` (`hold`, `create --hold`), killed when dropped.
pub struct Holder {
    child: Child,
    /// The first line it printed.
    pub line: String,
}

impl Holder {
    /// Starts `ipcmem ARGS…` and waits for its first line of output.
    pub fn start(args: &[&str]) -> Holder {
        Holder::start_command(Command::new(bin()).args(args))
    }

    /// Starts `ipcmem ARGS…` as uid 65534 and waits for its first line.
    pub fn start_as_nobody(args: &[&str]) -> Holder {
        let mut command = Command::new(bin());
        command.args(args);
        as_nobody(&mut command);
        Holder::start_command(&mut command)
    }

    fn start_command(command: &mut Command) -> Holder {
        let mut child =
            command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start ipcmem");
        let stdout = child.stdout.take().expect("piped stdout");
        let line = first_line(stdout);
        let mut holder = Holder { child, line: String::new() };
        let Some(line) = line else {
            let _ = holder.child.kill();
            let output = holder.child.wait_with_output_now();
            panic!("the holder printed no line in time; stderr: {output}");
        };
        holder.line = line;
        holder
    }

    /// The holder's process id.
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("a pid")
    }

    /// Sends `signal` and waits for the end; returns the exit code (`None` if killed by a
    /// signal) and stderr.
    pub fn stop(mut self, signal: i32) -> (Option<i32>, String) {
        // SAFETY: kill sends a signal to our own child, which has not been waited for.
        assert_eq!(unsafe { libc::kill(self.pid(), signal) }, 0, "kill the holder");
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the holder") {
                let stderr = self.child.wait_with_output_now();
                return (status.code(), stderr);
            }
            assert!(Instant::now() < deadline, "the holder did not end after signal {signal}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

trait WaitNow {
    fn wait_with_output_now(&mut self) -> String;
}

impl WaitNow for Child {
    /// Waits for the (already ended or killed) child and gives its stderr.
    fn wait_with_output_now(&mut self) -> String {
        let _ = self.wait();
        let mut stderr = String::new();
        if let Some(mut pipe) = self.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
        }
        stderr
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first line of `stdout`, waited for at most [`TIMEOUT`] (read in a thread, so that a
/// silent process cannot hang the test).
fn first_line(stdout: ChildStdout) -> Option<String> {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line);
        let _ = send.send(read.ok().filter(|n| *n > 0).map(|_| line.trim_end().to_owned()));
    });
    receive.recv_timeout(TIMEOUT).ok().flatten()
}

/// Whether /dev/shm has the object `name`.
pub fn posix_exists(name: &str) -> bool {
    std::fs::symlink_metadata(format!("/dev/shm{name}")).is_ok()
}

/// The fields of segment `id`'s line of /proc/sysvipc/shm, by column name.
pub fn proc_sysvipc(id: i32) -> Option<std::collections::HashMap<String, String>> {
    let table = std::fs::read_to_string("/proc/sysvipc/shm").ok()?;
    let mut lines = table.lines();
    let header: Vec<String> = lines.next()?.split_whitespace().map(str::to_owned).collect();
    lines
        .map(|line| header.iter().cloned().zip(line.split_whitespace().map(str::to_owned)).collect())
        .find(|fields: &std::collections::HashMap<String, String>| fields.get("shmid") == Some(&id.to_string()))
}

/// The segment id in `id:N`.
pub fn segment_id(object: &str) -> i32 {
    match object.parse::<Id>() {
        Ok(Id::Shm(id)) => id.as_raw(),
        other => panic!("not a segment id: {object} ({other:?})"),
    }
}

/// Whether segment `id` exists.
pub fn segment_exists(id: i32) -> bool {
    proc_sysvipc(id).is_some()
}

/// Waits until `condition` holds, at most [`TIMEOUT`]; returns whether it did.
pub fn wait_until(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + TIMEOUT;
    while !condition() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

/// An object made by the library as uid 65534 would, for tests that need another user's
/// object: created by `ipcmem create` run as that user.
pub fn create_as_nobody(guard: &mut Guard, args: &[&str]) -> String {
    let output = ipcmem_as_nobody(["create"].iter().chain(args)).output().expect("run ipcmem create");
    assert!(output.status.success(), "create {args:?} as nobody: {}", String::from_utf8_lossy(&output.stderr));
    guard.track_printed(&String::from_utf8_lossy(&output.stdout))
}

/// `ShmId` of `id:N` text.
pub fn shm_id(object: &str) -> ShmId {
    ShmId::from_raw(segment_id(object))
}
