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
