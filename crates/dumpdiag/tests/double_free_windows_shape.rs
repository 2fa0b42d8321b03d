//! Double Free on the stack shape Windows' heap leaves when a block that is not busy is freed
//! again: STATUS_HEAP_CORRUPTION raised by RtlReportCriticalFailure from RtlpLogHeapFailure on
//! the RtlFreeHeap path. Wine's heap fails a second free silently (the double_free fixture) and
//! no public dump holds one, so this test describes the process with the synthetic builder (x64,
//! one thread in that chain, the exception, two modules whose images are left out of the dump)
//! and runs the whole pipeline on its minidump: reader, Breakpad symbol store (FUNC and STACK
//! CFI records), CFI walker, detectors.

use dumpdiag_synth::{Exception, Function, Module, Process};
use dumpdiag_target::Arch;

/// The chain from the top frame down: (in ntdll?, function name).
const CHAIN: &[(bool, &str)] = &[
    (true, "RtlReportCriticalFailure"),
    (true, "RtlpHeapHandleError"),
    (true, "RtlpHpHeapHandleError"),
    (true, "RtlpLogHeapFailure"),
    (true, "RtlpFreeHeapInternal"),
    (true, "RtlFreeHeap"),
    (false, "release_buffer"),
    (false, "main"),
];

/// `_HEAP_FAILURE_TYPE` values (Windows 10/11): block_not_busy, entry_corruption.
const BLOCK_NOT_BUSY: u32 = 8;
const ENTRY_CORRUPTION: u32 = 3;
/// The freed block the failure record names.
const BLOCK: u64 = 0x0000_01d0_0004_5a70;

/// The minidump, and the Breakpad store of both modules (removed when dropped), of a process
/// that Windows' heap terminated with a failure record of `failure_type`.
fn double_free_dump(failure_type: u32) -> (Vec<u8>, dumpdiag_synth::SymbolStore) {
    let mut p = Process::new(Arch::Amd64);
    // Only the Breakpad files describe the code: the walk must go by their CFI.
    let app = p.module(Module::new("C:\\app\\heapfail.exe").not_in_dump());
    let ntdll = p.module(Module::new("C:\\Windows\\System32\\ntdll.dll").not_in_dump());
    let chain: Vec<_> = CHAIN
        .iter()
        .map(|&(in_ntdll, name)| {
            let m = if in_ntdll { ntdll } else { app };
            p.add_function(m, Function::new(name, 0x80))
        })
        .collect();
    p.thread(0x1d4c, chain);
    // ntdll!RtlpHeapFailureInfo (_HEAP_FAILURE_INFORMATION, x64 Windows 10/11: Version +0,
    // StructureSize 0x6d0 +4, FailureType +8, HeapAddress +0x10, Address +0x18), which
    // STATUS_HEAP_CORRUPTION's only parameter points to.
    let record = p.alloc(0x1000, 0x04);
    p.write_u32(record, 1)
        .write_u32(record + 4, 0x6d0)
        .write_u32(record + 8, failure_type);
    let heap = p.process_heap();
    p.write_u64(record + 0x10, heap)
        .write_u64(record + 0x18, BLOCK);
    let mut e = Exception::new(0x1d4c, 0xc000_0374);
    e.flags = 1;
    e.parameters = vec![record];
    p.exception(e);
    let t = p.build();
    (t.minidump(), t.symbol_store())
}

#[test]
fn a_heap_failure_on_the_free_path_is_reported_as_double_free() {
    let (dump, store) = double_free_dump(BLOCK_NOT_BUSY);
    let t = dumpdiag_mdmp::MdmpTarget::from_bytes("heapfail.dmp", dump).expect("opens");
    let mut s = dumpdiag_engine::Session::new(Box::new(t));
    s.set_symbol_path(&store.symbol_path());
    let report = dumpdiag_analysis::analyze(&s.analysis_input());

    // The walk itself: every frame named, none by scanning.
    let names: Vec<String> = report.threads[0]
        .frames
        .iter()
        .map(|f| f.function.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        CHAIN.iter().map(|c| c.1.to_string()).collect::<Vec<_>>()
    );
    let f = report
        .patterns
        .iter()
        .find(|f| f.name() == "Double Free")
        .unwrap_or_else(|| panic!("no Double Free: {:?}", report.patterns));
    assert_eq!(
        f.summary,
        format!("block {BLOCK:#x} was freed twice (the second time by heapfail!release_buffer)")
    );
    assert!(
        f.evidence()
            .iter()
            .any(|e| e.starts_with("heap failure 8 (block_not_busy) for block")),
        "{:?}",
        f.evidence()
    );
    assert!(
        f.evidence()
            .iter()
            .any(|e| e.contains("frame 04: ntdll!RtlpFreeHeapInternal")),
        "{:?}",
        f.evidence()
    );
    assert!(report
        .patterns
        .iter()
        .any(|f| f.name() == "Dynamic Memory Corruption (Process Heap)"));
}

/// The same termination for a damaged block header (entry_corruption) found while freeing: heap
/// corruption, not a double free.
#[test]
fn a_corruption_found_while_freeing_is_no_double_free() {
    let (dump, store) = double_free_dump(ENTRY_CORRUPTION);
    let t = dumpdiag_mdmp::MdmpTarget::from_bytes("heapfail.dmp", dump).expect("opens");
    let mut s = dumpdiag_engine::Session::new(Box::new(t));
    s.set_symbol_path(&store.symbol_path());
    let report = dumpdiag_analysis::analyze(&s.analysis_input());
    assert!(
        !report.patterns.iter().any(|f| f.name() == "Double Free"),
        "{:#?}",
        report.patterns
    );
    let c = report
        .patterns
        .iter()
        .find(|f| f.name() == "Dynamic Memory Corruption (Process Heap)")
        .expect("heap corruption");
    assert!(c.summary.contains("(entry_corruption at "), "{}", c.summary);
}
