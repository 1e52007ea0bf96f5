//! `ledger recover`: a run whose `ledger run` process died (kill -9, power
//! loss) has `started` but no `result`. Once its supervisor is provably gone
//! from this machine, a signed `result` with status `aborted` closes it, with
//! the digest of whatever log reached the disk. `ledger run` does this first,
//! every time, so aborted runs do not linger.

use serde::Serialize;

use crate::clock;
use crate::history::{self, Run, Status};
use crate::index::Index;
use crate::journal::{self, Draft};
use crate::proc::Here;
use crate::record::kinds::{CommandPredicate, LogDigest, ResultPredicate};
use crate::record::{Kind, Subject};
use crate::run::{self, child};
use crate::sign::Signer;
use crate::store::{Identity, Store};
use crate::workspace::Workspace;
use crate::Error;

/// A run closed as aborted.
#[derive(Clone, Debug, Serialize)]
pub struct Recovered {
    pub run_id: String,
    /// Id of the `result` record written.
    pub record: String,
    pub log_bytes: u64,
}

/// Runs of this machine that are aborted and not yet closed. The run index
/// names the candidates (runs whose records end at `started`), so a ledger
/// of closed runs costs one listing of `runs` and no run is read; each
/// candidate is then read from the ledger itself, which decides.
pub fn pending(store: &Store, here: &Here) -> Result<Vec<Run>, Error> {
    let index = Index::load(store)?;
    let Some(tip) = index.tip else {
        return Ok(Vec::new());
    };
    let snapshot = store.snapshot(tip)?;
    let this_repository = store.repository_id();
    let mut out = Vec::new();
    for row in index
        .rows
        .iter()
        .filter(|r| r.state.status == Status::Running)
    {
        let run = history::load_run(&snapshot, row.run_id())?;
        // A run another repository on this machine supervises is that
        // repository's to close (it may hold the result unpushed).
        let ours = run
            .started()
            .is_none_or(|s| s.repository.as_deref().is_none_or(|r| r == this_repository));
        // The ledger decides, not the index: a run with any result (an
        // index row could be stale or altered) is never closed twice.
        if ours && run.result().is_none() && run.status_here(here) == Status::Aborted {
            out.push(run);
        }
    }
    Ok(out)
}

/// Closes every pending aborted run with a signed `aborted` result.
pub fn recover(
    ws: &Workspace,
    signer: &Signer,
    identity: &Identity,
    here: &Here,
) -> Result<Vec<Recovered>, Error> {
    let mut out = Vec::new();
    for run in pending(&ws.store, here)? {
        if let Some(done) = close(ws, signer, identity, &run)? {
            out.push(done);
        }
    }
    Ok(out)
}

fn close(
    ws: &Workspace,
    signer: &Signer,
    identity: &Identity,
    run: &Run,
) -> Result<Option<Recovered>, Error> {
    let (Some(started_record), Some(started)) = (run.get(Kind::Started), run.started()) else {
        return Ok(None);
    };
    let command: Option<CommandPredicate> = run
        .get(Kind::Command)
        .and_then(|c| c.payload.predicate_as().ok());
    let log_rel = command
        .map(|c| c.log)
        .unwrap_or_else(|| format!("{}/run.log", ws.audit_rel(&run.run_id)));
    let log_path = ws.root.join(&log_rel);
    let digest = match std::fs::File::open(&log_path) {
        Ok(mut file) => child::digest(&mut file, ws.config.log.tail_lines)
            .map_err(|e| Error::io(&log_path, e))?,
        Err(_) => child::digest(&mut std::io::empty(), 0).expect("reading nothing cannot fail"),
    };
    let now = clock::now()?;
    let started_at = clock::parse_rfc3339(&started.started_at).unwrap_or(now);
    let result = ResultPredicate {
        status: "aborted".into(),
        exit_code: None,
        signal: None,
        code: None,
        started_at: started.started_at.clone(),
        ended_at: clock::rfc3339(now.max(started_at)),
        duration_ms: u64::try_from((now - started_at).whole_milliseconds()).unwrap_or(0),
        log: LogDigest {
            path: log_rel.clone(),
            sha256: digest.sha256.clone(),
            bytes: digest.bytes,
            lines: digest.lines,
            tail: digest.tail.clone(),
            stored: false,
        },
        leftover_processes: Vec::new(),
        products: Vec::new(),
    };
    let subject = vec![
        Subject::run(&run.run_id),
        Subject::sha256(&log_rel, &digest.sha256),
    ];
    let draft = Draft::new(Kind::Result, &run.run_id, subject, &result);
    let result_path = journal::record_path(&run.run_id, Kind::Result);
    let mut already = false;
    let sealed = journal::append(
        &ws.store,
        signer,
        identity,
        now,
        Some(started_record.id.clone()),
        &[draft],
        &[],
        |snapshot| {
            // Another process may have closed it meanwhile: then there is nothing to do.
            already = snapshot.read(&result_path)?.is_some();
            if already {
                Err(Error::input("recover", "already closed"))
            } else {
                Ok(())
            }
        },
    );
    let sealed = match sealed {
        Ok(s) => s,
        Err(_) if already => return Ok(None),
        Err(e) => return Err(e),
    };
    let dir = ws.audit_dir(&run.run_id);
    if dir.is_dir() {
        run::write_copy(&dir, "result.json", &run::pretty(&sealed[0].payload))?;
    }
    Ok(Some(Recovered {
        run_id: run.run_id.clone(),
        record: sealed[0].id.clone(),
        log_bytes: digest.bytes,
    }))
}
