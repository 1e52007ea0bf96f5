//! The README's first command: `ledger demo` on a fresh machine.

use crate::common::{assert_input_error, TestEnv};

#[test]
fn demo_records_four_runs_finalizes_and_verifies() {
    let env = TestEnv::new();
    let dir = env.dir.path().join("demo");
    let out = env.ledger(&["demo", dir.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("  verify: ok ("), "{out:?}");
    // It ends with the HTML report, beside the repository.
    let index = dir.join("report/index.html");
    assert!(
        out.stdout
            .contains(&format!("HTML report: {}", index.display())),
        "{out:?}"
    );
    let html = std::fs::read_to_string(&index).unwrap();
    assert_eq!(html.matches("<figure id=\"chart-").count(), 4);
    assert!(dir
        .join("report/docs/production_research/STAGE_AUDIT_LOG.html")
        .exists());
    // The README's screenshot is this page as headless Chromium draws it.
    if let Some(png) = crate::report::browser_loads(&dir.join("report")) {
        #[allow(clippy::disallowed_methods)] // a test switch, not product behaviour
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
            std::fs::write(docs.join("report-screenshot.png"), png).unwrap();
        }
    }
    for (status, tag) in [
        ("passed", "momentum"),
        ("failed", "value"),
        ("blocked", "bad_data"),
        ("passed", "momentum_lookback120"),
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
    let verify = env.ledger_in(&repo, &["verify", "--projections"]);
    assert_eq!(verify.code, 0, "{verify:?}");
    assert!(
        verify
            .stdout
            .contains(", 4 runs, 21 records (1 finalize record), 1 writers"),
        "{verify:?}"
    );
    let log = env.ledger_in(&repo, &["log"]);
    assert_eq!(log.stdout.lines().count(), 4, "{log:?}");
    // finalize wrote the audit documents; the rerun's review diffs the config.
    assert!(out.stdout.contains("  finalize: 33 documents, "), "{out:?}");
    let stage =
        std::fs::read_to_string(repo.join("docs/production_research/STAGE_AUDIT_LOG.md")).unwrap();
    assert_eq!(
        stage.lines().filter(|l| l.starts_with("| 20")).count(),
        4,
        "{stage}"
    );
    let review = std::fs::read_to_string(repo.join(
        "gate_results/production_gates_committee_demo_momentum_lookback120/production_gates_run_review.md",
    ))
    .unwrap();
    assert!(
        review.contains("-lookback_days: 60\n+lookback_days: 120\n"),
        "{review}"
    );
    assert_eq!(env.ledger_in(&repo, &["finalize", "--check"]).code, 0);
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
