//! x86 (and the 32-bit side of WOW64): Breakpad STACK WIN frame data, then the EBP chain,
//! then scanning.

use std::collections::HashMap;

use crate::{postfix, Env, Frame, Stack, Trust, MAX_FRAMES};
use dumpdiag_symbols::ModuleSymbols;
use dumpdiag_target::{Context, MemoryExt};

struct Regs {
    eip: u64,
    esp: u64,
    ebp: u64,
    ebx: u64,
    esi: u64,
    edi: u64,
}

/// Unwind with a STACK WIN record of the module's Breakpad symbols.
fn unwind_frame_data(env: &Env, r: &Regs, callee_params: u64, caller: bool) -> Option<(Regs, u64)> {
    let idx = env
        .target
        .modules()
        .iter()
        .position(|m| m.contains(r.eip))?;
    let m = &env.target.modules()[idx];
    let rva = (r.eip - m.base).saturating_sub(caller as u64);
    // Frame data from a Breakpad .sym, or from the PDB's FPO / frame-data streams.
    let w = match env.symbols.module(env.target, idx)? {
        ModuleSymbols::Breakpad(b, _) => b.stack_win(rva)?,
        ModuleSymbols::Pdb(p) => p.frame_data_at(rva)?.clone(),
        _ => return None,
    };
    let mem = env.mem();
    let deref = |a: u64| mem.read_u32(a).map(u64::from);
    let mut vars: HashMap<String, u64> = HashMap::new();
    for (k, v) in [
        ("$eip", r.eip),
        ("$esp", r.esp),
        ("$ebp", r.ebp),
        ("$ebx", r.ebx),
        ("$esi", r.esi),
        ("$edi", r.edi),
    ] {
        vars.insert(k.to_string(), v);
    }
    let ra_search = r
        .esp
        .wrapping_add(callee_params)
        .wrapping_add(w.local_size as u64)
        .wrapping_add(w.saved_register_size as u64);
    vars.insert(".raSearch".into(), ra_search);
    vars.insert(".raSearchStart".into(), ra_search);
    vars.insert(".cbCalleeParams".into(), callee_params);
    vars.insert(".cbSavedRegs".into(), w.saved_register_size as u64);
    vars.insert(".cbLocals".into(), w.local_size as u64);
    vars.insert(".cbParams".into(), w.parameter_size as u64);
    let program = match &w.program {
        Some(p) => p.clone(),
        None => {
            // FPO record without a program: the return address sits above locals and saved
            // registers; EBP, when the function uses it as a general register, was saved
            // with the other registers.
            let mut p = "$T0 .raSearch = $eip $T0 ^ = $esp $T0 4 + =".to_string();
            if w.allocates_base_pointer {
                // Both sizes come from the symbol file: add them as the 32-bit machine would.
                p.push_str(&format!(
                    " $ebp $T0 {} - ^ =",
                    w.local_size.wrapping_add(w.saved_register_size)
                ));
            }
            p
        }
    };
    postfix::evaluate(&program, &mut vars, &deref, 4)?;
    let eip = *vars.get("$eip")?;
    let esp = *vars.get("$esp")?;
    let next = Regs {
        eip,
        esp,
        ebp: vars["$ebp"],
        ebx: vars["$ebx"],
        esi: vars["$esi"],
        edi: vars["$edi"],
    };
    Some((next, w.parameter_size as u64))
}

pub fn walk(env: &Env, ctx: &Context) -> Stack {
    let g = |n: &str| ctx.get(n).unwrap_or(0);
    let mut r = Regs {
        eip: g("eip"),
        esp: g("esp"),
        ebp: g("ebp"),
        ebx: g("ebx"),
        esi: g("esi"),
        edi: g("edi"),
    };
    let mut stack = Stack::default();
    let mut trust = Trust::Context;
    let mut callee_params = 0;
    let mem = env.mem();
    while stack.frames.len() < MAX_FRAMES {
        let caller = !stack.frames.is_empty();
        if env.is_thread_start(r.eip, caller) {
            stack.frames.push(Frame {
                ip: r.eip,
                sp: r.esp,
                fp: r.ebp,
                return_address: 0,
                trust,
                args: env.args_at(r.ebp.wrapping_add(8), 4),
            });
            break;
        }
        let valid = |n: &Regs| {
            n.eip != 0
                && n.esp > r.esp
                && env.bounds.contains(n.esp.saturating_sub(4))
                && env.target.module_at(n.eip).is_some()
        };
        let mut next: Option<(Regs, Trust)> = None;
        if let Some((n, params)) = unwind_frame_data(env, &r, callee_params, caller) {
            if valid(&n) {
                callee_params = params;
                next = Some((n, Trust::FrameData));
            }
        }
        if next.is_none() {
            callee_params = 0;
            // Frame 0 may be a frameless leaf (a system-call stub): its return address is at
            // the stack pointer when that value follows a call.
            let leaf = (!caller)
                .then(|| mem.read_u32(r.esp).map(u64::from))
                .flatten()
                .filter(|&ra| env.is_code(ra) && env.preceded_by_call(ra) && r.ebp > r.esp);
            let chain = (|| {
                let ra = mem.read_u32(r.ebp.checked_add(4)?)? as u64;
                let saved = mem.read_u32(r.ebp)? as u64;
                Some(Regs {
                    eip: ra,
                    esp: r.ebp.wrapping_add(8),
                    ebp: saved,
                    ebx: r.ebx,
                    esi: r.esi,
                    edi: r.edi,
                })
            })();
            if let Some(ra) = leaf.filter(|&ra| chain.as_ref().is_none_or(|c| c.eip != ra)) {
                next = Some((
                    Regs {
                        eip: ra,
                        esp: r.esp.wrapping_add(4),
                        ebp: r.ebp,
                        ebx: r.ebx,
                        esi: r.esi,
                        edi: r.edi,
                    },
                    Trust::FramePointer,
                ));
            } else if let Some(c) = chain.filter(|c| valid(c) && r.ebp >= r.esp) {
                next = Some((c, Trust::FramePointer));
            } else if let Some((slot, ra)) = env.scan(r.esp, 4) {
                let n = Regs {
                    eip: ra,
                    esp: slot.wrapping_add(4),
                    ebp: r.ebp,
                    ebx: r.ebx,
                    esi: r.esi,
                    edi: r.edi,
                };
                if valid(&n) {
                    next = Some((n, Trust::Scan));
                }
            }
        }
        let args_from = next
            .as_ref()
            .map(|n| n.0.esp)
            .unwrap_or(r.esp.wrapping_add(4));
        let args = env.args_at(args_from, 4);
        stack.frames.push(Frame {
            ip: r.eip,
            sp: r.esp,
            fp: r.ebp,
            return_address: next.as_ref().map(|n| n.0.eip).unwrap_or(0),
            trust,
            args,
        });
        match next {
            Some((n, t)) => {
                r = n;
                trust = t;
            }
            None => break,
        }
    }
    stack
}
