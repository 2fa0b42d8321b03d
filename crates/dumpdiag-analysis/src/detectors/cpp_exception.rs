//! C++ Exception: e06d7363 with MSVC's magic; the thrown types decoded from ThrowInfo →
//! CatchableTypeArray → CatchableType → TypeDescriptor (image-relative RVAs on x64, pointers on
//! x86).

use super::{exception_thread, top_frames};
use crate::{Caveat, Detector, Evidence, Fact, Finding, Pattern, Strength};
use dumpdiag_os::codes;
use dumpdiag_target::MemoryExt;

pub struct CppException;

const MAGICS: [u64; 3] = [0x19930520, 0x19930521, 0x19930522];
const MAX_TYPES: u32 = 32;

/// `.?AVruntime_error@std@@` → `class std::runtime_error`.
pub fn undecorate_type(name: &str) -> String {
    let (kind, rest) = if let Some(r) = name.strip_prefix(".?AV") {
        ("class ", r)
    } else if let Some(r) = name.strip_prefix(".?AU") {
        ("struct ", r)
    } else if let Some(r) = name.strip_prefix(".?AW4") {
        ("enum ", r)
    } else if let Some(r) = name.strip_prefix(".?A") {
        ("", r)
    } else {
        return name.to_string();
    };
    let parts: Vec<&str> = rest
        .trim_end_matches('@')
        .split('@')
        .filter(|p| !p.is_empty())
        .collect();
    format!(
        "{kind}{}",
        parts.iter().rev().copied().collect::<Vec<_>>().join("::")
    )
}

/// The thrown types, most derived first.
pub fn thrown_types(ev: &Evidence, params: &[u64]) -> Vec<String> {
    let mem = ev.target().memory();
    let throw_info = params[2];
    // MSVC's _CxxThrowException raises four parameters on 64-bit Windows (the fourth is the
    // image base the ThrowInfo RVAs are relative to) and three on x86 (plain pointers): the
    // record itself says which layout the thrower used, whatever view reads it.
    let (ptr, base) = if params.len() >= 4 {
        (8, params[3])
    } else {
        (4, 0)
    };
    let at = |rva_or_ptr: u64| {
        if base != 0 {
            base.wrapping_add(rva_or_ptr & 0xffff_ffff)
        } else {
            rva_or_ptr
        }
    };
    let Some(cta_ref) = mem.read_u32(throw_info.wrapping_add(12)) else {
        return Vec::new();
    };
    let cta = at(cta_ref as u64);
    let count = mem.read_u32(cta).unwrap_or(0).min(MAX_TYPES);
    (0..count as u64)
        .filter_map(|i| {
            let ct = at(mem.read_u32(cta.wrapping_add(4 + 4 * i))? as u64);
            let td = at(mem.read_u32(ct.wrapping_add(4))? as u64);
            // TypeDescriptor: vftable pointer, spare pointer, then the decorated name.
            let name = mem.read_cstring(td.wrapping_add(2 * ptr), 512)?;
            Some(undecorate_type(&name))
        })
        .collect()
}

impl Detector for CppException {
    fn pattern(&self) -> Pattern {
        Pattern::CppException
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let Some(e) = &ev.exception else {
            return Vec::new();
        };
        let p = &e.record.parameters;
        if e.record.code != codes::CPP_EXCEPTION || p.len() < 3 || !MAGICS.contains(&p[0]) {
            return Vec::new();
        }
        let types = thrown_types(ev, p);
        let thrown = types
            .first()
            .cloned()
            .unwrap_or_else(|| "an object of unknown type".into());
        let mut facts: Vec<Fact> = types
            .iter()
            .map(|t| Fact::Note(format!("catchable as {t}")))
            .collect();
        facts.extend(top_frames(ev, 4));
        // The code and magic prove an MSVC throw; the type needs the ThrowInfo in the dump.
        vec![Finding::new(self.pattern(), Strength::Proven, format!("unhandled C++ exception: {thrown}"))
            .caveat_if(types.is_empty(), Caveat::MissingMemory("the ThrowInfo that names the thrown type".into()))
            .threads(exception_thread(ev))
            .facts(facts)
            .recommend("Find the throw site in the stack; the exception escaped every handler (catch it, or fix the condition it reports).")]
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn undecorates_type_descriptor_names() {
        assert_eq!(
            super::undecorate_type(".?AVruntime_error@std@@"),
            "class std::runtime_error"
        );
        assert_eq!(
            super::undecorate_type(".?AUmy_struct@@"),
            "struct my_struct"
        );
        assert_eq!(
            super::undecorate_type(".?AVbad_alloc@std@@"),
            "class std::bad_alloc"
        );
    }
}
