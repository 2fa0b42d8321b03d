//! Little-endian helpers shared by the writers: fixed-offset stores into a buffer (growing it
//! as needed), UTF-16 text, alignment.

/// Store `bytes` at `off`, growing `buf` with zeros when it is shorter.
pub fn put(buf: &mut Vec<u8>, off: u64, bytes: &[u8]) {
    let off = off as usize;
    if buf.len() < off + bytes.len() {
        buf.resize(off + bytes.len(), 0);
    }
    buf[off..off + bytes.len()].copy_from_slice(bytes);
}

pub fn put_u16(buf: &mut Vec<u8>, off: u64, v: u16) {
    put(buf, off, &v.to_le_bytes());
}

pub fn put_u32(buf: &mut Vec<u8>, off: u64, v: u32) {
    put(buf, off, &v.to_le_bytes());
}

pub fn put_u64(buf: &mut Vec<u8>, off: u64, v: u64) {
    put(buf, off, &v.to_le_bytes());
}

/// A pointer-sized value (4 or 8 bytes).
pub fn put_ptr(buf: &mut Vec<u8>, off: u64, v: u64, ptr: u64) {
    if ptr == 4 {
        put_u32(buf, off, v as u32);
    } else {
        put_u64(buf, off, v);
    }
}

/// The bytes of a pointer-sized value.
pub fn ptr_bytes(v: u64, ptr: u64) -> Vec<u8> {
    if ptr == 4 {
        (v as u32).to_le_bytes().to_vec()
    } else {
        v.to_le_bytes().to_vec()
    }
}

/// UTF-16LE text without a terminator.
pub fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// UTF-16LE text with its NUL terminator.
pub fn utf16z(s: &str) -> Vec<u8> {
    let mut v = utf16(s);
    v.extend_from_slice(&[0, 0]);
    v
}

/// `x` rounded up to a multiple of `a` (a power of two).
pub fn align(x: u64, a: u64) -> u64 {
    (x + a - 1) & !(a - 1)
}

/// Pad `buf` with zeros to a multiple of `a` bytes.
pub fn pad(buf: &mut Vec<u8>, a: usize) {
    while !buf.len().is_multiple_of(a) {
        buf.push(0);
    }
}
