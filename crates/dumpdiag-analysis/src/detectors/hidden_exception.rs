//! Hidden Exception: EXCEPTION_RECORDs left on a thread's stack by past dispatch — anywhere in
//! the committed stack, below the stack pointer too: when the kernel dispatches an exception to
//! user mode it builds the CONTEXT and the EXCEPTION_RECORD on the thread's stack for
//! KiUserExceptionDispatcher, and after a handler resumed execution (or the thread was moved
//! elsewhere) they stay there, below the new stack pointer, until overwritten. Each record is
//! shown with the address to give `.exr`, and the CONTEXT saved with it (its instruction
//! pointer is the record's address) with the address to give `.cxr`. The dump's own stored
//! exception is not hidden and is left out.

use crate::stack_records::stack_records;
use crate::{silent, Detector, Evidence, Fact, Finding, Pattern, Strength};

pub struct HiddenException;

impl Detector for HiddenException {
    fn pattern(&self) -> Pattern {
        Pattern::HiddenException
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        // A copy of the stored exception is not hidden, wherever it lies.
        let stored = ev
            .exception
            .as_ref()
            .map(|e| (e.record.code, e.record.address));
        let mut out = Vec::new();
        for t in &ev.threads {
            // An exception this thread is dispatching right now is current (Multiple
            // Exceptions' or the stored one), not hidden.
            let records: Vec<Fact> = stack_records(ev, t)
                .into_iter()
                .filter(|r| !r.live && stored != Some((r.record.code, r.record.address)))
                .map(|r| Fact::Exception {
                    record_at: Some(r.record_at),
                    context_at: r.context_at,
                    code: r.record.code,
                    address: r.record.address,
                    location: ev.describe(r.record.address),
                })
                .collect();
            if records.is_empty() {
                continue;
            }
            // Record-shaped bytes with a real code, flags, a code address and a parameter
            // count are rarely anything else; the CONTEXT beside one confirms the dispatch.
            let confirmed = records.iter().any(|f| {
                matches!(
                    f,
                    Fact::Exception {
                        context_at: Some(_),
                        ..
                    }
                )
            });
            out.push(
                Finding::new(
                    self.pattern(),
                    if confirmed {
                        Strength::Proven
                    } else {
                        Strength::Likely
                    },
                    format!(
                        "thread {:x} has {} exception record(s) left on its stack",
                        t.id,
                        records.len()
                    ),
                )
                .threads(vec![t.id])
                .facts(records)
                .recommend(
                    "An exception was raised and handled (or swallowed) earlier on this thread: \
                     .exr on the record's address and .cxr on its CONTEXT show where it \
                     happened; look for the handler that let it pass.",
                ),
            );
        }
        if out.is_empty() {
            silent!("no exception record on any stack but the stored one");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{Analysed, Bitness, Waits};
    use crate::Confidence;
    use dumpdiag_synth::{Exception, Registers};
    use dumpdiag_target::ExceptionRecord;

    const ACCESS_VIOLATION: u32 = 0xc000_0005;

    fn record(code: u32, address: u64, parameters: Vec<u64>) -> ExceptionRecord {
        ExceptionRecord {
            code,
            flags: 0,
            nested_record: 0,
            address,
            parameters,
        }
    }

    /// A CONTEXT of the process's machine whose instruction pointer is `ip`.
    fn context(w: &Waits, ip: u64) -> Vec<u8> {
        let mut r = Registers::default();
        r.set(if w.ptr() == 8 { "rip" } else { "eip" }, ip);
        w.p.context_bytes(&r)
    }

    /// The end of an exception fact's text: where `.exr` and `.cxr` find the record and its
    /// CONTEXT.
    fn exr_cxr(record_at: u64, context_at: u64) -> String {
        format!(
            "; EXCEPTION_RECORD at {record_at:#x} (.exr {record_at:#x}); CONTEXT at \
             {context_at:#x} (.cxr {context_at:#x})"
        )
    }

    #[test]
    fn a_record_and_its_context_below_the_stack_pointer_are_a_hidden_exception() {
        for b in [Bitness::X64, Bitness::X86] {
            let mut w = Waits::new(b);
            let parse = w.function("parse_block");
            // What the kernel left for KiUserExceptionDispatcher before a handler resumed the
            // thread: the EXCEPTION_RECORD, the CONTEXT below it (x64's dispatcher frame
            // layout), the context's instruction pointer the faulting one.
            let (av, ctx) = w.record_and_context(ACCESS_VIOLATION, parse.body(), vec![0, 0x18]);
            let t = w.sleep(0x100, "retry_loop");
            let record_at = t.below_sp(&av);
            let context_at = t.below_sp(&ctx);
            let found = Analysed::exports_only(w.p).detect(&HiddenException);
            assert_eq!(found.len(), 1, "{b:?}: {found:#?}");
            let f = &found[0];
            assert_eq!(
                f.summary,
                "thread 100 has 1 exception record(s) left on its stack"
            );
            assert_eq!(f.threads, [0x100]);
            let text = f.evidence().remove(0);
            assert!(
                text.starts_with(&format!(
                    "exception c0000005 at {:#x} (service!parse_block",
                    parse.body()
                )),
                "{b:?}: {text}"
            );
            assert!(
                text.ends_with(&exr_cxr(record_at, context_at)),
                "{b:?}: {text}"
            );
            // The CONTEXT beside the record confirms the dispatch.
            assert_eq!(f.confidence(), Confidence::High);
        }
    }

    #[test]
    fn a_record_without_its_context_is_likely_only() {
        // A C++ exception's record (e06d7363, four parameters on x64, three on x86) left on
        // the stack of a thread of a crash dump, not the faulting one.
        for b in [Bitness::X64, Bitness::X86] {
            let mut w = Waits::new(b);
            let throw = w.function("load_settings");
            let params = if w.ptr() == 8 {
                vec![0x1993_0520, 0x1000, 0x2000, 0x7ff6_1000_0000]
            } else {
                vec![0x1993_0520, 0x1000, 0x2000]
            };
            let cpp =
                w.p.exception_record_bytes(&record(0xe06d_7363, throw.at(0x20), params));
            let record_at = w.sleep(0x100, "retry_loop").below_sp(&cpp);
            w.crash(0x900, "parse_reply");
            let found = Analysed::exports_only(w.p).detect(&HiddenException);
            assert_eq!(found.len(), 1, "{b:?}: {found:#?}");
            assert_eq!(found[0].threads, [0x100]);
            assert!(found[0].evidence()[0].ends_with(&format!(
                "; EXCEPTION_RECORD at {record_at:#x} (.exr {record_at:#x})"
            )));
            assert_eq!(found[0].confidence(), Confidence::Medium);
        }
    }

    #[test]
    fn a_context_of_another_instruction_is_not_the_records() {
        // A CONTEXT beside the record whose instruction pointer is elsewhere (one that
        // RtlCaptureContext saved, say) is not the one saved with it: no .cxr is offered.
        for b in [Bitness::X64, Bitness::X86] {
            let mut w = Waits::new(b);
            let parse = w.function("parse_block");
            let av =
                w.p.exception_record_bytes(&record(ACCESS_VIOLATION, parse.body(), vec![0, 0x18]));
            let ctx = context(&w, parse.call_site(1));
            let t = w.sleep(0x100, "retry_loop");
            let record_at = t.below_sp(&av);
            t.below_sp(&ctx);
            let found = Analysed::exports_only(w.p).detect(&HiddenException);
            assert_eq!(found.len(), 1, "{b:?}: {found:#?}");
            assert!(found[0].evidence()[0].ends_with(&format!("(.exr {record_at:#x})")));
            assert_eq!(found[0].confidence(), Confidence::Medium, "{b:?}");
        }
    }

    #[test]
    fn the_stored_exceptions_own_record_is_not_hidden() {
        for b in [Bitness::X64, Bitness::X86] {
            let mut w = Waits::new(b);
            let parse = w.function("parse_block");
            let (av, ctx) = w.record_and_context(ACCESS_VIOLATION, parse.body(), vec![0, 0x18]);
            let t = w.run(0x100, "parse_block");
            t.below_sp(&av);
            t.below_sp(&ctx);
            let mut e = Exception::new(0x100, ACCESS_VIOLATION);
            e.parameters = vec![0, 0x18];
            w.p.exception(e);
            let found = Analysed::exports_only(w.p).detect(&HiddenException);
            assert!(found.is_empty(), "{b:?}: {found:#?}");
        }
    }

    #[test]
    fn the_record_a_thread_is_dispatching_now_is_not_hidden() {
        // Thread 0x100 is inside KiUserExceptionDispatcher → RtlDispatchException for a fault
        // in parse_block: the record and CONTEXT lie in the dispatcher's frame, in the live
        // stack, and the record's address is where the walk leaves the dispatcher.
        for b in [Bitness::X64, Bitness::X86] {
            let mut w = Waits::new(b);
            w.dispatching(0x100, ACCESS_VIOLATION, "parse_block", vec![0, 0x18]);
            let a = Analysed::exports_only(w.p);
            let names: Vec<String> = a.evidence().threads[0]
                .frames
                .iter()
                .map(|f| f.call_site())
                .collect();
            assert_eq!(
                names[1..3],
                ["ntdll!KiUserExceptionDispatcher", "service!parse_block"]
            );
            let found = a.detect(&HiddenException);
            assert!(found.is_empty(), "{b:?}: {found:#?}");
        }
    }
}
