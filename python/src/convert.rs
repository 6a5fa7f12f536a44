//! Checked conversions of Python arguments: sizes, permission bits, timeouts, shapes and
//! element types. Bad values raise `ipcmem.InvalidArgument` (a `ValueError`) that names the
//! argument, never `OverflowError` or a crash.

use std::time::Duration;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyInt, PyString};

use crate::errors::invalid;
use ipcmem::array::ElementType;

/// A non-negative integer that fits in `usize` (a size, an offset, a dimension).
pub fn to_usize(value: &Bound<'_, PyAny>, what: &str) -> PyResult<usize> {
    if !value.is_instance_of::<PyInt>() {
        return Err(PyTypeError::new_err(format!("{what} must be an int, not {}", type_name(value))));
    }
    value.extract::<usize>().map_err(|_| invalid(value, format!("{what} must be a non-negative integer below 2**64")))
}

/// Permission bits: an int in 0..=0o777 (the bits outside are refused by ipcmem too).
pub fn to_perms(value: &Bound<'_, PyAny>) -> PyResult<u32> {
    let perms = to_usize(value, "perms")?;
    u32::try_from(perms)
        .ok()
        .filter(|perms| perms & !0o777 == 0)
        .ok_or_else(|| invalid(format!("{perms:#o}"), "permissions are 9 bits: 0o000 to 0o777"))
}

/// A timeout in seconds (int or float, at least 0); `None` waits for ever.
pub fn to_timeout(value: Option<f64>) -> PyResult<Option<Duration>> {
    value
        .map(|seconds| {
            Duration::try_from_secs_f64(seconds)
                .map_err(|_| invalid(seconds, "a timeout is a number of seconds, at least 0 (None: no limit)"))
        })
        .transpose()
}

/// A shape: an int, or a sequence of ints (each at least 1, checked by ipcmem).
pub fn to_dims(shape: &Bound<'_, PyAny>) -> PyResult<Vec<usize>> {
    if shape.is_instance_of::<PyInt>() {
        return Ok(vec![to_usize(shape, "a dimension")?]);
    }
    if shape.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err("a shape is an int or a sequence of ints, not a str"));
    }
    shape
        .try_iter()
        .map_err(|_| {
            PyTypeError::new_err(format!("a shape is an int or a sequence of ints, not {}", type_name(shape)))
        })?
        .map(|dim| to_usize(&dim?, "a dimension"))
        .collect()
}

/// An element type: one of ipcmem's names (`"f32"`, `"c64"`, ...) or anything `numpy.dtype`
/// takes (`numpy.float32`, `"<f4"`, `"complex64"`, ...), of one of the twelve types, in
/// native byte order.
pub fn to_element(dtype: &Bound<'_, PyAny>) -> PyResult<ElementType> {
    if let Ok(name) = dtype.extract::<String>() {
        if let Ok(element) = name.parse::<ElementType>() {
            return Ok(element);
        }
    }
    let numpy = dtype.py().import("numpy")?;
    let descr = numpy
        .getattr("dtype")?
        .call1((dtype,))
        .map_err(|error| invalid(dtype, format!("not an element type ({error})")))?;
    let kind: String = descr.getattr("kind")?.extract()?;
    let size: usize = descr.getattr("itemsize")?.extract()?;
    let native = descr.getattr("isnative")?.extract::<bool>()?;
    let element = match (kind.as_str(), size) {
        ("i", 1) => Some(ElementType::I8),
        ("u", 1) => Some(ElementType::U8),
        ("i", 2) => Some(ElementType::I16),
        ("u", 2) => Some(ElementType::U16),
        ("i", 4) => Some(ElementType::I32),
        ("u", 4) => Some(ElementType::U32),
        ("i", 8) => Some(ElementType::I64),
        ("u", 8) => Some(ElementType::U64),
        ("f", 4) => Some(ElementType::F32),
        ("f", 8) => Some(ElementType::F64),
        ("c", 8) => Some(ElementType::C32),
        ("c", 16) => Some(ElementType::C64),
        _ => None,
    };
    match element {
        Some(element) if native => Ok(element),
        Some(_) => Err(invalid(&descr, "the elements of a shared array are in native byte order")),
        None => Err(invalid(
            &descr,
            "a shared array holds one of i8 i16 i32 i64 u8 u16 u32 u64 f32 f64 c32 (complex64) c64 (complex128)",
        )),
    }
}

/// The NumPy name of an element type (`c32`, two `f32`, is `complex64`).
pub fn numpy_name(element: ElementType) -> &'static str {
    match element {
        ElementType::I8 => "int8",
        ElementType::U8 => "uint8",
        ElementType::I16 => "int16",
        ElementType::U16 => "uint16",
        ElementType::I32 => "int32",
        ElementType::U32 => "uint32",
        ElementType::I64 => "int64",
        ElementType::U64 => "uint64",
        ElementType::F32 => "float32",
        ElementType::F64 => "float64",
        ElementType::C32 => "complex64",
        ElementType::C64 => "complex128",
    }
}

fn type_name(value: &Bound<'_, PyAny>) -> String {
    value.get_type().name().map(|name| name.to_string()).unwrap_or_default()
}
