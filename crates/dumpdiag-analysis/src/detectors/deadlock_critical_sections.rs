//! Deadlock (Critical Sections): a cycle of threads each waiting for a critical section another owns.

use super::wait_cycles;
use crate::waits::WaitObject;
use crate::{Detector, Evidence, Fact, Finding, Pattern, Strength};

pub struct DeadlockCriticalSections;

impl Detector for DeadlockCriticalSections {
    fn pattern(&self) -> Pattern {
        Pattern::DeadlockCriticalSections
    }
    fn detect(&self, ev: &Evidence) -> Vec<Finding> {
        wait_cycles(ev)
            .into_iter()
            .filter(|(_, _, only_cs)| *only_cs)
            .map(|(c, ws, _)| {
                let names: Vec<String> =
                    ws.iter().filter_map(|w| if let WaitObject::CriticalSection(cs) = &w.object { Some(cs.name.clone()) } else { None }).collect();
                Finding::new(
                    self.pattern(), Strength::Proven,
                    format!(
                        "threads {} wait for each other's critical sections {}",
                        c.iter().map(|t| format!("{t:x}")).collect::<Vec<_>>().join(", "),
                        names.join(", ")
                    ),
                )
                .threads(c.clone())
                .facts(ws.iter().map(|w| Fact::Wait((*w).clone())))
                .recommend("Take the locks in one global order everywhere (or hold one at a time); !cs -l and ~*k show the owners and where they wait.")
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::Analysed;
    use dumpdiag_synth::{CriticalSection, Func, Function, Module, Process};
    use dumpdiag_target::Arch;

    /// A process with the system frames every thread here needs: (process, app module, the
    /// wait chain of RtlEnterCriticalSection, the thread-start frames).
    struct Locks {
        p: Process,
        app: dumpdiag_synth::ModuleId,
        enter: [Func; 3],
        start: [Func; 2],
    }

    fn process(arch: Arch) -> Locks {
        let mut p = Process::new(arch);
        let app = p.module(Module::new("C:\\app\\locks.exe"));
        let ntdll = p.module(Module::new("C:\\Windows\\System32\\ntdll.dll"));
        let kernel32 = p.module(Module::new("C:\\Windows\\System32\\kernel32.dll"));
        let wait = p.add_function(ntdll, Function::syscall("NtWaitForAlertByThreadId", 0x1bd));
        let contended = p.function(ntdll, "RtlpEnterCriticalSectionContended", 0x80);
        let enter = p.function(ntdll, "RtlEnterCriticalSection", 0x60);
        let thunk = p.function(kernel32, "BaseThreadInitThunk", 0x40);
        let start = p.function(ntdll, "RtlUserThreadStart", 0x40);
        Locks {
            p,
            app,
            enter: [wait, contended, enter],
            start: [thunk, start],
        }
    }

    fn chain(l: &Locks, app_frame: Func) -> Vec<Func> {
        let mut c = l.enter.to_vec();
        c.push(app_frame);
        c.extend(l.start);
        c
    }

    #[test]
    fn a_cycle_of_critical_sections_is_a_deadlock_naming_both_locks_and_threads() {
        for arch in [Arch::Amd64, Arch::X86] {
            let mut l = process(arch);
            let transfer = l.p.function(l.app, "transfer", 0x80);
            let audit = l.p.function(l.app, "audit", 0x80);
            let accounts = l.p.global(l.app, "g_accounts_lock", 0x28);
            let ledger = l.p.global(l.app, "g_ledger_lock", 0x28);
            l.p.critical_section(accounts, CriticalSection::owned(0x111, 1));
            l.p.critical_section(ledger, CriticalSection::owned(0x222, 1));
            let (c1, c2) = (chain(&l, transfer), chain(&l, audit));
            l.p.thread(0x111, c1).local_word(2, 0x8, ledger);
            l.p.thread(0x222, c2).local_word(2, 0x8, accounts);
            let a = Analysed::exports_only(l.p);
            let found = a.detect(&DeadlockCriticalSections);
            assert_eq!(found.len(), 1, "{arch:?}: {found:#?}");
            let f = &found[0];
            assert_eq!(f.threads, vec![0x111, 0x222]);
            assert!(f.summary.contains("locks!g_accounts_lock"), "{}", f.summary);
            assert!(f.summary.contains("locks!g_ledger_lock"), "{}", f.summary);
            assert_eq!(f.confidence(), crate::Confidence::High);
        }
    }

    #[test]
    fn a_chain_without_a_cycle_is_no_deadlock() {
        let mut l = process(Arch::Amd64);
        let read = l.p.function(l.app, "read_cache", 0x80);
        let refresh = l.p.function(l.app, "refresh_cache", 0x80);
        let cache = l.p.global(l.app, "g_cache_lock", 0x28);
        let config = l.p.global(l.app, "g_config_lock", 0x28);
        // 0x333 owns the config lock and is not waiting on a lock.
        l.p.critical_section(cache, CriticalSection::owned(0x222, 1));
        l.p.critical_section(config, CriticalSection::owned(0x333, 1));
        let (c1, c2) = (chain(&l, read), chain(&l, refresh));
        l.p.thread(0x111, c1).local_word(2, 0x8, cache);
        l.p.thread(0x222, c2).local_word(2, 0x8, config);
        let sleep_chain = l.start.to_vec();
        l.p.thread(0x333, sleep_chain);
        let a = Analysed::exports_only(l.p);
        assert!(a.detect(&DeadlockCriticalSections).is_empty());
    }
}
