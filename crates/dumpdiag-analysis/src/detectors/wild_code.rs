//! Wild Code: the instruction pointer is outside every module and outside executable memory.

use super::exception_thread;
use crate::{Detector, Evidence, Finding, Pattern, Strength};

pub struct WildCode;

impl Detector for WildCode {
    fn pattern(&self) -> Pattern {
        Pattern::WildCode
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let Some(f0) = ev.exception_frames().first() else {
            return Vec::new();
        };
        let t = ev.target();
        let ip = f0.ip;
        if ip < super::NULL_PAGE_END || t.module_at(ip).is_some() {
            return Vec::new();
        }
        // Generated code the dump describes (FunctionTable stream) or executable memory is JIT.
        if t.extras()
            .function_tables
            .iter()
            .any(|ft| ip >= ft.minimum_address && ip < ft.maximum_address)
        {
            return Vec::new();
        }
        let executable = t
            .region_at(ip)
            .is_some_and(|r| r.state == dumpdiag_target::MEM_COMMIT && r.protect & 0xf0 != 0);
        if executable {
            return Vec::new();
        }
        let caller = ev
            .exception_frames()
            .get(1)
            .map(|f| f.call_site())
            .unwrap_or_else(|| "unknown".into());
        vec![Finding::new(
            self.pattern(), Strength::Proven,
            format!("execution at {ip:#x}, outside every module and every executable region, reached from {caller}"),
        )
        .threads(exception_thread(ev))
        .notes([format!("instruction pointer {ip:#x}: no module, not executable"), format!("caller: {caller}")])

        .recommend("A corrupted function pointer, vtable or return address sent execution here; inspect the caller's call target (ub on the return address).")]
    }
}
