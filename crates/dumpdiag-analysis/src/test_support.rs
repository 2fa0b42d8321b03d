//! For the detectors' unit tests: a synthetic process (`dumpdiag-synth`) analysed the way a dump
//! is, with or without its Breakpad symbols, and the findings of one pattern picked out.
// Each detector test uses the part it needs.
#![allow(dead_code)]

use dumpdiag_symbols::{SymbolPath, Symbols};
use dumpdiag_synth::{
    CriticalSection, Exception, Func, Function, Handle, Module, ModuleId, ObjectInfo, Process,
    SymbolStore, SynthTarget, Thread,
};
use dumpdiag_target::Arch;

use crate::{Detector, Evidence, Finding, Input, Pattern};

/// A synthetic process ready for analysis.
pub(crate) struct Analysed {
    target: SynthTarget,
    symbols: Symbols,
    /// Kept for the symbols' lifetime: the store is removed when dropped.
    _store: Option<SymbolStore>,
}

impl Analysed {
    /// The process with names from its modules' exports only (no symbol files), as a minidump
    /// of Windows modules without their PDBs is read.
    pub(crate) fn exports_only(p: Process) -> Analysed {
        let target = p.build();
        let symbols = Symbols::new(SymbolPath::default(), &target);
        Analysed {
            target,
            symbols,
            _store: None,
        }
    }

    /// The process with a Breakpad symbol store for every module (FUNC and unwind records).
    pub(crate) fn with_symbols(p: Process) -> Analysed {
        let target = p.build();
        let store = target.symbol_store();
        let symbols = Symbols::new(SymbolPath::parse(&store.symbol_path()), &target);
        Analysed {
            target,
            symbols,
            _store: Some(store),
        }
    }

    pub(crate) fn target(&self) -> &SynthTarget {
        &self.target
    }

    pub(crate) fn evidence(&self) -> Evidence<'_> {
        Evidence::gather(&Input::new(&self.target, &self.symbols))
    }

    /// What `detector` reports on this process.
    pub(crate) fn detect(&self, detector: &dyn Detector) -> Vec<Finding> {
        detector.detect(&self.evidence())
    }

    /// Every pattern the whole analysis reports on this process.
    pub(crate) fn patterns(&self) -> Vec<Pattern> {
        crate::run_detectors(&self.evidence())
            .iter()
            .map(|f| f.pattern)
            .collect()
    }
}

/// How a test process runs: natively on x64 or x86, or as a 32-bit process under WOW64
/// (dumped by a 64-bit writer, analysed in its x86 view).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bitness {
    X64,
    X86,
    Wow64,
}

/// A process whose threads wait the way Windows' waits look in a dump: each thread sits in the
/// system-call stub of its wait under the kernelbase/ntdll function that made it and an
/// application function, with the wait call's arguments where the calling convention leaves
/// them — on x64 in the trap frame's r10 (the stub's `mov r10, rcx`), rdx, r8 and r9; on x86
/// (WOW64's 32-bit side too) as stdcall arguments right above the stub's return address into
/// its caller. Objects are declared the way the dump's HandleData describes them: thread
/// handles with THREAD_BASIC_INFORMATION in the layout of the dump writer's bitness, mutexes
/// with their owner (MUTANT_INFO_2), events with their state.
pub(crate) struct Waits {
    pub(crate) p: Process,
    pub(crate) bitness: Bitness,
    pub(crate) app: ModuleId,
    pub(crate) ntdll: ModuleId,
    pub(crate) kernelbase: ModuleId,
    functions: Vec<(String, Func)>,
    /// NtWaitForSingleObject, kernelbase!WaitForSingleObjectEx.
    single: [Func; 2],
    /// NtWaitForMultipleObjects, kernelbase!WaitForMultipleObjectsEx.
    multiple: [Func; 2],
    /// NtWaitForAlertByThreadId, RtlpEnterCriticalSectionContended, RtlEnterCriticalSection.
    enter: [Func; 3],
    /// NtDelayExecution, kernelbase!SleepEx.
    delay: [Func; 2],
    /// kernel32!BaseThreadInitThunk, ntdll!RtlUserThreadStart.
    pub(crate) start: [Func; 2],
}

impl Waits {
    pub(crate) fn new(bitness: Bitness) -> Waits {
        // The image is the first module of the list (WOW64's builder puts it there).
        let (mut p, app, ntdll, system) = match bitness {
            Bitness::X64 | Bitness::X86 => {
                let arch = if bitness == Bitness::X64 {
                    Arch::Amd64
                } else {
                    Arch::X86
                };
                let mut p = Process::new(arch);
                let app = p.module(Module::new("C:\\app\\service.exe"));
                let ntdll = p.module(Module::new("C:\\Windows\\System32\\ntdll.dll"));
                (p, app, ntdll, "C:\\Windows\\System32")
            }
            Bitness::Wow64 => {
                let mut p = Process::wow64();
                let ntdll = p.wow64_layer().expect("a WOW64 process").ntdll32;
                let app = p.module(Module::new("C:\\app\\service.exe"));
                (p, app, ntdll, "C:\\Windows\\SysWOW64")
            }
        };
        let kernel32 = p.module(Module::new(&format!("{system}\\kernel32.dll")));
        let kernelbase = p.module(Module::new(&format!("{system}\\KERNELBASE.dll")));
        // The wrappers' frames hold the arguments they pass (x86) and a handle array.
        let wrapper = |name: &str| Function::new(name, 0x80).locals(0x80);
        let single = [
            p.add_function(ntdll, Function::syscall("NtWaitForSingleObject", 4)),
            p.add_function(kernelbase, wrapper("WaitForSingleObjectEx")),
        ];
        let multiple = [
            p.add_function(ntdll, Function::syscall("NtWaitForMultipleObjects", 0x5b)),
            p.add_function(kernelbase, wrapper("WaitForMultipleObjectsEx")),
        ];
        let enter = [
            p.add_function(ntdll, Function::syscall("NtWaitForAlertByThreadId", 0x1bd)),
            p.function(ntdll, "RtlpEnterCriticalSectionContended", 0x80),
            p.function(ntdll, "RtlEnterCriticalSection", 0x60),
        ];
        let delay = [
            p.add_function(ntdll, Function::syscall("NtDelayExecution", 0x34)),
            p.function(kernelbase, "SleepEx", 0x80),
        ];
        let start = [
            p.function(kernel32, "BaseThreadInitThunk", 0x40),
            p.function(ntdll, "RtlUserThreadStart", 0x40),
        ];
        Waits {
            p,
            bitness,
            app,
            ntdll,
            kernelbase,
            functions: Vec::new(),
            single,
            multiple,
            enter,
            delay,
            start,
        }
    }

    /// The process's pointer size.
    pub(crate) fn ptr(&self) -> u64 {
        self.p.ptr()
    }

    /// The application function `name` (declared on first use).
    pub(crate) fn function(&mut self, name: &str) -> Func {
        if let Some((_, f)) = self.functions.iter().find(|(n, _)| n == name) {
            return *f;
        }
        let f = self.p.function(self.app, name, 0x80);
        self.functions.push((name.to_string(), f));
        f
    }

    /// `system` (innermost first), called from the application function `app`, under the
    /// thread-start frames.
    pub(crate) fn chain(&mut self, system: &[Func], app: &str) -> Vec<Func> {
        let mut c = system.to_vec();
        c.push(self.function(app));
        c.extend(self.start);
        c
    }

    /// Put the wait call's arguments where the calling convention leaves them (see the type).
    fn arguments(t: &mut Thread, ptr: u64, words: &[u64]) {
        if ptr == 8 {
            for (r, v) in ["r10", "rdx", "r8", "r9"].iter().zip(words) {
                t.reg(r, *v);
            }
        } else {
            t.args(0, words);
        }
    }

    /// Thread `id` in `NtWaitForSingleObject(handle, FALSE, NULL)` called by `app`.
    pub(crate) fn wait_single(&mut self, id: u32, handle: u64, app: &str) -> &mut Thread {
        let system = self.single;
        let chain = self.chain(&system, app);
        let ptr = self.ptr();
        let t = self.p.thread(id, chain);
        Waits::arguments(t, ptr, &[handle, 0, 0]);
        t
    }

    /// Thread `id` in `NtWaitForMultipleObjects(count, handles, WaitAny or WaitAll, FALSE,
    /// NULL)` called by `app`, the handle array in WaitForMultipleObjectsEx's locals.
    pub(crate) fn wait_multiple(
        &mut self,
        id: u32,
        handles: &[u64],
        wait_any: bool,
        app: &str,
    ) -> &mut Thread {
        let system = self.multiple;
        let chain = self.chain(&system, app);
        let ptr = self.ptr();
        let t = self.p.thread(id, chain);
        let array: Vec<u8> = handles
            .iter()
            .flat_map(|h| h.to_le_bytes()[..ptr as usize].to_vec())
            .collect();
        let at = t.local(1, 0x40, &array);
        Waits::arguments(t, ptr, &[handles.len() as u64, at, wait_any as u64, 0, 0]);
        t
    }

    /// Thread `id` entering the critical section at `section` from `app`, asleep in
    /// `NtWaitForAlertByThreadId(section, NULL)` (Windows 8+).
    pub(crate) fn enter(&mut self, id: u32, section: u64, app: &str) -> &mut Thread {
        let system = self.enter;
        let chain = self.chain(&system, app);
        let ptr = self.ptr();
        let t = self.p.thread(id, chain);
        Waits::arguments(t, ptr, &[section, 0]);
        t
    }

    /// Thread `id` in `Sleep` (NtDelayExecution) called by `app`.
    pub(crate) fn sleep(&mut self, id: u32, app: &str) -> &mut Thread {
        let system = self.delay;
        let chain = self.chain(&system, app);
        self.p.thread(id, chain)
    }

    /// Thread `id` running `app`'s code.
    pub(crate) fn run(&mut self, id: u32, app: &str) -> &mut Thread {
        let chain = self.chain(&[], app);
        self.p.thread(id, chain)
    }

    /// A critical section `name` of the application owned by thread `owner`.
    pub(crate) fn lock(&mut self, name: &str, owner: u32) -> u64 {
        let size = self.p.layout().cs_size as u32;
        let at = self.p.global(self.app, name, size);
        self.p
            .critical_section(at, CriticalSection::owned(owner, 1));
        at
    }

    /// A mutex `name` held by thread `owner` (its owner information as the dump writer of the
    /// process's dump stores it), or free.
    pub(crate) fn mutex(&mut self, name: &str, owner: Option<u32>) -> u64 {
        let pid = self.p.system.process_id;
        let h = match owner {
            // A 64-bit writer (WOW64's too) stores the owner's CLIENT_ID of 8-byte handles.
            Some(tid) if self.bitness != Bitness::X86 => Handle::new("Mutant")
                .info(ObjectInfo::Mutant {
                    count: 0,
                    owned_by_caller: false,
                    abandoned: false,
                })
                .info(ObjectInfo::mutant_owner_64(pid as u64, tid as u64)),
            owner => Handle::mutant(owner.map(|tid| (pid, tid))),
        };
        self.p.handle(h.name(name))
    }

    /// An auto-reset event, not signaled, named `name` when given.
    pub(crate) fn event(&mut self, name: Option<&str>) -> u64 {
        let h = Handle::event(false, false);
        self.p.handle(match name {
            Some(n) => h.name(n),
            None => h,
        })
    }

    /// A handle to thread `id` (declared already), with THREAD_BASIC_INFORMATION as the dump's
    /// writer stores it: 28 bytes from a 32-bit writer, 48 from a 64-bit one.
    pub(crate) fn thread_handle(&mut self, id: u32) -> u64 {
        if self.bitness != Bitness::X86 {
            return self.p.thread_handle(id);
        }
        let teb = self.p.thread_ref(id).teb as u32;
        let pid = self.p.system.process_id;
        self.p
            .handle(Handle::new("Thread").info(ObjectInfo::thread_32(0x103, teb, pid, id)))
    }

    /// An EXCEPTION_RECORD of `code` at `address` and a CONTEXT of the process's machine whose
    /// instruction pointer is `address`: what the kernel builds for KiUserExceptionDispatcher.
    pub(crate) fn record_and_context(
        &self,
        code: u32,
        address: u64,
        parameters: Vec<u64>,
    ) -> (Vec<u8>, Vec<u8>) {
        let record = dumpdiag_target::ExceptionRecord {
            code,
            address,
            parameters,
            ..Default::default()
        };
        let mut r = dumpdiag_synth::Registers::default();
        r.set(if self.ptr() == 8 { "rip" } else { "eip" }, address);
        (
            self.p.exception_record_bytes(&record),
            self.p.context_bytes(&r),
        )
    }

    /// Thread `id` inside KiUserExceptionDispatcher → RtlDispatchException for an exception of
    /// `code` raised in `app`: the record and its CONTEXT in the dispatcher's frame (the CONTEXT
    /// at its stack pointer, the record 0x4f0 above, x64's layout), the record's address where
    /// the walk leaves the dispatcher. Returns that address.
    pub(crate) fn dispatching(&mut self, id: u32, code: u32, app: &str, params: Vec<u64>) -> u64 {
        let ntdll = self.ntdll;
        let dispatch = self.p.function(ntdll, "RtlDispatchException", 0x80);
        let dispatcher = self.p.add_function(
            ntdll,
            Function::new("KiUserExceptionDispatcher", 0x80).locals(0x600),
        );
        let faulted_at = self.function(app).call_site(0);
        let (record, context) = self.record_and_context(code, faulted_at, params);
        let chain = self.chain(&[dispatch, dispatcher], app);
        let t = self.p.thread(id, chain);
        t.local(1, 0, &context);
        t.local(1, 0x4f0, &record);
        faulted_at
    }

    /// Thread `id` faulting in `app` (a read of 0x10): a crash dump.
    pub(crate) fn crash(&mut self, id: u32, app: &str) {
        self.run(id, app);
        let mut e = Exception::new(id, 0xc000_0005);
        e.parameters = vec![0, 0x10];
        self.p.exception(e);
    }

    /// The thread a debugger injects to attach (`DbgUiRemoteBreakin` → `DbgBreakPoint`, an
    /// `int 3`), as thread `id`, with its breakpoint as the dump's exception: what `.dump`
    /// records after attaching. Native processes only.
    pub(crate) fn debugger_break_in(&mut self, id: u32) {
        assert_ne!(self.bitness, Bitness::Wow64, "a native break-in");
        let brk = self
            .p
            .add_function(self.ntdll, Function::new("DbgBreakPoint", 0x10).leaf());
        let remote = self.p.function(self.ntdll, "DbgUiRemoteBreakin", 0x80);
        let mut chain = vec![brk, remote];
        chain.extend(self.start);
        self.p.thread(id, chain);
        // int 3; ret
        self.p.write(brk.addr, &[0xcc, 0xc3]);
        self.p.exception(Exception::new(id, 0x8000_0003));
    }
}

/// Thread 0x100 frees a block of a private heap (orders!release_order → RtlFreeHeap →
/// RtlpFreeHeapInternal) and the heap manager ends the process from RtlpLogHeapFailure →
/// RtlReportCriticalFailure with STATUS_HEAP_CORRUPTION, its `_HEAP_FAILURE_INFORMATION`
/// in ntdll!RtlpHeapFailureInfo of `failure_type` for the block. Returns the process, the
/// block, its heap and the record's address.
pub(crate) fn heap_failure(arch: Arch, failure_type: u32) -> (Process, u64, u64, u64) {
    let mut p = Process::new(arch);
    let app = p.module(Module::new("C:\\app\\orders.exe"));
    let ntdll = p.module(Module::new("C:\\Windows\\System32\\ntdll.dll"));
    let kernel32 = p.module(Module::new("C:\\Windows\\System32\\kernel32.dll"));
    let chain = [
        p.function(ntdll, "RtlReportCriticalFailure", 0x80),
        p.function(ntdll, "RtlpLogHeapFailure", 0x80),
        p.function(ntdll, "RtlpFreeHeapInternal", 0x80),
        p.function(ntdll, "RtlFreeHeap", 0x80),
        p.function(app, "release_order", 0x80),
        p.function(app, "main", 0x80),
        p.function(kernel32, "BaseThreadInitThunk", 0x40),
        p.function(ntdll, "RtlUserThreadStart", 0x40),
    ];
    p.thread(0x100, chain);
    let heap = p.heap(0x10_0000, 0x1_0000);
    let block = p.heap_alloc(heap, 0x40);
    let record = p.heap_failure_bytes(failure_type, heap, block);
    let at = p.global(ntdll, "RtlpHeapFailureInfo", record.len() as u32);
    p.write(at, &record);
    let mut e = Exception::new(0x100, 0xc000_0374); // STATUS_HEAP_CORRUPTION
    e.flags = 1; // EXCEPTION_NONCONTINUABLE
    e.parameters = vec![at];
    p.exception(e);
    (p, block, heap, at)
}
