//! The run index: one summary per run, kept in `<git dir>/ledger/runs-index.jsonl`
//! so that `log`, `status`, `show` and `monitor` answer at any ledger size
//! without parsing every record.
//!
//! Each row is what [`crate::status`] derives from a run's records alone,
//! with the object id of the run's tree it was derived from. On use the
//! index is checked against the ledger: when the tip moved, every run whose
//! tree id differs from its row's (or that has no row) is read again, rows
//! of runs that are gone are dropped, and the file is rewritten. A file made
//! by another version of ledger, for another ref, or that does not parse is
//! rebuilt. The index is never a source of truth: `verify`, `finalize` and
//! `pull` read the ledger itself, and deleting the file only costs time.
//!
//! Beside it, `runs-log.jsonl` holds the same rows with only what `ledger
//! log` prints (no log tails, hosts or times), under the same header:
//! written with the index, read by `log --json` when its header names the
//! tip. The text of `log` and `status` is kept beside them
//! ([`crate::listing`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::history::{self, Run, Status};
use crate::status::RunState;
use crate::store::{Snapshot, Store, StoreError};

/// Bumped whenever a row's meaning changes.
const FORMAT: u32 = 1;
const FILE_NAME: &str = "runs-index.jsonl";
const LOG_FILE_NAME: &str = "runs-log.jsonl";

/// One run, as its records say (no liveness check, whole recorded log tail).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Time of the run's first record: the order of the index.
    pub at: String,
    /// Object id of `runs/<run_id>` the row was derived from.
    pub tree: String,
    /// Boxed: 100,000 rows are read, sorted and moved as pointers.
    pub state: Box<RunState>,
}

impl Row {
    pub fn of(run: &Run, tree: &str) -> Row {
        Row {
            at: run.at().to_string(),
            tree: tree.to_string(),
            state: Box::new(crate::status::recorded(run)),
        }
    }

    pub fn run_id(&self) -> &str {
        &self.state.run_id
    }
}

/// One run as `ledger log` shows it: a [`Row`] without what only `status`,
/// `show` and `monitor` read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogRow {
    pub at: String,
    pub run_id: String,
    pub status: Status,
    pub workflow: String,
    pub tag: String,
    pub owner: String,
    pub code: Option<i32>,
}

impl LogRow {
    pub(crate) fn of(row: &Row) -> LogRow {
        let s = &row.state;
        LogRow {
            at: row.at.clone(),
            run_id: s.run_id.clone(),
            status: s.status,
            workflow: s.workflow.clone(),
            tag: s.tag.clone(),
            owner: s.owner.clone(),
            code: s.code,
        }
    }

    /// The status `ledger log` shows: a `running` run whose supervisor is
    /// provably gone from this machine is `aborted` (which reads the run
    /// at `tip`).
    pub fn status_here(
        &self,
        store: &Store,
        tip: Option<gix::ObjectId>,
        here: &crate::proc::Here,
    ) -> Result<Status, StoreError> {
        Ok(match (self.status, tip) {
            (Status::Running, Some(tip)) => {
                history::load_run(&store.snapshot(tip)?, &self.run_id)?.status_here(here)
            }
            (status, _) => status,
        })
    }
}

/// The runs as `ledger log` shows them, oldest first, and the tip they
/// are of: from `runs-log.jsonl` when it is of the tip, else from the
/// index ([`Index::load`], which writes both files).
pub fn log_rows(store: &Store) -> Result<(Option<gix::ObjectId>, Vec<LogRow>), StoreError> {
    let Some(tip) = store.tip()? else {
        return Ok((None, Vec::new()));
    };
    if let Some(rows) = read_log(&log_path(store), &header(store, tip)) {
        return Ok((Some(tip), rows));
    }
    let index = Index::load(store)?;
    Ok((index.tip, index.rows.iter().map(LogRow::of).collect()))
}

pub(crate) fn header(store: &Store, tip: gix::ObjectId) -> Header {
    Header {
        format: FORMAT,
        tool: env!("CARGO_PKG_VERSION").into(),
        ref_name: store.ref_name().into(),
        tip: tip.to_string(),
    }
}

fn log_path(store: &Store) -> PathBuf {
    store.git_dir().join("ledger").join(LOG_FILE_NAME)
}

/// The rows of the log file when its header is `expected`.
fn read_log(path: &Path, expected: &Header) -> Option<Vec<LogRow>> {
    let (_, header, rows) = crate::cache_file::read::<Header, LogRow>(path)?;
    (header == *expected).then_some(rows)
}

/// Writes the log file of `rows` unless it is there already for `header`
/// (its first line alone is read to tell).
fn save_log(store: &Store, header: &Header, rows: &[Row]) {
    let path = log_path(store);
    if crate::cache_file::read_header::<Header>(&path).as_ref() != Some(header) {
        crate::cache_file::write(&path, header, rows.iter().map(LogRow::of));
    }
}

/// Whose rows a cache file holds: this version of ledger's, of one tip of
/// one ledger ref.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Header {
    format: u32,
    tool: String,
    ref_name: String,
    tip: String,
}

/// Every run at one ledger tip, oldest first by (first record time, run id),
/// the order of [`history::History`].
#[derive(Debug, Default)]
pub struct Index {
    pub tip: Option<gix::ObjectId>,
    pub rows: Vec<Row>,
    /// Runs read from the ledger by this load (the others came from the file).
    pub refreshed: usize,
}

impl Index {
    /// The index at the ledger's tip, brought up to date and saved (best
    /// effort: a read-only `.git` only costs time).
    pub fn load(store: &Store) -> Result<Index, StoreError> {
        let Some(tip) = store.tip()? else {
            return Ok(Index::default());
        };
        let path = path(store);
        let header = header(store, tip);
        let (cached_tip, cached) = read(&path, &header).unwrap_or_default();
        if cached_tip.as_deref() == Some(header.tip.as_str()) {
            save_log(store, &header, &cached);
            crate::listing::save(store, &header, &cached);
            return Ok(Index {
                tip: Some(tip),
                rows: cached,
                refreshed: 0,
            });
        }
        let index = Index::refresh(store, tip, cached)?;
        crate::cache_file::write(&path, &header, &index.rows);
        save_log(store, &header, &index.rows);
        crate::listing::save(store, &header, &index.rows);
        Ok(index)
    }

    /// Brings `cached` rows to `tip`: rows whose tree is unchanged are kept.
    fn refresh(store: &Store, tip: gix::ObjectId, cached: Vec<Row>) -> Result<Index, StoreError> {
        let snapshot = store.snapshot(tip)?;
        let mut by_id: BTreeMap<String, Row> = cached
            .into_iter()
            .map(|r| (r.run_id().to_string(), r))
            .collect();
        let mut rows = Vec::new();
        let mut stale = Vec::new();
        for item in snapshot.list("runs")?.unwrap_or_default() {
            if !item.is_tree() {
                continue;
            }
            let tree = item.id.to_string();
            match by_id.remove(&item.name) {
                Some(row) if row.tree == tree => rows.push(row),
                _ => stale.push((item.name, tree)),
            }
        }
        let refreshed = stale.len();
        rows.extend(read_rows(store, &snapshot, tip, &stale)?);
        rows.sort_by(|a, b| (&a.at, a.run_id()).cmp(&(&b.at, b.run_id())));
        Ok(Index {
            tip: Some(tip),
            rows,
            refreshed,
        })
    }

    /// The run whose id is `key`, or the newest run whose tag is `key`.
    pub fn find(&self, key: &str) -> Option<&Row> {
        history::by_id_or_tag(&self.rows, key, Row::run_id, |r| {
            !key.is_empty() && r.state.tag == key
        })
    }

    /// The whole run of `row`, read from the ledger at the index's tip.
    pub fn run(&self, store: &Store, row: &Row) -> Result<Run, StoreError> {
        let tip = self.tip.expect("an index with rows has a tip");
        history::load_run(&store.snapshot(tip)?, row.run_id())
    }
}

/// Reads the runs named in `stale` from the ledger, on every core when
/// there are many (a first index of a large ledger).
fn read_rows(
    store: &Store,
    snapshot: &Snapshot<'_>,
    tip: gix::ObjectId,
    stale: &[(String, String)],
) -> Result<Vec<Row>, StoreError> {
    if stale.len() < 256 {
        return stale
            .iter()
            .map(|(name, tree)| Ok(Row::of(&history::load_run(snapshot, name)?, tree)))
            .collect();
    }
    let (git_dir, ref_name) = (store.git_dir().to_path_buf(), store.ref_name().to_string());
    let parts = crate::par::chunks(stale, 64, |part| -> Result<Vec<Row>, StoreError> {
        let mut rows = Vec::with_capacity(part.len());
        Store::each_at(
            &git_dir,
            &ref_name,
            tip,
            part,
            |snapshot, _, (name, tree)| {
                rows.push(Row::of(&history::load_run(snapshot, name)?, tree));
                snapshot.forget(&format!("runs/{name}"));
                Ok::<_, StoreError>(())
            },
        )?;
        Ok(rows)
    });
    let mut rows = Vec::with_capacity(stale.len());
    for part in parts {
        rows.extend(part?);
    }
    Ok(rows)
}

fn path(store: &Store) -> PathBuf {
    store.git_dir().join("ledger").join(FILE_NAME)
}

/// The file's tip and rows, when it was written by this ledger for this ref.
fn read(path: &Path, expected: &Header) -> Option<(Option<String>, Vec<Row>)> {
    let (_, header, rows) = crate::cache_file::read::<Header, Row>(path)?;
    ((header.format, &header.tool, &header.ref_name)
        == (expected.format, &expected.tool, &expected.ref_name))
        .then_some((Some(header.tip), rows))
}
