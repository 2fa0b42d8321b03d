//! Code outside every module: what a JIT compiler (the .NET runtime, a JavaScript engine)
//! generates into memory it allocated itself. A [`CodeHeap`] is a private committed region with
//! the protection the test gives (PAGE_EXECUTE_READ for CoreCLR's W^X heaps,
//! PAGE_EXECUTE_READWRITE for older runtimes): MEM_PRIVATE, no image, no module record.
//! [`Process::jit_function`] places functions in it with the same code shapes as a module's
//! (prolog, call sites, epilog; see [`crate::code`]), so chains take them like any other
//! function and every return address into them follows a call.
//!
//! Nothing describes how to unwind them: a runtime registers its own function tables
//! (RtlInstallFunctionTableCallback), which only the dump's FunctionTable stream would carry.
//! A walker leaves such a frame by the EBP chain (x86, the default frame shape there) or by
//! scanning for the next return address (x64), as it does in a real dump without that stream.
//! Calls go through pointer slots placed right after each function's declared size (`call
//! [slot]`), or straight (`call rel32`) to a function of the same heap.

use crate::bytes::{align, ptr_bytes};
use crate::code::{round_locals, CallOperand, CodeLayout, Shape};
use crate::process::{Function, FunctionData, Process, PAGE};
use crate::stack::Func;

/// A code heap: its index among the process's code heaps and its address range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CodeHeap {
    pub index: usize,
    pub base: u64,
    pub size: u64,
}

impl CodeHeap {
    pub fn contains(&self, addr: u64) -> bool {
        addr >= self.base && addr < self.base + self.size
    }
}

/// A code heap under construction: its range and the functions placed in it.
#[derive(Debug, Clone)]
pub(crate) struct CodeHeapData {
    pub heap: CodeHeap,
    /// Bytes handed out from the base.
    pub used: u64,
    /// `rva` is the offset from the heap's base.
    pub functions: Vec<FunctionData>,
}

impl Process {
    /// A JIT code heap of `size` bytes: private committed memory of protection `protect` (one
    /// of the PAGE_EXECUTE_* constants for code), captured in the dump and listed in its
    /// MemoryInfoList. Returns its handle for [`Process::jit_function`].
    pub fn code_heap(&mut self, size: u64, protect: u32) -> CodeHeap {
        let base = self.alloc(size, protect);
        let heap = CodeHeap {
            index: self.code_heaps.len(),
            base,
            size: align(size.max(1), PAGE),
        };
        self.code_heaps.push(CodeHeapData {
            heap,
            used: 0,
            functions: Vec::new(),
        });
        heap
    }

    /// A function compiled into `heap`, as `spec` describes it (the same shapes and defaults
    /// as [`Process::add_function`]; `exported` means nothing here: no module names it).
    /// Returns its handle; its `module` is the heap's index.
    pub fn jit_function(&mut self, heap: CodeHeap, spec: Function) -> Func {
        let x64 = self.ptr() == 8;
        let code = CodeLayout::new(x64, shape_of(x64, &spec), spec.calls);
        assert!(
            code.len <= spec.size,
            "{}: {} bytes of code do not fit in {:#x}",
            spec.name,
            code.len,
            spec.size
        );
        let ptr = self.ptr();
        let h = &mut self.code_heaps[heap.index];
        // 16-byte aligned as compilers align functions; the call slots follow the code.
        let offset = align(h.used, 16);
        let end = offset + spec.size as u64 + spec.calls as u64 * ptr;
        assert!(
            end <= h.heap.size,
            "{}: the code heap at {:#x} is full",
            spec.name,
            h.heap.base
        );
        h.used = end;
        h.functions.push(FunctionData {
            name: spec.name,
            rva: offset as u32,
            size: spec.size,
            code,
            exported: false,
            targets: vec![0; spec.calls as usize],
        });
        Func {
            module: heap.index,
            index: h.functions.len() - 1,
            addr: h.heap.base + offset,
            size: spec.size,
            code,
        }
    }

    /// The description of `f`, a function of a module or of a code heap.
    pub(crate) fn function_data_mut(&mut self, f: Func) -> &mut FunctionData {
        match self.code_heaps.iter().position(|h| h.heap.contains(f.addr)) {
            Some(i) => &mut self.code_heaps[i].functions[f.index],
            None => &mut self.modules[f.module].functions[f.index],
        }
    }

    /// The name `f` was declared with.
    pub(crate) fn function_name(&self, f: Func) -> &str {
        match self.code_heaps.iter().find(|h| h.heap.contains(f.addr)) {
            Some(h) => &h.functions[f.index].name,
            None => &self.modules[f.module].functions[f.index].name,
        }
    }
}

/// The shape [`Process::add_function`] gives `spec`: a system-call stub, a leaf, or a frame
/// with the machine's default locals (and a saved frame pointer by default on x86 only).
fn shape_of(x64: bool, spec: &Function) -> Shape {
    if let Some(nr) = spec.syscall {
        return Shape::Syscall(nr);
    }
    if spec.leaf {
        return Shape::Leaf;
    }
    let save_fp = spec.save_fp.unwrap_or(!x64);
    let default = match (x64, save_fp) {
        (true, false) => 0x28,
        (true, true) => 0x20,
        (false, _) => 0x10,
    };
    Shape::Frame {
        locals: round_locals(x64, spec.locals.unwrap_or(default), save_fp),
        save_fp,
    }
}

/// The bytes of every function of every code heap — its code, then its call slots — for the
/// builder to write once the heaps' memory exists.
pub(crate) fn code_writes(p: &Process) -> Vec<(u64, Vec<u8>)> {
    let ptr = p.ptr();
    let mut out = Vec::new();
    for h in &p.code_heaps {
        for f in &h.functions {
            let addr = h.heap.base + f.rva as u64;
            let slots = addr + f.size as u64;
            let code = f.code.emit(addr, &|n| match f.targets[n as usize] {
                t if t != 0 && h.heap.contains(t) => CallOperand::Direct(t),
                _ => CallOperand::Indirect(slots + n as u64 * ptr),
            });
            let mut bytes = code;
            // `int 3` up to the declared size, as between a module's functions.
            bytes.resize(f.size as usize, 0xcc);
            for &t in &f.targets {
                bytes.extend_from_slice(&ptr_bytes(t, ptr));
            }
            out.push((addr, bytes));
        }
    }
    out
}
