//! Multiple Exceptions: more than one thread inside exception dispatch.

use crate::{Detector, Evidence, Fact, Finding, Pattern, Strength};

pub struct MultipleExceptions;

const DISPATCH: &[&str] = &[
    "KiUserExceptionDispatcher",
    "KiUserExceptionDispatch",
    "RtlDispatchException",
    "UnhandledExceptionFilter",
    "WerpReportFault",
];

impl Detector for MultipleExceptions {
    fn pattern(&self) -> Pattern {
        Pattern::MultipleExceptions
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let dispatching: Vec<&crate::ThreadView> = ev
            .threads
            .iter()
            .filter(|t| {
                t.frames
                    .iter()
                    .any(|f| f.function.as_deref().is_some_and(|n| DISPATCH.contains(&n)))
            })
            .collect();
        if dispatching.len() < 2 {
            return Vec::new();
        }
        let evidence = dispatching
            .iter()
            .map(|t| {
                // The frame just past the dispatcher is where that thread faulted.
                let at = t
                    .frames
                    .iter()
                    .position(|f| {
                        f.function
                            .as_deref()
                            .is_some_and(|n| n.starts_with("KiUserExceptionDispatch"))
                    })
                    .and_then(|i| t.frames.get(i + 1))
                    .map(|f| f.call_site())
                    .unwrap_or_else(|| "unknown".into());
                let note = format!(
                    "thread {:x} is dispatching an exception raised in {at}",
                    t.id
                );
                Fact::Thread { id: t.id, note }
            })
            .collect::<Vec<_>>();
        vec![Finding::new(self.pattern(), Strength::Proven, format!("{} threads are inside exception dispatch", dispatching.len()))
            .threads(dispatching.iter().map(|t| t.id).collect())
            .facts(evidence)

            .recommend("Only one exception is stored in the dump; look at each dispatching thread (~Ns; k) — the first fault may not be the one recorded.")]
    }
}
