//! Commands given addresses and counts at the edges: ranges that reach 2^64, counts far past
//! what a command shows. Each must answer at once, stop at the top of the address space
//! instead of wrapping round to address 0, and not panic.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use dumpdiag_engine::Session;
use dumpdiag_synth::*;
use dumpdiag_target::Arch;

/// One page captured up to the last byte below 2^64.
const TOP_PAGE: u64 = 0xffff_ffff_ffff_f000;
/// Where [`code_block`] lies.
const CODE: u64 = 0x1000_0000;

/// An x64 process with one thread and `blocks` of captured memory, read back from its dump.
fn session(blocks: &[(u64, Vec<u8>)]) -> Session {
    let mut p = Process::new(Arch::Amd64);
    let ntdll = p.module(Module::new("C:\\Windows\\System32\\ntdll.dll"));
    let app = p.module(Module::new("C:\\app\\app.exe"));
    let wait = p.add_function(ntdll, Function::syscall("NtWaitForSingleObject", 4));
    let start = p.function(ntdll, "RtlUserThreadStart", 0x40);
    let main = p.function(app, "main", 0x60);
    p.thread(0x1234, [wait, main, start]);
    for (addr, bytes) in blocks {
        p.memory(*addr, bytes);
    }
    let dump = p.build().minidump();
    Session::new(Box::new(
        dumpdiag_mdmp::MdmpTarget::from_bytes("edges.dmp", dump).unwrap(),
    ))
}

/// Run `command` on a fresh session over `blocks` in a thread; its output, or a panic naming
/// the command when it takes longer than `limit`.
fn run_within(blocks: Vec<(u64, Vec<u8>)>, command: &'static str, limit: Duration) -> String {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut s = session(&blocks);
        let start = Instant::now();
        let text = s.execute(command).text;
        let _ = tx.send((text, start.elapsed()));
    });
    match rx.recv_timeout(limit + Duration::from_secs(30)) {
        Ok((text, took)) => {
            assert!(took < limit, "`{command}` took {took:?}");
            text
        }
        Err(_) => panic!("`{command}` did not finish"),
    }
}

/// 64 KiB of `mov rax, imm64` (10 bytes each) whose immediates are NOPs: decoding from any
/// byte falls into step with the MOVs after a few NOPs.
fn code_block() -> Vec<u8> {
    let mov = [0x48, 0xb8, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90];
    mov.iter().copied().cycle().take(0x10000).collect()
}

#[test]
fn memory_display_up_to_2_64_shows_the_top_and_does_not_wrap() {
    let mut s = session(&[(TOP_PAGE, vec![0x41; 0xfff])]);
    let db = s.execute("db ffffffff`ffffff00 L200").text;
    assert!(db.starts_with("ffffffff`ffffff00  41 41"), "{db}");
    assert!(db.contains("\nffffffff`fffffff0  41 41"), "{db}");
    assert!(!db.contains("00000000`0000"), "wrapped round to 0: {db}");
    let dd = s.execute("dd ffffffff`fffffff0 L10").text;
    assert!(dd.starts_with("ffffffff`fffffff0  41414141"), "{dd}");
    assert!(!dd.contains("00000000`0000"), "wrapped round to 0: {dd}");
    let dps = s.execute("dps ffffffff`ffffffe0 L10").text;
    assert!(
        dps.starts_with("ffffffff`ffffffe0  41414141`41414141"),
        "{dps}"
    );
    assert!(!dps.contains("00000000`0000"), "wrapped round to 0: {dps}");
    // And the rest of the family answers there without panicking.
    for c in [
        "da ffffffff`fffffff0",
        "du ffffffff`fffffff0 L100",
        "dpp ffffffff`fffffff0",
        "dc ffffffff`fffffff0 Lffffffff",
        "dq ffffffff`ffffffff",
        "u ffffffff`fffffff0 L10",
        "ub ffffffff`ffffffff L10",
        "uf ffffffff`fffffff0",
        "s -a ffffffff`ffff0000 L?ffffffff \"AAAA\"",
    ] {
        let _ = s.execute(c);
    }
}

#[test]
fn a_search_over_a_range_ending_near_2_64_ends() {
    // 1.5 MiB of zeros up to 2^64: the search steps in MiB chunks, and the step after the
    // last one must not wrap round to address 0 and start over.
    let text = run_within(
        vec![(0xffff_ffff_ffe8_0000, vec![0; 0x17_ffff])],
        "s -b ffffffff`ffe80000 L?17ffff 41",
        Duration::from_secs(5),
    );
    assert!(text.trim().is_empty(), "{text}");
}

#[test]
fn ub_with_the_largest_count_answers_at_once() {
    // In the middle of a MOV: only the NOPs just before land on the address, so every other
    // candidate start decodes to the end and fails.
    let text = run_within(
        vec![(CODE, code_block())],
        "ub 0x1000ea65 L4096",
        Duration::from_secs(3),
    );
    // (L4096 is 0x4096 instructions, past the limit: the count is cut and that is said.)
    assert!(text.ends_with("(0x4096 asked for)\n"), "{text}");
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("00000000`"))
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines.iter().all(|l| l.ends_with("nop")), "{text}");
    assert!(lines[0].starts_with("00000000`1000ea62"), "{text}");
}

#[test]
fn u_and_ub_say_when_they_cut_the_count() {
    let mut s = session(&[(CODE, code_block())]);
    let u = s.execute("u 0x10000000 L100000").text;
    assert_eq!(u.lines().filter(|l| l.contains("mov")).count(), 4096);
    assert!(
        u.ends_with("Count limited to 4096 instructions (0x100000 asked for)\n"),
        "{}",
        &u[u.len().saturating_sub(300)..]
    );
    let ub = s.execute("ub 0x1000ea60 L100000").text;
    assert_eq!(
        ub.lines()
            .filter(|l| l.starts_with("00000000`1000"))
            .count(),
        4096
    );
    assert!(ub.ends_with("(0x100000 asked for)\n"), "{ub}");
    // Within the limit nothing is said.
    assert!(!s.execute("u 0x10000000 L10").text.contains("limited"));
}

/// Set every thread's stack memory descriptor in MDMP `dump` to `start` and `size` (the
/// captured bytes it points at stay where they are).
fn patch_thread_stacks(dump: &mut [u8], start: u64, size: u32) {
    let u32_at = |d: &[u8], o: usize| u32::from_le_bytes(d[o..o + 4].try_into().unwrap()) as usize;
    let (streams, dir) = (u32_at(dump, 8), u32_at(dump, 12));
    for i in 0..streams {
        if u32_at(dump, dir + i * 12) != 3 {
            continue; // ThreadListStream
        }
        let list = u32_at(dump, dir + i * 12 + 8);
        for t in 0..u32_at(dump, list) {
            // MINIDUMP_THREAD: Stack (MINIDUMP_MEMORY_DESCRIPTOR) at +24.
            let stack = list + 4 + t * 48 + 24;
            dump[stack..stack + 8].copy_from_slice(&start.to_le_bytes());
            dump[stack + 8..stack + 12].copy_from_slice(&size.to_le_bytes());
        }
    }
}

#[test]
fn a_thread_stack_reaching_past_2_64_still_names_its_region() {
    let mut p = Process::new(Arch::Amd64);
    let ntdll = p.module(Module::new("C:\\Windows\\System32\\ntdll.dll"));
    let wait = p.add_function(ntdll, Function::syscall("NtWaitForSingleObject", 4));
    let start = p.function(ntdll, "RtlUserThreadStart", 0x40);
    p.thread(0x1234, [wait, start]);
    // The TEB says nothing (StackBase = StackLimit = 0): the thread list's range is all there
    // is, and it runs 0x1000 bytes past 2^64.
    let teb = p.thread_ref(0x1234).teb;
    p.write_u64(teb + 8, 0).write_u64(teb + 0x10, 0);
    p.memory(TOP_PAGE, &[0; 0xfff]);
    p.region(dumpdiag_target::RegionInfo {
        base: TOP_PAGE,
        allocation_base: TOP_PAGE,
        allocation_protect: 4,
        size: 0xfff,
        state: dumpdiag_target::MEM_COMMIT,
        protect: 4,
        kind: dumpdiag_target::MEM_PRIVATE,
    });
    let mut dump = p.build().minidump();
    patch_thread_stacks(&mut dump, TOP_PAGE, 0x2000);
    let t = dumpdiag_mdmp::MdmpTarget::from_bytes("top.dmp", dump).unwrap();
    let mut s = Session::new(Box::new(t));
    let a = s.execute("!address ffffffff`fffff900").text;
    assert!(a.contains("Usage:                  Stack"), "{a}");
}
