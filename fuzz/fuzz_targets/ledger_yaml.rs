//! ledger.yaml: loading and `ledger config check` never panic, and a file
//! that loads has nothing `config check` calls a problem of the program's
//! own checks.
#![no_main]

use std::path::Path;

use ledger::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let loaded = Config::parse(Path::new("ledger.yaml"), text);
    let problems = ledger::config_check::check_text(text);
    if let Ok(config) = loaded {
        assert!(
            config.problems().is_empty(),
            "loaded a config with problems"
        );
        let _ = problems;
    }
});
