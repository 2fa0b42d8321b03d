//! Instrumentation Information: heap-checking and verifier flags in the PEB, verifier modules.

use super::process_peb;
use crate::{Detector, Evidence, Finding, Pattern, Strength};

pub struct InstrumentationInformation;

const FLAGS: &[(u32, &str)] = &[
    (0x10, "FLG_HEAP_ENABLE_TAIL_CHECK"),
    (0x20, "FLG_HEAP_ENABLE_FREE_CHECK"),
    (0x40, "FLG_HEAP_VALIDATE_PARAMETERS"),
    (0x80, "FLG_HEAP_VALIDATE_ALL"),
    (0x100, "FLG_APPLICATION_VERIFIER"),
    (0x1000, "FLG_USER_STACK_TRACE_DB"),
    (0x0200_0000, "FLG_HEAP_PAGE_ALLOCS (page heap)"),
];

impl Detector for InstrumentationInformation {
    fn pattern(&self) -> Pattern {
        Pattern::InstrumentationInformation
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let mut evidence = Vec::new();
        if let Some((p, _)) = process_peb(ev) {
            let g = p.nt_global_flag.unwrap_or(0);
            let set: Vec<&str> = FLAGS
                .iter()
                .filter(|(b, _)| g & b != 0)
                .map(|(_, n)| *n)
                .collect();
            if !set.is_empty() {
                evidence.push(format!("NtGlobalFlag {g:#x}: {}", set.join(", ")));
            }
        }
        for m in ev.target().modules() {
            let f = m.file_name().to_ascii_lowercase();
            if f == "verifier.dll"
                || f.starts_with("vf") && f.ends_with(".dll")
                || f == "vrfcore.dll"
            {
                evidence.push(format!(
                    "Application Verifier module {} loaded",
                    m.file_name()
                ));
            }
        }
        if evidence.is_empty() {
            return Vec::new();
        }
        vec![Finding::new(self.pattern(), Strength::Proven, "heap or verifier instrumentation was enabled in this process".into())
            .notes(evidence)
            .recommend("Instrumentation changes timing and heap layout; it also makes heap corruption fault closer to its cause (page heap), and +ust records allocation stacks.")]
    }
}
