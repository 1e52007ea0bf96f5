//! The candidate queue (which factor to run next, and why) and the next-run
//! plan for the top candidate. The rules are written down in
//! docs/projections.md.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::governance::shell_line;
use super::markdown::{Align, Doc, Inline};
use super::{Entry, Input, StageStatus};

/// A factor's place in the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Queued,
    /// The last run passed every gate: ready for promotion, not re-queued.
    Ready,
    /// The last runs failed with one same pattern.
    Parked,
    /// A run of the factor is approved by the committee: promoted, not
    /// re-queued.
    Promoted,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Ready => "ready",
            State::Parked => "parked",
            State::Promoted => "promoted",
        }
    }
}

/// One factor of the queue.
#[derive(Clone, Debug, Serialize)]
pub struct Candidate {
    pub rank: usize,
    pub factor: String,
    pub state: State,
    pub score: u32,
    pub last_run: String,
    pub last_tag: String,
    pub primary_metric: Option<f64>,
    pub reason: String,
}

fn text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "—".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Every factor with a valid report, ranked: queued by score (then by the
/// primary metric, then by name), then ready, then promoted, then parked.
pub fn candidates(input: &Input<'_>, views: &[Entry]) -> Vec<Candidate> {
    let weights = &input.config.finalize.queue;
    let primary = &input.config.report.primary_metric;
    let higher = input.config.report.higher_is_better;
    let mut by_factor: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    let mut top_cost: Option<f64> = None;
    for v in views {
        if let Some(r) = v.report.report() {
            by_factor.entry(r.factor.as_str()).or_default().push(v);
            for c in r
                .gates
                .iter()
                .filter_map(|g| g.cost_multiplier.as_ref()?.as_f64())
            {
                top_cost = Some(top_cost.map_or(c, |t: f64| t.max(c)));
            }
        }
    }
    let mut out: Vec<Candidate> = by_factor
        .into_iter()
        .map(|(factor, runs)| {
            let last = runs.last().expect("a factor has a run");
            let report = last.report.report().expect("runs with a report");
            let failed: Vec<&str> = report
                .gates
                .iter()
                .filter(|g| !g.passed)
                .map(|g| g.name.as_str())
                .collect();
            let metric = report.metric(primary);
            let mut candidate = Candidate {
                rank: 0,
                factor: factor.to_string(),
                state: State::Queued,
                score: 0,
                last_run: last.run_id.clone(),
                last_tag: last.tag.clone(),
                primary_metric: metric,
                reason: String::new(),
            };
            if let Some(v) = runs.iter().rev().find(|v| {
                v.decision
                    .as_ref()
                    .is_some_and(|t| t.standing == crate::committee::Standing::Approved)
            }) {
                candidate.state = State::Promoted;
                candidate.reason = format!(
                    "promoted: {} approved by the committee ({}), not re-queued",
                    v.tag,
                    v.decision.as_ref().map(|t| t.label()).unwrap_or_default()
                );
                return candidate;
            }
            if failed.is_empty() && last.status == StageStatus::Pass {
                candidate.state = State::Ready;
                candidate.reason = format!(
                    "passed every gate in {}: ready for promotion, not re-queued",
                    last.tag
                );
                return candidate;
            }
            // Parked: the last K runs share a failure pattern.
            let k = weights.park_after.max(1);
            if runs.len() >= k {
                let recent = &runs[runs.len() - k..];
                let mut shared: Vec<(String, String)> = recent[0].failures.clone();
                for v in &recent[1..] {
                    let these = &v.failures;
                    shared.retain(|p| these.contains(p));
                }
                if let Some((gate, reason)) = shared.into_iter().min() {
                    candidate.state = State::Parked;
                    candidate.reason =
                        format!("parked: its last {k} runs all failed with {gate}: {reason}");
                    return candidate;
                }
            }
            let mut reasons = Vec::new();
            if failed.len() == 1 {
                candidate.score += weights.near_miss;
                reasons.push(format!(
                    "near miss: only {} failed in {} (+{})",
                    failed[0], last.tag, weights.near_miss
                ));
            }
            let previous = runs
                .len()
                .checked_sub(2)
                .and_then(|i| runs[i].report.report()?.metric(primary));
            if let (Some(before), Some(now)) = (previous, metric) {
                let better = if higher { now > before } else { now < before };
                if better {
                    candidate.score += weights.improving;
                    reasons.push(format!(
                        "{primary} improving: {} -> {} (+{})",
                        text(
                            runs[runs.len() - 2]
                                .report
                                .report()
                                .and_then(|r| r.metrics.get(primary))
                        ),
                        text(report.metrics.get(primary)),
                        weights.improving
                    ));
                }
            }
            if let Some(top) = top_cost {
                let tested = runs.iter().any(|v| {
                    v.report.report().is_some_and(|r| {
                        r.gates.iter().any(|g| {
                            g.cost_multiplier.as_ref().and_then(Value::as_f64) == Some(top)
                        })
                    })
                });
                if !tested {
                    candidate.score += weights.untested_cost;
                    reasons.push(format!(
                        "not yet tested at {top}x costs (+{})",
                        weights.untested_cost
                    ));
                }
            }
            if reasons.is_empty() {
                reasons.push(format!(
                    "failed {} gates in {}; no bonus applies",
                    failed.len(),
                    last.tag
                ));
            }
            candidate.reason = reasons.join("; ");
            candidate
        })
        .collect();
    let state_order = |s: State| match s {
        State::Queued => 0,
        State::Ready => 1,
        State::Promoted => 2,
        State::Parked => 3,
    };
    out.sort_by(|a, b| {
        state_order(a.state)
            .cmp(&state_order(b.state))
            .then(b.score.cmp(&a.score))
            .then_with(|| {
                let key = |c: &Candidate| c.primary_metric.map(|m| if higher { -m } else { m });
                match (key(a), key(b)) {
                    (Some(x), Some(y)) => x.total_cmp(&y),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (None, None) => std::cmp::Ordering::Equal,
                }
            })
            .then_with(|| a.factor.cmp(&b.factor))
    });
    for (i, c) in out.iter_mut().enumerate() {
        c.rank = i + 1;
    }
    out
}

/// `factor_candidate_queue.csv`.
pub fn queue_csv(candidates: &[Candidate]) -> Vec<u8> {
    let mut out = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    out.write_record([
        "rank",
        "factor",
        "state",
        "score",
        "last_run",
        "last_tag",
        "primary_metric",
        "reason",
    ])
    .expect("writing CSV to memory");
    for c in candidates {
        out.write_record([
            c.rank.to_string().as_str(),
            &c.factor,
            c.state.as_str(),
            &c.score.to_string(),
            &c.last_run,
            &c.last_tag,
            &c.primary_metric.map(|m| m.to_string()).unwrap_or_default(),
            &c.reason,
        ])
        .expect("writing CSV to memory");
    }
    out.into_inner().expect("a Vec writer cannot fail")
}

/// `factor_candidate_queue.md`.
pub fn queue_md(input: &Input<'_>, candidates: &[Candidate]) -> String {
    let w = &input.config.finalize.queue;
    let mut doc = Doc::new();
    doc.heading(1, "Factor candidate queue");
    doc.text(format!(
        "Factors ranked for the next run. Score: +{} for a near miss (exactly one failed gate in the last run), +{} when the primary metric improved over the run before, +{} when the factor was never tested at the highest cost multiplier. Factors whose last run passed every gate are ready for promotion; factors with a run the committee approved are promoted; factors whose last {} runs failed with one same pattern are parked. Rules: docs/projections.md.",
        w.near_miss, w.improving, w.untested_cost, w.park_after
    ));
    doc.table(
        &[
            ("Rank", Align::Right),
            ("Factor", Align::Left),
            ("State", Align::Left),
            ("Score", Align::Right),
            ("Last run", Align::Left),
            ("Reason", Align::Left),
        ],
        candidates
            .iter()
            .map(|c| {
                vec![
                    vec![Inline::text(c.rank.to_string())],
                    vec![Inline::text(&c.factor)],
                    vec![Inline::text(c.state.as_str())],
                    vec![Inline::text(c.score.to_string())],
                    vec![Inline::code(&c.last_run)],
                    vec![Inline::text(&c.reason)],
                ]
            })
            .collect(),
    );
    doc.render()
}

/// `next_run_plan.json`.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub schema: &'static str,
    /// `None` when no factor is queued.
    pub factor: Option<String>,
    pub based_on_run: Option<String>,
    pub workflow: Option<String>,
    pub tag: Option<String>,
    pub strategy: Option<String>,
    pub cost_multipliers: Vec<String>,
    pub walk_forward_shards: Option<u64>,
    pub freeze_file_to_create: Option<String>,
    /// Ready to paste.
    pub command: Option<String>,
    pub prerequisites: Vec<String>,
    pub runners_up: Vec<Candidate>,
    pub note: String,
}

/// The plan for the top queued candidate.
pub fn plan(input: &Input<'_>, views: &[Entry], candidates: &[Candidate]) -> Plan {
    let queued: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| c.state == State::Queued)
        .collect();
    let mut plan = Plan {
        schema: "ledger.next_run_plan/v1",
        factor: None,
        based_on_run: None,
        workflow: None,
        tag: None,
        strategy: None,
        cost_multipliers: Vec::new(),
        walk_forward_shards: None,
        freeze_file_to_create: None,
        command: None,
        prerequisites: Vec::new(),
        runners_up: queued
            .iter()
            .skip(1)
            .take(2)
            .map(|c| (*c).clone())
            .collect(),
        note: String::new(),
    };
    let Some(top) = queued.first() else {
        plan.note =
            "no factor is queued: every factor is ready for promotion, promoted or parked".into();
        return plan;
    };
    let Some(view) = views.iter().find(|v| v.run_id == top.last_run) else {
        return plan;
    };
    let report = view.report.report().expect("queued runs have a report");
    // The date comes from the ledger (its newest run), never the clock.
    let date = views
        .iter()
        .map(|v| v.date.as_str())
        .max()
        .unwrap_or("")
        .to_string();
    let prefix = format!("committee_{date}_run");
    let n = views
        .iter()
        .filter_map(|v| v.tag.strip_prefix(&prefix)?.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    let tag = format!("{prefix}{}", n + 1);
    let commit = views
        .iter()
        .rev()
        .find_map(|v| v.commit.clone())
        .unwrap_or_default();
    let short: String = commit.chars().take(7).collect();
    let freeze = format!("freeze_{date}_g{short}.json");
    let mut words = vec![
        "ledger".to_string(),
        "run".into(),
        "--workflow".into(),
        view.workflow.clone(),
        "--tag".into(),
        tag.clone(),
        "--owner".into(),
        view.owner.clone(),
    ];
    if let Some(t) = view.threads {
        words.extend(["--threads".into(), t.to_string()]);
    }
    let dq = view.dq_input.clone();
    if let Some(p) = &dq {
        words.extend(["--dq-input-csv".into(), p.clone()]);
    }
    words.extend(["--freeze-file".into(), freeze.clone()]);
    words.push("--".into());
    words.extend(
        view.argv
            .clone()
            .unwrap_or_else(|| vec!["<command>".into()]),
    );
    plan.prerequisites.push(format!(
        "create the freeze file {freeze} at commit {short} (its name pins the commit)"
    ));
    if let Some(p) = &dq {
        plan.prerequisites.push(format!(
            "the DQ input {p} (as in {}) passes `ledger dq --input {p}`",
            view.tag
        ));
    } else if input
        .config
        .workflows
        .get(&view.workflow)
        .is_some_and(|w| w.require_dq)
    {
        plan.prerequisites.push(format!(
            "workflow {} requires a DQ input: add --dq-input-csv FILE",
            view.workflow
        ));
    }
    for c in view.failed.iter().flatten() {
        plan.prerequisites.push(format!(
            "open remediation item of {}: {} ({})",
            view.tag, c.title, c.evidence
        ));
    }
    plan.factor = Some(top.factor.clone());
    plan.based_on_run = Some(view.run_id.clone());
    plan.workflow = Some(view.workflow.clone());
    plan.tag = Some(tag);
    plan.strategy = report.strategy.clone();
    plan.cost_multipliers = report
        .gates
        .iter()
        .filter_map(|g| g.cost_multiplier.as_ref())
        .map(|c| text(Some(c)))
        .collect();
    plan.walk_forward_shards = report.walk_forward_shards;
    plan.freeze_file_to_create = Some(freeze);
    plan.command = Some(shell_line(&words));
    plan.note = format!("top candidate: {}", top.reason);
    plan
}

/// `next_run_plan.md`.
pub fn plan_md(plan: &Plan) -> String {
    let mut doc = Doc::new();
    doc.heading(1, "Next run plan");
    let Some(factor) = &plan.factor else {
        doc.text(&plan.note);
        return doc.render();
    };
    doc.paragraph(vec![
        Inline::text(format!("Factor {factor}, based on ")),
        Inline::code(plan.based_on_run.clone().unwrap_or_default()),
        Inline::text(format!(". {}.", plan.note)),
    ]);
    doc.heading(2, "Command");
    doc.code("sh", plan.command.clone().unwrap_or_default());
    doc.list(vec![vec![Inline::text(format!(
        "Strategy {}, cost multipliers {}, walk-forward shards {}",
        plan.strategy.as_deref().unwrap_or("—"),
        if plan.cost_multipliers.is_empty() {
            "—".to_string()
        } else {
            plan.cost_multipliers.join(", ")
        },
        plan.walk_forward_shards
            .map_or("—".to_string(), |n| n.to_string())
    ))]]);
    doc.heading(2, "Prerequisites");
    doc.list(
        plan.prerequisites
            .iter()
            .map(|p| vec![Inline::text(p)])
            .collect(),
    );
    doc.heading(2, "Runners-up");
    if plan.runners_up.is_empty() {
        doc.text("None.");
    } else {
        doc.list(
            plan.runners_up
                .iter()
                .map(|c| {
                    vec![Inline::text(format!(
                        "{} (score {}): {}",
                        c.factor, c.score, c.reason
                    ))]
                })
                .collect(),
        );
    }
    doc.render()
}
