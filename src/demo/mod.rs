//! `ledger demo`: a scratch research repository with a sample gate workflow
//! that needs only a POSIX shell, and four recorded runs (one passing, one
//! failing a gate, one blocked by the data-quality gate, and a rerun of the
//! first factor with a changed strategy config), then `finalize` and `verify`.
//! Everything goes through the same library calls as the real commands.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config;
use crate::run::{self, Outcome, Request};
use crate::sign::{self, Signer};
use crate::store::{self, Identity, Store};
use crate::trust::TrustFile;
use crate::verify;
use crate::workspace::Workspace;
use crate::Error;

const GATES: &str = include_str!("gates.sh");
const GOOD_CSV: &str = "date,factor,ret,vol\n\
2026-11-16,momentum,0.0123,0.18\n2026-11-16,value,-0.0041,0.15\n\
2026-11-17,momentum,0.0087,0.17\n2026-11-17,value,0.0012,0.15\n\
2026-11-18,momentum,-0.0032,0.19\n2026-11-18,value,0.0025,0.16\n\
2026-11-19,momentum,0.0101,0.18\n2026-11-19,value,-0.0007,0.15\n\
2026-11-20,momentum,0.0044,0.18\n2026-11-20,value,0.0019,0.16\n";
/// A duplicated (date, factor) and a return of 740 %.
const BAD_CSV: &str = "date,factor,ret,vol\n\
2026-11-16,momentum,0.0123,0.18\n2026-11-16,value,-0.0041,0.15\n\
2026-11-17,momentum,0.0087,0.17\n2026-11-17,momentum,7.4,0.15\n\
2026-11-18,momentum,-0.0032,0.19\n2026-11-18,value,0.0025,0.16\n";
/// The strategy config every run records (ledger.yaml `inputs`).
const STRATEGY: &str = "config/strategy.yaml";

fn strategy(lookback_days: u32) -> String {
    format!(
        "# Momentum strategy (demo)\nuniverse: us_large_cap\nlookback_days: {lookback_days}\nrebalance: weekly\ncost_model: linear_bps_10\n"
    )
}

const DQ_RULES: &str = "dq:
  # The demo's data-quality rules (see ledger-template/ledger.yaml for all of them).
  columns: {date: date, factor: string, ret: float, vol: float}
  not_null: [date, factor, ret]
  unique_key: [date, factor]
  date: {column: date, sorted: true, max_gap_days: 4}
  ranges: {ret: {min: -0.5, max: 0.5}, vol: {min: 0.0, max: 2.0}}
  min_rows: 4
  staleness: {max_age_days: 3, as_of: 2026-11-22}
";

/// What the demo did.
pub struct Demo {
    pub repo: PathBuf,
    pub key: PathBuf,
    pub trust: PathBuf,
    pub runs: Vec<Outcome>,
    /// Documents `finalize` wrote, and its record.
    pub documents: Vec<String>,
    pub finalize: crate::finalize::Recorded,
    pub verify: verify::Report,
    /// The HTML report's index page (`ledger report --html`), beside the repository.
    pub report: PathBuf,
}

/// Runs `git -C repo ARGS`; its stderr becomes the error.
pub(crate) fn git(repo: &Path, args: &[&str]) -> Result<(), Error> {
    crate::gitcli::git(repo, args).map(drop)
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// The template with the demo's settings, each one marked as such.
fn demo_config() -> String {
    let mut text = config::TEMPLATE
        .replace(
            "  min_cores: 8",
            "  min_cores: 1  # lowered for the demo only; official runs keep 8",
        )
        .replace(
            "  min_memory_gb: 60",
            "  min_memory_gb: 1  # lowered for the demo only; official runs keep 60",
        )
        .replace(
            "  # key: ~/.ssh/id_ed25519",
            "  key: ../keys/demo_ed25519  # the demo's own key",
        )
        .replace(
            "inputs: []",
            "inputs: [config/strategy.yaml]  # stored with each run, diffed in run reviews",
        );
    let start = text.find("\ndq:\n").map_or(text.len(), |i| i + 1);
    let end = text.find("\nproducts:\n").map_or(text.len(), |i| i + 1);
    text.replace_range(start..end, &format!("{DQ_RULES}\n"));
    text
}

/// Refuses a directory that exists and is not empty.
pub(crate) fn require_empty(dir: &Path) -> Result<(), Error> {
    if dir.exists()
        && std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .next()
            .is_some()
    {
        return Err(Error::input(
            "DIR",
            format!(
                "{} is not empty; give a new or empty directory",
                dir.display()
            ),
        ));
    }
    Ok(())
}

/// Builds the demo under `dir` (which must be empty or absent).
pub fn demo(dir: &Path, note: &mut dyn Write) -> Result<Demo, Error> {
    require_empty(dir)?;
    let repo = dir.join("research");
    let key = dir.join("keys/demo_ed25519");
    std::fs::create_dir_all(&repo).map_err(|e| Error::io(&repo, e))?;
    std::fs::create_dir_all(dir.join("keys")).map_err(|e| Error::io(dir, e))?;
    writeln!(note, "demo: a research repository in {}", repo.display()).ok();
    git(&repo, &["init", "-q", "-b", "main"])?;
    git(&repo, &["config", "user.name", "Demo Analyst"])?;
    git(&repo, &["config", "user.email", "analyst@demo.invalid"])?;
    let made = sign::keygen(&key, "analyst@demo.invalid")?;
    writeln!(
        note,
        "demo: a signing key {} ({})",
        key.display(),
        made.fingerprint
    )
    .ok();
    let trust = repo.join(".ledger/allowed_signers");
    write(&repo.join(config::FILE_NAME), &demo_config())?;
    write(
        &trust,
        &format!("analyst@demo.invalid {}\n", made.public_openssh),
    )?;
    write(&repo.join("scripts/gates.sh"), GATES)?;
    write(&repo.join(STRATEGY), &strategy(60))?;
    write(&repo.join("data/prices.csv"), GOOD_CSV)?;
    write(&repo.join("data/prices_bad.csv"), BAD_CSV)?;
    write(&repo.join(".gitignore"), "audit/\ngate_results/\n")?;
    git(&repo, &["add", "-A"])?;
    git(&repo, &["commit", "-q", "-m", "Demo research repository"])?;
    writeln!(note, "demo: ledger.yaml lowers the preflight limits for the demo only (min_cores 1, min_memory_gb 1)").ok();

    let signer = Signer::load(&key)?;
    let store = Store::new(store::discover(&repo)?, "refs/heads/ledger");
    let identity = Identity {
        name: "Demo Analyst".into(),
        email: "analyst@demo.invalid".into(),
    };
    store.init(&identity, crate::clock::now()?, &|bytes: &[u8]| {
        signer.sign_commit(bytes)
    })?;
    let ws = Workspace::open(&repo)?;

    let plan: [(&str, &str, &str, &str, &str); 4] = [
        (
            "committee_demo_momentum",
            "momentum",
            "1.21",
            "0.93",
            "data/prices.csv",
        ),
        (
            "committee_demo_value",
            "value",
            "0.74",
            "0.31",
            "data/prices.csv",
        ),
        (
            "committee_demo_bad_data",
            "quality",
            "1.05",
            "0.88",
            "data/prices_bad.csv",
        ),
        (
            "committee_demo_momentum_lookback120",
            "momentum",
            "1.34",
            "1.02",
            "data/prices.csv",
        ),
    ];
    let mut runs = Vec::new();
    for (tag, factor, s15, s20, csv) in plan {
        if tag.ends_with("lookback120") {
            writeln!(
                note,
                "\ndemo: the analyst changes {STRATEGY} (lookback_days 60 -> 120) and commits"
            )
            .ok();
            write(&repo.join(STRATEGY), &strategy(120))?;
            git(
                &repo,
                &["commit", "-q", "-am", "Momentum: lookback 120 days"],
            )?;
        }
        writeln!(note, "\ndemo: ledger run --workflow production_gates --tag {tag} --dq-input-csv {csv} -- sh scripts/gates.sh {factor} …").ok();
        let request = Request {
            workflow: "production_gates".into(),
            tag: tag.into(),
            owner: "demo".into(),
            notes: format!("demo run of the {factor} factor"),
            threads: Some(2),
            require_clean: true,
            rerun: false,
            argv: ["sh", "scripts/gates.sh", factor, tag, s15, s20]
                .map(String::from)
                .to_vec(),
            user: "demo".into(),
            env: BTreeMap::new(),
            cwd: repo.clone(),
            echo: true,
            freeze_file: None,
            dq_input: Some(repo.join(csv)),
            dq_as_of: None,
            skip_dq: None,
        };
        let outcome = run::run(&ws, &signer, &identity, &request, note)?;
        writeln!(
            note,
            "demo: run {} {} (exit {})",
            outcome.run_id,
            outcome.status.as_str(),
            outcome.code
        )
        .ok();
        runs.push(outcome);
    }
    let trust_file = crate::trust::Trust::writers(TrustFile::load(&trust)?);
    writeln!(note, "\ndemo: ledger finalize").ok();
    let mut computed = crate::finalize::compute(
        &ws,
        &trust_file,
        crate::project::Options::default(),
        None,
        true,
        true,
    )?;
    crate::finalize::write_tracked(&ws, &mut computed, true)?;
    let finalize =
        crate::finalize::record(&ws, &signer, &identity, crate::clock::now()?, &computed)?;
    let documents = computed.projection.paths();
    let report = verify::verify(&ws.store, &trust_file, &crate::proc::Here::read())?;
    writeln!(note, "demo: ledger report --html").ok();
    let site_dir = repo.parent().unwrap_or(&repo).join("report");
    let site = crate::finalize::compute_site(&ws, &trust_file)?;
    std::fs::create_dir_all(&site_dir).map_err(|e| Error::io(&site_dir, e))?;
    crate::finalize::write(
        &site_dir,
        &crate::project::Projection {
            files: site.site.unwrap_or_default(),
            ..Default::default()
        },
    )?;
    Ok(Demo {
        report: site_dir.join("index.html"),
        repo,
        key,
        trust,
        runs,
        documents,
        finalize,
        verify: report,
    })
}
