//! A synthetic process described by the input (threads in call chains, registers, an
//! exception, critical sections, handles, heaps, and hostile values written into its TEBs,
//! PEB, stacks and heap blocks), dumped with dumpdiag-synth, then bytes of the dump patched
//! by the rest of the input: the structures stay Windows-shaped while their values go bad.
//! Open the result, run the command battery and the analysis.
#![no_main]
use dumpdiag_synth::{
    Chain, CriticalSection, Exception, ExceptionContext, Func, Function, Handle, Module, Process,
};
use dumpdiag_target::Arch;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

const COMMANDS: &[&str] = &[
    "~*kv",
    "~* r",
    ".exr -1",
    ".ecxr",
    "kv",
    "lmv",
    "!teb",
    "!peb",
    "!address -summary",
    "!address",
    "!heap -s -v",
    "!heap -a",
    "!handle 0 f",
    "!runaway 7",
    "!gle",
    "dps @$csp",
    "u @$ip",
    "ub @$ip",
    "!uniqstack",
    "!cs",
    "!locks",
    "!waitchain",
    "!analyze -v",
];

/// Codes the detectors look for, and any other.
fn exception_code(u: &mut Unstructured) -> Result<u32> {
    const CODES: &[u32] = &[
        0xc000_0005,
        0xc000_0374,
        0xc000_0409,
        0x8000_0003,
        0xe06d_7363,
        0xc000_00fd,
        0xc000_0094,
        0xc000_001d,
        0xc000_0096,
        0x4000_0015,
        0xc000_0008,
        0x8000_0002,
    ];
    Ok(if u.arbitrary()? {
        *u.choose(CODES)?
    } else {
        u.arbitrary()?
    })
}

/// A value that is often an interesting one: 0, all ones, near 2^64 or 2^32, or a known
/// address of the process.
fn value(u: &mut Unstructured, known: &[u64]) -> Result<u64> {
    Ok(match u.int_in_range(0..=5u8)? {
        0 => 0,
        1 => u64::MAX - u.int_in_range(0..=0x40u64)?,
        2 => 0xffff_ffff - u.int_in_range(0..=0x40u64)?,
        3 if !known.is_empty() => u
            .choose(known)?
            .wrapping_add(u.int_in_range(0..=0x40u64)?.wrapping_sub(0x20)),
        _ => u.arbitrary()?,
    })
}

fn build(u: &mut Unstructured) -> Result<Vec<u8>> {
    let x64 = u.arbitrary::<bool>()?;
    let mut p = Process::new(if x64 { Arch::Amd64 } else { Arch::X86 });
    let ntdll = p.module(Module::new("C:\\Windows\\System32\\ntdll.dll"));
    let kernel32 = p.module(Module::new("C:\\Windows\\System32\\kernel32.dll"));
    let mut kb = Module::new("C:\\Windows\\System32\\KERNELBASE.dll");
    if u.arbitrary()? {
        kb = kb.not_in_dump();
    }
    let kernelbase = p.module(kb);
    let mut app = Module::new("C:\\app\\app.exe");
    if u.arbitrary()? {
        app = app.no_exports();
    }
    let app = p.module(app);
    let mut stubs: Vec<Func> = vec![
        p.add_function(ntdll, Function::syscall("NtWaitForSingleObject", 4)),
        p.add_function(ntdll, Function::syscall("NtDelayExecution", 0x34)),
        p.add_function(ntdll, Function::syscall("NtWaitForAlertByThreadId", 0x1c2)),
        p.function(ntdll, "RtlpWaitOnCriticalSection", 0x100),
        p.function(ntdll, "KiUserExceptionDispatcher", 0x100),
        p.function(ntdll, "RtlReportFatalFailure", 0x100),
        p.function(kernelbase, "WaitForSingleObjectEx", 0x100),
        p.function(kernelbase, "RaiseException", 0x100),
        p.function(kernelbase, "UnhandledExceptionFilter", 0x100),
    ];
    let start = p.function(ntdll, "RtlUserThreadStart", 0x40);
    let thunk = p.function(kernel32, "BaseThreadInitThunk", 0x40);
    let mut body: Vec<Func> = Vec::new();
    for i in 0..u.int_in_range(1..=6u32)? {
        let mut f = Function::new(&format!("f{i}"), 0x200)
            .locals(u.int_in_range(0..=0x40u32)? * 0x10)
            .calls(u.int_in_range(1..=3u32)?);
        if u.arbitrary()? {
            f = f.save_fp(u.arbitrary()?);
        }
        body.push(p.add_function(app, f));
    }
    stubs.extend(body.iter().copied());

    let mut known: Vec<u64> = vec![p.peb(), p.process_heap(), ntdll.base, app.base];
    let mut threads = Vec::new();
    for t in 0..u.int_in_range(1..=4u32)? {
        let id = 0x100 + 4 * t;
        let mut chain = Chain::new(*u.choose(&stubs)?);
        for _ in 0..u.int_in_range(0..=4u32)? {
            chain = chain.called_from(*u.choose(&body)?);
        }
        if u.arbitrary()? {
            chain = chain.called_from(thunk).called_from(start);
        }
        let regs: &[&str] = if x64 {
            &[
                "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "rbp", "rsp", "rip",
            ]
        } else {
            &[
                "eax", "ebx", "ecx", "edx", "esi", "edi", "ebp", "esp", "eip",
            ]
        };
        let mut set = Vec::new();
        for _ in 0..u.int_in_range(0..=3u32)? {
            set.push((*u.choose(regs)?, value(u, &known)?));
        }
        let last_error = u.arbitrary()?;
        let tls = (u.int_in_range(0..=63u32)?, u.arbitrary::<u64>()?);
        let th = p.thread(id, chain);
        for (r, v) in set {
            th.reg(r, v);
        }
        th.last_error(last_error).tls(tls.0, tls.1);
        known.extend([th.teb, th.sp(), th.stack_base]);
        threads.push(id);
    }
    if u.arbitrary()? {
        let thread = *u.choose(&threads)?;
        let mut e = Exception::new(thread, exception_code(u)?);
        e.flags = u.arbitrary::<u32>()? & 0x41;
        for _ in 0..u.int_in_range(0..=4u32)? {
            e.parameters.push(value(u, &known)?);
        }
        if u.arbitrary()? {
            e.address = Some(value(u, &known)?);
        }
        let frames = p.frames(thread).len();
        if u.arbitrary()? {
            e.context = ExceptionContext::Frame(u.int_in_range(0..=frames - 1)?);
        }
        p.exception(e);
    }
    for i in 0..u.int_in_range(0..=3u32)? {
        let at = p.global(app, &format!("g_lock{i}"), 0x40);
        let cs = CriticalSection {
            debug_info: value(u, &known)?,
            lock_count: u.arbitrary()?,
            recursion_count: u.arbitrary()?,
            owning_thread: if u.arbitrary()? {
                *u.choose(&threads)?
            } else {
                u.arbitrary()?
            },
            lock_semaphore: u.arbitrary()?,
            spin_count: u.arbitrary()?,
        };
        p.critical_section(at, cs);
        known.push(at);
    }
    for _ in 0..u.int_in_range(0..=4u32)? {
        let h = match u.int_in_range(0..=3u8)? {
            0 => Handle::event(u.arbitrary()?, u.arbitrary()?),
            1 => Handle::mutant(if u.arbitrary()? {
                Some((u.arbitrary()?, *u.choose(&threads)?))
            } else {
                None
            }),
            2 => Handle::semaphore(u.arbitrary()?, u.arbitrary()?),
            _ => Handle::file("\\Device\\HarddiskVolume3\\app\\data.bin"),
        };
        p.handle(h);
    }
    let mut blocks = Vec::new();
    for _ in 0..u.int_in_range(0..=2u32)? {
        let heap = p.heap(0x10_0000, 0x1_0000);
        for _ in 0..u.int_in_range(0..=4u32)? {
            blocks.push(p.heap_alloc(heap, u.int_in_range(1..=0x400u64)?));
        }
        known.push(heap);
    }
    known.extend(blocks.iter().copied());
    if u.arbitrary()? {
        p.no_memory_info();
    }
    // Hostile values written over what the builder laid out.
    let ptr = p.ptr();
    for _ in 0..u.int_in_range(0..=8u32)? {
        let id = *u.choose(&threads)?;
        let (teb, sp, base) = {
            let t = p.thread_ref(id);
            (t.teb, t.sp(), t.stack_base)
        };
        let at = match u.int_in_range(0..=3u8)? {
            0 => teb + u.int_in_range(0..=0x3ffu64)? * 4,
            1 => p.peb() + u.int_in_range(0..=0xffu64)? * 4,
            2 => sp + u.int_in_range(0..=(base - sp) / ptr - 1)? * ptr,
            _ if !blocks.is_empty() => {
                // A heap block's HEAP_ENTRY or its first bytes.
                u.choose(&blocks)? - 2 * ptr + u.int_in_range(0..=3u64)? * ptr
            }
            _ => teb,
        };
        let v = value(u, &known)?;
        p.write(at, &v.to_le_bytes()[..ptr as usize]);
    }
    Ok(p.build().minidump())
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(mut dump) = build(&mut u) else {
        return;
    };
    // Then bytes of the file itself: (offset, width, value).
    for _ in 0..16 {
        let (Ok(off), Ok(width), Ok(v)) = (
            u.arbitrary::<u32>(),
            u.arbitrary::<u8>(),
            u.arbitrary::<u64>(),
        ) else {
            break;
        };
        let width = [1usize, 2, 4, 8][(width % 4) as usize];
        let off = off as usize % dump.len();
        let end = (off + width).min(dump.len());
        dump[off..end].copy_from_slice(&v.to_le_bytes()[..end - off]);
    }
    // To look at a finding with the CLI: DUMPDIAG_FUZZ_WRITE_DUMP=file cargo fuzz run ... input
    if let Ok(path) = std::env::var("DUMPDIAG_FUZZ_WRITE_DUMP") {
        let _ = std::fs::write(path, &dump);
    }
    if let Ok(t) = dumpdiag_mdmp::MdmpTarget::from_bytes("fuzz.dmp", dump) {
        let mut s = dumpdiag_engine::Session::new(Box::new(t));
        for c in COMMANDS {
            let _ = s.execute(c);
        }
        let _ = dumpdiag_analysis::analyze(&s.analysis_input()).to_json();
    }
});
