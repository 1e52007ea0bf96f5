//! `schemas/` describes exactly what ledger writes: every record the suite
//! writes is validated at the end of its test (see `TestEnv`'s drop), and
//! altered records are rejected.

use std::path::Path;

use serde_json::{json, Value};

use crate::common::{assert_ok, TestEnv};

const BASE: &str = "https://ledger.invalid/schemas/";

fn compile(name: &str) -> (boon::Schemas, boon::SchemaIndex) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let mut compiler = boon::Compiler::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let value: Value = serde_json::from_slice(&std::fs::read(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let file = path.file_name().unwrap().to_str().unwrap();
        assert_eq!(
            value["$id"],
            format!("{BASE}{file}"),
            "{file}: $id must match its file name"
        );
        compiler
            .add_resource(&format!("{BASE}{file}"), value)
            .unwrap();
    }
    let mut schemas = boon::Schemas::new();
    let index = compiler
        .compile(&format!("{BASE}{name}"), &mut schemas)
        .unwrap_or_else(|e| panic!("{name}: {e:#}"));
    (schemas, index)
}

fn check(name: &str, value: &Value) -> Result<(), String> {
    let (schemas, index) = compile(name);
    schemas.validate(value, index).map_err(|e| format!("{e:#}"))
}

pub fn assert_valid(schema: &str, value: &Value) {
    if let Err(e) = check(schema, value) {
        panic!("does not match schemas/{schema}: {e}\n{value:#}");
    }
}

pub fn assert_valid_record(payload: &Value) {
    let kind = payload["kind"].as_str().expect("payload has a kind");
    if let Err(e) = check(&format!("{kind}.schema.json"), payload) {
        panic!("{kind} record does not match schemas/{kind}.schema.json: {e}\n{payload:#}");
    }
}

#[test]
fn records_envelopes_and_reports_match_their_schemas() {
    let env = TestEnv::init();
    assert_ok(env.run("a", &["--threads", "2"], &["sh", "-c", "echo hi"]));
    for path in env
        .ledger_paths()
        .iter()
        .filter(|p| p.ends_with(".dsse.json"))
    {
        check(
            "envelope.schema.json",
            &serde_json::from_slice(&env.ledger_file(path)).unwrap(),
        )
        .unwrap();
    }
    for path in env
        .ledger_paths()
        .iter()
        .filter(|p| p.starts_with("writers/"))
    {
        check(
            "writer-head.schema.json",
            &serde_json::from_slice(&env.ledger_file(path)).unwrap(),
        )
        .unwrap();
    }
    let report: Value = serde_json::from_str(&env.ok(&["verify", "--json"]).stdout).unwrap();
    check("verify-report.schema.json", &report).unwrap();
    let log: Value = serde_json::from_str(&env.ok(&["log", "--json"]).stdout).unwrap();
    check("log.schema.json", &log).unwrap();
    let outcome = env.ledger(&[
        "run",
        "--json",
        "--workflow",
        "wf",
        "--tag",
        "b",
        "--owner",
        "o",
        "--",
        "true",
    ]);
    check(
        "run-outcome.schema.json",
        &serde_json::from_str(&outcome.stdout).unwrap(),
    )
    .unwrap();
    assert_eq!(env.payloads().len(), 10);
}

#[test]
fn altered_records_are_rejected() {
    let env = TestEnv::init();
    assert_ok(env.run("a", &[], &["true"]));
    let payloads = env.payloads();
    let result = payloads
        .iter()
        .find(|p| p["kind"] == "result")
        .unwrap()
        .clone();
    let preflight = payloads
        .iter()
        .find(|p| p["kind"] == "preflight")
        .unwrap()
        .clone();
    assert_valid_record(&result);

    type Mutation = Box<dyn Fn(&mut Value)>;
    let mutations: Vec<(&str, Mutation)> = vec![
        ("extra top-level field", Box::new(|p| p["extra"] = json!(1))),
        (
            "missing seq",
            Box::new(|p| drop(p.as_object_mut().unwrap().remove("seq"))),
        ),
        ("float seq", Box::new(|p| p["seq"] = json!(1.5))),
        (
            "bad record id",
            Box::new(|p| p["prev"] = json!("sha256:xyz")),
        ),
        (
            "local time",
            Box::new(|p| p["at"] = json!("2026-11-22T10:00:00+01:00")),
        ),
        (
            "wrong schema",
            Box::new(|p| p["schema"] = json!("ledger.context/v1")),
        ),
        (
            "unknown status",
            Box::new(|p| p["predicate"]["status"] = json!("maybe")),
        ),
        (
            "extra predicate field",
            Box::new(|p| p["predicate"]["x"] = json!(true)),
        ),
        (
            "log digest not hex",
            Box::new(|p| p["predicate"]["log"]["sha256"] = json!("zz")),
        ),
        ("empty subject", Box::new(|p| p["subject"] = json!([]))),
    ];
    for (what, mutate) in mutations {
        let mut p = result.clone();
        mutate(&mut p);
        assert!(
            check("result.schema.json", &p).is_err(),
            "schema accepted: {what}"
        );
    }
    let mut p = preflight.clone();
    p["predicate"]["tag"] = json!("../etc");
    assert!(
        check("preflight.schema.json", &p).is_err(),
        "unsafe tag accepted"
    );
}
