"""Frame streams between Rust (`ipcmem stream publish/watch`) and Python, at full speed: only
uniform frames, every loss counted; waits release the GIL."""

import json
import time

import numpy as np
import pytest

import ipcmem
from conftest import stop
from test_sync import progress_while


def test_python_reader_of_a_full_speed_rust_writer(cli, name):
    path, published = name("stream"), 2000
    cli("stream", "create", path, "u16", "128x64", "--slots", 4)  # no writer yet, persistent
    try:
        reader = ipcmem.StreamReader.open(path)
        assert (reader.dtype, reader.frame_shape, reader.slots) == (np.uint16, (128, 64), 4)
        writer = cli.start("stream", "publish", path, "--count", published)  # as fast as it can
        returned = lost = last = 0
        try:
            for frame, info in reader:  # stops when the writer closes the stream
                assert frame.shape == (128, 64) and frame.flags.f_contiguous and frame.flags.owndata
                value = info.serial % 65536  # frame n holds n, as u16
                assert frame.min() == frame.max() == value, f"frame {info.serial} is torn or wrong"
                assert info.serial == last + info.lost + 1 and info.published >= info.acquired > 0
                returned, lost, last = returned + 1, lost + info.lost, info.serial
            assert writer.wait(timeout=60) == 0
        finally:
            stop(writer)
        assert last == published and returned + lost == published, (returned, lost)
        assert returned > 1
        print(f"returned {returned}, lost {lost} of {published}")
        reader.close()
    finally:
        cli("rm", path)


def test_rust_reader_of_a_python_writer(cli, name):
    path, published = name("stream"), 300
    # The watcher waits for the stream to appear, follows it until the writer closes it, then
    # prints its summary (and exits 1, saying the writer is gone).
    watcher = cli.start("stream", "watch", path, "--check", "--json", "--timeout", 20)
    try:
        with ipcmem.StreamWriter.create(path, np.float32, (64, 48), 8) as writer:
            time.sleep(0.1)  # let the watcher find it (it may also come late: see below)
            frame = np.empty((64, 48), np.float32, order="F")
            for serial in range(1, published + 1):
                frame.fill(serial)  # the test pattern of `stream publish`: frame n holds n
                assert writer.publish(frame) == serial
                time.sleep(0.0005)
        out, err = watcher.communicate(timeout=30)
    finally:
        stop(watcher)
    assert b"gone" in err and b"closed" in err, err  # not a wrong frame (--check)
    lines = [json.loads(line) for line in out.splitlines()]
    frames, summary = lines[:-1], lines[-1]
    assert frames[-1]["serial"] == published and summary["frames"] == len(frames) > 1
    # Frames before the watcher opened the stream are not its losses: it starts at the newest.
    assert frames[0]["serial"] - 1 + summary["frames"] + summary["lost"] == published, summary


def test_next_latest_timeout_and_writer_gone(name):
    path = name("stream")
    writer = ipcmem.StreamWriter.create(path, "c32", (3,), 2)
    reader = ipcmem.StreamReader.open_wait(path, timeout=1.0)
    assert reader.latest() is None
    with pytest.raises(ipcmem.Timeout):
        reader.next(timeout=0.05)
    for value in (1, 2, 3):
        writer.publish(np.full(3, value + 1j, np.complex64), acquired=1000.5)
    frame, info = reader.latest()
    assert frame.tolist() == [3 + 1j] * 3 and (info.serial, info.lost) == (3, 2)
    assert reader.latest()[1].serial == 3, "latest may return the same frame again"
    assert info.acquired_ns == 1_000_500_000_000 and info.acquired == 1000.5
    with pytest.raises(ValueError):
        writer.publish(np.zeros(4, np.complex64))  # wrong shape
    with pytest.raises(ipcmem.InvalidArgument):
        writer.publish(np.array(["a", "b", "c"]))  # no cast of the same kind
    assert writer.publish(np.zeros(3, np.complex128)) == 4  # complex128 to complex64: same kind
    writer.close()
    assert reader.next(timeout=1.0)[1].serial == 4, "every frame published is read first"
    with pytest.raises(ipcmem.WriterGone):
        reader.next(timeout=1.0)
    reader.close()


def test_open_wait_gives_up(name):
    started = time.monotonic()
    with pytest.raises(ipcmem.NotFound):
        ipcmem.StreamReader.open_wait(name("stream"), timeout=0.2)
    assert time.monotonic() - started < 5


def test_next_releases_the_gil(name):
    path = name("stream")
    with ipcmem.StreamWriter.create(path, "u8", 16, 2):
        reader = ipcmem.StreamReader.open(path)
        ratio, _ = progress_while(lambda: pytest.raises(ipcmem.Timeout, reader.next, timeout=1.0))
        assert ratio > 0.1, f"the other thread ran at {ratio:.0%} of its speed alone"
        reader.close()
