//! Bad symbol files are normal input too: a synthetic process whose KERNELBASE image is left
//! out of the dump, so its frames unwind by the records of a Breakpad `.sym` (STACK CFI on
//! x64, STACK WIN on x86), walked with those records made hostile. The walk must finish
//! without panicking and go on past the frame the records could not unwind.

use dumpdiag_engine::Session;
use dumpdiag_synth::*;
use dumpdiag_target::Arch;

/// A waiting thread: NtWaitForSingleObject ← KERNELBASE!WaitForSingleObjectEx ← main ←
/// BaseThreadInitThunk ← RtlUserThreadStart, with KERNELBASE's image not in the dump.
fn process(arch: Arch) -> SynthTarget {
    let mut p = Process::new(arch);
    let ntdll = p.module(Module::new("C:\\Windows\\System32\\ntdll.dll"));
    let kernel32 = p.module(Module::new("C:\\Windows\\System32\\kernel32.dll"));
    let kernelbase = p.module(Module::new("C:\\Windows\\System32\\KERNELBASE.dll").not_in_dump());
    let app = p.module(Module::new("C:\\app\\app.exe"));
    let wait = p.add_function(ntdll, Function::syscall("NtWaitForSingleObject", 4));
    let start = p.function(ntdll, "RtlUserThreadStart", 0x40);
    let thunk = p.function(kernel32, "BaseThreadInitThunk", 0x40);
    let wait_ex = p.function(kernelbase, "WaitForSingleObjectEx", 0x80);
    let main = p.function(app, "main", 0x60);
    p.thread(0x1234, [wait, wait_ex, main, thunk, start]);
    p.build()
}

/// `~*k` over `t`'s dump with its symbol files as `edit` leaves KERNELBASE's.
fn walk_with(t: &SynthTarget, edit: impl Fn(&str) -> String) -> String {
    let mut files = t.symbol_files().to_vec();
    let kb = files
        .iter_mut()
        .find(|f| f.module.ends_with("KERNELBASE.dll"))
        .expect("KERNELBASE has a symbol file");
    let edited = edit(&kb.text);
    assert_ne!(edited, kb.text, "the edit changed nothing");
    kb.text = edited;
    let store = SymbolStore::new(&files).unwrap();
    let dump = dumpdiag_mdmp::MdmpTarget::from_bytes("hostile.dmp", t.minidump()).unwrap();
    let mut s = Session::new(Box::new(dump));
    s.set_symbol_path(&store.symbol_path());
    s.execute("~*k").text
}

/// The rules of the STACK CFI INIT line of `function` (by its FUNC record) replaced by `rules`.
fn replace_cfi(text: &str, function: &str, rules: &str) -> String {
    let rva = text
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[0] == "FUNC" && f.last() == Some(&function)).then(|| f[1].to_string())
        })
        .expect("the function has a FUNC record");
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.splitn(6, ' ').collect();
            if l.starts_with("STACK CFI INIT ") && f[3] == rva {
                format!("STACK CFI INIT {} {} {rules}\n", f[3], f[4])
            } else {
                format!("{l}\n")
            }
        })
        .collect()
}

#[test]
fn a_cfi_rule_longer_than_the_evaluator_cap_does_not_panic() {
    let t = process(Arch::Amd64);
    let long_ra = format!(".cfa: $rsp 8 + .ra: .cfa 8 - ^{}", " 0 +".repeat(600));
    let k = walk_with(&t, |s| replace_cfi(s, "WaitForSingleObjectEx", &long_ra));
    assert!(k.contains("KERNELBASE"), "{k}");
    assert!(
        k.contains("app!main"),
        "the walk goes on past the frame: {k}"
    );
}

#[test]
fn a_cfi_block_naming_a_hundred_thousand_registers_is_refused_at_once() {
    let t = process(Arch::Amd64);
    let mut rules = String::from(".cfa: $rsp 8 + .ra: .cfa 8 - ^");
    for i in 0..100_000 {
        rules.push_str(&format!(" $r{i}: .cfa"));
    }
    let start = std::time::Instant::now();
    let k = walk_with(&t, |s| replace_cfi(s, "WaitForSingleObjectEx", &rules));
    assert!(
        start.elapsed() < std::time::Duration::from_secs(3),
        "took {:?}",
        start.elapsed()
    );
    assert!(
        k.contains("app!main"),
        "the walk goes on past the frame: {k}"
    );
}

/// The STACK WIN record of `function` (by its FUNC record) replaced by `fields` (everything
/// after `STACK WIN`, with `{rva}` and `{size}` filled in).
fn replace_stack_win(text: &str, function: &str, fields: &str) -> String {
    let (rva, size) = text
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[0] == "FUNC" && f.last() == Some(&function))
                .then(|| (f[1].to_string(), f[2].to_string()))
        })
        .expect("the function has a FUNC record");
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            if l.starts_with("STACK WIN ") && f[3] == rva {
                let fields = fields.replace("{rva}", &rva).replace("{size}", &size);
                format!("STACK WIN {fields}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect()
}

#[test]
fn an_fpo_record_whose_sizes_overflow_32_bits_does_not_panic() {
    let t = process(Arch::X86);
    // FPO (type 0) with EBP allocated: locals 0xfffffffe plus 4 bytes of saved registers.
    let k = walk_with(&t, |s| {
        replace_stack_win(
            s,
            "WaitForSingleObjectEx",
            "0 {rva} {size} 0 0 0 4 fffffffe 0 0 1",
        )
    });
    assert!(k.contains("KERNELBASE"), "{k}");
}

#[test]
fn a_symbol_at_an_rva_near_2_64_is_listed_without_overflow() {
    let t = process(Arch::Amd64);
    let mut files = t.symbol_files().to_vec();
    let kb = files
        .iter_mut()
        .find(|f| f.module.ends_with("KERNELBASE.dll"))
        .unwrap();
    kb.text.push_str("FUNC ffffffffffffff00 10 0 far_away\n");
    let store = SymbolStore::new(&files).unwrap();
    let dump = dumpdiag_mdmp::MdmpTarget::from_bytes("far.dmp", t.minidump()).unwrap();
    let mut s = Session::new(Box::new(dump));
    s.set_symbol_path(&store.symbol_path());
    let x = s.execute("x KERNELBASE!*").text;
    assert!(x.contains("KERNELBASE!far_away"), "{x}");
    assert!(x.contains("KERNELBASE!WaitForSingleObjectEx"), "{x}");
}
