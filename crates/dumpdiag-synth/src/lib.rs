//! Synthetic Windows processes for tests: describe a process the way an engineer thinks of it
//! (modules with functions, threads in call chains, heaps, critical sections, handles, the
//! exception) and get both an in-memory [`dumpdiag_target::Target`] ([`SynthTarget`]) and the
//! MDMP bytes of the same process ([`SynthTarget::minidump`]), plus Breakpad symbols of its
//! modules ([`SynthTarget::symbol_store`]).
//!
//! Like `object`'s writers and `minidump-synth`, the description is plain data with builder
//! methods; every declaration places its object at once and returns its address or a handle
//! (a [`Func`] knows its call sites' return addresses), so tests never type an address and
//! every RVA of the file is computed.
//!
//! What is real about the process:
//! - modules are PE images in memory with headers, `.text`/`.data`/`.rdata` (and `.pdata`,
//!   `.rsrc`), an export directory, x64 UNWIND_INFO per function, a debug directory with an
//!   RSDS record and, when asked, a version resource ([`pe`]);
//! - functions are machine code whose prologs match their unwind data, with calls (`call
//!   [slot]`) before every return address ([`code`]);
//! - stacks are laid out from call chains with return addresses where the unwind data or the
//!   EBP chain says they are ([`stack`]);
//! - TEB, PEB, loader lists, process parameters, heap headers and critical sections use the
//!   Windows layouts of the process's bitness ([`layout`]);
//! - a 32-bit process under WOW64 ([`Process::wow64`]) is dumped as 64-bit Windows dumps it:
//!   the 64-bit layer's modules, a TEB64 before every TEB32, the saved x86 contexts, AMD64
//!   thread contexts ([`wow64`]).
//!
//! ```
//! use dumpdiag_synth::{Process, Module, Function};
//! use dumpdiag_target::{Arch, Target};
//!
//! let mut p = Process::new(Arch::Amd64);
//! let ntdll = p.module(Module::new("C:\\Windows\\System32\\ntdll.dll"));
//! let app = p.module(Module::new("C:\\app\\app.exe"));
//! let wait = p.add_function(ntdll, Function::syscall("NtWaitForSingleObject", 4));
//! let start = p.function(ntdll, "RtlUserThreadStart", 0x40);
//! let main = p.function(app, "main", 0x40);
//! p.thread(0x1234, [wait, main, start]).reg("rcx", 0x10);
//! let t = p.build();
//! assert_eq!(t.threads()[0].id, 0x1234);
//! assert_eq!(t.frames(0)[1].ip, main.call_site(0));
//! let dump = t.minidump();
//! assert_eq!(&dump[..4], b"MDMP");
//! ```

mod build;
pub mod bytes;
pub mod code;
pub mod context;
pub mod handles;
pub mod jit;
pub mod layout;
mod mdmp;
pub mod pe;
pub mod process;
pub mod stack;
pub mod symbols;
mod target;
pub mod wow64;

pub use code::Shape;
pub use context::Registers;
pub use handles::{Handle, ObjectInfo};
pub use jit::CodeHeap;
pub use layout::Layout;
pub use pe::Version;
pub use process::{
    unix_to_filetime, CodeView, CriticalSection, Exception, ExceptionContext, Function, Module,
    ModuleId, Params, Process, System,
};
pub use stack::{At, Chain, Frame, Func, Thread};
pub use symbols::{SymbolFile, SymbolStore};
pub use target::SynthTarget;
pub use wow64::{Wow64Layer, Wow64Thread};
