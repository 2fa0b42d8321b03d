//! Managed Code Exception: a .NET exception raised through SEH — 0xE0434352 (CLR 4 / CoreCLR) or
//! 0xE0434F4D (CLR 2). The runtime puts the exception's HRESULT in parameter 0 and its own base
//! address in the last one; the HRESULT names the exception type. The exception object itself
//! needs the runtime's data structures (a later issue): the finding says so.

use crate::managed::{exception_type_of, runtime_module};
use crate::{Detector, Evidence, Finding, Pattern, Strength};

pub struct ManagedCodeException;

const CLR4_EXCEPTION: u32 = 0xe0434352;
const CLR2_EXCEPTION: u32 = 0xe0434f4d;

impl Detector for ManagedCodeException {
    fn pattern(&self) -> Pattern {
        Pattern::ManagedCodeException
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let Some(e) = &ev.exception else {
            return Vec::new();
        };
        let code = e.record.code;
        if code != CLR4_EXCEPTION && code != CLR2_EXCEPTION {
            return Vec::new();
        }
        let runtime_name = if code == CLR4_EXCEPTION {
            "CLR 4 / CoreCLR"
        } else {
            "CLR 2"
        };
        let mut evidence = vec![format!(
            "exception code {code:08x} ({runtime_name} exception) on thread {:x}",
            e.thread_id
        )];
        let hresult = e.record.parameters.first().map(|p| *p as u32);
        let type_name = hresult.and_then(exception_type_of);
        if let Some(hr) = hresult {
            evidence.push(format!(
                "HRESULT {hr:#010x}{}",
                type_name.map(|t| format!(": {t}")).unwrap_or_default()
            ));
        }
        let runtime = runtime_module(ev);
        if let Some(base) = e
            .record
            .parameters
            .last()
            .filter(|_| e.record.parameters.len() >= 2)
        {
            match ev.target().module_at(*base) {
                Some(m) => {
                    evidence.push(format!("raised by the runtime at {base:#x} ({})", m.path))
                }
                None => evidence.push(format!(
                    "runtime base in the record: {base:#x} (no module there)"
                )),
            }
        } else if let Some(m) = runtime {
            evidence.push(format!("runtime loaded: {}", m.path));
        }
        let managed_frames: Vec<String> = ev
            .exception_frames()
            .iter()
            .filter(|f| crate::managed::is_generated_code(ev, f.ip))
            .map(|f| format!("JIT-compiled frame at {:#x}", f.ip))
            .collect();
        evidence.extend(managed_frames);
        evidence.push("the exception object (type, message, managed stack) needs the runtime's data structures: not read yet".to_string());
        let what = type_name
            .map(|t| t.to_string())
            .unwrap_or_else(|| format!("HRESULT {:#010x}", hresult.unwrap_or(0)));
        vec![Finding::new(self.pattern(), Strength::Proven, format!("unhandled .NET exception: {what}"))
            .threads(vec![e.thread_id])
            .notes(evidence)
            .recommend(
                "Read the managed exception and its stack with SOS (!pe, !clrstack) or dotnet-dump; look for the missing catch or the failing call it names.",
            )]
    }
}
