//! `ipcmem.isio`: ImageStreamIO streams (milk, cacao: `NAME.im.shm` in `$MILK_SHM_DIR`), read,
//! waited on and written from Python, frames as fresh NumPy arrays (Fortran order: x first, as
//! ImageStreamIO stores them).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyTuple};

use crate::convert::{numpy_name, to_dims, to_element, to_timeout};
use crate::errors::{invalid, OrRaise};
use crate::stream::{empty_fortran, numpy_dtype, FrameBuffer, PyFrameInfo};
use crate::sync::wait_in_slices;
use ipcmem::array::ElementType;
use ipcmem::isio::{DataType, Dir, KeywordValue, Reader, Stream, StreamSpec};

/// The directory `dir`, or `$MILK_SHM_DIR` (default `/milk/shm`).
fn directory(dir: Option<PathBuf>) -> Dir {
    dir.map_or_else(Dir::from_env, Dir::new)
}

/// An open ImageStreamIO stream (``isio.Stream.open("name")``), as milk's tools make and use
/// them: the latest frame (``read``), a new frame (``write``), and readers that wait for frames
/// on a semaphore of their own (``reader()``).
///
/// >>> import os, tempfile, numpy as np
/// >>> from ipcmem import isio
/// >>> milk = tempfile.mkdtemp()                     # programs use $MILK_SHM_DIR, the default
/// >>> wfs = isio.Stream.create("wfs", np.float32, (120, 120), dir=milk)
/// >>> wfs.write(np.ones((120, 120), np.float32))   # cnt0
/// 1
/// >>> frame, info = wfs.read()                      # the latest frame
/// >>> info.serial, frame.shape
/// (1, (120, 120))
/// >>> isio.Stream.remove("wfs", dir=milk); os.rmdir(milk)
#[pyclass(module = "ipcmem.isio", name = "Stream", frozen)]
pub struct PyIsioStream {
    stream: Stream,
}

impl PyIsioStream {
    /// The element type and the shape of one frame (a slice of a circular buffer).
    fn frame(&self) -> PyResult<(ElementType, Vec<usize>)> {
        let element = self.stream.datatype().element_type().ok_or_else(|| {
            invalid(self.stream.name(), "f16 frames: NumPy's float16 has no counterpart in ipcmem's element types")
        })?;
        let dims = self.stream.dims().iter().map(|dim| *dim as usize);
        let dims: Vec<usize> = if self.stream.is_circular() { dims.take(2).collect() } else { dims.collect() };
        Ok((element, dims))
    }
}

#[pymethods]
impl PyIsioStream {
    /// Opens stream `name` (the file ``NAME.im.shm`` of `dir`, default ``$MILK_SHM_DIR`` or
    /// ``/milk/shm``), for reading and writing unless `readonly`.
    #[staticmethod]
    #[pyo3(signature = (name, *, dir = None, readonly = false))]
    fn open(name: &str, dir: Option<PathBuf>, readonly: bool) -> PyResult<PyIsioStream> {
        let dir = directory(dir);
        let stream = if readonly { dir.open_readonly(name) } else { dir.open(name) }.or_raise()?;
        Ok(PyIsioStream { stream })
    }

    /// Makes stream `name` of `dtype` and `shape` (1 to 3 axes, x first) as ImageStreamIO
    /// does; `circular`: a 3-D circular buffer whose frames are its slices; `replace`: replace
    /// an existing stream of that name (else ``AlreadyExists``).
    #[staticmethod]
    #[pyo3(signature = (name, dtype, shape, *, dir = None, circular = false, semaphores = 10, keywords = 0,
                        replace = false))]
    #[allow(clippy::too_many_arguments)]
    fn create(
        name: &str,
        dtype: &Bound<'_, PyAny>,
        shape: &Bound<'_, PyAny>,
        dir: Option<PathBuf>,
        circular: bool,
        semaphores: u16,
        keywords: u16,
        replace: bool,
    ) -> PyResult<PyIsioStream> {
        let datatype = DataType::from(to_element(dtype)?);
        let dims = to_dims(shape)?
            .into_iter()
            .map(|dim| {
                u32::try_from(dim).map_err(|_| invalid(name, "an axis of an ImageStreamIO stream has at most 2**32-1"))
            })
            .collect::<PyResult<Vec<u32>>>()?;
        let spec = StreamSpec::new(name, datatype, &dims)
            .circular(circular)
            .semaphores(semaphores)
            .keywords(keywords)
            .replace(replace);
        Ok(PyIsioStream { stream: directory(dir).create(&spec).or_raise()? })
    }

    /// Removes stream `name` (its file); processes that have it open keep it.
    #[staticmethod]
    #[pyo3(signature = (name, *, dir = None))]
    fn remove(name: &str, dir: Option<PathBuf>) -> PyResult<()> {
        directory(dir).remove(name).or_raise()
    }

    /// The names of the streams of `dir` (default ``$MILK_SHM_DIR`` or ``/milk/shm``).
    #[staticmethod]
    #[pyo3(signature = (dir = None))]
    fn list(dir: Option<PathBuf>) -> PyResult<Vec<String>> {
        directory(dir).list().or_raise()
    }

    /// The latest frame, as ``(array, FrameInfo)`` (a fresh copy, checked against concurrent
    /// writes; ``serial`` is ``cnt0``, ``lost`` 0).
    fn read<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, PyFrameInfo)> {
        read_latest(py, &self.stream, 0)
    }

    /// Writes `frame` (an array of the frame shape, cast to the stream's type if NumPy's
    /// ``same_kind`` casting allows) as ImageStreamIO's writers do, and posts the readers'
    /// semaphores; returns the new ``cnt0``.
    fn write(&self, py: Python<'_>, frame: &Bound<'_, PyAny>) -> PyResult<u64> {
        let (element, dims) = self.frame()?;
        let numpy = py.import("numpy")?;
        let source = numpy.getattr("asarray")?.call1((frame,))?;
        let shape: Vec<usize> = source.getattr("shape")?.extract()?;
        if shape != dims {
            return Err(invalid(self.stream.name(), format!("a frame of shape {shape:?} for frames {dims:?}")));
        }
        // A private Fortran-ordered copy that no other code sees: Rust may read it as bytes.
        let private = empty_fortran(py, element, &dims)?;
        numpy
            .getattr("copyto")?
            .call1((&private, &source, "same_kind"))
            .map_err(|error| invalid(self.stream.name(), format!("the frame cannot be written: {error}")))?;
        let bytes = FrameBuffer::of(&private)?;
        // SAFETY: the data of `private`, a new array no other code has seen; it lives until the
        // end of this function, and the GIL is held (no other thread runs Python meanwhile).
        let data = unsafe { bytes.as_mut_slice() };
        Ok(self.stream.write_frame(data).or_raise()?.cnt0)
    }

    /// Claims a semaphore of the stream, to wait for new frames on (as milk's readers do);
    /// released when the reader is closed or collected.
    fn reader(&self) -> PyResult<PyIsioReader> {
        Ok(PyIsioReader { reader: Some(self.stream.reader().or_raise()?), previous: 0 })
    }

    /// The stream's name.
    #[getter]
    fn name(&self) -> &str {
        self.stream.name()
    }

    /// The stream's file.
    #[getter]
    fn path(&self) -> PathBuf {
        self.stream.path().to_owned()
    }

    /// The element type of the frames.
    #[getter]
    fn dtype<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match self.stream.datatype().element_type() {
            Some(element) => numpy_dtype(py, element),
            None => py.import("numpy")?.getattr("dtype")?.call1(("float16",)),
        }
    }

    /// The sizes of the axes, x first.
    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.stream.dims())
    }

    /// Whether frames are the slices of a 3-D circular buffer.
    #[getter]
    fn circular(&self) -> bool {
        self.stream.is_circular()
    }

    /// ``cnt0``: the number of frames written so far.
    #[getter]
    fn cnt0(&self) -> PyResult<u64> {
        self.stream.cnt0().or_raise()
    }

    /// The keywords, as ``{name: (value, comment)}``: value an ``int`` (type L), a ``float``
    /// (D), a ``str`` (S), or the 16 raw ``bytes`` of another type letter.
    fn keywords<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let keywords = PyDict::new(py);
        for keyword in self.stream.keywords().or_raise()? {
            let value = match keyword.value {
                KeywordValue::Long(value) => value.into_pyobject(py)?.into_any(),
                KeywordValue::Double(value) => value.into_pyobject(py)?.into_any(),
                KeywordValue::String(value) => value.into_pyobject(py)?.into_any(),
                KeywordValue::Other { raw, .. } => PyBytes::new(py, &raw).into_any(),
            };
            keywords.set_item(keyword.name, (value, keyword.comment))?;
        }
        Ok(keywords)
    }

    /// Sets keyword `name` to `value` (``int``: type L, ``float``: D, ``str``: S), with
    /// `comment`, in its slot or the first free one; returns the slot.
    #[pyo3(signature = (name, value, comment = ""))]
    fn set_keyword(&self, name: &str, value: &Bound<'_, PyAny>, comment: &str) -> PyResult<usize> {
        let value = if value.is_instance_of::<PyBool>() {
            return Err(invalid(name, "a bool is no keyword value: give an int, a float or a str"));
        } else if let Ok(value) = value.extract::<i64>() {
            KeywordValue::Long(value)
        } else if let Ok(value) = value.extract::<f64>() {
            KeywordValue::Double(value)
        } else if let Ok(value) = value.extract::<String>() {
            KeywordValue::String(value)
        } else {
            return Err(invalid(name, "a keyword value is an int, a float or a str"));
        };
        self.stream.set_keyword(name, &value, comment).or_raise()
    }

    fn __repr__(&self) -> String {
        let element = self.stream.datatype().element_type().map_or("f16", |element| numpy_name(element));
        format!("<ipcmem.isio.Stream {} {element} {:?}>", self.stream.name(), self.stream.dims())
    }
}

/// The latest frame of `stream` as a fresh array, read without the GIL.
fn read_latest<'py>(py: Python<'py>, stream: &Stream, lost: u64) -> PyResult<(Bound<'py, PyAny>, PyFrameInfo)> {
    let handle = PyIsioStream { stream: stream.clone() };
    let (element, dims) = handle.frame()?;
    let frame = empty_fortran(py, element, &dims)?;
    let target = FrameBuffer::of(&frame)?;
    let info = py
        .detach(|| {
            // SAFETY: the data of `frame`, a new array no other code has seen yet.
            let buf = unsafe { target.as_mut_slice() };
            stream.read_frame(buf)
        })
        .or_raise()?;
    Ok((frame, info.as_stream_frame(lost, false).into()))
}

/// A semaphore of an ImageStreamIO stream claimed by this process: ``next()`` waits for the
/// next frame (releasing the GIL) and returns it with ``lost``, the frames written since the
/// previous one that it did not return. An iterator too.
#[pyclass(module = "ipcmem.isio", name = "Reader")]
pub struct PyIsioReader {
    reader: Option<Reader>,
    previous: u64,
}

impl PyIsioReader {
    fn reader(&self) -> PyResult<&Reader> {
        self.reader.as_ref().ok_or_else(|| invalid("isio reader", "the reader is closed"))
    }

    fn next_frame<'py>(
        &mut self,
        py: Python<'py>,
        timeout: Option<Duration>,
    ) -> PyResult<Option<(Bound<'py, PyAny>, PyFrameInfo)>> {
        let reader = self.reader()?;
        let stream = reader.stream().clone();
        let deadline = timeout.map(|timeout| Instant::now() + timeout);
        loop {
            // A frame not returned yet may be there already (a writer posts at most 10 times
            // ahead of a reader, and posts may have been flushed).
            if stream.cnt0().or_raise()? > self.previous {
                let (frame, info) = read_latest(py, &stream, 0)?;
                if info.serial() > self.previous {
                    let lost = if self.previous == 0 { 0 } else { info.serial() - self.previous - 1 };
                    self.previous = info.serial();
                    return Ok(Some((frame, info.with_lost(lost))));
                }
            }
            let left = deadline.map(|deadline| deadline.saturating_duration_since(Instant::now()));
            if left.is_some_and(|left| left.is_zero()) {
                return Ok(None);
            }
            let posted =
                wait_in_slices(py, left, |slice| reader.wait_timeout(slice).map(|posted| posted.then_some(())))?;
            if posted.is_none() {
                return Ok(None);
            }
        }
    }
}

#[pymethods]
impl PyIsioReader {
    /// The next frame after the last one returned (the latest when several came), as
    /// ``(array, FrameInfo)``; raises ``Timeout`` if none came within `timeout` seconds.
    #[pyo3(signature = (timeout = None))]
    fn next<'py>(&mut self, py: Python<'py>, timeout: Option<f64>) -> PyResult<(Bound<'py, PyAny>, PyFrameInfo)> {
        let timeout = to_timeout(timeout)?;
        match self.next_frame(py, timeout)? {
            Some(frame) => Ok(frame),
            None => Err(crate::errors::timeout(&"isio reader", "no frame came in time")),
        }
    }

    /// Waits for a post of the semaphore (a new frame) for at most `timeout` seconds: whether
    /// one came. Releases the GIL.
    #[pyo3(signature = (timeout = None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let reader = self.reader()?;
        let posted = wait_in_slices(py, to_timeout(timeout)?, |slice| {
            reader.wait_timeout(slice).map(|posted| posted.then_some(()))
        })?;
        Ok(posted.is_some())
    }

    /// Empties the semaphore's count (posts of frames already there).
    fn flush(&self) -> PyResult<()> {
        self.reader()?.flush().or_raise()
    }

    /// The index of the claimed semaphore.
    #[getter]
    fn index(&self) -> PyResult<usize> {
        Ok(self.reader()?.index())
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, PyFrameInfo)> {
        self.next(py, None)
    }

    /// Releases the semaphore.
    fn close(&mut self) {
        self.reader = None;
    }
}
