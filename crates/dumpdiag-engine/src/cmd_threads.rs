//! Thread and context commands: `~` and its thread prefixes, `r`, `.exr`, `.ecxr`, `.cxr`,
//! `.thread`, `!teb`, `!runaway`, `!gle`, `.effmach`.

use std::fmt::Write;

use crate::cmd_target::event_text;
use crate::command_line::{split_commands, thread_prefix};
use crate::format;
use crate::registry::{Command, Invocation};
use crate::{CommandError, Session};
use dumpdiag_os::{errors, teb};
use dumpdiag_target::context::{CONTEXT_AMD64_SIZE, CONTEXT_X86_SIZE};
use dumpdiag_target::{Arch, Context, ExceptionRecord, MemoryExt};

pub(crate) const COMMANDS: &[Command] = &[
    Command {
        names: &["~", "~*"],
        usage: "~[N|*|.|#|~[tid]] [s | [e] command]",
        help:
            "List threads; ~Ns makes thread N current; ~N cmd / ~* cmd runs cmd on those threads \
               (~*e runs the rest of the line).",
        family: Some(|verb| verb.starts_with('~')),
        arguments: &[],
        run: thread_command,
    },
    Command {
        names: &["r"],
        usage: "r [register[, register...]]",
        help: "Registers of the current thread (or of the .cxr/.ecxr scope).",
        family: None,
        arguments: &[],
        run: registers,
    },
    Command {
        names: &[".exr"],
        usage: ".exr -1 | .exr address",
        help: "The dump's exception record (-1), or the EXCEPTION_RECORD at an address.",
        family: None,
        arguments: &["-1"],
        run: exr,
    },
    Command {
        names: &[".ecxr"],
        usage: ".ecxr",
        help: "Switch to the exception's context and show its registers.",
        family: None,
        arguments: &[],
        run: |s, _| ecxr(s),
    },
    Command {
        names: &[".cxr"],
        usage: ".cxr [address]",
        help: "Switch to the CONTEXT at an address; without one, back to the thread's own.",
        family: None,
        arguments: &[],
        run: cxr,
    },
    Command {
        names: &[".thread"],
        usage: ".thread [address]",
        help: "The implicit thread: with a thread's TEB address, its registers and stack are \
               what r, k and dv read, without changing the current thread; without one, back \
               to the current thread's.",
        family: None,
        arguments: &[],
        run: implicit_thread,
    },
    Command {
        names: &["!teb"],
        usage: "!teb [address]",
        help: "The current thread's TEB (or the one at an address).",
        family: None,
        arguments: &[],
        run: teb,
    },
    Command {
        names: &["!runaway"],
        usage: "!runaway [flags]",
        help: "Threads by CPU time: 1 user, 2 kernel, 4 elapsed (add them up).",
        family: None,
        arguments: &["1", "2", "4", "7"],
        run: runaway,
    },
    Command {
        names: &["!gle"],
        usage: "!gle",
        help: "The current thread's last Win32 error and NTSTATUS.",
        family: None,
        arguments: &[],
        run: |s, _| gle(s),
    },
    Command {
        names: &[".effmach"],
        usage: ".effmach [x86 | amd64 | .]",
        help: "The effective machine: x86 is the 32-bit view of a WOW64 process, . the dump's own.",
        family: None,
        arguments: &["x86", "amd64", "."],
        run: effmach,
    },
];

/// `~` lines: `.  0  Id: 1b28.2234 Suspend: 0 Teb: 000000c0`8a5b3000 Unfrozen "name"`.
pub fn list(s: &Session, only: Option<usize>) -> String {
    let t = s.target();
    let pid = t.facts().process_id.unwrap_or(0);
    let event = t.exception().map(|e| e.thread_id);
    let mut o = String::new();
    for (i, th) in t.threads().iter().enumerate() {
        if only.is_some_and(|w| w != i) {
            continue;
        }
        let mark = if i == s.current_thread() {
            '.'
        } else if Some(th.id) == event {
            '#'
        } else {
            ' '
        };
        let teb = s.teb_of(i).unwrap_or(th.teb);
        let name = th
            .name
            .as_ref()
            .map(|n| format!(" \"{n}\""))
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "{mark}{i:3}  Id: {pid:x}.{:x} Suspend: {} Teb: {} Unfrozen{name}",
            th.id,
            th.suspend_count,
            s.addr(teb)
        );
    }
    o
}

fn flag_text(efl: u64) -> String {
    let f = |bit: u64, on: &'static str, off: &'static str| if efl & bit != 0 { on } else { off };
    format!(
        "{} {} {} {} {} {} {} {}",
        f(0x800, "ov", "nv"),
        f(0x400, "dn", "up"),
        f(0x200, "ei", "di"),
        f(0x80, "ng", "pl"),
        f(0x40, "zr", "nz"),
        f(0x10, "ac", "na"),
        f(0x4, "pe", "po"),
        f(0x1, "cy", "nc")
    )
}

/// `cs=0033  ss=002b ... efl=00010246`, the same on x86 and x64.
fn segment_line(g: &dyn Fn(&str) -> u64, efl: u64) -> String {
    format!(
        "cs={:04x}  ss={:04x}  ds={:04x}  es={:04x}  fs={:04x}  gs={:04x}             efl={efl:08x}\n",
        g("cs"),
        g("ss"),
        g("ds"),
        g("es"),
        g("fs"),
        g("gs")
    )
}

/// The full register display `r` prints, with the instruction location line.
pub fn format_registers(s: &Session, c: &Context) -> String {
    let g = |n: &str| c.get(n).unwrap_or(0);
    let mut o = String::new();
    match c {
        Context::Amd64(..) => {
            let rows: [&[&str]; 5] = [
                &["rax", "rbx", "rcx"],
                &["rdx", "rsi", "rdi"],
                &["rip", "rsp", "rbp"],
                &["r8", "r9", "r10"],
                &["r11", "r12", "r13"],
            ];
            for row in rows {
                let line: Vec<String> = row
                    .iter()
                    .map(|n| format!("{n:>3}={:016x}", g(n)))
                    .collect();
                let _ = writeln!(o, "{}", line.join(" "));
            }
            let _ = writeln!(o, "r14={:016x} r15={:016x}", g("r14"), g("r15"));
            let efl = g("efl");
            let _ = writeln!(o, "iopl={}         {}", (efl >> 12) & 3, flag_text(efl));
            o.push_str(&segment_line(&g, efl));
            if let Some(x) = c.xstate() {
                let _ = writeln!(
                    o,
                    "xstate mask={:016x}{}",
                    x.mask,
                    x.cet_ssp
                        .map(|p| format!(" ssp={p:016x}"))
                        .unwrap_or_default()
                );
            }
        }
        Context::X86(_) => {
            let _ = writeln!(
                o,
                "eax={:08x} ebx={:08x} ecx={:08x} edx={:08x} esi={:08x} edi={:08x}",
                g("eax"),
                g("ebx"),
                g("ecx"),
                g("edx"),
                g("esi"),
                g("edi")
            );
            let efl = g("efl");
            let _ = writeln!(
                o,
                "eip={:08x} esp={:08x} ebp={:08x} iopl={}         {}",
                g("eip"),
                g("esp"),
                g("ebp"),
                (efl >> 12) & 3,
                flag_text(efl)
            );
            o.push_str(&segment_line(&g, efl));
        }
        Context::Arm64(_) => {
            for chunk in c.gpr_names().chunks(4) {
                let line: Vec<String> = chunk
                    .iter()
                    .map(|n| format!("{n:>4}={:016x}", g(n)))
                    .collect();
                let _ = writeln!(o, "{}", line.join(" "));
            }
        }
    }
    let ip = c.ip();
    let loc = s
        .describe_address(ip)
        .unwrap_or_else(|| "<Unloaded_or_unknown>".into());
    let code = s.target().memory().read_bytes(ip, 8);
    let bytes: String = if code.is_empty() {
        "??".into()
    } else {
        code.iter().map(|b| format!("{b:02x}")).collect()
    };
    let _ = writeln!(
        o,
        "{loc}:\n{} {bytes}",
        format::addr(ip, c.arch().pointer_size())
    );
    o
}

/// What commands that need registers say when the thread has no context in the dump.
pub(crate) fn no_context() -> CommandError {
    CommandError::Unavailable("Unable to get thread context".into())
}

fn registers(s: &mut Session, inv: &Invocation) -> Result<String, CommandError> {
    let c = s.context().ok_or_else(no_context)?;
    let rest = inv.args;
    if rest.is_empty() {
        return Ok(match s.register_mask {
            Some(mask) => crate::cmd_registers::masked(s, &c, mask),
            None => format_registers(s, &c),
        });
    }
    if rest.contains('=') {
        return Err(CommandError::Unavailable(
            "Registers of a dump cannot be changed".into(),
        ));
    }
    let mut o = String::new();
    for name in rest
        .split(|ch: char| ch == ',' || ch.is_whitespace())
        .filter(|n| !n.is_empty())
    {
        let n = name.trim_start_matches('@');
        let v = c
            .get(n)
            .ok_or_else(|| CommandError::BadRegister(name.to_string()))?;
        let width = register_digits(n, matches!(c, Context::X86(_)));

        let _ = writeln!(o, "{n}={v:0width$x}");
    }
    Ok(o)
}

fn exr_text(s: &Session, r: &ExceptionRecord) -> String {
    let ptr = s.ptr();
    let mut o = String::new();
    let loc = s
        .describe_address(r.address)
        .map(|l| format!(" ({l})"))
        .unwrap_or_default();
    let _ = writeln!(
        o,
        "ExceptionAddress: {}{loc}",
        format::plain(r.address, ptr)
    );
    let _ = writeln!(
        o,
        "   ExceptionCode: {:08x} ({})",
        r.code,
        event_text(r.code)
    );
    let _ = writeln!(o, "  ExceptionFlags: {:08x}", r.flags);
    let _ = writeln!(o, "NumberParameters: {}", r.parameters.len());
    for (i, p) in r.parameters.iter().enumerate() {
        let _ = writeln!(o, "   Parameter[{i}]: {}", format::plain(*p, ptr));
    }
    match r.code {
        0xc0000005 | 0xc0000006 if r.parameters.len() >= 2 => {
            let verb = match r.parameters[0] {
                0 => "read from",
                1 => "write to",
                8 => "execute",
                _ => "access",
            };
            let _ = writeln!(
                o,
                "Attempt to {verb} address {}",
                format::plain(r.parameters[1], ptr)
            );
        }
        0xc0000409 if !r.parameters.is_empty() => {
            let _ = writeln!(
                o,
                "Subcode: {:#x} {}",
                r.parameters[0],
                fast_fail_name(r.parameters[0])
            );
        }
        0xe06d7363 if r.parameters.len() >= 3 => {
            let _ = writeln!(
                o,
                "C++ EH exception: magic {:#x}, object {}, ThrowInfo {}",
                r.parameters[0],
                format::plain(r.parameters[1], ptr),
                format::plain(r.parameters[2], ptr)
            );
        }
        _ => {}
    }
    o
}

pub fn fast_fail_name(code: u64) -> &'static str {
    match code {
        0 => "FAST_FAIL_LEGACY_GS_VIOLATION",
        1 => "FAST_FAIL_VTGUARD_CHECK_FAILURE",
        2 => "FAST_FAIL_STACK_COOKIE_CHECK_FAILURE",
        3 => "FAST_FAIL_CORRUPT_LIST_ENTRY",
        4 => "FAST_FAIL_INCORRECT_STACK",
        5 => "FAST_FAIL_INVALID_ARG",
        6 => "FAST_FAIL_GS_COOKIE_INIT",
        7 => "FAST_FAIL_FATAL_APP_EXIT",
        8 => "FAST_FAIL_RANGE_CHECK_FAILURE",
        9 => "FAST_FAIL_UNSAFE_REGISTRY_ACCESS",
        10 => "FAST_FAIL_GUARD_ICALL_CHECK_FAILURE",
        11 => "FAST_FAIL_GUARD_WRITE_CHECK_FAILURE",
        12 => "FAST_FAIL_INVALID_FIBER_SWITCH",
        13 => "FAST_FAIL_INVALID_SET_OF_CONTEXT",
        14 => "FAST_FAIL_INVALID_REFERENCE_COUNT",
        18 => "FAST_FAIL_INVALID_JUMP_BUFFER",
        19 => "FAST_FAIL_MRDATA_MODIFIED",
        20 => "FAST_FAIL_CERTIFICATION_FAILURE",
        21 => "FAST_FAIL_INVALID_EXCEPTION_CHAIN",
        22 => "FAST_FAIL_CRYPTO_LIBRARY",
        23 => "FAST_FAIL_INVALID_CALL_IN_DLL_CALLOUT",
        24 => "FAST_FAIL_INVALID_IMAGE_BASE",
        25 => "FAST_FAIL_DLOAD_PROTECTION_FAILURE",
        26 => "FAST_FAIL_UNSAFE_EXTENSION_CALL",
        37 => "FAST_FAIL_GUARD_SS_FAILURE",
        38 => "FAST_FAIL_LOADER_CONTINUITY_FAILURE",
        49 => "FAST_FAIL_HEAP_METADATA_CORRUPTION",
        57 => "FAST_FAIL_INVALID_BUFFER_ACCESS",
        _ => "",
    }
}

/// Read an EXCEPTION_RECORD of the current view's bitness from memory.
pub fn read_exception_record(s: &Session, a: u64) -> Option<ExceptionRecord> {
    let mem = s.target().memory();
    let l = s.layout();
    let ptr = l.ptr;
    let code = mem.read_u32(a)?;
    let flags = mem.read_u32(a.wrapping_add(4))?;
    let nested = mem.read_ptr(a.wrapping_add(l.exr_nested_record), ptr)?;
    let address = mem.read_ptr(a.wrapping_add(l.exr_address), ptr)?;
    let n = mem
        .read_u32(a.wrapping_add(l.exr_number_parameters))?
        .min(15);
    let params_at = a.wrapping_add(l.exr_information);
    let parameters = (0..n as u64)
        .map_while(|i| mem.read_ptr(params_at.wrapping_add(i * ptr), ptr))
        .collect();
    Some(ExceptionRecord {
        code,
        flags,
        nested_record: nested,
        address,
        parameters,
    })
}

fn exr(s: &mut Session, inv: &Invocation) -> Result<String, CommandError> {
    let rest = inv.args;
    if rest == "-1" {
        let e = s.target().exception().ok_or_else(|| {
            CommandError::Unavailable(
                "No exception record available (the dump has no exception stream)".into(),
            )
        })?;
        return Ok(exr_text(s, &e.record.clone()));
    }
    let a = s.eval(rest)?;
    let r = read_exception_record(s, a).ok_or_else(|| {
        CommandError::Unavailable(format!("Cannot read Exception record @ {}", s.addr(a)))
    })?;
    Ok(exr_text(s, &r))
}

fn ecxr(s: &mut Session) -> Result<String, CommandError> {
    let no_exception_context =
        || CommandError::Unavailable("Unable to get exception context, HRESULT 0x8000FFFF".into());
    let t = s.target();
    let e = t.exception().ok_or_else(no_exception_context)?;
    let idx = t.thread_index_by_id(e.thread_id);
    let mut c = t.exception_context().ok_or_else(no_exception_context)?;
    // In the WOW64 view the exception context is the 64-bit one; the 32-bit state of the
    // faulting thread is what a 32-bit debugger would show.
    if s.is_wow64() && s.effective_machine() == Arch::X86 && c.arch() != Arch::X86 {
        if let Some(x86) = c
            .wow64_as_x86()
            .or_else(|| idx.and_then(|i| s.thread_context(i)))
        {
            c = x86;
        }
    }
    if let Some(i) = idx {
        s.current = i;
        s.implicit_thread = None;
    }
    let text = format_registers(s, &c);
    s.scope = Some((".ecxr".into(), c));
    Ok(text)
}

fn cxr(s: &mut Session, inv: &Invocation) -> Result<String, CommandError> {
    let rest = inv.args;
    if rest.is_empty() {
        s.scope = None;
        return Ok(String::new());
    }
    let a = s.eval(rest)?;
    let arch = s.effective_machine();
    let size = if arch == Arch::X86 {
        CONTEXT_X86_SIZE
    } else {
        CONTEXT_AMD64_SIZE
    };
    let bytes = s.target().memory().read_bytes(a, size);
    if bytes.len() < size {
        return Err(CommandError::Unavailable(format!(
            "Unable to read context, Win32 error 0n30 (memory at {} is not in the dump)",
            s.addr(a)
        )));
    }
    let c = Context::decode(arch, &bytes, &[])
        .ok_or_else(|| CommandError::Unavailable("Unable to read context".into()))?;
    let text = format_registers(s, &c);
    s.scope = Some((format!(".cxr {rest}"), c));
    Ok(text)
}

/// `.thread [address]`: WinDbg's implicit thread. In a user-mode dump a thread's address is its
/// TEB: that thread's registers become the context (`r`, `k`, `dv`, `$teb` read it), as its
/// stack the one `k` walks, until `.thread` with no address or a thread switch; the current
/// thread (`~`, the prompt) stays what it was. Without an address, back to the current thread.
fn implicit_thread(s: &mut Session, inv: &Invocation) -> Result<String, CommandError> {
    let a = if inv.args.is_empty() {
        0
    } else {
        s.eval(inv.args)?
    };
    if a == 0 {
        s.implicit_thread = None;
        s.scope = None;
        s.frame_index = 0;
        let teb = s.teb_of(s.current_thread()).unwrap_or(0);
        return Ok(format!("Implicit thread is now {}\n", s.addr(teb)));
    }
    let index = (0..s.target().threads().len())
        .find(|&i| s.teb_of(i) == Some(a))
        .ok_or_else(|| {
            CommandError::NotFound(format!(
                "{} is not the TEB of any thread of the dump (~ lists them)",
                s.addr(a)
            ))
        })?;
    s.thread_context(index).ok_or_else(no_context)?;
    s.implicit_thread = Some(index);
    s.scope = None;
    s.frame_index = 0;
    Ok(format!("Implicit thread is now {}\n", s.addr(a)))
}

fn no_teb_address() -> CommandError {
    CommandError::Unavailable("Unable to get TEB address".into())
}

fn teb(s: &mut Session, inv: &Invocation) -> Result<String, CommandError> {
    let a = if inv.args.is_empty() {
        s.teb_of(s.current_thread()).ok_or_else(no_teb_address)?
    } else {
        s.eval(inv.args)?
    };
    let l = s.layout();
    let t = teb::read_teb(s.target().memory(), a, &l).ok_or_else(|| {
        CommandError::Unavailable(format!(
            "TEB at {}\nerror InitTypeRead( TEB ): memory not in the dump",
            s.addr(a)
        ))
    })?;
    let p = |v: u64| format::plain(v, l.ptr);
    let mut o = String::new();
    let title = if s.is_wow64() && l.ptr == 4 {
        "Wow64 TEB32"
    } else {
        "TEB"
    };
    let _ = writeln!(o, "{title} at {}", s.addr(a));
    let _ = writeln!(o, "    ExceptionList:        {}", p(t.exception_list));
    let _ = writeln!(o, "    StackBase:            {}", p(t.stack_base));
    let _ = writeln!(o, "    StackLimit:           {}", p(t.stack_limit));
    if let Some(d) = t.deallocation_stack {
        let _ = writeln!(o, "    DeallocationStack:    {}", p(d));
    }
    let _ = writeln!(o, "    SubSystemTib:         {}", p(t.sub_system_tib));
    let _ = writeln!(o, "    FiberData:            {}", p(t.fiber_data));
    let _ = writeln!(
        o,
        "    ArbitraryUserPointer: {}",
        p(t.arbitrary_user_pointer)
    );
    let _ = writeln!(o, "    Self:                 {}", p(t.self_ptr));
    let _ = writeln!(o, "    EnvironmentPointer:   {}", p(t.environment_pointer));
    let _ = writeln!(
        o,
        "    ClientId:             {} . {}",
        p(t.process_id),
        p(t.thread_id)
    );
    let _ = writeln!(o, "    RpcHandle:            {}", p(t.rpc_handle));
    let _ = writeln!(o, "    Tls Storage:          {}", p(t.tls_storage));
    let _ = writeln!(o, "    PEB Address:          {}", p(t.peb));
    let _ = writeln!(o, "    LastErrorValue:       {}", t.last_error);
    let _ = writeln!(
        o,
        "    LastStatusValue:      {}",
        t.last_status
            .map(|v| format!("{v:x}"))
            .unwrap_or_else(|| "????????".into())
    );
    let _ = writeln!(o, "    Count Owned Locks:    {}", t.owned_locks);
    let _ = writeln!(
        o,
        "    HardErrorMode:        {}",
        t.hard_error_mode
            .map(|v| v.to_string())
            .unwrap_or_else(|| "????????".into())
    );
    Ok(o)
}

fn gle(s: &mut Session) -> Result<String, CommandError> {
    let a = s.teb_of(s.current_thread()).ok_or_else(no_teb_address)?;
    let t = teb::read_teb(s.target().memory(), a, &s.layout()).ok_or_else(|| {
        CommandError::Unavailable("Unable to read the TEB: memory not in the dump".into())
    })?;
    let text = |code: u32| {
        errors::win32(code)
            .map(|(_, t)| t.to_string())
            .unwrap_or_else(|| "<Unable to get error code text>".into())
    };
    let mut o = format!(
        "LastErrorValue: (Win32) {:#x} ({}) - {}\n",
        t.last_error,
        t.last_error,
        text(t.last_error)
    );
    if let Some(st) = t.last_status {
        let nt = errors::ntstatus(st)
            .map(|(_, t)| t.to_string())
            .unwrap_or_else(|| "<Unable to get error code text>".into());
        let _ = writeln!(o, "LastStatusValue: (NTSTATUS) {st:#x} - {nt}");
    }
    Ok(o)
}

fn runaway(s: &mut Session, inv: &Invocation) -> Result<String, CommandError> {
    let t = s.target();
    let flags = if inv.args.is_empty() {
        1
    } else {
        s.eval(inv.args)?
    };
    let threads: Vec<(usize, u32, &dumpdiag_target::ThreadTimes)> = t
        .threads()
        .iter()
        .enumerate()
        .filter_map(|(i, th)| th.info.as_ref().map(|inf| (i, th.id, inf)))
        .collect();
    if threads.is_empty() {
        return Err(CommandError::Unavailable(
            "ERROR: !runaway: extension exception 0x80004002.\n    \"Unable to get thread times - \
             the dump has no ThreadInfoList stream\""
                .into(),
        ));
    }
    let mut o = String::new();
    let dump_ft = (t.facts().dump_time as u64) * 10_000_000 + 116_444_736_000_000_000;
    // Each flag bit selects one section and the time it sorts threads by.
    let time_of = |bit: u64, times: &dumpdiag_target::ThreadTimes| match bit {
        1 => times.user_time,
        2 => times.kernel_time,
        _ => dump_ft.saturating_sub(times.create_time),
    };
    let sections = [
        (1, "User Mode Time"),
        (2, "Kernel Mode Time"),
        (4, "Elapsed Time"),
    ];
    for (bit, title) in sections {
        if flags & bit == 0 {
            continue;
        }
        let _ = writeln!(o, " {title}\n  Thread       Time");
        let mut rows: Vec<(usize, u32, u64)> = threads
            .iter()
            .map(|(i, id, inf)| (*i, *id, time_of(bit, inf)))
            .collect();
        rows.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
        for (i, id, v) in rows {
            let _ = writeln!(o, "  {i:3}:{id:<8x} {}", format::duration_100ns(v));
        }
    }
    Ok(o)
}

fn effmach(s: &mut Session, inv: &Invocation) -> Result<String, CommandError> {
    let want = inv.args.to_ascii_lowercase();
    let native = s.target().facts().arch;
    let new = match want.as_str() {
        "" => s.effective,
        "." | "#" => native,
        "x86" | "i386" => {
            if native != Arch::X86 && !s.is_wow64() {
                return Err(CommandError::Unavailable(
                    "x86 view is only available for x86 dumps and WOW64 processes".into(),
                ));
            }
            Arch::X86
        }
        "amd64" | "x64" => {
            if native != Arch::Amd64 {
                return Err(CommandError::Unavailable(
                    "This dump has no x64 state".into(),
                ));
            }
            Arch::Amd64
        }
        other => return Err(CommandError::Usage(format!("Unknown machine '{other}'"))),
    };
    if new != s.effective {
        s.effective = new;
        s.scope = None;
    }
    let desc = match new {
        Arch::X86 => "x86 compatible (x86)",
        Arch::Amd64 => "x64 (AMD64)",
        Arch::Arm64 => "ARM 64-bit (AArch64) (ARM64)",
        Arch::Other(_) => "unknown",
    };
    Ok(format!("Effective machine: {desc}\n"))
}

#[derive(Clone, Copy)]
enum ThreadSel {
    All,
    One(usize),
}

/// `~`, `~N`, `~Ns`, `~N cmd`, `~* cmd`, `~*e cmd; cmd`, `~~[tid]s`, `~#`, `~.`.
fn thread_command(s: &mut Session, inv: &Invocation) -> Result<String, CommandError> {
    let cmd = inv.text;
    let prefix = thread_prefix(cmd).ok_or_else(|| inv.syntax_error())?;
    let tail = prefix.rest(cmd);
    let selector = match prefix.selector {
        "" if tail.is_empty() && !prefix.each => return Ok(list(s, None)),
        "" => return Err(inv.syntax_error()),
        "*" => ThreadSel::All,
        "." => ThreadSel::One(s.current),
        "#" => {
            let t = s.target();
            let event_thread = t
                .exception()
                .and_then(|e| t.thread_index_by_id(e.thread_id));
            ThreadSel::One(
                event_thread.ok_or_else(|| CommandError::Unavailable("No event thread".into()))?,
            )
        }
        sel if sel.starts_with("~[") => {
            let tid = s.eval(&sel[2..sel.len() - 1])?;
            let index = s.target().thread_index_by_id(tid as u32);
            ThreadSel::One(index.ok_or_else(|| CommandError::IllegalThread(cmd.to_string()))?)
        }
        digits => {
            let index = digits.parse::<usize>().ok();
            let index = index.filter(|&i| i < s.target().threads().len());
            ThreadSel::One(index.ok_or_else(|| CommandError::IllegalThread(cmd.to_string()))?)
        }
    };
    match (selector, tail, prefix.each) {
        (ThreadSel::One(i), "", false) => Ok(list(s, Some(i))),
        (ThreadSel::All, "", false) => Ok(list(s, None)),
        (ThreadSel::One(i), "s", false) => {
            s.current = i;
            s.scope = None;
            s.implicit_thread = None;
            s.frame_index = 0;
            let mut text = String::new();
            if let Some(c) = s.context() {
                text.push_str(&format_registers(s, &c));
            }
            Ok(text)
        }
        (sel, commands, each) => {
            // `~<threads>e` runs a command string; a plain prefix, the one command after it.
            let commands = if each {
                split_commands(commands)
            } else {
                vec![commands]
            };
            let indices: Vec<usize> = match sel {
                ThreadSel::All => (0..s.target().threads().len()).collect(),
                ThreadSel::One(i) => vec![i],
            };
            let saved = (s.current, s.scope.take(), s.implicit_thread.take());
            let mut out = String::new();
            for i in indices {
                if matches!(sel, ThreadSel::All) {
                    out.push('\n');
                    out.push_str(&list(s, Some(i)));
                }
                s.current = i;
                for command in &commands {
                    match s.dispatch(command) {
                        Ok(t) => out.push_str(&t),
                        Err(e) => {
                            let _ = writeln!(out, "{e}");
                        }
                    }
                }
            }
            s.current = saved.0;
            s.scope = saved.1;
            s.implicit_thread = saved.2;
            Ok(out)
        }
    }
}

/// Hex digits WinDbg prints for a register named alone (`r cs` → `cs=0033`, `r efl` →
/// `efl=00000246`, `r mxcsr` → `mxcsr=00001f80`): the register's own size, not the pointer's.
fn register_digits(name: &str, x86: bool) -> usize {
    const SEGMENTS: [&str; 6] = ["cs", "ds", "es", "fs", "gs", "ss"];
    const WORDS: [&str; 9] = ["ax", "bx", "cx", "dx", "si", "di", "bp", "sp", "ip"];
    const BYTES: [&str; 8] = ["al", "bl", "cl", "dl", "ah", "bh", "ch", "dh"];
    if SEGMENTS.contains(&name) || WORDS.contains(&name) || name.ends_with('w') {
        4
    } else if BYTES.contains(&name) || (name.starts_with('r') && name.ends_with('b')) {
        2
    } else if x86
        || name.starts_with('e')
        || name == "mxcsr"
        || (name.starts_with('r') && name.ends_with('d'))
    {
        8
    } else {
        16
    }
}
