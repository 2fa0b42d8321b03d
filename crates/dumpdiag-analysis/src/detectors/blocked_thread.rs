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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{Analysed, Bitness, Waits};
    use crate::Confidence;
    use dumpdiag_synth::Module;

    const ALL: [Bitness; 3] = [Bitness::X64, Bitness::X86, Bitness::Wow64];

    /// 0x200 sleeps holding the job-queue mutex, 0x400 compresses; 0x100 waits for the mutex,
    /// 0x300 for thread 0x400 to end, 0x500 for both at once (WaitAll). Returns the process
    /// and the two handles.
    fn blocked(b: Bitness) -> (Waits, u64, u64) {
        let mut w = Waits::new(b);
        w.sleep(0x200, "flush_queue");
        w.run(0x400, "compress");
        let mutex = w.mutex("\\BaseNamedObjects\\JobQueue", Some(0x200));
        let worker = w.thread_handle(0x400);
        w.wait_single(0x100, mutex, "enqueue_job");
        w.wait_single(0x300, worker, "shutdown");
        w.wait_multiple(0x500, &[mutex, worker], false, "drain");
        (w, mutex, worker)
    }

    #[test]
    fn threads_waiting_for_a_held_mutex_or_a_running_thread_are_blocked() {
        for b in ALL {
            let (w, mutex, worker) = blocked(b);
            let found = Analysed::exports_only(w.p).detect(&BlockedThread);
            assert_eq!(found.len(), 3, "{b:?}: {found:#?}");
            let held = format!(
                "Mutant \\BaseNamedObjects\\JobQueue (handle {mutex:#x}, held by thread 200)"
            );
            let running = format!("Thread (handle {worker:#x} of thread 400, still running)");
            let summaries: Vec<&str> = found.iter().map(|f| f.summary.as_str()).collect();
            assert_eq!(
                summaries,
                [
                    format!("thread 100 is blocked waiting for {held}"),
                    format!("thread 300 is blocked waiting for {running}"),
                    format!("thread 500 is blocked waiting for {held} and {running}"),
                ],
                "{b:?}"
            );
            let threads: Vec<Vec<u32>> = found.iter().map(|f| f.threads.clone()).collect();
            assert_eq!(threads, [[0x100], [0x300], [0x500]]);
            // Each wait names the thread that must act; the application frame that waits follows.
            let blockers: Vec<Option<u32>> = found[2]
                .facts
                .iter()
                .filter_map(|f| match f {
                    Fact::Wait(w) => Some(w.blocker),
                    _ => None,
                })
                .collect();
            assert_eq!(blockers, [Some(0x200), Some(0x400)], "{b:?}");
            assert!(
                found[0].evidence()[1].starts_with("thread 100 frame 02: service!enqueue_job+0x"),
                "{b:?}: {:?}",
                found[0].evidence()
            );
            assert!(found.iter().all(|f| f.confidence() == Confidence::Medium));
        }
    }

    #[test]
    fn a_debuggers_break_in_is_a_dump_taken_on_purpose() {
        for b in [Bitness::X64, Bitness::X86] {
            let (mut w, _, _) = blocked(b);
            w.debugger_break_in(0x900);
            let found = Analysed::exports_only(w.p).detect(&BlockedThread);
            assert_eq!(found.len(), 3, "{b:?}: {found:#?}");
        }
    }

    #[test]
    fn the_same_waits_in_a_crash_dump_are_no_hang() {
        for b in ALL {
            let (mut w, _, _) = blocked(b);
            w.crash(0x900, "parse_reply");
            let found = Analysed::exports_only(w.p).detect(&BlockedThread);
            assert!(found.is_empty(), "{b:?}: {found:#?}");
        }
    }

    #[test]
    fn a_handle_on_the_stack_that_is_not_the_waits_argument_does_not_count() {
        for b in ALL {
            let mut w = Waits::new(b);
            w.sleep(0x200, "flush_queue");
            let mutex = w.mutex("\\BaseNamedObjects\\JobQueue", Some(0x200));
            // The wait's argument is a handle the dump's table does not list; the mutex's
            // handle value only lies in the caller's locals.
            w.wait_single(0x100, 0x7fc, "enqueue_job")
                .local_word(2, 0x8, mutex);
            let a = Analysed::exports_only(w.p);
            assert!(a.evidence().waits().is_empty(), "{b:?}");
            assert!(a.detect(&BlockedThread).is_empty(), "{b:?}");
        }
    }

    #[test]
    fn waiting_for_an_event_or_for_the_thread_writing_the_dump_is_not_blocked() {
        for b in [Bitness::X64, Bitness::X86] {
            let mut w = Waits::new(b);
            // 0x400 writes this dump (MiniDumpWriteDump): waiting for it ends with the dump.
            let dbghelp =
                w.p.module(Module::new("C:\\Windows\\System32\\dbghelp.dll"));
            let write = w.p.function(dbghelp, "MiniDumpWriteDump", 0x80);
            let chain = w.chain(&[write], "write_report");
            w.p.thread(0x400, chain);
            let writer = w.thread_handle(0x400);
            let event = w.event(Some("\\BaseNamedObjects\\WorkReady"));
            w.wait_single(0x100, event, "worker_loop");
            w.wait_single(0x300, writer, "watchdog");
            let a = Analysed::exports_only(w.p);
            assert_eq!(
                a.evidence().waits().len(),
                2,
                "{b:?}: the waits are resolved"
            );
            let found = a.detect(&BlockedThread);
            assert!(found.is_empty(), "{b:?}: {found:#?}");
        }
    }
}
