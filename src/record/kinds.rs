//! The typed predicate of each record kind. The JSON Schemas in `schemas/`
//! describe exactly these shapes; a test keeps the two in step.
//!
//! Records hold no floats: sizes are bytes, durations milliseconds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::files::FileDigest;

/// One preflight check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// Stable id, e.g. `cores`, `memory`, `disk`, `clean_tree`.
    pub id: String,
    pub passed: bool,
    pub observed: String,
    pub required: String,
}

/// What preflight saw of the machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostFacts {
    pub hostname: String,
    pub cores: u64,
    pub memory_bytes: u64,
    pub disk_free_bytes: u64,
}

/// What preflight saw of the user's repository.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitFacts {
    /// Short branch name; `null` when HEAD is detached.
    pub branch: Option<String>,
    /// HEAD commit; `null` on an unborn branch.
    pub commit: Option<String>,
    /// Tracked changes against HEAD (staged or not); `null` if it could not be read.
    pub dirty: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreflightPredicate {
    pub passed: bool,
    pub workflow: String,
    pub tag: String,
    pub owner: String,
    pub require_clean: bool,
    /// The command the run was to execute (argv after `--`), so a blocked
    /// run can be repeated exactly.
    #[serde(default)]
    pub argv: Vec<String>,
    pub checks: Vec<Check>,
    pub host: HostFacts,
    pub git: GitFacts,
}

/// One data-quality rule's verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleOutcome {
    /// e.g. `columns`, `type:ret`, `not_null:date`, `unique_key`, `date_sorted`,
    /// `date_gap`, `range:ret`, `min_rows`, `null_fraction:ret`, `staleness`, `csv`.
    pub rule: String,
    pub passed: bool,
    /// Rows (or items) that failed.
    pub failures: u64,
    /// The first failing line numbers of the file (1 is the header).
    pub first_lines: Vec<u64>,
    pub detail: String,
}

/// The external DQ command (ledger.yaml `dq.command`) and how it ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DqCommand {
    /// The command as run by `sh -c`, `{input}` substituted.
    pub command: String,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// Digest of its output (in `data_quality.log`).
    pub output_sha256: String,
    pub output_bytes: u64,
}

/// The data-quality gate's verdict on the run's input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataQualityPredicate {
    pub passed: bool,
    pub input: FileDigest,
    /// Data rows read.
    pub rows: u64,
    /// The date staleness was judged against.
    pub as_of: Option<String>,
    pub rules: Vec<RuleOutcome>,
    pub command: Option<DqCommand>,
}

/// A DQ gate skipped on purpose: who and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DqSkip {
    /// The login that ran `ledger run --skip-dq`.
    pub by: String,
    pub owner: String,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextPredicate {
    pub workflow: String,
    pub tag: String,
    pub owner: String,
    pub notes: String,
    pub host: String,
    pub user: String,
    pub threads: Option<u32>,
    pub rerun: bool,
    /// `ledger <version>`.
    pub tool: String,
    pub git: GitFacts,
    /// The allow-listed environment (ledger.yaml `context.env_allow`), with
    /// secret-looking values replaced by `[redacted]`.
    pub env: BTreeMap<String, String>,
    /// Files named by ledger.yaml `inputs`, sorted by path.
    pub inputs: Vec<FileDigest>,
    /// The `--freeze-file`, if given.
    pub freeze: Option<Freeze>,
    /// Inputs (and the freeze file) whose content is stored at
    /// `runs/<run_id>/inputs/<path>`, sorted.
    #[serde(default)]
    pub stored_inputs: Vec<String>,
    /// Set when the workflow requires the DQ gate and it was skipped.
    pub dq_skip: Option<DqSkip>,
}

/// The freeze file of a run: its digest, and the commit its name pins.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Freeze {
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
    /// The hex after `_g` in the file name, which must prefix HEAD.
    pub pinned_commit: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandPredicate {
    /// The command exactly as given after `--`.
    pub argv: Vec<String>,
    pub cwd: String,
    /// Variables ledger set for the child (the thread variables of `--threads`).
    pub env: BTreeMap<String, String>,
    /// Work-tree path of the human log copy.
    pub log: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartedPredicate {
    pub host: String,
    /// Process id of the `ledger run` process that supervises the child.
    pub pid: u32,
    /// That process's start time in clock ticks after boot (`/proc/<pid>/stat`),
    /// so a reused pid is never taken for it.
    pub pid_start: Option<u64>,
    /// The kernel's boot id: after a reboot the supervisor is surely gone.
    pub boot_id: Option<String>,
    pub started_at: String,
    /// The git directory (common to all its work trees) of the repository
    /// whose ledger the supervisor writes. Only that repository closes the
    /// run as aborted: a clone on the same machine that pulled the run
    /// before its result must not write a second, conflicting result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
}

/// A process found in a run's process group after its command ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Process {
    pub pid: u32,
    /// Its command line (or command name when that cannot be read).
    pub command: String,
}

/// Digest and summary of the run log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogDigest {
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
    pub lines: u64,
    /// The last lines (lossy UTF-8), oldest first.
    pub tail: Vec<String>,
    /// Whether the log is stored in the ledger at `runs/<run_id>/log`.
    pub stored: bool,
}

/// A report the run wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    /// Path relative to the repository top.
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
    /// Whether it is stored at `runs/<run_id>/products/<path>`.
    pub stored: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultPredicate {
    /// `passed` (exit 0), `failed`, or `aborted` (the supervising `ledger run`
    /// died; written later by `ledger recover`).
    pub status: String,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// What `ledger run` exits with: the exit code, or 128 + signal; `null`
    /// when aborted.
    pub code: Option<i32>,
    pub started_at: String,
    pub ended_at: String,
    pub duration_ms: u64,
    pub log: LogDigest,
    /// Processes still alive in the command's process group when it ended
    /// (then terminated by ledger): a walk-forward shard left behind.
    pub leftover_processes: Vec<Process>,
    /// Files matching ledger.yaml `products.globs` created or changed during
    /// the run, sorted by path.
    pub products: Vec<Product>,
}

/// What `ledger finalize` read and wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinalizePredicate {
    /// The ledger commit the projection was computed from.
    pub ledger_head: String,
    /// Runs in the ledger at that head.
    pub runs: u64,
    /// SHA-256 of the ledger.yaml the projection used.
    pub config_sha256: String,
    /// `--require-final-summary`.
    pub require_final_summary: bool,
    /// Every file written, in the manifest stored beside the record.
    pub manifest: ManifestDigest,
}

/// The manifest of a finalize record, `finalize/<id>.files.jsonl`: one
/// canonical JSON [`FileDigest`] per line, sorted by path. The record signs
/// its digest, so a projection of any size keeps the record small.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestDigest {
    /// SHA-256 of the manifest file's bytes.
    pub sha256: String,
    /// Number of files (lines).
    pub files: u64,
    /// Total bytes of the files.
    pub bytes: u64,
}

/// The manifest bytes of `files` (sorted by path).
/// `capacity`: the bytes to reserve (a good guess saves a large manifest's
/// copies while it grows).
pub fn manifest_bytes<'f>(
    files: impl IntoIterator<Item = &'f FileDigest>,
    capacity: usize,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity);
    write_manifest(files, &mut out).expect("writing to memory cannot fail");
    out
}

/// SHA-256 (hex) of the manifest bytes of `files`, without holding them.
pub fn manifest_sha256<'f>(files: impl IntoIterator<Item = &'f FileDigest>) -> String {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    write_manifest(files, &mut hasher).expect("hashing cannot fail");
    super::canon::hex(&hasher.finalize())
}

fn write_manifest<'f>(
    files: impl IntoIterator<Item = &'f FileDigest>,
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    // The members in canonical (sorted) order, written compactly: serde_json
    // escapes strings and writes integers as canonical JSON does, so each
    // line is the file digest's canonical form (tested) without building
    // and sorting an object per file.
    #[derive(Serialize)]
    struct Line<'f> {
        bytes: u64,
        path: &'f str,
        sha256: &'f str,
    }
    for f in files {
        let line = Line {
            bytes: f.bytes,
            path: &f.path,
            sha256: &f.sha256,
        };
        serde_json::to_writer(&mut *out, &line)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// Parses manifest bytes; `None` when a line is not a file digest.
pub fn parse_manifest(bytes: &[u8]) -> Option<Vec<FileDigest>> {
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).ok())
        .collect()
}

/// A committee member's decision on a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionPredicate {
    /// The decided run's id.
    pub run: String,
    /// Its tag, for readers of the record alone.
    pub tag: String,
    /// Id of the run's `result` record: what was decided on.
    pub result_record: String,
    /// Finalize id of the newest finalize record covering the run when the
    /// member decided: the documents the decision was made on.
    pub finalize_record: String,
    pub decision: Verdict,
    pub reason: String,
    /// The member's principal in the committee file.
    pub member: String,
}

/// What a committee member decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Approve,
    Reject,
    Rework,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Approve => "approve",
            Verdict::Reject => "reject",
            Verdict::Rework => "rework",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_lines_are_canonical_file_digests() {
        let files: Vec<FileDigest> = [
            "docs/a.md",
            "quote\"back\\slash",
            "ctl\u{1}\u{8}\t\n\u{1f}\u{7f}",
            "日本/é/\u{1f600}/\u{fb33}",
            "",
        ]
        .iter()
        .enumerate()
        .map(|(i, path)| FileDigest {
            path: path.to_string(),
            sha256: crate::record::canon::sha256_hex(path.as_bytes()),
            bytes: [0, 1, u64::MAX, 4096, 77][i],
        })
        .collect();
        let mut want = Vec::new();
        for f in &files {
            want.extend(crate::record::canon::canonical_bytes(f));
            want.push(b'\n');
        }
        assert_eq!(
            String::from_utf8(manifest_bytes(&files, 0)).unwrap(),
            String::from_utf8(want).unwrap()
        );
        assert_eq!(
            manifest_sha256(&files),
            crate::record::canon::sha256_hex(&manifest_bytes(&files, 0)),
            "hashed as printed"
        );
        assert_eq!(parse_manifest(&manifest_bytes(&files, 0)), Some(files));
    }
}
