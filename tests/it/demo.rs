//! The README's first command: `ledger demo` on a fresh machine.

use crate::common::{assert_input_error, TestEnv};

#[test]
fn demo_records_three_runs_that_verify() {
    let env = TestEnv::new();
    let dir = env.dir.path().join("demo");
    let out = env.ledger(&["demo", dir.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("  verify: ok ("), "{out:?}");
    for (status, tag) in [
        ("passed", "momentum"),
        ("failed", "value"),
        ("blocked", "bad_data"),
    ] {
        let line = format!("  {status:<8} ");
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with(&line) && l.contains(&format!("_committee_demo_{tag} "))),
            "{status} {tag}: {out:?}"
        );
    }
    assert!(
        out.stderr
            .contains("lowers the preflight limits for the demo only"),
        "{out:?}"
    );
    let repo = dir.join("research");
    // The demo's repository works with plain commands and plain git.
    let verify = env.ledger_in(&repo, &["verify"]);
    assert_eq!(verify.code, 0, "{verify:?}");
    assert!(
        verify.stdout.contains(", 3 runs, 14 records, 1 writers"),
        "{verify:?}"
    );
    let log = env.ledger_in(&repo, &["log"]);
    assert_eq!(log.stdout.lines().count(), 3, "{log:?}");
    let fsck = std::process::Command::new("git")
        .arg("-C")
        .arg(&repo)
        .args(["fsck", "--strict"])
        .output()
        .unwrap();
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stderr)
    );
    let products = std::process::Command::new("git")
        .arg("-C")
        .arg(&repo)
        .args(["ls-tree", "-r", "--name-only", "ledger"])
        .output()
        .unwrap();
    let paths = String::from_utf8_lossy(&products.stdout);
    assert!(paths.contains("/products/gate_results/production_gates_committee_demo_value/production_gates_report.json"), "{paths}");
    assert!(paths.contains("data_quality.dsse.json"), "{paths}");

    let again = env.ledger(&["demo", dir.to_str().unwrap()]);
    assert_input_error(&again, "is not empty");
}
