//! The failure-pattern database: every failure of every run, grouped by
//! (gate, normalized reason) so that the same cause groups together whatever
//! the numbers and paths in its text.
//!
//! A failure is a failed gate of a valid report; a failed preflight check
//! (gate `preflight:<check>`); a failed DQ rule (`data_quality:<rule>`); an
//! aborted run (`aborted`); or a non-zero exit of a run whose report shows no
//! failed gate (`exit`).

use std::collections::BTreeMap;

use super::markdown::{Align, Doc, Inline};
use super::{Entry, StageStatus, View};

/// One group of failures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    pub gate: String,
    pub reason: String,
    pub count: usize,
    /// (date, tag) of the first and the last run with it, by run order.
    pub first: (String, String),
    pub last: (String, String),
    pub factors: Vec<String>,
    pub example_run: String,
}

/// Lowercase, numbers become `<n>`, commit ids and digests `<hex>`, words
/// with a `/` become `<path>`, whitespace collapses.
pub fn normalize(reason: &str) -> String {
    let mut words = Vec::new();
    for word in reason.split_whitespace() {
        if word.contains('/') {
            words.push("<path>".to_string());
            continue;
        }
        // Commit ids and digests: seven or more hex digits, some numeric.
        let core = word.trim_matches(|c: char| !c.is_ascii_alphanumeric());
        if core.len() >= 7
            && core.chars().all(|c| c.is_ascii_hexdigit())
            && core.chars().any(|c| c.is_ascii_digit())
        {
            words.push(word.replace(core, "<hex>"));
            continue;
        }
        let mut out = String::new();
        let mut in_number = false;
        for c in word.to_lowercase().chars() {
            let numeric = c.is_ascii_digit() || (in_number && c == '.');
            if numeric {
                if !in_number {
                    out.push_str("<n>");
                }
                in_number = true;
            } else {
                in_number = false;
                out.push(c);
            }
        }
        words.push(out);
    }
    words.join(" ")
}

/// Every failure of one run: (gate, normalized reason).
pub fn failures_of(view: &View<'_>) -> Vec<(String, String)> {
    let run = view.run;
    let mut out = Vec::new();
    if let Some(p) = run.preflight() {
        for c in p.checks.iter().filter(|c| !c.passed) {
            out.push((format!("preflight:{}", c.id), normalize(&c.observed)));
        }
    }
    if let Some(d) = run.data_quality() {
        for r in d.rules.iter().filter(|r| !r.passed) {
            out.push((format!("data_quality:{}", r.rule), normalize(&r.detail)));
        }
    }
    let failed_gates: Vec<(String, String)> = view
        .report
        .report()
        .map(|r| {
            r.gates
                .iter()
                .filter(|g| !g.passed)
                .map(|g| {
                    (
                        g.name.clone(),
                        normalize(g.reason.as_deref().unwrap_or("no reason given")),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let gates_failed = !failed_gates.is_empty();
    out.extend(failed_gates);
    match view.status {
        StageStatus::Aborted => {
            out.push(("aborted".into(), "ledger run died before the result".into()))
        }
        StageStatus::Fail if !gates_failed => {
            let how = run
                .result()
                .map(|r| match (r.exit_code, r.signal) {
                    (Some(c), _) => format!("exit code {c}"),
                    (None, Some(s)) => format!("killed by signal {s}"),
                    _ => "no exit status".into(),
                })
                .unwrap_or_else(|| "no result".into());
            // The code is the cause here: kept as is.
            out.push(("exit".into(), how));
        }
        _ => {}
    }
    out
}

/// The patterns, most frequent first, then by gate and reason.
pub fn patterns(views: &[Entry]) -> Vec<Pattern> {
    let mut groups: BTreeMap<(String, String), Pattern> = BTreeMap::new();
    for v in views {
        let factor = v.report.report().map(|r| r.factor.clone());
        for (gate, reason) in v.failures.iter().cloned() {
            let seen = (v.date.clone(), v.tag.clone());
            let p = groups
                .entry((gate.clone(), reason.clone()))
                .or_insert_with(|| Pattern {
                    gate,
                    reason,
                    count: 0,
                    first: seen.clone(),
                    last: seen.clone(),
                    factors: Vec::new(),
                    example_run: v.run_id.clone(),
                });
            p.count += 1;
            p.last = seen;
            if let Some(f) = &factor {
                if !p.factors.contains(f) {
                    p.factors.push(f.clone());
                }
            }
        }
    }
    let mut out: Vec<Pattern> = groups.into_values().collect();
    for p in &mut out {
        p.factors.sort();
    }
    out.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| a.gate.cmp(&b.gate))
            .then_with(|| a.reason.cmp(&b.reason))
    });
    out
}

/// `failure_patterns.csv`.
pub fn patterns_csv(patterns: &[Pattern]) -> Vec<u8> {
    let mut out = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    out.write_record([
        "gate",
        "reason",
        "count",
        "first_seen_date",
        "first_seen_tag",
        "last_seen_date",
        "last_seen_tag",
        "factors",
        "example_run",
    ])
    .expect("writing CSV to memory");
    for p in patterns {
        out.write_record([
            p.gate.as_str(),
            &p.reason,
            &p.count.to_string(),
            &p.first.0,
            &p.first.1,
            &p.last.0,
            &p.last.1,
            &p.factors.join(";"),
            &p.example_run,
        ])
        .expect("writing CSV to memory");
    }
    out.into_inner().expect("a Vec writer cannot fail")
}

/// `failure_pattern_summary.md`.
pub fn summary(patterns: &[Pattern]) -> String {
    let mut doc = Doc::new();
    doc.heading(1, "Failure patterns");
    doc.text(format!(
        "{} patterns: every failure of every run, grouped by gate and reason (lowercased, numbers as <n>, commit ids as <hex>, paths as <path>). Failed gates, failed preflight checks and DQ rules, aborted runs, and non-zero exits without a failed gate all count.",
        patterns.len()
    ));
    if patterns.is_empty() {
        doc.text("No run has failed.");
        return doc.render();
    }
    doc.table(
        &[
            ("Count", Align::Right),
            ("Gate", Align::Left),
            ("Reason", Align::Left),
            ("First seen", Align::Left),
            ("Last seen", Align::Left),
            ("Factors", Align::Left),
            ("Example run", Align::Left),
        ],
        patterns
            .iter()
            .map(|p| {
                vec![
                    vec![Inline::text(p.count.to_string())],
                    vec![Inline::text(&p.gate)],
                    vec![Inline::text(&p.reason)],
                    vec![Inline::text(format!("{} {}", p.first.0, p.first.1))],
                    vec![Inline::text(format!("{} {}", p.last.0, p.last.1))],
                    vec![Inline::text(if p.factors.is_empty() {
                        "—".to_string()
                    } else {
                        p.factors.join(", ")
                    })],
                    vec![Inline::code(&p.example_run)],
                ]
            })
            .collect(),
    );
    doc.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_paths_do_not_split_a_cause() {
        assert_eq!(
            normalize("Net Sharpe 0.41 below 0.5 at /data/run_12/x.csv"),
            "net sharpe <n> below <n> at <path>"
        );
        assert_eq!(normalize("cost_2.0x  failed"), "cost_<n>x failed");
        assert_eq!(normalize("exit 3"), normalize("exit 17"));
        assert_eq!(
            normalize("HEAD is 693a998e0ff1555fd65197579e17588c5da3cac0."),
            "head is <hex>."
        );
    }
}
