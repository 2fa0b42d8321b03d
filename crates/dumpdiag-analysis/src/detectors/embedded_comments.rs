//! Embedded Comments: comment streams written by the dump tool.

use crate::{silent, Detector, Evidence, Finding, Pattern, Strength};

pub struct EmbeddedComments;

impl Detector for EmbeddedComments {
    fn pattern(&self) -> Pattern {
        Pattern::EmbeddedComments
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let x = ev.target().extras();
        let comments: Vec<String> = [x.comment_a.as_ref(), x.comment_w.as_ref()]
            .into_iter()
            .flatten()
            .filter(|c| !c.trim().is_empty())
            .cloned()
            .collect();
        if comments.is_empty() {
            silent!("no comment stream with text");
        }
        vec![Finding::new(
            self.pattern(),
            Strength::Proven,
            format!("the dump tool left a comment: {}", comments[0]),
        )
        .notes(comments)
        .recommend("The comment usually says why and when the dump was taken.")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::Analysed;
    use crate::Confidence;
    use dumpdiag_synth::{Module, Process};
    use dumpdiag_target::Arch;

    fn process() -> Process {
        let mut p = Process::new(Arch::Amd64);
        let app = p.module(Module::new("C:\\app\\service.exe"));
        let main = p.function(app, "main", 0x80);
        p.thread(0x100, [main]);
        p
    }

    /// What ProcDump writes into CommentStreamA when a trigger fires.
    const PROCDUMP: &str = "*** procdump -ma -h service.exe\n*** Hung window detected: 00020A3C";

    #[test]
    fn the_dump_tools_comments_are_shown() {
        let mut p = process();
        p.comment_a(PROCDUMP);
        p.comment_w("taken after the service stopped answering");
        let found = Analysed::exports_only(p).detect(&EmbeddedComments);
        assert_eq!(found.len(), 1);
        let f = &found[0];
        assert_eq!(
            f.summary,
            format!("the dump tool left a comment: {PROCDUMP}")
        );
        assert_eq!(
            f.evidence(),
            vec![
                PROCDUMP.to_string(),
                "taken after the service stopped answering".to_string()
            ]
        );
        assert_eq!(f.confidence(), Confidence::High);
        // A wide comment alone is enough.
        let mut p = process();
        p.comment_w("user-requested dump");
        let found = Analysed::exports_only(p).detect(&EmbeddedComments);
        assert_eq!(
            found[0].summary,
            "the dump tool left a comment: user-requested dump"
        );
    }

    #[test]
    fn empty_or_blank_comment_streams_are_no_comment() {
        assert!(Analysed::exports_only(process())
            .detect(&EmbeddedComments)
            .is_empty());
        // Writers that always add the stream may leave it blank.
        let mut p = process();
        p.comment_a("  \r\n");
        p.comment_w("");
        assert!(Analysed::exports_only(p)
            .detect(&EmbeddedComments)
            .is_empty());
    }
}
