//! Wait Chain (Critical Sections): a critical-section wait whose owner waits on another one.

use crate::waits::Wait;
use crate::{Detector, Evidence, Fact, Finding, Pattern, Strength};

pub struct WaitChainCriticalSections;

impl Detector for WaitChainCriticalSections {
    fn pattern(&self) -> Pattern {
        Pattern::WaitChainCriticalSections
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let all = ev.waits();
        let cs: Vec<&Wait> = all
            .iter()
            .filter(|w| w.object.is_critical_section())
            .collect();
        // A chain: a critical-section wait whose owner itself waits for a critical section.
        let chained: Vec<&&Wait> = cs
            .iter()
            .filter(|w| cs.iter().any(|o| Some(o.thread) == w.blocker))
            .collect();
        if chained.is_empty() {
            return Vec::new();
        }
        let mut threads: Vec<u32> = cs.iter().map(|w| w.thread).collect();
        threads.dedup();
        vec![Finding::new(
            self.pattern(), Strength::Proven,
            format!("{} threads wait on critical sections held by threads that wait themselves", cs.len()),
        )
        .threads(threads)
        .facts(cs.iter().map(|w| Fact::Wait((*w).clone())))
        .recommend("Follow the chain to the last owner (the one not waiting on a critical section): what it does decides the wait of all the others.")]
    }
}
