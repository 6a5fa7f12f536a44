//! The stream layout "ST-1": where the control block lies after the WA-1 array, its fields, and
//! the checks an opener makes before trusting it (see `docs/stream-layout.md`).

use crate::array::{ElementType, Header};

/// The magic number at byte 0 of the control block: "ST-1" (stream, version 1 of the layout).
pub const CONTROL_MAGIC: u32 = 0x5354_2D31;
/// The version word of the control block.
pub const CONTROL_VERSION: u32 = 1;
/// The alignment of the control block (a cache line), from the start of the object.
pub const CONTROL_ALIGN: usize = 64;
/// The bytes of the fixed part of the control block, before the slot table.
pub const CONTROL_FIXED_SIZE: usize = 128;
/// The bytes of one entry of the slot table.
pub const SLOT_ENTRY_SIZE: usize = 32;
/// The largest serial: seq words hold `2 * serial`, which must fit in 64 bits.
pub const MAX_SERIAL: u64 = u64::MAX / 2;

/// Offsets of the fields in the control block, from its start.
pub(crate) mod field {
    /// u32: [`super::CONTROL_MAGIC`], written last by the creator (release).
    pub const MAGIC: usize = 0;
    /// u32: [`super::CONTROL_VERSION`].
    pub const VERSION: usize = 4;
    /// u64: the number of slots; equals the last dimension of the array.
    pub const SLOTS: usize = 8;
    /// u64: the bytes of one frame.
    pub const FRAME_BYTES: usize = 16;
    /// u32: the writer's process id (0: none yet).
    pub const WRITER_PID: usize = 24;
    /// u32: the writer's state, one of [`super::WriterState`].
    pub const WRITER_STATE: usize = 28;
    /// u64: the writer's start time, in clock ticks since boot (`/proc/PID/stat`, field 22).
    pub const WRITER_START: usize = 32;
    /// u64: the inode of the writer's pid namespace (`/proc/PID/ns/pid`).
    pub const WRITER_PIDNS: usize = 40;
    /// u64: when the stream was made, nanoseconds since the Unix epoch.
    pub const CREATED_NS: usize = 48;
    /// u64: the serial of the newest complete frame (0: none yet).
    pub const LAST_SERIAL: usize = 64;
    /// u64: when the newest frame was published, nanoseconds since the Unix epoch.
    pub const LAST_PUBLISHED_NS: usize = 72;
    /// 8 bytes: the notification word (u32 futex, a count) and the number of parked waiters
    /// (u32): an [`Event`](crate::Event).
    pub const NOTIFY: usize = 80;
    /// The slot table: one entry of [`super::SLOT_ENTRY_SIZE`] bytes per slot.
    pub const SLOTS_TABLE: usize = 128;
    /// In a slot entry, u64: the seqlock word, `2 * serial` once frame `serial` is complete in
    /// the slot, `2 * serial - 1` while it is written (0: never written).
    pub const SLOT_SEQ: usize = 0;
    /// In a slot entry, u64: the frame's acquisition time, ns since the Unix epoch.
    pub const SLOT_ACQUIRED_NS: usize = 8;
    /// In a slot entry, u64: the frame's publication time, ns since the Unix epoch.
    pub const SLOT_PUBLISHED_NS: usize = 16;
}

/// The writer's state word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriterState {
    /// No writer yet (`ipcmem stream create`): readers wait.
    None = 0,
    /// A writer holds the stream; its process id and start time tell whether it lives.
    Active = 1,
    /// The writer closed the stream (dropped its handle).
    Closed = 2,
    /// A new writer is taking the stream over (it fills in its identity, then says Active).
    Claiming = 3,
}

impl WriterState {
    pub(crate) fn from_word(word: u32) -> Option<WriterState> {
        [Self::None, Self::Active, Self::Closed, Self::Claiming].into_iter().find(|state| *state as u32 == word)
    }
}

/// Where everything of a stream lies: the array (frames × slots) and the control block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Geometry {
    pub(crate) header: Header,
    pub(crate) slots: usize,
    pub(crate) frame_bytes: usize,
    pub(crate) control: usize,
}

impl Geometry {
    /// The geometry of a new stream of `element` frames of `frame_dims`, `slots` of them.
    pub fn new(element: ElementType, frame_dims: &[usize], slots: usize) -> Result<Geometry, String> {
        if frame_dims.is_empty() {
            return Err("a frame needs at least one dimension".into());
        }
        if slots == 0 {
            return Err("a stream needs at least one slot".into());
        }
        let mut dims = frame_dims.to_vec();
        dims.push(slots);
        let header = Header::new(element, &dims).map_err(|error| format!("invalid frame dims or slots: {error}"))?;
        Geometry::of(header).ok_or_else(|| "the stream does not fit in the address space".into())
    }

    /// The geometry of the array `header` read as a stream (its last dimension the slots), if
    /// its sizes fit in a machine word.
    fn of(header: Header) -> Option<Geometry> {
        let dims = header.dims();
        let slots = *dims.last()?;
        if dims.len() < 2 {
            return None;
        }
        // The frame is the array without its last dimension: data size / slots, exactly.
        let frame_bytes = header.data_size() / slots;
        let control = header.object_size().checked_next_multiple_of(CONTROL_ALIGN)?;
        let geometry = Geometry { header, slots, frame_bytes, control };
        let size = geometry.control_size()?.checked_add(control)?;
        isize::try_from(size).is_ok().then_some(geometry)
    }

    /// The bytes of the control block: the fixed part and the slot table.
    fn control_size(&self) -> Option<usize> {
        self.slots.checked_mul(SLOT_ENTRY_SIZE)?.checked_add(CONTROL_FIXED_SIZE)
    }

    /// The size of the whole object: array, padding, control block.
    pub fn object_size(&self) -> usize {
        // Checked in `of`.
        self.control + self.control_size().unwrap_or(0)
    }

    /// The element type.
    pub fn element(&self) -> ElementType {
        self.header.element()
    }

    /// The dimensions of one frame.
    pub fn frame_dims(&self) -> &[usize] {
        let dims = self.header.dims();
        &dims[..dims.len() - 1]
    }

    /// The number of slots (frames the ring holds).
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// The bytes of one frame.
    pub fn frame_bytes(&self) -> usize {
        self.frame_bytes
    }

    /// The number of elements of one frame.
    pub fn frame_len(&self) -> usize {
        self.frame_bytes / self.header.element().size()
    }

    /// The offset of the control block in the object.
    pub fn control_offset(&self) -> usize {
        self.control
    }

    /// The offset in the object of frame slot `slot` (< slots).
    pub(crate) fn frame_offset(&self, slot: usize) -> usize {
        self.header.data_offset() + slot * self.frame_bytes
    }

    /// The offset in the object of a field of the control block.
    pub(crate) fn field(&self, field: usize) -> usize {
        self.control + field
    }

    /// The offset in the object of a field of slot `slot`'s entry.
    pub(crate) fn slot_field(&self, slot: usize, field: usize) -> usize {
        self.control + field::SLOTS_TABLE + slot * SLOT_ENTRY_SIZE + field
    }

    /// The control block's fixed part as the creator writes it, magic excluded (it goes last).
    pub(crate) fn encode_fixed(&self, created_ns: u64) -> [u8; CONTROL_FIXED_SIZE] {
        let mut bytes = [0; CONTROL_FIXED_SIZE];
        bytes[field::VERSION..field::VERSION + 4].copy_from_slice(&CONTROL_VERSION.to_ne_bytes());
        bytes[field::SLOTS..field::SLOTS + 8].copy_from_slice(&(self.slots as u64).to_ne_bytes());
        bytes[field::FRAME_BYTES..field::FRAME_BYTES + 8].copy_from_slice(&(self.frame_bytes as u64).to_ne_bytes());
        bytes[field::CREATED_NS..field::CREATED_NS + 8].copy_from_slice(&created_ns.to_ne_bytes());
        bytes
    }
}

/// Checks that an object of `object_len` bytes holding the array `header` is a stream whose
/// control block starts with `fixed` (its first [`CONTROL_FIXED_SIZE`] bytes, as copied from
/// the object): at least 2 dimensions, the control block within the object, magic, version,
/// slots and frame size as the array says. A pure function: the property tests feed it
/// anything.
pub fn check_control(header: &Header, object_len: usize, fixed: &[u8]) -> Result<Geometry, String> {
    if header.ndims() < 2 {
        return Err(format!(
            "the array ({header}) has {} dimension; a stream has frame dims and slots",
            header.ndims()
        ));
    }
    let geometry = Geometry::of(header.clone()).ok_or_else(|| format!("the array ({header}) is too large"))?;
    if geometry.object_size() > object_len {
        return Err(format!(
            "the object has {object_len} bytes; a stream of {header} needs {} (control block at {})",
            geometry.object_size(),
            geometry.control
        ));
    }
    let word32 = |at: usize| fixed.get(at..at + 4).and_then(|b| b.try_into().ok()).map(u32::from_ne_bytes);
    let word64 = |at: usize| fixed.get(at..at + 8).and_then(|b| b.try_into().ok()).map(u64::from_ne_bytes);
    let short = || format!("{} bytes of a {CONTROL_FIXED_SIZE}-byte control block", fixed.len());
    let magic = word32(field::MAGIC).ok_or_else(short)?;
    if magic != CONTROL_MAGIC {
        return Err(format!("control block magic {magic:#010x} is not {CONTROL_MAGIC:#010x} (\"ST-1\")"));
    }
    let version = word32(field::VERSION).ok_or_else(short)?;
    if version != CONTROL_VERSION {
        return Err(format!("control block version {version}; this library reads version {CONTROL_VERSION}"));
    }
    let slots = word64(field::SLOTS).ok_or_else(short)?;
    if slots != geometry.slots as u64 {
        return Err(format!("the control block says {slots} slots, the array {}", geometry.slots));
    }
    let frame_bytes = word64(field::FRAME_BYTES).ok_or_else(short)?;
    if frame_bytes != geometry.frame_bytes as u64 {
        return Err(format!(
            "the control block says frames of {frame_bytes} bytes, the array {}",
            geometry.frame_bytes
        ));
    }
    Ok(geometry)
}

/// Whether an array could be a stream (at least 2 dimensions): the cheap test of listings.
pub(crate) fn may_be_stream(header: &Header) -> bool {
    header.ndims() >= 2
}
