use std::path::PathBuf;

use super::{CliError, Env};
use crate::history::History;
use crate::workspace::Workspace;

/// Write the ledger's runs as an in-toto bundle: JSON Lines of DSSE envelopes.
///
/// One line per record, runs oldest first and each run's records in order,
/// each line the stored envelope as compact JSON (payload type
/// application/vnd.in-toto+json, the payload an in-toto Statement v1, keyid
/// the signer's SHA256 fingerprint). Standard in-toto and DSSE tooling
/// verifies the lines with the writers' ed25519 public keys. Nothing is
/// verified or changed here; `ledger verify` checks the ledger itself.
///
/// Examples:
///   ledger export --in-toto runs.intoto.jsonl
///   ledger export --in-toto - --tag committee_2026-11-22_run1 | jq .payloadType
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The bundle to write (`-` for standard output); an existing file is replaced.
    #[arg(long = "in-toto", value_name = "FILE")]
    in_toto: PathBuf,
    /// Only this run (a tag or a run id).
    #[arg(long, value_name = "TAG")]
    tag: Option<String>,
}

pub fn exec(args: Args, env: &Env, out: &mut Vec<u8>) -> Result<i32, CliError> {
    let ws = Workspace::open(&env.cwd)?;
    ws.store.require_tip()?;
    let history = History::load(&ws.store)?;
    let runs: Vec<&crate::history::Run> = match &args.tag {
        None => history.runs.iter().collect(),
        Some(tag) => vec![history.find(tag).ok_or_else(|| {
            CliError::from(crate::Error::input(
                "--tag",
                format!("no run with tag or id {tag:?} in the ledger"),
            ))
        })?],
    };
    let tip = ws.store.require_tip()?;
    let snapshot = ws.store.snapshot(tip)?;
    let mut bundle = Vec::new();
    let mut lines = 0;
    for run in &runs {
        for kind in run.records.keys() {
            let path = crate::journal::record_path(&run.run_id, *kind);
            let Some(bytes) = snapshot.read(&path)? else {
                continue;
            };
            let envelope: crate::record::Envelope =
                serde_json::from_slice(&bytes).map_err(|e| {
                    crate::Error::input(format!("ledger {path}"), format!("not an envelope: {e}"))
                })?;
            serde_json::to_writer(&mut bundle, &envelope).expect("envelopes serialize");
            bundle.push(b'\n');
            lines += 1;
        }
    }
    if args.in_toto.as_os_str() == "-" {
        out.extend_from_slice(&bundle);
        return Ok(0);
    }
    let path = crate::files::from_cwd(&env.cwd, &args.in_toto);
    let tmp = path.with_extension("ledger-tmp");
    let io = |source| crate::Error::Io {
        path: path.clone(),
        source,
    };
    std::fs::write(&tmp, &bundle).map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    out.extend_from_slice(
        format!(
            "wrote {lines} envelopes of {} runs to {}\n",
            runs.len(),
            path.display()
        )
        .as_bytes(),
    );
    Ok(0)
}
