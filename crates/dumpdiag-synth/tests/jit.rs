//! JIT-compiled code (`Process::code_heap`, `Process::jit_function`) read back by hand: the
//! heap is private executable memory outside every module, the code has its call sites, and a
//! chain through it lays out like any other.

use dumpdiag_synth::process::{PAGE_EXECUTE_READ, PAGE_READWRITE};
use dumpdiag_synth::*;
use dumpdiag_target::{Arch, MemoryExt, Target, MEM_COMMIT, MEM_PRIVATE};

/// ntdll's wait stub called from a JIT-compiled method, called from coreclr, under the start
/// frames: (process, the heap, the chain innermost first).
fn managed_wait(arch: Arch) -> (Process, CodeHeap, Vec<Func>) {
    let mut p = Process::new(arch);
    let host = p.module(Module::new("C:\\app\\orders.exe"));
    let ntdll = p.module(Module::new("C:\\Windows\\System32\\ntdll.dll"));
    let coreclr = p.module(Module::new("C:\\dotnet\\coreclr.dll"));
    let heap = p.code_heap(0x1_0000, PAGE_EXECUTE_READ);
    let wait = p.add_function(ntdll, Function::syscall("NtWaitForSingleObject", 4));
    let method = p.jit_function(heap, Function::new("Program.Main", 0x60).save_fp(true));
    let call_descr = p.function(coreclr, "CallDescrWorkerInternal", 0x80);
    let main = p.function(host, "wmain", 0x80);
    let start = p.function(ntdll, "RtlUserThreadStart", 0x40);
    let chain = vec![wait, method, call_descr, main, start];
    p.thread(1, chain.clone());
    (p, heap, chain)
}

#[test]
fn a_code_heap_is_private_executable_memory_outside_every_module() {
    for arch in [Arch::Amd64, Arch::X86] {
        let (p, heap, chain) = managed_wait(arch);
        let method = chain[1];
        assert!(heap.contains(method.addr) && method.addr % 16 == 0);
        let t = p.build();
        assert!(t.module_at(method.addr).is_none(), "{arch:?}");
        let r = t
            .region_at(method.addr)
            .expect("the heap is in the MemoryInfoList");
        assert_eq!(
            (r.base, r.state, r.kind, r.protect),
            (heap.base, MEM_COMMIT, MEM_PRIVATE, PAGE_EXECUTE_READ),
            "{arch:?}"
        );
        let mem = t.memory();
        // push rbp / push ebp; mov ebp, esp: the frame pointer is saved as asked.
        let prolog = mem.read_bytes(method.addr, 3);
        match arch {
            Arch::Amd64 => assert_eq!(prolog[..2], [0x55, 0x48], "{arch:?}"),
            _ => assert_eq!(prolog, [0x55, 0x8b, 0xec], "{arch:?}"),
        }
        // The wait returns after the method's `call [slot]`, and the slot holds the stub.
        let frames = t.frames(0);
        assert_eq!(frames[1].ip, method.call_site(0));
        assert_eq!(mem.read_bytes(method.call_instruction(0), 2), [0xff, 0x15]);
        let slot = method.end();
        assert_eq!(mem.read_ptr(slot, p.ptr()), Some(chain[0].addr), "{arch:?}");
        // The method's return address, in its caller's frame, points after coreclr's call.
        assert_eq!(
            mem.read_ptr(frames[1].return_slot, p.ptr()),
            Some(frames[2].ip)
        );
        assert_eq!(frames[1].return_address, chain[2].call_site(0));
    }
}

#[test]
fn a_jit_function_calls_its_neighbours_directly() {
    let mut p = Process::new(Arch::Amd64);
    let heap = p.code_heap(0x1000, PAGE_EXECUTE_READ);
    let inner = p.jit_function(heap, Function::new("Inner", 0x40).leaf());
    let outer = p.jit_function(heap, Function::new("Outer", 0x60));
    p.thread(1, [inner, outer]);
    let t = p.build();
    // nop; call rel32 to Inner.
    let call = t.memory().read_bytes(outer.call_instruction(0), 6);
    assert_eq!(call[..2], [0x90, 0xe8]);
    let rel = i32::from_le_bytes(call[2..6].try_into().unwrap()) as i64;
    assert_eq!((outer.call_site(0) as i64 + rel) as u64, inner.addr);
}

#[test]
fn a_code_heap_takes_the_protection_it_is_given() {
    let mut p = Process::new(Arch::X86);
    let data = p.code_heap(0x2000, PAGE_READWRITE);
    let f = p.jit_function(data, Function::new("Stub", 0x40));
    let t = p.build();
    let r = t.region_at(f.addr).unwrap();
    assert_eq!((r.protect, r.size), (PAGE_READWRITE, 0x2000));
    // Captured all the same: the code is there to read (push ebp of an EBP frame).
    assert_eq!(t.memory().read_bytes(f.addr, 1), [0x55]);
}
