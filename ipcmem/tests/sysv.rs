//! System V segments and the `sysv` module, with real segments and real second processes:
//! volatile segments vanish at the last detach (also of a killed holder), persistent ones
//! outlive their maker, read-only is enforced by the kernel, permissions and sizes are exact,
//! `shminfo` agrees with /proc/sysvipc/shm, and the low-level calls behave as `shmget(2)`,
//! `shmat(2)` and `shmctl(2)` say.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{report, run_child, Guard};
use ipcmem::sysv::{self, ShmCommand, ShmFlags, IPC_CREAT, IPC_EXCL};
use ipcmem::{Error, Id, Key, Limit, SharedMemory, ShmId, ShmInfo};

/// How long a test waits for the kernel to destroy a segment.
const GONE_TIMEOUT: Duration = Duration::from_secs(10);

/// The entry point of child processes (see `common`); a no-op in the parent's test run.
#[test]
fn child_entry() {
    let Some((scenario, args)) = common::scenario() else { return };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let code = match (scenario.as_str(), args.as_slice()) {
        ("hold", [id]) => child_hold(&parse(id)),
        ("create-persistent", [key, content, umask, perms]) => child_create_persistent(key, content, umask, perms),
        ("write-readonly", [id]) => child_write_readonly(&parse(id)),
        ("nobody-open", [key, id]) => child_nobody_open(key, id),
        ("len", [id]) => child_len(&parse(id)),
        ("attach-detach", [id]) => child_attach_detach(&parse(id)),
        ("shmat-write", [id, text]) => child_shmat_write(id, text),
        ("ftok", [path, proj]) => child_ftok(path, proj),
        other => panic!("unknown scenario {other:?}"),
    };
    common::exit(code);
}

fn parse(object: &str) -> Id {
    object.parse().expect("an object")
}

/// Opens `id`, reports, then holds the segment until the parent says "go" (or goes away).
fn child_hold(id: &Id) -> i32 {
    let shm = SharedMemory::open(id).expect("open the segment");
    report(format!("attached {}", shm.len()));
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    drop(shm);
    report("detached");
    0
}

/// Creates a persistent segment of `key` under `umask` with `perms`, writes `content`, reports
/// the id, and exits (detaching).
fn child_create_persistent(key: &str, content: &str, umask: &str, perms: &str) -> i32 {
    common::set_umask(u32::from_str_radix(umask, 8).expect("an octal umask"));
    let perms = u32::from_str_radix(perms, 8).expect("octal perms");
    let shm = SharedMemory::options().volatile(false).perms(perms).create(parse(key), 4096).expect("create");
    shm.write_at(0, content.as_bytes()).expect("write");
    report(shm.id());
    0
}

/// Writes through the pointer of a read-only handle: the kernel must kill this process.
fn child_write_readonly(id: &Id) -> i32 {
    no_core_dumps();
    let shm = SharedMemory::open_readonly(id).expect("open read-only");
    report("opened");
    // SAFETY: not sound on purpose, and never reached in Rust terms: the mapping has no write
    // permission, so the kernel stops this store with SIGSEGV, which the parent checks. No
    // reference to the memory exists that the store could invalidate.
    unsafe { shm.as_mut_ptr().write_volatile(0x55) };
    report("wrote");
    1
}

/// Keeps a deliberate crash from leaving a core file behind.
fn no_core_dumps() {
    let none = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: setrlimit reads the valid struct given; it changes only this (child) process.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &raw const none) };
}

/// As "nobody", tries read-write and read-only opens by key and by id; reports the outcomes.
fn child_nobody_open(key: &str, id: &str) -> i32 {
    common::become_nobody();
    let key = parse(key);
    let id = parse(id);
    let outcomes = [
        outcome(SharedMemory::open(&key)),
        outcome(SharedMemory::open_readonly(&key)),
        outcome(SharedMemory::open(&id)),
        outcome(SharedMemory::open_readonly(&id)),
    ];
    report(outcomes.join(" "));
    0
}

/// A short word for the outcome of an open, for reports.
fn outcome(result: ipcmem::Result<SharedMemory>) -> String {
    match result {
        Ok(shm) if shm.is_readonly() => "ro".into(),
        Ok(_) => "rw".into(),
        Err(Error::PermissionDenied { .. }) => "denied".into(),
        Err(error) => format!("error({error})"),
    }
}

/// Opens `id` and reports its length and the size the kernel gives.
fn child_len(id: &Id) -> i32 {
    let shm = SharedMemory::open_readonly(id).expect("open");
    let info = sysv::shminfo(id).expect("shminfo");
    report(format!("{} {}", shm.len(), info.size));
    0
}

/// Attaches `id`, detaches, and reports this process's id.
fn child_attach_detach(id: &Id) -> i32 {
    drop(SharedMemory::open(id).expect("open"));
    report(std::process::id());
    0
}

/// Writes `text` through a raw `shmat` attachment of segment `id`, then `shmdt`.
fn child_shmat_write(id: &str, text: &str) -> i32 {
    let Ok(Id::Shm(id)) = id.parse::<Id>() else { panic!("an id") };
    let attachment = sysv::shmat(id, false).expect("shmat");
    assert!(text.len() <= attachment.len());
    // SAFETY: the attachment is read-write and `text.len()` bytes long at least (checked); the
    // parent reads the bytes only after this process has exited.
    unsafe { std::ptr::copy_nonoverlapping(text.as_ptr(), attachment.as_mut_ptr(), text.len()) };
    sysv::shmdt(attachment).expect("shmdt");
    report("written");
    0
}

/// Reports the key of `path` and `proj`.
fn child_ftok(path: &str, proj: &str) -> i32 {
    let key = Key::from_path(path, proj.parse().expect("a project number")).expect("ftok");
    report(key.as_raw());
    0
}

/// A child the test talks to while it runs: its reports arrive as they are made, and it goes
/// on when told. Killed, if still running, when dropped.
struct Running {
    child: Child,
    reports: mpsc::Receiver<String>,
}

impl Running {
    fn start(scenario: &str, args: &[&str]) -> Running {
        let mut command = common::child(scenario, args);
        command.stdin(Stdio::piped());
        let mut child = command.spawn().expect("spawn a child");
        let stdout = child.stdout.take().expect("the child's stdout");
        let (sender, reports) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(line) = line.strip_prefix("@@ ") {
                    if sender.send(line.to_owned()).is_err() {
                        break;
                    }
                }
            }
        });
        Running { child, reports }
    }

    /// The child's next report; fails with its stderr if none comes in time.
    fn next_report(&mut self) -> String {
        match self.reports.recv_timeout(common::CHILD_TIMEOUT) {
            Ok(line) => line,
            Err(error) => {
                let _ = self.child.kill();
                let mut stderr = String::new();
                if let Some(mut pipe) = self.child.stderr.take() {
                    let _ = pipe.read_to_string(&mut stderr);
                }
                panic!("no report from the child ({error}); its stderr:\n{stderr}");
            }
        }
    }

    /// Tells the child to go on (closing its stdin).
    fn go_on(&mut self) {
        let mut stdin = self.child.stdin.take().expect("the child's stdin");
        writeln!(stdin, "go").expect("write to the child");
    }

    /// Kills the child with SIGKILL and reaps it.
    fn kill(&mut self) -> ExitStatus {
        self.child.kill().expect("kill the child");
        self.child.wait().expect("reap the child")
    }

    /// Waits for the child's end, killing it after [`common::CHILD_TIMEOUT`].
    fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + common::CHILD_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the child") {
                return status;
            }
            if Instant::now() > deadline {
                return self.kill();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn sysv_id(shm: &SharedMemory) -> ShmId {
    match shm.id() {
        Id::Shm(id) => id,
        other => panic!("not a System V segment: {other}"),
    }
}

fn exists(id: ShmId) -> bool {
    common::proc_sysvipc(id.as_raw()).is_some()
}

fn assert_gone(id: ShmId) {
    assert!(common::wait_until(GONE_TIMEOUT, || !exists(id)), "{id} is still in /proc/sysvipc/shm");
}

/// The line of /proc/sysvipc/shm of `id`, as the perms and nattch fields.
fn proc_mode_nattch(id: ShmId) -> (String, String) {
    let fields = common::proc_sysvipc(id.as_raw()).expect("the segment in /proc/sysvipc/shm");
    (fields[2].clone(), fields[6].clone())
}

// 1. Volatile segments vanish at the last detach.

/// Creates a volatile segment by `key`, lets a child open it by id, drops the parent's handle,
/// then ends the child (by "go" or SIGKILL) and checks the segment is gone.
fn volatile_vanishes(key: Key, kill: bool) {
    let mut guard = Guard::new();
    guard.track(key);
    let shm = SharedMemory::create(key, 4096).unwrap();
    let id = sysv_id(&shm);
    guard.track(id);
    assert!(shm.is_volatile());
    shm.write_at(0, b"volatile").unwrap();

    let mut child = Running::start("hold", &[&id.to_string()]);
    assert_eq!(child.next_report(), "attached 4096");
    drop(shm);
    // The child's attachment alone keeps the segment, already marked for removal.
    let (mode, nattch) = proc_mode_nattch(id);
    assert_eq!((mode.as_str(), nattch.as_str()), ("1600", "1"));

    if kill {
        let status = child.kill();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGKILL));
    } else {
        child.go_on();
        assert_eq!(child.next_report(), "detached");
        assert!(child.wait().success());
    }
    assert_gone(id);
    assert!(matches!(SharedMemory::open(id), Err(Error::NotFound { .. })));
}

#[test]
fn volatile_private_gone_after_child_detaches() {
    volatile_vanishes(Key::PRIVATE, false);
}

#[test]
fn volatile_keyed_gone_after_child_detaches() {
    volatile_vanishes(common::unique_key(), false);
}

#[test]
fn volatile_private_gone_after_holder_killed() {
    volatile_vanishes(Key::PRIVATE, true);
}

#[test]
fn volatile_keyed_gone_after_holder_killed() {
    volatile_vanishes(common::unique_key(), true);
}

#[test]
fn volatile_segment_not_reachable_by_key() {
    let mut guard = Guard::new();
    let key = common::unique_key();
    guard.track(key);
    let shm = SharedMemory::create(key, 64).unwrap();
    guard.track(shm.id());
    for result in [SharedMemory::open(key), SharedMemory::open_readonly(key)] {
        let error = result.unwrap_err();
        assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.starts_with(&key.to_string()), "{message}");
        assert!(message.contains("volatile segments") && message.contains("reachable by id only"), "{message}");
    }
    assert!(matches!(ShmId::from_key(key, true), Err(Error::NotFound { .. })));
    // By id it is there.
    assert_eq!(SharedMemory::open(shm.id()).unwrap().len(), 64);
}

// 2. A persistent segment outlives its maker.

#[test]
fn persistent_segment_outlives_its_maker() {
    let mut guard = Guard::new();
    let key = common::unique_key();
    guard.track(key);
    let child = run_child("create-persistent", &[&key.to_string(), "made by the child", "022", "600"]);
    assert!(child.status.success(), "{child:?}");
    let Id::Shm(id) = parse(child.report()) else { panic!("an id: {child:?}") };
    guard.track(id);

    let info = sysv::shminfo(key).unwrap();
    assert_eq!((info.id, info.nattch, info.key), (id, 0, key));
    assert!(!info.is_marked_for_removal());
    for target in [Id::Key(key), Id::Shm(id)] {
        let shm = SharedMemory::open(&target).unwrap();
        assert_eq!(shm.id(), Id::Shm(id));
        let mut content = [0; 17];
        shm.read_at(0, &mut content).unwrap();
        assert_eq!(&content, b"made by the child");
    }

    ipcmem::shmrm(key).unwrap();
    assert_gone(id);
    ipcmem::shmrm(key).unwrap();
    ipcmem::shmrm(id).unwrap();
}

// 3. Read-only is enforced by the kernel.

/// The permissions column of /proc/self/maps for the mapping that starts at `address`.
fn maps_perms(address: *const u8) -> String {
    let start = format!("{:x}-", address as usize);
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let line = maps.lines().find(|line| line.starts_with(&start)).expect("the mapping in /proc/self/maps");
    line.split_whitespace().nth(1).unwrap().to_owned()
}

#[test]
fn readonly_is_enforced() {
    let mut guard = Guard::new();
    let key = common::unique_key();
    guard.track(key);
    let writer = SharedMemory::options().volatile(false).create(key, 4096).unwrap();
    guard.track(writer.id());
    writer.write_at(0, b"before").unwrap();
    assert_eq!(maps_perms(writer.as_ptr()), "rw-s");

    for target in [Id::Key(key), writer.id()] {
        let reader = SharedMemory::open_readonly(&target).unwrap();
        assert!(reader.is_readonly());
        assert_eq!(maps_perms(reader.as_ptr()), "r--s", "{target}");
        assert!(matches!(reader.write_at(0, b"x"), Err(Error::ReadOnly { .. })));
        assert!(matches!(reader.atomic_u32s(0, 1), Err(Error::ReadOnly { .. })));
        let mut seen = [0; 6];
        reader.read_at(0, &mut seen).unwrap();
        assert_eq!(&seen, b"before");

        let child = run_child("write-readonly", &[&target.to_string()]);
        assert_eq!(child.reports, ["opened"], "{child:?}");
        assert_eq!(child.signal(), Some(libc::SIGSEGV), "{child:?}");
    }
    let mut after = [0; 6];
    writer.read_at(0, &mut after).unwrap();
    assert_eq!(&after, b"before");
}

// 4. Permissions.

#[test]
fn created_perms_exact_whatever_the_umask() {
    let mut guard = Guard::new();
    for umask in ["000", "077", "777"] {
        for perms in [0o600, 0o640, 0o666] {
            let key = common::unique_key();
            guard.track(key);
            let perms_text = format!("{perms:o}");
            let child = run_child("create-persistent", &[&key.to_string(), "x", umask, &perms_text]);
            assert!(child.status.success(), "{child:?}");
            let info = sysv::shminfo(key).unwrap();
            assert_eq!(info.perms(), perms, "umask {umask}, perms {perms:o}");
            assert_eq!(info.mode, perms, "no other mode bits");
            ipcmem::shmrm(key).unwrap();
        }
    }
}

#[test]
fn nobody_gets_what_the_mode_allows() {
    let mut guard = Guard::new();
    for (perms, expected) in
        [(0o600, "denied denied denied denied"), (0o604, "denied ro denied ro"), (0o606, "rw ro rw ro")]
    {
        let key = common::unique_key();
        guard.track(key);
        let shm = SharedMemory::options().volatile(false).perms(perms).create(key, 64).unwrap();
        guard.track(shm.id());
        assert_eq!(sysv::shminfo(key).unwrap().perms(), perms);
        let child = run_child("nobody-open", &[&key.to_string(), &shm.id().to_string()]);
        assert!(child.status.success(), "{child:?}");
        assert_eq!(child.report(), expected, "mode {perms:o}: key-rw key-ro id-rw id-ro");
    }
}

// 5. Sizes.

#[test]
fn sizes_are_exact() {
    for size in [1, 4095, 4097] {
        let shm = SharedMemory::create(Key::PRIVATE, size).unwrap();
        let mut guard = Guard::new();
        let id = guard.track(shm.id());
        assert_eq!(shm.len(), size);
        assert_eq!(sysv::shminfo(&id).unwrap().size, size);
        let child = run_child("len", &[&id.to_string()]);
        assert!(child.status.success(), "{child:?}");
        assert_eq!(child.report(), format!("{size} {size}"));
        // The last byte is there, the one after it is refused.
        shm.write_at(size - 1, &[7]).unwrap();
        assert!(matches!(shm.write_at(size, &[7]), Err(Error::OutOfBounds { .. })));
    }
}

#[test]
fn zero_size_refused() {
    let mut guard = Guard::new();
    let key = common::unique_key();
    guard.track(key);
    for target in [Key::PRIVATE, key] {
        let error = SharedMemory::create(target, 0).unwrap_err();
        assert!(matches!(error, Error::InvalidSize { size: 0, .. }), "{error:?}");
        let error = sysv::shmget(target, 0, IPC_CREAT | IPC_EXCL | ShmFlags::perms(0o600)).unwrap_err();
        assert!(matches!(error, Error::InvalidSize { size: 0, .. }), "{error:?}");
    }
    assert!(matches!(sysv::shminfo(key), Err(Error::NotFound { .. })));
}

/// Sizes the kernel cannot give: a clear error for each, no panic, and nothing left behind.
#[test]
fn huge_sizes_refused_clearly() {
    let shmmax: u64 = std::fs::read_to_string("/proc/sys/kernel/shmmax").unwrap().trim().parse().unwrap();
    if let Some(past) = shmmax.checked_add(1).and_then(|size| usize::try_from(size).ok()) {
        let error = SharedMemory::create(Key::PRIVATE, past).unwrap_err();
        assert!(matches!(error, Error::LimitExceeded { limit: Limit::ShmMax, .. }), "{error:?}");
        assert!(error.to_string().contains("SHMMAX"), "{error}");
    }
    for size in [usize::MAX / 2, usize::MAX / 2 + 1, usize::MAX - (1 << 30), usize::MAX] {
        let error = SharedMemory::create(Key::PRIVATE, size).unwrap_err();
        assert!(
            matches!(error, Error::LimitExceeded { .. } | Error::InvalidSize { .. }),
            "{size}: unclear error {error:?}"
        );
        let message = error.to_string();
        assert!(message.starts_with("private: "), "{message}");
        assert!(!message.contains("exists"), "{size}: a new segment is said to exist: {message}");
        assert!(!segment_sizes().contains(&size.to_string()), "a segment of {size} bytes was left behind");
    }
}

/// The size column of /proc/sysvipc/shm.
fn segment_sizes() -> Vec<String> {
    let table = std::fs::read_to_string("/proc/sysvipc/shm").unwrap();
    table.lines().skip(1).filter_map(|line| line.split_whitespace().nth(3).map(str::to_owned)).collect()
}

// 6. shminfo agrees with /proc/sysvipc/shm.

/// Checks every field of `info` against the segment's line in /proc/sysvipc/shm.
fn assert_matches_proc(info: &ShmInfo) {
    let fields = common::proc_sysvipc(info.id.as_raw()).expect("the segment in /proc/sysvipc/shm");
    let names = [
        "key", "shmid", "perms", "size", "cpid", "lpid", "nattch", "uid", "gid", "cuid", "cgid", "atime", "dtime",
        "ctime",
    ];
    let ours = [
        info.key.as_raw().to_string(),
        info.id.as_raw().to_string(),
        format!("{:o}", info.mode),
        info.size.to_string(),
        info.cpid.to_string(),
        info.lpid.to_string(),
        info.nattch.to_string(),
        info.uid.to_string(),
        info.gid.to_string(),
        info.cuid.to_string(),
        info.cgid.to_string(),
        info.atime.to_string(),
        info.dtime.to_string(),
        info.ctime.to_string(),
    ];
    for ((name, ours), theirs) in names.iter().zip(&ours).zip(&fields) {
        assert_eq!(ours, theirs, "field {name}: shminfo {info:?}, /proc {fields:?}");
    }
}

/// `shminfo` by key and id, `ShmInfo::of`, `shminfo_into` and `ShmCommand::Stat` all agree.
fn info_every_way(key: Option<Key>, id: ShmId) -> ShmInfo {
    let info = sysv::shminfo(id).unwrap();
    assert_eq!(ShmInfo::of(id).unwrap(), info);
    let mut filled = ShmInfo::default();
    sysv::shminfo_into(id, &mut filled).unwrap();
    assert_eq!(filled, info);
    let mut stat = ShmInfo::default();
    sysv::shmctl(id, ShmCommand::Stat(&mut stat)).unwrap();
    assert_eq!(stat, info);
    if let Some(key) = key {
        assert_eq!(sysv::shminfo(key).unwrap(), info);
        assert_eq!(ShmInfo::of(key).unwrap(), info);
    }
    info
}

#[test]
fn shminfo_agrees_with_proc() {
    let mut guard = Guard::new();
    let key = common::unique_key();
    guard.track(key);
    let shm = SharedMemory::options().volatile(false).perms(0o640).create(key, 100).unwrap();
    let id = sysv_id(&shm);
    guard.track(id);
    let me = i32::try_from(std::process::id()).unwrap();

    let created = info_every_way(Some(key), id);
    assert_matches_proc(&created);
    assert_eq!((created.key, created.id, created.mode, created.size), (key, id, 0o640, 100));
    assert_eq!((created.cpid, created.lpid, created.nattch, created.dtime), (me, me, 1, 0));
    assert!(created.atime > 0 && created.ctime > 0);

    let child = run_child("attach-detach", &[&id.to_string()]);
    assert!(child.status.success(), "{child:?}");
    let after_child = info_every_way(Some(key), id);
    assert_matches_proc(&after_child);
    assert_eq!(after_child.lpid.to_string(), child.report(), "the child detached last");
    assert_eq!((after_child.cpid, after_child.nattch), (me, 1));
    assert!(after_child.atime >= created.atime && after_child.dtime >= created.atime);

    // Marked for removal: SHM_DEST in the mode, no more key.
    ipcmem::shmrm(key).unwrap();
    let marked = info_every_way(None, id);
    assert_matches_proc(&marked);
    assert_eq!((marked.key, marked.mode), (Key::PRIVATE, 0o1640));
    assert!(marked.is_marked_for_removal());
    drop(shm);
    assert_gone(id);
}

// 7. shmcfg and shmctl.

#[test]
fn shmcfg_and_shmctl() {
    let mut guard = Guard::new();
    let key = common::unique_key();
    guard.track(key);
    let shm = SharedMemory::options().volatile(false).create(key, 4096).unwrap();
    let id = sysv_id(&shm);
    guard.track(id);

    assert_eq!(sysv::shmcfg(key, 0o640).unwrap(), id);
    assert_eq!(sysv::shminfo(id).unwrap().mode, 0o640);
    assert_eq!(sysv::shmcfg(id, 0o604).unwrap(), id);
    assert_eq!(sysv::shminfo(key).unwrap().mode, 0o604);

    sysv::shmctl(id, ShmCommand::Lock).unwrap();
    let locked = sysv::shminfo(id).unwrap();
    assert!(locked.is_locked());
    assert_matches_proc(&locked);
    sysv::shmctl(id, ShmCommand::Unlock).unwrap();
    assert!(!sysv::shminfo(id).unwrap().is_locked());

    let mut stat = ShmInfo::default();
    sysv::shmctl(id, ShmCommand::Stat(&mut stat)).unwrap();
    assert_eq!(stat, sysv::shminfo(id).unwrap());

    sysv::shmctl(id, ShmCommand::Set { uid: 65534, gid: 65534, perms: 0o660 }).unwrap();
    let set = sysv::shminfo(id).unwrap();
    assert_eq!((set.uid, set.gid, set.perms(), set.cuid, set.cgid), (65534, 65534, 0o660, 0, 0));
    assert_matches_proc(&set);
    // shmcfg keeps the owner.
    sysv::shmcfg(id, 0o600).unwrap();
    let cfg = sysv::shminfo(id).unwrap();
    assert_eq!((cfg.uid, cfg.gid, cfg.mode), (65534, 65534, 0o600));

    sysv::shmctl(id, ShmCommand::Remove).unwrap();
    let removed = sysv::shminfo(id).unwrap();
    assert!(removed.is_marked_for_removal());
    assert_eq!(removed.key, Key::PRIVATE);
    assert!(matches!(sysv::shminfo(key), Err(Error::NotFound { .. })));
    drop(shm);
    assert_gone(id);
    assert!(matches!(sysv::shmctl(id, ShmCommand::Remove), Err(Error::NotFound { .. })));
}

// 8. The low-level calls.

#[test]
fn shmget_shmat_shmdt() {
    let mut guard = Guard::new();
    let key = common::unique_key();
    guard.track(key);
    let id = sysv::shmget(key, 256, IPC_CREAT | IPC_EXCL | ShmFlags::perms(0o600)).unwrap();
    guard.track(id);
    assert_eq!(sysv::shminfo(id).unwrap().size, 256);

    let again = sysv::shmget(key, 256, IPC_CREAT | IPC_EXCL | ShmFlags::perms(0o600)).unwrap_err();
    assert!(matches!(again, Error::AlreadyExists { .. }), "{again:?}");
    assert_eq!(sysv::shmget(key, 256, IPC_CREAT | ShmFlags::perms(0o600)).unwrap(), id);
    assert_eq!(sysv::shmget(key, 0, ShmFlags::default()).unwrap(), id);
    let larger = sysv::shmget(key, 257, ShmFlags::default()).unwrap_err();
    assert!(matches!(larger, Error::InvalidSize { .. }), "{larger:?}");
    let missing = common::unique_key();
    let error = sysv::shmget(missing, 256, ShmFlags::perms(0o600)).unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");

    assert_eq!(ShmId::from_key(key, false).unwrap(), id);
    assert_eq!(ShmId::from_key(key, true).unwrap(), id);
    assert!(matches!(ShmId::from_key(missing, true), Err(Error::NotFound { .. })));

    let attachment = sysv::shmat(id, false).unwrap();
    assert_eq!((attachment.len(), attachment.id(), attachment.is_readonly()), (256, id, false));
    assert_eq!(sysv::shminfo(id).unwrap().nattch, 1);
    let child = run_child("shmat-write", &[&id.to_string(), "from the other process"]);
    assert!(child.status.success(), "{child:?}");
    let mut seen = [0; 22];
    // SAFETY: the attachment has 256 readable bytes; the only writer (the child) has exited.
    unsafe { std::ptr::copy_nonoverlapping(attachment.as_ptr(), seen.as_mut_ptr(), seen.len()) };
    assert_eq!(&seen, b"from the other process");
    assert_eq!(sysv::shminfo(id).unwrap().nattch, 1);

    let readonly = sysv::shmat(id, true).unwrap();
    assert!(readonly.is_readonly());
    assert_eq!(maps_perms(readonly.as_ptr()), "r--s");
    assert_eq!(sysv::shminfo(id).unwrap().nattch, 2);
    sysv::shmdt(readonly).unwrap();
    sysv::shmdt(attachment).unwrap();
    assert_eq!(sysv::shminfo(id).unwrap().nattch, 0);

    sysv::shmctl(id, ShmCommand::Remove).unwrap();
    assert_gone(id);
    assert!(matches!(sysv::shmat(id, false), Err(Error::NotFound { .. })));
}

#[test]
fn key_from_path() {
    let path = std::env::current_exe().unwrap();
    let path = path.to_str().unwrap();
    let key = Key::from_path(path, 42).unwrap();
    assert!(!key.is_private());
    assert_eq!(Key::from_path(path, 42).unwrap(), key);
    assert_ne!(Key::from_path(path, 43).unwrap(), key);
    let child = run_child("ftok", &[path, "42"]);
    assert!(child.status.success(), "{child:?}");
    assert_eq!(child.report(), key.as_raw().to_string());

    let zero = Key::from_path(path, 0).unwrap_err();
    assert!(matches!(zero, Error::InvalidArgument { .. }), "{zero:?}");
    assert!(zero.to_string().starts_with(path), "{zero}");
    let missing = Key::from_path("/nonexistent/ipcmem-test", 1).unwrap_err();
    assert!(matches!(missing, Error::Os { operation: "ftok", .. }), "{missing:?}");
    assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
    let message = missing.to_string();
    assert!(message.starts_with("/nonexistent/ipcmem-test: ftok failed: "), "{message}");
    assert!(!message.contains("shared memory"), "{message}");
}

// 9. Errors name the object and map to io::Error kinds.

#[test]
fn errors_name_the_object() {
    use std::io::ErrorKind;

    let missing = common::unique_key();
    let error = SharedMemory::open(missing).unwrap_err();
    assert!(error.to_string().starts_with(&format!("key:{:#010x}: ", missing.as_raw().cast_unsigned())), "{error}");
    assert_eq!(error.object(), missing.to_string());
    assert_eq!(std::io::Error::from(error).kind(), ErrorKind::NotFound);

    let gone = sysv_id(&SharedMemory::create(Key::PRIVATE, 1).unwrap());
    assert_gone(gone);
    let error = SharedMemory::open(gone).unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    assert!(error.to_string().starts_with(&format!("id:{}: ", gone.as_raw())), "{error}");
    assert_eq!(std::io::Error::from(error).kind(), ErrorKind::NotFound);

    let mut guard = Guard::new();
    let key = common::unique_key();
    guard.track(key);
    let shm = SharedMemory::options().volatile(false).create(key, 16).unwrap();
    let id = guard.track(shm.id());
    let error = SharedMemory::options().volatile(false).create(key, 16).unwrap_err();
    assert!(matches!(error, Error::AlreadyExists { .. }), "{error:?}");
    assert_eq!(error.to_string(), format!("{key}: already exists"));
    assert_eq!(std::io::Error::from(error).kind(), ErrorKind::AlreadyExists);

    let error = SharedMemory::open_readonly(&id).unwrap().write_at(0, b"x").unwrap_err();
    assert_eq!(error.to_string(), format!("{id}: the handle is read-only"));
    assert_eq!(std::io::Error::from(error).kind(), ErrorKind::PermissionDenied);

    let error = shm.write_at(16, b"x").unwrap_err();
    assert!(error.to_string().starts_with(&format!("{id}: ")), "{error}");
    assert_eq!(std::io::Error::from(error).kind(), ErrorKind::InvalidInput);

    let error = SharedMemory::create(key, 0).unwrap_err();
    assert!(error.to_string().starts_with(&format!("{key}: invalid size 0")), "{error}");
    assert_eq!(std::io::Error::from(error).kind(), ErrorKind::InvalidInput);

    let error = SharedMemory::create(Id::Shm(ShmId::from_raw(7)), 16).unwrap_err();
    assert!(error.to_string().starts_with("id:7: "), "{error}");
    assert_eq!(std::io::Error::from(error).kind(), ErrorKind::InvalidInput);

    let error = sysv::shminfo("/not-a-segment").unwrap_err();
    assert!(error.to_string().starts_with("/not-a-segment: "), "{error}");
    assert_eq!(std::io::Error::from(error).kind(), ErrorKind::InvalidInput);
}
