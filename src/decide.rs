//! `ledger decide`: a committee member's signed decision on an ended run.
//!
//! The decision names the run's `result` record and the newest `finalize`
//! record that covers it (the documents the member read), and is signed with
//! the member's key, which must be listed in the committee file and valid now.
//! A member may decide again; the newest decision counts, all are kept.

use serde::Serialize;
use time::OffsetDateTime;

use crate::committee::{Board, Tally};
use crate::history::History;
use crate::journal;
use crate::record::{DecisionPredicate, Kind, Subject, Verdict};
use crate::sign::Signer;
use crate::store::Identity;
use crate::trust::{Trust, Vouch};
use crate::workspace::Workspace;
use crate::Error;

/// What `ledger decide` recorded.
#[derive(Clone, Debug, Serialize)]
pub struct Decided {
    pub decision_id: String,
    /// The record id.
    pub record: String,
    pub run_id: String,
    pub tag: String,
    pub member: String,
    pub decision: Verdict,
    pub finalize_record: String,
    /// The run's standing with this decision counted (verified decisions only).
    pub tally: Tally,
}

/// Records `member`'s decision on the run `target` (a run id or a tag).
#[allow(clippy::too_many_arguments)]
pub fn decide(
    ws: &Workspace,
    trust: &Trust,
    signer: &Signer,
    identity: &Identity,
    at: OffsetDateTime,
    target: &str,
    decision: Verdict,
    reason: &str,
) -> Result<Decided, Error> {
    if reason.trim().is_empty() {
        return Err(Error::input(
            "--reason",
            "must say why: it is shown in the run's final summary",
        ));
    }
    let Some(committee) = &trust.committee else {
        return Err(Error::input(
            "ledger.yaml committee.allowed_signers",
            "not set: name the committee's allowed_signers file before deciding",
        ));
    };
    let fingerprint = signer.fingerprint();
    let member = match committee.vouch(fingerprint, at) {
        Vouch::Trusted(entry) => entry.principals[0].clone(),
        Vouch::OutsideValidity => {
            return Err(Error::input(
                "--key",
                format!(
                    "{fingerprint} is in {} but not valid at {} (valid-after/valid-before)",
                    committee.path.display(),
                    crate::clock::rfc3339(at)
                ),
            ))
        }
        Vouch::Unknown => {
            return Err(Error::input(
                "--key",
                format!(
                    "{fingerprint} is not a committee member's key: {} does not list it",
                    committee.path.display()
                ),
            ))
        }
    };
    let history = History::load(&ws.store)?;
    let Some(run) = history.find(target) else {
        return Err(Error::input(
            "run",
            format!("no run with tag or id {target:?} in the ledger"),
        ));
    };
    let Some(result) = run.get(Kind::Result) else {
        return Err(Error::input(
            "run",
            format!(
                "{} has no result yet: the committee decides on runs that have ended",
                run.run_id
            ),
        ));
    };
    let tag = run
        .preflight()
        .map(|p| p.tag)
        .or_else(|| run.context().map(|c| c.tag))
        .unwrap_or_default();
    let tip = ws.store.require_tip()?;
    let result_path = journal::record_path(&run.run_id, Kind::Result);
    let finalize_record = match crate::finalize::newest(&ws.store.snapshot(tip)?)? {
        Some((id, p)) if covers(ws, &p.ledger_head, &result_path)? => id,
        _ => {
            return Err(Error::input(
                "run",
                format!(
                    "no finalize record covers {}'s result yet: run `ledger finalize` (and read its documents) first",
                    run.run_id
                ),
            ))
        }
    };
    let predicate = DecisionPredicate {
        run: run.run_id.clone(),
        tag: tag.clone(),
        result_record: result.id.clone(),
        finalize_record: finalize_record.clone(),
        decision,
        reason: reason.trim().to_string(),
        member: member.clone(),
    };
    let subject = vec![
        Subject::run(&run.run_id),
        Subject::sha256(
            "ledger-record:result",
            result.id.trim_start_matches("sha256:"),
        ),
    ];
    let sealed = journal::append_single(
        &ws.store,
        signer,
        identity,
        at,
        Kind::Decision,
        subject,
        &predicate,
        &[],
    )?;
    let (decisions, _) = crate::verify::check_decisions(&ws.store, trust)?;
    let board = Board::new(&ws.config.committee, decisions);
    let tally = board.tally(&run.run_id).expect("a committee is configured");
    Ok(Decided {
        decision_id: sealed.payload.run_id.clone(),
        record: sealed.id,
        run_id: run.run_id.clone(),
        tag,
        member,
        decision,
        finalize_record,
        tally,
    })
}

/// Whether the ledger at `head` has the file at `path`.
fn covers(ws: &Workspace, head: &str, path: &str) -> Result<bool, Error> {
    let Ok(head) = gix::ObjectId::from_hex(head.as_bytes()) else {
        return Ok(false);
    };
    if !ws.store.has_commit(head) {
        return Ok(false);
    }
    Ok(ws.store.snapshot(head)?.read_id(path)?.is_some())
}
