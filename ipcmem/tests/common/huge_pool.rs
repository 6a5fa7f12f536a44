//! The machine's pool of huge pages (`/proc/sys/vm/nr_hugepages`), which the tests of huge
//! pages change and others need as it is.
//!
//! The pool is one for the whole machine: the threads of a test binary, the other test
//! binaries, and other checkouts of this project running their tests at the same time all see
//! it. A lock file ([`LOCK_FILE`], `flock(2)`) orders them: a test that reserves pages holds it
//! exclusively ([`reserve`]) and restores the previous size when done, also when it fails
//! (on drop); a test that needs the pool as it found it (empty, for the error paths) holds it
//! shared ([`unchanged`]). `flock` locks belong to open files, so two threads of one process
//! exclude each other as two processes do; a holder that dies releases its lock.

use std::fs::File;
use std::os::fd::AsRawFd;

/// The lock file every test process takes before it looks at or changes the pool.
pub const LOCK_FILE: &str = "/tmp/ipcmem-huge-pages.lock";
/// The size of the pool, in pages of the default huge page size.
const NR_HUGEPAGES: &str = "/proc/sys/vm/nr_hugepages";

/// Opens the lock file and locks it (`LOCK_SH` or `LOCK_EX`), waiting for other holders.
fn lock(operation: libc::c_int) -> File {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(LOCK_FILE)
        .unwrap_or_else(|error| panic!("open {LOCK_FILE}: {error}"));
    // SAFETY: flock on a descriptor this function owns; no memory is involved.
    let locked = unsafe { libc::flock(file.as_raw_fd(), operation) };
    assert_eq!(locked, 0, "flock {LOCK_FILE}: {}", std::io::Error::last_os_error());
    file
}

/// The pool left alone while this lives: no test reserves pages meanwhile.
pub struct Unchanged(#[allow(dead_code)] File);

/// Holds the pool unchanged (a shared lock) until the result is dropped.
pub fn unchanged() -> Unchanged {
    Unchanged(lock(libc::LOCK_SH))
}

/// Huge pages reserved for a test: the pool's previous size comes back on drop.
pub struct Reserved {
    previous: u64,
    _lock: File,
}

impl Drop for Reserved {
    fn drop(&mut self) {
        if let Err(error) = std::fs::write(NR_HUGEPAGES, self.previous.to_string()) {
            eprintln!("could not restore {NR_HUGEPAGES} to {}: {error}", self.previous);
        }
    }
}

/// A field of `/proc/meminfo` (its first number).
pub fn meminfo(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    text.lines().find_map(|line| line.strip_prefix(field)?.split_whitespace().next()?.parse().ok()).unwrap_or(0)
}

/// Makes sure at least `pages` huge pages of the default size are free, growing the pool if
/// needed, until the result is dropped; `Err` with the reason where that cannot be done (not
/// root, a read-only `/proc/sys`, memory too fragmented for the kernel to find the pages).
pub fn reserve(pages: u64) -> Result<Reserved, String> {
    let lock = lock(libc::LOCK_EX);
    let previous: u64 = std::fs::read_to_string(NR_HUGEPAGES)
        .map_err(|error| format!("cannot read {NR_HUGEPAGES}: {error}"))?
        .trim()
        .parse()
        .map_err(|error| format!("{NR_HUGEPAGES}: {error}"))?;
    let free = meminfo("HugePages_Free:");
    let reserved = Reserved { previous, _lock: lock };
    if free >= pages {
        return Ok(reserved);
    }
    let wanted = previous + (pages - free);
    std::fs::write(NR_HUGEPAGES, wanted.to_string())
        .map_err(|error| format!("cannot write {wanted} to {NR_HUGEPAGES} (root only): {error}"))?;
    let free = meminfo("HugePages_Free:");
    if free < pages {
        // `reserved` restores the previous size as it is dropped here.
        return Err(format!("asked the kernel for {pages} free huge pages, it found {free}"));
    }
    Ok(reserved)
}
