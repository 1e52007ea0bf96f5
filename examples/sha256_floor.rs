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
//! With `--in-cache`, the first 128 KiB of the file are read once and hashed
//! over and over, as many bytes as the file holds: the hash's arithmetic
//! alone, with no reading at all. No gate that records the digest of the
//! file can be faster than that on one core. The digest printed is then
//! not the file's.
//!
//!   cargo run --release --example sha256_floor -- [--in-cache] FILE

use std::io::Read as _;

use sha2::{Digest as _, Sha256};

const USAGE: &str = "usage: sha256_floor [--in-cache] FILE";

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let in_cache = args.first().is_some_and(|a| a == "--in-cache");
    if in_cache {
        args.remove(0);
    }
    let [path] = &args[..] else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    let mut file = std::fs::File::open(path).expect("the file opens");
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 128 << 10];
    if in_cache {
        let size = file.metadata().expect("the file's size").len();
        let n = file.read(&mut buf).expect("the file reads");
        if n > 0 {
            let mut left = size;
            while left > 0 {
                let step = left.min(n as u64) as usize;
                hasher.update(&buf[..step]);
                left -= step as u64;
            }
        }
    } else {
        loop {
            let n = file.read(&mut buf).expect("the file reads");
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
    }
    let digest = hasher.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    println!("{hex}");
}
