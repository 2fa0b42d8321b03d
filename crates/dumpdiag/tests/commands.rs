//! The command language on a real dump: every command `help` lists dispatches, errors read as
//! WinDbg prints them and reach a library user typed, glued verb families dispatch, a line
//! splits into commands as WinDbg splits it, and a library can add its own commands.

mod common;
use common::*;
use dumpdiag_engine::{Command, CommandError};

/// A WOW64 full-memory dump with four threads, an exception and no handle data.
const WOW64: &str = "kdlibcpp/targetapp_stacktest_wow64/targetapp_stacktest_wow64.dmp";

/// The words of `help` as a reader picks command names out of it (`k[b|v]`, `Also: kb, kv.`).
fn listed_names(help: &str) -> Vec<&str> {
    help.split(|c: char| c.is_whitespace() || ",[]{}".contains(c))
        .map(|w| w.trim_end_matches('.'))
        .filter(|w| !w.is_empty())
        .collect()
}

#[test]
fn every_command_help_lists_dispatches_to_a_handler() {
    let mut s = session(WOW64);
    let help = run(&mut s, "help");
    let listed = listed_names(&help);
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
        assert!(listed.contains(&name), "help does not list {name}:\n{help}");
    }
    for command in s.commands() {
        for name in command.names {
            assert!(listed.contains(name), "help does not list {name}");
            // A fresh session each: `.effmach`, `~Ns`, `.cxr` or `q` would change the next.
            let mut fresh = session(WOW64);
            let result = fresh.run_command(name);
            assert!(
                !matches!(
                    result,
                    Err(CommandError::UnknownCommand(_) | CommandError::UnknownExtension(_))
                ),
                "{name}: {result:?}"
            );
            let text = run(&mut fresh, name);
            assert!(!text.contains("Syntax error in"), "{name}: {text}");
            assert!(!text.starts_with("No export"), "{name}: {text}");
        }
    }
}

#[test]
fn errors_read_as_windbg_prints_them_and_reach_the_caller_typed() {
    let mut s = session(WOW64);
    assert_eq!(run(&mut s, "zz"), "       ^ Syntax error in 'zz'\n");
    assert_eq!(
        s.run_command("zz 1 2"),
        Err(CommandError::UnknownCommand("zz 1 2".into()))
    );
    assert_eq!(
        run(&mut s, ".nosuch"),
        "       ^ Syntax error in '.nosuch'\n"
    );
    assert_eq!(run(&mut s, "!nosuch"), "No export nosuch found\n");
    assert_eq!(
        s.run_command("!nosuch -v"),
        Err(CommandError::UnknownExtension("nosuch".into()))
    );

    assert_eq!(
        s.run_command("r @nosuchreg"),
        Err(CommandError::BadRegister("@nosuchreg".into()))
    );
    assert_eq!(
        run(&mut s, "r @nosuchreg"),
        "Bad register error at '@nosuchreg'\n"
    );
    assert_eq!(
        s.run_command("? nosuchsym"),
        Err(CommandError::Unresolved("nosuchsym".into()))
    );
    assert_eq!(
        run(&mut s, "dd nosuchsym L1"),
        "Couldn't resolve error at 'nosuchsym'\n"
    );
    // The module name alone resolves, so the error is about what is missing in it.
    assert!(run(&mut s, "? targetapp").starts_with("Evaluate expression: "));

    assert_eq!(
        s.run_command("~9s"),
        Err(CommandError::IllegalThread("~9s".into()))
    );
    assert_eq!(
        run(&mut s, "~9s"),
        "       ^ Illegal thread error in '~9s'\n"
    );
    assert_eq!(
        s.run_command("~x"),
        Err(CommandError::Syntax {
            command: "~x".into()
        })
    );
    match s.run_command("!handle") {
        Err(CommandError::Unavailable(text)) => {
            assert!(text.contains("no HandleData stream"), "{text}")
        }
        other => panic!("!handle on a dump without handles: {other:?}"),
    }
}

#[test]
fn glued_verb_families_dispatch() {
    let mut s = session(WOW64);
    let kbn = run(&mut s, "kbn 3");
    assert!(kbn.starts_with(" # Child-SP"), "{kbn}");
    assert!(kbn.contains(": Args to Child"), "{kbn}");
    assert!(
        kbn.contains("\n00 00000000`006ff478 00000000`00000000 : cccccccc`005d8000"),
        "{kbn}"
    );
    // Regular commands are case-insensitive.
    assert_eq!(run(&mut s, "KN"), run(&mut s, "kn"));
    let lm = run(&mut s, "lmvm ntdll");
    assert!(
        lm.contains("Image path: C:\\Windows\\SysWOW64\\ntdll.dll"),
        "{lm}"
    );
    assert!(
        lm.contains("Image path: C:\\Windows\\System32\\ntdll.dll"),
        "{lm}"
    );
    assert!(!lm.contains("kernel32"), "{lm}");
}

#[test]
fn a_line_splits_into_commands_as_in_windbg() {
    let mut s = session(WOW64);
    assert_eq!(run(&mut s, ".echo \"a; b\""), "a; b\n");
    // `~*` applies to `k` only: four thread headers and stacks, then the registers once.
    let text = run(&mut s, "~* k; r");
    assert_eq!(text.matches("Id: 7b00.").count(), 4, "{text}");
    assert_eq!(text.matches("Child-SP").count(), 4, "{text}");
    assert_eq!(text.matches("rax=").count(), 1, "{text}");
    // `~*e` takes the rest of the line: both commands on every thread.
    let text = run(&mut s, "~*e r; k");
    assert_eq!(text.matches("rax=").count(), 4, "{text}");
    assert_eq!(text.matches("Child-SP").count(), 4, "{text}");
    assert_eq!(s.current_thread(), 0);

    let out = s.execute(".echo 1; q; .echo 2");
    assert!(out.quit);
    assert_eq!(out.text, "1\n");
}

/// `!modules`: what a higher crate's command looks like.
const LIBRARY_COMMANDS: &[Command] = &[Command {
    names: &["!modules"],
    usage: "!modules",
    help: "How many modules the dump lists.",
    family: None,
    arguments: &[],
    run: |s, _| Ok(format!("{} modules\n", s.target().modules().len())),
}];

#[test]
fn a_library_adds_its_own_commands() {
    let mut s = session(WOW64);
    assert_eq!(run(&mut s, "!modules"), "No export modules found\n");
    s.register_commands(LIBRARY_COMMANDS);
    let modules = s.target().modules().len();
    assert!(modules > 10, "{modules}");
    assert_eq!(
        run(&mut s, "!modules; vertarget").lines().next(),
        Some(format!("{modules} modules").as_str())
    );
    assert!(run(&mut s, "help").contains("How many modules the dump lists."));
    let (_, hits) = dumpdiag_engine::registry::complete("!mod", &s.commands(), &[]);
    assert_eq!(hits, vec!["!modules"]);
}
