//! Any bytes: open them as a dump of any format (MDMP or legacy USERDUMP/USERDU64), run the
//! information commands over the result, then the analysis.
#![no_main]
use libfuzzer_sys::fuzz_target;

const COMMANDS: &[&str] = &["vertarget", ".dumpdebug", "~", "~* r", ".exr -1", ".ecxr", "lmv", "lm u", "!teb", "!peb", "!address -summary", "!heap -s -v", "!handle 0 f", "!runaway 7", "!gle", "dps @$csp", "~*kv", "u @$ip", "ub @$ip", "!uniqstack", ".effmach x86", "!peb", "~*k"];

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = dumpdiag_mdmp::open_dump_bytes("fuzz.dmp", data.to_vec()) {
        let mut s = dumpdiag_engine::Session::new(t);
        for c in COMMANDS {
            let _ = s.execute(c);
        }
        let _ = dumpdiag_analysis::analyze(&s.analysis_input()).to_json();
    }
});
