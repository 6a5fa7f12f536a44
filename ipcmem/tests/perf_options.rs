//! The performance options: `prefault` makes objects resident (and is an error, not a SIGBUS,
//! where the space is missing), `huge_pages` gives the clear error when none are reserved (its
//! success path is in `huge_pages.rs`),
//! `lock` locks the handle's mapping and gives a clear error over `RLIMIT_MEMLOCK`.
//!
//! Residency is read from `/proc/self/smaps`: the `Rss` of a mapping counts the pages mapped
//! into this process, `Locked` those locked. Scenarios that need a full file system or a
//! hugetlbfs run in a child of their own mount namespace (`unshare --mount`), over which a tiny
//! tmpfs or a hugetlbfs is mounted on `/dev/shm`: the machine's `/dev/shm` is never filled.

mod common;

use common::huge_pool::{self, meminfo};
use common::{report, Guard};
use ipcmem::{Error, Id, Key, Limit, SharedArray, SharedMemory};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// The entry point of child processes (see `common`); a no-op in the parent's test run.
#[test]
fn child_entry() {
    let Some((scenario, args)) = common::scenario() else { return };
    let code = match scenario.as_str() {
        "full-tmpfs" => full_tmpfs(),
        "hugetlbfs-without-pages" => hugetlbfs_without_pages(),
        "lock-over-limit" => lock_over_limit(&args[0]),
        other => panic!("unknown scenario {other}"),
    };
    common::exit(code);
}

/// The bytes of `shm` mapped into this process (`Rss`, in kB in smaps).
fn rss(shm: &SharedMemory) -> usize {
    let kb: usize = common::smaps_field(shm.as_ptr(), "Rss").split_whitespace().next().unwrap().parse().unwrap();
    kb * KIB
}

/// Whether this handle's mapping is locked: `lo` among its `VmFlags`. (The `Locked` figure
/// of smaps is a proportional share when several mappings hold the pages.)
fn locked(shm: &SharedMemory) -> bool {
    common::smaps_field(shm.as_ptr(), "VmFlags").split_whitespace().any(|flag| flag == "lo")
}

/// `len` rounded up to whole pages.
fn pages(len: usize) -> usize {
    len.next_multiple_of(ipcmem::page_size())
}

/// A pattern on a few pages of an object, the other pages left as holes.
fn write_pattern(shm: &SharedMemory) {
    let page = ipcmem::page_size();
    for (n, offset) in (0..shm.len()).step_by(page * 7).enumerate() {
        let text = format!("page at {offset}, #{n}");
        let end = (offset + text.len()).min(shm.len());
        shm.write_at(offset, &text.as_bytes()[..end - offset]).unwrap();
    }
}

/// The whole content of an object.
fn content(shm: &SharedMemory) -> Vec<u8> {
    let mut all = vec![0; shm.len()];
    shm.read_at(0, &mut all).unwrap();
    all
}

#[test]
fn prefault_makes_a_new_posix_object_resident() {
    let mut guard = Guard::new();
    // Below the size where threads help, and above it (not a whole number of pages).
    for len in [64 * KIB, 16 * MIB + 4097] {
        let plain = guard.track(common::unique_name("plain"));
        let shm = SharedMemory::create(&plain, len).unwrap();
        assert_eq!(rss(&shm), 0, "without prefault, nothing is mapped yet");
        let name = guard.track(common::unique_name("prefault"));
        let shm = SharedMemory::options().prefault(true).create(&name, len).unwrap();
        assert_eq!(shm.len(), len);
        assert_eq!(rss(&shm), pages(len));
        assert!(content(&shm).iter().all(|byte| *byte == 0));
    }
}

#[test]
fn prefault_makes_a_new_sysv_segment_resident() {
    let mut guard = Guard::new();
    for len in [64 * KIB, 16 * MIB + 4097] {
        let shm = SharedMemory::options().prefault(true).create(Key::PRIVATE, len).unwrap();
        guard.track(shm.id());
        assert_eq!(rss(&shm), pages(len));
        let key = guard.track(common::unique_key());
        let shm = SharedMemory::options().volatile(false).prefault(true).create(&key, len).unwrap();
        assert_eq!(shm.len(), len);
        assert_eq!(rss(&shm), pages(len));
    }
}

/// Opens `id` (whose object holds a pattern, with holes) with and without prefault, read-write
/// and read-only: prefault maps every page and changes no byte.
fn check_open(id: &Id, maker: &SharedMemory) {
    let before = content(maker);
    let plain = SharedMemory::open(id).unwrap();
    assert_eq!(rss(&plain), 0);
    for readonly in [false, true] {
        let shm = SharedMemory::options().readonly(readonly).prefault(true).open(id).unwrap();
        assert_eq!(rss(&shm), pages(shm.len()), "readonly {readonly}");
        assert_eq!(content(&shm), before, "readonly {readonly}");
    }
    assert_eq!(content(maker), before);
}

#[test]
fn prefault_on_open_maps_every_page_and_keeps_the_content() {
    let mut guard = Guard::new();
    for len in [40 * KIB + 3, 12 * MIB] {
        let name = guard.track(common::unique_name("open"));
        let maker = SharedMemory::create(&name, len).unwrap();
        write_pattern(&maker);
        check_open(&name, &maker);

        let key = guard.track(common::unique_key());
        let maker = SharedMemory::options().volatile(false).create(&key, len).unwrap();
        write_pattern(&maker);
        check_open(&key, &maker);
        check_open(&maker.id(), &maker);
    }
}

/// The minor page faults of this thread so far.
fn thread_faults() -> i64 {
    // SAFETY: all zeros is a valid `rusage`, which getrusage fills.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is ours; RUSAGE_THREAD reads this thread's figures.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_THREAD, &raw mut usage) }, 0);
    usage.ru_minflt
}

/// The page faults taken while writing one byte in every page of `shm`.
fn faults_of_a_write_pass(shm: &SharedMemory) -> i64 {
    let before = thread_faults();
    for offset in (0..shm.len()).step_by(ipcmem::page_size()) {
        shm.write_at(offset, &[1]).unwrap();
    }
    thread_faults() - before
}

#[test]
fn after_prefault_writes_take_no_page_fault() {
    let mut guard = Guard::new();
    let len = 8 * MIB;
    let count = i64::try_from(len / ipcmem::page_size()).unwrap();
    let name = guard.track(common::unique_name("faults"));
    let plain = SharedMemory::create(&name, len).unwrap();
    assert!(faults_of_a_write_pass(&plain) >= count, "the measure sees faults");
    let name = guard.track(common::unique_name("faults"));
    let shm = SharedMemory::options().prefault(true).create(&name, len).unwrap();
    assert_eq!(faults_of_a_write_pass(&shm), 0, "created");
    let opened = SharedMemory::options().prefault(true).open(&name).unwrap();
    assert_eq!(faults_of_a_write_pass(&opened), 0, "opened");
    let segment = SharedMemory::options().prefault(true).create(Key::PRIVATE, len).unwrap();
    guard.track(segment.id());
    assert_eq!(faults_of_a_write_pass(&segment), 0, "segment created");
    let attached = SharedMemory::options().prefault(true).open(segment.id()).unwrap();
    assert_eq!(faults_of_a_write_pass(&attached), 0, "segment attached");
}

#[test]
fn prefault_of_a_read_only_handle_allocates_the_holes_as_zeros() {
    let mut guard = Guard::new();
    let name = guard.track(common::unique_name("holes"));
    let maker = SharedMemory::options().volatile(false).create(&name, 6 * MIB).unwrap();
    drop(maker);
    let reader = SharedMemory::options().readonly(true).prefault(true).open(&name).unwrap();
    assert_eq!(rss(&reader), 6 * MIB);
    assert!(content(&reader).iter().all(|byte| *byte == 0));
}

#[test]
fn an_object_larger_than_dev_shm_is_refused_at_creation() {
    let vfs = rustix::fs::statvfs(ipcmem::posix::SHM_DIR).unwrap();
    let free = usize::try_from(vfs.f_bavail * vfs.f_frsize).unwrap();
    let mut guard = Guard::new();
    let name = guard.track(common::unique_name("huge-len"));
    let error = SharedMemory::options().prefault(true).create(&name, free + 1024 * MIB).unwrap_err();
    assert!(matches!(error, Error::LimitExceeded { limit: Limit::NoSpace, .. }), "{error:?}");
    assert!(!common::posix_exists(&name.to_string()));
}

/// Child: a 1 MiB tmpfs on `/dev/shm`. A sparse object that fits, then another that takes half
/// the space: prefaulting the first on open cannot allocate all its pages, which is an error.
fn full_tmpfs() -> i32 {
    common::mount_over_dev_shm("tmpfs", "size=1m");
    let vfs = rustix::fs::statvfs("/dev/shm").unwrap();
    // Never go on with the machine's own /dev/shm.
    assert!(vfs.f_blocks * vfs.f_frsize <= 2 * MIB as u64, "not the tiny tmpfs");
    let sparse = SharedMemory::create("/sparse", 768 * KIB).expect("a sparse object that fits");
    let _filler = SharedMemory::options().reserve(true).create("/filler", 512 * KIB).expect("the filler");
    for readonly in [false, true] {
        let error = SharedMemory::options().readonly(readonly).prefault(true).open("/sparse").unwrap_err();
        report(format!("readonly={readonly} {error:?} | {error}"));
    }
    let error = SharedMemory::options().prefault(true).create("/late", 768 * KIB).unwrap_err();
    report(format!("create {error:?} | {error}"));
    drop(sparse);
    0
}

#[test]
fn prefault_without_space_is_an_error_not_a_sigbus() {
    let Some(run) = common::run_in_mount_namespace("full-tmpfs", &[]) else { return };
    assert!(run.status.success(), "{run:?}");
    assert_eq!(run.reports.len(), 3, "{run:?}");
    for line in &run.reports[..2] {
        assert!(line.contains("limit: NoSpace"), "{line}");
        assert!(line.contains("/dev/shm is full"), "{line}");
    }
    assert!(run.reports[2].contains("limit: NoSpace"), "{run:?}");
}

/// Child: a hugetlbfs (with the machine's pool, which has no free huge page) on `/dev/shm`.
fn hugetlbfs_without_pages() -> i32 {
    common::mount_over_dev_shm("hugetlbfs", "");
    let error = SharedMemory::options().huge_pages(true).create("/huge", 3 * MIB).unwrap_err();
    report(format!("{error:?} | {error}"));
    0
}

#[test]
fn huge_pages_without_reserved_pages_give_the_clear_error() {
    // No test reserves huge pages while this one counts on there being none.
    let _pool = huge_pool::unchanged();
    let free = meminfo("HugePages_Free:");
    let mut guard = Guard::new();
    if free > 0 {
        println!("note: {free} huge pages are free here: the error paths are not tested");
        return;
    }
    let error = SharedMemory::options().huge_pages(true).create(Key::PRIVATE, 3 * MIB).unwrap_err();
    assert!(matches!(error, Error::LimitExceeded { limit: Limit::HugePages, .. }), "{error:?}");
    assert!(error.to_string().contains("nr_hugepages"), "{error}");

    let key = guard.track(common::unique_key());
    let error = SharedMemory::options().volatile(false).huge_pages(true).create(&key, 3 * MIB).unwrap_err();
    assert!(error.to_string().contains("nr_hugepages"), "{error}");
    assert!(ipcmem::sysv::shminfo(&key).is_err(), "no segment is left behind");

    let name = guard.track(common::unique_name("huge"));
    let error = SharedMemory::options().huge_pages(true).create(&name, 3 * MIB).unwrap_err();
    assert!(matches!(error, Error::LimitExceeded { limit: Limit::HugePages, .. }), "{error:?}");
    let text = error.to_string();
    let mounted = std::fs::read_to_string("/proc/self/mounts").unwrap().contains(" hugetlbfs ");
    assert!(text.contains(if mounted { "nr_hugepages" } else { "none is mounted" }), "{text}");
    let error = SharedMemory::options().huge_pages(true).open(&name).unwrap_err();
    assert!(matches!(error, Error::LimitExceeded { .. } | Error::NotFound { .. }), "{error:?}");

    // A hugetlbfs is mounted, but the pool is empty: the kernel refuses the mapping.
    let Some(run) = common::run_in_mount_namespace("hugetlbfs-without-pages", &[]) else { return };
    assert!(run.status.success(), "{run:?}");
    let line = run.report();
    assert!(line.contains("limit: HugePages"), "{line}");
    assert!(line.contains("nr_hugepages"), "{line}");
    assert!(line.contains("huge pages of 2048 kB needed") || !line.contains("kB needed"), "{line}");
}

#[test]
fn lock_locks_this_handles_mapping() {
    let mut guard = Guard::new();
    let len = MIB + 5;
    let name = guard.track(common::unique_name("lock"));
    let shm = SharedMemory::options().lock(true).create(&name, len).unwrap();
    assert!(locked(&shm));
    assert_eq!(rss(&shm), pages(len));
    let other = SharedMemory::open(&name).unwrap();
    assert!(!locked(&other), "the lock is the handle's own");
    let again = SharedMemory::options().lock(true).open(&name).unwrap();
    assert!(locked(&again));
    assert_eq!(rss(&again), pages(len));

    let segment = SharedMemory::options().lock(true).create(Key::PRIVATE, len).unwrap();
    guard.track(segment.id());
    assert!(locked(&segment));
    assert_eq!(rss(&segment), pages(len));
    assert!(!ipcmem::sysv::shminfo(segment.id()).unwrap().is_locked(), "mlock, not SHM_LOCK");
}

/// Child: `RLIMIT_MEMLOCK` of 64 KiB, as nobody: a small lock works, a large one is refused.
fn lock_over_limit(name: &str) -> i32 {
    let limit = libc::rlimit { rlim_cur: 64 * 1024, rlim_max: 64 * 1024 };
    // SAFETY: setrlimit reads the struct; it lowers a limit of this child process only.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &raw const limit) }, 0);
    common::become_nobody();
    let small = SharedMemory::options().lock(true).create(name, 16 * KIB).expect("a lock within the limit");
    drop(small);
    let error = SharedMemory::options().lock(true).create(name, MIB).unwrap_err();
    report(format!("posix {error:?} | {error}"));
    let error = SharedMemory::options().lock(true).create(Key::PRIVATE, MIB).unwrap_err();
    report(format!("sysv {error:?} | {error}"));
    0
}

#[test]
fn lock_over_rlimit_memlock_is_a_clear_error() {
    let mut guard = Guard::new();
    let name = guard.track(common::unique_name("memlock"));
    let run = common::run_child("lock-over-limit", &[&name.to_string()]);
    assert!(run.status.success(), "{run:?}");
    assert_eq!(run.reports.len(), 2, "{run:?}");
    for line in &run.reports {
        assert!(line.contains("limit: LockedMemory"), "{line}");
        assert!(line.contains("RLIMIT_MEMLOCK is 65536 bytes"), "{line}");
    }
    assert!(!common::posix_exists(&name.to_string()), "the refused object vanished");
}

#[test]
fn array_options_pass_the_options_on() {
    let mut guard = Guard::new();
    let name = guard.track(common::unique_name("array"));
    let array = SharedArray::<f64>::options().prefault(true).lock(true).create(&name, &[512, 513]).unwrap();
    let shm = array.memory();
    assert_eq!(rss(shm), pages(shm.len()));
    assert!(locked(shm));
    let opened = SharedArray::<f64>::options().readonly(true).prefault(true).open(&name).unwrap();
    assert_eq!(rss(opened.memory()), pages(shm.len()));
    let _pool = huge_pool::unchanged();
    let error = SharedArray::<f64>::options().huge_pages(true).create(Key::PRIVATE, &[4]);
    if meminfo("HugePages_Free:") == 0 {
        assert!(matches!(error, Err(Error::LimitExceeded { limit: Limit::HugePages, .. })), "{error:?}");
    }
}
