//! Bad input: a one-line error naming the file or field, exit 2, the ledger
//! ref unchanged. A stale ref lock never hangs a writer.

use std::time::{Duration, Instant};

use crate::common::{assert_input_error, TestEnv};

fn run_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["run", "--workflow", "wf", "--tag", "t", "--owner", "o"];
    args.extend_from_slice(extra);
    args
}

#[test]
fn not_a_git_repository() {
    let env = TestEnv::new();
    let outside = env.dir.path().join("plain");
    std::fs::create_dir(&outside).unwrap();
    for args in [
        vec!["init"],
        run_args(&["--", "true"]),
        vec!["verify"],
        vec!["log"],
    ] {
        let out = env.ledger_in(&outside, &args);
        assert_input_error(&out, "not inside a git repository");
    }
}

#[test]
fn no_ledger_yaml() {
    let env = TestEnv::new();
    let out = env.ledger(&run_args(&["--", "true"]));
    assert_input_error(&out, "ledger.yaml: not found");
    assert!(out.stderr.contains("hint: run `ledger init`"), "{out:?}");
}

#[test]
fn malformed_ledger_yaml_names_line_and_key() {
    let env = TestEnv::init();
    let tip = env.ledger_tip();
    let good = std::fs::read_to_string(env.repo.join("ledger.yaml")).unwrap();
    for (text, needle) in [
        (
            good.replace("min_cores: 1", "min_cores: eight"),
            "preflight.min_cores: invalid type",
        ),
        (
            good.replace("min_cores: 1", "min_corez: 1"),
            "unknown field `min_corez`",
        ),
        (
            good.replace("version: 1", "version: 7"),
            "version: 7 is not supported",
        ),
        (
            good.replace("ref: refs/heads/ledger", "ref: ledger"),
            "ledger.ref",
        ),
        ("version: 1\npreflight: [\n".to_string(), "ledger.yaml: "),
    ] {
        std::fs::write(env.repo.join("ledger.yaml"), &text).unwrap();
        let out = env.ledger(&run_args(&["--", "true"]));
        assert_input_error(&out, needle);
        assert!(out.stderr.contains("ledger.yaml"), "{out:?}");
        if needle.contains("min_cor") {
            assert!(out.stderr.contains("line "), "names the line: {out:?}");
        }
        assert_eq!(env.ledger_tip(), tip);
    }
}

#[test]
fn key_problems() {
    let env = TestEnv::init();
    let tip = env.ledger_tip();
    let keys = env.dir.path().join("keys");
    let missing = keys.join("missing");
    let directory = keys.join("a-directory");
    std::fs::create_dir_all(&directory).unwrap();
    let garbage = keys.join("garbage");
    std::fs::write(&garbage, "not a key\n").unwrap();
    let encrypted = keys.join("encrypted");
    let rsa = keys.join("rsa");
    let ssh_keygen = |args: &[&str]| {
        let out = std::process::Command::new("ssh-keygen")
            .args(args)
            .output()
            .expect("ssh-keygen is installed");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ssh_keygen(&[
        "-q",
        "-t",
        "ed25519",
        "-N",
        "secret",
        "-f",
        encrypted.to_str().unwrap(),
    ]);
    ssh_keygen(&["-q", "-t", "ecdsa", "-N", "", "-f", rsa.to_str().unwrap()]);
    let open = keys.join("open");
    env.keygen(&open);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();

    for (key, needle) in [
        (&missing, "missing: key file not found"),
        (&directory, "a-directory: cannot read key file"),
        (&garbage, "garbage: not an OpenSSH private key"),
        (&encrypted, "encrypted: key is passphrase-protected"),
        (&rsa, "rsa: key type is ecdsa-sha2-nistp256"),
        (&open, "open: private key is readable by others (mode 644)"),
    ] {
        let out = env.ledger(&run_args(&["--key", key.to_str().unwrap(), "--", "true"]));
        assert_input_error(&out, needle);
        assert_eq!(env.ledger_tip(), tip);
    }
    let out = env.ledger(&run_args(&["--key", open.to_str().unwrap(), "--", "true"]));
    assert!(
        out.stderr
            .contains(&format!("hint: chmod 600 {}", open.display())),
        "{out:?}"
    );

    // No key anywhere.
    let mut cmd = env.command(&run_args(&["--", "true"]));
    cmd.env_remove("LEDGER_KEY");
    let out: crate::common::Run = cmd.output().unwrap().into();
    assert_input_error(&out, "no signing key");
}

#[test]
fn bad_flags_and_commands() {
    let env = TestEnv::init();
    let tip = env.ledger_tip();
    assert_input_error(&env.ledger(&run_args(&["--"])), "command: nothing to run");
    assert_input_error(&env.ledger(&run_args(&[])), "command: nothing to run");
    assert_input_error(
        &env.ledger(&run_args(&["--threads", "0", "--", "true"])),
        "--threads: must be at least 1",
    );
    for tag in [
        "../escape",
        "a/b",
        "semi;colon",
        "x.lock",
        ".hidden",
        "two..dots",
        "spa ce",
    ] {
        let out = env.run(tag, &[], &["true"]);
        assert_input_error(&out, &format!("--tag: {tag:?} is not allowed"));
    }
    let out = env.ledger(&[
        "run",
        "--workflow",
        "w/f",
        "--tag",
        "t",
        "--owner",
        "o",
        "--",
        "true",
    ]);
    assert_input_error(&out, "--workflow:");
    let out = env.ledger(&[
        "run",
        "--bogus",
        "--workflow",
        "wf",
        "--tag",
        "t",
        "--owner",
        "o",
        "--",
        "true",
    ]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .starts_with("error: unexpected argument '--bogus'"),
        "{out:?}"
    );
    let out = env.ledger(&["show", "nope"]);
    assert_input_error(&out, "RUN: no run or tag \"nope\"");
    let out = env.ledger(&["verify", "--trust", "/nonexistent/signers"]);
    assert_input_error(&out, "/nonexistent/signers: cannot read trust file");
    std::fs::write(env.repo.join("bad_signers"), "x@y ssh-ed25519 AAAA!!\n").unwrap();
    let out = env.ledger(&["verify", "--trust", "bad_signers"]);
    assert_input_error(&out, "bad_signers:1: invalid ssh-ed25519 key");
    assert_eq!(env.ledger_tip(), tip);
    assert!(env.run_ids().is_empty());
}

#[test]
fn run_before_init_names_the_ref() {
    let env = TestEnv::new();
    std::fs::write(env.repo.join("ledger.yaml"), "version: 1\n").unwrap();
    let out = env.ledger(&run_args(&["--", "true"]));
    assert_input_error(&out, "ledger ref refs/heads/ledger does not exist");
}

#[test]
fn a_held_ref_lock_fails_fast_with_a_way_out() {
    let env = TestEnv::init();
    let tip = env.ledger_tip();
    let lock = env.repo.join(".git/refs/heads/ledger.lock");
    // A live process (this test) holds the lock open, as a writer would.
    let held = std::fs::File::create(&lock).unwrap();
    let started = Instant::now();
    let out = env.ledger(&run_args(&["--", "true"]));
    let took = started.elapsed();
    assert_input_error(&out, "ledger.lock: ref lock held by another process");
    assert!(
        out.stderr.contains(&format!("rm {}", lock.display())),
        "{out:?}"
    );
    assert!(
        took < Duration::from_secs(30),
        "bounded retries, took {took:?}"
    );
    assert_eq!(env.ledger_tip(), tip);
    assert!(lock.exists(), "a held lock is never removed");
    drop(held);
    std::fs::remove_file(&lock).unwrap();
    env.ok(&run_args(&["--rerun", "--", "true"]));
    env.ok(&["verify"]);
}

#[test]
fn a_stale_ref_lock_that_nobody_holds_is_cleared() {
    let env = TestEnv::init();
    let lock = env.repo.join(".git/refs/heads/ledger.lock");
    // What a writer killed with -9 mid-update leaves: a lock file, open nowhere.
    std::fs::write(&lock, "").unwrap();
    let out = env.ledger(&run_args(&["--", "true"]));
    // Proving it stale needs every process's descriptors to be readable: as
    // root they are (CI runs as root); otherwise the lock stays, with the hint.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert_input_error(&out, "ref lock held by another process");
        assert!(lock.exists());
        return;
    }
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!lock.exists());
    env.ok(&["verify"]);
}

#[test]
fn signing_key_resolution_order() {
    let env = TestEnv::init();
    let home_key = env.dir.path().join("home_key");
    env.keygen(&home_key);
    let git_key = env.dir.path().join("keys/git_key");
    env.keygen(&git_key);
    let writer_of = |env: &TestEnv| -> String {
        let last = env
            .payloads()
            .into_iter()
            .max_by_key(|p| p["at"].as_str().unwrap().to_string())
            .unwrap();
        last["writer"].as_str().unwrap().to_string()
    };
    let fingerprint = |key: &std::path::Path| -> String {
        let out = std::process::Command::new("ssh-keygen")
            .arg("-l")
            .arg("-f")
            .arg(key)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    };
    // Each run without LEDGER_KEY, so the later sources are consulted.
    let run = |tag: &str, extra: &[&str]| {
        let mut cmd = env.run_command(tag, extra, &["true"]);
        cmd.env_remove("LEDGER_KEY");
        let out: crate::common::Run = cmd.output().unwrap().into();
        assert_eq!(out.code, 0, "{out:?}");
    };

    // git's user.signingkey, when it names a key file (a .pub path names the pair).
    env.git(&[
        "config",
        "user.signingkey",
        &format!("{}.pub", git_key.display()),
    ]);
    run("from_git", &[]);
    assert_eq!(writer_of(&env), fingerprint(&git_key));

    // ledger.yaml signing.key beats git, and `~/` is the home directory.
    let cfg = env.repo.join("ledger.yaml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("  # key: ~/.ssh/id_ed25519", "  key: ~/home_key");
    std::fs::write(&cfg, text).unwrap();
    run("from_config", &[]);
    assert_eq!(writer_of(&env), fingerprint(&home_key));

    // --key beats everything.
    run("from_flag", &["--key", env.key.to_str().unwrap()]);
    assert_eq!(writer_of(&env), fingerprint(&env.key));
}

#[test]
fn malformed_config_fields_added_later_name_the_field() {
    let env = TestEnv::init();
    let tip = env.ledger_tip();
    let good = std::fs::read_to_string(env.repo.join("ledger.yaml")).unwrap();
    for (text, needle) in [
        (
            good.replace(
                "    - gate_results/**/production_gates_report.json",
                "    - /etc/*",
            ),
            "ledger.yaml: products.globs: \"/etc/*\" must be a relative glob",
        ),
        (
            good.replace("dir: audit/workstation_runs", "dir: ../audit"),
            "ledger.yaml: audit.dir: \"../audit\"",
        ),
        (
            good.replace(
                "allowed_signers: .ledger/allowed_signers",
                "allowed_signers: \" \"",
            ),
            "ledger.yaml: trust.allowed_signers: must name a file",
        ),
        (
            good.replace("  not_null: []", "  not_null: []\n  max_null_fraction: 1.5"),
            "dq.max_null_fraction: 1.5 must be between 0 and 1",
        ),
        (
            good.replace("  columns: {}", "  columns: {ret: decimal}"),
            "unknown variant `decimal`",
        ),
        (
            good.replace(
                "  not_null: []",
                "  not_null: []\n  staleness: {max_age_days: 3, as_of: 20/11/2026}",
            ),
            "\"20/11/2026\" is not a date YYYY-MM-DD",
        ),
        (
            good.replace("  factor: /factor", "  factor: factor"),
            "ledger.yaml: report.factor: \"factor\" is not a JSON pointer",
        ),
        (
            good.replace("  gates: /gates", "  gates: \"\""),
            "ledger.yaml: report.gates: is required",
        ),
        (
            good.replace(
                "  product: \"**/production_gates_report.json\"",
                "  product: \"../*.json\"",
            ),
            "ledger.yaml: report.product: \"../*.json\" must be a relative glob",
        ),
        (
            good.replace(
                "  summary_name: production_gates_final_summary.md",
                "  summary_name: sub/summary.md",
            ),
            "ledger.yaml: finalize.summary_name: \"sub/summary.md\" must be a plain file name",
        ),
        (
            good.replace(
                "  review_name: production_gates_run_review.md",
                "  review_name: production_gates_final_summary.md",
            ),
            "ledger.yaml: finalize.review_name: must differ from finalize.summary_name",
        ),
        (
            good.replace(
                "  stage_audit_log: docs/production_research/STAGE_AUDIT_LOG.md",
                "  stage_audit_log: /tmp/LOG.md",
            ),
            "ledger.yaml: finalize.stage_audit_log: \"/tmp/LOG.md\" must be a relative path",
        ),
        (
            good.replace(
                "  registry_dir: audit/factor_registry",
                "  registry_dir: .git/x",
            ),
            "ledger.yaml: finalize.registry_dir: \".git/x\" must be a relative path",
        ),
        (
            good.replace(
                "  failure_dir: audit/failure_patterns",
                "  failure_dir: ../x",
            ),
            "ledger.yaml: finalize.failure_dir: \"../x\" must be a relative path",
        ),
        (
            good.replace(
                "  handoff_dir: audit/session_handoff",
                "  handoff_dir: \"\"",
            ),
            "ledger.yaml: finalize.handoff_dir: \"\" must be a relative path",
        ),
        (
            good.replace("    near_miss: 3", "    near_miss: -1"),
            "finalize.queue.near_miss: invalid type: integer `-1`, expected u32",
        ),
        (
            good.replace("  threshold: 2", "  threshold: 0"),
            "ledger.yaml: committee.threshold: must be at least 1",
        ),
        (
            good.replace("  tag_prefix: committee_", "  tag_prefix: \"\""),
            "ledger.yaml: committee.tag_prefix: must not be empty",
        ),
        (
            good.replace(
                "  # allowed_signers: .ledger/committee_signers",
                "  allowed_signers: \" \"",
            ),
            "ledger.yaml: committee.allowed_signers: must name a file",
        ),
    ] {
        std::fs::write(env.repo.join("ledger.yaml"), &text).unwrap();
        let out = env.run("t", &[], &["true"]);
        assert_input_error(&out, needle);
        assert!(out.stderr.contains("ledger.yaml"), "{out:?}");
        assert_eq!(env.ledger_tip(), tip);
    }
    std::fs::write(env.repo.join("ledger.yaml"), &good).unwrap();
    let mut cmd = env.run_command("t", &[], &["true"]);
    cmd.env("LEDGER_TIMESTAMP", "yesterday");
    let out: crate::common::Run = cmd.output().unwrap().into();
    assert_input_error(
        &out,
        "LEDGER_TIMESTAMP: \"yesterday\" is not an RFC 3339 time",
    );
    assert_eq!(env.ledger_tip(), tip);
}

#[test]
fn monitor_and_generate_reject_bad_input_in_one_line() {
    let env = TestEnv::init();
    let tip = env.ledger_tip();
    assert_input_error(
        &env.ledger(&["monitor", "--tag", "t", "--interval", "0"]),
        "--interval: must be a positive number of seconds",
    );
    assert_input_error(&env.ledger(&["monitor", "--tag", "a b"]), "--tag");
    let out = env.ledger(&["monitor", "--tag", "t", "--remote-dir", "x"]);
    assert_eq!(out.code, 2, "--remote-dir needs --host: {out:?}");
    // An ssh program that cannot reach the host: one line, exit 2.
    let mut cmd = env.command(&[
        "monitor",
        "--tag",
        "t",
        "--host",
        "nobody@nowhere",
        "--interval",
        "0.1",
    ]);
    cmd.env("LEDGER_SSH", "false");
    let out: crate::common::Run = cmd.output().unwrap().into();
    assert_input_error(&out, "--host nobody@nowhere: `ledger status` failed");
    assert_eq!(env.ledger_tip(), tip);

    let dir = env.dir.path().join("gen");
    let d = dir.to_str().unwrap();
    assert_input_error(
        &env.ledger(&["generate", d, "--runs", "0"]),
        "generate: --runs, --writers and --per-commit must be at least 1",
    );
    assert_input_error(
        &env.ledger(&["generate", d, "--start", "monday"]),
        "--start: \"monday\" is not an RFC 3339 time",
    );
    std::fs::create_dir_all(dir.join("something")).unwrap();
    assert_input_error(&env.ledger(&["generate", d, "--runs", "1"]), "is not empty");
}

#[test]
fn config_check_reports_every_problem_with_line_and_column() {
    let env = TestEnv::init();
    // init gives editors the schema the template's modeline names.
    let template = std::fs::read_to_string(env.repo.join("ledger.yaml")).unwrap();
    assert!(
        template.starts_with("# yaml-language-server: $schema=.ledger/ledger-config.schema.json\n")
    );
    let copy = std::fs::read_to_string(env.repo.join(".ledger/ledger-config.schema.json")).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&copy).unwrap();
    assert_eq!(schema["title"], "ledger.yaml");
    let clean = env.ok(&["config", "check"]);
    assert!(clean.stdout.ends_with("ledger.yaml: ok\n"), "{clean:?}");

    let broken = template
        .replace("min_cores: 1", "min_cores: lots")
        .replace("  ref: refs/heads/ledger", "  ref: ledger")
        .replace("inputs: []", "inputs: [/etc/passwd]\nextra_key: 1");
    std::fs::write(env.repo.join("ledger.yaml"), &broken).unwrap();
    let line_of = |needle: &str| broken.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let out = env.ledger(&["config", "check"]);
    assert_eq!(out.code, 1, "{out:?}");
    for (needle, field) in [
        ("  ref: ledger", "ledger.ref"),
        ("min_cores: lots", "preflight.min_cores"),
        ("inputs: [", "inputs"),
        ("extra_key", "extra_key"),
    ] {
        let at = format!("ledger.yaml:{}:", line_of(needle));
        assert!(
            out.stdout
                .lines()
                .any(|l| l.contains(&at) && l.contains(&format!(" {field}:"))),
            "no {field} at {at}:\n{}",
            out.stdout
        );
    }
    assert!(out.stdout.ends_with("ledger.yaml: 4 problems\n"), "{out:?}");
    let json: serde_json::Value =
        serde_json::from_str(&env.ledger(&["config", "check", "--json"]).stdout).unwrap();
    crate::schemas::assert_valid("config-check.schema.json", &json);
    assert_eq!(json["problems"].as_array().unwrap().len(), 4);
    // The template itself matches the schema an editor would use.
    let value: serde_json::Value = serde_yaml_ng::from_str(&template).unwrap();
    crate::schemas::assert_valid("ledger-config.schema.json", &value);
}
