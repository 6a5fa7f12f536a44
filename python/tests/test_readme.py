"""The Python examples of README.md run as written (with names of this test run): the first
block in this process's child, camera.py and viewer.py as two processes."""

import re

from conftest import PREFIX, REPO, python, run_python, stop


def python_blocks():
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("\n## Python\n") :]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def renamed(code):
    for name in ("/scratch", "/image", "/camera"):
        code = code.replace(f'"{name}"', f'"/{PREFIX}readme-{name[1:]}"')
    return code


def test_objects_and_arrays_example():
    run_python(renamed(python_blocks()[0]))


def test_milk_example(tmp_path, monkeypatch):
    block = next(block for block in python_blocks() if block.startswith("# milk.py"))
    monkeypatch.setenv("MILK_SHM_DIR", str(tmp_path))
    run_python(block)
    assert list(tmp_path.iterdir()) == []


def test_camera_and_viewer_examples():
    blocks = {block.splitlines()[0].split(":")[0]: block for block in python_blocks()[1:]}
    assert {"# camera.py", "# viewer.py", "# milk.py"} <= set(blocks)
    viewer = python(renamed(blocks["# viewer.py"]))
    try:
        camera = run_python(renamed(blocks["# camera.py"]))
        out, err = viewer.communicate(timeout=60)
        assert viewer.returncode == 0, err
        received, lost, serial = re.match(r"(\d+) frames, (\d+) lost, last serial (\d+)", out).groups()
        assert int(serial) == 200 and int(received) + int(lost) <= 200 and int(received) > 100, out
        assert camera == ""
    finally:
        stop(viewer)
