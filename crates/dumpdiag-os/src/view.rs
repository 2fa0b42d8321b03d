//! Which side of a process is looked at. A dump of a 32-bit process written by 64-bit Windows
//! (WOW64) holds two views of every thread: the 64-bit one the dump's contexts record (usually
//! parked in the WOW64 layer, `wow64cpu`) and the 32-bit one the process itself runs (TEB32,
//! PEB32, the x86 context the layer saved in TEB64 TLS slot 1). WinDbg switches between them
//! with `.effmach`; the analysis picks the view per thread. Both go through [`ProcessView`], so
//! the two never disagree on where a TEB, a PEB or a context is.

use dumpdiag_target::{Arch, Context, MemoryExt, Target};

use crate::layout::{Layout, X64, X86};
use crate::wow64;

/// The two views of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum View {
    /// The dump's own machine: its contexts, TEBs and PEB as recorded.
    #[default]
    Native,
    /// The 32-bit side of a WOW64 process: TEB32, PEB32 and the saved x86 contexts.
    Wow64X86,
}

/// A target seen in one view.
#[derive(Clone, Copy)]
pub struct ProcessView<'t> {
    target: &'t dyn Target,
    view: View,
}

impl<'t> ProcessView<'t> {
    /// The target in `view`; the WOW64 view of a dump that is not WOW64 is its native view.
    pub fn new(target: &'t dyn Target, view: View) -> ProcessView<'t> {
        let view = if view == View::Wow64X86 && !wow64::is_wow64(target) {
            View::Native
        } else {
            view
        };
        ProcessView { target, view }
    }

    pub fn native(target: &'t dyn Target) -> ProcessView<'t> {
        ProcessView {
            target,
            view: View::Native,
        }
    }

    /// The view of the process's own bitness: the 32-bit one for a WOW64 process.
    pub fn of_process(target: &'t dyn Target) -> ProcessView<'t> {
        ProcessView::new(target, View::Wow64X86)
    }

    pub fn target(&self) -> &'t dyn Target {
        self.target
    }

    pub fn view(&self) -> View {
        self.view
    }

    /// The machine of this view's code and contexts.
    pub fn arch(&self) -> Arch {
        match self.view {
            View::Wow64X86 => Arch::X86,
            View::Native => self.target.facts().arch,
        }
    }

    pub fn ptr(&self) -> u64 {
        self.arch().pointer_size()
    }

    pub fn layout(&self) -> Layout {
        if self.ptr() == 4 {
            X86
        } else {
            X64
        }
    }

    /// The TEB of thread `index` in this view.
    pub fn teb_of(&self, index: usize) -> Option<u64> {
        let t = self.target.threads().get(index)?;
        match self.view {
            View::Wow64X86 => wow64::teb32_of(self.target.memory(), t.teb),
            View::Native => Some(t.teb),
        }
    }

    /// The thread's own register context in this view. A WOW64 thread caught while running
    /// 32-bit code (its 64-bit context has the 32-bit code selector 0x23) has that context as
    /// its x86 one; a thread caught in the 64-bit layer has the x86 context the layer saved.
    pub fn thread_context(&self, index: usize) -> Option<Context> {
        let native = self.target.thread_context(index);
        match self.view {
            View::Native => native,
            View::Wow64X86 => native.as_ref().and_then(Context::wow64_as_x86).or_else(|| {
                let t = self.target.threads().get(index)?;
                wow64::x86_context(self.target.memory(), t.teb)
            }),
        }
    }

    /// The exception's context in this view: in the WOW64 view, the 32-bit state of the
    /// faulting thread (the stored context re-expressed when it was taken in 32-bit code, else
    /// the thread's saved x86 context).
    pub fn exception_context(&self) -> Option<Context> {
        let c = self.target.exception_context()?;
        if self.view == View::Native || c.arch() == Arch::X86 {
            return Some(c);
        }
        c.wow64_as_x86().or_else(|| {
            let e = self.target.exception()?;
            self.thread_context(self.target.thread_index_by_id(e.thread_id)?)
        })
    }

    /// The PEB address, from the first thread whose TEB is in the dump.
    pub fn peb_address(&self) -> Option<u64> {
        let l = self.layout();
        (0..self.target.threads().len()).find_map(|i| {
            let teb = self.teb_of(i)?;
            let peb = self
                .target
                .memory()
                .read_ptr(teb.wrapping_add(l.teb_peb), l.ptr)?;
            (peb != 0).then_some(peb)
        })
    }

    /// The stack range the TEB of thread `index` declares: [DeallocationStack or StackLimit,
    /// StackBase).
    pub fn teb_stack_range(&self, index: usize) -> Option<(u64, u64)> {
        let l = self.layout();
        let mem = self.target.memory();
        let teb = self.teb_of(index)?;
        let high = mem.read_ptr(teb.wrapping_add(l.teb_stack_base), l.ptr)?;
        let dealloc = mem.read_ptr(teb.wrapping_add(l.teb_deallocation_stack), l.ptr);
        let limit = mem.read_ptr(teb.wrapping_add(l.teb_stack_limit), l.ptr);
        let low = dealloc.filter(|&d| d != 0).or(limit)?;
        (low < high).then_some((low, high))
    }
}
