//! Process supervision and crash recovery, with real signals.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{assert_ok, Run, TestEnv};

fn spawn_run(env: &TestEnv, tag: &str, script: &str) -> Child {
    let mut cmd = env.run_command(tag, &[], &["sh", "-c", script]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.spawn().expect("ledger starts")
}

/// Waits until the newest run's log contains `needle`.
fn wait_for_log(env: &TestEnv, tag: &str, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let dir = env.repo.join("audit/workstation_runs");
        let found = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .ends_with(&format!("_{tag}"))
                    && std::fs::read_to_string(e.path().join("run.log"))
                        .is_ok_and(|l| l.contains(needle))
            });
        if found {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} never reached the log of {tag}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: signalling a child process we spawned and have not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, sig) }, 0);
}

fn result_of(env: &TestEnv, tag: &str) -> Value {
    let run = env
        .run_ids()
        .into_iter()
        .find(|r| r.ends_with(&format!("_{tag}")))
        .unwrap();
    crate::common::decode_payload(&env.ledger_file(&format!("runs/{run}/result.dsse.json")))
}

fn alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
    })
}

#[test]
fn signals_to_ledger_reach_the_command_and_are_recorded() {
    let env = TestEnv::init();
    for (sig, name, code) in [
        (libc::SIGINT, "int", 130),
        (libc::SIGTERM, "term", 143),
        (libc::SIGHUP, "hup", 129),
    ] {
        let child = spawn_run(&env, name, "echo ready; exec sleep 30");
        wait_for_log(&env, name, "ready");
        signal(&child, sig);
        let out: Run = child.wait_with_output().unwrap().into();
        assert_eq!(out.code, code, "{name}: {out:?}");
        let result = result_of(&env, name);
        assert_eq!(result["predicate"]["signal"], sig, "{name}");
        assert_eq!(result["predicate"]["code"], code);
        assert_eq!(result["predicate"]["status"], "failed");
    }
    env.ok(&["verify"]);
}

#[test]
fn leftover_processes_are_listed_and_terminated() {
    let env = TestEnv::init();
    // The pause lets both children exec `sleep` before the shell exits, so
    // their command lines are what the result lists.
    let out = env.run(
        "shard",
        &[],
        &[
            "sh",
            "-c",
            "sleep 300 & sleep 301 & sleep 0.3; echo main done",
        ],
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr
            .contains("left behind by the command, now terminated: pid "),
        "{out:?}"
    );
    let result = result_of(&env, "shard");
    let left = result["predicate"]["leftover_processes"]
        .as_array()
        .unwrap()
        .clone();
    let commands: Vec<&str> = left
        .iter()
        .map(|p| p["command"].as_str().unwrap())
        .collect();
    assert_eq!(commands, ["sleep 300", "sleep 301"], "{left:#?}");
    for p in &left {
        assert!(!alive(p["pid"].as_u64().unwrap()), "{p} still alive");
    }
    // A command that cleans up after itself leaves nothing.
    assert_ok(env.run("clean", &[], &["sh", "-c", "sleep 300 & kill $!; wait"]));
    assert_eq!(
        result_of(&env, "clean")["predicate"]["leftover_processes"],
        serde_json::json!([])
    );
}

#[test]
fn kill_9_at_random_moments_never_loses_a_record() {
    let env = TestEnv::init();
    let fsck = |env: &TestEnv| {
        let out = env.git_output(&["fsck", "--strict", "--no-dangling"]);
        assert_eq!(out.code, 0, "{out:?}");
    };
    // A fixed pseudo-random spread of delays: before the child starts, while
    // it runs, while the result is committed, and after ledger is done.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for i in 0..24 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_millis(seed % 350);
        let before: Vec<String> = env.ledger_paths();
        let mut child = spawn_run(&env, &format!("k{i}"), "echo a; sleep 0.1; echo b");
        std::thread::sleep(delay);
        signal(&child, libc::SIGKILL);
        child.wait().unwrap();
        let after = env.ledger_paths();
        for path in &before {
            assert!(after.contains(path), "kill {i} after {delay:?} lost {path}");
        }
        // Every earlier record is still exactly what it was and verifies.
        fsck(&env);
        let out = env.ledger(&["verify"]);
        assert_eq!(out.code, 0, "kill {i} after {delay:?}: {out:?}");
    }
    // The run index as it stands before the last run (`recover` takes its
    // candidates from the index; an index that predates the run must not
    // hide it).
    env.ok(&["log"]);
    let index = env.repo.join(".git/ledger/runs-index.jsonl");
    let stale = std::fs::read(&index).expect("log wrote the run index");
    // One more, killed for certain while its command runs.
    let mut child = spawn_run(&env, "last", "echo a; sleep 0.5; echo b");
    wait_for_log(&env, "last", "a\n");
    signal(&child, libc::SIGKILL);
    child.wait().unwrap();

    let report: Value = serde_json::from_str(&env.ok(&["verify", "--json"]).stdout).unwrap();
    let aborted = report["aborted"].as_array().unwrap();
    let last = aborted
        .iter()
        .find(|a| a["run_id"].as_str().unwrap().ends_with("_last"))
        .expect("last is aborted");
    assert_eq!(last["recovered"], false);
    let log = env.ok(&["log"]).stdout;
    assert!(log.lines().next().unwrap().starts_with("aborted "), "{log}");

    std::fs::write(&index, stale).unwrap();
    let recovered: Value = serde_json::from_str(&env.ok(&["recover", "--json"]).stdout).unwrap();
    let closed: Vec<&str> = recovered
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    assert!(closed.iter().any(|r| r.ends_with("_last")), "{recovered:#}");
    crate::schemas::assert_valid("recover.schema.json", &recovered);
    let result = result_of(&env, "last");
    assert_eq!(result["predicate"]["status"], "aborted");
    assert_eq!(result["predicate"]["code"], Value::Null);
    assert!(
        result["predicate"]["log"]["bytes"].as_u64().unwrap() >= 2,
        "the log that reached the disk is digested"
    );
    assert_eq!(env.ok(&["recover"]).stdout, "nothing to recover\n");

    let report: Value = serde_json::from_str(&env.ok(&["verify", "--json"]).stdout).unwrap();
    assert!(
        report["aborted"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["recovered"] == true),
        "{report:#}"
    );
    let log = env.ok(&["log"]).stdout;
    assert!(!log.contains("running"), "{log}");
    fsck(&env);
    // The commands of killed runs may outlive ledger; let them finish before cleanup.
    std::thread::sleep(Duration::from_millis(600));
    assert!(Path::new(&env.repo).exists());
}

#[test]
fn a_refused_run_does_not_recover_anything_first() {
    let env = TestEnv::init();
    let mut child = spawn_run(&env, "dies", "echo a; sleep 0.3");
    wait_for_log(&env, "dies", "a\n");
    signal(&child, libc::SIGKILL);
    child.wait().unwrap();
    let tip = env.ledger_tip();
    // Refused (the tag is taken): the ledger must not change at all.
    let out = env.run("dies", &[], &["true"]);
    crate::common::assert_input_error(&out, "tag \"dies\" is already used");
    assert_eq!(env.ledger_tip(), tip);
    // A run that goes ahead closes the aborted one first.
    let out = assert_ok(env.run("next", &[], &["true"]));
    assert!(
        out.stderr
            .contains("as aborted (its ledger run process is gone)"),
        "{out:?}"
    );
    assert_eq!(result_of(&env, "dies")["predicate"]["status"], "aborted");
    std::thread::sleep(Duration::from_millis(400));
}

/// The copies of the text of `log` and `status` (under `.git/ledger/`).
fn listings(env: &TestEnv) -> [Vec<u8>; 2] {
    ["runs-log.txt", "runs-status.txt"].map(|name| {
        std::fs::read(env.repo.join(".git/ledger").join(name)).expect("the copy is written")
    })
}

#[test]
fn a_running_run_is_listed_as_it_is_now_from_the_copies() {
    let env = TestEnv::init();
    assert_eq!(env.run("before", &[], &["sh", "-c", "exit 3"]).code, 3);
    let child = spawn_run(&env, "live", "echo one; echo two; sleep 5");
    wait_for_log(&env, "live", "two");
    let id = env
        .run_ids()
        .into_iter()
        .find(|r| r.ends_with("_live"))
        .unwrap();
    // The first calls write the copies, the next read them: the running
    // run's lines are made anew each time.
    for call in 0..3 {
        let log = env.ok(&["log"]).stdout;
        let mut lines = log.lines();
        assert_eq!(
            lines.next().unwrap(),
            format!("running    {id}  o"),
            "{call}: {log}"
        );
        assert!(
            lines.next().unwrap().ends_with("_before  o  exit 3"),
            "{log}"
        );
        let status = env.ok(&["status", "--lines", "1"]).stdout;
        let lines: Vec<&str> = status.lines().collect();
        assert!(lines[0].contains("_before  exit 3 after "), "{status}");
        assert!(
            lines[1].starts_with(&format!("running    {id}  running for ")),
            "{status}"
        );
        assert_eq!(lines[2..], ["           | two"], "{call}: {status}");
    }
    let copies = listings(&env);
    assert!(
        copies.iter().all(|c| String::from_utf8_lossy(c)
            .lines()
            .next()
            .unwrap()
            .contains(&id)),
        "each copy's header names the running run"
    );
    // Its supervisor dies: the tip stays, and so do the copies, but the
    // run is shown aborted.
    signal(&child, libc::SIGKILL);
    child.wait_with_output().unwrap();
    let log = env.ok(&["log"]).stdout;
    assert_eq!(
        log.lines().next().unwrap(),
        format!("aborted    {id}  o  ledger run died; `ledger recover` records it"),
        "{log}"
    );
    let status = env.ok(&["status"]).stdout;
    assert_eq!(
        status.lines().nth(1).unwrap(),
        format!("aborted    {id}  ledger run died"),
        "{status}"
    );
    assert_eq!(listings(&env), copies, "answered from the copies");
    // Recorded as aborted, the run's lines are fixed in new copies.
    env.ok(&["recover"]);
    assert_eq!(env.ok(&["log"]).stdout, log);
    assert_ne!(listings(&env), copies);
    assert!(!String::from_utf8_lossy(&listings(&env)[0]).contains("\"live\":[{"));
}

#[test]
fn status_shows_a_running_run_with_its_elapsed_time_and_log_tail() {
    let env = TestEnv::init();
    assert_eq!(
        env.run("done", &[], &["sh", "-c", "echo finished; exit 3"])
            .code,
        3
    );
    let mut child = spawn_run(&env, "live", "echo step one; echo step two; sleep 30");
    wait_for_log(&env, "live", "step two\n");
    let out = env.ok(&["status", "--json"]);
    let states: Value = serde_json::from_str(&out.stdout).unwrap();
    crate::schemas::assert_valid("status.schema.json", &states);
    let live = states
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["tag"] == "live")
        .unwrap();
    assert_eq!(live["status"], "running", "{states:#}");
    assert_eq!(
        live["log_tail"],
        serde_json::json!(["step one", "step two"])
    );
    assert!(live["elapsed_seconds"].as_u64().is_some(), "{live:#}");
    let done = states
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["tag"] == "done")
        .unwrap();
    assert_eq!(done["status"], "failed");
    assert_eq!(done["code"], 3);
    let human = env.ok(&["status", "--tag", "live"]).stdout;
    assert!(human.starts_with("running "), "{human}");
    assert!(human.contains("           | step two\n"), "{human}");
    assert!(!human.contains("_done"), "{human}");
    crate::common::assert_input_error(&env.ledger(&["status", "--tag", "nope"]), "--tag");
    signal(&child, libc::SIGTERM);
    child.wait().unwrap();
}

/// `ledger monitor` of a run in progress, here and through a stand-in ssh.
#[test]
fn monitor_follows_a_run_until_it_ends_locally_and_through_ssh() {
    let env = TestEnv::init();
    let script = "echo shard one; sleep 1; echo shard two; sleep 1; echo done";
    // Local.
    let mut run = spawn_run(&env, "live", script);
    wait_for_log(&env, "live", "shard one\n");
    let out: Run = env
        .command(&[
            "monitor",
            "--tag",
            "live",
            "--interval",
            "0.1",
            "--then-finalize",
        ])
        .output()
        .unwrap()
        .into();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.starts_with("running "), "{out:?}");
    for needle in [
        "  | shard one\n",
        "  | shard two\n",
        "  | done\n",
        "ended: passed, exit 0",
    ] {
        assert!(out.stdout.contains(needle), "{needle:?} in {out:?}");
    }
    assert_eq!(out.stdout.matches("shard one").count(), 1, "{out:?}");
    assert!(
        out.stdout.contains("recorded finalize"),
        "--then-finalize ran: {out:?}"
    );
    assert!(env
        .repo
        .join("docs/production_research/STAGE_AUDIT_LOG.md")
        .is_file());
    run.wait().unwrap();

    // Through a stand-in ssh: a script that runs the command here, in the repo.
    let bin = env.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(crate::common::BIN, bin.join("ledger")).unwrap();
    let ssh = env.dir.path().join("fake-ssh");
    std::fs::write(
        &ssh,
        format!(
            // Like ssh: the words after the host are one command for a shell.
            "#!/bin/sh\necho \"$1\" >> {}\nshift\ncd {} && PATH={}:$PATH exec sh -c \"$*\"\n",
            env.dir.path().join("ssh-hosts").display(),
            env.repo.display(),
            bin.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&ssh, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut run = spawn_run(&env, "remote", &format!("{script}; exit 4"));
    wait_for_log(&env, "remote", "shard one\n");
    let out: Run = env
        .command(&[
            "monitor",
            "--tag",
            "remote",
            "--host",
            "hui@ws1",
            "--interval",
            "0.1",
        ])
        .env("LEDGER_SSH", &ssh)
        .output()
        .unwrap()
        .into();
    assert_eq!(out.code, 1, "a failed run: {out:?}");
    assert!(out.stdout.contains("  | shard two\n"), "{out:?}");
    assert!(out.stdout.contains("ended: failed, exit 4"), "{out:?}");
    let hosts = std::fs::read_to_string(env.dir.path().join("ssh-hosts")).unwrap();
    assert!(
        hosts.lines().all(|h| h == "hui@ws1") && hosts.lines().count() >= 2,
        "{hosts}"
    );
    run.wait().unwrap();
}
