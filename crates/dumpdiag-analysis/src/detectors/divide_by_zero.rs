//! Divide by Zero: integer (c0000094) or floating-point (c000008e) division by zero.

use super::{exception_thread, top_frames};
use crate::{Detector, Evidence, Fact, Finding, Pattern, Strength};
use dumpdiag_os::codes;
use dumpdiag_stack::code::Mnemonic;

pub struct DivideByZero;

impl Detector for DivideByZero {
    fn pattern(&self) -> Pattern {
        Pattern::DivideByZero
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let Some(e) = &ev.exception else {
            return Vec::new();
        };
        let kind = match e.record.code {
            codes::INT_DIVIDE_BY_ZERO => "integer",
            codes::FLT_DIVIDE_BY_ZERO => "floating-point",
            _ => return Vec::new(),
        };
        let mut facts = top_frames(ev, 3);
        // The dividing instruction, when the dump holds the code at the faulting address.
        let view = ev
            .exception_walk
            .as_ref()
            .map(|w| w.view)
            .unwrap_or_default();
        let code = ev.disassembler(view);
        let divides = code.decode(e.record.address, 1).first().is_some_and(|i| {
            matches!(
                i.mnemonic(),
                Mnemonic::Div | Mnemonic::Idiv | Mnemonic::Fdiv | Mnemonic::Fidiv | Mnemonic::Fdivr
            ) || format!("{:?}", i.mnemonic()).contains("div")
        });
        if let Some(text) = code.instruction_text(e.record.address).filter(|_| divides) {
            let note = format!("faulting instruction at {:#x}: {text}", e.record.address);
            facts.insert(
                0,
                Fact::Memory {
                    address: e.record.address,
                    note,
                },
            );
        }
        vec![Finding::new(
            self.pattern(),
            Strength::Proven,
            format!(
                "{kind} division by zero in {}",
                ev.exception_frames()
                    .first()
                    .map(|f| f.call_site())
                    .unwrap_or_default()
            ),
        )
        .threads(exception_thread(ev))
        .facts(facts)
        .recommend("Check where the divisor comes from and guard the division.")]
    }
}
