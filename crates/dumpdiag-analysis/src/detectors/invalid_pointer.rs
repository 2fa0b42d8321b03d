//! Invalid Pointer: an access violation at an address that is not NULL-ish and not backed by
//! committed, accessible memory: free, reserved, guard or no-access pages, or a non-canonical
//! address. With the dump's memory map (MemoryInfoList) that is read directly; without one, an
//! address outside every module, thread stack, TEB and memory range the dump captured is
//! reported with that limit said. Fill patterns of the heaps and the CRT, and ASCII text, are
//! named: they say where the pointer came from.

use super::{access_violation, exception_thread, top_frames, NULL_PAGE_END};
use crate::{silent, Caveat, Detector, Evidence, Fact, Finding, Pattern, Strength};
use dumpdiag_os::known;
use dumpdiag_target::{MEM_COMMIT, MEM_FREE};

pub struct InvalidPointer;

/// Canonical x64 user addresses stop at 0x00007fff`ffffffff (the upper half is the kernel's,
/// and addresses between the halves are not canonical: the CPU faults on them).
const USER_LIMIT: u64 = 0x0000_8000_0000_0000;
/// PAGE_GUARD and PAGE_NOACCESS (winnt.h).
const PAGE_GUARD: u32 = 0x100;
const PAGE_NOACCESS: u32 = 0x01;

/// Why the address cannot be accessed, from the memory map; None when it is mapped and
/// accessible (the fault was about something else, e.g. a write to read-only memory).
fn from_memory_map(ev: &Evidence, target: u64) -> Option<String> {
    match ev.target().region_at(target) {
        None => Some("lies in no region of the address space".into()),
        Some(r) if r.state == MEM_FREE => {
            Some("lies in free memory (never allocated or released)".into())
        }
        Some(r) if r.state != MEM_COMMIT => Some("lies in reserved, uncommitted memory".into()),
        Some(r) if r.protect & PAGE_GUARD != 0 => Some("lies in a guard page".into()),
        Some(r) if r.protect & 0xff == PAGE_NOACCESS => Some("lies in PAGE_NOACCESS memory".into()),
        _ => None,
    }
}

/// Without a memory map: is the address outside everything the dump knows to be mapped?
fn outside_known_memory(ev: &Evidence, target: u64) -> bool {
    let t = ev.target();
    let in_module = t.module_at(target).is_some();
    let in_stack = t.threads().iter().any(|th| {
        target >= th.stack_start && target < th.stack_start.saturating_add(th.stack_size)
    }) || ev.threads.iter().any(|th| {
        th.stack
            .as_ref()
            .and_then(|s| s.frames.first())
            .is_some_and(|f| {
                let b = dumpdiag_stack::thread_bounds(&ev.process, th.index, f.sp);
                b.contains(target)
            })
    });
    let in_teb = t
        .threads()
        .iter()
        .any(|th| target >= th.teb && target < th.teb.saturating_add(0x2000));
    let captured = t
        .captured_ranges()
        .iter()
        .any(|&(b, s)| target >= b && target < b.saturating_add(s));
    !(in_module || in_stack || in_teb || captured)
}

impl Detector for InvalidPointer {
    fn pattern(&self) -> Pattern {
        Pattern::InvalidPointer
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let Some((_, target)) = access_violation(ev) else {
            silent!("no access violation");
        };
        if target < NULL_PAGE_END {
            silent!("the access is in the NULL page: NULL Pointer's");
        }
        if super::heap_manager_frame(ev).is_some() {
            silent!("the fault is inside the heap manager: Dynamic Memory Corruption's");
        }
        let ptr = ev.faulting_thread().map(|t| t.ptr()).unwrap_or(8);
        let pattern = known::pointer_pattern(target, ptr);
        let has_map = !ev.target().regions().is_empty();
        let (why, caveat) = if ptr == 8 && target >= USER_LIMIT {
            ("is not a canonical user-mode address".to_string(), None)
        } else if has_map {
            match from_memory_map(ev, target) {
                Some(why) => (why, None),
                None => silent!("{target:#x} is committed, accessible memory"),
            }
        } else if outside_known_memory(ev, target) || pattern.is_some() {
            (
                "lies outside every module, thread stack, TEB and memory range the dump holds"
                    .to_string(),
                Some(Caveat::MissingMemory(
                    "a memory map (MemoryInfoList): whether the address was mapped".to_string(),
                )),
            )
        } else {
            silent!("{target:#x} lies in memory the dump holds, and it has no memory map");
        };
        let mut facts = vec![Fact::Memory {
            address: target,
            note: format!("{target:#x} {why}"),
        }];
        if let Some((what, offset)) = &pattern {
            let plus = if *offset > 0 {
                format!(" (plus offset {offset:#x})")
            } else {
                String::new()
            };
            facts.push(Fact::Memory {
                address: target,
                note: format!("{what}{plus}"),
            });
        }
        facts.extend(top_frames(ev, 3));
        let summary = match &pattern {
            Some((what, _)) => format!("access to {target:#x}, which {why}: {what}"),
            None => format!("access to {target:#x}, which {why}"),
        };
        let mut f = Finding::new(self.pattern(), Strength::Proven, summary)
            .threads(exception_thread(ev))
            .facts(facts)
            .recommend(
                "The pointer is stale or corrupted: look for a use after free or an overwritten \
                 pointer field (!address on the target shows its region; a fill pattern says \
                 which memory it was read from).",
            );
        if let Some(c) = caveat {
            f = f.caveat(c);
        }
        vec![f]
    }
}
