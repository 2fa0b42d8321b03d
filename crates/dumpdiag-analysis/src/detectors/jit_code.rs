//! JIT Code (.NET): frames whose instruction pointer lies in executable private memory (no
//! module) of a process with the .NET runtime loaded — code the JIT compiler generated. Such
//! frames are named by the runtime's method tables, not by PDBs.

use crate::managed::{is_generated_code, runtime_module};
use crate::silent;
use crate::{Detector, Evidence, Finding, Pattern, Strength};

pub struct JitCode;

impl Detector for JitCode {
    fn pattern(&self) -> Pattern {
        Pattern::JitCode
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let Some(runtime) = runtime_module(ev) else {
            silent!("no .NET runtime module (coreclr, clr, mscorwks, mscorsvr) is loaded");
        };
        let mut evidence = Vec::new();
        let mut threads = Vec::new();
        for t in &ev.threads {
            let frames = ev.frames_of(t);
            for (i, f) in frames
                .iter()
                .enumerate()
                .filter(|(_, f)| is_generated_code(ev, f.ip))
            {
                let caller = frames
                    .get(i + 1)
                    .map(|c| format!(", called from {}", c.call_site()))
                    .unwrap_or_default();
                let callee = i
                    .checked_sub(1)
                    .and_then(|j| frames.get(j))
                    .map(|c| format!(", calls {}", c.call_site()))
                    .unwrap_or_default();
                evidence.push(format!(
                    "thread {:x} frame {i:02}: {:#x} in executable private memory{callee}{caller}",
                    t.id, f.ip
                ));
                if !threads.contains(&t.id) {
                    threads.push(t.id);
                }
            }
        }
        if evidence.is_empty() {
            silent!("no frame lies in executable private memory");
        }
        evidence.insert(0, format!("runtime loaded: {}", runtime.path));
        vec![Finding::new(self.pattern(), Strength::Proven, format!("{} frame(s) run JIT-compiled .NET code", evidence.len() - 1))
            .threads(threads)
            .notes(evidence)
            .recommend("Name these frames with the runtime's data (SOS !ip2md, !clrstack); native symbols cannot.")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::Analysed;
    use crate::Confidence;
    use dumpdiag_synth::process::{PAGE_EXECUTE_READ, PAGE_READWRITE};
    use dumpdiag_synth::{Func, Function, Module, Process};
    use dumpdiag_target::Arch;

    const RUNNING: u32 = 0x10;
    const WAITING: u32 = 0x20;
    const CORECLR: &str =
        "C:\\Program Files\\dotnet\\shared\\Microsoft.NETCore.App\\8.0.4\\coreclr.dll";

    /// A .NET program with the runtime's functions in `runtime_path` and a code heap of
    /// `protect`. RUNNING runs a compiled method called by the runtime; on x64, WAITING waits
    /// in a system call made from another compiled method. Returns the process and the two
    /// methods.
    fn managed(arch: Arch, runtime_path: &str, protect: u32) -> (Process, [Func; 2]) {
        let mut p = Process::new(arch);
        let host = p.module(Module::new("C:\\app\\orders.exe"));
        let ntdll = p.module(Module::new("C:\\Windows\\System32\\ntdll.dll"));
        let kernel32 = p.module(Module::new("C:\\Windows\\System32\\kernel32.dll"));
        let kernelbase = p.module(Module::new("C:\\Windows\\System32\\KERNELBASE.dll"));
        let runtime = p.module(Module::new(runtime_path));
        let heap = p.code_heap(0x1_0000, protect);
        let wait = p.add_function(ntdll, Function::syscall("NtWaitForSingleObject", 4));
        let wait_ex = p.function(kernelbase, "WaitForSingleObjectEx", 0x80);
        let start = p.function(ntdll, "RtlUserThreadStart", 0x40);
        let thunk = p.function(kernel32, "BaseThreadInitThunk", 0x40);
        let call_descr = p.function(runtime, "CallDescrWorkerInternal", 0x80);
        let run_main = p.function(runtime, "RunMain", 0x80);
        let wmain = p.function(host, "wmain", 0x80);
        // The JIT gives managed methods frame-pointer frames.
        let total = p.jit_function(heap, Function::new("Orders.Total", 0x80).save_fp(true));
        let fetch = p.jit_function(heap, Function::new("Orders.Fetch", 0x80).save_fp(true));
        p.thread(RUNNING, [total, call_descr, run_main, wmain, thunk, start]);
        // dumpdiag's x86 walk follows return addresses into modules only, so a compiled frame
        // under another frame is an x64 case.
        if arch == Arch::Amd64 {
            p.thread(
                WAITING,
                [
                    wait, wait_ex, fetch, call_descr, run_main, wmain, thunk, start,
                ],
            );
        }
        (p, [total, fetch])
    }

    #[test]
    fn frames_in_executable_private_memory_with_the_runtime_loaded_are_jit_code() {
        for arch in [Arch::Amd64, Arch::X86] {
            let (p, [total, fetch]) = managed(arch, CORECLR, PAGE_EXECUTE_READ);
            let fetch_ip = fetch.call_site(0);
            let found = Analysed::exports_only(p).detect(&JitCode);
            assert_eq!(found.len(), 1, "{arch:?}: {found:#?}");
            let f = &found[0];
            let mut evidence = vec![
                format!("runtime loaded: {CORECLR}"),
                format!(
                    "thread 10 frame 00: {:#x} in executable private memory, called from \
                     coreclr!CallDescrWorkerInternal",
                    total.body()
                ),
            ];
            if arch == Arch::Amd64 {
                assert_eq!(f.threads, vec![RUNNING, WAITING]);
                assert_eq!(f.summary, "2 frame(s) run JIT-compiled .NET code");
                evidence.push(format!(
                    "thread 20 frame 02: {fetch_ip:#x} in executable private memory, calls \
                     KERNELBASE!WaitForSingleObjectEx, called from \
                     coreclr!CallDescrWorkerInternal"
                ));
            } else {
                assert_eq!(f.threads, vec![RUNNING]);
                assert_eq!(f.summary, "1 frame(s) run JIT-compiled .NET code");
            }
            assert_eq!(f.evidence(), evidence, "{arch:?}");
            assert_eq!(f.confidence(), Confidence::High);
        }
    }

    #[test]
    fn without_the_runtime_executable_private_memory_is_not_jit_code() {
        // The same frames in the same memory, but no .NET runtime: some other code generator
        // (or injected code) that this pattern does not name.
        for arch in [Arch::Amd64, Arch::X86] {
            let (p, _) = managed(arch, "C:\\app\\engine.dll", PAGE_EXECUTE_READ);
            let found = Analysed::exports_only(p).detect(&JitCode);
            assert!(found.is_empty(), "{arch:?}: {found:#?}");
        }
    }

    #[test]
    fn a_frame_in_private_memory_that_is_not_executable_is_not_jit_code() {
        // The runtime is loaded and the thread's instruction pointer is in private memory, but
        // read-write memory: no JIT put code there (a call through a data pointer, Wild Code).
        let (p, [total, _]) = managed(Arch::X86, CORECLR, PAGE_READWRITE);
        let a = Analysed::exports_only(p);
        let ev = a.evidence();
        let top = ev.threads[0].frames[0].ip;
        assert_eq!(top, total.body());
        assert!(dumpdiag_target::Target::module_at(a.target(), top).is_none());
        let found = a.detect(&JitCode);
        assert!(found.is_empty(), "{found:#?}");
    }
}
