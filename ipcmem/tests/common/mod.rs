//! What every integration test shares: unique names and keys, guards that remove what a test
//! made (also when it fails), and second processes.
//!
//! A second process is this very test binary, run again with `--exact child_entry`: the test
//! file's `child_entry` test reads `IPCMEM_CHILD` and runs the scenario it names. Process-wide
//! state (uid, umask, signals) is changed only there, never in the test's own process.
#![allow(dead_code)]

use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ipcmem::{Id, Key};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The environment variable that names a child's scenario.
pub const CHILD_VAR: &str = "IPCMEM_CHILD";
/// The environment variable that carries a child's arguments, separated by `\x1f`.
pub const ARGS_VAR: &str = "IPCMEM_CHILD_ARGS";
/// How long any child may run before the test kills it and fails.
pub const CHILD_TIMEOUT: Duration = Duration::from_secs(30);

fn next() -> u32 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// A POSIX name no other test or run uses: process id plus a counter.
pub fn unique_name(tag: &str) -> String {
    format!("/ipcmem-test-{}-{}-{tag}", std::process::id(), next())
}

/// A System V key no other test uses: built from the process id and a counter.
pub fn unique_key() -> Key {
    let pid = std::process::id() & 0x7_ffff;
    Key::from_raw(((0x2a << 24) ^ (pid << 5) ^ (next() & 0x1f)).cast_signed() | 0x4000_0000)
}

/// Removes every object it was given when dropped, also when the test panics.
#[derive(Default)]
pub struct Guard(Vec<Id>);

impl Guard {
    pub fn new() -> Guard {
        Guard::default()
    }

    /// Remembers `id` for removal and gives it back.
    pub fn track<I: Into<Id>>(&mut self, id: I) -> Id {
        let id = id.into();
        self.0.push(id.clone());
        id
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for id in self.0.drain(..) {
            let _ = ipcmem::shmrm(id);
        }
    }
}

/// A command that runs `scenario` of this test binary in a new process.
pub fn child(scenario: &str, args: &[&str]) -> Command {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut command = Command::new(exe);
    command
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(CHILD_VAR, scenario)
        .env(ARGS_VAR, args.join("\x1f"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs `scenario` to its end (killing it after [`CHILD_TIMEOUT`]) and returns what it did.
pub fn run_child(scenario: &str, args: &[&str]) -> ChildRun {
    let started = child(scenario, args).spawn().expect("spawn a child");
    wait_child(started)
}

/// Waits for `child`, killing it after [`CHILD_TIMEOUT`].
pub fn wait_child(mut child: Child) -> ChildRun {
    let deadline = Instant::now() + CHILD_TIMEOUT;
    while child.try_wait().expect("wait for a child").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    ChildRun::from(child.wait_with_output().expect("a child's output"))
}

/// What a child did: its exit status and the lines it reported with [`report`].
#[derive(Debug)]
pub struct ChildRun {
    pub status: ExitStatus,
    pub reports: Vec<String>,
    pub stderr: String,
}

impl From<Output> for ChildRun {
    fn from(output: Output) -> ChildRun {
        let stdout = String::from_utf8_lossy(&output.stdout);
        let reports = stdout.lines().filter_map(|line| line.strip_prefix("@@ ")).map(str::to_owned).collect();
        ChildRun { status: output.status, reports, stderr: String::from_utf8_lossy(&output.stderr).into_owned() }
    }
}

impl ChildRun {
    /// The signal that killed the child, if one did.
    pub fn signal(&self) -> Option<i32> {
        self.status.signal()
    }

    /// The one report of the child; panics with the child's stderr if there is not exactly one.
    pub fn report(&self) -> &str {
        assert_eq!(self.reports.len(), 1, "expected one report from the child, got {self:?}");
        &self.reports[0]
    }
}

/// Reports a line to the parent (read by [`ChildRun::reports`]).
pub fn report(line: impl std::fmt::Display) {
    // A fresh line: the test harness may have printed "test child_entry ... " before.
    println!("\n@@ {line}");
}

/// The scenario this process must run as a child, with its arguments; `None` in the parent.
pub fn scenario() -> Option<(String, Vec<String>)> {
    let name = std::env::var(CHILD_VAR).ok()?;
    let args = std::env::var(ARGS_VAR).unwrap_or_default();
    let args = if args.is_empty() { Vec::new() } else { args.split('\x1f').map(str::to_owned).collect() };
    Some((name, args))
}

/// Ends a child's run with `code`, before the test harness prints anything more.
pub fn exit(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    std::process::exit(code)
}

/// Drops this (child) process to uid and gid 65534 ("nobody"), so that permissions apply.
pub fn become_nobody() {
    // SAFETY: plain system calls on this process's credentials; the child runs one thread
    // (--test-threads=1, and the scenario starts none).
    let ok =
        unsafe { libc::setgroups(0, std::ptr::null()) == 0 && libc::setgid(65534) == 0 && libc::setuid(65534) == 0 };
    assert!(ok, "dropping privileges failed: {}", std::io::Error::last_os_error());
}

/// Sets the umask of this (child) process.
pub fn set_umask(mask: u32) {
    // SAFETY: umask only changes this process's file creation mask.
    unsafe { libc::umask(mask) };
}

/// Waits until `condition` holds, for at most `timeout`; returns whether it did.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Whether `/dev/shm` has the object `name`.
pub fn posix_exists(name: &str) -> bool {
    std::path::Path::new(&format!("/dev/shm{name}")).exists()
}

/// The line of /proc/sysvipc/shm of segment `id`, split into fields, if it exists.
pub fn proc_sysvipc(id: i32) -> Option<Vec<String>> {
    let table = std::fs::read_to_string("/proc/sysvipc/shm").ok()?;
    table
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .find(|fields| fields.get(1).is_some_and(|field| field == &id.to_string()))
}
