//! Multiple Exceptions: more than one thread inside exception dispatch.

use crate::{silent, Detector, Evidence, Fact, Finding, Pattern, Strength};

pub struct MultipleExceptions;

const DISPATCH: &[&str] = &[
    "KiUserExceptionDispatcher",
    "KiUserExceptionDispatch",
    "RtlDispatchException",
    "UnhandledExceptionFilter",
    "WerpReportFault",
];

impl Detector for MultipleExceptions {
    fn pattern(&self) -> Pattern {
        Pattern::MultipleExceptions
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let dispatching: Vec<&crate::ThreadView> = ev
            .threads
            .iter()
            // Compared as `known::is_one_of` does: an x86 PDB's public symbols carry the
            // stdcall decoration (`_KiUserExceptionDispatcher@8`, `_UnhandledExceptionFilter@4`).
            .filter(|t| t.frames.iter().any(|f| f.is_one_of(DISPATCH)))
            .collect();
        if dispatching.len() < 2 {
            silent!(
                "{} thread(s) inside exception dispatch: not several",
                dispatching.len()
            );
        }
        let evidence = dispatching
            .iter()
            .map(|t| {
                // The frame just past the dispatcher is where that thread faulted.
                let at = t
                    .frames
                    .iter()
                    .position(|f| {
                        f.short_name()
                            .is_some_and(|n| n.starts_with("KiUserExceptionDispatch"))
                    })
                    .and_then(|i| t.frames.get(i + 1))
                    .map(|f| f.call_site())
                    .unwrap_or_else(|| "unknown".into());
                // The exception itself, when its record lies under the dispatcher's frame (the
                // stored one for the stored exception's thread).
                let code = ev
                    .dispatched_exceptions()
                    .iter()
                    .find(|(i, _)| ev.threads[*i].id == t.id)
                    .map(|(_, r)| r.record.code)
                    .or_else(|| {
                        ev.exception
                            .as_ref()
                            .filter(|e| e.thread_id == t.id)
                            .map(|e| e.record.code)
                    });
                let what = match code {
                    Some(c) => match dumpdiag_os::errors::exception_name(c) {
                        Some(name) => format!("exception {c:08x} ({name})"),
                        None => format!("exception {c:08x}"),
                    },
                    None => "an exception".to_string(),
                };
                let note = format!("thread {:x} is dispatching {what} raised in {at}", t.id);
                Fact::Thread { id: t.id, note }
            })
            .collect::<Vec<_>>();
        vec![Finding::new(self.pattern(), Strength::Proven, format!("{} threads are inside exception dispatch", dispatching.len()))
            .threads(dispatching.iter().map(|t| t.id).collect())
            .facts(evidence)

            .recommend("Only one exception is stored in the dump; look at each dispatching thread (~Ns; k) — the first fault may not be the one recorded.")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{Analysed, Bitness, Waits};
    use crate::Confidence;
    use dumpdiag_synth::Func;

    /// KiUserExceptionDispatcher, RtlDispatchException, UnhandledExceptionFilter, named as
    /// given (`decorated`: as x86 public symbols spell them, `_KiUserExceptionDispatcher@8`).
    fn dispatch(w: &mut Waits, decorated: bool) -> [Func; 3] {
        let name = |plain: &str, args: u32| {
            if decorated {
                format!("_{plain}@{args}")
            } else {
                plain.to_string()
            }
        };
        let (ntdll, kernelbase) = (w.ntdll, w.kernelbase);
        [
            w.p.function(ntdll, &name("KiUserExceptionDispatcher", 8), 0x80),
            w.p.function(ntdll, &name("RtlDispatchException", 8), 0x80),
            w.p.function(kernelbase, &name("UnhandledExceptionFilter", 4), 0x80),
        ]
    }

    /// 0x100 dispatches a fault of parse_block; 0x200 is in the unhandled-exception filter
    /// for a fault of decode_frame (when `both`); 0x300 sleeps.
    fn faulting(b: Bitness, decorated: bool, both: bool) -> Waits {
        let mut w = Waits::new(b);
        let [kiuser, rtl, filter] = dispatch(&mut w, decorated);
        let first = w.chain(&[rtl, kiuser], "parse_block");
        w.p.thread(0x100, first);
        if both {
            let second = w.chain(&[filter, rtl, kiuser], "decode_frame");
            w.p.thread(0x200, second);
        }
        w.sleep(0x300, "housekeeping");
        w
    }

    #[test]
    fn two_threads_inside_exception_dispatch_are_multiple_exceptions() {
        for b in [Bitness::X64, Bitness::X86] {
            let found =
                Analysed::exports_only(faulting(b, false, true).p).detect(&MultipleExceptions);
            assert_eq!(found.len(), 1, "{b:?}");
            let f = &found[0];
            assert_eq!(f.summary, "2 threads are inside exception dispatch");
            assert_eq!(f.threads, [0x100, 0x200]);
            assert_eq!(
                f.evidence(),
                [
                    "thread 100 is dispatching an exception raised in service!parse_block",
                    "thread 200 is dispatching an exception raised in service!decode_frame",
                ]
            );
            assert_eq!(f.confidence(), Confidence::High);
        }
    }

    #[test]
    fn x86_public_symbols_name_the_dispatcher_with_its_decoration() {
        // An x86 PDB's public symbols are stdcall-decorated (`_KiUserExceptionDispatcher@8`,
        // `_UnhandledExceptionFilter@4`): the same dispatch.
        let found = Analysed::with_symbols(faulting(Bitness::X86, true, true).p)
            .detect(&MultipleExceptions);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].threads, [0x100, 0x200]);
        assert_eq!(
            found[0].evidence()[1],
            "thread 200 is dispatching an exception raised in service!decode_frame"
        );
    }

    #[test]
    fn one_thread_in_dispatch_is_not_multiple() {
        for b in [Bitness::X64, Bitness::X86] {
            let found =
                Analysed::exports_only(faulting(b, false, false).p).detect(&MultipleExceptions);
            assert!(found.is_empty(), "{b:?}: {found:#?}");
        }
    }
}
