//! Garbage collection: removes what crashed processes left behind, and nothing in use.
//!
//! [`collect`] removes, of the calling user only:
//!
//! - **volatile POSIX objects that no process uses.** A volatile object is removed by its last
//!   holder; when every holder crashed (or was killed with `SIGKILL`) nobody did. Its mark is
//!   the sticky bit (see [`crate::posix`]), which only its owner could set.
//! - **unfinished persistent POSIX objects**: size 0 with the set-user-ID bit, left by a
//!   creator killed between `shm_open` and `ftruncate` (see [`crate::posix`]), at least
//!   a second old, that no process uses. A complete object never has that bit.
//! - **unfinished volatile System V segments**: mode `0602`, not attached, not marked for
//!   removal, whose creator is gone (see [`crate::sysv`]). Volatile segments are otherwise
//!   freed by the kernel at their last detach.
//!
//! "No process uses it" is checked as `fuser(1)` would, and more: no ipcmem handle holds it
//! (the real run takes the exclusive `flock`, which succeeds only then; a dry run reads
//! `/proc/locks`), and no process has it open (`/proc/*/fd`) or mapped (`/proc/*/maps`), by
//! device and inode: Python's `multiprocessing.shared_memory`, an `mmap` of `/proc/PID/fd/N`
//! and a plain `open` all count. Where those checks cannot see every process (inside a child
//! PID namespace; another user's processes, for a gc not run as root), an object that no
//! visible process uses has unknown users: it is left, in the dry run as in the real one, and
//! `ipcmem list` shows it as `unknown` rather than `abandoned`. Each entry's reason says what
//! was checked. gc never removes a persistent object, one in use, or another user's; named
//! semaphores are never collected. Removal itself deletes only the inode looked at, never an
//! object renamed onto the name meanwhile (see [`crate::posix`]).
//!
//! ```
//! for found in ipcmem::gc::collect(ipcmem::gc::Mode::DryRun)? {
//!     println!("{}: {}", found.name, found.reason);
//! }
//! # Ok::<(), ipcmem::Error>(())
//! ```

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use rustix::fs::{self, FlockOperation, Mode as FileMode, OFlags, CWD};

use crate::error::{Error, Result};
use crate::holders::{Holders, Verdict};
use crate::inventory::{self, Kind};
use crate::key::ShmId;
use crate::posix::{self, SHM_DIR};
use crate::sysv;

/// Whether [`collect`] removes what it finds or only reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Report, remove nothing.
    DryRun,
    /// Report and remove.
    Remove,
}

/// An object that [`collect`] found abandoned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collected {
    /// A POSIX object or a System V segment.
    pub kind: Kind,
    /// The object as the `ipcmem` command names it: `/name`, or `id:N` for a segment; for a
    /// name that is not UTF-8, with U+FFFD in place of each bad sequence (exact in
    /// `name_bytes`). Escape it before printing: names may hold any byte but `/` and NUL.
    pub name: String,
    /// The exact bytes of a name that is not UTF-8; `None` for a UTF-8 name or a segment.
    pub name_bytes: Option<Vec<u8>>,
    /// The segment's id, for a System V segment.
    pub id: Option<ShmId>,
    /// Why it is garbage, and what was checked.
    pub reason: String,
    /// Whether it was removed (false in a dry run, or if it was taken into use meanwhile).
    pub removed: bool,
}

/// What kind of garbage a POSIX object may be.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Garbage {
    Volatile,
    Unfinished,
}

/// A POSIX object that may be garbage, open for the look.
struct Candidate {
    /// Its name, lossy for a name that is not UTF-8.
    name: String,
    /// The exact bytes of a name that is not UTF-8.
    name_bytes: Option<Vec<u8>>,
    /// Its file: a name that is not UTF-8 is removed by its path, never by its lossy name.
    path: PathBuf,
    fd: OwnedFd,
    stat: fs::Stat,
    garbage: Garbage,
}

/// Finds, and unless `mode` is [`Mode::DryRun`] removes, every abandoned object of this user:
/// see the module's docs for what that is.
pub fn collect(mode: Mode) -> Result<Vec<Collected>> {
    let mut found = collect_posix(mode)?;
    found.extend(collect_sysv(mode));
    Ok(found)
}

fn collect_posix(mode: Mode) -> Result<Vec<Collected>> {
    let entries = std::fs::read_dir(SHM_DIR).map_err(|error| Error::InvalidArgument {
        object: SHM_DIR.to_owned(),
        reason: format!("cannot list the directory: {error}"),
    })?;
    let me = rustix::process::geteuid().as_raw();
    let candidates: Vec<Candidate> = entries
        .flatten()
        .filter(|entry| entry.metadata().is_ok_and(|meta| meta.is_file() && meta.uid() == me))
        // Named semaphores are never collected.
        .filter(|entry| !entry.file_name().as_bytes().starts_with(b"sem."))
        .filter_map(|entry| candidate(&entry, mode))
        .collect();
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    // Read after the candidates were opened (and, for a real run, locked): a process that
    // opens one later finds it locked, or is seen. Our own descriptors of them are no use.
    let ours: Vec<_> = candidates.iter().map(|candidate| candidate.fd.as_raw_fd()).collect();
    let holders = Holders::scan(mode == Mode::DryRun, &ours);
    let mut found: Vec<Collected> = candidates
        .into_iter()
        .filter(|candidate| holders.verdict(&candidate.stat) == Verdict::Unheld)
        .map(|candidate| {
            let removed = mode == Mode::Remove
                && posix::unlink_if_ours(&candidate.path, posix::Identity::of(&candidate.stat)).unwrap_or(false);
            let what = match candidate.garbage {
                Garbage::Volatile => "volatile",
                Garbage::Unfinished => "unfinished: size 0 and set-user-ID, its creator was killed before sizing it",
            };
            let reason = format!("{what}; no process uses it (checked {})", holders.checked());
            Collected {
                kind: Kind::Posix,
                name: candidate.name,
                name_bytes: candidate.name_bytes,
                id: None,
                reason,
                removed,
            }
        })
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// Opens the file of `entry` if it may be garbage: volatile, or unfinished. For a real run, also
/// takes its exclusive lock, which succeeds only if no ipcmem handle holds it, and keeps any
/// opener waiting (an opener that then finds the name gone reports the object as not found).
fn candidate(entry: &std::fs::DirEntry, mode: Mode) -> Option<Candidate> {
    let path = entry.path();
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    let fd = fs::openat(CWD, &path, flags, FileMode::empty()).ok()?;
    let stat = fs::fstat(&fd).ok()?;
    let garbage = if posix::is_marked_volatile(&stat) {
        Garbage::Volatile
    } else if posix::is_unfinished(&stat) {
        Garbage::Unfinished
    } else {
        return None;
    };
    // A dry run must not probe with a lock: if the last holder dropped its handle while the
    // probe held the lock, that holder would believe someone else still held the object and
    // leave it behind. It reads /proc/locks instead.
    if mode == Mode::Remove {
        fs::flock(&fd, FlockOperation::NonBlockingLockExclusive).ok()?;
    }
    let file_name = entry.file_name();
    let name_bytes = [b"/", file_name.as_bytes()].concat();
    let name = String::from_utf8_lossy(&name_bytes).into_owned();
    let name_bytes = file_name.to_str().is_none().then_some(name_bytes);
    Some(Candidate { name, name_bytes, path, fd, stat, garbage })
}

/// The unfinished volatile segments of this user (see [`crate::sysv`]), removed unless dry.
fn collect_sysv(mode: Mode) -> Vec<Collected> {
    let me = rustix::process::geteuid().as_raw();
    let Ok(segments) = inventory::list(inventory::Filter::SysV) else { return Vec::new() };
    segments
        .into_iter()
        .filter(|info| info.unfinished && info.uid == me && info.cuid == Some(me))
        .filter_map(|info| {
            let id = info.id?;
            // Looked at again just before: still unattached, unmarked, its creator gone.
            let removed = mode == Mode::Remove
                && sysv::shminfo(id).is_ok_and(|now| sysv::is_unfinished(&now) == Some(true))
                && sysv::shmctl(id, sysv::ShmCommand::Remove).is_ok();
            let reason = format!(
                "an unfinished volatile segment (mode 0602, not marked for removal) that no process attaches, whose creator (pid {}) is gone",
                info.cpid.unwrap_or(0)
            );
            Some(Collected { kind: Kind::SysV, name: id.to_string(), name_bytes: None, id: Some(id), reason, removed })
        })
        .collect()
}

/// Removes what a run of this process may have left behind: every POSIX object whose name
/// starts with `prefix` (such as `/myapp-1234-`), and every System V segment this process
/// created (its `cpid`). Errors are ignored: this is the last resort of a cleanup guard, for
/// tests and benchmarks that give their objects such names.
///
/// ```
/// let prefix = format!("/ipcmem-doc-sweep-{}-", std::process::id());
/// ipcmem::SharedMemory::options().volatile(false).create(format!("{prefix}a"), 1)?;
/// ipcmem::gc::sweep(&prefix);
/// assert!(ipcmem::SharedMemory::open(format!("{prefix}a")).is_err());
/// # Ok::<(), ipcmem::Error>(())
/// ```
pub fn sweep(prefix: &str) {
    if let Ok(entries) = std::fs::read_dir(SHM_DIR) {
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            if ![b"/", file_name.as_bytes()].concat().starts_with(prefix.as_bytes()) {
                continue;
            }
            // A name that is not UTF-8 goes by its path: its lossy form could name another.
            if let Some(name) = file_name.to_str() {
                let _ = crate::shmrm(format!("/{name}").as_str());
            } else {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    let pid = std::process::id().to_string();
    let table = std::fs::read_to_string("/proc/sysvipc/shm").unwrap_or_default();
    for line in table.lines().skip(1) {
        // Columns: key shmid perms size cpid lpid ...
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let (Some(id), Some(&cpid)) = (fields.get(1).and_then(|id| id.parse().ok()), fields.get(4)) {
            if cpid == pid {
                let _ = crate::shmrm(crate::ShmId::from_raw(id));
            }
        }
    }
}
