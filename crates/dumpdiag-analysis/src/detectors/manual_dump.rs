//! Manual Dump: the dump was taken on purpose — it has no exception stream (Task Manager,
//! ProcDump without an exception trigger, `MiniDumpWriteDump` called by a watchdog), or its only
//! exception is a debugger's own breakpoint (the initial breakpoint of a process started under
//! a debugger, or the break-in of an attaching debugger, recorded by `.dump`).

use super::debugger_break;
use crate::{silent, Caveat, Detector, Evidence, Finding, Pattern, Strength};

pub struct ManualDump;

impl Detector for ManualDump {
    fn pattern(&self) -> Pattern {
        Pattern::ManualDump
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let (why, caveat) = match (&ev.exception, debugger_break(ev)) {
            (None, _) => ("the dump has no exception stream".to_string(), None),
            (Some(_), Some(b)) => {
                let caveat = (!b.seen_instruction).then(|| {
                    Caveat::MissingMemory("the breakpoint's instruction bytes".to_string())
                });
                (
                    format!("its only exception is a debugger breakpoint: {}", b.how),
                    caveat,
                )
            }
            (Some(e), None) => silent!(
                "the exception {:08x} is not a debugger's own breakpoint",
                e.record.code
            ),
        };
        let mut f = Finding::new(
            self.pattern(),
            Strength::Proven,
            format!("dump taken on purpose: {why}"),
        )
        .notes([why])
        .recommend(
            "Look at what the threads wait for (hangs), at memory and handle counts (leaks), or \
             at CPU times (spikes).",
        );
        if let Some(c) = caveat {
            f = f.caveat(c);
        }
        vec![f]
    }
}
