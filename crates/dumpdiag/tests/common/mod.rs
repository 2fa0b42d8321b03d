//! Shared helpers: where the real corpus lives and how to open a session on a dump.
#![allow(dead_code)]

use std::path::PathBuf;

use dumpdiag_engine::Session;

/// The shared folder: `../shared` beside the repository, or `DUMPDIAG_SHARED` for a clone
/// elsewhere.
pub fn shared() -> PathBuf {
    match std::env::var_os("DUMPDIAG_SHARED") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    }
}

/// `shared/corpus/real`: the real Windows dumps, read in place.
pub fn corpus() -> PathBuf {
    shared().join("corpus/real")
}

pub fn dump(rel: &str) -> PathBuf {
    let p = corpus().join(rel);
    assert!(
        p.exists(),
        "corpus file missing: {} (the shared corpus must sit beside the repository)",
        p.display()
    );
    p
}

/// A session on a corpus dump of any format (through `dumpdiag_mdmp::open_dump`, as the CLI).
pub fn session(rel: &str) -> Session {
    let t = dumpdiag_mdmp::open_dump(dump(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    Session::new(t)
}

pub fn run(s: &mut Session, cmd: &str) -> String {
    s.execute(cmd).text
}

/// Every dump of the corpus, MDMP and legacy USERDU64 alike.
pub fn all_dumps() -> Vec<PathBuf> {
    every_dump_file()
}

/// Does the file start with a legacy user-dump signature (USERDUMP / USERDU64)?
pub fn is_legacy_userdump(p: &std::path::Path) -> bool {
    let mut head = [0u8; 8];
    std::fs::File::open(p)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok()
        && (&head == b"USERDU64" || &head == b"USERDUMP")
}

/// Every .dmp file of the corpus.
pub fn every_dump_file() -> Vec<PathBuf> {
    fn walk(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "dmp") {
                out.push(p);
            }
        }
    }
    let mut v = Vec::new();
    walk(&corpus(), &mut v);
    v.sort();
    assert!(
        v.len() >= 15,
        "expected the real corpus, found {} dumps",
        v.len()
    );
    v
}

/// The command battery every dump must answer: the information, stack and disassembly
/// commands, run by the corpus and bad-input tests.
pub const COMMANDS: &[&str] = &[
    "||",
    "|",
    "vertarget",
    ".time",
    ".dumpdebug",
    ".lastevent",
    "~",
    "~* r",
    ".exr -1",
    ".ecxr",
    "lmv",
    "lm u",
    "!teb",
    "!peb",
    "!address",
    "!address -summary",
    "!heap -s -v",
    "!heap -a",
    "!handle 0 f",
    "!runaway 7",
    "!gle",
    "dps @$csp",
    "db @$ip",
    "~*kv",
    "kp",
    "u @$ip",
    "ub @$ip",
    "!uniqstack",
    ".effmach x86",
    "~*k",
    "!teb",
    "!peb",
    "r",
];

/// Little-endian writer for dumps built byte by byte in tests (what no public dump shows).
#[derive(Default)]
pub struct Bytes(pub Vec<u8>);

impl Bytes {
    pub fn u8(&mut self, x: u8) -> &mut Self {
        self.0.push(x);
        self
    }
    pub fn u16(&mut self, x: u16) -> &mut Self {
        self.0.extend_from_slice(&x.to_le_bytes());
        self
    }
    pub fn u32(&mut self, x: u32) -> &mut Self {
        self.0.extend_from_slice(&x.to_le_bytes());
        self
    }
    pub fn u64(&mut self, x: u64) -> &mut Self {
        self.0.extend_from_slice(&x.to_le_bytes());
        self
    }
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    /// Zero-fill up to `len` bytes in all.
    pub fn pad_to(&mut self, len: usize) -> &mut Self {
        self.0.resize(len, 0);
        self
    }
    pub fn len(&self) -> u32 {
        self.0.len() as u32
    }

    /// MINIDUMP_HEADER (directory right after it, at 32) and the directory: (type, size, rva).
    pub fn minidump_header(&mut self, time: u32, directory: &[(u32, u32, u32)]) -> &mut Self {
        self.u32(0x504d_444d)
            .u32(0xa793)
            .u32(directory.len() as u32)
            .u32(32)
            .u32(0)
            .u32(time)
            .u64(0);
        for &(ty, size, rva) in directory {
            self.u32(ty).u32(size).u32(rva);
        }
        self
    }

    /// MINIDUMP_SYSTEM_INFO (56 bytes) of Windows 10 `build` on processor `arch` (0 x86, 9 AMD64,
    /// 12 ARM64), with the given level, revision and processor count.
    pub fn system_info(
        &mut self,
        arch: u16,
        level: u16,
        revision: u16,
        processors: u8,
        build: u32,
    ) -> &mut Self {
        self.u16(arch)
            .u16(level)
            .u16(revision)
            .u8(processors)
            .u8(1)
            .u32(10)
            .u32(0)
            .u32(build)
            .u32(2)
            .u32(0)
            .u16(0x100)
            .u16(0)
            .bytes(&[0u8; 24])
    }

    /// MINIDUMP_STRING: byte length, UTF-16 text, terminating NUL.
    pub fn minidump_string(&mut self, text: &str) -> &mut Self {
        let units: Vec<u16> = text.encode_utf16().collect();
        self.u32(2 * units.len() as u32);
        for u in units {
            self.u16(u);
        }
        self.u16(0)
    }
}
