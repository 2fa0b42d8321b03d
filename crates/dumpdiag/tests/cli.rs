//! The `dumpdiag` binary as a user runs it.

mod common;
use std::process::Command;

fn dumpdiag() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dumpdiag"))
}

#[test]
fn one_shot_commands_print_and_exit() {
    let out = dumpdiag()
        .arg(common::dump("lldb/Sigsegv/sigsegv.dmp"))
        .args(["-c", "vertarget; ~; lmv; !peb; q; ~"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Windows 10 Version 16299"), "{text}");
    assert!(text.contains("Id: 32fc.2a6c"), "{text}");
    assert!(text.contains("sigsegv"), "{text}");
    assert_eq!(
        text.matches("Id: 32fc.2a6c").count(),
        1,
        "commands after q do not run"
    );
}

#[test]
fn one_shot_lines_split_like_windbg_and_errors_print_as_windbg_prints_them() {
    let out = dumpdiag()
        .arg(common::dump("lldb/Sigsegv/sigsegv.dmp"))
        .args(["-c", ".echo \"a; b\"; zz; !nosuch; ? nosuchsym; .echo done"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "a; b\n       ^ Syntax error in 'zz'\nNo export nosuch found\n\
         Couldn't resolve error at 'nosuchsym'\ndone\n"
    );
}

#[test]
fn piped_repl_shows_the_prompt_and_switches_views() {
    use std::io::Write;
    let mut child = dumpdiag()
        .arg(common::dump(
            "kdlibcpp/targetapp_stacktest_wow64/targetapp_stacktest_wow64.dmp",
        ))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b".effmach x86\nr eip\nq\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("0:000> .effmach x86\nEffective machine: x86 compatible (x86)"),
        "{text}"
    );
    // The thread was caught in 32-bit code: its current x86 registers, not the layer's saved ones.
    assert!(text.contains("0:000:x86> r eip\neip=00875f5d"), "{text}");
}

#[test]
fn unreadable_input_gives_one_line_and_nonzero_exit() {
    let out = dumpdiag()
        .arg("/nonexistent/crash.dmp")
        .args(["-c", "k"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("cannot read dump file"), "{err}");

    let not_dump = std::env::temp_dir().join(format!("dumpdiag-cli-{}.dmp", std::process::id()));
    std::fs::write(&not_dump, b"hello").unwrap();
    let out = dumpdiag()
        .arg(&not_dump)
        .args(["-c", "k"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a readable MDMP dump"));
    let _ = std::fs::remove_file(not_dump);
}

#[test]
fn help_and_symbol_path_options() {
    let out = dumpdiag().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("--sympath") && text.contains("--commands"),
        "{text}"
    );
    let out = dumpdiag()
        .arg(common::dump("breakpad/minidump2.dmp"))
        .args([
            "-y",
            "srv*c:\\symbols*https://msdl.microsoft.com/download/symbols",
            "-c",
            ".sympath",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(
        "Symbol search path is: srv*c:\\symbols*https://msdl.microsoft.com/download/symbols"
    ));
    let out = dumpdiag()
        .arg(common::dump("breakpad/minidump2.dmp"))
        .env("_NT_SYMBOL_PATH", "cache*/tmp/sym")
        .args(["-c", ".sympath"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("Symbol search path is: cache*/tmp/sym"));
}

/// The README's first command, exactly as written there.
fn readme_command() -> Vec<String> {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let line = readme
        .lines()
        .find(|l| l.contains("cargo run --release -p dumpdiag --"))
        .expect("README gives the sample command");
    let args = line.split_once("-- ").unwrap().1;
    // Split on spaces outside double quotes.
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in args.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[test]
fn readme_sample_command_runs_on_the_bundled_sample() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let args = readme_command();
    assert_eq!(
        args.first().map(String::as_str),
        Some("analyze"),
        "{args:?}"
    );
    let out = dumpdiag().current_dir(&root).args(&args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // The sample's design: two workers each hold one critical section and wait for the other's;
    // main waits for both threads. An engineer names the deadlock, both locks and both owners.
    let deadlock = text
        .lines()
        .find(|l| l.starts_with("Deadlock (Critical Sections)"))
        .unwrap_or_else(|| panic!("no deadlock named:\n{text}"));
    assert!(
        deadlock.contains("cs_deadlock!g_ledger_lock")
            && deadlock.contains("cs_deadlock!g_accounts_lock"),
        "{deadlock}"
    );
    assert!(text.contains("owned by thread"), "{text}");
    for absent in [
        "Spiking Thread",
        "NULL Pointer",
        "Stack Overflow",
        "Heap Corruption",
    ] {
        assert!(!text.contains(absent), "{absent} in:\n{text}");
    }
}

#[test]
fn the_bundled_sample_answers_the_windbg_commands() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = dumpdiag()
        .current_dir(&root)
        .args(["samples/cs_deadlock.dmp", "-y", "samples", "-c"])
        .arg("vertarget; .dumpdebug; ~*k; lm; !handle; !runaway 7; !address -summary; !locks")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("Id: 20.").count(), 3, "three threads:\n{text}");
    assert!(
        text.contains("dumpdiag sample: two threads deadlocked on critical sections"),
        "{text}"
    );
    assert!(text.contains("cs_deadlock!transfer_funds+0x2f"), "{text}");
    assert!(text.contains("cs_deadlock!audit_ledger+0x2f"), "{text}");
    assert!(text.contains("User Mode Time"), "{text}");
    assert!(text.contains("--- Usage Summary"), "{text}");
    assert_eq!(text.matches("\nLOCKED").count(), 2, "{text}");
}

#[test]
fn analyze_subcommand_and_repl_analysis_commands() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let sample = root.join("samples/cs_deadlock.dmp");
    let samples = root.join("samples");
    let out = dumpdiag()
        .arg("analyze")
        .arg(&sample)
        .arg("-y")
        .arg(&samples)
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schema"], "dumpdiag.analysis/1");
    let names: Vec<&str> = v["patterns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for name in [
        "Deadlock (Critical Sections)",
        "Manual Dump",
        "Embedded Comments",
    ] {
        assert!(names.contains(&name), "{name} not in {names:?}");
    }

    let text = dumpdiag()
        .arg(&sample)
        .arg("-y")
        .arg(&samples)
        .args(["-c", "!analyze -v; !locks; !waitchain"])
        .output()
        .unwrap();
    let t = String::from_utf8_lossy(&text.stdout);
    assert!(t.contains("FAILURE_BUCKET_ID: manual|"), "{t}");
    assert!(t.contains("cs_deadlock!g_accounts_lock"), "{t}");

    let file = std::env::temp_dir().join(format!("dumpdiag-report-{}.txt", std::process::id()));
    let out = dumpdiag()
        .arg("analyze")
        .arg(&sample)
        .arg("-y")
        .arg(&samples)
        .arg("-o")
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(std::fs::read_to_string(&file)
        .unwrap()
        .contains("Manual Dump [high]"));
    let _ = std::fs::remove_file(file);
}
