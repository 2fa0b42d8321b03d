//! Breakpad/MSVC frame-data program strings (`$T0 .raSearch = $eip $T0 ^ = $esp $T0 4 + =`):
//! a postfix language with assignment (`=`), arithmetic, alignment (`@`) and dereference (`^`).

use std::collections::HashMap;

/// Most tokens in one program (real ones have a few dozen); longer ones are refused.
pub const MAX_TOKENS: usize = 512;

/// `ptr` is the pointer size: arithmetic wraps at 32 bits for x86 programs.
pub fn evaluate(
    program: &str,
    vars: &mut HashMap<String, u64>,
    deref: &dyn Fn(u64) -> Option<u64>,
    ptr: u64,
) -> Option<()> {
    let mask = if ptr == 4 { 0xffff_ffff } else { u64::MAX };
    let mut stack: Vec<String> = Vec::new();
    let value = |tok: &str, vars: &HashMap<String, u64>| -> Option<u64> {
        if let Some(v) = vars.get(tok) {
            return Some(*v);
        }
        if let Some(h) = tok.strip_prefix("0x") {
            return u64::from_str_radix(h, 16).ok();
        }
        tok.parse::<i64>().ok().map(|v| v as u64)
    };
    // A program past the cap is refused whole: evaluating its beginning would leave registers
    // half assigned, as if the program were shorter.
    if program.split_whitespace().nth(MAX_TOKENS).is_some() {
        return None;
    }
    for tok in program.split_whitespace() {
        match tok {
            "+" | "-" | "*" | "/" | "%" | "@" => {
                let b = value(&stack.pop()?, vars)?;
                let a = value(&stack.pop()?, vars)?;
                let r = match tok {
                    "+" => a.wrapping_add(b) & mask,
                    "-" => a.wrapping_sub(b) & mask,
                    "*" => a.wrapping_mul(b) & mask,
                    "/" => a.checked_div(b)?,
                    "%" => a.checked_rem(b)?,
                    _ => {
                        if b == 0 {
                            return None;
                        }
                        a & !(b - 1)
                    }
                };
                stack.push(r.to_string());
            }
            "^" => {
                let a = value(&stack.pop()?, vars)?;
                stack.push(deref(a)?.to_string());
            }
            "=" => {
                let v = value(&stack.pop()?, vars)?;
                let name = stack.pop()?;
                if !(name.starts_with('$') || name.starts_with('.')) {
                    return None;
                }
                vars.insert(name, v);
            }
            _ => stack.push(tok.to_string()),
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluates_frame_data_programs() {
        let mut vars: HashMap<String, u64> = [
            ("$esp".to_string(), 0x1000u64),
            ("$ebp".to_string(), 0x2000),
            (".raSearch".to_string(), 0x1010),
        ]
        .into_iter()
        .collect();
        let mem = |a: u64| match a {
            0x1010 => Some(0x401234),
            0x2000 => Some(0x3000),
            _ => None,
        };
        evaluate(
            "$T0 .raSearch = $eip $T0 ^ = $esp $T0 4 + = $ebp $ebp ^ =",
            &mut vars,
            &mem,
            4,
        )
        .unwrap();
        assert_eq!(vars["$eip"], 0x401234);
        assert_eq!(vars["$esp"], 0x1014);
        assert_eq!(vars["$ebp"], 0x3000);
        assert!(evaluate("1 0 /", &mut vars, &mem, 4).is_none());
        assert!(evaluate("^", &mut vars, &mem, 4).is_none());
        let mut v64: HashMap<String, u64> = [("$rsp".to_string(), 0x7ff0_0000_1000u64)]
            .into_iter()
            .collect();
        evaluate("$x $rsp 8 + =", &mut v64, &mem, 8).unwrap();
        assert_eq!(v64["$x"], 0x7ff0_0000_1008);
    }

    #[test]
    fn programs_longer_than_the_cap_are_refused_not_cut() {
        let mem = |_: u64| None;
        let mut vars: HashMap<String, u64> = HashMap::new();
        // The assignment comes after MAX_TOKENS tokens: cut there, the program would seem to
        // succeed with `$x` never set.
        let pushes = "1 ".repeat(MAX_TOKENS);
        let program = format!("$x 0 {pushes}{} =", "+ ".repeat(MAX_TOKENS));
        assert!(evaluate(&program, &mut vars, &mem, 8).is_none());
        assert!(!vars.contains_key("$x"));
        // At the cap exactly it still runs.
        let program = format!("$x 0 {} =", "1 + ".repeat((MAX_TOKENS - 3) / 2));
        evaluate(&program, &mut vars, &mem, 8).unwrap();
        assert_eq!(vars["$x"], ((MAX_TOKENS - 3) / 2) as u64);
    }
}
