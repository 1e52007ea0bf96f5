//! A floor under `ledger dq` (bench/run.sh dq): the SHA-256 of the input
//! that its record carries, with no parsing at all. SHA-256 is sequential,
//! so this is one core's work that no number of cores shortens. Prints the
//! digest in hex.
//!
//! The file is read 128 KiB at a time into one buffer, the cheapest read
//! found here: the kernel's copy into a buffer that stays in the core's
//! cache. The same reads into a 1 MiB buffer (or into a ring of them, as
//! the gate's pieces are) took three to four times the kernel time on the
//! same machine (docs/PERFORMANCE.md, "The read path").
//!
//!   cargo run --release --example sha256_floor -- FILE

use std::io::Read as _;

use sha2::{Digest as _, Sha256};

fn main() {
    let path = std::env::args().nth(1).expect("usage: sha256_floor FILE");
    let mut file = std::fs::File::open(&path).expect("the file opens");
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 128 << 10];
    loop {
        let n = file.read(&mut buf).expect("the file reads");
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let digest = hasher.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    println!("{hex}");
}
