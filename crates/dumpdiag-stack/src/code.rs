//! Reading code in dump memory with iced-x86: decoding instructions and rendering them the way
//! WinDbg's `u` does (MASM syntax, branch and call targets and RIP-relative operands named by
//! their symbols). The engine's `u`/`ub`/`uf`/`r` and the analysis (the dividing instruction of
//! a Divide by Zero, the faulting instruction of an access violation) share it.

use std::collections::HashMap;
use std::fmt::Write;

use dumpdiag_symbols::Symbols;
use dumpdiag_target::{windbg_address, MemoryExt, Target};
use iced_x86::{
    Decoder, DecoderOptions, Formatter, FormatterTextKind, Instruction, MasmFormatter,
    SymbolResolver, SymbolResult,
};

pub use iced_x86::{Instruction as Insn, Mnemonic};

/// Longest x86 instruction.
pub const MAX_INSTRUCTION_LEN: usize = 15;

struct Names(HashMap<u64, String>);

impl SymbolResolver for Names {
    fn symbol(
        &mut self,
        _: &Instruction,
        _: u32,
        _: Option<u32>,
        address: u64,
        _: u32,
    ) -> Option<SymbolResult<'_>> {
        self.0
            .get(&address)
            .map(|n| SymbolResult::with_str_kind(address, n.as_str(), FormatterTextKind::Label))
    }
}

/// Decodes and renders code of one bitness (32 for x86 and WOW64's 32-bit view, 64 for x64).
pub struct Disassembler<'a> {
    pub target: &'a dyn Target,
    pub symbols: &'a Symbols,
    /// Pointer size of the code: 4 or 8.
    pub ptr: u64,
}

impl Disassembler<'_> {
    fn bitness(&self) -> u32 {
        if self.ptr == 4 {
            32
        } else {
            64
        }
    }

    /// Decode instructions in `bytes` (at `ip`), at most `count`; an undecodable first
    /// instruction is returned as the one invalid instruction.
    pub fn decode_bytes(&self, bytes: &[u8], ip: u64, count: usize) -> Vec<Instruction> {
        let mut d = Decoder::with_ip(self.bitness(), bytes, ip, DecoderOptions::NONE);
        let mut out = Vec::new();
        while d.can_decode() && out.len() < count {
            let i = d.decode();
            let invalid = i.is_invalid();
            out.push(i);
            if invalid && out.len() == 1 {
                break;
            }
        }
        out
    }

    /// Up to `count` instructions at `addr`, from the bytes the dump holds.
    pub fn decode(&self, addr: u64, count: usize) -> Vec<Instruction> {
        let len = count.saturating_mul(MAX_INSTRUCTION_LEN).min(1 << 16);
        let bytes = self.target.memory().read_bytes(addr, len);
        self.decode_bytes(&bytes, addr, count)
    }

    /// The one instruction at `addr` in MASM syntax (`idiv eax,ecx`), if the dump holds it.
    pub fn instruction_text(&self, addr: u64) -> Option<String> {
        let i = self
            .decode(addr, 1)
            .into_iter()
            .next()
            .filter(|i| !i.is_invalid())?;
        let mut f = self.formatter(HashMap::new());
        let mut text = String::new();
        f.format(&i, &mut text);
        Some(text)
    }

    fn formatter(&self, names: HashMap<u64, String>) -> MasmFormatter {
        let mut f = MasmFormatter::with_options(Some(Box::new(Names(names))), None);
        f.options_mut().set_first_operand_char_index(8);
        f.options_mut().set_uppercase_hex(false);
        f.options_mut().set_rip_relative_addresses(true);
        f
    }

    /// Lines for instructions, WinDbg style: address, bytes, mnemonic, operands; a symbol header
    /// where a function starts (and before the first line when `first_header`).
    pub fn render(&self, insns: &[Instruction], first_header: bool) -> String {
        let t = self.target;
        let mut names = HashMap::new();
        for i in insns {
            let rip_relative = if i.is_ip_rel_memory_operand() {
                i.ip_rel_memory_address()
            } else {
                0
            };
            for a in [
                i.near_branch_target(),
                rip_relative,
                i.memory_displacement64(),
            ] {
                if a != 0 {
                    if let Some(d) = self.symbols.describe(t, a) {
                        names.insert(a, format!("{d} ({})", windbg_address(a, self.ptr)));
                    }
                }
            }
        }
        let mut f = self.formatter(names);
        let mut o = String::new();
        for (n, i) in insns.iter().enumerate() {
            let sym = self.symbols.lookup(t, i.ip());
            let at_symbol = sym.as_ref().is_some_and(|x| x.displacement == 0);
            if (n == 0 && first_header) || at_symbol {
                if let Some(d) = self.symbols.describe(t, i.ip()) {
                    let src = sym
                        .and_then(|x| x.source)
                        .map(|(f, l)| format!(" [{f} @ {l}]"))
                        .unwrap_or_default();
                    let _ = writeln!(o, "{d}{src}:");
                }
            }
            let bytes = t.memory().read_bytes(i.ip(), i.len());
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let mut text = String::new();
            if i.is_invalid() {
                text.push_str("???");
            } else {
                f.format(i, &mut text);
            }
            let _ = writeln!(o, "{} {hex:<16} {text}", windbg_address(i.ip(), self.ptr));
        }
        o
    }

    /// `count` instructions at `addr`, rendered as `u` prints them.
    pub fn disassemble(&self, addr: u64, count: usize) -> String {
        self.render(&self.decode(addr, count), true)
    }
}
