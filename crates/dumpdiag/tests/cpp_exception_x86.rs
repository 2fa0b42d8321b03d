//! The C++ exception decoder on x86, where ThrowInfo → CatchableTypeArray → CatchableType →
//! TypeDescriptor are plain 32-bit pointers (x64 uses image-relative RVAs, shown by the
//! cpp_exception fixture). 32-bit Wine cannot be installed here and no public x86 dump throws a
//! C++ exception, so this test writes an x86 minidump byte by byte, following minidumpapiset.h
//! and the MSVC x86 EH layout: one thread, an e06d7363 exception stream with magic 0x19930520,
//! and the image memory holding the throw information for `std::runtime_error` (catchable also
//! as `std::exception`).

mod common;
use common::Bytes;

const IMAGE: u64 = 0x0040_0000;
const EH_DATA: u64 = 0x0040_3000;
const IMAGE_NAME: &str = "C:\\app\\thrower.exe";

/// The throw information as an x86 MSVC image lays it out at `EH_DATA`.
fn eh_data() -> Vec<u8> {
    let mut b = Bytes::default();
    // ThrowInfo: attributes, pmfnUnwind, pForwardCompat, pCatchableTypeArray.
    b.u32(0).u32(0).u32(0).u32((EH_DATA + 0x10) as u32);
    // CatchableTypeArray: count, then pointers to CatchableTypes.
    b.u32(2)
        .u32((EH_DATA + 0x20) as u32)
        .u32((EH_DATA + 0x40) as u32)
        .pad_to(0x20);
    for (at, td) in [(0x20usize, 0x60u64), (0x40, 0x90)] {
        // CatchableType: properties, pType, thisDisplacement {mdisp, pdisp, vdisp}, size, copy.
        b.pad_to(at)
            .u32(0)
            .u32((EH_DATA + td) as u32)
            .u32(0)
            .u32(u32::MAX)
            .u32(0)
            .u32(12)
            .u32(0);
    }
    for (at, name) in [
        (0x60usize, ".?AVruntime_error@std@@"),
        (0x90, ".?AVexception@std@@"),
    ] {
        // TypeDescriptor: vftable, spare, decorated name.
        b.pad_to(at)
            .u32((IMAGE + 0x2000) as u32)
            .u32(0)
            .bytes(name.as_bytes())
            .u8(0);
    }
    b.pad_to(0xc0);
    b.0
}

fn x86_cpp_exception_dump() -> Vec<u8> {
    let sysinfo = 32 + 5 * 12;
    let threads = sysinfo + 56;
    let context = threads + 4 + 48;
    let exception = context + 716;
    let modules = exception + 168;
    let name = modules + 4 + 108;
    let memory_list = name + 4 + 2 * IMAGE_NAME.encode_utf16().count() as u32 + 2;
    let memory = memory_list + 4 + 16;
    let eh = eh_data();

    let mut d = Bytes::default();
    d.minidump_header(
        0x6000_0000,
        &[
            (7, 56, sysinfo),
            (3, 4 + 48, threads),
            (6, 168, exception),
            (4, 4 + 108, modules),
            (5, 4 + 16, memory_list),
        ],
    );
    // SystemInfo: x86 (0), Windows 10 build 19045.
    d.system_info(0, 6, 0x9e0a, 4, 19045);
    // ThreadList: one thread, no stack memory.
    d.u32(1)
        .u32(0x2a10)
        .u32(0)
        .u32(0x20)
        .u32(0)
        .u64(0x0030_0000)
        .u64(0x0019_f000)
        .u32(0)
        .u32(0)
        .u32(716)
        .u32(context);
    // x86 CONTEXT: flags, then Eip at +184 inside the image, Esp at +196.
    let c = d.len() as usize;
    d.u32(0x0001_0007)
        .pad_to(c + 184)
        .u32((IMAGE + 0x1234) as u32)
        .u32(0x23)
        .u32(0x202)
        .u32(0x0019_fe00)
        .u32(0x2b)
        .pad_to(c + 716);
    // Exception stream: thread, MINIDUMP_EXCEPTION (3 parameters: magic, object, ThrowInfo), context.
    d.u32(0x2a10)
        .u32(0)
        .u32(0xe06d_7363)
        .u32(1)
        .u64(0)
        .u64(IMAGE + 0x1234)
        .u32(3)
        .u32(0);
    let params = [0x1993_0520u64, 0x0019_ff00, EH_DATA];
    for i in 0..15 {
        d.u64(params.get(i).copied().unwrap_or(0));
    }
    d.u32(716).u32(context);
    // ModuleList: the image.
    d.u32(1)
        .u64(IMAGE)
        .u32(0x10000)
        .u32(0)
        .u32(0x6500_0000)
        .u32(name)
        .pad_to((modules + 4 + 108) as usize);
    d.minidump_string(IMAGE_NAME);
    // MemoryList: the EH data.
    d.u32(1).u64(EH_DATA).u32(eh.len() as u32).u32(memory);
    d.bytes(&eh);
    d.0
}

#[test]
fn thrown_types_are_decoded_from_x86_throw_info() {
    let t = dumpdiag_mdmp::MdmpTarget::from_bytes("thrower-x86.dmp", x86_cpp_exception_dump())
        .expect("opens");
    let s = dumpdiag_engine::Session::new(Box::new(t));
    let report = dumpdiag_analysis::analyze(&s.analysis_input());
    let f = report
        .patterns
        .iter()
        .find(|f| f.name() == "C++ Exception")
        .expect("C++ Exception reported");
    assert_eq!(
        f.summary,
        "unhandled C++ exception: class std::runtime_error"
    );
    assert_eq!(
        f.evidence()[..2],
        [
            "catchable as class std::runtime_error".to_string(),
            "catchable as class std::exception".to_string()
        ]
    );
    assert_eq!(f.confidence(), dumpdiag_analysis::Confidence::High);
    assert_eq!(
        report.exception.as_ref().map(|e| e.code.as_str()),
        Some("0xe06d7363")
    );
}
