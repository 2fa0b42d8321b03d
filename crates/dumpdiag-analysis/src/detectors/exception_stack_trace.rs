//! Exception Stack Trace: the faulting thread's stack recovered from the exception context.

use super::{exception_thread, top_frames};
use crate::{silent, Detector, Evidence, Finding, Pattern, Strength};

pub struct ExceptionStackTrace;

impl Detector for ExceptionStackTrace {
    fn pattern(&self) -> Pattern {
        Pattern::ExceptionStackTrace
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let Some(e) = &ev.exception else {
            silent!("the dump has no exception stream");
        };
        if ev.exception_frames().is_empty() {
            silent!(
                thread = e.thread_id,
                "the exception's thread is not in the dump or its context yields no frame"
            );
        }
        let top = ev
            .exception_frames()
            .first()
            .map(|f| f.call_site())
            .unwrap_or_default();
        vec![Finding::new(self.pattern(), Strength::Proven, format!("exception {:08x} on thread {:x} in {top}", e.record.code, e.thread_id))
            .caveats_of_frames(&ev.exception_frames()[..1])
            .threads(exception_thread(ev))

            .facts(top_frames(ev, 8))
            .recommend("Start from the stack recovered from the exception context (.ecxr; k), not the thread's dispatcher frames.")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::Analysed;
    use crate::Confidence;
    use dumpdiag_synth::{Exception, ExceptionContext, Func, Function, Module, Process};
    use dumpdiag_target::Arch;

    /// Thread 0x100 faulted in crash!parse_record and then ran the unhandled-exception filter,
    /// which waits: its own context is in the wait, the exception's at the faulting
    /// instruction (the body of parse_record, with parse_record's stack pointer). Returns the
    /// process and parse_record.
    fn crashed(arch: Arch, thread: u32) -> (Process, Func) {
        let mut p = Process::new(arch);
        let app = p.module(Module::new("C:\\app\\crash.exe"));
        let ntdll = p.module(Module::new("C:\\Windows\\System32\\ntdll.dll"));
        let kernel32 = p.module(Module::new("C:\\Windows\\System32\\kernel32.dll"));
        let kernelbase = p.module(Module::new("C:\\Windows\\System32\\KERNELBASE.dll"));
        let wait = p.add_function(ntdll, Function::syscall("NtWaitForSingleObject", 4));
        let filter = p.function(kernelbase, "UnhandledExceptionFilter", 0x80);
        let dispatcher = p.function(ntdll, "KiUserExceptionDispatcher", 0x80);
        let parse = p.function(app, "parse_record", 0x80);
        let main = p.function(app, "main", 0x80);
        let thunk = p.function(kernel32, "BaseThreadInitThunk", 0x40);
        let start = p.function(ntdll, "RtlUserThreadStart", 0x40);
        p.thread(0x100, [wait, filter, dispatcher, parse, main, thunk, start]);
        let mut regs = p.thread_ref(0x100).frame_context(3);
        let ip = if arch == Arch::X86 { "eip" } else { "rip" };
        regs.set(ip, parse.body());
        let mut e = Exception::new(thread, 0xc000_0005);
        e.parameters = vec![0, 0x10];
        e.context = ExceptionContext::Registers(regs);
        p.exception(e);
        (p, parse)
    }

    #[test]
    fn the_stack_is_walked_from_the_exception_context_not_the_dispatcher() {
        for arch in [Arch::Amd64, Arch::X86] {
            let (p, parse) = crashed(arch, 0x100);
            let a = Analysed::with_symbols(p);
            let found = a.detect(&ExceptionStackTrace);
            assert_eq!(found.len(), 1, "{arch:?}: {found:#?}");
            let f = &found[0];
            assert_eq!(f.threads, vec![0x100]);
            assert_eq!(
                f.summary, "exception c0000005 on thread 100 in crash!parse_record",
                "{arch:?}"
            );
            let evidence = f.evidence().join("\n");
            assert!(
                evidence.starts_with("thread 100 frame 00: crash!parse_record"),
                "{arch:?}: {evidence}"
            );
            assert!(evidence.contains("frame 01: crash!main"), "{evidence}");
            assert!(evidence.contains("ntdll!RtlUserThreadStart"), "{evidence}");
            // What ran after the fault is not the exception's stack.
            assert!(!evidence.contains("NtWaitForSingleObject"), "{evidence}");
            assert!(!evidence.contains("UnhandledExceptionFilter"), "{evidence}");
            assert_eq!(a.evidence().exception_frames()[0].ip, parse.body());
            assert_eq!(f.confidence(), Confidence::High, "{arch:?}");
        }
    }

    #[test]
    fn export_names_only_lower_the_confidence() {
        let (p, _) = crashed(Arch::Amd64, 0x100);
        let found = Analysed::exports_only(p).detect(&ExceptionStackTrace);
        assert_eq!(found.len(), 1);
        assert!(found[0].summary.ends_with("in crash!parse_record"));
        assert_eq!(found[0].confidence(), Confidence::Medium);
    }

    #[test]
    fn no_exception_or_no_faulting_thread_is_no_exception_stack() {
        // A dump taken on purpose: the same threads, no exception stream.
        let mut p = Process::new(Arch::Amd64);
        let app = p.module(Module::new("C:\\app\\crash.exe"));
        let main = p.function(app, "main", 0x80);
        p.thread(0x100, [main]);
        assert!(Analysed::with_symbols(p)
            .detect(&ExceptionStackTrace)
            .is_empty());
        // An exception record whose thread the dump does not hold: no context to walk.
        let (p, _) = crashed(Arch::Amd64, 0x999);
        let a = Analysed::with_symbols(p);
        assert!(a.evidence().exception.is_some());
        assert!(a.detect(&ExceptionStackTrace).is_empty());
    }
}
