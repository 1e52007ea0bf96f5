use std::path::PathBuf;

use super::{CliError, Env};
use crate::run::gate;
use crate::workspace::Workspace;

/// Check a CSV against ledger.yaml's data-quality rules.
///
/// The same gate `ledger run --dq-input-csv` applies: required columns and
/// types, not-null, unique key, date parse/sort/gaps, numeric ranges, minimum
/// rows, null fraction, staleness, then dq.command if set. One streaming pass;
/// nothing is recorded. Exits 0 when every rule passes, 1 otherwise.
///
/// Example: ledger dq --input data/in.csv --as-of 2026-11-20
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The CSV file to check.
    #[arg(long, value_name = "FILE")]
    input: PathBuf,
    /// Date (YYYY-MM-DD) the staleness rule measures against.
    #[arg(long, value_name = "DATE", value_parser = super::parse_date)]
    as_of: Option<time::Date>,
    /// Print the verdict as JSON (the data_quality record's predicate).
    #[arg(long)]
    json: bool,
}

pub fn exec(args: Args, env: &Env, out: &mut Vec<u8>) -> Result<i32, CliError> {
    let ws = Workspace::open_worktree(&env.cwd)?;
    let csv = crate::files::from_cwd(&env.cwd, &args.input);
    if !csv.is_file() {
        return Err(CliError::usage(format!(
            "--input: {}: no such file",
            csv.display()
        )));
    }
    let rel = crate::files::relative(&ws.root, &csv).unwrap_or_else(|| csv.display().to_string());
    let verdict = gate::check(
        &ws.root,
        &ws.config,
        &csv,
        &rel,
        args.as_of,
        gate::Output::Stderr,
    )?;
    if args.json {
        super::json(&verdict, out);
    } else {
        out.extend_from_slice(gate::render(&verdict).as_bytes());
    }
    Ok(if verdict.passed { 0 } else { 1 })
}
