//! Virtualized Process, Instrumentation Information and Environment Hint: facts about the
//! process from its modules, PEB flags and environment.

use crate::{Detector, Evidence, Finding};
use dumpdiag_os::{layout::Layout, peb};
use dumpdiag_target::Arch;

pub struct VirtualizedProcess;

impl Detector for VirtualizedProcess {
    fn pattern(&self) -> &'static str {
        "Virtualized Process"
    }
    fn category(&self) -> &'static str {
        "Process"
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        if !ev.session.is_wow64() {
            return Vec::new();
        }
        let wow: Vec<String> =
            ev.target().modules().iter().filter(|m| m.file_name().to_ascii_lowercase().starts_with("wow64")).map(|m| m.file_name().to_string()).collect();
        vec![Finding::new(self.pattern(), self.category(), "high", "a 32-bit process saved in a 64-bit dump (WOW64)".into())
            .evidence(wow.into_iter().map(|m| format!("{m} loaded")).collect())
            .recommend("Switch to the 32-bit view (.effmach x86) for the process's own stacks and registers.")]
    }
}

/// The PEB of the process's own bitness (the 32-bit one under WOW64).
fn process_peb(ev: &Evidence) -> Option<(peb::Peb, Layout)> {
    let native = Layout::for_pointer_size(ev.target().facts().pointer_size());
    let mem = ev.target().memory();
    let teb = ev.target().threads().first()?.teb;
    let (teb, l) = if ev.session.is_wow64() { (dumpdiag_os::wow64::teb32_of(mem, teb)?, dumpdiag_os::layout::X86) } else { (teb, native) };
    let peb_addr = dumpdiag_target::MemoryExt::read_ptr(mem, teb.wrapping_add(l.teb_peb), l.ptr)?;
    Some((peb::read_peb(mem, peb_addr, &l)?, l))
}

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
    fn pattern(&self) -> &'static str {
        "Instrumentation Information"
    }
    fn category(&self) -> &'static str {
        "Process"
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let mut evidence = Vec::new();
        if let Some((p, _)) = process_peb(ev) {
            let g = p.nt_global_flag.unwrap_or(0);
            let set: Vec<&str> = FLAGS.iter().filter(|(b, _)| g & b != 0).map(|(_, n)| *n).collect();
            if !set.is_empty() {
                evidence.push(format!("NtGlobalFlag {g:#x}: {}", set.join(", ")));
            }
        }
        for m in ev.target().modules() {
            let f = m.file_name().to_ascii_lowercase();
            if f == "verifier.dll" || f.starts_with("vf") && f.ends_with(".dll") || f == "vrfcore.dll" {
                evidence.push(format!("Application Verifier module {} loaded", m.file_name()));
            }
        }
        if evidence.is_empty() {
            return Vec::new();
        }
        vec![Finding::new(self.pattern(), self.category(), "high", "heap or verifier instrumentation was enabled in this process".into())
            .evidence(evidence)
            .recommend("Instrumentation changes timing and heap layout; it also makes heap corruption fault closer to its cause (page heap), and +ust records allocation stacks.")]
    }
}

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
    fn pattern(&self) -> &'static str {
        "Environment Hint"
    }
    fn category(&self) -> &'static str {
        "Process"
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let Some((p, l)) = process_peb(ev) else { return Vec::new() };
        let Some(params) = peb::read_process_parameters(ev.target().memory(), p.process_parameters, &l) else { return Vec::new() };
        let vars: Vec<String> =
            params.environment.unwrap_or_default().into_iter().filter(|v| NOTABLE.iter().any(|n| v.to_ascii_uppercase().starts_with(n))).collect();
        if vars.is_empty() {
            return Vec::new();
        }
        let mut evidence = vars.clone();
        if let Some(cmd) = params.command_line {
            evidence.push(format!("command line: {cmd}"));
        }
        let _ = Arch::X86;
        vec![Finding::new(
            self.pattern(),
            self.category(),
            "medium",
            format!(
                "environment variables that change runtime or debugger behaviour: {}",
                vars.iter().map(|v| v.split('=').next().unwrap_or("")).collect::<Vec<_>>().join(", ")
            ),
        )
        .evidence(evidence)
        .recommend("Reproduce with the same environment; these variables alter how the runtime, heap or debugger behaves.")]
    }
}
