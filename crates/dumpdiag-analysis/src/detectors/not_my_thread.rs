//! Not My Thread: threads whose start routine lies outside the application's own modules — thread
//! pools, system services, third-party components — set apart from the application's threads.

use crate::silent;
use crate::thread_facts::{is_dump_writer, thread_procedure};
use crate::{Detector, Evidence, Finding, Pattern, Strength};

pub struct NotMyThread;

impl Detector for NotMyThread {
    fn pattern(&self) -> Pattern {
        Pattern::NotMyThread
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let mut foreign = Vec::new();
        let mut own = 0;
        for t in &ev.threads {
            if is_dump_writer(t) {
                continue;
            }
            let Some(p) = thread_procedure(ev, t) else {
                continue;
            };
            match p.module.as_deref() {
                Some(m) if ev.is_app_module(m) => own += 1,
                _ => foreign.push((t, p)),
            }
        }
        if foreign.is_empty() {
            silent!("every thread with a known start routine started in the application's modules");
        }
        let mut evidence: Vec<String> = foreign
            .iter()
            .map(|(t, p)| {
                let app = crate::thread_facts::application_caller(ev, t)
                    .map(|f| format!("; runs application code {}", f.call_site()));
                format!(
                    "thread {:x} started in {} ({:#x}){}",
                    t.id,
                    p.name,
                    p.address,
                    app.unwrap_or_default()
                )
            })
            .collect();
        evidence.push(format!(
            "{own} thread(s) started in the application's own modules"
        ));
        vec![Finding::new(self.pattern(), Strength::Likely, format!("{} thread(s) were created by system or third-party code", foreign.len()))
            .threads(foreign.iter().map(|(t, _)| t.id).collect())
            .notes(evidence)
            .recommend("These threads belong to the component that started them (thread pool, runtime, injected DLL); look there for their purpose before suspecting the application.")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::Analysed;
    use crate::Confidence;
    use dumpdiag_synth::{Func, Function, Module, ModuleId, Process};
    use dumpdiag_target::Arch;

    struct Threads {
        p: Process,
        app: ModuleId,
        ntdll: ModuleId,
        /// NtWaitForSingleObject.
        wait: Func,
        /// BaseThreadInitThunk, RtlUserThreadStart.
        start: [Func; 2],
    }

    /// A process whose thread 0x10 started in the application's own `worker`.
    fn process(arch: Arch) -> Threads {
        let mut p = Process::new(arch);
        let app = p.module(Module::new("C:\\app\\server.exe"));
        let ntdll = p.module(Module::new("C:\\Windows\\System32\\ntdll.dll"));
        let kernel32 = p.module(Module::new("C:\\Windows\\System32\\kernel32.dll"));
        let wait = p.add_function(ntdll, Function::syscall("NtWaitForSingleObject", 4));
        let start = p.function(ntdll, "RtlUserThreadStart", 0x40);
        let thunk = p.function(kernel32, "BaseThreadInitThunk", 0x40);
        let worker = p.function(app, "worker", 0x80);
        p.thread(0x10, [wait, worker, thunk, start]);
        Threads {
            p,
            app,
            ntdll,
            wait,
            start: [thunk, start],
        }
    }

    #[test]
    fn a_thread_pool_worker_started_by_ntdll_is_not_the_applications() {
        // The system thread pool's workers start in ntdll!TppWorkerThread under the usual
        // start frames, even while they run the application's callback.
        for arch in [Arch::Amd64, Arch::X86] {
            let mut t = process(arch);
            let factory = t.p.add_function(
                t.ntdll,
                Function::syscall("NtWaitForWorkViaWorkerFactory", 0x1c6),
            );
            let pool = t.p.function(t.ntdll, "TppWorkerThread", 0x100);
            let callback = t.p.function(t.app, "on_work_item", 0x80);
            let [thunk, start] = t.start;
            t.p.thread(0x20, [factory, pool, thunk, start]);
            t.p.thread(0x30, [t.wait, callback, pool, thunk, start]);
            let found = Analysed::exports_only(t.p).detect(&NotMyThread);
            assert_eq!(found.len(), 1, "{arch:?}: {found:#?}");
            let f = &found[0];
            assert_eq!(f.threads, vec![0x20, 0x30], "{arch:?}");
            assert_eq!(
                f.summary,
                "2 thread(s) were created by system or third-party code"
            );
            let evidence = f.evidence();
            assert!(evidence[0].starts_with("thread 20 started in ntdll!TppWorkerThread (0x"));
            assert!(
                !evidence[0].contains("runs application code"),
                "{evidence:?}"
            );
            assert!(
                evidence[1].starts_with("thread 30 started in ntdll!TppWorkerThread (0x")
                    && evidence[1].ends_with("; runs application code server!on_work_item"),
                "{arch:?}: {evidence:?}"
            );
            assert_eq!(
                evidence[2],
                "1 thread(s) started in the application's own modules"
            );
            assert_eq!(f.confidence(), Confidence::Medium);
        }
    }

    #[test]
    fn threads_that_all_start_in_the_application_are_not_reported() {
        // Thread 0x20 sits in system code (a wait inside ntdll and a start thunk of kernel32)
        // but started in the application's own listener.
        for arch in [Arch::Amd64, Arch::X86] {
            let mut t = process(arch);
            let listener = t.p.function(t.app, "listener", 0x80);
            let [thunk, start] = t.start;
            t.p.thread(0x20, [t.wait, listener, thunk, start]);
            let found = Analysed::exports_only(t.p).detect(&NotMyThread);
            assert!(found.is_empty(), "{arch:?}: {found:#?}");
        }
    }
}
