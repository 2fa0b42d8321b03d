//! Microsoft-style symbol servers: `GET {url}/{name}/{id}/{name}`, falling back to the
//! CAB-compressed `{nam_}` form, stored in the cache in the same layout WinDbg uses, so caches
//! are shared with WinDbg and symstore. Downloads have timeouts, show a progress bar on a
//! terminal, and are skipped entirely in offline mode (`DUMPDIAG_OFFLINE=1`).
//!
//! A server is untrusted: what it sends goes to a file in the cache as it arrives (never to
//! memory), and neither a body nor what a CAB unpacks to may pass [`max_download`] bytes, so
//! an endless body or a decompression bomb stops there and leaves nothing behind.

use std::io::{BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::sympath::store_path;

/// Largest file accepted from a server or unpacked from a CAB, by default (PDBs of big
/// products reach a few GB).
const MAX_DOWNLOAD: u64 = 4 << 30;

/// The largest file accepted from a server or unpacked from a CAB: [`MAX_DOWNLOAD`], or
/// `DUMPDIAG_MAX_DOWNLOAD_MB` megabytes.
pub fn max_download() -> u64 {
    std::env::var("DUMPDIAG_MAX_DOWNLOAD_MB")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(MAX_DOWNLOAD, |mb| mb.saturating_mul(1 << 20))
}

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
    let limit = max_download();
    let agent = agent();
    // Bodies arrive here, next to where they will be stored.
    let part = dest.with_extension("download");
    let plain = format!("{url}/{name}/{id}/{name}");
    match get(&agent, &plain, name, &part, limit) {
        Ok(true) => return store(&part, &dest),
        Ok(false) => {}
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
    }
    let packed = compressed_name(name);
    let url2 = format!("{url}/{name}/{id}/{packed}");
    match get(&agent, &url2, &packed, &part, limit) {
        Ok(true) => {
            let unpacked = dest.with_extension("unpacked");
            let done = uncab(&part, name, &unpacked, limit);
            let _ = std::fs::remove_file(&part);
            if let Err(e) = done {
                let _ = std::fs::remove_file(&unpacked);
                return Err(FetchError::Bad(e));
            }
            store(&unpacked, &dest)
        }
        Ok(false) => Err(FetchError::NotFound(format!("{name} ({id}) not on {url}"))),
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            Err(e)
        }
    }
}

/// GET `url` into the file `to` (created with its directory), at most `limit` bytes; false
/// when the server does not have it.
fn get(
    agent: &ureq::Agent,
    url: &str,
    label: &str,
    to: &Path,
    limit: u64,
) -> Result<bool, FetchError> {
    let unreachable = |e: &dyn std::fmt::Display| FetchError::Unreachable(format!("{url}: {e}"));
    let too_large = || {
        FetchError::Bad(format!(
            "{url}: larger than {} MB, the most accepted (DUMPDIAG_MAX_DOWNLOAD_MB)",
            limit >> 20
        ))
    };
    let mut resp = agent.get(url).call().map_err(|e| unreachable(&e))?;
    let status = resp.status().as_u16();
    if status == 404 || status == 410 {
        return Ok(false);
    }
    if status != 200 {
        return Err(unreachable(&format!("HTTP {status}")));
    }
    let len = resp
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if len.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let bad = |e: std::io::Error| FetchError::Bad(format!("{}: {e}", to.display()));
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).map_err(bad)?;
    }
    let mut out = BufWriter::new(std::fs::File::create(to).map_err(bad)?);
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
    // One byte past the limit is enough to know the body is too large.
    let mut reader = resp
        .body_mut()
        .with_config()
        .limit(limit.saturating_add(1))
        .reader();
    let mut chunk = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut chunk).map_err(|e| unreachable(&e))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > limit {
            return Err(too_large());
        }
        out.write_all(&chunk[..n]).map_err(bad)?;
        if let Some(b) = &bar {
            b.set_position(total);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    out.flush().map_err(bad)?;
    Ok(true)
}

/// Extract `name` (or the only file) from the CAB archive in file `from` into file `to`, at
/// most `limit` bytes.
fn uncab(from: &Path, name: &str, to: &Path, limit: u64) -> Result<(), String> {
    let file = std::fs::File::open(from).map_err(|e| format!("{}: {e}", from.display()))?;
    let mut cab = cab::Cabinet::new(BufReader::new(file)).map_err(|e| format!("bad CAB: {e}"))?;
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
    let r = cab
        .read_file(&pick)
        .map_err(|e| format!("CAB {pick}: {e}"))?;
    let mut out =
        BufWriter::new(std::fs::File::create(to).map_err(|e| format!("{}: {e}", to.display()))?);
    // One byte past the limit is enough to know the file is too large.
    let n = std::io::copy(&mut r.take(limit.saturating_add(1)), &mut out)
        .map_err(|e| format!("CAB {pick}: {e}"))?;
    if n > limit {
        return Err(format!(
            "CAB {pick}: unpacks to more than {} MB, the most accepted (DUMPDIAG_MAX_DOWNLOAD_MB)",
            limit >> 20
        ));
    }
    out.flush().map_err(|e| format!("{}: {e}", to.display()))?;
    Ok(())
}

/// Move a complete download into its place in the cache.
fn store(from: &Path, dest: &Path) -> Result<PathBuf, FetchError> {
    std::fs::rename(from, dest).map_err(|e| {
        let _ = std::fs::remove_file(from);
        FetchError::Bad(format!("{}: {e}", dest.display()))
    })?;
    Ok(dest.to_path_buf())
}
