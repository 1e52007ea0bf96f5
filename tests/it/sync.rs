//! `ledger push` / `ledger pull` between clones through a bare remote.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{assert_input_error, assert_ok, Run, TestEnv};

/// Workstation A (the TestEnv's repo), a bare remote, and workstation B: a
/// clone of A's branch with its own key, both keys in the committed trust file.
struct Two {
    env: TestEnv,
    remote: PathBuf,
    b: PathBuf,
    key_b: PathBuf,
}

impl Two {
    fn new() -> Two {
        let env = TestEnv::init();
        let key_b = env.dir.path().join("keys/b");
        env.keygen(&key_b);
        let pub_b = std::fs::read_to_string(key_b.with_extension("pub")).unwrap();
        let trust = env.repo.join(".ledger/allowed_signers");
        let mut text = std::fs::read_to_string(&trust).unwrap();
        text.push_str(&format!("b@example.com {}", pub_b.trim_end()));
        text.push('\n');
        std::fs::write(&trust, text).unwrap();
        env.git(&["add", "ledger.yaml", ".ledger/allowed_signers"]);
        env.git(&["commit", "-q", "-m", "ledger config"]);
        let remote = env.dir.path().join("remote.git");
        env.git(&["init", "-q", "--bare", remote.to_str().unwrap()]);
        let b = env.dir.path().join("b");
        env.git(&[
            "clone",
            "-q",
            env.repo.to_str().unwrap(),
            b.to_str().unwrap(),
        ]);
        Two {
            env,
            remote,
            b,
            key_b,
        }
    }

    fn remote(&self) -> &str {
        self.remote.to_str().unwrap()
    }

    /// A ledger command in B's clone with B's key.
    fn b(&self, args: &[&str]) -> Run {
        let mut cmd = self.env.command(args);
        cmd.current_dir(&self.b).env("LEDGER_KEY", &self.key_b);
        cmd.output().unwrap().into()
    }

    fn b_run(&self, tag: &str, cmd: &[&str]) -> Run {
        let mut args = vec![
            "run",
            "--workflow",
            "wf",
            "--tag",
            tag,
            "--owner",
            "b",
            "--",
        ];
        args.extend_from_slice(cmd);
        self.b(&args)
    }

    fn git_in(&self, dir: &Path, args: &[&str]) -> String {
        let mut all = vec!["-C", dir.to_str().unwrap()];
        all.extend_from_slice(args);
        self.env.git(&all)
    }
}

fn runs_in(two: &Two, dir: &Path) -> Vec<String> {
    let mut runs: Vec<String> = two
        .git_in(
            dir,
            &["ls-tree", "--name-only", "refs/heads/ledger", "runs/"],
        )
        .lines()
        .map(|l| l.trim_start_matches("runs/").to_string())
        .collect();
    runs.sort();
    runs
}

fn fsck(two: &Two, dir: &Path) {
    let out = two.env.git_output(&[
        "-C",
        dir.to_str().unwrap(),
        "fsck",
        "--strict",
        "--no-dangling",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
}

#[test]
fn two_workstations_push_to_one_remote_and_end_with_one_ledger() {
    let two = Two::new();
    let env = &two.env;
    assert_ok(env.run("a1", &[], &["true"]));
    assert_ok(env.ledger(&["push", two.remote()]));
    // B starts from the shared ledger.
    let pulled: Value =
        serde_json::from_str(&assert_ok(two.b(&["pull", two.remote(), "--json"])).stdout).unwrap();
    crate::schemas::assert_valid("pull.schema.json", &pulled);
    assert_eq!(pulled["action"], "cloned", "{pulled:#}");
    // Both run while apart.
    assert_ok(env.run("a2", &[], &["true"]));
    assert_ok(two.b_run("b1", &["sh", "-c", "echo from b"]));
    assert_ok(two.b_run("b2", &["true"]));
    // Both push at the same moment: one wins, the other finds the remote
    // moved, pulls, joins with a merge and pushes again.
    let mut a_cmd = env.command(&["push", two.remote(), "--json"]);
    let mut b_cmd = env.command(&["push", two.remote(), "--json"]);
    b_cmd.current_dir(&two.b).env("LEDGER_KEY", &two.key_b);
    let (a_out, b_out): (Run, Run) = std::thread::scope(|scope| {
        let a = scope.spawn(move || a_cmd.output().unwrap());
        let b = scope.spawn(move || b_cmd.output().unwrap());
        (a.join().unwrap().into(), b.join().unwrap().into())
    });
    let a_pushed: Value = serde_json::from_str(&assert_ok(a_out).stdout).unwrap();
    let b_pushed: Value = serde_json::from_str(&assert_ok(b_out).stdout).unwrap();
    crate::schemas::assert_valid("push.schema.json", &a_pushed);
    crate::schemas::assert_valid("push.schema.json", &b_pushed);
    let joins =
        a_pushed["joins"].as_array().unwrap().len() + b_pushed["joins"].as_array().unwrap().len();
    assert!(
        joins >= 1,
        "one side had to join: {a_pushed:#} {b_pushed:#}"
    );
    assert_ok(env.ledger(&["pull", two.remote()]));
    assert_ok(two.b(&["pull", two.remote()]));
    // Everyone has every run; one merge; every chain verifies.
    let expect = runs_in(&two, &env.repo);
    assert_eq!(expect.len(), 4, "{expect:?}");
    assert_eq!(runs_in(&two, &two.b), expect);
    assert_eq!(runs_in(&two, &two.remote), expect);
    for dir in [&env.repo, &two.b] {
        let mut cmd = env.command(&["verify"]);
        cmd.current_dir(dir);
        let v: Run = cmd.output().unwrap().into();
        assert_eq!(v.code, 0, "{v:?}");
        assert!(v.stdout.contains("4 runs, 20 records"), "{v:?}");
        assert!(v.stdout.contains(", 2 writers"), "{v:?}");
        fsck(&two, dir);
    }
    fsck(&two, &two.remote);
    let parents = two.git_in(
        &env.repo,
        &["log", "--merges", "--format=%p", "refs/heads/ledger"],
    );
    assert_eq!(parents.lines().count(), 1, "{parents}");
    // The merge commit is signed and plain git accepts it.
    let sig = two.git_in(
        &env.repo,
        &[
            "-c",
            "gpg.ssh.allowedSignersFile=.ledger/allowed_signers",
            "log",
            "--format=%G?",
            "refs/heads/ledger",
        ],
    );
    assert!(sig.lines().all(|l| l == "G"), "{sig}");
    // B's audit copies of A's runs were materialized.
    let a2 = expect.iter().find(|r| r.ends_with("_a2")).unwrap();
    assert!(two
        .b
        .join(format!("audit/workstation_runs/{a2}/result.json"))
        .is_file());
    // Pulling again changes nothing.
    let again = assert_ok(two.b(&["pull", two.remote()]));
    assert!(again.stdout.contains("up to date"), "{again:?}");
}

#[test]
fn a_tampered_or_untrusted_remote_is_refused_and_nothing_moves() {
    let two = Two::new();
    let env = &two.env;
    assert_ok(env.run("a1", &["--notes", "first"], &["true"]));
    assert_ok(env.ledger(&["push", two.remote()]));
    assert_ok(two.b(&["pull", two.remote()]));
    let b_tip = two.git_in(&two.b, &["rev-parse", "refs/heads/ledger"]);
    // A's ledger is altered (validly committed, but a record's payload edited)
    // and force-pushed.
    let run = env.run_ids().pop().unwrap();
    let path = format!("runs/{run}/context.dsse.json");
    let mut payload = crate::common::decode_payload(&env.ledger_file(&path));
    payload["predicate"]["notes"] = Value::String("edited".into());
    let tampered = crate::common::with_payload(&env.ledger_file(&path), &payload);
    env.tamper(&[(&path, Some(&tampered))], Some(&env.key));
    env.git(&["push", "-q", "--force", two.remote(), "refs/heads/ledger"]);
    let out = two.b(&["pull", two.remote(), "--json"]);
    assert_eq!(out.code, 1, "{out:?}");
    let pulled: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(pulled["action"], "refused");
    assert!(out.stdout.contains("bad_signature"), "{out:?}");
    assert_eq!(
        two.git_in(&two.b, &["rev-parse", "refs/heads/ledger"]),
        b_tip
    );
    assert!(
        two.env
            .git_output(&[
                "-C",
                two.b.to_str().unwrap(),
                "rev-parse",
                "--verify",
                "-q",
                "refs/ledger-sync/incoming"
            ])
            .code
            != 0
    );

    // A ledger grown by a key B does not trust.
    let two = Two::new();
    let env = &two.env;
    assert_ok(env.run("a1", &[], &["true"]));
    assert_ok(env.ledger(&["push", two.remote()]));
    assert_ok(two.b(&["pull", two.remote()]));
    let stranger = env.dir.path().join("keys/stranger");
    env.keygen(&stranger);
    let mut cmd = env.command(&[
        "run",
        "--workflow",
        "wf",
        "--tag",
        "x",
        "--owner",
        "o",
        "--",
        "true",
    ]);
    cmd.env("LEDGER_KEY", &stranger);
    let _: Run = cmd.output().unwrap().into();
    assert_ok(env.ledger(&["push", two.remote()]));
    let out = two.b(&["pull", two.remote()]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("untrusted_signer"), "{out:?}");
    assert!(!runs_in(&two, &two.b).iter().any(|r| r.ends_with("_x")));
}

#[test]
fn pull_lists_a_locally_edited_report_as_a_conflict_and_keeps_the_edit() {
    let two = Two::new();
    let env = &two.env;
    let script = "mkdir -p gate_results/g && echo '{\"factor\": \"m\", \"gates\": []}' > gate_results/g/production_gates_report.json";
    assert_ok(env.run("a1", &[], &["sh", "-c", script]));
    assert_ok(env.ledger(&["push", two.remote()]));
    let report = two.b.join("gate_results/g/production_gates_report.json");
    std::fs::create_dir_all(report.parent().unwrap()).unwrap();
    std::fs::write(&report, "{\"edited\": true}\n").unwrap();
    let out = two.b(&["pull", two.remote()]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout
            .contains("CONFLICT gate_results/g/production_gates_report.json"),
        "{out:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&report).unwrap(),
        "{\"edited\": true}\n"
    );
    // The ledger itself did move (it verified); the other files were written.
    assert_eq!(runs_in(&two, &two.b).len(), 1);
    let run = env.run_ids().pop().unwrap();
    assert!(two
        .b
        .join(format!("audit/workstation_runs/{run}/preflight.json"))
        .is_file());
}

#[test]
fn a_missing_remote_is_an_input_error_and_changes_nothing() {
    let env = TestEnv::init();
    assert_ok(env.run("a1", &[], &["true"]));
    let tip = env.ledger_tip();
    let missing = env.dir.path().join("nowhere.git");
    assert_input_error(&env.ledger(&["pull", missing.to_str().unwrap()]), "remote");
    assert_input_error(&env.ledger(&["push", missing.to_str().unwrap()]), "remote");
    assert_eq!(env.ledger_tip(), tip);
}

#[test]
fn a_force_pushed_history_fails_verify_since_the_old_head() {
    let two = Two::new();
    let env = &two.env;
    assert_ok(env.run("a1", &[], &["true"]));
    assert_ok(env.run("a2", &[], &["true"]));
    assert_ok(env.ledger(&["push", two.remote()]));
    let checkpoint = env.ledger_tip();
    // The remote's history is rewritten: a2 dropped, another run recorded in
    // its place, every record validly signed, force-pushed.
    let rewritten = env.git(&["rev-parse", "refs/heads/ledger~1"]);
    env.git(&["update-ref", "refs/heads/ledger", rewritten.trim()]);
    assert_ok(env.run("a3", &[], &["true"]));
    env.git(&["push", "-q", "--force", two.remote(), "refs/heads/ledger"]);
    // A committee member with a fresh clone pulls it: each record verifies...
    let out = two.b(&["pull", two.remote()]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(two.b(&["verify"]).code, 0);
    // ...but the ledger no longer descends from the head they saw.
    let out = two.b(&["verify", "--since", &checkpoint]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout.contains("[since_unknown]") || out.stdout.contains("[history_rewritten]"),
        "{out:?}"
    );
}

#[test]
fn pull_checks_only_what_is_new_but_catches_any_change_to_what_it_had() {
    let two = Two::new();
    let env = &two.env;
    assert_ok(env.run("a1", &[], &["true"]));
    assert_ok(env.run("a2", &[], &["true"]));
    assert_ok(env.ledger(&["push", two.remote()]));
    assert_ok(two.b(&["pull", two.remote()]));
    // A validly signed commit on top that removes an old record.
    let old = env.run_ids()[0].clone();
    env.tamper(
        &[(&format!("runs/{old}/command.dsse.json"), None)],
        Some(&env.key),
    );
    assert_ok(env.run("a3", &[], &["true"]));
    env.git(&["push", "-q", "--force", two.remote(), "refs/heads/ledger"]);
    let out = two.b(&["pull", two.remote(), "--json"]);
    assert_eq!(out.code, 1, "{out:?}");
    let pulled: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(pulled["action"], "refused");
    let codes: Vec<&str> = pulled["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"missing_record"), "{codes:?}");
    assert_eq!(runs_in(&two, &two.b).len(), 2);
}

/// A validly signed ledger whose result declares a product inside `.git`:
/// pull does not write it, and lists it as a conflict.
#[test]
fn pull_never_writes_into_git_whatever_a_signed_ledger_says() {
    let two = Two::new();
    let env = &two.env;
    assert_ok(env.run("a1", &[], &["true"]));
    // A second run, complete and chained, signed by the trusted key through
    // the library, whose result names a product at .git/hooks/post-checkout.
    let source = env.run_ids()[0].clone();
    let run_id = "20261122T120000Z_wf_crafted";
    let hook = b"#!/bin/sh\necho owned\n".to_vec();
    let mut drafts = Vec::new();
    for kind in ["preflight", "context", "command", "started", "result"] {
        let payload = crate::common::decode_payload(
            &env.ledger_file(&format!("runs/{source}/{kind}.dsse.json")),
        );
        let mut predicate = payload["predicate"].clone();
        if kind == "result" {
            predicate["log"]["stored"] = Value::Bool(false);
            predicate["products"] = serde_json::json!([{
                "path": ".git/hooks/post-checkout",
                "sha256": ledger::record::canon::sha256_hex(&hook),
                "bytes": hook.len(),
                "stored": true,
            }]);
        }
        let kind: ledger::record::Kind =
            serde_json::from_value(Value::String(kind.into())).unwrap();
        drafts.push(ledger::journal::Draft {
            kind,
            run_id: run_id.into(),
            subject: vec![ledger::record::Subject::run(run_id)],
            predicate: ledger::record::Predicate::of(&predicate),
        });
    }
    let ws = ledger::workspace::Workspace::open(&env.repo).unwrap();
    let signer = ledger::sign::Signer::load(&env.key).unwrap();
    let identity = ledger::store::Identity {
        name: "a".into(),
        email: "a@example.com".into(),
    };
    let extra = vec![(
        format!("runs/{run_id}/products/.git/hooks/post-checkout"),
        hook,
    )];
    let at = ledger::clock::parse_rfc3339("2026-11-22T12:00:01Z").unwrap();
    ledger::journal::append(
        &ws.store,
        &signer,
        &identity,
        at,
        None,
        &drafts,
        &extra,
        |_| Ok(()),
    )
    .unwrap();
    assert_ok(env.ledger(&["verify"]));
    assert_ok(env.ledger(&["push", two.remote()]));
    let out = two.b(&["pull", two.remote(), "--json"]);
    assert_eq!(out.code, 1, "{out:?}");
    let pulled: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(pulled["action"], "cloned", "{pulled:#}");
    let conflicts: Vec<&str> = pulled["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(conflicts, [".git/hooks/post-checkout"], "{pulled:#}");
    assert!(!two.b.join(".git/hooks/post-checkout").exists());
}

#[test]
fn a_committee_laptop_without_a_key_can_pull_but_not_join() {
    let two = Two::new();
    let env = &two.env;
    assert_ok(env.run("a1", &[], &["true"]));
    assert_ok(env.ledger(&["push", two.remote()]));
    let keyless = |args: &[&str]| -> Run {
        let mut cmd = env.command(args);
        cmd.current_dir(&two.b).env_remove("LEDGER_KEY");
        cmd.output().unwrap().into()
    };
    let out = keyless(&["pull", two.remote()]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("ledger created"), "{out:?}");
    // B records a run of its own (with its key), then A moves on: a join
    // would be needed, and without a key it is refused, nothing moved.
    assert_ok(two.b_run("b1", &["true"]));
    assert_ok(env.run("a2", &[], &["true"]));
    assert_ok(env.ledger(&["push", two.remote()]));
    let tip = two.git_in(&two.b, &["rev-parse", "refs/heads/ledger"]);
    let out = keyless(&["pull", two.remote()]);
    assert_input_error(&out, "needs a signing key");
    assert_eq!(two.git_in(&two.b, &["rev-parse", "refs/heads/ledger"]), tip);
}

#[test]
fn pull_from_an_empty_remote_does_nothing_and_pull_never_fetches_tags() {
    let two = Two::new();
    let env = &two.env;
    let out = two.b(&["pull", two.remote(), "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    let pulled: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(pulled["action"], "remote_empty");
    // The remote gets a ledger and a tag of the user's branch.
    assert_ok(env.run("a1", &[], &["true"]));
    assert_ok(env.ledger(&["push", two.remote()]));
    env.git(&["tag", "release-1"]);
    env.git(&["push", "-q", two.remote(), "release-1"]);
    assert_ok(two.b(&["pull", two.remote()]));
    assert_eq!(two.git_in(&two.b, &["tag", "-l"]), "");
    let refs = two.git_in(&two.b, &["for-each-ref", "--format=%(refname)"]);
    assert!(!refs.contains("refs/ledger-sync/incoming"), "{refs}");
    // Only private refs besides the user's: the remote's head as last seen.
    assert!(
        refs.lines().all(|r| r.starts_with("refs/heads/")
            || r.starts_with("refs/remotes/")
            || r.starts_with("refs/ledger-sync/seen/")),
        "{refs}"
    );
}

#[test]
fn handoff_readiness_names_unpushed_work_against_the_configured_remote() {
    let two = Two::new();
    let env = &two.env;
    let report = "mkdir -p gate_results/g && echo '{\"factor\": \"m\", \"gates\": [{\"name\": \"g\", \"passed\": false}]}' > gate_results/g/production_gates_report.json; exit 1";
    let out = env.run("a1", &[], &["sh", "-c", report]);
    assert_eq!(out.code, 1, "{out:?}");
    let config = env.repo.join("ledger.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("  # remote: origin", &format!("  remote: {}", two.remote())),
    )
    .unwrap();
    let readiness = |env: &TestEnv| -> Value {
        assert_ok(env.ledger(&["finalize"]));
        serde_json::from_slice(
            &std::fs::read(
                env.repo
                    .join("audit/session_handoff/handoff_readiness.json"),
            )
            .unwrap(),
        )
        .unwrap()
    };
    let h = readiness(env);
    crate::schemas::assert_valid("handoff-readiness.schema.json", &h);
    assert_eq!(h["ready"], false);
    assert_eq!(h["blocking"][0]["reason"], "not_pushed", "{h:#}");
    assert!(
        h["blocking"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("never pushed"),
        "{h:#}"
    );
    assert_ok(env.ledger(&["push"]));
    let out = env.run("a2", &[], &["sh", "-c", "exit 1"]);
    assert_eq!(out.code, 1, "{out:?}");
    let h = readiness(env);
    let details: Vec<&str> = h["blocking"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["detail"].as_str().unwrap())
        .collect();
    assert!(details.iter().any(|d| d.contains("not pushed to")), "{h:#}");
    assert_ok(env.ledger(&["push"]));
    let h = readiness(env);
    assert_eq!(h["ready"], true, "{h:#}");
}

/// `sh -c script` in `cwd` with the test environment, the real clock and
/// `key`; `$0` is the ledger binary.
fn spawn_script(env: &TestEnv, cwd: &Path, key: &Path, script: &str) -> std::process::Child {
    let mut sh = env.base_command("sh", cwd);
    sh.arg("-c")
        .arg(format!("exec 1>&2\n{script}"))
        .arg(crate::common::BIN)
        .env("LEDGER_KEY", key)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    sh.spawn().unwrap()
}

#[test]
fn four_writers_of_twenty_five_runs_and_two_clones_pushing_at_once_lose_nothing() {
    let two = Two::new();
    let env = &two.env;
    let remote = two.remote();
    assert_ok(env.run("seed", &[], &["true"]));
    assert_ok(env.ledger(&["push", remote]));
    assert_ok(two.b(&["pull", remote]));
    let mut children = Vec::new();
    // Four writers on A, 25 runs each, back to back.
    for p in 0..4 {
        let script = (0..25)
            .map(|i| format!("\"$0\" run --workflow wf --tag p{p}_r{i} --owner o -- sh -c 'echo {p} {i}' || exit 9"))
            .collect::<Vec<_>>()
            .join("\n");
        children.push((
            format!("writer {p}"),
            spawn_script(env, &env.repo, &env.key, &script),
        ));
    }
    // Meanwhile A pushes, and B runs and pushes, to the same remote.
    let pushes = (0..6)
        .map(|_| format!("\"$0\" push {remote} || exit 9; sleep 0.2"))
        .collect::<Vec<_>>()
        .join("\n");
    children.push((
        "A pushing".into(),
        spawn_script(env, &env.repo, &env.key, &pushes),
    ));
    let b_work = (0..6)
        .map(|i| format!("\"$0\" run --workflow wf --tag b{i} --owner b -- true || exit 9\n\"$0\" push {remote} || exit 9"))
        .collect::<Vec<_>>()
        .join("\n");
    children.push((
        "B running and pushing".into(),
        spawn_script(env, &two.b, &two.key_b, &b_work),
    ));
    for (who, child) in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{who} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Settle: A pushes what its writers added, B pulls it.
    assert_ok(env.ledger(&["push", remote]));
    assert_ok(two.b(&["pull", remote]));
    let expect = runs_in(&two, &env.repo);
    assert_eq!(expect.len(), 1 + 100 + 6, "{expect:#?}");
    for p in 0..4 {
        for i in 0..25 {
            let tag = format!("_p{p}_r{i}");
            assert!(expect.iter().any(|r| r.ends_with(&tag)), "{tag} lost");
        }
    }
    for i in 0..6 {
        assert!(
            expect.iter().any(|r| r.ends_with(&format!("_b{i}"))),
            "b{i} lost"
        );
    }
    assert_eq!(runs_in(&two, &two.b), expect);
    assert_eq!(runs_in(&two, &two.remote), expect);
    for dir in [&env.repo, &two.b] {
        let mut cmd = env.command(&["verify"]);
        cmd.current_dir(dir);
        let v: Run = cmd.output().unwrap().into();
        assert_eq!(v.code, 0, "{v:?}");
        assert!(v.stdout.contains("107 runs"), "{v:?}");
        fsck(&two, dir);
    }
    fsck(&two, &two.remote);
}

#[test]
fn a_clone_on_the_same_machine_never_closes_a_run_another_repository_supervises() {
    let two = Two::new();
    let env = &two.env;
    let remote = two.remote();
    assert_ok(env.run("seed", &[], &["true"]));
    assert_ok(env.ledger(&["push", remote]));
    // A's run is under way when A pushes, and its supervisor then dies.
    let mut cmd = env.run_command("long", &[], &["sh", "-c", "echo a; sleep 2"]);
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut supervisor = cmd.spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let run_id = loop {
        let found = runs_in(&two, &env.repo)
            .into_iter()
            .find(|r| r.ends_with("_long"));
        if let Some(id) = found {
            break id;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the run never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_ok(env.ledger(&["push", remote]));
    // SAFETY: kill(2) on a child this test spawned and has not reaped.
    unsafe { libc::kill(supervisor.id() as i32, libc::SIGKILL) };
    supervisor.wait().unwrap();
    // B, on the same machine, pulls the open run and runs its own: it must
    // not record A's run as aborted (A closes it, and may hold its result).
    assert_ok(two.b(&["pull", remote]));
    assert_ok(two.b_run("b1", &["true"]));
    let files = two.git_in(
        &two.b,
        &[
            "ls-tree",
            "--name-only",
            "refs/heads/ledger",
            &format!("runs/{run_id}/"),
        ],
    );
    assert!(!files.contains("result"), "B closed A's run:\n{files}");
    assert_eq!(
        assert_ok(two.b(&["recover"])).stdout,
        "nothing to recover\n"
    );
    assert_ok(two.b(&["push", remote]));
    // A closes its own run, then joins B's work without a conflict.
    let recovered = assert_ok(env.ledger(&["recover"])).stdout;
    assert!(recovered.contains(&run_id), "{recovered}");
    assert_ok(env.ledger(&["push", remote]));
    assert_ok(two.b(&["pull", remote]));
    for dir in [&env.repo, &two.b] {
        let mut cmd = env.command(&["verify"]);
        cmd.current_dir(dir);
        let v: Run = cmd.output().unwrap().into();
        assert_eq!(v.code, 0, "{v:?}");
        assert!(v.stdout.contains("3 runs"), "{v:?}");
    }
}

/// `git ls-tree -r` of the ledger ref in `dir`: every file of the ledger.
fn ledger_files(two: &Two, dir: &Path) -> Vec<String> {
    two.git_in(dir, &["ls-tree", "-r", "--name-only", "refs/heads/ledger"])
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn kill_9_during_finalize_push_and_pull_never_corrupts_or_loses_a_record() {
    let two = Two::new();
    let env = &two.env;
    let remote = two.remote();
    assert_ok(env.run("seed", &[], &["true"]));
    assert_ok(env.ledger(&["push", remote]));
    assert_ok(two.b(&["pull", remote]));
    let check = |dir: &Path, before: &[String], what: &str| {
        fsck(&two, dir);
        let after = ledger_files(&two, dir);
        for path in before {
            assert!(after.contains(path), "{what}: lost {path}");
        }
        let mut cmd = env.command(&["verify"]);
        cmd.current_dir(dir);
        let v: Run = cmd.output().unwrap().into();
        assert_eq!(v.code, 0, "{what}: {v:?}");
    };
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next_delay = |max: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::time::Duration::from_millis(seed % max)
    };
    let kill_after = |mut cmd: std::process::Command, delay| {
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut child = cmd.spawn().unwrap();
        std::thread::sleep(delay);
        // SAFETY: kill(2) on a child this test spawned and has not reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        child.wait().unwrap();
    };
    let mut moments = 0;
    let mut interrupted = [0usize; 3];
    for i in 0..18 {
        // finalize in A, killed at a random moment.
        assert_ok(env.run(&format!("f{i}"), &[], &["true"]));
        let before = ledger_files(&two, &env.repo);
        kill_after(env.command(&["finalize"]), next_delay(150));
        check(&env.repo, &before, &format!("finalize kill {i}"));
        let finalized = ledger_files(&two, &env.repo).len() > before.len();
        interrupted[0] += usize::from(!finalized);
        // push from A, killed.
        let before = ledger_files(&two, &env.repo);
        let remote_before = ledger_files(&two, &two.remote);
        kill_after(env.command(&["push", remote]), next_delay(80));
        check(&env.repo, &before, &format!("push kill {i}"));
        let pushed = two.git_in(&two.remote, &["rev-parse", "refs/heads/ledger"])
            == two.git_in(&env.repo, &["rev-parse", "refs/heads/ledger"]);
        interrupted[1] += usize::from(!pushed);
        fsck(&two, &two.remote);
        let now = ledger_files(&two, &two.remote);
        assert!(
            remote_before.iter().all(|p| now.contains(p)),
            "push kill {i}: the remote lost a record"
        );
        // pull into B, killed.
        let before = ledger_files(&two, &two.b);
        let mut pull = env.command(&["pull", remote]);
        pull.current_dir(&two.b).env("LEDGER_KEY", &two.key_b);
        kill_after(pull, next_delay(80));
        check(&two.b, &before, &format!("pull kill {i}"));
        let pulled = two.git_in(&two.remote, &["rev-parse", "refs/heads/ledger"])
            == two.git_in(&two.b, &["rev-parse", "refs/heads/ledger"]);
        interrupted[2] += usize::from(!pulled);
        moments += 3;
    }
    assert!(moments >= 54);
    eprintln!("interrupted (finalize, push, pull): {interrupted:?} of 18 each");
    // Nothing is wedged: the next finalize, push and pull complete, and
    // every run is everywhere.
    assert_ok(env.ledger(&["finalize"]));
    assert_ok(env.ledger(&["push", remote]));
    assert_ok(two.b(&["pull", remote]));
    let expect = runs_in(&two, &env.repo);
    assert_eq!(expect.len(), 19);
    assert_eq!(runs_in(&two, &two.b), expect);
    assert_eq!(runs_in(&two, &two.remote), expect);
    check(&two.b, &[], "after the kills");
}

#[test]
fn runs_beside_git_gc_and_repack_lose_nothing() {
    let env = TestEnv::init();
    assert_ok(env.run("r0", &[], &["true"]));
    let stop = std::sync::atomic::AtomicBool::new(false);
    let repo = &env.repo.clone();
    std::thread::scope(|scope| {
        let maintenance = scope.spawn(|| {
            let mut rounds = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for args in [
                    &["repack", "-adq"][..],
                    &["gc", "--quiet"],
                    &["pack-refs", "--all"],
                ] {
                    let out = std::process::Command::new("git")
                        .arg("-C")
                        .arg(repo)
                        .args(args)
                        .output()
                        .unwrap();
                    assert!(out.status.success(), "{args:?}: {out:?}");
                }
                rounds += 1;
            }
            rounds
        });
        let outs: Vec<Run> = (1..=12)
            .map(|i| env.run(&format!("r{i}"), &[], &["sh", "-c", "echo x"]))
            .collect();
        // Stop the maintenance before judging, so a failure cannot hang the test.
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(maintenance.join().unwrap() >= 1);
        for out in outs {
            assert_ok(out);
        }
    });
    assert_eq!(env.run_ids().len(), 13);
    let out = env.ok(&["verify"]);
    assert!(out.stdout.contains("13 runs"), "{out:?}");
    let fsck = env.git_output(&["fsck", "--strict"]);
    assert_eq!(fsck.code, 0, "{fsck:?}");
}

#[test]
fn locks_a_killed_pull_left_behind_are_cleared_and_live_ones_respected() {
    let two = Two::new();
    let env = &two.env;
    let remote = two.remote();
    assert_ok(env.run("a1", &[], &["true"]));
    assert_ok(env.ledger(&["push", remote]));
    assert_ok(two.b(&["pull", remote]));
    assert_ok(env.run("a2", &[], &["true"]));
    assert_ok(env.ledger(&["push", remote]));
    // What a pull killed while moving its private refs leaves behind.
    let git = two.b.join(".git");
    std::fs::create_dir_all(git.join("refs/ledger-sync")).unwrap();
    let locks = [
        git.join("packed-refs.lock"),
        git.join("refs/ledger-sync/incoming.lock"),
    ];
    // While a live process holds one open, it is not ledger's to remove.
    let holder = std::process::Command::new("sh")
        .arg("-c")
        .arg("exec 3>\"$0\"; exec sleep 3")
        .arg(&locks[0])
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !locks[0].exists() {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    let out = two.b(&["pull", remote]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(locks[0].exists(), "a held lock stays");
    let mut holder = holder;
    holder.kill().unwrap();
    holder.wait().unwrap();
    // Once nobody holds them, they are stale: the next pull clears them.
    std::fs::write(&locks[1], "").unwrap();
    let pulled: Value =
        serde_json::from_str(&assert_ok(two.b(&["pull", remote, "--json"])).stdout).unwrap();
    assert_eq!(pulled["action"], "fast_forward", "{pulled:#}");
    assert!(locks.iter().all(|l| !l.exists()));
    assert_eq!(runs_in(&two, &two.b), runs_in(&two, &env.repo));
    // A pull killed while moving the ledger ref itself leaves its lock: the
    // next pull waits, finds nobody holding it, clears it and moves the ref.
    assert_ok(env.run("a3", &[], &["true"]));
    assert_ok(env.ledger(&["push", remote]));
    let own = git.join("refs/heads/ledger.lock");
    std::fs::write(&own, "").unwrap();
    let pulled: Value =
        serde_json::from_str(&assert_ok(two.b(&["pull", remote, "--json"])).stdout).unwrap();
    assert_eq!(pulled["action"], "fast_forward", "{pulled:#}");
    assert!(!own.exists());
    assert_eq!(runs_in(&two, &two.b), runs_in(&two, &env.repo));
}
