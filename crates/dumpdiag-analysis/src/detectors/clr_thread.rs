//! CLR Thread: threads running .NET runtime code, named by what the runtime uses them for
//! (finalizer, GC, debugger helper, tiered compilation, thread pool, managed threads).

use crate::managed::{is_generated_code, is_runtime_frame, runtime_module};
use crate::silent;
use crate::{Detector, Evidence, Finding, Pattern, Strength};

pub struct ClrThread;

/// Runtime function names → the thread's role.
const ROLES: &[(&str, &str)] = &[
    ("Finalizer", "finalizer thread"),
    ("gc_thread", "GC thread"),
    ("GCThread", "GC thread"),
    ("DebuggerRCThread", "debugger helper thread"),
    ("TieredCompilation", "tiered compilation worker"),
    ("ThreadpoolMgr", "CLR thread pool thread"),
    ("PortableThreadPool", "CLR thread pool thread"),
    ("KickOffThread", "managed thread (System.Threading.Thread)"),
    ("ExecuteMainMethod", "managed main thread"),
    ("RunMain", "managed main thread"),
];

impl Detector for ClrThread {
    fn pattern(&self) -> Pattern {
        Pattern::ClrThread
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let Some(runtime) = runtime_module(ev) else {
            silent!("no .NET runtime module (coreclr, clr, mscorwks, mscorsvr) is loaded");
        };
        let mut found = Vec::new();
        for t in &ev.threads {
            let runtime_frames: Vec<&crate::FrameView> = t
                .frames
                .iter()
                .filter(|f| is_runtime_frame(f.module.as_deref()))
                .collect();
            let jit = t.frames.iter().any(|f| is_generated_code(ev, f.ip));
            if runtime_frames.is_empty() && !jit {
                continue;
            }
            let role = runtime_frames
                .iter()
                .rev()
                .find_map(|f| {
                    f.function
                        .as_deref()
                        .and_then(|n| ROLES.iter().find(|r| n.contains(r.0)).map(|r| r.1))
                })
                .unwrap_or(if jit {
                    "thread running managed code"
                } else {
                    "thread in runtime code"
                });
            let deepest = runtime_frames
                .last()
                .map(|f| f.call_site())
                .unwrap_or_default();
            found.push((
                t.id,
                format!(
                    "thread {:x}: {role}{}",
                    t.id,
                    if deepest.is_empty() {
                        String::new()
                    } else {
                        format!(" ({deepest})")
                    }
                ),
            ));
        }
        if found.is_empty() {
            silent!("no thread runs runtime or JIT-compiled code");
        }
        let mut evidence = vec![format!("runtime: {}", runtime.path)];
        evidence.extend(found.iter().map(|f| f.1.clone()));
        vec![Finding::new(self.pattern(), Strength::Proven, format!("{} thread(s) belong to the .NET runtime or run managed code", found.len()))
            .threads(found.iter().map(|f| f.0).collect())
            .notes(evidence)
            .recommend("Runtime threads (finalizer, GC, debugger helper) normally wait; a blocked finalizer or a GC thread that is not waiting deserves a look with SOS (!threads, !finalizequeue).")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::Analysed;
    use crate::Confidence;
    use dumpdiag_synth::process::PAGE_EXECUTE_READ;
    use dumpdiag_synth::{Func, Function, Module, Process};
    use dumpdiag_target::Arch;

    const MAIN: u32 = 0x10;
    const FINALIZER: u32 = 0x20;
    const DEBUGGER: u32 = 0x30;
    const CORECLR: &str =
        "C:\\Program Files\\dotnet\\shared\\Microsoft.NETCore.App\\8.0.4\\coreclr.dll";

    /// A process whose main thread waits in the host, with the runtime's functions in the
    /// module at `runtime_path`; `runtime_threads` adds the finalizer and the debugger helper
    /// thread, waiting in them. Returns the process, CallDescrWorkerInternal (what calls
    /// compiled code) and the start frames.
    fn process(
        arch: Arch,
        runtime_path: &str,
        runtime_threads: bool,
    ) -> (Process, Func, [Func; 2]) {
        let mut p = Process::new(arch);
        let host = p.module(Module::new("C:\\app\\orders.exe"));
        let ntdll = p.module(Module::new("C:\\Windows\\System32\\ntdll.dll"));
        let kernel32 = p.module(Module::new("C:\\Windows\\System32\\kernel32.dll"));
        let kernelbase = p.module(Module::new("C:\\Windows\\System32\\KERNELBASE.dll"));
        let runtime = p.module(Module::new(runtime_path));
        let wait = p.add_function(ntdll, Function::syscall("NtWaitForSingleObject", 4));
        let wait_multiple =
            p.add_function(ntdll, Function::syscall("NtWaitForMultipleObjects", 0x5b));
        let wait_ex = p.function(kernelbase, "WaitForMultipleObjectsEx", 0x80);
        let thunk = p.function(kernel32, "BaseThreadInitThunk", 0x40);
        let start = p.function(ntdll, "RtlUserThreadStart", 0x40);
        let wmain = p.function(host, "wmain", 0x80);
        let finalizer_wait = p.function(runtime, "WaitForFinalizerEvent", 0x80);
        let finalizer = p.function(runtime, "FinalizerThreadStart", 0x80);
        let rc_loop = p.function(runtime, "DebuggerRCThread::MainLoop", 0x80);
        let rc_start = p.function(runtime, "DebuggerRCThread::ThreadProcStatic", 0x80);
        let call_descr = p.function(runtime, "CallDescrWorkerInternal", 0x80);
        p.thread(MAIN, [wait, wmain, thunk, start]);
        if runtime_threads {
            p.thread(
                FINALIZER,
                [
                    wait_multiple,
                    wait_ex,
                    finalizer_wait,
                    finalizer,
                    thunk,
                    start,
                ],
            );
            p.thread(
                DEBUGGER,
                [wait_multiple, wait_ex, rc_loop, rc_start, thunk, start],
            );
        }
        (p, call_descr, [thunk, start])
    }

    #[test]
    fn runtime_threads_are_named_by_their_role() {
        for arch in [Arch::Amd64, Arch::X86] {
            let found = Analysed::exports_only(process(arch, CORECLR, true).0).detect(&ClrThread);
            assert_eq!(found.len(), 1, "{arch:?}: {found:#?}");
            let f = &found[0];
            assert_eq!(f.threads, vec![FINALIZER, DEBUGGER], "{arch:?}");
            assert_eq!(
                f.evidence(),
                vec![
                    format!("runtime: {CORECLR}"),
                    "thread 20: finalizer thread (coreclr!FinalizerThreadStart)".to_string(),
                    "thread 30: debugger helper thread \
                     (coreclr!DebuggerRCThread::ThreadProcStatic)"
                        .to_string(),
                ],
                "{arch:?}"
            );
            assert_eq!(f.confidence(), Confidence::High);
        }
    }

    #[test]
    fn without_the_runtime_loaded_no_thread_is_a_clr_thread() {
        // The same threads in the same functions, but the module is no .NET runtime.
        let (p, _, _) = process(Arch::Amd64, "C:\\app\\gcworker.dll", true);
        let found = Analysed::exports_only(p).detect(&ClrThread);
        assert!(found.is_empty(), "{found:#?}");
    }

    #[test]
    fn with_the_runtime_loaded_but_unused_no_thread_is_a_clr_thread() {
        let (p, _, _) = process(Arch::Amd64, CORECLR, false);
        let found = Analysed::exports_only(p).detect(&ClrThread);
        assert!(found.is_empty(), "{found:#?}");
    }

    #[test]
    fn a_thread_running_jit_compiled_code_is_a_clr_thread() {
        // A thread the runtime calls managed code on, running a compiled method: no runtime
        // frame names a role, the compiled frame says what it is.
        for arch in [Arch::Amd64, Arch::X86] {
            let (mut p, call_descr, [thunk, start]) = process(arch, CORECLR, false);
            let heap = p.code_heap(0x1_0000, PAGE_EXECUTE_READ);
            let method = p.jit_function(heap, Function::new("Worker.Run", 0x80).save_fp(true));
            p.thread(0x40, [method, call_descr, thunk, start]);
            let found = Analysed::exports_only(p).detect(&ClrThread);
            assert_eq!(found.len(), 1, "{arch:?}: {found:#?}");
            assert_eq!(found[0].threads, vec![0x40]);
            assert_eq!(
                found[0].evidence()[1],
                "thread 40: thread running managed code (coreclr!CallDescrWorkerInternal)",
                "{arch:?}"
            );
        }
    }
}
