//! No public ARM64 dump is in the corpus, so this test writes a minimal but well-formed one
//! (header, SystemInfo with PROCESSOR_ARCHITECTURE_ARM64, one thread with an ARM64 CONTEXT, one
//! module) byte by byte, following minidumpapiset.h, and checks it opens and lists both.

use dumpdiag_target::{Arch, Target};

fn u16le(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn u32le(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn u64le(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_le_bytes());
}

fn arm64_dump() -> Vec<u8> {
    const HEADER: u32 = 32;
    const DIR: u32 = HEADER;
    let sysinfo_rva = DIR + 3 * 12;
    let threads_rva = sysinfo_rva + 56;
    let context_rva = threads_rva + 4 + 48;
    let modules_rva = context_rva + 912;
    let name_rva = modules_rva + 4 + 108;
    let name: Vec<u16> = "C:\\Windows\\System32\\notepad.exe".encode_utf16().collect();

    let mut d = Vec::new();
    u32le(&mut d, 0x504d_444d); // MDMP
    u32le(&mut d, 0xa793);
    u32le(&mut d, 3);
    u32le(&mut d, DIR);
    u32le(&mut d, 0);
    u32le(&mut d, 0x6000_0000);
    u64le(&mut d, 0);
    for (ty, size, rva) in [(7u32, 56u32, sysinfo_rva), (3, 4 + 48, threads_rva), (4, 4 + 108, modules_rva)] {
        u32le(&mut d, ty);
        u32le(&mut d, size);
        u32le(&mut d, rva);
    }
    // SystemInfo: ARM64 (12), Windows 10 build 22621.
    u16le(&mut d, 12);
    u16le(&mut d, 8);
    u16le(&mut d, 0);
    d.push(8);
    d.push(1);
    u32le(&mut d, 10);
    u32le(&mut d, 0);
    u32le(&mut d, 22621);
    u32le(&mut d, 2);
    u32le(&mut d, 0);
    u16le(&mut d, 0x100);
    u16le(&mut d, 0);
    d.extend_from_slice(&[0u8; 24]);
    // ThreadList: one thread.
    u32le(&mut d, 1);
    u32le(&mut d, 0x1a2b);
    u32le(&mut d, 0);
    u32le(&mut d, 0x20);
    u32le(&mut d, 0);
    u64le(&mut d, 0x7ff6_0000_1000);
    u64le(&mut d, 0);
    u32le(&mut d, 0);
    u32le(&mut d, 0);
    u32le(&mut d, 912);
    u32le(&mut d, context_rva);
    // ARM64 CONTEXT: flags, cpsr, x0..x28, fp, lr, sp, pc, then floating point and debug state.
    let ctx_start = d.len();
    u32le(&mut d, 0x0040_0003);
    u32le(&mut d, 0x6000_0000);
    for i in 0..29u64 {
        u64le(&mut d, 0x1000 + i);
    }
    u64le(&mut d, 0x0000_00aa_bbcc_0000); // fp
    u64le(&mut d, 0x7ff7_1234_5678); // lr
    u64le(&mut d, 0x0000_00aa_bbcc_1000); // sp
    u64le(&mut d, 0x7ff7_0000_2000); // pc
    d.resize(ctx_start + 912, 0);
    // ModuleList: one module.
    u32le(&mut d, 1);
    u64le(&mut d, 0x7ff7_0000_0000);
    u32le(&mut d, 0x40000);
    u32le(&mut d, 0);
    u32le(&mut d, 0x5f00_0000);
    u32le(&mut d, name_rva);
    d.extend_from_slice(&[0u8; 52 + 16 + 16]);
    u32le(&mut d, (name.len() * 2) as u32);
    for u in name {
        u16le(&mut d, u);
    }
    u16le(&mut d, 0);
    d
}

#[test]
fn an_arm64_dump_opens_and_lists_threads_and_modules() {
    let t = dumpdiag_mdmp::MdmpTarget::from_bytes("arm64.dmp", arm64_dump()).expect("opens");
    assert_eq!(t.facts().arch, Arch::Arm64);
    assert_eq!(t.threads().len(), 1);
    assert_eq!(t.threads()[0].id, 0x1a2b);
    assert_eq!(t.modules().len(), 1);
    assert_eq!(t.modules()[0].file_name(), "notepad.exe");
    let c = t.thread_context(0).expect("ARM64 context");
    assert_eq!(c.ip(), 0x7ff7_0000_2000);
    assert_eq!(c.get("lr"), Some(0x7ff7_1234_5678));
    assert_eq!(c.get("x28"), Some(0x1000 + 28));
    let mut s = dumpdiag_engine::Session::new(Box::new(t));
    let threads = s.execute("~").text;
    assert!(threads.contains("Id: 0.1a2b"), "{threads}");
    let lm = s.execute("lm").text;
    assert!(lm.contains("00007ff7`00000000 00007ff7`00040000   notepad"), "{lm}");
    let regs = s.execute("r").text;
    assert!(regs.contains("pc=00007ff700002000"), "{regs}");
    assert!(s.execute("vertarget").text.contains("ARM64"));
}
