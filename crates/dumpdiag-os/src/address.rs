//! The address-space map behind `!address`: every region labelled with what it is used for
//! (image, stack, TEB, PEB, heap, mapped file, other, free), from the MemoryInfoList when the
//! dump has one, otherwise from captured memory, modules and threads.

use crate::{layout::Layout, peb, teb, wow64};
use dumpdiag_target::*;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Usage {
    Free,
    Image(String),
    Stack { thread_index: usize, thread_id: u32 },
    Teb { thread_index: usize, thread_id: u32 },
    Peb,
    Heap { heap: u64 },
    MappedFile,
    Other,
}

impl Usage {
    /// WinDbg's usage column name.
    pub fn name(&self) -> &'static str {
        match self {
            Usage::Free => "Free",
            Usage::Image(_) => "Image",
            Usage::Stack { .. } => "Stack",
            Usage::Teb { .. } => "TEB",
            Usage::Peb => "PEB",
            Usage::Heap { .. } => "Heap",
            Usage::MappedFile => "MappedFile",
            Usage::Other => "<unknown>",
        }
    }
    pub fn detail(&self, target: &dyn Target) -> String {
        match self {
            Usage::Image(path) => path.clone(),
            Usage::Stack {
                thread_index,
                thread_id,
            } => format!(
                "Stack [~{thread_index}; {:x}.{thread_id:x}]",
                target.facts().process_id.unwrap_or(0)
            ),
            Usage::Teb {
                thread_index,
                thread_id,
            } => format!(
                "TEB [~{thread_index}; {:x}.{thread_id:x}]",
                target.facts().process_id.unwrap_or(0)
            ),
            Usage::Peb => "PEB".into(),
            Usage::Heap { heap } => format!("Heap [ID: heap at {heap:#x}]"),
            _ => String::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Region {
    pub info: RegionInfo,
    pub usage: Usage,
    /// True when the MemoryInfoList was absent and the region was inferred.
    pub inferred: bool,
}

#[derive(Debug, Default)]
pub struct AddressMap {
    pub regions: Vec<Region>,
    pub from_memory_info: bool,
    /// The process's heaps with their segments (see [`crate::heaps`]), found once for the map.
    pub heaps: Vec<crate::heaps::Heap>,
    /// PEB.ProcessHeap of each PEB (the native one, and the 32-bit one under WOW64).
    pub default_heaps: Vec<u64>,
}

struct Markers {
    stacks: Vec<(u64, u64, usize, u32)>,
    tebs: Vec<(u64, usize, u32)>,
    pebs: Vec<u64>,
    heaps: Vec<u64>,
    default_heaps: Vec<u64>,
    /// The heaps found from the PEB and from heap headers, with their allocations.
    found_heaps: Vec<crate::heaps::Heap>,
}

fn markers(target: &dyn Target) -> Markers {
    let mem = target.memory();
    let native = Layout::for_pointer_size(target.facts().pointer_size());
    let wow = wow64::is_wow64(target);
    let mut m = Markers {
        stacks: Vec::new(),
        tebs: Vec::new(),
        pebs: Vec::new(),
        heaps: Vec::new(),
        default_heaps: Vec::new(),
        found_heaps: Vec::new(),
    };
    for (i, t) in target.threads().iter().enumerate() {
        m.tebs.push((t.teb, i, t.id));
        let mut views = vec![(t.teb, native)];
        if wow {
            if let Some(t32) = wow64::teb32_of(mem, t.teb) {
                m.tebs.push((t32, i, t.id));
                views.push((t32, crate::layout::X86));
            }
        }
        for (addr, l) in views {
            if let Some(tb) = teb::read_teb(mem, addr, &l) {
                let low = tb
                    .deallocation_stack
                    .filter(|&d| d != 0 && d < tb.stack_base)
                    .unwrap_or(tb.stack_limit);
                if tb.stack_base > low {
                    m.stacks.push((low, tb.stack_base, i, t.id));
                }
                if tb.peb != 0 && !m.pebs.contains(&tb.peb) {
                    m.pebs.push(tb.peb);
                    if let Some(p) = peb::read_peb(mem, tb.peb, &l) {
                        // The heap list can be empty (Wine keeps none); the default heap is
                        // always named by ProcessHeap.
                        m.heaps.extend(
                            p.process_heaps
                                .iter()
                                .copied()
                                .chain(std::iter::once(p.process_heap))
                                .filter(|&h| h != 0),
                        );
                        if p.process_heap != 0 {
                            m.default_heaps.push(p.process_heap);
                        }
                        m.heaps.dedup();
                    }
                }
            }
        }
        if t.stack_size > 0 && !m.stacks.iter().any(|s| s.2 == i) {
            // From the dump's thread list: a range reaching past 2^64 ends at the top (wrapped,
            // it would be empty and the stack's region not named).
            m.stacks.push((
                t.stack_start,
                t.stack_start.saturating_add(t.stack_size),
                i,
                t.id,
            ));
        }
    }
    m.found_heaps = crate::heaps::find_heaps(target, &m.heaps);
    m
}

fn classify(target: &dyn Target, m: &Markers, r: &RegionInfo) -> Usage {
    if r.state == MEM_FREE {
        return Usage::Free;
    }
    if let Some(&(_, i, id)) = m.tebs.iter().find(|t| r.contains(t.0)) {
        return Usage::Teb {
            thread_index: i,
            thread_id: id,
        };
    }
    if m.pebs.iter().any(|&p| r.contains(p)) {
        return Usage::Peb;
    }
    if r.kind == MEM_IMAGE || target.module_at(r.base).is_some() {
        if let Some(module) = target
            .module_at(r.base)
            .or_else(|| target.module_at(r.allocation_base))
        {
            return Usage::Image(module.path.clone());
        }
        return Usage::Image(String::new());
    }
    let alloc = if r.allocation_base != 0 {
        r.allocation_base
    } else {
        r.base
    };
    if let Some(&(_, _, i, id)) = m
        .stacks
        .iter()
        .find(|s| (alloc >= s.0 && alloc < s.1) || (r.base >= s.0 && r.base < s.1))
    {
        return Usage::Stack {
            thread_index: i,
            thread_id: id,
        };
    }
    if let Some(&h) = m.heaps.iter().find(|&&h| h == alloc || r.contains(h)) {
        return Usage::Heap { heap: h };
    }
    if let Some(h) = m
        .found_heaps
        .iter()
        .find(|h| h.segments.iter().any(|s| s.base == alloc))
    {
        return Usage::Heap { heap: h.base };
    }
    if r.kind == MEM_MAPPED {
        return Usage::MappedFile;
    }
    Usage::Other
}

impl AddressMap {
    pub fn build(target: &dyn Target) -> AddressMap {
        let m = markers(target);
        if !target.regions().is_empty() {
            let regions = target
                .regions()
                .iter()
                .map(|r| Region {
                    info: *r,
                    usage: classify(target, &m, r),
                    inferred: false,
                })
                .collect();
            return AddressMap {
                regions,
                from_memory_info: true,
                heaps: m.found_heaps,
                default_heaps: m.default_heaps,
            };
        }
        // No MemoryInfoList: what the dump captured plus the module ranges.
        let mut infos: Vec<RegionInfo> = target
            .captured_ranges()
            .iter()
            .map(|&(base, size)| RegionInfo {
                base,
                allocation_base: base,
                size,
                state: MEM_COMMIT,
                ..Default::default()
            })
            .collect();
        for module in target.modules() {
            infos.retain(|r| !(r.base >= module.base && r.end() <= module.end()));
            infos.push(RegionInfo {
                base: module.base,
                allocation_base: module.base,
                size: module.size as u64,
                state: MEM_COMMIT,
                kind: MEM_IMAGE,
                ..Default::default()
            });
        }
        infos.sort_by_key(|r| r.base);
        let regions = infos
            .iter()
            .map(|r| Region {
                info: *r,
                usage: classify(target, &m, r),
                inferred: true,
            })
            .collect();
        AddressMap {
            regions,
            from_memory_info: false,
            heaps: m.found_heaps,
            default_heaps: m.default_heaps,
        }
    }

    pub fn region_at(&self, addr: u64) -> Option<&Region> {
        let i = self.regions.partition_point(|r| r.info.end() <= addr);
        self.regions.get(i).filter(|r| r.info.contains(addr))
    }
}
