//! A small model of C/C++ types, what `dt` and `??` walk: primitives, pointers, arrays, and
//! named records (struct, class, union) and enums whose members carry offsets and bitfields.
//! Two sources fill it: a module's PDB type records (`dumpdiag-symbols`), and the layouts this
//! crate knows of Windows' own structures when no ntdll PDB is at hand ([`crate::builtin_types`]).
//!
//! A named type is a [`Ty::Named`] index into its source, so a structure that points to itself
//! (`_LIST_ENTRY`) is no infinite value: it is resolved one level at a time, on demand. Sources
//! are untrusted (a hostile PDB may describe cycles, huge arrays or absurd nesting): everything
//! that follows references here is bounded by [`MAX_TYPE_DEPTH`].

/// Most type references followed while resolving one type (pointer to pointer to …, base
/// classes of base classes), and most levels `dt -r` descends.
pub const MAX_TYPE_DEPTH: u32 = 32;

/// The scalar types of C and C++, as the PDB and WinDbg distinguish them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prim {
    Void,
    Bool,
    Char,
    SChar,
    UChar,
    WChar,
    Char8,
    Char16,
    Char32,
    Short,
    UShort,
    Int,
    UInt,
    Long,
    ULong,
    Int64,
    UInt64,
    Int128,
    UInt128,
    Float,
    Double,
    LongDouble,
    HResult,
}

impl Prim {
    pub fn size(self) -> u64 {
        use Prim::*;
        match self {
            Void => 0,
            Bool | Char | SChar | UChar | Char8 => 1,
            WChar | Char16 | Short | UShort => 2,
            Int | UInt | Long | ULong | Char32 | Float | HResult => 4,
            Int64 | UInt64 | Double => 8,
            LongDouble => 10,
            Int128 | UInt128 => 16,
        }
    }

    /// The name `dt` prints (`Int4B`, `Uint2B`, `UChar`, `Wchar`, `Void`).
    pub fn windbg_name(self) -> &'static str {
        use Prim::*;
        match self {
            Void => "Void",
            Bool => "Bool",
            Char | SChar | Char8 => "Char",
            UChar => "UChar",
            WChar | Char16 => "Wchar",
            Char32 => "Uint4B",
            Short => "Int2B",
            UShort => "Uint2B",
            Int | Long | HResult => "Int4B",
            UInt | ULong => "Uint4B",
            Int64 => "Int8B",
            UInt64 => "Uint8B",
            Int128 => "Int16B",
            UInt128 => "Uint16B",
            Float => "Float",
            Double | LongDouble => "Double",
        }
    }

    /// The C++ name `??` prints (`int`, `unsigned short`, `unsigned int64`).
    pub fn c_name(self) -> &'static str {
        use Prim::*;
        match self {
            Void => "void",
            Bool => "bool",
            Char => "char",
            SChar => "signed char",
            UChar => "unsigned char",
            WChar => "wchar_t",
            Char8 => "char8_t",
            Char16 => "char16_t",
            Char32 => "char32_t",
            Short => "short",
            UShort => "unsigned short",
            Int => "int",
            UInt => "unsigned int",
            Long => "long",
            ULong => "unsigned long",
            Int64 => "int64",
            UInt64 => "unsigned int64",
            Int128 => "int128",
            UInt128 => "unsigned int128",
            Float => "float",
            Double => "double",
            LongDouble => "long double",
            HResult => "HRESULT",
        }
    }

    pub fn is_signed(self) -> bool {
        use Prim::*;
        matches!(
            self,
            Char | SChar | Short | Int | Long | Int64 | Int128 | HResult
        )
    }

    pub fn is_float(self) -> bool {
        matches!(self, Prim::Float | Prim::Double | Prim::LongDouble)
    }

    pub fn is_char(self) -> bool {
        use Prim::*;
        matches!(self, Char | SChar | UChar | Char8)
    }

    pub fn is_wide_char(self) -> bool {
        matches!(self, Prim::WChar | Prim::Char16)
    }
}

/// A type as a member, a variable or an expression has it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Ty {
    Prim(Prim),
    /// A pointer (or C++ reference) of `size` bytes.
    Ptr {
        to: Box<Ty>,
        size: u8,
        reference: bool,
    },
    Array {
        of: Box<Ty>,
        count: u64,
    },
    /// A record or enum of the source, by its index there (the full definition's, forward
    /// references already resolved).
    Named(u32),
    /// Code: what a function pointer points to.
    Function,
    /// A type the source describes in a way this model does not follow.
    Unknown,
}

impl Ty {
    pub fn ptr(to: Ty, size: u64) -> Ty {
        Ty::Ptr {
            to: Box::new(to),
            size: size as u8,
            reference: false,
        }
    }

    pub fn array(of: Ty, count: u64) -> Ty {
        Ty::Array {
            of: Box::new(of),
            count,
        }
    }

    /// What a pointer or array leads to.
    pub fn target(&self) -> Option<&Ty> {
        match self {
            Ty::Ptr { to, .. } => Some(to),
            Ty::Array { of, .. } => Some(of),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    Struct,
    Class,
    Union,
}

impl RecordKind {
    pub fn keyword(self) -> &'static str {
        match self {
            RecordKind::Struct => "struct",
            RecordKind::Class => "class",
            RecordKind::Union => "union",
        }
    }
}

/// A bitfield's place in its storage unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bits {
    pub position: u8,
    pub length: u8,
}

/// One member of a record, at its offset from the record's start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub offset: u64,
    pub ty: Ty,
    pub bits: Option<Bits>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub kind: RecordKind,
    pub name: String,
    pub size: u64,
    /// Members in declaration order; base classes' members come first, at their offsets, and
    /// the members of anonymous unions and structures appear in place (as WinDbg lists them).
    pub fields: Vec<Field>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enum {
    pub name: String,
    pub base: Prim,
    pub values: Vec<(String, i64)>,
}

impl Enum {
    /// The enumerator named for `value`, if one is.
    pub fn name_of(&self, value: i64) -> Option<&str> {
        self.values
            .iter()
            .find(|(_, v)| *v == value)
            .map(|(n, _)| n.as_str())
    }
}

/// What a [`Ty::Named`] index stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Def {
    Record(Record),
    Enum(Enum),
    /// A name with no definition in the source (a forward reference nothing completes).
    Opaque(String),
}

impl Def {
    pub fn name(&self) -> &str {
        match self {
            Def::Record(r) => &r.name,
            Def::Enum(e) => &e.name,
            Def::Opaque(n) => n,
        }
    }
}

/// What a named type is, without its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    Record {
        kind: RecordKind,
        name: String,
        size: u64,
    },
    Enum {
        name: String,
        base: Prim,
    },
    Opaque(String),
}

impl Shape {
    pub fn name(&self) -> &str {
        match self {
            Shape::Record { name, .. } | Shape::Enum { name, .. } | Shape::Opaque(name) => name,
        }
    }

    pub fn size(&self) -> u64 {
        match self {
            Shape::Record { size, .. } => *size,
            Shape::Enum { base, .. } => base.size(),
            Shape::Opaque(_) => 0,
        }
    }
}

impl From<&Def> for Shape {
    fn from(d: &Def) -> Shape {
        match d {
            Def::Record(r) => Shape::Record {
                kind: r.kind,
                name: r.name.clone(),
                size: r.size,
            },
            Def::Enum(e) => Shape::Enum {
                name: e.name.clone(),
                base: e.base,
            },
            Def::Opaque(n) => Shape::Opaque(n.clone()),
        }
    }
}

/// Where named types come from: one module's PDB, or the built-in layouts.
pub trait TypeSource {
    /// The definition behind a [`Ty::Named`] index.
    fn def(&self, index: u32) -> Option<Def>;
    /// What [`TypeSource::def`] would say, without the members: a type's name and size are
    /// asked for far more often than its members, and a PDB answers them without reading the
    /// field list.
    fn shape(&self, index: u32) -> Option<Shape> {
        self.def(index).as_ref().map(Shape::from)
    }
    /// The index of the type called `name`: the exact spelling first, then ignoring case.
    fn find(&self, name: &str) -> Option<u32>;
    /// Every named type the source defines, in a stable order: (name, index).
    fn names(&self) -> Vec<(String, u32)>;
    /// Pointer size of the code the source describes.
    fn pointer_size(&self) -> u64;

    /// Size in bytes of a value of type `ty` (0 for void, functions and unknown types).
    fn size_of(&self, ty: &Ty) -> u64 {
        size_of(self, ty, 0)
    }
}

fn size_of<S: TypeSource + ?Sized>(s: &S, ty: &Ty, depth: u32) -> u64 {
    if depth > MAX_TYPE_DEPTH {
        return 0;
    }
    match ty {
        Ty::Prim(p) => p.size(),
        Ty::Ptr { size, .. } => *size as u64,
        Ty::Array { of, count } => size_of(s, of, depth + 1).saturating_mul(*count),
        Ty::Named(i) => s.shape(*i).map_or(0, |x| x.size()),
        Ty::Function | Ty::Unknown => 0,
    }
}

/// WinDbg's wildcard match (`*` any run, `?` one character), ignoring case.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let t: Vec<char> = text.to_lowercase().chars().collect();
    // Iterative match with backtracking to the last `*`: linear in practice, never recursive.
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_windbg() {
        assert!(wildcard_match("*Foo*", "_MyFooBar"));
        assert!(wildcard_match("_peb", "_PEB"));
        assert!(wildcard_match("_PEB*", "_PEB_LDR_DATA"));
        assert!(!wildcard_match("_PEB", "_PEB_LDR_DATA"));
        assert!(wildcard_match("_?EB", "_TEB"));
        assert!(wildcard_match("*", ""));
        assert!(!wildcard_match("a*b", "acd"));
    }

    #[test]
    fn primitive_names_are_windbgs_and_cs() {
        assert_eq!(Prim::ULong.windbg_name(), "Uint4B");
        assert_eq!(Prim::Int64.windbg_name(), "Int8B");
        assert_eq!(Prim::UInt.c_name(), "unsigned int");
        assert_eq!(Prim::WChar.size(), 2);
    }
}
