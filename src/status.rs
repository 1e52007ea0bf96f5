//! Read-only summaries of the runs for `ledger status` (and later `monitor`):
//! each run's state, how long it has been running or ran, and the last lines
//! of its log.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::clock;
use crate::history::{Run, Status};
use crate::index::Index;
use crate::proc::Here;
use crate::record::{CommandPredicate, Kind};
use crate::store::{Store, StoreError};

/// One run's state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    pub run_id: String,
    pub tag: String,
    pub workflow: String,
    pub owner: String,
    pub host: String,
    pub status: Status,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    /// Seconds since the command started (running), or how long it ran.
    pub elapsed_seconds: Option<u64>,
    pub code: Option<i32>,
    /// Processes its result found still alive in the command's process group
    /// (terminated by ledger then): `pid command`.
    #[serde(default)]
    pub leftover_processes: Vec<String>,
    /// The last lines of the log: for a running run, of its log file on this
    /// machine (empty elsewhere); for an ended one, as its result recorded.
    pub log_tail: Vec<String>,
}

/// The state of every run (or of the runs tagged `tag`), oldest first, from
/// the run index: only runs still `running` are read from the ledger, to
/// check their supervisor and tail their log file.
pub fn status(
    root: &Path,
    store: &Store,
    index: &Index,
    here: &Here,
    now: OffsetDateTime,
    tag: Option<&str>,
    lines: usize,
) -> Result<Vec<RunState>, StoreError> {
    index
        .rows
        .iter()
        .filter(|r| tag.is_none_or(|t| r.state.tag == t || r.run_id() == t))
        .map(|row| {
            if row.state.status == Status::Running {
                return Ok(state(root, &index.run(store, row)?, here, now, lines));
            }
            let mut s = RunState::clone(&row.state);
            let skip = s.log_tail.len().saturating_sub(lines);
            s.log_tail.drain(..skip);
            Ok(s)
        })
        .collect()
}

/// A run's state as its records alone say: no liveness check (a run
/// without a result is `running`), the whole log tail its result recorded.
pub fn recorded(run: &Run) -> RunState {
    let pre = run.preflight();
    let started = run.started();
    let result = run.result();
    RunState {
        run_id: run.run_id.clone(),
        tag: pre.as_ref().map(|p| p.tag.clone()).unwrap_or_default(),
        workflow: pre.as_ref().map(|p| p.workflow.clone()).unwrap_or_default(),
        owner: pre.as_ref().map(|p| p.owner.clone()).unwrap_or_default(),
        host: pre
            .as_ref()
            .map(|p| p.host.hostname.clone())
            .unwrap_or_default(),
        status: run.status(),
        started_at: started.as_ref().map(|s| s.started_at.clone()),
        ended_at: result.as_ref().map(|r| r.ended_at.clone()),
        elapsed_seconds: result.as_ref().map(|r| r.duration_ms / 1000),
        leftover_processes: result
            .as_ref()
            .map(|r| {
                r.leftover_processes
                    .iter()
                    .map(|p| format!("{} {}", p.pid, p.command))
                    .collect()
            })
            .unwrap_or_default(),
        code: result.as_ref().and_then(|r| r.code),
        log_tail: result.map(|r| r.log.tail).unwrap_or_default(),
    }
}

/// A run's state on this machine now: [`recorded`], with a `running` run's
/// liveness checked, its elapsed time and the tail of its log file.
pub(crate) fn state(
    root: &Path,
    run: &Run,
    here: &Here,
    now: OffsetDateTime,
    lines: usize,
) -> RunState {
    let mut s = recorded(run);
    s.status = run.status_here(here);
    if s.status == Status::Running {
        s.elapsed_seconds = s
            .started_at
            .as_deref()
            .and_then(clock::parse_rfc3339)
            .map(|t| u64::try_from((now - t).whole_seconds()).unwrap_or(0));
        s.log_tail = run
            .get(Kind::Command)
            .and_then(|c| c.payload.predicate_as::<CommandPredicate>().ok())
            .map(|c| tail(&root.join(&c.log), lines))
            .unwrap_or_default();
    } else {
        let skip = s.log_tail.len().saturating_sub(lines);
        s.log_tail.drain(..skip);
    }
    s
}

/// The last `lines` lines of a file (lossy UTF-8), reading at most its last 64 KiB.
pub fn tail(path: &Path, lines: usize) -> Vec<String> {
    const WINDOW: u64 = 64 << 10;
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let start = len.saturating_sub(WINDOW);
    if file.seek(SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut bytes = Vec::new();
    if file.take(WINDOW).read_to_end(&mut bytes).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut all: Vec<&str> = text.lines().collect();
    if start > 0 && !all.is_empty() {
        all.remove(0); // a partial first line
    }
    let skip = all.len().saturating_sub(lines);
    all[skip..].iter().map(|l| l.to_string()).collect()
}

/// `1h02m03s`, `4m05s`, `7s`.
pub fn human_duration(seconds: u64) -> String {
    let (h, m, s) = (seconds / 3600, (seconds / 60) % 60, seconds % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s:02}s"),
        _ => format!("{h}h{m:02}m{s:02}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(7), "7s");
        assert_eq!(human_duration(245), "4m05s");
        assert_eq!(human_duration(3723), "1h02m03s");
    }

    #[test]
    fn tail_reads_the_end_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let body: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, body).unwrap();
        assert_eq!(tail(&path, 2), ["line 19998", "line 19999"]);
        assert!(tail(&dir.path().join("missing"), 3).is_empty());
    }
}
