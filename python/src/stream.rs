//! Frame streams: `ipcmem.StreamWriter` publishes NumPy frames into a ring in shared memory,
//! `ipcmem.StreamReader` returns each as a fresh NumPy array with its `FrameInfo` (serial,
//! times, frames lost), never a torn one. Every wait releases the GIL.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use numpy::npyffi::{self, npy_intp, NPY_ARRAY_F_CONTIGUOUS, PY_ARRAY_API};
use numpy::{PyArrayDescr, PyArrayDescrMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyStopIteration, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::convert::{numpy_name, to_dims, to_element, to_perms, to_timeout, to_usize};
use crate::errors::{invalid, OrRaise};
use crate::ids::{from_id, to_id};
use crate::sync::{wait_in_slices, SIGNAL_CHECK};
use ipcmem::array::ElementType;
use ipcmem::stream::{FrameInfo, Geometry, RawReader, RawWriter, StreamOptions};
use ipcmem::Error;

/// What a reader learns with each frame.
///
/// ``serial`` counts from 1; ``lost`` is the number of frames this reader missed since its
/// previous one (so that frames returned plus lost is what the writer published);
/// ``acquired`` and ``published`` are seconds since the Unix epoch, as ``time.time()``
/// (``acquired_ns``, ``published_ns``: exact nanoseconds); ``restarted`` says the stream was
/// re-created under the same name (a new writer, serials from 1 again).
#[pyclass(module = "ipcmem", name = "FrameInfo", frozen, eq, get_all)]
#[derive(Clone, PartialEq)]
pub struct PyFrameInfo {
    serial: u64,
    acquired_ns: u64,
    published_ns: u64,
    lost: u64,
    restarted: bool,
}

impl PyFrameInfo {
    /// The frame's serial.
    pub(crate) fn serial(&self) -> u64 {
        self.serial
    }

    /// The same, with `lost` frames lost before it.
    pub(crate) fn with_lost(self, lost: u64) -> PyFrameInfo {
        PyFrameInfo { lost, ..self }
    }
}

impl From<FrameInfo> for PyFrameInfo {
    fn from(info: FrameInfo) -> PyFrameInfo {
        PyFrameInfo {
            serial: info.serial,
            acquired_ns: info.acquired_ns,
            published_ns: info.published_ns,
            lost: info.lost,
            restarted: info.restarted,
        }
    }
}

#[pymethods]
impl PyFrameInfo {
    /// When the frame was acquired, in seconds since the Unix epoch.
    #[getter]
    #[allow(clippy::cast_precision_loss)] // a float of seconds, as time.time()
    fn acquired(&self) -> f64 {
        self.acquired_ns as f64 / 1e9
    }

    /// When the frame was published, in seconds since the Unix epoch.
    #[getter]
    #[allow(clippy::cast_precision_loss)]
    fn published(&self) -> f64 {
        self.published_ns as f64 / 1e9
    }

    fn __repr__(&self) -> String {
        format!(
            "FrameInfo(serial={}, lost={}, acquired_ns={}, published_ns={}, restarted={})",
            self.serial,
            self.lost,
            self.acquired_ns,
            self.published_ns,
            if self.restarted { "True" } else { "False" }
        )
    }
}

/// The writer of a frame stream: a ring of `slots` frames of `dtype` and `frame_shape` in a
/// shared object, which readers in other processes (Python, Rust, the ``ipcmem stream``
/// command) follow. Publishing never waits for readers.
///
/// Frames are in Fortran order, as every array of ipcmem: a stream of ``frame_shape=(640,
/// 480)`` takes arrays of that shape, and publishes fastest from a Fortran-ordered one. A
/// C-ordered image ``img`` of shape ``(480, 640)`` is the same memory as ``img.T``, of shape
/// ``(640, 480)`` in Fortran order: publish ``img.T`` to a stream of frame shape ``(640, 480)``.
///
/// >>> import numpy as np, ipcmem
/// >>> camera = ipcmem.StreamWriter.create("/example-camera", np.uint16, (640, 480), slots=8)
/// >>> frame = np.zeros((640, 480), np.uint16, order="F")
/// >>> camera.publish(frame)            # returns the serial
/// 1
#[pyclass(module = "ipcmem", name = "StreamWriter")]
pub struct PyStreamWriter {
    writer: Option<RawWriter>,
    id: ipcmem::Id,
}

impl PyStreamWriter {
    fn writer(&mut self) -> PyResult<&mut RawWriter> {
        let id = &self.id;
        self.writer.as_mut().ok_or_else(|| invalid(id, "the writer is closed"))
    }

    fn geometry(&self) -> PyResult<&Geometry> {
        self.writer.as_ref().map(RawWriter::geometry).ok_or_else(|| invalid(&self.id, "the writer is closed"))
    }
}

#[pymethods]
impl PyStreamWriter {
    /// Makes a new stream and becomes its writer. A stream of that name whose writer is gone
    /// (closed, or its process dead) is replaced, and its readers follow to the new one.
    /// Options as for ``SharedMemory``: `perms` (readers need only read permission),
    /// `volatile` (default True), `prefault`, `huge_pages`, `lock`, `reserve`.
    #[staticmethod]
    #[pyo3(signature = (obj, dtype, frame_shape, slots, *, perms = None, volatile = true,
                        prefault = false, huge_pages = false, lock = false, reserve = false),
            text_signature = "(obj, dtype, frame_shape, slots, *, perms=0o600, volatile=True, prefault=False, huge_pages=False, lock=False, reserve=False)")]
    #[allow(clippy::too_many_arguments, clippy::fn_params_excessive_bools)]
    fn create(
        obj: &Bound<'_, PyAny>,
        dtype: &Bound<'_, PyAny>,
        frame_shape: &Bound<'_, PyAny>,
        slots: &Bound<'_, PyAny>,
        perms: Option<&Bound<'_, PyAny>>,
        volatile: bool,
        prefault: bool,
        huge_pages: bool,
        lock: bool,
        reserve: bool,
    ) -> PyResult<PyStreamWriter> {
        let id = to_id(obj)?;
        let element = to_element(dtype)?;
        let dims = to_dims(frame_shape)?;
        let slots = to_usize(slots, "slots")?;
        let perms = perms.map(to_perms).transpose()?.unwrap_or(0o600);
        let options = StreamOptions::new()
            .perms(perms)
            .volatile(volatile)
            .prefault(prefault)
            .huge_pages(huge_pages)
            .lock(lock)
            .reserve(reserve);
        let writer = options.create_raw(id, element, &dims, slots).or_raise()?;
        Ok(PyStreamWriter { id: writer.id(), writer: Some(writer) })
    }

    /// Becomes the writer of the existing stream `obj`, which has no live writer (made by
    /// ``ipcmem stream create``, or whose writer closed it or died); serials go on.
    #[staticmethod]
    fn attach(obj: &Bound<'_, PyAny>) -> PyResult<PyStreamWriter> {
        let writer = RawWriter::attach(to_id(obj)?).or_raise()?;
        Ok(PyStreamWriter { id: writer.id(), writer: Some(writer) })
    }

    /// Publishes a copy of `frame` (an array of the stream's frame shape; its values are
    /// converted to the stream's type if NumPy's ``same_kind`` casting allows) and returns its
    /// serial. `acquired`: when the frame was acquired, seconds since the Unix epoch
    /// (default: now); or `acquired_ns`, in nanoseconds.
    #[pyo3(signature = (frame, acquired = None, *, acquired_ns = None))]
    fn publish(
        &mut self,
        py: Python<'_>,
        frame: &Bound<'_, PyAny>,
        acquired: Option<f64>,
        acquired_ns: Option<u64>,
    ) -> PyResult<u64> {
        let geometry = self.geometry()?;
        let (element, dims) = (geometry.element(), geometry.frame_dims().to_vec());
        let acquired_ns = match (acquired, acquired_ns) {
            (Some(_), Some(_)) => return Err(invalid(&self.id, "give acquired or acquired_ns, not both")),
            (Some(seconds), None) => seconds_to_ns(&self.id, seconds)?,
            (None, Some(ns)) => ns,
            (None, None) => ipcmem::stream::now_ns(),
        };
        let numpy = py.import("numpy")?;
        let source = numpy.getattr("asarray")?.call1((frame,))?;
        let shape: Vec<usize> = source.getattr("shape")?.extract()?;
        if shape != dims {
            return Err(invalid(&self.id, format!("a frame of shape {shape:?} for a stream of frames {dims:?}")));
        }
        let copyto = numpy.getattr("copyto")?;
        let mut failure = None;
        let id = self.id.clone();
        let serial = self.writer()?.publish_with_at(acquired_ns, |slot| {
            // NumPy copies the frame into the slot (C code writing shared memory, as a camera
            // driver would; readers detect the write with the slot's seqlock). Rust makes no
            // reference to either side.
            let copied = slot_array(py, slot.as_mut_ptr(), element, &dims)
                .and_then(|target| copyto.call1((target, &source, "same_kind")).map(drop));
            copied.map_err(|error| {
                let reason = error.to_string();
                // NumPy refuses a cast with a TypeError: a bad dtype, so ipcmem's ValueError.
                failure = Some(if error.is_instance_of::<PyTypeError>(py) {
                    let refused = invalid(&id, format!("the frame cannot be published: {reason}"));
                    refused.set_cause(py, Some(error));
                    refused
                } else {
                    error
                });
                Error::InvalidArgument { object: String::new(), reason }
            })
        });
        match (serial, failure) {
            (_, Some(error)) => Err(error),
            (serial, None) => serial.or_raise(),
        }
    }

    /// The serial of the last frame published (0 before the first).
    #[getter]
    fn last_serial(&mut self) -> PyResult<u64> {
        Ok(self.writer()?.last_serial())
    }

    /// The element type of the frames.
    #[getter]
    fn dtype<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        numpy_dtype(py, self.geometry()?.element())
    }

    /// The shape of a frame (Fortran order).
    #[getter]
    fn frame_shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.geometry()?.frame_dims())
    }

    /// The number of frames the ring holds.
    #[getter]
    fn slots(&self) -> PyResult<usize> {
        Ok(self.geometry()?.slots())
    }

    /// The stream's object: its name (``str``) or System V segment id (``ShmId``).
    #[getter]
    fn id(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        from_id(py, &self.id)
    }

    /// Closes the stream: readers get every frame published, then learn that the writer is
    /// gone (``next`` raises ``WriterGone``; iteration stops).
    fn close(&mut self) {
        self.writer = None;
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(&mut self, _kind: &Bound<'_, PyAny>, _value: &Bound<'_, PyAny>, _traceback: &Bound<'_, PyAny>) {
        self.close();
    }

    fn __repr__(&self) -> String {
        match &self.writer {
            Some(writer) => format!(
                "<ipcmem.StreamWriter {} {} {:?} x{} last_serial={}>",
                self.id,
                writer.geometry().element(),
                writer.geometry().frame_dims(),
                writer.geometry().slots(),
                writer.last_serial()
            ),
            None => format!("<ipcmem.StreamWriter {} closed>", self.id),
        }
    }
}

/// A reader of a frame stream: ``next()`` returns each frame after the last one returned, as a
/// fresh NumPy array (Fortran order) and its ``FrameInfo``; frames overwritten before the
/// reader got to them are skipped and counted in ``lost``; a torn frame is never returned.
/// The reader is an iterator (it stops when the writer closes the stream or dies). Waits
/// release the GIL.
///
/// >>> import numpy as np, ipcmem
/// >>> camera = ipcmem.StreamWriter.create("/example-frames", np.float32, (4, 3), slots=4)
/// >>> viewer = ipcmem.StreamReader.open_wait("/example-frames", timeout=5.0)  # another process
/// >>> camera.publish(np.ones((4, 3), np.float32))
/// 1
/// >>> frame, info = viewer.next(timeout=1.0)
/// >>> info.serial, info.lost, frame.shape
/// (1, 0, (4, 3))
/// >>> camera.close()
/// >>> for frame, info in viewer:       # every frame left, until the writer is gone
/// ...     print(info.serial)
#[pyclass(module = "ipcmem", name = "StreamReader")]
pub struct PyStreamReader {
    reader: Option<RawReader>,
    id: ipcmem::Id,
}

impl PyStreamReader {
    fn new_handle(reader: RawReader, spin: Option<f64>) -> PyResult<PyStreamReader> {
        let reader = match to_timeout(spin)? {
            Some(spin) => reader.with_spin(spin),
            None => reader,
        };
        Ok(PyStreamReader { id: reader.id(), reader: Some(reader) })
    }

    fn reader(&mut self) -> PyResult<&mut RawReader> {
        let id = &self.id;
        self.reader.as_mut().ok_or_else(|| invalid(id, "the reader is closed"))
    }

    fn geometry(&self) -> PyResult<&Geometry> {
        self.reader.as_ref().map(RawReader::geometry).ok_or_else(|| invalid(&self.id, "the reader is closed"))
    }

    /// The next frame, waiting up to `timeout` (for ever if None): `None` if none came.
    fn next_frame<'py>(
        &mut self,
        py: Python<'py>,
        timeout: Option<Duration>,
    ) -> PyResult<Option<(Bound<'py, PyAny>, PyFrameInfo)>> {
        let geometry = self.geometry()?;
        let (element, dims) = (geometry.element(), geometry.frame_dims().to_vec());
        let frame = empty_fortran(py, element, &dims)?;
        let target = FrameBuffer::of(&frame)?;
        let reader = self.reader()?;
        let info = wait_in_slices(py, timeout, |slice| {
            // SAFETY: `target` is the data of `frame`, a new array of exactly a frame's bytes
            // that no other code has seen yet: no one else reads or writes it during the copy.
            let buf = unsafe { target.as_mut_slice() };
            reader.next_into(buf, slice)
        })?;
        Ok(info.map(|info| (frame, info.into())))
    }
}

#[pymethods]
impl PyStreamReader {
    /// Opens the stream `obj` (read permission is enough). The first ``next()`` returns the
    /// newest frame already published, if any, else the first to come. `spin`: seconds a
    /// wait spins before it sleeps (default 20 µs).
    #[staticmethod]
    #[pyo3(signature = (obj, *, spin = None))]
    fn open(obj: &Bound<'_, PyAny>, spin: Option<f64>) -> PyResult<PyStreamReader> {
        let id = to_id(obj)?;
        let reader = obj.py().detach(|| RawReader::open(id)).or_raise()?;
        PyStreamReader::new_handle(reader, spin)
    }

    /// Opens the stream `obj`, waiting up to `timeout` seconds for it to be created; raises
    /// ``NotFound`` if it does not appear in time. Releases the GIL while waiting.
    #[staticmethod]
    #[pyo3(signature = (obj, timeout, *, spin = None))]
    fn open_wait(obj: &Bound<'_, PyAny>, timeout: f64, spin: Option<f64>) -> PyResult<PyStreamReader> {
        let py = obj.py();
        let id = to_id(obj)?;
        let deadline = Instant::now() + to_timeout(Some(timeout))?.unwrap_or_default();
        // In slices, as every wait: signals (Ctrl-C) are handled between them.
        loop {
            let slice = deadline.saturating_duration_since(Instant::now()).min(SIGNAL_CHECK);
            match py.detach(|| RawReader::open_wait(id.clone(), slice)) {
                Err(Error::NotFound { .. }) if Instant::now() < deadline => py.check_signals()?,
                opened => return PyStreamReader::new_handle(opened.or_raise()?, spin),
            }
        }
    }

    /// The next frame after the last one returned, as ``(array, FrameInfo)`` (a fresh copy),
    /// waiting up to `timeout` seconds (for ever if None). Raises ``Timeout`` if none came in
    /// time, ``WriterGone`` once every frame is read and the writer closed the stream or died.
    #[pyo3(signature = (timeout = None))]
    fn next<'py>(&mut self, py: Python<'py>, timeout: Option<f64>) -> PyResult<(Bound<'py, PyAny>, PyFrameInfo)> {
        let timeout = to_timeout(timeout)?;
        match self.next_frame(py, timeout)? {
            Some(frame) => Ok(frame),
            None => {
                Err(crate::errors::timeout(&self.id, &format!("no frame within {:?}", timeout.unwrap_or_default())))
            }
        }
    }

    /// The newest complete frame, without waiting, as ``(array, FrameInfo)``; None if no frame
    /// was published yet. It may be the frame returned last; ``lost`` counts those skipped.
    fn latest<'py>(&mut self, py: Python<'py>) -> PyResult<Option<(Bound<'py, PyAny>, PyFrameInfo)>> {
        let geometry = self.geometry()?;
        let (element, dims) = (geometry.element(), geometry.frame_dims().to_vec());
        let frame = empty_fortran(py, element, &dims)?;
        let target = FrameBuffer::of(&frame)?;
        // SAFETY: as in `next_frame`: the new array's data, seen by no other code.
        let buf = unsafe { target.as_mut_slice() };
        let info = self.reader()?.latest_into(buf).or_raise()?;
        Ok(info.map(|info| (frame, info.into())))
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// The next frame, waiting for ever; stops when the writer is gone.
    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, PyFrameInfo)> {
        match self.next_frame(py, None) {
            Ok(Some(frame)) => Ok(frame),
            Ok(None) => Err(PyStopIteration::new_err(())),
            Err(error) if is_writer_gone(py, &error) => Err(PyStopIteration::new_err(())),
            Err(error) => Err(error),
        }
    }

    /// The serial of the last frame returned.
    #[getter]
    fn last_returned(&mut self) -> PyResult<u64> {
        Ok(self.reader()?.last_returned())
    }

    /// The element type of the frames.
    #[getter]
    fn dtype<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        numpy_dtype(py, self.geometry()?.element())
    }

    /// The shape of a frame (Fortran order).
    #[getter]
    fn frame_shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.geometry()?.frame_dims())
    }

    /// The number of frames the ring holds.
    #[getter]
    fn slots(&self) -> PyResult<usize> {
        Ok(self.geometry()?.slots())
    }

    /// The stream's object: its name (``str``) or System V segment id (``ShmId``).
    #[getter]
    fn id(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        from_id(py, &self.id)
    }

    /// Lets go of the stream.
    fn close(&mut self) {
        self.reader = None;
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(&mut self, _kind: &Bound<'_, PyAny>, _value: &Bound<'_, PyAny>, _traceback: &Bound<'_, PyAny>) {
        self.close();
    }

    fn __repr__(&self) -> String {
        match &self.reader {
            Some(reader) => format!(
                "<ipcmem.StreamReader {} {} {:?} x{} last_returned={}>",
                self.id,
                reader.geometry().element(),
                reader.geometry().frame_dims(),
                reader.geometry().slots(),
                reader.last_returned()
            ),
            None => format!("<ipcmem.StreamReader {} closed>", self.id),
        }
    }
}

fn is_writer_gone(py: Python<'_>, error: &PyErr) -> bool {
    crate::errors::is_writer_gone(py, error)
}

/// Seconds since the Unix epoch as nanoseconds, refusing what is negative or too far.
fn seconds_to_ns(id: &ipcmem::Id, seconds: f64) -> PyResult<u64> {
    let since = Duration::try_from_secs_f64(seconds)
        .map_err(|_| invalid(id, "acquired is seconds since the Unix epoch, at least 0"))?;
    let time = UNIX_EPOCH.checked_add(since).unwrap_or(SystemTime::UNIX_EPOCH);
    let ns = time.duration_since(UNIX_EPOCH).map(|since| since.as_nanos()).unwrap_or_default();
    u64::try_from(ns).map_err(|_| invalid(id, "acquired is too far in the future"))
}

pub(crate) fn numpy_dtype(py: Python<'_>, element: ElementType) -> PyResult<Bound<'_, PyAny>> {
    py.import("numpy")?.getattr("dtype")?.call1((numpy_name(element),))
}

/// The dimensions and Fortran strides of `dims` elements of `element`, for NumPy.
fn fortran(element: ElementType, dims: &[usize]) -> PyResult<(Vec<npy_intp>, Vec<npy_intp>)> {
    let too_big = || invalid("frame", "a dimension too large for NumPy");
    let mut shape = Vec::with_capacity(dims.len());
    let mut strides = Vec::with_capacity(dims.len());
    let mut stride = element.size();
    for dim in dims {
        shape.push(npy_intp::try_from(*dim).map_err(|_| too_big())?);
        strides.push(npy_intp::try_from(stride).map_err(|_| too_big())?);
        stride = stride.saturating_mul(*dim);
    }
    Ok((shape, strides))
}

/// A new, uninitialised NumPy array of `dims` (Fortran order) that owns its data.
pub(crate) fn empty_fortran<'py>(py: Python<'py>, element: ElementType, dims: &[usize]) -> PyResult<Bound<'py, PyAny>> {
    let (mut shape, _) = fortran(element, dims)?;
    let descr = PyArrayDescr::new(py, numpy_name(element))?;
    let ndim = i32::try_from(shape.len()).map_err(|_| invalid("frame", "too many dimensions for NumPy"))?;
    // SAFETY: a valid descriptor (its reference is stolen) and `ndim` dimensions; no data
    // pointer: NumPy allocates, and a non-zero flag asks for Fortran order.
    unsafe {
        let array = PY_ARRAY_API.PyArray_NewFromDescr(
            py,
            npyffi::get_type_object(py, npyffi::NpyTypes::PyArray_Type),
            descr.into_dtype_ptr(),
            ndim,
            shape.as_mut_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            NPY_ARRAY_F_CONTIGUOUS,
            std::ptr::null_mut(),
        );
        if array.is_null() {
            return Err(PyErr::fetch(py));
        }
        Ok(Bound::from_owned_ptr(py, array))
    }
}

/// A NumPy array over a stream slot being filled (no base: it must not outlive the
/// `publish_with` call, and is dropped at its end).
fn slot_array<'py>(
    py: Python<'py>,
    data: *mut u8,
    element: ElementType,
    dims: &[usize],
) -> PyResult<Bound<'py, PyAny>> {
    let (mut shape, mut strides) = fortran(element, dims)?;
    let descr = PyArrayDescr::new(py, numpy_name(element))?;
    let ndim = i32::try_from(shape.len()).map_err(|_| invalid("frame", "too many dimensions for NumPy"))?;
    let flags = NPY_ARRAY_F_CONTIGUOUS | npyffi::NPY_ARRAY_ALIGNED | npyffi::NPY_ARRAY_WRITEABLE;
    // SAFETY: `data` is the slot, a frame of `dims` elements of `element` in the writable
    // mapping, aligned (the data offset is a multiple of 64, frames whole elements); the array
    // is used for one copy and dropped while the slot is still being filled.
    unsafe {
        let array = PY_ARRAY_API.PyArray_NewFromDescr(
            py,
            npyffi::get_type_object(py, npyffi::NpyTypes::PyArray_Type),
            descr.into_dtype_ptr(),
            ndim,
            shape.as_mut_ptr(),
            strides.as_mut_ptr(),
            data.cast(),
            flags,
            std::ptr::null_mut(),
        );
        if array.is_null() {
            return Err(PyErr::fetch(py));
        }
        Ok(Bound::from_owned_ptr(py, array))
    }
}

/// The data of a new array, to be filled by Rust while the GIL is released.
pub(crate) struct FrameBuffer {
    data: usize,
    len: usize,
}

impl FrameBuffer {
    pub(crate) fn of(array: &Bound<'_, PyAny>) -> PyResult<FrameBuffer> {
        let array = array.cast::<PyUntypedArray>()?;
        let len = array.len() * array.dtype().itemsize();
        // SAFETY: `array` is a live NumPy array; its `data` field is the start of its elements.
        let data = unsafe { (*array.as_array_ptr()).fields.data };
        Ok(FrameBuffer { data: data as usize, len })
    }

    /// # Safety
    /// No other code may access the array's data while the slice lives.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn as_mut_slice(&self) -> &mut [u8] {
        // SAFETY: the caller promises exclusive access; `data` and `len` describe the owned,
        // contiguous data of a live array (kept alive by the caller).
        unsafe { std::slice::from_raw_parts_mut(self.data as *mut u8, self.len) }
    }
}
