//! Legacy full user-mode dumps: the `USERDUMP` / `USERDU64` format that userdump.exe, Dr. Watson
//! and ntsd/cdb/WinDbg `.dump /f` wrote before minidumps took over (and that `.dump /f` still
//! writes). The whole committed, readable address space of the process is in the file, with
//! every thread's CONTEXT, the loaded modules and the debug event the debugger was stopped at.
//!
//! # Layout
//!
//! Microsoft never documented the format. It is learnt from public copies of the writer and its
//! header, and checked field by field against the real `USERDU64` dump of the corpus
//! (kdlibcpp's `targetapp_stacktest_x64_release.dmp`, written by a 64-bit debugger on Windows 10
//! 1803):
//!
//! - `ntiodump.h` of the Windows DDK/SDK era (`USERMODE_CRASHDUMP_HEADER{,32,64}`,
//!   `CRASH_MODULE{,32,64}`, `CRASH_THREAD{,32,64}`, the `DMP_*` section codes), also found as
//!   Microsoft Research Singularity's `base/Windows/Inc/Dump.h`;
//! - dbghelp's `userdump.c` (`DbgHelpCreateUserDumpW`): the order the sections are written in
//!   and what each holds, and the `MinorVersion` encoding;
//! - Ghidra's `ghidra.file.formats.dump.userdump` loader (NationalSecurityAgency/ghidra), a
//!   reader that maps each region's bytes the same way (consecutively from the data offset).
//!
//! (0vercl0k/udmp-parser, despite its name, reads MDMP only.)
//!
//! All values are little-endian. `P` is the writer's pointer size: 8 when `ValidDump` is `DU64`,
//! 4 when it is `DUMP`; every pointer-sized field below, including the header's offsets, is `P`
//! bytes, and every structure has its writer's native alignment.
//!
//! ```text
//! USERMODE_CRASHDUMP_HEADER (32 + 8P bytes at 0)
//!   0 Signature 'USER'       4 ValidDump 'DUMP' | 'DU64'
//!   8 MajorVersion (OS)     12 MinorVersion: OS minor in bits 0-15, build in bits 16-31
//!  16 MachineImageType (IMAGE_FILE_MACHINE_*: 014c x86, 8664 x64)
//!  20 ThreadCount           24 ModuleCount        28 MemoryRegionCount
//!  32 ThreadOffset, ModuleOffset, DataOffset, MemoryRegionOffset, DebugEventOffset,
//!     ThreadStateOffset, VersionInfoOffset, Spare1            (P bytes each)
//! then, in the order the writer emits them:
//!   DEBUG_EVENT at DebugEventOffset (native: 176 bytes for P=8, 96 for P=4): dwDebugEventCode,
//!     dwProcessId, dwThreadId, then (at 16 / 12) for EXCEPTION_DEBUG_EVENT (1) the
//!     EXCEPTION_RECORD (P-sized pointers and ExceptionInformation[15]) and dwFirstChance
//!   MEMORY_BASIC_INFORMATION[MemoryRegionCount] at MemoryRegionOffset (48 / 28 bytes):
//!     BaseAddress, AllocationBase, AllocationProtect, RegionSize, State, Protect, Type
//!   CONTEXT[ThreadCount] at ThreadOffset, the machine's CONTEXT (0x4d0 x64, 0x2cc x86)
//!   CRASH_THREAD[ThreadCount] at ThreadStateOffset (80 / 48 bytes): ThreadId, SuspendCount,
//!     PriorityClass, Priority, Teb, 7 spare pointers; same order as the contexts
//!   CRASH_MODULE[ModuleCount] at ModuleOffset, packed: BaseOfImage (P), SizeOfImage,
//!     ImageNameLength (with the NUL), ImageName (ANSI)
//!   the memory at DataOffset: each listed region's RegionSize bytes, in list order (the writer
//!     lists only the regions it saves: committed, readable, no guard pages)
//!   VersionInfo at VersionInfoOffset: a UTF-16 multistring of key/value pairs
//!     ("CRASH: OS SP", "none", "CRASH: Hotfixes", ...), to the end of the file
//! ```
//!
//! In the corpus dump: 3 threads, 7 modules, 56 regions; the contexts fill exactly
//! ThreadStateOffset - ThreadOffset = 3 x 0x4d0; each module base holds an `MZ`/`PE` image
//! whose SizeOfImage is the module's size; the regions' sizes add up to exactly
//! VersionInfoOffset - DataOffset; the debug event's thread is thread 0, whose rip is the
//! exception address.
//!
//! # What the format lacks, and where it is found instead
//!
//! No system information, time or module identity is stored. The reader takes them from the
//! captured memory, as the writer's own debugger would: the OS version, build, product type,
//! suite, processor count and the time from KUSER_SHARED_DATA (fixed at 0x7ffe0000 in every
//! NT process), accepted only when its NtMajorVersion agrees with the header; each module's
//! timestamp, checksum, CodeView record (so the right PDB is found), misc record and
//! VS_FIXEDFILEINFO from the image's headers in memory: the same fields an MDMP writer copies
//! out of the image. (The dump stage cannot use the OS crate's PE reader; this one reads only
//! those fields.) A thread's stack range is the captured region holding its stack pointer,
//! from the stack pointer up.
//!
//! Bad input is normal input: every count is checked against what the file can hold before
//! anything is sized by it, every offset is bounds-checked, a truncated file keeps what it
//! still has and says what it lost in [`Target::warnings`].

use dumpdiag_target::*;

use crate::memory::{clip, MemoryIndex};
use crate::{Backing, FileSpan, OpenError};

/// Longest module name accepted (the writer stores MAX_PATH-sized names).
const MAX_MODULE_NAME: u64 = 32 * 1024;
/// Most of the VersionInfo multistring read, most strings kept, longest string kept (UTF-16
/// units; longer ones are cut).
const MAX_VERSION_INFO: u64 = 16 * 1024;
const MAX_VERSION_STRINGS: usize = 64;
const MAX_VERSION_STRING: usize = 256;
/// KUSER_SHARED_DATA, at the same address in every NT user-mode process.
const SHARED_USER_DATA: u64 = 0x7ffe_0000;
/// DEBUG_EVENT code of an exception.
const EXCEPTION_DEBUG_EVENT: u32 = 1;

/// The `DMP_*` codes ntiodump.h gives the sections (what `.dumpdebug` lists as streams).
const DMP_MEMORY_BASIC_INFORMATION: u32 = 2;
const DMP_THREAD_CONTEXT: u32 = 3;
const DMP_MODULE: u32 = 4;
const DMP_MEMORY_DATA: u32 = 5;
const DMP_DEBUG_EVENT: u32 = 6;
const DMP_THREAD_STATE: u32 = 7;

/// Little-endian reads at file offsets; None past the end of the file.
struct File<'a>(&'a [u8]);

impl File<'_> {
    fn bytes(&self, off: u64, n: usize) -> Option<&[u8]> {
        let start = usize::try_from(off).ok()?;
        self.0.get(start..start.checked_add(n)?)
    }
    fn u32(&self, off: u64) -> Option<u32> {
        self.bytes(off, 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&self, off: u64) -> Option<u64> {
        let b = self.bytes(off, 8)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }
    /// A pointer-sized field of a writer with `ptr`-byte pointers.
    fn ptr(&self, off: u64, ptr: u64) -> Option<u64> {
        if ptr == 8 {
            self.u64(off)
        } else {
            self.u32(off).map(u64::from)
        }
    }
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
    /// How many `size`-byte records from `off` the file holds.
    fn fit(&self, off: u64, size: u64) -> u64 {
        self.len().saturating_sub(off) / size.max(1)
    }
}

/// The header's fields.
#[derive(Debug, Clone, Copy)]
struct Header {
    wide: bool,
    major: u32,
    minor_raw: u32,
    machine: u32,
    thread_count: u32,
    module_count: u32,
    region_count: u32,
    thread_offset: u64,
    module_offset: u64,
    data_offset: u64,
    region_offset: u64,
    event_offset: u64,
    thread_state_offset: u64,
    version_info_offset: u64,
}

impl Header {
    fn ptr(&self) -> u64 {
        if self.wide {
            8
        } else {
            4
        }
    }
    fn size(&self) -> u64 {
        32 + 8 * self.ptr()
    }
    fn read(f: &File) -> Result<Header, OpenError> {
        let wide = match f.bytes(0, 8) {
            Some(b"USERDU64") => true,
            Some(b"USERDUMP") => false,
            _ => {
                return Err(OpenError::BadUserDump(
                    "no USERDUMP or USERDU64 signature at the start of the file".into(),
                ))
            }
        };
        let ptr = if wide { 8 } else { 4 };
        let need = 32 + 8 * ptr;
        if f.len() < need {
            return Err(OpenError::BadUserDump(format!(
                "file too short for a {} header ({} bytes, the header is {need})",
                if wide { "USERDU64" } else { "USERDUMP" },
                f.len()
            )));
        }
        let u = |o: u64| f.u32(o).unwrap_or(0);
        let p = |i: u64| f.ptr(32 + i * ptr, ptr).unwrap_or(0);
        Ok(Header {
            wide,
            major: u(8),
            minor_raw: u(12),
            machine: u(16),
            thread_count: u(20),
            module_count: u(24),
            region_count: u(28),
            thread_offset: p(0),
            module_offset: p(1),
            data_offset: p(2),
            region_offset: p(3),
            event_offset: p(4),
            thread_state_offset: p(5),
            version_info_offset: p(6),
        })
    }
    /// (OS minor version, build): dbghelp's writer keeps the build in the high half; older
    /// writers stored the minor version alone.
    fn os_minor_build(&self) -> (u32, u32) {
        (self.minor_raw & 0xffff, self.minor_raw >> 16)
    }
    /// The section offsets, for finding where a section ends.
    fn offsets(&self) -> [u64; 7] {
        [
            self.thread_offset,
            self.module_offset,
            self.data_offset,
            self.region_offset,
            self.event_offset,
            self.thread_state_offset,
            self.version_info_offset,
        ]
    }
    /// Where the section at `start` ends: the next section's offset, else the end of the file.
    fn section_end(&self, start: u64, file_len: u64) -> u64 {
        self.offsets()
            .into_iter()
            .chain([self.size()])
            .filter(|&o| o > start)
            .min()
            .unwrap_or(file_len)
            .min(file_len)
    }
}

fn arch_of(machine: u32) -> Arch {
    match machine {
        0x14c => Arch::X86,
        0x8664 => Arch::Amd64,
        0xaa64 => Arch::Arm64,
        other => Arch::Other(other as u16),
    }
}

fn machine_name(machine: u32) -> &'static str {
    match machine {
        0x14c => "x86",
        0x8664 => "AMD64",
        0xaa64 => "ARM64",
        0x200 => "IA64",
        0x184 => "Alpha",
        0x284 => "Alpha64",
        _ => "unknown",
    }
}

/// The CONTEXT sizes a writer for `arch` may have stored, the usual one first (an NT4-era x86
/// CONTEXT stops before ExtendedRegisters, at 0xcc bytes).
fn context_sizes(arch: Arch) -> &'static [u64] {
    match arch {
        Arch::X86 => &[context::CONTEXT_X86_SIZE as u64, 0xcc],
        Arch::Amd64 => &[context::CONTEXT_AMD64_SIZE as u64],
        Arch::Arm64 => &[context::CONTEXT_ARM64_SIZE as u64],
        Arch::Other(_) => &[],
    }
}

/// A legacy full user-mode dump opened as a [`Target`].
pub struct UserDumpTarget {
    path: String,
    map: Backing,
    facts: DumpFacts,
    threads: Vec<ThreadRecord>,
    thread_contexts: Vec<Option<FileSpan>>,
    modules: Vec<ModuleRecord>,
    module_index: ModuleIndex,
    regions: Vec<RegionInfo>,
    memory: MemoryIndex,
    exception: Option<ExceptionInfo>,
    /// Index of the thread the debug event happened on.
    exception_thread: Option<usize>,
    extras: ProcessExtras,
    sections: Vec<StreamEntry>,
    warnings: Vec<String>,
}

/// The debug event the dump was written at.
struct DebugEvent {
    code: u32,
    process_id: u32,
    thread_id: u32,
    exception: Option<(ExceptionRecord, bool)>,
    size: u64,
}

fn debug_event(f: &File, h: &Header) -> Option<DebugEvent> {
    let off = h.event_offset;
    if off == 0 || off >= f.len() {
        return None;
    }
    let ptr = h.ptr();
    // The union follows the three DWORDs at the pointer alignment; the exception record's
    // pointers, its NumberParameters (padded to 8 on 64-bit) and 15 parameters follow.
    let (union_at, record_size) = if h.wide { (16, 152) } else { (12, 80) };
    let size = union_at + record_size + if h.wide { 8 } else { 4 };
    let code = f.u32(off)?;
    let process_id = f.u32(off + 4)?;
    let thread_id = f.u32(off + 8)?;
    let exception = (code == EXCEPTION_DEBUG_EVENT)
        .then(|| {
            let r = off + union_at;
            let n_at = r + 8 + 2 * ptr;
            let params_at = if h.wide { n_at + 8 } else { n_at + 4 };
            let n = f.u32(n_at)?.min(15) as u64;
            let parameters = (0..n)
                .map(|i| f.ptr(params_at + i * ptr, ptr))
                .collect::<Option<Vec<u64>>>()?;
            let record = ExceptionRecord {
                code: f.u32(r)?,
                flags: f.u32(r + 4)?,
                nested_record: f.ptr(r + 8, ptr)?,
                address: f.ptr(r + 8 + ptr, ptr)?,
                parameters,
            };
            let first_chance = f.u32(r + record_size)? != 0;
            Some((record, first_chance))
        })
        .flatten();
    Some(DebugEvent {
        code,
        process_id,
        thread_id,
        exception,
        size,
    })
}

impl UserDumpTarget {
    pub(crate) fn from_backing(path: String, map: Backing) -> Result<UserDumpTarget, OpenError> {
        let data: &[u8] = &map;
        let f = File(data);
        let h = Header::read(&f)?;
        let ptr = h.ptr();
        let file_len = f.len();
        let mut warnings = Vec::new();
        let mut sections = Vec::new();
        let mut section = |name: &str, stream_type: u32, rva: u64, size: u64| {
            sections.push(StreamEntry {
                index: 0,
                stream_type,
                name: name.to_string(),
                rva,
                size,
                support: StreamSupport::Read,
            })
        };

        // The debug event: the exception (or other event) the debugger was stopped at.
        let event = debug_event(&f, &h);
        if let Some(e) = &event {
            section("DebugEvent", DMP_DEBUG_EVENT, h.event_offset, e.size);
        } else if h.event_offset != 0 {
            warnings.push(format!(
                "the debug event at {:#x} lies outside the file",
                h.event_offset
            ));
        }

        // The memory map and the memory: each region's bytes follow the previous region's.
        let mbi_size: u64 = if h.wide { 48 } else { 28 };
        let fit = f.fit(h.region_offset, mbi_size);
        if h.region_count as u64 > fit {
            warnings.push(format!(
                "the header lists {} memory regions, the file holds {fit}",
                h.region_count
            ));
        }
        let n_regions = (h.region_count as u64).min(fit);
        let mut regions = Vec::with_capacity(n_regions as usize);
        let mut spans = Vec::with_capacity(n_regions as usize);
        let mut data_at = h.data_offset;
        let mut truncated = 0u64;
        for i in 0..n_regions {
            let o = h.region_offset + i * mbi_size;
            let u32_at = |x: u64| f.u32(o + x).unwrap_or(0);
            let r = if h.wide {
                RegionInfo {
                    base: f.u64(o).unwrap_or(0),
                    allocation_base: f.u64(o + 8).unwrap_or(0),
                    allocation_protect: u32_at(16),
                    size: f.u64(o + 24).unwrap_or(0),
                    state: u32_at(32),
                    protect: u32_at(36),
                    kind: u32_at(40),
                }
            } else {
                RegionInfo {
                    base: u32_at(0) as u64,
                    allocation_base: u32_at(4) as u64,
                    allocation_protect: u32_at(8),
                    size: u32_at(12) as u64,
                    state: u32_at(16),
                    protect: u32_at(20),
                    kind: u32_at(24),
                }
            };
            // A region cannot run past the top of the address space.
            let size = r.size.min(u64::MAX - r.base);
            match clip(data_at, size, file_len) {
                Some((off, avail)) => {
                    truncated = truncated.saturating_add(size - avail);
                    spans.push((r.base, avail, off));
                }
                None => truncated = truncated.saturating_add(size),
            }
            data_at = data_at.saturating_add(size);
            regions.push(r);
        }
        let data_size = data_at.saturating_sub(h.data_offset);
        section(
            "MemoryBasicInformation",
            DMP_MEMORY_BASIC_INFORMATION,
            h.region_offset,
            n_regions * mbi_size,
        );
        section("MemoryData", DMP_MEMORY_DATA, h.data_offset, data_size);
        if truncated > 0 {
            warnings.push(format!(
                "{truncated:#x} bytes of captured memory lie past the end of the file (truncated dump)"
            ));
        } else if h.version_info_offset > h.data_offset && h.version_info_offset != data_at {
            warnings.push(format!(
                "the memory regions add up to {data_size:#x} bytes, the memory data section holds {:#x}",
                h.version_info_offset - h.data_offset
            ));
        }
        regions.sort_by_key(|r| r.base);
        let memory = MemoryIndex::from_spans(spans);

        // Threads: contexts and states, in the same order.
        let arch = arch_of(h.machine);
        let sizes = context_sizes(arch);
        let contexts_end = h.section_end(h.thread_offset, file_len);
        let span = contexts_end.saturating_sub(h.thread_offset);
        let context_size = sizes
            .iter()
            .copied()
            .find(|&s| h.thread_count > 0 && span == s * h.thread_count as u64)
            .or_else(|| sizes.first().copied());
        if context_size.is_none() {
            warnings.push(format!(
                "machine {:#x} ({}): thread contexts cannot be decoded",
                h.machine,
                machine_name(h.machine)
            ));
        }
        let state_size: u64 = if h.wide { 80 } else { 48 };
        let fit_contexts = context_size.map_or(0, |s| f.fit(h.thread_offset, s));
        let fit_states = if h.thread_state_offset != 0 {
            f.fit(h.thread_state_offset, state_size)
        } else {
            0
        };
        let n_threads = (h.thread_count as u64).min(fit_contexts.max(fit_states));
        if (h.thread_count as u64) > n_threads {
            warnings.push(format!(
                "the header lists {} threads, the file holds {n_threads}",
                h.thread_count
            ));
        }
        if h.thread_state_offset == 0 && n_threads > 0 {
            warnings.push("no thread states: thread ids and TEBs are unknown".into());
        } else if fit_states < n_threads {
            warnings.push(format!(
                "thread states: the file holds {fit_states} of {n_threads}"
            ));
        }
        if fit_contexts < n_threads {
            warnings.push(format!(
                "thread contexts: the file holds {fit_contexts} of {n_threads}"
            ));
        }
        let mut threads = Vec::with_capacity(n_threads as usize);
        let mut thread_contexts = Vec::with_capacity(n_threads as usize);
        for i in 0..n_threads {
            let ctx = context_size.and_then(|s| {
                let offset = h.thread_offset.checked_add(i.checked_mul(s)?)?;
                (offset.checked_add(s)? <= file_len).then_some(FileSpan { offset, size: s })
            });
            let mut t = ThreadRecord {
                context_size: ctx.map_or(0, |c| c.size as u32),
                ..Default::default()
            };
            if i < fit_states {
                let o = h.thread_state_offset + i * state_size;
                t.id = f.u32(o).unwrap_or(0);
                t.suspend_count = f.u32(o + 4).unwrap_or(0);
                t.priority_class = f.u32(o + 8).unwrap_or(0);
                t.priority = f.u32(o + 12).unwrap_or(0);
                t.teb = f.ptr(o + 16, ptr).unwrap_or(0);
            }
            threads.push(t);
            thread_contexts.push(ctx);
        }
        if let Some(s) = context_size {
            section(
                "ThreadContext",
                DMP_THREAD_CONTEXT,
                h.thread_offset,
                fit_contexts.min(n_threads) * s,
            );
        }
        if h.thread_state_offset != 0 {
            section(
                "ThreadState",
                DMP_THREAD_STATE,
                h.thread_state_offset,
                fit_states.min(n_threads) * state_size,
            );
        }

        // Modules: packed entries with their names.
        let mut modules = Vec::new();
        let mut o = h.module_offset;
        for i in 0..h.module_count {
            if o >= file_len {
                warnings.push(format!(
                    "the header lists {} modules, the file holds {i}",
                    h.module_count
                ));
                break;
            }
            let (Some(base), Some(size), Some(name_len)) =
                (f.ptr(o, ptr), f.u32(o + ptr), f.u32(o + ptr + 4))
            else {
                warnings.push(format!(
                    "the header lists {} modules, the file holds {i}",
                    h.module_count
                ));
                break;
            };
            let name_at = o + ptr + 8;
            let Some(name) = f
                .bytes(name_at, name_len as usize)
                .filter(|_| name_len as u64 <= MAX_MODULE_NAME)
            else {
                warnings.push(format!(
                    "module {i} at {base:#x}: name of {name_len} bytes does not fit the file"
                ));
                break;
            };
            let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
            modules.push(ModuleRecord {
                base,
                size,
                path: String::from_utf8_lossy(&name[..end]).into_owned(),
                ..Default::default()
            });
            o = name_at + name_len as u64;
        }
        section("Module", DMP_MODULE, h.module_offset, o - h.module_offset);

        // VersionInfo: key/value pairs of a UTF-16 multistring.
        let mut version_info = Vec::new();
        if h.version_info_offset != 0 && h.version_info_offset < file_len {
            let avail = (file_len - h.version_info_offset).min(MAX_VERSION_INFO) as usize;
            let raw = f.bytes(h.version_info_offset, avail).unwrap_or(&[]);
            let units: Vec<u16> = raw
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            let mut strings = Vec::new();
            let mut used = 0;
            for s in units.split(|&u| u == 0) {
                used += s.len() + 1;
                if s.is_empty() || strings.len() == MAX_VERSION_STRINGS {
                    break;
                }
                strings.push(String::from_utf16_lossy(
                    &s[..s.len().min(MAX_VERSION_STRING)],
                ));
            }
            for pair in strings.chunks(2) {
                version_info.push((pair[0].clone(), pair.get(1).cloned().unwrap_or_default()));
            }
            section(
                "VersionInfo",
                0,
                h.version_info_offset,
                (used as u64 * 2).min(avail as u64),
            );
        }

        sections.sort_by_key(|s| s.rva);
        for (i, s) in sections.iter_mut().enumerate() {
            s.index = i;
        }

        let (os_minor, os_build) = h.os_minor_build();
        let signature = if h.wide { "USERDU64" } else { "USERDUMP" };
        let mut facts = DumpFacts {
            format: format!("User Full Dump File (legacy {signature} format)"),
            kind: DumpKind::LegacyUserDump { wide: h.wide },
            arch,
            os_major: h.major,
            os_minor,
            os_build,
            platform_id: 2,
            // The file holds every committed, readable page: a full-memory dump.
            flags: 0x2,
            process_id: event.as_ref().map(|e| e.process_id),
            ..Default::default()
        };
        if let Some((_, sp)) = version_info
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("CRASH: OS SP"))
        {
            if !sp.eq_ignore_ascii_case("none") {
                facts.csd_version = sp.clone();
            }
        }
        let mut header_fields = vec![
            ("Signature".to_string(), signature.to_string()),
            ("MajorVersion".into(), format!("{:x}", h.major)),
            (
                "MinorVersion".into(),
                format!("{:x} (minor {os_minor}, build {os_build})", h.minor_raw),
            ),
            (
                "MachineImageType".into(),
                format!("{:x} ({})", h.machine, machine_name(h.machine)),
            ),
            ("ThreadCount".into(), h.thread_count.to_string()),
            ("ModuleCount".into(), h.module_count.to_string()),
            ("MemoryRegionCount".into(), h.region_count.to_string()),
        ];
        header_fields.extend(version_info);
        facts.header_fields = header_fields;

        let mut target = UserDumpTarget {
            path,
            facts,
            threads,
            thread_contexts,
            module_index: ModuleIndex::new(&[]),
            modules: Vec::new(),
            regions,
            memory,
            exception: None,
            exception_thread: None,
            extras: ProcessExtras::default(),
            sections,
            warnings,
            map,
        };

        // What the format does not record, from the memory it holds.
        target.apply_shared_user_data();
        for m in &mut modules {
            read_image_identity(&target, m);
        }
        target.module_index = ModuleIndex::new(&modules);
        target.modules = modules;
        for i in 0..target.threads.len() {
            let Some(sp) = target.thread_context(i).map(|c| c.sp()) else {
                continue;
            };
            if let Some(r) = target.region_at(sp).copied() {
                target.threads[i].stack_start = sp;
                target.threads[i].stack_size = r.end() - sp;
            }
        }
        if let Some(e) = event {
            if let Some((record, first_chance)) = e.exception {
                let index = target.thread_index_by_id(e.thread_id);
                target.exception = Some(ExceptionInfo {
                    thread_id: e.thread_id,
                    record,
                    context_available: index.is_some_and(|i| target.thread_contexts[i].is_some()),
                    first_chance: Some(first_chance),
                });
                target.exception_thread = index;
            } else if e.code != EXCEPTION_DEBUG_EVENT {
                target
                    .facts
                    .header_fields
                    .push(("DebugEvent".into(), format!("code {}", e.code)));
            }
        }
        Ok(target)
    }

    /// OS version, product, processors and time from KUSER_SHARED_DATA, when the page is in
    /// the dump and agrees with the header's OS version.
    fn apply_shared_user_data(&mut self) {
        let at = |o: u64| SHARED_USER_DATA + o;
        let Some(major) = self.read_u32(at(0x26c)) else {
            return;
        };
        if major != self.facts.os_major {
            self.warnings.push(format!(
                "KUSER_SHARED_DATA says Windows {major}, the header {}: not used",
                self.facts.os_major
            ));
            return;
        }
        if self.read_u8(at(0x268)).is_some_and(|valid| valid != 0) {
            self.facts.product_type = self.read_u32(at(0x264)).unwrap_or(0) as u8;
        }
        self.facts.suite_mask = self.read_u32(at(0x2d0)).unwrap_or(0) as u16;
        if self.facts.os_build == 0 && major >= 10 {
            self.facts.os_build = self.read_u32(at(0x260)).unwrap_or(0) & 0xffff;
        }
        // ActiveProcessorCount (Windows 7 and later; zero before).
        if let Some(n) = self.read_u32(at(0x3c0)).filter(|n| (1..=4096).contains(n)) {
            self.facts.processor_count = n.min(255) as u8;
        }
        // SystemTime: a KSYSTEM_TIME, consistent when High1Time == High2Time.
        if let (Some(low), Some(high1), Some(high2)) = (
            self.read_u32(at(0x14)),
            self.read_u32(at(0x18)),
            self.read_u32(at(0x1c)),
        ) {
            let filetime = ((high1 as u64) << 32) | low as u64;
            let unix = (filetime / 10_000_000).checked_sub(11_644_473_600);
            if let Some(t) = unix.filter(|_| high1 == high2) {
                self.facts.dump_time = u32::try_from(t).unwrap_or(0);
            }
        }
    }

    fn decode_context(&self, span: FileSpan) -> Option<Context> {
        let bytes = self
            .map
            .get(span.offset as usize..(span.offset + span.size) as usize)?;
        if self.facts.arch == Arch::X86 && bytes.len() < context::CONTEXT_X86_SIZE {
            // An NT4-era CONTEXT without ExtendedRegisters.
            let mut full = bytes.to_vec();
            full.resize(context::CONTEXT_X86_SIZE, 0);
            return Context::decode(Arch::X86, &full, &[]);
        }
        Context::decode(self.facts.arch, bytes, &[])
    }
}

/// Most debug directory entries followed per image.
const MAX_DEBUG_ENTRIES: u64 = 32;
/// Largest CodeView or misc record read.
const MAX_DEBUG_RECORD: usize = 1024;

/// Fill what an MDMP writer copies out of the image (timestamp, checksum, CodeView and misc
/// records, VS_FIXEDFILEINFO) from the image's headers in the dump's memory.
fn read_image_identity(mem: &dyn MemoryReader, m: &mut ModuleRecord) {
    let base = m.base;
    if mem.read_u16(base) != Some(0x5a4d) {
        return;
    }
    let Some(nt) = mem
        .read_u32(base.wrapping_add(0x3c))
        .filter(|&l| l < 0x1000)
        .map(|l| base.wrapping_add(l as u64))
    else {
        return;
    };
    if mem.read_u32(nt) != Some(0x4550) {
        return;
    }
    let opt = nt.wrapping_add(24);
    let is64 = match mem.read_u16(opt) {
        Some(0x20b) => true,
        Some(0x10b) => false,
        _ => return,
    };
    m.time_date_stamp = mem.read_u32(nt.wrapping_add(8)).unwrap_or(0);
    m.checksum = mem.read_u32(opt.wrapping_add(64)).unwrap_or(0);
    if m.size == 0 {
        m.size = mem.read_u32(opt.wrapping_add(56)).unwrap_or(0);
    }
    let dirs = opt.wrapping_add(if is64 { 112 } else { 96 });
    let dir_count = mem
        .read_u32(opt.wrapping_add(if is64 { 108 } else { 92 }))
        .unwrap_or(0);
    let directory = |i: u32| {
        (i < dir_count)
            .then(|| {
                let rva = mem.read_u32(dirs.wrapping_add(i as u64 * 8))?;
                let size = mem.read_u32(dirs.wrapping_add(i as u64 * 8 + 4))?;
                (rva != 0 && size != 0).then_some((rva, size))
            })
            .flatten()
    };
    if let Some((rva, size)) = directory(6) {
        for i in 0..(size as u64 / 28).min(MAX_DEBUG_ENTRIES) {
            let e = base.wrapping_add(rva as u64 + i * 28);
            let (Some(kind), Some(len), Some(at)) = (
                mem.read_u32(e.wrapping_add(12)),
                mem.read_u32(e.wrapping_add(16)),
                mem.read_u32(e.wrapping_add(20)),
            ) else {
                break;
            };
            if at == 0 || len == 0 {
                continue;
            }
            let record = mem.read_bytes(
                base.wrapping_add(at as u64),
                (len as usize).min(MAX_DEBUG_RECORD),
            );
            match kind {
                2 if m.codeview.is_none() => m.codeview = CodeViewRecord::parse(&record),
                4 if m.misc_name.is_none() => {
                    m.misc_name = dumpdiag_target::image_debug_misc_name(&record)
                }
                _ => {}
            }
        }
    }
    if let Some((rva, _)) = directory(2) {
        m.version = fixed_file_info(mem, base, base.wrapping_add(rva as u64));
    }
}

/// VS_FIXEDFILEINFO of the image's first RT_VERSION resource: resource directory (type 16,
/// then its first name, then its first language) to the data entry, then VS_VERSIONINFO.
fn fixed_file_info(mem: &dyn MemoryReader, base: u64, root: u64) -> Option<FixedFileInfo> {
    const RT_VERSION: u32 = 16;
    const SUBDIRECTORY: u32 = 0x8000_0000;
    // The entry of a resource directory with `id` (None: the first entry).
    let entry = |dir: u64, id: Option<u32>| -> Option<u32> {
        let named = mem.read_u16(dir.wrapping_add(12))? as u64;
        let ids = mem.read_u16(dir.wrapping_add(14))? as u64;
        let (first, count) = match id {
            Some(_) => (named, ids),
            None => (0, named + ids),
        };
        (first..first + count.min(256)).find_map(|i| {
            let e = dir.wrapping_add(16 + i * 8);
            let name = mem.read_u32(e)?;
            (id.is_none() || id == Some(name))
                .then(|| mem.read_u32(e.wrapping_add(4)))
                .flatten()
        })
    };
    let types = entry(root, Some(RT_VERSION))?;
    if types & SUBDIRECTORY == 0 {
        return None;
    }
    let mut at = entry(root.wrapping_add((types & !SUBDIRECTORY) as u64), None)?;
    for _ in 0..2 {
        if at & SUBDIRECTORY == 0 {
            break;
        }
        at = entry(root.wrapping_add((at & !SUBDIRECTORY) as u64), None)?;
    }
    if at & SUBDIRECTORY != 0 {
        return None;
    }
    let data_rva = mem.read_u32(root.wrapping_add(at as u64))?;
    // VS_VERSIONINFO: wLength, wValueLength, wType, L"VS_VERSION_INFO\0", padding to 4, then
    // the VS_FIXEDFILEINFO (52 bytes).
    let v = mem.read_bytes(base.wrapping_add(data_rva as u64), 40 + 52);
    let u32_at = |o: usize| {
        v.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let f = (0..=40)
        .step_by(4)
        .find(|&o| u32_at(o) == Some(0xfeef_04bd))?;
    let w = |i: usize| u32_at(f + 4 * i);
    let split = |x: u32| ((x >> 16) as u16, x as u16);
    let (fv0, fv1) = split(w(2)?);
    let (fv2, fv3) = split(w(3)?);
    let (pv0, pv1) = split(w(4)?);
    let (pv2, pv3) = split(w(5)?);
    Some(FixedFileInfo {
        signature: 0xfeef_04bd,
        file_version: (fv0, fv1, fv2, fv3),
        product_version: (pv0, pv1, pv2, pv3),
        file_flags_mask: w(6)?,
        file_flags: w(7)?,
        file_os: w(8)?,
        file_type: w(9)?,
        file_subtype: w(10)?,
        file_date: ((w(11)? as u64) << 32) | w(12)? as u64,
    })
}

impl Target for UserDumpTarget {
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
        &[]
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
    /// The debugger was stopped at the event: the event thread's context is the exception's.
    fn exception_context(&self) -> Option<Context> {
        self.thread_context(self.exception_thread?)
    }
    fn thread_context(&self, index: usize) -> Option<Context> {
        self.decode_context((*self.thread_contexts.get(index)?)?)
    }
    fn handles(&self) -> Option<&[HandleRecord]> {
        None
    }
    fn extras(&self) -> &ProcessExtras {
        &self.extras
    }
    fn streams(&self) -> &[StreamEntry] {
        &self.sections
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

#[cfg(test)]
mod tests;

impl MemoryReader for UserDumpTarget {
    fn read(&self, addr: u64, buf: &mut [u8]) -> usize {
        self.memory.read(&self.map, addr, buf)
    }
    fn slice(&self, addr: u64, max: usize) -> Option<&[u8]> {
        self.memory.slice(&self.map, addr, max)
    }
}
