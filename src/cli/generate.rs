use std::path::PathBuf;

use super::{CliError, Env};

/// Write a realistic ledger of N signed runs into a new repository (benchmarks).
///
/// Makes DIR a git work tree (ledger.yaml naming keys/writer0 as its signing
/// key, .ledger/allowed_signers, untracked keys/writer<i>), then commits N runs straight into refs/heads/ledger,
/// many per commit: every record kind, stored reports and logs, twelve
/// factors, passing, failing, DQ-blocked and aborted runs, several writers
/// with their own chains. The ledger passes `ledger verify`. Runs start at
/// --start and ten minutes apart, so the same arguments give the same
/// history (keys aside).
///
/// Example: ledger generate /tmp/big --runs 10000 --writers 3
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A new or empty directory.
    dir: PathBuf,
    /// How many runs.
    #[arg(long, default_value_t = 1000)]
    runs: usize,
    /// How many writers (keys), taking runs in turn.
    #[arg(long, default_value_t = 3)]
    writers: usize,
    /// Runs per ledger commit.
    #[arg(long, default_value_t = 200)]
    per_commit: usize,
    /// Time of the first run (RFC 3339, UTC).
    #[arg(long, default_value = "2026-01-05T08:00:00Z")]
    start: String,
}

pub fn exec(args: Args, env: &Env, out: &mut Vec<u8>) -> Result<i32, CliError> {
    let start = crate::clock::parse_rfc3339(&args.start).ok_or_else(|| {
        CliError::usage(format!("--start: {:?} is not an RFC 3339 time", args.start))
    })?;
    let dir = crate::files::from_cwd(&env.cwd, &args.dir);
    let spec = crate::generate::Spec {
        runs: args.runs,
        writers: args.writers,
        per_commit: args.per_commit,
        start,
    };
    let g = crate::generate::generate(&dir, &spec)?;
    out.extend_from_slice(
        format!(
            "generated {} runs ({} records, {} commits) by {} writers\nrepository {}\ntrust      {}\nkeys       {}\n",
            args.runs,
            g.records,
            g.commits,
            g.keys.len(),
            g.repo.display(),
            g.trust.display(),
            g.keys
                .iter()
                .map(|k| k.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
        .as_bytes(),
    );
    Ok(0)
}
