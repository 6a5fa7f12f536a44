"""The type stubs (ipcmem/__init__.pyi, with py.typed) match the module as built: mypy's
stubtest compares every name, signature and default with the runtime objects."""

import subprocess
import sys
import tempfile


def test_stubs_match_the_module():
    with tempfile.TemporaryDirectory() as elsewhere:  # the installed package, not python/ipcmem
        done = subprocess.run(
            [sys.executable, "-m", "mypy.stubtest", "ipcmem"], cwd=elsewhere, capture_output=True, text=True
        )
    assert done.returncode == 0, done.stdout + done.stderr


def test_docstrings_and_signatures():
    import inspect

    import ipcmem

    for name in ipcmem.__all__:
        item = getattr(ipcmem, name)
        if callable(item):
            assert item.__doc__, f"{name} has no docstring"
    assert str(inspect.signature(ipcmem.SharedMemory)).startswith("(obj, size=None, *, perms=384, volatile=True")
    assert "Fortran" in ipcmem.SharedArray.__doc__ and ">>>" in ipcmem.StreamReader.__doc__
