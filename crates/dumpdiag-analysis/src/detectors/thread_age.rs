//! Thread Age: thread creation times against the process's age at dump time. Threads created
//! long after the process started and shortly before the dump are the news in it: a request
//! being served, a thread created to recover or to report, or churn.
//!
//! A thread is young when it appeared after a quiet period longer than its own life: the gap
//! between its creation and the creation of the thread before it is larger than the time from
//! its creation to the dump. That holds whatever the process's age and however long the dump
//! tool took to attach (a loaded machine delays the dump, not the thread creations before it),
//! and steady thread-pool churn (many small gaps) does not trip it. The gap after the initial
//! thread alone is different: it holds the process's start-up, untimed, so a thread that
//! followed only the initial thread must also be recent against the process's whole life.

use crate::silent;
use crate::thread_facts::{is_dump_writer, thread_procedure};
use crate::{Detector, Evidence, Fact, Finding, Pattern, Strength, ThreadView};

pub struct ThreadAge;

/// FILETIME of the Unix epoch, in 100 ns units.
const UNIX_EPOCH_FILETIME: u64 = 116_444_736_000_000_000;
const TICKS_PER_SECOND: u64 = 10_000_000;
/// The dump's own time is recorded in whole seconds (MINIDUMP_HEADER.TimeDateStamp): a quiet
/// period shorter than a few of those cannot be told from rounding.
const MIN_QUIET_PERIOD_S: f64 = 2.0;
/// How many times its own age the process must have lived for a thread that followed only the
/// initial thread to be young (see `after_startup` below).
const STARTUP_GAP_AGE_RATIO: f64 = 10.0;

impl Detector for ThreadAge {
    fn pattern(&self) -> Pattern {
        Pattern::ThreadAge
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let dump_time = ev.target().facts().dump_time as u64;
        let mut created: Vec<(&ThreadView, u64)> = ev
            .threads
            .iter()
            .filter_map(|t| t.times.as_ref().map(|x| (t, x.create_time)))
            .filter(|c| c.1 > UNIX_EPOCH_FILETIME)
            .collect();
        if dump_time == 0 {
            silent!("the dump records no time of its own");
        }
        if created.len() < 2 {
            silent!("fewer than two threads with a creation time");
        }
        created.sort_by_key(|c| c.1);
        // The dump time in FILETIME units, rounded up to the end of its second so that no thread
        // looks created after the dump.
        let dump_ft = (dump_time + 1) * TICKS_PER_SECOND + UNIX_EPOCH_FILETIME;
        let process_start = ev
            .target()
            .facts()
            .process_create_time
            .map(|s| s as u64 * TICKS_PER_SECOND + UNIX_EPOCH_FILETIME)
            .unwrap_or(created[0].1)
            .min(created[0].1);
        let seconds = |ticks: u64| ticks as f64 / TICKS_PER_SECOND as f64;
        let process_age = seconds(dump_ft.saturating_sub(process_start));
        let young: Vec<(&ThreadView, u64, f64)> = created
            .windows(2)
            .enumerate()
            .filter_map(|(i, w)| {
                let (t, c) = w[1];
                let quiet = seconds(c.saturating_sub(w[0].1));
                let age = seconds(dump_ft.saturating_sub(c));
                // After the initial thread alone, the gap holds the process's initialization
                // (loader, DLL_PROCESS_ATTACH, CRT start-up all run on the initial thread before
                // main), which the dump does not time and which a loaded machine stretches to
                // seconds: the first threads an application starts are young only when they
                // came in the last tenth of the process's life.
                let after_startup = i > 0 || age * STARTUP_GAP_AGE_RATIO <= process_age;
                (quiet >= MIN_QUIET_PERIOD_S && quiet > age && after_startup && !is_dump_writer(t))
                    .then_some((t, c, quiet))
            })
            .collect();
        if young.is_empty() {
            silent!("no thread appeared after a quiet period longer than its own life");
        }
        let mut facts = vec![Fact::Note(format!(
            "process age at dump time: about {process_age:.0} s"
        ))];
        for (t, c, quiet) in &young {
            let started = thread_procedure(ev, t)
                .map(|p| format!(", started in {}", p.name))
                .unwrap_or_default();
            facts.push(Fact::Thread {
                id: t.id,
                note: format!(
                    "thread {:x} created {:.1} s after the process started and {quiet:.1} s after \
                     the thread before it, {:.1} s before the dump{started}",
                    t.id,
                    seconds(c.saturating_sub(process_start)),
                    seconds(dump_ft.saturating_sub(*c)),
                ),
            });
        }
        vec![Finding::new(
            self.pattern(),
            Strength::Likely,
            format!(
                "{} thread(s) appeared shortly before the dump after a quiet period in the \
                 process's {process_age:.0} s life",
                young.len()
            ),
        )
        .threads(young.iter().map(|(t, _, _)| t.id).collect())
        .facts(facts)
        .recommend(
            "Young threads are what changed just before the dump: see what created them and what \
             they do; many of them suggest thread churn.",
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::Analysed;
    use crate::Confidence;
    use dumpdiag_synth::{unix_to_filetime, Func, Function, Module, ModuleId, Process};
    use dumpdiag_target::Arch;

    /// 100 ns ticks per second, as FILETIME counts them.
    const TICKS: f64 = 1e7;

    /// A service: every thread sleeps in worker, except the ones `on_request` serves.
    struct Service {
        p: Process,
        app: ModuleId,
        worker: Vec<Func>,
        on_request: Vec<Func>,
        start: [Func; 2],
    }

    fn service(arch: Arch, age_s: u32) -> Service {
        let mut p = Process::new(arch);
        p.system.process_create_time = p.system.dump_time - age_s;
        let app = p.module(Module::new("C:\\app\\svc.exe"));
        let ntdll = p.module(Module::new("C:\\Windows\\System32\\ntdll.dll"));
        let kernel32 = p.module(Module::new("C:\\Windows\\System32\\kernel32.dll"));
        let wait = p.add_function(ntdll, Function::syscall("NtWaitForSingleObject", 4));
        let delay = p.add_function(ntdll, Function::syscall("NtDelayExecution", 0x34));
        let start = p.function(ntdll, "RtlUserThreadStart", 0x40);
        let thunk = p.function(kernel32, "BaseThreadInitThunk", 0x40);
        let worker = p.function(app, "worker", 0x80);
        let on_request = p.function(app, "on_request", 0x80);
        Service {
            p,
            app,
            worker: vec![delay, worker, thunk, start],
            on_request: vec![wait, on_request, thunk, start],
            start: [thunk, start],
        }
    }

    impl Service {
        /// A thread running `chain`, created `before_dump` seconds before the dump was written.
        fn thread(&mut self, id: u32, chain: Vec<Func>, before_dump: f64) {
            let dump = unix_to_filetime(self.p.system.dump_time);
            let created = dump - (before_dump * TICKS) as u64;
            self.p.thread(id, chain).times.create_time = created;
        }
    }

    #[test]
    fn a_thread_created_after_a_long_quiet_period_shortly_before_the_dump_is_young() {
        for arch in [Arch::Amd64, Arch::X86] {
            let mut s = service(arch, 3600);
            s.thread(0x10, s.worker.clone(), 3600.0);
            s.thread(0x20, s.worker.clone(), 3599.0);
            s.thread(0x30, s.on_request.clone(), 10.0);
            let found = Analysed::exports_only(s.p).detect(&ThreadAge);
            assert_eq!(found.len(), 1, "{arch:?}: {found:#?}");
            let f = &found[0];
            assert_eq!(f.threads, vec![0x30]);
            // The dump time is whole seconds and counted to the end of its second.
            assert_eq!(
                f.summary,
                "1 thread(s) appeared shortly before the dump after a quiet period in the \
                 process's 3601 s life"
            );
            assert_eq!(
                f.evidence(),
                vec![
                    "process age at dump time: about 3601 s".to_string(),
                    "thread 30 created 3590.0 s after the process started and 3589.0 s after \
                     the thread before it, 11.0 s before the dump, started in svc!on_request"
                        .to_string(),
                ],
                "{arch:?}"
            );
            assert_eq!(f.confidence(), Confidence::Medium);
        }
    }

    #[test]
    fn threads_created_together_are_not_young() {
        let mut s = service(Arch::Amd64, 5);
        for (id, before) in [(0x10, 5.0), (0x20, 4.9), (0x30, 4.8)] {
            s.thread(id, s.worker.clone(), before);
        }
        let found = Analysed::exports_only(s.p).detect(&ThreadAge);
        assert!(found.is_empty(), "{found:#?}");
    }

    #[test]
    fn steady_thread_churn_is_not_a_young_thread() {
        // A pool adding a thread every 1.5 s all its life, the last 1.5 s before the dump: no
        // creation comes after a quiet period.
        let mut s = service(Arch::Amd64, 30);
        for k in 0..20u32 {
            s.thread(0x100 + 4 * k, s.worker.clone(), 30.0 - 1.5 * k as f64);
        }
        let found = Analysed::exports_only(s.p).detect(&ThreadAge);
        assert!(found.is_empty(), "{found:#?}");
    }

    #[test]
    fn a_thread_created_after_a_quiet_period_but_long_ago_is_not_young() {
        // 1000 s of quiet before it, but it has lived 2600 s since: old news.
        let mut s = service(Arch::Amd64, 3600);
        s.thread(0x10, s.worker.clone(), 3600.0);
        s.thread(0x20, s.on_request.clone(), 2600.0);
        let found = Analysed::exports_only(s.p).detect(&ThreadAge);
        assert!(found.is_empty(), "{found:#?}");
    }

    #[test]
    fn the_thread_writing_the_dump_is_not_young_news() {
        // The youngest thread calls MiniDumpWriteDump: it was created to write this dump.
        let mut s = service(Arch::Amd64, 3600);
        let dbghelp =
            s.p.module(Module::new("C:\\Windows\\System32\\dbghelp.dll"));
        let write = s.p.function(dbghelp, "MiniDumpWriteDump", 0x80);
        let report = s.p.function(s.app, "write_report", 0x80);
        let [thunk, start] = s.start;
        s.thread(0x10, s.worker.clone(), 3600.0);
        s.thread(0x20, vec![write, report, thunk, start], 2.0);
        let found = Analysed::exports_only(s.p).detect(&ThreadAge);
        assert!(found.is_empty(), "{found:#?}");
    }

    #[test]
    fn the_first_workers_after_a_slow_start_up_are_not_young() {
        // The initial thread, then the application's two workers 4.2 s later (a start-up
        // stretched by a loaded machine), dumped 3.1 s after that: start-up, not news.
        let mut s = service(Arch::Amd64, 7);
        s.thread(0x10, s.worker.clone(), 7.3);
        s.thread(0x20, s.worker.clone(), 3.1);
        s.thread(0x24, s.worker.clone(), 3.1);
        let found = Analysed::exports_only(s.p).detect(&ThreadAge);
        assert!(found.is_empty(), "{found:#?}");
        // The same single-threaded service after an hour: its first worker is young.
        let mut s = service(Arch::Amd64, 3600);
        s.thread(0x10, s.worker.clone(), 3600.0);
        s.thread(0x20, s.on_request.clone(), 3.0);
        let found = Analysed::exports_only(s.p).detect(&ThreadAge);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].threads, vec![0x20]);
    }
}
