//! NULL Pointer (Data): an access violation reading or writing the first 64 KiB.

use super::{access_violation, exception_thread, top_frames, NULL_PAGE_END};
use crate::{Detector, Evidence, Fact, Finding, Pattern, Strength};
use dumpdiag_os::codes::AccessKind;

pub struct NullPointerData;

impl Detector for NullPointerData {
    fn pattern(&self) -> Pattern {
        Pattern::NullPointerData
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let Some((access, target)) = access_violation(ev) else {
            return Vec::new();
        };
        if access == AccessKind::Execute || target >= NULL_PAGE_END {
            return Vec::new();
        }
        let verb = if access == AccessKind::Write {
            "write to"
        } else {
            "read from"
        };
        let note = format!(
            "Attempt to {verb} address {target:#x} (a NULL pointer plus field offset {target:#x})"
        );
        let mut facts = vec![Fact::Memory {
            address: target,
            note,
        }];
        facts.extend(top_frames(ev, 3));
        vec![Finding::new(self.pattern(), Strength::Proven, format!("{verb} {target:#x} through a NULL pointer"))
            .threads(exception_thread(ev))
            .facts(facts)

            .recommend("Find where the pointer dereferenced by the faulting instruction (u @rip) was set; check the callers for a missing NULL check.")]
    }
}
