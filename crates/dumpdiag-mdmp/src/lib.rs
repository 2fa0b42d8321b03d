//! Dump readers: MDMP files (MiniDumpWriteDump, ProcDump, WER, Crashpad, Breakpad) and legacy
//! `USERDUMP`/`USERDU64` full dumps ([`userdump`]), each exposed as a
//! [`dumpdiag_target::Target`].
//!
//! # One entry point
//!
//! [`open_dump`] (and [`open_dump_bytes`] for a buffer) reads the file's signature and hands it
//! to the reader of its format, returning a `Box<dyn Target>`. Callers (the CLI, `dumpdiag
//! analyze`, tests, the fuzzer) use it and never name a format, so a new format is one more arm
//! in [`open_dump_bytes`]'s sniffing and nothing else changes. The readers stay public types
//! ([`MdmpTarget`], [`UserDumpTarget`]) for code that needs one format on purpose (the MDMP
//! writer's round-trip tests); [`MdmpTarget::open`] still refuses a legacy dump, naming it.
//! Both formats live in this crate because reading a dump file is one stage: they share the
//! memory map, the memory index and the error type.
//!
//! The file is memory-mapped and indexed once (stream directory, thread/module lists, memory
//! range descriptors); memory bytes and thread contexts are decoded on demand, so opening a
//! 100 MB full dump costs about what opening a 1 MB minidump does.
//!
//! Stream parsing builds on the `minidump` crate. A few streams are read here by hand because
//! the crate either does not parse them (comments, ThreadExList, FunctionTable, Token,
//! SystemMemoryInfo, ProcessVmCounters) or parses them in a way that loses data we need:
//! HandleData object-information chains (the crate keeps only the first entry), and memory
//! lists of truncated files (the crate drops a whole range that runs past the end of the file;
//! we keep the part that is there and warn).

mod memory;
mod streams;
pub mod userdump;
mod writer;

use std::fs::File;
use std::path::Path;

use dumpdiag_target::*;
use memmap2::Mmap;
use minidump::Minidump;
use minidump_common::format as md;

pub use memory::MemoryIndex;
pub use userdump::UserDumpTarget;
pub use writer::{write_minidump, DumpPlan};

#[derive(Debug)]
pub enum OpenError {
    Io(std::io::Error),
    NotAMinidump(String),
    /// A legacy full dump of the `USERDUMP`/`USERDU64` format (userdump.exe, ntsd/cdb `.dump`
    /// before Windows XP's minidumps) given to the MDMP reader: [`open_dump`] reads it.
    LegacyUserDump(&'static str),
    /// A legacy full dump too damaged to open (its header is missing or cut short).
    BadUserDump(String),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Io(e) => write!(f, "cannot read dump file: {e}"),
            OpenError::NotAMinidump(why) => write!(f, "not a readable MDMP dump: {why}"),
            OpenError::LegacyUserDump(sig) => write!(
                f,
                "not an MDMP dump: a legacy {sig} full dump (userdump.exe / ntsd .dump format), \
                 read by open_dump"
            ),
            OpenError::BadUserDump(why) => write!(f, "not a readable legacy user dump: {why}"),
        }
    }
}

/// The signature of a legacy user-mode full dump at the start of `data`, if it is one.
fn legacy_signature(data: &[u8]) -> Option<&'static str> {
    match data.get(..8)? {
        b"USERDU64" => Some("USERDU64"),
        b"USERDUMP" => Some("USERDUMP"),
        _ => None,
    }
}

impl std::error::Error for OpenError {}

/// Open a dump of any supported format (MDMP, legacy `USERDUMP`/`USERDU64`), chosen by the
/// file's signature.
pub fn open_dump(path: impl AsRef<Path>) -> Result<Box<dyn Target>, OpenError> {
    let path = path.as_ref();
    let file = File::open(path).map_err(OpenError::Io)?;
    // SAFETY: as in MdmpTarget::open: a read-only private map; a file changing under us only
    // yields garbage values, which both readers tolerate.
    let map = unsafe { Mmap::map(&file) }.map_err(OpenError::Io)?;
    open_backing(path.display().to_string(), Backing::Map(map))
}

/// [`open_dump`] of a dump held in memory (fuzzing, tests); `name` stands in for the path.
pub fn open_dump_bytes(name: &str, bytes: Vec<u8>) -> Result<Box<dyn Target>, OpenError> {
    open_backing(name.to_string(), Backing::Owned(bytes))
}

fn open_backing(path: String, map: Backing) -> Result<Box<dyn Target>, OpenError> {
    if legacy_signature(&map).is_some() {
        Ok(Box::new(UserDumpTarget::from_backing(path, map)?))
    } else {
        Ok(Box::new(MdmpTarget::from_backing(path, map)?))
    }
}

/// Where a context lives in the file.
#[derive(Debug, Clone, Copy, Default)]
struct FileSpan {
    offset: u64,
    size: u64,
}

/// The dump's bytes: a read-only map of the file, or a buffer (fuzzing, tests).
enum Backing {
    Map(Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Backing {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Backing::Map(m) => m,
            Backing::Owned(v) => v,
        }
    }
}

pub struct MdmpTarget {
    path: String,
    map: Backing,
    facts: DumpFacts,
    threads: Vec<ThreadRecord>,
    thread_contexts: Vec<Option<FileSpan>>,
    modules: Vec<ModuleRecord>,
    module_index: dumpdiag_target::ModuleIndex,
    unloaded: Vec<UnloadedModuleRecord>,
    regions: Vec<RegionInfo>,
    memory: MemoryIndex,
    exception: Option<ExceptionInfo>,
    exception_context: Option<FileSpan>,
    handles: Option<Vec<HandleRecord>>,
    extras: ProcessExtras,
    streams: Vec<StreamEntry>,
    warnings: Vec<String>,
}

impl MdmpTarget {
    pub fn open(path: impl AsRef<Path>) -> Result<MdmpTarget, OpenError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(OpenError::Io)?;
        // SAFETY: the map is read-only and private to this process; a dump file changing under
        // us can only produce garbage values, which every parser here already tolerates.
        let map = unsafe { Mmap::map(&file) }.map_err(OpenError::Io)?;
        Self::from_backing(path.display().to_string(), Backing::Map(map))
    }

    /// Read a dump held in memory (fuzzing, tests); `name` stands in for the path.
    pub fn from_bytes(name: &str, bytes: Vec<u8>) -> Result<MdmpTarget, OpenError> {
        Self::from_backing(name.to_string(), Backing::Owned(bytes))
    }

    fn from_backing(path: String, map: Backing) -> Result<MdmpTarget, OpenError> {
        let data: &[u8] = &map;
        if let Some(sig) = legacy_signature(data) {
            return Err(OpenError::LegacyUserDump(sig));
        }
        let dump = Minidump::read(data)
            .map_err(|e| OpenError::NotAMinidump(describe_error(&e, data.len())))?;
        let mut warnings = Vec::new();
        let streams = streams::directory(&dump, data.len() as u64, &mut warnings);

        let mut facts = streams::facts(&dump, data, &mut warnings);
        let misc = dump.get_stream::<minidump::MinidumpMiscInfo>().ok();
        if let Some(misc) = &misc {
            streams::apply_misc(&mut facts, misc);
        }

        let mut threads = Vec::new();
        let mut thread_contexts = Vec::new();
        match dump.get_stream::<minidump::MinidumpThreadList>() {
            Ok(list) => {
                for t in &list.threads {
                    let ctx = t.raw.thread_context;
                    threads.push(ThreadRecord {
                        id: t.raw.thread_id,
                        suspend_count: t.raw.suspend_count,
                        priority_class: t.raw.priority_class,
                        priority: t.raw.priority,
                        teb: t.raw.teb,
                        stack_start: t.raw.stack.start_of_memory_range,
                        stack_size: t.raw.stack.memory.data_size as u64,
                        context_size: ctx.data_size,
                        ..Default::default()
                    });
                    let span =
                        memory::clip(ctx.rva as u64, ctx.data_size as u64, data.len() as u64);
                    if span.is_none() && ctx.data_size != 0 {
                        warnings.push(format!(
                            "thread {:x}: context lies outside the file",
                            t.raw.thread_id
                        ));
                    }
                    thread_contexts.push(span.map(|(offset, size)| FileSpan { offset, size }));
                }
            }
            Err(e) if has_stream(&streams, md::MINIDUMP_STREAM_TYPE::ThreadListStream) => {
                warnings.push(format!("ThreadList stream unreadable: {}", e.name()))
            }
            Err(_) => {}
        }
        // Names, module lists: read by hand within one budget (see `streams::Budget`).
        let mut names = streams::Budget::names();
        if let Ok(bytes) = dump.get_raw_stream(md::MINIDUMP_STREAM_TYPE::ThreadNamesStream as u32) {
            let mut ids: Vec<u32> = threads.iter().map(|t| t.id).collect();
            ids.sort_unstable();
            let found = streams::thread_names(bytes, data, &ids, &mut names, &mut warnings);
            let mut found: std::collections::HashMap<u32, String> = found.into_iter().collect();
            for t in &mut threads {
                t.name = found.remove(&t.id);
            }
        }
        if let Ok(infos) = dump.get_stream::<minidump::MinidumpThreadInfoList>() {
            for t in &mut threads {
                if let Some(i) = infos.get_thread_info(t.id) {
                    let r = &i.raw;
                    t.info = Some(ThreadTimes {
                        dump_flags: r.dump_flags,
                        dump_error: r.dump_error,
                        exit_status: r.exit_status,
                        create_time: r.create_time,
                        exit_time: r.exit_time,
                        kernel_time: r.kernel_time,
                        user_time: r.user_time,
                        start_address: r.start_address,
                        affinity: r.affinity,
                    });
                }
            }
        } else if has_stream(&streams, md::MINIDUMP_STREAM_TYPE::ThreadInfoListStream) {
            warnings.push("ThreadInfoList stream unreadable".into());
        }

        let modules = dump
            .get_raw_stream(md::MINIDUMP_STREAM_TYPE::ModuleListStream as u32)
            .map(|bytes| streams::module_list(bytes, data, &mut names, &mut warnings))
            .unwrap_or_default();
        let unloaded = dump
            .get_raw_stream(md::MINIDUMP_STREAM_TYPE::UnloadedModuleListStream as u32)
            .map(|bytes| streams::unloaded_modules(bytes, data, &mut names, &mut warnings))
            .unwrap_or_default();

        let mut regions: Vec<RegionInfo> = dump
            .get_stream::<minidump::MinidumpMemoryInfoList>()
            .map(|l| {
                l.iter()
                    .map(|r| RegionInfo {
                        base: r.raw.base_address,
                        allocation_base: r.raw.allocation_base,
                        allocation_protect: r.raw.allocation_protection,
                        size: r.raw.region_size,
                        state: r.raw.state,
                        protect: r.raw.protection,
                        kind: r.raw._type,
                    })
                    .collect()
            })
            .unwrap_or_default();
        regions.sort_by_key(|r| r.base);

        let memory = MemoryIndex::build(&dump, data, &mut warnings);

        let mut exception = None;
        let mut exception_context = None;
        if let Ok(exc) = dump.get_stream::<minidump::MinidumpException>() {
            let r = &exc.raw.exception_record;
            let n = (r.number_parameters as usize).min(r.exception_information.len());
            exception = Some(ExceptionInfo {
                thread_id: exc.thread_id,
                record: ExceptionRecord {
                    code: r.exception_code,
                    flags: r.exception_flags,
                    nested_record: r.exception_record,
                    address: r.exception_address,
                    parameters: r.exception_information[..n].to_vec(),
                },
                context_available: exc.raw.thread_context.data_size > 0,
                first_chance: None,
            });
            let loc = exc.raw.thread_context;
            exception_context =
                memory::clip(loc.rva as u64, loc.data_size as u64, data.len() as u64)
                    .map(|(offset, size)| FileSpan { offset, size });
        } else if has_stream(&streams, md::MINIDUMP_STREAM_TYPE::ExceptionStream) {
            warnings.push("Exception stream unreadable".into());
        }

        let handles = dump
            .get_raw_stream(md::MINIDUMP_STREAM_TYPE::HandleDataStream as u32)
            .ok()
            .map(|bytes| streams::handles(bytes, data, &mut warnings));
        let extras = streams::extras(&dump, data, &mut warnings);

        Ok(MdmpTarget {
            path,
            facts,
            threads,
            thread_contexts,
            module_index: dumpdiag_target::ModuleIndex::new(&modules),
            modules,
            unloaded,
            regions,
            memory,
            exception,
            exception_context,
            handles,
            extras,
            streams,
            warnings,
            map,
        })
    }

    fn decode_context(&self, span: FileSpan) -> Option<Context> {
        let bytes = self
            .map
            .get(span.offset as usize..(span.offset + span.size) as usize)?;
        let arch = if self.facts.arch == Arch::Amd64
            && span.size as usize == dumpdiag_target::context::CONTEXT_X86_SIZE
        {
            // A 32-bit process dumped by a 32-bit writer on x64 still says AMD64 in some
            // Breakpad dumps; the context size tells the truth.
            Arch::X86
        } else {
            self.facts.arch
        };
        Context::decode(arch, bytes, &self.facts.xstate_features)
    }
}

fn has_stream(streams: &[StreamEntry], t: md::MINIDUMP_STREAM_TYPE) -> bool {
    streams.iter().any(|s| s.stream_type == t as u32)
}

fn describe_error(e: &minidump::Error, len: usize) -> String {
    match e {
        minidump::Error::MissingHeader => {
            format!("file too short for an MDMP header ({len} bytes)")
        }
        minidump::Error::HeaderMismatch => "no MDMP signature at the start of the file".into(),
        minidump::Error::VersionMismatch => "unsupported MDMP version".into(),
        minidump::Error::MissingDirectory => {
            "stream directory missing or cut short (truncated file?)".into()
        }
        other => other.name().to_string(),
    }
}

impl Target for MdmpTarget {
    fn facts(&self) -> &DumpFacts {
        &self.facts
    }
    fn threads(&self) -> &[ThreadRecord] {
        &self.threads
    }
    fn modules(&self) -> &[ModuleRecord] {
        &self.modules
    }
    fn module_at(&self, addr: u64) -> Option<&ModuleRecord> {
        self.module_index.find(addr).map(|i| &self.modules[i])
    }
    fn unloaded_modules(&self) -> &[UnloadedModuleRecord] {
        &self.unloaded
    }
    fn regions(&self) -> &[RegionInfo] {
        &self.regions
    }
    fn captured_ranges(&self) -> &[(u64, u64)] {
        self.memory.ranges()
    }
    fn memory(&self) -> &dyn MemoryReader {
        self
    }
    fn exception(&self) -> Option<&ExceptionInfo> {
        self.exception.as_ref()
    }
    fn exception_context(&self) -> Option<Context> {
        self.decode_context(self.exception_context?)
    }
    fn thread_context(&self, index: usize) -> Option<Context> {
        self.decode_context((*self.thread_contexts.get(index)?)?)
    }
    fn handles(&self) -> Option<&[HandleRecord]> {
        self.handles.as_deref()
    }
    fn extras(&self) -> &ProcessExtras {
        &self.extras
    }
    fn streams(&self) -> &[StreamEntry] {
        &self.streams
    }
    fn warnings(&self) -> &[String] {
        &self.warnings
    }
    fn path(&self) -> &str {
        &self.path
    }
    fn file_size(&self) -> u64 {
        self.map.len() as u64
    }
}

impl MemoryReader for MdmpTarget {
    fn read(&self, addr: u64, buf: &mut [u8]) -> usize {
        self.memory.read(&self.map, addr, buf)
    }
    fn slice(&self, addr: u64, max: usize) -> Option<&[u8]> {
        self.memory.slice(&self.map, addr, max)
    }
}

/// Stream type constant used by Wine's dbghelp for a private stream.
pub const WINE_PRIVATE_STREAM: u32 = 0xfff0;
