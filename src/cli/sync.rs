use super::{CliError, Env};
use crate::sync::{Action, Pulled};
use crate::workspace::Workspace;

/// Fetch the ledger from a remote, verify it, and join it to yours.
///
/// The remote's ledger ref is fetched into a private ref and verified against
/// the trust file before your ledger ref moves: a tampered ledger, or one
/// with records or commits by a key the trust file does not list, is refused
/// (exit 1) and nothing changes. Then your ledger fast-forwards, or, when
/// both grew apart (two workstations), a signed merge commit joins them.
/// Each new run's audit copies and stored products are written into the
/// work tree, never over a file that differs (listed as a conflict, exit 1),
/// never outside it.
///
/// REMOTE is a configured remote, a URL (ssh, file) or a path; default:
/// ledger.yaml sync.remote, else origin.
///
/// Examples:
///   ledger pull
///   ledger pull /srv/git/research.git --json
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct PullArgs {
    remote: Option<String>,
    #[command(flatten)]
    trust_key: super::TrustKey,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
}

/// Send your ledger to a remote; join its new runs first when it moved.
///
/// Uses `git push`, which never overwrites a remote ledger that has runs you
/// lack: then ledger pulls (verifying them), joins the two histories with a
/// signed merge commit, and pushes again. Several workstations can push to
/// one remote without any manual step.
///
/// Examples:
///   ledger push
///   ledger push git@server:research.git
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct PushArgs {
    remote: Option<String>,
    #[command(flatten)]
    trust_key: super::TrustKey,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
}

impl PullArgs {
    /// `ledger pull [REMOTE]` with every other option at its default.
    pub(crate) fn default_for(remote: Option<String>) -> PullArgs {
        PullArgs {
            remote,
            trust_key: super::TrustKey {
                trust: None,
                key: None,
            },
            json: false,
        }
    }
}

fn describe(p: &Pulled) -> String {
    let mut text = match p.action {
        Action::RemoteEmpty => format!("pull {}: the remote has no ledger; nothing to do\n", p.remote),
        Action::Refused => format!(
            "pull {}: REFUSED: the remote ledger at {} does not verify; your ledger is unchanged\n",
            p.remote,
            p.fetched.as_deref().unwrap_or("?")
        ),
        Action::Conflict => format!(
            "pull {}: REFUSED: both ledgers hold paths with different content; your ledger is unchanged\n",
            p.remote
        ),
        Action::UpToDate => format!("pull {}: up to date at {}\n", p.remote, p.after.as_deref().unwrap_or("?")),
        Action::Cloned => format!("pull {}: ledger created at {}\n", p.remote, p.after.as_deref().unwrap_or("?")),
        Action::FastForward => format!(
            "pull {}: fast-forward {} -> {}\n",
            p.remote,
            p.before.as_deref().unwrap_or("?"),
            p.after.as_deref().unwrap_or("?")
        ),
        Action::Merged => format!(
            "pull {}: joined {} into a signed merge {}\n",
            p.remote,
            p.fetched.as_deref().unwrap_or("?"),
            p.after.as_deref().unwrap_or("?")
        ),
    };
    for f in &p.refused {
        text.push_str(&format!("FAIL {f}\n"));
    }
    for r in &p.new_runs {
        text.push_str(&format!("new run {r}\n"));
    }
    if !p.materialized.is_empty() {
        text.push_str(&format!(
            "wrote {} files into the work tree\n",
            p.materialized.len()
        ));
    }
    for c in &p.conflicts {
        text.push_str(&format!("CONFLICT {}: {}\n", c.path, c.why));
    }
    text
}

pub fn exec_pull(args: PullArgs, env: &Env, out: &mut Vec<u8>) -> Result<i32, CliError> {
    let ws = Workspace::open_worktree(&env.cwd)?;
    let trust = super::load_trust(args.trust_key.trust.clone(), &ws, env)?;
    // A key is needed only to sign a merge: a committee laptop without one
    // can still pull (and is told so when a merge would be needed).
    let explicit = args.trust_key.key.is_some();
    let (signer, identity) = match args.trust_key.signer(&ws, env) {
        Ok((signer, identity)) => (Some(signer), identity),
        Err(crate::Error::Key(crate::sign::KeyError::NoneConfigured)) if !explicit => (
            None,
            crate::store::Identity {
                name: ws
                    .store
                    .config_string("user.name")
                    .unwrap_or_else(|| "ledger".into()),
                email: ws
                    .store
                    .config_string("user.email")
                    .unwrap_or_else(|| "ledger@ledger.invalid".into()),
            },
        ),
        Err(e) => return Err(e.into()),
    };
    let remote = crate::sync::remote_name(&ws, args.remote.as_deref());
    let pulled = crate::sync::pull(&ws, &trust, signer.as_ref(), &identity, &remote)?;
    if args.json {
        super::json(&pulled, out);
    } else {
        out.extend_from_slice(describe(&pulled).as_bytes());
    }
    Ok(if pulled.ok() { 0 } else { 1 })
}

pub fn exec_push(args: PushArgs, env: &Env, out: &mut Vec<u8>) -> Result<i32, CliError> {
    let ws = Workspace::open_worktree(&env.cwd)?;
    let trust = super::load_trust(args.trust_key.trust.clone(), &ws, env)?;
    let (signer, identity) = args.trust_key.signer(&ws, env)?;
    let remote = crate::sync::remote_name(&ws, args.remote.as_deref());
    match crate::sync::push(&ws, &trust, &signer, &identity, &remote)? {
        Ok(pushed) => {
            if args.json {
                super::json(&pushed, out);
            } else {
                for j in &pushed.joins {
                    out.extend_from_slice(describe(j).as_bytes());
                }
                out.extend_from_slice(
                    format!(
                        "push {}: the remote ledger is at {}\n",
                        pushed.remote, pushed.head
                    )
                    .as_bytes(),
                );
            }
            Ok(0)
        }
        Err(pulled) => {
            if args.json {
                super::json(&pulled, out);
            } else {
                out.extend_from_slice(describe(&pulled).as_bytes());
                out.extend_from_slice(b"push: not pushed\n");
            }
            Ok(1)
        }
    }
}
