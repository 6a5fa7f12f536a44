//! `create`, `hold`, `rm`, `chmod`, `key` and `gc`: making, keeping and removing objects.

use std::path::Path;
use std::time::{Duration, Instant};

use ipcmem::gc::{self, Collected};
use ipcmem::{inventory, posix, sysv, Id, Key, Semaphore, SharedMemory};
use serde::Serialize;

use crate::args::{Mode, Target};
use crate::escape::escaped;
use crate::failure::{self, Failure, Outcome};
use crate::inspect::print_line;
use crate::signals;

/// The example of `create --help`.
pub const CREATE_HELP: &str = "\
A volatile object lives only while someone holds it, so --volatile needs --hold: the command
prints the object, then holds it until SIGINT or SIGTERM (it vanishes then, unless another
process still holds it); after SIGKILL, `ipcmem gc` removes it.

Example:
  $ ipcmem create /frames 4MiB --mode 0640
  /frames
  $ ipcmem create private 1000
  id:3
  $ ipcmem create /scratch 64KiB --volatile --hold &";

/// The example of `hold --help`.
pub const HOLD_HELP: &str = "\
Holding a volatile object keeps it alive; read permission is enough.

Example:
  $ ipcmem hold /scratch &
  holding /scratch (65536 bytes)
  $ kill %1";

/// The example of `rm --help`.
pub const RM_HELP: &str = "\
sem:/name removes the name of a named semaphore, as sem_unlink(3): processes that have it open
keep using it.

Example:
  $ ipcmem rm /frames id:3
  $ ipcmem rm sem:/ready
  $ ipcmem rm --force /maybe-gone";

/// The example of `chmod --help`.
pub const CHMOD_HELP: &str = "\
A named semaphore (sem:/name) takes a mode as a POSIX object does: its file in /dev/shm is
changed; processes that have it open keep the access they had.

Example:
  $ ipcmem chmod /frames 0644
  $ ipcmem chmod id:3 600
  $ ipcmem chmod sem:/ready 0660";

/// The example of `key --help`.
pub const KEY_HELP: &str = "\
Example:
  $ ipcmem key /etc/hostname 42
  key:0x2a0010ff
  $ ipcmem create \"$(ipcmem key /etc/hostname 42)\" 1MiB";

/// The example of `gc --help`.
pub const GC_HELP: &str = "\
Only what crashed processes of the calling user left behind, and nobody uses: volatile POSIX
objects whose holders were all killed, persistent POSIX objects whose creator was killed
before sizing them (size 0, set-user-ID: unfinished), and volatile System V segments whose
creator was killed before marking them for removal (mode 0602, unattached, creator gone).
Never a persistent object, one in use, or another user's. \"In use\" means an ipcmem handle
holds it, or any process has it open or mapped (Python's shared_memory included), checked in
/proc/locks, /proc/*/fd and /proc/*/maps; where not every process can be seen (a child PID
namespace), gc leaves what it cannot judge. Named semaphores are never collected:
`ipcmem rm sem:/NAME` removes one.

Example:
  $ ipcmem gc --dry-run
  would remove /scratch: volatile; no process uses it (checked the flocks of /proc/locks, and the descriptors and mappings of 97 processes (/proc/*/fd, /proc/*/maps))
  $ ipcmem gc --json";

/// `ipcmem create OBJ SIZE [--mode MODE] [--volatile --hold]`.
pub fn create(object: &Id, size: usize, mode: Mode, volatile: bool, hold: bool) -> Outcome {
    // Blocked before the object exists: a stop signal that comes while it is made ends the
    // hold at once, cleanly, instead of killing the process and leaving the object behind.
    let stop = if hold { Some(signals::block().map_err(|error| Failure::about("signals", error))?) } else { None };
    // The library always gives the owner read and write, so that the creator can open its
    // object; a mode without them is set exactly once the object exists.
    let shm = SharedMemory::options().volatile(volatile).perms(mode | 0o600).create(object, size)?;
    if mode & 0o600 != 0o600 {
        if let Err(error) = set_mode(&shm.id(), mode) {
            let _ = shm.remove();
            return Err(error.into());
        }
    }
    print_line(&shm.id().to_string())?;
    if let Some(stop) = stop {
        stop.wait().map_err(|error| Failure::about("signals", error))?;
    }
    drop(shm);
    Ok(())
}

/// `ipcmem hold OBJ`: opens read-only and holds until stopped.
pub fn hold(object: &Id) -> Outcome {
    let stop = signals::block().map_err(|error| Failure::about("signals", error))?;
    let shm = open_to_hold(object, &stop)?;
    print_line(&format!("holding {object} ({} bytes)", shm.len()))?;
    stop.wait().map_err(|error| Failure::about("signals", error))?;
    drop(shm);
    Ok(())
}

/// How long `hold` waits at a time for a lock that another process holds, between two looks at
/// the stop signals.
const LOCK_POLL: Duration = Duration::from_millis(20);

/// Opens `object` read-only to hold it. Another process's exclusive lock on a volatile object
/// is waited for [`posix::LOCK_WAIT`] at most, in short steps: a stop signal that arrives
/// meanwhile ends the command at once (the signals are blocked, so nothing else would).
fn open_to_hold(object: &Id, stop: &signals::Blocked) -> Result<SharedMemory, Failure> {
    let started = Instant::now();
    loop {
        match SharedMemory::options().readonly(true).lock_wait(LOCK_POLL).open(object) {
            Err(ipcmem::Error::Locked { .. }) if started.elapsed() < posix::LOCK_WAIT => {}
            Err(ipcmem::Error::Locked { object, .. }) => {
                return Err(ipcmem::Error::Locked { object, waited: started.elapsed() }.into())
            }
            opened => return Ok(opened?),
        }
        if let Some(signal) = stop.pending() {
            return Err(Failure::about(object, format!("stopped by signal {signal} while waiting for its lock")));
        }
    }
}

/// `ipcmem rm OBJ... [--force]`: each object in turn; one that fails does not stop the others.
pub fn rm(objects: &[Target], force: bool) -> Outcome {
    let mut failed = false;
    for object in objects {
        match remove(object) {
            Ok(()) => {}
            Err(ipcmem::Error::NotFound { .. }) if force => {}
            Err(error) => {
                failure::report(&failure::describe(&error));
                failed = true;
            }
        }
    }
    if failed {
        Err(Failure::Reported)
    } else {
        Ok(())
    }
}

/// Removes one object or semaphore; a missing one is `NotFound`.
fn remove(target: &Target) -> ipcmem::Result<()> {
    let object = match target {
        Target::Memory(object) => object,
        Target::Semaphore(name) => {
            // Looked up first: unlinking a missing semaphore is no error for the library.
            inventory::semaphore(name)?;
            return Semaphore::unlink(name).map_err(|error| renamed(error, target));
        }
    };
    // Resolved first: a key names its segment's id, which is what is removed.
    let found = inventory::info(object)?;
    match (object, found.id) {
        (Id::Name(name), _) => posix::unlink(name),
        (_, Some(id)) => sysv::shmctl(id, sysv::ShmCommand::Remove),
        (_, None) => Err(ipcmem::Error::NotFound { object: object.to_string(), hint: None }),
    }
}

/// `ipcmem chmod OBJ MODE`.
pub fn chmod(target: &Target, mode: Mode) -> Outcome {
    match target {
        Target::Memory(object) => set_mode(object, mode)?,
        Target::Semaphore(name) => {
            // Its file, `/sem.NAME`, is changed as a POSIX object is.
            let file = inventory::semaphore(name)?.object();
            set_mode(&file, mode).map_err(|error| renamed(error, target))?;
        }
    }
    Ok(())
}

/// `error` about the semaphore `target` rather than the object the library named: the
/// semaphore's file (`/sem.NAME`) or its name (`/NAME`), both of which read as POSIX objects.
fn renamed(mut error: ipcmem::Error, target: &Target) -> ipcmem::Error {
    match &mut error {
        ipcmem::Error::NotFound { object, .. }
        | ipcmem::Error::AlreadyExists { object }
        | ipcmem::Error::PermissionDenied { object, .. }
        | ipcmem::Error::InvalidArgument { object, .. }
        | ipcmem::Error::LimitExceeded { object, .. }
        | ipcmem::Error::Os { object, .. } => *object = target.to_string(),
        _ => {}
    }
    error
}

/// Sets the permission bits of an object of either kind.
pub fn set_mode(object: &Id, mode: Mode) -> ipcmem::Result<()> {
    match object {
        Id::Name(name) => posix::chmod(name, mode),
        other => sysv::shmcfg(other, mode).map(|_| ()),
    }
}

/// `ipcmem key PATH PROJ`: the key as `key:0x…`, 8 hex digits (also a key of 0, which
/// `Key`'s own display would call `private`).
pub fn key(path: &Path, proj: u8) -> Outcome {
    // The library's errors speak of shared memory objects; here the object is a file.
    let key = Key::from_path(path, proj).map_err(|error| match error {
        ipcmem::Error::Os { errno, .. } if errno.raw_os_error() == libc::ENOENT => {
            Failure::about(path.display(), "no such file: ftok needs an existing file")
        }
        ipcmem::Error::Os { errno, .. } if errno.raw_os_error() == libc::EACCES => {
            Failure::about(path.display(), "permission denied: ftok needs to stat the file")
        }
        other => other.into(),
    })?;
    print_line(&format!("key:{:#010x}", key.as_raw().cast_unsigned()))
}

/// One entry of `gc --json`.
#[derive(Debug, Serialize)]
struct CollectedJson<'a> {
    kind: &'static str,
    name: &'a str,
    id: Option<i32>,
    reason: &'a str,
    removed: bool,
    /// The exact bytes of a name that is not UTF-8; `null` for a UTF-8 name.
    name_bytes: Option<&'a [u8]>,
}

/// `ipcmem gc [--dry-run] [--json]`.
pub fn gc(dry_run: bool, json: bool) -> Outcome {
    let mode = if dry_run { gc::Mode::DryRun } else { gc::Mode::Remove };
    let found = gc::collect(mode)?;
    let text = if json {
        let entries: Vec<CollectedJson> = found.iter().map(collected_json).collect();
        serde_json::to_string_pretty(&entries).unwrap_or_default()
    } else if found.is_empty() {
        "nothing to collect".to_owned()
    } else {
        found.iter().map(|entry| collected_line(entry, dry_run)).collect::<Vec<_>>().join("\n")
    };
    print_line(&text)
}

fn collected_json(entry: &Collected) -> CollectedJson<'_> {
    let kind = if entry.kind == inventory::Kind::SysV { "sysv" } else { "posix" };
    let id = entry.id.map(ipcmem::ShmId::as_raw);
    CollectedJson {
        kind,
        name: &entry.name,
        id,
        reason: &entry.reason,
        removed: entry.removed,
        name_bytes: entry.name_bytes.as_deref(),
    }
}

fn collected_line(entry: &Collected, dry_run: bool) -> String {
    let verb = match (dry_run, entry.removed) {
        (true, _) => "would remove",
        (false, true) => "removed",
        // Someone opened or removed it between the look and the removal.
        (false, false) => "left",
    };
    let name = escaped(entry.name_bytes.as_deref().unwrap_or(entry.name.as_bytes()));
    format!("{verb} {name}: {}", entry.reason)
}
