//! What a detector reports: a [`Finding`] of one [`Pattern`], with typed [`Fact`]s as evidence,
//! the [`Caveat`]s that limit it and a [`Confidence`] derived from both. Facts render to text
//! here and only here; the text, JSON and HTML reports all use [`Fact::render`].

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::evidence::FrameView;
use crate::pattern::{Category, Pattern};
use crate::waits::Wait;

/// How sure a finding is, from what the dump shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Confidence {
    Low,
    Medium,
    High,
}

impl Confidence {
    pub fn label(self) -> &'static str {
        match self {
            Confidence::Low => "low",
            Confidence::Medium => "medium",
            Confidence::High => "high",
        }
    }

    fn lowered(self) -> Confidence {
        match self {
            Confidence::High => Confidence::Medium,
            _ => Confidence::Low,
        }
    }
}

impl Serialize for Confidence {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.label())
    }
}

/// How far a detector's rule can establish its pattern when nothing limits the evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strength {
    /// The dump's own records prove it (an exception code and its parameters, lock owners read
    /// from the lock structures forming a cycle, a comment stream).
    Proven,
    /// The signs fit and the usual other explanations are ruled out, but a step is inferred
    /// (a wait's object found on the stack, a size judged large, a role read from names).
    Likely,
    /// A sign worth a look that has innocent explanations too.
    Possible,
}

/// Something the dump could not show that the finding would need to be certain. Each caveat
/// lowers the confidence one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caveat {
    /// Frames the finding rests on were found by scanning the stack.
    ScannedFrames,
    /// The frames are named from exports only: the function names may be the nearest export.
    ExportNamesOnly,
    /// Memory the finding needs is not in the dump (a minidump without it).
    MissingMemory(String),
    /// A single dump shows a size, not a growth: a second dump would confirm it.
    SingleDump,
    /// The finding rests on a heuristic that has known innocent explanations.
    Heuristic(String),
}

impl Caveat {
    pub fn render(&self) -> String {
        match self {
            Caveat::ScannedFrames => "frames it rests on were found by scanning the stack".into(),
            Caveat::ExportNamesOnly => "frames are named from exports only".into(),
            Caveat::MissingMemory(what) => format!("the dump does not hold {what}"),
            Caveat::SingleDump => {
                "one dump shows a size, not a growth: a second dump taken later confirms it".into()
            }
            Caveat::Heuristic(why) => why.clone(),
        }
    }
}

/// One piece of evidence.
#[derive(Debug, Clone)]
pub enum Fact {
    /// A frame of a walked stack (the thread's, or the exception's walk for the faulting one).
    Frame {
        thread: u32,
        index: usize,
        frame: FrameView,
    },
    /// A thread's wait: what it waits for and who must act.
    Wait(Wait),
    /// An exception record, where it lies in memory (for `.exr`) and the context beside it
    /// (for `.cxr`) when known.
    Exception {
        record_at: Option<u64>,
        context_at: Option<u64>,
        code: u32,
        address: u64,
        location: String,
    },
    /// An address and the memory it lies in.
    Memory { address: u64, note: String },
    /// Handles of one type (and name), with what was seen of them.
    Handles {
        type_name: String,
        name: Option<String>,
        count: usize,
        note: String,
    },
    /// A module and what is notable about it.
    Module {
        name: String,
        path: String,
        note: String,
    },
    /// A thread and what is notable about it.
    Thread { id: u32, note: String },
    /// Anything else the finding states.
    Note(String),
}

impl Fact {
    /// The fact as one line of text, the same in every report.
    pub fn render(&self) -> String {
        match self {
            Fact::Frame {
                thread,
                index,
                frame,
            } => {
                let src = frame
                    .source
                    .as_ref()
                    .map(|(f, l)| format!(" [{f} @ {l}]"))
                    .unwrap_or_default();
                format!(
                    "thread {thread:x} frame {index:02}: {}{src}",
                    frame.call_site_offset()
                )
            }
            Fact::Wait(w) => w.describe(),
            Fact::Exception {
                record_at,
                context_at,
                code,
                address,
                location,
            } => {
                let mut s = format!("exception {code:08x} at {address:#x} ({location})");
                if let Some(r) = record_at {
                    s.push_str(&format!("; EXCEPTION_RECORD at {r:#x} (.exr {r:#x})"));
                }
                if let Some(c) = context_at {
                    s.push_str(&format!("; CONTEXT at {c:#x} (.cxr {c:#x})"));
                }
                s
            }
            Fact::Memory { note, .. }
            | Fact::Handles { note, .. }
            | Fact::Module { note, .. }
            | Fact::Thread { note, .. } => note.clone(),
            Fact::Note(text) => text.clone(),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Fact::Frame { .. } => "frame",
            Fact::Wait(_) => "wait",
            Fact::Exception { .. } => "exception",
            Fact::Memory { .. } => "memory",
            Fact::Handles { .. } => "handles",
            Fact::Module { .. } => "module",
            Fact::Thread { .. } => "thread",
            Fact::Note(_) => "note",
        }
    }

    /// Frames of a walk as facts.
    pub fn frames(thread: u32, frames: &[FrameView], n: usize) -> Vec<Fact> {
        frames
            .iter()
            .take(n)
            .enumerate()
            .map(|(index, f)| Fact::Frame {
                thread,
                index,
                frame: f.clone(),
            })
            .collect()
    }
}

fn hex(v: u64) -> String {
    format!("{v:#x}")
}

/// JSON: `{"kind", "text", ...the typed fields}`.
impl Serialize for Fact {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("kind", self.kind())?;
        m.serialize_entry("text", &self.render())?;
        match self {
            Fact::Frame {
                thread,
                index,
                frame,
            } => {
                m.serialize_entry("thread", thread)?;
                m.serialize_entry("index", index)?;
                m.serialize_entry("ip", &hex(frame.ip))?;
                m.serialize_entry("module", &frame.module)?;
                m.serialize_entry("function", &frame.function)?;
                m.serialize_entry("offset", &hex(frame.offset))?;
                m.serialize_entry("trust", frame.trust.label())?;
            }
            Fact::Wait(w) => {
                m.serialize_entry("thread", &w.thread)?;
                m.serialize_entry("object", &w.object.kind_name())?;
                m.serialize_entry("object_address", &w.object.address().map(hex))?;
                m.serialize_entry("object_name", &w.object.name())?;
                m.serialize_entry("blocker", &w.blocker)?;
            }
            Fact::Exception {
                record_at,
                context_at,
                code,
                address,
                ..
            } => {
                m.serialize_entry("code", &format!("{code:#010x}"))?;
                m.serialize_entry("address", &hex(*address))?;
                m.serialize_entry("record_at", &record_at.map(hex))?;
                m.serialize_entry("context_at", &context_at.map(hex))?;
            }
            Fact::Memory { address, .. } => m.serialize_entry("address", &hex(*address))?,
            Fact::Handles {
                type_name,
                name,
                count,
                ..
            } => {
                m.serialize_entry("type", type_name)?;
                m.serialize_entry("name", name)?;
                m.serialize_entry("count", count)?;
            }
            Fact::Module { name, path, .. } => {
                m.serialize_entry("module", name)?;
                m.serialize_entry("path", path)?;
            }
            Fact::Thread { id, .. } => m.serialize_entry("thread", id)?,
            Fact::Note(_) => {}
        }
        m.end()
    }
}

/// A pattern found in the dump.
#[derive(Debug, Clone)]
pub struct Finding {
    pub pattern: Pattern,
    strength: Strength,
    pub caveats: Vec<Caveat>,
    /// Thread ids involved.
    pub threads: Vec<u32>,
    pub summary: String,
    pub facts: Vec<Fact>,
    pub recommendation: String,
}

impl Finding {
    pub fn new(pattern: Pattern, strength: Strength, summary: String) -> Finding {
        Finding {
            pattern,
            strength,
            caveats: Vec::new(),
            threads: Vec::new(),
            summary,
            facts: Vec::new(),
            recommendation: String::new(),
        }
    }

    pub fn name(&self) -> &'static str {
        self.pattern.name()
    }

    pub fn category(&self) -> Category {
        self.pattern.category()
    }

    /// The rule's strength lowered one step per caveat.
    pub fn confidence(&self) -> Confidence {
        let base = match self.strength {
            Strength::Proven => Confidence::High,
            Strength::Likely => Confidence::Medium,
            Strength::Possible => Confidence::Low,
        };
        self.caveats.iter().fold(base, |c, _| c.lowered())
    }

    /// The facts as text lines.
    pub fn evidence(&self) -> Vec<String> {
        self.facts.iter().map(Fact::render).collect()
    }

    pub fn threads(mut self, t: Vec<u32>) -> Finding {
        self.threads = t;
        self
    }

    pub fn fact(mut self, f: Fact) -> Finding {
        self.facts.push(f);
        self
    }

    pub fn facts(mut self, f: impl IntoIterator<Item = Fact>) -> Finding {
        self.facts.extend(f);
        self
    }

    /// Free-text facts.
    pub fn notes(self, notes: impl IntoIterator<Item = String>) -> Finding {
        self.facts(notes.into_iter().map(Fact::Note))
    }

    pub fn caveat(mut self, c: Caveat) -> Finding {
        if !self.caveats.contains(&c) {
            self.caveats.push(c);
        }
        self
    }

    pub fn caveat_if(self, condition: bool, c: Caveat) -> Finding {
        if condition {
            self.caveat(c)
        } else {
            self
        }
    }

    /// Caveats of the frames the finding rests on: scanned frames, export-only names.
    pub fn caveats_of_frames(self, frames: &[FrameView]) -> Finding {
        let scanned = frames
            .iter()
            .any(|f| f.trust == dumpdiag_stack::Trust::Scan);
        let exports = !frames.is_empty()
            && frames
                .iter()
                .all(|f| f.symbol_kind == Some(dumpdiag_symbols::SymbolKind::Export));
        self.caveat_if(scanned, Caveat::ScannedFrames)
            .caveat_if(exports, Caveat::ExportNamesOnly)
    }

    pub fn recommend(mut self, r: &str) -> Finding {
        self.recommendation = r.into();
        self
    }
}

/// JSON (`dumpdiag.analysis/1`): the fields of the first version, then the added ones (`role`,
/// `facts`, `caveats`).
impl Serialize for Finding {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("name", self.name())?;
        m.serialize_entry("category", &self.category())?;
        m.serialize_entry("confidence", &self.confidence())?;
        m.serialize_entry("threads", &self.threads)?;
        m.serialize_entry("summary", &self.summary)?;
        m.serialize_entry("evidence", &self.evidence())?;
        m.serialize_entry("recommendation", &self.recommendation)?;
        m.serialize_entry("role", &self.pattern.role())?;
        m.serialize_entry("facts", &self.facts)?;
        let caveats: Vec<String> = self.caveats.iter().map(Caveat::render).collect();
        m.serialize_entry("caveats", &caveats)?;
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confidence_follows_strength_and_caveats() {
        let f = Finding::new(
            Pattern::DeadlockCriticalSections,
            Strength::Proven,
            "x".into(),
        );
        assert_eq!(f.confidence(), Confidence::High);
        let f = f.caveat(Caveat::ScannedFrames);
        assert_eq!(f.confidence(), Confidence::Medium);
        let f = f.caveat(Caveat::ScannedFrames);
        assert_eq!(f.confidence(), Confidence::Medium, "a caveat counts once");
        let f = f.caveat(Caveat::SingleDump).caveat(Caveat::ExportNamesOnly);
        assert_eq!(f.confidence(), Confidence::Low);
        let p = Finding::new(Pattern::ActiveThread, Strength::Possible, "x".into());
        assert_eq!(p.confidence(), Confidence::Low);
    }
}
