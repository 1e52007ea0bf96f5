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
    assert_ok(env.run("a", &[], &["true"]));
    let bare = env.bare_clone("committee.git");
    let show = assert_ok(env.ledger_in(&bare, &["show", "a"])).stdout;
    assert!(show.contains("status passed"), "{show}");
    let status = assert_ok(env.ledger_in(&bare, &["status"])).stdout;
    assert!(status.starts_with("passed"), "{status}");
    // Nothing to compare documents with in a bare clone: a clear refusal.
    let check = env.ledger_in(&bare, &["finalize", "--check"]);
    assert_input_error(&check, "bare repository");
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
