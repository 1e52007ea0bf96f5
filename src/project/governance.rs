//! The governance audit check of one run, and the remediation plan for every
//! check it failed.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::markdown::{Align, Doc, Inline};
use super::{Input, ReportState, StageStatus, View};
use crate::history::Status;
use crate::record::Kind;
use crate::run::shell_quote;

/// A check's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Fail,
    NotApplicable,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::NotApplicable => "not_applicable",
        }
    }
}

/// One governance check. Its id and title are this build's own texts;
/// they are owned only when read back from finalize's entries cache.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Stable id, e.g. `records_signed`.
    pub id: Cow<'static, str>,
    pub title: Cow<'static, str>,
    pub outcome: Outcome,
    /// What the verdict rests on.
    pub evidence: String,
}

fn check(id: &'static str, title: &'static str, outcome: Outcome, evidence: String) -> Check {
    Check {
        id: Cow::Borrowed(id),
        title: Cow::Borrowed(title),
        outcome,
        evidence,
    }
}

fn pass_fail(ok: bool) -> Outcome {
    if ok {
        Outcome::Pass
    } else {
        Outcome::Fail
    }
}

/// The checks, in a fixed order.
pub fn checks(input: &Input<'_>, view: &View<'_>) -> Vec<Check> {
    let run = view.run;
    let preflight = run.preflight();
    let context = run.context();
    let result = run.result();
    let dq = run.data_quality();
    let ran = run.get(Kind::Started).is_some();
    let mut out = Vec::new();

    // All records present and validly signed.
    let kinds: Vec<&str> = run.records.keys().map(|k| k.as_str()).collect();
    let complete = run.status() != Status::Incomplete && run.status() != Status::Running;
    let integrity = &view.extras.integrity;
    out.push(check(
        "records_signed",
        "All records present and validly signed by a trusted key",
        pass_fail(complete && integrity.is_empty()),
        if !integrity.is_empty() {
            let more = integrity.len().saturating_sub(3);
            let mut text = integrity
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ");
            if more > 0 {
                text.push_str(&format!("; and {more} more"));
            }
            text
        } else if !complete {
            let unreadable: Vec<String> = run
                .unreadable
                .iter()
                .map(|(f, why)| format!("{f}: {why}"))
                .collect();
            format!(
                "records present: {}; {}",
                kinds.join(", "),
                if unreadable.is_empty() {
                    "the run's record set is incomplete".to_string()
                } else {
                    unreadable.join("; ")
                }
            )
        } else {
            format!(
                "{} record{} ({}) verified against {}",
                kinds.len(),
                if kinds.len() == 1 { "" } else { "s" },
                kinds.join(", "),
                input.trust_file
            )
        },
    ));

    // Preflight.
    out.push(match &preflight {
        None => check(
            "preflight_passed",
            "Preflight passed",
            Outcome::Fail,
            "no readable preflight record".into(),
        ),
        Some(p) => {
            let failed: Vec<String> = p
                .checks
                .iter()
                .filter(|c| !c.passed)
                .map(|c| format!("{}: {} (required {})", c.id, c.observed, c.required))
                .collect();
            check(
                "preflight_passed",
                "Preflight passed",
                pass_fail(p.passed),
                if failed.is_empty() {
                    format!(
                        "{} checks passed on {} ({} cores)",
                        p.checks.len(),
                        p.host.hostname,
                        p.host.cores
                    )
                } else {
                    failed.join("; ")
                },
            )
        }
    });

    // Data quality.
    let required = input
        .config
        .workflows
        .get(&view.workflow)
        .is_some_and(|w| w.require_dq);
    let skip = context.as_ref().and_then(|c| c.dq_skip.clone());
    out.push(match (&dq, &skip) {
        (Some(d), _) => {
            let failed: Vec<&str> = d
                .rules
                .iter()
                .filter(|r| !r.passed)
                .map(|r| r.rule.as_str())
                .collect();
            check(
                "data_quality",
                "Data quality passed, or skipped with who and why",
                pass_fail(d.passed),
                if d.passed {
                    format!(
                        "{} rules passed on {} ({} rows, sha256 {})",
                        d.rules.len(),
                        d.input.path,
                        d.rows,
                        d.input.sha256
                    )
                } else {
                    format!("{} failed rules: {}", d.input.path, failed.join(", "))
                },
            )
        }
        (None, Some(s)) => check(
            "data_quality",
            "Data quality passed, or skipped with who and why",
            Outcome::Pass,
            format!("skipped by {} (owner {}): {}", s.by, s.owner, s.reason),
        ),
        (None, None) if required && view.status != StageStatus::Blocked => check(
            "data_quality",
            "Data quality passed, or skipped with who and why",
            Outcome::Fail,
            format!(
                "workflow {} requires the DQ gate, but the run has neither a data_quality record nor a recorded skip",
                view.workflow
            ),
        ),
        (None, None) => check(
            "data_quality",
            "Data quality passed, or skipped with who and why",
            Outcome::NotApplicable,
            format!("workflow {} does not require the DQ gate", view.workflow),
        ),
    });

    // Clean tree.
    out.push(match &preflight {
        Some(p) if p.require_clean => {
            let clean = p.git.dirty == Some(false);
            check(
                "clean_tree",
                "Clean tree when required",
                pass_fail(clean),
                match p.git.dirty {
                    Some(false) => "required, and the tree was clean".into(),
                    Some(true) => "required, but tracked files differed from HEAD".into(),
                    None => "required, but the tree's state could not be read".into(),
                },
            )
        }
        _ => check(
            "clean_tree",
            "Clean tree when required",
            Outcome::NotApplicable,
            "not required (run without --require-clean)".into(),
        ),
    });

    // Exit code.
    out.push(match (&result, view.status) {
        (_, StageStatus::Blocked) => check(
            "exit_zero",
            "Command exited 0",
            Outcome::Fail,
            "never ran: blocked before the command started".into(),
        ),
        (Some(r), _) if r.status == "aborted" => check(
            "exit_zero",
            "Command exited 0",
            Outcome::Fail,
            "aborted: the supervising ledger run died; no exit status".into(),
        ),
        (Some(r), _) => check(
            "exit_zero",
            "Command exited 0",
            pass_fail(r.code == Some(0)),
            match (r.exit_code, r.signal) {
                (Some(c), _) => format!("exit code {c} after {} ms", r.duration_ms),
                (None, Some(s)) => format!("killed by signal {s} after {} ms", r.duration_ms),
                (None, None) => format!("no exit status (status {})", r.status),
            },
        ),
        (None, _) => check(
            "exit_zero",
            "Command exited 0",
            Outcome::Fail,
            "no readable result record".into(),
        ),
    });

    // Report.
    let report_check = |outcome, evidence| {
        check(
            "report_valid",
            "Report present and valid",
            outcome,
            evidence,
        )
    };
    out.push(match &view.report {
        _ if !ran => report_check(
            Outcome::NotApplicable,
            "the command never ran".to_string(),
        ),
        ReportState::Valid { path, report } => report_check(
            Outcome::Pass,
            format!(
                "{path}: factor {}, {} gates",
                report.factor,
                report.gates.len()
            ),
        ),
        ReportState::Invalid { path, problems } => report_check(
            Outcome::Fail,
            format!(
                "{path} does not match ledger.yaml report: {}",
                problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ),
        ReportState::Unread { path, why } => report_check(Outcome::Fail, format!("{path}: {why}")),
        ReportState::NotStored { path, bytes } => report_check(
            Outcome::Fail,
            format!("{path} ({bytes} bytes) is over products.max_bytes, so only its digest is in the ledger"),
        ),
        ReportState::Missing => report_check(
            Outcome::Fail,
            format!(
                "no stored product matches report.product {:?}",
                input.config.report.product
            ),
        ),
    });

    // Final summary.
    out.push(
        match (&view.paths.summary, input.options.require_final_summary) {
            (_, false) => check(
                "final_summary",
                "Final summary present",
                Outcome::NotApplicable,
                "not required (finalize without --require-final-summary)".into(),
            ),
            (Some(path), true) => check(
                "final_summary",
                "Final summary present",
                Outcome::Pass,
                format!("written to {path}"),
            ),
            (None, true) => check(
                "final_summary",
                "Final summary present",
                Outcome::Fail,
                "required, but there is no valid report to summarize".into(),
            ),
        },
    );

    // Freeze file.
    let commit = context
        .as_ref()
        .and_then(|c| c.git.commit.clone())
        .or_else(|| view.commit.clone());
    let preflight_freeze = preflight
        .as_ref()
        .and_then(|p| p.checks.iter().find(|c| c.id == "freeze_commit").cloned());
    out.push(match context.as_ref().and_then(|c| c.freeze.clone()) {
        None if preflight_freeze.is_some() => {
            let c = preflight_freeze.expect("checked just above");
            check(
                "freeze_matches",
                "Freeze file digest matches",
                pass_fail(c.passed),
                format!("preflight: {} (required {})", c.observed, c.required),
            )
        }
        None => check(
            "freeze_matches",
            "Freeze file digest matches",
            Outcome::NotApplicable,
            "the run named no freeze file".into(),
        ),
        Some(f) => {
            let pinned_ok = match (&f.pinned_commit, &commit) {
                (None, _) => true,
                (Some(pin), Some(c)) => c.starts_with(pin.as_str()),
                (Some(_), None) => false,
            };
            let stored = view.extras.inputs.get(&f.path);
            let stored_ok = stored.is_none_or(|b| crate::record::canon::sha256_hex(b) == f.sha256);
            check(
                "freeze_matches",
                "Freeze file digest matches",
                pass_fail(pinned_ok && stored_ok),
                match (&f.pinned_commit, pinned_ok, stored_ok) {
                    (_, _, false) => format!(
                        "{}: the stored copy does not hash to the recorded sha256 {}",
                        f.path, f.sha256
                    ),
                    (Some(pin), true, true) => format!(
                        "{} sha256 {}; pinned commit {pin} prefixes the run's commit",
                        f.path, f.sha256
                    ),
                    (Some(pin), false, true) => format!(
                        "{} pins commit {pin}, but the run started from {}",
                        f.path,
                        commit.as_deref().unwrap_or("an unknown commit")
                    ),
                    (None, _, true) => format!("{} sha256 {} (no pinned commit)", f.path, f.sha256),
                },
            )
        }
    });

    // Leftover processes.
    out.push(match &result {
        Some(r) if r.status != "aborted" => check(
            "no_leftover_processes",
            "No leftover processes",
            pass_fail(r.leftover_processes.is_empty()),
            if r.leftover_processes.is_empty() {
                "the command's process group was empty when it ended".into()
            } else {
                format!(
                    "terminated by ledger: {}",
                    r.leftover_processes
                        .iter()
                        .map(|p| format!("pid {} ({})", p.pid, p.command))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
        ),
        _ => check(
            "no_leftover_processes",
            "No leftover processes",
            Outcome::NotApplicable,
            "no regular result (blocked or aborted)".into(),
        ),
    });

    // Log digest.
    out.push(match (&result, view.extras.log_matches) {
        (Some(r), Some(true)) => check(
            "log_digest",
            "Log digest matches the stored log",
            Outcome::Pass,
            format!(
                "stored log: {} bytes, {} lines, sha256 {}",
                r.log.bytes, r.log.lines, r.log.sha256
            ),
        ),
        (_, Some(false)) => check(
            "log_digest",
            "Log digest matches the stored log",
            Outcome::Fail,
            "the stored log does not hash to the digest in the result".into(),
        ),
        (Some(r), None) if r.log.stored => check(
            "log_digest",
            "Log digest matches the stored log",
            Outcome::Fail,
            "the result declares a stored log, but the ledger has none".into(),
        ),
        (Some(r), None) if r.status == "aborted" => check(
            "log_digest",
            "Log digest matches the stored log",
            Outcome::NotApplicable,
            format!(
                "aborted run: the log found at recovery ({} bytes, sha256 {}) is recorded by digest only",
                r.log.bytes, r.log.sha256
            ),
        ),
        (Some(r), None) => check(
            "log_digest",
            "Log digest matches the stored log",
            Outcome::NotApplicable,
            format!(
                "log not stored ({} bytes, over log.max_store_bytes); its sha256 {} is in the result",
                r.log.bytes, r.log.sha256
            ),
        ),
        (None, _) => check(
            "log_digest",
            "Log digest matches the stored log",
            Outcome::NotApplicable,
            "no result record".into(),
        ),
    });
    out
}

/// `governance_audit_check.json`.
#[derive(Clone, Debug, Serialize)]
pub struct Document {
    pub schema: &'static str,
    pub run_id: String,
    pub tag: String,
    pub workflow: String,
    pub status: StageStatus,
    pub passed: bool,
    pub checks: Vec<Check>,
}

impl Document {
    pub fn new(view: &View<'_>, checks: &[Check]) -> Document {
        Document {
            schema: "ledger.governance_audit_check/v1",
            run_id: view.run.run_id.clone(),
            tag: view.tag.clone(),
            workflow: view.workflow.clone(),
            status: view.status,
            passed: checks.iter().all(|c| c.outcome != Outcome::Fail),
            checks: checks.to_vec(),
        }
    }

    pub fn markdown(&self) -> String {
        let mut doc = Doc::new();
        doc.heading(1, format!("Governance audit check: {}", self.tag));
        doc.paragraph(vec![
            Inline::text("Run "),
            Inline::code(&self.run_id),
            Inline::text(format!(
                ", workflow {}, status {}. Governance: ",
                self.workflow,
                self.status.as_str()
            )),
            Inline::Strong(if self.passed { "PASS" } else { "FAIL" }.into()),
            Inline::text("."),
        ]);
        doc.table(
            &[
                ("Check", Align::Left),
                ("Outcome", Align::Left),
                ("Evidence", Align::Left),
            ],
            self.checks
                .iter()
                .map(|c| {
                    vec![
                        vec![
                            Inline::text(&*c.title),
                            Inline::text(" ("),
                            Inline::code(&*c.id),
                            Inline::text(")"),
                        ],
                        vec![Inline::text(c.outcome.as_str())],
                        vec![Inline::text(&c.evidence)],
                    ]
                })
                .collect(),
        );
        doc.render()
    }
}

/// One remediation action.
#[derive(Clone, Debug, Serialize)]
pub struct Action {
    /// The failed check's id.
    pub check: Cow<'static, str>,
    pub title: Cow<'static, str>,
    pub action: String,
    /// The exact command line that fixes it (POSIX shell).
    pub command: String,
}

/// `governance_remediation_plan.json`.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub schema: &'static str,
    pub run_id: String,
    pub tag: String,
    pub actions: Vec<Action>,
}

impl Plan {
    pub fn new(input: &Input<'_>, view: &View<'_>, checks: &[Check]) -> Plan {
        let rerun = rerun_command(view);
        let actions = checks
            .iter()
            .filter(|c| c.outcome == Outcome::Fail)
            .map(|c| {
                let (action, command) = remedy(input, view, c, &rerun);
                Action {
                    check: c.id.clone(),
                    title: c.title.clone(),
                    action,
                    command,
                }
            })
            .collect();
        Plan {
            schema: "ledger.governance_remediation_plan/v1",
            run_id: view.run.run_id.clone(),
            tag: view.tag.clone(),
            actions,
        }
    }

    pub fn markdown(&self) -> String {
        let mut doc = Doc::new();
        doc.heading(1, format!("Governance remediation plan: {}", self.tag));
        doc.paragraph(vec![
            Inline::text("Run "),
            Inline::code(&self.run_id),
            Inline::text("."),
        ]);
        if self.actions.is_empty() {
            doc.text("Every governance check passed or does not apply: nothing to remediate.");
        }
        for (i, a) in self.actions.iter().enumerate() {
            doc.heading(2, format!("{}. {}", i + 1, a.title));
            doc.paragraph(vec![
                Inline::text("Failed check "),
                Inline::code(&*a.check),
                Inline::text(format!(": {}", a.action)),
            ]);
            doc.code("sh", &a.command);
        }
        doc.render()
    }
}

/// The run's command (argv of its `command` record), if recorded.
pub fn argv(run: &crate::history::Run) -> Option<Vec<String>> {
    run.get(Kind::Command)
        .and_then(|r| {
            r.payload
                .predicate_as::<crate::record::CommandPredicate>()
                .ok()
        })
        .map(|c| c.argv)
}

/// Words joined into one POSIX shell command line.
pub fn shell_line(words: &[String]) -> String {
    words
        .iter()
        .map(|w| shell_quote(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `ledger run` command line that repeats this run as a rerun.
pub fn rerun_command(view: &View<'_>) -> String {
    let run = view.run;
    let mut words: Vec<String> = vec![
        "ledger".into(),
        "run".into(),
        "--workflow".into(),
        view.workflow.clone(),
        "--tag".into(),
        view.tag.clone(),
        "--rerun".into(),
        "--owner".into(),
        view.owner.clone(),
    ];
    let context = run.context();
    if let Some(t) = context.as_ref().and_then(|c| c.threads) {
        words.extend(["--threads".into(), t.to_string()]);
    }
    if run.preflight().is_some_and(|p| p.require_clean) {
        words.push("--require-clean".into());
    }
    if let Some(f) = context.as_ref().and_then(|c| c.freeze.as_ref()) {
        words.extend(["--freeze-file".into(), f.path.clone()]);
    }
    if let Some(d) = run.data_quality() {
        words.extend(["--dq-input-csv".into(), d.input.path.clone()]);
    } else if let Some(s) = context.as_ref().and_then(|c| c.dq_skip.as_ref()) {
        words.extend(["--skip-dq".into(), "--skip-reason".into(), s.reason.clone()]);
    }
    words.push("--".into());
    let preflight_argv = run.preflight().map(|p| p.argv).filter(|a| !a.is_empty());
    match argv(run).or(preflight_argv) {
        Some(argv) => words.extend(argv),
        None => words.push("<command>".into()),
    }
    shell_line(&words)
}

fn remedy(input: &Input<'_>, view: &View<'_>, c: &Check, rerun: &str) -> (String, String) {
    let run_id = &view.run.run_id;
    match &*c.id {
        "records_signed" => (
            "The run's records are incomplete or do not verify. Fetch the full ledger and read verify's findings; a run whose supervisor died is closed by `ledger recover`.".into(),
            format!("ledger verify && ledger show {}", shell_quote(run_id)),
        ),
        "preflight_passed" => (
            format!("Preflight blocked the run ({}). Rerun on a workstation that meets ledger.yaml preflight.", c.evidence),
            rerun.to_string(),
        ),
        "data_quality" => {
            let input_path = view.run.data_quality().map(|d| d.input.path);
            match input_path {
                Some(p) => (
                    format!("The data-quality gate failed ({}). Fix the input data, check it with `ledger dq`, then rerun.", c.evidence),
                    format!("ledger dq --input {} && {rerun}", shell_quote(&p)),
                ),
                None => (
                    "The workflow requires the DQ gate. Rerun with --dq-input-csv FILE (or --skip-dq --skip-reason \"why\").".into(),
                    rerun.to_string(),
                ),
            }
        }
        "clean_tree" => (
            "The run required a clean tree but tracked files differed from HEAD. Commit or stash the changes, then rerun.".into(),
            format!("git stash push && {rerun}"),
        ),
        "exit_zero" => (
            match view.status {
                StageStatus::Blocked => "The command never ran. Fix what blocked it (see the other failed checks), then rerun.".to_string(),
                StageStatus::Aborted => "The run was aborted (its ledger run process died). Rerun it.".to_string(),
                _ => format!("The command failed ({}). Read the log tail with `ledger show`, fix the cause, then rerun.", c.evidence),
            },
            rerun.to_string(),
        ),
        "report_valid" if matches!(view.report, ReportState::Unread { .. }) => (
            "The stored report is not the one the run's result signs: the ledger was altered. Verify it and fetch an intact copy.".into(),
            format!("ledger verify && ledger show {}", shell_quote(run_id)),
        ),
        "report_valid" => (
            format!(
                "The run has no usable report ({}). Make the workflow write a report matching ledger.yaml report (product {:?}), or fix the mapping, then rerun.",
                c.evidence, input.config.report.product
            ),
            rerun.to_string(),
        ),
        "final_summary" => (
            "No final summary could be written because the report is missing or invalid. Rerun so the run writes a valid report, then finalize.".into(),
            format!("{rerun} && ledger finalize --require-final-summary"),
        ),
        "freeze_matches" => (
            format!("{} Regenerate the freeze file at the run's commit (or check out the pinned commit), then rerun.", c.evidence),
            rerun.to_string(),
        ),
        "no_leftover_processes" => (
            format!("Processes outlived the command ({}). Make the workflow wait for every walk-forward shard, then rerun.", c.evidence),
            rerun.to_string(),
        ),
        "log_digest" => (
            "The stored log does not match its signed digest: the ledger was altered. Verify it and fetch an intact copy.".into(),
            format!("ledger verify && ledger show {}", shell_quote(run_id)),
        ),
        _ => ("Investigate the failed check, then rerun.".into(), rerun.to_string()),
    }
}
