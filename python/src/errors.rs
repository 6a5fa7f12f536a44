//! Rust errors as Python exceptions: one class per kind of failure, each deriving from
//! `ipcmem.Error` and from the built-in exception a Python user already catches
//! (`FileNotFoundError`, `ValueError`, ...), and carrying the Rust message as it is.

use pyo3::exceptions::{
    PyEOFError, PyException, PyFileExistsError, PyFileNotFoundError, PyMemoryError, PyOSError, PyPermissionError,
    PyTimeoutError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

use ipcmem::{Error, Limit};

/// The exception classes, made once per interpreter when the module is imported.
struct Classes {
    error: Py<PyType>,
    not_found: Py<PyType>,
    already_exists: Py<PyType>,
    permission_denied: Py<PyType>,
    invalid_argument: Py<PyType>,
    timeout: Py<PyType>,
    out_of_memory: Py<PyType>,
    limit_exceeded: Py<PyType>,
    os_error: Py<PyType>,
    writer_gone: Py<PyType>,
}

static CLASSES: PyOnceLock<Classes> = PyOnceLock::new();

/// The classes in the order the module exports them: (name, built-in base, docstring).
fn specs(py: Python<'_>) -> [(&'static str, Bound<'_, PyType>, &'static str); 9] {
    [
        ("NotFound", py.get_type::<PyFileNotFoundError>(), "The object does not exist."),
        ("AlreadyExists", py.get_type::<PyFileExistsError>(), "An exclusive creation found the object already there."),
        (
            "PermissionDenied",
            py.get_type::<PyPermissionError>(),
            "The object's mode or owner refuses the access, or the handle is read-only.",
        ),
        (
            "InvalidArgument",
            py.get_type::<PyValueError>(),
            "A bad name, size, element type, shape, offset or option, or an object that holds no valid array.",
        ),
        ("Timeout", py.get_type::<PyTimeoutError>(), "A wait ran out of time."),
        ("OutOfMemory", py.get_type::<PyMemoryError>(), "The kernel cannot give the memory asked for."),
        (
            "LimitExceeded",
            py.get_type::<PyOSError>(),
            "A system limit (SHMMAX, SHMMNI, SHMALL, space in /dev/shm, open files, huge pages, RLIMIT_MEMLOCK) stands in the way.",
        ),
        ("OsError", py.get_type::<PyOSError>(), "Any other failed system call; `errno` tells which error."),
        (
            "WriterGone",
            py.get_type::<PyEOFError>(),
            "A stream's writer closed it or died, and every frame it published was read.",
        ),
    ]
}

/// Makes the classes and adds them to `module`.
pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    let classes = CLASSES.get_or_try_init(py, || make_classes(py))?;
    module.add("Error", classes.error.bind(py))?;
    for (name, _, _) in specs(py) {
        module.add(name, classes.by_name(name).bind(py))?;
    }
    Ok(())
}

fn make_classes(py: Python<'_>) -> PyResult<Classes> {
    let error = make_class(
        py,
        "Error",
        &[py.get_type::<PyException>()],
        "The base class of every error of ipcmem; each also derives from the matching built-in exception.",
    )?;
    let mut made = Vec::new();
    for (name, builtin, doc) in specs(py) {
        made.push(make_class(py, name, &[error.bind(py).clone(), builtin], doc)?);
    }
    let mut made = made.into_iter();
    let mut next = || made.next().ok_or_else(|| PyValueError::new_err("ipcmem: exception classes"));
    Ok(Classes {
        error,
        not_found: next()?,
        already_exists: next()?,
        permission_denied: next()?,
        invalid_argument: next()?,
        timeout: next()?,
        out_of_memory: next()?,
        limit_exceeded: next()?,
        os_error: next()?,
        writer_gone: next()?,
    })
}

/// `type(name, bases, {"__module__": "ipcmem", "__doc__": doc})`.
fn make_class(py: Python<'_>, name: &str, bases: &[Bound<'_, PyType>], doc: &str) -> PyResult<Py<PyType>> {
    let namespace = PyDict::new(py);
    namespace.set_item("__module__", "ipcmem")?;
    namespace.set_item("__doc__", doc)?;
    let class = py.get_type::<PyType>().call1((name, PyTuple::new(py, bases)?, namespace))?;
    Ok(class.cast_into::<PyType>()?.unbind())
}

impl Classes {
    fn by_name(&self, name: &str) -> &Py<PyType> {
        match name {
            "NotFound" => &self.not_found,
            "AlreadyExists" => &self.already_exists,
            "PermissionDenied" => &self.permission_denied,
            "InvalidArgument" => &self.invalid_argument,
            "Timeout" => &self.timeout,
            "OutOfMemory" => &self.out_of_memory,
            "LimitExceeded" => &self.limit_exceeded,
            "OsError" => &self.os_error,
            "WriterGone" => &self.writer_gone,
            _ => &self.error,
        }
    }

    /// The class of `error`, and the `errno` its exception carries.
    fn of(&self, error: &Error) -> (&Py<PyType>, Option<i32>) {
        match error {
            Error::NotFound { .. } => (&self.not_found, Some(libc::ENOENT)),
            Error::AlreadyExists { .. } => (&self.already_exists, Some(libc::EEXIST)),
            Error::PermissionDenied { .. } => (&self.permission_denied, Some(libc::EACCES)),
            Error::ReadOnly { .. } => (&self.permission_denied, Some(libc::EROFS)),
            Error::NotInitialised { .. } => (&self.timeout, Some(libc::ETIMEDOUT)),
            Error::LimitExceeded { limit: Limit::Memory, .. } => (&self.out_of_memory, Some(libc::ENOMEM)),
            Error::LimitExceeded { limit, .. } => (&self.limit_exceeded, Some(limit_errno(*limit))),
            Error::Os { errno, .. } => (self.of_errno(errno.raw_os_error()), Some(errno.raw_os_error())),
            Error::WriterGone { .. } => (&self.writer_gone, None),
            Error::Busy { .. } | Error::Locked { .. } => (&self.os_error, Some(libc::EBUSY)),
            Error::Shrunk { .. } | Error::Fault { .. } => (&self.os_error, Some(libc::EFAULT)),
            _ => (&self.invalid_argument, None),
        }
    }
}

impl Classes {
    /// The class of a failed system call by its errno, as Python's `OSError` picks its
    /// subclass.
    fn of_errno(&self, errno: i32) -> &Py<PyType> {
        match errno {
            libc::ENOENT => &self.not_found,
            libc::EEXIST => &self.already_exists,
            libc::EACCES | libc::EPERM | libc::EROFS => &self.permission_denied,
            libc::ETIMEDOUT => &self.timeout,
            libc::ENOMEM => &self.out_of_memory,
            _ => &self.os_error,
        }
    }
}

fn limit_errno(limit: Limit) -> i32 {
    match limit {
        Limit::NoSpace => libc::ENOSPC,
        Limit::OpenFiles => libc::EMFILE,
        Limit::ShmMax => libc::EINVAL,
        _ => libc::ENOMEM,
    }
}

/// The Python exception for `error`: its class (see the module), its message the Rust one
/// (`str(e)`), `e.object` the object it is about, and `e.errno` set for the `OSError` kinds
/// (only `errno`: with `strerror` or `filename` set, `OSError.__str__` would reword the message).
#[allow(clippy::needless_pass_by_value)] // the signature of map_err(to_py)
pub fn to_py(error: Error) -> PyErr {
    Python::attach(|py| build(py, &error).unwrap_or_else(|failure| failure))
}

fn build(py: Python<'_>, error: &Error) -> Result<PyErr, PyErr> {
    let classes = CLASSES.get_or_try_init(py, || make_classes(py))?;
    let (class, errno) = classes.of(error);
    let message = error.to_string();
    let exception = class.bind(py).call1((message.as_str(),))?;
    exception.setattr("object", error.object())?;
    if let Some(errno) = errno {
        exception.setattr("errno", errno)?;
    }
    Ok(PyErr::from_value(exception))
}

/// An `ipcmem.InvalidArgument` (a `ValueError`) about `object`, for checks made by the binding.
pub fn invalid(object: impl std::fmt::Display, reason: impl Into<String>) -> PyErr {
    to_py(Error::InvalidArgument { object: object.to_string(), reason: reason.into() })
}

/// Converts the result of an ipcmem call.
pub trait OrRaise<T> {
    /// The value, or the error as a Python exception.
    fn or_raise(self) -> PyResult<T>;
}

impl<T> OrRaise<T> for ipcmem::Result<T> {
    fn or_raise(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}

/// An `ipcmem.Timeout` (a `TimeoutError`) about `object`: a wait of the binding ran out.
pub fn timeout(object: &dyn std::fmt::Display, reason: &str) -> PyErr {
    Python::attach(|py| {
        let made = CLASSES.get_or_try_init(py, || make_classes(py)).and_then(|classes| {
            let message = format!("{object}: {reason}");
            let exception = classes.timeout.bind(py).call1((message,))?;
            exception.setattr("object", object.to_string())?;
            exception.setattr("errno", libc::ETIMEDOUT)?;
            Ok(PyErr::from_value(exception))
        });
        made.unwrap_or_else(|failure| failure)
    })
}

/// Whether `error` is an `ipcmem.WriterGone`.
pub fn is_writer_gone(py: Python<'_>, error: &PyErr) -> bool {
    CLASSES.get(py).is_some_and(|classes| error.get_type(py).is_subclass(classes.writer_gone.bind(py)).unwrap_or(false))
}
