"""ImageStreamIO streams from Python, shared with the `ipcmem stream` command (which reads and
writes them as milk's programs do), in a private $MILK_SHM_DIR."""

import json
import os
import shutil
import subprocess
import tempfile

import numpy as np
import pytest

import ipcmem
from conftest import PREFIX, cli_path, stop
from ipcmem import isio


@pytest.fixture
def milk_dir():
    path = tempfile.mkdtemp(prefix=PREFIX + "milk-", dir="/dev/shm")
    yield path
    shutil.rmtree(path)


def command(milk_dir, *args, **kwargs):
    env = dict(os.environ, MILK_SHM_DIR=milk_dir)
    return subprocess.Popen([cli_path(), *map(str, args)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def test_python_reads_the_command_writer(milk_dir):
    writer = command(milk_dir, "stream", "publish", "isio:cam", "--create", "u16", "32x16", "--slots", 1, "--count", 300, "--rate", 300)
    try:
        stream = None
        for _ in range(500):
            try:
                stream = isio.open("cam", dir=milk_dir)
                break
            except FileNotFoundError:
                __import__("time").sleep(0.01)
        assert stream is not None and stream.shape == (32, 16) and stream.dtype == np.uint16
        reader = stream.reader()
        returned = lost = last = 0
        while last < 300:
            frame, info = reader.next(timeout=10)
            assert frame.min() == frame.max() == info.serial % 65536, "a uniform frame: the test pattern"
            assert last == 0 or info.serial == last + info.lost + 1
            returned, lost, last = returned + 1, lost + info.lost, info.serial
        assert returned > 100
        reader.close()
        assert writer.wait(timeout=30) == 0
    finally:
        stop(writer)


def test_command_reads_a_python_writer(milk_dir):
    stream = isio.create("wfs", np.float32, (16, 8), dir=milk_dir)
    assert isio.list(milk_dir) == ["wfs"]
    watcher = command(milk_dir, "stream", "watch", "isio:wfs", "--count", 20, "--check", "--json", "--timeout", 10, text=True)
    try:
        frame = np.empty((16, 8), np.float32, order="F")
        import time

        time.sleep(0.3)  # the watcher claims a semaphore
        for serial in range(1, 101):
            frame.fill(serial)
            assert stream.write(frame) == serial
            time.sleep(0.005)
        out, err = watcher.communicate(timeout=30)
        assert watcher.returncode == 0, err
        assert json.loads(out.splitlines()[-1])["frames"] == 20
    finally:
        stop(watcher)
    latest, info = stream.read()
    assert (latest[0, 0], info.serial, stream.cnt0) == (100, 100, 100)
    isio.remove("wfs", dir=milk_dir)


def test_circular_buffer_and_bad_input(milk_dir):
    ring = isio.create("ring", "c32", (4, 4, 3), dir=milk_dir, circular=True)
    assert ring.circular and ring.shape == (4, 4, 3)
    for value in (1, 2, 3, 4):
        ring.write(np.full((4, 4), value + 1j, np.complex64))
    frame, info = ring.read()
    assert frame.shape == (4, 4) and frame[0, 0] == 4 + 1j and info.serial == 4
    with pytest.raises(ValueError):
        ring.write(np.zeros((4, 4, 3)))
    with pytest.raises(ValueError):
        ring.write(np.array([["a"] * 4] * 4))
    with pytest.raises(FileExistsError):
        isio.create("ring", "u8", 4, dir=milk_dir)
    with pytest.raises(FileNotFoundError):
        isio.open("nothing", dir=milk_dir)
    with pytest.raises(ipcmem.InvalidArgument):
        isio.create("bad/name", "u8", 4, dir=milk_dir)
    with pytest.raises(ValueError):
        isio.create("flat", "u8", (1, 2, 3, 4), dir=milk_dir)
    readonly = isio.open("ring", dir=milk_dir, readonly=True)
    with pytest.raises(PermissionError):
        readonly.write(np.zeros((4, 4), np.complex64))
    reader = ring.reader()
    assert reader.next(timeout=1)[1].serial == 4, "the first next() returns the latest frame"
    with pytest.raises(ipcmem.Timeout):
        reader.next(timeout=0.05)
    reader.close()


def test_keywords_from_python_are_what_the_command_shows(milk_dir):
    stream = isio.create("kw", np.int16, (4, 4), dir=milk_dir, keywords=4)
    assert stream.keywords() == {}
    assert stream.set_keyword("EXPTIME", 0.25, "seconds") == 0
    assert stream.set_keyword("GAIN", 12) == 1
    assert stream.set_keyword("FILTER", "H") == 2
    assert stream.set_keyword("GAIN", 13, "e-/ADU") == 1
    assert stream.keywords() == {"EXPTIME": (0.25, "seconds"), "GAIN": (13, "e-/ADU"), "FILTER": ("H", "")}
    shown = subprocess.run([cli_path(), "info", "isio:kw", "--json"], env=dict(os.environ, MILK_SHM_DIR=milk_dir), capture_output=True, text=True, check=True)
    keywords = {k["name"]: (k["type"], k["value"], k["comment"]) for k in json.loads(shown.stdout)["keywords"]}
    assert keywords == {"EXPTIME": ("D", 0.25, "seconds"), "GAIN": ("L", 13, "e-/ADU"), "FILTER": ("S", "H", "")}
    for bad in (True, None, [1]):
        with pytest.raises(ValueError):
            stream.set_keyword("BAD", bad)
    isio.remove("kw", dir=milk_dir)
