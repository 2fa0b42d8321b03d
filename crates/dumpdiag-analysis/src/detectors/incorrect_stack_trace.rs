//! Incorrect Stack Trace: frames found by scanning, returns not preceded by a call, frames
//! outside modules or stacks (the walker's checks, as `k` prints them).

use super::stack_issues;
use crate::{Detector, Evidence, Fact, Finding, Pattern, Strength};
use dumpdiag_stack::checks::IssueKind;

pub struct IncorrectStackTrace;

/// Issues shown per thread.
const SHOWN_PER_THREAD: usize = 3;

impl Detector for IncorrectStackTrace {
    fn pattern(&self) -> Pattern {
        Pattern::IncorrectStackTrace
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let bad: Vec<(u32, Vec<_>)> = stack_issues(ev)
            .into_iter()
            .map(|(id, issues)| {
                (
                    id,
                    issues
                        .iter()
                        .filter(|i| i.kind() == IssueKind::Incorrect)
                        .collect(),
                )
            })
            .filter(|(_, issues): &(u32, Vec<_>)| !issues.is_empty())
            .collect();
        if bad.is_empty() {
            return Vec::new();
        }
        let facts = bad.iter().flat_map(|(id, issues)| {
            issues
                .iter()
                .take(SHOWN_PER_THREAD)
                .map(move |i| Fact::Thread {
                    id: *id,
                    note: format!("thread {id:x}: {i}"),
                })
        });
        // The checks prove that a frame is doubtful, not that it is wrong.
        vec![Finding::new(
            self.pattern(),
            Strength::Likely,
            format!(
                "{} thread stack(s) have frames that may not be real",
                bad.len()
            ),
        )
        .threads(bad.iter().map(|b| b.0).collect())
        .facts(facts.collect::<Vec<_>>())
        .recommend(
            "Frames found by scanning or returning after no call are guesses: get the modules' \
             images or symbols (-y) so the walk can use unwind data, and check with dps on the \
             raw stack.",
        )]
    }
}
