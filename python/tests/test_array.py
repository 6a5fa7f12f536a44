"""SharedArray: the twelve element types, shared with the `ipcmem` command in both directions,
Fortran order, zero copy, read-only views, and views that outlive their handle."""

import numpy as np
import pytest

import ipcmem
from conftest import exists

# ipcmem's name, NumPy's type, and values that use the type's range (column-major order).
TYPES = [
    ("i8", np.int8, [-128, -1, 0, 1, 100, 127]),
    ("u8", np.uint8, [0, 1, 2, 127, 200, 255]),
    ("i16", np.int16, [-32768, -2, 0, 3, 1000, 32767]),
    ("u16", np.uint16, [0, 1, 2, 3, 40000, 65535]),
    ("i32", np.int32, [-(2**31), -5, 0, 7, 123456, 2**31 - 1]),
    ("u32", np.uint32, [0, 1, 5, 7, 3000000000, 2**32 - 1]),
    ("i64", np.int64, [-(2**63), -9, 0, 11, 2**40, 2**63 - 1]),
    ("u64", np.uint64, [0, 1, 9, 11, 2**40, 2**64 - 1]),
    ("f32", np.float32, [1.5, -0.25, 0.0, 3.0, 1e30, -7.125]),
    ("f64", np.float64, [1.5, -0.25, 0.1, 3.0, 1e300, -7.125]),
    ("c32", np.complex64, [1.5 - 0.5j, 0j, 2 + 1j, -1 - 1j, 0.25j, 3]),
    ("c64", np.complex128, [1.5 - 0.5j, 0.1 + 0.2j, 2 + 1j, -1 - 1j, 0.25j, 3]),
]


def parse_shown(text, dtype):
    """The values `ipcmem array show` prints (memory order), as NumPy values."""
    tokens = text.split()
    if np.dtype(dtype).kind == "c":
        return np.array([complex(token.replace("i", "j")) for token in tokens], dtype)
    if np.dtype(dtype).kind == "f":
        return np.array([float(token) for token in tokens], dtype)
    return np.array([int(token) for token in tokens], dtype)


@pytest.mark.parametrize("element, dtype, values", TYPES, ids=[t[0] for t in TYPES])
def test_command_reads_python_array(cli, name, element, dtype, values):
    path = name(element)
    expected = np.array(values, dtype).reshape((2, 3), order="F")
    with ipcmem.SharedArray.create(path, dtype, (2, 3), volatile=False) as image:
        image.array[:] = expected
    try:
        info = cli.text("info", path)
        assert f"{element} 2x3" in info
        shown = cli.text("array", "show", path, "--limit", "all")
        assert shown.splitlines()[0].split() == shown.split()[:2], "one line per column (first index fastest)"
        np.testing.assert_array_equal(parse_shown(shown, dtype), expected.ravel(order="F"))
    finally:
        ipcmem.shmrm(path)


@pytest.mark.parametrize("element, dtype, values", TYPES, ids=[t[0] for t in TYPES])
def test_python_reads_command_array(cli, element, dtype, values):
    made = cli.text("array", "create", "private", element, "2x3")  # System V, by id
    try:
        data = np.array(values, dtype)
        cli("write", made, "--offset", 64, input=data.tobytes())  # elements after the 64-byte header
        with ipcmem.SharedArray.open(made, readonly=True) as image:
            assert image.dtype == np.dtype(dtype) and image.shape == (2, 3)
            assert image.header == f"{element} 2x3"
            seen = image.array
            assert seen.flags.f_contiguous and not seen.flags.writeable and not seen.flags.owndata
            np.testing.assert_array_equal(seen, data.reshape((2, 3), order="F"))
            assert seen[1, 2] == data[1 + 2 * 2], "a[i, j] is element i + j*rows, as get(&[i, j])"
    finally:
        cli("rm", made)


def test_dtype_spellings(name):
    for spelling in ("f4", "float32", np.float32, np.dtype("<f4"), "f32"):
        with ipcmem.SharedArray.create(name(), spelling, 4) as array:
            assert array.dtype == np.float32 and array.shape == (4,)


def test_zero_copy_between_handles(name):
    path = name()
    with ipcmem.SharedArray.create(path, "u16", (640, 480)) as writer:
        with ipcmem.SharedArray.open(path) as reader:
            writer.array[10, 20] = 1234
            assert reader.array[10, 20] == 1234
            reader.array[:, 0] = 7
            assert (writer.array[:, 0] == 7).all()
            assert np.shares_memory(writer.array, writer.array[3:, 4:])


def test_open_or_create(name):
    path = name()
    first, created = ipcmem.SharedArray.open_or_create(path, "i32", (3, 4))
    second, again = ipcmem.SharedArray.open_or_create(path, "i32", (3, 4))
    assert (created, again) == (True, False)
    with pytest.raises(ValueError):
        ipcmem.SharedArray.open_or_create(path, "i32", (4, 3))
    first.close()
    second.close()


def test_view_outlives_close_and_keeps_the_object(name):
    path = name()
    image = ipcmem.SharedArray.create(path, "f64", (8, 8))
    view = image.array[2:4, :]
    image.close()
    assert image.closed and exists(path)
    view[:] = 3.5  # still mapped
    with ipcmem.SharedArray.open(path, readonly=True) as again:
        assert again.array[2, 0] == 3.5
    del view
    assert not exists(path), "the last view gone, the volatile object goes"


def test_readonly_array_cannot_be_made_writeable(name):
    path = name()
    with ipcmem.SharedArray.create(path, "u8", 16), ipcmem.SharedArray.open(path, readonly=True) as reader:
        with pytest.raises(ValueError):
            reader.array[0] = 1
        with pytest.raises(ValueError):
            reader.array.flags.writeable = True
        with pytest.raises(ValueError):
            reader.array[2:].flags.writeable = True


def test_bad_dtypes_and_shapes(name):
    path = name()
    for dtype in (np.bool_, ">f4", "f16", object, "nonsense", np.float16):
        with pytest.raises(ipcmem.InvalidArgument):
            ipcmem.SharedArray.create(path, dtype, 4)
    for shape in (0, (2, 0), (-1,), (2**70,), (2**40, 2**40)):
        with pytest.raises(ValueError):
            ipcmem.SharedArray.create(path, "u8", shape)
    for shape in ("12", 1.5, None):
        with pytest.raises(TypeError):
            ipcmem.SharedArray.create(path, "u8", shape)
    assert not exists(path)


def test_not_an_array(name):
    path = name()
    with ipcmem.SharedMemory(path, 4096) as plain:
        plain.buf[:4] = b"\x01\x02\x03\x04"
        with pytest.raises(ipcmem.InvalidArgument) as refused:
            ipcmem.SharedArray.open(path)
        assert "not a valid shared array" in str(refused.value)
