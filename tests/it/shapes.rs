//! Repository shapes: linked work trees, packed refs, shallow clones, bare
//! clones and SHA-256 repositories.

use crate::common::{assert_input_error, assert_ok, TestEnv};

fn git_in(env: &TestEnv, dir: &std::path::Path, args: &[&str]) -> String {
    let mut all = vec!["-C", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    env.git(&all)
}

#[test]
fn a_linked_work_tree_shares_the_ledger_and_keeps_its_own_documents() {
    let env = TestEnv::init();
    env.git(&["add", "ledger.yaml", ".ledger/allowed_signers"]);
    env.git(&["commit", "-q", "-m", "ledger config"]);
    assert_ok(env.run("main1", &[], &["true"]));
    let wt = env.dir.path().join("wt");
    env.git(&["worktree", "add", "-q", wt.to_str().unwrap(), "-b", "wt"]);
    assert_ok(env.ledger_in(
        &wt,
        &[
            "run",
            "--workflow",
            "wf",
            "--tag",
            "wt1",
            "--owner",
            "o",
            "--",
            "true",
        ],
    ));
    // One ledger ref for both work trees: each sees both runs.
    for dir in [&env.repo, &wt] {
        let log = assert_ok(env.ledger_in(dir, &["log"])).stdout;
        assert!(log.contains("_wt1") && log.contains("_main1"), "{log}");
        let v = assert_ok(env.ledger_in(dir, &["verify"])).stdout;
        assert!(v.contains("2 runs"), "{v}");
    }
    // The audit copy and the documents land in the work tree that wrote them.
    assert_ok(env.ledger_in(&wt, &["finalize"]));
    assert!(wt
        .join("docs/production_research/STAGE_AUDIT_LOG.md")
        .exists());
    assert!(!env.repo.join("docs").exists());
    assert!(std::fs::read_dir(wt.join("audit/workstation_runs"))
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().ends_with("_wt1")));
    let fsck = env.git_output(&["fsck", "--strict"]);
    assert_eq!(fsck.code, 0, "{fsck:?}");
}

#[test]
fn packed_refs_and_a_shallow_clone_work() {
    let env = TestEnv::init();
    env.git(&["add", "ledger.yaml", ".ledger/allowed_signers"]);
    env.git(&["commit", "-q", "-m", "ledger config"]);
    assert_ok(env.run("a1", &[], &["true"]));
    env.git(&["pack-refs", "--all"]);
    assert!(
        !env.repo.join(".git/refs/heads/ledger").exists(),
        "the ledger ref is packed"
    );
    assert_ok(env.run("a2", &[], &["true"]));
    assert!(assert_ok(env.ok(&["verify"])).stdout.contains("2 runs"));
    env.git(&["pack-refs", "--all"]);
    assert_ok(env.run("a3", &[], &["true"]));

    // A shallow clone of the user's branch, with the whole ledger fetched.
    let shallow = env.dir.path().join("shallow");
    let url = format!("file://{}", env.repo.display());
    env.git(&[
        "clone",
        "-q",
        "--depth",
        "1",
        &url,
        shallow.to_str().unwrap(),
    ]);
    assert_eq!(
        git_in(&env, &shallow, &["rev-parse", "--is-shallow-repository"]).trim(),
        "true"
    );
    git_in(
        &env,
        &shallow,
        &[
            "fetch",
            "-q",
            "origin",
            "refs/heads/ledger:refs/heads/ledger",
        ],
    );
    let v = assert_ok(env.ledger_in(&shallow, &["verify"])).stdout;
    assert!(v.contains("3 runs"), "{v}");
    assert_ok(env.ledger_in(
        &shallow,
        &[
            "run",
            "--workflow",
            "wf",
            "--tag",
            "s1",
            "--owner",
            "o",
            "--",
            "true",
        ],
    ));
    let log = assert_ok(env.ledger_in(&shallow, &["log"])).stdout;
    assert_eq!(log.lines().count(), 4, "{log}");
    assert!(assert_ok(env.ledger_in(&shallow, &["verify"]))
        .stdout
        .contains("4 runs"));
}

#[test]
fn a_bare_clone_answers_show_and_checks_projections_read_only() {
    let env = TestEnv::init();
    // The team's ledger.yaml differs from the defaults in what documents
    // show: a bare copy must read the committed one to reproduce them.
    let cfg = env.repo.join("ledger.yaml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace(
            "stage_audit_log: docs/production_research/STAGE_AUDIT_LOG.md",
            "stage_audit_log: docs/STAGE_LOG.md",
        ),
    )
    .unwrap();
    env.git(&["add", "ledger.yaml", ".ledger/allowed_signers"]);
    env.git(&["commit", "-q", "-m", "ledger config"]);
    assert_ok(env.run("a", &[], &["true"]));
    assert_eq!(env.run("b", &[], &["false"]).code, 1);
    assert_ok(env.ledger(&["finalize", "--commit"]));
    let bare = env.bare_clone("committee.git");
    let show = assert_ok(env.ledger_in(&bare, &["show", "a"])).stdout;
    assert!(show.contains("status passed"), "{show}");
    let status = assert_ok(env.ledger_in(&bare, &["status"])).stdout;
    assert!(
        status.contains("passed ") && status.contains("failed "),
        "{status}"
    );

    // The committee's check: every document committed on HEAD is what the
    // ledger projects, with HEAD's ledger.yaml and trust file.
    let check = assert_ok(env.ledger_in(&bare, &["finalize", "--check"]));
    assert!(
        check.stdout.contains(" files match the projection"),
        "{check:?}"
    );
    assert!(!check.stdout.contains("not checked"), "{check:?}");
    let json: serde_json::Value = serde_json::from_str(
        &assert_ok(env.ledger_in(&bare, &["finalize", "--check", "--json"])).stdout,
    )
    .unwrap();
    crate::schemas::assert_valid("finalize-check.schema.json", &json);
    assert_eq!(json["clean"], true);
    assert_ok(env.ledger_in(&bare, &["verify", "--projections"]));
    // Nothing was written into the bare repository's refs or objects.
    let refs = git_in(&env, &bare, &["for-each-ref"]);
    assert_ok(env.ledger_in(&bare, &["finalize", "--check"]));
    assert_eq!(git_in(&env, &bare, &["for-each-ref"]), refs);

    let update_bare = || {
        let repo = env.repo.to_str().unwrap();
        git_in(
            &env,
            &bare,
            &["fetch", "-q", repo, "+refs/heads/*:refs/heads/*"],
        );
    };

    // A hand edit committed on the branch is caught, with its diff.
    let log = "docs/STAGE_LOG.md";
    let edited = std::fs::read_to_string(env.repo.join(log))
        .unwrap()
        .replace("| fail |", "| pass |");
    std::fs::write(env.repo.join(log), edited).unwrap();
    env.git(&["commit", "-q", "-am", "tidy the log"]);
    update_bare();
    let check = env.ledger_in(&bare, &["finalize", "--check"]);
    assert_eq!(check.code, 1, "{check:?}");
    assert!(check.stdout.contains(&format!("--- a/{log}")), "{check:?}");
    assert!(check.stdout.contains("\n-| 2026"), "{check:?}");
    assert!(check.stdout.contains("1 of "), "{check:?}");
    let verify = env.ledger_in(&bare, &["verify", "--projections"]);
    assert_eq!(verify.code, 1, "{verify:?}");
    assert!(
        verify.stdout.contains("[projection_modified]"),
        "{verify:?}"
    );

    // Without a committed trust file the check names where it looked.
    env.git(&["rm", "-q", "--cached", ".ledger/allowed_signers"]);
    env.git(&["commit", "-q", "-m", "untrack signers"]);
    update_bare();
    assert_input_error(
        &env.ledger_in(&bare, &["finalize", "--check"]),
        "HEAD:.ledger/allowed_signers: cannot read trust file: not committed on HEAD; pass --trust FILE",
    );
    let trust = env.repo.join(".ledger/allowed_signers");
    assert_ok(env.ledger_in(&bare, &["verify", "--trust", trust.to_str().unwrap()]));

    // A committed ledger.yaml that does not load is named as HEAD's.
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replace("min_cores: 1", "min_cores: eight")).unwrap();
    env.git(&["commit", "-q", "-am", "break the config"]);
    update_bare();
    let refs = git_in(&env, &bare, &["for-each-ref"]);
    for args in [&["log"][..], &["finalize", "--check"]] {
        assert_input_error(
            &env.ledger_in(&bare, args),
            "HEAD:ledger.yaml: preflight.min_cores: invalid type",
        );
    }
    assert_eq!(git_in(&env, &bare, &["for-each-ref"]), refs);
}

#[test]
fn a_bare_clone_does_not_judge_handoff_readiness_it_cannot_see() {
    let env = TestEnv::init();
    let remote = env.dir.path().join("remote.git");
    env.git(&["init", "-q", "--bare", remote.to_str().unwrap()]);
    let cfg = env.repo.join("ledger.yaml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let text = text.replace(
        "  # remote: origin",
        &format!("  remote: {}", remote.display()),
    );
    std::fs::write(&cfg, text).unwrap();
    env.git(&["add", "ledger.yaml", ".ledger/allowed_signers"]);
    env.git(&["commit", "-q", "-m", "ledger config"]);
    assert_ok(env.run("a", &[], &["true"]));
    assert_ok(env.ledger(&["push"]));
    assert_ok(env.ledger(&["finalize", "--commit"]));
    let bare = env.bare_clone("committee.git");
    let check = assert_ok(env.ledger_in(&bare, &["finalize", "--check", "--json"]));
    let json: serde_json::Value = serde_json::from_str(&check.stdout).unwrap();
    crate::schemas::assert_valid("finalize-check.schema.json", &json);
    assert_eq!(json["clean"], true, "{check:?}");
    let skipped = json["skipped"].as_array().unwrap();
    assert!(!skipped.is_empty());
    for s in skipped {
        assert!(
            s["path"]
                .as_str()
                .unwrap()
                .starts_with("audit/session_handoff/"),
            "{s}"
        );
        assert!(s["why"].as_str().unwrap().contains("last seen"), "{s}");
    }
    let text = assert_ok(env.ledger_in(&bare, &["finalize", "--check"])).stdout;
    assert!(
        text.contains(&format!("({} not checked here)", skipped.len())),
        "{text}"
    );
    // The writer's own repository has the last-seen ref: everything is checked.
    let here = assert_ok(env.ledger(&["finalize", "--check", "--json"]));
    let json: serde_json::Value = serde_json::from_str(&here.stdout).unwrap();
    assert_eq!(json["skipped"].as_array().unwrap().len(), 0, "{here:?}");
}

#[test]
fn a_sha256_repository_is_refused_clearly() {
    let env = TestEnv::new();
    let repo = env.dir.path().join("sha256");
    let init = env.git_output(&[
        "init",
        "-q",
        "--object-format=sha256",
        repo.to_str().unwrap(),
    ]);
    if init.code != 0 {
        #[allow(clippy::disallowed_methods)] // CI must never skip this test
        let ci = std::env::var_os("CI").is_some();
        assert!(!ci, "git without SHA-256 support under CI: {init:?}");
        eprintln!("skipped: this git cannot make SHA-256 repositories");
        return;
    }
    for args in [
        &["init", "--principal", "w@example.com"][..],
        &["log"],
        &["verify"],
    ] {
        let out = env.ledger_in(&repo, args);
        assert_input_error(&out, "object format sha256 is not supported");
        assert!(!repo.join(".git/refs/heads/ledger").exists());
    }
}
