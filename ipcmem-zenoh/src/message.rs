//! The message that carries one frame over Zenoh: a versioned header, then the frame's bytes.
//!
//! Layout version 1, all fields little-endian (documented byte by byte in `docs/zenoh-message.md`):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `b"IPZM"` |
//! | 4 | 2 | layout version, u16 = 1 |
//! | 6 | 2 | element type code, u16 (the WA-1 codes 1 to 12, [`ElementType::code`]) |
//! | 8 | 2 | number of dimensions N, u16, at least 1 |
//! | 10 | 2 | flags, u16, 0 (reserved) |
//! | 12 | 4 | header length H = 48 + 8N, u32: the offset of the frame's bytes |
//! | 16 | 8 | serial, u64, at least 1 |
//! | 24 | 8 | acquisition time, u64, nanoseconds since the Unix epoch |
//! | 32 | 8 | publication time, u64, nanoseconds since the Unix epoch |
//! | 40 | 8 | publisher's lost count, u64: frames its reader missed so far (ring overruns) |
//! | 48 | 8N | the frame's dimensions, u64 each, at least 1, first index fastest |
//! | H | | the frame: product of dims × element size bytes, elements little-endian |
//!
//! The decoder trusts nothing: every field is checked in checked arithmetic against the
//! message's length, and a message that is not exactly header plus frame is refused with a
//! [`DecodeError`] that names the field. It never panics and never allocates by a length read
//! from the message (the dims are bounded by the message's own length).

use ipcmem::array::ElementType;

/// The first four bytes of every message.
pub const MAGIC: [u8; 4] = *b"IPZM";

/// The layout version this crate writes and reads.
pub const VERSION: u16 = 1;

/// The size of the fixed part of the header, before the dims.
pub const FIXED_HEADER_LEN: usize = 48;

/// The most dimensions a frame may have (the WA-1 limit).
pub const MAX_DIMS: usize = u16::MAX as usize;

// The frame's bytes travel as the machine holds them; the layout says little-endian.
#[cfg(target_endian = "big")]
compile_error!("ipcmem-zenoh sends frames as little-endian bytes and supports little-endian machines only");

/// What a message says about its frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameHeader {
    /// The frame's serial in the publishing stream (1 for its first frame).
    pub serial: u64,
    /// Acquisition time, nanoseconds since the Unix epoch.
    pub acquired_ns: u64,
    /// Publication time in the source stream, nanoseconds since the Unix epoch.
    pub published_ns: u64,
    /// Frames the publisher's reader missed so far (overruns of the source ring).
    pub publisher_lost: u64,
    /// The element type.
    pub element: ElementType,
    /// The frame's dimensions, first index fastest.
    pub dims: Vec<usize>,
}

/// A decoded message: its header and the frame's bytes, borrowed from the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// The header.
    pub header: FrameHeader,
    /// The frame's bytes (elements little-endian, first index fastest).
    pub frame: &'a [u8],
}

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than the fixed header.
    #[error("message of {len} bytes is shorter than the {FIXED_HEADER_LEN}-byte header")]
    TooShort {
        /// The message's length.
        len: usize,
    },
    /// The first four bytes are not [`MAGIC`].
    #[error("not an ipcmem-zenoh frame message: magic {found:02x?}, expected {MAGIC:02x?} (\"IPZM\")")]
    BadMagic {
        /// The bytes found.
        found: [u8; 4],
    },
    /// A layout version this build does not read.
    #[error("message layout version {found}, this build reads version {VERSION}")]
    UnsupportedVersion {
        /// The version found.
        found: u16,
    },
    /// An element type code outside 1 to 12.
    #[error("element type code {code} is not one of 1 to 12")]
    BadElementType {
        /// The code found.
        code: u16,
    },
    /// Zero dimensions.
    #[error("a frame has at least one dimension, the message says 0")]
    NoDims,
    /// Reserved flags set.
    #[error("reserved flags {flags:#06x} are set (version 1 has none)")]
    BadFlags {
        /// The flags found.
        flags: u16,
    },
    /// The header length does not agree with the number of dims or the message's length.
    #[error("header length {found} does not match {ndims} dims (expected {expected}) in a message of {len} bytes")]
    BadHeaderLength {
        /// The header length found.
        found: u32,
        /// What N dims need.
        expected: usize,
        /// The number of dims.
        ndims: u16,
        /// The message's length.
        len: usize,
    },
    /// A dimension of 0, or one too large for this machine.
    #[error("dimension {index} is {value}: each dimension is at least 1 and fits in usize")]
    BadDim {
        /// The dimension's index.
        index: usize,
        /// Its value.
        value: u64,
    },
    /// Serial 0 (serials start at 1).
    #[error("serial 0: serials start at 1")]
    ZeroSerial,
    /// The frame's byte count does not follow from type and dims.
    #[error("frame of {found} bytes, but {element} {dims:?} needs {expected}")]
    FrameLength {
        /// The bytes found after the header.
        found: usize,
        /// The bytes the type and dims need (None: more than usize can count).
        expected: FrameSize,
        /// The element type.
        element: ElementType,
        /// The dims.
        dims: Vec<usize>,
    },
}

/// The size a frame needs, which may overflow usize for a hostile header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameSize {
    /// A size in bytes.
    Bytes(usize),
    /// More bytes than usize can count.
    Overflow,
}

impl std::fmt::Display for FrameSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bytes(bytes) => write!(f, "{bytes} bytes"),
            Self::Overflow => f.write_str("more bytes than this machine can count"),
        }
    }
}

impl FrameHeader {
    /// The header's length in bytes once encoded: 48 + 8 × number of dims.
    pub fn encoded_len(&self) -> usize {
        header_len(self.dims.len())
    }

    /// The frame's size in bytes: product of dims × element size (None on overflow).
    pub fn frame_len(&self) -> Option<usize> {
        frame_len(self.element, &self.dims)
    }

    /// Appends the encoded header to `out`. The frame's bytes follow it.
    ///
    /// # Panics
    /// If the dims are empty or more than [`MAX_DIMS`]: a stream's frame always has 1 to
    /// [`MAX_DIMS`] dims, so this is a bug of the caller.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let ndims = u16::try_from(self.dims.len()).expect("a frame has at most 65535 dims");
        assert!(ndims > 0, "a frame has at least one dimension");
        let header_len = u32::try_from(self.encoded_len()).expect("48 + 8 × 65535 fits in u32");
        out.reserve(self.encoded_len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&self.element.code().to_le_bytes());
        out.extend_from_slice(&ndims.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&header_len.to_le_bytes());
        out.extend_from_slice(&self.serial.to_le_bytes());
        out.extend_from_slice(&self.acquired_ns.to_le_bytes());
        out.extend_from_slice(&self.published_ns.to_le_bytes());
        out.extend_from_slice(&self.publisher_lost.to_le_bytes());
        for &dim in &self.dims {
            out.extend_from_slice(&(dim as u64).to_le_bytes());
        }
    }
}

/// The header length for `ndims` dims.
pub const fn header_len(ndims: usize) -> usize {
    FIXED_HEADER_LEN + 8 * ndims
}

/// The size in bytes of a frame of `element` with `dims` (None on overflow).
pub fn frame_len(element: ElementType, dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(element.size(), |size, &dim| size.checked_mul(dim))
}

/// Encodes a whole message: header then frame.
///
/// # Panics
/// As [`FrameHeader::encode_into`], and if `frame`'s length is not the one type and dims need.
pub fn encode(header: &FrameHeader, frame: &[u8]) -> Vec<u8> {
    assert_eq!(header.frame_len(), Some(frame.len()), "frame length does not match type and dims");
    let mut out = Vec::with_capacity(header.encoded_len() + frame.len());
    header.encode_into(&mut out);
    out.extend_from_slice(frame);
    out
}

/// Little-endian reads at fixed offsets of a slice already checked to be long enough.
fn u16_at(bytes: &[u8], offset: usize) -> u16 {
    u16::from_le_bytes([bytes[offset], bytes[offset + 1]])
}

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[offset..offset + 4]);
    u32::from_le_bytes(word)
}

fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[offset..offset + 8]);
    u64::from_le_bytes(word)
}

/// Decodes a message, checking every field (see the module's table).
pub fn decode(bytes: &[u8]) -> Result<Message<'_>, DecodeError> {
    let len = bytes.len();
    if len < FIXED_HEADER_LEN {
        return Err(DecodeError::TooShort { len });
    }
    let found = [bytes[0], bytes[1], bytes[2], bytes[3]];
    if found != MAGIC {
        return Err(DecodeError::BadMagic { found });
    }
    let version = u16_at(bytes, 4);
    if version != VERSION {
        return Err(DecodeError::UnsupportedVersion { found: version });
    }
    let code = u16_at(bytes, 6);
    let element = ElementType::from_code(code).ok_or(DecodeError::BadElementType { code })?;
    let ndims = u16_at(bytes, 8);
    if ndims == 0 {
        return Err(DecodeError::NoDims);
    }
    let flags = u16_at(bytes, 10);
    if flags != 0 {
        return Err(DecodeError::BadFlags { flags });
    }
    let expected = header_len(usize::from(ndims));
    let found_len = u32_at(bytes, 12);
    if usize::try_from(found_len).ok() != Some(expected) || expected > len {
        return Err(DecodeError::BadHeaderLength { found: found_len, expected, ndims, len });
    }
    let serial = u64_at(bytes, 16);
    if serial == 0 {
        return Err(DecodeError::ZeroSerial);
    }
    let dims = (0..usize::from(ndims))
        .map(|index| {
            let value = u64_at(bytes, FIXED_HEADER_LEN + 8 * index);
            usize::try_from(value).ok().filter(|&dim| dim > 0).ok_or(DecodeError::BadDim { index, value })
        })
        .collect::<Result<Vec<usize>, DecodeError>>()?;
    let frame = &bytes[expected..];
    let needed = frame_len(element, &dims);
    if needed != Some(frame.len()) {
        return Err(DecodeError::FrameLength {
            found: frame.len(),
            expected: needed.map_or(FrameSize::Overflow, FrameSize::Bytes),
            element,
            dims,
        });
    }
    let header = FrameHeader {
        serial,
        acquired_ns: u64_at(bytes, 24),
        published_ns: u64_at(bytes, 32),
        publisher_lost: u64_at(bytes, 40),
        element,
        dims,
    };
    Ok(Message { header, frame })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> (FrameHeader, Vec<u8>) {
        let header = FrameHeader {
            serial: 7,
            acquired_ns: 1_700_000_000_000_000_000,
            published_ns: 1_700_000_000_000_001_000,
            publisher_lost: 3,
            element: ElementType::U16,
            dims: vec![3, 2],
        };
        let frame = (0u8..12).collect();
        (header, frame)
    }

    #[test]
    fn golden_bytes() {
        let (header, frame) = sample();
        let bytes = encode(&header, &frame);
        let mut expected = Vec::new();
        expected.extend_from_slice(b"IPZM");
        expected.extend_from_slice(&[1, 0, 4, 0, 2, 0, 0, 0, 64, 0, 0, 0]);
        expected.extend_from_slice(&7u64.to_le_bytes());
        expected.extend_from_slice(&1_700_000_000_000_000_000u64.to_le_bytes());
        expected.extend_from_slice(&1_700_000_000_000_001_000u64.to_le_bytes());
        expected.extend_from_slice(&3u64.to_le_bytes());
        expected.extend_from_slice(&3u64.to_le_bytes());
        expected.extend_from_slice(&2u64.to_le_bytes());
        expected.extend_from_slice(&frame);
        assert_eq!(bytes, expected);
        let message = decode(&bytes).unwrap();
        assert_eq!(message.header, header);
        assert_eq!(message.frame, &frame[..]);
    }

    #[test]
    fn each_check_names_its_field() {
        let (header, frame) = sample();
        let good = encode(&header, &frame);
        let patched = |offset: usize, value: &[u8]| {
            let mut bytes = good.clone();
            bytes[offset..offset + value.len()].copy_from_slice(value);
            decode(&bytes).unwrap_err()
        };
        assert_eq!(decode(&good[..47]).unwrap_err(), DecodeError::TooShort { len: 47 });
        assert!(matches!(patched(0, b"XPZM"), DecodeError::BadMagic { .. }));
        assert_eq!(patched(4, &2u16.to_le_bytes()), DecodeError::UnsupportedVersion { found: 2 });
        assert_eq!(patched(6, &13u16.to_le_bytes()), DecodeError::BadElementType { code: 13 });
        assert_eq!(patched(8, &0u16.to_le_bytes()), DecodeError::NoDims);
        assert_eq!(patched(10, &1u16.to_le_bytes()), DecodeError::BadFlags { flags: 1 });
        assert!(matches!(patched(12, &56u32.to_le_bytes()), DecodeError::BadHeaderLength { .. }));
        assert_eq!(patched(16, &0u64.to_le_bytes()), DecodeError::ZeroSerial);
        assert_eq!(patched(48, &0u64.to_le_bytes()), DecodeError::BadDim { index: 0, value: 0 });
        assert!(matches!(
            patched(56, &u64::MAX.to_le_bytes()),
            DecodeError::BadDim { .. } | DecodeError::FrameLength { .. }
        ));
        assert!(matches!(decode(&good[..good.len() - 1]).unwrap_err(), DecodeError::FrameLength { found: 11, .. }));
        let message = format!("{}", patched(0, b"XPZM"));
        assert!(message.contains("magic"), "{message}");
    }

    #[test]
    fn overflowing_dims_are_refused() {
        let (mut header, _) = sample();
        header.dims = vec![usize::MAX / 2, 4];
        let mut bytes = Vec::new();
        header.encode_into(&mut bytes);
        assert!(matches!(decode(&bytes).unwrap_err(), DecodeError::FrameLength { expected: FrameSize::Overflow, .. }));
    }

    fn element() -> impl Strategy<Value = ElementType> {
        (0..ElementType::ALL.len()).prop_map(|index| ElementType::ALL[index])
    }

    proptest! {
        #[test]
        fn round_trip(serial in 1u64.., acquired in any::<u64>(), published in any::<u64>(),
                      lost in any::<u64>(), element in element(),
                      dims in prop::collection::vec(1usize..5, 1..5)) {
            let header = FrameHeader { serial, acquired_ns: acquired, published_ns: published,
                                       publisher_lost: lost, element, dims };
            #[allow(clippy::cast_possible_truncation)] // i % 251 fits in u8
            let frame: Vec<u8> = (0..header.frame_len().unwrap()).map(|i| (i % 251) as u8).collect();
            let bytes = encode(&header, &frame);
            let message = decode(&bytes).unwrap();
            prop_assert_eq!(message.header, header);
            prop_assert_eq!(message.frame, &frame[..]);
        }

        #[test]
        fn hostile_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn hostile_header_after_good_magic_never_panics(
            tail in prop::collection::vec(any::<u8>(), 0..256),
            code in 0u16..16, ndims in 0u16..6, header_len in 0u32..120,
        ) {
            let mut bytes = Vec::new();
            bytes.extend_from_slice(&MAGIC);
            bytes.extend_from_slice(&VERSION.to_le_bytes());
            bytes.extend_from_slice(&code.to_le_bytes());
            bytes.extend_from_slice(&ndims.to_le_bytes());
            bytes.extend_from_slice(&0u16.to_le_bytes());
            bytes.extend_from_slice(&header_len.to_le_bytes());
            bytes.extend_from_slice(&tail);
            if let Ok(message) = decode(&bytes) {
                prop_assert_eq!(Some(message.frame.len()), message.header.frame_len());
                prop_assert_eq!(message.header.encoded_len() + message.frame.len(), bytes.len());
            }
        }

        #[test]
        fn flipped_byte_of_a_good_message_never_panics(index in 0usize..76, value in any::<u8>()) {
            let (header, frame) = sample();
            let mut bytes = encode(&header, &frame);
            bytes[index] = value;
            if let Ok(message) = decode(&bytes) {
                prop_assert_eq!(Some(message.frame.len()), message.header.frame_len());
            }
        }
    }
}
