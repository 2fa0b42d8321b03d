//! x86 (and the 32-bit side of WOW64). For each frame, best first:
//!
//! 1. frame data: a Breakpad STACK WIN record (type 4 program or type 0 FPO) or the PDB's
//!    FPO / FrameData record, evaluated as Breakpad does (`.raSearchStart` = esp + the callee's
//!    parameter size + locals + saved registers, or ebp + 4 for a program that aligns the
//!    stack with `@`; FPO frames that keep EBP in their saved-register area give it back);
//!    failing a return address inside a module, the few words above `.raSearchStart`;
//! 2. STACK CFI of a Breakpad .sym;
//! 3. for the context frame only, a frameless leaf: the instruction at eip is a `ret` (every
//!    system-call stub is caught there) or the function's prologue has not yet saved EBP, so
//!    the return address is at the stack pointer;
//! 4. the EBP chain, which walks system DLLs without symbols; a chain that reaches a zero
//!    return address ends the stack (the outermost frame's caller);
//! 5. scanning the stack for a return address into executable code after a call, never
//!    past a thread's outermost function.
//!
//! Each frame records the size of the parameters its function takes off the stack, which the
//! frame data of its caller's caller needs (`.cbCalleeParams`).

use std::collections::HashMap;

use crate::{cfi, postfix, Env, Frame, Stack, Trust, MAX_FRAMES};
use dumpdiag_symbols::breakpad::StackWin;
use dumpdiag_symbols::ModuleSymbols;
use dumpdiag_target::{Context, MemoryExt};

/// Largest believable x86 frame: rust-minidump's bound when it recovers EBP after a scan
/// (99.5% of frames of popular libraries are smaller).
const MAX_FRAME_GAP: u64 = 128 * 1024;
/// Words above `.raSearchStart` searched when frame data lands outside every module.
const RA_SEARCH_WORDS: u64 = 40;

#[derive(Clone, Copy, Debug)]
struct Regs {
    eip: u64,
    esp: u64,
    ebp: Option<u64>,
    ebx: Option<u64>,
    esi: Option<u64>,
    edi: Option<u64>,
}

impl Regs {
    /// The caller of a frame that kept the callee-saved registers: only eip and esp change.
    fn returning_to(&self, eip: u64, esp: u64) -> Regs {
        Regs { eip, esp, ..*self }
    }
}

/// What unwinding one frame gave.
enum Step {
    Caller(Regs, Trust),
    /// The frame is the thread's outermost: its return address is zero.
    End,
    None,
}

/// The frame-data record for `ip` (a caller's ip is probed one byte back, inside its call).
fn frame_data(env: &Env, probe: u64) -> Option<StackWin> {
    let idx = env
        .target
        .modules()
        .iter()
        .position(|m| m.contains(probe))?;
    let rva = probe - env.target.modules()[idx].base;
    match env.symbols.module(env.target, idx)? {
        ModuleSymbols::Breakpad(b, _) => b.stack_win(rva),
        ModuleSymbols::Pdb(p) => p.frame_data_at(rva).cloned(),
        _ => None,
    }
}

/// Does `a` look like somewhere code can return to (for checking a computed return address,
/// not for scanning)?
fn in_code(env: &Env, a: u64) -> bool {
    a >= 0x1000 && (env.target.module_at(a).is_some() || env.is_executable_memory(a))
}

fn stack_word(env: &Env, a: u64) -> Option<u64> {
    env.bounds
        .contains(a)
        .then(|| env.mem().read_u32(a).map(u64::from))
        .flatten()
}

/// Unwind with a STACK WIN / PDB frame-data record, as Breakpad's x86 walker does.
fn unwind_frame_data(
    env: &Env,
    r: &Regs,
    w: &StackWin,
    callee_params: u64,
    context_frame: bool,
) -> Step {
    let mem = env.mem();
    let (program, recover_ebp) = match &w.program {
        Some(p) => (p.clone(), true),
        // FPO: the return address above locals and saved registers; a function that uses EBP
        // as a general register saved the caller's with the others.
        None if w.allocates_base_pointer => (
            "$eip .raSearchStart ^ = $ebp $esp .cbCalleeParams + .cbSavedRegs + 8 - ^ = \
             $esp .raSearchStart 4 + ="
                .to_string(),
            true,
        ),
        None => (
            "$eip .raSearchStart ^ = $esp .raSearchStart 4 + =".to_string(),
            false,
        ),
    };
    let mut ra_search = if program.contains('@') {
        // The function aligned its stack: only EBP leads back (it points at the saved EBP,
        // the return address above it).
        match r.ebp {
            Some(ebp) => ebp.wrapping_add(4) & 0xffff_ffff,
            None => return Step::None,
        }
    } else {
        r.esp
            .wrapping_add(callee_params)
            .wrapping_add(w.local_size as u64)
            .wrapping_add(w.saved_register_size as u64)
            & 0xffff_ffff
    };
    // A frame-pointer-omitted system call caught after its return can leave its own return
    // address on top of the stack: skip it.
    if context_frame && w.program.is_none() && mem.read_u32(ra_search).map(u64::from) == Some(r.eip)
    {
        ra_search = ra_search.wrapping_add(4);
    }
    // The callee's registers; $eip must be assigned by the program itself.
    let mut vars = known_registers(r);
    vars.insert(".raSearch".into(), ra_search);
    vars.insert(".raSearchStart".into(), ra_search);
    vars.insert(".cbCalleeParams".into(), callee_params);
    vars.insert(".cbSavedRegs".into(), w.saved_register_size as u64);
    vars.insert(".cbLocals".into(), w.local_size as u64);
    vars.insert(".cbParams".into(), w.parameter_size as u64);
    let deref = |a: u64| mem.read_u32(a).map(u64::from);
    if postfix::evaluate(&program, &mut vars, &deref, 4).is_none() {
        return Step::None;
    }
    let Some(&eip) = vars.get("$eip") else {
        return Step::None;
    };
    let esp = vars.get("$esp").copied().unwrap_or(r.esp);
    let ebp = vars.get("$ebp").copied();
    if eip == 0 {
        // Frame data says there is no caller: the outermost frame.
        return Step::End;
    }
    if esp <= r.esp {
        return Step::None;
    }
    let mut next = Regs {
        eip,
        esp,
        ebp,
        ebx: vars.get("$ebx").copied(),
        esi: vars.get("$esi").copied(),
        edi: vars.get("$edi").copied(),
    };
    let mut trust = Trust::FrameData;
    let mut offset = 0;
    if !in_code(env, eip) {
        // The return address is not where the record says (stack alignment, a wrong callee
        // parameter size): Breakpad looks a little higher for one.
        let start = ra_search.wrapping_add(4);
        let found = (0..RA_SEARCH_WORDS)
            .map(|i| start.wrapping_add(i * 4))
            .find_map(|a| Some((a, stack_word(env, a)?)).filter(|&(_, v)| env.scannable(v)));
        match found {
            Some((slot, v)) => {
                next.eip = v;
                next.esp = slot.wrapping_add(4);
                offset = slot - start;
                trust = Trust::Scan;
            }
            None => return Step::None,
        }
    }
    if recover_ebp {
        // A frame pointer that does not point into the stack (or lies below the return address
        // after frames were skipped) is looked for in the saved-register area instead.
        let skipped =
            trust != Trust::FrameData && ebp.is_some_and(|e| e <= ra_search.wrapping_add(offset));
        let readable = ebp.is_some_and(|e| stack_word(env, e).is_some());
        if skipped || !readable {
            let mut budget = w.saved_register_size as i64 + offset as i64;
            let mut at = ra_search.wrapping_sub(4);
            while budget >= 0 {
                let Some(v) = stack_word(env, at) else { break };
                if stack_word(env, v).is_some() {
                    next.ebp = Some(v);
                    break;
                }
                at = at.wrapping_sub(4);
                budget -= 4;
            }
        }
    }
    Step::Caller(next, trust)
}

/// The callee's registers a Breakpad program may read, by their program names: `$esp` and
/// whichever of `$ebp`, `$ebx`, `$esi`, `$edi` the walk knows at this frame.
fn known_registers(r: &Regs) -> HashMap<String, u64> {
    let mut vars = HashMap::from([("$esp".to_string(), r.esp)]);
    for (k, v) in [
        ("$ebp", r.ebp),
        ("$ebx", r.ebx),
        ("$esi", r.esi),
        ("$edi", r.edi),
    ] {
        if let Some(v) = v {
            vars.insert(k.into(), v);
        }
    }
    vars
}

/// STACK CFI of a Breakpad .sym, for the modules whose symbols describe x86 code that way.
fn unwind_cfi(env: &Env, r: &Regs, caller: bool) -> Option<Regs> {
    let mut regs = known_registers(r);
    regs.insert("$eip".into(), r.eip);
    let out = cfi::unwind(env, &regs, r.eip, caller, 4)?;
    Some(Regs {
        eip: *out.get(".ra")?,
        esp: *out.get("$esp")?,
        ebp: out.get("$ebp").copied(),
        ebx: out.get("$ebx").copied(),
        esi: out.get("$esi").copied(),
        edi: out.get("$edi").copied(),
    })
}

/// The context frame is a frameless leaf: at a `ret` (a system-call stub after its call, a
/// function about to return) or before its prologue saved EBP. Some(caller) when the code at
/// eip says so; the ret's immediate is the parameter size the function pops.
fn unwind_leaf(env: &Env, r: &Regs) -> Option<(Regs, u64)> {
    let code = env.symbols.code_bytes(env.target, r.eip, 3);
    let at_sp = |n: u64| stack_word(env, r.esp.wrapping_add(n));
    match code.as_slice() {
        // ret / ret imm16
        [0xc3, ..] => Some((r.returning_to(at_sp(0)?, r.esp.wrapping_add(4)), 0)),
        [0xc2, lo, hi] => Some((
            r.returning_to(at_sp(0)?, r.esp.wrapping_add(4)),
            u16::from_le_bytes([*lo, *hi]) as u64,
        )),
        // At the function's first instruction (`mov edi,edi` hot-patch pad or `push ebp`).
        [0x8b, 0xff, 0x55] | [0x55, 0x8b, 0xec] => {
            Some((r.returning_to(at_sp(0)?, r.esp.wrapping_add(4)), 0))
        }
        // After `push ebp`, before `mov ebp,esp`: the caller's EBP on top, then the return.
        [0x8b, 0xec, _] => {
            let prev = env.symbols.code_bytes(env.target, r.eip.wrapping_sub(1), 1);
            if prev != [0x55] {
                return None;
            }
            let mut n = r.returning_to(at_sp(4)?, r.esp.wrapping_add(8));
            n.ebp = Some(at_sp(0)?);
            Some((n, 0))
        }
        _ => None,
    }
}

/// The EBP chain: [ebp] the caller's EBP, [ebp+4] the return address.
fn unwind_frame_pointer(env: &Env, r: &Regs) -> Step {
    let Some(ebp) = r.ebp else {
        return Step::None;
    };
    if ebp < r.esp || !env.bounds.contains(ebp) {
        return Step::None;
    }
    let (Some(saved), Some(ra)) = (stack_word(env, ebp), stack_word(env, ebp.wrapping_add(4)))
    else {
        return Step::None;
    };
    if ra == 0 {
        // The outermost frame's EBP slot and return slot both hold zero (the initial
        // context's); a zero return address under a live saved EBP is an overwritten one.
        return if saved == 0 { Step::End } else { Step::None };
    }
    // The chain is followed to a return address that follows no call (the faulting
    // instruction under the exception dispatcher is one, a smashed return slot another): the
    // stack checks report it, as WinDbg shows it.
    if !in_code(env, ra) {
        return Step::None;
    }
    let mut n = r.returning_to(ra, ebp.wrapping_add(8));
    n.ebp = Some(saved);
    Step::Caller(n, Trust::FramePointer)
}

/// The last resort: the first word above esp that is a return address into executable code.
fn unwind_scan(env: &Env, r: &Regs) -> Option<Regs> {
    let (slot, ra) = env.scan(r.esp, 4)?;
    let mut n = r.returning_to(ra, slot.wrapping_add(4));
    // Recover EBP as rust-minidump does: a standard prologue saved it just below the return
    // address; a function that does not use EBP kept the caller's.
    let below = (slot > r.esp)
        .then(|| stack_word(env, slot.wrapping_sub(4)))
        .flatten();
    n.ebp = match below {
        Some(bp)
            if bp > slot && bp - slot <= MAX_FRAME_GAP - 4 && stack_word(env, bp).is_some() =>
        {
            Some(bp)
        }
        _ => r
            .ebp
            .filter(|&e| e >= slot.wrapping_add(4) && stack_word(env, e).is_some()),
    };
    Some(n)
}

pub fn walk(env: &Env, ctx: &Context) -> Stack {
    let g = |n: &str| ctx.get(n);
    let mut r = Regs {
        eip: g("eip").unwrap_or(0),
        esp: g("esp").unwrap_or(0),
        ebp: g("ebp"),
        ebx: g("ebx"),
        esi: g("esi"),
        edi: g("edi"),
    };
    let mut stack = Stack::default();
    let mut trust = Trust::Context;
    // Parameter bytes the previous (callee) frame's function takes: its caller's frame data
    // counts them between its stack pointer and its locals.
    let mut callee_params = 0u64;
    while stack.frames.len() < MAX_FRAMES {
        let context_frame = stack.frames.is_empty();
        let probe = if context_frame {
            r.eip
        } else {
            r.eip.wrapping_sub(1)
        };
        let valid = |n: &Regs| {
            n.esp > r.esp && env.bounds.contains(n.esp.wrapping_sub(4)) && in_code(env, n.eip)
        };
        let mut step = Step::None;
        let mut params = env.symbols.parameter_size(env.target, probe).unwrap_or(0) as u64;
        if let Some(w) = frame_data(env, probe) {
            match unwind_frame_data(env, &r, &w, callee_params, context_frame) {
                Step::Caller(n, t) if valid(&n) => step = Step::Caller(n, t),
                Step::End => step = Step::End,
                _ => {}
            }
        }
        if matches!(step, Step::None) {
            if let Some(n) = unwind_cfi(env, &r, !context_frame).filter(|n| valid(n)) {
                step = Step::Caller(n, Trust::FrameData);
            }
        }
        if matches!(step, Step::None) && context_frame {
            if let Some((n, popped)) = unwind_leaf(env, &r).filter(|(n, _)| valid(n)) {
                params = popped;
                step = Step::Caller(n, Trust::StackPointer);
            }
        }
        if matches!(step, Step::None) {
            let chain = unwind_frame_pointer(env, &r);
            // A context frame the code cannot show frameless (a leaf in its body, a call
            // through a bad pointer, a system-call stub whose code the dump lacks) still is one
            // when the word on top of the stack is a return address the EBP chain does not
            // return to: the EBP then belongs to the caller, and the chain would skip it.
            let leaf = if context_frame && r.ebp.is_none_or(|e| e > r.esp) {
                stack_word(env, r.esp)
                    .filter(|&ra| env.scannable(ra))
                    .filter(|&ra| !matches!(&chain, Step::Caller(c, _) if c.eip == ra))
                    .map(|ra| r.returning_to(ra, r.esp.wrapping_add(4)))
                    .filter(|n| valid(n))
            } else {
                None
            };
            step = match (leaf, chain) {
                (Some(n), _) => Step::Caller(n, Trust::StackPointer),
                (None, Step::Caller(n, t)) if valid(&n) => Step::Caller(n, t),
                (None, Step::End) => Step::End,
                _ => Step::None,
            };
        }
        // Nothing is scanned for past the thread's outermost function.
        if matches!(step, Step::None) && !env.is_thread_start(r.eip, !context_frame) {
            if let Some(n) = unwind_scan(env, &r).filter(|n| valid(n)) {
                step = Step::Caller(n, Trust::Scan);
            }
        }
        stack.null_return = matches!(step, Step::End);
        let next = match step {
            Step::Caller(n, t) => Some((n, t)),
            _ => None,
        };
        let args_from = match &next {
            Some((n, _)) => n.esp,
            None => r
                .ebp
                .map(|e| e.wrapping_add(8))
                .unwrap_or(r.esp.wrapping_add(4)),
        };
        stack.frames.push(Frame {
            ip: r.eip,
            sp: r.esp,
            fp: r.ebp.unwrap_or(0),
            return_address: next.as_ref().map(|n| n.0.eip).unwrap_or(0),
            trust,
            args: env.args_at(args_from, 4),
        });
        match next {
            Some((n, t)) => {
                r = n;
                trust = t;
                callee_params = params;
            }
            None => break,
        }
    }
    stack
}
