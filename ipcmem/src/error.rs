//! The one error type of ipcmem.
//!
//! Every error names the object it is about (`/name`, `key:0x…`, `id:N`) and its cause, so that
//! a message printed as it is tells the user what to do. [`Error`] converts into
//! [`std::io::Error`] with a matching [`std::io::ErrorKind`].

use std::fmt;
use std::io;
use std::time::Duration;

use rustix::io::Errno;

use crate::array::{ElementType, HeaderError};

/// The result type of ipcmem.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, and with which object.
///
/// `object` fields hold the object as the CLI writes it: `/name` for a POSIX object, `key:0x…`
/// for a System V key, `id:N` for a System V segment id.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The object does not exist.
    #[error("{object}: no such shared memory object{}", hint_suffix(*.hint))]
    NotFound {
        /// The object asked for.
        object: String,
        /// Why it may be missing, where a reason is known.
        hint: Option<&'static str>,
    },
    /// An exclusive creation found the object already there.
    #[error("{object}: already exists")]
    AlreadyExists {
        /// The object asked for.
        object: String,
    },
    /// The caller may not access the object in the way asked for.
    #[error("{object}: permission denied ({access} access refused by the object's mode or owner)")]
    PermissionDenied {
        /// The object asked for.
        object: String,
        /// `"read"`, `"read-write"`, or the operation that was refused.
        access: &'static str,
    },
    /// A write through a read-only handle.
    #[error("{object}: the handle is read-only")]
    ReadOnly {
        /// The object of the handle.
        object: String,
    },
    /// A POSIX name that breaks a rule.
    #[error("{name:?}: invalid POSIX shared memory name: {rule}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// The rule it breaks.
        rule: NameRule,
    },
    /// A size of zero, one that does not fit the object, or one past the address space.
    #[error("{object}: invalid size {size}: {reason}")]
    InvalidSize {
        /// The object asked for.
        object: String,
        /// The size asked for.
        size: u64,
        /// Why it is refused.
        reason: &'static str,
    },
    /// An access outside the object.
    #[error("{object}: {length} bytes at offset {offset} run past the end ({len} bytes)")]
    OutOfBounds {
        /// The object of the handle.
        object: String,
        /// Where the access starts.
        offset: usize,
        /// How many bytes it covers.
        length: usize,
        /// The size of the object.
        len: usize,
    },
    /// An offset that is not aligned for the atomic word asked for.
    #[error("{object}: offset {offset} is not aligned to {align} bytes")]
    Misaligned {
        /// The object of the handle.
        object: String,
        /// The offset given.
        offset: usize,
        /// The alignment required.
        align: usize,
    },
    /// A system limit stands in the way.
    #[error("{object}: {limit}{}", detail_suffix(.detail))]
    LimitExceeded {
        /// The object asked for.
        object: String,
        /// Which limit.
        limit: Limit,
        /// Figures, such as the size asked for and the limit.
        detail: String,
    },
    /// An argument that the operation cannot take.
    #[error("{object}: {reason}")]
    InvalidArgument {
        /// The object asked for.
        object: String,
        /// What is wrong with the argument.
        reason: String,
    },
    /// An object whose shared-array header breaks the layout (see [`crate::array`]).
    #[error("{object}: not a valid shared array: {reason}")]
    BadHeader {
        /// The object of the handle.
        object: String,
        /// The check of the layout that the header breaks.
        reason: HeaderError,
    },
    /// An array of another element type than the one asked for.
    #[error("{object}: holds an array of {found}, not of {expected}")]
    TypeMismatch {
        /// The object of the handle.
        object: String,
        /// The element type asked for.
        expected: ElementType,
        /// The element type stored in the header.
        found: ElementType,
    },
    /// An object with no array header (no magic) after the bounded wait of an opener.
    #[error(
        "{object}: not an initialised shared array: no header after {} ms (its creator has not finished writing it, or the object holds no array)",
        .waited.as_millis()
    )]
    NotInitialised {
        /// The object of the handle.
        object: String,
        /// How long the opener waited.
        waited: Duration,
    },
    /// Another process shrank the object (`ftruncate`) under an access: the pages past its new
    /// end are gone. The access was stopped (its `SIGBUS` caught) and may have copied part of
    /// the bytes.
    #[error(
        "{object}: the object was shrunk by another process to {size} bytes: {length} bytes at offset {offset} are no longer there"
    )]
    Shrunk {
        /// The object of the handle.
        object: String,
        /// Its size now.
        size: u64,
        /// Where the access started.
        offset: usize,
        /// How many bytes it covered.
        length: usize,
    },
    /// The mapping faulted during a copy (`SIGBUS` or `SIGSEGV`, caught) for another reason
    /// than a shrink or a full file system, which have their own errors.
    #[error("{object}: {cause} ({signal} at offset {offset}, caught during a copy)")]
    Fault {
        /// The object of the handle.
        object: String,
        /// `"SIGBUS"` or `"SIGSEGV"`.
        signal: &'static str,
        /// The offset in the object of the faulting address.
        offset: usize,
        /// What the fault means, as far as can be told.
        cause: String,
    },
    /// A stream's writer is gone: its process died (killed, crashed) or it closed the stream;
    /// see [`crate::stream`].
    #[error("{object}: the stream's writer (pid {pid}) is gone: {reason}")]
    WriterGone {
        /// The stream.
        object: String,
        /// The writer's process id, as the stream recorded it.
        pid: u32,
        /// `"its process died"` or `"it closed the stream"`.
        reason: &'static str,
    },
    /// An object whose stream control block breaks the layout (see [`crate::stream`]).
    #[error("{object}: not a valid frame stream: {reason}")]
    BadStream {
        /// The object.
        object: String,
        /// The check of the layout that the control block breaks.
        reason: String,
    },
    /// A volatile object on which another process has held an exclusive `flock(2)` for longer
    /// than an opener waits. ipcmem itself takes one only for the moment of a removal; a longer
    /// one is another program's (`flock -x`).
    #[error(
        "{object}: locked by another process (an exclusive flock held for more than {} ms; /proc/locks or `fuser -v` shows which process)",
        .waited.as_millis()
    )]
    Locked {
        /// The object asked for.
        object: String,
        /// How long the opener waited.
        waited: Duration,
    },
    /// Any other failure of a system call; keeps the operation and `errno`.
    #[error("{object}: {operation} failed: {errno}")]
    Os {
        /// The object asked for.
        object: String,
        /// The system call or step that failed, such as `"shmat"`.
        operation: &'static str,
        /// The error number the kernel gave.
        errno: Errno,
    },
}

/// The rules a POSIX shared memory name must follow (see `shm_overview(7)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameRule {
    /// The name is empty.
    Empty,
    /// The name does not start with `/`.
    LeadingSlash,
    /// The name is `/` and nothing else.
    NothingAfterSlash,
    /// The name has a `/` after the first character.
    InnerSlash,
    /// The name contains a NUL byte.
    Nul,
    /// The name is longer than `NAME_MAX` (255) bytes after the slash.
    TooLong,
    /// The name is `/.` or `/..`.
    Dots,
}

impl fmt::Display for NameRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "it is empty",
            Self::LeadingSlash => "it must start with '/'",
            Self::NothingAfterSlash => "it needs at least one character after '/'",
            Self::InnerSlash => "it may contain no '/' after the first character",
            Self::Nul => "it may contain no NUL byte",
            Self::TooLong => "it may have at most 255 bytes after the '/' (NAME_MAX)",
            Self::Dots => "'/.' and '/..' name directories",
        })
    }
}

/// The system limits ipcmem reports by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Limit {
    /// `SHMMAX`: the largest System V segment (`/proc/sys/kernel/shmmax`).
    ShmMax,
    /// `SHMMNI`: the number of System V segments (`/proc/sys/kernel/shmmni`).
    ShmMni,
    /// `SHMALL`: the pages of all System V segments together (`/proc/sys/kernel/shmall`).
    ShmAll,
    /// The free space of the file system of POSIX objects (`/dev/shm`).
    NoSpace,
    /// The memory the kernel can give. (`RLIMIT_MEMLOCK` is [`Limit::LockedMemory`]; a failed
    /// lock that the limit does not explain says so in the detail.)
    Memory,
    /// The number of open files.
    OpenFiles,
    /// Huge pages: none reserved (`/proc/sys/vm/nr_hugepages`), too few free, no hugetlbfs
    /// mounted for POSIX objects, or not allowed; the detail says which and what to do.
    HugePages,
    /// `RLIMIT_MEMLOCK`: the memory this process may lock (`ulimit -l`).
    LockedMemory,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ShmMax => "larger than SHMMAX, the largest System V segment (/proc/sys/kernel/shmmax)",
            Self::ShmMni => "SHMMNI reached: no more System V segments can be made (/proc/sys/kernel/shmmni)",
            Self::ShmAll => {
                "SHMALL reached: all System V segments together may not grow further (/proc/sys/kernel/shmall)"
            }
            Self::NoSpace => "not enough free space in /dev/shm",
            Self::Memory => "not enough memory",
            Self::OpenFiles => "too many open files",
            Self::HugePages => "huge pages unavailable",
            Self::LockedMemory => "RLIMIT_MEMLOCK reached: this process may lock no more memory (ulimit -l)",
        })
    }
}

fn hint_suffix(hint: Option<&'static str>) -> String {
    hint.map(|h| format!(" ({h})")).unwrap_or_default()
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    }
}

/// The `errno` of the last failed libc call.
pub(crate) fn last_errno() -> Errno {
    Errno::from_io_error(&io::Error::last_os_error()).unwrap_or(Errno::INVAL)
}

impl Error {
    /// Turns the `errno` of a failed `operation` on `object` into the error that says it best.
    ///
    /// `ENOENT`, `EEXIST`, `EACCES`/`EPERM`, `ENOSPC`, `ENOMEM` and `EMFILE` get their own
    /// variant; everything else is [`Error::Os`].
    pub(crate) fn from_errno(object: &dyn fmt::Display, operation: &'static str, errno: Errno) -> Self {
        let object = object.to_string();
        match errno {
            Errno::NOENT => Self::NotFound { object, hint: None },
            Errno::EXIST => Self::AlreadyExists { object },
            Errno::ACCESS | Errno::PERM => Self::PermissionDenied { object, access: operation },
            Errno::NOSPC => Self::LimitExceeded { object, limit: Limit::NoSpace, detail: String::new() },
            Errno::NOMEM => Self::LimitExceeded { object, limit: Limit::Memory, detail: String::new() },
            Errno::MFILE | Errno::NFILE => {
                Self::LimitExceeded { object, limit: Limit::OpenFiles, detail: String::new() }
            }
            _ => Self::Os { object, operation, errno },
        }
    }

    /// The object the error is about, as `/name`, `key:0x…` or `id:N`.
    pub fn object(&self) -> &str {
        match self {
            Self::InvalidName { name: object, .. }
            | Self::NotFound { object, .. }
            | Self::AlreadyExists { object }
            | Self::PermissionDenied { object, .. }
            | Self::ReadOnly { object }
            | Self::InvalidSize { object, .. }
            | Self::OutOfBounds { object, .. }
            | Self::Misaligned { object, .. }
            | Self::LimitExceeded { object, .. }
            | Self::InvalidArgument { object, .. }
            | Self::BadHeader { object, .. }
            | Self::TypeMismatch { object, .. }
            | Self::NotInitialised { object, .. }
            | Self::Shrunk { object, .. }
            | Self::Fault { object, .. }
            | Self::WriterGone { object, .. }
            | Self::BadStream { object, .. }
            | Self::Locked { object, .. }
            | Self::Os { object, .. } => object,
        }
    }

    /// The matching [`io::ErrorKind`].
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            Self::NotFound { .. } => io::ErrorKind::NotFound,
            Self::AlreadyExists { .. } => io::ErrorKind::AlreadyExists,
            Self::PermissionDenied { .. } | Self::ReadOnly { .. } => io::ErrorKind::PermissionDenied,
            Self::InvalidName { .. }
            | Self::InvalidSize { .. }
            | Self::OutOfBounds { .. }
            | Self::Misaligned { .. }
            | Self::InvalidArgument { .. } => io::ErrorKind::InvalidInput,
            Self::BadHeader { .. } | Self::TypeMismatch { .. } | Self::BadStream { .. } => io::ErrorKind::InvalidData,
            Self::WriterGone { .. } => io::ErrorKind::BrokenPipe,
            Self::NotInitialised { .. } => io::ErrorKind::TimedOut,
            Self::Shrunk { .. } => io::ErrorKind::UnexpectedEof,
            Self::Fault { .. } => io::ErrorKind::Other,
            Self::Locked { .. } => io::ErrorKind::ResourceBusy,
            Self::LimitExceeded { limit: Limit::NoSpace, .. } => io::ErrorKind::StorageFull,
            Self::LimitExceeded { limit: Limit::Memory, .. } => io::ErrorKind::OutOfMemory,
            Self::LimitExceeded { .. } => io::ErrorKind::QuotaExceeded,
            Self::Os { errno, .. } => io::Error::from(*errno).kind(),
        }
    }
}

impl From<Error> for io::Error {
    fn from(error: Error) -> Self {
        io::Error::new(error.kind(), error)
    }
}
