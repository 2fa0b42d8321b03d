//! Incorrect Stack Trace: frames found by scanning, returns not preceded by a call, frames
//! outside modules or stacks (the walker's checks, as `k` prints them).

use super::stack_issues;
use crate::silent;
use crate::{Detector, Evidence, Fact, Finding, Pattern, Strength};
use dumpdiag_stack::checks::IssueKind;

pub struct IncorrectStackTrace;

/// Issues shown per thread.
const SHOWN_PER_THREAD: usize = 3;

impl Detector for IncorrectStackTrace {
    fn pattern(&self) -> Pattern {
        Pattern::IncorrectStackTrace
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let bad: Vec<(u32, Vec<_>)> = stack_issues(ev)
            .into_iter()
            .map(|(id, issues)| {
                (
                    id,
                    issues
                        .iter()
                        .filter(|i| i.kind() == IssueKind::Incorrect)
                        .collect(),
                )
            })
            .filter(|(_, issues): &(u32, Vec<_>)| !issues.is_empty())
            .collect();
        if bad.is_empty() {
            silent!("no walk has a doubtful frame (scanned, after no call, outside modules or the stack)");
        }
        let facts = bad.iter().flat_map(|(id, issues)| {
            issues
                .iter()
                .take(SHOWN_PER_THREAD)
                .map(move |i| Fact::Thread {
                    id: *id,
                    note: format!("thread {id:x}: {i}"),
                })
        });
        // The checks prove that a frame is doubtful, not that it is wrong.
        vec![Finding::new(
            self.pattern(),
            Strength::Likely,
            format!(
                "{} thread stack(s) have frames that may not be real",
                bad.len()
            ),
        )
        .threads(bad.iter().map(|b| b.0).collect())
        .facts(facts.collect::<Vec<_>>())
        .recommend(
            "Frames found by scanning or returning after no call are guesses: get the modules' \
             images or symbols (-y) so the walk can use unwind data, and check with dps on the \
             raw stack.",
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

    const WORKER: u32 = 0x100;

    /// A process whose thread WORKER waits in an application call chain that ends in the
    /// thread-start frames; `app` is the application's module as declared (left out of the dump,
    /// or not). Returns the process and the chain, innermost first.
    fn waiting(arch: Arch, app: Module) -> (Process, Vec<Func>) {
        let mut p = Process::new(arch);
        let app = p.module(app);
        let ntdll = p.module(Module::new("C:\\Windows\\System32\\ntdll.dll"));
        let kernel32 = p.module(Module::new("C:\\Windows\\System32\\kernel32.dll"));
        let wait = p.add_function(ntdll, Function::syscall("NtWaitForSingleObject", 4));
        let poll = p.function(app, "poll_queue", 0x80);
        let worker = p.function(app, "worker", 0x80);
        let thunk = p.function(kernel32, "BaseThreadInitThunk", 0x40);
        let start = p.function(ntdll, "RtlUserThreadStart", 0x40);
        let chain = vec![wait, poll, worker, thunk, start];
        p.thread(WORKER, chain.clone());
        (p, chain)
    }

    fn app() -> Module {
        Module::new("C:\\app\\queue.exe")
    }

    #[test]
    fn a_return_address_not_preceded_by_a_call_is_reported_with_its_frame() {
        for arch in [Arch::Amd64, Arch::X86] {
            let (mut p, chain) = waiting(arch, app());
            // poll_queue "returns" to worker's call instruction itself rather than after it: the
            // bytes before it are worker's body (`mov rax, [rcx]`), no call. The walk still
            // unwinds worker from there (unwind data on x64, the EBP chain on x86) to the
            // thread's start, so nothing but this check can tell.
            let bogus = chain[2].call_instruction(0);
            let slot = p.frames(WORKER)[1].return_slot;
            p.write_ptr(slot, bogus);
            let found = Analysed::exports_only(p).detect(&IncorrectStackTrace);
            assert_eq!(found.len(), 1, "{arch:?}: {found:#?}");
            let f = &found[0];
            assert_eq!(f.threads, vec![WORKER]);
            let evidence = f.evidence().join("\n");
            assert!(
                evidence.contains(&format!(
                    "frame 02: return address {bogus:#x} is not preceded by a call"
                )),
                "{arch:?}: {evidence}"
            );
            assert!(!evidence.contains("scanning"), "{arch:?}: {evidence}");
            assert_eq!(f.confidence(), Confidence::Medium);
        }
    }

    #[test]
    fn a_frame_found_by_scanning_is_reported() {
        for arch in [Arch::Amd64, Arch::X86] {
            let (p, chain) = match arch {
                // Without the application's image in the dump (and without its symbols) its
                // frames have no unwind data: the x64 walk can only scan for their returns.
                Arch::Amd64 => waiting(arch, app().not_in_dump()),
                // x86 walks the EBP chain without symbols: a zeroed saved EBP (poll_queue's
                // frame holds worker's) leaves worker's frame nowhere to chain to.
                _ => {
                    let (mut p, chain) = waiting(arch, app());
                    let saved_ebp = p.frames(WORKER)[1].fp;
                    p.write_ptr(saved_ebp, 0);
                    (p, chain)
                }
            };
            let a = Analysed::exports_only(p);
            // The scan still finds the right return address: the walk is complete, only guessed.
            let frames = &a.evidence().threads[0].frames;
            let ips: Vec<u64> = frames.iter().map(|f| f.ip).collect();
            let laid_out: Vec<u64> = a.target().frames(0).iter().map(|f| f.ip).collect();
            assert_eq!(ips, laid_out, "{arch:?}");
            assert_eq!(chain.len(), laid_out.len());
            let found = a.detect(&IncorrectStackTrace);
            assert_eq!(found.len(), 1, "{arch:?}: {found:#?}");
            assert_eq!(found[0].threads, vec![WORKER]);
            let evidence = found[0].evidence().join("\n");
            assert!(
                evidence.contains("was found by scanning the stack"),
                "{arch:?}: {evidence}"
            );
        }
    }

    #[test]
    fn an_image_missing_from_the_dump_walks_exactly_with_its_symbols() {
        // The scanning case above, with the application's Breakpad symbols on the symbol path:
        // their STACK CFI rows unwind its frames, nothing is guessed.
        let (p, _) = waiting(Arch::Amd64, app().not_in_dump());
        let a = Analysed::with_symbols(p);
        let frames = &a.evidence().threads[0].frames;
        assert!(frames
            .iter()
            .all(|f| f.trust != dumpdiag_stack::Trust::Scan));
        assert_eq!(frames.len(), 5);
        let found = a.detect(&IncorrectStackTrace);
        assert!(found.is_empty(), "{found:#?}");
    }

    #[test]
    fn an_exact_walk_is_not_reported() {
        for arch in [Arch::Amd64, Arch::X86] {
            let (p, _) = waiting(arch, app());
            let found = Analysed::exports_only(p).detect(&IncorrectStackTrace);
            assert!(found.is_empty(), "{arch:?}: {found:#?}");
        }
    }

    #[test]
    fn the_faulting_instruction_under_the_exception_dispatcher_is_no_bad_return() {
        // A frame under KiUserExceptionDispatcher "returns" to the instruction that faulted
        // (the trap frame's rip/eip), which follows no call: Windows resumes there, so this is
        // a correct frame, not a bad return address.
        for arch in [Arch::Amd64, Arch::X86] {
            let mut p = Process::new(arch);
            let app = p.module(app());
            let ntdll = p.module(Module::new("C:\\Windows\\System32\\ntdll.dll"));
            let kernel32 = p.module(Module::new("C:\\Windows\\System32\\kernel32.dll"));
            let dispatcher = p.function(ntdll, "KiUserExceptionDispatcher", 0x80);
            let parse = p.function(app, "parse", 0x80);
            let thunk = p.function(kernel32, "BaseThreadInitThunk", 0x40);
            let start = p.function(ntdll, "RtlUserThreadStart", 0x40);
            p.thread(WORKER, [dispatcher, parse, thunk, start]);
            let faulting = parse.call_instruction(0);
            let slot = p.frames(WORKER)[0].return_slot;
            p.write_ptr(slot, faulting);
            let a = Analysed::exports_only(p);
            assert_eq!(a.evidence().threads[0].frames[1].ip, faulting, "{arch:?}");
            let found = a.detect(&IncorrectStackTrace);
            assert!(found.is_empty(), "{arch:?}: {found:#?}");
        }
    }

    #[test]
    fn a_walk_that_stops_early_is_truncated_not_incorrect() {
        // Every frame the walk found is real; only the start frames are missing. That is the
        // other pattern (Truncated Stack Trace).
        for arch in [Arch::Amd64, Arch::X86] {
            let mut p = Process::new(arch);
            let app = p.module(app());
            let ntdll = p.module(Module::new("C:\\Windows\\System32\\ntdll.dll"));
            let wait = p.add_function(ntdll, Function::syscall("NtWaitForSingleObject", 4));
            let worker = p.function(app, "worker", 0x80);
            p.thread(WORKER, [wait, worker]);
            let a = Analysed::exports_only(p);
            assert_eq!(a.evidence().threads[0].frames.len(), 2, "{arch:?}");
            assert!(a.detect(&IncorrectStackTrace).is_empty(), "{arch:?}");
        }
    }
}
