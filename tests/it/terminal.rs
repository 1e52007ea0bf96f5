//! Progress and colour: on a terminal only, colour never with NO_COLOR. The
//! terminal is a real pseudo-terminal from util-linux `script`.

use std::path::Path;
use std::process::Command;

use crate::common::{assert_ok, TestEnv, BIN};

/// Runs `ledger ARGS` inside a pseudo-terminal (stdout and stderr both the
/// terminal) and returns everything the terminal received.
fn on_a_terminal(repo: &Path, args: &str, no_color: bool) -> String {
    let mut cmd = Command::new("script");
    #[allow(clippy::disallowed_methods)] // tests pass PATH through, nothing else
    let path = std::env::var_os("PATH").unwrap_or_default();
    cmd.current_dir(repo)
        .env_clear()
        .env("PATH", path)
        .env("HOME", repo)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("TERM", "xterm-256color")
        .args(["-qfec", &format!("'{BIN}' {args}"), "/dev/null"]);
    if no_color {
        cmd.env("NO_COLOR", "1");
    }
    let out = cmd.output().expect("script runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn progress_and_colour_only_on_a_terminal_and_never_with_no_color() {
    let env = TestEnv::new();
    let dir = env.dir.path().join("gen");
    assert_ok(env.ledger(&["generate", dir.to_str().unwrap(), "--runs", "200"]));
    let repo = dir;

    let tty = on_a_terminal(&repo, "verify", false);
    assert!(
        tty.contains("verify: runs "),
        "no progress on the terminal:\n{tty}"
    );
    assert!(tty.contains("/200 ["), "{tty}");
    assert!(tty.contains("verify: \x1b[32mok\x1b[0m"), "{tty}");

    let plain = on_a_terminal(&repo, "verify", true);
    assert!(
        plain.contains("verify: runs "),
        "progress is not colour:\n{plain}"
    );
    assert!(
        !plain.contains("\x1b[3"),
        "colour despite NO_COLOR:\n{plain}"
    );
    assert!(plain.contains("verify: ok"), "{plain}");

    // Not a terminal: not one escape sequence, no progress.
    let piped = env.ledger_in(&repo, &["verify"]);
    assert_eq!(piped.code, 0, "{piped:?}");
    assert!(
        !piped.stdout.contains('\x1b') && !piped.stderr.contains('\x1b'),
        "{piped:?}"
    );
    assert!(!piped.stderr.contains("verify: runs"), "{piped:?}");

    // The DQ gate counts the bytes it has read, on a terminal only.
    std::fs::write(repo.join("in.csv"), "date,factor\n2026-01-01,a\n").unwrap();
    let tty = on_a_terminal(&repo, "dq --input in.csv", false);
    assert!(
        tty.contains("dq: read "),
        "no progress on the terminal:\n{tty}"
    );
    assert!(tty.contains("/25 B ["), "{tty}");
    let piped = assert_ok(env.ledger_in(&repo, &["dq", "--input", "in.csv"]));
    assert!(
        !piped.stderr.contains("dq: read") && !piped.stderr.contains('\x1b'),
        "{piped:?}"
    );
    std::fs::remove_file(repo.join("in.csv")).unwrap();

    // The first call makes the text, the second reads its saved copy:
    // both paint the status column alone.
    assert!(!repo.join(".git/ledger/runs-log.txt").exists());
    let logs = ["first", "second"].map(|call| (call, on_a_terminal(&repo, "log", false)));
    let plain = assert_ok(env.ledger_in(&repo, &["log"])).stdout;
    for (call, log) in logs {
        assert!(
            log.contains("\x1b[32mpassed    \x1b[0m 20"),
            "{call}: {log}"
        );
        assert!(
            log.contains("\x1b[31mfailed    \x1b[0m 20"),
            "{call}: {log}"
        );
        let mut unpainted = log.replace('\r', "");
        for code in ["\x1b[32m", "\x1b[31m", "\x1b[33m", "\x1b[0m"] {
            unpainted = unpainted.replace(code, "");
        }
        assert_eq!(unpainted, plain, "{call}");
    }
}
