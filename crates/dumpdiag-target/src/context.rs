//! CPU contexts as Windows stores them (CONTEXT for x86, AMD64 and ARM64), decoded from raw
//! bytes with bounds checks. The structures are Windows ABI layouts, so every dump format that
//! carries a CONTEXT (minidumps, kernel dumps, the WOW64 area of a TEB) decodes through here.

use minidump_common::format::{CONTEXT_AMD64, CONTEXT_ARM64, CONTEXT_X86};
use scroll::{Pread, Pwrite, LE};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Arch {
    X86,
    #[default]
    Amd64,
    Arm64,
    Other(u16),
}

impl Arch {
    pub fn pointer_size(self) -> u64 {
        match self {
            Arch::X86 => 4,
            _ => 8,
        }
    }
    /// WinDbg's name for the machine (`.effmach`).
    pub fn windbg_name(self) -> &'static str {
        match self {
            Arch::X86 => "x86",
            Arch::Amd64 => "x64",
            Arch::Arm64 => "ARM64",
            Arch::Other(_) => "unknown",
        }
    }
    /// IMAGE_FILE_MACHINE_* value.
    pub fn machine(self) -> u16 {
        match self {
            Arch::X86 => 0x14c,
            Arch::Amd64 => 0x8664,
            Arch::Arm64 => 0xaa64,
            Arch::Other(m) => m,
        }
    }
}

/// Size of the fixed CONTEXT structures.
pub const CONTEXT_X86_SIZE: usize = 716;
pub const CONTEXT_AMD64_SIZE: usize = 1232;
pub const CONTEXT_ARM64_SIZE: usize = 912;

/// Extended processor state that follows an AMD64 CONTEXT (CONTEXT_EX + XSAVE area).
#[derive(Debug, Clone, Default)]
pub struct XState {
    /// XSAVE_AREA_HEADER.Mask: which features hold saved state.
    pub mask: u64,
    pub compaction_mask: u64,
    /// Upper halves of YMM0-15 when AVX state is present.
    pub ymm_upper: Option<Vec<u128>>,
    /// CET user-mode shadow stack pointer when CET_U state is present.
    pub cet_ssp: Option<u64>,
    /// The XSAVE area as saved, from its header on (what a dump written from this one keeps).
    pub area: Vec<u8>,
}

#[derive(Debug, Clone)]
pub enum Context {
    X86(Box<CONTEXT_X86>),
    Amd64(Box<CONTEXT_AMD64>, Option<XState>),
    Arm64(Box<CONTEXT_ARM64>),
}

const AMD64_GPRS: [&str; 17] = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15", "rip",
];
const X86_GPRS: [&str; 9] = [
    "eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi", "eip",
];

impl Context {
    /// Decode a context of the given architecture. `xstate_features` is MiscInfo v5's
    /// (index, offset, size) list, used to find AVX and CET state in the XSAVE area.
    pub fn decode(
        arch: Arch,
        bytes: &[u8],
        xstate_features: &[(u32, u32, u32)],
    ) -> Option<Context> {
        match arch {
            Arch::X86 => bytes
                .pread_with::<CONTEXT_X86>(0, LE)
                .ok()
                .map(|c| Context::X86(Box::new(c))),
            Arch::Amd64 => {
                let c = bytes.pread_with::<CONTEXT_AMD64>(0, LE).ok()?;
                let xstate = decode_xstate(c.context_flags, bytes, xstate_features);
                Some(Context::Amd64(Box::new(c), xstate))
            }
            Arch::Arm64 => bytes
                .pread_with::<CONTEXT_ARM64>(0, LE)
                .ok()
                .map(|c| Context::Arm64(Box::new(c))),
            Arch::Other(_) => None,
        }
    }

    /// The context as an MDMP file stores it: the fixed CONTEXT structure of its machine and,
    /// for an x64 context with extended state, the CONTEXT_EX and XSAVE area after it as the
    /// dump held them (the dump's MiscInfo gives the feature offsets within it). Without saved
    /// extended state CONTEXT_XSTATE is cleared so no reader looks for it.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let written = match self {
            Context::X86(c) => {
                out.resize(CONTEXT_X86_SIZE, 0);
                out.pwrite_with(c.as_ref().clone(), 0, LE)
            }
            Context::Amd64(c, xstate) => {
                out.resize(CONTEXT_AMD64_SIZE, 0);
                let mut c = c.as_ref().clone();
                let extended = xstate.as_ref().filter(|x| !x.area.is_empty());
                if extended.is_none() {
                    c.context_flags &= !(CONTEXT_AMD64_XSTATE & !CONTEXT_AMD64);
                }
                let fixed = out.pwrite_with(c, 0, LE);
                if let Some(x) = extended {
                    encode_xstate(&mut out, &x.area);
                }
                fixed
            }
            Context::Arm64(c) => {
                out.resize(CONTEXT_ARM64_SIZE, 0);
                out.pwrite_with(c.as_ref().clone(), 0, LE)
            }
        };
        if written.is_err() {
            out.clear();
        }
        out
    }

    pub fn arch(&self) -> Arch {
        match self {
            Context::X86(_) => Arch::X86,
            Context::Amd64(..) => Arch::Amd64,
            Context::Arm64(_) => Arch::Arm64,
        }
    }

    pub fn context_flags(&self) -> u32 {
        match self {
            Context::X86(c) => c.context_flags,
            Context::Amd64(c, _) => c.context_flags,
            Context::Arm64(c) => c.context_flags,
        }
    }

    pub fn ip(&self) -> u64 {
        match self {
            Context::X86(c) => c.eip as u64,
            Context::Amd64(c, _) => c.rip,
            Context::Arm64(c) => c.pc,
        }
    }
    pub fn sp(&self) -> u64 {
        match self {
            Context::X86(c) => c.esp as u64,
            Context::Amd64(c, _) => c.rsp,
            Context::Arm64(c) => c.sp,
        }
    }
    /// Frame pointer (ebp / rbp / x29).
    pub fn fp(&self) -> u64 {
        match self {
            Context::X86(c) => c.ebp as u64,
            Context::Amd64(c, _) => c.rbp,
            Context::Arm64(c) => c.iregs[29],
        }
    }
    pub fn flags_register(&self) -> u64 {
        match self {
            Context::X86(c) => c.eflags as u64,
            Context::Amd64(c, _) => c.eflags as u64,
            Context::Arm64(c) => c.cpsr as u64,
        }
    }

    /// General-purpose registers in the order the debugger lists them.
    pub fn gpr_names(&self) -> Vec<&'static str> {
        match self {
            Context::X86(_) => X86_GPRS.to_vec(),
            Context::Amd64(..) => AMD64_GPRS.to_vec(),
            Context::Arm64(_) => ARM64_NAMES.to_vec(),
        }
    }

    /// Value of a register by its debugger name (case-insensitive), including sub-registers
    /// (eax of rax, ax, al), segment registers and flags.
    pub fn get(&self, name: &str) -> Option<u64> {
        let n = name.to_ascii_lowercase();
        match self {
            Context::Amd64(c, _) => amd64_register(c, &n),
            Context::X86(c) => x86_register(c, &n),
            Context::Arm64(c) => arm64_register(c, &n),
        }
    }

    /// A 64-bit CONTEXT that describes 32-bit code (cs = 0x23, as the exception context of a
    /// WOW64 thread does) re-expressed as an x86 CONTEXT. None for genuine 64-bit state.
    pub fn wow64_as_x86(&self) -> Option<Context> {
        let Context::Amd64(c, _) = self else {
            return None;
        };
        if c.cs != 0x23 {
            return None;
        }
        let x = CONTEXT_X86 {
            context_flags: 0x0001_0007,
            eax: c.rax as u32,
            ebx: c.rbx as u32,
            ecx: c.rcx as u32,
            edx: c.rdx as u32,
            esi: c.rsi as u32,
            edi: c.rdi as u32,
            ebp: c.rbp as u32,
            esp: c.rsp as u32,
            eip: c.rip as u32,
            eflags: c.eflags,
            cs: c.cs as u32,
            ds: c.ds as u32,
            es: c.es as u32,
            fs: c.fs as u32,
            gs: c.gs as u32,
            ss: c.ss as u32,
            ..Default::default()
        };
        Some(Context::X86(Box::new(x)))
    }

    pub fn xstate(&self) -> Option<&XState> {
        match self {
            Context::Amd64(_, x) => x.as_ref(),
            _ => None,
        }
    }
}

const ARM64_NAMES: [&str; 34] = [
    "x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13", "x14",
    "x15", "x16", "x17", "x18", "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27",
    "x28", "fp", "lr", "sp", "pc", "cpsr",
];

fn amd64_register(c: &CONTEXT_AMD64, n: &str) -> Option<u64> {
    let full = |r: &str| -> Option<u64> {
        Some(match r {
            "rax" => c.rax,
            "rcx" => c.rcx,
            "rdx" => c.rdx,
            "rbx" => c.rbx,
            "rsp" => c.rsp,
            "rbp" => c.rbp,
            "rsi" => c.rsi,
            "rdi" => c.rdi,
            "r8" => c.r8,
            "r9" => c.r9,
            "r10" => c.r10,
            "r11" => c.r11,
            "r12" => c.r12,
            "r13" => c.r13,
            "r14" => c.r14,
            "r15" => c.r15,
            "rip" => c.rip,
            _ => return None,
        })
    };
    if let Some(v) = full(n) {
        return Some(v);
    }
    let seg = match n {
        "cs" => Some(c.cs as u64),
        "ds" => Some(c.ds as u64),
        "es" => Some(c.es as u64),
        "fs" => Some(c.fs as u64),
        "gs" => Some(c.gs as u64),
        "ss" => Some(c.ss as u64),
        "efl" | "eflags" | "rflags" => Some(c.eflags as u64),
        "mxcsr" => Some(c.mx_csr as u64),
        "dr0" => Some(c.dr0),
        "dr1" => Some(c.dr1),
        "dr2" => Some(c.dr2),
        "dr3" => Some(c.dr3),
        "dr6" => Some(c.dr6),
        "dr7" => Some(c.dr7),
        "ip" | "$ip" => Some(c.rip),
        "csp" | "$csp" => Some(c.rsp),
        _ => None,
    };
    if seg.is_some() {
        return seg;
    }
    // Sub-registers: eax/ax/al/ah, r8d/r8w/r8b, esp/sp/spl ...
    let legacy = [
        ("ax", "rax"),
        ("cx", "rcx"),
        ("dx", "rdx"),
        ("bx", "rbx"),
        ("sp", "rsp"),
        ("bp", "rbp"),
        ("si", "rsi"),
        ("di", "rdi"),
        ("ip", "rip"),
    ];
    for (short, long) in legacy {
        let v = full(long)?;
        if n == format!("e{short}") {
            return Some(v & 0xffff_ffff);
        }
        if n == short {
            return Some(v & 0xffff);
        }
    }
    for (short, long) in [("a", "rax"), ("c", "rcx"), ("d", "rdx"), ("b", "rbx")] {
        let v = full(long)?;
        if n == format!("{short}l") {
            return Some(v & 0xff);
        }
        if n == format!("{short}h") {
            return Some((v >> 8) & 0xff);
        }
    }
    for (short, long) in [
        ("spl", "rsp"),
        ("bpl", "rbp"),
        ("sil", "rsi"),
        ("dil", "rdi"),
    ] {
        if n == short {
            return Some(full(long)? & 0xff);
        }
    }
    for i in 8..16 {
        let v = full(&format!("r{i}"))?;
        if n == format!("r{i}d") {
            return Some(v & 0xffff_ffff);
        }
        if n == format!("r{i}w") {
            return Some(v & 0xffff);
        }
        if n == format!("r{i}b") {
            return Some(v & 0xff);
        }
    }
    None
}

fn x86_register(c: &CONTEXT_X86, n: &str) -> Option<u64> {
    let v = match n {
        "eax" => c.eax,
        "ecx" => c.ecx,
        "edx" => c.edx,
        "ebx" => c.ebx,
        "esp" | "csp" | "$csp" => c.esp,
        "ebp" => c.ebp,
        "esi" => c.esi,
        "edi" => c.edi,
        "eip" | "ip" | "$ip" => c.eip,
        "cs" => c.cs,
        "ds" => c.ds,
        "es" => c.es,
        "fs" => c.fs,
        "gs" => c.gs,
        "ss" => c.ss,
        "efl" | "eflags" => c.eflags,
        "dr0" => c.dr0,
        "dr1" => c.dr1,
        "dr2" => c.dr2,
        "dr3" => c.dr3,
        "dr6" => c.dr6,
        "dr7" => c.dr7,
        "ax" => c.eax & 0xffff,
        "cx" => c.ecx & 0xffff,
        "dx" => c.edx & 0xffff,
        "bx" => c.ebx & 0xffff,
        "sp" => c.esp & 0xffff,
        "bp" => c.ebp & 0xffff,
        "si" => c.esi & 0xffff,
        "di" => c.edi & 0xffff,
        "al" => c.eax & 0xff,
        "cl" => c.ecx & 0xff,
        "dl" => c.edx & 0xff,
        "bl" => c.ebx & 0xff,
        "ah" => (c.eax >> 8) & 0xff,
        "ch" => (c.ecx >> 8) & 0xff,
        "dh" => (c.edx >> 8) & 0xff,
        "bh" => (c.ebx >> 8) & 0xff,
        _ => return None,
    };
    Some(v as u64)
}

fn arm64_register(c: &CONTEXT_ARM64, n: &str) -> Option<u64> {
    match n {
        "fp" => Some(c.iregs[29]),
        "lr" => Some(c.iregs[30]),
        "sp" | "csp" | "$csp" => Some(c.sp),
        "pc" | "ip" | "$ip" => Some(c.pc),
        "cpsr" => Some(c.cpsr as u64),
        _ => {
            let i: usize = n.strip_prefix('x')?.parse().ok()?;
            c.iregs.get(i).copied()
        }
    }
}

/// CONTEXT_XSTATE bit for AMD64 contexts (CONTEXT_AMD64 | 0x40).
const CONTEXT_AMD64_XSTATE: u32 = 0x0010_0040;
/// CONTEXT_AMD64: the machine bit of an x64 ContextFlags.
const CONTEXT_AMD64: u32 = 0x0010_0000;
const XSTATE_AVX: u32 = 2;
const XSTATE_CET_U: u32 = 11;

/// Append CONTEXT_EX and the saved XSAVE area (from its header on) to a fixed x64 CONTEXT, the
/// inverse of [`decode_xstate`]: CONTEXT_EX's All and Legacy chunks start at the CONTEXT
/// (negative offsets), its XState chunk at the XSAVE_AREA_HEADER, 64-byte aligned as XSAVE
/// requires.
fn encode_xstate(out: &mut Vec<u8>, area: &[u8]) {
    let ex = out.len();
    let header = (ex + 24).next_multiple_of(64);
    out.resize(header, 0);
    out.extend_from_slice(area);
    let back = (ex as i32).wrapping_neg();
    let mut chunks = Vec::with_capacity(24);
    chunks.extend_from_slice(&back.to_le_bytes());
    chunks.extend_from_slice(&(out.len() as u32).to_le_bytes());
    chunks.extend_from_slice(&back.to_le_bytes());
    chunks.extend_from_slice(&(ex as u32).to_le_bytes());
    chunks.extend_from_slice(&((header - ex) as i32).to_le_bytes());
    chunks.extend_from_slice(&(area.len() as u32).to_le_bytes());
    out[ex..ex + 24].copy_from_slice(&chunks);
}

/// CONTEXT_EX follows the fixed CONTEXT: three (offset i32, length u32) chunks (All, Legacy,
/// XState), offsets relative to the CONTEXT_EX itself. The XState chunk starts at the
/// XSAVE_AREA_HEADER; MiscInfo v5 feature offsets count from the start of the XSAVE area,
/// i.e. 512 bytes (the legacy area, which lives inside CONTEXT) before that header.
fn decode_xstate(flags: u32, bytes: &[u8], features: &[(u32, u32, u32)]) -> Option<XState> {
    if flags & CONTEXT_AMD64_XSTATE != CONTEXT_AMD64_XSTATE || bytes.len() < CONTEXT_AMD64_SIZE + 24
    {
        return None;
    }
    let ex = CONTEXT_AMD64_SIZE;
    let xs_off: i32 = bytes.pread_with(ex + 16, LE).ok()?;
    let xs_len: u32 = bytes.pread_with(ex + 20, LE).ok()?;
    let header = (ex as i64).checked_add(xs_off as i64)?;
    if header < 0 || xs_len < 64 {
        return None;
    }
    let header = header as usize;
    let area = bytes.get(header..header.checked_add(xs_len as usize)?)?;
    let mask: u64 = area.pread_with(0, LE).ok()?;
    let compaction_mask: u64 = area.pread_with(8, LE).ok()?;
    let feature_slice = |index: u32| -> Option<&[u8]> {
        if mask & (1u64 << index) == 0 {
            return None;
        }
        let &(_, off, size) = features.iter().find(|f| f.0 == index)?;
        let start = (off as usize).checked_sub(512)?;
        area.get(start..start.checked_add(size as usize)?)
    };
    let ymm_upper = feature_slice(XSTATE_AVX).map(|s| {
        s.chunks_exact(16)
            .take(16)
            .map(|c| u128::from_le_bytes(c.try_into().unwrap_or([0; 16])))
            .collect()
    });
    let cet_ssp = feature_slice(XSTATE_CET_U).and_then(|s| s.pread_with::<u64>(8, LE).ok());
    Some(XState {
        mask,
        compaction_mask,
        ymm_upper,
        cet_ssp,
        area: area.to_vec(),
    })
}
