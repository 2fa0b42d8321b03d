//! The export table of an image in dump memory: the names of last resort.

use dumpdiag_os::pe;
use dumpdiag_target::{MemoryExt, MemoryReader};

/// Most exports read from one image.
const MAX_EXPORTS: u32 = 1 << 16;

/// (rva, name) sorted by rva; forwarders left out.
pub fn read_exports(mem: &dyn MemoryReader, base: u64) -> Option<Vec<(u32, String)>> {
    let h = pe::read_headers(mem, base)?;
    let (dir, dir_size) = h.directory(pe::DIR_EXPORT)?;
    let d = base.wrapping_add(dir as u64);
    let functions = mem.read_u32(d.wrapping_add(20))?.min(MAX_EXPORTS);
    let names = mem.read_u32(d.wrapping_add(24))?.min(MAX_EXPORTS);
    let addr_of_functions = base.wrapping_add(mem.read_u32(d.wrapping_add(28))? as u64);
    let addr_of_names = base.wrapping_add(mem.read_u32(d.wrapping_add(32))? as u64);
    let addr_of_ordinals = base.wrapping_add(mem.read_u32(d.wrapping_add(36))? as u64);
    let mut out = Vec::with_capacity(names as usize);
    for i in 0..names as u64 {
        let Some(name_rva) = mem.read_u32(addr_of_names.wrapping_add(i * 4)) else { break };
        let Some(ordinal) = mem.read_u16(addr_of_ordinals.wrapping_add(i * 2)) else { break };
        if ordinal as u32 >= functions {
            continue;
        }
        let Some(rva) = mem.read_u32(addr_of_functions.wrapping_add(ordinal as u64 * 4)) else { continue };
        if rva >= dir && rva < dir.saturating_add(dir_size) {
            continue; // forwarder string, not code
        }
        if let Some(name) = mem.read_cstring(base.wrapping_add(name_rva as u64), 512) {
            out.push((rva, name));
        }
    }
    out.sort();
    out.dedup_by_key(|e| e.0);
    Some(out)
}
