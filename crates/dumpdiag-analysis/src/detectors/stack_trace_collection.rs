//! Stack Trace Collection: all threads' stacks, identical ones grouped and counted (what
//! `!uniqstack` shows); reported when several threads share a stack.

use std::collections::BTreeMap;

use crate::silent;
use crate::{Detector, Evidence, Finding, Pattern, Strength};

pub struct StackTraceCollection;

impl Detector for StackTraceCollection {
    fn pattern(&self) -> Pattern {
        Pattern::StackTraceCollection
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let mut groups: BTreeMap<Vec<String>, Vec<u32>> = BTreeMap::new();
        for t in ev.threads.iter().filter(|t| !t.frames.is_empty()) {
            groups
                .entry(t.frames.iter().map(|f| f.call_site()).collect())
                .or_default()
                .push(t.id);
        }
        let shared: Vec<(&Vec<String>, &Vec<u32>)> =
            groups.iter().filter(|g| g.1.len() > 1).collect();
        if shared.is_empty() {
            silent!("no two threads have the same stack");
        }
        let evidence = shared
            .iter()
            .map(|(sites, ids)| {
                let app = sites
                    .iter()
                    .find(|s| s.split('!').next().is_some_and(|m| ev.is_app_module(m)))
                    .or(sites.first())
                    .cloned()
                    .unwrap_or_default();
                format!(
                    "{} threads ({}) share the stack through {app}",
                    ids.len(),
                    ids.iter()
                        .map(|i| format!("{i:x}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .collect::<Vec<_>>();

        vec![Finding::new(
            self.pattern(),
            Strength::Possible,
            format!(
                "{} distinct stacks among {} threads",
                groups.len(),
                ev.threads.iter().filter(|t| !t.frames.is_empty()).count()
            ),
        )
        .threads(shared.iter().flat_map(|g| g.1.iter().copied()).collect())
        .notes(evidence)
        .recommend(
            "Identical stacks are usually one kind of worker; !uniqstack lists each stack once.",
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

    /// (process, NtWaitForSingleObject, NtDelayExecution, worker, main, the start frames).
    fn process(arch: Arch) -> (Process, [Func; 4], [Func; 2]) {
        let mut p = Process::new(arch);
        let app = p.module(Module::new("C:\\app\\pool.exe"));
        let ntdll = p.module(Module::new("C:\\Windows\\System32\\ntdll.dll"));
        let kernel32 = p.module(Module::new("C:\\Windows\\System32\\kernel32.dll"));
        let wait = p.add_function(ntdll, Function::syscall("NtWaitForSingleObject", 4));
        let delay = p.add_function(ntdll, Function::syscall("NtDelayExecution", 0x34));
        let worker = p.function(app, "worker", 0x80);
        let main = p.function(app, "main", 0x80);
        let thunk = p.function(kernel32, "BaseThreadInitThunk", 0x40);
        let start = p.function(ntdll, "RtlUserThreadStart", 0x40);
        (p, [wait, delay, worker, main], [thunk, start])
    }

    #[test]
    fn threads_with_one_stack_are_grouped_and_counted() {
        for arch in [Arch::Amd64, Arch::X86] {
            let (mut p, [wait, delay, worker, main], [thunk, start]) = process(arch);
            p.thread(0x10, [delay, main, thunk, start]);
            for id in [0x21, 0x22, 0x23] {
                p.thread(id, [wait, worker, thunk, start]);
            }
            let found = Analysed::exports_only(p).detect(&StackTraceCollection);
            assert_eq!(found.len(), 1, "{arch:?}: {found:#?}");
            let f = &found[0];
            assert_eq!(f.threads, vec![0x21, 0x22, 0x23]);
            assert_eq!(f.summary, "2 distinct stacks among 4 threads");
            assert_eq!(
                f.evidence(),
                vec!["3 threads (21, 22, 23) share the stack through pool!worker".to_string()]
            );
            // Identical stacks are a way to read the dump, not a problem in themselves.
            assert_eq!(f.confidence(), Confidence::Low);
        }
    }

    #[test]
    fn threads_sharing_only_their_outer_frames_are_not_grouped() {
        // Both threads run worker under the same start frames but wait in different system
        // calls: two stacks, nothing shared.
        let (mut p, [wait, delay, worker, _], [thunk, start]) = process(Arch::Amd64);
        p.thread(0x21, [wait, worker, thunk, start]);
        p.thread(0x22, [delay, worker, thunk, start]);
        let found = Analysed::exports_only(p).detect(&StackTraceCollection);
        assert!(found.is_empty(), "{found:#?}");
    }
}
