//! Passive Thread (User Space): threads whose wait is ordinary idle behaviour (sleeping, waiting
//! for work or for an event nobody holds, pumping messages), set apart from the waits that
//! matter. Only in dumps taken on purpose: in a crash dump every thread was stopped by the crash.

use crate::waits::WaitObject;
use crate::{Detector, Evidence, Fact, Finding, Pattern, Strength};
use dumpdiag_os::handles::ObjectState;

pub struct PassiveThread;

const IDLE_WAITS: &[&str] = &[
    "NtDelayExecution",
    "NtWaitForWorkViaWorkerFactory",
    "NtRemoveIoCompletion",
    "NtRemoveIoCompletionEx",
    "NtUserGetMessage",
    "NtUserMsgWaitForMultipleObjectsEx",
    "NtWaitForSingleObject",
    "NtWaitForMultipleObjects",
];

impl Detector for PassiveThread {
    fn pattern(&self) -> Pattern {
        Pattern::PassiveThread
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        if !super::taken_on_purpose(ev) {
            return Vec::new();
        }
        let all = ev.waits();
        // A held mutex whose owner the dump does not record could be held by any thread that
        // waits on a kernel object: those are not called idle then.
        let unknown_owner = all
            .iter()
            .any(|w| w.blocker.is_none() && matches!(&w.object, WaitObject::Handle { state: Some(ObjectState::Mutant { count, .. }), .. } if *count <= 0));
        let mut passive = Vec::new();
        for t in &ev.threads {
            let Some(top) = t.frames.first().and_then(|f| f.function.as_deref()) else {
                continue;
            };
            if !IDLE_WAITS.contains(&top) {
                continue;
            }
            // Part of a chain (waiting on a held lock or a thread, or holding what others wait
            // for) or showing a message box: not idle.
            let blocks_others = all.iter().any(|w| w.blocker == Some(t.id));
            let own = all.iter().filter(|w| w.thread == t.id).collect::<Vec<_>>();
            let waits_on_something_held = own.iter().any(|w| match &w.object {
                WaitObject::CriticalSection(_) => true,
                WaitObject::Handle {
                    type_name, state, ..
                } => {
                    type_name == "Thread"
                        || type_name == "Process"
                        || matches!(state, Some(ObjectState::Mutant { count, .. }) if *count <= 0)
                }
            });
            let in_message_box = t.frames.iter().any(|f| {
                f.function
                    .as_deref()
                    .is_some_and(|n| n.starts_with("MessageBox"))
            });
            let kernel_wait_unresolved =
                matches!(top, "NtWaitForSingleObject" | "NtWaitForMultipleObjects")
                    && own.is_empty();
            let maybe_owner = unknown_owner && !own.is_empty();
            if blocks_others
                || waits_on_something_held
                || in_message_box
                || kernel_wait_unresolved
                || maybe_owner
            {
                continue;
            }
            let what = own
                .first()
                .map(|w| w.object.describe())
                .unwrap_or_else(|| top.to_string());
            let app = crate::thread_facts::application_caller(ev, t)
                .map(|f| f.call_site())
                .unwrap_or_default();
            passive.push((
                t.id,
                format!(
                    "thread {:x} idle in {what}{}",
                    t.id,
                    if app.is_empty() {
                        String::new()
                    } else {
                        format!(" (from {app})")
                    }
                ),
            ));
        }
        if passive.is_empty() {
            return Vec::new();
        }
        vec![Finding::new(
            self.pattern(),
            Strength::Likely,
            format!("{} thread(s) are idle in ordinary waits", passive.len()),
        )
        .threads(passive.iter().map(|p| p.0).collect())
        .facts(
            passive
                .into_iter()
                .map(|(id, note)| Fact::Thread { id, note }),
        )
        .recommend("These threads wait the way idle threads do; look at the others first.")]
    }
}
