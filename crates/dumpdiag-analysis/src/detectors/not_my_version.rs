//! Not My Version: modules whose build is not the one the evidence expects — a PDB on the symbol
//! path from another build of the image, or from another link of it (GUID or age differ; refused
//! as WinDbg refuses it, or loaded anyway by `.reload /i`), or modules of one
//! product (same company and product name) carrying different product versions, a sign of a
//! partial update or a private copy of a component.

use std::collections::BTreeMap;

use crate::silent;
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
                let what = if found.another_build() {
                    "PDB from another build"
                } else {
                    "PDB from another link of this build"
                };
                evidence.push(format!("{}: {what}: {found}", m.short_name()));
            }
        }
        let mismatched_pdbs = evidence.len();
        evidence.extend(mixed_product_versions(ev));
        if evidence.is_empty() {
            silent!("no PDB from another build, and each product's modules carry one version");
        }
        let summary = if mismatched_pdbs > 0 {
            format!(
                "{mismatched_pdbs} module(s) have PDBs from another build or link on the symbol path"
            )
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::Analysed;
    use crate::Confidence;
    use dumpdiag_synth::{Module, Process, Version};
    use dumpdiag_target::Arch;

    fn version(company: &str, product: &str, product_version: &str) -> Version {
        Version::new(1, 0, 0, 0)
            .string("CompanyName", company)
            .string("ProductName", product)
            .string("ProductVersion", product_version)
    }

    const WINDOWS: &str = "Microsoft® Windows® Operating System";

    /// A process of `modules` (the first is the image) with one thread in the image.
    fn process(arch: Arch, modules: &[Module]) -> Process {
        let mut p = Process::new(arch);
        let ids: Vec<_> = modules.iter().map(|m| p.module(m.clone())).collect();
        let main = p.function(ids[0], "main", 0x80);
        p.thread(0x10, [main]);
        p
    }

    #[test]
    fn one_product_in_two_versions_is_not_my_version() {
        // A partial update: the image is 2.1, its engine DLL still 2.0.5.
        for arch in [Arch::Amd64, Arch::X86] {
            let p = process(
                arch,
                &[
                    Module::new("C:\\Program Files\\Contoso\\widgets.exe").version(version(
                        "Contoso Ltd",
                        "Widgets",
                        "2.1.0.0",
                    )),
                    Module::new("C:\\Program Files\\Contoso\\engine.dll").version(version(
                        "Contoso Ltd",
                        "Widgets",
                        "2.0.5.0",
                    )),
                    Module::new("C:\\Windows\\System32\\ntdll.dll").version(version(
                        "Microsoft Corporation",
                        WINDOWS,
                        "10.0.19041.3636",
                    )),
                ],
            );
            let found = Analysed::exports_only(p).detect(&NotMyVersion);
            assert_eq!(found.len(), 1, "{arch:?}: {found:#?}");
            let f = &found[0];
            assert_eq!(f.summary, "modules of one product carry different versions");
            assert_eq!(
                f.evidence(),
                vec!["Contoso Ltd Widgets in 2 versions: widgets 2.1.0.0, engine 2.0.5.0"],
                "{arch:?}"
            );
            assert_eq!(f.confidence(), Confidence::High);
        }
    }

    #[test]
    fn windows_own_modules_in_several_versions_are_expected() {
        // Windows updates its DLLs one by one: ntdll and kernel32 of different builds under
        // one product name is how every system looks. The application's modules agree.
        for arch in [Arch::Amd64, Arch::X86] {
            let p = process(
                arch,
                &[
                    Module::new("C:\\Program Files\\Contoso\\widgets.exe").version(version(
                        "Contoso Ltd",
                        "Widgets",
                        "2.1.0.0",
                    )),
                    Module::new("C:\\Program Files\\Contoso\\engine.dll").version(version(
                        "Contoso Ltd",
                        "Widgets",
                        "2.1.0.0",
                    )),
                    Module::new("C:\\Windows\\System32\\ntdll.dll").version(version(
                        "Microsoft Corporation",
                        WINDOWS,
                        "10.0.19041.3636",
                    )),
                    Module::new("C:\\Windows\\System32\\kernel32.dll").version(version(
                        "Microsoft Corporation",
                        WINDOWS,
                        "10.0.19041.3570",
                    )),
                ],
            );
            let found = Analysed::exports_only(p).detect(&NotMyVersion);
            assert!(found.is_empty(), "{arch:?}: {found:#?}");
        }
    }

    #[test]
    fn two_products_of_one_company_may_have_their_own_versions() {
        let p = process(
            Arch::Amd64,
            &[
                Module::new("C:\\Program Files\\Contoso\\widgets.exe").version(version(
                    "Contoso Ltd",
                    "Widgets",
                    "2.1.0.0",
                )),
                Module::new("C:\\Program Files\\Contoso\\gadgets.dll").version(version(
                    "Contoso Ltd",
                    "Gadgets",
                    "7.3.0.0",
                )),
            ],
        );
        let found = Analysed::exports_only(p).detect(&NotMyVersion);
        assert!(found.is_empty(), "{found:#?}");
    }
}
