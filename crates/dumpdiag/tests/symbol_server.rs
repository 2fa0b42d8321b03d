//! The symbol-server protocol against a real HTTP server started by the test on loopback:
//! plain and CAB-compressed downloads into a WinDbg-layout cache, and offline mode.

mod common;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Serve `files` (path → bytes) for at most `max_requests` requests or 30 s; 404 otherwise.
/// Returns the base URL and the log of requested paths.
fn serve(files: Vec<(String, Vec<u8>)>, max_requests: usize) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = log.clone();
    std::thread::spawn(move || {
        let start = Instant::now();
        let mut served = 0;
        while served < max_requests && start.elapsed() < Duration::from_secs(30) {
            let Ok((stream, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            served += 1;
            stream.set_nonblocking(false).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).map(|n| n == 0).unwrap_or(true) || h == "\r\n" {
                    break;
                }
            }
            let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
            log2.lock().unwrap().push(path.clone());
            let mut out = stream;
            match files.iter().find(|(p, _)| *p == path) {
                Some((_, body)) => {
                    let _ = write!(
                        out,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = out.write_all(body);
                }
                None => {
                    let _ = write!(
                        out,
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                }
            }
        }
    });
    (url, log)
}

fn sigsegv_pdb_id() -> String {
    let t = dumpdiag_mdmp::MdmpTarget::open(common::dump("lldb/Sigsegv/sigsegv.dmp")).unwrap();
    use dumpdiag_target::Target;
    t.modules()[0].codeview.as_ref().unwrap().pdb_id().unwrap()
}

fn cab_of(name: &str, data: &[u8]) -> Vec<u8> {
    let mut b = cab::CabinetBuilder::new();
    b.add_folder(cab::CompressionType::MsZip).add_file(name);
    let mut w = b.build(std::io::Cursor::new(Vec::new())).unwrap();
    while let Some(mut f) = w.next_file().unwrap() {
        f.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn temp_cache(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("dumpdiag-symcache-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn downloads_a_pdb_into_a_windbg_layout_cache() {
    let id = sigsegv_pdb_id();
    let pdb = std::fs::read(common::dump("lldb/Sigsegv/sigsegv.pdb")).unwrap();
    let (url, log) = serve(
        vec![(format!("/sigsegv.pdb/{id}/sigsegv.pdb"), pdb.clone())],
        8,
    );
    let cache = temp_cache("plain");
    let mut s = common::session("lldb/Sigsegv/sigsegv.dmp");
    s.set_symbol_path(&format!("srv*{}*{url}", cache.display()));
    let k = s.execute(".ecxr; k").text;
    assert!(k.contains("sigsegv!crash+0x29"), "{k}");
    let cached = cache.join("sigsegv.pdb").join(&id).join("sigsegv.pdb");
    assert_eq!(std::fs::read(&cached).unwrap(), pdb);
    assert!(log
        .lock()
        .unwrap()
        .contains(&format!("/sigsegv.pdb/{id}/sigsegv.pdb")));
    // A second session reads the cache and asks the server nothing for this module.
    let before = log.lock().unwrap().len();
    let mut s2 = common::session("lldb/Sigsegv/sigsegv.dmp");
    s2.set_symbol_path(&format!("srv*{}*{url}", cache.display()));
    assert_eq!(
        s2.symbols()
            .lookup(s2.target(), 0x7ff7a13110d9)
            .map(|x| x.function),
        Some("crash".to_string())
    );
    let asked: Vec<String> = log.lock().unwrap()[before..].to_vec();
    assert!(
        !asked.iter().any(|p| p.contains("sigsegv.pdb")),
        "{asked:?}"
    );
    let _ = std::fs::remove_dir_all(cache);
}

#[test]
fn falls_back_to_the_compressed_form() {
    let id = sigsegv_pdb_id();
    let pdb = std::fs::read(common::dump("lldb/Sigsegv/sigsegv.pdb")).unwrap();
    let (url, log) = serve(
        vec![(
            format!("/sigsegv.pdb/{id}/sigsegv.pd_"),
            cab_of("sigsegv.pdb", &pdb),
        )],
        8,
    );
    let cache = temp_cache("cab");
    let mut s = common::session("lldb/Sigsegv/sigsegv.dmp");
    s.set_symbol_path(&format!("srv*{}*{url}", cache.display()));
    let sym = s
        .symbols()
        .lookup(s.target(), 0x7ff7a13110d9)
        .expect("symbol from the compressed PDB");
    assert_eq!(sym.function, "crash");
    let requested = log.lock().unwrap().clone();
    assert_eq!(
        requested[..2],
        [
            format!("/sigsegv.pdb/{id}/sigsegv.pdb"),
            format!("/sigsegv.pdb/{id}/sigsegv.pd_")
        ]
    );
    assert_eq!(
        std::fs::read(cache.join("sigsegv.pdb").join(&id).join("sigsegv.pdb")).unwrap(),
        pdb
    );
    let _ = std::fs::remove_dir_all(cache);
}

#[test]
fn offline_mode_and_unreachable_servers_do_not_block() {
    let cache = temp_cache("offline");
    // Offline: the CLI is asked for symbols but makes no request.
    let (url, log) = serve(vec![], 4);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dumpdiag"))
        .arg(common::dump("lldb/Sigsegv/sigsegv.dmp"))
        .args([
            "-y",
            &format!("srv*{}*{url}", cache.display()),
            "-c",
            ".ecxr; k",
        ])
        .env("DUMPDIAG_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        log.lock().unwrap().is_empty(),
        "offline mode made requests: {:?}",
        log.lock().unwrap()
    );
    // A server that does not listen: every module falls back quickly, once.
    let dead = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let start = Instant::now();
    let mut s = common::session("mozilla/windows-x86_64.dmp");
    s.set_symbol_path(&format!("srv*{}*{dead_url}", cache.display()));
    let _ = s.execute(".reload /f");
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "took {:?}",
        start.elapsed()
    );
    let _ = std::fs::remove_dir_all(cache);
}

/// Serve `path` with a body of zeros and no length, `Connection: close`, until `max` bytes
/// are sent or the client hangs up (a broken or hostile server); 404 for anything else.
/// Returns the base URL and the count of body bytes sent.
fn serve_endless(path: String, max: u64) -> (String, Arc<std::sync::atomic::AtomicU64>) {
    use std::sync::atomic::{AtomicU64, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let sent = Arc::new(AtomicU64::new(0));
    let sent2 = sent.clone();
    std::thread::spawn(move || {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            let Ok((stream, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            stream.set_nonblocking(false).unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).map(|n| n == 0).unwrap_or(true) || h == "\r\n" {
                    break;
                }
            }
            let mut out = stream;
            if request.split_whitespace().nth(1) != Some(path.as_str()) {
                let _ = write!(
                    out,
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                continue;
            }
            let _ = write!(out, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
            let chunk = vec![0u8; 1 << 16];
            while sent2.load(Ordering::Relaxed) < max {
                if out.write_all(&chunk).is_err() {
                    break;
                }
                sent2.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
        }
    });
    (url, sent)
}

/// Every file under `dir`.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(files_under(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

/// `.ecxr; k` on the sigsegv dump by the CLI, symbols from `url` into `cache`, downloads
/// limited to 1 MB.
fn k_with_a_1_mb_download_limit(url: &str, cache: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_dumpdiag"))
        .arg(common::dump("lldb/Sigsegv/sigsegv.dmp"))
        .args([
            "-y",
            &format!("srv*{}*{url}", cache.display()),
            "-c",
            ".ecxr; k",
        ])
        .env("DUMPDIAG_MAX_DOWNLOAD_MB", "1")
        .env_remove("DUMPDIAG_OFFLINE")
        .output()
        .unwrap()
}

#[test]
fn an_endless_body_stops_at_the_download_limit_and_leaves_nothing() {
    let id = sigsegv_pdb_id();
    let (url, sent) = serve_endless(format!("/sigsegv.pdb/{id}/sigsegv.pdb"), 256 << 20);
    let cache = temp_cache("endless");
    let start = Instant::now();
    let out = k_with_a_1_mb_download_limit(&url, &cache);
    assert!(out.status.success(), "{out:?}");
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "took {:?}",
        start.elapsed()
    );
    // The client hung up soon after the limit (the kernel's socket buffers hold the rest).
    let sent = sent.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        (1 << 20..64 << 20).contains(&sent),
        "the server sent {sent} bytes"
    );
    assert_eq!(files_under(&cache), Vec::<std::path::PathBuf>::new());
    let _ = std::fs::remove_dir_all(cache);
}

#[test]
fn a_cab_that_unpacks_past_the_limit_is_refused_and_leaves_nothing() {
    let id = sigsegv_pdb_id();
    // 8 MB of zeros pack into a few kB.
    let bomb = cab_of("sigsegv.pdb", &vec![0u8; 8 << 20]);
    assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
    let (url, log) = serve(vec![(format!("/sigsegv.pdb/{id}/sigsegv.pd_"), bomb)], 16);
    let cache = temp_cache("bomb");
    let out = k_with_a_1_mb_download_limit(&url, &cache);
    assert!(out.status.success(), "{out:?}");
    assert!(log
        .lock()
        .unwrap()
        .contains(&format!("/sigsegv.pdb/{id}/sigsegv.pd_")));
    assert_eq!(files_under(&cache), Vec::<std::path::PathBuf>::new());
    let _ = std::fs::remove_dir_all(cache);
}
