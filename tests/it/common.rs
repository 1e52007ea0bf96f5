//! The test environment: a temp dir with a real git repository, a real key,
//! and the real `ledger` binary run with a cleared environment, a pinned
//! clock bumped per call, and no user or system git configuration.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_ledger");

/// What a ledger call did.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}--- stderr ---\n{}[exit: {}]",
            self.stdout, self.stderr, self.code
        )
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        use std::os::unix::process::ExitStatusExt;
        Run {
            code: o
                .status
                .code()
                .unwrap_or_else(|| 128 + o.status.signal().unwrap_or(0)),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

pub struct TestEnv {
    pub dir: tempfile::TempDir,
    /// The work tree.
    pub repo: PathBuf,
    /// The signing key (trusted after `init`).
    pub key: PathBuf,
    tick: Cell<u64>,
    /// Set to skip the schema check of the ledger at drop (tampered fixtures).
    pub skip_schema_check: Cell<bool>,
}

impl TestEnv {
    /// A repository with one commit and a key; no ledger yet.
    pub fn new() -> TestEnv {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = dir.path().join("repo");
        std::fs::create_dir(&repo).unwrap();
        let env = TestEnv {
            key: dir.path().join("keys/writer"),
            repo,
            dir,
            tick: Cell::new(0),
            skip_schema_check: Cell::new(false),
        };
        env.git(&["init", "-q", "-b", "main"]);
        std::fs::write(env.repo.join("strategy.yaml"), "factor: momentum\n").unwrap();
        env.git(&["add", "strategy.yaml"]);
        env.git(&["commit", "-q", "-m", "initial"]);
        env.keygen(&env.key);
        env
    }

    /// [`TestEnv::new`] plus `ledger init`, with preflight limits this machine meets.
    pub fn init() -> TestEnv {
        let env = TestEnv::new();
        env.ok(&["init", "--principal", "writer@example.com"]);
        env.set_limits(1, 1);
        env
    }

    pub fn keygen(&self, path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let out: Run = self
            .base_command(BIN, &self.repo)
            .args([
                "keygen",
                "--out",
                path.to_str().unwrap(),
                "--comment",
                "test",
            ])
            .output()
            .expect("ledger runs")
            .into();
        assert_eq!(out.code, 0, "{out:?}");
    }

    pub fn set_limits(&self, cores: u64, memory_gb: u64) {
        let path = self.repo.join("ledger.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text
            .replace("min_cores: 8", &format!("min_cores: {cores}"))
            .replace("min_memory_gb: 60", &format!("min_memory_gb: {memory_gb}"));
        std::fs::write(path, text).unwrap();
    }

    /// `program` in `cwd` with the hermetic environment only: no key, the
    /// real clock.
    #[allow(clippy::disallowed_methods)] // tests pass PATH through, nothing else
    pub fn base_command(&self, program: &str, cwd: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(cwd)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("USER", "tester")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "Tester")
            .env("GIT_AUTHOR_EMAIL", "tester@example.com")
            .env("GIT_COMMITTER_NAME", "Tester")
            .env("GIT_COMMITTER_EMAIL", "tester@example.com")
            .env("GIT_AUTHOR_DATE", "2026-11-01T09:00:00Z")
            .env("GIT_COMMITTER_DATE", "2026-11-01T09:00:00Z")
            .stdin(Stdio::null());
        cmd
    }

    /// A `ledger` command with the hermetic environment and the next pinned time.
    pub fn command(&self, args: &[&str]) -> Command {
        let n = self.tick.get();
        self.tick.set(n + 1);
        let mut cmd = self.base_command(BIN, &self.repo);
        cmd.args(args)
            .env("LEDGER_KEY", &self.key)
            .env("LEDGER_TIMESTAMP", timestamp(n));
        cmd
    }

    pub fn ledger(&self, args: &[&str]) -> Run {
        self.command(args).output().expect("ledger runs").into()
    }

    pub fn ledger_in(&self, cwd: &Path, args: &[&str]) -> Run {
        let mut cmd = self.command(args);
        cmd.current_dir(cwd);
        cmd.output().expect("ledger runs").into()
    }

    /// `ledger run --workflow wf --tag TAG --owner o EXTRA... -- CMD...`
    pub fn run(&self, tag: &str, extra: &[&str], cmd: &[&str]) -> Run {
        self.run_command(tag, extra, cmd)
            .output()
            .expect("ledger runs")
            .into()
    }

    /// The command behind [`TestEnv::run`], to spawn or adjust first.
    pub fn run_command(&self, tag: &str, extra: &[&str], cmd: &[&str]) -> Command {
        let mut args = vec!["run", "--workflow", "wf", "--tag", tag, "--owner", "o"];
        args.extend_from_slice(extra);
        args.push("--");
        args.extend_from_slice(cmd);
        self.command(&args)
    }

    /// The payload of the newest record of `kind` in the ledger.
    pub fn record(&self, kind: &str) -> Value {
        self.payloads()
            .into_iter()
            .filter(|p| p["kind"] == kind)
            .max_by_key(|p| p["seq"].as_u64())
            .unwrap_or_else(|| panic!("no {kind} record"))
    }

    /// Runs ledger and asserts exit 0.
    pub fn ok(&self, args: &[&str]) -> Run {
        let out = self.ledger(args);
        assert_eq!(out.code, 0, "ledger {args:?}:\n{out:?}");
        out
    }

    pub fn git_output(&self, args: &[&str]) -> Run {
        self.base_command("git", &self.repo)
            .args(args)
            .output()
            .expect("git runs")
            .into()
    }

    /// Runs git and returns stdout; panics on failure.
    pub fn git(&self, args: &[&str]) -> String {
        let out = self.git_output(args);
        assert_eq!(out.code, 0, "git {args:?}:\n{out:?}");
        out.stdout
    }

    /// `git clone` of the repository to `dest`, with the ledger ref when
    /// `with_ledger`, and copies of the untracked `files` (ledger.yaml, trust
    /// files) from the work tree.
    pub fn clone_to(&self, dest: &Path, with_ledger: bool, files: &[&str]) {
        let dest_text = dest.to_str().unwrap();
        self.git(&["clone", "-q", self.repo.to_str().unwrap(), dest_text]);
        if with_ledger {
            let refspec = "refs/heads/ledger:refs/heads/ledger";
            self.git(&["-C", dest_text, "fetch", "-q", "origin", refspec]);
        }
        for f in files {
            std::fs::create_dir_all(dest.join(f).parent().unwrap()).unwrap();
            std::fs::copy(self.repo.join(f), dest.join(f)).unwrap();
        }
    }

    /// Raw bytes of a file in the ledger tree, read with git.
    pub fn ledger_file(&self, path: &str) -> Vec<u8> {
        let out = self
            .base_command("git", &self.repo)
            .args(["cat-file", "blob", &format!("refs/heads/ledger:{path}")])
            .output()
            .unwrap();
        assert!(out.status.success(), "no {path} in the ledger");
        out.stdout
    }

    pub fn ledger_tip(&self) -> String {
        self.git(&["rev-parse", "refs/heads/ledger"])
            .trim()
            .to_string()
    }

    /// Every path under runs/ in the ledger tree.
    pub fn ledger_paths(&self) -> Vec<String> {
        self.git(&["ls-tree", "-r", "--name-only", "refs/heads/ledger"])
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Run ids in the ledger, in name order.
    pub fn run_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .ledger_paths()
            .iter()
            .filter_map(|p| {
                p.strip_prefix("runs/")?
                    .split('/')
                    .next()
                    .map(str::to_string)
            })
            .collect();
        ids.dedup();
        ids
    }

    /// Like [`TestEnv::command`], but through `sh -c "<prelude>; exec ledger ARGS"`
    /// (e.g. to set a umask first).
    pub fn command_after(&self, prelude: &str, args: &[&str]) -> Command {
        let n = self.tick.get();
        self.tick.set(n + 1);
        let mut cmd = self.base_command("sh", &self.repo);
        cmd.arg("-c")
            .arg(format!("{prelude}; exec \"$0\" \"$@\""))
            .arg(BIN)
            .args(args)
            .env("LEDGER_KEY", &self.key)
            .env("LEDGER_TIMESTAMP", timestamp(n));
        cmd
    }

    /// A bare clone of the repository named `name` beside it, with the
    /// ledger ref fetched (the committee's usual copy).
    pub fn bare_clone(&self, name: &str) -> PathBuf {
        let bare = self.dir.path().join(name);
        self.git(&["clone", "-q", "--bare", ".", bare.to_str().unwrap()]);
        let fetch = self.git_output(&[
            "--git-dir",
            bare.to_str().unwrap(),
            "fetch",
            "-q",
            ".",
            "refs/heads/ledger:refs/heads/ledger",
        ]);
        assert_eq!(fetch.code, 0, "{fetch:?}");
        bare
    }

    /// Every record payload in the ledger, decoded from its envelope.
    pub fn payloads(&self) -> Vec<Value> {
        self.ledger_paths()
            .iter()
            .filter(|p| {
                (p.starts_with("runs/")
                    || p.starts_with("finalize/")
                    || p.starts_with("decisions/"))
                    && p.ends_with(".dsse.json")
            })
            .map(|p| decode_payload(&self.ledger_file(p)))
            .collect()
    }

    /// Commits the given edits on top of the ledger tip with plain git
    /// (a temporary index, never the user's), signed by `key` through git's own
    /// SSH signing, or unsigned.
    pub fn tamper(&self, edits: &[(&str, Option<&[u8]>)], key: Option<&Path>) {
        self.skip_schema_check.set(true);
        let index = self.dir.path().join("tamper.index");
        let git = |args: &[&str], input: Option<&[u8]>| -> String {
            let mut cmd = self.base_command("git", &self.repo);
            cmd.args(args).env("GIT_INDEX_FILE", &index);
            cmd.stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
            let mut child = cmd.spawn().unwrap();
            if let Some(bytes) = input {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(bytes).unwrap();
            }
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "git {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        git(&["read-tree", "refs/heads/ledger"], None);
        for (path, content) in edits {
            match content {
                Some(bytes) => {
                    let blob = git(&["hash-object", "-w", "--stdin"], Some(bytes));
                    git(
                        &[
                            "update-index",
                            "--add",
                            "--cacheinfo",
                            &format!("100644,{blob},{path}"),
                        ],
                        None,
                    );
                }
                None => {
                    git(&["update-index", "--force-remove", path], None);
                }
            }
        }
        let tree = git(&["write-tree"], None);
        let key_arg = key.map(|k| format!("user.signingkey={}", k.display()));
        let mut args = vec!["-c", "gpg.format=ssh"];
        if let Some(k) = &key_arg {
            args.extend(["-c", k.as_str()]);
        }
        args.extend(["commit-tree", "-p", "refs/heads/ledger", "-m", "tampered"]);
        if key.is_some() {
            args.push("-S");
        }
        args.push(&tree);
        let commit = git(&args, None);
        git(&["update-ref", "refs/heads/ledger", &commit], None);
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if std::thread::panicking() || self.skip_schema_check.get() {
            return;
        }
        let has_ledger = self
            .git_output(&["rev-parse", "--verify", "-q", "refs/heads/ledger"])
            .code
            == 0;
        if has_ledger {
            for payload in self.payloads() {
                crate::schemas::assert_valid_record(&payload);
            }
        }
    }
}

/// `2026-11-22T10:00:00Z` plus `n` minutes.
pub fn timestamp(n: u64) -> String {
    let minutes = 10 * 60 + n;
    format!(
        "2026-11-{:02}T{:02}:{:02}:00Z",
        22 + minutes / (24 * 60),
        (minutes / 60) % 24,
        minutes % 60
    )
}

pub fn decode_envelope(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("envelope is JSON")
}

pub fn decode_payload(envelope: &[u8]) -> Value {
    let env = decode_envelope(envelope);
    let payload = ledger::record::decode_b64(env["payload"].as_str().unwrap()).unwrap();
    serde_json::from_slice(&payload).expect("payload is JSON")
}

/// Re-encodes `envelope` with `payload` (canonical) and the old signatures.
pub fn with_payload(envelope: &[u8], payload: &Value) -> Vec<u8> {
    let mut env = decode_envelope(envelope);
    let bytes = ledger::record::canon::canonical_bytes(payload);
    env["payload"] = Value::String(ledger::record::encode_b64(&bytes));
    serde_json::to_vec_pretty(&env).unwrap()
}

/// Asserts that a ledger call succeeded.
pub fn assert_ok(out: Run) -> Run {
    assert_eq!(out.code, 0, "{out:?}");
    out
}

/// Asserts that a ledger call failed with exit 2 and a one-line error.
pub fn assert_input_error(out: &Run, needle: &str) {
    assert_eq!(out.code, 2, "{out:?}");
    let first = out.stderr.lines().next().unwrap_or_default();
    assert!(first.starts_with("error: "), "{out:?}");
    assert!(
        first.contains(needle),
        "expected {needle:?} in the first line:\n{out:?}"
    );
    let errors = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("error"))
        .count();
    assert_eq!(errors, 1, "{out:?}");
    assert!(!out.stderr.contains("panicked"), "{out:?}");
}
