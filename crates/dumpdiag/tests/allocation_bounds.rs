//! No allocation sized by a count read from a dump: this test binary's allocator records the
//! largest single allocation (and refuses any past 1 GiB, so a regression fails at once
//! instead of filling memory) while the command battery and the analysis run over dumps with
//! hostile sizes in them.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use dumpdiag_engine::Session;
use dumpdiag_synth::*;
use dumpdiag_target::{Arch, MemoryExt, Target};

mod common;

struct Recording;

static LARGEST: AtomicUsize = AtomicUsize::new(0);
const REFUSED_ABOVE: usize = 1 << 30;

// SAFETY: every call is handed to the system allocator unchanged (or refused with null, which
// callers handle as an allocation failure).
unsafe impl GlobalAlloc for Recording {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        if layout.size() > REFUSED_ABOVE {
            return std::ptr::null_mut();
        }
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        if layout.size() > REFUSED_ABOVE {
            return std::ptr::null_mut();
        }
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        if new_size > REFUSED_ABOVE {
            return std::ptr::null_mut();
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Recording = Recording;

/// The tests of this binary one at a time: they share the record.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The largest single allocation made while the battery and the analysis run over `dump`.
fn largest_allocation_over(dump: Vec<u8>) -> usize {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let t = dumpdiag_mdmp::MdmpTarget::from_bytes("bounds.dmp", dump).expect("the dump opens");
    let mut s = Session::new(Box::new(t));
    LARGEST.store(0, Ordering::Relaxed);
    for c in common::COMMANDS {
        let _ = s.execute(c);
    }
    let _ = dumpdiag_analysis::analyze(&s.analysis_input()).to_json();
    LARGEST.load(Ordering::Relaxed)
}

/// Fine for every command over a small dump: what the memory helpers may take for one read.
const BOUND: usize = dumpdiag_target::MAX_READ_ALLOC;

#[test]
fn a_pdata_entry_ending_near_4_gb_does_not_size_the_code_padding() {
    let mut p = Process::new(Arch::Amd64);
    let ntdll = p.module(Module::new("C:\\Windows\\System32\\ntdll.dll"));
    let app = p.module(Module::new("C:\\app\\app.exe"));
    let wait = p.add_function(ntdll, Function::syscall("NtWaitForSingleObject", 4));
    let start = p.function(ntdll, "RtlUserThreadStart", 0x40);
    let main = p.function(app, "main", 0x60);
    p.thread(0x1234, [wait, main, start]);
    // main's RUNTIME_FUNCTION in app's .pdata claims the function runs to RVA 0xfffffff0.
    let built = p.build();
    let h = dumpdiag_os::pe::read_headers(built.memory(), app.base).unwrap();
    let (pdata, size) = h.directory(dumpdiag_os::pe::DIR_EXCEPTION).unwrap();
    let main_rva = (main.addr - app.base) as u32;
    let entry = (0..size / 12)
        .map(|i| app.base + pdata as u64 + 12 * i as u64)
        .find(|&e| built.memory().read_u32(e) == Some(main_rva))
        .expect("main has a RUNTIME_FUNCTION");
    p.write_u32(entry + 4, 0xffff_fff0);
    let largest = largest_allocation_over(p.build().minidump());
    assert!(largest <= BOUND, "an allocation of {largest:#x} bytes");
}
