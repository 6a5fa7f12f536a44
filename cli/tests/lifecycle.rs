//! The lifecycle promises as the commands keep them: looking never destroys, `hold` gives up in
//! bounded time under a foreign exclusive lock and stays killable, and `list`, `info` and
//! `gc --dry-run` agree with `gc`, also inside a child PID namespace.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ipcmem, json_of, posix_exists, stdout_of, unique_name, Guard, Holder};
use ipcmem::array::{ElementType, Header};
use serde_json::Value;

/// Serialises the tests of this file, which run gc or leave objects abandoned on purpose: gc of
/// one would collect the abandoned objects of another.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static GC: std::sync::Mutex<()> = std::sync::Mutex::new(());
    GC.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The entry of `gc --json` output for `name`, if any.
fn gc_entry(json: &Value, name: &str) -> Option<Value> {
    json.as_array().expect("gc --json prints an array").iter().find(|entry| entry["name"] == name).cloned()
}

/// A volatile object holding an f32 4x2 array, whose every holder was killed: abandoned.
fn abandoned_array(guard: &mut Guard, tag: &str) -> String {
    let name = unique_name(tag);
    guard.track(name.as_str());
    let header = Header::new(ElementType::F32, &[4, 2]).expect("a valid header");
    let size = header.object_size().to_string();
    let creator = Holder::start(&["create", &name, &size, "--volatile", "--hold"]);
    ipcmem(["write", &name]).write_stdin(header.encode()).assert().success();
    assert_eq!(creator.stop(libc::SIGKILL).0, None);
    let info = json_of(&["info", &name, "--json"]);
    assert_eq!((info["volatile"].as_bool(), info["in_use"].as_bool()), (Some(true), Some(false)), "{info}");
    name
}

#[test]
fn looking_leaves_an_abandoned_volatile_object_for_gc() {
    let _serial = serial();
    let mut guard = Guard::new();
    let name = abandoned_array(&mut guard, "look");
    let looks: [&[&str]; 6] = [
        &["info", &name],
        &["info", &name, "--json"],
        &["list", "--posix"],
        &["read", &name, "--length", "8"],
        &["array", "show", &name],
        &["read", &name],
    ];
    for look in looks {
        ipcmem(look).assert().success();
        assert!(posix_exists(&name), "`ipcmem {}` destroyed the object it looked at", look.join(" "));
    }
    ipcmem(["write", &name, "--offset", "60"]).write_stdin(vec![7_u8; 4]).assert().success();
    assert!(posix_exists(&name), "`ipcmem write` destroyed the object");
    // The library's looks: inspect, try_inspect and a handle opened as a look.
    assert_eq!(ipcmem::array::inspect(name.as_str()).expect("inspect").to_string(), "f32 4x2");
    assert!(ipcmem::array::try_inspect(name.as_str()).is_some());
    drop(ipcmem::SharedMemory::look(name.as_str()).expect("a look"));
    assert!(posix_exists(&name), "a library look destroyed the object");
    let info = json_of(&["info", &name, "--json"]);
    assert_eq!(info["in_use"], false, "still abandoned after every look: {info}");

    // gc removes it.
    let removed = json_of(&["gc", "--json"]);
    assert_eq!(gc_entry(&removed, &name).map(|entry| entry["removed"].clone()), Some(Value::Bool(true)));
    assert!(!posix_exists(&name));
}

#[test]
fn a_consumer_that_holds_removes_the_object_it_was_last_to_hold() {
    let _serial = serial();
    let mut guard = Guard::new();
    let name = abandoned_array(&mut guard, "holder");
    // Opening to use (the default, read-only or not) holds: the last holder removes.
    let reader = ipcmem::SharedArray::<f32>::open_readonly(name.as_str()).expect("open the array");
    drop(reader);
    assert!(!posix_exists(&name), "the last holder removes a volatile object");
}

/// An exclusive `flock -x` on the object's file, held by a separate process until dropped.
/// With `-o` the lock stays with `flock` itself, whose command (`cat`) ends when its stdin
/// closes.
struct ForeignLock(std::process::Child);

impl ForeignLock {
    fn take(name: &str) -> ForeignLock {
        let mut child = Command::new("flock")
            .args(["-x", "-o", &format!("/dev/shm{name}"), "-c", "echo locked; exec cat >/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run flock");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("flock's stdout");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).expect("flock's line");
        assert_eq!(line.trim(), "locked");
        ForeignLock(child)
    }
}

impl Drop for ForeignLock {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

#[test]
fn hold_gives_up_in_bounded_time_under_a_foreign_exclusive_lock() {
    let _serial = serial();
    let mut guard = Guard::new();
    let name = unique_name("flock");
    guard.track(name.as_str());
    // Abandoned (no holder, so a foreign exclusive lock can be taken), then locked.
    let creator = Holder::start(&["create", &name, "4KiB", "--volatile", "--hold"]);
    assert_eq!(creator.stop(libc::SIGKILL).0, None);
    let lock = ForeignLock::take(&name);

    let started = Instant::now();
    let output = ipcmem(["hold", &name]).output().expect("run ipcmem hold");
    let waited = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("locked by another process"), "{stderr}");
    assert!(waited < Duration::from_secs(10), "hold waited {waited:?}");

    // SIGTERM and SIGINT while `hold` waits for the lock end it at once.
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let mut child = Command::new(common::bin())
            .args(["hold", &name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ipcmem hold");
        std::thread::sleep(Duration::from_millis(100));
        let pid = i32::try_from(child.id()).expect("a pid");
        let sent = Instant::now();
        // SAFETY: kill sends a signal to our own child, which has not been waited for.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
        let status = child.wait().expect("wait for hold");
        assert!(!status.success(), "hold ends with an error after signal {signal}");
        assert!(sent.elapsed() < Duration::from_millis(500), "hold took {:?} to end on {signal}", sent.elapsed());
    }

    // Once the foreign lock is gone, hold works again; the object goes with its last holder.
    drop(lock);
    let holder = Holder::start(&["hold", &name]);
    assert_eq!(holder.line, format!("holding {name} (4096 bytes)"));
    assert_eq!(holder.stop(libc::SIGTERM).0, Some(0));
    assert!(!posix_exists(&name));
}

/// `ipcmem ARGS…` inside a new PID namespace (with its own /proc), sharing /dev/shm; its stdout.
fn in_child_pid_namespace(args: &[&str]) -> String {
    let output = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc"])
        .arg(common::bin())
        .args(args)
        .output()
        .expect("run unshare");
    assert!(output.status.success(), "ipcmem {args:?} in a PID namespace: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

#[test]
fn a_child_pid_namespace_says_unknown_where_it_cannot_see_the_holders() {
    let _serial = serial();
    let mut guard = Guard::new();
    let name = unique_name("pidns");
    guard.track(name.as_str());
    // Held by a process outside the namespace.
    let holder = Holder::start(&["create", &name, "4KiB", "--volatile", "--hold"]);
    assert_eq!(json_of(&["info", &name, "--json"])["in_use"], true);

    let info: Value = serde_json::from_str(&in_child_pid_namespace(&["info", &name, "--json"])).expect("JSON");
    assert_eq!((info["volatile"].as_bool(), info["in_use"].as_bool()), (Some(true), None), "{info}");
    let listed = in_child_pid_namespace(&["list", "--posix"]);
    let line = listed.lines().find(|line| line.contains(&name)).expect("listed");
    assert!(!line.contains("abandoned") && line.contains("unknown"), "{line}");
    let dry: Value = serde_json::from_str(&in_child_pid_namespace(&["gc", "--dry-run", "--json"])).expect("JSON");
    assert!(gc_entry(&dry, &name).is_none(), "the dry run would remove a held object: {dry}");
    let real: Value = serde_json::from_str(&in_child_pid_namespace(&["gc", "--json"])).expect("JSON");
    assert!(gc_entry(&real, &name).is_none(), "{real}");
    assert!(posix_exists(&name), "gc in the namespace removed a held object");

    // Abandoned: the namespace still cannot know (a process outside may map it), and says so.
    assert_eq!(holder.stop(libc::SIGKILL).0, None);
    let info: Value = serde_json::from_str(&in_child_pid_namespace(&["info", &name, "--json"])).expect("JSON");
    assert_eq!(info["in_use"], Value::Null, "{info}");
    let dry: Value = serde_json::from_str(&in_child_pid_namespace(&["gc", "--dry-run", "--json"])).expect("JSON");
    let real: Value = serde_json::from_str(&in_child_pid_namespace(&["gc", "--json"])).expect("JSON");
    assert_eq!(gc_entry(&dry, &name).is_some(), gc_entry(&real, &name).is_some(), "dry run and gc disagree");
    assert!(posix_exists(&name), "gc removed an object whose holders it could not know");
    let text = in_child_pid_namespace(&["gc", "--dry-run"]);
    assert!(!text.contains(&format!("would remove {name}")), "{text}");

    // Outside, where every process is visible, it is abandoned, and gc says so and removes it.
    assert_eq!(json_of(&["info", &name, "--json"])["in_use"], false);
    let removed = json_of(&["gc", "--json"]);
    assert_eq!(gc_entry(&removed, &name).map(|entry| entry["removed"].clone()), Some(Value::Bool(true)));
    assert!(!posix_exists(&name));
    let _ = stdout_of(&["list"]);
}

#[test]
fn an_unfinished_creation_is_listed_as_such_and_collected_but_an_empty_object_is_not() {
    use std::os::unix::fs::OpenOptionsExt;
    let _serial = serial();
    let mut guard = Guard::new();
    // As a creator killed between shm_open and ftruncate leaves it: size 0, set-user-ID.
    let unfinished = unique_name("unfinished");
    guard.track(unfinished.as_str());
    let file =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o4600).open(format!("/dev/shm{unfinished}"));
    drop(file.expect("make the unfinished object"));
    // An empty object of another program (or one a writer truncated): no set-user-ID bit.
    let empty = unique_name("empty");
    guard.track(empty.as_str());
    drop(std::fs::File::create(format!("/dev/shm{empty}")).expect("make the empty object"));
    std::thread::sleep(Duration::from_millis(1100));

    let info = json_of(&["info", &unfinished, "--json"]);
    assert_eq!((info["in_use"].as_bool(), info["mode"].as_str()), (Some(false), Some("4600")), "{info}");
    let listed = stdout_of(&["list", "--posix"]);
    assert!(listed.lines().any(|line| line.contains(&unfinished) && line.ends_with("unfinished")), "{listed}");
    assert!(listed.lines().any(|line| line.contains(&empty) && line.ends_with(" -")), "{listed}");
    let dry = json_of(&["gc", "--dry-run", "--json"]);
    let entry = gc_entry(&dry, &unfinished).expect("the dry run lists it");
    assert!(entry["reason"].as_str().is_some_and(|reason| reason.contains("unfinished")), "{entry}");
    let real = json_of(&["gc", "--json"]);
    assert_eq!(gc_entry(&real, &unfinished).map(|entry| entry["removed"].clone()), Some(Value::Bool(true)));
    assert!(gc_entry(&real, &empty).is_none() && gc_entry(&dry, &empty).is_none());
    assert!(!posix_exists(&unfinished) && posix_exists(&empty));
    // The name is free again.
    ipcmem(["create", &unfinished, "4KiB"]).assert().success();
}
