//! The MDMP writer: a [`SynthTarget`] written as a minidump (minidumpapiset.h layouts), every
//! RVA a `test_assembler` label resolved when the file is laid out. `minidump-synth` writes the
//! header and directory, SystemInfo, MiscInfo, the module, unloaded-module, memory,
//! memory-info and thread-name lists; the streams it cannot write as a Windows writer would
//! are built here from sections of its own kind:
//!
//! - ThreadList: MINIDUMP_THREAD with its Teb (minidump-synth writes 0 there);
//! - ThreadInfoList: MINIDUMP_THREAD_INFO_LIST (12-byte header) of MINIDUMP_THREAD_INFO
//!   (0x40 bytes each);
//! - Exception: MINIDUMP_EXCEPTION_STREAM with the location of its context (minidump-synth
//!   takes a fixed RVA);
//! - HandleData: MINIDUMP_HANDLE_DATA_STREAM of MINIDUMP_HANDLE_DESCRIPTOR_2, each with its
//!   chain of MINIDUMP_HANDLE_OBJECT_INFORMATION entries;
//! - CommentStreamA / CommentStreamW.
//!
//! Everything written comes from the [`dumpdiag_target::Target`] view of the process, so
//! reading the file back must give that view again.

use dumpdiag_target::{Arch, CodeViewRecord, Target};
use minidump_common::format as md;
use minidump_synth::{
    CpuInfo, DumpSection, DumpString, ExListStream, ListStream, Memory, MemoryInfo,
    MiscFieldsProcessTimes, MiscStream, Module, SectionExtra, SimpleStream, SynthMinidump,
    SystemInfo, ThreadName, UnloadedModule,
};
use test_assembler::{Endian, Label, Section};

use crate::SynthTarget;

const E: Endian = Endian::Little;

fn section() -> Section {
    Section::with_endian(E)
}

pub(crate) fn write(t: &SynthTarget) -> Vec<u8> {
    let f = t.facts();
    let mut d = SynthMinidump::with_endian(E).flags(f.flags);

    // MINIDUMP_SYSTEM_INFO.
    let mut si = SystemInfo::new(E);
    si.processor_architecture = match f.arch {
        Arch::X86 => 0,
        Arch::Amd64 => 9,
        Arch::Arm64 => 12,
        Arch::Other(x) => x,
    };
    si.processor_level = f.processor_level;
    si.processor_revision = f.processor_revision;
    si.number_of_processors = f.processor_count;
    si.product_type = f.product_type;
    si.major_version = f.os_major;
    si.minor_version = f.os_minor;
    si.build_number = f.os_build;
    si.platform_id = f.platform_id;
    si.suite_mask = f.suite_mask;
    let mut vendor = [0u8; 12];
    if let Some(v) = &f.cpu_vendor {
        let n = v.len().min(12);
        vendor[..n].copy_from_slice(&v.as_bytes()[..n]);
    }
    let word = |i: usize| u32::from_le_bytes(vendor[i * 4..i * 4 + 4].try_into().unwrap_or([0; 4]));
    si.cpu = CpuInfo::X86CpuInfo {
        vendor_id: [word(0), word(1), word(2)],
        version_information: 0,
        feature_information: 0,
        amd_extended_cpu_features: 0,
    };
    d = d.add_system_info(si);

    // MINIDUMP_MISC_INFO: process id and times.
    let mut misc = MiscStream::new(E);
    misc.process_id = f.process_id;
    misc.process_times = f.process_create_time.map(|create| MiscFieldsProcessTimes {
        process_create_time: create,
        process_user_time: f.process_user_time.unwrap_or(0),
        process_kernel_time: f.process_kernel_time.unwrap_or(0),
    });
    d = d.add_stream(misc);

    // Captured memory, cited by the thread list before it joins the memory list.
    let memories: Vec<Memory> = t
        .blocks()
        .iter()
        .map(|(addr, bytes)| Memory::with_section(section().append_bytes(bytes), *addr))
        .collect();

    // ThreadList: MINIDUMP_THREAD {ThreadId, SuspendCount, PriorityClass, Priority, Teb,
    // Stack (MINIDUMP_MEMORY_DESCRIPTOR), ThreadContext (MINIDUMP_LOCATION_DESCRIPTOR)}.
    let mut threads = ListStream::<Section>::new(md::MINIDUMP_STREAM_TYPE::ThreadListStream, E);
    let mut infos =
        ExListStream::<Section>::new(md::MINIDUMP_STREAM_TYPE::ThreadInfoListStream, 0x40, E);
    for (i, th) in t.threads().iter().enumerate() {
        let ctx = section().append_bytes(t.context_bytes(i));
        let mut s = section()
            .D32(th.id)
            .D32(th.suspend_count)
            .D32(th.priority_class)
            .D32(th.priority)
            .D64(th.teb);
        s = match memories.iter().find(|m| m.address == th.stack_start) {
            Some(m) => s.cite_memory(m),
            None => s.D64(th.stack_start).D32(th.stack_size as u32).D32(0),
        };
        threads = threads.add(s.cite_location(&ctx));
        d = d.add(ctx);
        if let Some(name) = &th.name {
            let n = DumpString::new(name, E);
            d = d
                .add_thread_name(ThreadName::new(E, th.id, Some(&n)))
                .add(n);
        }
        // MINIDUMP_THREAD_INFO: ThreadId, DumpFlags, DumpError, ExitStatus, CreateTime,
        // ExitTime, KernelTime, UserTime, StartAddress, Affinity.
        if let Some(x) = &th.info {
            infos = infos.add(
                section()
                    .D32(th.id)
                    .D32(x.dump_flags)
                    .D32(x.dump_error)
                    .D32(x.exit_status)
                    .D64(x.create_time)
                    .D64(x.exit_time)
                    .D64(x.kernel_time)
                    .D64(x.user_time)
                    .D64(x.start_address)
                    .D64(x.affinity),
            );
        }
    }
    if !t.threads().is_empty() {
        d = d.add_stream(threads);
    }
    if t.threads().iter().any(|th| th.info.is_some()) {
        d = d.add_stream(infos);
    }

    // ModuleList: MINIDUMP_MODULE with its name, VS_FIXEDFILEINFO and CodeView record.
    for m in t.modules() {
        let name = DumpString::new(&m.path, E);
        let version = m
            .version
            .as_ref()
            .map(|v| md::VS_FIXEDFILEINFO {
                signature: v.signature,
                struct_version: 0x0001_0000,
                file_version_hi: ((v.file_version.0 as u32) << 16) | v.file_version.1 as u32,
                file_version_lo: ((v.file_version.2 as u32) << 16) | v.file_version.3 as u32,
                product_version_hi: ((v.product_version.0 as u32) << 16)
                    | v.product_version.1 as u32,
                product_version_lo: ((v.product_version.2 as u32) << 16)
                    | v.product_version.3 as u32,
                file_flags_mask: v.file_flags_mask,
                file_flags: v.file_flags,
                file_os: v.file_os,
                file_type: v.file_type,
                file_subtype: v.file_subtype,
                file_date_hi: (v.file_date >> 32) as u32,
                file_date_lo: v.file_date as u32,
            })
            .unwrap_or_else(no_version);
        let mut module = Module::new(
            E,
            m.base,
            m.size,
            &name,
            m.time_date_stamp,
            m.checksum,
            &version,
        );
        let cv = match &m.codeview {
            Some(CodeViewRecord::Pdb70 {
                guid,
                age,
                pdb_name,
            }) => Some(crate::pe::rsds(guid, *age, pdb_name)),
            Some(CodeViewRecord::Pdb20 {
                signature,
                age,
                pdb_name,
            }) => {
                // CV_INFO_PDB20: "NB10", offset 0, signature, age, name.
                let mut v = b"NB10".to_vec();
                v.extend_from_slice(&0u32.to_le_bytes());
                v.extend_from_slice(&signature.to_le_bytes());
                v.extend_from_slice(&age.to_le_bytes());
                v.extend_from_slice(pdb_name.as_bytes());
                v.push(0);
                Some(v)
            }
            _ => None,
        };
        if let Some(cv) = cv {
            let s = section().append_bytes(&cv);
            module = module.cv_record(&s);
            d = d.add(s);
        }
        d = d.add_module(module).add(name);
    }
    for u in t.unloaded_modules() {
        let name = DumpString::new(&u.path, E);
        d = d
            .add_unloaded_module(UnloadedModule::new(
                E,
                u.base,
                u.size,
                &name,
                u.time_date_stamp,
                u.checksum,
            ))
            .add(name);
    }

    for m in memories {
        d = d.add_memory(m);
    }
    for r in t.regions() {
        d = d.add_memory_info(MemoryInfo::new(
            E,
            r.base,
            r.allocation_base,
            r.allocation_protect,
            r.size,
            r.state,
            r.protect,
            r.kind,
        ));
    }

    // MINIDUMP_EXCEPTION_STREAM: ThreadId, alignment, MINIDUMP_EXCEPTION (ExceptionCode,
    // ExceptionFlags, ExceptionRecord, ExceptionAddress, NumberParameters, alignment,
    // ExceptionInformation[15]), ThreadContext location.
    if let Some(e) = t.exception() {
        let r = &e.record;
        let mut s = section()
            .D32(e.thread_id)
            .D32(0)
            .D32(r.code)
            .D32(r.flags)
            .D64(r.nested_record)
            .D64(r.address)
            .D32(r.parameters.len().min(15) as u32)
            .D32(0);
        for i in 0..15 {
            s = s.D64(r.parameters.get(i).copied().unwrap_or(0));
        }
        match t.exception_context_bytes() {
            Some(c) => {
                let ctx = section().append_bytes(c);
                s = s.cite_location(&ctx);
                d = d.add(ctx);
            }
            None => s = s.D32(0).D32(0),
        }
        d = d.add_stream(SimpleStream {
            stream_type: md::MINIDUMP_STREAM_TYPE::ExceptionStream as u32,
            section: s,
        });
    }

    // MINIDUMP_HANDLE_DATA_STREAM {SizeOfHeader 16, SizeOfDescriptor 40, NumberOfDescriptors,
    // Reserved}, then MINIDUMP_HANDLE_DESCRIPTOR_2 {Handle, TypeNameRva, ObjectNameRva,
    // Attributes, GrantedAccess, HandleCount, PointerCount, ObjectInfoRva, Reserved0}.
    if let Some(handles) = t.handles() {
        let mut s = section().D32(16).D32(40).D32(handles.len() as u32).D32(0);
        for h in handles {
            let type_name = DumpString::new(h.type_name.as_deref().unwrap_or(""), E);
            s = s.D64(h.handle).D32(type_name.file_offset());
            d = d.add(type_name);
            match &h.object_name {
                Some(n) => {
                    let name = DumpString::new(n, E);
                    s = s.D32(name.file_offset());
                    d = d.add(name);
                }
                None => s = s.D32(0),
            }
            s = s
                .D32(h.attributes)
                .D32(h.granted_access)
                .D32(h.handle_count)
                .D32(h.pointer_count);
            // MINIDUMP_HANDLE_OBJECT_INFORMATION {NextInfoRva, InfoType, SizeOfInfo}, then the
            // information; built last to first so each can name the next.
            let mut next: Option<Label> = None;
            let mut chain = Vec::new();
            for (kind, bytes) in h.object_info.iter().rev() {
                let info = section();
                let start = info.start();
                let info = match &next {
                    Some(l) => info.D32(l),
                    None => info.D32(0),
                }
                .D32(*kind)
                .D32(bytes.len() as u32)
                .append_bytes(bytes);
                next = Some(start);
                chain.push(info);
            }
            s = match &next {
                Some(l) => s.D32(l),
                None => s.D32(0),
            }
            .D32(0);
            for info in chain.into_iter().rev() {
                d = d.add(info);
            }
        }
        d = d.add_stream(SimpleStream {
            stream_type: md::MINIDUMP_STREAM_TYPE::HandleDataStream as u32,
            section: s,
        });
    }

    let extras = t.extras();
    if let Some(text) = &extras.comment_a {
        d = d.add_stream(SimpleStream {
            stream_type: md::MINIDUMP_STREAM_TYPE::CommentStreamA as u32,
            section: section().append_bytes(text.as_bytes()).D8(0),
        });
    }
    if let Some(text) = &extras.comment_w {
        d = d.add_stream(SimpleStream {
            stream_type: md::MINIDUMP_STREAM_TYPE::CommentStreamW as u32,
            section: section().append_bytes(&crate::bytes::utf16z(text)),
        });
    }

    let mut bytes = d.finish().expect("every label of the dump is defined");
    // MINIDUMP_HEADER: CheckSum at 16 and TimeDateStamp at 20 (minidump-synth writes a
    // constant time).
    bytes[16..20].copy_from_slice(&f.checksum.to_le_bytes());
    bytes[20..24].copy_from_slice(&f.dump_time.to_le_bytes());
    bytes
}

/// A VS_FIXEDFILEINFO without signature: "no version information".
fn no_version() -> md::VS_FIXEDFILEINFO {
    md::VS_FIXEDFILEINFO {
        signature: 0,
        struct_version: 0,
        file_version_hi: 0,
        file_version_lo: 0,
        product_version_hi: 0,
        product_version_lo: 0,
        file_flags_mask: 0,
        file_flags: 0,
        file_os: 0,
        file_type: 0,
        file_subtype: 0,
        file_date_hi: 0,
        file_date_lo: 0,
    }
}
