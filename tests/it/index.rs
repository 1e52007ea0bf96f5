//! The run index under `.git/ledger/` is a cache: `log`, `status` and `show`
//! answer the same with it, without it, with it corrupted or stale.

use crate::common::{assert_ok, TestEnv};

/// What the index-backed commands print, as one string.
fn answers(env: &TestEnv, cwd: &std::path::Path, show: &str) -> String {
    let mut all = String::new();
    for args in [
        &["log"][..],
        &["log", "--json"],
        &["log", "-n", "2"],
        &["log", "--json", "--max-count", "1"],
        &["status"],
        &["status", "--json", "--lines", "100"],
        &["show", show, "--json"],
    ] {
        all.push_str(&assert_ok(env.ledger_in(cwd, args)).stdout);
    }
    all
}

fn index_path(repo: &std::path::Path) -> std::path::PathBuf {
    repo.join(".git/ledger/runs-index.jsonl")
}

/// What `ledger log` reads first: the index's rows without the log tails.
fn log_path(repo: &std::path::Path) -> std::path::PathBuf {
    repo.join(".git/ledger/runs-log.jsonl")
}

#[test]
fn log_status_and_show_answer_the_same_with_a_missing_corrupt_or_stale_index() {
    let env = TestEnv::init();
    assert_ok(env.run("t1", &[], &["sh", "-c", "echo one; exit 0"]));
    assert_ok(env.run("t2", &[], &["sh", "-c", "echo two; exit 0"]));
    let first = answers(&env, &env.repo, "t1");
    let index = index_path(&env.repo);
    let early = std::fs::read(&index).expect("log wrote the index");
    let early_log = std::fs::read(log_path(&env.repo)).expect("log wrote its rows");

    let out = env.run("t3", &[], &["sh", "-c", "echo three; exit 4"]);
    assert_eq!(out.code, 4, "{out:?}");
    let fresh = answers(&env, &env.repo, "t3");
    assert!(
        fresh.contains("exit 4") && fresh.contains("three"),
        "{fresh}"
    );
    assert_ne!(first, fresh);
    // The index follows the tip.
    let header = std::fs::read_to_string(&index).unwrap();
    assert!(header.contains(&env.ledger_tip()), "{header}");

    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("stale (an earlier tip)", early.clone()),
        ("garbage", b"\x00not json\n{".to_vec()),
        ("empty", Vec::new()),
    ];
    let now = std::fs::read(&index).unwrap();
    cases.push(("truncated", now[..now.len() / 2].to_vec()));
    // A row whose tree id no longer matches its run is read again.
    let text = String::from_utf8(early).unwrap();
    let tampered = text.replacen("\"status\":\"passed\"", "\"status\":\"failed\"", 1);
    assert_ne!(tampered, text);
    let tampered = tampered.replacen("\"tree\":\"", "\"tree\":\"0", 1);
    cases.push(("a row with another tree id", tampered.into_bytes()));
    for (what, bytes) in cases {
        std::fs::write(&index, bytes).unwrap();
        assert_eq!(answers(&env, &env.repo, "t3"), fresh, "index {what}");
    }
    // The same for the rows `log` reads.
    let now = std::fs::read(log_path(&env.repo)).unwrap();
    for (what, bytes) in [
        ("stale (an earlier tip)", early_log),
        ("garbage", b"\x00not json\n{".to_vec()),
        ("empty", Vec::new()),
        ("truncated", now[..now.len() / 2].to_vec()),
    ] {
        std::fs::write(log_path(&env.repo), bytes).unwrap();
        assert_eq!(answers(&env, &env.repo, "t3"), fresh, "log rows {what}");
    }
    std::fs::remove_file(log_path(&env.repo)).unwrap();
    assert_eq!(answers(&env, &env.repo, "t3"), fresh, "no log rows");
    // The same for the copies of the text of `log` and `status`.
    for name in ["runs-log.txt", "runs-status.txt"] {
        let path = env.repo.join(".git/ledger").join(name);
        let now = std::fs::read(&path).expect("the index wrote the copy");
        let text = String::from_utf8(now.clone()).unwrap();
        assert!(
            text.contains("_t3") && text.contains(&env.ledger_tip()),
            "{text}"
        );
        let (header, body) = text.split_once('\n').unwrap();
        let lying_range = header.replacen(
            "\"live\":[]",
            "\"live\":[{\"start\":0,\"end\":99999999,\"row\":{\"at\":\"\",\"run_id\":\"x\",\"status\":\"running\",\"workflow\":\"\",\"tag\":\"\",\"owner\":\"\",\"code\":null}}]",
            1,
        );
        assert_ne!(lying_range, header);
        // Another build's format: its sample differs, and so may its text.
        let other_format = header.replacen("\"sample\":\"", "\"sample\":\"old ", 1);
        assert_ne!(other_format, header);
        let other_text = body.replace("passed ", "PASSED ").replace("exit ", "EXIT ");
        assert_ne!(other_text, body);
        assert_eq!(other_text.len(), body.len());
        for (what, bytes) in [
            (
                "another format",
                format!("{other_format}\n{other_text}").into_bytes(),
            ),
            ("garbage", b"\x00not json\n{".to_vec()),
            ("empty", Vec::new()),
            ("truncated", now[..now.len() - 3].to_vec()),
            ("longer", [&now[..], b"passed     x\n"].concat()),
            ("a header only", format!("{header}\n").into_bytes()),
            (
                "a live range past the end",
                format!("{lying_range}\n{body}").into_bytes(),
            ),
        ] {
            std::fs::write(&path, bytes).unwrap();
            assert_eq!(answers(&env, &env.repo, "t3"), fresh, "{name} {what}");
            assert_eq!(
                std::fs::read(&path).unwrap(),
                now,
                "{name} {what}: written anew"
            );
        }
        std::fs::remove_file(&path).unwrap();
        assert_eq!(answers(&env, &env.repo, "t3"), fresh, "no {name}");
    }
    // A copy of an earlier tip (the text of two runs) is not used.
    let early_text = std::fs::read(env.repo.join(".git/ledger/runs-log.txt")).unwrap();
    assert_ok(env.run("t4", &[], &["sh", "-c", "exit 0"]));
    let newer = answers(&env, &env.repo, "t3");
    assert!(newer.contains("_t4"), "{newer}");
    std::fs::write(env.repo.join(".git/ledger/runs-log.txt"), early_text).unwrap();
    assert_eq!(
        answers(&env, &env.repo, "t3"),
        newer,
        "a copy of an earlier tip"
    );
    let fresh = newer;
    std::fs::remove_file(&index).unwrap();
    assert_eq!(answers(&env, &env.repo, "t3"), fresh, "no index");
    // An index that cannot be written only costs time.
    let dir = index.parent().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
    std::fs::write(dir, "a file where the directory was").unwrap();
    assert_eq!(answers(&env, &env.repo, "t3"), fresh, "unwritable index");
    std::fs::remove_file(dir).unwrap();
}

#[test]
fn log_max_count_keeps_the_newest_runs() {
    let env = TestEnv::init();
    for tag in ["t1", "t2", "t3"] {
        assert_ok(env.run(tag, &[], &["true"]));
    }
    let all = assert_ok(env.ledger(&["log"])).stdout;
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines.len(), 3, "{all}");
    assert!(lines[0].contains("_t3 "), "newest first: {all}");
    for (n, want) in [("0", 0), ("1", 1), ("2", 2), ("3", 3), ("99", 3)] {
        let out = assert_ok(env.ledger(&["log", "-n", n])).stdout;
        assert_eq!(out.lines().collect::<Vec<_>>(), lines[..want], "-n {n}");
        let json: serde_json::Value =
            serde_json::from_str(&assert_ok(env.ledger(&["log", "--json", "-n", n])).stdout)
                .unwrap();
        let ids: Vec<&str> = json
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["run_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), want, "--json -n {n}");
        for (id, line) in ids.iter().zip(&lines) {
            assert!(line.contains(id), "{id} {line}");
        }
    }
    let bad = env.ledger(&["log", "-n", "-1"]);
    assert_eq!(bad.code, 2, "{bad:?}");
}

#[test]
fn a_first_index_of_many_runs_is_read_on_every_core_and_matches_a_clone() {
    let env = TestEnv::new();
    let dir = env.dir.path().join("gen");
    assert_ok(env.ledger(&[
        "generate",
        dir.to_str().unwrap(),
        "--runs",
        "300",
        "--writers",
        "2",
        "--per-commit",
        "40",
    ]));
    let repo = dir;
    let logged = assert_ok(env.ledger_in(&repo, &["log"])).stdout;
    assert_eq!(logged.lines().count(), 300, "{logged}");
    let newest = logged.split_whitespace().nth(1).unwrap().to_string();
    let first = answers(&env, &repo, &newest);
    // A second call reads only the file; a clone builds its own.
    assert_eq!(answers(&env, &repo, &newest), first);
    let clone = env.dir.path().join("clone");
    let git = |args: &[&str], cwd: &std::path::Path| {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(cwd)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    git(
        &[
            "clone",
            "-q",
            repo.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
        env.dir.path(),
    );
    git(
        &[
            "fetch",
            "-q",
            "origin",
            "refs/heads/ledger:refs/heads/ledger",
        ],
        &clone,
    );
    assert!(!index_path(&clone).exists());
    assert_eq!(answers(&env, &clone, &newest), first);
    assert!(index_path(&clone).exists());
}
