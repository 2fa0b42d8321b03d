//! Breakpad `.sym` text files: FILE, FUNC (+ line records), PUBLIC, STACK WIN and STACK CFI.
//!
//! The file is memory-mapped and indexed in one pass that only records where things are:
//! function and public names, line records, CFI blocks and STACK WIN records are byte ranges
//! into the text, parsed when an address actually needs them. Most of a symbol file is line
//! and CFI records that a given stack never touches, so this keeps loading cheap.

use std::ops::Range;

#[derive(Debug, Clone)]
pub struct Func {
    pub address: u64,
    pub size: u64,
    pub parameter_size: u32,
    name: Range<u32>,
    /// Byte range of this function's line records.
    lines: Range<u32>,
}

impl Func {
    /// The end of the function (a zero size covers one byte); addresses and sizes come from
    /// the file, so the end stops at 2^64 instead of wrapping.
    fn end(&self) -> u64 {
        self.address.saturating_add(self.size.max(1))
    }
}

/// A STACK WIN record (x86 frame data).
#[derive(Debug, Clone)]
pub struct StackWin {
    pub kind: u8,
    pub address: u64,
    pub size: u64,
    pub prolog_size: u32,
    pub epilog_size: u32,
    pub parameter_size: u32,
    pub saved_register_size: u32,
    pub local_size: u32,
    pub max_stack_size: u32,
    /// Either a program string (frame-data records) or, for FPO records, whether EBP is
    /// allocated as a general register.
    pub program: Option<String>,
    pub allocates_base_pointer: bool,
}

/// Where a CFI block (INIT line and its deltas) lies in the text.
#[derive(Debug, Clone)]
struct CfiBlock {
    address: u64,
    size: u64,
    text: Range<u32>,
}

enum Text {
    Map(memmap2::Mmap),
    Owned(String),
}

/// What a lookup found: (name, displacement, source file and line, parameter size).
pub type BreakpadHit = (String, u64, Option<(String, u32)>, u32);

pub struct BreakpadSymbols {
    text: Text,
    pub module_line: String,
    /// (file number, name range), sorted by number.
    files: Vec<(u32, Range<u32>)>,
    pub funcs: Vec<Func>,
    /// (address, parameter size, name range), sorted.
    publics: Vec<(u64, u32, Range<u32>)>,
    /// (address, size, kind, record range), sorted by address.
    stack_win: Vec<(u64, u64, u8, Range<u32>)>,
    cfi: Vec<CfiBlock>,
    pub skipped_lines: usize,
}

impl std::fmt::Debug for BreakpadSymbols {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "BreakpadSymbols({} funcs, {} publics, {} cfi, {} win)",
            self.funcs.len(),
            self.publics.len(),
            self.cfi.len(),
            self.stack_win.len()
        )
    }
}

fn hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s, 16).ok()
}

/// Most delta lines read from one STACK CFI block (real ones have tens; every unwind through
/// the block reads them again). A block with more is not used.
const MAX_CFI_DELTAS: usize = 1 << 14;

/// Largest symbol file indexed (offsets are 32-bit).
const MAX_SYM_FILE: usize = u32::MAX as usize;

impl BreakpadSymbols {
    /// Map and index a `.sym` file.
    pub fn open(path: &std::path::Path) -> std::io::Result<BreakpadSymbols> {
        let f = std::fs::File::open(path)?;
        // SAFETY: read-only private map; a file changing underneath yields wrong names, never
        // unsafety, because every access below goes through bounds-checked str slicing of
        // text validated as UTF-8 here.
        let map = unsafe { memmap2::Mmap::map(&f)? };
        if std::str::from_utf8(&map).is_ok() && map.len() <= MAX_SYM_FILE {
            #[cfg(unix)]
            let _ = map.advise(memmap2::Advice::Sequential);
            let s = Self::index(Text::Map(map));
            // Indexing touched every page once; lookups touch a few. Hand the pages back (they
            // are file-backed and come back from the file when needed) so memory follows use.
            #[cfg(unix)]
            if let Text::Map(m) = &s.text {
                // SAFETY: a read-only, file-backed private mapping: dropped pages are re-read
                // from the file on the next access, so no data is lost.
                let _ = unsafe { m.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
            }
            return Ok(s);
        }
        let lossy = String::from_utf8_lossy(&map[..map.len().min(MAX_SYM_FILE)]).into_owned();
        Ok(Self::index(Text::Owned(lossy)))
    }

    /// Index symbol text held in memory.
    pub fn parse(text: &str) -> BreakpadSymbols {
        Self::index(Text::Owned(
            text[..text.len().min(MAX_SYM_FILE)].to_string(),
        ))
    }

    fn bytes(&self) -> &[u8] {
        match &self.text {
            Text::Map(m) => m,
            Text::Owned(s) => s.as_bytes(),
        }
    }

    /// The whole text (validated once, while indexing).
    fn text(&self) -> &str {
        std::str::from_utf8(self.bytes()).unwrap_or("")
    }

    /// A small piece of the text; each access checks only its own bytes.
    fn slice(&self, r: &Range<u32>) -> &str {
        self.bytes()
            .get(r.start as usize..r.end as usize)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }

    fn index(text: Text) -> BreakpadSymbols {
        let mut s = BreakpadSymbols {
            text,
            module_line: String::new(),
            files: Vec::new(),
            funcs: Vec::new(),
            publics: Vec::new(),
            stack_win: Vec::new(),
            cfi: Vec::new(),
            skipped_lines: 0,
        };
        let mut files = Vec::new();
        let mut funcs: Vec<Func> = Vec::new();
        let mut publics = Vec::new();
        let mut wins = Vec::new();
        let mut cfi: Vec<CfiBlock> = Vec::new();
        let mut skipped = 0usize;
        let mut module_line = String::new();
        {
            let t = s.text();
            let mut pos = 0usize;
            // What the previous line was: line records extend a FUNC, deltas a CFI block.
            #[derive(PartialEq)]
            enum Open {
                None,
                Func,
                Cfi,
            }
            let mut open = Open::None;
            for line in t.split_inclusive('\n') {
                let start = pos;
                pos += line.len();
                let l = line.trim_end_matches(['\n', '\r']);
                let end = start + l.len();
                let r = |a: usize, b: usize| (a as u32)..(b as u32);
                let first = l.as_bytes().first().copied().unwrap_or(b' ');
                if first.is_ascii_hexdigit()
                    && open == Open::Func
                    && !l.starts_with("FUNC")
                    && !l.starts_with("FILE")
                {
                    if let Some(f) = funcs.last_mut() {
                        f.lines.end = end as u32;
                    }
                    continue;
                }
                if l.starts_with("STACK CFI ")
                    && !l.starts_with("STACK CFI INIT")
                    && open == Open::Cfi
                {
                    if let Some(c) = cfi.last_mut() {
                        c.text.end = end as u32;
                    }
                    continue;
                }
                open = Open::None;
                if let Some(rest) = l.strip_prefix("FUNC ") {
                    let (rest, skip) = match rest.strip_prefix("m ") {
                        Some(x) => (x, 2),
                        None => (rest, 0),
                    };
                    let mut p = rest.splitn(4, ' ');
                    match (
                        p.next().and_then(hex),
                        p.next().and_then(hex),
                        p.next().and_then(hex),
                        p.next(),
                    ) {
                        (Some(a), Some(sz), Some(ps), Some(name)) => {
                            let name_start = end - name.len();
                            let _ = skip;
                            funcs.push(Func {
                                address: a,
                                size: sz,
                                parameter_size: ps as u32,
                                name: r(name_start, end),
                                lines: r(end, end),
                            });
                            open = Open::Func;
                        }
                        _ => skipped += 1,
                    }
                } else if let Some(rest) = l.strip_prefix("PUBLIC ") {
                    let rest = rest.strip_prefix("m ").unwrap_or(rest);
                    let mut p = rest.splitn(3, ' ');
                    match (p.next().and_then(hex), p.next().and_then(hex), p.next()) {
                        (Some(a), Some(ps), Some(name)) => {
                            publics.push((a, ps as u32, r(end - name.len(), end)))
                        }
                        _ => skipped += 1,
                    }
                } else if let Some(rest) = l.strip_prefix("STACK CFI INIT ") {
                    let mut p = rest.splitn(3, ' ');
                    match (p.next().and_then(hex), p.next().and_then(hex)) {
                        (Some(a), Some(sz)) => {
                            cfi.push(CfiBlock {
                                address: a,
                                size: sz,
                                text: r(start, end),
                            });
                            open = Open::Cfi;
                        }
                        _ => skipped += 1,
                    }
                } else if let Some(rest) = l.strip_prefix("STACK WIN ") {
                    let mut p = rest.splitn(4, ' ');
                    match (
                        p.next().and_then(hex),
                        p.next().and_then(hex),
                        p.next().and_then(hex),
                    ) {
                        (Some(kind), Some(a), Some(sz)) => {
                            wins.push((a, sz, kind as u8, r(start, end)))
                        }
                        _ => skipped += 1,
                    }
                } else if let Some(rest) = l.strip_prefix("FILE ") {
                    match rest.split_once(' ') {
                        Some((n, name)) if n.parse::<u32>().is_ok() => {
                            files.push((n.parse().unwrap_or(0), r(end - name.len(), end)))
                        }
                        _ => skipped += 1,
                    }
                } else if l.starts_with("MODULE ") {
                    module_line = l.to_string();
                } else if !(l.is_empty() || l.starts_with("INFO ")) {
                    skipped += 1;
                }
            }
        }
        funcs.sort_by_key(|f| f.address);
        publics.sort_by_key(|p| p.0);
        wins.sort_by_key(|w| (w.0, std::cmp::Reverse(w.2)));
        cfi.sort_by_key(|c| c.address);
        files.sort_by_key(|f| f.0);
        s.files = files;
        s.funcs = funcs;
        s.publics = publics;
        s.stack_win = wins;
        s.cfi = cfi;
        s.skipped_lines = skipped;
        s.module_line = module_line;
        s
    }

    pub fn func_name(&self, f: &Func) -> &str {
        self.slice(&f.name)
    }

    /// Every function and public symbol: (address, name).
    pub fn symbols(&self) -> impl Iterator<Item = (u64, &str)> {
        self.funcs
            .iter()
            .map(|f| (f.address, self.slice(&f.name)))
            .chain(self.publics.iter().map(|p| (p.0, self.slice(&p.2))))
    }

    fn file(&self, n: u32) -> Option<&str> {
        let i = self.files.binary_search_by_key(&n, |f| f.0).ok()?;
        Some(self.slice(&self.files[i].1))
    }

    /// The source line of `rva` inside `f`, parsing only that function's line records.
    fn line_of(&self, f: &Func, rva: u64) -> Option<(String, u32)> {
        for l in self.slice(&f.lines).lines() {
            let mut p = l.split(' ');
            let (Some(a), Some(sz), Some(line), Some(file)) = (
                p.next().and_then(hex),
                p.next().and_then(hex),
                p.next(),
                p.next(),
            ) else {
                continue;
            };
            if rva >= a && rva < a.saturating_add(sz.max(1)) {
                return Some((
                    self.file(file.parse().ok()?)?.to_string(),
                    line.parse().ok()?,
                ));
            }
        }
        None
    }

    /// The FUNC containing `rva`, or the nearest PUBLIC below it.
    pub fn lookup(&self, rva: u64) -> Option<BreakpadHit> {
        let i = self.funcs.partition_point(|f| f.address <= rva);
        if i > 0 {
            let f = &self.funcs[i - 1];
            if rva < f.end() {
                return Some((
                    self.func_name(f).to_string(),
                    rva - f.address,
                    self.line_of(f, rva),
                    f.parameter_size,
                ));
            }
        }
        let j = self.publics.partition_point(|p| p.0 <= rva);
        // A PUBLIC covers up to the next FUNC or PUBLIC.
        if j > 0 {
            let p = &self.publics[j - 1];
            let next_func = self.funcs.get(i).map(|f| f.address).unwrap_or(u64::MAX);
            if i == 0 || self.funcs[i - 1].address < p.0 || rva < next_func {
                return Some((self.slice(&p.2).to_string(), rva - p.0, None, p.1));
            }
        }
        None
    }

    /// Is `rva` inside a FUNC record (not merely after a PUBLIC)?
    pub fn in_func(&self, rva: u64) -> bool {
        let i = self.funcs.partition_point(|f| f.address <= rva);
        i > 0 && rva < self.funcs[i - 1].end()
    }

    /// The STACK WIN record for `rva` (frame data preferred over FPO).
    pub fn stack_win(&self, rva: u64) -> Option<StackWin> {
        let i = self.stack_win.partition_point(|w| w.0 <= rva);
        let w = self.stack_win[..i]
            .iter()
            .rev()
            .take(8)
            .find(|w| rva < w.0.saturating_add(w.1))?;
        parse_stack_win(self.slice(&w.3))
    }

    pub fn has_cfi(&self) -> bool {
        !self.cfi.is_empty()
    }

    /// CFI rules in effect at `rva`: INIT, then each delta at or below `rva`.
    pub fn cfi_rules(&self, rva: u64) -> Option<Vec<&str>> {
        let i = self.cfi.partition_point(|c| c.address <= rva);
        let c = self.cfi[..i]
            .last()
            .filter(|c| rva < c.address.saturating_add(c.size))?;
        let mut rules = Vec::new();
        for (n, l) in self.slice(&c.text).lines().enumerate() {
            if n > MAX_CFI_DELTAS {
                return None;
            }
            if n == 0 {
                // STACK CFI INIT address size rules
                rules.push(l.splitn(6, ' ').nth(5)?);
            } else {
                let mut p = l.splitn(4, ' ');
                let (_, _, addr, r) = (p.next(), p.next(), p.next().and_then(hex), p.next());
                match (addr, r) {
                    (Some(a), Some(r)) if a <= rva => rules.push(r),
                    (Some(_), Some(_)) => break,
                    _ => {}
                }
            }
        }
        Some(rules)
    }
}

fn parse_stack_win(line: &str) -> Option<StackWin> {
    let f: Vec<&str> = line.splitn(14, ' ').collect();
    if f.len() < 13 {
        return None;
    }
    let kind = hex(f[2])? as u8;
    let has_program = f[11] == "1";
    let last = f[12..].join(" ");
    Some(StackWin {
        kind,
        address: hex(f[3])?,
        size: hex(f[4])?,
        prolog_size: hex(f[5])? as u32,
        epilog_size: hex(f[6])? as u32,
        parameter_size: hex(f[7])? as u32,
        saved_register_size: hex(f[8])? as u32,
        local_size: hex(f[9])? as u32,
        max_stack_size: hex(f[10])? as u32,
        allocates_base_pointer: !has_program && last.trim() == "1",
        program: has_program.then_some(last),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_functions_lines_publics_and_stack_records() {
        let text = "MODULE windows x86 ABC1 t.pdb\nFILE 1 c:\\t.cc\nFUNC 1000 20 4 crash(int)\n1000 10 42 1\n1010 10 43 1\nPUBLIC 2000 0 _start\nSTACK WIN 4 1000 20 3 0 4 0 8 0 1 $T0 .raSearch = $eip $T0 ^ = $esp $T0 4 + =\nSTACK CFI INIT 3000 10 .cfa: $esp 4 + .ra: .cfa 4 - ^\nSTACK CFI 3001 .cfa: $esp 8 +\nSTACK CFI 3005 .cfa: $esp 12 +\ngarbage line here\n";
        let s = BreakpadSymbols::parse(text);
        assert_eq!(
            s.lookup(0x1012),
            Some(("crash(int)".into(), 0x12, Some(("c:\\t.cc".into(), 43)), 4))
        );
        assert_eq!(s.lookup(0x2004).map(|l| l.0), Some("_start".into()));
        let w = s.stack_win(0x1005).unwrap();
        assert_eq!(w.kind, 4);
        assert!(w.program.as_deref().unwrap().starts_with("$T0 .raSearch"));
        assert_eq!(
            s.cfi_rules(0x3002).unwrap(),
            vec![".cfa: $esp 4 + .ra: .cfa 4 - ^", ".cfa: $esp 8 +"]
        );
        assert_eq!(
            s.cfi_rules(0x3000).unwrap(),
            vec![".cfa: $esp 4 + .ra: .cfa 4 - ^"]
        );
        assert_eq!(s.skipped_lines, 1);
        assert!(s.in_func(0x101f) && !s.in_func(0x1020));
        assert_eq!(s.symbols().count(), 2);
    }

    /// Records whose address plus size passes 2^64 cover up to the top of the address space:
    /// the end is not wrapped round to a small number (which hid them) nor an overflow panic.
    #[test]
    fn records_reaching_past_2_64_cover_the_top_of_the_address_space() {
        let text = "MODULE windows x86_64 ABC1 t.pdb\nFILE 1 t.cc\n\
            FUNC ffffffffffffff00 200 0 top\nffffffffffffff00 200 7 1\n\
            STACK WIN 4 ffffffffffffff00 200 0 0 0 0 0 0 1 $eip 4 =\n\
            STACK CFI INIT ffffffffffffff00 200 .cfa: $rsp 8 + .ra: .cfa 8 - ^\n";
        let s = BreakpadSymbols::parse(text);
        let hit = s
            .lookup(0xffff_ffff_ffff_ff10)
            .expect("the FUNC covers the address");
        assert_eq!(hit.0, "top");
        assert_eq!(hit.2, Some(("t.cc".to_string(), 7)));
        assert!(s.in_func(u64::MAX - 1));
        assert!(s.stack_win(0xffff_ffff_ffff_ff10).is_some());
        assert!(s.cfi_rules(0xffff_ffff_ffff_ff10).is_some());
    }

    /// Every unwind through a CFI block reads its deltas again: a block of millions of deltas
    /// (each line a few bytes) would cost that much per frame, so it is not used.
    #[test]
    fn cfi_blocks_with_more_deltas_than_any_function_are_not_used() {
        let mut text = String::from("STACK CFI INIT 1000 100 .cfa: $rsp 8 + .ra: .cfa 8 - ^\n");
        for _ in 0..=MAX_CFI_DELTAS {
            text.push_str("STACK CFI 1001 .cfa: $rsp 16 +\n");
        }
        text.push_str("STACK CFI INIT 2000 10 .cfa: $rsp 8 + .ra: .cfa 8 - ^\nSTACK CFI 2001 .cfa: $rsp 16 +\n");
        let s = BreakpadSymbols::parse(&text);
        assert!(s.cfi_rules(0x1010).is_none());
        assert_eq!(s.cfi_rules(0x2004).map(|r| r.len()), Some(2));
    }

    /// A .sym file cut in the middle of a UTF-8 sequence (an interrupted copy or download)
    /// still gives everything before the cut.
    #[test]
    fn a_file_cut_inside_a_utf8_sequence_loads_what_precedes_the_cut() {
        let path = std::env::temp_dir().join(format!("dumpdiag-cut-{}.sym", std::process::id()));
        let mut bytes = "MODULE windows x86_64 ABC1 t.pdb\nFUNC 1000 10 0 caf\u{e9}\nFUNC 2000 10 0 na\u{ef}ve\n"
            .as_bytes()
            .to_vec();
        let cut = bytes.len() - 4; // inside the two bytes of 'ï'
        bytes.truncate(cut);
        std::fs::write(&path, &bytes).unwrap();
        let s = BreakpadSymbols::open(&path);
        let _ = std::fs::remove_file(&path);
        let s = s.expect("the file loads");
        assert_eq!(s.lookup(0x1004).map(|h| h.0), Some("caf\u{e9}".to_string()));
        assert!(s.lookup(0x2004).is_some_and(|h| h.0.starts_with("na")));
    }
}
