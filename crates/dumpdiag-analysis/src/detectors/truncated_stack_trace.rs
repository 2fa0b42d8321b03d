//! Truncated Stack Trace: a walk that ends before the thread's start routine with stack left.

use super::stack_checks as checks;
use crate::{Detector, Evidence, Finding};
use dumpdiag_stack::checks::IssueKind;
use dumpdiag_stack::StackIssue;

pub struct TruncatedStackTrace;

impl Detector for TruncatedStackTrace {
    fn pattern(&self) -> &'static str {
        "Truncated Stack Trace"
    }
    fn category(&self) -> &'static str {
        "Stack Trace"
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let cut: Vec<(u32, StackIssue)> = checks(ev)
            .into_iter()
            .filter_map(|(id, c)| {
                c.into_iter()
                    .find(|w| w.kind() == IssueKind::Truncated)
                    .map(|w| (id, w))
            })
            .collect();
        if cut.is_empty() {
            return Vec::new();
        }
        vec![Finding::new(self.pattern(), self.category(), "medium", format!("{} thread stack(s) end before their thread's start routine", cut.len()))
            .threads(cut.iter().map(|c| c.0).collect())
            .evidence(cut.iter().map(|(id, w)| format!("thread {id:x}: {w}")).collect())
            .recommend("The caller frames are missing (no unwind data, missing stack memory, or a corrupted frame): supply images/symbols, or read the rest of the stack with dps.")]
    }
}
