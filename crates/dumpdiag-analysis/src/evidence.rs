//! What the detectors look at, gathered once: the exception, every thread's symbolized stack
//! (the faulting thread from the exception context), the target itself.

use std::cell::OnceCell;

use dumpdiag_engine::cmd_stacks;
use dumpdiag_engine::Session;
use dumpdiag_stack::{Stack, Trust};
use dumpdiag_target::{ExceptionInfo, Target, ThreadTimes};

#[derive(Debug, Clone)]
pub struct FrameView {
    pub ip: u64,
    pub module: Option<String>,
    pub function: Option<String>,
    /// Offset from the function (or module, without a symbol).
    pub offset: u64,
    pub source: Option<(String, u32)>,
    pub trust: Trust,
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
}

#[derive(Debug, Clone)]
pub struct ThreadView {
    pub index: usize,
    pub id: u32,
    pub name: Option<String>,
    pub frames: Vec<FrameView>,
    /// The walk behind `frames` (from the thread's own context), for the stack-trace checks.
    pub stack: Option<Stack>,
    pub times: Option<ThreadTimes>,
    /// The dump records the exception's context for this thread, which is not the faulting one:
    /// Wine's writer does that for the thread calling MiniDumpWriteDump. Its frames are left empty.
    pub borrowed_context: bool,
}

pub struct Evidence<'s> {
    pub session: &'s Session,
    pub exception: Option<ExceptionInfo>,
    /// The faulting thread's stack from the exception context.
    pub exception_frames: Vec<FrameView>,
    pub exception_stack: Option<Stack>,
    pub threads: Vec<ThreadView>,
    pub ptr: u64,
    /// Every thread's resolved wait, computed on first use and shared by the wait detectors.
    waits: OnceCell<Vec<crate::waits::Wait>>,
}

fn walk(s: &Session, index: usize, ctx: &dumpdiag_target::Context) -> (Vec<FrameView>, Stack) {
    let stack = cmd_stacks::stack_of(s, index, ctx);
    (frames(s, &stack), stack)
}

fn frames(s: &Session, stack: &Stack) -> Vec<FrameView> {
    let t = s.target();
    stack
        .frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let probe = if i > 0 { f.ip.saturating_sub(1) } else { f.ip };
            let sym = s.symbols().lookup(t, probe);
            let module = t.module_at(f.ip).map(|m| m.short_name());
            let (function, offset, source) = match sym {
                Some(x) => (
                    Some(x.function),
                    f.ip.saturating_sub(x.function_start),
                    x.source,
                ),
                None => (
                    None,
                    t.module_at(f.ip).map(|m| f.ip - m.base).unwrap_or(0),
                    None,
                ),
            };
            FrameView {
                ip: f.ip,
                module,
                function,
                offset,
                source,
                trust: f.trust,
            }
        })
        .collect()
}

impl<'s> Evidence<'s> {
    pub fn gather(s: &'s Session) -> Evidence<'s> {
        let t = s.target();
        let exception = t.exception().cloned();
        let (exception_frames, exception_stack) = match (&exception, t.exception_context()) {
            (Some(e), Some(ctx)) => {
                match t.thread_index_by_id(e.thread_id).map(|i| walk(s, i, &ctx)) {
                    Some((f, st)) => (f, Some(st)),
                    None => (Vec::new(), None),
                }
            }
            _ => (Vec::new(), None),
        };
        let threads = t
            .threads()
            .iter()
            .enumerate()
            .map(|(i, th)| {
                let ctx = s.thread_context(i);
                let borrowed_context = matches!((&exception, &ctx, t.exception_context()), (Some(e), Some(c), Some(x))
                    if e.thread_id != th.id && c.ip() == x.ip() && c.sp() == x.sp());
                let walked = ctx.filter(|_| !borrowed_context).map(|c| walk(s, i, &c));
                let (frames, stack) = match walked {
                    Some((f, st)) => (f, Some(st)),
                    None => (Vec::new(), None),
                };
                ThreadView { index: i, id: th.id, name: th.name.clone(), frames, stack, times: th.info.clone(), borrowed_context }
            })
            .collect();
        Evidence {
            session: s,
            exception,
            exception_frames,
            exception_stack,
            threads,
            ptr: s.ptr(),
            waits: OnceCell::new(),
        }
    }

    /// A thread's frames as the analysis reads them: for the faulting thread, the stack walked
    /// from the exception context (its own context sits in the exception dispatcher).
    pub fn frames_of<'a>(&'a self, t: &'a ThreadView) -> &'a [FrameView] {
        match &self.exception {
            Some(e) if e.thread_id == t.id && !self.exception_frames.is_empty() => {
                &self.exception_frames
            }
            _ => &t.frames,
        }
    }

    /// Every thread's resolved wait (see [`crate::waits`]).
    pub fn waits(&self) -> &[crate::waits::Wait] {
        self.waits.get_or_init(|| crate::waits::waits(self))
    }

    pub fn target(&self) -> &dyn Target {
        self.session.target()
    }

    /// The process's image: the first module of the list (listed again under WOW64, at the same base).
    pub fn is_main_image(&self, name: &str) -> bool {
        self.target()
            .modules()
            .first()
            .is_some_and(|m| m.short_name() == name)
    }

    pub fn is_main_image_base(&self, base: u64) -> bool {
        self.target()
            .modules()
            .first()
            .is_some_and(|m| m.base == base)
    }

    /// The application's own modules: the main image and anything outside the system
    /// directories.
    pub fn is_app_module(&self, name: &str) -> bool {
        let t = self.target();
        t.modules()
            .iter()
            .find(|m| m.short_name() == name)
            .is_some_and(|m| {
                let p = m.path.to_ascii_lowercase();
                std::ptr::eq(m, &t.modules()[0])
                    || !(p.contains("\\windows\\") || p.contains("/wine/"))
            })
    }
}
