//! Divide by Zero: integer (c0000094) or floating-point (c000008e) division by zero.

use super::{exception_thread, top_frames};
use crate::{silent, Detector, Evidence, Fact, Finding, Pattern, Strength};
use dumpdiag_os::codes;
use dumpdiag_stack::code::Mnemonic;

pub struct DivideByZero;

impl Detector for DivideByZero {
    fn pattern(&self) -> Pattern {
        Pattern::DivideByZero
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let mut out: Vec<Finding> = ev
            .exception
            .as_ref()
            .and_then(|e| stored(ev, e.record.code, e.record.address))
            .into_iter()
            .collect();
        // Only one exception is stored; another thread faulting at the same time is dispatching
        // its own, whose record lies under its KiUserExceptionDispatcher frame.
        for (i, r) in ev.dispatched_exceptions() {
            let Some(kind) = kind(r.record.code) else {
                continue;
            };
            let t = &ev.threads[*i];
            let site = t
                .frames
                .iter()
                .position(|f| f.ip == r.record.address)
                .unwrap_or(0);
            let frames = &t.frames[site..];
            let mut facts = vec![Fact::Exception {
                record_at: Some(r.record_at),
                context_at: r.context_at,
                code: r.record.code,
                address: r.record.address,
                location: ev.describe(r.record.address),
            }];
            facts.extend(Fact::frames(t.id, frames, 3));
            out.push(
                Finding::new(
                    self.pattern(),
                    // The CONTEXT saved with the record confirms the dispatch.
                    if r.context_at.is_some() {
                        Strength::Proven
                    } else {
                        Strength::Likely
                    },
                    format!(
                        "{kind} division by zero in {} on thread {:x} (being dispatched; not the \
                         stored exception)",
                        frames.first().map(|f| f.call_site()).unwrap_or_default(),
                        t.id
                    ),
                )
                .threads(vec![t.id])
                .facts(facts)
                .recommend(
                    "Check where the divisor comes from and guard the division; .exr and .cxr \
                     on the record's and CONTEXT's addresses show the fault.",
                ),
            );
        }
        if out.is_empty() {
            silent!("no divide-by-zero code, stored or being dispatched");
        }
        out
    }
}

/// "integer" or "floating-point" for the two division-by-zero codes.
fn kind(code: u32) -> Option<&'static str> {
    match code {
        codes::INT_DIVIDE_BY_ZERO => Some("integer"),
        codes::FLT_DIVIDE_BY_ZERO => Some("floating-point"),
        _ => None,
    }
}

/// The finding for the dump's stored exception, when it is a division by zero.
fn stored(ev: &Evidence, code: u32, address: u64) -> Option<Finding> {
    let kind = kind(code)?;
    let mut facts = top_frames(ev, 3);
    // The dividing instruction, when the dump holds the code at the faulting address. Any
    // mnemonic with "div" in it counts, whatever its case: x64 code divides floating point
    // with SSE (divsd, divss; Debug-printed "Divsd"), and Windows raises c000008e from those
    // when the MXCSR leaves the zero-divide exception unmasked.
    let view = ev
        .exception_walk
        .as_ref()
        .map(|w| w.view)
        .unwrap_or_default();
    let code = ev.disassembler(view);
    let divides = code.decode(address, 1).first().is_some_and(|i| {
        matches!(
            i.mnemonic(),
            Mnemonic::Div | Mnemonic::Idiv | Mnemonic::Fdiv | Mnemonic::Fidiv | Mnemonic::Fdivr
        ) || format!("{:?}", i.mnemonic())
            .to_ascii_lowercase()
            .contains("div")
    });
    if let Some(text) = code.instruction_text(address).filter(|_| divides) {
        let note = format!("faulting instruction at {address:#x}: {text}");
        facts.insert(0, Fact::Memory { address, note });
    }
    Some(
        Finding::new(
            Pattern::DivideByZero,
            Strength::Proven,
            format!(
                "{kind} division by zero in {}",
                ev.exception_frames()
                    .first()
                    .map(|f| f.call_site())
                    .unwrap_or_default()
            ),
        )
        .threads(exception_thread(ev))
        .facts(facts)
        .recommend("Check where the divisor comes from and guard the division."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::Analysed;
    use crate::Confidence;
    use dumpdiag_synth::{Exception, Module, Process};
    use dumpdiag_target::Arch;

    const INT_DIVIDE_BY_ZERO: u32 = 0xc000_0094;
    const FLT_DIVIDE_BY_ZERO: u32 = 0xc000_008e;
    const INTEGER_OVERFLOW: u32 = 0xc000_0095;

    /// Thread 0x100 faulting with `code` in calc!average ← calc!main, at average's body where
    /// `instruction` (when given) replaces the usual first instruction. Returns the analysis
    /// and the faulting address.
    fn faulted(arch: Arch, code: u32, instruction: Option<&[u8]>) -> (Analysed, u64) {
        let mut p = Process::new(arch);
        let app = p.module(Module::new("C:\\app\\calc.exe"));
        let average = p.function(app, "average", 0x80);
        let main = p.function(app, "main", 0x80);
        p.thread(0x100, [average, main]);
        if let Some(bytes) = instruction {
            p.write(average.body(), bytes);
        }
        p.exception(Exception::new(0x100, code));
        (Analysed::with_symbols(p), average.body())
    }

    /// The faulting-instruction line of a finding's evidence, split into words.
    fn instruction_words(evidence: &[String], at: u64) -> Option<Vec<String>> {
        let prefix = format!("faulting instruction at {at:#x}: ");
        evidence
            .iter()
            .find_map(|e| e.strip_prefix(&prefix))
            .map(|i| {
                i.split([' ', ','])
                    .filter(|w| !w.is_empty())
                    .map(String::from)
                    .collect()
            })
    }

    #[test]
    fn an_integer_division_by_zero_shows_the_dividing_instruction() {
        // div rcx (REX.W F7 /6) and idiv ecx (F7 /7).
        for (arch, bytes, words) in [
            (Arch::Amd64, &[0x48, 0xf7, 0xf1][..], ["div", "rcx"]),
            (Arch::X86, &[0xf7, 0xf9][..], ["idiv", "ecx"]),
        ] {
            let (a, at) = faulted(arch, INT_DIVIDE_BY_ZERO, Some(bytes));
            let found = a.detect(&DivideByZero);
            assert_eq!(found.len(), 1, "{arch:?}");
            let f = &found[0];
            assert_eq!(f.summary, "integer division by zero in calc!average");
            assert_eq!(f.threads, vec![0x100]);
            assert_eq!(
                instruction_words(&f.evidence(), at),
                Some(words.map(String::from).to_vec())
            );
            assert_eq!(f.confidence(), Confidence::High);
        }
    }

    #[test]
    fn a_floating_point_division_by_zero_shows_x87_and_sse_divisions() {
        // x86: fdiv st(0), st(1) (D8 F1); x64: divsd xmm0, xmm1 (F2 0F 5E C1), how x64 code
        // divides doubles.
        for (arch, bytes, mnemonic) in [
            (Arch::X86, &[0xd8, 0xf1][..], "fdiv"),
            (Arch::Amd64, &[0xf2, 0x0f, 0x5e, 0xc1][..], "divsd"),
        ] {
            let (a, at) = faulted(arch, FLT_DIVIDE_BY_ZERO, Some(bytes));
            let found = a.detect(&DivideByZero);
            assert_eq!(found.len(), 1, "{arch:?}");
            assert_eq!(
                found[0].summary,
                "floating-point division by zero in calc!average"
            );
            let words = instruction_words(&found[0].evidence(), at);
            assert_eq!(
                words.as_ref().map(|w| w[0].as_str()),
                Some(mnemonic),
                "{arch:?}"
            );
        }
    }

    #[test]
    fn an_instruction_that_does_not_divide_is_not_shown_as_the_division() {
        // c0000094 raised at an instruction that is no division (RaiseException, or an address
        // that does not match the code): the finding stands on the code, without the line.
        let (a, at) = faulted(Arch::Amd64, INT_DIVIDE_BY_ZERO, None);
        let found = a.detect(&DivideByZero);
        assert_eq!(found.len(), 1);
        assert_eq!(instruction_words(&found[0].evidence(), at), None);
    }

    #[test]
    fn an_overflowing_division_or_another_fault_is_not_a_division_by_zero() {
        for (arch, bytes) in [
            (Arch::Amd64, &[0x48, 0xf7, 0xf9][..]),
            (Arch::X86, &[0xf7, 0xf9][..]),
        ] {
            // idiv of INT_MIN by -1: the same #DE, reported by Windows as c0000095.
            let (a, _) = faulted(arch, INTEGER_OVERFLOW, Some(bytes));
            assert!(a.detect(&DivideByZero).is_empty(), "{arch:?}");
            let (a, _) = faulted(arch, 0xc000_0005, Some(bytes));
            assert!(a.detect(&DivideByZero).is_empty(), "{arch:?}");
        }
    }

    /// Thread 0x100's access violation is the stored exception; thread 0x200 is inside
    /// KiUserExceptionDispatcher for a division by zero in parse_block, its record and CONTEXT
    /// in the dispatcher's frame (`live`) or left below its stack pointer after it resumed.
    fn two_faults(b: crate::test_support::Bitness, live: bool) -> Analysed {
        let mut w = crate::test_support::Waits::new(b);
        w.crash(0x100, "read_config");
        if live {
            w.dispatching(0x200, INT_DIVIDE_BY_ZERO, "parse_block", Vec::new());
        } else {
            let at = w.function("parse_block").call_site(0);
            let (record, context) = w.record_and_context(INT_DIVIDE_BY_ZERO, at, Vec::new());
            let t = w.sleep(0x200, "parse_block");
            t.below_sp(&record);
            t.below_sp(&context);
        }
        Analysed::exports_only(w.p)
    }

    #[test]
    fn another_threads_division_being_dispatched_is_named_too() {
        use crate::test_support::Bitness;
        for b in [Bitness::X64, Bitness::X86] {
            let found = two_faults(b, true).detect(&DivideByZero);
            assert_eq!(found.len(), 1, "{b:?}: {found:#?}");
            let f = &found[0];
            assert_eq!(
                f.summary,
                "integer division by zero in service!parse_block on thread 200 (being \
                 dispatched; not the stored exception)"
            );
            assert_eq!(f.threads, [0x200]);
            assert!(
                f.evidence()[0].starts_with("exception c0000094 at "),
                "{:?}",
                f.evidence()
            );
            assert_eq!(f.confidence(), Confidence::High, "{b:?}");
        }
    }

    #[test]
    fn a_division_handled_earlier_is_no_current_division_by_zero() {
        // The same record below the stack pointer of a thread that resumed: Hidden Exception's.
        use crate::test_support::Bitness;
        for b in [Bitness::X64, Bitness::X86] {
            let found = two_faults(b, false).detect(&DivideByZero);
            assert!(found.is_empty(), "{b:?}: {found:#?}");
        }
    }
}
