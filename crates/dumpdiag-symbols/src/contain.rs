//! Containment for the PDB readers: `pdb2` (under `pdb-addr2line`) indexes slices with
//! offsets read from the file and panics on some hostile PDBs (a named-stream table whose
//! name offsets lie past its names, found by fuzzing). A PDB on the symbol path, or from a
//! symbol server, is input like the dump: its reader's panic means "this file is unreadable",
//! not "stop the debugger". Relies on unwinding panics (the workspace's profiles keep them).

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

thread_local! {
    /// How many [`contain`] calls this thread is inside: their panics print nothing.
    static QUIET: Cell<u32> = const { Cell::new(0) };
}

/// Put a panic hook before the current one that keeps contained panics quiet (the message
/// becomes the error instead) and hands every other panic on.
fn quiet_contained_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if QUIET.with(Cell::get) == 0 {
                previous(info);
            }
        }));
    });
}

/// Run `f`, a call into the PDB readers; a panic inside comes back as `Err` with its message.
pub(crate) fn contain<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    quiet_contained_panics();
    QUIET.with(|q| q.set(q.get() + 1));
    let r = catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(q.get() - 1));
    r.map_err(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        format!("the PDB reader failed on this file ({what})")
    })
}
