//! Local Buffer Overflow (User Space): c0000409, a fast fail or GS cookie failure.

use super::{exception_thread, top_frames};
use crate::{Detector, Evidence, Finding};

pub struct LocalBufferOverflow;

impl Detector for LocalBufferOverflow {
    fn pattern(&self) -> &'static str {
        "Local Buffer Overflow (User Space)"
    }
    fn category(&self) -> &'static str {
        "Exception"
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let Some(e) = &ev.exception else {
            return Vec::new();
        };
        if e.record.code != 0xc0000409 {
            return Vec::new();
        }
        let code = e.record.parameters.first().copied().unwrap_or(0);
        let name = dumpdiag_engine::fast_fail_name(code);
        let mut evidence = vec![format!("__fastfail code {code:#x} {name}")];
        evidence.extend(top_frames(ev, 4));
        vec![Finding::new(self.pattern(), self.category(), "high", format!("fail fast {code:#x} ({})", if name.is_empty() { "unknown code" } else { name }))
            .threads(exception_thread(ev))
            .evidence(evidence)
            .recommend("A security check or fatal-app-exit terminated the process before any handler ran; the faulting frame names the check (GS cookie: look for a buffer overrun in that function).")]
    }
}
