//! [`SynthTarget`]: the built process as a [`Target`], held in memory. It answers what a dump
//! reader would answer for the same process (the round-trip tests hold it to that against the
//! MDMP reader) and also knows what only the builder knows: the frames every thread's walk must
//! find and the Breakpad symbols of its modules.

use dumpdiag_target::*;

use crate::stack::Frame;
use crate::symbols::{SymbolFile, SymbolStore};

/// A synthetic process, in memory.
#[derive(Debug, Clone)]
pub struct SynthTarget {
    pub(crate) name: String,
    pub(crate) facts: DumpFacts,
    pub(crate) threads: Vec<ThreadRecord>,
    /// CONTEXT bytes of each thread.
    pub(crate) contexts: Vec<Vec<u8>>,
    pub(crate) modules: Vec<ModuleRecord>,
    pub(crate) unloaded: Vec<UnloadedModuleRecord>,
    pub(crate) regions: Vec<RegionInfo>,
    /// Captured memory: sorted, non-overlapping (address, bytes).
    pub(crate) blocks: Vec<(u64, Vec<u8>)>,
    pub(crate) ranges: Vec<(u64, u64)>,
    pub(crate) exception: Option<ExceptionInfo>,
    pub(crate) exception_context: Option<Vec<u8>>,
    pub(crate) handles: Option<Vec<HandleRecord>>,
    pub(crate) extras: ProcessExtras,
    pub(crate) frames: Vec<Vec<Frame>>,
    pub(crate) symbol_files: Vec<SymbolFile>,
}

impl SynthTarget {
    /// The frames thread `index` was laid out with, innermost first: what an exact walk finds.
    pub fn frames(&self, index: usize) -> &[Frame] {
        &self.frames[index]
    }

    /// The CONTEXT bytes of thread `index`, as the dump stores them.
    pub fn context_bytes(&self, index: usize) -> &[u8] {
        &self.contexts[index]
    }

    /// The exception's CONTEXT bytes.
    pub fn exception_context_bytes(&self) -> Option<&[u8]> {
        self.exception_context.as_deref()
    }

    /// Captured memory blocks, sorted by address.
    pub fn blocks(&self) -> &[(u64, Vec<u8>)] {
        &self.blocks
    }

    /// The Breakpad symbol files of the modules that have a CodeView identity.
    pub fn symbol_files(&self) -> &[SymbolFile] {
        &self.symbol_files
    }

    /// Write the modules' Breakpad symbols as a symbol store under `dir`.
    pub fn write_symbol_store(&self, dir: &std::path::Path) -> std::io::Result<()> {
        crate::symbols::write_store(dir, &self.symbol_files)
    }

    /// The modules' Breakpad symbols in a temporary symbol store (removed when dropped).
    pub fn symbol_store(&self) -> SymbolStore {
        SymbolStore::new(&self.symbol_files).expect("the temporary directory is writable")
    }

    /// The MDMP bytes of the same process.
    pub fn minidump(&self) -> Vec<u8> {
        crate::mdmp::write(self)
    }

    fn block_at(&self, addr: u64) -> Option<&(u64, Vec<u8>)> {
        let i = self
            .blocks
            .partition_point(|b| b.0 + b.1.len() as u64 <= addr);
        self.blocks.get(i).filter(|b| addr >= b.0)
    }
}

impl Target for SynthTarget {
    fn facts(&self) -> &DumpFacts {
        &self.facts
    }
    fn threads(&self) -> &[ThreadRecord] {
        &self.threads
    }
    fn modules(&self) -> &[ModuleRecord] {
        &self.modules
    }
    fn unloaded_modules(&self) -> &[UnloadedModuleRecord] {
        &self.unloaded
    }
    fn regions(&self) -> &[RegionInfo] {
        &self.regions
    }
    fn captured_ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }
    fn memory(&self) -> &dyn MemoryReader {
        self
    }
    fn exception(&self) -> Option<&ExceptionInfo> {
        self.exception.as_ref()
    }
    fn exception_context(&self) -> Option<Context> {
        Context::decode(self.facts.arch, self.exception_context.as_ref()?, &[])
    }
    fn thread_context(&self, index: usize) -> Option<Context> {
        Context::decode(self.facts.arch, self.contexts.get(index)?, &[])
    }
    fn handles(&self) -> Option<&[HandleRecord]> {
        self.handles.as_deref()
    }
    fn extras(&self) -> &ProcessExtras {
        &self.extras
    }
    /// No file, so no stream directory.
    fn streams(&self) -> &[StreamEntry] {
        &[]
    }
    fn warnings(&self) -> &[String] {
        &[]
    }
    fn path(&self) -> &str {
        &self.name
    }
    fn file_size(&self) -> u64 {
        0
    }
}

impl MemoryReader for SynthTarget {
    fn read(&self, addr: u64, buf: &mut [u8]) -> usize {
        let mut done = 0;
        while done < buf.len() {
            let a = addr.wrapping_add(done as u64);
            let Some((base, bytes)) = self.block_at(a) else {
                break;
            };
            let off = (a - base) as usize;
            let n = (bytes.len() - off).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&bytes[off..off + n]);
            done += n;
        }
        done
    }

    fn slice(&self, addr: u64, max: usize) -> Option<&[u8]> {
        let (base, bytes) = self.block_at(addr)?;
        let off = (addr - base) as usize;
        Some(&bytes[off..(off + max).min(bytes.len())])
    }
}
