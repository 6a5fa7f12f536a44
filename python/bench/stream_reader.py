#!/usr/bin/env python3
"""A Python reader of a stream of 1 MiB frames, against the Rust reader of the same stream
and against the README's old recipe (multiprocessing.shared_memory, polled), side by side.

Each reader gets the same writer, one reader at a time (the machine has few cores):

- ipcmem, Rust reader: `ipcmem stream watch` (summary: frames, lost, rate, p50, p99).
- ipcmem, Python reader: `ipcmem.StreamReader.next()` in this process (a fresh copy per frame).
- multiprocessing.shared_memory, Python reader polling a sequence word written by a Python
  writer after each frame (no seqlock: torn frames are counted, by comparing the first and
  last byte, which a uniform frame has equal).

Writers: a Python process filling frame n with n (NumPy) and publishing it, at full speed and
at a fixed rate (1 kHz by default, an adaptive-optics camera): with ipcmem.StreamWriter for the
ipcmem readers, straight into the shared buffer for the polled one. Latency is receipt time minus publication time (CLOCK_REALTIME on both sides).

Run from the repository root, with the package installed in .venv (see .ci/run):
    .venv/bin/python python/bench/stream_reader.py --cli target/release/ipcmem
Prints a Markdown table: the median of --repeat runs of each case, and the range.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

import ipcmem

SIDE = 1024  # frames of SIDE x SIDE u8: 1 MiB
SLOTS = 8


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def summary(frames, lost, torn, elapsed, latencies):
    return {
        "frames": frames,
        "lost": lost,
        "torn": torn,
        "rate_hz": frames / elapsed,
        "p50_us": percentile(latencies, 0.5) / 1e3,
        "p99_us": percentile(latencies, 0.99) / 1e3,
    }


IPCMEM_WRITER = """
import sys, time
import numpy as np
import ipcmem
name, side, slots, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
writer = ipcmem.StreamWriter.create(name, np.uint8, (side, side), slots)
frame = np.empty((side, side), np.uint8, order="F")
period = 1 / rate if rate else 0
next_at = time.perf_counter()
serial = 0
while True:
    serial += 1
    frame.fill(serial % 256)  # the test pattern of `ipcmem stream publish`: frame n holds n
    writer.publish(frame)
    if period:
        next_at += period
        while time.perf_counter() < next_at:
            pass
"""


def start_publisher(name, rate):
    """A Python process publishing with ipcmem.StreamWriter, as the polled writer below does
    with multiprocessing.shared_memory (`ipcmem stream publish` makes its test pattern too
    slowly for 1 MiB frames: about 100 frames/s)."""
    writer = subprocess.Popen([sys.executable, "-c", IPCMEM_WRITER, name, str(SIDE), str(SLOTS), str(rate or 0)])
    ipcmem.StreamReader.open_wait(name, 10).close()  # it exists now
    return writer


def stop(process):
    process.terminate()
    process.wait(timeout=10)


def rust_reader(cli, name, count):
    done = subprocess.run(
        [cli, "stream", "watch", name, "--count", str(count), "--json", "--timeout", "10"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    last = json.loads(done.stdout.splitlines()[-1])
    return {
        "frames": last["frames"],
        "lost": last["lost"],
        "torn": 0,  # --check is off: the Rust reader returns no torn frame by construction
        "rate_hz": last["rate_hz"],
        "p50_us": last["p50_ns"] / 1e3,
        "p99_us": last["p99_ns"] / 1e3,
    }


def python_reader(name, count):
    reader = ipcmem.StreamReader.open(name)
    reader.next(timeout=10)  # the newest frame at open: not timed
    latencies, lost, torn = [], 0, 0
    start = time.perf_counter()
    for _ in range(count):
        frame, info = reader.next(timeout=10)
        latencies.append(time.time_ns() - info.published_ns)
        lost += info.lost
        torn += frame[0, 0] != frame[-1, -1]
    elapsed = time.perf_counter() - start
    reader.close()
    return summary(count, lost, int(torn), elapsed, latencies)


POLL_WRITER = """
import sys, time
import numpy as np
from multiprocessing import shared_memory, resource_tracker
name, side, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
shm = shared_memory.SharedMemory(name=name)
resource_tracker.unregister(shm._name, "shared_memory")  # the reader owns it
header = np.ndarray(2, np.uint64, shm.buf, 0)  # sequence, publication time (ns)
frame = np.ndarray((side, side), np.uint8, shm.buf, 64, order="F")
period = 1 / rate if rate else 0
next_at = time.perf_counter()
serial = 0
while True:
    serial += 1
    frame.fill(serial % 256)
    header[1] = time.time_ns()
    header[0] = serial
    if period:
        next_at += period
        while time.perf_counter() < next_at:
            pass
"""


def polling_reader(count, rate):
    """multiprocessing.shared_memory written by a Python process, polled by this one."""
    from multiprocessing import shared_memory

    shm = shared_memory.SharedMemory(create=True, size=64 + SIDE * SIDE)
    writer = subprocess.Popen([sys.executable, "-c", POLL_WRITER, shm.name, str(SIDE), str(rate or 0)])
    try:
        header = np.ndarray(2, np.uint64, shm.buf, 0)
        frame = np.ndarray((SIDE, SIDE), np.uint8, shm.buf, 64, order="F")
        while header[0] == 0:
            pass
        seen = int(header[0])
        latencies, lost, torn = [], 0, 0
        start = time.perf_counter()
        for _ in range(count):
            while int(header[0]) == seen:  # polling: the only wait this recipe has
                pass
            serial, published = int(header[0]), int(header[1])
            copy = frame.copy(order="K")  # Fortran order kept: one memcpy
            latencies.append(time.time_ns() - published)
            lost += serial - seen - 1
            seen = serial
            torn += copy[0, 0] != copy[-1, -1] or int(header[0]) != serial
        elapsed = time.perf_counter() - start
        return summary(count, lost, int(torn), elapsed, latencies)
    finally:
        stop(writer)
        del header, frame
        shm.close()
        shm.unlink()


def run(args, case, rate, count):
    name = f"/ipcmem-bench-py-{os.getpid()}-{case}"
    if case == "poll":
        return polling_reader(count, rate)
    writer = start_publisher(name, rate)
    try:
        return rust_reader(args.cli, name, count) if case == "rust" else python_reader(name, count)
    finally:
        stop(writer)
        ipcmem.shmrm(name)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cli", default="target/release/ipcmem", help="the ipcmem command (a release build)")
    parser.add_argument("--count", type=int, default=3000, help="frames per run")
    parser.add_argument("--rate", type=float, default=1000.0, help="the fixed rate, Hz")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each case")
    args = parser.parse_args()
    rows = []
    for rate_label, rate in (("full speed", None), (f"{args.rate:g} Hz", args.rate)):
        count = args.count if rate is None else min(args.count, int(2 * args.rate))
        results = {}
        for case in ("rust", "python", "poll"):
            results[case] = [run(args, case, rate, count) for _ in range(args.repeat)]
        rust_rate = statistics.median(r["rate_hz"] for r in results["rust"])
        for case, label in (
            ("rust", "ipcmem, Rust reader (`stream watch`)"),
            ("python", "ipcmem, Python `StreamReader.next`"),
            ("poll", "`multiprocessing.shared_memory`, polled"),
        ):
            runs = results[case]
            median = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
            spread = lambda key: f"{min(r[key] for r in runs):.0f}–{max(r[key] for r in runs):.0f}"
            rows.append(
                f"| {rate_label} | {label} | {median['rate_hz']:.0f} ({spread('rate_hz')}) | "
                f"{median['rate_hz'] / rust_rate:.2f} | {median['p50_us']:.0f} ({spread('p50_us')}) | "
                f"{median['p99_us']:.0f} ({spread('p99_us')}) | {median['lost']:.0f} | {median['torn']:.0f} |"
            )
    print(f"Frames of {SIDE}x{SIDE} u8 (1 MiB), {SLOTS} slots; median of {args.repeat} runs (range).\n")
    print("| writer | reader | frames/s | × Rust | latency p50 µs | p99 µs | lost | torn |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
