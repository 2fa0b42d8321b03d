//! Stacks and the code they pass through. x64: the unwind data (`.pdata` / UNWIND_INFO,
//! chained entries, machine frames) of the module image in dump memory, through
//! `pe-unwind-info`. x86: Breakpad STACK WIN frame data where a `.sym` file provides it, then
//! the EBP chain. Either way, scanning the stack for a plausible return address is the last
//! resort, and every frame records how it was found, so `k` and the analysis can tell an exact
//! stack from a guessed one.
//!
//! Also owned here, below both the command engine and the analysis: a thread's stack bounds
//! ([`thread_bounds`]), the checks of a walked stack as typed [`StackIssue`]s, the roles of
//! raw-stack slots ([`raw`]), and instruction decoding ([`code`]).

mod cfi;
pub mod checks;
pub mod code;
mod postfix;
pub mod raw;
mod x64;
mod x86;

pub use checks::{check, StackIssue};

use dumpdiag_os::view::ProcessView;
use dumpdiag_os::{known, pe};
use dumpdiag_symbols::Symbols;
use dumpdiag_target::{Arch, Context, MemoryExt, MemoryReader, Target};

/// Most frames one walk produces.
pub const MAX_FRAMES: usize = 1024;
/// How far (bytes) a scan looks for the next return address.
pub const SCAN_WINDOW: u64 = 2048;

/// How a frame was found, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// The thread's (or exception's) register context.
    Context,
    /// Unwind data of the module (x64 .pdata / UNWIND_INFO).
    UnwindInfo,
    /// Breakpad STACK WIN / STACK CFI records.
    FrameData,
    /// The saved frame-pointer chain.
    FramePointer,
    /// A value on the stack that looks like a return address.
    Scan,
}

impl Trust {
    pub fn label(self) -> &'static str {
        match self {
            Trust::Context => "context",
            Trust::UnwindInfo => "unwind",
            Trust::FrameData => "frame data",
            Trust::FramePointer => "frame pointer",
            Trust::Scan => "scan",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Frame {
    pub ip: u64,
    /// Stack pointer at this frame (child-SP in WinDbg's x64 `k`).
    pub sp: u64,
    /// Frame pointer value (ebp / rbp) at this frame.
    pub fp: u64,
    /// The return address this frame returns to (the next frame's ip), 0 for the last.
    pub return_address: u64,
    pub trust: Trust,
    /// The four stack words above the return address (`kb` "Args to Child").
    pub args: [u64; 4],
}

#[derive(Debug, Clone, Default)]
pub struct Stack {
    pub frames: Vec<Frame>,
    /// What the walker itself met: the frame limit, an architecture it cannot walk.
    pub issues: Vec<StackIssue>,
    /// The registers the unwind knows at each frame (`.frame /r`), one per frame; x64 walks
    /// only (empty otherwise).
    pub registers: Vec<FrameRegisters>,
}

/// x64 general registers in their hardware (and UNWIND_CODE) numbering.
pub const X64_REGISTERS: [&str; 16] = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15",
];

/// The x64 registers a callee must preserve (rbx, rbp, rsi, rdi, r12-r15), as a mask of
/// [`X64_REGISTERS`] numbers: the only ones an unwind can give back for a caller's frame.
pub const X64_NONVOLATILE: u16 = 1 << 3 | 1 << 5 | 1 << 6 | 1 << 7 | 0xf << 12;

/// What the unwind knows of one frame's registers: the context's values at frame 0; at a caller
/// frame, rsp and the non-volatile registers (those a callee saved come back from the stack, the
/// others were left alone), while the volatile ones are lost. A frame found by scanning the
/// stack breaks the chain: what its callees saved is unknown, so only rsp is known past it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrameRegisters {
    /// Values by [`X64_REGISTERS`] number (meaningful where `known` has the bit).
    pub values: [u64; 16],
    /// Bit n: register n's value at this frame is known.
    pub known: u16,
    /// Registers a callee had saved, given back by the unwind: (register number, the stack
    /// address it was read from when known, the callee frame whose unwind restored it).
    pub restored: Vec<(usize, Option<u64>, usize)>,
}

impl FrameRegisters {
    /// Register `n`'s value, if it is known at this frame.
    pub fn get(&self, n: usize) -> Option<u64> {
        (n < 16 && self.known & (1 << n) != 0).then(|| self.values[n])
    }
}

/// The bounds of a thread's stack: [limit, base).
#[derive(Debug, Clone, Copy)]
pub struct StackBounds {
    pub low: u64,
    pub high: u64,
}

impl StackBounds {
    pub fn contains(&self, a: u64) -> bool {
        a >= self.low && a < self.high
    }
}

/// What the walkers need from the rest of the program.
pub struct Env<'a> {
    pub target: &'a dyn Target,
    pub symbols: &'a Symbols,
    pub bounds: StackBounds,
}

impl Env<'_> {
    pub fn mem(&self) -> &dyn MemoryReader {
        self.target.memory()
    }

    /// Is `a` plausibly code: inside a module's executable section (or, without headers in the
    /// dump, inside a module at all)?
    pub fn is_code(&self, a: u64) -> bool {
        let Some(m) = self.target.module_at(a) else {
            return false;
        };
        match pe::read_headers(self.mem(), m.base) {
            Some(h) if !h.sections.is_empty() => {
                let rva = (a - m.base) as u32;
                h.sections.iter().any(|s| {
                    s.characteristics & 0x2000_0000 != 0
                        && rva >= s.virtual_address
                        && rva
                            < s.virtual_address
                                .saturating_add(s.virtual_size.max(s.raw_size))
                })
            }
            _ => true,
        }
    }

    /// Is the instruction before `ra` a call? (Checks the common encodings: E8 rel32, FF /2
    /// with register, memory and displacement forms, and 41 FF /2 / REX forms on x64.)
    /// Unknown code (not captured in a minidump) counts as a call: it cannot be disproved.
    pub fn preceded_by_call(&self, ra: u64) -> bool {
        self.call_before(ra).unwrap_or(true)
    }

    /// Some(answer) when the bytes before `ra` are in the dump, None when they are not.
    pub fn call_before(&self, ra: u64) -> Option<bool> {
        let start = ra.checked_sub(7)?;
        let b = self.mem().read_bytes(start, 7);
        if b.len() < 7 {
            return None;
        }
        Some(Self::is_call_tail(&b))
    }

    fn is_call_tail(b: &[u8]) -> bool {
        // b[6] is the byte just before ra.
        if b[2] == 0xe8 {
            return true; // call rel32 (5 bytes)
        }
        let modrm_is_call = |m: u8| (m >> 3) & 7 == 2;
        // call r/m: FF modrm [sib] [disp] — lengths 2..7.
        for len in 2..=7usize {
            let i = 7 - len;
            if b[i] != 0xff || !modrm_is_call(b[i + 1]) {
                continue;
            }
            let modrm = b[i + 1];
            let md = modrm >> 6;
            let rm = modrm & 7;
            let sib = md != 3 && rm == 4;
            let disp = match md {
                0 if rm == 5 => 4,
                0 if sib && b.get(i + 2).is_some_and(|s| s & 7 == 5) => 4,
                1 => 1,
                2 => 4,
                _ => 0,
            };
            if len == 2 + sib as usize + disp {
                return true;
            }
        }
        false
    }

    /// Scan upward from `from` for a return address into code preceded by a call.
    pub fn scan(&self, from: u64, ptr: u64) -> Option<(u64, u64)> {
        let end = from.saturating_add(SCAN_WINDOW).min(self.bounds.high);
        let mut a = from;
        while a.checked_add(ptr).is_some_and(|next| next <= end) {
            if let Some(v) = self.mem().read_ptr(a, ptr) {
                if self.is_code(v) && self.preceded_by_call(v) && self.plausible_return_target(v) {
                    return Some((a, v));
                }
            }
            a += ptr;
        }
        None
    }

    /// Is `a` in memory the dump describes as executable (JIT code, thunks)? Only answerable
    /// with a MemoryInfoList.
    pub fn is_executable_memory(&self, a: u64) -> bool {
        self.target
            .region_at(a)
            .is_some_and(|r| r.state == dumpdiag_target::MEM_COMMIT && r.protect & 0xf0 != 0)
    }

    /// Scanned values must fall past the image headers and, where the module's symbols cover
    /// functions, inside one.
    fn plausible_return_target(&self, v: u64) -> bool {
        let Some(m) = self.target.module_at(v) else {
            return false;
        };
        if v - m.base < 0x1000 {
            return false;
        }
        let idx = self
            .target
            .modules()
            .iter()
            .position(|x| std::ptr::eq(x, m))
            .unwrap_or(0);
        match self.symbols.module(self.target, idx) {
            // With full function records, a return address must fall inside a function, and
            // not at its very first byte (a call never returns there).
            Some(dumpdiag_symbols::ModuleSymbols::Breakpad(b, _)) if !b.funcs.is_empty() => {
                b.in_func(v - 1 - m.base) && b.in_func(v - m.base)
            }
            Some(dumpdiag_symbols::ModuleSymbols::Pdb(_)) => {
                self.symbols.lookup(self.target, v - 1).is_some()
            }
            _ => true,
        }
    }

    pub fn args_at(&self, a: u64, ptr: u64) -> [u64; 4] {
        let mut out = [0u64; 4];
        for (i, o) in out.iter_mut().enumerate() {
            *o = self
                .mem()
                .read_ptr(a.wrapping_add(i as u64 * ptr), ptr)
                .unwrap_or(0);
        }
        out
    }
}

impl Env<'_> {
    /// Is `ip` (a frame's instruction pointer) inside a thread's outermost frame
    /// ([`known::OUTERMOST_FRAMES`])?
    pub fn is_thread_start(&self, ip: u64, caller: bool) -> bool {
        let probe = if caller { ip.saturating_sub(1) } else { ip };
        self.symbols
            .lookup(self.target, probe)
            .is_some_and(|s| known::is_one_of(&s.function, known::OUTERMOST_FRAMES))
    }
}

/// A thread's stack bounds in a view: the TEB's [DeallocationStack or StackLimit, StackBase)
/// when it holds the stack pointer, else the stack range the thread list captured, else the
/// captured memory range around the stack pointer, else 64 KiB above it.
pub fn thread_bounds(view: &ProcessView, index: usize, sp: u64) -> StackBounds {
    if let Some((low, high)) = view.teb_stack_range(index) {
        if sp >= low && sp < high {
            return StackBounds { low, high };
        }
    }
    let t = view.target();
    if let Some(th) = t.threads().get(index) {
        let end = th.stack_start.saturating_add(th.stack_size);
        if th.stack_size > 0 && sp >= th.stack_start && sp < end {
            return StackBounds {
                low: th.stack_start,
                high: end,
            };
        }
    }
    let captured = t
        .captured_ranges()
        .iter()
        .find(|r| sp >= r.0 && sp < r.0.saturating_add(r.1));
    match captured {
        Some(&(base, size)) => StackBounds {
            low: base,
            high: base.saturating_add(size),
        },
        None => StackBounds {
            low: sp,
            high: sp.saturating_add(0x10000),
        },
    }
}

/// Walk thread `index`'s stack in `view` from `ctx` (its own context, the exception's, or a
/// `.cxr` one).
pub fn walk_thread(view: &ProcessView, symbols: &Symbols, index: usize, ctx: &Context) -> Stack {
    let env = Env {
        target: view.target(),
        symbols,
        bounds: thread_bounds(view, index, ctx.sp()),
    };
    walk(&env, ctx)
}

/// Walk a stack from a register context.
pub fn walk(env: &Env, ctx: &Context) -> Stack {
    match ctx.arch() {
        Arch::Amd64 => x64::walk(env, ctx),
        Arch::X86 => x86::walk(env, ctx),
        _ => Stack {
            frames: vec![Frame {
                ip: ctx.ip(),
                sp: ctx.sp(),
                fp: ctx.fp(),
                return_address: 0,
                trust: Trust::Context,
                args: [0; 4],
            }],
            issues: vec![StackIssue::UnsupportedArchitecture],
            registers: Vec::new(),
        },
    }
}
