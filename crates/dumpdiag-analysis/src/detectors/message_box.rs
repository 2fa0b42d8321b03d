//! Message Box: a thread inside user32!MessageBox*, with the caption and text it shows.
//!
//! Every MessageBox entry point of user32 ends in MessageBoxIndirectW / SoftModalMessageBox with
//! a MSGBOXPARAMSW structure on the calling thread's stack (MessageBoxA → MessageBoxExA →
//! MessageBoxTimeoutA → MessageBoxTimeoutW builds it; SoftModalMessageBox takes the MSGBOXDATA
//! that begins with it), so the text and caption are found through that structure: its cbSize
//! (0x50 on x64, 0x28 on x86) followed by the owner window, instance, text and caption
//! pointers. Where no such structure is found (a stack not captured, an unusual wrapper), the
//! strings the stack points to stand in, marked as such.

use dumpdiag_target::MemoryExt;

use crate::{Caveat, Detector, Evidence, Fact, Finding, Pattern, Strength, ThreadView};

pub struct MessageBox;

/// The longest text read (MessageBox has no limit; a screenful is enough to recognise it).
const MAX_TEXT: usize = 1024;

/// Does `s` read as a message: at least three characters, printable, some letters, and not a
/// run of symbols from unrelated scripts (binary data decoded as UTF-16 looks like that)?
fn plausible(s: &str) -> bool {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() < 3 || !chars.iter().any(|c| c.is_alphabetic()) {
        return false;
    }
    let printable = chars
        .iter()
        .all(|&c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'));
    // Text of one language stays mostly within one script block; garbage spreads over many.
    let mut blocks: Vec<u32> = chars
        .iter()
        .filter(|c| !c.is_ascii())
        .map(|&c| c as u32 >> 7)
        .collect();
    blocks.sort_unstable();
    blocks.dedup();
    printable && blocks.len() <= 2
}

fn wide_text(ev: &Evidence, a: u64) -> Option<String> {
    ev.target()
        .memory()
        .read_wstring(a, MAX_TEXT)
        .filter(|s| plausible(s))
}

fn ansi_text(ev: &Evidence, a: u64) -> Option<String> {
    ev.target()
        .memory()
        .read_cstring(a, MAX_TEXT)
        .filter(|s| s.is_ascii() && plausible(s))
}

fn text_at(ev: &Evidence, a: u64) -> Option<String> {
    ansi_text(ev, a).or_else(|| wide_text(ev, a))
}

/// (text, caption) from a MSGBOXPARAMSW (or A) structure between `low` and `high` on the stack.
fn message_box_params(ev: &Evidence, low: u64, high: u64, p: u64) -> Option<(String, String)> {
    let mem = ev.target().memory();
    // winuser.h MSGBOXPARAMS: cbSize (UINT), hwndOwner, hInstance, lpszText, lpszCaption, ...
    let size: u32 = if p == 8 { 0x50 } else { 0x28 };
    let mut a = low;
    while a < high {
        if mem.read_u32(a) == Some(size) {
            let field = |i: u64| mem.read_ptr(a.wrapping_add(p * i), p);
            if let (Some(text), Some(caption)) = (field(3), field(4)) {
                let wide = wide_text(ev, text).zip(wide_text(ev, caption));
                if let Some(found) =
                    wide.or_else(|| ansi_text(ev, text).zip(ansi_text(ev, caption)))
                {
                    return Some(found);
                }
            }
        }
        a = a.saturating_add(p);
    }
    None
}

/// Strings the stack points to between `low` and `high` (at most four, first seen first).
fn stack_strings(ev: &Evidence, t: &ThreadView, low: u64, high: u64) -> Vec<String> {
    let p = t.ptr();
    let mut strings: Vec<String> = Vec::new();
    let mut a = low;
    while a < high && strings.len() < 4 {
        if let Some(s) = ev
            .target()
            .memory()
            .read_ptr(a, p)
            .filter(|&v| v > 0x10000)
            .and_then(|v| text_at(ev, v))
        {
            if !strings.contains(&s) {
                strings.push(s);
            }
        }
        a = a.saturating_add(p);
    }
    strings
}

impl Detector for MessageBox {
    fn pattern(&self) -> Pattern {
        Pattern::MessageBox
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let mut out = Vec::new();
        for t in &ev.threads {
            let Some(pos) = t.frames.iter().position(|f| {
                f.short_name().is_some_and(|n| {
                    n.starts_with("MessageBox") || n.starts_with("SoftModalMessageBox")
                })
            }) else {
                continue;
            };
            // The structure and the strings lie between the top of the stack and a little past
            // the MessageBox frame (its caller's frame holds MessageBoxA's own locals).
            let sp = t.sp().unwrap_or(0);
            let high = t
                .stack
                .as_ref()
                .and_then(|s| s.frames.get(pos + 1))
                .map_or(sp.saturating_add(0x1000), |f| f.sp.saturating_add(0x400));

            let caller = t
                .frames
                .iter()
                .skip(pos + 1)
                .find(|f| f.module.as_deref().is_some_and(|m| ev.is_app_module(m)))
                .map(|f| f.call_site())
                .unwrap_or_else(|| "unknown".into());
            let mut facts = vec![Fact::Thread {
                id: t.id,
                note: format!(
                    "thread {:x} in {} called from {caller}",
                    t.id,
                    t.frames[pos].call_site()
                ),
            }];
            let finding = match message_box_params(ev, sp, high, t.ptr()) {
                Some((text, caption)) => {
                    facts.push(Fact::Note(format!("caption: \"{caption}\"")));
                    facts.push(Fact::Note(format!("text: \"{text}\"")));
                    Finding::new(
                        self.pattern(),
                        Strength::Proven,
                        format!("thread {:x} shows a message box: \"{text}\"", t.id),
                    )
                }
                None => {
                    let strings = stack_strings(ev, t, sp, high);
                    facts.extend(
                        strings
                            .iter()
                            .map(|s| Fact::Note(format!("text on the stack: \"{s}\""))),
                    );
                    // Without the parameter structure, the longest string stands in for the text.
                    let text = strings.iter().max_by_key(|s| s.len());
                    Finding::new(
                        self.pattern(),
                        Strength::Proven,
                        format!(
                            "thread {:x} shows a message box{}",
                            t.id,
                            text.map(|s| format!(": \"{s}\"")).unwrap_or_default()
                        ),
                    )
                    .caveat(Caveat::MissingMemory(
                        "the MessageBox parameter block: the text is a guess from stack strings"
                            .into(),
                    ))
                }
            };
            out.push(finding.threads(vec![t.id]).facts(facts).recommend(
                "The process waits for a user to answer a message box; read it, and avoid \
                         modal UI on threads that must not block (services, background work).",
            ));
        }
        out
    }
}
