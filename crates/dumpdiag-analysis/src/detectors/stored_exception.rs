//! Stored Exception: the exception record and context saved in the dump's exception stream.

use super::exception_thread;
use crate::{Detector, Evidence, Fact, Finding, Pattern, Strength};
use dumpdiag_os::codes;

pub struct StoredException;

impl Detector for StoredException {
    fn pattern(&self) -> Pattern {
        Pattern::StoredException
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let Some(e) = &ev.exception else {
            return Vec::new();
        };
        let r = &e.record;
        let name = dumpdiag_os::errors::exception_name(r.code).unwrap_or("unknown exception code");
        // STATUS_STACK_BUFFER_OVERRUN carries every __fastfail since Windows 8: say which one.
        let fast_fail = (r.code == codes::STACK_BUFFER_OVERRUN)
            .then(|| r.parameters.first().copied())
            .flatten()
            .map(|c| {
                let n = codes::fast_fail_name(c).unwrap_or_else(|| "an unknown code".into());
                format!(": fail fast {c:#x} {n}")
            })
            .unwrap_or_default();
        let parameters: Vec<String> = r.parameters.iter().map(|p| format!("{p:#x}")).collect();
        vec![Finding::new(
            self.pattern(),
            Strength::Proven,
            format!(
                "the dump's exception stream holds {:08x} ({name}{fast_fail}) at {:#x}",
                r.code, r.address
            ),
        )
        .threads(exception_thread(ev))
        .fact(Fact::Exception {
            record_at: None,
            context_at: None,
            code: r.code,
            address: r.address,
            location: ev.describe(r.address),
        })
        .notes([format!("Parameters: {}", parameters.join(" "))])
        .recommend(".exr -1 shows the record and .ecxr switches to its context.")]
    }
}
