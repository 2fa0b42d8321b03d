//! Symbols for the modules of a dump. For each module, in WinDbg's order of preference: its PDB
//! (found by the CodeView record's name and GUID+age on the symbol path, or at the path the
//! record names), a Breakpad `.sym` file from a symbol store, or the export table of the image
//! in dump memory. Loading is deferred until an address in the module is first looked up.

pub mod breakpad;
mod contain;
pub mod exports;
mod guard;
pub mod locals;
pub mod pdb;
pub mod pdb_match;
pub mod server;
pub mod sympath;
pub mod types;

use std::cell::OnceCell;
use std::path::PathBuf;

use dumpdiag_target::{CodeViewRecord, ModuleRecord, Target};

pub use breakpad::BreakpadSymbols;
pub use pdb_match::PdbMismatch;
use pdb_match::{open_matching, Refused};
pub use sympath::SymbolPath;

/// How far past a data symbol an address may lie and still be named after it.
const MAX_DATA_DISPLACEMENT: u64 = 0x1000;

/// What a module's symbols come from (the `lm` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymbolKind {
    Deferred,
    Pdb,
    Breakpad,
    Export,
    None,
}

impl SymbolKind {
    pub fn windbg_label(self) -> &'static str {
        match self {
            SymbolKind::Deferred => "(deferred)",
            SymbolKind::Pdb => "(private pdb symbols)",
            SymbolKind::Breakpad => "(breakpad symbols)",
            SymbolKind::Export => "(export symbols)",
            SymbolKind::None => "(no symbols)",
        }
    }
}

pub enum ModuleSymbols {
    Pdb(Box<pdb::PdbSymbols>),
    Breakpad(Box<BreakpadSymbols>, String),
    Export(Vec<(u32, String)>),
    None,
}

impl ModuleSymbols {
    pub fn kind(&self) -> SymbolKind {
        match self {
            ModuleSymbols::Pdb(_) => SymbolKind::Pdb,
            ModuleSymbols::Breakpad(..) => SymbolKind::Breakpad,
            ModuleSymbols::Export(_) => SymbolKind::Export,
            ModuleSymbols::None => SymbolKind::None,
        }
    }
}

/// One symbolized address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    pub module_index: usize,
    /// The containing function (for inline sites: the procedure they were inlined into).
    pub function: String,
    pub displacement: u64,
    pub function_start: u64,
    pub source: Option<(String, u32)>,
    /// Inlined calls at this address, innermost first: (function, call-site source).
    pub inlined: Vec<(String, Option<(String, u32)>)>,
    pub kind: SymbolKind,
}

pub struct Symbols {
    path: SymbolPath,
    /// Servers that could not be reached this session: not asked again.
    unreachable: std::cell::RefCell<Vec<String>>,
    modules: Vec<OnceCell<ModuleSymbols>>,
    /// Where each module's symbols were loaded from, for `lm` / `!lmi`.
    origins: Vec<OnceCell<String>>,
    /// Image files found on the symbol path, for unwind data a minidump does not carry.
    images: Vec<OnceCell<Option<dumpdiag_os::pe::FileImage>>>,
    /// PDBs found under a module's PDB name that belong to another build or link, refused as
    /// WinDbg refuses them (or loaded anyway): (module index, what was found).
    mismatches: std::cell::RefCell<Vec<(usize, PdbMismatch)>>,
    /// Modules whose next load takes a mismatched PDB when no matching one is found
    /// (`.reload /i`).
    accept_mismatched: Vec<bool>,
    /// Each module's section layout, found once (see [`Symbols::sections`]).
    sections: Vec<OnceCell<Option<Sections>>>,
}

/// IMAGE_SCN_MEM_EXECUTE.
pub const SCN_MEM_EXECUTE: u32 = 0x2000_0000;
/// IMAGE_SCN_CNT_CODE.
pub const SCN_CNT_CODE: u32 = 0x0000_0020;

/// A module's sections (rva, size, characteristics) and where they were read.
#[derive(Debug, Clone)]
pub struct Sections {
    pub spans: Vec<(u32, u32, u32)>,
    pub source: SectionSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionSource {
    /// The image headers in dump memory.
    Dump,
    /// The image file found on the symbol path.
    ImageFile,
    /// The section-header stream of the module's PDB.
    Pdb,
}

impl Sections {
    /// Is `rva` inside an executable section (code or execute permission)?
    pub fn executable(&self, rva: u64) -> bool {
        self.spans.iter().any(|&(va, size, c)| {
            c & (SCN_MEM_EXECUTE | SCN_CNT_CODE) != 0
                && rva >= va as u64
                && rva < va as u64 + size as u64
        })
    }
}

/// The symbol-store id of a PDB: GUID (as Windows prints it, no dashes) followed by the age.
pub fn pdb_store_id(cv: &CodeViewRecord) -> Option<String> {
    cv.pdb_id()
}

impl Symbols {
    pub fn new(path: SymbolPath, target: &dyn Target) -> Symbols {
        let n = target.modules().len();
        Symbols {
            path,
            unreachable: Default::default(),
            modules: (0..n).map(|_| OnceCell::new()).collect(),
            origins: (0..n).map(|_| OnceCell::new()).collect(),
            images: (0..n).map(|_| OnceCell::new()).collect(),
            mismatches: Default::default(),
            accept_mismatched: vec![false; n],
            sections: (0..n).map(|_| OnceCell::new()).collect(),
        }
    }

    pub fn path(&self) -> &SymbolPath {
        &self.path
    }

    /// Forget loaded symbols (`.reload`), optionally with a new path.
    pub fn reload(&mut self, path: Option<SymbolPath>, target: &dyn Target) {
        let p = path.unwrap_or_else(|| self.path.clone());
        *self = Symbols::new(p, target);
    }

    pub fn state(&self, index: usize) -> SymbolKind {
        self.modules
            .get(index)
            .and_then(|c| c.get())
            .map(|m| m.kind())
            .unwrap_or(SymbolKind::Deferred)
    }

    /// A PDB with the module's PDB name that belongs to another build or link (looked for when
    /// the module's symbols were loaded): refused, or loaded anyway after `.reload /i`.
    pub fn pdb_mismatch(&self, index: usize) -> Option<PdbMismatch> {
        self.mismatches
            .borrow()
            .iter()
            .find(|m| m.0 == index)
            .map(|m| m.1.clone())
    }

    /// Forget one module's symbols (`.reload module`); with `accept_mismatched`, its next load
    /// takes a PDB of its name from another build or link when no matching one is found
    /// (`.reload /i`), and says so in [`Symbols::pdb_mismatch`].
    pub fn reload_module(&mut self, index: usize, accept_mismatched: bool) {
        if let Some(cell) = self.modules.get_mut(index) {
            *cell = OnceCell::new();
            self.origins[index] = OnceCell::new();
            self.accept_mismatched[index] = accept_mismatched;
            self.mismatches.get_mut().retain(|m| m.0 != index);
        }
    }

    /// Remember a refused PDB; load it anyway when `.reload /i` asked for the module.
    fn refuse_or_force(
        &self,
        index: usize,
        mut mismatch: PdbMismatch,
    ) -> Option<(ModuleSymbols, String)> {
        let forced = if self.accept_mismatched.get(index) == Some(&true) {
            pdb::PdbSymbols::open(std::path::Path::new(&mismatch.path)).ok()
        } else {
            None
        };
        mismatch.loaded = forced.is_some();
        let origin = mismatch.path.clone();
        let mut all = self.mismatches.borrow_mut();
        all.retain(|m| m.0 != index);
        all.push((index, mismatch));
        forced.map(|p| (ModuleSymbols::Pdb(Box::new(p)), origin))
    }

    pub fn origin(&self, index: usize) -> Option<&str> {
        self.origins.get(index)?.get().map(String::as_str)
    }

    /// Load (once) and return a module's symbols.
    pub fn module(&self, target: &dyn Target, index: usize) -> Option<&ModuleSymbols> {
        let cell = self.modules.get(index)?;
        Some(cell.get_or_init(|| {
            let m = &target.modules()[index];
            let (syms, origin) = self.load(target, index, m);
            let _ = self.origins[index].set(origin);
            syms
        }))
    }

    fn load(&self, target: &dyn Target, index: usize, m: &ModuleRecord) -> (ModuleSymbols, String) {
        // The debug identity: the dump's module record, else the image in dump memory, else the
        // image file on the symbol path (Wine's dump writer leaves CvRecord empty).
        let cv = m
            .codeview
            .clone()
            .or_else(|| {
                dumpdiag_os::pe::read_headers(target.memory(), m.base)
                    .and_then(|h| dumpdiag_os::pe::codeview(target.memory(), &h))
            })
            .or_else(|| {
                self.image_file(target, index)
                    .and_then(|img| img.codeview())
            });
        if let Some(cv) = &cv {
            if let (Some(pdb_name), Some(id)) = (cv.pdb_name(), cv.pdb_id()) {
                let file = dumpdiag_target::file_name_of(pdb_name).to_string();
                let mut candidates: Vec<PathBuf> = vec![PathBuf::from(pdb_name)];
                candidates.extend(self.path.local_candidates(&file, &id));
                // A PDB of the module's name from another build or link is refused, as WinDbg
                // refuses it (pdb_match), and remembered for lm, !lmi and the analysis.
                let mut refused = None;
                let mut take = |c: &std::path::Path, origin: String| match open_matching(c, cv) {
                    Ok(p) => Some((ModuleSymbols::Pdb(Box::new(p)), origin)),
                    Err(Refused::Mismatch(m)) => {
                        refused.get_or_insert(m);
                        None
                    }
                    Err(Refused::Unreadable) => None,
                };
                for c in candidates.iter().filter(|c| c.is_file()) {
                    if let Some(found) = take(c, c.display().to_string()) {
                        return found;
                    }
                }
                // Then the symbol servers, PDB first (WinDbg's order), then a Breakpad .sym.
                for (url, cache) in self.path.servers() {
                    if self.unreachable.borrow().iter().any(|u| u == url) {
                        continue;
                    }
                    let cache = cache
                        .map(PathBuf::from)
                        .unwrap_or_else(sympath::default_cache);
                    let fetched = server::fetch(url, &cache, &file, &id);
                    if let Err(server::FetchError::Unreachable(_)) = &fetched {
                        self.unreachable.borrow_mut().push(url.to_string());
                    }
                    if let Ok(path) = fetched {
                        if let Some(found) = take(&path, format!("{} (from {url})", path.display()))
                        {
                            return found;
                        }
                    }
                }
                if let Some(found) = refused.and_then(|m| self.refuse_or_force(index, m)) {
                    return found;
                }
                let sym = match file.rfind('.') {
                    Some(i) => format!("{}.sym", &file[..i]),
                    None => format!("{file}.sym"),
                };
                for c in self
                    .path
                    .local_candidates(&file, &id)
                    .into_iter()
                    .map(|p| p.with_file_name(&sym))
                {
                    if let Ok(b) = BreakpadSymbols::open(&c) {
                        return (
                            ModuleSymbols::Breakpad(Box::new(b), c.display().to_string()),
                            c.display().to_string(),
                        );
                    }
                }
            }
        }
        if let Some(e) = exports::read_exports(target.memory(), m.base).filter(|e| !e.is_empty()) {
            return (ModuleSymbols::Export(e), "exports in dump memory".into());
        }
        match self
            .image_file(target, index)
            .and_then(exports::read_exports_file)
        {
            Some(e) if !e.is_empty() => (
                ModuleSymbols::Export(e),
                "exports of the image file on the symbol path".into(),
            ),
            _ => (ModuleSymbols::None, String::new()),
        }
    }

    /// The sections of module `index`: from the image headers in dump memory, else the image
    /// file on the symbol path, else the section-header stream of its PDB (a minidump carries
    /// neither headers nor code of most modules). None when no source has them.
    pub fn sections(&self, target: &dyn Target, index: usize) -> Option<&Sections> {
        self.sections
            .get(index)?
            .get_or_init(|| {
                let m = target.modules().get(index)?;
                if let Some(h) = dumpdiag_os::pe::read_headers(target.memory(), m.base)
                    .filter(|h| !h.sections.is_empty())
                {
                    return Some(Sections {
                        spans: h
                            .sections
                            .iter()
                            .map(|s| {
                                let size = s.virtual_size.max(s.raw_size);
                                (s.virtual_address, size, s.characteristics)
                            })
                            .collect(),
                        source: SectionSource::Dump,
                    });
                }
                if let Some(img) = self.image_file(target, index) {
                    let spans = img.section_spans();
                    if !spans.is_empty() {
                        return Some(Sections {
                            spans,
                            source: SectionSource::ImageFile,
                        });
                    }
                }
                match self.module(target, index)? {
                    ModuleSymbols::Pdb(p) if !p.sections.is_empty() => Some(Sections {
                        spans: p.sections.clone(),
                        source: SectionSource::Pdb,
                    }),
                    _ => None,
                }
            })
            .as_ref()
    }

    /// `n` code bytes at `addr`: from dump memory, else from the module's image file on the
    /// symbol path. Shorter (possibly empty) when neither holds them.
    pub fn code_bytes(&self, target: &dyn Target, addr: u64, n: usize) -> Vec<u8> {
        let b = dumpdiag_target::MemoryExt::read_bytes(target.memory(), addr, n);
        if b.len() == n {
            return b;
        }
        let Some(index) = target.modules().iter().position(|m| m.contains(addr)) else {
            return b;
        };
        let rva = (addr - target.modules()[index].base) as u32;
        match self
            .image_file(target, index)
            .and_then(|i| i.at_rva(rva, n))
        {
            Some(f) if f.len() == n => f.to_vec(),
            _ => b,
        }
    }

    /// Is `addr` data by its symbols: a PDB global or static variable with no procedure
    /// covering it?
    pub fn is_data(&self, target: &dyn Target, addr: u64) -> bool {
        let Some(index) = target.modules().iter().position(|m| m.contains(addr)) else {
            return false;
        };
        let rva = addr - target.modules()[index].base;
        match self.module(target, index) {
            Some(ModuleSymbols::Pdb(p)) => {
                let Ok(rva) = u32::try_from(rva) else {
                    return false;
                };
                !p.in_function(rva)
                    && p.global_at(rva)
                        .is_some_and(|g| (rva - g.0) as u64 <= MAX_DATA_DISPLACEMENT)
            }
            _ => false,
        }
    }

    /// The size of the parameters the function at `addr` pops or leaves for its caller (x86):
    /// its frame data, else its Breakpad FUNC/PUBLIC record. None when unknown.
    pub fn parameter_size(&self, target: &dyn Target, addr: u64) -> Option<u32> {
        let index = target.modules().iter().position(|m| m.contains(addr))?;
        let rva = addr - target.modules()[index].base;
        match self.module(target, index)? {
            ModuleSymbols::Breakpad(b, _) => b.parameter_size(rva),
            ModuleSymbols::Pdb(p) => p.frame_data_at(rva).map(|w| w.parameter_size),
            _ => None,
        }
    }

    /// The module's image file from the symbol path (symbol-store id: TimeDateStamp as 8 hex
    /// digits, then SizeOfImage), checked against the dump's module record.
    pub fn image_file(
        &self,
        target: &dyn Target,
        index: usize,
    ) -> Option<&dumpdiag_os::pe::FileImage> {
        self.images
            .get(index)?
            .get_or_init(|| {
                let m = &target.modules()[index];
                let name = m.file_name().to_string();
                let id = format!("{:08X}{:x}", m.time_date_stamp, m.size);
                let matches = |img: &dumpdiag_os::pe::FileImage| {
                    img.headers.time_date_stamp == m.time_date_stamp
                        && img.headers.size_of_image == m.size
                };
                for c in self.path.local_candidates(&name, &id) {
                    if let Some(img) = std::fs::read(&c)
                        .ok()
                        .and_then(dumpdiag_os::pe::FileImage::parse)
                        .filter(matches)
                    {
                        return Some(img);
                    }
                }
                for (url, cache) in self.path.servers() {
                    if self.unreachable.borrow().iter().any(|u| u == url) {
                        continue;
                    }
                    let cache = cache
                        .map(PathBuf::from)
                        .unwrap_or_else(sympath::default_cache);
                    match server::fetch(url, &cache, &name, &id) {
                        Ok(p) => {
                            if let Some(img) = std::fs::read(&p)
                                .ok()
                                .and_then(dumpdiag_os::pe::FileImage::parse)
                                .filter(matches)
                            {
                                return Some(img);
                            }
                        }
                        Err(server::FetchError::Unreachable(_)) => {
                            self.unreachable.borrow_mut().push(url.to_string())
                        }
                        Err(_) => {}
                    }
                }
                None
            })
            .as_ref()
    }

    /// Parameters and locals of the function at `addr`, with values read for a frame whose
    /// registers `reg` answers (CodeView register numbers). None without a PDB.
    pub fn variables(
        &self,
        target: &dyn Target,
        addr: u64,
        reg: &dyn Fn(u16) -> Option<u64>,
    ) -> Option<Vec<locals::Variable>> {
        let index = target.modules().iter().position(|m| m.contains(addr))?;
        let ModuleSymbols::Pdb(p) = self.module(target, index)? else {
            return None;
        };
        let m = &target.modules()[index];
        let ptr = match dumpdiag_os::pe::read_headers(target.memory(), m.base) {
            Some(h) if h.magic == 0x10b => 4,
            Some(_) => 8,
            None => target.facts().pointer_size(),
        };
        let mem = target.memory();
        let read = |a: u64, n: usize| dumpdiag_target::MemoryExt::read_bytes(mem, a, n);
        // The PDB is read again here, through the same reader that can panic on a bad file.
        contain::contain(|| {
            locals::frame_variables(
                std::path::Path::new(&p.path),
                (addr - m.base) as u32,
                ptr,
                reg,
                &read,
            )
        })
        .ok()?
        .ok()
    }

    /// The PDB type records of module `index` (loading its symbols first); None without a PDB.
    pub fn types(&self, target: &dyn Target, index: usize) -> Option<&types::PdbTypes> {
        match self.module(target, index)? {
            ModuleSymbols::Pdb(p) => p.types(),
            _ => None,
        }
    }

    /// Symbolize an address.
    pub fn lookup(&self, target: &dyn Target, addr: u64) -> Option<Symbol> {
        let index = target.modules().iter().position(|m| m.contains(addr))?;
        let m = &target.modules()[index];
        let rva = addr - m.base;
        let base = Symbol {
            module_index: index,
            function: String::new(),
            displacement: rva,
            function_start: m.base,
            source: None,
            inlined: Vec::new(),
            kind: SymbolKind::None,
        };
        match self.module(target, index)? {
            ModuleSymbols::Pdb(p) => {
                let Some(f) = p.find(u32::try_from(rva).ok()?) else {
                    // Not code: a global or static variable?
                    let (start, name) = p
                        .global_at(rva as u32)
                        .filter(|g| rva - g.0 as u64 <= MAX_DATA_DISPLACEMENT)?;
                    return Some(Symbol {
                        function: name.clone(),
                        displacement: rva - *start as u64,
                        function_start: m.base + *start as u64,
                        kind: SymbolKind::Pdb,
                        ..base
                    });
                };
                let mut frames = f.frames;
                let (function, file, line) = frames.pop()?;
                let start = m.base + f.start_rva as u64;
                // The source line of the address belongs to the innermost inline frame.
                let innermost_source = frames.first().and_then(|fr| Some((fr.1.clone()?, fr.2?)));
                let source = innermost_source.or_else(|| Some((file?, line?)));
                let inlined = frames
                    .into_iter()
                    .map(|(name, file, line)| (name, file.zip(line)))
                    .collect();
                Some(Symbol {
                    function,
                    displacement: addr - start,
                    function_start: start,
                    source,
                    inlined,
                    kind: SymbolKind::Pdb,
                    ..base
                })
            }
            ModuleSymbols::Breakpad(b, _) => {
                let (name, off, source, _) = b.lookup(rva)?;
                Some(Symbol {
                    function: pdb::demangle(&name),
                    displacement: off,
                    function_start: addr - off,
                    source,
                    kind: SymbolKind::Breakpad,
                    ..base
                })
            }
            ModuleSymbols::Export(e) => {
                let i = e.partition_point(|x| x.0 as u64 <= rva);
                let (start, name) = e.get(i.checked_sub(1)?)?;
                Some(Symbol {
                    function: name.clone(),
                    displacement: rva - *start as u64,
                    function_start: m.base + *start as u64,
                    kind: SymbolKind::Export,
                    ..base
                })
            }
            ModuleSymbols::None => None,
        }
    }

    /// `module!function+0xoff` (or `module+0xoff` without a symbol), as `k` and `ln` print.
    pub fn describe(&self, target: &dyn Target, addr: u64) -> Option<String> {
        let m = target.module_at(addr)?;
        Some(match self.lookup(target, addr) {
            Some(s) if s.displacement == 0 => format!("{}!{}", m.short_name(), s.function),
            Some(s) => format!("{}!{}+{:#x}", m.short_name(), s.function, s.displacement),
            None => format!("{}+{:#x}", m.short_name(), addr - m.base),
        })
    }

    /// Every symbol of the modules matching `module` whose name matches `pattern` (wildcards).
    pub fn search(
        &self,
        target: &dyn Target,
        module: &str,
        pattern: &str,
        matches: &dyn Fn(&str, &str) -> bool,
    ) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        for (i, m) in target.modules().iter().enumerate() {
            if !matches(module, &m.short_name()) {
                continue;
            }
            let prefix = m.short_name();
            let mut push = |rva: u64, name: &str| {
                if matches(pattern, name) {
                    // A Breakpad address is any 64-bit number: it wraps as an address.
                    out.push((m.base.wrapping_add(rva), format!("{prefix}!{name}")));
                }
            };
            match self.module(target, i) {
                Some(ModuleSymbols::Pdb(p)) => {
                    p.functions()
                        .iter()
                        .for_each(|(rva, n)| push(*rva as u64, n));
                    p.globals.iter().for_each(|(rva, n)| push(*rva as u64, n));
                }
                Some(ModuleSymbols::Breakpad(b, _)) => b.symbols().for_each(|(a, n)| push(a, n)),
                Some(ModuleSymbols::Export(e)) => {
                    e.iter().for_each(|(rva, n)| push(*rva as u64, n))
                }
                _ => {}
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Address of `module!name` (exact name).
    pub fn resolve(&self, target: &dyn Target, qualified: &str) -> Option<u64> {
        let (module, name) = qualified.split_once('!')?;
        let eq = |p: &str, t: &str| p.eq_ignore_ascii_case(t);
        self.search(target, module, name, &eq).first().map(|x| x.0)
    }
}
