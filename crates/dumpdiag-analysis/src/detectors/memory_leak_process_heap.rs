//! Memory Leak (Process Heap): heap memory that dominates the process — a large committed total,
//! concentrated in one heap that kept adding segments. Sized from the MemoryInfoList with the
//! heaps found by their headers (dumpdiag_os::heaps, once for the session's address map); the process's VM counters back it up when
//! the dump has them. One dump shows size, not growth: the finding says so. Block-size
//! histograms need the heap walkers of a later stage.

use crate::{Detector, Evidence, Finding, Pattern, Strength};
use dumpdiag_target::{MEM_COMMIT, MEM_PRIVATE};

pub struct MemoryLeakProcessHeap;

/// Heap commit worth reporting, and the share of the process's private commit it must hold.
const MIN_HEAP_COMMIT: u64 = 32 << 20;
const MIN_SHARE_OF_PRIVATE: f64 = 0.4;

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
            return Vec::new();
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
            return Vec::new();
        };
        let share = heap_commit as f64 / private_commit.max(1) as f64;
        if heap_commit < MIN_HEAP_COMMIT || share < MIN_SHARE_OF_PRIVATE {
            return Vec::new();
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
            self.pattern(), Strength::Likely,
            format!("heap {:#x} holds {} ({:.0}% of all heap commit)", top.base, mb(top.committed()), 100.0 * top.committed() as f64 / heap_commit as f64),
        )
        .notes(evidence)
        .recommend("Take a second dump later: heap commit that keeps growing is a leak. Then find the allocating code (UMDH or heap stack traces with gflags +ust, or the size histogram of !heap -stat -h).")]
    }
}
