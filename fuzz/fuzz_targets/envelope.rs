//! Record envelope decoding: any bytes from a pulled ledger. Never a panic;
//! whatever parses is canonical, and parsing without the canonical check
//! agrees with parsing with it.
#![no_main]

use ledger::record;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let checked = record::parse(data);
    let proven = record::parse_proven(data);
    if let Ok(parsed) = &checked {
        let again = ledger::record::canon::canonicalize(&parsed.payload_bytes)
            .expect("a parsed payload is JSON");
        assert_eq!(
            again, parsed.payload_bytes,
            "accepted a non-canonical payload"
        );
        let proven = proven
            .as_ref()
            .expect("a canonical payload parses unchecked too");
        assert_eq!(proven.id, parsed.id);
        assert_eq!(
            serde_json::to_vec(&proven.payload).unwrap(),
            serde_json::to_vec(&parsed.payload).unwrap()
        );
    }
});
