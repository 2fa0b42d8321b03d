//! Environment Hint: environment variables from the PEB that change runtime or debugger behaviour.

use super::process_peb;
use crate::{Detector, Evidence, Finding, Pattern, Strength};
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
            return Vec::new();
        };
        let Some(params) =
            peb::read_process_parameters(ev.target().memory(), p.process_parameters, &l)
        else {
            return Vec::new();
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
            return Vec::new();
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
