//! No public ARM64 dump is in the corpus, so this test writes a minimal but well-formed one
//! (header, SystemInfo with PROCESSOR_ARCHITECTURE_ARM64, one thread with an ARM64 CONTEXT, one
//! module) byte by byte, following minidumpapiset.h, and checks it opens and lists both.

mod common;
use common::Bytes;
use dumpdiag_target::{Arch, Target};

const NAME: &str = "C:\\Windows\\System32\\notepad.exe";

fn arm64_dump() -> Vec<u8> {
    const HEADER: u32 = 32;
    const DIR: u32 = HEADER;
    let sysinfo_rva = DIR + 3 * 12;
    let threads_rva = sysinfo_rva + 56;
    let context_rva = threads_rva + 4 + 48;
    let modules_rva = context_rva + 912;
    let name_rva = modules_rva + 4 + 108;

    let mut d = Bytes::default();
    d.minidump_header(
        0x6000_0000,
        &[
            (7, 56, sysinfo_rva),
            (3, 4 + 48, threads_rva),
            (4, 4 + 108, modules_rva),
        ],
    );
    // SystemInfo: ARM64 (12), Windows 10 build 22621.
    d.system_info(12, 8, 0, 8, 22621);
    // ThreadList: one thread.
    d.u32(1);
    d.u32(0x1a2b);
    d.u32(0);
    d.u32(0x20);
    d.u32(0);
    d.u64(0x7ff6_0000_1000);
    d.u64(0);
    d.u32(0);
    d.u32(0);
    d.u32(912);
    d.u32(context_rva);
    // ARM64 CONTEXT: flags, cpsr, x0..x28, fp, lr, sp, pc, then floating point and debug state.
    let ctx_start = d.len() as usize;
    d.u32(0x0040_0003);
    d.u32(0x6000_0000);
    for i in 0..29u64 {
        d.u64(0x1000 + i);
    }
    d.u64(0x0000_00aa_bbcc_0000); // fp
    d.u64(0x7ff7_1234_5678); // lr
    d.u64(0x0000_00aa_bbcc_1000); // sp
    d.u64(0x7ff7_0000_2000); // pc
    d.pad_to(ctx_start + 912);
    // ModuleList: one module.
    d.u32(1);
    d.u64(0x7ff7_0000_0000);
    d.u32(0x40000);
    d.u32(0);
    d.u32(0x5f00_0000);
    d.u32(name_rva);
    d.bytes(&[0u8; 52 + 16 + 16]);
    d.minidump_string(NAME);
    d.0
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
    assert!(
        lm.contains("00007ff7`00000000 00007ff7`00040000   notepad"),
        "{lm}"
    );
    let regs = s.execute("r").text;
    assert!(regs.contains("pc=00007ff700002000"), "{regs}");
    assert!(s.execute("vertarget").text.contains("ARM64"));
}
