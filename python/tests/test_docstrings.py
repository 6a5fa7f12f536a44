"""The examples of the docstrings run as written (doctest), each object's in a new process so
that what an example makes goes with it."""

import pytest

import ipcmem
from conftest import exists, run_python

DOCUMENTED = [
    "ipcmem",
    "ipcmem.Key",
    "ipcmem.ShmId",
    "ipcmem.SharedMemory",
    "ipcmem.SharedArray",
    "ipcmem.Event",
    "ipcmem.Semaphore",
    "ipcmem.StreamWriter",
    "ipcmem.StreamReader",
    "ipcmem.isio",
    "ipcmem.isio.Stream",
]

RUN = """
import doctest, sys, ipcmem, ipcmem.isio
obj = eval(sys.argv[1], {"ipcmem": ipcmem})
tests = doctest.DocTestFinder(recurse=False).find(obj, sys.argv[1], globs={})
assert tests and tests[0].examples, "no example"
runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
for test in tests:
    runner.run(test)
sys.exit(1 if runner.failures else 0)
"""


@pytest.mark.parametrize("name", DOCUMENTED)
def test_docstring_examples(name):
    run_python(RUN, name)
    for made in ("/example", "/example-image", "/example-event", "/example-camera", "/example-frames", "/camera-frame"):
        assert not exists(made), f"{name}'s example left {made}"
    assert not exists("/sem.example-sem")
