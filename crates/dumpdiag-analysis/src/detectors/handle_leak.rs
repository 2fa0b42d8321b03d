//! Handle Leak: a handle table whose composition a working process does not explain — one
//! object type holding most of it, far more of that type than the process's threads use, the
//! most recent handles of that type too. A process's handles follow its structure (each thread
//! keeps a few synchronisation objects, each module and file a few more); a leak adds handles of
//! one kind with every repetition of the leaking code, without bound. One dump shows the
//! composition, not the growth: a second dump taken later confirms it.

use std::collections::BTreeMap;

use crate::{silent, Caveat, Detector, Evidence, Fact, Finding, Pattern, Strength};

pub struct HandleLeak;

/// Handles of one type a thread accounts for, generously (its own thread handle, events for
/// waits and APCs, a few objects of the code it runs).
const PER_THREAD: usize = 16;
/// A handle table of this many entries is ordinary for any process, whatever its make-up.
const ORDINARY: usize = 256;
/// Of the most recently allocated handles (the highest values: Windows hands out the lowest free
/// slot, so a growing table's top holds the newest), the share worth stating.
const RECENT: usize = 64;

impl Detector for HandleLeak {
    fn pattern(&self) -> Pattern {
        Pattern::HandleLeak
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let Some(handles) = ev.target().handles() else {
            silent!("the dump has no HandleData stream");
        };
        let mut by_type: BTreeMap<&str, usize> = BTreeMap::new();
        for h in handles {
            *by_type
                .entry(h.type_name.as_deref().unwrap_or("None"))
                .or_default() += 1;
        }
        let Some((&ty, &n)) = by_type.iter().max_by_key(|e| e.1) else {
            silent!("no handles");
        };
        let total = handles.len();
        let explained = PER_THREAD * ev.threads.len() + ORDINARY;
        // One kind dominates (half of the table, more than all the others together) and there
        // is far more of it than the process's structure accounts for.
        if n * 2 < total || n <= explained {
            silent!("{total} handles; the most common type, {ty} ({n}), does not stand out");
        }
        let of_type: Vec<_> = handles
            .iter()
            .filter(|h| h.type_name.as_deref() == Some(ty))
            .collect();
        let unnamed = of_type.iter().filter(|h| h.object_name.is_none()).count();
        let mut newest: Vec<_> = handles.iter().collect();
        newest.sort_by_key(|h| std::cmp::Reverse(h.handle));
        let recent = newest
            .iter()
            .take(RECENT)
            .filter(|h| h.type_name.as_deref() == Some(ty))
            .count();
        let mut names: BTreeMap<&str, usize> = BTreeMap::new();
        for h in &of_type {
            *names
                .entry(h.object_name.as_deref().unwrap_or("<unnamed>"))
                .or_default() += 1;
        }
        let mut top: Vec<_> = names.into_iter().collect();
        top.sort_by_key(|e| std::cmp::Reverse(e.1));
        let mut facts = vec![
            Fact::Handles {
                type_name: ty.to_string(),
                name: None,
                count: n,
                note: format!(
                    "{n} of {total} handles are {ty} objects ({:.0}%); {} threads account for \
                     about {}",
                    100.0 * n as f64 / total as f64,
                    ev.threads.len(),
                    PER_THREAD * ev.threads.len()
                ),
            },
            Fact::Note(format!("{unnamed} of the {ty} objects have no name")),
            Fact::Note(format!(
                "{recent} of the {} most recent handles (highest values) are {ty} objects",
                RECENT.min(total)
            )),
        ];
        facts.extend(top.iter().take(3).map(|(name, c)| Fact::Handles {
            type_name: ty.to_string(),
            name: (*name != "<unnamed>").then(|| name.to_string()),
            count: *c,
            note: format!("{c} x {ty} {name}"),
        }));
        vec![Finding::new(
            self.pattern(),
            Strength::Proven,
            format!("{total} handles, {n} of them {ty} objects"),
        )
        .caveat(Caveat::SingleDump)
        .facts(facts)
        .recommend(
            "Find the code that creates these objects without closing them (the newest handles \
             are the leaked kind: !handle 0 f shows them); a second dump later shows the count \
             still growing, and !htrace on a live process records where each was opened.",
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::Analysed;
    use dumpdiag_synth::{Handle, Module, Process};
    use dumpdiag_target::Arch;

    /// A process of `threads` sleeping threads with `files` file handles, `events` events and
    /// `leaked` semaphores opened after them.
    fn process(threads: u32, files: usize, events: usize, leaked: usize) -> Process {
        let mut p = Process::new(Arch::Amd64);
        let app = p.module(Module::new("C:\\app\\server.exe"));
        let work = p.function(app, "serve", 0x80);
        for i in 0..threads {
            p.thread(0x100 + 4 * i, [work]);
        }
        for i in 0..files {
            p.handle(Handle::file(&format!(
                "\\Device\\HarddiskVolume3\\data\\{i}.log"
            )));
        }
        for _ in 0..events {
            p.handle(Handle::event(false, false));
        }
        for _ in 0..leaked {
            p.handle(Handle::semaphore(0, 1));
        }
        p
    }

    #[test]
    fn one_type_that_dominates_past_what_the_threads_explain_is_a_leak() {
        let a = Analysed::exports_only(process(4, 30, 20, 3000));
        let f = a.detect(&HandleLeak);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].summary, "3050 handles, 3000 of them Semaphore objects");
        assert!(f[0]
            .evidence()
            .iter()
            .any(|e| e == "3000 of the Semaphore objects have no name"));
        assert!(f[0]
            .evidence()
            .iter()
            .any(|e| e.starts_with("64 of the 64 most recent")));
        // Proven composition, but one dump shows no growth.
        assert_eq!(f[0].confidence(), crate::Confidence::Medium);
    }

    #[test]
    fn an_ordinary_table_stays_silent() {
        // A busy process: many handles, no type holding half of them.
        let a = Analysed::exports_only(process(10, 600, 500, 400));
        assert!(a.detect(&HandleLeak).is_empty());
        // Events dominate, but 80 threads account for them.
        let a = Analysed::exports_only(process(80, 50, 700, 0));
        assert!(a.detect(&HandleLeak).is_empty());
    }
}
