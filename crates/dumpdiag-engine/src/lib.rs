//! The WinDbg command language over a dump. A [`Session`] holds what a debugger session holds
//! (current thread, effective machine, scope context, symbol path) and runs command lines,
//! returning WinDbg-shaped text. The CLI's REPL and `-c` mode, and tests, all drive it. Commands
//! are found in the [`registry`], which each command family (`cmd_*.rs`) feeds; a failing
//! command says why with a [`CommandError`].

mod cexpr;
mod cmd_analysis;
mod cmd_code;
mod cmd_dlls;
mod cmd_dump;
mod cmd_memory;
mod cmd_meta;
mod cmd_modules;
mod cmd_process;
mod cmd_registers;
pub mod cmd_stacks;
pub use cmd_target::dump_flag_names;
pub use cmd_threads::fast_fail_name;
mod cmd_symbols;
mod cmd_target;
mod cmd_threads;
mod cmd_types;
mod command_line;
mod error;
pub mod expr;
pub mod format;
pub mod registry;
pub mod typed;

pub use command_line::split_commands;
pub use error::CommandError;
pub use expr::ExprError;
pub use registry::{Command, Invocation};

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
    /// The thread `.thread` made implicit: its stack is the one `k` walks and `$teb` names,
    /// while the current thread (`~`, the prompt) stays. Cleared when the thread changes.
    implicit_thread: Option<usize>,
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
    /// The mask `r` uses (`rm`), when one was set.
    register_mask: Option<u64>,
    /// How many frames `k` shows without a count (`.kframes`).
    kframes: usize,
    /// Commands a higher crate added with [`Session::register_commands`], looked up after the
    /// built-ins.
    registered: Vec<&'static [Command]>,
    /// Set by `q`; [`Session::execute`] ends the line there and reports it in [`Outcome::quit`].
    quit_requested: bool,
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
            implicit_thread: None,
            sympath: String::new(),
            address_map: OnceCell::new(),
            next_display: None,
            next_disassembly: None,
            symbols,
            last_stack: None,
            frame_index: 0,
            register_mask: None,
            kframes: cmd_stacks::DEFAULT_KFRAMES,
            registered: Vec::new(),
            quit_requested: false,
        }
    }

    /// Add commands a higher crate implements (the analysis's `!analyze`, say), so that
    /// [`Session::execute`] runs them, `help` lists them and the REPL completes them. They are
    /// looked up after the built-ins.
    ///
    /// # Panics
    /// When one of their names is already taken (built-in or registered before): two commands
    /// answering to one name is a programming error, and the second would never run.
    pub fn register_commands(&mut self, commands: &'static [Command]) {
        if let Some(name) = registry::name_clash(commands, self.command_iter()) {
            panic!("command name {name} is already registered");
        }
        self.registered.push(commands);
    }

    /// Every command this session answers: the built-ins, then the registered ones.
    pub fn commands(&self) -> Vec<&'static Command> {
        self.command_iter().collect()
    }

    fn command_iter(&self) -> impl Iterator<Item = &'static Command> + Clone + '_ {
        registry::builtin_commands().chain(self.registered.iter().flat_map(|list| list.iter()))
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

    /// What the analysis reads of this session: the dump, its symbols and the address map built
    /// once — never the session's current thread, view or scope.
    pub fn analysis_input(&self) -> dumpdiag_analysis::Input<'_> {
        dumpdiag_analysis::Input {
            target: self.target.as_ref(),
            symbols: &self.symbols,
            address_map: Some(self.address_map()),
        }
    }

    pub fn current_thread(&self) -> usize {
        self.current
    }

    /// The thread whose stack the register context belongs to: the implicit thread `.thread`
    /// chose, or the current one.
    pub fn stack_thread(&self) -> usize {
        self.implicit_thread.unwrap_or(self.current)
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

    /// The register context commands use: the `.cxr`/`.ecxr` scope, or the implicit (`.thread`)
    /// or current thread's.
    pub fn context(&self) -> Option<Context> {
        if let Some((_, c)) = &self.scope {
            return Some(c.clone());
        }
        self.thread_context(self.stack_thread())
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

    pub fn eval(&self, e: &str) -> Result<u64, ExprError> {
        expr::eval(e, self)
    }

    /// Run one command line: its commands (see [`split_commands`]) in turn, each one's text or
    /// error (one line, as WinDbg prints it) appended to [`Outcome::text`]. `q` ends the line.
    pub fn execute(&mut self, line: &str) -> Outcome {
        let mut out = Outcome::default();
        for command in split_commands(line) {
            match self.dispatch(command) {
                Ok(text) => out.text.push_str(&text),
                Err(e) => {
                    let _ = writeln!(out.text, "{e}");
                }
            }
            if std::mem::take(&mut self.quit_requested) {
                out.quit = true;
                break;
            }
        }
        out
    }

    /// Run one command (no `;` splitting) and hand back its text or why it failed. (`q` has
    /// nothing to end here: it answers with no text.)
    pub fn run_command(&mut self, command: &str) -> Result<String, CommandError> {
        let result = self.dispatch(command);
        self.quit_requested = false;
        result
    }

    /// Find the command's handler in the registry and run it.
    pub(crate) fn dispatch(&mut self, command: &str) -> Result<String, CommandError> {
        let text = command.trim();
        if text.is_empty() {
            return Ok(String::new());
        }
        let (verb, args) = command_line::split_verb(text);
        let found = registry::find(verb, self.command_iter());
        let command = found.ok_or_else(|| registry::not_found(verb, text))?;
        (command.run)(self, &Invocation { text, verb, args })
    }
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
            "teb" | "thread" => self.teb_of(self.stack_thread()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use dumpdiag_target::{
        DumpFacts, ExceptionInfo, HandleRecord, MemoryReader, ModuleRecord, ProcessExtras,
        RegionInfo, StreamEntry, ThreadRecord, UnloadedModuleRecord,
    };

    /// A dump with threads and nothing else: no memory, modules, contexts or streams. Every
    /// command must answer it with text or a typed error, never by panicking.
    #[derive(Default)]
    struct ThreadsOnly {
        facts: DumpFacts,
        threads: Vec<ThreadRecord>,
        extras: ProcessExtras,
    }

    struct NoMemory;

    impl MemoryReader for NoMemory {
        fn read(&self, _: u64, _: &mut [u8]) -> usize {
            0
        }
    }

    impl Target for ThreadsOnly {
        fn facts(&self) -> &DumpFacts {
            &self.facts
        }
        fn threads(&self) -> &[ThreadRecord] {
            &self.threads
        }
        fn modules(&self) -> &[ModuleRecord] {
            &[]
        }
        fn unloaded_modules(&self) -> &[UnloadedModuleRecord] {
            &[]
        }
        fn regions(&self) -> &[RegionInfo] {
            &[]
        }
        fn captured_ranges(&self) -> &[(u64, u64)] {
            &[]
        }
        fn memory(&self) -> &dyn MemoryReader {
            &NoMemory
        }
        fn exception(&self) -> Option<&ExceptionInfo> {
            None
        }
        fn exception_context(&self) -> Option<Context> {
            None
        }
        fn thread_context(&self, _: usize) -> Option<Context> {
            None
        }
        fn handles(&self) -> Option<&[HandleRecord]> {
            None
        }
        fn extras(&self) -> &ProcessExtras {
            &self.extras
        }
        fn streams(&self) -> &[StreamEntry] {
            &[]
        }
        fn warnings(&self) -> &[String] {
            &[]
        }
        fn path(&self) -> &str {
            "threads-only.dmp"
        }
        fn file_size(&self) -> u64 {
            0
        }
    }

    fn session(threads: u32) -> Session {
        let threads = (0..threads)
            .map(|i| ThreadRecord {
                id: 0x100 + i,
                ..Default::default()
            })
            .collect();
        Session::new(Box::new(ThreadsOnly {
            threads,
            ..Default::default()
        }))
    }

    /// `!where`: which thread is current, so tests can see where a command ran.
    const WHERE: &[Command] = &[Command {
        names: &["!where"],
        usage: "!where [note]",
        help: "Which thread is current.",
        family: None,
        arguments: &[],
        run: |s, inv| Ok(format!("thread {} {}\n", s.current_thread(), inv.args)),
    }];

    #[test]
    fn unknown_commands_and_extensions_answer_like_windbg() {
        let mut s = session(1);
        assert_eq!(
            s.run_command("zz 1"),
            Err(CommandError::UnknownCommand("zz 1".into()))
        );
        assert_eq!(
            s.run_command(".foo"),
            Err(CommandError::UnknownCommand(".foo".into()))
        );
        assert_eq!(
            s.run_command("!nosuch -v"),
            Err(CommandError::UnknownExtension("nosuch".into()))
        );
        // Extension names are case-sensitive, regular and meta names are not.
        assert_eq!(
            s.run_command("!RUNAWAY"),
            Err(CommandError::UnknownExtension("RUNAWAY".into()))
        );
        assert!(s.run_command("VERTARGET").is_ok());
        let out = s.execute("zz; !nosuch");
        assert_eq!(
            out.text,
            "       ^ Syntax error in 'zz'\nNo export nosuch found\n"
        );
    }

    #[test]
    fn expression_errors_reach_the_caller_typed() {
        let mut s = session(1);
        assert_eq!(
            s.run_command("? nosuchsym"),
            Err(CommandError::Unresolved("nosuchsym".into()))
        );
        assert_eq!(
            s.run_command("? @$nosuch"),
            Err(CommandError::BadRegister("@$nosuch".into()))
        );
        assert_eq!(
            s.run_command("? poi(10)"),
            Err(CommandError::MemoryAccess {
                address: "00000000`00000010".into()
            })
        );
        assert_eq!(
            s.run_command("? 1+2").as_deref(),
            Ok("Evaluate expression: 3 = 00000000`00000003\n")
        );
        assert_eq!(
            s.execute("? nosuchsym").text,
            "Couldn't resolve error at 'nosuchsym'\n"
        );
    }

    #[test]
    fn what_the_dump_lacks_is_unavailable() {
        let mut s = session(1);
        for command in ["r", "k", ".exr -1", ".ecxr", "!handle", "!runaway"] {
            assert!(
                matches!(s.run_command(command), Err(CommandError::Unavailable(_))),
                "{command}: {:?}",
                s.run_command(command)
            );
        }
        assert_eq!(
            s.run_command("~5s"),
            Err(CommandError::IllegalThread("~5s".into()))
        );
        assert_eq!(
            s.run_command("~x"),
            Err(CommandError::Syntax {
                command: "~x".into()
            })
        );
    }

    #[test]
    fn every_builtin_name_dispatches_to_a_handler() {
        for name in registry::command_names() {
            // A fresh session each time: `.effmach`, `~Ns` or `.cxr` would change the next one's.
            let result = session(2).run_command(name);
            assert!(
                !matches!(
                    result,
                    Err(CommandError::UnknownCommand(_) | CommandError::UnknownExtension(_))
                ),
                "{name}: {result:?}"
            );
        }
    }

    #[test]
    fn registered_commands_run_and_are_listed() {
        let mut s = session(1);
        s.register_commands(WHERE);
        assert_eq!(s.execute("!where here").text, "thread 0 here\n");
        assert!(s.execute("help").text.contains("!where [note]"));
        assert!(s.commands().iter().any(|c| c.names == ["!where"]));
    }

    #[test]
    #[should_panic(expected = "command name !where is already registered")]
    fn a_name_registered_twice_is_refused() {
        let mut s = session(1);
        s.register_commands(WHERE);
        s.register_commands(WHERE);
    }

    #[test]
    fn a_thread_prefix_applies_to_one_command_and_its_e_form_to_the_rest_of_the_line() {
        let mut s = session(2);
        s.register_commands(WHERE);
        let text = s.execute("~* !where a; !where b").text;
        assert_eq!(text.matches("thread 0 a").count(), 1, "{text}");
        assert_eq!(text.matches("thread 1 a").count(), 1, "{text}");
        assert!(text.ends_with("thread 0 b\n"), "{text}");
        assert_eq!(text.matches(" b\n").count(), 1, "{text}");

        let text = s.execute("~*e !where a; !where b").text;
        for expected in ["thread 0 a", "thread 0 b", "thread 1 a", "thread 1 b"] {
            assert_eq!(text.matches(expected).count(), 1, "{expected}: {text}");
        }
        // The prefix leaves the current thread as it was.
        assert_eq!(s.current_thread(), 0);
        assert_eq!(s.execute("~1 !where").text, "thread 1 \n");
    }

    #[test]
    fn quoted_semicolons_are_text() {
        let mut s = session(1);
        assert_eq!(s.execute(".echo \"a; b\"").text, "a; b\n");
        assert_eq!(s.execute(".echo a; .echo b").text, "a\nb\n");
    }

    #[test]
    fn q_ends_the_line_but_not_the_next_one() {
        let mut s = session(1);
        let out = s.execute(".echo 1; q; .echo 2");
        assert_eq!((out.text.as_str(), out.quit), ("1\n", true));
        assert_eq!(s.run_command("qd").as_deref(), Ok(""));
        let out = s.execute(".echo 3");
        assert_eq!((out.text.as_str(), out.quit), ("3\n", false));
    }
}
