//! Errors name the real cause: a memory shortage is not blamed on the lock limit unless a lock
//! was asked for, and a key derived from a missing file names the file and `ftok`.

mod common;

use common::{report, Guard};
use ipcmem::{Error, Key, Limit, SharedMemory};

/// The entry point of child processes (see `common`); a no-op in the parent's test run.
#[test]
fn child_entry() {
    let Some((scenario, args)) = common::scenario() else { return };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let code = match (scenario.as_str(), args.as_slice()) {
        ("no-address-space", [name, kind]) => no_address_space(name, kind),
        (other, args) => panic!("unknown scenario {other} {args:?}"),
    };
    common::exit(code);
}

/// Limits this process's address space to what it uses now plus 16 MiB, then makes a 256 MiB
/// object (`kind`: `posix` at `name`, or `sysv`, a new segment) and reports the error.
fn no_address_space(name: &str, kind: &str) -> i32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let vm_kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmSize:"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let limit = libc::rlimit { rlim_cur: (vm_kib + 16 * 1024) * 1024, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: setrlimit only changes this (child) process's limits.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &raw const limit) }, 0);
    let made = match kind {
        "posix" => SharedMemory::options().volatile(false).create(name, 256 << 20),
        _ => SharedMemory::create(Key::PRIVATE, 256 << 20),
    };
    match made {
        Ok(_) => report("made"),
        Err(error) => report(format!("{}|{error}", matches!(error, Error::LimitExceeded { limit: Limit::Memory, .. }))),
    }
    0
}

#[test]
fn a_memory_shortage_is_not_blamed_on_the_lock_limit() {
    for kind in ["posix", "sysv"] {
        let mut guard = Guard::new();
        let name = guard.track(common::unique_name("enomem")).to_string();
        let run = common::run_child("no-address-space", &[&name, kind]);
        assert!(run.status.success(), "{run:?}");
        let (is_memory, message) = run.report().split_once('|').unwrap_or_else(|| panic!("{kind}: {run:?}"));
        assert_eq!(is_memory, "true", "{kind}: {message}");
        assert!(message.contains("not enough memory"), "{kind}: {message}");
        assert!(!message.contains("MEMLOCK") && !message.contains("lock"), "{kind}: no lock was asked for: {message}");
        assert!(!common::posix_exists(&name), "{kind}: nothing left behind");
    }
}

#[test]
fn a_key_from_a_missing_file_names_the_file_and_ftok() {
    let path = format!("/nonexistent-{}/file", std::process::id());
    let error = Key::from_path(&path, 1).unwrap_err();
    let message = error.to_string();
    assert!(message.starts_with(&format!("{path}: ftok failed: ")), "{message}");
    assert!(!message.contains("shared memory"), "{message}");
    assert_eq!(error.kind(), std::io::ErrorKind::NotFound);
}
