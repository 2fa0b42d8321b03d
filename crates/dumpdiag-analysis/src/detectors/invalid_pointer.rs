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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::heap_corruption::HeapCorruption;
    use crate::test_support::Analysed;
    use crate::Confidence;
    use dumpdiag_synth::process::PAGE_NOACCESS as NOACCESS;
    use dumpdiag_synth::{Exception, Func, Module, ModuleId, Process};
    use dumpdiag_target::{Arch, RegionInfo, Target};

    const ACCESS_VIOLATION: u32 = 0xc000_0005;
    const READ: u64 = 0;
    const WRITE: u64 = 1;

    /// A process whose thread 0x100 runs orders!parse_record ← main (`frames` above it when
    /// given), with the application image, ntdll and kernel32.
    struct Orders {
        p: Process,
        app: ModuleId,
        ntdll: ModuleId,
        parse: Func,
        main: Func,
        start: [Func; 2],
    }

    fn orders(arch: Arch) -> Orders {
        let mut p = Process::new(arch);
        let app = p.module(Module::new("C:\\app\\orders.exe"));
        let ntdll = p.module(Module::new("C:\\Windows\\System32\\ntdll.dll"));
        let kernel32 = p.module(Module::new("C:\\Windows\\System32\\kernel32.dll"));
        let parse = p.function(app, "parse_record", 0x80);
        let main = p.function(app, "main", 0x80);
        let start = [
            p.function(kernel32, "BaseThreadInitThunk", 0x40),
            p.function(ntdll, "RtlUserThreadStart", 0x40),
        ];
        Orders {
            p,
            app,
            ntdll,
            parse,
            main,
            start,
        }
    }

    impl Orders {
        /// Thread 0x100 in parse_record faults on `access` at `target`; returns the analysis.
        fn fault(mut self, access: u64, target: u64) -> Analysed {
            let [thunk, start] = self.start;
            self.p.thread(0x100, [self.parse, self.main, thunk, start]);
            let mut e = Exception::new(0x100, ACCESS_VIOLATION);
            e.parameters = vec![access, target];
            self.p.exception(e);
            Analysed::exports_only(self.p)
        }
    }

    /// Somewhere no module, stack, heap or TEB of the synthetic process is.
    fn nowhere(arch: Arch) -> u64 {
        if arch == Arch::Amd64 {
            0x0000_0300_0000_0000
        } else {
            0x0600_0000
        }
    }

    fn free_region(base: u64) -> RegionInfo {
        RegionInfo {
            base,
            allocation_base: 0,
            allocation_protect: 0,
            size: 0x1_0000,
            state: dumpdiag_target::MEM_FREE,
            protect: 0x01,
            kind: 0,
        }
    }

    /// The one finding of Invalid Pointer on `a`, checked for the fields every case shares.
    fn finding(a: &Analysed, target: u64) -> Finding {
        let found = a.detect(&InvalidPointer);
        assert_eq!(found.len(), 1, "{target:#x}: {found:#?}");
        let f = found.into_iter().next().unwrap();
        assert_eq!(f.threads, [0x100]);
        assert!(
            f.evidence()
                .iter()
                .any(|e| e.starts_with("thread 100 frame 00: orders!parse_record")),
            "{:?}",
            f.evidence()
        );
        f
    }

    #[test]
    fn the_memory_map_says_why_the_address_cannot_be_accessed() {
        for arch in [Arch::Amd64, Arch::X86] {
            // Free memory.
            let mut o = orders(arch);
            o.p.region(free_region(nowhere(arch)));
            let target = nowhere(arch) + 0x40;
            let f = finding(&o.fault(READ, target), target);
            assert_eq!(
                f.summary,
                format!("access to {target:#x}, which lies in free memory (never allocated or released)")
            );
            assert_eq!(f.confidence(), Confidence::High);
            // The reserved, uncommitted part of the process heap.
            let o = orders(arch);
            let target = o.p.process_heap() + 0x2_0010;
            let f = finding(&o.fault(READ, target), target);
            assert_eq!(
                f.evidence()[0],
                format!("{target:#x} lies in reserved, uncommitted memory")
            );
            // A stack's guard page (another thread's).
            let mut o = orders(arch);
            let other = o.p.thread(0x200, [o.main]).stack_limit;
            let target = other - 0x800;
            let f = finding(&o.fault(WRITE, target), target);
            assert_eq!(f.evidence()[0], format!("{target:#x} lies in a guard page"));
            // PAGE_NOACCESS memory.
            let mut o = orders(arch);
            let target = o.p.alloc(0x1000, NOACCESS) + 0x10;
            let f = finding(&o.fault(READ, target), target);
            assert_eq!(
                f.evidence()[0],
                format!("{target:#x} lies in PAGE_NOACCESS memory")
            );
            // No region at all.
            let o = orders(arch);
            let target = nowhere(arch) + 0x40;
            let f = finding(&o.fault(READ, target), target);
            assert_eq!(
                f.evidence()[0],
                format!("{target:#x} lies in no region of the address space")
            );
        }
    }

    #[test]
    fn fill_patterns_and_text_say_where_the_pointer_came_from() {
        // x86: the addresses lie in no region; x64: made of 8 such bytes they are not
        // canonical.
        for (arch, target, why, what) in [
            (
                Arch::X86,
                0xfeee_fef6,
                "lies in no region of the address space",
                "0xfeeefeee is HeapFree's fill of freed blocks (debug heap): a use after free",
            ),
            (
                Arch::X86,
                0x4141_4141,
                "lies in no region of the address space",
                "0x41414141 is ASCII text ('AAAA'): a string overwrote the pointer",
            ),
            (
                Arch::Amd64,
                0xfeee_feee_feee_fefe,
                "is not a canonical user-mode address",
                "0xfeeefeeefeeefeee is HeapFree's fill of freed blocks (debug heap): a use after \
                 free",
            ),
            (
                Arch::Amd64,
                0x4141_4141_4141_4141,
                "is not a canonical user-mode address",
                "0x4141414141414141 is ASCII text ('AAAAAAAA'): a string overwrote the pointer",
            ),
        ] {
            let f = finding(&orders(arch).fault(READ, target), target);
            assert_eq!(
                f.summary,
                format!("access to {target:#x}, which {why}: {what}"),
                "{arch:?}"
            );
            let offset = target & 0xff;
            let plus = match offset {
                0xf6 => " (plus offset 0x8)",
                0xfe => " (plus offset 0x10)",
                _ => "",
            };
            assert_eq!(f.evidence()[1], format!("{what}{plus}"), "{arch:?}");
        }
    }

    #[test]
    fn without_a_memory_map_an_address_outside_everything_the_dump_holds_is_invalid() {
        for arch in [Arch::Amd64, Arch::X86] {
            let mut o = orders(arch);
            o.p.no_memory_info();
            let target = nowhere(arch) + 0x40;
            let a = o.fault(READ, target);
            assert!(a.target().regions().is_empty());
            let f = finding(&a, target);
            assert_eq!(
                f.summary,
                format!(
                    "access to {target:#x}, which lies outside every module, thread stack, TEB \
                     and memory range the dump holds"
                )
            );
            // Whether the address was mapped is inferred: one step lower.
            assert_eq!(f.confidence(), Confidence::Medium, "{arch:?}");
            assert!(matches!(f.caveats[..], [Caveat::MissingMemory(_)]));
        }
        // A fill pattern too.
        let mut o = orders(Arch::X86);
        o.p.no_memory_info();
        let f = finding(&o.fault(READ, 0xfeee_fef6), 0xfeee_fef6);
        assert!(f
            .summary
            .ends_with("HeapFree's fill of freed blocks (debug heap): a use after free"));
        assert_eq!(f.confidence(), Confidence::Medium);
    }

    #[test]
    fn null_page_and_accessible_memory_are_not_invalid_pointers() {
        for arch in [Arch::Amd64, Arch::X86] {
            // A NULL pointer plus a field offset: NULL Pointer (Data)'s.
            let a = orders(arch).fault(READ, 0x18);
            assert!(a.detect(&InvalidPointer).is_empty(), "{arch:?}");
            // A write to the image's code: committed and readable, the fault is its protection.
            let o = orders(arch);
            let code = o.app.base + 0x1000;
            let a = o.fault(WRITE, code);
            assert!(a.detect(&InvalidPointer).is_empty(), "{arch:?}");
            // A heap block, with and without a memory map.
            for map in [true, false] {
                let mut o = orders(arch);
                let block = o.p.heap_alloc(o.p.process_heap(), 0x40);
                if !map {
                    o.p.no_memory_info();
                }
                let a = o.fault(READ, block);
                assert!(a.detect(&InvalidPointer).is_empty(), "{arch:?} map {map}");
            }
        }
    }

    #[test]
    fn a_fault_inside_the_heap_manager_is_heap_corruption() {
        // RtlpFreeHeap followed a corrupted link into free memory while freeing a block.
        for arch in [Arch::Amd64, Arch::X86] {
            let mut o = orders(arch);
            o.p.region(free_region(nowhere(arch)));
            let ntdll = o.ntdll;
            let internal = o.p.function(ntdll, "RtlpFreeHeap", 0x80);
            let free = o.p.function(ntdll, "RtlFreeHeap", 0x80);
            let [thunk, start] = o.start;
            o.p.thread(0x100, [internal, free, o.parse, o.main, thunk, start]);
            let mut e = Exception::new(0x100, ACCESS_VIOLATION);
            e.parameters = vec![READ, nowhere(arch) + 0x40];
            o.p.exception(e);
            let a = Analysed::exports_only(o.p);
            assert!(a.detect(&InvalidPointer).is_empty(), "{arch:?}");
            assert_eq!(a.detect(&HeapCorruption).len(), 1, "{arch:?}");
        }
    }
}
