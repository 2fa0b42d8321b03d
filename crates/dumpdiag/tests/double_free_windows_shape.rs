//! Double Free on the stack shape Windows' heap leaves when a block that is not busy is freed
//! again: STATUS_HEAP_CORRUPTION raised by RtlReportCriticalFailure from RtlpLogHeapFailure on
//! the RtlFreeHeap path. Wine's heap fails a second free silently (the double_free fixture) and
//! no public dump holds one, so this test writes the x64 minidump byte by byte (header,
//! SystemInfo, one thread with its stack, the exception, two modules with CodeView records) and
//! a Breakpad symbol store for both modules (FUNC and STACK CFI records), and runs the whole
//! pipeline: reader, symbol store, CFI walker, detectors.

mod common;
use common::Bytes;
use dumpdiag_target::CodeViewRecord;

const APP: u64 = 0x7ff6_1000_0000;
const NTDLL: u64 = 0x7ff8_2000_0000;
const STACK: u64 = 0x0000_00d0_0010_0000;
const STACK_SIZE: u64 = 0x400;
/// Every function's frame: CFA = rsp + 48, return address at CFA - 8.
const FRAME: u64 = 48;

/// (module base, function offset, name) from the top frame down.
const CHAIN: &[(u64, u64, &str)] = &[
    (NTDLL, 0x1000, "RtlReportCriticalFailure"),
    (NTDLL, 0x1100, "RtlpHeapHandleError"),
    (NTDLL, 0x1200, "RtlpHpHeapHandleError"),
    (NTDLL, 0x1300, "RtlpLogHeapFailure"),
    (NTDLL, 0x1400, "RtlpFreeHeapInternal"),
    (NTDLL, 0x1500, "RtlFreeHeap"),
    (APP, 0x1000, "release_buffer"),
    (APP, 0x1100, "main"),
];

fn codeview(guid_byte: u8, pdb: &str) -> (CodeViewRecord, Vec<u8>) {
    let guid = [guid_byte; 16];
    let mut b = Bytes::default();
    b.bytes(b"RSDS")
        .bytes(&guid)
        .u32(1)
        .bytes(pdb.as_bytes())
        .u8(0);
    (
        CodeViewRecord::Pdb70 {
            guid,
            age: 1,
            pdb_name: pdb.into(),
        },
        b.0,
    )
}

/// A Breakpad store with `name.pdb/ID/name.sym` for both modules.
fn symbol_store(dir: &std::path::Path) {
    for (base, stem, guid_byte) in [(NTDLL, "ntdll", 0x11u8), (APP, "heapfail", 0x22)] {
        let (cv, _) = codeview(guid_byte, &format!("{stem}.pdb"));
        let id = cv.pdb_id().unwrap();
        let mut sym = format!("MODULE windows x86_64 {id} {stem}.pdb\n");
        for &(_, off, name) in CHAIN.iter().filter(|c| c.0 == base) {
            sym.push_str(&format!("FUNC {off:x} 80 0 {name}\n"));
            sym.push_str(&format!(
                "STACK CFI INIT {off:x} 80 .cfa: $rsp {FRAME} + .ra: .cfa 8 - ^\n"
            ));
        }
        let at = dir.join(format!("{stem}.pdb")).join(&id);
        std::fs::create_dir_all(&at).unwrap();
        std::fs::write(at.join(format!("{stem}.sym")), sym).unwrap();
    }
}

fn x64_context(rip: u64, rsp: u64) -> Vec<u8> {
    let mut c = Bytes::default();
    c.pad_to(0x30)
        .u32(0x0010_001f)
        .u32(0x1f80)
        .u16(0x33)
        .u16(0x2b)
        .u16(0x2b)
        .u16(0x53)
        .u16(0x2b)
        .u16(0x2b)
        .u32(0x202);
    c.pad_to(0x98)
        .u64(rsp)
        .u64(rsp + 0x100)
        .pad_to(0xf8)
        .u64(rip)
        .pad_to(1232);
    c.0
}

fn double_free_dump() -> Vec<u8> {
    // The stack: return address of frame i (into frame i + 1) at rsp_i + FRAME - 8.
    let mut stack = vec![0u8; STACK_SIZE as usize];
    for (i, &(base, off, _)) in CHAIN.iter().enumerate().skip(1) {
        let slot = (i as u64 * FRAME - 8) as usize;
        stack[slot..slot + 8].copy_from_slice(&(base + off + 0x10).to_le_bytes());
    }
    let rip = CHAIN[0].0 + CHAIN[0].1 + 0x10;
    let context = x64_context(rip, STACK);
    let (_, ntdll_cv) = codeview(0x11, "ntdll.pdb");
    let (_, app_cv) = codeview(0x22, "heapfail.pdb");

    let sysinfo = 32 + 5 * 12;
    let threads = sysinfo + 56;
    let exception = threads + 4 + 48;
    let modules = exception + 168;
    let memory_list = modules + 4 + 2 * 108;
    let context_rva = memory_list + 4 + 16;
    let stack_rva = context_rva + 1232;
    let mut extra = stack_rva + STACK_SIZE as u32;
    let mut blobs: Vec<(u32, Vec<u8>)> = Vec::new();
    let mut place = |bytes: Vec<u8>| {
        let rva = extra;
        extra += bytes.len() as u32;
        blobs.push((rva, bytes));
        rva
    };
    let name_rvas: Vec<u32> = ["C:\\app\\heapfail.exe", "C:\\Windows\\System32\\ntdll.dll"]
        .iter()
        .map(|n| {
            let mut b = Bytes::default();
            b.minidump_string(n);
            place(b.0)
        })
        .collect();
    let cv_rvas = [
        (place(app_cv.clone()), app_cv.len()),
        (place(ntdll_cv.clone()), ntdll_cv.len()),
    ];

    let mut d = Bytes::default();
    d.minidump_header(
        0x6600_0000,
        &[
            (7, 56, sysinfo),
            (3, 4 + 48, threads),
            (6, 168, exception),
            (4, 4 + 2 * 108, modules),
            (5, 4 + 16, memory_list),
        ],
    );
    // SystemInfo: AMD64 (9), Windows 10 build 19045.
    d.system_info(9, 6, 0x9e0a, 4, 19045);
    // ThreadList: the thread, its stack memory and context.
    d.u32(1)
        .u32(0x1d4c)
        .u32(0)
        .u32(0x20)
        .u32(0)
        .u64(0)
        .u64(STACK)
        .u32(STACK_SIZE as u32)
        .u32(stack_rva)
        .u32(1232)
        .u32(context_rva);
    // Exception: STATUS_HEAP_CORRUPTION, non-continuable, the heap as parameter 0.
    d.u32(0x1d4c)
        .u32(0)
        .u32(0xc000_0374)
        .u32(1)
        .u64(0)
        .u64(rip)
        .u32(1)
        .u32(0);
    for i in 0..15 {
        d.u64(if i == 0 { 0x0000_0204_a4e0_0000 } else { 0 });
    }
    d.u32(1232).u32(context_rva);
    // ModuleList: the image first, then ntdll.
    d.u32(2);
    for (i, (base, size)) in [(APP, 0x20000u32), (NTDLL, 0x1f0000)]
        .into_iter()
        .enumerate()
    {
        let start = d.len() as usize;
        d.u64(base)
            .u32(size)
            .u32(0)
            .u32(0x5f00_0000)
            .u32(name_rvas[i])
            .pad_to(start + 24 + 52);
        d.u32(cv_rvas[i].1 as u32)
            .u32(cv_rvas[i].0)
            .pad_to(start + 108);
    }
    // MemoryList: the stack.
    d.u32(1).u64(STACK).u32(STACK_SIZE as u32).u32(stack_rva);
    assert_eq!(d.len(), context_rva);
    d.bytes(&context).bytes(&stack);
    for (rva, b) in blobs {
        assert_eq!(d.len(), rva);
        d.bytes(&b);
    }
    d.0
}

#[test]
fn a_heap_failure_on_the_free_path_is_reported_as_double_free() {
    let store = std::env::temp_dir().join(format!("dumpdiag-double-free-{}", std::process::id()));
    symbol_store(&store);
    let t =
        dumpdiag_mdmp::MdmpTarget::from_bytes("heapfail.dmp", double_free_dump()).expect("opens");
    let mut s = dumpdiag_engine::Session::new(Box::new(t));
    s.set_symbol_path(store.to_str().unwrap());
    let report = dumpdiag_analysis::analyze(&s);
    let _ = std::fs::remove_dir_all(&store);

    // The walk itself: every frame named, none by scanning.
    let names: Vec<String> = report.threads[0]
        .frames
        .iter()
        .map(|f| f.function.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        CHAIN.iter().map(|c| c.2.to_string()).collect::<Vec<_>>()
    );
    let f = report
        .patterns
        .iter()
        .find(|f| f.name == "Double Free")
        .unwrap_or_else(|| panic!("no Double Free: {:?}", report.patterns));
    assert_eq!(
        f.summary,
        "the heap failed while freeing a block for heapfail!release_buffer"
    );
    assert!(
        f.evidence.contains(
            &"frame 00: ntdll!RtlReportCriticalFailure reports a heap failure".to_string()
        ),
        "{:?}",
        f.evidence
    );
    assert!(
        f.evidence
            .contains(&"frame 04: ntdll!RtlpFreeHeapInternal frees the block".to_string()),
        "{:?}",
        f.evidence
    );
    assert!(report
        .patterns
        .iter()
        .any(|f| f.name == "Dynamic Memory Corruption (Process Heap)"));
}
