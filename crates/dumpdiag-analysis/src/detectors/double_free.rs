//! Double Free: the heap manager failed on a free — its failure-reporting frames
//! (RtlpLogHeapFailure, RtlReportCriticalFailure, RtlpHeapHandleError, the page heap's and
//! verifier's block reports) above a free call (RtlFreeHeap, HeapFree, free, operator delete),
//! or STATUS_HEAP_CORRUPTION raised with a free call on the stack. Windows' heap terminates the
//! process that way when a block that is not busy is freed again (tests/double_free_windows_shape.rs
//! in the dumpdiag crate walks a dump of that shape). Wine's heap fails such a free silently: the
//! double_free fixture shows that nothing is reported then.

use super::exception_thread;
use crate::evidence::FrameView;
use crate::{Detector, Evidence, Fact, Finding, Pattern, Strength};

pub struct DoubleFree;

/// Frames that report a heap failure.
const FAILURE_REPORTS: &[&str] = &[
    "RtlpLogHeapFailure",
    "RtlReportCriticalFailure",
    "RtlpHeapHandleError",
    "RtlpHpHeapHandleError",
    "RtlpReportHeapFailure",
    "AVrfpDphReportCorruptedBlock",
    "RtlpDphReportCorruptedBlock",
    "VerifierStopMessage",
];
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
    "_free_base",
    "_free_dbg",
    "_free_crt",
    "operator delete",
    "operator delete[]",
];

const STATUS_HEAP_CORRUPTION: u32 = 0xc0000374;

fn named(f: &FrameView) -> &str {
    f.function
        .as_deref()
        .map(|n| n.split('(').next().unwrap_or(n).trim())
        .unwrap_or("")
}

/// The signs in one stack (top frame first): (failure frame, free frame) indices, or only a free
/// frame when the exception code is STATUS_HEAP_CORRUPTION.
pub fn double_free_signs(
    code: Option<u32>,
    frames: &[FrameView],
) -> Option<(Option<usize>, usize)> {
    let failure = frames
        .iter()
        .position(|f| FAILURE_REPORTS.contains(&named(f)));
    let free_after = |from: usize| {
        frames
            .iter()
            .enumerate()
            .skip(from)
            .find(|(_, f)| FREE_CALLS.contains(&named(f)))
            .map(|(i, _)| i)
    };
    match failure {
        Some(i) => free_after(i + 1).map(|j| (Some(i), j)),
        None if code == Some(STATUS_HEAP_CORRUPTION) => free_after(0).map(|j| (None, j)),
        None => None,
    }
}

impl Detector for DoubleFree {
    fn pattern(&self) -> Pattern {
        Pattern::DoubleFree
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let Some(e) = &ev.exception else {
            return Vec::new();
        };
        let frames = ev.exception_frames();
        let Some((failure, free)) = double_free_signs(Some(e.record.code), frames) else {
            return Vec::new();
        };
        let caller = frames
            .iter()
            .skip(free + 1)
            .find(|f| f.module.as_deref().is_some_and(|m| ev.is_app_module(m)))
            .map(|f| f.call_site());
        let tid = e.thread_id;
        let frame = |index: usize| Fact::Frame {
            thread: tid,
            index,
            frame: frames[index].clone(),
        };
        let mut facts = vec![Fact::Note(format!(
            "exception {:08x} on thread {tid:x}",
            e.record.code
        ))];
        if let Some(i) = failure {
            facts.push(frame(i));
            facts.push(Fact::Note(format!(
                "{} reports a heap failure",
                frames[i].call_site()
            )));
        }
        facts.push(frame(free));
        facts.push(Fact::Note(format!(
            "{} frees the block",
            frames[free].call_site()
        )));
        if let Some(c) = &caller {
            facts.push(Fact::Note(format!("the free was called by {c}")));
        }
        vec![Finding::new(self.pattern(), Strength::Likely, format!("the heap failed while freeing a block{}", caller.map(|c| format!(" for {c}")).unwrap_or_default()))
            .threads(exception_thread(ev))
            .caveats_of_frames(&frames[..=free])
            .facts(facts)
            .recommend("Find the earlier free of the same block: enable full page heap (gflags /p /enable app.exe /full) and user-mode stack traces (+ust) so the second free breaks with the first free's stack.")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dumpdiag_stack::Trust;

    fn frames(names: &[&str]) -> Vec<FrameView> {
        names
            .iter()
            .map(|n| {
                let (m, f) = n.split_once('!').unwrap();
                FrameView {
                    ip: 0,
                    module: Some(m.into()),
                    function: Some(f.into()),
                    offset: 0,
                    source: None,
                    trust: Trust::UnwindInfo,
                    symbol_kind: None,
                }
            })
            .collect()
    }

    #[test]
    fn a_heap_failure_above_a_free_is_a_double_free() {
        // The shape of Windows 10's NT-heap termination on freeing a block that is not busy.
        let f = frames(&[
            "ntdll!RtlReportCriticalFailure",
            "ntdll!RtlpHeapHandleError",
            "ntdll!RtlpHpHeapHandleError",
            "ntdll!RtlpLogHeapFailure",
            "ntdll!RtlpFreeHeapInternal",
            "ntdll!RtlFreeHeap",
            "ucrtbase!_free_base",
            "app!release_buffer",
        ]);
        assert_eq!(double_free_signs(Some(0xc0000374), &f), Some((Some(0), 4)));
    }

    #[test]
    fn heap_corruption_with_a_free_on_the_stack_counts_without_failure_frames() {
        let f = frames(&["ntdll!RtlpFreeHeap", "kernelbase!HeapFree", "app!main"]);
        assert_eq!(double_free_signs(Some(0xc0000374), &f), Some((None, 0)));
    }

    #[test]
    fn a_failure_on_an_allocation_or_a_fault_in_free_is_not_a_double_free() {
        let alloc = frames(&[
            "ntdll!RtlReportCriticalFailure",
            "ntdll!RtlpLogHeapFailure",
            "ntdll!RtlpAllocateHeapInternal",
            "ntdll!RtlAllocateHeap",
            "app!main",
        ]);
        assert_eq!(double_free_signs(Some(0xc0000374), &alloc), None);
        let fault_in_free = frames(&["ntdll!RtlFreeHeap", "kernelbase!HeapFree", "app!main"]);
        assert_eq!(double_free_signs(Some(0xc0000005), &fault_in_free), None);
    }
}
