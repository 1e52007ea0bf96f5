//! Faults of the machine: a full disk (as a file-size limit the kernel
//! enforces with EFBIG) and a read-only `.git`.

use std::os::unix::process::CommandExt as _;
use std::process::Command;

use crate::common::{assert_ok, Run, TestEnv};

/// Runs `cmd` with writes past `bytes` failing with EFBIG (RLIMIT_FSIZE, its
/// SIGXFSZ ignored): what a full disk looks like to ledger.
/// With `raisable`, the hard limit stays unlimited, so a child may lift it.
fn with_file_limit(mut cmd: Command, bytes: u64, raisable: bool) -> Run {
    // SAFETY: only async-signal-safe calls (setrlimit, signal) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: if raisable { libc::RLIM_INFINITY } else { bytes },
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    cmd.output().unwrap().into()
}

/// The one `error:` line of `out` (there must be exactly one).
fn one_error(out: &Run) -> &str {
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{out:?}");
    errors[0]
}

fn assert_intact(env: &TestEnv, before: &[String], what: &str) {
    let after = env.ledger_paths();
    for path in before {
        assert!(after.contains(path), "{what}: lost {path}");
    }
    let fsck = env.git_output(&["fsck", "--strict", "--no-dangling"]);
    assert_eq!(fsck.code, 0, "{what}: {fsck:?}");
    let verify = env.ledger(&["verify"]);
    assert_eq!(verify.code, 0, "{what}: {verify:?}");
}

#[test]
fn a_full_disk_is_a_clear_error_and_leaves_the_ledger_whole() {
    let env = TestEnv::init();
    assert_ok(env.run("before", &[], &["true"]));
    // The command's own output cannot be written: the command fails, and
    // the ledger records that faithfully.
    let before = env.ledger_paths();
    let cmd = env.run_command(
        "biglog",
        &[],
        &["sh", "-c", "head -c 300000 /dev/urandom | od -An -x"],
    );
    let out = with_file_limit(cmd, 64 << 10, false);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("failed (exit 1)"), "{out:?}");
    assert_eq!(env.record("result")["predicate"]["code"], 1);
    assert_intact(&env, &before, "big log");

    // Ledger's own write fails: a product too big for the disk (the command
    // itself may write, its limit raised).
    let before = env.ledger_paths();
    let cmd = env.run_command(
        "bigproduct",
        &[],
        &[
            "sh",
            "-c",
            "ulimit -f unlimited && mkdir -p gate_results/big && head -c 200000 /dev/urandom > gate_results/big/production_gates_report.json",
        ],
    );
    let out = with_file_limit(cmd, 16 << 10, true);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(!out.stderr.contains("panicked"), "{out:?}");
    assert!(one_error(&out).contains("File too large"), "{out:?}");
    assert_intact(&env, &before, "big product");
    let leftovers = std::process::Command::new("find")
        .args([".git/objects", "-name", ".tmp*"])
        .current_dir(&env.repo)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&leftovers.stdout),
        "",
        "no half-written object"
    );

    // Finalize whose documents cannot be written.
    let before = env.ledger_paths();
    let out = with_file_limit(env.command(&["finalize"]), 1, false);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(!out.stderr.contains("panicked"), "{out:?}");
    assert_eq!(
        env.ledger_paths(),
        before,
        "no finalize record for files not written"
    );
    assert_intact(&env, &before, "finalize");

    // Once there is room again, everything works.
    assert_ok(env.run("after", &[], &["true"]));
    assert_ok(env.ledger(&["finalize"]));
    assert_ok(env.ledger(&["recover"]));
    assert_intact(&env, &before, "after");
}

/// Makes directories immutable (`chattr +i`: even root cannot add to them)
/// until dropped.
struct Immutable(Vec<std::path::PathBuf>);

impl Immutable {
    fn set(dirs: Vec<std::path::PathBuf>) -> Option<Immutable> {
        let ok = Command::new("chattr")
            .arg("+i")
            .args(&dirs)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Immutable(dirs))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").args(&self.0).status();
    }
}

#[test]
fn a_read_only_git_directory_is_a_clear_error_and_reading_still_works() {
    let env = TestEnv::init();
    assert_ok(env.run("before", &[], &["true"]));
    let before = env.ledger_paths();
    let git = env.repo.join(".git");
    let mut dirs = vec![git.join("objects"), git.join("refs/heads"), git.clone()];
    dirs.extend(
        std::fs::read_dir(git.join("objects"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir()),
    );
    let Some(guard) = Immutable::set(dirs) else {
        // overlayfs and tmpfs have no immutable flag.
        eprintln!("skipped: this file system does not support chattr +i");
        return;
    };
    let out = env.run("blocked", &[], &["true"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        one_error(&out).contains("Operation not permitted"),
        "{out:?}"
    );
    assert!(!out.stderr.contains("panicked"), "{out:?}");
    // Reading needs no writes.
    assert_ok(env.ledger(&["verify"]));
    assert!(assert_ok(env.ledger(&["log"])).stdout.contains("_before"));
    drop(guard);
    assert_intact(&env, &before, "read-only .git");
    assert_ok(env.run("after", &[], &["true"]));
}
