//! Active Space: where threads execute when a process mixes execution spaces — a WOW64 process's
//! 32-bit code and the 64-bit layer beneath it, or managed (JIT-compiled) code and the runtime
//! and native code around it. Purely native processes have one space and no finding.

use dumpdiag_target::Context;

use crate::managed::{is_generated_code, is_runtime_frame, runtime_module};
use crate::{Detector, Evidence, Fact, Finding, Pattern, Strength};

pub struct ActiveSpace;

/// The 64-bit modules a WOW64 thread passes through on its way to the kernel.
const WOW64_LAYER: &[&str] = &[
    "wow64cpu",
    "wow64",
    "wow64win",
    "wow64base",
    "wow64con",
    "ntdll",
];

impl Detector for ActiveSpace {
    fn pattern(&self) -> Pattern {
        Pattern::ActiveSpace
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let mut evidence = if ev.is_wow64() {
            wow64_spaces(ev)
        } else {
            Vec::new()
        };
        if runtime_module(ev).is_some() {
            evidence.extend(managed_spaces(ev));
        }
        if evidence.is_empty() {
            return Vec::new();
        }
        let threads = evidence.iter().map(|e| e.0).fold(Vec::new(), |mut v, t| {
            if !v.contains(&t) {
                v.push(t);
            }
            v
        });
        vec![Finding::new(self.pattern(), Strength::Likely, format!("{} thread(s) cross execution spaces", threads.len()))
            .threads(threads)
            .facts(evidence.into_iter().map(|(id, note)| Fact::Thread { id, note }))
            .recommend("Read each thread in the space it executes: .effmach x86 for WOW64's 32-bit code, the runtime's view (SOS) for managed frames.")]
    }
}

/// For each thread of a WOW64 process: captured in 32-bit mode (cs 0x23) or in the 64-bit layer,
/// and where its 32-bit code is.
fn wow64_spaces(ev: &Evidence) -> Vec<(u32, String)> {
    let t = ev.target();
    let mut out = Vec::new();
    for (i, th) in t.threads().iter().enumerate() {
        let native = t.thread_context(i);
        let in_32bit = match &native {
            Some(Context::Amd64(c, _)) => c.cs == 0x23,
            _ => false,
        };
        let x86_ip = dumpdiag_os::wow64::x86_context(t.memory(), th.teb).map(|c| c.ip());
        let name = |ip: u64| ev.describe(ip);
        if in_32bit {
            out.push((
                th.id,
                format!(
                    "thread {:x} was executing 32-bit code at {}",
                    th.id,
                    native.as_ref().map(|c| name(c.ip())).unwrap_or_default()
                ),
            ));
            continue;
        }
        let Some(ip) = native.as_ref().map(|c| c.ip()) else {
            continue;
        };
        let layer = t
            .module_at(ip)
            .map(|m| m.short_name().to_ascii_lowercase())
            .filter(|m| WOW64_LAYER.contains(&m.as_str()));
        if let (Some(layer), Some(x86)) = (layer, x86_ip) {
            out.push((th.id, format!("thread {:x} is in the 64-bit WOW64 layer ({layer}: {}); its 32-bit code is at {}", th.id, name(ip), name(x86))));
        }
    }
    out
}

/// Threads whose stacks pass between native, runtime and JIT-compiled code.
fn managed_spaces(ev: &Evidence) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for t in &ev.threads {
        let frames = ev.frames_of(t);
        if !frames.iter().any(|f| is_generated_code(ev, f.ip)) {
            continue;
        }
        // The spaces from the top frame down, consecutive repeats folded: native → runtime → managed → native.
        let mut spaces: Vec<&str> = Vec::new();
        for f in frames {
            let space = if is_generated_code(ev, f.ip) {
                "managed (JIT)"
            } else if is_runtime_frame(f.module.as_deref()) {
                "runtime"
            } else {
                "native"
            };
            if spaces.last() != Some(&space) {
                spaces.push(space);
            }
        }
        out.push((
            t.id,
            format!(
                "thread {:x} executes in {} (from the top frame down)",
                t.id,
                spaces.join(" ← ")
            ),
        ));
    }
    out
}
