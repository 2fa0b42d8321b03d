//! Target and session commands: `||`, `|`, `vertarget`, `.time`, `.dumpdebug`, `.lastevent`.

use std::fmt::Write;

use crate::format;
use crate::registry::Command;
use crate::Session;
use dumpdiag_os::errors;
use dumpdiag_target::{Arch, DumpKind, StreamSupport, Target};

pub(crate) const COMMANDS: &[Command] = &[
    Command {
        names: &["||"],
        usage: "||",
        help: "The dump this session reads.",
        family: None,
        arguments: &[],
        run: |s, _| Ok(dump_summary(s)),
    },
    Command {
        names: &["|"],
        usage: "|",
        help: "The dumped process: its id and image.",
        family: None,
        arguments: &[],
        run: |s, _| Ok(process_summary(s)),
    },
    Command {
        names: &["vertarget"],
        usage: "vertarget",
        help: "Windows version, processors, dump time and uptimes.",
        family: None,
        arguments: &[],
        run: |s, _| Ok(vertarget(s)),
    },
    Command {
        names: &["version"],
        usage: "version",
        help: "The target's version (vertarget), the dump file, then this debugger's version \
               and symbol path.",
        family: None,
        arguments: &[],
        run: |s, _| Ok(version(s)),
    },
    Command {
        names: &[".time"],
        usage: ".time",
        help: "When the dump was taken; system and process uptime.",
        family: None,
        arguments: &[],
        run: |s, _| Ok(time(s)),
    },
    Command {
        names: &[".dumpdebug"],
        usage: ".dumpdebug",
        help: "The dump file's header, flags and streams.",
        family: None,
        arguments: &[],
        run: |s, _| Ok(dumpdebug(s)),
    },
    Command {
        names: &[".lastevent"],
        usage: ".lastevent",
        help: "The event the dump was taken at.",
        family: None,
        arguments: &[],
        run: |s, _| Ok(lastevent(s)),
    },
];

/// MINIDUMP_TYPE flag names, in bit order.
const DUMP_FLAGS: &[(u64, &str)] = &[
    (0x1, "MiniDumpWithDataSegs"),
    (0x2, "MiniDumpWithFullMemory"),
    (0x4, "MiniDumpWithHandleData"),
    (0x8, "MiniDumpFilterMemory"),
    (0x10, "MiniDumpScanMemory"),
    (0x20, "MiniDumpWithUnloadedModules"),
    (0x40, "MiniDumpWithIndirectlyReferencedMemory"),
    (0x80, "MiniDumpFilterModulePaths"),
    (0x100, "MiniDumpWithProcessThreadData"),
    (0x200, "MiniDumpWithPrivateReadWriteMemory"),
    (0x400, "MiniDumpWithoutOptionalData"),
    (0x800, "MiniDumpWithFullMemoryInfo"),
    (0x1000, "MiniDumpWithThreadInfo"),
    (0x2000, "MiniDumpWithCodeSegs"),
    (0x4000, "MiniDumpWithoutAuxiliaryState"),
    (0x8000, "MiniDumpWithFullAuxiliaryState"),
    (0x10000, "MiniDumpWithPrivateWriteCopyMemory"),
    (0x20000, "MiniDumpIgnoreInaccessibleMemory"),
    (0x40000, "MiniDumpWithTokenInformation"),
    (0x80000, "MiniDumpWithModuleHeaders"),
    (0x100000, "MiniDumpFilterTriage"),
    (0x200000, "MiniDumpWithAvxXStateContext"),
    (0x400000, "MiniDumpWithIptTrace"),
    (0x800000, "MiniDumpScanInaccessiblePartialPages"),
    (0x1000000, "MiniDumpFilterWriteCombinedMemory"),
];

pub fn dump_flag_names(flags: u64) -> Vec<&'static str> {
    DUMP_FLAGS
        .iter()
        .filter(|(b, _)| flags & b != 0)
        .map(|(_, n)| *n)
        .collect()
}

pub fn dump_summary(s: &Session) -> String {
    let t = s.target();
    let kind = t.facts().kind;
    match kind {
        DumpKind::Minidump => format!(".  0 - {}: {}\n", kind.session_name(), t.path()),
        DumpKind::LegacyUserDump { .. } => format!(
            ".  0 - {} (legacy {}): {}\n",
            kind.session_name(),
            kind.signature(),
            t.path()
        ),
    }
}

pub fn process_summary(s: &Session) -> String {
    let t = s.target();
    let pid = t.facts().process_id.unwrap_or(0);
    let name = t
        .modules()
        .first()
        .map(|m| m.path.clone())
        .unwrap_or_else(|| "<unknown>".into());
    format!(".  0\tid: {pid:x}\texamine\tname: {name}\n")
}

fn os_name(major: u32, minor: u32, build: u32, product_type: u8) -> String {
    let server = product_type != 1;
    match (major, minor) {
        (10, 0) if build >= 22000 && !server => "Windows 10".into(), // WinDbg says "Windows 10" for 11 too
        (10, 0) => "Windows 10".into(),
        (6, 3) => if server {
            "Windows Server 2012 R2"
        } else {
            "Windows 8.1"
        }
        .into(),
        (6, 2) => if server {
            "Windows Server 2012"
        } else {
            "Windows 8"
        }
        .into(),
        (6, 1) => if server {
            "Windows Server 2008 R2"
        } else {
            "Windows 7"
        }
        .into(),
        (6, 0) => if server {
            "Windows Server 2008"
        } else {
            "Windows Vista"
        }
        .into(),
        (5, 2) => "Windows Server 2003".into(),
        (5, 1) => "Windows XP".into(),
        _ => format!("Windows {major}.{minor}"),
    }
}

fn suite_names(mask: u16) -> Vec<&'static str> {
    let names = [
        (0x1, "SmallBusiness"),
        (0x2, "Enterprise"),
        (0x4, "BackOffice"),
        (0x10, "TerminalServer"),
        (0x80, "DataCenter"),
        (0x100, "SingleUserTS"),
        (0x200, "Personal"),
        (0x400, "Blade"),
    ];
    names
        .iter()
        .filter(|(b, _)| mask & b != 0)
        .map(|(_, n)| *n)
        .collect()
}

/// `version`: WinDbg prints the target's `vertarget`, the dump it reads, then the debugger's own
/// version and the components it runs with.
fn version(s: &Session) -> String {
    let t = s.target();
    let kind = t.facts().kind;
    let full = match kind {
        DumpKind::Minidump if t.facts().flags & 0x2 != 0 => "Full memory user mini dump",
        _ => kind.session_name(),
    };
    let mut o = vertarget(s);
    let _ = writeln!(o, "{full}: {}", t.path());
    let _ = writeln!(
        o,
        "\ndumpdiag version {} (WinDbg command language; reads {} dumps)",
        env!("CARGO_PKG_VERSION"),
        kind.signature()
    );
    let sympath = if s.sympath.is_empty() {
        "<empty>"
    } else {
        s.sympath.as_str()
    };
    let _ = writeln!(o, "Symbol search path is: {sympath}");
    o
}

pub fn vertarget(s: &Session) -> String {
    let t = s.target();
    let f = t.facts();
    let mut o = String::new();
    let mp = if f.processor_count > 1 {
        format!("MP ({} procs)", f.processor_count)
    } else {
        "UP".into()
    };
    let arch = match f.arch {
        Arch::X86 => "x86",
        Arch::Amd64 => "x64",
        Arch::Arm64 => "ARM64",
        Arch::Other(_) => "unknown",
    };
    let sp = if f.csd_version.is_empty() {
        String::new()
    } else {
        format!(" ({})", f.csd_version)
    };
    let _ = writeln!(
        o,
        "{} Version {}{sp} {mp} Free {arch}",
        os_name(f.os_major, f.os_minor, f.os_build, f.product_type),
        f.os_build
    );
    if s.is_wow64() {
        let _ = writeln!(
            o,
            "WOW64: 32-bit process in a 64-bit dump (.effmach x86 for the 32-bit view)"
        );
    }
    let product = match f.product_type {
        1 => "WinNt",
        2 => "LanManNt",
        3 => "ServerNt",
        _ => "unknown",
    };
    let _ = writeln!(
        o,
        "Product: {product}, suite: {}",
        suite_names(f.suite_mask).join(" ")
    );
    if let Some(b) = &f.build_string {
        let _ = writeln!(o, "Edition build lab: {b}");
    }
    if let Some(v) = &f.cpu_vendor {
        let _ = writeln!(
            o,
            "CPU: {v} family {} revision {:x}",
            f.processor_level, f.processor_revision
        );
    }
    let _ = writeln!(
        o,
        "Debug session time: {}",
        format::debug_time(f.dump_time as i64)
    );
    let _ = writeln!(o, "System Uptime: not available");
    o.push_str(&process_times(s));
    o
}

fn process_times(s: &Session) -> String {
    let f = s.target().facts();
    let mut o = String::new();
    match f.process_create_time {
        Some(created) if f.dump_time >= created => {
            let _ = writeln!(
                o,
                "Process Uptime: {}",
                format::duration_secs((f.dump_time - created) as u64)
            );
            let _ = writeln!(
                o,
                "  Kernel time: {}",
                format::duration_secs(f.process_kernel_time.unwrap_or(0) as u64)
            );
            let _ = writeln!(
                o,
                "  User time: {}",
                format::duration_secs(f.process_user_time.unwrap_or(0) as u64)
            );
        }
        _ => {
            let _ = writeln!(o, "Process Uptime: not available");
        }
    }
    o
}

pub fn time(s: &Session) -> String {
    let f = s.target().facts();
    let mut o = format!(
        "Debug session time: {}\nSystem Uptime: not available\n",
        format::debug_time(f.dump_time as i64)
    );
    if let Some(c) = f.process_create_time {
        let _ = writeln!(o, "Process creation time: {}", format::debug_time(c as i64));
    }
    o.push_str(&process_times(s));
    o
}

pub fn dumpdebug(s: &Session) -> String {
    let t = s.target();
    let mut o = match t.facts().kind {
        DumpKind::Minidump => minidump_header(t),
        DumpKind::LegacyUserDump { .. } => legacy_header(t),
    };
    let _ = writeln!(
        o,
        "\nThreads: {}  Modules: {}  Unloaded modules: {}  Memory ranges: {}  MemoryInfo regions: {}",
        t.threads().len(),
        t.modules().len(),
        t.unloaded_modules().len(),
        t.captured_ranges().len(),
        t.regions().len()
    );
    let captured: u64 = t.captured_ranges().iter().map(|r| r.1).sum();
    let _ = writeln!(o, "Captured memory: {}", format::size_with_unit(captured));
    if let Some(h) = t.handles() {
        let _ = writeln!(o, "Handles: {}", h.len());
    }
    let x = t.extras();
    if let Some(c) = &x.comment_a {
        let _ = writeln!(o, "CommentStreamA: {c}");
    }
    if let Some(c) = &x.comment_w {
        let _ = writeln!(o, "CommentStreamW: {c}");
    }
    if let Some(vm) = &x.vm_counters {
        let _ = writeln!(
            o,
            "ProcessVmCounters: private {:#x}, working set {:#x}, peak working set {:#x}, pagefile {:#x}",
            vm.private_usage, vm.working_set_size, vm.peak_working_set_size, vm.pagefile_usage
        );
    }
    if let Some(sm) = &x.system_memory {
        let _ = writeln!(
            o,
            "SystemMemoryInfo: page size {:#x}, physical pages {:#x}, committed pages {:#x}, commit limit {:#x}",
            sm.page_size, sm.number_of_physical_pages, sm.committed_pages, sm.commit_limit
        );
    }
    if !x.tokens.is_empty() {
        let _ = writeln!(o, "Token entries: {}", x.tokens.len());
    }
    for ft in &x.function_tables {
        let _ = writeln!(
            o,
            "FunctionTable: {} entries for {} - {} (base {})",
            ft.entry_count,
            s.addr(ft.minimum_address),
            s.addr(ft.maximum_address),
            s.addr(ft.base_address)
        );
    }
    if let Some(id) = x.breakpad_dump_thread {
        let _ = writeln!(
            o,
            "Breakpad: dump thread {id:x}, requesting thread {:x}",
            x.breakpad_requesting_thread.unwrap_or(0)
        );
    }
    if let Some(id) = &x.crashpad_report_id {
        let _ = writeln!(
            o,
            "Crashpad report {id}, {} annotations",
            x.crashpad_annotations.len()
        );
        for (k, v) in &x.crashpad_annotations {
            let _ = writeln!(o, "  {k} = {v}");
        }
    }
    if let Some(xs) = t.facts().xstate_enabled_features {
        let _ = writeln!(o, "XSTATE enabled features: {xs:#x}");
    }
    for w in t.warnings() {
        let _ = writeln!(o, "WARNING: {w}");
    }
    o
}

/// `.dumpdebug`'s MDMP part: MINIDUMP_HEADER and the stream directory.
fn minidump_header(t: &dyn Target) -> String {
    let f = t.facts();
    let mut o = String::new();
    let _ = writeln!(o, "----- User Mini Dump Analysis\n");
    let _ = writeln!(o, "MINIDUMP_HEADER:");
    let _ = writeln!(o, "NumberOfStreams {}", t.streams().len());
    let _ = writeln!(o, "Flags           {:x}", f.flags);
    for name in dump_flag_names(f.flags) {
        let bit = DUMP_FLAGS
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(b, _)| *b)
            .unwrap_or(0);
        let _ = writeln!(o, "                {bit:04x} {name}");
    }
    let _ = writeln!(o, "CheckSum        {:08x}", f.checksum);
    let _ = writeln!(
        o,
        "TimeDateStamp   {:08x} {}",
        f.dump_time,
        format::short_time(f.dump_time as i64)
    );
    let _ = writeln!(
        o,
        "File size       {:x} ({} bytes)\n",
        t.file_size(),
        t.file_size()
    );
    let _ = writeln!(o, "Streams:");
    for st in t.streams() {
        let note = match st.support {
            StreamSupport::Read => "",
            StreamSupport::Unsupported => "  [present but unsupported]",
            StreamSupport::Unknown => "  [unknown stream type, skipped]",
        };
        let _ = writeln!(
            o,
            "Stream {}: type {} ({}), size {:08X}, RVA {:08X}{note}",
            st.index, st.name, st.stream_type, st.size, st.rva
        );
    }
    o
}

/// `.dumpdebug`'s part for a legacy full dump: USERMODE_CRASHDUMP_HEADER and the sections.
fn legacy_header(t: &dyn Target) -> String {
    let f = t.facts();
    let mut o = String::new();
    let _ = writeln!(
        o,
        "----- User Full Dump Analysis (legacy {} format)\n",
        f.kind.signature()
    );
    let _ = writeln!(o, "USERMODE_CRASHDUMP_HEADER:");
    for (k, v) in &f.header_fields {
        let _ = writeln!(o, "{:<17} {v}", k);
    }
    let _ = writeln!(
        o,
        "File size         {:x} ({} bytes)\n",
        t.file_size(),
        t.file_size()
    );
    let _ = writeln!(o, "Sections:");
    for st in t.streams() {
        let _ = writeln!(
            o,
            "Section {}: {}, size {:08X}, offset {:08X}",
            st.index, st.name, st.size, st.rva
        );
    }
    o
}

/// The event description `.lastevent` and `!analyze` use.
pub fn event_text(code: u32) -> String {
    match code {
        0xc0000005 => "Access violation".into(),
        0x80000003 => "Break instruction exception".into(),
        0x4000001f => "Wx86 Break instruction exception".into(),
        0xc00000fd => "Stack overflow".into(),
        0xc0000094 => "Integer divide-by-zero".into(),
        0xc0000409 => "Security check failure or stack buffer overrun".into(),
        0xc0000374 => "Heap corruption".into(),
        0xe06d7363 => "C++ EH exception".into(),
        0xc000001d => "Illegal instruction".into(),
        _ => errors::exception_name(code)
            .map(str::to_string)
            .unwrap_or_else(|| "Unknown exception".into()),
    }
}

pub fn lastevent(s: &Session) -> String {
    let t = s.target();
    match t.exception() {
        Some(e) => {
            let pid = t.facts().process_id.unwrap_or(0);
            format!(
                "Last event: {pid:x}.{:x}: {} - code {:08x} ({})\n  debugger time: {}\n",
                e.thread_id,
                event_text(e.record.code),
                e.record.code,
                match e.first_chance {
                    Some(true) => "first chance",
                    Some(false) => "second chance",
                    None => "first/second chance not available",
                },
                format::debug_time(t.facts().dump_time as i64)
            )
        }
        None => {
            "Last event: <no event>: no exception stream (the dump was taken on purpose)\n".into()
        }
    }
}
