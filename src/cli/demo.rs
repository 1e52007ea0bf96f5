use std::path::PathBuf;

use super::{CliError, Env};
use crate::history::Status;

/// Try ledger on a built-in example, in a scratch directory.
///
/// Creates a git repository with a sample gate workflow (POSIX sh only), a
/// signing key and a trust file, lowers the preflight limits for the demo
/// only, records four runs (one passing, one failing a gate, one blocked by
/// the data-quality gate, one rerun with a changed strategy config), renders
/// the audit documents with `finalize`, verifies the ledger, and says where
/// every file is.
///
/// Example: ledger demo /tmp/ledger-demo
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to build the demo (new or empty); default: a new temporary directory.
    dir: Option<PathBuf>,
}

#[allow(clippy::disallowed_methods)] // the CLI may read the environment
fn scratch() -> PathBuf {
    let base = std::env::temp_dir();
    let pid = std::process::id();
    (0..)
        .map(|n| base.join(format!("ledger-demo-{pid}-{n}")))
        .find(|p| !p.exists())
        .expect("some name is free")
}

pub fn exec(args: Args, env: &Env, out: &mut Vec<u8>) -> Result<i32, CliError> {
    let dir = args
        .dir
        .map_or_else(scratch, |d| crate::files::from_cwd(&env.cwd, &d));
    let mut note = std::io::stderr();
    let demo = crate::demo::demo(&dir, &mut note)?;
    let expected = [
        Status::Passed,
        Status::Failed,
        Status::Blocked,
        Status::Passed,
    ];
    let as_expected = demo.runs.iter().map(|r| r.status).eq(expected) && demo.verify.ok;
    let repo = demo.repo.display();
    let mut text = String::from("\nledger demo: what happened\n");
    for r in &demo.runs {
        text.push_str(&format!(
            "  {:<8} {} (exit {})\n",
            r.status.as_str(),
            r.run_id,
            r.code
        ));
    }
    text.push_str(&format!(
        "  finalize: {} documents, {}\n",
        demo.documents.len(),
        demo.finalize.finalize_id
    ));
    text.push_str(&format!(
        "  verify: {} ({} commits, {} records, head {})\n\n",
        if demo.verify.ok { "ok" } else { "FAILED" },
        demo.verify.commits,
        demo.verify.records,
        demo.verify.head
    ));
    text.push_str(&format!(
        "HTML report: {}\n\nwhere things are:\n  repository      {repo}\n  ledger          {repo} refs/heads/ledger (git log ledger; git show ledger:runs/<run_id>/result.dsse.json)\n  human copies    {repo}/audit/workstation_runs/<run_id>/\n  gate reports    {repo}/gate_results/ (also stored in the ledger under runs/<run_id>/products/)\n  stage audit log {repo}/docs/production_research/STAGE_AUDIT_LOG.md\n  summaries       {repo}/gate_results/<run>/production_gates_final_summary.md and production_gates_run_review.md\n  governance      {repo}/audit/workstation_runs/<run_id>/governance_audit_check.md and governance_remediation_plan.md\n  signing key     {}\n  trust file      {}\n\ntry:\n  cd {repo}\n  ledger log\n  ledger show committee_demo_value\n  ledger verify --projections\n  ledger finalize --check\n  git -c gpg.ssh.allowedSignersFile=.ledger/allowed_signers log --show-signature ledger\n",
        demo.report.display(),
        demo.key.display(),
        demo.trust.display()
    ));
    out.extend_from_slice(text.as_bytes());
    Ok(if as_expected { 0 } else { 1 })
}
