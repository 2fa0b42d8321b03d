//! Windows' own user-mode structures as `dt` shows them, for when ntdll's PDB is not at hand (a
//! minidump analysed offline: WinDbg would answer "No Data Types"). Each structure is the one
//! WinDbg prints from the public ntdll PDB of Windows 10 (`dt ntdll!_PEB` and so on, builds
//! 1809 to 22H2), for x64 and for x86 (a WOW64 process's 32-bit view uses the x86 ones).
//!
//! One statement of the layouts: members are laid out as the C compiler lays them out (natural
//! alignment), and every offset the rest of this crate reads through [`Layout`] is placed from
//! `Layout` itself ([`Rec::at`]), so the two cannot drift; the tests check that the natural
//! layout arrives at each of those offsets on its own. Where a structure's tail changes from
//! build to build (the TEB and PEB grow), only the stable head is described, up to the last
//! member named here; the record's size is still Windows 10's.

use std::collections::HashMap;

use crate::layout::Layout;
use crate::types::{Bits, Def, Enum, Field, Prim, Record, RecordKind, Ty, TypeSource};

/// The built-in structures of one bitness.
#[derive(Debug, Clone)]
pub struct BuiltinTypes {
    defs: Vec<Def>,
    align: Vec<u64>,
    by_name: HashMap<String, u32>,
    ptr: u64,
    /// Members placed at an offset other than the one natural layout gave them: (record,
    /// member, natural, placed). Empty when the tables are consistent; the tests check it.
    pub misplaced: Vec<(String, String, u64, u64)>,
}

/// The module whose types these are.
pub const MODULE: &str = "ntdll";

/// One record being described: members in order, each at the next naturally aligned offset
/// unless placed.
struct Rec {
    name: &'static str,
    kind: RecordKind,
    fields: Vec<Field>,
    /// Where the next member goes.
    next: u64,
    /// An offset the next member must have (from [`Layout`]).
    placed: Option<u64>,
    align: u64,
}

impl Rec {
    fn new(name: &'static str) -> Rec {
        Rec {
            name,
            kind: RecordKind::Struct,
            fields: Vec::new(),
            next: 0,
            placed: None,
            align: 1,
        }
    }

    fn union(name: &'static str) -> Rec {
        Rec {
            kind: RecordKind::Union,
            ..Rec::new(name)
        }
    }

    /// The next member is at `offset` (a fact of [`Layout`], or the start of a described
    /// region after an undescribed one).
    fn at(mut self, offset: u64) -> Rec {
        self.placed = Some(offset);
        self
    }
}

struct Builder {
    defs: Vec<Def>,
    align: Vec<u64>,
    by_name: HashMap<String, u32>,
    ptr: u64,
    misplaced: Vec<(String, String, u64, u64)>,
}

impl Builder {
    /// The index of `name`, reserved (as an opaque name) when not yet defined.
    fn named(&mut self, name: &str) -> Ty {
        if let Some(&i) = self.by_name.get(name) {
            return Ty::Named(i);
        }
        let i = self.defs.len() as u32;
        self.defs.push(Def::Opaque(name.to_string()));
        self.align.push(1);
        self.by_name.insert(name.to_string(), i);
        Ty::Named(i)
    }

    fn align_of(&self, ty: &Ty) -> u64 {
        match ty {
            Ty::Prim(p) => p.size().clamp(1, 8),
            Ty::Ptr { size, .. } => *size as u64,
            Ty::Array { of, .. } => self.align_of(of),
            Ty::Named(i) => match self.defs.get(*i as usize) {
                Some(Def::Enum(e)) => e.base.size(),
                _ => self.align.get(*i as usize).copied().unwrap_or(1),
            },
            _ => 1,
        }
    }

    fn size_of(&self, ty: &Ty) -> u64 {
        self.source_view().size_of(ty)
    }

    fn source_view(&self) -> View<'_> {
        View(self)
    }

    /// Add member `name` of type `ty` at the next offset (aligned), or where [`Rec::at`] put it.
    fn f(&self, mut r: Rec, name: &str, ty: Ty) -> Rec {
        let a = self.align_of(&ty);
        let natural = r.next.div_ceil(a) * a;
        let offset = match r.placed.take() {
            Some(p) => p,
            None => natural,
        };
        r.align = r.align.max(a);
        if r.kind == RecordKind::Union {
            r.next = r.next.max(self.size_of(&ty));
            r.fields.push(Field {
                name: name.into(),
                offset: 0,
                ty,
                bits: None,
            });
            return r;
        }
        r.next = offset + self.size_of(&ty);
        r.fields.push(Field {
            name: name.into(),
            offset,
            ty,
            bits: None,
        });
        r
    }

    /// Add member `name` at a fact's offset that natural layout must also arrive at.
    fn fixed(&mut self, r: Rec, offset: u64, name: &str, ty: Ty) -> Rec {
        let a = self.align_of(&ty);
        let natural = r.next.div_ceil(a) * a;
        if natural != offset {
            self.misplaced
                .push((r.name.to_string(), name.to_string(), natural, offset));
        }
        self.f(r.at(offset), name, ty)
    }

    /// Another view of the storage of the member added last (a union alternative).
    fn alt(&self, mut r: Rec, name: &str, ty: Ty) -> Rec {
        let offset = r.fields.last().map_or(0, |f| f.offset);
        let end = offset + self.size_of(&ty);
        r.next = r.next.max(end);
        r.fields.push(Field {
            name: name.into(),
            offset,
            ty,
            bits: None,
        });
        r
    }

    /// Bitfields of the storage unit added last: (name, position, length) each.
    fn bits(&self, mut r: Rec, parts: &[(&str, u8, u8)]) -> Rec {
        let Some(last) = r.fields.last().cloned() else {
            return r;
        };
        for &(name, position, length) in parts {
            r.fields.push(Field {
                name: name.into(),
                offset: last.offset,
                ty: last.ty.clone(),
                bits: Some(Bits { position, length }),
            });
        }
        r
    }

    /// Finish a record: its size is `size` when given (the whole Windows structure), else the
    /// end of its last member rounded to its alignment.
    fn define(&mut self, r: Rec, size: Option<u64>) -> Ty {
        let size = size.unwrap_or_else(|| r.next.div_ceil(r.align) * r.align);
        let ty = self.named(r.name);
        let Ty::Named(i) = ty else { unreachable!() };
        self.defs[i as usize] = Def::Record(Record {
            kind: r.kind,
            name: r.name.to_string(),
            size,
            fields: r.fields,
        });
        self.align[i as usize] = r.align;
        ty
    }

    fn define_enum(&mut self, name: &str, values: &[(&str, i64)]) -> Ty {
        let ty = self.named(name);
        let Ty::Named(i) = ty else { unreachable!() };
        self.defs[i as usize] = Def::Enum(Enum {
            name: name.to_string(),
            base: Prim::Int,
            values: values.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
        });
        self.align[i as usize] = 4;
        ty
    }

    fn p(&mut self, to: &str) -> Ty {
        let to = self.named(to);
        Ty::ptr(to, self.ptr)
    }

    fn pv(&self) -> Ty {
        Ty::ptr(Ty::Prim(Prim::Void), self.ptr)
    }

    /// ULONG_PTR / SIZE_T: Uint8B or Uint4B.
    fn up(&self) -> Ty {
        if self.ptr == 8 {
            u64_()
        } else {
            u32_()
        }
    }

    fn x64(&self) -> bool {
        self.ptr == 8
    }
}

/// The builder seen as a type source, for sizes while building.
struct View<'a>(&'a Builder);

impl TypeSource for View<'_> {
    fn def(&self, index: u32) -> Option<Def> {
        self.0.defs.get(index as usize).cloned()
    }
    fn find(&self, name: &str) -> Option<u32> {
        self.0.by_name.get(name).copied()
    }
    fn names(&self) -> Vec<(String, u32)> {
        Vec::new()
    }
    fn pointer_size(&self) -> u64 {
        self.0.ptr
    }
}

fn u8_() -> Ty {
    Ty::Prim(Prim::UChar)
}
fn c8() -> Ty {
    Ty::Prim(Prim::Char)
}
fn u16_() -> Ty {
    Ty::Prim(Prim::UShort)
}
fn u32_() -> Ty {
    Ty::Prim(Prim::ULong)
}
fn i32_() -> Ty {
    Ty::Prim(Prim::Long)
}
fn u64_() -> Ty {
    Ty::Prim(Prim::UInt64)
}
fn i64_() -> Ty {
    Ty::Prim(Prim::Int64)
}
fn wchar() -> Ty {
    Ty::Prim(Prim::WChar)
}
fn arr(of: Ty, count: u64) -> Ty {
    Ty::array(of, count)
}

impl BuiltinTypes {
    /// The structures of the bitness `l` describes.
    pub fn new(l: &Layout) -> BuiltinTypes {
        let mut b = Builder {
            defs: Vec::new(),
            align: Vec::new(),
            by_name: HashMap::new(),
            ptr: l.ptr,
            misplaced: Vec::new(),
        };
        basics(&mut b, l);
        loader(&mut b, l);
        process_parameters(&mut b, l);
        critical_section(&mut b);
        peb(&mut b, l);
        teb(&mut b, l);
        exception(&mut b, l);
        context(&mut b);
        heap(&mut b, l);
        BuiltinTypes {
            defs: b.defs,
            align: b.align,
            by_name: b.by_name,
            ptr: b.ptr,
            misplaced: b.misplaced,
        }
    }

    /// Alignment of a built-in record (for tests and for laying out arrays of them).
    pub fn align_of(&self, index: u32) -> u64 {
        self.align.get(index as usize).copied().unwrap_or(1)
    }
}

impl TypeSource for BuiltinTypes {
    fn def(&self, index: u32) -> Option<Def> {
        self.defs.get(index as usize).cloned()
    }
    fn find(&self, name: &str) -> Option<u32> {
        let defined = |i: &u32| !matches!(self.defs.get(*i as usize), Some(Def::Opaque(_)));
        self.by_name.get(name).copied().filter(defined).or_else(|| {
            self.names()
                .into_iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, i)| i)
        })
    }
    fn names(&self) -> Vec<(String, u32)> {
        self.defs
            .iter()
            .enumerate()
            .filter(|(_, d)| !matches!(d, Def::Opaque(_)))
            .map(|(i, d)| (d.name().to_string(), i as u32))
            .collect()
    }
    fn pointer_size(&self) -> u64 {
        self.ptr
    }
}

/// `_LIST_ENTRY`, `_UNICODE_STRING`, `_STRING`, `_CLIENT_ID`, `_NT_TIB`, `_LARGE_INTEGER`,
/// `_ULARGE_INTEGER`, `_GUID` (winnt.h / ntdef.h; the same in every build).
fn basics(b: &mut Builder, l: &Layout) {
    let list = b.p("_LIST_ENTRY");
    let r = b.f(Rec::new("_LIST_ENTRY"), "Flink", list.clone());
    let r = b.f(r, "Blink", list);
    b.define(r, None);

    let r = b.f(Rec::new("_UNICODE_STRING"), "Length", u16_());
    let r = b.f(r, "MaximumLength", u16_());
    let r = b.fixed(r, l.ptr, "Buffer", Ty::ptr(wchar(), l.ptr));
    let us = b.define(r, None);
    debug_assert_eq!(b.size_of(&us), l.unicode_string);

    let r = b.f(Rec::new("_STRING"), "Length", u16_());
    let r = b.f(r, "MaximumLength", u16_());
    let r = b.f(r, "Buffer", Ty::ptr(c8(), l.ptr));
    b.define(r, None);

    let pv = b.pv();
    let r = b.f(Rec::new("_CLIENT_ID"), "UniqueProcess", pv.clone());
    let r = b.f(r, "UniqueThread", pv.clone());
    b.define(r, None);

    // _NT_TIB: what `!teb` shows first.
    let reg = b.p("_EXCEPTION_REGISTRATION_RECORD");
    let r = b.f(Rec::new("_NT_TIB"), "ExceptionList", reg);
    let r = b.fixed(r, l.teb_stack_base, "StackBase", pv.clone());
    let r = b.fixed(r, l.teb_stack_limit, "StackLimit", pv.clone());
    let r = b.fixed(r, l.teb_sub_system_tib, "SubSystemTib", pv.clone());
    let r = b.fixed(r, l.teb_fiber_data, "FiberData", pv.clone());
    let r = b.alt(r, "Version", u32_());
    let r = b.fixed(r, l.teb_arbitrary, "ArbitraryUserPointer", pv);
    let tib = b.p("_NT_TIB");
    let r = b.fixed(r, l.teb_self, "Self", tib);
    b.define(r, None);

    for name in ["_LARGE_INTEGER", "_ULARGE_INTEGER"] {
        let (lo, hi, quad) = if name == "_LARGE_INTEGER" {
            (u32_(), i32_(), i64_())
        } else {
            (u32_(), u32_(), u64_())
        };
        let r = b.f(Rec::union(name), "LowPart", lo.clone());
        // The anonymous struct's members, then `u` (the named one), then QuadPart, as WinDbg
        // lists them; the struct is flattened here.
        let mut r = r;
        r.fields.push(Field {
            name: "HighPart".into(),
            offset: 4,
            ty: hi,
            bits: None,
        });
        let r = b.f(r, "QuadPart", quad);
        b.define(r, None);
    }

    let r = b.f(Rec::new("_GUID"), "Data1", u32_());
    let r = b.f(r, "Data2", u16_());
    let r = b.f(r, "Data3", u16_());
    let r = b.f(r, "Data4", arr(u8_(), 8));
    b.define(r, None);
}

/// `_PEB_LDR_DATA` and `_LDR_DATA_TABLE_ENTRY` (the loader's module lists that `!peb` walks).
fn loader(b: &mut Builder, l: &Layout) {
    let list = b.named("_LIST_ENTRY");
    let pv = b.pv();
    let r = b.f(Rec::new("_PEB_LDR_DATA"), "Length", u32_());
    let r = b.f(r, "Initialized", u8_());
    let r = b.f(r, "SsHandle", pv.clone());
    let r = b.fixed(
        r,
        l.ldr_in_load_order,
        "InLoadOrderModuleList",
        list.clone(),
    );
    let r = b.fixed(
        r,
        l.ldr_in_memory_order,
        "InMemoryOrderModuleList",
        list.clone(),
    );
    let r = b.fixed(
        r,
        l.ldr_in_init_order,
        "InInitializationOrderModuleList",
        list.clone(),
    );
    let r = b.f(r, "EntryInProgress", pv.clone());
    let r = b.f(r, "ShutdownInProgress", u8_());
    let r = b.f(r, "ShutdownThreadId", pv.clone());
    b.define(r, None);

    let node = b.p("_RTL_BALANCED_NODE");
    let r = b.f(Rec::new("_RTL_BALANCED_NODE"), "Left", node.clone());
    let r = b.f(r, "Right", node);
    let r = b.f(r, "ParentValue", b.up());
    b.define(r, None);
    let balanced = b.named("_RTL_BALANCED_NODE");

    let us = b.named("_UNICODE_STRING");
    let r = b.f(
        Rec::new("_LDR_DATA_TABLE_ENTRY"),
        "InLoadOrderLinks",
        list.clone(),
    );
    let r = b.f(r, "InMemoryOrderLinks", list.clone());
    let r = b.f(r, "InInitializationOrderLinks", list.clone());
    let r = b.fixed(r, l.entry_dll_base, "DllBase", pv.clone());
    let r = b.fixed(r, l.entry_entry_point, "EntryPoint", pv.clone());
    let r = b.fixed(r, l.entry_size_of_image, "SizeOfImage", u32_());
    let r = b.fixed(r, l.entry_full_name, "FullDllName", us.clone());
    let r = b.fixed(r, l.entry_base_name, "BaseDllName", us);
    let r = b.f(r, "FlagGroup", arr(u8_(), 4));
    let r = b.alt(r, "Flags", u32_());
    let r = b.bits(
        r,
        &[
            ("PackagedBinary", 0, 1),
            ("MarkedForRemoval", 1, 1),
            ("ImageDll", 2, 1),
            ("LoadNotificationsSent", 3, 1),
            ("TelemetryEntryProcessed", 4, 1),
            ("ProcessStaticImport", 5, 1),
            ("InLegacyLists", 6, 1),
            ("InIndexes", 7, 1),
            ("ShimDll", 8, 1),
            ("InExceptionTable", 9, 1),
            ("ReservedFlags1", 10, 2),
            ("LoadInProgress", 12, 1),
            ("LoadConfigProcessed", 13, 1),
            ("EntryProcessed", 14, 1),
            ("ProtectDelayLoad", 15, 1),
            ("ReservedFlags3", 16, 2),
            ("DontCallForThreads", 18, 1),
            ("ProcessAttachCalled", 19, 1),
            ("ProcessAttachFailed", 20, 1),
            ("CorDeferredValidate", 21, 1),
            ("CorImage", 22, 1),
            ("DontRelocate", 23, 1),
            ("CorILOnly", 24, 1),
            ("ChpeImage", 25, 1),
            ("ReservedFlags5", 26, 2),
            ("Redirected", 28, 1),
            ("ReservedFlags6", 29, 2),
            ("CompatDatabaseProcessed", 31, 1),
        ],
    );
    let r = b.f(r, "ObsoleteLoadCount", u16_());
    let r = b.f(r, "TlsIndex", u16_());
    let r = b.f(r, "HashLinks", list.clone());
    let r = b.fixed(r, l.entry_time_date_stamp, "TimeDateStamp", u32_());
    let actx = b.p("_ACTIVATION_CONTEXT");
    let r = b.f(r, "EntryPointActivationContext", actx);
    let r = b.f(r, "Lock", pv.clone());
    let ddag = b.p("_LDR_DDAG_NODE");
    let r = b.f(r, "DdagNode", ddag);
    let r = b.f(r, "NodeModuleLink", list);
    let lctx = b.p("_LDRP_LOAD_CONTEXT");
    let r = b.f(r, "LoadContext", lctx);
    let r = b.f(r, "ParentDllBase", pv.clone());
    let r = b.f(r, "SwitchBackContext", pv);
    let r = b.f(r, "BaseAddressIndexNode", balanced.clone());
    let r = b.f(r, "MappingInfoIndexNode", balanced);
    let r = b.f(r, "OriginalBase", b.up());
    let large = b.named("_LARGE_INTEGER");
    let r = b.f(r, "LoadTime", large);
    let r = b.f(r, "BaseNameHashValue", u32_());
    let reason = b.define_enum(
        "_LDR_DLL_LOAD_REASON",
        &[
            ("LoadReasonStaticDependency", 0),
            ("LoadReasonStaticForwarderDependency", 1),
            ("LoadReasonDynamicForwarderDependency", 2),
            ("LoadReasonDelayloadDependency", 3),
            ("LoadReasonDynamicLoad", 4),
            ("LoadReasonAsImageLoad", 5),
            ("LoadReasonAsDataLoad", 6),
            ("LoadReasonEnclavePrimary", 7),
            ("LoadReasonEnclaveDependency", 8),
            ("LoadReasonUnknown", -1),
        ],
    );
    let r = b.f(r, "LoadReason", reason);
    let r = b.f(r, "ImplicitPathOptions", u32_());
    let r = b.f(r, "ReferenceCount", u32_());
    let r = b.f(r, "DependentLoadFlags", u32_());
    let r = b.f(r, "SigningLevel", u8_());
    b.define(r, Some(if b.x64() { 0x120 } else { 0xa8 }));
}

/// `_RTL_USER_PROCESS_PARAMETERS` with `_CURDIR` and `_RTL_DRIVE_LETTER_CURDIR`, described up to
/// LoaderThreads (the members before it are the same from Windows 10 1607 on).
fn process_parameters(b: &mut Builder, l: &Layout) {
    let us = b.named("_UNICODE_STRING");
    let pv = b.pv();
    let r = b.f(Rec::new("_CURDIR"), "DosPath", us.clone());
    let r = b.f(r, "Handle", pv.clone());
    let curdir = b.define(r, None);

    let string = b.named("_STRING");
    let r = b.f(Rec::new("_RTL_DRIVE_LETTER_CURDIR"), "Flags", u16_());
    let r = b.f(r, "Length", u16_());
    let r = b.f(r, "TimeStamp", u32_());
    let r = b.f(r, "DosPath", string);
    let drive = b.define(r, None);

    let r = b.f(
        Rec::new("_RTL_USER_PROCESS_PARAMETERS"),
        "MaximumLength",
        u32_(),
    );
    let r = b.f(r, "Length", u32_());
    let r = b.f(r, "Flags", u32_());
    let r = b.f(r, "DebugFlags", u32_());
    let r = b.f(r, "ConsoleHandle", pv.clone());
    let r = b.f(r, "ConsoleFlags", u32_());
    let r = b.f(r, "StandardInput", pv.clone());
    let r = b.f(r, "StandardOutput", pv.clone());
    let r = b.f(r, "StandardError", pv.clone());
    let r = b.fixed(r, l.params_current_directory, "CurrentDirectory", curdir);
    let r = b.fixed(r, l.params_dll_path, "DllPath", us.clone());
    let r = b.fixed(r, l.params_image_path, "ImagePathName", us.clone());
    let r = b.fixed(r, l.params_command_line, "CommandLine", us.clone());
    let r = b.fixed(r, l.params_environment, "Environment", pv.clone());
    let mut r = r;
    for name in [
        "StartingX",
        "StartingY",
        "CountX",
        "CountY",
        "CountCharsX",
        "CountCharsY",
        "FillAttribute",
        "WindowFlags",
        "ShowWindowFlags",
    ] {
        r = b.f(r, name, u32_());
    }
    let r = b.fixed(r, l.params_window_title, "WindowTitle", us.clone());
    let r = b.fixed(r, l.params_desktop_info, "DesktopInfo", us.clone());
    let r = b.f(r, "ShellInfo", us.clone());
    let r = b.f(r, "RuntimeData", us);
    let r = b.f(r, "CurrentDirectores", arr(drive, 32));
    let r = b.fixed(r, l.params_environment_size, "EnvironmentSize", b.up());
    let r = b.f(r, "EnvironmentVersion", b.up());
    let r = b.f(r, "PackageDependencyData", pv);
    let r = b.f(r, "ProcessGroupId", u32_());
    let r = b.f(r, "LoaderThreads", u32_());
    // Windows 10 1809 to 20H1 append RedirectionDllName, HeapPartitionName and the default
    // thread pool's CPU set and maximum (the 0x440 / 0x2c0 bytes of 20H1); a 1803 process
    // has none of them, so they are not described.
    b.define(r, Some(if b.x64() { 0x440 } else { 0x2c0 }));
}

/// `_RTL_CRITICAL_SECTION` and `_RTL_CRITICAL_SECTION_DEBUG` (winnt.h's RTL_CRITICAL_SECTION:
/// DebugInfo, LockCount, RecursionCount, OwningThread, LockSemaphore, SpinCount).
fn critical_section(b: &mut Builder) {
    let list = b.named("_LIST_ENTRY");
    let cs = b.p("_RTL_CRITICAL_SECTION");
    let r = b.f(Rec::new("_RTL_CRITICAL_SECTION_DEBUG"), "Type", u16_());
    let r = b.f(r, "CreatorBackTraceIndex", u16_());
    let r = b.f(r, "CriticalSection", cs);
    let r = b.f(r, "ProcessLocksList", list);
    let r = b.f(r, "EntryCount", u32_());
    let r = b.f(r, "ContentionCount", u32_());
    let r = b.f(r, "Flags", u32_());
    let r = b.f(r, "CreatorBackTraceIndexHigh", u16_());
    let r = b.f(r, "SpareUSHORT", u16_());
    b.define(r, None);

    let debug = b.p("_RTL_CRITICAL_SECTION_DEBUG");
    let pv = b.pv();
    let r = b.f(Rec::new("_RTL_CRITICAL_SECTION"), "DebugInfo", debug);
    let r = b.f(r, "LockCount", i32_());
    let r = b.f(r, "RecursionCount", i32_());
    let r = b.f(r, "OwningThread", pv.clone());
    let r = b.f(r, "LockSemaphore", pv);
    let r = b.f(r, "SpinCount", b.up());
    b.define(r, None);
}

/// `_PEB`, described up to MinimumStackCommit (0x318 on x64, 0x208 on x86); its size is
/// Windows 10's (0x7c8 / 0x480).
fn peb(b: &mut Builder, l: &Layout) {
    let pv = b.pv();
    let x64 = b.x64();
    let r = b.f(Rec::new("_PEB"), "InheritedAddressSpace", u8_());
    let r = b.f(r, "ReadImageFileExecOptions", u8_());
    let r = b.f(r, "BeingDebugged", u8_());
    let r = b.f(r, "BitField", u8_());
    let r = b.bits(
        r,
        &[
            ("ImageUsesLargePages", 0, 1),
            ("IsProtectedProcess", 1, 1),
            ("IsImageDynamicallyRelocated", 2, 1),
            ("SkipPatchingUser32Forwarders", 3, 1),
            ("IsPackagedProcess", 4, 1),
            ("IsAppContainer", 5, 1),
            ("IsProtectedProcessLight", 6, 1),
            ("IsLongPathAwareProcess", 7, 1),
        ],
    );
    let r = if x64 {
        b.f(r, "Padding0", arr(u8_(), 4))
    } else {
        r
    };
    let r = b.f(r, "Mutant", pv.clone());
    let r = b.fixed(r, l.peb_image_base, "ImageBaseAddress", pv.clone());
    let ldr = b.p("_PEB_LDR_DATA");
    let r = b.fixed(r, l.peb_ldr, "Ldr", ldr);
    let params = b.p("_RTL_USER_PROCESS_PARAMETERS");
    let r = b.fixed(r, l.peb_process_parameters, "ProcessParameters", params);
    let r = b.fixed(r, l.peb_sub_system_data, "SubSystemData", pv.clone());
    let r = b.fixed(r, l.peb_process_heap, "ProcessHeap", pv.clone());
    let cs = b.p("_RTL_CRITICAL_SECTION");
    let r = b.f(r, "FastPebLock", cs.clone());
    let slist = b.p("_SLIST_HEADER");
    let r = b.f(r, "AtlThunkSListPtr", slist.clone());
    let r = b.f(r, "IFEOKey", pv.clone());
    let r = b.f(r, "CrossProcessFlags", u32_());
    let r = b.bits(
        r,
        &[
            ("ProcessInJob", 0, 1),
            ("ProcessInitializing", 1, 1),
            ("ProcessUsingVEH", 2, 1),
            ("ProcessUsingVCH", 3, 1),
            ("ProcessUsingFTH", 4, 1),
            ("ProcessPreviouslyThrottled", 5, 1),
            ("ProcessCurrentlyThrottled", 6, 1),
            ("ProcessImagesHotPatched", 7, 1),
            ("ReservedBits0", 8, 24),
        ],
    );
    let r = if x64 {
        b.f(r, "Padding1", arr(u8_(), 4))
    } else {
        r
    };
    let r = b.f(r, "KernelCallbackTable", pv.clone());
    let r = b.alt(r, "UserSharedInfoPtr", pv.clone());
    let r = b.f(r, "SystemReserved", u32_());
    let r = b.f(r, "AtlThunkSListPtr32", if x64 { u32_() } else { slist });
    let r = b.f(r, "ApiSetMap", pv.clone());
    let r = b.f(r, "TlsExpansionCounter", u32_());
    let r = if x64 {
        b.f(r, "Padding2", arr(u8_(), 4))
    } else {
        r
    };
    let r = b.f(r, "TlsBitmap", pv.clone());
    let r = b.f(r, "TlsBitmapBits", arr(u32_(), 2));
    let r = b.f(r, "ReadOnlySharedMemoryBase", pv.clone());
    let r = b.f(r, "SharedData", pv.clone());
    let r = b.f(r, "ReadOnlyStaticServerData", Ty::ptr(pv.clone(), l.ptr));
    let r = b.f(r, "AnsiCodePageData", pv.clone());
    let r = b.f(r, "OemCodePageData", pv.clone());
    let r = b.f(r, "UnicodeCaseTableData", pv.clone());
    let r = b.fixed(r, l.peb_number_of_processors, "NumberOfProcessors", u32_());
    let r = b.fixed(r, l.peb_nt_global_flag, "NtGlobalFlag", u32_());
    let large = b.named("_LARGE_INTEGER");
    let r = b.f(r, "CriticalSectionTimeout", large);
    let r = b.f(r, "HeapSegmentReserve", b.up());
    let r = b.f(r, "HeapSegmentCommit", b.up());
    let r = b.f(r, "HeapDeCommitTotalFreeThreshold", b.up());
    let r = b.f(r, "HeapDeCommitFreeBlockThreshold", b.up());
    let r = b.fixed(r, l.peb_number_of_heaps, "NumberOfHeaps", u32_());
    let r = b.f(r, "MaximumNumberOfHeaps", u32_());
    let r = b.fixed(
        r,
        l.peb_process_heaps,
        "ProcessHeaps",
        Ty::ptr(pv.clone(), l.ptr),
    );
    let r = b.f(r, "GdiSharedHandleTable", pv.clone());
    let r = b.f(r, "ProcessStarterHelper", pv.clone());
    let r = b.f(r, "GdiDCAttributeList", u32_());
    let r = if x64 {
        b.f(r, "Padding3", arr(u8_(), 4))
    } else {
        r
    };
    let r = b.f(r, "LoaderLock", cs);
    let r = b.fixed(r, l.peb_os_major, "OSMajorVersion", u32_());
    let r = b.f(r, "OSMinorVersion", u32_());
    let r = b.fixed(r, l.peb_os_build, "OSBuildNumber", u16_());
    let r = b.f(r, "OSCSDVersion", u16_());
    let r = b.f(r, "OSPlatformId", u32_());
    let r = b.f(r, "ImageSubsystem", u32_());
    let r = b.f(r, "ImageSubsystemMajorVersion", u32_());
    let r = b.f(r, "ImageSubsystemMinorVersion", u32_());
    let r = if x64 {
        b.f(r, "Padding4", arr(u8_(), 4))
    } else {
        r
    };
    let r = b.f(r, "ActiveProcessAffinityMask", b.up());
    let r = b.f(r, "GdiHandleBuffer", arr(u32_(), if x64 { 60 } else { 34 }));
    let r = b.f(r, "PostProcessInitRoutine", Ty::ptr(Ty::Function, l.ptr));
    let r = b.f(r, "TlsExpansionBitmap", pv.clone());
    let r = b.f(r, "TlsExpansionBitmapBits", arr(u32_(), 32));
    let r = b.fixed(r, l.peb_session_id, "SessionId", u32_());
    let r = if x64 {
        b.f(r, "Padding5", arr(u8_(), 4))
    } else {
        r
    };
    let ularge = b.named("_ULARGE_INTEGER");
    let r = b.f(r, "AppCompatFlags", ularge.clone());
    let r = b.f(r, "AppCompatFlagsUser", ularge);
    let r = b.f(r, "pShimData", pv.clone());
    let r = b.f(r, "AppCompatInfo", pv.clone());
    let us = b.named("_UNICODE_STRING");
    let r = b.f(r, "CSDVersion", us);
    let acd = b.p("_ACTIVATION_CONTEXT_DATA");
    let asm = b.p("_ASSEMBLY_STORAGE_MAP");
    let r = b.f(r, "ActivationContextData", acd.clone());
    let r = b.f(r, "ProcessAssemblyStorageMap", asm.clone());
    let r = b.f(r, "SystemDefaultActivationContextData", acd);
    let r = b.f(r, "SystemAssemblyStorageMap", asm);
    let r = b.f(r, "MinimumStackCommit", b.up());
    b.define(r, Some(if x64 { 0x7c8 } else { 0x480 }));
}

/// `_TEB` with `_GDI_TEB_BATCH` and `_ACTIVATION_CONTEXT_STACK`, described up to HardErrorMode
/// and the members between SystemReserved1 and ExceptionCode left out (they changed from build
/// to build of Windows 10); its size is Windows 10's (0x1838 / 0x1000).
fn teb(b: &mut Builder, l: &Layout) {
    let pv = b.pv();
    let x64 = b.x64();
    let r = b.f(Rec::new("_GDI_TEB_BATCH"), "Offset", u32_());
    let r = b.bits(r, &[("Offset", 0, 31), ("HasRenderingCommand", 31, 1)]);
    let mut r = r;
    // The storage unit itself is not a member WinDbg lists: keep only the bitfields.
    r.fields.remove(0);
    let r = b.f(r, "HDC", b.up());
    let r = b.f(r, "Buffer", arr(u32_(), 310));
    let batch = b.define(r, None);

    let tib = b.named("_NT_TIB");
    let client = b.named("_CLIENT_ID");
    let r = b.f(Rec::new("_TEB"), "NtTib", tib);
    let r = b.fixed(r, l.teb_environment, "EnvironmentPointer", pv.clone());
    let r = b.fixed(r, l.teb_client_id, "ClientId", client.clone());
    let r = b.fixed(r, l.teb_rpc_handle, "ActiveRpcHandle", pv.clone());
    let r = b.fixed(
        r,
        l.teb_tls_pointer,
        "ThreadLocalStoragePointer",
        pv.clone(),
    );
    let peb = b.p("_PEB");
    let r = b.fixed(r, l.teb_peb, "ProcessEnvironmentBlock", peb);
    let r = b.fixed(r, l.teb_last_error, "LastErrorValue", u32_());
    let r = b.fixed(r, l.teb_owned_cs, "CountOfOwnedCriticalSections", u32_());
    let r = b.f(r, "CsrClientThread", pv.clone());
    let r = b.f(r, "Win32ThreadInfo", pv.clone());
    let r = b.f(r, "User32Reserved", arr(u32_(), 26));
    let r = b.f(r, "UserReserved", arr(u32_(), 5));
    let r = b.f(r, "WOW32Reserved", pv.clone());
    let r = b.f(r, "CurrentLocale", u32_());
    let r = b.f(r, "FpSoftwareStatusRegister", u32_());
    let r = b.f(r, "ReservedForDebuggerInstrumentation", arr(pv.clone(), 16));
    let r = b.f(
        r,
        "SystemReserved1",
        arr(pv.clone(), if x64 { 30 } else { 26 }),
    );
    // Undescribed: PlaceholderCompatibilityMode … WorkingOnBehalfTicket.
    let r = b.f(
        r.at(if x64 { 0x2c0 } else { 0x1a4 }),
        "ExceptionCode",
        i32_(),
    );
    let r = if x64 {
        b.f(r, "Padding0", arr(u8_(), 4))
    } else {
        r
    };
    let stack = b.p("_ACTIVATION_CONTEXT_STACK");
    let r = b.f(r, "ActivationContextStackPointer", stack);
    let r = b.f(r, "InstrumentationCallbackSp", b.up());
    let r = b.f(r, "InstrumentationCallbackPreviousPc", b.up());
    let r = b.f(r, "InstrumentationCallbackPreviousSp", b.up());
    let r = if x64 {
        let r = b.f(r, "TxFsContext", u32_());
        let r = b.f(r, "InstrumentationCallbackDisabled", u8_());
        let r = b.f(r, "UnalignedLoadStoreExceptions", u8_());
        b.f(r, "Padding1", arr(u8_(), 2))
    } else {
        let r = b.f(r, "InstrumentationCallbackDisabled", u8_());
        let r = b.f(r, "SpareBytes", arr(u8_(), 23));
        b.f(r, "TxFsContext", u32_())
    };
    let r = b.f(r, "GdiTebBatch", batch);
    let r = b.f(r, "RealClientId", client);
    let r = b.f(r, "GdiCachedProcessHandle", pv.clone());
    let r = b.f(r, "GdiClientPID", u32_());
    let r = b.f(r, "GdiClientTID", u32_());
    let r = b.f(r, "GdiThreadLocalInfo", pv.clone());
    let r = b.f(r, "Win32ClientInfo", arr(b.up(), 62));
    let r = b.f(r, "glDispatchTable", arr(pv.clone(), 233));
    let r = b.f(r, "glReserved1", arr(b.up(), 29));
    let mut r = r;
    for name in [
        "glReserved2",
        "glSectionInfo",
        "glSection",
        "glTable",
        "glCurrentRC",
        "glContext",
    ] {
        r = b.f(r, name, pv.clone());
    }
    let r = b.fixed(r, l.teb_last_status, "LastStatusValue", u32_());
    let r = if x64 {
        b.f(r, "Padding2", arr(u8_(), 4))
    } else {
        r
    };
    let us = b.named("_UNICODE_STRING");
    let r = b.f(r, "StaticUnicodeString", us);
    let r = b.f(r, "StaticUnicodeBuffer", arr(wchar(), 261));
    let r = if x64 {
        b.f(r, "Padding3", arr(u8_(), 6))
    } else {
        r
    };
    let r = b.fixed(r, l.teb_deallocation_stack, "DeallocationStack", pv.clone());
    let r = b.fixed(r, l.teb_tls_slots, "TlsSlots", arr(pv.clone(), 64));
    let list = b.named("_LIST_ENTRY");
    let r = b.f(r, "TlsLinks", list);
    let r = b.f(r, "Vdm", pv.clone());
    let r = b.f(r, "ReservedForNtRpc", pv.clone());
    let r = b.f(r, "DbgSsReserved", arr(pv, 2));
    let r = b.fixed(r, l.teb_hard_error_mode, "HardErrorMode", u32_());
    b.define(r, Some(if x64 { 0x1838 } else { 0x1000 }));
}

/// `_EXCEPTION_RECORD` (winnt.h; EXCEPTION_MAXIMUM_PARAMETERS is 15).
fn exception(b: &mut Builder, l: &Layout) {
    let r = b.f(Rec::new("_EXCEPTION_RECORD"), "ExceptionCode", i32_());
    let r = b.f(r, "ExceptionFlags", u32_());
    let er = b.p("_EXCEPTION_RECORD");
    let r = b.fixed(r, l.exr_nested_record, "ExceptionRecord", er);
    let pv = b.pv();
    let r = b.fixed(r, l.exr_address, "ExceptionAddress", pv);
    let r = b.fixed(r, l.exr_number_parameters, "NumberParameters", u32_());
    let r = b.fixed(
        r,
        l.exr_information,
        "ExceptionInformation",
        arr(b.up(), 15),
    );
    b.define(r, None);
}

/// `_CONTEXT` as winnt.h declares it for the bitness (x64: with `_M128A` and `_XSAVE_FORMAT`;
/// x86: with `_FLOATING_SAVE_AREA`), the structure `.cxr` takes.
fn context(b: &mut Builder) {
    if b.x64() {
        let r = b.f(Rec::new("_M128A"), "Low", u64_());
        let r = b.f(r, "High", i64_());
        let mut r = r;
        r.align = 16;
        let m128 = b.define(r, None);

        let r = b.f(Rec::new("_XSAVE_FORMAT"), "ControlWord", u16_());
        let r = b.f(r, "StatusWord", u16_());
        let r = b.f(r, "TagWord", u8_());
        let r = b.f(r, "Reserved1", u8_());
        let r = b.f(r, "ErrorOpcode", u16_());
        let r = b.f(r, "ErrorOffset", u32_());
        let r = b.f(r, "ErrorSelector", u16_());
        let r = b.f(r, "Reserved2", u16_());
        let r = b.f(r, "DataOffset", u32_());
        let r = b.f(r, "DataSelector", u16_());
        let r = b.f(r, "Reserved3", u16_());
        let r = b.f(r, "MxCsr", u32_());
        let r = b.f(r, "MxCsr_Mask", u32_());
        let r = b.f(r, "FloatRegisters", arr(m128.clone(), 8));
        let r = b.f(r, "XmmRegisters", arr(m128.clone(), 16));
        let r = b.f(r, "Reserved4", arr(u8_(), 96));
        let xsave = b.define(r, None);

        let mut r = Rec::new("_CONTEXT");
        for name in ["P1Home", "P2Home", "P3Home", "P4Home", "P5Home", "P6Home"] {
            r = b.f(r, name, u64_());
        }
        let r = b.f(r, "ContextFlags", u32_());
        let r = b.f(r, "MxCsr", u32_());
        let mut r = r;
        for name in ["SegCs", "SegDs", "SegEs", "SegFs", "SegGs", "SegSs"] {
            r = b.f(r, name, u16_());
        }
        let mut r = b.f(r, "EFlags", u32_());
        for name in [
            "Dr0", "Dr1", "Dr2", "Dr3", "Dr6", "Dr7", "Rax", "Rcx", "Rdx", "Rbx", "Rsp", "Rbp",
            "Rsi", "Rdi", "R8", "R9", "R10", "R11", "R12", "R13", "R14", "R15", "Rip",
        ] {
            r = b.f(r, name, u64_());
        }
        let r = b.f(r, "FltSave", xsave);
        let fltsave = r.fields.last().map_or(0, |f| f.offset);
        let mut r = b.alt(r, "Header", arr(m128.clone(), 2));
        r.fields.last_mut().expect("just added").offset = fltsave;
        let mut r = b.alt(r, "Legacy", arr(m128.clone(), 8));
        r.fields.last_mut().expect("just added").offset = fltsave + 0x20;
        for i in 0..16u64 {
            let name = format!("Xmm{i}");
            r = b.alt(r, &name, m128.clone());
            r.fields.last_mut().expect("just added").offset = fltsave + 0xa0 + 0x10 * i;
        }
        let r = b.f(r.at(fltsave + 0x200), "VectorRegister", arr(m128, 26));
        let mut r = r;
        for name in [
            "VectorControl",
            "DebugControl",
            "LastBranchToRip",
            "LastBranchFromRip",
            "LastExceptionToRip",
            "LastExceptionFromRip",
        ] {
            r = b.f(r, name, u64_());
        }
        b.define(r, None);
    } else {
        let mut r = Rec::new("_FLOATING_SAVE_AREA");
        for name in [
            "ControlWord",
            "StatusWord",
            "TagWord",
            "ErrorOffset",
            "ErrorSelector",
            "DataOffset",
            "DataSelector",
        ] {
            r = b.f(r, name, u32_());
        }
        let r = b.f(r, "RegisterArea", arr(u8_(), 80));
        let r = b.f(r, "Spare0", u32_());
        let fsa = b.define(r, None);

        let mut r = b.f(Rec::new("_CONTEXT"), "ContextFlags", u32_());
        for name in ["Dr0", "Dr1", "Dr2", "Dr3", "Dr6", "Dr7"] {
            r = b.f(r, name, u32_());
        }
        let mut r = b.f(r, "FloatSave", fsa);
        for name in [
            "SegGs", "SegFs", "SegEs", "SegDs", "Edi", "Esi", "Ebx", "Edx", "Ecx", "Eax", "Ebp",
            "Eip", "SegCs", "EFlags", "Esp", "SegSs",
        ] {
            r = b.f(r, name, u32_());
        }
        let r = b.f(r, "ExtendedRegisters", arr(u8_(), 512));
        b.define(r, None);
    }
}

/// `_HEAP_ENTRY` (its common view: the encoded header in front of every NT heap block),
/// `_HEAP_SEGMENT`, and the head of `_HEAP` (which starts with a segment), described up to
/// LockVariable.
fn heap(b: &mut Builder, l: &Layout) {
    let x64 = b.x64();
    let r = Rec::new("_HEAP_ENTRY");
    let r = if x64 {
        let pv = b.pv();
        b.f(r, "PreviousBlockPrivateData", pv)
    } else {
        r
    };
    let r = b.f(r, "Size", u16_());
    let r = b.f(r, "Flags", u8_());
    let r = b.f(r, "SmallTagIndex", u8_());
    let size_at = r.fields[if x64 { 1 } else { 0 }].offset;
    let mut r = b.alt(r, "SubSegmentCode", u32_());
    r.fields.last_mut().expect("just added").offset = size_at;
    let r = b.f(r.at(size_at + 4), "PreviousSize", u16_());
    let r = b.f(r, "SegmentOffset", u8_());
    let r = b.alt(r, "LFHFlags", u8_());
    let r = b.f(r, "UnusedBytes", u8_());
    let mut r = b.alt(r, "AgregateCode", u64_());
    r.fields.last_mut().expect("just added").offset = size_at;
    r.next = size_at + 8;
    let entry = b.define(r, None);

    let list = b.named("_LIST_ENTRY");
    let heap = b.p("_HEAP");
    let pentry = b.p("_HEAP_ENTRY");
    let pv = b.pv();
    let segment_fields = |b: &mut Builder, r: Rec| -> Rec {
        let r = b.f(r, "Entry", entry.clone());
        let r = b.fixed(r, l.heap_segment_signature, "SegmentSignature", u32_());
        let r = b.f(r, "SegmentFlags", u32_());
        let r = b.f(r, "SegmentListEntry", list.clone());
        let r = b.fixed(r, l.heap_segment_heap, "Heap", heap.clone());
        let r = b.f(r, "BaseAddress", pv.clone());
        let r = b.f(r, "NumberOfPages", u32_());
        let r = b.f(r, "FirstEntry", pentry.clone());
        let r = b.f(r, "LastValidEntry", pentry.clone());
        let r = b.f(r, "NumberOfUnCommittedPages", u32_());
        let r = b.f(r, "NumberOfUnCommittedRanges", u32_());
        let r = b.f(r, "SegmentAllocatorBackTraceIndex", u16_());
        let r = b.f(r, "Reserved", u16_());
        b.f(r, "UCRSegmentList", list.clone())
    };
    let r = segment_fields(b, Rec::new("_HEAP_SEGMENT"));
    let segment = b.define(r, None);

    // _HEAP: WinDbg lists the segment, then the segment's members again (a union), then the
    // heap's own.
    let r = b.f(Rec::new("_HEAP"), "Segment", segment);
    let r = segment_fields(b, r.at(0));
    let r = b.f(r, "Flags", u32_());
    let r = b.f(r, "ForceFlags", u32_());
    let r = b.f(r, "CompatibilityFlags", u32_());
    let r = b.f(r, "EncodeFlagMask", u32_());
    let r = b.f(r, "Encoding", entry);
    let r = b.f(r, "Interceptor", u32_());
    let r = b.f(r, "VirtualMemoryThreshold", u32_());
    let r = b.f(r, "Signature", u32_());
    let mut r = r;
    for name in [
        "SegmentReserve",
        "SegmentCommit",
        "DeCommitFreeBlockThreshold",
        "DeCommitTotalFreeThreshold",
        "TotalFreeSize",
        "MaximumAllocationSize",
    ] {
        r = b.f(r, name, b.up());
    }
    let r = b.f(r, "ProcessHeapsListIndex", u16_());
    let r = b.f(r, "HeaderValidateLength", u16_());
    let r = b.f(r, "HeaderValidateCopy", pv.clone());
    let r = b.f(r, "NextAvailableTagIndex", u16_());
    let r = b.f(r, "MaximumTagIndex", u16_());
    let tags = b.p("_HEAP_TAG_ENTRY");
    let r = b.f(r, "TagEntries", tags);
    let r = b.f(r, "UCRList", list.clone());
    let r = b.f(r, "AlignRound", b.up());
    let r = b.f(r, "AlignMask", b.up());
    let r = b.f(r, "VirtualAllocdBlocks", list.clone());
    let r = b.f(r, "SegmentList", list.clone());
    let r = b.f(r, "AllocatorBackTraceIndex", u16_());
    let r = b.f(r, "NonDedicatedListLength", u32_());
    let r = b.f(r, "BlocksIndex", pv.clone());
    let r = b.f(r, "UCRIndex", pv);
    let pseudo = b.p("_HEAP_PSEUDO_TAG_ENTRY");
    let r = b.f(r, "PseudoTagEntries", pseudo);
    let r = b.f(r, "FreeLists", list);
    let lock = b.p("_HEAP_LOCK");
    let r = b.f(r, "LockVariable", lock);
    b.define(r, None);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{X64, X86};

    fn offset(t: &BuiltinTypes, record: &str, field: &str) -> u64 {
        let Some(Def::Record(r)) = t.find(record).and_then(|i| t.def(i)) else {
            panic!("{record}");
        };
        r.fields
            .iter()
            .find(|f| f.name == field)
            .unwrap_or_else(|| panic!("{record}.{field}"))
            .offset
    }

    fn size(t: &BuiltinTypes, record: &str) -> u64 {
        t.size_of(&Ty::Named(t.find(record).expect(record)))
    }

    #[test]
    fn natural_layout_arrives_at_every_layout_offset() {
        for l in [X64, X86] {
            let t = BuiltinTypes::new(&l);
            assert!(t.misplaced.is_empty(), "ptr {}: {:?}", l.ptr, t.misplaced);
        }
    }

    /// Offsets WinDbg prints from the public ntdll PDBs of Windows 10 that `Layout` does not
    /// hold (so natural layout had to arrive there by itself).
    #[test]
    fn windows_10_offsets_windbg_shows() {
        let t = BuiltinTypes::new(&X64);
        for (record, field, at) in [
            ("_PEB", "FastPebLock", 0x38),
            ("_PEB", "CrossProcessFlags", 0x50),
            ("_PEB", "KernelCallbackTable", 0x58),
            ("_PEB", "TlsBitmapBits", 0x80),
            ("_PEB", "CriticalSectionTimeout", 0xc0),
            ("_PEB", "LoaderLock", 0x110),
            ("_PEB", "ImageSubsystem", 0x128),
            ("_PEB", "GdiHandleBuffer", 0x140),
            ("_PEB", "PostProcessInitRoutine", 0x230),
            ("_PEB", "CSDVersion", 0x2e8),
            ("_PEB", "MinimumStackCommit", 0x318),
            ("_TEB", "ActivationContextStackPointer", 0x2c8),
            ("_TEB", "GdiTebBatch", 0x2f0),
            ("_TEB", "RealClientId", 0x7d8),
            ("_TEB", "glDispatchTable", 0x9f0),
            ("_TEB", "StaticUnicodeString", 0x1258),
            ("_TEB", "TlsLinks", 0x1680),
            ("_LDR_DATA_TABLE_ENTRY", "HashLinks", 0x70),
            ("_LDR_DATA_TABLE_ENTRY", "DdagNode", 0x98),
            ("_LDR_DATA_TABLE_ENTRY", "LoadTime", 0x100),
            ("_LDR_DATA_TABLE_ENTRY", "LoadReason", 0x10c),
            ("_RTL_USER_PROCESS_PARAMETERS", "ShellInfo", 0xd0),
            ("_RTL_USER_PROCESS_PARAMETERS", "CurrentDirectores", 0xf0),
            ("_RTL_USER_PROCESS_PARAMETERS", "LoaderThreads", 0x40c),
            ("_RTL_CRITICAL_SECTION", "SpinCount", 0x20),
            ("_RTL_CRITICAL_SECTION_DEBUG", "ContentionCount", 0x24),
            ("_CONTEXT", "Rip", 0xf8),
            ("_CONTEXT", "Xmm15", 0x290),
            ("_CONTEXT", "VectorRegister", 0x300),
            ("_CONTEXT", "LastExceptionFromRip", 0x4c8),
            ("_HEAP", "Flags", 0x70),
            ("_HEAP", "ForceFlags", 0x74),
            ("_HEAP", "Signature", 0x98),
            ("_HEAP", "FreeLists", 0x150),
            ("_HEAP_SEGMENT", "UCRSegmentList", 0x60),
            ("_HEAP_ENTRY", "UnusedBytes", 0xf),
        ] {
            assert_eq!(offset(&t, record, field), at, "x64 {record}.{field}");
        }
        assert_eq!(size(&t, "_CONTEXT"), 0x4d0);
        assert_eq!(size(&t, "_RTL_CRITICAL_SECTION"), 0x28);
        assert_eq!(size(&t, "_EXCEPTION_RECORD"), 0x98);
        assert_eq!(size(&t, "_PEB_LDR_DATA"), 0x58);
        assert_eq!(size(&t, "_HEAP_ENTRY"), 0x10);
        assert_eq!(size(&t, "_GDI_TEB_BATCH"), 0x4e8);
        assert_eq!(size(&t, "_RTL_USER_PROCESS_PARAMETERS"), 0x440);

        let t = BuiltinTypes::new(&X86);
        for (record, field, at) in [
            ("_PEB", "FastPebLock", 0x1c),
            ("_PEB", "CrossProcessFlags", 0x28),
            ("_PEB", "CriticalSectionTimeout", 0x70),
            ("_PEB", "LoaderLock", 0xa0),
            ("_PEB", "GdiHandleBuffer", 0xc4),
            ("_PEB", "CSDVersion", 0x1f0),
            ("_PEB", "MinimumStackCommit", 0x208),
            ("_TEB", "ActivationContextStackPointer", 0x1a8),
            ("_TEB", "TxFsContext", 0x1d0),
            ("_TEB", "GdiTebBatch", 0x1d4),
            ("_TEB", "RealClientId", 0x6b4),
            ("_TEB", "StaticUnicodeString", 0xbf8),
            ("_TEB", "TlsLinks", 0xf10),
            ("_LDR_DATA_TABLE_ENTRY", "HashLinks", 0x3c),
            ("_LDR_DATA_TABLE_ENTRY", "LoadTime", 0x88),
            ("_RTL_USER_PROCESS_PARAMETERS", "CurrentDirectores", 0x90),
            ("_RTL_CRITICAL_SECTION", "SpinCount", 0x14),
            ("_CONTEXT", "Eip", 0xb8),
            ("_CONTEXT", "ExtendedRegisters", 0xcc),
            ("_HEAP", "Flags", 0x40),
            ("_HEAP", "ForceFlags", 0x44),
            ("_HEAP", "Signature", 0x60),
            ("_HEAP", "FreeLists", 0xc0),
            ("_HEAP_ENTRY", "UnusedBytes", 0x7),
        ] {
            assert_eq!(offset(&t, record, field), at, "x86 {record}.{field}");
        }
        assert_eq!(size(&t, "_CONTEXT"), 0x2cc);
        assert_eq!(size(&t, "_RTL_CRITICAL_SECTION"), 0x18);
        assert_eq!(size(&t, "_EXCEPTION_RECORD"), 0x50);
        assert_eq!(size(&t, "_HEAP_ENTRY"), 8);
        assert_eq!(size(&t, "_HEAP_SEGMENT"), 0x40);
        assert_eq!(size(&t, "_RTL_USER_PROCESS_PARAMETERS"), 0x2c0);
    }

    #[test]
    fn names_resolve_without_case_and_opaque_names_are_not_types() {
        let t = BuiltinTypes::new(&X64);
        assert_eq!(t.find("_peb"), t.find("_PEB"));
        assert!(t.find("_ACTIVATION_CONTEXT_DATA").is_none());
        assert!(t.names().iter().any(|(n, _)| n == "_HEAP_SEGMENT"));
    }
}
