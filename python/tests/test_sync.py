"""Event, Semaphore and gc: waits between processes, waits that release the GIL (measured by
the progress of another Python thread), named semaphores shared with the `ipcmem` command."""

import os
import threading
import time

import pytest

import ipcmem
from conftest import exists, python, run_python, stop, wait_for


def count_for(seconds):
    """How many times a pure-Python loop turns in `seconds` (it needs the GIL to turn)."""
    count, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        count += 1
    return count


def progress_while(blocking_call):
    """The progress of this thread while another thread is in `blocking_call` (which must
    block for at least a second), as a fraction of its progress alone.

    A call that kept the GIL would stop this thread for its whole length: the measurement
    would start only after it returned, which `still_waiting` catches. The fraction itself is
    noisy on a loaded machine (other processes, the waiter's brief spin), hence low bounds."""
    alone = count_for(0.2)
    entered, result = threading.Event(), []

    def waiter():
        entered.set()
        result.append(blocking_call())

    thread = threading.Thread(target=waiter)
    thread.start()
    entered.wait()
    time.sleep(0.05)  # the waiter is inside the call now
    during = count_for(0.2)
    still_waiting = thread.is_alive()
    thread.join()
    assert still_waiting, "the call returned before the measurement ended"
    return during / alone, result[0]


def test_event_wait_releases_the_gil(name):
    with ipcmem.SharedMemory(name(), 4096) as shm:
        event = ipcmem.Event(shm, 64)
        ratio, woke = progress_while(lambda: event.wait(event.value, timeout=1.0))
        assert woke is None, "nobody notified: the wait timed out"
        assert ratio > 0.1, f"the other thread ran at {ratio:.0%} of its speed alone"


def test_semaphore_wait_releases_the_gil(name):
    with ipcmem.SharedMemory(name(), 4096) as shm:
        semaphore = ipcmem.Semaphore.init_at(shm, 0, 0)
        ratio, taken = progress_while(lambda: semaphore.wait(timeout=1.0))
        assert taken is False and ratio > 0.1, ratio


def test_event_between_processes(name):
    path = name()
    with ipcmem.SharedMemory(path, 4096) as shm:
        event = ipcmem.Event(shm, 0)
        seen = event.value
        child = python(
            "import ipcmem, sys\n"
            "shm = ipcmem.SharedMemory(sys.argv[1])\n"
            "event = ipcmem.Event(shm, 0)\n"
            "seen = event.value\n"
            "print('ready', flush=True)\n"
            "now = event.wait(seen, timeout=10)\n"
            "print(bytes(shm.buf[100:105]).decode(), now - seen)\n"
            "shm.buf[200:202] = b'ok'\n"
            "event.notify_all()\n",
            path,
        )
        try:
            assert child.stdout.readline().strip() == "ready"
            shm.buf[100:105] = b"frame"
            event.notify_all()
            assert event.wait(seen + 1, timeout=10) is not None
            assert bytes(shm.buf[200:202]) == b"ok"
            assert child.stdout.readline().split() == ["frame", "1"]
        finally:
            stop(child)


def test_named_semaphore_shared_with_the_command(cli, name):
    path = name("sem")
    semaphore = ipcmem.Semaphore.create(path, 2, perms=0o640)
    assert (semaphore.name, semaphore.value) == (path, 2)
    assert exists("/sem." + path[1:])
    info = dict(line.split(None, 1) for line in cli.text("info", f"sem:{path}").splitlines())
    assert (info["value"], info["mode"][-3:], info["volatile"]) == ("2", "640", "true")
    other = ipcmem.Semaphore.open(path)
    assert other.wait(timeout=1) and other.try_wait() and not other.try_wait()
    assert semaphore.value == 0
    assert run_python("import ipcmem, sys; s = ipcmem.Semaphore.open(sys.argv[1]); s.post(); print(s.value)", path) == "1\n"
    with semaphore:  # takes one, gives it back
        assert semaphore.value == 0
    assert semaphore.value == 1
    _, created = ipcmem.Semaphore.open_or_create(path, 5)
    assert not created
    del semaphore, other, _
    wait_for(lambda: not exists("/sem." + path[1:]), what="the volatile semaphore removed with its last handle")


def test_placed_semaphore(name):
    with ipcmem.SharedMemory(name(), 4096) as shm:
        first = ipcmem.Semaphore.init_at(shm, 64, 1)
        with pytest.raises(FileExistsError):
            ipcmem.Semaphore.init_at(shm, 64, 1)
        same = ipcmem.Semaphore.attach_at(shm, 64)
        assert same.wait(timeout=0.1) and not same.wait(timeout=0.05)
        first.post()
        assert same.value == 1 and same.name is None
        with pytest.raises(ValueError):
            ipcmem.Semaphore.init_at(shm, 3, 0)  # misaligned
        with pytest.raises(ValueError):
            ipcmem.Semaphore.attach_at(shm, 1024)  # nothing there


def test_gc_removes_the_object_of_a_killed_python(name):
    path = name()
    child = python(
        "import ipcmem, sys\n"
        "shm = ipcmem.SharedMemory(sys.argv[1], 4096)\n"
        "print('made', flush=True)\n"
        "sys.stdin.read()\n",
        path,
        stdin=__import__("subprocess").PIPE,
    )
    assert child.stdout.readline().strip() == "made"
    assert path not in ipcmem.gc(dry_run=True), "held by a live process: not garbage"
    stop(child, sig=9)  # SIGKILL: the handle could not remove the object
    assert exists(path)
    assert path in ipcmem.gc(dry_run=True) and exists(path)
    removed = ipcmem.gc()
    assert path in removed or not exists(path)  # another suite's gc may have come first
    assert not exists(path)


def test_volatile_object_of_python_lives_while_the_command_holds_it(cli, name):
    path = name()
    child = python(
        "import ipcmem, sys\n"
        "shm = ipcmem.SharedMemory(sys.argv[1], 4096)\n"
        "shm.buf[:2] = b'py'\n"
        "print('made', flush=True)\n"
        "sys.stdin.readline()\n",
        path,
        stdin=__import__("subprocess").PIPE,
    )
    assert child.stdout.readline().strip() == "made"
    holder = cli.start("hold", path)
    try:
        assert holder.stdout.readline().startswith(b"holding")
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.wait(timeout=10) == 0
        assert exists(path), "Python's handle is gone, the command's holds the object"
        assert cli("read", path, "--length", 2).stdout == b"py"
    finally:
        stop(holder)
        stop(child)
    wait_for(lambda: not exists(path), what="the object removed with its last holder, a Rust process")
