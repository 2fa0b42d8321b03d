//! Facts about Windows user mode that several stages rely on, decided once: which functions
//! start and end every thread, which ones wait, which ones belong to a dump writer or a
//! debugger's break-in, which folders hold the system's own files. The stack walker, the
//! command engine and the analysis all ask here, so they never disagree.
//!
//! Function names are compared without module and without argument lists (`short_function`),
//! and with the leading underscores x86 decoration adds removed.

/// The outermost frames of every thread: a walk that reaches one of them is complete.
/// `RtlUserThreadStart` (Vista and later; `_RtlUserThreadStart` / `__RtlUserThreadStart` in
/// x86 decoration) calls `BaseThreadInitThunk`, which calls the thread's start address; XP and
/// 2003 started threads in kernel32's `BaseProcessStart` / `BaseThreadStart` instead.
pub const OUTERMOST_FRAMES: &[&str] =
    &["RtlUserThreadStart", "BaseProcessStart", "BaseThreadStart"];

/// The system's thread-start thunks: the frame below them is the thread's own start routine.
/// `BaseThreadInitThunk` is kernel32's (Vista+); the outermost frames count too, for threads
/// whose start thunk was inlined or is absent from the walk.
pub const THREAD_START_THUNKS: &[&str] = &[
    "BaseThreadInitThunk",
    "RtlUserThreadStart",
    "BaseProcessStart",
    "BaseThreadStart",
];

/// Entry points only the process's first thread runs (the image's `main`/`WinMain` and the CRT
/// startup that calls it).
pub const MAIN_ENTRY_FUNCTIONS: &[&str] = &[
    "main",
    "wmain",
    "WinMain",
    "wWinMain",
    "mainCRTStartup",
    "wmainCRTStartup",
    "WinMainCRTStartup",
    "wWinMainCRTStartup",
];

/// What a system-call stub a thread sits in waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitKind {
    /// `NtWaitForSingleObject`: one handle, the first argument.
    SingleObject,
    /// `NtWaitForMultipleObjects(Count, Handles, WaitType, Alertable, Timeout)`.
    MultipleObjects,
    /// `NtSignalAndWaitForSingleObject(SignalHandle, WaitHandle, Alertable, Timeout)`.
    SignalAndWait,
    /// `NtWaitForAlertByThreadId` (Windows 8+ critical sections, SRW locks, condition
    /// variables, WaitOnAddress).
    AlertByThreadId,
    /// `NtWaitForKeyedEvent` (critical sections and SRW locks before Windows 8).
    KeyedEvent,
    /// `NtDelayExecution`: Sleep.
    Delay,
    /// `NtRemoveIoCompletion[Ex]`: an I/O completion port (thread pools, RPC).
    IoCompletion,
    /// `NtWaitForWorkViaWorkerFactory`: an idle worker of the system thread pool.
    WorkerFactory,
    /// `NtUserGetMessage`, `NtUserWaitMessage`, `NtUserMsgWaitForMultipleObjectsEx`: a message
    /// loop.
    Message,
    /// `NtReplyWaitReceivePort[Ex]`, `NtAlpcSendWaitReceivePort`: LPC/ALPC (RPC servers, COM).
    Alpc,
}

/// The kernel wait stubs of ntdll and win32u and what each waits for. `Zw` spellings are the
/// same entry points.
const WAIT_STUBS: &[(&str, WaitKind)] = &[
    ("WaitForSingleObject", WaitKind::SingleObject),
    ("WaitForMultipleObjects", WaitKind::MultipleObjects),
    ("WaitForMultipleObjects32", WaitKind::MultipleObjects),
    ("WaitForAlertByThreadId", WaitKind::AlertByThreadId),
    ("WaitForKeyedEvent", WaitKind::KeyedEvent),
    ("DelayExecution", WaitKind::Delay),
    ("RemoveIoCompletion", WaitKind::IoCompletion),
    ("RemoveIoCompletionEx", WaitKind::IoCompletion),
    ("WaitForWorkViaWorkerFactory", WaitKind::WorkerFactory),
    ("SignalAndWaitForSingleObject", WaitKind::SignalAndWait),
    ("ReplyWaitReceivePort", WaitKind::Alpc),
    ("ReplyWaitReceivePortEx", WaitKind::Alpc),
    ("AlpcSendWaitReceivePort", WaitKind::Alpc),
    ("UserGetMessage", WaitKind::Message),
    ("UserWaitMessage", WaitKind::Message),
    ("UserMsgWaitForMultipleObjectsEx", WaitKind::Message),
    ("UserRealWaitMessageEx", WaitKind::Message),
];

/// The wait a system-call stub stands for, by its name (`NtWaitForSingleObject`,
/// `ZwWaitForSingleObject`, `ntdll!NtWaitForSingleObject+0x14`).
pub fn wait_kind(function: &str) -> Option<WaitKind> {
    let f = short_function(function);
    let rest = f.strip_prefix("Nt").or_else(|| f.strip_prefix("Zw"))?;
    WAIT_STUBS
        .iter()
        .find(|(name, _)| *name == rest)
        .map(|(_, k)| *k)
}

/// Frames only a thread that writes a dump of its own process has.
pub const DUMP_WRITER_FUNCTIONS: &[&str] = &["MiniDumpWriteDump", "MiniDumpWriteDumpInternal"];
/// Modules that write dumps in process (dbghelp, and dbgcore which hosts MiniDumpWriteDump's
/// implementation since Windows 8).
pub const DUMP_WRITER_MODULES: &[&str] = &["dbghelp", "dbgcore"];

/// Frames of a debugger's break-in: `DebugActiveProcess`/`DebugBreakProcess` (what ProcDump,
/// Task Manager's debugger attach, cdb and WinDbg do) create a thread in the target that starts
/// in `DbgUiRemoteBreakin` and executes `DbgBreakPoint` (int 3).
pub const BREAK_IN_FUNCTIONS: &[&str] = &["DbgUiRemoteBreakin", "DbgBreakPoint"];

/// Where a debugger's own breakpoints execute in ntdll: the initial breakpoint of a process
/// started under a debugger (`LdrpDoDebuggerBreak`, during loader initialisation, before any
/// application code) and the break-in (`DbgBreakPoint`, called by `DbgUiRemoteBreakin` on the
/// thread the debugger injects). Both are an `int 3` the application never asked for.
pub const DEBUGGER_BREAKPOINTS: &[&str] =
    &["DbgBreakPoint", "DbgUiRemoteBreakin", "LdrpDoDebuggerBreak"];

/// Values Windows' heaps, the CRT and the compiler write into memory nobody should use, and what
/// a pointer made of one says. An address that is one of them (plus a small field offset) was
/// read from such memory.
pub const FILL_PATTERNS: &[(u32, &str)] = &[
    (
        0xbaad_f00d,
        "HeapAlloc's fill of uninitialised blocks (debug heap)",
    ),
    (
        0xfeee_feee,
        "HeapFree's fill of freed blocks (debug heap): a use after free",
    ),
    (
        0xabab_abab,
        "the guard bytes after a heap block (debug heap): a read past its end",
    ),
    (
        0xcdcd_cdcd,
        "the debug CRT's fill of uninitialised heap memory",
    ),
    (
        0xdddd_dddd,
        "the debug CRT's fill of freed heap memory: a use after free",
    ),
    (
        0xfdfd_fdfd,
        "the debug CRT's no-man's-land guard bytes: a read past a block",
    ),
    (
        0xcccc_cccc,
        "the compiler's fill of uninitialised stack memory (/RTCs, /GZ)",
    ),
    (
        0xdead_beef,
        "a conventional marker of freed or poisoned memory",
    ),
    (0xc0c0_c0c0, "page heap's fill of freed blocks"),
    (0xf0f0_f0f0, "page heap's fill of uninitialised blocks"),
];

/// Largest field offset at which a pointer counts as a fill pattern plus an offset.
const FILL_OFFSET: u64 = 0x1000;

/// What `value` is made of, when it is a fill pattern (repeated to `ptr` bytes, plus a field
/// offset below 4 KiB) or ASCII text (every byte a printable letter, digit or space — a string
/// where a pointer should be): (description, offset).
pub fn pointer_pattern(value: u64, ptr: u64) -> Option<(String, u64)> {
    for &(p, what) in FILL_PATTERNS {
        let full = if ptr == 8 {
            (p as u64) << 32 | p as u64
        } else {
            p as u64
        };
        let off = value.wrapping_sub(full);
        if off < FILL_OFFSET {
            return Some((format!("{full:#x} is {what}"), off));
        }
    }
    let bytes = &value.to_le_bytes()[..ptr as usize];
    let text = bytes
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b' ' || b == b'_');
    let letters = bytes.iter().filter(|b| b.is_ascii_alphabetic()).count();
    (text && letters * 2 >= bytes.len()).then(|| {
        let s: String = bytes.iter().map(|&b| b as char).collect();
        (
            format!("{value:#x} is ASCII text ('{s}'): a string overwrote the pointer"),
            0,
        )
    })
}

/// `ns::Class::method(args)+0x10` → `method`; `ntdll!_RtlUserThreadStart@8` →
/// `RtlUserThreadStart`. Plain C names stay as they are.
pub fn short_function(name: &str) -> &str {
    let name = name.rsplit('!').next().unwrap_or(name);
    let name = name.split(['(', '+']).next().unwrap_or(name);
    let name = name.rsplit("::").next().unwrap_or(name).trim();
    // x86 stdcall/fastcall decoration: leading underscores (or @) and a trailing @bytes.
    let name = name.trim_start_matches(['_', '@']);
    match name.rfind('@') {
        Some(i) if i > 0 && name[i + 1..].bytes().all(|b| b.is_ascii_digit()) => &name[..i],
        _ => name,
    }
}

/// Is `function` (any spelling) one of `names`?
pub fn is_one_of(function: &str, names: &[&str]) -> bool {
    let f = short_function(function);
    names.iter().any(|n| short_function(n) == f)
}

/// Folders of the operating system's own files: `%SystemRoot%` (System32, SysWOW64, WinSxS …),
/// the NT path forms of it, and Wine's unix-side library folders (Wine is how this project
/// makes dumps; its DLLs sometimes carry their unix path).
pub fn is_system_path(path: &str) -> bool {
    let p = path.to_ascii_lowercase().replace('/', "\\");
    p.contains(":\\windows\\")
        || p.starts_with("\\systemroot\\")
        || p.starts_with("\\windows\\")
        || p.contains("\\??\\c:\\windows\\")
        || p.contains("\\lib\\wine\\")
        || p.contains("\\lib64\\wine\\")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_compared_without_module_arguments_or_decoration() {
        assert_eq!(
            short_function("ntdll!_RtlUserThreadStart@8"),
            "RtlUserThreadStart"
        );
        assert_eq!(short_function("__RtlUserThreadStart"), "RtlUserThreadStart");
        assert_eq!(short_function("app!ns::Worker::run(int)+0x10"), "run");
        assert_eq!(short_function("main"), "main");
        assert!(is_one_of(
            "kernel32!BaseThreadInitThunk",
            THREAD_START_THUNKS
        ));
        assert!(!is_one_of(
            "app!BaseThreadInitThunkHelper",
            THREAD_START_THUNKS
        ));
    }

    #[test]
    fn wait_stubs_are_known_in_both_spellings() {
        assert_eq!(
            wait_kind("NtWaitForSingleObject"),
            Some(WaitKind::SingleObject)
        );
        assert_eq!(
            wait_kind("ntdll!ZwWaitForMultipleObjects"),
            Some(WaitKind::MultipleObjects)
        );
        assert_eq!(
            wait_kind("win32u!NtUserGetMessage"),
            Some(WaitKind::Message)
        );
        assert_eq!(wait_kind("NtClose"), None);
        assert_eq!(
            wait_kind("WaitForSingleObject"),
            None,
            "the kernelbase wrapper is no stub"
        );
    }

    #[test]
    fn fill_patterns_and_text_are_named() {
        assert!(pointer_pattern(0x4141_4141, 4)
            .unwrap()
            .0
            .contains("ASCII text ('AAAA')"));
        assert!(pointer_pattern(0xfeee_fef6, 4)
            .unwrap()
            .0
            .contains("freed blocks"));
        assert_eq!(pointer_pattern(0xfeee_fef6, 4).unwrap().1, 8);
        assert!(pointer_pattern(0xbaad_f00d_baad_f00d, 8).is_some());
        assert!(
            pointer_pattern(0x0004_e3c9, 4).is_none(),
            "a plain small number"
        );
        assert!(
            pointer_pattern(0x7ff7_a131_10d9, 8).is_none(),
            "an ordinary code address"
        );
    }

    #[test]
    fn system_folders() {
        assert!(is_system_path("C:\\Windows\\System32\\ntdll.dll"));
        assert!(is_system_path("C:\\WINDOWS\\SysWOW64\\kernel32.dll"));
        assert!(is_system_path("\\SystemRoot\\System32\\ntdll.dll"));
        assert!(!is_system_path("C:\\Program Files\\App\\app.exe"));
        assert!(!is_system_path("D:\\windows_tools\\a.dll"));
    }
}
