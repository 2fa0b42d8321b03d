//! What the .NET detectors share before .NET internals are read: which runtime is loaded, which
//! frames run JIT-compiled code, what a CLR exception's HRESULT names.

use crate::evidence::Evidence;
use dumpdiag_target::{ModuleRecord, MEM_COMMIT, MEM_PRIVATE};

/// Runtime modules: CoreCLR (.NET Core / .NET 5+), clr (.NET Framework 4), mscorwks/mscorsvr (2.0).
const RUNTIME_MODULES: &[&str] = &["coreclr", "clr", "mscorwks", "mscorsvr"];

pub fn runtime_module<'a>(ev: &'a Evidence) -> Option<&'a ModuleRecord> {
    ev.target()
        .modules()
        .iter()
        .find(|m| RUNTIME_MODULES.contains(&m.short_name().to_ascii_lowercase().as_str()))
}

pub fn is_runtime_frame(module: Option<&str>) -> bool {
    module.is_some_and(|m| RUNTIME_MODULES.contains(&m.to_ascii_lowercase().as_str()))
}

/// PAGE_EXECUTE, PAGE_EXECUTE_READ, PAGE_EXECUTE_READWRITE, PAGE_EXECUTE_WRITECOPY.
fn is_executable(protect: u32) -> bool {
    protect & 0xf0 != 0
}

/// Code outside every module, in committed executable private memory: where JIT compilers put
/// what they generate. Without a MemoryInfoList, any address outside modules that the dump
/// holds counts only when a dynamic function table (FunctionTable stream) covers it.
pub fn is_generated_code(ev: &Evidence, ip: u64) -> bool {
    let t = ev.target();
    if ip == 0 || t.module_at(ip).is_some() {
        return false;
    }
    match t.region_at(ip) {
        Some(r) => r.state == MEM_COMMIT && r.kind == MEM_PRIVATE && is_executable(r.protect),
        None => false,
    }
}

/// The .NET exception type a CLR exception's HRESULT stands for (corerror.h; some HRESULTs are
/// shared by several types).
pub fn exception_type_of(hresult: u32) -> Option<&'static str> {
    Some(match hresult {
        0x80131500 => "System.Exception",
        0x80131501 => "System.SystemException",
        0x80131502 => "System.ArgumentOutOfRangeException",
        0x80131503 => "System.ArrayTypeMismatchException",
        0x80131505 => "System.TimeoutException",
        0x80131508 => "System.IndexOutOfRangeException",
        0x80131509 => "System.InvalidOperationException",
        0x80131515 => "System.NotSupportedException",
        0x80131516 => "System.OverflowException",
        0x80131520 => "System.Threading.ThreadStateException",
        0x80131522 => "System.TypeLoadException",
        0x80131524 => "System.DllNotFoundException",
        0x80131530 => "System.Threading.ThreadAbortException",
        0x80131534 => "System.TypeInitializationException",
        0x80131537 => "System.FormatException",
        0x8013153B => "System.OperationCanceledException",
        0x80131577 => "System.Collections.Generic.KeyNotFoundException",
        0x80131604 => "System.Reflection.TargetInvocationException",
        0x80131620 => "System.IO.IOException",
        0x80131621 => "System.IO.FileLoadException",
        0x80131622 => "System.ObjectDisposedException",
        0x80131623 => "FailFast (System.Environment.FailFast)",
        0x80004001 => "System.NotImplementedException",
        0x80004002 => "System.InvalidCastException",
        0x80004003 => "System.NullReferenceException (or System.ArgumentNullException)",
        0x80070057 => "System.ArgumentException",
        0x8007000E => "System.OutOfMemoryException",
        0x80070005 => "System.UnauthorizedAccessException",
        0x80070002 => "System.IO.FileNotFoundException",
        0x80070003 => "System.IO.DirectoryNotFoundException",
        0x800703E9 => "System.StackOverflowException",
        0x80020012 => "System.DivideByZeroException",
        _ => return None,
    })
}
