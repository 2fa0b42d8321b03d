//! Environment Hint: environment variables from the PEB that change runtime or debugger behaviour.

use super::process_peb;
use crate::{silent, Detector, Evidence, Finding, Pattern, Strength};
use dumpdiag_os::peb;

pub struct EnvironmentHint;

const NOTABLE: &[&str] = &[
    "COMPLUS_",
    "DOTNET_",
    "CORECLR_",
    "COR_ENABLE_PROFILING",
    "COR_PROFILER",
    "_NT_SYMBOL_PATH",
    "_NT_ALT_SYMBOL_PATH",
    "_NT_EXECUTABLE_IMAGE_PATH",
    "__COMPAT_LAYER",
    "MALLOC_",
    "_NO_DEBUG_HEAP",
];

impl Detector for EnvironmentHint {
    fn pattern(&self) -> Pattern {
        Pattern::EnvironmentHint
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let Some((p, l)) = process_peb(ev) else {
            silent!("the process's PEB is not in the dump");
        };
        let Some(params) =
            peb::read_process_parameters(ev.target().memory(), p.process_parameters, &l)
        else {
            silent!(
                at = p.process_parameters,
                "the PEB's ProcessParameters are not in the dump"
            );
        };
        let vars: Vec<String> = params
            .environment
            .unwrap_or_default()
            .into_iter()
            .filter(|v| {
                NOTABLE
                    .iter()
                    .any(|n| v.to_ascii_uppercase().starts_with(n))
            })
            .collect();
        if vars.is_empty() {
            silent!("no environment variable that changes runtime or debugger behaviour");
        }
        let mut evidence = vars.clone();
        if let Some(cmd) = params.command_line {
            evidence.push(format!("command line: {cmd}"));
        }
        vec![Finding::new(
            self.pattern(), Strength::Likely,
            format!(
                "environment variables that change runtime or debugger behaviour: {}",
                vars.iter().map(|v| v.split('=').next().unwrap_or("")).collect::<Vec<_>>().join(", ")
            ),
        )
        .notes(evidence)
        .recommend("Reproduce with the same environment; these variables alter how the runtime, heap or debugger behaves.")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::Analysed;
    use crate::Confidence;
    use dumpdiag_synth::{Module, Process};
    use dumpdiag_target::Arch;

    const SYMBOLS: &str =
        "_NT_SYMBOL_PATH=srv*C:\\symbols*https://msdl.microsoft.com/download/symbols";

    /// A process started as `server.exe --port 8080` with the synthetic default environment
    /// (COMPUTERNAME, SystemRoot, TEMP) plus `extra`.
    fn process(mut p: Process, extra: &[&str]) -> Process {
        p.params.command_line = Some("server.exe --port 8080".into());
        p.params
            .environment
            .extend(extra.iter().map(|v| v.to_string()));
        let app = p.module(Module::new("C:\\app\\server.exe"));
        let main = p.function(app, "main", 0x80);
        p.thread(0x100, [main]);
        p
    }

    #[test]
    fn runtime_and_debugger_variables_are_named_with_the_command_line() {
        for arch in [Arch::Amd64, Arch::X86] {
            let p = process(
                Process::new(arch),
                &[
                    "COMPLUS_EnableDiagnostics=0",
                    "Path=C:\\Windows\\system32",
                    SYMBOLS,
                ],
            );
            let found = Analysed::exports_only(p).detect(&EnvironmentHint);
            assert_eq!(found.len(), 1, "{arch:?}");
            let f = &found[0];
            assert_eq!(
                f.summary,
                "environment variables that change runtime or debugger behaviour: \
                 COMPLUS_EnableDiagnostics, _NT_SYMBOL_PATH"
            );
            assert_eq!(
                f.evidence(),
                [
                    "COMPLUS_EnableDiagnostics=0",
                    SYMBOLS,
                    "command line: server.exe --port 8080"
                ],
                "{arch:?}"
            );
            assert_eq!(f.confidence(), Confidence::Medium);
        }
    }

    #[test]
    fn variable_names_match_whatever_their_case() {
        // Windows compares environment names without case: the runtime reads this one.
        let p = process(Process::new(Arch::Amd64), &["complus_gcServer=1"]);
        let found = Analysed::exports_only(p).detect(&EnvironmentHint);
        assert_eq!(found.len(), 1);
        assert!(
            found[0].summary.ends_with(": complus_gcServer"),
            "{}",
            found[0].summary
        );
    }

    #[test]
    fn a_wow64_process_is_read_from_its_32_bit_process_parameters() {
        // The PEB64's ProcessParameters (_PEB x64 +0x20) cleared: only the PEB32's lead to
        // the block.
        let mut p = process(Process::wow64(), &["__COMPAT_LAYER=RunAsInvoker"]);
        let peb64 = p.wow64_layer().unwrap().peb64;
        p.write_u64(peb64 + 0x20, 0);
        let found = Analysed::exports_only(p).detect(&EnvironmentHint);
        assert_eq!(found.len(), 1);
        assert!(
            found[0].summary.ends_with(": __COMPAT_LAYER"),
            "{}",
            found[0].summary
        );
    }

    #[test]
    fn names_that_only_contain_a_notable_prefix_are_no_hint() {
        for arch in [Arch::Amd64, Arch::X86] {
            // A notable name inside another name or in a value does not count.
            let p = process(
                Process::new(arch),
                &[
                    "APP_COMPLUS_MODE=1",
                    "BUILD_NOTE=_NT_SYMBOL_PATH is set by the build",
                    "DOTNETROOT=C:\\dotnet",
                ],
            );
            assert!(
                Analysed::exports_only(p)
                    .detect(&EnvironmentHint)
                    .is_empty(),
                "{arch:?}"
            );
        }
        // Without the process parameters (_PEB x86 ProcessParameters, +0x10) there is no
        // environment to read.
        let mut p = process(Process::new(Arch::X86), &["COMPLUS_EnableDiagnostics=0"]);
        let peb = p.peb();
        p.write_u32(peb + 0x10, 0);
        assert!(Analysed::exports_only(p)
            .detect(&EnvironmentHint)
            .is_empty());
    }
}
