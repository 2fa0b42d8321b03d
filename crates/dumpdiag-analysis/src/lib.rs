//! Automatic diagnosis. [`analyze`] gathers what every detector needs once — the exception and
//! every thread's stack, each in its own view (the 32-bit one for a WOW64 thread) — into an
//! [`Evidence`], runs the detectors (one small file each under `detectors/`, one [`Pattern`]
//! each, names verbatim from the catalog) and returns a [`Report`] of typed [`Finding`]s whose
//! JSON form is the stable contract `dumpdiag.analysis/1` documented in
//! `docs/analysis-json.md`.
//!
//! The analysis reads the target, the symbols and the stack walker only: never a debugger
//! session's state (current thread, `.effmach`, `.cxr`), so the same dump and symbols always
//! give the same findings.

pub mod detectors;
mod evidence;
mod finding;
pub mod html;
mod managed;
mod pattern;
mod report;
pub mod stack_records;
#[cfg(test)]
mod test_support;
pub mod thread_facts;
pub mod waits;

pub use evidence::{Evidence, FrameView, Input, ThreadView, Walk};
pub use finding::{Caveat, Confidence, Fact, Finding, Strength};
pub use pattern::{Category, Pattern, Role};
pub use report::Report;

use tracing::{debug, info_span};

/// A pattern detector: looks at the evidence and reports zero or more findings of its pattern.
pub trait Detector {
    fn pattern(&self) -> Pattern;
    fn detect(&self, ev: &Evidence) -> Vec<Finding>;
}

/// Run every detector over the evidence; `dumpdiag -v analyze` logs what each one decided.
pub fn run_detectors(ev: &Evidence) -> Vec<Finding> {
    let mut findings = Vec::new();
    for d in detectors::all() {
        let _span = info_span!("detector", pattern = d.pattern().name()).entered();
        let found = d.detect(ev);
        if found.is_empty() {
            debug!("silent");
        }
        for f in &found {
            debug!(confidence = f.confidence().label(), summary = %f.summary, "reported");
        }
        findings.extend(found);
    }
    findings
}

/// Diagnose a dump.
pub fn analyze(input: &Input) -> Report {
    let ev = Evidence::gather(input);
    let findings = run_detectors(&ev);
    Report::new(&ev, findings)
}

/// The HTML report of a dump (findings, threads, wait-chain drawing).
pub fn html_report(input: &Input) -> String {
    let ev = Evidence::gather(input);
    let findings = run_detectors(&ev);
    html::render(&Report::new(&ev, findings), ev.waits())
}

/// `!cs -l` / `!locks`: the locked critical sections the waits lead to.
pub fn locks_text(input: &Input) -> String {
    waits::locks_text(&Evidence::gather(input))
}

/// `!waitchain`: each waiting thread and the chain it leads to.
pub fn wait_chain_text(input: &Input) -> String {
    waits::wait_chain_text(&Evidence::gather(input))
}

/// A detector staying silent, with the reason logged for `dumpdiag -v analyze`.
#[macro_export]
macro_rules! silent {
    ($($reason:tt)+) => {{
        tracing::debug!($($reason)+);
        return Vec::new();
    }};
}
