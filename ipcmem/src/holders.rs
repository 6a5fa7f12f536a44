//! Who uses a POSIX object: what `gc`, `list` and `info` check before they call an object
//! abandoned.
//!
//! Three traces tell that a process uses an object, and each is checked, as `fuser(1)` does:
//!
//! - **ipcmem's holders** keep a shared `flock(2)` on it: `/proc/locks` lists them (`gc`'s real
//!   run asks for the exclusive lock instead, which also sees through PID namespaces);
//! - **an open descriptor** (`open`, `shm_open`, Python's `multiprocessing.shared_memory`
//!   while open): `/proc/PID/fd/N` of every process, by device and inode;
//! - **a mapping** (also one made through `/proc/PID/fd/N`, or kept after the descriptor was
//!   closed): `/proc/PID/maps` of every process, by device and inode.
//!
//! What cannot be seen is said, not guessed: inside a child PID namespace `/proc` shows only
//! the namespace's processes (and `/proc/locks` only their locks), and a user other than root
//! cannot read other users' processes. Then an object that no visible process uses has
//! *unknown* holders, and `gc` leaves it: so when a process of a user who may open the object
//! (its owner, or anyone its mode lets in) cannot be read. One limit remains: root's processes
//! that the caller cannot read are not judged — all of them for a gc not run as root, and for
//! root the few that have capabilities it lacks (a container's supervisor). An object used
//! only by such a process may be taken for unused.

use std::collections::HashSet;
use std::os::fd::RawFd;

use rustix::fs::{self, AtFlags, CWD};

use crate::inventory::Inode;

/// The inode of the initial PID namespace (`PROC_PID_INIT_INO` of the kernel): the namespace
/// in which every process of the machine is visible.
const INITIAL_PID_NAMESPACE: u64 = 0xEFFF_FFFC;

/// What the processes of the machine use, as far as this process can see.
#[derive(Debug)]
pub(crate) struct Holders {
    /// Files with a granted `flock`, from `/proc/locks`; `None` if not read (or unreadable).
    locked: Option<HashSet<Inode>>,
    /// Files that a visible process has open or mapped.
    used: HashSet<Inode>,
    /// How many processes were read.
    processes: usize,
    /// The owners of the processes that could not be read.
    hidden_owners: HashSet<u32>,
    /// Whether `/proc` shows every process of the machine.
    every_process: bool,
}

/// What [`Holders::verdict`] finds for an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Some process uses it: why.
    Held(&'static str),
    /// No process uses it.
    Unheld,
    /// Its users cannot be known here: why.
    Unknown(&'static str),
}

impl Holders {
    /// Reads the locks (unless `with_locks` is false: the caller probes with a lock of its own)
    /// and the descriptors and mappings of every process, leaving out this process's
    /// descriptors `ignored` (those the caller opened to look).
    pub(crate) fn scan(with_locks: bool, ignored: &[RawFd]) -> Holders {
        let locked = if with_locks { flocked_inodes() } else { None };
        let mut holders = Holders {
            locked,
            used: HashSet::new(),
            processes: 0,
            hidden_owners: HashSet::new(),
            every_process: every_process_visible(),
        };
        let me = std::process::id();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            holders.every_process = false;
            return holders;
        };
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|pid| pid.parse::<u32>().ok()) else { continue };
            let ignored = if pid == me { ignored } else { &[] };
            match holders.read_process(pid, ignored) {
                Ok(()) => holders.processes += 1,
                // Ended meanwhile: it uses nothing.
                Err(ProcessError::Gone) => {}
                Err(ProcessError::Hidden) => {
                    holders.hidden_owners.insert(owner_of(pid).unwrap_or(0));
                }
            }
        }
        holders
    }

    /// Adds what process `pid` has open (but the descriptors `ignored`) and mapped.
    fn read_process(&mut self, pid: u32, ignored: &[RawFd]) -> Result<(), ProcessError> {
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_err(ProcessError::from)?;
        for fd in fds.flatten() {
            let number = fd.file_name().to_str().and_then(|fd| fd.parse::<RawFd>().ok());
            if number.is_some_and(|number| ignored.contains(&number)) {
                continue;
            }
            // The link leads to the open file itself, also one whose name is gone.
            if let Ok(stat) = fs::statat(CWD, fd.path().as_path(), AtFlags::empty()) {
                if fs::FileType::from_raw_mode(stat.st_mode) == fs::FileType::RegularFile {
                    self.used.insert(Inode::of(&stat));
                }
            }
        }
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).map_err(ProcessError::from)?;
        self.used.extend(maps.lines().filter_map(parse_maps_line));
        Ok(())
    }

    /// Whether some process uses the object of `stat`, as far as can be seen.
    pub(crate) fn verdict(&self, stat: &fs::Stat) -> Verdict {
        let inode = Inode::of(stat);
        if self.locked.as_ref().is_some_and(|locked| locked.contains(&inode)) {
            return Verdict::Held("an ipcmem handle holds it (its flock is in /proc/locks)");
        }
        if self.used.contains(&inode) {
            return Verdict::Held("a process has it open or mapped");
        }
        if !self.every_process {
            return Verdict::Unknown("this PID namespace cannot see every process, so holders outside it are unknown");
        }
        // Who may open it: its owner, and the others its mode lets in. Root's unreadable
        // processes are not judged (see the module's docs).
        let others_may_open = stat.st_mode & 0o066 != 0;
        let hidden_may_open =
            self.hidden_owners.iter().any(|&owner| owner != 0 && (owner == stat.st_uid || others_may_open));
        if hidden_may_open {
            return Verdict::Unknown("processes that may use it could not be read (run as root to see them)");
        }
        Verdict::Unheld
    }

    /// What was checked, for a reason that says it.
    pub(crate) fn checked(&self) -> String {
        let locks = if self.locked.is_some() { "the flocks of /proc/locks" } else { "an exclusive flock" };
        format!("{locks}, and the descriptors and mappings of {} processes (/proc/*/fd, /proc/*/maps)", self.processes)
    }
}

/// Why a process could not be read.
enum ProcessError {
    /// It ended.
    Gone,
    /// Not allowed: another user's, or the kernel hides it.
    Hidden,
}

impl From<std::io::Error> for ProcessError {
    fn from(error: std::io::Error) -> ProcessError {
        if error.kind() == std::io::ErrorKind::NotFound || error.raw_os_error() == Some(libc::ESRCH) {
            ProcessError::Gone
        } else {
            ProcessError::Hidden
        }
    }
}

/// The user that owns process `pid` (its real uid, from `/proc/PID/status`).
fn owner_of(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|line| line.strip_prefix("Uid:"))?;
    line.split_whitespace().next()?.parse().ok()
}

/// Whether `/proc` shows every process of the machine: this process is in the initial PID
/// namespace, and `/proc` is that namespace's (its `self` is this process).
pub(crate) fn every_process_visible() -> bool {
    let initial = fs::stat("/proc/self/ns/pid").is_ok_and(|stat| stat.st_ino == INITIAL_PID_NAMESPACE);
    let own_proc = fs::readlink("/proc/self", Vec::new())
        .is_ok_and(|link| link.to_str().ok().and_then(|pid| pid.parse::<u32>().ok()) == Some(std::process::id()));
    initial && own_proc
}

/// The file a line of `/proc/PID/maps` maps, such as
/// `7f00-7f01 rw-s 00000000 00:1a 5678   /dev/shm/frames`; `None` for anonymous memory.
fn parse_maps_line(line: &str) -> Option<Inode> {
    let mut fields = line.split_whitespace().skip(3);
    let device = fields.next()?;
    let ino: u64 = fields.next()?.parse().ok()?;
    if ino == 0 {
        return None;
    }
    let (major, minor) = device.split_once(':')?;
    Some(Inode::new(u32::from_str_radix(major, 16).ok()?, u32::from_str_radix(minor, 16).ok()?, ino))
}

/// The files on which some process holds a `flock(2)` lock, from `/proc/locks`; `None` if it
/// cannot be read.
///
/// Every handle that holds a volatile object holds a shared `flock` on it. Reading the table,
/// unlike probing with a lock of our own, cannot make the last holder believe someone else
/// still holds the object (and so leave it behind).
pub(crate) fn flocked_inodes() -> Option<HashSet<Inode>> {
    let table = std::fs::read_to_string("/proc/locks").ok()?;
    Some(table.lines().filter_map(parse_lock_line).collect())
}

/// The file of a line of `/proc/locks` if it is a granted `FLOCK` lock, such as
/// `3: FLOCK  ADVISORY  READ  1234 00:1a:5678 0 EOF`. Waiters (`3: -> FLOCK …`) hold nothing.
fn parse_lock_line(line: &str) -> Option<Inode> {
    let mut fields = line.split_whitespace().skip(1);
    if fields.next()? != "FLOCK" {
        return None;
    }
    let file = fields.nth(3)?;
    let mut parts = file.split(':');
    let major = u32::from_str_radix(parts.next()?, 16).ok()?;
    let minor = u32::from_str_radix(parts.next()?, 16).ok()?;
    let ino = parts.next()?.parse().ok()?;
    Some(Inode::new(major, minor, ino))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_granted_flock_lines_only() {
        let granted = parse_lock_line("3: FLOCK  ADVISORY  READ  1234 00:1a:5678 0 EOF");
        assert_eq!(granted, Some(Inode::new(0, 0x1a, 5678)));
        assert_eq!(parse_lock_line("3: -> FLOCK  ADVISORY  WRITE 99 00:1a:5678 0 EOF"), None);
        assert_eq!(parse_lock_line("1: POSIX  ADVISORY  WRITE 99 fd:01:12 0 EOF"), None);
        assert_eq!(parse_lock_line("garbage"), None);
    }

    #[test]
    fn parses_file_mappings_only() {
        let mapped = parse_maps_line("7f00-7f01 rw-s 00000000 00:1a 5678                   /dev/shm/frames");
        assert_eq!(mapped, Some(Inode::new(0, 0x1a, 5678)));
        assert_eq!(parse_maps_line("7f00-7f01 rw-p 00000000 00:00 0 "), None);
        assert_eq!(
            parse_maps_line("7f00-7f01 r-xp 00000000 fd:01 1234   /usr/lib/libc.so.6"),
            Some(Inode::new(0xfd, 1, 1234))
        );
        assert_eq!(parse_maps_line("garbage"), None);
    }

    #[test]
    fn this_test_sees_itself() {
        let holders = Holders::scan(true, &[]);
        assert!(holders.processes >= 1);
    }
}
