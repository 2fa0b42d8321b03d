//! Stack Overflow: c00000fd, with the repeating frame cycle and the stack's size.

use super::exception_thread;
use crate::{Detector, Evidence, Finding, Pattern, Strength};
use dumpdiag_os::codes;
use dumpdiag_os::view::ProcessView;
use dumpdiag_target::MemoryExt;

pub struct StackOverflow;

/// The shortest cycle of call sites repeating at the top of the stack: (cycle, repetitions).
fn recursion(sites: &[String]) -> Option<(Vec<String>, usize)> {
    for len in 1..=8.min(sites.len() / 2) {
        let cycle = &sites[..len];
        let reps = sites.chunks(len).take_while(|c| *c == cycle).count();
        if reps >= 3 {
            return Some((cycle.to_vec(), reps));
        }
    }
    None
}

impl Detector for StackOverflow {
    fn pattern(&self) -> Pattern {
        Pattern::StackOverflow
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let Some(e) = &ev.exception else {
            return Vec::new();
        };
        if e.record.code != codes::STACK_OVERFLOW {
            return Vec::new();
        }
        let sites: Vec<String> = ev
            .exception_frames()
            .iter()
            .map(|f| f.call_site())
            .collect();
        let mut evidence = Vec::new();
        let summary = match recursion(&sites) {
            Some((cycle, reps)) => {
                evidence.push(format!(
                    "recursion: {} repeats {reps}+ times at the top of the stack",
                    cycle.join(" -> ")
                ));
                format!("stack exhausted by recursion in {}", cycle.join(" -> "))
            }
            None => "stack exhausted".to_string(),
        };
        // Reserved and committed size from the TEB (DeallocationStack..StackBase, StackLimit).
        // In the faulting thread's own view: a WOW64 thread overflows its 32-bit stack.
        let view = ev
            .exception_walk
            .as_ref()
            .map(|w| w.view)
            .unwrap_or_default();
        let s = ProcessView::new(ev.target(), view);
        if let Some(i) = ev.target().thread_index_by_id(e.thread_id) {
            if let Some(teb) = s.teb_of(i) {
                let l = s.layout();
                let mem = ev.target().memory();
                let base = mem
                    .read_ptr(teb.wrapping_add(l.teb_stack_base), l.ptr)
                    .unwrap_or(0);
                let limit = mem
                    .read_ptr(teb.wrapping_add(l.teb_stack_limit), l.ptr)
                    .unwrap_or(0);
                let dealloc = mem
                    .read_ptr(teb.wrapping_add(l.teb_deallocation_stack), l.ptr)
                    .unwrap_or(0);
                if base > limit && limit >= dealloc {
                    evidence.push(format!(
                        "stack reserved {:#x} bytes, committed {:#x} bytes",
                        base - dealloc,
                        base - limit
                    ));
                }
            }
        }
        vec![Finding::new(self.pattern(), Strength::Proven, summary)
            .threads(exception_thread(ev))
            .notes(evidence)
            .recommend(
                "Bound the recursion (or make it iterative); a larger stack only moves the limit.",
            )]
    }
}
