//! `??`: C++ expressions over typed values, as WinDbg's C++ evaluator reads them. Names are
//! the selected frame's locals (`this`), globals (`app!g_config`, `g_config`), registers
//! (`@rax`, typed `unsigned int64`) and the typed pseudo-registers `@$teb` and `@$peb`
//! (`_TEB *`, `_PEB *`, from ntdll's PDB or the built-in layouts); operators are member access
//! (`.`, `->`), `*`, `&`, `[i]`, casts `(Type*)x`, `sizeof`, arithmetic (pointer arithmetic in
//! elements), comparisons and logic; `@@masm(…)` embeds a MASM expression (`poi`). Numbers are
//! decimal unless `0x`.
//!
//! The result prints with its C++ type: `unsigned int 0x2a`, `int 0n42`, `struct _PEB *
//! 0x000000d3`5c8d6000`, a structure with its members.
//!
//! Bounded: nesting deeper than [`MAX_NESTING`] is refused, and a structure prints through the
//! same capped printer as `dt`.

use std::fmt::Write;

use dumpdiag_os::types::{Bits, Def, Prim, Ty, TypeSource};
use dumpdiag_target::MemoryExt;

use crate::cmd_types::{find_global, find_type};
use crate::expr::{ExprError, Resolver};
use crate::registry::Invocation;
use crate::typed::{self, Printer, Src};
use crate::{CommandError, Session};

/// Deepest nesting of parentheses and unary operators accepted.
const MAX_NESTING: u32 = 64;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Int(u64, bool),
    Float(f64),
    Ident(String),
    Op(&'static str),
    /// `@@masm(…)` / `@@(…)`: a MASM expression inside the C++ one (for `poi`, say).
    Masm(String),
}

const OPS: &[&str] = &[
    "->", "<<", ">>", "<=", ">=", "==", "!=", "&&", "||", ".", "[", "]", "(", ")", "*", "&", "+",
    "-", "/", "%", "<", ">", "!", "~", "^", "|",
];

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == '@' || c == '$'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$' || c == '@'
}

fn syntax(text: &str) -> CommandError {
    CommandError::Expression(ExprError::Syntax {
        at: text.to_string(),
    })
}

fn tokenize(s: &str) -> Result<Vec<(Tok, usize)>, CommandError> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < s.len() {
        let c = s[i..].chars().next().unwrap_or(' ');
        if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        }
        if c.is_ascii_digit() {
            let len = s[i..]
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '.' || ch == '`'))
                .unwrap_or(s.len() - i);
            let word: String = s[i..i + len].chars().filter(|&ch| ch != '`').collect();
            let lower = word.to_ascii_lowercase();
            let tok = if let Some(h) = lower.strip_prefix("0x") {
                let h = h.trim_end_matches(['u', 'l']).trim_end_matches("i64");
                u64::from_str_radix(h, 16).map(|v| Tok::Int(v, true)).ok()
            } else if let Some(d) = lower.strip_prefix("0n") {
                d.parse().map(|v| Tok::Int(v, false)).ok()
            } else if lower.contains('.') {
                lower.trim_end_matches('f').parse().map(Tok::Float).ok()
            } else {
                let d = lower.trim_end_matches(['u', 'l']).trim_end_matches("i64");
                d.parse().map(|v| Tok::Int(v, false)).ok()
            };
            out.push((tok.ok_or_else(|| syntax(&s[i..]))?, i));
            i += len;
            continue;
        }
        if let Some(open) = ["@@masm(", "@@("]
            .iter()
            .find(|p| s[i..].to_ascii_lowercase().starts_with(**p))
        {
            let inner_at = i + open.len();
            let mut level = 1;
            let close = s[inner_at..].char_indices().find_map(|(k, ch)| {
                match ch {
                    '(' => level += 1,
                    ')' => level -= 1,
                    _ => {}
                }
                (level == 0).then_some(inner_at + k)
            });
            let close = close.ok_or(CommandError::Expression(ExprError::MissingParen))?;
            out.push((Tok::Masm(s[inner_at..close].to_string()), i));
            i = close + 1;
            continue;
        }
        if is_ident_start(c) {
            let mut j = i;
            loop {
                while j < s.len() && is_ident_char(b[j] as char) {
                    j += 1;
                }
                // module!name and Class::member stay one name.
                if j + 1 < s.len() && b[j] == b'!' && is_ident_start(b[j + 1] as char) {
                    j += 1;
                    continue;
                }
                if j + 2 < s.len() && &s[j..j + 2] == "::" && is_ident_start(b[j + 2] as char) {
                    j += 2;
                    continue;
                }
                break;
            }
            out.push((Tok::Ident(s[i..j].to_string()), i));
            i = j;
            continue;
        }
        if let Some(op) = OPS.iter().find(|op| s[i..].starts_with(**op)) {
            out.push((Tok::Op(op), i));
            i += op.len();
            continue;
        }
        return Err(syntax(&s[i..]));
    }
    Ok(out)
}

/// Where a value is: in the dump's memory (a bitfield's storage unit with its bits), or
/// computed.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Place {
    Mem(u64, Option<Bits>),
    Imm(Scalar),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Scalar {
    Int(u64),
    Float(f64),
}

/// A typed value: its type, the source its named types belong to, and where it is.
#[derive(Debug, Clone)]
struct Val {
    src: Src,
    ty: Ty,
    place: Place,
}

struct Parser<'a> {
    s: &'a Session,
    text: &'a str,
    toks: Vec<(Tok, usize)>,
    pos: usize,
    depth: u32,
}

fn prim(p: Prim) -> Ty {
    Ty::Prim(p)
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.0)
    }

    fn peek_op(&self, op: &str) -> bool {
        matches!(self.peek(), Some(Tok::Op(o)) if *o == op)
    }

    fn here(&self) -> CommandError {
        let at = self.toks.get(self.pos).map_or(self.text.len(), |t| t.1);
        syntax(&self.text[at..])
    }

    fn expect(&mut self, op: &str) -> Result<(), CommandError> {
        if self.peek_op(op) {
            self.pos += 1;
            Ok(())
        } else if op == ")" {
            Err(CommandError::Expression(ExprError::MissingParen))
        } else {
            Err(self.here())
        }
    }

    fn default_src(&self) -> Src {
        Src::Builtin(self.s.ptr())
    }

    fn ts(&self, src: Src) -> Result<&'a dyn TypeSource, CommandError> {
        typed::source(self.s, src).ok_or_else(|| {
            CommandError::Unavailable("the type's module has no PDB types loaded".into())
        })
    }

    fn imm(&self, ty: Ty, v: Scalar) -> Val {
        Val {
            src: self.default_src(),
            ty,
            place: Place::Imm(v),
        }
    }

    fn size_of(&self, v: &Val) -> Result<u64, CommandError> {
        Ok(self.ts(v.src)?.size_of(&v.ty))
    }

    fn def(&self, src: Src, index: u32) -> Result<Def, CommandError> {
        self.ts(src)?
            .def(index)
            .ok_or_else(|| conflict("a type the PDB does not define"))
    }

    /// The scalar a value holds (an array's is its address).
    fn scalar(&self, v: &Val) -> Result<Scalar, CommandError> {
        let (at, bits) = match v.place {
            Place::Imm(x) => return Ok(x),
            Place::Mem(a, b) => (a, b),
        };
        let mem = self.s.target().memory();
        let read = |size: u64| -> Result<u64, CommandError> {
            let n = size.clamp(1, 8) as usize;
            let mut b = [0u8; 8];
            if mem.read_exact_at(at, &mut b[..n]) {
                Ok(u64::from_le_bytes(b))
            } else {
                Err(CommandError::MemoryAccess {
                    address: self.s.addr(at),
                })
            }
        };
        let extract = |raw: u64, size: u64, signed: bool| -> u64 {
            match bits {
                Some(b) => {
                    let len = b.length.clamp(1, 64) as u32;
                    raw.checked_shr(b.position as u32).unwrap_or(0) & (u64::MAX >> (64 - len))
                }
                None if signed => typed::sign_extend(raw, size) as u64,
                None => raw,
            }
        };
        match &v.ty {
            Ty::Prim(p) if p.is_float() => {
                let raw = read(p.size())?;
                Ok(Scalar::Float(if *p == Prim::Float {
                    f32::from_bits(raw as u32) as f64
                } else {
                    f64::from_bits(raw)
                }))
            }
            Ty::Prim(Prim::Void) => Err(conflict("void")),
            Ty::Prim(p) => Ok(Scalar::Int(extract(
                read(p.size())?,
                p.size(),
                p.is_signed(),
            ))),
            Ty::Ptr { size, .. } => Ok(Scalar::Int(read(*size as u64)?)),
            Ty::Array { .. } => Ok(Scalar::Int(at)),
            Ty::Named(i) => match self.def(v.src, *i)? {
                Def::Enum(e) => Ok(Scalar::Int(extract(
                    read(e.base.size())?,
                    e.base.size(),
                    e.base.is_signed(),
                ))),
                _ => Err(conflict("a structure where a number is needed")),
            },
            _ => Err(conflict("a value of no known type")),
        }
    }

    fn int(&self, v: &Val) -> Result<u64, CommandError> {
        match self.scalar(v)? {
            Scalar::Int(x) => Ok(x),
            Scalar::Float(f) => Ok(f as i64 as u64),
        }
    }

    fn truthy(&self, v: &Val) -> Result<bool, CommandError> {
        Ok(match self.scalar(v)? {
            Scalar::Int(x) => x != 0,
            Scalar::Float(f) => f != 0.0,
        })
    }

    fn parse(&mut self) -> Result<Val, CommandError> {
        self.binary(1)
    }

    fn binary(&mut self, min: u8) -> Result<Val, CommandError> {
        let mut lhs = self.unary()?;
        while let Some(Tok::Op(op)) = self.peek() {
            let op = *op;
            let p = precedence(op);
            if p == 0 || p < min {
                break;
            }
            self.pos += 1;
            let rhs = self.binary(p + 1)?;
            lhs = self.apply(op, lhs, rhs)?;
        }
        Ok(lhs)
    }

    fn apply(&self, op: &str, l: Val, r: Val) -> Result<Val, CommandError> {
        let bool_ty = prim(Prim::Bool);
        match op {
            "&&" => {
                let v = self.truthy(&l)? && self.truthy(&r)?;
                return Ok(self.imm(bool_ty, Scalar::Int(v as u64)));
            }
            "||" => {
                let v = self.truthy(&l)? || self.truthy(&r)?;
                return Ok(self.imm(bool_ty, Scalar::Int(v as u64)));
            }
            _ => {}
        }
        let lp = pointee(&l.ty);
        let rp = pointee(&r.ty);
        // Pointer arithmetic: in elements of the pointed-to type.
        if let (Some(elem), "+" | "-", None) = (&lp, op, &rp) {
            let size = self.ts(l.src)?.size_of(elem).max(1);
            let base = self.int(&l)?;
            let n = self.int(&r)?.wrapping_mul(size);
            let v = if op == "+" {
                base.wrapping_add(n)
            } else {
                base.wrapping_sub(n)
            };
            return Ok(Val {
                src: l.src,
                ty: Ty::ptr(elem.clone(), self.s.ptr()),
                place: Place::Imm(Scalar::Int(v)),
            });
        }
        if let (None, "+", Some(elem)) = (&lp, op, &rp) {
            let size = self.ts(r.src)?.size_of(elem).max(1);
            let v = self.int(&r)?.wrapping_add(self.int(&l)?.wrapping_mul(size));
            return Ok(Val {
                src: r.src,
                ty: Ty::ptr(elem.clone(), self.s.ptr()),
                place: Place::Imm(Scalar::Int(v)),
            });
        }
        if let (Some(elem), "-", Some(_)) = (&lp, op, &rp) {
            let size = self.ts(l.src)?.size_of(elem).max(1) as i64;
            let d = (self.int(&l)? as i64).wrapping_sub(self.int(&r)? as i64) / size;
            // ptrdiff_t: int on x86, int64 on x64.
            let ty = if self.s.ptr() == 8 {
                Prim::Int64
            } else {
                Prim::Int
            };
            return Ok(self.imm(prim(ty), Scalar::Int(truncate(d as u64, ty))));
        }
        let lt = arith_type(&l.ty, self.s.ptr());
        let rt = arith_type(&r.ty, self.s.ptr());
        let (a, b) = (self.scalar(&l)?, self.scalar(&r)?);
        if lt.is_float() || rt.is_float() {
            let x = as_f64(a, lt);
            let y = as_f64(b, rt);
            let ty = if lt == Prim::Float && rt == Prim::Float {
                Prim::Float
            } else {
                Prim::Double
            };
            let cmp = |c: bool| Ok(self.imm(prim(Prim::Bool), Scalar::Int(c as u64)));
            let v = match op {
                "+" => x + y,
                "-" => x - y,
                "*" => x * y,
                "/" => x / y,
                "==" => return cmp(x == y),
                "!=" => return cmp(x != y),
                "<" => return cmp(x < y),
                ">" => return cmp(x > y),
                "<=" => return cmp(x <= y),
                ">=" => return cmp(x >= y),
                _ => return Err(conflict("an operator floating point has not")),
            };
            return Ok(self.imm(prim(ty), Scalar::Float(v)));
        }
        let ty = common_int(lt, rt);
        let (x, y) = (as_u64(a), as_u64(b));
        let signed = ty.is_signed();
        let (sx, sy) = (x as i64, y as i64);
        let cmp = |c: bool| Ok(self.imm(prim(Prim::Bool), Scalar::Int(c as u64)));
        let v = match op {
            "+" => x.wrapping_add(y),
            "-" => x.wrapping_sub(y),
            "*" => x.wrapping_mul(y),
            "/" | "%" => {
                if y == 0 {
                    return Err(CommandError::Expression(ExprError::DivideByZero));
                }
                match (op, signed) {
                    ("/", true) => sx.wrapping_div(sy) as u64,
                    ("/", false) => x / y,
                    (_, true) => sx.wrapping_rem(sy) as u64,
                    _ => x % y,
                }
            }
            "&" => x & y,
            "|" => x | y,
            "^" => x ^ y,
            "<<" => x.checked_shl(y as u32).unwrap_or(0),
            ">>" if signed => sx.checked_shr(y as u32).unwrap_or(sx >> 63) as u64,
            ">>" => x.checked_shr(y as u32).unwrap_or(0),
            "==" => return cmp(x == y),
            "!=" => return cmp(x != y),
            "<" => return cmp(if signed { sx < sy } else { x < y }),
            ">" => return cmp(if signed { sx > sy } else { x > y }),
            "<=" => return cmp(if signed { sx <= sy } else { x <= y }),
            ">=" => return cmp(if signed { sx >= sy } else { x >= y }),
            _ => return Err(self.here()),
        };
        Ok(self.imm(prim(ty), Scalar::Int(truncate(v, ty))))
    }

    fn unary(&mut self) -> Result<Val, CommandError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(CommandError::Usage(format!(
                "expression nested deeper than {MAX_NESTING} levels"
            )));
        }
        let v = self.unary_inner();
        self.depth -= 1;
        v
    }

    fn unary_inner(&mut self) -> Result<Val, CommandError> {
        match self.peek().cloned() {
            Some(Tok::Op("-")) => {
                self.pos += 1;
                let v = self.unary()?;
                let zero = self.imm(prim(Prim::Int), Scalar::Int(0));
                self.apply("-", zero, v)
            }
            Some(Tok::Op("+")) => {
                self.pos += 1;
                self.unary()
            }
            Some(Tok::Op("!")) => {
                self.pos += 1;
                let v = self.unary()?;
                let t = self.truthy(&v)?;
                Ok(self.imm(prim(Prim::Bool), Scalar::Int(!t as u64)))
            }
            Some(Tok::Op("~")) => {
                self.pos += 1;
                let v = self.unary()?;
                let ty = common_int(arith_type(&v.ty, self.s.ptr()), Prim::Int);
                let x = !self.int(&v)?;
                Ok(self.imm(prim(ty), Scalar::Int(truncate(x, ty))))
            }
            Some(Tok::Op("*")) => {
                self.pos += 1;
                let v = self.unary()?;
                self.deref(v)
            }
            Some(Tok::Op("&")) => {
                self.pos += 1;
                let v = self.unary()?;
                match v.place {
                    Place::Mem(a, None) => Ok(Val {
                        src: v.src,
                        ty: Ty::ptr(v.ty, self.s.ptr()),
                        place: Place::Imm(Scalar::Int(a)),
                    }),
                    _ => Err(conflict("& of a value that is not in memory")),
                }
            }
            Some(Tok::Ident(w)) if w == "sizeof" => {
                self.pos += 1;
                let size = if self.peek_op("(") {
                    let save = self.pos;
                    self.pos += 1;
                    match self.try_type()? {
                        Some((src, ty)) if self.peek_op(")") => {
                            self.pos += 1;
                            self.ts(src)?.size_of(&ty)
                        }
                        _ => {
                            self.pos = save;
                            let v = self.unary()?;
                            self.size_of(&v)?
                        }
                    }
                } else {
                    let v = self.unary()?;
                    self.size_of(&v)?
                };
                let ty = if self.s.ptr() == 8 {
                    Prim::UInt64
                } else {
                    Prim::UInt
                };
                Ok(self.imm(prim(ty), Scalar::Int(size)))
            }
            Some(Tok::Op("(")) => {
                self.pos += 1;
                let save = self.pos;
                if let Some((src, ty)) = self.try_type()? {
                    if self.peek_op(")") {
                        self.pos += 1;
                        let v = self.unary()?;
                        return self.cast(src, ty, v);
                    }
                }
                self.pos = save;
                let v = self.parse()?;
                self.expect(")")?;
                self.postfix(v)
            }
            Some(_) => {
                let v = self.primary()?;
                self.postfix(v)
            }
            None => Err(CommandError::Expression(ExprError::MissingOperand)),
        }
    }

    fn deref(&self, v: Val) -> Result<Val, CommandError> {
        let Some(to) = pointee(&v.ty) else {
            return Err(conflict("* of a value that is no pointer"));
        };
        if matches!(to, Ty::Prim(Prim::Void) | Ty::Function) {
            return Err(conflict("* of a void pointer"));
        }
        let a = self.int(&v)?;
        Ok(Val {
            src: v.src,
            ty: to,
            place: Place::Mem(a, None),
        })
    }

    fn postfix(&mut self, mut v: Val) -> Result<Val, CommandError> {
        loop {
            if self.peek_op(".") || self.peek_op("->") {
                let arrow = self.peek_op("->");
                self.pos += 1;
                let Some(Tok::Ident(name)) = self.peek().cloned() else {
                    return Err(self.here());
                };
                self.pos += 1;
                if arrow {
                    v = self.deref(v)?;
                }
                v = self.member(v, &name)?;
            } else if self.peek_op("[") {
                self.pos += 1;
                let i = self.parse()?;
                self.expect("]")?;
                let sum = self.apply("+", v, i)?;
                v = self.deref(sum)?;
            } else {
                return Ok(v);
            }
        }
    }

    fn member(&self, v: Val, name: &str) -> Result<Val, CommandError> {
        let Ty::Named(i) = v.ty else {
            return Err(conflict(&format!(
                ". {name} of a value that is no structure"
            )));
        };
        let Def::Record(r) = self.def(v.src, i)? else {
            return Err(conflict(&format!(
                ". {name} of a value that is no structure"
            )));
        };
        let Place::Mem(base, _) = v.place else {
            return Err(conflict("a structure that is not in memory"));
        };
        let f = r
            .fields
            .iter()
            .find(|f| f.name == name)
            .or_else(|| r.fields.iter().find(|f| f.name.eq_ignore_ascii_case(name)))
            .ok_or_else(|| {
                CommandError::NotFound(format!("Couldn't resolve member '{name}' of {}", r.name))
            })?;
        Ok(Val {
            src: v.src,
            ty: f.ty.clone(),
            place: Place::Mem(base.wrapping_add(f.offset), f.bits),
        })
    }

    fn cast(&self, src: Src, ty: Ty, v: Val) -> Result<Val, CommandError> {
        match &ty {
            Ty::Ptr { .. } => {
                let a = self.int(&v)?;
                Ok(Val {
                    src,
                    ty,
                    place: Place::Imm(Scalar::Int(truncate_ptr(a, self.s.ptr()))),
                })
            }
            Ty::Prim(p) if p.is_float() => {
                let f = as_f64(self.scalar(&v)?, arith_type(&v.ty, self.s.ptr()));
                Ok(self.imm(ty, Scalar::Float(f)))
            }
            Ty::Prim(Prim::Bool) => {
                let t = self.truthy(&v)?;
                Ok(self.imm(ty, Scalar::Int(t as u64)))
            }
            Ty::Prim(p) => {
                let x = match self.scalar(&v)? {
                    Scalar::Int(x) => x,
                    Scalar::Float(f) => f as i64 as u64,
                };
                let x = truncate(x, *p);
                let x = if p.is_signed() {
                    typed::sign_extend(x, p.size()) as u64
                } else {
                    x
                };
                Ok(self.imm(ty, Scalar::Int(x)))
            }
            Ty::Named(_) => match v.place {
                // Reinterpreting an object in memory as another type.
                Place::Mem(a, None) => Ok(Val {
                    src,
                    ty,
                    place: Place::Mem(a, None),
                }),
                _ => Err(conflict("a cast of a number to a structure")),
            },
            _ => Err(conflict("a cast to this type")),
        }
    }

    /// A type name at the cursor (`int`, `unsigned char *`, `struct _PEB *`, `ntdll!_PEB*`),
    /// consumed when there is one.
    fn try_type(&mut self) -> Result<Option<(Src, Ty)>, CommandError> {
        let start = self.pos;
        let mut words: Vec<String> = Vec::new();
        while let Some(Tok::Ident(w)) = self.peek() {
            let w = w.clone();
            if matches!(w.as_str(), "struct" | "class" | "union" | "enum" | "const") {
                self.pos += 1;
                continue;
            }
            let builtin = matches!(
                w.as_str(),
                "unsigned"
                    | "signed"
                    | "char"
                    | "short"
                    | "int"
                    | "long"
                    | "__int64"
                    | "int64"
                    | "float"
                    | "double"
                    | "bool"
                    | "void"
                    | "wchar_t"
                    | "__int8"
                    | "__int16"
                    | "__int32"
            );
            if builtin || words.is_empty() {
                words.push(w);
                self.pos += 1;
                if !builtin {
                    break;
                }
            } else {
                break;
            }
        }
        if words.is_empty() {
            self.pos = start;
            return Ok(None);
        }
        let (src, mut ty) = match c_prim(&words) {
            Some(p) => (self.default_src(), prim(p)),
            None if words.len() == 1 => {
                let (module, name) = match words[0].split_once('!') {
                    Some((m, n)) => (Some(m), n),
                    None => (None, words[0].as_str()),
                };
                match find_type(self.s, module, name) {
                    Some((src, i)) => (src, Ty::Named(i)),
                    None => {
                        self.pos = start;
                        return Ok(None);
                    }
                }
            }
            None => {
                self.pos = start;
                return Ok(None);
            }
        };
        let ptr = match src {
            Src::Builtin(p) => p,
            Src::Module(_) => self.ts(src)?.pointer_size(),
        };
        while self.peek_op("*") {
            self.pos += 1;
            ty = Ty::ptr(ty, ptr);
        }
        Ok(Some((src, ty)))
    }

    fn primary(&mut self) -> Result<Val, CommandError> {
        let at = self.pos;
        let Some(tok) = self.peek().cloned() else {
            return Err(CommandError::Expression(ExprError::MissingOperand));
        };
        self.pos += 1;
        match tok {
            Tok::Int(v, hex) => Ok(self.imm(prim(literal_type(v, hex)), Scalar::Int(v))),
            Tok::Float(f) => Ok(self.imm(prim(Prim::Double), Scalar::Float(f))),
            Tok::Masm(e) => {
                let v = self.s.eval(&e)?;
                let ty = if self.s.ptr() == 8 {
                    Prim::UInt64
                } else {
                    Prim::UInt
                };
                Ok(self.imm(prim(ty), Scalar::Int(v)))
            }
            Tok::Ident(name) => self.name(&name).map_err(|e| match e {
                CommandError::Unresolved(_) => {
                    let from = self.toks[at].1;
                    CommandError::Unresolved(self.text[from..].to_string())
                }
                other => other,
            }),
            Tok::Op(_) => {
                self.pos = at;
                Err(self.here())
            }
        }
    }

    fn name(&self, name: &str) -> Result<Val, CommandError> {
        let s = self.s;
        let reg_ty = if s.ptr() == 8 {
            Prim::UInt64
        } else {
            Prim::UInt
        };
        if let Some(p) = name.strip_prefix("@$").or_else(|| name.strip_prefix('$')) {
            let v = s
                .pseudo(p)
                .ok_or_else(|| CommandError::BadRegister(name.to_string()))?;
            // $teb and $peb point to their structures.
            let typed = match p.to_ascii_lowercase().as_str() {
                "teb" | "thread" => find_type(s, Some("ntdll"), "_TEB"),
                "peb" | "proc" => find_type(s, Some("ntdll"), "_PEB"),
                _ => None,
            };
            return Ok(match typed {
                Some((src, i)) => Val {
                    src,
                    ty: Ty::ptr(Ty::Named(i), s.ptr()),
                    place: Place::Imm(Scalar::Int(v)),
                },
                None => self.imm(prim(reg_ty), Scalar::Int(v)),
            });
        }
        if let Some(r) = name.strip_prefix('@') {
            let v = s
                .register(r)
                .ok_or_else(|| CommandError::BadRegister(name.to_string()))?;
            return Ok(self.imm(prim(reg_ty), Scalar::Int(v)));
        }
        match name {
            "true" => return Ok(self.imm(prim(Prim::Bool), Scalar::Int(1))),
            "false" => return Ok(self.imm(prim(Prim::Bool), Scalar::Int(0))),
            _ => {}
        }
        let (module, bare) = match name.split_once('!') {
            Some((m, n)) => (Some(m), n),
            None => (None, name),
        };
        if module.is_none() {
            if let Some((m, ty, at)) = typed::frame_local(s, bare)? {
                return Ok(Val {
                    src: Src::Module(m),
                    ty,
                    place: Place::Mem(at, None),
                });
            }
        }
        if let Some((src, ty, at)) = find_global(s, module, bare) {
            return Ok(Val {
                src,
                ty,
                place: Place::Mem(at, None),
            });
        }
        // A function or another symbol without a type: its address.
        if let Some(a) = s.symbol(name) {
            return Ok(Val {
                src: self.default_src(),
                ty: Ty::ptr(Ty::Function, s.ptr()),
                place: Place::Imm(Scalar::Int(a)),
            });
        }
        Err(CommandError::Unresolved(name.to_string()))
    }
}

fn conflict(what: &str) -> CommandError {
    CommandError::TypeConflict(what.to_string())
}

fn precedence(op: &str) -> u8 {
    match op {
        "||" => 1,
        "&&" => 2,
        "|" => 3,
        "^" => 4,
        "&" => 5,
        "==" | "!=" => 6,
        "<" | ">" | "<=" | ">=" => 7,
        "<<" | ">>" => 8,
        "+" | "-" => 9,
        "*" | "/" | "%" => 10,
        _ => 0,
    }
}

/// What a pointer points to, or an array's element (arrays decay to pointers).
fn pointee(ty: &Ty) -> Option<Ty> {
    match ty {
        Ty::Ptr { to, .. } => Some((**to).clone()),
        Ty::Array { of, .. } => Some((**of).clone()),
        _ => None,
    }
}

/// The arithmetic type a value takes part in operations as.
fn arith_type(ty: &Ty, ptr: u64) -> Prim {
    match ty {
        Ty::Prim(p) => *p,
        Ty::Ptr { .. } | Ty::Array { .. } | Ty::Function => {
            if ptr == 8 {
                Prim::UInt64
            } else {
                Prim::UInt
            }
        }
        _ => Prim::Int,
    }
}

/// C's usual arithmetic conversions for integers (promotion to int, then the wider, unsigned
/// winning at equal width).
fn common_int(a: Prim, b: Prim) -> Prim {
    let size = a.size().max(b.size()).max(4);
    let unsigned = |p: Prim| !p.is_signed() && p.size() >= size && p != Prim::Bool;
    let u = unsigned(a) || unsigned(b);
    match (size, u) {
        (4, false) => Prim::Int,
        (4, true) => Prim::UInt,
        (_, false) => Prim::Int64,
        (_, true) => Prim::UInt64,
    }
}

fn as_f64(v: Scalar, ty: Prim) -> f64 {
    match v {
        Scalar::Float(f) => f,
        Scalar::Int(x) if ty.is_signed() => x as i64 as f64,
        Scalar::Int(x) => x as f64,
    }
}

fn as_u64(v: Scalar) -> u64 {
    match v {
        Scalar::Int(x) => x,
        Scalar::Float(f) => f as i64 as u64,
    }
}

fn truncate(v: u64, p: Prim) -> u64 {
    match p.size() {
        1 => v & 0xff,
        2 => v & 0xffff,
        4 => v & 0xffff_ffff,
        _ => v,
    }
}

fn truncate_ptr(v: u64, ptr: u64) -> u64 {
    if ptr == 4 {
        v & 0xffff_ffff
    } else {
        v
    }
}

/// C's type of an integer literal: int, then (hex) unsigned int, then int64, unsigned int64.
fn literal_type(v: u64, hex: bool) -> Prim {
    if v <= i32::MAX as u64 {
        Prim::Int
    } else if hex && v <= u32::MAX as u64 {
        Prim::UInt
    } else if v <= i64::MAX as u64 {
        Prim::Int64
    } else {
        Prim::UInt64
    }
}

/// A C type spelled with keywords (`unsigned long`, `__int64`, `char`).
fn c_prim(words: &[String]) -> Option<Prim> {
    let unsigned = words.iter().any(|w| w == "unsigned");
    let has = |w: &str| words.iter().any(|x| x == w);
    let longs = words.iter().filter(|w| *w == "long").count();
    Some(if has("void") {
        Prim::Void
    } else if has("bool") {
        Prim::Bool
    } else if has("wchar_t") {
        Prim::WChar
    } else if has("float") {
        Prim::Float
    } else if has("double") {
        Prim::Double
    } else if has("char") || has("__int8") {
        if unsigned {
            Prim::UChar
        } else if has("signed") {
            Prim::SChar
        } else {
            Prim::Char
        }
    } else if has("short") || has("__int16") {
        if unsigned {
            Prim::UShort
        } else {
            Prim::Short
        }
    } else if has("__int64") || has("int64") || longs >= 2 {
        if unsigned {
            Prim::UInt64
        } else {
            Prim::Int64
        }
    } else if longs == 1 {
        if unsigned {
            Prim::ULong
        } else {
            Prim::Long
        }
    } else if has("int") || has("__int32") || unsigned || has("signed") {
        if unsigned {
            Prim::UInt
        } else {
            Prim::Int
        }
    } else {
        return None;
    })
}

/// The result of `??` as WinDbg prints it.
fn show(p: &Parser, v: &Val) -> Result<String, CommandError> {
    let ts = p.ts(v.src)?;
    let name = typed::c_name(ts, &v.ty);
    let mem = p.s.target().memory();
    match &v.ty {
        Ty::Named(i) => match p.def(v.src, *i)? {
            Def::Record(r) => {
                let Place::Mem(a, _) = v.place else {
                    return Err(conflict("a structure that is not in memory"));
                };
                if mem.read_u8(a).is_none() {
                    return Err(CommandError::MemoryAccess {
                        address: p.s.addr(a),
                    });
                }
                let mut out = format!("{name}\n");
                let mut pr = Printer::new(ts, mem);
                pr.record(&mut out, &r, Some(a), 3, 0, &[]);
                if pr.truncated() {
                    let _ = writeln!(out, "... (output cut at {} lines)", typed::MAX_LINES);
                }
                Ok(out)
            }
            Def::Enum(e) => {
                let x = p.int(v)? as i64;
                Ok(match e.name_of(x) {
                    Some(n) => format!("{name} {n} (0n{x})\n"),
                    None => format!("{name} 0n{x}\n"),
                })
            }
            Def::Opaque(n) => Err(conflict(&format!("{n}, which the PDB does not define"))),
        },
        Ty::Ptr { to, size, .. } => {
            let x = p.int(v)?;
            let pr = Printer::new(ts, mem);
            let text = pr.pointer_value(to, x, *size as u64);
            // pointer_value adds the pointee's dt name; ?? shows only the address (and a
            // string's text).
            let text = match to.as_ref() {
                Ty::Prim(c) if c.is_char() || c.is_wide_char() => text,
                _ if x == 0 => typed::pointer_text(0, *size as u64),
                _ => typed::pointer_text(x, *size as u64),
            };
            Ok(format!("{name} {text}\n"))
        }
        Ty::Array { of, .. } => {
            let Place::Mem(a, _) = v.place else {
                return Err(conflict("an array that is not in memory"));
            };
            let addr = typed::pointer_text(a, p.s.ptr());
            let text = match of.as_ref() {
                Ty::Prim(c) if c.is_char() => {
                    let t = typed::narrow_string(mem, a, 256).unwrap_or_default();
                    format!("  \"{t}\"")
                }
                Ty::Prim(c) if c.is_wide_char() => mem
                    .read_wstring(a, 256)
                    .map(|t| format!("  \"{t}\""))
                    .unwrap_or_default(),
                _ => String::new(),
            };
            Ok(format!("{name} {addr}{text}\n"))
        }
        Ty::Prim(pr) => {
            let text = match p.scalar(v)? {
                Scalar::Float(f) => typed::float_text(f, if *pr == Prim::Float { 9 } else { 17 }),
                Scalar::Int(x) => match pr {
                    Prim::Bool => (if x != 0 { "true" } else { "false" }).into(),
                    Prim::Char | Prim::SChar => {
                        let c = x & 0xff;
                        let q = if (0x20..0x7f).contains(&c) {
                            format!("'{}'", c as u8 as char)
                        } else {
                            "''".into()
                        };
                        format!("0n{} {q}", typed::sign_extend(c, 1))
                    }
                    pr if pr.is_signed() => format!("0n{}", typed::sign_extend(x, pr.size())),
                    pr if pr.size() == 1 => format!("0x{:02x}", x & 0xff),
                    _ => format!("0x{x:x}"),
                },
            };
            Ok(format!("{name} {text}\n"))
        }
        Ty::Function => Ok(format!(
            "<function> {}\n",
            typed::pointer_text(p.int(v)?, p.s.ptr())
        )),
        Ty::Unknown => Err(conflict(
            "a value of a type the PDB describes in a way not followed",
        )),
    }
}

/// `?? expression`.
pub(crate) fn run(s: &mut Session, inv: &Invocation) -> Result<String, CommandError> {
    let text = inv.args;
    let toks = tokenize(text)?;
    if toks.is_empty() {
        return Err(CommandError::Expression(ExprError::MissingExpression));
    }
    let mut p = Parser {
        s,
        text,
        toks,
        pos: 0,
        depth: 0,
    };
    let v = p.parse()?;
    if p.pos < p.toks.len() {
        return Err(p.here());
    }
    show(&p, &v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_take_cs_types() {
        assert_eq!(literal_type(42, false), Prim::Int);
        assert_eq!(literal_type(0x8000_0000, true), Prim::UInt);
        assert_eq!(literal_type(0x8000_0000, false), Prim::Int64);
        assert_eq!(literal_type(u64::MAX, true), Prim::UInt64);
    }

    #[test]
    fn usual_conversions() {
        assert_eq!(common_int(Prim::Int, Prim::UInt), Prim::UInt);
        assert_eq!(common_int(Prim::UChar, Prim::Short), Prim::Int);
        assert_eq!(common_int(Prim::Int64, Prim::UInt), Prim::Int64);
        assert_eq!(common_int(Prim::UInt64, Prim::Int), Prim::UInt64);
    }

    #[test]
    fn names_tokens_keep_modules_and_scopes() {
        let t = tokenize("app!g_config.m_x->y[2] + Class::s_n - !flag").unwrap();
        let names: Vec<&str> = t
            .iter()
            .filter_map(|(t, _)| match t {
                Tok::Ident(n) => Some(n.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(names, ["app!g_config", "m_x", "y", "Class::s_n", "flag"]);
        assert!(tokenize("1 # 2").is_err());
        assert_eq!(tokenize("0x10").unwrap()[0].0, Tok::Int(16, true));
        assert_eq!(tokenize("10").unwrap()[0].0, Tok::Int(10, false));
    }

    #[test]
    fn c_type_words() {
        let w = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(c_prim(&w("unsigned int")), Some(Prim::UInt));
        assert_eq!(c_prim(&w("unsigned char")), Some(Prim::UChar));
        assert_eq!(c_prim(&w("long long")), Some(Prim::Int64));
        assert_eq!(c_prim(&w("unsigned")), Some(Prim::UInt));
        assert_eq!(c_prim(&w("Foo")), None);
    }
}
