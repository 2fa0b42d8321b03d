//! Parameters and local variables of a function, with their types and values, from the PDB's
//! symbol records (S_REGREL32, S_BPREL32, S_LOCAL + S_DEFRANGE_FRAMEPOINTER_REL) and type
//! records. What `kp`, `dv` and `dt` show.

use std::collections::HashMap;
use std::path::Path;

use pdb_addr2line::pdb::{self, FallibleIterator, PrimitiveKind, SymbolData, TypeData, TypeIndex};

/// CodeView register numbers used by frame-relative variables.
pub const CV_X86_ESP: u16 = 21;
pub const CV_X86_EBP: u16 = 22;
pub const CV_X86_EBX: u16 = 20;
pub const CV_AMD64_RBP: u16 = 334;
pub const CV_AMD64_RSP: u16 = 335;
pub const CV_AMD64_R13: u16 = 341;

/// Most members shown for one structure; most type-reference hops followed.
const MAX_MEMBERS: usize = 256;
const MAX_TYPE_DEPTH: u32 = 16;

#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub offset: u64,
    pub name: String,
    pub type_name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Variable {
    pub name: String,
    pub is_param: bool,
    pub type_name: String,
    pub address: Option<u64>,
    /// WinDbg-style value text (`0n10`, `0.80000001192092896`, `0x006ff6d0`), or why not.
    pub value: String,
    /// For a pointer to a structure (or a structure): its members, one level deep.
    pub members: Vec<Member>,
    /// The PDB type index of the variable (what `dt` and `??` read it as, through the
    /// module's [`crate::types::PdbTypes`]).
    pub type_index: u32,
}

struct Types<'a, 's> {
    finder: pdb::TypeFinder<'a>,
    /// The first index the type stream holds (pdb2 asserts that indices below it are
    /// primitives, below 0x1000: a hostile header must not reach that assertion).
    first_index: u32,
    by_name: HashMap<String, TypeIndex>,
    ptr: u64,
    _s: std::marker::PhantomData<&'s ()>,
}

fn primitive_name(k: PrimitiveKind) -> &'static str {
    use PrimitiveKind::*;
    match k {
        Void => "void",
        Char | RChar => "char",
        UChar => "unsigned char",
        WChar => "wchar_t",
        RChar16 => "char16_t",
        RChar32 => "char32_t",
        Char8 => "char8_t",
        I8 => "int8_t",
        U8 => "uint8_t",
        Short | I16 => "short",
        UShort | U16 => "unsigned short",
        Long => "long",
        ULong => "unsigned long",
        I32 => "int",
        U32 => "unsigned int",
        Quad | I64 => "__int64",
        UQuad | U64 => "unsigned __int64",
        F32 | F32PP => "float",
        F64 => "double",
        F80 => "long double",
        Bool8 => "bool",
        Bool16 | Bool32 | Bool64 => "bool",
        HRESULT => "HRESULT",
        _ => "<primitive>",
    }
}

fn primitive_size(k: PrimitiveKind) -> usize {
    use PrimitiveKind::*;
    match k {
        Char | RChar | UChar | I8 | U8 | Char8 | Bool8 => 1,
        WChar | RChar16 | Short | UShort | I16 | U16 | Bool16 => 2,
        Long | ULong | I32 | U32 | F32 | F32PP | RChar32 | Bool32 | HRESULT => 4,
        Quad | UQuad | I64 | U64 | F64 | Bool64 => 8,
        F80 => 10,
        _ => 0,
    }
}

impl<'a, 's> Types<'a, 's> {
    fn data(&self, ti: TypeIndex) -> Option<TypeData<'a>> {
        if ti.0 >= 0x1000 && ti.0 < self.first_index {
            return None;
        }
        crate::guard::contained(|| self.finder.find(ti).ok()?.parse().ok()).flatten()
    }

    /// The full definition of a forward-referenced class/struct/union.
    fn resolve(&self, ti: TypeIndex) -> TypeIndex {
        if let Some(TypeData::Class(c)) = self.data(ti) {
            if c.properties.forward_reference() {
                if let Some(full) = self.by_name.get(&c.name.to_string().into_owned()) {
                    return *full;
                }
            }
        }
        ti
    }

    fn name(&self, ti: TypeIndex, depth: u32) -> String {
        if depth > MAX_TYPE_DEPTH {
            return "...".into();
        }
        match self.data(ti) {
            Some(TypeData::Primitive(p)) => {
                let base = primitive_name(p.kind);
                if p.indirection.is_some() {
                    format!("{base}*")
                } else {
                    base.to_string()
                }
            }
            Some(TypeData::Pointer(p)) => {
                // pdb2 panics on a pointer mode it does not know (a hostile record).
                let reference = crate::guard::contained(|| p.attributes.is_reference());
                let sigil = if reference == Some(true) { "&" } else { "*" };
                format!("{}{sigil}", self.name(p.underlying_type, depth + 1))
            }
            Some(TypeData::Modifier(m)) => {
                let inner = self.name(m.underlying_type, depth + 1);
                if m.constant {
                    format!("const {inner}")
                } else {
                    inner
                }
            }
            Some(TypeData::Class(c)) => c.name.to_string().into_owned(),
            Some(TypeData::Union(u)) => u.name.to_string().into_owned(),
            Some(TypeData::Enumeration(e)) => e.name.to_string().into_owned(),
            Some(TypeData::Array(a)) => format!("{}[]", self.name(a.element_type, depth + 1)),
            Some(TypeData::Procedure(_)) | Some(TypeData::MemberFunction(_)) => "<function>".into(),
            _ => "<type>".into(),
        }
    }

    fn strip_modifiers(&self, mut ti: TypeIndex) -> TypeIndex {
        for _ in 0..MAX_TYPE_DEPTH {
            match self.data(ti) {
                Some(TypeData::Modifier(m)) => ti = m.underlying_type,
                _ => break,
            }
        }
        ti
    }

    /// Value text of `ti` at `addr`.
    fn value(&self, ti: TypeIndex, addr: u64, read: &dyn Fn(u64, usize) -> Vec<u8>) -> String {
        let ti = self.strip_modifiers(ti);
        match self.data(ti) {
            Some(TypeData::Primitive(p)) if p.indirection.is_none() => {
                let size = primitive_size(p.kind);
                let b = read(addr, size);
                if b.len() < size || size == 0 {
                    return "<Memory access error>".into();
                }
                format_primitive(p.kind, &b)
            }
            Some(TypeData::Primitive(_)) | Some(TypeData::Pointer(_)) => {
                let b = read(addr, self.ptr as usize);
                if b.len() < self.ptr as usize {
                    return "<Memory access error>".into();
                }
                let v = if self.ptr == 4 {
                    u32::from_le_bytes(b[..4].try_into().unwrap_or([0; 4])) as u64
                } else {
                    u64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8]))
                };
                if self.ptr == 4 {
                    format!("0x{v:08x}")
                } else {
                    format!("0x{:08x}`{:08x}", v >> 32, v & 0xffff_ffff)
                }
            }
            Some(TypeData::Class(c)) => format!(
                "{} {}",
                if c.kind == pdb::ClassKind::Struct {
                    "struct"
                } else {
                    "class"
                },
                c.name
            ),
            Some(TypeData::Enumeration(e)) => {
                let b = read(addr, 4);
                match b.get(..4) {
                    Some(x) => format!(
                        "{} (0n{})",
                        e.name,
                        i32::from_le_bytes(x.try_into().unwrap_or([0; 4]))
                    ),
                    None => "<Memory access error>".into(),
                }
            }
            _ => String::new(),
        }
    }

    /// Members of the structure `ti` (after modifiers and forward references) at `addr`.
    fn members(
        &self,
        ti: TypeIndex,
        addr: u64,
        read: &dyn Fn(u64, usize) -> Vec<u8>,
    ) -> Vec<Member> {
        let ti = self.resolve(self.strip_modifiers(ti));
        let Some(TypeData::Class(c)) = self.data(ti) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut list = c.fields;
        let mut hops = 0;
        while let Some(fl) = list {
            hops += 1;
            if hops > MAX_TYPE_DEPTH {
                break;
            }
            let Some(TypeData::FieldList(f)) = self.data(fl) else {
                break;
            };
            for field in f.fields {
                if let TypeData::Member(m) = field {
                    out.push(Member {
                        offset: m.offset,
                        name: m.name.to_string().into_owned(),
                        type_name: self.name(m.field_type, 0),
                        value: self.value(m.field_type, addr.wrapping_add(m.offset), read),
                    });
                    if out.len() >= MAX_MEMBERS {
                        return out;
                    }
                }
            }
            list = f.continuation;
        }
        out
    }

    /// For a pointer to a structure, the structure's type index.
    fn pointee_struct(&self, ti: TypeIndex) -> Option<TypeIndex> {
        match self.data(self.strip_modifiers(ti))? {
            TypeData::Pointer(p) => {
                let inner = self.resolve(self.strip_modifiers(p.underlying_type));
                matches!(self.data(inner)?, TypeData::Class(_)).then_some(inner)
            }
            _ => None,
        }
    }
}

fn format_primitive(k: PrimitiveKind, b: &[u8]) -> String {
    use PrimitiveKind::*;
    let i = |n: usize| {
        let mut x = [0u8; 8];
        x[..n].copy_from_slice(&b[..n]);
        i64::from_le_bytes(x) << (64 - 8 * n) >> (64 - 8 * n)
    };
    let u = |n: usize| {
        let mut x = [0u8; 8];
        x[..n].copy_from_slice(&b[..n]);
        u64::from_le_bytes(x)
    };
    match k {
        F32 | F32PP => format!(
            "{}",
            f32::from_le_bytes(b[..4].try_into().unwrap_or([0; 4])) as f64
        ),
        F64 => format!(
            "{}",
            f64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8]))
        ),
        Bool8 | Bool16 | Bool32 | Bool64 => (if u(b.len().min(8)) != 0 {
            "true"
        } else {
            "false"
        })
        .into(),
        Char | RChar | I8 => format!(
            "0n{} '{}'",
            i(1),
            if (0x20..0x7f).contains(&b[0]) {
                b[0] as char
            } else {
                '.'
            }
        ),
        UChar | U8 | Char8 => format!("0x{:02x}", b[0]),
        Short | I16 => format!("0n{}", i(2)),
        Long | I32 | HRESULT => format!("0n{}", i(4)),
        Quad | I64 => format!("0n{}", i(8)),
        UShort | U16 | WChar | RChar16 => format!("0x{:x}", u(2)),
        ULong | U32 | RChar32 => format!("0x{:x}", u(4)),
        UQuad | U64 => format!("0x{:x}", u(8)),
        _ => String::new(),
    }
}

/// The variables of the function containing `rva`, with values read through `reg` (CodeView
/// register number → value at that frame) and `read`.
pub fn frame_variables(
    pdb_path: &Path,
    rva: u32,
    ptr: u64,
    reg: &dyn Fn(u16) -> Option<u64>,
    read: &dyn Fn(u64, usize) -> Vec<u8>,
) -> Result<Vec<Variable>, String> {
    let file = std::fs::File::open(pdb_path).map_err(|e| e.to_string())?;
    let mut pdb = pdb::PDB::open(file).map_err(|e| e.to_string())?;
    let address_map = pdb.address_map().map_err(|e| e.to_string())?;
    let dbi = pdb.debug_information().map_err(|e| e.to_string())?;
    let mut modules = dbi.modules().map_err(|e| e.to_string())?;
    // (name, is_param from the record, base register, offset, type)
    type Slot = (String, Option<bool>, u16, i32, TypeIndex);
    let mut found: Option<Vec<Slot>> = None;
    let mut frame_size: Option<u32> = None;
    'modules: while let Some(m) = modules.next().map_err(|e| e.to_string())? {
        let Some(info) = pdb.module_info(&m).map_err(|e| e.to_string())? else {
            continue;
        };
        let mut symbols = info.symbols().map_err(|e| e.to_string())?;
        let mut inside: Option<pdb::SymbolIndex> = None;
        let mut vars = Vec::new();
        let mut pending_local: Option<(String, bool, TypeIndex)> = None;
        // A lexical block the frame's address is outside of, or an inlined call's site: their
        // variables are not this frame's (an inlined function's locals belong to its inline
        // frame), so their records are passed over up to the scope's end.
        let mut skip_until: Option<pdb::SymbolIndex> = None;
        let (mut local_base, mut param_base) = (0u8, 0u8);
        while let Some(sym) = symbols.next().map_err(|e| e.to_string())? {
            if let Some(end) = inside {
                if sym.index() >= end {
                    found = Some(vars);
                    break 'modules;
                }
            }
            if let Some(end) = skip_until {
                if sym.index() < end {
                    continue;
                }
                skip_until = None;
            }
            let Some(Ok(data)) = crate::guard::contained(|| sym.parse()) else {
                continue;
            };
            match data {
                SymbolData::Procedure(p) if inside.is_none() => {
                    let Some(start) = p.offset.to_rva(&address_map) else {
                        continue;
                    };
                    if rva >= start.0 && rva < start.0.saturating_add(p.len) {
                        inside = Some(p.end);
                    }
                }
                _ if inside.is_none() => {}
                SymbolData::Block(b) => {
                    let holds = b
                        .offset
                        .to_rva(&address_map)
                        .is_some_and(|start| rva >= start.0 && rva - start.0 < b.len);
                    if !holds {
                        skip_until = Some(b.end);
                    }
                }
                SymbolData::InlineSite(site) => skip_until = Some(site.end),
                SymbolData::FrameProcedure(f) => {
                    frame_size = Some(f.frame_byte_count);
                    local_base = f.flags.encoded_local_base_pointer;
                    param_base = f.flags.encoded_param_base_pointer;
                }
                SymbolData::RegisterRelative(r) => vars.push((
                    r.name.to_string().into_owned(),
                    None,
                    r.register.0,
                    r.offset,
                    r.type_index,
                )),
                SymbolData::BasePointerRelative(b) => vars.push((
                    b.name.to_string().into_owned(),
                    Some(b.offset > 0),
                    if ptr == 4 { CV_X86_EBP } else { CV_AMD64_RBP },
                    b.offset,
                    b.type_index,
                )),
                SymbolData::Local(l) => {
                    pending_local = Some((
                        l.name.to_string().into_owned(),
                        l.flags.isparam,
                        l.type_index,
                    ))
                }
                SymbolData::DefRangeFramePointerRelative(d) => {
                    // A local may have several ranges (S_DEFRANGE_* records, each with gaps):
                    // the one holding the frame's address says where it lives there.
                    let live = d.range.offset.to_rva(&address_map).is_some_and(|start| {
                        let at = rva.wrapping_sub(start.0);
                        rva >= start.0
                            && at < u32::from(d.range.cb_range)
                            && !d.gaps.iter().any(|g| {
                                at >= u32::from(g.gap_start_offset)
                                    && at - u32::from(g.gap_start_offset) < u32::from(g.cb_range)
                            })
                    });
                    if !live {
                        continue;
                    }
                    if let Some((name, is_param, ti)) = pending_local.take() {
                        vars.push((
                            name,
                            Some(is_param),
                            base_register(if is_param { param_base } else { local_base }, ptr),
                            d.offset,
                            ti,
                        ));
                    }
                }
                SymbolData::DefRangeFramePointerRelativeFullScope(d) => {
                    if let Some((name, is_param, ti)) = pending_local.take() {
                        vars.push((
                            name,
                            Some(is_param),
                            base_register(if is_param { param_base } else { local_base }, ptr),
                            d.offset,
                            ti,
                        ));
                    }
                }
                _ => {}
            }
        }
    }
    let Some(vars) = found else {
        return Ok(Vec::new());
    };
    let tpi = pdb.type_information().map_err(|e| e.to_string())?;
    let mut finder = tpi.finder();
    let mut by_name = HashMap::new();
    let mut first_index = None;
    let mut it = tpi.iter();
    while let Some(t) = crate::guard::contained(|| it.next())
        .ok_or("a type record the parser cannot read")?
        .map_err(|e| e.to_string())?
    {
        finder.update(&it);
        first_index.get_or_insert(t.index().0);
        let class = crate::guard::contained(|| match t.parse() {
            Ok(TypeData::Class(c)) if !c.properties.forward_reference() => {
                Some(c.name.to_string().into_owned())
            }
            _ => None,
        })
        .flatten();
        if let Some(name) = class {
            by_name.entry(name).or_insert(t.index());
        }
    }
    let types = Types {
        finder,
        first_index: first_index.unwrap_or(u32::MAX),
        by_name,
        ptr,
        _s: std::marker::PhantomData,
    };
    let mut out = Vec::new();
    for (name, is_param, register, offset, ti) in vars {
        let base = reg(register);
        let address = base.map(|b| b.wrapping_add(offset as i64 as u64));
        // MSVC describes a variable twice: S_LOCAL with its S_DEFRANGE records, and again as
        // S_REGREL32 for debuggers that predate them. One variable, shown once.
        if out
            .iter()
            .any(|v: &Variable| v.name == name && v.address == address)
        {
            continue;
        }
        // S_REGREL32 has no parameter flag: on x86, EBP-relative variables above the return
        // address are parameters; on x64, RSP-relative ones above the frame are.
        let is_param = is_param.unwrap_or(match register {
            CV_X86_EBP => offset > 4,
            CV_AMD64_RSP => frame_size.is_some_and(|f| offset as i64 > f as i64),
            _ => false,
        });
        let type_name = types.name(ti, 0);
        let (value, members) = match address {
            Some(a) => {
                let v = types.value(ti, a, read);
                let members = match types.pointee_struct(ti) {
                    Some(st) => {
                        let raw = read(a, ptr as usize);
                        let target = if ptr == 4 {
                            raw.get(..4)
                                .map(|x| u32::from_le_bytes(x.try_into().unwrap_or([0; 4])) as u64)
                        } else {
                            raw.get(..8)
                                .map(|x| u64::from_le_bytes(x.try_into().unwrap_or([0; 8])))
                        };
                        target
                            .map(|t| types.members(st, t, read))
                            .unwrap_or_default()
                    }
                    None => types.members(ti, a, read),
                };
                (v, members)
            }
            None => ("<value unavailable>".into(), Vec::new()),
        };
        out.push(Variable {
            name,
            is_param,
            type_name,
            address,
            value,
            members,
            type_index: ti.0,
        });
    }
    Ok(out)
}

/// S_FRAMEPROC's encoded base pointer: 1 = stack pointer, 2 = frame pointer, 3 = r13 / ebx.
fn base_register(encoded: u8, ptr: u64) -> u16 {
    match (encoded, ptr) {
        (2, 4) => CV_X86_EBP,
        (3, 4) => CV_X86_EBX,
        (_, 4) => CV_X86_ESP,
        (2, _) => CV_AMD64_RBP,
        (3, _) => CV_AMD64_R13,
        _ => CV_AMD64_RSP,
    }
}
