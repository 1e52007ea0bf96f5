use std::path::PathBuf;

use super::{CliError, Env};
use crate::proc::Here;
use crate::workspace::Workspace;

/// Close runs whose `ledger run` process died, as aborted.
///
/// A run with a `started` record but no `result`, whose supervising process is
/// provably gone from this machine (no process with that pid and start time, or
/// the machine rebooted since), gets a signed `result` with status `aborted`
/// and the digest of whatever log reached the disk. `ledger run` does this by
/// itself before each run. Runs started on other machines are left alone.
///
/// Example: ledger recover --json
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Signing key (default: $LEDGER_KEY, ledger.yaml signing.key, git's user.signingkey).
    #[arg(long, value_name = "PATH")]
    key: Option<PathBuf>,
    /// Print the closed runs as JSON.
    #[arg(long)]
    json: bool,
}

pub fn exec(args: Args, env: &Env, out: &mut Vec<u8>) -> Result<i32, CliError> {
    let ws = Workspace::open_worktree(&env.cwd)?;
    ws.store.require_tip()?;
    let signer = super::resolve_key(args.key, Some(&ws.config), &ws.store, &ws.root, env)?;
    let identity = super::identity(&ws.store, &signer);
    let closed = crate::recover::recover(&ws, &signer, &identity, &Here::read())?;
    if args.json {
        super::json(&closed, out);
    } else if closed.is_empty() {
        out.extend_from_slice(b"nothing to recover\n");
    } else {
        for c in &closed {
            out.extend_from_slice(
                format!(
                    "recorded run {} as aborted ({} log bytes on disk), result {}\n",
                    c.run_id, c.log_bytes, c.record
                )
                .as_bytes(),
            );
        }
    }
    Ok(0)
}
