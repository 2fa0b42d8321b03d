//! The raw stack of a walked thread: which slots hold the call chain's return addresses, and
//! which return-address-like values are not part of it. `dps` marks slots with it; the
//! Coincidental Symbolic Information and Execution Residue detectors read it.

use dumpdiag_os::view::ProcessView;
use dumpdiag_symbols::Symbols;
use dumpdiag_target::{MemoryExt, Target};

use crate::{thread_bounds, Env, Stack, StackBounds};

/// Most slots one question reads (256 KiB of an x64 stack): a hostile stack range cannot make a
/// caller read more.
const MAX_SLOTS: u64 = 1 << 15;

/// What a raw-stack slot holds relative to the walked call chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotRole {
    /// The return address of frame N (the slot the call wrote).
    FrameReturn(usize),
    /// A value that looks like a return address (code with a call before it) in the live part of
    /// the stack, but no frame returns through this slot: Coincidental Symbolic Information.
    NotInCallChain,
}

/// A walked thread's raw stack. Code bytes not in the dump decide nothing (a minidump without
/// code pages): a value is return-address-like only when the call before it can be read.
pub struct RawStack<'a> {
    target: &'a dyn Target,
    symbols: &'a Symbols,
    /// The live part of the stack: from the top frame's stack pointer to the stack's base.
    pub live_low: u64,
    pub live_high: u64,
    pub bounds: StackBounds,
    return_slots: Vec<(u64, usize)>,
    ptr: u64,
}

impl<'a> RawStack<'a> {
    /// The raw stack of thread `index` in `view`, walked as `stack`.
    pub fn of(
        view: &ProcessView<'a>,
        symbols: &'a Symbols,
        index: usize,
        stack: &Stack,
    ) -> Option<RawStack<'a>> {
        let first = stack.frames.first()?;
        let ptr = view.ptr();
        let bounds = thread_bounds(view, index, first.sp);
        let return_slots = stack
            .frames
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, f)| (f.sp.wrapping_sub(ptr), i))
            .collect();
        Some(RawStack {
            target: view.target(),
            symbols,
            live_low: first.sp,
            live_high: bounds.high,
            bounds,
            return_slots,
            ptr,
        })
    }

    /// The role of the value `v` found at `slot`, if it has one.
    pub fn role(&self, slot: u64, v: u64) -> Option<SlotRole> {
        if let Some(&(_, i)) = self.return_slots.iter().find(|r| r.0 == slot) {
            return Some(SlotRole::FrameReturn(i));
        }
        let live = slot >= self.live_low && slot < self.live_high;
        (live && self.return_like(v)).then_some(SlotRole::NotInCallChain)
    }

    /// Is `v` a return address by its looks: in a module's code, after a call instruction whose
    /// bytes the dump holds?
    pub fn return_like(&self, v: u64) -> bool {
        let env = Env {
            target: self.target,
            symbols: self.symbols,
            bounds: self.bounds,
        };
        env.is_code(v) && env.call_before(v) == Some(true)
    }

    /// Slots in [low, high) (clipped to the stack and to `MAX_SLOTS`) with return-address-like
    /// values: (slot, value).
    pub fn return_like_values(&self, low: u64, high: u64) -> Vec<(u64, u64)> {
        let low = low.max(self.bounds.low);
        let high = high
            .min(self.bounds.high)
            .min(low.saturating_add(MAX_SLOTS * self.ptr));
        let mem = self.target.memory();
        let mut out = Vec::new();
        let mut a = low;
        while a < high {
            if let Some(v) = mem.read_ptr(a, self.ptr) {
                if v != 0 && self.return_like(v) {
                    out.push((a, v));
                }
            }
            a = a.saturating_add(self.ptr);
        }
        out
    }
}
