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
