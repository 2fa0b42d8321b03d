//! Deadlock (Mixed Objects, User Space): a wait cycle through different kinds of objects (a thread
//! waiting for another's exit while that one waits for a lock the first holds).

use super::wait_cycles;
use crate::{Detector, Evidence, Fact, Finding, Pattern, Strength};

pub struct DeadlockMixed;

impl Detector for DeadlockMixed {
    fn pattern(&self) -> Pattern {
        Pattern::DeadlockMixed
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        // Every cycle that is not made of critical sections alone (those are the other detector's).
        wait_cycles(ev)
            .into_iter()
            .filter(|(_, ws, only_cs)| !only_cs || ws.is_empty())
            .map(|(c, ws, _)| {
                Finding::new(
                    self.pattern(), Strength::Proven,
                    format!(
                        "threads {} wait for each other through {}",
                        c.iter().map(|t| format!("{t:x}")).collect::<Vec<_>>().join(", "),
                        ws.iter().map(|w| w.object.describe()).collect::<Vec<_>>().join(" and ")
                    ),
                )
                .threads(c.clone())
                .facts(ws.iter().map(|w| Fact::Wait((*w).clone())))
                .recommend("Do not wait for a thread (or an object it must signal) while holding a lock that thread needs.")
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::deadlock_critical_sections::DeadlockCriticalSections;
    use crate::test_support::{Analysed, Bitness, Waits};
    use crate::Confidence;

    #[test]
    fn a_thread_waiting_for_a_thread_that_waits_for_its_lock_is_a_mixed_deadlock() {
        // 0x200 enters g_config_lock, which 0x100 owns; 0x100 waits for 0x200 to end.
        for b in [Bitness::X64, Bitness::X86, Bitness::Wow64] {
            let mut w = Waits::new(b);
            let lock = w.lock("g_config_lock", 0x100);
            w.enter(0x200, lock, "reload_config");
            let reloader = w.thread_handle(0x200);
            w.wait_single(0x100, reloader, "stop_reloader");
            let found = Analysed::exports_only(w.p).detect(&DeadlockMixed);
            assert_eq!(found.len(), 1, "{b:?}: {found:#?}");
            let f = &found[0];
            assert_eq!(f.threads, [0x100, 0x200]);
            assert_eq!(
                f.summary,
                format!(
                    "threads 100, 200 wait for each other through Thread (handle \
                     {reloader:#x} of thread 200, still running) and critical section \
                     service!g_config_lock ({lock:#x}) owned by thread 100"
                ),
                "{b:?}"
            );
            // Both waits, each naming the other thread as the one that must act.
            let edges: Vec<(u32, Option<u32>)> = f
                .facts
                .iter()
                .filter_map(|x| match x {
                    Fact::Wait(w) => Some((w.thread, w.blocker)),
                    _ => None,
                })
                .collect();
            assert_eq!(edges, [(0x100, Some(0x200)), (0x200, Some(0x100))]);
            assert_eq!(f.confidence(), Confidence::High);
        }
    }

    #[test]
    fn a_cycle_of_critical_sections_alone_is_the_other_deadlocks() {
        for b in [Bitness::X64, Bitness::X86] {
            let mut w = Waits::new(b);
            let accounts = w.lock("g_accounts_lock", 0x100);
            let ledger = w.lock("g_ledger_lock", 0x200);
            w.enter(0x100, ledger, "transfer");
            w.enter(0x200, accounts, "audit");
            let a = Analysed::exports_only(w.p);
            assert_eq!(a.detect(&DeadlockCriticalSections).len(), 1, "{b:?}");
            let found = a.detect(&DeadlockMixed);
            assert!(found.is_empty(), "{b:?}: {found:#?}");
        }
    }

    #[test]
    fn a_wait_for_any_of_several_objects_closes_no_cycle() {
        // 0x100 waits for 0x200's end or for a stop event, whichever comes first: the event
        // can end the wait, so 0x100 is not stuck on 0x200.
        for b in [Bitness::X64, Bitness::X86] {
            let mut w = Waits::new(b);
            let lock = w.lock("g_config_lock", 0x100);
            w.enter(0x200, lock, "reload_config");
            let reloader = w.thread_handle(0x200);
            let stop = w.event(Some("\\BaseNamedObjects\\Stop"));
            w.wait_multiple(0x100, &[reloader, stop], true, "stop_reloader");
            let a = Analysed::exports_only(w.p);
            let ev = a.evidence();
            let any: Vec<bool> = ev
                .waits()
                .iter()
                .filter(|w| w.thread == 0x100)
                .map(|w| w.any_of)
                .collect();
            assert_eq!(any, [true, true], "{b:?}");
            let found = a.detect(&DeadlockMixed);
            assert!(found.is_empty(), "{b:?}: {found:#?}");
            // The same two handles waited for all at once do close it.
            let mut w = Waits::new(b);
            let lock = w.lock("g_config_lock", 0x100);
            w.enter(0x200, lock, "reload_config");
            let reloader = w.thread_handle(0x200);
            let stop = w.event(Some("\\BaseNamedObjects\\Stop"));
            w.wait_multiple(0x100, &[reloader, stop], false, "stop_reloader");
            let found = Analysed::exports_only(w.p).detect(&DeadlockMixed);
            assert_eq!(found.len(), 1, "{b:?}: WaitAll");
        }
    }
}
