//! One detector per pattern. Each file names the pattern it finds.

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

use crate::Detector;

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
pub fn implemented() -> Vec<&'static str> {
    all().iter().map(|d| d.pattern()).collect()
}

/// Access-violation facts: (access kind 0 read / 1 write / 8 execute, target address).
pub(crate) fn access_violation(ev: &crate::Evidence) -> Option<(u64, u64)> {
    let e = ev.exception.as_ref()?;
    (e.record.code == 0xc0000005 && e.record.parameters.len() >= 2)
        .then(|| (e.record.parameters[0], e.record.parameters[1]))
}

/// The first frames of the faulting thread as `module!function` lines.
pub(crate) fn top_frames(ev: &crate::Evidence, n: usize) -> Vec<String> {
    ev.exception_frames
        .iter()
        .take(n)
        .map(|f| f.call_site())
        .collect()
}

pub(crate) fn exception_thread(ev: &crate::Evidence) -> Vec<u32> {
    ev.exception
        .as_ref()
        .map(|e| vec![e.thread_id])
        .unwrap_or_default()
}

/// The highest user-space address of the NULL page range the catalog counts as "NULL".
pub(crate) const NULL_PAGE_END: u64 = 0x10000;

/// Was the dump taken on purpose: no exception stream, or only the breakpoint a dumping tool
/// injects (DbgUiRemoteBreakin / DbgBreakPoint on its own thread)? Waits are hang evidence only
/// then: in a crash dump every other thread was simply stopped by the crash.
pub(crate) fn taken_on_purpose(ev: &crate::Evidence) -> bool {
    match &ev.exception {
        None => true,
        Some(e) => {
            e.record.code == 0x80000003
                && ev.exception_frames.iter().any(|f| {
                    f.function.as_deref().is_some_and(|n| {
                        n.contains("DbgUiRemoteBreakin") || n.contains("DbgBreakPoint")
                    })
                })
        }
    }
}

/// `thread X waits for ...`.
pub(crate) fn wait_line(w: &crate::waits::Wait) -> String {
    format!("thread {:x} waits for {}", w.thread, w.object.describe())
}

pub(crate) fn is_cs(w: &crate::waits::Wait) -> bool {
    matches!(w.object, crate::waits::WaitObject::CriticalSection(_))
}

/// Every wait cycle with the waits that make it up, in its order, and whether all of them are
/// critical sections (the two deadlock detectors split the cycles on that).
pub(crate) fn wait_cycles<'e>(
    ev: &'e crate::Evidence,
) -> Vec<(Vec<u32>, Vec<&'e crate::waits::Wait>, bool)> {
    let all = ev.waits();
    crate::waits::cycles(all)
        .into_iter()
        .map(|cycle| {
            let ws: Vec<&crate::waits::Wait> = cycle
                .iter()
                .filter_map(|t| all.iter().find(|w| w.thread == *t && w.blocker.is_some()))
                .collect();
            let only_cs = ws.iter().all(|w| is_cs(w));
            (cycle, ws, only_cs)
        })
        .collect()
}

/// The PEB of the process's own bitness (the 32-bit one under WOW64).
pub(crate) fn process_peb(
    ev: &crate::Evidence,
) -> Option<(dumpdiag_os::peb::Peb, dumpdiag_os::layout::Layout)> {
    let native = dumpdiag_os::layout::Layout::for_pointer_size(ev.target().facts().pointer_size());
    let mem = ev.target().memory();
    let teb = ev.target().threads().first()?.teb;
    let (teb, l) = if ev.session.is_wow64() {
        (
            dumpdiag_os::wow64::teb32_of(mem, teb)?,
            dumpdiag_os::layout::X86,
        )
    } else {
        (teb, native)
    };
    let peb_addr = dumpdiag_target::MemoryExt::read_ptr(mem, teb.wrapping_add(l.teb_peb), l.ptr)?;
    Some((dumpdiag_os::peb::read_peb(mem, peb_addr, &l)?, l))
}

/// The checks of every thread's stack; the faulting thread's stack is the one walked from the
/// exception context, and a walk cut by the frame limit is not a walking error.
pub(crate) fn stack_checks(ev: &crate::Evidence) -> Vec<(u32, Vec<dumpdiag_stack::StackIssue>)> {
    ev.threads
        .iter()
        .filter_map(|t| {
            let faulting = ev.exception.as_ref().is_some_and(|e| e.thread_id == t.id);
            let stack = if faulting {
                ev.exception_stack.as_ref()?
            } else {
                t.stack.as_ref()?
            };
            let notes = dumpdiag_engine::cmd_stacks::stack_checks(ev.session, t.index, stack)
                .into_iter()
                .filter(|w| w.kind() != dumpdiag_stack::checks::IssueKind::Note)
                .collect();
            Some((t.id, notes))
        })
        .collect()
}
