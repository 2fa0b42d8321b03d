//! Stacks, symbols and disassembly on real dumps and on the fixtures.

mod common;
use common::*;
use dumpdiag_engine::cmd_stacks;
use dumpdiag_stack::Trust;

#[test]
fn breakpad_minidump2_stack_equals_breakpads_own_stackwalk() {
    // Parse the frames Breakpad's stackwalker printed for the crashed thread.
    let expected_text = std::fs::read_to_string(dump("breakpad/minidump2.stackwalk.out")).unwrap();
    let expected: Vec<(String, Option<(String, u32)>)> = expected_text
        .lines()
        .skip_while(|l| !l.starts_with("Thread 0"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|w| w.parse::<u32>().is_ok())
        })
        .map(|l| {
            let body = l.trim_start().split_once("  ").unwrap().1;
            let (func, src) = match body.split_once(" [") {
                Some((f, s)) => {
                    let s = s.trim_end_matches(']');
                    let (file, rest) = s.split_once(" : ").unwrap();
                    let line: u32 = rest.split(' ').next().unwrap().parse().unwrap();
                    (f.to_string(), Some((file.to_string(), line)))
                }
                None => (body.split(" + ").next().unwrap().to_string(), None),
            };
            (func.replace(".exe!", "!").replace(".dll!", "!"), src)
        })
        .collect();
    assert_eq!(expected.len(), 4);

    let mut s = session("breakpad/minidump2.dmp");
    s.set_symbol_path(dump("breakpad/symbols").to_str().unwrap());
    s.execute(".ecxr");
    let ctx = s.context().unwrap();
    let stack = cmd_stacks::stack_of(&s, s.current_thread(), &ctx);
    let got: Vec<(String, Option<(String, u32)>)> = stack
        .frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let probe = if i > 0 { f.ip - 1 } else { f.ip };
            let sym = s.symbols().lookup(s.target(), probe).expect("symbol");
            let m = s.target().modules()[sym.module_index]
                .file_name()
                .to_string();
            let module = m
                .trim_end_matches(".exe")
                .trim_end_matches(".dll")
                .to_string();
            let src = sym
                .source
                .map(|(f, l)| (f.rsplit(['\\', '/']).next().unwrap().to_string(), l));
            (format!("{module}!{}", sym.function), src)
        })
        .collect();
    assert_eq!(got, expected);
    assert!(
        stack.frames[1..]
            .iter()
            .all(|f| f.trust == Trust::FrameData),
        "every caller from STACK WIN records"
    );
}

#[test]
fn lldb_sigsegv_frame_zero_names_the_faulting_function_and_line() {
    let mut s = session("lldb/Sigsegv/sigsegv.dmp");
    s.set_symbol_path(dump("lldb/Sigsegv").to_str().unwrap());
    let k = s.execute(".ecxr; kn").text;
    // The PDB places the fault in crash(bool) at line 22 (`*(volatile int*)nullptr = 0;`),
    // called from foo and main.
    assert!(
        k.contains("00 000000ad`dabaf6b0 00007ff7`a1311079 sigsegv!crash+0x29 [c:\\temp\\sigsegv.cpp @ 22]")
            || k.contains("sigsegv!crash+0x29 [c:\\temp\\sigsegv.cpp @ 22]"),
        "{k}"
    );
    let u = s.execute("u @rip L3").text;
    assert!(
        u.contains("00007ff7`a13110d9 c704250000000000000000 mov     dword ptr [0],0"),
        "{u}"
    );
    assert!(
        u.contains("00007ff7`a13110e4 488d0d451f0000   lea     rcx,"),
        "{u}"
    );
    assert!(
        u.contains("call    sigsegv+0x1019 (00007ff7`a1311019)"),
        "{u}"
    );
    let ln = s.execute("ln @rip").text;
    assert!(ln.contains("sigsegv!crash+0x29"), "{ln}");
    let x = s.execute("x sigsegv!ma*").text;
    assert!(x.contains("00007ff7`a1311040 sigsegv!main"), "{x}");
    assert_eq!(s.eval("sigsegv!main").unwrap(), 0x7ff7a1311040);
    let lm = s.execute("lm m sigsegv").text;
    assert!(lm.contains("(private pdb symbols)"), "{lm}");
}

#[test]
fn kdlib_wow64_x86_stack_names_the_test_functions_from_the_pdb() {
    let mut s = session("kdlibcpp/targetapp_stacktest_wow64/targetapp_stacktest_wow64.dmp");
    s.set_symbol_path(dump("kdlibcpp/targetapp_stacktest_wow64").to_str().unwrap());
    s.execute(".effmach x86; .ecxr");
    let k = s.execute("kn").text;
    let order = [
        "targetapp!stackTestClass::stackMethod+0x2d",
        "targetapp!stackTestRun2+0x5a",
        "targetapp!stackTestRun1+0xc5",
        "targetapp!stackTestRun+0x86",
        "targetapp!wmain+0x412",
    ];
    let mut at = 0;
    for name in order {
        let p = k[at..]
            .find(name)
            .unwrap_or_else(|| panic!("{name} missing or out of order:\n{k}"));
        at += p;
    }
    assert!(k.contains("targetapp.cpp @ 129]"), "{k}");
    let ctx = s.context().unwrap();
    let stack = cmd_stacks::stack_of(&s, 0, &ctx);
    assert!(
        stack.frames.iter().take(5).all(|f| f.trust != Trust::Scan),
        "frame-pointer chain, no scanning"
    );
    // The worker threads wait for work in the thread pool (top frame from ntdll's exports).
    let k1 = s.execute("~1k").text;
    assert!(
        k1.contains("ntdll!NtWaitForWorkViaWorkerFactory+0xc"),
        "{k1}"
    );
}

/// kdlib's InlineStackTest on the release x64 stacktest, a legacy USERDU64 full dump: frames 0
/// and 1 (stackTestClass::stackMethod, stackTestRun2) are inlined into stackTestRun1, frame 2,
/// which is not inline; stackTestRun (frame 3) is inlined into wmain; line 129 is the int 3.
/// The pool workers wait in NtWaitForWorkViaWorkerFactory.
#[test]
fn kdlib_x64_release_userdu64_stack_matches_the_kdlib_oracle() {
    let rel = "kdlibcpp/targetapp_stacktest_x64_release_userdu64";
    let mut s = session(&format!("{rel}/targetapp_stacktest_x64_release.dmp"));
    s.set_symbol_path(dump(rel).to_str().unwrap());
    let k = s.execute("~0kn").text;
    let frames = [
        "00 (Inline Function) --------`--------     targetapp!stackTestClass::stackMethod [inline]",
        "01 (Inline Function) --------`--------     targetapp!stackTestRun2 [inline]",
        "02 0000008f`e1f2faf0 00007ff7`e1451c33 targetapp!stackTestRun1+0x55 [",
        "03 (Inline Function) --------`--------     targetapp!stackTestRun [inline]",
        "04 0000008f`e1f2fc70 00007ff7`e1452e98 targetapp!wmain+0x233 [",
    ];
    let mut at = 0;
    for f in frames {
        let p = k[at..]
            .find(f)
            .unwrap_or_else(|| panic!("{f} missing or out of order:\n{k}"));
        at += p;
    }
    assert!(k.contains("targetapp.cpp @ 129]"), "{k}");
    assert!(k.contains("KERNEL32!BaseThreadInitThunk+0x14"), "{k}");
    assert!(k.contains("ntdll!RtlUserThreadStart+0x21"), "{k}");
    // Every frame from unwind data, none found by scanning.
    let ctx = s.thread_context(0).unwrap();
    let stack = cmd_stacks::stack_of(&s, 0, &ctx);
    assert_eq!(stack.frames.len(), 5, "{k}");
    assert!(stack.frames.iter().all(|f| f.trust != Trust::Scan), "{k}");
    // Threads 1 and 2: thread-pool workers. Their second frame is ntdll's TppWorkerThread,
    // which only ntdll's PDB names (exports name the nearest export); its return address is
    // checked instead, and the walk reaches the thread's start.
    for t in [1, 2] {
        let k = s.execute(&format!("~{t}kn")).text;
        assert!(
            k.contains("00 ") && k.contains("ntdll!NtWaitForWorkViaWorkerFactory+0x14"),
            "{k}"
        );
        let ctx = s.thread_context(t).unwrap();
        let stack = cmd_stacks::stack_of(&s, t, &ctx);
        assert_eq!(stack.frames.len(), 4, "{k}");
        assert_eq!(stack.frames[0].return_address, 0x7ffe_047e_6866, "{k}");
        assert!(k.contains("KERNEL32!BaseThreadInitThunk+0x14"), "{k}");
        assert!(k.contains("ntdll!RtlUserThreadStart+0x21"), "{k}");
    }
}

/// minidump-stackwalk 0.27 (rust-minidump) on windows-x86_64.dmp with the same symbol store
/// finds 605 of its frames by scanning (measured by benches/stacks.py, which runs both).
const MINIDUMP_STACKWALK_SCANNED_FRAMES: usize = 605;

#[test]
fn mozilla_x86_64_dump_needs_less_scanning_than_minidump_stackwalk() {
    let mut s = session("mozilla/windows-x86_64.dmp");
    s.set_symbol_path(dump("mozilla/symbols").to_str().unwrap());
    let crashed = s
        .target()
        .exception()
        .and_then(|e| s.target().thread_index_by_id(e.thread_id))
        .unwrap();
    let mut scanned = 0;
    let mut cfi = 0;
    for i in 0..s.target().threads().len() {
        // The crashed thread is walked from the exception context, as minidump-stackwalk does.
        let ctx = if i == crashed {
            s.target().exception_context().unwrap()
        } else {
            s.thread_context(i).unwrap()
        };
        let stack = cmd_stacks::stack_of(&s, i, &ctx);
        scanned += stack
            .frames
            .iter()
            .filter(|f| f.trust == Trust::Scan)
            .count();
        cfi += stack
            .frames
            .iter()
            .filter(|f| f.trust == Trust::FrameData)
            .count();
    }
    assert!(
        scanned < MINIDUMP_STACKWALK_SCANNED_FRAMES,
        "{scanned} scanned frames"
    );
    assert!(cfi > 400, "most frames come from STACK CFI: {cfi}");
    let k = s.execute("~7kn").text;
    assert!(k.contains("ntdll!NtWaitForAlertByThreadId+0x14"), "{k}");
    assert!(k.contains("mozglue!mozilla::detail::ConditionVariableImpl::wait(mozilla::detail::MutexImpl&)+0x13"), "{k}");
}

#[test]
fn a_minidump_without_code_unwinds_from_image_files_on_the_symbol_path() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let wine = "/usr/lib/x86_64-linux-gnu/wine/x86_64-windows";
    let t = dumpdiag_mdmp::MdmpTarget::open(root.join("samples/cs_deadlock.dmp")).unwrap();
    let mut s = dumpdiag_engine::Session::new(Box::new(t));
    s.set_symbol_path(&format!("{};{wine}", root.join("samples").display()));
    // The exe beside the sample supplies unwind data and, through its CodeView record, the PDB.
    let k = s.execute("~1kn").text;
    assert!(k.contains("cs_deadlock!transfer_funds+0x2f"), "{k}");
    assert!(k.contains("cs_deadlock!transfer_thread+0xf"), "{k}");
    let k2 = s.execute("~2kn").text;
    assert!(k2.contains("cs_deadlock!audit_ledger+0x2f"), "{k2}");
    // With the very Wine DLLs the sample was taken with, every frame comes from unwind data.
    let ntdll = s
        .target()
        .modules()
        .iter()
        .position(|m| m.file_name() == "ntdll.dll")
        .unwrap();
    if s.symbols().image_file(s.target(), ntdll).is_some() {
        let ctx = s.thread_context(1).unwrap();
        let stack = cmd_stacks::stack_of(&s, 1, &ctx);
        assert!(stack.frames.iter().all(|f| f.trust != Trust::Scan), "{k}");
        assert!(k.contains("ntdll!RtlEnterCriticalSection+0x91"), "{k}");
    } else {
        eprintln!("note: this machine's Wine DLLs differ from the sample's; checked the application frames only");
    }
}

#[test]
fn kdlib_typed_parameters_and_locals_match_the_kdlib_oracle() {
    let mut s = session("kdlibcpp/targetapp_stacktest_wow64/targetapp_stacktest_wow64.dmp");
    s.set_symbol_path(dump("kdlibcpp/targetapp_stacktest_wow64").to_str().unwrap());
    s.execute(".effmach x86; .ecxr");
    // StackTest.TypedParam: frame 0 has this (-> m_param 1234), a = 0.8, b = 10.
    let kp = s.execute("kp 2").text;
    assert!(kp.contains("targetapp!stackTestClass::stackMethod(double a = 0.800000011920929, int b = 0n10)+0x2d"), "{kp}");
    assert!(kp.contains("targetapp!stackTestRun2(int a = 0n10, double b = 0.800000011920929, const char* c = 0x006ff76c)+0x5a"), "{kp}");
    let dt = s.execute("dt this").text;
    assert!(dt.contains("+0x000 m_param          : 0n1234"), "{dt}");
    let dv = s.execute("dv").text;
    assert!(
        dv.contains("a = 0.800000011920929")
            && dv.contains("b = 0n10")
            && dv.contains("this = 0x006ff640"),
        "{dv}"
    );
    // StackTest.LocalVars: frame 2 has three locals, localDouble 0.0 and localFloat 0.8.
    s.execute(".frame 2");
    let dv2 = s.execute("dv").text;
    assert!(dv2.contains("localDouble = 0\n"), "{dv2}");
    assert!(dv2.contains("localFloat = 0.800000011920929"), "{dv2}");
    assert!(dv2.contains("localChars ="), "{dv2}");
    assert!(s
        .execute("dt notexist")
        .text
        .contains("Symbol notexist not found"));
}

#[test]
fn x86_pdb_frame_data_unwinds_a_release_build() {
    let mut s = session("bugsplat/minidump.dmp");
    s.set_symbol_path(dump("bugsplat").to_str().unwrap());
    s.execute(".ecxr");
    let ctx = s.context().unwrap();
    let stack = cmd_stacks::stack_of(&s, s.current_thread(), &ctx);
    let names: Vec<String> = stack
        .frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            s.symbols()
                .lookup(s.target(), if i > 0 { f.ip - 1 } else { f.ip })
                .map(|x| x.function)
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(
        names[..3],
        ["MemoryException", "wmain", "__scrt_common_main_seh"],
        "{names:?}"
    );
    assert_eq!(
        stack.frames[1].trust,
        Trust::FrameData,
        "wmain's caller from the PDB's frame data"
    );
    let k = s.execute("kn 4").text;
    assert!(
        k.contains("myConsoleCrasher!invoke_main [inline]"),
        "inline frames shown: {k}"
    );
    assert!(k.contains("myConsoleCrasher.cpp @ 153]"), "{k}");
}

#[test]
fn x86_disassembly_in_the_wow64_view() {
    let mut s = session("kdlibcpp/targetapp_stacktest_wow64/targetapp_stacktest_wow64.dmp");
    s.set_symbol_path(dump("kdlibcpp/targetapp_stacktest_wow64").to_str().unwrap());
    s.execute(".effmach x86; .ecxr");
    // __debugbreak() in stackMethod, then its epilogue.
    let u = s.execute("u @eip L3").text;
    assert!(
        u.contains("00875f5d cc               int     3")
            && u.contains("00875f5e 5f               pop     edi"),
        "{u}"
    );
    let ub = s.execute("ub @eip L2").text;
    assert!(
        ub.contains("00875f58 e837b8feff       call    targetapp+0x11794 (00861794)"),
        "{ub}"
    );
}

/// MSVC's release PDB describes wmain's locals twice (S_LOCAL with S_DEFRANGE records and
/// again as S_REGREL32), and its inlined calls carry their own locals: `dv` in wmain's frame
/// lists each of wmain's variables once and none of the inlinees'.
#[test]
fn dv_lists_each_variable_of_the_frame_once() {
    const DIR: &str = "kdlibcpp/targetapp_stacktest_x64_release_userdu64";
    let mut s = session(&format!("{DIR}/targetapp_stacktest_x64_release.dmp"));
    s.set_symbol_path(dump(DIR).to_str().unwrap());
    let k = run(&mut s, "kn");
    let frame = k
        .lines()
        .find(|l| l.contains("targetapp!wmain+"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no wmain frame:\n{k}"))
        .to_string();
    run(&mut s, &format!(".frame {frame}"));
    let dv = run(&mut s, "dv");
    let names: Vec<&str> = dv
        .lines()
        .filter_map(|l| l.split_once(" = ").map(|(n, _)| n.trim()))
        .collect();
    assert_eq!(
        names,
        ["argc", "argv", "testGroup", "startThreadCount"],
        "{dv}"
    );
}
