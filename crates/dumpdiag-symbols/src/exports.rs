//! The export table of an image, in dump memory or in an image file on the symbol path:
//! the names of last resort.

use dumpdiag_os::pe as image;
use dumpdiag_target::{MemoryExt, MemoryReader};
use object::pe;
use object::LittleEndian as LE;

/// Most exports read from one image.
const MAX_EXPORTS: u32 = 1 << 16;

/// (rva, name) sorted by rva from the image in dump memory.
pub fn read_exports(mem: &dyn MemoryReader, base: u64) -> Option<Vec<(u32, String)>> {
    let h = image::read_headers(mem, base)?;
    let dir = h.directory(image::DIR_EXPORT)?;
    exports_with(dir, &|rva, len| {
        mem.read_bytes(base.wrapping_add(rva as u64), len)
    })
}

/// (rva, name) sorted by rva from an image file.
pub fn read_exports_file(img: &image::FileImage) -> Option<Vec<(u32, String)>> {
    exports_with(img.export_directory()?, &|rva, len| {
        img.at_rva(rva, len).map(<[u8]>::to_vec).unwrap_or_default()
    })
}

/// The export directory walk over any RVA reader; forwarders left out.
///
/// The directory itself is `object`'s `IMAGE_EXPORT_DIRECTORY`; its tables are walked here
/// entry by entry rather than through `object::read::pe::ExportTable`, which wants the whole
/// export data as one slice: a minidump often holds only some of those pages, and each
/// name whose page was captured is still worth having.
fn exports_with(
    (dir, dir_size): (u32, u32),
    bytes: &dyn Fn(u32, usize) -> Vec<u8>,
) -> Option<Vec<(u32, String)>> {
    let u32_at = |rva: u32| -> Option<u32> {
        Some(u32::from_le_bytes(bytes(rva, 4).get(..4)?.try_into().ok()?))
    };
    let u16_at = |rva: u32| -> Option<u16> {
        Some(u16::from_le_bytes(bytes(rva, 2).get(..2)?.try_into().ok()?))
    };
    let raw_directory = bytes(dir, size_of::<pe::ImageExportDirectory>());
    let (directory, _) =
        object::pod::from_bytes::<pe::ImageExportDirectory>(&raw_directory).ok()?;
    let functions = directory.number_of_functions.get(LE).min(MAX_EXPORTS);
    let names = directory.number_of_names.get(LE).min(MAX_EXPORTS);
    let addr_of_functions = directory.address_of_functions.get(LE);
    let addr_of_names = directory.address_of_names.get(LE);
    let addr_of_ordinals = directory.address_of_name_ordinals.get(LE);
    let mut out = Vec::with_capacity(names as usize);
    for i in 0..names {
        let Some(name_rva) = u32_at(addr_of_names.wrapping_add(i * 4)) else {
            break;
        };
        let Some(ordinal) = u16_at(addr_of_ordinals.wrapping_add(i * 2)) else {
            break;
        };
        if ordinal as u32 >= functions {
            continue;
        }
        let Some(rva) = u32_at(addr_of_functions.wrapping_add(ordinal as u32 * 4)) else {
            continue;
        };
        if rva >= dir && rva < dir.saturating_add(dir_size) {
            continue; // forwarder string, not code
        }
        let raw = bytes(name_rva, 512);
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        if end > 0 {
            out.push((rva, String::from_utf8_lossy(&raw[..end]).into_owned()));
        }
    }
    out.sort();
    out.dedup_by_key(|e| e.0);
    Some(out)
}
