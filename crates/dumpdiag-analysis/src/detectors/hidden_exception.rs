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
            // Windows reserves a stack from DeallocationStack but commits it only from the
            // guard page below StackLimit up, and a dump holds committed memory only: a read
            // from the reservation's base returns nothing, so it starts where the captured stack
            // does.
            let low = captured_from(ev, sp).max(low);
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

/// The lowest address from which the dump holds memory without a hole up to `sp` (the captured
/// ranges touching one another down from the one holding it); `sp` itself when it is not
/// captured.
fn captured_from(ev: &Evidence, sp: u64) -> u64 {
    let ranges = ev.target().captured_ranges();
    let holds = |a: u64| {
        ranges
            .iter()
            .find(|&&(b, s)| a >= b && a < b.saturating_add(s))
            .map(|&(b, _)| b)
    };
    let mut from = sp;
    while let Some(b) = from.checked_sub(1).and_then(holds) {
        from = b;
    }
    from
}

fn word_u32(bytes: &[u8], at: usize) -> u32 {
    bytes
        .get(at..at + 4)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap_or([0; 4])))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{Analysed, Bitness, Waits};
    use crate::Confidence;
    use dumpdiag_synth::{Exception, Function, Registers};
    use dumpdiag_target::ExceptionRecord;

    const ACCESS_VIOLATION: u32 = 0xc000_0005;

    fn record(code: u32, address: u64, parameters: Vec<u64>) -> ExceptionRecord {
        ExceptionRecord {
            code,
            flags: 0,
            nested_record: 0,
            address,
            parameters,
        }
    }

    /// A CONTEXT of the process's machine whose instruction pointer is `ip`.
    fn context(w: &Waits, ip: u64) -> Vec<u8> {
        let mut r = Registers::default();
        r.set(if w.ptr() == 8 { "rip" } else { "eip" }, ip);
        w.p.context_bytes(&r)
    }

    /// The end of an exception fact's text: where `.exr` and `.cxr` find the record and its
    /// CONTEXT.
    fn exr_cxr(record_at: u64, context_at: u64) -> String {
        format!(
            "; EXCEPTION_RECORD at {record_at:#x} (.exr {record_at:#x}); CONTEXT at \
             {context_at:#x} (.cxr {context_at:#x})"
        )
    }

    #[test]
    fn a_record_and_its_context_below_the_stack_pointer_are_a_hidden_exception() {
        for b in [Bitness::X64, Bitness::X86] {
            let mut w = Waits::new(b);
            let parse = w.function("parse_block");
            // What the kernel left for KiUserExceptionDispatcher before a handler resumed the
            // thread: the EXCEPTION_RECORD, the CONTEXT below it (x64's dispatcher frame
            // layout), the context's instruction pointer the faulting one.
            let av =
                w.p.exception_record_bytes(&record(ACCESS_VIOLATION, parse.body(), vec![0, 0x18]));
            let ctx = context(&w, parse.body());
            let t = w.sleep(0x100, "retry_loop");
            let record_at = t.below_sp(&av);
            let context_at = t.below_sp(&ctx);
            let found = Analysed::exports_only(w.p).detect(&HiddenException);
            assert_eq!(found.len(), 1, "{b:?}: {found:#?}");
            let f = &found[0];
            assert_eq!(
                f.summary,
                "thread 100 has 1 exception record(s) left on its stack"
            );
            assert_eq!(f.threads, [0x100]);
            let text = f.evidence().remove(0);
            assert!(
                text.starts_with(&format!(
                    "exception c0000005 at {:#x} (service!parse_block",
                    parse.body()
                )),
                "{b:?}: {text}"
            );
            assert!(
                text.ends_with(&exr_cxr(record_at, context_at)),
                "{b:?}: {text}"
            );
            // The CONTEXT beside the record confirms the dispatch.
            assert_eq!(f.confidence(), Confidence::High);
        }
    }

    #[test]
    fn a_record_without_its_context_is_likely_only() {
        // A C++ exception's record (e06d7363, four parameters on x64, three on x86) left on
        // the stack of a thread of a crash dump, not the faulting one.
        for b in [Bitness::X64, Bitness::X86] {
            let mut w = Waits::new(b);
            let throw = w.function("load_settings");
            let params = if w.ptr() == 8 {
                vec![0x1993_0520, 0x1000, 0x2000, 0x7ff6_1000_0000]
            } else {
                vec![0x1993_0520, 0x1000, 0x2000]
            };
            let cpp =
                w.p.exception_record_bytes(&record(0xe06d_7363, throw.at(0x20), params));
            let record_at = w.sleep(0x100, "retry_loop").below_sp(&cpp);
            w.crash(0x900, "parse_reply");
            let found = Analysed::exports_only(w.p).detect(&HiddenException);
            assert_eq!(found.len(), 1, "{b:?}: {found:#?}");
            assert_eq!(found[0].threads, [0x100]);
            assert!(found[0].evidence()[0].ends_with(&format!(
                "; EXCEPTION_RECORD at {record_at:#x} (.exr {record_at:#x})"
            )));
            assert_eq!(found[0].confidence(), Confidence::Medium);
        }
    }

    #[test]
    fn a_context_of_another_instruction_is_not_the_records() {
        // A CONTEXT beside the record whose instruction pointer is elsewhere (one that
        // RtlCaptureContext saved, say) is not the one saved with it: no .cxr is offered.
        for b in [Bitness::X64, Bitness::X86] {
            let mut w = Waits::new(b);
            let parse = w.function("parse_block");
            let av =
                w.p.exception_record_bytes(&record(ACCESS_VIOLATION, parse.body(), vec![0, 0x18]));
            let ctx = context(&w, parse.call_site(1));
            let t = w.sleep(0x100, "retry_loop");
            let record_at = t.below_sp(&av);
            t.below_sp(&ctx);
            let found = Analysed::exports_only(w.p).detect(&HiddenException);
            assert_eq!(found.len(), 1, "{b:?}: {found:#?}");
            assert!(found[0].evidence()[0].ends_with(&format!("(.exr {record_at:#x})")));
            assert_eq!(found[0].confidence(), Confidence::Medium, "{b:?}");
        }
    }

    #[test]
    fn the_stored_exceptions_own_record_is_not_hidden() {
        for b in [Bitness::X64, Bitness::X86] {
            let mut w = Waits::new(b);
            let parse = w.function("parse_block");
            let av =
                w.p.exception_record_bytes(&record(ACCESS_VIOLATION, parse.body(), vec![0, 0x18]));
            let ctx = context(&w, parse.body());
            let t = w.run(0x100, "parse_block");
            t.below_sp(&av);
            t.below_sp(&ctx);
            let mut e = Exception::new(0x100, ACCESS_VIOLATION);
            e.parameters = vec![0, 0x18];
            w.p.exception(e);
            let found = Analysed::exports_only(w.p).detect(&HiddenException);
            assert!(found.is_empty(), "{b:?}: {found:#?}");
        }
    }

    #[test]
    fn the_record_a_thread_is_dispatching_now_is_not_hidden() {
        // Thread 0x100 is inside KiUserExceptionDispatcher → RtlDispatchException for a fault
        // in parse_block: the record and CONTEXT lie in the dispatcher's frame, in the live
        // stack, and the record's address is where the walk leaves the dispatcher.
        for b in [Bitness::X64, Bitness::X86] {
            let mut w = Waits::new(b);
            let ntdll = w.ntdll;
            let dispatch = w.p.function(ntdll, "RtlDispatchException", 0x80);
            let dispatcher = w.p.add_function(
                ntdll,
                Function::new("KiUserExceptionDispatcher", 0x80).locals(0x600),
            );
            let parse = w.function("parse_block");
            let faulted_at = parse.call_site(0);
            let av =
                w.p.exception_record_bytes(&record(ACCESS_VIOLATION, faulted_at, vec![0, 0x18]));
            let ctx = context(&w, faulted_at);
            let chain = w.chain(&[dispatch, dispatcher], "parse_block");
            let t = w.p.thread(0x100, chain);
            t.local(1, 0, &ctx);
            t.local(1, 0x4f0, &av);
            let a = Analysed::exports_only(w.p);
            let names: Vec<String> = a.evidence().threads[0]
                .frames
                .iter()
                .map(|f| f.call_site())
                .collect();
            assert_eq!(
                names[1..3],
                ["ntdll!KiUserExceptionDispatcher", "service!parse_block"]
            );
            let found = a.detect(&HiddenException);
            assert!(found.is_empty(), "{b:?}: {found:#?}");
        }
    }
}
