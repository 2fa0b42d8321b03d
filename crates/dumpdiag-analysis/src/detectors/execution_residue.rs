//! Execution Residue: what the unused part of a stack (below the thread's current stack pointer)
//! still shows of past execution. Reported when the residue holds traces of exception processing
//! — dispatcher, unwinder and handler return addresses — that the thread's current stack does not
//! explain: an exception happened there and was handled (or swallowed). The application's own
//! functions found beside them say where.

use dumpdiag_os::known;
use dumpdiag_os::view::ProcessView;
use dumpdiag_stack::raw::RawStack;

use crate::{Detector, Evidence, Fact, Finding, Pattern, Strength};

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
];
/// Wine's own exception handler frame, asked only of dumps Wine wrote.
const WINE_EXCEPTION_PROCESSING: &[&str] = &["__wine_exception_handler"];
/// How far below the stack pointer residue is read.
const RESIDUE_WINDOW: u64 = 64 * 1024;
const MAX_SHOWN: usize = 10;

impl Detector for ExecutionResidue {
    fn pattern(&self) -> Pattern {
        Pattern::ExecutionResidue
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let mut findings = Vec::new();
        for t in &ev.threads {
            let Some(stack) = &t.stack else { continue };
            let view = ProcessView::new(ev.target(), t.view);
            let Some(raw) = RawStack::of(&view, ev.symbols, t.index, stack) else {
                continue;
            };
            let current: Vec<&str> = t.frames.iter().filter_map(|f| f.short_name()).collect();
            let below = raw.live_low.saturating_sub(RESIDUE_WINDOW);
            let mut dispatch = Vec::new();
            let mut app = Vec::new();
            for (slot, v) in raw.return_like_values(below, raw.live_low) {
                let Some(sym) = ev.symbols.lookup(ev.target(), v.wrapping_sub(1)) else {
                    continue;
                };
                let module = ev
                    .target()
                    .module_at(v)
                    .map(|m| m.short_name())
                    .unwrap_or_default();
                let short = known::short_function(&sym.function);
                let name = format!("{module}!{}", sym.function);
                let processing = known::is_one_of(&sym.function, EXCEPTION_PROCESSING)
                    || ev.wine && known::is_one_of(&sym.function, WINE_EXCEPTION_PROCESSING);
                if processing && !current.contains(&short) {
                    let note = format!("{slot:#x} {name}+{:#x}", v - sym.function_start);
                    dispatch.push(Fact::Memory {
                        address: slot,
                        note,
                    });
                } else if ev.is_app_module(&module) && !app.contains(&name) {
                    app.push(name);
                }
            }
            if dispatch.is_empty() {
                continue;
            }
            let n = dispatch.len();
            let mut facts: Vec<Fact> = dispatch.into_iter().take(MAX_SHOWN).collect();
            if n > MAX_SHOWN {
                facts.push(Fact::Note(format!("... {} more", n - MAX_SHOWN)));
            }
            if !app.is_empty() {
                let shown: Vec<String> = app.into_iter().take(MAX_SHOWN).collect();
                facts.push(Fact::Note(format!(
                    "application functions in the same residue: {}",
                    shown.join(", ")
                )));
            }
            // Dispatcher return addresses below the stack pointer can only have been written by
            // a dispatch that ran there; which exception it was, the residue alone cannot say.
            findings.push(
                Finding::new(
                    self.pattern(),
                    Strength::Likely,
                    format!(
                        "thread {:x}'s unused stack shows past exception processing ({n} return \
                         address(es))",
                        t.id
                    ),
                )
                .threads(vec![t.id])
                .facts(facts)
                .recommend(
                    "An exception was raised and handled on this thread before the dump: look for \
                     a handler that swallows it (dps below the stack pointer, .exr/.cxr on records \
                     found there).",
                ),
            );
        }
        findings
    }
}
