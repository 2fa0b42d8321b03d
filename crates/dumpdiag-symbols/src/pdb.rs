//! PDB symbols through `pdb-addr2line`: procedures with inline frames and source lines, and
//! public symbols (demangled). The PDB file is opened once and kept with its lookup context.

use crate::guard::contained;
use std::fs::File;
use std::path::Path;

use pdb_addr2line::pdb;
use pdb_addr2line::{Context, ContextPdbData};

type Data = ContextPdbData<'static, 'static, File>;
type Ctx<'a> = Context<'a, 'static>;

self_cell::self_cell!(
    struct Cell {
        owner: Data,
        #[not_covariant]
        dependent: Ctx,
    }
);

pub struct PdbSymbols {
    cell: Cell,
    pub path: String,
    /// GUID, signature and ages: what ties the PDB to an image ([`crate::pdb_match`]).
    pub identity: crate::pdb_match::PdbIdentity,
    /// x86 frame data (FPO and program-string records), sorted by address.
    pub frame_data: Vec<crate::breakpad::StackWin>,
    /// Global and static data symbols: (rva, name), sorted.
    pub globals: Vec<(u32, String)>,
    /// The image's section headers as the PDB's section-header stream records them:
    /// (virtual address, virtual size, characteristics).
    pub sections: Vec<(u32, u32, u32)>,
    /// Every function, enumerated on first use (`x`, `module!name` expressions).
    functions: std::cell::OnceCell<Vec<(u32, String)>>,
    /// The type records and typed globals, read on first use (`dt`, `??`); None when the
    /// PDB's type stream cannot be read.
    types: std::cell::OnceCell<Option<crate::types::PdbTypes>>,
    /// Did the reader panic on this file (see [`crate::contain`])? It is not asked again.
    broken: std::cell::Cell<bool>,
}

/// One resolved address.
pub struct PdbFrames {
    pub start_rva: u32,
    pub end_rva: Option<u32>,
    /// (function, file, line), innermost inline first, containing procedure last.
    pub frames: Vec<(String, Option<String>, Option<u32>)>,
}

/// Demangle an MSVC-decorated public name (`?f@@YAXH@Z` → `f`), keeping it when it is not one.
pub fn demangle(name: &str) -> String {
    if name.starts_with('?') {
        if let Ok(d) = msvc_demangler::demangle(name, msvc_demangler::DemangleFlags::NAME_ONLY) {
            return d;
        }
    }
    name.to_string()
}

impl PdbSymbols {
    /// Open and index a PDB; a file the reader cannot take (even one it panics on) is an
    /// error.
    pub fn open(path: &Path) -> Result<PdbSymbols, String> {
        crate::contain::contain(|| Self::open_unguarded(path))?
    }

    fn open_unguarded(path: &Path) -> Result<PdbSymbols, String> {
        let file = File::open(path).map_err(|e| e.to_string())?;
        let mut pdb = pdb::PDB::open(file).map_err(|e| e.to_string())?;
        let identity = crate::pdb_match::PdbIdentity::of(&mut pdb)?;
        let frame_data = read_frame_data(&mut pdb);
        let globals = read_globals(&mut pdb);
        let sections = pdb
            .sections()
            .ok()
            .flatten()
            .unwrap_or_default()
            .iter()
            .map(|h| (h.virtual_address, h.virtual_size, h.characteristics.0))
            .collect();
        let data = ContextPdbData::try_from_pdb(pdb).map_err(|e| e.to_string())?;
        // WinDbg names frames without argument lists (`mod!Class::method+0x1f`).
        let flags = pdb_addr2line::TypeFormatterFlags::NO_ARGUMENTS
            | pdb_addr2line::TypeFormatterFlags::NO_FUNCTION_RETURN
            | pdb_addr2line::TypeFormatterFlags::NAME_ONLY;
        let cell = Cell::try_new(data, |d| d.make_context_with_formatter_flags(flags))
            .map_err(|e| e.to_string())?;
        Ok(PdbSymbols {
            cell,
            path: path.display().to_string(),
            identity,
            frame_data,
            globals,
            sections,
            functions: std::cell::OnceCell::new(),
            types: std::cell::OnceCell::new(),
            broken: std::cell::Cell::new(false),
        })
    }

    /// Run a query of the reader; None, from now on, once it has panicked on this file.
    fn guarded<T>(&self, f: impl FnOnce() -> Option<T>) -> Option<T> {
        if self.broken.get() {
            return None;
        }
        crate::contain::contain(f).unwrap_or_else(|_| {
            self.broken.set(true);
            None
        })
    }

    /// The PDB's types (read from the file on first use).
    pub fn types(&self) -> Option<&crate::types::PdbTypes> {
        self.types
            .get_or_init(|| crate::types::PdbTypes::open(Path::new(&self.path)).ok())
            .as_ref()
    }

    pub fn find(&self, rva: u32) -> Option<PdbFrames> {
        self.guarded(|| self.find_unguarded(rva))
    }

    fn find_unguarded(&self, rva: u32) -> Option<PdbFrames> {
        self.cell.with_dependent(|_, ctx| {
            let f = ctx.find_frames(rva).ok()??;
            Some(PdbFrames {
                start_rva: f.start_rva,
                end_rva: f.end_rva,
                frames: f
                    .frames
                    .into_iter()
                    .map(|fr| {
                        (
                            fr.function
                                .map(|n| demangle(&n))
                                .unwrap_or_else(|| "<unknown>".into()),
                            fr.file.map(|s| s.into_owned()),
                            fr.line,
                        )
                    })
                    .collect(),
            })
        })
    }

    /// The frame-data record covering `rva` (program strings preferred over plain FPO).
    pub fn frame_data_at(&self, rva: u64) -> Option<&crate::breakpad::StackWin> {
        let i = self.frame_data.partition_point(|w| w.address <= rva);
        let covering = || {
            self.frame_data[..i]
                .iter()
                .rev()
                .take(16)
                .filter(move |w| rva < w.address.saturating_add(w.size))
        };
        covering()
            .find(|w| w.program.is_some())
            .or_else(|| covering().next())
    }

    /// Is `rva` inside a procedure the PDB knows (not data, not padding between functions)?
    pub fn in_function(&self, rva: u32) -> bool {
        self.find(rva).is_some()
    }

    /// The data symbol at or below `rva`: (start rva, name).
    pub fn global_at(&self, rva: u32) -> Option<&(u32, String)> {
        let i = self.globals.partition_point(|g| g.0 <= rva);
        self.globals.get(i.checked_sub(1)?)
    }

    /// Every function: (start rva, name).
    pub fn functions(&self) -> &[(u32, String)] {
        self.functions.get_or_init(|| {
            self.guarded(|| {
                Some(self.cell.with_dependent(|_, ctx| {
                    ctx.functions()
                        .filter_map(|f| Some((f.start_rva, demangle(&f.name?))))
                        .collect()
                }))
            })
            .unwrap_or_default()
        })
    }
}

/// The PDB's x86 frame data (the FPO and "new FPO" streams), as STACK WIN-shaped records.
fn read_frame_data(pdb: &mut pdb::PDB<'static, File>) -> Vec<crate::breakpad::StackWin> {
    use pdb::FallibleIterator;
    let (Ok(table), Ok(map)) = (pdb.frame_table(), pdb.address_map()) else {
        return Vec::new();
    };
    let strings = pdb.string_table().ok();
    let mut out = Vec::new();
    let mut it = table.iter();
    while let Ok(Some(f)) = it.next() {
        let Some(rva) = f.code_start.to_rva(&map) else {
            continue;
        };
        let program = f.program.and_then(|p| {
            strings
                .as_ref()
                .and_then(|st| p.to_string_lossy(st).ok())
                .map(|c| c.into_owned())
        });
        out.push(crate::breakpad::StackWin {
            kind: if program.is_some() { 4 } else { 0 },
            address: rva.0 as u64,
            size: f.code_size as u64,
            prolog_size: f.prolog_size as u32,
            epilog_size: 0,
            parameter_size: f.params_size,
            saved_register_size: f.saved_regs_size as u32,
            local_size: f.locals_size,
            max_stack_size: f.max_stack_size.unwrap_or(0),
            allocates_base_pointer: f.uses_base_pointer,
            program,
        });
        if out.len() >= 1 << 22 {
            break;
        }
    }
    out.sort_by_key(|w| (w.address, std::cmp::Reverse(w.kind)));
    out
}

/// Every data symbol (S_GDATA32 / S_LDATA32) of the global symbol stream, then of the module
/// streams (file and function statics live there only), with its RVA; each record read inside
/// the panic guard (pdb2 asserts on some malformed records).
pub(crate) fn for_each_data_symbol(
    pdb: &mut pdb::PDB<'static, File>,
    mut each: impl FnMut(&pdb::DataSymbol, u32),
) {
    use pdb::FallibleIterator;
    let Ok(map) = pdb.address_map() else {
        return;
    };
    let mut push = |data: pdb::SymbolData| {
        if let pdb::SymbolData::Data(d) = data {
            if let Some(rva) = d.offset.to_rva(&map) {
                each(&d, rva.0);
            }
        }
    };
    if let Ok(globals) = pdb.global_symbols() {
        let mut it = globals.iter();
        while let Some(Ok(Some(sym))) = contained(|| it.next()) {
            if let Some(Ok(data)) = contained(|| sym.parse()) {
                push(data);
            }
        }
    }
    let Ok(dbi) = pdb.debug_information() else {
        return;
    };
    let Ok(mut modules) = dbi.modules() else {
        return;
    };
    while let Some(Ok(Some(m))) = contained(|| modules.next()) {
        let Ok(Some(info)) = pdb.module_info(&m) else {
            continue;
        };
        let Ok(mut syms) = info.symbols() else {
            continue;
        };
        while let Some(Ok(Some(sym))) = contained(|| syms.next()) {
            if let Some(Ok(data @ pdb::SymbolData::Data(_))) = contained(|| sym.parse()) {
                push(data);
            }
        }
    }
}

/// Global and static data by RVA.
fn read_globals(pdb: &mut pdb::PDB<'static, File>) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for_each_data_symbol(pdb, |d, rva| {
        out.push((rva, d.name.to_string().into_owned()));
    });
    out.sort();
    out.dedup();
    out
}
