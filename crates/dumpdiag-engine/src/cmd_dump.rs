//! `.dump [/m | /ma] [/o] [/c "comment"] file`: write a minidump of the open dump, as WinDbg's
//! `.dump` writes one of a live target. `/ma` keeps every byte the dump holds (a full-memory
//! dump); `/m` (the default) keeps what reading the dump later needs and little else:
//! - every thread's stack (the committed part the TEB declares, in both WOW64 views) and TEBs;
//! - the PEB, its loader list, process parameters and environment (both PEBs under WOW64);
//! - every module's PE headers, export directory, debug directory and CodeView record,
//!   exception directory (.pdata) with the UNWIND_INFO it points to, version resources,
//!   and its writable data sections (where globals such as locks live);
//! - the code around every walked frame (so the faulting instruction disassembles and the
//!   stack checks can read the call before each return address);
//! - the critical sections threads wait on, with their debug information;
//! - the first page of every heap segment (its header, for `!heap -s`);
//! - the unwind data of code generated at run time (dynamic function tables' UNWIND_INFO);
//! - the bytes before every stack value that points into a module (a stack scan and the
//!   residue detectors accept a return address only after a call they can read).
//!
//! Thread contexts, modules, handles, thread times, the memory map, the exception and the
//! dynamic function tables are carried over whole, and the comments unless `/c` gives a new one
//! (`dumpdiag_mdmp::write_minidump`).

use dumpdiag_mdmp::{write_minidump, DumpPlan};
use dumpdiag_os::pe;
use dumpdiag_os::peb;
use dumpdiag_os::view::{ProcessView, View};
use dumpdiag_target::{MemoryExt, Target};

use crate::registry::{Command, Invocation};
use crate::{CommandError, Session};

pub(crate) const COMMANDS: &[Command] = &[
    Command {
        names: &[".dump"],
        usage: ".dump [/m | /ma] [/o] [/c \"comment\"] file",
        help: "Write a minidump of this dump: /m what analysis needs (default), /ma all memory.",
        family: None,
        arguments: &["/m", "/ma", "/o", "/c"],
        run: dump,
    },
    Command {
        names: &[".writemem"],
        usage: ".writemem file address {L count | end}",
        help: "Write the dump's bytes of a range to a file (up to 256 MB, or 1 GB with L?).",
        family: None,
        arguments: &[],
        run: writemem,
    },
];

/// The largest range `.writemem` writes unless the count is given as `L?` (WinDbg's own limit
/// for a range without it), and the largest it writes at all.
const WRITEMEM_RANGE: u64 = 256 << 20;
const WRITEMEM_MAX: u64 = 1 << 30;

/// `.writemem file range`: the bytes of the range, as the dump holds them, into a file (created
/// or overwritten). The range is `address L count` (bytes) or `address end` (end included, as
/// WinDbg takes it). Bytes the dump does not hold end the file there: it is written up to them
/// and the error says where.
fn writemem(s: &mut Session, inv: &Invocation) -> Result<String, CommandError> {
    let usage = || {
        CommandError::Usage(
            "Usage: .writemem FileName Range (address L count, or start end)".into(),
        )
    };
    let args = inv.args.trim();
    let (path, range) = match args.strip_prefix('"') {
        Some(quoted) => quoted.split_once('"').ok_or_else(usage)?,
        None => args.split_once(char::is_whitespace).ok_or_else(usage)?,
    };
    let range_text = range.trim();
    if path.is_empty() || range_text.is_empty() {
        return Err(usage());
    }
    let r = crate::cmd_memory::parse_range(s, range_text)?;
    let length = match (r.count, r.end) {
        (Some(n), _) => n,
        (None, Some(end)) => end.saturating_sub(r.start).saturating_add(1),
        (None, None) => return Err(usage()),
    };
    let unchecked = range_text.to_ascii_lowercase().contains("l?");
    let limit = if unchecked {
        WRITEMEM_MAX
    } else {
        WRITEMEM_RANGE
    };
    if length == 0 || length > limit || r.start.checked_add(length - 1).is_none() {
        return Err(CommandError::Usage(format!(
            "       ^ Range error in '{}'",
            inv.text
        )));
    }
    let mem = s.target().memory();
    if mem.read_bytes(r.start, 1).is_empty() {
        // Nothing to write: no file, as WinDbg leaves none when the range's start is unreadable.
        return Err(CommandError::Unavailable(format!(
            "Unable to read memory at {}: the dump does not hold it",
            s.addr(r.start)
        )));
    }
    let file = std::fs::File::create(path)
        .map_err(|e| CommandError::Unavailable(format!("Unable to create file '{path}': {e}")))?;
    let mut out = std::io::BufWriter::new(file);
    let mut written = 0u64;
    const CHUNK: u64 = 1 << 16;
    while written < length {
        let want = (length - written).min(CHUNK) as usize;
        let bytes = mem.read_bytes(r.start + written, want);
        std::io::Write::write_all(&mut out, &bytes)
            .map_err(|e| CommandError::Unavailable(format!("Unable to write '{path}': {e}")))?;
        written += bytes.len() as u64;
        if bytes.len() < want {
            break;
        }
    }
    std::io::Write::flush(&mut out)
        .map_err(|e| CommandError::Unavailable(format!("Unable to write '{path}': {e}")))?;
    let head = format!("Writing {length:x} bytes");
    if written < length {
        return Err(CommandError::Unavailable(format!(
            "{head}.\nUnable to read memory at {}, file is incomplete ({written:#x} of \
             {length:#x} bytes written: the dump does not hold the rest)",
            s.addr(r.start + written)
        )));
    }
    // WinDbg prints a dot per 64 KB written.
    let dots = ".".repeat((length / CHUNK) as usize);
    Ok(format!("{head}{dots}.\n"))
}

/// The code kept around each frame's instruction pointer: the instruction itself and the call
/// before a return address, with room for `u`/`ub` to show a few more.
const CODE_AROUND_FRAME: u64 = 0x80;
/// Bytes of a loader entry, a critical section, its debug information (the largest of both
/// bitnesses' layouts).
const LOADER_ENTRY: u64 = 0x140;
const CRITICAL_SECTION: u64 = 0x28;
const CRITICAL_SECTION_DEBUG: u64 = 0x30;
/// A version resource lives in `.rsrc`; resource sections up to this size are kept whole.
const MAX_RESOURCES: u64 = 256 << 10;
/// What is kept below each thread's stack pointer.
const RESIDUE_BELOW_SP: u64 = 64 << 10;
/// A system module's writable data kept per section: its locks and globals sit at the start of
/// a data section far more than in the rest (a sizeable .data is mostly tables and buffers).
const SYSTEM_DATA: u64 = 64 << 10;
/// Most loader entries followed (a hostile list cannot make the walk longer).
const MAX_LOADER_ENTRIES: usize = 4096;
/// The most stack read per thread when looking for return addresses (Windows' default
/// reserve is 1 MB; a hostile TEB cannot make this larger).
const MAX_STACK_SCANNED: u64 = 8 << 20;
/// MINIDUMP_TYPE MiniDumpWithFullMemory (minidump-common has no MINIDUMP_TYPE flags).
const MINIDUMP_WITH_FULL_MEMORY: u64 = 0x2;
/// IMAGE_SCN_MEM_WRITE.
const SCN_MEM_WRITE: u32 = 0x8000_0000;

fn dump(s: &mut Session, inv: &Invocation<'_>) -> Result<String, CommandError> {
    let mut full = false;
    let mut overwrite = false;
    let mut comment = None;
    let mut path = None;
    let mut words = inv.args.split_whitespace().peekable();
    while let Some(w) = words.next() {
        match w.to_ascii_lowercase().as_str() {
            "/ma" | "/mfh" | "/mf" => full = true,
            "/m" => full = false,
            "/o" => overwrite = true,
            "/c" => {
                let rest: Vec<&str> = words.by_ref().collect();
                let joined = rest.join(" ");
                // The comment may be quoted; the file name is the last word.
                let (text, file) = match joined.rsplit_once(' ') {
                    Some((t, f)) => (t.trim_matches('"').to_string(), f.to_string()),
                    None => return Err(inv.syntax_error()),
                };
                comment = Some(text);
                path = Some(file);
            }
            // An unknown option is an error, but the last word is the file, and on Linux and
            // macOS an absolute path starts with '/'.
            _ if w.starts_with('/') && words.peek().is_some() => return Err(inv.syntax_error()),
            _ if w.starts_with('/') && w.len() < 4 => return Err(inv.syntax_error()),

            _ => path = Some(w.to_string()),
        }
    }
    // WinDbg answers a `.dump` without a file with its usage.
    let path = path.ok_or_else(|| {
        CommandError::Usage("Usage: .dump [/m | /ma] [/o] [/c \"comment\"] FileName".into())
    })?;
    let path = path.trim_matches('"').to_string();
    if std::path::Path::new(&path).exists() && !overwrite {
        return Err(CommandError::Usage(format!(
            "Dump file '{path}' already exists (.dump /o overwrites it)"
        )));
    }
    let target = s.target();
    // A full-memory dump can only be written from one: /ma of a minidump keeps every byte the
    // minidump has, but does not claim MiniDumpWithFullMemory (readers would then take absent
    // memory for memory that was never committed).
    let source_full = target.facts().flags & MINIDUMP_WITH_FULL_MEMORY != 0;
    let mut note = String::new();
    if full && !source_full {
        note =
            "The source is a minidump: writing all the memory it holds, not a full dump\n".into();
    }
    let memory = if full {
        target.captured_ranges().to_vec()
    } else {
        minidump_memory(s)
    };
    let plan = DumpPlan {
        memory,
        full_memory: full && source_full,
        comment,
    };
    let file = std::fs::File::create(&path)
        .map_err(|e| CommandError::Unavailable(format!("Unable to create '{path}': {e}")))?;
    let mut out = std::io::BufWriter::new(file);
    write_minidump(target, &plan, &mut out)
        .and_then(|_| std::io::Write::flush(&mut out))
        .map_err(|e| CommandError::Unavailable(format!("Unable to write '{path}': {e}")))?;
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    Ok(format!(
        "{note}Creating {path} - {} dump\nDump successfully written ({} bytes)\n",
        if plan.full_memory {
            "user full"
        } else {
            "mini user"
        },
        size
    ))
}

/// The memory a `/m` dump keeps (see the module documentation).
fn minidump_memory(s: &Session) -> Vec<(u64, u64)> {
    let t = s.target();
    let mem = t.memory();
    let mut keep: Vec<(u64, u64)> = Vec::new();
    let mut modules: Vec<(u64, u64)> = t
        .modules()
        .iter()
        .map(|m| (m.base, m.base.saturating_add(m.size as u64)))
        .collect();
    modules.sort_unstable();
    let views: Vec<View> = if s.is_wow64() {
        vec![View::Native, View::Wow64X86]
    } else {
        vec![View::Native]
    };
    for &view in &views {
        let pv = ProcessView::new(t, view);
        let l = pv.layout();
        for i in 0..t.threads().len() {
            if let Some(teb) = pv.teb_of(i) {
                keep.push((teb, 0x2000));
            }
            if let Some(ctx) = pv.thread_context(i) {
                // From below the stack pointer (where residue of past calls and exceptions
                // stays: what the Hidden Exception and Execution Residue detectors read) to
                // the stack's base.
                let b = dumpdiag_stack::thread_bounds(&pv, i, ctx.sp());
                let low = ctx.sp().saturating_sub(RESIDUE_BELOW_SP).max(b.low);
                keep.push((low, b.high.saturating_sub(low)));
                keep.extend(code_before_stack_values(t, &modules, low, b.high, l.ptr));

                let stack = dumpdiag_stack::walk_thread(&pv, s.symbols(), i, &ctx);
                for f in &stack.frames {
                    keep.push((
                        f.ip.saturating_sub(CODE_AROUND_FRAME),
                        2 * CODE_AROUND_FRAME,
                    ));
                }
            }
            // WOW64: the x86 context the layer saved (TEB64 TLS slot 1).
            if view == View::Native && s.is_wow64() {
                let slot = t.threads()[i]
                    .teb
                    .wrapping_add(dumpdiag_os::layout::X64.teb_tls_slots + 8);
                if let Some(cpu) = mem.read_u64(slot).filter(|&a| a != 0) {
                    keep.push((cpu, 0x1000));
                }
            }
        }
        if let Some(peb_addr) = pv.peb_address() {
            keep.push((peb_addr, 0x1000));
            if let Some(p) = peb::read_peb(mem, peb_addr, &l) {
                keep.push((p.ldr, 0x100));
                for e in peb::loader_entries(mem, &p, &l)
                    .iter()
                    .take(MAX_LOADER_ENTRIES)
                {
                    keep.push((e.entry, LOADER_ENTRY));
                    // The names' buffers: UNICODE_STRING {Length, MaximumLength, Buffer}.
                    for off in [l.entry_full_name, l.entry_base_name] {
                        let us = e.entry.wrapping_add(off);
                        let len = mem.read_u16(us).unwrap_or(0) as u64;
                        if let Some(buf) = mem.read_ptr(us.wrapping_add(l.ptr), l.ptr) {
                            keep.push((buf, len + 2));
                        }
                    }
                }
                if let Some(pp) = peb::read_process_parameters(mem, p.process_parameters, &l) {
                    keep.push((pp.address, 0x1000));
                    keep.push((
                        pp.environment_address,
                        peb::MAX_ENVIRONMENT_BYTES as u64 / 16,
                    ));
                    keep.extend(parameter_strings(s, &pv, pp.address));
                }
            }
        }
    }
    for m in t.modules() {
        let system = dumpdiag_os::known::is_system_path(&m.path);
        keep.extend(module_memory(
            t,
            m.base,
            if system { SYSTEM_DATA } else { u64::MAX },
        ));
    }
    // Code generated at run time (JIT): the unwind data its dynamic function tables point to.
    if t.facts().arch == dumpdiag_target::Arch::Amd64 {
        for table in &t.extras().function_tables {
            keep.extend(unwind_info_of(t, table.base_address, &table.entries));
        }
    }
    // The locks threads wait on, and their debug information.
    for w in dumpdiag_analysis::Evidence::gather(&s.analysis_input()).waits() {
        if let dumpdiag_analysis::waits::WaitObject::CriticalSection(cs) = &w.object {
            keep.push((cs.address, CRITICAL_SECTION));
            if let Some(debug) = mem.read_ptr(cs.address, s.ptr()).filter(|&d| d != 0) {
                keep.push((debug, CRITICAL_SECTION_DEBUG));
            }
        }
    }
    for h in &s.address_map().heaps {
        for seg in &h.segments {
            keep.push((seg.base, 0x1000));
        }
    }
    keep
}

/// The bytes before every stack value that points into a module: a stack scan (and the
/// Execution Residue and Hidden Exception detectors) accepts a value as a return address only
/// when a call instruction ends just before it, so the copy must hold those bytes to walk and
/// judge the stack as the original does. Bounded by the stack's size (one read).
fn code_before_stack_values(
    t: &dyn Target,
    modules: &[(u64, u64)],
    low: u64,
    high: u64,
    ptr: u64,
) -> Vec<(u64, u64)> {
    /// The longest call instruction (7 bytes for `call [rip+disp32]` with a prefix) and some
    /// room for `ub` to line up.
    const BEFORE: u64 = 16;
    /// Read page by page: the range may start below the committed stack.
    const PAGE: u64 = 0x1000;
    let high = high.min(low.saturating_add(MAX_STACK_SCANNED));
    let mut pages = Vec::new();
    let mut at = low;
    while at < high {
        let end = (at | (PAGE - 1)).saturating_add(1).min(high);
        pages.push(t.memory().read_bytes(at, (end - at) as usize));
        at = end;
    }
    pages
        .iter()
        .flat_map(|p| p.chunks_exact(ptr as usize))
        .filter_map(|c| {
            let v = if ptr == 8 {
                u64::from_le_bytes(c.try_into().ok()?)
            } else {
                u32::from_le_bytes(c.try_into().ok()?) as u64
            };
            let i = modules.partition_point(|m| m.0 <= v);
            let (base, end) = *modules.get(i.checked_sub(1)?)?;
            (v > base && v < end).then(|| (v.saturating_sub(BEFORE), BEFORE))
        })
        .collect()
}

/// The UNWIND_INFO each x64 RUNTIME_FUNCTION of `table` (BeginAddress, EndAddress, UnwindData,
/// RVAs from `base`) points to: its header (4 bytes), the unwind codes (2 bytes each, rounded
/// to 4) and a chained entry or handler (12 bytes at most).
fn unwind_info_of(t: &dyn Target, base: u64, table: &[u8]) -> Vec<(u64, u64)> {
    table
        .chunks_exact(12)
        .map(|e| {
            let unwind =
                base.wrapping_add((u32::from_le_bytes([e[8], e[9], e[10], e[11]]) & !1) as u64);
            let codes = t.memory().read_u8(unwind.wrapping_add(2)).unwrap_or(0) as u64;
            (unwind, 4 + (codes * 2).next_multiple_of(4) + 12)
        })
        .collect()
}

/// The strings RTL_USER_PROCESS_PARAMETERS points to (image path, command line, current
/// directory, DLL path, window title, desktop): UNICODE_STRINGs at the layout's offsets.
fn parameter_strings(s: &Session, pv: &ProcessView, params: u64) -> Vec<(u64, u64)> {
    let l = pv.layout();
    let mem = s.target().memory();
    [
        l.params_current_directory,
        l.params_dll_path,
        l.params_image_path,
        l.params_command_line,
        l.params_window_title,
        l.params_desktop_info,
    ]
    .iter()
    .filter_map(|&off| {
        let us = params.wrapping_add(off);
        let len = mem.read_u16(us)? as u64;
        let buf = mem.read_ptr(us.wrapping_add(l.ptr), l.ptr)?;
        Some((buf, len + 2))
    })
    .collect()
}

/// A module's headers, directories a reader needs, unwind data and writable sections (each
/// kept up to `max_data` bytes).
fn module_memory(t: &dyn Target, base: u64, max_data: u64) -> Vec<(u64, u64)> {
    let mem = t.memory();
    let mut keep = vec![(base, 0x1000)];
    let Some(h) = pe::read_headers(mem, base) else {
        return keep;
    };
    let at = |rva: u32| base.wrapping_add(rva as u64);
    for dir in [pe::DIR_EXPORT, pe::DIR_EXCEPTION, pe::DIR_DEBUG] {
        if let Some((rva, size)) = h.directory(dir) {
            keep.push((at(rva), size as u64));
        }
    }
    if let Some((rva, size)) = h.directory(pe::DIR_RESOURCE) {
        if (size as u64) <= MAX_RESOURCES {
            keep.push((at(rva), size as u64));
        }
    }
    // The CodeView record the debug directory points to (IMAGE_DEBUG_DIRECTORY: 28 bytes each,
    // AddressOfRawData at +20, SizeOfData at +16).
    if let Some((rva, size)) = h.directory(pe::DIR_DEBUG) {
        for i in 0..(size / 28).min(16) {
            let e = at(rva).wrapping_add(28 * i as u64);
            if let (Some(len), Some(data)) = (mem.read_u32(e + 16), mem.read_u32(e + 20)) {
                if data != 0 {
                    keep.push((at(data), len.min(0x1000) as u64));
                }
            }
        }
    }
    // UNWIND_INFO of every RUNTIME_FUNCTION (x64: BeginAddress, EndAddress, UnwindData):
    // header (4 bytes), the unwind codes (2 bytes each, rounded to 4) and a chained entry or
    // handler (12 bytes at most).
    if let Some((rva, size)) = h.directory(pe::DIR_EXCEPTION) {
        if h.magic == 0x20b {
            let table = mem.read_bytes(at(rva), size as usize);
            keep.extend(unwind_info_of(t, base, &table));
        }
    }
    for sec in h
        .sections
        .iter()
        .filter(|s| s.characteristics & SCN_MEM_WRITE != 0)
    {
        let size = sec.virtual_size.max(sec.raw_size) as u64;
        keep.push((at(sec.virtual_address), size.min(max_data)));
    }
    keep
}
