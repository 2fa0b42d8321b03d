//! NULL Pointer (Data): an access violation reading or writing the first 64 KiB.

use super::{access_violation, exception_thread, top_frames, NULL_PAGE_END};
use crate::{Detector, Evidence, Finding};

pub struct NullPointerData;

impl Detector for NullPointerData {
    fn pattern(&self) -> &'static str {
        "NULL Pointer (Data)"
    }
    fn category(&self) -> &'static str {
        "Pointer"
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let Some((access, target)) = access_violation(ev) else {
            return Vec::new();
        };
        if access == 8 || target >= NULL_PAGE_END {
            return Vec::new();
        }
        let verb = if access == 1 { "write to" } else { "read from" };
        let mut evidence = vec![format!(
            "Attempt to {verb} address {target:#x} (a NULL pointer plus field offset {target:#x})"
        )];
        evidence.extend(top_frames(ev, 3));
        vec![Finding::new(self.pattern(), self.category(), "high", format!("{verb} {target:#x} through a NULL pointer"))
            .threads(exception_thread(ev))
            .evidence(evidence)
            .recommend("Find where the pointer dereferenced by the faulting instruction (u @rip) was set; check the callers for a missing NULL check.")]
    }
}
