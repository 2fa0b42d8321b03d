#!/usr/bin/env python3
"""Reference stack walks of the corpus's x86 dumps by rust-minidump's minidump-stackwalk, kept as
expected data for crates/dumpdiag/tests/x86_walks.rs (so the test needs no tool CI lacks).

    cargo install minidump-stackwalk --version 0.27.0 --locked
    python3 tools/minidump-stackwalk-refs.py      # rewrites crates/dumpdiag/tests/minidump-stackwalk/

Each file records the command and the tool's version, and keeps of `--json` only what the test
compares: per thread, each frame's trust, offset (for a caller frame, its return address - 1),
module and function. The crashing thread is walked from the exception context, as the tool does.
"""
import json, os, subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("DUMPDIAG_SHARED", os.path.join(ROOT, "..", "shared"))
CORPUS = os.path.join(SHARED, "corpus", "real")
OUT = os.path.join(ROOT, "crates", "dumpdiag", "tests", "minidump-stackwalk")

# (reference name, dump, Breakpad symbol store or None): every x86 dump of the corpus.
DUMPS = [
    ("minidump2", "breakpad/minidump2.dmp", "breakpad/symbols"),
    ("ascii_read_av", "breakpad/ascii_read_av.dmp", "breakpad/symbols"),
    ("null_read_av", "breakpad/null_read_av.dmp", "breakpad/symbols"),
    ("null_write_av", "breakpad/null_write_av.dmp", "breakpad/symbols"),
    ("read_av_non_null", "breakpad/read_av_non_null.dmp", "breakpad/symbols"),
    ("write_av_non_null", "breakpad/write_av_non_null.dmp", "breakpad/symbols"),
    ("stack_exhaustion", "breakpad/stack_exhaustion.dmp", "breakpad/symbols"),
    ("thread_name_list", "breakpad/thread_name_list.dmp", "breakpad/symbols"),
    ("bugsplat", "bugsplat/minidump.dmp", None),
    ("bugsplat-js", "bugsplat-js/myConsoleCrasher.dmp", None),
    ("cv_allreg_i386", "kdlibcpp/targetapp_test_cv_allreg_i386/targetapp_test_cv_allreg_i386.dmp", None),
    ("fizzbuzz", "lldb/fizzbuzz/fizzbuzz_no_heap.dmp", None),
    ("mozilla-x86", "mozilla/windows-x86.dmp", "mozilla/symbols"),
    ("notepad-32bit", "syzygy/notepad-larger-32bit.dmp", None),
]


def main():
    version = subprocess.run(["minidump-stackwalk", "--version"], capture_output=True,
                             text=True, check=True).stdout.strip()
    os.makedirs(OUT, exist_ok=True)
    for name, dump, syms in DUMPS:
        args = ["minidump-stackwalk", "--json"]
        if syms:
            args += ["--symbols-path", f"<corpus>/{syms}"]
        args.append(f"<corpus>/{dump}")
        real = [a.replace("<corpus>", CORPUS) for a in args]
        j = json.loads(subprocess.run(real, capture_output=True, text=True, check=True).stdout)
        threads = [
            {
                "thread_id": t["thread_id"],
                "frames": [
                    {k: f.get(k) for k in ("trust", "offset", "module", "function")}
                    for f in t["frames"]
                ],
            }
            for t in j["threads"]
        ]
        doc = {
            "command": " ".join(args),
            "version": version,
            "kept": "threads[].frames[].{trust, offset, module, function} of --json",
            "dump": dump,
            "crashing_thread": j.get("crash_info", {}).get("crashing_thread"),
            "threads": threads,
        }
        # One frame per line: readable diffs.
        head = {k: v for k, v in doc.items() if k != "threads"}
        text = json.dumps(head, indent=1)[:-2] + ',\n "threads": [\n'
        text += ",\n".join(
            '  {"thread_id": %d, "frames": [\n%s\n  ]}'
            % (t["thread_id"], ",\n".join("   " + json.dumps(f) for f in t["frames"]))
            for t in threads
        )
        text += "\n ]\n}\n"
        assert json.loads(text) == doc
        with open(os.path.join(OUT, f"{name}.json"), "w") as f:
            f.write(text)
        print(name, sum(len(t["frames"]) for t in threads), "frames")


if __name__ == "__main__":
    main()
