//! Truncated Stack Trace: a walk that ends before the thread's start routine with stack left.

use super::stack_issues;
use crate::{Detector, Evidence, Fact, Finding, Pattern, Strength};
use dumpdiag_stack::checks::IssueKind;

pub struct TruncatedStackTrace;

impl Detector for TruncatedStackTrace {
    fn pattern(&self) -> Pattern {
        Pattern::TruncatedStackTrace
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let cut: Vec<Fact> = stack_issues(ev)
            .into_iter()
            .filter_map(|(id, issues)| {
                let i = issues.iter().find(|i| i.kind() == IssueKind::Truncated)?;
                Some(Fact::Thread {
                    id,
                    note: format!("thread {id:x}: {i}"),
                })
            })
            .collect();
        if cut.is_empty() {
            return Vec::new();
        }
        let threads = cut
            .iter()
            .filter_map(|f| {
                if let Fact::Thread { id, .. } = f {
                    Some(*id)
                } else {
                    None
                }
            })
            .collect();
        vec![Finding::new(
            self.pattern(),
            Strength::Likely,
            format!(
                "{} thread stack(s) end before their thread's start routine",
                cut.len()
            ),
        )
        .threads(threads)
        .facts(cut)
        .recommend(
            "The caller frames are missing (no unwind data, missing stack memory, or a corrupted \
             frame): supply images/symbols, or read the rest of the stack with dps.",
        )]
    }
}
