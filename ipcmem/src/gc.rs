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
use std::os::unix::fs::MetadataExt;

use rustix::fs::{self, FlockOperation, Mode as FileMode, OFlags, CWD};

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
    /// The object's name, `/name`.
    pub name: String,
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
        let Some(file_name) = entry.file_name().to_str().map(str::to_owned) else { continue };
        let owned_by_me = entry.metadata().is_ok_and(|meta| meta.is_file() && meta.uid() == me);
        if file_name.starts_with("sem.") || !owned_by_me {
            continue;
        }
        let name = format!("/{file_name}");
        if let Some(removed) = collect_one(&name, mode, held.as_ref()) {
            found.push(Collected { name, reason: REASON, removed });
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// Collects `name` if it is volatile and unheld: `Some(removed)`; `None` if it is not garbage.
fn collect_one(name: &str, mode: Mode, held: Option<&HashSet<Inode>>) -> Option<bool> {
    let path = posix::path_of(name);
    let fd = fs::openat(
        CWD,
        path.as_str(),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
        FileMode::empty(),
    )
    .ok()?;
    let stat = fs::fstat(&fd).ok()?;
    if !posix::is_marked_volatile(&stat) {
        return None;
    }
    if mode == Mode::DryRun {
        return is_unheld(&fd, held).then_some(false);
    }
    // Holding the exclusive lock keeps any opener waiting until we are done; an opener that
    // then finds the name gone reports the object as not found.
    fs::flock(&fd, FlockOperation::NonBlockingLockExclusive).ok()?;
    // Only the inode looked at: never one renamed onto the name meanwhile.
    Some(posix::unlink_if_ours(&path, SHM_DIR.len(), posix::Identity::of(&stat)).unwrap_or(false))
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
            let name = format!("/{}", entry.file_name().to_string_lossy());
            if name.starts_with(prefix) {
                let _ = crate::shmrm(name.as_str());
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
