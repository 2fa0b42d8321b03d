//! Thread Age: thread creation times against the process's age at dump time. Threads created
//! long after the process started and shortly before the dump are the news in it: a request
//! being served, a thread created to recover or to report, or churn.

use crate::thread_facts::is_dump_writer;
use crate::{Detector, Evidence, Finding};

pub struct ThreadAge;

/// FILETIME of the Unix epoch, in 100 ns units.
const UNIX_EPOCH_FILETIME: u64 = 116_444_736_000_000_000;
const TICKS_PER_SECOND: u64 = 10_000_000;
/// A process younger than this has no "young" threads to speak of (dump times are in seconds).
const MIN_PROCESS_AGE_S: f64 = 5.0;
/// Threads created in the last fifth of the process's life are young.
const YOUNG_SHARE: f64 = 0.2;

impl Detector for ThreadAge {
    fn pattern(&self) -> &'static str {
        "Thread Age"
    }
    fn category(&self) -> &'static str {
        "Thread"
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let dump_time = ev.target().facts().dump_time as u64;
        let created: Vec<(&crate::ThreadView, u64)> = ev
            .threads
            .iter()
            .filter_map(|t| {
                t.times
                    .as_ref()
                    .map(|x| (t, x.create_time))
                    .filter(|c| c.1 > UNIX_EPOCH_FILETIME)
            })
            .collect();
        if dump_time == 0 || created.is_empty() {
            return Vec::new();
        }
        // Dump time in FILETIME units, at its recorded resolution (whole seconds).
        let dump_ft = dump_time * TICKS_PER_SECOND + UNIX_EPOCH_FILETIME;
        let first_thread = created.iter().map(|c| c.1).min().unwrap_or(0);
        let process_start = ev
            .target()
            .facts()
            .process_create_time
            .map(|s| s as u64 * TICKS_PER_SECOND + UNIX_EPOCH_FILETIME)
            .unwrap_or(first_thread)
            .min(first_thread);
        let age = |ft: u64| dump_ft.saturating_sub(ft) as f64 / TICKS_PER_SECOND as f64;
        let process_age = age(process_start);
        if process_age < MIN_PROCESS_AGE_S {
            return Vec::new();
        }
        let young: Vec<_> = created
            .iter()
            .filter(|(t, c)| !is_dump_writer(t) && age(*c) <= process_age * YOUNG_SHARE)
            .collect();
        if young.is_empty() {
            return Vec::new();
        }
        let mut evidence = vec![format!("process age at dump time: {process_age:.1} s")];
        for (t, c) in &young {
            let proc_ = crate::thread_facts::thread_procedure(ev, t)
                .map(|p| format!(", started in {}", p.name))
                .unwrap_or_default();
            evidence.push(format!(
                "thread {:x} created {:.1} s before the dump, {:.1} s after the process started{proc_}",
                t.id,
                age(*c),
                (c - process_start) as f64 / TICKS_PER_SECOND as f64
            ));
        }
        vec![Finding::new(
            self.pattern(),
            self.category(),
            "medium",
            format!("{} thread(s) were created in the last {:.0}% of the process's {:.0} s life", young.len(), YOUNG_SHARE * 100.0, process_age),
        )
        .threads(young.iter().map(|(t, _)| t.id).collect())
        .evidence(evidence)
        .recommend("Young threads are what changed just before the dump: see what created them and what they do; many of them suggest thread churn.")]
    }
}
