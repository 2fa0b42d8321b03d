//! NULL Pointer (Data) and NULL Pointer (Code): access violations in the first 64 KiB.

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
        let Some((access, target)) = access_violation(ev) else { return Vec::new() };
        if access == 8 || target >= NULL_PAGE_END {
            return Vec::new();
        }
        let verb = if access == 1 { "write to" } else { "read from" };
        let mut evidence = vec![format!("Attempt to {verb} address {target:#x} (a NULL pointer plus field offset {target:#x})")];
        evidence.extend(top_frames(ev, 3));
        vec![Finding::new(self.pattern(), self.category(), "high", format!("{verb} {target:#x} through a NULL pointer"))
            .threads(exception_thread(ev))
            .evidence(evidence)
            .recommend("Find where the pointer dereferenced by the faulting instruction (u @rip) was set; check the callers for a missing NULL check.")]
    }
}

pub struct NullPointerCode;

impl Detector for NullPointerCode {
    fn pattern(&self) -> &'static str {
        "NULL Pointer (Code)"
    }
    fn category(&self) -> &'static str {
        "Pointer"
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let Some((access, target)) = access_violation(ev) else { return Vec::new() };
        if access != 8 || target >= NULL_PAGE_END {
            return Vec::new();
        }
        // The caller is the first frame the walker found from the return address at the
        // stack pointer.
        let caller = ev.exception_frames.get(1).map(|f| f.call_site()).unwrap_or_else(|| "unknown".into());
        vec![Finding::new(self.pattern(), self.category(), "high", format!("call through a NULL function pointer ({target:#x}) from {caller}"))
            .threads(exception_thread(ev))
            .evidence(vec![format!("instruction pointer {target:#x} is in the NULL page"), format!("caller: {caller}")])
            .recommend("Check the function pointer or vtable slot the caller used; it was never set or was cleared.")]
    }
}
