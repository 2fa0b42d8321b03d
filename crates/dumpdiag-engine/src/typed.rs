//! Typed memory as `dt` and `??` print it: type names in WinDbg's two spellings (`dt`'s
//! `Ptr64 _PEB_LDR_DATA`, `Uint4B`, `[4] UChar`; `??`'s `struct _PEB *`, `unsigned int`), the
//! value of a member read from the dump (`0n42`, `0x2a`, `0y1`, `(null)`, `_LIST_ENTRY [ a - b ]`,
//! `_UNICODE_STRING "C:\x"`), and a record's members one per line (`   +0x010 Name : value`),
//! expanded recursively with `-r`.
//!
//! Where types come from ([`Src`]): a module's PDB, or the built-in layouts of ntdll's
//! structures for the session's effective machine when no ntdll PDB is loaded. Types read from a
//! PDB are untrusted: the output is capped ([`MAX_LINES`]) and recursion bounded by the depth
//! `-r` asks for, so cyclic types, huge arrays or deep nesting end in a truncation note.

use std::fmt::Write;
use std::sync::OnceLock;

use dumpdiag_os::builtin_types::BuiltinTypes;
use dumpdiag_os::layout::{X64, X86};
use dumpdiag_os::types::{Bits, Def, Prim, Record, Shape, Ty, TypeSource};
use dumpdiag_target::{MemoryExt, MemoryReader};

use crate::format;
use crate::Session;

/// Most lines one `dt` or `??` prints.
pub const MAX_LINES: usize = 20_000;
/// Deepest `-r` (WinDbg takes one digit).
pub const MAX_DEPTH: u32 = 9;
/// The structures whose one-line form shows more than their name (see `record_summary`).
const SUMMARISED: &[&str] = &[
    "_LIST_ENTRY",
    "_UNICODE_STRING",
    "_STRING",
    "_LARGE_INTEGER",
    "_ULARGE_INTEGER",
    "_GUID",
];
/// Most characters shown of a string a member points to.
const MAX_STRING: usize = 256;

/// Where a named type lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Src {
    /// The PDB of the module with this index.
    Module(usize),
    /// The built-in layouts, of this pointer size.
    Builtin(u64),
}

/// The built-in layouts of a bitness, built once.
pub fn builtins(ptr: u64) -> &'static BuiltinTypes {
    static X86_TYPES: OnceLock<BuiltinTypes> = OnceLock::new();
    static X64_TYPES: OnceLock<BuiltinTypes> = OnceLock::new();
    if ptr == 4 {
        X86_TYPES.get_or_init(|| BuiltinTypes::new(&X86))
    } else {
        X64_TYPES.get_or_init(|| BuiltinTypes::new(&X64))
    }
}

/// The type source `src` names.
pub fn source(s: &Session, src: Src) -> Option<&dyn TypeSource> {
    match src {
        Src::Module(i) => s
            .symbols()
            .types(s.target(), i)
            .map(|t| t as &dyn TypeSource),
        Src::Builtin(ptr) => Some(builtins(ptr) as &dyn TypeSource),
    }
}

/// The name of a source's module as `dt` prefixes types with it.
/// The selected frame's local `name`: its module, type and address. None when the frame has
/// no such local; an error when it has one that lives in a register (no address to read).
pub fn frame_local(
    s: &Session,
    name: &str,
) -> Result<Option<(usize, Ty, u64)>, crate::CommandError> {
    let Ok((Some(m), vars)) = crate::cmd_stacks::current_locals(s) else {
        return Ok(None);
    };
    let Some(v) = vars.iter().find(|v| v.name == name) else {
        return Ok(None);
    };
    let ty = s
        .symbols()
        .types(s.target(), m)
        .map(|t| t.ty(v.type_index))
        .unwrap_or(Ty::Unknown);
    let at = v.address.ok_or_else(|| {
        crate::CommandError::Unavailable(format!(
            "{name} is not in memory at this frame (a register variable)"
        ))
    })?;
    Ok(Some((m, ty, at)))
}

pub fn module_name(s: &Session, src: Src) -> String {
    match src {
        Src::Module(i) => s
            .target()
            .modules()
            .get(i)
            .map(|m| m.short_name())
            .unwrap_or_default(),
        Src::Builtin(_) => dumpdiag_os::builtin_types::MODULE.to_string(),
    }
}

/// `dt`'s name of a type: `Uint4B`, `Ptr64 _PEB`, `[4] UChar`, `_LIST_ENTRY`.
pub fn windbg_name(ts: &dyn TypeSource, ty: &Ty) -> String {
    windbg_name_at(ts, ty, 0)
}

fn windbg_name_at(ts: &dyn TypeSource, ty: &Ty, depth: u32) -> String {
    if depth > dumpdiag_os::types::MAX_TYPE_DEPTH {
        return "...".into();
    }
    match ty {
        Ty::Prim(p) => p.windbg_name().into(),
        Ty::Ptr { to, size, .. } => {
            let inner = match to.as_ref() {
                Ty::Function => "void".to_string(),
                other => windbg_name_at(ts, other, depth + 1),
            };
            format!("Ptr{} {inner}", *size as u32 * 8)
        }
        Ty::Array { of, count } => format!("[{count}] {}", windbg_name_at(ts, of, depth + 1)),
        Ty::Named(i) => ts
            .shape(*i)
            .map_or_else(|| "<unknown type>".into(), |d| d.name().to_string()),
        Ty::Function => "void".into(),
        Ty::Unknown => "<unknown type>".into(),
    }
}

/// `??`'s (C++) name of a type: `unsigned int`, `struct _PEB *`, `char [256]`.
pub fn c_name(ts: &dyn TypeSource, ty: &Ty) -> String {
    c_name_at(ts, ty, 0)
}

fn c_name_at(ts: &dyn TypeSource, ty: &Ty, depth: u32) -> String {
    if depth > dumpdiag_os::types::MAX_TYPE_DEPTH {
        return "...".into();
    }
    match ty {
        Ty::Prim(p) => p.c_name().into(),
        Ty::Ptr { to, reference, .. } => {
            let sigil = if *reference { "&" } else { "*" };
            match to.as_ref() {
                Ty::Function => format!("<function> {sigil}"),
                other => format!("{} {sigil}", c_name_at(ts, other, depth + 1)),
            }
        }
        Ty::Array { of, count } => format!("{} [{count}]", c_name_at(ts, of, depth + 1)),
        Ty::Named(i) => match ts.shape(*i) {
            Some(Shape::Record { kind, name, .. }) => format!("{} {name}", kind.keyword()),
            Some(d) => d.name().to_string(),
            None => "<unknown type>".into(),
        },
        Ty::Function => "<function>".into(),
        Ty::Unknown => "<unknown type>".into(),
    }
}

/// `0x00000000`7efde000` / `0x7efde000`: a pointer as `dt` and `??` print it.
pub fn pointer_text(v: u64, size: u64) -> String {
    format!("0x{}", format::addr(v, size))
}

/// A read little-endian integer of `size` bytes (at most 8).
fn read_uint(mem: &dyn MemoryReader, addr: u64, size: u64) -> Option<u64> {
    let n = size.min(8) as usize;
    let mut b = [0u8; 8];
    mem.read_exact_at(addr, &mut b[..n])
        .then(|| u64::from_le_bytes(b))
}

/// `v` of `size` bytes as a signed number.
pub fn sign_extend(v: u64, size: u64) -> i64 {
    let bits = (size.clamp(1, 8) * 8) as u32;
    ((v << (64 - bits)) as i64) >> (64 - bits)
}

/// A character as WinDbg quotes it: `'A'`, or `''` for what does not print.
fn quoted_char(c: u64) -> String {
    match char::from_u32(c as u32) {
        Some(ch) if (0x20..0x7f).contains(&c) => format!("'{ch}'"),
        _ => "''".into(),
    }
}

/// `%.*g`: `digits` significant digits, trailing zeros dropped (WinDbg's float and double).
pub fn float_text(v: f64, digits: usize) -> String {
    if v == 0.0 || !v.is_finite() {
        return if v == 0.0 { "0".into() } else { format!("{v}") };
    }
    let exp = v.abs().log10().floor() as i32;
    if exp < -5 || exp >= digits as i32 {
        let s = format!("{:.*e}", digits.saturating_sub(1), v);
        return match s.split_once('e') {
            Some((m, e)) => {
                let m = if m.contains('.') {
                    m.trim_end_matches('0').trim_end_matches('.')
                } else {
                    m
                };
                let e: i32 = e.parse().unwrap_or(0);
                format!("{m}e{}{:03}", if e < 0 { '-' } else { '+' }, e.abs())
            }
            None => s,
        };
    }
    let decimals = (digits as i32 - 1 - exp).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A scalar of primitive type `p` whose bytes are `raw`, as `dt` prints it.
pub fn prim_text(p: Prim, raw: u64) -> String {
    let size = p.size();
    match p {
        Prim::Float => float_text(f32::from_bits(raw as u32) as f64, 9),
        Prim::Double | Prim::LongDouble => float_text(f64::from_bits(raw), 17),
        Prim::Bool => (if raw & 0xff != 0 { "true" } else { "false" }).into(),
        Prim::UChar | Prim::Char8 => {
            let v = raw & 0xff;
            if v == 0 {
                "0 ''".into()
            } else {
                format!("0x{v:x} {}", quoted_char(v))
            }
        }
        Prim::Char | Prim::SChar => {
            let v = sign_extend(raw, 1);
            format!("{v} {}", quoted_char(raw & 0xff))
        }
        Prim::WChar | Prim::Char16 => {
            let v = raw & 0xffff;
            format!("0x{v:x} {}", quoted_char(v))
        }
        p if p.is_signed() => format!("0n{}", sign_extend(raw, size)),
        _ => {
            if raw == 0 {
                "0".into()
            } else {
                format!("0x{raw:x}")
            }
        }
    }
}

/// A wide string for display: control characters (and what did not decode) shown as `.`.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() || c == char::REPLACEMENT_CHARACTER {
                '.'
            } else {
                c
            }
        })
        .collect()
}

/// An 8-bit string for display: printable ASCII kept, every other byte shown as `.`.
fn clean_bytes(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                '.'
            }
        })
        .collect()
}

/// The NUL-terminated 8-bit string at `addr` (at most `max` bytes), for display.
pub fn narrow_string(mem: &dyn MemoryReader, addr: u64, max: usize) -> Option<String> {
    let bytes = mem.read_bytes(addr, max);
    if bytes.is_empty() {
        return None;
    }
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    Some(clean_bytes(&bytes[..end]))
}

/// The text after a member's ` : ` in `dt`: without an address the type, with one the value.
pub struct Printer<'a> {
    pub ts: &'a dyn TypeSource,
    pub mem: &'a dyn MemoryReader,
    lines: usize,
    truncated: bool,
    /// Omit offsets (`dt -o`).
    pub no_offsets: bool,
    /// Show array elements one per line, at most this many (`dt -a[N]`).
    pub array_elements: Option<u64>,
}

/// One step of a `dt` field filter (`NtTib.StackBase`): the component, and whether the path
/// ends with a `.` (expand every member below).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    pub parts: Vec<String>,
    pub expand_all: bool,
}

impl FieldPath {
    pub fn parse(text: &str) -> FieldPath {
        let expand_all = text.ends_with('.');
        FieldPath {
            parts: text
                .trim_end_matches('.')
                .split('.')
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect(),
            expand_all,
        }
    }
}

/// Does member `name` answer the field filter component `part` (WinDbg matches a prefix,
/// without case)?
fn field_matches(part: &str, name: &str) -> bool {
    name.len() >= part.len() && name[..part.len()].eq_ignore_ascii_case(part)
}

impl<'a> Printer<'a> {
    pub fn new(ts: &'a dyn TypeSource, mem: &'a dyn MemoryReader) -> Printer<'a> {
        Printer {
            ts,
            mem,
            lines: 0,
            truncated: false,
            no_offsets: false,
            array_elements: None,
        }
    }

    /// Was output cut at [`MAX_LINES`]?
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    fn line(&mut self, out: &mut String, text: std::fmt::Arguments) -> bool {
        if self.lines >= MAX_LINES {
            self.truncated = true;
            return false;
        }
        self.lines += 1;
        let _ = out.write_fmt(text);
        out.push('\n');
        true
    }

    /// A bitfield's value: `0y1`, `0y0101 (0x5)` for wider ones.
    fn bits_text(&self, storage: u64, b: Bits) -> String {
        let len = b.length.clamp(1, 64) as u32;
        let v = storage.checked_shr(b.position as u32).unwrap_or(0) & (u64::MAX >> (64 - len));
        let binary = format!("{v:0width$b}", width = len as usize);
        if len > 4 {
            format!("0y{binary} (0x{v:x})")
        } else {
            format!("0y{binary}")
        }
    }

    /// The text of a value of type `ty` at `addr`, as a member line shows it.
    pub fn value_text(&self, ty: &Ty, addr: u64, bits: Option<Bits>) -> String {
        let unreadable = || "??".to_string();
        match ty {
            Ty::Prim(p) => {
                let size = if bits.is_some() {
                    p.size().max(1)
                } else {
                    p.size()
                };
                if size == 0 {
                    return String::new();
                }
                let Some(raw) = read_uint(self.mem, addr, size) else {
                    return unreadable();
                };
                match bits {
                    Some(b) => self.bits_text(raw, b),
                    None => prim_text(*p, raw),
                }
            }
            Ty::Ptr { to, size, .. } => {
                let size = *size as u64;
                let Some(v) = read_uint(self.mem, addr, size) else {
                    return unreadable();
                };
                self.pointer_value(to, v, size)
            }
            Ty::Array { of, count } => self.array_text(of, *count, addr),
            // A record's summary reads members only for the few structures WinDbg summarises.
            Ty::Named(i) => match self.ts.shape(*i) {
                Some(Shape::Record { name, .. }) if !SUMMARISED.contains(&name.as_str()) => name,
                _ => self.named_text(*i, addr, bits),
            },
            Ty::Function | Ty::Unknown => String::new(),
        }
    }

    /// An enum's value (`1 ( ONE )`), or a summarised record's line.
    fn named_text(&self, i: u32, addr: u64, bits: Option<Bits>) -> String {
        match self.ts.def(i) {
            Some(Def::Enum(e)) => {
                let size = e.base.size().max(1);
                let Some(raw) = read_uint(self.mem, addr, size) else {
                    return "??".into();
                };
                let v = if e.base.is_signed() {
                    sign_extend(raw, size)
                } else {
                    raw as i64
                };
                match (bits, e.name_of(v)) {
                    (Some(b), _) => self.bits_text(raw, b),
                    (None, Some(name)) => format!("{v} ( {name} )"),
                    (None, None) => format!("0n{v}"),
                }
            }
            Some(Def::Record(r)) => self.record_summary(&r, addr),
            Some(Def::Opaque(name)) => name,
            None => "<unknown type>".into(),
        }
    }

    /// A pointer's value: `(null)`, `0x… _PEB_LDR_DATA`, `0x…  "text"` for strings.
    pub fn pointer_value(&self, to: &Ty, v: u64, size: u64) -> String {
        if v == 0 {
            return "(null)".into();
        }
        let p = pointer_text(v, size);
        match to {
            Ty::Prim(c) if c.is_char() => match narrow_string(self.mem, v, MAX_STRING) {
                Some(t) => format!("{p}  \"{t}\""),
                None => format!("{p}  \"\""),
            },
            Ty::Prim(c) if c.is_wide_char() => match self.mem.read_wstring(v, MAX_STRING) {
                Some(t) => format!("{p}  \"{}\"", clean(&t)),
                None => format!("{p}  \"\""),
            },
            Ty::Function => p,
            other => format!("{p} {}", windbg_name(self.ts, other)),
        }
    }

    fn array_text(&self, of: &Ty, count: u64, addr: u64) -> String {
        match of {
            Ty::Prim(c) if c.is_char() => {
                let max = count.min(MAX_STRING as u64) as usize;
                let t = narrow_string(self.mem, addr, max).unwrap_or_default();
                format!("[{count}]  \"{t}\"")
            }
            Ty::Prim(c) if c.is_wide_char() => {
                let max = count.min(MAX_STRING as u64) as usize;
                let t = self.mem.read_wstring(addr, max).unwrap_or_default();
                format!("[{count}]  \"{}\"", clean(&t))
            }
            _ if count == 0 => format!("[0] {}", windbg_name(self.ts, of)),
            _ => format!("[{count}] {}", self.value_text(of, addr, None)),
        }
    }

    /// An embedded record on one line: the type name, with what WinDbg adds for the structures
    /// it knows (`_LIST_ENTRY [ flink - blink ]`, `_UNICODE_STRING "text"`, `_LARGE_INTEGER
    /// 0x…`, `_GUID {…}`).
    fn record_summary(&self, r: &Record, addr: u64) -> String {
        let field = |name: &str| r.fields.iter().find(|f| f.name == name);
        let ptr = self.ts.pointer_size();
        match r.name.as_str() {
            "_LIST_ENTRY" => {
                let flink = read_uint(self.mem, addr, ptr);
                let blink = read_uint(self.mem, addr.wrapping_add(ptr), ptr);
                match (flink, blink) {
                    (Some(f), Some(b)) => format!(
                        "_LIST_ENTRY [ {} - {} ]",
                        pointer_text(f, ptr),
                        pointer_text(b, ptr)
                    ),
                    _ => "_LIST_ENTRY".into(),
                }
            }
            "_UNICODE_STRING" | "_STRING" => {
                let (Some(len), Some(buf)) = (field("Length"), field("Buffer")) else {
                    return r.name.clone();
                };
                let length = self.mem.read_u16(addr.wrapping_add(len.offset));
                let buffer = read_uint(self.mem, addr.wrapping_add(buf.offset), ptr);
                let (Some(length), Some(buffer)) = (length, buffer) else {
                    return r.name.clone();
                };
                let text = if r.name == "_STRING" {
                    let b = self.mem.read_bytes(buffer, length as usize);
                    (b.len() == length as usize).then(|| clean_bytes(&b))
                } else {
                    self.mem
                        .read_utf16_exact(buffer, length as usize)
                        .map(|t| clean(&t))
                };
                match text {
                    Some(t) => format!("{} \"{t}\"", r.name),
                    None if length == 0 => format!("{} \"\"", r.name),
                    None => format!("{} {}", r.name, pointer_text(buffer, ptr)),
                }
            }
            "_LARGE_INTEGER" | "_ULARGE_INTEGER" => match self.mem.read_u64(addr) {
                Some(v) => format!("{} {}", r.name, pointer_text(v, 8)),
                None => r.name.clone(),
            },
            "_GUID" => {
                let b = self.mem.read_bytes(addr, 16);
                if b.len() < 16 {
                    return r.name.clone();
                }
                format!(
                    "_GUID {{{:08x}-{:04x}-{:04x}-{}-{}}}",
                    u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
                    u16::from_le_bytes([b[4], b[5]]),
                    u16::from_le_bytes([b[6], b[7]]),
                    hex(&b[8..10]),
                    hex(&b[10..16])
                )
            }
            _ => r.name.clone(),
        }
    }

    /// The member lines of record `r` (at `addr` when given), indented by `indent`, following
    /// embedded records (and, with an address, pointers to records) `depth` levels further,
    /// showing only the members `filter` names when it is given.
    pub fn record(
        &mut self,
        out: &mut String,
        r: &Record,
        addr: Option<u64>,
        indent: usize,
        depth: u32,
        filter: &[FieldPath],
    ) {
        for f in &r.fields {
            // The filter paths this member answers, with their remaining components.
            let below: Vec<FieldPath> = filter
                .iter()
                .filter(|p| p.parts.first().is_some_and(|c| field_matches(c, &f.name)))
                .map(|p| FieldPath {
                    parts: p.parts[1..].to_vec(),
                    expand_all: p.expand_all,
                })
                .collect();
            if !filter.is_empty() && below.is_empty() {
                continue;
            }
            let at = addr.map(|a| a.wrapping_add(f.offset));
            // A path that goes on below this member shows it as a bare container.
            let continues = below.iter().any(|p| !p.parts.is_empty() || p.expand_all);
            let text = if continues {
                String::new()
            } else {
                match at {
                    Some(a) => self.value_text(&f.ty, a, f.bits),
                    None => match f.bits {
                        Some(b) => format!(
                            "Pos {}, {} Bit{}",
                            b.position,
                            b.length,
                            if b.length == 1 { "" } else { "s" }
                        ),
                        None => windbg_name(self.ts, &f.ty),
                    },
                }
            };
            let offset = if self.no_offsets {
                String::new()
            } else {
                format!("+0x{:03x} ", f.offset)
            };
            if !self.line(
                out,
                format_args!("{:indent$}{offset}{:<16} : {text}", "", f.name),
            ) {
                return;
            }
            if f.bits.is_some() {
                continue;
            }
            // What to show below this member.
            let sub_filter: Vec<FieldPath> =
                below.into_iter().filter(|p| !p.parts.is_empty()).collect();
            let expand_all = continues && sub_filter.is_empty();
            // A path through this member shows what is below it (and may pass through a
            // pointer without an address: the pointee's members are then listed as types).
            // `-a` lists an array's elements whatever the depth.
            let listed = self.array_elements.is_some() && matches!(f.ty, Ty::Array { .. });
            let (go, next_depth) = if continues {
                (true, depth)
            } else if listed && depth == 0 {
                (true, 0)
            } else {
                (depth > 0, depth.saturating_sub(1))
            };
            if !go {
                continue;
            }
            let next_filter = if expand_all { &[][..] } else { &sub_filter[..] };
            let below = Below {
                at,
                indent: indent + 3,
                depth: next_depth,
                filter: next_filter,
                on_path: continues,
            };
            self.member_below(out, &f.ty, below);
            if self.truncated {
                return;
            }
        }
    }

    /// What `-r` and `-a` show below a value of type `ty` at `at` that is no member (a global
    /// or local array, say): its elements, the record a pointer leads to.
    pub fn below(&mut self, out: &mut String, ty: &Ty, at: Option<u64>, indent: usize, depth: u32) {
        let below = Below {
            at,
            indent,
            depth,
            filter: &[],
            on_path: false,
        };
        self.member_below(out, ty, below);
    }

    /// The lines below a member: an embedded record's members, or (with an address) those of
    /// the record a pointer points to; `-a` array elements.
    fn member_below(&mut self, out: &mut String, ty: &Ty, b: Below) {
        let Below {
            at,
            indent,
            depth,
            filter,
            on_path,
        } = b;
        match ty {
            Ty::Named(i) => {
                if let Some(Def::Record(r)) = self.ts.def(*i) {
                    self.record(out, &r, at, indent, depth, filter);
                }
            }
            Ty::Ptr { to, size, .. } => {
                let Ty::Named(i) = to.as_ref() else {
                    return;
                };
                let Some(Def::Record(r)) = self.ts.def(*i) else {
                    return;
                };
                let Some(a) = at else {
                    if on_path {
                        self.record(out, &r, None, indent, depth, filter);
                    }
                    return;
                };
                match read_uint(self.mem, a, *size as u64) {
                    Some(p) if p != 0 && read_uint(self.mem, p, 1).is_some() => {
                        self.record(out, &r, Some(p), indent, depth, filter)
                    }
                    _ => {}
                }
            }
            Ty::Array { of, count } => {
                let Some(limit) = self.array_elements else {
                    return;
                };
                let size = self.ts.size_of(of);
                for k in 0..(*count).min(limit) {
                    let ea = at.map(|a| a.wrapping_add(k.wrapping_mul(size)));
                    let text = match ea {
                        Some(a) => self.value_text(of, a, None),
                        None => windbg_name(self.ts, of),
                    };
                    if !self.line(out, format_args!("{:indent$}[{k}] {text}", "")) {
                        return;
                    }
                    // A structure element shows its members (as WinDbg's -a does); what
                    // they lead to, and pointer elements, only with -r.
                    let record = matches!(of.as_ref(), Ty::Named(_));
                    if record || depth > 0 {
                        let below = Below {
                            at: ea,
                            indent: indent + 3,
                            depth: if record { depth } else { depth - 1 },
                            filter,
                            on_path: false,
                        };
                        self.member_below(out, of, below);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Where the lines below a member go: the member's address (if any), their indent, how many
/// more levels to follow, the rest of the field filter, and whether a filter path leads there.
struct Below<'f> {
    at: Option<u64>,
    indent: usize,
    depth: u32,
    filter: &'f [FieldPath],
    on_path: bool,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_printf_g() {
        assert_eq!(float_text(0.800000011920929, 9), "0.800000012");
        assert_eq!(float_text(0.8, 17), "0.80000000000000004");
        assert_eq!(float_text(1.5, 9), "1.5");
        assert_eq!(float_text(0.0, 9), "0");
        assert_eq!(float_text(1e20, 9), "1e+020");
    }

    #[test]
    fn scalars_print_like_dt() {
        assert_eq!(prim_text(Prim::Long, 0xffff_fffe), "0n-2");
        assert_eq!(prim_text(Prim::ULong, 0x2a), "0x2a");
        assert_eq!(prim_text(Prim::ULong, 0), "0");
        assert_eq!(prim_text(Prim::UChar, 0x41), "0x41 'A'");
        assert_eq!(prim_text(Prim::UChar, 0), "0 ''");
        assert_eq!(prim_text(Prim::Int, 1234), "0n1234");
    }

    #[test]
    fn field_paths_split_and_match_prefixes_without_case() {
        let p = FieldPath::parse("NtTib.StackBase");
        assert_eq!(p.parts, ["NtTib", "StackBase"]);
        assert!(!p.expand_all);
        assert!(FieldPath::parse("NtTib.").expand_all);
        assert!(field_matches("ldr", "Ldr"));
        assert!(field_matches("Stack", "StackBase"));
        assert!(!field_matches("StackBaseX", "StackBase"));
    }
}
