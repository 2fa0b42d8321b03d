//! Reading the dumped process's virtual memory. Every read is bounded by the caller's buffer;
//! helpers that allocate cap the allocation at [`MAX_READ_ALLOC`] so that no count read out of
//! a (possibly hostile) dump can size an allocation.

/// Largest single allocation a memory helper will make for one read.
pub const MAX_READ_ALLOC: usize = 16 << 20;

pub trait MemoryReader: Send + Sync {
    /// Copy memory at `addr` into `buf`; returns how many bytes were available contiguously
    /// from `addr` (0 when `addr` is not in the dump). Reads may span several captured ranges.
    fn read(&self, addr: u64, buf: &mut [u8]) -> usize;

    /// Zero-copy view of up to `max` bytes at `addr`, as far as they are contiguous in the
    /// dump (None when `addr` is not captured or the source cannot lend its bytes).
    fn slice(&self, addr: u64, max: usize) -> Option<&[u8]> {
        let _ = (addr, max);
        None
    }
}

/// Typed reads on top of [`MemoryReader`].
pub trait MemoryExt: MemoryReader {
    fn read_exact_at(&self, addr: u64, buf: &mut [u8]) -> bool {
        self.read(addr, buf) == buf.len()
    }
    fn read_u8(&self, addr: u64) -> Option<u8> {
        let mut b = [0u8; 1];
        self.read_exact_at(addr, &mut b).then_some(b[0])
    }
    fn read_u16(&self, addr: u64) -> Option<u16> {
        let mut b = [0u8; 2];
        self.read_exact_at(addr, &mut b)
            .then(|| u16::from_le_bytes(b))
    }
    fn read_u32(&self, addr: u64) -> Option<u32> {
        let mut b = [0u8; 4];
        self.read_exact_at(addr, &mut b)
            .then(|| u32::from_le_bytes(b))
    }
    fn read_u64(&self, addr: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.read_exact_at(addr, &mut b)
            .then(|| u64::from_le_bytes(b))
    }
    /// A pointer of `size` bytes (4 or 8).
    fn read_ptr(&self, addr: u64, size: u64) -> Option<u64> {
        if size == 4 {
            self.read_u32(addr).map(u64::from)
        } else {
            self.read_u64(addr)
        }
    }
    /// Up to `len` bytes (capped at [`MAX_READ_ALLOC`]); shorter when memory ends.
    fn read_bytes(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len.min(MAX_READ_ALLOC)];
        let n = self.read(addr, &mut v);
        v.truncate(n);
        v
    }
    /// A NUL-terminated 8-bit string of at most `max` bytes.
    fn read_cstring(&self, addr: u64, max: usize) -> Option<String> {
        let mut out = Vec::new();
        let mut chunk = [0u8; 256];
        let mut a = addr;
        while out.len() < max {
            let want = chunk.len().min(max - out.len());
            let n = self.read(a, &mut chunk[..want]);
            if n == 0 {
                break;
            }
            if let Some(z) = chunk[..n].iter().position(|&b| b == 0) {
                out.extend_from_slice(&chunk[..z]);
                return Some(String::from_utf8_lossy(&out).into_owned());
            }
            out.extend_from_slice(&chunk[..n]);
            a = a.wrapping_add(n as u64);
        }
        (!out.is_empty()).then(|| String::from_utf8_lossy(&out).into_owned())
    }
    /// A NUL-terminated UTF-16 string of at most `max_chars` characters.
    fn read_wstring(&self, addr: u64, max_chars: usize) -> Option<String> {
        let bytes = self.read_bytes(addr, max_chars.saturating_mul(2));
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0)
            .collect();
        if units.is_empty() && bytes.len() < 2 {
            return None;
        }
        Some(String::from_utf16_lossy(&units))
    }
    /// A UTF-16 string of exactly `byte_len` bytes (UNICODE_STRING contents).
    fn read_utf16_exact(&self, addr: u64, byte_len: usize) -> Option<String> {
        let byte_len = byte_len.min(MAX_READ_ALLOC) & !1;
        let mut v = vec![0u8; byte_len];
        if !self.read_exact_at(addr, &mut v) {
            return None;
        }
        let units: Vec<u16> = v
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        Some(String::from_utf16_lossy(&units))
    }
}

impl<T: MemoryReader + ?Sized> MemoryExt for T {}
