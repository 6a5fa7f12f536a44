//! `open_or_create` raced by several processes on one POSIX name or one System V key: exactly
//! one creates, and every other sees the object complete, as its creator filled it.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{report, spawn_held, Guard, Held};
use ipcmem::{Error, Id, Outcome, SharedMemory, ShmId};

/// How many processes race.
const RACERS: usize = 8;
/// How many times each race is run.
const ROUNDS: usize = 3;
/// The size every racer asks for: not a whole number of pages.
const LEN: usize = 10_000;
/// How long a System V opener waits for the creator's stamp.
const STAMP_WAIT: Duration = Duration::from_secs(10);

/// The entry point of child processes (see `common`); a no-op in the parent's test run.
#[test]
fn child_entry() {
    let Some((scenario, args)) = common::scenario() else { return };
    match scenario.as_str() {
        "race" => race(&args[0], args[1] == "volatile"),
        "race-plain" => race_plain(&args[0]),
        "churn" => churn(&args[0], args[1].parse().expect("a number of rounds")),
        other => panic!("unknown scenario {other}"),
    }
    common::exit(0);
}

/// The stamp a creator writes: its process id, never 0.
fn stamp() -> u64 {
    u64::from(std::process::id())
}

/// Puts the creator's stamp in the first word.
fn init(shm: &SharedMemory) {
    shm.atomic_u64s(0, 1).expect("the stamp word")[0].store(stamp(), Ordering::Release);
}

/// Reports "ready", waits for "go", calls `open_or_create_with`, reports
/// `Created|Opened LEN STAMP` (or `error MESSAGE`), and holds the object until released.
fn race(id: &str, volatile: bool) {
    let id: Id = id.parse().expect("an object");
    let options = SharedMemory::options().volatile(volatile).perms(0o600);
    report("ready");
    assert_eq!(common::read_line().as_deref(), Some("go"), "the start signal");
    let (shm, outcome) = match options.open_or_create_with(&id, LEN, init) {
        Ok(result) => result,
        Err(error) => {
            report(format!("error {error}"));
            common::wait_for_release();
            return;
        }
    };
    let mut seen = shm.load_u64(0, Ordering::Acquire).expect("read the stamp");
    // A System V segment can be found by key before its creator filled it: wait, boundedly.
    if matches!(id, Id::Key(_)) {
        common::wait_until(STAMP_WAIT, || {
            seen = shm.load_u64(0, Ordering::Acquire).expect("read the stamp");
            seen != 0
        });
    }
    report(format!("{outcome:?} {} {seen}", shm.len()));
    common::wait_for_release();
}

/// Like `race`, with plain `open_or_create` of a persistent object, which is named before it is
/// sized: reports `Created|Opened LEN` (or `error MESSAGE`); an opener must never see size 0.
fn race_plain(name: &str) {
    report("ready");
    assert_eq!(common::read_line().as_deref(), Some("go"), "the start signal");
    match SharedMemory::options().volatile(false).open_or_create(name, LEN) {
        Ok((shm, outcome)) => report(format!("{outcome:?} {}", shm.len())),
        Err(error) => report(format!("error {error}")),
    }
    common::wait_for_release();
}

/// Waits for "go", then `rounds` times makes or opens the volatile `name` and drops it at once,
/// so that objects come and go under the racers' feet; reports `CREATED OPENED UNSTAMPED`,
/// where UNSTAMPED counts the handles that saw no creator's stamp, then the first error if any.
fn churn(name: &str, rounds: usize) {
    report("ready");
    assert_eq!(common::read_line().as_deref(), Some("go"), "the start signal");
    let (mut created, mut opened, mut unstamped) = (0, 0, 0);
    let mut first_error = None;
    for _ in 0..rounds {
        match SharedMemory::options().open_or_create_with(name, 64, init) {
            Ok((shm, outcome)) => {
                if outcome == Outcome::Created {
                    created += 1;
                } else {
                    opened += 1;
                }
                if shm.load_u64(0, Ordering::Acquire).expect("read the stamp") == 0 {
                    unstamped += 1;
                }
            }
            Err(error) => {
                first_error.get_or_insert_with(|| error.to_string());
            }
        }
    }
    report(format!("{created} {opened} {unstamped}"));
    report(first_error.unwrap_or_default());
}

/// Starts `RACERS` children of `scenario`, waits until each is ready, then starts them all.
fn start_racers(scenario: &str, args: &[&str]) -> Vec<Held> {
    let mut racers: Vec<Held> = (0..RACERS).map(|_| spawn_held(scenario, args)).collect();
    for racer in &mut racers {
        assert_eq!(racer.next_report(), "ready");
    }
    for racer in &mut racers {
        racer.send("go");
    }
    racers
}

/// One race on `id`: checks that exactly one racer created, and every racer saw the full length
/// and the creator's stamp. Returns with every racer still holding the object.
fn race_once(id: &Id, volatile: bool) -> Vec<Held> {
    let kind = if volatile { "volatile" } else { "persistent" };
    let mut racers = start_racers("race", &[&id.to_string(), kind]);
    let reports: Vec<(u32, String)> = racers.iter_mut().map(|racer| (racer.pid(), racer.next_report())).collect();
    let created: Vec<u32> =
        reports.iter().filter(|(_, line)| line.starts_with("Created ")).map(|(pid, _)| *pid).collect();
    assert_eq!(created.len(), 1, "exactly one creator on {id}: {reports:?}");
    let expected = [format!("Created {LEN} {}", created[0]), format!("Opened {LEN} {}", created[0])];
    for (pid, line) in &reports {
        assert!(expected.contains(line), "racer {pid} on {id}: {line:?}; all: {reports:?}");
    }
    racers
}

/// Releases every racer and checks that each ended well.
fn release_all(racers: Vec<Held>) {
    for racer in racers {
        let run = racer.release();
        assert!(run.status.success(), "{run:?}");
    }
}

#[test]
fn posix_volatile_race() {
    for _ in 0..ROUNDS {
        let mut guard = Guard::new();
        let name = guard.track(common::unique_name("race-vol"));
        let racers = race_once(&name, true);
        assert!(common::posix_exists(&name.to_string()), "held by every racer");
        release_all(racers);
        assert!(!common::posix_exists(&name.to_string()), "gone with the last racer");
    }
}

#[test]
fn posix_persistent_race() {
    for _ in 0..ROUNDS {
        let mut guard = Guard::new();
        let name = guard.track(common::unique_name("race-pers"));
        release_all(race_once(&name, false));
        let shm = SharedMemory::open(&name).expect("the object outlives its racers");
        assert_eq!(shm.len(), LEN);
        assert_ne!(shm.load_u64(0, Ordering::Acquire).unwrap(), 0);
    }
}

#[test]
fn posix_persistent_plain_race_never_shows_size_zero() {
    for _ in 0..ROUNDS * 3 {
        let mut guard = Guard::new();
        let name = guard.track(common::unique_name("race-plain"));
        let mut racers = start_racers("race-plain", &[&name.to_string()]);
        let reports: Vec<String> = racers.iter_mut().map(Held::next_report).collect();
        let created = reports.iter().filter(|line| *line == &format!("Created {LEN}")).count();
        let opened = reports.iter().filter(|line| *line == &format!("Opened {LEN}")).count();
        assert_eq!((created, opened), (1, RACERS - 1), "{reports:?}");
        release_all(racers);
    }
}

#[test]
fn sysv_race() {
    for _ in 0..ROUNDS {
        let mut guard = Guard::new();
        let key = guard.track(common::unique_key());
        let racers = race_once(&key, false);
        let Id::Key(raw_key) = key else { unreachable!() };
        let id = ShmId::from_key(raw_key, true).expect("the segment of the key");
        let info = ipcmem::sysv::shminfo(id).unwrap();
        assert_eq!(info.size, LEN);
        assert_eq!(info.nattch, RACERS as u64, "every racer holds an attachment");
        release_all(racers);
    }
}

#[test]
fn posix_churn_never_shows_an_unfilled_object() {
    let mut guard = Guard::new();
    let name = guard.track(common::unique_name("churn")).to_string();
    let racers = start_racers("churn", &[&name, "300"]);
    for racer in racers {
        let run = racer.release();
        assert!(run.status.success(), "{run:?}");
        assert_eq!(run.reports.len(), 3, "{run:?}");
        let counts: Vec<usize> = run.reports[1].split(' ').map(|n| n.parse().unwrap()).collect();
        assert_eq!(counts[0] + counts[1], 300, "every round succeeded: {run:?}");
        assert_eq!(counts[2], 0, "handles without the creator's stamp: {run:?}");
        assert_eq!(run.reports[2], "", "{run:?}");
    }
    assert!(!common::posix_exists(&name), "the last handle removed it");
}

#[test]
fn volatile_open_or_create_by_key_is_refused() {
    let mut guard = Guard::new();
    let key = guard.track(common::unique_key());
    let error = SharedMemory::options().volatile(true).open_or_create(&key, 64).unwrap_err();
    let Error::InvalidArgument { object, reason } = &error else { panic!("{error:?}") };
    assert_eq!(*object, key.to_string());
    assert!(reason.contains("volatile") && reason.contains("volatile(false)"), "{reason}");
    assert!(error.to_string().contains(&key.to_string()), "{error}");
    let Id::Key(raw_key) = key else { unreachable!() };
    assert!(matches!(ShmId::from_key(raw_key, true), Err(Error::NotFound { .. })), "nothing was made");
}
