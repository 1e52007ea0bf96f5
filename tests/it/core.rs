//! init, run, log, show, verify on real repositories with real children.

use serde_json::Value;

use crate::common::{assert_ok, TestEnv};

fn state(env: &TestEnv) -> (String, String, Vec<u8>, String) {
    let status = env.git(&["status", "--porcelain", "--untracked-files=all"]);
    let status: String = status
        .lines()
        .filter(|l| !l.contains("audit/"))
        .map(|l| format!("{l}\n"))
        .collect();
    (
        env.git(&["rev-parse", "HEAD"]),
        status,
        std::fs::read(env.repo.join(".git/index")).unwrap(),
        env.git(&["diff", "HEAD"]),
    )
}

#[test]
fn head_index_and_working_tree_are_untouched() {
    let env = TestEnv::new();
    // ledger.yaml and the trust file are committed first, so init only creates the ref.
    env.ok(&["init"]);
    env.set_limits(1, 1);
    env.git(&["add", "ledger.yaml", ".ledger/allowed_signers"]);
    env.git(&["commit", "-q", "-m", "ledger config"]);
    env.git(&["update-ref", "-d", "refs/heads/ledger"]);
    // A messy tree: staged, unstaged and untracked changes.
    std::fs::write(env.repo.join("strategy.yaml"), "factor: value\n").unwrap();
    std::fs::write(env.repo.join("staged.txt"), "staged\n").unwrap();
    env.git(&["add", "staged.txt"]);
    std::fs::write(env.repo.join("staged.txt"), "staged, then edited\n").unwrap();
    std::fs::write(env.repo.join("untracked.txt"), "new\n").unwrap();

    let before = state(&env);
    env.ok(&["init"]);
    assert_eq!(state(&env), before, "init");
    assert_ok(env.run("t1", &[], &["sh", "-c", "echo out; echo err >&2"]));
    env.run("t2", &["--require-clean"], &["true"]);
    assert_eq!(state(&env), before, "run");
    env.ok(&["verify"]);
    env.ok(&["log"]);
    env.ok(&["show", "t1"]);
    assert_eq!(state(&env), before, "verify, log, show");
}

#[test]
fn git_accepts_every_ledger_commit() {
    let env = TestEnv::init();
    assert_ok(env.run("a", &[], &["true"]));
    env.run("b", &[], &["false"]);
    let fsck = env.git_output(&["fsck", "--strict", "--no-dangling"]);
    assert_eq!(fsck.code, 0, "{fsck:?}");
    assert!(
        !fsck.stdout.contains("error") && !fsck.stderr.contains("error"),
        "{fsck:?}"
    );
    let commits = env.git(&["rev-list", "refs/heads/ledger"]);
    let commits: Vec<&str> = commits.lines().collect();
    assert_eq!(commits.len(), 5, "genesis + 2 per run");
    for commit in commits {
        let out = env.git_output(&[
            "-c",
            "gpg.ssh.allowedSignersFile=.ledger/allowed_signers",
            "verify-commit",
            commit,
        ]);
        assert_eq!(out.code, 0, "{commit}: {out:?}");
        assert!(out.stderr.contains("Good \"git\" signature"), "{out:?}");
    }
    let shown = env.git(&[
        "-c",
        "gpg.ssh.allowedSignersFile=.ledger/allowed_signers",
        "log",
        "--format=%G? %s",
        "refs/heads/ledger",
    ]);
    assert!(shown.lines().all(|l| l.starts_with("G ")), "{shown}");
}

#[test]
fn child_exit_code_is_passed_through_and_recorded() {
    let env = TestEnv::init();
    let out = env.ledger(&[
        "run",
        "--workflow",
        "production_gates",
        "--tag",
        "committee_2026-11-22_run1",
        "--owner",
        "hui",
        "--notes",
        "official run",
        "--threads",
        "8",
        "--skip-dq",
        "--skip-reason",
        "smoke test without data",
        "--",
        "sh",
        "-c",
        "echo \"threads=$OMP_NUM_THREADS/$VECLIB_MAXIMUM_THREADS\"; echo oops >&2; exit 3",
    ]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stdout.contains("threads=8/8\n"),
        "child output reaches the terminal: {out:?}"
    );
    let run_id = "20261122T100100Z_production_gates_committee_2026-11-22_run1";
    assert!(
        out.stderr
            .contains(&format!("run {run_id} failed (exit 3)")),
        "{out:?}"
    );

    let dir = env.repo.join("audit/workstation_runs").join(run_id);
    let log = std::fs::read_to_string(dir.join("run.log")).unwrap();
    assert_eq!(log, "threads=8/8\noops\n");
    let result =
        crate::common::decode_payload(&env.ledger_file(&format!("runs/{run_id}/result.dsse.json")));
    let p = &result["predicate"];
    assert_eq!(p["status"], "failed");
    assert_eq!(p["exit_code"], 3);
    assert_eq!(p["code"], 3);
    assert_eq!(p["signal"], Value::Null);
    assert_eq!(p["log"]["bytes"], log.len());
    assert_eq!(p["log"]["lines"], 2);
    assert_eq!(p["log"]["tail"], serde_json::json!(["threads=8/8", "oops"]));
    let digest = format!(
        "{:x}",
        <sha2::Sha256 as sha2::Digest>::digest(log.as_bytes())
    );
    assert_eq!(p["log"]["sha256"], digest);

    let command = crate::common::decode_payload(
        &env.ledger_file(&format!("runs/{run_id}/command.dsse.json")),
    );
    let skip = &env.record("context")["predicate"]["dq_skip"];
    assert_eq!(skip["reason"], "smoke test without data");
    assert_eq!(skip["by"], "tester");
    assert_eq!(command["predicate"]["argv"][0], "sh");
    assert_eq!(command["predicate"]["env"]["MKL_NUM_THREADS"], "8");
    for file in [
        "preflight.json",
        "context.json",
        "command.sh",
        "result.json",
    ] {
        assert!(dir.join(file).is_file(), "{file}");
    }
    let copy: Value =
        serde_json::from_slice(&std::fs::read(dir.join("result.json")).unwrap()).unwrap();
    assert_eq!(copy, result, "result.json is the signed payload");
    let script = std::fs::read_to_string(dir.join("command.sh")).unwrap();
    assert!(
        script.contains("export OMP_NUM_THREADS=8\n") && script.contains("exec sh -c '"),
        "{script}"
    );

    // The chain: preflight → context → command → started → result.
    let ids = env.payloads();
    assert_eq!(ids.len(), 5);
    let show: Vec<Value> =
        serde_json::from_str(&env.ok(&["show", run_id, "--json"]).stdout).unwrap();
    let kinds: Vec<&str> = show.iter().map(|p| p["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["preflight", "context", "command", "started", "result"]
    );
    let seqs: Vec<u64> = show.iter().map(|p| p["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert_eq!(show[0]["prev"], Value::Null);
    assert_eq!(show[0]["run_prev"], Value::Null);
    assert_eq!(show[4]["run_prev"], show[4]["prev"]);

    let log = env.ok(&["log"]).stdout;
    assert_eq!(log, format!("failed     {run_id}  hui  exit 3\n"));
    env.ok(&["verify"]);
}

#[test]
fn killed_child_exits_128_plus_signal() {
    let env = TestEnv::init();
    let out = env.run("k", &[], &["sh", "-c", "echo before; kill -TERM $$"]);
    assert_eq!(out.code, 143, "{out:?}");
    let result = env.record("result");
    assert_eq!(result["predicate"]["signal"], 15);
    assert_eq!(result["predicate"]["exit_code"], Value::Null);
    assert_eq!(result["predicate"]["code"], 143);
}

#[test]
fn missing_program_is_a_recorded_failure() {
    let env = TestEnv::init();
    let out = env.run("x", &[], &["no-such-program-xyz"]);
    assert_eq!(out.code, 127, "{out:?}");
    let result = env.record("result");
    assert_eq!(result["predicate"]["code"], 127);
    assert!(result["predicate"]["log"]["tail"][0]
        .as_str()
        .unwrap()
        .contains("cannot start"));
    env.ok(&["verify"]);
}

#[test]
fn preflight_below_default_thresholds_blocks_and_is_recorded() {
    let env = TestEnv::new();
    env.ok(&["init"]);
    // This machine kind has 2 cores and 24 GiB, below the defaults (8, 60).
    // On a bigger machine, raise the bar so the test still means the same.
    let cores = std::thread::available_parallelism().unwrap().get();
    if cores >= 8 {
        env.set_limits(100_000, 60);
    }
    let out = env.run("blocked", &[], &["sh", "-c", "touch ran"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("blocked by preflight") && out.stderr.contains("cores: "),
        "{out:?}"
    );
    assert!(!env.repo.join("ran").exists(), "the command must not run");
    let payloads = env.payloads();
    assert_eq!(payloads.len(), 1, "only the preflight record");
    assert_eq!(payloads[0]["kind"], "preflight");
    assert_eq!(payloads[0]["predicate"]["passed"], false);
    let cores_check = &payloads[0]["predicate"]["checks"][0];
    assert_eq!(cores_check["id"], "cores");
    assert_eq!(cores_check["passed"], false);
    assert!(env.ok(&["log"]).stdout.starts_with("blocked "));
    assert!(env
        .repo
        .join(format!(
            "audit/workstation_runs/{}/preflight.json",
            env.run_ids()[0]
        ))
        .is_file());
    env.ok(&["verify"]);
}

#[test]
fn require_clean_blocks_a_dirty_tree() {
    let env = TestEnv::init();
    std::fs::write(env.repo.join("strategy.yaml"), "factor: changed\n").unwrap();
    let out = env.run("c", &["--require-clean"], &["true"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .contains("clean_tree: tracked files differ from HEAD"),
        "{out:?}"
    );
    let pre = &env.payloads()[0]["predicate"];
    assert_eq!(pre["git"]["dirty"], true);
    assert_eq!(pre["git"]["branch"], "main");
}

#[test]
fn a_tag_is_used_once_unless_rerun() {
    let env = TestEnv::init();
    assert_ok(env.run("t", &[], &["true"]));
    let tip = env.ledger_tip();
    let out = env.ledger(&[
        "run",
        "--workflow",
        "other",
        "--tag",
        "t",
        "--owner",
        "o",
        "--",
        "true",
    ]);
    crate::common::assert_input_error(
        &out,
        "tag \"t\" is already used by run 20261122T100100Z_wf_t",
    );
    assert_eq!(env.ledger_tip(), tip);
    // A tag that merely ends like another one is a different tag.
    assert_ok(env.run("x_t", &[], &["true"]));
    assert_ok(env.run("t", &["--rerun"], &["true"]));
    assert_eq!(env.run_ids().len(), 3);
    env.ok(&["verify"]);
}

#[test]
fn init_is_idempotent_and_prints_the_trust_line() {
    let env = TestEnv::new();
    let first = env.ok(&["init", "--principal", "hui@example.com"]);
    assert!(first.stdout.contains("wrote ledger.yaml"), "{first:?}");
    assert!(first.stdout.contains("(signed genesis)"), "{first:?}");
    let trust = std::fs::read_to_string(env.repo.join(".ledger/allowed_signers")).unwrap();
    assert!(
        trust.starts_with("hui@example.com ssh-ed25519 AAAA"),
        "{trust}"
    );
    let tip = env.ledger_tip();
    let again = env.ok(&["init"]);
    assert!(again.stdout.contains("already initialised"), "{again:?}");
    assert_eq!(env.ledger_tip(), tip);
    assert_eq!(
        std::fs::read_to_string(env.repo.join(".ledger/allowed_signers")).unwrap(),
        trust
    );
    let template = std::fs::read_to_string(env.repo.join("ledger.yaml")).unwrap();
    assert_eq!(
        template,
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/ledger-template/ledger.yaml"
        ))
        .unwrap()
    );
    env.ok(&["verify"]);
    assert_eq!(env.ok(&["log"]).stdout, "no runs yet\n");
}

#[test]
fn keygen_writes_a_key_ssh_keygen_reads() {
    let env = TestEnv::new();
    let key = env.dir.path().join("keys/second");
    env.keygen(&key);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let out = std::process::Command::new("ssh-keygen")
        .arg("-l")
        .arg("-f")
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("(ED25519)"));
    let again = env.ledger(&["keygen", "--out", key.to_str().unwrap()]);
    crate::common::assert_input_error(&again, "already exists");
}

#[test]
fn log_digest_describes_the_file_even_when_the_child_rewrites_it() {
    let env = TestEnv::init();
    // The child shrinks its own output midway; the digest must match the file.
    let script = "echo one; echo two two two; truncate -s 4 /proc/$$/fd/1; echo three";
    let out = env.run("t", &[], &["sh", "-c", script]);
    assert_eq!(out.code, 0, "{out:?}");
    let run_id = env.run_ids().pop().unwrap();
    let log = std::fs::read(
        env.repo
            .join("audit/workstation_runs")
            .join(&run_id)
            .join("run.log"),
    )
    .unwrap();
    assert_eq!(log, b"one\nthree\n");
    let result =
        crate::common::decode_payload(&env.ledger_file(&format!("runs/{run_id}/result.dsse.json")));
    let digest = format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(&log));
    assert_eq!(result["predicate"]["log"]["sha256"], digest);
    assert_eq!(result["predicate"]["log"]["bytes"], 10);
    assert_eq!(
        result["predicate"]["log"]["tail"],
        serde_json::json!(["one", "three"])
    );
}

#[test]
fn output_of_a_background_child_does_not_hold_the_run() {
    let env = TestEnv::init();
    // The background sleeper keeps the log open; the run ends with its command.
    let started = std::time::Instant::now();
    let out = env.run("bg", &[], &["sh", "-c", "sleep 30 & echo done"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "ledger waited for the background child"
    );
    assert!(out.stdout.contains("done\n"), "{out:?}");
}

#[test]
fn a_committee_verifies_a_bare_clone_with_its_own_trust_file() {
    let env = TestEnv::init();
    assert_ok(env.run("a", &[], &["true"]));
    let bare = env.bare_clone("committee.git");
    let trust = env.dir.path().join("committee_allowed_signers");
    std::fs::copy(env.repo.join(".ledger/allowed_signers"), &trust).unwrap();
    let out = env.ledger_in(&bare, &["verify", "--trust", trust.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains(&format!("at {}\n", env.ledger_tip())),
        "{out:?}"
    );
    let log = env.ledger_in(&bare, &["log"]);
    assert!(log.stdout.starts_with("passed "), "{log:?}");
    let run = env.ledger_in(
        &bare,
        &[
            "run",
            "--workflow",
            "wf",
            "--tag",
            "b",
            "--owner",
            "o",
            "--",
            "true",
        ],
    );
    crate::common::assert_input_error(&run, "bare repository");
}

#[test]
fn secrets_in_the_environment_never_reach_the_ledger() {
    let env = TestEnv::init();
    let aws = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYFAKEFAKEFAKE";
    let pem_body = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQFAKEFAKE";
    let pem = format!(
        "-----BEGIN OPENSSH PRIVATE KEY-----\n{pem_body}\n-----END OPENSSH PRIVATE KEY-----\n"
    );
    // Both names are allow-listed on purpose: the second guard must still hold.
    let cfg = env.repo.join("ledger.yaml");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "    - SLURM_JOB_ID\n",
        "    - SLURM_JOB_ID\n    - AWS_*\n    - DEPLOY_NOTE\n",
    );
    std::fs::write(&cfg, text).unwrap();
    let mut cmd = env.command(&[
        "run",
        "--workflow",
        "wf",
        "--tag",
        "s",
        "--owner",
        "o",
        "--notes",
        "n",
        "--",
        "true",
    ]);
    cmd.env("AWS_SECRET_ACCESS_KEY", aws)
        .env("DEPLOY_NOTE", &pem)
        .env("PYTHONHASHSEED", "0");
    let out: crate::common::Run = cmd.output().unwrap().into();
    assert_eq!(out.code, 0, "{out:?}");

    let context = env.record("context");
    let recorded = &context["predicate"]["env"];
    assert_eq!(recorded["AWS_SECRET_ACCESS_KEY"], "[redacted]");
    assert_eq!(recorded["DEPLOY_NOTE"], "[redacted]");
    assert_eq!(recorded["PYTHONHASHSEED"], "0");
    assert!(
        recorded.get("HOME").is_none(),
        "not allow-listed: {recorded}"
    );

    let mut everything = format!("{}{}", out.stdout, out.stderr);
    for path in env.ledger_paths() {
        everything.push_str(&String::from_utf8_lossy(&env.ledger_file(&path)));
    }
    for payload in env.payloads() {
        everything.push_str(&payload.to_string());
    }
    everything.push_str(&env.git(&["log", "--format=%B", "refs/heads/ledger"]));
    let audit = env.repo.join("audit/workstation_runs");
    for run in std::fs::read_dir(&audit).unwrap() {
        for file in std::fs::read_dir(run.unwrap().path()).unwrap() {
            everything.push_str(&String::from_utf8_lossy(
                &std::fs::read(file.unwrap().path()).unwrap(),
            ));
        }
    }
    for secret in [aws, pem_body, "PRIVATE KEY"] {
        assert!(!everything.contains(secret), "{secret:?} leaked");
    }
}

#[test]
fn preflight_alone_checks_without_recording() {
    let env = TestEnv::init();
    let tip = env.ledger_tip();
    let out = env.ok(&["preflight"]);
    assert!(
        out.stdout.contains("ok   cores") && out.stdout.ends_with("preflight: ok\n"),
        "{out:?}"
    );
    std::fs::write(env.repo.join("strategy.yaml"), "changed\n").unwrap();
    let out = env.ledger(&["preflight", "--require-clean", "--json"]);
    assert_eq!(out.code, 1, "{out:?}");
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["passed"], false);
    let failed: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["clean_tree"]);
    crate::schemas::assert_valid("preflight-report.schema.json", &report);
    assert_eq!(env.ledger_tip(), tip, "preflight records nothing");
}

#[test]
fn inputs_and_freeze_file_are_hashed_and_the_pinned_commit_checked() {
    let env = TestEnv::init();
    let cfg = env.repo.join("ledger.yaml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("inputs: []", "inputs:\n  - strategy.yaml\n  - data/*.csv");
    std::fs::write(&cfg, text).unwrap();
    std::fs::create_dir(env.repo.join("data")).unwrap();
    std::fs::write(env.repo.join("data/b.csv"), "date,x\n2026-01-02,2\n").unwrap();
    std::fs::write(env.repo.join("data/a.csv"), "date,x\n2026-01-01,1\n").unwrap();
    let head = env.git(&["rev-parse", "HEAD"]).trim().to_string();
    let good = format!("freeze_2026-11-22_g{}.json", &head[..8]);
    std::fs::write(env.repo.join(&good), "{\"frozen\": true}\n").unwrap();

    assert_ok(env.run("frozen", &["--freeze-file", &good], &["true"]));
    let context = env.record("context")["predicate"].clone();
    let paths: Vec<&str> = context["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["data/a.csv", "data/b.csv", "strategy.yaml"]);
    let sha = |bytes: &[u8]| format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(bytes));
    assert_eq!(context["inputs"][2]["sha256"], sha(b"factor: momentum\n"));
    assert_eq!(context["freeze"]["path"], good);
    assert_eq!(context["freeze"]["pinned_commit"], &head[..8]);
    assert_eq!(context["freeze"]["sha256"], sha(b"{\"frozen\": true}\n"));

    let bad = "freeze_g0123456789.json";
    std::fs::write(env.repo.join(bad), "{}\n").unwrap();
    let out = env.run("stale", &["--freeze-file", bad], &["true"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "freeze_commit: freeze file pins commit 0123456789, HEAD is {head}"
        )),
        "{out:?}"
    );
    let pre = env.ledger(&["preflight", "--freeze-file", bad]);
    assert_eq!(pre.code, 1, "{pre:?}");

    let tip = env.ledger_tip();
    let out = env.run(
        "missing",
        &["--freeze-file", "nope_g1234567.json"],
        &["true"],
    );
    crate::common::assert_input_error(&out, "--freeze-file: ");
    assert!(out.stderr.contains("nope_g1234567.json"), "{out:?}");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("  - data/*.csv", "  - ../outside/*");
    std::fs::write(&cfg, text).unwrap();
    crate::common::assert_input_error(
        &env.run("x", &[], &["true"]),
        "ledger.yaml: inputs: \"../outside/*\" must be a relative glob",
    );
    assert_eq!(env.ledger_tip(), tip);
}

#[test]
fn products_and_the_log_are_stored_and_verified() {
    let env = TestEnv::init();
    // A report from an earlier day, untouched by the run, is not its product.
    std::fs::create_dir_all(env.repo.join("gate_results/production_gates_old")).unwrap();
    std::fs::write(
        env.repo
            .join("gate_results/production_gates_old/production_gates_report.json"),
        "{}\n",
    )
    .unwrap();
    let script = "mkdir -p gate_results/production_gates_1 && echo '{\"factor\":\"momentum\"}' > gate_results/production_gates_1/production_gates_report.json && echo wrote";
    assert_ok(env.run("p", &[], &["sh", "-c", script]));
    let run_id = env.run_ids().pop().unwrap();
    let result = env.record("result")["predicate"].clone();
    let products = result["products"].as_array().unwrap();
    assert_eq!(products.len(), 1, "{products:#?}");
    let report = "gate_results/production_gates_1/production_gates_report.json";
    assert_eq!(products[0]["path"], report);
    assert_eq!(products[0]["stored"], true);
    assert_eq!(
        env.ledger_file(&format!("runs/{run_id}/products/{report}")),
        b"{\"factor\":\"momentum\"}\n"
    );
    assert_eq!(result["log"]["stored"], true);
    assert_eq!(env.ledger_file(&format!("runs/{run_id}/log")), b"wrote\n");
    env.ok(&["verify"]);
    let subjects = env.record("result")["subject"].to_string();
    assert!(
        subjects.contains(report),
        "products are in-toto subjects: {subjects}"
    );

    // Limits: larger logs and products are kept by digest only.
    let cfg = env.repo.join("ledger.yaml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("max_bytes: 67108864", "max_bytes: 4")
        .replace("max_store_bytes: 16777216", "max_store_bytes: 3");
    std::fs::write(&cfg, text).unwrap();
    assert_ok(env.run(
        "big",
        &[],
        &[
            "sh",
            "-c",
            &script.replace("production_gates_1", "production_gates_2"),
        ],
    ));
    let run_id = env
        .run_ids()
        .into_iter()
        .find(|r| r.ends_with("_big"))
        .unwrap();
    let result = env.record("result")["predicate"].clone();
    assert_eq!(result["log"]["stored"], false);
    assert_eq!(result["products"][0]["stored"], false);
    assert_eq!(result["products"][0]["bytes"], 22);
    assert!(!env
        .ledger_paths()
        .iter()
        .any(|p| p.starts_with(&format!("runs/{run_id}/products"))
            || *p == format!("runs/{run_id}/log")));
    env.ok(&["verify"]);
}

#[test]
fn verify_since_catches_a_rewritten_history() {
    let env = TestEnv::init();
    crate::common::assert_ok(env.run("a", &[], &["true"]));
    let checkpoint = env.ledger_tip();
    crate::common::assert_ok(env.run("b", &[], &["true"]));
    // Appended after the checkpoint: fine.
    let out = env.ledger(&["verify", "--since", &checkpoint]);
    assert_eq!(out.code, 0, "{out:?}");
    // Rewritten: the ledger is reset behind the checkpoint and grows again,
    // every record validly signed by the trusted writer.
    let before = env.git(&["rev-parse", &format!("{checkpoint}~1")]);
    env.git(&["update-ref", "refs/heads/ledger", before.trim()]);
    crate::common::assert_ok(env.run("c", &["--rerun"], &["true"]));
    assert_eq!(
        env.ledger(&["verify"]).code,
        0,
        "each record still verifies"
    );
    let out = env.ledger(&["verify", "--since", &checkpoint]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("[history_rewritten]"), "{out:?}");
    // A checkpoint this repository never had.
    let out = env.ledger(&["verify", "--since", &"1".repeat(40), "--json"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("\"since_unknown\""), "{out:?}");
    crate::common::assert_input_error(&env.ledger(&["verify", "--since", "HEAD"]), "--since");
}

#[test]
fn git_shows_good_signatures_and_readable_subjects_after_init_git_config() {
    let env = crate::common::TestEnv::new();
    let remote = env.dir.path().join("remote.git");
    env.git(&["init", "-q", "--bare", remote.to_str().unwrap()]);
    env.git(&["remote", "add", "origin", remote.to_str().unwrap()]);
    let out = env.ok(&["init", "--principal", "w@example.com", "--git-config"]);
    assert!(
        out.stdout
            .contains("set git config gpg.ssh.allowedSignersFile"),
        "{out:?}"
    );
    let spec = "+refs/heads/ledger:refs/remotes/origin/ledger";
    assert!(
        out.stdout
            .contains(&format!("git config --add remote.origin.fetch {spec}")),
        "{out:?}"
    );
    env.set_limits(1, 1);
    crate::common::assert_ok(env.run("ok1", &[], &["true"]));
    assert_eq!(env.run("bad1", &[], &["sh", "-c", "exit 3"]).code, 3);
    // Plain git, no -c flags: every ledger commit has a good signature.
    let log = env.git(&["log", "--format=%G? %s", "refs/heads/ledger"]);
    assert!(
        log.lines().all(|l| l.starts_with("G ")),
        "not all good:\n{log}"
    );
    let shown = env.git(&["log", "--show-signature", "-1", "refs/heads/ledger"]);
    assert!(shown.contains("Good \"git\" signature"), "{shown}");
    // One subject line per commit naming the run, its records and outcomes.
    assert!(
        log.contains("_wf_ok1: preflight passed, context, command"),
        "{log}"
    );
    assert!(log.contains("_wf_bad1: result failed (exit 3)"), "{log}");
    // The printed refspec works for plain git.
    env.ok(&["push", "origin"]);
    env.git(&["config", "--add", "remote.origin.fetch", spec]);
    env.git(&["fetch", "-q", "origin"]);
    assert_eq!(
        env.git(&["rev-parse", "refs/remotes/origin/ledger"]),
        env.git(&["rev-parse", "refs/heads/ledger"])
    );
    // Running init again changes nothing.
    let again = env.ok(&["init", "--git-config"]);
    assert!(again.stdout.starts_with("already initialised"), "{again:?}");
}
