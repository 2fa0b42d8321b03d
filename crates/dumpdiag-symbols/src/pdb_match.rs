//! Whether a PDB belongs to an image, decided as WinDbg (dbghelp) decides it, and what a refused
//! PDB tells about the build that ran.
//!
//! An image names its PDB in the CodeView record of its debug directory: a PDB 7.0 record
//! (`RSDS`) by GUID and age, a PDB 2.0 record (`NB10`) by signature and age. A PDB matches when
//! its GUID (or signature) is the image's AND its age is the image's, where the PDB's age is
//! the one the linker wrote with the image: the DBI stream's. The PDB info stream carries an
//! age too, but every tool that rewrites the file bumps it (it is at least the DBI age), so it
//! is not compared; it is read only when the DBI stream has no age (old PDBs). A PDB that does
//! not match is refused (the module keeps its export symbols) unless `.reload /i` asks for it
//! anyway, and either way the mismatch is kept, typed, for `lm`, `!lmi` and the analysis.

use std::fmt;
use std::path::Path;

use dumpdiag_target::CodeViewRecord;
use pdb_addr2line::pdb;

/// What identifies a PDB file, read from its info and DBI stream headers only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PdbIdentity {
    /// The GUID (all zero in a PDB 2.0 file), in the byte order of a CodeView record.
    pub guid: [u8; 16],
    /// The PDB info stream's signature (a PDB 2.0 file's identity, a time stamp).
    pub signature: u32,
    /// The age WinDbg compares: the DBI stream's (the info stream's when the DBI has none).
    pub age: u32,
    /// The PDB info stream's age, which tools that rewrite the file bump past `age`.
    pub info_age: u32,
}

/// The bytes of a GUID as a CodeView record stores them (Data1-3 little-endian).
pub(crate) fn guid_bytes(g: &uuid::Uuid) -> [u8; 16] {
    let (d1, d2, d3, d4) = g.as_fields();
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&d1.to_le_bytes());
    b[4..6].copy_from_slice(&d2.to_le_bytes());
    b[6..8].copy_from_slice(&d3.to_le_bytes());
    b[8..].copy_from_slice(d4);
    b
}

impl PdbIdentity {
    /// Read a PDB's identity without indexing the rest of it (cheap: two stream headers).
    pub fn read(path: &Path) -> Result<PdbIdentity, String> {
        crate::contain::contain(|| {
            let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
            let mut pdb = pdb::PDB::open(file).map_err(|e| e.to_string())?;
            Self::of(&mut pdb)
        })?
    }

    /// The identity of an open PDB.
    pub(crate) fn of<'s, S: pdb::Source<'s> + 's>(
        pdb: &mut pdb::PDB<'s, S>,
    ) -> Result<PdbIdentity, String> {
        let info = pdb.pdb_information().map_err(|e| e.to_string())?;
        let dbi_age = pdb.debug_information().ok().and_then(|d| d.age());
        Ok(PdbIdentity {
            guid: guid_bytes(&info.guid),
            signature: info.signature,
            age: dbi_age.unwrap_or(info.age),
            info_age: info.age,
        })
    }

    /// The symbol-store id this PDB would be filed under for an image of `cv`'s kind.
    pub fn store_id(&self, cv: &CodeViewRecord) -> String {
        let as_record = match cv {
            CodeViewRecord::Pdb20 { .. } => CodeViewRecord::Pdb20 {
                signature: self.signature,
                age: self.age,
                pdb_name: String::new(),
            },
            _ => CodeViewRecord::Pdb70 {
                guid: self.guid,
                age: self.age,
                pdb_name: String::new(),
            },
        };
        as_record.pdb_id().unwrap_or_default()
    }
}

/// Why a PDB was refused for an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MismatchReason {
    /// PDB 7.0: the GUIDs differ — the PDB of another build.
    Guid,
    /// PDB 2.0: the signatures differ — the PDB of another build.
    Signature,
    /// Same GUID (or signature), other age: the PDB was written again after the image was
    /// linked (a later incremental link, or a tool that rewrote it).
    Age { image: u32, pdb: u32 },
    /// The image's CodeView record names no PDB by GUID or signature.
    NoIdentity,
}

/// Does the PDB `pdb` belong to the image whose CodeView record is `cv`?
pub fn check(cv: &CodeViewRecord, pdb: &PdbIdentity) -> Result<(), MismatchReason> {
    let (same_build, image_age) = match cv {
        CodeViewRecord::Pdb70 { guid, age, .. } => (*guid == pdb.guid, *age),
        CodeViewRecord::Pdb20 { signature, age, .. } => (*signature == pdb.signature, *age),
        CodeViewRecord::Other { .. } => return Err(MismatchReason::NoIdentity),
    };
    if !same_build {
        return Err(match cv {
            CodeViewRecord::Pdb20 { .. } => MismatchReason::Signature,
            _ => MismatchReason::Guid,
        });
    }
    if image_age != pdb.age {
        return Err(MismatchReason::Age {
            image: image_age,
            pdb: pdb.age,
        });
    }
    Ok(())
}

/// A PDB found under a module's PDB name that is not the module's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdbMismatch {
    /// Where the PDB was found.
    pub path: String,
    /// The image's symbol-store id (GUID or signature, then age).
    pub expected: String,
    /// The PDB's, spelled the same way.
    pub found: String,
    pub reason: MismatchReason,
    /// Loaded anyway (`.reload /i`): the module's names come from it and may be wrong.
    pub loaded: bool,
}

impl PdbMismatch {
    pub(crate) fn new(
        path: &Path,
        cv: &CodeViewRecord,
        pdb: &PdbIdentity,
        reason: MismatchReason,
    ) -> PdbMismatch {
        PdbMismatch {
            path: path.display().to_string(),
            expected: cv.pdb_id().unwrap_or_default(),
            found: pdb.store_id(cv),
            reason,
            loaded: false,
        }
    }

    /// Is the PDB another build's (not merely another link of the same one)?
    pub fn another_build(&self) -> bool {
        !matches!(self.reason, MismatchReason::Age { .. })
    }
}

impl fmt::Display for MismatchReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MismatchReason::Guid => f.write_str("another GUID: another build's PDB"),
            MismatchReason::Signature => f.write_str("another signature: another build's PDB"),
            MismatchReason::Age { image, pdb } => write!(
                f,
                "same GUID, but the PDB's age is {pdb} where the image's is {image}: the PDB \
                 was written again after this image was linked"
            ),
            MismatchReason::NoIdentity => f.write_str("the image names no PDB identity"),
        }
    }
}

impl fmt::Display for PdbMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is {}, the image expects {} ({})",
            self.path, self.found, self.expected, self.reason
        )?;
        if self.loaded {
            f.write_str("; loaded anyway by .reload /i: names and lines may be wrong")?;
        }
        Ok(())
    }
}

/// Why a PDB file on the symbol path was not taken for a module.
pub(crate) enum Refused {
    /// It is another build's or another link's PDB.
    Mismatch(PdbMismatch),
    /// It cannot be read as a PDB.
    Unreadable,
}

/// Open `path` as the PDB of the image whose CodeView record is `cv`, if it is that image's.
pub(crate) fn open_matching(
    path: &Path,
    cv: &CodeViewRecord,
) -> Result<crate::pdb::PdbSymbols, Refused> {
    let identity = PdbIdentity::read(path).map_err(|_| Refused::Unreadable)?;
    check(cv, &identity)
        .map_err(|reason| Refused::Mismatch(PdbMismatch::new(path, cv, &identity, reason)))?;
    crate::pdb::PdbSymbols::open(path).map_err(|_| Refused::Unreadable)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUID: [u8; 16] = [7; 16];

    fn rsds(age: u32) -> CodeViewRecord {
        CodeViewRecord::Pdb70 {
            guid: GUID,
            age,
            pdb_name: "a.pdb".into(),
        }
    }

    fn pdb(guid: [u8; 16], age: u32, info_age: u32) -> PdbIdentity {
        PdbIdentity {
            guid,
            signature: 0x5dde6bd0,
            age,
            info_age,
        }
    }

    #[test]
    fn a_pdb_70_matches_by_guid_and_the_dbi_age() {
        assert_eq!(check(&rsds(1), &pdb(GUID, 1, 1)), Ok(()));
        // A tool rewrote the file: the info stream's age moved on, the DBI's did not.
        assert_eq!(check(&rsds(1), &pdb(GUID, 1, 3)), Ok(()));
        assert_eq!(
            check(&rsds(1), &pdb(GUID, 2, 2)),
            Err(MismatchReason::Age { image: 1, pdb: 2 })
        );
        assert_eq!(
            check(&rsds(1), &pdb([8; 16], 1, 1)),
            Err(MismatchReason::Guid)
        );
    }

    #[test]
    fn a_pdb_20_matches_by_signature_and_age() {
        let nb10 = |signature, age| CodeViewRecord::Pdb20 {
            signature,
            age,
            pdb_name: "old.pdb".into(),
        };
        let p = pdb([0; 16], 2, 2);
        assert_eq!(check(&nb10(0x5dde6bd0, 2), &p), Ok(()));
        assert_eq!(
            check(&nb10(0x5dde6bd1, 2), &p),
            Err(MismatchReason::Signature)
        );
        assert_eq!(
            check(&nb10(0x5dde6bd0, 1), &p),
            Err(MismatchReason::Age { image: 1, pdb: 2 })
        );
        assert_eq!(p.store_id(&nb10(0, 0)), "5DDE6BD02");
    }
}
