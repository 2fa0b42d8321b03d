//! Deadlock (Mixed Objects, User Space): a wait cycle through different kinds of objects (a thread
//! waiting for another's exit while that one waits for a lock the first holds).

use super::{cycle_waits, is_cs, wait_line as line};
use crate::waits::cycles;
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
        let all = ev.waits();
        cycles(all)
            .into_iter()
            .filter(|c| {
                let ws = cycle_waits(all, c);
                ws.iter().any(|w| is_cs(w)) != ws.iter().all(|w| is_cs(w)) || ws.iter().all(|w| !is_cs(w))
            })
            .map(|c| {
                let ws = cycle_waits(all, &c);
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
