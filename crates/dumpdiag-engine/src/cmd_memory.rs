//! Memory commands: `db dw dd dq dc da du dp`, `dps dpp dpa dpu dds dqs`, `s`, `!address`,
//! `!heap -s`.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::cmd_stacks;
use crate::format;
use crate::registry::{Command, Invocation};
use crate::{CommandError, Session};
use dumpdiag_os::address::Usage;
use dumpdiag_os::nt_heap::{self, HeapWalk, NotNtHeap, NtHeap, WalkStop};
use dumpdiag_os::peb;
use dumpdiag_stack::raw::{RawStack, SlotRole};
use dumpdiag_target::{
    MemoryExt, MEM_COMMIT, MEM_FREE, MEM_IMAGE, MEM_MAPPED, MEM_PRIVATE, MEM_RESERVE,
};

/// Most bytes one display or search command covers (WinDbg asks for `L?` past 256 MB).
const MAX_DISPLAY_BYTES: u64 = 1 << 20;
/// Most captured bytes one search scans (the address span itself is free: only captured
/// memory is read).
const MAX_SEARCH_SCANNED: u64 = 4 << 30;
const MAX_SEARCH_HITS: usize = 4096;

pub(crate) const COMMANDS: &[Command] = &[
    Command {
        names: &["db", "dw", "dd", "dq", "dc", "dp"],
        usage: "d{b|w|d|q|c|p} [address [L count | end]]",
        help: "Memory as bytes with ASCII, words, dwords, qwords, dwords with ASCII, or \
               pointers; with no address, where the last one stopped.",
        family: None,
        arguments: &[],
        run: display,
    },
    Command {
        names: &["da", "du"],
        usage: "d{a|u} [address [L count | end]]",
        help: "An ASCII (da) or UTF-16 (du) string.",
        family: None,
        arguments: &[],
        run: display,
    },
    Command {
        names: &["dps", "dds", "dqs", "dpp", "dpa", "dpu"],
        usage: "d{ps|ds|qs|pp|pa|pu} [address [L count | end]]",
        help: "Pointers with their symbols (dps, dds, dqs; on the stack, each frame's return \
               slot marked), with what they point to (dpp), or their ASCII/UTF-16 strings.",
        family: None,
        arguments: &[],
        run: display,
    },
    Command {
        names: &["s"],
        usage: "s -{a|u|b|w|d|q} range pattern",
        help: "Search the captured memory of a range for a string or values.",
        family: None,
        arguments: &["-a", "-u", "-b", "-w", "-d", "-q"],
        run: search,
    },
    Command {
        names: &["!address"],
        usage: "!address [-summary | address]",
        help: "Memory regions and what uses them; one address's region; or the totals.",
        family: None,
        arguments: &["-summary"],
        run: address,
    },
    Command {
        names: &["!heap"],
        usage: "!heap -s [-v] | -a [heap] | -h [heap] | -x address",
        help: "The process heaps with what they reserve and commit (-v: segment by segment); \
               -a: a heap's header, segments and entries; -h: its segments and entries; -x: \
               the heap block an address is in.",
        family: None,
        arguments: &["-s", "-v", "-a", "-h", "-x"],
        run: heap,
    },
];

fn usage(text: &str) -> CommandError {
    CommandError::Usage(text.to_string())
}

/// Parsed `addr [L count | L?count | end]`.
pub(crate) struct Range {
    pub start: u64,
    /// In units of the command's element size, when a count was given.
    pub count: Option<u64>,
    pub end: Option<u64>,
}

pub(crate) fn parse_range(s: &Session, rest: &str) -> Result<Range, CommandError> {
    let rest = rest.trim();
    if rest.is_empty() {
        return Err(usage("Missing address"));
    }
    // Find an ` L` length clause.
    let lower = rest.to_ascii_lowercase();
    if let Some(pos) = lower.find(" l") {
        let start = s.eval(&rest[..pos])?;
        let len = rest[pos + 2..].trim_start_matches('?');
        return Ok(Range {
            start,
            count: Some(s.eval(len)?),
            end: None,
        });
    }
    let parts: Vec<&str> = rest.split_whitespace().collect();
    if parts.len() == 2 {
        let start = s.eval(parts[0])?;
        let end = s.eval(parts[1])?;
        if end < start {
            return Err(usage("Range error: end before start"));
        }
        return Ok(Range {
            start,
            count: None,
            end: Some(end),
        });
    }
    Ok(Range {
        start: s.eval(rest)?,
        count: None,
        end: None,
    })
}

fn ascii(b: u8) -> char {
    if (0x20..0x7f).contains(&b) {
        b as char
    } else {
        '.'
    }
}

/// One `db`-style line: 16 bytes, a dash after the eighth, ASCII after.
fn byte_line(s: &Session, a: u64, bytes: &[Option<u8>]) -> String {
    let mut hex = String::new();
    let mut text = String::new();
    for (i, b) in bytes.iter().enumerate() {
        let sep = if i == 8 { '-' } else { ' ' };
        if i > 0 {
            hex.push(sep);
        }
        match b {
            Some(v) => {
                let _ = write!(hex, "{v:02x}");
                text.push(ascii(*v));
            }
            None => {
                hex.push_str("??");
                text.push('?');
            }
        }
    }
    format!("{}  {hex:<47}  {text}\n", s.addr(a))
}

fn read_opt(s: &Session, a: u64, n: usize) -> Vec<Option<u8>> {
    let got = s.target().memory().read_bytes(a, n);
    (0..n).map(|i| got.get(i).copied()).collect()
}

fn display(s: &mut Session, inv: &Invocation) -> Result<String, CommandError> {
    display_memory(s, &inv.verb.to_ascii_lowercase(), inv.args)
}

/// `verb` (lower case) over `rest`'s range.
fn display_memory(s: &mut Session, verb: &str, rest: &str) -> Result<String, CommandError> {
    let ptr = s.ptr();
    let (unit, per_line, default_count) = match verb {
        "db" => (1, 16, 0x80),
        "dw" => (2, 8, 0x40),
        "dd" | "dc" => (4, 4, 0x20),
        "dq" => (8, 2, 0x10),
        "dp" => (ptr, (16 / ptr) as usize, 0x80 / ptr),
        "da" | "du" => (if verb == "du" { 2 } else { 1 }, 0, 0x100),
        "dds" => (4, 1, 0x20),
        "dqs" => (8, 1, 0x10),
        _ => (ptr, 1, 0x80 / ptr),
    };
    let r = if rest.trim().is_empty() {
        Range {
            start: s.next_display.ok_or_else(|| usage("Missing address"))?,
            count: None,
            end: None,
        }
    } else {
        parse_range(s, rest)?
    };
    let bytes_total = match (r.count, r.end) {
        (Some(c), _) => c.saturating_mul(unit),
        (None, Some(e)) => e - r.start,
        _ => default_count * unit,
    }
    .min(MAX_DISPLAY_BYTES);
    let mut o = String::new();
    let mem = s.target().memory();
    match verb {
        "da" | "du" => {
            let max_chars = if r.count.is_some() || r.end.is_some() {
                bytes_total / unit
            } else {
                0x100
            };
            let text = if verb == "da" {
                mem.read_cstring(r.start, max_chars as usize)
            } else {
                mem.read_wstring(r.start, max_chars as usize)
            };
            match text {
                Some(t) => {
                    let chars: Vec<char> = t.chars().collect();
                    let mut a = r.start;
                    if chars.is_empty() {
                        let _ = writeln!(o, "{}  \"\"", s.addr(a));
                    }
                    for chunk in chars.chunks(48) {
                        let piece: String = chunk
                            .iter()
                            .map(|&c| if c.is_control() { '.' } else { c })
                            .collect();
                        let _ = writeln!(o, "{}  \"{piece}\"", s.addr(a));
                        a = a.wrapping_add(
                            chunk
                                .iter()
                                .map(|c| {
                                    if verb == "du" {
                                        2 * c.len_utf16() as u64
                                    } else {
                                        c.len_utf8() as u64
                                    }
                                })
                                .sum::<u64>(),
                        );
                    }
                }
                None => {
                    let _ = writeln!(o, "{}  ????????", s.addr(r.start));
                }
            }
            s.next_display = Some(r.start.wrapping_add(bytes_total));
        }
        "dps" | "dds" | "dqs" | "dpp" | "dpa" | "dpu" => {
            // Slots stop at the top of the address space; they do not wrap round to 0.
            let n = (bytes_total / unit).min((u64::MAX - r.start) / unit);
            // Over the current thread's stack, symbolic values are marked by their place in the
            // walked call chain (Coincidental Symbolic Information).
            let raw = if matches!(verb, "dps" | "dds" | "dqs") {
                raw_stack_at(s, r.start)
            } else {
                None
            };
            for i in 0..n {
                let a = r.start.wrapping_add(i * unit);
                let Some(v) = mem.read_ptr(a, unit) else {
                    let _ = writeln!(
                        o,
                        "{}  {}",
                        s.addr(a),
                        "?".repeat(if unit == 8 { 17 } else { 8 })
                    );
                    continue;
                };
                let vs = format::addr(v, unit);
                let extra = match verb {
                    "dpp" => {
                        let inner = mem.read_ptr(v, unit).map(|x| {
                            format!(
                                " {}{}",
                                format::addr(x, unit),
                                s.describe_address(x)
                                    .map(|d| format!(" {d}"))
                                    .unwrap_or_default()
                            )
                        });
                        inner.unwrap_or_else(|| {
                            format!(" {}", "?".repeat(if unit == 8 { 17 } else { 8 }))
                        })
                    }
                    "dpa" => mem
                        .read_cstring(v, 64)
                        .map(|t| {
                            format!(
                                " \"{}\"",
                                t.chars()
                                    .map(|c| if c.is_control() { '.' } else { c })
                                    .collect::<String>()
                            )
                        })
                        .unwrap_or_default(),
                    "dpu" => mem
                        .read_wstring(v, 64)
                        .map(|t| {
                            format!(
                                " \"{}\"",
                                t.chars()
                                    .map(|c| if c.is_control() { '.' } else { c })
                                    .collect::<String>()
                            )
                        })
                        .unwrap_or_default(),
                    _ => {
                        let described = s
                            .describe_address(v)
                            .map(|d| format!(" {d}"))
                            .unwrap_or_default();
                        let mark = match raw.as_ref().and_then(|rs| rs.role(a, v)) {
                            Some(SlotRole::FrameReturn(f)) if !described.is_empty() => {
                                format!("  <- frame {f:02x}")
                            }
                            Some(SlotRole::NotInCallChain) if !described.is_empty() => {
                                "  <- not in the call chain".to_string()
                            }
                            _ => String::new(),
                        };
                        format!("{described}{mark}")
                    }
                };
                let _ = writeln!(o, "{}  {vs}{extra}", s.addr(a));
            }
            s.next_display = Some(r.start.wrapping_add(n * unit));
        }
        _ => {
            let line_bytes = unit * per_line as u64;
            let mut a = r.start;
            // The range stops at the top of the address space; it does not wrap round to 0.
            let end = r.start.saturating_add(bytes_total);
            while a < end {
                let n = (end - a).min(line_bytes) as usize;
                let raw = read_opt(s, a, n);
                if verb == "db" {
                    o.push_str(&byte_line(s, a, &raw));
                } else {
                    let mut line = format!("{} ", s.addr(a));
                    for chunk in raw.chunks(unit as usize) {
                        if chunk.iter().all(Option::is_some) && chunk.len() == unit as usize {
                            let mut v = 0u64;
                            for (i, b) in chunk.iter().enumerate() {
                                v |= (b.unwrap_or(0) as u64) << (8 * i);
                            }
                            let cell = match unit {
                                2 => format!("{v:04x}"),
                                4 => format!("{v:08x}"),
                                _ => format::addr(v, 8),
                            };
                            let _ = write!(line, " {cell}");
                        } else {
                            let _ = write!(
                                line,
                                " {}",
                                "?".repeat(if unit == 8 { 17 } else { 2 * unit as usize })
                            );
                        }
                    }
                    if verb == "dc" {
                        let text: String =
                            raw.iter().map(|b| b.map(ascii).unwrap_or('?')).collect();
                        let pad = 4 * 9 - (raw.len() / 4) * 9;
                        let _ = write!(line, "{}  {text}", " ".repeat(pad));
                    }
                    line.push('\n');
                    o.push_str(&line);
                }
                a += n as u64;
            }
            s.next_display = Some(end);
        }
    }
    Ok(o)
}

/// `s -[a|u|b|w|d|q] range pattern`.
fn search(s: &mut Session, inv: &Invocation) -> Result<String, CommandError> {
    let (flag, after) = inv
        .args
        .split_once(char::is_whitespace)
        .ok_or_else(|| usage("Usage: s -[a|u|b|w|d|q] range pattern"))?;
    let kind = flag.trim_start_matches('-').to_ascii_lowercase();
    let after = after.trim();
    // The pattern is a quoted string (-a, -u) or the trailing values.
    let (range_text, pattern): (&str, Vec<u8>) = match kind.as_str() {
        "a" | "u" => {
            let q = after
                .find('"')
                .ok_or_else(|| usage("Search string must be quoted"))?;
            let text = after[q + 1..].trim_end().trim_end_matches('"');
            let bytes = if kind == "a" {
                text.as_bytes().to_vec()
            } else {
                text.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
            };
            (&after[..q], bytes)
        }
        "b" | "w" | "d" | "q" => {
            let unit = match kind.as_str() {
                "b" => 1,
                "w" => 2,
                "d" => 4,
                _ => 8,
            };
            let words: Vec<&str> = after.split_whitespace().collect();
            // Range is either `start L len` (3 words) or `start end` (2 words).
            let range_words = if words
                .get(1)
                .is_some_and(|w| w.to_ascii_lowercase().starts_with('l'))
            {
                if words[1].len() > 1 && words[1] != "L?" && words[1] != "l?" {
                    2
                } else {
                    3
                }
            } else {
                2
            };
            if words.len() <= range_words {
                return Err(usage("Missing search pattern"));
            }
            let mut bytes = Vec::new();
            for w in &words[range_words..] {
                let v = s.eval(w)?;
                bytes.extend_from_slice(&v.to_le_bytes()[..unit]);
            }
            let range_end = after.find(words[range_words]).unwrap_or(after.len());
            (&after[..range_end], bytes)
        }
        _ => return Err(CommandError::Usage(format!("Unknown search type '{flag}'"))),
    };
    if pattern.is_empty() {
        return Err(usage("Empty search pattern"));
    }
    let r = parse_range(s, range_text)?;
    let len = match (r.count, r.end) {
        (Some(c), _) => c,
        (None, Some(e)) => e - r.start,
        _ => return Err(usage("Search needs a range (start end, or start L length)")),
    };
    let end = r.start.saturating_add(len);
    let t = s.target();
    let mut hits = Vec::new();
    let mut scanned = 0u64;
    'ranges: for &(base, size) in t.captured_ranges() {
        let lo = base.max(r.start);
        let hi = base.saturating_add(size).min(end);
        if lo >= hi {
            continue;
        }
        scanned = scanned.saturating_add(hi - lo);
        if scanned > MAX_SEARCH_SCANNED {
            break;
        }
        let mut a = lo;
        const CHUNK: u64 = 1 << 20;
        while a < hi {
            let n = (hi - a).min(CHUNK) + pattern.len() as u64 - 1;
            let buf = t.memory().read_bytes(a, n as usize);
            let limit = ((hi - a).min(CHUNK)) as usize;
            for i in 0..limit.min(buf.len()) {
                if buf[i..].starts_with(&pattern) {
                    hits.push(a.wrapping_add(i as u64));
                    if hits.len() >= MAX_SEARCH_HITS {
                        break 'ranges;
                    }
                }
            }
            // A range ending near 2^64 must not wrap `a` round to 0 and start over.
            a = a.saturating_add(CHUNK);
        }
    }
    let mut o = String::new();
    for h in &hits {
        match kind.as_str() {
            "d" | "q" | "w" => {
                let _ = write!(
                    o,
                    "{}",
                    display_memory(
                        s,
                        if kind == "d" {
                            "dd"
                        } else if kind == "q" {
                            "dq"
                        } else {
                            "dw"
                        },
                        &format!(
                            "{h:#x} L{}",
                            if kind == "q" {
                                2
                            } else if kind == "d" {
                                4
                            } else {
                                8
                            }
                        )
                    )?
                );
            }
            _ => {
                let raw = read_opt(s, *h, 16);
                o.push_str(&byte_line(s, *h, &raw));
            }
        }
    }
    if hits.len() >= MAX_SEARCH_HITS {
        let _ = writeln!(o, "Search stopped after {MAX_SEARCH_HITS} hits");
    }
    Ok(o)
}

fn state_name(v: u32) -> &'static str {
    match v {
        MEM_COMMIT => "MEM_COMMIT",
        MEM_RESERVE => "MEM_RESERVE",
        MEM_FREE => "MEM_FREE",
        _ => "",
    }
}

fn type_name(v: u32) -> &'static str {
    match v {
        MEM_PRIVATE => "MEM_PRIVATE",
        MEM_MAPPED => "MEM_MAPPED",
        MEM_IMAGE => "MEM_IMAGE",
        _ => "",
    }
}

pub fn protect_name(v: u32) -> String {
    let base = match v & 0xff {
        0x01 => "PAGE_NOACCESS",
        0x02 => "PAGE_READONLY",
        0x04 => "PAGE_READWRITE",
        0x08 => "PAGE_WRITECOPY",
        0x10 => "PAGE_EXECUTE",
        0x20 => "PAGE_EXECUTE_READ",
        0x40 => "PAGE_EXECUTE_READWRITE",
        0x80 => "PAGE_EXECUTE_WRITECOPY",
        0 => "",
        _ => "PAGE_UNKNOWN",
    };
    let mut s = base.to_string();
    for (bit, name) in [
        (0x100, "PAGE_GUARD"),
        (0x200, "PAGE_NOCACHE"),
        (0x400, "PAGE_WRITECOMBINE"),
    ] {
        if v & bit != 0 {
            s.push_str(" | ");
            s.push_str(name);
        }
    }
    s
}

fn address(s: &mut Session, inv: &Invocation) -> Result<String, CommandError> {
    let rest = inv.args;
    let map = s.address_map();
    let mut o = String::new();
    if !map.from_memory_info {
        let _ = writeln!(o, "Note: the dump has no MemoryInfoList; regions are inferred from captured memory and modules.\n");
    }
    if rest.eq_ignore_ascii_case("-summary") {
        o.push_str(&summary(s));
        return Ok(o);
    }
    if rest.is_empty() {
        let w = if s.ptr() == 8 { 17 } else { 8 };
        let _ = writeln!(
            o,
            "  {:>w$} {:>w$} {:>w$} {:<12} {:<12} {:<24} Usage",
            "BaseAddress", "EndAddress+1", "RegionSize", "Type", "State", "Protect"
        );
        let _ = writeln!(o, "{}", "-".repeat(3 * w + 70));
        for r in &map.regions {
            let i = &r.info;
            let _ = writeln!(
                o,
                "+ {} {} {} {:<12} {:<12} {:<24} {:<10} {}",
                s.addr(i.base),
                s.addr(i.end()),
                s.addr(i.size),
                type_name(i.kind),
                state_name(i.state),
                protect_name(i.protect),
                r.usage.name(),
                r.usage.detail(s.target())
            );
        }
        return Ok(o);
    }
    let a = s.eval(rest)?;
    let Some(r) = map.region_at(a) else {
        let _ = writeln!(
            o,
            "Usage:                  <unknown>\nAddress {} is not in any region the dump describes",
            s.addr(a)
        );
        return Ok(o);
    };
    if o.is_empty() {
        o.push('\n');
    }
    o.push_str(&region_report(s, a, r));
    Ok(o)
}

/// `!address addr`: the region holding the address in WinDbg's layout: usage, bounds, size,
/// state, protection, type, allocation; for an image its names, and for every usage the
/// commands that tell more; then where the bytes at the address come from and how many follow.
fn region_report(s: &Session, a: u64, r: &dumpdiag_os::address::Region) -> String {
    let i = &r.info;
    let mut o = String::new();
    // WinDbg: `00000000`00003000 (  12.000 kB)`.
    let unit = format::size_with_unit(i.size);
    let unit = unit
        .split_once(" (")
        .map_or("", |x| x.1.trim_end_matches(')'));
    let size = if s.ptr() == 8 {
        format!("{:08x}`{:08x} ({unit})", i.size >> 32, i.size & 0xffff_ffff)
    } else {
        format!("{:08x} ({unit})", i.size)
    };
    let _ = writeln!(o, "Usage:                  {}", r.usage.name());
    let _ = writeln!(o, "Base Address:           {}", s.addr(i.base));
    let _ = writeln!(o, "End Address:            {}", s.addr(i.end()));
    let _ = writeln!(o, "Region Size:            {size}");
    let _ = writeln!(
        o,
        "State:                  {:08x}          {}",
        i.state,
        state_name(i.state)
    );
    let _ = writeln!(
        o,
        "Protect:                {:08x}          {}",
        i.protect,
        protect_name(i.protect)
    );
    let _ = writeln!(
        o,
        "Type:                   {:08x}          {}",
        i.kind,
        type_name(i.kind)
    );
    let _ = writeln!(o, "Allocation Base:        {}", s.addr(i.allocation_base));
    let _ = writeln!(
        o,
        "Allocation Protect:     {:08x}          {}",
        i.allocation_protect,
        protect_name(i.allocation_protect)
    );
    let mut more: Vec<String> = Vec::new();
    match &r.usage {
        Usage::Image(_) => {
            if let Some(m) = s.target().module_at(a) {
                let name = m.short_name();
                let _ = writeln!(o, "Image Path:             {}", m.file_name());
                let _ = writeln!(o, "Module Name:            {name}");
                let _ = writeln!(o, "Loaded Image Name:      {}", m.path);
                let _ = writeln!(o, "Mapped Image Name:      ");
                more.push(format!("lmv m {name}"));
                more.push(format!("!lmi {name}"));
                more.push(format!("ln {a:#x}"));
                more.push(format!("!dh {:#x}", m.base));
            }
        }
        Usage::Stack { thread_index, .. } => more.push(format!("~{thread_index}k")),
        Usage::Teb { thread_index, .. } => {
            // One region often holds several TEBs: the address's is the last at or below it.
            let (index, teb) = (0..s.target().threads().len())
                .filter_map(|t| s.teb_of(t).map(|teb| (t, teb)))
                .filter(|&(_, teb)| teb >= i.base && teb <= a)
                .max_by_key(|&(_, teb)| teb)
                .unwrap_or((*thread_index, s.teb_of(*thread_index).unwrap_or(i.base)));
            more.push(format!("~{index}; !teb {teb:#x}"))
        }
        Usage::Peb => more.push("!peb".into()),
        Usage::Heap { heap } => more.push(format!(
            "heap owning the address: !heap -s (heap {heap:#x})"
        )),
        _ => {}
    }
    for m in more {
        let _ = writeln!(o, "More info:              {m}");
    }
    // 1 (target): the dump holds the bytes; 0 (invalid): it does not.
    let length = i.end().saturating_sub(a);
    let captured = s.target().memory().read_bytes(a, 1).len() == 1;
    let _ = writeln!(
        o,
        "\n\nContent source: {}, length: {length:x}",
        if captured {
            "1 (target)"
        } else {
            "0 (invalid)"
        }
    );
    o
}

fn summary(s: &Session) -> String {
    let map = s.address_map();
    let mut usage: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    let mut types: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    let mut states: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    let mut protects: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    let mut largest: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    let (mut busy, mut total) = (0u64, 0u64);
    for r in &map.regions {
        let i = &r.info;
        total = total.saturating_add(i.size);
        let name = r.usage.name();
        let e = usage.entry(name).or_default();
        e.0 += 1;
        e.1 = e.1.saturating_add(i.size);
        let l = largest.entry(name).or_default();
        if i.size > l.1 {
            *l = (i.base, i.size);
        }
        let st = states.entry(state_name(i.state)).or_default();
        st.0 += 1;
        st.1 = st.1.saturating_add(i.size);
        if i.state != MEM_FREE {
            busy = busy.saturating_add(i.size);
            let ty = types.entry(type_name(i.kind)).or_default();
            ty.0 += 1;
            ty.1 = ty.1.saturating_add(i.size);
        }
        if i.state == MEM_COMMIT {
            let p = protects.entry(protect_name(i.protect)).or_default();
            p.0 += 1;
            p.1 = p.1.saturating_add(i.size);
        }
    }
    let pct = |v: u64, of: u64| {
        if of == 0 {
            0.0
        } else {
            v as f64 * 100.0 / of as f64
        }
    };
    let mut o = String::new();
    let mut section =
        |title: &str, rows: Vec<(String, usize, u64)>, busy_pct: bool, free_row: Option<&str>| {
            let _ = writeln!(
                o,
                "\n--- {title:<30} RgnCount ----------- Total Size -------- %ofBusy %ofTotal"
            );
            let mut rows = rows;
            rows.sort_by_key(|row| std::cmp::Reverse(row.2));
            for (name, n, size) in rows {
                let busy_col = if busy_pct && Some(name.as_str()) != free_row {
                    format!("{:6.2}%", pct(size, busy))
                } else {
                    "       ".into()
                };
                let _ = writeln!(
                    o,
                    "{name:<34} {n:>8} {:>34} {busy_col} {:7.2}%",
                    format::size_with_unit(size),
                    pct(size, total)
                );
            }
        };
    section(
        "Usage Summary ----------------",
        usage
            .iter()
            .map(|(k, v)| (k.to_string(), v.0, v.1))
            .collect(),
        true,
        Some("Free"),
    );
    section(
        "Type Summary (for busy) ------",
        types
            .iter()
            .map(|(k, v)| (k.to_string(), v.0, v.1))
            .collect(),
        true,
        None,
    );
    section(
        "State Summary ----------------",
        states
            .iter()
            .map(|(k, v)| (k.to_string(), v.0, v.1))
            .collect(),
        true,
        Some("MEM_FREE"),
    );
    section(
        "Protect Summary (for commit) -",
        protects
            .iter()
            .map(|(k, v)| (k.clone(), v.0, v.1))
            .collect(),
        true,
        None,
    );
    let _ = writeln!(
        o,
        "\n--- Largest Region by Usage ----------- Base Address -------- Region Size ----------"
    );
    for (name, (base, size)) in largest {
        let _ = writeln!(
            o,
            "{name:<38} {:>20} {:>34}",
            s.addr(base),
            format::size_with_unit(size)
        );
    }
    o
}

/// The PEB's NT heaps in the current view (the 32-bit PEB in a WOW64 dump's x86 view), each
/// walked from its own structures, or why it was not; with the PEB's NtGlobalFlag.
fn nt_heaps(s: &Session) -> Result<(Option<u32>, Vec<HeapWalk>), CommandError> {
    let a = s.peb_address().ok_or_else(|| {
        CommandError::Unavailable("PEB address not available (no readable TEB)".into())
    })?;
    let l = s.layout();
    let mem = s.target().memory();
    let p = peb::read_peb(mem, a, &l).ok_or_else(|| {
        CommandError::Unavailable(format!("PEB at {} is not in the dump", s.addr(a)))
    })?;
    Ok((p.nt_global_flag, nt_heap::process_nt_heaps(mem, &p, l.ptr)))
}

/// The heap debugging aids NtGlobalFlag turns on for new heaps, in WinDbg's words.
fn global_flag_aids(flag: u32) -> Vec<&'static str> {
    [
        (0x1000, "stack back traces"), // FLG_USER_STACK_TRACE_DB
        (0x10, "tail checking"),       // FLG_HEAP_ENABLE_TAIL_CHECK
        (0x20, "free checking"),       // FLG_HEAP_ENABLE_FREE_CHECK
        (0x40, "validate parameters"), // FLG_HEAP_VALIDATE_PARAMETERS
    ]
    .into_iter()
    .filter(|(bit, _)| flag & bit != 0)
    .map(|(_, name)| name)
    .collect()
}

fn not_nt_label(why: NotNtHeap) -> &'static str {
    match why {
        NotNtHeap::NotInDump => "header not in the dump",
        NotNtHeap::SegmentHeap => "segment heap (not walked)",
        NotNtHeap::NoSignature => "not an NT heap (no 0xffeeffee/0xeeffeeff)",
    }
}

/// `!heap`: `-s` is WinDbg's summary table, sized from each NT heap's own segments and
/// virtual-alloc blocks (no memory map needed); `-a` / `-h` list a heap's segments and entries.
/// When no heap the PEB names is an NT heap, `-s` falls back to the memory-map view.
fn heap(s: &mut Session, inv: &Invocation) -> Result<String, CommandError> {
    let args: Vec<&str> = inv.args.split_whitespace().collect();
    let mode = ["-s", "-a", "-h", "-x"]
        .into_iter()
        .find(|m| args.contains(m));
    let Some(mode) = mode else {
        return Err(usage(
            "Usage: !heap -s [-v] | -a [heap] | -h [heap] | -x address",
        ));
    };
    let verbose = args.contains(&"-v");
    let which: Option<u64> = match args.iter().find(|a| !a.starts_with('-')) {
        Some(e) => Some(s.eval(e)?),
        None => None,
    };
    let heaps = nt_heaps(s);
    let any_nt = heaps
        .as_ref()
        .is_ok_and(|(_, h)| h.iter().any(|(_, r)| r.is_ok()));
    if mode == "-s" && !any_nt {
        return heap_by_memory_map(s, inv);
    }
    let (global_flag, heaps) = heaps?;
    if mode == "-s" {
        let aids = global_flag_aids(global_flag.unwrap_or(0));
        let mut o = String::new();
        if !aids.is_empty() {
            let _ = writeln!(
                o,
                "NtGlobalFlag enables following debugging aids for new heaps:"
            );
            for a in aids {
                let _ = writeln!(o, "    {a}");
            }
        }
        o.push_str(&heap_summary(s, &heaps, verbose));
        return Ok(o);
    }
    if mode == "-x" {
        let a = which.ok_or_else(|| usage("Usage: !heap -x address"))?;
        return heap_block_of(s, &heaps, a);
    }
    let mut o = String::new();
    let mut shown = 0;
    for (i, (addr, h)) in heaps.iter().enumerate() {
        if which.is_some_and(|w| w != *addr) {
            continue;
        }
        shown += 1;
        match h {
            Ok(h) => heap_entries(s, &mut o, i + 1, h, mode == "-a"),
            Err(why) => {
                let _ = writeln!(
                    o,
                    "{:>3}:   {}  {}",
                    i + 1,
                    s.addr(*addr),
                    not_nt_label(*why)
                );
            }
        }
    }
    if shown == 0 {
        return Err(CommandError::Unavailable(format!(
            "{} is not one of the process's heaps (!heap -s lists them)",
            which.map_or_else(String::new, |w| s.addr(w))
        )));
    }
    Ok(o)
}

fn heap_summary(s: &Session, heaps: &[HeapWalk], verbose: bool) -> String {
    let w = if s.ptr() == 8 { 16 } else { 8 };
    let k = |b: u64| b / 1024;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:<w$} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>5} {:>6} {:>5}",
        "Heap", "Flags", "Reserv", "Commit", "Virt", "Free", "List", "UCR", "Virt", "Segs"
    );
    let _ = writeln!(
        o,
        "{:<w$} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>5} {:>6} {:>5}",
        "", "", "(k)", "(k)", "(k)", "(k)", "length", "", "blocks", ""
    );
    let rule = "-".repeat(w + 73);
    let _ = writeln!(o, "{rule}");
    let (mut reserved, mut committed, mut count) = (0u64, 0u64, 0usize);
    let mut notes = Vec::new();
    for (addr, h) in heaps {
        let h = match h {
            Ok(h) => h,
            Err(why) => {
                let by_map = s
                    .address_map()
                    .heaps
                    .iter()
                    .find(|m| m.base == *addr && m.reserved() > 0)
                    .map(|m| {
                        format!(
                            " (memory map: {}k reserved, {}k committed)",
                            k(m.reserved()),
                            k(m.committed())
                        )
                    })
                    .unwrap_or_default();
                let _ = writeln!(o, "{:0w$x} {}{by_map}", addr, not_nt_label(*why));
                continue;
            }
        };
        count += 1;
        reserved = reserved.saturating_add(h.reserved());
        committed = committed.saturating_add(h.committed());
        let _ = writeln!(
            o,
            "{:0w$x} {:08x} {:>8} {:>8} {:>8} {:>8} {:>6} {:>5} {:>6} {:>5}",
            h.address,
            h.flags,
            k(h.reserved()),
            k(h.committed()),
            k(h.virtual_reserved()),
            k(h.free_bytes()),
            h.free_count(),
            h.ucr_count(),
            h.virtual_blocks.len(),
            h.segments.len()
        );
        if verbose {
            for seg in &h.segments {
                let _ = writeln!(
                    o,
                    "    segment {:0w$x}  reserved {:>8}k  committed {:>8}k  {} entries",
                    seg.address,
                    k(seg.reserved()),
                    k(seg.committed()),
                    seg.entries.len()
                );
            }
        }
        for seg in h.segments.iter().filter(|g| g.stop != WalkStop::Complete) {
            notes.push(format!(
                "heap {}: segment {} walk stopped: {}",
                s.addr(h.address),
                s.addr(seg.address),
                seg.stop.describe()
            ));
        }
        notes.extend(
            h.warnings
                .iter()
                .map(|w| format!("heap {}: {w}", s.addr(h.address))),
        );
        // The heap's own counters cover segments the dump may not hold: say so when they
        // differ from what was walked.
        if let Some(c) = h.counters {
            if (
                c.total_reserved,
                c.total_committed,
                c.total_segments as usize,
            ) != (h.reserved(), h.committed(), h.segments.len())
            {
                notes.push(format!(
                    "heap {}: its Counters say {} segment(s), {}k reserved, {}k committed \
                     (walked: {}, {}k, {}k)",
                    s.addr(h.address),
                    c.total_segments,
                    k(c.total_reserved),
                    k(c.total_committed),
                    h.segments.len(),
                    k(h.reserved()),
                    k(h.committed())
                ));
            }
        }
    }
    let _ = writeln!(o, "{rule}");
    let _ = writeln!(
        o,
        "{count} NT heap(s), {}k reserved, {}k committed (segments and virtual blocks; Virt: \
         virtual-alloc blocks' reservation; Free/List: free entries walked)",
        k(reserved),
        k(committed)
    );
    for n in notes {
        let _ = writeln!(o, "{n}");
    }
    o
}

/// `!heap -x ADDR`: the walked entry (or virtual-alloc block) that holds the address, with its
/// heap and segment, in WinDbg's columns.
fn heap_block_of(s: &Session, heaps: &[HeapWalk], a: u64) -> Result<String, CommandError> {
    let p = |v: u64| format::plain(v, s.ptr());
    for h in heaps.iter().filter_map(|(_, h)| h.as_ref().ok()) {
        let user = h.layout.granule;
        for seg in &h.segments {
            let Some(e) = seg
                .entries
                .iter()
                .find(|e| e.address <= a && a - e.address < e.size)
            else {
                continue;
            };
            let mut o = String::new();
            let _ = writeln!(
                o,
                "{:<w$}  {:<w$}  {:<w$}  {:<w$}  {:>8}  {:>8}  {:>6}  Flags",
                "Entry",
                "User",
                "Heap",
                "Segment",
                "Size",
                "PrevSize",
                "Unused",
                w = 2 * s.ptr() as usize
            );
            let _ = writeln!(o, "{}", "-".repeat(4 * 2 * s.ptr() as usize + 44));
            let mut flags = vec![if e.busy() { "busy" } else { "free" }];
            if e.flags & nt_heap::ENTRY_EXTRA_PRESENT != 0 {
                flags.push("extra");
            }
            if e.flags & nt_heap::ENTRY_FILL_PATTERN != 0 {
                flags.push("fill");
            }
            if e.flags & nt_heap::ENTRY_VIRTUAL_ALLOC != 0 {
                flags.push("internal");
            }
            if e.flags & nt_heap::ENTRY_LAST != 0 {
                flags.push("last");
            }
            let _ = writeln!(
                o,
                "{}  {}  {}  {}  {:>8x}  {:>8x}  {:>6x}  {}",
                p(e.address),
                p(e.address.wrapping_add(user)),
                p(h.address),
                p(seg.address),
                e.size,
                e.prev_size,
                e.unused_bytes,
                flags.join(" ")
            );
            return Ok(o);
        }
        if let Some(b) = h
            .virtual_blocks
            .iter()
            .find(|b| b.address <= a && a - b.address < b.reserve)
        {
            return Ok(format!(
                "{} is in virtual-alloc block {} of heap {} (commit {:x}, reserve {:x})\n",
                p(a),
                p(b.address),
                p(h.address),
                b.commit,
                b.reserve
            ));
        }
        if let Some(seg) = h
            .segments
            .iter()
            .find(|g| g.address <= a && a < g.last_valid_entry)
        {
            let why = if seg
                .ucrs
                .iter()
                .any(|u| u.address <= a && a - u.address < u.size)
            {
                "in an uncommitted range".to_string()
            } else {
                format!("past where its walk stopped ({})", seg.stop.describe())
            };
            return Ok(format!(
                "{} is in segment {} of heap {}, {why}\n",
                p(a),
                p(seg.address),
                p(h.address)
            ));
        }
    }
    Err(CommandError::Unavailable(format!(
        "{} is in no walked NT heap block",
        p(a)
    )))
}

/// One heap as `!heap -a` (with the header fields) or `!heap -h` shows it: segments, then each
/// segment's entries `address: psize . size [flags] - busy (requested)` and its uncommitted
/// ranges.
fn heap_entries(s: &Session, o: &mut String, index: usize, h: &NtHeap, header: bool) {
    let p = |v: u64| format::plain(v, s.ptr());
    let l = h.layout;
    let _ = writeln!(o, "Index   Address  Name      Debugging options enabled");
    let _ = writeln!(o, "{index:>3}:   {}", p(h.address));
    for seg in &h.segments {
        let _ = writeln!(
            o,
            "    Segment at {} to {} ({:08x} bytes committed)",
            p(seg.base),
            p(seg.last_valid_entry),
            seg.committed()
        );
    }
    if header {
        let _ = writeln!(o, "    Flags:                {:08x}", h.flags);
        let _ = writeln!(o, "    ForceFlags:           {:08x}", h.force_flags);
        let _ = writeln!(o, "    Granularity:          {} bytes", l.granule);
        let _ = writeln!(o, "    Segment Reserve:      {}", p(h.segment_reserve));
        let _ = writeln!(o, "    Segment Commit:       {}", p(h.segment_commit));
        let _ = writeln!(
            o,
            "    Total Free Size:      {}",
            p(h.total_free_size / l.granule)
        );
        let _ = writeln!(o, "    Max. Allocation Size: {}", p(h.max_allocation_size));
        let _ = writeln!(
            o,
            "    Virtual Alloc List:   {}",
            p(h.address.wrapping_add(l.heap_virtual_blocks))
        );
        let _ = writeln!(
            o,
            "    Uncommitted ranges:   {}",
            p(h.address.wrapping_add(l.heap_ucr_list))
        );
        let _ = writeln!(
            o,
            "    FreeList[ 00 ] at {}",
            p(h.address.wrapping_add(l.heap_free_lists))
        );
        let _ = writeln!(
            o,
            "    Header encoding:      {}",
            if h.encode_flag_mask & nt_heap::ENCODE_FLAG != 0 {
                "on (EncodeFlagMask 0x100000)"
            } else {
                "off"
            }
        );
    }
    for (i, seg) in h.segments.iter().enumerate() {
        let _ = writeln!(o);
        let _ = writeln!(o, "    Segment{i:02} at {}:", p(seg.address));
        let _ = writeln!(o, "        Flags:           {:08x}", seg.flags);
        let _ = writeln!(o, "        Base:            {}", p(seg.base));
        let _ = writeln!(o, "        First Entry:     {}", p(seg.first_entry));
        let _ = writeln!(o, "        Last Entry:      {}", p(seg.last_valid_entry));
        let _ = writeln!(o, "        Total Pages:     {:08x}", seg.pages);
        let _ = writeln!(o, "        Total UnCommit:  {:08x}", seg.uncommitted_pages);
        let _ = writeln!(
            o,
            "        Largest UnCommit:{:08x}",
            seg.largest_ucr() / 0x1000
        );
        let _ = writeln!(o, "        UnCommitted Ranges: ({})", seg.ucrs.len());
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "    Heap entries for Segment{i:02} in Heap {}",
            p(h.address)
        );
        let _ = writeln!(
            o,
            "         address: psize . size  flags   state (requested size)"
        );
        let mut ucrs = seg.ucrs.iter().peekable();
        for e in &seg.entries {
            while let Some(u) = ucrs.next_if(|u| u.address < e.address) {
                let _ = writeln!(
                    o,
                    "        {}:      {:08x}      - uncommitted bytes.",
                    p(u.address),
                    u.size
                );
            }
            // WinDbg's words: a busy block with FILL_PATTERN has its tail filled (", tail
            // fill"), a free one its body ("free fill").
            let fill = e.flags & nt_heap::ENTRY_FILL_PATTERN != 0;
            let state = match (e.busy(), fill) {
                (true, false) => format!("busy ({:x})", e.requested()),
                (true, true) => format!("busy ({:x}), tail fill", e.requested()),
                (false, false) => "free".to_string(),
                (false, true) => "free fill".to_string(),
            };
            let mut extra = String::new();
            for (bit, name) in [
                (nt_heap::ENTRY_VIRTUAL_ALLOC, "internal"),
                (nt_heap::ENTRY_LAST, "last entry"),
            ] {
                if e.flags & bit != 0 {
                    extra.push_str(", ");
                    extra.push_str(name);
                }
            }
            let _ = writeln!(
                o,
                "        {}: {:05x} . {:05x} [{:02x}] - {state}{extra}",
                p(e.address),
                e.prev_size,
                e.size,
                e.flags
            );
        }
        for u in ucrs {
            let _ = writeln!(
                o,
                "        {}:      {:08x}      - uncommitted bytes.",
                p(u.address),
                u.size
            );
        }
        if seg.stop != WalkStop::Complete {
            let _ = writeln!(o, "    walk stopped: {}", seg.stop.describe());
        }
        for a in &seg.prev_size_mismatches {
            let _ = writeln!(
                o,
                "    entry {}: PreviousSize does not match the entry before",
                p(*a)
            );
        }
    }
    if !h.virtual_blocks.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(o, "    Virtual blocks:");
        for b in &h.virtual_blocks {
            let _ = writeln!(
                o,
                "        {}: commit {:08x} reserve {:08x}{}",
                p(b.address),
                b.commit,
                b.reserve,
                if b.header_ok {
                    ""
                } else {
                    " (header does not decode)"
                }
            );
        }
    }
    for w in &h.warnings {
        let _ = writeln!(o, "    warning: {w}");
    }
}

/// `!heap -s` when no heap the PEB names is an NT heap that can be walked (Wine's heaps, segment
/// heaps): heaps found by signature and sized from the MemoryInfoList.
fn heap_by_memory_map(s: &mut Session, inv: &Invocation) -> Result<String, CommandError> {
    let args: Vec<&str> = inv.args.split_whitespace().collect();
    let verbose = args.contains(&"-v");
    let t = s.target();
    if t.regions().is_empty() {
        return Err(CommandError::Unavailable(
            "!heap -s needs the dump's MemoryInfoList to size heaps; this dump has none".into(),
        ));
    }
    let heaps = &s.address_map().heaps;
    let w = if s.ptr() == 8 { 16 } else { 8 };
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:<w$}  {:<12} {:>10} {:>10} {:>8}",
        "Heap", "Kind", "Reserv(k)", "Commit(k)", "Segments"
    );
    let _ = writeln!(o, "{}", "-".repeat(w + 46));
    for h in heaps {
        let _ = writeln!(
            o,
            "{:0w$x}  {:<12} {:>10} {:>10} {:>8}",
            h.base,
            h.kind.label(),
            h.reserved() / 1024,
            h.committed() / 1024,
            h.segments.len()
        );
        if verbose {
            for seg in &h.segments {
                let _ = writeln!(
                    o,
                    "    segment {:0w$x}  reserved {:>8}k  committed {:>8}k",
                    seg.base,
                    seg.reserved / 1024,
                    seg.committed / 1024
                );
            }
        }
    }
    let _ = writeln!(o, "{}", "-".repeat(w + 46));
    let _ = writeln!(
        o,
        "{} heap(s), {}k reserved, {}k committed",
        heaps.len(),
        heaps
            .iter()
            .fold(0u64, |a, h| a.saturating_add(h.reserved()))
            / 1024,
        heaps
            .iter()
            .fold(0u64, |a, h| a.saturating_add(h.committed()))
            / 1024
    );
    Ok(o)
}

/// The current (or implicit) thread's walked raw stack, when `addr` lies on that stack.
fn raw_stack_at(s: &Session, addr: u64) -> Option<RawStack<'_>> {
    let ctx = s.context()?;
    let index = s.stack_thread();
    let view = s.view();
    if !dumpdiag_stack::thread_bounds(&view, index, ctx.sp()).contains(addr) {
        return None;
    }
    let stack = cmd_stacks::stack_of(s, index, &ctx);
    RawStack::of(&view, s.symbols(), index, &stack)
}
