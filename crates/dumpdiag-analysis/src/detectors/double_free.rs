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
