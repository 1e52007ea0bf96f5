//! Handoff readiness: can the work be handed over, and if not, why not.
//!
//! Unlike the other documents this one also reads the remote's ledger head as
//! last seen by `ledger pull` or `ledger push` (a private ref), and says so.

use serde::Serialize;

use super::markdown::{Doc, Inline};
use super::queue::Plan;
use super::{Entry, Input, StageStatus};

/// Where the local ledger stands against the configured remote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RemoteState {
    pub remote: String,
    /// The remote's ledger head as last seen; `None`: never pulled or pushed.
    pub seen: Option<String>,
    /// Local commits the remote (as last seen) does not have.
    pub ahead: usize,
    /// The remote head last seen is not in the local history.
    pub diverged: bool,
}

/// One reason the work cannot be handed over.
#[derive(Clone, Debug, Serialize)]
pub struct Blocker {
    pub reason: &'static str,
    pub detail: String,
}

/// A committee run that has ended and awaits the committee's decision.
#[derive(Clone, Debug, Serialize)]
pub struct Awaiting {
    pub run_id: String,
    pub tag: String,
    /// e.g. `pending (1 of 2 approvals)`.
    pub standing: String,
}

/// `handoff_readiness.json`.
#[derive(Clone, Debug, Serialize)]
pub struct Handoff {
    pub schema: &'static str,
    pub ready: bool,
    pub blocking: Vec<Blocker>,
    /// Committee runs awaiting a decision: the committee's work, not the
    /// team's, so they do not block the handoff.
    pub awaiting_decision: Vec<Awaiting>,
    pub remote: Option<RemoteState>,
    pub note: &'static str,
}

pub fn handoff(input: &Input<'_>, views: &[Entry], plan: &Plan) -> Handoff {
    let remote = input.remote;
    let mut blocking = Vec::new();
    let awaiting_decision = views
        .iter()
        .filter(|v| input.board.is_committee_run(&v.tag))
        .filter_map(|v| {
            let t = v.decision.as_ref()?;
            (t.standing == crate::committee::Standing::Pending).then(|| Awaiting {
                run_id: v.run_id.clone(),
                tag: v.tag.clone(),
                standing: t.label(),
            })
        })
        .collect();
    for v in views.iter().filter(|v| v.status == StageStatus::InProgress) {
        blocking.push(Blocker {
            reason: "run_in_progress",
            detail: format!("{} ({}) has not ended", v.run_id, v.tag),
        });
    }
    for v in views {
        if v.governance_passed() == Some(false) && v.paths.remediation_md.is_none() {
            blocking.push(Blocker {
                reason: "governance_without_plan",
                detail: format!("{} fails governance and has no remediation plan", v.run_id),
            });
        }
    }
    if let Some(r) = remote {
        match (&r.seen, r.diverged, r.ahead) {
            (None, _, _) => blocking.push(Blocker {
                reason: "not_pushed",
                detail: format!("the ledger was never pushed to or pulled from {}", r.remote),
            }),
            (Some(_), true, _) => blocking.push(Blocker {
                reason: "diverged",
                detail: format!(
                    "{}'s ledger has commits this one lacks: `ledger pull {}` then `ledger push {}`",
                    r.remote, r.remote, r.remote
                ),
            }),
            (Some(_), false, n) if n > 0 => blocking.push(Blocker {
                reason: "not_pushed",
                detail: format!("{n} ledger commits not pushed to {}: `ledger push {}`", r.remote, r.remote),
            }),
            _ => {}
        }
    }
    if plan.factor.is_none() {
        blocking.push(Blocker {
            reason: "no_next_run_plan",
            detail: plan.note.clone(),
        });
    }
    Handoff {
        schema: "ledger.handoff_readiness/v1",
        ready: blocking.is_empty(),
        blocking,
        awaiting_decision,
        remote: remote.cloned(),
        note: "Written by ledger finalize together with every other document, so no run is left unfinalized and no projection is stale when it is written. The remote's state is its ledger head as last seen by ledger pull or ledger push (a private ref), not a fresh look, against the ledger finalize read (its own finalize record not counted).",
    }
}

pub fn markdown(h: &Handoff) -> String {
    let mut doc = Doc::new();
    doc.heading(1, "Session handoff readiness");
    doc.paragraph(vec![
        Inline::text("Ready: "),
        Inline::Strong(if h.ready { "yes" } else { "no" }.into()),
        Inline::text("."),
    ]);
    if !h.blocking.is_empty() {
        doc.heading(2, "Blocking");
        doc.list(
            h.blocking
                .iter()
                .map(|b| {
                    vec![
                        Inline::code(b.reason),
                        Inline::text(format!(": {}", b.detail)),
                    ]
                })
                .collect(),
        );
    }
    if !h.awaiting_decision.is_empty() {
        doc.heading(2, "Awaiting the committee's decision");
        doc.list(
            h.awaiting_decision
                .iter()
                .map(|a| {
                    vec![
                        Inline::text(format!("{} ", a.tag)),
                        Inline::code(&a.run_id),
                        Inline::text(format!(": {}", a.standing)),
                    ]
                })
                .collect(),
        );
    }
    doc.text(h.note);
    doc.render()
}
