//! Bad input is normal input: truncated and bit-flipped copies of every real dump must open
//! with a clear error or a partial view, and every information command and the whole analysis
//! must finish quickly without panicking.

mod common;
use common::*;
use std::time::{Duration, Instant};

/// Splitmix64: a fixed, dependency-free stream of test positions.
fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed;
    move || {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn exercise(bytes: &[u8], label: &str, scratch: &std::path::Path) {
    std::fs::write(scratch, bytes).expect("write scratch dump");
    let start = Instant::now();
    match dumpdiag_mdmp::open_dump(scratch) {
        Err(e) => assert!(!e.to_string().is_empty(), "{label}: empty error"),
        Ok(t) => {
            let mut s = dumpdiag_engine::Session::new(t);
            for cmd in common::COMMANDS {
                let _ = s.execute(cmd);
            }
            let _ = dumpdiag_analysis::analyze(&s.analysis_input()).to_json();
            // What we write from a damaged dump, we can read back.
            let copy = scratch.with_extension("copy.dmp");
            let said = s.execute(&format!(".dump /o /m {}", copy.display())).text;
            if said.contains("successfully written") {
                if let Err(e) = dumpdiag_mdmp::MdmpTarget::open(&copy) {
                    panic!("{label}: the /m copy does not open: {e}");
                }
            }
            let _ = std::fs::remove_file(copy);
        }
    }
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{label}: took {:?}",
        start.elapsed()
    );
}

#[test]
fn truncated_dumps_open_partially_or_fail_cleanly() {
    let scratch = std::env::temp_dir().join(format!("dumpdiag-trunc-{}.dmp", std::process::id()));
    let mut next = rng(1);
    for path in all_dumps() {
        let data = std::fs::read(&path).expect("read dump");
        let mut cuts: Vec<usize> = vec![
            0,
            1,
            4,
            31,
            32,
            33,
            64,
            100,
            200,
            512,
            1024,
            4096,
            data.len() / 2,
            data.len() - 1,
        ];
        for _ in 0..12 {
            cuts.push((next() % data.len() as u64) as usize);
        }
        for cut in cuts {
            let cut = cut.min(data.len());
            exercise(
                &data[..cut],
                &format!("{} cut at {cut}", path.display()),
                &scratch,
            );
        }
    }
    let _ = std::fs::remove_file(scratch);
}

#[test]
fn bit_flipped_dumps_never_panic_or_hang() {
    let scratch = std::env::temp_dir().join(format!("dumpdiag-flip-{}.dmp", std::process::id()));
    let mut next = rng(2);
    for path in all_dumps() {
        let data = std::fs::read(&path).expect("read dump");
        // Flips aimed at the metadata (header, directory, stream headers) hurt most; most
        // variants flip there, a few anywhere.
        let meta = data.len().min(0x4000);
        for variant in 0..24 {
            let mut copy = data.clone();
            for _ in 0..(1 + variant % 8) {
                let span = if variant % 4 == 3 { copy.len() } else { meta };
                let at = (next() % span as u64) as usize;
                copy[at] ^= 1 << (next() % 8);
            }
            // Some variants write large counts into random places.
            if variant % 5 == 0 {
                let at = (next() % (meta as u64 - 4)) as usize;
                copy[at..at + 4].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
            }
            exercise(
                &copy,
                &format!("{} flip variant {variant}", path.display()),
                &scratch,
            );
        }
    }
    let _ = std::fs::remove_file(scratch);
}

#[test]
fn non_dumps_are_refused_with_a_reason() {
    let scratch = std::env::temp_dir().join(format!("dumpdiag-notdump-{}.dmp", std::process::id()));
    std::fs::write(
        &scratch,
        b"MZ\x90\x00 this is not a dump, but it is long enough for a header",
    )
    .unwrap();
    let err = dumpdiag_mdmp::open_dump(&scratch).err().expect("refused");
    assert!(err.to_string().contains("no MDMP signature"), "{err}");
    std::fs::write(&scratch, b"").unwrap();
    let err = dumpdiag_mdmp::open_dump(&scratch).err().expect("refused");
    assert!(err.to_string().contains("too short"), "{err}");
    // A legacy signature with its header cut short is named as such.
    std::fs::write(&scratch, b"USERDU64\x0a\0\0\0").unwrap();
    let err = dumpdiag_mdmp::open_dump(&scratch).err().expect("refused");
    assert!(
        err.to_string()
            .starts_with("not a readable legacy user dump: file too short for a USERDU64 header"),
        "{err}"
    );
    let _ = std::fs::remove_file(scratch);
}

/// Inputs the fuzzer (fuzz/) once crashed on, kept so they stay fixed.
#[test]
fn fuzz_regressions_stay_fixed() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let bytes = std::fs::read(e.path()).unwrap();
        if let Ok(t) = dumpdiag_mdmp::open_dump_bytes("regression.dmp", bytes) {
            let mut s = dumpdiag_engine::Session::new(t);
            for cmd in common::COMMANDS {
                let _ = s.execute(cmd);
            }
            let _ = dumpdiag_analysis::analyze(&s.analysis_input()).to_json();
        }
        n += 1;
    }
    assert!(n >= 1);
}
