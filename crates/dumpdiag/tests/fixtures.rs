//! The scenario fixtures (fixtures/build.py) are what their expected-results files claim:
//! streams present, exception code, access and address, thread count, handle counts, comment
//! streams, the C++ throw information, execution residue, CPU time.

mod common;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use dumpdiag_mdmp::MdmpTarget;
use dumpdiag_target::{MemoryExt, Target};
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Build (or reuse) the fixtures once per test run.
fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Ok(d) = std::env::var("DUMPDIAG_FIXTURES") {
            return PathBuf::from(d);
        }
        let out = std::process::Command::new("python3")
            .arg(repo().join("fixtures/build.py"))
            .output()
            .expect("run fixtures/build.py");
        assert!(
            out.status.success(),
            "fixture build failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string())
    })
}

fn scenarios() -> Vec<(String, Value)> {
    let mut v: Vec<(String, Value)> = std::fs::read_dir(repo().join("fixtures/scenarios"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .map(|e| {
            let name = e.path().file_stem().unwrap().to_string_lossy().into_owned();
            let spec: Value =
                serde_json::from_str(&std::fs::read_to_string(e.path()).unwrap()).unwrap();
            (name, spec)
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(v.len() >= 20, "expected the full scenario set");
    v
}

fn open(name: &str) -> MdmpTarget {
    MdmpTarget::open(fixtures().join(format!("{name}.dmp")))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn hex(v: &Value) -> Vec<u64> {
    v.as_str()
        .unwrap()
        .split('|')
        .map(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap())
        .collect()
}

#[test]
fn every_scenario_dump_matches_its_expected_results() {
    for (name, spec) in scenarios() {
        let t = open(&name);
        let ctx = |what: &str| format!("{name}: {what}");
        // Full memory, and the streams the dump writer adds because Wine omits them.
        assert!(
            t.facts().flags & 0x2 != 0,
            "{}",
            ctx("not a full-memory dump")
        );
        for s in spec["streams"].as_array().unwrap() {
            let s = s.as_str().unwrap();
            assert!(
                t.streams().iter().any(|e| e.name == s),
                "{}",
                ctx(&format!("stream {s} missing"))
            );
        }
        assert_eq!(
            t.threads().len() as u64,
            spec["thread_count"].as_u64().unwrap(),
            "{}",
            ctx("thread count")
        );
        match &spec["exception"] {
            Value::Null => assert!(
                t.exception().is_none(),
                "{}",
                ctx("unexpected exception stream")
            ),
            e => {
                let got = t
                    .exception()
                    .unwrap_or_else(|| panic!("{}", ctx("no exception stream")));
                assert_eq!(
                    got.record.code as u64,
                    hex(&e["code"])[0],
                    "{}",
                    ctx("exception code")
                );
                if let Some(access) = e["access"].as_str() {
                    let want = match access {
                        "read" => 0,
                        "write" => 1,
                        _ => 8,
                    };
                    assert_eq!(
                        got.record.parameters.first().copied(),
                        Some(want),
                        "{}",
                        ctx("access")
                    );
                }
                if !e["address"].is_null() {
                    assert!(
                        hex(&e["address"]).contains(&got.record.parameters[1]),
                        "{}",
                        ctx(&format!("address {:#x}", got.record.parameters[1]))
                    );
                }
                if let Some(params) = e["parameters"].as_array() {
                    assert_eq!(
                        got.record.parameters[0],
                        hex(&params[0])[0],
                        "{}",
                        ctx("parameter 0")
                    );
                }
                assert!(
                    t.thread_index_by_id(got.thread_id).is_some(),
                    "{}",
                    ctx("exception thread is in the thread list")
                );
            }
        }
        if let Some(c) = spec["comment"].as_str() {
            assert_eq!(
                t.extras().comment_a.as_deref(),
                Some(c),
                "{}",
                ctx("comment stream")
            );
        }
        if let Some(handles) = spec["handles"].as_object() {
            let list = t
                .handles()
                .unwrap_or_else(|| panic!("{}", ctx("no handle data")));
            for (ty, min) in handles {
                let n = list
                    .iter()
                    .filter(|h| h.type_name.as_deref() == Some(ty))
                    .count() as u64;
                assert!(
                    n >= min.as_u64().unwrap(),
                    "{}",
                    ctx(&format!("{n} {ty} handles"))
                );
            }
        }
        // ThreadInfoList covers every thread; MemoryInfoList covers the address space.
        assert!(
            t.threads().iter().all(|th| th.info.is_some()),
            "{}",
            ctx("thread without ThreadInfo")
        );
        assert!(
            t.regions().len() > 50,
            "{}",
            ctx("MemoryInfoList too small")
        );
        // The expected frame names are real symbols of the program or of the DLLs it builds.
        let mut pdb = std::fs::read(fixtures().join(format!("{name}.pdb"))).unwrap();
        for dll in spec["dlls"].as_array().into_iter().flatten() {
            pdb.extend(
                std::fs::read(fixtures().join(format!("{}.pdb", dll.as_str().unwrap()))).unwrap(),
            );
        }
        for stack in spec["stacks"].as_array().unwrap() {
            for f in stack["frames"].as_array().unwrap() {
                for f in f.as_str().unwrap().split('|') {
                    let in_pdb = pdb
                        .windows(f.len() + 1)
                        .any(|w| &w[..f.len()] == f.as_bytes() && w[f.len()] == 0);
                    let system =
                        ["RaiseException", "HeapFree", "RtlFreeHeap", "MessageBoxA"].contains(&f);
                    assert!(
                        in_pdb || system,
                        "{}",
                        ctx(&format!("{f} is not a symbol of the program"))
                    );
                }
            }
        }
    }
}

#[test]
fn cpp_exception_throw_info_leads_to_the_thrown_type_names() {
    let t = open("cpp_exception");
    let e = t.exception().unwrap();
    let p = &e.record.parameters;
    assert_eq!(p.len(), 4);
    assert_eq!(p[0], 0x19930520);
    let image = p[3];
    assert_eq!(
        t.module_at(image).map(|m| m.base),
        Some(image),
        "parameter 3 is the image base"
    );
    let mem = t.memory();
    // ThrowInfo.pCatchableTypeArray (RVA) -> count, RVAs of CatchableType -> TypeDescriptor RVA -> name.
    let cta = image + mem.read_u32(p[2] + 12).unwrap() as u64;
    let count = mem.read_u32(cta).unwrap();
    assert_eq!(count, 2);
    let names: Vec<String> = (0..count as u64)
        .map(|i| {
            let ct = image + mem.read_u32(cta + 4 + 4 * i).unwrap() as u64;
            let td = image + mem.read_u32(ct + 4).unwrap() as u64;
            mem.read_cstring(td + 16, 64).unwrap()
        })
        .collect();
    assert_eq!(names, [".?AVruntime_error@std@@", ".?AVexception@std@@"]);
}

#[test]
fn swallowed_access_violation_leaves_an_exception_record_on_the_stack() {
    let t = open("swallowed_av");
    assert!(t.exception().is_none());
    let th = &t.threads()[0];
    let ctx = t.thread_context(0).unwrap();
    // Below the current stack pointer (the unused part of the stack) lies the dispatcher's
    // EXCEPTION_RECORD: code c0000005, flags 0, ExceptionAddress inside the program's own code.
    let teb_stack_limit = t.memory().read_u64(th.teb + 0x10).unwrap();
    let image = t
        .modules()
        .iter()
        .find(|m| m.file_name() == "swallowed_av.exe")
        .unwrap()
        .clone();
    let (lo, hi) = (teb_stack_limit, ctx.sp());
    let bytes = t.memory().read_bytes(lo, (hi - lo) as usize);
    let hit = (0..bytes.len().saturating_sub(24)).step_by(8).find(|&i| {
        bytes[i..i + 4] == 0xc0000005u32.to_le_bytes()
            && bytes[i + 4..i + 8] == [0; 4]
            && image.contains(u64::from_le_bytes(
                bytes[i + 16..i + 24].try_into().unwrap(),
            ))
    });
    assert!(
        hit.is_some(),
        "no EXCEPTION_RECORD of the swallowed AV below rsp {hi:#x}"
    );
}

#[test]
fn spiking_thread_has_the_cpu_time() {
    let t = open("spiking_thread");
    let mut times: Vec<u64> = t
        .threads()
        .iter()
        .map(|th| th.info.as_ref().unwrap().user_time)
        .collect();
    times.sort();
    let top = times.pop().unwrap();
    assert!(top >= 10_000_000, "spinner ran at least a second: {top}");
    assert!(
        times.iter().all(|&x| x * 10 < top),
        "the others are idle: {times:?}"
    );
}

#[test]
fn message_box_text_and_caption_are_in_memory() {
    let t = open("message_box");
    for needle in [
        b"Fixture Settings".as_slice(),
        b"The configuration could not be saved.".as_slice(),
    ] {
        let found = t.captured_ranges().iter().any(|&(base, size)| {
            let bytes = t.memory().read_bytes(base, size.min(64 << 20) as usize);
            bytes.windows(needle.len()).any(|w| w == needle)
        });
        assert!(found, "{}", String::from_utf8_lossy(needle));
    }
    assert!(t
        .modules()
        .iter()
        .any(|m| m.file_name().eq_ignore_ascii_case("user32.dll")));
}

/// Function names (without module) of a walked stack, innermost first, with how each frame
/// was found.
fn frames_of(
    s: &dumpdiag_engine::Session,
    index: usize,
    ctx: &dumpdiag_target::Context,
) -> Vec<(String, dumpdiag_stack::Trust)> {
    let stack = dumpdiag_engine::cmd_stacks::stack_of(s, index, ctx);
    stack
        .frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let probe = if i > 0 { f.ip - 1 } else { f.ip };
            let name = s
                .symbols()
                .lookup(s.target(), probe)
                .map(|x| x.function)
                .unwrap_or_default();
            (name, f.trust)
        })
        .collect()
}

/// Does `frames` contain `expected` in order (each entry may list alternatives with `|`)?
fn contains_in_order(
    frames: &[(String, dumpdiag_stack::Trust)],
    expected: &[String],
) -> Option<usize> {
    let mut at = 0;
    let mut last = 0;
    for want in expected {
        let alts: Vec<&str> = want.split('|').collect();
        let p = frames[at..]
            .iter()
            .position(|(f, _)| alts.contains(&f.as_str()))?;
        last = at + p;
        at = last + 1;
    }
    Some(last)
}

#[test]
fn every_scenario_stack_shows_its_expected_frames_without_scanning() {
    for (name, spec) in scenarios() {
        let t = open(&name);
        let mut s = dumpdiag_engine::Session::new(Box::new(t));
        s.set_symbol_path(fixtures().to_str().unwrap());
        for want in spec["stacks"].as_array().unwrap() {
            let expected: Vec<String> = want["frames"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap().to_string())
                .collect();
            let candidates: Vec<(usize, dumpdiag_target::Context)> =
                if want["thread"] == "exception" {
                    let e = s
                        .target()
                        .exception()
                        .unwrap_or_else(|| panic!("{name}: no exception"));
                    let i = s.target().thread_index_by_id(e.thread_id).unwrap();
                    vec![(i, s.target().exception_context().unwrap())]
                } else {
                    (0..s.target().threads().len())
                        .filter_map(|i| Some((i, s.thread_context(i)?)))
                        .collect()
                };
            let hit = candidates.iter().find_map(|(i, ctx)| {
                let frames = frames_of(&s, *i, ctx);
                contains_in_order(&frames, &expected).map(|last| (frames, last))
            });
            let (frames, last) = hit.unwrap_or_else(|| {
                let shown: Vec<Vec<String>> = candidates
                    .iter()
                    .map(|(i, c)| frames_of(&s, *i, c).into_iter().map(|f| f.0).collect())
                    .collect();
                panic!("{name}: no thread shows {expected:?}; stacks: {shown:#?}")
            });
            assert!(
                frames[..=last]
                    .iter()
                    .all(|(_, t)| *t != dumpdiag_stack::Trust::Scan),
                "{name}: scanned frames among the application's frames: {frames:?}"
            );
        }
    }
}

#[test]
fn stack_commands_group_search_and_check_stacks() {
    let mut s = dumpdiag_engine::Session::new(Box::new(open("cs_chain3")));
    s.set_symbol_path(fixtures().to_str().unwrap());
    let u = s.execute("!uniqstack").text;
    assert!(
        u.contains("cs_chain3!refresh_cache+0x2f")
            && u.contains("cs_chain3!read_cache")
            && u.contains("cs_chain3!hold_config_forever"),
        "{u}"
    );
    assert!(u.contains("Total threads: 4"), "{u}");
    let f = s.execute("!findstack refresh_cache").text;
    assert!(
        f.contains("Thread 002, 1 frame(s) match")
            && f.contains("* 04 cs_chain3!refresh_cache+0x2f"),
        "{f}"
    );
    assert!(s
        .execute("!findstack no_such_function")
        .text
        .contains("No thread"));
    // A complete stack raises no stack-trace warning.
    let k = s.execute("~2k").text;
    assert!(!k.contains("WARNING"), "{k}");
    // A hand-made frame: k = bp sp ip from thread 2's own registers gives the same stack.
    let r = s.thread_context(2).unwrap();
    let manual = s
        .execute(&format!("~2k = {:#x} {:#x} {:#x}", r.fp(), r.sp(), r.ip()))
        .text;
    assert_eq!(
        manual.lines().filter(|l| l.contains('!')).count(),
        k.lines().filter(|l| l.contains('!')).count(),
        "{manual}"
    );
    // .frame selects a frame; dv then answers for it (clang keeps these locals in registers).
    assert!(s
        .execute("~2s; .frame 4")
        .text
        .contains("cs_chain3!refresh_cache+0x2f"));

    // The swallowed AV's thread was moved by hand: its walk ends before the thread start.
    let mut w = dumpdiag_engine::Session::new(Box::new(open("swallowed_av")));
    w.set_symbol_path(fixtures().to_str().unwrap());
    let k = w.execute("k").text;
    assert!(k.contains("WARNING: the walk ends in swallowed_av!recover_and_idle+0x1a before the thread start routine"), "{k}");
}

#[test]
fn disassembly_goes_backward_and_over_whole_functions() {
    let mut s = dumpdiag_engine::Session::new(Box::new(open("null_data_write")));
    s.set_symbol_path(fixtures().to_str().unwrap());
    s.execute(".ecxr");
    let ip = s.context().unwrap().ip();
    let ub = s.execute("ub @rip L2").text;
    let last = ub.lines().last().unwrap();
    let next = u64::from_str_radix(
        &last.split_whitespace().next().unwrap().replace('`', ""),
        16,
    )
    .unwrap();
    assert!(next < ip && ip - next <= 15, "{ub}");
    let uf = s.execute("uf null_data_write!store_value").text;
    assert!(uf.starts_with("null_data_write!store_value"), "{uf}");
    assert!(
        uf.contains("mov     dword ptr [rcx+10h],edx") || uf.contains("[rcx+10h]"),
        "{uf}"
    );
    assert!(uf.trim_end().ends_with("ret"), "{uf}");
    let u = s.execute("u null_data_write!update_record L6").text;
    assert!(u.contains("call    null_data_write!store_value ("), "{u}");
}

#[test]
fn cxr_switches_to_a_context_record_found_in_memory() {
    // The exception dispatcher leaves a CONTEXT copy on the faulting thread's stack: find the
    // one whose Rip (offset 0xf8) is the exception address, then `.cxr` to it.
    let t = open("null_data_write");
    let e = t.exception().unwrap().clone();
    let ti = t.thread_index_by_id(e.thread_id).unwrap();
    let th = t.threads()[ti].clone();
    let bytes = t
        .memory()
        .read_bytes(th.stack_start, th.stack_size as usize);
    let at = (0..bytes.len().saturating_sub(0x100))
        .step_by(16)
        .find(|&o| {
            let flags = u32::from_le_bytes(bytes[o + 0x30..o + 0x34].try_into().unwrap());
            let rip = u64::from_le_bytes(bytes[o + 0xf8..o + 0x100].try_into().unwrap());
            flags & 0x0010_0000 != 0 && rip == e.record.address
        });
    let at = th.stack_start + at.expect("a CONTEXT record on the stack") as u64;
    let mut s = dumpdiag_engine::Session::new(Box::new(t));
    s.set_symbol_path(fixtures().to_str().unwrap());
    let out = s.execute(&format!(".cxr {at:#x}")).text;
    assert!(
        out.contains(&format!("rip={:016x}", e.record.address)),
        "{out}"
    );
    let k = s.execute("k").text;
    assert!(
        k.contains("null_data_write!store_value+0x4")
            && k.contains("null_data_write!update_record"),
        "{k}"
    );
    // `.cxr` with no argument returns to the thread's own context.
    // (the crashed thread itself was waiting in the crash filter when the dump was written).
    s.execute(".cxr");
    assert_eq!(s.current_thread(), ti);
    assert!(!s
        .execute("r rip")
        .text
        .contains(&format!("{:016x}", e.record.address)));
}

#[test]
fn pdb_global_variables_are_symbols() {
    let mut s = dumpdiag_engine::Session::new(Box::new(open("cs_deadlock")));
    s.set_symbol_path(fixtures().to_str().unwrap());
    let x = s.execute("x cs_deadlock!g_*").text;
    assert!(
        x.contains("cs_deadlock!g_accounts_lock") && x.contains("cs_deadlock!g_ledger_lock"),
        "{x}"
    );
    let a = s.eval("cs_deadlock!g_ledger_lock").unwrap();
    assert_eq!(
        s.execute(&format!("ln {:#x}", a + 8)).text.trim_end(),
        format!(
            "({})   cs_deadlock!g_ledger_lock+0x8",
            dumpdiag_engine::format::addr(a, 8)
        )
    );
}
