//! A realistic, validly signed ledger of N runs for benchmarks, written
//! straight through the library (the same code as `ledger generate`):
//!
//!   cargo run --release --example gen-ledger -- --runs 100000 --out /tmp/big
//!
//! DIR is then a git work tree with ledger.yaml (whose signing.key names
//! keys/writer0, untracked), .ledger/allowed_signers and the ledger ref: `ledger
//! verify`, `finalize`, `log` and `status` run there without flags.

use std::path::PathBuf;

fn main() {
    let mut runs = 10_000;
    let mut writers = 3;
    let mut per_commit = 200;
    let mut out: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--runs" => {
                runs = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--runs: a number"))
            }
            "--writers" => {
                writers = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--writers: a number"))
            }
            "--per-commit" => {
                per_commit = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--per-commit: a number"))
            }
            "--out" => out = Some(PathBuf::from(value())),
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    let out = out.unwrap_or_else(|| usage("--out DIR is required"));
    let spec = ledger::generate::Spec {
        runs,
        writers,
        per_commit,
        start: ledger::clock::parse_rfc3339("2026-01-05T08:00:00Z").expect("a valid time"),
    };
    match ledger::generate::generate(&out, &spec) {
        Ok(g) => println!(
            "generated {runs} runs ({} records, {} commits) by {writers} writers\nwork tree {}\n",
            g.records,
            g.commits,
            g.repo.display()
        ),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}

fn usage(why: &str) -> ! {
    eprintln!(
        "gen-ledger: {why}\nusage: gen-ledger --runs N --out DIR [--writers K] [--per-commit P]"
    );
    std::process::exit(2);
}
