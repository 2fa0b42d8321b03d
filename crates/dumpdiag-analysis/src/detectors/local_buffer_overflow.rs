//! Local Buffer Overflow (User Space): STATUS_STACK_BUFFER_OVERRUN (c0000409) raised by a check
//! that guards a stack frame — the /GS cookie (`__report_gsfailure`), CET shadow-stack and
//! return-address checks, the CRT's range checks. The same status carries every `__fastfail`
//! code since Windows 8, most of which have nothing to do with a buffer (`abort()` raises
//! FAST_FAIL_FATAL_APP_EXIT, a corrupted list entry FAST_FAIL_CORRUPT_LIST_ENTRY): those are
//! named for what they are by the exception findings, not reported here.

use super::{exception_thread, top_frames};
use crate::{silent, Detector, Evidence, Fact, Finding, Pattern, Strength};
use dumpdiag_os::{codes, known};
use dumpdiag_target::MemoryExt;

pub struct LocalBufferOverflow;

/// Functions that report a failed check (MSVC's /GS runtime, the compiler's stack protector,
/// the fast-fail intrinsic itself): the frame below them is the function whose frame was
/// overrun.
const CHECK_REPORTERS: &[&str] = &[
    "__report_gsfailure",
    "__security_check_cookie",
    "__GSHandlerCheck",
    "__stack_chk_fail",
    "__fastfail",
    "RtlFailFast",
    "RtlFailFast2",
];
/// How much of the overrun frame is read for the data that overwrote it.
const FRAME_BYTES: u64 = 0x200;
/// Slots shown.
const MAX_SLOTS: usize = 4;

/// What overwrote the frame whose check failed: stack slots of that frame holding ASCII text or
/// a fill pattern where locals, the cookie and the return address should be, and whether the
/// walk could follow its return address. None when the frame is not found.
fn overwritten_frame(ev: &Evidence) -> Option<Vec<Fact>> {
    let (e, frames) = (ev.exception.as_ref()?, ev.exception_frames());
    let victim = frames
        .iter()
        .position(|f| !f.is_one_of(CHECK_REPORTERS) && f.function.is_some())?;
    let walk = ev.exception_walk.as_ref()?;
    let frame = walk.stack.frames.get(victim)?;
    let ptr = if walk.context.arch() == dumpdiag_target::Arch::X86 {
        4
    } else {
        8
    };
    let mem = ev.target().memory();
    let mut out = Vec::new();
    let mut a = frame.sp;
    while a < frame.sp.saturating_add(FRAME_BYTES) && out.len() < MAX_SLOTS {
        if let Some((what, _)) = mem
            .read_ptr(a, ptr)
            .and_then(|v| known::pointer_pattern(v, ptr))
        {
            out.push(Fact::Memory {
                address: a,
                note: format!(
                    "stack slot {a:#x} of {}: {what}",
                    frames[victim].call_site()
                ),
            });
        }
        a += ptr;
    }
    if walk
        .stack
        .frames
        .get(victim + 1)
        .is_some_and(|f| f.trust == dumpdiag_stack::Trust::Scan)
    {
        out.push(Fact::Note(format!(
            "the return address of {} could not be followed: the frames above it were found by scanning",
            frames[victim].call_site()
        )));
    }
    if !out.is_empty() {
        out.insert(
            0,
            Fact::Frame {
                thread: e.thread_id,
                index: victim,
                frame: frames[victim].clone(),
            },
        );
    }
    Some(out)
}

impl Detector for LocalBufferOverflow {
    fn pattern(&self) -> Pattern {
        Pattern::LocalBufferOverflow
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let Some(e) = &ev.exception else {
            silent!("the dump has no exception stream");
        };
        let code = e.record.parameters.first().copied().unwrap_or(u64::MAX);
        if e.record.code != codes::STACK_BUFFER_OVERRUN {
            silent!(
                code = format!("{:08x}", e.record.code),
                "not STATUS_STACK_BUFFER_OVERRUN"
            );
        }
        if !codes::is_stack_buffer_check(code) {
            silent!("fail fast {code:#x} is no check that guards a stack frame");
        }
        let name = codes::fast_fail_name(code).unwrap_or_default();
        let mut facts = vec![Fact::Note(format!("__fastfail code {code:#x} {name}"))];
        facts.extend(top_frames(ev, 4));
        facts.extend(overwritten_frame(ev).unwrap_or_default());
        vec![Finding::new(
            self.pattern(),
            Strength::Proven,
            format!("a stack buffer check failed: fail fast {code:#x} ({name})"),
        )
        .threads(exception_thread(ev))
        .facts(facts)
        .recommend(
            "The function whose check failed (the frame above __report_gsfailure) overran a \
             local buffer and overwrote its frame's cookie or return address: look at its \
             arrays and string copies, and reproduce under page heap / ASan if it is data-driven.",
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::Analysed;
    use crate::Confidence;
    use dumpdiag_synth::{Exception, Function, Module, Process};
    use dumpdiag_target::Arch;

    const STACK_BUFFER_OVERRUN: u32 = 0xc000_0409;
    const STACK_COOKIE_CHECK_FAILURE: u64 = 2;
    const INVALID_ARG: u64 = 5;
    const FATAL_APP_EXIT: u64 = 7;
    /// What the customer's name field received.
    const TEXT: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEF";

    /// Thread 0x100 in orders!__report_gsfailure (the CRT's /GS check, linked into the image)
    /// over orders!parse_name, whose 0x40-byte buffer holds TEXT, raising c0000409 with
    /// `fast_fail`. Returns the process and the address of the text.
    fn overrun(arch: Arch, fast_fail: u64) -> (Process, u64) {
        let mut p = Process::new(arch);
        let app = p.module(Module::new("C:\\app\\orders.exe"));
        let ntdll = p.module(Module::new("C:\\Windows\\System32\\ntdll.dll"));
        let kernel32 = p.module(Module::new("C:\\Windows\\System32\\kernel32.dll"));
        let chain = [
            p.function(app, "__report_gsfailure", 0x80),
            p.add_function(app, Function::new("parse_name", 0x80).locals(0x40)),
            p.function(app, "main", 0x80),
            p.function(kernel32, "BaseThreadInitThunk", 0x40),
            p.function(ntdll, "RtlUserThreadStart", 0x40),
        ];
        let at = p.thread(0x100, chain).local(1, 0, TEXT);
        let mut e = Exception::new(0x100, STACK_BUFFER_OVERRUN);
        e.flags = 1;
        e.parameters = vec![fast_fail];
        p.exception(e);
        (p, at)
    }

    #[test]
    fn a_failed_stack_cookie_check_names_the_overrun_frame_and_the_text_in_it() {
        for arch in [Arch::Amd64, Arch::X86] {
            let (p, at) = overrun(arch, STACK_COOKIE_CHECK_FAILURE);
            let ptr = p.ptr() as usize;
            let found = Analysed::exports_only(p).detect(&LocalBufferOverflow);
            assert_eq!(found.len(), 1, "{arch:?}");
            let f = &found[0];
            assert_eq!(
                f.summary,
                "a stack buffer check failed: fail fast 0x2 (FAST_FAIL_STACK_COOKIE_CHECK_FAILURE)"
            );
            assert_eq!(f.threads, [0x100]);
            let evidence = f.evidence();
            assert_eq!(
                evidence[0],
                "__fastfail code 0x2 FAST_FAIL_STACK_COOKIE_CHECK_FAILURE"
            );
            // The overrun frame, then its slots of text (four shown).
            let slots: Vec<String> = TEXT
                .chunks(ptr)
                .take(4)
                .enumerate()
                .map(|(i, chunk)| {
                    let mut v = [0u8; 8];
                    v[..ptr].copy_from_slice(chunk);
                    let value = u64::from_le_bytes(v);
                    let text = String::from_utf8_lossy(chunk);
                    format!(
                        "stack slot {:#x} of orders!parse_name: {value:#x} is ASCII text \
                         ('{text}'): a string overwrote the pointer",
                        at + (i * ptr) as u64
                    )
                })
                .collect();
            let n = evidence.len();
            assert_eq!(evidence[n - 4..], slots[..], "{arch:?}");
            assert!(
                evidence[n - 5].starts_with("thread 100 frame 01: orders!parse_name"),
                "{evidence:?}"
            );
            assert_eq!(f.confidence(), Confidence::High);
        }
    }

    #[test]
    fn text_over_the_return_address_leaves_the_frames_above_to_scanning() {
        for arch in [Arch::Amd64, Arch::X86] {
            let (mut p, at) = overrun(arch, STACK_COOKIE_CHECK_FAILURE);
            // The copy ran on over the saved frame pointer (x86) and the return address.
            let slot = p.frames(0x100)[1].return_slot;
            let len = (slot + p.ptr() - at) as usize;
            let long: Vec<u8> = TEXT.iter().cycle().take(len).copied().collect();
            p.thread_mut(0x100).write(at, &long);
            let a = Analysed::exports_only(p);
            let names: Vec<String> = a
                .evidence()
                .exception_frames()
                .iter()
                .map(|f| format!("{} {:?}", f.call_site(), f.trust))
                .collect();
            let found = a.detect(&LocalBufferOverflow);
            assert_eq!(found.len(), 1, "{arch:?}");
            assert!(
                found[0].evidence().contains(
                    &"the return address of orders!parse_name could not be followed: the \
                      frames above it were found by scanning"
                        .to_string()
                ),
                "{arch:?}: {names:?} {:#?}",
                found[0].evidence()
            );
        }
    }

    #[test]
    fn other_fast_fail_codes_are_not_buffer_overruns() {
        // abort() (FAST_FAIL_FATAL_APP_EXIT) and an invalid parameter to the CRT
        // (FAST_FAIL_INVALID_ARG) raise the same status over the same stack.
        for arch in [Arch::Amd64, Arch::X86] {
            for code in [FATAL_APP_EXIT, INVALID_ARG] {
                let (p, _) = overrun(arch, code);
                let found = Analysed::exports_only(p).detect(&LocalBufferOverflow);
                assert!(found.is_empty(), "{arch:?} {code}: {found:#?}");
            }
        }
    }
}
