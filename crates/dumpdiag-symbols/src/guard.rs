//! Running the PDB parser over untrusted bytes without letting its panics out. `pdb2` asserts
//! on some malformed records (an LF_VTSHAPE descriptor above 7, a pointer kind above 0x0c, an
//! LF_VFTABLE whose names overrun, an index below the stream's first that is no primitive, an
//! empty record): a hostile PDB must cost the command its answer, not the session.

use std::cell::Cell;
use std::sync::Once;

thread_local! {
    /// How many [`contained`] calls this thread is inside: their panics are not reported.
    static QUIET: Cell<u32> = const { Cell::new(0) };
}

/// Run `f`; a panic inside it becomes `None`, and its message is not printed (other panics
/// still reach the panic hook that was installed before).
pub fn contained<R>(f: impl FnOnce() -> R) -> Option<R> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if QUIET.with(Cell::get) == 0 {
                previous(info)
            }
        }));
    });
    QUIET.with(|q| q.set(q.get() + 1));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.with(|q| q.set(q.get() - 1));
    r.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_inside_becomes_none_and_values_pass_through() {
        assert_eq!(contained(|| 7), Some(7));
        let v: Vec<u8> = Vec::new();
        assert_eq!(contained(|| v[3]), None);
        // Nested calls keep the outer one quiet too.
        assert_eq!(contained(|| contained(|| v[1]).is_none()), Some(true));
    }
}
