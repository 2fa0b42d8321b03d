//! Register contexts: a set of named register values written as the CONTEXT structure of the
//! process's machine (winnt.h `CONTEXT` for AMD64, 1232 bytes, and for x86, 716 bytes), with
//! the segment selectors, flags and MXCSR a user-mode thread has.

use dumpdiag_target::Arch;
use minidump_common::format::{CONTEXT_AMD64, CONTEXT_X86};
use scroll::{Pwrite, LE};

/// Register values by their debugger names (`rip`, `rsp`, `rcx`, `eax`, `efl`...). Later
/// values of the same register replace earlier ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registers(pub Vec<(String, u64)>);

impl Registers {
    /// Set (or replace) a register.
    pub fn set(&mut self, name: &str, value: u64) -> &mut Registers {
        let name = name.to_ascii_lowercase();
        match self.0.iter_mut().find(|r| r.0 == name) {
            Some(r) => r.1 = value,
            None => self.0.push((name, value)),
        }
        self
    }

    /// The value of a register, when set.
    pub fn get(&self, name: &str) -> Option<u64> {
        let name = name.to_ascii_lowercase();
        self.0.iter().find(|r| r.0 == name).map(|r| r.1)
    }

    /// The CONTEXT bytes of `arch` with these values. Panics on a name that is not a register
    /// of that machine (a test's typo should fail the test).
    pub fn context_bytes(&self, arch: Arch) -> Vec<u8> {
        match arch {
            Arch::X86 => {
                let mut c = CONTEXT_X86 {
                    // CONTEXT_i386 | CONTROL | INTEGER | SEGMENTS | FLOATING_POINT |
                    // DEBUG_REGISTERS | EXTENDED_REGISTERS (CONTEXT_ALL).
                    context_flags: 0x0001_003f,
                    cs: 0x1b,
                    ds: 0x23,
                    es: 0x23,
                    ss: 0x23,
                    fs: 0x3b,
                    eflags: 0x246,
                    ..Default::default()
                };
                for (name, v) in &self.0 {
                    let v32 = *v as u32;
                    let field = match name.as_str() {
                        "eax" => &mut c.eax,
                        "ebx" => &mut c.ebx,
                        "ecx" => &mut c.ecx,
                        "edx" => &mut c.edx,
                        "esi" => &mut c.esi,
                        "edi" => &mut c.edi,
                        "ebp" => &mut c.ebp,
                        "esp" => &mut c.esp,
                        "eip" => &mut c.eip,
                        "efl" | "eflags" => &mut c.eflags,
                        "cs" => &mut c.cs,
                        "ds" => &mut c.ds,
                        "es" => &mut c.es,
                        "fs" => &mut c.fs,
                        "gs" => &mut c.gs,
                        "ss" => &mut c.ss,
                        other => panic!("{other} is not an x86 register"),
                    };
                    *field = v32;
                }
                let mut out = vec![0u8; dumpdiag_target::context::CONTEXT_X86_SIZE];
                out.pwrite_with(c, 0, LE).expect("CONTEXT_X86 fits");
                out
            }
            Arch::Amd64 => {
                let mut c = CONTEXT_AMD64 {
                    // CONTEXT_AMD64 | CONTROL | INTEGER | SEGMENTS | FLOATING_POINT (CONTEXT_FULL
                    // with segments, what MiniDumpWriteDump records).
                    context_flags: 0x0010_001f,
                    mx_csr: 0x1f80,
                    cs: 0x33,
                    ds: 0x2b,
                    es: 0x2b,
                    fs: 0x53,
                    gs: 0x2b,
                    ss: 0x2b,
                    eflags: 0x246,
                    ..Default::default()
                };
                for (name, v) in &self.0 {
                    let field = match name.as_str() {
                        "rax" => &mut c.rax,
                        "rbx" => &mut c.rbx,
                        "rcx" => &mut c.rcx,
                        "rdx" => &mut c.rdx,
                        "rsi" => &mut c.rsi,
                        "rdi" => &mut c.rdi,
                        "rbp" => &mut c.rbp,
                        "rsp" => &mut c.rsp,
                        "rip" => &mut c.rip,
                        "r8" => &mut c.r8,
                        "r9" => &mut c.r9,
                        "r10" => &mut c.r10,
                        "r11" => &mut c.r11,
                        "r12" => &mut c.r12,
                        "r13" => &mut c.r13,
                        "r14" => &mut c.r14,
                        "r15" => &mut c.r15,
                        "efl" | "eflags" | "rflags" => {
                            c.eflags = *v as u32;
                            continue;
                        }
                        // Segment selectors: a WOW64 thread caught in 32-bit code has cs 0x23.
                        "cs" | "ds" | "es" | "fs" | "gs" | "ss" => {
                            let selector = match name.as_str() {
                                "cs" => &mut c.cs,
                                "ds" => &mut c.ds,
                                "es" => &mut c.es,
                                "fs" => &mut c.fs,
                                "gs" => &mut c.gs,
                                _ => &mut c.ss,
                            };
                            *selector = *v as u16;
                            continue;
                        }
                        other => panic!("{other} is not an x64 register"),
                    };
                    *field = *v;
                }
                let mut out = vec![0u8; dumpdiag_target::context::CONTEXT_AMD64_SIZE];
                out.pwrite_with(c, 0, LE).expect("CONTEXT_AMD64 fits");
                out
            }
            other => panic!("no synthetic contexts for {other:?}"),
        }
    }
}

/// The debugger names of the instruction, stack and frame pointers of a machine.
pub fn ip_sp_fp(arch: Arch) -> [&'static str; 3] {
    match arch {
        Arch::X86 => ["eip", "esp", "ebp"],
        _ => ["rip", "rsp", "rbp"],
    }
}
