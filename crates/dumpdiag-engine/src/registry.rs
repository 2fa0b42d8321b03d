//! The one list of commands the engine answers. Each command family declares its [`Command`]s
//! beside their handlers (`cmd_*.rs`); this module joins those lists, finds the command a
//! command word names, and derives `help` and REPL completion from the same entries, so what is
//! listed, completed and dispatched cannot drift apart. Adding a command is one entry in its
//! family's `COMMANDS` (and its test); a crate above the engine adds its own with
//! [`Session::register_commands`].

use std::fmt::Write;

use crate::command_line::{last_command_start, thread_prefix};
use crate::{
    cmd_analysis, cmd_code, cmd_dlls, cmd_dump, cmd_memory, cmd_meta, cmd_modules, cmd_process,
    cmd_registers, cmd_stacks, cmd_symbols, cmd_target, cmd_threads, cmd_types, CommandError,
    Session,
};

/// What runs a command: the session it acts on and the command as typed.
pub type Handler = fn(&mut Session, &Invocation<'_>) -> Result<String, CommandError>;

/// One command: its spellings, what `help` says of it, and its handler. Plain data, so each
/// family's list is a `const`.
#[derive(Debug, Clone, Copy)]
pub struct Command {
    /// The names it answers to; the first is canonical. Regular and meta (`.`) names match
    /// case-insensitively, extension (`!`) names exactly, as in WinDbg.
    pub names: &'static [&'static str],
    /// The syntax `help` shows, in WinDbg's notation: `k[b|v|p|P|n|c|f|L] [= bp sp ip] [count]`.
    pub usage: &'static str,
    /// What it does, in one line.
    pub help: &'static str,
    /// For verbs whose option letters glue onto the command word (`kbn`, `lmvm`, `~0s`): whether
    /// a command word none of the names match belongs to this command.
    pub family: Option<fn(&str) -> bool>,
    /// Words the REPL offers after the command word (`.effmach x86|amd64|.`).
    pub arguments: &'static [&'static str],
    pub run: Handler,
}

impl Command {
    fn has_name(&self, verb: &str) -> bool {
        self.names.iter().any(|name| {
            if name.starts_with('!') {
                *name == verb
            } else {
                name.eq_ignore_ascii_case(verb)
            }
        })
    }
}

/// One command as typed, as its handler sees it.
#[derive(Debug, Clone, Copy)]
pub struct Invocation<'a> {
    /// The whole command, trimmed: what syntax errors quote.
    pub text: &'a str,
    /// The command word as typed (`kbn`, `lmvm`, `dps`, `~0s`): a family's handler reads its
    /// option letters from it.
    pub verb: &'a str,
    /// The arguments after the command word, trimmed.
    pub args: &'a str,
}

impl Invocation<'_> {
    /// WinDbg's answer to arguments a command cannot parse.
    pub fn syntax_error(&self) -> CommandError {
        CommandError::Syntax {
            command: self.text.to_string(),
        }
    }
}

/// The built-in families, in the order `help` lists them.
const FAMILIES: &[(&str, &[Command])] = &[
    ("Target", cmd_target::COMMANDS),
    ("Threads, registers and exceptions", cmd_threads::COMMANDS),
    ("Register displays", cmd_registers::COMMANDS),
    ("Stacks and locals", cmd_stacks::COMMANDS),
    ("Memory", cmd_memory::COMMANDS),
    ("Types", cmd_types::COMMANDS),
    ("Modules", cmd_modules::COMMANDS),
    ("Symbols", cmd_symbols::COMMANDS),
    ("Code", cmd_code::COMMANDS),
    ("Process", cmd_process::COMMANDS),
    ("Loader", cmd_dlls::COMMANDS),
    ("Dump files", cmd_dump::COMMANDS),
    ("Analysis", cmd_analysis::COMMANDS),
    ("Session", cmd_meta::COMMANDS),
];

/// Every built-in command, family by family.
pub fn builtin_commands() -> impl Iterator<Item = &'static Command> + Clone {
    FAMILIES.iter().flat_map(|(_, commands)| commands.iter())
}

/// Every built-in command name (what the REPL completes at the start of a command).
pub fn command_names() -> Vec<&'static str> {
    builtin_commands()
        .flat_map(|c| c.names.iter().copied())
        .collect()
}

/// The command `verb` names among `commands`: an exact name first (so a registered `lmx`
/// would not be taken for `lm` with option `x`), then the family matchers, in order.
pub fn find<'c, I>(verb: &str, commands: I) -> Option<&'c Command>
where
    I: IntoIterator<Item = &'c Command>,
    I::IntoIter: Clone,
{
    let commands = commands.into_iter();
    commands.clone().find(|c| c.has_name(verb)).or_else(|| {
        commands
            .clone()
            .find(|c| c.family.is_some_and(|belongs| belongs(verb)))
    })
}

/// The error for a command word nothing answers to.
pub(crate) fn not_found(verb: &str, text: &str) -> CommandError {
    match verb.strip_prefix('!') {
        Some(export) => CommandError::UnknownExtension(export.to_string()),
        None => CommandError::UnknownCommand(text.to_string()),
    }
}

/// Where a name of `added` is already taken in `existing`, if it is.
pub(crate) fn name_clash<'c>(
    added: &[Command],
    existing: impl IntoIterator<Item = &'c Command> + Clone,
) -> Option<&'static str> {
    added
        .iter()
        .flat_map(|c| c.names.iter().copied())
        .find(|name| existing.clone().into_iter().any(|c| c.has_name(name)))
}

/// Where `help` starts each command's description, and where it wraps it.
const HELP_COLUMN: usize = 40;
const HELP_WIDTH: usize = 100;

/// The words of help text as a reader picks command names out of it: `k[b|v]` shows `k`,
/// `.sympath[+]` shows `.sympath`, `Also: kb, kv.` shows `kb` and `kv`.
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| c.is_whitespace() || ",[]{}".contains(c))
        .map(|w| w.trim_end_matches('.'))
        .filter(|w| !w.is_empty())
}

/// `text` in lines of at most `width` characters (a longer word gets a line of its own).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match lines.last_mut() {
            Some(line) if line.len() + 1 + word.len() <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

/// One command in `help`: its usage, then its description, then the names the usage does not
/// show as words, so every name it answers to is listed.
fn help_row(out: &mut String, c: &Command) {
    let mut help = c.help.to_string();
    let unshown: Vec<&str> = c
        .names
        .iter()
        .copied()
        .filter(|name| !words(c.usage).any(|w| w == *name))
        .collect();
    if !unshown.is_empty() {
        let _ = write!(help, " Also: {}.", unshown.join(", "));
    }
    let mut usage = format!("  {}", c.usage);
    if usage.len() + 1 > HELP_COLUMN {
        let _ = writeln!(out, "{usage}");
        usage.clear();
    }
    for line in wrap(&help, HELP_WIDTH - HELP_COLUMN) {
        let _ = writeln!(out, "{:HELP_COLUMN$}{line}", std::mem::take(&mut usage));
    }
}

/// The `help` text: every built-in command, family by family, then those the application
/// registered, each with its usage and one-line description.
pub fn help_text(registered: &[&'static [Command]]) -> String {
    let mut out = String::from(
        "Commands (WinDbg syntax), separated by ';'. Regular and meta (.) commands are \
         case-insensitive;\nextension (!) commands are case-sensitive.\n",
    );
    let registered = registered.iter().map(|commands| ("Registered", *commands));
    for (title, commands) in FAMILIES.iter().copied().chain(registered) {
        let _ = writeln!(out, "\n{title}");
        for c in commands {
            help_row(&mut out, c);
        }
    }
    out
}

fn starts_with_word(candidate: &str, word: &str) -> bool {
    if word.starts_with('!') {
        candidate.starts_with(word)
    } else {
        candidate.len() >= word.len() && candidate[..word.len()].eq_ignore_ascii_case(word)
    }
}

/// Completion of the word that ends `line` (the text before the cursor): at the start of a
/// command (also after `;` or a thread prefix such as `~* `), the names of `commands` and
/// `extra_names`; after a command word, the arguments its command offers. Returns the byte
/// offset where the completed word starts and the candidates.
pub fn complete(
    line: &str,
    commands: &[&'static Command],
    extra_names: &[&'static str],
) -> (usize, Vec<&'static str>) {
    let mut start = last_command_start(line);
    start += line[start..].len() - line[start..].trim_start().len();
    if let Some(prefix) = thread_prefix(&line[start..]).filter(|p| !p.selector.is_empty()) {
        let rest_at = start + prefix.rest_at;
        start = rest_at + line[rest_at..].len() - line[rest_at..].trim_start().len();
    }
    let command = &line[start..];
    let Some(verb_end) = command.find(char::is_whitespace) else {
        let names = commands
            .iter()
            .flat_map(|c| c.names.iter())
            .chain(extra_names);
        let mut hits: Vec<&'static str> = names
            .copied()
            .filter(|name| starts_with_word(name, command))
            .collect();
        hits.dedup();
        return (start, hits);
    };
    let word_at = command.rfind(char::is_whitespace).map_or(0, |i| {
        i + command[i..].chars().next().map_or(1, char::len_utf8)
    });
    let word = &command[word_at..];
    let arguments =
        find(&command[..verb_end], commands.iter().copied()).map_or(&[][..], |c| c.arguments);
    let hits = arguments
        .iter()
        .copied()
        .filter(|a| starts_with_word(a, word))
        .collect();
    (start + word_at, hits)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn builtins() -> Vec<&'static Command> {
        builtin_commands().collect()
    }

    #[test]
    fn no_name_is_registered_twice() {
        let mut seen = HashSet::new();
        for name in command_names() {
            // Case-insensitive names clash regardless of case; extension names only exactly.
            let key = if name.starts_with('!') {
                name.to_string()
            } else {
                name.to_ascii_lowercase()
            };
            assert!(seen.insert(key), "{name} is registered twice");
        }
    }

    #[test]
    fn every_listed_name_finds_its_own_command() {
        for c in builtin_commands() {
            for name in c.names {
                let found = find(name, builtin_commands()).expect(name);
                assert_eq!(found.names, c.names, "{name} finds another command");
            }
        }
    }

    #[test]
    fn names_match_without_case_but_extensions_with_it() {
        assert_eq!(find("VERTARGET", builtins()).unwrap().names[0], "vertarget");
        assert_eq!(find(".EffMach", builtins()).unwrap().names[0], ".effmach");
        assert_eq!(find("!peb", builtins()).unwrap().names[0], "!peb");
        assert!(find("!PEB", builtins()).is_none());
        assert!(find("zz", builtins()).is_none());
    }

    #[test]
    fn families_take_their_glued_letters() {
        for (verb, canonical) in [
            ("kbn", "k"),
            ("kPL", "k"),
            ("lmvm", "lm"),
            ("lmm", "lm"),
            ("~0s", "~"),
            ("~*e", "~"),
            ("dps", "dps"),
            ("du", "da"),
        ] {
            let found = find(verb, builtins()).unwrap_or_else(|| panic!("{verb}"));
            assert_eq!(found.names[0], canonical, "{verb}");
        }
        // Letters k does not have are no k command.
        assert!(find("kz", builtins()).is_none());
    }

    #[test]
    fn unknown_words_are_syntax_errors_and_unknown_bangs_missing_exports() {
        assert_eq!(
            not_found("zz", "zz 1"),
            CommandError::UnknownCommand("zz 1".into())
        );
        assert_eq!(
            not_found("!nosuch", "!nosuch -v").to_string(),
            "No export nosuch found"
        );
        assert_eq!(
            not_found(".foo", ".foo").to_string(),
            "       ^ Syntax error in '.foo'"
        );
    }

    #[test]
    fn help_lists_every_name_with_its_usage() {
        let help = help_text(&[]);
        let listed: HashSet<&str> = words(&help).collect();
        // Descriptions are wrapped: compare them with every run of whitespace made one space.
        let squash = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
        let squashed_help = squash(&help);
        for c in builtin_commands() {
            assert!(help.contains(c.usage), "{}", c.usage);
            assert!(squashed_help.contains(&squash(c.help)), "{}", c.help);
            for name in c.names {
                assert!(listed.contains(name), "help does not list {name}");
            }
        }
        for name in [
            "k",
            "kb",
            "u",
            "ub",
            "uf",
            "dt",
            "dv",
            "!heap",
            ".frame",
            "x",
            "ln",
            "!lmi",
            "!dh",
            ".reload",
            ".symfix",
            "!uniqstack",
            "!findstack",
            ".thread",
            "s",
            "?",
        ] {
            assert!(listed.contains(name), "help does not list {name}:\n{help}");
            // Listed as a name of its own command, not just as a word of some description.
            let found = find(name, builtin_commands()).map(|c| c.names);
            assert!(found.is_some_and(|names| names.contains(&name)), "{name}");
        }
    }

    #[test]
    fn help_fits_the_terminal_width_it_was_written_for() {
        for line in help_text(&[]).lines() {
            assert!(line.len() <= HELP_WIDTH, "{line}");
        }
        assert_eq!(wrap("a bb ccc", 4), vec!["a bb", "ccc"]);
        assert_eq!(wrap("abcdef g", 4), vec!["abcdef", "g"]);
    }

    #[test]
    fn registered_commands_are_listed_after_the_builtins() {
        const EXTRA: &[Command] = &[Command {
            names: &["!hello"],
            usage: "!hello [name]",
            help: "Greets.",
            family: None,
            arguments: &[],
            run: |_, inv| Ok(format!("hello {}\n", inv.args)),
        }];
        let help = help_text(&[EXTRA]);
        let at = help
            .find("Registered\n")
            .expect("a section for registered commands");
        assert!(help[at..].contains("!hello [name]"), "{help}");
    }

    #[test]
    fn completion_offers_names_then_arguments() {
        let all = builtins();
        let (at, hits) = complete(".effm", &all, &[]);
        assert_eq!((at, hits), (0, vec![".effmach"]));
        let (at, hits) = complete(".effmach ", &all, &[]);
        assert_eq!(at, 9);
        assert_eq!(hits, vec!["x86", "amd64", "."]);
        let (at, hits) = complete("k; .effmach a", &all, &[]);
        assert_eq!((at, hits), (12, vec!["amd64"]));
        let (at, hits) = complete("~* kb", &all, &[]);
        assert_eq!((at, hits), (3, vec!["kb"]));
        let (_, hits) = complete("!an", &all, &["!analyze"]);
        assert_eq!(hits, vec!["!analyze"]);
        let (_, hits) = complete("!heap -", &all, &[]);
        assert!(hits.contains(&"-s"), "{hits:?}");
        assert!(complete("zz ", &all, &[]).1.is_empty());
    }
}
