//! Blocked Thread (Software): a thread in a kernel wait on a held mutex or on another thread or
//! process (resolved through HandleData): one finding per blocked thread, naming every object
//! it waits for and, for a thread handle, the thread.

use crate::thread_facts::is_dump_writer_thread;
use crate::waits::Wait;
use crate::{silent, Detector, Evidence, Fact, Finding, Pattern, Strength};

pub struct BlockedThread;

impl Detector for BlockedThread {
    fn pattern(&self) -> Pattern {
        Pattern::BlockedThread
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        // In a crash dump every other thread was stopped by the crash: waits are hang evidence
        // only in dumps taken on purpose.
        if !super::taken_on_purpose(ev) {
            silent!("a crash dump: every thread was stopped by the crash");
        }
        // A wait for the thread that is writing this very dump is not a hang.
        let writer = |tid: Option<u32>| {
            ev.threads
                .iter()
                .any(|t| Some(t.id) == tid && is_dump_writer_thread(ev, t))
        };
        let blocking = |w: &&Wait| {
            (w.object.is_held_mutex() || w.object.is_thread_or_process()) && !writer(w.blocker)
        };
        let mut found = Vec::new();
        for t in &ev.threads {
            let waits: Vec<&Wait> = ev
                .waits()
                .iter()
                .filter(|w| w.thread == t.id)
                .filter(blocking)
                .collect();
            if waits.is_empty() {
                continue;
            }
            let objects: Vec<String> = waits.iter().map(|w| w.object.describe()).collect();
            found.push(
                Finding::new(
                    self.pattern(),
                    Strength::Likely,
                    format!(
                        "thread {:x} is blocked waiting for {}",
                        t.id,
                        objects.join(" and ")
                    ),
                )
                .threads(vec![t.id])
                .facts(waits.iter().map(|w| Fact::Wait((*w).clone())))
                .facts(
                    ev.frames_of(t)
                        .iter()
                        .position(|f| f.module.as_deref().is_some_and(|m| ev.is_app_module(m)))
                        .map(|i| Fact::Frame {
                            thread: t.id,
                            index: i,
                            frame: ev.frames_of(t)[i].clone(),
                        }),
                )
                .recommend(
                    "Check why the object is not released: who holds the mutex, or why the \
                     awaited thread does not end.",
                ),
            );
        }
        if found.is_empty() {
            silent!("no thread waits on a held mutex or a running thread or process");
        }
        found
    }
}
