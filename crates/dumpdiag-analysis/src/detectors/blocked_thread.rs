//! Blocked Thread (Software): a thread in a kernel wait on a held mutex or on another thread or
//! process, resolved through handle data.

use crate::waits::WaitObject;
use crate::{Detector, Evidence, Fact, Finding, Pattern, Strength};
use dumpdiag_os::handles::ObjectState;

pub struct BlockedThread;

impl Detector for BlockedThread {
    fn pattern(&self) -> Pattern {
        Pattern::BlockedThread
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        // In a crash dump every other thread was stopped by the crash: waits are hang evidence
        // only in dumps taken on purpose.
        if !super::taken_on_purpose(ev) {
            return Vec::new();
        }
        // A wait for the thread that is writing this very dump is not a hang. That thread has
        // MiniDumpWriteDump on its stack, or (Wine's writer records no context for itself) no
        // stack at all.
        let dump_writer = |tid: Option<u32>| {
            ev.threads
                .iter()
                .any(|t| Some(t.id) == tid && crate::thread_facts::is_dump_writer_thread(ev, t))
        };

        ev.waits()
            .iter()
            .filter(|w| !dump_writer(w.blocker))
            .filter(|w| match &w.object {
                WaitObject::Handle { state: Some(ObjectState::Mutant { count, .. }), .. } => *count <= 0,
                WaitObject::Handle { type_name, .. } => type_name == "Thread" || type_name == "Process",
                WaitObject::CriticalSection(_) => false,
            })
            .map(|w| {
                Finding::new(self.pattern(), Strength::Likely, w.describe())
                    .threads(vec![w.thread])
                    .fact(Fact::Wait((*w).clone()))
                    .recommend("Check why the object is not released: who holds the mutex, or why the awaited thread does not end.")
            })
            .collect()
    }
}
