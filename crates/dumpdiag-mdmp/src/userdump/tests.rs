//! The reader against dumps written here in the layout the module documents: both pointer
//! sizes (the corpus has a real `USERDU64` only, so `USERDUMP` is covered by these alone), and
//! every truncation and many corruptions of them.

use super::*;

const KUSER: u64 = SHARED_USER_DATA;

/// A thread: id, TEB, instruction and stack pointers.
struct Thread {
    id: u32,
    teb: u64,
    ip: u64,
    sp: u64,
}

/// An exception: code, address, parameters.
type Exception = (u32, u64, Vec<u64>);

/// A legacy dump's contents, written in the writer's order by [`Dump::bytes`].
struct Dump {
    wide: bool,
    machine: u32,
    major: u32,
    minor_raw: u32,
    /// dwProcessId, dwThreadId, exception (code, address, parameters), first chance.
    event: (u32, u32, Option<Exception>, bool),
    /// (base, bytes, protect) of each region, in file order.
    regions: Vec<(u64, Vec<u8>, u32)>,
    threads: Vec<Thread>,
    /// (base, size, name).
    modules: Vec<(u64, u32, &'static str)>,
    version_info: Vec<&'static str>,
}

fn put(b: &mut [u8], at: usize, v: &[u8]) {
    b[at..at + v.len()].copy_from_slice(v);
}

impl Dump {
    fn ptr(&self) -> usize {
        if self.wide {
            8
        } else {
            4
        }
    }

    fn p(&self, out: &mut Vec<u8>, v: u64) {
        if self.wide {
            out.extend_from_slice(&v.to_le_bytes());
        } else {
            out.extend_from_slice(&(v as u32).to_le_bytes());
        }
    }

    fn context(&self, t: &Thread) -> Vec<u8> {
        match self.machine {
            0x8664 => {
                let mut c = vec![0u8; context::CONTEXT_AMD64_SIZE];
                put(&mut c, 0x30, &0x10_001fu32.to_le_bytes());
                put(&mut c, 0x98, &t.sp.to_le_bytes());
                put(&mut c, 0xf8, &t.ip.to_le_bytes());
                c
            }
            _ => {
                let mut c = vec![0u8; context::CONTEXT_X86_SIZE];
                put(&mut c, 0, &0x10_007u32.to_le_bytes());
                put(&mut c, 0xb8, &(t.ip as u32).to_le_bytes());
                put(&mut c, 0xc4, &(t.sp as u32).to_le_bytes());
                c
            }
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let ptr = self.ptr();
        let header = 32 + 8 * ptr;
        let event_size = if self.wide { 176 } else { 96 };
        let mbi = if self.wide { 48 } else { 28 };
        let state = if self.wide { 80 } else { 48 };
        let ctx = self.context(&self.threads[0]).len();
        let event_at = header;
        let regions_at = event_at + event_size;
        let threads_at = regions_at + self.regions.len() * mbi;
        let states_at = threads_at + self.threads.len() * ctx;
        let modules_at = states_at + self.threads.len() * state;
        let modules_len: usize = self.modules.iter().map(|m| ptr + 8 + m.2.len() + 1).sum();
        let data_at = modules_at + modules_len;
        let data_len: usize = self.regions.iter().map(|r| r.1.len()).sum();
        let version_at = data_at + data_len;

        let mut out = Vec::new();
        out.extend_from_slice(b"USER");
        out.extend_from_slice(if self.wide { b"DU64" } else { b"DUMP" });
        for v in [
            self.major,
            self.minor_raw,
            self.machine,
            self.threads.len() as u32,
            self.modules.len() as u32,
            self.regions.len() as u32,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for o in [
            threads_at, modules_at, data_at, regions_at, event_at, states_at, version_at, 0,
        ] {
            self.p(&mut out, o as u64);
        }
        assert_eq!(out.len(), header);

        let mut event = vec![0u8; event_size];
        let (pid, tid, exception, first) = &self.event;
        put(&mut event, 4, &pid.to_le_bytes());
        put(&mut event, 8, &tid.to_le_bytes());
        if let Some((code, address, params)) = exception {
            put(&mut event, 0, &EXCEPTION_DEBUG_EVENT.to_le_bytes());
            let r = if self.wide { 16 } else { 12 };
            put(&mut event, r, &code.to_le_bytes());
            put(&mut event, r + 8 + ptr, &address.to_le_bytes()[..ptr]);
            put(
                &mut event,
                r + 8 + 2 * ptr,
                &(params.len() as u32).to_le_bytes(),
            );
            let params_at = r + if self.wide { 32 } else { 20 };
            for (i, v) in params.iter().enumerate() {
                put(&mut event, params_at + i * ptr, &v.to_le_bytes()[..ptr]);
            }
            let record = if self.wide { 152 } else { 80 };
            put(&mut event, r + record, &(*first as u32).to_le_bytes());
        } else {
            put(&mut event, 0, &2u32.to_le_bytes());
        }
        out.extend_from_slice(&event);

        for (base, bytes, protect) in &self.regions {
            let mut m = Vec::new();
            self.p(&mut m, *base);
            self.p(&mut m, *base);
            m.extend_from_slice(&protect.to_le_bytes());
            if self.wide {
                m.extend_from_slice(&[0; 4]);
            }
            self.p(&mut m, bytes.len() as u64);
            for v in [0x1000u32, *protect, 0x20000] {
                m.extend_from_slice(&v.to_le_bytes());
            }
            m.resize(mbi, 0);
            out.extend_from_slice(&m);
        }
        for t in &self.threads {
            out.extend_from_slice(&self.context(t));
        }
        for t in &self.threads {
            let mut s = Vec::new();
            for v in [t.id, 1, 0x20, 0] {
                s.extend_from_slice(&v.to_le_bytes());
            }
            self.p(&mut s, t.teb);
            s.resize(state, 0);
            out.extend_from_slice(&s);
        }
        for (base, size, name) in &self.modules {
            self.p(&mut out, *base);
            out.extend_from_slice(&size.to_le_bytes());
            out.extend_from_slice(&(name.len() as u32 + 1).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.push(0);
        }
        assert_eq!(out.len(), data_at);
        for (_, bytes, _) in &self.regions {
            out.extend_from_slice(bytes);
        }
        for s in &self.version_info {
            for u in s.encode_utf16().chain([0]) {
                out.extend_from_slice(&u.to_le_bytes());
            }
        }
        out.extend_from_slice(&[0, 0]);
        out
    }
}

/// KUSER_SHARED_DATA of Windows `major`.`minor` build `build` on four processors, at
/// 2019-04-21 11:51:05 UTC.
fn shared_user_data(major: u32, minor: u32, build: u32) -> Vec<u8> {
    let mut k = vec![0u8; 0x1000];
    let filetime: u64 = (1_555_847_465 + 11_644_473_600) * 10_000_000;
    put(&mut k, 0x14, &(filetime as u32).to_le_bytes());
    put(&mut k, 0x18, &((filetime >> 32) as u32).to_le_bytes());
    put(&mut k, 0x1c, &((filetime >> 32) as u32).to_le_bytes());
    put(&mut k, 0x260, &build.to_le_bytes());
    put(&mut k, 0x264, &1u32.to_le_bytes());
    k[0x268] = 1;
    put(&mut k, 0x26c, &major.to_le_bytes());
    put(&mut k, 0x270, &minor.to_le_bytes());
    put(&mut k, 0x2d0, &0x110u32.to_le_bytes());
    put(&mut k, 0x3c0, &4u32.to_le_bytes());
    k
}

const GUID: [u8; 16] = *b"0123456789abcdef";

/// The first page of a PE image: headers, a debug directory with an RSDS record for
/// `app.pdb` (age 3) and a version resource of file version 1.2.3.4.
fn image_headers(wide: bool, size_of_image: u32) -> Vec<u8> {
    let mut b = vec![0u8; 0x1000];
    put(&mut b, 0, b"MZ");
    put(&mut b, 0x3c, &0x80u32.to_le_bytes());
    put(&mut b, 0x80, b"PE\0\0");
    put(
        &mut b,
        0x84,
        &(if wide { 0x8664u16 } else { 0x14c }).to_le_bytes(),
    );
    put(&mut b, 0x88, &0x5cbc_58d1u32.to_le_bytes());
    let opt = 0x98;
    put(
        &mut b,
        opt,
        &(if wide { 0x20bu16 } else { 0x10b }).to_le_bytes(),
    );
    put(&mut b, opt + 56, &size_of_image.to_le_bytes());
    put(&mut b, opt + 64, &0x1_2345u32.to_le_bytes());
    let (count_at, dirs) = if wide { (108, 112) } else { (92, 96) };
    put(&mut b, opt + count_at, &16u32.to_le_bytes());
    // Resource directory (2) and debug directory (6).
    put(&mut b, opt + dirs + 2 * 8, &0x300u32.to_le_bytes());
    put(&mut b, opt + dirs + 2 * 8 + 4, &0x100u32.to_le_bytes());
    put(&mut b, opt + dirs + 6 * 8, &0x200u32.to_le_bytes());
    put(&mut b, opt + dirs + 6 * 8 + 4, &28u32.to_le_bytes());
    // IMAGE_DEBUG_DIRECTORY: Type 2 (CodeView), SizeOfData, AddressOfRawData.
    put(&mut b, 0x200 + 12, &2u32.to_le_bytes());
    put(&mut b, 0x200 + 16, &33u32.to_le_bytes());
    put(&mut b, 0x200 + 20, &0x240u32.to_le_bytes());
    put(&mut b, 0x240, b"RSDS");
    put(&mut b, 0x244, &GUID);
    put(&mut b, 0x254, &3u32.to_le_bytes());
    put(&mut b, 0x258, b"app.pdb\0");
    // Resources: RT_VERSION -> id 1 -> language 0x409 -> data entry -> VS_VERSIONINFO.
    let dir = |b: &mut Vec<u8>, at: usize, id: u32, to: u32| {
        put(b, at + 14, &1u16.to_le_bytes());
        put(b, at + 16, &id.to_le_bytes());
        put(b, at + 20, &to.to_le_bytes());
    };
    dir(&mut b, 0x300, 16, 0x8000_0018);
    dir(&mut b, 0x318, 1, 0x8000_0030);
    dir(&mut b, 0x330, 0x409, 0x48);
    put(&mut b, 0x348, &0x400u32.to_le_bytes());
    put(&mut b, 0x34c, &92u32.to_le_bytes());
    put(&mut b, 0x400, &92u16.to_le_bytes());
    put(&mut b, 0x402, &52u16.to_le_bytes());
    let key: Vec<u8> = "VS_VERSION_INFO\0"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    put(&mut b, 0x406, &key);
    let fixed = [
        0xfeef_04bdu32,
        0x1_0000,
        0x0001_0002,
        0x0003_0004,
        0x0001_0002,
        0x0003_0004,
        0x3f,
        0,
        0x40004,
        1,
        0,
        0,
        0,
    ];
    for (i, v) in fixed.iter().enumerate() {
        put(&mut b, 0x428 + 4 * i, &v.to_le_bytes());
    }
    b
}

fn sample(wide: bool) -> Dump {
    let (image, stack, teb) = if wide {
        (0x7ff7_e145_0000u64, 0x8f_e1f2_d000u64, 0x8f_e21a_5000u64)
    } else {
        (0x40_0000, 0x12_d000, 0x7ffd_d000)
    };
    let mut stack_bytes = vec![0u8; 0x3000];
    put(&mut stack_bytes, 0x2ff8, b"the top!");
    Dump {
        wide,
        machine: if wide { 0x8664 } else { 0x14c },
        major: 10,
        minor_raw: 17134 << 16,
        event: (
            0xc3c,
            0x2098,
            Some((0xc000_0005, image + 0x1e65, vec![1, 0x45])),
            false,
        ),
        regions: vec![
            (KUSER, shared_user_data(10, 0, 17134), 2),
            (image, image_headers(wide, 0x2000), 2),
            (image + 0x1000, vec![0xcc; 0x1000], 0x20),
            (stack, stack_bytes, 4),
            (teb, vec![0x11; 0x2000], 4),
        ],
        threads: vec![
            Thread {
                id: 0x2098,
                teb,
                ip: image + 0x1e65,
                sp: stack + 0x2af0,
            },
            Thread {
                id: 0x2f64,
                teb: teb + 0x1000,
                ip: image + 0x1000,
                sp: stack + 0x2f00,
            },
        ],
        modules: vec![
            (image, 0x2000, "app.exe"),
            (0x10_0000, 0x1000, "C:\\WINDOWS\\System32\\absent.dll"),
        ],
        version_info: vec!["CRASH: OS SP", "Service Pack 9", "CRASH: Hotfixes", "none"],
    }
}

fn open(bytes: Vec<u8>) -> Result<UserDumpTarget, OpenError> {
    UserDumpTarget::from_backing("test.dmp".into(), Backing::Owned(bytes))
}

#[test]
fn both_pointer_sizes_read_back_what_was_written() {
    for wide in [true, false] {
        let d = sample(wide);
        let t = open(d.bytes()).unwrap_or_else(|e| panic!("wide {wide}: {e}"));
        assert!(t.warnings().is_empty(), "{:?}", t.warnings());
        let f = t.facts();
        assert_eq!(f.kind, DumpKind::LegacyUserDump { wide });
        assert_eq!(f.arch, if wide { Arch::Amd64 } else { Arch::X86 });
        assert_eq!((f.os_major, f.os_minor, f.os_build), (10, 0, 17134));
        assert_eq!(f.processor_count, 4);
        assert_eq!(f.product_type, 1);
        assert_eq!(f.suite_mask, 0x110);
        assert_eq!(f.dump_time, 1_555_847_465);
        assert_eq!(f.csd_version, "Service Pack 9");
        assert_eq!(f.process_id, Some(0xc3c));
        assert_eq!(f.flags & 2, 2, "a full-memory dump");

        let th = t.threads();
        assert_eq!(th.len(), 2);
        assert_eq!((th[0].id, th[0].teb), (0x2098, d.threads[0].teb));
        assert_eq!((th[1].id, th[1].suspend_count), (0x2f64, 1));
        for (i, want) in d.threads.iter().enumerate() {
            let c = t.thread_context(i).expect("context");
            assert_eq!((c.ip(), c.sp()), (want.ip, want.sp), "thread {i}");
        }
        // The stack range: from the stack pointer to the end of its region.
        let stack = d.regions[3].0;
        assert_eq!(th[0].stack_start, d.threads[0].sp);
        assert_eq!(th[0].stack_start + th[0].stack_size, stack + 0x3000);

        let e = t.exception().expect("exception");
        assert_eq!(e.thread_id, 0x2098);
        assert_eq!(e.record.code, 0xc000_0005);
        assert_eq!(e.record.address, d.threads[0].ip);
        assert_eq!(e.record.parameters, vec![1, 0x45]);
        assert_eq!(e.first_chance, Some(false));
        assert_eq!(t.exception_context().map(|c| c.ip()), Some(d.threads[0].ip));

        let m = &t.modules()[0];
        assert_eq!((m.path.as_str(), m.size), ("app.exe", 0x2000));
        assert_eq!((m.time_date_stamp, m.checksum), (0x5cbc_58d1, 0x1_2345));
        assert_eq!(
            m.codeview,
            Some(CodeViewRecord::Pdb70 {
                guid: GUID,
                age: 3,
                pdb_name: "app.pdb".into()
            })
        );
        assert_eq!(
            m.version.as_ref().map(|v| v.file_version),
            Some((1, 2, 3, 4))
        );
        // A module whose image is not in the dump keeps what the module list says.
        let absent = &t.modules()[1];
        assert_eq!(absent.file_name(), "absent.dll");
        assert!(absent.codeview.is_none() && absent.time_date_stamp == 0);
        assert_eq!(t.module_at(m.base + 0x1234).map(|m| m.base), Some(m.base));

        // Memory: each region's bytes, reads across adjacent regions, nothing elsewhere.
        assert_eq!(t.read_bytes(stack + 0x2ff8, 8), b"the top!");
        let mut seam = [0u8; 4];
        assert_eq!(t.read(m.base + 0xffe, &mut seam), 4);
        assert_eq!(seam, [0, 0, 0xcc, 0xcc]);
        assert_eq!(t.read_u8(0x1000), None);
        assert_eq!(t.captured_ranges().len(), 5);
        assert_eq!(t.regions().len(), 5);
        assert!(t.regions().windows(2).all(|w| w[0].base < w[1].base));

        let names: Vec<&str> = t.streams().iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "DebugEvent",
                "MemoryBasicInformation",
                "ThreadContext",
                "ThreadState",
                "Module",
                "MemoryData",
                "VersionInfo"
            ]
        );
        assert!(f
            .header_fields
            .contains(&("CRASH: OS SP".into(), "Service Pack 9".into())));
    }
}

#[test]
fn an_event_other_than_an_exception_leaves_no_exception() {
    let mut d = sample(true);
    d.event.2 = None;
    let t = open(d.bytes()).unwrap();
    assert!(t.exception().is_none() && t.exception_context().is_none());
    assert!(t
        .facts()
        .header_fields
        .contains(&("DebugEvent".into(), "code 2".into())));
}

#[test]
fn shared_user_data_that_disagrees_with_the_header_is_not_used() {
    let mut d = sample(true);
    d.regions[0].1 = shared_user_data(6, 1, 7601);
    let t = open(d.bytes()).unwrap();
    assert_eq!(t.facts().processor_count, 0);
    assert_eq!(t.facts().dump_time, 0);
    assert!(t.warnings()[0].contains("KUSER_SHARED_DATA says Windows 6"));
}

#[test]
fn a_short_header_is_an_error_that_names_the_format() {
    for wide in [true, false] {
        let bytes = sample(wide).bytes();
        let header = if wide { 96 } else { 64 };
        for cut in [8, 12, header - 1] {
            let e = open(bytes[..cut].to_vec()).err().expect("refused");
            let sig = if wide { "USERDU64" } else { "USERDUMP" };
            assert!(
                e.to_string()
                    .contains(&format!("file too short for a {sig} header")),
                "{e}"
            );
        }
    }
}

/// Everything a session asks of a target, to make a damaged dump show its damage.
fn exercise(t: &UserDumpTarget) {
    for i in 0..t.threads().len() {
        let _ = t.thread_context(i).map(|c| c.ip());
    }
    let _ = t.exception_context();
    for m in t.modules() {
        let _ = t.module_at(m.base);
    }
    for &(start, size) in t.captured_ranges() {
        let _ = t.read_bytes(start, size.min(1 << 16) as usize);
        let _ = t.read_bytes(start.saturating_add(size).saturating_sub(3), 8);
    }
}

#[test]
fn every_truncation_opens_partially_or_fails_cleanly() {
    for wide in [true, false] {
        let d = sample(wide);
        let bytes = d.bytes();
        let version_info: usize = d.version_info.iter().map(|s| 2 * (s.len() + 1)).sum();
        let version_at = bytes.len() - version_info - 2;
        for cut in 0..bytes.len() {
            match open(bytes[..cut].to_vec()) {
                Err(e) => assert!(!e.to_string().is_empty()),
                Ok(t) => {
                    exercise(&t);
                    // Whatever was cut before the closing VersionInfo is said.
                    if cut < version_at {
                        assert!(!t.warnings().is_empty(), "cut at {cut}: no warning");
                    }
                }
            }
        }
    }
}

/// Splitmix64: a fixed stream of positions.
fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed;
    move || {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[test]
fn corrupted_headers_and_tables_never_panic_or_allocate_by_their_counts() {
    let mut next = rng(7);
    for wide in [true, false] {
        let bytes = sample(wide).bytes();
        // The tables end where the memory data starts.
        let tables = bytes.len()
            - sample(wide)
                .regions
                .iter()
                .map(|r| r.1.len())
                .sum::<usize>();
        for variant in 0..2000 {
            let mut copy = bytes.clone();
            for _ in 0..(1 + variant % 6) {
                let at = (next() % tables as u64) as usize;
                copy[at] ^= 1 << (next() % 8);
            }
            if variant % 3 == 0 {
                let at = 8 + (next() % (tables as u64 - 12)) as usize;
                let big = [0xffff_fff0u32, 0x7fff_ffff, 0x8000_0000][variant % 9 / 3];
                copy[at..at + 4].copy_from_slice(&big.to_le_bytes());
            }
            if let Ok(t) = open(copy) {
                exercise(&t);
            }
        }
    }
}

#[test]
fn huge_counts_and_offsets_are_bounded_by_the_file() {
    for wide in [true, false] {
        let mut bytes = sample(wide).bytes();
        let ptr = if wide { 8 } else { 4 };
        // Thread, module and region counts of 4 billion; a data offset near the top.
        for at in [20, 24, 28] {
            bytes[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        }
        let data_field = 32 + 2 * ptr;
        bytes[data_field..data_field + ptr].copy_from_slice(&u64::MAX.to_le_bytes()[..ptr]);
        let len = bytes.len();
        let t = open(bytes).expect("a partial view");
        exercise(&t);
        // No more threads than thread states fit in the file (the smallest record, 48 bytes).
        assert!(t.threads().len() <= len / 48, "{}", t.threads().len());
        assert!(t.captured_ranges().is_empty(), "no memory data in the file");
        let w = t.warnings().join("\n");
        assert!(w.contains("the header lists 4294967295 threads"), "{w}");
        assert!(w.contains("past the end of the file"), "{w}");
    }
}
