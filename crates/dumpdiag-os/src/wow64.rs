//! WOW64: a 32-bit process saved in a 64-bit dump. The 64-bit TEB leads to the 32-bit TEB
//! (its NtTib.ExceptionList holds the TEB32 address; TEB32 sits 0x2000 bytes above otherwise)
//! and, through TLS slot 1 (WOW64_TLS_CPURESERVED), to the thread's saved x86 CONTEXT, which
//! follows a 4-byte header (Flags, Machine).

use crate::layout::X64;
use dumpdiag_target::context::CONTEXT_X86_SIZE;
use dumpdiag_target::{Arch, Context, MemoryExt, MemoryReader, Target};

const WOW64_TLS_CPURESERVED: u64 = 1;
/// CONTEXT_i386 bit of ContextFlags.
const CONTEXT_I386: u32 = 0x0001_0000;

/// True when the dump is of a 32-bit process on 64-bit Windows.
pub fn is_wow64(target: &dyn Target) -> bool {
    target.facts().arch == Arch::Amd64
        && target
            .modules()
            .iter()
            .any(|m| m.file_name().eq_ignore_ascii_case("wow64.dll"))
}

/// Address of the 32-bit TEB that belongs to a 64-bit TEB.
pub fn teb32_of(mem: &dyn MemoryReader, teb64: u64) -> Option<u64> {
    let hint = mem.read_u64(teb64)?;
    if hint > teb64 && hint - teb64 <= 0x4000 {
        return Some(hint);
    }
    let guess = teb64.wrapping_add(0x2000);
    // The TEB32's Self field points to itself.
    (mem.read_u32(guess.wrapping_add(0x18))? as u64 == guess).then_some(guess)
}

/// The saved x86 context of a WOW64 thread.
pub fn x86_context(mem: &dyn MemoryReader, teb64: u64) -> Option<Context> {
    let cpu_reserved =
        mem.read_u64(teb64.wrapping_add(X64.teb_tls_slots + WOW64_TLS_CPURESERVED * 8))?;
    if cpu_reserved == 0 {
        return None;
    }
    let bytes = mem.read_bytes(cpu_reserved.wrapping_add(4), CONTEXT_X86_SIZE);
    if bytes.len() < CONTEXT_X86_SIZE {
        return None;
    }
    let ctx = Context::decode(Arch::X86, &bytes, &[])?;
    (ctx.context_flags() & CONTEXT_I386 != 0).then_some(ctx)
}
