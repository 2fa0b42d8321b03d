//! What each thread waits for, and who must act for the wait to end.
//!
//! The object comes from the wait call's own arguments, read the way the calling convention
//! left them: on x64 the system-call stub moves the first argument to r10 (`mov r10, rcx`) and
//! the kernel's trap frame keeps r10, rdx, r8 and r9, so the dump's context holds arguments 1–4
//! (5 and up on the stack above the home area); on x86 (and WOW64's 32-bit side) stdcall
//! arguments sit on the stack just above the return address into the caller. From them:
//! - `NtWaitForSingleObject(Handle)`, `NtSignalAndWaitForSingleObject(Signal, Wait)`,
//!   `NtWaitForMultipleObjects(Count, Handles, WaitType, …)`: kernel objects, resolved through
//!   the dump's HandleData (type, name, state, and the thread a thread handle or a mutex's
//!   owner names — client ids from the object information, in both bitnesses' layouts);
//! - `NtWaitForAlertByThreadId(Address)` (Windows 8+) and `NtWaitForKeyedEvent(Event, Key)`
//!   (before): the address a critical section waiter sleeps on, validated as an
//!   RTL_CRITICAL_SECTION whose owner is a thread of the process.
//!
//! A wait's blocker is the thread that must act: the owner of a critical section or mutex, the
//! thread a thread handle names. Events and semaphores have no owner: their chains end there,
//! named. Edges from waiting threads to blockers form the wait graph; its cycles are deadlocks.

use std::collections::BTreeMap;

use crate::evidence::{Evidence, ThreadView};
use dumpdiag_os::handles::{decode, ObjectState};
use dumpdiag_os::known::{self, WaitKind};
use dumpdiag_target::{HandleRecord, MemoryExt};

/// MAXIMUM_WAIT_OBJECTS (winnt.h): the most handles one wait takes.
const MAXIMUM_WAIT_OBJECTS: u64 = 64;
/// Most stack words searched for the return address into the wait's caller (x86), and for a
/// critical section's address when the arguments do not hold it.
const MAX_STACK_WORDS: u64 = 2048;
/// WAIT_TYPE (ntdef.h): WaitAll = 0, WaitAny = 1.
const WAIT_ANY: u64 = 1;
/// STILL_ACTIVE: the exit status of a thread or process that has not ended.
const STILL_ACTIVE: u32 = 0x103;

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
        state: Vec<ObjectState>,
    },
}

impl WaitObject {
    /// The object as the reports say it: kind, name, address or handle, and its state.
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
                let mut st = String::new();
                for s in state {
                    match s {
                        ObjectState::Mutant {
                            count, abandoned, ..
                        } if *count <= 0 => {
                            st.push_str(if *abandoned { ", abandoned" } else { ", held" })
                        }
                        ObjectState::MutantOwner { thread_id, .. } => {
                            st.push_str(&format!(" by thread {thread_id:x}"))
                        }
                        ObjectState::Event {
                            signaled: false, ..
                        } => st.push_str(", not signaled"),
                        ObjectState::Semaphore { count: 0, .. } => st.push_str(", count 0"),
                        ObjectState::Thread {
                            exit_status: STILL_ACTIVE,
                            thread_id,
                            ..
                        } => st.push_str(&format!(" of thread {thread_id:x}, still running")),
                        ObjectState::Thread { thread_id, .. } => {
                            st.push_str(&format!(" of thread {thread_id:x}, ended"))
                        }
                        _ => {}
                    }
                }
                format!(
                    "{type_name} {}(handle {handle:#x}{st})",
                    name.as_ref().map(|n| format!("{n} ")).unwrap_or_default()
                )
            }
        }
    }

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
        self.states()
            .any(|s| matches!(s, ObjectState::Mutant { count, .. } if *count <= 0))
    }

    /// A thread or process handle: waiting on one waits for it to end.
    pub fn is_thread_or_process(&self) -> bool {
        matches!(self, WaitObject::Handle { type_name, .. } if type_name == "Thread" || type_name == "Process")
    }

    /// An object nobody owns, whose wait ends only when some thread signals it (an event, a
    /// semaphore, a timer): where chains end.
    pub fn is_signal_object(&self) -> bool {
        matches!(self, WaitObject::Handle { type_name, .. }
            if matches!(type_name.as_str(), "Event" | "Semaphore" | "Timer" | "KeyedEvent"))
    }

    fn states(&self) -> impl Iterator<Item = &ObjectState> {
        match self {
            WaitObject::Handle { state, .. } => state.iter(),
            WaitObject::CriticalSection(_) => [].iter(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Wait {
    pub thread: u32,
    pub object: WaitObject,
    /// The thread that must act for this wait to end, when known.
    pub blocker: Option<u32>,
    /// One of several objects of a wait that ends when any of them is signalled
    /// (WaitForMultipleObjects with bWaitAll FALSE): this object alone does not block.
    pub any_of: bool,
}

impl Wait {
    /// `thread X waits for ...`: the one way a wait is said in every report.
    pub fn describe(&self) -> String {
        let any = if self.any_of {
            " (one of several; any ends the wait)"
        } else {
            ""
        };
        format!(
            "thread {:x} waits for {}{any}",
            self.thread,
            self.object.describe()
        )
    }
}

/// The wait stub a thread sits in: its frame index among the top two (native x86 threads sit in
/// `KiFastSystemCallRet` above the stub) and what it waits for.
fn wait_stub(t: &ThreadView) -> Option<(usize, WaitKind)> {
    t.frames
        .iter()
        .take(2)
        .enumerate()
        .find_map(|(i, f)| Some((i, f.function.as_deref().and_then(known::wait_kind)?)))
}

/// Pointer-sized words of the stack from `from` up (bounded).
fn stack_words(ev: &Evidence, from: u64, p: u64, n: u64) -> Vec<u64> {
    let bytes = ev
        .target()
        .memory()
        .read_bytes(from, (n.min(MAX_STACK_WORDS) * p) as usize);
    bytes
        .chunks_exact(p as usize)
        .map(|c| match *c {
            [a, b, c, d] => u32::from_le_bytes([a, b, c, d]) as u64,
            _ => u64::from_le_bytes(c.try_into().unwrap_or([0; 8])),
        })
        .collect()
}

/// The first `n` arguments of the wait call at frame `stub`, as the calling convention left
/// them (see the module documentation). None when they cannot be read.
fn call_arguments(ev: &Evidence, t: &ThreadView, stub: usize, n: usize) -> Option<Vec<u64>> {
    let ctx = t.context.as_ref()?;
    let sp = ctx.sp();
    if t.ptr() == 8 {
        let mut args: Vec<u64> = ["r10", "rdx", "r8", "r9"]
            .iter()
            .map(|r| ctx.get(r).unwrap_or(0))
            .collect();
        if n > 4 {
            // Arguments 5+ follow the return address and the four home-area slots.
            args.extend(stack_words(ev, sp.saturating_add(0x28), 8, (n - 4) as u64));
        }
        args.truncate(n);
        return Some(args);
    }
    // x86 stdcall: the caller pushed the arguments, then `call` pushed the return address
    // into it; find that slot near the stack pointer, the arguments follow it.
    let caller_return = t.frames.get(stub + 1)?.ip;
    let words = stack_words(ev, sp, 4, 16 + n as u64);
    let slot = words.iter().take(16).position(|&w| w == caller_return)?;
    let args: Vec<u64> = words.iter().skip(slot + 1).take(n).copied().collect();
    (args.len() == n).then_some(args)
}

/// Read a candidate RTL_CRITICAL_SECTION of pointer size `p` (winnt.h: DebugInfo, LockCount,
/// RecursionCount, OwningThread, LockSemaphore, SpinCount) owned by a thread of the process.
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

/// The functions a thread waiting for a critical section passes through.
const CRITICAL_SECTION_WAITS: &[&str] = &[
    "RtlEnterCriticalSection",
    "RtlpEnterCriticalSectionContended",
    "RtlpWaitOnCriticalSection",
    "RtlpWaitForCriticalSection",
];

/// The critical section a waiting thread sleeps on: the address its wait call was given (a
/// field of the section, or the section itself), else the first section-shaped address in its
/// registers or on its stack (a minidump may lack the argument; the section is validated by
/// its owner either way).
fn waited_critical_section(
    ev: &Evidence,
    t: &ThreadView,
    hinted: Option<u64>,
    ids: &[u32],
) -> Option<CriticalSection> {
    let p = t.ptr();
    let regs: Vec<u64> = t
        .context
        .as_ref()
        .map(|c| c.gpr_names().iter().filter_map(|n| c.get(n)).collect())
        .unwrap_or_default();
    let words = t
        .sp()
        .map(|sp| stack_words(ev, sp, p, MAX_STACK_WORDS))
        .unwrap_or_default();
    hinted.into_iter().chain(regs).chain(words).find_map(|v| {
        // The address waited on is the section or one of its first fields.
        (0..=5u64).find_map(|k| {
            v.checked_sub(k * p)
                .and_then(|a| critical_section(ev, a, p, ids))
                .filter(|cs| cs.owner != t.id)
        })
    })
}

fn handle_object(h: &HandleRecord) -> WaitObject {
    WaitObject::Handle {
        handle: h.handle,
        type_name: h.type_name.clone().unwrap_or_default(),
        name: h.object_name.clone(),
        state: h.object_info.iter().map(|(k, b)| decode(*k, b)).collect(),
    }
}

/// The thread of the process that must act for a wait on `h` to end: the thread a thread
/// handle names, the owner of a held mutex.
fn handle_blocker(h: &HandleRecord, ids: &[u32]) -> Option<u32> {
    h.object_info
        .iter()
        .find_map(|(k, b)| match decode(*k, b) {
            ObjectState::Thread {
                thread_id,
                exit_status: STILL_ACTIVE,
                ..
            } => Some(thread_id as u32),
            ObjectState::MutantOwner { thread_id, .. } if thread_id != 0 => Some(thread_id),
            _ => None,
        })
        .filter(|tid| ids.contains(tid))
}

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
        let Some((stub, kind)) = wait_stub(th) else {
            continue;
        };
        let p = th.ptr();
        let handle_waits = |hs: Vec<u64>, any_of: bool| -> Vec<Wait> {
            hs.into_iter()
                .filter_map(|v| handles.get(&v))
                .map(|h| Wait {
                    thread: th.id,
                    object: handle_object(h),
                    blocker: handle_blocker(h, &ids),
                    any_of,
                })
                .collect()
        };
        match kind {
            WaitKind::AlertByThreadId | WaitKind::KeyedEvent
                if th
                    .frames
                    .iter()
                    .any(|f| f.is_one_of(CRITICAL_SECTION_WAITS)) =>
            {
                // NtWaitForAlertByThreadId(Address, …) / NtWaitForKeyedEvent(Event, Key, …).
                let at = if kind == WaitKind::KeyedEvent { 1 } else { 0 };
                let hinted = call_arguments(ev, th, stub, 2).map(|a| a[at]);
                if let Some(cs) = waited_critical_section(ev, th, hinted, &ids) {
                    let owner = cs.owner;
                    out.push(Wait {
                        thread: th.id,
                        object: WaitObject::CriticalSection(cs),
                        blocker: Some(owner),
                        any_of: false,
                    });
                }
            }
            WaitKind::SingleObject => {
                if let Some(a) = call_arguments(ev, th, stub, 1) {
                    out.extend(handle_waits(vec![a[0]], false));
                }
            }
            WaitKind::SignalAndWait => {
                if let Some(a) = call_arguments(ev, th, stub, 2) {
                    out.extend(handle_waits(vec![a[1]], false));
                }
            }
            WaitKind::MultipleObjects => {
                let Some(a) = call_arguments(ev, th, stub, 3) else {
                    continue;
                };
                let (count, array, wait_type) = (a[0], a[1], a[2]);
                // A count the context lost (Wine keeps no r10) is read up to the first value
                // that is no handle of the process.
                let known_count = (1..=MAXIMUM_WAIT_OBJECTS).contains(&count);
                let n = if known_count {
                    count
                } else {
                    MAXIMUM_WAIT_OBJECTS
                };
                let mut hs = Vec::new();
                for i in 0..n {
                    let Some(v) = t.memory().read_ptr(array.wrapping_add(i * p), p) else {
                        break;
                    };
                    if !known_count && !handles.contains_key(&v) {
                        break;
                    }
                    hs.push(v);
                }
                let any_of = known_count && wait_type == WAIT_ANY && hs.len() > 1;
                out.extend(handle_waits(hs, any_of));
            }
            _ => {}
        }
    }
    out
}

/// Cycles in the waits-for graph (each as the threads in order), found once. A wait on one of
/// several objects (any ends it) is no edge: that thread is not stuck on that one.
pub fn cycles(waits: &[Wait]) -> Vec<Vec<u32>> {
    let mut next: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for w in waits.iter().filter(|w| !w.any_of) {
        if let Some(b) = w.blocker {
            next.entry(w.thread).or_default().push(b);
        }
    }
    let mut found: Vec<Vec<u32>> = Vec::new();
    // Depth-first from every thread, bounded by the thread count: a path never revisits.
    fn visit(
        next: &BTreeMap<u32, Vec<u32>>,
        path: &mut Vec<u32>,
        found: &mut Vec<Vec<u32>>,
        budget: &mut usize,
    ) {
        if *budget == 0 {
            return;
        }
        *budget -= 1;
        let cur = *path.last().unwrap_or(&0);
        for &n in next.get(&cur).map(Vec::as_slice).unwrap_or(&[]) {
            if let Some(pos) = path.iter().position(|&p| p == n) {
                let mut cyc = path[pos..].to_vec();
                let min = cyc
                    .iter()
                    .enumerate()
                    .min_by_key(|x| x.1)
                    .map(|x| x.0)
                    .unwrap_or(0);
                cyc.rotate_left(min);
                if !found.contains(&cyc) {
                    found.push(cyc);
                }
            } else {
                path.push(n);
                visit(next, path, found, budget);
                path.pop();
            }
        }
    }
    // A hostile dump can make the graph large: the search as a whole is bounded.
    let mut budget = 100_000;
    for &start in next.keys() {
        visit(&next, &mut vec![start], &mut found, &mut budget);
    }
    found
}

/// A wait chain: waits followed from a thread to where they end.
#[derive(Debug, Clone)]
pub struct Chain<'a> {
    pub links: Vec<&'a Wait>,
    pub end: ChainEnd,
}

/// Where a chain ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainEnd {
    /// At a thread that waits for nothing this dump resolves (running, sleeping, in I/O).
    Thread(u32),
    /// At an object nobody owns (an event, a semaphore): some thread must signal it.
    Signal,
    /// At an owner the dump does not name (a held mutex without owner information, another
    /// process).
    Unknown,
    /// It runs into a cycle: the deadlock detectors report that.
    Cycle,
}

impl ChainEnd {
    pub fn describe(&self, last: &Wait) -> String {
        match self {
            ChainEnd::Thread(t) => format!("thread {t:x} waits on no object the dump resolves"),
            ChainEnd::Signal => format!(
                "nobody owns {}: the thread that should signal it decides",
                last.object.describe()
            ),
            ChainEnd::Unknown => "the owner is not recorded in the dump".to_string(),
            ChainEnd::Cycle => "a cycle (deadlock)".to_string(),
        }
    }
}

/// The longest chain starting at each waiting thread that nobody else waits on, followed through
/// single (not any-of) waits.
pub fn chains(all: &[Wait]) -> Vec<Chain<'_>> {
    let blocked_by = |t: u32| all.iter().any(|w| w.blocker == Some(t) && !w.any_of);
    let first_wait = |t: u32| all.iter().find(|w| w.thread == t && !w.any_of);
    let mut out = Vec::new();
    let mut heads: Vec<u32> = all
        .iter()
        .map(|w| w.thread)
        .filter(|&t| !blocked_by(t))
        .collect();
    heads.dedup();
    for head in heads {
        let mut links = Vec::new();
        let mut seen = vec![head];
        let mut cur = first_wait(head);
        let end = loop {
            let Some(w) = cur else {
                break ChainEnd::Unknown;
            };
            links.push(w);
            let Some(b) = w.blocker else {
                break if w.object.is_signal_object() {
                    ChainEnd::Signal
                } else {
                    ChainEnd::Unknown
                };
            };
            if seen.contains(&b) || seen.len() > all.len() {
                break ChainEnd::Cycle;
            }
            seen.push(b);
            match first_wait(b) {
                Some(next) => cur = Some(next),
                None => break ChainEnd::Thread(b),
            }
        };
        out.push(Chain { links, end });
    }
    out
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
        o.push_str(
            "No locked critical section with waiters found (sections are located from the \
             threads that wait on them).\n",
        );
    }
    for (addr, (cs, waiters)) in &sections {
        let _ = writeln!(o, "-----------------------------------------");
        let _ = writeln!(o, "Critical section   = {addr:#x} ({})", cs.name);
        let _ = writeln!(o, "LOCKED");
        let _ = writeln!(o, "LockCount          = {:#x}", cs.lock_count);
        let _ = writeln!(o, "WaiterWoken        = No");
        let _ = writeln!(o, "OwningThread       = {:#x}", cs.owner);
        let _ = writeln!(o, "RecursionCount     = {:#x}", cs.recursion);
        let w: Vec<String> = waiters.iter().map(|w| format!("{w:#x}")).collect();
        let _ = writeln!(o, "Waiting threads    = {}", w.join(" "));
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
        if next.is_none() && w.object.is_signal_object() && seen.len() == 1 {
            line.push_str(" (nobody owns it: it ends when some thread signals it)");
        }
        let _ = writeln!(o, "{line}");
    }
    o
}
