//! The CLI documents itself: a snapshot of the whole `--help` tree (every
//! command with an example), shell completions and man pages.

use std::path::Path;

use crate::common::{assert_ok, TestEnv};

fn commands(env: &TestEnv) -> Vec<String> {
    subcommands(env, &[])
}

/// The commands `ledger PREFIX... --help` lists (none for a leaf).
fn subcommands(env: &TestEnv, prefix: &[&str]) -> Vec<String> {
    let mut args = prefix.to_vec();
    args.push("--help");
    let top = assert_ok(env.ledger(&args)).stdout;
    top.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .filter(|c| c != "help")
        .collect()
}

#[test]
fn the_help_tree_matches_its_snapshot_and_every_command_has_an_example() {
    let env = TestEnv::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/help");
    #[allow(clippy::disallowed_methods)] // a test switch, not product behaviour
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    if update {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
    }
    let names = commands(&env);
    assert!(names.len() >= 19, "{names:?}");
    let mut pages = vec![("ledger".to_string(), vec!["--help".to_string()])];
    for c in &names {
        pages.push((format!("ledger-{c}"), vec![c.clone(), "--help".into()]));
        for sub in subcommands(&env, &[c.as_str()]) {
            pages.push((
                format!("ledger-{c}-{sub}"),
                vec![c.clone(), sub.clone(), "--help".into()],
            ));
        }
    }
    for (name, args) in &pages {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let text = assert_ok(env.ledger(&args)).stdout;
        if name != "ledger" {
            assert!(
                text.contains("Example"),
                "`{}` has no example:\n{text}",
                args.join(" ")
            );
        }
        let golden = dir.join(format!("{name}.txt"));
        if update {
            std::fs::write(&golden, &text).unwrap();
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_else(|_| {
            panic!(
                "no snapshot {}; UPDATE_GOLDEN=1 writes it",
                golden.display()
            )
        });
        assert_eq!(
            text, want,
            "{name} --help changed (UPDATE_GOLDEN=1 rewrites tests/golden/help)"
        );
    }
    // No snapshot of a command that no longer exists.
    let mut snapshots: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .trim_end_matches(".txt")
                .to_string()
        })
        .collect();
    snapshots.sort();
    let mut expected: Vec<String> = pages.into_iter().map(|(n, _)| n).collect();
    expected.sort();
    assert_eq!(snapshots, expected);
}

#[test]
fn completions_and_man_pages_cover_every_command() {
    let env = TestEnv::new();
    let names = commands(&env);
    for shell in ["bash", "zsh", "fish"] {
        let script = assert_ok(env.ledger(&["completions", shell])).stdout;
        for c in &names {
            assert!(script.contains(c.as_str()), "{shell} completion lacks {c}");
        }
    }
    // bash itself accepts the script.
    let script = env.dir.path().join("ledger.bash");
    std::fs::write(
        &script,
        assert_ok(env.ledger(&["completions", "bash"])).stdout,
    )
    .unwrap();
    let status = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(assert_ok(env.ledger(&["man"])).stdout.starts_with(".ie"));
    let out = env.dir.path().join("man1");
    assert_ok(env.ledger(&["man", "--dir", out.to_str().unwrap()]));
    for c in &names {
        let page = std::fs::read_to_string(out.join(format!("ledger-{c}.1"))).unwrap();
        assert!(page.contains(&format!(".TH ledger-{c} 1")), "{page}");
        assert!(page.contains(&format!("ledger {c}")), "{page}");
    }
    assert!(out.join("ledger.1").exists());
    let bad = env.ledger(&["completions", "powershell"]);
    assert_eq!(bad.code, 2, "{bad:?}");
}
