//! PDB matching as WinDbg does it, on the kdlib dumps and the PDBs they ship: a PDB matches its
//! image by GUID and the DBI stream's age (the PDB info stream's age is bumped by tools that
//! rewrite the file and is not compared). A mismatched copy is made by patching a corpus PDB's
//! ages or GUID in a temporary directory: it is refused (the module keeps what else it has), the
//! reason shows in `lm` and `!lmi`, Not My Version gets it typed, and `.reload /i` loads it
//! anyway and says so.

mod common;
use common::*;

use std::path::{Path, PathBuf};

use dumpdiag_analysis::Pattern;
use dumpdiag_symbols::pdb_match::MismatchReason;

/// A small x64 minidump whose module record names targetapp.pdb B3715C7E…AA, age 1.
const AMD64: &str = "kdlibcpp/targetapp_test_cv_allreg_amd64/targetapp_test_cv_allreg_amd64.dmp";
/// A full-memory WOW64 dump (exports in memory) whose targetapp.pdb is 60CF2F6A…8A, age 1.
const WOW64: &str = "kdlibcpp/targetapp_stacktest_wow64/targetapp_stacktest_wow64.dmp";

/// Where in the file a stream's first bytes lie (MSF 7.0: superblock, block map, directory).
fn stream_start(pdb: &[u8], stream: usize) -> usize {
    let u32_at = |o: usize| u32::from_le_bytes(pdb[o..o + 4].try_into().unwrap()) as usize;
    assert_eq!(&pdb[..24], b"Microsoft C/C++ MSF 7.00");
    let block = u32_at(32);
    let directory_bytes = u32_at(44);
    let directory_blocks: Vec<usize> = (0..directory_bytes.div_ceil(block))
        .map(|i| u32_at(u32_at(52) * block + 4 * i))
        .collect();
    let directory: Vec<u8> = directory_blocks
        .iter()
        .flat_map(|b| pdb[b * block..(b + 1) * block].iter().copied())
        .collect();
    let d = |o: usize| u32::from_le_bytes(directory[o..o + 4].try_into().unwrap()) as usize;
    let streams = d(0);
    // The block lists follow the sizes, stream after stream.
    let mut at = 4 + 4 * streams;
    for s in 0..stream {
        let size = d(4 + 4 * s);
        let size = if size == u32::MAX as usize { 0 } else { size };
        at += 4 * size.div_ceil(block);
    }
    d(at) * block
}

/// The PDB info stream and the DBI stream.
const PDB_INFO: usize = 1;
const DBI: usize = 3;

/// A copy of the corpus PDB beside `dump` in a fresh directory, patched by `patch`.
fn patched_pdb(test: &str, dump: &str, patch: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    pdb_copy(test, dump, "targetapp.pdb", patch)
}

/// A copy of the corpus PDB beside `dump`, patched by `patch`, named `name` in a fresh directory.
fn pdb_copy(test: &str, dump: &str, name: &str, patch: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dumpdiag-pdb-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut pdb = std::fs::read(dump_dir(dump).join("targetapp.pdb")).unwrap();
    patch(&mut pdb);
    std::fs::write(dir.join(name), pdb).unwrap();
    dir
}

fn dump_dir(dump: &str) -> PathBuf {
    common::dump(dump).parent().unwrap().to_path_buf()
}

fn put_u32(pdb: &mut [u8], at: usize, v: u32) {
    pdb[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Info stream: version, signature, age, GUID. DBI header: signature, version, age.
fn set_dbi_age(pdb: &mut [u8], age: u32) {
    let at = stream_start(pdb, DBI) + 8;
    put_u32(pdb, at, age);
}
fn set_info_age(pdb: &mut [u8], age: u32) {
    let at = stream_start(pdb, PDB_INFO) + 8;
    put_u32(pdb, at, age);
}

fn session_with(dump: &str, sympath: &Path) -> dumpdiag_engine::Session {
    let mut s = session(dump);
    s.set_symbol_path(sympath.to_str().unwrap());
    s
}

fn targetapp(s: &dumpdiag_engine::Session) -> usize {
    s.target()
        .modules()
        .iter()
        .position(|m| m.short_name() == "targetapp")
        .unwrap()
}

#[test]
fn the_corpus_pdbs_match_their_images() {
    // The ground the patched copies stand on: each dump loads its own PDB, with no mismatch.
    for dump in [AMD64, WOW64] {
        let mut s = session_with(dump, &dump_dir(dump));
        let lm = run(&mut s, ".reload /f targetapp; lm m targetapp");
        assert!(lm.contains("targetapp  (private pdb symbols)  "), "{lm}");
        assert!(!lm.contains("mismatched"), "{lm}");
        assert_eq!(s.symbols().pdb_mismatch(targetapp(&s)), None);
    }
}

#[test]
fn a_pdb_written_again_after_the_link_is_refused_and_reload_i_loads_it() {
    // DBI age 2 (and info age 2): the same GUID, linked again after the image was.
    let dir = patched_pdb("dbi-age", AMD64, |p| {
        set_dbi_age(p, 2);
        set_info_age(p, 2);
    });
    let mut s = session_with(AMD64, &dir);
    let pdb = dir.join("targetapp.pdb").display().to_string();

    // Refused: the faulting frame is named from nothing but the module (the minidump holds no
    // export table for targetapp), where the matching PDB names test_cv_allreg_amd64.
    let k = run(&mut s, "kL 1");
    assert!(k.contains("00007ff6`6d9f2b2f targetapp+0x29e9\n"), "{k}");
    let i = targetapp(&s);
    let m = s.symbols().pdb_mismatch(i).expect("the mismatch is kept");
    assert_eq!(m.reason, MismatchReason::Age { image: 1, pdb: 2 });
    assert_eq!(m.expected, "B3715C7EDE8E48A98BE5204FF5C9E3AA1");
    assert_eq!(m.found, "B3715C7EDE8E48A98BE5204FF5C9E3AA2");
    assert!(!m.loaded && !m.another_build());

    // lm: the module's base and end, its symbols (none) and the refused PDB.
    let lm = run(&mut s, "lm m targetapp");
    assert!(
        lm.contains(&format!(
            "00007ff6`6d9f0000 00007ff6`6da01000   targetapp  (no symbols)           \
             mismatched pdb refused: {pdb}\n"
        )),
        "{lm}"
    );
    let lmi = run(&mut s, "!lmi targetapp");
    assert!(lmi.contains("    Symbol Type: NONE "), "{lmi}");
    assert!(
        lmi.contains("    Load Report: no symbols loaded\n"),
        "{lmi}"
    );
    assert!(
        lmi.contains(&format!(
            "{pdb} - mismatched pdb, refused (.reload /i loads it anyway)"
        )),
        "{lmi}"
    );
    assert!(
        lmi.contains(
            "the image expects B3715C7EDE8E48A98BE5204FF5C9E3AA1, the pdb is \
             B3715C7EDE8E48A98BE5204FF5C9E3AA2: same GUID, but the PDB's age is 2 where the \
             image's is 1"
        ),
        "{lmi}"
    );

    // Not My Version learns of it typed: another link, not another build.
    let report = dumpdiag_analysis::analyze(&s.analysis_input());
    let v = report
        .patterns
        .iter()
        .find(|f| f.pattern == Pattern::NotMyVersion)
        .expect("Not My Version");
    assert!(
        v.evidence().iter().any(|e| e.starts_with(&format!(
            "targetapp: PDB from another link of this build: {pdb} is \
             B3715C7EDE8E48A98BE5204FF5C9E3AA2, the image expects \
             B3715C7EDE8E48A98BE5204FF5C9E3AA1"
        ))),
        "{:?}",
        v.evidence()
    );

    // .reload /i: loaded anyway, and said so.
    let reload = run(&mut s, ".reload /i targetapp");
    assert!(
        reload.starts_with(
            "*** WARNING: targetapp.exe: symbols loaded from a mismatched pdb \
             (B3715C7EDE8E48A98BE5204FF5C9E3AA2, the image expects \
             B3715C7EDE8E48A98BE5204FF5C9E3AA1"
        ),
        "{reload}"
    );
    assert!(
        reload.contains(&format!(
            "targetapp    M (private pdb symbols)  {pdb} - mismatched pdb\n"
        )),
        "{reload}"
    );
    let k = run(&mut s, "kL 1");
    assert!(
        k.contains("00007ff6`6d9f2b2f targetapp!test_cv_allreg_amd64+0x39\n"),
        "{k}"
    );
    assert!(s.symbols().pdb_mismatch(i).unwrap().loaded);
    let lm = run(&mut s, "lm m targetapp");
    assert!(
        lm.contains(&format!(
            "targetapp  M (private pdb symbols)  {pdb} - mismatched pdb\n"
        )),
        "{lm}"
    );
    let lmi = run(&mut s, "!lmi targetapp");
    assert!(
        lmi.contains("    Load Report: private symbols & lines, not source indexed\n"),
        "{lmi}"
    );
    assert!(
        lmi.contains(&format!(
            "{pdb} - mismatched pdb, loaded anyway by .reload /i"
        )),
        "{lmi}"
    );
    let report = dumpdiag_analysis::analyze(&s.analysis_input());
    let v = report
        .patterns
        .iter()
        .find(|f| f.pattern == Pattern::NotMyVersion)
        .expect("Not My Version after .reload /i");
    assert!(
        v.evidence()
            .iter()
            .any(|e| e.ends_with("loaded anyway by .reload /i: names and lines may be wrong")),
        "{:?}",
        v.evidence()
    );

    // A plain .reload forgets /i: refused again.
    let k = run(&mut s, ".reload; kL 1");
    assert!(k.contains("targetapp+0x29e9\n"), "{k}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_info_stream_age_is_not_what_is_compared() {
    // A tool rewrote the PDB: its info stream's age is 3, the DBI stream's still the image's 1.
    // WinDbg loads it; so must we.
    let dir = patched_pdb("info-age", AMD64, |p| set_info_age(p, 3));
    let mut s = session_with(AMD64, &dir);
    let k = run(&mut s, "kL 1");
    assert!(
        k.contains("00007ff6`6d9f2b2f targetapp!test_cv_allreg_amd64+0x39\n"),
        "{k}"
    );
    assert_eq!(s.symbols().pdb_mismatch(targetapp(&s)), None);
    let lm = run(&mut s, "lm m targetapp");
    assert!(
        lm.contains(&format!(
            "targetapp  (private pdb symbols)  {}\n",
            dir.join("targetapp.pdb").display()
        )),
        "{lm}"
    );
    let report = dumpdiag_analysis::analyze(&s.analysis_input());
    assert!(
        !report
            .patterns
            .iter()
            .any(|f| f.pattern == Pattern::NotMyVersion),
        "no mismatch, no Not My Version"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn another_builds_pdb_is_refused_and_the_module_keeps_its_exports() {
    // Under the 32-bit ntdll's PDB name, a PDB of another build (targetapp's, GUID 60CF2F6A…
    // where the image expects D3AE91CE…): refused, and ntdll keeps the export table the
    // full-memory dump holds.
    let dir = pdb_copy("guid", WOW64, "wntdll.pdb", |_| {});
    let mut s = session_with(WOW64, &dir);
    let i = s
        .target()
        .modules()
        .iter()
        .position(|m| m.base == 0x77cf_0000)
        .unwrap();
    let _ = s.symbols().module(s.target(), i);
    let m = s.symbols().pdb_mismatch(i).expect("refused");
    assert_eq!(m.reason, MismatchReason::Guid);
    assert!(m.another_build());
    assert_eq!(m.expected, "D3AE91CEDD9309EF777F2FD5120010BE1");
    assert_eq!(m.found, "60CF2F6A4C064192ABCE11C056386E8A1");
    let lm = run(&mut s, "lm m ntdll");
    assert!(
        lm.contains(&format!(
            "00000000`77cf0000 00000000`77e80000   ntdll      (export symbols)       exports in \
             dump memory; mismatched pdb refused: {}\n",
            dir.join("wntdll.pdb").display()
        )),
        "{lm}"
    );
    // Exports still name ntdll's functions.
    let x = run(&mut s, "x ntdll!NtWaitForSingleObject");
    assert!(x.contains(" ntdll!NtWaitForSingleObject\n"), "{x}");
    let report = dumpdiag_analysis::analyze(&s.analysis_input());
    let v = report
        .patterns
        .iter()
        .find(|f| f.pattern == Pattern::NotMyVersion)
        .expect("Not My Version");
    assert!(
        v.evidence()
            .iter()
            .any(|e| e.starts_with("ntdll: PDB from another build: ")
                && e.contains("(another GUID: another build's PDB)")),
        "{:?}",
        v.evidence()
    );
    let _ = std::fs::remove_dir_all(dir);
}
