//! Facts about threads that several thread detectors share: which thread is the main one, where
//! a thread started, whether it sits in a kernel wait or writes the dump. The function lists
//! these rest on are Windows facts, kept once in `dumpdiag_os::known`.

use dumpdiag_os::known;

use crate::evidence::{Evidence, FrameView, ThreadView};

/// The first thread of the process and how it was recognised.
pub struct MainThread<'a> {
    pub thread: &'a ThreadView,
    pub how: String,
}

/// The process's first thread: the earliest creation time when the dump records thread times,
/// else the thread running the image's `main`/`WinMain` or its CRT startup.
pub fn main_thread<'a>(ev: &'a Evidence) -> Option<MainThread<'a>> {
    fn runs_main<'t>(ev: &Evidence, t: &'t ThreadView) -> Option<&'t FrameView> {
        t.frames.iter().find(|f| {
            f.module.as_deref().is_some_and(|m| ev.is_main_image(m))
                && f.is_one_of(known::MAIN_ENTRY_FUNCTIONS)
        })
    }
    let by_time = ev
        .threads
        .iter()
        .filter(|t| t.times.as_ref().is_some_and(|x| x.create_time != 0))
        .min_by_key(|t| t.times.as_ref().map(|x| x.create_time));
    if let Some(t) = by_time {
        let also = runs_main(ev, t).map(|f| format!(" and runs {}", f.call_site()));
        let how = format!("earliest creation time{}", also.unwrap_or_default());
        return Some(MainThread { thread: t, how });
    }
    ev.threads.iter().find_map(|t| {
        runs_main(ev, t).map(|f| MainThread {
            thread: t,
            how: format!("runs {}", f.call_site()),
        })
    })
}

/// The code the thread was created to run: the frame the thread-start thunks called, or the
/// Win32 start address the dump records. Frames found by scanning do not count: a stale return
/// address into a start thunk says nothing about this thread's start.
pub fn thread_procedure(ev: &Evidence, t: &ThreadView) -> Option<ThreadProcedure> {
    let walked = t
        .frames
        .iter()
        .take_while(|f| f.trust != dumpdiag_stack::Trust::Scan)
        .count();
    if let Some(i) = t.frames[..walked]
        .iter()
        .position(|f| f.is_one_of(known::THREAD_START_THUNKS))
    {
        if i > 0 {
            let f = &t.frames[i - 1];
            return Some(ThreadProcedure {
                address: f.ip,
                module: f.module.clone(),
                name: f.call_site(),
            });
        }
    }
    let start = t
        .times
        .as_ref()
        .map(|x| x.start_address)
        .filter(|a| *a != 0)?;
    let module = ev.target().module_at(start).map(|m| m.short_name());
    Some(ThreadProcedure {
        address: start,
        module,
        name: ev.describe(start),
    })
}

pub struct ThreadProcedure {
    pub address: u64,
    pub module: Option<String>,
    pub name: String,
}

/// Where a thread's top frame is: inside a system call (a wait, a sleep, a message wait),
/// running ordinary code, or unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopFrame {
    SystemCall,
    Running,
    Unknown,
}

/// The thread's top frame is an `Nt`/`Zw` stub of ntdll or win32u by name, or — without a
/// symbol — its instruction pointer sits right after a `syscall`, `sysenter` or `int 2e` (the
/// instructions Windows' system-call stubs enter the kernel with; the saved user context of a
/// thread in the kernel points just past it).
pub fn top_frame_state(ev: &Evidence, t: &ThreadView) -> TopFrame {
    let Some(top) = t.frames.first() else {
        return TopFrame::Unknown;
    };
    if let Some(function) = top.short_name() {
        let module = top.module.as_deref().unwrap_or("").to_ascii_lowercase();
        let rest = function
            .strip_prefix("Nt")
            .or_else(|| function.strip_prefix("Zw"));
        let stub = rest.is_some_and(|r| r.starts_with(|c: char| c.is_ascii_uppercase()));
        if stub && (module == "ntdll" || module == "win32u") {
            return TopFrame::SystemCall;
        }
        // A named function is running code unless its IP shows it is inside a system call.
        return if after_trap_instruction(ev, top.ip) == Some(true) {
            TopFrame::SystemCall
        } else {
            TopFrame::Running
        };
    }
    match after_trap_instruction(ev, top.ip) {
        Some(true) => TopFrame::SystemCall,
        Some(false) => TopFrame::Running,
        None => TopFrame::Unknown,
    }
}

/// Are the two bytes before `ip` a system-call instruction? None when they are not in the dump.
fn after_trap_instruction(ev: &Evidence, ip: u64) -> Option<bool> {
    let mut b = [0u8; 2];
    (ev.target().memory().read(ip.checked_sub(2)?, &mut b) == 2)
        .then_some(matches!(b, [0x0f, 0x05] | [0x0f, 0x34] | [0xcd, 0x2e]))
}

/// The top frame when the thread is inside a system call.
pub fn in_system_call<'t>(ev: &Evidence, t: &'t ThreadView) -> Option<&'t FrameView> {
    t.frames
        .first()
        .filter(|_| top_frame_state(ev, t) == TopFrame::SystemCall)
}

/// The thread writes the dump (the dump writer's frames or modules on its stack) or was injected
/// by the dumping tool (a debugger's break-in): it shows the dumper, not the application.
pub fn is_dump_writer(t: &ThreadView) -> bool {
    t.borrowed_context
        || t.debugger_break
        || t.frames.iter().any(|f| {
            f.is_one_of(known::DUMP_WRITER_FUNCTIONS) || f.is_one_of(known::BREAK_IN_FUNCTIONS)
        })
}

/// The thread belongs to the dump writer by its modules too (dbghelp/dbgcore on the stack), or
/// has no stack at all because the writer recorded none for itself (Wine's writer).
pub fn is_dump_writer_thread(ev: &Evidence, t: &ThreadView) -> bool {
    is_dump_writer(t)
        || (ev.wine && t.frames.is_empty())
        || t.frames.iter().any(|f| {
            f.module.as_deref().is_some_and(|m| {
                known::DUMP_WRITER_MODULES.contains(&m.to_ascii_lowercase().as_str())
            })
        })
}

/// The first application frame of the part of the walk found before any scanning: the code that
/// made the thread's current call. (A scanned frame may be a stale value, and so may the frames
/// unwound from it.)
pub fn application_caller<'t>(ev: &Evidence, t: &'t ThreadView) -> Option<&'t FrameView> {
    t.frames
        .iter()
        .take_while(|f| f.trust != dumpdiag_stack::Trust::Scan)
        .find(|f| f.module.as_deref().is_some_and(|m| ev.is_app_module(m)))
}
