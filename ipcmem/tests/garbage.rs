//! Garbage in synchronisation objects: whatever bytes are written over a semaphore, mutex,
//! read-write lock, condition variable or event, no call aborts the process, no timed call
//! waits past its deadline (plus [`SLACK`]), and untimed waits end at the next post or
//! notification (plus the 100 ms re-check of parked waiters). Garbage over the state word
//! before an object makes attaching a clear error.
//!
//! The garbage is written in a child process (this test binary run again), so that an abort is
//! seen as a failed child, not a dead test runner; the child runs many cases, chosen by
//! proptest, and a watchdog thread ends it with a report if one call never returns.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use common::{report, Guard};
use ipcmem::sync::{Condvar, Mutex, RwLock};
use ipcmem::{Event, Semaphore, SharedMemory};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// The timeout of every timed call.
const TIMEOUT: Duration = Duration::from_millis(2);
/// How much later than its deadline a call may return (scheduling on a busy machine).
const SLACK: Duration = Duration::from_millis(100);
/// How long after the post or notification that should end it an untimed wait may return: the
/// re-check period of parked waiters (100 ms) plus the slack.
const UNTIMED_LIMIT: Duration = Duration::from_millis(200);
/// How many times a case whose call was late runs before the lateness counts: a process
/// descheduled for over [`SLACK`] on a loaded machine is not a call past its deadline, and runs
/// in time again; a call that blocks past its deadline does so with the same bytes every time.
const ATTEMPTS: u32 = 3;
/// A call running this long is taken as hung: the watchdog ends the child.
const HUNG: Duration = Duration::from_secs(3);
/// What the failure of a late call says.
const LATE: &str = "past its limit";
/// Random cases each child runs, after the known bad patterns.
const CASES: u32 = 600;
/// Where the condition variable tests keep their mutex, away from the garbage.
const MUTEX_OFFSET: usize = 2048;

/// The entry point of child processes (see `common`); a no-op in the parent's test run.
#[test]
fn child_entry() {
    let Some((scenario, args)) = common::scenario() else { return };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let code = match (scenario.as_str(), args.as_slice()) {
        ("garbage", [kind, shm]) => garbage_child(kind, shm),
        ("event-wait", [shm]) => event_wait(shm),
        ("sem-wait", [shm]) => sem_wait(shm),
        (other, args) => panic!("unknown scenario {other} {args:?}"),
    };
    common::exit(code);
}

fn check_kind(kind: &str) {
    let mut guard = Guard::new();
    let name = guard.track(common::unique_name(&format!("garbage-{kind}"))).to_string();
    let _shm = SharedMemory::create(name.as_str(), 4096).unwrap();
    let run = common::run_child("garbage", &[kind, &name]);
    assert!(run.status.success(), "the child failed ({:?}): {}\n{:?}", run.status, run.stderr, run.reports);
    let report = run.report();
    let (cases, retried) = report.split_once(", retried ").unwrap_or_else(|| panic!("{run:?}"));
    assert_eq!(cases, format!("cases {}", CASES as usize + KNOWN.len()), "{run:?}");
    // A case retried for lateness passed when run again: the process was descheduled, not
    // stuck. A bug would make the same bytes late every time, or many cases late.
    let retried: u32 = retried.parse().unwrap();
    assert!(retried <= CASES / 20, "{retried} cases were late at least once: {run:?}");
}

#[test]
fn garbage_in_a_semaphore_never_aborts_or_hangs() {
    check_kind("semaphore");
}

#[test]
fn garbage_in_a_mutex_never_aborts_or_hangs() {
    check_kind("mutex");
}

#[test]
fn garbage_in_a_rwlock_never_aborts_or_hangs() {
    check_kind("rwlock");
}

#[test]
fn garbage_in_a_condvar_never_aborts_or_hangs() {
    check_kind("condvar");
}

#[test]
fn garbage_in_an_event_never_aborts_or_hangs() {
    check_kind("event");
}

/// Zeroing an event's waiter count while another process is parked loses the wake-up of the
/// next notification; the waiter still returns, within the re-check period.
#[test]
fn a_lost_event_wake_up_is_seen_within_the_recheck_period() {
    let mut guard = Guard::new();
    let name = guard.track(common::unique_name("garbage-event-lost")).to_string();
    let shm = Arc::new(SharedMemory::create(name.as_str(), 4096).unwrap());
    let event = Event::attach_at(&shm, 0).unwrap();
    let waiter = common::child("event-wait", &[&name]).spawn().unwrap();
    assert!(
        common::wait_until(Duration::from_secs(10), || shm.load_u32(4, Ordering::SeqCst).unwrap() == 1),
        "the waiter never parked"
    );
    shm.write_at(4, &[0; 4]).unwrap(); // the waiter count, zeroed under the waiter
    let notified = Instant::now();
    assert_eq!(event.notify_all(), 0, "the notifier sees no waiter: the wake-up is lost");
    let run = common::wait_child(waiter);
    assert!(run.status.success(), "{run:?}");
    assert!(notified.elapsed() < Duration::from_secs(2), "the waiter took {:?}", notified.elapsed());
    assert_eq!(shm.load_u32(4, Ordering::SeqCst).unwrap(), 0, "the waiter count must not underflow");
}

/// The same for a semaphore: its count of waiters zeroed under a parked waiter, then a post.
#[test]
fn a_lost_semaphore_wake_up_is_seen_within_the_recheck_period() {
    let mut guard = Guard::new();
    let name = guard.track(common::unique_name("garbage-sem-lost")).to_string();
    let shm = Arc::new(SharedMemory::create(name.as_str(), 4096).unwrap());
    let sem = Semaphore::init_at(&shm, 0, 0).unwrap();
    let waiter = common::child("sem-wait", &[&name]).spawn().unwrap();
    // The sem_t starts at byte 8: count at 8, waiters at 12 (64-bit, little-endian). Read as
    // the 64-bit word it is: a 32-bit view of half of it is refused (a mixed-size race).
    let waiters = || shm.load_u64(8, Ordering::SeqCst).unwrap() >> 32;
    assert!(common::wait_until(Duration::from_secs(10), || waiters() == 1), "the waiter never parked");
    shm.write_at(12, &[0; 4]).unwrap();
    let posted = Instant::now();
    sem.post().unwrap();
    let run = common::wait_child(waiter);
    assert!(run.status.success(), "{run:?}");
    assert!(posted.elapsed() < Duration::from_secs(2), "the waiter took {:?}", posted.elapsed());
    assert_eq!(waiters(), 0, "the count of waiters must not underflow");
}

// ---- children ----

fn event_wait(name: &str) -> i32 {
    let shm = Arc::new(SharedMemory::open(name).unwrap());
    let event = Event::attach_at(&shm, 0).unwrap().with_spin(Duration::ZERO);
    let seen = event.value();
    event.wait(seen).unwrap();
    0
}

fn sem_wait(name: &str) -> i32 {
    let shm = Arc::new(SharedMemory::open(name).unwrap());
    let sem = Semaphore::attach_at(&shm, 0).unwrap();
    sem.wait().unwrap();
    0
}

/// Bytes to write over an object: all of them, a few of them, or a few 32-bit words.
#[derive(Debug, Clone)]
enum Garbage {
    Bytes(Vec<u8>),
    Byte(u8),
    Edits(Vec<(usize, u8)>),
    Words(Vec<(usize, u32)>),
}

/// The patterns that aborted or hung before: applied to each kind first.
const KNOWN: [Garbage; 4] = [Garbage::Byte(0xff), Garbage::Byte(0x80), Garbage::Byte(0x01), Garbage::Byte(0)];

impl Garbage {
    /// The bytes to write over `valid` (the object as initialised).
    fn apply(&self, valid: &[u8]) -> Vec<u8> {
        let mut bytes = valid.to_vec();
        match self {
            Garbage::Bytes(random) => bytes.iter_mut().zip(random.iter().cycle()).for_each(|(b, r)| *b = *r),
            Garbage::Byte(byte) => bytes.fill(*byte),
            Garbage::Edits(edits) => edits.iter().for_each(|&(at, byte)| bytes[at % valid.len()] = byte),
            Garbage::Words(words) => {
                for &(at, word) in words {
                    let at = (at % (valid.len() / 4)) * 4;
                    bytes[at..at + 4].copy_from_slice(&word.to_ne_bytes());
                }
            }
        }
        bytes
    }
}

fn garbage_strategy() -> impl Strategy<Value = Garbage> {
    let word = prop_oneof![Just(0_u32), Just(1), Just(0x7fff_ffff), Just(0x8000_0000), Just(u32::MAX), any::<u32>()];
    prop_oneof![
        prop::collection::vec(any::<u8>(), 64).prop_map(Garbage::Bytes),
        any::<u8>().prop_map(Garbage::Byte),
        prop::collection::vec((0_usize..64, any::<u8>()), 1..4).prop_map(Garbage::Edits),
        prop::collection::vec((0_usize..16, word), 1..4).prop_map(Garbage::Words),
    ]
}

/// What the watchdog knows of the call under way: when it started (ms since `epoch`, 0 for
/// none) and what it is.
struct Watch {
    epoch: Instant,
    started: AtomicU64,
    what: StdMutex<String>,
}

impl Watch {
    fn new() -> Arc<Watch> {
        let watch =
            Arc::new(Watch { epoch: Instant::now(), started: AtomicU64::new(0), what: StdMutex::new(String::new()) });
        let watching = Arc::clone(&watch);
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(50));
            let started = watching.started.load(Ordering::SeqCst);
            let now = u64::try_from(watching.epoch.elapsed().as_millis()).unwrap();
            if started != 0 && now - started > u64::try_from(HUNG.as_millis()).unwrap() {
                report(format!("hung: {}", watching.what.lock().unwrap()));
                common::exit(3);
            }
        });
        watch
    }

    /// Runs `call`, described by `what`, and fails the case if it returned later than `limit`.
    fn call<R>(&self, what: &str, limit: Duration, call: impl FnOnce() -> R) -> Result<R, TestCaseError> {
        what.clone_into(&mut self.what.lock().unwrap());
        let started = Instant::now();
        self.started.store(u64::try_from(self.epoch.elapsed().as_millis()).unwrap().max(1), Ordering::SeqCst);
        let result = call();
        self.started.store(0, Ordering::SeqCst);
        let took = started.elapsed();
        prop_assert!(took <= limit + SLACK, "{what} took {took:?}, {LATE} {limit:?} + {SLACK:?}");
        Ok(result)
    }
}

/// Calls `notify` every millisecond on another thread until the returned flag is raised.
fn keep_notifying(notify: impl Fn() + Send + 'static) -> (Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let done = Arc::new(AtomicBool::new(false));
    let stop = Arc::clone(&done);
    let thread = std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            notify();
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    (done, thread)
}

/// The object's bytes after the 8-byte state word (all of them for an event), as made.
fn region(shm: &SharedMemory, start: usize, len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    shm.read_at(start, &mut bytes).unwrap();
    bytes
}

fn garbage_child(kind: &str, name: &str) -> i32 {
    let shm = Arc::new(SharedMemory::open(name).unwrap());
    let watch = Watch::new();
    let retried = std::sync::atomic::AtomicU32::new(0);
    let run_once = |garbage: &Garbage| -> Result<(), TestCaseError> {
        *watch.what.lock().unwrap() = format!("{kind} with {garbage:?}");
        match kind {
            "semaphore" => semaphore_case(&shm, &watch, garbage),
            "mutex" => mutex_case(&shm, &watch, garbage),
            "rwlock" => rwlock_case(&shm, &watch, garbage),
            "condvar" => condvar_case(&shm, &watch, garbage),
            "event" => event_case(&shm, &watch, garbage),
            other => panic!("no such kind {other}"),
        }
    };
    let run_case = |garbage: &Garbage| -> Result<(), TestCaseError> {
        let mut attempt = 1;
        loop {
            match run_once(garbage) {
                Err(error) if attempt < ATTEMPTS && error.to_string().contains(LATE) => {
                    if attempt == 1 {
                        retried.fetch_add(1, Ordering::SeqCst);
                    }
                    attempt += 1;
                }
                result => return result,
            }
        }
    };
    for garbage in &KNOWN {
        if let Err(error) = run_case(garbage) {
            panic!("{kind} with {garbage:?}: {error}");
        }
    }
    let config = Config { cases: CASES, failure_persistence: None, ..Config::default() };
    let result = TestRunner::new(config).run(&garbage_strategy(), |garbage| run_case(&garbage));
    if let Err(error) = result {
        panic!("{kind}: {error}");
    }
    report(format!("cases {}, retried {}", CASES as usize + KNOWN.len(), retried.load(Ordering::SeqCst)));
    0
}

/// Writes the garbage over the object's state word too, and attaches: a clear error (or the
/// object, if the bytes happen to say it is there), in at most the second an attach waits for
/// an initialiser.
fn attach_over_garbage(
    shm: &SharedMemory,
    watch: &Watch,
    garbage: &Garbage,
    attach: impl FnOnce() -> ipcmem::Result<()>,
) -> Result<(), TestCaseError> {
    shm.write_at(0, &garbage.apply(&region(shm, 0, 8))).unwrap();
    watch.call("attach_at over a garbage state word", Duration::from_secs(1), attach)?.ok();
    Ok(())
}

/// Zeroes the first `len` bytes, so that a new object can be made there.
fn clear(shm: &SharedMemory, len: usize) {
    shm.write_at(0, &vec![0; len]).unwrap();
}

fn semaphore_case(shm: &Arc<SharedMemory>, watch: &Watch, garbage: &Garbage) -> Result<(), TestCaseError> {
    clear(shm, Semaphore::SIZE);
    let sem = Semaphore::init_at(shm, 0, 1).unwrap();
    let bytes = garbage.apply(&region(shm, 8, Semaphore::SIZE - 8));
    shm.write_at(8, &bytes).unwrap();
    watch.call("try_wait", Duration::ZERO, || sem.try_wait())?.ok();
    watch.call("wait_timeout", TIMEOUT, || sem.wait_timeout(TIMEOUT))?.ok();
    watch.call("post", Duration::ZERO, || sem.post())?.ok();
    watch.call("value", Duration::ZERO, || sem.value())?;
    watch.call("wait_timeout", TIMEOUT, || sem.wait_timeout(TIMEOUT))?.ok();
    // An untimed wait ends at the next post (or at once: garbage may have left a count).
    let poster = Semaphore::attach_at(shm, 0).unwrap();
    let (done, thread) = keep_notifying(move || {
        let _ = poster.post();
    });
    let waited = watch.call("wait", UNTIMED_LIMIT, || sem.wait());
    done.store(true, Ordering::SeqCst);
    thread.join().unwrap();
    waited?.ok();
    attach_over_garbage(shm, watch, garbage, || Semaphore::attach_at(shm, 0).map(drop))?;
    Ok(())
}

fn mutex_case(shm: &Arc<SharedMemory>, watch: &Watch, garbage: &Garbage) -> Result<(), TestCaseError> {
    clear(shm, Mutex::<u64>::SIZE);
    // SAFETY: the mutex's bytes are written below only while no handle of it lives.
    drop(unsafe { Mutex::init_at(shm, 0, 7_u64) }.unwrap());
    let bytes = garbage.apply(&region(shm, 8, Mutex::<u64>::SIZE - 8));
    shm.write_at(8, &bytes).unwrap();
    // SAFETY: from here on, the bytes are written only through this handle.
    let mutex = unsafe { Mutex::<u64>::attach_at(shm, 0) }.unwrap();
    if let Ok(Some(result)) = watch.call("try_lock", Duration::ZERO, || mutex.try_lock())? {
        let mut guard = result.into_guard();
        guard.make_consistent().ok();
    }
    let timed = watch.call("lock_timeout", TIMEOUT, || mutex.lock_timeout(TIMEOUT))?;
    let free = matches!(timed, Ok(Some(_)));
    drop(timed);
    if free {
        // Known free (this thread just held it): the untimed lock takes it at once, or fails.
        drop(watch.call("lock", Duration::ZERO, || mutex.lock())?);
    }
    drop(mutex);
    // SAFETY: no handle of the mutex lives while its state word is overwritten.
    attach_over_garbage(shm, watch, garbage, || unsafe { Mutex::<u64>::attach_at(shm, 0) }.map(drop))?;
    Ok(())
}

fn rwlock_case(shm: &Arc<SharedMemory>, watch: &Watch, garbage: &Garbage) -> Result<(), TestCaseError> {
    clear(shm, RwLock::<u64>::SIZE);
    let lock = RwLock::init_at(shm, 0, 7_u64).unwrap();
    let bytes = garbage.apply(&region(shm, 8, RwLock::<u64>::SIZE - 8));
    shm.write_at(8, &bytes).unwrap();
    drop(watch.call("try_read", Duration::ZERO, || lock.try_read())?);
    drop(watch.call("try_write", Duration::ZERO, || lock.try_write())?);
    let read = watch.call("read_timeout", TIMEOUT, || lock.read_timeout(TIMEOUT))?;
    let readable = matches!(read, Ok(Some(_)));
    drop(read);
    let write = watch.call("write_timeout", TIMEOUT, || lock.write_timeout(TIMEOUT))?;
    let writable = matches!(write, Ok(Some(_)));
    drop(write);
    if writable {
        // Free now (this thread just released it): the untimed calls take it at once.
        drop(watch.call("write", Duration::ZERO, || lock.write())?);
    }
    if readable || writable {
        drop(watch.call("read", Duration::ZERO, || lock.read())?);
    }
    drop(lock);
    attach_over_garbage(shm, watch, garbage, || RwLock::<u64>::attach_at(shm, 0).map(drop))?;
    Ok(())
}

fn condvar_case(shm: &Arc<SharedMemory>, watch: &Watch, garbage: &Garbage) -> Result<(), TestCaseError> {
    clear(shm, Condvar::SIZE);
    // SAFETY: nothing writes the mutex's bytes but its handles (the garbage goes elsewhere).
    let (mutex, _) = unsafe { Mutex::init_or_attach_at(shm, MUTEX_OFFSET, 0_u32) }.unwrap();
    let condvar = Condvar::init_at(shm, 0).unwrap();
    let bytes = garbage.apply(&region(shm, 8, Condvar::SIZE - 8));
    shm.write_at(8, &bytes).unwrap();
    watch.call("notify_one", Duration::ZERO, || condvar.notify_one())?.ok();
    watch.call("notify_all", Duration::ZERO, || condvar.notify_all())?.ok();
    let guard = mutex.lock().unwrap().into_guard();
    let waited = watch.call("wait_timeout", TIMEOUT, || condvar.wait_timeout(guard, TIMEOUT))?;
    drop(waited);
    let notifier = Condvar::attach_at(shm, 0).unwrap();
    let guard = mutex.lock().unwrap().into_guard();
    let (done, thread) = keep_notifying(move || {
        let _ = notifier.notify_one();
    });
    let waited = watch.call("wait", UNTIMED_LIMIT, || condvar.wait(guard));
    drop(waited);
    done.store(true, Ordering::SeqCst);
    thread.join().unwrap();
    attach_over_garbage(shm, watch, garbage, || Condvar::attach_at(shm, 0).map(drop))?;
    Ok(())
}

fn event_case(shm: &Arc<SharedMemory>, watch: &Watch, garbage: &Garbage) -> Result<(), TestCaseError> {
    let event = Event::attach_at(shm, 0).unwrap().with_spin(Duration::ZERO);
    let bytes = garbage.apply(&region(shm, 0, Event::SIZE));
    shm.write_at(0, &bytes).unwrap();
    let seen = watch.call("value", Duration::ZERO, || event.value())?;
    watch.call("wait_timeout", TIMEOUT, || event.wait_timeout(seen, TIMEOUT))?.ok();
    watch.call("notify_one", Duration::ZERO, || event.notify_one())?;
    watch.call("notify_all", Duration::ZERO, || event.notify_all())?;
    watch.call("wait_timeout (changed)", Duration::ZERO, || event.wait_timeout(seen, TIMEOUT))?.ok();
    let notifier = Event::attach_at(shm, 0).unwrap();
    let seen = event.value();
    let (done, thread) = keep_notifying(move || {
        notifier.notify_one();
    });
    let waited = watch.call("wait", UNTIMED_LIMIT, || event.wait(seen));
    done.store(true, Ordering::SeqCst);
    thread.join().unwrap();
    waited?.ok();
    Ok(())
}
