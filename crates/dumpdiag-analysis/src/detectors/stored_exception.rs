//! Stored Exception: the exception record and context saved in the dump's exception stream.

use super::exception_thread;
use crate::{Detector, Evidence, Finding};

pub struct StoredException;

impl Detector for StoredException {
    fn pattern(&self) -> &'static str {
        "Stored Exception"
    }
    fn category(&self) -> &'static str {
        "Exception"
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let Some(e) = &ev.exception else {
            return Vec::new();
        };
        let r = &e.record;
        vec![Finding::new(
            self.pattern(),
            self.category(),
            "high",
            format!(
                "the dump's exception stream holds {:08x} at {:#x}",
                r.code, r.address
            ),
        )
        .threads(exception_thread(ev))
        .evidence(vec![
            format!("ExceptionCode: {:08x}", r.code),
            format!("ExceptionAddress: {:#x}", r.address),
            format!(
                "Parameters: {}",
                r.parameters
                    .iter()
                    .map(|p| format!("{p:#x}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        ])
        .recommend(".exr -1 shows the record and .ecxr switches to its context.")]
    }
}
