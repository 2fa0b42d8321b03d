//! Virtualized Process: a 32-bit process saved in a 64-bit dump (WOW64).

use crate::{silent, Detector, Evidence, Finding, Pattern, Strength};

pub struct VirtualizedProcess;

impl Detector for VirtualizedProcess {
    fn pattern(&self) -> Pattern {
        Pattern::VirtualizedProcess
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        if !ev.is_wow64() {
            silent!("not a 32-bit process in a 64-bit dump (no wow64.dll in an x64 dump)");
        }
        let wow: Vec<String> = ev
            .target()
            .modules()
            .iter()
            .filter(|m| m.file_name().to_ascii_lowercase().starts_with("wow64"))
            .map(|m| m.file_name().to_string())
            .collect();
        vec![Finding::new(
            self.pattern(),
            Strength::Proven,
            "a 32-bit process saved in a 64-bit dump (WOW64)".into(),
        )
        .notes(wow.into_iter().map(|m| format!("{m} loaded")))
        .recommend(
            "Switch to the 32-bit view (.effmach x86) for the process's own stacks and registers.",
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::Analysed;
    use crate::Confidence;
    use dumpdiag_os::view::View;
    use dumpdiag_synth::{Module, Process};
    use dumpdiag_target::{Arch, Target};

    /// The same 32-bit program: its image and kernel32 from `system` (SysWOW64 under WOW64),
    /// ntdll the process's own, thread 0x100 in main.
    fn program(mut p: Process, ntdll: dumpdiag_synth::ModuleId, system: &str) -> Analysed {
        let app = p.module(Module::new("C:\\app\\legacy32.exe"));
        let kernel32 = p.module(Module::new(&format!("{system}\\kernel32.dll")));
        let start = p.function(ntdll, "RtlUserThreadStart", 0x40);
        let thunk = p.function(kernel32, "BaseThreadInitThunk", 0x40);
        let main = p.function(app, "main", 0x80);
        p.thread(0x100, [main, thunk, start]);
        Analysed::with_symbols(p)
    }

    #[test]
    fn a_wow64_process_is_a_virtualized_process_read_in_its_32_bit_view() {
        let p = Process::wow64();
        let ntdll32 = p.wow64_layer().unwrap().ntdll32;
        let a = program(p, ntdll32, "C:\\Windows\\SysWOW64");
        let found = a.detect(&VirtualizedProcess);
        assert_eq!(found.len(), 1);
        let f = &found[0];
        assert_eq!(f.summary, "a 32-bit process saved in a 64-bit dump (WOW64)");
        assert_eq!(
            f.evidence(),
            [
                "wow64.dll loaded",
                "wow64win.dll loaded",
                "wow64cpu.dll loaded"
            ]
        );
        assert_eq!(f.confidence(), Confidence::High);
        // The threads are read as the process ran them: the x86 view, 32-bit frames.
        let ev = a.evidence();
        assert_eq!(ev.threads[0].view, View::Wow64X86);
        let names: Vec<String> = ev.threads[0].frames.iter().map(|f| f.call_site()).collect();
        assert_eq!(
            names,
            [
                "legacy32!main",
                "kernel32!BaseThreadInitThunk",
                "ntdll!RtlUserThreadStart"
            ]
        );
        assert!(a.patterns().contains(&Pattern::VirtualizedProcess));
    }

    #[test]
    fn a_32_bit_or_64_bit_dump_of_its_own_machine_is_not_virtualized() {
        // The same program dumped by a 32-bit writer: an x86 dump, no 64-bit layer in it.
        let mut p = Process::new(Arch::X86);
        let ntdll = p.module(Module::new("C:\\Windows\\SysWOW64\\ntdll.dll"));
        let a = program(p, ntdll, "C:\\Windows\\SysWOW64");
        assert_eq!(a.target().facts().arch, Arch::X86);
        assert!(a.detect(&VirtualizedProcess).is_empty());
        // A 64-bit process.
        let mut p = Process::new(Arch::Amd64);
        let ntdll = p.module(Module::new("C:\\Windows\\System32\\ntdll.dll"));
        let a = program(p, ntdll, "C:\\Windows\\System32");
        assert!(a.detect(&VirtualizedProcess).is_empty());
        assert!(!a.patterns().contains(&Pattern::VirtualizedProcess));
    }
}
