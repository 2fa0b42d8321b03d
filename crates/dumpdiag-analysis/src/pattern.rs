//! The patterns the analysis reports, in one table: each pattern's canonical name (verbatim from
//! the catalog, `shared/docs/patterns.md`), its report category, its role in a verdict and the
//! "reported when" row of `docs/analysis-json.md` (a test keeps that document in step).

use serde::Serialize;

/// The catalog's report categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    Exception,
    Pointer,
    StackOverflow,
    DynamicMemoryCorruption,
    DeadlockAndLivelock,
    WaitChain,
    CpuConsumption,
    InsufficientMemory,
    HiddenArtifact,
    FalsityAndCoincidence,
    Thread,
    Process,
    Module,
    DotNet,
    MemoryDumpType,
    MetaMemoryDump,
    StackTrace,
}

impl Category {
    /// The category as the catalog and the JSON contract spell it.
    pub fn name(self) -> &'static str {
        match self {
            Category::Exception => "Exception",
            Category::Pointer => "Pointer",
            Category::StackOverflow => "Stack Overflow",
            Category::DynamicMemoryCorruption => "Dynamic Memory Corruption",
            Category::DeadlockAndLivelock => "Deadlock and Livelock",
            Category::WaitChain => "Wait Chain",
            Category::CpuConsumption => "CPU Consumption",
            Category::InsufficientMemory => "Insufficient Memory",
            Category::HiddenArtifact => "Hidden Artifact",
            Category::FalsityAndCoincidence => "Falsity and Coincidence",
            Category::Thread => "Thread",
            Category::Process => "Process",
            Category::Module => "Module",
            Category::DotNet => ".NET / CLR / Managed Space",
            Category::MemoryDumpType => "Memory dump type",
            Category::MetaMemoryDump => "Meta-Memory Dump",
            Category::StackTrace => "Stack Trace",
        }
    }
}

impl Serialize for Category {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// What a pattern contributes to the verdict on a dump: the reports rank findings by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Explains what went wrong: a crash cause, a deadlock, a leak, a spin.
    Cause,
    /// Says where to look or what surrounds the problem: the stored exception, thread roles,
    /// modules, process facts.
    Context,
    /// Says how far the evidence can be trusted: stack-walk quality, coincidental values.
    Quality,
}

macro_rules! patterns {
    ($($variant:ident: $name:literal, $category:ident, $role:ident, $when:literal;)*) => {
        /// A pattern of the catalog that a detector reports.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Pattern {
            $($variant,)*
        }

        impl Pattern {
            /// Every pattern, in the catalog order the reports group them by.
            pub const ALL: &'static [Pattern] = &[$(Pattern::$variant,)*];

            /// The canonical name, verbatim from the catalog.
            pub fn name(self) -> &'static str {
                match self {
                    $(Pattern::$variant => $name,)*
                }
            }

            pub fn category(self) -> Category {
                match self {
                    $(Pattern::$variant => Category::$category,)*
                }
            }

            pub fn role(self) -> Role {
                match self {
                    $(Pattern::$variant => Role::$role,)*
                }
            }

            /// When the analysis reports it (the documentation's row).
            pub fn reported_when(self) -> &'static str {
                match self {
                    $(Pattern::$variant => $when,)*
                }
            }
        }
    };
}

patterns! {
    ExceptionStackTrace: "Exception Stack Trace", Exception, Context,
        "the dump has an exception: the faulting thread's stack walked from the exception context";
    StoredException: "Stored Exception", Exception, Context,
        "the exception stream's record and context (what `.exr -1` / `.ecxr` show)";
    NullPointerData: "NULL Pointer (Data)", Pointer, Cause,
        "an access violation reading or writing in the first 64 KiB";
    NullPointerCode: "NULL Pointer (Code)", Pointer, Cause,
        "an access violation executing in the NULL page; the caller from the return address";
    InvalidPointer: "Invalid Pointer", Pointer, Cause,
        "an access violation at an unmapped, non-canonical, free, reserved or guard address";
    WildCode: "Wild Code", Pointer, Cause,
        "the instruction pointer outside every module and executable region";
    DivideByZero: "Divide by Zero", Exception, Cause,
        "c0000094 / c000008e, with the dividing instruction";
    CppException: "C++ Exception", Exception, Cause,
        "e06d7363 with MSVC's magic: the thrown types from ThrowInfo (x64 RVAs, x86 pointers)";
    StackOverflow: "Stack Overflow", StackOverflow, Cause,
        "c00000fd: the recursion cycle and the stack's sizes";
    LocalBufferOverflow: "Local Buffer Overflow (User Space)", Exception, Cause,
        "c0000409 raised by a stack buffer check (GS cookie, shadow stack, range check)";
    ManualDump: "Manual Dump", MemoryDumpType, Context,
        "no exception stream, or only a dumper's injected breakpoint";
    EmbeddedComments: "Embedded Comments", MetaMemoryDump, Context,
        "comment streams";
    HandleLeak: "Handle Leak", InsufficientMemory, Cause,
        "very many handles, dominated by one type";
    MemoryLeakProcessHeap: "Memory Leak (Process Heap)", InsufficientMemory, Cause,
        "heap commit ≥ 32 MB and ≥ 40 % of private commit; per-heap commit and segments";
    SpikingThread: "Spiking Thread", CpuConsumption, Cause,
        "one thread with most of the process's CPU time";
    DeadlockCriticalSections: "Deadlock (Critical Sections)", DeadlockAndLivelock, Cause,
        "a cycle of critical-section waits";
    DeadlockMixed: "Deadlock (Mixed Objects, User Space)", DeadlockAndLivelock, Cause,
        "a wait cycle through critical sections, mutexes and threads";
    WaitChainCriticalSections: "Wait Chain (Critical Sections)", WaitChain, Cause,
        "a chain of critical-section waits";
    WaitChainGeneral: "Wait Chain (General)", WaitChain, Cause,
        "a chain through kernel objects (HandleData)";
    BlockedThread: "Blocked Thread (Software)", WaitChain, Context,
        "a thread in a kernel wait on a held mutex or on another thread or process (HandleData)";
    MultipleExceptions: "Multiple Exceptions", Exception, Cause,
        "more than one thread inside exception dispatch";
    MessageBox: "Message Box", Thread, Cause,
        "a thread under MessageBox*: caption and text";
    HeapCorruption: "Dynamic Memory Corruption (Process Heap)", DynamicMemoryCorruption, Cause,
        "c0000374, or an access violation inside the heap manager";
    DoubleFree: "Double Free", DynamicMemoryCorruption, Cause,
        "a heap failure reported on a free path, or c0000374 with a free on the stack";
    HiddenException: "Hidden Exception", HiddenArtifact, Context,
        "exception records left on raw stacks";
    ExecutionResidue: "Execution Residue", HiddenArtifact, Context,
        "exception-dispatch return addresses below a thread's stack pointer";
    CoincidentalSymbolicInformation: "Coincidental Symbolic Information", FalsityAndCoincidence,
        Quality,
        "return-address-like values on the faulting thread's live stack outside its trusted call chain";
    VirtualizedProcess: "Virtualized Process", Process, Context,
        "a WOW64 process in a 64-bit dump";
    InstrumentationInformation: "Instrumentation Information", Process, Context,
        "heap-checking and verifier flags in the PEB, verifier modules";
    EnvironmentHint: "Environment Hint", Process, Context,
        "environment variables that change runtime or debugger behaviour";
    PassiveThread: "Passive Thread (User Space)", Thread, Context,
        "in dumps taken on purpose: threads idle in ordinary waits";
    IncorrectStackTrace: "Incorrect Stack Trace", StackTrace, Quality,
        "frames found by scanning, returns not after a call, frames outside modules or stacks";
    TruncatedStackTrace: "Truncated Stack Trace", StackTrace, Quality,
        "a walk that stops before the thread's start routine while stack remains";
    StackTraceCollection: "Stack Trace Collection", StackTrace, Context,
        "identical stacks grouped and counted";
    MainThread: "Main Thread", Thread, Context,
        "in dumps taken on purpose: the first thread and what it does";
    ActiveThread: "Active Thread", Thread, Context,
        "in dumps taken on purpose: threads running, not in a system call";
    ThreadAge: "Thread Age", Thread, Context,
        "threads created in the last fifth of a process life of 5 s or more";
    NotMyThread: "Not My Thread", Thread, Context,
        "threads whose start routine is outside the application's modules";
    UnknownComponent: "Unknown Component", Module, Context,
        "modules without version or company, from temp/download folders, system DLL names elsewhere";
    NotMyVersion: "Not My Version", Module, Quality,
        "a PDB from another build on the symbol path; one product in several versions";
    ManagedCodeException: "Managed Code Exception", DotNet, Cause,
        "e0434352 / e0434f4d: the HRESULT and the .NET type it stands for";
    ClrThread: "CLR Thread", DotNet, Context,
        "threads in the .NET runtime (finalizer, GC, debugger, thread pool) or in JIT code";
    JitCode: "JIT Code (.NET)", DotNet, Context,
        "frames in executable private memory with the runtime loaded";
    ActiveSpace: "Active Space", Thread, Context,
        "threads crossing WOW64's 32/64-bit layers or native, runtime and JIT code";
}

impl Pattern {
    /// The pattern of a catalog name, if the analysis reports it.
    pub fn from_name(name: &str) -> Option<Pattern> {
        Pattern::ALL.iter().copied().find(|p| p.name() == name)
    }

    /// The documentation's table row for this pattern.
    pub fn doc_row(self) -> String {
        format!(
            "| {} | {} | {} |",
            self.name(),
            self.category().name(),
            self.reported_when()
        )
    }
}

impl Serialize for Pattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        for p in Pattern::ALL {
            assert_eq!(Pattern::from_name(p.name()), Some(*p));
            assert_eq!(
                Pattern::ALL.iter().filter(|q| q.name() == p.name()).count(),
                1
            );
        }
        assert_eq!(Pattern::from_name("No Such Pattern"), None);
    }

    #[test]
    fn every_name_is_in_the_catalog() {
        // The shared folder sits beside the repository (DUMPDIAG_SHARED overrides it).
        let shared = std::env::var("DUMPDIAG_SHARED")
            .unwrap_or_else(|_| format!("{}/../../../shared", env!("CARGO_MANIFEST_DIR")));
        let catalog = std::fs::read_to_string(format!("{shared}/docs/patterns.md")).unwrap();
        for p in Pattern::ALL {
            assert!(
                catalog.contains(&format!("| {} |", p.name())),
                "{} not in patterns.md",
                p
            );
        }
    }
}
