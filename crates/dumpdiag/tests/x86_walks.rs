//! x86 stack walks frame by frame against rust-minidump's minidump-stackwalk 0.27, on every x86
//! dump of the corpus, and the x86 view of a WOW64 dump against the frames its PDB and code
//! show.
//!
//! The reference walks are kept in tests/minidump-stackwalk/ (made by
//! tools/minidump-stackwalk-refs.py, which records the command and version in each file), so
//! the test needs no tool CI lacks.
//!
//! "At least as right" is judged frame by frame. The two walks of a thread are aligned by
//! instruction pointer (their longest common subsequence; frame 0, the context, must agree),
//! then every frame of either walk gets a verdict:
//!
//! * a frame in both walks is *same*, *better* when dumpdiag found it by unwind data, frame
//!   data, the frame pointer or the stack pointer where minidump-stackwalk scanned, or names its
//!   function from symbols (FUNC/PUBLIC of a .sym, a PDB) where minidump-stackwalk names none;
//!   *worse* when dumpdiag scanned where minidump-stackwalk did not, or names no function or
//!   another one where minidump-stackwalk names one;
//! * a frame only minidump-stackwalk has is *worse* when minidump-stackwalk proved it: found by
//!   CFI/STACK WIN or the frame pointer, its return address in a module, and no scanned frame
//!   before it in its walk (after a scan its registers are guesses). Otherwise it is one of its
//!   guesses: *better* (rightly left out) when the dump disproves it (the address is in no
//!   module nor executable memory, in a section or page that is not code, or after no call
//!   where the code is readable), else *unjudged*;
//! * a frame only dumpdiag has is *better* when the code shows it is real (a call before its
//!   return address, or frame 0 caught at a `ret` whose return address it is: the caller an
//!   EBP-chain walk from a frameless leaf skips), *worse* when the code shows no call before
//!   it, else *unjudged*; a scanned one is *unjudged* (it must still be on code, below).
//!
//! The test fails on any *worse* frame, on any scanned frame of dumpdiag's that lies on data or
//! outside executable code, and on a ChildEBP column that is not one base per frame.

mod common;
use common::*;
use dumpdiag_engine::cmd_stacks;
use dumpdiag_engine::Session;
use dumpdiag_stack::{Env, Stack, Trust};
use dumpdiag_symbols::{ModuleSymbols, SymbolKind};
use dumpdiag_target::MemoryExt;
use serde_json::Value;

/// (reference, symbol path under the corpus): the reference names its dump. dumpdiag gets the
/// PDBs beside the bugsplat and kdlib dumps, which minidump-stackwalk (Breakpad symbols only)
/// cannot use.
const CASES: &[(&str, &str)] = &[
    ("minidump2", "breakpad/symbols"),
    ("ascii_read_av", "breakpad/symbols"),
    ("null_read_av", "breakpad/symbols"),
    ("null_write_av", "breakpad/symbols"),
    ("read_av_non_null", "breakpad/symbols"),
    ("write_av_non_null", "breakpad/symbols"),
    ("stack_exhaustion", "breakpad/symbols"),
    ("thread_name_list", "breakpad/symbols"),
    ("bugsplat", "bugsplat"),
    ("bugsplat-js", "bugsplat-js"),
    ("cv_allreg_i386", "kdlibcpp/targetapp_test_cv_allreg_i386"),
    ("fizzbuzz", "lldb/fizzbuzz"),
    ("mozilla-x86", "mozilla/symbols"),
    ("notepad-32bit", "syzygy"),
];

fn reference(name: &str) -> Value {
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/minidump-stackwalk")
        .join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

fn hex(v: &Value) -> u64 {
    u64::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Verdict {
    Same,
    Better,
    Worse,
    Unjudged,
}

/// Frame verdicts of one dump.
#[derive(Default, Debug)]
struct Tally {
    same: usize,
    better: usize,
    worse: usize,
    unjudged: usize,
    /// Of the better ones: frames minidump-stackwalk lacks, its guesses the dump disproves,
    /// frames it scanned that dumpdiag unwound, functions only dumpdiag names.
    ours_only: usize,
    theirs_disproved: usize,
    trust: usize,
    names: usize,
    /// Frames each found by scanning.
    their_scans: usize,
    our_scans: usize,
    /// What each better or unjudged frame was (printed with X86_WALKS_DETAIL=1).
    notes: Vec<String>,
}

impl Tally {
    fn add(&mut self, v: Verdict) {
        match v {
            Verdict::Same => self.same += 1,
            Verdict::Better => self.better += 1,
            Verdict::Worse => self.worse += 1,
            Verdict::Unjudged => self.unjudged += 1,
        }
    }

    fn merge(&mut self, o: &Tally) {
        self.same += o.same;
        self.better += o.better;
        self.worse += o.worse;
        self.unjudged += o.unjudged;
        self.ours_only += o.ours_only;
        self.theirs_disproved += o.theirs_disproved;
        self.trust += o.trust;
        self.names += o.names;
        self.their_scans += o.their_scans;
        self.our_scans += o.our_scans;
        self.notes.extend(o.notes.iter().cloned());
    }

    fn line(&self, name: &str) -> String {
        format!(
            "{name:17} same {:4}  better {:3} (frames they lack {}, their guesses disproved {}, \
             unwound where they scanned {}, named where they name none {})  worse {}  \
             unjudged {:2}  scanned: theirs {:2}, ours {:2}",
            self.same,
            self.better,
            self.ours_only,
            self.theirs_disproved,
            self.trust,
            self.names,
            self.worse,
            self.unjudged,
            self.their_scans,
            self.our_scans
        )
    }
}

/// The function dumpdiag names at `probe`, as its symbols spell it: a Breakpad record's name as
/// written (minidump-stackwalk prints it so), a PDB's procedure. None for export names (the
/// nearest export, a guess) and where no symbols cover the address.
fn our_function(s: &Session, probe: u64) -> Option<String> {
    let t = s.target();
    let idx = t.modules().iter().position(|m| m.contains(probe))?;
    let rva = probe - t.modules()[idx].base;
    match s.symbols().module(t, idx)? {
        ModuleSymbols::Breakpad(b, _) => b.lookup(rva).map(|hit| hit.0),
        ModuleSymbols::Pdb(_) => s
            .symbols()
            .lookup(t, probe)
            .filter(|sym| sym.kind == SymbolKind::Pdb)
            .map(|sym| sym.function),
        _ => None,
    }
}

/// The longest common subsequence of two address lists, as index pairs.
fn align(a: &[u64], b: &[u64]) -> Vec<(usize, usize)> {
    let (n, m) = (a.len(), b.len());
    let mut l = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            l[i][j] = if a[i] == b[j] {
                l[i + 1][j + 1] + 1
            } else {
                l[i + 1][j].max(l[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < n && j < m {
        if a[i] == b[j] {
            out.push((i, j));
            i += 1;
            j += 1;
        } else if l[i + 1][j] >= l[i][j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// Frame 1 of `stack` is a caller an EBP-chain walk skips: frame 0 is caught at a `ret` (every
/// system-call stub waits there) whose return address, at the stack pointer, is frame 1's.
/// Checked from the code (in the dump or the module's image file) and the stack.
fn skipped_leaf(s: &Session, stack: &Stack) -> bool {
    let (Some(f0), Some(f1)) = (stack.frames.first(), stack.frames.get(1)) else {
        return false;
    };
    let code = s.symbols().code_bytes(s.target(), f0.ip, 1);
    let at_ret = matches!(code.as_slice(), [0xc3] | [0xc2]);
    f1.trust == Trust::StackPointer
        && at_ret
        && s.target().memory().read_u32(f0.sp) == Some(f1.ip as u32)
}

fn env<'a>(s: &'a Session, index: usize, stack: &Stack) -> Env<'a> {
    Env {
        target: s.target(),
        symbols: s.symbols(),
        bounds: dumpdiag_stack::thread_bounds(&s.view(), index, stack.frames[0].sp),
    }
}

/// Does the dump disprove `ra` as a return address?
fn disproved(env: &Env, ra: u64) -> bool {
    let t = env.target;
    if t.module_at(ra).is_none() {
        return !env.is_executable_memory(ra);
    }
    !env.is_code(ra) || env.call_before(ra) == Some(false)
}

/// Compare one thread; the worse frames are described in `bad`.
fn compare(
    s: &Session,
    index: usize,
    theirs: &[Value],
    stack: &Stack,
    tally: &mut Tally,
    bad: &mut Vec<String>,
) {
    let ours = &stack.frames;
    let env = env(s, index, stack);
    assert_eq!(ours[0].ip, hex(&theirs[0]["offset"]), "the context frame");
    tally.our_scans += ours.iter().filter(|f| f.trust == Trust::Scan).count();
    tally.their_scans += theirs.iter().filter(|f| f["trust"] == "scan").count();
    // Their callers' "offset" is the return address less one.
    let their_ips: Vec<u64> = theirs
        .iter()
        .enumerate()
        .map(|(k, f)| hex(&f["offset"]) + (k > 0) as u64)
        .collect();
    let our_ips: Vec<u64> = ours.iter().map(|f| f.ip).collect();
    let pairs = align(&their_ips, &our_ips);
    assert_eq!(pairs.first(), Some(&(0, 0)), "frame 0 is the context");
    let mut matched_theirs = vec![None; theirs.len()];
    let mut matched_ours = vec![false; ours.len()];
    for &(k, d) in &pairs {
        matched_theirs[k] = Some(d);
        matched_ours[d] = true;
    }
    // The context frame: the same function.
    let (theirs0, mine0) = (theirs[0]["function"].as_str(), our_function(s, ours[0].ip));
    match (theirs0, mine0.as_deref()) {
        (Some(a), b) if Some(a) != b => {
            bad.push(format!("frame 0: named {b:?}, they name {a:?}"));
            tally.add(Verdict::Worse);
        }
        (None, Some(_)) => {
            tally.names += 1;
            tally.add(Verdict::Better);
        }
        _ => tally.add(Verdict::Same),
    }
    // Their frames, in order.
    let mut scanned_before = false;
    for (k, f) in theirs.iter().enumerate().skip(1) {
        let trust = f["trust"].as_str().unwrap();
        let ra = their_ips[k];
        let v = match matched_theirs[k] {
            Some(d) => {
                let o = &ours[d];
                let mut v = Verdict::Same;
                let mut worse = Vec::new();
                match (trust == "scan", o.trust == Trust::Scan) {
                    (true, false) => {
                        v = Verdict::Better;
                        tally.trust += 1;
                    }
                    (false, true) => worse.push(format!("scanned where they used {trust}")),
                    _ => {}
                }
                let mine = our_function(s, ra - 1);
                match (f["function"].as_str(), mine.as_deref()) {
                    (Some(a), Some(b)) if a == b => {}
                    (Some(a), b) => worse.push(format!("named {b:?}, they name {a:?}")),
                    (None, Some(_)) => {
                        if v == Verdict::Same {
                            v = Verdict::Better;
                        }
                        tally.names += 1;
                    }
                    (None, None) => {}
                }
                if !worse.is_empty() {
                    bad.push(format!("frame {k} ({ra:#x}): {}", worse.join("; ")));
                    v = Verdict::Worse;
                }
                v
            }
            None => {
                let proved = (trust == "cfi" || trust == "frame_pointer")
                    && s.target().module_at(ra).is_some()
                    && !scanned_before;
                if proved {
                    bad.push(format!(
                        "frame {k}: minidump-stackwalk {ra:#x} by {trust}, dumpdiag lacks it"
                    ));
                    Verdict::Worse
                } else if disproved(&env, ra) {
                    tally.theirs_disproved += 1;
                    Verdict::Better
                } else {
                    Verdict::Unjudged
                }
            }
        };
        scanned_before |= trust == "scan";
        if matches!(v, Verdict::Better | Verdict::Unjudged) {
            let ours_at = matched_theirs[k].map(|d| format!("{:?}", ours[d].trust));
            tally.notes.push(format!(
                "thread {index} their frame {k} {ra:#x} ({trust}, {:?}): {v:?}, ours {ours_at:?} {:?}",
                f["function"].as_str(),
                s.symbols().describe(s.target(), ra)
            ));
        }
        tally.add(v);
    }
    // Our frames they lack.
    for (d, o) in ours.iter().enumerate().skip(1) {
        if matched_ours[d] {
            continue;
        }
        let v = if o.trust == Trust::Scan {
            Verdict::Unjudged
        } else if (d == 1 && skipped_leaf(s, stack)) || env.call_before(o.ip) == Some(true) {
            tally.ours_only += 1;
            Verdict::Better
        } else if env.call_before(o.ip) == Some(false) {
            bad.push(format!(
                "our frame {d} ({:#x}, by {:?}) follows no call",
                o.ip, o.trust
            ));
            Verdict::Worse
        } else {
            Verdict::Unjudged
        };
        tally.notes.push(format!(
            "thread {index} our frame {d} {:#x} ({:?}) they lack: {v:?} {:?}",
            o.ip,
            o.trust,
            s.symbols().describe(s.target(), o.ip)
        ));
        tally.add(v);
    }
}

/// No frame of `stack` found by scanning lies on data: each return address is in an
/// executable section of its module where the sections are known, after a call where the
/// code is readable, and no data symbol names it.
fn assert_scans_on_code(s: &Session, index: usize, stack: &Stack, what: &str) {
    let t = s.target();
    let env = env(s, index, stack);
    for (i, f) in stack.frames.iter().enumerate() {
        if f.trust != Trust::Scan {
            continue;
        }
        let m = t
            .modules()
            .iter()
            .position(|m| m.contains(f.ip))
            .unwrap_or_else(|| panic!("{what}: frame {i} scanned outside every module"));
        if let Some(sec) = s.symbols().sections(t, m) {
            assert!(
                sec.executable(f.ip - t.modules()[m].base),
                "{what}: frame {i} scanned onto a section that is not code: {:#x}",
                f.ip
            );
        }
        assert!(
            env.is_code(f.ip),
            "{what}: frame {i} scanned onto memory that is not code: {:#x}",
            f.ip
        );
        assert_ne!(
            env.call_before(f.ip),
            Some(false),
            "{what}: frame {i} ({:#x}) does not follow a call",
            f.ip
        );
        assert!(
            !s.symbols().is_data(t, f.ip - 1),
            "{what}: frame {i} scanned onto data {:?}",
            s.symbols().describe(t, f.ip)
        );
    }
}

/// WinDbg's ChildEBP column: one frame base per frame, never zero, rising towards the
/// thread's start; for a frame its caller was found from by the EBP chain, its EBP.
fn assert_child_ebp(stack: &Stack, what: &str) {
    let bases: Vec<u64> = (0..stack.frames.len())
        .map(|i| cmd_stacks::child_ebp(stack, i))
        .collect();
    for (i, &b) in bases.iter().enumerate() {
        assert_ne!(b, 0, "{what}: frame {i} has no ChildEBP: {bases:x?}");
        if i > 0 {
            assert!(
                b > bases[i - 1],
                "{what}: ChildEBP of frame {i} does not rise: {bases:x?}"
            );
        }
        if stack.frames.get(i + 1).map(|c| c.trust) == Some(Trust::FramePointer) {
            assert_eq!(
                b, stack.frames[i].fp,
                "{what}: frame {i}, walked by its EBP, shows another ChildEBP"
            );
        }
    }
}

#[test]
fn x86_walks_are_at_least_as_right_as_minidump_stackwalk_frame_by_frame() {
    let mut failures = Vec::new();
    let mut report = Vec::new();
    let mut total = Tally::default();
    for &(name, sym) in CASES {
        let r = reference(name);
        let rel = r["dump"].as_str().unwrap();
        let mut s = session(rel);
        s.set_symbol_path(dump(sym).to_str().unwrap());
        let crashed = r["crashing_thread"].as_u64().map(|c| c as usize);
        let mut tally = Tally::default();
        for (i, t) in r["threads"].as_array().unwrap().iter().enumerate() {
            let theirs = t["frames"].as_array().unwrap();
            assert_eq!(
                s.target().threads()[i].id as u64,
                t["thread_id"].as_u64().unwrap(),
                "{name}: thread {i}"
            );
            if theirs.is_empty() {
                continue; // no context (the dump writer's own thread)
            }
            // The crashed thread from the exception's context, as minidump-stackwalk walks it.
            let ctx = if crashed == Some(i) {
                s.target().exception_context()
            } else {
                s.thread_context(i)
            }
            .unwrap();
            let stack = cmd_stacks::stack_of(&s, i, &ctx);
            let what = format!("{name} thread {i}");
            let mut bad = Vec::new();
            compare(&s, i, theirs, &stack, &mut tally, &mut bad);
            failures.extend(bad.into_iter().map(|b| format!("{what}: {b}")));
            assert_scans_on_code(&s, i, &stack, &what);
            assert_child_ebp(&stack, &what);
        }
        report.push(tally.line(name));
        if std::env::var_os("X86_WALKS_DETAIL").is_some() {
            report.extend(tally.notes.iter().map(|n| format!("    {n}")));
        }
        total.merge(&tally);
    }
    report.push(total.line("all"));
    eprintln!("{}", report.join("\n"));
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(total.worse, 0);
    // The comparison has teeth: dumpdiag does better somewhere, and compares many frames.
    assert!(total.same > 1000 && total.better > 0, "{total:?}");
}

/// The comparison itself: a walk that misses a frame minidump-stackwalk proved, or scans where
/// it unwound, is worse.
#[test]
fn the_comparison_fails_a_walk_that_loses_a_frame() {
    let r = reference("minidump2");
    let mut s = session(r["dump"].as_str().unwrap());
    s.set_symbol_path(dump("breakpad/symbols").to_str().unwrap());
    let theirs = r["threads"][0]["frames"].as_array().unwrap().clone();
    let ctx = s.target().exception_context().unwrap();
    let stack = cmd_stacks::stack_of(&s, 0, &ctx);
    let (mut tally, mut bad) = (Tally::default(), Vec::new());
    compare(&s, 0, &theirs, &stack, &mut tally, &mut bad);
    assert!(bad.is_empty() && tally.worse == 0, "{bad:?}");
    // Drop frame 2 (main's caller): minidump-stackwalk found it by CFI.
    let mut cut = stack.clone();
    cut.frames.remove(2);
    let (mut tally, mut bad) = (Tally::default(), Vec::new());
    compare(&s, 0, &theirs, &cut, &mut tally, &mut bad);
    assert_eq!(tally.worse, 1, "{bad:?}");
    // Mark frame 1 scanned.
    let mut scanned = stack.clone();
    scanned.frames[1].trust = Trust::Scan;
    let (mut tally, mut bad) = (Tally::default(), Vec::new());
    compare(&s, 0, &theirs, &scanned, &mut tally, &mut bad);
    assert_eq!(tally.worse, 1, "{bad:?}");
}

/// No corpus dump (x86, x64, WOW64 in both views) nor the bundled sample has a scanned frame on
/// data or outside executable code (the bundled sample's x64 walk once scanned onto
/// `g_ledger_lock+0x18` and a vftable).
#[test]
fn no_scanned_frame_of_any_dump_lies_on_data() {
    let mut dumps: Vec<(std::path::PathBuf, std::path::PathBuf)> = all_dumps()
        .into_iter()
        .map(|p| {
            let sym = p.parent().unwrap().join("symbols");
            let sym = if sym.is_dir() {
                sym
            } else {
                p.parent().unwrap().to_path_buf()
            };
            (p, sym)
        })
        .collect();
    let samples = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../samples");
    dumps.push((samples.join("cs_deadlock.dmp"), samples.clone()));
    let mut scanned = 0;
    for (p, sym) in dumps {
        let t = dumpdiag_mdmp::open_dump(&p).unwrap();
        let mut s = Session::new(t);
        s.set_symbol_path(sym.to_str().unwrap());
        for effmach in ["", ".effmach x86"] {
            if !effmach.is_empty() {
                if !s.is_wow64() {
                    continue;
                }
                s.execute(effmach);
            }
            for i in 0..s.target().threads().len() {
                let Some(ctx) = s.view().thread_context(i) else {
                    continue;
                };
                let stack = cmd_stacks::stack_of(&s, i, &ctx);
                scanned += stack
                    .frames
                    .iter()
                    .filter(|f| f.trust == Trust::Scan)
                    .count();
                assert_scans_on_code(
                    &s,
                    i,
                    &stack,
                    &format!("{} {effmach} thread {i}", p.display()),
                );
            }
        }
    }
    eprintln!("{scanned} scanned frames, all on code");
}

/// kdlib's WOW64 dump in its x86 view (minidump-stackwalk walks only the 64-bit side of it).
/// Expected from the dump: each return address follows a call to the frame above it
/// (`ub` shows `call targetapp!__scrt_common_main_seh` before 0087822d, `call esi` in
/// BaseThreadInitThunk before 77d5305a …), names from targetapp.pdb; ntdll has no symbols,
/// its two outermost frames are __RtlUserThreadStart and _RtlUserThreadStart, whose EBP chain
/// ends in a zero return address.
#[test]
fn kdlib_wow64_x86_view_walks_every_thread_to_its_start() {
    let dir = "kdlibcpp/targetapp_stacktest_wow64";
    let mut s = session(&format!("{dir}/targetapp_stacktest_wow64.dmp"));
    s.set_symbol_path(dump(dir).to_str().unwrap());
    s.execute(".effmach x86");
    let main: &[u64] = &[
        0x00875f5d, // stackTestClass::stackMethod+0x2d (int 3)
        0x008761da, // stackTestRun2+0x5a
        0x00876055, // stackTestRun1+0xc5
        0x00876336, // stackTestRun+0x86
        0x00876e12, // wmain+0x412
        0x0087852e, // invoke_main+0x1e
        0x00878397, // __scrt_common_main_seh+0x157
        0x0087822d, // __scrt_common_main+0xd
        0x008785a8, // wmainCRTStartup+0x8
        0x75448484, // kernel32!BaseThreadInitThunk+0x24
        0x77d5305a, // ntdll!__RtlUserThreadStart+0x2f
        0x77d5302a, // ntdll!_RtlUserThreadStart+0x1b
    ];
    let ctx = s.view().exception_context().unwrap();
    let stack = cmd_stacks::stack_of(&s, 0, &ctx);
    let got: Vec<u64> = stack.frames.iter().map(|f| f.ip).collect();
    assert_eq!(got, main);
    assert!(stack.frames.iter().all(|f| f.trust != Trust::Scan));
    for t in 1..4 {
        // Pool workers: NtWaitForWorkViaWorkerFactory's `ret 14h` returns to TppWorkerThread.
        let ctx = s.view().thread_context(t).unwrap();
        let stack = cmd_stacks::stack_of(&s, t, &ctx);
        let got: Vec<u64> = stack.frames.iter().skip(1).map(|f| f.ip).collect();
        assert_eq!(
            got,
            [0x77d3cbb6, 0x75448484, 0x77d5305a, 0x77d5302a],
            "thread {t}"
        );
        assert_eq!(stack.frames[1].trust, Trust::StackPointer);
        assert!(stack.null_return, "thread {t} ends at its outermost frame");
        assert!(
            cmd_stacks::stack_checks(&s, t, &stack).is_empty(),
            "thread {t}: {:?}",
            cmd_stacks::stack_checks(&s, t, &stack)
        );
    }
    // WinDbg's x86 columns: ChildEBP is the frame's base (return address at +4, arguments at
    // +8), so a frameless frame 0 shows esp-4 and every frame its own.
    let k = s.execute("~1kb").text;
    let lines: Vec<&str> = k.lines().skip(1).take(5).collect();
    assert!(
        lines[0].starts_with("00b6fcf8 77d3cbb6 000000b4 00726148 00000010"),
        "{k}"
    );
    let bases: Vec<&str> = lines.iter().map(|l| &l[..8]).collect();
    let mut uniq = bases.clone();
    uniq.dedup();
    assert_eq!(bases, uniq, "one ChildEBP per frame: {k}");
    assert_eq!(bases[1], "00b6feb4", "{k}");
}
