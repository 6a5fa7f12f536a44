//! Typed N-dimensional arrays in shared memory, in the layout "WA-1" of the Julia package
//! (`WrappedArray` of InterProcessCommunication.jl): a header at byte 0 tells the element type
//! and the dimensions, so that another process, Julia or Rust, attaches the array knowing only
//! the object's name or id.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `0x57412D31` ("WA-1"), u32 |
//! | 4 | 2 | element type code ([`ElementType::code`]), u16 |
//! | 6 | 2 | number of dimensions N, u16, at least 1 |
//! | 8 | 8 | data offset, i64: `roundup(16 + 8N, 64)` |
//! | 16 | 8N | the dimensions, i64 each, at least 1 |
//! | data offset | | the elements, column-major (first index fastest) |
//!
//! All fields are native-endian. ipcmem adds two things the Julia package lacks, without
//! changing the layout:
//! - **Complete before visible.** The magic is written last, with release ordering, and a POSIX
//!   object gets its name only once its header is complete. An opener that finds no magic yet
//!   (a System V segment being filled, or an array written by Julia, which publishes first)
//!   waits a bounded time ([`DEFAULT_WAIT`]) before it says [`Error::NotInitialised`].
//! - **A reader that trusts nothing.** Every field is checked, in checked arithmetic, against
//!   the object's size ([`parse_header`]): a header written by a crashed or hostile process
//!   gives [`Error::BadHeader`], never a panic, an access outside the object or an allocation
//!   sized by the header's word.
//!
//! ```
//! use ipcmem::array::{self, ElementType};
//! use ipcmem::SharedArray;
//!
//! let name = format!("/ipcmem-doc-array-{}", std::process::id());
//! let frame = SharedArray::<f32>::create(name.as_str(), &[640, 480])?; // volatile, mode 0o600
//! frame.set(&[10, 20], 1.5)?;
//!
//! // Another process knows only the name: it asks what the object holds, then opens it.
//! let header = array::inspect(name.as_str())?;
//! assert_eq!((header.element(), header.dims()), (ElementType::F32, &[640, 480][..]));
//! assert_eq!(header.to_string(), "f32 640x480");
//! let seen = SharedArray::<f32>::open_readonly(name.as_str())?;
//! assert_eq!(seen.get(&[10, 20])?, 1.5);
//!
//! // The wrong element type is refused, naming the stored one.
//! let wrong = SharedArray::<f64>::open(name.as_str()).unwrap_err();
//! assert!(wrong.to_string().contains("f32"));
//! # Ok::<(), ipcmem::Error>(())
//! ```
//!
//! | Julia (`IPC`) | ipcmem |
//! |---|---|
//! | `WrappedArray(id, T, dims; perms, volatile)` | [`SharedArray::create`], [`SharedArray::options`] |
//! | `WrappedArray(id; readonly)` | [`SharedArray::open`], [`SharedArray::open_readonly`], [`inspect`] |
//! | `read(mem, WrappedArrayHeader)`, `write(mem, WrappedArrayHeader, T, dims)` | [`parse_header`], [`Header::encode`] |

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::key::Id;
use crate::shm::{Holding, Outcome, Persistence, SharedMemory, ShmOptions};

pub use num_complex::{Complex32, Complex64};

#[cfg(feature = "ndarray")]
#[cfg_attr(docsrs, doc(cfg(feature = "ndarray")))]
pub use ndarray;

/// The magic number at byte 0 of a header: "WA-1" (wrapped array, version 1).
pub const MAGIC: u32 = 0x5741_2D31;

/// The bytes of the fixed part of a header: magic, type code, N, data offset.
pub const FIXED_HEADER_SIZE: usize = 16;

/// The alignment of the first element, and so the granularity of the data offset.
pub const DATA_ALIGN: usize = 64;

/// The most dimensions the layout can hold (N is a u16).
pub const MAX_DIMS: usize = u16::MAX as usize;

/// How long an opener waits, by default, for a header whose magic is not written yet.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(1);

/// The longest pause between two looks at an incomplete header.
const MAX_POLL: Duration = Duration::from_millis(10);

/// The element types of the layout, by their type codes 1 to 12.
///
/// Names are those of the `ipcmem` command: `i8` … `u64`, `f32`, `f64`, and `c32` / `c64` for
/// complex numbers of two `f32` / two `f64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ElementType {
    /// `i8`, code 1.
    I8,
    /// `u8`, code 2.
    U8,
    /// `i16`, code 3.
    I16,
    /// `u16`, code 4.
    U16,
    /// `i32`, code 5.
    I32,
    /// `u32`, code 6.
    U32,
    /// `i64`, code 7.
    I64,
    /// `u64`, code 8.
    U64,
    /// `f32`, code 9.
    F32,
    /// `f64`, code 10.
    F64,
    /// A complex of two `f32` ([`Complex32`]), code 11; `ComplexF32` in Julia.
    C32,
    /// A complex of two `f64` ([`Complex64`]), code 12; `ComplexF64` in Julia.
    C64,
}

impl ElementType {
    /// The twelve types, in the order of their codes.
    pub const ALL: [ElementType; 12] = [
        Self::I8,
        Self::U8,
        Self::I16,
        Self::U16,
        Self::I32,
        Self::U32,
        Self::I64,
        Self::U64,
        Self::F32,
        Self::F64,
        Self::C32,
        Self::C64,
    ];

    /// The type code of the header, 1 to 12.
    pub const fn code(self) -> u16 {
        self as u16 + 1
    }

    /// The type of a code, if the code is one of the layout's (1 to 12).
    pub fn from_code(code: u16) -> Option<ElementType> {
        Self::ALL.get(usize::from(code).checked_sub(1)?).copied()
    }

    /// The size of one element in bytes.
    pub const fn size(self) -> usize {
        match self {
            Self::I8 | Self::U8 => 1,
            Self::I16 | Self::U16 => 2,
            Self::I32 | Self::U32 | Self::F32 => 4,
            Self::I64 | Self::U64 | Self::F64 | Self::C32 => 8,
            Self::C64 => 16,
        }
    }

    /// The name: `"i8"`, …, `"f64"`, `"c32"`, `"c64"`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::I8 => "i8",
            Self::U8 => "u8",
            Self::I16 => "i16",
            Self::U16 => "u16",
            Self::I32 => "i32",
            Self::U32 => "u32",
            Self::I64 => "i64",
            Self::U64 => "u64",
            Self::F32 => "f32",
            Self::F64 => "f64",
            Self::C32 => "c32",
            Self::C64 => "c64",
        }
    }
}

impl fmt::Display for ElementType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ElementType {
    type Err = Error;

    /// Parses a name as [`name`](ElementType::name) gives it.
    fn from_str(text: &str) -> Result<ElementType> {
        Self::ALL.into_iter().find(|element| element.name() == text).ok_or_else(|| Error::InvalidArgument {
            object: text.to_owned(),
            reason: "an element type is one of i8 i16 i32 i64 u8 u16 u32 u64 f32 f64 c32 c64".into(),
        })
    }
}

mod sealed {
    /// Keeps [`super::Element`] to the twelve types of the layout; `Pod` lets the crate copy
    /// elements as bytes without `unsafe` (every bit pattern is a valid value, no padding).
    pub trait Sealed: bytemuck::Pod {}
}

/// A type that an array of the layout can hold: `i8` … `u64`, `f32`, `f64`, [`Complex32`],
/// [`Complex64`]. Sealed: the layout has these twelve and no others.
pub trait Element: sealed::Sealed + Send + Sync + PartialEq + fmt::Debug {
    /// The element type this Rust type stands for.
    const TYPE: ElementType;
}

macro_rules! elements {
    ($($rust:ty => $element:ident),* $(,)?) => {
        $(
            impl sealed::Sealed for $rust {}
            impl Element for $rust {
                const TYPE: ElementType = ElementType::$element;
            }
        )*
    };
}

elements! {
    i8 => I8, u8 => U8, i16 => I16, u16 => U16, i32 => I32, u32 => U32, i64 => I64, u64 => U64,
    f32 => F32, f64 => F64, Complex32 => C32, Complex64 => C64,
}

/// Why a header is refused: which check of the layout it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// The object is smaller than the fixed part of a header.
    #[error("the object has {len} bytes, fewer than the 16 of an array header")]
    TooSmall {
        /// The object's size.
        len: usize,
    },
    /// The first word is not the magic number; 0 while the creator is still writing.
    #[error("magic {found:#010x} is not {MAGIC:#010x} (\"WA-1\")")]
    BadMagic {
        /// The word found.
        found: u32,
    },
    /// The element type code is not one of the layout's.
    #[error("element type code {code} is not in 1..=12")]
    BadType {
        /// The code found.
        code: u16,
    },
    /// The number of dimensions is 0.
    #[error("the number of dimensions is 0 (at least 1 is needed)")]
    NoDimensions,
    /// More dimensions than the layout can hold (when making a header).
    #[error("{ndims} dimensions: the layout holds at most 65535")]
    TooManyDimensions {
        /// The number asked for.
        ndims: usize,
    },
    /// The data offset is not the one the layout gives for N dimensions.
    #[error("data offset {found} is not {expected}, the offset for {ndims} dimensions")]
    BadOffset {
        /// The offset found.
        found: i64,
        /// The offset of the layout.
        expected: usize,
        /// The number of dimensions.
        ndims: usize,
    },
    /// The list of dimensions runs past the end of the object.
    #[error("the {ndims} dimensions end at byte {end}, past the object's {len} bytes")]
    DimsPastEnd {
        /// The number of dimensions.
        ndims: usize,
        /// Where the list ends.
        end: usize,
        /// The object's size.
        len: usize,
    },
    /// A dimension is less than 1.
    #[error("dimension {index} is {value}: every dimension must be at least 1")]
    BadDimension {
        /// Which dimension, from 0.
        index: usize,
        /// Its value.
        value: i64,
    },
    /// The number of elements, or of bytes, does not fit in a machine word.
    #[error("dimensions {dims:?} of {element} elements overflow the address space")]
    Overflow {
        /// The element type.
        element: ElementType,
        /// The dimensions.
        dims: Vec<usize>,
    },
    /// The object is too small for the elements.
    #[error("the elements end at byte {end}, past the object's {len} bytes")]
    TooSmallForData {
        /// Where the elements end: data offset plus their size.
        end: usize,
        /// The object's size.
        len: usize,
    },
    /// The buffer given to [`parse_header`] is shorter than the header it describes.
    #[error("the buffer holds {have} bytes of a {need}-byte header")]
    ShortBuffer {
        /// The bytes given.
        have: usize,
        /// The bytes the header needs.
        need: usize,
    },
}

impl HeaderError {
    /// Whether the header may be one still being written: a field still zero where the layout
    /// needs a value. An opener waits a bounded time for such a header to complete; the Julia
    /// writer publishes the magic before the dimensions.
    pub fn may_be_incomplete(&self) -> bool {
        matches!(
            self,
            Self::BadMagic { found: 0 }
                | Self::BadType { code: 0 }
                | Self::NoDimensions
                | Self::BadOffset { found: 0, .. }
                | Self::BadDimension { value: 0, .. }
        )
    }
}

/// The data offset of the layout for `ndims` dimensions: `roundup(16 + 8 * ndims, 64)`; 64 for
/// up to 6 dimensions, 128 for up to 14.
pub const fn data_offset(ndims: usize) -> usize {
    (FIXED_HEADER_SIZE + 8 * ndims).div_ceil(DATA_ALIGN) * DATA_ALIGN
}

/// What a header says: the element type and the dimensions of an array, checked against each
/// other (the sizes fit in a machine word).
///
/// Its [`Display`](fmt::Display) is that of the `ipcmem list` table: `f32 640x480`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    element: ElementType,
    dims: Vec<usize>,
    /// The number of elements: the product of `dims`.
    len: usize,
    /// The bytes of the elements.
    data_size: usize,
}

impl Header {
    /// The header of a new array of `element` with `dims`: 1 to 65535 dimensions, each at least
    /// 1 and at most `i64::MAX`, whose object size fits in a machine word.
    pub fn new(element: ElementType, dims: &[usize]) -> Result<Header, HeaderError> {
        if dims.is_empty() {
            return Err(HeaderError::NoDimensions);
        }
        if dims.len() > MAX_DIMS {
            return Err(HeaderError::TooManyDimensions { ndims: dims.len() });
        }
        if let Some(index) = dims.iter().position(|&dim| dim == 0) {
            return Err(HeaderError::BadDimension { index, value: 0 });
        }
        if dims.iter().any(|&dim| i64::try_from(dim).is_err()) {
            // No object could be that large anyway.
            return Err(HeaderError::Overflow { element, dims: dims.to_vec() });
        }
        Header::sized(element, dims.to_vec())
    }

    /// The header with its sizes computed; fails if they overflow, or if the object would be
    /// larger than `isize::MAX`, the most any mapping can be.
    fn sized(element: ElementType, dims: Vec<usize>) -> Result<Header, HeaderError> {
        let sizes = dims.iter().try_fold(1_usize, |product, &dim| product.checked_mul(dim)).and_then(|len| {
            let data_size = len.checked_mul(element.size())?;
            let end = data_offset(dims.len()).checked_add(data_size)?;
            (isize::try_from(end).is_ok()).then_some((len, data_size))
        });
        match sizes {
            Some((len, data_size)) => Ok(Header { element, dims, len, data_size }),
            None => Err(HeaderError::Overflow { element, dims }),
        }
    }

    /// The element type.
    pub fn element(&self) -> ElementType {
        self.element
    }

    /// The dimensions, first (fastest varying) first.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// The number of dimensions.
    pub fn ndims(&self) -> usize {
        self.dims.len()
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always `false`: every dimension is at least 1.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where the elements start, in bytes from the start of the object.
    pub fn data_offset(&self) -> usize {
        data_offset(self.dims.len())
    }

    /// The bytes of the elements.
    pub fn data_size(&self) -> usize {
        self.data_size
    }

    /// The size of an object that holds exactly this array: data offset plus data size.
    pub fn object_size(&self) -> usize {
        // Cannot overflow: checked when the header was made.
        self.data_offset() + self.data_size
    }

    /// The bytes of the header as the layout lays them, up to the data offset (the padding
    /// zero), magic included.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = vec![0; self.data_offset()];
        bytes[0..4].copy_from_slice(&MAGIC.to_ne_bytes());
        bytes[4..6].copy_from_slice(&self.element.code().to_ne_bytes());
        // The conversions cannot fail: checked when the header was made.
        let ndims = u16::try_from(self.dims.len()).unwrap_or(u16::MAX);
        bytes[6..8].copy_from_slice(&ndims.to_ne_bytes());
        let offset = i64::try_from(self.data_offset()).unwrap_or(i64::MAX);
        bytes[8..16].copy_from_slice(&offset.to_ne_bytes());
        for (slot, &dim) in bytes[FIXED_HEADER_SIZE..].chunks_exact_mut(8).zip(&self.dims) {
            slot.copy_from_slice(&i64::try_from(dim).unwrap_or(i64::MAX).to_ne_bytes());
        }
        bytes
    }
}

impl fmt::Display for Header {
    /// `f32 640x480`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.element)?;
        for (i, dim) in self.dims.iter().enumerate() {
            if i > 0 {
                f.write_str("x")?;
            }
            write!(f, "{dim}")?;
        }
        Ok(())
    }
}

/// Reads the header at the start of an object of `object_len` bytes, whose first bytes are
/// `bytes` (the whole object, or at least its first `16 + 8 * N` bytes), checking every field.
///
/// The checks, in order: the object has at least 16 bytes; the magic; the type code is in
/// 1..=12; N is at least 1; the data offset is the layout's for N; the list of dimensions lies
/// within the object; every dimension is at least 1; the number of elements and of bytes fit
/// in a machine word; the object holds the elements. A pure function over the bytes: it
/// allocates only the list of dimensions, after checking that the list lies in `bytes`.
///
/// ```
/// use ipcmem::array::{parse_header, ElementType, Header, HeaderError};
/// let header = Header::new(ElementType::I16, &[2, 3])?;
/// let mut object = header.encode();
/// object.resize(header.object_size(), 0);
/// assert_eq!(parse_header(&object, object.len()), Ok(header));
///
/// object[4] = 13; // a type code past the table
/// assert_eq!(parse_header(&object, object.len()), Err(HeaderError::BadType { code: 13 }));
/// # Ok::<(), HeaderError>(())
/// ```
pub fn parse_header(bytes: &[u8], object_len: usize) -> Result<Header, HeaderError> {
    if object_len < FIXED_HEADER_SIZE {
        return Err(HeaderError::TooSmall { len: object_len });
    }
    let short = |need| HeaderError::ShortBuffer { have: bytes.len(), need };
    let fixed: &[u8; FIXED_HEADER_SIZE] =
        bytes.get(..FIXED_HEADER_SIZE).and_then(|b| b.try_into().ok()).ok_or_else(|| short(FIXED_HEADER_SIZE))?;
    let magic = u32::from_ne_bytes([fixed[0], fixed[1], fixed[2], fixed[3]]);
    if magic != MAGIC {
        return Err(HeaderError::BadMagic { found: magic });
    }
    let code = u16::from_ne_bytes([fixed[4], fixed[5]]);
    let element = ElementType::from_code(code).ok_or(HeaderError::BadType { code })?;
    let ndims = usize::from(u16::from_ne_bytes([fixed[6], fixed[7]]));
    if ndims == 0 {
        return Err(HeaderError::NoDimensions);
    }
    let offset = i64::from_ne_bytes(word(fixed, 8));
    let expected = data_offset(ndims);
    if usize::try_from(offset).ok() != Some(expected) {
        return Err(HeaderError::BadOffset { found: offset, expected, ndims });
    }
    // No overflow: ndims <= 65535.
    let end = FIXED_HEADER_SIZE + 8 * ndims;
    if end > object_len {
        return Err(HeaderError::DimsPastEnd { ndims, end, len: object_len });
    }
    let list = bytes.get(FIXED_HEADER_SIZE..end).ok_or_else(|| short(end))?;
    // Exactly N words, and N words lie in `bytes`: the allocation is bounded by the buffer.
    let mut dims = Vec::with_capacity(ndims);
    for (index, dim) in list.chunks_exact(8).enumerate() {
        let value = i64::from_ne_bytes(word(dim, 0));
        match usize::try_from(value) {
            Ok(dim) if dim >= 1 => dims.push(dim),
            _ => return Err(HeaderError::BadDimension { index, value }),
        }
    }
    let header = Header::sized(element, dims)?;
    if header.object_size() > object_len {
        return Err(HeaderError::TooSmallForData { end: header.object_size(), len: object_len });
    }
    Ok(header)
}

/// The 8 bytes at `at` of `bytes`, which the caller knows to be there.
fn word(bytes: &[u8], at: usize) -> [u8; 8] {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    word
}

/// Reads and checks the header of `shm` as it is now: the magic with an acquire load, then a
/// copy of the rest (so that a writer changing it meanwhile cannot make the checks lie).
fn read_header(shm: &SharedMemory) -> Result<Header> {
    let object_len = shm.len();
    let bad = |reason| Error::BadHeader { object: shm.id().to_string(), reason };
    if object_len < FIXED_HEADER_SIZE {
        return Err(bad(HeaderError::TooSmall { len: object_len }));
    }
    // A relaxed load and an acquire fence (all std allows through a read-only mapping): pairs
    // with the creator's release store of the magic, so the copy below sees every field
    // written before it.
    let magic = shm.load_u32(0, Ordering::Acquire)?;
    if magic != MAGIC {
        return Err(bad(HeaderError::BadMagic { found: magic }));
    }
    let mut fixed = [0; FIXED_HEADER_SIZE];
    shm.read_at(0, &mut fixed)?;
    let ndims = usize::from(u16::from_ne_bytes([fixed[6], fixed[7]]));
    // At most 524,296 bytes, and never past the object: the copy is bounded by both.
    let mut bytes = vec![0; (FIXED_HEADER_SIZE + 8 * ndims).min(object_len)];
    shm.read_at(0, &mut bytes)?;
    parse_header(&bytes, object_len).map_err(bad)
}

/// Reads the header of `shm`, waiting up to `wait` for one still being written.
pub(crate) fn await_header(shm: &SharedMemory, wait: Duration) -> Result<Header> {
    let start = Instant::now();
    let mut pause = Duration::from_micros(50);
    loop {
        let remaining = wait.saturating_sub(start.elapsed());
        match read_header(shm) {
            Err(Error::BadHeader { reason, .. }) if reason.may_be_incomplete() && !remaining.is_zero() => {}
            Err(Error::BadHeader { object, reason: HeaderError::BadMagic { found: 0 } }) => {
                return Err(Error::NotInitialised { object, waited: wait })
            }
            other => return other,
        }
        std::thread::sleep(pause.min(remaining));
        pause = (pause * 2).min(MAX_POLL);
    }
}

/// What the object `obj` holds: element type and dimensions, read from its header, without
/// knowing them in advance. Opens the object read-only, as a look ([`Holding::Look`]: an
/// abandoned volatile object stays for [`crate::gc`]), and waits up to [`DEFAULT_WAIT`] for a
/// header still being written.
///
/// Fails with [`Error::BadHeader`] if the object holds no valid array, or
/// [`Error::NotInitialised`] if it has no magic after the wait.
pub fn inspect(obj: impl Into<Id>) -> Result<Header> {
    await_header(&SharedMemory::look(obj)?, DEFAULT_WAIT)
}

/// What the open object `shm` holds, if a valid, complete header now (no waiting, no error).
pub(crate) fn try_inspect_memory(shm: &SharedMemory) -> Option<Header> {
    read_header(shm).ok()
}

/// What the open object `shm` holds, as its header says now (no waiting).
pub fn inspect_memory(shm: &SharedMemory) -> Result<Header> {
    await_header(shm, Duration::ZERO)
}

/// What the object `obj` holds, if it holds a valid, complete array header now and can be
/// read; `None` otherwise, whatever the reason. Never waits and never fails: for listings,
/// where an object without an array is no error.
///
/// A POSIX object is read as a file (`pread`), neither mapped nor locked, so that looking
/// cannot change when a volatile object is destroyed. A System V segment can only be read
/// attached: it is attached read-only for the moment of the read.
pub fn try_inspect(obj: impl Into<Id>) -> Option<Header> {
    match obj.into() {
        Id::Name(name) => peek_posix(&name),
        id => read_header(&SharedMemory::look(id).ok()?).ok(),
    }
}

/// Reads the header of the POSIX object `name` through its file in `/dev/shm`.
fn peek_posix(name: &str) -> Option<Header> {
    let (file, object_len) = open_for_peek(name)?;
    peek_header(&file, object_len)
}

/// Reads the header at the start of `file` (an object of `object_len` bytes), checked.
pub(crate) fn peek_header(file: &std::fs::File, object_len: usize) -> Option<Header> {
    use std::os::unix::fs::FileExt;
    let mut fixed = [0; FIXED_HEADER_SIZE];
    file.read_exact_at(&mut fixed, 0).ok()?;
    let ndims = usize::from(u16::from_ne_bytes([fixed[6], fixed[7]]));
    // Bounded by N <= 65535 and by the file's size, as in `read_header`.
    let mut bytes = vec![0; (FIXED_HEADER_SIZE + 8 * ndims).min(object_len)];
    file.read_exact_at(&mut bytes, 0).ok()?;
    parse_header(&bytes, object_len).ok()
}

/// Opens the file of the POSIX object `name` to read it as a file (neither mapped nor locked,
/// without changing its access time where permitted); gives it and its size.
pub(crate) fn open_for_peek(name: &str) -> Option<(std::fs::File, usize)> {
    use std::os::unix::fs::OpenOptionsExt;
    crate::posix::check_name(name).ok()?;
    let path = crate::posix::path_of(name);
    let open = |flags| {
        std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | flags).open(&path)
    };
    // O_NOATIME: a look must not change the access time that listings show. Only the owner
    // (or root) may ask for it; anyone else reads as usual.
    let file = match open(libc::O_NOATIME) {
        Err(error) if error.raw_os_error() == Some(libc::EPERM) => open(0),
        opened => opened,
    }
    .ok()?;
    let metadata = file.metadata().ok()?;
    if !metadata.is_file() {
        return None;
    }
    let object_len = usize::try_from(metadata.len()).ok()?;
    Some((file, object_len))
}

/// A typed N-dimensional array in shared memory, in the Julia package's layout: the header,
/// then the elements in column-major order.
///
/// The elements live in memory that other processes may write at any time, so safe access
/// copies: [`get`](Self::get), [`set`](Self::set), [`read_into`](Self::read_into),
/// [`write_from`](Self::write_from), [`read_range`](Self::read_range),
/// [`write_range`](Self::write_range), [`to_vec`](Self::to_vec) (the copies of
/// [`SharedMemory::read_at`]: a value written concurrently may be torn, never undefined
/// behaviour; on `x86_64` and `aarch64` an object shrunk under them is an error, not a
/// `SIGBUS`). Slice views, and `ndarray` views with the `ndarray` feature, are `unsafe`. The
/// dimensions are those read when the array was opened; a process that rewrites the header
/// later cannot make this handle reach outside the object.
#[derive(Debug)]
pub struct SharedArray<T: Element> {
    shm: SharedMemory,
    header: Header,
    element: PhantomData<T>,
}

/// Options for making or opening a [`SharedArray`]: those of [`ShmOptions`] (mode, volatile,
/// read-only, reserve, prefault, huge pages, lock), and how long an opener waits for an
/// incomplete header.
///
/// ```
/// use ipcmem::{Outcome, SharedArray};
/// let name = format!("/ipcmem-doc-array-options-{}", std::process::id());
/// let (image, outcome) = SharedArray::<u8>::options().perms(0o640).open_or_create(name.as_str(), &[32, 32])?;
/// assert_eq!(outcome, Outcome::Created);
/// let (same, outcome) = SharedArray::<u8>::options().open_or_create(name.as_str(), &[32, 32])?;
/// assert_eq!((outcome, same.len()), (Outcome::Opened, 1024));
/// # Ok::<(), ipcmem::Error>(())
/// ```
#[must_use]
pub struct ArrayOptions<T: Element> {
    shm: ShmOptions,
    wait: Duration,
    element: PhantomData<fn() -> T>,
}

impl<T: Element> Clone for ArrayOptions<T> {
    fn clone(&self) -> Self {
        ArrayOptions { shm: self.shm.clone(), wait: self.wait, element: PhantomData }
    }
}

impl<T: Element> fmt::Debug for ArrayOptions<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArrayOptions")
            .field("element", &T::TYPE)
            .field("shm", &self.shm)
            .field("wait", &self.wait)
            .finish()
    }
}

impl<T: Element> Default for ArrayOptions<T> {
    fn default() -> Self {
        ArrayOptions::from(ShmOptions::new())
    }
}

impl<T: Element> From<ShmOptions> for ArrayOptions<T> {
    /// The options of `shm`, with the default wait.
    fn from(shm: ShmOptions) -> Self {
        ArrayOptions { shm, wait: DEFAULT_WAIT, element: PhantomData }
    }
}

impl<T: Element> ArrayOptions<T> {
    /// The defaults: mode 0o600, volatile, read-write, wait [`DEFAULT_WAIT`].
    pub fn new() -> Self {
        Self::default()
    }

    /// The permission bits of a new object; see [`ShmOptions::perms`].
    pub fn perms(mut self, perms: u32) -> Self {
        self.shm = self.shm.perms(perms);
        self
    }

    /// Whether a new object is destroyed when no longer in use; see [`ShmOptions::volatile`].
    pub fn volatile(mut self, volatile: bool) -> Self {
        self.shm = self.shm.volatile(volatile);
        self
    }

    /// How a new object lives; see [`ShmOptions::persistence`].
    pub fn persistence(mut self, persistence: Persistence) -> Self {
        self.shm = self.shm.persistence(persistence);
        self
    }

    /// Whether to open read-only; see [`ShmOptions::readonly`].
    pub fn readonly(mut self, readonly: bool) -> Self {
        self.shm = self.shm.readonly(readonly);
        self
    }

    /// Whether an opened handle holds a volatile object or only looks; see
    /// [`ShmOptions::holding`].
    pub fn holding(mut self, holding: Holding) -> Self {
        self.shm = self.shm.holding(holding);
        self
    }

    /// Whether to allocate every page of a new POSIX object now; see [`ShmOptions::reserve`].
    pub fn reserve(mut self, reserve: bool) -> Self {
        self.shm = self.shm.reserve(reserve);
        self
    }

    /// Whether every page is in memory when `create` or `open` returns, populated in parallel;
    /// see [`ShmOptions::prefault`].
    pub fn prefault(mut self, prefault: bool) -> Self {
        self.shm = self.shm.prefault(prefault);
        self
    }

    /// Whether the object lives in huge pages; see [`ShmOptions::huge_pages`].
    pub fn huge_pages(mut self, huge_pages: bool) -> Self {
        self.shm = self.shm.huge_pages(huge_pages);
        self
    }

    /// Whether this handle's pages are locked in memory (`mlock`); see [`ShmOptions::lock`].
    pub fn lock(mut self, lock: bool) -> Self {
        self.shm = self.shm.lock(lock);
        self
    }

    /// How long an opener waits for a header whose magic is not written yet (default
    /// [`DEFAULT_WAIT`]); zero checks once.
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// Makes a new array of `dims`, its elements zero; fails with [`Error::AlreadyExists`] if
    /// the object exists. A POSIX object appears under its name with its header complete; a
    /// System V segment is visible by key before, and its openers wait for the magic.
    pub fn create(&self, obj: impl Into<Id>, dims: &[usize]) -> Result<SharedArray<T>> {
        let id = obj.into();
        let header = new_header::<T>(&id, dims)?;
        let mut written = Ok(());
        let shm = self.shm.create_with(&id, header.object_size(), |shm| written = write_header(shm, &header))?;
        SharedArray::created(shm, header, written)
    }

    /// Opens an existing array of `T`; fails with [`Error::TypeMismatch`] if it holds another
    /// element type.
    pub fn open(&self, obj: impl Into<Id>) -> Result<SharedArray<T>> {
        SharedArray::wrap(self.shm.open(obj)?, self.wait)
    }

    /// Opens the array if it exists, else makes it; says which. An existing array must hold `T`
    /// and have exactly `dims`.
    pub fn open_or_create(&self, obj: impl Into<Id>, dims: &[usize]) -> Result<(SharedArray<T>, Outcome)> {
        let id = obj.into();
        let header = new_header::<T>(&id, dims)?;
        let mut written = Ok(());
        let (shm, outcome) =
            self.shm.open_or_create_with(&id, header.object_size(), |shm| written = write_header(shm, &header))?;
        let array = match outcome {
            Outcome::Created => SharedArray::created(shm, header, written)?,
            Outcome::Opened => SharedArray::wrap(shm, self.wait)?,
        };
        if array.dims() != dims {
            return Err(Error::InvalidArgument {
                object: id.to_string(),
                reason: format!("the existing array is {}, not of dims {dims:?}", array.header),
            });
        }
        Ok((array, outcome))
    }
}

/// The header of a new array of `T`, or an error that names the object.
fn new_header<T: Element>(id: &Id, dims: &[usize]) -> Result<Header> {
    Header::new(T::TYPE, dims)
        .map_err(|reason| Error::InvalidArgument { object: id.to_string(), reason: format!("invalid array: {reason}") })
}

/// Writes `header` into the new object `shm`: every field, then the magic with a release
/// store, so that a reader that sees the magic sees the rest.
pub(crate) fn write_header(shm: &SharedMemory, header: &Header) -> Result<()> {
    let bytes = header.encode();
    shm.write_at(4, &bytes[4..])?;
    shm.atomic_u32s(0, 1)?[0].store(MAGIC, Ordering::Release);
    Ok(())
}

impl<T: Element> SharedArray<T> {
    /// Makes a new volatile array of `dims` with mode 0o600, its elements zero, as
    /// `WrappedArray(id, T, dims)` in Julia. See [`ArrayOptions::create`].
    pub fn create(obj: impl Into<Id>, dims: &[usize]) -> Result<Self> {
        ArrayOptions::new().create(obj, dims)
    }

    /// Opens an existing array read-write, as `WrappedArray(id)` in Julia; checks that it holds
    /// `T`. See [`ArrayOptions::open`].
    pub fn open(obj: impl Into<Id>) -> Result<Self> {
        ArrayOptions::new().open(obj)
    }

    /// Opens an existing array read-only, as `WrappedArray(id; readonly=true)` in Julia.
    pub fn open_readonly(obj: impl Into<Id>) -> Result<Self> {
        ArrayOptions::new().readonly(true).open(obj)
    }

    /// The options builder.
    pub fn options() -> ArrayOptions<T> {
        ArrayOptions::new()
    }

    /// The array held by the open object `shm`, waiting up to [`DEFAULT_WAIT`] for its header.
    pub fn from_memory(shm: SharedMemory) -> Result<Self> {
        Self::wrap(shm, DEFAULT_WAIT)
    }

    fn wrap(shm: SharedMemory, wait: Duration) -> Result<Self> {
        let header = await_header(&shm, wait)?;
        if header.element != T::TYPE {
            return Err(Error::TypeMismatch { object: shm.id().to_string(), expected: T::TYPE, found: header.element });
        }
        Ok(SharedArray { shm, header, element: PhantomData })
    }

    /// The new array, or, if its header could not be written, the error (after removing the
    /// object, which nobody could use).
    fn created(shm: SharedMemory, header: Header, written: Result<()>) -> Result<Self> {
        if let Err(error) = written {
            let _ = shm.remove();
            return Err(error);
        }
        Ok(SharedArray { shm, header, element: PhantomData })
    }

    /// The header: element type and dimensions.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The dimensions, first (fastest varying) first.
    pub fn dims(&self) -> &[usize] {
        &self.header.dims
    }

    /// The number of dimensions.
    pub fn ndims(&self) -> usize {
        self.header.dims.len()
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.header.len
    }

    /// Always `false`: every dimension is at least 1.
    pub fn is_empty(&self) -> bool {
        self.header.is_empty()
    }

    /// The object's identifier (`/name` or System V id).
    pub fn id(&self) -> Id {
        self.shm.id()
    }

    /// The shared memory object that holds the array (for its id, atomic flags next to the
    /// array, or [`SharedMemory::remove`]).
    pub fn memory(&self) -> &SharedMemory {
        &self.shm
    }

    /// The shared memory object, giving up the typed view.
    pub fn into_memory(self) -> SharedMemory {
        self.shm
    }

    /// The position in memory order (column-major: the first index varies fastest) of the
    /// element at `index`, which has one entry per dimension, each within its dimension.
    pub fn linear_index(&self, index: &[usize]) -> Result<usize> {
        let dims = &self.header.dims;
        if index.len() != dims.len() || index.iter().zip(dims).any(|(i, dim)| i >= dim) {
            return Err(Error::InvalidArgument {
                object: self.shm.id().to_string(),
                reason: format!("index {index:?} is outside the array ({})", self.header),
            });
        }
        // No overflow: the result is less than the product of the dimensions.
        Ok(index.iter().zip(dims).rev().fold(0, |linear, (i, dim)| linear * dim + i))
    }

    /// The element at `index` (column-major, see [`linear_index`](Self::linear_index)).
    pub fn get(&self, index: &[usize]) -> Result<T> {
        let mut value = T::zeroed();
        self.read_range(self.linear_index(index)?, std::slice::from_mut(&mut value))?;
        Ok(value)
    }

    /// Stores `value` at `index`. Fails on a read-only handle.
    pub fn set(&self, index: &[usize], value: T) -> Result<()> {
        self.write_range(self.linear_index(index)?, &[value])
    }

    /// Copies every element, in memory order, into `buf`, which must have [`len`](Self::len)
    /// elements.
    pub fn read_into(&self, buf: &mut [T]) -> Result<()> {
        self.check_whole(buf.len())?;
        self.read_range(0, buf)
    }

    /// Copies `data`, in memory order, over every element; `data` must have
    /// [`len`](Self::len) elements. Fails on a read-only handle.
    pub fn write_from(&self, data: &[T]) -> Result<()> {
        self.check_whole(data.len())?;
        self.write_range(0, data)
    }

    /// Copies `buf.len()` elements from position `first` in memory order into `buf`.
    pub fn read_range(&self, first: usize, buf: &mut [T]) -> Result<()> {
        let offset = self.byte_offset(first, buf.len())?;
        self.shm.read_at(offset, bytemuck::cast_slice_mut(buf))
    }

    /// Copies `data` to the elements from position `first` in memory order. Fails on a
    /// read-only handle.
    pub fn write_range(&self, first: usize, data: &[T]) -> Result<()> {
        let offset = self.byte_offset(first, data.len())?;
        self.shm.write_at(offset, bytemuck::cast_slice(data))
    }

    /// Every element, in memory order.
    pub fn to_vec(&self) -> Result<Vec<T>> {
        let mut values = vec![T::zeroed(); self.len()];
        self.read_into(&mut values)?;
        Ok(values)
    }

    /// The byte offset of `count` elements from position `first`, checked to lie in the array.
    fn byte_offset(&self, first: usize, count: usize) -> Result<usize> {
        match first.checked_add(count) {
            Some(end) if end <= self.len() => Ok(self.header.data_offset() + first * size_of::<T>()),
            _ => Err(Error::InvalidArgument {
                object: self.shm.id().to_string(),
                reason: format!("elements {first}..{first}+{count} run past the array ({})", self.header),
            }),
        }
    }

    fn check_whole(&self, count: usize) -> Result<()> {
        if count != self.len() {
            return Err(Error::InvalidArgument {
                object: self.shm.id().to_string(),
                reason: format!("a buffer of {count} elements for an array of {} ({})", self.len(), self.header),
            });
        }
        Ok(())
    }

    /// The address of the first element.
    pub fn as_ptr(&self) -> *const T {
        self.as_mut_ptr().cast_const()
    }

    /// The address of the first element, for writing through `unsafe` code (which kills the
    /// process with `SIGSEGV` on a read-only handle).
    pub fn as_mut_ptr(&self) -> *mut T {
        // In bounds (the header was checked against the object's size), and aligned for every
        // element type: the mapping starts on a page, the data offset is a multiple of 64.
        #[allow(clippy::cast_ptr_alignment)]
        self.shm.as_mut_ptr().wrapping_add(self.header.data_offset()).cast::<T>()
    }

    /// The elements as a slice, in memory order.
    ///
    /// # Safety
    /// For as long as the slice lives, no process may write the elements, and the object must
    /// not be shrunk by another process (as for [`SharedMemory::as_slice`]).
    pub unsafe fn as_slice(&self) -> &[T] {
        // SAFETY: `len` elements of `T` lie within the mapping from `as_ptr` (checked against
        // the object's size when the header was read), aligned for `T` (see `as_mut_ptr`); every
        // bit pattern is a valid `T` (Pod); the mapping lives as long as `self`; the caller
        // promises that nobody writes the elements meanwhile.
        unsafe { std::slice::from_raw_parts(self.as_ptr(), self.len()) }
    }

    /// The elements as a mutable slice, in memory order; fails on a read-only handle.
    ///
    /// # Safety
    /// For as long as the slice lives, no other process and no other reference in this process
    /// may access the elements, and the object must not be shrunk by another process.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn as_mut_slice(&self) -> Result<&mut [T]> {
        self.check_writable()?;
        // SAFETY: as in `as_slice`, and the mapping is writable (checked); the caller promises
        // exclusive access.
        Ok(unsafe { std::slice::from_raw_parts_mut(self.as_mut_ptr(), self.len()) })
    }

    fn check_writable(&self) -> Result<()> {
        if self.shm.is_readonly() {
            return Err(Error::ReadOnly { object: self.shm.id().to_string() });
        }
        Ok(())
    }

    /// Marks the object for destruction; see [`SharedMemory::remove`].
    pub fn remove(&self) -> Result<()> {
        self.shm.remove()
    }
}

impl<T: Element> crate::shm::AsSharedMemory for SharedArray<T> {
    fn as_shared_memory(&self) -> &SharedMemory {
        &self.shm
    }
}

#[cfg(feature = "ndarray")]
#[cfg_attr(docsrs, doc(cfg(feature = "ndarray")))]
impl<T: Element> SharedArray<T> {
    /// The array as an `ndarray` view in Fortran (column-major) order, so that
    /// `view[[i, j, k]]` is [`get(&[i, j, k])`](Self::get).
    ///
    /// # Safety
    /// As [`as_slice`](Self::as_slice): no process may write the elements while the view lives.
    pub unsafe fn view(&self) -> ndarray::ArrayViewD<'_, T> {
        use ndarray::ShapeBuilder;
        let shape = ndarray::IxDyn(self.dims()).f();
        // SAFETY: the pointer is non-null, aligned and starts `len` valid elements within the
        // mapping (see `as_slice`), which is at most isize::MAX bytes; the Fortran shape of
        // `dims` covers exactly those elements; the view borrows `self`, which keeps the mapping;
        // the caller promises that nobody writes the elements meanwhile.
        unsafe { ndarray::ArrayViewD::from_shape_ptr(shape, self.as_ptr()) }
    }

    /// The array as a mutable `ndarray` view in Fortran order; fails on a read-only handle.
    ///
    /// # Safety
    /// As [`as_mut_slice`](Self::as_mut_slice): nothing else may access the elements while the
    /// view lives.
    pub unsafe fn view_mut(&self) -> Result<ndarray::ArrayViewMutD<'_, T>> {
        use ndarray::ShapeBuilder;
        self.check_writable()?;
        let shape = ndarray::IxDyn(self.dims()).f();
        // SAFETY: as in `view`, and the mapping is writable (checked); the caller promises
        // exclusive access.
        Ok(unsafe { ndarray::ArrayViewMutD::from_shape_ptr(shape, self.as_mut_ptr()) })
    }
}
