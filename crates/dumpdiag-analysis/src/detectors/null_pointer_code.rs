//! NULL Pointer (Code): execution at or near address 0; the caller comes from the return address.

use super::{access_violation, exception_thread, NULL_PAGE_END};
use crate::{silent, Detector, Evidence, Fact, Finding, Pattern, Strength};
use dumpdiag_os::codes::AccessKind;

pub struct NullPointerCode;

impl Detector for NullPointerCode {
    fn pattern(&self) -> Pattern {
        Pattern::NullPointerCode
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let Some((access, target)) = access_violation(ev) else {
            silent!("no access violation with its access kind and address");
        };
        if access != AccessKind::Execute {
            silent!("a read or write access: NULL Pointer (Data)'s");
        }
        if target >= NULL_PAGE_END {
            silent!(address = target, "execution faulted above the first 64 KiB");
        }
        // The caller is the first frame the walker found from the return address at the
        // stack pointer.
        let caller = ev
            .exception_frames()
            .get(1)
            .map(|f| f.call_site())
            .unwrap_or_else(|| "unknown".into());
        vec![Finding::new(self.pattern(), Strength::Proven, format!("call through a NULL function pointer ({target:#x}) from {caller}"))
            .threads(exception_thread(ev))
            .fact(Fact::Memory { address: target, note: format!("instruction pointer {target:#x} is in the NULL page") })
            .facts(ev.exception_frames().get(1).map(|f| Fact::Frame { thread: ev.exception.as_ref().map(|e| e.thread_id).unwrap_or(0), index: 1, frame: f.clone() }))
            .caveats_of_frames(ev.exception_frames().get(1..2).unwrap_or(&[]))

            .recommend("Check the function pointer or vtable slot the caller used; it was never set or was cleared.")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::Analysed;
    use crate::Confidence;
    use dumpdiag_synth::{Exception, ExceptionContext, Function, Module, Process};
    use dumpdiag_target::Arch;

    /// EXCEPTION_ACCESS_VIOLATION's first parameter: 0 read, 8 execute (DEP).
    const READ: u64 = 0;
    const EXECUTE: u64 = 8;

    /// crash!dispatch_event called through a function pointer holding `target`: the call
    /// pushed its return address (into dispatch_event) and jumped, so the exception context
    /// has the instruction pointer at `target` and the stack pointer at that return address.
    /// The slot is laid out as the frame of a leaf callee would be.
    fn called_through(arch: Arch, access: u64, target: u64) -> (Analysed, u64) {
        let mut p = Process::new(arch);
        let app = p.module(Module::new("C:\\app\\crash.exe"));
        let ntdll = p.module(Module::new("C:\\Windows\\System32\\ntdll.dll"));
        let callee = p.add_function(app, Function::new("on_event", 0x20).leaf());
        let dispatch = p.function(app, "dispatch_event", 0x80);
        let main = p.function(app, "main", 0x80);
        let start = p.function(ntdll, "RtlUserThreadStart", 0x40);
        let t = p.thread(0x100, [callee, dispatch, main, start]);
        let return_address = t.frames[1].ip;
        let mut regs = t.frame_context(0);
        regs.set(if arch == Arch::X86 { "eip" } else { "rip" }, target);
        let mut e = Exception::new(0x100, 0xc000_0005);
        e.parameters = vec![access, target];
        e.address = Some(target);
        e.context = ExceptionContext::Registers(regs);
        p.exception(e);
        (Analysed::with_symbols(p), return_address)
    }

    #[test]
    fn executing_address_zero_names_the_caller_from_the_return_address() {
        for arch in [Arch::Amd64, Arch::X86] {
            let (a, return_address) = called_through(arch, EXECUTE, 0);
            let found = a.detect(&NullPointerCode);
            assert_eq!(found.len(), 1, "{arch:?}");
            let f = &found[0];
            assert_eq!(
                f.summary,
                "call through a NULL function pointer (0x0) from crash!dispatch_event"
            );
            assert_eq!(f.threads, vec![0x100]);
            let evidence = f.evidence();
            assert_eq!(evidence[0], "instruction pointer 0x0 is in the NULL page");
            assert!(
                evidence[1].starts_with("thread 100 frame 01: crash!dispatch_event+"),
                "{evidence:?}"
            );
            assert_eq!(a.evidence().exception_frames()[1].ip, return_address);
            assert_eq!(
                f.confidence(),
                Confidence::High,
                "{arch:?}: {:?}",
                f.caveats
            );
        }
    }

    #[test]
    fn a_small_offset_from_null_is_still_the_null_page() {
        // A call through a vtable slot of a NULL object pointer lands on the slot's offset.
        let (a, _) = called_through(Arch::Amd64, EXECUTE, 0x28);
        let found = a.detect(&NullPointerCode);
        assert_eq!(found.len(), 1);
        assert!(found[0].summary.contains("(0x28)"), "{}", found[0].summary);
    }

    #[test]
    fn reading_zero_or_executing_elsewhere_is_not_a_null_code_pointer() {
        for arch in [Arch::Amd64, Arch::X86] {
            // Reading address 0 is a data pointer.
            let (a, _) = called_through(arch, READ, 0);
            assert!(a.detect(&NullPointerCode).is_empty(), "{arch:?}");
            // Executing non-executable memory above the first 64 KiB (DEP on a heap address).
            let (a, _) = called_through(arch, EXECUTE, 0x0250_0000);
            assert!(a.detect(&NullPointerCode).is_empty(), "{arch:?}");
        }
    }
}
