//! Passive Thread (User Space): threads whose wait is ordinary idle behaviour — sleeping, a
//! thread-pool worker waiting for work (NtWaitForWorkViaWorkerFactory, NtRemoveIoCompletion),
//! a message loop, waiting for an event or semaphore that nothing holds — set apart from the
//! waits that matter. Only in dumps taken on purpose: in a crash dump every thread was stopped
//! by the crash.

use crate::thread_facts::{application_caller, is_dump_writer};
use crate::{silent, Detector, Evidence, Fact, Finding, Pattern, Strength};
use dumpdiag_os::known::{self, WaitKind};

pub struct PassiveThread;

impl Detector for PassiveThread {
    fn pattern(&self) -> Pattern {
        Pattern::PassiveThread
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        if !super::taken_on_purpose(ev) {
            silent!("a crash dump: every thread was stopped by the crash");
        }
        let all = ev.waits();
        // A held mutex whose owner the dump does not record could be held by any thread that
        // waits: none of those is called idle then.
        let unknown_owner = all
            .iter()
            .any(|w| w.blocker.is_none() && w.object.is_held_mutex());
        let mut passive = Vec::new();
        for t in &ev.threads {
            let Some(kind) = t
                .frames
                .iter()
                .take(2)
                .find_map(|f| f.function.as_deref().and_then(known::wait_kind))
            else {
                continue;
            };
            if is_dump_writer(t) {
                continue;
            }
            let own: Vec<_> = all.iter().filter(|w| w.thread == t.id).collect();
            // Holding what others wait for, or waiting for something held: part of a chain.
            let blocks_others = all.iter().any(|w| w.blocker == Some(t.id));
            let waits_on_held = own.iter().any(|w| {
                w.object.is_critical_section()
                    || w.object.is_thread_or_process()
                    || w.object.is_held_mutex()
            });
            let in_message_box = t
                .frames
                .iter()
                .any(|f| f.short_name().is_some_and(|n| n.starts_with("MessageBox")));
            // A kernel wait whose objects the dump does not resolve may be anything.
            let kernel_wait = matches!(
                kind,
                WaitKind::SingleObject | WaitKind::MultipleObjects | WaitKind::SignalAndWait
            );
            let idle_kind = matches!(
                kind,
                WaitKind::Delay
                    | WaitKind::WorkerFactory
                    | WaitKind::IoCompletion
                    | WaitKind::Message
            ) || kernel_wait
                && !own.is_empty()
                && own.iter().all(|w| w.object.is_signal_object());
            if !idle_kind
                || blocks_others
                || waits_on_held
                || in_message_box
                || unknown_owner && !own.is_empty()
            {
                continue;
            }
            let what = match own.first() {
                Some(w) => w.object.describe(),
                None => t
                    .frames
                    .iter()
                    .take(2)
                    .find_map(|f| f.function.clone())
                    .unwrap_or_default(),
            };
            let from = application_caller(ev, t)
                .map(|f| format!(" (from {})", f.call_site()))
                .unwrap_or_default();
            passive.push(Fact::Thread {
                id: t.id,
                note: format!("thread {:x} idle in {what}{from}", t.id),
            });
        }
        if passive.is_empty() {
            silent!("no thread waits the way idle threads do");
        }
        let threads = passive
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
            format!("{} thread(s) are idle in ordinary waits", passive.len()),
        )
        .threads(threads)
        .facts(passive)
        .recommend("These threads wait the way idle threads do; look at the others first.")]
    }
}
