//! The floor `ledger verify` is measured against (bench/run.sh verify):
//! `verify_strict` of N ed25519 signatures over messages of the given size,
//! on every core, with the key decompressed once. Prints the wall time in
//! milliseconds.
//!
//!   cargo run --release --example ed25519_floor -- N [MESSAGE_BYTES]

use ed25519_dalek::{Signer, SigningKey};

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .expect("usage: ed25519_floor N [MESSAGE_BYTES]");
    let size: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1400);
    let key = SigningKey::from_bytes(&[7; 32]);
    let messages: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let mut m = format!("message {i} ").into_bytes();
            m.resize(size, b'x');
            m
        })
        .collect();
    let signatures: Vec<[u8; 64]> = messages.iter().map(|m| key.sign(m).to_bytes()).collect();
    let public = key.verifying_key().to_bytes();
    let workers = std::thread::available_parallelism().map_or(1, |c| c.get());
    let chunk = n.div_ceil(workers).max(1);
    #[allow(clippy::disallowed_methods)] // a benchmark's own stopwatch
    let start = std::time::Instant::now();
    std::thread::scope(|scope| {
        for (ms, sigs) in messages.chunks(chunk).zip(signatures.chunks(chunk)) {
            scope.spawn(move || {
                let key = ed25519_dalek::VerifyingKey::from_bytes(&public).expect("a valid key");
                for (m, s) in ms.iter().zip(sigs) {
                    let sig = ed25519_dalek::Signature::from_bytes(s);
                    key.verify_strict(m, &sig).expect("the signature verifies");
                }
            });
        }
    });
    println!("{:.1}", start.elapsed().as_secs_f64() * 1e3);
}
