//! The text of `ledger log` and `ledger status`, and the copies of it kept
//! beside the run index (`<git dir>/ledger/runs-log.txt` and
//! `runs-status.txt`), so that listing 100,000 runs costs about what
//! copying the text costs.
//!
//! Every line but those of runs still `running` is fixed by the ledger's
//! tip alone. A running run's lines depend on this machine (is its
//! supervisor alive, how long has it run, what does its log file end with),
//! so each copy's header names the byte range of every such run, and those
//! ranges are made again on every use. A copy whose header does not name
//! the tip, this version of ledger and the ledger ref, or whose text is not
//! as long as its header says, is not used; the index then answers and
//! writes the copies anew. Nor is a copy whose header's sample (the lines
//! of made-up runs in every state) differs from what this build makes of
//! them: the text's format changed. Like the index, the copies are never a
//! source of truth: `verify`, `finalize` and `pull` read the ledger itself.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::history::{self, Status};
use crate::index::{self, Header, Index, LogRow, Row};
use crate::proc::Here;
use crate::status::{human_duration, RunState};
use crate::store::{Store, StoreError};

const LOG_FILE_NAME: &str = "runs-log.txt";
const STATUS_FILE_NAME: &str = "runs-status.txt";

/// Every state, with and without an exit code.
const STATES: [(Status, Option<i32>); 12] = [
    (Status::Blocked, None),
    (Status::Blocked, Some(2)),
    (Status::Running, None),
    (Status::Running, Some(0)),
    (Status::Passed, None),
    (Status::Passed, Some(0)),
    (Status::Failed, None),
    (Status::Failed, Some(1)),
    (Status::Aborted, None),
    (Status::Aborted, Some(137)),
    (Status::Incomplete, None),
    (Status::Incomplete, Some(3)),
];

/// The `log` lines of made-up runs in every state.
fn log_sample() -> String {
    let mut out = Vec::new();
    for (status, code) in STATES {
        let row = LogRow {
            at: "2026-01-02T03:04:05Z".into(),
            run_id: "20260102T030405Z_wf_tag".into(),
            status,
            workflow: "wf".into(),
            tag: "tag".into(),
            owner: "owner".into(),
            code,
        };
        log_line(&mut out, &row, status);
    }
    String::from_utf8(out).expect("lines are text")
}

/// The `status` lines of made-up runs in every state.
fn status_sample() -> String {
    let mut out = Vec::new();
    for (status, code) in STATES {
        for elapsed_seconds in [None, Some(3725)] {
            let state = RunState {
                run_id: "20260102T030405Z_wf_tag".into(),
                tag: "tag".into(),
                workflow: "wf".into(),
                owner: "owner".into(),
                host: "host".into(),
                status,
                started_at: Some("2026-01-02T03:04:05Z".into()),
                ended_at: None,
                elapsed_seconds,
                code,
                leftover_processes: vec!["42 sleep 9".into()],
                log_tail: vec!["a log line".into()],
            };
            status_lines(&mut out, &state);
        }
    }
    String::from_utf8(out).expect("lines are text")
}

/// Appends the `ledger log` line of `row` shown as `status` (no colour:
/// the first ten bytes are the padded status, for the CLI to paint).
pub fn log_line(out: &mut Vec<u8>, row: &LogRow, status: Status) {
    let detail = match (status, row.code) {
        (_, Some(code)) => format!("exit {code}"),
        (Status::Blocked, _) => "preflight failed".into(),
        (Status::Aborted, _) => "ledger run died; `ledger recover` records it".into(),
        _ => String::new(),
    };
    let start = out.len();
    let _ = write!(
        out,
        "{:<10} {}  {}  {}",
        status.as_str(),
        row.run_id,
        row.owner,
        detail
    );
    // Without the trailing blanks of an empty owner or detail.
    let line = std::str::from_utf8(&out[start..]).expect("written from strings");
    out.truncate(start + line.trim_end().len());
    out.push(b'\n');
}

/// Appends the `ledger status` lines of one run: its state, and for a
/// running run the log lines it carries.
pub fn status_lines(out: &mut Vec<u8>, s: &RunState) {
    let detail = match (s.status, s.code, s.elapsed_seconds) {
        (Status::Running, _, Some(e)) => {
            format!("running for {} on {}", human_duration(e), s.host)
        }
        (_, Some(code), Some(e)) => format!("exit {code} after {}", human_duration(e)),
        (Status::Blocked, _, _) => "blocked before the command started".into(),
        (Status::Aborted, _, _) => "ledger run died".into(),
        _ => String::new(),
    };
    let _ = writeln!(out, "{:<10} {}  {detail}", s.status.as_str(), s.run_id);
    if s.status == Status::Running {
        for l in &s.log_tail {
            let _ = writeln!(out, "           | {l}");
        }
    }
}

/// Appends `ledger log`'s text (newest run first) at the ledger's tip.
pub fn log(store: &Store, here: &Here, out: &mut Vec<u8>) -> Result<(), StoreError> {
    let Some(tip) = store.tip()? else {
        return Ok(());
    };
    let path = file(store, LOG_FILE_NAME);
    if let Some(copy) = Saved::read(&path, &index::header(store, tip), &log_sample()) {
        return copy.splice(out, |row, out| {
            log_line(out, row, row.status_here(store, Some(tip), here)?);
            Ok(())
        });
    }
    // The index writes the copy for the next call.
    let index = Index::load(store)?;
    for row in index.rows.iter().rev().map(LogRow::of) {
        log_line(out, &row, row.status_here(store, index.tip, here)?);
    }
    Ok(())
}

/// Appends `ledger status`'s text (oldest run first) at the ledger's tip,
/// with `lines` log lines under each running run.
pub fn status(
    root: &Path,
    store: &Store,
    here: &Here,
    now: OffsetDateTime,
    lines: usize,
    out: &mut Vec<u8>,
) -> Result<(), StoreError> {
    let Some(tip) = store.tip()? else {
        return Ok(());
    };
    let path = file(store, STATUS_FILE_NAME);
    if let Some(copy) = Saved::read(&path, &index::header(store, tip), &status_sample()) {
        let snapshot = store.snapshot(tip)?;
        return copy.splice(out, |row, out| {
            let run = history::load_run(&snapshot, &row.run_id)?;
            status_lines(out, &crate::status::state(root, &run, here, now, lines));
            Ok(())
        });
    }
    let index = Index::load(store)?;
    for s in crate::status::status(root, store, &index, here, now, None, lines)? {
        status_lines(out, &s);
    }
    Ok(())
}

/// Writes both copies for `rows` (the index at `header`'s tip, oldest
/// first) unless they are there already; best effort, like the index.
pub(crate) fn save(store: &Store, header: &Header, rows: &[Row]) {
    let (log, sample) = (file(store, LOG_FILE_NAME), log_sample());
    if !Saved::is_of(&log, header, &sample) {
        let mut copy = Saved::new(header, sample);
        for row in rows.iter().rev() {
            let row = LogRow::of(row);
            copy.add(&row, |text| log_line(text, &row, row.status));
        }
        copy.write(&log);
    }
    let (status, sample) = (file(store, STATUS_FILE_NAME), status_sample());
    if !Saved::is_of(&status, header, &sample) {
        let mut copy = Saved::new(header, sample);
        for row in rows {
            copy.add(&LogRow::of(row), |text| status_lines(text, &row.state));
        }
        copy.write(&status);
    }
}

fn file(store: &Store, name: &str) -> PathBuf {
    store.git_dir().join("ledger").join(name)
}

/// A copy's first line: whose text it is, in which format, which byte
/// ranges of the text are made again on use, and how long the text is.
#[derive(Serialize, Deserialize)]
struct CopyHeader {
    #[serde(flatten)]
    of: Header,
    sample: String,
    live: Vec<Live>,
    bytes: usize,
}

impl CopyHeader {
    /// Whether this header is of `of`, made as `sample` shows, and names a
    /// text of `text` bytes with its live ranges in order inside it.
    fn fits(&self, of: &Header, sample: &str, text: u64) -> bool {
        let mut at = 0;
        self.of == *of
            && self.sample == sample
            && self.bytes as u64 == text
            && self.live.iter().all(|l| {
                let fits = at <= l.start && l.start <= l.end && l.end <= self.bytes;
                at = l.end;
                fits
            })
    }
}

/// The lines of one run that was running at the tip, at `start..end` of
/// the text.
#[derive(Serialize, Deserialize)]
struct Live {
    start: usize,
    end: usize,
    row: LogRow,
}

/// A saved copy of a listing, as read or as being made.
struct Saved {
    header: CopyHeader,
    bytes: Vec<u8>,
    /// Where the text starts in `bytes`.
    text: usize,
}

impl Saved {
    fn new(of: &Header, sample: String) -> Saved {
        Saved {
            header: CopyHeader {
                of: of.clone(),
                sample,
                live: Vec::new(),
                bytes: 0,
            },
            bytes: Vec::new(),
            text: 0,
        }
    }

    /// Appends one run's lines; a running run's range is remembered.
    fn add(&mut self, row: &LogRow, lines: impl FnOnce(&mut Vec<u8>)) {
        let start = self.bytes.len();
        lines(&mut self.bytes);
        if row.status == Status::Running {
            self.header.live.push(Live {
                start,
                end: self.bytes.len(),
                row: row.clone(),
            });
        }
    }

    fn write(mut self, path: &Path) {
        self.header.bytes = self.bytes.len();
        let mut first = serde_json::to_vec(&self.header).expect("headers serialize");
        first.push(b'\n');
        crate::cache_file::write_parts(path, &[&first, &self.bytes]);
    }

    /// Whether `path` holds a whole copy for `of`, made as `sample` shows
    /// (its first line and its size tell; the text is not read).
    fn is_of(path: &Path, of: &Header, sample: &str) -> bool {
        use std::io::BufRead as _;
        let Ok(file) = std::fs::File::open(path) else {
            return false;
        };
        let size = file.metadata().map_or(0, |m| m.len());
        let mut first = Vec::new();
        let read = std::io::BufReader::new(file).read_until(b'\n', &mut first);
        read.is_ok()
            && first.pop() == Some(b'\n')
            && serde_json::from_slice::<CopyHeader>(&first).is_ok_and(|header| {
                let text = size.checked_sub(first.len() as u64 + 1);
                header.fits(of, sample, text.unwrap_or(u64::MAX))
            })
    }

    /// The copy at `path` when it is whole, for `of` and made as `sample`
    /// shows.
    fn read(path: &Path, of: &Header, sample: &str) -> Option<Saved> {
        let bytes = std::fs::read(path).ok()?;
        let newline = memchr::memchr(b'\n', &bytes)?;
        let header: CopyHeader = serde_json::from_slice(&bytes[..newline]).ok()?;
        let text = newline + 1;
        header
            .fits(of, sample, (bytes.len() - text) as u64)
            .then_some(Saved {
                header,
                bytes,
                text,
            })
    }

    /// Appends the text, with each running run's range made again by `live`.
    fn splice(
        self,
        out: &mut Vec<u8>,
        mut live: impl FnMut(&LogRow, &mut Vec<u8>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let text = &self.bytes[self.text..];
        let mut at = 0;
        for l in &self.header.live {
            out.extend_from_slice(&text[at..l.start]);
            live(&l.row, out)?;
            at = l.end;
        }
        out.extend_from_slice(&text[at..]);
        Ok(())
    }
}
