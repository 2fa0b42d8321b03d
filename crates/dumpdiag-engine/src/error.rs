//! Why a command produced no answer, as a type a library user can match on. Each variant's
//! `Display` is the text WinDbg prints in that situation, so a REPL or `-c` transcript shows the
//! error exactly as a debugger would.

use crate::expr::ExprError;

/// What went wrong running one command. [`crate::Session::execute`] prints it with `Display`, one
/// error per line; [`crate::Session::run_command`] hands it over typed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// A regular or meta (`.foo`) command word nobody registered; holds the whole command.
    #[error("       ^ Syntax error in '{0}'")]
    UnknownCommand(String),
    /// `!foo` that no registered extension command exports; holds the name without the `!`.
    #[error("No export {0} found")]
    UnknownExtension(String),
    /// A known command whose arguments it cannot parse; `command` is the whole command.
    #[error("       ^ Syntax error in '{command}'")]
    Syntax { command: String },
    /// An expression naming a symbol or module that does not exist (the name as written).
    #[error("Couldn't resolve error at '{0}'")]
    Unresolved(String),
    /// An expression or `r` naming a register (or `$pseudo` register) the context does not
    /// have. WinDbg reports these apart from unresolved symbols, with their own text.
    #[error("Bad register error at '{0}'")]
    BadRegister(String),
    /// A thread selector (`~N`, `~~[tid]`) naming no thread of the dump; holds the command.
    #[error("       ^ Illegal thread error in '{0}'")]
    IllegalThread(String),
    /// An expression read (`poi`, `dwo`, …) from memory the dump does not hold.
    #[error("Memory access error at '{address}'")]
    MemoryAccess { address: String },
    /// A C++ expression (`??`) applying an operator to a value of a type it does not take
    /// (a member of a number, `*` of an integer); holds what was wrong.
    #[error("Type conflict error at '{0}'")]
    TypeConflict(String),
    /// Any other expression error (syntax, division by zero, a missing operand or `)`).
    #[error(transparent)]
    Expression(ExprError),
    /// What the dump lacks for this command: a stream (exception, handles, thread times), a
    /// thread context, or the memory a structure lives in. The text says which.
    #[error("{0}")]
    Unavailable(String),
    /// The frame, module, symbol or function the arguments name is not there.
    #[error("{0}")]
    NotFound(String),
    /// Arguments the command understands but cannot use as given; the text says how to call it.
    #[error("{0}")]
    Usage(String),
}

impl From<ExprError> for CommandError {
    /// The expression errors WinDbg names on their own keep their own variants, so a library
    /// user matches `Unresolved` whether it came from `?`, `dd` or `!teb`.
    fn from(e: ExprError) -> CommandError {
        match e {
            ExprError::Unresolved(name) => CommandError::Unresolved(name),
            ExprError::BadRegister(name) => CommandError::BadRegister(name),
            ExprError::MemoryAccess { address } => CommandError::MemoryAccess { address },
            other => CommandError::Expression(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_print_what_windbg_prints() {
        assert_eq!(
            CommandError::UnknownCommand("zz foo".into()).to_string(),
            "       ^ Syntax error in 'zz foo'"
        );
        assert_eq!(
            CommandError::UnknownExtension("nosuch".into()).to_string(),
            "No export nosuch found"
        );
        assert_eq!(
            CommandError::Syntax {
                command: "~x".into()
            }
            .to_string(),
            "       ^ Syntax error in '~x'"
        );
        assert_eq!(
            CommandError::IllegalThread("~99s".into()).to_string(),
            "       ^ Illegal thread error in '~99s'"
        );
        assert_eq!(
            CommandError::Unresolved("nosuchsym".into()).to_string(),
            "Couldn't resolve error at 'nosuchsym'"
        );
    }

    #[test]
    fn expression_errors_keep_their_kind() {
        assert_eq!(
            CommandError::from(ExprError::Unresolved("x".into())),
            CommandError::Unresolved("x".into())
        );
        assert_eq!(
            CommandError::from(ExprError::BadRegister("@q".into())).to_string(),
            "Bad register error at '@q'"
        );
        assert_eq!(
            CommandError::from(ExprError::MemoryAccess {
                address: "00000000`00000000".into()
            }),
            CommandError::MemoryAccess {
                address: "00000000`00000000".into()
            }
        );
        let e = CommandError::from(ExprError::DivideByZero);
        assert_eq!(e, CommandError::Expression(ExprError::DivideByZero));
        assert_eq!(e.to_string(), "Divide by zero error");
    }
}
