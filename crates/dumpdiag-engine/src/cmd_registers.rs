//! Register displays beyond `r`'s default: `rM mask` (and its shorthands `rF`, `rX`), `rm` (the
//! default mask `r` uses), and the registers a caller frame still has (`.frame /r`).
//!
//! Mask bits are WinDbg's for x86 and x64: 1 or 2 the integer registers (what `r` shows), 4 the
//! x87 floating-point registers, 8 the segment registers, 0x10 MMX, 0x20 the debug registers,
//! 0x40 SSE (XMM), 0x200 AVX (YMM, when the dump saved the extended state).

use std::fmt::Write;

use crate::cmd_threads::{format_registers, no_context};
use crate::format;
use crate::registry::{Command, Invocation};
use crate::{CommandError, Session};
use dumpdiag_stack::{Stack, X64_NONVOLATILE, X64_REGISTERS};
use dumpdiag_target::Context;

pub(crate) const COMMANDS: &[Command] = &[Command {
    names: &["rM", "rF", "rX"],
    usage: "rM mask | rF | rX | rm [mask | ?]",
    help: "Registers by WinDbg's mask (1/2 integer, 4 x87, 8 segments, 0x10 MMX, 0x20 debug, \
           0x40 XMM, 0x200 YMM); rF is rM 4, rX rM 0x40; rm shows or sets the mask r uses.",
    family: None,
    arguments: &["?"],
    run: masked_command,
}];

/// The integer-register bits: WinDbg treats 1 and 2 alike.
const INTEGER: u64 = 0x3;
/// The masks `r` uses when `rm` has not set one: 1 on x86, 2 on x64.
fn default_mask(c: &Context) -> u64 {
    match c {
        Context::X86(_) => 1,
        _ => 2,
    }
}

/// What each mask bit shows (the `rm ?` list).
const MASK_BITS: &[(u64, &str)] = &[
    (0x1, "Integer state (32-bit)"),
    (0x2, "Integer state (64-bit), 64-bit takes precedence"),
    (0x4, "Floating-point state"),
    (0x8, "Segment registers"),
    (0x10, "MMX registers"),
    (0x20, "Debug registers"),
    (0x40, "SSE XMM registers"),
    (0x200, "AVX YMM registers"),
];

fn masked_command(s: &mut Session, inv: &Invocation) -> Result<String, CommandError> {
    let c = s.context();
    // WinDbg tells `rm` (the default mask) from `rM` (a mask for this display) by case.
    if inv.verb == "rm" {
        return register_mask(s, inv, c.as_ref());
    }
    let c = c.ok_or_else(no_context)?;
    let mask = match inv.verb {
        "rF" => 0x4,
        "rX" => 0x40,
        "rM" => {
            let text = inv.args.split_whitespace().next().ok_or_else(|| {
                CommandError::Usage("Usage: rM mask (rm ? lists the bits)".into())
            })?;
            s.eval(text)?
        }
        _ => return Err(inv.syntax_error()),
    };
    Ok(masked(s, &c, mask))
}

/// `rm`, `rm ?`, `rm mask`.
fn register_mask(
    s: &mut Session,
    inv: &Invocation,
    c: Option<&Context>,
) -> Result<String, CommandError> {
    let describe = |mask: u64| {
        let mut o = format!("Register output mask is {mask:x}:\n");
        for (bit, what) in MASK_BITS {
            if mask & bit != 0 {
                let _ = writeln!(o, "    {bit:4x} - {what}");
            }
        }
        o
    };
    match inv.args {
        "" => {
            let mask = s.register_mask.or(c.map(default_mask)).unwrap_or(2);
            Ok(describe(mask))
        }
        "?" => {
            let mut o = String::new();
            for (bit, what) in MASK_BITS {
                let _ = writeln!(o, "    {bit:4x} - {what}");
            }
            Ok(o)
        }
        text => {
            let mask = s.eval(text)?;
            s.register_mask = Some(mask);
            Ok(describe(mask))
        }
    }
}

/// The registers `mask` selects, in WinDbg's layout.
pub(crate) fn masked(s: &Session, c: &Context, mask: u64) -> String {
    let mut o = String::new();
    if mask & INTEGER != 0 {
        o.push_str(&format_registers(s, c));
    } else if mask & 0x8 != 0 {
        o.push_str(&segments(c));
    }
    if mask & 0x4 != 0 {
        o.push_str(&x87(c));
    }
    if mask & 0x10 != 0 {
        o.push_str(&mmx(c));
    }
    if mask & 0x20 != 0 {
        o.push_str(&debug_registers(c));
    }
    if mask & 0x40 != 0 {
        o.push_str(&xmm(c));
    }
    if mask & 0x200 != 0 {
        o.push_str(&ymm(c));
    }
    o
}

fn segments(c: &Context) -> String {
    let g = |n: &str| c.get(n).unwrap_or(0);
    format!(
        "cs={:04x}  ss={:04x}  ds={:04x}  es={:04x}  fs={:04x}  gs={:04x}             efl={:08x}\n",
        g("cs"),
        g("ss"),
        g("ds"),
        g("es"),
        g("fs"),
        g("gs"),
        g("efl")
    )
}

/// The x87 state: control, status and tag words, and the eight 80-bit registers (10 bytes each,
/// in FNSAVE order on x86, 16-byte slots of the FXSAVE area on x64).
struct X87 {
    control: u16,
    status: u16,
    tag: u16,
    registers: [[u8; 10]; 8],
}

fn x87_state(c: &Context) -> Option<X87> {
    let mut registers = [[0u8; 10]; 8];
    match c {
        Context::X86(x) => {
            let f = &x.float_save;
            for (i, r) in registers.iter_mut().enumerate() {
                r.copy_from_slice(&f.register_area[i * 10..i * 10 + 10]);
            }
            Some(X87 {
                control: f.control_word as u16,
                status: f.status_word as u16,
                tag: f.tag_word as u16,
                registers,
            })
        }
        Context::Amd64(x, _) => {
            let f = &x.float_save;
            for (i, r) in registers.iter_mut().enumerate() {
                r.copy_from_slice(&f[32 + i * 16..32 + i * 16 + 10]);
            }
            Some(X87 {
                control: u16::from_le_bytes([f[0], f[1]]),
                status: u16::from_le_bytes([f[2], f[3]]),
                // FXSAVE keeps an abridged tag byte (1 = valid).
                tag: f[4] as u16,
                registers,
            })
        }
        Context::Arm64(_) => None,
    }
}

/// An 80-bit extended-precision value as the nearest f64.
fn extended_to_f64(r: &[u8; 10]) -> f64 {
    let mantissa = u64::from_le_bytes(r[..8].try_into().unwrap_or([0; 8]));
    let se = u16::from_le_bytes([r[8], r[9]]);
    let sign = if se & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = (se & 0x7fff) as i32;
    if exponent == 0x7fff {
        return if mantissa << 1 == 0 {
            sign * f64::INFINITY
        } else {
            f64::NAN
        };
    }
    // value = mantissa / 2^63 * 2^(exponent - 16383)
    sign * (mantissa as f64) * 2f64.powi(exponent - 16383 - 63)
}

/// WinDbg's `st0= 1.000000000000000000000e+0000`.
fn extended_text(r: &[u8; 10]) -> String {
    let v = extended_to_f64(r);
    if v.is_nan() {
        return "-1.#IND000000000000000e+0000".into();
    }
    if v.is_infinite() {
        return format!(
            "{}1.#INF000000000000000e+0000",
            if v < 0.0 { "-" } else { " " }
        );
    }
    let text = format!("{v:.21e}");
    let (digits, exp) = text.split_once('e').unwrap_or((&text, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let sign = if digits.starts_with('-') { "" } else { " " };
    format!(
        "{sign}{digits}e{}{:04}",
        if exp < 0 { '-' } else { '+' },
        exp.unsigned_abs()
    )
}

fn x87(c: &Context) -> String {
    let Some(f) = x87_state(c) else {
        return String::new();
    };
    let mut o = format!(
        "fpcw={:04X}  fpsw={:04X}: top={} cc={:04b}  fptw={:04X}\n",
        f.control,
        f.status,
        (f.status >> 11) & 7,
        ((f.status >> 14) & 1) << 3 | ((f.status >> 8) & 7),
        f.tag
    );
    for pair in 0..4 {
        let _ = writeln!(
            o,
            "st{}={}  st{}={}",
            2 * pair,
            extended_text(&f.registers[2 * pair]),
            2 * pair + 1,
            extended_text(&f.registers[2 * pair + 1])
        );
    }
    o
}

fn mmx(c: &Context) -> String {
    let Some(f) = x87_state(c) else {
        return String::new();
    };
    let mm = |i: usize| u64::from_le_bytes(f.registers[i][..8].try_into().unwrap_or([0; 8]));
    let mut o = String::new();
    for row in 0..2 {
        let line: Vec<String> = (0..4)
            .map(|k| format!("mm{}={:016x}", 4 * row + k, mm(4 * row + k)))
            .collect();
        let _ = writeln!(o, "{}", line.join("  "));
    }
    o
}

fn debug_registers(c: &Context) -> String {
    let g = |n: &str| c.get(n).unwrap_or(0);
    let w = if matches!(c, Context::X86(_)) { 8 } else { 16 };
    format!(
        "dr0={:0w$x} dr1={:0w$x} dr2={:0w$x}\ndr3={:0w$x} dr6={:0w$x} dr7={:0w$x}\n",
        g("dr0"),
        g("dr1"),
        g("dr2"),
        g("dr3"),
        g("dr6"),
        g("dr7")
    )
}

/// The XMM registers and MXCSR from the FXSAVE area (x86: its ExtendedRegisters).
fn xmm_state(c: &Context) -> Option<(Vec<u128>, u32)> {
    let area: &[u8] = match c {
        Context::X86(x) => &x.extended_registers,
        Context::Amd64(x, _) => &x.float_save,
        Context::Arm64(_) => return None,
    };
    let count = if matches!(c, Context::X86(_)) { 8 } else { 16 };
    let regs = (0..count)
        .map(|i| {
            let at = 160 + 16 * i;
            u128::from_le_bytes(area[at..at + 16].try_into().unwrap_or([0; 16]))
        })
        .collect();
    let mxcsr = u32::from_le_bytes(area[24..28].try_into().unwrap_or([0; 4]));
    Some((regs, mxcsr))
}

/// A float as C's `%g` prints it with MSVC's three-digit exponent (`1.4013e-045`), WinDbg's
/// rendering of vector elements.
fn g_format(v: f32) -> String {
    let v = v as f64;
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.into();
    }
    if v.is_nan() {
        return "-1.#QNAN".into();
    }
    if v.is_infinite() {
        return if v < 0.0 { "-1.#INF" } else { "1.#INF" }.into();
    }
    let exp = v.abs().log10().floor() as i32;
    let trim = |t: String| {
        if t.contains('.') {
            t.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            t
        }
    };
    if !(-4..6).contains(&exp) {
        let text = format!("{v:.5e}");
        let (m, e) = text.split_once('e').unwrap_or((&text, "0"));
        let e: i32 = e.parse().unwrap_or(0);
        format!(
            "{}e{}{:03}",
            trim(m.to_string()),
            if e < 0 { '-' } else { '+' },
            e.unsigned_abs()
        )
    } else {
        let decimals = (5 - exp).max(0) as usize;
        trim(format!("{v:.decimals$}"))
    }
}

/// Four floats of a 128-bit lane, highest element first (WinDbg's order).
fn lane_floats(v: u128) -> Vec<String> {
    (0..4)
        .rev()
        .map(|i| g_format(f32::from_bits((v >> (32 * i)) as u32)))
        .collect()
}

fn xmm(c: &Context) -> String {
    let Some((regs, mxcsr)) = xmm_state(c) else {
        return String::new();
    };
    let mut o = String::new();
    for (i, v) in regs.iter().enumerate() {
        let _ = writeln!(o, "xmm{i}={}", lane_floats(*v).join(" "));
    }
    let _ = writeln!(o, "mxcsr={mxcsr:08x}");
    o
}

fn ymm(c: &Context) -> String {
    let upper = match c {
        Context::Amd64(_, Some(x)) => x.ymm_upper.as_ref(),
        _ => None,
    };
    let (Some(upper), Some((lower, _))) = (upper, xmm_state(c)) else {
        return "ymm: the dump saved no AVX state for this context\n".into();
    };
    let mut o = String::new();
    for (i, (hi, lo)) in upper.iter().zip(&lower).enumerate() {
        let mut floats = lane_floats(*hi);
        floats.extend(lane_floats(*lo));
        let _ = writeln!(o, "ymm{i}={}", floats.join(" "));
    }
    o
}

/// `.frame /r n`: the registers physical frame `n` of `stack` still has. At frame 0 they are the
/// context's; at a caller frame, what the unwind recovered: rsp, and the non-volatile
/// registers (restored from where a callee saved them, or left alone by every callee), while
/// the volatile ones (and x86's, beyond esp/ebp/eip) are shown as unknown. The notes say where
/// the restored values were read and where a parameter's value may still be found; they name a
/// frame by `numbers[physical index]`, the number `kn` shows for it.
pub(crate) fn frame_registers(
    s: &Session,
    ctx: &Context,
    stack: &Stack,
    n: usize,
    numbers: &[usize],
) -> String {
    let Some(f) = stack.frames.get(n) else {
        return String::new();
    };
    if n == 0 {
        return format_registers(s, ctx);
    }
    let mut o = String::new();
    let unknown16 = "????????????????";
    match ctx {
        Context::Amd64(..) => {
            let regs = stack.registers.get(n);
            let value = |name: &str| -> String {
                if name == "rip" {
                    return format!("{:016x}", f.ip);
                }
                let i = X64_REGISTERS.iter().position(|r| *r == name);
                match i.and_then(|i| regs.and_then(|r| r.get(i))) {
                    Some(v) => format!("{v:016x}"),
                    None => unknown16.into(),
                }
            };
            let rows: [&[&str]; 6] = [
                &["rax", "rbx", "rcx"],
                &["rdx", "rsi", "rdi"],
                &["rip", "rsp", "rbp"],
                &["r8", "r9", "r10"],
                &["r11", "r12", "r13"],
                &["r14", "r15"],
            ];
            for row in rows {
                let line: Vec<String> =
                    row.iter().map(|n| format!("{n:>3}={}", value(n))).collect();
                let _ = writeln!(o, "{}", line.join(" "));
            }
            let g = |n: &str| ctx.get(n).unwrap_or(0);
            let _ = writeln!(
                o,
                "cs={:04x}  ss={:04x}  ds={:04x}  es={:04x}  fs={:04x}  gs={:04x}             \
                 efl=????????",
                g("cs"),
                g("ss"),
                g("ds"),
                g("es"),
                g("fs"),
                g("gs")
            );
            o.push_str(&location(s, f.ip, 8));
            o.push_str(&x64_notes(s, stack, n, numbers));
        }
        Context::X86(_) => {
            let u = "????????";
            let _ = writeln!(
                o,
                "eax={u} ebx={u} ecx={u} edx={u} esi={u} edi={u}\neip={:08x} esp={:08x} \
                 ebp={:08x}",
                f.ip, f.sp, f.fp
            );
            o.push_str(&location(s, f.ip, 4));
            let _ = writeln!(
                o,
                "Unknown at this frame: eax ebx ecx edx esi edi (the walk recovers eip, esp and \
                 ebp only).\nParameters: x86 passes them on the stack: the words at ChildEBP+8 \
                 ({}) are this frame's first arguments (kb's Args to Child), unless the \
                 function was compiled without a frame pointer (FPO) or takes them in \
                 registers (__fastcall, __thiscall's this in ecx).",
                format::addr(f.fp.wrapping_add(8), 4)
            );
        }
        Context::Arm64(_) => {
            let _ = writeln!(
                o,
                "pc={:016x} sp={:016x} fp={:016x}\n(ARM64 frames carry no recovered registers)",
                f.ip, f.sp, f.fp
            );
        }
    }
    o
}

/// `module!function+0xoff:` and the instruction bytes there, as `r` ends.
fn location(s: &Session, ip: u64, ptr: u64) -> String {
    let loc = s
        .describe_address(ip)
        .unwrap_or_else(|| "<Unloaded_or_unknown>".into());
    let code = dumpdiag_target::MemoryExt::read_bytes(s.target().memory(), ip, 8);
    let bytes: String = if code.is_empty() {
        "??".into()
    } else {
        code.iter().map(|b| format!("{b:02x}")).collect()
    };
    format!("{loc}:\n{} {bytes}\n", format::addr(ip, ptr))
}

/// Where frame `n`'s registers came from, and where its parameters may be.
fn x64_notes(s: &Session, stack: &Stack, n: usize, numbers: &[usize]) -> String {
    let mut o = String::new();
    let Some(regs) = stack.registers.get(n) else {
        return o;
    };
    if !regs.restored.is_empty() {
        let list: Vec<String> = regs
            .restored
            .iter()
            .map(|&(r, at, by)| {
                let by = numbers.get(by).copied().unwrap_or(by);
                match at {
                    Some(a) => format!(
                        "{} from {} (saved by frame {by:02x})",
                        X64_REGISTERS[r],
                        s.addr(a)
                    ),
                    None => format!("{} (saved by frame {by:02x})", X64_REGISTERS[r]),
                }
            })
            .collect();
        let _ = writeln!(o, "Restored by the unwind: {}", list.join(", "));
    }
    let kept: Vec<&str> = (0..16)
        .filter(|&r| {
            X64_NONVOLATILE & (1 << r) != 0
                && regs.get(r).is_some()
                && !regs.restored.iter().any(|x| x.0 == r)
        })
        .map(|r| X64_REGISTERS[r])
        .collect();
    if !kept.is_empty() {
        let _ = writeln!(
            o,
            "Unchanged by the callees (non-volatile, never saved): {}",
            kept.join(" ")
        );
    }
    let unknown: Vec<&str> = (0..16)
        .filter(|&r| regs.get(r).is_none())
        .map(|r| X64_REGISTERS[r])
        .collect();
    if !unknown.is_empty() {
        let why = if regs.known & X64_NONVOLATILE == 0 {
            "a frame below was found by scanning the stack, so what its callees saved is unknown"
        } else {
            "volatile: the callees were free to change them"
        };
        let _ = writeln!(o, "Unknown at this frame: {} ({why})", unknown.join(" "));
    }
    let home = stack
        .frames
        .get(n + 1)
        .map(|caller| caller.sp)
        .unwrap_or_else(|| stack.frames[n].sp.wrapping_add(8));
    let _ = writeln!(
        o,
        "Parameters (False Function Parameters): x64 passes the first four in rcx, rdx, r8, r9, \
         which are volatile and lost at a caller frame. A value may survive in a non-volatile \
         register shown above (if the function copied it there), in the home area at {} \
         (kb's Args to Child for this frame: only if the function spilled its parameters \
         there, as debug builds do), or in the caller's locals.",
        s.addr(home)
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_windbg_prints_them() {
        assert_eq!(g_format(0.0), "0");
        assert_eq!(g_format(1.0), "1");
        assert_eq!(g_format(-2.5), "-2.5");
        assert_eq!(g_format(f32::from_bits(1)), "1.4013e-045");
        assert_eq!(g_format(123456.0), "123456");
        assert_eq!(g_format(1234567.0), "1.23457e+006");
        let one = {
            let mut r = [0u8; 10];
            r[7] = 0x80;
            r[8] = 0xff;
            r[9] = 0x3f;
            r
        };
        assert_eq!(extended_text(&one), " 1.000000000000000000000e+0000");
        assert_eq!(extended_text(&[0; 10]), " 0.000000000000000000000e+0000");
    }
}
