//! in-toto interop: `ledger export --in-toto` writes a bundle that an
//! independent DSSE implementation (Python securesystemslib, installed by
//! `.ci/run`) verifies with the writer's public key. Without the package the
//! test says so and passes, except under CI, where that is a failure.

use serde_json::Value;

use crate::common::{assert_ok, TestEnv};

const VERIFY: &str = r#"
import base64, json, sys
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey
from securesystemslib.exceptions import VerificationError

bundle, pubfile = sys.argv[1], sys.argv[2]
kind, blob = open(pubfile).read().split()[:2]
raw = base64.b64decode(blob)
n = int.from_bytes(raw[:4], "big")
assert raw[4:4 + n] == b"ssh-ed25519", raw[4:4 + n]
rest = raw[4 + n:]
m = int.from_bytes(rest[:4], "big")
public = rest[4:4 + m].hex()
good = bad = 0
for line in open(bundle):
    env = json.loads(line)
    key = SSlibKey(env["signatures"][0]["keyid"], "ed25519", "ed25519", {"public": public})
    envelope = Envelope.from_dict(env)
    envelope.verify([key], 1)
    statement = json.loads(envelope.payload)
    assert statement["_type"] == "https://in-toto.io/Statement/v1", statement["_type"]
    assert envelope.payload_type == "application/vnd.in-toto+json"
    good += 1
    # One changed payload byte no longer verifies.
    envelope.payload = envelope.payload.replace(b'"seq":', b'"seq": ', 1)
    try:
        envelope.verify([key], 1)
    except VerificationError:
        bad += 1
print(good, bad)
"#;

fn python_has_securesystemslib() -> bool {
    std::process::Command::new("python3")
        .args([
            "-c",
            "import securesystemslib.dsse, securesystemslib.signer",
        ])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn an_independent_dsse_implementation_verifies_the_exported_bundle() {
    if !python_has_securesystemslib() {
        #[allow(clippy::disallowed_methods)] // CI must never skip this test
        let ci = std::env::var_os("CI").is_some();
        assert!(!ci, "python3 with securesystemslib is missing under CI");
        eprintln!("skipped: python3 with securesystemslib is not installed");
        return;
    }
    let env = TestEnv::init();
    assert_ok(env.run("a1", &[], &["true"]));
    assert_eq!(env.run("a2", &[], &["sh", "-c", "exit 3"]).code, 3);
    let records = env
        .ledger_paths()
        .iter()
        .filter(|p| p.starts_with("runs/") && p.ends_with(".dsse.json"))
        .count();
    let bundle = env.dir.path().join("runs.intoto.jsonl");
    let out = assert_ok(env.ledger(&["export", "--in-toto", bundle.to_str().unwrap()]));
    assert!(
        out.stdout
            .contains(&format!("wrote {records} envelopes of 2 runs")),
        "{out:?}"
    );
    let text = std::fs::read_to_string(&bundle).unwrap();
    assert_eq!(text.lines().count(), records);
    for line in text.lines() {
        let envelope: Value = serde_json::from_str(line).unwrap();
        crate::schemas::assert_valid("envelope.schema.json", &envelope);
    }
    let script = env.dir.path().join("verify.py");
    std::fs::write(&script, VERIFY).unwrap();
    let public = env.key.with_extension("pub");
    let run = std::process::Command::new("python3")
        .arg(&script)
        .arg(&bundle)
        .arg(&public)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&run.stdout).trim(),
        format!("{records} {records}")
    );
    // One run to standard output.
    let one = assert_ok(env.ledger(&["export", "--in-toto", "-", "--tag", "a2"])).stdout;
    assert_eq!(
        one.lines().count(),
        5,
        "preflight, context, command, started, result"
    );
    let missing = env.ledger(&["export", "--in-toto", "-", "--tag", "nope"]);
    assert_eq!(missing.code, 2, "{missing:?}");
}
