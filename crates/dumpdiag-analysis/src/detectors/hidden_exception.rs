//! Hidden Exception: EXCEPTION_RECORDs left on a thread's stack by past dispatch — anywhere in
//! the committed stack, below the stack pointer too: when the kernel dispatches an exception to
//! user mode it builds the CONTEXT and the EXCEPTION_RECORD on the thread's stack for
//! KiUserExceptionDispatcher, and after a handler resumed execution (or the thread was moved
//! elsewhere) they stay there, below the new stack pointer, until overwritten. Each record is
//! shown with the address to give `.exr`, and the CONTEXT saved with it (its instruction
//! pointer is the record's address) with the address to give `.cxr`. The dump's own stored
//! exception is not hidden and is left out.

use crate::{silent, Detector, Evidence, Fact, Finding, Pattern, Strength};
use dumpdiag_os::codes;
use dumpdiag_target::MemoryExt;

pub struct HiddenException;

/// Exception codes worth finding: the hardware faults and the software exceptions a program
/// handles (C++, CLR), whose records are what an engineer looks for.
const CODES: &[u32] = &[
    codes::ACCESS_VIOLATION,
    codes::INT_DIVIDE_BY_ZERO,
    codes::FLT_DIVIDE_BY_ZERO,
    codes::STACK_OVERFLOW,
    codes::STACK_BUFFER_OVERRUN,
    codes::HEAP_CORRUPTION,
    codes::CPP_EXCEPTION,
    codes::CLR_EXCEPTION,
    codes::ILLEGAL_INSTRUCTION,
    codes::PRIV_INSTRUCTION,
    codes::IN_PAGE_ERROR,
];
/// EXCEPTION_MAXIMUM_PARAMETERS (winnt.h).
const MAX_PARAMETERS: u32 = 15;
/// Most of a stack read (the default reserve is 1 MiB; large reserves are capped).
const MAX_STACK: u64 = 4 << 20;
/// How far from a record its CONTEXT is looked for (x64's KiUserExceptionDispatcher frame puts
/// the CONTEXT 0x4f0 bytes below the record; x86's right after it).
const CONTEXT_WINDOW: u64 = 0x800;
/// CONTEXT layouts (winnt.h): (ContextFlags offset, its machine bits (CONTEXT_AMD64, CONTEXT_i386;
/// the bits above them flag exception and service activity), the
/// instruction pointer's offset and size).
const X64_CONTEXT: (u64, u32, u64, u64) = (0x30, 0x0010_0000, 0xf8, 8);
const X86_CONTEXT: (u64, u32, u64, u64) = (0x00, 0x0001_0000, 0xb8, 4);

/// The CONTEXT saved with a record at `record` whose exception happened at `address`.
fn context_near(ev: &Evidence, record: u64, address: u64, ptr: u64) -> Option<u64> {
    let (flags_at, machine, ip_at, ip_size) = if ptr == 8 { X64_CONTEXT } else { X86_CONTEXT };
    let mem = ev.target().memory();
    let low = record.saturating_sub(CONTEXT_WINDOW);
    let high = record.saturating_add(CONTEXT_WINDOW);
    let mut at = low & !0xf;
    while at < high {
        let flags = mem.read_u32(at.wrapping_add(flags_at));
        let ip = mem.read_ptr(at.wrapping_add(ip_at), ip_size);
        if flags.is_some_and(|f| f & 0x00ff_0000 == machine) && ip == Some(address) {
            return Some(at);
        }
        at += if ptr == 8 { 16 } else { 4 };
    }
    None
}

impl Detector for HiddenException {
    fn pattern(&self) -> Pattern {
        Pattern::HiddenException
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        // A copy of the stored exception is not hidden, wherever it lies.
        let stored = ev
            .exception
            .as_ref()
            .map(|e| (e.record.code, e.record.address));
        let mem = ev.target().memory();
        let mut out = Vec::new();
        for t in &ev.threads {
            let Some(sp) = t.sp() else { continue };
            let view = dumpdiag_os::view::ProcessView::new(ev.target(), t.view);
            let bounds = dumpdiag_stack::thread_bounds(&view, t.index, sp);
            let low = bounds.low.max(bounds.high.saturating_sub(MAX_STACK));
            let bytes = mem.read_bytes(low, bounds.high.saturating_sub(low) as usize);
            let p = t.ptr() as usize;
            let word = |at: usize| -> u64 {
                match bytes.get(at..at + p) {
                    Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]) as u64,
                    Some(b) => u64::from_le_bytes(b.try_into().unwrap_or([0; 8])),
                    None => 0,
                }
            };
            let dword = |at: usize| word_u32(&bytes, at);
            // An exception this thread is dispatching right now has its record in the live part
            // of the stack, under KiUserExceptionDispatcher's frame: it is current (Multiple
            // Exceptions' or the stored one), not hidden.
            let live: Vec<u64> = t
                .frames
                .windows(2)
                .filter(|w| {
                    w[0].short_name()
                        .is_some_and(|n| n.starts_with("KiUserExceptionDispatch"))
                })
                .map(|w| w[1].ip)
                .collect();
            let mut records: Vec<Fact> = Vec::new();
            let mut seen = Vec::new();
            // EXCEPTION_RECORD (winnt.h): ExceptionCode, ExceptionFlags, ExceptionRecord
            // (pointer), ExceptionAddress (pointer), NumberParameters, then the parameters.
            let mut o = 0usize;
            while o + 8 + 2 * p + 4 <= bytes.len() {
                let code = dword(o);
                if CODES.contains(&code) && dword(o + 4) <= 1 {
                    let address = word(o + 8 + p);
                    let nparams = dword(o + 8 + 2 * p);
                    // A plausible record: its address is code of a loaded module and its
                    // parameter count a real one.
                    let record_at = low + o as u64;
                    let current = record_at >= sp && live.contains(&address);
                    if nparams <= MAX_PARAMETERS
                        && ev.target().module_at(address).is_some()
                        && stored != Some((code, address))
                        && !current
                        && !seen.contains(&(code, address))
                    {
                        seen.push((code, address));
                        records.push(Fact::Exception {
                            record_at: Some(record_at),
                            context_at: context_near(ev, record_at, address, t.ptr()),
                            code,
                            address,
                            location: ev.describe(address),
                        });
                    }
                }
                o += 4;
            }
            if records.is_empty() {
                continue;
            }
            // Record-shaped bytes with a real code, flags, a code address and a parameter
            // count are rarely anything else; the CONTEXT beside one confirms the dispatch.
            let confirmed = records.iter().any(|f| {
                matches!(
                    f,
                    Fact::Exception {
                        context_at: Some(_),
                        ..
                    }
                )
            });
            out.push(
                Finding::new(
                    self.pattern(),
                    if confirmed {
                        Strength::Proven
                    } else {
                        Strength::Likely
                    },
                    format!(
                        "thread {:x} has {} exception record(s) left on its stack",
                        t.id,
                        records.len()
                    ),
                )
                .threads(vec![t.id])
                .facts(records)
                .recommend(
                    "An exception was raised and handled (or swallowed) earlier on this thread: \
                     .exr on the record's address and .cxr on its CONTEXT show where it \
                     happened; look for the handler that let it pass.",
                ),
            );
        }
        if out.is_empty() {
            silent!("no exception record on any stack but the stored one");
        }
        out
    }
}

fn word_u32(bytes: &[u8], at: usize) -> u32 {
    bytes
        .get(at..at + 4)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap_or([0; 4])))
        .unwrap_or(0)
}
