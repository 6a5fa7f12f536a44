//! Garbage collection: removes the volatile POSIX objects that no process holds any more.
//!
//! A volatile POSIX object is unlinked by its last handle. When every holder crashed (or was
//! killed with `SIGKILL`) nobody did, and the object stays in `/dev/shm`. [`collect`] finds such
//! objects by their volatile marker and by the absence of any holder's lock, and unlinks them.
//! It never touches a persistent object, one still in use, or one owned by another user.
//!
//! Volatile System V segments need no collection: the kernel frees them at the last detach.
//!
//! ```
//! for found in ipcmem::gc::collect(ipcmem::gc::Mode::DryRun)? {
//!     println!("{}: {}", found.name, found.reason);
//! }
//! # Ok::<(), ipcmem::Error>(())
//! ```

use std::collections::HashSet;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rustix::fs::{self, AtFlags, FlockOperation, Mode as FileMode, OFlags, CWD};

use crate::error::{Error, Result};
use crate::inventory::{self, Inode};
use crate::posix::{self, SHM_DIR};

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
    /// The object's name, `/name`; for a name that is not UTF-8, with U+FFFD in place of each
    /// bad sequence (exact in `name_bytes`). Escape it before printing: names may hold any byte
    /// but `/` and NUL.
    pub name: String,
    /// The exact bytes of a name that is not UTF-8; `None` for a UTF-8 name.
    pub name_bytes: Option<Vec<u8>>,
    /// Why it is garbage.
    pub reason: &'static str,
    /// Whether it was removed (false in a dry run).
    pub removed: bool,
}

const REASON: &str = "volatile, and no process holds it";

/// Finds, and unless `mode` is [`Mode::DryRun`] removes, every volatile POSIX object of this
/// user that no process holds.
pub fn collect(mode: Mode) -> Result<Vec<Collected>> {
    let entries = std::fs::read_dir(SHM_DIR).map_err(|error| Error::InvalidArgument {
        object: SHM_DIR.to_owned(),
        reason: format!("cannot list the directory: {error}"),
    })?;
    let me = rustix::process::geteuid().as_raw();
    // A dry run reads the holders once, from /proc/locks (see `is_unheld`); `None` if unreadable.
    let held = if mode == Mode::DryRun { inventory::held_inodes() } else { None };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        // Names that are not UTF-8 are collected as well: by their path, never by a lossy name.
        let file_name = entry.file_name();
        let owned_by_me = entry.metadata().is_ok_and(|meta| meta.is_file() && meta.uid() == me);
        if file_name.as_bytes().starts_with(b"sem.") || !owned_by_me {
            continue;
        }
        let path = Path::new(SHM_DIR).join(&file_name);
        if let Some(removed) = collect_one(&path, mode, held.as_ref()) {
            let name_bytes = [b"/", file_name.as_bytes()].concat();
            let name = String::from_utf8_lossy(&name_bytes).into_owned();
            let name_bytes = file_name.to_str().is_none().then_some(name_bytes);
            found.push(Collected { name, name_bytes, reason: REASON, removed });
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// Collects the object at `path` if it is volatile and unheld: `Some(removed)`; `None` if it is
/// not garbage.
fn collect_one(path: &Path, mode: Mode, held: Option<&HashSet<Inode>>) -> Option<bool> {
    let fd = fs::openat(
        CWD,
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
        FileMode::empty(),
    )
    .ok()?;
    if !posix::is_marked_volatile(&fd) {
        return None;
    }
    if mode == Mode::DryRun {
        return is_unheld(&fd, held).then_some(false);
    }
    // Holding the exclusive lock keeps any opener waiting until we are done; an opener that
    // then finds the name gone reports the object as not found.
    fs::flock(&fd, FlockOperation::NonBlockingLockExclusive).ok()?;
    let same = fs::fstat(&fd)
        .ok()
        .zip(fs::statat(CWD, path, AtFlags::SYMLINK_NOFOLLOW).ok())
        .is_some_and(|(ours, named)| (ours.st_dev, ours.st_ino) == (named.st_dev, named.st_ino));
    Some(same && fs::unlinkat(CWD, path, AtFlags::empty()).is_ok())
}

/// Whether no process holds the object open at `fd`, by the `held` files read from `/proc/locks`
/// (`None`: unknown, so held).
///
/// A dry run must not probe with a lock of its own: if the last holder dropped its handle while
/// the probe held the lock, that holder would believe someone else still held the object and
/// leave it behind.
fn is_unheld(fd: &OwnedFd, held: Option<&HashSet<Inode>>) -> bool {
    let Ok(stat) = fs::fstat(fd) else { return false };
    held.is_some_and(|held| !held.contains(&Inode::of(&stat)))
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
