//! What the detectors look at, gathered once from the target, the symbols and the stack walker:
//! the exception, and every thread walked in its own view — the 32-bit one for a WOW64 thread
//! (what the process ran), the dump's native one otherwise — with the faulting thread also
//! walked from the exception context. Nothing here depends on a debugger session's state: the
//! same dump and symbols always give the same evidence.

use std::cell::OnceCell;

use dumpdiag_os::address::AddressMap;
use dumpdiag_os::known;
use dumpdiag_os::view::{ProcessView, View};
use dumpdiag_stack::code::Disassembler;
use dumpdiag_stack::{Stack, StackIssue, Trust};
use dumpdiag_symbols::{SymbolKind, Symbols};
use dumpdiag_target::{Arch, Context, ExceptionInfo, Target, ThreadTimes};
use tracing::debug;

/// A frame with its symbol.
#[derive(Debug, Clone)]
pub struct FrameView {
    pub ip: u64,
    pub module: Option<String>,
    pub function: Option<String>,
    /// Offset from the function (or module, without a symbol).
    pub offset: u64,
    pub source: Option<(String, u32)>,
    pub trust: Trust,
    /// Where the function name came from (PDB, Breakpad, exports), when there is one.
    pub symbol_kind: Option<SymbolKind>,
}

impl FrameView {
    /// `module!function` (or `module+0xoff`, or the address).
    pub fn call_site(&self) -> String {
        match (&self.module, &self.function) {
            (Some(m), Some(f)) => format!("{m}!{f}"),
            (Some(m), None) => format!("{m}+{:#x}", self.offset),
            _ => format!("{:#x}", self.ip),
        }
    }

    /// `module!function+0xoff` as `k` prints it.
    pub fn call_site_offset(&self) -> String {
        match (&self.module, &self.function) {
            (Some(m), Some(f)) if self.offset > 0 => format!("{m}!{f}+{:#x}", self.offset),
            _ => self.call_site(),
        }
    }

    /// The function name without module, class or arguments (`known::short_function`).
    pub fn short_name(&self) -> Option<&str> {
        self.function.as_deref().map(known::short_function)
    }

    /// Is this frame one of `names` (compared as `known::is_one_of` does)?
    pub fn is_one_of(&self, names: &[&str]) -> bool {
        self.function
            .as_deref()
            .is_some_and(|f| known::is_one_of(f, names))
    }
}

/// A thread walked in one view.
#[derive(Debug, Clone)]
pub struct Walk {
    pub view: View,
    pub context: Context,
    pub frames: Vec<FrameView>,
    pub stack: Stack,
    /// The stack-trace checks of this walk (walker notes such as the frame limit excluded).
    pub issues: Vec<StackIssue>,
}

#[derive(Debug, Clone)]
pub struct ThreadView {
    pub index: usize,
    pub id: u32,
    pub name: Option<String>,
    pub times: Option<ThreadTimes>,
    /// The view the thread is analysed in: the WOW64 x86 view for a WOW64 process's threads
    /// whose 32-bit state the dump holds, else native.
    pub view: View,
    /// The thread's own context in that view.
    pub context: Option<Context>,
    /// The walk from the thread's own context (empty when it has none).
    pub frames: Vec<FrameView>,
    pub stack: Option<Stack>,
    pub issues: Vec<StackIssue>,
    /// The dump records the exception's context for this thread, which is not the faulting one:
    /// Wine's writer does that for the thread calling MiniDumpWriteDump (only asked of dumps
    /// Wine wrote). Its frames are left empty.
    pub borrowed_context: bool,
    /// The thread executes a debugger's own breakpoint (the dump's exception is one): it shows
    /// the debugger, not the application.
    pub debugger_break: bool,
}

impl ThreadView {
    /// Pointer size of the thread's view.
    pub fn ptr(&self) -> u64 {
        match (self.view, &self.context) {
            (View::Wow64X86, _) => 4,
            (_, Some(c)) => c.arch().pointer_size(),
            _ => 8,
        }
    }

    /// The thread's stack pointer in its view.
    pub fn sp(&self) -> Option<u64> {
        self.context.as_ref().map(Context::sp)
    }
}

/// What the analysis is given: the dump, its symbols, and (optionally) an address map someone
/// already built.
#[derive(Clone, Copy)]
pub struct Input<'a> {
    pub target: &'a dyn Target,
    pub symbols: &'a Symbols,
    pub address_map: Option<&'a AddressMap>,
}

impl<'a> Input<'a> {
    pub fn new(target: &'a dyn Target, symbols: &'a Symbols) -> Input<'a> {
        Input {
            target,
            symbols,
            address_map: None,
        }
    }
}

pub struct Evidence<'a> {
    target: &'a dyn Target,
    /// The dump was written by Wine (`dumpdiag_os::wine`): the one switch for Wine's quirks.
    pub wine: bool,
    pub symbols: &'a Symbols,
    /// The process in its own bitness (the 32-bit view of a WOW64 process): PEB, heaps.
    pub process: ProcessView<'a>,
    pub exception: Option<ExceptionInfo>,
    /// The faulting thread walked from the exception context.
    pub exception_walk: Option<Walk>,
    pub threads: Vec<ThreadView>,
    given_map: Option<&'a AddressMap>,
    own_map: OnceCell<AddressMap>,
    /// Every thread's resolved wait, computed on first use and shared by the wait detectors.
    waits: OnceCell<Vec<crate::waits::Wait>>,
    /// Exceptions other threads are dispatching, computed on first use.
    dispatched: OnceCell<Vec<(usize, crate::stack_records::StackRecord)>>,
}

/// Symbolize a walked stack.
fn frames(target: &dyn Target, symbols: &Symbols, stack: &Stack) -> Vec<FrameView> {
    stack
        .frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            // A caller frame's ip is a return address: its call is the instruction before.
            let probe = if i > 0 { f.ip.saturating_sub(1) } else { f.ip };
            let module = target.module_at(f.ip);
            let (function, offset, source, symbol_kind) = match symbols.lookup(target, probe) {
                Some(x) => (
                    Some(x.function),
                    f.ip.saturating_sub(x.function_start),
                    x.source,
                    Some(x.kind),
                ),
                None => (None, module.map(|m| f.ip - m.base).unwrap_or(0), None, None),
            };
            FrameView {
                ip: f.ip,
                module: module.map(|m| m.short_name()),
                function,
                offset,
                source,
                trust: f.trust,
                symbol_kind,
            }
        })
        .collect()
}

fn walk(target: &dyn Target, symbols: &Symbols, view: View, index: usize, ctx: Context) -> Walk {
    let pv = ProcessView::new(target, view);
    let stack = dumpdiag_stack::walk_thread(&pv, symbols, index, &ctx);
    let issues = dumpdiag_stack::check(&pv, symbols, index, &stack)
        .into_iter()
        .filter(|i| i.kind() != dumpdiag_stack::checks::IssueKind::Note)
        .collect();
    Walk {
        view,
        context: ctx,
        frames: frames(target, symbols, &stack),
        stack,
        issues,
    }
}

/// The view a thread is analysed in: a WOW64 process's thread in its 32-bit view when the dump
/// holds its x86 state, else the native view.
fn thread_view(target: &dyn Target, wow64: bool, index: usize) -> (View, Option<Context>) {
    if wow64 {
        if let Some(c) = ProcessView::new(target, View::Wow64X86).thread_context(index) {
            return (View::Wow64X86, Some(c));
        }
    }
    (View::Native, target.thread_context(index))
}

/// The view the exception is analysed in: the x86 view when the stored context is an x86 one or
/// was taken in 32-bit code (code selector 0x23) of a WOW64 process; the native view when the
/// exception happened in 64-bit code.
fn exception_view(target: &dyn Target, wow64: bool) -> Option<(View, Context)> {
    let c = target.exception_context()?;
    if !wow64 || c.arch() == Arch::X86 {
        return Some((View::Native, c));
    }
    match c.wow64_as_x86() {
        Some(x86) => Some((View::Wow64X86, x86)),
        None => Some((View::Native, c)),
    }
}

impl<'a> Evidence<'a> {
    pub fn gather(input: &Input<'a>) -> Evidence<'a> {
        let (target, symbols) = (input.target, input.symbols);
        let wow64 = dumpdiag_os::wow64::is_wow64(target);
        let wine = dumpdiag_os::wine::written_by_wine(target);
        let exception = target.exception().cloned();
        let exception_walk = exception.as_ref().and_then(|e| {
            let index = target.thread_index_by_id(e.thread_id)?;
            let (view, ctx) = exception_view(target, wow64)?;
            Some(walk(target, symbols, view, index, ctx))
        });
        let native_exception_ctx = target.exception_context();
        let threads = target
            .threads()
            .iter()
            .enumerate()
            .map(|(i, th)| {
                let native = target.thread_context(i);
                let borrowed_context = match (&exception, &native, &native_exception_ctx) {
                    (Some(e), Some(c), Some(x)) if wine => {
                        e.thread_id != th.id && c.ip() == x.ip() && c.sp() == x.sp()
                    }
                    _ => false,
                };
                let (view, context) = thread_view(target, wow64, i);
                let walked = context
                    .clone()
                    .filter(|_| !borrowed_context)
                    .map(|c| walk(target, symbols, view, i, c));
                let (frames, stack, issues) = match walked {
                    Some(w) => (w.frames, Some(w.stack), w.issues),
                    None => (Vec::new(), None, Vec::new()),
                };
                debug!(thread = th.id, ?view, frames = frames.len(), "walked");
                ThreadView {
                    index: i,
                    id: th.id,
                    name: th.name.clone(),
                    times: th.info.clone(),
                    view,
                    context,
                    frames,
                    stack,
                    issues,
                    borrowed_context,
                    debugger_break: false,
                }
            })
            .collect();
        let mut ev = Evidence {
            target,
            wine,
            symbols,
            process: ProcessView::of_process(target),
            exception,
            exception_walk,
            threads,
            given_map: input.address_map,
            own_map: OnceCell::new(),
            waits: OnceCell::new(),
            dispatched: OnceCell::new(),
        };
        if crate::detectors::debugger_break(&ev).is_some() {
            let id = ev.exception.as_ref().map(|e| e.thread_id);
            ev.threads
                .iter_mut()
                .filter(|t| Some(t.id) == id)
                .for_each(|t| t.debugger_break = true);
        }
        ev
    }

    pub fn target(&self) -> &'a dyn Target {
        self.target
    }

    pub fn is_wow64(&self) -> bool {
        self.process.view() == View::Wow64X86
    }

    /// The faulting thread's frames walked from the exception context (empty without one).
    pub fn exception_frames(&self) -> &[FrameView] {
        self.exception_walk
            .as_ref()
            .map(|w| w.frames.as_slice())
            .unwrap_or(&[])
    }

    /// The faulting thread, when the dump has an exception.
    pub fn faulting_thread(&self) -> Option<&ThreadView> {
        let e = self.exception.as_ref()?;
        self.threads.iter().find(|t| t.id == e.thread_id)
    }

    /// A thread's frames as the analysis reads them: for the faulting thread, the stack walked
    /// from the exception context (its own context sits in the exception dispatcher).
    pub fn frames_of<'t>(&'t self, t: &'t ThreadView) -> &'t [FrameView] {
        match (&self.exception, &self.exception_walk) {
            (Some(e), Some(w)) if e.thread_id == t.id && !w.frames.is_empty() => &w.frames,
            _ => &t.frames,
        }
    }

    /// The stack-trace issues of a thread's walk as the analysis reads it (see `frames_of`).
    pub fn issues_of<'t>(&'t self, t: &'t ThreadView) -> &'t [StackIssue] {
        match (&self.exception, &self.exception_walk) {
            (Some(e), Some(w)) if e.thread_id == t.id && !w.frames.is_empty() => &w.issues,
            _ => &t.issues,
        }
    }

    /// Every thread's resolved wait (see [`crate::waits`]).
    pub fn waits(&self) -> &[crate::waits::Wait] {
        self.waits.get_or_init(|| crate::waits::waits(self))
    }

    /// The exceptions threads are dispatching at the moment of the dump besides the stored one:
    /// (index into `threads`, the record under the thread's KiUserExceptionDispatcher frame).
    /// Only one exception is stored in a dump; when several threads fault at once, each of the
    /// others has its own record on its stack.
    pub fn dispatched_exceptions(&self) -> &[(usize, crate::stack_records::StackRecord)] {
        self.dispatched.get_or_init(|| {
            let stored = self
                .exception
                .as_ref()
                .map(|e| (e.thread_id, e.record.code, e.record.address));
            self.threads
                .iter()
                .enumerate()
                .filter(|(_, t)| !crate::stack_records::dispatch_sites(t).is_empty())
                .flat_map(|(i, t)| {
                    crate::stack_records::stack_records(self, t)
                        .into_iter()
                        .filter(|r| r.live)
                        .filter(move |r| stored != Some((t.id, r.record.code, r.record.address)))
                        .map(move |r| (i, r))
                })
                .collect()
        })
    }

    /// The address-space map (regions, heaps, stacks, images), built once.
    pub fn address_map(&self) -> &AddressMap {
        match self.given_map {
            Some(m) => m,
            None => self.own_map.get_or_init(|| AddressMap::build(self.target)),
        }
    }

    /// `module!symbol+0xoff` for an address, or the address.
    pub fn describe(&self, a: u64) -> String {
        self.symbols
            .describe(self.target, a)
            .unwrap_or_else(|| format!("{a:#x}"))
    }

    /// Code of `view`'s bitness, decoded and rendered with the dump's symbols.
    pub fn disassembler(&self, view: View) -> Disassembler<'a> {
        let ptr = ProcessView::new(self.target, view).ptr();
        Disassembler {
            target: self.target,
            symbols: self.symbols,
            ptr,
        }
    }

    /// The process's image: the first module of the list (listed again under WOW64, at the same
    /// base).
    pub fn is_main_image(&self, name: &str) -> bool {
        self.target
            .modules()
            .first()
            .is_some_and(|m| m.short_name() == name)
    }

    pub fn is_main_image_base(&self, base: u64) -> bool {
        self.target
            .modules()
            .first()
            .is_some_and(|m| m.base == base)
    }

    /// The application's own modules: the main image and anything outside the system folders.
    pub fn is_app_module(&self, name: &str) -> bool {
        let t = self.target;
        t.modules()
            .iter()
            .position(|m| m.short_name() == name)
            .is_some_and(|i| i == 0 || !known::is_system_path(&t.modules()[i].path))
    }
}
