//! Embedded Comments: comment streams written by the dump tool.

use crate::{Detector, Evidence, Finding, Pattern, Strength};

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
            return Vec::new();
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
