use super::{CliError, Env};
use crate::index::Index;
use crate::proc::Here;
use crate::workspace::Workspace;

/// Every run's state: blocked, running, passed, failed or aborted.
///
/// Running runs show how long they have been running and the last lines of
/// their log (from this machine's copy); ended runs show their exit code,
/// duration and the last log lines their result recorded. Read-only: it never
/// writes the ledger or touches a run.
///
/// Examples:
///   ledger status
///   ledger status --tag committee_2026-11-22_run1 --lines 5 --json
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Only runs with this tag (or this run id).
    #[arg(long, value_name = "TAG")]
    tag: Option<String>,
    /// Log lines to show per run (running runs), 0 for none.
    #[arg(long, value_name = "N", default_value_t = 3)]
    lines: usize,
    /// Print the states as JSON (every run, with its log tail).
    #[arg(long)]
    json: bool,
}

pub fn exec(args: Args, env: &Env, out: &mut Vec<u8>) -> Result<i32, CliError> {
    let ws = Workspace::open(&env.cwd)?;
    ws.store.require_tip()?;
    let (here, now) = (Here::read(), crate::clock::now()?);
    if args.tag.is_none() && !args.json {
        let mut text = Vec::new();
        crate::listing::status(&ws.root, &ws.store, &here, now, args.lines, &mut text)?;
        if text.is_empty() {
            text.extend_from_slice(b"no runs yet\n");
        }
        out.append(&mut text);
        return Ok(0);
    }
    let index = Index::load(&ws.store)?;
    let states = crate::status::status(
        &ws.root,
        &ws.store,
        &index,
        &here,
        now,
        args.tag.as_deref(),
        args.lines,
    )?;
    if let (Some(tag), true) = (&args.tag, states.is_empty()) {
        return Err(CliError::usage(format!(
            "--tag: no run with tag or id {tag:?} in {}",
            ws.config.ledger.ref_name
        )));
    }
    if args.json {
        super::json(&states, out);
        return Ok(0);
    }
    for s in &states {
        crate::listing::status_lines(out, s);
    }
    if states.is_empty() {
        out.extend_from_slice(b"no runs yet\n");
    }
    Ok(0)
}
