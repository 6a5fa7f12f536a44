//! Named POSIX semaphores in `list`, `info`, `rm` and `chmod` (`sem:/name`), made by the library
//! and by glibc's `sem_open`; looking never removes a volatile one, and `gc` never touches any.

mod common;

use std::ffi::CString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};
use std::time::Instant;

use common::{ipcmem, ipcmem_as_nobody, json_of, stdout_of, unique_name, TIMEOUT};
use ipcmem::Semaphore;
use serde_json::Value;

/// The variable that makes the test binary, run again, the process of [`child_entry`].
const CHILD_ENV: &str = "IPCMEM_CLI_SEMAPHORE_CHILD";

/// Unlinks the named semaphores it was given when dropped, also when the test panics.
#[derive(Default)]
struct Guard(Vec<String>);

impl Guard {
    /// A new semaphore name, `/…`, unlinked when the guard goes.
    fn name(&mut self, tag: &str) -> String {
        let name = unique_name(tag);
        self.0.push(name.clone());
        name
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = Semaphore::unlink(name);
        }
    }
}

/// The file of semaphore `name` in /dev/shm.
fn file_of(name: &str) -> String {
    format!("/dev/shm/sem.{}", &name[1..])
}

fn exists(name: &str) -> bool {
    std::fs::symlink_metadata(file_of(name)).is_ok()
}

/// A persistent semaphore made by the library with `value`, mode 0640.
fn persistent(name: &str, value: u32) -> Semaphore {
    Semaphore::options().volatile(false).perms(0o640).create(name, value).expect("create a semaphore")
}

/// The entry of `name` (as `"name"`) in a JSON array of objects, if any.
fn entry<'a>(list: &'a Value, name: &str) -> Option<&'a Value> {
    list.as_array().expect("a JSON array").iter().find(|object| object["name"] == name)
}

/// Runs `ipcmem ARGS…`; returns the exit code and stderr. Fails on a panic or debug dump.
fn run(command: &mut assert_cmd::Command) -> (Option<i32>, String) {
    let output = command.output().expect("run ipcmem");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    for sign in ["panicked", "RUST_BACKTRACE", "Error {", "NotFound {"] {
        assert!(!stderr.contains(sign), "stderr shows {sign:?}: {stderr}");
    }
    (output.status.code(), stderr)
}

/// Expects exit status 2 (a usage error) whose message contains `why`.
fn usage_error(args: &[&str], why: &str) {
    let (code, stderr) = run(&mut ipcmem(args));
    assert_eq!(code, Some(2), "ipcmem {args:?} should be a usage error; stderr: {stderr}");
    assert!(stderr.contains(why), "ipcmem {args:?}: stderr lacks {why:?}: {stderr}");
}

/// Expects exit status 1 and one line `ipcmem: OBJECT: …` containing `why`.
fn failure(command: &mut assert_cmd::Command, object: &str, why: &str) {
    let (code, stderr) = run(command);
    assert_eq!(code, Some(1), "expected a failure; stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line on stderr: {stderr}");
    assert!(stderr.starts_with(&format!("ipcmem: {object}: ")), "stderr names no {object}: {stderr}");
    assert!(stderr.contains(why), "stderr lacks {why:?}: {stderr}");
}

#[test]
fn list_shows_semaphores_as_sem_with_their_value_and_the_filters_place_them() {
    let mut guard = Guard::default();
    let name = guard.name("sem-list");
    let sem = persistent(&name, 1);
    for _ in 0..3 {
        sem.post().expect("post");
    }
    let object = format!("sem:{name}");

    let all = json_of(&["list", "--json"]);
    let shown = entry(&all, &name).expect("list shows the semaphore");
    assert_eq!(shown["kind"], "semaphore");
    assert_eq!(shown["object"], object.as_str());
    assert_eq!(shown["value"], 4);
    assert_eq!((shown["volatile"].as_bool(), shown["in_use"].as_bool()), (Some(false), None));
    for field in ["id", "key", "nattch", "cpid", "lpid", "dtime", "array", "cuid", "cgid", "locked"] {
        assert_eq!(shown[field], Value::Null, "{field} of a semaphore");
    }
    // Its file is not also listed as a POSIX object.
    let file = format!("/sem.{}", &name[1..]);
    assert!(entry(&all, &file).is_none(), "the file of a semaphore is no POSIX object");

    let only = json_of(&["list", "--sem", "--json"]);
    assert!(entry(&only, &name).is_some(), "--sem lists it");
    assert!(only.as_array().expect("array").iter().all(|object| object["kind"] == "semaphore"), "--sem: {only}");
    for other in ["--posix", "--sysv"] {
        let listed = json_of(&["list", other, "--json"]);
        assert!(entry(&listed, &name).is_none(), "list {other} leaves semaphores out");
        assert!(listed.as_array().expect("array").iter().all(|object| object["kind"] != "semaphore"));
    }

    let table = stdout_of(&["list", "--sem"]);
    let row = table.lines().find(|line| line.contains(&object)).expect("the table shows the semaphore");
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells, ["sem", &object, "-", "32", "0640", "root", "-", "-", "value=4"], "row: {row}");
    assert!(row.len() <= 100, "the row fits 100 columns: {row}");
    assert!(table.lines().next().expect("a header").starts_with("KIND"));
}

#[test]
fn info_shows_the_value_and_agrees_with_stat() {
    let mut guard = Guard::default();
    let name = guard.name("sem-info");
    let sem = persistent(&name, 0);
    let object = format!("sem:{name}");
    assert_eq!(json_of(&["info", &object, "--json"])["value"], 0);
    for _ in 0..5 {
        sem.post().expect("post");
    }
    assert!(sem.try_wait().expect("try_wait"), "the count is 5");

    let info = json_of(&["info", &object, "--json"]);
    assert_eq!(info["value"], 4);
    assert_eq!((info["kind"].as_str(), info["name"].as_str()), (Some("semaphore"), Some(name.as_str())));
    assert_eq!(info["object"], object.as_str());
    let meta = std::fs::symlink_metadata(file_of(&name)).expect("stat the semaphore's file");
    assert_eq!(info["size"], meta.len());
    assert_eq!(info["mode"], format!("{:04o}", meta.permissions().mode() & 0o7777));
    assert_eq!((info["uid"].as_u64(), info["gid"].as_u64()), (Some(meta.uid().into()), Some(meta.gid().into())));
    assert_eq!((info["ctime"].as_i64(), info["mtime"].as_i64()), (Some(meta.ctime()), Some(meta.mtime())));
    assert_eq!(info["marked_for_removal"], false);
    assert_eq!(sem.value(), 4, "looking changes no count");

    let text = stdout_of(&["info", &object]);
    assert!(text.lines().any(|line| line.split_whitespace().eq(["value", "4"])), "info shows the value:\n{text}");
    assert!(text.lines().any(|line| line.split_whitespace().eq(["kind", "semaphore"])));
}

#[test]
fn a_semaphore_made_by_sem_open_is_listed_by_the_name_sem_open_takes() {
    let mut guard = Guard::default();
    let name = guard.name("sem-glibc");
    let c_name = CString::new(name.as_str()).expect("no NUL");
    // SAFETY: a valid C string, flags and mode as sem_open(3) takes them (variadic mode and value).
    let sem = unsafe { libc::sem_open(c_name.as_ptr(), libc::O_CREAT | libc::O_EXCL, 0o600 as libc::c_uint, 3) };
    assert_ne!(sem, libc::SEM_FAILED, "sem_open: {}", std::io::Error::last_os_error());
    // SAFETY: `sem` was just opened and is closed once; the semaphore stays, named.
    unsafe { libc::sem_post(sem) };
    // SAFETY: as above.
    unsafe { libc::sem_close(sem) };

    let info = json_of(&["info", &format!("sem:{name}"), "--json"]);
    assert_eq!((info["value"].as_u64(), info["volatile"].as_bool()), (Some(4), Some(false)));
    assert!(entry(&json_of(&["list", "--sem", "--json"]), &name).is_some());
    // The library opens it too, and agrees.
    assert_eq!(Semaphore::open(&name).expect("open a sem_open semaphore").value(), 4);
}

#[test]
fn looking_at_volatile_semaphores_keeps_them_and_gc_never_touches_semaphores() {
    let mut guard = Guard::default();
    // Held: by this process's handle.
    let held_name = guard.name("sem-held");
    let held = Semaphore::create(&held_name, 2).expect("create a volatile semaphore");
    // Abandoned: its only holder, a child, ended without dropping its handle.
    let abandoned = guard.name("sem-abandoned");
    make_abandoned(&abandoned, 5);
    assert!(exists(&abandoned), "nobody unlinked the semaphore of the ended child");
    // Persistent.
    let persistent_name = guard.name("sem-persistent");
    let _persistent = persistent(&persistent_name, 0);

    for _ in 0..2 {
        let info = json_of(&["info", &format!("sem:{held_name}"), "--json"]);
        assert_eq!((info["volatile"].as_bool(), info["in_use"].as_bool()), (Some(true), Some(true)));
        assert_eq!(info["value"], 2);
        let info = json_of(&["info", &format!("sem:{abandoned}"), "--json"]);
        assert_eq!((info["volatile"].as_bool(), info["in_use"].as_bool()), (Some(true), Some(false)));
        assert_eq!(info["value"], 5);
        assert!(exists(&abandoned), "info leaves an abandoned volatile semaphore in place");
    }
    let table = stdout_of(&["list", "--sem"]);
    let status = |name: &str| {
        let row = table.lines().find(|line| line.contains(&format!("sem:{name} "))).expect("listed");
        row.split_whitespace().last().expect("a STATUS").to_owned()
    };
    assert_eq!(status(&held_name), "volatile,value=2");
    assert_eq!(status(&abandoned), "unheld,value=5");
    assert_eq!(status(&persistent_name), "value=0");

    // No entry is a semaphore's file, `/sem.…`, nor names one of ours.
    let touches_semaphores = |json: &Value| {
        json.as_array().expect("gc --json prints an array").iter().any(|entry| {
            let name = entry["name"].as_str().expect("a name");
            name.starts_with("/sem.") || [&held_name, &abandoned, &persistent_name].contains(&&name.to_owned())
        })
    };
    let dry = json_of(&["gc", "--dry-run", "--json"]);
    assert!(!touches_semaphores(&dry), "gc lists no semaphore: {dry}");
    let done = json_of(&["gc", "--json"]);
    assert!(!touches_semaphores(&done), "gc removes no semaphore: {done}");
    for name in [&held_name, &abandoned, &persistent_name] {
        assert!(exists(name), "{name} survives gc");
    }

    // Neither look nor gc kept a hold on the volatile semaphore: it goes with its last handle.
    drop(held);
    assert!(!exists(&held_name), "the held semaphore went with its last handle");
    // The abandoned one is removed by rm.
    assert_eq!(run(&mut ipcmem(["rm", &format!("sem:{abandoned}")])).0, Some(0));
    assert!(!exists(&abandoned));
}

/// Makes the volatile semaphore `name` with `value` in a child process that ends without
/// dropping its handle, as a crashed holder would.
fn make_abandoned(name: &str, value: u32) {
    let exe = std::env::current_exe().expect("the test binary");
    let mut child = Command::new(exe)
        .args(["--exact", "child_entry", "--test-threads=1", "--quiet"])
        .env(CHILD_ENV, format!("{name} {value}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the child");
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child did not end in time");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    assert!(status.success(), "the child failed: {status}");
}

/// The child of [`make_abandoned`]; returns at once in a normal test run.
#[test]
fn child_entry() {
    let Ok(spec) = std::env::var(CHILD_ENV) else { return };
    let (name, value) = spec.split_once(' ').expect("NAME VALUE");
    let sem = Semaphore::create(name, value.parse().expect("a value")).expect("create in the child");
    // Never dropped: the process ends holding it, and its lock goes with the process.
    std::mem::forget(sem);
}

#[test]
fn rm_unlinks_a_semaphore_and_a_missing_one_is_an_error_unless_forced() {
    let mut guard = Guard::default();
    let name = guard.name("sem-rm");
    let sem = persistent(&name, 1);
    let object = format!("sem:{name}");
    let posix = unique_name("sem-rm-missing-posix");

    assert_eq!(run(&mut ipcmem(["rm", &object])), (Some(0), String::new()));
    assert!(!exists(&name), "rm unlinked it");
    // As after sem_unlink, the open handle keeps working.
    sem.post().expect("post after rm");
    assert_eq!(sem.value(), 2);

    failure(&mut ipcmem(["rm", &object]), &object, "no named semaphore");
    failure(&mut ipcmem(["info", &object]), &object, "no named semaphore");
    failure(&mut ipcmem(["chmod", &object, "0600"]), &object, "no named semaphore");
    assert_eq!(run(&mut ipcmem(["rm", "--force", &object, &posix])), (Some(0), String::new()));
}

#[test]
fn chmod_changes_the_mode_of_a_semaphore() {
    let mut guard = Guard::default();
    let name = guard.name("sem-chmod");
    let _sem = persistent(&name, 0);
    let object = format!("sem:{name}");
    assert_eq!(run(&mut ipcmem(["chmod", &object, "0604"])), (Some(0), String::new()));
    let meta = std::fs::symlink_metadata(file_of(&name)).expect("stat the semaphore's file");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o604);
    assert_eq!(json_of(&["info", &object, "--json"])["mode"], "0604");
}

#[test]
fn another_user_sees_what_it_may_and_may_not_remove_it() {
    let mut guard = Guard::default();
    let name = guard.name("sem-foreign");
    let _sem = Semaphore::options().volatile(false).create(&name, 3).expect("create, mode 0600");
    let object = format!("sem:{name}");
    let output = ipcmem_as_nobody(["info", &object, "--json"]).output().expect("run ipcmem");
    assert!(output.status.success(), "info as nobody: {}", String::from_utf8_lossy(&output.stderr));
    let info: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!((info["value"].clone(), info["mode"].as_str()), (Value::Null, Some("0600")), "unreadable: {info}");
    failure(&mut ipcmem_as_nobody(["rm", &object]), &object, "permission denied");
    failure(&mut ipcmem_as_nobody(["chmod", &object, "0666"]), &object, "permission denied");
    assert!(exists(&name));
}

#[test]
fn bad_semaphore_syntax_is_a_usage_error() {
    let long = format!("sem:/{}", "x".repeat(252));
    for bad in ["sem:", "sem:name", "sem:/", "sem:/a/b", "sem:/..", "sem:sem:/a", long.as_str()] {
        usage_error(&["info", bad], "sem:/name names a semaphore");
        usage_error(&["rm", bad], "sem:/name names a semaphore");
        usage_error(&["chmod", bad, "0600"], "sem:/name names a semaphore");
    }
}

#[test]
fn commands_without_semaphores_refuse_sem_as_a_usage_error() {
    let mut guard = Guard::default();
    let name = guard.name("sem-refused");
    let _sem = persistent(&name, 0);
    let object = format!("sem:{name}");
    let why = "only list, info, rm and chmod take";
    usage_error(&["create", &object, "10"], why);
    usage_error(&["create", &object, "10", "--volatile", "--hold"], why);
    usage_error(&["read", &object], why);
    usage_error(&["write", &object], why);
    usage_error(&["hold", &object], why);
    usage_error(&["array", "create", &object, "f32", "10"], why);
    usage_error(&["array", "show", &object], why);
    usage_error(&["list", "--posix", "--sem"], "cannot be used with");
    usage_error(&["list", "--sysv", "--sem"], "cannot be used with");
    assert_eq!(Semaphore::open(&name).expect("still there").value(), 0, "nothing touched it");
}
