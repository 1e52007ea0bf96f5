use std::path::PathBuf;

use super::{CliError, Env};
use crate::workspace::Workspace;

/// Check every record and commit of the ledger, offline.
///
/// Recomputes every record id, checks every DSSE signature and every ledger
/// commit's SSH signature against the trust file (committee decisions against
/// the committee file), each writer's seq/prev chain and the order of records
/// within each run. Prints the ledger head it verified; exits 0 when all
/// holds, 1 with one line per problem otherwise.
///
/// Examples:
///   ledger verify --trust committee_allowed_signers
///   ledger verify --since <the head an earlier verify printed>   # append-only proof
///   ledger verify --policy          # also: every committee_* run is approved
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// allowed_signers file to trust (default: ledger.yaml trust.allowed_signers).
    #[arg(long, value_name = "FILE")]
    trust: Option<PathBuf>,
    /// Also check the projection files on disk against the newest finalize
    /// record and against a fresh projection of the ledger.
    #[arg(long)]
    projections: bool,
    /// A ledger head seen before (a committee's checkpoint): fail unless the
    /// current head descends from it, so a rewritten history is caught even
    /// when every record in it is validly signed.
    #[arg(long, value_name = "COMMIT")]
    since: Option<String>,
    /// Also fail unless every committee run (tag prefix ledger.yaml
    /// committee.tag_prefix) is approved under the k-of-n policy.
    #[arg(long)]
    policy: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn exec(args: Args, env: &Env, out: &mut Vec<u8>) -> Result<i32, CliError> {
    let ws = Workspace::open(&env.cwd)?;
    let trust = super::load_trust(args.trust, &ws, env)?;
    if args.policy && trust.committee.is_none() {
        return Err(CliError::usage(
            "verify --policy needs a committee: set ledger.yaml committee.allowed_signers",
        ));
    }
    let here = crate::proc::Here::read();
    // Only the policy and the projections need the runs themselves.
    let verified = if args.policy || args.projections {
        crate::verify::verify_with_runs(&ws.store, &trust, &here)?
    } else {
        crate::verify::Verified {
            report: crate::verify::verify(&ws.store, &trust, &here)?,
            runs: Vec::new(),
            decisions: Vec::new(),
        }
    };
    let mut report = verified.report.clone();
    if args.policy {
        let board = crate::committee::Board::new(&ws.config.committee, verified.decisions.clone());
        report
            .findings
            .extend(crate::verify::check_policy(&ws.store, &board, &verified)?);
        report.ok = report.findings.is_empty();
    }
    if let Some(checkpoint) = &args.since {
        if let Some(f) = crate::verify::check_since(&ws.store, checkpoint)? {
            report.findings.insert(0, f);
            report.ok = false;
        }
    }
    if args.projections {
        report
            .findings
            .extend(crate::finalize::check_projections(&ws, &trust, verified)?);
        report.ok = report.findings.is_empty();
    }
    if args.json {
        super::json(&report, out);
    } else {
        let finalizes = match report.finalizes {
            0 => String::new(),
            1 => " (1 finalize record)".to_string(),
            n => format!(" ({n} finalize records)"),
        };
        let decisions = match report.decisions {
            0 => String::new(),
            1 => " (1 decision)".to_string(),
            n => format!(" ({n} decisions)"),
        };
        let mut text = format!(
            "ledger {} at {}\ntrust {}\nchecked {} commits, {} runs, {} records{finalizes}{decisions}, {} writers\n",
            report.ref_name,
            report.head,
            report.trust_file,
            report.commits,
            report.runs,
            report.records,
            report.writers
        );
        for a in &report.aborted {
            if a.recovered {
                text.push_str(&format!(
                    "aborted run {} (its ledger run died; recorded by recover)\n",
                    a.run_id
                ));
            } else {
                text.push_str(&format!(
                    "aborted run {} (its ledger run died; `ledger recover` records it)\n",
                    a.run_id
                ));
            }
        }
        for f in &report.findings {
            text.push_str(&format!("{} {f}\n", env.paint(super::Tone::Bad, "FAIL")));
        }
        if report.ok {
            text.push_str(&format!("verify: {}\n", env.paint(super::Tone::Good, "ok")));
        } else {
            let problems = format!("{} problems", report.findings.len());
            text.push_str(&format!(
                "verify: {}\n",
                env.paint(super::Tone::Bad, &problems)
            ));
        }
        out.extend_from_slice(text.as_bytes());
    }
    Ok(if report.ok { 0 } else { 1 })
}
