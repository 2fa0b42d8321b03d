//! Automatic diagnosis. [`analyze`] gathers what every detector needs once (the exception, every
//! thread's stack with symbols, the dump's facts) into an [`Evidence`] view, runs the detectors
//! (one small file each under `detectors/`, named after the pattern it finds, names verbatim
//! from the pattern catalog) and returns a [`Report`] whose JSON form is the stable contract
//! `dumpdiag.analysis/1` documented in `docs/analysis-json.md`.

pub mod detectors;
mod evidence;
pub mod html;
mod managed;
mod report;
pub mod thread_facts;
pub mod waits;

pub use evidence::{Evidence, FrameView, ThreadView};
pub use report::{Finding, Report};

use dumpdiag_engine::Session;

/// A pattern detector: looks at the evidence and reports zero or more findings.
pub trait Detector {
    /// The pattern's canonical name (verbatim from patterns.md).
    fn pattern(&self) -> &'static str;
    fn category(&self) -> &'static str;
    fn detect(&self, ev: &Evidence) -> Vec<Finding>;
}

/// The HTML report of a session's dump (findings, threads, wait-chain drawing).
pub fn html_report(s: &Session) -> String {
    let ev = Evidence::gather(s);
    let mut findings = Vec::new();
    for d in detectors::all() {
        findings.extend(d.detect(&ev));
    }
    let waits = ev.waits().to_vec();
    html::render(&Report::new(&ev, findings), &waits)
}

/// Run every detector over the session's dump.
pub fn analyze(s: &Session) -> Report {
    let ev = Evidence::gather(s);
    let mut findings = Vec::new();
    for d in detectors::all() {
        findings.extend(d.detect(&ev));
    }
    Report::new(&ev, findings)
}
