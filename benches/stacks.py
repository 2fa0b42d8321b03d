#!/usr/bin/env python3
"""All-thread stacks with symbols, dumpdiag beside minidump-stackwalk (rust-minidump) in one
run on the same inputs: median wall time and peak RSS ratios, and how many frames each had
to find by scanning (the crashed thread walked from the exception context, as
minidump-stackwalk does).

    cargo install minidump-stackwalk    # once
    python3 benches/stacks.py
"""
import json, os, re, shutil, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXE = os.path.join(ROOT, "target", "release", "dumpdiag")
CORPUS = os.path.join(ROOT, "..", "shared", "corpus", "real")
RUNS = 15


def run(cmd):
    """Median time and max RSS (bytes) over RUNS fresh processes; last stdout."""
    times, peak, out = [], 0, b""
    for _ in range(RUNS):
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        out = p.stdout.read()
        _, status, usage = os.wait4(p.pid, 0)
        times.append(time.perf_counter() - t0)
        assert status == 0, cmd
        peak = max(peak, usage.ru_maxrss * 1024)
    times.sort()
    return times[len(times) // 2], peak, out.decode("utf-8", "replace")


def dumpdiag_scans(text):
    """Scanned frames per thread block of `~*kv` output, with the exception thread's block
    replaced by the `.ecxr; kv` block that follows it."""
    blocks = re.split(r"\n(?=[ .#]\s*\d+\s+Id: )", text)
    ecxr = text.split("@@ECXR@@")[-1] if "@@ECXR@@" in text else ""
    per_thread = {}
    for b in blocks:
        m = re.match(r"[ .#]\s*(\d+)\s+Id:", b.strip("\n"))
        if m:
            per_thread[int(m.group(1))] = b.split("@@ECXR@@")[0].count("(found by scan)")
    return per_thread, ecxr.count("(found by scan)")


def main():
    if not shutil.which("minidump-stackwalk"):
        sys.exit("minidump-stackwalk not installed: cargo install minidump-stackwalk")
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "dumpdiag"], cwd=ROOT, check=True)
    dump = os.path.join(CORPUS, "mozilla", "windows-x86_64.dmp")
    syms = os.path.join(CORPUS, "mozilla", "symbols")
    t_ms, rss_ms, out_ms = run(["minidump-stackwalk", "--json", "--symbols-path", syms, dump])
    t_dd, rss_dd, out_dd = run([EXE, dump, "-q", "-y", syms, "-c", "~*kv; .echo @@ECXR@@; .ecxr; kv"])
    ms = json.loads(out_ms)
    ms_scans = sum(1 for t in ms["threads"] for f in t["frames"] if f["trust"] == "scan")
    crashed = ms.get("crashing_thread", {}).get("threads_index", 0) if isinstance(ms.get("crashing_thread"), dict) else 0
    per_thread, ecxr_scans = dumpdiag_scans(out_dd)
    dd_scans = sum(v for k, v in per_thread.items() if k != crashed) + ecxr_scans
    print(f"input: {os.path.basename(dump)} ({len(ms['threads'])} threads) with its Breakpad symbol store")
    print(f"time   minidump-stackwalk / dumpdiag: {t_ms / t_dd:.2f}x  (dumpdiag {'faster' if t_dd < t_ms else 'slower'})")
    print(f"peak RSS dumpdiag / minidump-stackwalk: {rss_dd / rss_ms:.3f} ({rss_dd >> 20} MB / {rss_ms >> 20} MB)")
    print(f"scanned frames: dumpdiag {dd_scans}, minidump-stackwalk {ms_scans}")


if __name__ == "__main__":
    main()
