//! Semaphores, robust locks, condition variables and events, shared with real second processes.

mod common;

use std::process::Child;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{report, wait_child, wait_until, Guard};
use ipcmem::sync::{Condvar, LockResult, Mutex, RwLock};
use ipcmem::{Error, Event, Outcome, Semaphore, SharedMemory};

/// Every wait in these tests gives up after this long: long enough never to fail on a busy
/// machine, short enough that a bug fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(10);
/// The offset of a flag word that children raise to say "I hold it now".
const MARK: usize = 2048;
/// The data of the robust mutex tests: two words, written one after the other.
type Pair = [u64; 2];

/// The entry point of child processes (see `common`); a no-op in the parent's test run.
#[test]
fn child_entry() {
    let Some((scenario, args)) = common::scenario() else { return };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let code = match (scenario.as_str(), args.as_slice()) {
        ("sem-named", [name]) => sem_named(name),
        ("sem-post", [shm, offset, times]) => sem_post(shm, offset.parse().unwrap(), times.parse().unwrap()),
        ("sem-attach", [shm, offset]) => sem_attach(shm, offset.parse().unwrap()),
        ("sem-umask", [name]) => sem_umask(name),
        ("sem-glibc-wait", [name]) => sem_glibc_wait(name),
        ("sem-ipcmem-wait", [name]) => sem_ipcmem_wait(name),
        ("mutex-hold", [shm]) => mutex_hold(shm),
        ("rwlock-hold", [shm]) => rwlock_hold(shm),
        ("rwlock-try", [shm]) => rwlock_try(shm),
        ("contend", [shm, rounds]) => contend(shm, rounds.parse().unwrap()),
        ("cond-wait", [shm, offset]) => cond_wait(shm, offset.parse().unwrap()),
        ("event-wait", [shm, seen]) => event_wait(shm, seen.parse().unwrap()),
        ("event-pong", [shm, seen, rounds]) => event_pong(shm, seen.parse().unwrap(), rounds.parse().unwrap()),
        (other, args) => panic!("unknown scenario {other} {args:?}"),
    };
    common::exit(code);
}

/// Removes named semaphores when dropped, also when the test fails.
#[derive(Default)]
struct SemGuard(Vec<String>);

impl SemGuard {
    /// A unique semaphore name, removed when the guard goes.
    fn name(&mut self, tag: &str) -> String {
        let name = common::unique_name(tag);
        self.0.push(name.clone());
        name
    }
}

impl Drop for SemGuard {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = Semaphore::unlink(name);
        }
    }
}

/// A new shared memory object of 4 KiB, removed by `guard`.
fn shared(guard: &mut Guard, tag: &str) -> (Arc<SharedMemory>, String) {
    let name = guard.track(common::unique_name(tag)).to_string();
    (Arc::new(SharedMemory::create(name.as_str(), 4096).unwrap()), name)
}

fn open_shared(name: &str) -> Arc<SharedMemory> {
    Arc::new(SharedMemory::open(name).expect("open the shared memory"))
}

fn spawn(scenario: &str, args: &[&str]) -> Child {
    common::child(scenario, args).spawn().expect("spawn a child")
}

fn mark(shm: &SharedMemory) -> &std::sync::atomic::AtomicU32 {
    &shm.atomic_u32s(MARK, 1).unwrap()[0]
}

/// Waits until `child` raised the mark; kills it and fails if it never does.
fn wait_for_mark(shm: &SharedMemory, mut child: Child) -> Child {
    if !wait_until(PATIENCE, || mark(shm).load(Ordering::Acquire) == 1) {
        let _ = child.kill();
        panic!("the child never raised its mark: {:?}", wait_child(child));
    }
    child
}

/// Whether process `pid` has a thread asleep in a futex call on a shared (not private) word,
/// which is what a parked `Event` or semaphore waiter does (`FUTEX_WAIT`; glibc's `sem_wait`
/// uses `FUTEX_WAIT_BITSET`); the test harness's own threads wait on private words.
fn parked_in_futex(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return false };
    let futex = libc::SYS_futex.to_string();
    tasks.flatten().any(|task| {
        std::fs::read_to_string(task.path().join("syscall")).is_ok_and(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let op = fields.get(2).and_then(|op| u32::from_str_radix(op.trim_start_matches("0x"), 16).ok());
            fields.first() == Some(&futex.as_str()) && op.is_some_and(|op| op & libc::FUTEX_PRIVATE_FLAG as u32 == 0)
        })
    })
}

// ---- children ----

/// Opens the named semaphore (value 2), takes both, says whether a third would block, posts 5.
fn sem_named(name: &str) -> i32 {
    let sem = Semaphore::open(name).expect("open the named semaphore");
    let taken = [sem.try_wait().unwrap(), sem.try_wait().unwrap(), sem.try_wait().unwrap()];
    for _ in 0..5 {
        sem.post().unwrap();
    }
    report(format!("{taken:?}"));
    0
}

fn sem_post(shm: &str, offset: usize, times: u32) -> i32 {
    let shm = open_shared(shm);
    let sem = Semaphore::attach_at(&shm, offset).expect("attach the semaphore");
    for _ in 0..times {
        sem.post().unwrap();
    }
    0
}

/// Attaches every way there is to a semaphore in use, and reports what it found.
fn sem_attach(shm: &str, offset: usize) -> i32 {
    let shm = open_shared(shm);
    let (sem, outcome) = Semaphore::init_or_attach_at(&shm, offset, 100).expect("init or attach");
    let again = Semaphore::init_at(&shm, offset, 100);
    report(format!("{outcome:?} {} {}", sem.value(), matches!(again, Err(Error::AlreadyExists { .. }))));
    0
}

fn sem_umask(name: &str) -> i32 {
    common::set_umask(0o077);
    let _sem = Semaphore::options().perms(0o644).volatile(false).create(name, 0).expect("create");
    let path = format!("/dev/shm/sem.{}", &name[1..]);
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(path).unwrap().permissions());
    report(format!("{:o}", mode & 0o777));
    0
}

/// Takes the robust mutex, half updates its data, raises the mark and waits to be killed.
fn mutex_hold(shm: &str) -> i32 {
    let shm = open_shared(shm);
    let mutex = attach_mutex::<Pair>(&shm, 0).expect("attach the mutex");
    let mut guard = mutex.lock().expect("lock").into_guard();
    guard.update(|pair| pair[0] = 1).unwrap(); // the second word would follow: the owner dies first
    mark(&shm).store(1, Ordering::Release);
    std::thread::sleep(common::CHILD_TIMEOUT);
    3
}

/// Takes the write lock, raises the mark and waits to be killed.
fn rwlock_hold(shm: &str) -> i32 {
    let shm = open_shared(shm);
    let lock = RwLock::<u64>::attach_at(&shm, 0).expect("attach the lock");
    let _guard = lock.write().expect("write");
    mark(&shm).store(1, Ordering::Release);
    std::thread::sleep(common::CHILD_TIMEOUT);
    3
}

/// Where `contend` finds its objects: a read-write lock over a pair, a semaphore used as a lock
/// over a counter, the counter.
const CONTEND_LOCK: usize = 0;
const CONTEND_SEM: usize = 256;
const CONTEND_COUNTER: usize = 512;

/// `rounds` times: adds one to both words of the pair under the write lock, checks under a read
/// lock that they are equal, and adds one to the counter under the semaphore; reports the
/// pairs found unequal.
fn contend(shm: &str, rounds: u64) -> i32 {
    let shm = open_shared(shm);
    let lock = RwLock::<Pair>::attach_at(&shm, CONTEND_LOCK).expect("attach the lock");
    let sem = Semaphore::attach_at(&shm, CONTEND_SEM).expect("attach the semaphore");
    let counter = &shm.atomic_u64s(CONTEND_COUNTER, 1).unwrap()[0];
    let mut torn = 0;
    for round in 0..rounds {
        // Now and then a holder gives up its CPU: the others find the lock taken and park.
        let linger = || {
            if round % 8 == 0 {
                std::thread::yield_now();
            }
        };
        lock.write()
            .unwrap()
            .update(|pair| {
                pair[0] += 1;
                linger();
                pair[1] += 1;
            })
            .unwrap();
        let reading = lock.read().unwrap();
        let pair = reading.get().unwrap();
        linger();
        drop(reading);
        torn += u32::from(pair[0] != pair[1]);
        sem.wait().unwrap();
        // A plain read-modify-write, not fetch_add: only the semaphore keeps it whole.
        let count = counter.load(Ordering::Relaxed);
        linger();
        counter.store(count + 1, Ordering::Relaxed);
        sem.post().unwrap();
    }
    report(format!("torn {torn}"));
    0
}

/// While the parent holds a read lock: may this process read, and write?
fn rwlock_try(shm: &str) -> i32 {
    let shm = open_shared(shm);
    let lock = RwLock::<u64>::attach_at(&shm, 0).expect("attach the lock");
    let read = lock.try_read().unwrap().map(|guard| guard.get().unwrap());
    let write = lock.write_timeout(Duration::from_millis(50)).unwrap().is_some();
    report(format!("{read:?} {write}"));
    0
}

/// Counts itself in as a waiter, waits for `go` (word 1), then counts itself as woken (word 2).
fn cond_wait(shm: &str, offset: usize) -> i32 {
    let shm = open_shared(shm);
    let mutex = attach_mutex::<[u32; 3]>(&shm, 0).expect("attach the mutex");
    let condvar = Condvar::attach_at(&shm, offset).expect("attach the condition variable");
    let mut guard = mutex.lock().unwrap().into_guard();
    guard.update(|words| words[0] += 1).unwrap();
    let deadline = Instant::now() + PATIENCE;
    while guard.get().unwrap()[1] == 0 {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else { return 3 };
        guard = condvar.wait_timeout(guard, left).unwrap().0.into_guard();
    }
    guard.update(|words| words[2] += 1).unwrap();
    0
}

/// Parks on the event (no spinning) until it moves past `seen`.
fn event_wait(shm: &str, seen: u32) -> i32 {
    let shm = open_shared(shm);
    let event = Event::attach_at(&shm, 0).unwrap().with_spin(Duration::ZERO);
    match event.wait_timeout(seen, PATIENCE * 2).unwrap() {
        Some(_) => 0,
        None => 3,
    }
}

/// Answers each ping (event at 0) with a pong (event at 64), `rounds` times.
fn event_pong(shm: &str, mut seen: u32, rounds: u32) -> i32 {
    let shm = open_shared(shm);
    let request = Event::attach_at(&shm, 0).unwrap();
    let answer = Event::attach_at(&shm, 64).unwrap();
    for _ in 0..rounds {
        let Some(now) = request.wait_timeout(seen, PATIENCE).unwrap() else { return 3 };
        seen = now;
        answer.notify_one();
    }
    0
}

// ---- semaphores ----

#[test]
fn named_semaphore_counts_across_processes() {
    let mut sems = SemGuard::default();
    let name = sems.name("sem");
    let sem = Semaphore::create(&name, 2).unwrap();
    assert!(std::path::Path::new(&format!("/dev/shm/sem.{}", &name[1..])).exists());
    let child = wait_child(spawn("sem-named", &[&name]));
    assert!(child.status.success(), "{child:?}");
    assert_eq!(child.report(), "[true, true, false]", "the third try_wait must say it would block");
    assert_eq!(sem.value(), 5);
    for _ in 0..5 {
        assert!(sem.wait_timeout(PATIENCE).unwrap());
    }
    assert!(!sem.try_wait().unwrap());
}

#[test]
fn anonymous_semaphore_counts_across_processes() {
    let mut guard = Guard::new();
    let (shm, name) = shared(&mut guard, "anon-sem");
    let sem = Semaphore::init_at(&shm, 64, 0).unwrap();
    let child = wait_child(spawn("sem-post", &[&name, "64", "4"]));
    assert!(child.status.success(), "{child:?}");
    for _ in 0..4 {
        assert!(sem.wait_timeout(PATIENCE).unwrap());
    }
    assert!(!sem.try_wait().unwrap(), "a count of zero would block");
}

#[test]
fn semaphore_wait_blocks_until_another_process_posts() {
    let mut guard = Guard::new();
    let (shm, name) = shared(&mut guard, "sem-block");
    let sem = Semaphore::init_at(&shm, 0, 0).unwrap();
    let child = spawn("sem-post", &[&name, "0", "1"]);
    assert!(sem.wait_timeout(PATIENCE).unwrap(), "the child's post never arrived");
    assert!(wait_child(child).status.success());
}

#[test]
fn try_wait_on_zero_would_block() {
    let mut sems = SemGuard::default();
    let named = Semaphore::create(&sems.name("zero"), 0).unwrap();
    assert!(!named.try_wait().unwrap());
    named.post().unwrap();
    assert!(named.try_wait().unwrap());
    assert!(!named.try_wait().unwrap());
}

#[test]
fn wait_timeout_gives_up_after_the_time_given() {
    let mut guard = Guard::new();
    let (shm, _) = shared(&mut guard, "sem-timeout");
    let sem = Semaphore::init_at(&shm, 0, 0).unwrap();
    let timeout = Duration::from_millis(200);
    let started = Instant::now();
    assert!(!sem.wait_timeout(timeout).unwrap(), "nothing posted: the wait must time out");
    let waited = started.elapsed();
    assert!(waited >= timeout, "returned after {waited:?}, before the {timeout:?} asked");
    assert!(waited < PATIENCE, "returned only after {waited:?}");
}

#[test]
fn attaching_never_reinitialises_a_semaphore_in_use() {
    let mut guard = Guard::new();
    let (shm, name) = shared(&mut guard, "sem-attach");
    let sem = Semaphore::init_at(&shm, 8, 3).unwrap();
    let child = wait_child(spawn("sem-attach", &[&name, "8"]));
    assert!(child.status.success(), "{child:?}");
    assert_eq!(child.report(), "Opened 3 true", "the child must attach to the count of 3, not make a new one");
    assert_eq!(sem.value(), 3);
}

#[test]
fn named_semaphore_options_and_lifetime() {
    let mut sems = SemGuard::default();
    let name = sems.name("life");
    let path = format!("/dev/shm/sem.{}", &name[1..]);
    let (sem, outcome) = Semaphore::options().open_or_create(&name, 1).unwrap();
    assert_eq!(outcome, Outcome::Created);
    let (again, outcome) = Semaphore::options().open_or_create(&name, 7).unwrap();
    assert_eq!((outcome, again.value()), (Outcome::Opened, 1));
    assert!(matches!(Semaphore::create(&name, 0), Err(Error::AlreadyExists { object }) if object == name));
    drop((sem, again));
    assert!(!std::path::Path::new(&path).exists(), "a volatile semaphore goes with its last handle");
    assert!(matches!(Semaphore::open(&name), Err(Error::NotFound { object, .. }) if object == name));

    let kept = Semaphore::options().volatile(false).create(&name, 0).unwrap();
    drop(kept);
    assert!(std::path::Path::new(&path).exists(), "a persistent semaphore stays");
    Semaphore::unlink(&name).unwrap();
    Semaphore::unlink(&name).unwrap(); // gone already: still Ok
    assert!(!std::path::Path::new(&path).exists());
}

#[test]
fn named_semaphore_mode_is_exact_whatever_the_umask() {
    let mut sems = SemGuard::default();
    let name = sems.name("mode");
    let child = common::run_child("sem-umask", &[&name]);
    assert!(child.status.success(), "{child:?}");
    assert_eq!(child.report(), "644");
}

#[test]
fn named_semaphore_is_the_one_sem_open_sees() {
    let mut sems = SemGuard::default();
    let name = sems.name("glibc");
    let sem = Semaphore::create(&name, 0).unwrap();
    let c_name = std::ffi::CString::new(name.as_str()).unwrap();
    // SAFETY: a valid C string; without O_CREAT, sem_open takes no further arguments.
    let raw = unsafe { libc::sem_open(c_name.as_ptr(), 0) };
    assert_ne!(raw, libc::SEM_FAILED, "sem_open: {}", std::io::Error::last_os_error());
    // SAFETY: `raw` is the semaphore sem_open returned, closed right after.
    unsafe {
        assert_eq!(libc::sem_post(raw), 0);
        libc::sem_close(raw);
    }
    assert_eq!(sem.value(), 1);
}

/// Opens the named semaphore with glibc's `sem_open` and waits in glibc's `sem_wait`.
fn sem_glibc_wait(name: &str) -> i32 {
    let c_name = std::ffi::CString::new(name).unwrap();
    // SAFETY: a valid C string; without O_CREAT, sem_open takes no further arguments.
    let raw = unsafe { libc::sem_open(c_name.as_ptr(), 0) };
    assert_ne!(raw, libc::SEM_FAILED, "sem_open: {}", std::io::Error::last_os_error());
    // SAFETY: `raw` is the semaphore sem_open returned, closed right after.
    let code = unsafe {
        let code = libc::sem_wait(raw);
        libc::sem_close(raw);
        code
    };
    report(format!("sem_wait {code}"));
    0
}

/// Opens the named semaphore with ipcmem and waits in ipcmem's `wait`.
fn sem_ipcmem_wait(name: &str) -> i32 {
    let sem = Semaphore::open(name).unwrap();
    sem.wait().unwrap();
    report("waited");
    0
}

/// ipcmem's waits and posts follow glibc's layout: a post of either wakes a waiter of the other,
/// parked in another process.
#[test]
fn semaphore_waits_and_posts_interoperate_with_glibc() {
    let mut sems = SemGuard::default();
    let name = sems.name("glibc-wake");
    let sem = Semaphore::create(&name, 0).unwrap();

    let mut glibc_waiter = spawn("sem-glibc-wait", &[&name]);
    if !wait_until(PATIENCE, || parked_in_futex(glibc_waiter.id())) {
        let _ = glibc_waiter.kill();
        panic!("glibc's sem_wait never parked: {:?}", wait_child(glibc_waiter));
    }
    sem.post().unwrap();
    let run = wait_child(glibc_waiter);
    assert_eq!(run.report(), "sem_wait 0", "{run:?}");

    let mut ipcmem_waiter = spawn("sem-ipcmem-wait", &[&name]);
    if !wait_until(PATIENCE, || parked_in_futex(ipcmem_waiter.id())) {
        let _ = ipcmem_waiter.kill();
        panic!("ipcmem's wait never parked: {:?}", wait_child(ipcmem_waiter));
    }
    let c_name = std::ffi::CString::new(name.as_str()).unwrap();
    // SAFETY: a valid C string; without O_CREAT, sem_open takes no further arguments.
    let raw = unsafe { libc::sem_open(c_name.as_ptr(), 0) };
    assert_ne!(raw, libc::SEM_FAILED, "sem_open: {}", std::io::Error::last_os_error());
    // SAFETY: `raw` is the semaphore sem_open returned, closed right after.
    unsafe {
        assert_eq!(libc::sem_post(raw), 0);
        libc::sem_close(raw);
    }
    let run = wait_child(ipcmem_waiter);
    assert_eq!(run.report(), "waited", "{run:?}");
    assert_eq!(sem.value(), 0);
}

#[test]
fn semaphore_bad_input_is_a_clear_error() {
    let mut guard = Guard::new();
    let (shm, name) = shared(&mut guard, "sem-bad");
    assert!(matches!(Semaphore::create("no-slash", 0), Err(Error::InvalidName { .. })));
    assert!(matches!(Semaphore::create(&format!("/{}", "x".repeat(252)), 0), Err(Error::InvalidName { .. })));
    let mut sems = SemGuard::default();
    assert!(matches!(Semaphore::create(&sems.name("max"), u32::MAX), Err(Error::InvalidArgument { .. })));
    assert!(matches!(Semaphore::init_at(&shm, 4, 0), Err(Error::Misaligned { .. })));
    assert!(matches!(Semaphore::init_at(&shm, 4096 - 8, 0), Err(Error::OutOfBounds { .. })));
    assert!(matches!(Semaphore::init_at(&shm, usize::MAX - 7, 0), Err(Error::OutOfBounds { .. })));
    let error = Semaphore::attach_at(&shm, 0).unwrap_err();
    assert!(error.to_string().contains("nothing has been initialised"), "{error}");
    let readonly = Arc::new(SharedMemory::open_readonly(name.as_str()).unwrap());
    assert!(matches!(Semaphore::init_at(&readonly, 0, 0), Err(Error::ReadOnly { .. })));
    let _mutex = init_mutex(&shm, 512, 0_u32).unwrap();
    let error = Semaphore::attach_at(&shm, 512).unwrap_err();
    assert!(error.to_string().contains("a mutex is there"), "{error}");
    let sem = Semaphore::init_at(&shm, 0, 0).unwrap();
    assert!(matches!(sem.remove(), Err(Error::InvalidArgument { .. })));
}

// ---- robust mutex ----

#[test]
fn robust_mutex_reports_a_killed_owner_and_recovers() {
    let mut guard = Guard::new();
    let (shm, name) = shared(&mut guard, "robust");
    let mutex = init_mutex(&shm, 0, [0_u64; 2]).unwrap();
    let mut child = wait_for_mark(&shm, spawn("mutex-hold", &[&name]));

    // Attaching while the child holds it changes nothing: the lock stays held, the data stays.
    let other = open_shared(&name);
    let (attached, outcome) = init_or_attach_mutex(&other, 0, [9_u64; 2]).unwrap();
    assert_eq!(outcome, Outcome::Opened);
    assert!(attached.try_lock().unwrap().is_none(), "the child holds the lock");
    assert!(mutex.lock_timeout(Duration::from_millis(20)).unwrap().is_none());

    child.kill().unwrap();
    let run = wait_child(child);
    assert_eq!(run.signal(), Some(libc::SIGKILL), "{run:?}");

    let Some(LockResult::OwnerDied(mut held)) = mutex.lock_timeout(PATIENCE).unwrap() else {
        panic!("the lock of a dead owner must say so");
    };
    assert!(!held.is_consistent());
    assert_eq!(held.get().unwrap(), [1, 0], "the data is as the dead owner left it, flagged by OwnerDied");
    held.set([1, 1]).unwrap(); // repair
    held.make_consistent().unwrap();
    drop(held);
    let again = attached.lock().unwrap();
    assert!(!again.owner_died());
    assert_eq!(again.into_guard().get().unwrap(), [1, 1]);
}

#[test]
fn a_mutex_left_inconsistent_becomes_unusable() {
    let mut guard = Guard::new();
    let (shm, name) = shared(&mut guard, "unrecovered");
    let mutex = init_mutex(&shm, 0, [0_u64; 2]).unwrap();
    let mut child = wait_for_mark(&shm, spawn("mutex-hold", &[&name]));
    child.kill().unwrap();
    wait_child(child);
    let result = mutex.lock_timeout(PATIENCE).unwrap().expect("the lock");
    assert!(result.owner_died());
    drop(result); // not made consistent
    let error = mutex.lock().unwrap_err();
    assert!(error.to_string().contains("unusable"), "{error}");
}

#[test]
fn mutex_locked_twice_by_one_thread_is_an_error_not_a_deadlock() {
    let mut guard = Guard::new();
    let (shm, _) = shared(&mut guard, "relock");
    let mutex = init_mutex(&shm, 0, 7_u32).unwrap();
    let held = mutex.lock().unwrap().into_guard();
    let error = mutex.lock().unwrap_err();
    assert!(error.to_string().contains("holds the lock already"), "{error}");
    assert_eq!(held.get().unwrap(), 7);
}

#[test]
fn mutex_attach_checks_kind_and_data_size() {
    let mut guard = Guard::new();
    let (shm, _) = shared(&mut guard, "mutex-kind");
    let _mutex = init_mutex(&shm, 0, 0_u32).unwrap();
    let error = attach_mutex::<u64>(&shm, 0).unwrap_err();
    assert!(error.to_string().contains("4 bytes of data, not 8"), "{error}");
    assert!(matches!(init_mutex(&shm, 0, 1_u32), Err(Error::AlreadyExists { .. })));
    assert!(RwLock::<u32>::attach_at(&shm, 0).is_err());
    assert!(matches!(init_mutex(&shm, 12, 0_u32), Err(Error::Misaligned { .. })));
}

#[test]
fn a_forgotten_guard_keeps_the_memory_mapped() {
    let mut guard = Guard::new();
    let (shm, _) = shared(&mut guard, "forgotten");
    let first = init_mutex(&shm, 0, 0_u32).unwrap();
    let second = init_mutex(&shm, 128, 0_u32).unwrap();
    std::mem::forget(first.lock().unwrap());
    let before = Arc::strong_count(&shm);
    drop(first);
    assert_eq!(Arc::strong_count(&shm), before, "the mutex must leak its mapping, not give it back");
    // Locking another robust mutex walks this thread's robust list, which still names the first.
    assert_eq!(second.lock().unwrap().into_guard().get().unwrap(), 0);
}

// ---- read-write lock ----

#[test]
fn rwlock_readers_share_writers_exclude_across_processes() {
    let mut guard = Guard::new();
    let (shm, name) = shared(&mut guard, "rwlock");
    let lock = RwLock::init_at(&shm, 0, 42_u64).unwrap();
    let read = lock.read().unwrap();
    let child = common::run_child("rwlock-try", &[&name]);
    assert!(child.status.success(), "{child:?}");
    assert_eq!(child.report(), "Some(42) false", "a reader may join, a writer must wait");
    drop(read);
    lock.write().unwrap().set(43).unwrap();
    assert_eq!(lock.read().unwrap().get().unwrap(), 43);
}

/// ipcmem's own read-write lock and semaphore keep their promises under contention: 4 processes
/// take them 20000 times each, parking and waking one another; no update is lost, no reader
/// sees a half-made pair.
#[test]
fn own_locks_and_semaphores_exclude_under_contention_across_processes() {
    const PROCESSES: u64 = 4;
    const ROUNDS: u64 = 20_000;
    let mut guard = Guard::new();
    let (shm, name) = shared(&mut guard, "contend");
    let lock = RwLock::init_at(&shm, CONTEND_LOCK, [0_u64; 2]).unwrap();
    let _sem = Semaphore::init_at(&shm, CONTEND_SEM, 1).unwrap();
    let rounds = ROUNDS.to_string();
    let children: Vec<Child> = (0..PROCESSES).map(|_| spawn("contend", &[&name, &rounds])).collect();
    for child in children {
        let run = wait_child(child);
        assert!(run.status.success(), "{run:?}");
        assert_eq!(run.report(), "torn 0", "{run:?}");
    }
    assert_eq!(lock.read().unwrap().get().unwrap(), [PROCESSES * ROUNDS; 2], "no update of the pair lost");
    assert_eq!(shm.load_u64(CONTEND_COUNTER, Ordering::SeqCst).unwrap(), PROCESSES * ROUNDS, "no count lost");
}

#[test]
fn rwlock_held_by_a_killed_process_times_out_instead_of_hanging() {
    let mut guard = Guard::new();
    let (shm, name) = shared(&mut guard, "rwlock-dead");
    let lock = RwLock::init_at(&shm, 0, 0_u64).unwrap();
    let mut child = wait_for_mark(&shm, spawn("rwlock-hold", &[&name]));
    let (attached, outcome) = RwLock::init_or_attach_at(&shm, 0, 5_u64).unwrap();
    assert_eq!(outcome, Outcome::Opened);
    child.kill().unwrap();
    wait_child(child);
    // Not robust: the lock stays held; the timed calls give up.
    assert!(lock.read_timeout(Duration::from_millis(50)).unwrap().is_none());
    assert!(attached.write_timeout(Duration::from_millis(50)).unwrap().is_none());
    assert!(lock.try_read().unwrap().is_none());
}

// ---- condition variable ----

#[test]
fn condvar_notify_all_wakes_every_waiting_process() {
    const WAITERS: u32 = 3;
    let mut guard = Guard::new();
    let (shm, name) = shared(&mut guard, "condvar");
    // Words: waiting, go, woken.
    let mutex = init_mutex(&shm, 0, [0_u32; 3]).unwrap();
    let condvar = Condvar::init_at(&shm, 512).unwrap();
    let children: Vec<Child> = (0..WAITERS).map(|_| spawn("cond-wait", &[&name, "512"])).collect();
    // A waiter counts itself in under the lock and releases it only by waiting: once the count
    // is full, every child is inside its wait.
    let all_waiting = wait_until(PATIENCE, || mutex.lock().unwrap().into_guard().get().unwrap()[0] == WAITERS);
    if !all_waiting {
        for mut child in children {
            let _ = child.kill();
        }
        panic!("the waiters never all started waiting");
    }
    mutex.lock().unwrap().into_guard().update(|words| words[1] = 1).unwrap();
    condvar.notify_all().unwrap();
    for child in children {
        let run = wait_child(child);
        assert!(run.status.success(), "a waiter was not woken: {run:?}");
    }
    assert_eq!(mutex.lock().unwrap().into_guard().get().unwrap(), [WAITERS, 1, WAITERS]);
}

#[test]
fn condvar_wait_timeout_times_out() {
    let mut guard = Guard::new();
    let (shm, _) = shared(&mut guard, "condvar-timeout");
    let mutex = init_mutex(&shm, 0, 0_u32).unwrap();
    let condvar = Condvar::init_at(&shm, 128).unwrap();
    let (attached, outcome) = Condvar::init_or_attach_at(&shm, 128).unwrap();
    assert_eq!(outcome, Outcome::Opened);
    attached.notify_one().unwrap(); // nobody waits: nothing happens
    let started = Instant::now();
    let (held, result) = condvar.wait_timeout(mutex.lock().unwrap().into_guard(), Duration::from_millis(100)).unwrap();
    assert!(result.timed_out());
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert!(!held.owner_died());
}

// ---- event ----

#[test]
fn event_wakes_one_then_all_across_processes() {
    const WAITERS: usize = 3;
    let mut guard = Guard::new();
    let (shm, name) = shared(&mut guard, "event");
    let event = Event::attach_at(&shm, 0).unwrap();
    let seen = event.value().to_string();
    let mut children: Vec<Child> = (0..WAITERS).map(|_| spawn("event-wait", &[&name, &seen])).collect();
    let parked = wait_until(PATIENCE, || children.iter().all(|child| parked_in_futex(child.id())));
    if !parked {
        for child in &mut children {
            let _ = child.kill();
        }
        panic!("the waiters never all parked");
    }
    assert_eq!(event.notify_one(), 1, "notify_one wakes exactly one parked waiter");
    let one_done = wait_until(PATIENCE, || children.iter_mut().any(|child| child.try_wait().unwrap().is_some()));
    assert!(one_done, "the woken waiter did not finish");
    let finished = children.iter_mut().filter_map(|child| child.try_wait().unwrap()).count();
    assert_eq!(finished, 1, "only one waiter may have been woken");
    assert_eq!(event.notify_all(), WAITERS - 1, "notify_all wakes the others");
    for child in children {
        let run = wait_child(child);
        assert!(run.status.success(), "{run:?}");
    }
}

#[test]
fn event_ping_pong_between_processes() {
    const ROUNDS: u32 = 200;
    let mut guard = Guard::new();
    let (shm, name) = shared(&mut guard, "pingpong");
    let request = Event::attach_at(&shm, 0).unwrap();
    let answer = Event::attach_at(&shm, 64).unwrap();
    let mut seen = answer.value();
    let child = spawn("event-pong", &[&name, &request.value().to_string(), &ROUNDS.to_string()]);
    for round in 0..ROUNDS {
        request.notify_one();
        match answer.wait_timeout(seen, PATIENCE).unwrap() {
            Some(now) => seen = now,
            None => panic!("no pong in round {round}: {:?}", wait_child(child)),
        }
    }
    assert!(wait_child(child).status.success());
}

#[test]
fn event_wait_timeout_and_bad_places() {
    let mut guard = Guard::new();
    let (shm, name) = shared(&mut guard, "event-bad");
    for spin in [Duration::ZERO, Event::DEFAULT_SPIN] {
        let event = Event::attach_at(&shm, 8).unwrap().with_spin(spin);
        let seen = event.value();
        let started = Instant::now();
        assert_eq!(event.wait_timeout(seen, Duration::from_millis(50)).unwrap(), None);
        assert!(started.elapsed() >= Duration::from_millis(50));
        event.notify_all();
        assert_eq!(event.wait(seen).unwrap(), seen.wrapping_add(1), "a change before the wait is not lost");
    }
    assert!(matches!(Event::attach_at(&shm, 2), Err(Error::Misaligned { .. })));
    assert!(matches!(Event::attach_at(&shm, 4092), Err(Error::OutOfBounds { .. })));
    // A read-only handle waits (FUTEX_WAIT needs only read access) but cannot notify.
    let readonly = Arc::new(SharedMemory::open_readonly(name.as_str()).unwrap());
    let watcher = Event::attach_at(&readonly, 8).unwrap().with_spin(Duration::ZERO);
    assert!(watcher.is_readonly());
    let seen = watcher.value();
    assert_eq!((watcher.notify_all(), watcher.wake_all_parked(), watcher.value()), (0, 0, seen));
    let notifier = Event::attach_at(&shm, 8).unwrap();
    let woken = std::thread::scope(|scope| {
        let waiting = scope.spawn(|| watcher.wait_timeout(seen, Duration::from_secs(5)).unwrap());
        // The read-only waiter could not register: notify_all skips the system call, and
        // wake_all_parked reaches it.
        std::thread::sleep(Duration::from_millis(50));
        notifier.notify_all();
        while !waiting.is_finished() {
            notifier.wake_all_parked();
            std::thread::sleep(Duration::from_millis(1));
        }
        waiting.join().unwrap()
    });
    assert_eq!(woken, Some(seen.wrapping_add(1)));
}

#[test]
fn event_placed_in_a_shared_array() {
    let name = format!("/ipcmem-test-event-array-{}", std::process::id());
    let array = Arc::new(ipcmem::SharedArray::<u64>::create(name.as_str(), &[16]).unwrap());
    // The event lives in the array's first element; the array handle keeps it mapped.
    let event = Event::attach_at(&array, 64).unwrap();
    let seen = event.value();
    event.notify_one();
    assert_eq!(event.wait_timeout(seen, Duration::from_secs(1)).unwrap(), Some(seen.wrapping_add(1)));
    assert_eq!(event.shared_memory().id(), array.id());
    assert!(matches!(Event::attach_at(&array, 64 + 16 * 8), Err(Error::OutOfBounds { .. })));
}

/// [`Mutex::init_at`] for these tests and benches, which write a mutex's bytes only through its
/// handles.
fn init_mutex<T: bytemuck::Pod>(
    shm: &std::sync::Arc<SharedMemory>,
    offset: usize,
    value: T,
) -> ipcmem::Result<Mutex<T>> {
    // SAFETY: nothing here writes the mutex's bytes other than through `Mutex` handles.
    unsafe { Mutex::init_at(shm, offset, value) }
}

/// [`Mutex::attach_at`], under the same promise as `init_mutex`.
fn attach_mutex<T: bytemuck::Pod>(shm: &std::sync::Arc<SharedMemory>, offset: usize) -> ipcmem::Result<Mutex<T>> {
    // SAFETY: as in `init_mutex`.
    unsafe { Mutex::attach_at(shm, offset) }
}

/// [`Mutex::init_or_attach_at`], under the same promise as `init_mutex`.
fn init_or_attach_mutex<T: bytemuck::Pod>(
    shm: &std::sync::Arc<SharedMemory>,
    offset: usize,
    value: T,
) -> ipcmem::Result<(Mutex<T>, ipcmem::Outcome)> {
    // SAFETY: as in `init_mutex`.
    unsafe { Mutex::init_or_attach_at(shm, offset, value) }
}
