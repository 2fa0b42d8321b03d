//! What the diagnosis tests build beyond an ordinary process, read back by hand: heap segments
//! (the headers a grown NT heap leaves), the heap manager's failure record, a dump without a
//! MemoryInfoList, a FunctionTable descriptor for a code heap, and handle information in the
//! layouts of both writers' bitnesses.

use dumpdiag_synth::process::{PAGE_EXECUTE_READ, PAGE_READWRITE};
use dumpdiag_synth::*;
use dumpdiag_target::{Arch, MemoryExt, Target, MEM_COMMIT, MEM_PRIVATE, MEM_RESERVE};

#[test]
fn a_heap_segment_is_its_own_allocation_pointing_back_to_its_heap() {
    // _HEAP_SEGMENT: SegmentSignature at +0x10 / +0x8, Heap at +0x28 / +0x18.
    for (arch, sig_at, heap_at) in [(Arch::Amd64, 0x10, 0x28), (Arch::X86, 0x8, 0x18)] {
        let mut p = Process::new(arch);
        let heap = p.heap(0x10_0000, 0x1_0000);
        let segment = p.heap_segment(heap, 0x40_0000, 0x20_0000);
        let ptr = p.ptr();
        let t = p.build();
        let mem = t.memory();
        assert_eq!(
            mem.read_u32(segment + sig_at),
            Some(0xffee_ffee),
            "{arch:?}"
        );
        assert_eq!(mem.read_ptr(segment + heap_at, ptr), Some(heap), "{arch:?}");
        // The heap's own first segment points to itself.
        assert_eq!(mem.read_ptr(heap + heap_at, ptr), Some(heap), "{arch:?}");
        let of_segment: Vec<_> = t
            .regions()
            .iter()
            .filter(|r| r.allocation_base == segment)
            .collect();
        assert_eq!(of_segment.len(), 2, "{arch:?}: {of_segment:#?}");
        assert_eq!(
            (of_segment[0].state, of_segment[0].kind, of_segment[0].size),
            (MEM_COMMIT, MEM_PRIVATE, 0x20_0000)
        );
        assert_eq!(
            (of_segment[1].state, of_segment[1].size),
            (MEM_RESERVE, 0x20_0000)
        );
        // Committed memory is captured.
        assert_eq!(mem.read_u32(segment + 0x1f_fffc), Some(0));
    }
}

#[test]
fn the_heap_failure_record_has_the_size_and_offsets_of_its_bitness() {
    for (arch, size, heap_at, address_at) in [
        (Arch::Amd64, 0x6d0, 0x10, 0x18),
        (Arch::X86, 0x3d0, 0xc, 0x10),
    ] {
        let p = Process::new(arch);
        let b = p.heap_failure_bytes(8, 0x0300_0000, 0x0300_1230);
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
        assert_eq!(b.len(), size, "{arch:?}");
        assert_eq!((u32_at(0), u32_at(4), u32_at(8)), (1, size as u32, 8));
        assert_eq!(u32_at(heap_at), 0x0300_0000, "{arch:?}");
        assert_eq!(u32_at(address_at), 0x0300_1230, "{arch:?}");
    }
}

/// The stream types in the MDMP directory.
fn stream_types(dump: &[u8]) -> Vec<u32> {
    let u32_at = |o: usize| u32::from_le_bytes(dump[o..o + 4].try_into().unwrap());
    let (count, dir) = (u32_at(8) as usize, u32_at(12) as usize);
    (0..count).map(|i| u32_at(dir + 12 * i)).collect()
}

#[test]
fn a_dump_without_memory_info_lists_no_regions_but_keeps_its_memory() {
    const MEMORY_INFO_LIST: u32 = 16;
    let mut p = Process::new(Arch::Amd64);
    let app = p.module(Module::new("C:\\app\\app.exe"));
    let main = p.function(app, "main", 0x40);
    p.thread(1, [main]);
    let block = p.heap_alloc(p.process_heap(), 0x20);
    p.write_u32(block, 0x1234_5678);
    let with = p.build();
    assert!(!with.regions().is_empty());
    assert!(stream_types(&with.minidump()).contains(&MEMORY_INFO_LIST));
    p.no_memory_info();
    let without = p.build();
    assert!(without.regions().is_empty());
    assert_eq!(without.facts().flags & 0x800, 0);
    assert_eq!(without.memory().read_u32(block), Some(0x1234_5678));
    assert!(!stream_types(&without.minidump()).contains(&MEMORY_INFO_LIST));
}

#[test]
fn a_function_table_describes_a_code_heap_and_its_unwind_data() {
    let mut p = Process::new(Arch::Amd64);
    let heap = p.code_heap(0x1_0000, PAGE_EXECUTE_READ);
    let leaf = p.jit_function(heap, Function::new("Stub", 0x20).leaf());
    let method = p.jit_function(heap, Function::new("Orders.Total", 0x80).locals(0x30));
    p.function_table(heap);
    let t = p.build();
    let tables = &t.extras().function_tables;
    assert_eq!(tables.len(), 1);
    let ft = &tables[0];
    assert_eq!(
        (ft.minimum_address, ft.maximum_address, ft.base_address),
        (heap.base, heap.base + heap.size, heap.base)
    );
    assert_eq!(ft.entry_count, 2);
    let entry = |i: usize| -> [u32; 3] {
        let e = &ft.entries[12 * i..12 * i + 12];
        [0, 4, 8].map(|o| u32::from_le_bytes(e[o..o + 4].try_into().unwrap()))
    };
    let mem = t.memory();
    for (i, f) in [leaf, method].iter().enumerate() {
        let [begin, end, info] = entry(i);
        assert_eq!(heap.base + begin as u64, f.addr);
        assert_eq!(heap.base + end as u64, f.end());
        // UNWIND_INFO version 1, in the heap after the code.
        let at = heap.base + info as u64;
        assert!(at >= method.end() && heap.contains(at));
        assert_eq!(mem.read_u8(at), Some(1));
    }
    // Orders.Total's prolog is `sub rsp, 0x38`: one UWOP_ALLOC_SMALL code.
    let info = heap.base + entry(1)[2] as u64;
    assert_eq!(mem.read_bytes(info, 6), [1, 4, 1, 0, 4, 0x62]);
}

#[test]
#[should_panic(expected = "x64")]
fn a_function_table_is_x64_only() {
    let mut p = Process::new(Arch::X86);
    let heap = p.code_heap(0x1_0000, PAGE_READWRITE);
    p.function_table(heap);
}

#[test]
fn handle_information_comes_in_both_writers_layouts() {
    // THREAD_BASIC_INFORMATION of a 32-bit writer: 28 bytes, ClientId at 8 and 12.
    let (kind, b) = ObjectInfo::thread_32(0x103, 0x0030_2000, 0x1a2c, 0xe4).encode();
    assert_eq!((kind, b.len()), (handles::MINI_THREAD_INFORMATION_1, 28));
    assert_eq!(
        &b[..16],
        &[3, 1, 0, 0, 0, 0x20, 0x30, 0, 0x2c, 0x1a, 0, 0, 0xe4, 0, 0, 0]
    );
    // The 64-bit writer's: 48 bytes, ClientId at 16 and 24.
    let (_, b) = ObjectInfo::Thread {
        exit_status: 0x103,
        teb: 0x2000,
        process_id: 0x1a2c,
        thread_id: 0xe4,
    }
    .encode();
    assert_eq!(b.len(), 48);
    assert_eq!(b[24], 0xe4);
    // A mutant's owner as a CLIENT_ID of 8-byte handles.
    let (kind, b) = ObjectInfo::mutant_owner_64(0x1a2c, 0xe4).encode();
    assert_eq!((kind, b.len()), (handles::MINI_MUTANT_INFORMATION_2, 16));
    assert_eq!((b[0], b[1], b[8]), (0x2c, 0x1a, 0xe4));
}
