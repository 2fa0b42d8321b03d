//! Dynamic Memory Corruption (Process Heap): c0000374, or a fault inside the heap manager.

use super::{exception_thread, top_frames};
use crate::{silent, Detector, Evidence, Fact, Finding, Pattern, Strength};
use dumpdiag_os::codes;

pub struct HeapCorruption;

impl Detector for HeapCorruption {
    fn pattern(&self) -> Pattern {
        Pattern::HeapCorruption
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let Some(e) = &ev.exception else {
            silent!("the dump has no exception stream");
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
            silent!(
                code = format!("{:08x}", e.record.code),
                "neither STATUS_HEAP_CORRUPTION nor an access violation inside the heap manager"
            );
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{heap_failure, Analysed};
    use crate::Confidence;
    use dumpdiag_synth::{Exception, Func, Module, Process};
    use dumpdiag_target::Arch;

    const ACCESS_VIOLATION: u32 = 0xc000_0005;

    #[test]
    fn status_heap_corruption_is_the_heaps_own_verdict_with_its_record() {
        for arch in [Arch::Amd64, Arch::X86] {
            // entry_corruption (3): a damaged block header found while freeing.
            let (p, block, heap, _) = heap_failure(arch, 3);
            let found = Analysed::exports_only(p).detect(&HeapCorruption);
            assert_eq!(found.len(), 1, "{arch:?}");
            let f = &found[0];
            assert_eq!(
                f.summary,
                format!(
                    "heap metadata is corrupted: STATUS_HEAP_CORRUPTION (c0000374) \
                     (entry_corruption at {block:#x})"
                )
            );
            assert_eq!(
                f.evidence()[..3],
                [
                    format!(
                        "heap failure 3 (entry_corruption) for block {block:#x} of heap {heap:#x}"
                    ),
                    "STATUS_HEAP_CORRUPTION (c0000374)".to_string(),
                    "heap call made by orders!release_order".to_string(),
                ]
            );
            assert_eq!(f.threads, [0x100]);
            assert_eq!(f.confidence(), Confidence::High);
            // Without the record the code alone still proves it.
            let (mut p, _, _, _) = heap_failure(arch, 3);
            p.exception(Exception::new(0x100, 0xc000_0374));
            let found = Analysed::exports_only(p).detect(&HeapCorruption);
            assert_eq!(found.len(), 1);
            assert_eq!(
                found[0].summary,
                "heap metadata is corrupted: STATUS_HEAP_CORRUPTION (c0000374)"
            );
        }
    }

    /// Thread 0x100 faulting on a read of a bad pointer: inside RtlpFreeHeap (called by
    /// orders!release_order through RtlFreeHeap) when `in_heap`, else in release_order itself.
    fn access_violation(arch: Arch, in_heap: bool) -> Analysed {
        let mut p = Process::new(arch);
        let app = p.module(Module::new("C:\\app\\orders.exe"));
        let ntdll = p.module(Module::new("C:\\Windows\\System32\\ntdll.dll"));
        let heap: [Func; 2] = [
            p.function(ntdll, "RtlpFreeHeap", 0x80),
            p.function(ntdll, "RtlFreeHeap", 0x80),
        ];
        let rest: [Func; 3] = [
            p.function(app, "release_order", 0x80),
            p.function(app, "main", 0x80),
            p.function(ntdll, "RtlUserThreadStart", 0x40),
        ];
        let mut chain = if in_heap { heap.to_vec() } else { Vec::new() };
        chain.extend(rest);
        p.thread(0x100, chain);
        let mut e = Exception::new(0x100, ACCESS_VIOLATION);
        e.parameters = vec![0, 0x0300_0010];
        p.exception(e);
        Analysed::exports_only(p)
    }

    #[test]
    fn an_access_violation_inside_the_heap_manager_is_likely_corruption() {
        for arch in [Arch::Amd64, Arch::X86] {
            let found = access_violation(arch, true).detect(&HeapCorruption);
            assert_eq!(found.len(), 1, "{arch:?}");
            let f = &found[0];
            assert_eq!(
                f.summary,
                "heap metadata is corrupted: access violation inside the heap manager \
                 (ntdll!RtlpFreeHeap)"
            );
            assert_eq!(f.evidence()[1], "heap call made by orders!release_order");
            // A wild pointer passed in does the same: likely, not proven.
            assert_eq!(f.confidence(), Confidence::Medium);
        }
    }

    #[test]
    fn an_access_violation_in_the_application_is_not_heap_corruption() {
        for arch in [Arch::Amd64, Arch::X86] {
            let found = access_violation(arch, false).detect(&HeapCorruption);
            assert!(found.is_empty(), "{arch:?}: {found:#?}");
        }
    }
}
