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

fn parse_addr_count(
    s: &Session,
    rest: &str,
    default: usize,
) -> Result<(Option<u64>, usize), CommandError> {
    let rest = rest.trim();
    if rest.is_empty() {
        return Ok((None, default));
    }
    let lower = rest.to_ascii_lowercase();
    if let Some(pos) = lower.find(" l") {
        let a = s.eval(&rest[..pos])?;
        let n = s.eval(rest[pos + 2..].trim_start_matches('?'))? as usize;
        return Ok((Some(a), n.clamp(1, 4096)));
    }
    Ok((Some(s.eval(rest)?), default))
}

fn missing_address() -> CommandError {
    CommandError::Usage("Missing address".into())
}

fn u(s: &mut Session, inv: &Invocation) -> Result<String, CommandError> {
    let (a, n) = parse_addr_count(s, inv.args, 8)?;
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
    Ok(render(s, &insns, true))
}

fn ub(s: &mut Session, inv: &Invocation) -> Result<String, CommandError> {
    let (a, n) = parse_addr_count(s, inv.args, 8)?;
    let a = a
        .or_else(|| s.context().map(|c| c.ip()))
        .ok_or_else(missing_address)?;
    // Decode forward from candidate starts; keep the one that lands exactly on `a` with the
    // most instructions (the function start when the symbols know it).
    let mut starts: Vec<u64> = (1..=(n * MAX_INSN) as u64)
        .map(|k| a.saturating_sub(k))
        .collect();
    if let Some(sym) = s.symbols().lookup(s.target(), a.saturating_sub(1)) {
        if sym.function_start < a && a - sym.function_start < 0x2000 {
            starts.insert(0, sym.function_start);
        }
    }
    let mut best: Vec<Instruction> = Vec::new();
    for st in starts {
        let bytes = s.target().memory().read_bytes(st, (a - st) as usize);
        if bytes.len() as u64 != a - st {
            continue;
        }
        let insns = decode(s, &bytes, st, usize::MAX);
        if insns.last().is_some_and(|i| i.next_ip() == a) && !insns.iter().any(|i| i.is_invalid()) {
            let tail: Vec<Instruction> = insns[insns.len().saturating_sub(n)..].to_vec();
            if tail.len() > best.len()
                || (tail.len() == best.len()
                    && st < best.first().map(|i| i.ip()).unwrap_or(u64::MAX))
            {
                best = tail;
            }
            if best.len() >= n {
                break;
            }
        }
    }
    if best.is_empty() {
        return Err(CommandError::NotFound(format!(
            "No instructions decode backward to {}",
            format::addr(a, s.ptr())
        )));
    }
    Ok(render(s, &best, true))
}

/// The end of the function holding `a`: its .pdata entry (x64), else its symbol's extent.
fn function_extent(s: &Session, a: u64) -> Option<(u64, u64)> {
    let t = s.target();
    let m = t.module_at(a)?;
    if s.ptr() == 8 {
        if let Some(h) = pe::read_headers(t.memory(), m.base) {
            if let Some((rva, size)) = h.directory(pe::DIR_EXCEPTION) {
                let table = t.memory().read_bytes(m.base + rva as u64, size as usize);
                let r = (a - m.base) as u32;
                for e in table.chunks_exact(12) {
                    let b = u32::from_le_bytes(e[0..4].try_into().ok()?);
                    let end = u32::from_le_bytes(e[4..8].try_into().ok()?);
                    if r >= b && r < end {
                        return Some((m.base + b as u64, m.base + end as u64));
                    }
                }
            }
        }
    }
    let sym = s.symbols().lookup(t, a)?;
    Some((sym.function_start, sym.function_start + MAX_UF_BYTES))
}

fn uf(s: &mut Session, inv: &Invocation) -> Result<String, CommandError> {
    let a = s.eval(inv.args)?;
    let (start, end) = function_extent(s, a).ok_or_else(|| {
        CommandError::NotFound(format!("No function known at {}", format::addr(a, s.ptr())))
    })?;
    let len = (end - start).min(MAX_UF_BYTES);
    let bytes = s.target().memory().read_bytes(start, len as usize);
    let mut insns = decode(s, &bytes, start, usize::MAX);
    if end - start >= MAX_UF_BYTES {
        // No exact extent: stop at the first return.
        if let Some(p) = insns.iter().position(|i| i.mnemonic() == Mnemonic::Ret) {
            insns.truncate(p + 1);
        }
    }
    Ok(render(s, &insns, true))
}
