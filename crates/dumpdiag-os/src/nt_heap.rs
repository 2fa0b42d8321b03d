//! The NT heap (`_HEAP`) walked from its own structures: the heap header, its segments
//! (`_HEAP_SEGMENT`, linked from `_HEAP.SegmentList`), each segment's uncommitted ranges
//! (`_HEAP_UCR_DESCRIPTOR`s on `UCRSegmentList`), its entries (`_HEAP_ENTRY`, decoded with the
//! heap's `Encoding` when `EncodeFlagMask` says so, checksum checked as Windows does) and the
//! heap's virtual-alloc blocks (`_HEAP_VIRTUAL_ALLOC_ENTRY` on `VirtualAllocdBlocks`). No memory
//! map is needed: sizes come from the segments' own page counts.
//!
//! Offsets are from the heap-internals brief (`shared/docs/heap-internals.md` §1.2–1.4), which
//! read them from the ntdiff PDB header dumps of Win7 SP1 x64, Win10 1809 x86 and Win10 21H2 /
//! Win11 22H2 x64. The corpus's Windows 10 1803 x86 and x64 heaps carry the signatures at the
//! places these tables say (checked by the tests on the real dumps).
//!
//! Everything read is untrusted: each heap is validated (segment signature 0xffeeffee and heap
//! signature 0xeeffeeff) before it is walked, segments must point back to their heap, list walks
//! are cycle-safe and bounded, and an entry walk stops at a zero size, a bad checksum, memory
//! missing from the dump, or the segment's end, with a note saying why. A total entry budget
//! bounds the work over all heaps.

use std::collections::HashSet;

use dumpdiag_target::{MemoryExt, MemoryReader};

pub const SEGMENT_SIGNATURE: u32 = 0xffee_ffee;
pub const HEAP_SIGNATURE: u32 = 0xeeff_eeff;
/// `EncodeFlagMask` bit that says entry headers are XORed with `Encoding`.
pub const ENCODE_FLAG: u32 = 0x0010_0000;

/// `_HEAP_ENTRY.Flags` (ReactOS heap.h).
pub const ENTRY_BUSY: u8 = 0x01;
pub const ENTRY_EXTRA_PRESENT: u8 = 0x02;
pub const ENTRY_FILL_PATTERN: u8 = 0x04;
pub const ENTRY_VIRTUAL_ALLOC: u8 = 0x08;
pub const ENTRY_LAST: u8 = 0x10;

/// Most segments followed per heap (a heap grows by doubling segments; Windows caps far lower).
pub const MAX_SEGMENTS: usize = 1024;
/// Most uncommitted ranges followed per segment.
pub const MAX_UCRS: usize = 65_536;
/// Most virtual-alloc blocks followed per heap.
pub const MAX_VIRTUAL_BLOCKS: usize = 1 << 20;
/// Default budget of entries walked over all heaps of one process.
pub const DEFAULT_ENTRY_BUDGET: usize = 1 << 20;

/// Field offsets of the NT heap structures for one bitness and build range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NtLayout {
    pub name: &'static str,
    pub ptr: u64,
    /// Allocation granule (sizeof `_HEAP_ENTRY`): 16 on x64, 8 on x86.
    pub granule: u64,
    /// Where in an entry the 8 encoded header bytes start (x64: after PreviousBlockPrivateData).
    pub header_at: u64,
    // _HEAP_SEGMENT
    pub seg_signature: u64,
    pub seg_flags: u64,
    pub seg_list_entry: u64,
    pub seg_heap: u64,
    pub seg_base: u64,
    pub seg_pages: u64,
    pub seg_first_entry: u64,
    pub seg_last_valid: u64,
    pub seg_uncommitted_pages: u64,
    pub seg_ucr_count: u64,
    pub seg_ucr_list: u64,
    // _HEAP
    pub heap_flags: u64,
    pub heap_force_flags: u64,
    pub heap_encode_mask: u64,
    pub heap_encoding: u64,
    pub heap_signature: u64,
    pub heap_segment_reserve: u64,
    pub heap_segment_commit: u64,
    pub heap_total_free: u64,
    pub heap_max_allocation: u64,
    pub heap_ucr_list: u64,
    pub heap_virtual_blocks: u64,
    pub heap_segment_list: u64,
    pub heap_free_lists: u64,
    // _HEAP_UCR_DESCRIPTOR: {ListEntry, SegmentEntry, Address, Size}
    pub ucr_segment_entry: u64,
    pub ucr_address: u64,
    pub ucr_size: u64,
    // _HEAP_VIRTUAL_ALLOC_ENTRY
    pub va_commit: u64,
    pub va_reserve: u64,
    pub va_busy_block: u64,
    pub va_sizeof: u64,
}

/// Windows 8 to Windows 11 x64 (brief §1.2, "Win10 21H2 / Win11 22H2 x64" column).
pub const X64_WIN10: NtLayout = NtLayout {
    name: "x64 Windows 8+",
    ptr: 8,
    granule: 16,
    header_at: 8,
    seg_signature: 0x10,
    seg_flags: 0x14,
    seg_list_entry: 0x18,
    seg_heap: 0x28,
    seg_base: 0x30,
    seg_pages: 0x38,
    seg_first_entry: 0x40,
    seg_last_valid: 0x48,
    seg_uncommitted_pages: 0x50,
    seg_ucr_count: 0x54,
    seg_ucr_list: 0x60,
    heap_flags: 0x70,
    heap_force_flags: 0x74,
    heap_encode_mask: 0x7c,
    heap_encoding: 0x80,
    heap_signature: 0x98,
    heap_segment_reserve: 0xa0,
    heap_segment_commit: 0xa8,
    heap_total_free: 0xc0,
    heap_max_allocation: 0xc8,
    heap_ucr_list: 0xf0,
    heap_virtual_blocks: 0x110,
    heap_segment_list: 0x120,
    heap_free_lists: 0x150,
    ucr_segment_entry: 0x10,
    ucr_address: 0x20,
    ucr_size: 0x28,
    va_commit: 0x20,
    va_reserve: 0x28,
    va_busy_block: 0x30,
    va_sizeof: 0x40,
};

/// Windows 7 SP1 x64 (brief §1.2, "Win7 x64" column): `PointerKey` at +0x90 pushes the fields
/// after `Encoding` one pointer further.
pub const X64_WIN7: NtLayout = NtLayout {
    name: "x64 Windows 7",
    heap_signature: 0xa0,
    heap_segment_reserve: 0xa8,
    heap_segment_commit: 0xb0,
    heap_total_free: 0xc8,
    heap_max_allocation: 0xd0,
    heap_ucr_list: 0xf8,
    heap_virtual_blocks: 0x118,
    heap_segment_list: 0x128,
    heap_free_lists: 0x158,
    ..X64_WIN10
};

/// Windows 10 x86 and the WOW64 32-bit heaps (brief §1.2, "Win10 1809 x86" column; the
/// corpus's 1803 WOW64 heap has its signatures and lists at the same places).
pub const X86_WIN10: NtLayout = NtLayout {
    name: "x86 Windows 10",
    ptr: 4,
    granule: 8,
    header_at: 0,
    seg_signature: 0x08,
    seg_flags: 0x0c,
    seg_list_entry: 0x10,
    seg_heap: 0x18,
    seg_base: 0x1c,
    seg_pages: 0x20,
    seg_first_entry: 0x24,
    seg_last_valid: 0x28,
    seg_uncommitted_pages: 0x2c,
    seg_ucr_count: 0x30,
    seg_ucr_list: 0x38,
    heap_flags: 0x40,
    heap_force_flags: 0x44,
    heap_encode_mask: 0x4c,
    heap_encoding: 0x50,
    heap_signature: 0x60,
    heap_segment_reserve: 0x64,
    heap_segment_commit: 0x68,
    heap_total_free: 0x74,
    heap_max_allocation: 0x78,
    heap_ucr_list: 0x8c,
    heap_virtual_blocks: 0x9c,
    heap_segment_list: 0xa4,
    heap_free_lists: 0xc0,
    ucr_segment_entry: 0x08,
    ucr_address: 0x10,
    ucr_size: 0x14,
    va_commit: 0x10,
    va_reserve: 0x14,
    va_busy_block: 0x18,
    va_sizeof: 0x20,
};

/// One decoded `_HEAP_ENTRY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NtEntry {
    pub address: u64,
    /// Size in bytes (Size × granule).
    pub size: u64,
    /// Previous entry's size in bytes (PreviousSize × granule).
    pub prev_size: u64,
    pub flags: u8,
    pub small_tag_index: u8,
    pub unused_bytes: u8,
}

impl NtEntry {
    pub fn busy(&self) -> bool {
        self.flags & ENTRY_BUSY != 0
    }
    /// What the caller asked for: Size×granule − UnusedBytes (DbgHelpUtils; a WinDbg x86 capture
    /// agrees; the x64 formula is an open question in the brief, §1.3).
    pub fn requested(&self) -> u64 {
        self.size.saturating_sub(u64::from(self.unused_bytes))
    }
}

/// Decode an entry's 8 header bytes: XOR with the heap's encoding when it has one, then read
/// Size, Flags, SmallTagIndex, PreviousSize, SegmentOffset, UnusedBytes. The checksum holds
/// when SmallTagIndex == Size low ^ Size high ^ Flags.
pub fn decode_header(raw: [u8; 8], encoding: Option<[u8; 8]>) -> ([u8; 8], bool) {
    let mut h = raw;
    if let Some(k) = encoding {
        for (b, k) in h.iter_mut().zip(k) {
            *b ^= k;
        }
    }
    let ok = h[3] == h[0] ^ h[1] ^ h[2];
    (h, ok)
}

/// An uncommitted range of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NtUcr {
    pub address: u64,
    pub size: u64,
}

/// Why a segment's entry walk stopped before its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalkStop {
    /// Reached LastValidEntry (or the last UCR that ends there): the whole segment was walked.
    Complete,
    NotInDump(u64),
    BadChecksum(u64),
    ZeroSize(u64),
    /// The entry's size runs past the segment's end or into an uncommitted range.
    PastEnd(u64),
    Budget(u64),
}

impl WalkStop {
    pub fn describe(&self) -> String {
        match self {
            WalkStop::Complete => "complete".into(),
            WalkStop::NotInDump(a) => format!("entry at {a:#x} is not in the dump"),
            WalkStop::BadChecksum(a) => format!("entry at {a:#x}: header checksum does not match"),
            WalkStop::ZeroSize(a) => format!("entry at {a:#x} has size 0"),
            WalkStop::PastEnd(a) => {
                format!("entry at {a:#x} runs past its segment's committed memory")
            }
            WalkStop::Budget(a) => format!("entry budget spent at {a:#x}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NtSegment {
    pub address: u64,
    pub flags: u32,
    pub base: u64,
    pub pages: u32,
    pub uncommitted_pages: u32,
    pub first_entry: u64,
    pub last_valid_entry: u64,
    pub ucrs: Vec<NtUcr>,
    pub entries: Vec<NtEntry>,
    pub stop: WalkStop,
    /// Entries whose PreviousSize is not the size of the entry before them.
    pub prev_size_mismatches: Vec<u64>,
}

impl NtSegment {
    pub fn reserved(&self) -> u64 {
        u64::from(self.pages) * 0x1000
    }
    pub fn committed(&self) -> u64 {
        u64::from(self.pages.saturating_sub(self.uncommitted_pages)) * 0x1000
    }
    pub fn uncommitted_bytes(&self) -> u64 {
        self.ucrs.iter().fold(0u64, |a, u| a.saturating_add(u.size))
    }
    pub fn largest_ucr(&self) -> u64 {
        self.ucrs.iter().map(|u| u.size).max().unwrap_or(0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NtVirtualBlock {
    pub address: u64,
    pub commit: u64,
    pub reserve: u64,
    /// The BusyBlock header decoded with a valid checksum.
    pub header_ok: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NtHeap {
    pub address: u64,
    pub layout: &'static NtLayout,
    pub flags: u32,
    pub force_flags: u32,
    pub encode_flag_mask: u32,
    pub encoding: [u8; 8],
    pub segment_reserve: u64,
    pub segment_commit: u64,
    /// `TotalFreeSize` in bytes (granules × granule).
    pub total_free_size: u64,
    pub max_allocation_size: u64,
    pub segments: Vec<NtSegment>,
    pub virtual_blocks: Vec<NtVirtualBlock>,
    /// The heap's own counters, when the build's layout is known and they pass the gate.
    pub counters: Option<NtCounters>,
    /// What could not be followed (bad links, segments that do not point back).
    pub warnings: Vec<String>,
}

impl NtHeap {
    fn encoding(&self) -> Option<[u8; 8]> {
        (self.encode_flag_mask & ENCODE_FLAG != 0).then_some(self.encoding)
    }
    /// Reserved bytes: every segment's pages plus every virtual block's reservation.
    pub fn reserved(&self) -> u64 {
        let s = self.segments.iter().map(NtSegment::reserved);
        let v = self.virtual_blocks.iter().map(|b| b.reserve);
        s.chain(v).fold(0u64, u64::saturating_add)
    }
    /// Committed bytes: every segment's committed pages plus every virtual block's commit.
    pub fn committed(&self) -> u64 {
        let s = self.segments.iter().map(NtSegment::committed);
        let v = self.virtual_blocks.iter().map(|b| b.commit);
        s.chain(v).fold(0u64, u64::saturating_add)
    }
    pub fn virtual_reserved(&self) -> u64 {
        self.virtual_blocks
            .iter()
            .fold(0u64, |a, b| a.saturating_add(b.reserve))
    }
    fn free_entries(&self) -> impl Iterator<Item = &NtEntry> {
        self.segments
            .iter()
            .flat_map(|s| s.entries.iter())
            .filter(|e| !e.busy())
    }
    /// Bytes in free entries walked.
    pub fn free_bytes(&self) -> u64 {
        self.free_entries()
            .fold(0u64, |a, e| a.saturating_add(e.size))
    }
    pub fn free_count(&self) -> usize {
        self.free_entries().count()
    }
    pub fn ucr_count(&self) -> usize {
        self.segments.iter().map(|s| s.ucrs.len()).sum()
    }
    /// Every segment walked to its end.
    pub fn complete(&self) -> bool {
        self.segments.iter().all(|s| s.stop == WalkStop::Complete)
    }
}

/// `_HEAP.Counters` (`_HEAP_COUNTERS`): the heap's own bookkeeping of what it reserved and
/// committed over all its segments, which stays right when segments are missing from the dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NtCounters {
    pub total_reserved: u64,
    pub total_committed: u64,
    pub total_large_ucr: u64,
    pub total_in_virtual_blocks: u64,
    pub total_segments: u32,
    pub total_ucrs: u32,
}

/// Where `_HEAP.Counters` is for a layout and OS build, when known:
/// - x64 Windows 10 2004 (19041) to Windows 11 22H2: +0x238 (brief §1.2, ntdiff 21H2/22H2; the
///   corpus's Firefox dump of Windows 10 2004 has its four segments and totals there);
/// - x64 Windows 10 1803 (17134) and before: +0x218, x86 Windows 10 1803 and before: +0x1e4
///   (*measured*, not from a PDB: on the corpus's 1803 WOW64 and USERDU64 dumps the reserved,
///   committed, large-UCR, segment and UCR counts of all five heaps line up there; 1809 moved
///   the x86 Counters 4 pointers further, to the brief's +0x1f4, and x64 moves by the same 4);
/// - x86 Windows 10 1809 (17763) and later: +0x1f4 (brief, ntdiff 1809 x86);
/// - Windows 7 x64: +0x188 (brief).
///
/// Builds between these (x64 1809 to 1909) have no table: no counters rather than a guess.
/// Past 22H2 the x64 offset is unverified by a PDB; the corpus's Windows 11 26200 minidump
/// shows plausible counters there (7 segments, commit within reserve), and the gate below
/// drops values that are not.
pub fn counters_offset(l: &NtLayout, build: u32) -> Option<u64> {
    match (l.ptr, l.heap_signature, build) {
        (8, 0xa0, _) => Some(0x188),
        (8, _, 10240..=17134) => Some(0x218),
        (8, _, 19041..) => Some(0x238),
        (4, _, 10240..=17134) => Some(0x1e4),
        (4, _, 17763..) => Some(0x1f4),
        _ => None,
    }
}

fn read_counters(mem: &dyn MemoryReader, at: u64, ptr: u64) -> Option<NtCounters> {
    let sizes = |i: u64| mem.read_ptr(at.wrapping_add(i * ptr), ptr);
    let c = NtCounters {
        total_reserved: sizes(0)?,
        total_committed: sizes(1)?,
        total_large_ucr: sizes(2)?,
        total_in_virtual_blocks: sizes(3)?,
        total_segments: mem.read_u32(at.wrapping_add(4 * ptr))?,
        total_ucrs: mem.read_u32(at.wrapping_add(4 * ptr + 4))?,
    };
    // Gate: page-granular sizes, commit within the reservation, at least the heap itself.
    (c.total_committed <= c.total_reserved
        && c.total_reserved.is_multiple_of(0x1000)
        && c.total_committed.is_multiple_of(0x1000)
        && c.total_segments >= 1)
        .then_some(c)
}

/// Why an address is not walked as an NT heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotNtHeap {
    NotInDump,
    /// 0xddeeddee: a segment heap.
    SegmentHeap,
    /// No 0xffeeffee / 0xeeffeeff where any known layout has them (Wine's heap, or not a heap).
    NoSignature,
}

/// Which layout `addr`'s header matches: segment signature and heap signature both in place.
pub fn layout_of(
    mem: &dyn MemoryReader,
    addr: u64,
    ptr: u64,
) -> Result<&'static NtLayout, NotNtHeap> {
    let candidates: &[&'static NtLayout] = if ptr == 8 {
        &[&X64_WIN10, &X64_WIN7]
    } else {
        &[&X86_WIN10]
    };
    let seg_sig = mem
        .read_u32(addr.wrapping_add(candidates[0].seg_signature))
        .ok_or(NotNtHeap::NotInDump)?;
    if seg_sig == 0xddee_ddee {
        return Err(NotNtHeap::SegmentHeap);
    }
    if seg_sig != SEGMENT_SIGNATURE {
        return Err(NotNtHeap::NoSignature);
    }
    candidates
        .iter()
        .copied()
        .find(|l| mem.read_u32(addr.wrapping_add(l.heap_signature)) == Some(HEAP_SIGNATURE))
        .ok_or(NotNtHeap::NoSignature)
}

/// Follow a LIST_ENTRY chain from `head` (the head's own address): each link's Flink, stopping at
/// the head, a repeat, unreadable memory or `max` nodes. Returns the links (not the containing
/// records) and whether the chain closed back at the head.
fn list_links(mem: &dyn MemoryReader, head: u64, ptr: u64, max: usize) -> (Vec<u64>, bool) {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut link = match mem.read_ptr(head, ptr) {
        Some(l) => l,
        None => return (out, false),
    };
    while link != head {
        if out.len() >= max || link == 0 || !seen.insert(link) {
            return (out, false);
        }
        out.push(link);
        match mem.read_ptr(link, ptr) {
            Some(n) => link = n,
            None => return (out, false),
        }
    }
    (out, true)
}

/// Read and walk the NT heap at `addr`. `budget` is the number of entries still allowed over
/// all heaps; it is spent by the walk.
pub fn read_nt_heap(
    mem: &dyn MemoryReader,
    addr: u64,
    ptr: u64,
    build: u32,
    budget: &mut usize,
) -> Result<NtHeap, NotNtHeap> {
    let l = layout_of(mem, addr, ptr)?;
    let at = |o: u64| addr.wrapping_add(o);
    let u32_at = |o: u64| mem.read_u32(at(o)).unwrap_or(0);
    let ptr_at = |o: u64| mem.read_ptr(at(o), l.ptr).unwrap_or(0);
    let mut encoding = [0u8; 8];
    if mem.read(at(l.heap_encoding + l.header_at), &mut encoding) != 8 {
        return Err(NotNtHeap::NotInDump);
    }
    let mut heap = NtHeap {
        address: addr,
        layout: l,
        flags: u32_at(l.heap_flags),
        force_flags: u32_at(l.heap_force_flags),
        encode_flag_mask: u32_at(l.heap_encode_mask),
        encoding,
        segment_reserve: ptr_at(l.heap_segment_reserve),
        segment_commit: ptr_at(l.heap_segment_commit),
        total_free_size: ptr_at(l.heap_total_free).saturating_mul(l.granule),
        max_allocation_size: ptr_at(l.heap_max_allocation),
        segments: Vec::new(),
        virtual_blocks: Vec::new(),
        counters: None,
        warnings: Vec::new(),
    };
    heap.counters = counters_offset(l, build).and_then(|o| read_counters(mem, at(o), l.ptr));
    let enc = heap.encoding();
    // Segments: the heap is its own first segment; all are on _HEAP.SegmentList through
    // _HEAP_SEGMENT.SegmentListEntry.
    let (links, closed) = list_links(mem, at(l.heap_segment_list), l.ptr, MAX_SEGMENTS);
    if !closed {
        heap.warnings.push(format!(
            "segment list of heap {addr:#x} does not close (walked {} links)",
            links.len()
        ));
    }
    let mut seg_addrs: Vec<u64> = links
        .iter()
        .map(|k| k.wrapping_sub(l.seg_list_entry))
        .collect();
    if !seg_addrs.contains(&addr) {
        seg_addrs.insert(0, addr);
    }
    for seg in seg_addrs {
        match read_segment(mem, l, addr, seg, enc, budget) {
            Ok(s) => heap.segments.push(s),
            Err(why) => heap.warnings.push(format!("segment {seg:#x}: {why}")),
        }
    }
    // Virtual-alloc blocks.
    let (links, closed) = list_links(mem, at(l.heap_virtual_blocks), l.ptr, MAX_VIRTUAL_BLOCKS);
    if !closed {
        heap.warnings.push(format!(
            "virtual-alloc list of heap {addr:#x} does not close (walked {} links)",
            links.len()
        ));
    }
    for b in links {
        let commit = mem.read_ptr(b.wrapping_add(l.va_commit), l.ptr);
        let reserve = mem.read_ptr(b.wrapping_add(l.va_reserve), l.ptr);
        let mut raw = [0u8; 8];
        let header = mem.read(b.wrapping_add(l.va_busy_block + l.header_at), &mut raw) == 8;
        match (commit, reserve) {
            (Some(commit), Some(reserve)) if commit <= reserve => {
                let (h, ok) = decode_header(raw, enc);
                heap.virtual_blocks.push(NtVirtualBlock {
                    address: b,
                    commit,
                    reserve,
                    header_ok: header && ok && h[2] & ENTRY_VIRTUAL_ALLOC != 0,
                });
            }
            _ => heap.warnings.push(format!(
                "virtual block {b:#x}: sizes unreadable or commit > reserve"
            )),
        }
    }
    Ok(heap)
}

fn read_segment(
    mem: &dyn MemoryReader,
    l: &NtLayout,
    heap: u64,
    seg: u64,
    enc: Option<[u8; 8]>,
    budget: &mut usize,
) -> Result<NtSegment, String> {
    let at = |o: u64| seg.wrapping_add(o);
    let u32_at = |o: u64| mem.read_u32(at(o)).ok_or("not in the dump");
    let ptr_at = |o: u64| mem.read_ptr(at(o), l.ptr).ok_or("not in the dump");
    if u32_at(l.seg_signature)? != SEGMENT_SIGNATURE {
        return Err("no segment signature 0xffeeffee".into());
    }
    if ptr_at(l.seg_heap)? != heap {
        return Err("its Heap field does not point back to the heap".into());
    }
    let base = ptr_at(l.seg_base)?;
    let pages = u32_at(l.seg_pages)?;
    let uncommitted_pages = u32_at(l.seg_uncommitted_pages)?;
    let first_entry = ptr_at(l.seg_first_entry)?;
    let last_valid_entry = ptr_at(l.seg_last_valid)?;
    let end = base
        .checked_add(u64::from(pages) * 0x1000)
        .ok_or("size wraps")?;
    if base != seg
        || uncommitted_pages > pages
        || !(base < first_entry && first_entry <= last_valid_entry && last_valid_entry <= end)
    {
        return Err(format!(
            "bounds do not hold (base {base:#x}, first {first_entry:#x}, last {last_valid_entry:#x}, \
             {pages:#x} pages, {uncommitted_pages:#x} uncommitted)"
        ));
    }
    // Uncommitted ranges: descriptors on UCRSegmentList through their SegmentEntry, each inside
    // the segment.
    let (links, _) = list_links(mem, at(l.seg_ucr_list), l.ptr, MAX_UCRS);
    let mut ucrs = Vec::new();
    for k in links {
        let d = k.wrapping_sub(l.ucr_segment_entry);
        let (Some(a), Some(sz)) = (
            mem.read_ptr(d.wrapping_add(l.ucr_address), l.ptr),
            mem.read_ptr(d.wrapping_add(l.ucr_size), l.ptr),
        ) else {
            break;
        };
        if a < first_entry
            || a.checked_add(sz)
                .is_none_or(|e| e > last_valid_entry.max(end))
        {
            break;
        }
        ucrs.push(NtUcr {
            address: a,
            size: sz,
        });
    }
    ucrs.sort_by_key(|u| u.address);
    let mut s = NtSegment {
        address: seg,
        flags: u32_at(l.seg_flags)?,
        base,
        pages,
        uncommitted_pages,
        first_entry,
        last_valid_entry,
        ucrs,
        entries: Vec::new(),
        stop: WalkStop::Complete,
        prev_size_mismatches: Vec::new(),
    };
    walk_entries(mem, l, &mut s, enc, budget);
    Ok(s)
}

/// Walk a segment's entries from its own header entry (at the segment's start, up to
/// FirstEntry) to LastValidEntry, jumping over uncommitted ranges.
fn walk_entries(
    mem: &dyn MemoryReader,
    l: &NtLayout,
    s: &mut NtSegment,
    enc: Option<[u8; 8]>,
    budget: &mut usize,
) {
    let end = s.last_valid_entry;
    let mut a = s.address;
    let mut prev: Option<u64> = None;
    let mut ucr_i = 0;
    loop {
        // Skip the uncommitted range that starts here.
        while let Some(u) = s.ucrs.get(ucr_i).filter(|u| u.address <= a) {
            if u.address == a {
                a = u.address.saturating_add(u.size);
                prev = None;
            }
            ucr_i += 1;
        }
        if a >= end {
            s.stop = WalkStop::Complete;
            return;
        }
        if *budget == 0 {
            s.stop = WalkStop::Budget(a);
            return;
        }
        let mut raw = [0u8; 8];
        if mem.read(a.wrapping_add(l.header_at), &mut raw) != 8 {
            s.stop = WalkStop::NotInDump(a);
            return;
        }
        let (h, ok) = decode_header(raw, enc);
        if !ok {
            s.stop = WalkStop::BadChecksum(a);
            return;
        }
        let size = u64::from(u16::from_le_bytes([h[0], h[1]])) * l.granule;
        if size == 0 {
            s.stop = WalkStop::ZeroSize(a);
            return;
        }
        let next = a.saturating_add(size);
        // The entry must end at or before the next uncommitted range and the segment's end.
        let limit = s.ucrs.get(ucr_i).map_or(end, |u| u.address.min(end));
        if next > limit {
            s.stop = WalkStop::PastEnd(a);
            return;
        }
        let e = NtEntry {
            address: a,
            size,
            prev_size: u64::from(u16::from_le_bytes([h[4], h[5]])) * l.granule,
            flags: h[2],
            small_tag_index: h[3],
            unused_bytes: h[7],
        };
        if prev.is_some_and(|p| p != e.prev_size) {
            s.prev_size_mismatches.push(a);
        }
        prev = Some(size);
        s.entries.push(e);
        *budget -= 1;
        a = next;
    }
}

/// A heap the PEB names: its address and its walk, or why it was not walked.
pub type HeapWalk = (u64, Result<NtHeap, NotNtHeap>);

/// The process's NT heaps from the PEB's heap list (else ProcessHeap): each heap walked, or why
/// it was not.
pub fn process_nt_heaps(mem: &dyn MemoryReader, peb: &crate::peb::Peb, ptr: u64) -> Vec<HeapWalk> {
    let mut addrs: Vec<u64> = peb
        .process_heaps
        .iter()
        .copied()
        .filter(|&h| h != 0)
        .collect();
    if addrs.is_empty() && peb.process_heap != 0 {
        addrs.push(peb.process_heap);
    }
    let mut seen = HashSet::new();
    addrs.retain(|h| seen.insert(*h));
    let mut budget = DEFAULT_ENTRY_BUDGET;
    let build = peb.os_version.map_or(0, |v| u32::from(v.2));
    addrs
        .into_iter()
        .map(|h| (h, read_nt_heap(mem, h, ptr, build, &mut budget)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EveryAddress;

    const BASE: u64 = 0x10000;
    const KEY: [u8; 8] = [0x1f, 0x0f, 0x98, 0x05, 0x0b, 0xf8, 0x00, 0x00];
    /// sizeof(_HEAP) on x86 Windows 10 is 0x258: the first entry follows it.
    const FIRST: u64 = BASE + 0x258;

    /// Memory holding one buffer at one address.
    struct Image(u64, Vec<u8>);

    impl MemoryReader for Image {
        fn read(&self, addr: u64, buf: &mut [u8]) -> usize {
            let Some(off) = addr.checked_sub(self.0) else {
                return 0;
            };
            let Some(src) = self.1.get(off as usize..) else {
                return 0;
            };
            let n = src.len().min(buf.len());
            buf[..n].copy_from_slice(&src[..n]);
            n
        }
    }

    impl Image {
        fn u32(&mut self, at: u64, v: u32) {
            let o = (at - self.0) as usize;
            self.1[o..o + 4].copy_from_slice(&v.to_le_bytes());
        }
        /// An encoded x86 entry header: `size` bytes, flags, PreviousSize in bytes.
        fn entry(&mut self, at: u64, size: u64, flags: u8, prev: u64) {
            let s = ((size / 8) as u16).to_le_bytes();
            let p = ((prev / 8) as u16).to_le_bytes();
            let mut h = [s[0], s[1], flags, s[0] ^ s[1] ^ flags, p[0], p[1], 0, 8];
            for (b, k) in h.iter_mut().zip(KEY) {
                *b ^= k;
            }
            let o = (at - self.0) as usize;
            self.1[o..o + 8].copy_from_slice(&h);
        }
    }

    /// A one-segment x86 Windows 10 heap of `pages` committed pages at BASE, laid out as
    /// X86_WIN10 says, with its header entry and the lists empty or closed.
    fn x86_heap(pages: u32) -> Image {
        let l = X86_WIN10;
        let mut m = Image(BASE, vec![0; pages as usize * 0x1000]);
        m.entry(BASE, 0x258, ENTRY_BUSY, 0);
        m.u32(BASE + l.seg_signature, SEGMENT_SIGNATURE);
        // Segment list: heap.SegmentList <-> segment.SegmentListEntry.
        let head = BASE + l.heap_segment_list;
        let link = BASE + l.seg_list_entry;
        for (a, v) in [
            (head, link),
            (head + 4, link),
            (link, head),
            (link + 4, head),
        ] {
            m.u32(a, v as u32);
        }
        m.u32(BASE + l.seg_heap, BASE as u32);
        m.u32(BASE + l.seg_base, BASE as u32);
        m.u32(BASE + l.seg_pages, pages);
        m.u32(BASE + l.seg_first_entry, FIRST as u32);
        m.u32(
            BASE + l.seg_last_valid,
            (BASE + u64::from(pages) * 0x1000) as u32,
        );
        for head in [BASE + l.seg_ucr_list, BASE + l.heap_virtual_blocks] {
            m.u32(head, head as u32);
            m.u32(head + 4, head as u32);
        }
        m.u32(BASE + l.heap_encode_mask, ENCODE_FLAG);
        m.1[(l.heap_encoding) as usize..(l.heap_encoding + 8) as usize].copy_from_slice(&KEY);
        m.u32(BASE + l.heap_signature, HEAP_SIGNATURE);
        m
    }

    fn walk(m: &Image) -> NtHeap {
        let mut budget = DEFAULT_ENTRY_BUDGET;
        read_nt_heap(m, BASE, 4, 17763, &mut budget).expect("an NT heap")
    }

    #[test]
    fn a_well_formed_segment_is_walked_to_its_end() {
        let mut m = x86_heap(1);
        m.entry(FIRST, 0x100, ENTRY_BUSY, 0x258);
        let rest = BASE + 0x1000 - (FIRST + 0x100);
        m.entry(FIRST + 0x100, rest, 0, 0x100);
        m.u32(BASE + X86_WIN10.heap_total_free, (rest / 8) as u32);
        let h = walk(&m);
        let s = &h.segments[0];
        assert_eq!(s.stop, WalkStop::Complete);
        assert_eq!(s.entries.len(), 3);
        assert_eq!(s.entries.iter().map(|e| e.size).sum::<u64>(), 0x1000);
        assert_eq!(h.free_bytes(), rest);
        assert_eq!(h.total_free_size, rest);
        assert_eq!(s.entries[1].requested(), 0x100 - 8);
        assert!(s.prev_size_mismatches.is_empty());
    }

    #[test]
    fn an_entry_of_size_zero_stops_the_walk_there() {
        let mut m = x86_heap(1);
        m.entry(FIRST, 0x100, ENTRY_BUSY, 0x258);
        m.entry(FIRST + 0x100, 0, ENTRY_BUSY, 0x100);
        let h = walk(&m);
        assert_eq!(h.segments[0].stop, WalkStop::ZeroSize(FIRST + 0x100));
        assert_eq!(h.segments[0].entries.len(), 2);
    }

    #[test]
    fn an_entry_running_past_its_segment_stops_the_walk() {
        let mut m = x86_heap(1);
        m.entry(FIRST, 0xfff8, ENTRY_BUSY, 0x258);
        let h = walk(&m);
        assert_eq!(h.segments[0].stop, WalkStop::PastEnd(FIRST));
        assert_eq!(h.segments[0].entries.len(), 1);
    }

    #[test]
    fn a_header_that_does_not_decode_stops_the_walk() {
        let mut m = x86_heap(1);
        m.entry(FIRST, 0x100, ENTRY_BUSY, 0x258);
        let o = (FIRST - BASE) as usize;
        m.1[o + 3] ^= 0x40; // SmallTagIndex no longer the checksum
        let h = walk(&m);
        assert_eq!(h.segments[0].stop, WalkStop::BadChecksum(FIRST));
    }

    #[test]
    fn a_segment_list_that_loops_and_a_foreign_segment_are_reported_not_followed() {
        let mut m = x86_heap(2);
        m.entry(FIRST, 0x1000 - 0x258, ENTRY_BUSY, 0x258);
        m.entry(BASE + 0x1000, 0x1000, 0, 0x1000 - 0x258);
        // SegmentList -> a fake "segment" at BASE+0x1000 whose link points to itself.
        let l = X86_WIN10;
        let fake = BASE + 0x1000;
        m.u32(BASE + l.heap_segment_list, (fake + l.seg_list_entry) as u32);
        m.u32(fake + l.seg_list_entry, (fake + l.seg_list_entry) as u32);
        let h = walk(&m);
        assert!(
            h.warnings.iter().any(|w| w.contains("does not close")),
            "{:?}",
            h.warnings
        );
        assert!(
            h.warnings.iter().any(|w| w.contains("segment 0x11000")),
            "{:?}",
            h.warnings
        );
        assert_eq!(h.segments.len(), 1, "only the heap itself is a segment");
        assert_eq!(h.segments[0].stop, WalkStop::Complete);
    }

    /// A heap claiming 2^32-1 pages over memory that is readable everywhere and made of valid
    /// one-granule entries: the walk ends on the budget, not on the untrusted page count.
    #[test]
    fn a_huge_segment_of_tiny_entries_is_bounded_by_the_budget() {
        let header = x86_heap(1);
        let mut header = header.1[..0x258].to_vec();
        header[X86_WIN10.heap_encode_mask as usize..][..4].copy_from_slice(&0u32.to_le_bytes());
        header[X86_WIN10.seg_pages as usize..][..4].copy_from_slice(&u32::MAX.to_le_bytes());
        header[X86_WIN10.seg_last_valid as usize..][..4]
            .copy_from_slice(&0xffff_f000u32.to_le_bytes());
        // Unencoded header entry at BASE of 0x258 bytes.
        header[..8].copy_from_slice(&[0x4b, 0, 1, 0x4a, 0, 0, 0, 8]);
        let mem = EveryAddress(move |a: u64| match a.checked_sub(BASE) {
            Some(o) if o < 0x258 => header[o as usize],
            // size 1 granule, busy, checksum 1^0^1 = 0, PreviousSize 1
            _ => [1, 0, 1, 0, 1, 0, 0, 0][(a % 8) as usize],
        });
        let mut budget = 100_000;
        let h = read_nt_heap(&mem, BASE, 4, 17763, &mut budget).expect("an NT heap");
        assert!(matches!(h.segments[0].stop, WalkStop::Budget(_)));
        assert_eq!(budget, 0);
        assert_eq!(h.segments[0].entries.len(), 100_000);
    }

    /// A virtual-alloc block on VirtualAllocdBlocks counts its reservation and commit into the
    /// heap's totals; its BusyBlock header decodes with the heap's key and says VIRTUAL_ALLOC.
    #[test]
    fn virtual_blocks_add_to_reserve_and_commit() {
        let l = X86_WIN10;
        let mut m = x86_heap(1);
        m.entry(FIRST, 0x1000 - 0x258, ENTRY_BUSY, 0x258);
        let node = 0x7000_0000u64;
        let head = BASE + l.heap_virtual_blocks;
        m.u32(head, node as u32);
        m.u32(head + 4, node as u32);
        let mut block = Image(node, vec![0; 0x20]);
        block.u32(node, head as u32);
        block.u32(node + 4, head as u32);
        block.u32(node + l.va_commit, 0x3000);
        block.u32(node + l.va_reserve, 0x4000);
        block.entry(
            node + l.va_busy_block,
            0x18,
            ENTRY_BUSY | ENTRY_VIRTUAL_ALLOC,
            0,
        );
        struct Two(Image, Image);
        impl MemoryReader for Two {
            fn read(&self, addr: u64, buf: &mut [u8]) -> usize {
                self.0.read(addr, buf).max(self.1.read(addr, buf))
            }
        }
        let two = Two(m, block);
        let mut budget = 100;
        let h = read_nt_heap(&two, BASE, 4, 17763, &mut budget).expect("an NT heap");
        assert!(h.warnings.is_empty(), "{:?}", h.warnings);
        assert_eq!(h.virtual_blocks.len(), 1);
        assert!(h.virtual_blocks[0].header_ok);
        assert_eq!(h.reserved(), 0x1000 + 0x4000);
        assert_eq!(h.committed(), 0x1000 + 0x3000);
        assert_eq!(h.virtual_reserved(), 0x4000);
        // Commit larger than the reservation is not believed.
        let Two(m, mut block) = two;
        block.u32(node + l.va_commit, 0x5000);
        let h = read_nt_heap(&Two(m, block), BASE, 4, 17763, &mut budget).expect("an NT heap");
        assert!(h.virtual_blocks.is_empty());
        assert_eq!(h.warnings.len(), 1, "{:?}", h.warnings);
    }

    /// Thousands of randomly corrupted copies of a well-formed two-page heap (bytes and
    /// pointers overwritten in its header, its lists and its entries): every walk ends, within
    /// its budget, and what it yields stays ordered and inside its segment.
    #[test]
    fn randomly_corrupted_heaps_walk_within_their_segments() {
        let mut good = x86_heap(2);
        good.entry(FIRST, 0x100, ENTRY_BUSY, 0x258);
        good.entry(FIRST + 0x100, 0x1000 - 0x358, 0, 0x100);
        good.entry(BASE + 0x1000, 0x1000, ENTRY_BUSY, 0x1000 - 0x358);
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let (mut walked_ok, mut stopped_early) = (0, 0);
        for _ in 0..3000 {
            let mut m = Image(BASE, good.1.clone());
            for _ in 0..1 + next() % 4 {
                let r = next();
                // Mostly the header and first entries, sometimes anywhere.
                let span = if r & 1 == 0 { 0x400 } else { 0x2000 };
                let at = BASE + (r >> 8) % (span - 4);
                let v = match (r >> 4) % 4 {
                    0 => next() as u32,
                    1 => (BASE + next() % 0x2100) as u32,
                    2 => 0,
                    _ => u32::MAX,
                };
                m.u32(at, v);
            }
            let mut budget = 10_000;
            let Ok(h) = read_nt_heap(&m, BASE, 4, 17763, &mut budget) else {
                continue;
            };
            walked_ok += 1;
            stopped_early += usize::from(!h.complete());
            let walked: usize = h.segments.iter().map(|s| s.entries.len()).sum();
            assert_eq!(walked, 10_000 - budget);
            for s in &h.segments {
                let mut last = None;
                for e in &s.entries {
                    assert!(e.size > 0);
                    assert!(e.address >= s.address && e.address + e.size <= s.last_valid_entry);
                    assert!(last.is_none_or(|l| l <= e.address), "entries go forward");
                    last = Some(e.address + e.size);
                }
            }
        }
        // The corruption reached the walks: most heaps still validate, many walks stop early.
        assert!(
            walked_ok > 1500 && stopped_early > 50,
            "{walked_ok} {stopped_early}"
        );
    }

    #[test]
    fn heaps_without_both_signatures_are_not_walked() {
        let mut m = x86_heap(1);
        m.u32(BASE + X86_WIN10.heap_signature, 0);
        let mut budget = 10;
        assert_eq!(
            read_nt_heap(&m, BASE, 4, 17763, &mut budget),
            Err(NotNtHeap::NoSignature)
        );
        m.u32(BASE + X86_WIN10.seg_signature, 0xddee_ddee);
        assert_eq!(
            read_nt_heap(&m, BASE, 4, 17763, &mut budget),
            Err(NotNtHeap::SegmentHeap)
        );
        assert_eq!(
            read_nt_heap(&m, 0x5000_0000, 4, 17763, &mut budget),
            Err(NotNtHeap::NotInDump)
        );
    }
}
