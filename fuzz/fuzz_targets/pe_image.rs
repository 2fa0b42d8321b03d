//! Any bytes as a PE image: parsed as a file on the symbol path (headers, CodeView record,
//! exports, bytes by RVA) and as an image mapped in a process at the top of the address
//! space, where RVAs meet 2^64 (headers, version resource, CodeView record, exports).
#![no_main]
use dumpdiag_os::pe;
use dumpdiag_target::MemoryReader;
use libfuzzer_sys::fuzz_target;

/// The input mapped at `base`, nothing elsewhere.
struct Mapped<'a> {
    base: u64,
    bytes: &'a [u8],
}

impl MemoryReader for Mapped<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> usize {
        let Some(at) = addr.checked_sub(self.base) else {
            return 0;
        };
        let Some(from) = usize::try_from(at).ok().and_then(|at| self.bytes.get(at..)) else {
            return 0;
        };
        let n = from.len().min(buf.len());
        buf[..n].copy_from_slice(&from[..n]);
        n
    }
}

fuzz_target!(|data: &[u8]| {
    if let Some(file) = pe::FileImage::parse(data.to_vec()) {
        let _ = file.codeview();
        let _ = dumpdiag_symbols::exports::read_exports_file(&file);
        for s in file.headers.sections.iter().take(8) {
            for rva in [s.virtual_address, s.virtual_address.wrapping_add(s.virtual_size)] {
                let _ = file.at_rva(rva, 4096);
            }
        }
    }
    let len = data.len() as u64;
    for base in [0x1_4000_0000u64, u64::MAX - len.saturating_sub(1)] {
        let mem = Mapped { base, bytes: data };
        if let Some(h) = pe::read_headers(&mem, base) {
            let _ = pe::version_strings(&mem, &h);
            let _ = pe::codeview(&mem, &h);
            let _ = dumpdiag_symbols::exports::read_exports(&mem, base);
        }
    }
});
