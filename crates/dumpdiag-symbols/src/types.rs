//! A module's PDB type records as a [`TypeSource`]: LF_STRUCTURE / LF_CLASS / LF_UNION /
//! LF_ENUM with their field lists (members with offsets, bitfields, base classes flattened in,
//! the vtable pointer), pointers, modifiers, arrays and procedures; forward references resolved
//! by (unique) name. Also the typed global and static data symbols, for `dt app!g_config` and
//! `?? g_config`.
//!
//! The TPI stream is read once, when a command first asks for a type of the module, and kept
//! indexed. A PDB is untrusted input: every walk over its records (field-list continuations,
//! base classes, pointer chains) is bounded, and indices the stream does not hold are no type.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use dumpdiag_os::types::{
    Bits, Def, Enum, Field, Prim, Record, RecordKind, Shape, Ty, TypeSource, MAX_TYPE_DEPTH,
};
use pdb_addr2line::pdb::{self, FallibleIterator, PrimitiveKind, TypeData, TypeIndex};

use crate::guard::contained;

/// Most members gathered for one record (with its base classes), most field-list records
/// followed, and most levels of base classes flattened.
const MAX_FIELDS: usize = 4096;
const MAX_FIELD_LISTS: usize = 256;
const MAX_BASE_DEPTH: u32 = 8;

/// One record's flattening of its field lists and base classes: the field lists it may still
/// parse (for the record and all its bases together), and the field lists of the classes on
/// the way down to the one being walked.
struct FieldWalk {
    lists_left: usize,
    path: Vec<TypeIndex>,
}
/// Most data symbols kept.
const MAX_GLOBALS: usize = 1 << 20;

type Finder<'a> = pdb::TypeFinder<'a>;

self_cell::self_cell!(
    struct TypeCell {
        owner: pdb::TypeInformation<'static>,
        #[covariant]
        dependent: Finder,
    }
);

/// A global or static variable: where it is (relative to the module) and its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypedGlobal {
    pub rva: u32,
    pub type_index: u32,
}

pub struct PdbTypes {
    cell: TypeCell,
    /// Complete definitions by name (and by unique name), the first one of each.
    by_name: HashMap<String, u32>,
    /// The same, keyed by the lowercased name (WinDbg finds `_peb` as `_PEB`).
    by_lower: HashMap<String, u32>,
    /// Every complete record and enum: (name, index), in stream order.
    names: Vec<(String, u32)>,
    /// The first index the stream holds: indices from 0x1000 below it are no type.
    first_index: u32,
    ptr: u64,
    globals: HashMap<String, TypedGlobal>,
}

impl PdbTypes {
    pub fn open(path: &Path) -> Result<PdbTypes, String> {
        let file = File::open(path).map_err(|e| e.to_string())?;
        let mut pdb = pdb::PDB::open(file).map_err(|e| e.to_string())?;
        let ptr = match pdb.debug_information().and_then(|d| d.machine_type()) {
            Ok(pdb::MachineType::X86) | Ok(pdb::MachineType::Arm) => 4,
            _ => 8,
        };
        let globals = read_typed_globals(&mut pdb);
        let tpi = pdb.type_information().map_err(|e| e.to_string())?;
        let mut by_name = HashMap::new();
        let mut names = Vec::new();
        let mut first_index = None;
        let cell = TypeCell::new(tpi, |tpi| {
            let mut finder = tpi.finder();
            let mut it = tpi.iter();
            // A record that does not parse ends the walk: what came before stays usable.
            while let Some(Ok(Some(t))) = contained(|| it.next()) {
                finder.update(&it);
                let index = t.index().0;
                first_index.get_or_insert(index);
                let named = contained(|| {
                    let (name, unique, props) = match t.parse() {
                        Ok(TypeData::Class(c)) => (c.name, c.unique_name, c.properties),
                        Ok(TypeData::Union(u)) => (u.name, u.unique_name, u.properties),
                        Ok(TypeData::Enumeration(e)) => (e.name, e.unique_name, e.properties),
                        _ => return None,
                    };
                    (!props.forward_reference()).then(|| {
                        (
                            name.to_string().into_owned(),
                            unique.map(|u| u.to_string().into_owned()),
                        )
                    })
                });
                let Some(Some((name, unique))) = named else {
                    continue;
                };
                if let Some(u) = unique {
                    by_name.entry(u).or_insert(index);
                }
                if !by_name.contains_key(&name) {
                    by_name.insert(name.clone(), index);
                    names.push((name, index));
                }
            }
            finder
        });
        let by_lower = names
            .iter()
            .rev()
            .map(|(n, i)| (n.to_lowercase(), *i))
            .collect();
        Ok(PdbTypes {
            cell,
            by_name,
            by_lower,
            names,
            first_index: first_index.unwrap_or(u32::MAX),
            ptr,
            globals,
        })
    }

    /// The global or static variable called `name` (exact, then ignoring case).
    pub fn global(&self, name: &str) -> Option<TypedGlobal> {
        self.globals.get(name).copied().or_else(|| {
            self.globals
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, g)| *g)
        })
    }

    /// Every typed global whose name `matches`.
    pub fn globals_matching(&self, matches: &dyn Fn(&str) -> bool) -> Vec<(String, TypedGlobal)> {
        let mut v: Vec<(String, TypedGlobal)> = self
            .globals
            .iter()
            .filter(|(n, _)| matches(n))
            .map(|(n, g)| (n.clone(), *g))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The type of a type index (a variable's, a global's) in this model.
    pub fn ty(&self, index: u32) -> Ty {
        self.convert(TypeIndex(index), 0)
    }

    fn with_data<R>(&self, ti: TypeIndex, f: impl FnOnce(TypeData<'_>) -> R) -> Option<R> {
        // pdb2 takes every index below the stream's first as a primitive and asserts that it
        // is one (below 0x1000): a hostile header could make that assertion fail.
        if ti.0 >= 0x1000 && ti.0 < self.first_index {
            return None;
        }
        self.cell.with_dependent(|_, finder| {
            contained(|| {
                let item = finder.find(ti).ok()?;
                item.parse().ok().map(f)
            })
            .flatten()
        })
    }

    /// The complete definition of a forward-referenced record, by unique name then name.
    fn complete(&self, ti: TypeIndex) -> TypeIndex {
        let lookup = self.with_data(ti, |d| {
            let (name, unique, props) = match d {
                TypeData::Class(c) => (c.name, c.unique_name, c.properties),
                TypeData::Union(u) => (u.name, u.unique_name, u.properties),
                TypeData::Enumeration(e) => (e.name, e.unique_name, e.properties),
                _ => return None,
            };
            props.forward_reference().then(|| {
                (
                    unique.map(|u| u.to_string().into_owned()),
                    name.to_string().into_owned(),
                )
            })
        });
        match lookup.flatten() {
            Some((unique, name)) => unique
                .and_then(|u| self.by_name.get(&u))
                .or_else(|| self.by_name.get(&name))
                .map_or(ti, |&i| TypeIndex(i)),
            None => ti,
        }
    }

    fn convert(&self, ti: TypeIndex, depth: u32) -> Ty {
        if depth > MAX_TYPE_DEPTH {
            return Ty::Unknown;
        }
        enum Step {
            Done(Ty),
            Pointer(TypeIndex, u8, bool),
            Through(TypeIndex),
            Array(TypeIndex, Vec<u32>),
            Named,
        }
        let step = self.with_data(ti, |d| match d {
            TypeData::Pointer(p) => {
                // (A pointer kind pdb2 does not know panics inside; `contained` catches it.)
                let size = match p.attributes.size() {
                    n @ (4 | 8) => n,
                    _ => self.ptr as u8,
                };
                Step::Pointer(p.underlying_type, size, p.attributes.is_reference())
            }
            TypeData::Modifier(m) => Step::Through(m.underlying_type),
            TypeData::Alias(a) => Step::Through(a.underlying_type),
            TypeData::Bitfield(b) => Step::Through(b.underlying_type),
            TypeData::Array(a) => Step::Array(a.element_type, a.dimensions),
            TypeData::Class(_) | TypeData::Union(_) | TypeData::Enumeration(_) => Step::Named,
            TypeData::Procedure(_) | TypeData::MemberFunction(_) => Step::Done(Ty::Function),
            TypeData::Primitive(p) => Step::Done(primitive_type(p.kind, p.indirection)),
            _ => Step::Done(Ty::Unknown),
        });
        match step {
            None => Ty::Unknown,
            Some(Step::Done(t)) => t,
            Some(Step::Pointer(to, size, reference)) => Ty::Ptr {
                to: Box::new(self.convert(to, depth + 1)),
                size,
                reference,
            },
            Some(Step::Through(to)) => self.convert(to, depth + 1),
            Some(Step::Named) => Ty::Named(self.complete(ti).0),
            Some(Step::Array(element, dimensions)) => {
                let mut t = self.convert(element, depth + 1);
                let mut inner = self.size_of(&t);
                // Dimensions are byte sizes, innermost first.
                for d in dimensions.into_iter().take(8) {
                    let count = (d as u64).checked_div(inner).unwrap_or(0);
                    t = Ty::array(t, count);
                    inner = d as u64;
                }
                t
            }
        }
    }

    /// The members of field list `list` (and its continuations), base classes flattened in at
    /// `base` plus their offset. `walk` bounds the whole flattening: base classes add no
    /// members of their own and may repeat, so a hostile PDB's classes of n bases each would
    /// otherwise be walked n^depth times; a base whose field list is already on the way down
    /// (a class deriving from itself) is skipped.
    fn fields(&self, list: TypeIndex, base: u64, walk: &mut FieldWalk, out: &mut Vec<Field>) {
        let mut next = Some(list);
        walk.path.push(list);
        self.field_list(&mut next, base, walk, out);
        walk.path.pop();
    }

    fn field_list(
        &self,
        next: &mut Option<TypeIndex>,
        base: u64,
        walk: &mut FieldWalk,
        out: &mut Vec<Field>,
    ) {
        while let Some(fl) = next.take() {
            if walk.lists_left == 0 || out.len() >= MAX_FIELDS {
                return;
            }
            walk.lists_left -= 1;
            enum Item {
                Member(String, u64, TypeIndex),
                Base(TypeIndex, u64),
                VTable,
            }
            let parsed = self.with_data(fl, |d| match d {
                TypeData::FieldList(f) => {
                    let items: Vec<Item> = f
                        .fields
                        .into_iter()
                        .filter_map(|field| match field {
                            TypeData::Member(m) => Some(Item::Member(
                                m.name.to_string().into_owned(),
                                m.offset,
                                m.field_type,
                            )),
                            TypeData::BaseClass(b) => {
                                Some(Item::Base(b.base_class, b.offset as u64))
                            }
                            TypeData::VirtualFunctionTablePointer(_) => Some(Item::VTable),
                            _ => None,
                        })
                        .collect();
                    Some((items, f.continuation))
                }
                _ => None,
            });
            let Some(Some((items, continuation))) = parsed else {
                return;
            };
            for item in items {
                if out.len() >= MAX_FIELDS {
                    return;
                }
                match item {
                    Item::Member(name, offset, ft) => {
                        let bits = self
                            .with_data(ft, |d| match d {
                                TypeData::Bitfield(b) => Some(Bits {
                                    position: b.position,
                                    length: b.length,
                                }),
                                _ => None,
                            })
                            .flatten();
                        out.push(Field {
                            name,
                            offset: base.saturating_add(offset),
                            ty: self.convert(ft, 0),
                            bits,
                        });
                    }
                    Item::Base(class, offset) if walk.path.len() <= MAX_BASE_DEPTH as usize => {
                        let class = self.complete(class);
                        let list = self
                            .with_data(class, |d| match d {
                                TypeData::Class(c) => c.fields,
                                _ => None,
                            })
                            .flatten();
                        if let Some(list) = list.filter(|l| !walk.path.contains(l)) {
                            self.fields(list, base.saturating_add(offset), walk, out);
                        }
                    }
                    Item::Base(..) => {}
                    Item::VTable => out.push(Field {
                        name: "__VFN_table".into(),
                        offset: base,
                        ty: Ty::ptr(Ty::Function, self.ptr),
                        bits: None,
                    }),
                }
            }
            *next = continuation;
        }
    }

    fn enum_values(&self, list: TypeIndex) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        let mut next = Some(list);
        let mut hops = 0;
        while let Some(fl) = next.take() {
            hops += 1;
            if hops > MAX_FIELD_LISTS || out.len() >= MAX_FIELDS {
                break;
            }
            let parsed = self.with_data(fl, |d| match d {
                TypeData::FieldList(f) => {
                    let values: Vec<(String, i64)> = f
                        .fields
                        .into_iter()
                        .filter_map(|field| match field {
                            TypeData::Enumerate(e) => {
                                Some((e.name.to_string().into_owned(), variant(e.value)))
                            }
                            _ => None,
                        })
                        .collect();
                    Some((values, f.continuation))
                }
                _ => None,
            });
            let Some(Some((values, continuation))) = parsed else {
                break;
            };
            out.extend(values);
            next = continuation;
        }
        out
    }
}

impl TypeSource for PdbTypes {
    fn def(&self, index: u32) -> Option<Def> {
        let ti = self.complete(TypeIndex(index));
        enum Shape {
            Record(RecordKind, String, u64, Option<TypeIndex>, bool),
            Enum(String, TypeIndex, TypeIndex, bool),
        }
        let shape = self.with_data(ti, |d| match d {
            TypeData::Class(c) => Some(Shape::Record(
                match c.kind {
                    pdb::ClassKind::Struct => RecordKind::Struct,
                    _ => RecordKind::Class,
                },
                c.name.to_string().into_owned(),
                c.size,
                c.fields,
                c.properties.forward_reference(),
            )),
            TypeData::Union(u) => Some(Shape::Record(
                RecordKind::Union,
                u.name.to_string().into_owned(),
                u.size,
                Some(u.fields),
                u.properties.forward_reference(),
            )),
            TypeData::Enumeration(e) => Some(Shape::Enum(
                e.name.to_string().into_owned(),
                e.underlying_type,
                e.fields,
                e.properties.forward_reference(),
            )),
            _ => None,
        })??;
        Some(match shape {
            Shape::Record(_, name, _, _, true) | Shape::Enum(name, _, _, true) => Def::Opaque(name),
            Shape::Record(kind, name, size, list, false) => {
                let mut fields = Vec::new();
                if let Some(list) = list {
                    let mut walk = FieldWalk {
                        lists_left: MAX_FIELD_LISTS,
                        path: Vec::new(),
                    };
                    self.fields(list, 0, &mut walk, &mut fields);
                }
                Def::Record(Record {
                    kind,
                    name,
                    size,
                    fields,
                })
            }
            Shape::Enum(name, underlying, list, false) => Def::Enum(Enum {
                name,
                base: match self.convert(underlying, 0) {
                    Ty::Prim(p) => p,
                    _ => Prim::Int,
                },
                values: self.enum_values(list),
            }),
        })
    }

    fn shape(&self, index: u32) -> Option<Shape> {
        let ti = self.complete(TypeIndex(index));
        enum Head {
            Record(RecordKind, String, u64, bool),
            Enum(String, TypeIndex, bool),
        }
        let head = self.with_data(ti, |d| match d {
            TypeData::Class(c) => Some(Head::Record(
                match c.kind {
                    pdb::ClassKind::Struct => RecordKind::Struct,
                    _ => RecordKind::Class,
                },
                c.name.to_string().into_owned(),
                c.size,
                c.properties.forward_reference(),
            )),
            TypeData::Union(u) => Some(Head::Record(
                RecordKind::Union,
                u.name.to_string().into_owned(),
                u.size,
                u.properties.forward_reference(),
            )),
            TypeData::Enumeration(e) => Some(Head::Enum(
                e.name.to_string().into_owned(),
                e.underlying_type,
                e.properties.forward_reference(),
            )),
            _ => None,
        })??;
        Some(match head {
            Head::Record(_, name, _, true) | Head::Enum(name, _, true) => Shape::Opaque(name),
            Head::Record(kind, name, size, false) => Shape::Record { kind, name, size },
            Head::Enum(name, underlying, false) => Shape::Enum {
                name,
                base: match self.convert(underlying, 0) {
                    Ty::Prim(p) => p,
                    _ => Prim::Int,
                },
            },
        })
    }

    fn find(&self, name: &str) -> Option<u32> {
        self.by_name
            .get(name)
            .or_else(|| self.by_lower.get(&name.to_lowercase()))
            .copied()
    }

    fn names(&self) -> Vec<(String, u32)> {
        self.names.clone()
    }

    fn pointer_size(&self) -> u64 {
        self.ptr
    }
}

fn variant(v: pdb::Variant) -> i64 {
    use pdb::Variant::*;
    match v {
        U8(x) => x as i64,
        U16(x) => x as i64,
        U32(x) => x as i64,
        U64(x) => x as i64,
        I8(x) => x as i64,
        I16(x) => x as i64,
        I32(x) => x as i64,
        I64(x) => x,
    }
}

fn primitive_type(kind: PrimitiveKind, indirection: Option<pdb::Indirection>) -> Ty {
    use PrimitiveKind::*;
    let p = match kind {
        NoType | Void => Prim::Void,
        Char | RChar => Prim::Char,
        I8 => Prim::SChar,
        UChar | U8 => Prim::UChar,
        Char8 => Prim::Char8,
        WChar => Prim::WChar,
        RChar16 => Prim::Char16,
        RChar32 => Prim::Char32,
        Short | I16 => Prim::Short,
        UShort | U16 => Prim::UShort,
        Long => Prim::Long,
        ULong => Prim::ULong,
        I32 => Prim::Int,
        U32 => Prim::UInt,
        Quad | I64 => Prim::Int64,
        UQuad | U64 => Prim::UInt64,
        Octa | I128 => Prim::Int128,
        UOcta | U128 => Prim::UInt128,
        F32 | F32PP => Prim::Float,
        F64 => Prim::Double,
        F80 => Prim::LongDouble,
        Bool8 | Bool16 | Bool32 | Bool64 => Prim::Bool,
        HRESULT => Prim::HResult,
        _ => return Ty::Unknown,
    };
    use pdb::Indirection::*;
    match indirection {
        None => Ty::Prim(p),
        Some(Near64) => Ty::ptr(Ty::Prim(p), 8),
        Some(Near128) => Ty::ptr(Ty::Prim(p), 16),
        Some(Near16) => Ty::ptr(Ty::Prim(p), 2),
        Some(_) => Ty::ptr(Ty::Prim(p), 4),
    }
}

/// Data symbols with their types: S_GDATA32 / S_LDATA32 of the global stream, then the
/// module streams' (file statics, function statics).
fn read_typed_globals(pdb: &mut pdb::PDB<'static, File>) -> HashMap<String, TypedGlobal> {
    let mut out = HashMap::new();
    crate::pdb::for_each_data_symbol(pdb, |d, rva| {
        if out.len() < MAX_GLOBALS {
            out.entry(d.name.to_string().into_owned())
                .or_insert(TypedGlobal {
                    rva,
                    type_index: d.type_index.0,
                });
        }
    });
    out
}
