//! C++ Exception: e06d7363 with MSVC's magic; the thrown types decoded from ThrowInfo →
//! CatchableTypeArray → CatchableType → TypeDescriptor (image-relative RVAs on x64, pointers on
//! x86).

use super::{exception_thread, top_frames};
use crate::{silent, Caveat, Detector, Evidence, Fact, Finding, Pattern, Strength};
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
            silent!("the dump has no exception stream");
        };
        let p = &e.record.parameters;
        if e.record.code != codes::CPP_EXCEPTION {
            silent!(code = format!("{:08x}", e.record.code), "not e06d7363");
        }
        if p.len() < 3 || !MAGICS.contains(&p[0]) {
            silent!(
                parameters = ?p,
                "e06d7363 without MSVC's magic and ThrowInfo: not a throw of MSVC's runtime"
            );
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
    use super::*;
    use crate::test_support::Analysed;
    use crate::Confidence;
    use dumpdiag_synth::{Exception, Module, ModuleId, Process};
    use dumpdiag_target::Arch;

    const MAGIC: u64 = 0x1993_0520;

    /// MSVC's throw metadata (ehdata.h) for a class `types[0]` catchable as each of `types`, in
    /// the image's data: `ThrowInfo` {attributes, pmfnUnwind, pForwardCompat,
    /// pCatchableTypeArray at +12} → `CatchableTypeArray` {nCatchableTypes,
    /// arrayOfCatchableTypes[]} → `CatchableType` {properties, pType at +4, thisDisplacement
    /// (PMD: mdisp, pdisp, vdisp), sizeOrOffset at +20, copyFunction at +24} →
    /// `TypeDescriptor` {pVFTable, spare, name[] at two pointers}. A 64-bit image refers
    /// from one to the next by 32-bit image-relative RVAs, a 32-bit one by pointers. Returns
    /// the ThrowInfo's address.
    fn throw_info(p: &mut Process, image: ModuleId, types: &[&str]) -> u64 {
        let ptr = p.ptr();
        let reference = |addr: u64| -> u32 {
            if ptr == 8 {
                (addr - image.base) as u32
            } else {
                addr as u32
            }
        };
        // type_info's vftable (vcruntime's ??_7type_info@@6B@), the same for every type.
        let vftable = p.global(image, "type_info_vftable", 8);
        let mut catchable = Vec::new();
        for (i, name) in types.iter().enumerate() {
            let size = 2 * ptr as u32 + name.len() as u32 + 1;
            let td = p.global(image, &format!("type_descriptor_{i}"), size);
            p.write_ptr(td, vftable);
            p.write(td + 2 * ptr, &[name.as_bytes(), &[0]].concat());
            let ct = p.global(image, &format!("catchable_type_{i}"), 28);
            p.write_u32(ct + 4, reference(td));
            p.write_u32(ct + 20, 0x18); // sizeOrOffset: sizeof the thrown object
            catchable.push(ct);
        }
        let cta = p.global(image, "catchable_type_array", 4 + 4 * types.len() as u32);
        p.write_u32(cta, types.len() as u32);
        for (i, ct) in catchable.iter().enumerate() {
            p.write_u32(cta + 4 + 4 * i as u64, reference(*ct));
        }
        let ti = p.global(image, "throw_info", 16);
        p.write_u32(ti + 12, reference(cta));
        ti
    }

    /// A throw from config!load_config through vcruntime140!_CxxThrowException and
    /// KERNELBASE!RaiseException: `parameters` given the ThrowInfo's address and the image.
    fn thrown(
        mut p: Process,
        code: u32,
        types: &[&str],
        parameters: impl Fn(u64, u64) -> Vec<u64>,
    ) -> Analysed {
        let app = p.module(Module::new("C:\\app\\config.exe"));
        let vcruntime = p.module(Module::new("C:\\app\\vcruntime140.dll"));
        let kernelbase = p.module(Module::new("C:\\Windows\\System32\\KERNELBASE.dll"));
        let raise = p.function(kernelbase, "RaiseException", 0x80);
        let throw = p.function(vcruntime, "_CxxThrowException", 0x80);
        let load = p.function(app, "load_config", 0x80);
        let main = p.function(app, "main", 0x80);
        let ti = throw_info(&mut p, app, types);
        p.thread(0x100, [raise, throw, load, main]);
        let mut e = Exception::new(0x100, code);
        e.flags = 1; // EXCEPTION_NONCONTINUABLE, as _CxxThrowException raises it
        e.parameters = parameters(ti, app.base);
        p.exception(e);
        Analysed::with_symbols(p)
    }

    const RUNTIME_ERROR: [&str; 2] = [".?AVruntime_error@std@@", ".?AVexception@std@@"];

    /// _CxxThrowException's parameters: magic, the object, the ThrowInfo, and on 64-bit
    /// Windows the image base the ThrowInfo's RVAs are relative to.
    fn msvc(ptr: u64, magic: u64) -> impl Fn(u64, u64) -> Vec<u64> {
        move |ti, base| {
            let mut p = vec![magic, 0x0019_f5d0, ti];
            if ptr == 8 {
                p.push(base);
            }
            p
        }
    }

    #[test]
    fn the_thrown_type_is_decoded_from_rvas_on_x64_and_pointers_on_x86() {
        for arch in [Arch::Amd64, Arch::X86] {
            let p = Process::new(arch);
            let ptr = p.ptr();
            let a = thrown(p, 0xe06d_7363, &RUNTIME_ERROR, msvc(ptr, MAGIC));
            let found = a.detect(&CppException);
            assert_eq!(found.len(), 1, "{arch:?}");
            let f = &found[0];
            assert_eq!(
                f.summary,
                "unhandled C++ exception: class std::runtime_error"
            );
            assert_eq!(f.threads, vec![0x100]);
            let evidence = f.evidence();
            assert_eq!(
                evidence[..2],
                [
                    "catchable as class std::runtime_error".to_string(),
                    "catchable as class std::exception".to_string()
                ],
                "{arch:?}"
            );
            assert!(
                evidence.iter().any(|e| e.contains("config!load_config")),
                "{evidence:?}"
            );
            assert_eq!(f.confidence(), Confidence::High, "{arch:?}");
        }
    }

    #[test]
    fn a_wow64_throw_is_read_with_the_32_bit_layout() {
        // A 32-bit process in a 64-bit dump: the record has the x86 thrower's three
        // parameters and plain pointers, whatever the dump's machine.
        let a = thrown(
            Process::wow64(),
            0xe06d_7363,
            &RUNTIME_ERROR,
            msvc(4, MAGIC),
        );
        assert!(a.evidence().is_wow64());
        let found = a.detect(&CppException);
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].summary,
            "unhandled C++ exception: class std::runtime_error"
        );
    }

    #[test]
    fn every_msvc_magic_is_a_cpp_throw() {
        // 0x19930521 and 0x19930522: the EH versions with noexcept and /d2FH4 metadata.
        for magic in [0x1993_0521, 0x1993_0522] {
            let a = thrown(
                Process::new(Arch::Amd64),
                0xe06d_7363,
                &RUNTIME_ERROR,
                msvc(8, magic),
            );
            assert_eq!(a.detect(&CppException).len(), 1, "{magic:#x}");
        }
    }

    #[test]
    fn without_the_throw_info_the_type_is_unknown_and_the_finding_says_so() {
        // The ThrowInfo pointer leads outside the dump (a minidump without the image's data).
        let a = thrown(
            Process::new(Arch::X86),
            0xe06d_7363,
            &RUNTIME_ERROR,
            |_, _| vec![MAGIC, 0x0019_f5d0, 0x6f00_0000],
        );
        let found = a.detect(&CppException);
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].summary,
            "unhandled C++ exception: an object of unknown type"
        );
        assert_eq!(found[0].confidence(), Confidence::Medium);
    }

    #[test]
    fn e06d7363_without_msvc_magic_or_another_code_is_no_cpp_exception() {
        for arch in [Arch::Amd64, Arch::X86] {
            let ptr = Process::new(arch).ptr();
            // The code, a ThrowInfo, but a magic MSVC never raises.
            let a = thrown(
                Process::new(arch),
                0xe06d_7363,
                &RUNTIME_ERROR,
                msvc(ptr, 0x1993_0523),
            );
            assert!(a.detect(&CppException).is_empty(), "{arch:?}");
            // Fewer than three parameters: no ThrowInfo to read.
            let a = thrown(Process::new(arch), 0xe06d_7363, &RUNTIME_ERROR, |_, _| {
                vec![MAGIC]
            });
            assert!(a.detect(&CppException).is_empty(), "{arch:?}");
            // The CLR's exception code with the same parameters.
            let a = thrown(
                Process::new(arch),
                0xe043_4352,
                &RUNTIME_ERROR,
                msvc(ptr, MAGIC),
            );
            assert!(a.detect(&CppException).is_empty(), "{arch:?}");
        }
    }

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
