//! Any bytes as a Breakpad .sym file: index them, query every lookup at addresses the text
//! names (and the edges of the address space), then walk a synthetic thread whose
//! KERNELBASE frame can only be unwound by this file's STACK CFI (x64) or STACK WIN (x86)
//! records.
#![no_main]
use std::sync::OnceLock;

use dumpdiag_symbols::BreakpadSymbols;
use dumpdiag_synth::{Function, Module, Process, SymbolStore};
use dumpdiag_target::Arch;
use libfuzzer_sys::fuzz_target;

/// An x64 and an x86 process whose KERNELBASE image is not in the dump, with their symbol
/// stores (KERNELBASE's .sym is replaced by each input).
struct Walk {
    dump: Vec<u8>,
    store: SymbolStore,
    kernelbase_sym: std::path::PathBuf,
}

fn walks() -> &'static [Walk] {
    static W: OnceLock<Vec<Walk>> = OnceLock::new();
    W.get_or_init(|| {
        [Arch::Amd64, Arch::X86]
            .into_iter()
            .map(|arch| {
                let mut p = Process::new(arch);
                let ntdll = p.module(Module::new("C:\\Windows\\System32\\ntdll.dll"));
                let kb =
                    p.module(Module::new("C:\\Windows\\System32\\KERNELBASE.dll").not_in_dump());
                let app = p.module(Module::new("C:\\app\\app.exe"));
                let wait = p.add_function(ntdll, Function::syscall("NtWaitForSingleObject", 4));
                let start = p.function(ntdll, "RtlUserThreadStart", 0x40);
                let wait_ex = p.function(kb, "WaitForSingleObjectEx", 0x80);
                let main = p.function(app, "main", 0x60);
                p.thread(0x1234, [wait, wait_ex, main, start]);
                let target = p.build();
                let store = target.symbol_store();
                let file = target
                    .symbol_files()
                    .iter()
                    .find(|f| f.module.ends_with("KERNELBASE.dll"))
                    .expect("KERNELBASE has a symbol file");
                let kernelbase_sym = file.store_path(store.path());
                Walk {
                    dump: target.minidump(),
                    store,
                    kernelbase_sym,
                }
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let s = BreakpadSymbols::parse(&text);
    let mut rvas = vec![0, 1, 0x1000, u64::MAX, u64::MAX - 1];
    for w in text.split_whitespace().take(64) {
        if let Ok(v) = u64::from_str_radix(w, 16) {
            rvas.extend([
                v,
                v.wrapping_add(1),
                v.wrapping_sub(1),
                v.wrapping_add(0x10),
            ]);
        }
    }
    for f in s.funcs.iter().take(16) {
        rvas.extend([f.address, f.address.wrapping_add(f.size / 2)]);
    }
    for &rva in &rvas {
        let _ = s.lookup(rva);
        let _ = s.in_func(rva);
        let _ = s.stack_win(rva);
        let _ = s.cfi_rules(rva);
    }
    let _ = s.symbols().take(1024).count();
    let _ = s.has_cfi();

    // The same bytes as KERNELBASE's symbols under a walk (the file as written, not as text).
    for w in walks() {
        if std::fs::write(&w.kernelbase_sym, data).is_err() {
            return;
        }
        let dump = dumpdiag_mdmp::MdmpTarget::from_bytes("sym.dmp", w.dump.clone())
            .expect("the synthetic dump opens");
        let mut session = dumpdiag_engine::Session::new(Box::new(dump));
        session.set_symbol_path(&w.store.symbol_path());
        for c in ["~*kv", "lm", "ub @$ip", "dps @$csp L20"] {
            let _ = session.execute(c);
        }
    }
});
