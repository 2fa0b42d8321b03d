//! Managed Code Exception: a .NET exception raised through SEH — 0xE0434352 (CLR 4 / CoreCLR) or
//! 0xE0434F4D (CLR 2). The runtime puts the exception's HRESULT in parameter 0 and its own base
//! address in the last one; the HRESULT names the exception type. The exception object itself
//! needs the runtime's data structures (a later issue): the finding says so.

use crate::managed::{exception_type_of, runtime_module};
use crate::silent;
use crate::{Detector, Evidence, Finding, Pattern, Strength};

pub struct ManagedCodeException;

const CLR4_EXCEPTION: u32 = 0xe0434352;
const CLR2_EXCEPTION: u32 = 0xe0434f4d;

impl Detector for ManagedCodeException {
    fn pattern(&self) -> Pattern {
        Pattern::ManagedCodeException
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let Some(e) = &ev.exception else {
            silent!("no exception in the dump");
        };
        let code = e.record.code;
        if code != CLR4_EXCEPTION && code != CLR2_EXCEPTION {
            silent!("the exception is not one the CLR raises (e0434352, e0434f4d)");
        }
        let runtime_name = if code == CLR4_EXCEPTION {
            "CLR 4 / CoreCLR"
        } else {
            "CLR 2"
        };
        let mut evidence = vec![format!(
            "exception code {code:08x} ({runtime_name} exception) on thread {:x}",
            e.thread_id
        )];
        let hresult = e.record.parameters.first().map(|p| *p as u32);
        let type_name = hresult.and_then(exception_type_of);
        if let Some(hr) = hresult {
            evidence.push(format!(
                "HRESULT {hr:#010x}{}",
                type_name.map(|t| format!(": {t}")).unwrap_or_default()
            ));
        }
        let runtime = runtime_module(ev);
        if let Some(base) = e
            .record
            .parameters
            .last()
            .filter(|_| e.record.parameters.len() >= 2)
        {
            match ev.target().module_at(*base) {
                Some(m) => {
                    evidence.push(format!("raised by the runtime at {base:#x} ({})", m.path))
                }
                None => evidence.push(format!(
                    "runtime base in the record: {base:#x} (no module there)"
                )),
            }
        } else if let Some(m) = runtime {
            evidence.push(format!("runtime loaded: {}", m.path));
        }
        let managed_frames: Vec<String> = ev
            .exception_frames()
            .iter()
            .filter(|f| crate::managed::is_generated_code(ev, f.ip))
            .map(|f| format!("JIT-compiled frame at {:#x}", f.ip))
            .collect();
        evidence.extend(managed_frames);
        evidence.push("the exception object (type, message, managed stack) needs the runtime's data structures: not read yet".to_string());
        let what = type_name
            .map(|t| t.to_string())
            .unwrap_or_else(|| format!("HRESULT {:#010x}", hresult.unwrap_or(0)));
        vec![Finding::new(self.pattern(), Strength::Proven, format!("unhandled .NET exception: {what}"))
            .threads(vec![e.thread_id])
            .notes(evidence)
            .recommend(
                "Read the managed exception and its stack with SOS (!pe, !clrstack) or dotnet-dump; look for the missing catch or the failing call it names.",
            )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::Analysed;
    use crate::Confidence;
    use dumpdiag_synth::process::PAGE_EXECUTE_READ;
    use dumpdiag_synth::{Exception, Func, Function, Module, ModuleId, Process};
    use dumpdiag_target::Arch;

    const MAIN: u32 = 0x1c8;
    const CORECLR: &str =
        "C:\\Program Files\\dotnet\\shared\\Microsoft.NETCore.App\\8.0.4\\coreclr.dll";
    /// COR_E_INVALIDOPERATION.
    const INVALID_OPERATION: u32 = 0x8013_1509;

    /// A .NET program whose main thread is raising `code` through KERNELBASE!RaiseException
    /// from the runtime's IL_Throw, called by the compiled Program.Main, with the parameters
    /// CoreCLR gives its exceptions: the HRESULT (a ULONG_PTR: sign-extended on x64), three
    /// zeros, the runtime's base address. Returns the process, coreclr and Program.Main.
    fn throwing(arch: Arch, code: u32) -> (Process, ModuleId, Func) {
        let mut p = Process::new(arch);
        let host = p.module(Module::new("C:\\app\\orders.exe"));
        let ntdll = p.module(Module::new("C:\\Windows\\System32\\ntdll.dll"));
        let kernel32 = p.module(Module::new("C:\\Windows\\System32\\kernel32.dll"));
        let kernelbase = p.module(Module::new("C:\\Windows\\System32\\KERNELBASE.dll"));
        let coreclr = p.module(Module::new(CORECLR).text_size(0x8000));
        let raise = p.function(kernelbase, "RaiseException", 0x80);
        let internal = p.function(coreclr, "RaiseTheExceptionInternalOnly", 0x100);
        let il_throw = p.function(coreclr, "IL_Throw", 0x100);
        let call_descr = p.function(coreclr, "CallDescrWorkerInternal", 0x80);
        let run_main = p.function(coreclr, "RunMain", 0x100);
        let wmain = p.function(host, "wmain", 0x80);
        let heap = p.code_heap(0x1_0000, PAGE_EXECUTE_READ);
        let program_main = p.jit_function(heap, Function::new("Program.Main", 0x80).save_fp(true));
        let thunk = p.function(kernel32, "BaseThreadInitThunk", 0x40);
        let start = p.function(ntdll, "RtlUserThreadStart", 0x40);
        p.thread(
            MAIN,
            [
                raise,
                internal,
                il_throw,
                program_main,
                call_descr,
                run_main,
                wmain,
                thunk,
                start,
            ],
        );
        let hresult = match arch {
            Arch::Amd64 => INVALID_OPERATION as i32 as i64 as u64,
            _ => INVALID_OPERATION as u64,
        };
        let mut e = Exception::new(MAIN, code);
        e.flags = 1;
        e.parameters = vec![hresult, 0, 0, 0, coreclr.base];
        p.exception(e);
        (p, coreclr, program_main)
    }

    #[test]
    fn a_clr_exception_names_its_type_from_the_hresult_and_the_runtime_from_its_base() {
        for arch in [Arch::Amd64, Arch::X86] {
            let (p, coreclr, program_main) = throwing(arch, CLR4_EXCEPTION);
            let found = Analysed::exports_only(p).detect(&ManagedCodeException);
            assert_eq!(found.len(), 1, "{arch:?}: {found:#?}");
            let f = &found[0];
            assert_eq!(f.threads, vec![MAIN]);
            assert_eq!(
                f.summary,
                "unhandled .NET exception: System.InvalidOperationException"
            );
            let evidence = f.evidence();
            assert_eq!(
                evidence[..3],
                [
                    "exception code e0434352 (CLR 4 / CoreCLR exception) on thread 1c8".to_string(),
                    "HRESULT 0x80131509: System.InvalidOperationException".to_string(),
                    format!("raised by the runtime at {:#x} ({CORECLR})", coreclr.base),
                ],
                "{arch:?}"
            );
            // dumpdiag's x86 walk follows return addresses into modules only: the compiled
            // frame under IL_Throw is asked for on x64.
            if arch == Arch::Amd64 {
                let jit = format!("JIT-compiled frame at {:#x}", program_main.call_site(0));
                assert!(evidence.contains(&jit), "{evidence:?}");
            }
            assert!(evidence.last().unwrap().contains("not read yet"));
            assert_eq!(f.confidence(), Confidence::High);
        }
    }

    #[test]
    fn a_cpp_exception_in_a_process_with_the_runtime_is_no_managed_exception() {
        // Everything as above, the runtime's base in the last parameter included, but the code
        // is the Visual C++ runtime's (e06d7363): native code threw.
        let (p, _, _) = throwing(Arch::Amd64, 0xe06d_7363);
        let found = Analysed::exports_only(p).detect(&ManagedCodeException);
        assert!(found.is_empty(), "{found:#?}");
    }
}
