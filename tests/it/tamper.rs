//! The tamper matrix: each alteration is detected with its own finding, and
//! the untampered ledger verifies clean. Tampering is done with plain git.

use serde_json::{json, Value};

use crate::common::{assert_ok, decode_envelope, decode_payload, with_payload, TestEnv};

/// Three runs by one writer: passed, failed, blocked.
fn fixture() -> (TestEnv, Vec<String>) {
    let env = TestEnv::init();
    assert_ok(env.run("r1", &["--notes", "official run"], &["true"]));
    env.run("r2", &[], &["sh", "-c", "echo gate cost_2x failed; exit 4"]);
    std::fs::write(env.repo.join("strategy.yaml"), "dirty\n").unwrap();
    let out = env.run("r3", &["--require-clean"], &["true"]);
    assert_eq!(out.code, 1, "{out:?}");
    let runs = env.run_ids();
    assert_eq!(runs.len(), 3);
    let clean = env.ok(&["verify"]);
    assert!(clean.stdout.ends_with("verify: ok\n"), "{clean:?}");
    (env, runs)
}

fn findings(env: &TestEnv) -> Vec<Value> {
    let out = env.ledger(&["verify", "--json"]);
    assert_eq!(out.code, 1, "tampering must fail verify: {out:?}");
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    let human = env.ledger(&["verify"]);
    assert_eq!(human.code, 1);
    assert!(human.stdout.contains("FAIL "), "{human:?}");
    report["findings"].as_array().unwrap().clone()
}

fn assert_finding(findings: &[Value], code: &str, record: Option<&str>) {
    let hit = findings
        .iter()
        .any(|f| f["code"] == code && record.is_none_or(|r| f["record"] == r));
    assert!(hit, "no {code} finding for {record:?} in {findings:#?}");
}

fn path(run: &str, kind: &str) -> String {
    format!("runs/{run}/{kind}.dsse.json")
}

#[test]
fn untampered_ledger_verifies_with_its_head() {
    let (env, _) = fixture();
    let out = env.ok(&["verify"]);
    assert!(
        out.stdout.starts_with(&format!(
            "ledger refs/heads/ledger at {}\n",
            env.ledger_tip()
        )),
        "{out:?}"
    );
    assert!(
        out.stdout
            .contains("checked 6 commits, 3 runs, 11 records, 1 writers\n"),
        "{out:?}"
    );
}

#[test]
fn edited_payload_byte() {
    let (env, runs) = fixture();
    let file = path(&runs[0], "context");
    let envelope = env.ledger_file(&file);
    let mut payload = decode_payload(&envelope);
    payload["predicate"]["notes"] = json!("official run!");
    env.tamper(
        &[(&file, Some(&with_payload(&envelope, &payload)))],
        Some(&env.key),
    );
    let f = findings(&env);
    assert_finding(&f, "bad_signature", Some(&file));
}

#[test]
fn swapped_signature() {
    let (env, runs) = fixture();
    let context = path(&runs[0], "context");
    let command_sig =
        decode_envelope(&env.ledger_file(&path(&runs[0], "command")))["signatures"].clone();
    let mut envelope = decode_envelope(&env.ledger_file(&context));
    envelope["signatures"] = command_sig;
    env.tamper(
        &[(&context, Some(&serde_json::to_vec(&envelope).unwrap()))],
        Some(&env.key),
    );
    let f = findings(&env);
    assert_finding(&f, "bad_signature", Some(&context));
    assert_eq!(f.len(), 1, "only the swapped signature is wrong: {f:#?}");
}

#[test]
fn record_signed_by_an_untrusted_key() {
    let (env, _) = fixture();
    let stranger = env.dir.path().join("keys/stranger");
    env.keygen(&stranger);
    env.git(&["checkout", "-q", "strategy.yaml"]);
    let out = env.run("r4", &["--key", stranger.to_str().unwrap()], &["true"]);
    assert_eq!(out.code, 0, "{out:?}");
    let f = findings(&env);
    let run = env
        .run_ids()
        .into_iter()
        .find(|r| r.ends_with("_r4"))
        .unwrap();
    assert_finding(&f, "untrusted_signer", Some(&path(&run, "preflight")));
    assert_finding(&f, "commit_untrusted_key", None);
}

#[test]
fn deleted_middle_record() {
    let (env, runs) = fixture();
    let file = path(&runs[0], "command");
    env.tamper(&[(&file, None)], Some(&env.key));
    let f = findings(&env);
    assert_finding(&f, "missing_record", Some(&file));
    assert_finding(&f, "chain_gap", Some(&path(&runs[0], "started")));
}

#[test]
fn deleted_newest_record_is_caught_by_the_writer_head() {
    let (env, runs) = fixture();
    env.tamper(&[(&path(&runs[2], "preflight"), None)], Some(&env.key));
    let f = findings(&env);
    assert_finding(&f, "writer_head_mismatch", None);
}

#[test]
fn two_records_reordered() {
    let (env, runs) = fixture();
    let (context, command) = (path(&runs[0], "context"), path(&runs[0], "command"));
    let (a, b) = (env.ledger_file(&context), env.ledger_file(&command));
    env.tamper(
        &[(&context, Some(&b)), (&command, Some(&a))],
        Some(&env.key),
    );
    let f = findings(&env);
    assert_finding(&f, "kind_mismatch", Some(&context));
    assert_finding(&f, "kind_mismatch", Some(&command));
}

#[test]
fn record_moved_into_another_run() {
    let (env, runs) = fixture();
    // The blocked run r3 gets r1's result; r1 loses it.
    let from = path(&runs[0], "result");
    let to = path(&runs[2], "result");
    let bytes = env.ledger_file(&from);
    env.tamper(&[(&from, None), (&to, Some(&bytes))], Some(&env.key));
    let f = findings(&env);
    assert_finding(&f, "wrong_run", Some(&to));
    // r1 without its result reads as a run still going; its writer chain has a hole.
    assert_finding(&f, "chain_gap", None);
    assert!(!env.ledger_paths().contains(&from));
}

#[test]
fn commit_whose_gpgsig_was_dropped() {
    let (env, _) = fixture();
    let tip = env.ledger_tip();
    let raw = env.git(&["cat-file", "commit", &tip]);
    let mut stripped = String::new();
    let mut in_sig = false;
    for line in raw.split_inclusive('\n') {
        if line.starts_with("gpgsig ") {
            in_sig = true;
            continue;
        }
        if in_sig && line.starts_with(' ') {
            continue;
        }
        in_sig = false;
        stripped.push_str(line);
    }
    assert_ne!(stripped, raw);
    let file = env.dir.path().join("commit.txt");
    std::fs::write(&file, &stripped).unwrap();
    let id = env.git(&["hash-object", "-t", "commit", "-w", file.to_str().unwrap()]);
    env.git(&["update-ref", "refs/heads/ledger", id.trim()]);
    env.skip_schema_check.set(true);
    let f = findings(&env);
    assert_finding(&f, "commit_unsigned", None);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0]["commit"], id.trim());
}

#[test]
fn unsigned_tampering_commit_is_reported_too() {
    let (env, runs) = fixture();
    let file = path(&runs[1], "result");
    env.tamper(&[(&file, Some(b"{}"))], None);
    let f = findings(&env);
    assert_finding(&f, "commit_unsigned", None);
    assert_finding(&f, "malformed_record", Some(&file));
}

#[test]
fn non_canonical_re_encoding() {
    let (env, runs) = fixture();
    let file = path(&runs[0], "started");
    let envelope = env.ledger_file(&file);
    let payload = decode_payload(&envelope);
    let mut env_json = decode_envelope(&envelope);
    // Same JSON value, pretty-printed: signatures over other bytes.
    env_json["payload"] = json!(ledger::record::encode_b64(
        &serde_json::to_vec_pretty(&payload).unwrap()
    ));
    env.tamper(
        &[(&file, Some(&serde_json::to_vec(&env_json).unwrap()))],
        Some(&env.key),
    );
    assert_finding(&findings(&env), "non_canonical", Some(&file));
}

#[test]
fn verify_with_a_different_trust_file() {
    let (env, _) = fixture();
    let other = env.dir.path().join("committee_allowed_signers");
    std::fs::write(&other, "# nobody yet\n").unwrap();
    let out = env.ledger(&["verify", "--trust", other.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout.contains("[untrusted_signer]") && out.stdout.contains("[commit_untrusted_key]")
    );
}

#[test]
fn truncated_stored_log() {
    let (env, runs) = fixture();
    let log = format!("runs/{}/log", runs[1]);
    assert!(
        env.ledger_paths().contains(&log),
        "the failed run's log is stored"
    );
    env.tamper(&[(&log, Some(b""))], Some(&env.key));
    assert_finding(&findings(&env), "log_mismatch", Some(&log));
}

#[test]
fn product_swapped_in_the_tree_only() {
    let env = TestEnv::init();
    let script = "mkdir -p gate_results/g && echo '{\"sharpe\": 1.1}' > gate_results/g/production_gates_report.json";
    crate::common::assert_ok(env.run("p", &[], &["sh", "-c", script]));
    let run = env.run_ids().pop().unwrap();
    let product = format!("runs/{run}/products/gate_results/g/production_gates_report.json");
    env.tamper(&[(&product, Some(b"{\"sharpe\": 9.9}\n"))], Some(&env.key));
    let f = findings(&env);
    assert_finding(&f, "product_mismatch", Some(&product));
    assert_eq!(f.len(), 1, "{f:#?}");
}

/// A run that stores its strategy config (ledger.yaml `inputs`).
fn run_with_stored_input() -> (TestEnv, String) {
    let env = TestEnv::init();
    let config = env.repo.join("ledger.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("inputs: []", "inputs: [strategy.yaml]"),
    )
    .unwrap();
    crate::common::assert_ok(env.run("i", &[], &["true"]));
    let run = env.run_ids().pop().unwrap();
    let stored = format!("runs/{run}/inputs/strategy.yaml");
    assert_eq!(env.ledger_file(&stored), b"factor: momentum\n");
    assert_eq!(
        env.record("context")["predicate"]["stored_inputs"],
        json!(["strategy.yaml"])
    );
    (env, stored)
}

#[test]
fn stored_input_swapped_in_the_tree_only() {
    let (env, stored) = run_with_stored_input();
    env.tamper(&[(&stored, Some(b"factor: value\n"))], Some(&env.key));
    let f = findings(&env);
    assert_finding(&f, "input_mismatch", Some(&stored));
    assert_eq!(f.len(), 1, "{f:#?}");
}

#[test]
fn stored_input_deleted_or_added() {
    let (env, stored) = run_with_stored_input();
    env.tamper(&[(&stored, None)], Some(&env.key));
    assert_finding(&findings(&env), "missing_input", Some(&stored));
    let (env, stored) = run_with_stored_input();
    let extra = stored.replace("strategy.yaml", "other.yaml");
    env.tamper(&[(&extra, Some(b"x\n"))], Some(&env.key));
    assert_finding(&findings(&env), "unexpected_entry", Some(&extra));
}

#[test]
fn finalize_manifest_edited_deleted_or_orphaned() {
    let (env, _) = fixture();
    let outcome: Value =
        serde_json::from_str(&assert_ok(env.ledger(&["finalize", "--json"])).stdout).unwrap();
    let id = outcome["finalize"]["finalize_id"]
        .as_str()
        .unwrap()
        .to_string();
    let manifest = format!("finalize/{id}.files.jsonl");
    let bytes = env.ledger_file(&manifest);
    assert_eq!(
        bytes.iter().filter(|b| **b == b'\n').count(),
        outcome["files"].as_array().unwrap().len()
    );
    assert_ok(env.ledger(&["verify"]));
    // One file's digest changed in the manifest only: the signed digest no
    // longer matches.
    let text = String::from_utf8(bytes.clone()).unwrap();
    let edited = text.replacen("\"sha256\":\"", "\"sha256\":\"0", 1);
    env.tamper(&[(&manifest, Some(edited.as_bytes()))], Some(&env.key));
    assert_finding(&findings(&env), "manifest_mismatch", Some(&manifest));

    let (env, _) = fixture();
    let outcome: Value =
        serde_json::from_str(&assert_ok(env.ledger(&["finalize", "--json"])).stdout).unwrap();
    let id = outcome["finalize"]["finalize_id"].as_str().unwrap();
    let manifest = format!("finalize/{id}.files.jsonl");
    env.tamper(
        &[
            (&manifest, None),
            (
                "finalize/20200101T000000Z_finalize_000000000000.files.jsonl",
                Some(b"{}\n"),
            ),
        ],
        Some(&env.key),
    );
    let f = findings(&env);
    assert_finding(&f, "missing_record", Some(&manifest));
    assert_finding(
        &f,
        "unexpected_entry",
        Some("finalize/20200101T000000Z_finalize_000000000000.files.jsonl"),
    );
}

/// `envelope` with `payload` (canonical) signed again by the trusted `key`:
/// an insider's forgery, valid signature and all.
fn resigned(envelope: &[u8], payload: &Value, key: &std::path::Path) -> Vec<u8> {
    let signer = ledger::sign::Signer::load(key).unwrap();
    let bytes = ledger::record::canon::canonical_bytes(payload);
    let pae = ledger::record::pae(ledger::record::PAYLOAD_TYPE, &bytes);
    let mut env = decode_envelope(envelope);
    env["payload"] = Value::String(ledger::record::encode_b64(&bytes));
    env["signatures"] = serde_json::to_value(vec![signer.sign_dsse(&pae)]).unwrap();
    serde_json::to_vec_pretty(&env).unwrap()
}

#[test]
fn record_time_earlier_than_its_predecessor_even_when_re_signed() {
    let (env, runs) = fixture();
    let file = path(&runs[0], "command");
    let envelope = env.ledger_file(&file);
    let mut payload = decode_payload(&envelope);
    payload["at"] = json!("2020-01-01T00:00:00Z");
    env.tamper(
        &[(&file, Some(&resigned(&envelope, &payload, &env.key)))],
        Some(&env.key),
    );
    let f = findings(&env);
    assert_finding(&f, "time_reversed", Some(&file));
    // The re-signed record has another id: the chains no longer meet it.
    assert_finding(&f, "run_chain_broken", None);
}

#[test]
fn record_replayed_from_one_run_into_another() {
    let (env, runs) = fixture();
    // r1's command record copied over r2's (r1 keeps its own).
    let from = env.ledger_file(&path(&runs[0], "command"));
    let to = path(&runs[1], "command");
    env.tamper(&[(&to, Some(&from))], Some(&env.key));
    let f = findings(&env);
    assert_finding(&f, "wrong_run", Some(&to));
    // r2's own command record is gone, and with it a link of the chains.
    assert_finding(&f, "missing_record", Some(&to));
    assert_finding(&f, "chain_gap", None);
}

#[test]
fn trust_file_placed_inside_the_ledger_vouches_for_nothing() {
    let (env, _) = fixture();
    let stranger = env.dir.path().join("keys/stranger");
    env.keygen(&stranger);
    let public = std::fs::read(stranger.with_extension("pub")).unwrap();
    let mut line = b"stranger@example.com ".to_vec();
    line.extend_from_slice(&public);
    env.tamper(
        &[
            (".ledger/allowed_signers", Some(&line)),
            ("allowed_signers", Some(&line)),
        ],
        Some(&stranger),
    );
    let f = findings(&env);
    assert_finding(&f, "unexpected_entry", Some(".ledger"));
    assert_finding(&f, "unexpected_entry", Some("allowed_signers"));
    assert_finding(&f, "commit_untrusted_key", None);
}

#[test]
fn signature_by_a_revoked_key_as_git_reads_valid_before() {
    let (env, _) = fixture();
    assert_ok(env.ledger(&["verify"]));
    // The key is revoked as of a date before every record: git's
    // allowed_signers option, honoured by the records' own times.
    let trust = env.repo.join(".ledger/allowed_signers");
    let text = std::fs::read_to_string(&trust).unwrap();
    let revoked = text.replacen(
        "writer@example.com ",
        "writer@example.com valid-before=\"20200101\" ",
        1,
    );
    assert_ne!(revoked, text);
    std::fs::write(&trust, revoked).unwrap();
    let f = findings(&env);
    assert_finding(&f, "key_not_valid", None);
    assert_finding(&f, "commit_key_not_valid", None);
    assert!(
        f.iter().all(|x| x["code"] != "untrusted_signer"),
        "revoked is not unknown: {f:#?}"
    );
}

#[test]
fn envelope_with_a_second_signature_that_is_bad() {
    let (env, runs) = fixture();
    let file = path(&runs[0], "context");
    let mut envelope = decode_envelope(&env.ledger_file(&file));
    let mut extra = envelope["signatures"][0].clone();
    extra["sig"] = json!(ledger::record::encode_b64(&[7u8; 64]));
    envelope["signatures"].as_array_mut().unwrap().push(extra);
    env.tamper(
        &[(&file, Some(&serde_json::to_vec(&envelope).unwrap()))],
        Some(&env.key),
    );
    let f = findings(&env);
    assert_finding(&f, "bad_signature", Some(&file));
    assert_eq!(
        f.len(),
        1,
        "one good signature does not excuse the bad one: {f:#?}"
    );
}

#[test]
fn payload_with_a_duplicate_json_key() {
    let (env, runs) = fixture();
    let file = path(&runs[0], "started");
    let envelope = env.ledger_file(&file);
    let payload = String::from_utf8(ledger::record::canon::canonical_bytes(&decode_payload(
        &envelope,
    )))
    .unwrap();
    // `"kind"` twice: a parser that keeps the first and one that keeps the
    // last would read two different records.
    let doubled = payload.replacen("{", "{\"_type\":\"x\",", 1);
    let mut env_json = decode_envelope(&envelope);
    env_json["payload"] = json!(ledger::record::encode_b64(doubled.as_bytes()));
    env.tamper(
        &[(&file, Some(&serde_json::to_vec(&env_json).unwrap()))],
        Some(&env.key),
    );
    assert_finding(&findings(&env), "non_canonical", Some(&file));
}

/// Peak RSS in KiB of `ledger verify --json` in `env`'s repository (GNU time),
/// with its findings; `None` for the RSS without /usr/bin/time.
fn verify_with_rss(env: &TestEnv) -> (Option<u64>, Vec<Value>) {
    let (out, rss) = ledger_with_rss(env, &["verify", "--json"]);
    assert_eq!(out.code, 1, "{out:?}");
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    (rss, report["findings"].as_array().unwrap().clone())
}

/// `ledger ARGS` in `env`'s repository, with its peak RSS in KiB (GNU time;
/// `None` without /usr/bin/time).
fn ledger_with_rss(env: &TestEnv, args: &[&str]) -> (crate::common::Run, Option<u64>) {
    let time = std::path::Path::new("/usr/bin/time");
    let rss_file = env.dir.path().join("rss");
    let _ = std::fs::remove_file(&rss_file);
    let mut cmd = if time.exists() {
        let mut c = env.base_command("/usr/bin/time", &env.repo);
        c.arg("-f")
            .arg("%M")
            .arg("-o")
            .arg(&rss_file)
            .arg(crate::common::BIN)
            .env("LEDGER_KEY", &env.key);
        c
    } else {
        env.command(&[])
    };
    cmd.args(args);
    let out: crate::common::Run = cmd.output().unwrap().into();
    let rss = std::fs::read_to_string(&rss_file)
        .ok()
        .and_then(|t| t.split_whitespace().last()?.parse().ok());
    (out, rss)
}

#[test]
fn huge_blobs_are_refused_by_their_size_before_they_are_read() {
    let env = TestEnv::init();
    let script = "mkdir -p gate_results/g && echo '{\"sharpe\": 1.1}' > gate_results/g/production_gates_report.json";
    crate::common::assert_ok(env.run("p", &[], &["sh", "-c", script]));
    let run = env.run_ids().pop().unwrap();
    let product = format!("runs/{run}/products/gate_results/g/production_gates_report.json");
    let record = format!("runs/{run}/context.dsse.json");
    // 300 MiB each (zeros: git stores them compressed in well under 1 MiB).
    let huge = vec![0u8; 300 << 20];
    env.tamper(
        &[(&product, Some(&huge)), (&record, Some(&huge))],
        Some(&env.key),
    );
    drop(huge);
    let (rss, f) = verify_with_rss(&env);
    assert_finding(&f, "product_mismatch", Some(&product));
    assert_finding(&f, "oversized_record", Some(&record));
    #[allow(clippy::disallowed_methods)] // CI installs GNU time: never skip there
    let ci = std::env::var_os("CI").is_some();
    match rss {
        Some(kib) => assert!(
            kib < 200 << 10,
            "verify read a huge blob: peak RSS {kib} KiB"
        ),
        None => assert!(!ci, "/usr/bin/time is missing under CI"),
    }
    // log and status read around it too.
    let log = crate::common::assert_ok(env.ledger(&["log"])).stdout;
    assert!(log.starts_with("incomplete"), "{log}");
    // So does finalize, the second time from its verification cache, which
    // reads runs unchanged since the verified head without their sizes
    // unless that verification found fault with them.
    for round in ["whole", "from the cache"] {
        let (out, rss) = ledger_with_rss(&env, &["finalize", "--json"]);
        assert_eq!(out.code, 0, "{round}: {out:?}");
        let done: Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(
            done["verified_since"].is_null(),
            round == "whole",
            "{round}"
        );
        if let Some(kib) = rss {
            assert!(
                kib < 200 << 10,
                "finalize ({round}) read a huge blob: peak RSS {kib} KiB"
            );
        }
        // The report the result signs is not the stored one: governance says
        // so instead of reading it.
        let check = std::fs::read_to_string(env.repo.join(format!(
            "audit/workstation_runs/{run}/governance_audit_check.md"
        )))
        .unwrap();
        assert!(
            check.contains("the stored report is 314572800 bytes but the result signs"),
            "{check}"
        );
        assert!(
            !check.contains("does not match ledger.yaml report"),
            "{check}"
        );
        // The remedy is the ledger's, not the workflow's.
        let plan = std::fs::read_to_string(env.repo.join(format!(
            "audit/workstation_runs/{run}/governance_remediation_plan.md"
        )))
        .unwrap();
        assert!(plan.contains("the ledger was altered"), "{plan}");
        assert!(plan.contains("ledger verify && ledger show"), "{plan}");
    }
}
