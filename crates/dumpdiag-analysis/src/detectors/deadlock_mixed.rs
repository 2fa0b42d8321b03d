//! Deadlock (Mixed Objects, User Space): a wait cycle through different kinds of objects (a thread
//! waiting for another's exit while that one waits for a lock the first holds).

use super::{wait_cycles, wait_line as line};
use crate::{Detector, Evidence, Finding};

pub struct DeadlockMixed;

impl Detector for DeadlockMixed {
    fn pattern(&self) -> &'static str {
        "Deadlock (Mixed Objects, User Space)"
    }
    fn category(&self) -> &'static str {
        "Deadlock and Livelock"
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        // Every cycle that is not made of critical sections alone (those are the other detector's).
        wait_cycles(ev)
            .into_iter()
            .filter(|(_, ws, only_cs)| !only_cs || ws.is_empty())
            .map(|(c, ws, _)| {
                Finding::new(
                    self.pattern(),
                    self.category(),
                    "high",
                    format!(
                        "threads {} wait for each other through different kinds of objects",
                        c.iter().map(|t| format!("{t:x}")).collect::<Vec<_>>().join(", ")
                    ),
                )
                .threads(c.clone())
                .evidence(ws.iter().map(|w| line(w)).collect())
                .recommend("Do not wait for a thread (or an object it must signal) while holding a lock that thread needs.")
            })
            .collect()
    }
}
