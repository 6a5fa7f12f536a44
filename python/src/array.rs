//! `ipcmem.SharedArray`: typed N-dimensional arrays in shared memory, in the layout the Julia
//! package, Rust and the `ipcmem` command read, seen from Python as NumPy arrays without copy.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::convert::{numpy_name, to_dims, to_element, to_perms};
use crate::errors::{invalid, OrRaise};
use crate::ids::{from_id, to_id};
use crate::memory::Options;
use crate::view::{self, Layout};
use ipcmem::array::{self, ArrayOptions, Complex32, Complex64, ElementType, Header};
use ipcmem::{Id, Outcome, SharedMemory, ShmOptions};

/// Runs `$body` with `$T` the Rust type of the element type `$element`.
macro_rules! with_element {
    ($element:expr, $T:ident => $body:expr) => {
        match $element {
            ElementType::I8 => {
                type $T = i8;
                $body
            }
            ElementType::U8 => {
                type $T = u8;
                $body
            }
            ElementType::I16 => {
                type $T = i16;
                $body
            }
            ElementType::U16 => {
                type $T = u16;
                $body
            }
            ElementType::I32 => {
                type $T = i32;
                $body
            }
            ElementType::U32 => {
                type $T = u32;
                $body
            }
            ElementType::I64 => {
                type $T = i64;
                $body
            }
            ElementType::U64 => {
                type $T = u64;
                $body
            }
            ElementType::F32 => {
                type $T = f32;
                $body
            }
            ElementType::F64 => {
                type $T = f64;
                $body
            }
            ElementType::C32 => {
                type $T = Complex32;
                $body
            }
            ElementType::C64 => {
                type $T = Complex64;
                $body
            }
        }
    };
}

/// An N-dimensional array of one of twelve element types in shared memory: a header (type and
/// dimensions) and the elements in Fortran (column-major) order, the layout of Julia's
/// ``WrappedArray`` (InterProcessCommunication.jl), ``ipcmem::SharedArray`` in Rust and
/// ``ipcmem array`` on the command line.
///
/// ``array`` is a NumPy array over the shared memory itself, no copy, in Fortran order:
/// ``a.array[i, j]`` is Rust's ``get(&[i, j])`` and Julia's ``A[i+1, j+1]``. It is read-only
/// (``writeable=False``) on a read-only handle, and keeps the mapping alive as long as it (or
/// any view of it) lives, also after ``close()``. Other processes may write the elements at any
/// time: synchronise (``Event``, ``Semaphore``, streams) to avoid torn reads.
///
/// Element types: ``"i8" "u8" "i16" "u16" "i32" "u32" "i64" "u64" "f32" "f64" "c32" "c64"`` or
/// the NumPy equivalents (``numpy.float32``, ``"complex64"``, ...); ``c32`` is ``complex64``
/// (two f32) and ``c64`` is ``complex128``.
///
/// >>> import numpy as np, ipcmem
/// >>> image = ipcmem.SharedArray.create("/example-image", np.float32, (640, 480))
/// >>> image.array[10, 20] = 1.5
/// >>> seen = ipcmem.SharedArray.open("/example-image", readonly=True)   # another process
/// >>> float(seen.array[10, 20]), seen.array.flags.writeable
/// (1.5, False)
#[pyclass(module = "ipcmem", name = "SharedArray")]
pub struct PySharedArray {
    shm: Option<Arc<SharedMemory>>,
    id: Id,
    header: Header,
    array: Option<Py<PyAny>>,
}

impl PySharedArray {
    fn new_handle(header: Header, shm: SharedMemory) -> PySharedArray {
        PySharedArray { id: shm.id(), shm: Some(Arc::new(shm)), header, array: None }
    }

    pub fn handle(&self) -> PyResult<&Arc<SharedMemory>> {
        self.shm.as_ref().ok_or_else(|| invalid(&self.id, "the handle is closed"))
    }
}

/// The typed Rust array's header and memory, for a handle that views it untyped.
fn untyped<T: array::Element>(array: ipcmem::SharedArray<T>) -> (Header, SharedMemory) {
    (array.header().clone(), array.into_memory())
}

#[pymethods]
impl PySharedArray {
    /// Makes a new array of `dtype` and `shape` (first dimension fastest), its elements zero;
    /// raises `AlreadyExists` if the object exists. Options as for ``SharedMemory``: `perms`,
    /// `volatile` (default True), `prefault`, `huge_pages`, `lock`, `reserve`.
    #[staticmethod]
    #[pyo3(signature = (obj, dtype, shape, *, perms = None, volatile = true,
                        prefault = false, huge_pages = false, lock = false, reserve = false),
            text_signature = "(obj, dtype, shape, *, perms=0o600, volatile=True, prefault=False, huge_pages=False, lock=False, reserve=False)")]
    #[allow(clippy::too_many_arguments, clippy::fn_params_excessive_bools)]
    fn create(
        obj: &Bound<'_, PyAny>,
        dtype: &Bound<'_, PyAny>,
        shape: &Bound<'_, PyAny>,
        perms: Option<&Bound<'_, PyAny>>,
        volatile: bool,
        prefault: bool,
        huge_pages: bool,
        lock: bool,
        reserve: bool,
    ) -> PyResult<PySharedArray> {
        let id = to_id(obj)?;
        let element = to_element(dtype)?;
        let dims = to_dims(shape)?;
        let perms = perms.map(to_perms).transpose()?.unwrap_or(0o600);
        let options = Options { perms, volatile, readonly: false, prefault, huge_pages, lock, reserve }.shm();
        let (header, shm) = with_element!(element, T => {
            untyped(ArrayOptions::<T>::from(options).create(id, &dims).or_raise()?)
        });
        Ok(PySharedArray::new_handle(header, shm))
    }

    /// Opens an existing array, whatever its element type and shape (read from its header),
    /// read-only if asked. An opener waits up to a second for a header still being written.
    #[staticmethod]
    #[pyo3(signature = (obj, readonly = false, *, prefault = false, lock = false))]
    fn open(obj: &Bound<'_, PyAny>, readonly: bool, prefault: bool, lock: bool) -> PyResult<PySharedArray> {
        let id = to_id(obj)?;
        let options = ShmOptions::new().readonly(readonly).prefault(prefault).lock(lock);
        let (header, shm) = open_untyped(&id, options)?;
        Ok(PySharedArray::new_handle(header, shm))
    }

    /// Opens the array if it exists (it must have this `dtype` and `shape`), else makes it:
    /// ``(handle, created)``.
    #[staticmethod]
    #[pyo3(signature = (obj, dtype, shape, *, perms = None, volatile = true),
            text_signature = "(obj, dtype, shape, *, perms=0o600, volatile=True)")]
    fn open_or_create(
        obj: &Bound<'_, PyAny>,
        dtype: &Bound<'_, PyAny>,
        shape: &Bound<'_, PyAny>,
        perms: Option<&Bound<'_, PyAny>>,
        volatile: bool,
    ) -> PyResult<(PySharedArray, bool)> {
        let id = to_id(obj)?;
        let element = to_element(dtype)?;
        let dims = to_dims(shape)?;
        let perms = perms.map(to_perms).transpose()?.unwrap_or(0o600);
        let options = ShmOptions::new().perms(perms).volatile(volatile);
        let ((header, shm), outcome) = with_element!(element, T => {
            let (array, outcome) = ArrayOptions::<T>::from(options).open_or_create(id, &dims).or_raise()?;
            (untyped(array), outcome)
        });
        Ok((PySharedArray::new_handle(header, shm), outcome == Outcome::Created))
    }

    /// The NumPy array over the shared elements (no copy, Fortran order).
    #[getter]
    fn array(&mut self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        if let Some(array) = &self.array {
            return Ok(array.clone_ref(py));
        }
        let layout =
            Layout { offset: self.header.data_offset(), element: self.header.element(), dims: self.header.dims() };
        let array = view::array(py, self.handle()?, &layout)?.unbind();
        self.array = Some(array.clone_ref(py));
        Ok(array)
    }

    /// The NumPy element type.
    #[getter]
    fn dtype<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        py.import("numpy")?.getattr("dtype")?.call1((numpy_name(self.header.element()),))
    }

    /// The dimensions, first (fastest varying) first.
    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.header.dims())
    }

    /// The header as ``ipcmem list`` shows it: ``"f32 640x480"``.
    #[getter]
    fn header(&self) -> String {
        self.header.to_string()
    }

    /// The object: its name (``str``) or its System V segment id (``ShmId``).
    #[getter]
    fn id(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        from_id(py, &self.id)
    }

    /// Whether this handle is read-only.
    #[getter]
    fn readonly(&self) -> PyResult<bool> {
        Ok(self.handle()?.is_readonly())
    }

    /// Whether ``close()`` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.shm.is_none()
    }

    /// Marks the object for destruction (see ``SharedMemory.remove``).
    fn remove(&self) -> PyResult<()> {
        self.handle()?.remove().or_raise()
    }

    /// Lets go of this handle; arrays made from it keep the mapping while they live.
    fn close(&mut self) {
        self.shm = None;
        self.array = None;
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(&mut self, _kind: &Bound<'_, PyAny>, _value: &Bound<'_, PyAny>, _traceback: &Bound<'_, PyAny>) {
        self.close();
    }

    fn __repr__(&self) -> String {
        let state = match &self.shm {
            Some(shm) if shm.is_readonly() => " readonly",
            Some(_) => "",
            None => " closed",
        };
        format!("<ipcmem.SharedArray {} {}{state}>", self.id, self.header)
    }
}

/// Opens the array `id` of whatever element type its header gives.
fn open_untyped(id: &Id, options: ShmOptions) -> PyResult<(Header, SharedMemory)> {
    // The header says the type; the typed open checks it again (and waits for a header still
    // being written), so an object rewritten in between is refused, not misread.
    let element = array::inspect(id).or_raise()?.element();
    Ok(with_element!(element, T => untyped(ArrayOptions::<T>::from(options).open(id).or_raise()?)))
}

/// Also used by `Event`/`Semaphore` to accept an array as the memory they live in.
pub fn memory_of(array: &PySharedArray) -> PyResult<Arc<SharedMemory>> {
    array.handle().cloned()
}
