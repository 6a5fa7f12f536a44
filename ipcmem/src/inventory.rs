//! What shared memory exists: every POSIX object of `/dev/shm`, every named POSIX semaphore
//! (`/dev/shm/sem.NAME`) and every System V segment, with all the system knows of each, read
//! without mapping, attaching or locking anything.
//!
//! Looking must not disturb what it looks at: an attachment would count in `nattch`, and a
//! probing lock on a volatile object could make its last holder believe that someone else still
//! holds it (and so leave it behind). So POSIX objects are read with `lstat` and `lgetxattr`,
//! their holders from `/proc/locks`, the count of a semaphore with `pread` of its file, and
//! System V segments from `/proc/sysvipc/shm` (which also lists the segments the caller may not
//! read), or `IPC_STAT` where `/proc` is missing.
//!
//! ```
//! use ipcmem::inventory::{self, Filter, Kind};
//! for object in inventory::list(Filter::All)? {
//!     let what = match object.kind {
//!         Kind::Posix => "POSIX object",
//!         Kind::Semaphore => "named semaphore",
//!         Kind::SysV => "System V segment",
//!     };
//!     println!("{what} {}: {} bytes, mode {:04o}", object.label(), object.size, object.mode);
//! }
//! # Ok::<(), ipcmem::Error>(())
//! ```

use std::os::unix::ffi::OsStrExt;

use rustix::fs::{self, AtFlags, CWD};

use crate::error::{Error, Result};
use crate::holders::{Holders, Verdict};
use crate::key::{Id, Key, ShmId};
use crate::posix::{self, SHM_DIR};
use crate::semaphore;
use crate::sysv::{self, SHM_DEST, SHM_LOCKED};

/// The kind of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A POSIX named object, a file of `/dev/shm`.
    Posix,
    /// A named POSIX semaphore (see [`crate::Semaphore`]), the file `/dev/shm/sem.NAME`.
    Semaphore,
    /// A System V segment.
    SysV,
}

/// Which objects [`list`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Filter {
    /// Every kind.
    #[default]
    All,
    /// POSIX shared memory objects only (no named semaphores).
    Posix,
    /// Named POSIX semaphores only.
    Semaphores,
    /// System V segments only.
    SysV,
}

impl Filter {
    /// Whether objects of `kind` pass.
    pub fn admits(self, kind: Kind) -> bool {
        match self {
            Filter::All => true,
            Filter::Posix => kind == Kind::Posix,
            Filter::Semaphores => kind == Kind::Semaphore,
            Filter::SysV => kind == Kind::SysV,
        }
    }
}

/// All that is known of one object. Fields a kind does not have are `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// POSIX object, named semaphore or System V segment.
    pub kind: Kind,
    /// The POSIX name, with its leading slash; for a named semaphore, the name as `sem_open`
    /// takes it (`/NAME` for the file `/dev/shm/sem.NAME`). A name that is not UTF-8 is here
    /// with U+FFFD in place of each bad sequence, and exact in [`name_bytes`](Self::name_bytes).
    /// Names may hold any byte but `/` and NUL, newlines and terminal escapes included: escape
    /// them before printing.
    pub name: Option<String>,
    /// The exact bytes of a name that is not UTF-8 (with its leading slash, as `name`); `None`
    /// for a UTF-8 name, which `name` holds exactly.
    pub name_bytes: Option<Vec<u8>>,
    /// The System V segment id.
    pub id: Option<ShmId>,
    /// The System V key; `None` for a segment without one (made with `IPC_PRIVATE`, or whose
    /// key went when it was marked for removal).
    pub key: Option<Key>,
    /// The exact size in bytes.
    pub size: u64,
    /// The permission bits (for POSIX objects and semaphores also set-id and sticky bits, if any).
    pub mode: u32,
    /// The owner's user id.
    pub uid: u32,
    /// The owner's group id.
    pub gid: u32,
    /// The creator's user id (System V).
    pub cuid: Option<u32>,
    /// The creator's group id (System V).
    pub cgid: Option<u32>,
    /// The number of attachments (System V). Nothing here attaches, so it never counts the
    /// caller's own look.
    pub nattch: Option<u64>,
    /// The creator's process id (System V).
    pub cpid: Option<i32>,
    /// The process id of the last attach or detach (System V).
    pub lpid: Option<i32>,
    /// The last access (POSIX, semaphore) or attach (System V, `None` if never), Unix seconds.
    pub atime: Option<i64>,
    /// The last detach, Unix seconds (System V, `None` if never).
    pub dtime: Option<i64>,
    /// The last modification of the contents, Unix seconds (POSIX, semaphore).
    pub mtime: Option<i64>,
    /// The last change of the object's attributes, Unix seconds.
    pub ctime: i64,
    /// Whether a System V segment is marked for removal (`SHM_DEST`): it goes at its last
    /// detach. Always false for a POSIX object or semaphore, whose name is gone once removed.
    pub marked_for_removal: bool,
    /// Whether a System V segment is locked in memory (`SHM_LOCKED`).
    pub locked: Option<bool>,
    /// Whether the object is destroyed when no longer used: a POSIX object or semaphore with
    /// the volatile mark, the sticky bit (made so by ipcmem), a System V segment marked for
    /// removal.
    pub volatile: Option<bool>,
    /// Whether anyone uses it: for a volatile (or unfinished) POSIX object or semaphore, whether
    /// an ipcmem handle holds it or any process has it open or mapped (see `gc`, which judges
    /// the same way); for a System V segment, whether it is attached. `None` for a persistent
    /// POSIX object or semaphore, and where it cannot be known: inside a child PID namespace,
    /// or where the processes that may use it cannot be read (they say "unknown", never
    /// "abandoned").
    pub in_use: Option<bool>,
    /// A creation that never finished, which [`crate::gc`] removes once nobody uses it: a
    /// persistent POSIX object its creator never sized (killed between `shm_open` and
    /// `ftruncate`: size 0 with the set-user-ID bit, see [`crate::posix`]), or a volatile
    /// System V segment whose creator died before marking it for removal (see [`crate::sysv`]).
    pub unfinished: bool,
    /// The current count of a named semaphore, as `sem_getvalue` gives it (other processes may
    /// change it at any time); `None` for shared memory, or where the caller may not read it.
    pub value: Option<u32>,
}

impl ObjectInfo {
    /// The object as the library's shared memory calls ([`crate::SharedMemory`],
    /// [`crate::shmrm`]) take it: `/name` or `id:N`; for a named semaphore, its file, the
    /// shared memory object `/sem.NAME`.
    pub fn object(&self) -> Id {
        match (self.kind, &self.name, self.id) {
            (Kind::Semaphore, Some(name), _) => Id::Name(semaphore_file(name)),
            (_, Some(name), _) => Id::Name(name.clone()),
            (_, None, Some(id)) => Id::Shm(id),
            (_, None, None) => Id::Shm(ShmId::default()),
        }
    }

    /// The object as the `ipcmem` command names it: `/name`, `id:N`, or `sem:/name` for a named
    /// semaphore.
    pub fn label(&self) -> String {
        match (self.kind, &self.name) {
            (Kind::Semaphore, Some(name)) => semaphore_label(name),
            _ => self.object().to_string(),
        }
    }

    /// The exact bytes of [`label`](Self::label), also for a name that is not UTF-8.
    pub fn label_bytes(&self) -> Vec<u8> {
        match (self.kind, &self.name_bytes) {
            (Kind::Semaphore, Some(bytes)) => [b"sem:", bytes.as_slice()].concat(),
            (_, Some(bytes)) => bytes.clone(),
            _ => self.label().into_bytes(),
        }
    }

    /// Whether this is what [`crate::gc`] removes (if the caller owns it): a volatile POSIX
    /// object that no process uses, or an unfinished creation that no process uses.
    pub fn is_abandoned(&self) -> bool {
        let volatile_posix = self.kind == Kind::Posix && self.volatile == Some(true);
        (volatile_posix || self.unfinished) && self.in_use == Some(false)
    }
}

/// Every object that `filter` selects: POSIX objects sorted by name, then named semaphores by
/// name, then System V segments by id. Anything in `/dev/shm` but regular files is left out.
pub fn list(filter: Filter) -> Result<Vec<ObjectInfo>> {
    let mut objects = Vec::new();
    if filter.admits(Kind::Posix) || filter.admits(Kind::Semaphore) {
        let mut files = list_dev_shm()?;
        files.retain(|info| filter.admits(info.kind));
        // POSIX objects first, then semaphores, each kind by name.
        files.sort_by(|a, b| (a.kind == Kind::Semaphore, &a.name).cmp(&(b.kind == Kind::Semaphore, &b.name)));
        objects.extend(files);
    }
    if filter.admits(Kind::SysV) {
        objects.extend(list_sysv()?);
    }
    Ok(objects)
}

/// The object that `target` names: a POSIX name, a System V key, or a segment id.
pub fn info(target: &Id) -> Result<ObjectInfo> {
    match target {
        Id::Name(name) => posix_info(name, &Holders::scan(true, &[])),
        Id::Key(key) if key.is_private() => Err(Error::InvalidArgument {
            object: key.to_string(),
            reason: "IPC_PRIVATE names no existing segment: name it by its id".into(),
        }),
        Id::Key(key) => sysv_info(|info| info.key == Some(*key), target),
        Id::Shm(id) => sysv_info(|info| info.id == Some(*id), target),
    }
}

/// The named semaphore `name` (`/NAME`, as `sem_open` takes it, the file `/dev/shm/sem.NAME`),
/// with its current count, read without opening it as a semaphore: nothing is locked, so a
/// volatile semaphore lives and goes as if no one had looked. Errors name it `sem:/NAME`.
///
/// ```
/// let name = format!("/ipcmem-doc-inventory-sem-{}", std::process::id());
/// let sem = ipcmem::Semaphore::create(&name, 3)?;
/// let info = ipcmem::inventory::semaphore(&name)?;
/// assert_eq!((info.value, info.label()), (Some(3), format!("sem:{name}")));
/// # Ok::<(), ipcmem::Error>(())
/// ```
pub fn semaphore(name: &str) -> Result<ObjectInfo> {
    let file = semaphore::file_name(name)?;
    let info = posix_info(&file, &Holders::scan(true, &[])).map_err(|error| about_semaphore(error, name))?;
    Ok(as_semaphore(info, name))
}

/// Checks that `name` is a valid name of a named semaphore, as `sem_open` takes it: `/NAME`,
/// where `sem.NAME` is a valid file name.
pub fn check_semaphore_name(name: &str) -> Result<()> {
    semaphore::file_name(name).map(drop)
}

/// `/sem.NAME`, the shared memory name of the file of semaphore `/NAME`.
fn semaphore_file(name: &str) -> String {
    format!("/sem.{}", name.strip_prefix('/').unwrap_or(name))
}

/// `sem:/NAME`, as the `ipcmem` command (and the errors of [`semaphore`]) name a semaphore.
fn semaphore_label(name: &str) -> String {
    format!("sem:{name}")
}

// ---- POSIX objects and semaphores ----

/// The files of `/dev/shm`: POSIX objects and named semaphores, unsorted.
fn list_dev_shm() -> Result<Vec<ObjectInfo>> {
    let entries = std::fs::read_dir(SHM_DIR).map_err(|error| Error::InvalidArgument {
        object: SHM_DIR.to_owned(),
        reason: format!("cannot list the directory: {error}"),
    })?;
    let holders = Holders::scan(true, &[]);
    let objects = entries
        .flatten()
        // An object removed since the directory was read is simply not listed.
        .filter_map(|entry| match entry.file_name().to_str() {
            Some(file) => utf8_file_info(file, &holders),
            None => non_utf8_file_info(entry.file_name().as_bytes(), &holders),
        })
        .collect();
    Ok(objects)
}

/// The object or semaphore of the file `file` of `/dev/shm`, if it is one.
fn utf8_file_info(file: &str, holders: &Holders) -> Option<ObjectInfo> {
    let file = format!("/{file}");
    posix::check_name(&file).ok()?;
    let info = posix_info(&file, holders).ok()?;
    // A `sem.` file whose rest makes no semaphore name (`sem.` alone) is just a file.
    match file.strip_prefix("/sem.").map(|name| format!("/{name}")) {
        Some(name) if check_semaphore_name(&name).is_ok() => Some(as_semaphore(info, &name)),
        _ => Some(info),
    }
}

/// The object or semaphore of the file `file` of `/dev/shm` whose name is not UTF-8, if it is
/// one: listed with its exact bytes in `name_bytes`, so that such a name is never hidden.
fn non_utf8_file_info(file: &[u8], holders: &Holders) -> Option<ObjectInfo> {
    let path = std::path::Path::new(SHM_DIR).join(std::ffi::OsStr::from_bytes(file));
    let name_bytes = [b"/", file].concat();
    let mut info = stat_info(String::from_utf8_lossy(&name_bytes).into_owned(), &path, holders).ok()?;
    info.name_bytes = Some(name_bytes);
    if let Some(rest) = file.strip_prefix(b"sem.") {
        info.value = semaphore_value(&path);
        info.kind = Kind::Semaphore;
        let name = [b"/", rest].concat();
        info.name = Some(String::from_utf8_lossy(&name).into_owned());
        info.name_bytes = Some(name);
    }
    Some(info)
}

/// The info of a semaphore's file, `info`, as that of the semaphore `name`, with its count.
fn as_semaphore(mut info: ObjectInfo, name: &str) -> ObjectInfo {
    info.value = semaphore_value(posix::path_of(&semaphore_file(name)));
    info.kind = Kind::Semaphore;
    info.name = Some(name.to_owned());
    info
}

/// The count of the semaphore whose file is `path`; `None` if it cannot be read or is too small
/// to be a semaphore.
///
/// The `sem_t` is read as a file (`pread`, with `O_NOATIME` where allowed) into a copy, whose
/// count glibc's own `sem_getvalue` then reads: neither mapped (a file cut short by another
/// process could not raise `SIGBUS`) nor locked nor opened as a semaphore (the drop of such a
/// handle unlinks a volatile semaphore that no one else holds).
fn semaphore_value(path: impl AsRef<std::path::Path>) -> Option<u32> {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let path = path.as_ref();
    let open = |flags| {
        std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | flags).open(path)
    };
    // O_NOATIME: a look must not change the access time that listings show. Only the owner (or
    // root) may ask for it; anyone else reads as usual.
    let file = match open(libc::O_NOATIME) {
        Err(error) if error.raw_os_error() == Some(libc::EPERM) => open(0),
        opened => opened,
    }
    .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    // SAFETY: `sem_t` is a plain C union of bytes and integers: all zeros is a valid value.
    let mut copy: libc::sem_t = unsafe { std::mem::zeroed() };
    // SAFETY: `copy` is a live, writable `sem_t`; the slice covers exactly its bytes and no other
    // reference to it exists while the slice does.
    let bytes = unsafe { std::slice::from_raw_parts_mut((&raw mut copy).cast::<u8>(), size_of::<libc::sem_t>()) };
    file.read_exact_at(bytes, 0).ok()?;
    let mut value: libc::c_int = 0;
    // SAFETY: `copy` is a `sem_t` of our own; sem_getvalue only reads its count (an atomic load
    // of a word of it) and writes `value`, a valid int. Any bytes give some count, never UB.
    unsafe { libc::sem_getvalue(&raw mut copy, &raw mut value) };
    u32::try_from(value).ok()
}

/// `error` about the file `/sem.NAME` of semaphore `name`, told about `sem:/NAME`.
fn about_semaphore(mut error: Error, name: &str) -> Error {
    let label = semaphore_label(name);
    match &mut error {
        Error::NotFound { object, hint } => {
            *object = label;
            *hint = Some("no named semaphore: it would be the file /dev/shm/sem.NAME");
        }
        Error::InvalidArgument { object, reason } => {
            *object = label;
            *reason = "not a named semaphore: its file in /dev/shm is not a regular file".into();
        }
        Error::PermissionDenied { object, .. } | Error::Os { object, .. } | Error::LimitExceeded { object, .. } => {
            *object = label;
        }
        _ => {}
    }
    error
}

fn posix_info(name: &str, holders: &Holders) -> Result<ObjectInfo> {
    posix::check_name(name)?;
    stat_info(name.to_owned(), std::path::Path::new(&posix::path_of(name)), holders)
}

/// The info of the file at `path`, the POSIX object `name` (as errors name it).
fn stat_info(name: String, path: &std::path::Path, holders: &Holders) -> Result<ObjectInfo> {
    let stat =
        fs::statat(CWD, path, AtFlags::SYMLINK_NOFOLLOW).map_err(|errno| Error::from_errno(&name, "stat", errno))?;
    if fs::FileType::from_raw_mode(stat.st_mode) != fs::FileType::RegularFile {
        return Err(Error::InvalidArgument {
            object: name,
            reason: "not a shared memory object: not a regular file in /dev/shm".into(),
        });
    }
    let volatile = posix::is_marked_volatile(&stat);
    let unfinished = posix::is_unfinished(&stat);
    // As gc judges: by the locks, descriptors and mappings of every process it can see.
    let in_use = (volatile || unfinished).then(|| holders.verdict(&stat)).and_then(|verdict| match verdict {
        Verdict::Held(_) => Some(true),
        Verdict::Unheld => Some(false),
        Verdict::Unknown(_) => None,
    });
    Ok(ObjectInfo {
        kind: Kind::Posix,
        name: Some(name),
        name_bytes: None,
        id: None,
        key: None,
        size: u64::try_from(stat.st_size).unwrap_or(0),
        mode: stat.st_mode & 0o7777,
        uid: stat.st_uid,
        gid: stat.st_gid,
        cuid: None,
        cgid: None,
        nattch: None,
        cpid: None,
        lpid: None,
        atime: Some(stat.st_atime),
        dtime: None,
        mtime: Some(stat.st_mtime),
        ctime: stat.st_ctime,
        marked_for_removal: false,
        locked: None,
        volatile: Some(volatile),
        in_use,
        unfinished,
        value: None,
    })
}

impl Inode {
    /// The inode of a file, from its `stat`.
    pub(crate) fn of(stat: &fs::Stat) -> Inode {
        Inode::new(fs::major(stat.st_dev), fs::minor(stat.st_dev), stat.st_ino)
    }

    /// The inode `ino` of the device `major:minor`.
    pub(crate) fn new(major: u32, minor: u32, ino: u64) -> Inode {
        Inode { major, minor, ino }
    }
}

/// A file as `/proc/locks` and `/proc/PID/maps` name it: device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Inode {
    major: u32,
    minor: u32,
    ino: u64,
}

// ---- System V segments ----

/// The segment that `matches` selects, named `target` in errors.
fn sysv_info(matches: impl Fn(&ObjectInfo) -> bool, target: &Id) -> Result<ObjectInfo> {
    match read_proc_sysvipc() {
        Some(segments) => segments.into_iter().find(|info| matches(info)).ok_or_else(|| not_found(target)),
        // Without /proc: IPC_STAT, which needs read permission on the segment.
        None => sysv::shminfo(target).map(|info| from_shminfo(&info)),
    }
}

fn not_found(target: &Id) -> Error {
    let hint = match target {
        Id::Key(_) => "volatile segments lose their key when marked for removal and are reachable by id only",
        _ => "no segment has this id",
    };
    Error::NotFound { object: target.to_string(), hint: Some(hint) }
}

fn list_sysv() -> Result<Vec<ObjectInfo>> {
    let mut segments = read_proc_sysvipc().ok_or_else(|| Error::InvalidArgument {
        object: "/proc/sysvipc/shm".to_owned(),
        reason: "cannot read the table of System V segments (is /proc mounted?)".into(),
    })?;
    segments.sort_by_key(|info| info.id);
    Ok(segments)
}

/// Every segment of `/proc/sysvipc/shm`; `None` if the table cannot be read.
fn read_proc_sysvipc() -> Option<Vec<ObjectInfo>> {
    let table = std::fs::read_to_string("/proc/sysvipc/shm").ok()?;
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next()?.split_whitespace().collect();
    Some(lines.filter_map(|line| parse_sysvipc_line(&header, line)).collect())
}

/// One line of `/proc/sysvipc/shm`, its columns found by the names of the header.
fn parse_sysvipc_line(header: &[&str], line: &str) -> Option<ObjectInfo> {
    let values: Vec<&str> = line.split_whitespace().collect();
    let field = |name: &str| header.iter().position(|column| *column == name).and_then(|at| values.get(at).copied());
    let int = |name: &str| field(name)?.parse::<i64>().ok();
    let uint = |name: &str| field(name)?.parse::<u64>().ok();
    let id32 = |name: &str| u32::try_from(uint(name)?).ok();
    let pid = |name: &str| i32::try_from(int(name)?).ok();
    let mode = u32::from_str_radix(field("perms")?, 8).ok()?;
    let info = sysv::ShmInfo {
        key: Key::from_raw(i32::try_from(int("key")?).ok()?),
        id: ShmId::from_raw(i32::try_from(int("shmid")?).ok()?),
        mode,
        uid: id32("uid")?,
        gid: id32("gid")?,
        cuid: id32("cuid")?,
        cgid: id32("cgid")?,
        size: usize::try_from(uint("size")?).ok()?,
        atime: int("atime")?,
        dtime: int("dtime")?,
        ctime: int("ctime")?,
        cpid: pid("cpid")?,
        lpid: pid("lpid")?,
        nattch: uint("nattch")?,
    };
    Some(from_shminfo(&info))
}

fn from_shminfo(info: &sysv::ShmInfo) -> ObjectInfo {
    let never = |time: i64| (time != 0).then_some(time);
    let marked = info.mode & SHM_DEST != 0;
    // An unfinished creation is in use by nobody; one whose creator cannot be seen (outside
    // this PID namespace) is of unknown use.
    let unfinished = sysv::is_unfinished(info);
    let in_use = match unfinished {
        Some(true) => Some(false),
        None if sysv::has_creating_mode(info) && info.nattch == 0 => None,
        _ => Some(info.nattch > 0),
    };
    ObjectInfo {
        kind: Kind::SysV,
        name: None,
        name_bytes: None,
        id: Some(info.id),
        key: (!info.key.is_private()).then_some(info.key),
        size: info.size as u64,
        mode: info.mode & 0o777,
        uid: info.uid,
        gid: info.gid,
        cuid: Some(info.cuid),
        cgid: Some(info.cgid),
        nattch: Some(info.nattch),
        cpid: Some(info.cpid),
        lpid: Some(info.lpid),
        atime: never(info.atime),
        dtime: never(info.dtime),
        mtime: None,
        ctime: info.ctime,
        marked_for_removal: marked,
        locked: Some(info.mode & SHM_LOCKED != 0),
        volatile: Some(marked),
        in_use,
        unfinished: unfinished == Some(true),
        value: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_line_of_proc_sysvipc_shm() {
        let header = "key shmid perms size cpid lpid nattch uid gid cuid cgid atime dtime ctime rss swap";
        let header: Vec<&str> = header.split_whitespace().collect();
        let line = "-1 7 1600 4097 10 11 2 1000 100 0 0 5 0 9 4096 0";
        let info = parse_sysvipc_line(&header, line).expect("a valid line");
        assert_eq!(info.id, Some(ShmId::from_raw(7)));
        assert_eq!(info.key, Some(Key::from_raw(-1)));
        assert_eq!((info.mode, info.marked_for_removal, info.volatile), (0o600, true, Some(true)));
        assert_eq!((info.size, info.nattch, info.cpid, info.lpid), (4097, Some(2), Some(10), Some(11)));
        assert_eq!((info.atime, info.dtime, info.ctime), (Some(5), None, 9));
        assert_eq!(parse_sysvipc_line(&header, "1 2 3"), None);
    }
}
