//! The analysis commands: `!analyze [-v]` (the automatic diagnosis), `!cs [-l]` / `!locks`
//! (locked critical sections, owners and waiters) and `!waitchain` / `!wct` (each waiting
//! thread's chain). They read the dump through [`Session::analysis_input`], never the session's
//! current thread, view or scope, so they answer the same whatever the REPL did before.

use crate::registry::{Command, Invocation};
use crate::{CommandError, Session};

pub(crate) const COMMANDS: &[Command] = &[
    Command {
        names: &["!analyze"],
        usage: "!analyze [-v]",
        help: "Automatic diagnosis: the exception, the patterns found, evidence, recommendations.",
        family: None,
        arguments: &["-v"],
        run: analyze,
    },
    Command {
        names: &["!cs", "!locks"],
        usage: "!cs [-l] | !locks",
        help: "Locked critical sections with their owners and waiting threads.",
        family: None,
        arguments: &["-l"],
        run: locks,
    },
    Command {
        names: &["!waitchain", "!wct"],
        usage: "!waitchain",
        help: "What each waiting thread waits for, followed to the end of its chain.",
        family: None,
        arguments: &[],
        run: wait_chain,
    },
];

/// `!analyze` and `!analyze -v` print the same full report: the detail is what makes it useful.
fn analyze(s: &mut Session, _: &Invocation<'_>) -> Result<String, CommandError> {
    Ok(dumpdiag_analysis::analyze(&s.analysis_input()).to_text())
}

fn locks(s: &mut Session, _: &Invocation<'_>) -> Result<String, CommandError> {
    Ok(dumpdiag_analysis::locks_text(&s.analysis_input()))
}

fn wait_chain(s: &mut Session, _: &Invocation<'_>) -> Result<String, CommandError> {
    Ok(dumpdiag_analysis::wait_chain_text(&s.analysis_input()))
}
