//! POSIX named shared memory objects: files of the tmpfs at `/dev/shm`, as `shm_open(3)` makes
//! them (see `shm_overview(7)`).
//!
//! Objects made here are ordinary POSIX objects for every other client (glibc `shm_open`,
//! Python's `multiprocessing.shared_memory`). What ipcmem adds:
//!
//! - **Atomic publication.** An object is made nameless (`O_TMPFILE`), sized, given its mode,
//!   marked and filled, and only then linked under its name (`linkat`, which fails if the name
//!   exists, so creation stays exclusive). No process ever sees it half made.
//! - **Volatile objects.** Every handle that holds a volatile object (see
//!   [`crate::Holding`]) holds a shared `flock(2)` on its own open file description. The last
//!   holder to go finds no other (an exclusive lock succeeds) and removes the name.
//! - **The volatile mark is the sticky bit** (`S_ISVTX`, mode `01000`) of the object's file,
//!   meaningless on a regular file of tmpfs otherwise. Only the owner (or root) can set it, by
//!   `chmod`: a user who may write the object but not remove it cannot make it volatile, and so
//!   cannot get it deleted by another user's ipcmem ([`crate::gc`] included). Extended
//!   attributes could not serve: any writer may set a `user.` one. [`chmod`] keeps the bit.
//! - **Removal removes only our own object.** A name is removed by renaming it away, atomically,
//!   to a private name (`renameat2(RENAME_NOREPLACE)`), checking that the inode is ours, and
//!   only then unlinking the private name; another object found there is put back under its
//!   name. Checking the name and then unlinking it would delete an object renamed onto the name
//!   in between. (If the name was taken yet again meanwhile, the object put aside stays under
//!   its private name `/.ipcmem-rm.PID.N`, not deleted; `ipcmem list` shows it.)
//! - **No half-made object blocks a name.** A plain persistent object is made under its name at
//!   once (`shm_open(O_CREAT|O_EXCL)`, then `ftruncate`), with the set-user-ID bit (`04000`,
//!   and no execute bit) in its mode until it is sized; then `fchmod` gives it its exact mode.
//!   A creator killed in between leaves an object of size 0 with that bit, which only its owner
//!   could have set: [`crate::gc`] removes such an object once it is a second old and no
//!   process has it open. A complete object never has the bit, and a writer who truncates it to
//!   0 cannot set it.

use std::borrow::Cow;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rustix::fs::{self, AtFlags, FlockOperation, Mode, OFlags, RenameFlags, CWD};
use rustix::io::Errno;
use rustix::mm::{self, MapFlags, ProtFlags};

use crate::error::{Error, NameRule, Result};
use crate::huge::{self, Cause};
use crate::prefault::{self, Region, Store};

/// The directory of POSIX shared memory objects on Linux.
pub const SHM_DIR: &str = "/dev/shm";

/// The mode bit that marks a volatile object: the sticky bit, which only the owner can set.
pub(crate) const VOLATILE_MARK: u32 = 0o1000;

/// The longest file name: `NAME_MAX`.
const NAME_MAX: usize = 255;

/// Checks `name` against the rules of `shm_overview(7)`: `/` followed by 1 to 255 bytes, none of
/// them `/` or NUL.
///
/// ```
/// use ipcmem::{posix::check_name, Error, NameRule};
/// assert!(check_name("/frames").is_ok());
/// assert!(matches!(check_name("/a/b"), Err(Error::InvalidName { rule: NameRule::InnerSlash, .. })));
/// ```
pub fn check_name(name: &str) -> Result<()> {
    let rule = if name.is_empty() {
        Some(NameRule::Empty)
    } else if !name.starts_with('/') {
        Some(NameRule::LeadingSlash)
    } else if name.len() == 1 {
        Some(NameRule::NothingAfterSlash)
    } else if name.contains('\0') {
        Some(NameRule::Nul)
    } else if name[1..].contains('/') {
        Some(NameRule::InnerSlash)
    } else if name.len() - 1 > NAME_MAX {
        Some(NameRule::TooLong)
    } else if name == "/." || name == "/.." {
        Some(NameRule::Dots)
    } else {
        None
    };
    match rule {
        Some(rule) => Err(Error::InvalidName { name: name.to_owned(), rule }),
        None => Ok(()),
    }
}

/// The path of object `name` in `/dev/shm`.
pub(crate) fn path_of(name: &str) -> String {
    format!("{SHM_DIR}{name}")
}

/// Unlinks the object `name`, as `shm_unlink(3)`. One that does not exist is not an error.
///
/// Processes that have it mapped keep using it; the memory is freed when the last one unmaps.
#[doc(alias = "shm_unlink")]
pub fn unlink(name: &str) -> Result<()> {
    check_name(name)?;
    match fs::unlinkat(CWD, path_of(name), AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(errno) => Err(Error::from_errno(&name, "unlink", errno)),
    }
}

/// Sets the 9 permission bits of object `name`, as `chmod(2)`; only its owner (or root) may.
/// The volatile mark (the sticky bit) is kept.
///
/// Handles that are open keep the access they were opened with. The name is opened with
/// `O_PATH | O_NOFOLLOW` and changed through that descriptor, so that a symbolic link planted
/// in the world-writable `/dev/shm` cannot redirect the change to another file, and no read or
/// write permission on the object is needed.
///
/// ```
/// let name = format!("/ipcmem-doc-chmod-{}", std::process::id());
/// let shm = ipcmem::SharedMemory::create(name.as_str(), 64)?;
/// ipcmem::posix::chmod(&name, 0o640)?;
/// # Ok::<(), ipcmem::Error>(())
/// ```
#[doc(alias = "fchmod")]
pub fn chmod(name: &str, perms: u32) -> Result<()> {
    check_name(name)?;
    if perms & !0o777 != 0 {
        return Err(Error::InvalidArgument {
            object: name.to_owned(),
            reason: format!("permissions {perms:#o} have bits outside 0o777"),
        });
    }
    let fd = fs::openat(CWD, path_of(name), OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
        .map_err(|errno| Error::from_errno(&name, "open", errno))?;
    let stat = fs::fstat(&fd).map_err(|errno| Error::from_errno(&name, "fstat", errno))?;
    if fs::FileType::from_raw_mode(stat.st_mode) != fs::FileType::RegularFile {
        return Err(Error::InvalidArgument {
            object: name.to_owned(),
            reason: "not a regular file in /dev/shm".into(),
        });
    }
    // A volatile object stays volatile: its mark, the sticky bit, is kept.
    let mode = perms | (stat.st_mode & VOLATILE_MARK);
    // fchmod refuses an O_PATH descriptor; its /proc/self/fd link names the very inode opened.
    let through_proc = format!("/proc/self/fd/{}", fd.as_raw_fd());
    fs::chmodat(CWD, through_proc.as_str(), Mode::from_raw_mode(mode), AtFlags::empty()).map_err(|errno| match errno {
        Errno::PERM | Errno::ACCESS => {
            Error::PermissionDenied { object: name.to_owned(), access: "chmod (owner only)" }
        }
        errno => Error::from_errno(&name, "chmod", errno),
    })
}

/// Unlinks the object `name` that was made with huge pages: the file of that name in the
/// `hugetlbfs` mount (see [`crate::ShmOptions::huge_pages`]). One that does not exist is not
/// an error.
pub fn unlink_huge(name: &str) -> Result<()> {
    check_name(name)?;
    let dir = directory(name, true)?;
    match fs::unlinkat(CWD, format!("{dir}{name}"), AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(errno) => Err(Error::from_errno(&name, "unlink", errno)),
    }
}

/// The directory of POSIX objects: `/dev/shm`, or with `huge_pages` the first hugetlbfs mount.
fn directory(name: &str, huge_pages: bool) -> Result<Cow<'static, str>> {
    if !huge_pages {
        return Ok(Cow::Borrowed(SHM_DIR));
    }
    huge::mount_dir().map(Cow::Owned).ok_or_else(|| huge::unavailable(&name, 0, Cause::NoMount))
}

/// How a new object is made.
#[allow(clippy::struct_excessive_bools)] // independent switches of `ShmOptions`
pub(crate) struct CreateSpec<'a> {
    pub name: &'a str,
    pub len: usize,
    pub perms: u32,
    pub volatile: bool,
    pub reserve: bool,
    /// In the hugetlbfs mount rather than `/dev/shm`.
    pub huge_pages: bool,
    /// Populated before `create_unpublished` returns (see [`crate::prefault`]).
    pub prefault: bool,
    /// A persistent object that nothing fills before publication may be made under its name
    /// at once (see `Object::create_direct`).
    pub direct: bool,
}

/// How an existing object is opened.
#[allow(clippy::struct_excessive_bools)] // independent switches of `ShmOptions`
pub(crate) struct OpenSpec<'a> {
    pub name: &'a str,
    pub readonly: bool,
    /// Looked up in the hugetlbfs mount rather than `/dev/shm`.
    pub huge_pages: bool,
    /// Populated before `open` returns.
    pub prefault: bool,
    /// Holds a volatile object (its shared lock), rather than only looking at it.
    pub hold: bool,
    /// How long to wait for the shared lock while another process holds the exclusive one.
    pub lock_wait: Duration,
}

/// An open POSIX object, mapped, with its volatile lock if it has one.
pub(crate) struct Object {
    /// The object's file: its directory, then its name (which starts with `/`).
    path: String,
    /// Where the name starts in `path`.
    dir_len: usize,
    mapping: Mapping,
    /// The inode, to tell our object from one made later under the same name; read from `fd`
    /// when first needed, for an object made under its name (see `create_direct`).
    identity: OnceLock<Identity>,
    /// The descriptor: it holds the shared lock of a volatile object. A persistent object made
    /// nameless closes it once named; one made under its name keeps it until dropped, for its
    /// identity (see `create_direct`); an opened persistent object, or a look, has none.
    fd: Option<OwnedFd>,
    volatile: bool,
    /// The process that made or opened the handle: only it may give up the hold (see `Drop`).
    pid: u32,
    /// Whether the object has its name.
    published: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Identity {
    dev: u64,
    ino: u64,
}

impl Identity {
    pub(crate) fn of(stat: &fs::Stat) -> Identity {
        Identity { dev: stat.st_dev, ino: stat.st_ino }
    }

    /// Whether the file `path` is still this inode.
    fn is_named<P: rustix::path::Arg>(self, path: P) -> bool {
        fs::statat(CWD, path, AtFlags::SYMLINK_NOFOLLOW).is_ok_and(|stat| Identity::of(&stat) == self)
    }
}

impl Object {
    /// Makes a new object that has no name yet: sized, with its mode, marked and locked if
    /// volatile, and mapped read-write. [`publish`](Self::publish) gives it its name; dropped
    /// before that, it vanishes without a trace.
    ///
    /// With `spec.direct`, the object gets its name at once instead (see [`create_direct`]), and
    /// `publish` has nothing left to do.
    pub(crate) fn create_unpublished(spec: &CreateSpec<'_>) -> Result<Object> {
        let name = spec.name;
        check_name(name)?;
        let size = object_size(name, spec.len)?;
        let mode = Mode::from_raw_mode(spec.perms | 0o600 | if spec.volatile { VOLATILE_MARK } else { 0 });
        let dir = directory(name, spec.huge_pages)?;
        let path = format!("{dir}{name}");
        // Not with `reserve`: allocating every page takes long (seconds for gigabytes), and the
        // name must not stand at size 0 meanwhile.
        if spec.direct && !spec.volatile && !spec.huge_pages && !spec.reserve {
            return Object::create_direct(spec, path, dir.len(), size, mode);
        }
        let fd = fs::openat(CWD, &*dir, OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC, mode).map_err(|errno| {
            let operation =
                if spec.huge_pages { "open(O_TMPFILE) in the hugetlbfs mount" } else { "open(O_TMPFILE) in /dev/shm" };
            Error::from_errno(&name, operation, errno)
        })?;
        let (identity, mapping) = prepare(spec, &fd, size, mode)?;
        Ok(Object {
            path,
            dir_len: dir.len(),
            mapping,
            identity: OnceLock::from(identity),
            fd: Some(fd),
            volatile: spec.volatile,
            pid: std::process::id(),
            published: false,
        })
    }

    /// Makes a persistent object under its name at once, as `shm_open(O_CREAT | O_EXCL)` and
    /// `ftruncate` do: one directory operation where atomic publication takes two (`O_TMPFILE`,
    /// then `linkat`). For the few microseconds until it is sized, the object is visible with
    /// size 0 and the set-user-ID bit, the mark of an unfinished creation; openers wait for the
    /// size (see [`wait_for_size`]). Once sized, `fchmod` gives the exact mode (whatever the
    /// umask), which clears the mark. If making it fails half way, the name is removed again.
    ///
    /// As cheap as `shm_open` + `ftruncate`: no `fstat` (the identity is read from the
    /// descriptor, kept until the handle is dropped, only if [`remove`](Self::remove) needs it),
    /// and the `fchmod` that clears the mark also makes the mode exact.
    fn create_direct(spec: &CreateSpec<'_>, path: String, dir_len: usize, size: u64, mode: Mode) -> Result<Object> {
        let name = spec.name;
        let flags = OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        // Named before it is sized: the set-user-ID bit marks it unfinished until `ftruncate`
        // clears it (see the module's docs); no execute bit meanwhile.
        let unfinished = Mode::from_raw_mode((mode.as_raw_mode() & !0o111) | UNFINISHED_MARK);
        let fd = fs::openat(CWD, path.as_str(), flags, unfinished)
            .map_err(|errno| Error::from_errno(&name, "open", errno))?;
        match prepare_named(spec, &fd, size, mode) {
            Ok(mapping) => Ok(Object {
                path,
                dir_len,
                mapping,
                identity: OnceLock::new(),
                fd: Some(fd),
                volatile: false,
                pid: std::process::id(),
                published: true,
            }),
            Err(error) => {
                if let Ok(stat) = fs::fstat(&fd) {
                    let _ = unlink_if_ours(Path::new(&path), Identity::of(&stat));
                }
                Err(error)
            }
        }
    }

    /// Links the object made by [`create_unpublished`](Self::create_unpublished) under its
    /// name; fails with `AlreadyExists` if the name is taken. A persistent object's descriptor
    /// is closed here: only a volatile one needs it, for its lock.
    pub(crate) fn publish(&mut self) -> Result<()> {
        let Some(fd) = self.fd.as_ref().filter(|_| !self.published) else { return Ok(()) };
        link(self.name(), &self.path, fd)?;
        self.published = true;
        if !self.volatile {
            self.fd = None;
        }
        Ok(())
    }

    /// Opens and maps the existing object `spec.name`.
    pub(crate) fn open(spec: &OpenSpec<'_>) -> Result<Object> {
        let (name, readonly) = (spec.name, spec.readonly);
        check_name(name)?;
        let (access, flags) = if readonly { ("read", OFlags::RDONLY) } else { ("read-write", OFlags::RDWR) };
        let dir = directory(name, spec.huge_pages)?;
        let path = format!("{dir}{name}");
        let fd = fs::openat(
            CWD,
            path.as_str(),
            flags | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        )
        .map_err(|errno| match errno {
            Errno::ACCESS | Errno::PERM => Error::PermissionDenied { object: name.to_owned(), access },
            errno => Error::from_errno(&name, "open", errno),
        })?;
        let stat = fs::fstat(&fd).map_err(|errno| Error::from_errno(&name, "fstat", errno))?;
        let stat = wait_for_size(name, &path, &fd, stat)?;
        let len = mappable_len(name, &stat)?;
        let identity = Identity::of(&stat);
        let volatile = is_marked_volatile(&stat);
        if volatile && spec.hold {
            lock_shared(name, &fd, spec.lock_wait)?;
            // The last holder may have unlinked the name between our open and our lock.
            if !identity.is_named(&path) {
                return Err(Error::NotFound {
                    object: name.to_owned(),
                    hint: Some("a volatile object: its last user closed it while this process was opening it"),
                });
            }
        }
        let mapping = Mapping::new(name, &fd, len, len, readonly, spec.huge_pages)?;
        if spec.prefault {
            mapping.populate(name, !readonly, spec.huge_pages, fd.as_fd())?;
        }
        // A look keeps no descriptor: it holds no lock, and its drop removes nothing.
        let fd = (volatile && spec.hold).then_some(fd);
        Ok(Object {
            path,
            dir_len: dir.len(),
            mapping,
            identity: OnceLock::from(identity),
            fd,
            volatile,
            pid: std::process::id(),
            published: true,
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.path[self.dir_len..]
    }

    #[inline]
    pub(crate) fn ptr(&self) -> NonNull<u8> {
        self.mapping.ptr
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.mapping.len
    }

    pub(crate) fn is_volatile(&self) -> bool {
        self.volatile
    }

    /// The object's size now, as its file says: through the descriptor if we keep one, else
    /// through the name if it still names this object; `None` if neither can tell.
    pub(crate) fn current_size(&self) -> Option<u64> {
        let stat = match &self.fd {
            Some(fd) => fs::fstat(fd).ok()?,
            None => Some(fs::statat(CWD, self.path.as_str(), AtFlags::SYMLINK_NOFOLLOW).ok()?)
                .filter(|stat| self.identity().is_ok_and(|identity| Identity::of(stat) == identity))?,
        };
        u64::try_from(stat.st_size).ok()
    }

    /// The directory the object lives in (`/dev/shm`, or a hugetlbfs mount).
    pub(crate) fn directory(&self) -> &str {
        &self.path[..self.dir_len]
    }

    /// The free and total bytes of the object's file system (`fstatvfs`, or `statvfs` of its
    /// directory).
    #[doc(alias = "fstatvfs")]
    pub(crate) fn free_space(&self) -> Option<(u64, u64)> {
        let vfs = match &self.fd {
            Some(fd) => fs::fstatvfs(fd).ok()?,
            None => fs::statvfs(self.directory()).ok()?,
        };
        Some((vfs.f_bavail * vfs.f_frsize, vfs.f_blocks * vfs.f_frsize))
    }

    /// Whether the name still names this object (not gone, not one made later under it).
    pub(crate) fn is_still_named(&self) -> bool {
        self.identity().is_ok_and(|identity| identity.is_named(self.path.as_str()))
    }

    /// Removes the name if it still names this object (not one made later under that name, or
    /// renamed onto it): see [`unlink_if_ours`].
    pub(crate) fn remove(&self) -> Result<()> {
        unlink_if_ours(Path::new(&self.path), self.identity()?)
            .map(drop)
            .map_err(|errno| Error::from_errno(&self.name(), "unlink", errno))
    }

    /// The object's inode.
    fn identity(&self) -> Result<Identity> {
        if let Some(identity) = self.identity.get() {
            return Ok(*identity);
        }
        let fd = self.fd.as_ref().ok_or_else(|| Error::from_errno(&self.name(), "fstat", Errno::BADF))?;
        let stat = fs::fstat(fd).map_err(|errno| Error::from_errno(&self.name(), "fstat", errno))?;
        Ok(*self.identity.get_or_init(|| Identity::of(&stat)))
    }
}

impl Drop for Object {
    /// Unmaps; for a volatile object, unlinks it if no other handle holds it.
    ///
    /// A child made by `fork` inherits the handle, and with it the very open file description
    /// that carries the parent's lock: converting that lock would take the parent's hold away.
    /// So a handle dropped in another process than the one that made it only closes and unmaps.
    fn drop(&mut self) {
        let Some(fd) = self.fd.take().filter(|_| self.volatile) else { return };
        if std::process::id() != self.pid {
            return;
        }
        // Drop our shared lock, then ask for the exclusive one without waiting: it is granted
        // only if no other handle, in any process, still holds the object. Of several last
        // holders dropping at once at least one gets it, as each gives up its own lock first.
        // A conversion is that very sequence in one call: flock(2) removes the existing lock
        // first, then tries the new one (and leaves none if it fails, which is fine here).
        if fs::flock(&fd, FlockOperation::NonBlockingLockExclusive).is_ok() {
            if let Some(identity) = self.identity.get() {
                let _ = unlink_if_ours(Path::new(&self.path), *identity);
            }
        }
    }
}

/// The mode bit that marks a persistent object as unfinished until it is sized: set-user-ID.
pub(crate) const UNFINISHED_MARK: u32 = 0o4000;

/// How old an unfinished object must be before [`crate::gc`] takes it for garbage: its name
/// appears a moment before its creator's descriptor does (in `/proc/PID/fd`).
pub(crate) const UNFINISHED_GRACE: Duration = Duration::from_secs(1);

/// Whether an object with this `stat` is an unfinished creation whose creator died: size 0,
/// the set-user-ID bit that only its owner could set and that sizing clears, and older than
/// [`UNFINISHED_GRACE`]. (Whether some process still uses it is [`crate::gc`]'s question.)
pub(crate) fn is_unfinished(stat: &fs::Stat) -> bool {
    let regular = fs::FileType::from_raw_mode(stat.st_mode) == fs::FileType::RegularFile;
    let changed = std::time::UNIX_EPOCH
        + Duration::new(u64::try_from(stat.st_ctime).unwrap_or(0), u32::try_from(stat.st_ctime_nsec).unwrap_or(0));
    let old_enough = std::time::SystemTime::now().duration_since(changed).is_ok_and(|age| age >= UNFINISHED_GRACE);
    regular && stat.st_size == 0 && stat.st_mode & UNFINISHED_MARK != 0 && old_enough
}

/// Counts the private names of [`unlink_if_ours`] in this process.
static PRIVATE_NAMES: AtomicU64 = AtomicU64::new(0);

/// Removes the name at `path` if, and only if, it names the inode `identity`; says whether it
/// did.
///
/// Checking the name, then unlinking it, would delete an object that another process renamed
/// onto the name in between. So the name is first renamed away, atomically, to a private name
/// of this process in the same directory (`renameat2(RENAME_NOREPLACE)`), where nobody else
/// can replace it: the inode found there is what the name held at that instant. Ours, it is
/// unlinked; another, it is renamed back (`RENAME_NOREPLACE` again, so as to replace nothing).
/// Should the name have been taken once more in that instant, the object put aside stays under
/// its private name, `.ipcmem-rm.PID.N`: not deleted, and visible in listings (a volatile one
/// is collected by gc once its holders are gone). A first look by name (`fstatat`) leaves an
/// object that is plainly not ours untouched: only an object renamed onto the name between
/// that look and the rename is ever moved.
pub(crate) fn unlink_if_ours(path: &Path, identity: Identity) -> rustix::io::Result<bool> {
    // Most often the name holds another object because ours was removed and the name reused:
    // that one is left where it is, not even renamed for a moment.
    if !identity.is_named(path) {
        return Ok(false);
    }
    let dir = path.parent().unwrap_or(Path::new(SHM_DIR));
    let mut tries = 0;
    let private = loop {
        let counter = PRIVATE_NAMES.fetch_add(1, Ordering::Relaxed);
        let private = dir.join(format!(".ipcmem-rm.{}.{counter}", std::process::id()));
        match fs::renameat_with(CWD, path, CWD, &private, RenameFlags::NOREPLACE) {
            Ok(()) => break private,
            // A stale private name of a process that had our pid (or one planted by someone
            // else): take the next one, a bounded number of times.
            Err(Errno::EXIST) if tries < 64 => tries += 1,
            Err(Errno::NOENT) => return Ok(false),
            Err(errno) => return Err(errno),
        }
    };
    let ours = fs::statat(CWD, &private, AtFlags::SYMLINK_NOFOLLOW).is_ok_and(|stat| Identity::of(&stat) == identity);
    if ours {
        fs::unlinkat(CWD, &private, AtFlags::empty())?;
        return Ok(true);
    }
    let _ = fs::renameat_with(CWD, &private, CWD, path, RenameFlags::NOREPLACE);
    Ok(false)
}

/// Readies a new object open at `fd`: its size (space checked or reserved), its exact mode, its
/// volatile mark and lock, its mapping, prefaulted if asked. Gives its identity and mapping.
fn prepare(spec: &CreateSpec<'_>, fd: &OwnedFd, size: u64, mode: Mode) -> Result<(Identity, Mapping)> {
    let name = spec.name;
    // One fstat gives the identity and the mode the umask left.
    let stat = fs::fstat(fd).map_err(|errno| Error::from_errno(&name, "fstat", errno))?;
    let map_len = if spec.huge_pages {
        give_huge_space(name, fd, size, spec.reserve)?
    } else {
        give_space(name, fd, size, spec.reserve)?;
        spec.len
    };
    if stat.st_mode & 0o7777 != mode.as_raw_mode() {
        // fchmod is not filtered by the umask: the object gets exactly the mode asked for.
        fs::fchmod(fd, mode).map_err(|errno| Error::from_errno(&name, "fchmod", errno))?;
    }
    if spec.volatile {
        // A new file of our own: nobody else can hold an exclusive lock on it yet.
        fs::flock(fd, FlockOperation::LockShared).map_err(|errno| Error::from_errno(&name, "flock", errno))?;
    }
    let mapping = Mapping::new(name, fd, spec.len, map_len, false, spec.huge_pages)?;
    if spec.prefault {
        mapping.populate(name, true, spec.huge_pages, fd.as_fd())?;
    }
    Ok((Identity::of(&stat), mapping))
}

/// Readies a persistent object made under its name with the mark of an unfinished creation
/// (see `Object::create_direct`): its size, then its exact mode, which clears the mark; its
/// mapping, prefaulted if asked.
fn prepare_named(spec: &CreateSpec<'_>, fd: &OwnedFd, size: u64, mode: Mode) -> Result<Mapping> {
    let name = spec.name;
    give_space(name, fd, size, spec.reserve)?;
    // Not filtered by the umask; and the set-user-ID bit goes only now that the size is there.
    fs::fchmod(fd, mode).map_err(|errno| Error::from_errno(&name, "fchmod", errno))?;
    let mapping = Mapping::new(name, fd, spec.len, spec.len, false, false)?;
    if spec.prefault {
        mapping.populate(name, true, false, fd.as_fd())?;
    }
    Ok(mapping)
}

/// How long an opener waits, by default, for the shared lock of a volatile object while another
/// process holds the exclusive one.
pub const LOCK_WAIT: Duration = Duration::from_secs(1);

/// Takes the shared lock that holds the volatile object open at `fd`, waiting at most `wait`
/// while another process holds the exclusive one.
///
/// ipcmem holds the exclusive lock only for the moment of a removal (the last holder's drop,
/// `gc`), microseconds; anyone with read permission could hold it for ever (`flock -x`), and a
/// blocking `flock` would then hang the opener, deaf to signals that have no handler. So the
/// lock is asked for without blocking, again after pauses that grow to 10 ms, until the bound.
fn lock_shared(name: &str, fd: &OwnedFd, wait: Duration) -> Result<()> {
    let deadline = Instant::now() + wait;
    let mut pause = Duration::from_micros(20);
    loop {
        match fs::flock(fd, FlockOperation::NonBlockingLockShared) {
            Ok(()) => return Ok(()),
            Err(Errno::WOULDBLOCK) if Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(10));
            }
            Err(Errno::WOULDBLOCK) => return Err(Error::Locked { object: name.to_owned(), waited: wait }),
            Err(Errno::INTR) => {}
            Err(errno) => return Err(Error::from_errno(&name, "flock", errno)),
        }
    }
}

/// How long an opener waits for an object that exists but has size 0 to get its size.
const SIZE_WAIT: Duration = Duration::from_millis(200);

/// The `stat` of the object open at `fd`, once it has a size: an object made by
/// `shm_open(O_CREAT)` (by ipcmem's direct creation, glibc or Python) is visible with size 0
/// until its creator sizes it, a matter of microseconds. Waits up to [`SIZE_WAIT`]; an object
/// whose name went away meanwhile (its creator failed and removed it) is not found.
fn wait_for_size(name: &str, path: &str, fd: &OwnedFd, stat: fs::Stat) -> Result<fs::Stat> {
    let deadline = Instant::now() + SIZE_WAIT;
    let mut stat = stat;
    while stat.st_size == 0 && Instant::now() < deadline {
        if !Identity::of(&stat).is_named(path) {
            return Err(Error::NotFound {
                object: name.to_owned(),
                hint: Some("removed while this process was opening it"),
            });
        }
        std::thread::sleep(Duration::from_micros(50));
        stat = fs::fstat(fd).map_err(|errno| Error::from_errno(&name, "fstat", errno))?;
    }
    Ok(stat)
}

/// The size of an object of `len` bytes, checked: not zero, and within `off_t`.
fn object_size(name: &str, len: usize) -> Result<u64> {
    let invalid = |reason| Error::InvalidSize { object: name.to_owned(), size: len as u64, reason };
    if len == 0 {
        return Err(invalid("a shared memory object needs at least one byte"));
    }
    let size = u64::try_from(len).map_err(|_| invalid("larger than a file can be"))?;
    if i64::try_from(size).is_err() || len > isize::MAX as usize {
        return Err(invalid("larger than a file or an address space can be"));
    }
    Ok(size)
}

/// The length to map for an existing object: its size, which must be at least one byte.
fn mappable_len(name: &str, stat: &fs::Stat) -> Result<usize> {
    if fs::FileType::from_raw_mode(stat.st_mode) != fs::FileType::RegularFile {
        return Err(Error::InvalidArgument {
            object: name.to_owned(),
            reason: "not a regular file in /dev/shm".into(),
        });
    }
    let size = u64::try_from(stat.st_size).unwrap_or(0);
    if size == 0 {
        return Err(Error::InvalidSize {
            object: name.to_owned(),
            size,
            reason: "the object is empty (its creator has not sized it yet, or never did)",
        });
    }
    usize::try_from(size).map_err(|_| Error::InvalidSize {
        object: name.to_owned(),
        size,
        reason: "larger than the address space",
    })
}

/// Sizes the object, refusing a size past the free space of `/dev/shm`; with `reserve`, also
/// allocates every page now, so that no later write can fail for want of space.
fn give_space(name: &str, fd: &OwnedFd, size: u64, reserve: bool) -> Result<()> {
    let no_space =
        |detail: String| Error::LimitExceeded { object: name.to_owned(), limit: crate::error::Limit::NoSpace, detail };
    let vfs = fs::fstatvfs(fd).map_err(|errno| Error::from_errno(&name, "fstatvfs", errno))?;
    let free = vfs.f_bavail.saturating_mul(vfs.f_frsize);
    if size > free {
        return Err(no_space(format!("{size} bytes asked, {free} bytes free")));
    }
    let result = if reserve {
        fs::fallocate(fd, fs::FallocateFlags::empty(), 0, size).map_err(|errno| (errno, "fallocate"))
    } else {
        fs::ftruncate(fd, size).map_err(|errno| (errno, "ftruncate"))
    };
    result.map_err(|(errno, operation)| match errno {
        Errno::NOSPC => no_space(format!("{size} bytes asked, {free} bytes were free")),
        Errno::FBIG => {
            Error::InvalidSize { object: name.to_owned(), size, reason: "larger than /dev/shm allows a file to be" }
        }
        errno => Error::from_errno(&name, operation, errno),
    })
}

/// Sizes an object in a hugetlbfs, whose files are whole huge pages: the size is rounded up to
/// the huge page size of the mount. Returns the rounded size, the length to map. The kernel
/// reserves the huge pages when the object is mapped, and says `ENOMEM` there if too few are
/// free; with `reserve` they are allocated here already.
fn give_huge_space(name: &str, fd: &OwnedFd, size: u64, reserve: bool) -> Result<usize> {
    let vfs = fs::fstatvfs(fd).map_err(|errno| Error::from_errno(&name, "fstatvfs", errno))?;
    let huge_page = vfs.f_bsize.max(1);
    let invalid = |reason| Error::InvalidSize { object: name.to_owned(), size, reason };
    let rounded = size.checked_next_multiple_of(huge_page).ok_or_else(|| invalid("larger than a file can be"))?;
    let map_len = usize::try_from(rounded).map_err(|_| invalid("larger than the address space"))?;
    let result = if reserve {
        fs::fallocate(fd, fs::FallocateFlags::empty(), 0, rounded).map_err(|errno| (errno, "fallocate"))
    } else {
        fs::ftruncate(fd, rounded).map_err(|errno| (errno, "ftruncate"))
    };
    result.map_err(|(errno, operation)| match errno {
        Errno::NOSPC | Errno::NOMEM => huge::unavailable(&name, map_len, Cause::TooFew),
        errno => Error::from_errno(&name, operation, errno),
    })?;
    Ok(map_len)
}

/// Whether an object with this `stat` carries the volatile mark, the sticky bit.
pub(crate) fn is_marked_volatile(stat: &fs::Stat) -> bool {
    stat.st_mode & VOLATILE_MARK != 0
}

/// Set once linking a descriptor itself was refused, so that later links go through `/proc`
/// first and do not pay for the refusal each time.
static EMPTY_PATH_REFUSED: AtomicBool = AtomicBool::new(false);

/// Gives the nameless object at `fd` its name; fails with `AlreadyExists` if the name is taken.
///
/// Linking the descriptor itself (`AT_EMPTY_PATH`) is the cheaper way: no walk through
/// `/proc`. Before Linux 6.10 it needs `CAP_DAC_READ_SEARCH`, and the kernel says `ENOENT`
/// without it; then the `/proc/self/fd` link does the same. Either way round, the other way is
/// tried on `ENOENT`.
fn link(name: &str, target: &str, fd: &OwnedFd) -> Result<()> {
    let directly = || fs::linkat(fd, "", CWD, target, AtFlags::EMPTY_PATH);
    let through_proc = || {
        let proc_path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        fs::linkat(CWD, proc_path.as_str(), CWD, target, AtFlags::SYMLINK_FOLLOW)
    };
    let linked = if EMPTY_PATH_REFUSED.load(Ordering::Relaxed) {
        through_proc().or_else(|errno| if errno == Errno::NOENT { directly() } else { Err(errno) })
    } else {
        directly().or_else(|errno| {
            if errno != Errno::NOENT {
                return Err(errno);
            }
            let linked = through_proc();
            if linked.is_ok() {
                EMPTY_PATH_REFUSED.store(true, Ordering::Relaxed);
            }
            linked
        })
    };
    linked.map_err(|errno| Error::from_errno(&name, "link", errno))
}

/// A shared mapping of a POSIX object, unmapped on drop.
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    /// The object's length.
    len: usize,
    /// The length mapped: `len`, or for a hugetlbfs object its size in whole huge pages (the
    /// kernel refuses to unmap part of a huge page).
    map_len: usize,
}

impl Mapping {
    fn new(name: &str, fd: impl AsFd, len: usize, map_len: usize, readonly: bool, huge_pages: bool) -> Result<Mapping> {
        let prot = if readonly { ProtFlags::READ } else { ProtFlags::READ | ProtFlags::WRITE };
        // SAFETY: a new shared mapping at an address the kernel chooses: it overlaps no memory
        // Rust knows of. `map_len` is at least 1 (checked by the callers).
        let ptr =
            unsafe { mm::mmap(std::ptr::null_mut(), map_len, prot, MapFlags::SHARED, fd, 0) }.map_err(|errno| {
                match errno {
                    // Mapping a hugetlbfs file reserves its huge pages, and fails if too few are free.
                    Errno::NOMEM if huge_pages => huge::unavailable(&name, map_len, Cause::TooFew),
                    errno => Error::from_errno(&name, "mmap", errno),
                }
            })?;
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| Error::Os {
            object: name.to_owned(),
            operation: "mmap",
            errno: Errno::FAULT,
        })?;
        Ok(Mapping { ptr, len, map_len })
    }

    /// Brings every page of the mapping into memory (see [`crate::prefault`]).
    fn populate(&self, name: &str, writable: bool, huge_pages: bool, fd: impl AsFd) -> Result<()> {
        let store = if huge_pages { Store::HugeTlb } else { Store::Tmpfs };
        let region = Region { base: self.ptr, len: self.len, writable };
        prefault::populate(&name, region, store, Some(fd.as_fd()))
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr` and `map_len` are those of our own mapping, and no reference into it
        // outlives the handle that owns this `Mapping`.
        let _ = unsafe { mm::munmap(self.ptr.as_ptr().cast(), self.map_len) };
    }
}
