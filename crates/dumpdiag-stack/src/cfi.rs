//! Breakpad STACK CFI: per-address register rules (`.cfa: $rsp 8 + .ra: .cfa 8 - ^ $rbx: .cfa
//! 16 - ^`) evaluated with the postfix machine, for modules whose images are not in the dump.

use std::collections::HashMap;

use crate::{postfix, Env};
use dumpdiag_symbols::ModuleSymbols;
use dumpdiag_target::MemoryExt;

/// Most registers one CFI block may give rules for (arm64 with its vector registers has about
/// 64); a block with more is refused.
const MAX_REGISTERS: usize = 128;
/// Most tokens over all the rule lines in effect at one address (an INIT line and its deltas);
/// more is refused. Real blocks hold a few hundred.
const MAX_RULE_TOKENS: usize = 1 << 14;

/// Split rule lines into (register, expression) pairs, later lines overriding earlier ones
/// register by register. None past [`MAX_REGISTERS`] or [`MAX_RULE_TOKENS`].
fn rules<'a>(lines: impl IntoIterator<Item = &'a str>) -> Option<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut tokens = 0usize;
    for line in lines {
        // The register whose expression this line is spelling out (an index into `out`).
        let mut current: Option<usize> = None;
        for tok in line.split_whitespace() {
            tokens += 1;
            if tokens > MAX_RULE_TOKENS {
                return None;
            }
            if let Some(reg) = tok.strip_suffix(':') {
                let i = match out.iter().position(|e| e.0 == reg) {
                    Some(i) => {
                        out[i].1.clear();
                        i
                    }
                    None if out.len() < MAX_REGISTERS => {
                        out.push((reg.to_string(), String::new()));
                        out.len() - 1
                    }
                    None => return None,
                };
                current = Some(i);
            } else if let Some(i) = current {
                let expr = &mut out[i].1;
                if !expr.is_empty() {
                    expr.push(' ');
                }
                expr.push_str(tok);
            }
        }
    }
    Some(out)
}

/// Unwind one frame with CFI. `regs` holds `$name` values; returns the caller's registers
/// (with `.ra` as the return address and `$rsp`/`$esp` set to the CFA).
pub fn unwind(
    env: &Env,
    regs: &HashMap<String, u64>,
    ip: u64,
    caller: bool,
    ptr: u64,
) -> Option<HashMap<String, u64>> {
    let idx = env.target.modules().iter().position(|m| m.contains(ip))?;
    let m = &env.target.modules()[idx];
    let ModuleSymbols::Breakpad(b, _) = env.symbols.module(env.target, idx)? else {
        return None;
    };
    let rva = (ip - m.base).saturating_sub(caller as u64);
    let sp = if ptr == 8 { "$rsp" } else { "$esp" };
    let Some(lines) = b.cfi_rules(rva) else {
        // x64 functions without unwind records are leaves (the ABI requires records for every
        // function that moves the stack pointer): the return address is at the stack pointer.
        if ptr != 8 || !b.has_cfi() {
            return None;
        }
        let rsp = *regs.get(sp)?;
        let mut out = regs.clone();
        out.insert(".ra".into(), env.mem().read_u64(rsp)?);
        out.insert(sp.into(), rsp.wrapping_add(8));
        return Some(out);
    };
    // Later records override earlier ones register by register.
    let effective = rules(lines)?;
    let mem = env.mem();
    let deref = |a: u64| mem.read_ptr(a, ptr);
    let mut vars = regs.clone();
    let cfa_expr = &effective.iter().find(|e| e.0 == ".cfa")?.1;
    postfix::evaluate(&format!("$__ {cfa_expr} ="), &mut vars, &deref, ptr)?;
    let cfa = vars.remove("$__")?;
    vars.insert(".cfa".into(), cfa);
    let mut out = regs.clone();
    for (reg, expr) in &effective {
        if reg == ".cfa" {
            continue;
        }
        let mut v = vars.clone();
        postfix::evaluate(&format!("$__ {expr} ="), &mut v, &deref, ptr)?;
        out.insert(reg.clone(), v.remove("$__")?);
    }
    out.insert(sp.into(), cfa);
    out.get(".ra")?;
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn splits_rules() {
        assert_eq!(
            super::rules([".cfa: $rsp 8 + .ra: .cfa 8 - ^"]),
            Some(vec![
                (".cfa".to_string(), "$rsp 8 +".to_string()),
                (".ra".to_string(), ".cfa 8 - ^".to_string())
            ])
        );
        // A delta overrides the registers it names and keeps the others.
        assert_eq!(
            super::rules([".cfa: $rsp 8 + .ra: .cfa 8 - ^", ".cfa: $rsp 16 +"]),
            Some(vec![
                (".cfa".to_string(), "$rsp 16 +".to_string()),
                (".ra".to_string(), ".cfa 8 - ^".to_string())
            ])
        );
    }
}
