//! Hostile input costs little: every input the fuzzer or a review found hostile (the
//! regression inputs beside the bad-input tests) runs the command battery and the whole
//! analysis in a dumpdiag process whose peak memory stays under 64 MB. A count or a chain the
//! dump controls must not size an allocation. Linux only: the peak comes from getrusage.
#![cfg(target_os = "linux")]

mod common;

use std::path::PathBuf;
use std::process::Command;

/// The budget a hostile input must stay under (peak resident set of the process).
const BUDGET_KB: i64 = 64 * 1024;

/// The largest peak resident set of any child this process has waited for, in KiB.
fn children_peak_kb() -> i64 {
    // SAFETY: getrusage writes the struct it is given and nothing else.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    assert_eq!(rc, 0, "getrusage");
    usage.ru_maxrss
}

#[test]
fn every_hostile_input_runs_in_under_64_mb() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty());
    let battery = common::COMMANDS.join("; ");
    for input in &inputs {
        for args in [
            vec!["-c".to_string(), battery.clone()],
            vec!["--format".into(), "json".into()],
        ] {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_dumpdiag"));
            if args[0] == "--format" {
                cmd.arg("analyze");
            }
            let out = cmd
                .arg(input)
                .args(&args)
                .env("DUMPDIAG_OFFLINE", "1")
                .output()
                .unwrap();
            // A clean refusal is fine; a crash is not.
            assert!(
                out.status.code().is_some(),
                "{}: killed by a signal",
                input.display()
            );
            let peak = children_peak_kb();
            assert!(
                peak < BUDGET_KB,
                "{} {:?}: peak {} KB",
                input.display(),
                args.first(),
                peak
            );
        }
    }
    eprintln!(
        "{} hostile inputs, peak resident set {} KB",
        inputs.len(),
        children_peak_kb()
    );
}
