//! Incorrect Stack Trace and Truncated Stack Trace, from the walker's stack-trace checks (the
//! same warnings `k` prints).

use crate::{Detector, Evidence, Finding};
use dumpdiag_engine::cmd_stacks;

/// The checks of every thread's stack; the faulting thread's stack is the one walked from the
/// exception context, and a walk cut by the frame limit is not a walking error.
fn checks(ev: &Evidence) -> Vec<(u32, Vec<String>)> {
    let s = ev.session;
    let exception_ctx = ev.target().exception_context();
    ev.threads
        .iter()
        .filter_map(|t| {
            let faulting = ev.exception.as_ref().is_some_and(|e| e.thread_id == t.id);
            let ctx = if faulting { exception_ctx.clone()? } else { s.thread_context(t.index)? };
            let stack = cmd_stacks::stack_of(s, t.index, &ctx);
            let notes = cmd_stacks::stack_checks(s, t.index, &stack).into_iter().filter(|w| !w.starts_with("walk stopped after")).collect();
            Some((t.id, notes))
        })
        .collect()
}

pub struct IncorrectStackTrace;

impl Detector for IncorrectStackTrace {
    fn pattern(&self) -> &'static str {
        "Incorrect Stack Trace"
    }
    fn category(&self) -> &'static str {
        "Stack Trace"
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let bad: Vec<(u32, Vec<String>)> = checks(ev)
            .into_iter()
            .map(|(id, c)| (id, c.into_iter().filter(|w| !w.starts_with("the walk ends")).collect::<Vec<_>>()))
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

pub struct TruncatedStackTrace;

impl Detector for TruncatedStackTrace {
    fn pattern(&self) -> &'static str {
        "Truncated Stack Trace"
    }
    fn category(&self) -> &'static str {
        "Stack Trace"
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let cut: Vec<(u32, String)> =
            checks(ev).into_iter().filter_map(|(id, c)| c.into_iter().find(|w| w.starts_with("the walk ends")).map(|w| (id, w))).collect();
        if cut.is_empty() {
            return Vec::new();
        }
        vec![Finding::new(self.pattern(), self.category(), "medium", format!("{} thread stack(s) end before their thread's start routine", cut.len()))
            .threads(cut.iter().map(|c| c.0).collect())
            .evidence(cut.iter().map(|(id, w)| format!("thread {id:x}: {w}")).collect())
            .recommend("The caller frames are missing (no unwind data, missing stack memory, or a corrupted frame): supply images/symbols, or read the rest of the stack with dps.")]
    }
}
