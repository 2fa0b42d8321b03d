//! PE images as they lie in process memory: headers, sections, data directories and the
//! version resource. Read through the target's memory, so only pages the dump captured
//! are seen; every walk is bounded.

use dumpdiag_target::{MemoryExt, MemoryReader};

#[derive(Debug, Clone, Default)]
pub struct Section {
    pub name: String,
    pub virtual_size: u32,
    pub virtual_address: u32,
    pub raw_size: u32,
    pub characteristics: u32,
}

#[derive(Debug, Clone, Default)]
pub struct PeHeaders {
    pub base: u64,
    pub machine: u16,
    pub number_of_sections: u16,
    pub time_date_stamp: u32,
    pub characteristics: u16,
    pub magic: u16,
    pub linker_version: (u8, u8),
    pub size_of_code: u32,
    pub entry_point: u32,
    pub image_base: u64,
    pub section_alignment: u32,
    pub file_alignment: u32,
    pub os_version: (u16, u16),
    pub image_version: (u16, u16),
    pub subsystem_version: (u16, u16),
    pub size_of_image: u32,
    pub size_of_headers: u32,
    pub checksum: u32,
    pub subsystem: u16,
    pub dll_characteristics: u16,
    pub size_of_stack_reserve: u64,
    pub size_of_stack_commit: u64,
    /// (RVA, size) of each data directory.
    pub directories: Vec<(u32, u32)>,
    pub sections: Vec<Section>,
}

pub const DIR_EXPORT: usize = 0;
pub const DIR_RESOURCE: usize = 2;
pub const DIR_EXCEPTION: usize = 3;
pub const DIR_DEBUG: usize = 6;

pub fn read_headers(mem: &dyn MemoryReader, base: u64) -> Option<PeHeaders> {
    if mem.read_u16(base)? != 0x5a4d {
        return None;
    }
    let nt = base.wrapping_add(mem.read_u32(base.wrapping_add(0x3c))?.min(0x1000) as u64);
    if mem.read_u32(nt)? != 0x4550 {
        return None;
    }
    let fh = nt.wrapping_add(4);
    let opt = fh.wrapping_add(20);
    let size_of_optional = mem.read_u16(fh.wrapping_add(16))? as u64;
    let magic = mem.read_u16(opt)?;
    let is64 = magic == 0x20b;
    let u8_ = |o: u64| mem.read_u8(opt.wrapping_add(o)).unwrap_or(0);
    let u16_ = |o: u64| mem.read_u16(opt.wrapping_add(o)).unwrap_or(0);
    let u32_ = |o: u64| mem.read_u32(opt.wrapping_add(o)).unwrap_or(0);
    let (image_base, stack_reserve, stack_commit, dirs_at, dir_count_at) = if is64 {
        (
            mem.read_u64(opt.wrapping_add(24)).unwrap_or(0),
            mem.read_u64(opt.wrapping_add(72)).unwrap_or(0),
            mem.read_u64(opt.wrapping_add(80)).unwrap_or(0),
            112,
            108,
        )
    } else {
        (u32_(28) as u64, u32_(72) as u64, u32_(76) as u64, 96, 92)
    };
    let dir_count = u32_(dir_count_at).min(16);
    let directories = (0..dir_count as u64)
        .map(|i| (u32_(dirs_at + i * 8), u32_(dirs_at + i * 8 + 4)))
        .collect();
    let number_of_sections = mem.read_u16(fh.wrapping_add(2))?;
    let sec_table = opt.wrapping_add(size_of_optional);
    let sections = (0..number_of_sections.min(96) as u64)
        .map_while(|i| {
            let s = sec_table.wrapping_add(i * 40);
            let name = mem.read_bytes(s, 8);
            if name.len() < 8 {
                return None;
            }
            let end = name.iter().position(|&b| b == 0).unwrap_or(8);
            Some(Section {
                name: String::from_utf8_lossy(&name[..end]).into_owned(),
                virtual_size: mem.read_u32(s.wrapping_add(8))?,
                virtual_address: mem.read_u32(s.wrapping_add(12))?,
                raw_size: mem.read_u32(s.wrapping_add(16))?,
                characteristics: mem.read_u32(s.wrapping_add(36))?,
            })
        })
        .collect();
    Some(PeHeaders {
        base,
        machine: mem.read_u16(fh)?,
        number_of_sections,
        time_date_stamp: mem.read_u32(fh.wrapping_add(4))?,
        characteristics: mem.read_u16(fh.wrapping_add(18))?,
        magic,
        linker_version: (u8_(2), u8_(3)),
        size_of_code: u32_(4),
        entry_point: u32_(16),
        image_base,
        section_alignment: u32_(32),
        file_alignment: u32_(36),
        os_version: (u16_(40), u16_(42)),
        image_version: (u16_(44), u16_(46)),
        subsystem_version: (u16_(48), u16_(50)),
        size_of_image: u32_(56),
        size_of_headers: u32_(60),
        checksum: u32_(64),
        subsystem: u16_(68),
        dll_characteristics: u16_(70),
        size_of_stack_reserve: stack_reserve,
        size_of_stack_commit: stack_commit,
        directories,
        sections,
    })
}

impl PeHeaders {
    pub fn directory(&self, index: usize) -> Option<(u32, u32)> {
        self.directories
            .get(index)
            .copied()
            .filter(|&(rva, size)| rva != 0 && size != 0)
    }
}

/// Largest version resource accepted.
const MAX_VERSION_RESOURCE: usize = 64 * 1024;

/// The strings of the version resource's first StringTable (CompanyName, FileDescription,
/// ProductVersion, ...), in resource order. None when the resource is not in the dump.
pub fn version_strings(
    mem: &dyn MemoryReader,
    headers: &PeHeaders,
) -> Option<Vec<(String, String)>> {
    let (rsrc, _) = headers.directory(DIR_RESOURCE)?;
    let root = headers.base.wrapping_add(rsrc as u64);
    // Resource tree: type (RT_VERSION = 16) → name (first) → language (first) → data entry.
    let type_dir = find_resource_entry(mem, root, root, Some(16))?;
    let name_dir = find_resource_entry(mem, root, type_dir, None)?;
    let data_entry = find_resource_entry(mem, root, name_dir, None)?;
    let data_rva = mem.read_u32(data_entry)?;
    let size = mem.read_u32(data_entry.wrapping_add(4))? as usize;
    let bytes = mem.read_bytes(
        headers.base.wrapping_add(data_rva as u64),
        size.min(MAX_VERSION_RESOURCE),
    );
    let mut out = Vec::new();
    parse_version_block(&bytes, 0, 0, &mut out);
    Some(out)
}

/// In a resource directory at `dir`, the entry with integer id `id` (or the first entry);
/// returns the address its offset leads to (a subdirectory or a data entry).
fn find_resource_entry(
    mem: &dyn MemoryReader,
    root: u64,
    dir: u64,
    id: Option<u32>,
) -> Option<u64> {
    let named = mem.read_u16(dir.wrapping_add(12))? as u64;
    let ids = mem.read_u16(dir.wrapping_add(14))? as u64;
    for i in 0..(named + ids).min(256) {
        let e = dir.wrapping_add(16) + i * 8;
        let name = mem.read_u32(e)?;
        let off = mem.read_u32(e.wrapping_add(4))?;
        if id.is_none_or(|want| name & 0x8000_0000 == 0 && name == want) {
            return Some(root.wrapping_add((off & 0x7fff_ffff) as u64));
        }
    }
    None
}

fn utf16_key(bytes: &[u8], at: usize) -> (String, usize) {
    let mut units = Vec::new();
    let mut i = at;
    while i + 1 < bytes.len() {
        let u = u16::from_le_bytes([bytes[i], bytes[i + 1]]);
        i += 2;
        if u == 0 {
            break;
        }
        units.push(u);
    }
    (String::from_utf16_lossy(&units), i)
}

fn align4(x: usize) -> usize {
    (x + 3) & !3
}

/// Walk VS_VERSIONINFO / StringFileInfo / StringTable / String blocks, collecting String
/// key/value pairs of the first StringTable.
fn parse_version_block(
    bytes: &[u8],
    at: usize,
    depth: u32,
    out: &mut Vec<(String, String)>,
) -> usize {
    if depth > 4 || at + 6 > bytes.len() {
        return bytes.len();
    }
    let len = u16::from_le_bytes([bytes[at], bytes[at + 1]]) as usize;
    let value_len = u16::from_le_bytes([bytes[at + 2], bytes[at + 3]]) as usize;
    let is_text = u16::from_le_bytes([bytes[at + 4], bytes[at + 5]]) == 1;
    if len < 6 {
        return bytes.len();
    }
    let end = (at + len).min(bytes.len());
    let (key, after_key) = utf16_key(bytes, at + 6);
    let value_at = align4(after_key);
    if depth == 3 {
        // A String: value is UTF-16 text, value_len counts characters.
        let vbytes = if is_text { value_len * 2 } else { value_len };
        let v = bytes
            .get(value_at..(value_at + vbytes).min(end))
            .unwrap_or(&[]);
        let units: Vec<u16> = v
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0)
            .collect();
        out.push((key, String::from_utf16_lossy(&units)));
        return end;
    }
    if depth == 1 && key != "StringFileInfo" {
        return end;
    }
    let value_bytes = if depth == 0 { value_len } else { 0 };
    let mut child = align4(value_at + value_bytes);
    let mut tables = 0;
    while child + 6 <= end {
        let next = parse_version_block(bytes, child, depth + 1, out);
        if depth == 1 {
            tables += 1;
            if tables == 1 {
                break;
            }
        }
        if next <= child {
            break;
        }
        child = align4(next);
    }
    end
}

/// The CodeView (RSDS / NB10) record of an image in memory, via its debug directory. Dump
/// writers that leave the module's CvRecord empty (Wine's) still capture the image itself.
pub fn codeview(
    mem: &dyn MemoryReader,
    headers: &PeHeaders,
) -> Option<dumpdiag_target::CodeViewRecord> {
    let (dir, size) = headers.directory(DIR_DEBUG)?;
    codeview_with(&MemoryRva {
        mem,
        base: headers.base,
        debug_dir: (dir, size),
    })
}

/// Reads by RVA from an image, in memory or in a file.
trait RvaReader {
    fn debug_directory(&self) -> Option<(u32, u32)>;
    fn bytes(&self, rva: u32, len: usize) -> Vec<u8>;
    fn u32_at(&self, rva: u32) -> Option<u32> {
        let b = self.bytes(rva, 4);
        Some(u32::from_le_bytes(b.get(..4)?.try_into().ok()?))
    }
}

struct MemoryRva<'a> {
    mem: &'a dyn MemoryReader,
    base: u64,
    debug_dir: (u32, u32),
}

impl RvaReader for MemoryRva<'_> {
    fn debug_directory(&self) -> Option<(u32, u32)> {
        Some(self.debug_dir)
    }
    fn bytes(&self, rva: u32, len: usize) -> Vec<u8> {
        self.mem.read_bytes(self.base.wrapping_add(rva as u64), len)
    }
}

struct FileHeaders<'a>(&'a FileImage);

impl RvaReader for FileHeaders<'_> {
    fn debug_directory(&self) -> Option<(u32, u32)> {
        self.0.debug_directory
    }
    fn bytes(&self, rva: u32, len: usize) -> Vec<u8> {
        self.0
            .at_rva(rva, len)
            .map(<[u8]>::to_vec)
            .unwrap_or_default()
    }
}

fn codeview_with(r: &dyn RvaReader) -> Option<dumpdiag_target::CodeViewRecord> {
    let (dir, size) = r.debug_directory()?;
    for i in 0..(size / 28).min(16) {
        let e = dir + i * 28;
        if r.u32_at(e + 12)? != 2 {
            continue; // IMAGE_DEBUG_TYPE_CODEVIEW
        }
        let len = r.u32_at(e + 16)? as usize;
        let rva = r.u32_at(e + 20)?;
        let raw = r.bytes(rva, len.min(4096));
        let name_of = |b: &[u8]| {
            let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
            String::from_utf8_lossy(&b[..end]).into_owned()
        };
        match raw.get(..4) {
            Some(b"RSDS") if raw.len() >= 24 => {
                let mut guid = [0u8; 16];
                guid.copy_from_slice(&raw[4..20]);
                let age = u32::from_le_bytes(raw[20..24].try_into().ok()?);
                return Some(dumpdiag_target::CodeViewRecord::Pdb70 {
                    guid,
                    age,
                    pdb_name: name_of(&raw[24..]),
                });
            }
            Some(b"NB10") if raw.len() >= 16 => {
                let signature = u32::from_le_bytes(raw[8..12].try_into().ok()?);
                let age = u32::from_le_bytes(raw[12..16].try_into().ok()?);
                return Some(dumpdiag_target::CodeViewRecord::Pdb20 {
                    signature,
                    age,
                    pdb_name: name_of(&raw[16..]),
                });
            }
            _ => {}
        }
    }
    None
}

/// A PE file as stored on disk (file layout, not memory layout): what the symbol path can
/// supply when a minidump holds no image pages, so unwind data is still at hand.
pub struct FileImage {
    pub bytes: Vec<u8>,
    /// (virtual address, virtual size, raw offset, raw size) per section.
    sections: Vec<(u32, u32, u32, u32)>,
    /// Each section's characteristics (IMAGE_SCN_*), in the order of `sections`.
    characteristics: Vec<u32>,
    pub time_date_stamp: u32,
    pub size_of_image: u32,
    /// (rva, size) of the exception directory (.pdata).
    pub exception_directory: Option<(u32, u32)>,
    pub debug_directory: Option<(u32, u32)>,
    pub export_directory: Option<(u32, u32)>,
}

impl FileImage {
    pub fn parse(bytes: Vec<u8>) -> Option<FileImage> {
        let u16_at = |o: usize| Some(u16::from_le_bytes(bytes.get(o..o + 2)?.try_into().ok()?));
        let u32_at = |o: usize| Some(u32::from_le_bytes(bytes.get(o..o + 4)?.try_into().ok()?));
        if u16_at(0)? != 0x5a4d {
            return None;
        }
        let nt = u32_at(0x3c)? as usize;
        if u32_at(nt)? != 0x4550 {
            return None;
        }
        let fh = nt + 4;
        let count = u16_at(fh + 2)?.min(96) as usize;
        let time_date_stamp = u32_at(fh + 4)?;
        let opt = fh + 20;
        let opt_size = u16_at(fh + 16)? as usize;
        let is64 = u16_at(opt)? == 0x20b;
        let size_of_image = u32_at(opt + 56)?;
        let dirs = opt + if is64 { 112 } else { 96 };
        let dir_count = u32_at(opt + if is64 { 108 } else { 92 })?;
        let directory = |i: usize| {
            (dir_count > i as u32)
                .then(|| Some((u32_at(dirs + i * 8)?, u32_at(dirs + i * 8 + 4)?)))
                .flatten()
                .filter(|d| d.0 != 0 && d.1 != 0)
        };
        let exception_directory = directory(DIR_EXCEPTION);
        let debug_directory = directory(DIR_DEBUG);
        let export_directory = directory(DIR_EXPORT);
        let table = opt + opt_size;
        let sections = (0..count).map_while(|i| {
            let s = table + i * 40;
            Some((
                u32_at(s + 12)?,
                u32_at(s + 8)?,
                u32_at(s + 20)?,
                u32_at(s + 16)?,
            ))
        });
        let sections: Vec<_> = sections.collect();
        let characteristics = (0..sections.len())
            .map(|i| u32_at(table + i * 40 + 36).unwrap_or(0))
            .collect();
        Some(FileImage {
            bytes,
            sections,
            characteristics,
            time_date_stamp,
            size_of_image,
            exception_directory,
            debug_directory,
            export_directory,
        })
    }

    /// The CodeView record from the file's debug directory.
    pub fn codeview(&self) -> Option<dumpdiag_target::CodeViewRecord> {
        let h = FileHeaders(self);
        codeview_with(&h)
    }

    /// Each section as (virtual address, virtual size or raw size when larger, characteristics).
    pub fn section_spans(&self) -> Vec<(u32, u32, u32)> {
        self.sections
            .iter()
            .zip(&self.characteristics)
            .map(|(s, &c)| (s.0, s.1.max(s.3), c))
            .collect()
    }

    /// Bytes at `rva` up to the end of its section's raw data, at most `max`.
    pub fn at_rva(&self, rva: u32, max: usize) -> Option<&[u8]> {
        let &(va, _, raw, raw_size) = self
            .sections
            .iter()
            .find(|s| rva >= s.0 && rva < s.0.saturating_add(s.1.max(s.3)))?;
        let within = rva - va;
        if within >= raw_size {
            return None;
        }
        let start = raw.checked_add(within)? as usize;
        let len = ((raw_size - within) as usize).min(max);
        self.bytes.get(start..start.checked_add(len)?)
    }
}
