use serde::Serialize;

use super::{CliError, Env};
use crate::finalize::{self, Difference, Recorded, Skipped, Written};
use crate::project::{Options, RunOutline, StageStatus};
use crate::workspace::Workspace;

/// Render every audit document from the ledger, and record what was written.
///
/// Writes, as pure functions of the ledger and ledger.yaml (byte-identical on
/// any machine, any day, in any time zone):
///   docs/production_research/STAGE_AUDIT_LOG.md        one row per run
///   <report dir>/production_gates_final_summary.md     per run with a report
///   <report dir>/production_gates_run_review.md        per run with a report
///   audit/workstation_runs/<run>/governance_audit_check.{json,md}
///   audit/workstation_runs/<run>/governance_remediation_plan.{json,md}
/// then commits a signed `finalize` record with the ledger head it read and
/// the sha256 of every file (none when nothing changed), and prints the
/// checklist a committee secretary walks.
///
/// Examples:
///   ledger finalize
///   ledger finalize --check                 # diff only, exit 1 on any difference
///   (cd committee.git && ledger finalize --check)  # bare clone: against HEAD's commit
///   ledger finalize --tag committee_2026-11-22_run1 --require-final-summary
///   ledger finalize --commit                # also commit the files on your branch
///   ledger finalize --no-cache              # verify and compare everything again
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Only the stage audit log and this run's documents (a tag or a run id).
    #[arg(long, value_name = "TAG")]
    tag: Option<String>,
    /// A run without a final summary (no valid report) fails governance.
    #[arg(long)]
    require_final_summary: bool,
    /// Write nothing: print a unified diff of every file that differs from a
    /// fresh projection and exit 1 if any does. In a bare clone, compares
    /// with the documents committed on HEAD, read with HEAD's ledger.yaml
    /// and trust file (or --trust).
    #[arg(long, conflicts_with = "commit")]
    check: bool,
    /// Also commit exactly the projection files on the current branch;
    /// refused when other changes are staged.
    #[arg(long)]
    commit: bool,
    /// Recompute everything: verify the whole ledger and read back every
    /// document, ignoring the caches under .git/ledger/ (which only save
    /// time and never change a result).
    #[arg(long)]
    no_cache: bool,
    #[command(flatten)]
    trust_key: super::TrustKey,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
}

impl Args {
    /// `ledger finalize` with every option at its default.
    pub(crate) fn default_run() -> Args {
        Args {
            tag: None,
            require_final_summary: false,
            check: false,
            commit: false,
            no_cache: false,
            trust_key: super::TrustKey {
                trust: None,
                key: None,
            },
            json: false,
        }
    }
}

#[derive(Serialize)]
struct CheckOutcome<'a> {
    ledger_head: &'a str,
    clean: bool,
    differences: &'a [Difference],
    /// Files this repository cannot reproduce, not compared.
    skipped: &'a [Skipped],
}

fn not_checked(n: usize) -> String {
    match n {
        0 => String::new(),
        n => format!(" ({n} not checked here)"),
    }
}

#[derive(Serialize)]
struct Outcome<'a> {
    ledger_head: &'a str,
    runs: usize,
    files: &'a [Written],
    finalize: &'a Recorded,
    /// The ledger head an earlier finalize verified, when only what came
    /// after it was verified now; null after a whole verification.
    verified_since: Option<&'a str>,
    branch_commit: Option<String>,
    checklist: &'a [Item],
}

/// One line of the secretary's checklist.
#[derive(Serialize)]
struct Item {
    ok: bool,
    run_id: Option<String>,
    text: String,
}

pub fn exec(args: Args, env: &Env, out: &mut Vec<u8>) -> Result<i32, CliError> {
    // A check reads and compares only: a committee's bare copy compares
    // with the documents committed on HEAD.
    let ws = if args.check {
        Workspace::open(&env.cwd)?
    } else {
        Workspace::open_worktree(&env.cwd)?
    };
    let trust = super::load_trust(args.trust_key.trust.clone(), &ws, env)?;
    let options = Options {
        require_final_summary: args.require_final_summary,
    };
    // The key is checked before anything is written: run documents go to
    // the work tree as they are rendered, except with --commit, which first
    // refuses other staged changes.
    let signer = match args.check {
        true => None,
        false => Some(args.trust_key.signer(&ws, env)?),
    };
    // A check verifies everything and writes nothing, not even the cache.
    let mut computed = finalize::compute(
        &ws,
        &trust,
        options,
        args.tag.as_deref(),
        !args.check && !args.no_cache,
        !args.check && !args.commit,
    )?;
    if args.check {
        let finalize::Comparison {
            differences: diffs,
            skipped,
        } = finalize::compare(&ws, &computed.projection)?;
        if args.json {
            super::json(
                &CheckOutcome {
                    ledger_head: &computed.head,
                    clean: diffs.is_empty(),
                    differences: &diffs,
                    skipped: &skipped,
                },
                out,
            );
        } else {
            for d in &diffs {
                out.extend_from_slice(d.diff.as_bytes());
            }
            for s in &skipped {
                out.extend_from_slice(format!("{}: {}\n", s.path, s.why).as_bytes());
            }
            out.extend_from_slice(
                match diffs.len() {
                    0 => format!(
                        "finalize --check: {} files match the projection of ledger head {}{}\n",
                        computed.projection.len() - skipped.len(),
                        computed.head,
                        not_checked(skipped.len()),
                    ),
                    n => format!(
                        "finalize --check: {n} of {} files differ from the projection of ledger head {}{}; run `ledger finalize`\n",
                        computed.projection.len() - skipped.len(),
                        computed.head,
                        not_checked(skipped.len()),
                    ),
                }
                .as_bytes(),
            );
        }
        return Ok(if diffs.is_empty() { 0 } else { 1 });
    }
    // Only `--commit` needs every path apart from the projection (600,000
    // at 100,000 runs).
    let paths: Vec<String> = match args.commit {
        true => computed.projection.paths(),
        false => Vec::new(),
    };
    if args.commit {
        let foreign = finalize::foreign_staged(&ws.root, &paths)?;
        if !foreign.is_empty() {
            return Err(CliError::usage(format!(
                "finalize --commit: other changes are staged ({}); commit or unstage them first",
                foreign.join(", ")
            )));
        }
    }
    let (signer, identity) = signer.expect("the key is loaded unless checking");
    let mut phases = crate::clock::Phases::start();
    let written = finalize::write_tracked(&ws, &mut computed, !args.no_cache)?;
    phases.mark("write");
    let at = crate::clock::now()?;
    let recorded = finalize::record(&ws, &signer, &identity, at, &computed)?;
    phases.mark("record");
    // The documents' digests are recorded; what follows reads the outlines.
    computed.projection = Default::default();
    let branch_commit = if args.commit {
        finalize::commit_on_branch(&ws.root, &paths, &computed.head)?
    } else {
        None
    };
    let checklist = checklist(&ws, &computed.outlines, &written);
    if args.json {
        super::json(
            &Outcome {
                ledger_head: &computed.head,
                runs: computed.runs,
                files: &written,
                finalize: &recorded,
                verified_since: computed.verified_since.as_deref(),
                branch_commit,
                checklist: &checklist,
            },
            out,
        );
        return Ok(0);
    }
    let changed = written.iter().filter(|w| w.changed).count();
    let mut text = format!(
        "finalize: ledger head {}, {} runs\n",
        computed.head, computed.runs
    );
    if let Some(base) = &computed.verified_since {
        text.push_str(&format!(
            "verified what the ledger added since {base} (an earlier finalize verified the rest)\n"
        ));
    }
    text.push_str(&format!(
        "wrote {changed} files, {} already up to date\n",
        written.len() - changed
    ));
    match &recorded.record {
        Some(id) => text.push_str(&format!(
            "recorded finalize {} ({id})\n",
            recorded.finalize_id
        )),
        None => text.push_str(&format!(
            "no new finalize record: {} already covers these files\n",
            recorded.finalize_id
        )),
    }
    if args.commit {
        match &branch_commit {
            Some(c) => text.push_str(&format!("committed the projection files as {c}\n")),
            None => text.push_str("nothing to commit: the branch already has these files\n"),
        }
    }
    for f in &computed.ledger_findings {
        text.push_str(&format!("warning: ledger: {f}\n"));
    }
    text.push_str("\nchecklist:\n");
    for item in &checklist {
        let indent = if item.run_id.is_some() { "    " } else { "  " };
        let line = if item.ok {
            format!("[{}] {}", env.paint(super::Tone::Good, "x"), item.text)
        } else {
            format!("[ ] {}", env.paint(super::Tone::Bad, &item.text))
        };
        text.push_str(&format!("{indent}{line}\n"));
    }
    // A 100,000-run ledger's lists are hundreds of megabytes: gone before
    // the text is copied out.
    drop((checklist, written));
    out.extend_from_slice(text.as_bytes());
    Ok(0)
}

/// The secretary's checklist; a document is present when this finalize
/// wrote it or found it up to date (`written`).
fn checklist(ws: &Workspace, runs: &[RunOutline], written: &[finalize::Written]) -> Vec<Item> {
    let written: std::collections::BTreeSet<&str> =
        written.iter().map(|w| w.path.as_str()).collect();
    let present = |p: &str| written.contains(p);
    let mut items = vec![Item {
        ok: present(&ws.config.finalize.stage_audit_log),
        run_id: None,
        text: format!("{} present", ws.config.finalize.stage_audit_log),
    }];
    for r in runs {
        items.push(Item {
            ok: true,
            run_id: None,
            text: format!("run {} ({})", r.run_id, r.tag),
        });
        let id = Some(r.run_id.clone());
        items.push(Item {
            ok: r.status != StageStatus::InProgress,
            run_id: id.clone(),
            text: match r.status {
                StageStatus::InProgress => "stage row not final: the run is in progress".into(),
                s => format!("stage row final: {}", s.as_str()),
            },
        });
        match (&r.paths.summary, &r.no_summary) {
            (Some(p), _) => items.push(Item {
                ok: present(p),
                run_id: id.clone(),
                text: format!("final summary {p}"),
            }),
            (None, why) => items.push(Item {
                ok: r.status == StageStatus::Blocked,
                run_id: id.clone(),
                text: format!(
                    "no final summary: {}",
                    why.as_deref().unwrap_or("no report")
                ),
            }),
        }
        match r.governance_passed {
            None => items.push(Item {
                ok: false,
                run_id: id.clone(),
                text: "governance pending: the run is in progress".into(),
            }),
            Some(passed) => {
                let gov = r.paths.governance_md.clone().unwrap_or_default();
                items.push(Item {
                    ok: present(&gov),
                    run_id: id.clone(),
                    text: if passed {
                        format!("governance pass: {gov}")
                    } else {
                        format!("governance FAIL ({} failed): {gov}", r.failed_checks)
                    },
                });
                if !passed {
                    let plan = r.paths.remediation_md.clone().unwrap_or_default();
                    items.push(Item {
                        ok: present(&plan),
                        run_id: id.clone(),
                        text: format!("remediation plan {plan}"),
                    });
                }
            }
        }
    }
    items
}
