//! `dumpdiag`: open a Windows process dump and talk to it in WinDbg's command language, in a
//! REPL or with `-c "cmd; cmd"` like `cdb -z dump -c`.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use dumpdiag_engine::Session;

#[derive(Parser)]
#[command(
    name = "dumpdiag",
    version,
    about = "WinDbg-style analysis of Windows process dumps, on any OS."
)]
struct Cli {
    /// The dump file (.dmp): MDMP, or a legacy USERDUMP/USERDU64 full dump.
    dump: String,
    /// Commands to run, separated by ';'; exits afterwards (like cdb -c "...; q").
    #[arg(short = 'c', long = "commands")]
    commands: Option<String>,
    /// A file of commands to run, one per line; exits afterwards.
    #[arg(long = "script")]
    script: Option<String>,
    /// Symbol path (WinDbg syntax); defaults to _NT_SYMBOL_PATH.
    #[arg(short = 'y', long = "sympath")]
    sympath: Option<String>,
    /// Do not print the opening banner.
    #[arg(short = 'q', long = "quiet")]
    quiet: bool,
}

fn banner(session: &Session) -> String {
    let t = session.target();
    let mut s = format!("Loading Dump File [{}]\n{}\n", t.path(), t.facts().format);
    for w in t.warnings() {
        s.push_str(&format!("WARNING: {w}\n"));
    }
    s.push_str(&session_line(session));
    s
}

fn session_line(session: &Session) -> String {
    let mut s = String::new();
    if let Some(e) = session.target().exception() {
        s.push_str(&format!("This dump file has an exception of interest stored in it.\nThe stored exception information can be accessed via .ecxr.\n(code {:08x} on thread {:x})\n", e.record.code, e.thread_id));
    }
    s
}

mod completion {
    use dumpdiag_engine::{registry, Command};
    use rustyline::completion::{Completer, Pair};
    use rustyline::highlight::Highlighter;
    use rustyline::hint::Hinter;
    use rustyline::validate::Validator;
    use rustyline::{Context, Helper};

    /// Completes what the session's command registry knows.
    pub struct Commands {
        pub commands: Vec<&'static Command>,
    }

    impl Completer for Commands {
        type Candidate = Pair;
        fn complete(
            &self,
            line: &str,
            pos: usize,
            _: &Context<'_>,
        ) -> rustyline::Result<(usize, Vec<Pair>)> {
            let (start, hits) = registry::complete(&line[..pos], &self.commands, &[]);
            let pairs = hits
                .into_iter()
                .map(|c| Pair {
                    display: c.to_string(),
                    replacement: c.to_string(),
                })
                .collect();
            Ok((start, pairs))
        }
    }
    impl Hinter for Commands {
        type Hint = String;
    }
    impl Highlighter for Commands {}
    impl Validator for Commands {}
    impl Helper for Commands {}
}

fn history_path() -> Option<std::path::PathBuf> {
    std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".dumpdiag_history"))
}

fn repl(session: &mut Session) -> ExitCode {
    if !std::io::stdin().is_terminal() {
        // Piped input: run each line like the REPL would, without line editing.
        let mut line = String::new();
        let stdin = std::io::stdin();
        loop {
            line.clear();
            match stdin.read_line(&mut line) {
                Ok(0) | Err(_) => return ExitCode::SUCCESS,
                Ok(_) => {}
            }
            // Echo prompt and command so piped sessions read like a debugger transcript.
            let prompt = session.prompt();
            let out = session.execute(line.trim_end());
            print!("{prompt}{}\n{}", line.trim_end(), out.text);
            if out.quit {
                return ExitCode::SUCCESS;
            }
        }
    }
    let mut editor = match rustyline::Editor::<
        completion::Commands,
        rustyline::history::DefaultHistory,
    >::new()
    {
        Ok(e) => e,
        Err(e) => {
            eprintln!("dumpdiag: cannot start the line editor: {e}");
            return ExitCode::FAILURE;
        }
    };
    editor.set_helper(Some(completion::Commands {
        commands: session.commands(),
    }));
    let history = history_path();
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    loop {
        match editor.readline(&session.prompt()) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                }
                let out = session.execute(&line);
                print!("{}", out.text);
                let _ = std::io::stdout().flush();
                if out.quit {
                    break;
                }
            }
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(_) => break,
        }
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    ExitCode::SUCCESS
}

/// `dumpdiag analyze DUMP [-y SYMPATH] [--format text|json] [-o FILE]`.
#[derive(Parser)]
#[command(
    name = "dumpdiag analyze",
    about = "Automatic diagnosis of a dump in the diagnostic pattern language."
)]
struct AnalyzeCli {
    dump: String,
    #[arg(short = 'y', long = "sympath")]
    sympath: Option<String>,
    #[arg(long = "format", default_value = "text", value_parser = ["text", "json", "html"])]
    format: String,
    #[arg(short = 'o', long = "output")]
    output: Option<String>,
}

/// Open a dump as a session with the symbol path (`-y`, else `_NT_SYMBOL_PATH`); a one-line
/// error and exit code 2 when the file cannot be read as a dump.
fn open_session(dump: &str, sympath: Option<String>) -> Result<Session, ExitCode> {
    let target = dumpdiag_mdmp::open_dump(dump).map_err(|e| {
        eprintln!("dumpdiag: {dump}: {e}");
        ExitCode::from(2)
    })?;
    let mut session = Session::new(target);
    if let Some(p) = sympath.or_else(|| std::env::var("_NT_SYMBOL_PATH").ok()) {
        session.set_symbol_path(&p);
    }
    Ok(session)
}

fn analyze_main(args: Vec<String>) -> ExitCode {
    let cli = AnalyzeCli::parse_from(args);
    let session = match open_session(&cli.dump, cli.sympath.clone()) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let text = match cli.format.as_str() {
        "json" => dumpdiag_analysis::analyze(&session.analysis_input()).to_json() + "\n",
        "html" => dumpdiag_analysis::html_report(&session.analysis_input()),
        _ => dumpdiag_analysis::analyze(&session.analysis_input()).to_text(),
    };
    match &cli.output {
        Some(path) => {
            if let Err(e) = std::fs::write(path, text) {
                eprintln!("dumpdiag: cannot write {path}: {e}");
                return ExitCode::from(2);
            }
        }
        None => print!("{text}"),
    }
    ExitCode::SUCCESS
}

/// `-v` / `--verbose`, anywhere on the command line: log what the analysis decided and why
/// (each detector's verdict, each thread's walk) to stderr, through `tracing`.
fn take_verbose(args: &mut Vec<String>) -> bool {
    let before = args.len();
    args.retain(|a| a != "-v" && a != "--verbose");
    args.len() != before
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().collect();
    if take_verbose(&mut args) {
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(std::io::stderr)
            .with_target(false)
            .without_time()
            .init();
    }
    if args.get(1).is_some_and(|a| a == "analyze") {
        let mut rest = vec![args[0].clone()];
        rest.extend(args[2..].iter().cloned());
        return analyze_main(rest);
    }
    let cli = Cli::parse_from(args);
    let mut session = match open_session(&cli.dump, cli.sympath.clone()) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let scripted = cli.commands.is_some() || cli.script.is_some();
    if !cli.quiet && !scripted {
        print!("{}", banner(&session));
    } else if !cli.quiet {
        for w in session.target().warnings() {
            eprintln!("WARNING: {w}");
        }
    }
    let mut lines: Vec<String> = Vec::new();
    if let Some(c) = &cli.commands {
        lines.push(c.clone());
    }
    if let Some(f) = &cli.script {
        match std::fs::read_to_string(f) {
            Ok(text) => lines.extend(text.lines().map(str::to_string)),
            Err(e) => {
                eprintln!("dumpdiag: cannot read script {f}: {e}");
                return ExitCode::from(2);
            }
        }
    }
    if scripted {
        let mut stdout = std::io::stdout().lock();
        for l in lines {
            let out = session.execute(&l);
            if stdout.write_all(out.text.as_bytes()).is_err() {
                return ExitCode::SUCCESS;
            }
            if out.quit {
                break;
            }
        }
        return ExitCode::SUCCESS;
    }
    repl(&mut session)
}
