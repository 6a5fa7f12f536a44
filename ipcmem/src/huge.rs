//! Huge pages: where POSIX objects with huge pages live, and the error that says what to do
//! when there are none.
//!
//! A System V segment gets huge pages from `shmget(SHM_HUGETLB)`. A POSIX object gets them by
//! living in a `hugetlbfs` file system instead of the tmpfs of `/dev/shm`: the object `/name`
//! is the file `<mount>/name` of the first `hugetlbfs` mount listed in `/proc/self/mounts`
//! (often `/dev/hugepages`). Either way the pages come from the pool the administrator
//! reserves (`/proc/sys/vm/nr_hugepages`); ipcmem never changes it.

use std::fmt;

use crate::error::{Error, Limit};

/// Why huge pages could not be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// No `hugetlbfs` is mounted, which POSIX objects with huge pages need.
    NoMount,
    /// The reserved pool has too few free pages (the kernel said `ENOMEM` or `ENOSPC`).
    TooFew,
    /// System V: the caller has neither `CAP_IPC_LOCK` nor the group of
    /// `/proc/sys/vm/hugetlb_shm_group` (the kernel said `EPERM`).
    NotAllowed,
}

/// How to reserve huge pages, for the error messages.
const HOW_TO_RESERVE: &str =
    "reserve them as root with `sysctl vm.nr_hugepages=N` (or `echo N > /proc/sys/vm/nr_hugepages`)";

/// The directory of the first `hugetlbfs` mount, if one is mounted.
pub(crate) fn mount_dir() -> Option<String> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (_source, dir, fstype) = (fields.next()?, fields.next()?, fields.next()?);
        (fstype == "hugetlbfs").then(|| unescape(dir))
    })
}

/// Undoes the octal escapes (`\040` for a space) of a path in `/proc/self/mounts`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).filter(|digits| bytes[i] == b'\\' && digits.iter().all(u8::is_ascii_digit));
        if let Some(byte) = octal.and_then(|digits| u8::from_str_radix(std::str::from_utf8(digits).ok()?, 8).ok()) {
            out.push(byte);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The pool of huge pages of the default size, as `/proc/meminfo` tells it.
#[derive(Debug, Clone, Copy, Default)]
struct Pool {
    total: u64,
    free: u64,
    /// The size of a huge page in bytes.
    page: u64,
}

impl Pool {
    fn read() -> Pool {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let field = |name: &str| {
            meminfo.lines().find_map(|line| line.strip_prefix(name)?.split_whitespace().next()?.parse().ok())
        };
        Pool {
            total: field("HugePages_Total:").unwrap_or(0),
            free: field("HugePages_Free:").unwrap_or(0),
            page: field("Hugepagesize:").unwrap_or(0) * 1024,
        }
    }
}

/// The error for an object of `len` bytes that could not have huge pages, with the figures of
/// the pool and what to do.
pub(crate) fn unavailable(object: &dyn fmt::Display, len: usize, cause: Cause) -> Error {
    let pool = Pool::read();
    let detail = match cause {
        Cause::NoMount => {
            let mut detail = "POSIX objects with huge pages live in a hugetlbfs file system, and none is mounted \
                              (see /proc/mounts): mount one as root, e.g. `mount -t hugetlbfs none /dev/hugepages`, \
                              or use a System V segment"
                .to_owned();
            if pool.total == 0 {
                detail.push_str("; no huge pages are reserved either (HugePages_Total 0): ");
                detail.push_str(HOW_TO_RESERVE);
            }
            detail
        }
        Cause::TooFew => {
            let needed = if pool.page == 0 { 0 } else { (len as u64).div_ceil(pool.page) };
            format!(
                "{needed} huge pages of {} kB needed, {} free of {} reserved (HugePages_Free, HugePages_Total in \
                 /proc/meminfo): {HOW_TO_RESERVE}",
                pool.page / 1024,
                pool.free,
                pool.total,
            )
        }
        Cause::NotAllowed => "System V segments with huge pages need CAP_IPC_LOCK or membership of the group \
                              in /proc/sys/vm/hugetlb_shm_group"
            .to_owned(),
    };
    Error::LimitExceeded { object: object.to_string(), limit: Limit::HugePages, detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_mount_paths() {
        assert_eq!(unescape("/dev/hugepages"), "/dev/hugepages");
        assert_eq!(unescape(r"/mnt/huge\040pages"), "/mnt/huge pages");
        assert_eq!(unescape(r"/odd\\x"), r"/odd\\x");
        assert_eq!(unescape(r"/end\04"), r"/end\04");
    }

    #[test]
    fn errors_say_how_to_reserve() {
        let text = unavailable(&"/x", 1 << 21, Cause::TooFew).to_string();
        assert!(text.contains("nr_hugepages"), "{text}");
        let text = unavailable(&"/x", 1 << 21, Cause::NoMount).to_string();
        assert!(text.contains("hugetlbfs"), "{text}");
    }
}
