//! The checks of a walked stack (the catalog's Incorrect and Truncated Stack Trace signs), as
//! typed issues: `k` prints them as warnings and the analysis reports them, both from here.

use std::fmt;

use dumpdiag_os::known;
use dumpdiag_os::view::ProcessView;
use dumpdiag_symbols::{SymbolKind, Symbols};

use crate::{thread_bounds, Env, Stack, Trust, MAX_FRAMES};

/// Export-only names further than this from their export are not the function the address is
/// in (an export table names a few hundred functions of a DLL; code between them belongs to
/// unexported ones): WinDbg's own heuristic flags such offsets the same way.
const MAX_PLAUSIBLE_EXPORT_OFFSET: u64 = 0x10000;

/// Something wrong, or worth knowing, about a walked stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StackIssue {
    /// The frame was found by scanning: it may not be part of the real call chain.
    Scanned { frame: usize },
    /// The frame's instruction pointer (a return address) does not follow a call instruction.
    NotAfterCall { frame: usize, return_address: u64 },
    /// The stack pointer did not increase from the frame before.
    StackPointerNotIncreasing { frame: usize },
    /// The frame's stack pointer is outside the thread's stack.
    OutsideStack { frame: usize, sp: u64 },
    /// The frame's instruction pointer is in no loaded module (nor in generated code).
    OutsideModules {
        frame: usize,
        ip: u64,
        unloaded: bool,
    },
    /// An export-only name with an offset too large to be the function the address is in.
    ImplausibleExportOffset {
        frame: usize,
        module: String,
        function: String,
        offset: u64,
    },
    /// The walk ended before the thread's outermost frame with stack left above it.
    EndsBeforeThreadStart {
        last: Option<String>,
        remaining: u64,
    },
    /// The walk stopped at the frame limit (deep recursion): not a walking error.
    FrameLimit { frames: usize },
    /// No walker for the context's architecture.
    UnsupportedArchitecture,
}

/// What an issue says about the stack trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueKind {
    /// The trace may contain frames that are not real (Incorrect Stack Trace).
    Incorrect,
    /// The trace stops before its end (Truncated Stack Trace).
    Truncated,
    /// A fact about the walk, not an error.
    Note,
}

impl StackIssue {
    pub fn kind(&self) -> IssueKind {
        match self {
            StackIssue::Scanned { .. }
            | StackIssue::NotAfterCall { .. }
            | StackIssue::StackPointerNotIncreasing { .. }
            | StackIssue::OutsideStack { .. }
            | StackIssue::OutsideModules { .. }
            | StackIssue::ImplausibleExportOffset { .. } => IssueKind::Incorrect,
            StackIssue::EndsBeforeThreadStart { .. } => IssueKind::Truncated,
            StackIssue::FrameLimit { .. } | StackIssue::UnsupportedArchitecture => IssueKind::Note,
        }
    }

    /// The frame the issue is about, if it is about one.
    pub fn frame(&self) -> Option<usize> {
        match self {
            StackIssue::Scanned { frame }
            | StackIssue::NotAfterCall { frame, .. }
            | StackIssue::StackPointerNotIncreasing { frame }
            | StackIssue::OutsideStack { frame, .. }
            | StackIssue::OutsideModules { frame, .. }
            | StackIssue::ImplausibleExportOffset { frame, .. } => Some(*frame),
            _ => None,
        }
    }
}

impl fmt::Display for StackIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StackIssue::Scanned { frame } => write!(
                f,
                "frame {frame:02x} was found by scanning the stack: it may not be part of the real \
                 call chain"
            ),
            StackIssue::NotAfterCall {
                frame,
                return_address,
            } => {
                write!(f, "frame {frame:02x}: return address {return_address:#x} is not preceded by a call")
            }
            StackIssue::StackPointerNotIncreasing { frame } => {
                write!(f, "frame {frame:02x}: stack pointer does not increase")
            }
            StackIssue::OutsideStack { frame, sp } => {
                write!(
                    f,
                    "frame {frame:02x}: stack pointer {sp:#x} lies outside the thread's stack"
                )
            }
            StackIssue::OutsideModules {
                frame,
                ip,
                unloaded,
            } => write!(
                f,
                "frame {frame:02x}: {ip:#x} is {}",
                if *unloaded {
                    "in an unloaded module"
                } else {
                    "outside every loaded module"
                }
            ),
            StackIssue::ImplausibleExportOffset {
                frame,
                module,
                function,
                offset,
            } => write!(
                f,
                "frame {frame:02x}: {module}!{function}+{offset:#x} is an export-only name with an \
                 implausible offset"
            ),
            StackIssue::EndsBeforeThreadStart { last, remaining } => write!(
                f,
                "the walk ends in {} before the thread start routine with {remaining:#x} bytes of \
                 stack left",
                last.as_deref().unwrap_or("unknown code")
            ),
            StackIssue::FrameLimit { frames } => write!(f, "walk stopped after {frames} frames"),
            StackIssue::UnsupportedArchitecture => {
                write!(f, "stack walking for this architecture is not implemented")
            }
        }
    }
}

/// The outermost frames of a thread lie in the top page of its stack (under the initial
/// context the system put there).
const OUTERMOST_PAGE: u64 = 0x1000;

/// The checks of thread `index`'s walked `stack` in `view`, the walker's own issues first.
pub fn check(
    view: &ProcessView,
    symbols: &Symbols,
    index: usize,
    stack: &Stack,
) -> Vec<StackIssue> {
    let mut out = stack.issues.clone();
    let Some(first) = stack.frames.first() else {
        return out;
    };
    let t = view.target();
    let env = Env {
        target: t,
        symbols,
        bounds: thread_bounds(view, index, first.sp),
    };
    let function_at = |ip: u64| symbols.lookup(t, ip).map(|x| x.function);
    for (i, f) in stack.frames.iter().enumerate() {
        if f.trust == Trust::Scan {
            out.push(StackIssue::Scanned { frame: i });
        }
        // The frame under the exception dispatcher returns to the faulting instruction (a trap
        // frame), not to the instruction after a call.
        let after_dispatcher = i > 0
            && function_at(stack.frames[i - 1].ip)
                .is_some_and(|n| known::short_function(&n).starts_with("KiUserExceptionDispatch"));
        if i > 0 {
            if env.call_before(f.ip) == Some(false)
                && t.module_at(f.ip).is_some()
                && !after_dispatcher
            {
                out.push(StackIssue::NotAfterCall {
                    frame: i,
                    return_address: f.ip,
                });
            }
            if f.sp <= stack.frames[i - 1].sp {
                out.push(StackIssue::StackPointerNotIncreasing { frame: i });
            }
            if !env.bounds.contains(f.sp) {
                out.push(StackIssue::OutsideStack { frame: i, sp: f.sp });
            }
        }
        let generated_code = t
            .extras()
            .function_tables
            .iter()
            .any(|ft| f.ip >= ft.minimum_address && f.ip < ft.maximum_address)
            || env.is_executable_memory(f.ip);
        // Frame 0 is the context itself: a bad instruction pointer there is the crash (NULL
        // Pointer (Code), Wild Code), not a walking error.
        if t.module_at(f.ip).is_none() && i > 0 && !generated_code {
            let unloaded = t
                .unloaded_modules()
                .iter()
                .any(|u| f.ip >= u.base && f.ip < u.base.saturating_add(u.size as u64));
            out.push(StackIssue::OutsideModules {
                frame: i,
                ip: f.ip,
                unloaded,
            });
        } else if let Some(sym) = symbols.lookup(t, f.ip) {
            if sym.kind == SymbolKind::Export && sym.displacement > MAX_PLAUSIBLE_EXPORT_OFFSET {
                out.push(StackIssue::ImplausibleExportOffset {
                    frame: i,
                    module: t.modules()[sym.module_index].short_name(),
                    function: sym.function,
                    offset: sym.displacement,
                });
            }
        }
    }
    if stack.frames.len() >= MAX_FRAMES {
        // Cut by the frame limit (deep recursion), not by a failing walk.
        out.dedup();
        return out;
    }
    let last = stack.frames.last();
    let last_name = last.and_then(|f| symbols.describe(t, f.ip));
    let ended_at_start = last
        .and_then(|f| function_at(f.ip))
        .is_some_and(|n| known::is_one_of(&n, known::THREAD_START_THUNKS));
    let remaining = env
        .bounds
        .high
        .saturating_sub(last.map(|f| f.sp).unwrap_or(0));
    // A chain that ends in a zero return address within the stack's top page, in the system
    // DLL that holds the outermost frames (ntdll; kernel32 before Vista), ended at the thread's
    // outermost frame even where no symbols name it (exports only name the nearest export).
    // Symbols that name another function there say the walk stopped short.
    let ended_at_null = stack.null_return
        && remaining < OUTERMOST_PAGE
        && last.is_some_and(|f| {
            let in_system = t.module_at(f.ip).is_some_and(|m| {
                let n = m.short_name();
                n.eq_ignore_ascii_case("ntdll") || n.eq_ignore_ascii_case("kernel32")
            });
            let named_otherwise = symbols
                .lookup(t, f.ip)
                .is_some_and(|s| matches!(s.kind, SymbolKind::Pdb | SymbolKind::Breakpad));
            in_system && !named_otherwise
        });
    if !ended_at_start && !ended_at_null {
        out.push(StackIssue::EndsBeforeThreadStart {
            last: last_name,
            remaining,
        });
    }
    out.dedup();
    out
}
