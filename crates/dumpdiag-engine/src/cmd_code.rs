//! Disassembly: `u`, `ub`, `uf` with iced-x86 in WinDbg's MASM syntax, branch and call targets
//! and RIP-relative operands symbolized.

use crate::format;
use crate::registry::{Command, Invocation};
use crate::{CommandError, Session};
use dumpdiag_os::pe;
use dumpdiag_stack::code::{Insn as Instruction, Mnemonic, MAX_INSTRUCTION_LEN};
use dumpdiag_target::MemoryExt;

pub(crate) const COMMANDS: &[Command] = &[
    Command {
        names: &["u"],
        usage: "u [address [L count]]",
        help: "Disassemble forward (default: the instruction pointer, then where u stopped).",
        family: None,
        arguments: &[],
        run: u,
    },
    Command {
        names: &["ub"],
        usage: "ub [address [L count]]",
        help: "Disassemble the instructions before an address.",
        family: None,
        arguments: &[],
        run: ub,
    },
    Command {
        names: &["uf"],
        usage: "uf address",
        help: "Disassemble the whole function holding an address.",
        family: None,
        arguments: &[],
        run: uf,
    },
];

const MAX_INSN: usize = MAX_INSTRUCTION_LEN;
const MAX_UF_BYTES: u64 = 0x4000;

fn decode(s: &Session, bytes: &[u8], ip: u64, count: usize) -> Vec<Instruction> {
    s.disassembler().decode_bytes(bytes, ip, count)
}

fn render(s: &Session, insns: &[Instruction], first_header: bool) -> String {
    s.disassembler().render(insns, first_header)
}

/// Most instructions one `u` or `ub` shows.
const MAX_COUNT: usize = 4096;

/// `[address [L count]]`: the address (None when not given) and the count, clamped to
/// 1..=[`MAX_COUNT`], with a note saying so when the clamp cut the count.
fn parse_addr_count(
    s: &Session,
    rest: &str,
    default: usize,
) -> Result<(Option<u64>, usize, Option<String>), CommandError> {
    let rest = rest.trim();
    if rest.is_empty() {
        return Ok((None, default, None));
    }
    let lower = rest.to_ascii_lowercase();
    if let Some(pos) = lower.find(" l") {
        let a = s.eval(&rest[..pos])?;
        let asked = s.eval(rest[pos + 2..].trim_start_matches('?'))?;
        let note = (asked > MAX_COUNT as u64)
            .then(|| format!("Count limited to {MAX_COUNT} instructions ({asked:#x} asked for)\n"));
        return Ok((Some(a), asked.clamp(1, MAX_COUNT as u64) as usize, note));
    }
    Ok((Some(s.eval(rest)?), default, None))
}

fn missing_address() -> CommandError {
    CommandError::Usage("Missing address".into())
}

fn u(s: &mut Session, inv: &Invocation) -> Result<String, CommandError> {
    let (a, n, note) = parse_addr_count(s, inv.args, 8)?;
    let a = a
        .or(s.next_disassembly)
        .or_else(|| s.context().map(|c| c.ip()))
        .ok_or_else(missing_address)?;
    let bytes = s.target().memory().read_bytes(a, n * MAX_INSN);
    if bytes.is_empty() {
        return Ok(format!(
            "{} ??              ???\n",
            format::addr(a, s.ptr())
        ));
    }
    let insns = decode(s, &bytes, a, n);
    s.next_disassembly = insns.last().map(|i| i.next_ip());
    Ok(render(s, &insns, true) + note.as_deref().unwrap_or(""))
}

/// The lowest `start` in `[a - max_back, a)` from which memory up to `a` is all in the dump.
fn captured_back_to(s: &Session, a: u64, max_back: u64) -> u64 {
    let mem = s.target().memory();
    let whole = |st: u64| mem.read_bytes(st, (a - st) as usize).len() as u64 == a - st;
    // Being captured up to `a` holds from some start on: binary search for it.
    let (mut lo, mut hi) = (a.saturating_sub(max_back), a);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if whole(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

fn ub(s: &mut Session, inv: &Invocation) -> Result<String, CommandError> {
    let (a, n, note) = parse_addr_count(s, inv.args, 8)?;
    let a = a
        .or_else(|| s.context().map(|c| c.ip()))
        .ok_or_else(missing_address)?;
    // Decode forward from candidate starts; keep the one that lands exactly on `a` with the
    // most instructions (the function start when the symbols know it). Candidates are the
    // symbol's function start, then a-1, a-2, ... back to n instructions of the longest kind.
    let mut best: Vec<Instruction> = Vec::new();
    if let Some(sym) = s.symbols().lookup(s.target(), a.saturating_sub(1)) {
        let st = sym.function_start;
        if st < a && a - st < 0x2000 {
            let bytes = s.target().memory().read_bytes(st, (a - st) as usize);
            if bytes.len() as u64 == a - st {
                let insns = decode(s, &bytes, st, usize::MAX);
                if insns.last().is_some_and(|i| i.next_ip() == a)
                    && !insns.iter().any(|i| i.is_invalid())
                {
                    best = insns[insns.len().saturating_sub(n)..].to_vec();
                }
            }
        }
    }
    if best.len() < n {
        // Every other candidate at once: decode one instruction at each offset of the window
        // and count, from the end back, how many instructions each offset takes to land on `a`
        // (one decode per byte instead of one decode run per candidate).
        let window = (n * MAX_INSN) as u64;
        let low = captured_back_to(s, a, window);
        let bytes = s.target().memory().read_bytes(low, (a - low) as usize);
        let len = bytes.len();
        // steps[k]: instructions from offset k to `a`, 0 when that path misses `a` or meets an
        // undecodable instruction.
        let mut steps = vec![0usize; len + 1];
        let mut next = vec![0usize; len];
        for k in (0..len).rev() {
            let i = decode(s, &bytes[k..], low + k as u64, 1);
            let Some(i) = i.first().filter(|i| !i.is_invalid()) else {
                continue;
            };
            let to = k + i.len();
            next[k] = to;
            steps[k] = if to == len {
                1
            } else if to < len && steps[to] > 0 {
                steps[to] + 1
            } else {
                0
            };
        }
        // The first candidate (nearest `a`) with n instructions wins; else the one with the
        // most, the lowest start among equals.
        let mut pick: Option<(usize, usize)> = None;
        for k in (0..len).rev() {
            let found = steps[k].min(n);
            if found == 0 {
                continue;
            }
            if pick.is_none_or(|(_, f)| found >= f) {
                pick = Some((k, found));
            }
            if found >= n {
                break;
            }
        }
        let first = best.first().map(|i| i.ip()).unwrap_or(u64::MAX);
        if let Some((k, found)) =
            pick.filter(|&(k, f)| f > best.len() || (f == best.len() && low + (k as u64) < first))
        {
            let mut at = k;
            let mut path = Vec::with_capacity(steps[k]);
            while at < len {
                path.push(at);
                at = next[at];
            }
            best = path[path.len() - found..]
                .iter()
                .filter_map(|&o| decode(s, &bytes[o..], low + o as u64, 1).into_iter().next())
                .collect();
        }
    }
    if best.is_empty() {
        return Err(CommandError::NotFound(format!(
            "No instructions decode backward to {}",
            format::addr(a, s.ptr())
        )));
    }
    Ok(render(s, &best, true) + note.as_deref().unwrap_or(""))
}

/// The end of the function holding `a`: its .pdata entry (x64), else its symbol's extent.
fn function_extent(s: &Session, a: u64) -> Option<(u64, u64)> {
    let t = s.target();
    let m = t.module_at(a)?;
    if s.ptr() == 8 {
        if let Some(h) = pe::read_headers(t.memory(), m.base) {
            if let Some((rva, size)) = h.directory(pe::DIR_EXCEPTION) {
                let table = t
                    .memory()
                    .read_bytes(m.base.wrapping_add(rva as u64), size as usize);
                let r = (a - m.base) as u32;
                for e in table.chunks_exact(12) {
                    let b = u32::from_le_bytes(e[0..4].try_into().ok()?);
                    let end = u32::from_le_bytes(e[4..8].try_into().ok()?);
                    if r >= b && r < end {
                        // The module record's base and size come from the dump: an image
                        // reaching past 2^64 ends at the top of the address space.
                        return Some((
                            m.base.saturating_add(b as u64),
                            m.base.saturating_add(end as u64),
                        ));
                    }
                }
            }
        }
    }
    let sym = s.symbols().lookup(t, a)?;
    Some((
        sym.function_start,
        sym.function_start.saturating_add(MAX_UF_BYTES),
    ))
}

fn uf(s: &mut Session, inv: &Invocation) -> Result<String, CommandError> {
    let a = s.eval(inv.args)?;
    let (start, end) = function_extent(s, a).ok_or_else(|| {
        CommandError::NotFound(format!("No function known at {}", format::addr(a, s.ptr())))
    })?;
    let len = end.saturating_sub(start).min(MAX_UF_BYTES);
    let bytes = s.target().memory().read_bytes(start, len as usize);
    let mut insns = decode(s, &bytes, start, usize::MAX);
    if len >= MAX_UF_BYTES {
        // No exact extent: stop at the first return.
        if let Some(p) = insns.iter().position(|i| i.mnemonic() == Mnemonic::Ret) {
            insns.truncate(p + 1);
        }
    }
    Ok(render(s, &insns, true))
}
