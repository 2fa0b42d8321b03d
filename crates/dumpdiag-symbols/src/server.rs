//! Microsoft-style symbol servers: `GET {url}/{name}/{id}/{name}`, falling back to the
//! CAB-compressed `{nam_}` form, stored in the cache in the same layout WinDbg uses, so caches
//! are shared with WinDbg and symstore. Downloads have timeouts, show a progress bar on a
//! terminal, and are skipped entirely in offline mode (`DUMPDIAG_OFFLINE=1`).

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::sympath::store_path;

/// Largest file accepted from a server (PDBs of big products reach a few GB).
const MAX_DOWNLOAD: u64 = 4 << 30;

pub fn offline() -> bool {
    std::env::var("DUMPDIAG_OFFLINE").is_ok_and(|v| v != "0" && !v.is_empty())
}

fn agent() -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_global(Some(Duration::from_secs(300)))
        .http_status_as_error(false)
        .user_agent("Microsoft-Symbol-Server/10.0.0.0")
        .build();
    ureq::Agent::new_with_config(config)
}

/// `kernel32.pdb` → `kernel32.pd_`.
pub fn compressed_name(name: &str) -> String {
    let mut s = name.to_string();
    s.pop();
    s.push('_');
    s
}

#[derive(Debug)]
pub enum FetchError {
    /// The server answered: it does not have the file (or offline mode forbids asking).
    NotFound(String),
    /// The server could not be reached or answered badly: do not ask it again this session.
    Unreachable(String),
    /// The file arrived but could not be unpacked or stored.
    Bad(String),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::NotFound(s) | FetchError::Unreachable(s) | FetchError::Bad(s) => {
                f.write_str(s)
            }
        }
    }
}

/// Download `name` with symbol-store id `id` from `url` into `cache`; the cached path.
pub fn fetch(url: &str, cache: &Path, name: &str, id: &str) -> Result<PathBuf, FetchError> {
    let dest = store_path(cache, name, id);
    if dest.is_file() {
        return Ok(dest);
    }
    if offline() {
        return Err(FetchError::NotFound("offline mode: not downloading".into()));
    }
    let agent = agent();
    let plain = format!("{url}/{name}/{id}/{name}");
    if let Some(bytes) = get(&agent, &plain, name).map_err(FetchError::Unreachable)? {
        return store(&dest, &bytes).map_err(FetchError::Bad);
    }
    let packed = compressed_name(name);
    let url2 = format!("{url}/{name}/{id}/{packed}");
    match get(&agent, &url2, &packed).map_err(FetchError::Unreachable)? {
        Some(bytes) => {
            let data = uncab(&bytes, name).map_err(FetchError::Bad)?;
            store(&dest, &data).map_err(FetchError::Bad)
        }
        None => Err(FetchError::NotFound(format!("{name} ({id}) not on {url}"))),
    }
}

fn get(agent: &ureq::Agent, url: &str, label: &str) -> Result<Option<Vec<u8>>, String> {
    let mut resp = agent.get(url).call().map_err(|e| format!("{url}: {e}"))?;
    let status = resp.status().as_u16();
    if status == 404 || status == 410 {
        return Ok(None);
    }
    if status != 200 {
        return Err(format!("{url}: HTTP {status}"));
    }
    let len = resp
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let bar = (std::io::stderr().is_terminal() && len.is_some()).then(|| {
        let b = indicatif::ProgressBar::new(len.unwrap_or(0));
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b.set_message(label.to_string());
        b
    });
    let mut reader = resp.body_mut().with_config().limit(MAX_DOWNLOAD).reader();
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut chunk).map_err(|e| format!("{url}: {e}"))?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&chunk[..n]);
        if let Some(b) = &bar {
            b.set_position(out.len() as u64);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(Some(out))
}

/// Extract `name` (or the only file) from a CAB archive.
fn uncab(bytes: &[u8], name: &str) -> Result<Vec<u8>, String> {
    let mut cab =
        cab::Cabinet::new(std::io::Cursor::new(bytes)).map_err(|e| format!("bad CAB: {e}"))?;
    let files: Vec<String> = cab
        .folder_entries()
        .flat_map(|f| {
            f.file_entries()
                .map(|e| e.name().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    let pick = files
        .iter()
        .find(|f| f.eq_ignore_ascii_case(name))
        .or(files.first())
        .ok_or("empty CAB")?
        .clone();
    let mut r = cab
        .read_file(&pick)
        .map_err(|e| format!("CAB {pick}: {e}"))?;
    let mut out = Vec::new();
    r.read_to_end(&mut out)
        .map_err(|e| format!("CAB {pick}: {e}"))?;
    Ok(out)
}

fn store(dest: &Path, bytes: &[u8]) -> Result<PathBuf, String> {
    let dir = dest.parent().ok_or("bad cache path")?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let tmp = dest.with_extension("download");
    let mut f = std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    f.write_all(bytes)
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    drop(f);
    std::fs::rename(&tmp, dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    Ok(dest.to_path_buf())
}
