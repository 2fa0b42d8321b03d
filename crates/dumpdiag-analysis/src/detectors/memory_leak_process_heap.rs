//! Memory Leak (Process Heap): heap memory that dominates the process — the heaps hold most of
//! its private commit, one heap holds most of that, and that heap kept growing. An NT heap
//! reserves its first segment when created and adds a new, larger one each time it outgrows
//! what it has (RtlpExtendHeap), so a heap of several segments has outgrown its reservation
//! again and again: growth a single dump can show. Sized from the memory map with the heaps
//! found by their headers (dumpdiag_os::heaps); the process's VM counters back it up when the
//! dump has them. Which block sizes and types dominate needs the heap walkers (the heap issue).
//! One dump shows size, not a trend: a second dump confirms the leak.

use crate::{silent, Caveat, Detector, Evidence, Finding, Pattern, Strength};
use dumpdiag_target::{MEM_COMMIT, MEM_PRIVATE};

pub struct MemoryLeakProcessHeap;

/// Segments of a heap that outgrew its reservation twice (the first and two added ones): the
/// heap reached at least four times its initial size, each added segment at least doubling it.
const GROWN_SEGMENTS: usize = 3;
/// For heaps whose growth the segments do not show (segment heap, Wine's), commit past which
/// no ordinary heap of a process that is not a database or a cache goes: a quarter of a 32-bit
/// process's 2 GB would be far beyond; 64 MB is a heap that kept taking memory.
const LARGE_HEAP: u64 = 64 << 20;

fn mb(v: u64) -> String {
    format!("{:.1} MB", v as f64 / (1 << 20) as f64)
}

impl Detector for MemoryLeakProcessHeap {
    fn pattern(&self) -> Pattern {
        Pattern::MemoryLeakProcessHeap
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let t = ev.target();
        if t.regions().is_empty() {
            silent!("no memory map (MemoryInfoList): heap sizes unknown");
        }
        let map = ev.address_map();
        let heaps = &map.heaps;
        let heap_commit: u64 = heaps
            .iter()
            .fold(0u64, |a, h| a.saturating_add(h.committed()));
        let private_commit: u64 = t
            .regions()
            .iter()
            .filter(|r| r.state == MEM_COMMIT && r.kind == MEM_PRIVATE)
            .fold(0u64, |a, r| a.saturating_add(r.size));
        let Some(top) = heaps.iter().max_by_key(|h| h.committed()) else {
            silent!("no heap found");
        };
        let share = heap_commit as f64 / private_commit.max(1) as f64;
        let top_share = top.committed() as f64 / heap_commit.max(1) as f64;
        let grown = top.segments.len() >= GROWN_SEGMENTS;
        if share < 0.5 || top_share < 0.5 || !(grown || top.committed() >= LARGE_HEAP) {
            silent!(
                "heaps hold {:.0}% of private commit, the largest {:.0}% of the heaps with {} \
                 segment(s): no heap dominates and grew",
                share * 100.0,
                top_share * 100.0,
                top.segments.len()
            );
        }
        let mut evidence = vec![format!(
            "heaps commit {} of the process's {} private commit ({:.0}%)",
            mb(heap_commit),
            mb(private_commit),
            share * 100.0
        )];
        for h in heaps.iter().filter(|h| h.committed() > 0) {
            let default = if map.default_heaps.contains(&h.base) {
                " (process default heap)"
            } else {
                ""
            };
            evidence.push(format!(
                "{} {:#x}{default}: {} committed, {} reserved, {} segment(s)",
                h.kind.label(),
                h.base,
                mb(h.committed()),
                mb(h.reserved()),
                h.segments.len()
            ));
        }
        if top.segments.len() > 1 {
            let sizes: Vec<String> = top.segments.iter().map(|s| mb(s.reserved)).collect();
            evidence.push(format!(
                "heap {:#x} grew by {} segment(s): {}",
                top.base,
                top.segments.len() - 1,
                sizes.join(", ")
            ));
        }
        if let Some(vm) = &t.extras().vm_counters {
            evidence.push(format!(
                "VM counters: private usage {}, peak pagefile usage {}",
                mb(vm.private_usage),
                mb(vm.peak_pagefile_usage)
            ));
        }
        vec![Finding::new(
            self.pattern(),
            Strength::Proven,
            format!(
                "heap {:#x} holds {} ({:.0}% of all heap commit, {:.0}% of private commit)",
                top.base,
                mb(top.committed()),
                100.0 * top_share,
                100.0 * top.committed() as f64 / private_commit.max(1) as f64
            ),
        )
        .caveat(Caveat::SingleDump)
        .notes(evidence)
        .recommend(
            "Take a second dump later: heap commit that keeps growing is a leak. Then find the \
             allocating code (UMDH or heap stack traces with gflags +ust, or the size histogram \
             of !heap -stat -h).",
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::Analysed;
    use crate::Confidence;
    use dumpdiag_synth::process::PAGE_READWRITE;
    use dumpdiag_synth::{Module, Process};
    use dumpdiag_target::Arch;

    const MB: u64 = 1 << 20;

    /// A process with one thread and a private heap of 1 MB that grew by segments of 2 and
    /// 4 MB (each the size of all before it, as RtlpExtendHeap adds them) when `grown`, else
    /// stayed at its first 2 MB segment. Returns the process and the heap.
    fn with_heap(arch: Arch, grown: bool) -> (Process, u64) {
        let mut p = Process::new(arch);
        let app = p.module(Module::new("C:\\app\\cache.exe"));
        let main = p.function(app, "main", 0x80);
        p.thread(0x100, [main]);
        let heap = if grown {
            let heap = p.heap(MB, MB);
            p.heap_segment(heap, 2 * MB, 2 * MB);
            p.heap_segment(heap, 4 * MB, 4 * MB);
            heap
        } else {
            p.heap(2 * MB, 2 * MB)
        };
        (p, heap)
    }

    #[test]
    fn a_heap_that_holds_most_of_private_commit_and_grew_by_segments_is_a_leak() {
        for arch in [Arch::Amd64, Arch::X86] {
            let (p, heap) = with_heap(arch, true);
            let found = Analysed::exports_only(p).detect(&MemoryLeakProcessHeap);
            assert_eq!(found.len(), 1, "{arch:?}");
            let f = &found[0];
            assert!(
                f.summary.starts_with(&format!(
                    "heap {heap:#x} holds 7.0 MB (99% of all heap commit, "
                )),
                "{arch:?}: {}",
                f.summary
            );
            let evidence = f.evidence();
            assert!(
                evidence.contains(&format!(
                    "NT heap {heap:#x}: 7.0 MB committed, 7.0 MB reserved, 3 segment(s)"
                )),
                "{arch:?}: {evidence:#?}"
            );
            assert!(evidence.contains(&format!(
                "heap {heap:#x} grew by 2 segment(s): 1.0 MB, 2.0 MB, 4.0 MB"
            )));
            // One dump shows a size: a second one confirms the growth.
            assert_eq!(f.caveats, [Caveat::SingleDump]);
            assert_eq!(f.confidence(), Confidence::Medium);
        }
    }

    #[test]
    fn private_memory_outside_the_heaps_dominating_is_no_heap_leak() {
        // The same grown heap beside 8 MB VirtualAlloc'd: the heaps hold less than half.
        for arch in [Arch::Amd64, Arch::X86] {
            let (mut p, _) = with_heap(arch, true);
            p.alloc(8 * MB, PAGE_READWRITE);
            let found = Analysed::exports_only(p).detect(&MemoryLeakProcessHeap);
            assert!(found.is_empty(), "{arch:?}: {found:#?}");
        }
    }

    #[test]
    fn a_heap_that_did_not_grow_is_no_leak() {
        // It holds most of private commit, but in the one segment it was created with.
        for arch in [Arch::Amd64, Arch::X86] {
            let (p, _) = with_heap(arch, false);
            let found = Analysed::exports_only(p).detect(&MemoryLeakProcessHeap);
            assert!(found.is_empty(), "{arch:?}: {found:#?}");
        }
    }

    #[test]
    fn without_a_memory_map_heap_sizes_are_unknown() {
        let (mut p, _) = with_heap(Arch::Amd64, true);
        p.no_memory_info();
        assert!(Analysed::exports_only(p)
            .detect(&MemoryLeakProcessHeap)
            .is_empty());
    }
}
