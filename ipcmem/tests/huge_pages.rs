//! Huge pages for real: objects of both kinds in 2 MiB pages, shared with a second process.
//!
//! Each test reserves the pages it needs in the machine's pool (`/proc/sys/vm/nr_hugepages`,
//! root only) and gives the pool its previous size back when it ends, also when it fails; where
//! that cannot be done, it says why and is skipped. The pool is shared with every other test
//! process: see `common::huge_pool` for the lock that orders them.
//!
//! A POSIX object in huge pages lives in a hugetlbfs: the test mounts one in a child process of
//! its own mount namespace (`unshare --mount --propagation private`), on a directory of its own,
//! so that no other process of the machine sees it; the second process is a grandchild, in the
//! same namespace.

mod common;

use common::huge_pool::{self, meminfo};
use common::{report, Guard};
use ipcmem::{Id, SharedMemory};

const MIB: usize = 1024 * 1024;
/// The size asked for: not a multiple of the huge page size, so that rounding shows.
const LEN: usize = 3 * MIB + 5;
/// The whole huge pages that hold [`LEN`] bytes, in bytes.
const ROUNDED: usize = 4 * MIB;
/// The huge pages a test reserves: those [`LEN`] takes.
const PAGES: u64 = 2;
/// The size of a huge page, as `/proc/self/smaps` gives `KernelPageSize`.
const HUGE_PAGE: &str = "2048 kB";

/// The entry point of child processes (see `common`); a no-op in the parent's test run.
#[test]
fn child_entry() {
    let Some((scenario, args)) = common::scenario() else { return };
    match scenario.as_str() {
        "sysv-peer" => sysv_peer(&args[0]),
        "posix-huge" => posix_huge(&args[0]),
        "posix-peer" => posix_peer(&args[0]),
        other => panic!("unknown scenario {other}"),
    }
    common::exit(0);
}

/// The byte at `offset` of the pattern the creator writes.
fn pattern(offset: usize) -> u8 {
    u8::try_from(offset % 251).unwrap()
}

/// Writes the pattern over all of `shm`.
fn write_pattern(shm: &SharedMemory) {
    let bytes: Vec<u8> = (0..shm.len()).map(pattern).collect();
    shm.write_at(0, &bytes).unwrap();
}

/// Checks the pattern over the first `len` bytes of `shm`.
fn check_pattern(shm: &SharedMemory, len: usize) {
    let mut bytes = vec![0; len];
    shm.read_at(0, &mut bytes).unwrap();
    let wrong = (0..len).find(|&offset| bytes[offset] != pattern(offset));
    assert_eq!(wrong, None, "the pattern differs at this offset");
}

/// What the second process writes back, at the end of the bytes asked for.
const REPLY: &[u8; 5] = b"reply";

/// The page size of the mapping of `shm`, from `/proc/self/smaps`.
fn page_size(shm: &SharedMemory) -> String {
    common::smaps_field(shm.as_ptr(), "KernelPageSize")
}

/// Reserves [`PAGES`] huge pages, or says why not; `None` skips the test.
fn reserve() -> Option<huge_pool::Reserved> {
    match huge_pool::reserve(PAGES) {
        Ok(reserved) => Some(reserved),
        Err(reason) => {
            println!("note: huge pages cannot be reserved here ({reason}): skipped");
            None
        }
    }
}

#[test]
fn a_sysv_segment_in_huge_pages_is_shared_with_another_process() {
    let Some(_pool) = reserve() else { return };
    let mut guard = Guard::new();
    let key = guard.track(common::unique_key());
    let free_before = meminfo("HugePages_Free:");

    let shm = SharedMemory::options().volatile(false).huge_pages(true).prefault(true).create(&key, LEN).unwrap();
    assert_eq!(shm.len(), LEN, "len() is the size asked for, not the whole huge pages");
    assert_eq!(page_size(&shm), HUGE_PAGE);
    assert_eq!(free_before - meminfo("HugePages_Free:"), PAGES, "its pages come from the pool");
    write_pattern(&shm);

    let run = common::run_child("sysv-peer", &[&key.to_string()]);
    assert!(run.status.success(), "{run:?}");
    assert_eq!(run.report(), format!("len {LEN}, pages of {HUGE_PAGE}"));
    let mut reply = [0; REPLY.len()];
    shm.read_at(LEN - REPLY.len(), &mut reply).unwrap();
    assert_eq!(&reply, REPLY, "the second process's write is visible here");

    drop(shm);
    ipcmem::shmrm(&key).unwrap();
    assert_eq!(meminfo("HugePages_Free:"), free_before, "removed, its pages went back to the pool");
}

/// Child: opens the segment of `key` (`key:0x…`), checks it, and writes [`REPLY`] at its end.
fn sysv_peer(key: &str) {
    let key: Id = key.parse().unwrap();
    let shm = SharedMemory::open(key).unwrap();
    check_pattern(&shm, LEN - REPLY.len());
    shm.write_at(LEN - REPLY.len(), REPLY).unwrap();
    report(format!("len {}, pages of {}", shm.len(), page_size(&shm)));
}

/// A directory made for a test, removed when dropped (also when the test fails).
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn a_posix_object_in_huge_pages_is_shared_with_another_process() {
    let Some(_pool) = reserve() else { return };
    let free_before = meminfo("HugePages_Free:");
    // The mount point: a directory of this test, on which only the child's namespace mounts.
    let dir = TempDir(std::env::temp_dir().join(common::unique_name("hugetlbfs").trim_start_matches('/')));
    std::fs::create_dir(&dir.0).unwrap();
    let Some(run) = common::run_in_mount_namespace("posix-huge", &[dir.0.to_str().unwrap()]) else { return };
    assert!(run.status.success(), "{run:?}");
    let expected = [
        format!("creator: len {LEN}, pages of {HUGE_PAGE}, {PAGES} pages taken from the pool"),
        format!("peer: len {ROUNDED}, pages of {HUGE_PAGE}"),
        "creator: the reply is there".to_owned(),
        "removed: the pages went back to the pool".to_owned(),
    ];
    assert_eq!(run.reports, expected, "{}", run.stderr);
    assert_eq!(meminfo("HugePages_Free:"), free_before);
    assert!(std::fs::read_dir(&dir.0).unwrap().next().is_none(), "nothing was made outside the namespace");
}

/// Child, in a mount namespace of its own: mounts a hugetlbfs on `dir`, makes a POSIX object
/// there, has a grandchild open it, and removes it.
fn posix_huge(dir: &str) {
    let c = |text: &str| std::ffi::CString::new(text).unwrap();
    let (source, target, fstype) = (c("none"), c(dir), c("hugetlbfs"));
    // SAFETY: plain C strings that live through the call; this process is alone in its mount
    // namespace (`unshare --mount --propagation private`): no one else sees the mount.
    let mounted = unsafe { libc::mount(source.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, std::ptr::null()) };
    assert_eq!(mounted, 0, "mount hugetlbfs on {dir}: {}", std::io::Error::last_os_error());
    // ipcmem uses the first hugetlbfs of /proc/self/mounts: it must be this one.
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let first = mounts.lines().find(|line| line.split_whitespace().nth(2) == Some("hugetlbfs")).unwrap();
    assert_eq!(first.split_whitespace().nth(1), Some(dir), "another hugetlbfs comes first: {mounts}");

    let name = common::unique_name("huge");
    let free_before = meminfo("HugePages_Free:");
    let shm = SharedMemory::options().huge_pages(true).prefault(true).create(name.as_str(), LEN).unwrap();
    assert!(std::path::Path::new(dir).join(name.trim_start_matches('/')).exists(), "the file is in the hugetlbfs");
    report(format!(
        "creator: len {}, pages of {}, {} pages taken from the pool",
        shm.len(),
        page_size(&shm),
        free_before - meminfo("HugePages_Free:")
    ));
    write_pattern(&shm);

    // The grandchild inherits this mount namespace, and so sees the object.
    let run = common::run_child("posix-peer", &[&name]);
    assert!(run.status.success(), "{run:?}");
    report(run.report());
    let mut reply = [0; REPLY.len()];
    shm.read_at(LEN - REPLY.len(), &mut reply).unwrap();
    assert_eq!(&reply, REPLY);
    report("creator: the reply is there");

    shm.remove().unwrap();
    drop(shm);
    assert_eq!(meminfo("HugePages_Free:"), free_before);
    report("removed: the pages went back to the pool");
}

/// Grandchild: opens the object `name` of the hugetlbfs, checks it, writes [`REPLY`].
fn posix_peer(name: &str) {
    let shm = SharedMemory::options().huge_pages(true).open(name).unwrap();
    check_pattern(&shm, LEN - REPLY.len());
    shm.write_at(LEN - REPLY.len(), REPLY).unwrap();
    report(format!("peer: len {}, pages of {}", shm.len(), page_size(&shm)));
}
