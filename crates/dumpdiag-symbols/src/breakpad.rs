//! Breakpad `.sym` text files: FILE, FUNC (+ line records), PUBLIC, STACK WIN and STACK CFI.
//! Parsed once into sorted tables; malformed lines are skipped and counted.

use std::collections::HashMap;

#[derive(Debug, Clone)]
pub struct Func {
    pub address: u64,
    pub size: u64,
    pub parameter_size: u32,
    pub name: String,
    /// (address, size, line, file index), sorted by address.
    pub lines: Vec<(u64, u64, u32, u32)>,
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

#[derive(Debug, Clone)]
pub struct CfiEntry {
    pub address: u64,
    pub size: u64,
    /// INIT rules, then (address, rules) deltas in address order.
    pub init: String,
    pub deltas: Vec<(u64, String)>,
}

#[derive(Debug, Default)]
pub struct BreakpadSymbols {
    pub module_line: String,
    pub files: HashMap<u32, String>,
    pub funcs: Vec<Func>,
    /// (address, parameter size, name), sorted.
    pub publics: Vec<(u64, u32, String)>,
    pub stack_win: Vec<StackWin>,
    pub cfi: Vec<CfiEntry>,
    pub skipped_lines: usize,
}

fn hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s, 16).ok()
}

impl BreakpadSymbols {
    pub fn parse(text: &str) -> BreakpadSymbols {
        let mut s = BreakpadSymbols::default();
        let mut current_func: Option<Func> = None;
        for line in text.lines() {
            let mut it = line.split(' ');
            let head = it.next().unwrap_or("");
            let ok = match head {
                "MODULE" => {
                    s.module_line = line.to_string();
                    true
                }
                "INFO" => true,
                "FILE" => {
                    let rest = &line[5.min(line.len())..];
                    match rest.split_once(' ') {
                        Some((n, name)) => n.parse().map(|n| s.files.insert(n, name.to_string())).is_ok(),
                        None => false,
                    }
                }
                "FUNC" => {
                    if let Some(f) = current_func.take() {
                        s.funcs.push(f);
                    }
                    let rest = line.get(5..).unwrap_or("");
                    let rest = rest.strip_prefix("m ").unwrap_or(rest);
                    let n: Vec<&str> = rest.splitn(4, ' ').collect();
                    match (n.first().and_then(|v| hex(v)), n.get(1).and_then(|v| hex(v)), n.get(2).and_then(|v| hex(v)), n.get(3)) {
                        (Some(a), Some(sz), Some(p), Some(name)) => {
                            current_func = Some(Func { address: a, size: sz, parameter_size: p as u32, name: name.to_string(), lines: Vec::new() });
                            true
                        }
                        _ => false,
                    }
                }
                "PUBLIC" => {
                    if let Some(f) = current_func.take() {
                        s.funcs.push(f);
                    }
                    let rest = line.get(7..).unwrap_or("");
                    let rest = rest.strip_prefix("m ").unwrap_or(rest);
                    let n: Vec<&str> = rest.splitn(3, ' ').collect();
                    match (n.first().and_then(|v| hex(v)), n.get(1).and_then(|v| hex(v)), n.get(2)) {
                        (Some(a), Some(p), Some(name)) => {
                            s.publics.push((a, p as u32, name.to_string()));
                            true
                        }
                        _ => false,
                    }
                }
                "STACK" => {
                    if let Some(f) = current_func.take() {
                        s.funcs.push(f);
                    }
                    match it.next() {
                        Some("WIN") => parse_stack_win(line).map(|w| s.stack_win.push(w)).is_some(),
                        Some("CFI") => parse_cfi(line, &mut s.cfi),
                        _ => false,
                    }
                }
                _ => {
                    // A line record inside a FUNC: address size line file.
                    let parts: Vec<&str> = line.split(' ').collect();
                    match (&mut current_func, parts.as_slice()) {
                        (Some(f), [a, sz, l, file]) => match (hex(a), hex(sz), l.parse::<u32>(), file.parse::<u32>()) {
                            (Some(a), Some(sz), Ok(l), Ok(file)) => {
                                f.lines.push((a, sz, l, file));
                                true
                            }
                            _ => false,
                        },
                        _ => line.is_empty(),
                    }
                }
            };
            if !ok {
                s.skipped_lines += 1;
            }
        }
        if let Some(f) = current_func.take() {
            s.funcs.push(f);
        }
        s.funcs.sort_by_key(|f| f.address);
        for f in &mut s.funcs {
            f.lines.sort_by_key(|l| l.0);
        }
        s.publics.sort_by_key(|p| p.0);
        s.stack_win.sort_by_key(|w| (w.address, std::cmp::Reverse(w.kind)));
        s.cfi.sort_by_key(|c| c.address);
        s
    }

    /// The FUNC containing `rva`, or the nearest PUBLIC below it.
    pub fn lookup(&self, rva: u64) -> Option<(String, u64, Option<(String, u32)>, u32)> {
        let i = self.funcs.partition_point(|f| f.address <= rva);
        if i > 0 {
            let f = &self.funcs[i - 1];
            if rva < f.address + f.size.max(1) {
                let line = {
                    let j = f.lines.partition_point(|l| l.0 <= rva);
                    (j > 0).then(|| &f.lines[j - 1]).filter(|l| rva < l.0 + l.1.max(1)).map(|l| (self.files.get(&l.3).cloned().unwrap_or_default(), l.2))
                };
                return Some((f.name.clone(), rva - f.address, line, f.parameter_size));
            }
        }
        let j = self.publics.partition_point(|p| p.0 <= rva);
        // A PUBLIC covers up to the next FUNC or PUBLIC.
        if j > 0 {
            let p = &self.publics[j - 1];
            let next_func = self.funcs.get(i).map(|f| f.address).unwrap_or(u64::MAX);
            if i == 0 || self.funcs[i - 1].address < p.0 || rva < next_func {
                return Some((p.2.clone(), rva - p.0, None, p.1));
            }
        }
        None
    }

    /// The STACK WIN record for `rva` (frame data preferred over FPO).
    pub fn stack_win(&self, rva: u64) -> Option<&StackWin> {
        let i = self.stack_win.partition_point(|w| w.address <= rva);
        self.stack_win[..i].iter().rev().take(8).find(|w| rva < w.address + w.size)
    }

    /// CFI rules in effect at `rva`: INIT, then each delta at or below `rva`.
    pub fn cfi_rules(&self, rva: u64) -> Option<Vec<&str>> {
        let i = self.cfi.partition_point(|c| c.address <= rva);
        let c = &self.cfi[..i].last().filter(|c| rva < c.address + c.size)?;
        let mut rules = vec![c.init.as_str()];
        rules.extend(c.deltas.iter().take_while(|d| d.0 <= rva).map(|d| d.1.as_str()));
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

fn parse_cfi(line: &str, out: &mut Vec<CfiEntry>) -> bool {
    let rest = &line["STACK CFI ".len().min(line.len())..];
    if let Some(init) = rest.strip_prefix("INIT ") {
        let mut p = init.splitn(3, ' ');
        match (p.next().and_then(hex), p.next().and_then(hex), p.next()) {
            (Some(a), Some(sz), Some(rules)) => {
                out.push(CfiEntry { address: a, size: sz, init: rules.to_string(), deltas: Vec::new() });
                true
            }
            _ => false,
        }
    } else {
        let mut p = rest.splitn(2, ' ');
        match (p.next().and_then(hex), p.next(), out.last_mut()) {
            (Some(a), Some(rules), Some(last)) => {
                last.deltas.push((a, rules.to_string()));
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_functions_lines_publics_and_stack_records() {
        let text = "MODULE windows x86 ABC1 t.pdb\nFILE 1 c:\\t.cc\nFUNC 1000 20 4 crash(int)\n1000 10 42 1\n1010 10 43 1\nPUBLIC 2000 0 _start\nSTACK WIN 4 1000 20 3 0 4 0 8 0 1 $T0 .raSearch = $eip $T0 ^ = $esp $T0 4 + =\nSTACK CFI INIT 3000 10 .cfa: $esp 4 + .ra: .cfa 4 - ^\nSTACK CFI 3001 .cfa: $esp 8 +\ngarbage line here\n";
        let s = BreakpadSymbols::parse(text);
        assert_eq!(s.lookup(0x1012), Some(("crash(int)".into(), 0x12, Some(("c:\\t.cc".into(), 43)), 4)));
        assert_eq!(s.lookup(0x2004).map(|l| l.0), Some("_start".into()));
        let w = s.stack_win(0x1005).unwrap();
        assert_eq!(w.kind, 4);
        assert!(w.program.as_deref().unwrap().starts_with("$T0 .raSearch"));
        assert_eq!(s.cfi_rules(0x3002).unwrap(), vec![".cfa: $esp 4 + .ra: .cfa 4 - ^", ".cfa: $esp 8 +"]);
        assert_eq!(s.skipped_lines, 1);
    }
}
