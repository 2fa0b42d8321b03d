//! Facts about the real Windows dumps in ../shared/corpus/real, checked through the commands a
//! user types.

mod common;
use common::*;
use dumpdiag_target::{Arch, DumpKind, MemoryExt};

/// What each information command must say on any dump, from what the dump itself records
/// (threads, modules, exception, streams): the answer, or the message that names what the dump
/// lacks.
#[test]
fn every_corpus_dump_answers_the_information_commands_with_its_own_facts() {
    for path in all_dumps() {
        let name = path.display().to_string();
        let t = dumpdiag_mdmp::open_dump(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!t.threads().is_empty(), "{name}: no threads");
        let kind = t.facts().kind;
        let threads = t.threads().len();
        let modules: Vec<String> = t.modules().iter().map(|m| m.short_name()).collect();
        let exception = t.exception().map(|e| e.record.code);
        let streams = t.streams().len();
        let has_handles = t.handles().is_some();
        let has_times = t.threads().iter().any(|th| th.info.is_some());
        let ptr = t.facts().pointer_size();
        let mut s = dumpdiag_engine::Session::new(t);
        let mut run = |cmd: &str| s.execute(cmd).text;
        let check = |cmd: &str, out: &str, ok: bool| {
            assert!(ok, "{name}: `{cmd}` answered:\n{out}");
        };
        let out = run("||");
        let said = match kind {
            DumpKind::Minidump => out.starts_with(".  0 - User mini dump: "),
            DumpKind::LegacyUserDump { .. } => {
                out.starts_with(".  0 - User full dump (legacy USERDU64): ")
            }
        };
        check("||", &out, said);
        let out = run("vertarget");
        check("vertarget", &out, out.contains("Debug session time:"));
        let out = run(".time");
        check(".time", &out, out.starts_with("Debug session time:"));
        let out = run(".dumpdebug");
        let said = match kind {
            DumpKind::Minidump => out.contains(&format!("NumberOfStreams {streams}")),
            DumpKind::LegacyUserDump { .. } => {
                out.contains("USERMODE_CRASHDUMP_HEADER:")
                    && out.contains(&format!("ThreadCount       {threads}"))
                    && out.matches("\nSection ").count() == streams
            }
        };
        check(".dumpdebug", &out, said);
        let out = run(".lastevent");
        let said = match exception {
            Some(code) => out.contains(&format!("code {code:08x}")),
            None => out.contains("no exception stream"),
        };
        check(".lastevent", &out, said);
        let out = run("~");
        check("~", &out, out.matches("  Id: ").count() == threads);
        let out = run("~* r");
        let ip = if ptr == 8 { "rip=" } else { "eip=" };
        check("~* r", &out, out.matches(ip).count() >= 1);
        let out = run(".exr -1");
        let said = match exception {
            Some(code) => out.contains(&format!("ExceptionCode: {code:08x}")),
            None => out.contains("no exception stream"),
        };
        check(".exr -1", &out, said);
        let out = run("lmv");
        check(
            "lmv",
            &out,
            modules.iter().all(|m| out.contains(m.as_str())),
        );
        let out = run("lm u");
        check("lm u", &out, out.contains("Unloaded modules"));
        let out = run("!address -summary");
        check("!address -summary", &out, out.contains("--- Usage Summary"));
        let out = run("!handle 0 f");
        let said = if has_handles {
            out.contains("Handle ") || out.contains("0 Handles")
        } else {
            out.contains("no HandleData stream")
        };
        check("!handle 0 f", &out, said);
        let out = run("!runaway 7");
        let said = if has_times {
            out.contains("User Mode Time") && out.contains("Elapsed Time")
        } else {
            out.contains("no ThreadInfoList stream")
        };
        check("!runaway 7", &out, said);
        let out = run("!gle");
        check(
            "!gle",
            &out,
            out.contains("LastErrorValue") || out.contains("Unable to read the TEB"),
        );
        let out = run("~*kv");
        let header = if ptr == 8 { "Child-SP" } else { "ChildEBP" };
        check(
            "~*kv",
            &out,
            out.matches(header).count() >= 1 && out.contains("(found by context)"),
        );
        let out = run("!uniqstack");
        check(
            "!uniqstack",
            &out,
            out.contains(&format!("Total threads: {threads}")),
        );
        let out = run("u @$ip");
        check("u @$ip", &out, out.lines().count() >= 2);
        // The rest of the battery must run without failing on any dump.
        for cmd in COMMANDS {
            let out = run(cmd);
            check(
                cmd,
                &out,
                !out.contains("Syntax error") && !out.contains("No export"),
            );
        }
    }
}

#[test]
fn kdlib_wow64_dump_is_a_32bit_process_in_a_64bit_dump() {
    let mut s = session("kdlibcpp/targetapp_stacktest_wow64/targetapp_stacktest_wow64.dmp");
    assert_eq!(s.target().threads().len(), 4);
    assert!(s
        .target()
        .modules()
        .iter()
        .any(|m| m.file_name().eq_ignore_ascii_case("wow64.dll")));
    assert!(s.is_wow64());
    assert_eq!(
        s.target().exception().map(|e| e.record.code),
        Some(0x4000001f)
    );
    assert!(run(&mut s, ".lastevent").contains("code 4000001f"));
    assert!(s.target().facts().flags & 0x2 != 0, "a full-memory dump");

    assert!(run(&mut s, ".effmach x86").contains("x86 compatible"));
    assert_eq!(s.prompt(), "0:000:x86> ");
    // The 32-bit TEB points at itself and at the 32-bit PEB; registers come from the WOW64 area.
    let teb = run(&mut s, "!teb");
    assert!(teb.starts_with("Wow64 TEB32 at 005db000"), "{teb}");
    assert!(teb.contains("Self:                 005db000"), "{teb}");
    assert!(teb.contains("PEB Address:          005d8000"), "{teb}");
    // Thread 0 was caught executing 32-bit code (its 64-bit context has cs 0x23): its x86
    // registers are that context's, as Wow64GetThreadContext answers for such a thread; the
    // context the WOW64 layer saved in TLS slot 1 is from its last system call (ntdll32).
    let regs = run(&mut s, "r");
    assert!(regs.contains("eip=00875f5d"), "{regs}");
    assert!(regs.contains("cs=0023"), "{regs}");
    let peb = run(&mut s, "!peb");
    assert!(
        peb.contains(
            "CommandLine:  'D:\\Projects\\kdlibcpp\\out\\Win32\\Debug\\targetapp.exe stacktest'"
        ),
        "{peb}"
    );
    assert!(peb.contains("NtGlobalFlag:             70"), "{peb}");
    assert!(
        peb.contains("C:\\WINDOWS\\System32\\KERNEL32.DLL"),
        "loader list: {peb}"
    );
    assert!(
        peb.contains("PROCESSOR_ARCHITEW6432=AMD64"),
        "environment: {peb}"
    );
    // Every thread has an x86 context in the 32-bit view.
    for i in 0..4 {
        let c = s.thread_context(i).expect("x86 context");
        assert_eq!(c.arch(), Arch::X86);
    }
    // Back to the native view.
    run(&mut s, ".effmach .");
    assert_eq!(s.prompt(), "0:000> ");
    assert!(run(&mut s, "r").contains("rip="));
}

#[test]
fn lmv_reads_version_resource_strings_from_the_in_memory_image() {
    let mut s = session("kdlibcpp/targetapp_stacktest_wow64/targetapp_stacktest_wow64.dmp");
    let out = run(&mut s, "lmv m kernel32");
    assert!(out.contains("File version:     10.0.17134.1"), "{out}");
    assert!(
        out.contains("CompanyName:      Microsoft Corporation"),
        "{out}"
    );
    assert!(
        out.contains("FileDescription:  Windows NT BASE API Client DLL"),
        "{out}"
    );
    assert!(out.contains("wkernel32.pdb"), "{out}");
}

#[test]
fn breakpad_minidump2_is_a_write_access_violation_at_0x45() {
    let mut s = session("breakpad/minidump2.dmp");
    assert_eq!(s.target().facts().arch, Arch::X86);
    let e = s.target().exception().expect("exception stream");
    assert_eq!(e.record.code, 0xc0000005);
    assert_eq!(e.record.parameters, vec![1, 0x45]);
    let exr = run(&mut s, ".exr -1");
    assert!(
        exr.contains("Attempt to write to address 00000045"),
        "{exr}"
    );
    assert!(
        exr.contains("ExceptionAddress: 0040429e (test_app+0x429e)"),
        "{exr}"
    );
    let regs = run(&mut s, ".ecxr");
    assert!(regs.contains("eip=0040429e"), "{regs}");
}

#[test]
fn lldb_sigsegv_faults_at_0x7ff7a13110d9_writing_null() {
    let mut s = session("lldb/Sigsegv/sigsegv.dmp");
    let e = s.target().exception().expect("exception stream");
    assert_eq!(e.record.address, 0x7ff7a13110d9);
    let out = run(&mut s, ".ecxr; r rip; ? @rip - sigsegv");
    assert!(out.contains("rip=00007ff7a13110d9"), "{out}");
    assert!(
        out.contains("Evaluate expression: 4313 = 00000000`000010d9"),
        "{out}"
    );
    // The faulting instruction bytes: mov dword ptr [0], 0 (c7 04 25 00 00 00 00 ...).
    assert!(run(&mut s, "db @rip L4").contains("c7 04 25 00"));
    assert!(run(&mut s, ".exr -1").contains("Attempt to write to address 0000000000000000"));
}

#[test]
fn lldb_fizzbuzz_names_its_process_and_modules() {
    let mut s = session("lldb/fizzbuzz/fizzbuzz_no_heap.dmp");
    assert_eq!(s.target().facts().process_id, Some(4440));
    let lm = run(&mut s, "lm");
    for m in [
        "fizzbuzz",
        "ntdll",
        "kernel32",
        "KERNELBASE",
        "MSVCP120D",
        "MSVCR120D",
    ] {
        assert!(lm.contains(m), "{m} missing from\n{lm}");
    }
    // ThreadInfoList gives thread times.
    assert!(run(&mut s, "!runaway 4").contains("Elapsed Time"));
}

#[test]
fn electron_crashpad_dump_names_electron_exe_and_its_function_table() {
    let mut s = session("electron/windows.dmp");
    assert!(run(&mut s, "lm f").contains("electron.exe"));
    assert_eq!(s.target().threads().len(), 14);
    let ft = &s.target().extras().function_tables;
    assert_eq!(ft.len(), 1);
    assert_eq!(ft[0].minimum_address, 0x1f_caa0_0000);
}

#[test]
fn thread_names_and_xstate_and_handles_are_read() {
    let mut s = session("breakpad/thread_name_list.dmp");
    let threads = run(&mut s, "~");
    assert!(threads.contains("\"main thread\""), "{threads}");
    assert!(threads.contains("\"overflow thread\""), "{threads}");

    let mut s = session("breakpad/tiny-exe-with-cet-xsave.dmp");
    let c = s.thread_context(0).expect("context");
    let xs = c.xstate().expect("XSTATE after the CONTEXT");
    assert_eq!(xs.mask & (1 << 11), 1 << 11, "CET user state saved");
    assert_eq!(xs.cet_ssp, Some(0xcb_c83f_efc8));
    let handles = run(&mut s, "!handle");
    assert!(handles.contains("147 Handles"), "{handles}");
    assert!(handles.contains("Section        \t31"), "{handles}");
    assert!(run(&mut s, "lm u").contains("shcore.dll"));
    assert!(s.target().regions().len() > 100, "MemoryInfoList");
}

#[test]
fn handle_object_information_is_decoded() {
    let mut s = session("kdlibcpp/targetapp_minidump/target_minidump.dmp");
    let out = run(&mut s, "!handle 4 f");
    assert!(out.contains("Type         \tEvent"), "{out}");
    assert!(out.contains("Event Type Manual Reset"), "{out}");
    assert!(out.contains("Event is Set"), "{out}");
    assert!(s.target().extras().tokens.len() == 1, "Token stream");
    let vm = s
        .target()
        .extras()
        .vm_counters
        .clone()
        .expect("ProcessVmCounters");
    assert_eq!(vm.working_set_size, 0x275000);
    let sm = s
        .target()
        .extras()
        .system_memory
        .clone()
        .expect("SystemMemoryInfo");
    assert_eq!(sm.page_size, 0x1000);
}

#[test]
fn crashpad_annotations_and_fast_fail_records() {
    let s = session("breakpad/minidump_crashpad_annotation.dmp");
    assert!(!s.target().extras().crashpad_annotations.is_empty());
    let mut s = session("breakpad/tiny-exe-fastfail.dmp");
    let out = run(&mut s, ".exr -1");
    assert!(out.contains("c0000409"), "{out}");
    assert!(out.contains("Subcode:"), "{out}");
}

#[test]
fn memory_reads_span_regions_and_missing_memory_prints_question_marks() {
    let mut s = session("lldb/Sigsegv/sigsegv.dmp");
    let ranges = s.target().captured_ranges().to_vec();
    // Find two adjacent captured ranges and read across the seam.
    let seam = ranges
        .windows(2)
        .find(|w| w[0].0 + w[0].1 == w[1].0)
        .map(|w| w[1].0);
    if let Some(seam) = seam {
        let mut buf = [0u8; 32];
        assert_eq!(s.target().memory().read(seam - 16, &mut buf), 32);
    }
    let out = run(&mut s, "dd 10 L4");
    assert!(out.contains("????????"), "{out}");
    let out = run(&mut s, "db 10 L4");
    assert!(out.contains("?? ?? ?? ??"), "{out}");
    assert!(s.target().memory().read_u32(0x10).is_none());
}

#[test]
fn search_finds_strings_in_dump_memory() {
    let mut s = session("kdlibcpp/targetapp_stacktest_wow64/targetapp_stacktest_wow64.dmp");
    let out = run(&mut s, "s -u 0 L?7fffffff \"stacktest\"");
    assert!(
        !out.is_empty(),
        "the command line lives in the PEB's process parameters"
    );
    let out = run(
        &mut s,
        "s -a 0 L?7fffffff \"This program cannot be run in DOS mode\"",
    );
    assert!(
        out.lines().count() >= 5,
        "every image carries the DOS stub:\n{out}"
    );
}

#[test]
fn error_texts_come_from_the_generated_tables() {
    let mut s = session("breakpad/minidump2.dmp");
    assert!(run(&mut s, "!error 2").contains("The system cannot find the file specified."));
    assert!(run(&mut s, "!error c0000005").contains("STATUS_ACCESS_VIOLATION"));
    assert!(run(&mut s, "!error 80070005").contains("Access is denied."));
    assert!(run(&mut s, "!error c00000fd").contains("STATUS_STACK_OVERFLOW"));
}

#[test]
fn thread_commands_switch_and_iterate() {
    let mut s = session("mozilla/windows-x86_64.dmp");
    assert_eq!(s.target().threads().len(), 103);
    let out = run(&mut s, "~3s");
    assert!(out.contains("rip="), "{out}");
    assert_eq!(s.current_thread(), 3);
    assert_eq!(s.prompt(), "0:003> ");
    let all = run(&mut s, "~* r rsp");
    assert_eq!(all.matches("rsp=").count(), 103);
    assert_eq!(s.current_thread(), 3, "~* restores the current thread");
    let one = run(&mut s, "~0 r rip");
    assert_eq!(one.matches("rip=").count(), 1);
    assert!(run(&mut s, "~").contains("\"MainThread\""));
    assert!(run(&mut s, "~500s").contains("Illegal thread"));
}

#[test]
fn cxr_switches_to_a_context_in_memory() {
    // The exception stream's context sits in the file, not in memory; the thread's own
    // context is copied to stack memory nowhere we know. Use .cxr on the exception record
    // path instead: reading a context from an unmapped address must fail cleanly.
    let mut s = session("lldb/Sigsegv/sigsegv.dmp");
    let out = run(&mut s, ".cxr 10");
    assert!(out.contains("Unable to read context"), "{out}");
    let out = run(&mut s, ".cxr");
    assert!(out.is_empty());
}

const USERDU64: &str =
    "kdlibcpp/targetapp_stacktest_x64_release_userdu64/targetapp_stacktest_x64_release.dmp";

/// The legacy USERDU64 full dump opens through the one entry point the CLI uses and says what
/// it is; the MDMP reader alone still refuses it, naming the format.
#[test]
fn the_legacy_userdu64_dump_opens_and_names_its_format() {
    let p = dump(USERDU64);
    assert!(is_legacy_userdump(&p));
    let err = dumpdiag_mdmp::MdmpTarget::open(&p)
        .err()
        .expect("not MDMP")
        .to_string();
    assert!(
        err.starts_with("not an MDMP dump: a legacy USERDU64 full dump"),
        "{err}"
    );
    let mut s = session(USERDU64);
    let t = s.target();
    assert_eq!(t.facts().kind, DumpKind::LegacyUserDump { wide: true });
    assert!(t.warnings().is_empty(), "{:?}", t.warnings());
    assert_eq!(
        t.facts().format,
        "User Full Dump File (legacy USERDU64 format)"
    );
    let dd = run(&mut s, ".dumpdebug");
    for want in [
        "----- User Full Dump Analysis (legacy USERDU64 format)",
        "MinorVersion      42ee0000 (minor 0, build 17134)",
        "MachineImageType  8664 (AMD64)",
        "ThreadCount       3",
        "ModuleCount       7",
        "MemoryRegionCount 56",
        "Section 2: ThreadContext, size 00000E70, offset 00000B90",
        "Section 5: MemoryData, size 007FD000, offset 00001C23",
        "CRASH: OS SP      none",
    ] {
        assert!(dd.contains(want), "{want}:\n{dd}");
    }
    // System facts from KUSER_SHARED_DATA: Windows 10 1803 on four processors, April 2019.
    let v = run(&mut s, "vertarget");
    assert!(
        v.starts_with("Windows 10 Version 17134 MP (4 procs) Free x64"),
        "{v}"
    );
    assert!(v.contains("Product: WinNt"), "{v}");
    assert!(
        v.contains("Debug session time: Sun Apr 21 11:51:05.000 2019"),
        "{v}"
    );
    // The CLI opens it too (one line of banner, no error).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dumpdiag"))
        .arg(&p)
        .args(["-c", "||"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with(".  0 - User full dump (legacy USERDU64)")
    );
}

/// Threads, modules, registers, the debug event and the PEB, checked against the file (the
/// header, CRASH_THREAD and CRASH_MODULE entries, and the images' own headers in memory).
#[test]
fn the_legacy_userdu64_dump_answers_threads_modules_registers_and_event() {
    let mut s = session(USERDU64);
    let threads = run(&mut s, "~");
    for want in [
        ".  0  Id: c3c.2098 Suspend: 1 Teb: 0000008f`e21a5000 Unfrozen",
        "   1  Id: c3c.2f64 Suspend: 1 Teb: 0000008f`e21a7000 Unfrozen",
        "   2  Id: c3c.1cf0 Suspend: 1 Teb: 0000008f`e21a9000 Unfrozen",
    ] {
        assert!(threads.contains(want), "{want}:\n{threads}");
    }
    let lm = run(&mut s, "lm");
    for want in [
        "00007ff7`e1450000 00007ff7`e1460000   targetapp",
        "00007ffd`c7360000 00007ffd`c7375000   VCRUNTIME140",
        "00007ffd`c7380000 00007ffd`c741b000   MSVCP140",
        "00007ffe`01140000 00007ffe`0123a000   ucrtbase",
        "00007ffe`019d0000 00007ffe`01c43000   KERNELBASE",
        "00007ffe`043a0000 00007ffe`04452000   KERNEL32",
        "00007ffe`047c0000 00007ffe`049a1000   ntdll",
    ] {
        assert!(lm.contains(want), "{want}:\n{lm}");
    }
    // Module identity comes from the images in memory: timestamp, and the CodeView record
    // that names the PDB beside the dump.
    let lmv = run(&mut s, "lmv m targetapp");
    assert!(
        lmv.contains("Timestamp:        Sun Apr 21 11:49:37 2019 (5CBC58D1)"),
        "{lmv}"
    );
    assert!(
        lmv.contains("out\\x64\\Release\\targetapp.pdb (DC1EB176CD52469895EBBB75895BEC2B2)"),
        "{lmv}"
    );
    let lmv = run(&mut s, "lmv m kernel32");
    assert!(lmv.contains("File version:     10.0.17134.1"), "{lmv}");
    // The debug event: the application's own int 3, first chance, on the main thread, whose
    // context is the event's.
    assert!(run(&mut s, ".lastevent").starts_with(
        "Last event: c3c.2098: Break instruction exception - code 80000003 (first chance)"
    ));
    let exr = run(&mut s, ".exr -1");
    assert!(
        exr.contains("ExceptionAddress: 00007ff7e1451e65 (targetapp+0x1e65)"),
        "{exr}"
    );
    assert!(
        exr.contains("ExceptionCode: 80000003 (Break instruction exception)"),
        "{exr}"
    );
    let r = run(&mut s, "r");
    assert!(
        r.contains("rip=00007ff7e1451e65 rsp=0000008fe1f2faf0 rbp=0000008fe1f2fcf0"),
        "{r}"
    );
    assert_eq!(
        run(&mut s, ".ecxr"),
        r,
        "the event thread's context is the exception's"
    );
    assert_eq!(
        run(&mut s, "db @rip L1").split_whitespace().nth(1),
        Some("cc")
    );
    // The PEB and TEBs are in the dump's memory.
    let peb = run(&mut s, "!peb");
    assert!(
        peb.contains("CommandLine:  'C:\\Users\\User\\Documents\\projects\\kdlibcpp17\\out\\x64\\Release\\targetapp.exe stacktest'"),
        "{peb}"
    );
    let teb = run(&mut s, "~2s; !teb");
    assert!(teb.contains("TEB at 0000008f`e21a9000"), "{teb}");
}

/// `!analyze -v` reads the target, not the REPL: on the kdlib WOW64 dump (a 32-bit process
/// stopped at its own breakpoint in `stackTestClass::stackMethod`) the faulting thread is
/// walked in its x86 view from the WOW64 exception context, whatever view, thread or
/// context scope the session was left in; and the CLI's `analyze` says the same.
#[test]
fn wow64_analysis_walks_the_faulting_thread_in_x86_whatever_the_session_state() {
    const DIR: &str = "kdlibcpp/targetapp_stacktest_wow64";
    let path = dump(&format!("{DIR}/targetapp_stacktest_wow64.dmp"));
    let sympath = dump(DIR).to_string_lossy().into_owned();
    let fresh = || {
        let mut s = session(&format!("{DIR}/targetapp_stacktest_wow64.dmp"));
        s.set_symbol_path(&sympath);
        s
    };
    let baseline = run(&mut fresh(), "!analyze -v");
    let stack: Vec<&str> = baseline
        .lines()
        .skip_while(|l| !l.starts_with("STACK_TEXT:"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    let position = |f: &str| {
        stack
            .iter()
            .position(|l| l.contains(&format!("targetapp!{f}+")))
            .unwrap_or_else(|| panic!("{f} not in the faulting stack:\n{baseline}"))
    };
    let order: Vec<usize> = [
        "stackTestClass::stackMethod",
        "stackTestRun2",
        "stackTestRun1",
        "stackTestRun",
        "wmain",
    ]
    .iter()
    .map(|f| position(f))
    .collect();
    assert_eq!(order, [0, 1, 2, 3, 4], "{baseline}");

    for state in [
        ".effmach x86",
        ".effmach amd64",
        "~2s",
        ".effmach x86; ~3s; .ecxr",
        "~1s; .cxr @rsp",
        ".effmach x86; .frame 3",
    ] {
        let mut s = fresh();
        let _ = s.execute(state);
        assert_eq!(
            run(&mut s, "!analyze -v"),
            baseline,
            "`!analyze -v` after `{state}`"
        );
    }

    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_dumpdiag"))
        .arg("analyze")
        .arg(&path)
        .args(["-y", &sympath])
        .output()
        .expect("dumpdiag runs");
    let text = String::from_utf8_lossy(&cli.stdout);
    assert!(
        text.contains("targetapp!stackTestClass::stackMethod")
            && text.contains("targetapp!stackTestRun2")
            && text.contains("targetapp!wmain"),
        "{text}"
    );
}
