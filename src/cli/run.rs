use std::path::PathBuf;

use super::{CliError, Env};
use crate::history::Status;
use crate::run::Request;
use crate::workspace::Workspace;

/// Run a command as an official, recorded run.
///
/// Preflight (cores, memory, disk, git state) runs first; a failed preflight is
/// recorded as blocked and the command does not start (exit 1). Otherwise the
/// context, command and a `started` record are committed before the command
/// starts; its stdout and stderr stream to the terminal and to
/// audit/workstation_runs/<run_id>/run.log while hashed; the result record
/// (exit code or signal, times, log sha256, size, lines, last lines) is committed
/// when it ends, and ledger exits with the command's code (128+signal if killed).
///
/// Example: ledger run --workflow production_gates --tag committee_2026-11-22_run1
///   --owner hui --threads 8 -- python scripts/run_research_workflow.py
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Workflow name (letters, digits, . _ -).
    #[arg(long)]
    workflow: String,
    /// Tag of this run, unique in the ledger unless --rerun (letters, digits, . _ -).
    #[arg(long)]
    tag: String,
    /// Who answers for this run.
    #[arg(long)]
    owner: String,
    /// Free text kept in the context record.
    #[arg(long, default_value = "")]
    notes: String,
    /// Sets OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS,
    /// NUMEXPR_NUM_THREADS and VECLIB_MAXIMUM_THREADS for the command.
    #[arg(long, value_name = "N")]
    threads: Option<u32>,
    /// Block the run when tracked files differ from HEAD.
    #[arg(long)]
    require_clean: bool,
    /// A freeze file to hash into the context. When its name carries
    /// `_g<hex>` (e.g. freeze_g1a2b3c4.json) that hex must prefix HEAD, else
    /// preflight blocks the run.
    #[arg(long, value_name = "FILE")]
    freeze_file: Option<PathBuf>,
    /// CSV for the data-quality gate (required by workflows with
    /// `require_dq`); a failed gate blocks the run (exit 1, recorded).
    #[arg(long, value_name = "FILE")]
    dq_input_csv: Option<PathBuf>,
    /// Date (YYYY-MM-DD) the DQ staleness rule measures against; overrides
    /// ledger.yaml dq.staleness.as_of.
    #[arg(long, value_name = "DATE", value_parser = super::parse_date)]
    dq_as_of: Option<time::Date>,
    /// Skip the DQ gate; needs --skip-reason, and who skipped it and why are recorded.
    #[arg(long, requires = "skip_reason")]
    skip_dq: bool,
    /// Why the DQ gate is skipped.
    #[arg(long, value_name = "TEXT", requires = "skip_dq")]
    skip_reason: Option<String>,
    /// Allow a tag that the ledger already has.
    #[arg(long)]
    rerun: bool,
    /// Signing key (default: $LEDGER_KEY, ledger.yaml signing.key, git's user.signingkey).
    #[arg(long, value_name = "PATH")]
    key: Option<PathBuf>,
    /// Print the outcome as JSON on stdout; the command's output then goes only to run.log.
    #[arg(long)]
    json: bool,
    /// The command and its arguments, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

pub fn exec(args: Args, env: &Env, out: &mut Vec<u8>) -> Result<i32, CliError> {
    let ws = Workspace::open_worktree(&env.cwd)?;
    let signer = super::resolve_key(args.key, Some(&ws.config), &ws.store, &ws.root, env)?;
    let identity = super::identity(&ws.store, &signer);
    let request = Request {
        workflow: args.workflow,
        tag: args.tag,
        owner: args.owner,
        notes: args.notes,
        threads: args.threads,
        require_clean: args.require_clean,
        rerun: args.rerun,
        argv: args.command,
        user: env.user.clone(),
        env: env.vars.clone(),
        cwd: env.cwd.clone(),
        echo: !args.json,
        freeze_file: args
            .freeze_file
            .map(|p| crate::files::from_cwd(&env.cwd, &p)),
        dq_input: args
            .dq_input_csv
            .map(|p| crate::files::from_cwd(&env.cwd, &p)),
        dq_as_of: args.dq_as_of,
        skip_dq: args.skip_dq.then(|| args.skip_reason.unwrap_or_default()),
    };
    let mut stderr = std::io::stderr();
    let outcome = crate::run::run(&ws, &signer, &identity, &request, &mut stderr)?;
    if args.json {
        super::json(&outcome, out);
    } else {
        let mut msg = String::new();
        match outcome.status {
            Status::Blocked if outcome.data_quality.is_some() => {
                msg.push_str(&format!(
                    "ledger: run {} blocked by the data-quality gate; recorded in {}, report in {}/data_quality.log\n",
                    outcome.run_id, ws.config.ledger.ref_name, outcome.audit_dir
                ));
            }
            Status::Blocked => {
                msg.push_str(&format!(
                    "ledger: run {} blocked by preflight:\n",
                    outcome.run_id
                ));
                for c in &outcome.failed_checks {
                    msg.push_str(&format!(
                        "  {}: {} (required {})\n",
                        c.id, c.observed, c.required
                    ));
                }
                msg.push_str(&format!(
                    "ledger: recorded in {}; lower preflight.* in ledger.yaml only for non-official runs\n",
                    ws.config.ledger.ref_name
                ));
            }
            status => {
                for p in &outcome.leftover_processes {
                    msg.push_str(&format!(
                        "ledger: left behind by the command, now terminated: pid {} {}\n",
                        p.pid, p.command
                    ));
                }
                msg.push_str(&format!(
                    "ledger: run {} {} (exit {}); records in {}, copies in {}\n",
                    outcome.run_id,
                    status.as_str(),
                    outcome.code,
                    ws.config.ledger.ref_name,
                    outcome.audit_dir
                ));
            }
        }
        eprint!("{msg}");
    }
    Ok(outcome.code)
}
