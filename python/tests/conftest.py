"""Fixtures of the Python tests: unique object names, the `ipcmem` command, helpers that run
Python in a second process, and a check that the suite leaves /dev/shm and the System V
segments as it found them (only ours: other suites run at the same time on this machine)."""

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import ipcmem

REPO = Path(__file__).resolve().parents[2]
PREFIX = f"ipcmem-py-{os.getpid()}-"
_counter = itertools.count()
# Processes the tests start: the System V segments they create are ours to check and clean.
_children: set = set()


def cli_path() -> str:
    """The `ipcmem` command: $IPCMEM_BIN, else the newest of target/{release,debug}/ipcmem."""
    if os.environ.get("IPCMEM_BIN"):
        return os.environ["IPCMEM_BIN"]
    built = [REPO / "target" / profile / "ipcmem" for profile in ("release", "debug")]
    built = [path for path in built if path.is_file()]
    if not built:
        pytest.fail("no ipcmem command: run `cargo build -p ipcmem-cli` or set IPCMEM_BIN", pytrace=False)
    return str(max(built, key=lambda path: path.stat().st_mtime))


@pytest.fixture
def name():
    """A fresh POSIX name; whatever a test leaves under it is removed (and reported)."""
    made = []

    def fresh(label="obj"):
        made.append(f"/{PREFIX}{label}-{next(_counter)}")
        return made[-1]

    yield fresh


class Cli:
    """Runs the `ipcmem` command."""

    def __init__(self):
        self.path = cli_path()

    def __call__(self, *args, input=None, check=True):
        done = subprocess.run([self.path, *map(str, args)], input=input, capture_output=True, timeout=60)
        if check and done.returncode != 0:
            raise AssertionError(f"ipcmem {' '.join(map(str, args))}: exit {done.returncode}: {done.stderr.decode()}")
        return done

    def text(self, *args):
        return self(*args).stdout.decode().strip()

    def start(self, *args):
        """Starts a long-running command (hold, stream publish); stop it with `stop`."""
        process = subprocess.Popen([self.path, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _children.add(process.pid)
        return process


@pytest.fixture(scope="session")
def cli():
    return Cli()


def python(code, *args, **kwargs):
    """Starts `code` in a new Python process (the same interpreter, with ipcmem)."""
    process = subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )
    _children.add(process.pid)
    return process


def run_python(code, *args, timeout=60):
    """Runs `code` in a new Python process; its stdout, or an assertion error with its stderr."""
    process = python(code, *args)
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, f"python exited {process.returncode}: {err}"
    return out


def stop(process, sig=signal.SIGTERM, timeout=10):
    """Stops a process started by `Cli.start` or `python`, and waits for it."""
    if process.poll() is None:
        process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for pipe in (process.stdout, process.stderr):
        if pipe:
            pipe.close()


def wait_for(condition, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def exists(posix_name):
    return os.path.exists("/dev/shm" + posix_name)


def our_objects():
    return sorted(entry for entry in os.listdir("/dev/shm") if PREFIX in entry)


def our_segments():
    """System V segments created by this process or one it started: (id, cpid)."""
    ours = {os.getpid()} | _children
    found = []
    with open("/proc/sysvipc/shm") as table:
        next(table)
        for line in table:
            fields = line.split()
            if int(fields[4]) in ours:
                found.append((int(fields[1]), int(fields[4])))
    return found


@pytest.fixture(autouse=True)
def leaves_nothing():
    """Every test leaves no object of ours in /dev/shm and no segment of ours."""
    yield
    import gc

    gc.collect()  # handles in reference cycles (tracebacks of failed asserts) go now
    deadline = time.monotonic() + 5
    while (our_objects() or our_segments()) and time.monotonic() < deadline:
        time.sleep(0.01)
    objects, segments = our_objects(), our_segments()
    for entry in objects:
        os.unlink("/dev/shm/" + entry)
    for segment, _ in segments:
        ipcmem.shmrm(ipcmem.ShmId(segment))
    assert not objects and not segments, f"left behind: {objects} {segments}"
