//! Stack commands: `k` and its letters (b v p P n c f L), `k = bp sp ip`, `.frame`, `dv`,
//! `!uniqstack`, `!findstack`, and the stack-trace checks shown beside them.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::cmd_threads::no_context;
use crate::format;
use crate::registry::{Command, Invocation};
use crate::{CommandError, Session};
use dumpdiag_stack::{Frame, Stack, StackIssue};
use dumpdiag_symbols::locals;
use dumpdiag_target::Context;

pub(crate) const COMMANDS: &[Command] = &[
    Command {
        names: &["k", "kb", "kv", "kp", "kn"],
        usage: "k[b|v|p|P|n|c|f|L] [= bp sp ip] [count]",
        help: "Stack trace of the current thread: b args, v how each frame was found, p/P \
               parameters, n numbers, c call sites only, f frame sizes, L no source lines.",
        family: Some(is_k_command),
        arguments: &[],
        run: k,
    },
    Command {
        names: &[".frame"],
        usage: ".frame [/r] [n]",
        help: "Select frame n of the current stack for dv, dt and ?? (show the selected one); /r \
               with the registers the unwind recovered for it.",
        family: None,
        arguments: &["/r"],
        run: frame,
    },
    Command {
        names: &[".kframes"],
        usage: ".kframes [count]",
        help: "Show or set how many frames k shows when no count is given (256 at first).",
        family: None,
        arguments: &[],
        run: kframes,
    },
    Command {
        names: &["dv"],
        usage: "dv [/t] [/V]",
        help: "Parameters and locals of the selected frame (/t types, /V addresses).",
        family: None,
        arguments: &["/t", "/V"],
        run: dv,
    },
    Command {
        names: &["!uniqstack"],
        usage: "!uniqstack",
        help: "Every thread's stack, threads with the same stack grouped.",
        family: None,
        arguments: &[],
        run: |s, _| uniqstack(s),
    },
    Command {
        names: &["!findstack"],
        usage: "!findstack symbol",
        help: "The threads with a frame whose name contains symbol.",
        family: None,
        arguments: &[],
        run: findstack,
    },
];

/// Frames `k` shows without a count until `.kframes` says otherwise (WinDbg's default).
pub(crate) const DEFAULT_KFRAMES: usize = 256;

/// `.kframes [count]`: WinDbg's "Default stack trace depth is 0n256 frames".
fn kframes(s: &mut Session, inv: &Invocation) -> Result<String, CommandError> {
    if !inv.args.is_empty() {
        let n = s.eval(inv.args)?;
        if n == 0 {
            return Err(CommandError::Usage(
                "The stack trace depth must be at least one frame".into(),
            ));
        }
        s.kframes = usize::try_from(n).unwrap_or(usize::MAX);
    }
    Ok(format!(
        "Default stack trace depth is 0n{} frames\n",
        s.kframes
    ))
}

/// `k` options parsed from the letters after `k`.
#[derive(Default, Clone, Copy)]
pub struct KOptions {
    pub params: bool,
    pub params_multiline: bool,
    pub numbers: bool,
    pub args: bool,
    pub verbose: bool,
    pub call_site_only: bool,
    pub frame_sizes: bool,
    pub no_source: bool,
}

/// `k` followed only by its option letters (`kbn`, `kPL`); the letters are case-sensitive.
pub fn is_k_command(verb: &str) -> bool {
    let Some(rest) = verb.strip_prefix('k') else {
        return false;
    };
    rest.chars().all(|c| "bvpPncfL".contains(c))
}

/// Walk the stack of a thread (current view, or a given context).
pub fn stack_of(s: &Session, index: usize, ctx: &Context) -> Stack {
    dumpdiag_stack::walk_thread(&s.view(), s.symbols(), index, ctx)
}

/// The Incorrect / Truncated Stack Trace checks for one walked stack.
pub fn stack_checks(s: &Session, index: usize, stack: &Stack) -> Vec<StackIssue> {
    dumpdiag_stack::check(&s.view(), s.symbols(), index, stack)
}

fn source_suffix(src: &Option<(String, u32)>) -> String {
    src.as_ref()
        .map(|(f, l)| format!(" [{f} @ {l}]"))
        .unwrap_or_default()
}

/// The `k` text of a stack, showing at most `max` frames (the checks see the whole stack).
pub fn format_stack(s: &Session, index: usize, stack: &Stack, o: KOptions, max: usize) -> String {
    let t = s.target();
    let ptr = s.ptr();
    let x64 = ptr == 8;
    let mut out = String::new();
    let num = if o.numbers { " # " } else { "" };
    if o.call_site_only {
        let _ = writeln!(out, "{}Call Site", if o.numbers { " # " } else { "" });
    } else if x64 {
        let mem_col = if o.frame_sizes { "  Memory  " } else { "" };
        let args = if o.args || o.verbose {
            " : Args to Child                                                           :"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "{num}{mem_col}Child-SP          RetAddr              {args} Call Site"
        );
    } else {
        let mem_col = if o.frame_sizes { "  Memory  " } else { "" };
        let args = if o.args || o.verbose {
            "Args to Child              "
        } else {
            ""
        };
        let _ = writeln!(out, "{num}{mem_col}ChildEBP RetAddr  {args}");
    }
    let mut n = 0usize;
    for (i, f) in stack.frames.iter().enumerate().take(max) {
        // A caller frame's ip is a return address: its call (and source line) is just before.
        let sym = s
            .symbols()
            .lookup(t, if i > 0 { f.ip.saturating_sub(1) } else { f.ip })
            .map(|mut x| {
                x.displacement = f.ip.saturating_sub(x.function_start);
                x
            });
        // Inline frames first (innermost), each on its own line.
        if let Some(sym) = &sym {
            for (name, _) in &sym.inlined {
                let m = &t.modules()[sym.module_index];
                let label = format!("{}!{} [inline]", m.short_name(), name);
                let nn = if o.numbers {
                    format!("{n:02x} ")
                } else {
                    String::new()
                };
                if o.call_site_only {
                    let _ = writeln!(out, "{nn}{label}");
                } else {
                    let dash = if x64 {
                        "(Inline Function) --------`--------"
                    } else {
                        "(Inline) --------"
                    };
                    let _ = writeln!(out, "{nn}{dash}     {label}");
                }
                n += 1;
            }
        }
        let params = if (o.params || o.params_multiline) && !o.call_site_only {
            match frame_variables(s, stack, i, None) {
                Some(vars) => {
                    let ps: Vec<String> = vars
                        .iter()
                        .filter(|v| v.is_param && v.name != "this")
                        .map(|v| format!("{} {} = {}", v.type_name, v.name, v.value))
                        .collect();
                    if o.params_multiline && !ps.is_empty() {
                        format!("(\n\t\t\t{})", ps.join(", \n\t\t\t"))
                    } else if ps.is_empty() {
                        "(void)".to_string()
                    } else {
                        format!("({})", ps.join(", "))
                    }
                }
                None => "(<no parameter info>)".to_string(),
            }
        } else {
            String::new()
        };
        let site = match &sym {
            Some(sym) => {
                let m = &t.modules()[sym.module_index];
                let base = if sym.displacement == 0 || o.call_site_only {
                    format!("{}!{}{params}", m.short_name(), sym.function)
                } else {
                    format!(
                        "{}!{}{params}+{:#x}",
                        m.short_name(),
                        sym.function,
                        sym.displacement
                    )
                };
                if o.no_source || o.call_site_only {
                    base
                } else {
                    format!("{base}{}", source_suffix(&sym.source))
                }
            }
            None => s
                .describe_address(f.ip)
                .unwrap_or_else(|| format!("{:#x}", f.ip)),
        };
        let nn = if o.numbers {
            format!("{n:02x} ")
        } else {
            String::new()
        };
        n += 1;
        if o.call_site_only {
            let _ = writeln!(out, "{nn}{site}");
            continue;
        }
        let mem_col = if o.frame_sizes {
            match i.checked_sub(1).map(|p| stack.frames[p].sp) {
                Some(prev) => format!("{:>8x}  ", f.sp.saturating_sub(prev)),
                None => "          ".into(),
            }
        } else {
            String::new()
        };
        let trust = if o.verbose {
            format!(" (found by {})", f.trust.label())
        } else {
            String::new()
        };
        if x64 {
            let args = if o.args || o.verbose {
                format!(
                    " : {} {} {} {} :",
                    format::addr(f.args[0], 8),
                    format::addr(f.args[1], 8),
                    format::addr(f.args[2], 8),
                    format::addr(f.args[3], 8)
                )
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "{nn}{mem_col}{} {}{args} {site}{trust}",
                format::addr(f.sp, 8),
                format::addr(f.return_address, 8)
            );
        } else {
            let args = if o.args || o.verbose {
                format!("{:08x} {:08x} {:08x} ", f.args[0], f.args[1], f.args[2])
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "{nn}{mem_col}{:08x} {:08x} {args}{site}{trust}",
                child_ebp(stack, i),
                f.return_address
            );
        }
    }
    if x64 && (o.args || o.verbose) {
        let _ = writeln!(out, "(x64: \"Args to Child\" are the callee's home-area slots, not necessarily the parameters - see False Function Parameters)");
    }
    // The checks see the whole stack; a warning about a frame `max` left out is not shown.
    for w in stack_checks(s, index, stack) {
        if w.frame().is_some_and(|f| f >= max) {
            continue;
        }
        let _ = writeln!(out, "WARNING: {w}");
    }
    out
}

/// WinDbg's x86 ChildEBP of frame `i`: the frame's base, four bytes below the slot its return
/// address is in (so the return address is at ChildEBP+4 and the arguments from ChildEBP+8).
/// It is EBP for a function with a standard frame and the virtual frame base of a frameless
/// (FPO) one. The walk has the slot for every frame with a caller: the caller's stack pointer
/// less four. The outermost frame's is its EBP.
pub fn child_ebp(stack: &Stack, i: usize) -> u64 {
    match stack.frames.get(i + 1) {
        Some(caller) => caller.sp.wrapping_sub(8) & 0xffff_ffff,
        None => stack.frames.get(i).map(|f| f.fp).unwrap_or(0),
    }
}

/// Register values of a frame for frame-relative variables (CodeView numbering).
fn frame_register(f: &Frame, ctx: Option<&Context>, ptr: u64) -> impl Fn(u16) -> Option<u64> {
    let r13 = ctx.and_then(|c| c.get("r13"));
    let ebx = ctx.and_then(|c| c.get("ebx"));
    let (fp, sp) = (f.fp, f.sp);
    move |r| match (r, ptr) {
        (locals::CV_X86_EBP, 4) => Some(fp),
        (locals::CV_X86_ESP, 4) => Some(sp),
        (locals::CV_X86_EBX, 4) => ebx,
        (locals::CV_AMD64_RBP, _) => Some(fp),
        (locals::CV_AMD64_RSP, _) => Some(sp),
        (locals::CV_AMD64_R13, _) => r13,
        _ => None,
    }
}

/// Variables of frame `i` of `stack` (the context only helps frame 0).
pub fn frame_variables(
    s: &Session,
    stack: &Stack,
    i: usize,
    ctx: Option<&Context>,
) -> Option<Vec<locals::Variable>> {
    let f = stack.frames.get(i)?;
    let probe = if i > 0 { f.ip.saturating_sub(1) } else { f.ip };
    let regs = frame_register(f, if i == 0 { ctx } else { None }, s.ptr());
    s.symbols().variables(s.target(), probe, &regs)
}

fn k(s: &mut Session, inv: &Invocation) -> Result<String, CommandError> {
    // The names (matched without case: `KB` is `kb`) and the family matcher admit only `k` and
    // its letters; only p and P mean different things.
    let letters = &inv.verb[1..];
    let has = |letter: char| letters.contains([letter, letter.to_ascii_uppercase()]);
    let o = KOptions {
        params: letters.contains('p'),
        params_multiline: letters.contains('P'),
        numbers: has('n'),
        args: has('b'),
        verbose: has('v'),
        call_site_only: has('c'),
        frame_sizes: has('f'),
        no_source: letters.contains('L'),
    };
    let rest = inv.args;
    let mut ctx = s.context().ok_or_else(no_context)?;
    let mut max = s.kframes;
    if let Some(manual) = rest.strip_prefix('=') {
        // k = bp sp ip: a hand-made frame.
        let vals: Vec<u64> = manual
            .split_whitespace()
            .map(|w| s.eval(w))
            .collect::<Result<_, _>>()?;
        if vals.len() != 3 {
            return Err(CommandError::Usage(
                "k = needs three values: frame pointer, stack pointer, instruction pointer".into(),
            ));
        }
        ctx = with_frame(&ctx, vals[0], vals[1], vals[2]);
    } else if !rest.is_empty() {
        max = s.eval(rest)? as usize;
    }
    let stack = stack_of(s, s.stack_thread(), &ctx);
    let text = format_stack(s, s.stack_thread(), &stack, o, max);
    s.last_stack = Some(stack);
    Ok(text)
}

/// A copy of `ctx` with frame pointer, stack pointer and instruction pointer replaced.
pub fn with_frame(ctx: &Context, bp: u64, sp: u64, ip: u64) -> Context {
    let mut c = ctx.clone();
    match &mut c {
        Context::Amd64(r, _) => {
            r.rbp = bp;
            r.rsp = sp;
            r.rip = ip;
        }
        Context::X86(r) => {
            r.ebp = bp as u32;
            r.esp = sp as u32;
            r.eip = ip as u32;
        }
        Context::Arm64(r) => {
            r.iregs[29] = bp;
            r.sp = sp;
            r.pc = ip;
        }
    }
    c
}

/// A frame as `kn` numbers it: inline frames count, innermost first, before the physical frame
/// they were inlined into.
pub(crate) struct NumberedFrame {
    /// The index of the physical frame in [`Stack::frames`].
    pub physical: usize,
    /// `module!function` of an inline frame; `None` for the physical frame itself.
    pub inline: Option<String>,
}

/// The frames of `stack` in `kn`'s numbering (what `.frame N` takes).
pub(crate) fn numbered_frames(s: &Session, stack: &Stack) -> Vec<NumberedFrame> {
    let t = s.target();
    let mut out = Vec::new();
    for (i, f) in stack.frames.iter().enumerate() {
        let probe = if i > 0 { f.ip.saturating_sub(1) } else { f.ip };
        if let Some(sym) = s.symbols().lookup(t, probe) {
            let m = &t.modules()[sym.module_index];
            for (name, _) in &sym.inlined {
                out.push(NumberedFrame {
                    physical: i,
                    inline: Some(format!("{}!{}", m.short_name(), name)),
                });
            }
        }
        out.push(NumberedFrame {
            physical: i,
            inline: None,
        });
    }
    out
}

/// `.frame [/r] [n]`: select frame n, numbered as `kn` numbers them (inline frames count), and
/// show it as `k` does (Child-SP on x64, ChildEBP on x86; a caller's call site and source line
/// from its return address - 1); `/r` adds the registers the unwind recovered for it (an inline
/// frame has those of the frame it was inlined into).
fn frame(s: &mut Session, inv: &Invocation) -> Result<String, CommandError> {
    let mut registers = false;
    let mut number = None;
    for w in inv.args.split_whitespace() {
        if w.eq_ignore_ascii_case("/r") {
            registers = true;
        } else if w.starts_with('/') || number.is_some() {
            return Err(inv.syntax_error());
        } else {
            number = Some(s.eval(w)?);
        }
    }
    let n = match number {
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        None => s.frame_index,
    };
    let ctx = s.context().ok_or_else(no_context)?;
    let stack = stack_of(s, s.stack_thread(), &ctx);
    let numbered = numbered_frames(s, &stack);
    let selected = numbered
        .get(n)
        .ok_or_else(|| CommandError::NotFound(format!("Frame {n:x} does not exist")))?;
    let physical = selected.physical;
    let f = &stack.frames[physical];
    s.frame_index = n;
    let mut o = match &selected.inline {
        Some(name) => {
            let dash = if s.ptr() == 8 {
                "(Inline Function) --------`--------"
            } else {
                "(Inline) --------"
            };
            format!("{n:02x} {dash}     {name} [inline]\n")
        }
        None => {
            let t = s.target();
            let probe = if physical > 0 {
                f.ip.saturating_sub(1)
            } else {
                f.ip
            };
            let sym = s.symbols().lookup(t, probe);
            let site = match &sym {
                Some(x) => {
                    let m = &t.modules()[x.module_index];
                    let off = f.ip.saturating_sub(x.function_start);
                    if off == 0 {
                        format!("{}!{}", m.short_name(), x.function)
                    } else {
                        format!("{}!{}+{off:#x}", m.short_name(), x.function)
                    }
                }
                None => s.describe_address(f.ip).unwrap_or_else(|| s.addr(f.ip)),
            };
            let src = source_suffix(&sym.and_then(|x| x.source));
            let child = if s.ptr() == 8 { f.sp } else { f.fp };
            format!(
                "{n:02x} {} {} {site}{src}\n",
                s.addr(child),
                s.addr(f.return_address)
            )
        }
    };
    if registers {
        // The notes name frames by the numbers k shows.
        let mut numbers = vec![0; stack.frames.len()];
        for (number, f) in numbered.iter().enumerate() {
            if f.inline.is_none() {
                numbers[f.physical] = number;
            }
        }
        o.push_str(&crate::cmd_registers::frame_registers(
            s, &ctx, &stack, physical, &numbers,
        ));
    }
    Ok(o)
}

/// Every thread's stack as a list of call sites (module!function), for grouping and search.
fn call_sites(s: &Session, index: usize) -> Option<Vec<String>> {
    let ctx = s.thread_context(index)?;
    let stack = stack_of(s, index, &ctx);
    Some(
        stack
            .frames
            .iter()
            .map(|f| {
                s.symbols()
                    .describe(s.target(), f.ip)
                    .unwrap_or_else(|| format!("{:#x}", f.ip))
            })
            .collect(),
    )
}

fn uniqstack(s: &mut Session) -> Result<String, CommandError> {
    let t = s.target();
    let mut groups: BTreeMap<Vec<String>, Vec<usize>> = BTreeMap::new();
    for i in 0..t.threads().len() {
        if let Some(sites) = call_sites(s, i) {
            groups.entry(sites).or_default().push(i);
        }
    }
    let mut rows: Vec<(Vec<String>, Vec<usize>)> = groups.into_iter().collect();
    rows.sort_by_key(|r| r.1[0]);
    let mut o = format!("Processing {} threads, please wait\n", t.threads().len());
    let pid = t.facts().process_id.unwrap_or(0);
    for (sites, threads) in &rows {
        let first = threads[0];
        let _ = writeln!(
            o,
            "\n.{first:3}  Id: {pid:x}.{:x}  {} thread(s) with this stack: {}",
            t.threads()[first].id,
            threads.len(),
            threads
                .iter()
                .map(|i| format!("~{i}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        for (n, site) in sites.iter().enumerate() {
            let _ = writeln!(o, "  {n:02x} {site}");
        }
    }
    let dups: usize = rows.iter().map(|r| r.1.len() - 1).sum();
    let _ = writeln!(
        o,
        "\nTotal threads: {}, Duplicate callstacks: {dups} (windbg thread #s follow):",
        t.threads().len()
    );
    Ok(o)
}

fn findstack(s: &mut Session, inv: &Invocation) -> Result<String, CommandError> {
    let needle = inv
        .args
        .split_whitespace()
        .next()
        .ok_or_else(|| CommandError::Usage("Usage: !findstack symbol [0|1|2]".into()))?
        .to_ascii_lowercase();
    let t = s.target();
    let mut o = String::new();
    for i in 0..t.threads().len() {
        let Some(sites) = call_sites(s, i) else {
            continue;
        };
        if let Some(n) = sites
            .iter()
            .position(|x| x.to_ascii_lowercase().contains(&needle))
        {
            let _ = writeln!(
                o,
                "Thread {:03x}, {} frame(s) match\n        * {n:02x} {}",
                i,
                sites
                    .iter()
                    .filter(|x| x.to_ascii_lowercase().contains(&needle))
                    .count(),
                sites[n]
            );
        }
    }
    if o.is_empty() {
        o = format!("No thread has '{needle}' on its stack\n");
    }
    Ok(o)
}

/// The current frame's variables and the index of the module whose PDB describes them.
pub(crate) fn current_locals(
    s: &Session,
) -> Result<(Option<usize>, Vec<locals::Variable>), CommandError> {
    let ctx = s.context().ok_or_else(no_context)?;
    let stack = stack_of(s, s.current_thread(), &ctx);
    let module = stack.frames.get(s.frame_index).and_then(|f| {
        let probe = if s.frame_index > 0 {
            f.ip.saturating_sub(1)
        } else {
            f.ip
        };
        s.target().modules().iter().position(|m| m.contains(probe))
    });
    let vars = frame_variables(s, &stack, s.frame_index, Some(&ctx)).ok_or_else(|| {
        CommandError::Unavailable(
            "Unable to enumerate locals: the frame's module has no private PDB symbols".into(),
        )
    })?;
    Ok((module, vars))
}

/// The current frame's variables (the `.frame` selection of the current thread).
fn current_variables(s: &Session) -> Result<Vec<locals::Variable>, CommandError> {
    let ctx = s.context().ok_or_else(no_context)?;
    let stack = stack_of(s, s.stack_thread(), &ctx);
    // `.frame` numbers frames as `kn` does; the variables are the physical frame's.
    let physical = numbered_frames(s, &stack)
        .get(s.frame_index)
        .map_or(s.frame_index, |f| f.physical);
    frame_variables(s, &stack, physical, Some(&ctx)).ok_or_else(|| {
        CommandError::Unavailable(
            "Unable to enumerate locals: the frame's module has no private PDB symbols".into(),
        )
    })
}

/// `dv [/t] [/V]`: parameters first, then locals.
fn dv(s: &mut Session, inv: &Invocation) -> Result<String, CommandError> {
    let types = inv.args.contains("/t");
    let addrs = inv.args.contains("/V") || inv.args.contains("/v");
    let vars = current_variables(s)?;
    let mut o = String::new();
    let mut sorted: Vec<&locals::Variable> = vars.iter().filter(|v| v.is_param).collect();
    sorted.extend(vars.iter().filter(|v| !v.is_param));
    for v in sorted {
        let addr = if addrs {
            v.address
                .map(|a| format!("{} ", s.addr(a)))
                .unwrap_or_default()
        } else {
            String::new()
        };
        let ty = if types {
            format!("{} ", v.type_name)
        } else {
            String::new()
        };
        let _ = writeln!(o, "{addr}{ty}{:>15} = {}", v.name, v.value);
    }
    Ok(o)
}
