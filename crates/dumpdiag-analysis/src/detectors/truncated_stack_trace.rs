//! Truncated Stack Trace: a walk that ends before the thread's start routine with stack left.

use super::stack_issues;
use crate::silent;
use crate::{Detector, Evidence, Fact, Finding, Pattern, Strength};
use dumpdiag_stack::checks::IssueKind;

pub struct TruncatedStackTrace;

impl Detector for TruncatedStackTrace {
    fn pattern(&self) -> Pattern {
        Pattern::TruncatedStackTrace
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let cut: Vec<Fact> = stack_issues(ev)
            .into_iter()
            .filter_map(|(id, issues)| {
                let i = issues.iter().find(|i| i.kind() == IssueKind::Truncated)?;
                Some(Fact::Thread {
                    id,
                    note: format!("thread {id:x}: {i}"),
                })
            })
            .collect();
        if cut.is_empty() {
            silent!("every walk reaches its thread's start frames (or stops at the frame limit)");
        }
        let threads = cut
            .iter()
            .filter_map(|f| {
                if let Fact::Thread { id, .. } = f {
                    Some(*id)
                } else {
                    None
                }
            })
            .collect();
        vec![Finding::new(
            self.pattern(),
            Strength::Likely,
            format!(
                "{} thread stack(s) end before their thread's start routine",
                cut.len()
            ),
        )
        .threads(threads)
        .facts(cut)
        .recommend(
            "The caller frames are missing (no unwind data, missing stack memory, or a corrupted \
             frame): supply images/symbols, or read the rest of the stack with dps.",
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::Analysed;
    use crate::Confidence;
    use dumpdiag_synth::{Func, Function, Module, Process};
    use dumpdiag_target::Arch;

    const COMPLETE: u32 = 0x100;
    const CUT: u32 = 0x200;

    /// The functions of a small process: (process, wait stub, poll_queue, worker, the two
    /// thread-start frames).
    fn process(arch: Arch, app: Module) -> (Process, [Func; 5]) {
        let mut p = Process::new(arch);
        let app = p.module(app);
        let ntdll = p.module(Module::new("C:\\Windows\\System32\\ntdll.dll"));
        let kernel32 = p.module(Module::new("C:\\Windows\\System32\\kernel32.dll"));
        let wait = p.add_function(ntdll, Function::syscall("NtWaitForSingleObject", 4));
        let poll = p.function(app, "poll_queue", 0x80);
        let worker = p.function(app, "worker", 0x80);
        let thunk = p.function(kernel32, "BaseThreadInitThunk", 0x40);
        let start = p.function(ntdll, "RtlUserThreadStart", 0x40);
        (p, [wait, poll, worker, thunk, start])
    }

    fn app() -> Module {
        Module::new("C:\\app\\queue.exe")
    }

    #[test]
    fn a_walk_ending_before_the_start_frames_with_stack_left_is_truncated() {
        for arch in [Arch::Amd64, Arch::X86] {
            let (mut p, [wait, poll, worker, thunk, start]) = process(arch, app());
            p.thread(COMPLETE, [wait, poll, worker, thunk, start]);
            // The chain stops at worker: its return slot holds 0, as an overwritten return
            // address leaves it, and the walk cannot go on above it.
            p.thread(CUT, [wait, poll, worker]);
            let a = Analysed::exports_only(p);
            let cut = &a.evidence().threads[1];
            assert_eq!(cut.frames.len(), 3, "{arch:?}");
            let found = a.detect(&TruncatedStackTrace);
            assert_eq!(found.len(), 1, "{arch:?}: {found:#?}");
            let f = &found[0];
            assert_eq!(f.threads, vec![CUT], "{arch:?}");
            assert!(f.summary.starts_with("1 thread stack(s)"), "{}", f.summary);
            let evidence = f.evidence().join("\n");
            assert!(
                evidence.contains("thread 200: the walk ends in queue!worker+0x"),
                "{evidence}"
            );
            assert!(evidence.contains("bytes of stack left"), "{evidence}");
            assert_eq!(f.confidence(), Confidence::Medium);
        }
    }

    #[test]
    fn complete_walks_are_not_truncated() {
        for arch in [Arch::Amd64, Arch::X86] {
            let (mut p, chain) = process(arch, app());
            p.thread(COMPLETE, chain);
            let found = Analysed::exports_only(p).detect(&TruncatedStackTrace);
            assert!(found.is_empty(), "{arch:?}: {found:#?}");
        }
    }

    #[test]
    fn a_walk_that_scans_its_way_to_the_start_frames_is_not_truncated() {
        // Without the application's image (nor symbols) the x64 walk scans for the returns of
        // its frames: doubtful frames (Incorrect Stack Trace), but it reaches
        // RtlUserThreadStart, so nothing is cut.
        let (mut p, chain) = process(Arch::Amd64, app().not_in_dump());
        p.thread(COMPLETE, chain);
        let a = Analysed::exports_only(p);
        let frames = &a.evidence().threads[0].frames;
        assert!(frames
            .iter()
            .any(|f| f.trust == dumpdiag_stack::Trust::Scan));
        assert_eq!(frames.len(), 5);
        assert!(a.detect(&TruncatedStackTrace).is_empty());
    }
}
