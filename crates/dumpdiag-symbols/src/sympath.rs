//! `_NT_SYMBOL_PATH` syntax: `;`-separated elements, each a plain directory, `cache*dir`, or
//! `srv*[cache*]url` (`symsrv*symsrv.dll*cache*url` too). Files are looked up in a plain
//! directory directly, and in symbol-store layout (`name/ID/name`) in caches and servers.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Element {
    Directory(PathBuf),
    Cache(PathBuf),
    Server { cache: Option<PathBuf>, url: String },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SymbolPath {
    pub elements: Vec<Element>,
}

/// Where `.symfix` puts downloads when no cache is named.
pub fn default_cache() -> PathBuf {
    std::env::var_os("DUMPDIAG_SYMBOL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .or_else(|| std::env::var_os("USERPROFILE"))
                .unwrap_or_default();
            PathBuf::from(home).join(".dumpdiag").join("symbols")
        })
}

impl SymbolPath {
    pub fn parse(text: &str) -> SymbolPath {
        let mut elements = Vec::new();
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let pieces: Vec<&str> = part.split('*').collect();
            let head = pieces[0].to_ascii_lowercase();
            match head.as_str() {
                "srv" | "symsrv" => {
                    let rest: Vec<&str> = if head == "symsrv" {
                        pieces.iter().skip(2).copied().collect()
                    } else {
                        pieces[1..].to_vec()
                    };
                    let (url, caches): (Option<&str>, Vec<&str>) = match rest.split_last() {
                        Some((last, init)) if last.contains("://") => (Some(*last), init.to_vec()),
                        Some(_) | None => (None, rest.clone()),
                    };
                    let cache = caches
                        .iter()
                        .rev()
                        .find(|c| !c.is_empty())
                        .map(PathBuf::from)
                        .or_else(|| Some(default_cache()));
                    match url {
                        Some(u) => elements.push(Element::Server {
                            cache,
                            url: u.trim_end_matches('/').to_string(),
                        }),
                        None => elements.extend(
                            caches
                                .iter()
                                .filter(|c| !c.is_empty())
                                .map(|c| Element::Cache(PathBuf::from(c))),
                        ),
                    }
                }
                "cache" => {
                    let dir = pieces
                        .get(1)
                        .filter(|d| !d.is_empty())
                        .map(PathBuf::from)
                        .unwrap_or_else(default_cache);
                    elements.push(Element::Cache(dir));
                }
                _ => elements.push(Element::Directory(PathBuf::from(part))),
            }
        }
        SymbolPath { elements }
    }

    /// Local candidates for `name` with symbol-store id `id` (GUID+age for PDBs, timestamp+size
    /// for images, Breakpad id for `.sym`), in search order.
    pub fn local_candidates(&self, name: &str, id: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in &self.elements {
            match e {
                Element::Directory(d) => {
                    out.push(d.join(name));
                    out.push(store_path(d, name, id));
                }
                Element::Cache(d) => out.push(store_path(d, name, id)),
                Element::Server { cache: Some(d), .. } => out.push(store_path(d, name, id)),
                Element::Server { cache: None, .. } => {}
            }
        }
        out
    }

    pub fn servers(&self) -> impl Iterator<Item = (&str, Option<&Path>)> {
        self.elements.iter().filter_map(|e| match e {
            Element::Server { cache, url } => Some((url.as_str(), cache.as_deref())),
            _ => None,
        })
    }
}

/// `dir/name/ID/name`, the layout symstore and symbol servers use (and Breakpad's
/// `name.pdb/ID/name.sym`).
pub fn store_path(dir: &Path, name: &str, id: &str) -> PathBuf {
    dir.join(name).join(id).join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_windbg_symbol_paths() {
        let p = SymbolPath::parse(
            "srv*c:\\sym*https://msdl.microsoft.com/download/symbols;d:\\mine; cache*e:\\cache",
        );
        assert_eq!(
            p.elements,
            vec![
                Element::Server {
                    cache: Some(PathBuf::from("c:\\sym")),
                    url: "https://msdl.microsoft.com/download/symbols".into()
                },
                Element::Directory(PathBuf::from("d:\\mine")),
                Element::Cache(PathBuf::from("e:\\cache")),
            ]
        );
        let p = SymbolPath::parse("symsrv*symsrv.dll*/tmp/c*http://localhost:1234/");
        assert_eq!(
            p.elements,
            vec![Element::Server {
                cache: Some(PathBuf::from("/tmp/c")),
                url: "http://localhost:1234".into()
            }]
        );
        assert_eq!(SymbolPath::parse("").elements, vec![]);
        let c = SymbolPath::parse("/s").local_candidates("a.pdb", "ABC1");
        assert_eq!(
            c,
            vec![
                PathBuf::from("/s/a.pdb"),
                PathBuf::from("/s/a.pdb/ABC1/a.pdb")
            ]
        );
    }
}
