//! Turning a [`Process`] description into a [`SynthTarget`]: the images are built, the
//! process's own structures written (PEB with its loader lists and process parameters in the
//! process heap, heap headers, TEBs, the stacks' frames), then the test's own bytes, and the
//! records a dump reader would produce are assembled (threads with contexts and times,
//! modules, regions, exception, handles).

use dumpdiag_target::*;

use crate::bytes::{align, ptr_bytes, utf16, utf16z};
use crate::context::Registers;
use crate::layout::Layout;
use crate::pe::{self, ImageFunction, ImageInput, SCN_DATA, SCN_TEXT};
use crate::process::*;
use crate::symbols::SymbolFile;
use crate::SynthTarget;

/// Functions whose address a loader entry gives as the module's entry point.
const ENTRY_POINTS: &[&str] = &[
    "wmainCRTStartup",
    "mainCRTStartup",
    "WinMainCRTStartup",
    "_DllMainCRTStartup",
    "DllMain",
    "main",
    "wmain",
];

/// Writes collected before the blocks they land in exist.
#[derive(Default)]
pub(crate) struct Writes(Vec<(u64, Vec<u8>)>);

impl Writes {
    fn bytes(&mut self, addr: u64, b: Vec<u8>) {
        self.0.push((addr, b));
    }
    fn u16(&mut self, addr: u64, v: u16) {
        self.bytes(addr, v.to_le_bytes().to_vec());
    }
    fn u32(&mut self, addr: u64, v: u32) {
        self.bytes(addr, v.to_le_bytes().to_vec());
    }
    fn ptr(&mut self, addr: u64, v: u64, l: &Layout) {
        self.bytes(addr, ptr_bytes(v, l.ptr));
    }
    /// A UNICODE_STRING at `at` whose text is allocated from `heap`: Length and MaximumLength
    /// (USHORT, bytes without and with the NUL), then Buffer at the pointer-aligned offset.
    fn unicode_string(&mut self, at: u64, text: &str, heap: &mut HeapData, l: &Layout) {
        let body = utf16z(text);
        let buf = heap.alloc(body.len() as u64, l);
        self.u16(at, (body.len() - 2) as u16);
        self.u16(at + 2, body.len() as u16);
        self.ptr(at + l.ptr, buf, l);
        self.bytes(buf, body);
    }
    /// A circular doubly linked list of LIST_ENTRY fields (Flink, Blink) through `nodes`,
    /// headed by the LIST_ENTRY at `head`.
    fn list(&mut self, head: u64, nodes: &[u64], l: &Layout) {
        let all: Vec<u64> = std::iter::once(head).chain(nodes.iter().copied()).collect();
        for (i, &n) in all.iter().enumerate() {
            let next = all[(i + 1) % all.len()];
            let prev = all[(i + all.len() - 1) % all.len()];
            self.ptr(n, next, l);
            self.ptr(n + l.ptr, prev, l);
        }
    }
}

fn region(
    base: u64,
    size: u64,
    alloc: u64,
    alloc_protect: u32,
    state: u32,
    protect: u32,
    kind: u32,
) -> RegionInfo {
    RegionInfo {
        base,
        allocation_base: alloc,
        allocation_protect: alloc_protect,
        size,
        state,
        protect,
        kind,
    }
}

/// A private read-write committed region that is its own allocation.
fn private_rw(base: u64, size: u64) -> RegionInfo {
    region(
        base,
        size,
        base,
        PAGE_READWRITE,
        MEM_COMMIT,
        PAGE_READWRITE,
        MEM_PRIVATE,
    )
}

/// The RSDS identity of a module: GUID, age, PDB name.
fn codeview_of(m: &ModuleData) -> Option<([u8; 16], u32, String)> {
    match &m.spec.codeview {
        CodeView::None => None,
        CodeView::Pdb70 {
            guid,
            age,
            pdb_name,
        } => Some((*guid, *age, pdb_name.clone())),
        CodeView::Derived => {
            let name = m.spec.file_name().to_ascii_lowercase();
            let mut guid = [0u8; 16];
            guid[..8].copy_from_slice(&fnv(name.as_bytes(), 2).to_le_bytes());
            guid[8..].copy_from_slice(&fnv(name.as_bytes(), 3).to_le_bytes());
            let stem = match name.rfind('.') {
                Some(i) => &m.spec.file_name()[..i],
                None => m.spec.file_name(),
            };
            Some((guid, 1, format!("{stem}.pdb")))
        }
    }
}

pub(crate) fn build(p: &Process) -> SynthTarget {
    let l = p.layout;
    let x64 = l.ptr == 8;
    let mut blocks: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut regions: Vec<RegionInfo> = p.regions.clone();
    let mut modules = Vec::new();
    let mut symbol_files = Vec::new();
    // (entry point, SizeOfImage) of each module by its index, for its loader entry.
    let mut images = vec![(0, 0); p.modules.len()];

    for &index in &p.module_order() {
        let m = &p.modules[index];
        let cv = codeview_of(m);
        let entry = m
            .functions
            .iter()
            .find(|f| ENTRY_POINTS.contains(&f.name.as_str()))
            .map(|f| f.rva)
            .unwrap_or(0);
        let image = pe::build(&ImageInput {
            // Each image of its own machine: a WOW64 process has 32-bit and 64-bit ones.
            x64: m.x64,
            base: m.base,
            dll: !m.spec.is_exe(),
            file_name: m.spec.file_name(),
            time_date_stamp: m.time_date_stamp,
            checksum: m.spec.checksum,
            text_size: m.spec.text_size,
            data_size: m.spec.data_size,
            entry_point: entry,
            functions: m
                .functions
                .iter()
                .map(|f| ImageFunction {
                    name: &f.name,
                    rva: f.rva,
                    size: f.size,
                    code: f.code,
                    exported: f.exported,
                    targets: f.targets.clone(),
                })
                .collect(),
            globals: m
                .globals
                .iter()
                .map(|(n, rva, e)| (n.as_str(), *rva, *e))
                .collect(),
            exports: m.spec.exports,
            codeview: cv.as_ref().map(|(g, a, n)| (*g, *a, n.as_str())),
            version: m.spec.version.as_ref(),
        });
        let size = image.bytes.len() as u32;
        for s in &image.sections {
            let protect = match s.characteristics {
                SCN_TEXT => PAGE_EXECUTE_READ,
                SCN_DATA => PAGE_READWRITE,
                _ => PAGE_READONLY,
            };
            regions.push(region(
                m.base + s.rva as u64,
                align(s.size as u64, PAGE),
                m.base,
                PAGE_EXECUTE_WRITECOPY,
                MEM_COMMIT,
                protect,
                MEM_IMAGE,
            ));
        }
        if m.spec.in_dump {
            blocks.push((m.base, image.bytes));
        }
        let entry_point = if entry == 0 { 0 } else { m.base + entry as u64 };
        images[index] = (entry_point, size);
        if let (Some((guid, age, pdb)), true) = (&cv, m.spec.symbols) {
            symbol_files.push(SymbolFile::new(m, *guid, *age, pdb, m.x64, size));
        }
        modules.push(ModuleRecord {
            base: m.base,
            size,
            checksum: m.spec.checksum,
            time_date_stamp: m.time_date_stamp,
            path: m.spec.path.clone(),
            version: m.spec.version.as_ref().map(|v| {
                let f = v.fixed_file_info();
                FixedFileInfo {
                    signature: f.signature,
                    file_version: v.file_version,
                    product_version: v.product_version,
                    file_flags_mask: f.file_flags_mask,
                    file_flags: f.file_flags,
                    file_os: f.file_os,
                    file_type: f.file_type,
                    file_subtype: f.file_subtype,
                    file_date: 0,
                }
            }),
            codeview: cv.map(|(guid, age, pdb_name)| CodeViewRecord::Pdb70 {
                guid,
                age,
                pdb_name,
            }),
            misc_name: None,
        });
    }

    // The loader's and the process parameters' data live in the process heap, as Windows
    // allocates them.
    let mut heaps = p.heaps.clone();
    let mut w = Writes::default();
    // The process's own loader lists its modules of its own bitness (a WOW64 process's 32-bit
    // loader does not list the 64-bit layer).
    let ldr = write_loader_data(p, &l, |m| m.x64 == x64, &mut heaps[0], &images, &mut w);
    let params = write_process_parameters(p, &l, &mut heaps[0], &mut w);
    let heap_array = heaps[0].alloc(16 * l.ptr, &l);
    for (i, h) in p.heaps.iter().enumerate() {
        w.ptr(heap_array + i as u64 * l.ptr, h.base, &l);
    }
    for h in &heaps {
        place_heap(h, h.base, &l, &mut blocks, &mut regions, &mut w);
    }
    for (segment, heap) in &p.heap_segments {
        place_heap(segment, *heap, &l, &mut blocks, &mut regions, &mut w);
    }

    let peb = Peb {
        at: p.peb,
        ldr,
        params,
        heaps: heaps.iter().map(|h| h.base).collect(),
        heap_array,
    };
    write_peb(p, &l, &peb, &mut blocks, &mut regions, &mut w);
    let s = &p.system;

    // Threads: TEB, stack, the chain's words, then the test's.
    let mut thread_words = Writes::default();
    for t in &p.threads {
        // _TEB (offsets in layout.rs): NtTib (ExceptionList, StackBase, StackLimit,
        // FiberData, Self), ClientId, ProcessEnvironmentBlock, LastErrorValue,
        // CountOfOwnedCriticalSections, LastStatusValue, DeallocationStack, TlsSlots.
        blocks.push((t.teb, vec![0; l.teb_size as usize]));
        regions.push(private_rw(t.teb, l.teb_size));
        let at = |o: u64| t.teb + o;
        w.ptr(
            at(l.teb_exception_list),
            if x64 { 0 } else { 0xffff_ffff },
            &l,
        );
        w.ptr(at(l.teb_stack_base), t.stack_base, &l);
        w.ptr(at(l.teb_stack_limit), t.stack_limit, &l);
        w.ptr(at(l.teb_fiber_data), 0x1e00, &l);
        w.ptr(at(l.teb_self), t.teb, &l);
        w.ptr(at(l.teb_client_id), s.process_id as u64, &l);
        w.ptr(at(l.teb_client_id + l.ptr), t.id as u64, &l);
        w.ptr(at(l.teb_peb), peb.at, &l);
        w.u32(at(l.teb_last_error), t.last_error);
        w.u32(at(l.teb_owned_cs), t.owned_critical_sections);
        w.u32(at(l.teb_last_status), t.last_status);
        w.ptr(at(l.teb_deallocation_stack), t.deallocation_stack, &l);
        for &(slot, v) in &t.tls {
            w.ptr(at(l.teb_tls_slots + slot as u64 * l.ptr), v, &l);
        }
        place_stack(
            t.deallocation_stack,
            t.stack_limit,
            t.stack_base,
            &mut blocks,
            &mut regions,
        );
        for (a, b) in t.frame_words() {
            thread_words.bytes(a, b);
        }
        for (a, b) in &t.writes {
            thread_words.bytes(*a, b.clone());
        }
    }
    if let Some(layer) = &p.wow64 {
        write_wow64(p, layer, &images, &mut blocks, &mut regions, &mut w);
    }
    for &(base, size, protect) in &p.allocs {
        blocks.push((base, vec![0; size as usize]));
        regions.push(region(
            base,
            size,
            base,
            protect,
            MEM_COMMIT,
            protect,
            MEM_PRIVATE,
        ));
    }
    blocks.extend(p.blocks.iter().cloned());
    w.0.extend(crate::jit::code_writes(p));

    blocks.sort_by_key(|b| b.0);
    for pair in blocks.windows(2) {
        assert!(
            pair[0].0 + pair[0].1.len() as u64 <= pair[1].0,
            "captured memory at {:#x} and {:#x} overlaps",
            pair[0].0,
            pair[1].0
        );
    }
    regions.sort_by_key(|r| r.base);
    for pair in regions.windows(2) {
        assert!(
            pair[0].end() <= pair[1].base,
            "regions at {:#x} and {:#x} overlap",
            pair[0].base,
            pair[1].base
        );
    }
    for (a, b) in w.0.iter().chain(&thread_words.0).chain(&p.writes) {
        store(&mut blocks, *a, b);
    }
    // A dump without a MemoryInfoList lists no regions.
    if !p.memory_info {
        regions.clear();
    }

    // The dump's machine: a 64-bit writer's dump of a WOW64 process is an x64 dump.
    let arch = if p.wow64.is_some() {
        Arch::Amd64
    } else {
        s.arch
    };
    let mut threads = Vec::new();
    let mut contexts = Vec::new();
    for t in &p.threads {
        // A WOW64 thread's record names its TEB64, its 64-bit stack and its AMD64 context.
        let (ctx, teb, stack_start, stack_base) = match &t.wow64 {
            Some(w) => (
                w.native_registers(t).context_bytes(arch),
                w.teb64,
                w.stack_limit,
                w.stack_base,
            ),
            None => (
                t.context().context_bytes(arch),
                t.teb,
                t.stack_limit,
                t.stack_base,
            ),
        };
        threads.push(ThreadRecord {
            id: t.id,
            suspend_count: t.suspend_count,
            priority_class: t.priority_class,
            priority: t.priority,
            teb,
            stack_start,
            stack_size: stack_base - stack_start,
            context_size: ctx.len() as u32,
            name: t.name.clone().filter(|n| !n.is_empty()),
            info: Some(t.times.clone()),
        });
        contexts.push(ctx);
    }

    let (exception, exception_context) = match &p.exception {
        Some(e) => {
            let regs: Registers = match &e.context {
                ExceptionContext::Thread => p.thread_ref(e.thread).context(),
                ExceptionContext::Frame(n) => p.thread_ref(e.thread).frame_context(*n),
                ExceptionContext::Registers(r) => r.clone(),
            };
            // Under WOW64 the stored context is an AMD64 one: a fault in 32-bit code keeps its
            // x86 registers there with the code selector 0x23.
            let regs = match p.wow64 {
                Some(_) => crate::wow64::x86_as_native(&regs),
                None => regs,
            };
            let ip = regs
                .get(crate::context::ip_sp_fp(arch)[0])
                .unwrap_or_default();
            let info = ExceptionInfo {
                thread_id: e.thread,
                record: ExceptionRecord {
                    code: e.code,
                    flags: e.flags,
                    nested_record: e.nested_record,
                    address: e.address.unwrap_or(ip),
                    parameters: e.parameters.iter().take(15).copied().collect(),
                },
                context_available: true,
                first_chance: None,
            };
            (Some(info), Some(regs.context_bytes(arch)))
        }
        None => (None, None),
    };

    let handles = (!p.handles.is_empty()).then(|| {
        p.handles
            .iter()
            .map(|(value, h)| HandleRecord {
                handle: *value,
                type_name: Some(h.type_name.clone()),
                object_name: h.object_name.clone().filter(|n| !n.is_empty()),
                attributes: h.attributes,
                granted_access: h.granted_access,
                handle_count: h.handle_count,
                pointer_count: h.pointer_count,
                object_info: h.info.iter().map(|i| i.encode()).collect(),
            })
            .collect()
    });

    let facts = DumpFacts {
        format: if s.dump_flags & 0x2 != 0 {
            "User Mini Dump File with Full Memory".into()
        } else {
            "User Mini Dump File".into()
        },
        arch,
        os_major: s.os_major,
        os_minor: s.os_minor,
        os_build: s.os_build,
        csd_version: String::new(),
        product_type: s.product_type,
        platform_id: s.platform_id,
        suite_mask: s.suite_mask,
        processor_count: s.processor_count,
        processor_level: s.processor_level,
        processor_revision: s.processor_revision,
        cpu_vendor: (arch == Arch::X86 && !s.cpu_vendor.is_empty()).then(|| s.cpu_vendor.clone()),
        dump_time: s.dump_time,
        flags: s.dump_flags,
        checksum: 0,
        process_id: Some(s.process_id),
        process_create_time: Some(s.process_create_time),
        process_user_time: Some(s.process_user_time),
        process_kernel_time: Some(s.process_kernel_time),
        ..Default::default()
    };
    let extras = ProcessExtras {
        comment_a: p.comment_a.clone(),
        comment_w: p.comment_w.clone(),
        function_tables: p.function_tables.clone(),
        ..Default::default()
    };
    let ranges = blocks.iter().map(|b| (b.0, b.1.len() as u64)).collect();
    SynthTarget {
        name: p.name.clone(),
        facts,
        threads,
        contexts,
        modules,
        unloaded: p.unloaded.clone(),
        regions,
        blocks,
        ranges,
        exception,
        exception_context,
        handles,
        extras,
        frames: p.threads.iter().map(|t| t.frames.clone()).collect(),
        symbol_files,
    }
}

/// A heap's committed (captured) and reserved memory and its _HEAP_SEGMENT header in the
/// layout `l`; `heap` is the heap the segment belongs to (its own base for a heap's first
/// segment).
fn place_heap(
    h: &HeapData,
    heap: u64,
    l: &Layout,
    blocks: &mut Vec<(u64, Vec<u8>)>,
    regions: &mut Vec<RegionInfo>,
    w: &mut Writes,
) {
    blocks.push((h.base, vec![0; h.commit as usize]));
    regions.push(region(
        h.base,
        h.commit,
        h.base,
        PAGE_READWRITE,
        MEM_COMMIT,
        PAGE_READWRITE,
        MEM_PRIVATE,
    ));
    if h.reserve > h.commit {
        regions.push(region(
            h.base + h.commit,
            h.reserve - h.commit,
            h.base,
            PAGE_READWRITE,
            MEM_RESERVE,
            0,
            MEM_PRIVATE,
        ));
    }
    // _HEAP_SEGMENT: its signature and owner, the range it covers.
    w.u32(h.base + l.heap_segment_signature, 0xffee_ffee);
    w.u32(h.base + l.heap_segment_flags, 2);
    w.ptr(h.base + l.heap_heap, heap, l);
    w.ptr(h.base + l.heap_base_address, h.base, l);
    w.u32(h.base + l.heap_number_of_pages, (h.reserve / PAGE) as u32);
    w.ptr(h.base + l.heap_first_entry, h.base + l.heap_header_size, l);
    w.ptr(h.base + l.heap_last_valid_entry, h.base + h.reserve, l);
}

/// Where a PEB and what it points to are.
struct Peb {
    at: u64,
    ldr: u64,
    params: u64,
    /// The process heap first.
    heaps: Vec<u64>,
    /// The ProcessHeaps array.
    heap_array: u64,
}

/// _PEB (offsets in layout.rs) in the layout `l`: the flags bytes (BeingDebugged at 2),
/// Mutant, the image, loader data, parameters and heaps, NtGlobalFlag, the OS version fields,
/// SessionId.
fn write_peb(
    p: &Process,
    l: &Layout,
    peb: &Peb,
    blocks: &mut Vec<(u64, Vec<u8>)>,
    regions: &mut Vec<RegionInfo>,
    w: &mut Writes,
) {
    let at = peb.at;
    blocks.push((at, vec![0; l.peb_size as usize]));
    regions.push(private_rw(at, align(l.peb_size, PAGE)));
    let image_base = p
        .modules
        .iter()
        .find(|m| m.spec.is_exe())
        .or(p.modules.first())
        .map(|m| m.base)
        .unwrap_or(0);
    let s = &p.system;
    w.bytes(at + 2, vec![s.being_debugged as u8]);
    w.ptr(at + l.peb_mutant, u64::MAX, l);
    w.ptr(at + l.peb_image_base, image_base, l);
    w.ptr(at + l.peb_ldr, peb.ldr, l);
    w.ptr(at + l.peb_process_parameters, peb.params, l);
    w.ptr(at + l.peb_process_heap, peb.heaps[0], l);
    w.u32(at + l.peb_number_of_processors, s.processor_count as u32);
    w.u32(at + l.peb_nt_global_flag, s.nt_global_flag);
    w.u32(at + l.peb_number_of_heaps, peb.heaps.len() as u32);
    w.u32(at + l.peb_number_of_heaps + 4, 16);
    w.ptr(at + l.peb_process_heaps, peb.heap_array, l);
    w.u32(at + l.peb_os_major, s.os_major);
    w.u32(at + l.peb_os_major + 4, s.os_minor);
    w.u16(at + l.peb_os_major + 8, s.os_build as u16);
    w.u32(at + l.peb_os_major + 12, s.platform_id);
    w.u32(at + l.peb_session_id, s.session_id);
}

/// A thread's stack: reserved, a guard page, then the committed (captured) part.
fn place_stack(
    deallocation_stack: u64,
    stack_limit: u64,
    stack_base: u64,
    blocks: &mut Vec<(u64, Vec<u8>)>,
    regions: &mut Vec<RegionInfo>,
) {
    let committed = stack_base - stack_limit;
    blocks.push((stack_limit, vec![0; committed as usize]));
    let guard = stack_limit - PAGE;
    if guard > deallocation_stack {
        regions.push(region(
            deallocation_stack,
            guard - deallocation_stack,
            deallocation_stack,
            PAGE_READWRITE,
            MEM_RESERVE,
            0,
            MEM_PRIVATE,
        ));
    }
    regions.push(region(
        guard,
        PAGE,
        deallocation_stack,
        PAGE_READWRITE,
        MEM_COMMIT,
        PAGE_READWRITE | PAGE_GUARD,
        MEM_PRIVATE,
    ));
    regions.push(region(
        stack_limit,
        committed,
        deallocation_stack,
        PAGE_READWRITE,
        MEM_COMMIT,
        PAGE_READWRITE,
        MEM_PRIVATE,
    ));
}

/// The 64-bit side of a WOW64 process (see `crate::wow64`): the PEB64 with its loader data
/// (the image and the 64-bit modules), process parameters and process heap, all in x64
/// layouts; and each thread's TEB64, 64-bit stack with its chain, and WOW64_CPURESERVED.
fn write_wow64(
    p: &Process,
    layer: &crate::wow64::Wow64Layer,
    images: &[(u64, u32)],
    blocks: &mut Vec<(u64, Vec<u8>)>,
    regions: &mut Vec<RegionInfo>,
    w: &mut Writes,
) {
    let l = crate::layout::X64;
    let mut heap = layer.heap.clone();
    // The 64-bit loader lists the image too: ntdll (64-bit) maps it before WOW64 starts.
    let ldr = write_loader_data(p, &l, |m| m.x64 || m.spec.is_exe(), &mut heap, images, w);
    let params = write_process_parameters(p, &l, &mut heap, w);
    let heap_array = heap.alloc(16 * l.ptr, &l);
    w.ptr(heap_array, heap.base, &l);
    place_heap(&heap, heap.base, &l, blocks, regions, w);
    let peb = Peb {
        at: layer.peb64,
        ldr,
        params,
        heaps: vec![heap.base],
        heap_array,
    };
    write_peb(p, &l, &peb, blocks, regions, w);
    let s = &p.system;
    for t in &p.threads {
        let Some(x) = &t.wow64 else {
            continue;
        };
        // _TEB (x64 offsets in layout.rs). NtTib.ExceptionList holds the TEB32's address: a
        // 64-bit thread never uses SEH frames there, and Wow64 keeps the pointer in it.
        blocks.push((x.teb64, vec![0; l.teb_size as usize]));
        regions.push(private_rw(x.teb64, l.teb_size));
        let at = |o: u64| x.teb64 + o;
        w.ptr(at(l.teb_exception_list), t.teb, &l);
        w.ptr(at(l.teb_stack_base), x.stack_base, &l);
        w.ptr(at(l.teb_stack_limit), x.stack_limit, &l);
        w.ptr(at(l.teb_fiber_data), 0x1e00, &l);
        w.ptr(at(l.teb_self), x.teb64, &l);
        w.ptr(at(l.teb_client_id), s.process_id as u64, &l);
        w.ptr(at(l.teb_client_id + l.ptr), t.id as u64, &l);
        w.ptr(at(l.teb_peb), layer.peb64, &l);
        w.ptr(at(l.teb_deallocation_stack), x.deallocation_stack, &l);
        // TlsSlots[1] is WOW64_TLS_CPURESERVED: WOW64_CPURESERVED { USHORT Flags; USHORT
        // Machine; } with the guest's CONTEXT right after it.
        w.ptr(at(l.teb_tls_slots + 8), x.cpu_reserved, &l);
        place_stack(
            x.deallocation_stack,
            x.stack_limit,
            x.stack_base,
            blocks,
            regions,
        );
        for (a, b) in crate::stack::Thread::chain_words(&x.frames, l.ptr) {
            w.bytes(a, b);
        }
        w.u16(x.cpu_reserved, 0);
        w.u16(x.cpu_reserved + 2, crate::wow64::MACHINE_I386);
        let saved = crate::wow64::Wow64Thread::x86_registers(t).context_bytes(Arch::X86);
        w.bytes(x.cpu_reserved + 4, saved);
    }
}

/// PEB_LDR_DATA and one LDR_DATA_TABLE_ENTRY per module (with its FullDllName and
/// BaseDllName), linked in load order and memory order (every module, in declaration order)
/// and in initialization order (the DLLs: the image itself is not initialized by the loader).
/// Returns the PEB_LDR_DATA address.
pub(crate) fn write_loader_data(
    p: &Process,
    l: &Layout,
    include: impl Fn(&ModuleData) -> bool,
    heap: &mut HeapData,
    images: &[(u64, u32)],
    w: &mut Writes,
) -> u64 {
    let l = *l;
    let ldr = heap.alloc(l.ldr_size, &l);
    w.u32(ldr, l.ldr_size as u32); // Length
    w.bytes(ldr + 4, vec![1]); // Initialized
    let mut entries = Vec::new();
    for index in p.module_order() {
        let (m, (entry_point, size)) = (&p.modules[index], images[index]);
        if !include(m) {
            continue;
        }
        let e = heap.alloc(l.entry_size, &l);
        w.ptr(e + l.entry_dll_base, m.base, &l);
        w.ptr(e + l.entry_entry_point, entry_point, &l);
        w.u32(e + l.entry_size_of_image, size);
        w.unicode_string(e + l.entry_full_name, &m.spec.path, heap, &l);
        w.unicode_string(e + l.entry_base_name, m.spec.file_name(), heap, &l);
        // LDRP_IMAGE_DLL (4) for DLLs, LDRP_ENTRY_PROCESSED (0x4000); a static load count.
        let flags = 0x4000 | if m.spec.is_exe() { 0 } else { 4 };
        w.u32(e + l.entry_flags, flags);
        w.u16(e + l.entry_load_count, 0xffff);
        w.u32(e + l.entry_time_date_stamp, m.time_date_stamp);
        entries.push((e, m.spec.is_exe()));
    }
    let load: Vec<u64> = entries.iter().map(|e| e.0).collect();
    let memory: Vec<u64> = load.iter().map(|e| e + l.entry_memory_links).collect();
    let init: Vec<u64> = entries
        .iter()
        .filter(|e| !e.1)
        .map(|e| e.0 + l.entry_init_links)
        .collect();
    w.list(ldr + l.ldr_in_load_order, &load, &l);
    w.list(ldr + l.ldr_in_memory_order, &memory, &l);
    w.list(ldr + l.ldr_in_init_order, &init, &l);
    ldr
}

/// RTL_USER_PROCESS_PARAMETERS, normalized (its strings hold addresses), with the environment
/// block. Returns its address.
pub(crate) fn write_process_parameters(
    p: &Process,
    l: &Layout,
    heap: &mut HeapData,
    w: &mut Writes,
) -> u64 {
    let l = *l;
    let at = heap.alloc(l.params_size, &l);
    w.u32(at, l.params_size as u32); // MaximumLength
    w.u32(at + 4, l.params_size as u32); // Length
    w.u32(at + l.params_flags, 1); // RTL_USER_PROC_PARAMS_NORMALIZED
    let image = p
        .modules
        .iter()
        .find(|m| m.spec.is_exe())
        .map(|m| m.spec.path.clone())
        .unwrap_or_default();
    let pr = &p.params;
    let image_path = pr.image_path.clone().unwrap_or(image);
    let command_line = pr
        .command_line
        .clone()
        .unwrap_or_else(|| format!("\"{image_path}\""));
    for (off, text) in [
        (l.params_current_directory, pr.current_directory.as_str()),
        (l.params_dll_path, pr.dll_path.as_str()),
        (l.params_image_path, image_path.as_str()),
        (l.params_command_line, command_line.as_str()),
        (l.params_window_title, pr.window_title.as_str()),
        (l.params_desktop_info, pr.desktop_info.as_str()),
    ] {
        w.unicode_string(at + off, text, heap, &l);
    }
    let mut env = Vec::new();
    for v in &pr.environment {
        env.extend_from_slice(&utf16(v));
        env.extend_from_slice(&[0, 0]);
    }
    env.extend_from_slice(&[0, 0]);
    let env_at = heap.alloc(env.len() as u64, &l);
    w.ptr(at + l.params_environment, env_at, &l);
    w.ptr(at + l.params_environment_size, env.len() as u64, &l);
    w.bytes(env_at, env);
    at
}
