//! One detector per pattern. Each file names the pattern it finds.

mod cpp_exception;
mod divide_by_zero;
mod embedded_comments;
mod exception_stack_trace;
mod handle_leak;
mod heap_corruption;
mod hidden_exception;
mod invalid_pointer;
mod local_buffer_overflow;
mod manual_dump;
mod message_box;
mod multiple_exceptions;
mod null_pointer;
mod passive_thread;
mod process_facts;
mod spiking_thread;
mod stack_overflow;
mod stack_trace_checks;
mod wait_chains;
mod wild_code;

use crate::Detector;

pub fn all() -> Vec<Box<dyn Detector>> {
    vec![
        Box::new(exception_stack_trace::ExceptionStackTrace),
        Box::new(exception_stack_trace::StoredException),
        Box::new(null_pointer::NullPointerData),
        Box::new(null_pointer::NullPointerCode),
        Box::new(invalid_pointer::InvalidPointer),
        Box::new(wild_code::WildCode),
        Box::new(divide_by_zero::DivideByZero),
        Box::new(cpp_exception::CppException),
        Box::new(stack_overflow::StackOverflow),
        Box::new(local_buffer_overflow::LocalBufferOverflow),
        Box::new(manual_dump::ManualDump),
        Box::new(embedded_comments::EmbeddedComments),
        Box::new(handle_leak::HandleLeak),
        Box::new(spiking_thread::SpikingThread),
        Box::new(wait_chains::DeadlockCriticalSections),
        Box::new(wait_chains::DeadlockMixed),
        Box::new(wait_chains::WaitChainCriticalSections),
        Box::new(wait_chains::WaitChainGeneral),
        Box::new(wait_chains::BlockedThread),
        Box::new(multiple_exceptions::MultipleExceptions),
        Box::new(message_box::MessageBox),
        Box::new(heap_corruption::HeapCorruption),
        Box::new(hidden_exception::HiddenException),
        Box::new(process_facts::VirtualizedProcess),
        Box::new(process_facts::InstrumentationInformation),
        Box::new(process_facts::EnvironmentHint),
        Box::new(passive_thread::PassiveThread),
        Box::new(stack_trace_checks::IncorrectStackTrace),
        Box::new(stack_trace_checks::TruncatedStackTrace),
    ]
}

/// The patterns these detectors can report (for tests and documentation).
pub fn implemented() -> Vec<&'static str> {
    all().iter().map(|d| d.pattern()).collect()
}

/// Access-violation facts: (access kind 0 read / 1 write / 8 execute, target address).
pub(crate) fn access_violation(ev: &crate::Evidence) -> Option<(u64, u64)> {
    let e = ev.exception.as_ref()?;
    (e.record.code == 0xc0000005 && e.record.parameters.len() >= 2).then(|| (e.record.parameters[0], e.record.parameters[1]))
}

/// The first frames of the faulting thread as `module!function` lines.
pub(crate) fn top_frames(ev: &crate::Evidence, n: usize) -> Vec<String> {
    ev.exception_frames.iter().take(n).map(|f| f.call_site()).collect()
}

pub(crate) fn exception_thread(ev: &crate::Evidence) -> Vec<u32> {
    ev.exception.as_ref().map(|e| vec![e.thread_id]).unwrap_or_default()
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
                && ev.exception_frames.iter().any(|f| f.function.as_deref().is_some_and(|n| n.contains("DbgUiRemoteBreakin") || n.contains("DbgBreakPoint")))
        }
    }
}
