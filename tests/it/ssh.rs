//! The real thing: a real `sshd` on 127.0.0.1 (its own host key, config and
//! authorized_keys in a temp dir, an unprivileged port), and `push`, `pull`
//! over an `ssh://` URL and `monitor --host` against it.
//!
//! Where sshd cannot start (not installed, no privileges) the test says why
//! and passes, except under CI (`CI` set), where that is a failure: `.ci/run`
//! installs openssh-server so the test always runs there.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{assert_ok, Run, TestEnv};

struct Sshd {
    child: Child,
    port: u16,
    /// The client's private key, authorized for the current user.
    client_key: PathBuf,
    user: String,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sshd {
    /// The ssh command line (for GIT_SSH_COMMAND and LEDGER_SSH).
    fn ssh_command(&self) -> String {
        format!(
            "ssh -i {} -p {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR",
            self.client_key.display(),
            self.port
        )
    }
}

fn skip_or_fail(why: &str) -> Option<Sshd> {
    #[allow(clippy::disallowed_methods)] // CI must never skip this test
    let ci = std::env::var_os("CI").is_some();
    assert!(!ci, "sshd test cannot run under CI: {why}");
    eprintln!("SKIPPED the real-sshd test: {why} (install openssh-server to run it)");
    None
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// Starts sshd, or explains why it cannot.
fn start(dir: &Path, bin_dir: &Path) -> Option<Sshd> {
    let sshd = ["/usr/sbin/sshd", "/usr/local/sbin/sshd"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    let Some(sshd) = sshd else {
        return skip_or_fail("no sshd binary");
    };
    // sshd insists on its privilege-separation directory.
    if !Path::new("/run/sshd").exists() && std::fs::create_dir_all("/run/sshd").is_err() {
        return skip_or_fail("cannot create /run/sshd");
    }
    let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string();
    let host_key = dir.join("host_key");
    let client_key = dir.join("client_key");
    keygen(&host_key);
    keygen(&client_key);
    std::fs::copy(
        client_key.with_extension("pub"),
        dir.join("authorized_keys"),
    )
    .unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPidFile {}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nSetEnv PATH={}:/usr/local/bin:/usr/bin:/bin\n",
            host_key.display(),
            dir.join("authorized_keys").display(),
            dir.join("sshd.pid").display(),
            bin_dir.display(),
        ),
    )
    .unwrap();
    let child = Command::new(&sshd)
        .args(["-D", "-e", "-f"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut server = Sshd {
        child,
        port,
        client_key,
        user,
    };
    let login = format!("{} {}@127.0.0.1 true", server.ssh_command(), server.user);
    // Up when a real ssh login works.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let probe = Command::new("sh")
            .arg("-c")
            .arg(&login)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        if probe.status.success() {
            break;
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            let mut err = String::new();
            use std::io::Read;
            server
                .child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .ok();
            return skip_or_fail(&format!("sshd exited ({status}): {}", err.trim()));
        }
        if Instant::now() > deadline {
            return skip_or_fail(&format!(
                "no ssh login within 10 s: {}",
                String::from_utf8_lossy(&probe.stderr).trim()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(server)
}

#[test]
fn push_pull_and_monitor_through_a_real_sshd() {
    let env = TestEnv::init();
    let bin = env.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(crate::common::BIN, bin.join("ledger")).unwrap();
    let Some(sshd) = start(env.dir.path(), &bin) else {
        return;
    };
    let ssh = sshd.ssh_command();
    let remote = env.dir.path().join("remote.git");
    env.git(&["init", "-q", "--bare", remote.to_str().unwrap()]);
    let url = format!(
        "ssh://{}@127.0.0.1:{}{}",
        sshd.user,
        sshd.port,
        remote.display()
    );

    // The workstation pushes over ssh.
    assert_ok(env.run("a1", &[], &["sh", "-c", "echo over ssh"]));
    let out: Run = env
        .command(&["push", &url])
        .env("GIT_SSH_COMMAND", &ssh)
        .output()
        .unwrap()
        .into();
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        env.git(&[
            "--git-dir",
            remote.to_str().unwrap(),
            "rev-parse",
            "refs/heads/ledger"
        ]),
        env.git(&["rev-parse", "refs/heads/ledger"])
    );

    // A laptop pulls over ssh (gix fetch through the ssh program).
    env.git(&["add", "ledger.yaml", ".ledger/allowed_signers"]);
    env.git(&["commit", "-q", "-m", "ledger config"]);
    let laptop = env.dir.path().join("laptop");
    env.git(&[
        "clone",
        "-q",
        env.repo.to_str().unwrap(),
        laptop.to_str().unwrap(),
    ]);
    let out: Run = env
        .command(&["pull", &url, "--json"])
        .current_dir(&laptop)
        .env("GIT_SSH_COMMAND", &ssh)
        .output()
        .unwrap()
        .into();
    assert_eq!(out.code, 0, "{out:?}");
    let pulled: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(pulled["action"], "cloned", "{pulled:#}");
    assert_eq!(pulled["new_runs"].as_array().unwrap().len(), 1);

    // The laptop monitors a run on the workstation through ssh.
    let mut run = env
        .run_command(
            "live",
            &[],
            &["sh", "-c", "echo first; sleep 1; echo second"],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let log_dir = env.repo.join("audit/workstation_runs");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_dir(&log_dir).unwrap().flatten().any(|e| {
        e.file_name().to_string_lossy().ends_with("_live")
            && std::fs::read_to_string(e.path().join("run.log")).is_ok_and(|l| l.contains("first"))
    }) {
        assert!(Instant::now() < deadline, "the live run never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let host = format!("{}@127.0.0.1", sshd.user);
    let out: Run = env
        .command(&[
            "monitor",
            "--tag",
            "live",
            "--host",
            &host,
            "--remote-dir",
            env.repo.to_str().unwrap(),
            "--interval",
            "0.2",
            "--then-finalize",
        ])
        .current_dir(&laptop)
        .env("LEDGER_SSH", &ssh)
        .output()
        .unwrap()
        .into();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("  | second\n"), "{out:?}");
    assert!(out.stdout.contains("ended: passed"), "{out:?}");
    // --then-finalize pulled the run from origin (the workstation) and
    // rendered the documents on the laptop.
    assert!(
        out.stdout.contains("no leftover process remains"),
        "{out:?}"
    );
    assert!(out.stdout.contains("recorded finalize"), "{out:?}");
    let stage = std::fs::read_to_string(laptop.join("docs/production_research/STAGE_AUDIT_LOG.md"))
        .unwrap();
    assert!(stage.contains("| live |"), "{stage}");
    run.wait().unwrap();
}
