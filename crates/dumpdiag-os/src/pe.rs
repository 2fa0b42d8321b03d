//! PE images as they lie in process memory: headers, sections, data directories and the
//! version resource. Read through the target's memory, so only pages the dump captured
//! are seen; every walk is bounded.
//!
//! Headers and section tables are parsed by `object`. The resource tree, the version
//! resource and the debug directory are walked here: `object`'s resource reader needs the
//! whole `.rsrc` as one slice (megabytes of icons in a large program, and in a minidump
//! rarely all captured) where three small directory reads reach the version block, and
//! `VS_VERSIONINFO` is not parsed by `object` at all.

use dumpdiag_target::{MemoryExt, MemoryReader};
use object::pe;
use object::read::pe::{ImageNtHeaders, ImageOptionalHeader};
use object::LittleEndian as LE;

#[derive(Debug, Clone, Default)]
pub struct Section {
    pub name: String,
    pub virtual_size: u32,
    pub virtual_address: u32,
    pub raw_size: u32,
    /// File offset of the section's raw data (meaningful for an image file, not in memory).
    pub raw_offset: u32,
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

/// Section headers read from one image. The PE format allows 65535; Windows' loader has
/// refused more than 96 since NT 4 (PE/COFF specification, "Section Table": "the Windows
/// loader limits the number of sections to 96"), so a longer table is not a loadable image.
const MAX_SECTIONS: usize = 96;

/// Where the NT headers may start. `e_lfanew` is a 32-bit file offset; real images put the
/// headers in the first page, and nothing a loader accepts puts them beyond 64 KB.
const MAX_NT_HEADERS_OFFSET: usize = 0x1_0000;

/// Bytes of header read from memory: the NT headers' furthest start, the largest optional
/// header (`SizeOfOptionalHeader` is 16 bits) and the largest section table accepted.
const MAX_HEADER_BYTES: usize = MAX_NT_HEADERS_OFFSET + 24 + 0xffff + MAX_SECTIONS * 40;

/// The headers of the image mapped at `base`, read from the target's memory.
pub fn read_headers(mem: &dyn MemoryReader, base: u64) -> Option<PeHeaders> {
    // One page holds the headers of every image a linker produces; read further only when
    // this image's own fields say its table reaches beyond it.
    let mut bytes = mem.read_bytes(base, 0x1000);
    let wanted = header_span(&bytes)?;
    if wanted > bytes.len() {
        bytes = mem.read_bytes(base, wanted.min(MAX_HEADER_BYTES));
    }
    let mut headers = parse_headers(&bytes)?;
    headers.base = base;
    Some(headers)
}

/// Where the NT headers start (`e_lfanew` of a valid DOS header), within the accepted reach.
fn nt_headers_offset(bytes: &[u8]) -> Option<usize> {
    let dos = pe::ImageDosHeader::parse(bytes).ok()?;
    let nt = dos.nt_headers_offset() as usize;
    (nt <= MAX_NT_HEADERS_OFFSET).then_some(nt)
}

/// How many header bytes the image says it has: DOS header, NT headers and section table.
fn header_span(bytes: &[u8]) -> Option<usize> {
    let nt = nt_headers_offset(bytes)?;
    let (file_header, _) =
        object::pod::from_bytes::<pe::ImageFileHeader>(bytes.get(nt + 4..)?).ok()?;
    let sections = (file_header.number_of_sections.get(LE) as usize).min(MAX_SECTIONS);
    Some(nt + 24 + file_header.size_of_optional_header.get(LE) as usize + sections * 40)
}

/// The headers in `bytes` (an image's first bytes, in file or memory layout: the headers are
/// laid out alike), parsed by `object`. `base` is left 0 for the caller.
fn parse_headers(bytes: &[u8]) -> Option<PeHeaders> {
    let nt = nt_headers_offset(bytes)?;
    // The optional header's magic decides its layout; `object` checks it again.
    let magic = bytes.get(nt + 24..nt + 26)?;
    match u16::from_le_bytes([magic[0], magic[1]]) {
        pe::IMAGE_NT_OPTIONAL_HDR32_MAGIC => headers_of::<pe::ImageNtHeaders32>(bytes, nt),
        pe::IMAGE_NT_OPTIONAL_HDR64_MAGIC => headers_of::<pe::ImageNtHeaders64>(bytes, nt),
        _ => None,
    }
}

fn headers_of<Nt: ImageNtHeaders>(bytes: &[u8], nt_offset: usize) -> Option<PeHeaders> {
    let mut offset = nt_offset as u64;
    let (nt, directories) = Nt::parse(bytes, &mut offset).ok()?;
    let file = nt.file_header();
    let opt = nt.optional_header();
    // The table as far as the bytes reach: a header page cut short by the dump still names
    // the sections it holds, as the hand-written reader did.
    let table = bytes.get(offset as usize..)?;
    let declared = file.number_of_sections.get(LE) as usize;
    let count = declared.min(MAX_SECTIONS).min(table.len() / 40);
    let (table, _) = object::pod::slice_from_bytes::<pe::ImageSectionHeader>(table, count).ok()?;
    let sections = table
        .iter()
        .map(|s| Section {
            name: String::from_utf8_lossy(s.raw_name()).into_owned(),
            virtual_size: s.virtual_size.get(LE),
            virtual_address: s.virtual_address.get(LE),
            raw_size: s.size_of_raw_data.get(LE),
            raw_offset: s.pointer_to_raw_data.get(LE),
            characteristics: s.characteristics.get(LE),
        })
        .collect();
    Some(PeHeaders {
        base: 0,
        machine: file.machine.get(LE),
        number_of_sections: file.number_of_sections.get(LE),
        time_date_stamp: file.time_date_stamp.get(LE),
        characteristics: file.characteristics.get(LE),
        magic: opt.magic(),
        linker_version: (opt.major_linker_version(), opt.minor_linker_version()),
        size_of_code: opt.size_of_code(),
        entry_point: opt.address_of_entry_point(),
        image_base: opt.image_base(),
        section_alignment: opt.section_alignment(),
        file_alignment: opt.file_alignment(),
        os_version: (
            opt.major_operating_system_version(),
            opt.minor_operating_system_version(),
        ),
        image_version: (opt.major_image_version(), opt.minor_image_version()),
        subsystem_version: (opt.major_subsystem_version(), opt.minor_subsystem_version()),
        size_of_image: opt.size_of_image(),
        size_of_headers: opt.size_of_headers(),
        checksum: opt.check_sum(),
        subsystem: opt.subsystem(),
        dll_characteristics: opt.dll_characteristics(),
        size_of_stack_reserve: opt.size_of_stack_reserve(),
        size_of_stack_commit: opt.size_of_stack_commit(),
        directories: directories
            .iter()
            .take(16)
            .map(|d| (d.virtual_address.get(LE), d.size.get(LE)))
            .collect(),
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
        let e = dir.wrapping_add(16 + i * 8);
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
        self.0.headers.directory(DIR_DEBUG)
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
        // RVAs are 32-bit: a directory (or entry) reaching past 2^32 ends there.
        let e = dir.checked_add(i * 28)?;
        let field = |o: u32| r.u32_at(e.checked_add(o)?);
        if field(12)? != 2 {
            continue; // IMAGE_DEBUG_TYPE_CODEVIEW
        }
        let len = field(16)? as usize;
        let rva = field(20)?;
        let raw = r.bytes(rva, len.min(4096));
        match dumpdiag_target::CodeViewRecord::parse(&raw) {
            Some(dumpdiag_target::CodeViewRecord::Other { .. }) | None => {}
            found => return found,
        }
    }
    None
}

/// A PE file as stored on disk (file layout, not memory layout): what the symbol path can
/// supply when a minidump holds no image pages, so unwind data is still at hand.
pub struct FileImage {
    pub bytes: Vec<u8>,
    /// Headers parsed from the file; `base` is 0 (the file is not mapped anywhere).
    pub headers: PeHeaders,
}

impl FileImage {
    pub fn parse(bytes: Vec<u8>) -> Option<FileImage> {
        let headers = parse_headers(&bytes)?;
        Some(FileImage { bytes, headers })
    }

    /// (rva, size) of the exception directory (.pdata).
    pub fn exception_directory(&self) -> Option<(u32, u32)> {
        self.headers.directory(DIR_EXCEPTION)
    }

    pub fn export_directory(&self) -> Option<(u32, u32)> {
        self.headers.directory(DIR_EXPORT)
    }

    /// The CodeView record from the file's debug directory.
    pub fn codeview(&self) -> Option<dumpdiag_target::CodeViewRecord> {
        let h = FileHeaders(self);
        codeview_with(&h)
    }

    /// Each section as (virtual address, virtual size or raw size when larger, characteristics).
    pub fn section_spans(&self) -> Vec<(u32, u32, u32)> {
        self.headers
            .sections
            .iter()
            .map(|s| {
                (
                    s.virtual_address,
                    s.virtual_size.max(s.raw_size),
                    s.characteristics,
                )
            })
            .collect()
    }

    /// Bytes at `rva` up to the end of its section's raw data, at most `max`.
    pub fn at_rva(&self, rva: u32, max: usize) -> Option<&[u8]> {
        // The section whose mapped span (the larger of virtual and raw size, as the loader
        // maps it) holds `rva`; bytes past its raw data are zero-fill, not in the file.
        let section = self.headers.sections.iter().find(|s| {
            rva >= s.virtual_address
                && rva
                    < s.virtual_address
                        .saturating_add(s.virtual_size.max(s.raw_size))
        })?;
        let within = rva - section.virtual_address;
        if within >= section.raw_size {
            return None;
        }
        let start = section.raw_offset.checked_add(within)? as usize;
        let len = ((section.raw_size - within) as usize).min(max);
        self.bytes.get(start..start.checked_add(len)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EveryAddress;

    /// PE32+ headers (DOS header, NT headers at 0x40, 16 data directories, one section) with
    /// the debug directory at `debug`, and the section `(rva, size, raw offset)`.
    fn headers(debug: (u32, u32), section: (u32, u32, u32)) -> Vec<u8> {
        let mut b = vec![0u8; 0x400];
        let put16 =
            |b: &mut Vec<u8>, o: usize, v: u16| b[o..o + 2].copy_from_slice(&v.to_le_bytes());
        let put32 =
            |b: &mut Vec<u8>, o: usize, v: u32| b[o..o + 4].copy_from_slice(&v.to_le_bytes());
        put16(&mut b, 0, 0x5a4d);
        put32(&mut b, 0x3c, 0x40);
        put32(&mut b, 0x40, 0x4550);
        let (fh, opt) = (0x44, 0x58);
        put16(&mut b, fh, 0x8664);
        put16(&mut b, fh + 2, 1);
        put16(&mut b, fh + 16, 0xf0);
        put16(&mut b, opt, 0x20b);
        put32(&mut b, opt + 56, 0x1000);
        put32(&mut b, opt + 108, 16);
        put32(&mut b, opt + 112 + 8 * DIR_DEBUG, debug.0);
        put32(&mut b, opt + 112 + 8 * DIR_DEBUG + 4, debug.1);
        let s = opt + 0xf0;
        b[s..s + 5].copy_from_slice(b".data");
        put32(&mut b, s + 8, section.1);
        put32(&mut b, s + 12, section.0);
        put32(&mut b, s + 16, section.1);
        put32(&mut b, s + 20, section.2);
        b
    }

    /// A debug directory at the top of the 32-bit RVA space: its entries' fields lie past 2^32
    /// and are not there (they must not wrap round to the DOS header, nor overflow).
    #[test]
    fn a_debug_directory_at_the_end_of_the_rva_space_has_no_codeview_record() {
        // In a file: the section holding the directory's last bytes says "CODEVIEW" there.
        let mut file = headers((0xffff_fff0, 56), (0xffff_f000, 0x1000, 0x400));
        file.resize(0x1400, 0);
        file[0x400 + 0xffc..0x1400].copy_from_slice(&2u32.to_le_bytes());
        let img = FileImage::parse(file).expect("the headers parse");
        assert!(img.codeview().is_none());

        // In memory, with every address of the image readable.
        let base = 0x1_4000_0000u64;
        let image = headers((0xffff_fff0, 56), (0x1000, 0x1000, 0x400));
        let mem = EveryAddress(|a: u64| match a.checked_sub(base) {
            Some(o) if (o as usize) < image.len() => image[o as usize],
            Some(0xffff_fffc) => 2,
            _ => 0,
        });
        let h = read_headers(&mem, base).expect("the headers read");
        assert_eq!(h.directory(DIR_DEBUG), Some((0xffff_fff0, 56)));
        assert!(codeview(&mem, &h).is_none());
    }

    /// A resource directory at the top of the address space: its entries wrap as addresses do.
    #[test]
    fn a_resource_directory_at_the_top_of_the_address_space_reads_without_overflow() {
        let mem = EveryAddress(|_| 0xff);
        // The directory 23 bytes below 2^64: its counts and its first entry (at +16, the last
        // 8 bytes below 2^64) are readable; the next entry lies past 2^64.
        let h = PeHeaders {
            base: u64::MAX - 0x1016,
            directories: vec![(0, 0), (0, 0), (0xfff, 0x100)],
            ..Default::default()
        };
        let _ = version_strings(&mem, &h);
    }

    /// Memory holding `image` at `base`, nothing elsewhere.
    fn mapped(image: Vec<u8>, base: u64) -> EveryAddress<impl Fn(u64) -> u8> {
        EveryAddress(move |a: u64| match a.checked_sub(base) {
            Some(o) if (o as usize) < image.len() => image[o as usize],
            _ => 0,
        })
    }

    /// Headers whose NT headers start late in the first page: the section table continues
    /// into the second page and every section is read, not just those in the first page.
    #[test]
    fn a_section_table_crossing_the_first_page_is_read_whole() {
        let mut image = vec![0u8; 0x3000];
        let nt = 0xf00usize;
        image[..2].copy_from_slice(b"MZ");
        image[0x3c..0x40].copy_from_slice(&(nt as u32).to_le_bytes());
        image[nt..nt + 4].copy_from_slice(b"PE\0\0");
        image[nt + 4..nt + 6].copy_from_slice(&0x14cu16.to_le_bytes());
        image[nt + 6..nt + 8].copy_from_slice(&20u16.to_le_bytes());
        image[nt + 20..nt + 22].copy_from_slice(&0xe0u16.to_le_bytes());
        image[nt + 24..nt + 26].copy_from_slice(&0x10bu16.to_le_bytes());
        image[nt + 24 + 92..nt + 24 + 96].copy_from_slice(&16u32.to_le_bytes());
        let table = nt + 24 + 0xe0;
        for i in 0..20 {
            let s = table + i * 40;
            image[s..s + 4].copy_from_slice(format!("s{i:02}\0").as_bytes());
            image[s + 12..s + 16].copy_from_slice(&(0x1000 * (i as u32 + 1)).to_le_bytes());
        }
        let h = read_headers(&mapped(image, 0x40_0000), 0x40_0000).expect("headers");
        assert_eq!(h.machine, 0x14c);
        assert_eq!(h.sections.len(), 20);
        assert_eq!(h.sections[19].name, "s19");
        assert_eq!(h.sections[19].virtual_address, 0x14000);
    }

    /// A header claiming 65535 sections (the field's limit) yields at most the 96 Windows
    /// loads, and only those whose bytes are there.
    #[test]
    fn a_section_count_beyond_the_loader_limit_is_capped() {
        let mut image = headers((0, 0), (0x1000, 0x200, 0x400));
        image[0x46..0x48].copy_from_slice(&0xffffu16.to_le_bytes());
        // A file of 0x400 bytes, table at 0x148: (0x400 - 0x148) / 40 = 17 whole entries.
        let file = FileImage::parse(image.clone()).expect("headers");
        assert_eq!(file.headers.sections.len(), (0x400 - 0x148) / 40);

        image.resize(0x10000, 0);
        let h = read_headers(&mapped(image, 0x1000_0000), 0x1000_0000).expect("headers");
        assert_eq!(h.sections.len(), MAX_SECTIONS);
        assert_eq!(h.number_of_sections, 0xffff);
    }

    /// Not an image: no DOS magic, no PE signature, an unknown optional-header magic, an
    /// `e_lfanew` far beyond any header.
    #[test]
    fn what_is_not_an_image_has_no_headers() {
        let good = headers((0, 0), (0x1000, 0x200, 0x400));
        assert!(FileImage::parse(good.clone()).is_some());
        for (at, bytes) in [
            (0usize, &b"ZM"[..]),
            (0x40, &b"PX\0\0"[..]),
            (0x58, &0x30bu16.to_le_bytes()[..]),
            (0x3c, &0x7fff_0000u32.to_le_bytes()[..]),
        ] {
            let mut bad = good.clone();
            bad[at..at + bytes.len()].copy_from_slice(bytes);
            assert!(FileImage::parse(bad.clone()).is_none(), "patch at {at:#x}");
            assert!(read_headers(&mapped(bad, 0x1_0000), 0x1_0000).is_none());
        }
    }
}
