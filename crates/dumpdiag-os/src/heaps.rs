//! The process's heaps at the level of their memory: which allocations belong to which heap, and
//! how much each has reserved and committed. Found from the PEB (ProcessHeap, ProcessHeaps) and
//! from the heap headers at the start of each allocation, so that a heap's later segments count
//! too: an NT heap segment (HEAP_SEGMENT) carries SegmentSignature 0xffeeffee and a pointer to
//! its heap; a segment heap (SEGMENT_HEAP) carries 0xddeeddee; Wine 8's subheaps carry no
//! signature but point back to their heap from the header (SUBHEAP.user_value).
//! Walking blocks inside a heap needs its internal formats and is not done here.

use std::collections::BTreeMap;

use dumpdiag_target::{MemoryExt, Target, MEM_COMMIT, MEM_FREE};

const NT_SEGMENT_SIGNATURE: u32 = 0xffee_ffee;
const SEGMENT_HEAP_SIGNATURE: u32 = 0xddee_ddee;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeapKind {
    /// NT heap (or Wine's heap, which lays out the same header).
    Nt,
    SegmentHeap,
    /// Named by the PEB, header not in the dump.
    Unknown,
}

impl HeapKind {
    pub fn label(self) -> &'static str {
        match self {
            HeapKind::Nt => "NT heap",
            HeapKind::SegmentHeap => "segment heap",
            HeapKind::Unknown => "heap",
        }
    }
}

/// One allocation (VirtualAlloc unit) that belongs to a heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapSegment {
    pub base: u64,
    pub reserved: u64,
    pub committed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heap {
    pub base: u64,
    pub kind: HeapKind,
    pub segments: Vec<HeapSegment>,
}

impl Heap {
    pub fn committed(&self) -> u64 {
        self.segments
            .iter()
            .fold(0u64, |a, s| a.saturating_add(s.committed))
    }
    pub fn reserved(&self) -> u64 {
        self.segments
            .iter()
            .fold(0u64, |a, s| a.saturating_add(s.reserved))
    }
}

/// Every heap the PEB names (`peb_heaps`) or whose header starts an allocation of the
/// MemoryInfoList, with the allocations that belong to it. Bounded by the region count.
pub fn find_heaps(target: &dyn Target, peb_heaps: &[u64]) -> Vec<Heap> {
    let mem = target.memory();
    // Allocations: base → (reserved, committed).
    let mut allocations: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for r in target.regions().iter().filter(|r| r.state != MEM_FREE) {
        let base = if r.allocation_base != 0 {
            r.allocation_base
        } else {
            r.base
        };
        let a = allocations.entry(base).or_default();
        a.0 = a.0.saturating_add(r.size);
        if r.state == MEM_COMMIT {
            a.1 = a.1.saturating_add(r.size);
        }
    }
    let mut heaps: BTreeMap<u64, Heap> = BTreeMap::new();
    for &h in peb_heaps.iter().filter(|&&h| h != 0) {
        heaps.entry(h).or_insert(Heap {
            base: h,
            kind: HeapKind::Unknown,
            segments: Vec::new(),
        });
    }
    // Headers: (allocation base, owning heap, kind).
    let mut owners: Vec<(u64, u64, HeapKind)> = Vec::new();
    for &base in allocations.keys() {
        // x64 layout first (signature at +0x10, heap pointer at +0x28), then x86 (+0x8, +0x18).
        for l in [crate::layout::X64, crate::layout::X86] {
            let (sig_at, heap_at, ptr) = (l.heap_segment_signature, l.heap_segment_heap, l.ptr);
            match mem.read_u32(base.wrapping_add(sig_at)) {
                Some(NT_SEGMENT_SIGNATURE) => {
                    let owner = mem
                        .read_ptr(base.wrapping_add(heap_at), ptr)
                        .filter(|&o| o != 0 && allocations.contains_key(&o))
                        .unwrap_or(base);
                    owners.push((base, owner, HeapKind::Nt));
                    break;
                }
                Some(SEGMENT_HEAP_SIGNATURE) => {
                    owners.push((base, base, HeapKind::SegmentHeap));
                    break;
                }
                _ => {}
            }
        }
    }
    // Every owner is a heap; a heap's own header says its kind (an owner only pointed to is NT).
    for &(base, owner, kind) in &owners {
        let h = heaps.entry(owner).or_insert(Heap {
            base: owner,
            kind: HeapKind::Nt,
            segments: Vec::new(),
        });
        if base == owner {
            h.kind = kind;
        }
    }
    let mut owner_of: BTreeMap<u64, u64> = owners.iter().map(|&(b, o, _)| (b, o)).collect();
    for &h in heaps.keys() {
        owner_of.entry(h).or_insert(h);
    }
    // Wine's subheaps: no signature, the header's user value (x64: +0x30) is the heap.
    for &base in allocations.keys() {
        if owner_of.contains_key(&base) {
            continue;
        }
        if let Some(h) = mem
            .read_u64(base.wrapping_add(0x30))
            .filter(|h| heaps.get(h).is_some_and(|x| x.kind == HeapKind::Nt))
        {
            let list_next = mem.read_u64(base.wrapping_add(0x20)).unwrap_or(0);
            // The subheap list entry points into the heap or into another allocation.
            if allocations
                .range(..=list_next)
                .next_back()
                .is_some_and(|(b, a)| list_next < b.saturating_add(a.0))
            {
                owner_of.insert(base, h);
            }
        }
    }
    for (base, owner) in owner_of {
        let (reserved, committed) = allocations.get(&base).copied().unwrap_or_default();
        if let Some(h) = heaps.get_mut(&owner) {
            if reserved > 0 {
                h.segments.push(HeapSegment {
                    base,
                    reserved,
                    committed,
                });
            }
        }
    }
    heaps.into_values().collect()
}

/// `_HEAP_FAILURE_TYPE` (ntdll, Windows 10 1809 to Windows 11): what the heap manager found
/// wrong when it gave up. Windows 7 numbers the later ones one lower (it has no
/// invalid_allocation_type), so the names are chosen by build.
const HEAP_FAILURE_TYPES: &[&str] = &[
    "internal",
    "unknown",
    "generic",
    "entry_corruption",
    "multiple_entries_corruption",
    "virtual_block_corruption",
    "buffer_overrun",
    "buffer_underrun",
    "block_not_busy",
    "invalid_argument",
    "invalid_allocation_type",
    "usage_after_free",
    "cross_heap_operation",
    "freelists_corruption",
    "listentry_corruption",
    "lfh_bitmap_mismatch",
    "segment_lfh_bitmap_corruption",
    "segment_lfh_double_free",
    "vs_subsegment_corruption",
    "null_heap",
    "allocation_limit",
    "commit_limit",
    "invalid_va_mgr_query",
];

/// The heap manager's record of why it terminated the process (`ntdll!RtlpHeapFailureInfo`,
/// `_HEAP_FAILURE_INFORMATION`), which STATUS_HEAP_CORRUPTION's only parameter points to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeapFailure {
    pub failure_type: u32,
    /// The failure type's name (`block_not_busy`), by the build's numbering.
    pub name: &'static str,
    pub heap: u64,
    /// The block the failure is about.
    pub address: u64,
}

impl HeapFailure {
    /// The block was not busy when it was freed (or the LFH found its bit already clear): a
    /// block freed twice.
    pub fn is_double_free(&self) -> bool {
        matches!(self.name, "block_not_busy" | "segment_lfh_double_free")
    }
}

/// Read the failure record at `at` (STATUS_HEAP_CORRUPTION's parameter 0), validated by its
/// StructureSize for the bitness and build: x64 Windows 10/11 0x6d0, Windows 7 x64 0x168, x86
/// 0x3d0 (the heap-internals brief, §1.6). Layout: Version +0, StructureSize +4, FailureType +8,
/// then HeapAddress and Address (+0x10/+0x18 on x64, +0xc/+0x10 on x86).
pub fn heap_failure(
    mem: &dyn dumpdiag_target::MemoryReader,
    at: u64,
    ptr: u64,
    build: u32,
) -> Option<HeapFailure> {
    let size = mem.read_u32(at.checked_add(4)?)?;
    let failure_type = mem.read_u32(at.checked_add(8)?)?;
    let (heap_at, address_at) = match (ptr, size) {
        (8, 0x6d0) | (8, 0x168) => (0x10, 0x18),
        (4, 0x3d0) => (0x0c, 0x10),
        _ => return None,
    };
    // Windows 7 (build 7601 and before) has no invalid_allocation_type (10).
    let index = if build < 9200 && failure_type >= 10 {
        failure_type.checked_add(1)?
    } else {
        failure_type
    };
    let name = HEAP_FAILURE_TYPES.get(index as usize)?;
    Some(HeapFailure {
        failure_type,
        name,
        heap: mem.read_ptr(at.checked_add(heap_at)?, ptr)?,
        address: mem.read_ptr(at.checked_add(address_at)?, ptr)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EveryAddress;

    /// A failure record at the last bytes below 2^64 (its parameter comes from the exception
    /// record): the fields past the top are not there, and a FailureType of 0xffffffff is no
    /// index. Neither may overflow.
    #[test]
    fn a_failure_record_at_the_top_of_the_address_space_is_none() {
        let at = u64::MAX - 0x17;
        for (build, failure_type) in [(7601, u32::MAX), (19041, 9)] {
            let mem = EveryAddress(|a: u64| {
                let field = |o: u64, v: u32| {
                    (a >= at + o && a < at + o + 4).then(|| v.to_le_bytes()[(a - at - o) as usize])
                };
                field(4, 0x6d0).or(field(8, failure_type)).unwrap_or(0)
            });
            assert!(heap_failure(&mem, at, 8, build).is_none(), "build {build}");
        }
    }
}
