//! The index of captured memory: sorted (address, size, file offset) triples built from
//! MemoryList or Memory64List, searched by binary search on every read.

use minidump::Minidump;
use minidump_common::format as md;
use scroll::{Pread, LE};

/// Clip a (file offset, size) span to the file; None when nothing of it is in the file.
pub(crate) fn clip(offset: u64, size: u64, file_len: u64) -> Option<(u64, u64)> {
    if size == 0 || offset >= file_len {
        return None;
    }
    Some((offset, size.min(file_len - offset)))
}

#[derive(Debug, Clone, Copy)]
struct Range {
    addr: u64,
    size: u64,
    file_offset: u64,
}

#[derive(Debug, Default)]
pub struct MemoryIndex {
    ranges: Vec<Range>,
    /// (address, size) view of `ranges` for [`dumpdiag_target::Target::captured_ranges`].
    public: Vec<(u64, u64)>,
}

/// Bytes per descriptor in the two list formats.
const DESC32: usize = 16;
const DESC64: usize = 16;

impl MemoryIndex {
    pub(crate) fn build(
        dump: &Minidump<&[u8]>,
        data: &[u8],
        warnings: &mut Vec<String>,
    ) -> MemoryIndex {
        let file_len = data.len() as u64;
        let mut ranges = Vec::new();
        let mut truncated = 0u64;
        if let Ok(list) = dump.get_raw_stream(md::MINIDUMP_STREAM_TYPE::Memory64ListStream as u32) {
            // MINIDUMP_MEMORY64_LIST: count u64, base rva u64, then (start u64, size u64)*;
            // the ranges' bytes follow each other from the base rva on.
            let count: u64 = list.pread_with(0, LE).unwrap_or(0);
            let mut rva: u64 = list.pread_with(8, LE).unwrap_or(0);
            let fit = (list.len().saturating_sub(16) / DESC64) as u64;
            if count > fit {
                warnings.push(format!(
                    "Memory64List claims {count} ranges, stream holds {fit}"
                ));
            }
            for i in 0..count.min(fit) as usize {
                let start: u64 = list.pread_with(16 + i * DESC64, LE).unwrap_or(0);
                let size: u64 = list.pread_with(24 + i * DESC64, LE).unwrap_or(0);
                match clip(rva, size, file_len) {
                    Some((off, avail)) => {
                        truncated = truncated.saturating_add(size - avail);
                        ranges.push(Range {
                            addr: start,
                            size: avail,
                            file_offset: off,
                        });
                    }
                    None => truncated = truncated.saturating_add(size),
                }
                rva = rva.saturating_add(size);
            }
        }
        if let Ok(list) = dump.get_raw_stream(md::MINIDUMP_STREAM_TYPE::MemoryListStream as u32) {
            // MINIDUMP_MEMORY_LIST: count u32, then (start u64, size u32, rva u32)*.
            let count: u32 = list.pread_with(0, LE).unwrap_or(0);
            // Some writers pad the count to 8 bytes; the stream size tells which layout it is.
            let header = if list.len() >= 8
                && (list.len() - 4) % DESC32 != 0
                && (list.len() - 8) % DESC32 == 0
            {
                8
            } else {
                4
            };
            let fit = (list.len().saturating_sub(header) / DESC32) as u32;
            if count > fit {
                warnings.push(format!(
                    "MemoryList claims {count} ranges, stream holds {fit}"
                ));
            }
            for i in 0..count.min(fit) as usize {
                let o = header + i * DESC32;
                let start: u64 = list.pread_with(o, LE).unwrap_or(0);
                let size: u32 = list.pread_with(o + 8, LE).unwrap_or(0);
                let rva: u32 = list.pread_with(o + 12, LE).unwrap_or(0);
                match clip(rva as u64, size as u64, file_len) {
                    Some((off, avail)) => {
                        truncated = truncated.saturating_add(size as u64 - avail);
                        ranges.push(Range {
                            addr: start,
                            size: avail,
                            file_offset: off,
                        });
                    }
                    None => truncated = truncated.saturating_add(size as u64),
                }
            }
        }
        if truncated > 0 {
            warnings.push(format!("{truncated:#x} bytes of captured memory lie past the end of the file (truncated dump)"));
        }
        Self::from_ranges(ranges)
    }

    /// Index (address, size, file offset) ranges, each already clipped to the file: sorted by
    /// address; where ranges overlap (thread stacks listed twice, say), the first by address
    /// keeps the bytes.
    fn from_ranges(mut ranges: Vec<Range>) -> MemoryIndex {
        ranges.sort_by_key(|r| r.addr);
        let mut merged: Vec<Range> = Vec::with_capacity(ranges.len());
        for r in ranges {
            if let Some(last) = merged.last() {
                let last_end = last.addr.saturating_add(last.size);
                if r.addr < last_end {
                    let skip = last_end - r.addr;
                    if skip >= r.size {
                        continue;
                    }
                    merged.push(Range {
                        addr: last_end,
                        size: r.size - skip,
                        file_offset: r.file_offset + skip,
                    });
                    continue;
                }
            }
            merged.push(r);
        }
        let public = merged.iter().map(|r| (r.addr, r.size)).collect();
        MemoryIndex {
            ranges: merged,
            public,
        }
    }

    /// Index memory whose bytes lie at known file offsets: (address, size, file offset)
    /// triples, each already clipped to the file (see [`clip`]).
    pub(crate) fn from_spans(spans: impl IntoIterator<Item = (u64, u64, u64)>) -> MemoryIndex {
        Self::from_ranges(
            spans
                .into_iter()
                .filter(|s| s.1 > 0)
                .map(|(addr, size, file_offset)| Range {
                    addr,
                    size,
                    file_offset,
                })
                .collect(),
        )
    }

    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.public
    }

    /// The bytes at `addr` up to the end of the captured range holding it, at most `max`.
    pub(crate) fn slice<'d>(&self, data: &'d [u8], addr: u64, max: usize) -> Option<&'d [u8]> {
        let i = self
            .ranges
            .partition_point(|r| r.addr.saturating_add(r.size) <= addr);
        let r = self.ranges.get(i).filter(|r| addr >= r.addr)?;
        let within = addr - r.addr;
        let n = ((r.size - within) as usize).min(max);
        let start = usize::try_from(r.file_offset + within).ok()?;
        data.get(start..start.checked_add(n)?)
    }

    /// Copy from the mapped file; continues across adjacent ranges.
    pub(crate) fn read(&self, data: &[u8], addr: u64, buf: &mut [u8]) -> usize {
        let mut done = 0usize;
        let mut a = addr;
        while done < buf.len() {
            let i = self
                .ranges
                .partition_point(|r| r.addr.saturating_add(r.size) <= a);
            let Some(r) = self.ranges.get(i) else { break };
            if a < r.addr {
                break;
            }
            let within = a - r.addr;
            let n = ((r.size - within) as usize).min(buf.len() - done);
            let start = (r.file_offset + within) as usize;
            let Some(src) = data.get(start..start + n) else {
                break;
            };
            buf[done..done + n].copy_from_slice(src);
            done += n;
            a = match a.checked_add(n as u64) {
                Some(v) => v,
                None => break,
            };
        }
        done
    }
}
