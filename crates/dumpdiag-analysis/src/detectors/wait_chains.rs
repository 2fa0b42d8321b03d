//! Wait Chain (Critical Sections), Deadlock (Critical Sections), Deadlock (Mixed Objects, User
//! Space), Wait Chain (General) and Blocked Thread (Software), from the waits-for graph.

use crate::waits::{cycles, waits, Wait, WaitObject};
use crate::{Detector, Evidence, Finding};
use dumpdiag_os::handles::ObjectState;

fn line(w: &Wait) -> String {
    format!("thread {:x} waits for {}", w.thread, w.object.describe())
}

fn is_cs(w: &Wait) -> bool {
    matches!(w.object, WaitObject::CriticalSection(_))
}

fn cycle_waits<'a>(all: &'a [Wait], cycle: &[u32]) -> Vec<&'a Wait> {
    cycle.iter().filter_map(|t| all.iter().find(|w| w.thread == *t && w.blocker.is_some())).collect()
}

pub struct DeadlockCriticalSections;

impl Detector for DeadlockCriticalSections {
    fn pattern(&self) -> &'static str {
        "Deadlock (Critical Sections)"
    }
    fn category(&self) -> &'static str {
        "Deadlock and Livelock"
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let all = waits(ev);
        cycles(&all)
            .into_iter()
            .filter(|c| cycle_waits(&all, c).iter().all(|w| is_cs(w)))
            .map(|c| {
                let ws = cycle_waits(&all, &c);
                let names: Vec<String> =
                    ws.iter().filter_map(|w| if let WaitObject::CriticalSection(cs) = &w.object { Some(cs.name.clone()) } else { None }).collect();
                Finding::new(
                    self.pattern(),
                    self.category(),
                    "high",
                    format!(
                        "threads {} wait for each other's critical sections {}",
                        c.iter().map(|t| format!("{t:x}")).collect::<Vec<_>>().join(", "),
                        names.join(", ")
                    ),
                )
                .threads(c.clone())
                .evidence(ws.iter().map(|w| line(w)).collect())
                .recommend("Take the locks in one global order everywhere (or hold one at a time); !cs -l and ~*k show the owners and where they wait.")
            })
            .collect()
    }
}

pub struct DeadlockMixed;

impl Detector for DeadlockMixed {
    fn pattern(&self) -> &'static str {
        "Deadlock (Mixed Objects, User Space)"
    }
    fn category(&self) -> &'static str {
        "Deadlock and Livelock"
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let all = waits(ev);
        cycles(&all)
            .into_iter()
            .filter(|c| {
                let ws = cycle_waits(&all, c);
                ws.iter().any(|w| is_cs(w)) != ws.iter().all(|w| is_cs(w)) || ws.iter().all(|w| !is_cs(w))
            })
            .map(|c| {
                let ws = cycle_waits(&all, &c);
                Finding::new(
                    self.pattern(),
                    self.category(),
                    "high",
                    format!(
                        "threads {} wait for each other through different kinds of objects",
                        c.iter().map(|t| format!("{t:x}")).collect::<Vec<_>>().join(", ")
                    ),
                )
                .threads(c.clone())
                .evidence(ws.iter().map(|w| line(w)).collect())
                .recommend("Do not wait for a thread (or an object it must signal) while holding a lock that thread needs.")
            })
            .collect()
    }
}

pub struct WaitChainCriticalSections;

impl Detector for WaitChainCriticalSections {
    fn pattern(&self) -> &'static str {
        "Wait Chain (Critical Sections)"
    }
    fn category(&self) -> &'static str {
        "Wait Chain"
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let all = waits(ev);
        let cs: Vec<&Wait> = all.iter().filter(|w| is_cs(w)).collect();
        // A chain: a critical-section wait whose owner itself waits for a critical section.
        let chained: Vec<&&Wait> = cs.iter().filter(|w| cs.iter().any(|o| Some(o.thread) == w.blocker)).collect();
        if chained.is_empty() {
            return Vec::new();
        }
        let mut threads: Vec<u32> = cs.iter().map(|w| w.thread).collect();
        threads.dedup();
        vec![Finding::new(
            self.pattern(),
            self.category(),
            "high",
            format!("{} threads wait on critical sections held by threads that wait themselves", cs.len()),
        )
        .threads(threads)
        .evidence(cs.iter().map(|w| line(w)).collect())
        .recommend("Follow the chain to the last owner (the one not waiting on a critical section): what it does decides the wait of all the others.")]
    }
}

pub struct WaitChainGeneral;

impl Detector for WaitChainGeneral {
    fn pattern(&self) -> &'static str {
        "Wait Chain (General)"
    }
    fn category(&self) -> &'static str {
        "Wait Chain"
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let all = waits(ev);
        let in_cycle: Vec<u32> = cycles(&all).concat();
        let held_mutex = |w: &&Wait| matches!(&w.object, WaitObject::Handle { state: Some(ObjectState::Mutant { count, .. }), .. } if *count <= 0);
        let links: Vec<&Wait> = all.iter().filter(|w| !in_cycle.contains(&w.thread)).filter(held_mutex).collect();
        if links.is_empty() {
            return Vec::new();
        }
        // Show every kernel-object wait of the process: the chain runs through them.
        let kernel: Vec<&Wait> = all.iter().filter(|w| !is_cs(w) && !in_cycle.contains(&w.thread)).collect();
        vec![Finding::new(
            self.pattern(),
            self.category(),
            "medium",
            format!("thread {:x} waits for a held mutex; {} threads wait on kernel objects", links[0].thread, kernel.len()),
        )
        .threads(kernel.iter().map(|w| w.thread).collect())
        .evidence(kernel.iter().map(|w| line(w)).collect())
        .recommend("Find the mutex owner (the thread that acquired it and now waits on something else) and what it waits for.")]
    }
}

pub struct BlockedThread;

impl Detector for BlockedThread {
    fn pattern(&self) -> &'static str {
        "Blocked Thread (Software)"
    }
    fn category(&self) -> &'static str {
        "Wait Chain"
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        // In a crash dump every other thread was stopped by the crash: waits are hang evidence
        // only in dumps taken on purpose.
        if !super::taken_on_purpose(ev) {
            return Vec::new();
        }
        // A wait for the thread that is writing this very dump is not a hang. That thread has
        // MiniDumpWriteDump on its stack, or (Wine's writer records no context for itself) no
        // stack at all.
        let dump_writer = |tid: Option<u32>| {
            ev.threads.iter().any(|t| {
                Some(t.id) == tid
                    && (t.frames.is_empty()
                        || t.frames.iter().any(|f| f.function.as_deref() == Some("MiniDumpWriteDump") || f.module.as_deref() == Some("dbghelp")))
            })
        };
        waits(ev)
            .iter()
            .filter(|w| !dump_writer(w.blocker))
            .filter(|w| match &w.object {
                WaitObject::Handle { state: Some(ObjectState::Mutant { count, .. }), .. } => *count <= 0,
                WaitObject::Handle { type_name, .. } => type_name == "Thread" || type_name == "Process",
                WaitObject::CriticalSection(_) => false,
            })
            .map(|w| {
                Finding::new(self.pattern(), self.category(), "medium", line(w))
                    .threads(vec![w.thread])
                    .evidence(vec![line(w)])
                    .recommend("Check why the object is not released: who holds the mutex, or why the awaited thread does not end.")
            })
            .collect()
    }
}
