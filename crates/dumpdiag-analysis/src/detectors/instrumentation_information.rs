//! Instrumentation Information: heap-checking and verifier flags in the PEB, verifier modules.

use super::process_peb;
use crate::{silent, Detector, Evidence, Finding, Pattern, Strength};

pub struct InstrumentationInformation;

const FLAGS: &[(u32, &str)] = &[
    (0x10, "FLG_HEAP_ENABLE_TAIL_CHECK"),
    (0x20, "FLG_HEAP_ENABLE_FREE_CHECK"),
    (0x40, "FLG_HEAP_VALIDATE_PARAMETERS"),
    (0x80, "FLG_HEAP_VALIDATE_ALL"),
    (0x100, "FLG_APPLICATION_VERIFIER"),
    (0x1000, "FLG_USER_STACK_TRACE_DB"),
    (0x0200_0000, "FLG_HEAP_PAGE_ALLOCS (page heap)"),
];

impl Detector for InstrumentationInformation {
    fn pattern(&self) -> Pattern {
        Pattern::InstrumentationInformation
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let mut evidence = Vec::new();
        if let Some((p, _)) = process_peb(ev) {
            let g = p.nt_global_flag.unwrap_or(0);
            let set: Vec<&str> = FLAGS
                .iter()
                .filter(|(b, _)| g & b != 0)
                .map(|(_, n)| *n)
                .collect();
            if !set.is_empty() {
                evidence.push(format!("NtGlobalFlag {g:#x}: {}", set.join(", ")));
            }
        }
        for m in ev.target().modules() {
            let f = m.file_name().to_ascii_lowercase();
            // Application Verifier's providers are vf*.dll (vfbasics, vfcompat, vfluapriv...);
            // Windows' own vfwwdm32.dll is Video for Windows' WDM capture driver, which
            // avicap32 loads for any application that captures video: not a verifier.
            if f == "verifier.dll"
                || f.starts_with("vf") && f.ends_with(".dll") && f != "vfwwdm32.dll"
                || f == "vrfcore.dll"
            {
                evidence.push(format!(
                    "Application Verifier module {} loaded",
                    m.file_name()
                ));
            }
        }
        if evidence.is_empty() {
            silent!("no heap-checking or verifier flag in NtGlobalFlag and no verifier module");
        }
        vec![Finding::new(self.pattern(), Strength::Proven, "heap or verifier instrumentation was enabled in this process".into())
            .notes(evidence)
            .recommend("Instrumentation changes timing and heap layout; it also makes heap corruption fault closer to its cause (page heap), and +ust records allocation stacks.")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::Analysed;
    use crate::Confidence;
    use dumpdiag_synth::{Module, Process};
    use dumpdiag_target::Arch;

    /// FLG_* values of gflags.exe (ntexapi.h).
    const FLG_HEAP_ENABLE_TAIL_CHECK: u32 = 0x10;
    const FLG_APPLICATION_VERIFIER: u32 = 0x100;
    const FLG_USER_STACK_TRACE_DB: u32 = 0x1000;
    const FLG_HEAP_PAGE_ALLOCS: u32 = 0x0200_0000;
    const FLG_SHOW_LDR_SNAPS: u32 = 0x2;
    const FLG_DISABLE_PAGE_KERNEL_STACKS: u32 = 0x8_0000;

    /// A process with `flags` in its PEB's NtGlobalFlag and `dlls` (System32 names) loaded.
    fn process(mut p: Process, flags: u32, dlls: &[&str]) -> Process {
        p.system.nt_global_flag = flags;
        let app = p.module(Module::new("C:\\app\\server.exe"));
        for dll in dlls {
            p.module(Module::new(&format!("C:\\Windows\\System32\\{dll}")));
        }
        let main = p.function(app, "main", 0x80);
        p.thread(0x100, [main]);
        p
    }

    #[test]
    fn heap_checking_flags_in_the_peb_are_named() {
        // gflags /i server.exe +hpa +ust +htc: the PEB's NtGlobalFlag is at 0xbc on x64 and
        // 0x68 on x86.
        let flags = FLG_HEAP_PAGE_ALLOCS | FLG_USER_STACK_TRACE_DB | FLG_HEAP_ENABLE_TAIL_CHECK;
        for arch in [Arch::Amd64, Arch::X86] {
            let a = Analysed::exports_only(process(Process::new(arch), flags, &[]));
            let found = a.detect(&InstrumentationInformation);
            assert_eq!(found.len(), 1, "{arch:?}");
            let f = &found[0];
            assert_eq!(
                f.summary,
                "heap or verifier instrumentation was enabled in this process"
            );
            assert_eq!(
                f.evidence(),
                [
                    "NtGlobalFlag 0x2001010: FLG_HEAP_ENABLE_TAIL_CHECK, FLG_USER_STACK_TRACE_DB, \
                  FLG_HEAP_PAGE_ALLOCS (page heap)"
                ],
                "{arch:?}"
            );
            assert_eq!(f.confidence(), Confidence::High);
        }
    }

    #[test]
    fn application_verifier_shows_by_its_flag_and_modules() {
        let p = process(
            Process::new(Arch::Amd64),
            FLG_APPLICATION_VERIFIER,
            &["verifier.dll", "vrfcore.dll", "vfbasics.dll"],
        );
        let found = Analysed::exports_only(p).detect(&InstrumentationInformation);
        assert_eq!(
            found[0].evidence(),
            [
                "NtGlobalFlag 0x100: FLG_APPLICATION_VERIFIER",
                "Application Verifier module verifier.dll loaded",
                "Application Verifier module vrfcore.dll loaded",
                "Application Verifier module vfbasics.dll loaded",
            ]
        );
    }

    #[test]
    fn a_wow64_process_is_read_from_its_own_32_bit_peb() {
        // Page heap set for the 32-bit process: its PEB32 holds the flag; the PEB64's
        // NtGlobalFlag (_PEB x64 +0xbc) is cleared here, so only a read of the PEB32 finds it.
        let mut p = process(Process::wow64(), FLG_HEAP_PAGE_ALLOCS, &[]);
        let peb64 = p.wow64_layer().unwrap().peb64;
        p.write_u32(peb64 + 0xbc, 0);
        let found = Analysed::exports_only(p).detect(&InstrumentationInformation);
        assert_eq!(
            found[0].evidence(),
            ["NtGlobalFlag 0x2000000: FLG_HEAP_PAGE_ALLOCS (page heap)"]
        );
        // And the other way round (_PEB x86 NtGlobalFlag, +0x68, cleared): the flag in the
        // PEB64 only is not the 32-bit process's.
        let mut p = process(Process::wow64(), FLG_HEAP_PAGE_ALLOCS, &[]);
        let peb32 = p.peb();
        p.write_u32(peb32 + 0x68, 0);
        assert!(Analysed::exports_only(p)
            .detect(&InstrumentationInformation)
            .is_empty());
    }

    #[test]
    fn other_global_flags_and_video_for_windows_are_no_instrumentation() {
        for arch in [Arch::Amd64, Arch::X86] {
            // Loader snaps and kernel-stack flags are set, and avicap32 loaded VfW's WDM
            // capture driver (vfwwdm32.dll): no heap check, no verifier.
            let p = process(
                Process::new(arch),
                FLG_SHOW_LDR_SNAPS | FLG_DISABLE_PAGE_KERNEL_STACKS,
                &["avicap32.dll", "vfwwdm32.dll"],
            );
            let a = Analysed::exports_only(p);
            assert!(a.detect(&InstrumentationInformation).is_empty(), "{arch:?}");
        }
    }
}
