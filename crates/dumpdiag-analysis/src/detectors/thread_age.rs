//! Thread Age: thread creation times against the process's age at dump time. Threads created
//! long after the process started and shortly before the dump are the news in it: a request
//! being served, a thread created to recover or to report, or churn.
//!
//! A thread is young when it appeared after a quiet period longer than its own life: the gap
//! between its creation and the creation of the thread before it is larger than the time from
//! its creation to the dump. That holds whatever the process's age and however long the dump
//! tool took to attach (a loaded machine delays the dump, not the thread creations before it),
//! and steady thread-pool churn (many small gaps) does not trip it.

use crate::thread_facts::{is_dump_writer, thread_procedure};
use crate::{Detector, Evidence, Fact, Finding, Pattern, Strength, ThreadView};

pub struct ThreadAge;

/// FILETIME of the Unix epoch, in 100 ns units.
const UNIX_EPOCH_FILETIME: u64 = 116_444_736_000_000_000;
const TICKS_PER_SECOND: u64 = 10_000_000;
/// The dump's own time is recorded in whole seconds (MINIDUMP_HEADER.TimeDateStamp): a quiet
/// period shorter than a few of those cannot be told from rounding.
const MIN_QUIET_PERIOD_S: f64 = 2.0;

impl Detector for ThreadAge {
    fn pattern(&self) -> Pattern {
        Pattern::ThreadAge
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let dump_time = ev.target().facts().dump_time as u64;
        let mut created: Vec<(&ThreadView, u64)> = ev
            .threads
            .iter()
            .filter_map(|t| t.times.as_ref().map(|x| (t, x.create_time)))
            .filter(|c| c.1 > UNIX_EPOCH_FILETIME)
            .collect();
        if dump_time == 0 || created.len() < 2 {
            return Vec::new();
        }
        created.sort_by_key(|c| c.1);
        // The dump time in FILETIME units, rounded up to the end of its second so that no thread
        // looks created after the dump.
        let dump_ft = (dump_time + 1) * TICKS_PER_SECOND + UNIX_EPOCH_FILETIME;
        let process_start = ev
            .target()
            .facts()
            .process_create_time
            .map(|s| s as u64 * TICKS_PER_SECOND + UNIX_EPOCH_FILETIME)
            .unwrap_or(created[0].1)
            .min(created[0].1);
        let seconds = |ticks: u64| ticks as f64 / TICKS_PER_SECOND as f64;
        let process_age = seconds(dump_ft.saturating_sub(process_start));
        let young: Vec<(&ThreadView, u64, f64)> = created
            .windows(2)
            .filter_map(|w| {
                let (t, c) = w[1];
                let quiet = seconds(c.saturating_sub(w[0].1));
                let age = seconds(dump_ft.saturating_sub(c));
                (quiet >= MIN_QUIET_PERIOD_S && quiet > age && !is_dump_writer(t))
                    .then_some((t, c, quiet))
            })
            .collect();
        if young.is_empty() {
            return Vec::new();
        }
        let mut facts = vec![Fact::Note(format!(
            "process age at dump time: about {process_age:.0} s"
        ))];
        for (t, c, quiet) in &young {
            let started = thread_procedure(ev, t)
                .map(|p| format!(", started in {}", p.name))
                .unwrap_or_default();
            facts.push(Fact::Thread {
                id: t.id,
                note: format!(
                    "thread {:x} created {:.1} s after the process started and {quiet:.1} s after \
                     the thread before it, {:.1} s before the dump{started}",
                    t.id,
                    seconds(c.saturating_sub(process_start)),
                    seconds(dump_ft.saturating_sub(*c)),
                ),
            });
        }
        vec![Finding::new(
            self.pattern(),
            Strength::Likely,
            format!(
                "{} thread(s) appeared shortly before the dump after a quiet period in the \
                 process's {process_age:.0} s life",
                young.len()
            ),
        )
        .threads(young.iter().map(|(t, _, _)| t.id).collect())
        .facts(facts)
        .recommend(
            "Young threads are what changed just before the dump: see what created them and what \
             they do; many of them suggest thread churn.",
        )]
    }
}
