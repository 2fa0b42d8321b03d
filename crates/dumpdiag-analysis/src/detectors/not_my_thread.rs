//! Not My Thread: threads whose start routine lies outside the application's own modules — thread
//! pools, system services, third-party components — set apart from the application's threads.

use crate::thread_facts::{is_dump_writer, thread_procedure};
use crate::{Detector, Evidence, Finding, Pattern, Strength};

pub struct NotMyThread;

impl Detector for NotMyThread {
    fn pattern(&self) -> Pattern {
        Pattern::NotMyThread
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let mut foreign = Vec::new();
        let mut own = 0;
        for t in &ev.threads {
            if is_dump_writer(t) {
                continue;
            }
            let Some(p) = thread_procedure(ev, t) else {
                continue;
            };
            match p.module.as_deref() {
                Some(m) if ev.is_app_module(m) => own += 1,
                _ => foreign.push((t, p)),
            }
        }
        if foreign.is_empty() {
            return Vec::new();
        }
        let mut evidence: Vec<String> = foreign
            .iter()
            .map(|(t, p)| {
                let app = crate::thread_facts::application_caller(ev, t)
                    .map(|f| format!("; runs application code {}", f.call_site()));
                format!(
                    "thread {:x} started in {} ({:#x}){}",
                    t.id,
                    p.name,
                    p.address,
                    app.unwrap_or_default()
                )
            })
            .collect();
        evidence.push(format!(
            "{own} thread(s) started in the application's own modules"
        ));
        vec![Finding::new(self.pattern(), Strength::Likely, format!("{} thread(s) were created by system or third-party code", foreign.len()))
            .threads(foreign.iter().map(|(t, _)| t.id).collect())
            .notes(evidence)
            .recommend("These threads belong to the component that started them (thread pool, runtime, injected DLL); look there for their purpose before suspecting the application.")]
    }
}
