//! Exception codes, access kinds, fast-fail codes and dump flags by name. The values are
//! minidump-common's enums (WinNT.h, ntstatus.h, winnt.h's FAST_FAIL_* as published in the
//! Windows SDK); the few codes those enums lack are defined here with their header of origin.

use minidump_common::errors::{
    ExceptionCodeWindows as Exc, ExceptionCodeWindowsAccessType as Access, FastFailCode,
    NtStatusWindows as Nt,
};
use num_traits::FromPrimitive;

pub const ACCESS_VIOLATION: u32 = Exc::EXCEPTION_ACCESS_VIOLATION as u32;
pub const BREAKPOINT: u32 = Exc::EXCEPTION_BREAKPOINT as u32;
pub const SINGLE_STEP: u32 = Exc::EXCEPTION_SINGLE_STEP as u32;
pub const INT_DIVIDE_BY_ZERO: u32 = Exc::EXCEPTION_INT_DIVIDE_BY_ZERO as u32;
pub const FLT_DIVIDE_BY_ZERO: u32 = Exc::EXCEPTION_FLT_DIVIDE_BY_ZERO as u32;
pub const ILLEGAL_INSTRUCTION: u32 = Exc::EXCEPTION_ILLEGAL_INSTRUCTION as u32;
pub const PRIV_INSTRUCTION: u32 = Exc::EXCEPTION_PRIV_INSTRUCTION as u32;
pub const STACK_OVERFLOW: u32 = Exc::EXCEPTION_STACK_OVERFLOW as u32;
pub const IN_PAGE_ERROR: u32 = Exc::EXCEPTION_IN_PAGE_ERROR as u32;
pub const GUARD_PAGE: u32 = Exc::EXCEPTION_GUARD_PAGE as u32;
pub const INVALID_HANDLE: u32 = Exc::EXCEPTION_INVALID_HANDLE as u32;
/// MSVC's C++ `throw` (`'msc' | 0xe0000000`).
pub const CPP_EXCEPTION: u32 = Exc::UNHANDLED_CPP_EXCEPTION as u32;
/// CoreCLR and CLR 4 managed exceptions (`'CCR' | 0xe0000000`).
pub const CLR_EXCEPTION: u32 = Exc::MANAGED_EXCEPTION_CODE_V4 as u32;
/// CLR 2.0 managed exceptions (`'COM' | 0xe0000000`, corexcep.h EXCEPTION_COMPLUS).
pub const CLR_EXCEPTION_V2: u32 = 0xe043_4f4d;
pub const HEAP_CORRUPTION: u32 = Nt::STATUS_HEAP_CORRUPTION as u32;
/// `__fastfail` and /GS failures (STATUS_STACK_BUFFER_OVERRUN; parameter 0 is the FAST_FAIL code).
pub const STACK_BUFFER_OVERRUN: u32 = Nt::STATUS_STACK_BUFFER_OVERRUN as u32;
/// A 32-bit breakpoint seen by a 64-bit debugger of a WOW64 process (ntstatus.h).
pub const WX86_BREAKPOINT: u32 = 0x4000_001f;

/// EXCEPTION_RECORD.ExceptionInformation[0] of an access violation.
pub const ACCESS_READ: u64 = Access::READ as u64;
pub const ACCESS_WRITE: u64 = Access::WRITE as u64;
pub const ACCESS_EXECUTE: u64 = Access::EXEC as u64;

/// What an access violation tried, by its first parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessKind {
    Read,
    Write,
    Execute,
}

impl AccessKind {
    pub fn from_parameter(p: u64) -> Option<AccessKind> {
        match Access::from_u64(p)? {
            Access::READ => Some(AccessKind::Read),
            Access::WRITE => Some(AccessKind::Write),
            Access::EXEC => Some(AccessKind::Execute),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            AccessKind::Read => "read",
            AccessKind::Write => "write",
            AccessKind::Execute => "execute",
        }
    }
}

/// A FAST_FAIL code's name (`FAST_FAIL_FATAL_APP_EXIT`), from winnt.h via minidump-common.
pub fn fast_fail_name(code: u64) -> Option<String> {
    FastFailCode::from_u64(code).map(|c| format!("{c:?}"))
}

/// Fast-fail codes raised by the checks that guard a stack frame against a buffer overrun:
/// /GS (`__report_gsfailure` raises FAST_FAIL_STACK_COOKIE_CHECK_FAILURE, older CRTs the legacy
/// code or a GS cookie initialisation failure), CET shadow-stack and return-address checks,
/// and `_alloca`/range checks of the CRT.
pub fn is_stack_buffer_check(code: u64) -> bool {
    matches!(
        FastFailCode::from_u64(code),
        Some(
            FastFailCode::FAST_FAIL_LEGACY_GS_VIOLATION
                | FastFailCode::FAST_FAIL_STACK_COOKIE_CHECK_FAILURE
                | FastFailCode::FAST_FAIL_GS_COOKIE_INIT
                | FastFailCode::FAST_FAIL_INCORRECT_STACK
                | FastFailCode::FAST_FAIL_GUARD_SS_FAILURE
                | FastFailCode::FAST_FAIL_CONTROL_INVALID_RETURN_ADDRESS
                | FastFailCode::FAST_FAIL_INVALID_BUFFER_ACCESS
                | FastFailCode::FAST_FAIL_RANGE_CHECK_FAILURE
        )
    )
}

/// MINIDUMP_TYPE flags (minidumpapiset.h) by name.
const DUMP_FLAGS: &[(u64, &str)] = &[
    (0x1, "MiniDumpWithDataSegs"),
    (0x2, "MiniDumpWithFullMemory"),
    (0x4, "MiniDumpWithHandleData"),
    (0x8, "MiniDumpFilterMemory"),
    (0x10, "MiniDumpScanMemory"),
    (0x20, "MiniDumpWithUnloadedModules"),
    (0x40, "MiniDumpWithIndirectlyReferencedMemory"),
    (0x80, "MiniDumpFilterModulePaths"),
    (0x100, "MiniDumpWithProcessThreadData"),
    (0x200, "MiniDumpWithPrivateReadWriteMemory"),
    (0x400, "MiniDumpWithoutOptionalData"),
    (0x800, "MiniDumpWithFullMemoryInfo"),
    (0x1000, "MiniDumpWithThreadInfo"),
    (0x2000, "MiniDumpWithCodeSegs"),
    (0x4000, "MiniDumpWithoutAuxiliaryState"),
    (0x8000, "MiniDumpWithFullAuxiliaryState"),
    (0x10000, "MiniDumpWithPrivateWriteCopyMemory"),
    (0x20000, "MiniDumpIgnoreInaccessibleMemory"),
    (0x40000, "MiniDumpWithTokenInformation"),
    (0x80000, "MiniDumpWithModuleHeaders"),
    (0x100000, "MiniDumpFilterTriage"),
    (0x200000, "MiniDumpWithAvxXStateContext"),
    (0x400000, "MiniDumpWithIptTrace"),
    (0x800000, "MiniDumpScanInaccessiblePartialPages"),
    (0x1000000, "MiniDumpFilterWriteCombinedMemory"),
];

/// The names of the MINIDUMP_TYPE flags set in `flags`.
pub fn dump_flag_names(flags: u64) -> Vec<&'static str> {
    DUMP_FLAGS
        .iter()
        .filter(|(b, _)| flags & b != 0)
        .map(|(_, n)| *n)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_sdk_values() {
        assert_eq!(ACCESS_VIOLATION, 0xc000_0005);
        assert_eq!(HEAP_CORRUPTION, 0xc000_0374);
        assert_eq!(STACK_BUFFER_OVERRUN, 0xc000_0409);
        assert_eq!(
            fast_fail_name(7).as_deref(),
            Some("FAST_FAIL_FATAL_APP_EXIT")
        );
        assert_eq!(
            fast_fail_name(2).as_deref(),
            Some("FAST_FAIL_STACK_COOKIE_CHECK_FAILURE")
        );
        assert_eq!(
            fast_fail_name(44).as_deref(),
            Some("FAST_FAIL_GUARD_SS_FAILURE")
        );
        assert_eq!(fast_fail_name(10_000), None);
        assert!(is_stack_buffer_check(2) && !is_stack_buffer_check(7));
        assert_eq!(AccessKind::from_parameter(8), Some(AccessKind::Execute));
        assert_eq!(
            dump_flag_names(0x6),
            ["MiniDumpWithFullMemory", "MiniDumpWithHandleData"]
        );
    }
}
