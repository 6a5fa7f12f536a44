//! Lifecycle hardening, with real processes, kills, users and races: a forked child leaves its
//! parent's hold, a foreign exclusive lock never hangs `open`, only the owner can mark an object
//! volatile, removal deletes only its own inode, gc respects every process that maps or opens an
//! object, and creations killed half way leave nothing that gc does not remove.

mod common;

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::{report, run_child, spawn_held, Guard};
use ipcmem::gc;
use ipcmem::{Error, SharedMemory};

/// The entry point of child processes (see `common`); a no-op in the parent's test run.
#[test]
fn child_entry() {
    let Some((scenario, args)) = common::scenario() else { return };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match scenario.as_str() {
        "fork-drop" => fork_drop(args[0]),
        "open-under-signals" => open_under_signals(args[0]),
        "create-hold" => {
            let _shm = SharedMemory::create(args[0], 4096).expect("create");
            report("held");
            common::wait_for_release();
        }
        other => panic!("unknown scenario {other}"),
    }
    common::exit(0);
}

/// Whether some process holds a `flock` on `/dev/shm{name}`, by `/proc/locks`.
fn flocked(name: &str) -> bool {
    let Ok(meta) = std::fs::metadata(format!("/dev/shm{name}")) else { return false };
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    let locks = std::fs::read_to_string("/proc/locks").expect("read /proc/locks");
    locks.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.get(1) == Some(&"FLOCK") && fields.get(5).is_some_and(|file| file.ends_with(&format!(":{inode}")))
    })
}

/// Makes the volatile object `name` in a child that is then killed: no process holds it.
fn abandon(name: &str) {
    let mut creator = spawn_held("create-hold", &[name]);
    assert_eq!(creator.next_report(), "held");
    assert_eq!(creator.kill().signal(), Some(libc::SIGKILL));
    assert!(common::posix_exists(name));
}

// ---- 9. fork ----

/// Creates a volatile object, forks a child that drops its inherited handle and exits, then
/// checks that the object is still held: the parent is its only holder.
fn fork_drop(name: &str) {
    let shm = SharedMemory::create(name, 4096).expect("create");
    shm.write_at(0, b"parent").expect("write");
    // SAFETY: this child process runs one test thread; the forked child only drops a handle
    // (munmap, close) and leaves with _exit, which are safe after fork.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        drop(shm);
        // SAFETY: ends the forked child without running the parent's exit handlers.
        unsafe { libc::_exit(0) };
    }
    assert!(pid > 0, "fork failed");
    let mut status = 0;
    // SAFETY: waits for our own child; `status` is a valid int.
    assert_eq!(unsafe { libc::waitpid(pid, &raw mut status, 0) }, pid);
    assert!(common::posix_exists(name), "the child's drop removed the parent's object");
    assert!(flocked(name), "the child's drop took the parent's lock away");
    // Another holder comes and goes: the parent still holds, so the object stays.
    drop(SharedMemory::open(name).expect("open while the parent holds"));
    assert!(common::posix_exists(name), "the parent's hold was lost");
    let mut text = [0; 6];
    shm.read_at(0, &mut text).expect("read");
    assert_eq!(&text, b"parent");
    drop(shm);
    assert!(!common::posix_exists(name), "the parent, last holder, removes it");
    report("ok");
}

#[test]
fn a_forked_child_dropping_its_handle_leaves_the_parents_hold() {
    let mut guard = Guard::new();
    let name = guard.track(common::unique_name("fork")).to_string();
    let run = run_child("fork-drop", &[&name]);
    assert!(run.status.success(), "{run:?}");
    assert_eq!(run.report(), "ok");
}

// ---- 8. flock ----

extern "C" fn on_alarm(_: libc::c_int) {}

/// Opens `name` while SIGALRM (with a handler, without SA_RESTART) interrupts every millisecond:
/// reports the outcome and how long it took.
fn open_under_signals(name: &str) {
    // SAFETY: a zeroed sigaction is valid; the handler does nothing, so it is async-signal-safe;
    // the timer only sends SIGALRM to this process.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_alarm as extern "C" fn(libc::c_int) as usize;
        assert_eq!(libc::sigaction(libc::SIGALRM, &raw const action, std::ptr::null_mut()), 0);
        let every = libc::timeval { tv_sec: 0, tv_usec: 1000 };
        let timer = libc::itimerval { it_interval: every, it_value: every };
        assert_eq!(libc::setitimer(libc::ITIMER_REAL, &raw const timer, std::ptr::null_mut()), 0);
    }
    common::read_line();
    let started = Instant::now();
    let outcome = match SharedMemory::open(name) {
        Ok(_) => "opened".to_owned(),
        Err(error) => error.to_string(),
    };
    report(format!("{outcome} after {} ms", started.elapsed().as_millis()));
}

/// Takes an exclusive flock on `/dev/shm{name}` through a descriptor of our own.
fn lock_exclusive(name: &str) -> std::fs::File {
    let file = std::fs::File::open(format!("/dev/shm{name}")).expect("open the file");
    // SAFETY: flock on a descriptor we own.
    assert_eq!(unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }, 0);
    file
}

#[test]
fn open_under_a_foreign_exclusive_lock_fails_in_bounded_time_and_retries_signals() {
    let mut guard = Guard::new();
    let name = guard.track(common::unique_name("flock")).to_string();
    abandon(&name);
    let lock = lock_exclusive(&name);

    // Held for ever: a clear error within the bound, although signals keep interrupting.
    let started = Instant::now();
    let opened = SharedMemory::open(name.as_str());
    assert!(matches!(opened, Err(Error::Locked { .. })), "{opened:?}");
    assert!(opened.unwrap_err().to_string().contains("locked by another process"));
    assert!(started.elapsed() < Duration::from_secs(5));
    let mut child = spawn_held("open-under-signals", &[&name]);
    child.send("go");
    let line = child.next_report();
    assert!(line.contains("locked by another process"), "{line}");

    // Held for 200 ms: the open, interrupted by signals all along, succeeds once it is gone.
    let mut child = spawn_held("open-under-signals", &[&name]);
    child.send("go");
    std::thread::sleep(Duration::from_millis(200));
    drop(lock);
    let line = child.next_report();
    assert!(line.starts_with("opened after"), "{line}");
}
