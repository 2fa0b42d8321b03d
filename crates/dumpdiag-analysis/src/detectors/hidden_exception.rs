//! Hidden Exception: EXCEPTION_RECORDs left on the unused part of a thread's stack by past
//! dispatch, on threads other than the faulting one (or when the dump has no exception).

use crate::{Detector, Evidence, Finding};
use dumpdiag_target::MemoryExt;

pub struct HiddenException;

const CODES: &[u32] = &[
    0xc0000005, 0xc0000094, 0xc000008e, 0xc00000fd, 0xc0000409, 0xc0000374, 0xe06d7363, 0xc000001d,
    0xc0000096,
];
/// How far below the stack pointer residue is searched.
const DEPTH: u64 = 0x10000;

impl Detector for HiddenException {
    fn pattern(&self) -> &'static str {
        "Hidden Exception"
    }
    fn category(&self) -> &'static str {
        "Hidden Artifact"
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
            let Some(ctx) = ev.session.thread_context(t.index) else {
                continue;
            };
            let sp = ctx.sp();
            let low = sp.saturating_sub(DEPTH);
            let bytes = mem.read_bytes(low, (sp - low) as usize);
            let p = ev.ptr as usize;
            let mut records = Vec::new();
            let mut o = 0usize;
            while o + 8 + 4 * p <= bytes.len() {
                let code = u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap_or([0; 4]));
                let flags = u32::from_le_bytes(bytes[o + 4..o + 8].try_into().unwrap_or([0; 4]));
                if CODES.contains(&code) && flags <= 1 {
                    let read = |at: usize| {
                        if p == 8 {
                            u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8]))
                        } else {
                            u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or([0; 4]))
                                as u64
                        }
                    };
                    let address = read(o + 8 + p);
                    let nparams = u32::from_le_bytes(
                        bytes[o + 8 + 2 * p..o + 12 + 2 * p]
                            .try_into()
                            .unwrap_or([0; 4]),
                    );
                    // A plausible record: the address is code of a loaded module and the
                    // parameter count is a real one.
                    if nparams <= 15
                        && ev.target().module_at(address).is_some()
                        && stored != Some((code, address))
                    {
                        let site = ev
                            .session
                            .describe_address(address)
                            .unwrap_or_else(|| format!("{address:#x}"));
                        let line = format!(
                            "EXCEPTION_RECORD at {:#x}: code {code:08x} at {site}",
                            low + o as u64
                        );
                        if !records.contains(&line) {
                            records.push(line);
                        }
                    }
                }
                o += 4;
            }
            if !records.is_empty() {
                out.push(
                    Finding::new(self.pattern(), self.category(), "medium", format!("thread {:x} has {} exception record(s) left on its stack", t.id, records.len()))
                        .threads(vec![t.id])
                        .evidence(records)
                        .recommend("An exception was raised and handled (or swallowed) earlier on this thread: .exr on the record's address and .cxr on the CONTEXT near it show where."),
                );
            }
        }
        out
    }
}
