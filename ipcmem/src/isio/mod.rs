//! ImageStreamIO streams: the shared-memory frame streams of milk and cacao (`NAME.im.shm` in
//! `$MILK_SHM_DIR`, default `/milk/shm`), read, waited on, written and made byte-compatibly
//! with ImageStreamIO 2.00 as it is built by default (no CUDA, no `DAO_COMPAT`, no write
//! history).
//!
//! A stream file holds its metadata (384 bytes: name, axes, datatype, counters, times), the
//! data, the keywords, process-shared `sem_t` semaphores (one per reader), the pids of readers
//! and writers, and for a 3-D circular buffer the counter and times of each slice. The layout
//! is in `docs/isio-layout.md` and in [`layout`].
//!
//! ```
//! use std::time::Duration;
//! use ipcmem::isio::{DataType, Dir, StreamSpec};
//!
//! // Tests and examples use their own directory; programs use Dir::from_env() ($MILK_SHM_DIR).
//! let path = format!("/dev/shm/ipcmem-doc-isio-{}", std::process::id());
//! std::fs::create_dir_all(&path)?;
//! let dir = Dir::new(&path);
//!
//! let stream = dir.create(&StreamSpec::new("wfs", DataType::F32, &[4, 2]))?;
//! let reader = dir.open("wfs")?.reader()?;          // claims a semaphore, as milk readers do
//! let frame: Vec<u8> = (0..8_u32).flat_map(|i| (i as f32).to_ne_bytes()).collect();
//! stream.write_frame(&frame)?;                       // write flag, data, cnt0, times, posts
//! assert!(reader.wait_timeout(Duration::from_secs(1))?);
//! let mut out = vec![0; stream.frame_len()];
//! let info = reader.stream().read_frame(&mut out)?;  // checked against concurrent writes
//! assert_eq!((info.cnt0, out), (1, frame));
//! # drop(reader); dir.remove("wfs")?; std::fs::remove_dir(&path)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! What the format cannot guarantee: ImageStreamIO's writers set `write`, copy, increment
//! `cnt0` and clear `write` with plain stores and no memory barriers, so a C compiler may
//! reorder them. A reader that finds `write` clear and `cnt0` unchanged before and after its
//! copy (as [`Stream::read_frame`] checks) has a consistent frame from a writer that keeps the
//! order (ipcmem's does, with release fences); from one that does not, a torn frame is
//! possible, however unlikely. A writer that dies while writing leaves `write` set for good.

use std::fmt;
use std::str::FromStr;

use crate::array::ElementType;
use crate::error::{Error, Result};

pub mod layout;
mod map;
mod stream;

pub use layout::{parse_metadata, Field, Layout, LayoutError, Metadata, Timespec};
pub use stream::{
    check_name, Dir, Follower, FrameInfo, Keyword, KeywordValue, Reader, SemaphoreState, Stream, StreamSpec,
};

/// The directory of streams when `$MILK_SHM_DIR` is not set (`SHAREDMEMDIR`).
pub const DEFAULT_DIR: &str = "/milk/shm";
/// The file name suffix of a stream: `NAME.im.shm`.
pub const SUFFIX: &str = ".im.shm";
/// A writer posts a semaphore only while its value is below this (`SEMAPHORE_MAXVAL`).
pub const SEMAPHORE_MAXVAL: u32 = 10;
/// The number of semaphores of a new stream (`IMAGE_NB_SEMAPHORE`).
pub const DEFAULT_SEMAPHORES: u16 = 10;

/// The element type of a stream: the 13 datatype codes of ImageStreamIO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DataType {
    /// `u8`, code 1.
    U8 = 1,
    /// `i8`, code 2.
    I8 = 2,
    /// `u16`, code 3.
    U16 = 3,
    /// `i16`, code 4.
    I16 = 4,
    /// `u32`, code 5.
    U32 = 5,
    /// `i32`, code 6.
    I32 = 6,
    /// `u64`, code 7.
    U64 = 7,
    /// `i64`, code 8.
    I64 = 8,
    /// `f32`, code 9.
    F32 = 9,
    /// `f64`, code 10.
    F64 = 10,
    /// A complex of two `f32` (re, im), code 11.
    C32 = 11,
    /// A complex of two `f64` (re, im), code 12.
    C64 = 12,
    /// IEEE 754 half precision, code 13: ipcmem hands its elements out as raw `u16` bits.
    F16 = 13,
}

impl DataType {
    /// The 13 types, in the order of their codes.
    pub const ALL: [DataType; 13] = [
        Self::U8,
        Self::I8,
        Self::U16,
        Self::I16,
        Self::U32,
        Self::I32,
        Self::U64,
        Self::I64,
        Self::F32,
        Self::F64,
        Self::C32,
        Self::C64,
        Self::F16,
    ];

    /// The code stored in the metadata (`_DATATYPE_*`).
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The type of a code; `None` for 0 and codes past 13.
    pub fn from_code(code: u8) -> Option<DataType> {
        Self::ALL.get(usize::from(code).checked_sub(1)?).copied()
    }

    /// The bytes of one element.
    pub const fn size(self) -> usize {
        match self {
            Self::U8 | Self::I8 => 1,
            Self::U16 | Self::I16 | Self::F16 => 2,
            Self::U32 | Self::I32 | Self::F32 => 4,
            Self::U64 | Self::I64 | Self::F64 | Self::C32 => 8,
            Self::C64 => 16,
        }
    }

    /// The name: `"u8"`, …, `"f64"`, `"c32"`, `"c64"`, `"f16"` (the names of
    /// [`crate::array::ElementType`], plus `f16`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::U8 => "u8",
            Self::I8 => "i8",
            Self::U16 => "u16",
            Self::I16 => "i16",
            Self::U32 => "u32",
            Self::I32 => "i32",
            Self::U64 => "u64",
            Self::I64 => "i64",
            Self::F32 => "f32",
            Self::F64 => "f64",
            Self::C32 => "c32",
            Self::C64 => "c64",
            Self::F16 => "f16",
        }
    }
}

impl DataType {
    /// The element type of [`crate::array`] and [`crate::stream`] with the same layout; `None`
    /// for half precision, which they lack.
    pub const fn element_type(self) -> Option<ElementType> {
        Some(match self {
            Self::U8 => ElementType::U8,
            Self::I8 => ElementType::I8,
            Self::U16 => ElementType::U16,
            Self::I16 => ElementType::I16,
            Self::U32 => ElementType::U32,
            Self::I32 => ElementType::I32,
            Self::U64 => ElementType::U64,
            Self::I64 => ElementType::I64,
            Self::F32 => ElementType::F32,
            Self::F64 => ElementType::F64,
            Self::C32 => ElementType::C32,
            Self::C64 => ElementType::C64,
            Self::F16 => return None,
        })
    }
}

impl From<ElementType> for DataType {
    fn from(element: ElementType) -> DataType {
        match element {
            ElementType::U8 => Self::U8,
            ElementType::I8 => Self::I8,
            ElementType::U16 => Self::U16,
            ElementType::I16 => Self::I16,
            ElementType::U32 => Self::U32,
            ElementType::I32 => Self::I32,
            ElementType::U64 => Self::U64,
            ElementType::I64 => Self::I64,
            ElementType::F32 => Self::F32,
            ElementType::F64 => Self::F64,
            ElementType::C32 => Self::C32,
            ElementType::C64 => Self::C64,
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DataType {
    type Err = Error;

    /// Parses a name as [`name`](DataType::name) gives it.
    fn from_str(text: &str) -> Result<DataType> {
        Self::ALL.into_iter().find(|t| t.name() == text).ok_or_else(|| Error::InvalidArgument {
            object: text.to_owned(),
            reason: "an ImageStreamIO datatype is one of u8 i8 u16 i16 u32 i32 u64 i64 f32 f64 c32 c64 f16".into(),
        })
    }
}
