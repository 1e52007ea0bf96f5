//! `ledger finalize`: golden documents from a fixed ledger, determinism across
//! clones, time zones, locales and umasks, `--check`, `verify --projections`,
//! `--commit`, and tables that survive hostile values.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{assert_input_error, assert_ok, TestEnv};

/// A gate workflow like a team's: writes a report, fails when a gate fails.
pub(crate) const GATES: &str = r#"#!/bin/sh
# usage: gates.sh FACTOR TAG SHARPE PASS2 [REASON]
set -eu
out="gate_results/production_gates_$2"
mkdir -p "$out"
reason=${5:-net sharpe at 2.0x costs}
cat > "$out/production_gates_report.json" <<JSON
{"factor": "$1", "strategy": "long_short_decile", "verdict": "$([ "$4" = true ] && echo pass || echo fail)",
 "metrics": {"sharpe": $3, "turnover": 0.37, "max_drawdown": -0.12},
 "gates": [
  {"name": "cost_1.5x", "cost_multiplier": 1.5, "passed": true, "value": $3, "threshold": 0.5, "reason": "net sharpe at 1.5x costs"},
  {"name": "cost_2.0x", "cost_multiplier": 2.0, "passed": $4, "value": 0.4, "threshold": 0.5, "reason": "$reason"}
 ],
 "walk_forward": {"shards": 4, "passed": 4}}
JSON
echo "gates done for $1"
[ "$4" = true ]
"#;

const HOSTILE_NOTES: &str = "pipe | back`tick` <b>html</b>\nsecond line";
const HOSTILE_OWNER: &str = "ann|bob `x`, \"q\"\nz";
const HOSTILE_FACTOR: &str = "mom|x `y` <i>z</i>";

/// Runs `ledger run` with a workflow, tag and extra flags.
pub(crate) fn run(env: &TestEnv, workflow: &str, tag: &str, extra: &[&str], cmd: &[&str]) -> i32 {
    let mut args = vec![
        "run",
        "--workflow",
        workflow,
        "--tag",
        tag,
        "--owner",
        "ann",
    ];
    args.extend_from_slice(extra);
    args.push("--");
    args.extend_from_slice(cmd);
    env.ledger(&args).code
}

/// Records run `tag` of workflow `gates` as aborted: `ledger run` is killed
/// once its command has written its line (so the log is the same every
/// time), then `ledger recover` closes it.
fn aborted_run(env: &TestEnv, tag: &str) {
    let mut child = env
        .command(&[
            "run",
            "--workflow",
            "gates",
            "--tag",
            tag,
            "--owner",
            "ann",
            "--",
            "sh",
            "-c",
            "echo started; sleep 3",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let suffix = format!("_{tag}");
    let started = || {
        std::fs::read_dir(env.repo.join("audit/workstation_runs"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                e.file_name().to_string_lossy().ends_with(&suffix)
                    && std::fs::read_to_string(e.path().join("run.log"))
                        .is_ok_and(|l| l == "started\n")
            })
    };
    while !started() {
        assert!(Instant::now() < deadline, "{tag} never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_ok(env.ledger(&["recover"]));
}

/// A ledger with passing, failing, blocked, aborted, DQ-skipped and hostile runs.
pub(crate) fn fixture() -> TestEnv {
    let env = TestEnv::init();
    std::fs::write(env.repo.join("gates.sh"), GATES).unwrap();
    // The strategy config is an input: stored with each run, diffed in reviews.
    let config = env.repo.join("ledger.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("inputs: []", "inputs: [strategy.yaml]"),
    )
    .unwrap();
    let gates = |args: &[&str]| -> Vec<String> {
        let mut v = vec!["sh".to_string(), "gates.sh".to_string()];
        v.extend(args.iter().map(|s| s.to_string()));
        v
    };

    fn as_refs(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    // 1. passing
    let g = gates(&["momentum", "pass1", "1.25", "true"]);
    assert_eq!(
        run(&env, "gates", "pass1", &["--notes", "first"], &as_refs(&g)),
        0
    );
    // 2. failing, same factor, changed config: the review compares with pass1
    std::fs::write(
        env.repo.join("strategy.yaml"),
        "factor: momentum\nlookback: 20\n",
    )
    .unwrap();
    let g = gates(&["momentum", "fail1", "0.75", "false"]);
    assert_eq!(run(&env, "gates", "fail1", &[], &as_refs(&g)), 1);
    // 3. blocked by preflight: the freeze file pins another commit
    std::fs::write(env.repo.join("freeze_gdeadbeef.json"), "{}\n").unwrap();
    let g = gates(&["momentum", "blocked1", "1.0", "true"]);
    let extra = ["--freeze-file", "freeze_gdeadbeef.json"];
    assert_eq!(run(&env, "gates", "blocked1", &extra, &as_refs(&g)), 1);
    // 4. DQ skipped on a workflow that requires it, hostile values everywhere
    let g = gates(&["value", "skip1", "0.9", "true"]);
    let extra = [
        "--skip-dq",
        "--skip-reason",
        "vendor feed late | see `TICKET-1`",
        "--notes",
        HOSTILE_NOTES,
    ];
    assert_eq!(
        run(&env, "production_gates", "skip1", &extra, &as_refs(&g)),
        0
    );
    // The reason holds a JSON `\n` escape: a newline in the decoded value.
    let g = gates(&[
        HOSTILE_FACTOR,
        "hostile1",
        "0.6",
        "false",
        "a|b\\nc `d` <script>",
    ]);
    let mut args = vec!["run", "--workflow", "gates", "--tag", "hostile1"];
    args.extend(["--owner", HOSTILE_OWNER, "--"]);
    args.extend(as_refs(&g));
    assert_eq!(env.ledger(&args).code, 1);
    // 5. aborted: ledger run is killed while its command runs, then recovered
    aborted_run(&env, "aborted1");
    env
}

/// Every projection file under `root`, by repository path.
pub(crate) fn projection_files(root: &Path, paths: &[String]) -> BTreeMap<String, Vec<u8>> {
    paths
        .iter()
        .map(|p| (p.clone(), std::fs::read(root.join(p)).unwrap_or_default()))
        .collect()
}

pub(crate) fn finalize_json(env: &TestEnv, cwd: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["finalize", "--json"];
    args.extend_from_slice(extra);
    let out = assert_ok(env.ledger_in(cwd, &args));
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    crate::schemas::assert_valid("finalize-outcome.schema.json", &v);
    v
}

pub(crate) fn written_paths(outcome: &Value) -> Vec<String> {
    outcome["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect()
}

/// Replaces what depends on the machine or on elapsed time.
fn redact(text: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_string();
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        let mut line = line.to_string();
        if !host.is_empty() {
            line = line.replace(&format!("on {host} ("), "on [HOST] (");
            line = line.replace(&format!("Host {host},"), "Host [HOST],");
        }
        line = replace_pattern(&line, "sha256:", 64, "[ID]");
        line = replace_number_before(&line, " cores)", "[N]");
        line = replace_number_before(&line, " ms", "[N]");
        line = replace_number_before(&line, " s |", "[N]");
        out.push_str(&line);
    }
    out
}

/// Replaces `prefix` followed by `len` hex digits with `with`.
fn replace_pattern(text: &str, prefix: &str, len: usize, with: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        let after = &rest[i + prefix.len()..];
        let hex = after.bytes().take_while(u8::is_ascii_hexdigit).count();
        out.push_str(&rest[..i]);
        if hex == len {
            out.push_str(with);
            rest = &after[len..];
        } else {
            out.push_str(prefix);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Replaces the number just before each `suffix` with `with`.
fn replace_number_before(text: &str, suffix: &str, with: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(suffix) {
        let head = &rest[..i];
        let digits = head
            .bytes()
            .rev()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        out.push_str(&head[..head.len() - digits]);
        out.push_str(if digits > 0 { with } else { "" });
        out.push_str(suffix);
        rest = &rest[i + suffix.len()..];
    }
    out.push_str(rest);
    out
}

/// Compares `files` (redacted) with `tests/golden/<name>/`, file for file;
/// `UPDATE_GOLDEN=1` rewrites the directory instead.
fn assert_golden(name: &str, files: &BTreeMap<String, Vec<u8>>) {
    #[allow(clippy::disallowed_methods)] // a test switch, not product behaviour
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if update {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let mut expected: Vec<String> = Vec::new();
    for (path, bytes) in files {
        let text = redact(&String::from_utf8(bytes.clone()).unwrap());
        let golden = dir.join(path);
        if update {
            std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
            std::fs::write(&golden, &text).unwrap();
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_else(|_| {
            panic!("no golden file for {path}; run with UPDATE_GOLDEN=1 and review the diff")
        });
        assert_eq!(
            text, want,
            "{path} differs from tests/golden/{name}/{path} (UPDATE_GOLDEN=1 rewrites it)"
        );
        expected.push(path.clone());
    }
    // No golden file is left without a document.
    let mut stack = vec![dir.clone()];
    let mut goldens = Vec::new();
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                goldens.push(p.strip_prefix(&dir).unwrap().display().to_string());
            }
        }
    }
    goldens.sort();
    assert_eq!(goldens, expected);
}

#[test]
fn documents_match_the_golden_files() {
    let env = fixture();
    let outcome = finalize_json(&env, &env.repo, &["--require-final-summary"]);
    let paths = written_paths(&outcome);
    let files = projection_files(&env.repo, &paths);
    assert_golden("finalize", &files);

    // Each kind of document is there, for each kind of run.
    let stage =
        String::from_utf8(files["docs/production_research/STAGE_AUDIT_LOG.md"].clone()).unwrap();
    for status in ["| pass |", "| fail |", "| blocked |", "| aborted |"] {
        assert!(stage.contains(status), "{status} missing:\n{stage}");
    }
    assert!(stage.contains("skipped by tester: vendor feed late \\| see \\`TICKET-1\\`"));
    for path in files
        .keys()
        .filter(|p| p.ends_with("governance_audit_check.json"))
    {
        let doc: Value = serde_json::from_slice(&files[path]).unwrap();
        crate::schemas::assert_valid("governance-check.schema.json", &doc);
        assert_eq!(doc["checks"].as_array().unwrap().len(), 10);
    }
    for (file, schema) in [
        (
            "audit/factor_registry/next_run_plan.json",
            "next-run-plan.schema.json",
        ),
        (
            "audit/session_handoff/handoff_readiness.json",
            "handoff-readiness.schema.json",
        ),
    ] {
        let doc: Value = serde_json::from_slice(&files[file]).unwrap();
        crate::schemas::assert_valid(schema, &doc);
    }
    for path in files
        .keys()
        .filter(|p| p.ends_with("governance_remediation_plan.json"))
    {
        let doc: Value = serde_json::from_slice(&files[path]).unwrap();
        crate::schemas::assert_valid("remediation-plan.schema.json", &doc);
    }
}

/// Reads every table of a Markdown text with pulldown-cmark (not comrak,
/// which wrote it): rows of cell texts.
fn tables(md: &str) -> Vec<Vec<Vec<String>>> {
    use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};
    let mut out = Vec::new();
    let mut table = Vec::new();
    let mut row: Vec<String> = Vec::new();
    let mut cell: Option<String> = None;
    for event in Parser::new_ext(md, Options::ENABLE_TABLES) {
        match event {
            Event::Start(Tag::Table(_)) => table = Vec::new(),
            Event::End(TagEnd::Table) => out.push(std::mem::take(&mut table)),
            Event::Start(Tag::TableHead | Tag::TableRow) => row = Vec::new(),
            Event::End(TagEnd::TableHead | TagEnd::TableRow) => {
                table.push(std::mem::take(&mut row))
            }
            Event::Start(Tag::TableCell) => cell = Some(String::new()),
            Event::End(TagEnd::TableCell) => row.push(cell.take().unwrap_or_default()),
            Event::Text(t) | Event::Code(t) | Event::InlineHtml(t) | Event::Html(t) => {
                if let Some(c) = cell.as_mut() {
                    c.push_str(&t);
                }
            }
            _ => {}
        }
    }
    out
}

#[test]
fn an_independent_parser_reads_every_table_with_hostile_values() {
    let env = fixture();
    let outcome = finalize_json(&env, &env.repo, &[]);
    let files = projection_files(&env.repo, &written_paths(&outcome));
    let runs = env.run_ids().len();
    let mut seen_owner = false;
    let mut seen_factor = false;
    let mut seen_reason = false;
    for (path, bytes) in files.iter().filter(|(p, _)| p.ends_with(".md")) {
        let md = String::from_utf8(bytes.clone()).unwrap();
        let tables = tables(&md);
        for table in &tables {
            let width = table[0].len();
            for (i, row) in table.iter().enumerate() {
                assert_eq!(
                    row.len(),
                    width,
                    "{path}: row {i} of a {width}-column table:\n{md}"
                );
            }
            seen_owner |= table
                .iter()
                .flatten()
                .any(|c| *c == HOSTILE_OWNER.replace('\n', " "));
            seen_factor |= table.iter().flatten().any(|c| c.contains(HOSTILE_FACTOR));
            seen_reason |= table.iter().flatten().any(|c| c == "a|b c `d` <script>");
        }
        if path.ends_with("STAGE_AUDIT_LOG.md") {
            assert_eq!(tables.len(), 1, "{md}");
            assert_eq!(tables[0].len(), runs + 1, "{md}");
            assert_eq!(tables[0][0].len(), 12, "{md}");
        }
        if path.ends_with("governance_audit_check.md") {
            assert_eq!(tables[0].len(), 11, "{path}:\n{md}");
        }
        // Raw HTML from a value never reaches the document as HTML.
        use pulldown_cmark::{Event, Options, Parser};
        for event in Parser::new_ext(&md, Options::ENABLE_TABLES) {
            assert!(
                !matches!(event, Event::Html(_) | Event::InlineHtml(_)),
                "{path}: {event:?} in\n{md}"
            );
        }
    }
    assert!(seen_owner, "the hostile owner is not one intact cell");
    assert!(
        seen_reason,
        "the hostile gate reason is not one intact cell"
    );
    assert!(seen_factor, "the hostile factor is not intact in a cell");
}

#[test]
fn projections_are_byte_identical_across_clones_zones_locales_and_umasks() {
    let env = fixture();
    let first = finalize_json(&env, &env.repo, &[]);
    let paths = written_paths(&first);
    let a = projection_files(&env.repo, &paths);

    // A second finalize changes nothing: no file, no record.
    let tip = env.ledger_tip();
    let again = finalize_json(&env, &env.repo, &[]);
    assert!(again["files"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["changed"] == false));
    assert_eq!(again["finalize"]["record"], Value::Null);
    assert_eq!(env.ledger_tip(), tip);
    assert_ok(env.ledger(&["finalize", "--check"]));

    // A clone with the same history, another zone, locale, umask and cwd.
    let clone = env.dir.path().join("clone");
    env.clone_to(&clone, true, &["ledger.yaml", ".ledger/allowed_signers"]);
    let sub = clone.join("nested/dir");
    std::fs::create_dir_all(&sub).unwrap();
    let mut cmd = env.command_after("umask 077", &["finalize", "--json"]);
    cmd.current_dir(&sub)
        .env("TZ", "Asia/Tokyo")
        .env("LANG", "C")
        .env("LC_ALL", "C");
    let out: crate::common::Run = cmd.output().unwrap().into();
    assert_eq!(out.code, 0, "{out:?}");
    let b = projection_files(&clone, &paths);
    for (path, bytes) in &a {
        assert!(!bytes.is_empty(), "{path} is empty");
        assert_eq!(
            Some(bytes),
            b.get(path),
            "{path} differs between the clones"
        );
    }
    // umask 077 took effect, so the test really varied it.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(clone.join(&paths[0]))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "{mode:o}");

    // A hand edit: --check shows a diff and fails, verify --projections too.
    let stage = env.repo.join("docs/production_research/STAGE_AUDIT_LOG.md");
    let mut text = std::fs::read_to_string(&stage).unwrap();
    text = text.replacen("| fail |", "| pass |", 1);
    std::fs::write(&stage, text).unwrap();
    let check = env.ledger(&["finalize", "--check"]);
    assert_eq!(check.code, 1, "{check:?}");
    assert!(check
        .stdout
        .contains("--- a/docs/production_research/STAGE_AUDIT_LOG.md"));
    assert!(check.stdout.contains("-| "), "{check:?}");
    assert!(check.stdout.contains("| pass |"), "{check:?}");
    let checked: Value =
        serde_json::from_str(&env.ledger(&["finalize", "--check", "--json"]).stdout).unwrap();
    crate::schemas::assert_valid("finalize-check.schema.json", &checked);
    assert_eq!(checked["clean"], false);
    let verify = env.ledger(&["verify", "--projections"]);
    assert_eq!(verify.code, 1, "{verify:?}");
    assert!(
        verify.stdout.contains("[projection_modified]"),
        "{verify:?}"
    );
    assert!(verify.stdout.contains("[projection_stale]"), "{verify:?}");
    // finalize repairs it; verify --projections is clean again.
    assert_ok(env.ledger(&["finalize"]));
    assert_ok(env.ledger(&["verify", "--projections"]));
    fsck(&env.repo, &env);
}

pub(crate) fn fsck(repo: &Path, env: &TestEnv) {
    let out = env.git_output(&[
        "-C",
        repo.to_str().unwrap(),
        "fsck",
        "--strict",
        "--no-dangling",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
}

#[test]
fn a_new_run_makes_the_projection_stale_until_finalized() {
    let env = TestEnv::init();
    assert_ok(env.run("a", &[], &["true"]));
    assert_ok(env.ledger(&["finalize"]));
    assert_ok(env.ledger(&["verify", "--projections"]));
    assert_ok(env.run("b", &[], &["true"]));
    let verify = env.ledger(&["verify", "--projections"]);
    assert_eq!(verify.code, 1, "{verify:?}");
    assert!(verify.stdout.contains("[projection_stale]"), "{verify:?}");
    assert_eq!(env.ledger(&["finalize", "--check"]).code, 1);
    let out = assert_ok(env.ledger(&["finalize"]));
    assert!(out.stdout.contains("recorded finalize"), "{out:?}");
    assert_ok(env.ledger(&["verify", "--projections"]));
    // Two finalize records, each verified as part of the writer's chain.
    let report: Value = serde_json::from_str(&env.ok(&["verify", "--json"]).stdout).unwrap();
    assert_eq!(report["finalizes"], 2);
}

#[test]
fn finalize_commit_commits_exactly_the_projection_files() {
    let env = TestEnv::init();
    assert_ok(env.run("a", &[], &["true"]));
    // Something else staged: refused, nothing written, ledger unchanged.
    std::fs::write(env.repo.join("other.txt"), "x\n").unwrap();
    env.git(&["add", "other.txt"]);
    let tip = env.ledger_tip();
    let out = env.ledger(&["finalize", "--commit"]);
    assert_input_error(&out, "other changes are staged (other.txt)");
    assert_eq!(env.ledger_tip(), tip);
    assert!(!env.repo.join("docs").exists());
    env.git(&["reset", "-q", "other.txt"]);

    let head_before = env.git(&["rev-parse", "HEAD"]);
    let out = assert_ok(env.ledger(&["finalize", "--commit"]));
    assert!(
        out.stdout.contains("committed the projection files"),
        "{out:?}"
    );
    let files = env.git(&["show", "--name-only", "--format=%s", "HEAD"]);
    let mut lines = files.lines();
    let subject = lines.next().unwrap();
    assert!(subject.starts_with("ledger finalize: projections at ledger head "));
    let committed: Vec<&str> = lines.filter(|l| !l.is_empty()).collect();
    assert!(committed.contains(&"docs/production_research/STAGE_AUDIT_LOG.md"));
    assert!(
        committed
            .iter()
            .all(|p| p.starts_with("docs/") || p.starts_with("audit/")),
        "{committed:?}"
    );
    assert!(!committed.contains(&"other.txt"));
    assert_eq!(env.git(&["rev-parse", "HEAD~1"]), head_before);
    // other.txt is untouched and untracked.
    assert!(env.git(&["status", "--porcelain"]).contains("?? other.txt"));
    // Nothing new: nothing to commit.
    let again = assert_ok(env.ledger(&["finalize", "--commit"]));
    assert!(again.stdout.contains("nothing to commit"), "{again:?}");
}

#[test]
fn finalize_tag_writes_the_stage_log_and_that_run_only() {
    let env = fixture();
    let outcome = finalize_json(&env, &env.repo, &["--tag", "pass1"]);
    let paths = written_paths(&outcome);
    assert!(paths.contains(&"docs/production_research/STAGE_AUDIT_LOG.md".to_string()));
    assert!(
        paths
            .iter()
            .filter(|p| !p.starts_with("docs/"))
            .all(|p| p.contains("pass1")),
        "{paths:?}"
    );
    assert_eq!(paths.len(), 7, "{paths:?}");
    assert_input_error(
        &env.ledger(&["finalize", "--tag", "nope"]),
        "no run with tag",
    );
}

#[test]
fn finalize_refuses_to_write_through_a_symlink() {
    let env = TestEnv::init();
    assert_ok(env.run("a", &[], &["true"]));
    let outside = env.dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, env.repo.join("docs")).unwrap();
    let tip = env.ledger_tip();
    let out = env.ledger(&["finalize"]);
    assert_input_error(&out, "docs is a symlink");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    assert_eq!(env.ledger_tip(), tip);
}

#[test]
fn a_generated_ledger_verifies_and_finalizes() {
    let env = TestEnv::new();
    let dir = env.dir.path().join("gen");
    let out = assert_ok(env.ledger(&[
        "generate",
        dir.to_str().unwrap(),
        "--runs",
        "90",
        "--writers",
        "2",
        "--per-commit",
        "7",
    ]));
    assert!(out.stdout.starts_with("generated 90 runs ("), "{out:?}");
    let repo = dir.clone();
    assert!(repo.join("keys/writer0").exists());
    let status = std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=all"])
        .current_dir(&repo)
        .output()
        .unwrap();
    assert!(status.status.success());
    assert_eq!(
        String::from_utf8_lossy(&status.stdout),
        "",
        "a clean work tree; the keys are excluded"
    );
    // Enough runs that verify checks them on several threads.
    let report: Value =
        serde_json::from_str(&assert_ok(env.ledger_in(&repo, &["verify", "--json"])).stdout)
            .unwrap();
    assert_eq!(report["runs"], 90);
    assert_eq!(report["writers"], 2);
    assert_eq!(report["ok"], true, "{report:#}");
    fsck(&repo, &env);
    let mut cmd = env.command(&["finalize", "--json"]);
    cmd.current_dir(&repo)
        .env("LEDGER_KEY", dir.join("keys/writer1"));
    let out: crate::common::Run = cmd.output().unwrap().into();
    assert_eq!(out.code, 0, "{out:?}");
    let outcome: Value = serde_json::from_str(&out.stdout).unwrap();
    let stage =
        std::fs::read_to_string(repo.join("docs/production_research/STAGE_AUDIT_LOG.md")).unwrap();
    assert_eq!(
        stage.lines().filter(|l| l.starts_with("| 2026-")).count(),
        90
    );
    assert!(outcome["files"].as_array().unwrap().len() > 300);
    assert_ok(env.ledger_in(&repo, &["verify", "--projections"]));
    // Ready for every command without flags: ledger.yaml names a key.
    for args in [&["finalize"][..], &["log"], &["status"]] {
        let mut cmd = env.command(args);
        cmd.current_dir(&repo).env_remove("LEDGER_KEY");
        let out: crate::common::Run = cmd.output().unwrap().into();
        assert_eq!(out.code, 0, "{args:?}: {out:?}");
    }
    // The schema check at drop reads this env's own repo, not the generated one;
    // check the generated records here.
    let paths = env.git(&[
        "-C",
        repo.to_str().unwrap(),
        "ls-tree",
        "-r",
        "--name-only",
        "refs/heads/ledger",
    ]);
    for path in paths
        .lines()
        .filter(|p| p.ends_with(".dsse.json"))
        .step_by(13)
    {
        let bytes = env.git(&[
            "-C",
            repo.to_str().unwrap(),
            "show",
            &format!("refs/heads/ledger:{path}"),
        ]);
        crate::schemas::assert_valid_record(&crate::common::decode_payload(bytes.as_bytes()));
    }
}

#[test]
fn the_registry_reads_back_with_an_independent_csv_reader_and_the_leaderboard_ranks_by_the_primary_metric(
) {
    let env = fixture();
    assert_ok(env.ledger(&["finalize"]));
    let csv_path = env
        .repo
        .join("audit/factor_registry/factor_experiment_registry.csv");
    // Python's csv module, not the crate that wrote the file.
    let script =
        "import csv,json,sys\nprint(json.dumps(list(csv.reader(open(sys.argv[1], newline='')))))";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&csv_path)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Vec<String>> = serde_json::from_slice(&out.stdout).unwrap();
    let header = &rows[0];
    assert_eq!(
        &header[..6],
        ["run_id", "tag", "date", "owner", "workflow", "factor"]
    );
    assert!(header.contains(&"metric:sharpe".to_string()), "{header:?}");
    // One row per run with a valid report: pass1, fail1, skip1, hostile1.
    assert_eq!(rows.len(), 5, "{rows:?}");
    assert!(rows.iter().all(|r| r.len() == header.len()), "{rows:?}");
    let owner = header.iter().position(|h| h == "owner").unwrap();
    let factor = header.iter().position(|h| h == "factor").unwrap();
    let hostile = rows.iter().find(|r| r[1] == "hostile1").unwrap();
    assert_eq!(
        hostile[owner], HOSTILE_OWNER,
        "commas, quotes and newlines survive"
    );
    assert_eq!(hostile[factor], HOSTILE_FACTOR);
    // The leaderboard: momentum first (its best sharpe 1.25 beats value's 0.9
    // and the hostile factor's 0.6; higher is better), with 1 of 2 runs passed.
    let board = std::fs::read_to_string(
        env.repo
            .join("audit/factor_registry/factor_experiment_leaderboard.md"),
    )
    .unwrap();
    let t = &tables(&board)[0];
    let order: Vec<&str> = t[1..].iter().map(|r| r[1].as_str()).collect();
    assert_eq!(order, ["momentum", "value", HOSTILE_FACTOR], "{board}");
    assert_eq!(t[1][2], "1.25");
    assert_eq!(t[1][5], "1/2");
    assert_eq!(t[1][7], "1.25 → 0.75");
}

#[test]
fn failure_patterns_group_every_kind_of_failure() {
    let env = fixture();
    assert_ok(env.ledger(&["finalize"]));
    let csv = std::fs::read_to_string(env.repo.join("audit/failure_patterns/failure_patterns.csv"))
        .unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let keys: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (r[0].to_string(), r[1].to_string(), r[2].to_string()))
        .collect();
    // fail1's gate (numbers stripped), hostile1's gate, blocked1's preflight,
    // aborted1's death: four patterns, once each; skip1 and pass1 add none.
    assert_eq!(keys.len(), 4, "{keys:?}");
    assert!(
        keys.contains(&(
            "cost_2.0x".into(),
            "net sharpe at <n>x costs".into(),
            "1".into()
        )),
        "{keys:?}"
    );
    assert!(
        keys.iter().any(|k| k.0 == "preflight:freeze_commit"),
        "{keys:?}"
    );
    assert!(keys.iter().any(|k| k.0 == "aborted"), "{keys:?}");
    let fail1 = rows
        .iter()
        .find(|r| &r[1] == "net sharpe at <n>x costs")
        .unwrap();
    assert_eq!(&fail1[7], "momentum", "factors affected");
    assert_eq!(&fail1[4], "fail1", "first seen");
    let md = std::fs::read_to_string(
        env.repo
            .join("audit/failure_patterns/failure_pattern_summary.md"),
    )
    .unwrap();
    assert_eq!(tables(&md)[0].len(), 5, "{md}");
}

#[test]
fn the_queue_ranks_near_misses_by_metric_and_the_plan_is_ready_to_paste() {
    let env = fixture();
    assert_ok(env.ledger(&["finalize"]));
    let dir = env.repo.join("audit/factor_registry");
    let queue = std::fs::read_to_string(dir.join("factor_candidate_queue.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(queue.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    // momentum and the hostile factor are both near misses (score 3);
    // momentum ranks first for its better sharpe (0.75 > 0.6); value passed
    // everything, so it is ready for promotion and not queued.
    let order: Vec<(&str, &str, &str)> = rows.iter().map(|r| (&r[1], &r[2], &r[3])).collect();
    assert_eq!(
        order,
        [
            ("momentum", "queued", "3"),
            (HOSTILE_FACTOR, "queued", "3"),
            ("value", "ready", "0")
        ]
    );
    let plan: Value =
        serde_json::from_slice(&std::fs::read(dir.join("next_run_plan.json")).unwrap()).unwrap();
    assert_eq!(plan["factor"], "momentum");
    // The tag's date is the newest run's, never the clock.
    assert_eq!(plan["tag"], "committee_2026-11-22_run1");
    assert_eq!(plan["runners_up"][0]["factor"], HOSTILE_FACTOR);
    let command = plan["command"].as_str().unwrap();
    assert!(
        command.starts_with("ledger run --workflow gates --tag committee_2026-11-22_run1 --owner ann --freeze-file freeze_2026-11-22_g"),
        "{command}"
    );
    assert!(
        command.ends_with("-- sh gates.sh momentum fail1 0.75 false"),
        "{command}"
    );
}

#[test]
fn a_factor_failing_three_times_the_same_way_is_parked_with_its_pattern() {
    let env = TestEnv::init();
    std::fs::write(env.repo.join("gates.sh"), GATES).unwrap();
    // carry fails cost_2.0x three times (sharpe differs, the cause does not);
    // quality is a near miss once; value passes.
    for (i, sharpe) in ["0.8", "0.7", "0.9"].iter().enumerate() {
        let tag = format!("carry{i}");
        let out = env.ledger(&[
            "run",
            "--workflow",
            "gates",
            "--tag",
            &tag,
            "--owner",
            "ann",
            "--",
            "sh",
            "gates.sh",
            "carry",
            &tag,
            sharpe,
            "false",
        ]);
        assert_eq!(out.code, 1, "{out:?}");
    }
    let out = env.ledger(&[
        "run",
        "--workflow",
        "gates",
        "--tag",
        "q1",
        "--owner",
        "ann",
        "--",
        "sh",
        "gates.sh",
        "quality",
        "q1",
        "1.1",
        "false",
    ]);
    assert_eq!(out.code, 1, "{out:?}");
    assert_ok(env.ledger(&[
        "run",
        "--workflow",
        "gates",
        "--tag",
        "v1",
        "--owner",
        "ann",
        "--",
        "sh",
        "gates.sh",
        "value",
        "v1",
        "1.0",
        "true",
    ]));
    assert_ok(env.ledger(&["finalize"]));
    let dir = env.repo.join("audit/factor_registry");
    let queue = std::fs::read_to_string(dir.join("factor_candidate_queue.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(queue.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let states: Vec<(&str, &str)> = rows.iter().map(|r| (&r[1], &r[2])).collect();
    assert_eq!(
        states,
        [
            ("quality", "queued"),
            ("value", "ready"),
            ("carry", "parked")
        ]
    );
    assert!(
        rows[2][7].contains("last 3 runs all failed with cost_2.0x: net sharpe at <n>x costs"),
        "{}",
        &rows[2][7]
    );
    let plan: Value =
        serde_json::from_slice(&std::fs::read(dir.join("next_run_plan.json")).unwrap()).unwrap();
    crate::schemas::assert_valid("next-run-plan.schema.json", &plan);
    assert_eq!(plan["factor"], "quality");
    assert_eq!(plan["runners_up"], serde_json::json!([]));
    let patterns =
        std::fs::read_to_string(env.repo.join("audit/failure_patterns/failure_patterns.csv"))
            .unwrap();
    let mut reader = csv::Reader::from_reader(patterns.as_bytes());
    let first = reader.records().next().unwrap().unwrap();
    assert_eq!(
        (&first[0], &first[2], &first[7]),
        ("cost_2.0x", "4", "carry;quality")
    );
}

/// The issue's realistic fixture: 30 runs over 6 factors, passing, near
/// misses, a factor failing the same way again and again, blocked, aborted
/// and DQ-skipped runs; the queue's order is stated in words below.
#[test]
fn thirty_runs_over_six_factors_rank_as_the_rules_say() {
    let env = TestEnv::init();
    std::fs::write(env.repo.join("gates.sh"), GATES).unwrap();
    let n = std::cell::Cell::new(0);
    let run = |workflow: &str, factor: &str, sharpe: &str, pass: bool, extra: &[&str]| {
        n.set(n.get() + 1);
        let tag = format!("r{:02}", n.get());
        let mut args = vec![
            "run",
            "--workflow",
            workflow,
            "--tag",
            &tag,
            "--owner",
            "ann",
        ];
        args.extend_from_slice(extra);
        args.extend([
            "--",
            "sh",
            "gates.sh",
            factor,
            &tag,
            sharpe,
            if pass { "true" } else { "false" },
        ]);
        let out = env.ledger(&args);
        assert_eq!(out.code, if pass { 0 } else { 1 }, "{out:?}");
    };
    // momentum: five near misses, then a pass: ready for promotion.
    for s in ["0.6", "0.7", "0.8", "0.9", "1.0"] {
        run("gates", "momentum", s, false, &[]);
    }
    run("gates", "momentum", "1.1", true, &[]);
    // value: five failures of one cause: parked.
    for s in ["0.5", "0.55", "0.52", "0.51", "0.53"] {
        run("gates", "value", s, false, &[]);
    }
    // quality: alternating, last a near miss that improved: +3 +2 = 5.
    for (s, p) in [
        ("0.9", true),
        ("0.7", false),
        ("0.95", true),
        ("0.6", false),
        ("0.8", false),
    ] {
        run("gates", "quality", s, p, &[]);
    }
    // carry: last a near miss that got worse: +3.
    for (s, p) in [
        ("1.2", true),
        ("1.1", true),
        ("0.9", false),
        ("1.0", true),
        ("0.7", false),
    ] {
        run("gates", "carry", s, p, &[]);
    }
    // size: DQ skipped twice on a workflow that requires it, both pass: ready.
    let skip = ["--skip-dq", "--skip-reason", "vendor feed late"];
    run("production_gates", "size", "1.3", true, &skip);
    run("production_gates", "size", "1.4", true, &skip);
    // low_vol: a near miss with a lower sharpe than carry's last: +3, after carry.
    run("gates", "low_vol", "0.65", false, &[]);
    // Three blocked runs (the freeze file pins another commit) and two more
    // of low_vol: 30 runs in all.
    std::fs::write(env.repo.join("freeze_gdeadbeef.json"), "{}\n").unwrap();
    for _ in 0..3 {
        n.set(n.get() + 1);
        let tag = format!("r{:02}", n.get());
        let out = env.ledger(&[
            "run",
            "--workflow",
            "gates",
            "--tag",
            &tag,
            "--owner",
            "ann",
            "--freeze-file",
            "freeze_gdeadbeef.json",
            "--",
            "true",
        ]);
        assert_eq!(out.code, 1, "{out:?}");
    }
    run("gates", "low_vol", "0.6", false, &[]);
    run("gates", "low_vol", "0.62", false, &[]);
    // One aborted run: killed once its command has started, then recovered.
    n.set(n.get() + 1);
    aborted_run(&env, &format!("r{:02}", n.get()));
    assert_eq!(env.run_ids().len(), 30);

    assert_ok(env.ledger(&["finalize"]));
    let dir = env.repo.join("audit/factor_registry");
    let queue = std::fs::read_to_string(dir.join("factor_candidate_queue.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(queue.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let order: Vec<(&str, &str, &str)> = rows.iter().map(|r| (&r[1], &r[2], &r[3])).collect();
    // quality first (near miss and improving, 5); then carry (near miss, 3);
    // then the ready factors, by their last sharpe (size 1.4, momentum 1.1);
    // then the parked ones: low_vol's three runs and value's last three all
    // failed cost_2.0x for the same reason (low_vol first: 0.62 > 0.53).
    assert_eq!(
        order,
        [
            ("quality", "queued", "5"),
            ("carry", "queued", "3"),
            ("size", "ready", "0"),
            ("momentum", "ready", "0"),
            ("low_vol", "parked", "0"),
            ("value", "parked", "0"),
        ]
    );
    assert!(
        rows[4][7].contains("net sharpe at <n>x costs"),
        "{}",
        &rows[4][7]
    );
    let plan: Value =
        serde_json::from_slice(&std::fs::read(dir.join("next_run_plan.json")).unwrap()).unwrap();
    assert_eq!(plan["factor"], "quality");
    assert_eq!(plan["runners_up"][0]["factor"], "carry");
    assert_eq!(plan["runners_up"].as_array().unwrap().len(), 1);
    // The registry has a row per run with a report: 26 of 30 (not the three
    // blocked runs nor the aborted one).
    let registry = std::fs::read_to_string(dir.join("factor_experiment_registry.csv")).unwrap();
    assert_eq!(registry.lines().count(), 1 + 26, "{registry}");
    // Failure patterns: one cause groups 18 runs over 5 factors (momentum 5,
    // value 5, low_vol 3, quality 3, carry 2).
    let patterns =
        std::fs::read_to_string(env.repo.join("audit/failure_patterns/failure_patterns.csv"))
            .unwrap();
    let mut reader = csv::Reader::from_reader(patterns.as_bytes());
    let first = reader.records().next().unwrap().unwrap();
    assert_eq!(&first[0], "cost_2.0x");
    assert_eq!(&first[2], "18");
    assert_eq!(&first[7], "carry;low_vol;momentum;quality;value");
    // The documents of the whole ledger, byte for byte (the per-run
    // documents have their golden files in the fixture of part 1).
    let outcome = finalize_json(&env, &env.repo, &[]);
    let aggregate: Vec<String> = written_paths(&outcome)
        .into_iter()
        .filter(|p| !p.starts_with("gate_results/") && !p.starts_with("audit/workstation_runs/"))
        .collect();
    assert_eq!(aggregate.len(), 11, "{aggregate:?}");
    assert_golden("finalize-30-runs", &projection_files(&env.repo, &aggregate));
    // Determinism holds for all of it: a second finalize changes nothing.
    let again: Value =
        serde_json::from_str(&assert_ok(env.ledger(&["finalize", "--json"])).stdout).unwrap();
    assert!(again["files"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["changed"] == false));
}

#[test]
fn finalize_reuses_what_it_verified_and_still_sees_a_rewritten_record() {
    let env = TestEnv::init();
    std::fs::write(env.repo.join("gates.sh"), GATES).unwrap();
    let gates = |factor: &str, tag: &str, pass: &str| {
        let code = run(
            &env,
            "gates",
            tag,
            &[],
            &["sh", "gates.sh", factor, tag, "1.1", pass],
        );
        assert_eq!(code, if pass == "true" { 0 } else { 1 });
    };
    gates("momentum", "c1", "true");
    gates("value", "c2", "false");
    assert_ok(env.ledger(&["finalize"]));
    let cache = env.repo.join(".git/ledger/finalize-cache.json");
    let first: Value = serde_json::from_slice(&std::fs::read(&cache).unwrap()).unwrap();
    assert_eq!(first["head"].as_str().unwrap().len(), 40);

    // A new run: the next finalize verifies only it, and writes exactly what
    // a finalize without the cache writes.
    gates("momentum", "c3", "false");
    let out = assert_ok(env.ledger(&["finalize"]));
    assert!(out.stdout.contains(", 3 runs"), "{out:?}");
    assert!(
        out.stdout.contains(&format!(
            "verified what the ledger added since {}",
            first["head"].as_str().unwrap()
        )),
        "{out:?}"
    );
    std::fs::remove_file(&cache).unwrap();
    assert_ok(env.ledger(&["finalize", "--check"]));
    assert!(!cache.exists(), "--check never writes the cache");
    assert_ok(env.ledger(&["finalize"]));
    assert!(cache.exists());

    // An old record is edited behind ledger's back: the cached verification
    // does not hide it. The run's governance fails on the bad signature, and
    // the rewrite of history is named.
    let ids = env.run_ids();
    let file = format!("runs/{}/context.dsse.json", ids[0]);
    let envelope = env.ledger_file(&file);
    let mut payload = crate::common::decode_payload(&envelope);
    payload["predicate"]["notes"] = Value::String("edited".into());
    env.tamper(
        &[(
            &file,
            Some(&crate::common::with_payload(&envelope, &payload)),
        )],
        Some(&env.key),
    );
    let out = env.ledger(&["finalize", "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    let outcome: Value = serde_json::from_str(&out.stdout).unwrap();
    crate::schemas::assert_valid("finalize-outcome.schema.json", &outcome);
    assert_eq!(
        outcome["verified_since"],
        Value::Null,
        "a rewrite means a whole verification"
    );
    let gov: Value = serde_json::from_slice(
        &std::fs::read(env.repo.join(format!(
            "audit/workstation_runs/{}/governance_audit_check.json",
            ids[0]
        )))
        .unwrap(),
    )
    .unwrap();
    let text = gov.to_string();
    assert!(text.contains("bad_signature"), "{text}");
    // The same documents as a finalize that verifies everything.
    assert_ok(env.ledger(&["finalize", "--check"]));
}

/// Runs whose documents must be rendered again are read again, each with
/// the previous run of its factor (itself maybe not rendered): rendering
/// some runs of a ledger on two threads gives the bytes of rendering all.
#[test]
fn rendering_some_runs_again_gives_the_bytes_of_rendering_all() {
    let env = TestEnv::new();
    let dir = env.dir.path().join("gen");
    assert_ok(env.ledger(&["generate", dir.to_str().unwrap(), "--runs", "300"]));
    let finalize = |extra: &[&str]| -> Value {
        let mut args = vec!["finalize", "--json"];
        args.extend_from_slice(extra);
        let mut cmd = env.command(&args);
        cmd.current_dir(&dir).env_remove("LEDGER_KEY");
        let out: crate::common::Run = cmd.output().unwrap().into();
        assert_eq!(out.code, 0, "{out:?}");
        serde_json::from_str(&out.stdout).unwrap()
    };
    let paths = written_paths(&finalize(&["--no-cache"]));
    let want = projection_files(&dir, &paths);
    finalize(&[]);
    let reviews: Vec<&String> = paths
        .iter()
        .filter(|p| p.ends_with("run_review.md"))
        .collect();
    assert!(reviews.len() > 200, "{}", reviews.len());
    let mut removed = Vec::new();
    for (i, path) in reviews.into_iter().enumerate() {
        if i % 3 != 0 {
            std::fs::remove_file(dir.join(path)).unwrap();
            removed.push(path.clone());
        }
    }
    let outcome = finalize(&[]);
    let mut changed: Vec<String> = outcome["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["changed"] == true)
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect();
    changed.sort();
    removed.sort();
    assert_eq!(changed, removed, "only the missing reviews are written");
    let got = projection_files(&dir, &paths);
    for (path, bytes) in &want {
        assert!(
            got.get(path) == Some(bytes),
            "{path} differs after rendering it alone"
        );
    }
    assert_eq!(got.len(), want.len());
}

#[test]
fn finalize_document_caches_never_change_a_result() {
    let env = TestEnv::init();
    std::fs::write(env.repo.join("gates.sh"), GATES).unwrap();
    let gates = |factor: &str, tag: &str, pass: &str| {
        run(
            &env,
            "gates",
            tag,
            &[],
            &["sh", "gates.sh", factor, tag, "1.1", pass],
        )
    };
    gates("momentum", "c1", "true");
    gates("value", "c2", "false");
    let docs = |outcome: &Value| projection_files(&env.repo, &written_paths(outcome));
    finalize_json(&env, &env.repo, &[]);
    // With the caches, then without them: the same files, nothing rewritten.
    let agree = |what: &str| {
        let cached = finalize_json(&env, &env.repo, &[]);
        let fresh = finalize_json(&env, &env.repo, &["--no-cache"]);
        assert_eq!(docs(&cached), docs(&fresh), "{what}");
        assert!(
            fresh["files"]
                .as_array()
                .unwrap()
                .iter()
                .all(|f| f["changed"] == false),
            "{what}: --no-cache found something to rewrite: {fresh:#}"
        );
        assert_ok(env.ledger(&["finalize", "--check"]));
        cached
    };
    let ledger_dir = env.repo.join(".git/ledger");
    agree("after the first finalize");
    assert!(ledger_dir.join("run-docs.jsonl").exists());
    assert!(ledger_dir.join("written.jsonl").exists());
    let entries = ledger_dir.join("entries.jsonl");
    let kept = std::fs::read_to_string(&entries).unwrap();
    assert_eq!(kept.lines().count(), 3, "a header and both runs: {kept}");

    // A new run of the same factor: its review compares with c1.
    gates("momentum", "c3", "false");
    let outcome = agree("after a new run");
    let review = docs(&outcome)
        .into_iter()
        .find(|(p, _)| p.contains("production_gates_c3") && p.ends_with("run_review.md"))
        .expect("c3 has a run review");
    assert!(String::from_utf8_lossy(&review.1).contains("c1"));

    // A new run writes its report where c3 did: c3's documents move to
    // names with its run id, so its kept stage log row changes though its
    // entry's key does not.
    let before_shared = docs(&outcome);
    run(
        &env,
        "gates",
        "c4",
        &[],
        &["sh", "gates.sh", "value", "c3", "1.3", "true"],
    );
    let shared = docs(&agree("after a new run in c3's report directory"));
    let renamed = |files: &std::collections::BTreeMap<String, Vec<u8>>| {
        files
            .keys()
            .filter(|p| p.contains("production_gates_c3/") && p.contains("final_summary."))
            .count()
    };
    assert_eq!(renamed(&before_shared), 1);
    assert_eq!(renamed(&shared), 2, "c3 and c4 each have a summary there");

    // The caches corrupted: digests that do not match, or garbage.
    let docs_cache = ledger_dir.join("run-docs.jsonl");
    let text = std::fs::read_to_string(&docs_cache).unwrap();
    let zeroed: String = text
        .split("\"sha256\":\"")
        .enumerate()
        .map(|(i, part)| match i {
            0 => part.to_string(),
            _ => format!("\"sha256\":\"{}{}", "0".repeat(64), &part[64..]),
        })
        .collect();
    assert_ne!(zeroed, text);
    std::fs::write(&docs_cache, zeroed).unwrap();
    agree("run documents cache with wrong digests");
    std::fs::write(&docs_cache, "{\"format\":1}\nnot json\n").unwrap();
    std::fs::write(ledger_dir.join("written.jsonl"), [0xff, 0xfe, b'\n']).unwrap();
    agree("garbage caches");

    // Kept entries damaged: an entry's text changed under its digest (the
    // run's status and its failed checks), cut short, or garbage.
    let kept = std::fs::read_to_string(&entries).unwrap();
    assert_eq!(kept.lines().count(), 5, "a header and four runs: {kept}");
    let damaged = kept.replacen("\"status\":\"fail\"", "\"status\":\"pass\"", 1);
    let damaged = damaged.replacen("\"failed\":[{", "\"failed\":[],\"x\":[{", 1);
    assert_ne!(damaged, kept);
    std::fs::write(&entries, damaged).unwrap();
    agree("kept entries changed under their digests");
    let kept = std::fs::read_to_string(&entries).unwrap();
    std::fs::write(&entries, &kept[..kept.len() * 2 / 3]).unwrap();
    agree("kept entries cut short");
    std::fs::write(&entries, "{\"format\":1}\n{\"key\":1}\n").unwrap();
    agree("kept entries garbage");
    assert_eq!(std::fs::read_to_string(&entries).unwrap(), kept, "rebuilt");

    // A document edited behind ledger's back, same size and modification
    // time: the change time gives it away and finalize restores it.
    let outcome = agree("caches rebuilt");
    let (path, want) = docs(&outcome)
        .into_iter()
        .find(|(p, _)| p.ends_with("governance_audit_check.md"))
        .unwrap();
    let file = env.repo.join(&path);
    let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
    let mut edited = want.clone();
    let at = edited.iter().position(|b| b.is_ascii_alphabetic()).unwrap();
    edited[at] = if edited[at] == b'x' { b'y' } else { b'x' };
    std::fs::write(&file, &edited).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let outcome = finalize_json(&env, &env.repo, &[]);
    assert_eq!(std::fs::read(&file).unwrap(), want, "{path} restored");
    assert!(outcome["files"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["path"] == path.as_str() && f["changed"] == true));
    let before = docs(&agree("after a restore"));

    // Trust changes and the ledger does not: verify finds fault with every
    // run (its key is no longer trusted), though no run's tree changed.
    let signers = env.repo.join(".ledger/allowed_signers");
    let trusted = std::fs::read_to_string(&signers).unwrap();
    let blob = |key: &std::path::Path| {
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        public.split_whitespace().nth(1).unwrap().to_string()
    };
    let stranger = env.dir.path().join("stranger");
    env.keygen(&stranger);
    assert!(trusted.contains(&blob(&env.key)));
    std::fs::write(&signers, trusted.replace(&blob(&env.key), &blob(&stranger))).unwrap();
    let untrusted = docs(&agree("after the writer's key lost its trust"));
    let stage_log = |files: &std::collections::BTreeMap<String, Vec<u8>>| {
        let (_, bytes) = files
            .iter()
            .find(|(p, _)| p.ends_with("STAGE_AUDIT_LOG.md"))
            .expect("a stage audit log");
        String::from_utf8(bytes.clone()).unwrap()
    };
    assert_ne!(
        stage_log(&untrusted),
        stage_log(&before),
        "governance fails"
    );
    std::fs::write(&signers, &trusted).unwrap();
    assert_eq!(docs(&agree("trusted again")), before);

    // Configuration that changes documents: every run's key changes.
    let config = env.repo.join("ledger.yaml");
    let yaml = std::fs::read_to_string(&config).unwrap();
    assert!(yaml.contains("higher_is_better: true"));
    std::fs::write(
        &config,
        yaml.replace("higher_is_better: true", "higher_is_better: false"),
    )
    .unwrap();
    let flipped = agree("after a configuration change");
    let after = docs(&flipped);
    assert_eq!(after.len(), before.len());
    assert_ne!(after, before, "higher_is_better shows in the documents");
}
