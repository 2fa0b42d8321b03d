//! CLR Thread: threads running .NET runtime code, named by what the runtime uses them for
//! (finalizer, GC, debugger helper, tiered compilation, thread pool, managed threads).

use crate::managed::{is_generated_code, is_runtime_frame, runtime_module};
use crate::{Detector, Evidence, Finding, Pattern, Strength};

pub struct ClrThread;

/// Runtime function names → the thread's role.
const ROLES: &[(&str, &str)] = &[
    ("Finalizer", "finalizer thread"),
    ("gc_thread", "GC thread"),
    ("GCThread", "GC thread"),
    ("DebuggerRCThread", "debugger helper thread"),
    ("TieredCompilation", "tiered compilation worker"),
    ("ThreadpoolMgr", "CLR thread pool thread"),
    ("PortableThreadPool", "CLR thread pool thread"),
    ("KickOffThread", "managed thread (System.Threading.Thread)"),
    ("ExecuteMainMethod", "managed main thread"),
    ("RunMain", "managed main thread"),
];

impl Detector for ClrThread {
    fn pattern(&self) -> Pattern {
        Pattern::ClrThread
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let Some(runtime) = runtime_module(ev) else {
            return Vec::new();
        };
        let mut found = Vec::new();
        for t in &ev.threads {
            let runtime_frames: Vec<&crate::FrameView> = t
                .frames
                .iter()
                .filter(|f| is_runtime_frame(f.module.as_deref()))
                .collect();
            let jit = t.frames.iter().any(|f| is_generated_code(ev, f.ip));
            if runtime_frames.is_empty() && !jit {
                continue;
            }
            let role = runtime_frames
                .iter()
                .rev()
                .find_map(|f| {
                    f.function
                        .as_deref()
                        .and_then(|n| ROLES.iter().find(|r| n.contains(r.0)).map(|r| r.1))
                })
                .unwrap_or(if jit {
                    "thread running managed code"
                } else {
                    "thread in runtime code"
                });
            let deepest = runtime_frames
                .last()
                .map(|f| f.call_site())
                .unwrap_or_default();
            found.push((
                t.id,
                format!(
                    "thread {:x}: {role}{}",
                    t.id,
                    if deepest.is_empty() {
                        String::new()
                    } else {
                        format!(" ({deepest})")
                    }
                ),
            ));
        }
        if found.is_empty() {
            return Vec::new();
        }
        let mut evidence = vec![format!("runtime: {}", runtime.path)];
        evidence.extend(found.iter().map(|f| f.1.clone()));
        vec![Finding::new(self.pattern(), Strength::Proven, format!("{} thread(s) belong to the .NET runtime or run managed code", found.len()))
            .threads(found.iter().map(|f| f.0).collect())
            .notes(evidence)
            .recommend("Runtime threads (finalizer, GC, debugger helper) normally wait; a blocked finalizer or a GC thread that is not waiting deserves a look with SOS (!threads, !finalizequeue).")]
    }
}
