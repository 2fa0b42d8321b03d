//! `!dlls [-l|-m|-i] [-c address]`: the loader's module list as the loader itself keeps it (the
//! PEB's LDR_DATA_TABLE_ENTRY lists), one entry per module with its base, entry point, size,
//! flags (named), TLS index and load count; in load (`-l`, the default), memory (`-m`) or
//! initialization (`-i`) order, or only the module containing an address (`-c`). It reads the
//! process's memory, so it needs a dump that holds the loader's entries (a full dump, or a
//! minidump with its PEB and heap); the module list `lm` shows comes from the dump's own stream.

use std::collections::HashSet;
use std::fmt::Write;

use crate::registry::{Command, Invocation};
use crate::{CommandError, Session};
use dumpdiag_os::peb;
use dumpdiag_target::MemoryExt;

pub(crate) const COMMANDS: &[Command] = &[Command {
    names: &["!dlls"],
    usage: "!dlls [-l | -m | -i] [-c address]",
    help: "The loader's module entries (PEB lists): base, entry point, size, flags, TLS index, \
           load count; -l load order, -m memory order, -i initialization order, -c only the \
           module containing an address.",
    family: None,
    arguments: &["-l", "-m", "-i", "-c"],
    run: dlls,
}];

/// Most entries one list walk follows (a corrupted list must not loop forever).
const MAX_ENTRIES: usize = peb::MAX_LOADER_ENTRIES;

/// LDR_DATA_TABLE_ENTRY offsets past DllBase, for each pointer size.
struct EntryLayout {
    flags: u64,
    load_count: u64,
    tls_index: u64,
    ddag_node: u64,
    /// LDR_DDAG_NODE.LoadCount (Windows 8 and later keep the count there).
    ddag_load_count: u64,
}

const ENTRY_X64: EntryLayout = EntryLayout {
    flags: 0x68,
    load_count: 0x6c,
    tls_index: 0x6e,
    ddag_node: 0x98,
    ddag_load_count: 0x18,
};

const ENTRY_X86: EntryLayout = EntryLayout {
    flags: 0x34,
    load_count: 0x38,
    tls_index: 0x3a,
    ddag_node: 0x50,
    ddag_load_count: 0xc,
};

/// The entry's Flags bits from Windows 8 on (ntdll's bit fields, in WinDbg's LDRP_ spelling).
const FLAGS_WIN8: &[(u32, &str)] = &[
    (1 << 0, "LDRP_PACKAGED_BINARY"),
    (1 << 1, "LDRP_MARKED_FOR_REMOVAL"),
    (1 << 2, "LDRP_IMAGE_DLL"),
    (1 << 3, "LDRP_LOAD_NOTIFICATIONS_SENT"),
    (1 << 4, "LDRP_TELEMETRY_ENTRY_PROCESSED"),
    (1 << 5, "LDRP_PROCESS_STATIC_IMPORT"),
    (1 << 6, "LDRP_IN_LEGACY_LISTS"),
    (1 << 7, "LDRP_IN_INDEXES"),
    (1 << 8, "LDRP_SHIM_DLL"),
    (1 << 9, "LDRP_IN_EXCEPTION_TABLE"),
    (1 << 12, "LDRP_LOAD_IN_PROGRESS"),
    (1 << 13, "LDRP_LOAD_CONFIG_PROCESSED"),
    (1 << 14, "LDRP_ENTRY_PROCESSED"),
    (1 << 15, "LDRP_PROTECT_DELAY_LOAD"),
    (1 << 18, "LDRP_DONT_CALL_FOR_THREADS"),
    (1 << 19, "LDRP_PROCESS_ATTACH_CALLED"),
    (1 << 20, "LDRP_PROCESS_ATTACH_FAILED"),
    (1 << 21, "LDRP_COR_DEFERRED_VALIDATE"),
    (1 << 22, "LDRP_COR_IMAGE"),
    (1 << 23, "LDRP_DONT_RELOCATE"),
    (1 << 24, "LDRP_COR_IL_ONLY"),
    (1 << 25, "LDRP_CHPE_IMAGE"),
    (1 << 28, "LDRP_REDIRECTED"),
    (1 << 31, "LDRP_COMPAT_DATABASE_PROCESSED"),
];

/// The entry's Flags values before Windows 8.
const FLAGS_OLD: &[(u32, &str)] = &[
    (0x2, "LDRP_STATIC_LINK"),
    (0x4, "LDRP_IMAGE_DLL"),
    (0x1000, "LDRP_LOAD_IN_PROGRESS"),
    (0x2000, "LDRP_UNLOAD_IN_PROGRESS"),
    (0x4000, "LDRP_ENTRY_PROCESSED"),
    (0x8000, "LDRP_ENTRY_INSERTED"),
    (0x10000, "LDRP_CURRENT_LOAD"),
    (0x20000, "LDRP_FAILED_BUILTIN_LOAD"),
    (0x40000, "LDRP_DONT_CALL_FOR_THREADS"),
    (0x80000, "LDRP_PROCESS_ATTACH_CALLED"),
    (0x100000, "LDRP_DEBUG_SYMBOLS_LOADED"),
    (0x200000, "LDRP_IMAGE_NOT_AT_BASE"),
    (0x400000, "LDRP_COR_IMAGE"),
    (0x800000, "LDRP_COR_OWNS_UNMAP"),
    (0x1000000, "LDRP_SYSTEM_MAPPED"),
    (0x2000000, "LDRP_IMAGE_VERIFYING"),
    (0x4000000, "LDRP_DRIVER_DEPENDENT_DLL"),
    (0x8000000, "LDRP_ENTRY_NATIVE"),
    (0x10000000, "LDRP_REDIRECTED"),
    (0x20000000, "LDRP_NON_PAGED_DEBUG_INFO"),
    (0x40000000, "LDRP_MM_LOADED"),
    (0x80000000, "LDRP_COMPAT_DATABASE_PROCESSED"),
];

/// The names of the set bits of an entry's Flags; bits without a name show as `<unknown>`.
pub fn flag_names(flags: u32, windows8_or_later: bool) -> Vec<&'static str> {
    let table = if windows8_or_later {
        FLAGS_WIN8
    } else {
        FLAGS_OLD
    };
    let named: u32 = table.iter().map(|(b, _)| b).fold(0, |a, b| a | b);
    let mut out: Vec<&'static str> = table
        .iter()
        .filter(|(b, _)| flags & b != 0)
        .map(|(_, n)| *n)
        .collect();
    if flags & !named != 0 {
        out.insert(0, "<unknown>");
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Order {
    Load,
    Memory,
    Initialization,
}

fn dlls(s: &mut Session, inv: &Invocation) -> Result<String, CommandError> {
    let mut order = Order::Load;
    let mut containing = None;
    let mut words = inv.args.split_whitespace();
    while let Some(w) = words.next() {
        match w {
            "-l" => order = Order::Load,
            "-m" => order = Order::Memory,
            "-i" => order = Order::Initialization,
            "-c" => {
                let a = words.next().ok_or_else(|| {
                    CommandError::Usage("Usage: !dlls -c address (an address in the module)".into())
                })?;
                containing = Some(s.eval(a)?);
            }
            _ => {
                return Err(CommandError::Usage(format!(
                    "Unknown !dlls option '{w}' (usage: {})",
                    COMMANDS[0].usage
                )))
            }
        }
    }
    let l = s.layout();
    let ptr = l.ptr;
    let mem = s.target().memory();
    let peb_address = s
        .peb_address()
        .ok_or_else(|| CommandError::Unavailable("Unable to get the PEB address".into()))?;
    let p = peb::read_peb(mem, peb_address, &l).ok_or_else(|| {
        CommandError::Unavailable(format!(
            "Unable to read the PEB at {} (not in the dump)",
            s.addr(peb_address)
        ))
    })?;
    // Where each list's head lies in PEB_LDR_DATA, and where its links lie in an entry.
    let (head_offset, link_offset) = match order {
        Order::Load => (l.ldr_in_load_order, 0),
        Order::Memory => (l.ldr_in_memory_order, 2 * ptr),
        Order::Initialization => (l.ldr_in_init_order, 4 * ptr),
    };
    let head = p.ldr.wrapping_add(head_offset);
    let first = mem.read_ptr(head, ptr).ok_or_else(|| {
        CommandError::Unavailable(format!(
            "Unable to read the loader lists: PEB_LDR_DATA at {} is not in the dump",
            s.addr(p.ldr)
        ))
    })?;
    let f = s.target().facts();
    let windows8 = (f.os_major, f.os_minor) >= (6, 2);
    let e = if ptr == 8 { &ENTRY_X64 } else { &ENTRY_X86 };
    let mut o = String::new();
    if let Some(a) = containing {
        let _ = writeln!(o, "Dump dll containing {}:", s.addr(a));
    }
    let mut seen = HashSet::new();
    let mut link = first;
    let mut shown = 0;
    while link != head && link != 0 && seen.len() < MAX_ENTRIES && seen.insert(link) {
        let entry = link.wrapping_sub(link_offset);
        let at = |off: u64| entry.wrapping_add(off);
        let Some(base) = mem.read_ptr(at(l.entry_dll_base), ptr) else {
            if containing.is_some() {
                break;
            }
            let _ = writeln!(
                o,
                "\n{}: (the entry is not in the dump; the list stops here)",
                s.addr(entry)
            );
            break;
        };
        let size = mem.read_u32(at(l.entry_size_of_image)).unwrap_or(0) as u64;
        let next = mem.read_ptr(link, ptr);
        if containing.is_some_and(|a| a < base || a >= base.saturating_add(size)) {
            match next {
                Some(n) => {
                    link = n;
                    continue;
                }
                None => break,
            }
        }
        shown += 1;
        let name = l
            .read_unicode_string(mem, at(l.entry_full_name))
            .unwrap_or_else(|| "<name not in the dump>".into());
        let entry_point = mem.read_ptr(at(l.entry_entry_point), ptr);
        let flags = mem.read_u32(at(e.flags));
        let hex = |v: u64| {
            if ptr == 8 {
                format!("{v:#x}")
            } else {
                format!("{v:#010x}")
            }
        };
        // A field the dump does not hold shows as question marks, as WinDbg shows memory it
        // cannot read.
        let opt = |v: Option<u64>| v.map(hex).unwrap_or_else(|| "??????????".into());
        let word = |v: Option<u64>| {
            v.map(|v| format!("{v:#010x}"))
                .unwrap_or_else(|| "??????????".into())
        };
        let tls = word(mem.read_u16(at(e.tls_index)).map(u64::from));
        let _ = writeln!(o, "\n{}: {name}", hex(entry));
        if windows8 {
            let node = mem.read_ptr(at(e.ddag_node), ptr);
            let count = node
                .filter(|&n| n != 0)
                .and_then(|n| mem.read_u32(n.wrapping_add(e.ddag_load_count)));
            let _ = writeln!(
                o,
                "      Base   {}  EntryPoint  {}  Size        {size:#010x}    DdagNode     {}",
                hex(base),
                opt(entry_point),
                opt(node)
            );
            let _ = writeln!(
                o,
                "      Flags  {}  TlsIndex    {tls}  LoadCount   {}",
                word(flags.map(u64::from)),
                word(count.map(u64::from))
            );
        } else {
            let count = mem.read_u16(at(e.load_count)).map(u64::from);
            let _ = writeln!(
                o,
                "      Base   {}  EntryPoint  {}  Size        {size:#010x}",
                hex(base),
                opt(entry_point)
            );
            let _ = writeln!(
                o,
                "      Flags  {}  LoadCount   {}  TlsIndex    {tls}",
                word(flags.map(u64::from)),
                word(count)
            );
        }
        for n in flag_names(flags.unwrap_or(0), windows8) {
            let _ = writeln!(o, "             {n}");
        }
        match next {
            Some(n) => link = n,
            None if containing.is_some() => break,
            None => {
                let _ = writeln!(
                    o,
                    "\n(the next link of {} is not in the dump; the list stops here)",
                    s.addr(entry)
                );
                break;
            }
        }
    }
    if let Some(a) = containing.filter(|_| shown == 0) {
        return Err(CommandError::NotFound(format!(
            "No loader entry contains {}",
            s.addr(a)
        )));
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_named_by_the_windows_version() {
        assert_eq!(
            flag_names(0x000c_a2cc, true),
            vec![
                "LDRP_IMAGE_DLL",
                "LDRP_LOAD_NOTIFICATIONS_SENT",
                "LDRP_IN_LEGACY_LISTS",
                "LDRP_IN_INDEXES",
                "LDRP_IN_EXCEPTION_TABLE",
                "LDRP_LOAD_CONFIG_PROCESSED",
                "LDRP_PROTECT_DELAY_LOAD",
                "LDRP_DONT_CALL_FOR_THREADS",
                "LDRP_PROCESS_ATTACH_CALLED",
            ]
        );
        assert_eq!(
            flag_names(0x0008_4004, false),
            vec![
                "LDRP_IMAGE_DLL",
                "LDRP_ENTRY_PROCESSED",
                "LDRP_PROCESS_ATTACH_CALLED"
            ]
        );
        assert_eq!(flag_names(0x400, true), vec!["<unknown>"]);
    }
}
