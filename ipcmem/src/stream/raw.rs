//! The untyped stream: frames as bytes, with the element type and frame dims known at run time
//! ([`RawWriter`], [`RawReader`]). The typed handles, the CLI, the Python package and the Zenoh
//! bridge are built on it.

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytemuck::Pod;

use super::layout::{self, field, Geometry, WriterState, CONTROL_FIXED_SIZE, CONTROL_MAGIC, MAX_SERIAL};
use super::liveness::{Liveness, ProcessIdentity};
use super::{now_ns, FrameInfo, StreamOptions};
use crate::array::{self, ElementType};
use crate::error::{Error, Result};
use crate::event::Event;
use crate::key::Id;
use crate::shm::{Access, Outcome, SharedMemory, ShmOptions};

/// How often a waiting reader looks at the writer's process and at the object's name: a dead
/// writer or a re-created stream is noticed within this time (and the time of one look).
pub const CHECK_PERIOD: Duration = Duration::from_millis(40);

/// How often, at most, a writer with no registered waiter wakes the futex anyway, for readers
/// that wait through read-only mappings and so cannot register (see [`RawWriter`]).
pub const READONLY_PROBE: Duration = Duration::from_millis(5);

/// How long a writer keeps waking the futex at every frame after it last found a read-only
/// waiter parked.
const READONLY_WINDOW: Duration = Duration::from_millis(200);

/// The longest pause of [`RawReader::open_wait`] between two looks for the stream.
const OPEN_POLL_MAX: Duration = Duration::from_millis(10);

/// Ranges of serials shorter than this are looked up one by one, longer ones by a pass over
/// the slot table.
const SEQUENTIAL_LOOKUP: u64 = 64;

/// Which end of a range of serials a read wants.
#[derive(Clone, Copy)]
enum Which {
    /// The oldest complete frame (`next`).
    Oldest,
    /// The newest complete frame (`latest`).
    Newest,
}
use Which::{Newest, Oldest};

/// How many times a read looks again at the newest serial when every candidate frame was
/// overwritten during its copy, before it waits for the next notification.
const READ_ATTEMPTS: usize = 4;

/// An open stream object: its memory, where things lie, its notification word.
struct Stream {
    shm: Arc<SharedMemory>,
    geometry: Geometry,
    event: Event,
    /// The identifier it was opened by (a System V key, to see it re-created).
    opened_as: Id,
}

impl Stream {
    /// Checks the object `shm` as a stream (array header, then control block; a System V
    /// segment still being filled is waited for up to `wait`).
    fn wrap(shm: SharedMemory, opened_as: Id, wait: Duration) -> Result<Stream> {
        let object = || shm.id().to_string();
        let header = array::await_header(&shm, wait)?;
        if !layout::may_be_stream(&header) {
            return Err(Error::BadStream {
                object: object(),
                reason: format!("it holds an array of {} dimension ({header}), not a stream", header.ndims()),
            });
        }
        let start = Instant::now();
        let geometry = loop {
            let control = header.object_size().next_multiple_of(layout::CONTROL_ALIGN);
            let magic = if control.checked_add(CONTROL_FIXED_SIZE).is_some_and(|end| end <= shm.len()) {
                shm.load_u32(control + field::MAGIC, Ordering::Acquire)?
            } else {
                CONTROL_MAGIC // let the check below say what is wrong
            };
            if magic == 0 && start.elapsed() < wait {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            let mut fixed = [0; CONTROL_FIXED_SIZE];
            if control.checked_add(CONTROL_FIXED_SIZE).is_some_and(|end| end <= shm.len()) {
                shm.read_at(control, &mut fixed)?;
            }
            break layout::check_control(&header, shm.len(), &fixed)
                .map_err(|reason| Error::BadStream { object: object(), reason })?;
        };
        let shm = Arc::new(shm);
        let event = Event::attach_at(&shm, geometry.field(field::NOTIFY))?;
        Ok(Stream { shm, geometry, event, opened_as })
    }

    fn object(&self) -> String {
        self.shm.id().to_string()
    }

    /// A 64-bit word of the control block (offset from the object's start, aligned, in bounds:
    /// every offset given is one of the geometry's, checked when the stream was opened).
    fn word(&self, at: usize) -> &AtomicU64 {
        debug_assert!(at.is_multiple_of(8) && at + 8 <= self.geometry.object_size());
        // SAFETY: `at` is an offset of the geometry, which `check_control` found within the
        // object (control block and slot table), 8-aligned (the control block is 64-aligned,
        // its fields 8-aligned) in a mapping that `shm` keeps for the life of `self`. Atomics
        // may be shared with other processes and any bits are a valid u64. Through a read-only
        // mapping the callers only load (the writer's stores go through a read-write handle).
        unsafe { AtomicU64::from_ptr(self.shm.as_mut_ptr().add(at).cast()) }
    }

    /// A 32-bit word of the control block; as [`word`](Self::word).
    fn word32(&self, at: usize) -> &AtomicU32 {
        debug_assert!(at.is_multiple_of(4) && at + 4 <= self.geometry.object_size());
        // SAFETY: as in `word`, 4-aligned.
        unsafe { AtomicU32::from_ptr(self.shm.as_mut_ptr().add(at).cast()) }
    }

    fn last_serial(&self) -> u64 {
        self.word(self.geometry.field(field::LAST_SERIAL)).load(Ordering::Acquire)
    }

    fn slot_of(&self, serial: u64) -> usize {
        // serial >= 1; the remainder is < slots, a usize.
        usize::try_from((serial - 1) % self.geometry.slots as u64).unwrap_or(0)
    }

    fn writer_record(&self) -> (Option<WriterState>, u32, ProcessIdentity) {
        let g = &self.geometry;
        // Acquire: pairs with the writer's release store of its state after its identity.
        let state = self.word32(g.field(field::WRITER_STATE)).load(Ordering::Acquire);
        let pid = self.word32(g.field(field::WRITER_PID)).load(Ordering::Relaxed);
        let identity = ProcessIdentity {
            pid,
            start: self.word(g.field(field::WRITER_START)).load(Ordering::Relaxed),
            pidns: self.word(g.field(field::WRITER_PIDNS)).load(Ordering::Relaxed),
        };
        (WriterState::from_word(state), state, identity)
    }

    /// Copies frame `serial` out of its slot into `buf`, under the slot's seqlock: `None` if the
    /// slot does not hold that frame complete, or if the writer overwrote it during the copy.
    fn read_frame(&self, serial: u64, buf: &mut [u8]) -> Result<Option<(u64, u64)>> {
        let Some(complete) = serial.checked_mul(2) else { return Ok(None) };
        let slot = self.slot_of(serial);
        let g = &self.geometry;
        let seq = self.word(g.slot_field(slot, field::SLOT_SEQ));
        // Acquire: pairs with the writer's release store of the even seq after the frame.
        if seq.load(Ordering::Acquire) != complete {
            return Ok(None);
        }
        copy_out(&self.shm, g.frame_offset(slot), buf)?;
        let acquired = self.word(g.slot_field(slot, field::SLOT_ACQUIRED_NS)).load(Ordering::Relaxed);
        let published = self.word(g.slot_field(slot, field::SLOT_PUBLISHED_NS)).load(Ordering::Relaxed);
        // Acquire fence: the copy's loads happen before the second look at seq; if the writer
        // began to overwrite the slot (odd seq, then a release fence, then its stores) and the
        // copy saw any of its stores, this load sees the changed seq.
        fence(Ordering::Acquire);
        if seq.load(Ordering::Relaxed) != complete {
            return Ok(None);
        }
        Ok(Some((acquired, published)))
    }

    /// The oldest (or newest) serial in `first..=last` whose frame is complete in its slot now,
    /// if any. A short range is looked up serial by serial; a long one (a ring of many slots
    /// with gaps in its serials, or a lying control block) by one pass over the slot table, so
    /// that the cost is bounded by the ring, never by the numbers in it.
    fn complete_serial(&self, first: u64, last: u64, which: Which) -> Option<u64> {
        if first == 0 || first > last {
            return None;
        }
        let g = &self.geometry;
        let complete = |serial: u64| {
            let slot = self.slot_of(serial);
            self.word(g.slot_field(slot, field::SLOT_SEQ)).load(Ordering::Relaxed) == serial * 2
        };
        if last - first < SEQUENTIAL_LOOKUP {
            return match which {
                Which::Oldest => (first..=last).find(|&serial| complete(serial)),
                Which::Newest => (first..=last).rev().find(|&serial| complete(serial)),
            };
        }
        let serials = (0..g.slots).filter_map(|slot| {
            let seq = self.word(g.slot_field(slot, field::SLOT_SEQ)).load(Ordering::Relaxed);
            let serial = seq / 2;
            // A complete frame whose serial belongs in this slot, within the range.
            (seq.is_multiple_of(2) && (first..=last).contains(&serial) && self.slot_of(serial) == slot)
                .then_some(serial)
        });
        match which {
            Which::Oldest => serials.min(),
            Which::Newest => serials.max(),
        }
    }

    /// Whether the name (or key) still finds this object.
    fn is_still_found(&self) -> bool {
        self.shm.is_still_found(&self.opened_as)
    }
}

/// The one place where frame bytes leave shared memory: a byte-wise atomic copy
/// (`crate::access::load` through [`SharedMemory::read_at`]).
fn copy_out(shm: &SharedMemory, offset: usize, buf: &mut [u8]) -> Result<()> {
    shm.read_at(offset, buf)
}

/// The one place where frame bytes enter shared memory (`crate::access::store`).
fn copy_in(shm: &SharedMemory, offset: usize, data: &[u8]) -> Result<()> {
    shm.write_at(offset, data)
}

/// The writer of a stream, frames as bytes: the element type and frame dims are the stream's,
/// known at run time. See [the module](super) for the typed [`StreamWriter`](super::StreamWriter).
///
/// Publishing makes no system call unless a reader waits: the frame is copied into the next
/// slot under the slot's seqlock, the serial and times are stored, and the notification word is
/// bumped; the futex is woken only if a reader is parked on it. A reader with a read-only
/// mapping cannot say that it is parked, so the writer also wakes the futex at most once per
/// [`READONLY_PROBE`] when no reader registered, and at every frame for a while after such a
/// wake found someone.
pub struct RawWriter {
    stream: Stream,
    serial: u64,
    probe_at: Instant,
    readonly_waiters_until: Instant,
}

impl fmt::Debug for RawWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawWriter")
            .field("object", &self.stream.object())
            .field("geometry", &self.stream.geometry)
            .field("serial", &self.serial)
            .finish_non_exhaustive()
    }
}

impl RawWriter {
    /// Makes a new stream of `slots` frames of `element` with `frame_dims` (volatile, mode
    /// 0o600) and becomes its writer. See [`StreamOptions::create_raw`].
    pub fn create(obj: impl Into<Id>, element: ElementType, frame_dims: &[usize], slots: usize) -> Result<RawWriter> {
        StreamOptions::new().create_raw(obj, element, frame_dims, slots)
    }

    /// Becomes the writer of an existing stream that has no live writer. See
    /// [`StreamOptions::attach_raw`].
    pub fn attach(obj: impl Into<Id>) -> Result<RawWriter> {
        StreamOptions::new().attach_raw(obj)
    }

    /// The options builder.
    pub fn options() -> StreamOptions {
        StreamOptions::new()
    }

    pub(super) fn create_with(
        options: &ShmOptions,
        obj: Id,
        element: ElementType,
        frame_dims: &[usize],
        slots: usize,
    ) -> Result<RawWriter> {
        let geometry = Geometry::new(element, frame_dims, slots)
            .map_err(|reason| Error::InvalidArgument { object: obj.to_string(), reason })?;
        // A stream whose writer is gone is replaced: its readers follow to the new one.
        for _ in 0..3 {
            match create_object(options, &obj, &geometry) {
                Err(Error::AlreadyExists { .. }) if replace_dead_stream(&obj)? => {}
                Err(error) => return Err(error),
                Ok(shm) => return RawWriter::claim(Stream::wrap(shm, obj, Duration::ZERO)?, true),
            }
        }
        Err(Error::AlreadyExists { object: obj.to_string() })
    }

    pub(super) fn create_object_only(
        options: &ShmOptions,
        obj: &Id,
        element: ElementType,
        frame_dims: &[usize],
        slots: usize,
    ) -> Result<SharedMemory> {
        let geometry = Geometry::new(element, frame_dims, slots)
            .map_err(|reason| Error::InvalidArgument { object: obj.to_string(), reason })?;
        create_object(options, obj, &geometry)
    }

    pub(super) fn attach_with(options: &ShmOptions, obj: Id, wait: Duration) -> Result<RawWriter> {
        let shm = options.clone().readonly(false).open(obj.clone())?;
        RawWriter::claim(Stream::wrap(shm, obj, wait)?, false)
    }

    pub(super) fn create_or_attach_with(
        options: &ShmOptions,
        obj: &Id,
        element: ElementType,
        frame_dims: &[usize],
        slots: usize,
    ) -> Result<(RawWriter, Outcome)> {
        for _ in 0..3 {
            match RawWriter::attach_with(options, obj.clone(), array::DEFAULT_WAIT) {
                Ok(writer) => {
                    let g = writer.geometry();
                    if g.element() != element || g.frame_dims() != frame_dims || g.slots() != slots {
                        return Err(Error::InvalidArgument {
                            object: obj.to_string(),
                            reason: format!(
                                "the existing stream is {}, not {element} {} x{slots}",
                                super::describe(g),
                                super::dims_text(frame_dims)
                            ),
                        });
                    }
                    return Ok((writer, Outcome::Opened));
                }
                Err(Error::NotFound { .. }) => {}
                Err(error) => return Err(error),
            }
            match RawWriter::create_with(options, obj.clone(), element, frame_dims, slots) {
                Ok(writer) => return Ok((writer, Outcome::Created)),
                Err(Error::AlreadyExists { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        Err(Error::AlreadyExists { object: obj.to_string() })
    }

    /// Takes the writer's place in the control block: refused while another writer lives.
    fn claim(stream: Stream, created: bool) -> Result<RawWriter> {
        let g = &stream.geometry;
        let state_word = stream.word32(g.field(field::WRITER_STATE));
        let (state, raw, previous) = stream.writer_record();
        let free = match state {
            _ if created => true,
            Some(WriterState::None | WriterState::Closed) => true,
            Some(WriterState::Active | WriterState::Claiming) => previous.liveness() == Liveness::Dead,
            None => false,
        };
        if !free
            || state_word
                .compare_exchange(raw, WriterState::Claiming as u32, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return Err(Error::InvalidArgument {
                object: stream.object(),
                reason: format!("the stream has a writer already (pid {}, alive)", previous.pid),
            });
        }
        let me = ProcessIdentity::current();
        stream.word32(g.field(field::WRITER_PID)).store(me.pid, Ordering::Relaxed);
        stream.word(g.field(field::WRITER_START)).store(me.start, Ordering::Relaxed);
        stream.word(g.field(field::WRITER_PIDNS)).store(me.pidns, Ordering::Relaxed);
        // Release: a reader that sees Active sees the identity above.
        state_word.store(WriterState::Active as u32, Ordering::Release);
        let serial = stream.last_serial().min(MAX_SERIAL);
        let now = Instant::now();
        Ok(RawWriter { stream, serial, probe_at: now, readonly_waiters_until: now })
    }

    /// Where the stream's parts lie, its element type, frame dims and slots.
    pub fn geometry(&self) -> &Geometry {
        &self.stream.geometry
    }

    /// The stream's identifier.
    pub fn id(&self) -> Id {
        self.stream.shm.id()
    }

    /// The shared memory object of the stream.
    pub fn memory(&self) -> &SharedMemory {
        &self.stream.shm
    }

    /// The serial of the last frame published (0: none yet).
    pub fn last_serial(&self) -> u64 {
        self.serial
    }

    /// Publishes a copy of `frame` (exactly [`Geometry::frame_bytes`] bytes), acquired now;
    /// returns its serial.
    pub fn publish(&mut self, frame: &[u8]) -> Result<u64> {
        self.publish_at(frame, now_ns())
    }

    /// Publishes a copy of `frame`, acquired at `acquired_ns` (nanoseconds since the Unix
    /// epoch); returns its serial.
    pub fn publish_at(&mut self, frame: &[u8], acquired_ns: u64) -> Result<u64> {
        self.publish_with_serial(self.serial + 1, acquired_ns, frame)
    }

    /// Publishes a copy of `frame` under the given `serial`, which must be greater than the
    /// last one (a gap is counted as lost by the readers): for a relay that keeps the serials
    /// of a remote stream. Returns the serial.
    pub fn publish_with_serial(&mut self, serial: u64, acquired_ns: u64, frame: &[u8]) -> Result<u64> {
        self.check_frame_len(frame.len())?;
        self.publish_in_place(serial, acquired_ns, |slot| copy_in(slot.shm, slot.offset, frame))
    }

    /// Fills the next slot in place with `fill`, then publishes it (acquired now); returns
    /// the serial, or the error of `fill` (the slot then holds no frame).
    pub fn publish_with<E>(&mut self, fill: impl FnOnce(&mut FrameMut<'_, u8>) -> Result<(), E>) -> Result<u64>
    where
        Error: From<E>,
    {
        self.publish_with_at(now_ns(), fill)
    }

    /// As [`publish_with`](Self::publish_with), acquired at `acquired_ns`.
    pub fn publish_with_at<E>(
        &mut self,
        acquired_ns: u64,
        fill: impl FnOnce(&mut FrameMut<'_, u8>) -> Result<(), E>,
    ) -> Result<u64>
    where
        Error: From<E>,
    {
        let serial = self.serial + 1;
        self.publish_in_place(serial, acquired_ns, |slot| fill(slot).map_err(Error::from))
    }

    fn check_frame_len(&self, len: usize) -> Result<()> {
        let want = self.stream.geometry.frame_bytes;
        if len != want {
            return Err(Error::InvalidArgument {
                object: self.stream.object(),
                reason: format!("a frame of {len} bytes for a stream of {want}-byte frames"),
            });
        }
        Ok(())
    }

    /// The publication protocol: odd seq, fence, frame, times, even seq, newest serial, wake.
    fn publish_in_place(
        &mut self,
        serial: u64,
        acquired_ns: u64,
        fill: impl FnOnce(&mut FrameMut<'_, u8>) -> Result<()>,
    ) -> Result<u64> {
        if serial <= self.serial || serial > MAX_SERIAL {
            return Err(Error::InvalidArgument {
                object: self.stream.object(),
                reason: format!(
                    "serial {serial} must be greater than the last ({}) and at most {MAX_SERIAL}",
                    self.serial
                ),
            });
        }
        let stream = &self.stream;
        let g = &stream.geometry;
        let slot = stream.slot_of(serial);
        let seq = stream.word(g.slot_field(slot, field::SLOT_SEQ));
        seq.store(2 * serial - 1, Ordering::Relaxed);
        // Release fence: the odd seq is visible before any byte of the new frame.
        fence(Ordering::Release);
        let mut frame =
            FrameMut { shm: &stream.shm, offset: g.frame_offset(slot), len: g.frame_bytes, element: PhantomData };
        let filled = fill(&mut frame);
        if let Err(error) = filled {
            // The slot holds no frame now: its seq says so (0 matches no serial).
            seq.store(0, Ordering::Release);
            return Err(error);
        }
        let published_ns = now_ns();
        stream.word(g.slot_field(slot, field::SLOT_ACQUIRED_NS)).store(acquired_ns, Ordering::Relaxed);
        stream.word(g.slot_field(slot, field::SLOT_PUBLISHED_NS)).store(published_ns, Ordering::Relaxed);
        // Release: a reader that sees the even seq sees the frame and its times.
        seq.store(2 * serial, Ordering::Release);
        stream.word(g.field(field::LAST_PUBLISHED_NS)).store(published_ns, Ordering::Relaxed);
        stream.word(g.field(field::LAST_SERIAL)).store(serial, Ordering::Release);
        self.serial = serial;
        self.wake_readers();
        Ok(serial)
    }

    /// Wakes the parked readers: a system call only if one registered, or, for read-only
    /// readers that cannot register, now and then (see the type's documentation).
    fn wake_readers(&mut self) {
        if self.stream.event.notify_all() > 0 {
            return;
        }
        let now = Instant::now();
        if now < self.readonly_waiters_until || now >= self.probe_at {
            self.probe_at = now + READONLY_PROBE;
            if self.stream.event.wake_all_parked() > 0 {
                self.readonly_waiters_until = now + READONLY_WINDOW;
            }
        }
    }
}

impl Drop for RawWriter {
    /// Says that the writer closed the stream, and wakes its readers, which then get
    /// [`Error::WriterGone`] once they have read every frame.
    fn drop(&mut self) {
        let g = &self.stream.geometry;
        self.stream.word32(g.field(field::WRITER_STATE)).store(WriterState::Closed as u32, Ordering::Release);
        self.stream.event.notify_all();
        self.stream.event.wake_all_parked();
    }
}

/// The slot being filled by [`RawWriter::publish_with`] or
/// [`StreamWriter::publish_with`](super::StreamWriter::publish_with): writes go straight into
/// shared memory, as byte-wise atomic copies (readers may be looking at the slot, and will
/// see that it changed).
pub struct FrameMut<'a, T: Pod> {
    shm: &'a SharedMemory,
    offset: usize,
    /// In bytes.
    len: usize,
    element: PhantomData<T>,
}

impl<T: Pod> FrameMut<'_, T> {
    /// The number of elements of the frame.
    pub fn len(&self) -> usize {
        self.len / size_of::<T>()
    }

    /// Always `false`: a frame has at least one element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `data` to the elements from `first` on.
    pub fn write(&mut self, first: usize, data: &[T]) -> Result<()> {
        let start = first.checked_mul(size_of::<T>());
        let bytes: &[u8] = bytemuck::cast_slice(data);
        match start.and_then(|start| Some((start, start.checked_add(bytes.len())?))) {
            Some((start, end)) if end <= self.len => copy_in(self.shm, self.offset + start, bytes),
            _ => Err(Error::InvalidArgument {
                object: self.shm.id().to_string(),
                reason: format!("elements {first}..{first}+{} run past the frame ({})", data.len(), self.len()),
            }),
        }
    }

    /// Copies `data` over the whole frame (exactly [`len`](Self::len) elements).
    pub fn copy_from_slice(&mut self, data: &[T]) -> Result<()> {
        if data.len() != self.len() {
            return Err(Error::InvalidArgument {
                object: self.shm.id().to_string(),
                reason: format!("{} elements for a frame of {}", data.len(), self.len()),
            });
        }
        self.write(0, data)
    }

    /// Sets every element to `value`.
    pub fn fill(&mut self, value: T) -> Result<()> {
        let chunk = vec![value; (64 * 1024 / size_of::<T>().max(1)).max(1)];
        let mut first = 0;
        while first < self.len() {
            let count = chunk.len().min(self.len() - first);
            self.write(first, &chunk[..count])?;
            first += count;
        }
        Ok(())
    }

    /// The address of the first element, for `unsafe` code that fills the frame itself (a
    /// camera driver's DMA, a C library). Any write through it must be atomic or volatile:
    /// readers may copy the slot concurrently (they detect it and drop their copy).
    pub fn as_mut_ptr(&mut self) -> *mut T {
        // In bounds: the slot lies within the mapping (checked when the stream was opened);
        // aligned: the data offset is a multiple of 64 and frames are whole elements.
        self.shm.as_mut_ptr().wrapping_add(self.offset).cast()
    }

    /// The same frame seen as elements of another type of the same total size.
    pub(crate) fn cast<U: Pod>(&mut self) -> FrameMut<'_, U> {
        FrameMut { shm: self.shm, offset: self.offset, len: self.len, element: PhantomData }
    }
}

/// Creates the object of a new stream, header and control block written before it is visible
/// (POSIX) or before its magic words say it is complete (System V).
fn create_object(options: &ShmOptions, obj: &Id, geometry: &Geometry) -> Result<SharedMemory> {
    let mut written = Ok(());
    let shm = options.clone().readonly(false).create_with(obj.clone(), geometry.object_size(), |shm| {
        written = write_layout(shm, geometry);
    })?;
    if let Err(error) = written {
        let _ = shm.remove();
        return Err(error);
    }
    Ok(shm)
}

/// Writes the control block (its magic last, release), then the array header (its magic last).
fn write_layout(shm: &SharedMemory, geometry: &Geometry) -> Result<()> {
    let control = geometry.control_offset();
    let fixed = geometry.encode_fixed(now_ns());
    shm.write_at(control + 4, &fixed[4..])?;
    shm.atomic_u32s(control + field::MAGIC, 1)?[0].store(CONTROL_MAGIC, Ordering::Release);
    array::write_header(shm, &geometry.header)
}

/// Removes the stream `obj` if its writer is gone (closed, or its process dead); says whether
/// it did. An object that is no stream, or whose writer lives or never came, stays.
fn replace_dead_stream(obj: &Id) -> Result<bool> {
    let shm = match SharedMemory::open_readonly(obj.clone()) {
        Ok(shm) => shm,
        Err(Error::NotFound { .. }) => return Ok(true), // gone meanwhile: try again
        Err(error) => return Err(error),
    };
    let Ok(stream) = Stream::wrap(shm, obj.clone(), Duration::ZERO) else { return Ok(false) };
    let (state, _, writer) = stream.writer_record();
    let gone = match state {
        Some(WriterState::Closed) => true,
        Some(WriterState::Active | WriterState::Claiming) => writer.liveness() == Liveness::Dead,
        Some(WriterState::None) | None => false,
    };
    if gone {
        stream.shm.remove()?;
    }
    Ok(gone)
}

/// A reader of a stream, frames as bytes. See [the module](super) for the typed
/// [`StreamReader`](super::StreamReader).
pub struct RawReader {
    stream: Stream,
    /// The element type at open (a re-created stream must keep it).
    element: ElementType,
    /// Read-write if permitted, or read-only whatever is permitted.
    access: Access,
    /// The serial of the last frame returned (or the one before the newest at open).
    previous: u64,
    /// The stream was re-created since the last frame returned: the next `FrameInfo` says so.
    restarted: bool,
    /// The writer already reported gone, so as not to report it twice.
    reported_gone: Option<(u32, ProcessIdentity)>,
    /// The last look at the object's name.
    last_check: Option<Instant>,
    /// The last look at the writer's process.
    last_liveness: Option<Instant>,
    spin: Duration,
}

impl fmt::Debug for RawReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawReader")
            .field("object", &self.stream.object())
            .field("geometry", &self.stream.geometry)
            .field("previous", &self.previous)
            .finish_non_exhaustive()
    }
}

impl RawReader {
    /// Opens the stream `obj` to read it: read-write if permitted (so that a waiting reader
    /// can register and be woken at once), read-only otherwise (read permission is enough).
    /// The first [`next`](Self::next_into) returns the newest frame already published, if
    /// any, else the first one to come.
    pub fn open(obj: impl Into<Id>) -> Result<RawReader> {
        let obj = obj.into();
        Ok(RawReader::new(open_stream(&obj, array::DEFAULT_WAIT, Access::ReadWrite)?, Access::ReadWrite))
    }

    /// Opens the stream `obj` read-only even where writing is permitted: the mapping cannot
    /// change the stream, whatever the process does. A waiting reader then cannot register as
    /// parked, and is woken by the writer's probes (see [`RawWriter`]): up to
    /// [`READONLY_PROBE`] later after a quiet spell.
    pub fn open_readonly(obj: impl Into<Id>) -> Result<RawReader> {
        let obj = obj.into();
        Ok(RawReader::new(open_stream(&obj, array::DEFAULT_WAIT, Access::ReadOnly)?, Access::ReadOnly))
    }

    /// Opens the stream `obj`, waiting up to `timeout` for it to be created (and its header
    /// to be written). If it had to wait, the first [`next`](Self::next_into) returns the
    /// stream's first frame (or counts it lost if the ring no longer holds it); else, as
    /// [`open`](Self::open). Polls with a bounded back-off (1 ms doubling up to 10 ms) rather than
    /// inotify: it works alike for System V keys, and costs at most 100 looks a second.
    pub fn open_wait(obj: impl Into<Id>, timeout: Duration) -> Result<RawReader> {
        let obj = obj.into();
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        let mut waited = false;
        loop {
            let left = timeout.saturating_sub(start.elapsed());
            match open_stream(&obj, left.min(array::DEFAULT_WAIT), Access::ReadWrite) {
                Err(Error::NotFound { .. } | Error::NotInitialised { .. }) if !left.is_zero() => waited = true,
                // A stream that appeared while this reader waited is read from its first frame.
                Ok(stream) if waited => {
                    return Ok(RawReader { previous: 0, ..RawReader::new(stream, Access::ReadWrite) })
                }
                Err(Error::NotFound { object, .. }) => {
                    return Err(Error::NotFound {
                        object,
                        hint: Some("no stream appeared under that name before the timeout"),
                    })
                }
                other => return other.map(|stream| RawReader::new(stream, Access::ReadWrite)),
            }
            std::thread::sleep(pause.min(left));
            pause = (pause * 2).min(OPEN_POLL_MAX);
        }
    }

    fn new(stream: Stream, access: Access) -> RawReader {
        let previous = stream.last_serial().min(MAX_SERIAL).saturating_sub(1);
        RawReader {
            spin: stream.event.spin(),
            element: stream.geometry.element(),
            access,
            stream,
            previous,
            restarted: false,
            reported_gone: None,
            last_check: None,
            last_liveness: None,
        }
    }

    /// How long a waiting reader spins before it parks on the futex (default
    /// [`Event::DEFAULT_SPIN`]); zero parks at once.
    #[must_use]
    pub fn with_spin(mut self, spin: Duration) -> RawReader {
        self.spin = spin;
        self.stream.event.set_spin(spin);
        self
    }

    /// Where the stream's parts lie, its element type, frame dims and slots.
    pub fn geometry(&self) -> &Geometry {
        &self.stream.geometry
    }

    /// The stream's identifier.
    pub fn id(&self) -> Id {
        self.stream.shm.id()
    }

    /// The shared memory object of the stream (the current one, after a restart).
    pub fn memory(&self) -> &SharedMemory {
        &self.stream.shm
    }

    /// The serial of the last frame this reader returned.
    pub fn last_returned(&self) -> u64 {
        self.previous
    }

    /// Copies the next frame after the last one returned into `buf` ([`Geometry::frame_bytes`]
    /// bytes), waiting up to `timeout` for it: `Ok(None)` if none came in time. Frames the
    /// writer overwrote before this reader got to them are skipped and counted in
    /// [`FrameInfo::lost`]. Fails with [`Error::WriterGone`] (once per writer) if the writer
    /// died or closed the stream and every frame was read; after a re-creation of the stream
    /// under the same name, reads the new one ([`FrameInfo::restarted`]).
    pub fn next_into(&mut self, buf: &mut [u8], timeout: Duration) -> Result<Option<FrameInfo>> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            self.follow_restart(false);
            // Again at each turn: a stream re-created with other frames cannot fill `buf`.
            self.check_buffer(buf.len())?;
            let seen = self.stream.event.value();
            if let Some(info) = self.try_next(buf)? {
                return Ok(Some(info));
            }
            self.check_writer()?;
            let left = deadline.map_or(CHECK_PERIOD, |deadline| deadline.saturating_duration_since(Instant::now()));
            if left.is_zero() {
                return Ok(None);
            }
            // Bounded: the writer's process and the name are looked at between two waits.
            self.stream.event.wait_timeout(seen, left.min(CHECK_PERIOD))?;
        }
    }

    /// Copies the newest complete frame into `buf`, without waiting: `Ok(None)` if no frame
    /// was published yet. It may be the frame returned last; `lost` counts the frames skipped
    /// since then.
    pub fn latest_into(&mut self, buf: &mut [u8]) -> Result<Option<FrameInfo>> {
        self.check_buffer(buf.len())?;
        self.follow_restart(false);
        for _ in 0..READ_ATTEMPTS {
            let last = self.stream.last_serial().min(MAX_SERIAL);
            let oldest = self.oldest(last);
            let mut below = last;
            while let Some(serial) = self.stream.complete_serial(oldest, below, Newest) {
                if let Some(times) = self.stream.read_frame(serial, buf)? {
                    return Ok(Some(self.returned(serial, times)));
                }
                below = serial - 1;
            }
            if self.stream.last_serial() == last {
                break;
            }
        }
        self.check_writer()?;
        Ok(None)
    }

    /// The next frame available now, if any.
    fn try_next(&mut self, buf: &mut [u8]) -> Result<Option<FrameInfo>> {
        for _ in 0..READ_ATTEMPTS {
            let last = self.stream.last_serial();
            if last <= self.previous || last > MAX_SERIAL {
                return Ok(None);
            }
            let mut first = self.oldest(last).max(self.previous + 1);
            while let Some(serial) = self.stream.complete_serial(first, last, Oldest) {
                if let Some(times) = self.stream.read_frame(serial, buf)? {
                    return Ok(Some(self.returned(serial, times)));
                }
                // Overwritten during the copy: a newer one.
                first = serial + 1;
            }
            if self.stream.last_serial() == last {
                // Nothing readable although the serial says so: a gap in the serials
                // covers the whole ring, or the control block lies. Wait for a change.
                return Ok(None);
            }
        }
        Ok(None)
    }

    /// The oldest serial that the ring may still hold when `last` is the newest.
    fn oldest(&self, last: u64) -> u64 {
        last.saturating_sub(self.stream.geometry.slots as u64 - 1).max(1)
    }

    fn returned(&mut self, serial: u64, (acquired_ns, published_ns): (u64, u64)) -> FrameInfo {
        let lost = serial.saturating_sub(self.previous + 1);
        self.previous = self.previous.max(serial);
        FrameInfo { serial, acquired_ns, published_ns, lost, restarted: std::mem::take(&mut self.restarted) }
    }

    fn check_buffer(&self, len: usize) -> Result<()> {
        let element = self.stream.geometry.element();
        if element != self.element {
            return Err(Error::InvalidArgument {
                object: self.stream.object(),
                reason: format!(
                    "the stream was re-created with frames of {element}, not {}: open it anew",
                    self.element
                ),
            });
        }
        let want = self.stream.geometry.frame_bytes;
        if len != want {
            return Err(Error::InvalidArgument {
                object: self.stream.object(),
                reason: format!("a buffer of {len} bytes for frames of {want}"),
            });
        }
        Ok(())
    }

    /// Every [`CHECK_PERIOD`] (or now if `force`): if the name now finds another stream (a new
    /// writer re-created it), reads that one from its first frame on.
    fn follow_restart(&mut self, force: bool) {
        let now = Instant::now();
        if !force && self.last_check.is_some_and(|last| now.duration_since(last) < CHECK_PERIOD) {
            return;
        }
        self.last_check = Some(now);
        if self.stream.is_still_found() {
            return;
        }
        // Another object under the name, or none: a stream made anew is read from serial 1.
        if let Ok(mut stream) = open_stream(&self.stream.opened_as, Duration::ZERO, self.access) {
            stream.event.set_spin(self.spin);
            self.stream = stream;
            self.previous = 0;
            self.restarted = true;
            self.reported_gone = None;
        }
    }

    /// Fails with [`Error::WriterGone`] if the writer closed the stream or its process died,
    /// once for each writer; a bad state word is [`Error::BadStream`].
    fn check_writer(&mut self) -> Result<()> {
        let (state, raw, writer) = self.stream.writer_record();
        let reason = match state {
            Some(WriterState::Closed) => "it closed the stream",
            Some(WriterState::Active | WriterState::Claiming) => {
                // The process is looked at (a read of /proc) at most twice per check period.
                let now = Instant::now();
                if self.last_liveness.is_some_and(|last| now.duration_since(last) < CHECK_PERIOD / 2) {
                    return Ok(());
                }
                self.last_liveness = Some(now);
                if writer.liveness() != Liveness::Dead {
                    return Ok(());
                }
                "its process died"
            }
            Some(WriterState::None) => return Ok(()),
            None => {
                return Err(Error::BadStream {
                    object: self.stream.object(),
                    reason: format!("writer state {raw} is not one of 0 to 3"),
                })
            }
        };
        if self.reported_gone == Some((raw, writer)) {
            return Ok(());
        }
        // A new stream may have replaced this one already.
        self.follow_restart(true);
        if self.restarted {
            return Ok(());
        }
        self.reported_gone = Some((raw, writer));
        Err(Error::WriterGone { object: self.stream.object(), pid: writer.pid, reason })
    }
}

/// Opens `obj` as a stream: read-write if permitted, else read-only.
fn open_stream(obj: &Id, wait: Duration, access: Access) -> Result<Stream> {
    let shm = match access {
        Access::ReadOnly => SharedMemory::open_readonly(obj.clone())?,
        Access::ReadWrite => match SharedMemory::open(obj.clone()) {
            Err(Error::PermissionDenied { .. }) => SharedMemory::open_readonly(obj.clone())?,
            other => other?,
        },
    };
    Stream::wrap(shm, obj.clone(), wait)
}

/// What [`inspect`](super::inspect) reads of an open stream: a copy of its control block.
pub(super) fn read_info(shm: SharedMemory, obj: Id) -> Result<super::StreamInfo> {
    let stream = Stream::wrap(shm, obj, Duration::ZERO)?;
    let g = &stream.geometry;
    let mut control = vec![0; g.object_size() - g.control_offset()];
    stream.shm.read_at(g.control_offset(), &mut control)?;
    Ok(super::info_from_control(g, &control))
}
