//! Coincidental Symbolic Information: values on the faulting thread's live stack that look like
//! return addresses — code, right after a call instruction — but that no frame of the walked
//! call chain returns through. A `dps` reader or a scanning walker would take them for frames;
//! `dps` marks them "not in the call chain". Only asked when the chain itself was found from
//! unwind data or frame records, not by scanning: then the difference is trustworthy.

use dumpdiag_os::view::ProcessView;
use dumpdiag_stack::raw::{RawStack, SlotRole};
use dumpdiag_stack::Trust;

use crate::{silent, Detector, Evidence, Fact, Finding, Pattern, Strength};

pub struct CoincidentalSymbolicInformation;

/// Evidence lines kept.
const MAX_SHOWN: usize = 8;

impl Detector for CoincidentalSymbolicInformation {
    fn pattern(&self) -> Pattern {
        Pattern::CoincidentalSymbolicInformation
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let (Some(e), Some(walk)) = (&ev.exception, &ev.exception_walk) else {
            silent!("no exception, or its thread's stack was not walked");
        };
        let stack = &walk.stack;
        if stack.frames.len() < 2 {
            silent!("the exception's call chain has a single frame: nothing to compare against");
        }
        if stack.frames.iter().any(|f| f.trust == Trust::Scan) {
            silent!(
                "the call chain was partly found by scanning: stale values cannot be told apart"
            );
        }
        let Some(index) = ev.target().thread_index_by_id(e.thread_id) else {
            silent!(
                thread = e.thread_id,
                "the exception's thread is not in the dump"
            );
        };
        let view = ProcessView::new(ev.target(), walk.view);
        let Some(raw) = RawStack::of(&view, ev.symbols, index, stack) else {
            silent!("the faulting thread's raw stack is not in the dump");
        };
        // The live part the chain covers: from the faulting frame to the last frame walked.
        let top = stack.frames.last().map(|f| f.sp).unwrap_or(raw.live_low);
        let found: Vec<(u64, u64)> = raw
            .return_like_values(raw.live_low, top)
            .into_iter()
            .filter(|&(slot, v)| raw.role(slot, v) == Some(SlotRole::NotInCallChain))
            .collect();
        if found.is_empty() {
            silent!("every return-address-like value on the live stack is a frame's");
        }
        let mut facts: Vec<Fact> = found
            .iter()
            .take(MAX_SHOWN)
            .map(|&(slot, v)| Fact::Memory {
                address: slot,
                note: format!(
                    "{slot:#x} holds {} — not a frame of the call chain",
                    ev.describe(v)
                ),
            })
            .collect();
        if found.len() > MAX_SHOWN {
            facts.push(Fact::Note(format!("... {} more", found.len() - MAX_SHOWN)));
        }
        facts.push(Fact::Note(format!(
            "the call chain has {} frames, found from {}",
            stack.frames.len(),
            stack
                .frames
                .get(1)
                .map(|f| f.trust.label())
                .unwrap_or("the context")
        )));
        // Stale return addresses are what a stack normally holds between frames: the finding
        // says to read the stack from k, not that something is wrong.
        vec![Finding::new(
            self.pattern(),
            Strength::Possible,
            format!(
                "{} return-address-like value(s) on thread {:x}'s live stack are not part of its \
                 call chain",
                found.len(),
                e.thread_id
            ),
        )
        .threads(vec![e.thread_id])
        .facts(facts)
        .recommend(
            "Read the stack from k, not from dps: these values are stale return addresses or \
             function pointers left in locals (dps marks them).",
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::Analysed;
    use crate::Confidence;
    use dumpdiag_synth::{Exception, Func, Function, Module, Process};
    use dumpdiag_target::Arch;

    /// What a test left on the stack: (slot, value, crash!validate's address).
    type Left = (u64, u64, u64);

    /// Thread 0x100 faulting in crash!parse_record ← crash!main ← the thread-start frames,
    /// with `stale(validate)` — a value derived from crash!validate, a function no frame of
    /// the chain is in — left in main's locals when given.
    fn faulted(arch: Arch, stale: Option<fn(&Func) -> u64>) -> (Analysed, Option<Left>) {
        let mut p = Process::new(arch);
        let app = p.module(Module::new("C:\\app\\crash.exe"));
        let ntdll = p.module(Module::new("C:\\Windows\\System32\\ntdll.dll"));
        let kernel32 = p.module(Module::new("C:\\Windows\\System32\\kernel32.dll"));
        let validate = p.function(app, "validate", 0x80);
        let parse = p.function(app, "parse_record", 0x80);
        let main = p.add_function(app, Function::new("main", 0x80).locals(0x40));
        let thunk = p.function(kernel32, "BaseThreadInitThunk", 0x40);
        let start = p.function(ntdll, "RtlUserThreadStart", 0x40);
        let t = p.thread(0x100, [parse, main, thunk, start]);
        let left = stale.map(|f| {
            let value = f(&validate);
            (t.local_word(1, 0x10, value), value, validate.addr)
        });
        let mut e = Exception::new(0x100, 0xc000_0005);
        e.parameters = vec![0, 0x10];
        p.exception(e);
        (Analysed::with_symbols(p), left)
    }

    #[test]
    fn a_stale_return_address_in_a_frames_locals_is_not_in_the_call_chain() {
        for arch in [Arch::Amd64, Arch::X86] {
            // What validate's call returned to, left over from an earlier call main made.
            let (a, left) = faulted(arch, Some(|v| v.call_site(1)));
            let (slot, value, validate) = left.unwrap();
            let found = a.detect(&CoincidentalSymbolicInformation);
            assert_eq!(found.len(), 1, "{arch:?}");
            let f = &found[0];
            assert_eq!(
                f.summary,
                "1 return-address-like value(s) on thread 100's live stack are not part of its \
                 call chain"
            );
            assert_eq!(f.threads, vec![0x100]);
            let evidence = f.evidence();
            assert_eq!(
                evidence[0],
                format!(
                    "{slot:#x} holds crash!validate+{:#x} — not a frame of the call chain",
                    value - validate
                ),
                "{arch:?}"
            );
            // Found from the image's .pdata on x64, from the STACK WIN records on x86.
            let how = if arch == Arch::X86 {
                "frame data"
            } else {
                "unwind"
            };
            assert_eq!(
                evidence[1],
                format!("the call chain has 4 frames, found from {how}")
            );
            // A pattern about how to read a stack, not a fault: possible at most.
            assert_eq!(f.confidence(), Confidence::Low);
        }
    }

    #[test]
    fn a_chain_without_stale_values_or_a_function_pointer_is_not_coincidental() {
        for arch in [Arch::Amd64, Arch::X86] {
            let (a, _) = faulted(arch, None);
            assert!(
                a.detect(&CoincidentalSymbolicInformation).is_empty(),
                "{arch:?}"
            );
            // A function pointer points into code too, but no call instruction precedes it.
            let (a, _) = faulted(arch, Some(|v| v.addr));
            assert!(
                a.detect(&CoincidentalSymbolicInformation).is_empty(),
                "{arch:?}"
            );
        }
    }

    #[test]
    fn without_an_exception_there_is_no_faulting_stack_to_read() {
        let mut p = Process::new(Arch::Amd64);
        let app = p.module(Module::new("C:\\app\\crash.exe"));
        let validate = p.function(app, "validate", 0x80);
        let main = p.add_function(app, Function::new("main", 0x80).locals(0x40));
        p.thread(0x100, [main])
            .local_word(0, 0x10, validate.call_site(1));
        let a = Analysed::with_symbols(p);
        assert!(a.detect(&CoincidentalSymbolicInformation).is_empty());
    }
}
