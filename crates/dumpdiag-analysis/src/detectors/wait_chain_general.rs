//! Wait Chain (General): waits through kernel objects (held mutexes, events, threads).

use crate::waits::{cycles, Wait, WaitObject};
use crate::{Detector, Evidence, Fact, Finding, Pattern, Strength};
use dumpdiag_os::handles::ObjectState;

pub struct WaitChainGeneral;

impl Detector for WaitChainGeneral {
    fn pattern(&self) -> Pattern {
        Pattern::WaitChainGeneral
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let all = ev.waits();
        let in_cycle: Vec<u32> = cycles(all).concat();
        let held_mutex = |w: &&Wait| matches!(&w.object, WaitObject::Handle { state: Some(ObjectState::Mutant { count, .. }), .. } if *count <= 0);
        let links: Vec<&Wait> = all
            .iter()
            .filter(|w| !in_cycle.contains(&w.thread))
            .filter(held_mutex)
            .collect();
        if links.is_empty() {
            return Vec::new();
        }
        // Show every kernel-object wait of the process: the chain runs through them.
        let kernel: Vec<&Wait> = all
            .iter()
            .filter(|w| !w.object.is_critical_section() && !in_cycle.contains(&w.thread))
            .collect();
        vec![Finding::new(
            self.pattern(), Strength::Likely,
            format!("thread {:x} waits for a held mutex; {} threads wait on kernel objects", links[0].thread, kernel.len()),
        )
        .threads(kernel.iter().map(|w| w.thread).collect())
        .facts(kernel.iter().map(|w| Fact::Wait((*w).clone())))
        .recommend("Find the mutex owner (the thread that acquired it and now waits on something else) and what it waits for.")]
    }
}
