"""Errors: each kind is an ipcmem.Error and the matching built-in exception, carries the Rust
message and the object; bad input raises, never crashes."""

import errno

import pytest

import ipcmem

KINDS = {
    ipcmem.NotFound: FileNotFoundError,
    ipcmem.AlreadyExists: FileExistsError,
    ipcmem.PermissionDenied: PermissionError,
    ipcmem.InvalidArgument: ValueError,
    ipcmem.Timeout: TimeoutError,
    ipcmem.OutOfMemory: MemoryError,
    ipcmem.LimitExceeded: OSError,
    ipcmem.OsError: OSError,
    ipcmem.WriterGone: EOFError,
}


def test_hierarchy():
    for kind, builtin in KINDS.items():
        assert issubclass(kind, ipcmem.Error) and issubclass(kind, builtin), kind
        assert kind.__module__ == "ipcmem" and kind.__doc__


def test_missing_object_carries_the_rust_message(name):
    path = name()
    with pytest.raises(FileNotFoundError) as missing:
        ipcmem.SharedMemory(path)
    error = missing.value
    assert isinstance(error, ipcmem.NotFound)
    assert str(error) == f"{path}: no such shared memory object"
    assert (error.errno, error.object) == (errno.ENOENT, path)
    for opener in (ipcmem.SharedArray.open, ipcmem.StreamReader.open, ipcmem.Semaphore.open):
        with pytest.raises(ipcmem.NotFound):
            opener(path)
    with pytest.raises(ipcmem.NotFound):
        ipcmem.SharedMemory(ipcmem.ShmId(2**31 - 2))


@pytest.mark.parametrize(
    "bad",
    ["", "/", "noslash", "/a/b", "/" + "x" * 300, "/.", "/..", "key:zz", "id:-1", "id:x", "/nul\0"],
)
def test_bad_names(bad):
    with pytest.raises(ipcmem.InvalidArgument):
        ipcmem.SharedMemory(bad, 100)


def test_bad_types_of_object():
    for bad in (None, 42, b"/bytes", 1.5):
        with pytest.raises(TypeError):
            ipcmem.SharedMemory(bad, 100)


def test_bad_sizes_and_options(name):
    path = name()
    for size in (0, -1, 2**64, 2**100):
        with pytest.raises(ValueError):
            ipcmem.SharedMemory(path, size)
    with pytest.raises(TypeError):
        ipcmem.SharedMemory(path, "100")
    for perms in (-1, 0o1000, 2**40):
        with pytest.raises(ValueError):
            ipcmem.SharedMemory(path, 100, perms=perms)
    with pytest.raises(ValueError):
        ipcmem.Key.from_path("/", 0)
    with pytest.raises(ValueError):
        ipcmem.Key.from_path("/", 256)
    with pytest.raises(FileNotFoundError):
        ipcmem.Key.from_path("/no/such/file", 1)
    with pytest.raises(ValueError):
        ipcmem.ShmId(-1)
    with pytest.raises(ValueError):
        ipcmem.SharedMemory(ipcmem.ShmId(1), 100)  # an id names an existing segment
    with pytest.raises(ValueError):  # a volatile segment loses its key
        ipcmem.SharedMemory.open_or_create(ipcmem.Key(0x7A7A7A7A), 100)


def test_out_of_bounds_and_closed(name):
    with ipcmem.SharedMemory(name(), 100) as shm:
        with pytest.raises(ValueError):
            shm.read(90, 20)
        with pytest.raises(ValueError):
            shm.write(b"x" * 20, 90)
        with pytest.raises(ValueError):
            shm.read(2**70)
    with pytest.raises(ValueError):
        shm.size
    with pytest.raises(ValueError):
        ipcmem.Event(shm)


def test_system_limit(name):
    with pytest.raises((ipcmem.LimitExceeded, ipcmem.OutOfMemory, ipcmem.InvalidArgument)) as refused:
        ipcmem.SharedMemory(ipcmem.PRIVATE, 2**62)  # past SHMMAX or the memory
    assert isinstance(refused.value, ipcmem.Error)
    with pytest.raises((ipcmem.LimitExceeded, ipcmem.OutOfMemory, ipcmem.InvalidArgument)):
        ipcmem.SharedMemory(name(), 2**62)  # more than /dev/shm holds
