//! Running the PDB parser over untrusted bytes without letting its panics out. `pdb2` asserts
//! on some malformed records (an LF_VTSHAPE descriptor above 7, a pointer kind above 0x0c, an
//! LF_VFTABLE whose names overrun, an index below the stream's first that is no primitive, an
//! empty record): a hostile PDB must cost the command its answer, not the session.

/// Run `f`; a panic inside it becomes `None`, and its message is not printed (other panics
/// still reach the panic hook that was installed before). The containment is
/// [`crate::contain`]'s, which the symbol readers share.
pub(crate) fn contained<R>(f: impl FnOnce() -> R) -> Option<R> {
    crate::contain::contain(f).ok()
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
