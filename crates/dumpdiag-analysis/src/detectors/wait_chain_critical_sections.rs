//! Wait Chain (Critical Sections): a critical-section wait whose owner waits for another
//! critical section, followed to the last owner (the one not waiting on a section). Reported
//! once per chain, from the thread nobody waits for.

use crate::waits::{chains, ChainEnd};
use crate::{silent, Detector, Evidence, Fact, Finding, Pattern, Strength};

pub struct WaitChainCriticalSections;

impl Detector for WaitChainCriticalSections {
    fn pattern(&self) -> Pattern {
        Pattern::WaitChainCriticalSections
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
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
