//! Double Free: a block freed twice, shown by the heap manager's own verdict. When Windows' heap
//! finds a freed block that is not busy (NT heap) or whose LFH bit is already clear (segment
//! heap), RtlpLogHeapFailure records `block_not_busy` / `segment_lfh_double_free` in
//! `ntdll!RtlpHeapFailureInfo` and the process is terminated with STATUS_HEAP_CORRUPTION, whose
//! only parameter points to that record (heap-internals brief §4). The record says which block
//! and which heap; the free call on the stack says who freed it. A corruption found while
//! freeing (a damaged header, a broken free list) is not a double free: the Dynamic Memory
//! Corruption detector reports it.

use super::{exception_thread, heap_failure};
use crate::evidence::FrameView;
use crate::{silent, Detector, Evidence, Fact, Finding, Pattern, Strength};

pub struct DoubleFree;

/// Frames that free a block.
const FREE_CALLS: &[&str] = &[
    "RtlFreeHeap",
    "RtlpFreeHeap",
    "RtlpFreeHeapInternal",
    "RtlpHpFreeHeap",
    "RtlDebugFreeHeap",
    "RtlpDphNormalHeapFree",
    "RtlpDphFreeHeap",
    "HeapFree",
    "free",
    "free_base",
    "free_dbg",
    "free_crt",
    "operator delete",
    "operator delete[]",
];

/// The first free call of a stack (top frame first).
pub fn free_frame(frames: &[FrameView]) -> Option<usize> {
    frames.iter().position(|f| f.is_one_of(FREE_CALLS))
}

impl Detector for DoubleFree {
    fn pattern(&self) -> Pattern {
        Pattern::DoubleFree
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let Some(e) = &ev.exception else {
            silent!("no exception")
        };
        let Some(failure) = heap_failure(ev) else {
            silent!("no heap failure record (STATUS_HEAP_CORRUPTION's parameter) in the dump");
        };
        if !failure.is_double_free() {
            silent!(
                "the heap failure is {}, not a block freed twice",
                failure.name
            );
        }
        let frames = ev.exception_frames();
        let free = free_frame(frames);
        let caller = free.and_then(|i| {
            frames
                .iter()
                .skip(i + 1)
                .find(|f| f.module.as_deref().is_some_and(|m| ev.is_app_module(m)))
        });
        let mut facts = vec![Fact::Memory {
            address: failure.address,
            note: format!(
                "heap failure {} ({}) for block {:#x} of heap {:#x}",
                failure.failure_type, failure.name, failure.address, failure.heap
            ),
        }];
        if let Some(i) = free {
            facts.push(Fact::Frame {
                thread: e.thread_id,
                index: i,
                frame: frames[i].clone(),
            });
        }
        if let Some(c) = caller {
            facts.push(Fact::Note(format!(
                "the second free was called by {}",
                c.call_site()
            )));
        }
        vec![Finding::new(
            self.pattern(),
            Strength::Proven,
            format!(
                "block {:#x} was freed twice{}",
                failure.address,
                caller
                    .map(|c| format!(" (the second time by {})", c.call_site()))
                    .unwrap_or_default()
            ),
        )
        .threads(exception_thread(ev))
        .facts(facts)
        .recommend(
            "Find the earlier free of the same block: enable full page heap (gflags /p /enable \
             app.exe /full) and user-mode stack traces (+ust) so the second free breaks with the \
             first free's stack.",
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::heap_corruption::HeapCorruption;
    use crate::test_support::{heap_failure, Analysed};
    use crate::Confidence;
    use dumpdiag_synth::Exception;
    use dumpdiag_target::Arch;

    const HEAP_CORRUPTION: u32 = 0xc000_0374;

    #[test]
    fn the_heaps_block_not_busy_verdict_is_a_double_free() {
        for arch in [Arch::Amd64, Arch::X86] {
            // block_not_busy (8): the NT heap found the block already free; the segment heap's
            // LFH says segment_lfh_double_free (17).
            for (kind, name) in [(8, "block_not_busy"), (17, "segment_lfh_double_free")] {
                let (p, block, heap, _) = heap_failure(arch, kind);
                let found = Analysed::exports_only(p).detect(&DoubleFree);
                assert_eq!(found.len(), 1, "{arch:?} {name}");
                let f = &found[0];
                assert_eq!(
                    f.summary,
                    format!("block {block:#x} was freed twice (the second time by orders!release_order)")
                );
                assert_eq!(f.threads, [0x100]);
                let evidence = f.evidence();
                assert_eq!(
                    evidence[0],
                    format!("heap failure {kind} ({name}) for block {block:#x} of heap {heap:#x}")
                );
                assert!(
                    evidence[1].starts_with("thread 100 frame 02: ntdll!RtlpFreeHeapInternal"),
                    "{evidence:?}"
                );
                assert_eq!(
                    evidence[2],
                    "the second free was called by orders!release_order"
                );
                assert_eq!(f.confidence(), Confidence::High);
            }
        }
    }

    #[test]
    fn a_corruption_found_while_freeing_is_not_a_double_free() {
        for arch in [Arch::Amd64, Arch::X86] {
            // entry_corruption (3): a damaged block header, Dynamic Memory Corruption's.
            let (p, _, _, _) = heap_failure(arch, 3);
            let a = Analysed::exports_only(p);
            assert!(a.detect(&DoubleFree).is_empty(), "{arch:?}");
            assert_eq!(a.detect(&HeapCorruption).len(), 1, "{arch:?}");
        }
    }

    #[test]
    fn without_the_failure_record_a_heap_failure_on_free_is_no_proof() {
        for arch in [Arch::Amd64, Arch::X86] {
            // The parameter is missing.
            let (mut p, _, _, _) = heap_failure(arch, 8);
            let mut e = Exception::new(0x100, HEAP_CORRUPTION);
            e.flags = 1;
            p.exception(e);
            assert!(Analysed::exports_only(p).detect(&DoubleFree).is_empty());
            // It points to a record whose StructureSize is not this bitness's (0x6d0 on x64,
            // 0x3d0 on x86).
            let (mut p, _, _, at) = heap_failure(arch, 8);
            let other = if arch == Arch::Amd64 { 0x3d0 } else { 0x6d0 };
            p.write_u32(at + 4, other);
            assert!(Analysed::exports_only(p).detect(&DoubleFree).is_empty());
        }
    }
}
