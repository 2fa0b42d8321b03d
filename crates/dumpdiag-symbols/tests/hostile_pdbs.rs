//! PDBs the fuzzer (fuzz/fuzz_targets/pdb_file.rs) found the reader crashing on, kept in
//! tests/hostile_pdbs/: each must open as an error or as symbols, and answer every query,
//! without panicking.

use dumpdiag_symbols::pdb::PdbSymbols;

#[test]
fn hostile_pdbs_are_refused_or_read_without_panicking() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/hostile_pdbs");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        n += 1;
        let Ok(p) = PdbSymbols::open(&e.path()) else {
            continue;
        };
        let functions: Vec<u32> = p.functions().iter().map(|f| f.0).take(64).collect();
        for rva in functions.into_iter().chain([0, 0x1000, u32::MAX]) {
            let _ = p.find(rva);
            let _ = p.frame_data_at(rva as u64);
            let _ = p.global_at(rva);
        }
    }
    assert!(n >= 1);
}
