//! Threads and their stacks. A [`Chain`] names the functions a thread is in, innermost first;
//! the stack is laid out from the stack base down, one frame per function, with each return
//! address in the slot the function's prolog puts it (the unwind data of [`crate::code`] says
//! the same), the saved frame pointer below it where the function saves one (x86: the EBP
//! chain), and the stack pointer of each frame where its body runs. The register context of the
//! thread is that of the innermost frame.

use dumpdiag_target::ThreadTimes;

use crate::bytes::ptr_bytes;
use crate::code::CodeLayout;
use crate::context::Registers;

/// A function of a module: its address and code layout. Handed out by
/// [`crate::Process::function`]; every address a test needs about a function comes from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Func {
    /// Index of the module in the process's module list.
    pub module: usize,
    /// Index of the function in its module.
    pub index: usize,
    /// Address of the function's first byte.
    pub addr: u64,
    /// Declared size in bytes.
    pub size: u32,
    pub(crate) code: CodeLayout,
}

impl Func {
    /// The return address after call site `n` (0-based) of this function: what a frame of
    /// this function that called out through site `n` returns to.
    pub fn call_site(&self, n: u32) -> u64 {
        assert!(
            n < self.code.calls,
            "call site {n} of a function with {} call sites",
            self.code.calls
        );
        self.addr + (self.code.first_call + (n + 1) * crate::code::CALL_LEN) as u64
    }

    /// The address of call instruction `n` itself.
    pub fn call_instruction(&self, n: u32) -> u64 {
        self.call_site(n) - crate::code::CALL_LEN as u64
    }

    /// The instruction a top frame rests on by default ([`At::Body`]).
    pub fn body(&self) -> u64 {
        self.addr + self.code.body as u64
    }

    /// `addr + offset`.
    pub fn at(&self, offset: u32) -> u64 {
        self.addr + offset as u64
    }

    /// The first address after the function.
    pub fn end(&self) -> u64 {
        self.addr + self.size as u64
    }

    /// Bytes from the stack pointer in the body up to the return address slot.
    pub fn frame_size(&self) -> u32 {
        self.code.frame
    }

    /// Does the prolog save the frame pointer (push rbp / push ebp; mov ebp, esp)?
    pub fn saves_fp(&self) -> bool {
        matches!(
            self.code.shape,
            crate::code::Shape::Frame { save_fp: true, .. }
        )
    }

    /// Number of call sites.
    pub fn calls(&self) -> u32 {
        self.code.calls
    }
}

/// Where the innermost frame's instruction pointer rests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum At {
    /// The function's body: its first instruction after the prolog (for a system-call stub,
    /// the instruction after the system call).
    #[default]
    Body,
    /// The return address of call site `n`, as though the callee had just returned.
    Call(u32),
    /// Any offset into the function.
    Offset(u32),
}

/// The functions a thread is in, innermost first: `top` (resting at `at`) was called from the
/// first caller through the given call site, and so on outwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub top: Func,
    pub at: At,
    /// (caller, call site through which it called the frame inside it).
    pub callers: Vec<(Func, u32)>,
}

impl Chain {
    pub fn new(top: Func) -> Chain {
        Chain {
            top,
            at: At::Body,
            callers: Vec::new(),
        }
    }

    /// Where the top frame rests.
    pub fn at(mut self, at: At) -> Chain {
        self.at = at;
        self
    }

    /// Called from `caller` through its first call site.
    pub fn called_from(self, caller: Func) -> Chain {
        self.called_from_site(caller, 0)
    }

    /// Called from `caller` through call site `site`.
    pub fn called_from_site(mut self, caller: Func, site: u32) -> Chain {
        self.callers.push((caller, site));
        self
    }

    /// Functions innermost first.
    pub fn functions(&self) -> impl Iterator<Item = Func> + '_ {
        std::iter::once(self.top).chain(self.callers.iter().map(|c| c.0))
    }
}

impl From<Func> for Chain {
    fn from(f: Func) -> Chain {
        Chain::new(f)
    }
}

/// Innermost first, each calling through its first call site.
impl From<&[Func]> for Chain {
    fn from(fs: &[Func]) -> Chain {
        let (top, rest) = fs.split_first().expect("a chain has at least one function");
        rest.iter().fold(Chain::new(*top), |c, &f| c.called_from(f))
    }
}

impl<const N: usize> From<[Func; N]> for Chain {
    fn from(fs: [Func; N]) -> Chain {
        Chain::from(&fs[..])
    }
}

impl From<Vec<Func>> for Chain {
    fn from(fs: Vec<Func>) -> Chain {
        Chain::from(&fs[..])
    }
}

/// One laid-out frame, as an exact walk must find it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub func: Func,
    /// The instruction pointer of the frame (a return address for all but the innermost).
    pub ip: u64,
    /// The stack pointer in the frame's body.
    pub sp: u64,
    /// The frame pointer value (rbp / ebp) in the frame.
    pub fp: u64,
    /// Where the frame's return address lies.
    pub return_slot: u64,
    /// The return address (the next frame's ip; 0 for the outermost frame).
    pub return_address: u64,
}

/// A thread: its identity, TEB and stack geometry, frames and what else the test put there.
/// Handed out by [`crate::Process::thread`]; the methods record values written at build time.
#[derive(Debug, Clone)]
pub struct Thread {
    pub id: u32,
    /// Address of the TEB.
    pub teb: u64,
    /// NtTib.StackBase: the top of the stack.
    pub stack_base: u64,
    /// NtTib.StackLimit: the lowest committed address (the stack is captured from here up).
    pub stack_limit: u64,
    /// DeallocationStack: the base of the stack's reservation.
    pub deallocation_stack: u64,
    pub suspend_count: u32,
    pub priority_class: u32,
    pub priority: u32,
    /// Written to the ThreadNames stream when set.
    pub name: Option<String>,
    /// TEB LastErrorValue, LastStatusValue, CountOfOwnedCriticalSections.
    pub last_error: u32,
    pub last_status: u32,
    pub owned_critical_sections: u32,
    /// TEB TlsSlots (slot, value).
    pub tls: Vec<(u32, u64)>,
    /// MINIDUMP_THREAD_INFO of the ThreadInfoList stream.
    pub times: ThreadTimes,
    /// The laid-out frames, innermost first.
    pub frames: Vec<Frame>,
    /// Registers the test set (they win over the ones the chain gives).
    pub registers: Registers,
    pub(crate) ptr: u64,
    pub(crate) writes: Vec<(u64, Vec<u8>)>,
    /// Lowest address handed out below the stack pointer so far.
    pub(crate) below: u64,
    /// The 64-bit side of a thread of a WOW64 process (None in a native process): `teb`,
    /// the stack and the frames above are then the thread's 32-bit ones.
    pub wow64: Option<crate::wow64::Wow64Thread>,
}

impl Thread {
    /// Lay out `chain` on a stack whose top is `stack_base` (pointer size `ptr`), leaving room
    /// above the outermost frame for its arguments.
    pub(crate) fn lay_out(chain: &Chain, stack_base: u64, ptr: u64) -> Vec<Frame> {
        // The outermost return slot: x64 entry stack pointers are 8 mod 16 (a call just pushed
        // the return address onto a 16-byte aligned stack).
        let mut slot = if ptr == 8 {
            stack_base - 0x38
        } else {
            stack_base - 0x20
        };
        let funcs: Vec<(Func, u32)> = std::iter::once((chain.top, 0))
            .chain(chain.callers.iter().copied())
            .collect();
        let mut caller_fp = 0;
        let mut frames = Vec::with_capacity(funcs.len());
        for (i, &(f, site)) in funcs.iter().enumerate().rev() {
            let sp = slot - f.code.frame as u64;
            let fp = if f.saves_fp() { slot - ptr } else { caller_fp };
            let ip = if i == 0 {
                match chain.at {
                    At::Body => f.body(),
                    At::Call(n) => f.call_site(n),
                    At::Offset(o) => f.at(o),
                }
            } else {
                f.call_site(site)
            };
            frames.push(Frame {
                func: f,
                ip,
                sp,
                fp,
                return_slot: slot,
                return_address: 0,
            });
            caller_fp = fp;
            slot = sp - ptr;
        }
        frames.reverse();
        for i in 0..frames.len().saturating_sub(1) {
            frames[i].return_address = frames[i + 1].ip;
        }
        frames
    }

    /// The words the chain puts on the stack: return addresses and saved frame pointers.
    pub(crate) fn frame_words(&self) -> Vec<(u64, Vec<u8>)> {
        Thread::chain_words(&self.frames, self.ptr)
    }

    /// The words laid-out `frames` put on a stack of pointer size `ptr` (also a WOW64
    /// thread's 64-bit chain).
    pub(crate) fn chain_words(frames: &[Frame], ptr: u64) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            out.push((f.return_slot, ptr_bytes(f.return_address, ptr)));
            if f.func.saves_fp() {
                let caller_fp = frames.get(i + 1).map(|c| c.fp).unwrap_or(0);
                out.push((f.return_slot - ptr, ptr_bytes(caller_fp, ptr)));
            }
        }
        out
    }

    /// The stack pointer of the innermost frame.
    pub fn sp(&self) -> u64 {
        self.frames[0].sp
    }

    /// The instruction pointer of the innermost frame.
    pub fn ip(&self) -> u64 {
        self.frames[0].ip
    }

    /// Set a register of the thread's context (`"rcx"`, `"eax"`...).
    pub fn reg(&mut self, name: &str, value: u64) -> &mut Thread {
        self.registers.set(name, value);
        self
    }

    /// The thread's context: ip, sp and fp of the innermost frame, then the registers set.
    pub fn context(&self) -> Registers {
        self.frame_context(0)
    }

    /// The context "at" frame `n`: its ip, sp and fp, with the other registers the test set.
    /// What an exception's context is when the thread faulted in frame `n`.
    pub fn frame_context(&self, n: usize) -> Registers {
        let f = &self.frames[n];
        let names = if self.ptr == 8 {
            ["rip", "rsp", "rbp"]
        } else {
            ["eip", "esp", "ebp"]
        };
        let mut r = Registers::default();
        r.set(names[0], f.ip)
            .set(names[1], f.sp)
            .set(names[2], f.fp);
        for (k, v) in &self.registers.0 {
            if n == 0 || !names.contains(&k.as_str()) {
                r.set(k, *v);
            }
        }
        r
    }

    /// Pointer-sized words just above frame `frame`'s return address: the arguments the frame
    /// was called with as `kb` shows them ("Args to Child"; on x64 the home slots of rcx, rdx,
    /// r8, r9). They lie in the bottom of the caller's frame.
    pub fn args(&mut self, frame: usize, words: &[u64]) -> &mut Thread {
        let at = self.frames[frame].return_slot + self.ptr;
        // The caller's frame up to its saved frame pointer, or the room left above the
        // outermost frame.
        let room = match self.frames.get(frame + 1) {
            Some(caller) => caller.return_slot - if caller.func.saves_fp() { self.ptr } else { 0 },
            None => self.stack_base,
        };
        assert!(
            at + words.len() as u64 * self.ptr <= room,
            "{} argument words do not fit in the caller's frame",
            words.len()
        );
        for (i, w) in words.iter().enumerate() {
            let a = at + i as u64 * self.ptr;
            self.writes.push((a, ptr_bytes(*w, self.ptr)));
        }
        self
    }

    /// Bytes in frame `frame`'s locals at `offset` from its stack pointer; returns their
    /// address.
    pub fn local(&mut self, frame: usize, offset: u64, bytes: &[u8]) -> u64 {
        let f = self.frames[frame];
        let end = f.return_slot - if f.func.saves_fp() { self.ptr } else { 0 };
        let at = f.sp + offset;
        assert!(
            at + bytes.len() as u64 <= end,
            "{} bytes at +{offset:#x} leave frame {frame}'s locals",
            bytes.len()
        );
        self.writes.push((at, bytes.to_vec()));
        at
    }

    /// A pointer-sized word in frame `frame`'s locals; returns its address.
    pub fn local_word(&mut self, frame: usize, offset: u64, value: u64) -> u64 {
        let b = ptr_bytes(value, self.ptr);
        self.local(frame, offset, &b)
    }

    /// Bytes left below the innermost stack pointer (what an exception dispatcher or a callee
    /// that returned leaves there), 16-byte aligned, each call below the previous one; returns
    /// their address.
    pub fn below_sp(&mut self, bytes: &[u8]) -> u64 {
        let at = (self.below - bytes.len() as u64) & !0xf;
        assert!(
            at >= self.stack_limit,
            "below_sp leaves the committed stack"
        );
        self.below = at;
        self.writes.push((at, bytes.to_vec()));
        at
    }

    /// Any bytes anywhere (applied after the stack's own words).
    pub fn write(&mut self, addr: u64, bytes: &[u8]) -> &mut Thread {
        self.writes.push((addr, bytes.to_vec()));
        self
    }

    pub fn name(&mut self, name: &str) -> &mut Thread {
        self.name = Some(name.into());
        self
    }

    pub fn last_error(&mut self, value: u32) -> &mut Thread {
        self.last_error = value;
        self
    }

    pub fn tls(&mut self, slot: u32, value: u64) -> &mut Thread {
        assert!(slot < 64, "TlsSlots has 64 entries");
        self.tls.push((slot, value));
        self
    }

    pub fn times(&mut self, times: ThreadTimes) -> &mut Thread {
        self.times = times;
        self
    }

    /// A WOW64 thread caught while running its 32-bit code (not inside the 64-bit layer): the
    /// dump's 64-bit context then holds the x86 registers with the 32-bit code selector 0x23.
    /// Panics in a native process.
    pub fn in_32bit_code(&mut self) -> &mut Thread {
        self.wow64
            .as_mut()
            .expect("in_32bit_code: a thread of a WOW64 process (Process::wow64)")
            .in_32bit_code = true;
        self
    }
}
