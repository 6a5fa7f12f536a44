//! NumPy arrays that view shared memory without copying, and the object that keeps the mapping
//! alive for as long as any of them exists.
//!
//! # Soundness
//! The memory of a shared object may be written by other processes at any time. Rust code must
//! never hold `&[T]` or `&mut [T]` over such memory (Rust assumes the bytes behind a shared
//! reference do not change), and this module creates none: it hands NumPy a raw pointer, and
//! NumPy (C code, outside Rust's memory model) reads and writes it, as C programs sharing the
//! object do. Concurrent writes may give torn values in Python, as in C; synchronise with an
//! `Event`, a `Semaphore` or a stream. The mapping stays valid while the array lives: the
//! array's base object is a [`Mapping`] that holds the Rust handle. A read-only handle gives
//! arrays that NumPy will not make writeable (their base exposes no writable buffer), so no
//! Python code can write a `PROT_READ` mapping and crash the process.

use std::os::raw::c_int;
use std::ptr;
use std::sync::Arc;

use numpy::npyffi::{self, npy_intp, NPY_ARRAY_ALIGNED, NPY_ARRAY_F_CONTIGUOUS, NPY_ARRAY_WRITEABLE, PY_ARRAY_API};
use numpy::{PyArrayDescr, PyArrayDescrMethods};
use pyo3::prelude::*;

use crate::convert::numpy_name;
use crate::errors::invalid;
use ipcmem::array::ElementType;
use ipcmem::SharedMemory;

/// Keeps a mapping alive: the base object of every NumPy array and memoryview over shared
/// memory. Not made from Python.
#[pyclass(module = "ipcmem", name = "_Mapping", frozen)]
pub struct Mapping {
    shm: Arc<SharedMemory>,
}

#[pymethods]
impl Mapping {
    fn __repr__(&self) -> String {
        format!("<ipcmem mapping of {} ({} bytes)>", self.shm.id(), self.shm.len())
    }
}

/// What a view covers: the elements at `offset` of the mapping, their type and dimensions
/// (first fastest: Fortran order).
pub struct Layout<'a> {
    pub offset: usize,
    pub element: ElementType,
    pub dims: &'a [usize],
}

/// A NumPy array over `layout` of `shm`, in Fortran order, without copying; writeable unless
/// the handle is read-only. Its base object keeps the mapping.
pub fn array<'py>(py: Python<'py>, shm: &Arc<SharedMemory>, layout: &Layout<'_>) -> PyResult<Bound<'py, PyAny>> {
    let bytes = layout
        .dims
        .iter()
        .try_fold(layout.element.size(), |bytes, dim| bytes.checked_mul(*dim))
        .and_then(|bytes| bytes.checked_add(layout.offset))
        .filter(|end| *end <= shm.len());
    if bytes.is_none() {
        return Err(invalid(shm.id(), "the view runs past the end of the object"));
    }
    let mut dims = Vec::with_capacity(layout.dims.len());
    let mut strides = Vec::with_capacity(layout.dims.len());
    let mut stride = layout.element.size();
    for dim in layout.dims {
        let too_big = || invalid(shm.id(), "a dimension too large for NumPy");
        dims.push(npy_intp::try_from(*dim).map_err(|_| too_big())?);
        strides.push(npy_intp::try_from(stride).map_err(|_| too_big())?);
        stride = stride.saturating_mul(*dim);
    }
    let ndim = c_int::try_from(dims.len()).map_err(|_| invalid(shm.id(), "too many dimensions for NumPy"))?;
    let writeable = if shm.is_readonly() { 0 } else { NPY_ARRAY_WRITEABLE };
    let flags = NPY_ARRAY_F_CONTIGUOUS | NPY_ARRAY_ALIGNED | writeable;
    let descr = PyArrayDescr::new(py, numpy_name(layout.element))?;
    // Made first, so that nothing can fail between the array's creation and its base's.
    let base = Bound::new(py, Mapping { shm: Arc::clone(shm) })?;
    // Within the mapping (checked above); never dereferenced by Rust.
    let data = shm.as_mut_ptr().wrapping_add(layout.offset);
    // SAFETY: `PyArray_NewFromDescr` gets a valid descriptor (its reference is stolen),
    // `ndim` dimensions and strides that describe a Fortran-order block of `element`s lying
    // within the mapping (checked above), aligned (a mapping starts on a page; callers give
    // offsets that are multiples of the element size), and `data` that stays valid while the
    // array's base, set right after, holds the mapping. Writeable only on a writable handle.
    let array = unsafe {
        let array = PY_ARRAY_API.PyArray_NewFromDescr(
            py,
            npyffi::get_type_object(py, npyffi::NpyTypes::PyArray_Type),
            descr.into_dtype_ptr(),
            ndim,
            dims.as_mut_ptr(),
            strides.as_mut_ptr(),
            data.cast(),
            flags,
            ptr::null_mut(),
        );
        if array.is_null() {
            return Err(PyErr::fetch(py));
        }
        let array = Bound::from_owned_ptr(py, array);
        // Steals the reference to `base`, also when it fails.
        if PY_ARRAY_API.PyArray_SetBaseObject(py, array.as_ptr().cast(), base.into_ptr()) != 0 {
            return Err(PyErr::fetch(py));
        }
        array
    };
    Ok(array)
}

/// A `memoryview` of the whole object, read-only on a read-only handle (a view of a 1-D
/// `uint8` array made by [`array`], which keeps the mapping).
pub fn memoryview<'py>(py: Python<'py>, shm: &Arc<SharedMemory>) -> PyResult<Bound<'py, PyAny>> {
    let bytes = array(py, shm, &Layout { offset: 0, element: ElementType::U8, dims: &[shm.len()] })?;
    py.import("builtins")?.getattr("memoryview")?.call1((bytes,))
}
