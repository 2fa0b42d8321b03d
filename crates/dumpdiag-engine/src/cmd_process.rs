//! Process-wide commands: `!peb`, `!handle`, `!error`.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::format;
use crate::registry::{Command, Invocation};
use crate::{CommandError, Session};
use dumpdiag_os::{errors, handles, peb};

pub(crate) const COMMANDS: &[Command] = &[
    Command {
        names: &["!peb"],
        usage: "!peb [address]",
        help: "The PEB: loader lists, heaps, process parameters and environment.",
        family: None,
        arguments: &[],
        run: peb,
    },
    Command {
        names: &["!handle"],
        usage: "!handle [handle [mask [type]]]",
        help: "Handles by type; with a handle and mask 0xf, its access, name and object facts.",
        family: None,
        arguments: &["0"],
        run: handle,
    },
    Command {
        names: &["!error"],
        usage: "!error value",
        help: "The name and text of a Win32 error, NTSTATUS or HRESULT.",
        family: None,
        arguments: &[],
        run: error,
    },
];

fn peb(s: &mut Session, inv: &Invocation) -> Result<String, CommandError> {
    let a = if inv.args.is_empty() {
        s.peb_address().ok_or_else(|| {
            CommandError::Unavailable("PEB address not available (no readable TEB)".into())
        })?
    } else {
        s.eval(inv.args)?
    };
    let l = s.layout();
    let mem = s.target().memory();
    let p = peb::read_peb(mem, a, &l).ok_or_else(|| {
        CommandError::Unavailable(format!(
            "PEB at {}\nerror 1 InitTypeRead( nt!_PEB at {} ): memory not in the dump",
            s.addr(a),
            s.addr(a)
        ))
    })?;
    let yn = |b: bool| if b { "Yes" } else { "No" };
    let pl = |v: u64| format::plain(v, l.ptr);
    let mut o = String::new();
    let title = if s.is_wow64() && l.ptr == 4 {
        "Wow64 PEB32"
    } else {
        "PEB"
    };
    let _ = writeln!(o, "{title} at {}", s.addr(a));
    let _ = writeln!(
        o,
        "    InheritedAddressSpace:    {}",
        yn(p.inherited_address_space)
    );
    let _ = writeln!(
        o,
        "    ReadImageFileExecOptions: {}",
        yn(p.read_image_file_exec_options)
    );
    let _ = writeln!(o, "    BeingDebugged:            {}", yn(p.being_debugged));
    let _ = writeln!(o, "    ImageBaseAddress:         {}", pl(p.image_base));
    let _ = writeln!(
        o,
        "    NtGlobalFlag:             {}",
        p.nt_global_flag
            .map(|v| format!("{v:x}"))
            .unwrap_or_else(|| "????????".into())
    );
    let _ = writeln!(o, "    Ldr                       {}", pl(p.ldr));
    match p.ldr_initialized {
        Some(init) => {
            let _ = writeln!(o, "    Ldr.Initialized:          {}", yn(init));
        }
        None => {
            let _ = writeln!(o, "    *** unable to read Ldr table at {}", pl(p.ldr));
        }
    }
    if let Some(lists) = p.ldr_lists {
        let names = [
            "InInitializationOrderModuleList",
            "InLoadOrderModuleList",
            "InMemoryOrderModuleList",
        ];
        for (name, (f, b)) in names.iter().zip(lists) {
            let _ = writeln!(
                o,
                "    Ldr.{:<32} {} . {}",
                format!("{name}:"),
                pl(f),
                pl(b)
            );
        }
        let entries = peb::loader_entries(mem, &p, &l);
        let width = if l.ptr == 8 { 16 } else { 8 };
        let _ = writeln!(
            o,
            "            {:>width$} TimeStamp                     Module",
            "Base"
        );
        for e in entries {
            let stamp = e.time_date_stamp.unwrap_or(0);
            let _ = writeln!(
                o,
                "            {:>width$x} {stamp:08x} {} {}",
                e.base,
                format::short_time(stamp as i64),
                e.full_name.as_deref().unwrap_or("< Name not readable >")
            );
        }
    }
    let _ = writeln!(o, "    SubSystemData:     {}", pl(p.sub_system_data));
    let _ = writeln!(o, "    ProcessHeap:       {}", pl(p.process_heap));
    let _ = writeln!(o, "    ProcessParameters: {}", pl(p.process_parameters));
    if let Some(n) = p.number_of_heaps {
        let heaps: Vec<String> = p.process_heaps.iter().map(|h| pl(*h)).collect();
        let _ = writeln!(o, "    NumberOfHeaps:     {n}");
        let _ = writeln!(o, "    ProcessHeaps:      {}", heaps.join(" "));
    }
    match peb::read_process_parameters(mem, p.process_parameters, &l) {
        Some(pp) => {
            let q = |v: &Option<String>| {
                v.as_ref()
                    .map(|s| format!("'{s}'"))
                    .unwrap_or_else(|| "< Name not readable >".into())
            };
            let _ = writeln!(o, "    CurrentDirectory:  {}", q(&pp.current_directory));
            let _ = writeln!(o, "    WindowTitle:  {}", q(&pp.window_title));
            let _ = writeln!(o, "    ImageFile:    {}", q(&pp.image_path));
            let _ = writeln!(o, "    CommandLine:  {}", q(&pp.command_line));
            let _ = writeln!(o, "    DllPath:      {}", q(&pp.dll_path));
            let _ = writeln!(o, "    Environment:  {}", pl(pp.environment_address));
            match &pp.environment {
                Some(vars) => {
                    for v in vars {
                        let _ = writeln!(o, "        {v}");
                    }
                }
                None => {
                    let _ = writeln!(o, "        Unable to read Environment string.");
                }
            }
        }
        None => {
            let _ = writeln!(
                o,
                "    ProcessParameters not readable (memory not in the dump)"
            );
        }
    }
    Ok(o)
}

fn access_text(type_name: &str, access: u32) -> String {
    let generic = [
        (0x10000, "Delete"),
        (0x20000, "ReadControl"),
        (0x40000, "WriteDac"),
        (0x80000, "WriteOwner"),
        (0x100000, "Synch"),
    ];
    let specific: &[(u32, &str)] = match type_name {
        "Event" => &[(0x1, "QueryState"), (0x2, "ModifyState")],
        "Mutant" => &[(0x1, "QueryState")],
        "Semaphore" => &[(0x1, "QueryState"), (0x2, "ModifyState")],
        "File" => &[
            (0x1, "Read/List"),
            (0x2, "Write/Add"),
            (0x4, "Append/SubDir/CreatePipe"),
            (0x8, "ReadEA"),
            (0x10, "WriteEA"),
            (0x20, "Execute/Traverse"),
            (0x80, "ReadAttr"),
            (0x100, "WriteAttr"),
        ],
        "Key" => &[
            (0x1, "QueryValue"),
            (0x2, "SetValue"),
            (0x4, "CreateSubKey"),
            (0x8, "EnumSubKey"),
            (0x10, "Notify"),
            (0x20, "CreateLink"),
        ],
        "Thread" => &[
            (0x1, "Terminate"),
            (0x2, "Suspend"),
            (0x8, "GetContext"),
            (0x10, "SetContext"),
            (0x40, "QueryInfo"),
            (0x800, "QueryLimitedInfo"),
        ],
        "Process" => &[
            (0x1, "Terminate"),
            (0x2, "CreateThread"),
            (0x10, "VMRead"),
            (0x20, "VMWrite"),
            (0x400, "QueryInfo"),
            (0x1000, "QueryLimitedInfo"),
        ],
        _ => &[],
    };
    let names: Vec<&str> = generic
        .iter()
        .chain(specific.iter())
        .filter(|(b, _)| access & b != 0)
        .map(|(_, n)| *n)
        .collect();
    names.join(" ")
}

fn handle(s: &mut Session, inv: &Invocation) -> Result<String, CommandError> {
    let t = s.target();
    let Some(handles) = t.handles() else {
        return Err(CommandError::Unavailable(
            "ERROR: !handle: extension exception 0x80004002.\n    \"Unable to read handle \
             information\" (the dump has no HandleData stream)"
                .into(),
        ));
    };
    let args: Vec<&str> = inv.args.split_whitespace().collect();
    let wanted = match args.first() {
        Some(a) if *a != "0" => Some(s.eval(a)?),
        _ => None,
    };
    let mask = match args.get(1) {
        Some(m) => s.eval(m)?,
        None if wanted.is_some() => 0xf,
        None => 0,
    };
    let type_filter = args.get(2).map(|t| t.to_ascii_lowercase());
    let mut o = String::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let ptr = t.facts().pointer_size();
    for h in handles {
        let ty = h.type_name.clone().unwrap_or_else(|| "None".into());
        if type_filter
            .as_ref()
            .is_some_and(|f| f != &ty.to_ascii_lowercase())
        {
            continue;
        }
        if wanted.is_some_and(|w| w != h.handle) {
            continue;
        }
        *counts.entry(ty.clone()).or_default() += 1;
        if mask != 0 || wanted.is_some() {
            let _ = writeln!(o, "Handle {}", format::plain(h.handle, ptr));
            let _ = writeln!(o, "  Type         \t{ty}");
            if mask & 1 != 0 {
                let _ = writeln!(o, "  Attributes   \t{:x}", h.attributes);
                let _ = writeln!(o, "  GrantedAccess\t0x{:x}:", h.granted_access);
                let _ = writeln!(o, "         {}", access_text(&ty, h.granted_access));
                let _ = writeln!(o, "  HandleCount  \t{}", h.handle_count);
                let _ = writeln!(o, "  PointerCount \t{}", h.pointer_count);
            }
            if mask & 4 != 0 {
                let _ = writeln!(
                    o,
                    "  Name         \t{}",
                    h.object_name.as_deref().unwrap_or("<none>")
                );
            }
            if mask & 8 != 0 && !h.object_info.is_empty() {
                let _ = writeln!(o, "  Object Specific Information");
                for (kind, bytes) in &h.object_info {
                    for line in handles::describe(&handles::decode(*kind, bytes)) {
                        let _ = writeln!(o, "    {line}");
                    }
                }
            }
        }
    }
    if wanted.is_some() && counts.is_empty() {
        return Ok(format!(
            "Handle {} not found in the dump's handle table\n",
            format::plain(wanted.unwrap_or(0), ptr)
        ));
    }
    if wanted.is_none() {
        let total: usize = counts.values().sum();
        let _ = writeln!(o, "{total} Handles");
        let _ = writeln!(o, "Type           \tCount");
        let mut rows: Vec<_> = counts.into_iter().collect();
        rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        for (ty, n) in rows {
            let _ = writeln!(o, "{ty:<15}\t{n}");
        }
    }
    Ok(o)
}

fn error(s: &mut Session, inv: &Invocation) -> Result<String, CommandError> {
    let arg = inv
        .args
        .split_whitespace()
        .next()
        .ok_or_else(|| CommandError::Usage("Usage: !error <value>".into()))?;
    let v = s.eval(arg)? as u32;
    Ok(format!("{}\n", errors::describe(v)))
}
