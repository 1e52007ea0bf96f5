//! The data-quality gate inside `ledger run` and as `ledger dq`.

use serde_json::Value;

use crate::common::{assert_input_error, assert_ok, TestEnv};

const RULES: &str = "dq:
  columns: {date: date, factor: string, ret: float}
  not_null: [date, factor]
  unique_key: [date, factor]
  date: {column: date, sorted: true, max_gap_days: 5}
  ranges: {ret: {min: -1.0, max: 1.0}}
  min_rows: 2
";

fn env_with_rules(extra: &str) -> TestEnv {
    let env = TestEnv::init();
    let cfg = env.repo.join("ledger.yaml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let start = text.find("\ndq:\n").unwrap() + 1;
    let end = text.find("\nproducts:\n").unwrap() + 1;
    let text = format!("{}{RULES}{extra}\n{}", &text[..start], &text[end..]);
    std::fs::write(&cfg, text).unwrap();
    std::fs::create_dir(env.repo.join("data")).unwrap();
    std::fs::write(
        env.repo.join("data/good.csv"),
        "date,factor,ret\n2026-01-01,mom,0.1\n2026-01-02,mom,0.2\n",
    )
    .unwrap();
    std::fs::write(
        env.repo.join("data/bad.csv"),
        "date,factor,ret\n2026-01-01,mom,0.1\n2026-01-01,mom,7\n",
    )
    .unwrap();
    env
}

fn gate_run(env: &TestEnv, tag: &str, csv: &str) -> crate::common::Run {
    env.ledger(&[
        "run",
        "--workflow",
        "production_gates",
        "--tag",
        tag,
        "--owner",
        "o",
        "--dq-input-csv",
        csv,
        "--",
        "sh",
        "-c",
        "touch ran_$0",
        tag,
    ])
}

fn kinds(env: &TestEnv, tag: &str) -> Vec<String> {
    let run = env
        .run_ids()
        .into_iter()
        .find(|r| r.ends_with(&format!("_{tag}")))
        .unwrap();
    let shown: Vec<Value> =
        serde_json::from_str(&env.ok(&["show", &run, "--json"]).stdout).unwrap();
    shown
        .iter()
        .map(|p| p["kind"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_passing_gate_is_recorded_and_the_run_goes_on() {
    let env = env_with_rules("");
    assert_ok(gate_run(&env, "ok", "data/good.csv"));
    assert!(env.repo.join("ran_ok").exists());
    assert_eq!(
        kinds(&env, "ok"),
        [
            "preflight",
            "data_quality",
            "context",
            "command",
            "started",
            "result"
        ]
    );
    let dq = env.record("data_quality")["predicate"].clone();
    assert_eq!(dq["passed"], true);
    assert_eq!(dq["rows"], 2);
    assert_eq!(dq["input"]["path"], "data/good.csv");
    let run = env.run_ids().pop().unwrap();
    let dir = env.repo.join("audit/workstation_runs").join(&run);
    let log = std::fs::read_to_string(dir.join("data_quality.log")).unwrap();
    assert!(
        log.contains("data quality of data/good.csv (2 rows") && log.contains("ok   unique_key"),
        "{log}"
    );
    let script = std::fs::read_to_string(dir.join("data_quality_command.sh")).unwrap();
    assert!(script.contains("exec ledger dq --input "), "{script}");
    env.ok(&["verify"]);
}

#[test]
fn a_failing_gate_blocks_the_run_and_is_recorded() {
    let env = env_with_rules("");
    let out = gate_run(&env, "bad", "data/bad.csv");
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("blocked by the data-quality gate"),
        "{out:?}"
    );
    assert!(
        out.stderr
            .contains("FAIL (1 failures at line 3) unique_key"),
        "{out:?}"
    );
    assert!(
        !env.repo.join("ran_bad").exists(),
        "the command must not run"
    );
    assert_eq!(kinds(&env, "bad"), ["preflight", "data_quality"]);
    let dq = env.record("data_quality")["predicate"].clone();
    let failed: Vec<&str> = dq["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["passed"] == false)
        .map(|r| r["rule"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["unique_key", "range:ret"]);
    assert!(env.ok(&["log"]).stdout.starts_with("blocked "));
    env.ok(&["verify"]);
}

#[test]
fn the_external_command_is_part_of_the_gate() {
    let env = env_with_rules("  command: echo checking {input}; test $(wc -l < {input}) -lt 4");
    assert_ok(gate_run(&env, "cmd_ok", "data/good.csv"));
    let dq = env.record("data_quality")["predicate"].clone();
    assert_eq!(dq["command"]["exit_code"], 0);
    std::fs::write(
        env.repo.join("data/long.csv"),
        "date,factor,ret\n2026-01-01,a,0\n2026-01-02,a,0\n2026-01-03,a,0\n",
    )
    .unwrap();
    let out = gate_run(&env, "cmd_bad", "data/long.csv");
    assert_eq!(out.code, 1, "{out:?}");
    let dq = env.record("data_quality")["predicate"].clone();
    assert_eq!(dq["command"]["exit_code"], 1);
    assert!(
        dq["rules"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["passed"] == true),
        "built-in rules pass; the command fails"
    );
    let run = env
        .run_ids()
        .into_iter()
        .find(|r| r.ends_with("_cmd_bad"))
        .unwrap();
    let log = std::fs::read_to_string(
        env.repo
            .join("audit/workstation_runs")
            .join(run)
            .join("data_quality.log"),
    )
    .unwrap();
    assert!(log.starts_with("checking "), "{log}");
    env.ok(&["verify"]);
}

#[test]
fn dq_flags_are_checked_before_anything_is_written() {
    let env = env_with_rules("");
    let tip = env.ledger_tip();
    let base = [
        "run",
        "--workflow",
        "production_gates",
        "--tag",
        "t",
        "--owner",
        "o",
    ];
    let with = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "true"]);
        env.ledger(&args)
    };
    assert_input_error(
        &with(&[]),
        "--dq-input-csv: workflow production_gates requires the DQ gate",
    );
    assert_input_error(
        &with(&["--dq-input-csv", "data/none.csv"]),
        "--dq-input-csv: ",
    );
    assert_input_error(
        &with(&[
            "--dq-input-csv",
            "data/good.csv",
            "--skip-dq",
            "--skip-reason",
            "x",
        ]),
        "--skip-dq: conflicts",
    );
    assert_input_error(
        &with(&["--skip-dq", "--skip-reason", " "]),
        "--skip-reason: say why",
    );
    let out = with(&["--skip-dq"]);
    assert_eq!(out.code, 2, "clap: --skip-dq needs --skip-reason: {out:?}");
    let out = with(&[
        "--dq-input-csv",
        "data/good.csv",
        "--dq-as-of",
        "22/11/2026",
    ]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("is not a date YYYY-MM-DD"), "{out:?}");
    assert_eq!(env.ledger_tip(), tip);
    // A workflow the config does not name has no gate.
    assert_ok(env.run("free", &[], &["true"]));
}

#[test]
fn ledger_dq_alone() {
    let env = env_with_rules("");
    let out = env.ok(&["dq", "--input", "data/good.csv"]);
    assert!(out.stdout.contains(": passed\n"), "{out:?}");
    let out = env.ledger(&["dq", "--input", "data/bad.csv", "--json"]);
    assert_eq!(out.code, 1, "{out:?}");
    let verdict: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(verdict["passed"], false);
    std::fs::write(
        env.repo.join("data/ragged.csv"),
        "date,factor,ret\n2026-01-01,a\n",
    )
    .unwrap();
    let out = env.ledger(&["dq", "--input", "data/ragged.csv"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("ragged row"), "{out:?}");
    assert_input_error(
        &env.ledger(&["dq", "--input", "data/none.csv"]),
        "--input: ",
    );
    assert!(env.run_ids().is_empty(), "ledger dq records nothing");
}
