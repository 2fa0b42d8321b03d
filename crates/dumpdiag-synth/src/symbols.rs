//! Breakpad symbols of the synthetic modules: one `.sym` text per module with a CodeView
//! identity (MODULE line with the RSDS id, FUNC and PUBLIC records, STACK CFI on x64 and
//! STACK WIN on x86 describing the same frames as the code and its unwind data), and the
//! symbol-store layout `name.pdb/ID/name.sym` that a symbol path directory is searched in.

use std::path::{Path, PathBuf};

use dumpdiag_target::CodeViewRecord;

use crate::process::ModuleData;

/// One module's Breakpad symbol file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolFile {
    /// The module's path.
    pub module: String,
    /// The PDB file name the CodeView record names ("app.pdb").
    pub pdb_name: String,
    /// The symbol-store id: GUID and age as a symbol server spells them.
    pub id: String,
    /// The `.sym` text.
    pub text: String,
}

impl SymbolFile {
    pub(crate) fn new(
        m: &ModuleData,
        guid: [u8; 16],
        age: u32,
        pdb: &str,
        x64: bool,
        size_of_image: u32,
    ) -> SymbolFile {
        let cv = CodeViewRecord::Pdb70 {
            guid,
            age,
            pdb_name: pdb.into(),
        };
        let id = cv.pdb_id().expect("an RSDS record has an id");
        let pdb_name = dumpdiag_target::file_name_of(pdb).to_string();
        let mut t = format!(
            "MODULE windows {} {id} {pdb_name}\nINFO CODE_ID {:08X}{size_of_image:x} {}\n",
            if x64 { "x86_64" } else { "x86" },
            m.time_date_stamp,
            m.spec.file_name()
        );
        let mut funcs: Vec<_> = m.functions.iter().collect();
        funcs.sort_by_key(|f| f.rva);
        for f in &funcs {
            t.push_str(&format!("FUNC {:x} {:x} 0 {}\n", f.rva, f.size, f.name));
        }
        for (name, rva, _) in &m.globals {
            t.push_str(&format!("PUBLIC {rva:x} 0 {name}\n"));
        }
        for f in &funcs {
            if x64 {
                for line in f.code.cfi(f.rva, f.size) {
                    t.push_str(&line);
                    t.push('\n');
                }
            } else {
                t.push_str(&f.code.stack_win(f.rva, f.size));
                t.push('\n');
            }
        }
        SymbolFile {
            module: m.spec.path.clone(),
            pdb_name,
            id,
            text: t,
        }
    }

    /// `name.pdb/ID/name.sym` under a store directory.
    pub fn store_path(&self, dir: &Path) -> PathBuf {
        let stem = match self.pdb_name.rfind('.') {
            Some(i) => &self.pdb_name[..i],
            None => &self.pdb_name,
        };
        dir.join(&self.pdb_name)
            .join(&self.id)
            .join(format!("{stem}.sym"))
    }
}

/// Write `files` as a symbol store under `dir`.
pub fn write_store(dir: &Path, files: &[SymbolFile]) -> std::io::Result<()> {
    for f in files {
        let path = f.store_path(dir);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, &f.text)?;
    }
    Ok(())
}

/// A symbol store in a fresh temporary directory, removed when dropped.
#[derive(Debug)]
pub struct SymbolStore {
    dir: PathBuf,
}

impl SymbolStore {
    /// Write `files` into a new directory under the system's temporary directory.
    pub fn new(files: &[SymbolFile]) -> std::io::Result<SymbolStore> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "dumpdiag-synth-{}-{}-{nanos:x}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        write_store(&dir, files)?;
        Ok(SymbolStore { dir })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The directory as a symbol path string (`Session::set_symbol_path`).
    pub fn symbol_path(&self) -> String {
        self.dir.display().to_string()
    }
}

impl Drop for SymbolStore {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
