//! Concurrent writers never lose each other's records.

use crate::common::TestEnv;

#[test]
fn four_processes_five_runs_each() {
    let env = TestEnv::init();
    let mut children = Vec::new();
    for p in 0..4 {
        // Each process runs its five runs back to back, with the real clock.
        let script = (0..5)
            .map(|i| format!("\"$0\" run --workflow wf --tag p{p}_r{i} --owner o -- sh -c 'echo {p} {i}' || exit 9"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut sh = env.base_command("sh", &env.repo);
        sh.arg("-c")
            .arg(script)
            .arg(crate::common::BIN)
            .env("LEDGER_KEY", &env.key);
        sh.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        children.push(sh.spawn().unwrap());
    }
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "a writer failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let runs = env.run_ids();
    assert_eq!(runs.len(), 20, "{runs:#?}");
    for p in 0..4 {
        for i in 0..5 {
            assert!(
                runs.iter().any(|r| r.ends_with(&format!("_p{p}_r{i}"))),
                "p{p}_r{i} lost"
            );
        }
    }
    assert_eq!(env.payloads().len(), 100);
    let out = env.ok(&["verify"]);
    assert!(
        out.stdout.contains("20 runs, 100 records, 1 writers"),
        "{out:?}"
    );
    let seqs: Vec<u64> = env
        .payloads()
        .iter()
        .map(|p| p["seq"].as_u64().unwrap())
        .collect();
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (1..=100).collect::<Vec<_>>(), "one gap-free chain");
    let fsck = env.git_output(&["fsck", "--strict"]);
    assert_eq!(fsck.code, 0, "{fsck:?}");
}
