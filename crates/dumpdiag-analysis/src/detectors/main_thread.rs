//! Main Thread: the process's first thread and what it is doing. Reported in dumps taken on
//! purpose, where the question is why the application does not respond and its main (often UI)
//! thread is the first place to look.

use crate::silent;
use crate::thread_facts::{in_system_call, main_thread};
use crate::{Detector, Evidence, Finding, Pattern, Strength};

pub struct MainThread;

impl Detector for MainThread {
    fn pattern(&self) -> Pattern {
        Pattern::MainThread
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        if !super::taken_on_purpose(ev) {
            silent!("a crash dump: the main thread is only asked about in dumps taken on purpose");
        }
        let Some(main) = main_thread(ev) else {
            silent!("no thread creation times and no thread running the image's main or WinMain");
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::Analysed;
    use crate::Confidence;
    use dumpdiag_synth::{unix_to_filetime, Exception, Func, Function, Module, ModuleId, Process};
    use dumpdiag_target::Arch;

    const WORKER_1: u32 = 0x10;
    const MAIN: u32 = 0x20;
    const WORKER_2: u32 = 0x30;

    /// A console program whose main waits for its two workers: main's thread is declared
    /// second, so that "first in the thread list" is not the answer; it was created with the
    /// process, the workers 5 and 6 seconds later.
    fn console(arch: Arch) -> Process {
        console_with_system(arch).0
    }

    /// [`console`], with ntdll and the two start frames for more threads.
    fn console_with_system(arch: Arch) -> (Process, ModuleId, [Func; 2]) {
        let mut p = Process::new(arch);
        let app = p.module(Module::new("C:\\app\\batch.exe"));
        let ntdll = p.module(Module::new("C:\\Windows\\System32\\ntdll.dll"));
        let kernel32 = p.module(Module::new("C:\\Windows\\System32\\kernel32.dll"));
        let wait = p.add_function(ntdll, Function::syscall("NtWaitForSingleObject", 4));
        let delay = p.add_function(ntdll, Function::syscall("NtDelayExecution", 0x34));
        let start = p.function(ntdll, "RtlUserThreadStart", 0x40);
        let thunk = p.function(kernel32, "BaseThreadInitThunk", 0x40);
        let main = p.function(app, "main", 0x80);
        let crt = p.function(app, "mainCRTStartup", 0x80);
        let worker = p.function(app, "worker", 0x80);
        let t0 = p.system.process_create_time;
        for (id, chain, after) in [
            (WORKER_1, vec![delay, worker, thunk, start], 5),
            (MAIN, vec![wait, main, crt, thunk, start], 0),
            (WORKER_2, vec![delay, worker, thunk, start], 6),
        ] {
            p.thread(id, chain).times.create_time = unix_to_filetime(t0 + after);
        }
        (p, ntdll, [thunk, start])
    }

    #[test]
    fn the_earliest_created_thread_is_the_main_thread_and_its_wait_is_named() {
        for arch in [Arch::Amd64, Arch::X86] {
            let a = Analysed::exports_only(console(arch));
            let found = a.detect(&MainThread);
            assert_eq!(found.len(), 1, "{arch:?}: {found:#?}");
            let f = &found[0];
            assert_eq!(f.threads, vec![MAIN]);
            assert_eq!(
                f.summary,
                "main thread 20 waits in ntdll!NtWaitForSingleObject, called from batch!main"
            );
            assert_eq!(
                f.evidence()[0],
                "thread 1 (id 20) is the main thread: earliest creation time and runs batch!main"
            );
            assert_eq!(f.confidence(), Confidence::High);
        }
    }

    #[test]
    fn without_thread_times_the_thread_running_winmain_is_the_main_thread() {
        for arch in [Arch::Amd64, Arch::X86] {
            let mut p = Process::new(arch);
            let app = p.module(Module::new("C:\\app\\editor.exe"));
            let ntdll = p.module(Module::new("C:\\Windows\\System32\\ntdll.dll"));
            let kernel32 = p.module(Module::new("C:\\Windows\\System32\\kernel32.dll"));
            let user32 = p.module(Module::new("C:\\Windows\\System32\\user32.dll"));
            let win32u = p.module(Module::new("C:\\Windows\\System32\\win32u.dll"));
            let get_message = p.add_function(win32u, Function::syscall("NtUserGetMessage", 0x1005));
            let get_message_w = p.function(user32, "GetMessageW", 0x80);
            let delay = p.add_function(ntdll, Function::syscall("NtDelayExecution", 0x34));
            let start = p.function(ntdll, "RtlUserThreadStart", 0x40);
            let thunk = p.function(kernel32, "BaseThreadInitThunk", 0x40);
            let win_main = p.function(app, "WinMain", 0x80);
            let crt = p.function(app, "WinMainCRTStartup", 0x80);
            let autosave = p.function(app, "autosave", 0x80);
            // MiniDumpNormal without thread info: no creation times to go by.
            p.thread(0x10, [delay, autosave, thunk, start])
                .times
                .create_time = 0;
            let ui: Vec<Func> = vec![get_message, get_message_w, win_main, crt, thunk, start];
            p.thread(0x20, ui).times.create_time = 0;
            let found = Analysed::exports_only(p).detect(&MainThread);
            assert_eq!(found.len(), 1, "{arch:?}: {found:#?}");
            assert_eq!(found[0].threads, vec![0x20]);
            assert_eq!(
                found[0].summary,
                "main thread 20 waits in win32u!NtUserGetMessage, called from editor!WinMain"
            );
            assert_eq!(
                found[0].evidence()[0],
                "thread 1 (id 20) is the main thread: runs editor!WinMain"
            );
        }
    }

    #[test]
    fn a_dump_taken_by_a_debugger_break_in_is_taken_on_purpose() {
        // DebugBreakProcess (ProcDump, a debugger attaching) creates a thread in the process
        // that runs DbgUiRemoteBreakin and stops in DbgBreakPoint's int 3: the dump's exception
        // is that breakpoint, and the application's threads are as they were.
        for arch in [Arch::Amd64, Arch::X86] {
            let (mut p, ntdll, [thunk, start]) = console_with_system(arch);
            let int3 = p.add_function(ntdll, Function::new("DbgBreakPoint", 0x10).leaf());
            let break_in = p.function(ntdll, "DbgUiRemoteBreakin", 0x60);
            p.thread(0x40, [int3, break_in, thunk, start]);
            p.exception(Exception::new(0x40, 0x8000_0003));
            let found = Analysed::exports_only(p).detect(&MainThread);
            assert_eq!(found.len(), 1, "{arch:?}: {found:#?}");
            assert_eq!(found[0].threads, vec![MAIN]);
        }
    }

    #[test]
    fn a_crash_dump_has_no_main_thread_finding() {
        // Everything as in a hang dump, but the dump was written for an access violation in a
        // worker: every thread was stopped by the crash, and the crash is the story.
        let mut p = console(Arch::Amd64);
        let mut e = Exception::new(WORKER_2, 0xc000_0005);
        e.parameters = vec![0, 0x18];
        p.exception(e);
        let a = Analysed::exports_only(p);
        assert!(a.detect(&MainThread).is_empty());
        assert!(!a.patterns().contains(&Pattern::MainThread));
    }
}
