//! Exception Stack Trace and Stored Exception: always reported when the dump stores an exception.

use super::{exception_thread, top_frames};
use crate::{Detector, Evidence, Finding};

pub struct ExceptionStackTrace;

impl Detector for ExceptionStackTrace {
    fn pattern(&self) -> &'static str {
        "Exception Stack Trace"
    }
    fn category(&self) -> &'static str {
        "Exception"
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let Some(e) = &ev.exception else { return Vec::new() };
        if ev.exception_frames.is_empty() {
            return Vec::new();
        }
        let top = ev.exception_frames.first().map(|f| f.call_site()).unwrap_or_default();
        vec![Finding::new(self.pattern(), self.category(), "high", format!("exception {:08x} on thread {:x} in {top}", e.record.code, e.thread_id))
            .threads(exception_thread(ev))
            .evidence(top_frames(ev, 8))
            .recommend("Start from the stack recovered from the exception context (.ecxr; k), not the thread's dispatcher frames.")]
    }
}

pub struct StoredException;

impl Detector for StoredException {
    fn pattern(&self) -> &'static str {
        "Stored Exception"
    }
    fn category(&self) -> &'static str {
        "Exception"
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let Some(e) = &ev.exception else { return Vec::new() };
        let r = &e.record;
        vec![Finding::new(self.pattern(), self.category(), "high", format!("the dump's exception stream holds {:08x} at {:#x}", r.code, r.address))
            .threads(exception_thread(ev))
            .evidence(vec![
                format!("ExceptionCode: {:08x}", r.code),
                format!("ExceptionAddress: {:#x}", r.address),
                format!("Parameters: {}", r.parameters.iter().map(|p| format!("{p:#x}")).collect::<Vec<_>>().join(" ")),
            ])
            .recommend(".exr -1 shows the record and .ecxr switches to its context.")]
    }
}
