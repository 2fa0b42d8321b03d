//! What each thread waits for, and who holds it: critical sections (found from the waiting
//! thread's registers and stack, validated as RTL_CRITICAL_SECTION structures with a live owner)
//! and kernel objects resolved through HandleData (type, name, state, thread ids). The wait
//! graph's edges lead from a waiting thread to the thread that must act; cycles are deadlocks.

use std::collections::BTreeMap;

use crate::evidence::{Evidence, ThreadView};
use dumpdiag_os::handles::{decode, ObjectState, THREAD_INFO_1};
use dumpdiag_os::known;
use dumpdiag_target::{HandleRecord, MemoryExt};

/// Most stack words searched per waiting thread.
const MAX_STACK_WORDS: u64 = 2048;

#[derive(Debug, Clone, PartialEq)]
pub struct CriticalSection {
    pub address: u64,
    pub owner: u32,
    pub recursion: i32,
    pub lock_count: i32,
    /// `module!symbol` when the address has a name.
    pub name: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WaitObject {
    CriticalSection(CriticalSection),
    Handle {
        handle: u64,
        type_name: String,
        name: Option<String>,
        state: Option<ObjectState>,
    },
}

impl WaitObject {
    pub fn describe(&self) -> String {
        match self {
            WaitObject::CriticalSection(cs) => format!(
                "critical section {} ({:#x}) owned by thread {:x}",
                cs.name, cs.address, cs.owner
            ),
            WaitObject::Handle {
                handle,
                type_name,
                name,
                state,
            } => {
                let st = match state {
                    Some(ObjectState::Mutant { count, .. }) if *count <= 0 => ", held",
                    Some(ObjectState::Event {
                        signaled: false, ..
                    }) => ", not signaled",
                    Some(ObjectState::Thread {
                        exit_status: 0x103, ..
                    }) => ", still running",
                    _ => "",
                };
                format!(
                    "{type_name} {}(handle {handle:#x}{st})",
                    name.as_ref().map(|n| format!("{n} ")).unwrap_or_default()
                )
            }
        }
    }
}

impl WaitObject {
    /// The object's kind as a word: `critical section`, or the handle's object type.
    pub fn kind_name(&self) -> String {
        match self {
            WaitObject::CriticalSection(_) => "critical section".into(),
            WaitObject::Handle { type_name, .. } => type_name.clone(),
        }
    }

    /// The critical section's address, or the handle value.
    pub fn address(&self) -> Option<u64> {
        match self {
            WaitObject::CriticalSection(cs) => Some(cs.address),
            WaitObject::Handle { handle, .. } => Some(*handle),
        }
    }

    /// The object's name: the critical section's symbol, the kernel object's name.
    pub fn name(&self) -> Option<String> {
        match self {
            WaitObject::CriticalSection(cs) => Some(cs.name.clone()),
            WaitObject::Handle { name, .. } => name.clone(),
        }
    }

    pub fn is_critical_section(&self) -> bool {
        matches!(self, WaitObject::CriticalSection(_))
    }

    /// A mutex some thread holds (count ≤ 0).
    pub fn is_held_mutex(&self) -> bool {
        matches!(self, WaitObject::Handle { state: Some(ObjectState::Mutant { count, .. }), .. } if *count <= 0)
    }
}

#[derive(Debug, Clone)]
pub struct Wait {
    pub thread: u32,
    pub object: WaitObject,
    /// The thread that must act for this wait to end, when known.
    pub blocker: Option<u32>,
}

impl Wait {
    /// `thread X waits for ...`: the one way a wait is said in every report.
    pub fn describe(&self) -> String {
        format!(
            "thread {:x} waits for {}",
            self.thread,
            self.object.describe()
        )
    }
}

/// Is the thread's top frame a kernel wait stub?
fn is_waiting(t: &ThreadView) -> bool {
    t.frames
        .first()
        .and_then(|f| f.function.as_deref())
        .and_then(known::wait_kind)
        .is_some()
}

fn in_frames(t: &ThreadView, names: &[&str]) -> bool {
    t.frames.iter().any(|f| f.is_one_of(names))
}

/// Read a candidate RTL_CRITICAL_SECTION of pointer size `p` (winnt.h: DebugInfo, LockCount,
/// RecursionCount, OwningThread, LockSemaphore, SpinCount).
fn critical_section(
    ev: &Evidence,
    addr: u64,
    p: u64,
    thread_ids: &[u32],
) -> Option<CriticalSection> {
    let mem = ev.target().memory();
    let debug = mem.read_ptr(addr, p)?;
    let lock_count = mem.read_u32(addr.checked_add(p)?)? as i32;
    let recursion = mem.read_u32(addr.checked_add(p + 4)?)? as i32;
    let owner = mem.read_ptr(addr.checked_add(p + 8)?, p)?;
    if owner == 0
        || owner > u32::MAX as u64
        || !thread_ids.contains(&(owner as u32))
        || !(1..=1000).contains(&recursion)
    {
        return None;
    }
    // DebugInfo is absent (0 / -1) or a readable structure.
    if debug != 0 && debug != u64::MAX >> (64 - 8 * p) && mem.read_ptr(debug, p).is_none() {
        return None;
    }
    Some(CriticalSection {
        address: addr,
        owner: owner as u32,
        recursion,
        lock_count,
        name: ev.describe(addr),
    })
}

/// Stack words of a thread from its stack pointer up (bounded).
fn stack_words(ev: &Evidence, t: &ThreadView) -> Vec<u64> {
    let Some(sp) = t.sp() else { return Vec::new() };
    let p = t.ptr();
    let bytes = ev
        .target()
        .memory()
        .read_bytes(sp, (MAX_STACK_WORDS * p) as usize);
    bytes
        .chunks_exact(p as usize)
        .map(|c| match *c {
            [a, b, c, d] => u32::from_le_bytes([a, b, c, d]) as u64,
            _ => u64::from_le_bytes(c.try_into().unwrap_or([0; 8])),
        })
        .collect()
}

fn registers(t: &ThreadView) -> Vec<u64> {
    let Some(c) = &t.context else {
        return Vec::new();
    };
    c.gpr_names().iter().filter_map(|n| c.get(n)).collect()
}

fn handle_wait(h: &HandleRecord) -> WaitObject {
    let state = h.object_info.first().map(|(k, b)| decode(*k, b));
    WaitObject::Handle {
        handle: h.handle,
        type_name: h.type_name.clone().unwrap_or_default(),
        name: h.object_name.clone(),
        state,
    }
}

const WAITABLE: &[&str] = &[
    "Event",
    "Mutant",
    "Semaphore",
    "Thread",
    "Process",
    "Timer",
    "IoCompletion",
];

/// The functions a thread waiting for a critical section is in.
const CRITICAL_SECTION_WAITS: &[&str] = &[
    "RtlEnterCriticalSection",
    "RtlpEnterCriticalSectionContended",
    "RtlpWaitOnCriticalSection",
    "RtlpWaitForCriticalSection",
];

/// Every thread's wait, where it can be resolved.
pub fn waits(ev: &Evidence) -> Vec<Wait> {
    let t = ev.target();
    let ids: Vec<u32> = t.threads().iter().map(|x| x.id).collect();
    let handles: BTreeMap<u64, &HandleRecord> = t
        .handles()
        .unwrap_or(&[])
        .iter()
        .map(|h| (h.handle, h))
        .collect();
    let mut out = Vec::new();
    for th in &ev.threads {
        if !is_waiting(th) {
            continue;
        }
        let p = th.ptr();
        let regs = registers(th);
        let words = stack_words(ev, th);
        if in_frames(th, CRITICAL_SECTION_WAITS) {
            // The section's address (or a field of it) is in a register or on the stack.
            let found = regs.iter().chain(words.iter()).find_map(|&v| {
                (0..=5u64).find_map(|k| {
                    v.checked_sub(k * p)
                        .and_then(|a| critical_section(ev, a, p, &ids))
                        .filter(|cs| cs.owner != th.id)
                })
            });
            if let Some(cs) = found {
                let owner = cs.owner;
                out.push(Wait {
                    thread: th.id,
                    object: WaitObject::CriticalSection(cs),
                    blocker: Some(owner),
                });
            }
            continue;
        }
        // Kernel waits: the handle array of NtWaitForMultipleObjects (second argument), else the
        // first waitable handle value on the stack.
        let mut found: Vec<&HandleRecord> = Vec::new();
        let top = th
            .frames
            .first()
            .and_then(|f| f.function.as_deref())
            .and_then(known::wait_kind);
        if top == Some(known::WaitKind::MultipleObjects) {
            if let Some(c) = &th.context {
                let array = c.get(if p == 8 { "rdx" } else { "edx" }).unwrap_or(0);
                for i in 0..64u64 {
                    let slot = array.wrapping_add(i * p);
                    match t.memory().read_ptr(slot, p).and_then(|v| handles.get(&v)) {
                        Some(h)
                            if h.type_name
                                .as_deref()
                                .is_some_and(|n| WAITABLE.contains(&n)) =>
                        {
                            found.push(h)
                        }
                        _ => break,
                    }
                }
            }
        }
        if found.is_empty() {
            if let Some(h) = words.iter().find_map(|v| {
                handles.get(v).filter(|h| {
                    h.type_name
                        .as_deref()
                        .is_some_and(|n| WAITABLE.contains(&n))
                })
            }) {
                found.push(h);
            }
        }
        for h in found {
            let blocker = h
                .object_info
                .iter()
                .find(|(k, _)| *k == THREAD_INFO_1)
                .and_then(|(k, b)| match decode(*k, b) {
                    ObjectState::Thread { thread_id, .. } => Some(thread_id as u32),
                    _ => None,
                });
            out.push(Wait {
                thread: th.id,
                object: handle_wait(h),
                blocker,
            });
        }
    }
    out
}

/// Cycles in the waits-for graph (each as the threads in order), found once.
pub fn cycles(waits: &[Wait]) -> Vec<Vec<u32>> {
    let next: BTreeMap<u32, u32> = waits
        .iter()
        .filter_map(|w| Some((w.thread, w.blocker?)))
        .collect();
    let mut seen_cycles: Vec<Vec<u32>> = Vec::new();
    for &start in next.keys() {
        let mut path = vec![start];
        let mut cur = start;
        while let Some(&n) = next.get(&cur) {
            if let Some(pos) = path.iter().position(|&p| p == n) {
                let mut cyc = path[pos..].to_vec();
                let min = cyc
                    .iter()
                    .enumerate()
                    .min_by_key(|x| x.1)
                    .map(|x| x.0)
                    .unwrap_or(0);
                cyc.rotate_left(min);
                if !seen_cycles.contains(&cyc) {
                    seen_cycles.push(cyc);
                }
                break;
            }
            if path.len() > 64 {
                break;
            }
            path.push(n);
            cur = n;
        }
    }
    seen_cycles
}

/// `!cs -l` / `!locks`: the locked critical sections the waits lead to, with owners and waiters.
pub fn locks_text(ev: &Evidence) -> String {
    use std::fmt::Write;
    let all = ev.waits();
    let mut sections: BTreeMap<u64, (&CriticalSection, Vec<u32>)> = BTreeMap::new();
    for w in all {
        if let WaitObject::CriticalSection(cs) = &w.object {
            sections
                .entry(cs.address)
                .or_insert((cs, Vec::new()))
                .1
                .push(w.thread);
        }
    }
    let mut o = String::new();
    if sections.is_empty() {
        o.push_str("No locked critical section with waiters found (sections are located from the threads that wait on them).\n");
    }
    for (addr, (cs, waiters)) in &sections {
        let _ = writeln!(o, "-----------------------------------------");
        let _ = writeln!(o, "Critical section   = {addr:#x} ({})", cs.name);
        let _ = writeln!(o, "LOCKED");
        let _ = writeln!(o, "LockCount          = {:#x}", cs.lock_count);
        let _ = writeln!(o, "WaiterWoken        = No");
        let _ = writeln!(o, "OwningThread       = {:#x}", cs.owner);
        let _ = writeln!(o, "RecursionCount     = {:#x}", cs.recursion);
        let _ = writeln!(
            o,
            "Waiting threads    = {}",
            waiters
                .iter()
                .map(|w| format!("{w:#x}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    o
}

/// The wait-chain view: each waiting thread, what it waits for, and the chain it leads to.
pub fn wait_chain_text(ev: &Evidence) -> String {
    use std::fmt::Write;
    let all = ev.waits();
    let mut o = String::new();
    if all.is_empty() {
        o.push_str("No thread waits on an object this dump lets us resolve.\n");
        return o;
    }
    for w in all {
        let mut line = format!("thread {:x} -> {}", w.thread, w.object.describe());
        let mut seen = vec![w.thread];
        let mut next = w.blocker;
        while let Some(b) = next {
            if seen.contains(&b) {
                line.push_str(&format!(" -> thread {b:x} (cycle: deadlock)"));
                break;
            }
            seen.push(b);
            match all.iter().find(|x| x.thread == b) {
                Some(x) => {
                    line.push_str(&format!(" -> thread {b:x} -> {}", x.object.describe()));
                    next = x.blocker;
                }
                None => {
                    line.push_str(&format!(" -> thread {b:x} (waits on no object)"));
                    break;
                }
            }
            if seen.len() > 32 {
                break;
            }
        }
        let _ = writeln!(o, "{line}");
    }
    o
}
