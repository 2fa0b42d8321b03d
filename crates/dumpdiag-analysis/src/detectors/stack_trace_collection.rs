//! Stack Trace Collection: all threads' stacks, identical ones grouped and counted (what
//! `!uniqstack` shows); reported when several threads share a stack.

use std::collections::BTreeMap;

use crate::{Detector, Evidence, Finding, Pattern, Strength};

pub struct StackTraceCollection;

impl Detector for StackTraceCollection {
    fn pattern(&self) -> Pattern {
        Pattern::StackTraceCollection
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let mut groups: BTreeMap<Vec<String>, Vec<u32>> = BTreeMap::new();
        for t in ev.threads.iter().filter(|t| !t.frames.is_empty()) {
            groups
                .entry(t.frames.iter().map(|f| f.call_site()).collect())
                .or_default()
                .push(t.id);
        }
        let shared: Vec<(&Vec<String>, &Vec<u32>)> =
            groups.iter().filter(|g| g.1.len() > 1).collect();
        if shared.is_empty() {
            return Vec::new();
        }
        let evidence = shared
            .iter()
            .map(|(sites, ids)| {
                let app = sites
                    .iter()
                    .find(|s| s.split('!').next().is_some_and(|m| ev.is_app_module(m)))
                    .or(sites.first())
                    .cloned()
                    .unwrap_or_default();
                format!(
                    "{} threads ({}) share the stack through {app}",
                    ids.len(),
                    ids.iter()
                        .map(|i| format!("{i:x}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .collect::<Vec<_>>();

        vec![Finding::new(
            self.pattern(),
            Strength::Possible,
            format!(
                "{} distinct stacks among {} threads",
                groups.len(),
                ev.threads.iter().filter(|t| !t.frames.is_empty()).count()
            ),
        )
        .threads(shared.iter().flat_map(|g| g.1.iter().copied()).collect())
        .notes(evidence)
        .recommend(
            "Identical stacks are usually one kind of worker; !uniqstack lists each stack once.",
        )]
    }
}
