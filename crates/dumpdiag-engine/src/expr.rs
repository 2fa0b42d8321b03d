//! WinDbg's MASM expression syntax: hex by default (`0n` decimal, `0t` octal, `0y` binary,
//! `0x` hex, backtick separators), registers (`@rax` or bare), pseudo-registers (`$ip`,
//! `$csp`, `$teb`, `$peb`, `$tid`, `$tpid`, `$exentry`), module names (their base), `poi()`
//! and sized reads, arithmetic, bitwise and comparison operators.

pub trait Resolver {
    fn register(&self, name: &str) -> Option<u64>;
    fn pseudo(&self, name: &str) -> Option<u64>;
    /// A module name or `module!symbol`.
    fn symbol(&self, name: &str) -> Option<u64>;
    fn read(&self, addr: u64, size: u64) -> Option<u64>;
    fn pointer_size(&self) -> u64;
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(u64),
    Ident(String),
    Op(&'static str),
    LParen,
    RParen,
}

const OPS: [&str; 17] = [
    "<<", ">>", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "&", "|", "^", "<", ">", "~",
];

fn parse_number(s: &str) -> Option<u64> {
    let clean: String = s.chars().filter(|&c| c != '`').collect();
    let lower = clean.to_ascii_lowercase();
    let (digits, radix) = if let Some(r) = lower.strip_prefix("0x") {
        (r, 16)
    } else if let Some(r) = lower.strip_prefix("0n") {
        (r, 10)
    } else if let Some(r) = lower.strip_prefix("0t") {
        (r, 8)
    } else if let Some(r) = lower.strip_prefix("0y") {
        (r, 2)
    } else if let Some(r) = lower.strip_suffix('h') {
        (r, 16)
    } else {
        (lower.as_str(), 16)
    };
    if digits.is_empty() {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '(' {
            out.push(Tok::LParen);
            i += 1;
            continue;
        }
        if c == ')' {
            out.push(Tok::RParen);
            i += 1;
            continue;
        }
        if let Some(op) = OPS
            .iter()
            .find(|op| chars[i..].iter().take(op.len()).collect::<String>() == **op)
        {
            out.push(Tok::Op(op));
            i += op.len();
            continue;
        }
        if c.is_ascii_alphanumeric() || "_$@!.`?:".contains(c) {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || "_$@!.`?:".contains(chars[i]))
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if c.is_ascii_digit() {
                match parse_number(&word) {
                    Some(n) => out.push(Tok::Num(n)),
                    None => return Err(format!("Syntax error in '{s}'")),
                }
            } else {
                out.push(Tok::Ident(word));
            }
            continue;
        }
        return Err(format!(
            "Syntax error at '{}'",
            chars[i..].iter().collect::<String>()
        ));
    }
    Ok(out)
}

struct Parser<'a> {
    toks: Vec<Tok>,
    pos: usize,
    r: &'a dyn Resolver,
}

fn precedence(op: &str) -> u8 {
    match op {
        "|" => 1,
        "^" => 2,
        "&" => 3,
        "==" | "!=" => 4,
        "<" | ">" | "<=" | ">=" => 5,
        "<<" | ">>" => 6,
        "+" | "-" => 7,
        "*" | "/" | "%" => 8,
        _ => 0,
    }
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn binary(&mut self, min: u8) -> Result<u64, String> {
        let mut lhs = self.unary()?;
        while let Some(Tok::Op(op)) = self.peek() {
            let op = *op;
            let p = precedence(op);
            if p == 0 || p < min {
                break;
            }
            self.pos += 1;
            let rhs = self.binary(p + 1)?;
            lhs = match op {
                "+" => lhs.wrapping_add(rhs),
                "-" => lhs.wrapping_sub(rhs),
                "*" => lhs.wrapping_mul(rhs),
                "/" => lhs.checked_div(rhs).ok_or("Divide by zero error")?,
                "%" => lhs.checked_rem(rhs).ok_or("Divide by zero error")?,
                "&" => lhs & rhs,
                "|" => lhs | rhs,
                "^" => lhs ^ rhs,
                "<<" => lhs.checked_shl(rhs as u32).unwrap_or(0),
                ">>" => lhs.checked_shr(rhs as u32).unwrap_or(0),
                "==" => (lhs == rhs) as u64,
                "!=" => (lhs != rhs) as u64,
                "<" => (lhs < rhs) as u64,
                ">" => (lhs > rhs) as u64,
                "<=" => (lhs <= rhs) as u64,
                ">=" => (lhs >= rhs) as u64,
                _ => unreachable!("operator table and match agree"),
            };
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<u64, String> {
        match self.next() {
            Some(Tok::Op("-")) => Ok(self.unary()?.wrapping_neg()),
            Some(Tok::Op("+")) => self.unary(),
            Some(Tok::Op("~")) => Ok(!self.unary()?),
            Some(Tok::Num(n)) => Ok(n),
            Some(Tok::LParen) => {
                let v = self.binary(1)?;
                match self.next() {
                    Some(Tok::RParen) => Ok(v),
                    _ => Err("Missing ')'".into()),
                }
            }
            Some(Tok::Ident(name)) => {
                let lower = name.to_ascii_lowercase();
                let size = match lower.as_str() {
                    "poi" => Some(self.r.pointer_size()),
                    "qwo" => Some(8),
                    "dwo" => Some(4),
                    "wo" => Some(2),
                    "by" => Some(1),
                    _ => None,
                };
                if let (Some(size), Some(Tok::LParen)) = (size, self.peek()) {
                    self.pos += 1;
                    let a = self.binary(1)?;
                    if self.next() != Some(Tok::RParen) {
                        return Err("Missing ')'".into());
                    }
                    return self.r.read(a, size).ok_or_else(|| {
                        format!(
                            "Memory access error at '{}'",
                            crate::format::addr(a, self.r.pointer_size())
                        )
                    });
                }
                if matches!(lower.as_str(), "hi" | "low") && self.peek() == Some(&Tok::LParen) {
                    self.pos += 1;
                    let a = self.binary(1)?;
                    if self.next() != Some(Tok::RParen) {
                        return Err("Missing ')'".into());
                    }
                    return Ok(if lower == "hi" {
                        (a >> 16) & 0xffff
                    } else {
                        a & 0xffff
                    });
                }
                self.identifier(&name)
            }
            Some(t) => Err(format!("Syntax error at {t:?}")),
            None => Err("Missing operand".into()),
        }
    }

    fn identifier(&self, name: &str) -> Result<u64, String> {
        if let Some(reg) = name.strip_prefix('@') {
            if let Some(p) = reg.strip_prefix('$') {
                return self
                    .r
                    .pseudo(p)
                    .ok_or_else(|| format!("Bad register error at '{name}'"));
            }
            return self
                .r
                .register(reg)
                .ok_or_else(|| format!("Bad register error at '{name}'"));
        }
        if let Some(p) = name.strip_prefix('$') {
            return self
                .r
                .pseudo(p)
                .ok_or_else(|| format!("Bad register error at '{name}'"));
        }
        if let Some(v) = self.r.symbol(name) {
            return Ok(v);
        }
        if let Some(v) = self.r.register(name) {
            return Ok(v);
        }
        if let Some(v) = parse_number(name) {
            return Ok(v);
        }
        Err(format!("Couldn't resolve error at '{name}'"))
    }
}

/// Evaluate a MASM expression.
pub fn eval(s: &str, r: &dyn Resolver) -> Result<u64, String> {
    let toks = tokenize(s)?;
    if toks.is_empty() {
        return Err("Missing expression".into());
    }
    let mut p = Parser { toks, pos: 0, r };
    let v = p.binary(1)?;
    if p.pos < p.toks.len() {
        return Err(format!("Syntax error in '{s}'"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    struct R;
    impl Resolver for R {
        fn register(&self, n: &str) -> Option<u64> {
            (n == "rax").then_some(0x10)
        }
        fn pseudo(&self, n: &str) -> Option<u64> {
            (n == "teb").then_some(0x1000)
        }
        fn symbol(&self, n: &str) -> Option<u64> {
            (n == "ntdll").then_some(0x7ff0_0000_0000)
        }
        fn read(&self, a: u64, _: u64) -> Option<u64> {
            (a == 0x1000).then_some(0x2000)
        }
        fn pointer_size(&self) -> u64 {
            8
        }
    }

    #[test]
    fn masm_arithmetic() {
        assert_eq!(eval("10+0n10", &R), Ok(0x1a));
        assert_eq!(eval("@rax*2", &R), Ok(0x20));
        assert_eq!(eval("poi(@$teb)+8", &R), Ok(0x2008));
        assert_eq!(eval("ntdll+0x10", &R), Ok(0x7ff0_0000_0010));
        assert_eq!(eval("00007ff7`a13110d9", &R), Ok(0x7ff7a13110d9));
        assert_eq!(eval("(1+2)*3", &R), Ok(9));
        assert_eq!(eval("1+2*3", &R), Ok(7));
        assert_eq!(eval("-1", &R), Ok(u64::MAX));
        assert!(eval("1/0", &R).is_err());
        assert!(eval("poi(5)", &R).is_err());
        assert!(eval("nosuchthing", &R).is_err());
    }
}
