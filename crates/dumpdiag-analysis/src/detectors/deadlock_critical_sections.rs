//! Deadlock (Critical Sections): a cycle of threads each waiting for a critical section another owns.

use super::{wait_cycles, wait_line as line};
use crate::waits::WaitObject;
use crate::{Detector, Evidence, Finding};

pub struct DeadlockCriticalSections;

impl Detector for DeadlockCriticalSections {
    fn pattern(&self) -> &'static str {
        "Deadlock (Critical Sections)"
    }
    fn category(&self) -> &'static str {
        "Deadlock and Livelock"
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        wait_cycles(ev)
            .into_iter()
            .filter(|(_, _, only_cs)| *only_cs)
            .map(|(c, ws, _)| {
                let names: Vec<String> =
                    ws.iter().filter_map(|w| if let WaitObject::CriticalSection(cs) = &w.object { Some(cs.name.clone()) } else { None }).collect();
                Finding::new(
                    self.pattern(),
                    self.category(),
                    "high",
                    format!(
                        "threads {} wait for each other's critical sections {}",
                        c.iter().map(|t| format!("{t:x}")).collect::<Vec<_>>().join(", "),
                        names.join(", ")
                    ),
                )
                .threads(c.clone())
                .evidence(ws.iter().map(|w| line(w)).collect())
                .recommend("Take the locks in one global order everywhere (or hold one at a time); !cs -l and ~*k show the owners and where they wait.")
            })
            .collect()
    }
}
