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
        "nobody-attack" => nobody_attack(args[0], args[1]),
        "race" => race(),
        "racer" => racer(&args),
        "reserve-race" => reserve_race(args[0]),
        "kill-creators" => kill_creators(args[0], args[1]),
        "raw-segment" => raw_segment(args[0]),
        "create-hold" => {
            let _shm = SharedMemory::create(args[0], 4096).expect("create");
            report("held");
            common::wait_for_release();
        }
        other => panic!("unknown scenario {other}"),
    }
    common::exit(0);
}

/// Serialises the tests of this file that run gc or leave objects abandoned on purpose: gc of
/// one would collect the abandoned objects of another. (Suites of other programs that run gc
/// at the same time can still do so: rerun such a test alone before chasing a failure.)
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static GC: std::sync::Mutex<()> = std::sync::Mutex::new(());
    GC.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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

/// Opens `name` while `SIGALRM` (with a handler, without `SA_RESTART`) interrupts every millisecond:
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
    let _serial = serial();
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

// ---- 7. the volatile mark ----

/// As uid 65534, with write permission on root's objects `a` and `b` but no right to remove
/// them, tries every way to get them deleted: the old xattr mark, the sticky bit, the
/// set-user-ID bit, truncation to 0, removal and renaming. Reports what the kernel allowed.
fn nobody_attack(a: &str, b: &str) {
    use std::os::unix::fs::PermissionsExt;
    common::become_nobody();
    let mut allowed = Vec::new();
    for name in [a, b] {
        let path = format!("/dev/shm{name}");
        let file = std::fs::OpenOptions::new().read(true).write(true).open(&path).expect("write permission");
        let attr = c"user.ipcmem.volatile";
        // SAFETY: a valid descriptor, a NUL-terminated name and a one-byte value.
        if unsafe { libc::fsetxattr(file.as_raw_fd(), attr.as_ptr(), c"1".as_ptr().cast(), 1, 0) } == 0 {
            allowed.push(format!("{name}: xattr"));
        }
        for mode in [0o1666, 0o4666, 0o5666] {
            if file.set_permissions(std::fs::Permissions::from_mode(mode)).is_ok() {
                allowed.push(format!("{name}: chmod {mode:o}"));
            }
        }
        if std::fs::rename(&path, format!("{path}-moved")).is_ok() {
            allowed.push(format!("{name}: rename"));
        }
        if std::fs::remove_file(&path).is_ok() {
            allowed.push(format!("{name}: unlink"));
        }
    }
    // Truncation to 0 is a writer's right: `b` is now an empty object.
    std::fs::OpenOptions::new().write(true).open(format!("/dev/shm{b}")).expect("open b").set_len(0).expect("truncate");
    report(allowed.join(", "));
}

#[test]
fn a_writer_who_may_not_remove_cannot_get_an_object_deleted() {
    let _serial = serial();
    let mut guard = Guard::new();
    let a = guard.track(common::unique_name("writer-a")).to_string();
    let b = guard.track(common::unique_name("writer-b")).to_string();
    for name in [&a, &b] {
        drop(SharedMemory::options().volatile(false).perms(0o666).create(name.as_str(), 4096).expect("create"));
    }
    let run = run_child("nobody-attack", &[&a, &b]);
    assert!(run.status.success(), "{run:?}");
    let allowed = run.report();
    assert!(!allowed.contains("chmod") && !allowed.contains("rename") && !allowed.contains("unlink"), "{allowed}");

    // Every way root's ipcmem could delete them: a holding handle, read-only or not, a look,
    // the inventory, gc.
    drop(SharedMemory::open(a.as_str()).expect("open a"));
    drop(SharedMemory::open_readonly(a.as_str()).expect("open a read-only"));
    drop(SharedMemory::look(a.as_str()).expect("look at a"));
    assert!(matches!(SharedMemory::open(b.as_str()), Err(Error::InvalidSize { .. })), "b is empty now");
    for name in [&a, &b] {
        let info = ipcmem::inventory::info(&name.as_str().into()).expect("info");
        assert_eq!(info.volatile, Some(false), "{name}: {info:?}");
        assert!(!info.is_abandoned());
    }
    let collected = gc::collect(gc::Mode::Remove).expect("gc");
    for name in [&a, &b] {
        assert!(collected.iter().all(|found| &found.name != name), "gc collected {name}: {collected:?}");
        assert!(common::posix_exists(name), "{name} was deleted");
    }
}

#[test]
fn chmod_keeps_the_volatile_mark() {
    let mut guard = Guard::new();
    let name = guard.track(common::unique_name("chmod-mark")).to_string();
    let shm = SharedMemory::create(name.as_str(), 64).expect("create");
    ipcmem::posix::chmod(&name, 0o640).expect("chmod");
    let info = ipcmem::inventory::info(&name.as_str().into()).expect("info");
    assert_eq!((info.mode, info.volatile), (0o1640, Some(true)));
    drop(shm);
    assert!(!common::posix_exists(&name), "still volatile: gone with its last holder");
}

// ---- 5. races on the name ----

/// How long the rename-onto-the-name race runs.
const RACE: Duration = Duration::from_secs(10);

/// Runs the race in a private mount namespace, on a tmpfs of its own at /dev/shm: gc there sees
/// only the race's objects, and whatever the race leaves goes with the namespace.
fn race_in_private_dev_shm() -> common::ChildRun {
    let exe = std::env::current_exe().expect("the test binary");
    let mut command = std::process::Command::new("unshare");
    command
        .args(["--mount", "--propagation", "private", "--"])
        .arg(exe)
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(common::CHILD_VAR, "race")
        .env(common::ARGS_VAR, "")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    common::wait_child(command.spawn().expect("run unshare"))
}

/// The names raced on, one per way of removing.
const RACED: [&str; 3] = ["/race-drop", "/race-remove", "/race-gc"];

/// In a private mount namespace: mounts a tmpfs at /dev/shm, starts the racer, removes objects
/// by drop, `remove()` and gc for [`RACE`], and reports the racer's counts and its own.
fn race() {
    let tmpfs = c"tmpfs";
    // SAFETY: mounts a new tmpfs over /dev/shm in this process's own mount namespace.
    let mounted = unsafe {
        libc::mount(tmpfs.as_ptr(), c"/dev/shm".as_ptr(), tmpfs.as_ptr(), 0, c"size=64m,mode=1777".as_ptr().cast())
    };
    assert_eq!(mounted, 0, "mount: {}", std::io::Error::last_os_error());
    let mut racer = spawn_held("racer", &RACED);
    assert_eq!(racer.next_report(), "racing");
    let stop = std::sync::atomic::AtomicBool::new(false);
    let removals: Vec<u64> = std::thread::scope(|scope| {
        let workers: Vec<_> = RACED.iter().map(|name| scope.spawn(|| remove_while_raced(name, &stop))).collect();
        std::thread::sleep(RACE);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        workers.into_iter().map(|worker| worker.join().expect("a worker")).collect()
    });
    let run = racer.release();
    assert!(run.status.success(), "{run:?}");
    // Objects put aside for good: the name was taken again while one was out.
    let aside = std::fs::read_dir("/dev/shm")
        .expect("/dev/shm")
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with(".ipcmem-rm."))
        .count();
    for (name, removed) in RACED.iter().zip(removals) {
        let counts = run.reports.iter().find(|line| line.starts_with(name)).expect("the racer's counts");
        report(format!("{counts} removals={removed} put-aside-in-all={aside}"));
    }
}

/// Makes and removes objects named `name` until `stop`, the way its name says; returns how many
/// it removed.
fn remove_while_raced(name: &str, stop: &std::sync::atomic::AtomicBool) -> u64 {
    let mut removed = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let made = match name {
            "/race-drop" => SharedMemory::create(name, 64).map(drop),
            "/race-remove" => SharedMemory::options().volatile(false).create(name, 64).and_then(|shm| shm.remove()),
            _ => abandoned_volatile(name).map(|()| {
                gc::collect(gc::Mode::Remove).expect("gc");
            }),
        };
        match made {
            Ok(()) => removed += 1,
            Err(Error::AlreadyExists { .. }) => {}
            Err(error) => panic!("{name}: {error}"),
        }
    }
    removed
}

/// Makes `name` as ipcmem's abandoned volatile objects are: the sticky bit, no holder.
fn abandoned_volatile(name: &str) -> ipcmem::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o1600).open(format!("/dev/shm{name}")) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(Error::AlreadyExists { object: name.to_owned() })
        }
        Err(error) => panic!("{name}: {error}"),
    }
}

/// Exchanges the names `a` and `b` atomically (`renameat2(RENAME_EXCHANGE)`), or moves `a` to
/// `b` if `b` is free and `exchange` is false (`RENAME_NOREPLACE`).
fn rename2(a: &str, b: &str, exchange: bool) -> std::io::Result<()> {
    let (a, b) = (std::ffi::CString::new(a).expect("a path"), std::ffi::CString::new(b).expect("a path"));
    let flags = if exchange { libc::RENAME_EXCHANGE } else { libc::RENAME_NOREPLACE };
    // SAFETY: two NUL-terminated paths; renameat2 only reads them.
    let done = unsafe { libc::renameat2(libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, b.as_ptr(), flags) };
    if done == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The racer: one thread a name, each putting objects of its own onto the name again and again
/// (replacing what is there), then taking them back, leaving the name free for a moment. Each
/// object also keeps a private anchor name, so that its link count tells whether someone
/// unlinked it under the name. Reports, per name, `NAME replacements=R lost=L displaced=D` once
/// released: lost objects were deleted by someone else, displaced ones put aside (not deleted).
fn racer(names: &[&str]) {
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let threads: Vec<_> = names
            .iter()
            .enumerate()
            .map(|(slot, name)| {
                let stop = &stop;
                scope.spawn(move || replace_again_and_again(slot, name, stop))
            })
            .collect();
        report("racing");
        common::wait_for_release();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for (name, thread) in names.iter().zip(threads) {
            let (replacements, lost, displaced) = thread.join().expect("a racer thread");
            report(format!("{name} replacements={replacements} lost={lost} displaced={displaced}"));
        }
    });
}

/// Spins for 0 to ~30 µs, as `seed` says, and moves it on.
fn pause(seed: &mut u64) {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    let until = Instant::now() + Duration::from_nanos(*seed % 30_000);
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

fn replace_again_and_again(slot: usize, name: &str, stop: &std::sync::atomic::AtomicBool) -> (u64, u64, u64) {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let target = format!("/dev/shm{name}");
    let staging = format!("/dev/shm/.racer-stage-{slot}");
    let back = format!("/dev/shm/.racer-back-{slot}");
    let (mut replacements, mut lost, mut displaced) = (0, 0, 0);
    let mut seed = 0x9e37_79b9_u64 + slot as u64;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let anchor = format!("/dev/shm/.racer-{slot}-{replacements}");
        let file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&anchor).expect("anchor");
        let inode = file.metadata().expect("fstat").ino();
        std::fs::hard_link(&anchor, &staging).expect("stage");
        // Onto the name, replacing what is there (the exchanged object is then deleted, as a
        // plain rename would have done).
        loop {
            match rename2(&staging, &target, true) {
                Ok(()) => {
                    // (gc may have collected it first: an abandoned volatile object is garbage.)
                    let _ = std::fs::remove_file(&staging);
                    break;
                }
                Err(error) if error.raw_os_error() == Some(libc::ENOENT) => match rename2(&staging, &target, false) {
                    Ok(()) => break,
                    Err(error) if error.raw_os_error() == Some(libc::EEXIST) => {}
                    Err(error) => panic!("rename onto {name}: {error}"),
                },
                Err(error) => panic!("exchange with {name}: {error}"),
            }
        }
        replacements += 1;
        pause(&mut seed);
        // Back from the name: ours, or (if not) where is ours?
        let mut ours_back = false;
        match rename2(&target, &back, false) {
            Ok(()) if std::fs::symlink_metadata(&back).is_ok_and(|meta| meta.ino() == inode) => {
                std::fs::remove_file(&back).expect("retire");
                ours_back = true;
            }
            Ok(()) => {
                // Someone else's: put it back, or delete it as a replacement would have.
                if rename2(&back, &target, false).is_err() {
                    let _ = std::fs::remove_file(&back);
                }
            }
            Err(error) if error.raw_os_error() == Some(libc::ENOENT) => {}
            Err(error) => panic!("take back from {name}: {error}"),
        }
        if !ours_back {
            if file.metadata().expect("fstat").nlink() < 2 {
                lost += 1;
            } else {
                displaced += 1;
            }
        }
        std::fs::remove_file(&anchor).expect("drop the anchor");
        // The name stays free for a moment, for the remover to make its object.
        pause(&mut seed);
    }
    (replacements, lost, displaced)
}

#[test]
fn removal_deletes_only_its_own_object_under_a_rename_race() {
    let _serial = serial();
    let run = race_in_private_dev_shm();
    assert!(run.status.success(), "{run:?}");
    assert_eq!(run.reports.len(), RACED.len(), "{run:?}");
    for line in &run.reports {
        eprintln!("{line}");
        let count = |field: &str| -> u64 {
            let value = line.split_whitespace().find_map(|word| word.strip_prefix(field)).expect("a count");
            value.parse().expect("a number")
        };
        assert_eq!(count("lost="), 0, "foreign objects deleted: {line}");
        // gc is the slow one (it reads every process's descriptors and mappings each time):
        // thousands of removals on a quiet machine, a few on one busy with other suites.
        let least = if line.starts_with("/race-gc") { 5 } else { 1000 };
        assert!(count("replacements=") > 1000 && count("removals=") > least, "too few attempts: {line}");
    }
}

// ---- 4. reserve(true) ----

/// The size of the reserved object of the race.
const RESERVED: usize = 1 << 30;

/// Waits for "go", then opens or makes the reserved object `name`; reports the outcome and the
/// size seen, or the error.
fn reserve_race(name: &str) {
    common::read_line();
    let options = SharedMemory::options().volatile(false).reserve(true);
    match options.open_or_create(name, RESERVED) {
        Ok((shm, outcome)) => report(format!("{outcome:?} {}", shm.len())),
        Err(error) => report(format!("error: {error}")),
    }
}

#[test]
fn eight_processes_open_or_create_a_reserved_gigabyte_and_none_sees_it_empty() {
    let _serial = serial();
    let mut guard = Guard::new();
    let name = guard.track(common::unique_name("reserve")).to_string();
    let mut racers: Vec<_> = (0..8).map(|_| spawn_held("reserve-race", &[&name])).collect();
    for racer in &mut racers {
        racer.send("go");
    }
    let outcomes: Vec<String> = racers.iter_mut().map(common::Held::next_report).collect();
    let created = outcomes.iter().filter(|outcome| *outcome == &format!("Created {RESERVED}")).count();
    let opened = outcomes.iter().filter(|outcome| *outcome == &format!("Opened {RESERVED}")).count();
    assert_eq!((created, opened), (1, 7), "{outcomes:?}");
    for racer in racers {
        assert!(racer.release().status.success());
    }
    assert_eq!(std::fs::metadata(format!("/dev/shm{name}")).expect("the object").len(), RESERVED as u64);
}

// ---- 6. other programs' descriptors and mappings ----

/// A Python process that uses `/dev/shm{name}` as `how` says, until its stdin closes.
struct Python(std::process::Child);

impl Python {
    fn start(name: &str, how: &str) -> Python {
        let file = &name[1..];
        let script = match how {
            // multiprocessing.shared_memory: an open descriptor and a mapping; the resource
            // tracker, which would unlink the object at exit, is told to forget it.
            "shared_memory" => format!(
                "from multiprocessing import shared_memory, resource_tracker\n\
                 s = shared_memory.SharedMemory(name={file:?})\n\
                 resource_tracker.unregister(s._name, 'shared_memory')"
            ),
            // A mapping made through /proc/PID/fd/N, every descriptor closed: only the mapping.
            "proc_fd_mmap" => format!(
                "import mmap, os\n\
                 fd = os.open('/dev/shm/{file}', os.O_RDWR)\n\
                 via = os.open('/proc/%d/fd/%d' % (os.getpid(), fd), os.O_RDWR)\n\
                 m = mmap.mmap(via, 0)\n\
                 os.close(via); os.close(fd)"
            ),
            // A plain open, no mapping.
            _ => format!("f = open('/dev/shm/{file}', 'rb')"),
        };
        let script = format!("{script}\nimport sys\nprint('ready', flush=True)\nsys.stdin.read()\n");
        let mut child = std::process::Command::new("python3")
            .args(["-c", &script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run python3");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("python's stdout");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).expect("python's line");
        assert_eq!(line.trim(), "ready", "python3 ({how}) did not start");
        Python(child)
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

#[test]
fn gc_leaves_objects_that_other_programs_map_or_open() {
    let _serial = serial();
    let mut guard = Guard::new();
    let ways = ["shared_memory", "proc_fd_mmap", "open"];
    let names: Vec<String> = ways.iter().map(|way| guard.track(common::unique_name(way)).to_string()).collect();
    for name in &names {
        abandon(name);
    }
    let users: Vec<Python> = names.iter().zip(ways).map(|(name, way)| Python::start(name, way)).collect();
    for mode in [gc::Mode::DryRun, gc::Mode::Remove] {
        let found = gc::collect(mode).expect("gc");
        for name in &names {
            assert!(found.iter().all(|entry| &entry.name != name), "{mode:?} would remove {name}, in use: {found:?}");
            assert!(common::posix_exists(name));
            let info = ipcmem::inventory::info(&name.as_str().into()).expect("info");
            assert_eq!(info.in_use, Some(true), "{name}");
        }
    }
    drop(users);
    let found = gc::collect(gc::Mode::Remove).expect("gc");
    for name in &names {
        let entry =
            found.iter().find(|entry| &entry.name == name).unwrap_or_else(|| panic!("{name} not collected: {found:?}"));
        assert!(entry.removed);
        assert!(entry.reason.contains("/proc/*/fd") && entry.reason.contains("/proc/*/maps"), "{}", entry.reason);
        assert!(!common::posix_exists(name));
    }
}

// ---- 3 and 2. creators killed half way ----

/// How many creators are killed.
const KILLS: usize = 1000;

/// Forks `KILLS` creators in turn, each making objects (`kind`: persistent POSIX objects named
/// `prefix-PID-N`, or volatile private System V segments) in a loop, and kills each with
/// `SIGKILL` 0 to 200 µs after the fork. Reports the creators' pids, and a file that lists the
/// POSIX objects they completed (which each wrote to a pipe).
fn kill_creators(kind: &str, prefix: &str) {
    let mut pipe = [0; 2];
    // SAFETY: `pipe` is a valid array of two ints.
    assert_eq!(unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) }, 0);
    let mut pids = Vec::new();
    let mut completed = Vec::new();
    let mut seed = 0x2545_f491_u64 ^ u64::from(std::process::id());
    for _ in 0..KILLS {
        // SAFETY: the child only makes objects with ipcmem (glibc's malloc is fork-safe) and
        // writes to the pipe until it is killed.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            create_forever(kind, prefix, pipe[1]);
        }
        assert!(pid > 0, "fork failed");
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let until = Instant::now() + Duration::from_nanos(seed % 200_000);
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        // SAFETY: kills and reaps our own child.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        pids.push(pid.to_string());
        read_pipe(pipe[0], &mut completed);
    }
    report(pids.join(" "));
    // Too many for a report through the pipe that the parent reads only at the end.
    let file = format!("/tmp/ipcmem-test-{}-completed", std::process::id());
    std::fs::write(&file, &completed).expect("write the completed names");
    report(file);
}

/// Appends what the pipe `fd` holds now to `all`.
fn read_pipe(fd: libc::c_int, all: &mut Vec<u8>) {
    let mut buffer = vec![0_u8; 65536];
    loop {
        // SAFETY: reads into our own buffer from our own pipe.
        let count = unsafe { libc::read(fd, buffer.as_mut_ptr().cast(), buffer.len()) };
        let Ok(count) = usize::try_from(count) else { break };
        if count == 0 {
            break;
        }
        all.extend_from_slice(&buffer[..count]);
    }
}

/// In a forked creator: makes objects until killed (at most 20 POSIX objects, then only
/// segments of a moment).
fn create_forever(kind: &str, prefix: &str, pipe: libc::c_int) -> ! {
    let pid = std::process::id();
    for n in 0.. {
        if kind == "posix" && n >= 20 {
            std::hint::spin_loop();
        } else if kind == "posix" {
            let name = format!("{prefix}{pid}-{n}");
            if SharedMemory::options().volatile(false).create(name.as_str(), 4096).is_ok() {
                let line = format!("{name}\n");
                // SAFETY: writes our own bytes to the pipe.
                unsafe { libc::write(pipe, line.as_ptr().cast(), line.len()) };
            }
        } else {
            drop(SharedMemory::create(ipcmem::Key::PRIVATE, 4096));
        }
    }
    // SAFETY: never reached; ends the forked child without the parent's exit handlers.
    unsafe { libc::_exit(0) }
}

/// The segments whose creator is one of `pids`.
fn segments_of(pids: &[&str]) -> Vec<i32> {
    let table = std::fs::read_to_string("/proc/sysvipc/shm").expect("the segments");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            pids.contains(fields.get(4)?).then(|| fields.get(1)?.parse().ok())?
        })
        .collect()
}

#[test]
fn creators_of_persistent_objects_killed_half_way_leave_nothing_that_blocks_a_name() {
    let _serial = serial();
    let prefix = format!("/ipcmem-test-{}-killed-", std::process::id());
    let run = run_child("kill-creators", &["posix", &prefix]);
    let cleanup = Sweep(prefix.clone());
    assert!(run.status.success() && run.reports.len() == 2, "{:?}: {}", run.status, run.stderr);
    let completed = std::fs::read_to_string(&run.reports[1]).expect("the completed names");
    let _ = std::fs::remove_file(&run.reports[1]);
    let completed: Vec<&str> = completed.split_whitespace().collect();
    let objects = || -> Vec<(String, u64)> {
        std::fs::read_dir("/dev/shm")
            .expect("/dev/shm")
            .flatten()
            .filter_map(|entry| {
                let name = format!("/{}", entry.file_name().to_str()?);
                Some((name, entry.metadata().ok()?.len())).filter(|(name, _)| name.starts_with(&prefix))
            })
            .collect()
    };
    let unfinished = objects().iter().filter(|(_, size)| *size == 0).count();
    eprintln!("{KILLS} creators killed: {} objects completed, {unfinished} left unfinished", completed.len());
    std::thread::sleep(Duration::from_millis(1100));
    let found = gc::collect(gc::Mode::Remove).expect("gc");
    let collected = found.iter().filter(|entry| entry.name.starts_with(&prefix) && entry.removed).count();
    eprintln!("gc removed {collected} unfinished objects");
    let left = objects();
    assert!(left.iter().all(|(_, size)| *size == 4096), "gc left unfinished objects: {left:?}");
    for name in completed {
        assert!(common::posix_exists(name), "{name} was complete, and removed");
    }
    // Every name can be made again.
    drop(cleanup);
}

/// Sweeps a prefix when dropped, also when the test fails.
struct Sweep(String);

impl Drop for Sweep {
    fn drop(&mut self) {
        gc::sweep(&self.0);
    }
}

#[test]
fn creators_of_volatile_segments_killed_half_way_leave_nothing_after_gc() {
    let _serial = serial();
    let run = run_child("kill-creators", &["sysv", ""]);
    assert!(run.status.success() && run.reports.len() == 2, "{:?}: {}", run.status, run.stderr);
    let _ = std::fs::remove_file(&run.reports[1]);
    let pids: Vec<&str> = run.reports[0].split_whitespace().collect();
    let leaked = segments_of(&pids);
    eprintln!("{KILLS} creators killed: {} segments left before gc", leaked.len());
    let guard = SegmentGuard(leaked.clone());
    for id in &leaked {
        let info = ipcmem::sysv::shminfo(ipcmem::ShmId::from_raw(*id)).expect("a leaked segment");
        assert_eq!((info.mode & 0o1777, info.nattch), (ipcmem::sysv::CREATING_MODE, 0), "{info:?}");
    }
    let found = gc::collect(gc::Mode::Remove).expect("gc");
    assert!(segments_of(&pids).is_empty(), "gc left segments: {found:?}");
    drop(guard);
}

/// Removes segments when dropped, also when the test fails.
struct SegmentGuard(Vec<i32>);

impl Drop for SegmentGuard {
    fn drop(&mut self) {
        for id in &self.0 {
            let _ = ipcmem::shmrm(ipcmem::ShmId::from_raw(*id));
        }
    }
}

/// Makes a segment as another program would (`mode` octal, no ipcmem), reports its id, exits.
fn raw_segment(mode: &str) {
    let mode = i32::from_str_radix(mode, 8).expect("an octal mode");
    // SAFETY: shmget takes plain integers.
    let id = unsafe { libc::shmget(libc::IPC_PRIVATE, 4096, libc::IPC_CREAT | mode) };
    assert!(id >= 0, "shmget: {}", std::io::Error::last_os_error());
    report(id);
}

#[test]
fn gc_leaves_persistent_attached_and_foreign_segments() {
    let _serial = serial();
    let mut guard = Guard::new();
    let segment = |mode: &str| -> ipcmem::ShmId {
        let run = run_child("raw-segment", &[mode]);
        assert!(run.status.success(), "{run:?}");
        ipcmem::ShmId::from_raw(run.report().parse().expect("an id"))
    };
    // Another program's, its creator gone; the creating mode, attached; a persistent ipcmem
    // segment of a dead creator; the creating mode with a live creator (this process).
    let foreign = segment("600");
    let attached = segment("602");
    let persistent = segment("600");
    for id in [foreign, attached, persistent] {
        guard.track(id);
    }
    let attachment = ipcmem::sysv::shmat(attached, false).expect("attach");
    let live = ipcmem::sysv::shmget(
        ipcmem::Key::PRIVATE,
        4096,
        ipcmem::sysv::IPC_CREAT | ipcmem::sysv::ShmFlags::perms(0o602),
    )
    .expect("shmget");
    guard.track(live);
    let unfinished = segment("602");
    guard.track(unfinished);

    let dry = gc::collect(gc::Mode::DryRun).expect("gc");
    let real = gc::collect(gc::Mode::Remove).expect("gc");
    for kept in [foreign, attached, persistent, live] {
        for found in [&dry, &real] {
            assert!(found.iter().all(|entry| entry.id != Some(kept)), "gc took {kept}: {found:?}");
        }
        assert!(ipcmem::sysv::shminfo(kept).is_ok(), "{kept} was removed");
    }
    let entry = real.iter().find(|entry| entry.id == Some(unfinished)).expect("the unfinished segment");
    assert!(entry.removed && dry.iter().any(|entry| entry.id == Some(unfinished)));
    assert!(ipcmem::sysv::shminfo(unfinished).is_err());
    drop(attachment);
}
