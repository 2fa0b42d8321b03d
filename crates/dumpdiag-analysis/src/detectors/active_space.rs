//! Active Space: where threads execute when a process mixes execution spaces — a WOW64 process's
//! 32-bit code and the 64-bit layer beneath it, or managed (JIT-compiled) code and the runtime
//! and native code around it. Purely native processes have one space and no finding.

use dumpdiag_target::Context;

use crate::managed::{is_generated_code, is_runtime_frame, runtime_module};
use crate::{silent, Detector, Evidence, Fact, Finding, Pattern, Strength};

pub struct ActiveSpace;

/// The 64-bit modules a WOW64 thread passes through on its way to the kernel.
const WOW64_LAYER: &[&str] = &[
    "wow64cpu",
    "wow64",
    "wow64win",
    "wow64base",
    "wow64con",
    "ntdll",
];

impl Detector for ActiveSpace {
    fn pattern(&self) -> Pattern {
        Pattern::ActiveSpace
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let mut evidence = if ev.is_wow64() {
            wow64_spaces(ev)
        } else {
            Vec::new()
        };
        if runtime_module(ev).is_some() {
            evidence.extend(managed_spaces(ev));
        }
        if evidence.is_empty() {
            silent!(
                wow64 = ev.is_wow64(),
                "no thread crosses WOW64's layers or runs JIT-compiled code beside native code"
            );
        }
        let threads = evidence.iter().map(|e| e.0).fold(Vec::new(), |mut v, t| {
            if !v.contains(&t) {
                v.push(t);
            }
            v
        });
        vec![Finding::new(self.pattern(), Strength::Likely, format!("{} thread(s) cross execution spaces", threads.len()))
            .threads(threads)
            .facts(evidence.into_iter().map(|(id, note)| Fact::Thread { id, note }))
            .recommend("Read each thread in the space it executes: .effmach x86 for WOW64's 32-bit code, the runtime's view (SOS) for managed frames.")]
    }
}

/// For each thread of a WOW64 process: captured in 32-bit mode (cs 0x23) or in the 64-bit layer,
/// and where its 32-bit code is.
fn wow64_spaces(ev: &Evidence) -> Vec<(u32, String)> {
    let t = ev.target();
    let mut out = Vec::new();
    for (i, th) in t.threads().iter().enumerate() {
        let native = t.thread_context(i);
        let in_32bit = match &native {
            Some(Context::Amd64(c, _)) => c.cs == 0x23,
            _ => false,
        };
        let x86_ip = dumpdiag_os::wow64::x86_context(t.memory(), th.teb).map(|c| c.ip());
        let name = |ip: u64| ev.describe(ip);
        if in_32bit {
            out.push((
                th.id,
                format!(
                    "thread {:x} was executing 32-bit code at {}",
                    th.id,
                    native.as_ref().map(|c| name(c.ip())).unwrap_or_default()
                ),
            ));
            continue;
        }
        let Some(ip) = native.as_ref().map(|c| c.ip()) else {
            continue;
        };
        let layer = t
            .module_at(ip)
            .map(|m| m.short_name().to_ascii_lowercase())
            .filter(|m| WOW64_LAYER.contains(&m.as_str()));
        if let (Some(layer), Some(x86)) = (layer, x86_ip) {
            out.push((th.id, format!("thread {:x} is in the 64-bit WOW64 layer ({layer}: {}); its 32-bit code is at {}", th.id, name(ip), name(x86))));
        }
    }
    out
}

/// Threads whose stacks pass between native, runtime and JIT-compiled code.
fn managed_spaces(ev: &Evidence) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for t in &ev.threads {
        let frames = ev.frames_of(t);
        if !frames.iter().any(|f| is_generated_code(ev, f.ip)) {
            continue;
        }
        // The spaces from the top frame down, consecutive repeats folded: native → runtime → managed → native.
        let mut spaces: Vec<&str> = Vec::new();
        for f in frames {
            let space = if is_generated_code(ev, f.ip) {
                "managed (JIT)"
            } else if is_runtime_frame(f.module.as_deref()) {
                "runtime"
            } else {
                "native"
            };
            if spaces.last() != Some(&space) {
                spaces.push(space);
            }
        }
        out.push((
            t.id,
            format!(
                "thread {:x} executes in {} (from the top frame down)",
                t.id,
                spaces.join(" ← ")
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::Analysed;
    use crate::Confidence;
    use dumpdiag_synth::{Func, Function, Module, ModuleId, Process};
    use dumpdiag_target::Arch;

    /// A 32-bit program: (process, [SleepEx chain], [compute chain]) — a worker sleeping
    /// (ntdll!NtDelayExecution ← KERNELBASE!SleepEx ← app!worker ← thread start) and the main
    /// thread computing (app!compute ← app!main ← thread start).
    fn program(mut p: Process, ntdll: ModuleId, system: &str) -> (Process, [Vec<Func>; 2]) {
        let app = p.module(Module::new("C:\\app\\legacy32.exe"));
        let kernel32 = p.module(Module::new(&format!("{system}\\kernel32.dll")));
        let kernelbase = p.module(Module::new(&format!("{system}\\KERNELBASE.dll")));
        let delay = p.add_function(ntdll, Function::syscall("NtDelayExecution", 0x34));
        let start = p.function(ntdll, "RtlUserThreadStart", 0x40);
        let thunk = p.function(kernel32, "BaseThreadInitThunk", 0x40);
        let sleep = p.function(kernelbase, "SleepEx", 0x80);
        let worker = p.function(app, "worker", 0x80);
        let compute = p.function(app, "compute", 0x80);
        let main = p.function(app, "main", 0x80);
        let chains = [
            vec![delay, sleep, worker, thunk, start],
            vec![compute, main, thunk, start],
        ];
        (p, chains)
    }

    fn wow64() -> (Process, [Vec<Func>; 2]) {
        let p = Process::wow64();
        let ntdll32 = p.wow64_layer().unwrap().ntdll32;
        program(p, ntdll32, "C:\\Windows\\SysWOW64")
    }

    #[test]
    fn wow64_threads_are_placed_in_the_64_bit_layer_or_in_32_bit_code() {
        let (mut p, [sleeping, computing]) = wow64();
        let layer = p.wow64_layer().unwrap().clone();
        // 0x10: parked in a 32-bit system call (the layer's default chain, 64-bit ntdll on
        // top); 0x20: the same, caught in wow64cpu's simulation loop; 0x30: caught running
        // its own 32-bit code (cs 0x23).
        p.thread(0x10, sleeping.clone());
        p.thread(0x20, sleeping);
        p.native_chain(0x20, layer.chain[3..].to_vec());
        p.thread(0x30, computing).in_32bit_code();
        let a = Analysed::with_symbols(p);
        let found = a.detect(&ActiveSpace);
        assert_eq!(found.len(), 1, "{found:#?}");
        let f = &found[0];
        assert_eq!(f.summary, "3 thread(s) cross execution spaces");
        assert_eq!(f.threads, vec![0x10, 0x20, 0x30]);
        let evidence = f.evidence();
        assert!(
            evidence[0].starts_with(
                "thread 10 is in the 64-bit WOW64 layer (ntdll: ntdll!NtWaitForSingleObject"
            ) && evidence[0].contains("its 32-bit code is at ntdll!NtDelayExecution"),
            "{evidence:?}"
        );
        assert!(
            evidence[1].starts_with(
                "thread 20 is in the 64-bit WOW64 layer (wow64cpu: wow64cpu!BTCpuSimulate"
            ),
            "{evidence:?}"
        );
        assert!(
            evidence[2].starts_with("thread 30 was executing 32-bit code at legacy32!compute"),
            "{evidence:?}"
        );
        assert_eq!(f.confidence(), Confidence::Medium);
    }

    #[test]
    fn a_wow64_thread_outside_the_layer_does_not_count() {
        // A WOW64 process whose only thread has its 64-bit context in a 64-bit DLL of its
        // own (a hook injected into the 64-bit side), not in WOW64's layer.
        let (mut p, [sleeping, _]) = wow64();
        let hook = p.native_module(Module::new("C:\\Program Files\\Hooks\\hook64.dll"));
        let hooked = p.function(hook, "hook_dispatch", 0x80);
        p.thread(0x10, sleeping);
        p.native_chain(0x10, [hooked]);
        let a = Analysed::with_symbols(p);
        assert!(a.evidence().is_wow64());
        assert!(a.detect(&ActiveSpace).is_empty());
    }

    #[test]
    fn a_process_of_one_machine_without_a_runtime_has_one_space() {
        // The same program in a 32-bit dump (dumped by a 32-bit writer) and built for x64.
        for (arch, system) in [
            (Arch::X86, "C:\\Windows\\SysWOW64"),
            (Arch::Amd64, "C:\\Windows\\System32"),
        ] {
            let mut p = Process::new(arch);
            let ntdll = p.module(Module::new(&format!("{system}\\ntdll.dll")));
            let (mut p, [sleeping, computing]) = program(p, ntdll, system);
            p.thread(0x10, sleeping);
            p.thread(0x30, computing);
            assert!(
                Analysed::with_symbols(p).detect(&ActiveSpace).is_empty(),
                "{arch:?}"
            );
        }
    }
}
