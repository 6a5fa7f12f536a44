//! System V shared memory segments: the calls of the Julia package's lower level, `shmget`,
//! `shmat`, `shmdt`, `shmctl`, `shmcfg` and `shminfo` (see `shmget(2)`, `shmat(2)`,
//! `shmctl(2)`).
//!
//! **Volatile segments never leak.** A volatile segment is one marked for removal
//! (`IPC_RMID`) while attached: the kernel frees it at its last detach, crash or not. Between
//! `shmget` and `IPC_RMID` a kill would leave it for ever, so [`crate::ShmOptions`] makes it
//! with the mode [`CREATING_MODE`], `0602` (the owner may attach it; others may write but, not
//! allowed to read, cannot even attach: a pattern no program uses), attaches it, marks it for
//! removal, and only then sets the mode asked for (`IPC_SET`). [`crate::gc`] removes a segment
//! of the calling user with exactly that mode, not attached, not marked for removal, whose
//! creator (`cpid`) is gone: a creation killed half way. It never touches a segment that is
//! attached or marked for removal, nor a persistent one: ipcmem never gives a persistent
//! segment that mode (an owner who sets it by hand, `shmcfg(id, 0o602)`, makes the segment
//! look like an interrupted creation once its creator is gone and nobody attaches it), and
//! another program's segment has it only if that program chose this odd mode.
//!
//! ```
//! use ipcmem::{sysv, Key};
//! let id = sysv::shmget(Key::PRIVATE, 4096, sysv::IPC_CREAT | sysv::ShmFlags::perms(0o600))?;
//! let attachment = sysv::shmat(id, false)?;
//! assert_eq!(attachment.len(), 4096);
//! assert_eq!(sysv::shminfo(id)?.nattch, 1);
//! sysv::shmdt(attachment)?;
//! sysv::shmctl(id, sysv::ShmCommand::Remove)?;
//! # Ok::<(), ipcmem::Error>(())
//! ```

use std::ops::BitOr;
use std::ptr::NonNull;

use rustix::io::Errno;

use crate::error::{last_errno, Error, Limit, Result};
use crate::key::{Id, Key, ShmId};

/// `SHM_DEST` of `shm_perm.mode`: the segment is marked for removal.
pub const SHM_DEST: u32 = 0o1000;
/// `SHM_LOCKED` of `shm_perm.mode`: the segment is locked in memory.
pub const SHM_LOCKED: u32 = 0o2000;

/// The mode a volatile segment has from `shmget` until it is marked for removal, which tells
/// an interrupted creation (see the module's docs).
pub const CREATING_MODE: u32 = 0o602;

/// Whether a segment has [`CREATING_MODE`], exactly: not marked for removal, not locked.
pub(crate) fn has_creating_mode(info: &ShmInfo) -> bool {
    info.mode & (0o777 | SHM_DEST | SHM_LOCKED) == CREATING_MODE
}

/// Whether a segment is a volatile creation killed before `IPC_RMID`: it has
/// [`CREATING_MODE`], nobody attaches it, and its creator is gone. `None` where the creator
/// cannot be seen (`cpid` 0: outside this PID namespace).
pub(crate) fn is_unfinished(info: &ShmInfo) -> Option<bool> {
    if !has_creating_mode(info) || info.nattch != 0 {
        return Some(false);
    }
    if info.cpid <= 0 {
        return None;
    }
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let alive = unsafe { libc::kill(info.cpid, 0) } == 0 || last_errno() == Errno::PERM;
    Some(!alive)
}

/// Flags of [`shmget`]: [`IPC_CREAT`], [`IPC_EXCL`] and the 9 permission bits, combined with `|`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShmFlags(i32);

/// Create the segment if the key has none.
pub const IPC_CREAT: ShmFlags = ShmFlags(libc::IPC_CREAT);
/// With [`IPC_CREAT`]: fail if the key has a segment already.
pub const IPC_EXCL: ShmFlags = ShmFlags(libc::IPC_EXCL);
/// With [`IPC_CREAT`]: back the new segment with huge pages, from the pool reserved in
/// `/proc/sys/vm/nr_hugepages`. The kernel rounds the memory up to whole huge pages (the
/// segment's size stays the one asked for); with too few free, `shmget` fails with
/// [`Limit::HugePages`].
pub const SHM_HUGETLB: ShmFlags = ShmFlags(libc::SHM_HUGETLB);

impl ShmFlags {
    /// The permission bits `perms & 0o777`, as the mode argument of `chmod`.
    pub const fn perms(perms: u32) -> ShmFlags {
        ShmFlags((perms & 0o777).cast_signed())
    }

    /// The raw `shmflg` value.
    pub const fn bits(self) -> i32 {
        self.0
    }
}

impl BitOr for ShmFlags {
    type Output = ShmFlags;
    fn bitor(self, other: ShmFlags) -> ShmFlags {
        ShmFlags(self.0 | other.0)
    }
}

/// Gets the segment of `key`, creating it as `flags` say, as `shmget(2)`.
///
/// A new segment has exactly `size` bytes (the kernel rounds only the memory behind it up to
/// pages). The mode bits of `flags` are not filtered by the umask.
pub fn shmget(key: Key, size: usize, flags: ShmFlags) -> Result<ShmId> {
    // SAFETY: shmget takes plain integers and touches no memory of ours.
    let raw = unsafe { libc::shmget(key.as_raw(), size, flags.0) };
    if raw >= 0 {
        return Ok(ShmId::from_raw(raw));
    }
    let errno = last_errno();
    let creating = flags.0 & libc::IPC_CREAT != 0 || key.is_private();
    Err(shmget_error(key, size, creating, flags.0 & libc::SHM_HUGETLB != 0, errno))
}

/// The error that explains a failed `shmget`.
fn shmget_error(key: Key, size: usize, creating: bool, huge_pages: bool, errno: Errno) -> Error {
    let object = key.to_string();
    match errno {
        Errno::NOMEM if creating && huge_pages => crate::huge::unavailable(&object, size, crate::huge::Cause::TooFew),
        Errno::PERM if creating && huge_pages => {
            crate::huge::unavailable(&object, size, crate::huge::Cause::NotAllowed)
        }
        Errno::NOENT => Error::NotFound {
            object,
            hint: Some("volatile segments lose their key when marked for removal and are reachable by id only"),
        },
        Errno::INVAL if creating && size == 0 => {
            Error::InvalidSize { object, size: 0, reason: "a segment needs at least one byte" }
        }
        Errno::INVAL if creating && limit("shmmax").is_some_and(|max| size as u64 > max) => Error::LimitExceeded {
            object,
            limit: Limit::ShmMax,
            detail: format!("{size} bytes asked, SHMMAX is {}", limit("shmmax").unwrap_or(0)),
        },
        // The kernel backs a segment with a file, which cannot pass MAX_LFS_FILESIZE (i64::MAX),
        // even below a huge SHMMAX: no segment can have this size, whatever the key.
        Errno::INVAL if creating && i64::try_from(size).is_err() => Error::InvalidSize {
            object,
            size: size as u64,
            reason: "larger than any segment can be (the kernel's file size limit, i64::MAX bytes)",
        },
        Errno::INVAL => {
            Error::InvalidSize { object, size: size as u64, reason: "the key's segment exists and is smaller" }
        }
        Errno::NOSPC => {
            let segments =
                std::fs::read_to_string("/proc/sysvipc/shm").map_or(0, |table| table.lines().count().saturating_sub(1));
            let max = limit("shmmni").unwrap_or(u64::MAX);
            let limit = if segments as u64 >= max { Limit::ShmMni } else { Limit::ShmAll };
            Error::LimitExceeded { object, limit, detail: format!("{segments} segments exist") }
        }
        errno => Error::from_errno(&object, "shmget", errno),
    }
}

/// A limit of `/proc/sys/kernel`, such as `shmmax`.
fn limit(name: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/sys/kernel/{name}")).ok()?.trim().parse().ok()
}

/// The id of the existing segment of `key`, checked for the permission bits `perms`.
pub(crate) fn get_existing(key: Key, perms: u32) -> Result<ShmId> {
    if key.is_private() {
        return Err(Error::InvalidArgument {
            object: key.to_string(),
            reason: "IPC_PRIVATE names no existing segment: open it by its id".into(),
        });
    }
    shmget(key, 0, ShmFlags::perms(perms))
}

/// The segment id that `target` names: the id itself, or the segment of a key.
pub(crate) fn resolve(target: &Id) -> Result<ShmId> {
    match target {
        Id::Shm(id) => Ok(*id),
        Id::Key(key) => get_existing(*key, 0),
        Id::Name(name) => Err(Error::InvalidArgument {
            object: name.clone(),
            reason: "a POSIX name, where a System V key or id is needed".into(),
        }),
    }
}

/// A segment attached to this process; detached on drop, as `shmdt(2)`.
#[derive(Debug)]
pub struct Attachment {
    ptr: NonNull<u8>,
    len: usize,
    id: ShmId,
    readonly: bool,
}

// SAFETY: an attachment is an address range valid in the whole process; detaching it from
// another thread is as sound as from this one. Access through it is the user's (unsafe) business.
unsafe impl Send for Attachment {}
// SAFETY: `&Attachment` only hands out the raw pointer and plain values.
unsafe impl Sync for Attachment {}

/// Attaches segment `id`, read-only (`SHM_RDONLY`, needs read permission) or read-write, as
/// `shmat(2)`.
pub fn shmat(id: ShmId, readonly: bool) -> Result<Attachment> {
    let len = stat(id)?.shm_segsz;
    attach(id, len, readonly)
}

/// Attaches segment `id` whose size `len` is known.
pub(crate) fn attach(id: ShmId, len: usize, readonly: bool) -> Result<Attachment> {
    let flags = if readonly { libc::SHM_RDONLY } else { 0 };
    // SAFETY: the kernel chooses the address (NULL): the new mapping overlaps nothing of ours.
    let ptr = unsafe { libc::shmat(id.as_raw(), std::ptr::null(), flags) };
    if ptr as isize == -1 {
        let access = if readonly { "read" } else { "read-write" };
        return Err(match last_errno() {
            Errno::ACCESS | Errno::PERM => Error::PermissionDenied { object: id.to_string(), access },
            Errno::INVAL | Errno::IDRM => {
                Error::NotFound { object: id.to_string(), hint: Some("the segment was removed") }
            }
            errno => Error::from_errno(&id, "shmat", errno),
        });
    }
    let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| Error::from_errno(&id, "shmat", Errno::FAULT))?;
    Ok(Attachment { ptr, len, id, readonly })
}

impl Attachment {
    /// The address of the segment in this process.
    #[inline]
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// The address, for writing (through `unsafe` code, and only if not read-only).
    #[inline]
    pub fn as_mut_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The exact size of the segment in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a segment has at least one byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The segment's id.
    pub fn id(&self) -> ShmId {
        self.id
    }

    /// Whether it was attached with `SHM_RDONLY`.
    pub fn is_readonly(&self) -> bool {
        self.readonly
    }

    fn detach(&self) -> Result<()> {
        // SAFETY: `ptr` is the address shmat returned for this attachment, detached only here
        // (in `shmdt`, which forgets the attachment, or in `drop`).
        if unsafe { libc::shmdt(self.ptr.as_ptr().cast()) } == 0 {
            Ok(())
        } else {
            Err(Error::from_errno(&self.id, "shmdt", last_errno()))
        }
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        let _ = self.detach();
    }
}

/// Detaches now, as `shmdt(2)`, reporting a failure that drop would ignore.
pub fn shmdt(attachment: Attachment) -> Result<()> {
    let result = attachment.detach();
    std::mem::forget(attachment);
    result
}

/// What the kernel knows of a segment: every field of `struct shmid_ds`, as `ShmInfo` of the
/// Julia package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShmInfo {
    /// The segment's key; [`Key::PRIVATE`] once marked for removal or if made without one.
    pub key: Key,
    /// The segment's id.
    pub id: ShmId,
    /// The mode: the 9 permission bits, plus `SHM_DEST` (0o1000) and `SHM_LOCKED` (0o2000).
    pub mode: u32,
    /// The owner's user id.
    pub uid: u32,
    /// The owner's group id.
    pub gid: u32,
    /// The creator's user id.
    pub cuid: u32,
    /// The creator's group id.
    pub cgid: u32,
    /// The exact size in bytes.
    pub size: usize,
    /// The last attach time, Unix seconds (0: never).
    pub atime: i64,
    /// The last detach time, Unix seconds (0: never).
    pub dtime: i64,
    /// The last change time, Unix seconds.
    pub ctime: i64,
    /// The creator's process id.
    pub cpid: i32,
    /// The process id of the last attach or detach.
    pub lpid: i32,
    /// The number of current attachments.
    pub nattch: u64,
}

impl ShmInfo {
    /// The information of the segment that `target` (a key or an id) names.
    pub fn of(target: impl Into<Id>) -> Result<ShmInfo> {
        shminfo(target)
    }

    /// The 9 permission bits.
    pub fn perms(&self) -> u32 {
        self.mode & 0o777
    }

    /// Whether the segment is marked for removal (`SHM_DEST`): it goes at the last detach.
    pub fn is_marked_for_removal(&self) -> bool {
        self.mode & SHM_DEST != 0
    }

    /// Whether the segment is locked in memory (`SHM_LOCKED`).
    pub fn is_locked(&self) -> bool {
        self.mode & SHM_LOCKED != 0
    }

    fn from_raw(id: ShmId, ds: &libc::shmid_ds) -> ShmInfo {
        ShmInfo {
            key: Key::from_raw(ds.shm_perm.__key),
            id,
            mode: u32::from(ds.shm_perm.mode),
            uid: ds.shm_perm.uid,
            gid: ds.shm_perm.gid,
            cuid: ds.shm_perm.cuid,
            cgid: ds.shm_perm.cgid,
            size: ds.shm_segsz,
            atime: ds.shm_atime,
            dtime: ds.shm_dtime,
            ctime: ds.shm_ctime,
            cpid: ds.shm_cpid,
            lpid: ds.shm_lpid,
            nattch: ds.shm_nattch,
        }
    }
}

/// The information of the segment that `target` (a key or an id) names.
#[doc(alias = "IPC_STAT")]
pub fn shminfo(target: impl Into<Id>) -> Result<ShmInfo> {
    let mut info = ShmInfo::default();
    shminfo_into(target, &mut info)?;
    Ok(info)
}

/// Overwrites `info` with the information of the segment of `target`, as `shminfo!` in Julia.
pub fn shminfo_into(target: impl Into<Id>, info: &mut ShmInfo) -> Result<()> {
    let id = resolve(&target.into())?;
    *info = ShmInfo::from_raw(id, &stat(id)?);
    Ok(())
}

/// Sets the permission bits of the segment of `target` (a key or an id) and returns its id,
/// as `shmcfg` in Julia.
pub fn shmcfg(target: impl Into<Id>, perms: u32) -> Result<ShmId> {
    let id = resolve(&target.into())?;
    // IPC_STAT needs read permission, which the owner may have taken away from itself; the
    // table of /proc tells the owner to anyone, and IPC_SET itself needs only ownership.
    let (uid, gid) = match shminfo(id) {
        Ok(info) => (info.uid, info.gid),
        Err(Error::PermissionDenied { .. }) => {
            let info = crate::inventory::info(&Id::Shm(id))?;
            (info.uid, info.gid)
        }
        Err(error) => return Err(error),
    };
    shmctl(id, ShmCommand::Set { uid, gid, perms })?;
    Ok(id)
}

/// A command of [`shmctl`].
#[derive(Debug)]
#[non_exhaustive]
pub enum ShmCommand<'a> {
    /// `IPC_STAT`: read the segment's information into the `ShmInfo`.
    Stat(&'a mut ShmInfo),
    /// `IPC_SET`: set the owner and the 9 permission bits.
    Set {
        /// The new owner.
        uid: u32,
        /// The new group.
        gid: u32,
        /// The new permission bits.
        perms: u32,
    },
    /// `IPC_RMID`: mark for removal; the segment goes at the last detach.
    Remove,
    /// `SHM_LOCK`: keep the segment's pages in memory.
    Lock,
    /// `SHM_UNLOCK`: let them be swapped again.
    Unlock,
}

/// Performs `command` on segment `id`, as `shmctl(2)`.
pub fn shmctl(id: ShmId, command: ShmCommand<'_>) -> Result<()> {
    match command {
        ShmCommand::Stat(info) => {
            *info = ShmInfo::from_raw(id, &stat(id)?);
            Ok(())
        }
        ShmCommand::Set { uid, gid, perms } => {
            // IPC_SET reads only these three fields: no IPC_STAT (and its read permission) first.
            let mut ds = zeroed_ds();
            ds.shm_perm.uid = uid;
            ds.shm_perm.gid = gid;
            // Only the low 9 bits are settable; the kernel keeps SHM_DEST and SHM_LOCKED.
            ds.shm_perm.mode = (perms & 0o777).try_into().unwrap_or(0);
            control(id, libc::IPC_SET, &mut ds, "shmctl(IPC_SET)")
        }
        ShmCommand::Remove => control(id, libc::IPC_RMID, &mut zeroed_ds(), "shmctl(IPC_RMID)"),
        ShmCommand::Lock => control(id, libc::SHM_LOCK, &mut zeroed_ds(), "shmctl(SHM_LOCK)"),
        ShmCommand::Unlock => control(id, libc::SHM_UNLOCK, &mut zeroed_ds(), "shmctl(SHM_UNLOCK)"),
    }
}

/// Marks the segment of `target` for removal; one already gone is not an error.
pub(crate) fn remove(target: &Id) -> Result<()> {
    let id = match resolve(target) {
        Err(Error::NotFound { .. }) => return Ok(()),
        other => other?,
    };
    match shmctl(id, ShmCommand::Remove) {
        Err(Error::NotFound { .. }) => Ok(()),
        other => other,
    }
}

fn zeroed_ds() -> libc::shmid_ds {
    // SAFETY: shmid_ds is a C struct of integers, for which all zeros is a valid value.
    unsafe { std::mem::zeroed() }
}

/// `IPC_STAT` of segment `id`.
fn stat(id: ShmId) -> Result<libc::shmid_ds> {
    let mut ds = zeroed_ds();
    control(id, libc::IPC_STAT, &mut ds, "shmctl(IPC_STAT)")?;
    Ok(ds)
}

fn control(id: ShmId, command: i32, ds: &mut libc::shmid_ds, operation: &'static str) -> Result<()> {
    // SAFETY: `ds` is a valid, exclusively borrowed shmid_ds that the kernel reads or fills.
    if unsafe { libc::shmctl(id.as_raw(), command, ds) } == 0 {
        return Ok(());
    }
    Err(match last_errno() {
        Errno::INVAL | Errno::IDRM => Error::NotFound { object: id.to_string(), hint: Some("no segment has this id") },
        // Only SHM_LOCK meets the lock limit; any other ENOMEM is memory.
        Errno::NOMEM if command == libc::SHM_LOCK => Error::LimitExceeded {
            object: id.to_string(),
            limit: Limit::LockedMemory,
            detail: "locking a segment needs RLIMIT_MEMLOCK above its size, or CAP_IPC_LOCK".into(),
        },
        errno => Error::from_errno(&id, operation, errno),
    })
}
