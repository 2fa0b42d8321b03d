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

use crate::{silent, Caveat, Detector, Evidence, Fact, Finding, Pattern, Strength, ThreadView};

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
        if out.is_empty() {
            silent!("no thread is inside user32!MessageBox* or SoftModalMessageBox");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::Analysed;
    use crate::Confidence;
    use dumpdiag_synth::{Func, Function, Module, Process};
    use dumpdiag_target::Arch;

    const TEXT: &str = "Do you want to save the changes to report.docx?";
    const CAPTION: &str = "Editor";
    /// A path a local of the modal loop points to: longer than the text, so a guess from
    /// stack strings would take it.
    const DECOY: &str = "C:\\Users\\test\\Documents\\Drafts\\report-final-version-2.docx";

    struct Gui {
        p: Process,
        /// win32u!NtUserWaitMessage, user32!DialogBox2, SoftModalMessageBox, MessageBoxWorker,
        /// MessageBoxTimeoutW, MessageBoxW, MessageBoxA, GetMessageW.
        user: [Func; 8],
        /// editor!confirm_save, editor!message_loop, editor!main, the thread-start frames.
        app: [Func; 5],
        strings: [u64; 3],
    }

    fn gui(arch: Arch) -> Gui {
        let mut p = Process::new(arch);
        let app = p.module(Module::new("C:\\app\\editor.exe"));
        let ntdll = p.module(Module::new("C:\\Windows\\System32\\ntdll.dll"));
        let kernel32 = p.module(Module::new("C:\\Windows\\System32\\kernel32.dll"));
        let user32 = p.module(Module::new("C:\\Windows\\System32\\user32.dll"));
        let win32u = p.module(Module::new("C:\\Windows\\System32\\win32u.dll"));
        let user = [
            p.add_function(win32u, Function::syscall("NtUserWaitMessage", 0x1008)),
            p.function(user32, "DialogBox2", 0x80),
            p.function(user32, "SoftModalMessageBox", 0x80),
            p.function(user32, "MessageBoxWorker", 0x80),
            // MessageBoxTimeoutW builds the MSGBOXPARAMSW in its locals.
            p.add_function(
                user32,
                Function::new("MessageBoxTimeoutW", 0x80).locals(0x80),
            ),
            p.function(user32, "MessageBoxW", 0x80),
            p.function(user32, "MessageBoxA", 0x80),
            p.function(user32, "GetMessageW", 0x80),
        ];
        let apps = [
            p.function(app, "confirm_save", 0x80),
            p.function(app, "message_loop", 0x80),
            p.function(app, "main", 0x80),
            p.function(kernel32, "BaseThreadInitThunk", 0x40),
            p.function(ntdll, "RtlUserThreadStart", 0x40),
        ];
        let heap = p.process_heap();
        let text = p.heap_alloc(heap, 0x100);
        p.write_utf16(text, TEXT);
        let caption = p.heap_alloc(heap, 0x20);
        p.write_utf16(caption, CAPTION);
        let decoy = p.heap_alloc(heap, 0x100);
        p.write(decoy, &[DECOY.as_bytes(), &[0]].concat());
        Gui {
            p,
            user,
            app: apps,
            strings: [text, caption, decoy],
        }
    }

    /// winuser.h MSGBOXPARAMSW of pointer size `ptr`: cbSize (UINT, padded to a pointer on
    /// x64), hwndOwner, hInstance, lpszText, lpszCaption, dwStyle, lpszIcon, dwContextHelpId,
    /// lpfnMsgBoxCallback, dwLanguageId — 0x50 bytes on x64, 0x28 on x86.
    fn msgboxparams(cb_size: u32, ptr: u64, text: u64, caption: u64) -> Vec<u8> {
        let mut b = vec![0u8; if ptr == 8 { 0x50 } else { 0x28 }];
        let mut put = |i: u64, v: u64| {
            let at = (i * ptr) as usize;
            b[at..at + ptr as usize].copy_from_slice(&v.to_le_bytes()[..ptr as usize]);
        };
        put(1, 0x0002_0a3c); // hwndOwner
        put(3, text);
        put(4, caption);
        put(5, 0x33); // MB_YESNOCANCEL | MB_ICONWARNING
        b[..4].copy_from_slice(&cb_size.to_le_bytes());
        b
    }

    /// Thread 0x100 in the MessageBoxW modal loop, with `params` in MessageBoxTimeoutW's
    /// locals and the decoy pointer in DialogBox2's.
    fn in_message_box(arch: Arch, params: impl Fn(u64, &[u64; 3]) -> Vec<u8>) -> Analysed {
        let mut g = gui(arch);
        let [wait, dialog, soft, worker, timeout, msgbox_w, ..] = g.user;
        let [confirm, _, main, thunk, start] = g.app;
        let chain = [
            wait, dialog, soft, worker, timeout, msgbox_w, confirm, main, thunk, start,
        ];
        let ptr = g.p.ptr();
        let bytes = params(ptr, &g.strings);
        let t = g.p.thread(0x100, chain);
        t.local(4, 0x10, &bytes);
        t.local_word(1, 0, g.strings[2]);
        Analysed::exports_only(g.p)
    }

    #[test]
    fn the_text_and_caption_come_from_the_msgboxparams_on_the_stack() {
        for (arch, cb_size) in [(Arch::Amd64, 0x50), (Arch::X86, 0x28)] {
            let a = in_message_box(arch, |ptr, s| msgboxparams(cb_size, ptr, s[0], s[1]));
            let found = a.detect(&MessageBox);
            assert_eq!(found.len(), 1, "{arch:?}");
            let f = &found[0];
            assert_eq!(
                f.summary,
                format!("thread 100 shows a message box: \"{TEXT}\"")
            );
            assert_eq!(f.threads, vec![0x100]);
            assert_eq!(
                f.evidence(),
                vec![
                    "thread 100 in user32!SoftModalMessageBox called from editor!confirm_save"
                        .to_string(),
                    format!("caption: \"{CAPTION}\""),
                    format!("text: \"{TEXT}\""),
                ],
                "{arch:?}"
            );
            assert_eq!(f.confidence(), Confidence::High, "{arch:?}");
        }
    }

    #[test]
    fn a_structure_of_the_other_bitness_is_not_taken_for_the_parameters() {
        // On x64, a block shaped as the x86 MSGBOXPARAMSW (cbSize 0x28, 4-byte fields) is not
        // one: the strings are then only a guess, and the longest string on the stack wins.
        let a = in_message_box(Arch::Amd64, |_, s| {
            let mut b = msgboxparams(0x28, 4, s[0], s[1]);
            b.resize(0x50, 0);
            b
        });
        let found = a.detect(&MessageBox);
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].summary,
            format!("thread 100 shows a message box: \"{DECOY}\"")
        );
        assert_eq!(found[0].confidence(), Confidence::Medium);
        assert!(matches!(found[0].caveats[..], [Caveat::MissingMemory(_)]));
    }

    #[test]
    fn without_the_structure_the_strings_on_the_stack_stand_in() {
        for arch in [Arch::Amd64, Arch::X86] {
            let mut g = gui(arch);
            let [wait, _, soft, _, _, _, msgbox_a, _] = g.user;
            let [confirm, _, main, thunk, start] = g.app;
            // MessageBoxA(hwnd, "Disk is full...", "Editor", MB_ICONERROR): the arguments on
            // the stack (x86) or in the home slots (x64), no MSGBOXPARAMS in the dump.
            let heap = g.p.process_heap();
            let text = g.p.heap_alloc(heap, 0x40);
            g.p.write(text, b"Disk is full: the file was not saved.\0");
            let caption = g.p.heap_alloc(heap, 0x10);
            g.p.write(caption, b"Editor\0");
            g.p.thread(0x100, [wait, soft, msgbox_a, confirm, main, thunk, start])
                .args(2, &[0x0002_0a3c, text, caption, 0x10]);
            let found = Analysed::exports_only(g.p).detect(&MessageBox);
            assert_eq!(found.len(), 1, "{arch:?}");
            let f = &found[0];
            assert_eq!(
                f.summary,
                "thread 100 shows a message box: \"Disk is full: the file was not saved.\""
            );
            let evidence = f.evidence();
            assert!(
                evidence.contains(&"text on the stack: \"Editor\"".to_string()),
                "{arch:?}: {evidence:?}"
            );
            assert_eq!(f.confidence(), Confidence::Medium, "{arch:?}");
        }
    }

    #[test]
    fn a_thread_waiting_for_messages_outside_a_message_box_is_none() {
        for arch in [Arch::Amd64, Arch::X86] {
            let mut g = gui(arch);
            let get = g.user[7];
            let [_, pump, main, thunk, start] = g.app;
            let ptr = g.p.ptr();
            let [text, caption, decoy] = g.strings;
            // The same strings, even a MSGBOXPARAMSW, on a GetMessageW loop's stack.
            let bytes = msgboxparams(if ptr == 8 { 0x50 } else { 0x28 }, ptr, text, caption);
            let t =
                g.p.thread(0x100, [g.user[0], get, pump, main, thunk, start]);
            t.below_sp(&bytes);
            t.local_word(1, 0, decoy);
            assert!(
                Analysed::exports_only(g.p).detect(&MessageBox).is_empty(),
                "{arch:?}"
            );
        }
    }
}
