//! Type commands: `dt` (a type's layout, or memory read as that type; a global; a local of the
//! selected frame; wildcards list types) and `??` (C++ expressions over typed values). Types
//! come from the modules' PDBs, or from the built-in layouts of ntdll's structures
//! ([`crate::typed::builtins`]) when ntdll's PDB is not loaded, for the effective machine.

use std::fmt::Write;

use dumpdiag_os::types::{wildcard_match, Def, Ty, TypeSource};
use dumpdiag_symbols::SymbolKind;
use dumpdiag_target::MemoryExt;

use crate::registry::{Command, Invocation};
use crate::typed::{self, FieldPath, Printer, Src, MAX_DEPTH};
use crate::{CommandError, Session};

pub(crate) const COMMANDS: &[Command] = &[
    Command {
        names: &["dt"],
        usage: "dt [-r[N]] [-v] [-o] [-a[N]] [module!]Type|var [field[.sub]] [address]",
        help: "A type's members (from the PDB, or built-in layouts of ntdll's structures), or \
               memory, a global or a local of the selected frame read as one; -r expands \
               embedded structures and pointed-to ones N levels; module!*Pat* lists types.",
        family: None,
        arguments: &["-r", "-r1", "-r2", "-v", "-o", "-a"],
        run: dt,
    },
    Command {
        names: &["??"],
        usage: "?? expression",
        help: "Evaluate a C++ expression over typed values (members . and ->, *, &, [i], \
               casts, sizeof, arithmetic, comparisons) and print it with its type.",
        family: None,
        arguments: &[],
        run: crate::cexpr::run,
    },
];

/// What `dt` was asked.
#[derive(Default)]
struct DtArgs {
    name: Option<String>,
    fields: Vec<FieldPath>,
    address: Option<String>,
    depth: u32,
    verbose: bool,
    no_offsets: bool,
    arrays: Option<u64>,
    prefix: bool,
}

/// Does a `dt` argument after the name read as an address rather than a field? WinDbg takes
/// every all-hex word as an address (`-n` says otherwise).
fn looks_like_address(word: &str) -> bool {
    word.starts_with(['@', '$', '('])
        || word.starts_with(|c: char| c.is_ascii_digit())
        || word.contains(['(', '+', '-', '*', '`', '!'])
        || word.chars().all(|c| c.is_ascii_hexdigit())
}

fn parse_dt(inv: &Invocation) -> Result<DtArgs, CommandError> {
    let mut a = DtArgs::default();
    let mut next_is_name = false;
    for word in inv.args.split_whitespace() {
        if !next_is_name && word.starts_with('-') && word.len() > 1 {
            let opt = &word[1..];
            let digits = |s: &str| -> Result<Option<u64>, CommandError> {
                if s.is_empty() {
                    Ok(None)
                } else {
                    s.parse().map(Some).map_err(|_| inv.syntax_error())
                }
            };
            match opt.chars().next() {
                Some('r') => {
                    a.depth =
                        digits(&opt[1..])?.map_or(MAX_DEPTH, |d| d.min(MAX_DEPTH as u64) as u32)
                }
                Some('b') => a.depth = MAX_DEPTH,
                Some('a') => a.arrays = Some(digits(&opt[1..])?.unwrap_or(u64::MAX)),
                Some('v') => a.verbose = true,
                Some('o') => a.no_offsets = true,
                Some('n') => next_is_name = true,
                Some('y') => a.prefix = true,
                Some('c' | 'i' | 'e' | 't') => {}
                Some('l') => {
                    return Err(CommandError::Usage(
                        "dt -l (walking a linked list) is not supported; show each entry with \
                         dt Type address"
                            .into(),
                    ))
                }
                Some('p') => {
                    return Err(CommandError::Usage(
                        "dt -p: a process dump has no physical addresses".into(),
                    ))
                }
                _ => return Err(inv.syntax_error()),
            }
            continue;
        }
        if a.name.is_none() {
            if !next_is_name && looks_like_address(word) && !word.contains('!') {
                return Err(CommandError::Usage(
                    "dt address: name the type too, as in dt module!Type address".into(),
                ));
            }
            a.name = Some(word.to_string());
            next_is_name = false;
        } else if !next_is_name && looks_like_address(word) {
            if a.address.is_some() {
                return Err(inv.syntax_error());
            }
            a.address = Some(word.to_string());
        } else {
            a.fields.push(FieldPath::parse(word));
            next_is_name = false;
        }
    }
    Ok(a)
}

/// The module a `module!` prefix names (WinDbg's short name, without case).
pub(crate) fn module_index(s: &Session, name: &str) -> Option<usize> {
    s.target()
        .modules()
        .iter()
        .position(|m| m.short_name().eq_ignore_ascii_case(name))
}

/// Is `module` a name ntdll goes by (`ntdll`, or the 32-bit one of a WOW64 process,
/// `ntdll_77a50000`)?
fn is_ntdll(module: &str) -> bool {
    let m = module.to_ascii_lowercase();
    m == "ntdll" || m.starts_with("ntdll_")
}

/// The type `[module!]name` names: a module's PDB type, or a built-in one for ntdll's
/// structures when no loaded PDB of the view's bitness has it. Without a module, the modules
/// whose symbols are loaded are asked first, then (for a structure the built-in tables know)
/// ntdll and the tables, and only then every other module, so that `dt _TEB` does not load
/// every module's symbols.
pub(crate) fn find_type(s: &Session, module: Option<&str>, name: &str) -> Option<(Src, u32)> {
    let ptr = s.ptr();
    let modules = s.target().modules();
    let builtin = || {
        typed::builtins(ptr)
            .find(name)
            .map(|i| (Src::Builtin(ptr), i))
    };
    let in_module = |i: usize| -> Option<(Src, u32)> {
        let t = s.symbols().types(s.target(), i)?;
        // An ntdll PDB of the other bitness (the 64-bit ntdll of a WOW64 process in the x86
        // view) does not describe this view's structures.
        if is_ntdll(&modules[i].short_name()) && t.pointer_size() != ptr {
            return None;
        }
        Some((Src::Module(i), t.find(name)?))
    };
    let named = |m: &str| {
        let m = m.to_string();
        (0..modules.len()).filter(move |&i| modules[i].short_name().eq_ignore_ascii_case(&m))
    };
    match module {
        Some(m) => named(m)
            .find_map(in_module)
            .or_else(|| is_ntdll(m).then(builtin).flatten()),
        None => {
            let loaded = |i: &usize| s.symbols().state(*i) != SymbolKind::Deferred;
            (0..modules.len())
                .filter(loaded)
                .find_map(in_module)
                .or_else(|| {
                    builtin()?;
                    named("ntdll").find_map(in_module).or_else(builtin)
                })
                .or_else(|| {
                    (0..modules.len())
                        .filter(|i| !loaded(i))
                        .find_map(in_module)
                })
        }
    }
}

/// A global or static variable `[module!]name`: (source, its type, its address).
pub(crate) fn find_global(s: &Session, module: Option<&str>, name: &str) -> Option<(Src, Ty, u64)> {
    let in_module = |i: usize| -> Option<(Src, Ty, u64)> {
        let t = s.symbols().types(s.target(), i)?;
        let g = t.global(name)?;
        let base = s.target().modules().get(i)?.base;
        Some((
            Src::Module(i),
            t.ty(g.type_index),
            base.wrapping_add(g.rva as u64),
        ))
    };
    let n = s.target().modules().len();
    match module {
        Some(m) => in_module(module_index(s, m)?),
        // Modules whose symbols are loaded first, as for types.
        None => {
            let loaded = |i: &usize| s.symbols().state(*i) != SymbolKind::Deferred;
            (0..n)
                .filter(loaded)
                .find_map(in_module)
                .or_else(|| (0..n).filter(|i| !loaded(i)).find_map(in_module))
        }
    }
}

fn not_found(name: &str) -> CommandError {
    CommandError::NotFound(format!("Symbol {name} not found."))
}

fn dt(s: &mut Session, inv: &Invocation) -> Result<String, CommandError> {
    let a = parse_dt(inv)?;
    let Some(full) = a.name.clone() else {
        return Err(CommandError::Usage(
            "Usage: dt [-r[N]] [-v] [module!]Type|variable [field] [address]".into(),
        ));
    };
    let (module, name) = match full.split_once('!') {
        Some((m, n)) => (Some(m), n),
        None => (None, full.as_str()),
    };
    if a.prefix || name.contains(['*', '?']) {
        let pattern = if a.prefix && !name.ends_with('*') {
            format!("{name}*")
        } else {
            name.to_string()
        };
        return list_types(s, module.unwrap_or("*"), &pattern);
    }
    let address = match &a.address {
        Some(e) => Some(s.eval(e)?),
        None => None,
    };
    let mut out = String::new();
    // A local of the selected frame (unqualified names only), then a type, then a global.
    if module.is_none() && address.is_none() {
        if let Some((m, ty, at)) = typed::frame_local(s, name)? {
            let src = Src::Module(m);
            let ts = typed::source(s, src).ok_or_else(|| not_found(name))?;
            // WinDbg names the type without its struct/class keyword: `stackTestClass*`.
            let type_name = typed::c_name(ts, &ty).replace(" *", "*");
            let type_name = ["struct ", "class ", "union "]
                .iter()
                .fold(type_name, |t, k| t.replace(k, ""));
            let _ = writeln!(out, "Local var @ {at:#x} Type {type_name}");
            variable(s, ts, &ty, at, &a, &mut out);
            return Ok(out);
        }
    }
    if let Some((src, index)) = find_type(s, module, name) {
        let ts = typed::source(s, src).ok_or_else(|| not_found(name))?;
        let def = ts.def(index).ok_or_else(|| not_found(name))?;
        if module.is_none() || matches!(src, Src::Builtin(_)) {
            let facts = s.target().facts();
            let note = match src {
                Src::Builtin(_) if facts.os_major != 0 && facts.os_major < 10 => format!(
                    " (built-in layout of Windows 10's: ntdll's PDB is not loaded; this dump is \
                     of Windows {}.{}, whose members past the long-stable ones may lie elsewhere)",
                    facts.os_major, facts.os_minor
                ),
                Src::Builtin(_) => {
                    " (built-in layout of Windows 10's: ntdll's PDB is not loaded)".to_string()
                }
                Src::Module(_) => String::new(),
            };
            let _ = writeln!(out, "{}!{}{note}", typed::module_name(s, src), def.name());
        }
        if let Some(at) = address {
            if s.target().memory().read_u8(at).is_none() {
                return Err(CommandError::MemoryAccess {
                    address: s.addr(at),
                });
            }
        }
        type_lines(ts, &def, address, &a, s, &mut out);
        return Ok(out);
    }
    if let Some((src, ty, at)) = find_global(s, module, name) {
        let ts = typed::source(s, src).ok_or_else(|| not_found(name))?;
        variable(s, ts, &ty, address.unwrap_or(at), &a, &mut out);
        return Ok(out);
    }
    // The module's PDB may be on the path but another build's: say how to use it anyway.
    if let Some(m) = module.filter(|m| {
        module_index(s, m).is_some_and(|i| s.symbols().pdb_mismatch(i).is_some_and(|mm| !mm.loaded))
    }) {
        return Err(CommandError::NotFound(format!(
            "Symbol {full} not found. The PDB found for {m} belongs to another build (!lmi {m}); \
             .reload /i {m} reads its types anyway."
        )));
    }
    Err(not_found(&full))
}

/// A type's lines: a record's members (values when at an address), an enum's values.
fn type_lines(
    ts: &dyn TypeSource,
    def: &Def,
    address: Option<u64>,
    a: &DtArgs,
    s: &Session,
    out: &mut String,
) {
    match def {
        Def::Record(r) => {
            if a.verbose {
                let _ = writeln!(
                    out,
                    "{} {}, {} elements, {:#x} bytes",
                    r.kind.keyword(),
                    r.name,
                    r.fields.len(),
                    r.size
                );
            }
            let mut p = printer(ts, s, a);
            p.record(out, r, address, 3, a.depth, &a.fields);
            truncation_note(&p, out);
        }
        Def::Enum(e) => match address {
            Some(at) => {
                let p = printer(ts, s, a);
                let _ = writeln!(
                    out,
                    "{}",
                    p.value_text(&Ty::Named(index_of(ts, e)), at, None)
                );
            }
            None => {
                for (n, v) in &e.values {
                    let _ = writeln!(out, "   {n} = 0n{v}");
                }
            }
        },
        Def::Opaque(n) => {
            let _ = writeln!(out, "{n}: the PDB declares it but holds no definition");
        }
    }
}

/// The index of an enum in its source (for printing a value of it).
fn index_of(ts: &dyn TypeSource, e: &dumpdiag_os::types::Enum) -> u32 {
    ts.find(&e.name).unwrap_or(u32::MAX)
}

fn printer<'a>(ts: &'a dyn TypeSource, s: &'a Session, a: &DtArgs) -> Printer<'a> {
    let mut p = Printer::new(ts, s.target().memory());
    p.no_offsets = a.no_offsets;
    p.array_elements = a.arrays;
    p
}

fn truncation_note(p: &Printer, out: &mut String) {
    if p.truncated() {
        let _ = writeln!(
            out,
            "... (output cut at {} lines; ask for less depth or one field)",
            typed::MAX_LINES
        );
    }
}

/// A variable of type `ty` at `at`: its value, and the members of the record it is or points
/// to.
fn variable(s: &Session, ts: &dyn TypeSource, ty: &Ty, at: u64, a: &DtArgs, out: &mut String) {
    let mut p = printer(ts, s, a);
    let record = |i: &u32| match ts.def(*i) {
        Some(Def::Record(r)) => Some(r),
        _ => None,
    };
    match ty {
        Ty::Named(i) if record(i).is_some() => {
            let r = record(i).expect("checked");
            p.record(out, &r, Some(at), 3, a.depth, &a.fields);
        }
        Ty::Ptr { to, size, .. } => {
            let v = s.target().memory().read_ptr(at, *size as u64);
            let _ = match v {
                Some(v) => writeln!(out, "{} ", typed::pointer_text(v, *size as u64)),
                None => writeln!(out, "??"),
            };
            if let (Some(v), Ty::Named(i)) = (v, to.as_ref()) {
                if let Some(r) = record(i).filter(|_| v != 0) {
                    p.record(out, &r, Some(v), 3, a.depth, &a.fields);
                }
            }
        }
        other => {
            let _ = writeln!(out, "{}", p.value_text(other, at, None));
            // -a lists an array's elements (and -r what they hold).
            if a.arrays.is_some() {
                p.below(out, other, Some(at), 3, a.depth);
            }
        }
    }
    truncation_note(&p, out);
}

/// `dt module!Pat*`: the types (and typed globals) whose names match, one per line.
fn list_types(s: &Session, module: &str, pattern: &str) -> Result<String, CommandError> {
    let mut out = String::new();
    let mut ntdll_pdb = false;
    let mut count = 0usize;
    let mut seen = std::collections::HashSet::new();
    for (i, m) in s.target().modules().iter().enumerate() {
        let short = m.short_name();
        // A WOW64 dump lists the image twice: list its types once.
        if !wildcard_match(module, &short) || !seen.insert((m.base, short.clone())) {
            continue;
        }
        let Some(t) = s.symbols().types(s.target(), i) else {
            continue;
        };
        if is_ntdll(&short) && t.pointer_size() == s.ptr() {
            ntdll_pdb = true;
        }
        for (name, _) in t.names() {
            if wildcard_match(pattern, &name) && count < typed::MAX_LINES {
                let _ = writeln!(out, "          {short}!{name}");
                count += 1;
            }
        }
        for (name, _) in t.globals_matching(&|n| wildcard_match(pattern, n)) {
            if count < typed::MAX_LINES {
                let _ = writeln!(out, "          {short}!{name}");
                count += 1;
            }
        }
    }
    if !ntdll_pdb && wildcard_match(module, "ntdll") {
        for (name, _) in typed::builtins(s.ptr()).names() {
            if wildcard_match(pattern, &name) {
                let _ = writeln!(out, "          ntdll!{name} (built-in)");
                count += 1;
            }
        }
    }
    if count == 0 {
        return Err(CommandError::NotFound(format!(
            "No types or globals match {module}!{pattern}"
        )));
    }
    Ok(out)
}
