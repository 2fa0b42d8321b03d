//! Manual Dump: the dump was taken on purpose — it has no exception stream (Task Manager,
//! ProcDump without an exception trigger, `MiniDumpWriteDump` called by a watchdog), or its only
//! exception is a debugger's own breakpoint (the initial breakpoint of a process started under
//! a debugger, or the break-in of an attaching debugger, recorded by `.dump`).

use super::debugger_break;
use crate::{silent, Caveat, Detector, Evidence, Finding, Pattern, Strength};

pub struct ManualDump;

impl Detector for ManualDump {
    fn pattern(&self) -> Pattern {
        Pattern::ManualDump
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let (why, caveat) = match (&ev.exception, debugger_break(ev)) {
            (None, _) => ("the dump has no exception stream".to_string(), None),
            (Some(_), Some(b)) => {
                let caveat = (!b.seen_instruction).then(|| {
                    Caveat::MissingMemory("the breakpoint's instruction bytes".to_string())
                });
                (
                    format!("its only exception is a debugger breakpoint: {}", b.how),
                    caveat,
                )
            }
            (Some(e), None) => silent!(
                "the exception {:08x} is not a debugger's own breakpoint",
                e.record.code
            ),
        };
        let mut f = Finding::new(
            self.pattern(),
            Strength::Proven,
            format!("dump taken on purpose: {why}"),
        )
        .notes([why])
        .recommend(
            "Look at what the threads wait for (hangs), at memory and handle counts (leaks), or \
             at CPU times (spikes).",
        );
        if let Some(c) = caveat {
            f = f.caveat(c);
        }
        vec![f]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{Analysed, Bitness, Waits};
    use crate::Confidence;
    use dumpdiag_synth::{Exception, Function, Module, Process};
    use dumpdiag_target::Arch;

    const BREAKPOINT: u32 = 0x8000_0003;

    #[test]
    fn a_dump_without_an_exception_stream_was_taken_on_purpose() {
        for b in [Bitness::X64, Bitness::X86] {
            let mut w = Waits::new(b);
            w.sleep(0x100, "housekeeping");
            let found = Analysed::exports_only(w.p).detect(&ManualDump);
            assert_eq!(found.len(), 1, "{b:?}");
            let f = &found[0];
            assert_eq!(
                f.summary,
                "dump taken on purpose: the dump has no exception stream"
            );
            assert_eq!(f.evidence(), ["the dump has no exception stream"]);
            assert_eq!(f.confidence(), Confidence::High);
        }
    }

    #[test]
    fn a_debuggers_break_in_recognised_by_name_was_taken_on_purpose() {
        for b in [Bitness::X64, Bitness::X86] {
            let mut w = Waits::new(b);
            w.sleep(0x100, "housekeeping");
            w.debugger_break_in(0x900);
            let a = Analysed::exports_only(w.p);
            let found = a.detect(&ManualDump);
            assert_eq!(found.len(), 1, "{b:?}");
            assert_eq!(
                found[0].summary,
                "dump taken on purpose: its only exception is a debugger breakpoint: the \
                 breakpoint is the debugger's own (ntdll!DbgBreakPoint)"
            );
            assert_eq!(found[0].confidence(), Confidence::High);
            // The injected thread shows the debugger, not the application.
            let ev = a.evidence();
            let marked: Vec<u32> = ev
                .threads
                .iter()
                .filter(|t| t.debugger_break)
                .map(|t| t.id)
                .collect();
            assert_eq!(marked, [0x900], "{b:?}");
        }
    }

    /// The break-in thread of a process whose `module` (ntdll) has no names (no exports, no
    /// symbols): a breakpoint at the start of a function of it, called from another, under
    /// kernel32's thread start. `in_dump`: the module's image is in the dump; `int3`: the
    /// function starts with `int 3`.
    fn nameless_break_in(arch: Arch, module: &str, in_dump: bool, int3: bool) -> Process {
        let mut p = Process::new(arch);
        let app = p.module(Module::new("C:\\app\\service.exe"));
        let mut spec = Module::new(module).no_exports().no_symbols();
        if !in_dump {
            spec = spec.not_in_dump();
        }
        let system = p.module(spec);
        let kernel32 = p.module(Module::new("C:\\Windows\\System32\\kernel32.dll"));
        let main = p.function(app, "main", 0x80);
        let brk = p.add_function(system, Function::new("DbgBreakPoint", 0x10).leaf());
        let remote = p.function(system, "DbgUiRemoteBreakin", 0x80);
        let thunk = p.function(kernel32, "BaseThreadInitThunk", 0x40);
        let start = p.function(system, "RtlUserThreadStart", 0x40);
        p.thread(0x100, [main, thunk, start]);
        p.thread(0x900, [brk, remote, thunk, start]);
        if int3 {
            p.write(brk.addr, &[0xcc, 0xc3]);
        }
        p.exception(Exception::new(0x900, BREAKPOINT));
        p
    }

    const NTDLL: &str = "C:\\Windows\\System32\\ntdll.dll";

    #[test]
    fn a_break_in_without_names_is_recognised_by_its_int_3_in_ntdll() {
        for arch in [Arch::Amd64, Arch::X86] {
            let p = nameless_break_in(arch, NTDLL, true, true);
            let at = p.frames(0x900)[0].ip;
            let a = Analysed::exports_only(p);
            assert_eq!(a.evidence().exception_frames()[0].function, None);
            let found = a.detect(&ManualDump);
            assert_eq!(found.len(), 1, "{arch:?}");
            assert_eq!(
                found[0].summary,
                format!(
                    "dump taken on purpose: its only exception is a debugger breakpoint: the \
                     breakpoint at {at:#x} is an int 3 in ntdll on a thread that runs no \
                     application code"
                )
            );
            assert_eq!(found[0].confidence(), Confidence::High);
        }
    }

    #[test]
    fn without_the_instruction_in_the_dump_the_shape_is_said_with_a_caveat() {
        let p = nameless_break_in(Arch::Amd64, NTDLL, false, false);
        let found = Analysed::exports_only(p).detect(&ManualDump);
        assert_eq!(found.len(), 1);
        assert!(
            found[0]
                .summary
                .ends_with("is an instruction the dump does not hold in ntdll on a thread that runs no application code"),
            "{}",
            found[0].summary
        );
        assert_eq!(found[0].confidence(), Confidence::Medium);
    }

    #[test]
    fn without_names_only_an_int_3_in_ntdll_is_the_debuggers() {
        for arch in [Arch::Amd64, Arch::X86] {
            // A breakpoint exception at an ntdll instruction that is no int 3.
            let p = nameless_break_in(arch, NTDLL, true, false);
            let found = Analysed::exports_only(p).detect(&ManualDump);
            assert!(found.is_empty(), "{arch:?}: {found:#?}");
            // An int 3 in another system DLL: code asking for a break (kernelbase's
            // DebugBreak), not a debugger's own.
            let p = nameless_break_in(arch, "C:\\Windows\\System32\\KERNELBASE.dll", true, true);
            let found = Analysed::exports_only(p).detect(&ManualDump);
            assert!(found.is_empty(), "{arch:?}: {found:#?}");
        }
    }

    #[test]
    fn an_applications_own_breakpoint_is_a_real_exception() {
        for b in [Bitness::X64, Bitness::X86] {
            // __debugbreak() in the application: int 3 in its own code.
            let mut w = Waits::new(b);
            let check = w.function("check_invariants");
            w.run(0x100, "check_invariants");
            w.p.write(check.body(), &[0xcc]);
            w.p.exception(Exception::new(0x100, BREAKPOINT));
            let found = Analysed::exports_only(w.p).detect(&ManualDump);
            assert!(found.is_empty(), "{b:?}: {found:#?}");
            // DebugBreak(): ntdll's breakpoint, called from the application's assert.
            let mut w = Waits::new(b);
            let ntdll = w.ntdll;
            let brk =
                w.p.add_function(ntdll, Function::new("DbgBreakPoint", 0x10).leaf());
            let chain = w.chain(&[brk], "assert_failed");
            w.p.thread(0x100, chain);
            w.p.write(brk.addr, &[0xcc, 0xc3]);
            w.p.exception(Exception::new(0x100, BREAKPOINT));
            let found = Analysed::exports_only(w.p).detect(&ManualDump);
            assert!(found.is_empty(), "{b:?}: {found:#?}");
            // A crash.
            let mut w = Waits::new(b);
            w.crash(0x100, "parse_reply");
            assert!(Analysed::exports_only(w.p).detect(&ManualDump).is_empty());
        }
    }
}
