//! x64: unwind data from the image in dump memory, read zero-copy from the mapped dump.

use crate::{Env, Frame, FrameRegisters, Stack, Trust, MAX_FRAMES, X64_NONVOLATILE};
use dumpdiag_os::pe;
use dumpdiag_target::{Context, MemoryExt};
use pe_unwind_info::x86_64::{FunctionTableEntries, Register, UnwindState, XmmRegister};

struct Regs<'a> {
    gpr: [u64; 16],
    env: &'a Env<'a>,
    /// The stack address read last: where the next restored register comes from.
    last_read: u64,
    /// Registers the last unwind restored from the stack: (register number, address).
    restored: Vec<(usize, u64)>,
}

impl<'a> Regs<'a> {
    fn new(gpr: [u64; 16], env: &'a Env<'a>) -> Regs<'a> {
        Regs {
            gpr,
            env,
            last_read: 0,
            restored: Vec::new(),
        }
    }
}

fn index(r: Register) -> usize {
    r as usize
}

impl UnwindState for Regs<'_> {
    fn read_register(&mut self, register: Register) -> u64 {
        self.gpr[index(register)]
    }
    fn read_stack(&mut self, addr: u64) -> Option<u64> {
        self.last_read = addr;
        self.env.mem().read_u64(addr)
    }
    fn write_register(&mut self, register: Register, value: u64) {
        if register != Register::RSP {
            self.restored.push((index(register), self.last_read));
        }
        self.gpr[index(register)] = value;
    }
    fn write_xmm_register(&mut self, _: XmmRegister, _: u128) {}
}

/// Unwind one frame with the module's unwind data: from the image in dump memory, else from
/// the image file on the symbol path; None when neither is at hand.
fn unwind_with_pdata(env: &Env, regs: &mut Regs, ip: u64, caller: bool) -> Option<u64> {
    let Some(m) = env.target.module_at(ip) else {
        return unwind_with_function_table(env, regs, ip, caller);
    };
    // A return address may sit just past the end of its call's function: look up ra - 1.
    let rva = (ip - m.base).saturating_sub(caller as u64) as u32;
    let in_dump = pe::read_headers(env.mem(), m.base).and_then(|h| {
        let (pdata_rva, pdata_size) = h.directory(pe::DIR_EXCEPTION)?;
        env.mem()
            .slice(m.base.wrapping_add(pdata_rva as u64), pdata_size as usize)
    });
    if let Some(pdata) = in_dump {
        let base = m.base;
        let size = m.size as u64;
        let mem = env.mem();
        let read = move |rva: u32| -> Option<&[u8]> {
            let a = base.checked_add(rva as u64)?;
            let max = size.checked_sub(rva as u64)? as usize;
            mem.slice(a, max.min(1 << 20))
        };
        return unwind_table(regs, pdata, read, rva);
    }
    let index = env
        .target
        .modules()
        .iter()
        .position(|x| std::ptr::eq(x, m))?;
    let image = env.symbols.image_file(env.target, index)?;
    let (pdata_rva, pdata_size) = image.exception_directory()?;
    let pdata = image.at_rva(pdata_rva, pdata_size as usize)?;
    unwind_table(regs, pdata, |rva: u32| image.at_rva(rva, 1 << 20), rva)
}

/// Code outside every module (JIT) described by the dump's FunctionTable stream: its
/// RUNTIME_FUNCTION entries are relative to the table's base, and the unwind data they point
/// to lies in dump memory.
fn unwind_with_function_table(env: &Env, regs: &mut Regs, ip: u64, caller: bool) -> Option<u64> {
    let ft = env
        .target
        .extras()
        .function_tables
        .iter()
        .find(|t| ip >= t.minimum_address && ip < t.maximum_address)?;
    let base = ft.base_address;
    let rva = u32::try_from((ip - base).saturating_sub(caller as u64)).ok()?;
    let mem = env.mem();
    let read =
        move |rva: u32| -> Option<&[u8]> { mem.slice(base.checked_add(rva as u64)?, 1 << 16) };
    unwind_table(regs, &ft.entries, read, rva)
}

/// Most code bytes an unwind pads up to the function's end (the readers give at most 1 MiB).
const MAX_PADDED_CODE: usize = 1 << 20;

fn unwind_table<'m>(
    regs: &mut Regs,
    pdata: &[u8],
    mut read: impl FnMut(u32) -> Option<&'m [u8]> + 'm,
    rva: u32,
) -> Option<u64> {
    let table = FunctionTableEntries::parse(&pdata[..pdata.len() - pdata.len() % 12]);
    let rva = body_address_for_loop_jump(&table, &mut read, rva);
    // To tell whether the address is in an epilog, pe-unwind-info reads the code from it to the
    // function's end, and indexes past what it is given when the dump holds less (a minidump
    // keeps a little code around each thread's instruction pointer, or none). Code the dump
    // lacks is given as int 3 bytes, which no epilog begins with: the address counts as in the
    // body, as a debugger without the code bytes would also take it.
    // The function's end comes from the image's .pdata: past MAX_PADDED_CODE bytes from the
    // address (more than any reader gives, and than any function needs) the frame is left to
    // the other unwinders rather than padded to a size the file chose.
    let mut too_far = false;
    let padded: Option<Vec<u8>> = table.lookup(rva).and_then(|f| {
        let need = f.end_address.get().checked_sub(rva)? as usize;
        let have = read(rva).unwrap_or(&[]);
        if have.len() >= need {
            return None;
        }
        if need > MAX_PADDED_CODE {
            too_far = true;
            return None;
        }
        let mut code = have.to_vec();
        code.resize(need, 0xcc);
        Some(code)
    });
    if too_far {
        return None;
    }
    let read = |r: u32| match &padded {
        Some(code) if r == rva => Some(code.as_slice()),
        _ => read(r),
    };
    // pe-unwind-info trusts its input; a hostile image must not take the walker down.
    let saved = regs.gpr;
    let (rip, state) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut state = Regs::new(saved, regs.env);
        table
            .unwind_frame(&mut state, read, rva)
            .map(|rip| (rip, (state.gpr, state.restored)))
    }))
    .ok()??;
    (regs.gpr, regs.restored) = state;
    Some(rip)
}

/// An instruction pointer on a short or near `jmp` whose target lies in the same function's
/// body is a loop's back edge, not the end of an epilog (a tail call leaves the function;
/// RtlVirtualUnwind checks the target). pe-unwind-info 0.6 takes every relative `jmp` for an
/// epilog's last instruction and then unwinds from the wrong stack slot, so the walk is asked
/// about the jump's target instead: any body address has the same unwind state.
fn body_address_for_loop_jump<'m>(
    table: &FunctionTableEntries,
    read: &mut impl FnMut(u32) -> Option<&'m [u8]>,
    rva: u32,
) -> u32 {
    let Some(f) = table.lookup(rva) else {
        return rva;
    };
    let (begin, end) = (f.begin_address.get(), f.end_address.get());
    let Some(code) = read(rva) else { return rva };
    let target = match code {
        [0xeb, rel, ..] => (rva as i64 + 2 + *rel as i8 as i64) as u32,
        [0xe9, a, b, c, d, ..] => {
            (rva as i64 + 5 + i32::from_le_bytes([*a, *b, *c, *d]) as i64) as u32
        }
        _ => return rva,
    };
    let prolog = read(f.unwind_info_address.get())
        .and_then(|u| u.get(1).copied())
        .unwrap_or(u8::MAX) as u32;
    if target >= begin.saturating_add(prolog) && target < end && target != rva {
        target
    } else {
        rva
    }
}

const NAMES: [&str; 16] = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15",
];

/// Unwind with Breakpad STACK CFI when the module's image is not in the dump.
fn unwind_with_cfi(env: &Env, regs: &mut Regs, ip: u64, caller: bool) -> Option<u64> {
    let vars: std::collections::HashMap<String, u64> = NAMES
        .iter()
        .enumerate()
        .map(|(i, n)| (format!("${n}"), regs.gpr[i]))
        .chain([("$rip".to_string(), ip)])
        .collect();
    let out = crate::cfi::unwind(env, &vars, ip, caller, 8)?;
    for (i, n) in NAMES.iter().enumerate() {
        if let Some(v) = out.get(&format!("${n}")) {
            regs.gpr[i] = *v;
        }
    }
    out.get(".ra").copied()
}

pub fn walk(env: &Env, ctx: &Context) -> Stack {
    let names = [
        "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12",
        "r13", "r14", "r15",
    ];
    let mut gpr = [0u64; 16];
    for (i, n) in names.iter().enumerate() {
        gpr[i] = ctx.get(n).unwrap_or(0);
    }
    let mut regs = Regs::new(gpr, env);
    let mut ip = ctx.ip();
    // What is known of the registers at the frame being walked, and where restored ones came
    // from (see FrameRegisters).
    let mut known = u16::MAX;
    let mut origin: [Option<(Option<u64>, usize)>; 16] = [None; 16];
    let mut stack = Stack::default();
    let mut trust = Trust::Context;
    while stack.frames.len() < MAX_FRAMES {
        let sp = regs.gpr[4];
        let fp = regs.gpr[5];
        let caller = !stack.frames.is_empty();
        stack.registers.push(FrameRegisters {
            values: regs.gpr,
            known,
            restored: (0..16)
                .filter_map(|r| origin[r].map(|(addr, frame)| (r, addr, frame)))
                .collect(),
        });
        if env.is_thread_start(ip, caller) {
            stack.frames.push(Frame {
                ip,
                sp,
                fp,
                return_address: 0,
                trust,
                args: env.args_at(sp.wrapping_add(8), 8),
            });
            break;
        }
        let before = regs.gpr;
        regs.restored.clear();
        let mut next =
            unwind_with_pdata(env, &mut regs, ip, caller).map(|ra| (ra, Trust::UnwindInfo));
        if next.is_none() {
            regs.gpr = before;
            next = unwind_with_cfi(env, &mut regs, ip, caller).map(|ra| (ra, Trust::FrameData));
        }
        if next.is_none() && env.target.module_at(ip).is_none() {
            // Outside every module (wild code, JIT, a call through a bad pointer): the return
            // address is at the stack pointer only if the bad jump was a call.
            regs.gpr = before;
            if let Some(ra) = env
                .mem()
                .read_u64(sp)
                .filter(|&ra| env.is_code(ra) && env.preceded_by_call(ra))
            {
                regs.gpr[4] = sp.wrapping_add(8);
                next = Some((ra, Trust::UnwindInfo));
            }
        }
        // Unwind data is trusted to lead outside modules too (JIT code), when the dump says
        // that memory is executable.
        let valid = |ra: u64, new_sp: u64| {
            ra != 0
                && new_sp > sp
                && env.bounds.contains(new_sp.saturating_sub(8))
                && (env.target.module_at(ra).is_some() || env.is_executable_memory(ra))
        };
        let next = match next {
            Some((ra, t)) if valid(ra, regs.gpr[4]) => Some((ra, t)),
            Some((0, _)) => None,
            _ => {
                regs.gpr = before;
                match env.scan(sp, 8) {
                    Some((slot, ra)) => {
                        regs.gpr[4] = slot.wrapping_add(8);
                        Some((ra, Trust::Scan))
                    }
                    None => None,
                }
            }
        };
        // The caller's registers: volatile ones are lost; a scanned frame loses the rest.
        let frame = stack.frames.len();
        match next.map(|n| n.1) {
            Some(Trust::UnwindInfo) => {
                for &(r, addr) in &regs.restored {
                    origin[r] = Some((Some(addr), frame));
                }
                known &= X64_NONVOLATILE | 1 << 4;
            }
            Some(Trust::FrameData) => {
                for r in (0..16).filter(|r| X64_NONVOLATILE & (1 << r) != 0) {
                    if regs.gpr[r] != before[r] {
                        origin[r] = Some((None, frame));
                    }
                }
                known &= X64_NONVOLATILE | 1 << 4;
            }
            _ => {
                known = 1 << 4;
                origin = [None; 16];
            }
        }
        let args = env.args_at(regs.gpr[4].max(sp.wrapping_add(8)), 8);
        stack.frames.push(Frame {
            ip,
            sp,
            fp,
            return_address: next.map(|n| n.0).unwrap_or(0),
            trust,
            args,
        });
        match next {
            Some((ra, t)) => {
                ip = ra;
                trust = t;
            }
            None => break,
        }
    }
    if stack.frames.len() >= MAX_FRAMES {
        stack
            .issues
            .push(crate::StackIssue::FrameLimit { frames: MAX_FRAMES });
    }
    stack
}

#[cfg(test)]
mod loop_jump_tests {
    use super::*;

    /// One function at 0x100..0x140 with a 4-byte prolog; its unwind info at 0x200.
    fn image() -> (Vec<u8>, Vec<u8>) {
        let mut img = vec![0x90u8; 0x300];
        img[0x130..0x132].copy_from_slice(&[0xeb, 0xee]); // jmp 0x120 (back edge)
        img[0x132..0x134].copy_from_slice(&[0xeb, 0xcc]); // jmp 0x100 (into the prolog)
        img[0x134..0x139].copy_from_slice(&[0xe9, 0xc7, 0x0e, 0x00, 0x00]); // jmp 0x1000 (tail call)
        img[0x200..0x204].copy_from_slice(&[0x01, 0x04, 0x01, 0x00]);
        let mut pdata = Vec::new();
        for v in [0x100u32, 0x140, 0x200] {
            pdata.extend_from_slice(&v.to_le_bytes());
        }
        (img, pdata)
    }

    #[test]
    fn a_back_edge_is_unwound_as_its_target_and_other_jumps_are_left_alone() {
        let (img, pdata) = image();
        let table = FunctionTableEntries::parse(&pdata);
        let mut read = |rva: u32| img.get(rva as usize..);
        assert_eq!(body_address_for_loop_jump(&table, &mut read, 0x130), 0x120);
        assert_eq!(
            body_address_for_loop_jump(&table, &mut read, 0x132),
            0x132,
            "a jump into the prolog"
        );
        assert_eq!(
            body_address_for_loop_jump(&table, &mut read, 0x134),
            0x134,
            "a tail call leaves the function"
        );
        assert_eq!(
            body_address_for_loop_jump(&table, &mut read, 0x110),
            0x110,
            "not a jump"
        );
    }
}
