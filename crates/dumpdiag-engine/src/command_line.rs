//! How a typed line becomes commands: WinDbg's `;` separator (ignored inside double quotes),
//! the thread prefix `~<threads>` whose `e` form takes the rest of the line, and the split of
//! one command into its command word and its arguments.

/// The commands of a line, trimmed, empty ones dropped.
///
/// `;` separates commands except inside double quotes (`.echo "a; b"` is one command). A thread
/// prefix applies to its own command only (`~* k; r` walks every thread's stack, then shows the
/// current registers once), except in WinDbg's `~<threads>e` form, whose command string is the
/// rest of the line (`~*e r; k` runs both commands on every thread).
///
/// Splitting a command this returned gives it back unchanged, so a caller that looks at each
/// command before handing it to [`crate::Session::execute`] sees what the session will run.
pub fn split_commands(line: &str) -> Vec<&str> {
    let mut commands = Vec::new();
    let mut rest = line;
    loop {
        let command = rest.trim_start();
        if thread_prefix(command).is_some_and(|p| p.each && !p.selector.is_empty()) {
            commands.push(command.trim_end());
            break;
        }
        match unquoted_semicolon(rest) {
            Some(i) => {
                commands.push(rest[..i].trim());
                rest = &rest[i + 1..];
            }
            None => {
                commands.push(rest.trim());
                break;
            }
        }
    }
    commands.retain(|c| !c.is_empty());
    commands
}

/// Byte offset of the first `;` outside double quotes.
fn unquoted_semicolon(text: &str) -> Option<usize> {
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ';' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// Where the command being typed at the end of `line` starts: after the last `;` outside
/// quotes (for completion, which sees a line cut at the cursor).
pub(crate) fn last_command_start(line: &str) -> usize {
    let mut start = 0;
    while let Some(i) = unquoted_semicolon(&line[start..]) {
        start += i + 1;
    }
    start
}

/// A thread command's `~<threads>` prefix, recognised by its shape (the selector's expression is
/// evaluated by the `~` handler, not here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ThreadPrefix<'a> {
    /// `*`, `.`, `#`, decimal digits, `~[expr]`, or empty for a bare `~`.
    pub selector: &'a str,
    /// `~<threads>e commands`: the commands run on each selected thread.
    pub each: bool,
    /// Byte offset, in the command, of what follows the selector (and the `e`).
    pub rest_at: usize,
}

impl<'a> ThreadPrefix<'a> {
    /// What follows the selector (and the `e`), trimmed.
    pub fn rest(&self, command: &'a str) -> &'a str {
        command[self.rest_at..].trim()
    }
}

/// The thread prefix of `command`, or None when it does not start with `~` or its `~[` has no
/// closing `]`.
pub(crate) fn thread_prefix(command: &str) -> Option<ThreadPrefix<'_>> {
    let body = command.strip_prefix('~')?;
    let selector_len = if body.starts_with(['*', '.', '#']) {
        1
    } else if let Some(inner) = body.strip_prefix("~[") {
        "~[".len() + inner.find(']')? + "]".len()
    } else {
        body.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(body.len())
    };
    let selector = &body[..selector_len];
    let after_selector = 1 + selector_len;
    let tail = &command[after_selector..];
    let gap = tail.len() - tail.trim_start().len();
    let each = tail[gap..]
        .strip_prefix('e')
        .is_some_and(|r| r.is_empty() || r.starts_with(char::is_whitespace));
    let rest_at = after_selector + gap + usize::from(each);
    Some(ThreadPrefix {
        selector,
        each,
        rest_at,
    })
}

/// The command word and its arguments. A thread command is one word (its handler parses the
/// selector and what follows); `||`, `|` and `?` take arguments glued on (`?1+2`, `|0`).
pub(crate) fn split_verb(cmd: &str) -> (&str, &str) {
    if cmd.starts_with('~') {
        return (cmd, "");
    }
    for glued in ["||", "|", "??", "?"] {
        if let Some(rest) = cmd.strip_prefix(glued) {
            return (glued, rest.trim());
        }
    }
    let end = cmd.find(char::is_whitespace).unwrap_or(cmd.len());
    (&cmd[..end], cmd[end..].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semicolons_inside_quotes_stay_in_their_command() {
        assert_eq!(split_commands(".echo \"a; b\""), vec![".echo \"a; b\""]);
        assert_eq!(
            split_commands(".echo \"a; b\"; k"),
            vec![".echo \"a; b\"", "k"]
        );
        assert_eq!(
            split_commands("s -a 0 L100 \"x;y\";r"),
            vec!["s -a 0 L100 \"x;y\"", "r"]
        );
    }

    #[test]
    fn commands_are_trimmed_and_empty_ones_dropped() {
        assert_eq!(
            split_commands("  vertarget ;; ~ ; "),
            vec!["vertarget", "~"]
        );
        assert!(split_commands(" ; ").is_empty());
        assert!(split_commands("").is_empty());
    }

    #[test]
    fn a_thread_prefix_applies_to_its_own_command_unless_it_is_the_e_form() {
        assert_eq!(split_commands("~* k; r"), vec!["~* k", "r"]);
        assert_eq!(split_commands("~*k;r"), vec!["~*k", "r"]);
        assert_eq!(split_commands("~*e r; k"), vec!["~*e r; k"]);
        assert_eq!(split_commands("r; ~0e r; k"), vec!["r", "~0e r; k"]);
        assert_eq!(split_commands("~~[1a2b]e k; r"), vec!["~~[1a2b]e k; r"]);
        // `~0 echo` is no `e` form, and a bare `~` selects nothing to apply commands to.
        assert_eq!(split_commands("~0 echo; r"), vec!["~0 echo", "r"]);
        assert_eq!(split_commands("~e r; k"), vec!["~e r", "k"]);
    }

    #[test]
    fn splitting_a_split_command_gives_it_back() {
        for line in ["~*e r; k", ".echo \"a; b\"", "~* k", "lmvm ntdll"] {
            for command in split_commands(line) {
                assert_eq!(split_commands(command), vec![command]);
            }
        }
    }

    #[test]
    fn thread_prefixes_by_shape() {
        let p = thread_prefix("~12s").unwrap();
        assert_eq!((p.selector, p.each, p.rest("~12s")), ("12", false, "s"));
        let p = thread_prefix("~* e r; k").unwrap();
        assert_eq!(
            (p.selector, p.each, p.rest("~* e r; k")),
            ("*", true, "r; k")
        );
        let p = thread_prefix("~~[0x2a]s").unwrap();
        assert_eq!((p.selector, p.rest("~~[0x2a]s")), ("~[0x2a]", "s"));
        let p = thread_prefix("~").unwrap();
        assert_eq!((p.selector, p.each, p.rest("~")), ("", false, ""));
        assert_eq!(thread_prefix("~~[12s"), None);
        assert_eq!(thread_prefix("k"), None);
    }

    #[test]
    fn verbs_and_glued_arguments() {
        assert_eq!(split_verb("kbn 5"), ("kbn", "5"));
        assert_eq!(split_verb("?1+2"), ("?", "1+2"));
        assert_eq!(split_verb("|| "), ("||", ""));
        assert_eq!(split_verb("~0 k"), ("~0 k", ""));
        assert_eq!(split_verb(".echo  a  b"), (".echo", "a  b"));
    }

    #[test]
    fn the_command_being_typed_starts_after_the_last_separator() {
        assert_eq!(last_command_start("k; lm"), 2);
        assert_eq!(last_command_start(".echo \"a;b"), 0);
        assert_eq!(last_command_start("lm"), 0);
    }
}
