use super::{CliError, Env};
use crate::workspace::Workspace;

/// Check this machine and checkout against ledger.yaml's preflight limits.
///
/// The same checks `ledger run` makes first (cores, memory, free disk, and a
/// clean tree with --require-clean), without running or recording anything.
/// Exits 0 when all pass, 1 when one fails.
///
/// Example: ledger preflight --require-clean --json
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also require that tracked files do not differ from HEAD.
    #[arg(long)]
    require_clean: bool,
    /// A freeze file whose name may pin a commit (`_g<hex>`), as for `ledger run`.
    #[arg(long, value_name = "FILE")]
    freeze_file: Option<std::path::PathBuf>,
    /// Print the facts and checks as JSON.
    #[arg(long)]
    json: bool,
}

pub fn exec(args: Args, env: &Env, out: &mut Vec<u8>) -> Result<i32, CliError> {
    let ws = Workspace::open_worktree(&env.cwd)?;
    let freeze = args
        .freeze_file
        .map(|p| crate::run::freeze(&ws, &crate::files::from_cwd(&env.cwd, &p)))
        .transpose()?;
    let pre = crate::run::preflight_facts(&ws, args.require_clean, freeze.as_ref());
    let code = if pre.passed() { 0 } else { 1 };
    if args.json {
        super::json(
            &serde_json::json!({ "passed": pre.passed(), "host": pre.host, "git": pre.git, "checks": pre.checks }),
            out,
        );
        return Ok(code);
    }
    let mut text = String::new();
    for c in &pre.checks {
        let verdict = if c.passed { "ok  " } else { "FAIL" };
        text.push_str(&format!(
            "{verdict} {:<11} {} (required {})\n",
            c.id, c.observed, c.required
        ));
    }
    let g = &pre.git;
    text.push_str(&format!(
        "host {}, branch {}, commit {}, {}\n",
        pre.host.hostname,
        g.branch.as_deref().unwrap_or("(detached)"),
        g.commit.as_deref().unwrap_or("(none)"),
        match g.dirty {
            Some(true) => "tracked changes",
            Some(false) => "clean",
            None => "status unknown",
        }
    ));
    text.push_str(if pre.passed() {
        "preflight: ok\n"
    } else {
        "preflight: failed; `ledger run` would be blocked\n"
    });
    out.extend_from_slice(text.as_bytes());
    Ok(code)
}
