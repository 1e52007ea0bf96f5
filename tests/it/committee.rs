//! Committee sign-off: `ledger decide`, the k-of-n policy in every document,
//! and `ledger verify` / `verify --policy` against the committee file.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{assert_input_error, assert_ok, Run, TestEnv};
use crate::finalize::{finalize_json, fsck, projection_files, run, written_paths, GATES};

const RUN1: &str = "committee_2026-11-22_run1";
const RUN2: &str = "committee_2026-11-22_run2";
const SIGNERS: &str = ".ledger/committee_signers";
const STAGE_LOG: &str = "docs/production_research/STAGE_AUDIT_LOG.md";
const HANDOFF: &str = "audit/session_handoff/handoff_readiness.json";
const QUEUE: &str = "audit/factor_registry/factor_candidate_queue.csv";
const LEADERBOARD: &str = "audit/factor_registry/factor_experiment_leaderboard.md";
const SUMMARY1: &str =
    "gate_results/production_gates_committee_2026-11-22_run1/production_gates_final_summary.md";

/// A ledger with two finalized committee runs (momentum, value), members
/// alice, bob and carol (k = 2) and mallory's key, which is no member's.
struct Committee {
    env: TestEnv,
    keys: PathBuf,
}

impl Committee {
    fn new() -> Committee {
        let env = TestEnv::init();
        std::fs::write(env.repo.join("gates.sh"), GATES).unwrap();
        let keys = env.dir.path().join("committee");
        for name in ["alice", "bob", "carol", "dave", "mallory"] {
            env.keygen(&keys.join(name));
        }
        let c = Committee { env, keys };
        c.write_signers(&["alice", "bob", "carol"], "");
        let config = c.env.repo.join("ledger.yaml");
        let text = std::fs::read_to_string(&config).unwrap();
        let text = text.replace(
            "  # allowed_signers: .ledger/committee_signers",
            &format!("  allowed_signers: {SIGNERS}"),
        );
        assert!(text.contains(&format!("allowed_signers: {SIGNERS}")));
        std::fs::write(&config, text).unwrap();
        let g = |factor: &str, tag: &str| {
            vec![
                "sh".to_string(),
                "gates.sh".into(),
                factor.into(),
                tag.into(),
                "1.2".into(),
                "true".into(),
            ]
        };
        for (factor, tag) in [("momentum", RUN1), ("value", RUN2)] {
            let argv = g(factor, tag);
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            assert_eq!(run(&c.env, "gates", tag, &[], &argv), 0);
        }
        assert_ok(c.env.ledger(&["finalize"]));
        c
    }

    /// The committee file lists `members`; `extra` is appended to dave's line.
    fn write_signers(&self, members: &[&str], dave_options: &str) {
        let mut text = String::from("# committee members\n");
        for m in members {
            let public = std::fs::read_to_string(self.key(m).with_extension("pub")).unwrap();
            let options = if *m == "dave" { dave_options } else { "" };
            text.push_str(&format!("{m} {options}{public}"));
        }
        std::fs::create_dir_all(self.env.repo.join(".ledger")).unwrap();
        std::fs::write(self.env.repo.join(SIGNERS), text).unwrap();
    }

    fn key(&self, name: &str) -> PathBuf {
        self.keys.join(name)
    }

    fn decide(&self, member: &str, tag: &str, decision: &str, reason: &str) -> Run {
        self.decide_in(&self.env.repo, member, tag, decision, reason, &[])
    }

    /// `ledger decide --tag TAG ... --key <member's key> EXTRA` in `cwd`.
    fn decide_in(
        &self,
        cwd: &Path,
        member: &str,
        tag: &str,
        decision: &str,
        reason: &str,
        extra: &[&str],
    ) -> Run {
        let key = self.key(member);
        let mut args = vec![
            "decide",
            "--tag",
            tag,
            "--decision",
            decision,
            "--reason",
            reason,
            "--key",
            key.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        self.env.ledger_in(cwd, &args)
    }

    fn file(&self, path: &str) -> String {
        std::fs::read_to_string(self.env.repo.join(path)).unwrap()
    }

    /// The stage log's decision cell of the run with `tag`.
    fn stage_decision(&self, tag: &str) -> String {
        let log = self.file(STAGE_LOG);
        let row = log
            .lines()
            .find(|l| l.contains(&format!("| {} |", tag.replace('_', "\\_"))))
            .unwrap_or_else(|| panic!("no row for {tag}:\n{log}"));
        let cells: Vec<&str> = row.split(" | ").collect();
        cells[9].to_string()
    }

    fn awaiting(&self) -> Vec<String> {
        let h: Value = serde_json::from_str(&self.file(HANDOFF)).unwrap();
        crate::schemas::assert_valid("handoff-readiness.schema.json", &h);
        h["awaiting_decision"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["tag"].as_str().unwrap().to_string())
            .collect()
    }

    fn decision_files(&self) -> usize {
        self.env
            .ledger_paths()
            .iter()
            .filter(|p| p.starts_with("decisions/"))
            .count()
    }
}

fn finding_codes(out: &Run) -> Vec<String> {
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    crate::schemas::assert_valid("verify-report.schema.json", &report);
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn two_of_three_approve_one_reject_vetoes_and_a_changed_mind_replaces_the_earlier_decision() {
    let c = Committee::new();
    let env = &c.env;

    // One approval of two: pending, everywhere.
    let out = assert_ok(c.decide("alice", RUN1, "approve", "all gates pass | 2x `costs`"));
    assert!(out.stdout.contains("pending (1 of 2 approvals)"), "{out:?}");
    let verify = assert_ok(env.ledger(&["verify"]));
    assert!(verify.stdout.contains("(1 decision)"), "{verify:?}");
    let policy = env.ledger(&["verify", "--policy", "--json"]);
    assert_eq!(policy.code, 1, "{policy:?}");
    assert_eq!(finding_codes(&policy), ["not_approved", "not_approved"]);
    assert_ok(env.ledger(&["finalize"]));
    assert_eq!(c.stage_decision(RUN1), "pending (1 of 2 approvals)");
    assert_eq!(c.awaiting(), [RUN1, RUN2]);
    let summary = c.file(SUMMARY1);
    assert!(
        summary.contains("**PENDING**: 1 of 2 required approvals."),
        "{summary}"
    );
    assert!(
        summary.contains("| alice | approve | all gates pass \\| 2x \\`costs\\` |"),
        "{summary}"
    );

    // Two approvals: approved; the factor is promoted, not re-queued.
    let out = assert_ok(c.decide("bob", RUN1, "approve", "robust across shards"));
    assert!(
        out.stdout.contains("approved (2 of 2 approvals)"),
        "{out:?}"
    );
    assert_ok(env.ledger(&["finalize"]));
    assert_eq!(c.stage_decision(RUN1), "approved (2 of 2 approvals)");
    assert_eq!(c.awaiting(), [RUN2]);
    assert!(c
        .file(SUMMARY1)
        .contains("**APPROVED**: 2 of 2 required approvals."));
    let queue = c.file(QUEUE);
    let momentum = queue.lines().find(|l| l.contains(",momentum,")).unwrap();
    assert!(momentum.contains(",promoted,"), "{queue}");
    assert!(
        momentum.contains("promoted: committee_2026-11-22_run1 approved"),
        "{queue}"
    );
    let value = queue.lines().find(|l| l.contains(",value,")).unwrap();
    assert!(value.contains(",ready,"), "{queue}");
    let board = c.file(LEADERBOARD);
    let row = board.lines().find(|l| l.contains("| momentum |")).unwrap();
    assert!(
        row.ends_with("| approved: committee\\_2026-11-22\\_run1 |"),
        "{board}"
    );

    // A reject by the third member vetoes the two approvals.
    let out = assert_ok(c.decide("carol", RUN1, "reject", "look-ahead in the factor"));
    assert!(out.stdout.contains("rejected by carol"), "{out:?}");
    assert_ok(env.ledger(&["finalize"]));
    assert_eq!(c.stage_decision(RUN1), "rejected by carol");
    assert!(c.file(SUMMARY1).contains("**REJECTED**"));
    assert!(c
        .file(QUEUE)
        .lines()
        .any(|l| l.contains(",momentum,ready,")));
    // Rejected is not awaiting a decision.
    assert_eq!(c.awaiting(), [RUN2]);

    // Carol changes her mind: her newer decision counts, both stay.
    assert_ok(c.decide("carol", RUN1, "approve", "look-ahead was a test artefact"));
    assert_eq!(c.decision_files(), 4);
    assert_ok(env.ledger(&["finalize"]));
    assert_eq!(c.stage_decision(RUN1), "approved (3 of 2 approvals)");
    let summary = c.file(SUMMARY1);
    assert!(
        summary.contains("| carol | approve | look-ahead was a test artefact |"),
        "{summary}"
    );
    assert!(!summary.contains("| carol | reject |"), "{summary}");
    assert!(summary
        .contains("1 earlier decision, replaced by its member's newer one, stays in the ledger."));

    // The policy holds once the other committee run is approved too.
    assert_eq!(env.ledger(&["verify", "--policy"]).code, 1);
    assert_ok(c.decide("alice", RUN2, "approve", "ok"));
    assert_ok(c.decide("bob", RUN2, "approve", "ok"));
    let repo = env.repo.clone();
    let out = assert_ok(c.decide_in(&repo, "carol", RUN2, "approve", "again", &["--json"]));
    let decided: Value = serde_json::from_str(&out.stdout).unwrap();
    crate::schemas::assert_valid("decide-outcome.schema.json", &decided);
    assert_eq!(decided["tally"]["standing"], "approved");
    assert_ok(env.ledger(&["verify", "--policy"]));

    // Git sees one subject line per decision, and good signatures throughout.
    let log = env.git(&["log", "--format=%s", "refs/heads/ledger"]);
    assert_eq!(
        log.lines().filter(|l| l.starts_with("decision ")).count(),
        7
    );
    assert!(
        log.contains("approve committee_2026-11-22_run1 by alice"),
        "{log}"
    );
    fsck(&env.repo, env);
}

#[test]
fn committee_documents_are_byte_identical_in_a_clone() {
    let c = Committee::new();
    assert_ok(c.decide("alice", RUN1, "approve", "fine"));
    assert_ok(c.decide("carol", RUN2, "rework", "rerun on the new freeze"));
    let first = finalize_json(&c.env, &c.env.repo, &[]);
    let paths = written_paths(&first);
    let a = projection_files(&c.env.repo, &paths);
    let clone = c.env.dir.path().join("clone");
    let env = &c.env;
    env.clone_to(
        &clone,
        true,
        &["ledger.yaml", ".ledger/allowed_signers", SIGNERS],
    );
    let mut cmd = env.command_after("umask 077", &["finalize"]);
    cmd.current_dir(&clone)
        .env("TZ", "Asia/Tokyo")
        .env("LANG", "C");
    let out: Run = cmd.output().unwrap().into();
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(a, projection_files(&clone, &paths));
    assert!(String::from_utf8_lossy(&a[SUMMARY1]).contains("**PENDING**: 1 of 2"));
    assert_ok(env.ledger(&["finalize", "--check"]));
}

#[test]
fn decisions_by_non_members_or_outside_the_validity_window_are_refused_and_do_not_count() {
    let c = Committee::new();
    let env = &c.env;
    // decide refuses keys the committee file does not list, writers' included.
    let out = c.decide("mallory", RUN1, "approve", "trust me");
    assert_input_error(&out, "not a committee member's key");
    let writer = env.key.to_str().unwrap().to_string();
    let out = env.ledger(&[
        "decide",
        RUN1,
        "--decision",
        "approve",
        "--reason",
        "x",
        "--key",
        &writer,
    ]);
    assert_eq!(out.code, 2, "{out:?}");
    assert_input_error(
        &env.ledger(&["decide", RUN1, "--decision", "approve", "--reason", " "]),
        "--reason",
    );
    assert_eq!(c.decision_files(), 0);

    // Mallory and dave were members for a while: each approved run1.
    c.write_signers(&["alice", "bob", "carol", "dave", "mallory"], "");
    assert_ok(c.decide("mallory", RUN1, "approve", "trust me"));
    assert_ok(c.decide("dave", RUN1, "approve", "looks fine"));
    assert_ok(c.decide("alice", RUN1, "approve", "fine"));
    assert_ok(env.ledger(&["verify"]));
    // Mallory is removed; dave's key is valid only before his decision
    // (git's valid-before, by the record's own time).
    c.write_signers(
        &["alice", "bob", "carol", "dave"],
        "valid-before=\"20261122\" ",
    );
    let out = env.ledger(&["verify", "--json"]);
    assert_eq!(out.code, 1, "{out:?}");
    let codes = finding_codes(&out);
    assert!(codes.contains(&"untrusted_signer".to_string()), "{codes:?}");
    assert!(codes.contains(&"key_not_valid".to_string()), "{codes:?}");
    assert!(
        codes.contains(&"commit_untrusted_key".to_string()),
        "{codes:?}"
    );
    assert!(
        codes.contains(&"commit_key_not_valid".to_string()),
        "{codes:?}"
    );
    let text = env.ledger(&["verify"]).stdout;
    assert!(
        text.contains("which the committee file does not list"),
        "{text}"
    );
    // Only alice counts: pending, not approved.
    assert_ok(env.ledger(&["finalize"]));
    assert_eq!(c.stage_decision(RUN1), "pending (1 of 2 approvals)");
    let summary = c.file(SUMMARY1);
    assert!(
        !summary.contains("| mallory |") && !summary.contains("| dave |"),
        "{summary}"
    );
    let policy = env.ledger(&["verify", "--policy", "--json"]);
    assert!(finding_codes(&policy).contains(&"not_approved".to_string()));
}

#[test]
fn a_committee_key_cannot_write_runs_and_writers_cannot_decide() {
    let c = Committee::new();
    let env = &c.env;
    // A run signed by a member's key: its records and its commit are refused.
    let alice = c.key("alice");
    let mut cmd = env.command(&[
        "run",
        "--workflow",
        "wf",
        "--tag",
        "sneaky",
        "--owner",
        "o",
        "--key",
        alice.to_str().unwrap(),
        "--",
        "true",
    ]);
    let _: Run = cmd.output().unwrap().into();
    let out = env.ledger(&["verify", "--json"]);
    assert_eq!(out.code, 1, "{out:?}");
    let codes = finding_codes(&out);
    assert!(codes.contains(&"untrusted_signer".to_string()), "{codes:?}");
    assert!(
        codes.contains(&"commit_outside_role".to_string()),
        "{codes:?}"
    );

    // A decision signed by a writer key (listed as a member for a moment,
    // then not) does not count and fails verify.
    let c2 = Committee::new();
    let writer_pub = std::fs::read_to_string(c2.env.key.with_extension("pub")).unwrap();
    let listed = c2.file(SIGNERS) + &format!("writer {writer_pub}");
    std::fs::write(c2.env.repo.join(SIGNERS), &listed).unwrap();
    let writer = c2.env.key.to_str().unwrap().to_string();
    assert_ok(c2.env.ledger(&[
        "decide",
        RUN1,
        "--decision",
        "approve",
        "--reason",
        "mine",
        "--key",
        &writer,
    ]));
    c2.write_signers(&["alice", "bob", "carol"], "");
    let out = c2.env.ledger(&["verify", "--json"]);
    assert!(
        finding_codes(&out).contains(&"untrusted_signer".to_string()),
        "{out:?}"
    );
    assert_ok(c2.env.ledger(&["finalize"]));
    assert_eq!(c2.stage_decision(RUN1), "pending (0 of 2 approvals)");
}

#[test]
fn decide_needs_a_committee_an_ended_finalized_run_and_verify_policy_a_committee() {
    let env = TestEnv::init();
    assert_ok(env.run("t1", &[], &["true"]));
    let out = env.ledger(&["decide", "t1", "--decision", "approve", "--reason", "x"]);
    assert_input_error(&out, "committee.allowed_signers");
    assert_eq!(env.ledger(&["verify", "--policy"]).code, 2);

    let c = Committee::new();
    assert_ok(c.env.run("t2", &[], &["true"]));
    let out = c.decide("alice", "t2", "approve", "x");
    assert_input_error(&out, "ledger finalize");
    let out = c.decide("alice", "nope", "approve", "x");
    assert_input_error(&out, "no run with tag or id");
    assert_eq!(c.decision_files(), 0);
}

#[test]
fn a_members_decision_travels_by_pull_and_a_non_members_is_refused() {
    let c = Committee::new();
    let env = &c.env;
    // The member's laptop: a clone with the ledger, the config and both files.
    let laptop = env.dir.path().join("laptop");
    env.clone_to(
        &laptop,
        false,
        &["ledger.yaml", ".ledger/allowed_signers", SIGNERS],
    );
    let origin = env.repo.to_str().unwrap().to_string();
    assert_ok(env.ledger_in(&laptop, &["pull", &origin]));
    assert_ok(c.decide_in(&laptop, "alice", RUN1, "approve", "ok", &[]));
    // The workstation pulls the decision: verified against its committee file.
    let laptop_path = laptop.to_str().unwrap().to_string();
    let out = assert_ok(env.ledger(&["pull", &laptop_path, "--json"]));
    let pulled: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(pulled["action"], "fast_forward", "{out:?}");
    assert_eq!(c.decision_files(), 1);
    assert_ok(env.ledger(&["verify"]));

    // On the laptop mallory is listed too; her decision is refused by the
    // workstation's pull, whose committee file does not list her.
    let mut listed = std::fs::read_to_string(laptop.join(SIGNERS)).unwrap();
    listed += &format!(
        "mallory {}",
        std::fs::read_to_string(c.key("mallory").with_extension("pub")).unwrap()
    );
    std::fs::write(laptop.join(SIGNERS), listed).unwrap();
    assert_ok(c.decide_in(&laptop, "mallory", RUN1, "approve", "me too", &[]));
    let tip = env.ledger_tip();
    let out = env.ledger(&["pull", &laptop_path]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout.contains("untrusted_signer") || out.stderr.contains("untrusted_signer"),
        "{out:?}"
    );
    assert_eq!(env.ledger_tip(), tip, "the refused decision moved nothing");
}
