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

/// Why an expression has no value. `Display` is WinDbg's text; the `at` texts are the rest of
/// the expression from where evaluation stopped, as WinDbg quotes them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExprError {
    #[error("Syntax error at '{at}'")]
    Syntax { at: String },
    /// A name that is no module, `module!symbol`, register or number.
    #[error("Couldn't resolve error at '{0}'")]
    Unresolved(String),
    /// `@name` or `$name` that is no register or pseudo-register of the current context.
    #[error("Bad register error at '{0}'")]
    BadRegister(String),
    /// A sized read (`poi`, `qwo`, `dwo`, `wo`, `by`) of memory the dump does not hold.
    #[error("Memory access error at '{address}'")]
    MemoryAccess { address: String },
    #[error("Divide by zero error")]
    DivideByZero,
    #[error("Missing ')'")]
    MissingParen,
    #[error("Missing operand")]
    MissingOperand,
    #[error("Missing expression")]
    MissingExpression,
    /// More nested parentheses, unary operators or sized reads than [`MAX_DEPTH`].
    #[error("Expression too complex: nested more than {MAX_DEPTH} deep")]
    TooDeep,
}

/// Deepest nesting of parentheses, unary operators and sized reads: the parser recurses once
/// per level, so a typed or pasted line of 100,000 '(' must stop here, not overflow the stack.
pub const MAX_DEPTH: usize = 256;

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

/// Characters of a number, name, register or `module!symbol` word.
fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_$@!.`?:".contains(c)
}

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

/// Tokens with the byte offset each starts at (for the `at '…'` of errors).
fn tokenize(s: &str) -> Result<Vec<(Tok, usize)>, ExprError> {
    let syntax_at = |i: usize| ExprError::Syntax {
        at: s[i..].to_string(),
    };
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(c) = s[i..].chars().next() {
        if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        }
        if c == '(' || c == ')' {
            out.push((if c == '(' { Tok::LParen } else { Tok::RParen }, i));
            i += 1;
            continue;
        }
        if let Some(op) = OPS.iter().find(|op| s[i..].starts_with(**op)) {
            out.push((Tok::Op(op), i));
            i += op.len();
            continue;
        }
        if is_word_char(c) {
            let len = s[i..].find(|ch| !is_word_char(ch)).unwrap_or(s.len() - i);
            let word = &s[i..i + len];
            if c.is_ascii_digit() {
                out.push((Tok::Num(parse_number(word).ok_or_else(|| syntax_at(i))?), i));
            } else {
                out.push((Tok::Ident(word.to_string()), i));
            }
            i += len;
            continue;
        }
        return Err(syntax_at(i));
    }
    Ok(out)
}

struct Parser<'a> {
    text: &'a str,
    toks: Vec<(Tok, usize)>,
    pos: usize,
    r: &'a dyn Resolver,
    /// Nesting depth of [`Parser::unary`] calls.
    depth: usize,
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
        self.toks.get(self.pos).map(|(t, _)| t)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.peek().cloned();
        self.pos += 1;
        t
    }
    /// A syntax error at token `index`: the text from that token on.
    fn syntax_error_at(&self, index: usize) -> ExprError {
        let from = self.toks.get(index).map_or(self.text.len(), |(_, at)| *at);
        ExprError::Syntax {
            at: self.text[from..].to_string(),
        }
    }
    fn close_paren(&mut self) -> Result<(), ExprError> {
        match self.next() {
            Some(Tok::RParen) => Ok(()),
            _ => Err(ExprError::MissingParen),
        }
    }

    fn binary(&mut self, min: u8) -> Result<u64, ExprError> {
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
                "/" => lhs.checked_div(rhs).ok_or(ExprError::DivideByZero)?,
                "%" => lhs.checked_rem(rhs).ok_or(ExprError::DivideByZero)?,
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

    fn unary(&mut self) -> Result<u64, ExprError> {
        if self.depth >= MAX_DEPTH {
            return Err(ExprError::TooDeep);
        }
        self.depth += 1;
        let v = self.unary_inner();
        self.depth -= 1;
        v
    }

    fn unary_inner(&mut self) -> Result<u64, ExprError> {
        let at = self.pos;
        match self.next() {
            Some(Tok::Op("-")) => Ok(self.unary()?.wrapping_neg()),
            Some(Tok::Op("+")) => self.unary(),
            Some(Tok::Op("~")) => Ok(!self.unary()?),
            Some(Tok::Num(n)) => Ok(n),
            Some(Tok::LParen) => {
                let v = self.binary(1)?;
                self.close_paren()?;
                Ok(v)
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
                    self.close_paren()?;
                    return self.r.read(a, size).ok_or_else(|| ExprError::MemoryAccess {
                        address: crate::format::addr(a, self.r.pointer_size()),
                    });
                }
                if matches!(lower.as_str(), "hi" | "low") && self.peek() == Some(&Tok::LParen) {
                    self.pos += 1;
                    let a = self.binary(1)?;
                    self.close_paren()?;
                    return Ok(if lower == "hi" {
                        (a >> 16) & 0xffff
                    } else {
                        a & 0xffff
                    });
                }
                self.identifier(&name)
            }
            Some(_) => Err(self.syntax_error_at(at)),
            None => Err(ExprError::MissingOperand),
        }
    }

    fn identifier(&self, name: &str) -> Result<u64, ExprError> {
        let bad_register = || ExprError::BadRegister(name.to_string());
        if let Some(reg) = name.strip_prefix('@') {
            if let Some(p) = reg.strip_prefix('$') {
                return self.r.pseudo(p).ok_or_else(bad_register);
            }
            return self.r.register(reg).ok_or_else(bad_register);
        }
        if let Some(p) = name.strip_prefix('$') {
            return self.r.pseudo(p).ok_or_else(bad_register);
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
        Err(ExprError::Unresolved(name.to_string()))
    }
}

/// Evaluate a MASM expression.
pub fn eval(s: &str, r: &dyn Resolver) -> Result<u64, ExprError> {
    let toks = tokenize(s)?;
    if toks.is_empty() {
        return Err(ExprError::MissingExpression);
    }
    let mut p = Parser {
        text: s,
        toks,
        pos: 0,
        r,
        depth: 0,
    };
    let v = p.binary(1)?;
    if p.pos < p.toks.len() {
        return Err(p.syntax_error_at(p.pos));
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
    }

    #[test]
    fn errors_say_what_and_where_like_windbg() {
        assert_eq!(eval("1/0", &R), Err(ExprError::DivideByZero));
        assert_eq!(
            eval("poi(5)", &R),
            Err(ExprError::MemoryAccess {
                address: "00000000`00000005".into()
            })
        );
        assert_eq!(
            eval("nosuchthing", &R),
            Err(ExprError::Unresolved("nosuchthing".into()))
        );
        assert_eq!(
            eval("@nosuchreg+1", &R),
            Err(ExprError::BadRegister("@nosuchreg".into()))
        );
        assert_eq!(
            eval("$nosuch", &R),
            Err(ExprError::BadRegister("$nosuch".into()))
        );
        // WinDbg quotes the expression from where it stopped understanding it.
        assert_eq!(
            eval("1 ) + 2", &R).unwrap_err().to_string(),
            "Syntax error at ') + 2'"
        );
        assert_eq!(
            eval("1 + #", &R).unwrap_err().to_string(),
            "Syntax error at '#'"
        );
        assert_eq!(eval("(1", &R), Err(ExprError::MissingParen));
        assert_eq!(eval("1 +", &R), Err(ExprError::MissingOperand));
        assert_eq!(eval("  ", &R), Err(ExprError::MissingExpression));
    }

    /// The parser recurses per nesting level: deep nesting is an error, not a stack overflow
    /// (which aborts the whole process).
    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = 100_000;
        let parens = format!("{}1{}", "(".repeat(deep), ")".repeat(deep));
        assert_eq!(eval(&parens, &R), Err(ExprError::TooDeep));
        for prefix in ["-", "~", "+", "poi(", "by(", "hi("] {
            let e = format!("{}1", prefix.repeat(deep));
            assert_eq!(eval(&e, &R), Err(ExprError::TooDeep), "{prefix}");
        }
        // Nesting within the limit still evaluates.
        let ok = MAX_DEPTH / 2;
        let e = format!("{}1{}", "(".repeat(ok), ")".repeat(ok));
        assert_eq!(eval(&e, &R), Ok(1));
        assert_eq!(eval(&format!("{}1", "-".repeat(ok)), &R), Ok(1));
    }
}
