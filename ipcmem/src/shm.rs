//! [`SharedMemory`]: one handle for both kinds of shared memory, as `SharedMemory` of the Julia
//! package, with [`ShmOptions`] to choose how it is made or opened.

use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::access;
use crate::error::{Error, Result};
use crate::key::{Id, Key};
use crate::posix::{self, CreateSpec, OpenSpec};
use crate::prefault::{self, Region, Store};
use crate::sysv::{self, ShmFlags, IPC_CREAT, IPC_EXCL, SHM_HUGETLB};

/// A shared memory object mapped into this process: a POSIX object (`/name`) or a System V
/// segment (by key or id).
///
/// Dropping the handle unmaps (detaches) it; a *volatile* object is destroyed when its last
/// holding handle, in any process, is gone (a handle opened to look does not hold: see
/// [`Holding`]). Objects are volatile unless [`ShmOptions::volatile`] says otherwise, as in the
/// Julia package.
///
/// Memory that other processes may write at any time is never handed out as `&[u8]` by safe
/// code: copy in and out with [`read_at`](Self::read_at) and [`write_at`](Self::write_at), use
/// atomic words ([`atomic_u64s`](Self::atomic_u64s)), or take an `unsafe` slice view.
///
/// ```
/// use ipcmem::SharedMemory;
/// let name = format!("/ipcmem-doc-{}", std::process::id());
/// let shm = SharedMemory::create(name.as_str(), 4096)?; // volatile, mode 0o600
/// shm.write_at(0, b"hello")?;
///
/// let other = SharedMemory::open_readonly(name.as_str())?; // another process would do the same
/// let mut buf = [0; 5];
/// other.read_at(0, &mut buf)?;
/// assert_eq!(&buf, b"hello");
/// # Ok::<(), ipcmem::Error>(())
/// ```
pub struct SharedMemory {
    backing: Backing,
    /// The mapping's base and length, as the backing gives them (which never change), kept
    /// here so that the checks of `read_at`/`write_at` need no `match` on the backing: the
    /// fixed cost of a 64-byte copy is a few instructions.
    base: NonNull<u8>,
    len: usize,
    readonly: bool,
    /// The last word that `load_u32`/`load_u64` claimed, as its offset times 2, plus 1 for a
    /// 64-bit word (`usize::MAX`: none), so that polling one word claims it once, not at every
    /// load.
    last_loaded: AtomicUsize,
    /// The copy of `read_at` and `write_at`, ready (its fault handler installed) since the
    /// handle was made.
    copier: access::Copier,
}

enum Backing {
    Posix(posix::Object),
    SysV(sysv::Attachment),
}

// SAFETY: the handle owns its mapping, valid in the whole process; every safe access to the
// memory is an atomic (of one width per byte, see `access::claims`) or a copy of `access`,
// so using the handle from several threads races no more than several processes do.
unsafe impl Send for SharedMemory {}
// SAFETY: as above: `&SharedMemory` gives only atomic access or raw pointers.
unsafe impl Sync for SharedMemory {}

/// Whether [`ShmOptions::open_or_create`] made the object or found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// This call made the object.
    Created,
    /// The object existed; this call opened it.
    Opened,
}

/// How an object lives: destroyed when no longer used, or until removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// Destroyed when the last handle, in any process, is gone (or, for POSIX objects whose
    /// holders all crashed, by [`crate::gc`]).
    Volatile,
    /// Lives until removed ([`SharedMemory::remove`], [`crate::shmrm`]) or reboot.
    Persistent,
}

/// Whether a handle may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `PROT_READ | PROT_WRITE`; needs read and write permission.
    ReadWrite,
    /// `PROT_READ` or `SHM_RDONLY`; needs only read permission.
    ReadOnly,
}

/// Whether an opened handle holds a volatile object or only looks at it.
///
/// Every handle that **holds** a volatile POSIX object keeps it alive, and the last holder to
/// go (drop, exit, crash of the others) removes it. A handle that **looks** keeps nothing
/// alive and never removes anything: an object whose holders are all gone stays in place,
/// abandoned, for [`crate::gc`] to collect, whoever looked at it meanwhile.
///
/// Which to choose: a process that means to *use* the object (a producer, or a consumer that
/// reads frames from it, read-only or not) holds it, as in the Julia package: its drop may be
/// the one that removes the object. Tools and code that only inspect (a listing, a dump of the
/// bytes, `array::inspect`, the `ipcmem` commands `read`, `write`, `info`, `list` and
/// `array show`) look. A creator always holds what it makes. System V segments are unaffected:
/// the kernel counts attachments, and a look attaches as any handle does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Holding {
    /// Keep a volatile object alive while the handle lives; the last holder removes it.
    #[default]
    Hold,
    /// Only look: keep nothing alive, never remove.
    Look,
}

/// Options for making or opening a [`SharedMemory`], in the style of `std::fs::OpenOptions`.
///
/// ```
/// use ipcmem::{Outcome, SharedMemory};
/// let name = format!("/ipcmem-doc-options-{}", std::process::id());
/// let (shm, outcome) = SharedMemory::options().perms(0o640).open_or_create(name.as_str(), 1000)?;
/// assert_eq!(outcome, Outcome::Created);
/// assert_eq!(shm.len(), 1000);
/// # Ok::<(), ipcmem::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
#[allow(clippy::struct_excessive_bools)] // independent switches, as in `OpenOptions`
pub struct ShmOptions {
    perms: u32,
    persistence: Persistence,
    access: Access,
    reserve: bool,
    prefault: bool,
    huge_pages: bool,
    lock: bool,
    holding: Holding,
    lock_wait: Duration,
}

impl Default for ShmOptions {
    fn default() -> ShmOptions {
        ShmOptions {
            perms: 0o600,
            persistence: Persistence::Volatile,
            access: Access::ReadWrite,
            reserve: false,
            prefault: false,
            huge_pages: false,
            lock: false,
            holding: Holding::Hold,
            lock_wait: posix::LOCK_WAIT,
        }
    }
}

/// Whether a creation fills the object before others may see it (`create_with`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fill {
    None,
    BeforePublication,
}

/// How many times `open_or_create` tries again when the object vanishes between a failed
/// create and the open.
const OPEN_OR_CREATE_TRIES: usize = 64;

impl ShmOptions {
    /// The defaults: mode 0o600, volatile, read-write, no reservation, no prefault, normal
    /// pages, not locked.
    pub fn new() -> ShmOptions {
        ShmOptions::default()
    }

    /// The 9 permission bits of a new object (default 0o600), exact whatever the umask. The
    /// owner always keeps read and write.
    pub fn perms(mut self, perms: u32) -> ShmOptions {
        self.perms = perms;
        self
    }

    /// Whether a new object is destroyed when no longer in use (default `true`).
    pub fn volatile(mut self, volatile: bool) -> ShmOptions {
        self.persistence = if volatile { Persistence::Volatile } else { Persistence::Persistent };
        self
    }

    /// How a new object lives; the same as [`volatile`](Self::volatile), by name.
    pub fn persistence(mut self, persistence: Persistence) -> ShmOptions {
        self.persistence = persistence;
        self
    }

    /// Whether to open read-only (default `false`). Has no effect on creation.
    pub fn readonly(mut self, readonly: bool) -> ShmOptions {
        self.access = if readonly { Access::ReadOnly } else { Access::ReadWrite };
        self
    }

    /// Whether to allocate every page of a new POSIX object at creation (`fallocate`), so that
    /// no later write can fail for want of space in `/dev/shm` (default `false`: creation only
    /// checks that the space is free now, which is cheap). System V segments are charged in
    /// full at creation anyway.
    pub fn reserve(mut self, reserve: bool) -> ShmOptions {
        self.reserve = reserve;
        self
    }

    /// Whether every page is in memory, mapped into this process, when `create` or `open`
    /// returns (default `false`: pages come in on first use, one page fault each).
    ///
    /// Every page gets its memory: an object whose pages cannot all be allocated (a full
    /// `/dev/shm`, no huge page left) is an error here, not a `SIGBUS` later. The work is
    /// spread over the available cores for objects of 4 MiB and more (on 2 cores, a fresh
    /// 1 GiB object is ready in about half the time a first touch takes; see
    /// `BENCHMARKS.md`). Prefaulting writes nothing: opening an object in use by others with
    /// `prefault` leaves its content as it is.
    ///
    /// How: `madvise(MADV_POPULATE_READ)` in chunks, one scoped thread per core; below 4 MiB,
    /// on the calling thread alone. On these shared mappings a read fault allocates the page
    /// and maps it writable, and maps pages already in memory 16 at a time. Kernels before
    /// 5.14 have no `MADV_POPULATE_*`: there one byte a page is touched, with an atomic
    /// read-modify-write that adds zero (a load on a read-only handle), after `fallocate` gave
    /// a writable POSIX object its space.
    ///
    /// ```
    /// use ipcmem::SharedMemory;
    /// let name = format!("/ipcmem-doc-prefault-{}", std::process::id());
    /// let shm = SharedMemory::options().prefault(true).create(name.as_str(), 8 << 20)?;
    /// # Ok::<(), ipcmem::Error>(())
    /// ```
    pub fn prefault(mut self, prefault: bool) -> ShmOptions {
        self.prefault = prefault;
        self
    }

    /// Whether the object lives in huge pages (default `false`), from the pool the
    /// administrator reserves (`sysctl vm.nr_hugepages=N`); with none free, making the object
    /// fails with [`Limit::HugePages`](crate::Limit::HugePages), whose message says how to
    /// reserve them. ipcmem never changes the pool.
    ///
    /// - **System V**: `shmget(SHM_HUGETLB)`. The kernel rounds the memory up to whole huge
    ///   pages; [`SharedMemory::len`] stays the size asked for. Opening needs no option: a
    ///   segment is what it was made.
    /// - **POSIX**: the object `/name` is the file `<mount>/name` of the first `hugetlbfs`
    ///   mount in `/proc/self/mounts` (often `/dev/hugepages`), not of `/dev/shm`; without such
    ///   a mount, the error says so. Every process must open it with `huge_pages(true)` too,
    ///   and remove it with [`SharedMemory::remove`] or [`posix::unlink_huge`] ([`shmrm`] looks
    ///   in `/dev/shm` only). Its file is whole huge pages, so openers see that size as
    ///   [`SharedMemory::len`]. It is volatile as other objects are, but [`crate::gc`] does not
    ///   look for abandoned ones there.
    pub fn huge_pages(mut self, huge_pages: bool) -> ShmOptions {
        self.huge_pages = huge_pages;
        self
    }

    /// Whether the pages are locked in memory, never swapped out, while this handle lives
    /// (default `false`). Implies [`prefault`](Self::prefault).
    ///
    /// `mlock` of this handle's mapping, for both kinds: the lock belongs to the handle and ends
    /// when it is dropped. (System V's own `SHM_LOCK`, [`sysv::ShmCommand::Lock`], locks the
    /// segment for every process and outlives every detach until `SHM_UNLOCK`.) Locked memory
    /// counts against `RLIMIT_MEMLOCK` (`ulimit -l`) unless the process has `CAP_IPC_LOCK`;
    /// over it, [`Limit::LockedMemory`](crate::Limit::LockedMemory). Huge pages are never
    /// swapped: locking them changes nothing.
    pub fn lock(mut self, lock: bool) -> ShmOptions {
        self.lock = lock;
        self
    }

    /// Whether a handle that [`open`](Self::open) gives holds a volatile object or only looks at
    /// it (default [`Holding::Hold`]; see [`Holding`] for which to choose). Has no effect on
    /// creation: a creator holds what it makes.
    ///
    /// ```
    /// use ipcmem::{shm::Holding, SharedMemory};
    /// let name = format!("/ipcmem-doc-look-{}", std::process::id());
    /// let shm = SharedMemory::create(name.as_str(), 64)?;
    /// let look = SharedMemory::options().readonly(true).holding(Holding::Look).open(name.as_str())?;
    /// drop(shm); // the last holder: the object is removed, the look keeps its mapping
    /// assert!(SharedMemory::open(name.as_str()).is_err());
    /// # Ok::<(), ipcmem::Error>(())
    /// ```
    pub fn holding(mut self, holding: Holding) -> ShmOptions {
        self.holding = holding;
        self
    }

    /// How long [`open`](Self::open) of a volatile POSIX object waits for its shared lock while
    /// another process holds an exclusive `flock` on it (default [`posix::LOCK_WAIT`], 1 s);
    /// past it, [`Error::Locked`]. ipcmem takes the exclusive lock only for the moment of a
    /// removal: a longer one is another program's (`flock -x`), which must not hang the opener.
    pub fn lock_wait(mut self, wait: Duration) -> ShmOptions {
        self.lock_wait = wait;
        self
    }

    /// Makes a new object of `len` bytes; fails with [`Error::AlreadyExists`] if it exists.
    ///
    /// `id` is a POSIX name (`"/name"`), a [`Key`], or [`Key::PRIVATE`] for a new System V
    /// segment reachable only by its id.
    ///
    /// A volatile POSIX object appears under its name only once it is complete (sized, marked,
    /// locked), as does one made with [`reserve`](Self::reserve), whose allocation takes long. A
    /// plain persistent one is made as `shm_open(O_CREAT | O_EXCL)` and `ftruncate` make it,
    /// which saves a directory operation: for a few microseconds it has size 0, and openers wait
    /// for its size (see [`crate::posix`] for what happens if its creator dies then). To fill an
    /// object before anyone can see it, use [`create_with`](Self::create_with).
    pub fn create(&self, id: impl Into<Id>, len: usize) -> Result<SharedMemory> {
        self.create_filled(&id.into(), len, Fill::None, |_| ())
    }

    /// Makes a new object, fills it with `init`, then publishes it.
    ///
    /// For a POSIX object, `init` runs before the name appears: no other process can see the
    /// object unfilled. A System V segment is visible by key as soon as it exists, so `init`
    /// runs right after; share a "ready" flag if openers must wait for it.
    pub fn create_with(&self, id: impl Into<Id>, len: usize, init: impl FnOnce(&SharedMemory)) -> Result<SharedMemory> {
        self.create_filled(&id.into(), len, Fill::BeforePublication, init)
    }

    fn create_filled(&self, id: &Id, len: usize, fill: Fill, init: impl FnOnce(&SharedMemory)) -> Result<SharedMemory> {
        match id {
            Id::Name(name) => self.create_posix(name, len, fill, init),
            Id::Key(key) => self.create_sysv(*key, len, init),
            Id::Shm(_) => Err(Error::InvalidArgument {
                object: id.to_string(),
                reason: "a segment id names an existing segment: create by key, or with Key::PRIVATE".into(),
            }),
        }
    }

    /// Opens an existing object: a POSIX name, a [`Key`], or a [`ShmId`](crate::ShmId).
    pub fn open(&self, id: impl Into<Id>) -> Result<SharedMemory> {
        let readonly = self.access == Access::ReadOnly;
        let backing = match id.into() {
            Id::Name(name) => Backing::Posix(posix::Object::open(&OpenSpec {
                name: &name,
                readonly,
                huge_pages: self.huge_pages,
                prefault: self.prefault || self.lock,
                hold: self.holding == Holding::Hold,
                lock_wait: self.lock_wait,
            })?),
            Id::Key(key) => Backing::SysV(sysv::shmat(sysv::get_existing(key, 0)?, readonly)?),
            Id::Shm(id) => Backing::SysV(sysv::shmat(id, readonly)?),
        };
        let shm = SharedMemory::new(backing, readonly);
        self.make_ready(&shm)?;
        Ok(shm)
    }

    /// Prefaults a System V segment (a POSIX object is prefaulted by `posix`, which holds its
    /// descriptor) and locks either, as the options say. Nothing to do by default.
    fn make_ready(&self, shm: &SharedMemory) -> Result<()> {
        if !self.prefault && !self.lock {
            return Ok(());
        }
        if let Backing::SysV(_) = &shm.backing {
            // The store only words the error; a segment's huge pages are reserved when it is
            // made, so only creation can run out of them.
            let store = if self.huge_pages { Store::HugeTlb } else { Store::SysV };
            let region = Region { base: shm.base(), len: shm.len(), writable: !shm.readonly };
            prefault::populate(&shm.id(), region, store, None)?;
        }
        if self.lock {
            prefault::lock(&shm.id(), shm.base(), shm.len())?;
        }
        Ok(())
    }

    /// Opens the object if it exists, else makes it; says which. Of processes racing on one
    /// name or key, exactly one creates.
    ///
    /// An existing object smaller than `len` is an error; a larger one is opened as it is
    /// ([`SharedMemory::len`] tells). A volatile System V segment loses its key as soon as it
    /// is made, so `open_or_create` by key refuses [`volatile`](Self::volatile) `true`.
    pub fn open_or_create(&self, id: impl Into<Id>, len: usize) -> Result<(SharedMemory, Outcome)> {
        self.open_or_create_filled(&id.into(), len, Fill::None, |_| ())
    }

    /// [`open_or_create`](Self::open_or_create), filling a new object with `init` as
    /// [`create_with`](Self::create_with) does.
    pub fn open_or_create_with(
        &self,
        id: impl Into<Id>,
        len: usize,
        init: impl FnOnce(&SharedMemory),
    ) -> Result<(SharedMemory, Outcome)> {
        self.open_or_create_filled(&id.into(), len, Fill::BeforePublication, init)
    }

    fn open_or_create_filled(
        &self,
        id: &Id,
        len: usize,
        fill: Fill,
        init: impl FnOnce(&SharedMemory),
    ) -> Result<(SharedMemory, Outcome)> {
        if matches!(id, Id::Key(key) if !key.is_private()) && self.persistence == Persistence::Volatile {
            return Err(Error::InvalidArgument {
                object: id.to_string(),
                reason: "a volatile System V segment loses its key when marked for removal, so no other process could open it by key: \
                         use volatile(false), or share the segment by its id"
                    .into(),
            });
        }
        if self.reserve && matches!(id, Id::Name(_)) {
            // Allocating a reserved object takes long: open one that exists rather than
            // allocate another only to find the name taken.
            match self.open_at_least(id, len) {
                Err(Error::NotFound { .. }) => {}
                opened => return opened.map(|shm| (shm, Outcome::Opened)),
            }
        }
        let mut init = Some(init);
        let mut nameless = None;
        for _ in 0..OPEN_OR_CREATE_TRIES {
            let created = self.try_create(id, len, fill, &mut init, &mut nameless);
            match created {
                Ok(shm) => return Ok((shm, Outcome::Created)),
                Err(Error::AlreadyExists { .. }) => {}
                Err(error) => return Err(error),
            }
            match self.open_at_least(id, len) {
                Ok(shm) => return Ok((shm, Outcome::Opened)),
                // Removed between our create and our open: try again.
                Err(Error::NotFound { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        Err(Error::InvalidArgument {
            object: id.to_string(),
            reason: format!("created and removed by others {OPEN_OR_CREATE_TRIES} times while opening: giving up"),
        })
    }

    /// Opens the existing object `id`, which must have at least `len` bytes.
    fn open_at_least(&self, id: &Id, len: usize) -> Result<SharedMemory> {
        let shm = self.open(id.clone())?;
        if shm.len() < len {
            return Err(Error::InvalidSize {
                object: id.to_string(),
                size: len as u64,
                reason: "the existing object is smaller than the size asked for",
            });
        }
        Ok(shm)
    }

    fn check_perms(&self, id: &dyn fmt::Display) -> Result<u32> {
        if self.perms & !0o777 != 0 {
            return Err(Error::InvalidArgument {
                object: id.to_string(),
                reason: format!("permissions {:#o} have bits outside 0o777", self.perms),
            });
        }
        Ok(self.perms | 0o600)
    }

    /// One try of `open_or_create` at making the object. `init` runs at most once: a POSIX
    /// object is made and filled before its name is taken, so when the name turns out to be
    /// taken the filled object is kept in `nameless`, and a later try (after that name's object
    /// vanished) publishes it as it is rather than a new, unfilled one.
    fn try_create<F: FnOnce(&SharedMemory)>(
        &self,
        id: &Id,
        len: usize,
        fill: Fill,
        init: &mut Option<F>,
        nameless: &mut Option<SharedMemory>,
    ) -> Result<SharedMemory> {
        let init_once = |shm: &SharedMemory| {
            if let Some(init) = init.take() {
                init(shm);
            }
        };
        let Id::Name(name) = id else { return self.create_filled(id, len, fill, init_once) };
        let mut shm = match nameless.take() {
            Some(shm) => shm,
            None => self.build_posix(name, len, fill, init_once)?,
        };
        match shm.publish() {
            Ok(()) => Ok(shm),
            Err(error) => {
                *nameless = Some(shm);
                Err(error)
            }
        }
    }

    fn create_posix(
        &self,
        name: &str,
        len: usize,
        fill: Fill,
        init: impl FnOnce(&SharedMemory),
    ) -> Result<SharedMemory> {
        let mut shm = self.build_posix(name, len, fill, init)?;
        shm.publish()?;
        Ok(shm)
    }

    /// Makes a POSIX object without a name, filled by `init`; `publish` names it. A persistent
    /// object that nothing fills is named at once (`posix` says how), which saves a directory
    /// operation; a volatile one must have its mark and lock before anyone can see it.
    fn build_posix(
        &self,
        name: &str,
        len: usize,
        fill: Fill,
        init: impl FnOnce(&SharedMemory),
    ) -> Result<SharedMemory> {
        let spec = CreateSpec {
            name,
            len,
            perms: self.check_perms(&name)?,
            volatile: self.persistence == Persistence::Volatile,
            reserve: self.reserve,
            huge_pages: self.huge_pages,
            prefault: self.prefault || self.lock,
            direct: fill == Fill::None,
        };
        let shm = SharedMemory::new(Backing::Posix(posix::Object::create_unpublished(&spec)?), false);
        // Unpublished: on an error the object vanishes with `shm`.
        self.make_ready(&shm)?;
        init(&shm);
        Ok(shm)
    }

    fn create_sysv(&self, key: Key, len: usize, init: impl FnOnce(&SharedMemory)) -> Result<SharedMemory> {
        let perms = self.check_perms(&key)?;
        if len == 0 {
            return Err(Error::InvalidSize {
                object: key.to_string(),
                size: 0,
                reason: "a segment needs at least one byte",
            });
        }
        let huge = if self.huge_pages { SHM_HUGETLB } else { ShmFlags::default() };
        let volatile = self.persistence == Persistence::Volatile;
        // A volatile segment carries the mode of a creation under way until it is marked for
        // removal, so that gc can tell it if this process dies before (see `sysv`).
        let creating = if volatile { sysv::CREATING_MODE } else { perms };
        let id = sysv::shmget(key, len, IPC_CREAT | IPC_EXCL | ShmFlags::perms(creating) | huge)?;
        let shm = match sysv::attach(id, len, false) {
            Ok(attachment) => SharedMemory::new(Backing::SysV(attachment), false),
            Err(error) => {
                let _ = sysv::shmctl(id, sysv::ShmCommand::Remove);
                return Err(error);
            }
        };
        if let Err(error) = self.make_ready(&shm) {
            let _ = sysv::shmctl(id, sysv::ShmCommand::Remove);
            return Err(error);
        }
        if volatile {
            // From now on the kernel destroys the segment at the last detach, even after a crash.
            sysv::shmctl(id, sysv::ShmCommand::Remove)?;
            if perms != sysv::CREATING_MODE {
                let (uid, gid) = (rustix::process::geteuid().as_raw(), rustix::process::getegid().as_raw());
                sysv::shmctl(id, sysv::ShmCommand::Set { uid, gid, perms })?;
            }
        }
        init(&shm);
        Ok(shm)
    }
}

impl SharedMemory {
    fn new(backing: Backing, readonly: bool) -> SharedMemory {
        let (base, len) = match &backing {
            Backing::Posix(object) => (object.ptr(), object.len()),
            Backing::SysV(attachment) => {
                (NonNull::new(attachment.as_mut_ptr()).unwrap_or(NonNull::dangling()), attachment.len())
            }
        };
        SharedMemory {
            backing,
            base,
            len,
            readonly,
            last_loaded: AtomicUsize::new(usize::MAX),
            copier: access::Copier::new(),
        }
    }

    /// Makes a new volatile object of `len` bytes with mode 0o600, as
    /// `SharedMemory(id, len)` in Julia. See [`ShmOptions::create`].
    pub fn create(id: impl Into<Id>, len: usize) -> Result<SharedMemory> {
        ShmOptions::new().create(id, len)
    }

    /// Opens an existing object read-write, as `SharedMemory(id)` in Julia.
    pub fn open(id: impl Into<Id>) -> Result<SharedMemory> {
        ShmOptions::new().open(id)
    }

    /// Opens an existing object read-only, as `SharedMemory(id; readonly=true)` in Julia. The
    /// handle holds a volatile object (see [`Holding`]): use [`look`](Self::look) to inspect.
    pub fn open_readonly(id: impl Into<Id>) -> Result<SharedMemory> {
        ShmOptions::new().readonly(true).open(id)
    }

    /// Opens an existing object read-only to look at it ([`Holding::Look`]): the handle keeps
    /// a volatile object alive no more than a listing does, and never removes it.
    pub fn look(id: impl Into<Id>) -> Result<SharedMemory> {
        ShmOptions::new().readonly(true).holding(Holding::Look).open(id)
    }

    /// The options builder.
    pub fn options() -> ShmOptions {
        ShmOptions::new()
    }

    /// The object's identifier: its name, or its System V segment id, as `shmid(shm)` in Julia.
    pub fn id(&self) -> Id {
        match &self.backing {
            Backing::Posix(object) => Id::Name(object.name().to_owned()),
            Backing::SysV(attachment) => Id::Shm(attachment.id()),
        }
    }

    /// The exact size in bytes, as `sizeof(shm)` in Julia.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always `false`: an object has at least one byte.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this handle is read-only.
    pub fn is_readonly(&self) -> bool {
        self.readonly
    }

    /// Whether the object is a volatile POSIX object (held by this handle) or a System V
    /// segment marked for removal.
    pub fn is_volatile(&self) -> bool {
        match &self.backing {
            Backing::Posix(object) => object.is_volatile(),
            Backing::SysV(attachment) => sysv::shminfo(attachment.id()).is_ok_and(|info| info.is_marked_for_removal()),
        }
    }

    /// The base address, as `pointer(shm)` in Julia.
    #[inline]
    pub fn as_ptr(&self) -> *const u8 {
        self.base().as_ptr()
    }

    /// The base address for writing through `unsafe` code. Writing through it on a read-only
    /// handle kills the process with `SIGSEGV`: the mapping has no write permission.
    #[inline]
    pub fn as_mut_ptr(&self) -> *mut u8 {
        self.base().as_ptr()
    }

    /// Gives a POSIX object made by `build_posix` its name; fails with `AlreadyExists` if the
    /// name is taken. Nothing to do for a System V segment.
    fn publish(&mut self) -> Result<()> {
        match &mut self.backing {
            Backing::Posix(object) => object.publish(),
            Backing::SysV(_) => Ok(()),
        }
    }

    #[inline]
    fn base(&self) -> NonNull<u8> {
        self.base
    }

    /// Whether the object can still be found as it was opened: a POSIX name still names this
    /// object (not removed, not made anew); a System V segment opened by `key` is still the
    /// key's. One step of a `stat` or `shmget`, for readers that follow an object re-created
    /// under the same name.
    pub(crate) fn is_still_found(&self, opened_as: &Id) -> bool {
        match (&self.backing, opened_as) {
            (Backing::Posix(object), _) => object.is_still_named(),
            (Backing::SysV(attachment), Id::Key(key)) => {
                sysv::shmget(*key, 0, ShmFlags::default()).is_ok_and(|id| id == attachment.id())
            }
            (Backing::SysV(_), _) => true,
        }
    }

    /// Marks the object for destruction, as `rm(shm)` in Julia: a POSIX name is unlinked (if it
    /// still names this object), a System V segment is marked (`IPC_RMID`). Handles, this one
    /// included, stay usable until dropped.
    pub fn remove(&self) -> Result<()> {
        match &self.backing {
            Backing::Posix(object) => object.remove(),
            Backing::SysV(attachment) => sysv::remove(&Id::Shm(attachment.id())),
        }
    }

    /// Copies `buf.len()` bytes at `offset` into `buf`.
    ///
    /// The copy is sound whatever other threads and processes do meanwhile (bytes written
    /// concurrently may come out as a mix of old and new), as fast as `memcpy`, and on
    /// `x86_64` and `aarch64` fault-safe: if another process shrank the object under it, the
    /// error says so ([`Error::Shrunk`]) instead of the process dying of `SIGBUS`. See the
    /// `access` module of the sources for how, and for why it is sound.
    #[inline]
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        self.check_range(offset, buf.len())?;
        // SAFETY: the range lies within the mapping (checked above), which lives as long as
        // `self`; `buf` is private memory; `access::load` is sound against concurrent writers.
        let copied = unsafe { self.copier.load(self.as_ptr().add(offset), buf) };
        copied.map_err(|fault| self.fault_error(fault, offset, buf.len()))
    }

    /// Copies `data` to `offset`. Fails on a read-only handle.
    ///
    /// As [`read_at`](Self::read_at): sound, as fast as `memcpy`, and on `x86_64` and
    /// `aarch64` fault-safe: a full `/dev/shm` when a page of a sparse object is first written
    /// is the error [`Limit::NoSpace`](crate::Limit::NoSpace) instead of a `SIGBUS`.
    #[inline]
    pub fn write_at(&self, offset: usize, data: &[u8]) -> Result<()> {
        self.check_writable()?;
        self.check_range(offset, data.len())?;
        // SAFETY: the range lies within the mapping, which is writable (checked above);
        // `data` is private memory; `access::store` is sound against concurrent accesses.
        let copied = unsafe { self.copier.store(self.as_mut_ptr().add(offset), data) };
        copied.map_err(|fault| self.fault_error(fault, offset, data.len()))
    }

    /// The error for `fault` during an access of `length` bytes at `offset`: why the mapping
    /// faulted, as far as the object's file and file system tell.
    #[cold]
    #[inline(never)]
    pub(crate) fn fault_error(&self, fault: access::Fault, offset: usize, length: usize) -> Error {
        let object = self.id().to_string();
        let at = fault.address.wrapping_sub(self.as_ptr() as usize);
        if at >= self.len().next_multiple_of(crate::page_size()) {
            // Not the object: the caller's own buffer, itself a mapping (of a file that shrank?).
            return Error::Fault {
                object,
                signal: if fault.signal == access::Signal::Bus { "SIGBUS" } else { "SIGSEGV" },
                offset,
                cause: format!("the caller's buffer faulted at address {:#x}, not the object", fault.address),
            };
        }
        let signal = match fault.signal {
            access::Signal::Bus => "SIGBUS",
            access::Signal::Segv => {
                return Error::Fault {
                    object,
                    signal: "SIGSEGV",
                    offset: at,
                    cause: "the mapping is gone or lost its permissions (unmapped or protected by unsafe code of \
                            this process)"
                        .into(),
                }
            }
        };
        let Backing::Posix(posix) = &self.backing else {
            return Error::Fault {
                object,
                signal,
                offset: at,
                cause: "the kernel could not provide a page of the segment (out of memory, or of huge pages)".into(),
            };
        };
        match posix.current_size() {
            Some(size) if size <= at as u64 => return Error::Shrunk { object, size, offset, length },
            None => {
                return Error::Fault {
                    object,
                    signal,
                    offset: at,
                    cause: "a page is missing: another process shrank or replaced the object (its size can no \
                            longer be read)"
                        .into(),
                }
            }
            Some(_) => {}
        }
        if posix.directory() != "/dev/shm" {
            // A hugetlbfs: a huge page that could not be had.
            return crate::huge::unavailable(&object, self.len(), crate::huge::Cause::TooFew);
        }
        let page = crate::page_size() as u64;
        match posix.free_space() {
            Some((free, total)) if free < page * 2 => Error::LimitExceeded {
                object,
                limit: crate::Limit::NoSpace,
                detail: format!(
                    "{free} of {total} bytes free in {}: the page at offset {at} of this sparse object could not be \
                     allocated; make objects with reserve(true) to allocate their pages at creation",
                    posix.directory()
                ),
            },
            _ => Error::Fault {
                object,
                signal,
                offset: at,
                cause: "the kernel could not provide the page (out of memory?)".into(),
            },
        }
    }

    /// `count` atomic 32-bit words at `offset` (aligned to 4). Fails on a read-only handle,
    /// whose words could not be stored to ([`load_u32`](Self::load_u32) reads one there), and
    /// if some of these bytes are used as atomics of another size through this handle (64-bit
    /// words of [`atomic_u64s`](Self::atomic_u64s)): racing atomic accesses of different sizes
    /// over the same bytes are undefined behaviour in Rust. Copies ([`read_at`](Self::read_at),
    /// [`write_at`](Self::write_at)) may cover the words at any time.
    pub fn atomic_u32s(&self, offset: usize, count: usize) -> Result<&[AtomicU32]> {
        self.atomic_words(offset, count)
    }

    /// `count` atomic 64-bit words at `offset` (aligned to 8). Fails on a read-only handle, and
    /// over bytes used as 32-bit atomics through this handle (as for
    /// [`atomic_u32s`](Self::atomic_u32s)).
    pub fn atomic_u64s(&self, offset: usize, count: usize) -> Result<&[AtomicU64]> {
        self.atomic_words(offset, count)
    }

    /// Loads the 32-bit word at `offset` (aligned to 4), also through a read-only handle.
    ///
    /// The load itself is relaxed (std allows only relaxed atomic loads on read-only memory).
    /// `Acquire` adds an acquire fence after it, which synchronises with a release store read
    /// by the load just as an acquire load would; `SeqCst` adds a sequentially consistent
    /// fence (a relaxed load and a `SeqCst` fence order the same as a `SeqCst` load against
    /// other `SeqCst` fences, slightly less against `SeqCst` operations without one).
    /// `Release` and `AcqRel` make no sense for a load: an error, not a panic. On a writable
    /// handle the word must not be part of a 64-bit atomic view (see
    /// [`atomic_u32s`](Self::atomic_u32s)).
    pub fn load_u32(&self, offset: usize, order: Ordering) -> Result<u32> {
        let word = self.load_word::<AtomicU32>(offset, order)?;
        // SAFETY: `word` is aligned and within the mapping, which lives as long as `self`
        // (checked); a relaxed atomic load is allowed on read-only memory; no atomic of another
        // size overlaps it through this mapping (claimed on a writable handle; a read-only one
        // only loads).
        let value = unsafe { AtomicU32::from_ptr(word.cast()) }.load(Ordering::Relaxed);
        fence_after_load(order);
        Ok(value)
    }

    /// Loads the 64-bit word at `offset` (aligned to 8), also through a read-only handle; the
    /// orderings as for [`load_u32`](Self::load_u32).
    pub fn load_u64(&self, offset: usize, order: Ordering) -> Result<u64> {
        let word = self.load_word::<AtomicU64>(offset, order)?;
        // SAFETY: as in `load_u32`.
        let value = unsafe { AtomicU64::from_ptr(word.cast()) }.load(Ordering::Relaxed);
        fence_after_load(order);
        Ok(value)
    }

    /// The word of type `A` at `offset` for a load of `order`: checked for bounds, alignment,
    /// ordering, and on a writable handle claimed at its width.
    fn load_word<A>(&self, offset: usize, order: Ordering) -> Result<*mut u8> {
        if matches!(order, Ordering::Release | Ordering::AcqRel) {
            return Err(Error::InvalidArgument {
                object: self.id().to_string(),
                reason: format!("a load cannot have the ordering {order:?} (Relaxed, Acquire or SeqCst)"),
            });
        }
        let word = self.aligned_word::<A>(offset)?;
        if !self.readonly {
            // Offsets are less than the object's length, far below `usize::MAX / 2`.
            let key = offset * 2 + usize::from(size_of::<A>() == 8);
            // Acquire/Release: whoever sees the word here sees the claim made before, and what
            // the claim's lock ordered before it (see `access::claims`).
            if self.last_loaded.load(Ordering::Acquire) != key {
                self.claim::<A>(offset, 1)?;
                self.last_loaded.store(key, Ordering::Release);
            }
        }
        Ok(word)
    }

    /// The whole object as a byte slice.
    ///
    /// # Safety
    /// For as long as the slice lives, no process may write the object (Rust assumes the bytes
    /// behind `&[u8]` do not change), and the object must not be shrunk by another process.
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: the mapping is `len` readable bytes for the life of `self`; the caller
        // promises that nobody writes them meanwhile.
        unsafe { std::slice::from_raw_parts(self.as_ptr(), self.len()) }
    }

    /// The whole object as a mutable byte slice; fails on a read-only handle.
    ///
    /// # Safety
    /// For as long as the slice lives, no other process and no other reference in this process
    /// may access the object, and it must not be shrunk by another process.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn as_mut_slice(&self) -> Result<&mut [u8]> {
        self.check_writable()?;
        // SAFETY: the mapping is `len` writable bytes for the life of `self`; the caller
        // promises exclusive access.
        Ok(unsafe { std::slice::from_raw_parts_mut(self.as_mut_ptr(), self.len()) })
    }

    fn atomic_words<A>(&self, offset: usize, count: usize) -> Result<&[A]> {
        self.check_writable()?;
        let first = self.claim::<A>(offset, count)?;
        // SAFETY: `count` words of `A` (an atomic integer) lie within the writable mapping
        // (checked), aligned for `A` (checked), used at no other atomic size through this
        // mapping (claimed); atomics may be shared with other processes, and the slice lives
        // no longer than `self`, which keeps the mapping.
        Ok(unsafe { std::slice::from_raw_parts(first.cast::<A>(), count) })
    }

    /// Claims `count` words of the atomic type `A` at `offset` (see the `access` module): the
    /// bytes are then never accessed as atomics of another size through this mapping. Checks
    /// bounds and alignment; gives the first word's address.
    pub(crate) fn claim<A>(&self, offset: usize, count: usize) -> Result<*mut u8> {
        let bytes = count.checked_mul(size_of::<A>()).ok_or_else(|| self.out_of_bounds(offset, usize::MAX))?;
        self.check_range(offset, bytes)?;
        let first = self.aligned_word::<A>(offset)?;
        access::claim(first as usize, bytes, size_of::<A>()).map_err(|conflict| Error::InvalidArgument {
            object: self.id().to_string(),
            reason: format!(
                "bytes {offset}..{} are used as {}-bit atomics through this handle: {}-bit atomics over them \
                 would be a mixed-size race (undefined behaviour)",
                offset + bytes,
                conflict.width * 8,
                size_of::<A>() * 8
            ),
        })?;
        Ok(first)
    }

    /// The address of a word of type `A` at `offset`, checked for bounds and alignment.
    fn aligned_word<A>(&self, offset: usize) -> Result<*mut u8> {
        self.check_range(offset, size_of::<A>())?;
        // SAFETY: `offset` is within the mapping (checked above).
        let word = unsafe { self.as_mut_ptr().add(offset) };
        if !word.cast::<A>().is_aligned() {
            return Err(Error::Misaligned { object: self.id().to_string(), offset, align: align_of::<A>() });
        }
        Ok(word)
    }

    #[inline]
    fn check_range(&self, offset: usize, length: usize) -> Result<()> {
        // Two compares, no sum (`checked_add` and a `match` compiled to nine instructions,
        // the sum computed twice): this check is in every 64-byte copy.
        if length > self.len || offset > self.len - length {
            return Err(self.out_of_bounds(offset, length));
        }
        Ok(())
    }

    #[cold]
    #[inline(never)]
    fn out_of_bounds(&self, offset: usize, length: usize) -> Error {
        Error::OutOfBounds { object: self.id().to_string(), offset, length, len: self.len() }
    }

    #[inline]
    fn check_writable(&self) -> Result<()> {
        if self.readonly {
            return Err(self.read_only());
        }
        Ok(())
    }

    /// The error of a write through this read-only handle (out of line: the checks of the
    /// copies stay small enough to be inlined).
    #[cold]
    #[inline(never)]
    fn read_only(&self) -> Error {
        Error::ReadOnly { object: self.id().to_string() }
    }
}

impl Drop for SharedMemory {
    /// Forgets the atomic views of the mapping, before the backing unmaps it.
    fn drop(&mut self) {
        access::release(self.as_ptr() as usize, self.len());
    }
}

/// The fence that gives a relaxed load the ordering `order` asked for.
fn fence_after_load(order: Ordering) {
    match order {
        Ordering::Acquire => std::sync::atomic::fence(Ordering::Acquire),
        Ordering::SeqCst => std::sync::atomic::fence(Ordering::SeqCst),
        _ => {}
    }
}

impl fmt::Debug for SharedMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedMemory")
            .field("id", &self.id())
            .field("len", &self.len())
            .field("readonly", &self.readonly)
            .finish_non_exhaustive()
    }
}

/// A handle that owns a mapped shared memory object: [`SharedMemory`], [`SharedArray`](crate::SharedArray),
/// the stream handles. Objects placed in the memory (an [`Event`](crate::Event)) hold an `Arc`
/// of the handle, whatever its type, to keep the mapping alive.
pub trait AsSharedMemory: Send + Sync + 'static {
    /// The shared memory object the handle maps.
    fn as_shared_memory(&self) -> &SharedMemory;
}

impl AsSharedMemory for SharedMemory {
    fn as_shared_memory(&self) -> &SharedMemory {
        self
    }
}

/// Removes the object that `target` names, as `shmrm` in Julia: unlinks a POSIX name, marks a
/// System V segment (by key or id) for removal. What is already gone is not an error.
///
/// ```
/// let name = format!("/ipcmem-doc-shmrm-{}", std::process::id());
/// ipcmem::SharedMemory::options().volatile(false).create(name.as_str(), 1)?;
/// ipcmem::shmrm(name.as_str())?;
/// ipcmem::shmrm(name.as_str())?; // gone already: still Ok
/// # Ok::<(), ipcmem::Error>(())
/// ```
#[doc(alias = "shm_unlink")]
#[doc(alias = "IPC_RMID")]
pub fn shmrm(target: impl Into<Id>) -> Result<()> {
    match target.into() {
        Id::Name(name) => posix::unlink(&name),
        other => sysv::remove(&other),
    }
}
