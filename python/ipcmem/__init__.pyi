"""Type stubs of ipcmem (the extension module ipcmem._ipcmem, re-exported)."""

import os
from types import TracebackType
from typing import Iterator, Optional, Sequence, Tuple, Type, Union, final

import numpy as np
import numpy.typing as npt

from . import isio as isio

__version__: str
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

# Whatever names an object: "/name", "key:0x…", "id:N", "private", a Key, a ShmId, PRIVATE.
_Object = Union[str, "Key", "ShmId"]
# An element type: "i8" "u8" "i16" "u16" "i32" "u32" "i64" "u64" "f32" "f64" "c32" "c64", or
# anything numpy.dtype takes for one of these (c32 is complex64, c64 is complex128).
_DType = npt.DTypeLike
_Shape = Union[int, Sequence[int]]

class Error(Exception):
    """The base class of every error of ipcmem."""

    object: str

class NotFound(Error, FileNotFoundError): ...
class AlreadyExists(Error, FileExistsError): ...
class PermissionDenied(Error, PermissionError): ...
class InvalidArgument(Error, ValueError): ...
class Timeout(Error, TimeoutError): ...
class OutOfMemory(Error, MemoryError): ...
class LimitExceeded(Error, OSError): ...
class OsError(Error, OSError): ...
class WriterGone(Error, EOFError): ...

@final
class Key:
    """A System V IPC key (key_t)."""

    def __new__(cls, raw: int) -> Key: ...
    @staticmethod
    def from_path(path: Union[str, os.PathLike[str]], proj: int) -> Key:
        """ftok(3): the key of an existing file and a project number 1..=255."""
    @property
    def raw(self) -> int: ...
    @property
    def is_private(self) -> bool: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class ShmId:
    """The id of a System V segment, as ipcs -m shows it."""

    def __new__(cls, raw: int) -> ShmId: ...
    @staticmethod
    def from_key(key: Key, readonly: bool = False) -> ShmId: ...
    @property
    def raw(self) -> int: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

PRIVATE: Key

@final
class SharedMemory:
    """A POSIX object or System V segment mapped into this process.

    SharedMemory(obj, size) creates (volatile, mode 0o600 unless told otherwise);
    SharedMemory(obj) opens. `buf` is a memoryview of the memory itself.
    """

    def __new__(
        cls,
        obj: _Object,
        size: Optional[int] = None,
        *,
        perms: int = 0o600,
        volatile: bool = True,
        readonly: bool = False,
        create: Optional[bool] = None,
        prefault: bool = False,
        huge_pages: bool = False,
        lock: bool = False,
        reserve: bool = False,
    ) -> SharedMemory: ...
    @staticmethod
    def open_or_create(
        obj: _Object,
        size: int,
        *,
        perms: int = 0o600,
        volatile: bool = True,
        readonly: bool = False,
        prefault: bool = False,
        huge_pages: bool = False,
        lock: bool = False,
        reserve: bool = False,
    ) -> Tuple[SharedMemory, bool]:
        """(handle, created): opens the object if it exists, else makes it."""
    @property
    def buf(self) -> memoryview: ...
    @property
    def size(self) -> int: ...
    @property
    def id(self) -> Union[str, ShmId]: ...
    @property
    def readonly(self) -> bool: ...
    @property
    def volatile(self) -> bool: ...
    @property
    def closed(self) -> bool: ...
    def read(self, offset: int = 0, length: Optional[int] = None) -> bytes: ...
    def write(self, data: Union[bytes, bytearray, memoryview], offset: int = 0) -> None: ...
    def remove(self) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> SharedMemory: ...
    def __exit__(
        self,
        kind: Optional[Type[BaseException]],
        value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None: ...

@final
class SharedArray:
    """A typed N-dimensional array in shared memory, seen as a NumPy array without copy
    (Fortran order: a.array[i, j] is Rust's get(&[i, j]) and Julia's A[i+1, j+1])."""

    @staticmethod
    def create(
        obj: _Object,
        dtype: _DType,
        shape: _Shape,
        *,
        perms: int = 0o600,
        volatile: bool = True,
        prefault: bool = False,
        huge_pages: bool = False,
        lock: bool = False,
        reserve: bool = False,
    ) -> SharedArray: ...
    @staticmethod
    def open(obj: _Object, readonly: bool = False, *, prefault: bool = False, lock: bool = False) -> SharedArray: ...
    @staticmethod
    def open_or_create(
        obj: _Object, dtype: _DType, shape: _Shape, *, perms: int = 0o600, volatile: bool = True
    ) -> Tuple[SharedArray, bool]: ...
    @property
    def array(self) -> np.ndarray: ...
    @property
    def dtype(self) -> np.dtype: ...
    @property
    def shape(self) -> Tuple[int, ...]: ...
    @property
    def header(self) -> str: ...
    @property
    def id(self) -> Union[str, ShmId]: ...
    @property
    def readonly(self) -> bool: ...
    @property
    def closed(self) -> bool: ...
    def remove(self) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> SharedArray: ...
    def __exit__(
        self,
        kind: Optional[Type[BaseException]],
        value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None: ...

_Memory = Union[SharedMemory, SharedArray]

@final
class Event:
    """A wake-up between processes at an offset of a shared memory object."""

    SIZE: int
    ALIGN: int
    def __new__(cls, memory: _Memory, offset: int = 0, *, spin: Optional[float] = None) -> Event: ...
    @property
    def value(self) -> int: ...
    @property
    def offset(self) -> int: ...
    def wait(self, seen: int, timeout: Optional[float] = None) -> Optional[int]:
        """Waits until the count differs from `seen` (None if the timeout passed); releases the GIL."""
    def notify_one(self) -> int: ...
    def notify_all(self) -> int: ...

@final
class Semaphore:
    """A counting semaphore: named (/dev/shm/sem.NAME, as sem_open) or placed in shared memory."""

    SIZE: int
    ALIGN: int
    @staticmethod
    def create(name: str, value: int = 0, *, perms: int = 0o600, volatile: bool = True) -> Semaphore: ...
    @staticmethod
    def open(name: str) -> Semaphore: ...
    @staticmethod
    def open_or_create(
        name: str, value: int = 0, *, perms: int = 0o600, volatile: bool = True
    ) -> Tuple[Semaphore, bool]: ...
    @staticmethod
    def init_at(memory: _Memory, offset: int, value: int = 0) -> Semaphore: ...
    @staticmethod
    def attach_at(memory: _Memory, offset: int) -> Semaphore: ...
    @staticmethod
    def unlink(name: str) -> None: ...
    def post(self) -> None: ...
    def wait(self, timeout: Optional[float] = None) -> bool:
        """Takes one, waiting while the count is zero (False if the timeout passed); releases the GIL."""
    def try_wait(self) -> bool: ...
    @property
    def value(self) -> int: ...
    @property
    def name(self) -> Optional[str]: ...
    def remove(self) -> None: ...
    def __enter__(self) -> Semaphore: ...
    def __exit__(
        self,
        kind: Optional[Type[BaseException]],
        value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None: ...

@final
class FrameInfo:
    """What a reader learns with each frame."""

    @property
    def serial(self) -> int: ...
    @property
    def lost(self) -> int: ...
    @property
    def acquired(self) -> float: ...
    @property
    def published(self) -> float: ...
    @property
    def acquired_ns(self) -> int: ...
    @property
    def published_ns(self) -> int: ...
    @property
    def restarted(self) -> bool: ...

@final
class StreamWriter:
    """The writer of a frame stream (a ring of `slots` frames in shared memory)."""

    @staticmethod
    def create(
        obj: _Object,
        dtype: _DType,
        frame_shape: _Shape,
        slots: int,
        *,
        perms: int = 0o600,
        volatile: bool = True,
        prefault: bool = False,
        huge_pages: bool = False,
        lock: bool = False,
        reserve: bool = False,
    ) -> StreamWriter: ...
    @staticmethod
    def attach(obj: _Object) -> StreamWriter: ...
    def publish(
        self, frame: npt.ArrayLike, acquired: Optional[float] = None, *, acquired_ns: Optional[int] = None
    ) -> int:
        """Publishes a copy of `frame` (of the frame shape); returns its serial."""
    @property
    def last_serial(self) -> int: ...
    @property
    def dtype(self) -> np.dtype: ...
    @property
    def frame_shape(self) -> Tuple[int, ...]: ...
    @property
    def slots(self) -> int: ...
    @property
    def id(self) -> Union[str, ShmId]: ...
    def close(self) -> None: ...
    def __enter__(self) -> StreamWriter: ...
    def __exit__(
        self,
        kind: Optional[Type[BaseException]],
        value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None: ...

@final
class StreamReader:
    """A reader of a frame stream; an iterator of (frame, FrameInfo) until the writer is gone."""

    @staticmethod
    def open(obj: _Object, *, spin: Optional[float] = None) -> StreamReader: ...
    @staticmethod
    def open_wait(obj: _Object, timeout: float, *, spin: Optional[float] = None) -> StreamReader: ...
    def next(self, timeout: Optional[float] = None) -> Tuple[np.ndarray, FrameInfo]:
        """The next frame (a fresh copy); raises Timeout, or WriterGone; releases the GIL."""
    def latest(self) -> Optional[Tuple[np.ndarray, FrameInfo]]: ...
    def __iter__(self) -> Iterator[Tuple[np.ndarray, FrameInfo]]: ...
    def __next__(self) -> Tuple[np.ndarray, FrameInfo]: ...
    @property
    def last_returned(self) -> int: ...
    @property
    def dtype(self) -> np.dtype: ...
    @property
    def frame_shape(self) -> Tuple[int, ...]: ...
    @property
    def slots(self) -> int: ...
    @property
    def id(self) -> Union[str, ShmId]: ...
    def close(self) -> None: ...
    def __enter__(self) -> StreamReader: ...
    def __exit__(
        self,
        kind: Optional[Type[BaseException]],
        value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None: ...

def shmrm(obj: _Object) -> None:
    """Removes an object (unlinks a POSIX name, marks a System V segment); gone already is fine."""

def gc(dry_run: bool = False) -> list[str]:
    """Removes the volatile POSIX objects no process holds; returns their names."""

def page_size() -> int: ...
