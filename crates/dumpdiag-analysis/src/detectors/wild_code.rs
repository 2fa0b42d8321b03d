//! Wild Code: the instruction pointer is outside every module and outside executable memory.

use super::exception_thread;
use crate::{silent, Detector, Evidence, Finding, Pattern, Strength};

pub struct WildCode;

impl Detector for WildCode {
    fn pattern(&self) -> Pattern {
        Pattern::WildCode
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let Some(f0) = ev.exception_frames().first() else {
            silent!("no exception, or its stack could not be walked");
        };
        let t = ev.target();
        let ip = f0.ip;
        if ip < super::NULL_PAGE_END {
            silent!("{ip:#x} is in the NULL page: NULL Pointer (Code)'s");
        }
        if t.module_at(ip).is_some() {
            silent!("{ip:#x} is in a module");
        }
        // Generated code the dump describes (FunctionTable stream) or executable memory is JIT.
        if t.extras()
            .function_tables
            .iter()
            .any(|ft| ip >= ft.minimum_address && ip < ft.maximum_address)
        {
            silent!("{ip:#x} is generated code the FunctionTable stream describes");
        }
        let executable = t
            .region_at(ip)
            .is_some_and(|r| r.state == dumpdiag_target::MEM_COMMIT && r.protect & 0xf0 != 0);
        if executable {
            silent!("{ip:#x} is in executable memory (JIT or other generated code)");
        }
        let caller = ev
            .exception_frames()
            .get(1)
            .map(|f| f.call_site())
            .unwrap_or_else(|| "unknown".into());
        vec![Finding::new(
            self.pattern(), Strength::Proven,
            format!("execution at {ip:#x}, outside every module and every executable region, reached from {caller}"),
        )
        .threads(exception_thread(ev))
        .notes([format!("instruction pointer {ip:#x}: no module, not executable"), format!("caller: {caller}")])

        .recommend("A corrupted function pointer, vtable or return address sent execution here; inspect the caller's call target (ub on the return address).")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::Analysed;
    use crate::Confidence;
    use dumpdiag_synth::process::{PAGE_EXECUTE_READ, PAGE_READWRITE};
    use dumpdiag_synth::{Exception, Func, Function, Module, Process};
    use dumpdiag_target::Arch;

    const ACCESS_VIOLATION: u32 = 0xc000_0005;
    const EXECUTE: u64 = 8;

    /// Thread 0x100 called from service!dispatch_message into `protect` private memory (a
    /// handler pointer read from a freed object, say) and faulted executing there. Returns the
    /// process, the memory and the function placed in it.
    fn called_into(arch: Arch, protect: u32) -> (Process, dumpdiag_synth::CodeHeap, Func) {
        let mut p = Process::new(arch);
        let app = p.module(Module::new("C:\\app\\service.exe"));
        let ntdll = p.module(Module::new("C:\\Windows\\System32\\ntdll.dll"));
        let kernel32 = p.module(Module::new("C:\\Windows\\System32\\kernel32.dll"));
        let memory = p.code_heap(0x1_0000, protect);
        let wild = p.jit_function(memory, Function::new("handler", 0x20).leaf());
        let dispatch = p.function(app, "dispatch_message", 0x80);
        let main = p.function(app, "main", 0x80);
        let thunk = p.function(kernel32, "BaseThreadInitThunk", 0x40);
        let start = p.function(ntdll, "RtlUserThreadStart", 0x40);
        p.thread(0x100, [wild, dispatch, main, thunk, start]);
        let mut e = Exception::new(0x100, ACCESS_VIOLATION);
        e.parameters = vec![EXECUTE, wild.body()];
        p.exception(e);
        (p, memory, wild)
    }

    #[test]
    fn execution_in_memory_that_is_neither_a_module_nor_executable_is_wild_code() {
        for arch in [Arch::Amd64, Arch::X86] {
            let (p, _, wild) = called_into(arch, PAGE_READWRITE);
            let ip = wild.body();
            let found = Analysed::exports_only(p).detect(&WildCode);
            assert_eq!(found.len(), 1, "{arch:?}");
            let f = &found[0];
            assert_eq!(
                f.summary,
                format!(
                    "execution at {ip:#x}, outside every module and every executable region, \
                     reached from service!dispatch_message"
                ),
                "{arch:?}"
            );
            assert_eq!(
                f.evidence(),
                [
                    format!("instruction pointer {ip:#x}: no module, not executable"),
                    "caller: service!dispatch_message".to_string(),
                ]
            );
            assert_eq!(f.threads, [0x100]);
            assert_eq!(f.confidence(), Confidence::High);
        }
    }

    #[test]
    fn executable_private_memory_is_generated_code_not_wild() {
        for arch in [Arch::Amd64, Arch::X86] {
            let (p, _, _) = called_into(arch, PAGE_EXECUTE_READ);
            let found = Analysed::exports_only(p).detect(&WildCode);
            assert!(found.is_empty(), "{arch:?}: {found:#?}");
        }
    }

    #[test]
    fn without_a_memory_map_the_function_table_stream_marks_generated_code() {
        // No MemoryInfoList: the region's protection is unknown. Without anything describing
        // the code there it is wild; a runtime's function table for the range (RtlAddFunctionTable)
        // says it is generated code.
        let (mut p, _, _) = called_into(Arch::Amd64, PAGE_EXECUTE_READ);
        p.no_memory_info();
        assert_eq!(Analysed::exports_only(p).detect(&WildCode).len(), 1);
        let (mut p, heap, _) = called_into(Arch::Amd64, PAGE_EXECUTE_READ);
        p.no_memory_info();
        p.function_table(heap);
        let found = Analysed::exports_only(p).detect(&WildCode);
        assert!(found.is_empty(), "{found:#?}");
    }

    #[test]
    fn execution_in_the_null_page_or_in_a_module_is_not_wild_code() {
        for arch in [Arch::Amd64, Arch::X86] {
            // A call through a NULL function pointer: NULL Pointer (Code)'s.
            let (mut p, _, _) = called_into(arch, PAGE_READWRITE);
            let mut e = Exception::new(0x100, ACCESS_VIOLATION);
            e.parameters = vec![EXECUTE, 0];
            let sp = p.frames(0x100)[1].sp - p.ptr();
            let mut r = dumpdiag_synth::Registers::default();
            let [ip, sp_name, _] = dumpdiag_synth::context::ip_sp_fp(arch);
            r.set(ip, 0).set(sp_name, sp);
            e.context = dumpdiag_synth::ExceptionContext::Registers(r);
            p.exception(e);
            let found = Analysed::exports_only(p).detect(&WildCode);
            assert!(found.is_empty(), "{arch:?}: {found:#?}");
            // A fault in the application's own code.
            let (mut p, _, _) = called_into(arch, PAGE_READWRITE);
            let mut e = Exception::new(0x100, ACCESS_VIOLATION);
            e.parameters = vec![0, 0x10];
            e.context = dumpdiag_synth::ExceptionContext::Frame(1);
            p.exception(e);
            let found = Analysed::exports_only(p).detect(&WildCode);
            assert!(found.is_empty(), "{arch:?}: {found:#?}");
        }
    }
}
