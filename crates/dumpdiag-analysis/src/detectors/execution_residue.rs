//! Execution Residue: what the unused part of a stack (below the thread's current stack pointer)
//! still shows of past execution. Reported when the residue holds traces of exception processing
//! — dispatcher, unwinder and handler return addresses — that the thread's current stack does not
//! explain: an exception happened there and was handled (or swallowed). The application's own
//! functions found beside them say where.

use dumpdiag_stack::raw::RawStack;

use crate::{Detector, Evidence, Finding};

pub struct ExecutionResidue;

/// Functions that run only while an exception is dispatched to handlers or unwound. (Raising
/// alone — RtlRaiseException's own calls, e.g. to capture the context — proves no dispatch.)
const EXCEPTION_PROCESSING: &[&str] = &[
    "KiUserExceptionDispatcher",
    "RtlDispatchException",
    "RtlUnwind",
    "RtlUnwindEx",
    "RtlpExecuteHandlerForException",
    "RtlpExecuteHandlerForUnwind",
    "__C_specific_handler",
    "_C_specific_handler",
    "__CxxFrameHandler",
    "__CxxFrameHandler3",
    "__CxxFrameHandler4",
    "_CxxThrowException",
    "UnhandledExceptionFilter",
    "__wine_exception_handler",
];
/// How far below the stack pointer residue is read.
const RESIDUE_WINDOW: u64 = 64 * 1024;
const MAX_SHOWN: usize = 10;

impl Detector for ExecutionResidue {
    fn pattern(&self) -> &'static str {
        "Execution Residue"
    }
    fn category(&self) -> &'static str {
        "Hidden Artifact"
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let s = ev.session;
        let mut findings = Vec::new();
        for t in &ev.threads {
            let Some(stack) = &t.stack else { continue };
            let Some(raw) = RawStack::of(&s.view(), s.symbols(), t.index, stack) else {
                continue;
            };
            let current: Vec<&str> = t
                .frames
                .iter()
                .filter_map(|f| f.function.as_deref())
                .collect();
            let below = raw.live_low.saturating_sub(RESIDUE_WINDOW);
            let mut dispatch = Vec::new();
            let mut app = Vec::new();
            for (slot, v) in raw.return_like_values(below, raw.live_low) {
                let Some(sym) = s.symbols().lookup(s.target(), v.wrapping_sub(1)) else {
                    continue;
                };
                let module = s
                    .target()
                    .module_at(v)
                    .map(|m| m.short_name())
                    .unwrap_or_default();
                let name = format!("{module}!{}", sym.function);
                let line = format!("{} {}+{:#x}", s.addr(slot), name, v - sym.function_start);
                if EXCEPTION_PROCESSING.contains(&sym.function.as_str())
                    && !current.contains(&sym.function.as_str())
                {
                    dispatch.push(line);
                } else if ev.is_app_module(&module)
                    && !app.iter().any(|a: &String| a.ends_with(&name))
                {
                    app.push(name);
                }
            }
            if dispatch.is_empty() {
                continue;
            }
            let n = dispatch.len();
            let mut evidence: Vec<String> = dispatch.into_iter().take(MAX_SHOWN).collect();
            if n > MAX_SHOWN {
                evidence.push(format!("... {} more", n - MAX_SHOWN));
            }
            if !app.is_empty() {
                evidence.push(format!(
                    "application functions in the same residue: {}",
                    app.into_iter()
                        .take(MAX_SHOWN)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            findings.push(
                Finding::new(self.pattern(), self.category(), "medium", format!("thread {:x}'s unused stack shows past exception processing ({n} return address(es))", t.id))
                    .threads(vec![t.id])
                    .evidence(evidence)
                    .recommend("An exception was raised and handled on this thread before the dump: look for a handler that swallows it (dps below @rsp, .exr/.cxr on records found there)."),
            );
        }
        findings
    }
}
