//! The factor experiment registry (CSV, one row per run with a valid report)
//! and the leaderboard (each factor's best run by the primary metric).

use std::collections::BTreeMap;

use serde_json::Value;

use super::markdown::{Align, Doc, Inline};
use super::{Entry, Input};

/// A value as the report wrote it; empty when absent.
fn text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// `factor_experiment_registry.csv`: RFC 4180 through the csv crate, columns
/// in a fixed order, then one `metric:<name>` column per metric any report
/// names, sorted by name.
pub fn registry_csv(views: &[Entry]) -> Vec<u8> {
    let mut metric_names: Vec<&String> = views
        .iter()
        .filter_map(|v| v.report.report())
        .flat_map(|r| r.metrics.keys())
        .collect();
    metric_names.sort();
    metric_names.dedup();
    let mut out = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let mut header: Vec<String> = [
        "run_id",
        "tag",
        "date",
        "owner",
        "workflow",
        "factor",
        "strategy",
        "commit",
        "status",
        "verdict",
        "gates_passed",
        "gates_total",
        "cost_multipliers",
        "walk_forward_shards",
        "walk_forward_passed",
    ]
    .map(String::from)
    .to_vec();
    header.extend(metric_names.iter().map(|m| format!("metric:{m}")));
    header.push("result_record".into());
    out.write_record(&header).expect("writing CSV to memory");
    for v in views {
        let Some(r) = v.report.report() else {
            continue;
        };
        let costs: Vec<String> = r
            .gates
            .iter()
            .filter_map(|g| g.cost_multiplier.as_ref())
            .map(|c| text(Some(c)))
            .collect();
        let mut row = vec![
            v.run_id.clone(),
            v.tag.clone(),
            v.date.clone(),
            v.owner.clone(),
            v.workflow.clone(),
            r.factor.clone(),
            r.strategy.clone().unwrap_or_default(),
            v.commit.clone().unwrap_or_default(),
            v.status.as_str().to_string(),
            r.verdict.clone().unwrap_or_default(),
            r.gates_passed().to_string(),
            r.gates.len().to_string(),
            costs.join(";"),
            r.walk_forward_shards
                .map(|n| n.to_string())
                .unwrap_or_default(),
            r.walk_forward_passed
                .map(|n| n.to_string())
                .unwrap_or_default(),
        ];
        row.extend(metric_names.iter().map(|m| text(r.metrics.get(*m))));
        row.push(v.result_id.clone().unwrap_or_default());
        out.write_record(&row).expect("writing CSV to memory");
    }
    out.into_inner().expect("a Vec writer cannot fail")
}

/// `factor_experiment_leaderboard.md`.
pub fn leaderboard(input: &Input<'_>, views: &[Entry]) -> String {
    let primary = &input.config.report.primary_metric;
    let higher = input.config.report.higher_is_better;
    // Runs with a valid report, by factor, oldest first.
    let mut by_factor: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    for v in views {
        if let Some(r) = v.report.report() {
            by_factor.entry(r.factor.as_str()).or_default().push(v);
        }
    }
    struct Line<'v> {
        factor: &'v str,
        best: Option<(f64, &'v Entry)>,
        runs: usize,
        passed: usize,
        latest: String,
        trend: Vec<String>,
        /// The newest run of the factor the committee approved.
        promoted: Option<&'v str>,
    }
    let mut lines: Vec<Line<'_>> = by_factor
        .iter()
        .map(|(factor, runs)| {
            let mut best: Option<(f64, &Entry)> = None;
            for v in runs {
                if let Some(m) = v.report.report().and_then(|r| r.metric(primary)) {
                    let better = best.is_none_or(|(b, _)| if higher { m > b } else { m < b });
                    if better {
                        best = Some((m, v));
                    }
                }
            }
            let latest = runs
                .last()
                .and_then(|v| v.report.report())
                .and_then(|r| r.verdict.clone())
                .unwrap_or_else(|| "—".into());
            let trend = runs
                .iter()
                .rev()
                .take(5)
                .rev()
                .map(|v| text(v.report.report().and_then(|r| r.metrics.get(primary))))
                .map(|t| if t.is_empty() { "—".to_string() } else { t })
                .collect();
            Line {
                factor,
                best,
                runs: runs.len(),
                passed: runs
                    .iter()
                    .filter(|v| v.status == super::StageStatus::Pass)
                    .count(),
                latest,
                trend,
                promoted: runs
                    .iter()
                    .rev()
                    .find(|v| {
                        v.decision
                            .as_ref()
                            .is_some_and(|t| t.standing == crate::committee::Standing::Approved)
                    })
                    .map(|v| v.tag.as_str()),
            }
        })
        .collect();
    // Best first (by the primary metric's direction), factors without a
    // number last, ties by factor name.
    lines.sort_by(|a, b| {
        let key = |l: &Line<'_>| l.best.map(|(m, _)| if higher { -m } else { m });
        match (key(a), key(b)) {
            (Some(x), Some(y)) => x.total_cmp(&y).then(a.factor.cmp(b.factor)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.factor.cmp(b.factor),
        }
    });
    let mut doc = Doc::new();
    doc.heading(1, "Factor experiment leaderboard");
    doc.text(format!(
        "Each factor's best run by {primary} ({} is better), from every run with a valid report. Pass rate counts runs that exited 0; the trend is {primary} over the factor's last five runs, oldest first; Committee names the newest run the committee approved (the factor is promoted).",
        if higher { "higher" } else { "lower" }
    ));
    let rows = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let (best, run) = match l.best {
                Some((_, v)) => (
                    text(v.report.report().and_then(|r| r.metrics.get(primary))),
                    vec![Inline::code(&v.run_id)],
                ),
                None => ("—".into(), vec![Inline::text("—")]),
            };
            vec![
                vec![Inline::text((i + 1).to_string())],
                vec![Inline::text(l.factor)],
                vec![Inline::text(best)],
                run,
                vec![Inline::text(l.runs.to_string())],
                vec![Inline::text(format!("{}/{}", l.passed, l.runs))],
                vec![Inline::text(&l.latest)],
                vec![Inline::text(l.trend.join(" → "))],
                vec![Inline::text(
                    l.promoted.map_or("—".into(), |t| format!("approved: {t}")),
                )],
            ]
        })
        .collect();
    doc.table(
        &[
            ("Rank", Align::Right),
            ("Factor", Align::Left),
            ("Best", Align::Right),
            ("Best run", Align::Left),
            ("Runs", Align::Right),
            ("Passed", Align::Right),
            ("Latest verdict", Align::Left),
            ("Trend", Align::Left),
            ("Committee", Align::Left),
        ],
        rows,
    );
    doc.render()
}
