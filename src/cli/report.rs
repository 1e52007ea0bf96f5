use std::path::PathBuf;

use super::{CliError, Env};
use crate::workspace::Workspace;

/// Render every audit document as a static HTML site with charts.
///
/// Verifies the ledger, renders the same documents `ledger finalize` writes
/// (from the same Markdown, through comrak) and an index page with SVG charts:
/// the primary metric of each factor over its runs, the pass rate per
/// factor, failure patterns by count and run durations. No script, no
/// network; byte-identical for the same ledger. Writes only inside OUT_DIR
/// (never through a symlink) and leaves other files there alone.
///
/// Examples:
///   ledger report --html site && xdg-open site/index.html
///   ledger report --html /srv/www/ledger --trust committee_allowed_signers
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The directory to write the site into (created if missing).
    #[arg(long, value_name = "OUT_DIR")]
    html: PathBuf,
    /// allowed_signers file to trust (default: ledger.yaml trust.allowed_signers).
    #[arg(long, value_name = "FILE")]
    trust: Option<PathBuf>,
    /// Print what was written as JSON.
    #[arg(long)]
    json: bool,
}

pub fn exec(args: Args, env: &Env, out: &mut Vec<u8>) -> Result<i32, CliError> {
    let ws = Workspace::open(&env.cwd)?;
    let trust = super::load_trust(args.trust, &ws, env)?;
    let computed = crate::finalize::compute_site(&ws, &trust)?;
    let site = crate::project::Projection {
        files: computed.site.unwrap_or_default(),
        ..Default::default()
    };
    let dir = crate::files::from_cwd(&env.cwd, &args.html);
    std::fs::create_dir_all(&dir).map_err(|e| crate::Error::io(&dir, e))?;
    let written = crate::finalize::write(&dir, &site)?;
    let changed = written.iter().filter(|w| w.changed).count();
    if args.json {
        super::json(
            &serde_json::json!({
                "ledger_head": computed.head,
                "runs": computed.runs,
                "dir": dir.display().to_string(),
                "files": written.len(),
                "changed": changed,
            }),
            out,
        );
    } else {
        out.extend_from_slice(
            format!(
                "report: ledger head {}, {} runs\nwrote {changed} of {} files into {} (open index.html)\n",
                computed.head,
                computed.runs,
                written.len(),
                dir.display()
            )
            .as_bytes(),
        );
        for f in &computed.ledger_findings {
            out.extend_from_slice(format!("warning: ledger: {f}\n").as_bytes());
        }
    }
    Ok(0)
}
