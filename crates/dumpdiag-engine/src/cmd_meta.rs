//! Session commands: `?` (evaluate an expression), `.echo`, `help` / `.help` (generated from the
//! registry, so it lists exactly what dispatches), and `q` / `qq` / `qd`.

use crate::registry::{self, Command, Invocation};
use crate::{format, CommandError, Session};

pub(crate) const COMMANDS: &[Command] = &[
    Command {
        names: &["?"],
        usage: "? expression",
        help: "Evaluate a MASM expression (hex by default; registers, symbols, poi()).",
        family: None,
        arguments: &[],
        run: evaluate,
    },
    Command {
        names: &["help", ".help"],
        usage: "help",
        help: "This list: every command with its syntax.",
        family: None,
        arguments: &[],
        run: help,
    },
    Command {
        names: &[".echo"],
        usage: ".echo [text | \"text\"]",
        help: "Print the text (quoted text may hold ';').",
        family: None,
        arguments: &[],
        run: echo,
    },
    Command {
        names: &["q", "qq", "qd"],
        usage: "q",
        help: "End the session (the dump file is left as it is).",
        family: None,
        arguments: &[],
        run: quit,
    },
];

fn evaluate(s: &mut Session, inv: &Invocation) -> Result<String, CommandError> {
    let v = s.eval(inv.args)?;
    Ok(format!(
        "Evaluate expression: {} = {}\n",
        v as i64,
        format::addr(v, 8)
    ))
}

fn help(s: &mut Session, _: &Invocation) -> Result<String, CommandError> {
    Ok(registry::help_text(&s.registered))
}

/// WinDbg prints quoted text without its quotes (the quotes are what let it hold `;`).
fn echo(_: &mut Session, inv: &Invocation) -> Result<String, CommandError> {
    let text = inv
        .args
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(inv.args);
    Ok(format!("{text}\n"))
}

fn quit(s: &mut Session, inv: &Invocation) -> Result<String, CommandError> {
    if !inv.args.is_empty() {
        return Err(inv.syntax_error());
    }
    s.quit_requested = true;
    Ok(String::new())
}
