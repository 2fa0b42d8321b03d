//! The HTML report: self-contained, every dump string escaped (a dump with hostile names), and
//! rendered by a real browser (headless Chromium from Debian's package) to a screenshot.

mod common;
use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Replace every copy of a UTF-16 (or ASCII) string in the dump bytes (the streams and the
/// process memory both) with markup of the same length.
fn plant(bytes: &mut [u8], original: &str, hostile: &str, utf16: bool) {
    assert_eq!(original.chars().count(), hostile.chars().count());
    let enc = |s: &str| -> Vec<u8> {
        if utf16 {
            s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
        } else {
            s.as_bytes().to_vec()
        }
    };
    let (from, to) = (enc(original), enc(hostile));
    let mut planted = 0;
    let mut at = 0;
    while let Some(i) = bytes[at..]
        .windows(from.len())
        .position(|w| w == from.as_slice())
    {
        bytes[at + i..at + i + to.len()].copy_from_slice(&to);
        at += i + to.len();
        planted += 1;
    }
    assert!(planted > 0, "{original} not in the dump");
}

fn hostile_sample() -> Vec<u8> {
    let mut bytes = std::fs::read(repo().join("samples/cs_deadlock.dmp")).unwrap();
    // A module path and the comment stream, as a hostile dump writer could set them.
    let module = "kernelbase.dll";
    plant(&mut bytes, module, "<b>evil</b>.dl", true);
    let comment = "dumpdiag sample: two threads deadlocked on critical sections";
    let evil = "<script>alert(1)</script><img src=x onerror=alert(2)>sections";
    let evil: String = evil.chars().take(comment.chars().count()).collect();
    plant(&mut bytes, comment, &evil, true);
    bytes
}

#[test]
fn every_string_from_the_dump_is_escaped() {
    let t = dumpdiag_mdmp::MdmpTarget::from_bytes("hostile.dmp", hostile_sample()).unwrap();
    let mut s = dumpdiag_engine::Session::new(Box::new(t));
    s.set_symbol_path(repo().join("samples").to_str().unwrap());
    let html = dumpdiag_analysis::html_report(&s.analysis_input());
    assert!(
        !html.contains("<script>") && !html.contains("<img") && !html.contains("<b>evil"),
        "raw markup from the dump reached the page"
    );
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "the comment is shown, escaped"
    );
    assert!(
        html.contains("&lt;b&gt;evil&lt;/b&gt;.dl"),
        "the module path is shown, escaped"
    );
    assert!(
        !html.contains("http://") && !html.contains("https://") && !html.contains("<link"),
        "self-contained"
    );
}

fn chromium() -> Option<String> {
    ["chromium", "chromium-browser"]
        .iter()
        .find(|c| {
            Command::new("sh")
                .arg("-c")
                .arg(format!("command -v {c}"))
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(|c| c.to_string())
}

fn headless(browser: &str, profile: &std::path::Path) -> Command {
    let mut c = Command::new(browser);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]);
    c.arg(format!("--user-data-dir={}", profile.display()));
    c
}

#[test]
fn the_report_renders_in_headless_chromium() {
    let browser = chromium().expect("chromium is installed by .ci/run (Debian package chromium)");
    let dir = std::env::temp_dir().join(format!("dumpdiag-html-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A full-memory fixture with a deadlock draws the wait-chain graph. DUMPDIAG_FIXTURES names
    // a built set, as for the other fixture tests (building one takes minutes and gigabytes).
    let fixtures = if let Ok(d) = std::env::var("DUMPDIAG_FIXTURES") {
        PathBuf::from(d)
    } else {
        let out = Command::new("python3")
            .arg(repo().join("fixtures/build.py"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let report = dir.join("report.html");
    let status = Command::new(env!("CARGO_BIN_EXE_dumpdiag"))
        .arg("analyze")
        .arg(fixtures.join("cs_deadlock.dmp"))
        .arg("-y")
        .arg(&fixtures)
        .args(["--format", "html", "-o"])
        .arg(&report)
        .status()
        .unwrap();
    assert!(status.success());
    let url = format!("file://{}", report.display());
    let dom = headless(&browser, &dir.join("profile1"))
        .args(["--dump-dom", &url])
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains("Deadlock (Critical Sections)"),
        "the browser's DOM has the findings"
    );
    assert!(
        dom.contains("<svg") && dom.contains("cs_deadlock!g_accounts_lock"),
        "the wait-chain drawing is in the page"
    );
    let png = dir.join("report.png");
    let shot = headless(&browser, &dir.join("profile2"))
        .args([
            "--window-size=1200,1400",
            &format!("--screenshot={}", png.display()),
            &url,
        ])
        .output()
        .unwrap();
    assert!(
        shot.status.success(),
        "{}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let bytes = std::fs::read(&png).expect("screenshot written");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert!(
        bytes.len() > 20_000,
        "a page with content, not a blank one ({} bytes)",
        bytes.len()
    );
    // Kept for a look at what the page shows.
    let _ = std::fs::copy(&png, std::env::temp_dir().join("dumpdiag-report.png"));
    let _ = std::fs::remove_dir_all(dir);
}
