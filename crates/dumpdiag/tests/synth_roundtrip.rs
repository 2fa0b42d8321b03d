//! The synthetic-process builder (`dumpdiag-synth`) held to the readers and walkers: a process
//! built once is read through its in-memory target and through its MDMP bytes
//! (`MdmpTarget::from_bytes`), and both must say the same (threads, contexts, thread times,
//! modules, memory, regions, exception, handles, comments); `~*k` must walk every chain the
//! builder laid out exactly, frame by frame, without scanning, on x64 (unwind data from the
//! images' `.pdata`, or Breakpad STACK CFI for an image left out of the dump) and on x86 (EBP
//! chain, or Breakpad STACK WIN); `!teb`, `!peb` and `!handle` must read what was built.

use dumpdiag_engine::Session;
use dumpdiag_mdmp::MdmpTarget;
use dumpdiag_stack::Trust;
use dumpdiag_synth::*;
use dumpdiag_target::{Arch, MemoryExt, Target};

const WAITER: u32 = 0x1234;
const MAIN: u32 = 0x1240;
const SLEEPER: u32 = 0x1250;
const PID: u32 = 0x2a48;

/// What the tests check a built process against.
struct Built {
    p: Process,
    event: u64,
    mutant: u64,
    thread_handle: u64,
    lock: u64,
    /// Function names of each thread's chain, innermost first, as `module!function`.
    chains: Vec<Vec<&'static str>>,
}

/// A process of three threads: one waiting on an event, the main thread sleeping, one
/// sleeping below a function with a 4 KiB frame (UWOP_ALLOC_LARGE) that faulted.
fn three_threads(arch: Arch, kernelbase_in_dump: bool) -> Built {
    let mut p = Process::new(arch);
    p.system.process_id = PID;
    p.system.nt_global_flag = 0x1000;
    p.params.command_line = Some("waiter.exe --threads 3".into());
    let app = p.module(
        Module::new("C:\\app\\waiter.exe").version(
            Version::new(1, 2, 3, 4)
                .string("CompanyName", "Synthetic Corp")
                .string("FileDescription", "Waits"),
        ),
    );
    let ntdll = p.module(
        Module::new("C:\\Windows\\System32\\ntdll.dll").version(Version::new(10, 0, 19041, 3636)),
    );
    let kernel32 = p.module(Module::new("C:\\Windows\\System32\\kernel32.dll"));
    let mut kb = Module::new("C:\\Windows\\System32\\KERNELBASE.dll");
    if !kernelbase_in_dump {
        kb = kb.not_in_dump();
    }
    let kernelbase = p.module(kb);
    let nt_wait = p.add_function(ntdll, Function::syscall("NtWaitForSingleObject", 4));
    let nt_delay = p.add_function(ntdll, Function::syscall("NtDelayExecution", 0x34));
    let user_start = p.function(ntdll, "RtlUserThreadStart", 0x40);
    let init_thunk = p.function(kernel32, "BaseThreadInitThunk", 0x40);
    let wait_ex = p.function(kernelbase, "WaitForSingleObjectEx", 0x80);
    let sleep_ex = p.add_function(
        kernelbase,
        Function::new("SleepEx", 0x80).save_fp(true).locals(0x60),
    );
    let main = p.function(app, "main", 0x60);
    let worker = p.add_function(
        app,
        Function::new("worker", 0x80)
            .save_fp(true)
            .locals(0x48)
            .calls(3),
    );
    let big = p.add_function(app, Function::new("parse_block", 0x80).locals(0x1008));
    let lock = p.global(app, "g_lock", 0x28);

    let event = p.handle(Handle::event(false, false).name("\\BaseNamedObjects\\WorkReady"));
    p.thread(
        WAITER,
        Chain::new(nt_wait)
            .called_from(wait_ex)
            .called_from_site(worker, 1)
            .called_from(init_thunk)
            .called_from(user_start),
    )
    .reg(if arch == Arch::X86 { "ecx" } else { "rcx" }, event)
    .args(0, &[event, 0, 0, 0])
    .last_error(6)
    .tls(3, 0xabcd)
    .name("waiter");
    p.thread(MAIN, [nt_delay, sleep_ex, main, init_thunk, user_start]);
    p.thread(
        SLEEPER,
        Chain::new(nt_delay)
            .called_from(sleep_ex)
            .called_from(big)
            .called_from(worker)
            .called_from(init_thunk)
            .called_from(user_start),
    );
    let mutant = p.handle(Handle::mutant(Some((PID, WAITER))).name("\\BaseNamedObjects\\Gate"));
    let thread_handle = p.thread_handle(MAIN);
    p.handle(Handle::file("\\Device\\HarddiskVolume3\\app\\log.txt"));
    p.critical_section(lock, CriticalSection::owned(MAIN, 1));
    let mut e = Exception::new(SLEEPER, 0xc000_0005);
    e.parameters = vec![1, 0x10];
    e.context = ExceptionContext::Frame(2);
    p.exception(e);
    p.comment_a("synthetic process, narrow comment");
    p.comment_w("synthetic process, wide comment");
    p.unloaded_module("C:\\app\\plugin.dll", 0x2_0000);
    let waiter = vec![
        "ntdll!NtWaitForSingleObject",
        "KERNELBASE!WaitForSingleObjectEx",
        "waiter!worker",
        "kernel32!BaseThreadInitThunk",
        "ntdll!RtlUserThreadStart",
    ];
    let main_chain = vec![
        "ntdll!NtDelayExecution",
        "KERNELBASE!SleepEx",
        "waiter!main",
        "kernel32!BaseThreadInitThunk",
        "ntdll!RtlUserThreadStart",
    ];
    let sleeper = vec![
        "ntdll!NtDelayExecution",
        "KERNELBASE!SleepEx",
        "waiter!parse_block",
        "waiter!worker",
        "kernel32!BaseThreadInitThunk",
        "ntdll!RtlUserThreadStart",
    ];
    Built {
        p,
        event,
        mutant,
        thread_handle,
        lock,
        chains: vec![waiter, main_chain, sleeper],
    }
}

/// Everything the Target trait says, in both targets, the same.
fn assert_same_target(a: &dyn Target, b: &dyn Target) {
    assert_eq!(format!("{:?}", a.facts()), format!("{:?}", b.facts()));
    assert_eq!(
        format!("{:?}", a.threads()),
        format!("{:?}", b.threads()),
        "threads (ids, TEBs, stacks, names, thread times)"
    );
    assert_eq!(format!("{:?}", a.modules()), format!("{:?}", b.modules()));
    assert_eq!(
        format!("{:?}", a.unloaded_modules()),
        format!("{:?}", b.unloaded_modules())
    );
    assert_eq!(a.regions(), b.regions());
    assert_eq!(a.captured_ranges(), b.captured_ranges());
    for &(base, size) in a.captured_ranges() {
        assert_eq!(
            a.memory().read_bytes(base, size as usize),
            b.memory().read_bytes(base, size as usize),
            "memory at {base:#x}"
        );
    }
    for i in 0..a.threads().len() {
        assert_eq!(
            format!("{:?}", a.thread_context(i)),
            format!("{:?}", b.thread_context(i)),
            "context of thread {i}"
        );
    }
    assert_eq!(
        format!("{:?}", a.exception()),
        format!("{:?}", b.exception())
    );
    assert_eq!(
        format!("{:?}", a.exception_context()),
        format!("{:?}", b.exception_context())
    );
    assert_eq!(format!("{:?}", a.handles()), format!("{:?}", b.handles()));
    assert_eq!(a.extras().comment_a, b.extras().comment_a);
    assert_eq!(a.extras().comment_w, b.extras().comment_w);
}

fn read_back(t: &SynthTarget) -> MdmpTarget {
    let m = MdmpTarget::from_bytes("synthetic.dmp", t.minidump()).expect("the dump opens");
    assert!(m.warnings().is_empty(), "{:?}", m.warnings());
    m
}

/// Walk every thread in `s` and hold the walk to the frames the builder laid out: same
/// instruction, stack and frame pointers, same names, no frame found by scanning.
fn assert_exact_walks(s: &Session, t: &SynthTarget, chains: &[Vec<&str>], via: Trust) {
    for (i, chain) in chains.iter().enumerate() {
        let ctx = s.thread_context(i).expect("a context");
        let stack = dumpdiag_engine::cmd_stacks::stack_of(s, i, &ctx);
        let want = t.frames(i);
        let got: Vec<(u64, u64, u64)> = stack.frames.iter().map(|f| (f.ip, f.sp, f.fp)).collect();
        let expected: Vec<(u64, u64, u64)> = want.iter().map(|f| (f.ip, f.sp, f.fp)).collect();
        assert_eq!(
            got, expected,
            "thread {i}: the walk differs from the layout"
        );
        let names: Vec<String> = stack
            .frames
            .iter()
            .enumerate()
            .map(|(n, f)| {
                let probe = if n == 0 { f.ip } else { f.ip - 1 };
                let sym = s.symbols().lookup(s.target(), probe).expect("named");
                let m = &s.target().modules()[sym.module_index];
                format!("{}!{}", m.short_name(), sym.function)
            })
            .collect();
        assert_eq!(names, *chain, "thread {i}");
        for (n, f) in stack.frames.iter().enumerate().skip(1) {
            // x86: the caller of a frameless frame 0 (a system-call stub at its `ret`) is not on
            // the EBP chain (EBP still is the caller's) but at the stack pointer.
            let frameless_leaf = n == 1 && want[0].return_slot == want[0].sp;
            let via = if via == Trust::FramePointer && frameless_leaf {
                Trust::StackPointer
            } else {
                via
            };
            assert_eq!(f.trust, via, "thread {i} frame {n}");
        }
        let issues = dumpdiag_engine::cmd_stacks::stack_checks(s, i, &stack);
        assert!(issues.is_empty(), "thread {i}: {issues:?}");
    }
}

#[test]
fn an_x64_process_reads_back_the_same_from_its_minidump() {
    let b = three_threads(Arch::Amd64, true);
    let t = b.p.build();
    let m = read_back(&t);
    assert_same_target(&t, &m);
    // Spot checks against the description itself, so both sides cannot be wrong together.
    assert_eq!(t.threads()[0].info.as_ref().unwrap().exit_status, 0x103);
    assert_eq!(
        m.threads()[0].info.as_ref().unwrap().start_address,
        t.frames(0)[2].func.addr,
        "the start address is the routine below BaseThreadInitThunk"
    );
    assert_eq!(m.threads()[0].name.as_deref(), Some("waiter"));
    let e = m.exception().unwrap();
    assert_eq!((e.thread_id, e.record.code), (SLEEPER, 0xc000_0005));
    assert_eq!(e.record.address, t.frames(2)[2].ip);
    assert_eq!(m.exception_context().unwrap().sp(), t.frames(2)[2].sp);
    assert_eq!(m.handles().unwrap().len(), 4);
    assert_eq!(
        m.modules()[0].version.as_ref().unwrap().file_version,
        (1, 2, 3, 4)
    );
    assert_eq!(
        m.thread_context(0).unwrap().get("rcx"),
        Some(b.event),
        "the register the test set"
    );
}

#[test]
fn an_x86_process_reads_back_the_same_from_its_minidump() {
    let b = three_threads(Arch::X86, true);
    let t = b.p.build();
    let m = read_back(&t);
    assert_same_target(&t, &m);
    assert_eq!(m.facts().arch, Arch::X86);
    assert_eq!(m.facts().cpu_vendor.as_deref(), Some("GenuineIntel"));
    assert_eq!(m.thread_context(0).unwrap().get("ecx"), Some(b.event));
}

#[test]
fn x64_stacks_walk_exactly_by_unwind_data_in_both_targets() {
    let b = three_threads(Arch::Amd64, true);
    let t = b.p.build();
    let m = read_back(&t);
    let mut outputs = Vec::new();
    for target in [Box::new(t.clone()) as Box<dyn Target>, Box::new(m)] {
        let mut s = Session::new(target);
        assert_exact_walks(&s, &t, &b.chains, Trust::UnwindInfo);
        let text = s.execute("~*kv").text;
        assert!(!text.contains("scan"), "{text}");
        assert!(!text.contains("WARNING"), "{text}");
        outputs.push(text);
    }
    assert_eq!(outputs[0], outputs[1]);
    // The waiter's first "Args to Child" is the event handle the test put in the home slot.
    assert!(
        outputs[0].contains(&format!(
            ": {} ",
            dumpdiag_target::windbg_address(b.event, 8)
        )),
        "{}",
        outputs[0]
    );
}

#[test]
fn x86_stacks_walk_exactly_by_the_ebp_chain_in_both_targets() {
    let b = three_threads(Arch::X86, true);
    let t = b.p.build();
    let m = read_back(&t);
    let mut outputs = Vec::new();
    for target in [Box::new(t.clone()) as Box<dyn Target>, Box::new(m)] {
        let mut s = Session::new(target);
        assert_exact_walks(&s, &t, &b.chains, Trust::FramePointer);
        let text = s.execute("~*kv").text;
        assert!(!text.contains("scan"), "{text}");
        assert!(!text.contains("WARNING"), "{text}");
        outputs.push(text);
    }
    assert_eq!(outputs[0], outputs[1]);
}

#[test]
fn an_image_left_out_of_the_dump_walks_by_breakpad_cfi_and_not_without_it() {
    let b = three_threads(Arch::Amd64, false);
    let t = b.p.build();
    let store = t.symbol_store();
    let mut s = Session::new(Box::new(read_back(&t)));
    s.set_symbol_path(&store.symbol_path());
    for (i, chain) in b.chains.iter().enumerate() {
        let ctx = s.thread_context(i).unwrap();
        let stack = dumpdiag_engine::cmd_stacks::stack_of(&s, i, &ctx);
        let got: Vec<(u64, u64)> = stack.frames.iter().map(|f| (f.ip, f.sp)).collect();
        let want: Vec<(u64, u64)> = t.frames(i).iter().map(|f| (f.ip, f.sp)).collect();
        assert_eq!(got, want, "thread {i}");
        assert_eq!(stack.frames.len(), chain.len());
        // Frame 1 (in KERNELBASE, whose image is not in the dump) returns by its CFI.
        assert_eq!(stack.frames[2].trust, Trust::FrameData, "thread {i}");
        assert!(stack.frames.iter().all(|f| f.trust != Trust::Scan));
    }
    let k = s.execute("~0k").text;
    assert!(k.contains("KERNELBASE!WaitForSingleObjectEx+0x"), "{k}");

    // Without symbols nothing names KERNELBASE's code nor unwinds it: the walk has to guess.
    let mut s = Session::new(Box::new(read_back(&t)));
    let k = s.execute("~0kv").text;
    assert!(k.contains("found by scan"), "{k}");
}

#[test]
fn x86_frames_walk_by_breakpad_stack_win_records() {
    let b = three_threads(Arch::X86, true);
    let t = b.p.build();
    let store = t.symbol_store();
    let sym = std::fs::read_to_string(t.symbol_files()[0].store_path(store.path())).unwrap();
    assert!(sym.starts_with("MODULE windows x86 "), "{sym}");
    assert!(sym.contains("STACK WIN 4 "), "{sym}");
    let mut s = Session::new(Box::new(read_back(&t)));
    s.set_symbol_path(&store.symbol_path());
    assert_exact_walks(&s, &t, &b.chains, Trust::FrameData);
    assert!(s.execute("lm").text.contains("breakpad"));
}

#[test]
fn teb_peb_and_handles_read_what_was_built() {
    for arch in [Arch::Amd64, Arch::X86] {
        let b = three_threads(arch, true);
        let t = b.p.build();
        let ptr = if arch == Arch::X86 { 4 } else { 8 };
        let hex = |v: u64| {
            if ptr == 4 {
                format!("{:08x}", v as u32)
            } else {
                format!("{v:016x}")
            }
        };
        let waiter = b.p.thread_ref(WAITER);
        for target in [
            Box::new(t.clone()) as Box<dyn Target>,
            Box::new(read_back(&t)),
        ] {
            let mut s = Session::new(target);
            let teb = s.execute("~0s; !teb").text;
            for want in [
                format!(
                    "TEB at {}",
                    dumpdiag_target::windbg_address(waiter.teb, ptr)
                ),
                format!("StackBase:            {}", hex(waiter.stack_base)),
                format!("StackLimit:           {}", hex(waiter.stack_limit)),
                format!("DeallocationStack:    {}", hex(waiter.deallocation_stack)),
                format!(
                    "ClientId:             {} . {}",
                    hex(PID as u64),
                    hex(WAITER as u64)
                ),
                format!("PEB Address:          {}", hex(b.p.peb())),
                "LastErrorValue:       6".into(),
            ] {
                assert!(teb.contains(&want), "{arch:?}: {want} not in\n{teb}");
            }
            let peb = s.execute("!peb").text;
            for want in [
                format!("ImageBaseAddress:         {}", hex(t.modules()[0].base)),
                "NtGlobalFlag:             1000".into(),
                "Ldr.Initialized:          Yes".into(),
                "C:\\Windows\\System32\\KERNELBASE.dll".into(),
                format!("ProcessHeap:       {}", hex(b.p.process_heap())),
                "CommandLine:  'waiter.exe --threads 3'".into(),
                "ImageFile:    'C:\\app\\waiter.exe'".into(),
                "SystemRoot=C:\\Windows".into(),
            ] {
                assert!(peb.contains(&want), "{arch:?}: {want} not in\n{peb}");
            }
            // Every module in load order, with its timestamp.
            assert_eq!(peb.matches("C:\\Windows\\System32\\").count(), 3, "{peb}");
            let h = s.execute("!handle 0 f").text;
            for want in [
                format!("Handle {}", hex(b.event)),
                "Name         \t\\BaseNamedObjects\\WorkReady".into(),
                "Event Type Auto Reset".into(),
                "Event is Waiting".into(),
                format!("Handle {}", hex(b.mutant)),
                "Mutex is Owned".into(),
                format!("Mutant Owner {PID:x}.{WAITER:x}"),
                format!("Handle {}", hex(b.thread_handle)),
                format!("Thread Id   {PID:x}.{MAIN:x}"),
                "Type         \tFile".into(),
            ] {
                assert!(h.contains(&want), "{arch:?}: {want} not in\n{h}");
            }
            let cs = s.execute(&format!("dd {:#x} L6", b.lock)).text;
            assert!(cs.contains("fffffffa") || cs.contains("fffffffe"), "{cs}");
        }
    }
}

#[test]
fn the_exception_context_is_the_faulting_frame() {
    let b = three_threads(Arch::Amd64, true);
    let t = b.p.build();
    let mut s = Session::new(Box::new(read_back(&t)));
    let text = s.execute(".ecxr").text;
    assert!(
        text.contains(&format!("rsp={:016x}", t.frames(2)[2].sp)),
        "{text}"
    );
    let k = s.execute("k").text;
    assert!(
        k.lines()
            .nth(1)
            .unwrap_or("")
            .contains("waiter!parse_block+0x"),
        "{k}"
    );
    assert!(k.contains("ntdll!RtlUserThreadStart"), "{k}");
}

/// The example of the crate's report: two threads each holding one critical section and
/// waiting for the other's.
#[test]
fn a_critical_section_deadlock_is_found_on_a_synthetic_process() {
    let mut p = Process::new(Arch::Amd64);
    let app = p.module(Module::new("C:\\app\\locks.exe"));
    let ntdll = p.module(Module::new("C:\\Windows\\System32\\ntdll.dll"));
    let kernel32 = p.module(Module::new("C:\\Windows\\System32\\kernel32.dll"));
    let wait = p.add_function(ntdll, Function::syscall("NtWaitForAlertByThreadId", 0x1bd));
    let contended = p.function(ntdll, "RtlpEnterCriticalSectionContended", 0x80);
    let enter = p.function(ntdll, "RtlEnterCriticalSection", 0x60);
    let start = p.function(ntdll, "RtlUserThreadStart", 0x40);
    let thunk = p.function(kernel32, "BaseThreadInitThunk", 0x40);
    let transfer = p.function(app, "transfer", 0x80);
    let audit = p.function(app, "audit", 0x80);
    let accounts = p.global(app, "g_accounts_lock", 0x28);
    let journal = p.global(app, "g_journal_lock", 0x28);
    p.critical_section(accounts, CriticalSection::owned(0x111, 1));
    p.critical_section(journal, CriticalSection::owned(0x222, 1));
    // 0x111 holds the accounts lock and waits for the journal lock; 0x222 the other way round.
    p.thread(0x111, [wait, contended, enter, transfer, thunk, start])
        .reg("rbx", journal);
    // 0x222's pointer to the section it waits for is a local of RtlEnterCriticalSection.
    p.thread(0x222, [wait, contended, enter, audit, thunk, start])
        .local_word(2, 0x18, accounts);
    let t = p.build();
    let store = t.symbol_store();
    for target in [
        Box::new(t.clone()) as Box<dyn Target>,
        Box::new(read_back(&t)),
    ] {
        let mut s = Session::new(target);
        s.set_symbol_path(&store.symbol_path());
        let report = dumpdiag_analysis::analyze(&s.analysis_input());
        let f = report
            .patterns
            .iter()
            .find(|f| f.name() == "Deadlock (Critical Sections)")
            .unwrap_or_else(|| panic!("no deadlock: {:#?}", report.patterns));
        assert_eq!(f.threads, vec![0x111, 0x222]);
        assert!(f.summary.contains("locks!g_accounts_lock"), "{}", f.summary);
        assert!(f.summary.contains("locks!g_journal_lock"), "{}", f.summary);
    }
}

/// What an exception dispatcher leaves below the stack pointer: an EXCEPTION_RECORD and the
/// CONTEXT of the faulting frame, which `.exr` and `.cxr` read from the stack.
#[test]
fn an_exception_record_and_context_left_below_the_stack_pointer_are_read_by_exr_and_cxr() {
    for arch in [Arch::Amd64, Arch::X86] {
        let mut b = three_threads(arch, true);
        let faulting = b.p.thread_ref(SLEEPER).frames[2];
        let record =
            b.p.exception_record_bytes(&dumpdiag_target::ExceptionRecord {
                code: 0xc000_0005,
                flags: 0,
                nested_record: 0,
                address: faulting.ip,
                parameters: vec![0, 0x10],
            });
        let context = b.p.context_bytes(&b.p.thread_ref(SLEEPER).frame_context(2));
        let t = b.p.thread_mut(SLEEPER);
        let context_at = t.below_sp(&context);
        let record_at = t.below_sp(&record);
        let built = b.p.build();
        let mut s = Session::new(Box::new(read_back(&built)));
        let exr = s.execute(&format!(".exr {record_at:#x}")).text;
        assert!(exr.contains("ExceptionCode: c0000005"), "{arch:?}: {exr}");
        assert!(exr.contains("waiter!parse_block+0x"), "{arch:?}: {exr}");
        let cxr = s.execute(&format!(".cxr {context_at:#x}")).text;
        assert!(cxr.contains("waiter!parse_block+0x"), "{arch:?}: {cxr}");
        let k = s.execute("k").text;
        let frames: Vec<&str> = k
            .lines()
            .skip(1)
            .map(|l| l.rsplit(' ').next().unwrap_or(""))
            .collect();
        assert!(
            frames[0].starts_with("waiter!parse_block+0x"),
            "{arch:?}: {k}"
        );
        assert!(frames[1].starts_with("waiter!worker+0x"), "{arch:?}: {k}");
        assert_eq!(frames.len(), 4, "{arch:?}: {k}");
        assert!(!k.contains("WARNING"), "{arch:?}: {k}");
    }
}
