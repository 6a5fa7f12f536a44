//! The syntax of arguments: objects, sizes, counts and modes. A value that does not parse is a
//! usage error (exit status 2), reported by clap with the reason given here.

use std::fmt;

use ipcmem::inventory::{self, Filter};
use ipcmem::{Id, Key};

/// An existing object: `/name`, `key:N` or `id:N` (never `private`).
pub type Object = Id;

/// What `info`, `rm` and `chmod` take: an existing shared memory object, or a named semaphore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `/name`, `key:N` or `id:N`.
    Memory(Object),
    /// `sem:/name`: the named semaphore `/name` (as `sem_open` takes it), the file
    /// `/dev/shm/sem.name`.
    Semaphore(String),
}

impl fmt::Display for Target {
    /// The target as it is written on the command line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Memory(id) => write!(f, "{id}"),
            Target::Semaphore(name) => write!(f, "{SEMAPHORE_PREFIX}{name}"),
        }
    }
}

/// What names a semaphore on the command line: `sem:/name`.
const SEMAPHORE_PREFIX: &str = "sem:";

/// An object to make: `/name`, `key:N`, or `private` (a key of [`Key::PRIVATE`]).
pub type NewObject = Id;

/// Permission bits, at most `0o777`.
pub type Mode = u32;

/// The object syntax, shown after the main help.
pub const OBJECT_HELP: &str = "\
Objects (OBJ):
  /name      a POSIX object, the file /dev/shm/name
  key:N      a System V segment by key (N decimal or 0x hex)
  id:N       a System V segment by id
  private    (create only) a new System V segment without a key
  sem:/name  (list, info, rm and chmod only) the named semaphore /name, as sem_open(3) takes
             it: the file /dev/shm/sem.name

Example:
  $ ipcmem create /frames 4MiB --mode 0640
  /frames
  $ ipcmem list
  $ ipcmem rm /frames";

/// Parses an existing object; `private` is refused, as it names no existing segment.
pub fn parse_object(text: &str) -> Result<Object, String> {
    let id = parse_any(text)?;
    if id == Id::Key(Key::PRIVATE) && text == "private" {
        return Err("`private` makes a new segment and is for `create` only: \
                    name an existing segment by key:N or id:N"
            .into());
    }
    if id == Id::Key(Key::PRIVATE) {
        return Err("key 0 is IPC_PRIVATE, the key of segments made without one: it names no \
                    segment; name an existing segment by its id, id:N (`ipcmem list --sysv` shows them)"
            .into());
    }
    Ok(id)
}

/// Parses what `info`, `rm` and `chmod` take: an existing object, or `sem:/name`.
pub fn parse_target(text: &str) -> Result<Target, String> {
    let Some(name) = text.strip_prefix(SEMAPHORE_PREFIX) else {
        return parse_object(text).map(Target::Memory);
    };
    match inventory::check_semaphore_name(name) {
        Ok(()) => Ok(Target::Semaphore(name.to_owned())),
        Err(ipcmem::Error::InvalidName { rule, .. }) => {
            Err(format!("sem:/name names a semaphore as sem_open takes it, /name; {name:?} breaks a rule: {rule}"))
        }
        Err(other) => Err(other.to_string()),
    }
}

/// Parses an object to make; an id is refused, as it names an existing segment.
pub fn parse_new_object(text: &str) -> Result<NewObject, String> {
    let id = parse_any(text)?;
    if let Id::Shm(_) = id {
        return Err("an id names an existing segment: create takes /name, key:N or private".into());
    }
    Ok(id)
}

fn parse_any(text: &str) -> Result<Id, String> {
    if text.starts_with(SEMAPHORE_PREFIX) {
        return Err("sem:/name names a named semaphore, which only list, info, rm and chmod take: \
                    this command takes shared memory, /name, key:N or id:N"
            .into());
    }
    text.parse::<Id>().map_err(|error| match error {
        ipcmem::Error::InvalidArgument { reason, .. } => reason,
        other => other.to_string(),
    })
}

/// Parses a size: at least one byte, as [`parse_count`].
pub fn parse_size(text: &str) -> Result<usize, String> {
    match parse_count(text)? {
        0 => Err("a shared memory object needs at least one byte".into()),
        size => Ok(size),
    }
}

/// Parses a byte count: digits, optionally followed by `KiB`, `MiB`, `GiB` (or `k`, `m`, `g`,
/// in either case), each a power of 1024.
pub fn parse_count(text: &str) -> Result<usize, String> {
    let digits_end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, suffix) = text.split_at(digits_end);
    let shift = match suffix.to_ascii_lowercase().as_str() {
        "" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        _ => return Err(format!("unknown unit {suffix:?}: write bytes, or a number with KiB, MiB or GiB")),
    };
    if digits.is_empty() {
        return Err("a size is a number of bytes, optionally with KiB, MiB or GiB, as 4096 or 4KiB".into());
    }
    digits
        .parse::<usize>()
        .ok()
        .and_then(|number| number.checked_mul(1 << shift))
        .ok_or_else(|| format!("{text} is too large for this machine"))
}

/// Parses a mode: 1 to 4 octal digits (`0640`, `640`, also `0o640`), at most `0777`.
pub fn parse_mode(text: &str) -> Result<Mode, String> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    let bad = || format!("{text:?} is not a mode: write octal permission bits, as 0640 or 640");
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(bad());
    }
    let mode = u32::from_str_radix(digits, 8).map_err(|_| bad())?;
    if mode > 0o777 {
        return Err(format!("{text}: only the permission bits 0777 can be set"));
    }
    Ok(mode)
}

/// The filter of `list` for its flags (clap lets at most one be set).
pub fn filter(posix: bool, sysv: bool, sem: bool) -> Filter {
    match (posix, sysv, sem) {
        (true, false, false) => Filter::Posix,
        (false, true, false) => Filter::SysV,
        (false, false, true) => Filter::Semaphores,
        _ => Filter::All,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("2m"), Ok(2 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert!(parse_size("0").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("KiB").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("4kb").is_err());
        assert!(parse_size("99999999999999999999").is_err());
        assert_eq!(parse_count("0"), Ok(0));
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0640"), Ok(0o640));
        assert_eq!(parse_mode("640"), Ok(0o640));
        assert_eq!(parse_mode("0"), Ok(0));
        for bad in ["", "0800", "1777", "rw-r--r--", "06400", "0x1ff"] {
            assert!(parse_mode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn objects() {
        assert_eq!(parse_object("/a"), Ok(Id::Name("/a".into())));
        assert!(parse_object("private").is_err());
        for zero in ["key:0", "key:0x0", "key:00"] {
            let error = parse_object(zero).unwrap_err();
            assert!(error.starts_with("key 0 is IPC_PRIVATE") && !error.contains("`private`"), "{zero}: {error}");
        }
        assert!(parse_new_object("id:3").is_err());
        assert_eq!(parse_new_object("private"), Ok(Id::Key(Key::PRIVATE)));
        assert!(parse_object("a").is_err());
        assert!(parse_object("/a/b").is_err());
    }

    #[test]
    fn semaphores() {
        assert_eq!(parse_target("sem:/a"), Ok(Target::Semaphore("/a".into())));
        assert_eq!(parse_target("/a"), Ok(Target::Memory(Id::Name("/a".into()))));
        assert_eq!(Target::Semaphore("/a".into()).to_string(), "sem:/a");
        let longest = format!("sem:/{}", "x".repeat(251));
        assert!(parse_target(&longest).is_ok());
        for bad in ["sem:", "sem:a", "sem:/", "sem:/a/b", "sem:/..", "sem:sem:/a", "private", &format!("{longest}x")] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
        assert!(parse_object("sem:/a").is_err());
        assert!(parse_new_object("sem:/a").is_err());
    }
}
