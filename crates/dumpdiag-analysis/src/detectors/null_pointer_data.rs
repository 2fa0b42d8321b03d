//! NULL Pointer (Data): an access violation reading or writing the first 64 KiB.

use super::{access_violation, exception_thread, top_frames, NULL_PAGE_END};
use crate::{silent, Detector, Evidence, Fact, Finding, Pattern, Strength};
use dumpdiag_os::codes::AccessKind;

pub struct NullPointerData;

impl Detector for NullPointerData {
    fn pattern(&self) -> Pattern {
        Pattern::NullPointerData
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let Some((access, target)) = access_violation(ev) else {
            silent!("no access violation with its access kind and address");
        };
        if access == AccessKind::Execute {
            silent!("an execute access: NULL Pointer (Code)'s");
        }
        if target >= NULL_PAGE_END {
            silent!(address = target, "the address is above the first 64 KiB");
        }
        let verb = if access == AccessKind::Write {
            "write to"
        } else {
            "read from"
        };
        let note = format!(
            "Attempt to {verb} address {target:#x} (a NULL pointer plus field offset {target:#x})"
        );
        let mut facts = vec![Fact::Memory {
            address: target,
            note,
        }];
        facts.extend(top_frames(ev, 3));
        vec![Finding::new(self.pattern(), Strength::Proven, format!("{verb} {target:#x} through a NULL pointer"))
            .threads(exception_thread(ev))
            .facts(facts)

            .recommend("Find where the pointer dereferenced by the faulting instruction (u @rip) was set; check the callers for a missing NULL check.")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::Analysed;
    use crate::Confidence;
    use dumpdiag_synth::{Exception, Module, Process};
    use dumpdiag_target::Arch;

    /// Thread 0x100 faulting in crash!read_header ← crash!main with an exception `code` and
    /// `parameters` (for an access violation: the access kind, then the address).
    fn faulted(arch: Arch, code: u32, parameters: Vec<u64>) -> Analysed {
        let mut p = Process::new(arch);
        let app = p.module(Module::new("C:\\app\\crash.exe"));
        let read = p.function(app, "read_header", 0x80);
        let main = p.function(app, "main", 0x80);
        p.thread(0x100, [read, main]);
        let mut e = Exception::new(0x100, code);
        e.parameters = parameters;
        p.exception(e);
        Analysed::with_symbols(p)
    }

    /// EXCEPTION_ACCESS_VIOLATION's first parameter: 0 read, 1 write, 8 execute (DEP).
    const READ: u64 = 0;
    const WRITE: u64 = 1;
    const EXECUTE: u64 = 8;

    #[test]
    fn a_read_or_write_near_zero_is_a_null_pointer() {
        for arch in [Arch::Amd64, Arch::X86] {
            let found = faulted(arch, 0xc000_0005, vec![READ, 0x10]).detect(&NullPointerData);
            assert_eq!(found.len(), 1, "{arch:?}");
            let f = &found[0];
            assert_eq!(f.summary, "read from 0x10 through a NULL pointer");
            assert_eq!(f.threads, vec![0x100]);
            let evidence = f.evidence();
            assert_eq!(
                evidence[0],
                "Attempt to read from address 0x10 (a NULL pointer plus field offset 0x10)"
            );
            assert!(
                evidence[1].starts_with("thread 100 frame 00: crash!read_header"),
                "{evidence:?}"
            );
            assert_eq!(f.confidence(), Confidence::High);

            // A write at the last address of the 64 KiB Windows never maps.
            let found = faulted(arch, 0xc000_0005, vec![WRITE, 0xfff8]).detect(&NullPointerData);
            assert_eq!(found.len(), 1, "{arch:?}");
            assert_eq!(found[0].summary, "write to 0xfff8 through a NULL pointer");
        }
    }

    #[test]
    fn a_fault_above_the_null_range_or_executing_is_not_a_null_data_pointer() {
        // x64: an address in the middle of the user space.
        let a = faulted(Arch::Amd64, 0xc000_0005, vec![READ, 0x7ff0_0000_1000]);
        assert!(a.detect(&NullPointerData).is_empty());
        // x86: just past the first 64 KiB, where allocations may begin.
        let a = faulted(Arch::X86, 0xc000_0005, vec![WRITE, 0x1_0000]);
        assert!(a.detect(&NullPointerData).is_empty());
        for arch in [Arch::Amd64, Arch::X86] {
            // Executing address 0: a NULL function pointer, the code pattern's.
            let a = faulted(arch, 0xc000_0005, vec![EXECUTE, 0]);
            assert!(a.detect(&NullPointerData).is_empty(), "{arch:?}");
            // The same parameters on another exception code are no access violation.
            let a = faulted(arch, 0xc000_0006, vec![READ, 0x10, 0xc000_000e]);
            assert!(a.detect(&NullPointerData).is_empty(), "{arch:?}");
        }
    }
}
