//! RFC 8785 canonical JSON: never a panic, and canonical form is a fixed
//! point (canonicalizing canonical bytes changes nothing).
#![no_main]

use ledger::record::canon;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(once) = canon::canonicalize(data) {
        let twice = canon::canonicalize(&once).expect("canonical bytes are JSON");
        assert_eq!(once, twice, "canonical form is not a fixed point");
        assert!(std::str::from_utf8(&once).is_ok());
    }
});
