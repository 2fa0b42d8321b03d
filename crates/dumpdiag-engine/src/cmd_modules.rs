//! `lm` and its options: `v` verbose, `m pattern`, `o` loaded only, `u` unloaded, `f` paths,
//! `n` image names, `k` kernel (none in a process dump).

use std::fmt::Write;

use crate::format;
use crate::registry::Command;
use crate::{CommandError, Session};
use dumpdiag_os::pe;
use dumpdiag_target::ModuleRecord;

pub(crate) const COMMANDS: &[Command] = &[Command {
    names: &["lm", "lmv", "lmu", "lmo", "lmf"],
    usage: "lm[v|o|u|f|n] [m pattern]",
    help: "Modules and their symbols: v details, o loaded only, u unloaded, f paths, n image \
           names, m only names matching the pattern (options glue on: lmvm name).",
    family: Some(|verb| verb.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("lm"))),
    arguments: &["m", "v"],
    run: |s, inv| lm(s, &inv.verb.to_ascii_lowercase()[2..], inv.args),
}];

/// WinDbg's wildcard match (`*`, `?`), case-insensitive.
pub fn wildcard(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

/// `lm` with the option letters `glued` onto it (`lmvm` → `vm`) and its arguments.
fn lm(s: &Session, glued: &str, rest: &str) -> Result<String, CommandError> {
    let mut verbose = false;
    let mut unloaded_only = false;
    let mut paths = false;
    let mut image_names = false;
    let mut pattern: Option<String> = None;
    // Options may be glued (`lmvm name`) or separate (`lm v m name`).
    let mut words: Vec<String> = Vec::new();
    if !glued.is_empty() {
        words.push(glued.to_string());
    }
    words.extend(rest.split_whitespace().map(str::to_string));
    let mut i = 0;
    while i < words.len() {
        let w = words[i].trim_start_matches(['-', '/']).to_string();
        let mut chars = w.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                'v' => verbose = true,
                'u' => unloaded_only = true,
                'o' | 'l' | 'k' | 'e' | 'd' => {}
                'f' => paths = true,
                'n' => image_names = true,
                'm' => {
                    let tail: String = chars.by_ref().collect();
                    pattern = Some(if !tail.is_empty() {
                        tail
                    } else {
                        i += 1;
                        words
                            .get(i)
                            .cloned()
                            .ok_or_else(|| CommandError::Usage("lm m needs a pattern".into()))?
                    });
                }
                _ => return Err(CommandError::Usage(format!("Unknown lm option '{c}'"))),
            }
        }
        i += 1;
    }
    let t = s.target();
    let ptr = s.ptr();
    let mut o = String::new();
    let header_pad = if ptr == 8 {
        "start             end                 module name"
    } else {
        "start    end        module name"
    };
    let matches = |m: &ModuleRecord| {
        pattern
            .as_deref()
            .is_none_or(|p| wildcard(p, &m.short_name()))
    };
    if !unloaded_only {
        let _ = writeln!(o, "{header_pad}");
        let mut mods: Vec<&ModuleRecord> = t.modules().iter().filter(|m| matches(m)).collect();
        mods.sort_by_key(|m| m.base);
        for m in mods {
            let index = t
                .modules()
                .iter()
                .position(|x| std::ptr::eq(x, m))
                .unwrap_or(0);
            let tail = if paths {
                m.path.clone()
            } else if image_names {
                m.file_name().to_string()
            } else {
                crate::cmd_symbols::symbol_column(s, index)
            };
            let _ = writeln!(
                o,
                "{} {}   {:<10} {tail}",
                format::addr(m.base, ptr),
                format::addr(m.end(), ptr),
                m.short_name()
            );
            if verbose {
                o.push_str(&module_details(s, m));
            }
        }
    }
    let unloaded: Vec<_> = t
        .unloaded_modules()
        .iter()
        .filter(|u| {
            pattern
                .as_deref()
                .is_none_or(|p| wildcard(p, &dumpdiag_target::module_short_name(&u.path)))
        })
        .collect();
    if !unloaded.is_empty() && (unloaded_only || pattern.is_none()) {
        let _ = writeln!(o, "\nUnloaded modules:");
        for u in unloaded {
            let _ = writeln!(
                o,
                "{} {}   {}",
                format::addr(u.base, ptr),
                format::addr(u.base.wrapping_add(u.size as u64), ptr),
                dumpdiag_target::file_name_of(&u.path)
            );
            if verbose {
                let _ = writeln!(
                    o,
                    "    Timestamp: {} ({:08X})\n    Checksum:  {:08X}\n    ImageSize: {:08X}",
                    format::short_time(u.time_date_stamp as i64),
                    u.time_date_stamp,
                    u.checksum,
                    u.size
                );
            }
        }
    } else if unloaded_only {
        let _ = writeln!(o, "\nUnloaded modules: none recorded");
    }
    Ok(o)
}

fn version(v: (u16, u16, u16, u16)) -> String {
    format!("{}.{}.{}.{}", v.0, v.1, v.2, v.3)
}

fn file_os(os: u32) -> &'static str {
    match os {
        0x40004 => "NT Win32",
        0x40000 => "NT",
        0x4 => "Win32",
        0x10001 => "DOS Win16",
        0x10004 => "DOS Win32",
        _ => "",
    }
}

fn file_type(ft: u32) -> &'static str {
    match ft {
        1 => "App",
        2 => "Dll",
        3 => "Driver",
        4 => "Font",
        7 => "Static library",
        _ => "Unknown",
    }
}

fn module_details(s: &Session, m: &ModuleRecord) -> String {
    let mut o = String::new();
    let mem = s.target().memory();
    let _ = writeln!(o, "    Image path: {}", m.path);
    let _ = writeln!(o, "    Image name: {}", m.file_name());
    let _ = writeln!(
        o,
        "    Timestamp:        {} ({:08X})",
        format::short_time(m.time_date_stamp as i64),
        m.time_date_stamp
    );
    let _ = writeln!(o, "    CheckSum:         {:08X}", m.checksum);
    let _ = writeln!(o, "    ImageSize:        {:08X}", m.size);
    let cv = m
        .codeview
        .clone()
        .or_else(|| pe::read_headers(mem, m.base).and_then(|h| pe::codeview(mem, &h)));
    if let Some(cv) = &cv {
        if let (Some(name), Some(id)) = (cv.pdb_name(), cv.pdb_id()) {
            let _ = writeln!(o, "    PDB:              {name} ({id})");
        }
    }
    if let Some(v) = &m.version {
        let _ = writeln!(o, "    File version:     {}", version(v.file_version));
        let _ = writeln!(o, "    Product version:  {}", version(v.product_version));
        let _ = writeln!(
            o,
            "    File flags:       {:X} (Mask {:X})",
            v.file_flags, v.file_flags_mask
        );
        let _ = writeln!(
            o,
            "    File OS:          {:X} {}",
            v.file_os,
            file_os(v.file_os)
        );
        let _ = writeln!(
            o,
            "    File type:        {:X}.{:X} {}",
            v.file_type,
            v.file_subtype,
            file_type(v.file_type)
        );
        let _ = writeln!(
            o,
            "    File date:        {:08X}.{:08X}",
            v.file_date >> 32,
            v.file_date & 0xffff_ffff
        );
    }
    match pe::read_headers(mem, m.base).and_then(|h| pe::version_strings(mem, &h)) {
        Some(strings) if !strings.is_empty() => {
            let _ = writeln!(o, "    Information from resource tables:");
            for (k, v) in strings {
                let _ = writeln!(o, "        {:<17} {v}", format!("{k}:"));
            }
        }
        _ => {}
    }
    o
}
