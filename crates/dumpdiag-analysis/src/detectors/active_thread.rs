//! Active Thread: threads that were running or ready when a dump was taken on purpose — their
//! top frame is ordinary code, not a system call (by name, or by the instruction before it). In a crash dump every thread was stopped by
//! the crash, so only dumps taken on purpose are asked.

use crate::thread_facts::{is_dump_writer, top_frame_state, TopFrame};
use crate::{Detector, Evidence, Fact, Finding, Pattern, Strength};

pub struct ActiveThread;

impl Detector for ActiveThread {
    fn pattern(&self) -> Pattern {
        Pattern::ActiveThread
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        if !super::taken_on_purpose(ev) {
            return Vec::new();
        }
        let active: Vec<_> = ev
            .threads
            .iter()
            .filter(|t| top_frame_state(ev, t) == TopFrame::Running && !is_dump_writer(t))
            .collect();
        if active.is_empty() {
            return Vec::new();
        }
        let evidence = active
            .iter()
            .map(|t| {
                let frames: Vec<String> = t.frames.iter().take(3).map(|f| f.call_site()).collect();
                let cpu = t
                    .times
                    .as_ref()
                    .map(|x| {
                        format!(
                            " ({:.2} s CPU)",
                            (x.user_time as f64 + x.kernel_time as f64) / 1e7
                        )
                    })
                    .unwrap_or_default();
                Fact::Thread {
                    id: t.id,
                    note: format!("thread {:x}{cpu} runs {}", t.id, frames.join(" ← ")),
                }
            })
            .collect::<Vec<_>>();
        vec![Finding::new(self.pattern(), Strength::Likely, format!("{} thread(s) were running, not waiting, when the dump was taken", active.len()))
            .threads(active.iter().map(|t| t.id).collect())
            .facts(evidence)
            .recommend("A running thread in a hang dump is either the one doing the work everyone waits for or a loop; a second dump shows which.")]
    }
}
