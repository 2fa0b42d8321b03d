//! Main Thread: the process's first thread and what it is doing. Reported in dumps taken on
//! purpose, where the question is why the application does not respond and its main (often UI)
//! thread is the first place to look.

use crate::thread_facts::{in_system_call, main_thread};
use crate::{Detector, Evidence, Finding, Pattern, Strength};

pub struct MainThread;

impl Detector for MainThread {
    fn pattern(&self) -> Pattern {
        Pattern::MainThread
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        if !super::taken_on_purpose(ev) {
            return Vec::new();
        }
        let Some(main) = main_thread(ev) else {
            return Vec::new();
        };
        let t = main.thread;
        let doing = match (in_system_call(ev, t), t.frames.first()) {
            (Some(stub), _) => {
                let caller = crate::thread_facts::application_caller(ev, t)
                    .map(|f| format!(", called from {}", f.call_site()));
                format!(
                    "waits in {}{}",
                    stub.call_site(),
                    caller.unwrap_or_default()
                )
            }
            (None, Some(top)) => format!("runs {}", top.call_site()),
            (None, None) => "has no stack in the dump".to_string(),
        };
        let mut evidence = vec![format!(
            "thread {} (id {:x}) is the main thread: {}",
            t.index, t.id, main.how
        )];
        evidence.extend(t.frames.iter().take(6).map(|f| f.call_site()));
        vec![Finding::new(self.pattern(), Strength::Proven, format!("main thread {:x} {doing}", t.id))
            .threads(vec![t.id])
            .notes(evidence)
            .recommend("If the application hung, start from this thread: what it waits for, and who should have signalled it.")]
    }
}
