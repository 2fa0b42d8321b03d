//! Stack Overflow: c00000fd, with the repeating frame cycle and the stack's size.

use super::exception_thread;
use crate::{Detector, Evidence, Finding, Pattern, Strength};
use dumpdiag_os::codes;
use dumpdiag_os::view::ProcessView;
use dumpdiag_target::MemoryExt;

pub struct StackOverflow;

/// Frames above the recursion that may sit on top of it: the stack probe that touched the guard
/// page (`__chkstk`, `_alloca_probe`), the dispatcher and the functions the overflowing frame
/// was calling when its stack ran out.
const MAX_LEAD: usize = 16;
/// The longest repeating cycle looked for (mutual recursion through several functions).
const MAX_CYCLE: usize = 8;
/// Repetitions that make a cycle a recursion rather than a coincidence.
const MIN_REPEATS: usize = 3;

/// The shortest cycle of call sites repeating at least three times, starting within the top
/// frames: (first frame of the cycle, cycle, repetitions).
fn recursion(sites: &[String]) -> Option<(usize, Vec<String>, usize)> {
    for start in 0..MAX_LEAD.min(sites.len()) {
        let rest = &sites[start..];
        for len in 1..=MAX_CYCLE.min(rest.len() / MIN_REPEATS) {
            let cycle = &rest[..len];
            let reps = rest.chunks(len).take_while(|c| *c == cycle).count();
            if reps >= MIN_REPEATS {
                return Some((start, cycle.to_vec(), reps));
            }
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
            Some((start, cycle, reps)) => {
                if start > 0 {
                    evidence.push(format!(
                        "above the recursion: {}",
                        sites[..start].join(" <- ")
                    ));
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sites(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn recursion_is_found_below_a_stack_probe_and_mutual_recursion_too() {
        let s = sites(&[
            "app!__chkstk",
            "app!parse",
            "app!parse",
            "app!parse",
            "app!parse",
        ]);
        assert_eq!(recursion(&s), Some((1, sites(&["app!parse"]), 4)));
        let s = sites(&[
            "ntdll!KiUserExceptionDispatcher",
            "app!a",
            "app!b",
            "app!a",
            "app!b",
            "app!a",
            "app!b",
        ]);
        assert_eq!(recursion(&s), Some((1, sites(&["app!a", "app!b"]), 3)));
    }

    #[test]
    fn a_deep_stack_without_repetition_is_no_recursion() {
        let s = sites(&[
            "app!a", "app!b", "app!c", "app!a", "app!d", "app!e", "app!f",
        ]);
        assert_eq!(recursion(&s), None);
        let twice = sites(&["app!a", "app!a", "app!main"]);
        assert_eq!(recursion(&twice), None);
    }
}
