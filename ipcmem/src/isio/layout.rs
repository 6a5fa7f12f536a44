//! The byte layout of an ImageStreamIO 2.00 file, as `#[repr(C)]` structures, and the checked
//! parser of its metadata (see `docs/isio-layout.md` for the same layout in tables).
//!
//! The parser is a pure function over the first [`METADATA_SIZE`] bytes and the file's length:
//! every size is computed with checked arithmetic, and any field that breaks the format, or a
//! file whose length is not the one the metadata implies, gives a [`LayoutError`].

use std::fmt;
use std::mem::offset_of;

use super::DataType;

/// The version string of the layout (`IMAGESTRUCT_VERSION`).
pub const VERSION: &str = "2.00";
/// The bytes of the metadata at the start of the file.
pub const METADATA_SIZE: usize = size_of::<MetadataRepr>();
/// The bytes of one keyword.
pub const KEYWORD_SIZE: usize = size_of::<KeywordRepr>();
/// The bytes of one process trace entry.
pub const PROC_TRACE_SIZE: usize = size_of::<ProcTraceRepr>();
/// The bytes of one entry of the fast circular buffer's metadata.
pub const CB_FRAME_SIZE: usize = size_of::<CbFrameRepr>();
/// The bytes of a `sem_t` of glibc.
pub const SEM_SIZE: usize = size_of::<libc::sem_t>();
/// The bytes of a `struct timespec`.
pub const TIMESPEC_SIZE: usize = size_of::<TimespecRepr>();
/// The longest stream name, in bytes: the metadata's 80 bytes hold it and its NUL.
pub const NAME_MAX: usize = 79;
/// The bytes of a keyword's name, and of a string value (no NUL needed when full).
pub const KEYWORD_NAME_LEN: usize = 16;
/// The bytes of a keyword's comment.
pub const KEYWORD_COMMENT_LEN: usize = 80;
/// How many process trace entries ImageStreamIO gives a new stream (`IMAGE_NB_PROCTRACE`).
pub const PROC_TRACES: u16 = 10;

/// `imagetype` bit: the z axis of a 3-D stream is a circular buffer of frames.
pub const CIRCULAR_BUFFER: u64 = 0x1;
/// `imagetype` bit: the data is a mathematical vector or matrix (ImageStreamIO's default).
pub const MATH_DATA: u64 = 0x2;
/// `imagetype` axis code: the z axis is time.
pub const ZAXIS_TEMPORAL: u64 = 0x2_0000;
/// The bits of `imagetype` that ImageStreamIO compares to tell a circular buffer.
pub const CIRCULAR_MASK: u64 = 0xF_000F;

const _: () = assert!(METADATA_SIZE == 384 && KEYWORD_SIZE == 128 && PROC_TRACE_SIZE == 64);
const _: () = assert!(CB_FRAME_SIZE == 48 && SEM_SIZE == 32 && TIMESPEC_SIZE == 16);

/// `struct timespec` on 64-bit Linux.
#[repr(C)]
pub(crate) struct TimespecRepr {
    tv_sec: i64,
    tv_nsec: i64,
}

/// `IMAGE_METADATA`: the first 384 bytes of the file. Field by field as in C; `repr(C)` puts
/// the same padding where C does (the zero-width bit-field before `cnt0` falls on an offset
/// that is already a multiple of 8).
#[repr(C)]
pub(crate) struct MetadataRepr {
    version: [u8; 32],
    name: [u8; 80],
    naxis: u8,
    size: [u32; 3],
    nelement: u64,
    datatype: u8,
    imagetype: u64,
    creationtime: TimespecRepr,
    lastaccesstime: TimespecRepr,
    atime: TimespecRepr,
    writetime: TimespecRepr,
    creator_pid: i32,
    owner_pid: i32,
    shared: u8,
    inode: u64,
    location: i8,
    status: u8,
    flag: u64,
    logflag: u8,
    sem: u16,
    nb_proc_trace: u16,
    cnt0: u64,
    cnt1: u64,
    cnt2: u64,
    write: u8,
    nb_kw: u16,
    cb_size: u32,
    cb_index: u32,
    cb_cycle: u64,
    imdatamemsize: u64,
    cuda_mem_handle: [u8; 64],
}

/// `IMAGE_KEYWORD`: name, type letter, an 8-byte aligned value, a write counter, a comment.
#[repr(C)]
pub(crate) struct KeywordRepr {
    name: [u8; 16],
    kind: u8,
    value: [u64; 2],
    cnt: u64,
    comment: [u8; 80],
}

/// `STREAM_PROC_TRACE`: who last triggered a write of the stream.
#[repr(C)]
pub(crate) struct ProcTraceRepr {
    triggermode: i32,
    procwrite_pid: i32,
    trigger_inode: u64,
    ts_procstart: TimespecRepr,
    ts_streamupdate: TimespecRepr,
    trigsemindex: i32,
    triggerstatus: i32,
    cnt0: u64,
}

/// `CBFRAMEMD`: one entry of the fast circular buffer's metadata.
#[repr(C)]
pub(crate) struct CbFrameRepr {
    cnt0: u64,
    cnt1: u64,
    atime: TimespecRepr,
    writetime: TimespecRepr,
}

/// Offsets of the metadata fields that the reader and writer touch.
pub(crate) mod md {
    use super::{offset_of, MetadataRepr};
    pub const VERSION: usize = offset_of!(MetadataRepr, version);
    pub const NAME: usize = offset_of!(MetadataRepr, name);
    pub const NAXIS: usize = offset_of!(MetadataRepr, naxis);
    pub const SIZE: usize = offset_of!(MetadataRepr, size);
    pub const NELEMENT: usize = offset_of!(MetadataRepr, nelement);
    pub const DATATYPE: usize = offset_of!(MetadataRepr, datatype);
    pub const IMAGETYPE: usize = offset_of!(MetadataRepr, imagetype);
    pub const CREATIONTIME: usize = offset_of!(MetadataRepr, creationtime);
    pub const LASTACCESSTIME: usize = offset_of!(MetadataRepr, lastaccesstime);
    pub const ATIME: usize = offset_of!(MetadataRepr, atime);
    pub const WRITETIME: usize = offset_of!(MetadataRepr, writetime);
    pub const CREATOR_PID: usize = offset_of!(MetadataRepr, creator_pid);
    pub const OWNER_PID: usize = offset_of!(MetadataRepr, owner_pid);
    pub const SHARED: usize = offset_of!(MetadataRepr, shared);
    pub const INODE: usize = offset_of!(MetadataRepr, inode);
    pub const LOCATION: usize = offset_of!(MetadataRepr, location);
    pub const STATUS: usize = offset_of!(MetadataRepr, status);
    pub const FLAG: usize = offset_of!(MetadataRepr, flag);
    pub const LOGFLAG: usize = offset_of!(MetadataRepr, logflag);
    pub const SEM: usize = offset_of!(MetadataRepr, sem);
    pub const NB_PROC_TRACE: usize = offset_of!(MetadataRepr, nb_proc_trace);
    pub const CNT0: usize = offset_of!(MetadataRepr, cnt0);
    pub const CNT1: usize = offset_of!(MetadataRepr, cnt1);
    pub const CNT2: usize = offset_of!(MetadataRepr, cnt2);
    pub const WRITE: usize = offset_of!(MetadataRepr, write);
    pub const NB_KW: usize = offset_of!(MetadataRepr, nb_kw);
    pub const CB_SIZE: usize = offset_of!(MetadataRepr, cb_size);
    pub const CB_INDEX: usize = offset_of!(MetadataRepr, cb_index);
    pub const CB_CYCLE: usize = offset_of!(MetadataRepr, cb_cycle);
    pub const IMDATAMEMSIZE: usize = offset_of!(MetadataRepr, imdatamemsize);
}

/// Offsets within a keyword.
pub(crate) mod kw {
    use super::{offset_of, KeywordRepr};
    pub const NAME: usize = offset_of!(KeywordRepr, name);
    pub const TYPE: usize = offset_of!(KeywordRepr, kind);
    pub const VALUE: usize = offset_of!(KeywordRepr, value);
    pub const CNT: usize = offset_of!(KeywordRepr, cnt);
    pub const COMMENT: usize = offset_of!(KeywordRepr, comment);
}

/// Offsets within a process trace entry.
pub(crate) mod trace {
    use super::{offset_of, ProcTraceRepr};
    pub const TRIGSEMINDEX: usize = offset_of!(ProcTraceRepr, trigsemindex);
}

/// One field of the layout: the C structure and field names, offset and size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// The C structure: `IMAGE_METADATA`, `IMAGE_KEYWORD`, `STREAM_PROC_TRACE`, `CBFRAMEMD`.
    pub structure: &'static str,
    /// The C field name (`"cnt0"`, `"NBkw"`, …); `"sizeof"` gives the size of the structure.
    pub name: &'static str,
    /// Offset in the structure.
    pub offset: usize,
    /// Size in bytes.
    pub size: usize,
}

macro_rules! field_table {
    ($structure:literal, $repr:ty, $($field:ident => $cname:literal),* $(,)?) => {{
        let mut table = Vec::new();
        $(
            table.push(Field {
                structure: $structure,
                name: $cname,
                offset: offset_of!($repr, $field),
                size: field_size(|r: &$repr| &r.$field),
            });
        )*
        table.push(Field { structure: $structure, name: "sizeof", offset: 0, size: size_of::<$repr>() });
        table
    }};
}

/// The size of the field a projection picks, from its type alone (nothing is called).
const fn field_size<R, F>(_projection: fn(&R) -> &F) -> usize {
    size_of::<F>()
}

/// Every field of the four structures of the file, with the names of `ImageStruct.h`: what a C
/// program prints with `offsetof` and `sizeof` must agree with this table.
pub fn fields() -> Vec<Field> {
    let mut table = field_table!("IMAGE_METADATA", MetadataRepr,
        version => "version", name => "name", naxis => "naxis", size => "size",
        nelement => "nelement", datatype => "datatype", imagetype => "imagetype",
        creationtime => "creationtime", lastaccesstime => "lastaccesstime", atime => "atime",
        writetime => "writetime", creator_pid => "creatorPID", owner_pid => "ownerPID",
        shared => "shared", inode => "inode", location => "location", status => "status",
        flag => "flag", logflag => "logflag", sem => "sem", nb_proc_trace => "NBproctrace",
        cnt0 => "cnt0", cnt1 => "cnt1", cnt2 => "cnt2", write => "write", nb_kw => "NBkw",
        cb_size => "CBsize", cb_index => "CBindex", cb_cycle => "CBcycle",
        imdatamemsize => "imdatamemsize", cuda_mem_handle => "cudaMemHandle",
    );
    table.extend(field_table!("IMAGE_KEYWORD", KeywordRepr,
        name => "name", kind => "type", value => "value", cnt => "cnt", comment => "comment",
    ));
    table.extend(field_table!("STREAM_PROC_TRACE", ProcTraceRepr,
        triggermode => "triggermode", procwrite_pid => "procwrite_PID", trigger_inode => "trigger_inode",
        ts_procstart => "ts_procstart", ts_streamupdate => "ts_streamupdate",
        trigsemindex => "trigsemindex", triggerstatus => "triggerstatus", cnt0 => "cnt0",
    ));
    table.extend(field_table!("CBFRAMEMD", CbFrameRepr,
        cnt0 => "cnt0", cnt1 => "cnt1", atime => "atime", writetime => "writetime",
    ));
    table
}

/// A time as ImageStreamIO stores it: a `struct timespec` read on `CLOCK_TAI` (seconds and
/// nanoseconds since 1970 in TAI, which equals `CLOCK_REALTIME` where the kernel's TAI offset is
/// not set).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timespec {
    /// Seconds.
    pub sec: i64,
    /// Nanoseconds, 0..1e9 when written by a well-behaved writer.
    pub nsec: i64,
}

impl Timespec {
    /// The time now on `CLOCK_TAI`, the clock of ImageStreamIO's writers.
    #[doc(alias = "clock_gettime")]
    pub fn now() -> Timespec {
        let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `now` is a valid, writable timespec; CLOCK_TAI exists since Linux 3.10, and
        // on an error `now` stays zero.
        unsafe { libc::clock_gettime(libc::CLOCK_TAI, &raw mut now) };
        Timespec { sec: now.tv_sec, nsec: now.tv_nsec }
    }

    /// The time in nanoseconds since the Unix epoch on `CLOCK_REALTIME`: `CLOCK_TAI` less the
    /// kernel's TAI offset now (whole seconds; 0 where it is not set); 0 before the epoch.
    pub fn unix_ns(self) -> u64 {
        let offset = tai_offset_seconds();
        let sec = u64::try_from(self.sec.saturating_sub(offset)).unwrap_or(0);
        let nsec = u64::try_from(self.nsec).unwrap_or(0).min(999_999_999);
        sec.saturating_mul(1_000_000_000).saturating_add(nsec)
    }

    /// The 16 bytes of the `struct timespec`.
    pub(crate) fn to_bytes(self) -> [u8; 16] {
        let mut bytes = [0; 16];
        bytes[..8].copy_from_slice(&self.sec.to_ne_bytes());
        bytes[8..].copy_from_slice(&self.nsec.to_ne_bytes());
        bytes
    }

    /// Reads a `struct timespec` from 16 bytes.
    pub(crate) fn from_bytes(bytes: [u8; 16]) -> Timespec {
        let (sec, nsec) = bytes.split_at(8);
        Timespec { sec: i64::from_ne_bytes(word(sec)), nsec: i64::from_ne_bytes(word(nsec)) }
    }
}

impl fmt::Display for Timespec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:09}", self.sec, self.nsec)
    }
}

/// `CLOCK_TAI` minus `CLOCK_REALTIME`, in whole seconds (37 where the kernel's offset is set
/// as NTP daemons set it, else 0).
fn tai_offset_seconds() -> i64 {
    let read = |clock| {
        let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `t` is a valid, writable timespec; both clocks exist on Linux.
        unsafe { libc::clock_gettime(clock, &raw mut t) };
        i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec)
    };
    let difference = read(libc::CLOCK_TAI) - read(libc::CLOCK_REALTIME);
    // Rounded to the nearest second: the two reads are nanoseconds apart.
    i64::try_from((difference + 500_000_000).div_euclid(1_000_000_000)).unwrap_or(0)
}

/// The metadata of a stream, as read from its first 384 bytes at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metadata {
    /// The name stored in the file (may differ from the file name for a symbolic link).
    pub name: String,
    /// The number of axes, 1 to 3.
    pub naxis: u8,
    /// The size along each axis; those past `naxis` are 0 in a stream made by ImageStreamIO.
    pub size: [u32; 3],
    /// The number of elements of the data (the product of the sizes of the `naxis` axes).
    pub nelement: u64,
    /// The element type.
    pub datatype: DataType,
    /// The stream's type bits ([`CIRCULAR_BUFFER`], [`MATH_DATA`], axis code in bits 16–19).
    pub imagetype: u64,
    /// When the stream was made.
    pub creation_time: Timespec,
    /// When it was last accessed (as its writers keep it).
    pub last_access_time: Timespec,
    /// When the data of the last frame was acquired.
    pub atime: Timespec,
    /// When the last frame was written.
    pub write_time: Timespec,
    /// The pid of the process that made the stream.
    pub creator_pid: i32,
    /// The pid of the process that owns it; 0 if unset.
    pub owner_pid: i32,
    /// 1: the stream is in shared memory (always so in a file).
    pub shared: u8,
    /// The inode of the file when it was made.
    pub inode: u64,
    /// -1: the data is in the file (CPU memory); 0 and up: on that GPU (not supported here).
    pub location: i8,
    /// The logging status.
    pub status: u8,
    /// Free-form flag bits.
    pub flag: u64,
    /// 1 to start logging.
    pub logflag: u8,
    /// The number of semaphores (`sem`).
    pub semaphores: u16,
    /// The number of process trace entries (`NBproctrace`).
    pub proc_traces: u16,
    /// The number of frames written.
    pub cnt0: u64,
    /// In a circular buffer, the slice written last.
    pub cnt1: u64,
    /// In event mode, the number of events.
    pub cnt2: u64,
    /// Whether a writer is writing a frame now.
    pub write: bool,
    /// The number of keyword slots (`NBkw`).
    pub keywords: u16,
    /// Frames in the fast circular buffer (`CBsize`), 0 if none.
    pub cb_size: u32,
    /// The index in the fast circular buffer.
    pub cb_index: u32,
    /// The cycles of the fast circular buffer.
    pub cb_cycle: u64,
    /// The bytes of the data (`imdatamemsize`).
    pub data_bytes: u64,
}

impl Metadata {
    /// The sizes of the `naxis` axes.
    pub fn dims(&self) -> &[u32] {
        &self.size[..usize::from(self.naxis.min(3))]
    }

    /// Whether the stream is a 3-D circular buffer of frames in time
    /// (`CIRCULAR_BUFFER | ZAXIS_TEMPORAL`).
    pub fn is_circular(&self) -> bool {
        self.imagetype & CIRCULAR_MASK == CIRCULAR_BUFFER | ZAXIS_TEMPORAL && self.naxis == 3
    }
}

/// Where each part of a stream's file lies, in bytes from its start.
///
/// Every part starts on a multiple of 8 (ImageStreamIO rounds each part's size up to 8), in
/// this order: metadata, data, keywords, semaphores, the log semaphore, reader pids, writer
/// pids, semaphore control words, semaphore status words, process traces, for a circular
/// buffer the per-slice acquisition times, write times and counters, the fast circular buffer's
/// metadata and data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Layout {
    /// The data (all slices).
    pub data: usize,
    /// The bytes of the data.
    pub data_len: usize,
    /// The bytes of one frame: the whole data, or one slice of a circular buffer.
    pub frame_len: usize,
    /// The slices of a circular buffer; 1 otherwise.
    pub slices: usize,
    /// Whether the per-slice arrays are there and frames are slices.
    pub circular: bool,
    /// The keywords.
    pub keywords: usize,
    /// The number of keywords.
    pub keyword_count: usize,
    /// The `sem_t` of each semaphore.
    pub semaphores: usize,
    /// The number of semaphores.
    pub semaphore_count: usize,
    /// The log semaphore.
    pub semlog: usize,
    /// The pid of each semaphore's reader (`semReadPID`).
    pub read_pids: usize,
    /// The pid of each semaphore's last poster (`semWritePID`).
    pub write_pids: usize,
    /// Control words (`semctrl`).
    pub sem_ctrl: usize,
    /// Status words (`semstatus`).
    pub sem_status: usize,
    /// Process trace entries.
    pub proc_traces: usize,
    /// The number of process trace entries.
    pub proc_trace_count: usize,
    /// Acquisition time of each slice (circular buffers; else where the next part starts).
    pub atimes: usize,
    /// Write time of each slice.
    pub write_times: usize,
    /// `cnt0` of each slice when it was written.
    pub counters: usize,
    /// The fast circular buffer's metadata.
    pub cb_frames: usize,
    /// The fast circular buffer's data.
    pub cb_data: usize,
    /// The size of the whole file.
    pub total: usize,
}

/// What is wrong with a stream's metadata or file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    /// The file is no larger than the metadata.
    #[error("the file has {len} bytes, not more than the {METADATA_SIZE} of the metadata")]
    TooSmall {
        /// The file's size.
        len: u64,
    },
    /// The caller's buffer holds less than the metadata.
    #[error("{have} bytes given, the metadata needs {METADATA_SIZE}")]
    ShortBuffer {
        /// The bytes given.
        have: usize,
    },
    /// The version string is not "2.00".
    #[error(
        "version {found:?} is not {VERSION:?} (another ImageStreamIO version, a stream being made, or not a stream)"
    )]
    BadVersion {
        /// The version found, up to its NUL.
        found: String,
    },
    /// The name in the metadata is empty.
    #[error("the name in the metadata is empty")]
    NoName,
    /// `naxis` is not 1, 2 or 3.
    #[error("naxis {naxis} is not 1, 2 or 3")]
    BadNaxis {
        /// The value found.
        naxis: u8,
    },
    /// An axis within `naxis` has size 0.
    #[error("axis {axis} has size 0")]
    ZeroSize {
        /// The axis (0-based).
        axis: usize,
    },
    /// The datatype code is not one of the 13.
    #[error("datatype code {code} is not one of 1..=13")]
    BadDatatype {
        /// The code found.
        code: u8,
    },
    /// The data is on a GPU (or `location` is below -1).
    #[error("location {location}: the data is not in the file (GPU streams are not supported)")]
    NotInFile {
        /// The location found.
        location: i8,
    },
    /// `shared` is not 1.
    #[error("shared is {shared}, not 1: not a shared stream")]
    NotShared {
        /// The value found.
        shared: u8,
    },
    /// A circular buffer without 3 axes.
    #[error("a circular buffer (imagetype {imagetype:#x}) needs 3 axes, not {naxis}")]
    CircularNot3D {
        /// The type bits.
        imagetype: u64,
        /// The number of axes.
        naxis: u8,
    },
    /// `nelement` is not the product of the sizes.
    #[error("nelement {found} is not {expected}, the product of the sizes")]
    BadElementCount {
        /// The value found.
        found: u64,
        /// The product of the sizes.
        expected: u64,
    },
    /// `imdatamemsize` is not `nelement` times the element size.
    #[error("imdatamemsize {found} is not {expected} (nelement times the element size)")]
    BadDataSize {
        /// The value found.
        found: u64,
        /// What it should be.
        expected: u64,
    },
    /// A size computed from the metadata does not fit in 64 bits (or in memory).
    #[error("the size of the {part} overflows")]
    Overflow {
        /// The part whose size overflows.
        part: &'static str,
    },
    /// The file's size is not the one the metadata implies.
    #[error(
        "the file has {found} bytes, the metadata implies {expected} ({data} bytes of data, {keywords} keywords, {semaphores} semaphores, {slices} slices, {cb} fast-buffer frames)"
    )]
    SizeMismatch {
        /// The file's size.
        found: u64,
        /// The size implied.
        expected: u64,
        /// Bytes of data.
        data: u64,
        /// `NBkw`.
        keywords: u16,
        /// `sem`.
        semaphores: u16,
        /// The slices of the per-slice arrays.
        slices: u64,
        /// `CBsize`.
        cb: u32,
    },
}

/// Reads the metadata of a stream whose file has `file_len` bytes and begins with `bytes` (at
/// least [`METADATA_SIZE`]), checking every field that sizes the file and the file's size.
///
/// The checks, in order: the file is larger than the metadata; the buffer holds the metadata;
/// the version is "2.00"; the name is not empty; `naxis` is 1–3; the sizes of those axes are
/// not 0; the datatype is one of the 13; the data is in the file (`location` -1); `shared` is 1;
/// a circular buffer has 3 axes; `nelement` is the product of the sizes; `imdatamemsize` is
/// `nelement` times the element size; no size overflows; the file's size is the sum of the
/// parts. A pure function: it allocates only the name.
pub fn parse_metadata(bytes: &[u8], file_len: u64) -> Result<(Metadata, Layout), LayoutError> {
    if file_len <= METADATA_SIZE as u64 {
        return Err(LayoutError::TooSmall { len: file_len });
    }
    let b: &[u8; METADATA_SIZE] = bytes
        .get(..METADATA_SIZE)
        .and_then(|b| b.try_into().ok())
        .ok_or(LayoutError::ShortBuffer { have: bytes.len() })?;
    let version = c_string(&b[md::VERSION..md::VERSION + 32]);
    if version != VERSION {
        return Err(LayoutError::BadVersion { found: version });
    }
    let metadata = read_fields(b)?;
    if metadata.name.is_empty() {
        return Err(LayoutError::NoName);
    }
    let layout = compute_layout(&metadata)?;
    if layout.total as u64 != file_len {
        return Err(LayoutError::SizeMismatch {
            found: file_len,
            expected: layout.total as u64,
            data: metadata.data_bytes,
            keywords: metadata.keywords,
            semaphores: metadata.semaphores,
            slices: u64::from(metadata.size[2]),
            cb: metadata.cb_size,
        });
    }
    Ok((metadata, layout))
}

/// Reads every field of the metadata; checks the datatype code, which has no value otherwise.
fn read_fields(b: &[u8; METADATA_SIZE]) -> Result<Metadata, LayoutError> {
    let u64_at = |offset: usize| u64::from_ne_bytes(word(&b[offset..offset + 8]));
    let u32_at = |offset: usize| u32::from_ne_bytes(word(&b[offset..offset + 4]));
    let u16_at = |offset: usize| u16::from_ne_bytes(word(&b[offset..offset + 2]));
    let time_at = |offset: usize| Timespec::from_bytes(word(&b[offset..offset + 16]));
    let code = b[md::DATATYPE];
    let datatype = DataType::from_code(code).ok_or(LayoutError::BadDatatype { code })?;
    Ok(Metadata {
        name: c_string(&b[md::NAME..md::NAME + 80]),
        naxis: b[md::NAXIS],
        size: [u32_at(md::SIZE), u32_at(md::SIZE + 4), u32_at(md::SIZE + 8)],
        nelement: u64_at(md::NELEMENT),
        datatype,
        imagetype: u64_at(md::IMAGETYPE),
        creation_time: time_at(md::CREATIONTIME),
        last_access_time: time_at(md::LASTACCESSTIME),
        atime: time_at(md::ATIME),
        write_time: time_at(md::WRITETIME),
        creator_pid: u32_at(md::CREATOR_PID).cast_signed(),
        owner_pid: u32_at(md::OWNER_PID).cast_signed(),
        shared: b[md::SHARED],
        inode: u64_at(md::INODE),
        location: b[md::LOCATION].cast_signed(),
        status: b[md::STATUS],
        flag: u64_at(md::FLAG),
        logflag: b[md::LOGFLAG],
        semaphores: u16_at(md::SEM),
        proc_traces: u16_at(md::NB_PROC_TRACE),
        cnt0: u64_at(md::CNT0),
        cnt1: u64_at(md::CNT1),
        cnt2: u64_at(md::CNT2),
        write: b[md::WRITE] != 0,
        keywords: u16_at(md::NB_KW),
        cb_size: u32_at(md::CB_SIZE),
        cb_index: u32_at(md::CB_INDEX),
        cb_cycle: u64_at(md::CB_CYCLE),
        data_bytes: u64_at(md::IMDATAMEMSIZE),
    })
}

/// Checks the fields that size the file and computes where each part lies, as ImageStreamIO's
/// `ImageStreamIO_image_sizing` does, with checked arithmetic.
pub(crate) fn compute_layout(m: &Metadata) -> Result<Layout, LayoutError> {
    if !(1..=3).contains(&m.naxis) {
        return Err(LayoutError::BadNaxis { naxis: m.naxis });
    }
    if let Some(axis) = m.dims().iter().position(|&size| size == 0) {
        return Err(LayoutError::ZeroSize { axis });
    }
    if m.location != -1 {
        return Err(LayoutError::NotInFile { location: m.location });
    }
    if m.shared != 1 {
        return Err(LayoutError::NotShared { shared: m.shared });
    }
    if m.imagetype & CIRCULAR_MASK == CIRCULAR_BUFFER && m.naxis != 3 {
        return Err(LayoutError::CircularNot3D { imagetype: m.imagetype, naxis: m.naxis });
    }
    // At most three u32 factors: the product fits in u128, then must fit in u64.
    let expected = m.dims().iter().fold(1_u128, |product, &size| product * u128::from(size));
    if u128::from(m.nelement) != expected {
        let expected = u64::try_from(expected).unwrap_or(u64::MAX);
        return Err(LayoutError::BadElementCount { found: m.nelement, expected });
    }
    let element = m.datatype.size() as u64;
    let data_len = m.nelement.checked_mul(element).ok_or(LayoutError::Overflow { part: "data" })?;
    if m.data_bytes != data_len {
        return Err(LayoutError::BadDataSize { found: m.data_bytes, expected: data_len });
    }
    // The per-slice arrays follow the type bits, sized by size[2], as ImageStreamIO does;
    // frames are slices only in a 3-D one.
    let arrays = m.imagetype & CIRCULAR_MASK == CIRCULAR_BUFFER | ZAXIS_TEMPORAL;
    let depth = if arrays { u64::from(m.size[2]) } else { 0 };
    let sems = u64::from(m.semaphores);
    let cb = u64::from(m.cb_size);

    let mut cursor = Cursor(0);
    let _metadata = cursor.part("metadata", METADATA_SIZE as u64, 1)?;
    let data = cursor.part("data", data_len, 1)?;
    let keywords = cursor.part("keywords", KEYWORD_SIZE as u64, u64::from(m.keywords))?;
    let semaphores = cursor.part("semaphores", SEM_SIZE as u64, sems)?;
    let semlog = cursor.part("log semaphore", SEM_SIZE as u64, 1)?;
    let read_pids = cursor.part("reader pids", 4, sems)?;
    let write_pids = cursor.part("writer pids", 4, sems)?;
    let sem_ctrl = cursor.part("semaphore control words", 4, sems)?;
    let sem_status = cursor.part("semaphore status words", 4, sems)?;
    let proc_traces = cursor.part("process traces", PROC_TRACE_SIZE as u64, u64::from(m.proc_traces))?;
    let atimes = cursor.part("acquisition times", TIMESPEC_SIZE as u64, depth)?;
    let write_times = cursor.part("write times", TIMESPEC_SIZE as u64, depth)?;
    let counters = cursor.part("slice counters", 8, depth)?;
    let cb_frames = cursor.part("fast circular buffer metadata", CB_FRAME_SIZE as u64, cb)?;
    let cb_data = cursor.part("fast circular buffer", data_len, cb)?;
    let total = cursor.0;

    let size = |value: u64, part| usize::try_from(value).map_err(|_| LayoutError::Overflow { part });
    let circular = m.is_circular();
    let slices = if circular { size(u64::from(m.size[2]), "slices")? } else { 1 };
    let data_len = size(data_len, "data")?;
    Ok(Layout {
        data: size(data, "data")?,
        data_len,
        frame_len: data_len / slices,
        slices,
        circular,
        keywords: size(keywords, "keywords")?,
        keyword_count: usize::from(m.keywords),
        semaphores: size(semaphores, "semaphores")?,
        semaphore_count: usize::from(m.semaphores),
        semlog: size(semlog, "log semaphore")?,
        read_pids: size(read_pids, "reader pids")?,
        write_pids: size(write_pids, "writer pids")?,
        sem_ctrl: size(sem_ctrl, "semaphore control words")?,
        sem_status: size(sem_status, "semaphore status words")?,
        proc_traces: size(proc_traces, "process traces")?,
        proc_trace_count: usize::from(m.proc_traces),
        atimes: size(atimes, "acquisition times")?,
        write_times: size(write_times, "write times")?,
        counters: size(counters, "slice counters")?,
        cb_frames: size(cb_frames, "fast circular buffer metadata")?,
        cb_data: size(cb_data, "fast circular buffer")?,
        total: size(total, "file")?,
    })
}

/// The running end of the parts of the file.
struct Cursor(u64);

impl Cursor {
    /// Places a part of `count` items of `item` bytes, rounded up to 8; returns its start.
    fn part(&mut self, part: &'static str, item: u64, count: u64) -> Result<u64, LayoutError> {
        let overflow = LayoutError::Overflow { part };
        let bytes = item.checked_mul(count).and_then(|b| b.checked_next_multiple_of(8)).ok_or(overflow.clone())?;
        let start = self.0;
        self.0 = start.checked_add(bytes).ok_or(overflow)?;
        Ok(start)
    }
}

/// The text of a C string field: the bytes up to the first NUL (or all), decoded lossily.
pub(crate) fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// The first `N` bytes of `bytes` as an array (the callers pass exactly `N`).
fn word<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

impl Metadata {
    /// Where each part of a file with this metadata lies, checking the fields that size it.
    pub fn layout(&self) -> Result<Layout, LayoutError> {
        compute_layout(self)
    }

    /// The 384 bytes of this metadata, version "2.00" included, as ImageStreamIO lays them out
    /// (padding zero; a name longer than 79 bytes is cut).
    pub fn encode(&self) -> [u8; METADATA_SIZE] {
        let mut b = [0_u8; METADATA_SIZE];
        let mut put = |offset: usize, bytes: &[u8]| b[offset..offset + bytes.len()].copy_from_slice(bytes);
        put(md::VERSION, VERSION.as_bytes());
        let name = self.name.as_bytes();
        put(md::NAME, &name[..name.len().min(NAME_MAX)]);
        put(md::NAXIS, &[self.naxis]);
        for (axis, size) in self.size.iter().enumerate() {
            put(md::SIZE + 4 * axis, &size.to_ne_bytes());
        }
        put(md::NELEMENT, &self.nelement.to_ne_bytes());
        put(md::DATATYPE, &[self.datatype.code()]);
        put(md::IMAGETYPE, &self.imagetype.to_ne_bytes());
        put(md::CREATIONTIME, &self.creation_time.to_bytes());
        put(md::LASTACCESSTIME, &self.last_access_time.to_bytes());
        put(md::ATIME, &self.atime.to_bytes());
        put(md::WRITETIME, &self.write_time.to_bytes());
        put(md::CREATOR_PID, &self.creator_pid.to_ne_bytes());
        put(md::OWNER_PID, &self.owner_pid.to_ne_bytes());
        put(md::SHARED, &[self.shared]);
        put(md::INODE, &self.inode.to_ne_bytes());
        put(md::LOCATION, &self.location.to_ne_bytes());
        put(md::STATUS, &[self.status]);
        put(md::FLAG, &self.flag.to_ne_bytes());
        put(md::LOGFLAG, &[self.logflag]);
        put(md::SEM, &self.semaphores.to_ne_bytes());
        put(md::NB_PROC_TRACE, &self.proc_traces.to_ne_bytes());
        put(md::CNT0, &self.cnt0.to_ne_bytes());
        put(md::CNT1, &self.cnt1.to_ne_bytes());
        put(md::CNT2, &self.cnt2.to_ne_bytes());
        put(md::WRITE, &[u8::from(self.write)]);
        put(md::NB_KW, &self.keywords.to_ne_bytes());
        put(md::CB_SIZE, &self.cb_size.to_ne_bytes());
        put(md::CB_INDEX, &self.cb_index.to_ne_bytes());
        put(md::CB_CYCLE, &self.cb_cycle.to_ne_bytes());
        put(md::IMDATAMEMSIZE, &self.data_bytes.to_ne_bytes());
        b
    }

    /// The metadata ImageStreamIO gives a new shared stream: `dims` (1 to 3 axes), `datatype`,
    /// `semaphores`, `keywords`, type bits `imagetype`, 10 process traces, counters and times 0.
    /// Sizes are not checked here: [`layout`](Self::layout) does.
    pub fn new_stream(
        name: &str,
        datatype: DataType,
        dims: &[u32],
        semaphores: u16,
        keywords: u16,
        imagetype: u64,
    ) -> Metadata {
        let mut size = [0_u32; 3];
        for (slot, dim) in size.iter_mut().zip(dims) {
            *slot = *dim;
        }
        let naxis = u8::try_from(dims.len()).unwrap_or(u8::MAX);
        let nelement = dims.iter().take(3).try_fold(1_u64, |n, &d| n.checked_mul(u64::from(d))).unwrap_or(u64::MAX);
        Metadata {
            name: name.to_owned(),
            naxis,
            size,
            nelement,
            datatype,
            imagetype,
            creation_time: Timespec::default(),
            last_access_time: Timespec::default(),
            atime: Timespec::default(),
            write_time: Timespec::default(),
            creator_pid: 0,
            owner_pid: 0,
            shared: 1,
            inode: 0,
            location: -1,
            status: 0,
            flag: 0,
            logflag: 0,
            semaphores,
            proc_traces: PROC_TRACES,
            cnt0: 0,
            cnt1: 0,
            cnt2: 0,
            write: false,
            keywords,
            cb_size: 0,
            cb_index: 0,
            cb_cycle: 0,
            data_bytes: nelement.saturating_mul(datatype.size() as u64),
        }
    }
}
