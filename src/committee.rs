//! Committee sign-off: members' signed decisions on runs, tallied under a
//! k-of-n policy (ledger.yaml `committee`).
//!
//! A run is `approved` when at least `threshold` distinct members' newest
//! decisions are `approve` and none is `reject`; `rejected` when any member's
//! newest decision is `reject`; otherwise `pending`. A member is a principal
//! of the committee file; a member's newer decision replaces the earlier one
//! in the tally, and every decision stays in the ledger. Only decisions that
//! `ledger verify` accepted reach this module.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::CommitteeSection;
use crate::record::Verdict;

/// One verified decision record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The decision id (the record header's `run_id`).
    pub decision_id: String,
    /// The record id.
    pub record: String,
    /// The decided run.
    pub run_id: String,
    pub member: String,
    /// The member's key, `SHA256:<base64>`.
    pub key: String,
    pub decision: Verdict,
    pub reason: String,
    /// RFC 3339 UTC time of the record.
    pub at: String,
    #[serde(skip)]
    pub seq: u64,
    /// The finalize record whose documents the member read.
    pub finalize_record: String,
}

/// Where a run stands with the committee.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    Approved,
    Rejected,
    Pending,
}

impl Standing {
    pub fn as_str(self) -> &'static str {
        match self {
            Standing::Approved => "approved",
            Standing::Rejected => "rejected",
            Standing::Pending => "pending",
        }
    }
}

/// A run's decisions under the policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub standing: Standing,
    pub approvals: usize,
    pub threshold: usize,
    /// Each member's newest decision, by member name.
    pub current: Vec<Decision>,
    /// Earlier decisions a member has since replaced (still in the ledger).
    pub superseded: usize,
}

impl Tally {
    /// Tallies one run's decisions (any order).
    pub fn of<'d>(decisions: impl IntoIterator<Item = &'d Decision>, threshold: usize) -> Tally {
        let mut newest: BTreeMap<&str, &Decision> = BTreeMap::new();
        let mut total = 0;
        for d in decisions {
            total += 1;
            let newer = |old: &&Decision| {
                (d.at.as_str(), d.seq, d.record.as_str())
                    > (old.at.as_str(), old.seq, old.record.as_str())
            };
            if newest.get(d.member.as_str()).is_none_or(newer) {
                newest.insert(&d.member, d);
            }
        }
        let current: Vec<Decision> = newest.into_values().cloned().collect();
        let approvals = current
            .iter()
            .filter(|d| d.decision == Verdict::Approve)
            .count();
        let standing = if current.iter().any(|d| d.decision == Verdict::Reject) {
            Standing::Rejected
        } else if approvals >= threshold {
            Standing::Approved
        } else {
            Standing::Pending
        };
        Tally {
            standing,
            approvals,
            threshold,
            superseded: total - current.len(),
            current,
        }
    }

    /// `approved (2 of 2 approvals)`, `pending (1 of 2 approvals)`,
    /// `rejected by carol`.
    pub fn label(&self) -> String {
        match self.standing {
            Standing::Rejected => {
                let by: Vec<&str> = self
                    .current
                    .iter()
                    .filter(|d| d.decision == Verdict::Reject)
                    .map(|d| d.member.as_str())
                    .collect();
                format!("rejected by {}", by.join(", "))
            }
            s => format!(
                "{} ({} of {} approvals)",
                s.as_str(),
                self.approvals,
                self.threshold
            ),
        }
    }
}

/// Every verified decision, with the policy they are tallied under.
#[derive(Clone, Debug, Default)]
pub struct Board {
    /// Whether ledger.yaml names a committee file.
    pub configured: bool,
    pub threshold: usize,
    pub tag_prefix: String,
    /// Decisions by decided run id.
    pub by_run: BTreeMap<String, Vec<Decision>>,
}

impl Board {
    pub fn new(config: &CommitteeSection, decisions: Vec<Decision>) -> Board {
        let mut by_run: BTreeMap<String, Vec<Decision>> = BTreeMap::new();
        for d in decisions {
            by_run.entry(d.run_id.clone()).or_default().push(d);
        }
        Board {
            configured: config.allowed_signers.is_some(),
            threshold: config.threshold as usize,
            tag_prefix: config.tag_prefix.clone(),
            by_run,
        }
    }

    /// The run's tally; `None` when no committee is configured.
    pub fn tally(&self, run_id: &str) -> Option<Tally> {
        self.configured.then(|| {
            Tally::of(
                self.by_run.get(run_id).into_iter().flatten(),
                self.threshold,
            )
        })
    }

    /// Whether a run with this tag must be approved (`verify --policy`).
    pub fn is_committee_run(&self, tag: &str) -> bool {
        tag.starts_with(&self.tag_prefix)
    }

    /// Whether the run is approved.
    pub fn approved(&self, run_id: &str) -> bool {
        self.tally(run_id)
            .is_some_and(|t| t.standing == Standing::Approved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(member: &str, decision: Verdict, at: &str) -> Decision {
        Decision {
            decision_id: format!("{at}_{member}"),
            record: format!("sha256:{member}{at}"),
            run_id: "r1".into(),
            member: member.into(),
            key: format!("SHA256:{member}"),
            decision,
            reason: "because".into(),
            at: at.into(),
            seq: 1,
            finalize_record: "f".into(),
        }
    }

    const T1: &str = "2026-11-20T10:00:00Z";
    const T2: &str = "2026-11-21T10:00:00Z";

    #[test]
    fn k_of_n() {
        use Verdict::*;
        let one = [d("alice", Approve, T1)];
        let t = Tally::of(&one, 2);
        assert_eq!((t.standing, t.approvals), (Standing::Pending, 1));
        assert_eq!(t.label(), "pending (1 of 2 approvals)");
        let two = [d("alice", Approve, T1), d("bob", Approve, T1)];
        assert_eq!(Tally::of(&two, 2).standing, Standing::Approved);
        let veto = [
            d("alice", Approve, T1),
            d("bob", Approve, T1),
            d("carol", Reject, T1),
        ];
        let t = Tally::of(&veto, 2);
        assert_eq!(t.standing, Standing::Rejected);
        assert_eq!(t.label(), "rejected by carol");
        let rework = [d("alice", Approve, T1), d("bob", Rework, T1)];
        assert_eq!(Tally::of(&rework, 2).standing, Standing::Pending);
    }

    #[test]
    fn a_newer_decision_replaces_the_members_earlier_one() {
        use Verdict::*;
        let changed = [
            d("carol", Approve, T2),
            d("alice", Approve, T1),
            d("carol", Reject, T1),
        ];
        let t = Tally::of(&changed, 2);
        assert_eq!(t.standing, Standing::Approved);
        assert_eq!(t.superseded, 1);
        assert_eq!(t.current.len(), 2);
        assert_eq!(t.current[1].at, T2);
        // Two decisions by one member are one vote.
        let same = [d("alice", Approve, T1), d("alice", Approve, T2)];
        assert_eq!(Tally::of(&same, 2).approvals, 1);
    }
}
