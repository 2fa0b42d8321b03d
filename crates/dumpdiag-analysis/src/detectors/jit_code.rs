//! JIT Code (.NET): frames whose instruction pointer lies in executable private memory (no
//! module) of a process with the .NET runtime loaded — code the JIT compiler generated. Such
//! frames are named by the runtime's method tables, not by PDBs.

use crate::managed::{is_generated_code, runtime_module};
use crate::{Detector, Evidence, Finding, Pattern, Strength};

pub struct JitCode;

impl Detector for JitCode {
    fn pattern(&self) -> Pattern {
        Pattern::JitCode
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let Some(runtime) = runtime_module(ev) else {
            return Vec::new();
        };
        let mut evidence = Vec::new();
        let mut threads = Vec::new();
        for t in &ev.threads {
            let frames = ev.frames_of(t);
            for (i, f) in frames
                .iter()
                .enumerate()
                .filter(|(_, f)| is_generated_code(ev, f.ip))
            {
                let caller = frames
                    .get(i + 1)
                    .map(|c| format!(", called from {}", c.call_site()))
                    .unwrap_or_default();
                let callee = i
                    .checked_sub(1)
                    .and_then(|j| frames.get(j))
                    .map(|c| format!(", calls {}", c.call_site()))
                    .unwrap_or_default();
                evidence.push(format!(
                    "thread {:x} frame {i:02}: {:#x} in executable private memory{callee}{caller}",
                    t.id, f.ip
                ));
                if !threads.contains(&t.id) {
                    threads.push(t.id);
                }
            }
        }
        if evidence.is_empty() {
            return Vec::new();
        }
        evidence.insert(0, format!("runtime loaded: {}", runtime.path));
        vec![Finding::new(self.pattern(), Strength::Proven, format!("{} frame(s) run JIT-compiled .NET code", evidence.len() - 1))
            .threads(threads)
            .notes(evidence)
            .recommend("Name these frames with the runtime's data (SOS !ip2md, !clrstack); native symbols cannot.")]
    }
}
