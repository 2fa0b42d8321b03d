//! NULL Pointer (Code): execution at or near address 0; the caller comes from the return address.

use super::{access_violation, exception_thread, NULL_PAGE_END};
use crate::{Detector, Evidence, Fact, Finding, Pattern, Strength};
use dumpdiag_os::codes::AccessKind;

pub struct NullPointerCode;

impl Detector for NullPointerCode {
    fn pattern(&self) -> Pattern {
        Pattern::NullPointerCode
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let Some((access, target)) = access_violation(ev) else {
            return Vec::new();
        };
        if access != AccessKind::Execute || target >= NULL_PAGE_END {
            return Vec::new();
        }
        // The caller is the first frame the walker found from the return address at the
        // stack pointer.
        let caller = ev
            .exception_frames()
            .get(1)
            .map(|f| f.call_site())
            .unwrap_or_else(|| "unknown".into());
        vec![Finding::new(self.pattern(), Strength::Proven, format!("call through a NULL function pointer ({target:#x}) from {caller}"))
            .threads(exception_thread(ev))
            .fact(Fact::Memory { address: target, note: format!("instruction pointer {target:#x} is in the NULL page") })
            .facts(ev.exception_frames().get(1).map(|f| Fact::Frame { thread: ev.exception.as_ref().map(|e| e.thread_id).unwrap_or(0), index: 1, frame: f.clone() }))
            .caveats_of_frames(ev.exception_frames().get(1..2).unwrap_or(&[]))

            .recommend("Check the function pointer or vtable slot the caller used; it was never set or was cleared.")]
    }
}
