use std::path::PathBuf;

use super::{CliError, Env};
use crate::record::Verdict;
use crate::workspace::Workspace;

/// Record your decision, as a committee member, on a run that has ended.
///
/// Writes a signed `decision` record with your key, which the committee file
/// (ledger.yaml committee.allowed_signers) must list and hold valid now. The
/// record names the run's result and the newest finalize record covering it:
/// finalize first, read the documents, then decide. You may decide again;
/// your newest decision counts and every earlier one stays in the ledger.
///
/// A run is approved when committee.threshold members' newest decisions are
/// approve and none is reject; rejected when any is reject; else pending.
/// `ledger finalize` shows the standing in every document, and
/// `ledger verify --policy` fails while a committee_* run is not approved.
///
/// Examples:
///   ledger decide --tag committee_2026-11-22_run1 --decision approve \
///       --reason "all gates pass at 2x cost" --key ~/.ssh/committee_ed25519
///   ledger decide 20261122T100000Z_production_gates_committee_run1 \
///       --decision rework --reason "rerun with the 2026-11 data freeze"
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The run: its id, or its tag (the newest run with that tag).
    #[arg(
        value_name = "RUN",
        required_unless_present = "tag",
        conflicts_with = "tag"
    )]
    run: Option<String>,
    /// The run's tag (the newest run with that tag).
    #[arg(long, value_name = "TAG")]
    tag: Option<String>,
    /// approve, reject or rework.
    #[arg(long, value_enum)]
    decision: Decision,
    /// Why: shown in the run's final summary.
    #[arg(long, value_name = "TEXT")]
    reason: String,
    /// Your committee key (default: $LEDGER_KEY, ledger.yaml signing.key, git's user.signingkey).
    #[arg(long, value_name = "PATH")]
    key: Option<PathBuf>,
    /// Print what was recorded as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Decision {
    Approve,
    Reject,
    Rework,
}

pub fn exec(args: Args, env: &Env, out: &mut Vec<u8>) -> Result<i32, CliError> {
    let ws = Workspace::open(&env.cwd)?;
    ws.store.require_tip()?;
    let trust = super::load_trust(None, &ws, env)?;
    let signer = super::resolve_key(args.key, Some(&ws.config), &ws.store, &ws.root, env)?;
    let identity = super::identity(&ws.store, &signer);
    let verdict = match args.decision {
        Decision::Approve => Verdict::Approve,
        Decision::Reject => Verdict::Reject,
        Decision::Rework => Verdict::Rework,
    };
    let target = args.run.or(args.tag).expect("clap requires RUN or --tag");
    let decided = crate::decide::decide(
        &ws,
        &trust,
        &signer,
        &identity,
        crate::clock::now()?,
        &target,
        verdict,
        &args.reason,
    )?;
    if args.json {
        super::json(&decided, out);
    } else {
        out.extend_from_slice(
            format!(
                "recorded decision {} by {} on run {} ({}): {}\nread from finalize record {}\nrun {}: {}\n",
                decided.decision_id,
                decided.member,
                decided.run_id,
                decided.tag,
                decided.decision.as_str(),
                decided.finalize_record,
                decided.run_id,
                decided.tally.label()
            )
            .as_bytes(),
        );
    }
    Ok(0)
}
