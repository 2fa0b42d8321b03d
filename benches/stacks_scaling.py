#!/usr/bin/env python3
"""All-thread stacks (`~*k`, symbols from the fixture PDBs) on the ~350 MB large_memory fixture
dump versus a ~100 MB one, in one run: the ratio shows cost follows threads and frames, not
dump size.

    python3 fixtures/build.py && python3 benches/stacks_scaling.py
"""
import os, subprocess, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXE = os.path.join(ROOT, "target", "release", "dumpdiag")
FIX = os.path.join(ROOT, "target", "fixtures", "current")
RUNS = 20


def median(dump):
    times = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        subprocess.run([EXE, dump, "-q", "-y", FIX, "-c", "~*k"], check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def main():
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "dumpdiag"], cwd=ROOT, check=True)
    big, small = os.path.join(FIX, "large_memory.dmp"), os.path.join(FIX, "null_data_write.dmp")
    tb, ts = median(big), median(small)
    print(f"dumps: {os.path.getsize(big) >> 20} MB vs {os.path.getsize(small) >> 20} MB")
    print(f"all-thread stacks, time ratio big/small: {tb / ts:.2f}x")


if __name__ == "__main__":
    main()
