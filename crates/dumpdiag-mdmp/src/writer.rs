//! Writing MDMP files from any [`Target`]: what `.dump /m` and `.dump /ma` save. The caller
//! chooses which memory to keep; everything else the target knows is carried over — system
//! facts, threads with their contexts, modules with their version and CodeView records,
//! unloaded modules, thread times, the memory map, handles with their object information, the
//! exception with its context, dynamic function tables, and a comment.
//!
//! Written by hand on minidumpapiset.h's layouts: the `minidump` crate reads MDMP but does not
//! write it, and `minidump-writer` writes dumps of live processes, not of another dump. Offsets
//! are computed while laying the file out ([`Layout`]), never typed.
//!
//! File layout: header, stream directory, the saved memory (so a full dump's Memory64List can
//! describe one contiguous block), then the streams and the blobs they point to.

use std::io::{self, Write};

use dumpdiag_target::{Arch, CodeViewRecord, MemoryExt, Target};

/// MINIDUMP_STREAM_TYPE values written here.
const THREAD_LIST: u32 = 3;
const MODULE_LIST: u32 = 4;
const MEMORY_LIST: u32 = 5;
const EXCEPTION: u32 = 6;
const SYSTEM_INFO: u32 = 7;
const MEMORY64_LIST: u32 = 9;
const COMMENT_A: u32 = 10;
const COMMENT_W: u32 = 11;
const HANDLE_DATA: u32 = 12;
const FUNCTION_TABLE: u32 = 13;
const UNLOADED_MODULE_LIST: u32 = 14;
const MISC_INFO: u32 = 15;
const MEMORY_INFO_LIST: u32 = 16;
const THREAD_INFO_LIST: u32 = 17;
const THREAD_NAMES: u32 = 24;

/// MINIDUMP_TYPE flags the written file claims.
const WITH_FULL_MEMORY: u64 = 0x2;
const WITH_HANDLE_DATA: u64 = 0x4;
const WITH_UNLOADED_MODULES: u64 = 0x20;
const WITH_FULL_MEMORY_INFO: u64 = 0x800;
const WITH_THREAD_INFO: u64 = 0x1000;

/// PROCESSOR_ARCHITECTURE values (winnt.h).
fn processor_architecture(arch: Arch) -> u16 {
    match arch {
        Arch::X86 => 0,
        Arch::Amd64 => 9,
        Arch::Arm64 => 12,
        Arch::Other(v) => v,
    }
}

/// What to save.
#[derive(Debug, Clone, Default)]
pub struct DumpPlan {
    /// Memory to keep, as (start, size); clipped to what the target holds, merged.
    pub memory: Vec<(u64, u64)>,
    /// A full-memory dump (Memory64List, MiniDumpWithFullMemory) rather than a minidump.
    pub full_memory: bool,
    /// A comment replacing the dump's own (CommentStreamW); without one, the dump's comments are
    /// kept.
    pub comment: Option<String>,
}

/// A little-endian byte buffer whose positions are file offsets (it starts at `base`).
struct Out {
    base: u64,
    buf: Vec<u8>,
}

impl Out {
    fn rva(&self) -> u32 {
        (self.base + self.buf.len() as u64).min(u32::MAX as u64) as u32
    }
    fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }
    fn align(&mut self, n: usize) {
        while !(self.base + self.buf.len() as u64).is_multiple_of(n as u64) {
            self.buf.push(0);
        }
    }
    /// MINIDUMP_STRING: byte length, UTF-16, NUL; its RVA.
    fn string(&mut self, s: &str) -> u32 {
        self.align(4);
        let at = self.rva();
        let units: Vec<u16> = s.encode_utf16().collect();
        self.u32(units.len() as u32 * 2);
        for u in units {
            self.u16(u);
        }
        self.u16(0);
        at
    }
    /// A blob; (size, RVA).
    fn blob(&mut self, b: &[u8]) -> (u32, u32) {
        self.align(4);
        let at = self.rva();
        self.bytes(b);
        (b.len() as u32, at)
    }
}

/// The saved memory ranges: the plan's ranges clipped to what the target captured, sorted and
/// merged, each with its file offset.
struct SavedMemory {
    ranges: Vec<(u64, u64)>,
}

impl SavedMemory {
    fn new(target: &dyn Target, wanted: &[(u64, u64)]) -> SavedMemory {
        let mut want: Vec<(u64, u64)> = wanted
            .iter()
            .filter(|r| r.1 > 0)
            .map(|&(s, n)| (s, s.saturating_add(n)))
            .collect();
        want.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for (s, e) in want {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        // Keep what the dump holds: intersections with its captured ranges.
        let mut ranges = Vec::new();
        for &(cs, cn) in target.captured_ranges() {
            let ce = cs.saturating_add(cn);
            let first = merged.partition_point(|m| m.1 <= cs);
            for &(s, e) in merged[first..].iter().take_while(|m| m.0 < ce) {
                let (a, b) = (s.max(cs), e.min(ce));
                if a < b {
                    ranges.push((a, b - a));
                }
            }
        }
        ranges.sort_unstable();
        SavedMemory { ranges }
    }

    fn total(&self) -> u64 {
        self.ranges.iter().map(|r| r.1).sum()
    }

    /// (file offset, size) of the saved bytes covering `[start, start + size)` when one saved
    /// range holds them all.
    fn locate(&self, base_rva: u64, start: u64, size: u64) -> Option<(u64, u64)> {
        let mut off = base_rva;
        for &(s, n) in &self.ranges {
            if start >= s && start.saturating_add(size) <= s + n {
                return Some((off + (start - s), size));
            }
            off += n;
        }
        None
    }
}

/// The context of thread `index` (or the exception's) as the file stores it.
fn context_bytes(ctx: &dumpdiag_target::Context) -> Vec<u8> {
    ctx.encode()
}

/// Write `target` as an MDMP file following `plan`.
pub fn write_minidump(target: &dyn Target, plan: &DumpPlan, out: &mut dyn Write) -> io::Result<()> {
    let facts = target.facts();
    let memory = SavedMemory::new(target, &plan.memory);
    let mut streams: Vec<u32> = vec![SYSTEM_INFO, MISC_INFO, THREAD_LIST, MODULE_LIST];
    if !target.unloaded_modules().is_empty() {
        streams.push(UNLOADED_MODULE_LIST);
    }
    if target.threads().iter().any(|t| t.info.is_some()) {
        streams.push(THREAD_INFO_LIST);
    }
    if target.threads().iter().any(|t| t.name.is_some()) {
        streams.push(THREAD_NAMES);
    }
    if !target.regions().is_empty() {
        streams.push(MEMORY_INFO_LIST);
    }
    if target.handles().is_some() {
        streams.push(HANDLE_DATA);
    }
    if target.exception().is_some() {
        streams.push(EXCEPTION);
    }
    if !target.extras().function_tables.is_empty() {
        streams.push(FUNCTION_TABLE);
    }
    // A new comment replaces the dump's own; without one, the dump's comments are kept.
    let extras = target.extras();
    if plan.comment.is_none() && extras.comment_a.is_some() {
        streams.push(COMMENT_A);
    }
    if plan.comment.is_some() || extras.comment_w.is_some() {
        streams.push(COMMENT_W);
    }
    streams.push(if plan.full_memory {
        MEMORY64_LIST
    } else {
        MEMORY_LIST
    });

    let directory_rva = 32u64;
    let streams_rva = directory_rva + 12 * streams.len() as u64;
    // The streams come before the memory, so that every stream's 32-bit RVA stays valid however
    // large a full dump's memory is (Memory64List addresses its block with a 64-bit RVA). The
    // streams' size does not depend on where the memory starts (every field is fixed-width), so
    // a first pass measures them and the second writes them with the memory's real offset.
    let measured = streams_and_directory(target, plan, &memory, &streams, streams_rva, 0)?;
    let memory_rva = (streams_rva + measured.0.buf.len() as u64).next_multiple_of(16);
    let (o, directory) =
        streams_and_directory(target, plan, &memory, &streams, streams_rva, memory_rva)?;
    if !plan.full_memory && memory_rva + memory.total() > u32::MAX as u64 {
        return Err(io::Error::other(
            "a minidump's memory list addresses 4 GB at most: write a full dump (/ma)",
        ));
    }

    // Only what the file holds is claimed.
    let mut flags = 0;
    for (stream, flag) in [
        (HANDLE_DATA, WITH_HANDLE_DATA),
        (UNLOADED_MODULE_LIST, WITH_UNLOADED_MODULES),
        (THREAD_INFO_LIST, WITH_THREAD_INFO),
    ] {
        if streams.contains(&stream) {
            flags |= flag;
        }
    }
    if plan.full_memory {
        flags |= WITH_FULL_MEMORY;
        if streams.contains(&MEMORY_INFO_LIST) {
            flags |= WITH_FULL_MEMORY_INFO;
        }
    }

    // Header and directory, the streams, then the memory.
    let mut head = Out {
        base: 0,
        buf: Vec::new(),
    };
    head.u32(0x504d_444d)
        .u32(0xa793)
        .u32(streams.len() as u32)
        .u32(directory_rva as u32);
    head.u32(0).u32(facts.dump_time).u64(flags);
    for (t, size, rva) in &directory {
        head.u32(*t).u32(*size).u32(*rva);
    }
    out.write_all(&head.buf)?;
    out.write_all(&o.buf)?;
    out.write_all(&vec![0; (memory_rva - streams_rva) as usize - o.buf.len()])?;
    let mem = target.memory();
    const CHUNK: u64 = 1 << 20;
    for &(s, n) in &memory.ranges {
        let mut a = s;
        while a < s + n {
            let len = (s + n - a).min(CHUNK) as usize;
            let mut bytes = mem.read_bytes(a, len);
            bytes.resize(len, 0);
            out.write_all(&bytes)?;
            a += len as u64;
        }
    }
    Ok(())
}

/// The streams laid out from file offset `streams_rva`, with the saved memory at `memory_rva`;
/// and the directory entries (type, size, RVA) describing them.
#[allow(clippy::type_complexity)]
fn streams_and_directory(
    target: &dyn Target,
    plan: &DumpPlan,
    memory: &SavedMemory,
    streams: &[u32],
    streams_rva: u64,
    memory_rva: u64,
) -> io::Result<(Out, Vec<(u32, u32, u32)>)> {
    let facts = target.facts();
    let mut o = Out {
        base: streams_rva,
        buf: Vec::new(),
    };
    let mut directory: Vec<(u32, u32, u32)> = Vec::new();
    for &stream in streams {
        let (rva, size) = match stream {
            SYSTEM_INFO => {
                let csd = o.string(&facts.csd_version);
                o.align(4);
                let at = o.rva();
                o.u16(processor_architecture(facts.arch))
                    .u16(facts.processor_level)
                    .u16(facts.processor_revision);
                o.buf.push(facts.processor_count);
                o.buf.push(facts.product_type);
                o.u32(facts.os_major)
                    .u32(facts.os_minor)
                    .u32(facts.os_build)
                    .u32(facts.platform_id);
                o.u32(csd).u16(facts.suite_mask).u16(0);
                // CPU_INFORMATION (24 bytes): the vendor id for x86-family processors.
                let mut cpu = [0u8; 24];
                if let Some(v) = &facts.cpu_vendor {
                    for (i, b) in v.bytes().take(12).enumerate() {
                        cpu[i] = b;
                    }
                }
                o.bytes(&cpu);
                (at, 56)
            }
            MISC_INFO => {
                o.align(4);
                let at = o.rva();
                let bytes = misc_info(facts);
                o.bytes(&bytes);
                (at, bytes.len() as u32)
            }
            THREAD_LIST => {
                let contexts: Vec<(u32, u32)> = (0..target.threads().len())
                    .map(|i| match target.thread_context(i) {
                        Some(c) => o.blob(&context_bytes(&c)),
                        None => (0, 0),
                    })
                    .collect();
                o.align(4);
                let at = o.rva();
                o.u32(target.threads().len() as u32);
                for (t, (csize, crva)) in target.threads().iter().zip(contexts) {
                    o.u32(t.id)
                        .u32(t.suspend_count)
                        .u32(t.priority_class)
                        .u32(t.priority);
                    o.u64(t.teb);
                    // The stack descriptor: the part of the captured stack that was saved.
                    let (start, size) = (t.stack_start, t.stack_size);
                    // Past 4 GB (a large full dump) the RVA cannot say it: readers find the
                    // stack in Memory64List.
                    match memory
                        .locate(memory_rva, start, size)
                        .filter(|&(off, n)| off + n <= u32::MAX as u64)
                    {
                        Some((off, n)) => o.u64(start).u32(n as u32).u32(off as u32),
                        None => o.u64(start).u32(0).u32(0),
                    };
                    o.u32(csize).u32(crva);
                }
                (at, (o.rva() - at))
            }
            MODULE_LIST => {
                let names: Vec<u32> = target.modules().iter().map(|m| o.string(&m.path)).collect();
                let cvs: Vec<(u32, u32)> = target
                    .modules()
                    .iter()
                    .map(|m| match &m.codeview {
                        Some(cv) => o.blob(&codeview_bytes(cv)),
                        None => (0, 0),
                    })
                    .collect();
                o.align(4);
                let at = o.rva();
                o.u32(target.modules().len() as u32);
                for ((m, name), (cvsize, cvrva)) in target.modules().iter().zip(names).zip(cvs) {
                    o.u64(m.base)
                        .u32(m.size)
                        .u32(m.checksum)
                        .u32(m.time_date_stamp)
                        .u32(name);
                    // VS_FIXEDFILEINFO (52 bytes).
                    let v = m.version.clone().unwrap_or_default();
                    let ver = |x: (u16, u16, u16, u16)| {
                        (
                            (x.0 as u32) << 16 | x.1 as u32,
                            (x.2 as u32) << 16 | x.3 as u32,
                        )
                    };
                    let (fh, fl) = ver(v.file_version);
                    let (ph, pl) = ver(v.product_version);
                    o.u32(v.signature)
                        .u32(if v.signature != 0 { 0x10000 } else { 0 });
                    o.u32(fh).u32(fl).u32(ph).u32(pl);
                    o.u32(v.file_flags_mask).u32(v.file_flags).u32(v.file_os);
                    o.u32(v.file_type).u32(v.file_subtype);
                    o.u32((v.file_date >> 32) as u32).u32(v.file_date as u32);
                    o.u32(cvsize).u32(cvrva).u32(0).u32(0).u64(0).u64(0);
                }
                (at, o.rva() - at)
            }
            UNLOADED_MODULE_LIST => {
                let names: Vec<u32> = target
                    .unloaded_modules()
                    .iter()
                    .map(|m| o.string(&m.path))
                    .collect();
                o.align(4);
                let at = o.rva();
                o.u32(12)
                    .u32(24)
                    .u32(target.unloaded_modules().len() as u32);
                for (m, name) in target.unloaded_modules().iter().zip(names) {
                    o.u64(m.base)
                        .u32(m.size)
                        .u32(m.checksum)
                        .u32(m.time_date_stamp)
                        .u32(name);
                }
                (at, o.rva() - at)
            }
            THREAD_INFO_LIST => {
                o.align(4);
                let at = o.rva();
                let with: Vec<_> = target
                    .threads()
                    .iter()
                    .filter(|t| t.info.is_some())
                    .collect();
                o.u32(12).u32(64).u32(with.len() as u32);
                for t in with {
                    let x = t.info.clone().unwrap_or_default();
                    o.u32(t.id)
                        .u32(x.dump_flags)
                        .u32(x.dump_error)
                        .u32(x.exit_status);
                    o.u64(x.create_time)
                        .u64(x.exit_time)
                        .u64(x.kernel_time)
                        .u64(x.user_time);
                    o.u64(x.start_address).u64(x.affinity);
                }
                (at, o.rva() - at)
            }
            MEMORY_INFO_LIST => {
                o.align(8);
                let at = o.rva();
                o.u32(16).u32(48).u64(target.regions().len() as u64);
                for r in target.regions() {
                    o.u64(r.base)
                        .u64(r.allocation_base)
                        .u32(r.allocation_protect)
                        .u32(0);
                    o.u64(r.size).u32(r.state).u32(r.protect).u32(r.kind).u32(0);
                }
                (at, o.rva() - at)
            }
            HANDLE_DATA => {
                let handles = target.handles().unwrap_or(&[]);
                // Strings and object information first, then the descriptors pointing to them.
                let mut strings = Vec::new();
                for h in handles {
                    let ty = h.type_name.as_deref().map(|s| o.string(s)).unwrap_or(0);
                    let name = h.object_name.as_deref().map(|s| o.string(s)).unwrap_or(0);
                    // MINIDUMP_HANDLE_OBJECT_INFORMATION chain, written last to first.
                    let mut next = 0u32;
                    for (kind, bytes) in h.object_info.iter().rev() {
                        o.align(4);
                        let at = o.rva();
                        o.u32(next).u32(*kind).u32(bytes.len() as u32).bytes(bytes);
                        next = at;
                    }
                    strings.push((ty, name, next));
                }
                o.align(8);
                let at = o.rva();
                o.u32(16).u32(40).u32(handles.len() as u32).u32(0);
                for (h, (ty, name, info)) in handles.iter().zip(strings) {
                    o.u64(h.handle)
                        .u32(ty)
                        .u32(name)
                        .u32(h.attributes)
                        .u32(h.granted_access);
                    o.u32(h.handle_count).u32(h.pointer_count).u32(info).u32(0);
                }
                (at, o.rva() - at)
            }
            EXCEPTION => {
                let e = target.exception().cloned().unwrap_or_default();
                let ctx = target
                    .exception_context()
                    .map(|c| o.blob(&context_bytes(&c)));
                o.align(8);
                let at = o.rva();
                o.u32(e.thread_id).u32(0);
                let r = &e.record;
                o.u32(r.code)
                    .u32(r.flags)
                    .u64(r.nested_record)
                    .u64(r.address);
                o.u32(r.parameters.len().min(15) as u32).u32(0);
                for i in 0..15 {
                    o.u64(r.parameters.get(i).copied().unwrap_or(0));
                }
                let (csize, crva) = ctx.unwrap_or((0, 0));
                o.u32(csize).u32(crva);
                (at, o.rva() - at)
            }
            FUNCTION_TABLE => {
                o.align(8);
                let at = o.rva();
                let tables = &target.extras().function_tables;
                // RUNTIME_FUNCTION: 12 bytes on x64 (Begin, End, UnwindData RVAs); x86 dumps
                // carry FPO_DATA (16 bytes).
                let entry = if facts.arch == Arch::X86 { 16u32 } else { 12 };
                // MINIDUMP_FUNCTION_TABLE_STREAM: SizeOfHeader 24, SizeOfDescriptor 32,
                // SizeOfNativeDescriptor 0 (the native table is not kept), SizeOfFunctionEntry,
                // NumberOfDescriptors, SizeOfAlignPad 0; each MINIDUMP_FUNCTION_TABLE_DESCRIPTOR
                // (32 bytes) is followed by its entries.
                o.u32(24)
                    .u32(32)
                    .u32(0)
                    .u32(entry)
                    .u32(tables.len() as u32)
                    .u32(0);
                for t in tables {
                    let n = (t.entries.len() / entry as usize) as u32;
                    o.u64(t.minimum_address)
                        .u64(t.maximum_address)
                        .u64(t.base_address);
                    o.u32(n).u32(0);
                    o.bytes(&t.entries[..n as usize * entry as usize]);
                }
                (at, o.rva() - at)
            }
            THREAD_NAMES => {
                // MINIDUMP_THREAD_NAME_LIST: a count, then {ThreadId, RVA64 of a
                // MINIDUMP_STRING} per named thread (12 bytes each: the header packs to 4).
                let named: Vec<(u32, u32)> = target
                    .threads()
                    .iter()
                    .filter_map(|t| Some((t.id, o.string(t.name.as_deref()?))))
                    .collect();
                o.align(4);
                let at = o.rva();
                o.u32(named.len() as u32);
                for (id, name) in named {
                    o.u32(id).u64(name as u64);
                }
                (at, o.rva() - at)
            }
            COMMENT_A => {
                let at = o.rva();
                let text = target.extras().comment_a.clone().unwrap_or_default();
                o.bytes(text.as_bytes());
                o.buf.push(0);
                (at, o.rva() - at)
            }
            COMMENT_W => {
                o.align(2);
                let at = o.rva();
                let text = plan
                    .comment
                    .clone()
                    .or_else(|| target.extras().comment_w.clone())
                    .unwrap_or_default();
                for u in text.encode_utf16() {
                    o.u16(u);
                }
                o.u16(0);
                (at, o.rva() - at)
            }
            MEMORY64_LIST => {
                o.align(8);
                let at = o.rva();
                o.u64(memory.ranges.len() as u64).u64(memory_rva);
                for &(s, n) in &memory.ranges {
                    o.u64(s).u64(n);
                }
                (at, o.rva() - at)
            }
            _ => {
                // MEMORY_LIST: a descriptor per range pointing into the saved block.
                o.align(4);
                let at = o.rva();
                o.u32(memory.ranges.len() as u32);
                let mut off = memory_rva;
                for &(s, n) in &memory.ranges {
                    o.u64(s).u32(n as u32).u32(off as u32);
                    off += n;
                }
                (at, o.rva() - at)
            }
        };
        directory.push((stream, size, rva));
    }

    if o.buf.len() as u64 + streams_rva > u32::MAX as u64 {
        return Err(io::Error::other("the streams would not fit in 4 GB"));
    }
    Ok((o, directory))
}

/// MINIDUMP_MISC_INFO_5 with every field the target knows, each flagged in Flags1.
fn misc_info(f: &dumpdiag_target::DumpFacts) -> Vec<u8> {
    use minidump_common::format::{
        MiscInfoFlags as F, MINIDUMP_MISC_INFO_5, TIME_ZONE_INFORMATION,
        XSTATE_CONFIG_FEATURE_MSC_INFO, XSTATE_FEATURE,
    };
    use scroll::ctx::SizeWith;
    use scroll::Pwrite;

    fn utf16<const N: usize>(s: &str) -> [u16; N] {
        let mut out = [0u16; N];
        for (slot, u) in out.iter_mut().take(N - 1).zip(s.encode_utf16()) {
            *slot = u;
        }
        out
    }
    let mut flags = F::empty();
    let mut set = |present: bool, flag: F| {
        if present {
            flags |= flag;
        }
    };
    set(f.process_id.is_some(), F::MINIDUMP_MISC1_PROCESS_ID);
    set(
        f.process_create_time.is_some(),
        F::MINIDUMP_MISC1_PROCESS_TIMES,
    );
    set(
        f.processor_max_mhz.is_some(),
        F::MINIDUMP_MISC1_PROCESSOR_POWER_INFO,
    );
    set(
        f.process_integrity_level.is_some(),
        F::MINIDUMP_MISC3_PROCESS_INTEGRITY,
    );
    set(
        f.process_execute_flags.is_some(),
        F::MINIDUMP_MISC3_PROCESS_EXECUTE_FLAGS,
    );
    set(f.time_zone_name.is_some(), F::MINIDUMP_MISC3_TIMEZONE);
    set(
        f.protected_process.is_some(),
        F::MINIDUMP_MISC3_PROTECTED_PROCESS,
    );
    set(
        f.build_string.is_some() || f.dbg_build_string.is_some(),
        F::MINIDUMP_MISC4_BUILDSTRING,
    );
    set(f.process_cookie.is_some(), F::MINIDUMP_MISC5_PROCESS_COOKIE);
    let mut xstate = XSTATE_CONFIG_FEATURE_MSC_INFO::default();
    if let Some(enabled) = f.xstate_enabled_features {
        xstate.enabled_features = enabled;
        for &(index, offset, size) in &f.xstate_features {
            if let Some(slot) = xstate.features.get_mut(index as usize) {
                *slot = XSTATE_FEATURE { offset, size };
            }
        }
    }
    let size = MINIDUMP_MISC_INFO_5::size_with(&scroll::LE);
    let info = MINIDUMP_MISC_INFO_5 {
        size_of_info: size as u32,
        flags1: flags.bits(),
        process_id: f.process_id.unwrap_or(0),
        process_create_time: f.process_create_time.unwrap_or(0),
        process_user_time: f.process_user_time.unwrap_or(0),
        process_kernel_time: f.process_kernel_time.unwrap_or(0),
        processor_max_mhz: f.processor_max_mhz.unwrap_or(0),
        processor_current_mhz: f.processor_current_mhz.unwrap_or(0),
        processor_mhz_limit: 0,
        processor_max_idle_state: 0,
        processor_current_idle_state: 0,
        process_integrity_level: f.process_integrity_level.unwrap_or(0),
        process_execute_flags: f.process_execute_flags.unwrap_or(0),
        protected_process: f.protected_process.unwrap_or(0),
        time_zone_id: 0,
        time_zone: TIME_ZONE_INFORMATION {
            standard_name: utf16(f.time_zone_name.as_deref().unwrap_or("")),
            ..Default::default()
        },
        build_string: utf16(f.build_string.as_deref().unwrap_or("")),
        dbg_bld_str: utf16(f.dbg_build_string.as_deref().unwrap_or("")),
        xstate_data: xstate,
        process_cookie: f.process_cookie.unwrap_or(0),
    };
    let mut out = vec![0u8; size];
    // The buffer is exactly the struct's size: writing cannot fail.
    let _ = out.pwrite_with(info, 0, scroll::LE);
    out
}

/// The CodeView record as the image carries it (RSDS or NB10).
fn codeview_bytes(cv: &CodeViewRecord) -> Vec<u8> {
    let mut b = Vec::new();
    match cv {
        CodeViewRecord::Pdb70 {
            guid,
            age,
            pdb_name,
        } => {
            b.extend_from_slice(b"RSDS");
            b.extend_from_slice(guid);
            b.extend_from_slice(&age.to_le_bytes());
            b.extend_from_slice(pdb_name.as_bytes());
            b.push(0);
        }
        CodeViewRecord::Pdb20 {
            signature,
            age,
            pdb_name,
        } => {
            b.extend_from_slice(b"NB10");
            b.extend_from_slice(&0u32.to_le_bytes());
            b.extend_from_slice(&signature.to_le_bytes());
            b.extend_from_slice(&age.to_le_bytes());
            b.extend_from_slice(pdb_name.as_bytes());
            b.push(0);
        }
        CodeViewRecord::Other { .. } => {}
    }
    b
}
