//! Active Thread: threads that were running or ready when a dump was taken on purpose — their
//! top frame is ordinary code, not a system call (by name, or by the instruction before it). In a crash dump every thread was stopped by
//! the crash, so only dumps taken on purpose are asked.

use crate::silent;
use crate::thread_facts::{is_dump_writer, top_frame_state, TopFrame};
use crate::{Detector, Evidence, Fact, Finding, Pattern, Strength};

pub struct ActiveThread;

impl Detector for ActiveThread {
    fn pattern(&self) -> Pattern {
        Pattern::ActiveThread
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        if !super::taken_on_purpose(ev) {
            silent!("a crash dump: the crash stopped every thread, running or not");
        }
        let active: Vec<_> = ev
            .threads
            .iter()
            .filter(|t| top_frame_state(ev, t) == TopFrame::Running && !is_dump_writer(t))
            .collect();
        if active.is_empty() {
            silent!("every thread's top frame is in a system call (or writes the dump)");
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::Analysed;
    use crate::Confidence;
    use dumpdiag_synth::{Exception, Func, Function, Module, ModuleId, Process};
    use dumpdiag_target::Arch;

    const RUNNING: u32 = 0x10;
    const WAITING: u32 = 0x20;

    struct Hang {
        p: Process,
        app: ModuleId,
        /// BaseThreadInitThunk, RtlUserThreadStart.
        start: [Func; 2],
    }

    /// A process where RUNNING computes a checksum (its top frame is ordinary code) and
    /// WAITING waits in NtWaitForSingleObject for it.
    fn hang(arch: Arch) -> Hang {
        let mut p = Process::new(arch);
        let app = p.module(Module::new("C:\\app\\sum.exe"));
        let ntdll = p.module(Module::new("C:\\Windows\\System32\\ntdll.dll"));
        let kernel32 = p.module(Module::new("C:\\Windows\\System32\\kernel32.dll"));
        let wait = p.add_function(ntdll, Function::syscall("NtWaitForSingleObject", 4));
        let start = p.function(ntdll, "RtlUserThreadStart", 0x40);
        let thunk = p.function(kernel32, "BaseThreadInitThunk", 0x40);
        let checksum = p.add_function(app, Function::new("checksum", 0x40).leaf());
        let worker = p.function(app, "worker", 0x80);
        let main = p.function(app, "main", 0x80);
        p.thread(RUNNING, [checksum, worker, thunk, start]);
        p.thread(WAITING, [wait, main, thunk, start]);
        Hang {
            p,
            app,
            start: [thunk, start],
        }
    }

    #[test]
    fn a_thread_whose_top_frame_is_ordinary_code_is_active() {
        for arch in [Arch::Amd64, Arch::X86] {
            let found = Analysed::exports_only(hang(arch).p).detect(&ActiveThread);
            assert_eq!(found.len(), 1, "{arch:?}: {found:#?}");
            let f = &found[0];
            assert_eq!(f.threads, vec![RUNNING], "{arch:?}");
            // 156250 + 312500 ticks of 100 ns of kernel and user time.
            assert_eq!(
                f.evidence(),
                vec!["thread 10 (0.05 s CPU) runs sum!checksum ← sum!worker ← \
                     kernel32!BaseThreadInitThunk"
                    .to_string()],
                "{arch:?}"
            );
            assert_eq!(f.confidence(), Confidence::Medium);
        }
    }

    #[test]
    fn in_a_crash_dump_no_thread_is_active() {
        // The same running thread, but the dump was written because it faulted: a crash stops
        // every thread where it was, so "running" says nothing.
        let mut h = hang(Arch::Amd64);
        let mut e = Exception::new(RUNNING, 0xc000_0005);
        e.parameters = vec![0, 0];
        h.p.exception(e);
        assert!(Analysed::exports_only(h.p).detect(&ActiveThread).is_empty());
    }

    #[test]
    fn a_thread_in_a_system_call_stub_without_a_name_of_its_own_is_waiting() {
        // Exports name only the stubs a module exports; without PDBs a stub may go by the
        // export before it (ntdll!RtlExitUserThread+0x40) or by no name at all (win32u without
        // an export directory). The instruction before the thread's ip is what tells: syscall
        // on x64, sysenter on x86.
        for arch in [Arch::Amd64, Arch::X86] {
            let mut p = Process::new(arch);
            let app = p.module(Module::new("C:\\app\\ui.exe"));
            let ntdll = p.module(Module::new("C:\\Windows\\System32\\ntdll.dll"));
            let win32u = p.module(Module::new("C:\\Windows\\System32\\win32u.dll").no_exports());
            let kernel32 = p.module(Module::new("C:\\Windows\\System32\\kernel32.dll"));
            // Laid out just before the hidden stub, so exports name the stub after it.
            p.function(ntdll, "RtlExitUserThread", 0x40);
            let alert = p.add_function(
                ntdll,
                Function::syscall("NtWaitForAlertByThreadId", 0x1bd).hidden(),
            );
            let get_message = p.add_function(win32u, Function::syscall("NtUserGetMessage", 0x1005));
            let start = p.function(ntdll, "RtlUserThreadStart", 0x40);
            let thunk = p.function(kernel32, "BaseThreadInitThunk", 0x40);
            let main = p.function(app, "main", 0x80);
            let worker = p.function(app, "worker", 0x80);
            p.thread(0x10, [get_message, main, thunk, start]);
            p.thread(0x20, [alert, worker, thunk, start]);
            let a = Analysed::exports_only(p);
            let ev = a.evidence();
            let tops: Vec<String> = ev.threads.iter().map(|t| t.frames[0].call_site()).collect();
            assert!(tops[0].starts_with("win32u+0x"), "{arch:?}: {tops:?}");
            assert_eq!(tops[1], "ntdll!RtlExitUserThread", "{arch:?}");
            let found = a.detect(&ActiveThread);
            assert!(found.is_empty(), "{arch:?}: {found:#?}");
        }
    }

    #[test]
    fn the_thread_writing_the_dump_is_not_active() {
        // A process that writes its own dump: the writing thread runs (dbgcore's code walking
        // memory) but it shows the dumper, not the application.
        let mut h = hang(Arch::Amd64);
        let dbgcore =
            h.p.module(Module::new("C:\\Windows\\System32\\dbgcore.dll"));
        let write = h.p.function(dbgcore, "MiniDumpWriteDump", 0x80);
        let report = h.p.function(h.app, "write_report", 0x80);
        let [thunk, start] = h.start;
        h.p.thread(0x30, [write, report, thunk, start]);
        let found = Analysed::exports_only(h.p).detect(&ActiveThread);
        assert_eq!(found[0].threads, vec![RUNNING], "{found:#?}");
    }
}
