//! RFC 8785 canonical JSON: never a panic, canonical form is a fixed
//! point (canonicalizing canonical bytes changes nothing), and the one-pass
//! check `is_canonical` says yes only to bytes canonicalizing gives back,
//! and to every canonical text of modest depth.
#![no_main]

use ledger::record::canon;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let canonical = canon::canonicalize(data);
    if canon::is_canonical(data) {
        assert_eq!(canonical.as_deref(), Some(data), "is_canonical accepted non-canonical bytes");
    }
    if let Some(once) = canonical {
        let depth = once.iter().filter(|b| matches!(b, b'[' | b'{')).count();
        assert!(depth > 64 || canon::is_canonical(&once), "is_canonical refused canonical bytes");
        let twice = canon::canonicalize(&once).expect("canonical bytes are JSON");
        assert_eq!(once, twice, "canonical form is not a fixed point");
        assert!(std::str::from_utf8(&once).is_ok());
    }
});
