//! Spiking Thread: one thread with a disproportionate share of the process's CPU time.

use crate::{Detector, Evidence, Finding, Pattern, Strength};

pub struct SpikingThread;

/// At least this much CPU time (100 ns units: one second) and this share of the total.
const MIN_CPU: u64 = 10_000_000;
const MIN_SHARE: f64 = 0.5;

impl Detector for SpikingThread {
    fn pattern(&self) -> Pattern {
        Pattern::SpikingThread
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let cpu: Vec<(usize, u64)> = ev
            .threads
            .iter()
            .filter_map(|t| {
                t.times
                    .as_ref()
                    .map(|x| (t.index, x.user_time.saturating_add(x.kernel_time)))
            })
            .collect();
        let total: u64 = cpu.iter().fold(0u64, |a, c| a.saturating_add(c.1));
        let Some(&(index, top)) = cpu.iter().max_by_key(|c| c.1) else {
            return Vec::new();
        };
        if top < MIN_CPU || (top as f64) < MIN_SHARE * total as f64 {
            return Vec::new();
        }
        let th = &ev.threads[index];
        let mut evidence = vec![format!(
            "thread {:x} used {:.2} s of CPU, {:.0}% of the process's",
            th.id,
            top as f64 / 1e7,
            100.0 * top as f64 / total.max(1) as f64
        )];
        evidence.extend(th.frames.iter().take(4).map(|f| f.call_site()));
        vec![Finding::new(
            self.pattern(), Strength::Proven,
            format!("thread {:x} is spinning in {}", th.id, th.frames.first().map(|f| f.call_site()).unwrap_or_default()),
        )
        .threads(vec![th.id])
        .notes(evidence)
        .recommend("Look at the loop in the thread's top frames; take a second dump later to confirm it is still there.")]
    }
}
