//! Frame streams: a ring of typed frames with serials and timestamps, between one writer and any
//! number of readers in other processes, for cameras and controllers at kHz rates.
//!
//! - **No torn frame.** Each slot has a seqlock word: a reader copies a frame, then checks that
//!   the writer did not touch the slot meanwhile; a frame overwritten during the copy is never
//!   returned (the reader takes a newer one, and counts the skipped ones as lost).
//! - **Every loss counted.** Frames have serials (1 for the first); [`FrameInfo::lost`] is the
//!   number of frames a reader missed since its previous one, so that returned plus lost is
//!   what the writer published.
//! - **The writer never waits for readers**, and publishing makes no system call unless a
//!   reader is parked (see [`RawWriter`] for readers with read-only mappings).
//! - **Readers need only read permission**: they wait on the futex of a read-only mapping.
//! - **A dead writer is reported as such**: a waiting reader gets [`Error::WriterGone`](crate::Error::WriterGone) within
//!   about [`CHECK_PERIOD`] of the writer's death (`SIGKILL` included), and follows a stream
//!   re-created under the same name ([`FrameInfo::restarted`]).
//! - **Still an array.** The object is a WA-1 shared array (see [`crate::array`]) of dims
//!   `(frame dims…, slots)`, followed by the control block: Julia's `WrappedArray` and `NumPy`
//!   open the ring as an array of N+1 dimensions. The layout is documented byte by byte in
//!   `docs/stream-layout.md`.
//!
//! The typed handles ([`StreamWriter<T>`], [`StreamReader<T>`]) are thin wrappers over the
//! untyped ones ([`RawWriter`], [`RawReader`]), which take frames as bytes with the element
//! type and frame dims known at run time, as the CLI, the Python package and relays need.
//!
//! ```
//! use std::time::Duration;
//! use ipcmem::stream::{StreamReader, StreamWriter};
//!
//! let name = format!("/ipcmem-doc-stream-{}", std::process::id());
//! let mut camera = StreamWriter::<f32>::create(name.as_str(), &[64, 48], 4)?; // 4 slots
//! let mut viewer = StreamReader::<f32>::open(name.as_str())?; // in another process
//!
//! camera.publish(&vec![1.0; 64 * 48])?;
//! camera.publish_with(|frame| frame.fill(2.0))?;
//!
//! let first = viewer.next(Duration::from_secs(1))?.expect("a frame");
//! assert_eq!((first.info.serial, first.info.lost, first.data[0]), (1, 0, 1.0));
//! let second = viewer.next(Duration::from_secs(1))?.expect("a frame");
//! assert_eq!((second.info.serial, second.data[0]), (2, 2.0));
//! assert!(viewer.next(Duration::from_millis(10))?.is_none()); // nothing new: timed out
//! # Ok::<(), ipcmem::Error>(())
//! ```

mod layout;
mod liveness;
mod raw;
mod typed;

use std::fmt;
use std::marker::PhantomData;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use layout::{
    check_control, Geometry, CONTROL_ALIGN, CONTROL_FIXED_SIZE, CONTROL_MAGIC, CONTROL_VERSION, MAX_SERIAL,
    SLOT_ENTRY_SIZE,
};
pub use raw::{FrameMut, RawReader, RawWriter, CHECK_PERIOD, READONLY_PROBE};
pub use typed::{Frame, StreamReader, StreamWriter};

use crate::array::{Element, ElementType};
use crate::error::Result;
use crate::key::Id;
use crate::shm::{Outcome, Persistence, SharedMemory, ShmOptions};

/// What a reader learns with each frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FrameInfo {
    /// The frame's serial: 1 for the first frame of the stream, then one more for each frame
    /// (a relay may skip serials: [`RawWriter::publish_with_serial`]).
    pub serial: u64,
    /// When the frame was acquired, in nanoseconds since the Unix epoch (`CLOCK_REALTIME`), as
    /// the writer said (or its publication time if it said nothing).
    pub acquired_ns: u64,
    /// When the frame was published, in nanoseconds since the Unix epoch.
    pub published_ns: u64,
    /// How many frames this reader missed since its previous one (overwritten before it came
    /// to them, or skipped serials); 0 if it missed none.
    pub lost: u64,
    /// The stream was re-created under the same name since this reader's previous frame (a new
    /// writer); serials start again from 1 and `lost` counts from there.
    pub restarted: bool,
}

impl FrameInfo {
    /// The acquisition time.
    pub fn acquired(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.acquired_ns)
    }

    /// The publication time.
    pub fn published(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.published_ns)
    }
}

/// The state of a stream's writer, as [`inspect`] finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriterStatus {
    /// No writer yet (made by `ipcmem stream create`).
    None,
    /// The writer's process runs.
    Alive,
    /// The writer's process is gone (killed, crashed) without closing the stream.
    Dead,
    /// The writer closed the stream.
    Closed,
    /// The writer runs in another pid namespace: its life cannot be told from here.
    Unknown,
    /// The state word holds no valid state (a broken or hostile control block).
    Invalid(u32),
}

impl WriterStatus {
    /// Whether a writer holds the stream (alive, or not known to be dead).
    pub fn is_alive(self) -> bool {
        matches!(self, Self::Alive | Self::Unknown)
    }

    /// `none`, `alive`, `dead`, `closed`, `unknown` or `invalid`.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Alive => "alive",
            Self::Dead => "dead",
            Self::Closed => "closed",
            Self::Unknown => "unknown",
            Self::Invalid(_) => "invalid",
        }
    }
}

/// What a stream is and where it stands: [`inspect`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StreamInfo {
    /// The element type.
    pub element: ElementType,
    /// The dimensions of a frame, first (fastest varying) first.
    pub frame_dims: Vec<usize>,
    /// The number of slots of the ring.
    pub slots: usize,
    /// The bytes of one frame.
    pub frame_bytes: usize,
    /// The serial of the newest frame (0: none yet).
    pub last_serial: u64,
    /// When the newest frame was published, ns since the Unix epoch (0: none yet).
    pub last_published_ns: u64,
    /// When the stream was made, ns since the Unix epoch.
    pub created_ns: u64,
    /// Frames per second over the last second, from the publication times still in the ring;
    /// `None` if fewer than two frames came in the last second.
    pub rate_hz: Option<f64>,
    /// The writer's process id, as recorded (0: none yet).
    pub writer_pid: u32,
    /// Whether the writer lives.
    pub writer: WriterStatus,
}

impl StreamInfo {
    /// When the newest frame was published, if any was.
    pub fn last_published(&self) -> Option<SystemTime> {
        (self.last_published_ns != 0).then(|| UNIX_EPOCH + Duration::from_nanos(self.last_published_ns))
    }

    /// Whether a writer holds the stream.
    pub fn writer_alive(&self) -> bool {
        self.writer.is_alive()
    }
}

impl fmt::Display for StreamInfo {
    /// As the STATUS column of `ipcmem list`: `stream f32 512x512 x4`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stream {} {} x{}", self.element, dims_text(&self.frame_dims), self.slots)
    }
}

/// What the stream `obj` is and where it stands: element type, frame dims, slots, newest
/// serial and publication time, the writer and whether it lives. Opens the object read-only.
///
/// Fails with [`Error::BadStream`](crate::Error::BadStream) or
/// [`Error::BadHeader`](crate::Error::BadHeader) if the object holds no valid stream.
pub fn inspect(obj: impl Into<Id>) -> Result<StreamInfo> {
    let obj = obj.into();
    raw::read_info(SharedMemory::open_readonly(obj.clone())?, obj)
}

/// What the open object `shm` holds, if it is a stream.
pub fn inspect_memory(shm: SharedMemory) -> Result<StreamInfo> {
    let obj = shm.id();
    raw::read_info(shm, obj)
}

/// What the stream `obj` is, if it is a valid stream now; `None` otherwise, whatever the
/// reason. Never waits and never fails: for listings. A POSIX object is read as a file
/// (`pread`), neither mapped nor locked, so that looking cannot change when a volatile object
/// is destroyed; a System V segment is attached read-only for the moment of the read.
pub fn try_inspect(obj: impl Into<Id>) -> Option<StreamInfo> {
    use std::os::unix::fs::FileExt;
    match obj.into() {
        Id::Name(name) => {
            let (file, object_len) = crate::array::open_for_peek(&name)?;
            let header = crate::array::peek_header(&file, object_len)?;
            if !layout::may_be_stream(&header) {
                return None;
            }
            let control = header.object_size().checked_next_multiple_of(CONTROL_ALIGN)?;
            let mut fixed = [0; CONTROL_FIXED_SIZE];
            file.read_exact_at(&mut fixed, u64::try_from(control).ok()?).ok()?;
            let geometry = check_control(&header, object_len, &fixed).ok()?;
            // Bounded by the object's size (checked above).
            let mut bytes = vec![0; geometry.object_size() - control];
            file.read_exact_at(&mut bytes, u64::try_from(control).ok()?).ok()?;
            Some(info_from_control(&geometry, &bytes))
        }
        id => {
            let shm = SharedMemory::open_readonly(id).ok()?;
            if !crate::array::try_inspect_memory(&shm).is_some_and(|header| layout::may_be_stream(&header)) {
                return None;
            }
            inspect_memory(shm).ok()
        }
    }
}

/// The figures of a stream from a copy of its control block (`control`, the whole block).
fn info_from_control(geometry: &Geometry, control: &[u8]) -> StreamInfo {
    use layout::field;
    let u64_at = |at: usize| control.get(at..at + 8).and_then(|b| b.try_into().ok()).map_or(0, u64::from_ne_bytes);
    let u32_at = |at: usize| control.get(at..at + 4).and_then(|b| b.try_into().ok()).map_or(0, u32::from_ne_bytes);
    let state = u32_at(field::WRITER_STATE);
    let identity = liveness::ProcessIdentity {
        pid: u32_at(field::WRITER_PID),
        start: u64_at(field::WRITER_START),
        pidns: u64_at(field::WRITER_PIDNS),
    };
    let writer = match layout::WriterState::from_word(state) {
        Some(layout::WriterState::None) => WriterStatus::None,
        Some(layout::WriterState::Closed) => WriterStatus::Closed,
        Some(layout::WriterState::Active | layout::WriterState::Claiming) => match identity.liveness() {
            liveness::Liveness::Alive => WriterStatus::Alive,
            liveness::Liveness::Dead => WriterStatus::Dead,
            liveness::Liveness::Unknown => WriterStatus::Unknown,
        },
        None => WriterStatus::Invalid(state),
    };
    // The rate over the last second, from the publication times of complete frames in the ring.
    let now = now_ns();
    let mut recent: Vec<(u64, u64)> = (0..geometry.slots)
        .filter_map(|slot| {
            let entry = field::SLOTS_TABLE + slot * SLOT_ENTRY_SIZE;
            let seq = u64_at(entry + field::SLOT_SEQ);
            let published = u64_at(entry + field::SLOT_PUBLISHED_NS);
            let complete = seq != 0 && seq % 2 == 0;
            (complete && now.saturating_sub(published) <= 1_000_000_000).then_some((seq / 2, published))
        })
        .collect();
    recent.sort_unstable();
    let rate_hz = match (recent.first(), recent.last()) {
        (Some(&(s0, t0)), Some(&(s1, t1))) if s1 > s0 && t1 > t0 => {
            #[allow(clippy::cast_precision_loss)] // a rate, to a few digits
            let rate = (s1 - s0) as f64 / ((t1 - t0) as f64 * 1e-9);
            Some(rate)
        }
        _ => None,
    };
    StreamInfo {
        element: geometry.element(),
        frame_dims: geometry.frame_dims().to_vec(),
        slots: geometry.slots(),
        frame_bytes: geometry.frame_bytes(),
        last_serial: u64_at(field::LAST_SERIAL),
        last_published_ns: u64_at(field::LAST_PUBLISHED_NS),
        created_ns: u64_at(field::CREATED_NS),
        rate_hz,
        writer_pid: identity.pid,
        writer,
    }
}

/// `640x480`.
pub(crate) fn dims_text(dims: &[usize]) -> String {
    dims.iter().map(ToString::to_string).collect::<Vec<_>>().join("x")
}

/// `f32 512x512 x4`.
pub(crate) fn describe(geometry: &Geometry) -> String {
    format!("{} {} x{}", geometry.element(), dims_text(geometry.frame_dims()), geometry.slots())
}

/// Now, in nanoseconds since the Unix epoch (`CLOCK_REALTIME`, read through the vDSO: no
/// system call).
pub fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
}

/// Options for making a stream or becoming its writer: those of [`ShmOptions`] that apply
/// (mode, volatile, reserve, prefault, huge pages, lock).
///
/// `StreamOptions::new()` makes untyped writers ([`create_raw`](Self::create_raw), …);
/// `StreamWriter::<T>::options()` gives `StreamOptions<T>`, whose [`create`](Self::create),
/// [`attach`](Self::attach) and [`create_or_attach`](Self::create_or_attach) make a
/// `StreamWriter<T>`: the element type is the one named, never inferred from later use.
#[must_use]
pub struct StreamOptions<T = ()> {
    shm: ShmOptions,
    element: PhantomData<fn() -> T>,
}

impl<T> Clone for StreamOptions<T> {
    fn clone(&self) -> Self {
        StreamOptions { shm: self.shm.clone(), element: PhantomData }
    }
}

impl<T> fmt::Debug for StreamOptions<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamOptions").field("shm", &self.shm).finish()
    }
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions::new()
    }
}

impl StreamOptions {
    /// The defaults: mode 0o600, volatile; untyped.
    pub fn new() -> StreamOptions {
        StreamOptions { shm: ShmOptions::new(), element: PhantomData }
    }
}

impl<T> StreamOptions<T> {
    /// The same options for writers of `U` frames.
    pub fn typed<U: Element>(self) -> StreamOptions<U> {
        StreamOptions { shm: self.shm, element: PhantomData }
    }

    /// The permission bits of a new stream; readers need only read permission.
    pub fn perms(mut self, perms: u32) -> Self {
        self.shm = self.shm.perms(perms);
        self
    }

    /// Whether a new stream is destroyed when no handle (writer or reader) holds it any more.
    pub fn volatile(mut self, volatile: bool) -> Self {
        self.shm = self.shm.volatile(volatile);
        self
    }

    /// How a new stream lives; see [`ShmOptions::persistence`].
    pub fn persistence(mut self, persistence: Persistence) -> Self {
        self.shm = self.shm.persistence(persistence);
        self
    }

    /// Whether to allocate every page now; see [`ShmOptions::reserve`].
    pub fn reserve(mut self, reserve: bool) -> Self {
        self.shm = self.shm.reserve(reserve);
        self
    }

    /// Whether every page is in memory when the call returns; see [`ShmOptions::prefault`].
    pub fn prefault(mut self, prefault: bool) -> Self {
        self.shm = self.shm.prefault(prefault);
        self
    }

    /// Whether the stream lives in huge pages; see [`ShmOptions::huge_pages`].
    pub fn huge_pages(mut self, huge_pages: bool) -> Self {
        self.shm = self.shm.huge_pages(huge_pages);
        self
    }

    /// Whether the writer's pages are locked in memory; see [`ShmOptions::lock`].
    pub fn lock(mut self, lock: bool) -> Self {
        self.shm = self.shm.lock(lock);
        self
    }

    /// Makes a new stream of `slots` frames of `element` with `frame_dims`, and becomes its
    /// writer. If a stream of that name exists whose writer is gone (closed, or its process
    /// dead), it is replaced, and its readers follow to the new one; any other object of that
    /// name gives [`Error::AlreadyExists`](crate::Error::AlreadyExists).
    pub fn create_raw(
        &self,
        obj: impl Into<Id>,
        element: ElementType,
        frame_dims: &[usize],
        slots: usize,
    ) -> Result<RawWriter> {
        RawWriter::create_with(&self.shm, obj.into(), element, frame_dims, slots)
    }

    /// Becomes the writer of the existing stream `obj`, which has no live writer (made by
    /// `ipcmem stream create`, or whose writer closed it or died). Serials go on from the last.
    pub fn attach_raw(&self, obj: impl Into<Id>) -> Result<RawWriter> {
        RawWriter::attach_with(&self.shm, obj.into(), crate::array::DEFAULT_WAIT)
    }

    /// Becomes the writer of the stream `obj` if it exists (with these element type, frame dims
    /// and slots), else makes it; says which.
    pub fn create_or_attach_raw(
        &self,
        obj: impl Into<Id>,
        element: ElementType,
        frame_dims: &[usize],
        slots: usize,
    ) -> Result<(RawWriter, Outcome)> {
        RawWriter::create_or_attach_with(&self.shm, &obj.into(), element, frame_dims, slots)
    }

    /// Makes a new stream without becoming its writer, as `ipcmem stream create` does: readers
    /// wait for a writer, which [`attach_raw`](Self::attach_raw) makes. Returns the object's
    /// handle (a volatile stream lives as long as some handle holds it).
    pub fn create_without_writer(
        &self,
        obj: impl Into<Id>,
        element: ElementType,
        frame_dims: &[usize],
        slots: usize,
    ) -> Result<SharedMemory> {
        RawWriter::create_object_only(&self.shm, &obj.into(), element, frame_dims, slots)
    }
}

impl<T: Element> StreamOptions<T> {
    /// As [`create_raw`](Self::create_raw), typed.
    pub fn create(&self, obj: impl Into<Id>, frame_dims: &[usize], slots: usize) -> Result<StreamWriter<T>> {
        StreamWriter::from_raw(self.create_raw(obj, T::TYPE, frame_dims, slots)?)
    }

    /// As [`attach_raw`](Self::attach_raw), typed: the stream must hold `T`.
    pub fn attach(&self, obj: impl Into<Id>) -> Result<StreamWriter<T>> {
        StreamWriter::from_raw(self.attach_raw(obj)?)
    }

    /// As [`create_or_attach_raw`](Self::create_or_attach_raw), typed.
    pub fn create_or_attach(
        &self,
        obj: impl Into<Id>,
        frame_dims: &[usize],
        slots: usize,
    ) -> Result<(StreamWriter<T>, Outcome)> {
        let (raw, outcome) = self.create_or_attach_raw(obj, T::TYPE, frame_dims, slots)?;
        Ok((StreamWriter::from_raw(raw)?, outcome))
    }
}
