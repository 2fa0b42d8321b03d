//! Machine code of the synthetic functions, and the unwind descriptions of the same code: x64
//! UNWIND_INFO for `.pdata`, Breakpad `STACK CFI` rows (x64) and `STACK WIN` records (x86).
//!
//! Every function has one of three shapes ([`Shape`]) and is laid out the same way:
//!
//! ```text
//! prolog      x64: [push rbp] [sub rsp, N]        x86: [push ebp; mov ebp, esp] [sub esp, N]
//! body        x64: mov rax, qword ptr [rcx]       x86: mov eax, dword ptr [ecx]
//! call sites  nop; call rel32 (a callee in the same module) or, for any other callee,
//!             call qword ptr [rip+disp32] / call dword ptr [abs32]           (6 bytes each)
//!             nop (after the last call, as MSVC puts one between a call and an epilog)
//! epilog      x64: [add rsp, N] [pop rbp] ret     x86: [mov esp, ebp; pop ebp | add esp, N] ret
//! padding     int 3
//! ```
//!
//! A system-call stub instead holds `mov r10, rcx; mov eax, nr; syscall; ret` (x64) or
//! `mov eax, nr; mov edx, esp; sysenter; ret` (x86), and its "current instruction" is the `ret`
//! after the system call, where a waiting thread's instruction pointer rests.
//!
//! A call to a function of the same module is direct (`call rel32`, with a one-byte `nop` in
//! front so every call site has the same length whatever its callee); a call to another module
//! (or to no callee named) goes through a pointer slot in `.rdata`, as calls through the import
//! address table do, so any function can call any other whatever the distance between modules.
//! The stack checks find a `call` before every return address, as they would in real code.

/// What the prolog does; decides where the return address sits relative to the stack pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shape {
    /// A function with a frame: allocates `locals` bytes (`sub rsp/esp, N`) and, with
    /// `save_fp`, saves the frame pointer first (x64: `push rbp`, a non-volatile register save
    /// described by UWOP_PUSH_NONVOL; x86: `push ebp; mov ebp, esp`, an EBP frame).
    Frame { locals: u32, save_fp: bool },
    /// No prolog at all: the return address is at the stack pointer. Makes no calls.
    Leaf,
    /// A system-call stub with the given service number: a leaf whose current instruction is
    /// the one after the system call.
    Syscall(u32),
}

/// Length of one call site on both machines: `90 E8 rel32` or `FF 15` + a 32-bit
/// displacement (x64) or address (x86).
pub const CALL_LEN: u32 = 6;

/// How a call site reaches its callee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOperand {
    /// `call rel32` to this address.
    Direct(u64),
    /// `call [slot]` through the pointer slot at this address.
    Indirect(u64),
}

/// Where the parts of a function's code lie (offsets from its first byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CodeLayout {
    pub shape: Shape,
    pub x64: bool,
    /// Bytes of prolog (UNWIND_INFO.SizeOfProlog on x64).
    pub prolog_len: u32,
    /// The instruction a top frame rests on ([`crate::At::Body`]).
    pub body: u32,
    /// The first call instruction.
    pub first_call: u32,
    pub calls: u32,
    /// The first epilog instruction.
    pub epilog: u32,
    /// Bytes of code in all (the rest of the function up to its declared size is `int 3`).
    pub len: u32,
    /// Bytes from the stack pointer in the body up to the return address slot.
    pub frame: u32,
}

impl CodeLayout {
    /// Lay out a function of `shape` with `calls` call sites.
    pub fn new(x64: bool, shape: Shape, calls: u32) -> CodeLayout {
        let (prolog_len, body_len, frame, epilog_len) = match (shape, x64) {
            (Shape::Frame { locals, save_fp }, true) => {
                let sub = sub_len(true, locals);
                (
                    save_fp as u32 + sub,
                    3,
                    locals + 8 * save_fp as u32,
                    sub + save_fp as u32 + 1,
                )
            }
            (Shape::Frame { locals, save_fp }, false) => {
                let sub = sub_len(false, locals);
                let epilog = if save_fp { 3 } else { sub } + 1;
                (
                    3 * save_fp as u32 + sub,
                    2,
                    locals + 4 * save_fp as u32,
                    epilog,
                )
            }
            (Shape::Leaf, true) => (0, 3, 0, 1),
            (Shape::Leaf, false) => (0, 2, 0, 1),
            // mov r10, rcx; mov eax, nr; syscall | mov eax, nr; mov edx, esp; sysenter
            (Shape::Syscall(_), true) => (0, 10, 0, 1),
            (Shape::Syscall(_), false) => (0, 9, 0, 1),
        };
        if !matches!(shape, Shape::Frame { .. }) {
            assert_eq!(calls, 0, "a leaf or system-call stub makes no calls");
        }
        let first_call = prolog_len + body_len;
        let nop = (calls > 0) as u32;
        let epilog = first_call + calls * CALL_LEN + nop;
        // A system-call stub's current instruction is its `ret`, right after the system call.
        let body = match shape {
            Shape::Syscall(_) => prolog_len + body_len,
            _ => prolog_len,
        };
        CodeLayout {
            shape,
            x64,
            prolog_len,
            body,
            first_call,
            calls,
            epilog,
            len: epilog + epilog_len,
            frame,
        }
    }

    fn locals(&self) -> u32 {
        match self.shape {
            Shape::Frame { locals, .. } => locals,
            _ => 0,
        }
    }

    fn save_fp(&self) -> bool {
        matches!(self.shape, Shape::Frame { save_fp: true, .. })
    }

    /// The code bytes of the function at `addr`; `call(n)` says how call site `n` reaches its
    /// callee.
    pub fn emit(&self, addr: u64, call: &dyn Fn(u32) -> CallOperand) -> Vec<u8> {
        let mut c = Vec::with_capacity(self.len as usize);
        let n = self.locals();
        match (self.shape, self.x64) {
            (Shape::Syscall(nr), true) => {
                c.extend_from_slice(&[0x4c, 0x8b, 0xd1, 0xb8]); // mov r10, rcx; mov eax, imm32
                c.extend_from_slice(&nr.to_le_bytes());
                c.extend_from_slice(&[0x0f, 0x05]); // syscall
            }
            (Shape::Syscall(nr), false) => {
                c.push(0xb8); // mov eax, imm32
                c.extend_from_slice(&nr.to_le_bytes());
                c.extend_from_slice(&[0x8b, 0xd4, 0x0f, 0x34]); // mov edx, esp; sysenter
            }
            (_, x64) => {
                if self.save_fp() {
                    c.push(0x55); // push rbp / push ebp
                    if !x64 {
                        c.extend_from_slice(&[0x8b, 0xec]); // mov ebp, esp
                    }
                }
                c.extend_from_slice(&stack_adjust(x64, n, 5)); // sub rsp/esp, N (/5)
                debug_assert_eq!(c.len() as u32, self.prolog_len);
                if x64 {
                    c.extend_from_slice(&[0x48, 0x8b, 0x01]); // mov rax, qword ptr [rcx]
                } else {
                    c.extend_from_slice(&[0x8b, 0x01]); // mov eax, dword ptr [ecx]
                }
                for i in 0..self.calls {
                    let at = addr + (self.first_call + i * CALL_LEN) as u64;
                    let next = (at + CALL_LEN as u64) as i64;
                    match call(i) {
                        CallOperand::Direct(target) => {
                            // nop; call rel32 (relative to the next instruction).
                            c.extend_from_slice(&[0x90, 0xe8]);
                            c.extend_from_slice(&((target as i64 - next) as u32).to_le_bytes());
                        }
                        CallOperand::Indirect(slot) => {
                            // call qword ptr [rip+disp32] counts from the next instruction;
                            // call dword ptr [abs32] names the slot itself.
                            let operand = if x64 {
                                (slot as i64 - next) as u32
                            } else {
                                slot as u32
                            };
                            c.extend_from_slice(&[0xff, 0x15]);
                            c.extend_from_slice(&operand.to_le_bytes());
                        }
                    }
                }
                if self.calls > 0 {
                    c.push(0x90);
                }
                debug_assert_eq!(c.len() as u32, self.epilog);
                if self.save_fp() && !x64 {
                    c.extend_from_slice(&[0x8b, 0xe5, 0x5d]); // mov esp, ebp; pop ebp
                } else {
                    c.extend_from_slice(&stack_adjust(x64, n, 0)); // add rsp/esp, N (/0)
                    if self.save_fp() {
                        c.push(0x5d); // pop rbp
                    }
                }
            }
        }
        c.push(0xc3); // ret
        debug_assert_eq!(c.len() as u32, self.len);
        c
    }

    /// UNWIND_INFO (x64): Version 1, no flags, SizeOfProlog, CountOfCodes, no frame register,
    /// then the UNWIND_CODEs in reverse prolog order, padded to an even count.
    pub fn unwind_info(&self) -> Vec<u8> {
        let mut codes: Vec<[u8; 2]> = Vec::new();
        let n = self.locals();
        let fp = self.save_fp() as u8;
        if n > 0 {
            let at = self.prolog_len as u8;
            if n <= 128 {
                // UWOP_ALLOC_SMALL (2): OpInfo = (size - 8) / 8.
                codes.push([at, ((((n - 8) / 8) as u8) << 4) | 2]);
            } else if n <= 512 * 1024 - 8 {
                // UWOP_ALLOC_LARGE (1), OpInfo 0: the next slot holds size / 8.
                codes.push([at, 1]);
                codes.push(((n / 8) as u16).to_le_bytes());
            } else {
                // UWOP_ALLOC_LARGE (1), OpInfo 1: the next two slots hold the size.
                codes.push([at, 0x11]);
                codes.push((n as u16).to_le_bytes());
                codes.push(((n >> 16) as u16).to_le_bytes());
            }
        }
        if fp != 0 {
            // UWOP_PUSH_NONVOL (0) of RBP (register 5), ending at prolog offset 1.
            codes.push([1, 5 << 4]);
        }
        let mut out = vec![1, self.prolog_len as u8, codes.len() as u8, 0];
        for c in &codes {
            out.extend_from_slice(c);
        }
        if codes.len() % 2 == 1 {
            out.extend_from_slice(&[0, 0]);
        }
        out
    }

    /// Breakpad `STACK CFI` lines (x64) for the function at `rva` of `size` bytes: the CFA and
    /// the saved registers at every instruction boundary where they change.
    pub fn cfi(&self, rva: u32, size: u32) -> Vec<String> {
        let mut v = vec![format!(
            "STACK CFI INIT {rva:x} {size:x} .cfa: $rsp 8 + .ra: .cfa 8 - ^"
        )];
        if let Shape::Frame { locals, save_fp } = self.shape {
            if save_fp {
                v.push(format!(
                    "STACK CFI {:x} .cfa: $rsp 16 + $rbp: .cfa 16 - ^",
                    rva + 1
                ));
            }
            let pushed = 8 + 8 * save_fp as u32;
            if locals > 0 {
                v.push(format!(
                    "STACK CFI {:x} .cfa: $rsp {} +",
                    rva + self.prolog_len,
                    locals + pushed
                ));
                let add = sub_len(true, locals);
                v.push(format!(
                    "STACK CFI {:x} .cfa: $rsp {pushed} +",
                    rva + self.epilog + add
                ));
            }
            if save_fp {
                v.push(format!(
                    "STACK CFI {:x} .cfa: $rsp 8 +",
                    rva + self.epilog + sub_len(true, locals) + 1
                ));
            }
        }
        v
    }

    /// The Breakpad `STACK WIN` record (x86, type 4 = frame data with a program) for the
    /// function at `rva` of `size` bytes. EBP frames restore through the saved EBP; the others
    /// find the return address above their locals (`.raSearch`).
    pub fn stack_win(&self, rva: u32, size: u32) -> String {
        let locals = self.locals();
        let (epilog, program) = if self.save_fp() {
            (
                self.len - self.epilog,
                "$T0 $ebp = $eip $T0 4 + ^ = $ebp $T0 ^ = $esp $T0 8 + =",
            )
        } else {
            (0, "$T0 .raSearch = $eip $T0 ^ = $esp $T0 4 + =")
        };
        format!(
            "STACK WIN 4 {rva:x} {size:x} {:x} {epilog:x} 0 0 {locals:x} 0 1 {program}",
            self.prolog_len
        )
    }
}

/// Bytes of `sub/add rsp|esp, n` (none for 0).
fn sub_len(x64: bool, n: u32) -> u32 {
    match n {
        0 => 0,
        1..=0x7f => 3 + x64 as u32,
        _ => 6 + x64 as u32,
    }
}

/// `sub` (reg field 5) or `add` (0) of `n` to the stack pointer: `[REX.W] 83 /r ib` or
/// `[REX.W] 81 /r id`, ModRM 11 reg 100 (rsp/esp).
fn stack_adjust(x64: bool, n: u32, op: u8) -> Vec<u8> {
    let mut v = Vec::new();
    if n == 0 {
        return v;
    }
    if x64 {
        v.push(0x48);
    }
    let modrm = 0xc4 | (op << 3);
    if n <= 0x7f {
        v.extend_from_slice(&[0x83, modrm, n as u8]);
    } else {
        v.extend_from_slice(&[0x81, modrm]);
        v.extend_from_slice(&n.to_le_bytes());
    }
    v
}

/// Round a requested local size to what the machine's calling convention keeps: x64 frames
/// leave the stack pointer 16-byte aligned in the body (the return address makes the entry
/// value 8 mod 16), x86 ones 4-byte aligned.
pub fn round_locals(x64: bool, locals: u32, save_fp: bool) -> u32 {
    if x64 {
        let mut n = locals.div_ceil(8) * 8;
        if (n + 8 * save_fp as u32) % 16 != 8 {
            n += 8;
        }
        n
    } else {
        locals.div_ceil(4) * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x64_frame_code_and_unwind_agree() {
        let l = CodeLayout::new(
            true,
            Shape::Frame {
                locals: 0x30,
                save_fp: true,
            },
            2,
        );
        assert_eq!(l.prolog_len, 5);
        assert_eq!(l.frame, 0x38);
        let code = l.emit(0x1000, &|n| CallOperand::Indirect(0x3000 + 8 * n as u64));
        assert_eq!(&code[..5], &[0x55, 0x48, 0x83, 0xec, 0x30]);
        // First call: FF 15 with the displacement from its end (0x1000+8+6) to the slot 0x3000.
        assert_eq!(&code[8..14], &[0xff, 0x15, 0xf2, 0x1f, 0, 0]);
        assert_eq!(
            &code[code.len() - 7..],
            &[0x90, 0x48, 0x83, 0xc4, 0x30, 0x5d, 0xc3]
        );
        // UWOP_ALLOC_SMALL 0x30 at offset 5, UWOP_PUSH_NONVOL rbp at 1.
        assert_eq!(l.unwind_info(), vec![1, 5, 2, 0, 5, 0x52, 1, 0x50]);
    }

    #[test]
    fn calls_within_the_module_are_direct() {
        let l = CodeLayout::new(
            true,
            Shape::Frame {
                locals: 0x28,
                save_fp: false,
            },
            2,
        );
        let code = l.emit(0x1000, &|n| {
            if n == 0 {
                CallOperand::Direct(0x900)
            } else {
                CallOperand::Indirect(0x3000)
            }
        });
        // nop; call 0x900 from 0x1007: rel32 = 0x900 - 0x100d.
        assert_eq!(&code[7..13], &[0x90, 0xe8, 0xf3, 0xf8, 0xff, 0xff]);
        assert_eq!(&code[13..15], &[0xff, 0x15]);
    }

    #[test]
    fn large_frames_use_alloc_large() {
        let l = CodeLayout::new(
            true,
            Shape::Frame {
                locals: 0x1008,
                save_fp: false,
            },
            1,
        );
        assert_eq!(l.prolog_len, 7);
        assert_eq!(l.unwind_info(), vec![1, 7, 2, 0, 7, 1, 0x01, 0x02]);
    }

    #[test]
    fn locals_keep_the_stack_aligned() {
        assert_eq!(round_locals(true, 0x20, false), 0x28);
        assert_eq!(round_locals(true, 0x20, true), 0x20);
        assert_eq!(round_locals(true, 0, false), 8);
        assert_eq!(round_locals(false, 0x11, true), 0x14);
    }

    #[test]
    fn x86_ebp_frame_code() {
        let l = CodeLayout::new(
            false,
            Shape::Frame {
                locals: 0x10,
                save_fp: true,
            },
            1,
        );
        let code = l.emit(0x40_1000, &|_| CallOperand::Indirect(0x40_3000));
        assert_eq!(
            code,
            vec![
                0x55, 0x8b, 0xec, 0x83, 0xec, 0x10, 0x8b, 0x01, 0xff, 0x15, 0x00, 0x30, 0x40, 0x00,
                0x90, 0x8b, 0xe5, 0x5d, 0xc3
            ]
        );
        assert_eq!(l.frame, 0x14);
    }
}
