//! The bad-input matrix: every command and every file a user hands ledger
//! (ledger.yaml, allowed_signers, keys, CSVs, flags, the environment), each
//! case answered with one error line naming the file or flag and the field,
//! the documented exit code (2), no panic, and nothing changed: not the
//! ledger, not any other ref, not the work tree.
//!
//! Each case starts from the same repository (one recorded run, a committed
//! ledger.yaml), changes one thing, and puts it back afterwards.

use std::path::Path;

use crate::common::{Run, TestEnv};

/// One bad input.
struct Case {
    /// Files to write (relative to the work tree) before the call.
    files: Vec<(&'static str, Vec<u8>)>,
    args: Vec<String>,
    /// Environment for the call, on top of the test environment.
    env: Vec<(&'static str, String)>,
    /// Must appear in the first (and only) error line.
    needle: String,
}

fn case(args: &[&str], needle: &str) -> Case {
    Case {
        files: Vec::new(),
        args: args.iter().map(|a| a.to_string()).collect(),
        env: Vec::new(),
        needle: needle.to_string(),
    }
}

impl Case {
    fn with_file(mut self, path: &'static str, bytes: impl Into<Vec<u8>>) -> Case {
        self.files.push((path, bytes.into()));
        self
    }

    fn with_env(mut self, name: &'static str, value: impl Into<String>) -> Case {
        self.env.push((name, value.into()));
        self
    }
}

fn run_args(extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["run", "--workflow", "wf", "--tag", "fresh", "--owner", "o"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn run_case(extra: &[&str], needle: &str) -> Case {
    let mut c = case(&[], needle);
    c.args = run_args(extra);
    c
}

/// Everything a failed call must leave as it was.
fn state(env: &TestEnv) -> String {
    format!(
        "{}\n{}",
        env.git(&["for-each-ref", "--format=%(refname) %(objectname)"]),
        env.git(&[
            "status",
            "--porcelain",
            "--untracked-files=all",
            "--ignored"
        ])
    )
}

/// The matrix's own judgement of one answer.
fn judge(out: &Run, needle: &str) -> Result<(), String> {
    if out.stderr.contains("panicked") || out.stderr.contains("RUST_BACKTRACE") || out.code == 101 {
        return Err("a panic reached the user".into());
    }
    if out.code != 2 {
        return Err(format!("exit {} instead of 2", out.code));
    }
    let first = out.stderr.lines().next().unwrap_or_default();
    if !first.starts_with("error: ") {
        return Err("the first line is not `error: ...`".into());
    }
    if !first.contains(needle) {
        return Err(format!("{needle:?} is not in the first line"));
    }
    let errors = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("error"))
        .count();
    if errors != 1 {
        return Err(format!("{errors} error lines"));
    }
    if !out.stdout.is_empty() {
        return Err("something was printed on stdout".into());
    }
    Ok(())
}

fn cases(env: &TestEnv, keys: &Path) -> Vec<Case> {
    let yaml = std::fs::read_to_string(env.repo.join("ledger.yaml")).unwrap();
    let signers = std::fs::read_to_string(env.repo.join(".ledger/allowed_signers")).unwrap();
    let public = signers.split_once(' ').unwrap().1.trim().to_string();
    let key = |name: &str| keys.join(name).to_str().unwrap().to_string();
    let edit = |from: &str, to: &str| {
        assert!(yaml.contains(from), "the template has {from:?}");
        yaml.replacen(from, to, 1)
    };
    let y = "ledger.yaml";
    let s = ".ledger/allowed_signers";
    vec![
        // ledger.yaml: syntax and types, through several commands.
        case(&["log"], "ledger.yaml: cannot read").with_file(y, b"version: 1\n\xff\xfe\n".to_vec()),
        case(&["log"], "ledger.yaml: missing field `version`").with_file(y, ""),
        case(&["status"], "ledger.yaml: duplicate field `version`")
            .with_file(y, format!("{yaml}version: 1\n")),
        case(&["verify"], "ledger.yaml: invalid type: sequence").with_file(y, "- 1\n- 2\n"),
        case(&["log"], "ledger.yaml: ledger.ref")
            .with_file(y, edit("ref: refs/heads/ledger", "ref: \"refs/heads/a b\"")),
        run_case(&["--", "true"], "ledger.yaml: version: 7 is not supported")
            .with_file(y, edit("version: 1", "version: 7")),
        run_case(
            &["--", "true"],
            "ledger.yaml: preflight.min_cores: invalid type",
        )
        .with_file(y, edit("min_cores: 1", "min_cores: eight")),
        run_case(
            &["--", "true"],
            "ledger.yaml: workflows.wf.require_dq: invalid type",
        )
        .with_file(
            y,
            edit("workflows:\n", "workflows:\n  wf: {require_dq: maybe}\n"),
        ),
        run_case(
            &["--", "true"],
            "ledger.yaml: context.env_allow[1]: invalid type: map",
        )
        .with_file(
            y,
            edit("  env_allow:\n", "  env_allow:\n    - PATH\n    - {a: b}\n"),
        ),
        run_case(
            &["--", "true"],
            "ledger.yaml: products.max_bytes: invalid type: integer `-5`",
        )
        .with_file(y, edit("max_bytes: 67108864", "max_bytes: -5")),
        run_case(&["--", "true"], "ledger.yaml: log.tail_lines: invalid type").with_file(
            y,
            edit("tail_lines: 20", "tail_lines: 99999999999999999999"),
        ),
        run_case(
            &["--", "true"],
            "ledger.yaml: inputs: \"[unclosed\" is not a glob",
        )
        .with_file(y, edit("inputs: []", "inputs: [\"[unclosed\"]")),
        run_case(
            &["--", "true"],
            "ledger.yaml: inputs: \"data/**\" matches no file (a last ** matches directories only): write \"data/**/*\"",
        )
        .with_file(y, edit("inputs: []", "inputs: [\"data/**\"]")),
        run_case(
            &["--", "true"],
            "ledger.yaml: products.globs: \"out/[x\" is not a glob",
        )
        .with_file(
            y,
            edit(
                "    - gate_results/**/production_gates_report.json",
                "    - out/[x",
            ),
        ),
        run_case(
            &["--", "true"],
            "ledger.yaml: context.env_allow: \"A B\" is not an environment variable name",
        )
        .with_file(y, edit("  env_allow:\n", "  env_allow:\n    - A B\n")),
        run_case(
            &["--", "true"],
            "ledger.yaml: signing.key: must name a key file",
        )
        .with_file(y, edit("  # key: ~/.ssh/id_ed25519", "  key: \"\"")),
        case(
            &["dq", "--input", "data.csv"],
            "ledger.yaml: dq.command: must be a command",
        )
        .with_file(
            y,
            edit("  # command: python", "  command: \" \"\n  # python"),
        ),
        case(
            &["dq", "--input", "data.csv"],
            "ledger.yaml: dq.ranges: ret: min 1 is above max -1",
        )
        .with_file(
            y,
            edit(
                "  # ranges:",
                "  ranges: {ret: {min: 1, max: -1}}\n  # ranges:",
            ),
        ),
        case(
            &["dq", "--input", "data.csv"],
            "ledger.yaml: dq.date.max_gap_days: invalid type",
        )
        .with_file(
            y,
            edit(
                "  # date: {",
                "  date: {column: date, max_gap_days: -1}\n  # x: {",
            ),
        ),
        case(
            &["dq", "--input", "data.csv"],
            "ledger.yaml: dq.min_rows: invalid type",
        )
        .with_file(y, edit("  # min_rows: 250", "  min_rows: 1.5")),
        case(
            &["finalize"],
            "ledger.yaml: report.product: \"**/[\" must be a relative glob",
        )
        .with_file(
            y,
            edit(
                "  product: \"**/production_gates_report.json\"",
                "  product: \"**/[\"",
            ),
        ),
        case(&["finalize"], "ledger.yaml: audit.dir: \"../audit\"")
            .with_file(y, edit("dir: audit/workstation_runs", "dir: ../audit")),
        case(
            &["decide", "t0", "--decision", "approve", "--reason", "fine"],
            "ledger.yaml committee.allowed_signers: not set",
        ),
        // allowed_signers, read by verify and finalize.
        case(&["verify"], "allowed_signers:1: invalid ssh-ed25519 key")
            .with_file(s, "w@x ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHn/\n"),
        case(
            &["verify"],
            "allowed_signers:1: expected `principals [options] keytype key`",
        )
        .with_file(s, "w@x\n"),
        case(&["verify"], "allowed_signers:2: invalid time \"garbage\"")
            .with_file(s, format!("# team\nw@x valid-after=\"garbage\" {public}\n")),
        case(&["finalize"], "allowed_signers:1: invalid time \"2026\"")
            .with_file(s, format!("w@x valid-before=2026 {public}\n")),
        case(&["verify"], "allowed_signers: cannot read trust file")
            .with_file(s, b"w@x \xff\xfe\n".to_vec()),
        case(
            &["verify", "--trust", "/nonexistent/signers"],
            "/nonexistent/signers: cannot read trust file",
        ),
        // Keys.
        run_case(
            &["--key", &key("missing"), "--", "true"],
            "missing: key file not found",
        ),
        run_case(
            &["--key", &key("dir"), "--", "true"],
            "dir: cannot read key file",
        ),
        run_case(
            &["--key", &key("garbage"), "--", "true"],
            "garbage: not an OpenSSH private key",
        ),
        run_case(
            &["--key", &key("group"), "--", "true"],
            "group: private key is readable by others (mode 640)",
        ),
        run_case(&["--", "true"], "key file not found").with_env("LEDGER_KEY", key("missing")),
        // Finalize writes run documents as it renders them: the key must be
        // checked before the first one.
        case(&["finalize"], "key file not found").with_env("LEDGER_KEY", key("missing")),
        case(
            &["keygen", "--out", &key("garbage")],
            "garbage: already exists; ledger never overwrites a key",
        ),
        // CSVs and dates for the data-quality gate.
        case(&["dq", "--input", "nope.csv"], "--input: "),
        case(
            &["dq", "--input", "data.csv", "--as-of", "yesterday"],
            "--as-of",
        ),
        run_case(
            &["--dq-input-csv", "nope.csv", "--", "true"],
            "--dq-input-csv: ",
        ),
        run_case(&["--dq-as-of", "2026-13-01", "--", "true"], "--dq-as-of"),
        run_case(
            &["--skip-dq", "--skip-reason", " ", "--", "true"],
            "--skip-reason: say why the DQ gate is skipped",
        ),
        run_case(
            &[
                "--skip-dq",
                "--skip-reason",
                "late",
                "--dq-input-csv",
                "data.csv",
                "--",
                "true",
            ],
            "--skip-dq: conflicts with --dq-input-csv",
        ),
        run_case(
            &["--", "true"],
            "--dq-input-csv: workflow wf requires the DQ gate",
        )
        .with_file(
            y,
            edit("workflows:\n", "workflows:\n  wf: {require_dq: true}\n"),
        ),
        // Flags of `run`.
        run_case(
            &["--freeze-file", "nope.json", "--", "true"],
            "--freeze-file: ",
        ),
        run_case(
            &["--threads", "0", "--", "true"],
            "--threads: must be at least 1",
        ),
        run_case(&["--"], "command: nothing to run"),
        {
            let mut c = run_case(&["--", "true"], "--owner: must name who answers");
            c.args[6] = " ".into();
            c
        },
        {
            let mut c = run_case(&["--", "true"], "--tag: \"../x\" is not allowed");
            c.args[4] = "../x".into();
            c
        },
        {
            let mut c = run_case(&["--", "true"], "--tag: tag \"t0\" is already used");
            c.args[4] = "t0".into();
            c
        },
        run_case(
            &["--", "true"],
            "LEDGER_TIMESTAMP: \"yesterday\" is not an RFC 3339 time",
        )
        .with_env("LEDGER_TIMESTAMP", "yesterday"),
        run_case(&["--bogus", "--", "true"], "unexpected argument '--bogus'"),
        // Flags of the reading and syncing commands.
        case(
            &["verify", "--since", "nothex"],
            "--since: \"nothex\" is not a full commit id",
        ),
        case(&["show", "nope"], "RUN: no run or tag \"nope\""),
        case(
            &["log", "-n", "x"],
            "invalid value 'x' for '--max-count <N>'",
        ),
        case(
            &["status", "--tag", "nope"],
            "--tag: no run with tag or id \"nope\"",
        ),
        case(
            &["finalize", "--tag", "nope"],
            "--tag: no run with tag or id \"nope\"",
        ),
        case(&["finalize", "--check", "--commit"], "cannot be used with"),
        case(
            &["decide", "t0", "--decision", "maybe", "--reason", "x"],
            "invalid value 'maybe' for '--decision <DECISION>'",
        ),
        case(
            &["export", "--in-toto", "data.csv/x.jsonl"],
            "data.csv/x.jsonl",
        ),
        case(&["pull", "nowhere-remote"], "remote nowhere-remote"),
        case(&["push", "nowhere-remote"], "remote nowhere-remote"),
        case(
            &["monitor", "--tag", "t0", "--interval", "0"],
            "--interval: must be a positive number of seconds",
        ),
        case(
            &["generate", "gen", "--runs", "0"],
            "--runs, --writers and --per-commit must be at least 1",
        ),
        case(&["config", "check", "--file", "nope.yaml"], "nope.yaml"),
        case(&["completions", "tcsh"], "invalid value 'tcsh'"),
        case(&["frobnicate"], "unrecognized subcommand 'frobnicate'"),
    ]
}

#[test]
fn every_bad_input_is_one_line_exit_2_no_panic_and_changes_nothing() {
    let env = TestEnv::init();
    std::fs::write(env.repo.join("data.csv"), "date,ret\n2026-11-20,0.1\n").unwrap();
    env.git(&["add", "ledger.yaml", ".ledger/allowed_signers", "data.csv"]);
    env.git(&["commit", "-q", "-m", "ledger config"]);
    let first = env.run("t0", &[], &["true"]);
    assert_eq!(first.code, 0, "{first:?}");
    // Documents and audit copies are committed so that the work tree is
    // clean: any file a failed call writes shows in `git status`.
    env.git(&["add", "-A"]);
    env.git(&["commit", "-q", "-m", "audit copies"]);

    let keys = env.dir.path().join("bad-keys");
    std::fs::create_dir_all(keys.join("dir")).unwrap();
    std::fs::write(keys.join("garbage"), "not a key\n").unwrap();
    env.keygen(&keys.join("group"));
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(keys.join("group"), std::fs::Permissions::from_mode(0o640)).unwrap();

    let before = state(&env);
    let matrix = cases(&env, &keys);
    assert!(matrix.len() >= 40, "{} cases", matrix.len());
    let mut failures = Vec::new();
    for c in &matrix {
        let mut saved = Vec::new();
        for (path, bytes) in &c.files {
            let full = env.repo.join(path);
            saved.push((full.clone(), std::fs::read(&full).ok()));
            std::fs::write(&full, bytes).unwrap();
        }
        let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
        let mut cmd = env.command(&args);
        for (name, value) in &c.env {
            cmd.env(name, value);
        }
        let out: Run = cmd.output().expect("ledger runs").into();
        for (full, bytes) in saved.into_iter().rev() {
            match bytes {
                Some(b) => std::fs::write(&full, b).unwrap(),
                None => std::fs::remove_file(&full).unwrap(),
            }
        }
        if let Err(why) = judge(&out, &c.needle) {
            failures.push(format!("ledger {}: {why}\n{out:?}", c.args.join(" ")));
        }
        let after = state(&env);
        if after != before {
            failures.push(format!(
                "ledger {}: changed the repository:\n{before}\n--- after ---\n{after}",
                c.args.join(" ")
            ));
            break;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        matrix.len(),
        failures.join("\n\n")
    );
}

/// The matrix's judge must be able to fail: a panic, a second error line,
/// a wrong exit code and a wrong field are each caught.
#[test]
fn the_matrix_judge_catches_what_it_must() {
    let run = |code: i32, stderr: &str| Run {
        code,
        stdout: String::new(),
        stderr: stderr.to_string(),
    };
    assert!(judge(&run(2, "error: ledger.yaml: x: bad\n"), "ledger.yaml: x").is_ok());
    let panic =
        "thread 'main' panicked at src/x.rs:1:1:\nboom\nnote: run with `RUST_BACKTRACE=1`\n";
    assert!(judge(&run(101, panic), "x").is_err());
    assert!(judge(&run(2, &format!("error: x\n{panic}")), "x").is_err());
    assert!(judge(&run(1, "error: x\n"), "x").is_err());
    assert!(judge(&run(2, "error: y\n"), "x").is_err());
    assert!(judge(&run(2, "error: x\nerror: x again\n"), "x").is_err());
    assert!(judge(&run(2, "warning: x\n"), "x").is_err());
}
