"""ipcmem: shared memory between processes on Linux, for Python and NumPy.

POSIX objects (``"/name"``) and System V segments (``Key``, ``ShmId``, ``PRIVATE``), made and
opened with :class:`SharedMemory`; typed N-dimensional arrays viewed as NumPy arrays without
copy (:class:`SharedArray`), in the layout Rust, Julia and the ``ipcmem`` command share;
frame streams (:class:`StreamWriter`, :class:`StreamReader`) that never return a torn frame
and count every lost one; waits between processes (:class:`Event`, :class:`Semaphore`) that
release the GIL; :func:`gc` for the volatile objects of crashed processes; and
:mod:`ipcmem.isio` for the ImageStreamIO streams of milk and cacao.

Objects are *volatile* by default: destroyed when the last handle, in any process and any
language, is gone. Nothing is removed behind your back: opening an object never registers it
with ``multiprocessing``'s resource tracker.

Memory shared with other processes may change at any time, also under a NumPy array or a
memoryview of it: that is the point (zero copy), and it is outside Rust's memory model (Python
and NumPy, not Rust code, read and write it). Synchronise with an Event, a Semaphore or a
stream to avoid torn values.

>>> import numpy as np, ipcmem
>>> frame = ipcmem.SharedArray.create("/camera-frame", np.uint16, (640, 480))
>>> frame.array[:] = 7                      # another process sees it at once
"""

from . import isio  # ImageStreamIO streams: ipcmem.isio
from ._ipcmem import (
    PRIVATE,
    AlreadyExists,
    Error,
    Event,
    FrameInfo,
    InvalidArgument,
    Key,
    LimitExceeded,
    NotFound,
    OsError,
    OutOfMemory,
    PermissionDenied,
    Semaphore,
    SharedArray,
    SharedMemory,
    ShmId,
    StreamReader,
    StreamWriter,
    Timeout,
    WriterGone,
    gc,
    page_size,
    shmrm,
)

__version__ = "0.1.0"

__all__ = [
    "PRIVATE",
    "AlreadyExists",
    "Error",
    "Event",
    "FrameInfo",
    "InvalidArgument",
    "Key",
    "LimitExceeded",
    "NotFound",
    "OsError",
    "OutOfMemory",
    "PermissionDenied",
    "Semaphore",
    "SharedArray",
    "SharedMemory",
    "ShmId",
    "StreamReader",
    "StreamWriter",
    "Timeout",
    "WriterGone",
    "gc",
    "page_size",
    "shmrm",
]
