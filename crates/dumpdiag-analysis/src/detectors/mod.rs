//! One detector per pattern, one file each, named after the pattern it finds; adding a detector
//! is its file, its line in [`all`] and its row in the pattern table (`crate::pattern`).

mod active_space;
mod active_thread;
mod blocked_thread;
mod clr_thread;
mod coincidental_symbolic_information;
mod cpp_exception;
mod deadlock_critical_sections;
mod deadlock_mixed;
mod divide_by_zero;
mod double_free;
mod embedded_comments;
mod environment_hint;
mod exception_stack_trace;
mod execution_residue;
mod handle_leak;
mod heap_corruption;
mod hidden_exception;
mod incorrect_stack_trace;
mod instrumentation_information;
mod invalid_pointer;
mod jit_code;
mod local_buffer_overflow;
mod main_thread;
mod managed_code_exception;
mod manual_dump;
mod memory_leak_process_heap;
mod message_box;
mod multiple_exceptions;
mod not_my_thread;
mod not_my_version;
mod null_pointer_code;
mod null_pointer_data;
mod passive_thread;
mod spiking_thread;
mod stack_overflow;
mod stack_trace_collection;
mod stored_exception;
mod thread_age;
mod truncated_stack_trace;
mod unknown_component;
mod virtualized_process;
mod wait_chain_critical_sections;
mod wait_chain_general;
mod wild_code;

use dumpdiag_os::codes::{self, AccessKind};
use dumpdiag_os::layout::Layout;
use dumpdiag_os::{known, peb};
use dumpdiag_stack::StackIssue;

use crate::waits::Wait;
use crate::{Detector, Fact, Pattern};

pub fn all() -> Vec<Box<dyn Detector>> {
    vec![
        Box::new(exception_stack_trace::ExceptionStackTrace),
        Box::new(stored_exception::StoredException),
        Box::new(null_pointer_data::NullPointerData),
        Box::new(null_pointer_code::NullPointerCode),
        Box::new(invalid_pointer::InvalidPointer),
        Box::new(wild_code::WildCode),
        Box::new(divide_by_zero::DivideByZero),
        Box::new(cpp_exception::CppException),
        Box::new(stack_overflow::StackOverflow),
        Box::new(local_buffer_overflow::LocalBufferOverflow),
        Box::new(manual_dump::ManualDump),
        Box::new(embedded_comments::EmbeddedComments),
        Box::new(handle_leak::HandleLeak),
        Box::new(memory_leak_process_heap::MemoryLeakProcessHeap),
        Box::new(spiking_thread::SpikingThread),
        Box::new(deadlock_critical_sections::DeadlockCriticalSections),
        Box::new(deadlock_mixed::DeadlockMixed),
        Box::new(wait_chain_critical_sections::WaitChainCriticalSections),
        Box::new(wait_chain_general::WaitChainGeneral),
        Box::new(blocked_thread::BlockedThread),
        Box::new(multiple_exceptions::MultipleExceptions),
        Box::new(message_box::MessageBox),
        Box::new(heap_corruption::HeapCorruption),
        Box::new(double_free::DoubleFree),
        Box::new(hidden_exception::HiddenException),
        Box::new(execution_residue::ExecutionResidue),
        Box::new(coincidental_symbolic_information::CoincidentalSymbolicInformation),
        Box::new(virtualized_process::VirtualizedProcess),
        Box::new(instrumentation_information::InstrumentationInformation),
        Box::new(environment_hint::EnvironmentHint),
        Box::new(passive_thread::PassiveThread),
        Box::new(incorrect_stack_trace::IncorrectStackTrace),
        Box::new(truncated_stack_trace::TruncatedStackTrace),
        Box::new(stack_trace_collection::StackTraceCollection),
        Box::new(main_thread::MainThread),
        Box::new(active_thread::ActiveThread),
        Box::new(thread_age::ThreadAge),
        Box::new(not_my_thread::NotMyThread),
        Box::new(unknown_component::UnknownComponent),
        Box::new(not_my_version::NotMyVersion),
        Box::new(managed_code_exception::ManagedCodeException),
        Box::new(clr_thread::ClrThread),
        Box::new(jit_code::JitCode),
        Box::new(active_space::ActiveSpace),
    ]
}

/// The patterns these detectors can report (for tests and documentation).
pub fn implemented() -> Vec<Pattern> {
    all().iter().map(|d| d.pattern()).collect()
}

/// Access-violation facts: (what was tried, the address it was tried at).
pub(crate) fn access_violation(ev: &crate::Evidence) -> Option<(AccessKind, u64)> {
    let e = ev.exception.as_ref()?;
    let p = &e.record.parameters;
    if e.record.code != codes::ACCESS_VIOLATION || p.len() < 2 {
        return None;
    }
    Some((AccessKind::from_parameter(p[0])?, p[1]))
}

/// The first frames of the faulting thread as facts.
pub(crate) fn top_frames(ev: &crate::Evidence, n: usize) -> Vec<Fact> {
    match &ev.exception {
        Some(e) => Fact::frames(e.thread_id, ev.exception_frames(), n),
        None => Vec::new(),
    }
}

pub(crate) fn exception_thread(ev: &crate::Evidence) -> Vec<u32> {
    ev.exception
        .as_ref()
        .map(|e| vec![e.thread_id])
        .unwrap_or_default()
}

/// The highest user-space address of the NULL page range the catalog counts as "NULL": Windows
/// reserves the first 64 KiB of every process (no allocation can be made there), so an access
/// below it is a NULL pointer plus a field offset.
pub(crate) const NULL_PAGE_END: u64 = 0x10000;

/// A debugger's own breakpoint recognised as the dump's exception.
pub struct DebuggerBreak {
    /// How it was recognised.
    pub how: String,
    /// Recognised by the instruction itself (an `int 3` byte in ntdll), not only by where it is.
    pub seen_instruction: bool,
}

/// Is the dump's exception a debugger's own breakpoint — the initial breakpoint of a process
/// started under a debugger, or the break-in a debugger injects to attach (what WinDbg and cdb
/// record when `.dump` is typed after attaching)? Such a breakpoint executes an `int 3` inside
/// ntdll on a thread that runs no application code. An assert, `__debugbreak()` or
/// `DebugBreak()` of the application itself has the application's frames on that thread and is
/// a real exception. Recognised by name where ntdll's exports or symbols name the frame, else by
/// its shape: the breakpoint address in ntdll, holding an `int 3` byte.
pub fn debugger_break(ev: &crate::Evidence) -> Option<DebuggerBreak> {
    let e = ev.exception.as_ref()?;
    if !matches!(e.record.code, codes::BREAKPOINT | codes::WX86_BREAKPOINT) {
        return None;
    }
    let frames = match ev.exception_frames() {
        [] => ev
            .faulting_thread()
            .map(|t| t.frames.as_slice())
            .unwrap_or(&[]),
        f => f,
    };
    // Frames found by scanning may be stale values: only the walked part speaks for the thread.
    let walked = frames
        .iter()
        .take_while(|f| f.trust != dumpdiag_stack::Trust::Scan);
    let mut walked = walked.peekable();
    if walked
        .clone()
        .any(|f| f.module.as_deref().is_some_and(|m| ev.is_app_module(m)))
    {
        return None;
    }
    if let Some(f) = walked
        .clone()
        .find(|f| f.is_one_of(known::DEBUGGER_BREAKPOINTS))
    {
        return Some(DebuggerBreak {
            how: format!("the breakpoint is the debugger's own ({})", f.call_site()),
            seen_instruction: true,
        });
    }
    walked.peek()?;
    let t = ev.target();
    let module = t.module_at(e.record.address)?;
    if !module.short_name().eq_ignore_ascii_case("ntdll") {
        return None;
    }
    const INT3: u8 = 0xcc;
    let byte = dumpdiag_target::MemoryExt::read_u8(t.memory(), e.record.address);
    if byte.is_some_and(|b| b != INT3) {
        return None;
    }
    Some(DebuggerBreak {
        how: format!(
            "the breakpoint at {:#x} is {} in ntdll on a thread that runs no application code",
            e.record.address,
            if byte.is_some() {
                "an int 3"
            } else {
                "an instruction the dump does not hold"
            }
        ),
        seen_instruction: byte.is_some(),
    })
}

/// Was the dump taken on purpose: no exception stream, or only a debugger's own breakpoint?
/// Waits are hang evidence only then: in a crash dump every other thread was simply stopped by
/// the crash.
pub fn taken_on_purpose(ev: &crate::Evidence) -> bool {
    ev.exception.is_none() || debugger_break(ev).is_some()
}

/// Every wait cycle with the waits that make it up, in its order, and whether all of them are
/// critical sections (the two deadlock detectors split the cycles on that).
pub(crate) fn wait_cycles<'e>(ev: &'e crate::Evidence) -> Vec<(Vec<u32>, Vec<&'e Wait>, bool)> {
    let all = ev.waits();
    crate::waits::cycles(all)
        .into_iter()
        .map(|cycle| {
            // Each thread's wait on the next thread of the cycle.
            let ws: Vec<&Wait> = cycle
                .iter()
                .zip(cycle.iter().cycle().skip(1))
                .filter_map(|(t, next)| {
                    all.iter()
                        .find(|w| w.thread == *t && w.blocker == Some(*next) && !w.any_of)
                })
                .collect();
            let only_cs = ws.iter().all(|w| w.object.is_critical_section());
            (cycle, ws, only_cs)
        })
        .collect()
}

/// The heap manager's own functions (ntdll's NT and segment heaps, kernelbase's wrappers).
const HEAP_FUNCTIONS: &[&str] = &[
    "RtlFreeHeap",
    "RtlAllocateHeap",
    "RtlReAllocateHeap",
    "RtlSizeHeap",
    "RtlpFreeHeap",
    "RtlpAllocateHeap",
    "RtlReportCriticalFailure",
    "RtlpHeapHandleError",
    "RtlpLogHeapFailure",
    "HeapFree",
    "HeapAlloc",
    "HeapReAlloc",
];

/// The faulting thread's frame inside the heap manager among its top frames, if any: an access
/// violation there means the heap followed its own metadata into bad memory — Windows' `!analyze`
/// buckets such faults as heap corruption (on 32-bit processes without termination on
/// corruption they are the usual symptom of it), not as the application's bad pointer.
pub(crate) fn heap_manager_frame<'e>(ev: &'e crate::Evidence) -> Option<&'e crate::FrameView> {
    ev.exception_frames().iter().take(6).find(|f| {
        f.short_name().is_some_and(|n| {
            HEAP_FUNCTIONS.contains(&n)
                || (n.starts_with("Rtlp") || n.starts_with("RtlpHp")) && n.contains("Heap")
        })
    })
}

/// The heap manager's failure record STATUS_HEAP_CORRUPTION points to (its parameter 0), read
/// in the faulting thread's bitness and validated by its size.
pub(crate) fn heap_failure(ev: &crate::Evidence) -> Option<dumpdiag_os::heaps::HeapFailure> {
    let e = ev.exception.as_ref()?;
    if e.record.code != codes::HEAP_CORRUPTION {
        return None;
    }
    let at = *e.record.parameters.first()?;
    let ptr = ev.faulting_thread().map(|t| t.ptr()).unwrap_or(8);
    let build = ev.target().facts().os_build;
    dumpdiag_os::heaps::heap_failure(ev.target().memory(), at, ptr, build)
}

/// The PEB of the process's own bitness (the 32-bit one under WOW64) and its layout.
pub(crate) fn process_peb(ev: &crate::Evidence) -> Option<(peb::Peb, Layout)> {
    let l = ev.process.layout();
    let addr = ev.process.peb_address()?;
    Some((peb::read_peb(ev.target().memory(), addr, &l)?, l))
}

/// The stack-trace issues of every thread's walk as the analysis reads it (the faulting thread
/// from the exception context), threads without issues left out.
pub(crate) fn stack_issues<'e>(ev: &'e crate::Evidence) -> Vec<(u32, &'e [StackIssue])> {
    ev.threads
        .iter()
        .map(|t| (t.id, ev.issues_of(t)))
        .filter(|(_, issues)| !issues.is_empty())
        .collect()
}
