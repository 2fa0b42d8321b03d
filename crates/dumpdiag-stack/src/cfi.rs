//! Breakpad STACK CFI: per-address register rules (`.cfa: $rsp 8 + .ra: .cfa 8 - ^ $rbx: .cfa
//! 16 - ^`) evaluated with the postfix machine, for modules whose images are not in the dump.

use std::collections::HashMap;

use crate::{postfix, Env};
use dumpdiag_symbols::ModuleSymbols;
use dumpdiag_target::MemoryExt;

/// Split a rule line into (register, expression) pairs.
fn rules(line: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for tok in line.split_whitespace() {
        if let Some(reg) = tok.strip_suffix(':') {
            out.push((reg.to_string(), String::new()));
        } else if let Some(last) = out.last_mut() {
            if !last.1.is_empty() {
                last.1.push(' ');
            }
            last.1.push_str(tok);
        }
    }
    out
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
    let mut effective: Vec<(String, String)> = Vec::new();
    for l in lines {
        for (reg, expr) in rules(l) {
            match effective.iter_mut().find(|e| e.0 == reg) {
                Some(e) => e.1 = expr,
                None => effective.push((reg, expr)),
            }
        }
    }
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
        out.insert(reg.clone(), v["$__"]);
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
            super::rules(".cfa: $rsp 8 + .ra: .cfa 8 - ^"),
            vec![
                (".cfa".to_string(), "$rsp 8 +".to_string()),
                (".ra".to_string(), ".cfa 8 - ^".to_string())
            ]
        );
    }
}
