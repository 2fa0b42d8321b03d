//! Dynamic Memory Corruption (Process Heap): c0000374, or a fault inside the heap manager.

use super::{exception_thread, top_frames};
use crate::{Detector, Evidence, Finding};

pub struct HeapCorruption;

const HEAP_FUNCTIONS: &[&str] = &[
    "RtlFreeHeap",
    "RtlAllocateHeap",
    "RtlReAllocateHeap",
    "RtlpFreeHeap",
    "RtlpAllocateHeap",
    "RtlReportCriticalFailure",
    "RtlpHeapHandleError",
    "RtlpLogHeapFailure",
    "HeapFree",
    "HeapAlloc",
    "HeapReAlloc",
    "RtlSizeHeap",
];

impl Detector for HeapCorruption {
    fn pattern(&self) -> &'static str {
        "Dynamic Memory Corruption (Process Heap)"
    }
    fn category(&self) -> &'static str {
        "Dynamic Memory Corruption"
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let Some(e) = &ev.exception else {
            return Vec::new();
        };
        let heap_frame = ev.exception_frames.iter().take(6).find(|f| {
            f.function.as_deref().is_some_and(|n| {
                HEAP_FUNCTIONS.contains(&n) || n.starts_with("Rtlp") && n.contains("Heap")
            })
        });
        let why = if e.record.code == 0xc0000374 {
            "STATUS_HEAP_CORRUPTION (c0000374)".to_string()
        } else if let (0xc0000005, Some(f)) = (e.record.code, heap_frame) {
            format!(
                "access violation inside the heap manager ({})",
                f.call_site()
            )
        } else {
            return Vec::new();
        };
        let caller = ev
            .exception_frames
            .iter()
            .find(|f| f.module.as_deref().is_some_and(|m| ev.is_app_module(m)))
            .map(|f| f.call_site())
            .unwrap_or_else(|| "unknown".into());
        let mut evidence = vec![why.clone(), format!("heap call made by {caller}")];
        evidence.extend(top_frames(ev, 4));
        vec![Finding::new(self.pattern(), self.category(), "high", format!("heap metadata is corrupted: {why}"))
            .threads(exception_thread(ev))
            .evidence(evidence)
            .recommend("The block passed in (or a neighbour) was overwritten earlier; reproduce with full page heap (gflags /p /enable app.exe /full) to catch the write itself.")]
    }
}
