//! Exception records on a thread's stack. When the kernel dispatches an exception to user mode it
//! builds the EXCEPTION_RECORD and the CONTEXT on the thread's stack for
//! KiUserExceptionDispatcher. While the dispatch runs they lie in the live stack under the
//! dispatcher's frame (the exception that thread is handling now, whether or not it is the one
//! the dump stored); after a handler resumed execution they stay below the new stack pointer
//! until overwritten (Hidden Exception). Found by shape, not by a fixed offset from the
//! dispatcher's frame: the offset differs between Windows versions and bitnesses, the shape
//! (winnt.h's EXCEPTION_RECORD, the CONTEXT whose instruction pointer is the record's address)
//! does not.

use dumpdiag_os::codes;
use dumpdiag_target::{ExceptionRecord, MemoryExt};

use crate::{Evidence, ThreadView};

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
/// CONTEXT layouts (winnt.h): (ContextFlags offset, its machine bits (CONTEXT_AMD64,
/// CONTEXT_i386; the bits above them flag exception and service activity), the instruction
/// pointer's offset and size).
const X64_CONTEXT: (u64, u32, u64, u64) = (0x30, 0x0010_0000, 0xf8, 8);
const X86_CONTEXT: (u64, u32, u64, u64) = (0x00, 0x0001_0000, 0xb8, 4);

/// An exception record found on a thread's stack.
#[derive(Debug, Clone)]
pub struct StackRecord {
    /// Where the EXCEPTION_RECORD lies (what `.exr` takes).
    pub record_at: u64,
    /// The CONTEXT saved with it (what `.cxr` takes), when found.
    pub context_at: Option<u64>,
    pub record: ExceptionRecord,
    /// The exception the thread is dispatching now: in the live stack, raised where the frame
    /// under KiUserExceptionDispatcher is.
    pub live: bool,
}

/// The frames directly under KiUserExceptionDispatcher: where each exception the thread is
/// dispatching now was raised.
pub fn dispatch_sites(t: &ThreadView) -> Vec<u64> {
    t.frames
        .windows(2)
        .filter(|w| {
            w[0].short_name()
                .is_some_and(|n| n.starts_with("KiUserExceptionDispatch"))
        })
        .map(|w| w[1].ip)
        .collect()
}

/// Every plausible exception record on thread `t`'s committed stack, each (code, address) once,
/// lowest address first.
pub fn stack_records(ev: &Evidence, t: &ThreadView) -> Vec<StackRecord> {
    let Some(sp) = t.sp() else {
        return Vec::new();
    };
    let mem = ev.target().memory();
    let view = dumpdiag_os::view::ProcessView::new(ev.target(), t.view);
    let bounds = dumpdiag_stack::thread_bounds(&view, t.index, sp);
    let low = bounds.low.max(bounds.high.saturating_sub(MAX_STACK));
    // Windows reserves a stack from DeallocationStack but commits it only from the guard page
    // below StackLimit up, and a dump holds committed memory only: a read from the
    // reservation's base returns nothing, so it starts where the captured stack does.
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
    let dword = |at: usize| -> u32 {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .unwrap_or(0)
    };
    let sites = dispatch_sites(t);
    let mut out: Vec<StackRecord> = Vec::new();
    // EXCEPTION_RECORD (winnt.h): ExceptionCode, ExceptionFlags, ExceptionRecord (pointer),
    // ExceptionAddress (pointer), NumberParameters, then the parameters (pointer-aligned).
    let mut o = 0usize;
    while o + 8 + 2 * p + 4 <= bytes.len() {
        let code = dword(o);
        if CODES.contains(&code) && dword(o + 4) <= 1 {
            let address = word(o + 8 + p);
            let nparams = dword(o + 8 + 2 * p);
            // A plausible record: its address is code of a loaded module and its parameter
            // count a real one.
            if nparams <= MAX_PARAMETERS
                && ev.target().module_at(address).is_some()
                && !out
                    .iter()
                    .any(|r| r.record.code == code && r.record.address == address)
            {
                let record_at = low + o as u64;
                let params_at = o + 8 + 2 * p + 4;
                let params_at = params_at.next_multiple_of(p);
                let parameters = (0..nparams as usize)
                    .map(|i| word(params_at + i * p))
                    .collect();
                out.push(StackRecord {
                    record_at,
                    context_at: context_near(ev, record_at, address, t.ptr()),
                    record: ExceptionRecord {
                        code,
                        flags: dword(o + 4),
                        nested_record: word(o + 8),
                        address,
                        parameters,
                    },
                    live: record_at >= sp && sites.contains(&address),
                });
            }
        }
        o += 4;
    }
    out
}

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
