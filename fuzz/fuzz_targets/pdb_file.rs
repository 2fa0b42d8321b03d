//! Any bytes as a PDB file: open them (PdbSymbols opens paths, so they go to a temporary
//! file first), then resolve addresses, list functions and read frame data and globals.
#![no_main]
use dumpdiag_symbols::pdb::PdbSymbols;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("dumpdiag-fuzz-{}.pdb", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let Ok(p) = PdbSymbols::open(&path) else {
        return;
    };
    let mut rvas: Vec<u32> = vec![0, 1, 0x1000, 0x1010, 0x2000, u32::MAX - 1, u32::MAX];
    let functions = p.functions();
    for f in functions.iter().take(32) {
        rvas.extend([f.0, f.0.wrapping_add(1), f.0.wrapping_add(0x10)]);
    }
    for w in p.frame_data.iter().take(16) {
        rvas.push(w.address as u32);
    }
    for g in p.globals.iter().take(16) {
        rvas.push(g.0);
    }
    for &rva in &rvas {
        if let Some(f) = p.find(rva) {
            let _ = (f.start_rva, f.end_rva, f.frames.len());
        }
        let _ = p.frame_data_at(rva as u64);
        let _ = p.global_at(rva);
    }
});
