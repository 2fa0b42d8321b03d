//! The target model: what any Windows process dump says about the process, independent of the
//! file format it came in. `dumpdiag-mdmp` implements [`Target`] for MDMP files and for legacy
//! `USERDUMP`/`USERDU64` full dumps; a kernel dump would implement the same trait and everything
//! downstream (OS structures, stacks, analysis, commands) keeps working unchanged.

pub mod context;
pub mod memory;

pub use context::{Arch, Context};
pub use memory::{MemoryExt, MemoryReader, MAX_READ_ALLOC};

/// The file format a dump came in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DumpKind {
    /// MDMP (MiniDumpWriteDump, WER, ProcDump, Crashpad, Breakpad): minidumps and full-memory
    /// minidumps.
    #[default]
    Minidump,
    /// A legacy full user-mode dump: `USERDUMP` from a 32-bit writer, `USERDU64` from a 64-bit
    /// one (userdump.exe, Dr. Watson, ntsd/cdb/WinDbg `.dump /f`).
    LegacyUserDump { wide: bool },
}

impl DumpKind {
    /// What `||` calls a dump of this kind.
    pub fn session_name(self) -> &'static str {
        match self {
            DumpKind::Minidump => "User mini dump",
            DumpKind::LegacyUserDump { .. } => "User full dump",
        }
    }

    /// The signature at the start of the file.
    pub fn signature(self) -> &'static str {
        match self {
            DumpKind::Minidump => "MDMP",
            DumpKind::LegacyUserDump { wide: true } => "USERDU64",
            DumpKind::LegacyUserDump { wide: false } => "USERDUMP",
        }
    }
}

/// Facts about the dump as a whole (header, SystemInfo, MiscInfo).
#[derive(Debug, Clone, Default)]
pub struct DumpFacts {
    /// Format name shown when the dump is opened ("User Mini Dump File", ...).
    pub format: String,
    pub kind: DumpKind,
    /// The header of a format other than MDMP as (field, value) pairs in file order, for
    /// `.dumpdebug` (MDMP's header is in the fields below).
    pub header_fields: Vec<(String, String)>,
    /// Architecture of the dump's contexts (for WOW64 dumps: Amd64).
    pub arch: Arch,
    pub os_major: u32,
    pub os_minor: u32,
    pub os_build: u32,
    pub csd_version: String,
    pub product_type: u8,
    pub platform_id: u32,
    pub suite_mask: u16,
    pub processor_count: u8,
    pub processor_level: u16,
    pub processor_revision: u16,
    /// CPU vendor string (x86 family) when recorded.
    pub cpu_vendor: Option<String>,
    /// Dump creation time (seconds since the Unix epoch).
    pub dump_time: u32,
    /// MINIDUMP_TYPE flags from the header; for another format, the flags that describe what it
    /// holds (a legacy full dump holds all committed memory: MiniDumpWithFullMemory).
    pub flags: u64,
    pub checksum: u32,
    pub process_id: Option<u32>,
    /// Process creation time (seconds since the Unix epoch).
    pub process_create_time: Option<u32>,
    pub process_user_time: Option<u32>,
    pub process_kernel_time: Option<u32>,
    pub processor_max_mhz: Option<u32>,
    pub processor_current_mhz: Option<u32>,
    pub time_zone_name: Option<String>,
    /// Build strings from MiscInfo v4+ ("19041.1.amd64fre.vb_release.191206-1406").
    pub build_string: Option<String>,
    pub dbg_build_string: Option<String>,
    /// XSTATE feature mask the OS had enabled (MiscInfo v5).
    pub xstate_enabled_features: Option<u64>,
    /// (feature index, offset, size) of each enabled XSTATE feature (MiscInfo v5).
    pub xstate_features: Vec<(u32, u32, u32)>,
    pub process_integrity_level: Option<u32>,
    pub process_execute_flags: Option<u32>,
    pub protected_process: Option<u32>,
    pub process_cookie: Option<u32>,
}

impl DumpFacts {
    /// Pointer size of the dump's native contexts in bytes.
    pub fn pointer_size(&self) -> u64 {
        self.arch.pointer_size()
    }
}

/// A thread of the dumped process.
#[derive(Debug, Clone, Default)]
pub struct ThreadRecord {
    pub id: u32,
    pub suspend_count: u32,
    pub priority_class: u32,
    pub priority: u32,
    /// Address of the (native) TEB.
    pub teb: u64,
    /// The captured stack range (start, size) as recorded in the thread list.
    pub stack_start: u64,
    pub stack_size: u64,
    /// Raw context bytes as stored in the dump (decoded by [`Target::thread_context`]).
    pub context_size: u32,
    pub name: Option<String>,
    /// From ThreadInfoList, when present.
    pub info: Option<ThreadTimes>,
}

/// Times and flags from MINIDUMP_THREAD_INFO (all times are FILETIME units: 100 ns).
#[derive(Debug, Clone, Default)]
pub struct ThreadTimes {
    pub dump_flags: u32,
    pub dump_error: u32,
    pub exit_status: u32,
    pub create_time: u64,
    pub exit_time: u64,
    pub kernel_time: u64,
    pub user_time: u64,
    pub start_address: u64,
    pub affinity: u64,
}

/// VS_FIXEDFILEINFO of a module.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FixedFileInfo {
    pub signature: u32,
    pub file_version: (u16, u16, u16, u16),
    pub product_version: (u16, u16, u16, u16),
    pub file_flags_mask: u32,
    pub file_flags: u32,
    pub file_os: u32,
    pub file_type: u32,
    pub file_subtype: u32,
    pub file_date: u64,
}

/// Debug identity of a module as carried by its CodeView record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeViewRecord {
    /// RSDS: GUID, age and PDB file name.
    Pdb70 {
        guid: [u8; 16],
        age: u32,
        pdb_name: String,
    },
    /// NB10: signature, age and PDB file name.
    Pdb20 {
        signature: u32,
        age: u32,
        pdb_name: String,
    },
    /// Anything else, by its 4-byte signature.
    Other { signature: u32, size: usize },
}

/// A NUL-terminated (or unterminated) 8-bit name at the start of `b`.
fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// The file name an IMAGE_DEBUG_MISC record carries (DataType, Length, Unicode, 3 reserved
/// bytes, then the name in 8-bit or UTF-16 characters): what pre-PDB images and dumps name the
/// debug file with.
pub fn image_debug_misc_name(r: &[u8]) -> Option<String> {
    let body = r.get(12..)?;
    let name = if *r.get(8)? != 0 {
        let units: Vec<u16> = body
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0)
            .collect();
        String::from_utf16_lossy(&units)
    } else {
        c_string(body)
    };
    (!name.is_empty()).then_some(name)
}

impl CodeViewRecord {
    /// Decode a CodeView record as images and dumps store it: `RSDS` (signature, GUID, age,
    /// PDB path), `NB10` (signature, offset, time-stamp signature, age, PDB path), else
    /// `Other` by its first four bytes. One decoder for the image's debug directory, the
    /// minidump's module list and the legacy dump's images.
    pub fn parse(r: &[u8]) -> Option<CodeViewRecord> {
        let u32_at = |o: usize| {
            r.get(o..o + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        let signature = u32_at(0)?;
        Some(match &r[..4] {
            b"RSDS" if r.len() >= 24 => CodeViewRecord::Pdb70 {
                guid: r[4..20].try_into().ok()?,
                age: u32_at(20)?,
                pdb_name: c_string(&r[24..]),
            },
            b"NB10" if r.len() >= 16 => CodeViewRecord::Pdb20 {
                signature: u32_at(8)?,
                age: u32_at(12)?,
                pdb_name: c_string(&r[16..]),
            },
            _ => CodeViewRecord::Other {
                signature,
                size: r.len(),
            },
        })
    }

    /// The PDB identifier as symbol servers spell it (GUID without dashes in upper case, then age in hex).
    pub fn pdb_id(&self) -> Option<String> {
        match self {
            CodeViewRecord::Pdb70 { guid, age, .. } => {
                let d1 = u32::from_le_bytes([guid[0], guid[1], guid[2], guid[3]]);
                let d2 = u16::from_le_bytes([guid[4], guid[5]]);
                let d3 = u16::from_le_bytes([guid[6], guid[7]]);
                let mut s = format!("{d1:08X}{d2:04X}{d3:04X}");
                for b in &guid[8..] {
                    s.push_str(&format!("{b:02X}"));
                }
                Some(format!("{s}{age:X}"))
            }
            CodeViewRecord::Pdb20 { signature, age, .. } => Some(format!("{signature:08X}{age:X}")),
            CodeViewRecord::Other { .. } => None,
        }
    }

    pub fn pdb_name(&self) -> Option<&str> {
        match self {
            CodeViewRecord::Pdb70 { pdb_name, .. } | CodeViewRecord::Pdb20 { pdb_name, .. } => {
                Some(pdb_name)
            }
            CodeViewRecord::Other { .. } => None,
        }
    }
}

/// A module loaded in the process.
#[derive(Debug, Clone, Default)]
pub struct ModuleRecord {
    pub base: u64,
    pub size: u32,
    pub checksum: u32,
    pub time_date_stamp: u32,
    /// Full path as recorded by the dump writer.
    pub path: String,
    pub version: Option<FixedFileInfo>,
    pub codeview: Option<CodeViewRecord>,
    /// IMAGE_DEBUG_MISC image name, when the module carries one (old images).
    pub misc_name: Option<String>,
}

impl ModuleRecord {
    pub fn end(&self) -> u64 {
        self.base.saturating_add(self.size as u64)
    }
    pub fn contains(&self, addr: u64) -> bool {
        addr >= self.base && addr < self.end()
    }
    /// File name with directories removed ("C:\\Windows\\System32\\ntdll.dll" → "ntdll.dll").
    pub fn file_name(&self) -> &str {
        file_name_of(&self.path)
    }
    /// The name WinDbg uses for the module: file name without extension, with characters
    /// that cannot appear in a symbol expression replaced.
    pub fn short_name(&self) -> String {
        module_short_name(&self.path)
    }
}

/// Address → module lookup in O(log n): modules sorted by base, with the running maximum of their
/// ends so that overlapping records (hostile dumps; WOW64 lists the image twice) still resolve
/// to the first module of the list that contains the address, as a linear search would.
#[derive(Debug, Clone, Default)]
pub struct ModuleIndex {
    /// (base, end, position in the module list), sorted by base.
    sorted: Vec<(u64, u64, usize)>,
    max_end: Vec<u64>,
}

impl ModuleIndex {
    pub fn new(modules: &[ModuleRecord]) -> ModuleIndex {
        let mut sorted: Vec<(u64, u64, usize)> = modules
            .iter()
            .enumerate()
            .map(|(i, m)| (m.base, m.end(), i))
            .collect();
        sorted.sort_unstable();
        let mut high = 0;
        let max_end = sorted
            .iter()
            .map(|s| {
                high = high.max(s.1);
                high
            })
            .collect();
        ModuleIndex { sorted, max_end }
    }

    /// The list position of the first module containing `addr`.
    pub fn find(&self, addr: u64) -> Option<usize> {
        let mut j = self.sorted.partition_point(|s| s.0 <= addr);
        let mut best: Option<usize> = None;
        while j > 0 && self.max_end[j - 1] > addr {
            j -= 1;
            let (base, end, i) = self.sorted[j];
            if addr >= base && addr < end && best.is_none_or(|b| i < b) {
                best = Some(i);
            }
        }
        best
    }
}

/// An address or pointer-sized value as WinDbg prints it: 64-bit as `00007ff7`a13110d9`, 32-bit
/// as `0804a000`.
pub fn windbg_address(v: u64, ptr: u64) -> String {
    if ptr == 4 {
        format!("{:08x}", v as u32)
    } else {
        format!("{:08x}`{:08x}", v >> 32, v & 0xffff_ffff)
    }
}

/// File name component of a Windows or POSIX path.
pub fn file_name_of(path: &str) -> &str {
    path.rsplit(['\\', '/']).next().unwrap_or(path)
}

/// WinDbg's module name: file name without its extension, spaces and dots turned into `_`.
pub fn module_short_name(path: &str) -> String {
    let file = file_name_of(path);
    let stem = match file.rfind('.') {
        Some(i) if i > 0 => &file[..i],
        _ => file,
    };
    stem.chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A module that had been unloaded before the dump was written.
#[derive(Debug, Clone, Default)]
pub struct UnloadedModuleRecord {
    pub base: u64,
    pub size: u32,
    pub checksum: u32,
    pub time_date_stamp: u32,
    pub path: String,
}

/// One entry of the MemoryInfoList: a region of the address space, captured or not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegionInfo {
    pub base: u64,
    pub allocation_base: u64,
    pub allocation_protect: u32,
    pub size: u64,
    /// MEM_COMMIT 0x1000, MEM_RESERVE 0x2000, MEM_FREE 0x10000.
    pub state: u32,
    pub protect: u32,
    /// MEM_PRIVATE 0x20000, MEM_MAPPED 0x40000, MEM_IMAGE 0x1000000.
    pub kind: u32,
}

impl RegionInfo {
    pub fn end(&self) -> u64 {
        self.base.saturating_add(self.size)
    }
    pub fn contains(&self, addr: u64) -> bool {
        addr >= self.base && addr < self.end()
    }
}

pub const MEM_COMMIT: u32 = 0x1000;
pub const MEM_RESERVE: u32 = 0x2000;
pub const MEM_FREE: u32 = 0x10000;
pub const MEM_PRIVATE: u32 = 0x20000;
pub const MEM_MAPPED: u32 = 0x40000;
pub const MEM_IMAGE: u32 = 0x1000000;

/// The exception the dump was written for (Exception stream).
#[derive(Debug, Clone, Default)]
pub struct ExceptionInfo {
    pub thread_id: u32,
    pub record: ExceptionRecord,
    /// Address of the dump's copy of the exception context (an RVA in MDMP terms), kept
    /// so `.ecxr` can decode it with the dump's architecture.
    pub context_available: bool,
    /// First or second chance, when the dump records it (a legacy dump's debug event does).
    pub first_chance: Option<bool>,
}

/// An EXCEPTION_RECORD, wherever it came from (stream, memory).
#[derive(Debug, Clone, Default)]
pub struct ExceptionRecord {
    pub code: u32,
    pub flags: u32,
    pub nested_record: u64,
    pub address: u64,
    pub parameters: Vec<u64>,
}

/// One handle from HandleData.
#[derive(Debug, Clone, Default)]
pub struct HandleRecord {
    pub handle: u64,
    pub type_name: Option<String>,
    pub object_name: Option<String>,
    pub attributes: u32,
    pub granted_access: u32,
    pub handle_count: u32,
    pub pointer_count: u32,
    /// Object-specific information entries (descriptor v2): (info type, raw bytes).
    pub object_info: Vec<(u32, Vec<u8>)>,
}

/// A dump stream as listed by `.dumpdebug`.
#[derive(Debug, Clone)]
pub struct StreamEntry {
    pub index: usize,
    pub stream_type: u32,
    pub name: String,
    pub rva: u64,
    pub size: u64,
    /// How this implementation treats the stream: "read", "present-but-unsupported", "unknown".
    pub support: StreamSupport,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamSupport {
    Read,
    Unsupported,
    Unknown,
}

/// Extra streams that carry text or counters (comments, VM counters, token, ...).
#[derive(Debug, Clone, Default)]
pub struct ProcessExtras {
    pub comment_a: Option<String>,
    pub comment_w: Option<String>,
    pub vm_counters: Option<VmCounters>,
    pub system_memory: Option<SystemMemoryInfo>,
    /// Token stream: (token handle, raw TOKEN information bytes) per entry.
    pub tokens: Vec<(u32, u64, Vec<u8>)>,
    /// FunctionTable stream descriptors: (minimum address, maximum address, base address, entry count).
    pub function_tables: Vec<FunctionTableDescriptor>,
    /// ThreadExList: thread id → backing store (start, size) for IA64-style stores.
    pub thread_ex_backing: Vec<(u32, u64, u64)>,
    /// Breakpad info: dump thread id and requesting thread id.
    pub breakpad_dump_thread: Option<u32>,
    pub breakpad_requesting_thread: Option<u32>,
    /// Crashpad annotations (key, value).
    pub crashpad_annotations: Vec<(String, String)>,
    pub crashpad_report_id: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct FunctionTableDescriptor {
    pub minimum_address: u64,
    pub maximum_address: u64,
    pub base_address: u64,
    pub entry_count: u32,
    /// Raw RUNTIME_FUNCTION entries as stored after the descriptor (bounded by the stream size).
    pub entries: Vec<u8>,
}

/// MINIDUMP_PROCESS_VM_COUNTERS_1/2.
#[derive(Debug, Clone, Default)]
pub struct VmCounters {
    pub revision: u16,
    pub page_fault_count: u32,
    pub peak_working_set_size: u64,
    pub working_set_size: u64,
    pub quota_peak_paged_pool_usage: u64,
    pub quota_paged_pool_usage: u64,
    pub quota_peak_non_paged_pool_usage: u64,
    pub quota_non_paged_pool_usage: u64,
    pub pagefile_usage: u64,
    pub peak_pagefile_usage: u64,
    pub private_usage: u64,
    pub private_working_set_size: Option<u64>,
    pub shared_commit_usage: Option<u64>,
    pub job_shared_commit_usage: Option<u64>,
    pub job_private_commit_usage: Option<u64>,
    pub job_peak_private_commit_usage: Option<u64>,
    pub job_private_commit_limit: Option<u64>,
    pub job_total_commit_limit: Option<u64>,
}

/// The parts of MINIDUMP_SYSTEM_MEMORY_INFO_1 an analyst looks at.
#[derive(Debug, Clone, Default)]
pub struct SystemMemoryInfo {
    pub revision: u16,
    pub flags: u16,
    pub page_size: u32,
    pub number_of_physical_pages: u64,
    pub available_pages: u64,
    pub committed_pages: u64,
    pub commit_limit: u64,
    pub peak_commitment: u64,
}

/// A process dump, whatever its format.
///
/// Everything here is cheap: implementations index the file once at open and read memory on
/// demand (memory-mapped), so the cost of a query grows with what is asked, not with the dump.
pub trait Target: Send + Sync {
    fn facts(&self) -> &DumpFacts;
    fn threads(&self) -> &[ThreadRecord];
    fn modules(&self) -> &[ModuleRecord];
    fn unloaded_modules(&self) -> &[UnloadedModuleRecord];
    /// The MemoryInfoList (empty when the dump has none).
    fn regions(&self) -> &[RegionInfo];
    /// Memory captured in the dump, as sorted non-overlapping (start, size) ranges.
    fn captured_ranges(&self) -> &[(u64, u64)];
    fn memory(&self) -> &dyn MemoryReader;
    fn exception(&self) -> Option<&ExceptionInfo>;
    /// The context stored with the exception (what `.ecxr` shows).
    fn exception_context(&self) -> Option<Context>;
    /// The context of a thread, by index in [`Target::threads`].
    fn thread_context(&self, index: usize) -> Option<Context>;
    fn handles(&self) -> Option<&[HandleRecord]>;
    fn extras(&self) -> &ProcessExtras;
    fn streams(&self) -> &[StreamEntry];
    /// Problems met while reading the dump that left a partial view.
    fn warnings(&self) -> &[String];
    /// Path of the dump file.
    fn path(&self) -> &str;
    fn file_size(&self) -> u64;

    fn module_at(&self, addr: u64) -> Option<&ModuleRecord> {
        let mods = self.modules();
        mods.iter().find(|m| m.contains(addr))
    }
    fn thread_index_by_id(&self, id: u32) -> Option<usize> {
        self.threads().iter().position(|t| t.id == id)
    }
    fn region_at(&self, addr: u64) -> Option<&RegionInfo> {
        let regions = self.regions();
        let i = regions.partition_point(|r| r.end() <= addr);
        regions.get(i).filter(|r| r.contains(addr))
    }
}

#[cfg(test)]
mod module_index_tests {
    use super::*;

    fn m(base: u64, size: u32) -> ModuleRecord {
        ModuleRecord {
            base,
            size,
            ..Default::default()
        }
    }

    #[test]
    fn finds_what_a_linear_search_finds_even_with_overlaps() {
        let mods = vec![
            m(0x5000, 0x1000),
            m(0x1000, 0x10000),
            m(0x1000, 0x100),
            m(0x20000, 0x10),
            m(0x3000, 0x100),
        ];
        let index = ModuleIndex::new(&mods);
        for addr in (0..0x21000u64)
            .step_by(0x80)
            .chain([0x0fff, 0x1000, 0x10fff, 0x11000, 0x2000f, 0x20010])
        {
            assert_eq!(
                index.find(addr),
                mods.iter().position(|x| x.contains(addr)),
                "{addr:#x}"
            );
        }
    }
}
