//! How objects are shown: the JSON of `list` and `info`, the table of `list`, the lines of
//! `info`.

use std::fmt;

use ipcmem::array::Header;
use ipcmem::inventory::{Kind, ObjectInfo};
use ipcmem::stream::StreamInfo;
use serde::Serialize;

use crate::escape::escaped;
use crate::stream::StreamJson;
use crate::users::Users;

/// What an object holds, as `list` and `info` show it: a shared array, which may be a frame
/// stream.
#[derive(Debug, Default)]
pub struct Contents {
    /// The array header, if the object holds a valid one.
    pub array: Option<Header>,
    /// The stream, if the array is one.
    pub stream: Option<StreamInfo>,
}

impl Contents {
    /// What `object` holds; see [`crate::array::header_of`] for `attach`.
    pub fn of(object: &ObjectInfo, attach: bool) -> Contents {
        let array = crate::array::header_of(object, attach);
        let stream =
            array.as_ref().filter(|header| header.ndims() >= 2).and_then(|_| match (&object.name, object.id) {
                (Some(name), _) => ipcmem::stream::try_inspect(name.as_str()),
                (None, Some(id)) if attach => ipcmem::stream::try_inspect(id),
                _ => None,
            });
        Contents { array, stream }
    }
}

/// One object in JSON. The fields up to `in_use` are the interface scripts rely on; those after
/// it add what else is known. `null` where a kind has no such field.
#[derive(Debug, Serialize)]
pub struct ObjectJson {
    /// `"posix"`, `"semaphore"` or `"sysv"`.
    pub kind: &'static str,
    /// `/name` (POSIX; for a named semaphore, as `sem_open` takes it).
    pub name: Option<String>,
    /// The segment id (System V).
    pub id: Option<i32>,
    /// The key, as the kernel's `key_t` (System V, `null` if the segment has none).
    pub key: Option<i32>,
    /// Bytes, exact.
    pub size: u64,
    /// Octal, as `"0600"`.
    pub mode: String,
    pub uid: u32,
    /// The owner's name, `null` if the user database has none.
    pub user: Option<String>,
    pub gid: u32,
    /// Attachments of other processes (System V).
    pub nattch: Option<u64>,
    pub cpid: Option<i32>,
    pub lpid: Option<i32>,
    /// Unix seconds; `null` for "never" (System V) or where a kind has none.
    pub atime: Option<i64>,
    pub dtime: Option<i64>,
    pub ctime: i64,
    pub marked_for_removal: bool,
    pub volatile: Option<bool>,
    pub in_use: Option<bool>,
    /// The shared array the object holds (`ipcmem array`); `null` if none, or unread (a System V
    /// segment in `list`, which attaches nothing).
    pub array: Option<ArrayJson>,
    /// The frame stream the object holds (`ipcmem stream info --json`); `null` if none.
    pub stream: Option<StreamJson>,
    /// The object as the commands take it: `/name`, `id:N` or `sem:/name`.
    pub object: String,
    pub cuid: Option<u32>,
    pub cgid: Option<u32>,
    /// Last modification of the contents (POSIX).
    pub mtime: Option<i64>,
    /// Locked in memory (System V).
    pub locked: Option<bool>,
    /// The count of a named semaphore, `null` if unreadable.
    pub value: Option<u32>,
    /// The exact bytes of a name that is not UTF-8 (`name` then has U+FFFD for each bad
    /// sequence); `null` for a UTF-8 name, which `name` holds exactly.
    pub name_bytes: Option<Vec<u8>>,
    /// The object as a terminal may show it (controls and bad bytes escaped); not in JSON.
    #[serde(skip)]
    pub shown: String,
}

/// The element type and dimensions of a shared array: `{"type": "f32", "dims": [640, 480]}`.
#[derive(Debug, Serialize)]
pub struct ArrayJson {
    #[serde(rename = "type")]
    pub element: &'static str,
    pub dims: Vec<usize>,
}

impl From<&Header> for ArrayJson {
    fn from(header: &Header) -> ArrayJson {
        ArrayJson { element: header.element().name(), dims: header.dims().to_vec() }
    }
}

impl fmt::Display for ArrayJson {
    /// `f32 640x480`, as the table shows it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dims: Vec<String> = self.dims.iter().map(usize::to_string).collect();
        write!(f, "{} {}", self.element, dims.join("x"))
    }
}

impl ObjectJson {
    /// The JSON form of `info`, with the array the object holds.
    pub fn new(info: &ObjectInfo, contents: &Contents, users: &mut Users) -> ObjectJson {
        ObjectJson {
            kind: kind_name(info.kind),
            name: info.name.clone(),
            id: info.id.map(ipcmem::ShmId::as_raw),
            key: info.key.map(ipcmem::Key::as_raw),
            size: info.size,
            mode: format!("{:04o}", info.mode),
            uid: info.uid,
            user: users.name(info.uid),
            gid: info.gid,
            nattch: info.nattch,
            cpid: info.cpid,
            lpid: info.lpid,
            atime: info.atime,
            dtime: info.dtime,
            ctime: info.ctime,
            marked_for_removal: info.marked_for_removal,
            volatile: info.volatile,
            in_use: info.in_use,
            array: contents.array.as_ref().map(ArrayJson::from),
            stream: contents.stream.as_ref().map(StreamJson::from),
            object: info.label(),
            cuid: info.cuid,
            cgid: info.cgid,
            mtime: info.mtime,
            locked: info.locked,
            value: info.value,
            name_bytes: info.name_bytes.clone(),
            shown: escaped(&info.label_bytes()),
        }
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Posix => "posix",
        Kind::Semaphore => "semaphore",
        Kind::SysV => "sysv",
    }
}

/// The lines of `info`: every JSON field, in the same order, `-` for null.
pub fn info_lines(json: &ObjectJson) -> Vec<String> {
    let stream = json.stream.as_ref().map(|stream| {
        let dims: Vec<String> = stream.frame_dims.iter().map(usize::to_string).collect();
        let writer = stream.writer_pid.map_or_else(String::new, |pid| format!(", writer pid {pid} {}", stream.writer));
        format!("{} {} x{}, serial {}{writer}", stream.element, dims.join("x"), stream.slots, stream.serial)
    });
    let fields: [(&str, String); 26] = [
        ("object", json.shown.clone()),
        ("kind", json.kind.to_owned()),
        (
            "name",
            json.name_bytes
                .as_deref()
                .map_or_else(|| shown(json.name.as_ref().map(|name| escaped(name.as_bytes()))), escaped),
        ),
        ("id", shown(json.id)),
        ("key", json.key.map_or_else(|| "-".to_owned(), |key| format!("{:#010x} ({key})", key.cast_unsigned()))),
        ("size", format!("{} ({})", json.size, compact_size(json.size))),
        ("mode", json.mode.clone()),
        ("uid", json.uid.to_string()),
        ("user", shown(json.user.as_ref())),
        ("gid", json.gid.to_string()),
        ("cuid", shown(json.cuid)),
        ("cgid", shown(json.cgid)),
        ("nattch", shown(json.nattch)),
        ("cpid", shown(json.cpid)),
        ("lpid", shown(json.lpid)),
        ("atime", shown(json.atime)),
        ("dtime", shown(json.dtime)),
        ("mtime", shown(json.mtime)),
        ("ctime", json.ctime.to_string()),
        ("marked_for_removal", json.marked_for_removal.to_string()),
        ("locked", shown(json.locked)),
        ("volatile", shown(json.volatile)),
        ("in_use", shown(json.in_use)),
        ("array", shown(json.array.as_ref())),
        ("stream", shown(stream)),
        ("value", shown(json.value)),
    ];
    let width = fields.iter().map(|(field, _)| field.len()).max().unwrap_or(0);
    fields.iter().map(|(field, value)| format!("{field:<width$}  {value}")).collect()
}

fn shown(value: Option<impl std::fmt::Display>) -> String {
    value.map_or_else(|| "-".to_owned(), |value| value.to_string())
}

/// The table of `list`.
pub struct Table {
    rows: Vec<[String; COLUMNS]>,
}

const COLUMNS: usize = 9;
const HEADER: [&str; COLUMNS] = ["KIND", "OBJECT", "KEY", "SIZE", "MODE", "OWNER", "NATTCH", "CPID", "STATUS"];
/// Columns whose numbers are aligned right.
const RIGHT: [bool; COLUMNS] = [false, false, false, true, false, false, true, true, false];
/// The widest a column grows for the others' sake: a longer value (a long name) makes its own
/// row longer, not every row. With these, a row of ordinary values fits 100 columns.
const MAX_WIDTH: [usize; COLUMNS] = [5, 30, 10, 10, 4, 10, 6, 7, 9];

impl Table {
    /// The table of `objects`, each with the array it holds.
    pub fn new(objects: &[(ObjectInfo, Contents)], users: &mut Users) -> Table {
        let mut rows = vec![HEADER.map(str::to_owned)];
        rows.extend(objects.iter().map(|(info, contents)| row(info, contents, users)));
        Table { rows }
    }

    /// The lines of the table, columns separated by two spaces, no trailing blanks.
    pub fn lines(&self) -> Vec<String> {
        let widths: Vec<usize> = (0..COLUMNS)
            .map(|column| {
                let widest = self.rows.iter().map(|row| row[column].chars().count()).max().unwrap_or(0);
                widest.min(MAX_WIDTH[column].max(HEADER[column].len()))
            })
            .collect();
        self.rows
            .iter()
            .map(|row| {
                let cells: Vec<String> = row
                    .iter()
                    .zip(&widths)
                    .zip(RIGHT)
                    .map(
                        |((cell, &width), right)| {
                            if right {
                                format!("{cell:>width$}")
                            } else {
                                format!("{cell:<width$}")
                            }
                        },
                    )
                    .collect();
                cells.join("  ").trim_end().to_owned()
            })
            .collect()
    }
}

fn row(info: &ObjectInfo, contents: &Contents, users: &mut Users) -> [String; COLUMNS] {
    let dash = || "-".to_owned();
    // `semaphore` would widen the KIND column of every row.
    let kind = if info.kind == Kind::Semaphore { "sem" } else { kind_name(info.kind) };
    [
        kind.to_owned(),
        escaped(&info.label_bytes()),
        info.key.map_or_else(dash, |key| format!("{:#010x}", key.as_raw().cast_unsigned())),
        compact_size(info.size),
        format!("{:04o}", info.mode),
        users.name(info.uid).unwrap_or_else(|| info.uid.to_string()),
        info.nattch.map_or_else(dash, |n| n.to_string()),
        info.cpid.map_or_else(dash, |pid| pid.to_string()),
        status(info, contents),
    ]
}

/// A size, exact, in the largest unit that divides it: `4096` is `4KiB`, `1000` stays `1000`.
pub fn compact_size(size: u64) -> String {
    for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if size != 0 && size.trailing_zeros() >= shift {
            return format!("{}{unit}", size >> shift);
        }
    }
    size.to_string()
}

/// The STATUS column: `volatile` (held), `abandoned` (volatile, no holder: `gc` removes it),
/// `unfinished` (a creation killed half way: `gc` removes it), `unknown` (its holders cannot
/// be known here), `dest` (marked for removal), `locked`, and the array the object holds
/// (`f32 640x480`) or the stream (`stream f32 512x512 x4`), or `-`;
/// for a semaphore, `volatile` (held) or `unheld` (`gc` leaves semaphores), and `value=N`.
/// The array is a word of STATUS, the last column, rather than a column of its own: only the
/// lines of arrays grow, and the table keeps within 100 columns for ordinary names.
fn status(info: &ObjectInfo, contents: &Contents) -> String {
    let words: Vec<&str> = match info.kind {
        _ if info.unfinished && info.in_use == Some(false) => vec!["unfinished"],
        Kind::Posix if info.is_abandoned() => vec!["abandoned"],
        // Its holders cannot be known here (a child PID namespace): never called abandoned.
        Kind::Posix if info.volatile == Some(true) && info.in_use.is_none() => vec!["volatile", "unknown"],
        Kind::Posix if info.volatile == Some(true) => vec!["volatile"],
        Kind::Posix if info.unfinished => vec!["unfinished", "unknown"],
        Kind::Posix => Vec::new(),
        Kind::Semaphore => match (info.volatile, info.in_use) {
            (Some(true), Some(false)) => vec!["unheld"],
            (Some(true), None) => vec!["volatile", "unknown"],
            (Some(true), _) => vec!["volatile"],
            _ => Vec::new(),
        },
        Kind::SysV => [
            (info.marked_for_removal, "dest"),
            (info.locked == Some(true), "locked"),
            (info.in_use.is_none(), "unknown"),
        ]
        .into_iter()
        .filter_map(|(set, word)| set.then_some(word))
        .collect(),
    };
    // A stream shows as one (`stream f32 512x512 x4`), not as the array it also is.
    let array = match &contents.stream {
        Some(stream) => Some(stream.to_string()),
        None => contents.array.as_ref().map(Header::to_string),
    };
    let value = info.value.map(|value| format!("value={value}"));
    let words: Vec<&str> = words.into_iter().chain(array.as_deref()).chain(value.as_deref()).collect();
    if words.is_empty() {
        "-".to_owned()
    } else {
        words.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_sizes_are_exact() {
        assert_eq!(compact_size(0), "0");
        assert_eq!(compact_size(1000), "1000");
        assert_eq!(compact_size(4096), "4KiB");
        assert_eq!(compact_size(4097), "4097");
        assert_eq!(compact_size(3 << 20), "3MiB");
        assert_eq!(compact_size(1 << 30), "1GiB");
    }
}
