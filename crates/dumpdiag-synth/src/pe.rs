//! PE images as the loader maps them (memory layout, section by section at its RVA): DOS and
//! NT headers, the section table, code, data, the export directory, the exception directory
//! with UNWIND_INFO (x64), the debug directory with its CodeView RSDS record, and the version
//! resource. Layouts follow winnt.h (IMAGE_DOS_HEADER, IMAGE_NT_HEADERS32/64,
//! IMAGE_SECTION_HEADER, IMAGE_EXPORT_DIRECTORY, RUNTIME_FUNCTION, IMAGE_DEBUG_DIRECTORY,
//! IMAGE_RESOURCE_DIRECTORY) and verrsrc.h (VS_VERSIONINFO, VS_FIXEDFILEINFO).

use crate::bytes::{align, pad, put, put_u16, put_u32, put_u64, utf16z};
use crate::code::{CallOperand, CodeLayout};

/// Where IMAGE_NT_HEADERS start (IMAGE_DOS_HEADER.e_lfanew).
const NT_HEADERS: u64 = 0x80;
const SECTION_ALIGNMENT: u64 = 0x1000;
const FILE_ALIGNMENT: u64 = 0x200;
const SIZE_OF_HEADERS: u32 = 0x400;

/// IMAGE_SCN_* characteristics of the sections written.
pub const SCN_TEXT: u32 = 0x6000_0020; // CNT_CODE | MEM_EXECUTE | MEM_READ
pub const SCN_RDATA: u32 = 0x4000_0040; // CNT_INITIALIZED_DATA | MEM_READ
pub const SCN_DATA: u32 = 0xc000_0040; // CNT_INITIALIZED_DATA | MEM_READ | MEM_WRITE

/// A module's version resource: VS_FIXEDFILEINFO and the strings of one StringTable
/// (language 0409, code page 04b0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub file_version: (u16, u16, u16, u16),
    pub product_version: (u16, u16, u16, u16),
    /// VS_FF_* flags (dwFileFlags); dwFileFlagsMask is 0x3f.
    pub file_flags: u32,
    /// VOS_NT_WINDOWS32 (0x40004) unless changed.
    pub file_os: u32,
    /// VFT_APP (1) or VFT_DLL (2); [`crate::Module`] sets it from the file name.
    pub file_type: u32,
    pub file_subtype: u32,
    /// (key, value) pairs: CompanyName, FileDescription, FileVersion, ProductName, ...
    pub strings: Vec<(String, String)>,
}

impl Version {
    /// Version `a.b.c.d` for both file and product, with no strings.
    pub fn new(a: u16, b: u16, c: u16, d: u16) -> Version {
        Version {
            file_version: (a, b, c, d),
            product_version: (a, b, c, d),
            file_flags: 0,
            file_os: 0x40004,
            file_type: 0,
            file_subtype: 0,
            strings: Vec::new(),
        }
    }

    /// Add a StringTable entry.
    pub fn string(mut self, key: &str, value: &str) -> Version {
        self.strings.push((key.into(), value.into()));
        self
    }

    /// VS_FIXEDFILEINFO as the MDMP module record and the resource both carry it.
    pub fn fixed_file_info(&self) -> minidump_common::format::VS_FIXEDFILEINFO {
        let ms = |v: (u16, u16, u16, u16)| ((v.0 as u32) << 16) | v.1 as u32;
        let ls = |v: (u16, u16, u16, u16)| ((v.2 as u32) << 16) | v.3 as u32;
        minidump_common::format::VS_FIXEDFILEINFO {
            signature: 0xfeef_04bd,
            struct_version: 0x0001_0000,
            file_version_hi: ms(self.file_version),
            file_version_lo: ls(self.file_version),
            product_version_hi: ms(self.product_version),
            product_version_lo: ls(self.product_version),
            file_flags_mask: 0x3f,
            file_flags: self.file_flags,
            file_os: self.file_os,
            file_type: self.file_type,
            file_subtype: self.file_subtype,
            file_date_hi: 0,
            file_date_lo: 0,
        }
    }
}

/// A function as the image holds it.
pub struct ImageFunction<'a> {
    pub name: &'a str,
    pub rva: u32,
    pub size: u32,
    pub code: CodeLayout,
    pub exported: bool,
    /// The callee of each call site (0 when no chain named one).
    pub targets: Vec<u64>,
}

/// Everything an image is made of.
pub struct ImageInput<'a> {
    pub x64: bool,
    pub base: u64,
    pub dll: bool,
    /// The module's file name (the export directory's Name).
    pub file_name: &'a str,
    pub time_date_stamp: u32,
    pub checksum: u32,
    pub text_size: u32,
    pub data_size: u32,
    pub entry_point: u32,
    pub functions: Vec<ImageFunction<'a>>,
    /// (name, rva, exported) of the data the test placed in `.data`.
    pub globals: Vec<(&'a str, u32, bool)>,
    pub exports: bool,
    /// (GUID bytes, age, PDB file name) of the RSDS record.
    pub codeview: Option<([u8; 16], u32, &'a str)>,
    pub version: Option<&'a Version>,
}

/// One section of a built image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionInfo {
    pub name: &'static str,
    pub rva: u32,
    pub size: u32,
    pub characteristics: u32,
}

/// A built image: its bytes as mapped, from the base on.
#[derive(Debug, Clone)]
pub struct Image {
    pub bytes: Vec<u8>,
    pub sections: Vec<SectionInfo>,
}

/// The RSDS CodeView record: signature, GUID, age, NUL-terminated PDB path.
pub fn rsds(guid: &[u8; 16], age: u32, pdb: &str) -> Vec<u8> {
    let mut v = b"RSDS".to_vec();
    v.extend_from_slice(guid);
    v.extend_from_slice(&age.to_le_bytes());
    v.extend_from_slice(pdb.as_bytes());
    v.push(0);
    v
}

/// The RVA right after `.text` and `.data`, where the sections built last begin.
pub fn first_built_rva(text_size: u32, data_size: u32) -> u32 {
    0x1000 + text_size + data_size
}

/// Lay out and write the image.
pub fn build(input: &ImageInput) -> Image {
    let ptr: u64 = if input.x64 { 8 } else { 4 };
    let text_rva = 0x1000u32;
    let data_rva = text_rva + input.text_size;
    let rdata_rva = first_built_rva(input.text_size, input.data_size);

    // .rdata: call-site slots, export directory, UNWIND_INFOs, debug directory + RSDS.
    let mut rdata: Vec<u8> = Vec::new();
    let mut slots: Vec<Vec<u32>> = Vec::new();
    for f in &input.functions {
        let mut s = Vec::new();
        for &t in &f.targets {
            s.push(rdata_rva + rdata.len() as u32);
            rdata.extend_from_slice(&crate::bytes::ptr_bytes(t, ptr));
        }
        slots.push(s);
    }
    pad(&mut rdata, 16);
    let export_dir = input
        .exports
        .then(|| export_directory(input, rdata_rva, &mut rdata));
    let mut unwind_rvas = Vec::new();
    if input.x64 {
        for f in &input.functions {
            pad(&mut rdata, 4);
            unwind_rvas.push(rdata_rva + rdata.len() as u32);
            rdata.extend_from_slice(&f.code.unwind_info());
        }
    }
    pad(&mut rdata, 4);
    let debug_dir = input.codeview.map(|(guid, age, pdb)| {
        let at = rdata_rva + rdata.len() as u32;
        let record = rsds(&guid, age, pdb);
        // IMAGE_DEBUG_DIRECTORY: Characteristics, TimeDateStamp, MajorVersion, MinorVersion,
        // Type (2 = IMAGE_DEBUG_TYPE_CODEVIEW), SizeOfData, AddressOfRawData,
        // PointerToRawData (patched below, once file offsets are known).
        let mut d = Vec::new();
        put_u32(&mut d, 4, input.time_date_stamp);
        put_u32(&mut d, 12, 2);
        put_u32(&mut d, 16, record.len() as u32);
        put_u32(&mut d, 20, at + 28);
        put_u32(&mut d, 24, 0);
        rdata.extend_from_slice(&d);
        rdata.extend_from_slice(&record);
        (at, 28u32)
    });
    let rdata_size = rdata.len().max(1) as u32;

    // .pdata (x64): RUNTIME_FUNCTION {BeginAddress, EndAddress, UnwindInfoAddress}, sorted.
    let pdata_rva = align(rdata_rva as u64 + rdata_size as u64, SECTION_ALIGNMENT) as u32;
    let mut pdata = Vec::new();
    if input.x64 {
        let mut entries: Vec<(u32, u32, u32)> = input
            .functions
            .iter()
            .zip(&unwind_rvas)
            .map(|(f, &u)| (f.rva, f.rva + f.size, u))
            .collect();
        entries.sort();
        for (b, e, u) in entries {
            pdata.extend_from_slice(&b.to_le_bytes());
            pdata.extend_from_slice(&e.to_le_bytes());
            pdata.extend_from_slice(&u.to_le_bytes());
        }
    }
    let after_pdata = if pdata.is_empty() {
        pdata_rva
    } else {
        align(pdata_rva as u64 + pdata.len() as u64, SECTION_ALIGNMENT) as u32
    };
    let rsrc_rva = after_pdata;
    let rsrc = input.version.map(|v| version_resource(v, rsrc_rva));
    let end = match &rsrc {
        Some(r) => rsrc_rva as u64 + r.len() as u64,
        None => after_pdata as u64,
    };
    let size_of_image = align(end, SECTION_ALIGNMENT) as u32;

    let mut sections = vec![
        SectionInfo {
            name: ".text",
            rva: text_rva,
            size: input.text_size,
            characteristics: SCN_TEXT,
        },
        SectionInfo {
            name: ".data",
            rva: data_rva,
            size: input.data_size,
            characteristics: SCN_DATA,
        },
        SectionInfo {
            name: ".rdata",
            rva: rdata_rva,
            size: rdata_size,
            characteristics: SCN_RDATA,
        },
    ];
    if !pdata.is_empty() {
        sections.push(SectionInfo {
            name: ".pdata",
            rva: pdata_rva,
            size: pdata.len() as u32,
            characteristics: SCN_RDATA,
        });
    }
    if let Some(r) = &rsrc {
        sections.push(SectionInfo {
            name: ".rsrc",
            rva: rsrc_rva,
            size: r.len() as u32,
            characteristics: SCN_RDATA,
        });
    }
    // File offsets, as a linker would assign them (FileAlignment 0x200 after the headers).
    let mut raw = SIZE_OF_HEADERS as u64;
    let raw_of: Vec<(u32, u32)> = sections
        .iter()
        .map(|s| {
            let size = align(s.size as u64, FILE_ALIGNMENT);
            let at = raw;
            raw += size;
            (at as u32, size as u32)
        })
        .collect();

    let mut img = vec![0u8; size_of_image as usize];
    // Code: every function's bytes, `int 3` between and after them.
    img[text_rva as usize..(text_rva + input.text_size) as usize].fill(0xcc);
    for (f, s) in input.functions.iter().zip(&slots) {
        let addr = input.base + f.rva as u64;
        // Callees in this module's code are called directly, the others through their slot.
        let text = input.base + text_rva as u64..input.base + data_rva as u64;
        let code = f.code.emit(addr, &|n| match f.targets[n as usize] {
            t if text.contains(&t) => CallOperand::Direct(t),
            _ => CallOperand::Indirect(input.base + s[n as usize] as u64),
        });
        put(&mut img, f.rva as u64, &code);
    }
    put(&mut img, rdata_rva as u64, &rdata);
    if let Some((at, _)) = debug_dir {
        // PointerToRawData of the debug entry: the RSDS record's file offset.
        let file = raw_of[2].0 + (at + 28 - rdata_rva);
        put_u32(&mut img, at as u64 + 24, file);
    }
    put(&mut img, pdata_rva as u64, &pdata);
    if let Some(r) = &rsrc {
        put(&mut img, rsrc_rva as u64, r);
    }

    // IMAGE_DOS_HEADER: e_magic "MZ", e_lfanew at 0x3c.
    put(&mut img, 0, b"MZ");
    put_u32(&mut img, 0x3c, NT_HEADERS as u32);
    // IMAGE_NT_HEADERS: Signature "PE\0\0", IMAGE_FILE_HEADER, optional header.
    put(&mut img, NT_HEADERS, b"PE\0\0");
    let fh = NT_HEADERS + 4;
    put_u16(&mut img, fh, if input.x64 { 0x8664 } else { 0x14c });
    put_u16(&mut img, fh + 2, sections.len() as u16);
    put_u32(&mut img, fh + 4, input.time_date_stamp);
    let opt_size: u16 = if input.x64 { 0xf0 } else { 0xe0 };
    put_u16(&mut img, fh + 16, opt_size);
    // IMAGE_FILE_EXECUTABLE_IMAGE, then LARGE_ADDRESS_AWARE (x64) or 32BIT_MACHINE (x86), DLL.
    let mut characteristics: u16 = 0x0002 | if input.x64 { 0x0020 } else { 0x0100 };
    if input.dll {
        characteristics |= 0x2000;
    }
    put_u16(&mut img, fh + 18, characteristics);
    let opt = fh + 20;
    put_u16(&mut img, opt, if input.x64 { 0x20b } else { 0x10b });
    img[opt as usize + 2] = 14; // MajorLinkerVersion
    img[opt as usize + 3] = 29; // MinorLinkerVersion
    put_u32(&mut img, opt + 4, input.text_size); // SizeOfCode
    put_u32(&mut img, opt + 8, size_of_image - input.text_size - 0x1000); // SizeOfInitializedData
    put_u32(&mut img, opt + 16, input.entry_point); // AddressOfEntryPoint
    put_u32(&mut img, opt + 20, text_rva); // BaseOfCode
    if input.x64 {
        put_u64(&mut img, opt + 24, input.base); // ImageBase
    } else {
        put_u32(&mut img, opt + 24, data_rva); // BaseOfData
        put_u32(&mut img, opt + 28, input.base as u32); // ImageBase
    }
    put_u32(&mut img, opt + 32, SECTION_ALIGNMENT as u32);
    put_u32(&mut img, opt + 36, FILE_ALIGNMENT as u32);
    for (o, v) in [(40u64, 10u16), (44, 10), (48, 10)] {
        put_u16(&mut img, opt + o, v); // OS, image and subsystem versions: 10.0
    }
    put_u32(&mut img, opt + 56, size_of_image);
    put_u32(&mut img, opt + 60, SIZE_OF_HEADERS);
    put_u32(&mut img, opt + 64, input.checksum);
    put_u16(&mut img, opt + 68, 3); // IMAGE_SUBSYSTEM_WINDOWS_CUI
                                    // DllCharacteristics: DYNAMIC_BASE | NX_COMPAT (| HIGH_ENTROPY_VA on x64).
    put_u16(&mut img, opt + 70, if input.x64 { 0x0160 } else { 0x0140 });
    let (reserve, commit) = (0x10_0000u64, 0x1000u64);
    let dirs = if input.x64 {
        put_u64(&mut img, opt + 72, reserve); // SizeOfStackReserve
        put_u64(&mut img, opt + 80, commit);
        put_u64(&mut img, opt + 88, reserve); // SizeOfHeapReserve
        put_u64(&mut img, opt + 96, commit);
        put_u32(&mut img, opt + 108, 16); // NumberOfRvaAndSizes
        opt + 112
    } else {
        put_u32(&mut img, opt + 72, reserve as u32);
        put_u32(&mut img, opt + 76, commit as u32);
        put_u32(&mut img, opt + 80, reserve as u32);
        put_u32(&mut img, opt + 84, commit as u32);
        put_u32(&mut img, opt + 92, 16);
        opt + 96
    };
    let mut dir = |index: u64, (rva, size): (u32, u32)| {
        put_u32(&mut img, dirs + index * 8, rva);
        put_u32(&mut img, dirs + index * 8 + 4, size);
    };
    if let Some(e) = export_dir {
        dir(0, e); // IMAGE_DIRECTORY_ENTRY_EXPORT
    }
    if let Some(r) = &rsrc {
        dir(2, (rsrc_rva, r.len() as u32)); // IMAGE_DIRECTORY_ENTRY_RESOURCE
    }
    if !pdata.is_empty() {
        dir(3, (pdata_rva, pdata.len() as u32)); // IMAGE_DIRECTORY_ENTRY_EXCEPTION
    }
    if let Some(d) = debug_dir {
        dir(6, d); // IMAGE_DIRECTORY_ENTRY_DEBUG
    }
    // IMAGE_SECTION_HEADER: Name[8], VirtualSize, VirtualAddress, SizeOfRawData,
    // PointerToRawData, (relocations, line numbers: none), Characteristics at 36.
    let table = opt + opt_size as u64;
    for (i, (s, &(raw_at, raw_size))) in sections.iter().zip(&raw_of).enumerate() {
        let h = table + i as u64 * 40;
        put(&mut img, h, s.name.as_bytes());
        put_u32(&mut img, h + 8, s.size);
        put_u32(&mut img, h + 12, s.rva);
        put_u32(&mut img, h + 16, raw_size);
        put_u32(&mut img, h + 20, raw_at);
        put_u32(&mut img, h + 36, s.characteristics);
    }
    // The headers' page as the section table sees it.
    sections.insert(
        0,
        SectionInfo {
            name: "headers",
            rva: 0,
            size: 0x1000,
            characteristics: 0,
        },
    );
    Image {
        bytes: img,
        sections,
    }
}

/// IMAGE_EXPORT_DIRECTORY at the end of `rdata`, followed by the export address table
/// (ordinal order), the name pointer table and name ordinal table (both sorted by name, as the
/// loader's binary search needs), the module name and the function names. Returns the
/// directory's (RVA, size).
fn export_directory(input: &ImageInput, rdata_rva: u32, rdata: &mut Vec<u8>) -> (u32, u32) {
    let mut exported: Vec<(&str, u32)> = input
        .functions
        .iter()
        .filter(|f| f.exported)
        .map(|f| (f.name, f.rva))
        .chain(
            input
                .globals
                .iter()
                .filter(|g| g.2)
                .map(|&(n, rva, _)| (n, rva)),
        )
        .collect();
    let by_ordinal = exported.clone();
    exported.sort();
    let n = by_ordinal.len() as u32;
    let start = rdata.len() as u32;
    let dir_rva = rdata_rva + start;
    let eat = dir_rva + 40;
    let names = eat + 4 * n;
    let ordinals = names + 4 * n;
    let strings = ordinals + 2 * n;
    let mut d = vec![0u8; 40];
    put_u32(&mut d, 4, input.time_date_stamp);
    put_u32(&mut d, 12, strings); // Name: the module's file name, first of the strings
    put_u32(&mut d, 16, 1); // Base: ordinals start at 1
    put_u32(&mut d, 20, n); // NumberOfFunctions
    put_u32(&mut d, 24, n); // NumberOfNames
    put_u32(&mut d, 28, eat); // AddressOfFunctions
    put_u32(&mut d, 32, names); // AddressOfNames
    put_u32(&mut d, 36, ordinals); // AddressOfNameOrdinals
    for (_, rva) in &by_ordinal {
        d.extend_from_slice(&rva.to_le_bytes());
    }
    let mut text = input.file_name.as_bytes().to_vec();
    text.push(0);
    let mut name_rvas = Vec::new();
    for (name, _) in &exported {
        name_rvas.push(strings + text.len() as u32);
        text.extend_from_slice(name.as_bytes());
        text.push(0);
    }
    for r in &name_rvas {
        d.extend_from_slice(&r.to_le_bytes());
    }
    for (name, rva) in &exported {
        let ordinal = by_ordinal
            .iter()
            .position(|e| e.0 == *name && e.1 == *rva)
            .unwrap_or(0) as u16;
        d.extend_from_slice(&ordinal.to_le_bytes());
    }
    d.extend_from_slice(&text);
    rdata.extend_from_slice(&d);
    (dir_rva, d.len() as u32)
}

/// The RT_VERSION resource: a three-level IMAGE_RESOURCE_DIRECTORY tree (type 16 → name 1 →
/// language 0x409) ending in an IMAGE_RESOURCE_DATA_ENTRY, then the VS_VERSIONINFO block.
fn version_resource(v: &Version, rsrc_rva: u32) -> Vec<u8> {
    let mut r = Vec::new();
    // Three directories of one entry each (16 + 8 bytes), then the data entry at 0x48.
    for (level, id) in [(0u32, 16u32), (1, 1), (2, 0x409)] {
        let at = level as u64 * 24;
        put_u16(&mut r, at + 14, 1); // NumberOfIdEntries
        put_u32(&mut r, at + 16, id);
        let next = if level < 2 {
            0x8000_0000 | ((level + 1) * 24) // a subdirectory
        } else {
            0x48 // the data entry
        };
        put_u32(&mut r, at + 20, next);
    }
    let blob = version_info(v);
    let blob_at = 0x58u32;
    put_u32(&mut r, 0x48, rsrc_rva + blob_at); // OffsetToData is an RVA
    put_u32(&mut r, 0x4c, blob.len() as u32);
    put(&mut r, blob_at as u64, &blob);
    r
}

/// One version block: wLength, wValueLength, wType, szKey, padding, Value, padding, Children.
/// wLength leaves out the padding after the block, as the format says.
fn block(key: &str, value: &[u8], value_len: u16, text: bool, children: &[Vec<u8>]) -> Vec<u8> {
    let mut b = vec![0u8; 6];
    put_u16(&mut b, 2, value_len);
    put_u16(&mut b, 4, text as u16);
    b.extend_from_slice(&utf16z(key));
    if !value.is_empty() {
        pad(&mut b, 4);
        b.extend_from_slice(value);
    }
    for c in children {
        pad(&mut b, 4);
        b.extend_from_slice(c);
    }
    let len = b.len() as u16;
    put_u16(&mut b, 0, len);
    b
}

/// VS_VERSIONINFO with VS_FIXEDFILEINFO, a StringFileInfo of one StringTable and the
/// VarFileInfo Translation.
fn version_info(v: &Version) -> Vec<u8> {
    let f = v.fixed_file_info();
    let mut fixed = Vec::new();
    for x in [
        f.signature,
        f.struct_version,
        f.file_version_hi,
        f.file_version_lo,
        f.product_version_hi,
        f.product_version_lo,
        f.file_flags_mask,
        f.file_flags,
        f.file_os,
        f.file_type,
        f.file_subtype,
        f.file_date_hi,
        f.file_date_lo,
    ] {
        fixed.extend_from_slice(&x.to_le_bytes());
    }
    let strings: Vec<Vec<u8>> = v
        .strings
        .iter()
        .map(|(k, s)| {
            let text = utf16z(s);
            block(k, &text, (text.len() / 2) as u16, true, &[])
        })
        .collect();
    let table = block("040904b0", &[], 0, true, &strings);
    let string_info = block("StringFileInfo", &[], 0, true, &[table]);
    let translation = block("Translation", &[0x09, 0x04, 0xb0, 0x04], 4, false, &[]);
    let var_info = block("VarFileInfo", &[], 0, true, &[translation]);
    block(
        "VS_VERSION_INFO",
        &fixed,
        52,
        false,
        &[string_info, var_info],
    )
}
