//! The Process Environment Block, the loader's module lists and the process parameters.

use crate::Layout;
use dumpdiag_target::{MemoryExt, MemoryReader};

/// Most loader entries followed in one list walk (a corrupted list must not loop forever).
pub const MAX_LOADER_ENTRIES: usize = 4096;
/// Largest environment block read.
pub const MAX_ENVIRONMENT_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, Default)]
pub struct LoaderEntry {
    pub entry: u64,
    pub base: u64,
    pub entry_point: u64,
    pub size: u64,
    pub full_name: Option<String>,
    pub base_name: Option<String>,
    pub time_date_stamp: Option<u32>,
}

#[derive(Debug, Clone, Default)]
pub struct ProcessParameters {
    pub address: u64,
    pub current_directory: Option<String>,
    pub dll_path: Option<String>,
    pub image_path: Option<String>,
    pub command_line: Option<String>,
    pub window_title: Option<String>,
    pub desktop_info: Option<String>,
    pub environment_address: u64,
    /// Environment strings ("NAME=value"), None when the block is not in the dump.
    pub environment: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default)]
pub struct Peb {
    pub address: u64,
    pub inherited_address_space: bool,
    pub read_image_file_exec_options: bool,
    pub being_debugged: bool,
    pub image_base: u64,
    pub ldr: u64,
    pub ldr_initialized: Option<bool>,
    /// (Flink, Blink) heads of InInitializationOrder, InLoadOrder and InMemoryOrder lists.
    pub ldr_lists: Option<[(u64, u64); 3]>,
    pub sub_system_data: u64,
    pub process_heap: u64,
    pub process_parameters: u64,
    pub number_of_processors: Option<u32>,
    pub nt_global_flag: Option<u32>,
    pub number_of_heaps: Option<u32>,
    pub process_heaps: Vec<u64>,
    pub os_version: Option<(u32, u32, u16)>,
    pub session_id: Option<u32>,
}

pub fn read_peb(mem: &dyn MemoryReader, address: u64, l: &Layout) -> Option<Peb> {
    let flags = mem.read_bytes(address, 4);
    if flags.len() < 4 {
        return None;
    }
    let p = |off: u64| mem.read_ptr(address.wrapping_add(off), l.ptr);
    let ldr = p(l.peb_ldr).unwrap_or(0);
    let list = |off: u64| -> Option<(u64, u64)> {
        Some((
            mem.read_ptr(ldr.wrapping_add(off), l.ptr)?,
            mem.read_ptr(ldr.wrapping_add(off).wrapping_add(l.ptr), l.ptr)?,
        ))
    };
    let ldr_lists = (|| {
        Some([
            list(l.ldr_in_init_order)?,
            list(l.ldr_in_load_order)?,
            list(l.ldr_in_memory_order)?,
        ])
    })();
    let number_of_heaps = mem.read_u32(address.wrapping_add(l.peb_number_of_heaps));
    let heaps_array = p(l.peb_process_heaps).unwrap_or(0);
    let process_heaps = match number_of_heaps {
        Some(n) if heaps_array != 0 => (0..n.min(1024) as u64)
            .map_while(|i| mem.read_ptr(heaps_array.wrapping_add(i * l.ptr), l.ptr))
            .collect(),
        _ => Vec::new(),
    };
    let os_version = (|| {
        let major = mem.read_u32(address.wrapping_add(l.peb_os_major))?;
        let minor = mem.read_u32(address.wrapping_add(l.peb_os_major + 4))?;
        let build = mem.read_u16(address.wrapping_add(l.peb_os_build))?;
        Some((major, minor, build))
    })();
    Some(Peb {
        address,
        inherited_address_space: flags[0] != 0,
        read_image_file_exec_options: flags[1] != 0,
        being_debugged: flags[2] != 0,
        image_base: p(l.peb_image_base).unwrap_or(0),
        ldr,
        ldr_initialized: mem.read_u8(ldr.wrapping_add(4)).map(|b| b != 0),
        ldr_lists,
        sub_system_data: p(l.peb_sub_system_data).unwrap_or(0),
        process_heap: p(l.peb_process_heap).unwrap_or(0),
        process_parameters: p(l.peb_process_parameters).unwrap_or(0),
        number_of_processors: mem.read_u32(address.wrapping_add(l.peb_number_of_processors)),
        nt_global_flag: mem.read_u32(address.wrapping_add(l.peb_nt_global_flag)),
        number_of_heaps,
        process_heaps,
        os_version,
        session_id: mem.read_u32(address.wrapping_add(l.peb_session_id)),
    })
}

/// Walk the InLoadOrderModuleList. Stops at the list head, on a repeated entry, on unreadable
/// memory or after [`MAX_LOADER_ENTRIES`].
pub fn loader_entries(mem: &dyn MemoryReader, peb: &Peb, l: &Layout) -> Vec<LoaderEntry> {
    let mut out = Vec::new();
    let head = peb.ldr.wrapping_add(l.ldr_in_load_order);
    let Some(mut link) = mem.read_ptr(head, l.ptr) else {
        return out;
    };
    let mut seen = std::collections::HashSet::new();
    while link != head && link != 0 && out.len() < MAX_LOADER_ENTRIES && seen.insert(link) {
        let e = link; // InLoadOrderLinks is the first field
        let base = mem.read_ptr(e.wrapping_add(l.entry_dll_base), l.ptr);
        let Some(base) = base else { break };
        out.push(LoaderEntry {
            entry: e,
            base,
            entry_point: mem
                .read_ptr(e.wrapping_add(l.entry_entry_point), l.ptr)
                .unwrap_or(0),
            size: mem
                .read_u32(e.wrapping_add(l.entry_size_of_image))
                .unwrap_or(0) as u64,
            full_name: l.read_unicode_string(mem, e.wrapping_add(l.entry_full_name)),
            base_name: l.read_unicode_string(mem, e.wrapping_add(l.entry_base_name)),
            time_date_stamp: mem.read_u32(e.wrapping_add(l.entry_time_date_stamp)),
        });
        match mem.read_ptr(e, l.ptr) {
            Some(next) => link = next,
            None => break,
        }
    }
    out
}

pub fn read_process_parameters(
    mem: &dyn MemoryReader,
    address: u64,
    l: &Layout,
) -> Option<ProcessParameters> {
    mem.read_u32(address)?;
    let s = |off: u64| l.read_unicode_string(mem, address.wrapping_add(off));
    let environment_address = mem
        .read_ptr(address.wrapping_add(l.params_environment), l.ptr)
        .unwrap_or(0);
    let env_size = mem
        .read_ptr(address.wrapping_add(l.params_environment_size), l.ptr)
        .unwrap_or(0);
    let environment = read_environment(mem, environment_address, env_size);
    Some(ProcessParameters {
        address,
        current_directory: s(l.params_current_directory),
        dll_path: s(l.params_dll_path),
        image_path: s(l.params_image_path),
        command_line: s(l.params_command_line),
        window_title: s(l.params_window_title),
        desktop_info: s(l.params_desktop_info),
        environment_address,
        environment,
    })
}

/// The environment block: UTF-16 "NAME=value" strings, each NUL-terminated, ending with an
/// empty string. `size` (EnvironmentSize, Vista+) bounds the read when plausible.
fn read_environment(mem: &dyn MemoryReader, addr: u64, size: u64) -> Option<Vec<String>> {
    if addr == 0 {
        return None;
    }
    let limit = if size > 0 && size <= MAX_ENVIRONMENT_BYTES as u64 {
        size as usize
    } else {
        MAX_ENVIRONMENT_BYTES
    };
    let bytes = mem.read_bytes(addr, limit);
    if bytes.len() < 2 {
        return None;
    }
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let mut out = Vec::new();
    for s in units.split(|&u| u == 0) {
        if s.is_empty() {
            break;
        }
        out.push(String::from_utf16_lossy(s));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EveryAddress;

    /// PEB.Ldr points so that a loader list head is the last 8 bytes below 2^64: its Flink
    /// is readable, its Blink (8 bytes on) would be past the top. Everything else reads as
    /// all ones.
    #[test]
    fn a_loader_list_head_at_the_top_of_the_address_space_reads_without_overflow() {
        let l = crate::layout::X64;
        let peb = 0x7ff0_0000u64;
        let ldr = (u64::MAX - 7 - l.ldr_in_init_order).to_le_bytes();
        let mem = EveryAddress(|a: u64| match a.checked_sub(peb + l.peb_ldr) {
            Some(o) if o < 8 => ldr[o as usize],
            _ => 0xff,
        });
        let p = read_peb(&mem, peb, &l).expect("the PEB is readable");
        // The Blink's address wraps round to 0, as the CPU's would.
        assert_eq!(
            p.ldr_lists.map(|lists| lists[0]),
            Some((u64::MAX, u64::MAX))
        );
    }
}
