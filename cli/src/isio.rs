//! ImageStreamIO streams in `list`, `info`, `rm` and `chmod`: the files `NAME.im.shm` of
//! `$MILK_SHM_DIR` (default `/milk/shm`), named `isio:NAME`. They are opened read-only, and
//! nothing in them is written (no semaphore is claimed) by a look.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use ipcmem::array::ElementType;
use ipcmem::isio::{self, Dir, KeywordValue, Metadata, Stream};
use ipcmem::stream::FrameInfo;
use serde::Serialize;

use crate::stream::{FrameSink, FrameSource};

use crate::report::{compact_size, ArrayJson, ObjectJson};
use crate::users::Users;

/// What names a stream on the command line: `isio:NAME`.
pub const PREFIX: &str = "isio:";

/// One stream found in the directory, with what `list` shows of it.
pub struct Entry {
    pub name: String,
    pub file: std::fs::Metadata,
    /// The stream's metadata, or why it could not be read.
    pub metadata: Result<Metadata, ipcmem::Error>,
}

/// The streams of `$MILK_SHM_DIR`; none if the directory does not exist.
pub fn entries() -> ipcmem::Result<Vec<Entry>> {
    let dir = Dir::from_env();
    let names = match dir.list() {
        Ok(names) => names,
        Err(ipcmem::Error::NotFound { .. }) => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    Ok(names.into_iter().filter_map(|name| entry(&dir, name)).collect())
}

/// The stream `name`, if its file is still there.
fn entry(dir: &Dir, name: String) -> Option<Entry> {
    let file = std::fs::metadata(dir.file(&name).ok()?).ok()?;
    let metadata = dir.open_readonly(&name).and_then(|stream| stream.metadata());
    Some(Entry { name, file, metadata })
}

/// The row of `list` for a stream, in the columns of the table.
pub fn row(entry: &Entry, users: &mut Users) -> [String; 9] {
    let uid = entry.file.uid();
    [
        "isio".to_owned(),
        format!("{PREFIX}{}", entry.name),
        "-".to_owned(),
        compact_size(entry.file.size()),
        format!("{:04o}", entry.file.permissions().mode() & 0o777),
        users.name(uid).unwrap_or_else(|| uid.to_string()),
        "-".to_owned(),
        entry.metadata.as_ref().map_or_else(|_| "-".to_owned(), |m| m.creator_pid.to_string()),
        status(entry),
    ]
}

/// STATUS: `f32 512x512 cnt0=N` (and `circular`), `unreadable` for a file we may not read,
/// `invalid` for one that is no stream.
fn status(entry: &Entry) -> String {
    match &entry.metadata {
        Ok(m) => {
            let circular = if m.is_circular() { " circular" } else { "" };
            format!("{} {} cnt0={}{circular}", m.datatype, dims_text(m.dims()), m.cnt0)
        }
        Err(ipcmem::Error::PermissionDenied { .. }) => "unreadable".to_owned(),
        Err(_) => "invalid".to_owned(),
    }
}

fn dims_text(dims: &[u32]) -> String {
    dims.iter().map(u32::to_string).collect::<Vec<_>>().join("x")
}

/// The JSON of a stream in `list --json`: the fields of every object, and `isio`.
pub fn object_json(entry: &Entry, users: &mut Users) -> ObjectJson {
    let mut json = ObjectJson::file(
        "isio",
        &entry.name,
        format!("{PREFIX}{}", entry.name),
        &entry.file,
        entry.metadata.as_ref().ok().map(|m| m.creator_pid),
        users,
    );
    json.array = entry
        .metadata
        .as_ref()
        .ok()
        .map(|m| ArrayJson { element: m.datatype.name(), dims: m.dims().iter().map(|&d| d as usize).collect() });
    json.isio = Some(match &entry.metadata {
        Ok(m) => IsioSummary { cnt0: Some(m.cnt0), circular: Some(m.is_circular()), error: None },
        Err(error) => IsioSummary { cnt0: None, circular: None, error: Some(error.to_string()) },
    });
    json
}

/// What `list --json` adds for a stream.
#[derive(Debug, Serialize)]
pub struct IsioSummary {
    pub cnt0: Option<u64>,
    pub circular: Option<bool>,
    /// Why the file is not a valid stream, `null` if it is.
    pub error: Option<String>,
}

/// All that `info isio:NAME` shows.
#[derive(Debug, Serialize)]
pub struct InfoJson {
    pub object: String,
    pub kind: &'static str,
    pub path: String,
    pub size: u64,
    pub mode: String,
    pub uid: u32,
    pub user: Option<String>,
    pub gid: u32,
    pub mtime: i64,
    pub ctime: i64,
    pub metadata: MetadataJson,
    pub keywords: Vec<KeywordJson>,
    pub semaphores: Vec<SemaphoreJson>,
}

/// The metadata, field by field (`docs/isio-layout.md`).
#[derive(Debug, Serialize)]
pub struct MetadataJson {
    pub version: &'static str,
    pub name: String,
    pub naxis: u8,
    pub size: [u32; 3],
    pub nelement: u64,
    pub datatype: &'static str,
    pub datatype_code: u8,
    pub imagetype: u64,
    pub circular: bool,
    pub frame_bytes: usize,
    pub creation_time: String,
    pub last_access_time: String,
    pub atime: String,
    pub write_time: String,
    pub creator_pid: i32,
    pub owner_pid: i32,
    pub inode: u64,
    pub location: i8,
    pub shared: u8,
    pub status: u8,
    pub flag: u64,
    pub logflag: u8,
    pub cnt0: u64,
    pub cnt1: u64,
    pub cnt2: u64,
    pub write: bool,
    pub nbkw: u16,
    pub nbsem: u16,
    pub nbproctrace: u16,
    pub cb_size: u32,
    pub cb_index: u32,
    pub cb_cycle: u64,
    pub data_bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct KeywordJson {
    pub slot: usize,
    pub name: String,
    /// `"L"`, `"D"`, `"S"`, or the letter found.
    #[serde(rename = "type")]
    pub kind: String,
    pub value: serde_json::Value,
    pub comment: String,
    pub cnt: u64,
}

#[derive(Debug, Serialize)]
pub struct SemaphoreJson {
    pub index: usize,
    pub value: u32,
    pub reader_pid: i32,
    pub writer_pid: i32,
    pub ctrl: u32,
    pub status: u32,
}

/// Reads everything `info` shows of stream `name`.
pub fn info(name: &str) -> ipcmem::Result<InfoJson> {
    let dir = Dir::from_env();
    let stream = dir.open_readonly(name)?;
    let path = stream.path().to_owned();
    let file = std::fs::metadata(&path).map_err(|error| ipcmem::Error::InvalidArgument {
        object: format!("{PREFIX}{name}"),
        reason: format!("{}: {error}", path.display()),
    })?;
    let m = stream.metadata()?;
    let mut users = Users::default();
    Ok(InfoJson {
        object: format!("{PREFIX}{name}"),
        kind: "isio",
        path: path.display().to_string(),
        size: file.size(),
        mode: format!("{:04o}", file.permissions().mode() & 0o777),
        uid: file.uid(),
        user: users.name(file.uid()),
        gid: file.gid(),
        mtime: file.mtime(),
        ctime: file.ctime(),
        metadata: metadata_json(&stream, &m),
        keywords: stream.keywords()?.into_iter().map(keyword_json).collect(),
        semaphores: stream
            .semaphores()?
            .into_iter()
            .map(|s| SemaphoreJson {
                index: s.index,
                value: s.value,
                reader_pid: s.reader_pid,
                writer_pid: s.writer_pid,
                ctrl: s.ctrl,
                status: s.status,
            })
            .collect(),
    })
}

fn metadata_json(stream: &Stream, m: &Metadata) -> MetadataJson {
    MetadataJson {
        version: isio::layout::VERSION,
        name: m.name.clone(),
        naxis: m.naxis,
        size: m.size,
        nelement: m.nelement,
        datatype: m.datatype.name(),
        datatype_code: m.datatype.code(),
        imagetype: m.imagetype,
        circular: m.is_circular(),
        frame_bytes: stream.frame_len(),
        creation_time: m.creation_time.to_string(),
        last_access_time: m.last_access_time.to_string(),
        atime: m.atime.to_string(),
        write_time: m.write_time.to_string(),
        creator_pid: m.creator_pid,
        owner_pid: m.owner_pid,
        inode: m.inode,
        location: m.location,
        shared: m.shared,
        status: m.status,
        flag: m.flag,
        logflag: m.logflag,
        cnt0: m.cnt0,
        cnt1: m.cnt1,
        cnt2: m.cnt2,
        write: m.write,
        nbkw: m.keywords,
        nbsem: m.semaphores,
        nbproctrace: m.proc_traces,
        cb_size: m.cb_size,
        cb_index: m.cb_index,
        cb_cycle: m.cb_cycle,
        data_bytes: m.data_bytes,
    }
}

fn keyword_json(k: isio::Keyword) -> KeywordJson {
    let (kind, value) = match &k.value {
        KeywordValue::Long(v) => ("L".to_owned(), serde_json::Value::from(*v)),
        KeywordValue::Double(v) => ("D".to_owned(), serde_json::Value::from(*v)),
        KeywordValue::String(s) => ("S".to_owned(), serde_json::Value::from(s.as_str())),
        KeywordValue::Other { kind, raw } => (
            char::from(*kind).to_string(),
            serde_json::Value::from(raw.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().concat()),
        ),
    };
    KeywordJson { slot: k.slot, name: k.name, kind, value, comment: k.comment, cnt: k.cnt }
}

/// The lines of `info isio:NAME`.
pub fn info_lines(info: &InfoJson) -> Vec<String> {
    let m = &info.metadata;
    let shown = |v: Option<&String>| v.cloned().unwrap_or_else(|| "-".to_owned());
    let dims = dims_text(&m.size[..usize::from(m.naxis.min(3))]);
    let fields: Vec<(&str, String)> = vec![
        ("object", info.object.clone()),
        ("kind", info.kind.to_owned()),
        ("path", info.path.clone()),
        ("size", format!("{} ({})", info.size, compact_size(info.size))),
        ("mode", info.mode.clone()),
        ("uid", info.uid.to_string()),
        ("user", shown(info.user.as_ref())),
        ("gid", info.gid.to_string()),
        ("version", m.version.to_owned()),
        ("name", m.name.clone()),
        ("datatype", format!("{} (code {})", m.datatype, m.datatype_code)),
        ("dims", format!("{dims} (naxis {}, nelement {})", m.naxis, m.nelement)),
        ("imagetype", format!("{:#x}{}", m.imagetype, if m.circular { " (circular buffer)" } else { "" })),
        ("frame_bytes", m.frame_bytes.to_string()),
        ("cnt0", m.cnt0.to_string()),
        ("cnt1", m.cnt1.to_string()),
        ("cnt2", m.cnt2.to_string()),
        ("write", m.write.to_string()),
        ("creation_time", m.creation_time.clone()),
        ("last_access_time", m.last_access_time.clone()),
        ("atime", m.atime.clone()),
        ("write_time", m.write_time.clone()),
        ("creator_pid", m.creator_pid.to_string()),
        ("owner_pid", m.owner_pid.to_string()),
        ("inode", m.inode.to_string()),
        ("location", m.location.to_string()),
        ("flag", format!("{:#x}", m.flag)),
        ("status", m.status.to_string()),
        ("logflag", m.logflag.to_string()),
        ("nbkw", m.nbkw.to_string()),
        ("nbsem", m.nbsem.to_string()),
        ("nbproctrace", m.nbproctrace.to_string()),
        ("cb_size", m.cb_size.to_string()),
        ("data_bytes", m.data_bytes.to_string()),
    ];
    let width = fields.iter().map(|(field, _)| field.len()).max().unwrap_or(0);
    let mut lines: Vec<String> = fields.iter().map(|(field, value)| format!("{field:<width$}  {value}")).collect();
    lines.push(format!("keywords ({} in use of {})", info.keywords.len(), m.nbkw));
    for k in &info.keywords {
        lines.push(format!("  [{}] {} {} = {}  // {} (cnt {})", k.slot, k.kind, k.name, k.value, k.comment, k.cnt));
    }
    lines.push(format!("semaphores ({})", info.semaphores.len()));
    for s in &info.semaphores {
        lines.push(format!(
            "  [{}] value={} reader_pid={} writer_pid={} ctrl={:#x} status={:#x}",
            s.index, s.value, s.reader_pid, s.writer_pid, s.ctrl, s.status
        ));
    }
    lines
}

/// Removes stream `name` (its file).
pub fn remove(name: &str) -> ipcmem::Result<()> {
    Dir::from_env().remove(name)
}

/// Sets the permission bits of stream `name`'s file.
pub fn chmod(name: &str, mode: u32) -> ipcmem::Result<()> {
    let path = Dir::from_env().file(name)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).map_err(|error| {
        let object = format!("{PREFIX}{name}");
        match error.kind() {
            std::io::ErrorKind::NotFound => ipcmem::Error::NotFound { object, hint: None },
            std::io::ErrorKind::PermissionDenied => ipcmem::Error::PermissionDenied { object, access: "chmod" },
            _ => ipcmem::Error::InvalidArgument { object, reason: format!("chmod {}: {error}", path.display()) },
        }
    })
}

/// `stream watch isio:NAME`: a claimed semaphore of the stream, as milk's readers wait.
pub struct Source {
    follower: isio::Follower,
    element: ElementType,
}

/// `stream publish isio:NAME`: the stream, written as ImageStreamIO's writers do.
pub struct Sink {
    stream: Stream,
    element: ElementType,
}

/// The element type of `stream`, which `watch` and `publish` need for the test pattern.
fn element_of(stream: &Stream) -> ipcmem::Result<ElementType> {
    stream.datatype().element_type().ok_or_else(|| ipcmem::Error::InvalidArgument {
        object: format!("{PREFIX}{}", stream.name()),
        reason: "a half-precision (f16) stream: stream watch and publish take the 12 types of ipcmem streams".into(),
    })
}

/// Opens stream `name` for `watch`, waiting up to `timeout` for it to appear; claims a
/// semaphore. `Ok(None)` if it did not appear in time.
pub fn open_source(name: &str, timeout: Duration) -> ipcmem::Result<Option<Source>> {
    let stream = match Dir::from_env().open_wait(name, timeout) {
        Ok(stream) => stream,
        Err(ipcmem::Error::NotFound { .. }) => return Ok(None),
        Err(error) => return Err(error),
    };
    let element = element_of(&stream)?;
    Ok(Some(Source { follower: isio::Follower::new(stream.reader()?), element }))
}

impl FrameSource for Source {
    fn element(&self) -> ElementType {
        self.element
    }

    fn frame_bytes(&self) -> usize {
        self.follower.reader().stream().frame_len()
    }

    /// The next frame newer than the last one read (see [`isio::Follower`]).
    fn next_frame(&mut self, buf: &mut [u8], timeout: Duration) -> ipcmem::Result<Option<FrameInfo>> {
        self.follower.next_into(buf, timeout)
    }
}

/// Opens stream `name` for `publish`; with `create` (element type, frame dims, slots), makes it
/// first if it does not exist: a plain stream of the frame dims for 1 slot, else a circular
/// buffer of `slots` frames (frame dims of 1 or 2 axes), with `mode`.
pub fn open_sink(name: &str, create: Option<(ElementType, &[usize], usize)>, mode: u32) -> ipcmem::Result<Sink> {
    let dir = Dir::from_env();
    let stream =
        match (dir.open(name), create) {
            (Ok(stream), _) => stream,
            (Err(ipcmem::Error::NotFound { .. }), Some((element, dims, slots))) => {
                let object = format!("{PREFIX}{name}");
                let mut axes: Vec<u32> =
                    dims.iter().map(|&d| u32::try_from(d)).collect::<Result<_, _>>().map_err(|_| {
                        ipcmem::Error::InvalidArgument { object: object.clone(), reason: "an axis above 2^32-1".into() }
                    })?;
                if slots > 1 {
                    axes.push(u32::try_from(slots).map_err(|_| ipcmem::Error::InvalidArgument {
                        object,
                        reason: "more than 2^32-1 slots".into(),
                    })?);
                }
                let spec = isio::StreamSpec::new(name, element.into(), &axes).circular(slots > 1);
                let stream = dir.create(&spec)?;
                chmod(name, mode)?;
                stream
            }
            (Err(error), _) => return Err(error),
        };
    let element = element_of(&stream)?;
    Ok(Sink { stream, element })
}

impl FrameSink for Sink {
    fn element(&self) -> ElementType {
        self.element
    }

    fn frame_bytes(&self) -> usize {
        self.stream.frame_len()
    }

    fn next_serial(&self) -> u64 {
        self.stream.cnt0().unwrap_or(0) + 1
    }

    fn publish(&mut self, frame: &[u8]) -> ipcmem::Result<u64> {
        Ok(self.stream.write_frame(frame)?.cnt0)
    }
}
