//! Dynamic Memory Corruption (Process Heap): c0000374, or a fault inside the heap manager.

use super::{exception_thread, top_frames};
use crate::{Detector, Evidence, Fact, Finding, Pattern, Strength};
use dumpdiag_os::codes;

pub struct HeapCorruption;

impl Detector for HeapCorruption {
    fn pattern(&self) -> Pattern {
        Pattern::HeapCorruption
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let Some(e) = &ev.exception else {
            return Vec::new();
        };
        let heap_frame = super::heap_manager_frame(ev);
        // STATUS_HEAP_CORRUPTION is raised only by the heap manager's own checks (RtlpLogHeapFailure
        // → RtlReportCriticalFailure): proof. An access violation inside the heap code usually
        // means metadata it followed was overwritten, but a wild pointer passed in does the same.
        let (why, strength) = if e.record.code == codes::HEAP_CORRUPTION {
            (
                "STATUS_HEAP_CORRUPTION (c0000374)".to_string(),
                Strength::Proven,
            )
        } else if let (codes::ACCESS_VIOLATION, Some(f)) = (e.record.code, heap_frame) {
            let why = format!(
                "access violation inside the heap manager ({})",
                f.call_site()
            );
            (why, Strength::Likely)
        } else {
            return Vec::new();
        };
        let caller = ev
            .exception_frames()
            .iter()
            .find(|f| f.module.as_deref().is_some_and(|m| ev.is_app_module(m)))
            .map(|f| f.call_site())
            .unwrap_or_else(|| "unknown".into());
        let mut facts = vec![
            Fact::Note(why.clone()),
            Fact::Note(format!("heap call made by {caller}")),
        ];
        // The heap manager's own record names what it found and where.
        let failure = super::heap_failure(ev);
        if let Some(f) = &failure {
            facts.insert(
                0,
                Fact::Memory {
                    address: f.address,
                    note: format!(
                        "heap failure {} ({}) for block {:#x} of heap {:#x}",
                        f.failure_type, f.name, f.address, f.heap
                    ),
                },
            );
        }
        facts.extend(top_frames(ev, 4));
        let what = failure
            .map(|f| format!(" ({} at {:#x})", f.name, f.address))
            .unwrap_or_default();
        vec![Finding::new(self.pattern(), strength, format!("heap metadata is corrupted: {why}{what}"))
            .threads(exception_thread(ev))
            .facts(facts)

            .recommend("The block passed in (or a neighbour) was overwritten earlier; reproduce with full page heap (gflags /p /enable app.exe /full) to catch the write itself.")]
    }
}
