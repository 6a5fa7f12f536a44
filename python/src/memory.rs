//! `ipcmem.SharedMemory`, `ipcmem.shmrm` and the options shared with `SharedArray`.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::convert::{to_perms, to_usize};
use crate::errors::{invalid, to_py, OrRaise};
use crate::ids::{from_id, to_id};
use crate::view;
use ipcmem::{Error, Id, Outcome, ShmOptions};

/// The options of a new or opened object, as keyword arguments take them.
#[allow(clippy::struct_excessive_bools)] // independent switches, as in ShmOptions
pub struct Options {
    pub perms: u32,
    pub volatile: bool,
    pub readonly: bool,
    pub prefault: bool,
    pub huge_pages: bool,
    pub lock: bool,
    pub reserve: bool,
}

impl Options {
    pub fn shm(&self) -> ShmOptions {
        ShmOptions::new()
            .perms(self.perms)
            .volatile(self.volatile)
            .readonly(self.readonly)
            .prefault(self.prefault)
            .huge_pages(self.huge_pages)
            .lock(self.lock)
            .reserve(self.reserve)
    }
}

/// A shared memory object mapped into this process: a POSIX object (`"/name"`) or a System V
/// segment (`Key`, `ShmId`, `PRIVATE`, `"key:0x…"`, `"id:N"`).
///
/// ``SharedMemory(obj, size)`` makes a new object (volatile, mode 0o600 unless told otherwise);
/// ``SharedMemory(obj)`` opens an existing one. A *volatile* object is destroyed when its last
/// handle, in any process and any language, is gone (after a crash, by ``ipcmem.gc()``); a
/// persistent one (``volatile=False``) lives until ``remove()`` or ``ipcmem.shmrm``. No
/// resource tracker is involved: opening an object never removes it at exit.
///
/// ``buf`` is a ``memoryview`` of the memory itself, no copy (read-only on a read-only handle).
/// Other processes may write it at any time: synchronise with an ``Event`` or a ``Semaphore``.
/// The mapping lives as long as the handle or any view of it (``buf``, NumPy arrays made from
/// it) does, also after ``close()``.
///
/// >>> import ipcmem
/// >>> with ipcmem.SharedMemory("/example", 4096) as shm:       # creates (exclusive)
/// ...     shm.buf[:5] = b"hello"
/// ...     other = ipcmem.SharedMemory("/example", readonly=True)  # another process would
/// ...     bytes(other.buf[:5])
/// b'hello'
#[pyclass(module = "ipcmem", name = "SharedMemory")]
pub struct PySharedMemory {
    shm: Option<Arc<ipcmem::SharedMemory>>,
    id: Id,
    buf: Option<Py<PyAny>>,
}

impl PySharedMemory {
    pub fn new_handle(shm: ipcmem::SharedMemory) -> PySharedMemory {
        PySharedMemory { id: shm.id(), shm: Some(Arc::new(shm)), buf: None }
    }

    /// The open handle, or `ValueError` once closed.
    pub fn handle(&self) -> PyResult<&Arc<ipcmem::SharedMemory>> {
        self.shm.as_ref().ok_or_else(|| invalid(&self.id, "the handle is closed"))
    }
}

#[pymethods]
impl PySharedMemory {
    /// Makes the object `obj` of `size` bytes, or opens it when `size` is None.
    ///
    /// `create`: None (the default) creates when a size is given; True always creates (a size
    /// is then required; an existing object raises `AlreadyExists`); False only opens (and a
    /// size given is the least the object must have). Options of a new object: `perms` (the 9
    /// permission bits, exact whatever the umask), `volatile`, `reserve` (allocate every page
    /// now), `huge_pages`. Of any handle: `readonly`, `prefault` (every page in memory when
    /// the call returns), `lock` (mlock while the handle lives).
    #[new]
    #[pyo3(signature = (obj, size = None, *, perms = None, volatile = true, readonly = false, create = None,
                        prefault = false, huge_pages = false, lock = false, reserve = false),
            text_signature = "(obj, size=None, *, perms=0o600, volatile=True, readonly=False, create=None, prefault=False, huge_pages=False, lock=False, reserve=False)")]
    #[allow(clippy::too_many_arguments, clippy::fn_params_excessive_bools)]
    fn new(
        obj: &Bound<'_, PyAny>,
        size: Option<&Bound<'_, PyAny>>,
        perms: Option<&Bound<'_, PyAny>>,
        volatile: bool,
        readonly: bool,
        create: Option<bool>,
        prefault: bool,
        huge_pages: bool,
        lock: bool,
        reserve: bool,
    ) -> PyResult<PySharedMemory> {
        let id = to_id(obj)?;
        let size = size.map(|size| to_usize(size, "size")).transpose()?;
        let perms = perms.map(to_perms).transpose()?.unwrap_or(0o600);
        let options = Options { perms, volatile, readonly, prefault, huge_pages, lock, reserve }.shm();
        let shm = match (create.unwrap_or(size.is_some()), size) {
            (true, None) => return Err(invalid(&id, "creating an object needs its size")),
            (true, Some(size)) => options.create(id, size).or_raise()?,
            (false, size) => {
                let shm = options.open(id.clone()).or_raise()?;
                if size.is_some_and(|size| shm.len() < size) {
                    return Err(to_py(Error::InvalidSize {
                        object: id.to_string(),
                        size: size.unwrap_or_default() as u64,
                        reason: "the existing object is smaller than the size asked for",
                    }));
                }
                shm
            }
        };
        Ok(PySharedMemory::new_handle(shm))
    }

    /// Opens the object if it exists, else makes it with `size` bytes: `(handle, created)`,
    /// `created` True if this call made it. Of processes racing on one name or key, exactly
    /// one creates. A System V key needs `volatile=False` (a volatile segment loses its key).
    #[staticmethod]
    #[pyo3(signature = (obj, size, *, perms = None, volatile = true, readonly = false,
                        prefault = false, huge_pages = false, lock = false, reserve = false),
            text_signature = "(obj, size, *, perms=0o600, volatile=True, readonly=False, prefault=False, huge_pages=False, lock=False, reserve=False)")]
    #[allow(clippy::too_many_arguments, clippy::fn_params_excessive_bools)]
    fn open_or_create(
        obj: &Bound<'_, PyAny>,
        size: &Bound<'_, PyAny>,
        perms: Option<&Bound<'_, PyAny>>,
        volatile: bool,
        readonly: bool,
        prefault: bool,
        huge_pages: bool,
        lock: bool,
        reserve: bool,
    ) -> PyResult<(PySharedMemory, bool)> {
        let id = to_id(obj)?;
        let size = to_usize(size, "size")?;
        let perms = perms.map(to_perms).transpose()?.unwrap_or(0o600);
        let options = Options { perms, volatile, readonly, prefault, huge_pages, lock, reserve }.shm();
        let (shm, outcome) = options.open_or_create(id, size).or_raise()?;
        Ok((PySharedMemory::new_handle(shm), outcome == Outcome::Created))
    }

    /// The memory as a ``memoryview`` (no copy; read-only on a read-only handle). It keeps the
    /// mapping alive, also after ``close()``.
    #[getter]
    fn buf(&mut self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        if let Some(buf) = &self.buf {
            return Ok(buf.clone_ref(py));
        }
        let buf = view::memoryview(py, self.handle()?)?.unbind();
        self.buf = Some(buf.clone_ref(py));
        Ok(buf)
    }

    /// The size in bytes.
    #[getter]
    fn size(&self) -> PyResult<usize> {
        Ok(self.handle()?.len())
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

    /// Whether the object is volatile (destroyed with its last handle).
    #[getter]
    fn volatile(&self) -> PyResult<bool> {
        Ok(self.handle()?.is_volatile())
    }

    /// Whether ``close()`` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.shm.is_none()
    }

    /// Copies `length` bytes at `offset` (default: up to the end) into a new ``bytes``.
    #[pyo3(signature = (offset = None, length = None),
            text_signature = "($self, offset=0, length=None)")]
    fn read<'py>(
        &self,
        py: Python<'py>,
        offset: Option<&Bound<'_, PyAny>>,
        length: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let shm = self.handle()?;
        let offset = offset.map(|offset| to_usize(offset, "offset")).transpose()?.unwrap_or(0);
        let length = match length {
            Some(length) => to_usize(length, "length")?,
            None => shm.len().saturating_sub(offset),
        };
        let mut bytes = vec![0; length];
        shm.read_at(offset, &mut bytes).or_raise()?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Copies `data` (any bytes-like object) to `offset`; `PermissionDenied` on a read-only
    /// handle.
    #[pyo3(signature = (data, offset = None),
            text_signature = "($self, data, offset=0)")]
    fn write(&self, data: &Bound<'_, PyAny>, offset: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let offset = offset.map(|offset| to_usize(offset, "offset")).transpose()?.unwrap_or(0);
        // bytes(data): a copy, but the one way to read any bytes-like object under abi3 (the
        // buffer protocol enters the limited API in 3.11).
        let data = data.py().get_type::<PyBytes>().call1((data,))?;
        self.handle()?.write_at(offset, data.cast::<PyBytes>()?.as_bytes()).or_raise()
    }

    /// Marks the object for destruction: a POSIX name is unlinked, a System V segment marked
    /// (``IPC_RMID``). Handles and views stay usable until closed.
    fn remove(&self) -> PyResult<()> {
        self.handle()?.remove().or_raise()
    }

    /// Lets go of this handle. Views made from it (``buf``, arrays) keep the mapping until they
    /// are gone; a volatile object is destroyed once nothing holds it any more.
    fn close(&mut self) {
        self.shm = None;
        self.buf = None;
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(&mut self, _kind: &Bound<'_, PyAny>, _value: &Bound<'_, PyAny>, _traceback: &Bound<'_, PyAny>) {
        self.close();
    }

    fn __repr__(&self) -> String {
        match &self.shm {
            Some(shm) => format!(
                "<ipcmem.SharedMemory {} size={}{}>",
                self.id,
                shm.len(),
                if shm.is_readonly() { " readonly" } else { "" }
            ),
            None => format!("<ipcmem.SharedMemory {} closed>", self.id),
        }
    }
}

/// Removes the object `obj`: unlinks a POSIX name, marks a System V segment (by key or id) for
/// removal. What is already gone is not an error.
#[pyfunction]
pub fn shmrm(obj: &Bound<'_, PyAny>) -> PyResult<()> {
    ipcmem::shmrm(to_id(obj)?).or_raise()
}
