//! `ledger run`: preflight → context, command, started → execute → result.
//!
//! `started` is committed before the child starts, so a run that never returns
//! is still in the ledger. A failed preflight is recorded and blocks the
//! command. Every bad input is refused before anything is written.

pub mod child;
pub mod gate;
pub mod products;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::clock;
use crate::history;
use crate::journal::{self, Draft};
use crate::preflight;
use crate::record::kinds::*;
use crate::record::{Kind, Subject};
use crate::sign::Signer;
use crate::store::{Identity, Snapshot};
use crate::workspace::Workspace;
use crate::Error;

/// The variables `--threads N` sets for the child.
pub const THREAD_VARS: [&str; 5] = [
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
];

/// What the user asked for.
#[derive(Clone, Debug)]
pub struct Request {
    pub workflow: String,
    pub tag: String,
    pub owner: String,
    pub notes: String,
    pub threads: Option<u32>,
    pub require_clean: bool,
    pub rerun: bool,
    pub argv: Vec<String>,
    /// The login name running ledger (from the environment, by the CLI).
    pub user: String,
    /// ledger's environment; only the allow-listed part is recorded.
    pub env: BTreeMap<String, String>,
    pub cwd: PathBuf,
    /// Copy the child's output to stdout.
    pub echo: bool,
    /// `--freeze-file`, absolute.
    pub freeze_file: Option<PathBuf>,
    /// `--dq-input-csv`, absolute.
    pub dq_input: Option<PathBuf>,
    /// `--dq-as-of`.
    pub dq_as_of: Option<time::Date>,
    /// `--skip-dq --skip-reason REASON`.
    pub skip_dq: Option<String>,
}

/// How a run ended, for the CLI to report and exit with.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub run_id: String,
    pub status: history::Status,
    /// What `ledger run` exits with.
    pub code: i32,
    pub audit_dir: String,
    pub failed_checks: Vec<Check>,
    pub records: Vec<String>,
    /// Processes the command left behind (listed in the result, then terminated).
    pub leftover_processes: Vec<Process>,
    /// The DQ gate's verdict, when it ran.
    pub data_quality: Option<DataQualityPredicate>,
}

/// A workflow or tag name: safe in a path, a ref name and a shell word.
pub fn check_name(field: &str, value: &str) -> Result<(), Error> {
    let ok = !value.is_empty()
        && value.len() <= 80
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && value.as_bytes()[0].is_ascii_alphanumeric()
        && !value.contains("..")
        && !value.ends_with(".lock")
        && !value.ends_with('.');
    if ok {
        Ok(())
    } else {
        Err(Error::input(
            field,
            format!("{value:?} is not allowed: use 1-80 of A-Z a-z 0-9 . _ -, starting with a letter or digit, no \"..\""),
        ))
    }
}

/// What preflight saw and concluded.
#[derive(Clone, Debug, Serialize)]
pub struct Preflight {
    pub host: HostFacts,
    pub git: GitFacts,
    pub checks: Vec<Check>,
}

impl Preflight {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }
}

/// The preflight of a run, without running or recording anything.
pub fn preflight_facts(ws: &Workspace, require_clean: bool, freeze: Option<&Freeze>) -> Preflight {
    let git = ws.store.head_facts();
    let host = preflight::host_facts(&ws.root);
    let pinned = freeze.and_then(|f| f.pinned_commit.as_deref());
    let checks = preflight::checks(&ws.config.preflight, &host, &git, require_clean, pinned);
    Preflight { host, git, checks }
}

/// Reads and hashes the freeze file given on the command line.
pub fn freeze(ws: &Workspace, path: &Path) -> Result<Freeze, Error> {
    let (sha256, bytes) = crate::files::sha256_file(path)
        .map_err(|e| Error::input("--freeze-file", format!("{}: {e}", path.display())))?;
    Ok(Freeze {
        path: crate::files::relative(&ws.root, path).unwrap_or_else(|| path.display().to_string()),
        sha256,
        bytes,
        pinned_commit: crate::files::pinned_commit(path),
    })
}

/// Run ids in `snapshot` whose preflight names `tag`.
fn runs_with_tag(snapshot: &Snapshot<'_>, tag: &str) -> Result<Vec<String>, Error> {
    let suffix = format!("_{tag}");
    let mut out = Vec::new();
    for item in snapshot.list("runs")?.unwrap_or_default() {
        if !item.name.ends_with(&suffix) {
            continue;
        }
        let run = history::load_run(snapshot, &item.name)?;
        if run.preflight().is_some_and(|p| p.tag == tag) {
            out.push(item.name);
        }
    }
    Ok(out)
}

/// Runs `req.argv` as an official run. Messages for the user go to `note`.
pub fn run(
    ws: &Workspace,
    signer: &Signer,
    identity: &Identity,
    req: &Request,
    note: &mut dyn Write,
) -> Result<Outcome, Error> {
    check_name("--workflow", &req.workflow)?;
    check_name("--tag", &req.tag)?;
    if req.argv.is_empty() {
        return Err(Error::input(
            "command",
            "nothing to run: give the command after `--`",
        ));
    }
    if req.threads == Some(0) {
        return Err(Error::input("--threads", "must be at least 1"));
    }
    if req.owner.trim().is_empty() {
        return Err(Error::input(
            "--owner",
            "must name who answers for this run; it is recorded and shown to the committee",
        ));
    }
    let dq_required = ws
        .config
        .workflows
        .get(&req.workflow)
        .is_some_and(|w| w.require_dq);
    match (&req.dq_input, &req.skip_dq) {
        (Some(_), Some(_)) => return Err(Error::input("--skip-dq", "conflicts with --dq-input-csv: run the gate or skip it")),
        (_, Some(reason)) if reason.trim().is_empty() => {
            return Err(Error::input("--skip-reason", "say why the DQ gate is skipped; it is recorded"))
        }
        (None, None) if dq_required => {
            return Err(Error::input(
                "--dq-input-csv",
                format!("workflow {} requires the DQ gate: pass --dq-input-csv FILE, or --skip-dq --skip-reason \"why\"", req.workflow),
            ))
        }
        (Some(csv), None) if !csv.is_file() => return Err(Error::input("--dq-input-csv", format!("{}: no such file", csv.display()))),
        _ => {}
    }
    let store = &ws.store;
    let now = clock::now()?;
    let run_id = format!("{}_{}_{}", clock::compact(now), req.workflow, req.tag);
    let audit_rel = ws.audit_rel(&run_id);
    let audit_dir = ws.audit_dir(&run_id);

    // Everything that can refuse the run is checked before the first write.
    let unique = |snapshot: &Snapshot<'_>| -> Result<(), Error> {
        if !req.rerun {
            if let Some(existing) = runs_with_tag(snapshot, &req.tag)?.first() {
                return Err(Error::input(
                    "--tag",
                    format!(
                        "tag {:?} is already used by run {existing}; pass --rerun to run it again",
                        req.tag
                    ),
                ));
            }
        }
        if snapshot.list(&format!("runs/{run_id}"))?.is_some() {
            return Err(Error::input(
                "--tag",
                format!("run {run_id} already exists; wait a second and try again"),
            ));
        }
        Ok(())
    };
    unique(&store.snapshot(store.require_tip()?)?)?;
    if audit_dir.exists() {
        return Err(Error::input(
            "--tag",
            format!("{} already exists", audit_dir.display()),
        ));
    }
    // Every check has passed: from here on the ledger may change. Runs of
    // this machine whose supervisor died are closed first.
    for done in crate::recover::recover(ws, signer, identity, &crate::proc::Here::read())? {
        writeln!(
            note,
            "ledger: recorded run {} as aborted (its ledger run process is gone)",
            done.run_id
        )
        .ok();
    }

    let freeze = req
        .freeze_file
        .as_deref()
        .map(|p| freeze(ws, p))
        .transpose()?;
    let keep = ws.config.inputs_max_store_bytes;
    let mut inputs = Vec::new();
    // Small inputs travel with the run, for diffs between runs.
    let mut stored_inputs: Vec<(String, Vec<u8>)> = Vec::new();
    for rel in crate::files::expand(&ws.root, &ws.config.inputs) {
        let (digest, bytes) = crate::files::digest_keeping(&ws.root, &rel, keep)
            .map_err(|e| Error::io(ws.root.join(&rel), e))?;
        if let Some(bytes) = bytes {
            stored_inputs.push((rel.clone(), bytes));
        }
        inputs.push(digest);
    }
    if let Some(f) = &freeze {
        if crate::config::is_relative_inside(&f.path)
            && f.bytes <= keep
            && !stored_inputs.iter().any(|(p, _)| p == &f.path)
        {
            match std::fs::read(ws.root.join(&f.path)) {
                Ok(bytes) if crate::record::canon::sha256_hex(&bytes) == f.sha256 => {
                    stored_inputs.push((f.path.clone(), bytes))
                }
                _ => {}
            }
        }
    }
    let Preflight { host, git, checks } = preflight_facts(ws, req.require_clean, freeze.as_ref());
    let failed_checks: Vec<Check> = checks.iter().filter(|c| !c.passed).cloned().collect();
    let preflight = PreflightPredicate {
        passed: failed_checks.is_empty(),
        workflow: req.workflow.clone(),
        tag: req.tag.clone(),
        owner: req.owner.clone(),
        require_clean: req.require_clean,
        argv: req.argv.clone(),
        checks,
        host: host.clone(),
        git: git.clone(),
    };
    let mut subject = vec![Subject::run(&run_id)];
    if let Some(commit) = &git.commit {
        subject.push(Subject::git_commit("git:HEAD", commit));
    }
    let mut drafts = vec![Draft::new(
        Kind::Preflight,
        &run_id,
        subject.clone(),
        &preflight,
    )];

    // A blocked run keeps what was recorded so far (preflight, and the DQ
    // verdict when that is what blocked it) and never starts the command.
    let blocked = |drafts: &[Draft],
                   failed_checks: Vec<Check>,
                   data_quality: Option<DataQualityPredicate>| {
        let sealed = journal::append(store, signer, identity, now, None, drafts, &[], unique)?;
        write_copy(&audit_dir, "preflight.json", &pretty(&sealed[0].payload))?;
        Ok::<_, Error>(Outcome {
            run_id: run_id.clone(),
            status: history::Status::Blocked,
            code: 1,
            audit_dir: audit_rel.clone(),
            failed_checks,
            records: sealed.into_iter().map(|r| r.id).collect(),
            leftover_processes: Vec::new(),
            data_quality,
        })
    };
    if !preflight.passed {
        return blocked(&drafts, failed_checks, None);
    }

    let mut data_quality = None;
    if let Some(csv) = &req.dq_input {
        std::fs::create_dir_all(&audit_dir).map_err(|e| Error::io(&audit_dir, e))?;
        let rel =
            crate::files::relative(&ws.root, csv).unwrap_or_else(|| csv.display().to_string());
        let log = audit_dir.join("data_quality.log");
        let dq = gate::check(
            &ws.root,
            &ws.config,
            csv,
            &rel,
            req.dq_as_of,
            gate::Output::Log(&log),
        )?;
        let mut human = std::fs::read(&log).unwrap_or_default();
        human.extend_from_slice(gate::render(&dq).as_bytes());
        write_copy(&audit_dir, "data_quality.log", &human)?;
        write_copy(
            &audit_dir,
            "data_quality_command.sh",
            dq_script(&run_id, &ws.root, csv, req.dq_as_of, &dq).as_bytes(),
        )?;
        let mut dq_subject = subject.clone();
        dq_subject.push(Subject::sha256(&dq.input.path, &dq.input.sha256));
        drafts.push(Draft::new(Kind::DataQuality, &run_id, dq_subject, &dq));
        if !dq.passed {
            write!(note, "{}", gate::render(&dq)).ok();
            return blocked(&drafts, Vec::new(), Some(dq));
        }
        data_quality = Some(dq);
    }

    let env: Vec<(String, String)> = req
        .threads
        .map(|n| {
            THREAD_VARS
                .iter()
                .map(|v| (v.to_string(), n.to_string()))
                .collect()
        })
        .unwrap_or_default();
    let log_rel = format!("{audit_rel}/run.log");
    let context = ContextPredicate {
        workflow: req.workflow.clone(),
        tag: req.tag.clone(),
        owner: req.owner.clone(),
        notes: req.notes.clone(),
        host: host.hostname.clone(),
        user: req.user.clone(),
        threads: req.threads,
        rerun: req.rerun,
        tool: format!("ledger {}", env!("CARGO_PKG_VERSION")),
        git,
        env: crate::secrets::capture(&req.env, &ws.config.context.env_allow),
        inputs,
        freeze,
        stored_inputs: {
            let mut paths: Vec<String> = stored_inputs.iter().map(|(p, _)| p.clone()).collect();
            paths.sort();
            paths
        },
        dq_skip: req.skip_dq.as_ref().map(|reason| DqSkip {
            by: req.user.clone(),
            owner: req.owner.clone(),
            reason: reason.clone(),
        }),
    };
    let command = CommandPredicate {
        argv: req.argv.clone(),
        cwd: req.cwd.display().to_string(),
        env: env.iter().cloned().collect(),
        log: log_rel.clone(),
    };
    let started = StartedPredicate {
        host: host.hostname.clone(),
        pid: std::process::id(),
        pid_start: crate::proc::start_time(std::process::id()),
        boot_id: crate::proc::boot_id(),
        started_at: clock::rfc3339(now),
        repository: Some(ws.store.repository_id()),
    };
    drafts.push(Draft::new(
        Kind::Context,
        &run_id,
        subject.clone(),
        &context,
    ));
    drafts.push(Draft::new(
        Kind::Command,
        &run_id,
        subject.clone(),
        &command,
    ));
    drafts.push(Draft::new(
        Kind::Started,
        &run_id,
        subject.clone(),
        &started,
    ));
    let stored_inputs: Vec<(String, Vec<u8>)> = stored_inputs
        .into_iter()
        .map(|(rel, bytes)| (format!("runs/{run_id}/inputs/{rel}"), bytes))
        .collect();
    let opening = journal::append(
        store,
        signer,
        identity,
        now,
        None,
        &drafts,
        &stored_inputs,
        unique,
    )?;
    for record in &opening {
        match record.payload.kind {
            Kind::Preflight => write_copy(&audit_dir, "preflight.json", &pretty(&record.payload))?,
            Kind::Context => write_copy(&audit_dir, "context.json", &pretty(&record.payload))?,
            _ => {}
        }
    }
    write_copy(
        &audit_dir,
        "command.sh",
        command_script(&run_id, &command).as_bytes(),
    )?;
    writeln!(note, "ledger: run {run_id} started; log: {log_rel}").ok();

    let products_before = products::snapshot(&ws.root, &ws.config.products.globs);
    let exec = child::execute(
        &req.argv,
        &env,
        &req.cwd,
        &ws.root.join(&log_rel),
        req.echo,
        ws.config.log.tail_lines,
    )
    .map_err(|e| Error::io(ws.root.join(&log_rel), e))?;

    let ended = clock::now()?.max(now);
    let mut result = ResultPredicate {
        status: if exec.code() == 0 { "passed" } else { "failed" }.into(),
        exit_code: exec.exit_code,
        signal: exec.signal,
        code: Some(exec.code()),
        started_at: clock::rfc3339(now),
        ended_at: clock::rfc3339(ended),
        duration_ms: u64::try_from(exec.duration.as_millis()).unwrap_or(u64::MAX),
        log: LogDigest {
            path: log_rel.clone(),
            sha256: exec.sha256.clone(),
            bytes: exec.bytes,
            lines: exec.lines,
            tail: exec.tail.clone(),
            stored: false,
        },
        leftover_processes: exec.leftovers.clone(),
        products: Vec::new(),
    };
    let mut stored = Vec::new();
    if exec.bytes <= ws.config.log.max_store_bytes {
        // Stored only if the file still is exactly what was hashed.
        if let Ok(bytes) = std::fs::read(ws.root.join(&log_rel)) {
            if crate::record::canon::sha256_hex(&bytes) == exec.sha256 {
                stored.push((format!("runs/{run_id}/log"), bytes));
                result.log.stored = true;
            }
        }
    }
    let (found, product_files) =
        products::collect(&ws.root, &ws.config.products, &products_before, &run_id)
            .map_err(|(path, e)| Error::io(path, e))?;
    result.products = found;
    stored.extend(product_files);
    subject.push(Subject::sha256(&log_rel, &exec.sha256));
    for p in &result.products {
        subject.push(Subject::sha256(&p.path, &p.sha256));
    }
    let draft = Draft::new(Kind::Result, &run_id, subject, &result);
    // The human copy first: if the ledger cannot take the result, it is not lost.
    write_copy(&audit_dir, "result.json", &pretty(&result))?;
    let started_id = opening.last().map(|r| r.id.clone());
    let closing = journal::append(
        store,
        signer,
        identity,
        ended,
        started_id,
        &[draft],
        &stored,
        |_| Ok(()),
    )?;
    write_copy(&audit_dir, "result.json", &pretty(&closing[0].payload))?;
    Ok(Outcome {
        run_id,
        status: if exec.code() == 0 {
            history::Status::Passed
        } else {
            history::Status::Failed
        },
        code: exec.code(),
        audit_dir: audit_rel,
        failed_checks: Vec::new(),
        records: opening.into_iter().chain(closing).map(|r| r.id).collect(),
        leftover_processes: exec.leftovers,
        data_quality,
    })
}

pub(crate) fn pretty<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(value).expect("records serialize");
    out.push(b'\n');
    out
}

/// Writes a human copy atomically (a temporary file, then rename).
pub(crate) fn write_copy(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| Error::io(&path, e))
}

/// `command.sh`: re-runs the command by hand, exactly as recorded.
pub(crate) fn command_script(run_id: &str, command: &CommandPredicate) -> String {
    let mut out = format!(
        "#!/bin/sh\n# ledger run {run_id}\ncd {} || exit 1\n",
        shell_quote(&command.cwd)
    );
    for (k, v) in &command.env {
        out.push_str(&format!("export {k}={}\n", shell_quote(v)));
    }
    let words: Vec<String> = command.argv.iter().map(|a| shell_quote(a)).collect();
    out.push_str(&format!("exec {}\n", words.join(" ")));
    out
}

/// `data_quality_command.sh`: re-runs the gate by hand.
fn dq_script(
    run_id: &str,
    root: &Path,
    csv: &Path,
    as_of: Option<time::Date>,
    dq: &DataQualityPredicate,
) -> String {
    let mut out = format!(
        "#!/bin/sh\n# data-quality gate of ledger run {run_id}: {}\ncd {} || exit 1\n",
        if dq.passed { "passed" } else { "failed" },
        shell_quote(&root.display().to_string())
    );
    if let Some(c) = &dq.command {
        out.push_str(&format!("# dq.command was: {}\n", c.command));
    }
    let as_of = as_of.map(|d| format!(" --as-of {d}")).unwrap_or_default();
    out.push_str(&format!(
        "exec ledger dq --input {}{as_of}\n",
        shell_quote(&csv.display().to_string())
    ));
    out
}

/// Quotes a word for POSIX sh when it needs it.
pub fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_unsafe_are_refused() {
        for bad in [
            "", "../x", "a/b", "a b", ".hidden", "-x", "x.lock", "a..b", "tag$", "ü",
        ] {
            assert!(check_name("--tag", bad).is_err(), "{bad:?}");
        }
        for good in ["committee_2026-11-22_run1", "production_gates", "v1.2"] {
            check_name("--tag", good).unwrap();
        }
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("python"), "python");
        assert_eq!(shell_quote("it's here"), "'it'\\''s here'");
        assert_eq!(shell_quote(""), "''");
    }
}
