//! Local Buffer Overflow (User Space): STATUS_STACK_BUFFER_OVERRUN (c0000409) raised by a check
//! that guards a stack frame — the /GS cookie (`__report_gsfailure`), CET shadow-stack and
//! return-address checks, the CRT's range checks. The same status carries every `__fastfail`
//! code since Windows 8, most of which have nothing to do with a buffer (`abort()` raises
//! FAST_FAIL_FATAL_APP_EXIT, a corrupted list entry FAST_FAIL_CORRUPT_LIST_ENTRY): those are
//! named for what they are by the exception findings, not reported here.

use super::{exception_thread, top_frames};
use crate::{Detector, Evidence, Fact, Finding, Pattern, Strength};
use dumpdiag_os::codes;

pub struct LocalBufferOverflow;

impl Detector for LocalBufferOverflow {
    fn pattern(&self) -> Pattern {
        Pattern::LocalBufferOverflow
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let Some(e) = &ev.exception else {
            return Vec::new();
        };
        let code = e.record.parameters.first().copied().unwrap_or(u64::MAX);
        if e.record.code != codes::STACK_BUFFER_OVERRUN || !codes::is_stack_buffer_check(code) {
            return Vec::new();
        }
        let name = codes::fast_fail_name(code).unwrap_or_default();
        let mut facts = vec![Fact::Note(format!("__fastfail code {code:#x} {name}"))];
        facts.extend(top_frames(ev, 4));
        vec![Finding::new(
            self.pattern(),
            Strength::Proven,
            format!("a stack buffer check failed: fail fast {code:#x} ({name})"),
        )
        .threads(exception_thread(ev))
        .facts(facts)
        .recommend(
            "The function whose check failed (the frame above __report_gsfailure) overran a \
             local buffer and overwrote its frame's cookie or return address: look at its \
             arrays and string copies, and reproduce under page heap / ASan if it is data-driven.",
        )]
    }
}
