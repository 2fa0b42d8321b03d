//! Handle Leak: a very large handle table dominated by one object type.

use std::collections::BTreeMap;

use crate::{Detector, Evidence, Finding, Pattern, Strength};

pub struct HandleLeak;

/// Handle counts below this are ordinary for a process.
const LEAK_THRESHOLD: usize = 2000;

impl Detector for HandleLeak {
    fn pattern(&self) -> Pattern {
        Pattern::HandleLeak
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let Some(handles) = ev.target().handles() else {
            return Vec::new();
        };
        if handles.len() < LEAK_THRESHOLD {
            return Vec::new();
        }
        let mut by_type: BTreeMap<&str, usize> = BTreeMap::new();
        for h in handles {
            *by_type
                .entry(h.type_name.as_deref().unwrap_or("None"))
                .or_default() += 1;
        }
        let (ty, n) = by_type
            .iter()
            .max_by_key(|e| e.1)
            .map(|(t, n)| (*t, *n))
            .unwrap_or(("None", 0));
        if n * 2 < handles.len() {
            return Vec::new();
        }
        let mut evidence = vec![format!("{} handles, {n} of type {ty}", handles.len())];
        let mut names: BTreeMap<&str, usize> = BTreeMap::new();
        for h in handles
            .iter()
            .filter(|h| h.type_name.as_deref() == Some(ty))
        {
            *names
                .entry(h.object_name.as_deref().unwrap_or("<unnamed>"))
                .or_default() += 1;
        }
        let mut top: Vec<_> = names.into_iter().collect();
        top.sort_by_key(|e| std::cmp::Reverse(e.1));
        evidence.extend(
            top.iter()
                .take(3)
                .map(|(name, c)| format!("{c} x {ty} {name}")),
        );
        vec![Finding::new(self.pattern(), Strength::Proven, format!("{} handles, {n} of them {ty} objects", handles.len()))
            .notes(evidence)
            .recommend(
                "Find the code that creates these objects without closing them (the handle values grow with each leaked handle; !handle 0 f shows them).",
            )]
    }
}
