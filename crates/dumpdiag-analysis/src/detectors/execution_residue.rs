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
        // Every thread's live stack (its stack pointer up to its base). Memory below one
        // thread's stack pointer that is another thread's live stack is that thread's present,
        // not residue (a context whose stack pointer lies outside its own thread's stack, as
        // when a dump tool records the exception context for its own thread, reads there).
        let live: Vec<(usize, u64, u64)> = ev
            .threads
            .iter()
            .filter_map(|t| {
                let view = ProcessView::new(ev.target(), t.view);
                let raw = RawStack::of(&view, ev.symbols, t.index, t.stack.as_ref()?)?;
                Some((t.index, raw.live_low, raw.live_high))
            })
            .collect();
        for t in &ev.threads {
            let Some(stack) = &t.stack else { continue };
            let view = ProcessView::new(ev.target(), t.view);
            let Some(raw) = RawStack::of(&view, ev.symbols, t.index, stack) else {
                continue;
            };
            let others_live = |slot: u64| {
                live.iter()
                    .any(|&(i, low, high)| i != t.index && slot >= low && slot < high)
            };
            let current: Vec<&str> = t.frames.iter().filter_map(|f| f.short_name()).collect();
            let below = raw.live_low.saturating_sub(RESIDUE_WINDOW);
            let mut dispatch = Vec::new();
            let mut app = Vec::new();
            for (slot, v) in raw.return_like_values(below, raw.live_low) {
                if others_live(slot) {
                    continue;
                }

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{Analysed, Bitness, Waits};
    use crate::Confidence;
    use dumpdiag_synth::Func;

    /// The dispatcher's functions: KiUserExceptionDispatcher, RtlDispatchException,
    /// RtlpExecuteHandlerForException.
    fn dispatcher(w: &mut Waits) -> [Func; 3] {
        let ntdll = w.ntdll;
        [
            w.p.function(ntdll, "KiUserExceptionDispatcher", 0x80),
            w.p.function(ntdll, "RtlDispatchException", 0x80),
            w.p.function(ntdll, "RtlpExecuteHandlerForException", 0x80),
        ]
    }

    /// Pointer-sized words, lowest address first.
    fn words(w: &Waits, values: &[u64]) -> Vec<u8> {
        let p = w.ptr() as usize;
        values
            .iter()
            .flat_map(|v| v.to_le_bytes()[..p].to_vec())
            .collect()
    }

    #[test]
    fn dispatcher_return_addresses_below_the_stack_pointer_are_residue_of_an_exception() {
        for b in [Bitness::X64, Bitness::X86] {
            let mut w = Waits::new(b);
            let [kiuser, dispatch, execute] = dispatcher(&mut w);
            let parse = w.function("parse_block");
            // What a dispatch that ran deeper than the thread is now leaves behind: the return
            // addresses of its calls, the innermost lowest, under the faulting function's.
            let residue = words(
                &w,
                &[
                    parse.call_site(1),
                    execute.call_site(0),
                    dispatch.call_site(0),
                    kiuser.call_site(0),
                ],
            );
            let at = w.sleep(0x100, "retry_loop").below_sp(&residue);
            let p = w.ptr();
            let found = Analysed::exports_only(w.p).detect(&ExecutionResidue);
            assert_eq!(found.len(), 1, "{b:?}: {found:#?}");
            let f = &found[0];
            assert_eq!(
                f.summary,
                "thread 100's unused stack shows past exception processing (3 return address(es))"
            );
            assert_eq!(f.threads, [0x100]);
            let line = |slot: u64, name: &str, func: Func| {
                format!(
                    "{slot:#x} ntdll!{name}+{:#x}",
                    func.call_site(0) - func.addr
                )
            };
            assert_eq!(
                f.evidence(),
                [
                    line(at + p, "RtlpExecuteHandlerForException", execute),
                    line(at + 2 * p, "RtlDispatchException", dispatch),
                    line(at + 3 * p, "KiUserExceptionDispatcher", kiuser),
                    "application functions in the same residue: service!parse_block".to_string(),
                ],
                "{b:?}"
            );
            assert_eq!(f.confidence(), Confidence::Medium);
        }
    }

    #[test]
    fn the_dispatch_a_thread_is_in_now_is_no_residue() {
        // The thread is dispatching an exception now: the same functions' return addresses
        // below its stack pointer are its current dispatch's callees, not a past one.
        for b in [Bitness::X64, Bitness::X86] {
            let mut w = Waits::new(b);
            let [kiuser, dispatch, execute] = dispatcher(&mut w);
            let residue = words(
                &w,
                &[
                    execute.call_site(0),
                    dispatch.call_site(0),
                    kiuser.call_site(0),
                ],
            );
            let chain = w.chain(&[execute, dispatch, kiuser], "parse_block");
            w.p.thread(0x100, chain).below_sp(&residue);
            let found = Analysed::exports_only(w.p).detect(&ExecutionResidue);
            assert!(found.is_empty(), "{b:?}: {found:#?}");
        }
    }

    #[test]
    fn return_addresses_in_the_live_stack_are_no_residue() {
        // The same values in a live frame's locals (above the stack pointer): the current stack,
        // whatever they are.
        for b in [Bitness::X64, Bitness::X86] {
            let mut w = Waits::new(b);
            let [kiuser, dispatch, execute] = dispatcher(&mut w);
            let values = words(
                &w,
                &[
                    execute.call_site(0),
                    dispatch.call_site(0),
                    kiuser.call_site(0),
                ],
            );
            w.sleep(0x100, "retry_loop").local(2, 0, &values);
            let found = Analysed::exports_only(w.p).detect(&ExecutionResidue);
            assert!(found.is_empty(), "{b:?}: {found:#?}");
        }
    }

    #[test]
    fn another_threads_live_dispatch_is_no_residue() {
        // Thread 0x200's context points into thread 0x100's stack, above 0x100's current
        // dispatch (a dump tool that records the exception context for its own thread does
        // this): what lies below 0x200's stack pointer there is 0x100's live stack.
        for b in [Bitness::X64, Bitness::X86] {
            let mut w = Waits::new(b);
            let [kiuser, dispatch, execute] = dispatcher(&mut w);
            let chain = w.chain(&[execute, dispatch, kiuser], "parse_block");
            w.p.thread(0x100, chain);
            // parse_block's frame: the dispatcher's frames lie below it.
            let top_of_dispatch = w.p.frames(0x100)[3].sp;

            let sp = if b == Bitness::X64 { "rsp" } else { "esp" };
            w.sleep(0x200, "retry_loop").reg(sp, top_of_dispatch);
            let found = Analysed::exports_only(w.p).detect(&ExecutionResidue);
            assert!(found.is_empty(), "{b:?}: {found:#?}");
        }
    }
}
