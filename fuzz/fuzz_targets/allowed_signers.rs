//! allowed_signers (git's format): never a panic; every entry that parses
//! answers the questions verify asks of it.
#![no_main]

use std::path::Path;

use ledger::trust::TrustFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(file) = TrustFile::parse(Path::new("allowed_signers"), text) {
        let at = time::OffsetDateTime::UNIX_EPOCH;
        for entry in &file.entries {
            let _ = entry.ed25519();
            let _ = entry.valid_at(at);
        }
        let _ = file.vouch("SHA256:x", at);
    }
});
