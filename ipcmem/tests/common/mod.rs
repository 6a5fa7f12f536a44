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

pub mod huge_pool;

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
    // 18 bits of the process id, 12 of the counter: 4096 keys a test process.
    let pid = std::process::id() & 0x3_ffff;
    Key::from_raw((0x4000_0000 | (pid << 12) | (next() & 0xfff)).cast_signed())
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

/// A field of the mapping that starts at `ptr`, from `/proc/self/smaps`.
pub fn smaps_field(ptr: *const u8, field: &str) -> String {
    let smaps = std::fs::read_to_string("/proc/self/smaps").expect("read /proc/self/smaps");
    let header = format!("{:x}-", ptr as usize);
    let mut lines = smaps.lines().skip_while(|line| !line.starts_with(&header));
    assert!(lines.next().is_some(), "no mapping at {ptr:?} in /proc/self/smaps");
    let prefix = format!("{field}:");
    lines
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {field} for the mapping at {ptr:?}"))
        .trim()
        .to_owned()
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

/// A child that runs alongside the test: its reports arrive while it runs
/// ([`next_report`](Held::next_report)), it gets lines on its stdin ([`send`](Held::send)), and it
/// runs until released (stdin closed, see [`wait_for_release`]) or killed. Dropped, it is killed,
/// so that no child outlives a failed test.
pub struct Held {
    child: Option<Child>,
    stdin: Option<std::process::ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
    readers: Vec<std::thread::JoinHandle<String>>,
}

/// Starts `scenario` as a [`Held`] child.
pub fn spawn_held(scenario: &str, args: &[&str]) -> Held {
    use std::io::{BufRead, Read};
    let mut started = child(scenario, args).stdin(Stdio::piped()).spawn().expect("spawn a child");
    let stdout = started.stdout.take().expect("the child's stdout");
    let mut stderr = started.stderr.take().expect("the child's stderr");
    let (sender, lines) = std::sync::mpsc::channel();
    // Reader threads, so that the child never blocks on a full pipe and reports arrive at once.
    let stdout = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(report) = line.strip_prefix("@@ ") {
                let _ = sender.send(report.to_owned());
            }
        }
        String::new()
    });
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let stdin = started.stdin.take();
    Held { child: Some(started), stdin, lines, seen: Vec::new(), readers: vec![stdout, stderr] }
}

impl Held {
    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The next report of the child; fails the test (with the child's output) if none comes
    /// within [`CHILD_TIMEOUT`].
    pub fn next_report(&mut self) -> String {
        match self.lines.recv_timeout(CHILD_TIMEOUT) {
            Ok(line) => {
                self.seen.push(line.clone());
                line
            }
            Err(error) => {
                let run = self.finish(true);
                panic!("no report from the child ({error}): {run:?}");
            }
        }
    }

    /// Sends `line` to the child's stdin (read by [`read_line`]).
    pub fn send(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.stdin.as_mut().expect("the child's stdin is open");
        writeln!(stdin, "{line}").expect("write to the child");
        stdin.flush().expect("flush to the child");
    }

    /// Closes the child's stdin, which lets it end, and waits for it (killing it after
    /// [`CHILD_TIMEOUT`]).
    pub fn release(mut self) -> ChildRun {
        self.finish(false)
    }

    /// Kills the child with `SIGKILL` and waits for it.
    pub fn kill(mut self) -> ChildRun {
        self.finish(true)
    }

    fn finish(&mut self, kill: bool) -> ChildRun {
        let mut child = self.child.take().expect("the child runs");
        // Kill before closing stdin: a child that saw its stdin closed would end on its own
        // (dropping its handles) before the signal came.
        if kill {
            let _ = child.kill();
        }
        self.stdin = None;
        let deadline = Instant::now() + CHILD_TIMEOUT;
        while child.try_wait().expect("wait for a child").is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = child.kill();
        let status = child.wait().expect("wait for a child");
        // The pipes close when the child is gone: the reader threads end, once they have passed
        // on all the child wrote.
        let stderr = self.readers.drain(..).filter_map(|reader| reader.join().ok()).collect();
        let mut reports = std::mem::take(&mut self.seen);
        reports.extend(self.lines.try_iter());
        ChildRun { status, reports, stderr }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.finish(true);
        }
    }
}

/// In a [`Held`] child: reads one line from stdin, without its newline; `None` once the parent
/// closed stdin (or died).
pub fn read_line() -> Option<String> {
    let mut line = String::new();
    match std::io::stdin().read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim_end_matches('\n').to_owned()),
    }
}

/// In a [`Held`] child: waits until the parent releases it (closes stdin, or dies).
pub fn wait_for_release() {
    while read_line().is_some() {}
}

/// The mode bits (`& 0o777`) of `/dev/shm` object `name`, if it exists.
pub fn posix_mode(name: &str) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(format!("/dev/shm{name}")).ok()?;
    Some(meta.permissions().mode() & 0o777)
}

/// Runs `scenario` (with `args`) in a child process of its own mount namespace (`unshare
/// --mount --propagation private`); `None` (with a note) where this machine allows none.
pub fn run_in_mount_namespace(scenario: &str, args: &[&str]) -> Option<ChildRun> {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut command = Command::new("unshare");
    command
        .args(["--mount", "--propagation", "private", "--"])
        .arg(exe)
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(CHILD_VAR, scenario)
        .env(ARGS_VAR, args.join("\x1f"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let Ok(child) = command.spawn() else {
        println!("note: no `unshare` command: scenario {scenario} skipped");
        return None;
    };
    let run = wait_child(child);
    if run.reports.is_empty() && run.stderr.starts_with("unshare:") {
        println!("note: no mount namespace here ({}): scenario {scenario} skipped", run.stderr.trim());
        return None;
    }
    Some(run)
}

/// In a child of its own mount namespace: mounts `fstype` with `options` over `/dev/shm`, and
/// makes sure it is that mount that `/dev/shm` now is.
pub fn mount_over_dev_shm(fstype: &str, options: &str) {
    let c = |text: &str| std::ffi::CString::new(text).unwrap();
    let (source, target, fstype_c, data) = (c("none"), c("/dev/shm"), c(fstype), c(options));
    // SAFETY: plain C strings that live through the call; this process is alone in its mount
    // namespace (`unshare --mount --propagation private`), so the mount is seen by no one else.
    let mounted = unsafe { libc::mount(source.as_ptr(), target.as_ptr(), fstype_c.as_ptr(), 0, data.as_ptr().cast()) };
    assert_eq!(mounted, 0, "mount {fstype}: {}", std::io::Error::last_os_error());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let last = mounts.lines().rfind(|line| line.split_whitespace().nth(1) == Some("/dev/shm")).unwrap();
    assert_eq!(last.split_whitespace().nth(2), Some(fstype), "{mounts}");
}
