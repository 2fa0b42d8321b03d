//! Wait Chain (Critical Sections): a critical-section wait whose owner waits for another
//! critical section, followed to the last owner (the one not waiting on a section). Reported
//! once per chain, from the thread nobody waits for, in dumps taken on purpose only (in a crash
//! dump every thread was stopped by the crash).

use crate::waits::{chains, ChainEnd};
use crate::{silent, Detector, Evidence, Fact, Finding, Pattern, Strength};

pub struct WaitChainCriticalSections;

impl Detector for WaitChainCriticalSections {
    fn pattern(&self) -> Pattern {
        Pattern::WaitChainCriticalSections
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        // A crash dump is written while the faulting thread goes through the unhandled-exception
        // path (WER, a JIT debugger) with every other thread stopped wherever it was: a thread
        // inside RtlEnterCriticalSection then is ordinary contention caught mid-flight, its owner
        // as likely to release the section a moment later. A chain is hang evidence only in a
        // dump taken on purpose, as Wait Chain (General) says; a cycle never resolves and is the
        // deadlock detectors' in any dump.
        if !super::taken_on_purpose(ev) {
            silent!("a crash dump: every thread was stopped by the crash");
        }
        let found: Vec<Finding> = chains(ev.waits())
            .into_iter()
            .filter(|c| c.links.len() >= 2 && c.end != ChainEnd::Cycle)
            .filter(|c| c.links.iter().all(|w| w.object.is_critical_section()))
            .map(|c| {
                let last = c.links[c.links.len() - 1];
                let threads: Vec<u32> = c
                    .links
                    .iter()
                    .map(|w| w.thread)
                    .chain(last.blocker)
                    .collect();
                let names: Vec<String> = c.links.iter().filter_map(|w| w.object.name()).collect();
                // Each link is read from the lock structure itself (owner thread ids).
                Finding::new(
                    self.pattern(),
                    Strength::Proven,
                    format!(
                        "threads {} wait in a chain of critical sections ({}); {}",
                        threads
                            .iter()
                            .map(|t| format!("{t:x}"))
                            .collect::<Vec<_>>()
                            .join(" -> "),
                        names.join(", "),
                        c.end.describe(last)
                    ),
                )
                .threads(threads)
                .facts(c.links.iter().map(|w| Fact::Wait((*w).clone())))
                .recommend(
                    "Follow the chain to the last owner (the one not waiting on a critical \
                     section): what it does decides the wait of all the others.",
                )
            })
            .collect();
        if found.is_empty() {
            silent!("no chain of two or more critical-section waits");
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{Analysed, Bitness, Waits};
    use crate::Confidence;

    /// 0x100 enters g_accounts_lock, owned by 0x200, which enters g_ledger_lock, owned by
    /// 0x300, which sleeps. Returns the process and the two sections.
    fn chain(b: Bitness) -> (Waits, u64, u64) {
        let mut w = Waits::new(b);
        let accounts = w.lock("g_accounts_lock", 0x200);
        let ledger = w.lock("g_ledger_lock", 0x300);
        w.enter(0x100, accounts, "transfer");
        w.enter(0x200, ledger, "post_entry");
        w.sleep(0x300, "archive_ledger");
        (w, accounts, ledger)
    }

    #[test]
    fn three_threads_through_two_sections_to_a_sleeping_owner_are_a_chain() {
        for b in [Bitness::X64, Bitness::X86, Bitness::Wow64] {
            let (w, accounts, ledger) = chain(b);
            let found = Analysed::exports_only(w.p).detect(&WaitChainCriticalSections);
            assert_eq!(found.len(), 1, "{b:?}: {found:#?}");
            let f = &found[0];
            assert_eq!(
                f.summary,
                "threads 100 -> 200 -> 300 wait in a chain of critical sections \
                 (service!g_accounts_lock, service!g_ledger_lock); thread 300 waits on no \
                 object the dump resolves"
            );
            assert_eq!(f.threads, [0x100, 0x200, 0x300]);
            assert_eq!(
                f.evidence(),
                [
                    format!(
                        "thread 100 waits for critical section service!g_accounts_lock \
                         ({accounts:#x}) owned by thread 200"
                    ),
                    format!(
                        "thread 200 waits for critical section service!g_ledger_lock \
                         ({ledger:#x}) owned by thread 300"
                    ),
                ],
                "{b:?}"
            );
            assert_eq!(f.confidence(), Confidence::High);
        }
    }

    #[test]
    fn a_single_section_wait_or_a_cycle_is_no_chain() {
        for b in [Bitness::X64, Bitness::X86] {
            let mut w = Waits::new(b);
            let accounts = w.lock("g_accounts_lock", 0x200);
            w.enter(0x100, accounts, "transfer");
            w.sleep(0x200, "archive_ledger");
            let found = Analysed::exports_only(w.p).detect(&WaitChainCriticalSections);
            assert!(found.is_empty(), "{b:?}: one wait: {found:#?}");
            // 0x300 enters a section of a cycle between 0x100 and 0x200.
            let mut w = Waits::new(b);
            let accounts = w.lock("g_accounts_lock", 0x200);
            let ledger = w.lock("g_ledger_lock", 0x100);
            w.enter(0x100, accounts, "transfer");
            w.enter(0x200, ledger, "audit");
            w.enter(0x300, accounts, "report");
            let a = Analysed::exports_only(w.p);
            assert_eq!(a.evidence().waits().len(), 3, "{b:?}");
            let found = a.detect(&WaitChainCriticalSections);
            assert!(found.is_empty(), "{b:?}: a cycle: {found:#?}");
        }
    }

    #[test]
    fn in_a_crash_dump_the_same_chain_is_not_reported() {
        for b in [Bitness::X64, Bitness::X86] {
            let (mut w, _, _) = chain(b);
            w.crash(0x900, "parse_reply");
            let found = Analysed::exports_only(w.p).detect(&WaitChainCriticalSections);
            assert!(found.is_empty(), "{b:?}: {found:#?}");
        }
    }
}
