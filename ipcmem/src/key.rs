//! Identifiers: System V keys ([`Key`]), System V segment ids ([`ShmId`]), and [`Id`], which
//! names any shared memory object (a POSIX name, a key, or an id).

use std::ffi::CString;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::str::FromStr;

use crate::error::{Error, Result};

/// A System V IPC key (`key_t`), as `IPC.Key` of the Julia package.
///
/// ```
/// use ipcmem::Key;
/// let key = Key::from_path("/", 42)?;
/// assert_ne!(key, Key::PRIVATE);
/// assert_eq!(key.to_string(), format!("key:{:#010x}", key.as_raw() as u32));
/// # Ok::<(), ipcmem::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key(i32);

impl Default for Key {
    /// [`Key::PRIVATE`].
    fn default() -> Key {
        Key::PRIVATE
    }
}

impl Key {
    /// `IPC_PRIVATE`: each creation makes a new segment, reachable only by its id.
    pub const PRIVATE: Key = Key(libc::IPC_PRIVATE);

    /// A key from its raw value.
    pub const fn from_raw(raw: i32) -> Key {
        Key(raw)
    }

    /// The raw `key_t` value.
    pub const fn as_raw(self) -> i32 {
        self.0
    }

    /// The key that `ftok(3)` derives from an existing file and a project number `1..=255`.
    ///
    /// Two processes that name the same file and number get the same key.
    #[doc(alias = "ftok")]
    pub fn from_path(path: impl AsRef<Path>, proj: u8) -> Result<Key> {
        let path = path.as_ref();
        let object = path.display();
        if proj == 0 {
            return Err(Error::InvalidArgument {
                object: object.to_string(),
                reason: "the project number of a key must be in 1..=255".into(),
            });
        }
        let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|_| Error::InvalidArgument {
            object: object.to_string(),
            reason: "a path may contain no NUL byte".into(),
        })?;
        // SAFETY: `c_path` is a valid NUL-terminated string that lives across the call; ftok only
        // reads it (it calls stat).
        let raw = unsafe { libc::ftok(c_path.as_ptr(), i32::from(proj)) };
        if raw == -1 {
            // Not `from_errno`: its errors speak of shared memory objects, and this is a file.
            return Err(Error::Os { object: object.to_string(), operation: "ftok", errno: crate::error::last_errno() });
        }
        Ok(Key(raw))
    }

    /// Whether this is [`Key::PRIVATE`].
    pub const fn is_private(self) -> bool {
        self.0 == libc::IPC_PRIVATE
    }
}

impl fmt::Display for Key {
    /// `key:0x0000abcd` (8 hex digits), or `private`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_private() {
            f.write_str("private")
        } else {
            // The bits of key_t as `ipcs` shows them.
            write!(f, "key:{:#010x}", self.0.cast_unsigned())
        }
    }
}

/// The identifier of a System V shared memory segment, as `ShmId` of the Julia package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShmId(i32);

impl Default for ShmId {
    /// `-1`, which names no segment.
    fn default() -> ShmId {
        ShmId(-1)
    }
}

impl ShmId {
    /// An id from its raw value, as `ipcs -m` shows it.
    pub const fn from_raw(raw: i32) -> ShmId {
        ShmId(raw)
    }

    /// The raw id.
    pub const fn as_raw(self) -> i32 {
        self.0
    }

    /// The id of the existing segment of `key`, as `ShmId(key, readonly)` in Julia.
    ///
    /// `readonly` asks only for read permission; otherwise read and write are checked.
    pub fn from_key(key: Key, readonly: bool) -> Result<ShmId> {
        let perms = if readonly { 0o444 } else { 0o666 };
        crate::sysv::get_existing(key, perms)
    }
}

impl fmt::Display for ShmId {
    /// `id:N`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "id:{}", self.0)
    }
}

/// Any shared memory object: a POSIX name, a System V key, or a System V segment id.
///
/// Functions that take an object take `impl Into<Id>`, so `"/name"`, a [`Key`] and a [`ShmId`]
/// can be given as they are. [`Id`] parses and prints the syntax of the `ipcmem` command:
/// `/name`, `key:N` (decimal or `0x` hex), `id:N`, `private`.
///
/// ```
/// use ipcmem::{Id, Key, ShmId};
/// assert_eq!("/frames".parse::<Id>()?, Id::Name("/frames".into()));
/// assert_eq!("key:0x2a".parse::<Id>()?, Id::Key(Key::from_raw(42)));
/// assert_eq!("id:7".parse::<Id>()?, Id::Shm(ShmId::from_raw(7)));
/// assert_eq!(Id::Key(Key::from_raw(42)).to_string(), "key:0x0000002a");
/// # Ok::<(), ipcmem::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Id {
    /// A POSIX object, `/name`.
    Name(String),
    /// A System V key; [`Key::PRIVATE`] to create a new segment without a key.
    Key(Key),
    /// A System V segment id.
    Shm(ShmId),
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Id::Name(name) => f.write_str(name),
            Id::Key(key) => key.fmt(f),
            Id::Shm(id) => id.fmt(f),
        }
    }
}

impl From<&str> for Id {
    fn from(name: &str) -> Id {
        Id::Name(name.to_owned())
    }
}

impl From<String> for Id {
    fn from(name: String) -> Id {
        Id::Name(name)
    }
}

impl From<&String> for Id {
    fn from(name: &String) -> Id {
        Id::Name(name.clone())
    }
}

impl From<Key> for Id {
    fn from(key: Key) -> Id {
        Id::Key(key)
    }
}

impl From<ShmId> for Id {
    fn from(id: ShmId) -> Id {
        Id::Shm(id)
    }
}

impl From<&Id> for Id {
    fn from(id: &Id) -> Id {
        id.clone()
    }
}

impl FromStr for Id {
    type Err = Error;

    /// Parses `/name`, `key:N`, `id:N` or `private` (N decimal, or hex after `0x`).
    fn from_str(text: &str) -> Result<Id> {
        let bad = |reason: &str| Error::InvalidArgument { object: text.to_owned(), reason: reason.to_owned() };
        if text.starts_with('/') {
            crate::posix::check_name(text)?;
            return Ok(Id::Name(text.to_owned()));
        }
        if text == "private" {
            return Ok(Id::Key(Key::PRIVATE));
        }
        if let Some(number) = text.strip_prefix("key:") {
            let raw =
                parse_number(number).ok_or_else(|| bad("a key is key:N, N a 32-bit number, decimal or 0x hex"))?;
            return Ok(Id::Key(Key::from_raw(raw)));
        }
        if let Some(number) = text.strip_prefix("id:") {
            let raw = number
                .parse::<i32>()
                .ok()
                .filter(|raw| *raw >= 0)
                .ok_or_else(|| bad("an id is id:N, N a non-negative decimal number"))?;
            return Ok(Id::Shm(ShmId::from_raw(raw)));
        }
        Err(bad("an object is /name, key:N, id:N or private"))
    }
}

/// A 32-bit number in decimal (possibly negative) or `0x` hex, as the bits of a `key_t`.
fn parse_number(text: &str) -> Option<i32> {
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        return u32::from_str_radix(hex, 16).ok().map(u32::cast_signed);
    }
    text.parse::<i32>().ok().or_else(|| text.parse::<u32>().ok().map(u32::cast_signed))
}
