//! Stored Exception: the exception record and context saved in the dump's exception stream.

use super::exception_thread;
use crate::{silent, Detector, Evidence, Fact, Finding, Pattern, Strength};
use dumpdiag_os::codes;

pub struct StoredException;

impl Detector for StoredException {
    fn pattern(&self) -> Pattern {
        Pattern::StoredException
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let Some(e) = &ev.exception else {
            silent!("the dump has no exception stream");
        };
        let r = &e.record;
        let name = dumpdiag_os::errors::exception_name(r.code).unwrap_or("unknown exception code");
        // STATUS_STACK_BUFFER_OVERRUN carries every __fastfail since Windows 8: say which one.
        let fast_fail = (r.code == codes::STACK_BUFFER_OVERRUN)
            .then(|| r.parameters.first().copied())
            .flatten()
            .map(|c| {
                let n = codes::fast_fail_name(c).unwrap_or_else(|| "an unknown code".into());
                format!(": fail fast {c:#x} {n}")
            })
            .unwrap_or_default();
        let parameters: Vec<String> = r.parameters.iter().map(|p| format!("{p:#x}")).collect();
        vec![Finding::new(
            self.pattern(),
            Strength::Proven,
            format!(
                "the dump's exception stream holds {:08x} ({name}{fast_fail}) at {:#x}",
                r.code, r.address
            ),
        )
        .threads(exception_thread(ev))
        .fact(Fact::Exception {
            record_at: None,
            context_at: None,
            code: r.code,
            address: r.address,
            location: ev.describe(r.address),
        })
        .notes([format!("Parameters: {}", parameters.join(" "))])
        .recommend(".exr -1 shows the record and .ecxr switches to its context.")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::Analysed;
    use crate::Confidence;
    use dumpdiag_synth::{Exception, Func, Module, Process};
    use dumpdiag_target::Arch;

    /// Thread 0x100 in crash!parse_record ← crash!main, with `exception` (its context the
    /// thread's own) when given.
    fn process(arch: Arch, exception: Option<(u32, Vec<u64>)>) -> (Process, Func) {
        let mut p = Process::new(arch);
        let app = p.module(Module::new("C:\\app\\crash.exe"));
        let parse = p.function(app, "parse_record", 0x80);
        let main = p.function(app, "main", 0x80);
        p.thread(0x100, [parse, main]);
        if let Some((code, parameters)) = exception {
            let mut e = Exception::new(0x100, code);
            e.parameters = parameters;
            p.exception(e);
        }
        (p, parse)
    }

    #[test]
    fn the_record_is_reported_with_its_name_address_and_parameters() {
        for arch in [Arch::Amd64, Arch::X86] {
            let (p, parse) = process(arch, Some((0xc000_0005, vec![1, 0x18])));
            let found = Analysed::with_symbols(p).detect(&StoredException);
            assert_eq!(found.len(), 1, "{arch:?}");
            let f = &found[0];
            assert_eq!(f.threads, vec![0x100]);
            assert_eq!(
                f.summary,
                format!(
                    "the dump's exception stream holds c0000005 (STATUS_ACCESS_VIOLATION) at {:#x}",
                    parse.body()
                )
            );
            let evidence = f.evidence();
            assert!(
                evidence[0].starts_with(&format!(
                    "exception c0000005 at {:#x} (crash!parse_record",
                    parse.body()
                )),
                "{evidence:?}"
            );
            assert!(
                evidence.contains(&"Parameters: 0x1 0x18".to_string()),
                "{evidence:?}"
            );
            assert_eq!(f.confidence(), Confidence::High);
        }
    }

    #[test]
    fn a_fail_fast_says_which_check_failed() {
        // __fastfail(FAST_FAIL_STACK_COOKIE_CHECK_FAILURE) raises c0000409 with code 2.
        let (p, _) = process(Arch::Amd64, Some((0xc000_0409, vec![2])));
        let f = &Analysed::exports_only(p).detect(&StoredException)[0];
        assert!(
            f.summary.contains(
                "(STATUS_STACK_BUFFER_OVERRUN: fail fast 0x2 FAST_FAIL_STACK_COOKIE_CHECK_FAILURE)"
            ),
            "{}",
            f.summary
        );
        // Only c0000409 carries a fail-fast code: the same parameter on another code is not one.
        let (p, _) = process(Arch::Amd64, Some((0xc000_0005, vec![2])));
        let f = &Analysed::exports_only(p).detect(&StoredException)[0];
        assert!(!f.summary.contains("fail fast"), "{}", f.summary);
        // A code without a name says so.
        let (p, _) = process(Arch::Amd64, Some((0xe000_1234, vec![])));
        let f = &Analysed::exports_only(p).detect(&StoredException)[0];
        assert!(
            f.summary.contains("e0001234 (unknown exception code)"),
            "{}",
            f.summary
        );
    }

    #[test]
    fn a_dump_without_an_exception_stream_stores_none() {
        let (mut p, _) = process(Arch::Amd64, None);
        p.comment_a("taken by hand");
        assert!(Analysed::with_symbols(p)
            .detect(&StoredException)
            .is_empty());
    }
}
