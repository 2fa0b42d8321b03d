//! Stream directory, system facts and the streams read by hand (see the crate docs for why).

use dumpdiag_target::*;
use minidump::{Minidump, MinidumpMiscInfo, RawMiscInfo};
use minidump_common::format as md;
use num_traits::FromPrimitive;
use scroll::{Pread, LE};

/// Longest MINIDUMP_STRING accepted (characters); longer ones are cut.
const MAX_STRING_CHARS: usize = 32 * 1024;
/// Most handle descriptors read per stream.
const MAX_HANDLES: usize = 1 << 20;
/// Most object-information entries followed per handle (real chains hold one to three).
const MAX_OBJECT_INFOS_PER_HANDLE: usize = 16;
/// Most bytes of names and object information kept over a whole HandleData stream. Handles
/// can share one name or one object-information chain (by RVA), so per-handle caps multiply
/// by the handle count; this caps the product. Each entry is charged its length plus
/// [`HANDLE_ENTRY_OVERHEAD`]. A process with 100,000 handles and long object names needs
/// about a quarter of it.
const MAX_HANDLE_DETAIL_BYTES: usize = 64 << 20;
const HANDLE_ENTRY_OVERHEAD: usize = 32;

pub(crate) fn stream_name(t: u32) -> String {
    match t {
        crate::WINE_PRIVATE_STREAM => "Wine private stream (0xfff0)".to_string(),
        _ => match md::MINIDUMP_STREAM_TYPE::from_u32(t) {
            Some(k) => format!("{k:?}"),
            None => format!("unknown stream {t:#x}"),
        },
    }
}

/// Stream types this reader decodes.
const READ_STREAMS: &[u32] = &[
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    10,
    11,
    12,
    13,
    14,
    15,
    16,
    17,
    19,
    21,
    22,
    24,
    0x4767_0003,
    0x4350_0001,
];

pub(crate) fn directory(
    dump: &Minidump<&[u8]>,
    file_len: u64,
    warnings: &mut Vec<String>,
) -> Vec<StreamEntry> {
    let mut out: Vec<StreamEntry> = dump
        .all_streams()
        .enumerate()
        .map(|(i, d)| {
            let known = md::MINIDUMP_STREAM_TYPE::from_u32(d.stream_type).is_some();
            let support = if READ_STREAMS.contains(&d.stream_type) {
                StreamSupport::Read
            } else if known {
                StreamSupport::Unsupported
            } else {
                StreamSupport::Unknown
            };
            StreamEntry {
                index: i,
                stream_type: d.stream_type,
                name: stream_name(d.stream_type),
                rva: d.location.rva as u64,
                size: d.location.data_size as u64,
                support,
            }
        })
        .collect();
    out.sort_by_key(|s| s.rva);
    for (i, s) in out.iter_mut().enumerate() {
        s.index = i;
        if s.rva + s.size > file_len && s.stream_type != 0 {
            warnings.push(format!(
                "stream {} ({}) runs past the end of the file",
                s.name, s.stream_type
            ));
        }
    }
    out
}

pub(crate) fn facts(dump: &Minidump<&[u8]>, data: &[u8], warnings: &mut Vec<String>) -> DumpFacts {
    let header = &dump.header;
    let mut f = DumpFacts {
        format: if header.flags & 0x2 != 0 {
            "User Mini Dump File with Full Memory".into()
        } else {
            "User Mini Dump File".into()
        },
        dump_time: header.time_date_stamp,
        flags: header.flags,
        checksum: header.checksum,
        ..Default::default()
    };
    match dump.get_raw_stream(md::MINIDUMP_STREAM_TYPE::SystemInfoStream as u32) {
        Ok(bytes) => match bytes.pread_with::<md::MINIDUMP_SYSTEM_INFO>(0, LE) {
            Ok(si) => {
                f.arch = match si.processor_architecture {
                    0 => Arch::X86,
                    9 => Arch::Amd64,
                    12 => Arch::Arm64,
                    // PROCESSOR_ARCHITECTURE_IA32_ON_WIN64: a 32-bit process described in 32-bit terms.
                    10 => Arch::X86,
                    other => Arch::Other(other),
                };
                f.os_major = si.major_version;
                f.os_minor = si.minor_version;
                f.os_build = si.build_number;
                f.platform_id = si.platform_id;
                f.product_type = si.product_type;
                f.suite_mask = si.suite_mask;
                f.processor_count = si.number_of_processors;
                f.processor_level = si.processor_level;
                f.processor_revision = si.processor_revision;
                f.csd_version =
                    read_minidump_string(data, si.csd_version_rva as u64).unwrap_or_default();
                if f.arch == Arch::X86 {
                    let v = &si.cpu.data[..12];
                    let vendor: String = v
                        .iter()
                        .take_while(|&&b| b != 0)
                        .map(|&b| b as char)
                        .collect();
                    if vendor.chars().all(|c| c.is_ascii_graphic()) && !vendor.is_empty() {
                        f.cpu_vendor = Some(vendor);
                    }
                }
            }
            Err(_) => warnings.push("SystemInfo stream unreadable; assuming x64".into()),
        },
        Err(_) => warnings.push("no SystemInfo stream; assuming x64".into()),
    }
    f
}

macro_rules! misc_common {
    ($f:expr, $m:expr) => {{
        let m = $m;
        if m.flags1 & 0x1 != 0 {
            $f.process_id = Some(m.process_id);
        }
        if m.flags1 & 0x2 != 0 {
            $f.process_create_time = Some(m.process_create_time);
            $f.process_user_time = Some(m.process_user_time);
            $f.process_kernel_time = Some(m.process_kernel_time);
        }
    }};
}
macro_rules! misc_v2 {
    ($f:expr, $m:expr) => {{
        let m = $m;
        if m.flags1 & 0x4 != 0 {
            $f.processor_max_mhz = Some(m.processor_max_mhz);
            $f.processor_current_mhz = Some(m.processor_current_mhz);
        }
    }};
}
macro_rules! misc_v3 {
    ($f:expr, $m:expr) => {{
        let m = $m;
        if m.flags1 & 0x10 != 0 {
            $f.process_integrity_level = Some(m.process_integrity_level);
        }
        if m.flags1 & 0x20 != 0 {
            $f.process_execute_flags = Some(m.process_execute_flags);
        }
        if m.flags1 & 0x80 != 0 {
            $f.protected_process = Some(m.protected_process);
        }
        if m.flags1 & 0x40 != 0 {
            $f.time_zone_name = Some(utf16_until_nul(&m.time_zone.standard_name));
        }
    }};
}
macro_rules! misc_v4 {
    ($f:expr, $m:expr) => {{
        let m = $m;
        if m.flags1 & 0x100 != 0 {
            $f.build_string = Some(utf16_until_nul(&m.build_string)).filter(|s| !s.is_empty());
            $f.dbg_build_string = Some(utf16_until_nul(&m.dbg_bld_str)).filter(|s| !s.is_empty());
        }
    }};
}

pub(crate) fn apply_misc(f: &mut DumpFacts, misc: &MinidumpMiscInfo) {
    match &misc.raw {
        RawMiscInfo::MiscInfo(m) => misc_common!(f, m),
        RawMiscInfo::MiscInfo2(m) => {
            misc_common!(f, m);
            misc_v2!(f, m)
        }
        RawMiscInfo::MiscInfo3(m) => {
            misc_common!(f, m);
            misc_v2!(f, m);
            misc_v3!(f, m)
        }
        RawMiscInfo::MiscInfo4(m) => {
            misc_common!(f, m);
            misc_v2!(f, m);
            misc_v3!(f, m);
            misc_v4!(f, m)
        }
        RawMiscInfo::MiscInfo5(m) => {
            misc_common!(f, m);
            misc_v2!(f, m);
            misc_v3!(f, m);
            misc_v4!(f, m);
            f.xstate_enabled_features = Some(m.xstate_data.enabled_features);
            f.xstate_features = m
                .xstate_data
                .iter()
                .map(|(i, feat)| (i as u32, feat.offset, feat.size))
                .collect();
            if m.flags1 & 0x200 != 0 {
                f.process_cookie = Some(m.process_cookie);
            }
        }
    }
}

pub(crate) fn utf16_until_nul(units: &[u16]) -> String {
    let end = units.iter().position(|&u| u == 0).unwrap_or(units.len());
    String::from_utf16_lossy(&units[..end])
}

/// MINIDUMP_STRING at a file offset: u32 byte length, then UTF-16.
pub(crate) fn read_minidump_string(data: &[u8], rva: u64) -> Option<String> {
    if rva == 0 {
        return None;
    }
    let rva = usize::try_from(rva).ok()?;
    let len: u32 = data.pread_with(rva, LE).ok()?;
    let bytes = (len as usize).min(MAX_STRING_CHARS * 2) & !1;
    let raw = data.get(rva + 4..rva.checked_add(4 + bytes)?)?;
    let units: Vec<u16> = raw
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    Some(utf16_until_nul(&units))
}

/// Most bytes of names and debug records kept over the module list, the unloaded-module list
/// and the thread names together. Their entries point to strings and records by RVA, so many
/// entries can share one large string and per-entry caps multiply by the entry count (the
/// `minidump` crate reads them eagerly, one allocation each, which is why these streams are
/// read here). A large process (2,000 modules with 200-character paths, RSDS records, a few
/// hundred named threads) needs about 1.5 MB.
const MAX_NAME_BYTES: usize = 4 << 20;
/// Largest CodeView or IMAGE_DEBUG_MISC record read (an RSDS record is 24 bytes and a path).
const MAX_DEBUG_RECORD: usize = 64 << 10;
/// MINIDUMP_MODULE, MINIDUMP_UNLOADED_MODULE, MINIDUMP_THREAD_NAME sizes (minidumpapiset.h).
const MODULE_SIZE: usize = 108;
const UNLOADED_MODULE_SIZE: usize = 24;
const THREAD_NAME_SIZE: usize = 12;

/// What may still be kept of the variable-sized details (names, records) a stream's entries
/// point to, over all of them: charged by declared length before anything is read, so an
/// exhausted budget costs no more reading either.
pub(crate) struct Budget {
    left: usize,
    pub(crate) exhausted: bool,
}

impl Budget {
    pub(crate) fn new(bytes: usize) -> Budget {
        Budget {
            left: bytes,
            exhausted: false,
        }
    }

    /// The budget of the module list, unloaded modules and thread names together.
    pub(crate) fn names() -> Budget {
        Budget::new(MAX_NAME_BYTES)
    }

    /// Charge `len` bytes (and a small overhead per entry, so that empty names count too);
    /// false when the budget cannot pay, and from then on.
    fn take(&mut self, len: usize) -> bool {
        let cost = len.saturating_add(HANDLE_ENTRY_OVERHEAD);
        if self.exhausted || cost > self.left {
            self.exhausted = true;
            return false;
        }
        self.left -= cost;
        true
    }

    /// A MINIDUMP_STRING at `rva`, charged by its declared length (as far as the file holds
    /// it) before it is decoded. RVA 0 is "no string" (an unnamed handle), which costs
    /// nothing: read as a string it would be the file's own header.
    fn string(&mut self, data: &[u8], rva: u64) -> Option<String> {
        let at = usize::try_from(rva).ok().filter(|&at| at != 0)?;
        let len: u32 = data.pread_with(at, LE).ok()?;
        let held = data.len().saturating_sub(at + 4);
        let len = (len as usize).min(MAX_STRING_CHARS * 2).min(held);
        self.take(len).then(|| read_minidump_string(data, rva))?
    }

    /// The bytes of a location descriptor's record, capped, charged before they are copied.
    fn record<'d>(&mut self, data: &'d [u8], size: u32, rva: u32) -> Option<&'d [u8]> {
        let len = (size as usize).min(MAX_DEBUG_RECORD);
        if len == 0 {
            return None;
        }
        let r = data.get(rva as usize..(rva as usize).checked_add(len)?)?;
        self.take(len).then_some(r)
    }
}

/// The entries of a list stream: `count` claimed, clipped to what `bytes` holds after `header`
/// bytes in entries of `size`.
fn entries<'b>(
    bytes: &'b [u8],
    header: usize,
    size: usize,
    count: u32,
    name: &str,
    warnings: &mut Vec<String>,
) -> impl Iterator<Item = &'b [u8]> {
    let fit = bytes.len().saturating_sub(header) / size;
    if count as usize > fit {
        warnings.push(format!(
            "{name} claims {count} entries, the stream holds {fit}"
        ));
    }
    bytes
        .get(header..)
        .unwrap_or(&[])
        .chunks_exact(size)
        .take((count as usize).min(fit))
}

/// ModuleListStream: a count, then MINIDUMP_MODULEs whose names, CodeView and misc records
/// lie elsewhere in the file.
pub(crate) fn module_list(
    bytes: &[u8],
    data: &[u8],
    budget: &mut Budget,
    warnings: &mut Vec<String>,
) -> Vec<ModuleRecord> {
    let count: u32 = bytes.pread_with(0, LE).unwrap_or(0);
    let mut out = Vec::new();
    for e in entries(bytes, 4, MODULE_SIZE, count, "ModuleList", warnings) {
        let Ok(m) = e.pread_with::<md::MINIDUMP_MODULE>(0, LE) else {
            continue;
        };
        out.push(module_record(&m, data, budget));
    }
    if budget.exhausted {
        warnings
            .push("module names and debug records exceed their budget: later ones left out".into());
    }
    out
}

fn module_record(m: &md::MINIDUMP_MODULE, data: &[u8], budget: &mut Budget) -> ModuleRecord {
    let v = &m.version_info;
    let version = (v.signature == 0xfeef04bd).then_some(FixedFileInfo {
        signature: v.signature,
        file_version: (
            (v.file_version_hi >> 16) as u16,
            v.file_version_hi as u16,
            (v.file_version_lo >> 16) as u16,
            v.file_version_lo as u16,
        ),
        product_version: (
            (v.product_version_hi >> 16) as u16,
            v.product_version_hi as u16,
            (v.product_version_lo >> 16) as u16,
            v.product_version_lo as u16,
        ),
        file_flags_mask: v.file_flags_mask,
        file_flags: v.file_flags,
        file_os: v.file_os,
        file_type: v.file_type,
        file_subtype: v.file_subtype,
        file_date: ((v.file_date_hi as u64) << 32) | v.file_date_lo as u64,
    });
    let cv = m.cv_record;
    let misc = m.misc_record;
    ModuleRecord {
        base: m.base_of_image,
        size: m.size_of_image,
        checksum: m.checksum,
        time_date_stamp: m.time_date_stamp,
        path: budget
            .string(data, m.module_name_rva as u64)
            .unwrap_or_default(),
        version,
        codeview: budget
            .record(data, cv.data_size, cv.rva)
            .and_then(CodeViewRecord::parse),
        misc_name: budget
            .record(data, misc.data_size, misc.rva)
            .and_then(image_debug_misc_name),
    }
}

/// UnloadedModuleListStream: MINIDUMP_UNLOADED_MODULE_LIST (SizeOfHeader, SizeOfEntry,
/// NumberOfEntries), then the entries.
pub(crate) fn unloaded_modules(
    bytes: &[u8],
    data: &[u8],
    budget: &mut Budget,
    warnings: &mut Vec<String>,
) -> Vec<UnloadedModuleRecord> {
    let header: u32 = bytes.pread_with(0, LE).unwrap_or(0);
    let entry: u32 = bytes.pread_with(4, LE).unwrap_or(0);
    let count: u32 = bytes.pread_with(8, LE).unwrap_or(0);
    if !(12..=64).contains(&header) || !(UNLOADED_MODULE_SIZE as u32..=256).contains(&entry) {
        warnings.push(format!(
            "UnloadedModuleList header unreadable (header {header}, entry {entry})"
        ));
        return Vec::new();
    }
    let list = entries(
        bytes,
        header as usize,
        entry as usize,
        count,
        "UnloadedModuleList",
        warnings,
    );
    list.filter_map(|e| {
        let m = e.pread_with::<md::MINIDUMP_UNLOADED_MODULE>(0, LE).ok()?;
        Some(UnloadedModuleRecord {
            base: m.base_of_image,
            size: m.size_of_image,
            checksum: m.checksum,
            time_date_stamp: m.time_date_stamp,
            path: budget
                .string(data, m.module_name_rva as u64)
                .unwrap_or_default(),
        })
    })
    .collect()
}

/// ThreadNamesStream: a count, then MINIDUMP_THREAD_NAME {ThreadId, RVA64 of a
/// MINIDUMP_STRING} (12 bytes: packed to 4). Only names of threads the dump lists (`threads`,
/// sorted) are read, one each.
pub(crate) fn thread_names(
    bytes: &[u8],
    data: &[u8],
    threads: &[u32],
    budget: &mut Budget,
    warnings: &mut Vec<String>,
) -> Vec<(u32, String)> {
    let count: u32 = bytes.pread_with(0, LE).unwrap_or(0);
    let mut out: Vec<(u32, String)> = Vec::new();
    let mut named = vec![false; threads.len()];
    for e in entries(bytes, 4, THREAD_NAME_SIZE, count, "ThreadNames", warnings) {
        let id: u32 = e.pread_with(0, LE).unwrap_or(0);
        let rva: u64 = e.pread_with(4, LE).unwrap_or(0);
        let Ok(i) = threads.binary_search(&id) else {
            continue;
        };
        if std::mem::replace(&mut named[i], true) {
            continue;
        }
        if let Some(name) = budget.string(data, rva).filter(|n| !n.is_empty()) {
            out.push((id, name));
        }
    }
    out
}

/// HandleData: MINIDUMP_HANDLE_DATA_STREAM header, then descriptors of v1 (32 bytes) or v2
/// (40 bytes: + ObjectInfoRva, reserved); v2 object information entries form a chain of
/// MINIDUMP_HANDLE_OBJECT_INFORMATION records through NextInfoRva.
pub(crate) fn handles(bytes: &[u8], data: &[u8], warnings: &mut Vec<String>) -> Vec<HandleRecord> {
    let header_size: u32 = bytes.pread_with(0, LE).unwrap_or(0);
    let desc_size: u32 = bytes.pread_with(4, LE).unwrap_or(0);
    let count: u32 = bytes.pread_with(8, LE).unwrap_or(0);
    if !(16..=64).contains(&header_size) || !(32..=256).contains(&desc_size) {
        warnings.push(format!(
            "HandleData header unreadable (header {header_size}, descriptor {desc_size})"
        ));
        return Vec::new();
    }
    let fit = bytes.len().saturating_sub(header_size as usize) / desc_size as usize;
    if count as usize > fit {
        warnings.push(format!(
            "HandleData claims {count} handles, stream holds {fit}"
        ));
    }
    let n = (count as usize).min(fit).min(MAX_HANDLES);
    let mut out = Vec::with_capacity(n);
    let mut budget = Budget::new(MAX_HANDLE_DETAIL_BYTES);
    let mut cyclic = 0usize;
    for i in 0..n {
        let o = header_size as usize + i * desc_size as usize;
        let get32 = |off: usize| bytes.pread_with::<u32>(o + off, LE).unwrap_or(0);
        let mut name = |rva: u32| budget.string(data, rva as u64);
        let type_name = name(get32(8));
        let object_name = name(get32(12)).filter(|s| !s.is_empty());
        let mut h = HandleRecord {
            handle: bytes.pread_with(o, LE).unwrap_or(0),
            type_name,
            object_name,
            attributes: get32(16),
            granted_access: get32(20),
            handle_count: get32(24),
            pointer_count: get32(28),
            object_info: Vec::new(),
        };
        if desc_size >= 40 {
            let mut rva = get32(32) as usize;
            // The entries of this handle's chain so far: a chain that comes back to one of them
            // is cyclic.
            let mut visited: Vec<usize> = Vec::new();
            while rva != 0 && visited.len() < MAX_OBJECT_INFOS_PER_HANDLE {
                if visited.contains(&rva) {
                    cyclic += 1;
                    break;
                }
                visited.push(rva);
                let (Ok(next), Ok(kind), Ok(size)) = (
                    data.pread_with::<u32>(rva, LE),
                    data.pread_with::<u32>(rva + 4, LE),
                    data.pread_with::<u32>(rva + 8, LE),
                ) else {
                    warnings.push(format!(
                        "handle {:#x}: object information chain leaves the file",
                        h.handle
                    ));
                    break;
                };
                // SizeOfInfo counts the bytes after this 12-byte header.
                let body = data
                    .get(rva + 12..(rva + 12).saturating_add((size as usize).min(4096)))
                    .unwrap_or(&[]);
                if !budget.take(body.len()) {
                    break;
                }
                h.object_info.push((kind, body.to_vec()));
                rva = next as usize;
            }
        }
        out.push(h);
    }
    if cyclic > 0 {
        warnings.push(format!(
            "HandleData: the object information chains of {cyclic} handles loop back on themselves"
        ));
    }
    if budget.exhausted {
        warnings.push(format!(
            "HandleData: names and object information past {} MB left out",
            MAX_HANDLE_DETAIL_BYTES >> 20
        ));
    }
    out
}

pub(crate) fn extras(
    dump: &Minidump<&[u8]>,
    data: &[u8],
    warnings: &mut Vec<String>,
) -> ProcessExtras {
    let mut x = ProcessExtras::default();
    let raw = |t: md::MINIDUMP_STREAM_TYPE| dump.get_raw_stream(t as u32).ok();
    if let Some(b) = raw(md::MINIDUMP_STREAM_TYPE::CommentStreamA) {
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        x.comment_a = Some(String::from_utf8_lossy(&b[..end]).into_owned());
    }
    if let Some(b) = raw(md::MINIDUMP_STREAM_TYPE::CommentStreamW) {
        let units: Vec<u16> = b
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        x.comment_w = Some(utf16_until_nul(&units));
    }
    if let Some(b) = raw(md::MINIDUMP_STREAM_TYPE::ProcessVmCountersStream) {
        x.vm_counters = vm_counters(b);
        if x.vm_counters.is_none() {
            warnings.push("ProcessVmCounters stream unreadable".into());
        }
    }
    if let Some(b) = raw(md::MINIDUMP_STREAM_TYPE::SystemMemoryInfoStream) {
        // MINIDUMP_SYSTEM_MEMORY_INFO_1: Revision u16, Flags u16, then SYSTEM_BASIC_INFORMATION
        // followed by file-cache and performance blocks; we pick the commit counters.
        let r16 = |o: usize| b.pread_with::<u16>(o, LE).ok();
        let r32 = |o: usize| b.pread_with::<u32>(o, LE).ok();
        let r64 = |o: usize| b.pread_with::<u64>(o, LE).ok();
        if let (Some(revision), Some(flags)) = (r16(0), r16(2)) {
            // Minidump structures are 4-byte packed: MINIDUMP_SYSTEM_BASIC_INFORMATION at 4
            // (TimerResolution, PageSize, NumberOfPhysicalPages, ... 52 bytes), then
            // MINIDUMP_SYSTEM_FILECACHE_INFORMATION (60 bytes), then
            // MINIDUMP_SYSTEM_BASIC_PERFORMANCE_INFORMATION: AvailablePages, CommittedPages,
            // CommitLimit, PeakCommitment (u64 each) at 116.
            let page_size = r32(8).unwrap_or(0);
            let phys = r32(12).unwrap_or(0) as u64;
            let perf = 116;
            x.system_memory = Some(SystemMemoryInfo {
                revision,
                flags,
                page_size,
                number_of_physical_pages: phys,
                available_pages: r64(perf).unwrap_or(0),
                committed_pages: r64(perf + 8).unwrap_or(0),
                commit_limit: r64(perf + 16).unwrap_or(0),
                peak_commitment: r64(perf + 24).unwrap_or(0),
            });
        }
    }
    if let Some(b) = raw(md::MINIDUMP_STREAM_TYPE::TokenStream) {
        // MINIDUMP_TOKEN_INFO_LIST: TokenListSize, TokenListEntries, ListHeaderSize, ElementHeaderSize;
        // then entries: TokenSize, TokenId, TokenHandle (u64), token bytes.
        let entries: u32 = b.pread_with(4, LE).unwrap_or(0);
        let mut o: usize = b.pread_with::<u32>(8, LE).unwrap_or(16) as usize;
        for _ in 0..entries.min(64) {
            let (Ok(size), Ok(id), Ok(handle)) = (
                b.pread_with::<u32>(o, LE),
                b.pread_with::<u32>(o + 4, LE),
                b.pread_with::<u64>(o + 8, LE),
            ) else {
                break;
            };
            if size < 16 {
                break;
            }
            let body = b
                .get(o + 16..(o + size as usize).min(b.len()))
                .unwrap_or(&[]);
            x.tokens.push((id, handle, body.to_vec()));
            o += size as usize;
        }
    }
    if let Some(b) = raw(md::MINIDUMP_STREAM_TYPE::FunctionTable) {
        // MINIDUMP_FUNCTION_TABLE_STREAM: SizeOfHeader, SizeOfDescriptor, SizeOfNativeDescriptor,
        // SizeOfFunctionEntry, NumberOfDescriptors, SizeOfAlignPad; then per descriptor:
        // MINIDUMP_FUNCTION_TABLE_DESCRIPTOR (MinimumAddress, MaximumAddress, BaseAddress u64,
        // EntryCount u32, SizeOfAlignPad u32), the native descriptor, the entries, padding.
        let r32 = |o: usize| b.pread_with::<u32>(o, LE).unwrap_or(0) as usize;
        let (hdr, desc, native, entry, count, pad) =
            (r32(0), r32(4), r32(8), r32(12), r32(16), r32(20));
        // The header's SizeOfAlignPad bytes sit between the header and the first descriptor.
        let mut o = hdr + pad;
        for _ in 0..count.min(4096) {
            if desc < 32 || o + desc > b.len() {
                break;
            }
            let min: u64 = b.pread_with(o, LE).unwrap_or(0);
            let max: u64 = b.pread_with(o + 8, LE).unwrap_or(0);
            let base: u64 = b.pread_with(o + 16, LE).unwrap_or(0);
            let n: u32 = b.pread_with(o + 24, LE).unwrap_or(0);
            let my_pad: u32 = b.pread_with(o + 28, LE).unwrap_or(pad as u32);
            let start = o + desc + native;
            let len = (n as usize).saturating_mul(entry);
            let entries = b
                .get(start..start.saturating_add(len).min(b.len()))
                .unwrap_or(&[])
                .to_vec();
            x.function_tables.push(FunctionTableDescriptor {
                minimum_address: min,
                maximum_address: max,
                base_address: base,
                entry_count: n,
                entries,
            });
            o = start.saturating_add(len).saturating_add(my_pad as usize);
        }
    }
    if let Some(b) = raw(md::MINIDUMP_STREAM_TYPE::ThreadExListStream) {
        // MINIDUMP_THREAD_EX: MINIDUMP_THREAD (48 bytes) + BackingStore descriptor (16 bytes).
        let count: u32 = b.pread_with(0, LE).unwrap_or(0);
        let fit = b.len().saturating_sub(4) / 64;
        for i in 0..(count as usize).min(fit) {
            let o = 4 + i * 64;
            let id: u32 = b.pread_with(o, LE).unwrap_or(0);
            let start: u64 = b.pread_with(o + 48, LE).unwrap_or(0);
            let size: u32 = b.pread_with(o + 56, LE).unwrap_or(0);
            x.thread_ex_backing.push((id, start, size as u64));
        }
    }
    if let Ok(bp) = dump.get_stream::<minidump::MinidumpBreakpadInfo>() {
        x.breakpad_dump_thread = bp.dump_thread_id;
        x.breakpad_requesting_thread = bp.requesting_thread_id;
    }
    if let Ok(cp) = dump.get_stream::<minidump::MinidumpCrashpadInfo>() {
        x.crashpad_annotations = cp
            .simple_annotations
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let g = &cp.raw.report_id;
        x.crashpad_report_id = Some(format!(
            "{:08x}-{:04x}-{:04x}-{}",
            g.data1,
            g.data2,
            g.data3,
            g.data4
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ));
        for m in &cp.module_list {
            for (k, v) in &m.simple_annotations {
                x.crashpad_annotations.push((k.clone(), v.clone()));
            }
        }
    }
    let _ = data;
    x
}

fn vm_counters(b: &[u8]) -> Option<VmCounters> {
    // MINIDUMP_PROCESS_VM_COUNTERS_1: Revision u16, PageFaultCount u32 (at 2, packed),
    // then u64 sizes from offset 6. Revision 2 adds Flags u16 after Revision and more fields.
    let revision: u16 = b.pread_with(0, LE).ok()?;
    let r64 = |o: usize| b.pread_with::<u64>(o, LE).ok();
    if revision == 1 {
        let pf: u32 = b.pread_with(2, LE).ok()?;
        let mut c = VmCounters {
            revision,
            page_fault_count: pf,
            ..Default::default()
        };
        let base = 6;
        let v: Vec<u64> = (0..9).map_while(|i| r64(base + i * 8)).collect();
        if v.len() < 9 {
            return None;
        }
        (
            c.peak_working_set_size,
            c.working_set_size,
            c.quota_peak_paged_pool_usage,
            c.quota_paged_pool_usage,
        ) = (v[0], v[1], v[2], v[3]);
        (
            c.quota_peak_non_paged_pool_usage,
            c.quota_non_paged_pool_usage,
            c.pagefile_usage,
            c.peak_pagefile_usage,
            c.private_usage,
        ) = (v[4], v[5], v[6], v[7], v[8]);
        Some(c)
    } else {
        // Revision 2: Revision u16, Flags u16, PageFaultCount u32, then u64s.
        let pf: u32 = b.pread_with(4, LE).ok()?;
        let mut c = VmCounters {
            revision,
            page_fault_count: pf,
            ..Default::default()
        };
        let v: Vec<u64> = (0..17).map_while(|i| r64(8 + i * 8)).collect();
        if v.len() < 9 {
            return None;
        }
        (
            c.peak_working_set_size,
            c.working_set_size,
            c.quota_peak_paged_pool_usage,
            c.quota_paged_pool_usage,
        ) = (v[0], v[1], v[2], v[3]);
        (
            c.quota_peak_non_paged_pool_usage,
            c.quota_non_paged_pool_usage,
            c.pagefile_usage,
            c.peak_pagefile_usage,
            c.private_usage,
        ) = (v[4], v[5], v[6], v[7], v[8]);
        c.private_working_set_size = v.get(9).copied();
        c.shared_commit_usage = v.get(10).copied();
        c.job_shared_commit_usage = v.get(11).copied();
        c.job_private_commit_usage = v.get(12).copied();
        c.job_peak_private_commit_usage = v.get(13).copied();
        c.job_private_commit_limit = v.get(14).copied();
        c.job_total_commit_limit = v.get(15).copied();
        Some(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put32(b: &mut [u8], at: usize, v: u32) {
        b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    /// A HandleData stream of `count` descriptors of `size` bytes, handles 4, 8, ...; `fill`
    /// writes the rest of each descriptor.
    fn handle_stream(count: usize, size: usize, fill: impl Fn(&mut [u8])) -> Vec<u8> {
        let mut stream = vec![0u8; 16 + count * size];
        put32(&mut stream, 0, 16);
        put32(&mut stream, 4, size as u32);
        put32(&mut stream, 8, count as u32);
        for (i, d) in stream[16..].chunks_exact_mut(size).enumerate() {
            put32(d, 0, 4 * i as u32 + 4);
            fill(d);
        }
        stream
    }

    /// Thousands of v2 descriptors sharing one long name and one object-information chain that
    /// loops (A → B → A): each handle alone is within the per-handle caps, together they
    /// would keep hundreds of megabytes.
    #[test]
    fn shared_and_cyclic_handle_details_stay_within_one_budget() {
        const HANDLES: usize = 2048;
        let (name_at, a_at, b_at) = (0x100usize, 0x20000usize, 0x22000usize);
        let mut data = vec![0u8; 0x24000];
        let chars = MAX_STRING_CHARS as u32;
        put32(&mut data, name_at, chars * 2);
        for i in 0..chars as usize {
            data[name_at + 4 + 2 * i] = b'A';
        }
        for (at, next) in [(a_at, b_at), (b_at, a_at)] {
            put32(&mut data, at, next as u32);
            put32(&mut data, at + 4, 6);
            put32(&mut data, at + 8, 4096);
        }
        let stream = handle_stream(HANDLES, 40, |d| {
            put32(d, 8, name_at as u32);
            put32(d, 12, name_at as u32);
            put32(d, 32, a_at as u32);
        });
        let mut warnings = Vec::new();
        let handles = handles(&stream, &data, &mut warnings);
        assert_eq!(handles.len(), HANDLES, "every descriptor is listed");
        // The loop is followed once around, not to the per-handle cap.
        assert_eq!(handles[0].object_info.len(), 2);
        assert_eq!(
            handles[0].type_name.as_ref().map(String::len),
            Some(MAX_STRING_CHARS)
        );
        let kept: usize = handles
            .iter()
            .map(|h| {
                h.type_name.as_ref().map_or(0, String::len)
                    + h.object_name.as_ref().map_or(0, String::len)
                    + h.object_info.iter().map(|i| i.1.len()).sum::<usize>()
            })
            .sum();
        assert!(
            kept <= MAX_HANDLE_DETAIL_BYTES,
            "kept {kept} bytes of names and object information"
        );
        assert!(handles.last().unwrap().object_info.is_empty());
        assert!(
            warnings.iter().any(|w| w.contains("loop back")),
            "{warnings:?}"
        );
        assert!(
            warnings.iter().any(|w| w.contains("left out")),
            "{warnings:?}"
        );
    }

    /// A process with 150 000 unnamed handles (a handle leak, the very case HandleData is
    /// read for): each keeps its type name; an unnamed object (RVA 0) costs nothing.
    #[test]
    fn unnamed_handles_keep_their_type_names() {
        const HANDLES: usize = 150_000;
        let name_at = 0x100usize;
        let mut data = vec![0u8; 0x200];
        data[..4].copy_from_slice(b"MDMP");
        put32(&mut data, name_at, 10);
        for (i, c) in "Event".bytes().enumerate() {
            data[name_at + 4 + 2 * i] = c;
        }
        let stream = handle_stream(HANDLES, 32, |d| put32(d, 8, name_at as u32));
        let mut warnings = Vec::new();
        let handles = handles(&stream, &data, &mut warnings);
        assert_eq!(handles.len(), HANDLES);
        assert!(handles
            .iter()
            .all(|h| h.type_name.as_deref() == Some("Event") && h.object_name.is_none()));
        assert!(warnings.is_empty(), "{warnings:?}");
    }
}
