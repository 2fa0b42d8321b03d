//! The WinDbg command language over a dump. A [`Session`] holds what a debugger session holds
//! (current thread, effective machine, scope context, symbol path) and runs command lines,
//! returning WinDbg-shaped text. The CLI's REPL and `-c` mode, and tests, all drive it.

mod cmd_code;
mod cmd_memory;
mod cmd_modules;
mod cmd_process;
pub mod cmd_stacks;
pub use cmd_target::dump_flag_names;
pub use cmd_threads::fast_fail_name;
mod cmd_symbols;
mod cmd_target;
mod cmd_threads;
pub mod expr;
pub mod format;

use std::cell::OnceCell;
use std::fmt::Write;

use dumpdiag_os::address::AddressMap;
use dumpdiag_os::layout::Layout;
use dumpdiag_os::view::{ProcessView, View};
use dumpdiag_os::wow64;
use dumpdiag_stack::code::Disassembler;
use dumpdiag_stack::Stack;
use dumpdiag_symbols::Symbols;
use dumpdiag_target::{Arch, Context, MemoryExt, Target};

/// Commands the REPL completes.
pub const COMMANDS: &[&str] = &[
    "||",
    "|",
    "vertarget",
    "version",
    ".time",
    ".dumpdebug",
    ".lastevent",
    "~",
    "~*",
    "r",
    ".exr",
    ".ecxr",
    ".cxr",
    ".thread",
    "lm",
    "lmv",
    "lmu",
    "lmo",
    "lmf",
    "!teb",
    "!peb",
    "db",
    "dw",
    "dd",
    "dq",
    "dc",
    "da",
    "du",
    "dp",
    "dps",
    "dpp",
    "dpa",
    "dpu",
    "dds",
    "dqs",
    "s",
    "?",
    "!address",
    "!heap",
    "!handle",
    "!runaway",
    "!gle",
    "!error",
    ".effmach",
    ".sympath",
    ".sympath+",
    ".echo",
    "help",
    "q",
];

/// Result of running one command line.
#[derive(Debug, Default)]
pub struct Outcome {
    pub text: String,
    pub quit: bool,
}

pub struct Session {
    target: Box<dyn Target>,
    current: usize,
    /// Effective machine: the dump's own, or x86 in the WOW64 view.
    effective: Arch,
    wow64: bool,
    /// Set by `.cxr` / `.ecxr`; cleared when the thread changes.
    scope: Option<(String, Context)>,
    sympath: String,
    address_map: OnceCell<AddressMap>,
    /// Where the next argument-less `d*` command continues.
    next_display: Option<u64>,
    /// Where the next argument-less `u` continues.
    next_disassembly: Option<u64>,
    symbols: Symbols,
    /// The stack `k` printed last, and the frame `.frame` selected.
    last_stack: Option<Stack>,
    frame_index: usize,
}

impl Session {
    pub fn new(target: Box<dyn Target>) -> Session {
        let wow64 = wow64::is_wow64(target.as_ref());
        let current = target
            .exception()
            .and_then(|e| target.thread_index_by_id(e.thread_id))
            .unwrap_or(0);
        let effective = target.facts().arch;
        let symbols = Symbols::new(dumpdiag_symbols::SymbolPath::default(), target.as_ref());
        Session {
            target,
            current,
            effective,
            wow64,
            scope: None,
            sympath: String::new(),
            address_map: OnceCell::new(),
            next_display: None,
            next_disassembly: None,
            symbols,
            last_stack: None,
            frame_index: 0,
        }
    }

    pub fn target(&self) -> &dyn Target {
        self.target.as_ref()
    }

    pub fn set_symbol_path(&mut self, path: &str) {
        self.sympath = path.to_string();
        self.reload_symbols();
    }

    /// Forget loaded symbols; they load again, from the current path, on first use.
    pub fn reload_symbols(&mut self) {
        let path = cmd_symbols::parse_path(&self.sympath);
        self.symbols.reload(Some(path), self.target.as_ref());
    }

    pub fn symbols(&self) -> &Symbols {
        &self.symbols
    }

    pub fn current_thread(&self) -> usize {
        self.current
    }

    pub fn effective_machine(&self) -> Arch {
        self.effective
    }

    pub fn is_wow64(&self) -> bool {
        self.wow64
    }

    /// The prompt WinDbg would show: `0:000>` or `0:000:x86>` in the WOW64 view.
    pub fn prompt(&self) -> String {
        if self.wow64 && self.effective == Arch::X86 {
            format!("0:{:03}:x86> ", self.current)
        } else {
            format!("0:{:03}> ", self.current)
        }
    }

    /// Pointer size of the current view.
    pub fn ptr(&self) -> u64 {
        self.effective.pointer_size()
    }

    pub fn layout(&self) -> Layout {
        self.view().layout()
    }

    pub fn addr(&self, v: u64) -> String {
        format::addr(v, self.ptr())
    }

    /// The process in the current effective machine's view (`.effmach x86` on a WOW64 dump is
    /// its 32-bit view).
    pub fn view(&self) -> ProcessView<'_> {
        let view = if self.wow64 && self.effective == Arch::X86 {
            View::Wow64X86
        } else {
            View::Native
        };
        ProcessView::new(self.target.as_ref(), view)
    }

    /// TEB address of a thread in the current view.
    pub fn teb_of(&self, index: usize) -> Option<u64> {
        self.view().teb_of(index)
    }

    pub fn peb_address(&self) -> Option<u64> {
        self.view().peb_address()
    }

    /// A thread's own context in the current view (no `.cxr` scope).
    pub fn thread_context(&self, index: usize) -> Option<Context> {
        self.view().thread_context(index)
    }

    /// The register context commands use: the `.cxr`/`.ecxr` scope, or the current thread's.
    pub fn context(&self) -> Option<Context> {
        if let Some((_, c)) = &self.scope {
            return Some(c.clone());
        }
        self.thread_context(self.current)
    }

    pub fn address_map(&self) -> &AddressMap {
        self.address_map
            .get_or_init(|| AddressMap::build(self.target.as_ref()))
    }

    /// `module!symbol+0xoffset` (or `module+0xoffset`) for an address inside a module.
    pub fn describe_address(&self, a: u64) -> Option<String> {
        self.symbols.describe(self.target.as_ref(), a)
    }

    /// `count` instructions at `addr` as `u` prints them.
    pub fn disassemble(&self, addr: u64, count: usize) -> String {
        self.disassembler().disassemble(addr, count)
    }

    /// Code of the current view's bitness, decoded and rendered with the session's symbols.
    pub fn disassembler(&self) -> Disassembler<'_> {
        Disassembler {
            target: self.target.as_ref(),
            symbols: &self.symbols,
            ptr: self.ptr(),
        }
    }

    pub fn eval(&self, e: &str) -> Result<u64, String> {
        expr::eval(e, self)
    }

    /// Run one command line (several commands may be separated by `;`).
    pub fn execute(&mut self, line: &str) -> Outcome {
        let mut out = Outcome::default();
        for cmd in split_commands(line) {
            let cmd = cmd.trim();
            if cmd.is_empty() {
                continue;
            }
            if cmd == "q" || cmd == "qq" || cmd == "qd" {
                out.quit = true;
                break;
            }
            match self.run(cmd) {
                Ok(text) => out.text.push_str(&text),
                Err(e) => {
                    let _ = writeln!(out.text, "{e}");
                }
            }
        }
        out
    }

    fn run(&mut self, cmd: &str) -> Result<String, String> {
        let (verb, rest) = split_verb(cmd);
        if cmd_stacks::is_k_command(verb) {
            return cmd_stacks::k(self, verb, rest);
        }
        let lower = verb.to_ascii_lowercase();
        match lower.as_str() {
            "||" => Ok(cmd_target::dump_summary(self)),
            "|" => Ok(cmd_target::process_summary(self)),
            "vertarget" | "version" => Ok(cmd_target::vertarget(self)),
            ".time" => Ok(cmd_target::time(self)),
            ".dumpdebug" => Ok(cmd_target::dumpdebug(self)),
            ".lastevent" => Ok(cmd_target::lastevent(self)),
            ".effmach" => cmd_threads::effmach(self, rest),
            ".sympath" => Ok(self.sympath_cmd(rest, false)),
            ".sympath+" => Ok(self.sympath_cmd(rest, true)),
            ".symfix" => cmd_symbols::symfix(self, rest, false),
            ".symfix+" => cmd_symbols::symfix(self, rest, true),
            ".reload" => cmd_symbols::reload(self, rest),
            "ln" => cmd_symbols::ln(self, rest),
            "x" => cmd_symbols::x(self, rest),
            "!lmi" => cmd_symbols::lmi(self, rest),
            "!dh" => cmd_symbols::dh(self, rest),
            ".frame" => cmd_stacks::frame(self, rest),
            "dv" => cmd_stacks::dv(self, rest),
            "dt" => cmd_stacks::dt_local(self, rest.split_whitespace().last().unwrap_or("")),
            "!uniqstack" => cmd_stacks::uniqstack(self),
            "!findstack" => cmd_stacks::findstack(self, rest),
            "u" => cmd_code::u(self, rest),
            "ub" => cmd_code::ub(self, rest),
            "uf" => cmd_code::uf(self, rest),
            ".echo" => Ok(format!("{rest}\n")),
            "help" | ".help" => Ok(help()),
            "r" => cmd_threads::registers(self, rest),
            ".exr" => cmd_threads::exr(self, rest),
            ".ecxr" => cmd_threads::ecxr(self),
            ".cxr" => cmd_threads::cxr(self, rest),
            ".thread" => Ok(format!(
                "Implicit thread is now {}\n",
                self.addr(self.teb_of(self.current).unwrap_or(0))
            )),
            "!teb" => cmd_threads::teb(self, rest),
            "!runaway" => cmd_threads::runaway(self, rest),
            "!gle" => cmd_threads::gle(self),
            "!peb" => cmd_process::peb(self, rest),
            "!handle" => cmd_process::handle(self, rest),
            "!error" => cmd_process::error(self, rest),
            "!address" => cmd_memory::address(self, rest),
            "!heap" => cmd_memory::heap(self, rest),
            "?" => {
                let v = self.eval(rest)?;
                Ok(format!(
                    "Evaluate expression: {} = {}\n",
                    v as i64,
                    format::addr(v, 8)
                ))
            }
            "s" => cmd_memory::search(self, rest),
            v if v.starts_with('~') => self.thread_command(cmd),
            v if v.starts_with("lm") => cmd_modules::lm(self, &v[2..], rest),
            v if cmd_memory::is_display_command(v) => cmd_memory::display(self, v, rest),
            _ => Err(format!("       ^ Syntax error in '{cmd}'")),
        }
    }

    fn sympath_cmd(&mut self, rest: &str, append: bool) -> String {
        let rest = rest.trim();
        if !rest.is_empty() {
            let new = if append && !self.sympath.is_empty() {
                format!("{};{rest}", self.sympath)
            } else {
                rest.to_string()
            };
            self.set_symbol_path(&new);
        }
        format!(
            "Symbol search path is: {}\nExpanded Symbol search path is: {}\n",
            self.sympath,
            self.sympath.to_ascii_lowercase()
        )
    }

    /// `~`, `~N`, `~Ns`, `~N cmd`, `~* cmd`, `~~[tid]s`, `~#`, `~.`.
    fn thread_command(&mut self, cmd: &str) -> Result<String, String> {
        let body = cmd[1..].trim_start();
        if body.is_empty() {
            return Ok(cmd_threads::list(self, None));
        }
        let (selector, tail) = if let Some(r) = body.strip_prefix('*') {
            (ThreadSel::All, r)
        } else if let Some(r) = body.strip_prefix('.') {
            (ThreadSel::One(self.current), r)
        } else if let Some(r) = body.strip_prefix('#') {
            let idx = self
                .target
                .exception()
                .and_then(|e| self.target.thread_index_by_id(e.thread_id))
                .ok_or("No event thread")?;
            (ThreadSel::One(idx), r)
        } else if let Some(r) = body.strip_prefix("~[") {
            let end = r.find(']').ok_or("Missing ']'")?;
            let tid = self.eval(&r[..end])?;
            let idx = self
                .target
                .thread_index_by_id(tid as u32)
                .ok_or_else(|| format!("Illegal thread error in '{cmd}'"))?;
            (ThreadSel::One(idx), &r[end + 1..])
        } else {
            let digits: String = body.chars().take_while(|c| c.is_ascii_digit()).collect();
            if digits.is_empty() {
                return Err(format!("       ^ Syntax error in '{cmd}'"));
            }
            let idx: usize = digits.parse().map_err(|_| "Illegal thread error")?;
            if idx >= self.target.threads().len() {
                return Err(format!("       ^ Illegal thread error in '{cmd}'"));
            }
            (ThreadSel::One(idx), &body[digits.len()..])
        };
        let tail = tail.trim();
        match (selector, tail) {
            (ThreadSel::One(i), "") => Ok(cmd_threads::list(self, Some(i))),
            (ThreadSel::All, "") => Ok(cmd_threads::list(self, None)),
            (ThreadSel::One(i), "s") => {
                self.current = i;
                self.scope = None;
                let mut s = String::new();
                if let Some(c) = self.context() {
                    s.push_str(&cmd_threads::format_registers(self, &c));
                }
                Ok(s)
            }
            (sel, rest) => {
                let rest = rest
                    .strip_prefix('e')
                    .map(str::trim_start)
                    .filter(|_| rest.starts_with("e "))
                    .unwrap_or(rest);
                let indices: Vec<usize> = match sel {
                    ThreadSel::All => (0..self.target.threads().len()).collect(),
                    ThreadSel::One(i) => vec![i],
                };
                let saved = (self.current, self.scope.take());
                let mut out = String::new();
                for i in indices {
                    if matches!(sel, ThreadSel::All) {
                        out.push('\n');
                        out.push_str(&cmd_threads::list(self, Some(i)));
                    }
                    self.current = i;
                    match self.run(rest) {
                        Ok(t) => out.push_str(&t),
                        Err(e) => {
                            let _ = writeln!(out, "{e}");
                        }
                    }
                }
                self.current = saved.0;
                self.scope = saved.1;
                Ok(out)
            }
        }
    }
}

#[derive(Clone, Copy)]
enum ThreadSel {
    All,
    One(usize),
}

impl expr::Resolver for Session {
    fn register(&self, name: &str) -> Option<u64> {
        self.context()?.get(name)
    }
    fn pseudo(&self, name: &str) -> Option<u64> {
        let lower = name.to_ascii_lowercase();
        match lower.as_str() {
            "ip" => self.context().map(|c| c.ip()),
            "csp" => self.context().map(|c| c.sp()),
            "teb" | "thread" => self.teb_of(self.current),
            "peb" | "proc" => self.peb_address(),
            "tid" => self.target.threads().get(self.current).map(|t| t.id as u64),
            "tpid" => self.target.facts().process_id.map(u64::from),
            "ptrsize" => Some(self.ptr()),
            "pagesize" => Some(0x1000),
            "exentry" => self.target.modules().first().and_then(|m| {
                let h = dumpdiag_os::pe::read_headers(self.target.memory(), m.base)?;
                Some(m.base.wrapping_add(h.entry_point as u64))
            }),
            _ => None,
        }
    }
    fn symbol(&self, name: &str) -> Option<u64> {
        if name.contains('!') {
            return self.symbols.resolve(self.target.as_ref(), name);
        }
        let lower = name.to_ascii_lowercase();
        self.target
            .modules()
            .iter()
            .find(|m| m.short_name().to_ascii_lowercase() == lower)
            .map(|m| m.base)
    }
    fn read(&self, addr: u64, size: u64) -> Option<u64> {
        let mem = self.target.memory();
        match size {
            1 => mem.read_u8(addr).map(u64::from),
            2 => mem.read_u16(addr).map(u64::from),
            4 => mem.read_u32(addr).map(u64::from),
            _ => mem.read_u64(addr),
        }
    }
    fn pointer_size(&self) -> u64 {
        self.ptr()
    }
}

/// Split a command line at `;` outside quotes.
fn split_commands(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ';' if !quoted => {
                out.push(&line[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&line[start..]);
    out
}

/// The command word and its arguments. Handles verbs glued to arguments (`~0s`, `r@rax`,
/// `.exr-1`) the way WinDbg's parser does for the common cases.
fn split_verb(cmd: &str) -> (&str, &str) {
    if cmd.starts_with('~') || cmd.starts_with("||") {
        let end = if cmd.starts_with("||") { 2 } else { cmd.len() };
        return (&cmd[..end], cmd[end..].trim());
    }
    if let Some(rest) = cmd.strip_prefix('|') {
        return ("|", rest.trim());
    }
    if let Some(rest) = cmd.strip_prefix('?') {
        return ("?", rest.trim());
    }
    let end = cmd.find(|c: char| c.is_whitespace()).unwrap_or(cmd.len());
    (&cmd[..end], cmd[end..].trim())
}

fn help() -> String {
    let mut s = String::from("Commands (WinDbg syntax):\n");
    for chunk in COMMANDS.chunks(10) {
        let _ = writeln!(s, "  {}", chunk.join("  "));
    }
    s
}
