//! `ledger pull` and `ledger push`: git transport for the ledger ref.
//!
//! Pull fetches the remote's ledger into a private ref, verifies it against
//! the trust file before the local ref moves (a tampered or untrusted remote
//! is refused and the local ref stays where it was), then fast-forwards, or
//! joins two histories that grew apart with a signed merge commit whose tree
//! is the union of both (run paths never collide). New runs' audit copies and
//! products are then written into the work tree, never over a file that
//! differs (a conflict) and never outside it. Push uses `git push` (gix has
//! no push), which refuses a non-fast-forward; then it pulls, joins, and
//! tries again.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::history;
use crate::record::{CommandPredicate, Kind};
use crate::safe_write::SafeDirs;
use crate::sign::Signer;
use crate::store::{Identity, Snapshot, Store};
use crate::trust::Trust;
use crate::verify::{self, Finding};
use crate::workspace::Workspace;
use crate::Error;

/// How long pull keeps joining while local writers move the ref, and push
/// keeps pulling while other clones push first (at least five tries each).
const RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(60);

/// The private ref a pull fetches into; deleted afterwards.
pub const INCOMING: &str = "refs/ledger-sync/incoming";

/// The private ref holding `remote`'s ledger head as last seen by a pull or a
/// push (for handoff readiness). The remote's text is hashed into the name.
pub fn seen_ref(remote: &str) -> String {
    let digest = crate::record::canon::sha256_hex(remote.as_bytes());
    format!("refs/ledger-sync/seen/{}", &digest[..16])
}

/// How the local ledger moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The remote has no ledger.
    RemoteEmpty,
    /// Verification failed: nothing moved.
    Refused,
    /// Both histories grew apart and share a path with different content.
    Conflict,
    UpToDate,
    /// There was no local ledger.
    Cloned,
    FastForward,
    /// A signed merge commit joined the two histories.
    Merged,
}

/// A file `pull` did not write because the work tree has another version.
#[derive(Clone, Debug, Serialize)]
pub struct Conflict {
    pub path: String,
    pub why: String,
}

/// What `pull` did.
#[derive(Clone, Debug, Serialize)]
pub struct Pulled {
    pub remote: String,
    pub action: Action,
    pub before: Option<String>,
    pub fetched: Option<String>,
    pub after: Option<String>,
    pub new_runs: Vec<String>,
    /// Files written into the work tree.
    pub materialized: Vec<String>,
    /// Files left alone because they differ.
    pub conflicts: Vec<Conflict>,
    /// Why the fetched ledger was refused (verify's findings), or the paths
    /// both histories hold with different content.
    pub refused: Vec<Finding>,
}

impl Pulled {
    /// Whether the pull did all it should (exit 0).
    pub fn ok(&self) -> bool {
        !matches!(self.action, Action::Refused | Action::Conflict) && self.conflicts.is_empty()
    }
}

/// The remote to use: the argument, ledger.yaml `sync.remote`, or `origin`.
pub fn remote_name(ws: &Workspace, arg: Option<&str>) -> String {
    arg.map(str::to_string)
        .or_else(|| ws.config.sync.remote.clone())
        .unwrap_or_else(|| "origin".into())
}

/// Fetches, verifies, joins and materializes. `signer` signs a merge commit
/// when one is needed (without one, a pull that needs a merge is an error).
pub fn pull(
    ws: &Workspace,
    trust: &Trust,
    signer: Option<&Signer>,
    identity: &Identity,
    remote: &str,
) -> Result<Pulled, Error> {
    let store = &ws.store;
    let before = store.tip()?;
    let fetched = store.fetch(remote, INCOMING)?;
    if let Some(f) = fetched {
        store.set_private_ref(&seen_ref(remote), f)?;
    }
    let result = join(ws, trust, signer, identity, remote, before, fetched);
    store.delete_ref(INCOMING)?;
    let mut pulled = result?;
    if let (Some(after), true) = (pulled.after.as_deref(), pulled.ok()) {
        let after = gix::ObjectId::from_hex(after.as_bytes()).expect("a commit id");
        let known: BTreeSet<String> = match before {
            Some(b) => run_ids(&store.snapshot(b)?)?,
            None => BTreeSet::new(),
        };
        let snapshot = store.snapshot(after)?;
        pulled.new_runs = run_ids(&snapshot)?
            .into_iter()
            .filter(|r| !known.contains(r))
            .collect();
        let (written, conflicts) = materialize(ws, &snapshot, &pulled.new_runs)?;
        pulled.materialized = written;
        pulled.conflicts = conflicts;
    }
    Ok(pulled)
}

fn join(
    ws: &Workspace,
    trust: &Trust,
    signer: Option<&Signer>,
    identity: &Identity,
    remote: &str,
    before: Option<gix::ObjectId>,
    fetched: Option<gix::ObjectId>,
) -> Result<Pulled, Error> {
    let store = &ws.store;
    let mut pulled = Pulled {
        remote: remote.to_string(),
        action: Action::RemoteEmpty,
        before: before.map(|b| b.to_string()),
        fetched: fetched.map(|f| f.to_string()),
        after: before.map(|b| b.to_string()),
        new_runs: Vec::new(),
        materialized: Vec::new(),
        conflicts: Vec::new(),
        refused: Vec::new(),
    };
    let Some(fetched) = fetched else {
        return Ok(pulled);
    };
    // Verify what came in, as its own ledger, before anything moves.
    // Only what it adds to the history both share needs checking: the shared
    // part is already ours.
    let incoming = Store::open_git_dir(store.git_dir(), INCOMING)?;
    let here = crate::proc::Here::read();
    let base = match before {
        Some(local) => store.merge_base(local, fetched)?,
        None => None,
    };
    let report = match base {
        Some(base) => verify::verify_extension(&incoming, trust, &here, base)?,
        None => verify::verify(&incoming, trust, &here)?,
    };
    if !report.ok {
        pulled.action = Action::Refused;
        pulled.refused = report.findings;
        return Ok(pulled);
    }
    let at = crate::clock::now()?;
    let subject = format!("ledger pull {remote}");
    // Local writers may move the ref while the join is built; decide again
    // on the new tip until the ref holds still long enough.
    let deadline = std::time::Instant::now() + RETRY_FOR;
    let mut attempts = 0;
    while attempts < 5 || std::time::Instant::now() < deadline {
        attempts += 1;
        let local = store.tip()?;
        let (action, new) = match local {
            None => (Action::Cloned, fetched),
            Some(l) if store.is_ancestor(fetched, l)? => {
                pulled.action = Action::UpToDate;
                pulled.after = Some(l.to_string());
                return Ok(pulled);
            }
            Some(l) if store.is_ancestor(l, fetched)? => (Action::FastForward, fetched),
            Some(l) => {
                let message = format!(
                    "ledger: join {fetched} from {remote}\n\nBoth histories grew apart; this commit holds the union of their runs.\n"
                );
                let Some(signer) = signer else {
                    return Err(Error::input(
                        "pull",
                        "the local and remote ledgers grew apart; joining them needs a signing key (--key, $LEDGER_KEY, signing.key)",
                    ));
                };
                let sign = |bytes: &[u8]| signer.sign_commit(bytes);
                // The base verification used, unless a local run moved the tip.
                let merge_base = if local == before {
                    base
                } else {
                    store.merge_base(l, fetched)?
                };
                match store.merge_union(l, fetched, merge_base, &message, identity, at, &sign)? {
                    Ok(merge) => (Action::Merged, merge),
                    Err(paths) => {
                        pulled.action = Action::Conflict;
                        pulled.refused = paths
                            .into_iter()
                            .map(|p| Finding {
                                code: "merge_conflict".into(),
                                run: None,
                                record: Some(p),
                                commit: None,
                                message: "both histories hold this path with different content"
                                    .into(),
                            })
                            .collect();
                        return Ok(pulled);
                    }
                }
            }
        };
        match store.advance(local, new, identity, at, &subject) {
            Ok(()) => {
                pulled.action = action;
                pulled.after = Some(new.to_string());
                return Ok(pulled);
            }
            // A local run committed meanwhile: decide again on the new tip.
            Err(crate::store::StoreError::Contention { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(crate::store::StoreError::Contention {
        ref_name: store.ref_name().to_string(),
        attempts,
    }
    .into())
}

fn run_ids(snapshot: &Snapshot<'_>) -> Result<BTreeSet<String>, Error> {
    Ok(snapshot
        .list("runs")?
        .unwrap_or_default()
        .into_iter()
        .filter(|i| i.is_tree())
        .map(|i| i.name)
        .collect())
}

/// Writes each new run's audit copies and products into the work tree.
fn materialize(
    ws: &Workspace,
    snapshot: &Snapshot<'_>,
    runs: &[String],
) -> Result<(Vec<String>, Vec<Conflict>), Error> {
    let mut written = Vec::new();
    let mut conflicts = Vec::new();
    let mut dirs = SafeDirs::new(&ws.root);
    for run_id in runs {
        let run = history::load_run(snapshot, run_id)?;
        let audit = ws.audit_rel(run_id);
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        for (kind, name) in [
            (Kind::Preflight, "preflight.json"),
            (Kind::Context, "context.json"),
            (Kind::Result, "result.json"),
        ] {
            if let Some(r) = run.get(kind) {
                files.push((format!("{audit}/{name}"), crate::run::pretty(&r.payload)));
            }
        }
        if let Some(c) = run
            .get(Kind::Command)
            .and_then(|r| r.payload.predicate_as::<CommandPredicate>().ok())
        {
            files.push((
                format!("{audit}/command.sh"),
                crate::run::command_script(run_id, &c).into_bytes(),
            ));
        }
        if let Some(log) = snapshot.read(&format!("runs/{run_id}/log"))? {
            files.push((format!("{audit}/run.log"), log));
        }
        for (rel, item) in snapshot.walk(&format!("runs/{run_id}/products"))? {
            files.push((rel, snapshot.blob(item.id)?));
        }
        for (rel, bytes) in files {
            match place(&mut dirs, &rel, &bytes) {
                Ok(true) => written.push(rel),
                Ok(false) => {}
                Err(why) => conflicts.push(Conflict { path: rel, why }),
            }
        }
    }
    Ok((written, conflicts))
}

/// Writes `bytes` at `rel` unless the same bytes are there (false); a
/// different file there, or an unsafe path, is a conflict.
fn place(dirs: &mut SafeDirs<'_>, rel: &str, bytes: &[u8]) -> Result<bool, String> {
    let (path, dir) = dirs.path(rel).map_err(|e| e.to_string())?;
    if dirs
        .create(rel, &path, dir, bytes)
        .map_err(|e| e.to_string())?
        .is_some()
    {
        return Ok(true);
    }
    match std::fs::read(&path) {
        Ok(have) if have == bytes => Ok(false),
        Ok(_) => Err("the work tree has a different version; left as it is".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// What `push` did.
#[derive(Clone, Debug, Serialize)]
pub struct Pushed {
    pub remote: String,
    /// The ledger head the remote has now.
    pub head: String,
    /// Pulls (joins) that were needed because the remote had moved.
    pub joins: Vec<Pulled>,
}

/// Pushes the ledger ref; when the remote moved, pulls (verifying and
/// joining) and tries again.
pub fn push(
    ws: &Workspace,
    trust: &Trust,
    signer: &Signer,
    identity: &Identity,
    remote: &str,
) -> Result<Result<Pushed, Pulled>, Error> {
    let store = &ws.store;
    let refspec = format!("{0}:{0}", store.ref_name());
    let mut joins = Vec::new();
    // Another clone may push between our pull and our push; try again
    // while that keeps happening, for a while.
    let deadline = std::time::Instant::now() + RETRY_FOR;
    let mut attempts = 0;
    while attempts < 5 || std::time::Instant::now() < deadline {
        attempts += 1;
        let tip = store.require_tip()?;
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(&ws.root)
            .args(["push", "--porcelain", "--quiet", remote, &refspec])
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| Error::input("git push", format!("cannot run git: {e}")))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if out.status.success() {
            store.set_private_ref(&seen_ref(remote), tip)?;
            return Ok(Ok(Pushed {
                remote: remote.to_string(),
                head: tip.to_string(),
                joins,
            }));
        }
        let rejected = stdout.lines().any(|l| l.starts_with('!'));
        if !rejected {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(crate::store::StoreError::Remote {
                remote: remote.to_string(),
                message: stderr
                    .lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("git push failed")
                    .trim()
                    .to_string(),
            }
            .into());
        }
        // The remote has runs we lack: join them, then push again.
        let pulled = pull(ws, trust, Some(signer), identity, remote)?;
        if !matches!(
            pulled.action,
            Action::FastForward | Action::Merged | Action::UpToDate | Action::Cloned
        ) {
            return Ok(Err(pulled));
        }
        joins.push(pulled);
    }
    Err(crate::store::StoreError::Contention {
        ref_name: store.ref_name().to_string(),
        attempts,
    }
    .into())
}
