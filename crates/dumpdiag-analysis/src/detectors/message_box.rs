//! Message Box: a thread inside user32!MessageBox*, with the caption and text it shows.

use crate::{Detector, Evidence, Finding};
use dumpdiag_target::MemoryExt;

pub struct MessageBox;

/// Printable text of at least 3 characters at `a`, as ANSI or UTF-16.
fn text_at(ev: &Evidence, a: u64) -> Option<String> {
    let mem = ev.target().memory();
    // Message text is printable; code and binary data decoded as text are not.
    let plausible = |s: &str| {
        s.chars().count() >= 3
            && s.chars().all(|c| {
                (' '..='~').contains(&c)
                    || c == '\n'
                    || c == '\r'
                    || c == '\t'
                    || (c as u32 >= 0xa0 && (c as u32) < 0x2000)
            })
            && s.chars().any(|c| c.is_alphabetic())
    };
    let ascii = mem
        .read_cstring(a, 512)
        .filter(|s| plausible(s) && s.is_ascii());
    let wide = || mem.read_wstring(a, 512).filter(|s| plausible(s));
    ascii.or_else(wide)
}

impl Detector for MessageBox {
    fn pattern(&self) -> &'static str {
        "Message Box"
    }
    fn category(&self) -> &'static str {
        "Thread"
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let mut out = Vec::new();
        for t in &ev.threads {
            let Some(pos) = t.frames.iter().position(|f| {
                f.function.as_deref().is_some_and(|n| {
                    n.starts_with("MessageBox") || n.starts_with("SoftModalMessageBox")
                })
            }) else {
                continue;
            };
            // The strings the call was given are pointed to from the stack between the top of
            // the stack and the MessageBox frame (saved arguments, MSGBOXPARAMS).
            let sp = ev
                .session
                .thread_context(t.index)
                .map(|c| c.sp())
                .unwrap_or(0);
            let outer = t
                .frames
                .iter()
                .nth(pos + 1)
                .map(|_| sp + 0x1000)
                .unwrap_or(sp + 0x400);
            let mut strings: Vec<String> = Vec::new();
            let mut a = sp;
            while a < outer && strings.len() < 4 {
                if let Some(p) = ev.target().memory().read_ptr(a, ev.ptr) {
                    if p > 0x10000 {
                        if let Some(s) = text_at(ev, p) {
                            if !strings.contains(&s) {
                                strings.push(s);
                            }
                        }
                    }
                }
                a += ev.ptr;
            }
            let caller = t
                .frames
                .iter()
                .skip(pos + 1)
                .find(|f| f.module.as_deref().is_some_and(|m| ev.is_app_module(m)))
                .map(|f| f.call_site())
                .unwrap_or_else(|| "unknown".into());
            let mut evidence = vec![format!(
                "thread {:x} in {} called from {caller}",
                t.id,
                t.frames[pos].call_site()
            )];
            evidence.extend(
                strings
                    .iter()
                    .map(|s| format!("text on the stack: \"{s}\"")),
            );
            out.push(
                // The message text is usually the longest of the strings found.
                Finding::new(self.pattern(), self.category(), "high", format!("thread {:x} shows a message box{}", t.id, strings.iter().max_by_key(|s| s.len()).map(|s| format!(": \"{s}\"")).unwrap_or_default()))
                    .threads(vec![t.id])
                    .evidence(evidence)
                    .recommend("The process waits for a user to answer a message box; read it, and avoid modal UI on threads that must not block (services, background work)."),
            );
        }
        out
    }
}
