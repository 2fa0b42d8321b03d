//! `dt` and `??` on real dumps: the target's own classes from its PDB (kdlib's targetapp, whose
//! source the oracle holds), Windows' structures from the built-in layouts where no ntdll PDB
//! exists (checked against what `!peb` and `!teb` read, and against the Windows headers' types
//! that other PDBs of the corpus carry), and PDBs made hostile.

mod common;
use common::*;

use dumpdiag_engine::typed;
use dumpdiag_os::types::{Def, TypeSource};
use dumpdiag_symbols::types::PdbTypes;

const WOW64: &str = "kdlibcpp/targetapp_stacktest_wow64/targetapp_stacktest_wow64.dmp";
const WOW64_PDB_DIR: &str = "kdlibcpp/targetapp_stacktest_wow64";

/// The number a `dt` line shows for `field` (`+0x010 Name : 0x00007ff7`a1310000 Void`,
/// `(null)`, `0n12`, `0x1f4`), from the first line naming it.
fn dt_value(text: &str, field: &str) -> Option<u64> {
    let line = text.lines().find(|l| {
        l.split_once(" : ")
            .is_some_and(|(left, _)| left.split_whitespace().last() == Some(field))
    })?;
    let value = line.split_once(" : ")?.1.split_whitespace().next()?;
    number(value)
}

/// `0x…` (with or without the 64-bit separator), `0n…`, `(null)`, plain hex.
fn number(word: &str) -> Option<u64> {
    let w: String = word.chars().filter(|&c| c != '`').collect();
    if w == "(null)" || w == "0" {
        return Some(0);
    }
    if let Some(d) = w.strip_prefix("0n") {
        return d.parse::<i64>().ok().map(|v| v as u64);
    }
    u64::from_str_radix(w.trim_start_matches("0x"), 16).ok()
}

/// The value an extension line shows after `label` (`    StackBase:            00700000`).
fn extension_value(text: &str, label: &str) -> u64 {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no {label} in\n{text}"));
    let word = line.trim_start()[label.len()..]
        .split_whitespace()
        .next()
        .unwrap_or_else(|| panic!("{line}"));
    number(word).unwrap_or_else(|| panic!("{line}"))
}

/// The dumps whose PEB and TEB are in memory, and the command that picks the view: x64, x86,
/// and both views of WOW64 processes (Windows 10 and Windows 7).
const VIEWS: &[(&str, &str)] = &[
    ("lldb/Sigsegv/sigsegv.dmp", ""),
    ("mozilla/windows-x86_64.dmp", ""),
    ("mozilla/windows-x86.dmp", ""),
    ("syzygy/notepad-larger-32bit.dmp", ""),
    (WOW64, ".effmach x86"),
    (WOW64, ""),
    ("syzygy/notepad-larger-64bit.dmp", ".effmach x86"),
];

#[test]
fn builtin_peb_shows_the_image_base_and_loader_data_peb_reads() {
    let mut loader_lists = 0;
    let mut checked = 0;
    for (rel, view) in VIEWS {
        let mut s = session(rel);
        run(&mut s, view);
        let peb = run(&mut s, "!peb");
        let dt = run(&mut s, "dt ntdll!_PEB @$peb");
        if !peb.contains("ImageBaseAddress:") {
            // No readable TEB leads to the PEB (the 32-bit side of notepad's 64-bit-side
            // dump): dt has no $peb either.
            assert!(!dt.contains("+0x"), "{rel} {view}\n{dt}");
            continue;
        }
        checked += 1;
        assert!(
            dt.starts_with("ntdll!_PEB (built-in layout"),
            "{rel} {view}: no ntdll PDB here, the built-in layout answers:\n{dt}"
        );
        let image = dt_value(&dt, "ImageBaseAddress").unwrap_or_else(|| panic!("{rel}\n{dt}"));
        assert_eq!(
            image,
            extension_value(&peb, "ImageBaseAddress:"),
            "{rel} {view}"
        );
        assert_eq!(
            image,
            s.target().modules()[0].base,
            "{rel} {view}: main module"
        );
        assert_eq!(
            dt_value(&dt, "Ldr"),
            Some(extension_value(&peb, "Ldr ")),
            "{rel} {view}\n{dt}"
        );
        assert!(
            dt.contains("Ldr              : 0x") && dt.contains(" _PEB_LDR_DATA"),
            "{dt}"
        );
        // -r1 follows Ldr to the loader data (where the dump holds it), whose load-order list
        // `!peb` prints too.
        let ldr = run(&mut s, "dt -r1 ntdll!_PEB @$peb Ldr");
        let peb_list = peb
            .lines()
            .find(|l| l.contains("Ldr.InLoadOrderModuleList:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(number);
        let list = ldr.lines().find(|l| l.contains("InLoadOrderModuleList"));
        assert_eq!(
            list.is_some(),
            peb_list.is_some(),
            "{rel} {view}\n{ldr}\n{peb}"
        );
        if let (Some(list), Some(peb_list)) = (list, peb_list) {
            let flink = list
                .split("[ ")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .and_then(number)
                .unwrap_or_else(|| panic!("{list}"));
            assert_eq!(flink, peb_list, "{rel} {view}");
            loader_lists += 1;
        }
        // The same through ??.
        let q = run(&mut s, "?? @$peb->ImageBaseAddress");
        assert!(q.starts_with("void * 0x"), "{q}");
        assert_eq!(number(q.trim().rsplit(' ').next().unwrap()), Some(image));
    }
    assert!(checked >= 6, "{checked} PEBs checked");
    assert!(
        loader_lists >= 3,
        "{loader_lists} dumps hold their loader data"
    );
}

#[test]
fn builtin_teb_shows_the_stack_teb_reads() {
    let mut checked = 0;
    for (rel, view) in VIEWS {
        let mut s = session(rel);
        run(&mut s, view);
        let teb = run(&mut s, "!teb");
        if !teb.contains("StackBase:") {
            // The current thread's TEB is not in this dump (the 32-bit one of notepad's
            // 64-bit-side dump): dt says so too.
            let dt = run(&mut s, "dt _TEB @$teb");
            assert!(dt.starts_with("Memory access error"), "{rel} {view}\n{dt}");
            continue;
        }
        checked += 1;
        let dt = run(&mut s, "dt _TEB @$teb NtTib.StackBase NtTib.StackLimit");
        assert!(dt.starts_with("ntdll!_TEB (built-in layout"), "{dt}");
        assert!(dt.contains("+0x000 NtTib            : \n"), "{dt}");
        for field in ["StackBase", "StackLimit"] {
            assert_eq!(
                dt_value(&dt, field),
                Some(extension_value(&teb, &format!("{field}:"))),
                "{rel} {view} {field}\n{dt}\n{teb}"
            );
        }
        let all = run(&mut s, "dt -r1 ntdll!_TEB @$teb");
        for (field, label) in [
            ("DeallocationStack", "DeallocationStack:"),
            ("LastErrorValue", "LastErrorValue:"),
            ("ProcessEnvironmentBlock", "PEB Address:"),
            ("Self", "Self:"),
        ] {
            assert_eq!(
                dt_value(&all, field),
                Some(extension_value(&teb, label)),
                "{rel} {view} {field}"
            );
        }
        let q = run(&mut s, "?? @$teb->NtTib.StackBase");
        assert_eq!(
            number(q.trim().rsplit(' ').next().unwrap()),
            Some(extension_value(&teb, "StackBase:")),
            "{q}"
        );
    }
    assert!(checked >= 5, "{checked} TEBs checked");
}

#[test]
fn builtin_heap_and_critical_section_read_their_signatures_and_owners() {
    // Windows 10's process heap starts with a segment (0xffeeffee) and holds 0xeeffeeff.
    for rel in ["mozilla/windows-x86_64.dmp", "mozilla/windows-x86.dmp"] {
        let mut s = session(rel);
        let dt = run(
            &mut s,
            "dt ntdll!_HEAP poi(@$peb+6*@$ptrsize) SegmentSignature Signature",
        );
        assert_eq!(dt_value(&dt, "SegmentSignature"), Some(0xffee_ffee), "{dt}");
        assert_eq!(dt_value(&dt, "Signature"), Some(0xeeff_eeff), "{dt}");
    }
    // The deadlock sample: the section `!locks` names, read through the built-in type and
    // through the type the application's own PDB has from winnt.h, agree with `!locks`.
    let mut s = dumpdiag_engine::Session::new(Box::new(
        dumpdiag_mdmp::MdmpTarget::open(samples().join("cs_deadlock.dmp")).unwrap(),
    ));
    s.set_symbol_path(samples().to_str().unwrap());
    let locks = run(&mut s, "!locks");
    assert!(locks.contains("Critical section   = 0x14000e130 (cs_deadlock!g_accounts_lock)"));
    let builtin = run(&mut s, "dt ntdll!_RTL_CRITICAL_SECTION 0x14000e130");
    let pdb = run(&mut s, "dt cs_deadlock!g_accounts_lock");
    assert!(builtin.starts_with("ntdll!_RTL_CRITICAL_SECTION (built-in"));
    assert_eq!(dt_value(&builtin, "OwningThread"), Some(0x108), "{builtin}");
    assert_eq!(dt_value(&builtin, "RecursionCount"), Some(1), "{builtin}");
    assert_eq!(dt_value(&builtin, "LockCount"), Some(1), "{builtin}");
    let members = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| l.trim_start().starts_with('+'))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(members(&builtin), members(&pdb), "{builtin}\n{pdb}");
    assert_eq!(
        run(&mut s, "?? cs_deadlock!g_accounts_lock.OwningThread"),
        "void * 0x00000000`00000108\n"
    );
}

fn samples() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../samples")
}

/// The structures the built-in tables describe in full (the TEB, PEB, loader entry, process
/// parameters and heap are described up to a point, so only their members compare).
const FULLY_DESCRIBED: &[&str] = &[
    "_LIST_ENTRY",
    "_UNICODE_STRING",
    "_NT_TIB",
    "_GUID",
    "_LARGE_INTEGER",
    "_M128A",
    "_XSAVE_FORMAT",
    "_FLOATING_SAVE_AREA",
    "_CONTEXT",
    "_EXCEPTION_RECORD",
    "_RTL_CRITICAL_SECTION",
    "_RTL_CRITICAL_SECTION_DEBUG",
];

#[test]
fn builtin_layouts_agree_with_the_windows_headers_types_in_the_corpus_pdbs() {
    // PDBs of programs that include windows.h carry some of the same structures, laid out by
    // Microsoft's and clang's compilers from winnt.h: an independent statement of them.
    let pdbs = [
        samples().join("cs_deadlock.pdb"),
        dump("kdlibcpp/targetapp_test_cv_allreg_amd64/targetapp.pdb"),
        dump("kdlibcpp/targetapp_test_cv_allreg_i386/targetapp.pdb"),
        dump("bugsplat/myConsoleCrasher.pdb"),
    ];
    let mut compared_types = 0;
    let mut compared_fields = 0;
    for path in &pdbs {
        let pdb = PdbTypes::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let builtin = typed::builtins(pdb.pointer_size());
        let pdb_names: std::collections::HashMap<String, u32> = pdb.names().into_iter().collect();
        for (name, bi) in builtin.names() {
            let Some(&pi) = pdb_names.get(&name) else {
                continue;
            };
            let (Some(Def::Record(b)), Some(Def::Record(p))) = (builtin.def(bi), pdb.def(pi))
            else {
                continue;
            };
            compared_types += 1;
            if FULLY_DESCRIBED.contains(&name.as_str()) {
                assert_eq!(b.size, p.size, "{}: {name} size", path.display());
            }
            for f in &p.fields {
                if let Some(g) = b.fields.iter().find(|g| g.name == f.name) {
                    assert_eq!(
                        (g.offset, g.bits),
                        (f.offset, f.bits),
                        "{}: {name}.{}",
                        path.display(),
                        f.name
                    );
                    compared_fields += 1;
                }
            }
        }
    }
    assert!(
        compared_types >= 15 && compared_fields >= 150,
        "compared {compared_types} types, {compared_fields} members"
    );
}

#[test]
fn kdlib_dt_shows_the_members_and_values_the_target_source_sets() {
    let mut s = session(WOW64);
    s.set_symbol_path(dump(WOW64_PDB_DIR).to_str().unwrap());
    run(&mut s, ".effmach x86; .ecxr");
    // targetapp.cpp: stackTestClass() { m_param = 1234; }, and stackMethod is frame 0.
    let ty = run(&mut s, "dt targetapp!stackTestClass");
    assert_eq!(ty, "   +0x000 m_param          : Int4B\n");
    let this = run(&mut s, "dt this");
    assert!(
        this.contains("Type stackTestClass*") && this.contains("+0x000 m_param          : 0n1234"),
        "{this}"
    );
    let q = run(&mut s, "?? this");
    assert!(q.starts_with("class stackTestClass * 0x"), "{q}");
    let at = q.trim().rsplit(' ').next().unwrap().to_string();
    let typed_at = run(&mut s, &format!("dt targetapp!stackTestClass {at} -r"));
    assert_eq!(typed_at, "   +0x000 m_param          : 0n1234\n");
    assert_eq!(run(&mut s, "?? this->m_param"), "long 0n1234\n");
    assert_eq!(run(&mut s, "?? this->m_param == 1234"), "bool true\n");
    assert_eq!(
        run(&mut s, "?? *this"),
        "class stackTestClass\n   +0x000 m_param          : 0n1234\n"
    );
    // stackTestRun2(a = 10, b = 0.8f, c = localChars): its local stackClass is *this, and
    // localInt is 10.
    run(&mut s, ".frame 1");
    assert!(run(&mut s, "dt stackClass").contains("+0x000 m_param          : 0n1234"));
    assert_eq!(run(&mut s, "?? &stackClass"), q);
    assert!(run(&mut s, "dt localInt").ends_with("0n10\n"));
    assert_eq!(run(&mut s, "?? a * 2 + 1"), "int 0n21\n");
    assert_eq!(run(&mut s, "?? b"), "double 0.80000001192092896\n");
    assert!(
        run(&mut s, "?? c").ends_with("  \"Bye\"\n"),
        "stackTestRun(…\"Bye\")"
    );
    // stackTestRun1: localChars holds c's "Bye" (strcpy_s), localFloat is b (0.8f).
    run(&mut s, ".frame 2");
    let chars = run(&mut s, "?? localChars");
    assert!(
        chars.starts_with("char [256] 0x") && chars.ends_with("  \"Bye\"\n"),
        "{chars}"
    );
    assert!(run(&mut s, "dt localChars").contains("[256]  \"Bye\""));
    assert_eq!(run(&mut s, "?? localFloat"), "float 0.800000012\n");
    assert_eq!(run(&mut s, "?? staticLong"), "long 0n1\n");
}

#[test]
fn kdlib_globals_pointers_bitfields_arrays_and_enums() {
    let mut s = session(WOW64);
    s.set_symbol_path(dump(WOW64_PDB_DIR).to_str().unwrap());
    run(&mut s, ".effmach x86");
    // g_structTest1.m_field4 points to g_structTest: -r follows it.
    let addr = run(&mut s, "?? &targetapp!g_structTest");
    let addr = number(addr.trim().rsplit(' ').next().unwrap()).unwrap();
    let one = run(&mut s, "dt -r1 targetapp!g_structTest1");
    assert_eq!(dt_value(&one, "m_field4"), Some(addr), "{one}");
    let nested: Vec<&str> = one.lines().filter(|l| l.starts_with("      +")).collect();
    let plain = run(&mut s, "dt targetapp!g_structTest");
    assert_eq!(
        nested
            .iter()
            .map(|l| l.trim_start())
            .collect::<Vec<_>>()
            .join("\n"),
        plain
            .lines()
            .map(str::trim_start)
            .collect::<Vec<_>>()
            .join("\n"),
        "the pointed-to structure, one level in"
    );
    assert!(one.contains("m_field4         : 0x"), "{one}");
    assert_eq!(
        run(&mut s, "?? targetapp!g_structTest1.m_field4->m_field1"),
        run(&mut s, "?? targetapp!g_structTest.m_field1")
    );
    // Bitfields: each member's bits of the storage unit, as the raw dword holds them.
    let raw = run(&mut s, "dd targetapp!g_structWithBits L1");
    let word = number(raw.split_whitespace().nth(1).unwrap()).unwrap();
    let bits = run(&mut s, "dt targetapp!g_structWithBits");
    assert!(
        bits.contains(&format!("m_bit5           : 0y{}", (word >> 5) & 1)),
        "{bits}"
    );
    assert!(
        bits.contains(&format!("m_bit6_8         : 0y{:03b}", (word >> 6) & 7)),
        "{bits}"
    );
    assert_eq!(
        run(&mut s, "?? targetapp!g_structWithBits.m_bit0_4"),
        format!("unsigned long 0x{:x}\n", word & 0x1f)
    );
    let ty = run(&mut s, "dt targetapp!structWithBits");
    assert!(
        ty.contains("+0x000 m_bit6_8         : Pos 6, 3 Bits"),
        "{ty}"
    );
    assert!(
        ty.contains("+0x000 m_bit5           : Pos 5, 1 Bit\n"),
        "{ty}"
    );
    // Arrays: an element is sizeof apart; indexing and pointer arithmetic agree.
    let size = run(&mut s, "?? sizeof(targetapp!structTest)");
    let size = number(size.trim().rsplit(' ').next().unwrap()).unwrap();
    let a0 = run(&mut s, "?? &targetapp!g_testArray[0]");
    let a1 = run(&mut s, "?? &targetapp!g_testArray[1]");
    let n = |t: &str| number(t.trim().rsplit(' ').next().unwrap()).unwrap();
    assert_eq!(n(&a1) - n(&a0), size);
    assert_eq!(
        run(
            &mut s,
            "?? &targetapp!g_testArray[1] - &targetapp!g_testArray[0]"
        ),
        "int 0n1\n"
    );
    assert_eq!(
        run(&mut s, "?? (targetapp!g_testArray + 1)->m_field1"),
        run(&mut s, "?? targetapp!g_testArray[1].m_field1")
    );
    // -a lists the elements, each structure with its members.
    let listed = run(&mut s, "dt -a targetapp!g_testArray");
    let second = listed
        .split("   [1] structTest\n")
        .nth(1)
        .unwrap_or_else(|| panic!("{listed}"));
    let field1 = run(&mut s, "?? targetapp!g_testArray[1].m_field1");
    let field1 = number(field1.trim().rsplit(' ').next().unwrap()).unwrap();
    assert_eq!(dt_value(second, "m_field1"), Some(field1), "{listed}");
    // Enums: the value and its enumerator.
    let e = run(&mut s, "dt targetapp!g_structWithEnum");
    let v = run(&mut s, "?? (int)targetapp!g_structWithEnum.digit");
    let v = v.trim().rsplit("0n").next().unwrap().to_string();
    assert!(
        e.starts_with(&format!("   +0x000 digit            : {v} ( ")),
        "{e}"
    );
    // A wildcard lists types and globals once each (a WOW64 dump lists the image twice).
    let list = run(&mut s, "dt targetapp!*struct*");
    assert_eq!(list.matches("targetapp!structTest\n").count(), 1, "{list}");
    assert!(list.contains("targetapp!g_structTest\n"));
}

#[test]
fn pdb_types_of_an_x64_build_are_laid_out_for_x64() {
    let mut s =
        session("kdlibcpp/targetapp_test_cv_allreg_amd64/targetapp_test_cv_allreg_amd64.dmp");
    s.set_symbol_path(
        dump("kdlibcpp/targetapp_test_cv_allreg_amd64")
            .to_str()
            .unwrap(),
    );
    // The target packs structTest to 4 bytes (m_field1, a 64-bit integer, at +4): the last
    // member is a 64-bit pointer at +0x10, so 0x18 bytes in all.
    let v = run(&mut s, "dt -v targetapp!structTest");
    assert!(
        v.starts_with("struct structTest, 5 elements, 0x18 bytes\n"),
        "{v}"
    );
    // Without the module, dt says where it found the type.
    assert!(run(&mut s, "dt structTest").starts_with("targetapp!structTest\n"));
    assert!(v.contains("+0x004 m_field1         : Uint8B"), "{v}");
    assert!(
        v.contains("+0x010 m_field4         : Ptr64 structTest"),
        "{v}"
    );
    assert_eq!(
        run(&mut s, "?? sizeof(targetapp!structTest)"),
        "unsigned int64 0x18\n"
    );
    assert_eq!(
        run(&mut s, "?? sizeof(ntdll!_CONTEXT)"),
        "unsigned int64 0x4d0\n"
    );
    // The i386 build's pointers are 4 bytes.
    let mut s = session("kdlibcpp/targetapp_test_cv_allreg_i386/targetapp_test_cv_allreg_i386.dmp");
    s.set_symbol_path(
        dump("kdlibcpp/targetapp_test_cv_allreg_i386")
            .to_str()
            .unwrap(),
    );
    let v = run(&mut s, "dt targetapp!structTest m_field4");
    assert!(v.contains("m_field4         : Ptr32 structTest"), "{v}");
}

#[test]
fn question_mark_expressions_and_their_errors() {
    let mut s = session("lldb/Sigsegv/sigsegv.dmp");
    let peb = run(&mut s, "!peb");
    let peb_at = peb
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("PEB at "))
        .unwrap()
        .to_string();
    assert_eq!(
        run(&mut s, "?? @$peb"),
        format!("struct _PEB * 0x{peb_at}\n")
    );
    assert_eq!(run(&mut s, "?? 1+2*3"), "int 0n7\n");
    assert_eq!(run(&mut s, "?? 10 / 3 == 3 && 7 % 4 == 3"), "bool true\n");
    assert_eq!(run(&mut s, "?? 0x80000000"), "unsigned int 0x80000000\n");
    assert_eq!(run(&mut s, "?? -1"), "int 0n-1\n");
    assert_eq!(
        run(&mut s, "?? (unsigned char)0x141"),
        "unsigned char 0x41\n"
    );
    assert_eq!(
        run(&mut s, "?? sizeof(ntdll!_PEB)"),
        "unsigned int64 0x7c8\n"
    );
    assert_eq!(run(&mut s, "?? sizeof(_TEB)"), "unsigned int64 0x1838\n");
    assert_eq!(
        run(
            &mut s,
            "?? @$peb->Ldr == *(ntdll!_PEB_LDR_DATA**)((char*)@$peb + 0x18)"
        ),
        "bool true\n"
    );
    assert_eq!(
        run(&mut s, "?? &@$peb->Ldr"),
        format!(
            "struct _PEB_LDR_DATA * * 0x{}\n",
            dumpdiag_engine::format::addr(number(&peb_at).unwrap() + 0x18, 8)
        )
    );
    // A MASM expression inside: poi.
    assert_eq!(
        run(
            &mut s,
            "?? @$peb->Ldr == (ntdll!_PEB_LDR_DATA*)@@masm(poi(@$peb+18))"
        ),
        "bool true\n"
    );
    let rip = run(&mut s, "?? @rip");
    assert!(rip.starts_with("unsigned int64 0x"), "{rip}");
    // The structure itself prints with its members, like dt.
    let whole = run(&mut s, "?? *@$peb");
    assert!(
        whole.starts_with("struct _PEB\n   +0x000 InheritedAddressSpace : "),
        "{whole}"
    );
    // Errors, typed as WinDbg words them.
    use dumpdiag_engine::CommandError;
    assert_eq!(
        s.run_command("?? 1/0").unwrap_err().to_string(),
        "Divide by zero error"
    );
    assert_eq!(
        s.run_command("?? nosuchname + 1"),
        Err(CommandError::Unresolved("nosuchname + 1".into()))
    );
    assert!(matches!(
        s.run_command("?? *(int*)0"),
        Err(CommandError::MemoryAccess { .. })
    ));
    assert!(matches!(
        s.run_command("?? @$peb->NoSuchMember"),
        Err(CommandError::NotFound(m)) if m.contains("NoSuchMember")
    ));
    assert!(matches!(
        s.run_command("?? (1).x"),
        Err(CommandError::TypeConflict(_))
    ));
    assert!(matches!(
        s.run_command("?? (1"),
        Err(CommandError::Expression(_))
    ));
    // Nesting is bounded.
    let deep = format!("?? {}1{}", "(".repeat(500), ")".repeat(500));
    assert!(s.run_command(&deep).is_err());
    // dt's own errors.
    assert!(s
        .run_command("dt ntdll!_NoSuchType")
        .unwrap_err()
        .to_string()
        .contains("not found"));
    assert!(matches!(
        s.run_command("dt ntdll!_PEB 0"),
        Err(CommandError::MemoryAccess { .. })
    ));
}

#[test]
fn reload_i_takes_the_types_of_another_builds_pdb() {
    // Injected Symbols: the minidump's targetapp is a Debug x64 build whose PDB the corpus
    // lacks; the x64 Release build of the same source has one. Same name, another GUID.
    let mut s = session("kdlibcpp/targetapp_minidump/target_minidump.dmp");
    let release = dump("kdlibcpp/targetapp_test_cv_allreg_amd64");
    s.set_symbol_path(release.to_str().unwrap());
    // Refused, as WinDbg refuses it, until asked for.
    assert!(matches!(
        s.run_command("dt targetapp!structTest"),
        Err(dumpdiag_engine::CommandError::NotFound(m)) if m.contains(".reload /i targetapp")
    ));
    let lmi = run(&mut s, "!lmi targetapp");
    assert!(
        lmi.contains("mismatched pdb, refused (.reload /i loads it anyway)"),
        "{lmi}"
    );
    // `.reload /i module`: that module takes the other build's PDB.
    let out = run(&mut s, ".reload /f /i targetapp.exe");
    let line = out
        .lines()
        .find(|l| l.starts_with("targetapp "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("M (private pdb symbols)") && line.ends_with(" - mismatched pdb"),
        "{line}"
    );
    // Its types lay out the dump's memory as that build declares them: structTest packed to
    // 4 bytes, a 64-bit integer at +4 and a 64-bit pointer at +0x10 (as the matching x64 dump
    // reads them in pdb_types_of_an_x64_build_are_laid_out_for_x64).
    let v = run(&mut s, "dt -v targetapp!structTest");
    assert!(
        v.starts_with("struct structTest, 5 elements, 0x18 bytes\n"),
        "{v}"
    );
    assert!(v.contains("+0x004 m_field1         : Uint8B"), "{v}");
    assert_eq!(
        run(&mut s, "?? sizeof(targetapp!structTest)"),
        "unsigned int64 0x18\n"
    );
    // The type read over memory: the first thread's stack, 0x18 bytes of it.
    let at = run(&mut s, "dt targetapp!structTest @rsp");
    let q = run(&mut s, "dq @rsp+0x10 L1");
    let raw = number(q.split_whitespace().nth(1).unwrap()).unwrap();
    assert_eq!(dt_value(&at, "m_field4"), Some(raw), "{at}\n{q}");
    // Only the module named; a plain .reload refuses the PDB again.
    run(&mut s, ".reload");
    assert!(s.run_command(".reload /i kernel32").is_ok());
    assert!(s.run_command("dt targetapp!structTest").is_err());
    run(&mut s, ".reload /i");
    assert!(run(&mut s, "dt targetapp!structTest").contains("m_field1"));
    run(&mut s, ".reload");
    assert!(s.run_command("dt targetapp!structTest").is_err());
}

#[test]
fn help_lists_dt_and_the_cpp_evaluator() {
    let mut s = session("lldb/Sigsegv/sigsegv.dmp");
    let help = run(&mut s, "help");
    assert!(help.contains("\nTypes\n"), "{help}");
    assert!(help.contains("  dt [-r[N]]"), "{help}");
    assert!(help.contains("  ?? expression"), "{help}");
}

/// Memory with nothing in it: types print as types.
struct NoMemory;

impl dumpdiag_target::MemoryReader for NoMemory {
    fn read(&self, _: u64, _: &mut [u8]) -> usize {
        0
    }
}

/// A PDB's streams, as the MSF container lays them out in pages.
struct Msf {
    block_size: usize,
    /// Each stream's size and pages.
    streams: Vec<(u32, Vec<u32>)>,
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

impl Msf {
    fn parse(file: &[u8]) -> Msf {
        assert!(file.starts_with(b"Microsoft C/C++ MSF 7.00\r\n"));
        let block_size = le32(file, 32) as usize;
        let dir_bytes = le32(file, 44) as usize;
        let map_block = le32(file, 52) as usize;
        let dir_pages = dir_bytes.div_ceil(block_size);
        let mut dir = Vec::new();
        for i in 0..dir_pages {
            let page = le32(file, map_block * block_size + 4 * i) as usize;
            dir.extend_from_slice(&file[page * block_size..(page + 1) * block_size]);
        }
        let n = le32(&dir, 0) as usize;
        let sizes: Vec<u32> = (0..n).map(|i| le32(&dir, 4 + 4 * i)).collect();
        let mut at = 4 + 4 * n;
        let mut streams = Vec::new();
        for size in sizes {
            let pages = if size == u32::MAX {
                0
            } else {
                (size as usize).div_ceil(block_size)
            };
            let list = (0..pages).map(|k| le32(&dir, at + 4 * k)).collect();
            at += 4 * pages;
            streams.push((size, list));
        }
        Msf {
            block_size,
            streams,
        }
    }

    /// The file offset of byte `at` of stream `s`.
    fn offset(&self, s: usize, at: usize) -> usize {
        let page = self.streams[s].1[at / self.block_size] as usize;
        page * self.block_size + at % self.block_size
    }
}

/// Copies of the WOW64 dump's targetapp.pdb with its type stream (stream 2) made hostile.
fn hostile_pdbs() -> Vec<(&'static str, Vec<u8>)> {
    let original = std::fs::read(dump(WOW64_PDB_DIR).join("targetapp.pdb")).unwrap();
    let msf = Msf::parse(&original);
    const TPI: usize = 2;
    let tpi_size = msf.streams[TPI].0 as usize;
    let read16 = |f: &[u8], at: usize| -> u16 {
        u16::from_le_bytes([f[msf.offset(TPI, at)], f[msf.offset(TPI, at + 1)]])
    };
    let read32 = |f: &[u8], at: usize| -> u32 {
        (0..4).fold(0u32, |v, k| {
            v | (f[msf.offset(TPI, at + k)] as u32) << (8 * k)
        })
    };
    let write32 = |f: &mut Vec<u8>, at: usize, v: u32| {
        for k in 0..4 {
            let o = msf.offset(TPI, at + k);
            f[o] = (v >> (8 * k)) as u8;
        }
    };
    let header_size = read32(&original, 4) as usize;
    let first_index = read32(&original, 8);
    // Every record: (its index, where its kind is).
    let mut records = Vec::new();
    let mut at = header_size;
    while at + 4 <= tpi_size {
        let len = read16(&original, at) as usize;
        records.push((first_index + records.len() as u32, at + 2, len));
        at += 2 + len;
    }
    assert!(records.len() > 1000, "{} type records", records.len());

    let mut out = Vec::new();
    // The stream claims to start at 0x3000: pdb2 would take 0x1000..0x3000 for primitives.
    let mut f = original.clone();
    write32(&mut f, 8, 0x3000);
    out.push(("first index beyond 0x1000", f));
    // Pointers, modifiers and arrays that lead to themselves; arrays of 4 GB.
    let mut f = original.clone();
    for &(index, kind_at, _) in &records {
        match read16(&original, kind_at) {
            0x1001 | 0x1002 => write32(&mut f, kind_at + 2, index),
            0x1503 => {
                write32(&mut f, kind_at + 2, index);
                // The size is a numeric leaf: a plain u16 below 0x8000, else LF_ULONG + u32.
                if read16(&original, kind_at + 10) == 0x8004 {
                    write32(&mut f, kind_at + 12, u32::MAX);
                }
            }
            _ => {}
        }
    }
    out.push(("self-referential pointers, modifiers and arrays", f));
    // Classes that derive from themselves: every base-class entry of a class's field list
    // names that class.
    let mut f = original.clone();
    let by_index: std::collections::HashMap<u32, (usize, usize)> =
        records.iter().map(|&(i, k, l)| (i, (k, l))).collect();
    for &(index, kind_at, _) in &records {
        if matches!(read16(&original, kind_at), 0x1504 | 0x1505) {
            let list = read32(&original, kind_at + 6);
            if let Some(&(list_at, len)) = by_index.get(&list) {
                // Field-list members start 4-aligned after the record's length.
                let mut m = list_at + 2;
                while m + 8 <= list_at + len {
                    if read16(&original, m) == 0x1400 {
                        write32(&mut f, m + 4, index);
                    }
                    m += 2;
                }
            }
        }
    }
    out.push(("classes that are their own base", f));
    // Structures whose every member becomes a base class that is the structure itself: a
    // structure of n members would flatten n^depth bases. (LF_MEMBER and LF_BCLASS share
    // their leading layout; the member's name becomes padding.)
    let byte = |f: &[u8], at: usize| f[msf.offset(TPI, at)];
    let mut f = original.clone();
    let mut rewritten = 0;
    for &(index, kind_at, _) in &records {
        if !matches!(read16(&original, kind_at), 0x1504 | 0x1505) {
            continue;
        }
        let list = read32(&original, kind_at + 6);
        let Some(&(list_at, len)) = by_index.get(&list) else {
            continue;
        };
        let end = list_at + len;
        let mut entries = Vec::new();
        let mut m = list_at + 2;
        let whole = loop {
            if m >= end {
                break true;
            }
            if byte(&original, m) >= 0xf0 {
                m += 1;
                continue;
            }
            if m + 10 > end || read16(&original, m) != 0x150d {
                break false;
            }
            let numeric_len = match read16(&original, m + 8) {
                x if x < 0x8000 => 2,
                0x8000 => 3,
                0x8001 | 0x8002 => 4,
                0x8003 | 0x8004 => 6,
                0x8009 | 0x800a => 10,
                _ => break false,
            };
            let name_at = m + 8 + numeric_len;
            let mut z = name_at;
            while z < end && byte(&original, z) != 0 {
                z += 1;
            }
            entries.push((m, name_at, z.min(end - 1)));
            m = z + 1;
        };
        if !whole || entries.len() < 3 {
            continue;
        }
        for (m, name_at, z) in entries {
            let o = msf.offset(TPI, m);
            f[o] = 0x00;
            f[msf.offset(TPI, m + 1)] = 0x14;
            write32(&mut f, m + 4, index);
            for k in name_at..=z {
                let o = msf.offset(TPI, k);
                f[o] = 0xf1;
            }
        }
        rewritten += 1;
    }
    assert!(rewritten >= 10, "{rewritten} structures rewritten");
    out.push(("structures made of bases that are themselves", f));
    // Bytes inside one record in four flipped at random (fixed seeds), the records' lengths
    // kept so that the stream still walks to its end.
    for seed in [1u64, 2, 3] {
        let mut f = original.clone();
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        for &(_, kind_at, len) in &records {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x % 4 != 0 || len < 2 {
                continue;
            }
            let at = kind_at + (x >> 8) as usize % len;
            let o = msf.offset(TPI, at);
            f[o] ^= (x >> 32) as u8 | 1;
        }
        out.push(("random bytes inside the type records", f));
    }
    // The file cut short.
    for keep in [2, 3] {
        out.push(("truncated", original[..original.len() * keep / 4].to_vec()));
    }
    out
}

/// Ends the test process when one case runs longer than `limit`, naming it: a hang fails the
/// test instead of stalling it.
fn watchdog(limit: std::time::Duration) -> std::sync::mpsc::Sender<&'static str> {
    let (tx, rx) = std::sync::mpsc::channel::<&'static str>();
    std::thread::spawn(move || {
        let mut case = "";
        loop {
            match rx.recv_timeout(limit) {
                Ok(next) => case = next,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    eprintln!("hostile PDB {case:?}: still running after {limit:?}, a hang");
                    std::process::exit(101);
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
    });
    tx
}

#[test]
fn hostile_pdbs_end_every_type_command_without_a_panic_or_a_hang() {
    let dir = std::env::temp_dir().join(format!("dumpdiag-types-{}", std::process::id()));
    let battery = [
        ".effmach x86",
        ".ecxr",
        "dt this",
        "dt -r9 this",
        "dv",
        "kp",
        "dt -r9 targetapp!g_structTest1",
        "dt -r9 targetapp!g_classChild",
        "dt -r9 -a targetapp!g_testArray",
        "dt -r9 targetapp!g_listHead",
        "?? targetapp!g_structTest1.m_field4->m_field4",
        "?? targetapp!g_testArray[1]",
        "?? *targetapp!g_structTestPtrPtr",
        "?? sizeof(targetapp!structTest)",
    ];
    let mut exercised = 0;
    let watchdog = watchdog(std::time::Duration::from_secs(300));
    for (what, bytes) in hostile_pdbs() {
        watchdog.send(what).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("targetapp.pdb");
        std::fs::write(&path, &bytes).unwrap();
        let started = std::time::Instant::now();
        // The type source itself, walked over every type it names.
        if let Ok(t) = PdbTypes::open(&path) {
            let mem = NoMemory;
            for (name, i) in t.names().into_iter().take(3000) {
                if let Some(Def::Record(r)) = t.def(i) {
                    let mut p = typed::Printer::new(&t, &mem);
                    let mut out = String::new();
                    p.record(&mut out, &r, None, 3, typed::MAX_DEPTH, &[]);
                    assert!(
                        out.lines().count() <= typed::MAX_LINES + 1,
                        "{what}: {name}"
                    );
                }
            }
        }
        // And through the commands, on the dump the PDB belongs to.
        let mut s = session(WOW64);
        s.set_symbol_path(dir.to_str().unwrap());
        let mut names = String::new();
        for c in battery {
            let _ = s.execute(c);
        }
        names.push_str(&s.execute("dt targetapp!*").text);
        if names.lines().count() > 1000 {
            // The damage left the PDB loadable: its types went through every command.
            exercised += 1;
        }
        for line in names.lines().take(400) {
            let name = line.trim().trim_end_matches(" (built-in)");
            let out = s.execute(&format!("dt -r9 {name}")).text;
            assert!(
                out.lines().count() <= typed::MAX_LINES + 3,
                "{what}: {name}"
            );
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "{what}: {:?}",
            started.elapsed()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        exercised >= 6,
        "{exercised} hostile PDBs loaded far enough to be read"
    );
}
