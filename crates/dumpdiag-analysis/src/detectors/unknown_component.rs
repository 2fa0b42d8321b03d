//! Unknown Component: modules that cannot say who made them — no version resource, no company
//! name — or that were loaded from where code does not belong (temporary and download folders,
//! or a system DLL's name loaded from outside the system directory). The process's own image is
//! known by definition; system-directory modules are judged by their path (Wine's own DLLs carry
//! no version resources, and a Windows one always does).

use crate::silent;
use crate::{Detector, Evidence, Finding, Pattern, Strength};
use dumpdiag_os::{known, pe};

pub struct UnknownComponent;

/// Folders code is not installed in.
const UNEXPECTED_FOLDERS: &[&str] = &[
    "\\temp\\",
    "\\tmp\\",
    "\\downloads\\",
    "\\appdata\\local\\temp\\",
    "\\users\\public\\",
    "\\$recycle.bin\\",
];
/// DLLs that only ever come from the system directory (not the ones applications may deploy
/// beside themselves, such as ucrtbase.dll or dbghelp.dll).
const SYSTEM_DLLS: &[&str] = &[
    "ntdll.dll",
    "kernel32.dll",
    "kernelbase.dll",
    "user32.dll",
    "gdi32.dll",
    "advapi32.dll",
    "ws2_32.dll",
    "ole32.dll",
    "combase.dll",
    "rpcrt4.dll",
    "msvcrt.dll",
    "version.dll",
    "winmm.dll",
    "shell32.dll",
];

/// `%SystemRoot%` and its NT path forms (`known::is_system_path`), or Wine's unix side. Not any
/// folder named Windows: the loader maps the system's DLLs from `%SystemRoot%\System32` (the
/// KnownDLLs, kernel32.dll among them, always come from there), so `C:\ProgramData\Windows\`
/// is as foreign a place as any other.
fn in_system_directory(path: &str) -> bool {
    let p = path.to_ascii_lowercase();
    known::is_system_path(path) || p.starts_with("/") && p.contains("/wine/")
}

impl Detector for UnknownComponent {
    fn pattern(&self) -> Pattern {
        Pattern::UnknownComponent
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        let t = ev.target();
        let mem = t.memory();
        let mut evidence = Vec::new();
        for m in t
            .modules()
            .iter()
            .filter(|m| !ev.is_main_image_base(m.base))
        {
            let lower = m.path.to_ascii_lowercase();
            let file = m.file_name().to_ascii_lowercase();
            if UNEXPECTED_FOLDERS.iter().any(|f| lower.contains(f)) {
                evidence.push(format!("{}: loaded from {}", m.short_name(), m.path));
                continue;
            }
            // A bare file name (a legacy dump records ntdll.dll and the image as the debugger
            // first saw them) says nothing of where the DLL came from: judged by its maker.
            let has_directory = m.path.contains(['\\', '/']);
            if SYSTEM_DLLS.contains(&file.as_str())
                && has_directory
                && !in_system_directory(&m.path)
            {
                evidence.push(format!(
                    "{}: a system DLL's name loaded from outside the system directory: {}",
                    m.short_name(),
                    m.path
                ));
                continue;
            }
            if in_system_directory(&m.path) {
                continue;
            }
            let fixed = m.version.as_ref().filter(|v| v.signature == 0xfeef04bd);
            let strings = pe::read_headers(mem, m.base).and_then(|h| pe::version_strings(mem, &h));
            let company = strings
                .as_ref()
                .and_then(|s| {
                    s.iter()
                        .find(|(k, _)| k == "CompanyName")
                        .map(|(_, v)| v.trim().to_string())
                })
                .filter(|c| !c.is_empty());
            match (fixed, &strings, company) {
                (None, None, _) => evidence.push(format!(
                    "{}: no version information ({})",
                    m.short_name(),
                    m.path
                )),
                (_, Some(_), None) => evidence.push(format!(
                    "{}: no company name in its version resource ({})",
                    m.short_name(),
                    m.path
                )),
                _ => {}
            }
        }
        if evidence.is_empty() {
            silent!("every module names its maker or lives in the system directory");
        }
        vec![Finding::new(self.pattern(), Strength::Likely, format!("{} module(s) of unknown origin", evidence.len()))
            .notes(evidence)
            .recommend("Identify these modules (vendor, purpose, how they got into the process): injected hooks, security products and stale private copies are common suspects.")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::Analysed;
    use crate::Confidence;
    use dumpdiag_synth::{Function, Module, Process, Version};
    use dumpdiag_target::Arch;

    /// A version resource with a company name.
    fn made_by(company: &str) -> Version {
        Version::new(3, 1, 0, 12)
            .string("CompanyName", company)
            .string("ProductName", "Widgets")
    }

    /// A process of the (unversioned) image, ntdll and kernel32 from System32 without version
    /// resources (as Wine's are), a vendor's versioned DLL, and `extra`.
    fn process(arch: Arch, extra: &[Module]) -> Process {
        let mut p = Process::new(arch);
        let app = p.module(Module::new("C:\\app\\widgets.exe"));
        let ntdll = p.module(Module::new("C:\\Windows\\System32\\ntdll.dll"));
        p.module(Module::new("C:\\Windows\\System32\\kernel32.dll"));
        p.module(
            Module::new("C:\\Program Files\\Contoso\\Widgets\\render.dll")
                .version(made_by("Contoso Ltd")),
        );
        for m in extra {
            p.module(m.clone());
        }
        let wait = p.add_function(ntdll, Function::syscall("NtWaitForSingleObject", 4));
        let main = p.function(app, "main", 0x80);
        p.thread(0x10, [wait, main]);
        p
    }

    #[test]
    fn modules_without_a_maker_or_from_where_code_does_not_belong_are_listed() {
        for arch in [Arch::Amd64, Arch::X86] {
            let p = process(
                arch,
                &[
                    Module::new("C:\\Program Files\\Contoso\\Widgets\\plugin.dll"),
                    Module::new("C:\\Users\\bob\\AppData\\Local\\Temp\\hook.dll")
                        .version(made_by("Contoso Ltd")),
                    Module::new("C:\\app\\kernel32.dll").version(made_by("Microsoft Corporation")),
                    Module::new("C:\\Program Files\\Contoso\\Widgets\\codec.dll")
                        .version(Version::new(1, 0, 0, 0).string("ProductName", "Codec")),
                ],
            );
            let found = Analysed::exports_only(p).detect(&UnknownComponent);
            assert_eq!(found.len(), 1, "{arch:?}: {found:#?}");
            let f = &found[0];
            assert_eq!(f.summary, "4 module(s) of unknown origin");
            assert_eq!(
                f.evidence(),
                vec![
                    "plugin: no version information \
                     (C:\\Program Files\\Contoso\\Widgets\\plugin.dll)",
                    "hook: loaded from C:\\Users\\bob\\AppData\\Local\\Temp\\hook.dll",
                    "kernel32: a system DLL's name loaded from outside the system \
                     directory: C:\\app\\kernel32.dll",
                    "codec: no company name in its version resource \
                     (C:\\Program Files\\Contoso\\Widgets\\codec.dll)",
                ],
                "{arch:?}"
            );
            assert_eq!(f.confidence(), Confidence::Medium);
        }
    }

    #[test]
    fn versioned_vendor_modules_and_system_modules_are_known() {
        // The unversioned image, unversioned System32 DLLs and a vendor DLL naming its
        // company outside the system directory: all accounted for.
        for arch in [Arch::Amd64, Arch::X86] {
            let p = process(arch, &[Module::new("C:\\Windows\\System32\\version.dll")]);
            let found = Analysed::exports_only(p).detect(&UnknownComponent);
            assert!(found.is_empty(), "{arch:?}: {found:#?}");
        }
    }

    #[test]
    fn a_system_dll_recorded_by_bare_name_is_judged_by_its_maker_not_its_folder() {
        // Legacy full dumps name ntdll.dll without a directory: no folder to hold against it.
        let p = process(
            Arch::Amd64,
            &[
                Module::new("ws2_32.dll").version(made_by("Microsoft Corporation")),
                Module::new("user32.dll"),
            ],
        );
        let found = Analysed::exports_only(p).detect(&UnknownComponent);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(
            found[0].evidence(),
            vec!["user32: no version information (user32.dll)"]
        );
    }

    #[test]
    fn a_folder_named_windows_outside_the_system_root_is_no_system_directory() {
        // kernel32.dll is one of the KnownDLLs: Windows maps it from %SystemRoot%\System32 in
        // every process, so a kernel32.dll anywhere else is not the system's, even in a folder
        // that happens to be called Windows; and an unversioned DLL there is as unknown as
        // anywhere outside the system directory.
        let p = process(
            Arch::Amd64,
            &[
                Module::new("C:\\ProgramData\\Windows\\kernel32.dll"),
                Module::new("C:\\Program Files\\Contoso\\Windows\\shim.dll"),
            ],
        );
        let found = Analysed::exports_only(p).detect(&UnknownComponent);
        assert_eq!(found.len(), 1, "{found:#?}");
        let evidence = found[0].evidence().join("\n");
        assert!(
            evidence.contains(
                "a system DLL's name loaded from outside the system directory: \
                 C:\\ProgramData\\Windows\\kernel32.dll"
            ),
            "{evidence}"
        );
        assert!(
            evidence.contains("shim: no version information"),
            "{evidence}"
        );
    }
}
