//! Spiking Thread: threads that consumed CPU out of proportion — measured against their own
//! lifetime (the share of one core they used since they were created) and against the process.
//!
//! Windows charges a thread CPU only while it runs; a thread that waits accrues none. So a
//! thread that used a large share of a core over its whole life was running most of that time.
//! On a busy machine a spinner gets less than all of its wall time: threads of equal priority
//! share the cores round-robin, so with R runnable threads per core each gets about 1/R of one.
//! The bar for a thread running at the moment of the dump is therefore a fifth of a core (a
//! spinner still clears it on a machine with five runnable threads per core). A thread that is
//! inside a wait now spent its CPU earlier: a burst of work (loading, page faults) looks the
//! same as a spin that ended, so that is said only of a thread that used most of a core all its
//! life, and at a lower confidence. Against the other threads: a running thread that holds a
//! good part of the process's CPU is where the CPU goes even when a loaded machine gave it only
//! a twentieth of a core; that is likely rather than proven.
//!
//! Asked of dumps taken on purpose only: CPU is why someone dumps a process that spins, while a
//! crash dump records the moment of a fault, when busy threads (a game's render loop, a build's
//! compiler) are simply part of the program.

use crate::thread_facts::{top_frame_state, TopFrame};
use crate::{silent, Detector, Evidence, Fact, Finding, Pattern, Strength, ThreadView};

pub struct SpikingThread;

/// FILETIME of the Unix epoch, in 100 ns units.
const UNIX_EPOCH_FILETIME: u64 = 116_444_736_000_000_000;
const TICKS_PER_SECOND: f64 = 10_000_000.0;
/// The share of one core over its life above which a running thread was running most of the
/// time it could get (see the module documentation): a waiting thread accrues close to none.
const SPIN_UTILIZATION: f64 = 0.2;
/// The share for a thread waiting now: most of a core all its life.
const EARLIER_UTILIZATION: f64 = 0.5;
/// A running thread that holds this much of the process's CPU is disproportionate against the
/// other threads (`!runaway` shows it on top) ...
const PROCESS_SHARE: f64 = 0.25;
/// ... and is spinning even on a machine that gave it only a twentieth of a core (twenty
/// runnable threads per core: a build or a test run beside it; the round-robin share above),
/// but not when its CPU is a trickle over a long life (a UI thread that happened to be
/// handling a message: 0.3 s in an hour is no spike however idle the rest is).
const LOADED_UTILIZATION: f64 = 0.05;
/// CPU time below which a share means little: Windows charges CPU in clock ticks of about
/// 15.6 ms, so a quarter of a second is some sixteen ticks.
const MIN_CPU_SECONDS: f64 = 0.25;

struct Usage<'a> {
    thread: &'a ThreadView,
    cpu: f64,
    age: f64,
}

impl Usage<'_> {
    fn utilization(&self) -> f64 {
        self.cpu / self.age.max(MIN_CPU_SECONDS)
    }
}

impl Detector for SpikingThread {
    fn pattern(&self) -> Pattern {
        Pattern::SpikingThread
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        if !super::taken_on_purpose(ev) {
            silent!("a crash dump: CPU use is not what it was taken for");
        }
        let facts = ev.target().facts();
        // The dump time is in whole seconds (MINIDUMP_HEADER.TimeDateStamp): the middle of that
        // second is the estimate with the least error, and a thread lived at least as long as
        // it ran.
        let dump_ft =
            (facts.dump_time as f64 + 0.5) * TICKS_PER_SECOND + UNIX_EPOCH_FILETIME as f64;
        let process_start = facts
            .process_create_time
            .map(|s| s as f64 * TICKS_PER_SECOND + UNIX_EPOCH_FILETIME as f64);
        let usage: Vec<Usage> = ev
            .threads
            .iter()
            .filter_map(|t| {
                let x = t.times.as_ref()?;
                let created = Some(x.create_time as f64)
                    .filter(|&c| c > UNIX_EPOCH_FILETIME as f64)
                    .or(process_start)?;
                let cpu = x.user_time.saturating_add(x.kernel_time) as f64 / TICKS_PER_SECOND;
                let age = ((dump_ft - created) / TICKS_PER_SECOND).max(cpu);
                (facts.dump_time != 0 && age > 0.0).then_some(Usage {
                    thread: t,
                    cpu,
                    age,
                })
            })
            .collect();
        if usage.is_empty() {
            silent!("no thread times (ThreadInfoList) or no dump time");
        }
        let total: f64 = usage.iter().map(|u| u.cpu).sum();
        let share = |u: &Usage| u.cpu / total.max(f64::MIN_POSITIVE);
        // Disproportionate against the other threads: a good part of everything the process's
        // threads ran (only meaningful when there are other threads to compare with).
        let dominant = |u: &Usage| usage.len() > 1 && share(u) >= PROCESS_SHARE;
        let (running, waiting): (Vec<&Usage>, Vec<&Usage>) = usage
            .iter()
            .filter(|u| u.cpu >= MIN_CPU_SECONDS)
            .partition(|u| top_frame_state(ev, u.thread) != TopFrame::SystemCall);
        let spinning: Vec<&Usage> = running
            .into_iter()
            .filter(|u| {
                u.utilization() >= SPIN_UTILIZATION
                    || (dominant(u) && u.utilization() >= LOADED_UTILIZATION)
            })
            .collect();
        let earlier: Vec<&Usage> = waiting
            .into_iter()
            .filter(|u| u.utilization() >= EARLIER_UTILIZATION)
            .collect();
        if spinning.is_empty() && earlier.is_empty() {
            silent!("no thread used a disproportionate share of a core or of the process");
        }
        // Judged from its own life alone, a thread's share is proof; from the process's share
        // on a machine that gave it little, it is likely.
        let by_age = spinning.iter().all(|u| u.utilization() >= SPIN_UTILIZATION);
        let line = |u: &Usage| {
            format!(
                "thread {:x} used {:.2} s of CPU in its {:.1} s life ({:.0}% of one core), \
                 {:.0}% of the process's CPU",
                u.thread.id,
                u.cpu,
                u.age,
                100.0 * u.utilization().min(1.0),
                100.0 * share(u)
            )
        };
        let mut out = Vec::new();
        if !spinning.is_empty() {
            let mut found = Finding::new(
                self.pattern(),
                if by_age {
                    Strength::Proven
                } else {
                    Strength::Likely
                },
                format!(
                    "{} spinning in {}",
                    if spinning.len() == 1 {
                        format!("thread {:x} is", spinning[0].thread.id)
                    } else {
                        format!("{} threads are", spinning.len())
                    },
                    spinning
                        .iter()
                        .map(|u| u
                            .thread
                            .frames
                            .first()
                            .map(|f| f.call_site())
                            .unwrap_or_default())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .threads(spinning.iter().map(|u| u.thread.id).collect())
            .recommend(
                "Look at the loop in the thread's top frames; take a second dump later to \
                 confirm it is still there.",
            );
            for u in &spinning {
                found = found
                    .fact(Fact::Thread {
                        id: u.thread.id,
                        note: line(u),
                    })
                    .facts(Fact::frames(u.thread.id, &u.thread.frames, 4))
                    .caveats_of_frames(&u.thread.frames[..u.thread.frames.len().min(2)]);
            }
            out.push(found);
        }
        if !earlier.is_empty() {
            let mut found = Finding::new(
                self.pattern(),
                Strength::Possible,
                format!(
                    "{} used much CPU earlier but {} waiting now",
                    if earlier.len() == 1 {
                        format!("thread {:x}", earlier[0].thread.id)
                    } else {
                        format!("{} threads", earlier.len())
                    },
                    if earlier.len() == 1 { "is" } else { "are" }
                ),
            )
            .threads(earlier.iter().map(|u| u.thread.id).collect())
            .recommend(
                "The CPU was spent before the dump: a burst of work or a spin that ended. Dumps \
                 taken during the spike show where it goes.",
            );
            for u in &earlier {
                found = found.fact(Fact::Thread {
                    id: u.thread.id,
                    note: line(u),
                });
            }
            out.push(found);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{Analysed, Bitness, Waits};
    use crate::Confidence;
    use dumpdiag_synth::{unix_to_filetime, Thread};

    const TICKS: u64 = 10_000_000;

    /// Charge `seconds` of CPU to a thread (nine tenths user time, one tenth kernel time).
    fn cpu(t: &mut Thread, seconds: u64) {
        t.times.user_time = seconds * TICKS * 9 / 10;
        t.times.kernel_time = seconds * TICKS / 10;
    }

    /// A process an hour old (its threads created with it): 0x100 runs its checksum loop after
    /// 3000 s of CPU, 0x200 waits for an event after as much, 0x300 sleeps after next to none.
    fn busy(b: Bitness) -> Waits {
        let mut w = Waits::new(b);
        cpu(w.run(0x100, "checksum_loop"), 3000);
        let done = w.event(None);
        cpu(w.wait_single(0x200, done, "wait_for_batch"), 3000);
        w.sleep(0x300, "housekeeping");
        w
    }

    #[test]
    fn a_running_thread_that_used_most_of_a_core_all_its_life_is_spinning() {
        for b in [Bitness::X64, Bitness::X86] {
            let found = Analysed::with_symbols(busy(b).p).detect(&SpikingThread);
            assert_eq!(found.len(), 2, "{b:?}: {found:#?}");
            let (spinning, earlier) = (&found[0], &found[1]);
            assert_eq!(
                spinning.summary,
                "thread 100 is spinning in service!checksum_loop"
            );
            assert_eq!(spinning.threads, [0x100]);
            let evidence = spinning.evidence();
            assert_eq!(
                evidence[0],
                "thread 100 used 3000.00 s of CPU in its 3600.5 s life (83% of one core), 50% \
                 of the process's CPU"
            );
            assert!(
                evidence[1].starts_with("thread 100 frame 00: service!checksum_loop"),
                "{evidence:?}"
            );
            assert_eq!(spinning.confidence(), Confidence::High, "{b:?}");
            // The same CPU, but the thread sits in a wait stub now: spent earlier.
            assert_eq!(
                earlier.summary,
                "thread 200 used much CPU earlier but is waiting now"
            );
            assert_eq!(earlier.threads, [0x200]);
            assert_eq!(earlier.confidence(), Confidence::Low);
        }
    }

    #[test]
    fn cpu_is_measured_against_the_threads_own_life() {
        // 100 s of CPU in an hour is little; 9 s in the 10 s since a thread was created is
        // nearly a whole core.
        let mut w = Waits::new(Bitness::X64);
        cpu(w.run(0x100, "checksum_loop"), 100);
        let dump = unix_to_filetime(w.p.system.dump_time);
        let young = w.run(0x400, "rebuild_index");
        young.times.create_time = dump - 10 * TICKS;
        cpu(young, 9);
        let found = Analysed::with_symbols(w.p).detect(&SpikingThread);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].threads, [0x400]);
        assert_eq!(
            found[0].evidence()[0],
            "thread 400 used 9.00 s of CPU in its 10.5 s life (86% of one core), 8% of the \
             process's CPU"
        );
    }

    #[test]
    fn less_than_a_fifth_of_a_core_shared_evenly_is_no_spike() {
        // Five workers each ran 650 s in an hour (18% of one core), none more than the others:
        // busy, not spiking.
        for b in [Bitness::X64, Bitness::X86] {
            let mut w = Waits::new(b);
            for i in 0..5u32 {
                cpu(w.run(0x100 + 4 * i, "checksum_loop"), 650);
            }
            w.sleep(0x300, "housekeeping");
            let found = Analysed::with_symbols(w.p).detect(&SpikingThread);
            assert!(found.is_empty(), "{b:?}: {found:#?}");
        }
    }

    #[test]
    fn in_a_crash_dump_busy_threads_are_not_reported() {
        for b in [Bitness::X64, Bitness::X86] {
            let mut w = busy(b);
            w.crash(0x900, "parse_reply");
            let found = Analysed::with_symbols(w.p).detect(&SpikingThread);
            assert!(found.is_empty(), "{b:?}: {found:#?}");
        }
    }

    #[test]
    fn a_fifth_of_a_core_while_running_is_a_spike_on_a_loaded_machine() {
        // A spinner sharing the cores with four other runnable threads per core gets about a
        // fifth of one: 0.6 s in a life of 2.5 s (created two seconds before the dump's
        // second), while the process's other threads wait.
        let mut w = Waits::new(Bitness::X64);
        let dump = unix_to_filetime(w.p.system.dump_time);
        let spinner = w.run(0x100, "wait_for_data_busy");
        spinner.times.create_time = dump - 2 * TICKS;
        spinner.times.user_time = 6 * TICKS / 10;
        w.sleep(0x300, "housekeeping");
        let found = Analysed::with_symbols(w.p).detect(&SpikingThread);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].threads, [0x100]);
    }

    #[test]
    fn cpu_spent_earlier_must_be_most_of_a_core_to_be_told() {
        // A thread asleep now that used 40% of a core over its life (loading, page faults at
        // start): a burst, not a spike; at 60% it is told, at low confidence.
        for (share, told) in [(40, false), (60, true)] {
            let mut w = Waits::new(Bitness::X64);
            let done = w.event(None);
            cpu(w.wait_single(0x200, done, "wait_for_batch"), 36 * share);
            w.sleep(0x300, "housekeeping");
            let found = Analysed::with_symbols(w.p).detect(&SpikingThread);
            assert_eq!(!found.is_empty(), told, "{share}%: {found:#?}");
        }
    }

    #[test]
    fn a_running_thread_holding_the_process_cpu_spins_on_a_very_loaded_machine() {
        // 0.75 s in a 6 s life (13% of one core: a machine with some eight runnable threads per
        // core) while the seven other threads used next to nothing: likely spinning.
        let mut w = Waits::new(Bitness::X64);
        let dump = unix_to_filetime(w.p.system.dump_time);
        for id in [0x100u32, 0x104] {
            let spinner = w.run(id, "approximate_pi");
            spinner.times.create_time = dump - 6 * TICKS;
            spinner.times.user_time = 75 * TICKS / 100;
        }
        for id in 0..6u32 {
            let t = w.sleep(0x200 + 4 * id, "housekeeping");
            t.times.create_time = dump - 6 * TICKS;
        }
        let found = Analysed::with_symbols(w.p).detect(&SpikingThread);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].threads, [0x100, 0x104]);
        assert_eq!(found[0].confidence(), Confidence::Medium);
    }

    #[test]
    fn spinners_given_a_twelfth_of_a_core_by_an_overloaded_machine_are_likely_spinning() {
        // Two threads running user code with 1.2 s of CPU each in a 13.5 s life (9% of one
        // core: a 2-core machine with a build and CPU hogs beside it) and all the process's
        // CPU between them; the seven other threads waited all along.
        let mut w = Waits::new(Bitness::X64);
        let dump = unix_to_filetime(w.p.system.dump_time);
        for (id, cpu) in [(0x100u32, 119u64), (0x104, 114)] {
            let spinner = w.run(id, "approximate_pi");
            spinner.times.create_time = dump - 135 * TICKS / 10;
            spinner.times.user_time = cpu * TICKS / 100;
        }
        for id in 0..7u32 {
            let t = w.sleep(0x200 + 4 * id, "housekeeping");
            t.times.create_time = dump - 14 * TICKS;
        }
        let found = Analysed::with_symbols(w.p).detect(&SpikingThread);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].threads, [0x100, 0x104]);
        assert_eq!(found[0].confidence(), Confidence::Medium);
    }

    #[test]
    fn a_thread_running_by_chance_after_a_trickle_of_cpu_is_no_spike() {
        // The UI thread handling a message at the moment of the dump, 0.3 s of CPU in an hour,
        // nearly all the process's CPU: no spike. Alone in the process, the same.
        for others in [true, false] {
            let mut w = Waits::new(Bitness::X64);
            w.run(0x100, "on_paint").times.user_time = 3 * TICKS / 10;
            if others {
                w.sleep(0x300, "housekeeping");
            }
            let found = Analysed::with_symbols(w.p).detect(&SpikingThread);
            assert!(found.is_empty(), "{found:#?}");
        }
    }
}
