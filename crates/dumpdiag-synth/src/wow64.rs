//! WOW64: a 32-bit process on 64-bit Windows, dumped by a 64-bit writer. The process is
//! described as any 32-bit one ([`Process::wow64`] instead of `Process::new(Arch::X86)`): its
//! modules, functions, threads, heaps and PEB are 32-bit. The builder adds what 64-bit Windows
//! runs beneath it and what a 64-bit dump of it holds:
//!
//! - the 64-bit modules of the layer — `System32\ntdll.dll`, `wow64.dll`, `wow64win.dll`,
//!   `wow64cpu.dll` — beside the process's own 32-bit ones (the `SysWOW64\ntdll.dll`
//!   among them, declared here too);
//! - for every thread a TEB64 (`_TEB`, x64 layout) whose NtTib.ExceptionList holds the address
//!   of the thread's TEB32, 0x2000 bytes above it (the layout Wow64 allocates: the two-page
//!   TEB64, then the TEB32); a 64-bit stack with the thread's chain through the layer; and in
//!   TEB64 `TlsSlots[1]` (WOW64_TLS_CPURESERVED) the address of the WOW64_CPURESERVED area at
//!   the top of that stack: a 4-byte header (USHORT Flags, USHORT Machine = 0x14c) followed by
//!   the thread's saved x86 CONTEXT (ContextFlags with CONTEXT_i386, 0x10000);
//! - a PEB64 (`_PEB`, x64 layout) beside the PEB32, its loader list holding the image and the
//!   64-bit modules, its process parameters and process heap 64-bit;
//! - the dump's thread records name the TEB64 and the 64-bit stack, and their contexts are
//!   AMD64 ones: in the layer (code selector 0x33), or — for a thread caught running 32-bit
//!   code ([`Thread::in_32bit_code`]) — its x86 registers with the 32-bit code selector 0x23,
//!   which is how the 64-bit kernel saves a thread interrupted in compatibility mode.
//!
//! `dumpdiag-os`'s `wow64` module reads these back (TEB32 from TEB64, the saved context from
//! TLS slot 1); the round-trip test in `tests/structures.rs` holds the two together.

use dumpdiag_target::Arch;

use crate::bytes::align;
use crate::context::Registers;
use crate::layout::X64;
use crate::process::{fnv, Function, HeapData, Module, ModuleId, Process, GRANULARITY, PAGE};
use crate::stack::{Chain, Frame, Func, Thread};

/// Bytes kept for WOW64_CPURESERVED at the top of a thread's 64-bit stack: the 4-byte header
/// and the 0x2cc-byte x86 CONTEXT, rounded up.
const CPU_RESERVED_SIZE: u64 = 0x300;

/// IMAGE_FILE_MACHINE_I386: WOW64_CPURESERVED.Machine of an x86 guest.
pub(crate) const MACHINE_I386: u16 = 0x14c;

/// The selectors of a 32-bit thread under 64-bit Windows: KGDT64_R3_CMCODE | RPL 3 (0x23) for
/// code, KGDT64_R3_DATA | RPL 3 (0x2b) for data and stack, KGDT64_R3_CMTEB | RPL 3 (0x53) for
/// fs (the TEB32).
const WOW64_SELECTORS: [(&str, u64); 6] = [
    ("cs", 0x23),
    ("ss", 0x2b),
    ("ds", 0x2b),
    ("es", 0x2b),
    ("gs", 0x2b),
    ("fs", 0x53),
];

/// The 64-bit layer of a WOW64 process: the modules [`Process::wow64`] declared and the chain
/// every thread's 64-bit stack holds unless [`Process::native_chain`] says otherwise.
#[derive(Debug, Clone)]
pub struct Wow64Layer {
    /// `C:\Windows\System32\ntdll.dll`, 64-bit.
    pub ntdll: ModuleId,
    /// `wow64.dll`: the system-call thunks and the CPU simulation loop.
    pub wow64: ModuleId,
    /// `wow64win.dll`: win32k's thunks.
    pub wow64win: ModuleId,
    /// `wow64cpu.dll`: the switch between 32-bit and 64-bit code.
    pub wow64cpu: ModuleId,
    /// `C:\Windows\SysWOW64\ntdll.dll`, the 32-bit ntdll the process's own code calls (its PDB
    /// is `wntdll.pdb`, so its identity differs from the 64-bit ntdll's).
    pub ntdll32: ModuleId,
    /// The default 64-bit chain, innermost first: a thread parked in a 32-bit system call,
    /// `ntdll!NtWaitForSingleObject` ← `wow64!Wow64SystemServiceEx` ←
    /// `wow64cpu!ServiceNoTurbo` ← `wow64cpu!BTCpuSimulate` ← `wow64!RunCpuSimulation` ←
    /// `wow64!Wow64LdrpInitialize` ← `ntdll!LdrInitializeThunk`.
    pub chain: Vec<Func>,
    /// Address of the PEB64.
    pub peb64: u64,
    /// The 64-bit process heap (PEB64 ProcessHeap), holding the 64-bit loader data.
    pub(crate) heap: HeapData,
}

/// The 64-bit side of a WOW64 thread.
#[derive(Debug, Clone)]
pub struct Wow64Thread {
    /// Address of the TEB64 (what the dump's thread record names); the TEB32 is
    /// [`Thread::teb`], 0x2000 above.
    pub teb64: u64,
    /// The 64-bit stack: NtTib.StackBase and StackLimit of the TEB64, and DeallocationStack.
    pub stack_base: u64,
    pub stack_limit: u64,
    pub deallocation_stack: u64,
    /// WOW64_CPURESERVED (TEB64 `TlsSlots[1]`): the header, then the saved x86 CONTEXT.
    pub cpu_reserved: u64,
    /// The 64-bit chain laid out on the 64-bit stack, innermost first.
    pub frames: Vec<Frame>,
    /// Caught running 32-bit code: the dump's context is the x86 state with cs 0x23.
    pub in_32bit_code: bool,
}

impl Wow64Thread {
    /// Where the 32-bit code of `t` was, as the 64-bit kernel saved it: the x86 registers of
    /// the thread's context with WOW64's selectors.
    pub fn x86_registers(t: &Thread) -> Registers {
        let mut r = t.context();
        for (name, v) in WOW64_SELECTORS {
            if r.get(name).is_none() {
                r.set(name, v);
            }
        }
        r
    }

    /// The AMD64 context registers the dump records for the thread.
    pub fn native_registers(&self, t: &Thread) -> Registers {
        if self.in_32bit_code {
            return x86_as_native(&Wow64Thread::x86_registers(t));
        }
        let f = &self.frames[0];
        let mut r = Registers::default();
        r.set("rip", f.ip).set("rsp", f.sp).set("rbp", f.fp);
        r
    }
}

/// x86 registers as the AMD64 context of a thread interrupted in 32-bit code: each 32-bit
/// register in the low half of its 64-bit one, and WOW64's selectors (cs 0x23). Registers that
/// already have x64 names (an exception taken in the 64-bit layer) are kept as they are.
pub(crate) fn x86_as_native(x86: &Registers) -> Registers {
    if x86.get("rip").is_some() || x86.get("rsp").is_some() {
        return x86.clone();
    }
    let mut r = Registers::default();
    for (name, v) in &x86.0 {
        let wide = match name.as_str() {
            "eax" => "rax",
            "ebx" => "rbx",
            "ecx" => "rcx",
            "edx" => "rdx",
            "esi" => "rsi",
            "edi" => "rdi",
            "ebp" => "rbp",
            "esp" => "rsp",
            "eip" => "rip",
            other => other,
        };
        r.set(wide, *v & 0xffff_ffff);
    }
    for (name, v) in WOW64_SELECTORS {
        if r.get(name).is_none() {
            r.set(name, v);
        }
    }
    r
}

impl Process {
    /// An empty 32-bit process running under WOW64 on 64-bit Windows 10 (see the module
    /// documentation): described as a 32-bit process, built as a 64-bit dump. The layer's
    /// modules, including the `SysWOW64` ntdll, are declared; [`Process::wow64_layer`] has them.
    pub fn wow64() -> Process {
        let mut p = Process::new(Arch::X86);
        let peb64 = p.areas.teb;
        p.areas.teb += X64.peb_size.max(PAGE);
        let reserve = 0x10_0000;
        let heap = HeapData {
            base: p.areas.heap,
            reserve,
            commit: 0x1_0000,
            next: p.areas.heap + X64.heap_header_size,
        };
        p.areas.heap += align(reserve, GRANULARITY);
        let ntdll = p.declare_module(Module::new("C:\\Windows\\System32\\ntdll.dll"), true);
        let wow64 = p.declare_module(Module::new("C:\\Windows\\System32\\wow64.dll"), true);
        let wow64win = p.declare_module(Module::new("C:\\Windows\\System32\\wow64win.dll"), true);
        let wow64cpu = p.declare_module(Module::new("C:\\Windows\\System32\\wow64cpu.dll"), true);
        let mut guid = [0u8; 16];
        guid[..8].copy_from_slice(&fnv(b"wntdll.pdb", 2).to_le_bytes());
        guid[8..].copy_from_slice(&fnv(b"wntdll.pdb", 3).to_le_bytes());
        let ntdll32 = p.declare_module(
            Module::new("C:\\Windows\\SysWOW64\\ntdll.dll").pdb(guid, 1, "wntdll.pdb"),
            false,
        );
        let wait = p.add_function(ntdll, Function::syscall("NtWaitForSingleObject", 4));
        let thunk = p.function(ntdll, "LdrInitializeThunk", 0x40);
        let service = p.function(wow64, "Wow64SystemServiceEx", 0x80);
        let run = p.function(wow64, "RunCpuSimulation", 0x40);
        let init = p.function(wow64, "Wow64LdrpInitialize", 0x80);
        p.function(wow64win, "whNtUserWaitMessage", 0x40);
        let no_turbo = p.function(wow64cpu, "ServiceNoTurbo", 0x40);
        let simulate = p.function(wow64cpu, "BTCpuSimulate", 0x80);
        p.wow64 = Some(Wow64Layer {
            ntdll,
            wow64,
            wow64win,
            wow64cpu,
            ntdll32,
            chain: vec![wait, service, no_turbo, simulate, run, init, thunk],
            peb64,
            heap,
        });
        p
    }

    /// The 64-bit layer of a WOW64 process ([`Process::wow64`]); None for a native one.
    pub fn wow64_layer(&self) -> Option<&Wow64Layer> {
        self.wow64.as_ref()
    }

    /// Declare another 64-bit module of a WOW64 process's layer (`wow64base.dll`, a 64-bit
    /// hook DLL...); its functions are x64 code. Panics in a native process.
    pub fn native_module(&mut self, spec: Module) -> ModuleId {
        assert!(self.wow64.is_some(), "native_module: a WOW64 process only");
        self.declare_module(spec, true)
    }

    /// Lay out `chain` (64-bit functions, innermost first) on the 64-bit stack of WOW64 thread
    /// `id`, instead of the layer's default chain.
    pub fn native_chain(&mut self, id: u32, chain: impl Into<Chain>) -> &mut Thread {
        let chain = chain.into();
        let w = self
            .thread_ref(id)
            .wow64
            .clone()
            .expect("native_chain: a thread of a WOW64 process");
        let frames = self.lay_out_native(id, &chain, &w);
        let t = self.thread_mut(id);
        t.wow64.as_mut().expect("checked above").frames = frames;
        t
    }

    /// Give the thread just declared its 64-bit side: a 64-bit stack with WOW64_CPURESERVED at
    /// its top and the layer's default chain below it.
    pub(crate) fn attach_wow64_thread(&mut self, teb64: u64) {
        let deallocation_stack = self.areas.stack;
        self.areas.stack += align(self.stack_reserve, GRANULARITY);
        let stack_base = deallocation_stack + self.stack_reserve;
        let mut w = Wow64Thread {
            teb64,
            stack_base,
            stack_limit: stack_base - self.stack_commit,
            deallocation_stack,
            cpu_reserved: stack_base - CPU_RESERVED_SIZE,
            frames: Vec::new(),
            in_32bit_code: false,
        };
        let chain = Chain::from(self.wow64.as_ref().expect("a WOW64 process").chain.clone());
        let id = self.threads.last().expect("just declared").id;
        w.frames = self.lay_out_native(id, &chain, &w);
        self.threads.last_mut().expect("just declared").wow64 = Some(w);
    }

    /// The frames of a 64-bit chain below WOW64_CPURESERVED, with the call sites calling
    /// their callees.
    fn lay_out_native(&mut self, id: u32, chain: &Chain, w: &Wow64Thread) -> Vec<Frame> {
        for f in chain.functions() {
            assert!(
                self.modules[f.module].x64,
                "thread {id:#x}: the 64-bit chain calls 32-bit code"
            );
        }
        let frames = Thread::lay_out(chain, w.cpu_reserved, 8);
        let lowest = frames.iter().map(|f| f.sp).min().unwrap_or(w.cpu_reserved);
        assert!(
            lowest > w.stack_limit + 0x100,
            "thread {id:#x}: the 64-bit chain needs more than the committed stack"
        );
        for (i, f) in frames.iter().enumerate().skip(1) {
            let (caller, site) = chain.callers[i - 1];
            debug_assert_eq!(caller, f.func);
            self.call_target(caller, site, frames[i - 1].func.addr);
        }
        frames
    }

    /// The dump's module order: the image first, as the dump writer lists the loader's
    /// modules (Evidence and `lm` take the first module for the image); the layer declared by
    /// [`Process::wow64`] comes before it in declaration order, so a WOW64 process's image is
    /// moved to the front. A native process keeps declaration order.
    pub(crate) fn module_order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.modules.len()).collect();
        if self.wow64.is_some() {
            if let Some(exe) = self.modules.iter().position(|m| m.spec.is_exe()) {
                order.remove(exe);
                order.insert(0, exe);
            }
        }
        order
    }
}
