//! Divide by Zero: integer (c0000094) or floating-point (c000008e) division by zero.

use super::{exception_thread, top_frames};
use crate::{Detector, Evidence, Finding};

pub struct DivideByZero;

impl Detector for DivideByZero {
    fn pattern(&self) -> &'static str {
        "Divide by Zero"
    }
    fn category(&self) -> &'static str {
        "Exception"
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let Some(e) = &ev.exception else {
            return Vec::new();
        };
        let kind = match e.record.code {
            0xc0000094 => "integer",
            0xc000008e => "floating-point",
            _ => return Vec::new(),
        };
        let mut evidence = top_frames(ev, 3);
        // Show the dividing instruction.
        let text = ev.session.disassemble(e.record.address, 1);
        if let Some(line) = text.lines().find(|l| {
            !l.ends_with(':') && (l.contains(" idiv ") || l.contains(" div ") || l.contains("divs"))
        }) {
            evidence.insert(0, line.trim().to_string());
        }
        vec![Finding::new(
            self.pattern(),
            self.category(),
            "high",
            format!(
                "{kind} division by zero in {}",
                ev.exception_frames
                    .first()
                    .map(|f| f.call_site())
                    .unwrap_or_default()
            ),
        )
        .threads(exception_thread(ev))
        .evidence(evidence)
        .recommend("Check where the divisor comes from and guard the division.")]
    }
}
