//! Incorrect Stack Trace: frames found by scanning, returns not preceded by a call, frames
//! outside modules or stacks (the walker's checks, as `k` prints them).

use super::stack_checks as checks;
use crate::{Detector, Evidence, Finding};
use dumpdiag_stack::checks::IssueKind;
use dumpdiag_stack::StackIssue;

pub struct IncorrectStackTrace;

impl Detector for IncorrectStackTrace {
    fn pattern(&self) -> &'static str {
        "Incorrect Stack Trace"
    }
    fn category(&self) -> &'static str {
        "Stack Trace"
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let bad: Vec<(u32, Vec<StackIssue>)> = checks(ev)
            .into_iter()
            .map(|(id, c)| {
                (
                    id,
                    c.into_iter()
                        .filter(|w| w.kind() == IssueKind::Incorrect)
                        .collect::<Vec<_>>(),
                )
            })
            .filter(|(_, c)| !c.is_empty())
            .collect();
        if bad.is_empty() {
            return Vec::new();
        }
        vec![Finding::new(self.pattern(), self.category(), "medium", format!("{} thread stack(s) have frames that may not be real", bad.len()))
            .threads(bad.iter().map(|b| b.0).collect())
            .evidence(bad.iter().flat_map(|(id, c)| c.iter().take(3).map(move |w| format!("thread {id:x}: {w}"))).collect())
            .recommend("Frames found by scanning or returning after no call are guesses: get the modules' images or symbols (-y) so the walk can use unwind data, and check with dps on the raw stack.")]
    }
}
