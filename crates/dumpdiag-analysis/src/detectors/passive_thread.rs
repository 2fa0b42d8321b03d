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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{Analysed, Bitness, Waits};
    use crate::Confidence;
    use dumpdiag_synth::Function;

    /// Idle threads — asleep (0x100), waiting for a work event (0x200), for either of two
    /// events (0x300), a thread-pool worker waiting for work (0x700) — beside threads that
    /// matter: 0x400 sleeps holding a mutex 0x500 waits for, 0x600 runs.
    fn service(b: Bitness) -> (Waits, u64) {
        let mut w = Waits::new(b);
        w.sleep(0x100, "housekeeping");
        let ready = w.event(Some("\\BaseNamedObjects\\WorkReady"));
        w.wait_single(0x200, ready, "worker_loop");
        let (stop, more) = (w.event(None), w.event(None));
        w.wait_multiple(0x300, &[stop, more], true, "timer_loop");
        w.sleep(0x400, "flush_queue");
        let queue = w.mutex("\\BaseNamedObjects\\JobQueue", Some(0x400));
        w.wait_single(0x500, queue, "enqueue_job");
        w.run(0x600, "compress");
        let ntdll = w.ntdll;
        let work = w.p.add_function(
            ntdll,
            Function::syscall("NtWaitForWorkViaWorkerFactory", 0x1d0),
        );
        let tpp = w.p.function(ntdll, "TppWorkerThread", 0x80);
        let [thunk, start] = w.start;
        w.p.thread(0x700, [work, tpp, thunk, start]);
        (w, ready)
    }

    #[test]
    fn sleeping_threads_pool_workers_and_waits_for_unowned_events_are_idle() {
        for b in [Bitness::X64, Bitness::X86, Bitness::Wow64] {
            let (w, ready) = service(b);
            let found = Analysed::exports_only(w.p).detect(&PassiveThread);
            assert_eq!(found.len(), 1, "{b:?}");
            let f = &found[0];
            assert_eq!(f.summary, "4 thread(s) are idle in ordinary waits");
            assert_eq!(f.threads, [0x100, 0x200, 0x300, 0x700], "{b:?}");
            let evidence = f.evidence();
            assert_eq!(
                evidence[..2],
                [
                    "thread 100 idle in NtDelayExecution (from service!housekeeping)".to_string(),
                    format!(
                        "thread 200 idle in Event \\BaseNamedObjects\\WorkReady (handle \
                         {ready:#x}, not signaled) (from service!worker_loop)"
                    ),
                ],
                "{b:?}"
            );
            assert_eq!(
                evidence[3],
                "thread 700 idle in NtWaitForWorkViaWorkerFactory"
            );
            assert_eq!(f.confidence(), Confidence::Medium);
        }
    }

    #[test]
    fn in_a_crash_dump_no_thread_is_called_idle() {
        for b in [Bitness::X64, Bitness::X86] {
            let (mut w, _) = service(b);
            w.crash(0x900, "parse_reply");
            let found = Analysed::exports_only(w.p).detect(&PassiveThread);
            assert!(found.is_empty(), "{b:?}: {found:#?}");
        }
    }

    #[test]
    fn a_kernel_wait_whose_object_is_not_its_argument_is_not_called_idle() {
        // The event's handle lies in the caller's locals, but the wait was given another
        // value: what it waits for is unknown, so it may be anything but idle.
        for b in [Bitness::X64, Bitness::X86] {
            let mut w = Waits::new(b);
            let ready = w.event(Some("\\BaseNamedObjects\\WorkReady"));
            w.wait_single(0x200, 0x7fc, "worker_loop")
                .local_word(2, 0x8, ready);
            w.run(0x600, "compress");
            let found = Analysed::exports_only(w.p).detect(&PassiveThread);
            assert!(found.is_empty(), "{b:?}: {found:#?}");
        }
    }
}
