//! Was the dump written by Wine? Wine is how this project makes its scenario dumps, and its
//! dump writer and runtime differ from Windows in a few ways the analysis must not mistake for
//! the application's doing (the writer records the exception's context for the thread that
//! calls MiniDumpWriteDump, records no context for itself, and Wine's own exception handler
//! frames appear where Windows has none). Every such allowance asks this one question, so none
//! of them can shape a rule for dumps written by Windows.

use dumpdiag_target::Target;

/// Wine's dbghelp writes a private stream of this type into every dump (its module list with
/// the unix-side file names); Windows' writers never do.
const WINE_PRIVATE_STREAM: u32 = 0xfff0;

/// The dump was written by Wine's dbghelp.
pub fn written_by_wine(target: &dyn Target) -> bool {
    target
        .streams()
        .iter()
        .any(|s| s.stream_type == WINE_PRIVATE_STREAM)
}
