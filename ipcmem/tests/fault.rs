//! Faults of a mapping under a copy are errors, never signals, and faults elsewhere behave as
//! they did without ipcmem: with real second processes.
//!
//! - Another process shrinks an object (to 0, then to half) while this one copies in and out:
//!   every copy past the new end is an `Err` naming the shrink, and the process lives on.
//! - In a child's own mount namespace, with a 1 MiB tmpfs on `/dev/shm`: a copy into pages that
//!   cannot be allocated, and prefault, are the no-space error.
//! - A program's own `SIGSEGV` handler still runs for a bad access outside our copies; a
//!   program without one still dies of the signal; Rust still reports a stack overflow.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use common::{report, Guard};
use ipcmem::{Error, SharedArray, SharedMemory};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
/// How many times each access is tried after a shrink.
const TRIES: usize = 10_000;

/// The entry point of child processes (see `common`); a no-op in the parent's test run.
#[test]
fn child_entry() {
    let Some((scenario, args)) = common::scenario() else { return };
    let code = match scenario.as_str() {
        "shrink" => shrink(&args[0], args[1].parse().unwrap(), args[2].parse().unwrap()),
        "full-tmpfs" => full_tmpfs(),
        "own-handler" => own_handler(&args[0], &args[1]),
        "no-handler" => no_handler(&args[0], &args[1], &args[2]),
        "stack-overflow" => stack_overflow(),
        other => panic!("unknown scenario {other}"),
    };
    common::exit(code);
}

/// Child: after `delay_ms`, shrinks the object `name` to `size` bytes, as any process may
/// (`ftruncate` of its file).
fn shrink(name: &str, size: u64, delay_ms: u64) -> i32 {
    std::thread::sleep(Duration::from_millis(delay_ms));
    let file = std::fs::OpenOptions::new().write(true).open(format!("/dev/shm{name}")).expect("open the object");
    file.set_len(size).expect("ftruncate");
    report(format!("shrunk to {size}"));
    0
}

/// Grows the object back to `size` (zeros), as the test's own doing, not ipcmem's.
fn regrow(name: &str, size: u64) {
    let file = std::fs::OpenOptions::new().write(true).open(format!("/dev/shm{name}")).expect("open the object");
    file.set_len(size).expect("ftruncate");
}

/// Every access of the object that reaches past `size` bytes: `read_at`, `write_at`,
/// `read_into` and `SharedArray::get`, each as a result.
fn accesses(array: &SharedArray<u64>) -> [(&'static str, ipcmem::Result<()>); 4] {
    let shm = array.memory();
    let last = array.len() - 1;
    let mut buf = vec![0; 100];
    let mut all = vec![0; array.len()];
    [
        ("read_at", shm.read_at(shm.len() - 100, &mut buf)),
        ("write_at", shm.write_at(shm.len() - 100, &buf)),
        ("read_into", array.read_into(&mut all)),
        ("get", array.get(&[last]).map(drop)),
    ]
}

fn assert_shrunk(error: &Error, name: &str, size: u64) {
    match error {
        Error::Shrunk { object, size: found, .. } => {
            assert_eq!((object.as_str(), *found), (name, size), "{error}");
            assert!(error.to_string().contains(&format!("shrunk by another process to {size} bytes")), "{error}");
        }
        other => panic!("expected Error::Shrunk, got {other:?}"),
    }
}

/// A child shrinks the object to 0 while this process copies (each copy before the shrink
/// succeeds, each after fails), then 10 000 more of each access all fail; the same after the
/// object is grown back and shrunk to half. For a volatile object (whose descriptor the
/// handle keeps) and a persistent one (whose size is read through its name).
#[test]
fn copies_past_a_shrunk_end_are_errors_never_signals() {
    for volatile in [true, false] {
        let mut guard = Guard::new();
        let name = common::unique_name("shrink");
        guard.track(name.as_str());
        let len = 8 * 4096 / 8 - 8; // the data ends on the last page: 8 pages in all
        let array =
            SharedArray::<u64>::options().volatile(volatile).create(name.as_str(), &[len]).expect("create the array");
        let full = array.memory().len() as u64;
        for size in [0, full / 2] {
            let child = common::child("shrink", &[&name, &size.to_string(), "20"]).spawn().unwrap();
            // Copies while the child shrinks the object: before, they succeed; after, they fail.
            let mut failed = false;
            for _ in 0..TRIES {
                for (what, result) in accesses(&array) {
                    match result {
                        Ok(()) => assert!(!failed, "{what} succeeded after a failure"),
                        Err(error) => {
                            assert_shrunk(&error, &name, size);
                            failed = true;
                        }
                    }
                }
                if failed {
                    break;
                }
                std::thread::sleep(Duration::from_micros(50));
            }
            let run = common::wait_child(child);
            assert_eq!(run.report(), format!("shrunk to {size}"), "{run:?}");
            for _ in 0..TRIES {
                for (_, result) in accesses(&array) {
                    assert_shrunk(&result.unwrap_err(), &name, size);
                }
            }
            // What is left of the object still works.
            if size > 0 {
                array.set(&[0], 42).unwrap();
                assert_eq!(array.get(&[0]).unwrap(), 42);
            }
            regrow(&name, full);
        }
    }
}

/// Child: a 1 MiB tmpfs on `/dev/shm`, and a sparse 4 MiB object in it (made by `ftruncate`,
/// as any program may make one: ipcmem's own creation refuses an object larger than the free
/// space). Writing 2 MiB into it, and prefaulting it, are the no-space error.
fn full_tmpfs() -> i32 {
    common::mount_over_dev_shm("tmpfs", "size=1m");
    let vfs = rustix::fs::statvfs("/dev/shm").unwrap();
    // Never go on with the machine's own /dev/shm.
    assert!(vfs.f_blocks * vfs.f_frsize <= 2 * MIB as u64, "not the tiny tmpfs");
    let file = std::fs::File::create("/dev/shm/sparse").unwrap();
    file.set_len(4 * MIB as u64).unwrap();
    let shm = SharedMemory::open("/sparse").expect("open the sparse object");
    let error = shm.write_at(0, &vec![0xa5; 2 * MIB]).unwrap_err();
    report(format!("write_at {error:?} | {error}"));
    let error = SharedMemory::options().prefault(true).open("/sparse").unwrap_err();
    report(format!("prefault {error:?} | {error}"));
    // The pages written before the space ran out hold the data.
    let mut first = vec![0; 4096];
    shm.read_at(0, &mut first).unwrap();
    report(format!("first page intact: {}", first.iter().all(|b| *b == 0xa5)));
    0
}

#[test]
fn writes_and_prefault_on_a_full_tmpfs_are_errors_not_signals() {
    let Some(run) = common::run_in_mount_namespace("full-tmpfs", &[]) else { return };
    assert!(run.status.success(), "{run:?}");
    println!("{:#?}", run.reports);
    assert_eq!(run.reports.len(), 3, "{run:?}");
    for line in &run.reports[..2] {
        assert!(line.contains("limit: NoSpace"), "{line}");
    }
    assert!(
        run.reports[0].contains("not enough free space in /dev/shm (0 of 1048576 bytes free"),
        "{}",
        run.reports[0]
    );
    assert!(run.reports[0].contains("the page at offset 1048576 of this sparse object could not be allocated"));
    assert_eq!(run.reports[2], "first page intact: true");
}

/// Child: installs its own SIGSEGV handler `when` ("before" or "after") ipcmem installs its
/// own (at the first copy), makes a copy fault (before: an error), then writes to a read-only
/// page outside any copy: its handler runs and exits with 42.
fn own_handler(name: &str, when: &str) -> i32 {
    extern "C" fn handler(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
        // SAFETY: the kernel's siginfo; write and _exit are async-signal-safe.
        unsafe {
            let message = if (*info).si_code > 0 { "\n@@ own handler ran\n" } else { "\n@@ own handler: sent\n" };
            libc::write(1, message.as_ptr().cast(), message.len());
            libc::_exit(42);
        }
    }
    let install = || {
        // SAFETY: an SA_SIGINFO action with an async-signal-safe handler, in this child alone.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = handler as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO;
            assert_eq!(libc::sigaction(libc::SIGSEGV, &raw const action, std::ptr::null_mut()), 0);
        }
    };
    if when == "before" {
        install();
    }
    let shm = SharedMemory::create(name, 4 * 4096).unwrap();
    shm.write_at(0, b"installs ipcmem's handler").unwrap();
    if when == "before" {
        regrow(name, 0);
        let error = shm.read_at(8192, &mut [0; 16]).unwrap_err();
        report(format!("copy: {error}"));
    } else {
        install();
    }
    let page = read_only_page();
    // SAFETY: deliberately wrong: a write to a read-only page, outside any copy of ipcmem.
    unsafe { page.write_volatile(1) };
    report("the bad write went through");
    0
}

/// A fresh read-only anonymous page.
fn read_only_page() -> *mut u8 {
    // SAFETY: a new mapping at an address the kernel chooses.
    let page = unsafe {
        libc::mmap(std::ptr::null_mut(), 4096, libc::PROT_READ, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)
    };
    assert_ne!(page, libc::MAP_FAILED);
    page.cast()
}

#[test]
fn a_programs_own_handler_still_runs_for_faults_outside_copies() {
    for when in ["before", "after"] {
        let mut guard = Guard::new();
        let name = common::unique_name("own-handler");
        guard.track(name.as_str());
        let run = common::run_child("own-handler", &[&name, when]);
        assert_eq!(run.status.code(), Some(42), "{when}: {run:?}");
        let reports: Vec<&str> = run.reports.iter().map(String::as_str).collect();
        if when == "before" {
            assert_eq!(reports.len(), 2, "{run:?}");
            assert!(reports[0].contains("shrunk by another process to 0 bytes"), "{run:?}");
        }
        assert_eq!(reports.last(), Some(&"own handler ran"), "{when}: {run:?}");
    }
}

/// Child: uses ipcmem (its handler installed over `previous`: Rust's own, or the default
/// action), then faults outside any copy with `fault` (`segv`: a write to a read-only page;
/// `bus`: a read past the end of a shrunk file).
fn no_handler(name: &str, previous: &str, fault: &str) -> i32 {
    if previous == "default" {
        // SAFETY: resets an action of this child alone.
        unsafe {
            libc::signal(libc::SIGSEGV, libc::SIG_DFL);
            libc::signal(libc::SIGBUS, libc::SIG_DFL);
        }
    }
    let shm = SharedMemory::create(name, 4 * 4096).unwrap();
    shm.write_at(0, b"installs the handler").unwrap();
    if fault == "segv" {
        // SAFETY: deliberately wrong: a write to a read-only page.
        unsafe { read_only_page().write_volatile(1) };
    } else {
        regrow(name, 0);
        // SAFETY: deliberately wrong: a read past the end of the shrunk object, not by a copy.
        let byte = unsafe { shm.as_ptr().add(8192).read_volatile() };
        report(format!("read {byte}"));
    }
    report("survived");
    0
}

#[test]
fn a_program_without_a_handler_still_dies_of_the_signal() {
    for previous in ["rust", "default"] {
        for (fault, signal) in [("segv", libc::SIGSEGV), ("bus", libc::SIGBUS)] {
            let mut guard = Guard::new();
            let name = common::unique_name("no-handler");
            guard.track(name.as_str());
            let run = common::run_child("no-handler", &[&name, previous, fault]);
            assert_eq!(run.status.signal(), Some(signal), "{previous} {fault}: {run:?}");
            assert!(run.reports.is_empty(), "{run:?}");
        }
    }
}

/// Child: uses ipcmem, then overflows the stack of a thread.
fn stack_overflow() -> i32 {
    #[allow(unconditional_recursion)]
    fn deeper(depth: u64) -> u64 {
        let frame = [depth; 64];
        std::hint::black_box(&frame);
        deeper(depth + 1) + std::hint::black_box(frame[3])
    }
    let name = common::unique_name("overflow");
    let shm = SharedMemory::create(name.as_str(), 4096).unwrap();
    shm.write_at(0, b"installs the handler").unwrap();
    drop(shm);
    let thread = std::thread::Builder::new().stack_size(256 * KIB).spawn(|| deeper(0)).unwrap();
    report(format!("returned {:?}", thread.join().is_ok()));
    0
}

#[test]
fn rust_still_reports_a_stack_overflow() {
    let run = common::run_child("stack-overflow", &[]);
    assert_eq!(run.status.signal(), Some(libc::SIGABRT), "{run:?}");
    assert!(run.stderr.contains("has overflowed its stack"), "{run:?}");
}

/// A mapping that lost its permissions (here by `mprotect` of `unsafe` code; by `munmap` it
/// would be the same `SIGSEGV`) is its own error, naming the signal and the offset.
#[test]
fn a_copy_into_a_protected_mapping_is_a_segv_error() {
    let mut guard = Guard::new();
    let name = common::unique_name("protected");
    guard.track(name.as_str());
    let shm = SharedMemory::create(name.as_str(), 3 * 4096).unwrap();
    // SAFETY: the second page of our own mapping made read-only; nothing holds a reference.
    let protected = unsafe { libc::mprotect(shm.as_mut_ptr().add(4096).cast(), 4096, libc::PROT_READ) };
    assert_eq!(protected, 0);
    match shm.write_at(4000, &[1; 200]).unwrap_err() {
        Error::Fault { object, signal, offset, cause } => {
            assert_eq!((object.as_str(), signal, offset), (name.as_str(), "SIGSEGV", 4096));
            assert!(cause.contains("lost its permissions"), "{cause}");
        }
        other => panic!("expected Error::Fault, got {other:?}"),
    }
    // Reading is still allowed there; the copy may have written part of the bytes.
    let mut back = [0; 200];
    shm.read_at(4000, &mut back).unwrap();
}

/// A lock's guard copies its data with the same copy: with the lock's words on the object's
/// first page and its data on the second, a child shrinks the object to one page under a held
/// lock; `get`, `set` and `update` are `Error::Shrunk`, and the lock is released as usual.
#[test]
fn lock_guards_past_a_shrunk_end_are_errors_never_signals() {
    use std::sync::Arc;

    use ipcmem::sync::{LockResult, Mutex, RwLock};

    let mut guard = Guard::new();
    let name = common::unique_name("shrink-lock");
    guard.track(name.as_str());
    let page = 4096;
    let shm = Arc::new(SharedMemory::options().volatile(true).create(name.as_str(), 2 * page).unwrap());
    // The lock's data (32 bytes) ends its representation: placed so, it starts on the second
    // page, and the lock's words lie on the first. The mutex lies wholly on the first.
    let lock = RwLock::init_at(&shm, page - (RwLock::<[u64; 4]>::SIZE - 32), [7_u64; 4]).unwrap();
    // SAFETY: nothing writes the mutex's bytes but its handles.
    let mutex = unsafe { Mutex::init_at(&shm, 0, [7_u64; 4]).unwrap() };
    let mut written = lock.write().unwrap();
    let LockResult::Acquired(mut held) = mutex.lock().unwrap() else { panic!("a new mutex has no dead owner") };
    assert_eq!((written.get().unwrap(), held.get().unwrap()), ([7; 4], [7; 4]));
    let child = common::child("shrink", &[&name, &page.to_string(), "0"]).spawn().unwrap();
    assert_eq!(common::wait_child(child).report(), format!("shrunk to {page}"));
    assert_shrunk(&written.get().unwrap_err(), &name, page as u64);
    assert_shrunk(&written.set([1; 4]).unwrap_err(), &name, page as u64);
    assert_shrunk(&written.update(|data| data[0] = 2).unwrap_err(), &name, page as u64);
    drop(written);
    // The mutex's data is on the first page, which is still there.
    held.update(|data| data[0] = 8).unwrap();
    assert_eq!(held.get().unwrap(), [8, 7, 7, 7]);
    drop(held);
    assert_shrunk(&lock.read().unwrap().get().unwrap_err(), &name, page as u64);
}
