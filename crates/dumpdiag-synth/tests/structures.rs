//! The builder's structures read back by hand, through the `Target` it builds and the Windows
//! offsets written out here again: stack layouts, loader lists, exports, version resource,
//! critical sections, memory reads across blocks, the minidump header. (Round trips through
//! the MDMP reader and the stack walkers are in the `dumpdiag` crate's `synth_roundtrip`.)

use dumpdiag_synth::*;
use dumpdiag_target::{Arch, MemoryExt, Target};

fn small(arch: Arch) -> (Process, Vec<Func>, ModuleId) {
    let mut p = Process::new(arch);
    let app = p.module(
        Module::new("C:\\app\\small.exe")
            .version(Version::new(2, 0, 1, 7).string("CompanyName", "Synthetic Corp")),
    );
    let ntdll = p.module(Module::new("C:\\Windows\\System32\\ntdll.dll"));
    let wait = p.add_function(ntdll, Function::syscall("NtWaitForSingleObject", 4));
    let start = p.function(ntdll, "RtlUserThreadStart", 0x40);
    let main = p.add_function(app, Function::new("main", 0x60).save_fp(true).locals(0x30));
    let helper = p.add_function(app, Function::new("helper", 0x60).locals(0x100));
    (p, vec![wait, helper, main, start], app)
}

#[test]
fn x64_frames_sit_where_their_prologs_put_them() {
    let (mut p, f, _) = small(Arch::Amd64);
    let frames = p.thread(1, f.clone()).frames.clone();
    assert_eq!(frames.len(), 4);
    for (i, fr) in frames.iter().enumerate() {
        // Entry stack pointers are 8 mod 16; the body's is aligned.
        assert_eq!(fr.return_slot % 16, 8, "frame {i}");
        assert_eq!(fr.sp + fr.func.frame_size() as u64, fr.return_slot);
        if let Some(caller) = frames.get(i + 1) {
            assert_eq!(
                fr.return_slot + 8,
                caller.sp,
                "the call pushed onto the caller's sp"
            );
            assert_eq!(fr.return_address, caller.ip);
        }
    }
    assert_eq!(frames[0].ip, f[0].body());
    assert_eq!(frames[1].ip, f[1].call_site(0));
    assert_eq!(frames[1].sp % 16, 0);
    // main saves rbp: its frame pointer is the slot below its return address, and helper and
    // the stub below it keep that value.
    assert_eq!(frames[2].fp, frames[2].return_slot - 8);
    assert_eq!(frames[1].fp, frames[2].fp);
    let t = p.build();
    let mem = t.memory();
    assert_eq!(mem.read_u64(frames[0].return_slot), Some(frames[1].ip));
    assert_eq!(mem.read_u64(frames[2].return_slot), Some(frames[3].ip));
    assert_eq!(mem.read_u64(frames[2].return_slot - 8), Some(frames[3].fp));
    let ctx = t.thread_context(0).unwrap();
    assert_eq!(
        (ctx.ip(), ctx.sp(), ctx.fp()),
        (frames[0].ip, frames[0].sp, frames[0].fp)
    );
    // Every return address follows a call instruction.
    for fr in &frames[1..] {
        let b = mem.read_bytes(fr.ip - 6, 6);
        assert!(b[1] == 0xe8 || b[..2] == [0xff, 0x15], "{b:02x?}");
    }
}

#[test]
fn x86_frames_form_an_ebp_chain() {
    let (mut p, f, _) = small(Arch::X86);
    let frames = p.thread(1, f).frames.clone();
    let t = p.build();
    let mem = t.memory();
    let ctx = t.thread_context(0).unwrap();
    // The stub is frameless: its return address is at esp; then ebp leads from frame to frame.
    assert_eq!(mem.read_u32(ctx.sp()), Some(frames[1].ip as u32));
    let mut ebp = ctx.fp();
    for fr in &frames[1..frames.len() - 1] {
        assert_eq!(ebp, fr.fp);
        let ra = mem.read_u32(ebp + 4).unwrap() as u64;
        assert_eq!(ra, fr.return_address);
        ebp = mem.read_u32(ebp).unwrap() as u64;
    }
}

#[test]
fn the_loader_lists_hold_every_module_in_order() {
    for arch in [Arch::Amd64, Arch::X86] {
        let (mut p, f, _) = small(arch);
        p.thread(1, f);
        let l = p.layout();
        let t = p.build();
        let mem = t.memory();
        let ptr = |a: u64| mem.read_ptr(a, l.ptr).unwrap();
        let peb = p.peb();
        assert_eq!(ptr(peb + l.peb_image_base), t.modules()[0].base);
        let ldr = ptr(peb + l.peb_ldr);
        for (head_off, link_off, count) in [
            (l.ldr_in_load_order, 0, 2),
            (l.ldr_in_memory_order, l.entry_memory_links, 2),
            // The image is not in the initialization order list.
            (l.ldr_in_init_order, l.entry_init_links, 1),
        ] {
            let head = ldr + head_off;
            let mut bases = Vec::new();
            let mut link = ptr(head);
            while link != head {
                let entry = link - link_off;
                bases.push(ptr(entry + l.entry_dll_base));
                assert_eq!(ptr(ptr(link) + l.ptr), link, "Blink of Flink");
                link = ptr(link);
            }
            assert_eq!(bases.len(), count, "{arch:?}");
            assert_eq!(*bases.last().unwrap(), t.modules()[1].base);
        }
        let first = ptr(ldr + l.ldr_in_load_order);
        let name = first + l.entry_base_name;
        let len = mem.read_u16(name).unwrap() as usize;
        let text = mem.read_utf16_exact(ptr(name + l.ptr), len).unwrap();
        assert_eq!(text, "small.exe");
        assert_eq!(
            mem.read_u32(first + l.entry_size_of_image),
            Some(t.modules()[0].size)
        );
    }
}

/// (name, address) of every export, read from the image in memory.
fn exports(t: &SynthTarget, base: u64) -> Vec<(String, u64)> {
    let mem = t.memory();
    let nt = base + mem.read_u32(base + 0x3c).unwrap() as u64;
    assert_eq!(mem.read_u32(nt), Some(0x4550));
    let is64 = mem.read_u16(nt + 24) == Some(0x20b);
    let dirs = nt + 24 + if is64 { 112 } else { 96 };
    let dir = base + mem.read_u32(dirs).unwrap() as u64;
    let n = mem.read_u32(dir + 24).unwrap() as u64;
    let (funcs, names, ords) = (
        base + mem.read_u32(dir + 28).unwrap() as u64,
        base + mem.read_u32(dir + 32).unwrap() as u64,
        base + mem.read_u32(dir + 36).unwrap() as u64,
    );
    (0..n)
        .map(|i| {
            let name = mem
                .read_cstring(base + mem.read_u32(names + 4 * i).unwrap() as u64, 256)
                .unwrap();
            let ord = mem.read_u16(ords + 2 * i).unwrap() as u64;
            (name, base + mem.read_u32(funcs + 4 * ord).unwrap() as u64)
        })
        .collect()
}

#[test]
fn exports_name_functions_and_globals_sorted_by_name() {
    let (mut p, f, app) = small(Arch::Amd64);
    let counter = p.global(app, "g_counter", 8);
    let t = p.build();
    assert_eq!(
        exports(&t, app.base),
        vec![
            ("g_counter".to_string(), counter),
            ("helper".to_string(), f[1].addr),
            ("main".to_string(), f[2].addr),
        ]
    );
}

#[test]
fn the_version_resource_carries_the_strings() {
    let (p, _, _) = small(Arch::X86);
    let t = p.build();
    let m = &t.modules()[0];
    let image = t.memory().read_bytes(m.base, m.size as usize);
    let key = bytes::utf16("CompanyName");
    let value = bytes::utf16("Synthetic Corp");
    let at = image.windows(key.len()).position(|w| w == key).unwrap();
    assert!(image[at..at + 64].windows(value.len()).any(|w| w == value));
    let v = m.version.as_ref().unwrap();
    assert_eq!(v.file_version, (2, 0, 1, 7));
    assert_eq!(v.file_type, 1, "VFT_APP for an .exe");
}

#[test]
fn critical_sections_have_the_layout_of_their_bitness() {
    for (arch, owner_at, size) in [(Arch::Amd64, 0x10u64, 0x28usize), (Arch::X86, 0xc, 0x18)] {
        let (mut p, _, app) = small(arch);
        let cs = p.global(app, "g_lock", 0x28);
        p.critical_section(cs, CriticalSection::owned(0x1234, 2));
        let t = p.build();
        let mem = t.memory();
        let ptr = p.ptr();
        assert_eq!(mem.read_ptr(cs, ptr), Some(u64::MAX >> (64 - 8 * ptr)));
        assert_eq!(mem.read_u32(cs + ptr), Some((-10i32) as u32), "LockCount");
        assert_eq!(mem.read_u32(cs + ptr + 4), Some(1), "RecursionCount");
        assert_eq!(mem.read_ptr(cs + owner_at, ptr), Some(0x1234));
        assert_eq!(p.layout().cs_size as usize, size);
    }
}

#[test]
fn reads_continue_across_adjacent_blocks_and_stop_at_holes() {
    let mut p = Process::new(Arch::Amd64);
    let a = p.alloc(0x1000, 4);
    p.memory(a + 0x1000, &[7; 16]);
    p.write(a + 0xff8, &[1; 8]);
    let t = p.build();
    let mut buf = [0u8; 32];
    assert_eq!(t.memory().read(a + 0xff8, &mut buf), 24);
    assert_eq!(&buf[..8], &[1; 8]);
    assert_eq!(&buf[8..24], &[7; 16]);
    assert_eq!(t.memory().slice(a + 0xff8, 32).map(<[u8]>::len), Some(8));
}

#[test]
fn stack_data_lands_where_the_thread_says() {
    let (mut p, f, _) = small(Arch::Amd64);
    let record = dumpdiag_target::ExceptionRecord {
        code: 0xc000_0005,
        flags: 0,
        nested_record: 0,
        address: f[1].body(),
        parameters: vec![0, 0x10],
    };
    let record_bytes = p.exception_record_bytes(&record);
    let t = p.thread(7, f.clone());
    t.args(0, &[0x44, 0x55]);
    let local = t.local_word(2, 0x8, 0x77);
    let below = t.below_sp(&record_bytes);
    let (sp, slot) = (t.sp(), t.frames[0].return_slot);
    let built = p.build();
    let mem = built.memory();
    assert_eq!(mem.read_u64(slot + 8), Some(0x44));
    assert_eq!(mem.read_u64(slot + 16), Some(0x55));
    assert_eq!(mem.read_u64(local), Some(0x77));
    assert!(below < sp && below % 16 == 0);
    assert_eq!(mem.read_u32(below), Some(0xc000_0005));
    assert_eq!(mem.read_u64(below + 0x10), Some(f[1].body()));
    assert_eq!(mem.read_u32(below + 0x18), Some(2), "NumberParameters");
    assert_eq!(mem.read_u64(below + 0x28), Some(0x10));
}

#[test]
fn the_minidump_header_has_the_dump_time_and_flags() {
    let (mut p, f, _) = small(Arch::Amd64);
    p.system.dump_time = 0x6543_2100;
    p.system.dump_flags = 0x2;
    p.thread(1, f);
    let t = p.build();
    assert_eq!(t.facts().format, "User Mini Dump File with Full Memory");
    let d = t.minidump();
    assert_eq!(&d[..4], b"MDMP");
    assert_eq!(
        u32::from_le_bytes(d[20..24].try_into().unwrap()),
        0x6543_2100
    );
    assert_eq!(u64::from_le_bytes(d[24..32].try_into().unwrap()), 0x2);
}

#[test]
fn breakpad_files_describe_every_function() {
    let (mut p, f, _) = small(Arch::Amd64);
    p.thread(1, f.clone());
    let t = p.build();
    let app = &t.symbol_files()[0];
    assert!(app.text.starts_with("MODULE windows x86_64 "));
    assert!(app.text.contains(&format!(
        "FUNC {:x} 60 0 main\n",
        f[2].addr - t.modules()[0].base
    )));
    // main: push rbp, then sub rsp, 0x30: the CFA moves from rsp+8 to rsp+16 to rsp+0x40.
    let rva = f[2].addr - t.modules()[0].base;
    assert!(app.text.contains(&format!(
        "STACK CFI {:x} .cfa: $rsp 16 + $rbp: .cfa 16 - ^",
        rva + 1
    )));
    assert!(app
        .text
        .contains(&format!("STACK CFI {:x} .cfa: $rsp 64 +", rva + 5)));
    let store = t.symbol_store();
    let path = app.store_path(store.path());
    assert!(path.ends_with(format!("small.pdb/{}/small.sym", app.id)));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), app.text);
    let dir = store.path().to_path_buf();
    drop(store);
    assert!(!dir.exists(), "the temporary store is removed");
}

/// A WOW64 process: the 32-bit app, the SysWOW64 ntdll and the 64-bit layer; one thread parked
/// in the layer (a 32-bit wait), one caught running its own 32-bit code.
fn wow64_process() -> (Process, [Func; 3]) {
    let mut p = Process::wow64();
    let ntdll32 = p.wow64_layer().unwrap().ntdll32;
    let app = p.module(Module::new("C:\\app\\app32.exe"));
    let wait = p.add_function(ntdll32, Function::syscall("NtWaitForSingleObject", 4));
    let start = p.function(ntdll32, "RtlUserThreadStart", 0x40);
    let main = p.function(app, "main", 0x60);
    p.thread(1, [wait, main, start]).reg("ecx", 0x44);
    p.thread(2, [main, start]).in_32bit_code();
    (p, [wait, main, start])
}

#[test]
fn a_wow64_process_is_a_64_bit_dump_of_32_bit_code() {
    let (p, f) = wow64_process();
    let layer = p.wow64_layer().unwrap().clone();
    let t = p.build();
    let mem = t.memory();
    assert_eq!(t.facts().arch, Arch::Amd64);
    let names: Vec<String> = t.modules().iter().map(|m| m.path.clone()).collect();
    assert_eq!(names[0], "C:\\app\\app32.exe", "the image is listed first");
    for path in [
        "C:\\Windows\\System32\\ntdll.dll",
        "C:\\Windows\\System32\\wow64.dll",
        "C:\\Windows\\System32\\wow64win.dll",
        "C:\\Windows\\System32\\wow64cpu.dll",
        "C:\\Windows\\SysWOW64\\ntdll.dll",
    ] {
        assert!(names.iter().any(|n| n == path), "{path} in {names:?}");
    }
    // IMAGE_OPTIONAL_HEADER.Magic: PE32 (0x10b) for the process's own images, PE32+ (0x20b)
    // for the layer's.
    let magic = |base: u64| {
        let nt = base + mem.read_u32(base + 0x3c).unwrap() as u64;
        mem.read_u16(nt + 24).unwrap()
    };
    assert_eq!(magic(t.modules()[0].base), 0x10b);
    assert_eq!(magic(layer.ntdll32.base), 0x10b);
    assert_eq!(magic(layer.wow64cpu.base), 0x20b);
    assert!(
        layer.wow64cpu.base > 0xffff_ffff,
        "64-bit DLLs load above 4 GiB"
    );
    assert!(f[1].addr < 0xffff_ffff);

    let x86 = p.layout();
    assert_eq!(x86.ptr, 4, "the process's own layouts are 32-bit");
    for (i, th) in t.threads().iter().enumerate() {
        let own = p.thread_ref(th.id);
        let w = own.wow64.as_ref().unwrap();
        // The record names the TEB64; its NtTib.ExceptionList is the TEB32, 0x2000 above.
        assert_eq!(th.teb, w.teb64);
        let teb32 = mem.read_u64(th.teb).unwrap();
        assert_eq!(teb32, th.teb + 0x2000);
        assert_eq!(teb32, own.teb);
        // TEB32: NtTib.Self (0x18), StackBase (4), ProcessEnvironmentBlock (0x30).
        assert_eq!(mem.read_u32(teb32 + 0x18), Some(teb32 as u32));
        assert_eq!(mem.read_u32(teb32 + 4), Some(own.stack_base as u32));
        let peb32 = mem.read_u32(teb32 + 0x30).unwrap() as u64;
        assert_eq!(peb32, p.peb());
        // TEB64: Self (0x30), StackBase (8) is the 64-bit stack, ProcessEnvironmentBlock
        // (0x60) the PEB64.
        assert_eq!(mem.read_u64(th.teb + 0x30), Some(th.teb));
        assert_eq!(mem.read_u64(th.teb + 8), Some(w.stack_base));
        assert_eq!(mem.read_u64(th.teb + 0x60), Some(layer.peb64));
        assert_eq!(th.stack_start + th.stack_size, w.stack_base);
        // TlsSlots[1] (0x1480 + 8): WOW64_CPURESERVED, Machine I386, then the x86 CONTEXT:
        // ContextFlags with CONTEXT_i386, Ebp at 0xb4, Eip at 0xb8, SegCs at 0xbc, Esp at 0xc4.
        let cpu = mem.read_u64(th.teb + 0x1480 + 8).unwrap();
        assert_eq!(cpu, w.cpu_reserved);
        assert!(
            cpu > w.stack_limit && cpu < w.stack_base,
            "on the 64-bit stack"
        );
        assert_eq!(mem.read_u16(cpu + 2), Some(0x14c));
        let ctx = cpu + 4;
        assert_ne!(mem.read_u32(ctx).unwrap() & 0x1_0000, 0);
        assert_eq!(mem.read_u32(ctx + 0xb8), Some(own.ip() as u32));
        assert_eq!(mem.read_u32(ctx + 0xc4), Some(own.sp() as u32));
        assert_eq!(mem.read_u32(ctx + 0xbc), Some(0x23));
        // The 32-bit chain is on the 32-bit stack.
        assert_eq!(
            mem.read_u32(own.frames[0].return_slot),
            Some(own.frames[1].ip as u32),
            "thread {i}"
        );
        // The dump's context is an AMD64 one.
        let native = t.thread_context(i).unwrap();
        assert_eq!(native.arch(), Arch::Amd64);
        match th.id {
            1 => {
                // In the layer: 64-bit code (cs 0x33) on the 64-bit stack's chain.
                assert_eq!(native.ip(), w.frames[0].ip);
                assert_eq!(native.ip(), layer.chain[0].body());
                assert!(native.wow64_as_x86().is_none(), "cs 0x33");
                assert_eq!(mem.read_u64(w.frames[0].return_slot), Some(w.frames[1].ip));
            }
            _ => {
                // Caught in 32-bit code: the x86 registers with cs 0x23.
                let x = native.wow64_as_x86().expect("cs 0x23");
                assert_eq!(x.ip(), f[1].body());
                assert_eq!(x.sp(), own.sp());
            }
        }
    }
    // The saved ecx of thread 1 (CONTEXT x86 Ecx at 0xac).
    let cpu = p.thread_ref(1).wow64.as_ref().unwrap().cpu_reserved;
    assert_eq!(mem.read_u32(cpu + 4 + 0xac), Some(0x44));

    // PEB64 (x64 offsets): ImageBaseAddress, and a loader list holding the image and the
    // 64-bit modules only; PEB32's holds the 32-bit modules only.
    let peb64 = layer.peb64;
    assert_eq!(mem.read_u64(peb64 + 0x10), Some(t.modules()[0].base));
    let list = |head: u64, ptr: u64, base_at: u64| {
        let rd = |a: u64| mem.read_ptr(a, ptr).unwrap();
        let mut bases = Vec::new();
        let mut link = rd(head);
        while link != head {
            bases.push(rd(link + base_at));
            link = rd(link);
        }
        bases
    };
    let ldr64 = mem.read_u64(peb64 + 0x18).unwrap();
    let bases64 = list(ldr64 + 0x10, 8, 0x30);
    assert_eq!(
        bases64,
        vec![
            t.modules()[0].base,
            layer.ntdll.base,
            layer.wow64.base,
            layer.wow64win.base,
            layer.wow64cpu.base
        ]
    );
    let ldr32 = mem.read_u32(p.peb() + 0xc).unwrap() as u64;
    let bases32 = list(ldr32 + 0xc, 4, 0x18);
    assert_eq!(bases32, vec![t.modules()[0].base, layer.ntdll32.base]);
}

#[test]
fn a_wow64_fault_in_32_bit_code_is_stored_with_cs_0x23() {
    let (mut p, f) = wow64_process();
    let mut e = Exception::new(2, 0xc000_0005);
    e.parameters = vec![0, 0x10];
    p.exception(e);
    let t = p.build();
    let c = t.exception_context().unwrap();
    assert_eq!(c.arch(), Arch::Amd64);
    assert_eq!(c.wow64_as_x86().map(|x| x.ip()), Some(f[1].body()));
    assert_eq!(t.exception().unwrap().record.address, f[1].body());
    // The MDMP holds the same.
    let d = t.minidump();
    assert_eq!(&d[..4], b"MDMP");
}

#[test]
fn a_native_process_has_no_wow64_layer() {
    let (mut p, f, _) = small(Arch::Amd64);
    assert!(p.wow64_layer().is_none());
    let t = p.thread(1, f);
    assert!(t.wow64.is_none());
}
