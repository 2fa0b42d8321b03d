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
