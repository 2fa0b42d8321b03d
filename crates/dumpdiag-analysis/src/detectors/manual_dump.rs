//! Manual Dump: no exception stream, or only the breakpoint a dumping tool injects.

use crate::{Detector, Evidence, Finding, Pattern, Strength};

pub struct ManualDump;

impl Detector for ManualDump {
    fn pattern(&self) -> Pattern {
        Pattern::ManualDump
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let injected_break = ev.exception.as_ref().is_some_and(|e| {
            e.record.code == 0x80000003
                && ev.exception_frames().iter().any(|f| {
                    f.function.as_deref().is_some_and(|n| {
                        n.contains("DbgUiRemoteBreakin") || n.contains("DbgBreakPoint")
                    })
                })
        });
        if ev.exception.is_some() && !injected_break {
            return Vec::new();
        }
        let why = if injected_break {
            "the only exception is the breakpoint a dumping tool injected"
        } else {
            "the dump has no exception stream"
        };
        vec![Finding::new(self.pattern(), Strength::Proven, format!("dump taken on purpose: {why}"))
            .notes(vec![why.to_string()])
            .recommend("Look at what the threads wait for (hangs), at memory and handle counts (leaks), or at CPU times (spikes).")]
    }
}
