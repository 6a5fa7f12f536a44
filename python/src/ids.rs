//! Object identifiers: `ipcmem.Key`, `ipcmem.ShmId`, `ipcmem.PRIVATE`, and the conversion of
//! whatever names an object in Python (`"/name"`, `"key:0x…"`, `"id:N"`, a `Key`, a `ShmId`).

// Methods of #[pymethods] take `&self`, even for these small Copy types.
#![allow(clippy::trivially_copy_pass_by_ref)]

use std::path::PathBuf;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

use crate::errors::{invalid, OrRaise};
use ipcmem::Id;

/// A System V IPC key (`key_t`).
///
/// >>> import ipcmem
/// >>> key = ipcmem.Key.from_path("/", 42)     # ftok("/", 42)
/// >>> str(ipcmem.Key(0x2a))
/// 'key:0x0000002a'
#[pyclass(module = "ipcmem", name = "Key", frozen, eq, hash, from_py_object)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PyKey(pub ipcmem::Key);

#[pymethods]
impl PyKey {
    /// The key of raw value `raw` (a 32-bit number; the bits of `key_t`).
    #[new]
    fn new(raw: &Bound<'_, PyAny>) -> PyResult<PyKey> {
        let raw = raw
            .extract::<i64>()
            .ok()
            .and_then(|raw| i32::try_from(raw).ok().or_else(|| u32::try_from(raw).ok().map(u32::cast_signed)));
        raw.map(|raw| PyKey(ipcmem::Key::from_raw(raw))).ok_or_else(|| invalid("key", "a key is a 32-bit integer"))
    }

    /// The key that `ftok(3)` derives from an existing file and a project number 1..=255; two
    /// processes that name the same file and number get the same key.
    #[staticmethod]
    #[allow(clippy::needless_pass_by_value)] // PyO3 extracts the path as a PathBuf
    fn from_path(path: PathBuf, proj: i64) -> PyResult<PyKey> {
        let proj = u8::try_from(proj)
            .map_err(|_| invalid(path.display(), "the project number of a key must be in 1..=255"))?;
        ipcmem::Key::from_path(&path, proj).or_raise().map(PyKey)
    }

    /// The raw `key_t` value.
    #[getter]
    fn raw(&self) -> i32 {
        self.0.as_raw()
    }

    /// Whether this is `ipcmem.PRIVATE`.
    #[getter]
    fn is_private(&self) -> bool {
        self.0.is_private()
    }

    fn __str__(&self) -> String {
        self.0.to_string()
    }

    fn __repr__(&self) -> String {
        if self.0.is_private() {
            "ipcmem.PRIVATE".into()
        } else {
            format!("ipcmem.Key({:#010x})", self.0.as_raw().cast_unsigned())
        }
    }
}

/// The id of a System V shared memory segment, as `ipcs -m` shows it.
///
/// >>> import ipcmem
/// >>> str(ipcmem.ShmId(7))
/// 'id:7'
#[pyclass(module = "ipcmem", name = "ShmId", frozen, eq, hash, from_py_object)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PyShmId(pub ipcmem::ShmId);

#[pymethods]
impl PyShmId {
    /// The segment id `raw` (non-negative).
    #[new]
    fn new(raw: &Bound<'_, PyAny>) -> PyResult<PyShmId> {
        raw.extract::<i64>()
            .ok()
            .and_then(|raw| i32::try_from(raw).ok())
            .filter(|raw| *raw >= 0)
            .map(|raw| PyShmId(ipcmem::ShmId::from_raw(raw)))
            .ok_or_else(|| invalid("id", "a segment id is a non-negative 32-bit integer"))
    }

    /// The id of the existing segment of `key`.
    #[staticmethod]
    #[pyo3(signature = (key, readonly = false))]
    fn from_key(key: PyKey, readonly: bool) -> PyResult<PyShmId> {
        ipcmem::ShmId::from_key(key.0, readonly).or_raise().map(PyShmId)
    }

    /// The raw id.
    #[getter]
    fn raw(&self) -> i32 {
        self.0.as_raw()
    }

    fn __str__(&self) -> String {
        self.0.to_string()
    }

    fn __repr__(&self) -> String {
        format!("ipcmem.ShmId({})", self.0.as_raw())
    }
}

/// The object `obj` names: a `str` in the syntax of the `ipcmem` command (`/name`, `key:N`,
/// `id:N`, `private`), a `Key` (`PRIVATE` included) or a `ShmId`.
pub fn to_id(obj: &Bound<'_, PyAny>) -> PyResult<Id> {
    if let Ok(key) = obj.cast::<PyKey>() {
        return Ok(Id::Key(key.get().0));
    }
    if let Ok(id) = obj.cast::<PyShmId>() {
        return Ok(Id::Shm(id.get().0));
    }
    if let Ok(text) = obj.extract::<String>() {
        return text.parse::<Id>().or_raise();
    }
    Err(PyTypeError::new_err(format!(
        "an object is \"/name\", \"key:0x…\", \"id:N\", ipcmem.Key, ipcmem.ShmId or ipcmem.PRIVATE, not {}",
        obj.get_type().name().map(|name| name.to_string()).unwrap_or_default()
    )))
}

/// The Python value of an id: `str` for a POSIX name, `ShmId` or `Key` for System V.
pub fn from_id(py: Python<'_>, id: &Id) -> PyResult<Py<PyAny>> {
    Ok(match id {
        Id::Name(name) => name.into_pyobject(py)?.into_any().unbind(),
        Id::Key(key) => Py::new(py, PyKey(*key))?.into_any(),
        Id::Shm(shm) => Py::new(py, PyShmId(*shm))?.into_any(),
    })
}
