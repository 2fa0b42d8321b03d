//! The command set of `docs/commands.md` (in the shared folder) on real dumps: every command it
//! documents, typed as it documents it, reaches a handler that understands it (no "Syntax
//! error", no "No export", no usage complaint) — the heap and .NET commands excepted — and the
//! commands added last answer with what Windows and WinDbg say they mean: `.writemem` writes
//! exactly the range's bytes, `rM` shows the register groups its mask names, `.frame /r` the
//! non-volatile registers the x64 unwind recovered, `!dlls` the loader's own lists, `version`
//! the dump's and the OS's versions, `.thread` an implicit thread beside the current one.

mod common;
use common::*;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use dumpdiag_engine::{CommandError, Session};
use dumpdiag_target::MemoryExt;

/// A full-memory x64 dump (legacy USERDU64) of kdlib's release targetapp, with its PDB: three
/// threads, unwind data in memory, a loader list.
const X64: &str = "kdlibcpp/targetapp_stacktest_x64_release_userdu64";
const X64_DUMP: &str =
    "kdlibcpp/targetapp_stacktest_x64_release_userdu64/targetapp_stacktest_x64_release.dmp";
/// A full-memory MDMP of a 32-bit process written by 64-bit Windows 10 1803 (WOW64), with its
/// PDB and MemoryInfoList; four threads.
const WOW64: &str = "kdlibcpp/targetapp_stacktest_wow64";
const WOW64_DUMP: &str = "kdlibcpp/targetapp_stacktest_wow64/targetapp_stacktest_wow64.dmp";
/// An x64 minidump with its PDB (null write AV in sigsegv.exe).
const SIGSEGV: &str = "lldb/Sigsegv";
const SIGSEGV_DUMP: &str = "lldb/Sigsegv/sigsegv.dmp";

/// A fresh session on a corpus dump, with the folder beside it as the symbol path.
fn session_with_symbols(dump_rel: &str, symbols_rel: &str) -> Session {
    let mut s = session(dump_rel);
    s.set_symbol_path(dump(symbols_rel).to_str().unwrap());
    s
}

/// A fresh directory for files a test writes.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dumpdiag-cmdset-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---------------------------------------------------------------------------------------------
// commands.md: every documented form runs
// ---------------------------------------------------------------------------------------------

/// The backticked spans of commands.md, section by section (`## title`); the introduction
/// before the first section shows formats, not commands.
fn documented_spans() -> Vec<(String, String)> {
    let path = shared().join("docs/commands.md");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (the command set this test checks)", path.display()));
    let mut out = Vec::new();
    let mut section = String::new();
    let mut rest = String::new();
    let mut flush = |section: &str, rest: &mut String| {
        let mut parts = rest.split('`');
        parts.next();
        while let (false, Some(span), Some(_)) = (section.is_empty(), parts.next(), parts.next()) {
            // A span wrapped over two lines is one span.
            let span = span.split_whitespace().collect::<Vec<_>>().join(" ");
            out.push((section.to_string(), span));
        }
        rest.clear();
    };
    for line in text.lines() {
        if let Some(title) = line.strip_prefix("## ") {
            flush(&section, &mut rest);
            section = title.trim().to_string();
        } else {
            rest.push_str(line);
            rest.push('\n');
        }
    }
    flush(&section, &mut rest);
    out
}

/// Sections whose commands are out of scope here.
fn excluded_section(section: &str) -> bool {
    section.starts_with(".NET")
}

/// Spans of in-scope sections that are no command of their own: the argument list of a command
/// listed beside it, an environment variable,
/// the heap commands (out of scope here), and a description of output.
const NOT_COMMANDS: &[&str] = &[
    "x86|amd64|.",
    "_NT_SYMBOL_PATH",
    "-summary",
    "!heap -s",
    "!heap -a addr",
    "!heap -p -a addr",
];

/// The concrete commands each documented form stands for. `{ip}`, `{sp}`, `{bp}` and `{reg}`
/// become the view's register names, `{dir}` a scratch directory.
fn concrete_forms() -> BTreeMap<(&'static str, &'static str), Vec<&'static str>> {
    let target = "Target and session";
    let threads = "Threads and context";
    let stacks = "Stacks";
    let modules = "Modules and symbols";
    let memory = "Memory";
    let code = "Code";
    let process = "Process-wide analysis";
    let table: Vec<((&str, &str), Vec<&str>)> = vec![
        ((target, "||"), vec!["||"]),
        ((target, "|"), vec!["|"]),
        ((target, "vertarget"), vec!["vertarget"]),
        ((target, ".time"), vec![".time"]),
        ((target, ".lastevent"), vec![".lastevent"]),
        ((target, ".dumpdebug"), vec![".dumpdebug"]),
        (
            (target, ".effmach"),
            vec![".effmach", ".effmach .", ".effmach x86", ".effmach amd64"],
        ),
        ((target, "version"), vec!["version"]),
        ((target, "q"), vec!["q"]),
        ((threads, "~"), vec!["~"]),
        ((threads, "~Ns"), vec!["~1s", "~0s"]),
        ((threads, "~N cmd"), vec!["~1 k", "~0 r"]),
        ((threads, "~* cmd"), vec!["~* k", "~*e r; k"]),
        (
            (threads, "!runaway [1|2|4|7]"),
            vec![
                "!runaway",
                "!runaway 1",
                "!runaway 2",
                "!runaway 4",
                "!runaway 7",
            ],
        ),
        ((threads, "!teb [addr]"), vec!["!teb", "!teb @$teb"]),
        ((threads, "!gle"), vec!["!gle"]),
        (
            (threads, "r [reg…]"),
            vec!["r", "r {ip}", "r {ip} {sp} {reg}"],
        ),
        (
            (threads, "rM"),
            vec![
                "rM 0x40", "rM 0x1f", "rM 0x8", "rF", "rX", "rm", "rm ?", "rm 0x44",
            ],
        ),
        ((threads, ".cxr addr"), vec![".cxr @$csp", ".cxr"]),
        ((threads, ".exr addr|-1"), vec![".exr -1", ".exr @$csp"]),
        ((threads, ".ecxr"), vec![".ecxr"]),
        (
            (threads, ".frame N"),
            vec![".frame", ".frame 1", ".frame /r 1", ".frame /r 0"],
        ),
        ((threads, ".thread"), vec![".thread", ".thread @$teb"]),
        ((stacks, "k"), vec!["k", "k 3"]),
        ((stacks, "kb"), vec!["kb"]),
        ((stacks, "kv"), vec!["kv"]),
        ((stacks, "kp"), vec!["kp"]),
        ((stacks, "kP"), vec!["kP"]),
        ((stacks, "kn"), vec!["kn"]),
        ((stacks, "kc"), vec!["kc"]),
        ((stacks, "kf"), vec!["kf"]),
        ((stacks, "kL"), vec!["kL"]),
        ((stacks, "knf"), vec!["knf", "kbn", "kvn 4"]),
        (
            (stacks, "k = <bp> <sp> <ip>"),
            vec!["k = @{bp} @{sp} @{ip}"],
        ),
        ((stacks, "!uniqstack"), vec!["!uniqstack"]),
        (
            (stacks, "!findstack sym"),
            vec!["!findstack BaseThreadInitThunk"],
        ),
        ((stacks, "dv"), vec!["dv", "dv /t", "dv /V"]),
        ((modules, "lm"), vec!["lm"]),
        ((modules, "v"), vec!["lmv", "lm v"]),
        ((modules, "m pattern"), vec!["lm m target*", "lmm ntdll"]),
        ((modules, "o"), vec!["lmo"]),
        ((modules, "f"), vec!["lmf"]),
        ((modules, "k"), vec!["lmk"]),
        ((modules, "u"), vec!["lmu"]),
        ((modules, "n"), vec!["lmn"]),
        (
            (modules, "lmv m name"),
            vec!["lmv m targetapp", "lmvm ntdll"],
        ),
        ((modules, "!lmi module"), vec!["!lmi targetapp"]),
        ((modules, "!dh module"), vec!["!dh targetapp", "!dh ntdll"]),
        ((modules, "lmu"), vec!["lmu"]),
        (
            (modules, ".sympath[+]"),
            vec![".sympath", ".sympath+ {dir}", ".sympath {dir}"],
        ),
        (
            (modules, ".symfix [cache]"),
            vec![".symfix", ".symfix {dir}"],
        ),
        (
            (modules, ".reload [/f]"),
            vec![
                ".reload",
                ".reload /f",
                ".reload /i",
                ".reload /f targetapp",
            ],
        ),
        ((modules, "x module!pattern*"), vec!["x targetapp!*main*"]),
        ((modules, "ln addr"), vec!["ln @{ip}", "ln targetapp"]),
        ((modules, ".kframes"), vec![".kframes", ".kframes 0x20"]),
        (
            (memory, "db dw dd dq dc da du dp"),
            vec![
                "db @{sp}",
                "dw @{sp}",
                "dd @{sp}",
                "dq @{sp}",
                "dc @{sp}",
                "da @{sp}",
                "du @{sp}",
                "dp @{sp}",
                "db @{sp} L20",
                "dd @{sp} @{sp}+0x1f",
            ],
        ),
        (
            (memory, "dps dpp dpa dpu dds dqs"),
            vec![
                "dps @{sp}",
                "dpp @{sp}",
                "dpa @{sp}",
                "dpu @{sp}",
                "dds @{sp}",
                "dqs @{sp}",
            ],
        ),
        (
            (memory, "s -a|-u|-b|-d|-q range pattern"),
            vec![
                "s -a @{sp} L1000 \"a\"",
                "s -u @{sp} L1000 \"a\"",
                "s -b @{sp} L1000 00",
                "s -d @{sp} L1000 0",
                "s -q @{sp} L1000 0",
            ],
        ),
        (
            (memory, "dt [module!]type [addr] [-r]"),
            vec![
                "dt _PEB",
                "dt ntdll!_PEB",
                "dt _PEB @$peb",
                "dt _TEB @$teb -r",
                "dt -r _TEB @$teb",
            ],
        ),
        ((memory, "?"), vec!["? 1+2", "? @{sp}"]),
        ((memory, "??"), vec!["?? 1+2"]),
        ((memory, "poi()"), vec!["? poi(@{sp})"]),
        (
            (memory, "!address [addr]"),
            vec![
                "!address",
                "!address @{sp}",
                "!address @{ip}",
                "!address @$teb",
            ],
        ),
        ((memory, "!address -summary"), vec!["!address -summary"]),
        (
            (memory, ".writemem"),
            vec![
                ".writemem {dir}/a.bin @{sp} L10",
                ".writemem {dir}/b.bin @{sp} @{sp}+0xf",
            ],
        ),
        ((code, "u [addr] [L n]"), vec!["u", "u @{ip}", "u @{ip} L4"]),
        ((code, "ub"), vec!["ub", "ub @{ip}"]),
        ((code, "uf func"), vec!["uf @{ip}", "uf targetapp!wmain"]),
        ((process, "!analyze -v"), vec!["!analyze -v", "!analyze"]),
        ((process, "!peb"), vec!["!peb"]),
        (
            (process, "!handle [h] [mask]"),
            vec!["!handle", "!handle 4", "!handle 4 f", "!handle 0 0"],
        ),
        ((process, "!cs -l"), vec!["!cs -l", "!cs"]),
        ((process, "!locks"), vec!["!locks"]),
        (
            (process, "!error code"),
            vec!["!error 5", "!error c0000005", "!error 0x80070005"],
        ),
        (
            (process, "!dlls"),
            vec!["!dlls", "!dlls -m", "!dlls -i", "!dlls -c @{ip}"],
        ),
    ];
    let mut map = BTreeMap::new();
    for (key, forms) in table {
        assert!(map.insert(key, forms).is_none(), "{key:?} twice");
    }
    map
}

/// Why a command's answer shows it did not understand the command as typed, if it did not.
fn not_understood(result: &Result<String, CommandError>) -> Option<String> {
    match result {
        Err(
            e @ (CommandError::UnknownCommand(_)
            | CommandError::UnknownExtension(_)
            | CommandError::Syntax { .. }
            | CommandError::Usage(_)
            | CommandError::Expression(_)),
        ) => Some(format!("{e:?}")),
        Ok(text) if text.contains("Syntax error in") || text.starts_with("No export") => {
            Some(text.clone())
        }
        _ => None,
    }
}

/// One dump the command set runs on: its file, symbols, the commands that set its view first,
/// and its register names.
struct Setup {
    dump: &'static str,
    symbols: &'static str,
    prefix: &'static str,
    regs: [(&'static str, &'static str); 4],
}

const X64_REGS: [(&str, &str); 4] = [
    ("{ip}", "rip"),
    ("{sp}", "rsp"),
    ("{bp}", "rbp"),
    ("{reg}", "rax"),
];
const X86_REGS: [(&str, &str); 4] = [
    ("{ip}", "eip"),
    ("{sp}", "esp"),
    ("{bp}", "ebp"),
    ("{reg}", "eax"),
];

#[test]
fn the_checker_catches_what_a_shell_would_print_as_not_understood() {
    // The check below must be able to fail: these are what an unknown or misspelled command
    // answers.
    let mut s = session(SIGSEGV_DUMP);
    for bad in [
        "zz",
        "!nosuch",
        ".frame /x 1",
        "rM",
        ".writemem",
        "!dlls -z",
    ] {
        assert!(
            not_understood(&s.run_command(bad)).is_some(),
            "{bad} was taken as understood"
        );
    }
    assert!(not_understood(&s.run_command("version")).is_none());
}

#[test]
fn every_command_of_commands_md_runs_in_its_documented_form() {
    let forms = concrete_forms();
    let spans = documented_spans();
    assert!(spans.len() > 60, "commands.md lists {} spans", spans.len());
    // Every documented span has its concrete forms here (a new command in the document fails
    // this test until it is added), and every entry here is still documented.
    let mut missing = Vec::new();
    let mut documented = BTreeSet::new();
    for (section, span) in &spans {
        if excluded_section(section) || NOT_COMMANDS.contains(&span.as_str()) {
            continue;
        }
        let key = forms.keys().find(|(sec, sp)| sec == section && sp == span);
        match key {
            Some(key) => {
                documented.insert(*key);
            }
            None => missing.push(format!("{section}: `{span}`")),
        }
    }
    assert!(
        missing.is_empty(),
        "commands.md forms with no concrete command here: {missing:#?}"
    );
    let stale: Vec<_> = forms.keys().filter(|k| !documented.contains(*k)).collect();
    assert!(stale.is_empty(), "no longer in commands.md: {stale:?}");

    let dir = scratch("every-command");
    let setups = [
        Setup {
            dump: X64_DUMP,
            symbols: X64,
            prefix: "",
            regs: X64_REGS,
        },
        Setup {
            dump: WOW64_DUMP,
            symbols: WOW64,
            prefix: ".effmach x86",
            regs: X86_REGS,
        },
        Setup {
            dump: SIGSEGV_DUMP,
            symbols: SIGSEGV,
            prefix: "",
            regs: X64_REGS,
        },
    ];
    let mut failures = Vec::new();
    let mut ran = 0;
    for setup in &setups {
        for ((section, span), commands) in &forms {
            for command in commands {
                let mut command = command.replace("{dir}", dir.to_str().unwrap());
                for (from, to) in setup.regs {
                    command = command.replace(from, to);
                }
                // A fresh session each: `.effmach`, `~Ns`, `.cxr`, `.thread` or `q` would
                // change the next.
                let mut s = session_with_symbols(setup.dump, setup.symbols);
                if !setup.prefix.is_empty() {
                    s.run_command(setup.prefix).unwrap();
                }
                let result = s.run_command(&command);
                ran += 1;
                if let Some(why) = not_understood(&result) {
                    failures.push(format!(
                        "{} | {section}: `{span}` as `{command}`: {why}",
                        setup.dump
                    ));
                }
            }
        }
    }
    assert!(ran > 300, "{ran}");
    assert!(
        failures.is_empty(),
        "{} not understood:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Helpers for reading command output
// ---------------------------------------------------------------------------------------------

/// A WinDbg number as printed (hex, with or without a backtick, `0x` or not).
fn hex(text: &str) -> u64 {
    let t = text.trim().trim_start_matches("0x").replace('`', "");
    u64::from_str_radix(&t, 16).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

/// `name=value` pairs of a register display (`????` values as None).
fn register_values(text: &str) -> BTreeMap<String, Option<u64>> {
    let mut out = BTreeMap::new();
    for word in text.split_whitespace() {
        if let Some((name, value)) = word.split_once('=') {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
                continue;
            }
            let v = if value.starts_with('?') {
                None
            } else {
                u64::from_str_radix(value, 16).ok()
            };
            out.insert(name.to_string(), v);
        }
    }
    out
}

/// The physical frames of a `kn` listing on x64: (number, Child-SP, RetAddr).
fn physical_frames(kn: &str) -> Vec<(usize, u64, u64)> {
    kn.lines()
        .skip(1)
        .filter(|l| !l.contains("Inline") && !l.starts_with("WARNING"))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (hex(w[0]) as usize, hex(w[1]), hex(w[2]))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// .writemem
// ---------------------------------------------------------------------------------------------

#[test]
fn writemem_writes_exactly_the_bytes_of_the_range() {
    let dir = scratch("writemem");
    let mut s = session(X64_DUMP);
    let image = s.eval("targetapp").unwrap();
    let sp = s.eval("@rsp").unwrap();
    let file = |name: &str| dir.join(name);
    let read = |s: &Session, a: u64, n: usize| s.target().memory().read_bytes(a, n);

    // address L count: count bytes from the address, as the dump holds them.
    let out = s
        .run_command(&format!(
            ".writemem {} {image:#x} L200",
            file("a.bin").display()
        ))
        .unwrap();
    assert_eq!(out, "Writing 200 bytes.\n");
    let bytes = std::fs::read(file("a.bin")).unwrap();
    assert_eq!(bytes.len(), 0x200);
    assert_eq!(&bytes[..2], b"MZ");
    assert_eq!(bytes, read(&s, image, 0x200));

    // address end: the end is part of the range (WinDbg ranges include their end).
    s.run_command(&format!(
        ".writemem {} {sp:#x} {:#x}",
        file("b.bin").display(),
        sp + 0x2f
    ))
    .unwrap();
    let bytes = std::fs::read(file("b.bin")).unwrap();
    assert_eq!(bytes.len(), 0x30);
    assert_eq!(bytes, read(&s, sp, 0x30));

    // Across a page boundary, and a quoted path with a space.
    let path = file("with space.bin");
    s.run_command(&format!(
        ".writemem \"{}\" {:#x} L10",
        path.display(),
        image + 0xff8
    ))
    .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), read(&s, image + 0xff8, 0x10));
    // 64 KB, the whole image: a dot for each 64 KB written.
    let out = s
        .run_command(&format!(
            ".writemem {} {image:#x} L?0x10000",
            file("image.bin").display()
        ))
        .unwrap();
    assert_eq!(out, "Writing 10000 bytes..\n");
    let bytes = std::fs::read(file("image.bin")).unwrap();
    assert_eq!(bytes.len(), 0x10000);
    assert_eq!(bytes, read(&s, image, 0x10000));

    // A range running past what the dump holds: the readable part is written, and the error
    // says where the dump stops. targetapp's image is 0x10000 bytes.
    let e = s
        .run_command(&format!(
            ".writemem {} {image:#x} L?0x20000",
            file("c.bin").display()
        ))
        .unwrap_err();
    assert!(
        e.to_string().contains("00007ff7`e1460000") && e.to_string().contains("incomplete"),
        "{e}"
    );
    assert_eq!(
        std::fs::read(file("c.bin")).unwrap(),
        read(&s, image, 0x10000)
    );

    // Memory the dump does not hold at all: an error, and no file.
    let e = s
        .run_command(&format!(".writemem {} 0x1000 L10", file("d.bin").display()))
        .unwrap_err();
    assert!(matches!(e, CommandError::Unavailable(_)), "{e:?}");
    assert!(!file("d.bin").exists());

    // More than 256 MB needs L?; no range, no file name: usage errors, nothing written.
    let e = s
        .run_command(&format!(
            ".writemem {} {image:#x} L0x10000001",
            file("e.bin").display()
        ))
        .unwrap_err();
    assert!(e.to_string().contains("Range error"), "{e}");
    assert!(!file("e.bin").exists());
    for bad in [
        ".writemem",
        &format!(".writemem {}", file("f.bin").display()),
    ] {
        assert!(
            matches!(s.run_command(bad), Err(CommandError::Usage(_))),
            "{bad}"
        );
    }
    assert!(!file("f.bin").exists());

    // The x86 view of a WOW64 dump: 32-bit addresses, the same bytes `db` shows.
    let mut w = session(WOW64_DUMP);
    w.run_command(".effmach x86").unwrap();
    let esp = w.eval("@esp").unwrap();
    w.run_command(&format!(".writemem {} esp L8", file("g.bin").display()))
        .unwrap();
    let db = w.run_command("db esp L8").unwrap();
    let shown: Vec<u8> = db
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|b| hex(b) as u8)
        .collect();
    assert_eq!(std::fs::read(file("g.bin")).unwrap(), shown, "{db}");
    assert_eq!(shown, read(&w, esp, 8));
}

// ---------------------------------------------------------------------------------------------
// rM
// ---------------------------------------------------------------------------------------------

/// The raw CONTEXT of the first thread of a minidump, read straight from the file (the
/// ThreadListStream's first MINIDUMP_THREAD), to check the register displays against.
fn raw_first_thread_context(rel: &str) -> Vec<u8> {
    let file = std::fs::read(dump(rel)).unwrap();
    let u32_at = |o: usize| u32::from_le_bytes(file[o..o + 4].try_into().unwrap()) as usize;
    assert_eq!(&file[..4], b"MDMP");
    let (streams, directory) = (u32_at(8), u32_at(12));
    let threads = (0..streams)
        .map(|i| directory + 12 * i)
        .find(|&e| u32_at(e) == 3)
        .map(|e| u32_at(e + 8))
        .expect("a thread list");
    let first = threads + 4;
    let (size, rva) = (u32_at(first + 40), u32_at(first + 44));
    file[rva..rva + size].to_vec()
}

#[test]
fn rm_masks_show_the_register_groups_they_name() {
    // One x64 thread whose MXCSR (1fa0) and XMM0/XMM1 are not the defaults.
    let rel = "breakpad/tiny-exe-with-cet-xsave.dmp";
    let raw = raw_first_thread_context(rel);
    let u16_at = |o: usize| u16::from_le_bytes(raw[o..o + 2].try_into().unwrap()) as u64;
    let u32_at = |o: usize| u32::from_le_bytes(raw[o..o + 4].try_into().unwrap()) as u64;
    let u64_at = |o: usize| u64::from_le_bytes(raw[o..o + 8].try_into().unwrap());
    let mut s = session(rel);
    let r = s.run_command("r").unwrap();

    // 2 (and 1): the integer registers, as r shows them.
    assert_eq!(s.run_command("rM 2").unwrap(), r);
    assert_eq!(s.run_command("rM 1").unwrap(), r);

    // 8 alone: the segment registers and flags, from CONTEXT.SegCs.. and EFlags.
    let seg = s.run_command("rM 8").unwrap();
    assert_eq!(seg.lines().count(), 1, "{seg}");
    assert!(!seg.contains("rax="), "{seg}");
    let v = register_values(&seg);
    assert_eq!(v["cs"], Some(u16_at(0x38)));
    assert_eq!(v["gs"], Some(u16_at(0x40)));
    assert_eq!(v["ss"], Some(u16_at(0x42)));
    assert_eq!(v["efl"], Some(u32_at(0x44)));

    // 0x40: XMM0-15 (four floats each, highest element first) and MXCSR, from the FXSAVE area
    // at CONTEXT+0x100; MXCSR also against CONTEXT.MxCsr, a field of its own.
    let x = s.run_command("rM 0x40").unwrap();
    assert_eq!(x, s.run_command("rX").unwrap());
    assert!(!x.contains("rax="), "{x}");
    for i in 0..16 {
        let line = x
            .lines()
            .find(|l| l.starts_with(&format!("xmm{i}=")))
            .unwrap_or_else(|| panic!("xmm{i}:\n{x}"));
        let shown: Vec<f32> = line
            .split_once('=')
            .unwrap()
            .1
            .split_whitespace()
            .map(|f| f.replace("e+0", "e+").replace("e-0", "e-").parse().unwrap())
            .collect();
        let at = 0x100 + 160 + 16 * i;
        let expected: Vec<f32> = (0..4)
            .rev()
            .map(|k| f32::from_bits(u32_at(at + 4 * k) as u32))
            .collect();
        for (a, b) in shown.iter().zip(&expected) {
            assert!(
                (a - b).abs() <= b.abs() * 1e-5,
                "xmm{i}: {line} vs {expected:?}"
            );
        }
    }
    assert!(x.contains("xmm0=-6.25985e+018"), "{x}");
    assert_eq!(register_values(&x)["mxcsr"], Some(u32_at(0x34)));
    assert_eq!(u32_at(0x34), 0x1fa0);

    // 4: the x87 control, status and tag words and st0-st7.
    let f = s.run_command("rM 4").unwrap();
    assert_eq!(f, s.run_command("rF").unwrap());
    assert!(f.starts_with(&format!(
        "fpcw={:04X}  fpsw={:04X}",
        u16_at(0x100),
        u16_at(0x102)
    )));
    for i in 0..8 {
        assert!(f.contains(&format!("st{i}=")), "{f}");
    }

    // 0x20: the debug registers, from CONTEXT.Dr0..Dr7.
    let d = register_values(&s.run_command("rM 0x20").unwrap());
    for (name, at) in [
        ("dr0", 0x48),
        ("dr1", 0x50),
        ("dr2", 0x58),
        ("dr3", 0x60),
        ("dr6", 0x68),
        ("dr7", 0x70),
    ] {
        assert_eq!(d[name], Some(u64_at(at)), "{name}");
    }

    // Masks combine; 0x200 (AVX) says the dump saved none (its XSTATE holds only CET).
    let both = s.run_command("rM 0x44").unwrap();
    assert!(both.contains("fpcw=") && both.contains("xmm15=") && !both.contains("rax="));
    assert!(s.run_command("rM 0x200").unwrap().contains("no AVX state"));

    // rm sets the mask plain r uses, until set back.
    assert!(s
        .run_command("rm")
        .unwrap()
        .starts_with("Register output mask is 2:"));
    s.run_command("rm 0x40").unwrap();
    assert_eq!(s.run_command("r").unwrap(), x);
    s.run_command("rm 2").unwrap();
    assert_eq!(s.run_command("r").unwrap(), r);
    assert!(matches!(s.run_command("rM"), Err(CommandError::Usage(_))));

    // The x86 view of a WOW64 dump has eight XMM registers.
    let mut w = session(WOW64_DUMP);
    w.run_command(".effmach x86").unwrap();
    let x = w.run_command("rM 0x40").unwrap();
    assert!(x.contains("xmm7=") && !x.contains("xmm8="), "{x}");
    assert!(w
        .run_command("rm")
        .unwrap()
        .starts_with("Register output mask is 1:"));
}

// ---------------------------------------------------------------------------------------------
// .frame /r
// ---------------------------------------------------------------------------------------------

const NONVOLATILE: [&str; 8] = ["rbx", "rbp", "rsi", "rdi", "r12", "r13", "r14", "r15"];
const VOLATILE: [&str; 7] = ["rax", "rcx", "rdx", "r8", "r9", "r10", "r11"];

/// `REG from ADDR (saved by frame NN)` notes of a `.frame /r` display.
fn restored_notes(text: &str) -> Vec<(String, u64, usize)> {
    let Some(line) = text
        .lines()
        .find(|l| l.starts_with("Restored by the unwind: "))
    else {
        return Vec::new();
    };
    line["Restored by the unwind: ".len()..]
        .split(", ")
        .map(|note| {
            let w: Vec<&str> = note.split_whitespace().collect();
            assert_eq!(w[1], "from", "{note}");
            let by = w[6].trim_end_matches(')');
            (w[0].to_string(), hex(w[2]), hex(by) as usize)
        })
        .collect()
}

#[test]
fn frame_r_shows_the_nonvolatile_registers_the_x64_unwind_recovered() {
    let mut s = session_with_symbols(X64_DUMP, X64);
    let mut restored_seen = 0;
    for thread in 0..3 {
        s.run_command(&format!("~{thread}s")).unwrap();
        let r = s.run_command("r").unwrap();
        let kn = s.run_command("kn").unwrap();
        let frames = physical_frames(&kn);
        assert!(frames.len() >= 4, "{kn}");
        // Frame 0 (the first physical one): the context itself.
        let top = s
            .run_command(&format!(".frame /r {:x}", frames[0].0))
            .unwrap();
        assert!(top.ends_with(&r), "{top}\nvs\n{r}");
        let mut below = register_values(&r);
        for pair in frames.windows(2) {
            let ((callee, callee_sp, ret), (n, child_sp, _)) = (pair[0], pair[1]);
            let text = s.run_command(&format!(".frame /r {n:x}")).unwrap();
            let line = kn
                .lines()
                .find(|l| l.starts_with(&format!("{n:02x} ")))
                .unwrap();
            assert!(
                text.starts_with(&format!("{line}\n")),
                "{text}\nvs k's\n{line}"
            );
            let v = register_values(&text);
            // rsp is the frame's Child-SP; rip the return address the callee's frame held.
            assert_eq!(v["rsp"], Some(child_sp), "{text}");
            assert_eq!(v["rip"], Some(ret), "{text}");
            // Volatile registers are whatever the callees left: unknown at a caller frame.
            for reg in VOLATILE {
                assert_eq!(v[reg], None, "{reg} at frame {n:x}:\n{text}");
            }
            // Every non-volatile one is known: restored from the slot a callee saved it in
            // (that slot lies in the callee's frame or the home area above it), or left as the
            // frame below had it.
            let notes = restored_notes(&text);
            for reg in NONVOLATILE {
                let value = v[reg].unwrap_or_else(|| panic!("{reg} unknown:\n{text}"));
                match notes.iter().find(|(r, ..)| r == reg) {
                    Some((_, slot, by)) => {
                        let saved = s.target().memory().read_u64(*slot).unwrap();
                        assert_eq!(value, saved, "{reg} from {slot:#x}:\n{text}");
                        let by_sp = frames.iter().find(|f| f.0 == *by).unwrap().1;
                        assert!(
                            *slot >= by_sp && *slot < child_sp + 0x20,
                            "{reg} slot {slot:#x} outside frame {by:x}:\n{text}"
                        );
                        if *by == callee {
                            restored_seen += 1;
                        }
                    }
                    None => assert_eq!(Some(value), below[reg], "{reg}:\n{text}"),
                }
            }
            assert!(callee_sp < child_sp);
            below = v;
        }
    }
    assert!(
        restored_seen >= 7,
        "no frame restored registers from a callee's saves"
    );

    // ntdll's TppWorkerThread (thread 1's frame 1) saves rbx, rsi, rdi and r12-r15 in its
    // prologue; its caller gets those back, rbp unchanged.
    s.run_command("~1s").unwrap();
    let text = s.run_command(".frame /r 2").unwrap();
    let mut regs: Vec<String> = restored_notes(&text).into_iter().map(|n| n.0).collect();
    regs.sort();
    assert_eq!(
        regs,
        ["r12", "r13", "r14", "r15", "rbx", "rdi", "rsi"],
        "{text}"
    );
    assert!(
        text.contains("Unchanged by the callees (non-volatile, never saved): rbp"),
        "{text}"
    );
}

#[test]
fn frame_numbers_are_kns_and_count_inline_frames() {
    let mut s = session_with_symbols(X64_DUMP, X64);
    let kn = s.run_command("kn").unwrap();
    for n in 0..9usize {
        let line = kn
            .lines()
            .find(|l| l.starts_with(&format!("{n:02x} ")))
            .unwrap();
        assert_eq!(
            s.run_command(&format!(".frame {n:x}")).unwrap(),
            format!("{line}\n")
        );
        // .frame with no number shows the selection.
        assert_eq!(s.run_command(".frame").unwrap(), format!("{line}\n"));
    }
    // An inline frame has the registers of the frame it was inlined into: frames 0 and 1 are
    // inlined into stackTestRun1 (frame 2), the context's own frame.
    let r = s.run_command("r").unwrap();
    assert!(s.run_command(".frame /r 1").unwrap().ends_with(&r));
    assert!(matches!(
        s.run_command(".frame 9"),
        Err(CommandError::NotFound(_))
    ));
    assert!(matches!(
        s.run_command(".frame /q 1"),
        Err(CommandError::Syntax { .. })
    ));
    // A thread switch selects frame 0 again.
    s.run_command(".frame 4").unwrap();
    s.run_command("~0s").unwrap();
    assert!(s.run_command(".frame").unwrap().starts_with("00 "));
}

#[test]
fn frame_r_on_x86_shows_what_the_walk_recovers() {
    let mut s = session_with_symbols(WOW64_DUMP, WOW64);
    s.run_command(".effmach x86").unwrap();
    let kn = s.run_command("kn").unwrap();
    let line = kn.lines().find(|l| l.starts_with("01 ")).unwrap();
    let w: Vec<&str> = line.split_whitespace().collect();
    let frame0 = kn.lines().find(|l| l.starts_with("00 ")).unwrap();
    let ret0 = hex(frame0.split_whitespace().nth(2).unwrap());
    let text = s.run_command(".frame /r 1").unwrap();
    let v = register_values(&text);
    assert_eq!(v["ebp"], Some(hex(w[1])), "{text}");
    assert_eq!(v["eip"], Some(ret0), "{text}");
    for reg in ["eax", "ebx", "ecx", "edx", "esi", "edi"] {
        assert_eq!(v[reg], None, "{reg}: {text}");
    }
}

// ---------------------------------------------------------------------------------------------
// !dlls
// ---------------------------------------------------------------------------------------------

/// `!dlls` entries: (entry address, full name, base, entry point, size).
fn dll_entries(text: &str) -> Vec<(u64, String, u64, u64, u64)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let Some((entry, name)) = l.split_once(": ").filter(|(e, _)| e.starts_with("0x")) else {
            continue;
        };
        let w: Vec<&str> = lines[i + 1].split_whitespace().collect();
        assert_eq!(
            (w[0], w[2], w[4]),
            ("Base", "EntryPoint", "Size"),
            "{}",
            lines[i + 1]
        );
        out.push((
            hex(entry),
            name.to_string(),
            hex(w[1]),
            hex(w[3]),
            hex(w[5]),
        ));
    }
    out
}

fn file_name(path: &str) -> String {
    path.rsplit(['\\', '/'])
        .next()
        .unwrap()
        .to_ascii_lowercase()
}

#[test]
fn dlls_lists_the_loaders_modules_in_its_three_orders() {
    for (rel, views) in [
        (X64_DUMP, &[""][..]),
        (WOW64_DUMP, &["", ".effmach x86"][..]),
    ] {
        let mut all_bases = BTreeSet::new();
        for view in views {
            let mut s = session(rel);
            if !view.is_empty() {
                s.run_command(view).unwrap();
            }
            let load = dll_entries(&s.run_command("!dlls").unwrap());
            assert_eq!(load, dll_entries(&s.run_command("!dlls -l").unwrap()));
            let names: Vec<String> = load.iter().map(|e| file_name(&e.1)).collect();
            // Load order: the executable is loaded first, ntdll second.
            assert_eq!(names[0], "targetapp.exe", "{rel} {view}: {names:?}");
            assert_eq!(names[1], "ntdll.dll", "{rel} {view}: {names:?}");
            // Initialization order: the executable is never initialized as a DLL; ntdll first.
            let init = dll_entries(&s.run_command("!dlls -i").unwrap());
            assert_eq!(file_name(&init[0].1), "ntdll.dll");
            assert!(init.iter().all(|e| file_name(&e.1) != "targetapp.exe"));
            // Memory order holds the same entries as load order.
            let mut memory = dll_entries(&s.run_command("!dlls -m").unwrap());
            let mut sorted = load.clone();
            memory.sort();
            sorted.sort();
            assert_eq!(memory, sorted);
            for (entry, name, base, entry_point, size) in &load {
                // Each entry is a module of the dump's own module list, with its size.
                let m = s
                    .target()
                    .modules()
                    .iter()
                    .find(|m| m.base == *base)
                    .unwrap_or_else(|| panic!("{name} at {base:#x} is no module of the dump"));
                assert_eq!(u64::from(m.size), *size, "{name}");
                // The entry point is the PE header's (ntdll's is not called: 0).
                let headers = dumpdiag_os::pe::read_headers(s.target().memory(), *base).unwrap();
                if file_name(name) != "ntdll.dll" {
                    assert_eq!(*entry_point, base + headers.entry_point as u64, "{name}");
                } else {
                    assert_eq!(*entry_point, 0);
                }
                // -c: only the entry whose image holds the address.
                let c = dll_entries(
                    &s.run_command(&format!("!dlls -c {:#x}", base + 0x10))
                        .unwrap(),
                );
                assert_eq!(c.len(), 1);
                assert_eq!(c[0].0, *entry);
                all_bases.insert(*base);
            }
            assert!(matches!(
                s.run_command("!dlls -c 0x10"),
                Err(CommandError::NotFound(_))
            ));
        }
        // Between them, the loader lists of the views hold every module the dump lists.
        let modules: BTreeSet<u64> = session(rel)
            .target()
            .modules()
            .iter()
            .map(|m| m.base)
            .collect();
        assert_eq!(all_bases, modules, "{rel}");
    }
}

// ---------------------------------------------------------------------------------------------
// version, .kframes, .thread, !address addr
// ---------------------------------------------------------------------------------------------

#[test]
fn version_shows_the_targets_os_the_dump_and_this_debugger() {
    for (rel, os, kind) in [
        (
            WOW64_DUMP,
            "Windows 10 Version 17134 MP (8 procs) Free x64",
            "Full memory user mini dump",
        ),
        (SIGSEGV_DUMP, "Windows 10 Version 16299", "User mini dump"),
        (X64_DUMP, "Windows 10 Version", "User full dump"),
    ] {
        let mut s = session(rel);
        let v = s.run_command("version").unwrap();
        let vertarget = s.run_command("vertarget").unwrap();
        assert!(v.starts_with(&vertarget), "{v}");
        assert!(v.starts_with(os), "{v}");
        assert!(
            v.contains(&format!("{kind}: {}", dump(rel).display())),
            "{v}"
        );
        assert!(
            v.contains(&format!("dumpdiag version {}", env!("CARGO_PKG_VERSION"))),
            "{v}"
        );
        assert!(v.contains("Symbol search path is: <empty>"), "{v}");
    }
    // Windows 10 1803's build lab, as the dump's MiscInfo names it.
    let v = session(WOW64_DUMP).run_command("version").unwrap();
    assert!(
        v.contains("17134.1.amd64fre.rs4_release.180410-1804"),
        "{v}"
    );
}

#[test]
fn kframes_sets_how_many_frames_k_shows() {
    let mut s = session(X64_DUMP);
    assert_eq!(
        s.run_command(".kframes").unwrap(),
        "Default stack trace depth is 0n256 frames\n"
    );
    let frames = |text: &str| {
        text.lines()
            .skip(1)
            .filter(|l| !l.starts_with("WARNING"))
            .count()
    };
    let full = s.run_command("~1k").unwrap();
    assert_eq!(frames(&full), 4, "{full}");
    assert_eq!(
        s.run_command(".kframes 2").unwrap(),
        "Default stack trace depth is 0n2 frames\n"
    );
    let short = s.run_command("~1k").unwrap();
    assert_eq!(frames(&short), 2, "{short}");
    assert!(full.starts_with(&short));
    // A count given to k still wins.
    assert_eq!(frames(&s.run_command("~1k 3").unwrap()), 3);
    assert!(matches!(
        s.run_command(".kframes 0"),
        Err(CommandError::Usage(_))
    ));

    // Warnings about frames the depth leaves out are not shown: the Sigsegv minidump's stack
    // is mostly scanned.
    let mut m = session(SIGSEGV_DUMP);
    let all = m.run_command("k").unwrap();
    assert!(all.matches("was found by scanning").count() > 5, "{all}");
    m.run_command(".kframes 2").unwrap();
    let two = m.run_command("k").unwrap();
    assert!(two.matches("was found by scanning").count() <= 1, "{two}");
}

#[test]
fn thread_with_an_address_makes_that_thread_implicit() {
    let mut s = session(X64_DUMP);
    let teb: Vec<u64> = (0..3).map(|i| s.teb_of(i).unwrap()).collect();
    let r1 = s.run_command("~1s").unwrap();
    let k1 = s.run_command("k").unwrap();
    s.run_command("~0s").unwrap();
    let list = s.run_command("~").unwrap();

    // Without an address: the current thread's TEB.
    assert_eq!(
        s.run_command(".thread").unwrap(),
        format!("Implicit thread is now {}\n", s.addr(teb[0]))
    );
    // With thread 1's TEB: its registers, stack and TEB are what r, k and $teb read; the
    // current thread (the prompt, the ~ marker) stays 0.
    assert_eq!(
        s.run_command(&format!(".thread {:x}", teb[1])).unwrap(),
        format!("Implicit thread is now {}\n", s.addr(teb[1]))
    );
    assert!(r1.starts_with(&s.run_command("r").unwrap()[..200]));
    assert_eq!(s.run_command("k").unwrap(), k1);
    assert_eq!(s.eval("@$teb").unwrap(), teb[1]);
    assert_eq!(s.current_thread(), 0);
    assert_eq!(s.prompt(), "0:000> ");
    assert_eq!(s.run_command("~").unwrap(), list);
    // Back to the current thread.
    s.run_command(".thread").unwrap();
    assert_eq!(s.eval("@$teb").unwrap(), teb[0]);
    assert_ne!(s.run_command("k").unwrap(), k1);
    // A thread switch ends it too.
    s.run_command(&format!(".thread {:#x}", teb[2])).unwrap();
    s.run_command("~0s").unwrap();
    assert_eq!(s.eval("@$teb").unwrap(), teb[0]);
    // An address that is no thread's TEB.
    assert!(matches!(
        s.run_command(".thread 0x1234"),
        Err(CommandError::NotFound(_))
    ));
    assert_eq!(s.eval("@$teb").unwrap(), teb[0]);
}

#[test]
fn address_of_one_address_describes_its_region() {
    let mut s = session(X64_DUMP);
    let listing = s.run_command("!address").unwrap();
    let field = |text: &str, name: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("{name}:\n{text}"))
            .trim()
            .to_string()
    };
    // An address on thread 2's stack.
    let sp = s.thread_context(2).unwrap().sp();
    let text = s.run_command(&format!("!address {sp:#x}")).unwrap();
    assert_eq!(field(&text, "Usage:"), "Stack");
    assert_eq!(field(&text, "More info:"), "~2k");
    let base = hex(&field(&text, "Base Address:"));
    let end = hex(&field(&text, "End Address:"));
    assert!(base <= sp && sp < end, "{text}");
    assert_eq!(
        hex(field(&text, "Region Size:")
            .split_whitespace()
            .next()
            .unwrap()),
        end - base
    );
    assert_eq!(field(&text, "State:"), "00001000          MEM_COMMIT");
    assert_eq!(field(&text, "Type:"), "00020000          MEM_PRIVATE");
    assert_eq!(
        field(&text, "Content source:"),
        format!("1 (target), length: {:x}", end - sp)
    );
    // The same region is a line of the whole listing.
    assert!(
        listing.contains(&format!("+ {} {}", s.addr(base), s.addr(end))),
        "{listing}"
    );

    // Code: an image region, with the module's names and what to type next.
    let ip = s.thread_context(0).unwrap().ip();
    let text = s.run_command(&format!("!address {ip:#x}")).unwrap();
    assert_eq!(field(&text, "Usage:"), "Image");
    assert_eq!(field(&text, "Type:"), "01000000          MEM_IMAGE");
    assert_eq!(
        field(&text, "Protect:"),
        "00000020          PAGE_EXECUTE_READ"
    );
    assert_eq!(field(&text, "Module Name:"), "targetapp");
    assert_eq!(
        field(&text, "Allocation Base:"),
        s.addr(s.eval("targetapp").unwrap())
    );
    for next in ["lmv m targetapp", "!lmi targetapp", &format!("ln {ip:#x}")] {
        assert!(
            text.contains(&format!("More info:              {next}\n")),
            "{text}"
        );
    }

    // The three TEBs share one region: each address names its own thread.
    for t in 0..3 {
        let teb = s.teb_of(t).unwrap();
        let text = s
            .run_command(&format!("!address {:#x}", teb + 0x30))
            .unwrap();
        assert_eq!(field(&text, "Usage:"), "TEB");
        assert_eq!(field(&text, "More info:"), format!("~{t}; !teb {teb:#x}"));
    }
}
