//! Symbol commands: `ln`, `x`, `.reload`, `.symfix`, `.sympath`, `!lmi`, `!dh`.

use std::fmt::Write;

use crate::cmd_modules::wildcard;
use crate::format;
use crate::registry::{Command, Invocation};
use crate::{CommandError, Session};
use dumpdiag_os::pe;
use dumpdiag_symbols::{sympath, SymbolPath};

pub(crate) const COMMANDS: &[Command] = &[
    Command {
        names: &["ln"],
        usage: "ln [address]",
        help: "The symbol nearest an address (default: the instruction pointer).",
        family: None,
        arguments: &[],
        run: ln,
    },
    Command {
        names: &["x"],
        usage: "x [module!]pattern",
        help: "Symbols whose names match a wildcard pattern, with their addresses.",
        family: None,
        arguments: &[],
        run: x,
    },
    Command {
        names: &[".reload"],
        usage: ".reload [/f] [/i] [module]",
        help: "Forget loaded symbols (of one module) and load them again from the symbol path: \
               /f now, /i taking a mismatched PDB when no matching one is found.",
        family: None,
        arguments: &["/f", "/i"],
        run: reload,
    },
    Command {
        names: &[".sympath", ".sympath+"],
        usage: ".sympath[+] [path]",
        help: "Show or set the symbol path (+ appends).",
        family: None,
        arguments: &[],
        run: sympath_command,
    },
    Command {
        names: &[".symfix", ".symfix+"],
        usage: ".symfix[+] [cache]",
        help: "Use Microsoft's symbol server through a local cache (+ appends).",
        family: None,
        arguments: &[],
        run: symfix,
    },
    Command {
        names: &["!lmi"],
        usage: "!lmi module",
        help: "A module's image and symbol facts, and where its symbols came from.",
        family: None,
        arguments: &[],
        run: lmi,
    },
    Command {
        names: &["!dh"],
        usage: "!dh module|address",
        help: "The PE headers of a module: file and optional header, directories, sections.",
        family: None,
        arguments: &[],
        run: dh,
    },
];

/// Whether a `.sympath+`/`.symfix+` spelling appends to the path.
fn appends(inv: &Invocation) -> bool {
    inv.verb.ends_with('+')
}

fn sympath_command(s: &mut Session, inv: &Invocation) -> Result<String, CommandError> {
    if !inv.args.is_empty() {
        let new = if appends(inv) && !s.sympath.is_empty() {
            format!("{};{}", s.sympath, inv.args)
        } else {
            inv.args.to_string()
        };
        s.set_symbol_path(&new);
    }
    Ok(format!(
        "Symbol search path is: {}\nExpanded Symbol search path is: {}\n",
        s.sympath,
        s.sympath.to_ascii_lowercase()
    ))
}

fn ln(s: &mut Session, inv: &Invocation) -> Result<String, CommandError> {
    let a = if inv.args.is_empty() {
        let ip = s.context().map(|c| c.ip());
        ip.ok_or_else(|| CommandError::Usage("Missing address".into()))?
    } else {
        s.eval(inv.args)?
    };
    let t = s.target();
    let Some(sym) = s.symbols().lookup(t, a) else {
        return Ok(match t.module_at(a) {
            Some(m) => format!(
                "({})   {}+{:#x}\n",
                s.addr(m.base),
                m.short_name(),
                a - m.base
            ),
            None => String::new(),
        });
    };
    let m = &t.modules()[sym.module_index];
    let src = sym
        .source
        .as_ref()
        .map(|(f, l)| format!("[{f} @ {l}] "))
        .unwrap_or_default();
    let mut o = format!(
        "{src}({})   {}!{}+{:#x}\n",
        s.addr(sym.function_start),
        m.short_name(),
        sym.function,
        sym.displacement
    );
    if sym.displacement == 0 {
        o = format!(
            "{src}({})   {}!{}\nExact matches:\n    {}!{}\n",
            s.addr(sym.function_start),
            m.short_name(),
            sym.function,
            m.short_name(),
            sym.function
        );
    }
    Ok(o)
}

fn x(s: &mut Session, inv: &Invocation) -> Result<String, CommandError> {
    let arg = inv
        .args
        .split_whitespace()
        .last()
        .ok_or_else(|| CommandError::Usage("Usage: x module!pattern".into()))?;
    let (module, pattern) = arg.split_once('!').unwrap_or(("*", arg));
    let hits = s.symbols().search(s.target(), module, pattern, &wildcard);
    let mut o = String::new();
    for (a, name) in hits.iter().take(10_000) {
        let _ = writeln!(o, "{} {name}", s.addr(*a));
    }
    Ok(o)
}

/// The `lm` column for a module's symbols: their kind, where they came from, and a PDB of the
/// module's name from another build or link (refused, or loaded by `.reload /i`).
pub(crate) fn symbol_column(s: &Session, index: usize) -> String {
    let symbols = s.symbols();
    let label = symbols.state(index).windbg_label();
    let origin = symbols.origin(index).filter(|o| !o.is_empty());
    match (symbols.pdb_mismatch(index), origin) {
        // WinDbg's M: symbols loaded although they do not match the image.
        (Some(m), _) if m.loaded => format!("M {label:<22} {} - mismatched pdb", m.path),
        (Some(m), Some(origin)) => {
            format!("{label:<22} {origin}; mismatched pdb refused: {}", m.path)
        }
        (Some(m), None) => format!("{label:<22} mismatched pdb refused: {}", m.path),
        (None, Some(origin)) => format!("{label:<22} {origin}"),
        (None, None) => label.to_string(),
    }
}

/// The module a `.reload`/`!lmi` argument names: its short name or its file name.
fn module_named(s: &Session, name: &str) -> Option<usize> {
    s.target().modules().iter().position(|m| {
        m.short_name().eq_ignore_ascii_case(name) || m.file_name().eq_ignore_ascii_case(name)
    })
}

/// `.reload [/f] [/i] [module]`: forget symbols and load them again from the symbol path; /i
/// (which implies /f) takes a PDB of the module's name even from another build or link, when
/// no matching one is found, and warns that it did.
fn reload(s: &mut Session, inv: &Invocation) -> Result<String, CommandError> {
    let (mut force, mut ignore_mismatch, mut module) = (false, false, None);
    for w in inv.args.split_whitespace() {
        match w.to_ascii_lowercase().as_str() {
            "/f" => force = true,
            "/i" => ignore_mismatch = true,
            "/d" | "/s" | "/user" => {}
            o if o.starts_with('/') => return Err(inv.syntax_error()),
            _ if module.is_some() => return Err(inv.syntax_error()),
            _ => {
                // `.reload name=base,size` names a module at an address: only the name counts.
                let name = w.split('=').next().unwrap_or(w);
                module = Some(module_named(s, name).ok_or_else(|| {
                    CommandError::NotFound(format!("Unable to find module '{name}'"))
                })?);
            }
        }
    }
    let indices: Vec<usize> = match module {
        Some(i) => {
            s.symbols.reload_module(i, ignore_mismatch);
            vec![i]
        }
        None => {
            s.reload_symbols();
            let n = s.target().modules().len();
            if ignore_mismatch {
                (0..n).for_each(|i| s.symbols.reload_module(i, true));
            }
            (0..n).collect()
        }
    };
    if !force && !ignore_mismatch {
        return Ok(if module.is_some() {
            String::new()
        } else {
            "Reloading current modules\n".into()
        });
    }
    // Load now instead of on first use, and say what each module got.
    let mut o = String::new();
    for i in indices {
        let _ = s.symbols().module(s.target(), i);
        let m = &s.target().modules()[i];
        if let Some(mm) = s.symbols().pdb_mismatch(i).filter(|mm| mm.loaded) {
            let _ = writeln!(
                o,
                "*** WARNING: {}: symbols loaded from a mismatched pdb ({}, the image expects \
                 {}: {}); names and lines may be wrong",
                m.file_name(),
                mm.found,
                mm.expected,
                mm.reason
            );
        }
        let _ = writeln!(o, "{:<12} {}", m.short_name(), symbol_column(s, i));
    }
    Ok(o)
}

fn symfix(s: &mut Session, inv: &Invocation) -> Result<String, CommandError> {
    let cache = inv.args;
    let cache = if cache.is_empty() {
        sympath::default_cache().display().to_string()
    } else {
        cache.to_string()
    };
    let element = format!("srv*{cache}*https://msdl.microsoft.com/download/symbols");
    let new = if appends(inv) && !s.sympath.is_empty() {
        format!("{};{element}", s.sympath)
    } else {
        element
    };
    s.set_symbol_path(&new);
    Ok(format!("Symbol search path is: {new}\n"))
}

fn lmi(s: &mut Session, inv: &Invocation) -> Result<String, CommandError> {
    let name = inv.args;
    let t = s.target();
    let (i, m) = t
        .modules()
        .iter()
        .enumerate()
        .find(|(_, m)| {
            m.short_name().eq_ignore_ascii_case(name)
                || s.eval(name).ok().is_some_and(|a| m.contains(a))
        })
        .ok_or_else(|| CommandError::NotFound(format!("{name} not found")))?;
    let _ = s.symbols().module(t, i);
    let mut o = format!("Loaded Module Info: [{name}]\n");
    let _ = writeln!(o, "         Module: {}", m.short_name());
    let _ = writeln!(o, "   Base Address: {}", s.addr(m.base));
    let _ = writeln!(o, "     Image Name: {}", m.path);
    if let Some(h) = pe::read_headers(t.memory(), m.base) {
        let _ = writeln!(
            o,
            "   Machine Type: {} ({})",
            h.machine,
            match h.machine {
                0x14c => "I386",
                0x8664 => "X64",
                0xaa64 => "ARM64",
                _ => "unknown",
            }
        );
    }
    let _ = writeln!(
        o,
        "     Time Stamp: {:x} {}",
        m.time_date_stamp,
        format::short_time(m.time_date_stamp as i64)
    );
    let _ = writeln!(o, "           Size: {:x}", m.size);
    let _ = writeln!(o, "       CheckSum: {:x}", m.checksum);
    if let Some(cv) = &m.codeview {
        let _ = writeln!(
            o,
            "Debug Data Dirs: Type  CODEVIEW - {} {}",
            cv.pdb_name().unwrap_or(""),
            cv.pdb_id().unwrap_or_default()
        );
    }
    o.push_str(&load_report(s, i));
    Ok(o)
}

/// `!lmi`'s Symbol Type and Load Report lines, in dbghelp's words, with a mismatched PDB (refused
/// or loaded by `.reload /i`) and why it does not match.
fn load_report(s: &Session, i: usize) -> String {
    use dumpdiag_symbols::SymbolKind;
    let symbols = s.symbols();
    let origin = symbols.origin(i).filter(|x| !x.is_empty());
    let mismatch = symbols.pdb_mismatch(i);
    let (kind, how, report) = match symbols.state(i) {
        SymbolKind::Pdb => (
            "PDB",
            "Symbols loaded successfully from symbol search path.",
            "private symbols & lines, not source indexed",
        ),
        SymbolKind::Breakpad => (
            "BREAKPAD",
            "Symbols loaded from a Breakpad symbol file.",
            "public symbols & lines",
        ),
        SymbolKind::Export => (
            "EXPORT",
            "PDB not found, symbols from the export table.",
            "export symbols",
        ),
        SymbolKind::None => ("NONE", "No symbols found.", "no symbols loaded"),
        SymbolKind::Deferred => ("DEFERRED", "Symbols not loaded yet.", "no symbols loaded"),
    };
    let indent = "                 ";
    let mut o = format!("    Symbol Type: {kind:<8} - {how}\n    Load Report: {report}\n");
    match (origin, &mismatch) {
        (Some(origin), Some(m)) if m.loaded && m.path == origin => {}
        (Some(origin), _) => {
            let _ = writeln!(o, "{indent}{origin}");
        }
        (None, _) => {}
    }
    if let Some(m) = mismatch {
        let verdict = if m.loaded {
            "loaded anyway by .reload /i"
        } else {
            "refused (.reload /i loads it anyway)"
        };
        let _ = writeln!(
            o,
            "{indent}{} - mismatched pdb, {verdict}\n{indent}  the image expects {}, the pdb is \
             {}: {}",
            m.path, m.expected, m.found, m.reason
        );
    }
    o
}

fn dh(s: &mut Session, inv: &Invocation) -> Result<String, CommandError> {
    let name = inv
        .args
        .split_whitespace()
        .last()
        .ok_or_else(|| CommandError::Usage("Usage: !dh module|address".into()))?;
    let t = s.target();
    let base = t
        .modules()
        .iter()
        .find(|m| m.short_name().eq_ignore_ascii_case(name))
        .map(|m| m.base)
        .map_or_else(|| s.eval(name), Ok)?;
    let h = pe::read_headers(t.memory(), base).ok_or_else(|| {
        CommandError::Unavailable(format!(
            "No PE headers at {} (not in the dump)",
            s.addr(base)
        ))
    })?;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "\nFile Type: {}",
        if h.characteristics & 0x2000 != 0 {
            "DLL"
        } else {
            "EXECUTABLE IMAGE"
        }
    );
    let _ = writeln!(
        o,
        "FILE HEADER VALUES\n    {:4X} machine\n    {:4X} number of sections\n{:8X} time date stamp {}\n    {:4X} characteristics",
        h.machine,
        h.number_of_sections,
        h.time_date_stamp,
        format::short_time(h.time_date_stamp as i64),
        h.characteristics
    );
    let _ = writeln!(
        o,
        "\nOPTIONAL HEADER VALUES\n    {:4X} magic #\n   {:5}.{:02} linker version\n{:8X} size of code\n{:8X} address of entry point\n{:>16} image base",
        h.magic,
        h.linker_version.0,
        h.linker_version.1,
        h.size_of_code,
        h.entry_point,
        format!("{:X}", h.image_base)
    );
    let _ = writeln!(o, "{:8X} section alignment\n{:8X} file alignment\n   {:5}.{:02} operating system version\n   {:5}.{:02} subsystem version\n{:8X} size of image\n{:8X} size of headers\n{:8X} checksum\n    {:4X} subsystem\n    {:4X} DLL characteristics", h.section_alignment, h.file_alignment, h.os_version.0, h.os_version.1, h.subsystem_version.0, h.subsystem_version.1, h.size_of_image, h.size_of_headers, h.checksum, h.subsystem, h.dll_characteristics);
    let names = [
        "Export",
        "Import",
        "Resource",
        "Exception",
        "Security",
        "Base Relocation",
        "Debug",
        "Description",
        "Special",
        "Thread Storage",
        "Load Configuration",
        "Bound Import",
        "Import Address Table",
        "Delay Import",
        "COR20 Header",
        "Reserved",
    ];
    for (i, (rva, size)) in h.directories.iter().enumerate() {
        let _ = writeln!(
            o,
            "{rva:8X} [{size:8X}] address [size] of {} Directory",
            names.get(i).unwrap_or(&"?")
        );
    }
    for (i, sec) in h.sections.iter().enumerate() {
        let _ = writeln!(
            o,
            "\nSECTION HEADER #{}\n{:>8} name\n{:8X} virtual size\n{:8X} virtual address\n{:8X} size of raw data\n{:8X} flags",
            i + 1,
            sec.name,
            sec.virtual_size,
            sec.virtual_address,
            sec.raw_size,
            sec.characteristics
        );
    }
    Ok(o)
}

pub fn parse_path(text: &str) -> SymbolPath {
    SymbolPath::parse(text)
}
