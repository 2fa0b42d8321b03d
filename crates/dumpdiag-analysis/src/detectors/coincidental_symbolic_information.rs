//! Coincidental Symbolic Information: values on the faulting thread's live stack that look like
//! return addresses — code, right after a call instruction — but that no frame of the walked
//! call chain returns through. A `dps` reader or a scanning walker would take them for frames;
//! `dps` marks them "not in the call chain". Only asked when the chain itself was found from
//! unwind data or frame records, not by scanning: then the difference is trustworthy.

use dumpdiag_os::view::ProcessView;
use dumpdiag_stack::raw::{RawStack, SlotRole};
use dumpdiag_stack::Trust;

use crate::{Detector, Evidence, Fact, Finding, Pattern, Strength};

pub struct CoincidentalSymbolicInformation;

/// Evidence lines kept.
const MAX_SHOWN: usize = 8;

impl Detector for CoincidentalSymbolicInformation {
    fn pattern(&self) -> Pattern {
        Pattern::CoincidentalSymbolicInformation
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let (Some(e), Some(walk)) = (&ev.exception, &ev.exception_walk) else {
            return Vec::new();
        };
        let stack = &walk.stack;
        if stack.frames.len() < 2 || stack.frames.iter().any(|f| f.trust == Trust::Scan) {
            return Vec::new();
        }
        let Some(index) = ev.target().thread_index_by_id(e.thread_id) else {
            return Vec::new();
        };
        let view = ProcessView::new(ev.target(), walk.view);
        let Some(raw) = RawStack::of(&view, ev.symbols, index, stack) else {
            return Vec::new();
        };
        // The live part the chain covers: from the faulting frame to the last frame walked.
        let top = stack.frames.last().map(|f| f.sp).unwrap_or(raw.live_low);
        let found: Vec<(u64, u64)> = raw
            .return_like_values(raw.live_low, top)
            .into_iter()
            .filter(|&(slot, v)| raw.role(slot, v) == Some(SlotRole::NotInCallChain))
            .collect();
        if found.is_empty() {
            return Vec::new();
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
