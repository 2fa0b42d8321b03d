//! NT heaps walked from their own structures on the corpus's real Windows full dumps: the
//! Windows 10 1803 WOW64 dump (its 32-bit heaps in the x86 view, its 64-bit heaps natively)
//! and the x64 USERDU64 dump. Expectations are Windows' own invariants (there is no WinDbg
//! oracle offline): the PEB's heaps are the ones walked, each segment's entries tile its
//! committed memory exactly, every decoded header's checksum holds, the PreviousSize chain is
//! closed, TotalFreeSize equals the free entries walked, and `!heap -s` adds up to its segments.

mod common;
use common::*;
use dumpdiag_os::nt_heap::{self, NtHeap, WalkStop};
use dumpdiag_os::peb;
use dumpdiag_os::view::{ProcessView, View};
use dumpdiag_target::{MemoryExt, Target};

const WOW64: &str = "kdlibcpp/targetapp_stacktest_wow64/targetapp_stacktest_wow64.dmp";
const X64: &str =
    "kdlibcpp/targetapp_stacktest_x64_release_userdu64/targetapp_stacktest_x64_release.dmp";

fn walk(t: &dyn Target, view: View) -> (peb::Peb, Vec<NtHeap>) {
    let v = ProcessView::new(t, view);
    let l = v.layout();
    let p = peb::read_peb(t.memory(), v.peb_address().expect("PEB"), &l).expect("PEB read");
    let heaps = nt_heap::process_nt_heaps(t.memory(), &p, l.ptr)
        .into_iter()
        .map(|(a, h)| h.unwrap_or_else(|e| panic!("heap {a:#x} not walked: {e:?}")))
        .collect();
    (p, heaps)
}

/// Windows' invariants on one walked heap.
fn check_heap(t: &dyn Target, h: &NtHeap) {
    let mem = t.memory();
    let l = h.layout;
    assert!(h.warnings.is_empty(), "{:#x}: {:?}", h.address, h.warnings);
    assert_eq!(
        h.segments[0].address, h.address,
        "the heap is its own first segment"
    );
    assert_eq!(
        h.encode_flag_mask & nt_heap::ENCODE_FLAG,
        nt_heap::ENCODE_FLAG,
        "Windows 10 encodes heap entry headers"
    );
    for s in &h.segments {
        let at = format!("heap {:#x} segment {:#x}", h.address, s.address);
        assert_eq!(s.stop, WalkStop::Complete, "{at}");
        assert!(
            s.prev_size_mismatches.is_empty(),
            "{at}: {:x?}",
            s.prev_size_mismatches
        );
        // The segment's own header entry reaches exactly to FirstEntry.
        assert_eq!(s.entries[0].address, s.address, "{at}");
        assert_eq!(
            s.entries[0].address + s.entries[0].size,
            s.first_entry,
            "{at}"
        );
        // Entries tile the committed memory: each starts where the one before ended, except
        // across an uncommitted range; their sizes sum to the committed pages.
        let walked: u64 = s.entries.iter().map(|e| e.size).sum();
        assert_eq!(
            walked,
            s.committed(),
            "{at}: entry sizes vs committed pages"
        );
        assert_eq!(
            walked + s.uncommitted_bytes(),
            s.last_valid_entry - s.address,
            "{at}: entries + uncommitted ranges span the segment"
        );
        assert_eq!(
            s.uncommitted_bytes(),
            u64::from(s.uncommitted_pages) * 0x1000,
            "{at}: the UCR descriptors add up to NumberOfUnCommittedPages"
        );
        for w in s.entries.windows(2) {
            let end = w[0].address + w[0].size;
            let gap = s.ucrs.iter().find(|u| u.address == end);
            let expected = gap.map_or(end, |u| u.address + u.size);
            assert_eq!(
                w[1].address, expected,
                "{at}: entry after {:#x}",
                w[0].address
            );
        }
        // Re-read every header raw and decode it independently: XOR with Encoding, checksum.
        let mut key = [0u8; 8];
        assert_eq!(
            mem.read(h.address + l.heap_encoding + l.header_at, &mut key),
            8
        );
        for e in &s.entries {
            let raw = mem.read_u64(e.address + l.header_at).unwrap().to_le_bytes();
            let d: Vec<u8> = raw.iter().zip(key).map(|(a, b)| a ^ b).collect();
            assert_eq!(
                d[3],
                d[0] ^ d[1] ^ d[2],
                "{at}: checksum of {:#x}",
                e.address
            );
            assert_eq!(
                u64::from(u16::from_le_bytes([d[0], d[1]])) * l.granule,
                e.size
            );
            assert_ne!(
                raw[3],
                raw[0] ^ raw[1] ^ raw[2],
                "{at}: {:#x} is stored encoded (its raw bytes must not pass the checksum)",
                e.address
            );
            assert!(e.requested() <= e.size);
        }
    }
    // The heap's own Counters agree with the walk (all segments are in these full dumps).
    let c = h
        .counters
        .expect("Counters at the 1803 offset pass their gate");
    assert_eq!(c.total_reserved, h.reserved(), "heap {:#x}", h.address);
    assert_eq!(c.total_committed, h.committed(), "heap {:#x}", h.address);
    assert_eq!(c.total_segments as usize, h.segments.len());
    assert_eq!(c.total_ucrs as usize, h.ucr_count());
    assert_eq!(c.total_in_virtual_blocks, 0);
    assert!(h.virtual_blocks.is_empty());
    assert_eq!(
        h.free_bytes(),
        h.total_free_size,
        "heap {:#x}: TotalFreeSize vs free entries walked",
        h.address
    );
}

fn numbers_after(line: &str, n: usize) -> Vec<u64> {
    line.split_whitespace()
        .skip(n)
        .map(|w| w.parse().unwrap_or_else(|_| panic!("{w} in {line}")))
        .collect()
}

/// `!heap -s` in the session's current view: each heap's row and the totals line equal what
/// the walk adds up from segments and virtual blocks.
fn check_summary(cmd_prefix: &str, rel: &str, heaps: &[NtHeap]) {
    let mut s = session(rel);
    let out = run(&mut s, &format!("{cmd_prefix}!heap -s"));
    assert!(!out.contains("MemoryInfoList"), "{out}");
    // These processes ran under a debugger: NtGlobalFlag 0x70 (tail, free checking, parameter
    // validation), which the heaps' flags 0x40000060 carry too.
    assert!(
        out.contains(
            "NtGlobalFlag enables following debugging aids for new heaps:\n    tail checking\n    \
             free checking\n    validate parameters\n"
        ),
        "{out}"
    );
    for h in heaps {
        assert_eq!(h.flags & 0x4000_0060, 0x4000_0060, "heap {:#x}", h.address);
    }
    let (mut reserved, mut committed) = (0, 0);
    for h in heaps {
        let w = h.layout.ptr as usize * 2;
        let row = out
            .lines()
            .find(|l| l.starts_with(&format!("{:0w$x} ", h.address)))
            .unwrap_or_else(|| panic!("{:#x} not listed:\n{out}", h.address));
        let n = numbers_after(row, 2);
        let seg_reserved: u64 = h.segments.iter().map(|s| u64::from(s.pages) * 4096).sum();
        let seg_committed: u64 = h.segments.iter().map(|s| s.committed()).sum();
        assert_eq!(n[0], seg_reserved / 1024, "{row}");
        assert_eq!(n[1], seg_committed / 1024, "{row}");
        assert_eq!(n[5], h.ucr_count() as u64, "{row}");
        assert_eq!(n[6], h.virtual_blocks.len() as u64, "{row}");
        assert_eq!(n[7], h.segments.len() as u64, "{row}");
        reserved += n[0];
        committed += n[1];
    }
    let total = out
        .lines()
        .find(|l| l.contains("NT heap(s),"))
        .expect("totals line");
    assert!(
        total.starts_with(&format!(
            "{} NT heap(s), {reserved}k reserved, {committed}k committed",
            heaps.len()
        )),
        "{total}\n{out}"
    );
}

#[test]
fn wow64_x86_view_walks_the_32_bit_process_heap_from_the_peb32() {
    let t = dumpdiag_mdmp::open_dump(dump(WOW64)).unwrap();
    let (p, heaps) = walk(t.as_ref(), View::Wow64X86);
    assert!(p.process_heap != 0 && p.process_heap < 1 << 32);
    assert_eq!(
        heaps[0].address, p.process_heap,
        "ProcessHeaps[0] is the process heap"
    );
    assert_eq!(heaps.len(), p.process_heaps.len());
    for h in &heaps {
        assert_eq!(h.layout.ptr, 4, "32-bit heaps in the x86 view");
        assert!(h.segments.iter().map(|s| s.entries.len()).sum::<usize>() > 100);
        check_heap(t.as_ref(), h);
    }
    check_summary(".effmach x86; ", WOW64, &heaps);
}

#[test]
fn wow64_native_view_walks_the_64_bit_heaps() {
    let t = dumpdiag_mdmp::open_dump(dump(WOW64)).unwrap();
    let (p, heaps) = walk(t.as_ref(), View::Native);
    assert_eq!(heaps[0].address, p.process_heap);
    assert_eq!(heaps.len(), 2);
    for h in &heaps {
        assert_eq!(h.layout.ptr, 8);
        check_heap(t.as_ref(), h);
    }
    check_summary("", WOW64, &heaps);
}

#[test]
fn x64_userdu64_heaps_walk_completely() {
    let t = dumpdiag_mdmp::open_dump(dump(X64)).unwrap();
    let (p, heaps) = walk(t.as_ref(), View::Native);
    assert_eq!(heaps[0].address, p.process_heap);
    assert_eq!(heaps.len(), 2);
    for h in &heaps {
        check_heap(t.as_ref(), h);
    }
    check_summary("", X64, &heaps);
}

/// `!heap -a` prints one line per walked entry with WinDbg's `address: psize . size` columns,
/// and the uncommitted range; `-h` the same without the header fields.
#[test]
fn heap_a_lists_every_entry_of_the_process_heap() {
    let t = dumpdiag_mdmp::open_dump(dump(WOW64)).unwrap();
    let (p, heaps) = walk(t.as_ref(), View::Wow64X86);
    let mut s = session(WOW64);
    let out = run(
        &mut s,
        &format!(".effmach x86; !heap -a {:x}", p.process_heap),
    );
    let h = &heaps[0];
    assert!(
        out.contains(&format!("Flags:                {:08x}", h.flags)),
        "{out}"
    );
    let entries: usize = h.segments.iter().map(|s| s.entries.len()).sum();
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| l.contains(" - busy (") || l.contains(" - free"))
        .collect();
    assert_eq!(lines.len(), entries);
    // The first entry after the heap header is busy with its tail filled (the heap has
    // HEAP_TAIL_CHECKING_ENABLED, flag 0x20).
    assert_eq!(h.flags & 0x20, 0x20);
    let first = &h.segments[0].entries[1];
    assert_eq!(first.flags & 0x05, 0x05, "busy, fill pattern");
    let want = format!(
        "{:08x}: {:05x} . {:05x} [{:02x}] - busy ({:x}), tail fill",
        first.address,
        first.prev_size,
        first.size,
        first.flags,
        first.requested()
    );
    assert!(
        lines.iter().any(|l| l.trim_start().starts_with(&want)),
        "{want}\n{out}"
    );
    assert_eq!(
        out.matches("uncommitted bytes.").count(),
        h.ucr_count(),
        "{out}"
    );
    let out_h = run(&mut s, &format!("!heap -h {:x}", p.process_heap));
    assert!(!out_h.contains("Segment Reserve:"), "{out_h}");
    assert_eq!(
        out_h
            .lines()
            .filter(|l| l.contains(" - busy (") || l.contains(" - free"))
            .count(),
        entries
    );
    let out = run(&mut s, "!heap -a 12345678");
    assert!(out.contains("not one of the process's heaps"), "{out}");
}

/// A minidump (Firefox on Windows 10 2004, x64) holds the process heap's header and the start
/// of two of its segments only: the walk stops where the dump does and says so, and the heap's
/// own Counters (at the brief's 21H2 offset, which 2004 shares) report the four segments.
#[test]
fn a_minidump_heap_walks_as_far_as_the_dump_and_its_counters_tell_the_rest() {
    let t = dumpdiag_mdmp::open_dump(dump("mozilla/windows-x86_64.dmp")).unwrap();
    let v = ProcessView::new(t.as_ref(), View::Native);
    let l = v.layout();
    let p = peb::read_peb(t.memory(), v.peb_address().unwrap(), &l).unwrap();
    assert_eq!(p.os_version.map(|v| v.2), Some(19041));
    let heaps = nt_heap::process_nt_heaps(t.memory(), &p, l.ptr);
    let (addr, h) = &heaps[0];
    assert_eq!(*addr, p.process_heap);
    let h = h
        .as_ref()
        .expect("the process heap's header is in the minidump");
    assert!(!h.complete());
    for s in &h.segments {
        assert!(matches!(s.stop, WalkStop::NotInDump(_)), "{:?}", s.stop);
        // What was walked still decodes: the header entry reaches FirstEntry.
        assert_eq!(s.entries[0].address + s.entries[0].size, s.first_entry);
    }
    let c = h.counters.expect("21H2 Counters offset");
    assert_eq!(c.total_segments, 4);
    assert!(h.segments.len() < 4);
    assert!(c.total_reserved > h.reserved());
    let mut s = session("mozilla/windows-x86_64.dmp");
    let out = run(&mut s, "!heap -s");
    assert!(out.contains("its Counters say 4 segment(s)"), "{out}");
    assert!(out.contains("is not in the dump"), "{out}");
}

/// `!heap -x` names the block an address falls in: for entries across the process heap, an
/// address inside each (its user pointer, its last byte) gives that entry, its heap and segment,
/// its size and busy/free state; an address in the uncommitted range says so.
#[test]
fn heap_x_names_the_block_an_address_is_in() {
    let t = dumpdiag_mdmp::open_dump(dump(WOW64)).unwrap();
    let (_, heaps) = walk(t.as_ref(), View::Wow64X86);
    let mut s = session(WOW64);
    run(&mut s, ".effmach x86");
    let h = &heaps[0];
    let seg = &h.segments[0];
    for e in seg.entries.iter().step_by(17) {
        for a in [e.address + 8, e.address + e.size - 1] {
            let out = run(&mut s, &format!("!heap -x {a:x}"));
            let row = out.lines().nth(2).unwrap_or_else(|| panic!("{out}"));
            let cols: Vec<&str> = row.split_whitespace().collect();
            assert_eq!(cols[0], format!("{:08x}", e.address), "{out}");
            assert_eq!(cols[1], format!("{:08x}", e.address + 8), "{out}");
            assert_eq!(cols[2], format!("{:08x}", h.address), "{out}");
            assert_eq!(cols[3], format!("{:08x}", seg.address), "{out}");
            assert_eq!(cols[4], format!("{:x}", e.size), "{out}");
            assert_eq!(cols[5], format!("{:x}", e.prev_size), "{out}");
            assert_eq!(cols[7], if e.busy() { "busy" } else { "free" }, "{out}");
        }
    }
    let u = seg.ucrs[0];
    let out = run(&mut s, &format!("!heap -x {:x}", u.address + 0x10));
    assert!(out.contains("in an uncommitted range"), "{out}");
    let out = run(&mut s, "!heap -x 10");
    assert!(out.contains("is in no walked NT heap block"), "{out}");
}
