#!/usr/bin/env python3
"""Opening cost: `dumpdiag DUMP -c "~; lm"` on a 100 MB+ full-memory fixture dump versus a
~1 MB minidump of the real corpus, in one run, side by side. Prints ratios (not absolute
times) and the peak RSS of each run relative to the dump's size.

    python3 benches/open.py [BIG.dmp] [SMALL.dmp]
"""
import os, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXE = os.path.join(ROOT, "target", "release", "dumpdiag")
RUNS = 30


def measure(dump):
    """Median wall time and the largest peak RSS over RUNS fresh processes (wait4 gives each
    child's own rusage, so the build before does not count)."""
    times = []
    peak = 0
    for _ in range(RUNS):
        t0 = time.perf_counter()
        p = subprocess.Popen([EXE, dump, "-q", "-c", "~; lm"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(p.pid, 0)
        times.append(time.perf_counter() - t0)
        assert status == 0, dump
        peak = max(peak, usage.ru_maxrss * 1024)
    times.sort()
    return times[len(times) // 2], peak


def main():
    big = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "fixtures", "current", "null_data_write.dmp")
    small = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "..", "shared", "corpus", "real", "breakpad", "stack_exhaustion.dmp")
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "dumpdiag"], cwd=ROOT, check=True)
    t_small, rss_small = measure(small)
    t_big, rss_big = measure(big)
    size_big, size_small = os.path.getsize(big), os.path.getsize(small)
    print(f"dumps: big {size_big >> 20} MB ({os.path.basename(big)}), small {size_small >> 10} KB ({os.path.basename(small)}); size ratio {size_big / size_small:.0f}x")
    print(f"open + '~; lm' median time ratio big/small: {t_big / t_small:.2f}x")
    print(f"peak RSS: big run {rss_big >> 20} MB = {100 * rss_big / size_big:.1f}% of its dump; small run {rss_small >> 20} MB")


if __name__ == "__main__":
    main()
