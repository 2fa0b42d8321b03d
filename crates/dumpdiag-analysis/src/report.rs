//! The report and its JSON contract (`dumpdiag.analysis/1`, see docs/analysis-json.md).

use serde::Serialize;

use crate::evidence::{Evidence, FrameView};
use crate::finding::Finding;
use crate::pattern::Category;
use dumpdiag_os::codes::{self, AccessKind};

fn hex(v: u64) -> String {
    format!("{v:#x}")
}

#[derive(Debug, Clone, Serialize)]
pub struct DumpInfo {
    pub path: String,
    pub arch: String,
    pub os_version: String,
    pub flags: Vec<String>,
    pub streams: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExceptionJson {
    pub code: String,
    pub name: String,
    pub address: String,
    pub thread_id: u32,
    pub access: Option<String>,
    pub target: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FrameJson {
    pub ip: String,
    pub module: Option<String>,
    pub function: Option<String>,
    pub offset: String,
    pub source: Option<String>,
    pub trust: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ThreadJson {
    pub id: u32,
    pub index: usize,
    pub name: Option<String>,
    pub frames: Vec<FrameJson>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModuleJson {
    pub name: String,
    pub path: String,
    pub base: String,
    pub size: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub dump: DumpInfo,
    pub modules: Vec<ModuleJson>,
    pub exception: Option<ExceptionJson>,
    pub threads: Vec<ThreadJson>,
    pub patterns: Vec<Finding>,
    pub signature: String,
}

fn frame_json(f: &FrameView) -> FrameJson {
    FrameJson {
        ip: hex(f.ip),
        module: f.module.clone(),
        function: f.function.clone(),
        offset: hex(f.offset),
        source: f
            .source
            .as_ref()
            .map(|(file, line)| format!("{file}:{line}")),
        trust: f.trust.label().to_string(),
    }
}

/// A crash bucket that survives rebuilds and address-space layout: the exception (code and
/// access) and the first application frames by name, or the patterns of a manual dump.
fn signature(ev: &Evidence, findings: &[Finding]) -> String {
    match &ev.exception {
        // A debugger's own breakpoint is no crash: the dump is bucketed as taken on purpose.
        Some(e) if !crate::detectors::taken_on_purpose(ev) => {
            let access = match (e.record.code, e.record.parameters.first()) {
                (codes::ACCESS_VIOLATION, Some(&p)) => AccessKind::from_parameter(p)
                    .map(|a| format!("_{}", a.label()))
                    .unwrap_or_default(),
                _ => String::new(),
            };
            let app: Vec<String> = ev
                .exception_frames()
                .iter()
                .filter(|f| {
                    f.function.is_some() && f.module.as_deref().is_some_and(|m| ev.is_app_module(m))
                })
                .take(3)
                .map(FrameView::call_site)
                .collect();
            let frames = if app.is_empty() {
                ev.exception_frames()
                    .iter()
                    .take(3)
                    .map(FrameView::call_site)
                    .collect()
            } else {
                app
            };
            format!("{:08x}{access}|{}", e.record.code, frames.join("|"))
        }
        _ => {
            // The walk's own quality says nothing about the problem: keep it out of the bucket.
            let mut names: Vec<&str> = findings
                .iter()
                .filter(|f| f.category() != Category::StackTrace)
                .map(|f| f.name())
                .collect();
            names.sort();
            names.dedup();
            format!("manual|{}", names.join("|"))
        }
    }
}

impl Report {
    pub fn new(ev: &Evidence, mut findings: Vec<Finding>) -> Report {
        let t = ev.target();
        let f = t.facts();
        findings.sort_by(|a, b| a.category().cmp(&b.category()).then(a.name().cmp(b.name())));
        let exception = ev.exception.as_ref().map(|e| {
            let r = &e.record;
            let access =
                (r.code == 0xc0000005 && r.parameters.len() >= 2).then(|| match r.parameters[0] {
                    0 => "read".to_string(),
                    1 => "write".to_string(),
                    _ => "execute".to_string(),
                });
            ExceptionJson {
                code: format!("{:#010x}", r.code),
                name: dumpdiag_os::errors::exception_name(r.code)
                    .unwrap_or("UNKNOWN_EXCEPTION")
                    .to_string(),
                address: hex(r.address),
                thread_id: e.thread_id,
                access: access.clone(),
                target: access.and(r.parameters.get(1).map(|v| hex(*v))),
            }
        });
        let threads = ev
            .threads
            .iter()
            .map(|th| {
                let frames = ev.frames_of(th);
                ThreadJson {
                    id: th.id,
                    index: th.index,
                    name: th.name.clone(),
                    frames: frames.iter().map(frame_json).collect(),
                }
            })
            .collect();
        let signature = signature(ev, &findings);
        Report {
            schema: "dumpdiag.analysis/1",
            dump: DumpInfo {
                path: t.path().to_string(),
                arch: f.arch.windbg_name().to_string(),
                os_version: format!("{}.{}.{}", f.os_major, f.os_minor, f.os_build),
                flags: codes::dump_flag_names(f.flags)
                    .into_iter()
                    .map(str::to_string)
                    .collect(),
                streams: t.streams().iter().map(|s| s.name.clone()).collect(),
            },
            modules: t
                .modules()
                .iter()
                .map(|m| ModuleJson {
                    name: m.short_name(),
                    path: m.path.clone(),
                    base: hex(m.base),
                    size: hex(m.size as u64),
                })
                .collect(),
            exception,
            threads,
            patterns: findings,
            signature,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// WinDbg-like sections, then the findings grouped by category.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        let _ = writeln!(o, "*******************************************************************************\n*                        Exception Analysis                                   *\n*******************************************************************************\n");
        match &self.exception {
            Some(e) => {
                let _ = writeln!(o, "EXCEPTION_CODE: ({}) {}", e.name, e.code);
                let _ = writeln!(o, "FAULTING_IP: {}", e.address);
                if let (Some(a), Some(t)) = (&e.access, &e.target) {
                    let _ = writeln!(o, "EXCEPTION_PARAMETERS: {a} at {t}");
                }
                let _ = writeln!(o, "FAULTING_THREAD: {:x}", e.thread_id);
                if let Some(th) = self.threads.iter().find(|t| t.id == e.thread_id) {
                    let _ = writeln!(o, "\nSTACK_TEXT:");
                    for f in &th.frames {
                        let site = match (&f.module, &f.function) {
                            (Some(m), Some(func)) => format!("{m}!{func}+{}", f.offset),
                            (Some(m), None) => format!("{m}+{}", f.offset),
                            _ => f.ip.clone(),
                        };
                        let _ = writeln!(
                            o,
                            "{:<20} {site}{}",
                            f.ip,
                            f.source
                                .as_ref()
                                .map(|s| format!(" [{s}]"))
                                .unwrap_or_default()
                        );
                    }
                }
            }
            None => {
                let _ = writeln!(o, "No exception stream: the dump was taken on purpose.");
            }
        }
        let _ = writeln!(o, "\nFAILURE_BUCKET_ID: {}\n", self.signature);
        let mut category = None;
        for f in &self.patterns {
            if Some(f.category()) != category {
                category = Some(f.category());
                let _ = writeln!(o, "--- {} ---", f.category().name());
            }
            let _ = writeln!(
                o,
                "{} [{}]: {}",
                f.name(),
                f.confidence().label(),
                f.summary
            );
            for e in f.evidence() {
                let _ = writeln!(o, "    {e}");
            }
            for c in &f.caveats {
                let _ = writeln!(o, "    (confidence lowered: {})", c.render());
            }
            if !f.recommendation.is_empty() {
                let _ = writeln!(o, "    -> {}", f.recommendation);
            }
        }
        o
    }
}
