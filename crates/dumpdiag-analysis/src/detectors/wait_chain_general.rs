//! Wait Chain (General): waits followed through kernel objects and critical sections to where
//! they end — a mutex's owner waiting for an event, a thread waiting for another thread that
//! waits for a lock. Each chain is reported once, from the thread nobody waits for, with its
//! end named (an event or semaphore nobody owns: the thread that should signal it decides).
//! Chains made of critical sections only are Wait Chain (Critical Sections); chains that run
//! into a cycle are the deadlock detectors'.

use crate::waits::{chains, ChainEnd};
use crate::{silent, Detector, Evidence, Fact, Finding, Pattern, Strength};

pub struct WaitChainGeneral;

impl Detector for WaitChainGeneral {
    fn pattern(&self) -> Pattern {
        Pattern::WaitChainGeneral
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        if !super::taken_on_purpose(ev) {
            silent!("a crash dump: every thread was stopped by the crash");
        }
        let found: Vec<Finding> = chains(ev.waits())
            .into_iter()
            .filter(|c| c.links.len() >= 2 && c.end != ChainEnd::Cycle)
            .filter(|c| c.links.iter().any(|w| !w.object.is_critical_section()))
            .map(|c| {
                let last = c.links[c.links.len() - 1];
                let path: Vec<String> = c.links.iter().map(|w| w.describe()).collect();
                let mut threads: Vec<u32> = c.links.iter().map(|w| w.thread).collect();
                threads.dedup();
                Finding::new(
                    self.pattern(),
                    Strength::Likely,
                    format!("{}; {}", path.join(", whose owner "), c.end.describe(last)),
                )
                .threads(threads)
                .facts(c.links.iter().map(|w| Fact::Wait((*w).clone())))
                .notes([format!("the chain ends: {}", c.end.describe(last))])
                .recommend(
                    "The last thread of the chain decides the wait of all the others: find why it \
                     does not release what it holds, or who should signal what it waits for.",
                )
            })
            .collect();
        if found.is_empty() {
            silent!("no chain of two or more waits through kernel objects");
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{Analysed, Bitness, Waits};
    use crate::Confidence;

    /// 0x100 waits for the job-queue mutex; its owner 0x200 waits for an event nobody owns.
    /// Returns the process and the mutex's and the event's handles.
    fn chain(b: Bitness) -> (Waits, u64, u64) {
        let mut w = Waits::new(b);
        let queue = w.mutex("\\BaseNamedObjects\\JobQueue", Some(0x200));
        let flushed = w.event(Some("\\BaseNamedObjects\\FlushDone"));
        w.wait_single(0x100, queue, "enqueue_job");
        w.wait_single(0x200, flushed, "flush_queue");
        (w, queue, flushed)
    }

    #[test]
    fn a_mutex_whose_owner_waits_for_an_event_is_one_chain_ending_at_the_event() {
        for b in [Bitness::X64, Bitness::X86, Bitness::Wow64] {
            let (w, queue, flushed) = chain(b);
            let found = Analysed::exports_only(w.p).detect(&WaitChainGeneral);
            assert_eq!(found.len(), 1, "{b:?}: {found:#?}");
            let f = &found[0];
            let event =
                format!("Event \\BaseNamedObjects\\FlushDone (handle {flushed:#x}, not signaled)");
            let end = format!("nobody owns {event}: the thread that should signal it decides");
            assert_eq!(
                f.summary,
                format!(
                    "thread 100 waits for Mutant \\BaseNamedObjects\\JobQueue (handle \
                     {queue:#x}, held by thread 200), whose owner thread 200 waits for \
                     {event}; {end}"
                ),
                "{b:?}"
            );
            assert_eq!(f.threads, [0x100, 0x200]);
            assert_eq!(
                f.evidence().last().cloned(),
                Some(format!("the chain ends: {end}"))
            );
            assert_eq!(f.confidence(), Confidence::Medium);
        }
    }

    #[test]
    fn a_single_wait_is_no_chain() {
        for b in [Bitness::X64, Bitness::X86] {
            let mut w = Waits::new(b);
            let flushed = w.event(Some("\\BaseNamedObjects\\FlushDone"));
            w.wait_single(0x200, flushed, "flush_queue");
            let queue = w.mutex("\\BaseNamedObjects\\JobQueue", Some(0x300));
            w.wait_single(0x100, queue, "enqueue_job");
            // 0x300 holds the mutex and runs: one wait, then a thread that is not waiting.
            w.run(0x300, "compress");
            let found = Analysed::exports_only(w.p).detect(&WaitChainGeneral);
            assert!(found.is_empty(), "{b:?}: {found:#?}");
        }
    }

    #[test]
    fn a_chain_that_runs_into_a_cycle_is_left_to_the_deadlock_detectors() {
        // 0x300 waits for a mutex 0x100 holds; 0x100 waits for a mutex 0x200 holds, and 0x200
        // waits for 0x100 to end.
        for b in [Bitness::X64, Bitness::X86] {
            let mut w = Waits::new(b);
            let held_by_100 = w.mutex("\\BaseNamedObjects\\Config", Some(0x100));
            let held_by_200 = w.mutex("\\BaseNamedObjects\\Cache", Some(0x200));
            w.wait_single(0x100, held_by_200, "refresh");
            let first = w.thread_handle(0x100);
            w.wait_single(0x200, first, "join_refresher");
            w.wait_single(0x300, held_by_100, "read_config");
            let a = Analysed::exports_only(w.p);
            assert_eq!(a.evidence().waits().len(), 3, "{b:?}");
            let found = a.detect(&WaitChainGeneral);
            assert!(found.is_empty(), "{b:?}: {found:#?}");
        }
    }

    #[test]
    fn in_a_crash_dump_the_same_chain_is_not_reported() {
        let (mut w, _, _) = chain(Bitness::X64);
        w.crash(0x900, "parse_reply");
        assert!(Analysed::exports_only(w.p)
            .detect(&WaitChainGeneral)
            .is_empty());
    }
}
