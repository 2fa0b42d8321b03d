//! Virtualized Process: a 32-bit process saved in a 64-bit dump (WOW64).

use crate::{Detector, Evidence, Finding, Pattern, Strength};

pub struct VirtualizedProcess;

impl Detector for VirtualizedProcess {
    fn pattern(&self) -> Pattern {
        Pattern::VirtualizedProcess
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        if !ev.is_wow64() {
            return Vec::new();
        }
        let wow: Vec<String> = ev
            .target()
            .modules()
            .iter()
            .filter(|m| m.file_name().to_ascii_lowercase().starts_with("wow64"))
            .map(|m| m.file_name().to_string())
            .collect();
        vec![Finding::new(
            self.pattern(),
            Strength::Proven,
            "a 32-bit process saved in a 64-bit dump (WOW64)".into(),
        )
        .notes(wow.into_iter().map(|m| format!("{m} loaded")))
        .recommend(
            "Switch to the 32-bit view (.effmach x86) for the process's own stacks and registers.",
        )]
    }
}
