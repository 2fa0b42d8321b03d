//! Exception Stack Trace: the faulting thread's stack recovered from the exception context.

use super::{exception_thread, top_frames};
use crate::{Detector, Evidence, Finding, Pattern, Strength};

pub struct ExceptionStackTrace;

impl Detector for ExceptionStackTrace {
    fn pattern(&self) -> Pattern {
        Pattern::ExceptionStackTrace
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let Some(e) = &ev.exception else {
            return Vec::new();
        };
        if ev.exception_frames().is_empty() {
            return Vec::new();
        }
        let top = ev
            .exception_frames()
            .first()
            .map(|f| f.call_site())
            .unwrap_or_default();
        vec![Finding::new(self.pattern(), Strength::Proven, format!("exception {:08x} on thread {:x} in {top}", e.record.code, e.thread_id))
            .caveats_of_frames(&ev.exception_frames()[..1])
            .threads(exception_thread(ev))

            .facts(top_frames(ev, 8))
            .recommend("Start from the stack recovered from the exception context (.ecxr; k), not the thread's dispatcher frames.")]
    }
}
