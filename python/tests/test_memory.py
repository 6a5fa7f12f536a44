"""SharedMemory: POSIX objects and System V segments, made and opened from Python and from the
`ipcmem` command, values written on one side read on the other."""

import os
import stat

import pytest

import ipcmem
from conftest import exists, run_python, stop, wait_for


def test_create_then_open_shares_bytes(name):
    path = name()
    with ipcmem.SharedMemory(path, 4096) as shm:
        assert (shm.size, shm.id, shm.readonly, shm.volatile) == (4096, path, False, True)
        shm.buf[10:15] = b"hello"
        with ipcmem.SharedMemory(path) as other:
            assert bytes(other.buf[10:15]) == b"hello"
            other.write(b"world", 20)
        assert shm.read(20, 5) == b"world"
    assert not exists(path), "a volatile object goes with its last handle"


def test_perms_are_exact_whatever_the_umask(name):
    path = name()
    old = os.umask(0o077)
    try:
        with ipcmem.SharedMemory(path, 100, perms=0o640):
            assert os.stat("/dev/shm" + path).st_mode & 0o777 == 0o640  # ipcmem may add marker bits
    finally:
        os.umask(old)


def test_open_or_create_says_which(name):
    path = name()
    first, created = ipcmem.SharedMemory.open_or_create(path, 1000)
    second, again = ipcmem.SharedMemory.open_or_create(path, 1000)
    assert (created, again) == (True, False)
    first.close()
    second.close()


def test_create_flag(name):
    path = name()
    with pytest.raises(ipcmem.InvalidArgument):
        ipcmem.SharedMemory(path, create=True)  # no size
    with ipcmem.SharedMemory(path, 64):
        with pytest.raises(FileExistsError):
            ipcmem.SharedMemory(path, 64, create=True)
        with ipcmem.SharedMemory(path, 32, create=False) as opened:  # size: the least wanted
            assert opened.size == 64
        with pytest.raises(ValueError):
            ipcmem.SharedMemory(path, 128, create=False)


def test_readonly_handle(name):
    path = name()
    with ipcmem.SharedMemory(path, 64) as shm, ipcmem.SharedMemory(path, readonly=True) as reader:
        shm.buf[0] = 7
        assert reader.readonly and reader.buf.readonly and reader.buf[0] == 7
        with pytest.raises(TypeError):  # Python's own refusal of a read-only memoryview
            reader.buf[0] = 1
        with pytest.raises(ipcmem.PermissionDenied) as refused:
            reader.write(b"x")
        assert isinstance(refused.value, PermissionError) and "read-only" in str(refused.value)


def test_persistent_object_stays_until_removed(name):
    path = name()
    ipcmem.SharedMemory(path, 100, volatile=False).close()
    assert exists(path)
    with ipcmem.SharedMemory(path) as shm:
        assert not shm.volatile
        shm.remove()
        assert not exists(path)
        shm.buf[0] = 1  # the handle stays usable
    ipcmem.shmrm(path)  # already gone: not an error


def test_memoryview_outlives_close(name):
    path = name()
    shm = ipcmem.SharedMemory(path, 64)
    view = shm.buf
    shm.close()
    assert shm.closed and exists(path), "the view holds the mapping, and so the object"
    view[0] = 42
    assert view[0] == 42
    with pytest.raises(ValueError):
        shm.buf
    del view
    assert not exists(path)


def test_private_segment_by_id(cli):
    with ipcmem.SharedMemory(ipcmem.PRIVATE, 1000) as shm:
        assert isinstance(shm.id, ipcmem.ShmId)
        shm.write(b"segment")
        for same in (shm.id, str(shm.id), f"id:{shm.id.raw}"):
            with ipcmem.SharedMemory(same) as other:
                assert other.read(0, 7) == b"segment"
        assert cli("read", shm.id, "--length", 7).stdout == b"segment"


def test_key_and_key_string(tmp_path):
    key = ipcmem.Key.from_path(tmp_path, 1)  # a fresh inode: a key no other suite uses
    assert str(key).startswith("key:0x") and ipcmem.Key(key.raw) == key
    try:
        with ipcmem.SharedMemory(key, 256, volatile=False) as shm:
            shm.write(b"by key")
            with ipcmem.SharedMemory(str(key)) as other:
                assert other.read(0, 6) == b"by key"
            assert ipcmem.ShmId.from_key(key) == shm.id
    finally:
        ipcmem.shmrm(key)
    assert repr(ipcmem.PRIVATE) == "ipcmem.PRIVATE" and ipcmem.PRIVATE.is_private


def test_python_reads_what_the_command_wrote_posix(cli, name):
    path = name()
    assert cli.text("create", path, "4KiB") == path
    try:
        cli("write", path, "--offset", 100, input=b"from rust")
        with ipcmem.SharedMemory(path, readonly=True) as shm:
            assert (shm.size, bytes(shm.buf[100:109])) == (4096, b"from rust")
            assert not shm.volatile
    finally:
        cli("rm", path)


def test_command_reads_what_python_wrote_posix(cli, name):
    path = name()
    with ipcmem.SharedMemory(path, 4096, volatile=False) as shm:
        shm.buf[:11] = b"from python"
    try:
        assert cli("read", path, "--length", 11).stdout == b"from python"
    finally:
        ipcmem.shmrm(path)


def test_both_directions_system_v(cli):
    made = cli.text("create", "private", 2000)
    assert made.startswith("id:")
    try:
        cli("write", made, input=b"rust side")
        with ipcmem.SharedMemory(made) as shm:
            assert shm.read(0, 9) == b"rust side" and shm.size == 2000
            shm.buf[1000:1011] = b"python side"
        assert cli("read", made, "--offset", 1000, "--length", 11).stdout == b"python side"
    finally:
        cli("rm", made)


def test_python_holder_keeps_a_volatile_object_of_the_command(cli, name):
    path = name()
    holder = cli.start("create", path, "4KiB", "--volatile", "--hold")
    try:
        wait_for(lambda: exists(path), what=path)
        out = run_python("import ipcmem, sys; s = ipcmem.SharedMemory(sys.argv[1]); print(s.size, s.volatile)", path)
        assert out.split() == ["4096", "True"]
        assert exists(path), "Python's exit removed nothing"
    finally:
        stop(holder)
    wait_for(lambda: not exists(path), what=f"{path} removed by its last holder")


def test_python_exit_removes_nothing_it_opened(cli, name):
    path = name()
    cli("create", path, 4096)  # persistent
    try:
        code = (
            "import multiprocessing.shared_memory, ipcmem, sys\n"  # the tracker's module, loaded
            "shm = ipcmem.SharedMemory(sys.argv[1]); arr = __import__('numpy').frombuffer(shm.buf, 'u1')\n"
            "shm.buf[0] = 9\n"
        )
        run_python(code, path)
        assert exists(path), "nothing registered with a resource tracker, nothing unlinked at exit"
        assert cli("read", path, "--length", 1).stdout == b"\x09"
    finally:
        cli("rm", path)
