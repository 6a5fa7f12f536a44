//! The typed handles: [`StreamWriter<T>`] and [`StreamReader<T>`], thin wrappers over the raw
//! ones that check the element type and copy `[T]` as bytes.

use std::marker::PhantomData;
use std::time::Duration;

use super::raw::{FrameMut, RawReader, RawWriter};
use super::{FrameInfo, Geometry, StreamOptions};
use crate::array::Element;
use crate::error::{Error, Result};
use crate::key::Id;

/// One frame as a reader received it: its elements (in memory order, column-major) and what
/// the reader learnt with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame<T> {
    /// The elements.
    pub data: Vec<T>,
    /// Serial, times, frames lost, restart.
    pub info: FrameInfo,
}

/// The writer of a stream of `T` frames. See [the module](super).
#[derive(Debug)]
pub struct StreamWriter<T: Element> {
    raw: RawWriter,
    element: PhantomData<fn(T)>,
}

impl<T: Element> StreamWriter<T> {
    /// Makes a new stream of `slots` frames of `frame_dims` (volatile, mode 0o600) and becomes
    /// its writer; see [`StreamOptions::create_raw`].
    pub fn create(obj: impl Into<Id>, frame_dims: &[usize], slots: usize) -> Result<Self> {
        Self::options().create(obj, frame_dims, slots)
    }

    /// Becomes the writer of an existing stream of `T` without a live writer; see
    /// [`StreamOptions::attach_raw`].
    pub fn attach(obj: impl Into<Id>) -> Result<Self> {
        Self::options().attach(obj)
    }

    /// The options builder (mode, volatile, prefault, huge pages, lock).
    pub fn options() -> StreamOptions<T> {
        StreamOptions::new().typed()
    }

    pub(super) fn from_raw(raw: RawWriter) -> Result<Self> {
        check_element::<T>(raw.geometry(), &raw.id())?;
        Ok(StreamWriter { raw, element: PhantomData })
    }

    /// The untyped writer underneath.
    pub fn raw(&mut self) -> &mut RawWriter {
        &mut self.raw
    }

    /// Element type, frame dims, slots, and where they lie.
    pub fn geometry(&self) -> &Geometry {
        self.raw.geometry()
    }

    /// The stream's identifier.
    pub fn id(&self) -> Id {
        self.raw.id()
    }

    /// The serial of the last frame published (0: none yet).
    pub fn last_serial(&self) -> u64 {
        self.raw.last_serial()
    }

    /// Publishes a copy of `frame` (one frame's elements, in memory order), acquired now;
    /// returns its serial.
    pub fn publish(&mut self, frame: &[T]) -> Result<u64> {
        self.raw.publish(bytemuck::cast_slice(frame))
    }

    /// Publishes a copy of `frame` acquired at `acquired_ns` (ns since the Unix epoch).
    pub fn publish_at(&mut self, frame: &[T], acquired_ns: u64) -> Result<u64> {
        self.raw.publish_at(bytemuck::cast_slice(frame), acquired_ns)
    }

    /// Publishes a copy of `frame` under `serial` (greater than the last); see
    /// [`RawWriter::publish_with_serial`].
    pub fn publish_with_serial(&mut self, serial: u64, acquired_ns: u64, frame: &[T]) -> Result<u64> {
        self.raw.publish_with_serial(serial, acquired_ns, bytemuck::cast_slice(frame))
    }

    /// Fills the next slot in place with `fill` (through [`FrameMut`]'s copies), then
    /// publishes it, acquired now; returns its serial.
    pub fn publish_with<E>(&mut self, fill: impl FnOnce(&mut FrameMut<'_, T>) -> Result<(), E>) -> Result<u64>
    where
        Error: From<E>,
    {
        self.raw.publish_with(|frame: &mut FrameMut<'_, u8>| fill(&mut frame.cast::<T>()))
    }
}

/// A reader of a stream of `T` frames. See [the module](super).
#[derive(Debug)]
pub struct StreamReader<T: Element> {
    raw: RawReader,
    element: PhantomData<fn() -> T>,
}

impl<T: Element> StreamReader<T> {
    /// Opens the stream `obj`, which must hold `T`; see [`RawReader::open`].
    pub fn open(obj: impl Into<Id>) -> Result<Self> {
        Self::from_raw(RawReader::open(obj)?)
    }

    /// Opens the stream `obj` read-only even where writing is permitted; see
    /// [`RawReader::open_readonly`].
    pub fn open_readonly(obj: impl Into<Id>) -> Result<Self> {
        Self::from_raw(RawReader::open_readonly(obj)?)
    }

    /// Opens the stream `obj`, waiting up to `timeout` for it to appear; see
    /// [`RawReader::open_wait`].
    pub fn open_wait(obj: impl Into<Id>, timeout: Duration) -> Result<Self> {
        Self::from_raw(RawReader::open_wait(obj, timeout)?)
    }

    /// The typed reader of `raw`, if its stream holds `T`.
    pub fn from_raw(raw: RawReader) -> Result<Self> {
        check_element::<T>(raw.geometry(), &raw.id())?;
        Ok(StreamReader { raw, element: PhantomData })
    }

    /// How long a waiting reader spins before it parks; see [`RawReader::with_spin`].
    #[must_use]
    pub fn with_spin(self, spin: Duration) -> Self {
        StreamReader { raw: self.raw.with_spin(spin), element: PhantomData }
    }

    /// The untyped reader underneath.
    pub fn raw(&mut self) -> &mut RawReader {
        &mut self.raw
    }

    /// Element type, frame dims, slots, and where they lie.
    pub fn geometry(&self) -> &Geometry {
        self.raw.geometry()
    }

    /// The number of elements of a frame.
    pub fn frame_len(&self) -> usize {
        self.raw.geometry().frame_len()
    }

    /// The next frame after the last one returned, waiting up to `timeout`: `Ok(None)` if none
    /// came in time. See [`RawReader::next_into`].
    pub fn next(&mut self, timeout: Duration) -> Result<Option<Frame<T>>> {
        let mut data = vec![T::zeroed(); self.frame_len()];
        Ok(self.next_into(&mut data, timeout)?.map(|info| Frame { data, info }))
    }

    /// The newest complete frame, without waiting: `Ok(None)` if none was published yet. See
    /// [`RawReader::latest_into`].
    pub fn latest(&mut self) -> Result<Option<Frame<T>>> {
        let mut data = vec![T::zeroed(); self.frame_len()];
        Ok(self.latest_into(&mut data)?.map(|info| Frame { data, info }))
    }

    /// As [`next`](Self::next), into `buf` (one frame's elements): no allocation.
    pub fn next_into(&mut self, buf: &mut [T], timeout: Duration) -> Result<Option<FrameInfo>> {
        self.raw.next_into(bytemuck::cast_slice_mut(buf), timeout)
    }

    /// As [`latest`](Self::latest), into `buf`: no allocation.
    pub fn latest_into(&mut self, buf: &mut [T]) -> Result<Option<FrameInfo>> {
        self.raw.latest_into(bytemuck::cast_slice_mut(buf))
    }
}

fn check_element<T: Element>(geometry: &Geometry, id: &Id) -> Result<()> {
    if geometry.element() != T::TYPE {
        return Err(Error::TypeMismatch { object: id.to_string(), expected: T::TYPE, found: geometry.element() });
    }
    Ok(())
}
