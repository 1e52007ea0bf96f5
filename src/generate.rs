//! `ledger generate`: a realistic ledger of N validly signed runs, written
//! straight into a new repository (many runs per commit), for benchmarks and
//! scale tests. Every record is what `ledger run` would write: all kinds,
//! stored reports and logs, varied factors and outcomes, several writers with
//! their own keys and chains. The result passes `ledger verify`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use crate::demo::{git, require_empty};
use crate::files::FileDigest;
use crate::journal::{record_path, writer_path, WriterHead};
use crate::record::kinds::*;
use crate::record::{self, canon, Kind, Payload, Sealed, Subject};
use crate::sign::{self, Signer};
use crate::store::{self, Batch, Identity, Store};
use crate::Error;

/// What to generate.
#[derive(Clone, Debug)]
pub struct Spec {
    pub runs: usize,
    pub writers: usize,
    /// Runs per ledger commit.
    pub per_commit: usize,
    /// Time of the first run; each next run starts ten minutes later.
    pub start: OffsetDateTime,
}

/// What was generated.
#[derive(Clone, Debug)]
pub struct Generated {
    pub repo: PathBuf,
    pub keys: Vec<PathBuf>,
    pub trust: PathBuf,
    pub commits: usize,
    pub records: usize,
}

const FACTORS: [&str; 12] = [
    "momentum",
    "value",
    "quality",
    "low_vol",
    "carry",
    "size",
    "reversal",
    "earnings_drift",
    "accruals",
    "profitability",
    "investment",
    "liquidity",
];

/// Makes `dir` a git work tree with ledger.yaml (naming `keys/writer0` as
/// its signing key), a trust file, the writers' keys `keys/writer<i>`
/// (untracked: `.git/info/exclude` lists them) and a ledger of `spec.runs`
/// runs.
pub fn generate(dir: &Path, spec: &Spec) -> Result<Generated, Error> {
    if spec.runs == 0 || spec.writers == 0 || spec.per_commit == 0 {
        return Err(Error::input(
            "generate",
            "--runs, --writers and --per-commit must be at least 1",
        ));
    }
    require_empty(dir)?;
    let repo = dir.to_path_buf();
    std::fs::create_dir_all(&repo).map_err(|e| Error::io(&repo, e))?;
    git(&repo, &["init", "-q", "-b", "main"])?;
    let exclude = repo.join(".git/info/exclude");
    std::fs::create_dir_all(repo.join(".git/info")).map_err(|e| Error::io(&exclude, e))?;
    std::fs::write(
        &exclude,
        "# private keys of the generated writers\n/keys/\n",
    )
    .map_err(|e| Error::io(&exclude, e))?;
    std::fs::create_dir_all(dir.join("keys")).map_err(|e| Error::io(dir, e))?;
    let mut keys = Vec::new();
    let mut signers = Vec::new();
    let mut trust_text = String::new();
    for i in 0..spec.writers {
        let key = dir.join(format!("keys/writer{i}"));
        let made = sign::keygen(&key, &format!("writer{i}@generated.invalid"))?;
        trust_text.push_str(&format!(
            "writer{i}@generated.invalid {}\n",
            made.public_openssh
        ));
        signers.push(Signer::load(&key)?);
        keys.push(key);
    }
    let trust = repo.join(".ledger/allowed_signers");
    std::fs::create_dir_all(trust.parent().expect("has a parent"))
        .map_err(|e| Error::io(&trust, e))?;
    std::fs::write(&trust, trust_text).map_err(|e| Error::io(&trust, e))?;
    // Ready for every command without flags: the first writer's key signs.
    let config = crate::config::TEMPLATE
        .replace("min_cores: 8", "min_cores: 1")
        .replace("min_memory_gb: 60", "min_memory_gb: 1")
        .replace("  # key: ~/.ssh/id_ed25519", "  key: keys/writer0");
    let config_path = repo.join(crate::config::FILE_NAME);
    std::fs::write(&config_path, config).map_err(|e| Error::io(&config_path, e))?;
    std::fs::write(repo.join("strategy.yaml"), "lookback_days: 60\n")
        .map_err(|e| Error::io(&repo, e))?;
    git(&repo, &["add", "-A"])?;
    git(
        &repo,
        &[
            "-c",
            "user.name=Generator",
            "-c",
            "user.email=generator@generated.invalid",
            "commit",
            "-q",
            "-m",
            "generated research repository",
        ],
    )?;
    let store = Store::new(store::discover(&repo)?, "refs/heads/ledger");
    let commit = store.head_facts().commit;
    let identity = Identity {
        name: "Generator".into(),
        email: "generator@generated.invalid".into(),
    };
    let committer = &signers[0];
    let sign_commit = |bytes: &[u8]| committer.sign_commit(bytes);
    store.init(&identity, spec.start, &sign_commit)?;

    let mut heads: BTreeMap<usize, (u64, Option<String>)> = BTreeMap::new();
    let mut commits = 1;
    let mut records = 0;
    let mut index = 0;
    let _progress = crate::progress::begin("generate: runs", spec.runs);
    while index < spec.runs {
        let end = (index + spec.per_commit).min(spec.runs);
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        let mut last_at = spec.start;
        for i in index..end {
            let w = i % spec.writers;
            let signer = &signers[w];
            let head = heads.entry(w).or_insert((0, None));
            let (run_files, sealed, at) = one_run(i, spec.start, signer, head, commit.as_deref());
            records += sealed;
            files.extend(run_files);
            last_at = at;
        }
        for (w, (seq, id)) in &heads {
            let head = WriterHead {
                writer: signers[*w].fingerprint().to_string(),
                seq: *seq,
                id: id.clone().unwrap_or_default(),
            };
            let mut bytes = serde_json::to_vec_pretty(&head).expect("a writer head serializes");
            bytes.push(b'\n');
            files.push((writer_path(signers[*w].fingerprint()), bytes));
        }
        let message = format!("generate: runs {index}..{end}\n");
        store.append(&identity, last_at, &sign_commit, |_| {
            Ok::<_, Error>((
                Batch {
                    message: message.clone(),
                    files: files.clone(),
                },
                (),
            ))
        })?;
        commits += 1;
        crate::progress::inc((end - index) as u64);
        index = end;
    }
    Ok(Generated {
        repo,
        keys,
        trust,
        commits,
        records,
    })
}

/// The files of run `i`; advances the writer's (seq, prev).
fn one_run(
    i: usize,
    start: OffsetDateTime,
    signer: &Signer,
    head: &mut (u64, Option<String>),
    commit: Option<&str>,
) -> (Vec<(String, Vec<u8>)>, usize, OffsetDateTime) {
    let at = start + time::Duration::minutes(10 * i as i64);
    let at_text = crate::clock::rfc3339(at);
    let factor = FACTORS[(i * 7) % FACTORS.len()];
    let tag = format!("gen{i:06}_{factor}");
    let workflow = "production_gates";
    let run_id = format!("{}_{workflow}_{tag}", crate::clock::compact(at));
    // Outcomes: 1 in 20 blocked by DQ, 1 in 25 aborted, 1 in 5 failing a gate.
    let blocked = i % 20 == 7;
    let aborted = !blocked && i % 25 == 11;
    let sharpe = 0.2 + ((i * 37) % 150) as f64 / 100.0;
    let gate2 = sharpe * 0.7;
    let passed = gate2 >= 0.5;
    let mut subject = vec![Subject::run(&run_id)];
    if let Some(c) = commit {
        subject.push(Subject::git_commit("git:HEAD", c));
    }
    let git_facts = GitFacts {
        branch: Some("main".into()),
        commit: commit.map(str::to_string),
        dirty: Some(false),
    };
    let mut out_files = Vec::new();
    let mut sealed: Vec<Sealed> = Vec::new();
    let mut seal = |kind: Kind, predicate: serde_json::Value, subject: Vec<Subject>| {
        head.0 += 1;
        let payload = Payload {
            statement_type: record::STATEMENT_TYPE.into(),
            subject: record::Subjects::of(&subject),
            predicate_type: kind.predicate_type(),
            predicate: record::Predicate::of(&predicate),
            schema: kind.schema(),
            kind,
            run_id: run_id.clone(),
            writer: signer.fingerprint().into(),
            seq: head.0,
            prev: head.1.clone(),
            run_prev: sealed.last().map(|r| r.id.clone()),
            at: at_text.clone(),
        };
        let r = record::seal(payload, |pae| signer.sign_dsse(pae));
        head.1 = Some(r.id.clone());
        sealed.push(r);
    };
    let preflight = PreflightPredicate {
        passed: true,
        workflow: workflow.into(),
        tag: tag.clone(),
        owner: format!("analyst{}", i % 4),
        require_clean: true,
        argv: vec![
            "python".into(),
            "scripts/run_research_workflow.py".into(),
            "--factor".into(),
            factor.into(),
        ],
        checks: vec![
            Check {
                id: "cores".into(),
                passed: true,
                observed: "32".into(),
                required: "8".into(),
            },
            Check {
                id: "memory".into(),
                passed: true,
                observed: "128 GiB".into(),
                required: "60 GiB".into(),
            },
            Check {
                id: "clean_tree".into(),
                passed: true,
                observed: "clean".into(),
                required: "clean".into(),
            },
        ],
        host: HostFacts {
            hostname: format!("ws{}", i % 3),
            cores: 32,
            memory_bytes: 128 << 30,
            disk_free_bytes: 2 << 40,
        },
        git: git_facts.clone(),
    };
    seal(Kind::Preflight, value(&preflight), subject.clone());
    let input = FileDigest {
        path: "data/prices.csv".into(),
        sha256: canon::sha256_hex(format!("prices {}", i / 50).as_bytes()),
        bytes: 1 << 30,
    };
    let dq = DataQualityPredicate {
        passed: !blocked,
        input: input.clone(),
        rows: 18_000_000,
        as_of: Some(at_text[..10].to_string()),
        rules: vec![
            RuleOutcome {
                rule: "unique_key".into(),
                passed: !blocked,
                failures: u64::from(blocked),
                first_lines: if blocked { vec![4711] } else { vec![] },
                detail: "(date, factor) is unique".into(),
            },
            RuleOutcome {
                rule: "min_rows".into(),
                passed: true,
                failures: 0,
                first_lines: vec![],
                detail: "18000000 rows, at least 250 required".into(),
            },
        ],
        command: None,
    };
    let mut dq_subject = subject.clone();
    dq_subject.push(Subject::sha256(&input.path, &input.sha256));
    seal(Kind::DataQuality, value(&dq), dq_subject);
    if !blocked {
        let context = ContextPredicate {
            workflow: workflow.into(),
            tag: tag.clone(),
            owner: format!("analyst{}", i % 4),
            notes: format!("generated run {i}"),
            host: format!("ws{}", i % 3),
            user: format!("analyst{}", i % 4),
            threads: Some(8),
            rerun: false,
            tool: format!("ledger {}", env!("CARGO_PKG_VERSION")),
            git: git_facts,
            env: BTreeMap::from([("OMP_NUM_THREADS".into(), "8".into())]),
            inputs: vec![],
            freeze: None,
            stored_inputs: vec![],
            dq_skip: None,
        };
        seal(Kind::Context, value(&context), subject.clone());
        let log_rel = format!("audit/workstation_runs/{run_id}/run.log");
        let command = CommandPredicate {
            argv: vec![
                "python".into(),
                "scripts/run_research_workflow.py".into(),
                "--factor".into(),
                factor.into(),
            ],
            cwd: "/home/analyst/research".into(),
            env: BTreeMap::from([("OMP_NUM_THREADS".into(), "8".into())]),
            log: log_rel.clone(),
        };
        seal(Kind::Command, value(&command), subject.clone());
        let started = StartedPredicate {
            host: format!("ws{}", i % 3),
            pid: 4000 + i as u32,
            pid_start: Some(1000 + i as u64),
            boot_id: Some("00000000-0000-4000-8000-000000000000".into()),
            started_at: at_text.clone(),
            repository: None,
        };
        seal(Kind::Started, value(&started), subject.clone());
        let log_text = format!(
            "walk-forward shard 1/4: factor={factor} fitted\nwalk-forward shard 2/4: factor={factor} fitted\nwalk-forward shard 3/4: factor={factor} fitted\nwalk-forward shard 4/4: factor={factor} fitted\ngates: sharpe={sharpe:.2} -> {}\n",
            if passed { "pass" } else { "fail" }
        );
        let report_rel =
            format!("gate_results/production_gates_{tag}/production_gates_report.json");
        let report = format!(
            "{{\"factor\": \"{factor}\", \"strategy\": \"long_short_decile\", \"verdict\": \"{}\",\n \"metrics\": {{\"sharpe\": {sharpe:.2}, \"annual_return\": {:.3}, \"max_drawdown\": -0.121, \"turnover\": 0.37}},\n \"gates\": [\n  {{\"name\": \"cost_1.5x\", \"cost_multiplier\": 1.5, \"passed\": true, \"value\": {sharpe:.2}, \"threshold\": 0.5, \"reason\": \"net sharpe at 1.5x costs\"}},\n  {{\"name\": \"cost_2.0x\", \"cost_multiplier\": 2.0, \"passed\": {passed}, \"value\": {gate2:.2}, \"threshold\": 0.5, \"reason\": \"net sharpe at 2.0x costs\"}}\n ],\n \"walk_forward\": {{\"shards\": 4, \"passed\": 4}}}}\n",
            if passed { "pass" } else { "fail" },
            sharpe / 10.0
        );
        let ended = at + time::Duration::minutes(7);
        let result = if aborted {
            ResultPredicate {
                status: "aborted".into(),
                exit_code: None,
                signal: None,
                code: None,
                started_at: at_text.clone(),
                ended_at: crate::clock::rfc3339(ended),
                duration_ms: 420_000,
                log: LogDigest {
                    path: log_rel.clone(),
                    sha256: canon::sha256_hex(b""),
                    bytes: 0,
                    lines: 0,
                    tail: vec![],
                    stored: false,
                },
                leftover_processes: vec![],
                products: vec![],
            }
        } else {
            ResultPredicate {
                status: if passed { "passed" } else { "failed" }.into(),
                exit_code: Some(if passed { 0 } else { 1 }),
                signal: None,
                code: Some(if passed { 0 } else { 1 }),
                started_at: at_text.clone(),
                ended_at: crate::clock::rfc3339(ended),
                duration_ms: 420_000,
                log: LogDigest {
                    path: log_rel.clone(),
                    sha256: canon::sha256_hex(log_text.as_bytes()),
                    bytes: log_text.len() as u64,
                    lines: 5,
                    tail: log_text.lines().map(str::to_string).collect(),
                    stored: true,
                },
                leftover_processes: vec![],
                products: vec![Product {
                    path: report_rel.clone(),
                    sha256: canon::sha256_hex(report.as_bytes()),
                    bytes: report.len() as u64,
                    stored: true,
                }],
            }
        };
        let mut result_subject = subject.clone();
        result_subject.push(Subject::sha256(&log_rel, &result.log.sha256));
        for p in &result.products {
            result_subject.push(Subject::sha256(&p.path, &p.sha256));
        }
        seal(Kind::Result, value(&result), result_subject);
        if !aborted {
            out_files.push((format!("runs/{run_id}/log"), log_text.into_bytes()));
            out_files.push((
                format!("runs/{run_id}/products/{report_rel}"),
                report.into_bytes(),
            ));
        }
    }
    let n = sealed.len();
    for r in sealed {
        out_files.push((
            record_path(&r.payload.run_id, r.payload.kind),
            r.envelope_bytes,
        ));
    }
    (out_files, n, at)
}

fn value<T: serde::Serialize>(predicate: &T) -> serde_json::Value {
    serde_json::to_value(predicate).expect("predicates always serialize")
}
