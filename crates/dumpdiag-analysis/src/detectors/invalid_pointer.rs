//! Invalid Pointer: an access violation at an address that is not NULL-ish and not backed by
//! committed, accessible memory (free, reserved or guard pages, or a non-canonical address).

use super::{access_violation, exception_thread, top_frames, NULL_PAGE_END};
use crate::{silent, Detector, Evidence, Fact, Finding, Pattern, Strength};
use dumpdiag_target::MEM_COMMIT;

pub struct InvalidPointer;

/// Canonical x64 user addresses stop at 0x00007fff`ffffffff.
const USER_LIMIT: u64 = 0x0000_8000_0000_0000;

impl Detector for InvalidPointer {
    fn pattern(&self) -> Pattern {
        Pattern::InvalidPointer
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let Some((_, target)) = access_violation(ev) else {
            return Vec::new();
        };
        if target < NULL_PAGE_END {
            silent!("the access is in the NULL page: NULL Pointer's");
        }
        if super::heap_manager_frame(ev).is_some() {
            silent!("the fault is inside the heap manager: Dynamic Memory Corruption's");
        }
        let t = ev.target();
        let why = if target >= USER_LIMIT {
            Some("is not a canonical user-mode address".to_string())
        } else if t.regions().is_empty() {
            None
        } else {
            match t.region_at(target) {
                None => Some("lies in no region of the address space".into()),
                Some(r) if r.state != MEM_COMMIT => Some(format!(
                    "lies in {} memory",
                    if r.state == dumpdiag_target::MEM_FREE {
                        "free"
                    } else {
                        "reserved"
                    }
                )),
                Some(r) if r.protect & 0x100 != 0 => Some("lies in a guard page".into()),
                Some(r) if r.protect & 0xff == 0x01 => Some("lies in PAGE_NOACCESS memory".into()),
                _ => None,
            }
        };
        let Some(why) = why else { return Vec::new() };
        let mut facts = vec![Fact::Memory {
            address: target,
            note: format!("{target:#x} {why}"),
        }];
        facts.extend(top_frames(ev, 3));
        vec![Finding::new(self.pattern(), Strength::Proven, format!("access to {target:#x}, which {why}"))
            .threads(exception_thread(ev))
            .facts(facts)

            .recommend(
                "The pointer is stale or corrupted: look for a use after free or an overwritten pointer field (!address on the target shows its region).",
            )]
    }
}
