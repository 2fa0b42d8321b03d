//! `.dump`: a dump written from a dump must read back as the same process. `/ma` keeps every
//! byte and every stream, so every command answers the same on the copy; `/m` keeps what the
//! stacks, the loader, the TEBs and PEB and the analysis read, so those answer the same.

mod common;

use std::path::{Path, PathBuf};

use dumpdiag_engine::Session;
use dumpdiag_target::MemoryExt;

/// Any format: the legacy USERDU64 dump of the corpus is copied to MDMP like the others.
fn open(p: &Path) -> Session {
    let t = dumpdiag_mdmp::open_dump(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    Session::new(t)
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("dumpdiag-{}-{name}.dmp", std::process::id()))
}

/// Write `dump` with `.dump <options>` and open the copy.
fn copy(dump: &Path, options: &str, name: &str) -> (Session, Session, PathBuf) {
    let mut original = open(dump);
    let out = temp(name);
    let _ = std::fs::remove_file(&out);
    let said = original
        .execute(&format!(".dump {options} {}", out.display()))
        .text;
    assert!(said.contains("Dump successfully written"), "{name}: {said}");
    let copied = open(&out);
    // A fresh session: writing walked the stacks and loaded symbols in the first one, and `lm`
    // says which modules' symbols are loaded.
    (open(dump), copied, out)
}

/// The commands whose answers depend only on the process, not on the file it came in.
const SAME_ANSWER: &[&str] = &[
    // First: `lm` also says which modules' symbols earlier commands loaded.
    "lm",
    "vertarget",
    "~",
    "~* r",
    ".exr -1",
    ".ecxr",
    "lmv",
    "!teb",
    "!peb",
    "~*k",
    "!handle 0 f",
    "!runaway 7",
    "!address -summary",
    "!gle",
    "u @$ip",
];

#[test]
fn full_copy_of_every_corpus_dump_answers_every_command_the_same() {
    for dump in common::all_dumps() {
        let name = dump.file_stem().unwrap().to_string_lossy().to_string();
        let (mut original, mut copied, out) = copy(&dump, "/ma", &name);
        for cmd in SAME_ANSWER {
            let want = original.execute(cmd).text;
            let got = copied.execute(cmd).text;
            assert_eq!(got, want, "{name}: `{cmd}` differs on the copy");
        }
        // Every byte the dump holds reads the same from the copy.
        let (o, c) = (original.target(), copied.target());
        for &(start, size) in o.captured_ranges() {
            let mut at = start;
            while at < start + size {
                let n = (start + size - at).min(1 << 20) as usize;
                assert!(
                    o.memory().read_bytes(at, n) == c.memory().read_bytes(at, n),
                    "{name}: memory at {at:#x} differs"
                );
                at += n as u64;
            }
        }
        // A copy claims full memory only when the original had it.
        assert_eq!(
            o.facts().flags & 2,
            c.facts().flags & 2,
            "{name}: MiniDumpWithFullMemory"
        );
        let _ = std::fs::remove_file(out);
    }
}

/// The corpus's full-memory dumps.
fn full_memory_dumps() -> Vec<PathBuf> {
    common::all_dumps()
        .into_iter()
        .filter(|p| dumpdiag_mdmp::open_dump(p).is_ok_and(|t| t.facts().flags & 2 != 0))
        .collect()
}

#[test]
fn minidump_copy_keeps_what_stacks_loader_and_analysis_read() {
    let dumps = full_memory_dumps();
    assert!(!dumps.is_empty(), "the corpus has full-memory dumps");
    for dump in dumps {
        let name = dump.file_stem().unwrap().to_string_lossy().to_string();
        let (mut original, mut copied, out) = copy(&dump, "/m", &format!("{name}-mini"));
        assert_eq!(
            copied.target().facts().flags & 2,
            0,
            "{name}: a /m copy is a minidump"
        );
        let views: &[&str] = if original.is_wow64() {
            &["", ".effmach x86; "]
        } else {
            &[""]
        };
        for view in views {
            for cmd in ["lm", "~", "~* r", ".exr -1", "!teb", "!peb", "~*kv"] {
                let cmd = format!("{view}{cmd}");
                let want = original.execute(&cmd).text;
                let got = copied.execute(&cmd).text;
                assert_eq!(got, want, "{name}: `{cmd}` differs on the /m copy");
            }
        }
        let bucket = |s: &mut Session| {
            s.execute("!analyze -v")
                .text
                .lines()
                .find(|l| l.starts_with("FAILURE_BUCKET_ID"))
                .map(str::to_string)
        };
        assert_eq!(
            bucket(&mut copied),
            bucket(&mut original),
            "{name}: analysis"
        );
        let (o_size, c_size) = (
            std::fs::metadata(&dump).unwrap().len(),
            std::fs::metadata(&out).unwrap().len(),
        );
        assert!(
            c_size < o_size,
            "{name}: /m copy {c_size} >= original {o_size}"
        );
        let _ = std::fs::remove_file(out);
    }
}

#[test]
fn full_copy_of_a_minidump_is_not_called_full_and_files_are_not_overwritten() {
    let dump = common::dump("breakpad/minidump2.dmp");
    let (mut original, mut copied, out) = copy(&dump, "/ma", "mini-as-full");
    assert_eq!(copied.target().facts().flags & 2, 0);
    assert!(!copied.execute("||").text.contains("Full Memory"));

    let again = original.execute(&format!(".dump {}", out.display())).text;
    assert!(again.contains("already exists"), "{again}");
    let over = original
        .execute(&format!(
            ".dump /o /c \"second, with a comment\" {}",
            out.display()
        ))
        .text;
    assert!(over.contains("Dump successfully written"), "{over}");
    let mut reopened = open(&out);
    assert!(reopened
        .execute(".dumpdebug")
        .text
        .contains("second, with a comment"));
    let bad = original.execute(".dump /zz x.dmp").text;
    assert!(bad.contains("Syntax error"), "{bad}");
    let _ = std::fs::remove_file(out);
}
