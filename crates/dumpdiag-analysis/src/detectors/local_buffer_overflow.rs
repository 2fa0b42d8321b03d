//! Local Buffer Overflow (User Space): STATUS_STACK_BUFFER_OVERRUN (c0000409) raised by a check
//! that guards a stack frame — the /GS cookie (`__report_gsfailure`), CET shadow-stack and
//! return-address checks, the CRT's range checks. The same status carries every `__fastfail`
//! code since Windows 8, most of which have nothing to do with a buffer (`abort()` raises
//! FAST_FAIL_FATAL_APP_EXIT, a corrupted list entry FAST_FAIL_CORRUPT_LIST_ENTRY): those are
//! named for what they are by the exception findings, not reported here.

use super::{exception_thread, top_frames};
use crate::{Detector, Evidence, Fact, Finding, Pattern, Strength};
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
/// walk could follow its return address.
fn overwritten_frame(ev: &Evidence) -> Vec<Fact> {
    let (Some(e), frames) = (ev.exception.as_ref(), ev.exception_frames()) else {
        return Vec::new();
    };
    let Some(victim) = frames
        .iter()
        .position(|f| !f.is_one_of(CHECK_REPORTERS) && f.function.is_some())
    else {
        return Vec::new();
    };
    let Some(walk) = &ev.exception_walk else {
        return Vec::new();
    };
    let Some(frame) = walk.stack.frames.get(victim) else {
        return Vec::new();
    };
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
    out
}

impl Detector for LocalBufferOverflow {
    fn pattern(&self) -> Pattern {
        Pattern::LocalBufferOverflow
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let Some(e) = &ev.exception else {
            return Vec::new();
        };
        let code = e.record.parameters.first().copied().unwrap_or(u64::MAX);
        if e.record.code != codes::STACK_BUFFER_OVERRUN || !codes::is_stack_buffer_check(code) {
            return Vec::new();
        }
        let name = codes::fast_fail_name(code).unwrap_or_default();
        let mut facts = vec![Fact::Note(format!("__fastfail code {code:#x} {name}"))];
        facts.extend(top_frames(ev, 4));
        facts.extend(overwritten_frame(ev));
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
