#!/usr/bin/env python3
"""`dumpdiag analyze` (all detectors, symbols from the fixture PDBs) on the 101 MB and 348 MB
fixture dumps: median wall time, and the ratio between them.

    python3 fixtures/build.py && python3 benches/analyze.py
"""
import os, subprocess, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXE = os.path.join(ROOT, "target", "release", "dumpdiag")
FIX = os.path.join(ROOT, "target", "fixtures", "current")


def median(dump, runs=15):
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([EXE, "analyze", dump, "-y", FIX, "--format", "json"], check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def main():
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "dumpdiag"], cwd=ROOT, check=True)
    small = median(os.path.join(FIX, "cs_deadlock.dmp"))
    mid = median(os.path.join(FIX, "null_data_write.dmp"))
    big = median(os.path.join(FIX, "large_memory.dmp"))
    print(f"analyze: cs_deadlock (32 MB) {small * 1000:.0f} ms, null_data_write (101 MB) {mid * 1000:.0f} ms, large_memory (348 MB) {big * 1000:.0f} ms")
    print(f"ratio 348 MB / 101 MB: {big / mid:.2f}x")


if __name__ == "__main__":
    main()
