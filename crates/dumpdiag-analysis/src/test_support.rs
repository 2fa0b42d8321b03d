//! For the detectors' unit tests: a synthetic process (`dumpdiag-synth`) analysed the way a dump
//! is, with or without its Breakpad symbols, and the findings of one pattern picked out.
// Each detector test uses the part it needs.
#![allow(dead_code)]

use dumpdiag_symbols::{SymbolPath, Symbols};
use dumpdiag_synth::{Process, SymbolStore, SynthTarget};

use crate::{Detector, Evidence, Finding, Input, Pattern};

/// A synthetic process ready for analysis.
pub(crate) struct Analysed {
    target: SynthTarget,
    symbols: Symbols,
    /// Kept for the symbols' lifetime: the store is removed when dropped.
    _store: Option<SymbolStore>,
}

impl Analysed {
    /// The process with names from its modules' exports only (no symbol files), as a minidump
    /// of Windows modules without their PDBs is read.
    pub(crate) fn exports_only(p: Process) -> Analysed {
        let target = p.build();
        let symbols = Symbols::new(SymbolPath::default(), &target);
        Analysed {
            target,
            symbols,
            _store: None,
        }
    }

    /// The process with a Breakpad symbol store for every module (FUNC and unwind records).
    pub(crate) fn with_symbols(p: Process) -> Analysed {
        let target = p.build();
        let store = target.symbol_store();
        let symbols = Symbols::new(SymbolPath::parse(&store.symbol_path()), &target);
        Analysed {
            target,
            symbols,
            _store: Some(store),
        }
    }

    pub(crate) fn target(&self) -> &SynthTarget {
        &self.target
    }

    pub(crate) fn evidence(&self) -> Evidence<'_> {
        Evidence::gather(&Input::new(&self.target, &self.symbols))
    }

    /// What `detector` reports on this process.
    pub(crate) fn detect(&self, detector: &dyn Detector) -> Vec<Finding> {
        detector.detect(&self.evidence())
    }

    /// Every pattern the whole analysis reports on this process.
    pub(crate) fn patterns(&self) -> Vec<Pattern> {
        crate::run_detectors(&self.evidence())
            .iter()
            .map(|f| f.pattern)
            .collect()
    }
}
