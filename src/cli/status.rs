use super::{CliError, Env};
use crate::history::Status;
use crate::index::Index;
use crate::proc::Here;
use crate::status::human_duration;
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
    let index = Index::load(&ws.store)?;
    let states = crate::status::status(
        &ws.root,
        &ws.store,
        &index,
        &Here::read(),
        crate::clock::now()?,
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
    let mut text = String::new();
    for s in &states {
        let detail = match (s.status, s.code, s.elapsed_seconds) {
            (Status::Running, _, Some(e)) => {
                format!("running for {} on {}", human_duration(e), s.host)
            }
            (_, Some(code), Some(e)) => format!("exit {code} after {}", human_duration(e)),
            (Status::Blocked, _, _) => "blocked before the command started".into(),
            (Status::Aborted, _, _) => "ledger run died".into(),
            _ => String::new(),
        };
        text.push_str(&format!(
            "{:<10} {}  {detail}\n",
            s.status.as_str(),
            s.run_id
        ));
        if s.status == Status::Running {
            for l in &s.log_tail {
                text.push_str(&format!("           | {l}\n"));
            }
        }
    }
    if states.is_empty() {
        text.push_str("no runs yet\n");
    }
    out.extend_from_slice(text.as_bytes());
    Ok(0)
}
