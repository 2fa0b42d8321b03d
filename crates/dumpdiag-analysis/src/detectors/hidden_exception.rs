//! Hidden Exception: EXCEPTION_RECORDs left on the unused part of a thread's stack by past
//! dispatch, on threads other than the faulting one (or when the dump has no exception).

use crate::{Detector, Evidence, Fact, Finding, Pattern, Strength};
use dumpdiag_target::MemoryExt;

pub struct HiddenException;

const CODES: &[u32] = &[
    0xc0000005, 0xc0000094, 0xc000008e, 0xc00000fd, 0xc0000409, 0xc0000374, 0xe06d7363, 0xc000001d,
    0xc0000096,
];
/// How far below the stack pointer residue is searched.
const DEPTH: u64 = 0x10000;

impl Detector for HiddenException {
    fn pattern(&self) -> Pattern {
        Pattern::HiddenException
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let faulting = ev.exception.as_ref().map(|e| e.thread_id);
        // A copy of the stored exception is not hidden, wherever it lies.
        let stored = ev
            .exception
            .as_ref()
            .map(|e| (e.record.code, e.record.address));
        let mem = ev.target().memory();
        let mut out = Vec::new();
        for t in &ev.threads {
            if Some(t.id) == faulting {
                continue;
            }
            let Some(sp) = t.sp() else { continue };
            let low = sp.saturating_sub(DEPTH);
            let bytes = mem.read_bytes(low, (sp - low) as usize);
            let p = t.ptr() as usize;
            let read = |at: usize| -> u64 {
                match bytes.get(at..at + p) {
                    Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]) as u64,
                    Some(b) => u64::from_le_bytes(b.try_into().unwrap_or([0; 8])),
                    None => 0,
                }
            };
            let read32 = |at: usize| -> u32 {
                bytes
                    .get(at..at + 4)
                    .map(|b| u32::from_le_bytes(b.try_into().unwrap_or([0; 4])))
                    .unwrap_or(0)
            };
            let mut records: Vec<Fact> = Vec::new();
            let mut seen = Vec::new();
            let mut o = 0usize;
            // EXCEPTION_RECORD (winnt.h): ExceptionCode, ExceptionFlags, ExceptionRecord
            // (pointer), ExceptionAddress (pointer), NumberParameters, then the parameters.
            while o + 8 + 4 * p <= bytes.len() {
                let code = read32(o);
                let flags = read32(o + 4);
                if CODES.contains(&code) && flags <= 1 {
                    let address = read(o + 8 + p);
                    let nparams = read32(o + 8 + 2 * p);
                    // A plausible record: the address is code of a loaded module and the
                    // parameter count is a real one (EXCEPTION_MAXIMUM_PARAMETERS is 15).
                    if nparams <= 15
                        && ev.target().module_at(address).is_some()
                        && stored != Some((code, address))
                        && !seen.contains(&(code, address))
                    {
                        seen.push((code, address));
                        records.push(Fact::Exception {
                            record_at: Some(low + o as u64),
                            context_at: None,
                            code,
                            address,
                            location: ev.describe(address),
                        });
                    }
                }
                o += 4;
            }
            if !records.is_empty() {
                // Record-shaped bytes with a known code, valid flags and a code address are
                // rarely anything else, but stale stack bytes are not proof of a dispatch.
                out.push(
                    Finding::new(
                        self.pattern(),
                        Strength::Likely,
                        format!(
                            "thread {:x} has {} exception record(s) left on its stack",
                            t.id,
                            records.len()
                        ),
                    )
                    .threads(vec![t.id])
                    .facts(records)
                    .recommend(
                        "An exception was raised and handled (or swallowed) earlier on this \
                         thread: .exr on the record's address and .cxr on the CONTEXT near it \
                         show where.",
                    ),
                );
            }
        }
        out
    }
}
