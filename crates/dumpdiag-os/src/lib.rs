//! Windows user-mode structures, read out of a [`dumpdiag_target::Target`]'s memory: TEB and
//! PEB in their x86, x64 and WOW64 layouts, the loader's module lists, process parameters,
//! the WOW64 x86 context of a thread, PE headers and version resources of images in memory,
//! the address-space map behind `!address`, and NTSTATUS / Win32 / HRESULT texts.
//!
//! Nothing here needs symbols: the layouts are the stable, documented-by-use offsets every
//! debugger relies on, chosen per bitness.
//!
//! Addresses read out of a dump are untrusted: arithmetic on them wraps (as the CPU's does)
//! rather than panicking, and every walk is bounded.

pub mod address;
pub mod builtin_types;
pub mod codes;
pub mod errors;
pub mod handles;
pub mod heaps;
pub mod known;
pub mod layout;
pub mod nt_heap;
pub mod pe;
pub mod peb;
pub mod teb;
pub mod types;
pub mod view;
pub mod wine;
pub mod wow64;

pub use layout::Layout;

/// FILETIME (100 ns since 1601) to Unix seconds.
pub fn filetime_to_unix(ft: u64) -> Option<i64> {
    const EPOCH_DIFF: u64 = 116_444_736_000_000_000;
    (ft >= EPOCH_DIFF).then(|| ((ft - EPOCH_DIFF) / 10_000_000) as i64)
}

/// Memory for tests where every address is readable up to the top of the address space,
/// each byte what the function says: pointers read out of it can be anything.
#[cfg(test)]
pub(crate) struct EveryAddress<F: Fn(u64) -> u8 + Send + Sync>(pub F);

#[cfg(test)]
impl<F: Fn(u64) -> u8 + Send + Sync> dumpdiag_target::MemoryReader for EveryAddress<F> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> usize {
        for (i, b) in buf.iter_mut().enumerate() {
            // Memory ends at 2^64: a read does not wrap round to address 0.
            let Some(a) = addr.checked_add(i as u64) else {
                return i;
            };
            *b = (self.0)(a);
        }
        buf.len()
    }
}
