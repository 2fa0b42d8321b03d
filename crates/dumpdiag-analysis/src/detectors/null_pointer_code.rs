//! NULL Pointer (Code): execution at or near address 0; the caller comes from the return address.

use super::{access_violation, exception_thread, NULL_PAGE_END};
use crate::{Detector, Evidence, Finding};

pub struct NullPointerCode;

impl Detector for NullPointerCode {
    fn pattern(&self) -> &'static str {
        "NULL Pointer (Code)"
    }
    fn category(&self) -> &'static str {
        "Pointer"
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let Some((access, target)) = access_violation(ev) else {
            return Vec::new();
        };
        if access != 8 || target >= NULL_PAGE_END {
            return Vec::new();
        }
        // The caller is the first frame the walker found from the return address at the
        // stack pointer.
        let caller = ev
            .exception_frames
            .get(1)
            .map(|f| f.call_site())
            .unwrap_or_else(|| "unknown".into());
        vec![Finding::new(self.pattern(), self.category(), "high", format!("call through a NULL function pointer ({target:#x}) from {caller}"))
            .threads(exception_thread(ev))
            .evidence(vec![format!("instruction pointer {target:#x} is in the NULL page"), format!("caller: {caller}")])
            .recommend("Check the function pointer or vtable slot the caller used; it was never set or was cleared.")]
    }
}
