//! Not My Version: modules whose build is not the one the evidence expects — a PDB on the symbol
//! path from another build of the image (refused, as WinDbg refuses it), or modules of one
//! product (same company and product name) carrying different product versions, a sign of a
//! partial update or a private copy of a component.

use std::collections::BTreeMap;

use crate::{Detector, Evidence, Finding, Pattern, Strength};
use dumpdiag_os::pe;

pub struct NotMyVersion;

impl Detector for NotMyVersion {
    fn pattern(&self) -> Pattern {
        Pattern::NotMyVersion
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let t = ev.target();
        let mut evidence = Vec::new();
        // Symbols are loaded for the image and every module on a stack; a refused PDB shows there.
        let symbols = ev.symbols;

        if !t.modules().is_empty() {
            let _ = symbols.module(t, 0);
        }
        for (i, m) in t.modules().iter().enumerate() {
            if let Some(found) = symbols.pdb_mismatch(i) {
                evidence.push(format!(
                    "{}: PDB from another build: {found}",
                    m.short_name()
                ));
            }
        }
        let mismatched_pdbs = evidence.len();
        evidence.extend(mixed_product_versions(ev));
        if evidence.is_empty() {
            return Vec::new();
        }
        let summary = if mismatched_pdbs > 0 {
            format!("{mismatched_pdbs} module(s) have PDBs from another build on the symbol path")
        } else {
            "modules of one product carry different versions".to_string()
        };
        vec![Finding::new(self.pattern(), Strength::Proven, summary)
            .notes(evidence)
            .recommend("Get the symbols and binaries of the exact build that ran (its PDB GUID and age, its file versions) — a symbol server fed by the build system keeps them; names from another build are wrong names.")]
    }
}

/// Modules grouped by (CompanyName, ProductName) from their version resources, where a group
/// holds more than one ProductVersion. Needs the resources in the dump (full-memory dumps).
fn mixed_product_versions(ev: &Evidence) -> Vec<String> {
    let t = ev.target();
    let mem = t.memory();
    let mut products: BTreeMap<(String, String), Vec<(String, String)>> = BTreeMap::new();
    for m in t.modules() {
        let Some(strings) =
            pe::read_headers(mem, m.base).and_then(|h| pe::version_strings(mem, &h))
        else {
            continue;
        };
        let get = |k: &str| {
            strings
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        if let (Some(company), Some(product), Some(version)) = (
            get("CompanyName"),
            get("ProductName"),
            get("ProductVersion"),
        ) {
            products
                .entry((company, product))
                .or_default()
                .push((m.short_name(), version));
        }
    }
    let mut out = Vec::new();
    for ((company, product), mods) in products {
        let mut versions: Vec<&str> = mods.iter().map(|m| m.1.as_str()).collect();
        versions.sort_unstable();
        versions.dedup();
        // Windows itself ships components of many versions under one product name.
        if versions.len() < 2 || product.contains("Operating System") || product.contains("Wine") {
            continue;
        }
        let list: Vec<String> = mods.iter().map(|(n, v)| format!("{n} {v}")).collect();
        out.push(format!(
            "{company} {product} in {} versions: {}",
            versions.len(),
            list.join(", ")
        ));
    }
    out
}
