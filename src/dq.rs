//! The data-quality gate: built-in rules from ledger.yaml `dq`, checked in
//! one streaming pass over a CSV file (the file is hashed in the same pass),
//! plus an optional external command. Pure: returns the outcome, writes nothing.
//!
//! Malformed input (no header, ragged rows, invalid UTF-8, an empty file) is a
//! failed `csv` rule with the line number, never a crash. Dates are ISO
//! `YYYY-MM-DD`; staleness is measured against a date from the config or the
//! command line, never the wall clock, so a verdict is reproducible.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use time::Date;

use crate::config::{ColumnType, DqSection};
use crate::files::FileDigest;
use crate::record::canon::hex;

/// Line numbers kept per failed rule.
const FIRST_LINES: usize = 5;

pub use crate::record::kinds::RuleOutcome;

/// What the built-in rules found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub passed: bool,
    pub input: FileDigest,
    /// Data rows read (not counting the header).
    pub rows: u64,
    /// The date staleness was measured against, if any.
    pub as_of: Option<String>,
    pub rules: Vec<RuleOutcome>,
}

struct Rule {
    name: String,
    failures: u64,
    first_lines: Vec<u64>,
    detail: String,
}

impl Rule {
    fn new(name: impl Into<String>, detail: impl Into<String>) -> Rule {
        Rule {
            name: name.into(),
            failures: 0,
            first_lines: Vec::new(),
            detail: detail.into(),
        }
    }

    fn fail(&mut self, line: u64) {
        self.failures += 1;
        if self.first_lines.len() < FIRST_LINES {
            self.first_lines.push(line);
        }
    }

    fn done(self) -> RuleOutcome {
        RuleOutcome {
            passed: self.failures == 0,
            rule: self.name,
            failures: self.failures,
            first_lines: self.first_lines,
            detail: self.detail,
        }
    }
}

/// A chunk of the file, as read.
type Chunk = Vec<u8>;

/// The parser's side of the reading thread: chunks in; spent buffers go back
/// to the reader for reuse.
struct Chunks {
    rx: std::sync::mpsc::Receiver<Chunk>,
    back: std::sync::mpsc::Sender<Chunk>,
}

impl Chunks {
    fn next(&mut self) -> Option<Chunk> {
        self.rx.recv().ok()
    }

    fn recycle(&self, chunk: Chunk) {
        let _ = self.back.send(chunk);
    }
}

/// A `Read` over what is left of the stream: `pending` bytes first, then the
/// remaining chunks (the csv crate's input once the fast path hands over).
struct Rest<'a> {
    chunks: &'a mut Chunks,
    current: Chunk,
    at: usize,
    /// Bytes handed out so far.
    offset: u64,
    /// See [`Breaks`].
    breaks: Breaks,
}

/// The runs of line-break bytes (`\r`, `\n`) handed to the csv crate and not
/// yet passed by a record. The csv crate dates a record from where it began
/// reading it: the byte after the previous record's terminator, before the
/// rest of a `\r\n` and any blank lines it skips, so a line or more too
/// early (found by fuzzing). [`line_at`] adds the newlines it skipped.
type Breaks = std::rc::Rc<std::cell::RefCell<std::collections::VecDeque<Break>>>;

/// A run of `\r` and `\n` bytes at `start..end`.
#[derive(Clone, Copy, Debug)]
struct Break {
    start: u64,
    end: u64,
    newlines: u64,
    starts_with_newline: bool,
}

impl Rest<'_> {
    fn new(chunks: &mut Chunks, current: Chunk) -> Rest<'_> {
        Rest {
            chunks,
            current,
            at: 0,
            offset: 0,
            breaks: Breaks::default(),
        }
    }
}

impl Read for Rest<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.current.len() {
            match self.chunks.next() {
                Some(chunk) => {
                    let spent = std::mem::replace(&mut self.current, chunk);
                    self.chunks.recycle(spent);
                    self.at = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        let out = &mut buf[..n];
        out.copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        let mut breaks = self.breaks.borrow_mut();
        for i in memchr::memchr2_iter(b'\r', b'\n', out) {
            let at = self.offset + i as u64;
            let newline = u64::from(out[i] == b'\n');
            match breaks.back_mut() {
                Some(run) if run.end == at => {
                    run.end += 1;
                    run.newlines += newline;
                }
                _ => breaks.push_back(Break {
                    start: at,
                    end: at + 1,
                    newlines: newline,
                    starts_with_newline: newline == 1,
                }),
            }
        }
        self.offset += n as u64;
        Ok(n)
    }
}

/// The line a record or error the csv crate places at `position` is on:
/// the newlines the crate skipped after that position are added.
fn line_at(breaks: &Breaks, position: &csv::Position) -> u64 {
    let b = position.byte();
    let mut runs = breaks.borrow_mut();
    while runs.front().is_some_and(|r| r.end <= b) {
        runs.pop_front();
    }
    let skipped = match runs.front() {
        // At the very start of the stream nothing was a terminator yet.
        Some(r) if r.start == b => r.newlines,
        // The run's first byte ended the previous record.
        Some(r) if r.start < b => r.newlines - u64::from(r.starts_with_newline),
        _ => 0,
    };
    position.line() + skipped
}

/// Reads and hashes the whole file on its own thread, handing chunks to the
/// parser while it listens; the digest always covers every byte.
fn read_and_hash<R: Read + Send + 'static>(
    mut file: R,
    chunk_bytes: usize,
) -> (
    Chunks,
    std::thread::JoinHandle<std::io::Result<(String, u64)>>,
) {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Chunk>(4);
    let (back, spent) = std::sync::mpsc::channel::<Chunk>();
    let reader = std::thread::spawn(move || {
        let mut hasher = Sha256::new();
        let mut bytes = 0u64;
        let mut listening = true;
        loop {
            let mut chunk = spent.try_recv().unwrap_or_default();
            chunk.resize(chunk_bytes.max(1), 0);
            let n = match file.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            chunk.truncate(n);
            hasher.update(&chunk);
            bytes += n as u64;
            if listening && tx.send(chunk).is_err() {
                listening = false; // the parser stopped early; keep hashing
            }
        }
        Ok((hex(&hasher.finalize()), bytes))
    });
    (Chunks { rx, back }, reader)
}

/// Bytes per read.
const CHUNK: usize = 1 << 20;

/// `YYYY-MM-DD`, strictly.
pub fn parse_date(text: &[u8]) -> Option<Date> {
    if text.len() != 10 || text[4] != b'-' || text[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        text[r].iter().try_fold(0u32, |acc, &b| {
            b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
        })
    };
    let month = time::Month::try_from(num(5..7)? as u8).ok()?;
    Date::from_calendar_date(num(0..4)? as i32, month, num(8..10)? as u8).ok()
}

/// An optional sign, then 1 to 18 digits (always fits an i64), or anything
/// else i64 parses.
fn is_int(field: &[u8]) -> bool {
    let digits = field
        .strip_prefix(b"-")
        .or_else(|| field.strip_prefix(b"+"))
        .unwrap_or(field);
    (1..=18).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit)
        || std::str::from_utf8(field).is_ok_and(|s| s.parse::<i64>().is_ok())
}

/// A finite float: the common `[+-]digits[.digits]` with at most 15 digits
/// exactly (Clinger's fast path: an exact integer divided by an exact power
/// of ten rounds once, correctly), anything else through the standard parser.
fn parse_f64(field: &[u8]) -> Option<f64> {
    fast_f64(field).or_else(|| slow_f64(field))
}

const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

fn fast_f64(field: &[u8]) -> Option<f64> {
    let (negative, body) = match field.first()? {
        b'-' => (true, &field[1..]),
        b'+' => (false, &field[1..]),
        _ => (false, field),
    };
    let (int, frac) = match memchr::memchr(b'.', body) {
        Some(dot) => (&body[..dot], &body[dot + 1..]),
        None => (body, &body[body.len()..]),
    };
    let digits = int.len() + frac.len();
    if digits == 0 || digits > 15 {
        return None;
    }
    let mut mantissa = 0u64;
    for &b in int.iter().chain(frac) {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        mantissa = mantissa * 10 + u64::from(d);
    }
    let value = mantissa as f64 / POW10[frac.len()];
    Some(if negative { -value } else { value })
}

fn slow_f64(field: &[u8]) -> Option<f64> {
    std::str::from_utf8(field)
        .ok()?
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
}

fn is_null(field: &[u8]) -> bool {
    // Most fields are longer than any null spelling and not padded.
    if field.len() > 4
        && !field[0].is_ascii_whitespace()
        && !field[field.len() - 1].is_ascii_whitespace()
    {
        return false;
    }
    let t = field.trim_ascii();
    match t.len() {
        0 => true,
        2 => t.eq_ignore_ascii_case(b"na"),
        3 => t.eq_ignore_ascii_case(b"nan"),
        4 => t.eq_ignore_ascii_case(b"null"),
        _ => false,
    }
}

/// Checks `path` against `rules`. `as_of` overrides `dq.staleness.as_of`.
/// Errors only when the file cannot be read at all.
pub fn check(
    path: &Path,
    rel: &str,
    rules: &DqSection,
    as_of: Option<Date>,
) -> std::io::Result<Report> {
    let file = std::fs::File::open(path)?;
    check_reader(file, CHUNK, rel, rules, as_of)
}

/// [`check`] over any reader, read `chunk_bytes` at a time. The report never
/// depends on `chunk_bytes`: lines, quoted fields and UTF-8 sequences split
/// across reads are joined (the fuzz target `dq_csv` holds it to that).
pub fn check_reader<R: Read + Send + 'static>(
    input: R,
    chunk_bytes: usize,
    rel: &str,
    rules: &DqSection,
    as_of: Option<Date>,
) -> std::io::Result<Report> {
    let (mut chunks, reader) = read_and_hash(input, chunk_bytes);
    let as_of = as_of.or(rules.staleness.as_ref().and_then(|s| s.as_of));
    let mut checker = Checker::new(rules, as_of);
    scan(&mut chunks, &mut checker);
    drop(chunks);
    let (rows, outcomes) = checker.finish();
    let (sha256, bytes) = reader
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the reading thread panicked")))?;
    let passed = outcomes.iter().all(|r| r.passed);
    Ok(Report {
        passed,
        input: FileDigest {
            path: rel.to_string(),
            sha256,
            bytes,
        },
        rows,
        as_of: as_of.map(|d| d.to_string()),
        rules: outcomes,
    })
}

/// One line's fields: the line's bytes and each field's bounds in it.
#[derive(Clone, Copy)]
struct Fields<'t> {
    text: &'t [u8],
    bounds: &'t [(usize, usize)],
}

impl<'t> Fields<'t> {
    fn len(&self) -> usize {
        self.bounds.len()
    }

    fn get(&self, i: usize) -> &'t [u8] {
        let (a, b) = self.bounds[i];
        &self.text[a..b]
    }

    fn iter(&self) -> impl Iterator<Item = &'t [u8]> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }
}

#[allow(clippy::disallowed_types)] // membership only: the outcome never depends on its order
type KeySet = std::collections::HashSet<Box<[u8]>>;

/// Every rule's state while rows stream past.
struct Checker<'a> {
    rules: &'a DqSection,
    as_of: Option<Date>,
    csv_rule: Rule,
    /// Set once the header is read; `None` also after an empty file.
    columns: Option<usize>,
    /// Reading stopped (a ragged row).
    stopped: bool,
    columns_rule: Rule,
    unknown: Vec<String>,
    typed: Vec<(usize, ColumnType, Rule)>,
    not_null: Vec<(usize, Rule)>,
    key_columns: Vec<usize>,
    unique_rule: Option<Rule>,
    keys: KeySet,
    ranges: Vec<(usize, f64, f64, Rule)>,
    /// (column name, index, null count), by name.
    nulls: Vec<(String, usize, u64)>,
    /// What each column is checked for, and the columns that are.
    plan: Vec<ColumnPlan>,
    active: Vec<usize>,
    date_col: Option<usize>,
    date_parse: Rule,
    sorted_rule: Rule,
    gap_days: Option<u32>,
    gap_rule: Rule,
    last_date: Option<Date>,
    max_date: Option<Date>,
    /// The previous row's date text and value: dates repeat row after row.
    date_memo: (Vec<u8>, Option<Date>),
    rows: u64,
}

/// The rules that read one column (indices into the checker's rule lists).
#[derive(Clone, Debug, Default)]
struct ColumnPlan {
    typed: Option<usize>,
    not_null: Vec<usize>,
    ranges: Vec<usize>,
    null_count: Option<usize>,
}

impl<'a> Checker<'a> {
    fn new(rules: &'a DqSection, as_of: Option<Date>) -> Checker<'a> {
        Checker {
            rules,
            as_of,
            csv_rule: Rule::new("csv", "well-formed UTF-8 CSV with a header"),
            columns: None,
            stopped: false,
            columns_rule: Rule::new(
                "columns",
                format!(
                    "required columns: {}",
                    rules.columns.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ),
            unknown: Vec::new(),
            typed: Vec::new(),
            not_null: Vec::new(),
            key_columns: Vec::new(),
            unique_rule: (!rules.unique_key.is_empty()).then(|| {
                Rule::new(
                    "unique_key",
                    format!("({}) is unique", rules.unique_key.join(", ")),
                )
            }),
            keys: KeySet::default(),
            ranges: Vec::new(),
            nulls: Vec::new(),
            plan: Vec::new(),
            active: Vec::new(),
            date_col: None,
            date_parse: Rule::new("date_parse", "dates are YYYY-MM-DD"),
            sorted_rule: Rule::new("date_sorted", "dates never go back"),
            gap_days: rules.date.as_ref().and_then(|d| d.max_gap_days),
            gap_rule: Rule::new(
                "date_gap",
                format!(
                    "no gap over {} days between consecutive dates",
                    rules
                        .date
                        .as_ref()
                        .and_then(|d| d.max_gap_days)
                        .unwrap_or(0)
                ),
            ),
            last_date: None,
            max_date: None,
            date_memo: (Vec::new(), None),
            rows: 0,
        }
    }

    /// Binds the rules to the header's columns.
    fn header(&mut self, fields: Fields<'_>) {
        let header: Vec<String> = fields
            .iter()
            .map(|f| String::from_utf8_lossy(f).trim().to_string())
            .collect();
        let index = |name: &str| header.iter().position(|h| h == name);
        let rules = self.rules;
        self.columns = Some(header.len());
        for (name, kind) in &rules.columns {
            match index(name) {
                Some(i) => self.typed.push((
                    i,
                    *kind,
                    Rule::new(
                        format!("type:{name}"),
                        format!("{name} is {}", kind.as_str()),
                    ),
                )),
                None => {
                    self.columns_rule.fail(1);
                    self.columns_rule
                        .detail
                        .push_str(&format!("; missing {name}"));
                }
            }
        }
        for name in &rules.not_null {
            match index(name) {
                Some(i) => self.not_null.push((
                    i,
                    Rule::new(
                        format!("not_null:{name}"),
                        format!("{name} has no empty or null values"),
                    ),
                )),
                None => self.unknown.push(name.clone()),
            }
        }
        self.key_columns = rules.unique_key.iter().filter_map(|n| index(n)).collect();
        self.unknown.extend(
            rules
                .unique_key
                .iter()
                .filter(|n| index(n).is_none())
                .cloned(),
        );
        for (name, range) in &rules.ranges {
            match index(name) {
                Some(i) => self.ranges.push((
                    i,
                    range.min.unwrap_or(f64::NEG_INFINITY),
                    range.max.unwrap_or(f64::INFINITY),
                    Rule::new(
                        format!("range:{name}"),
                        format!("{name} within [{}, {}]", show(range.min), show(range.max)),
                    ),
                )),
                None => self.unknown.push(name.clone()),
            }
        }
        if rules.max_null_fraction.is_some() {
            for name in rules.columns.keys() {
                if let Some(i) = index(name) {
                    self.nulls.push((name.clone(), i, 0));
                }
            }
        }
        self.date_col = rules.date.as_ref().and_then(|d| {
            let i = index(&d.column);
            if i.is_none() {
                self.unknown.push(d.column.clone());
            }
            i
        });
        self.plan = vec![ColumnPlan::default(); header.len()];
        for (t, (c, _, _)) in self.typed.iter().enumerate() {
            self.plan[*c].typed = Some(t);
        }
        for (r, (c, _)) in self.not_null.iter().enumerate() {
            self.plan[*c].not_null.push(r);
        }
        for (r, (c, _, _, _)) in self.ranges.iter().enumerate() {
            self.plan[*c].ranges.push(r);
        }
        for (n, (_, c, _)) in self.nulls.iter().enumerate() {
            self.plan[*c].null_count = Some(n);
        }
        self.active = (0..header.len())
            .filter(|&c| {
                let p = &self.plan[c];
                p.typed.is_some()
                    || !p.not_null.is_empty()
                    || !p.ranges.is_empty()
                    || p.null_count.is_some()
            })
            .collect();
    }

    /// Reading stops at a malformed line.
    fn malformed(&mut self, line: u64, detail: String) {
        self.csv_rule.fail(line);
        self.csv_rule.detail = detail;
        self.stopped = true;
    }

    fn ragged(&mut self, line: u64, len: usize, expected: usize) {
        self.malformed(
            line,
            format!("line {line}: {len} fields where the header has {expected} (ragged row); reading stopped"),
        );
    }

    /// A row whose bytes are not UTF-8: counted, failed, not checked.
    fn invalid_utf8(&mut self, line: u64) {
        self.rows += 1;
        self.csv_rule.fail(line);
        self.csv_rule.detail = format!("line {line}: invalid UTF-8");
    }

    /// Checks one data row (valid UTF-8, as many fields as the header).
    fn row(&mut self, fields: Fields<'_>, line: u64) {
        self.rows += 1;
        // One pass over the columns some rule reads: null or not, type, range.
        for &c in &self.active {
            let plan = &self.plan[c];
            let raw = fields.get(c);
            if is_null(raw) {
                for &r in &plan.not_null {
                    self.not_null[r].1.fail(line);
                }
                if let Some(n) = plan.null_count {
                    self.nulls[n].2 += 1;
                }
                continue;
            }
            let f = raw.trim_ascii();
            let mut number = None;
            if let Some(t) = plan.typed {
                let (_, kind, rule) = &mut self.typed[t];
                let ok = match kind {
                    ColumnType::Float => {
                        number = parse_f64(f);
                        number.is_some()
                    }
                    ColumnType::Date => {
                        if self.date_memo.0 != f {
                            self.date_memo = (f.to_vec(), parse_date(f));
                        }
                        self.date_memo.1.is_some()
                    }
                    ColumnType::Int => is_int(f),
                    ColumnType::String => true,
                };
                if !ok {
                    rule.fail(line);
                }
            }
            for &r in &plan.ranges {
                let (_, lo, hi, rule) = &mut self.ranges[r];
                let v = number.or_else(|| parse_f64(f));
                if !v.is_some_and(|v| v >= *lo && v <= *hi) {
                    rule.fail(line);
                }
            }
        }
        if let Some(rule) = &mut self.unique_rule {
            if self.key_columns.len() == self.rules.unique_key.len() {
                let mut key = Vec::new();
                for &i in &self.key_columns {
                    key.extend_from_slice(fields.get(i));
                    key.push(0x1f);
                }
                if !self.keys.insert(key.into_boxed_slice()) {
                    rule.fail(line);
                }
            }
        }
        if let Some(i) = self.date_col {
            let f = fields.get(i).trim_ascii();
            if self.date_memo.0 != f {
                self.date_memo = (f.to_vec(), parse_date(f));
            }
            match self.date_memo.1 {
                None => self.date_parse.fail(line),
                Some(d) => {
                    if let Some(prev) = self.last_date {
                        if d < prev {
                            self.sorted_rule.fail(line);
                        } else if self
                            .gap_days
                            .is_some_and(|g| (d - prev).whole_days() > i64::from(g))
                        {
                            self.gap_rule.fail(line);
                        }
                    }
                    self.last_date = Some(d);
                    self.max_date = self.max_date.max(Some(d));
                }
            }
        }
    }

    /// The outcome of every configured rule, in a fixed order.
    fn finish(mut self) -> (u64, Vec<RuleOutcome>) {
        let rules = self.rules;
        let rows = self.rows;
        if self.columns.is_none() {
            if self.csv_rule.failures == 0 {
                self.csv_rule.fail(1);
                self.csv_rule.detail = "empty file: no header".into();
            }
            return (0, vec![self.csv_rule.done()]);
        }
        let mut out = vec![self.csv_rule.done()];
        if !rules.columns.is_empty() {
            out.push(self.columns_rule.done());
            out.extend(self.typed.into_iter().map(|(_, _, r)| r.done()));
        }
        if !self.unknown.is_empty() {
            let mut r = Rule::new(
                "config_columns",
                format!(
                    "columns named by the rules but not in the header: {}",
                    self.unknown.join(", ")
                ),
            );
            r.fail(1);
            out.push(r.done());
        }
        out.extend(self.not_null.into_iter().map(|(_, r)| r.done()));
        out.extend(self.unique_rule.map(Rule::done));
        out.extend(self.ranges.into_iter().map(|(_, _, _, r)| r.done()));
        if let Some(max) = rules.max_null_fraction {
            for (name, _, count) in self.nulls {
                let mut r = Rule::new(
                    format!("null_fraction:{name}"),
                    format!("{count} of {rows} null, at most {max} allowed"),
                );
                if rows > 0 && count as f64 / rows as f64 > max {
                    r.failures = count;
                }
                out.push(r.done());
            }
        }
        if let Some(d) = &rules.date {
            out.push(self.date_parse.done());
            if d.sorted {
                out.push(self.sorted_rule.done());
            }
            if self.gap_days.is_some() {
                out.push(self.gap_rule.done());
            }
        }
        if let Some(min) = rules.min_rows {
            let mut r = Rule::new("min_rows", format!("{rows} rows, at least {min} required"));
            if rows < min {
                r.failures = 1;
            }
            out.push(r.done());
        }
        if let Some(s) = &rules.staleness {
            let mut r = Rule::new("staleness", String::new());
            match (self.as_of, self.max_date) {
                (None, _) => {
                    r.failures = 1;
                    r.detail = "no as-of date: set dq.staleness.as_of or pass --dq-as-of".into();
                }
                (Some(_), None) => {
                    r.failures = 1;
                    r.detail = "no dates to measure".into();
                }
                (Some(as_of), Some(last)) => {
                    let age = (as_of - last).whole_days();
                    r.detail = format!(
                        "last date {last} is {age} days before {as_of}, at most {} allowed",
                        s.max_age_days
                    );
                    if age > i64::from(s.max_age_days) {
                        r.failures = 1;
                    }
                }
            }
            out.push(r.done());
        }
        (rows, out)
    }
}

/// Streams the chunks through `checker`. Plain lines (no quote, no lone CR)
/// are split on commas directly; from the first chunk that holds a quote or a
/// lone CR on, the rest goes through the csv crate, which knows every corner
/// of RFC 4180. Both read the same rows with the same line numbers.
fn scan(chunks: &mut Chunks, checker: &mut Checker<'_>) {
    let mut lines = 0u64; // lines consumed so far
    let mut carry: Vec<u8> = Vec::new(); // an unfinished line
    let mut bounds: Vec<(usize, usize)> = Vec::new();
    let mut after_cr = false; // the last chunk ended with `\r`
    while let Some(chunk) = chunks.next() {
        // A lone CR split across two reads counts too (found by fuzzing).
        let lone_cr = after_cr && chunk.first().is_some_and(|&b| b != b'\n');
        after_cr = chunk.last() == Some(&b'\r');
        if lone_cr || needs_full_parser(&chunk) {
            let mut current = std::mem::take(&mut carry);
            current.extend_from_slice(&chunk);
            chunks.recycle(chunk);
            let mut rest = Rest::new(chunks, current);
            return scan_csv(&mut rest, checker, lines);
        }
        let Some(last_nl) = memchr::memrchr(b'\n', &chunk) else {
            carry.extend_from_slice(&chunk);
            chunks.recycle(chunk);
            continue;
        };
        // The line that began in an earlier chunk.
        let mut from = 0;
        if !carry.is_empty() {
            let nl = memchr::memchr(b'\n', &chunk).expect("the chunk has a newline");
            carry.extend_from_slice(&chunk[..nl]);
            lines += 1;
            plain_line(checker, &carry, lines, &mut bounds);
            carry.clear();
            from = nl + 1;
        }
        if !checker.stopped && from <= last_nl {
            lines = plain_lines(checker, &chunk[from..=last_nl], lines, &mut bounds);
        }
        if checker.stopped {
            return;
        }
        carry.extend_from_slice(&chunk[last_nl + 1..]);
        chunks.recycle(chunk);
    }
    if !carry.is_empty() {
        plain_line(checker, &carry, lines + 1, &mut bounds);
    }
}

/// Positions of `,` and `\n` in a block, eight bytes at a time (SWAR): for
/// short CSV lines this beats restarting a vector search at every field.
struct Separators<'b> {
    block: &'b [u8],
    /// Offset of the current word.
    at: usize,
    /// Separator bits (the high bit of each matching byte) left in it.
    mask: u64,
}

impl<'b> Separators<'b> {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;

    fn new(block: &'b [u8]) -> Separators<'b> {
        let mut s = Separators {
            block,
            at: 0,
            mask: 0,
        };
        s.mask = s.word_mask(0);
        s
    }

    /// High bit set in each byte of `x` that is zero (exact: no false hits).
    fn zero_bytes(x: u64) -> u64 {
        !(((x & Self::LOW7).wrapping_add(Self::LOW7)) | x | Self::LOW7)
    }

    fn word_mask(&self, at: usize) -> u64 {
        let w = match self.block.get(at..at + 8) {
            Some(bytes) => u64::from_le_bytes(bytes.try_into().expect("eight bytes")),
            None => {
                let rest = &self.block[at.min(self.block.len())..];
                let mut word = [0xffu8; 8];
                word[..rest.len()].copy_from_slice(rest);
                u64::from_le_bytes(word)
            }
        };
        Self::zero_bytes(w ^ 0x2c2c_2c2c_2c2c_2c2c) | Self::zero_bytes(w ^ 0x0a0a_0a0a_0a0a_0a0a)
    }
}

impl Iterator for Separators<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        while self.mask == 0 {
            self.at += 8;
            if self.at >= self.block.len() {
                return None;
            }
            self.mask = self.word_mask(self.at);
        }
        let byte = self.mask.trailing_zeros() as usize / 8;
        self.mask &= self.mask - 1;
        Some(self.at + byte)
    }
}

/// Complete lines (`block` ends with `\n`), split in one pass over the
/// commas and newlines. Returns the line count after them.
fn plain_lines(
    checker: &mut Checker<'_>,
    block: &[u8],
    mut lines: u64,
    bounds: &mut Vec<(usize, usize)>,
) -> u64 {
    // One UTF-8 check for the whole block; lines are checked one by one only
    // when it fails.
    let valid = std::str::from_utf8(block).is_ok();
    let mut line_start = 0;
    let mut field_start = 0;
    bounds.clear();
    for at in Separators::new(block) {
        if block[at] == b',' {
            bounds.push((field_start, at));
            field_start = at + 1;
            continue;
        }
        lines += 1;
        let end = if at > line_start && block[at - 1] == b'\r' {
            at - 1
        } else {
            at
        };
        if end > line_start {
            bounds.push((field_start, end.max(field_start)));
            let fields = Fields {
                text: block,
                bounds,
            };
            match checker.columns {
                None => checker.header(fields),
                Some(expected) if fields.len() != expected => {
                    checker.ragged(lines, fields.len(), expected);
                    return lines;
                }
                Some(_) if !valid && std::str::from_utf8(&block[line_start..end]).is_err() => {
                    checker.invalid_utf8(lines)
                }
                Some(_) => checker.row(fields, lines),
            }
        }
        bounds.clear();
        line_start = at + 1;
        field_start = at + 1;
    }
    lines
}

/// Whether a chunk needs the full CSV parser: a quote, or a CR that does not
/// end a line.
fn needs_full_parser(chunk: &[u8]) -> bool {
    memchr::memchr(b'"', chunk).is_some()
        || memchr::memchr_iter(b'\r', chunk).any(|i| chunk.get(i + 1).is_some_and(|&b| b != b'\n'))
}

/// One line without its `\n`: the header, a data row, or a blank line (skipped).
fn plain_line(
    checker: &mut Checker<'_>,
    line_bytes: &[u8],
    line: u64,
    bounds: &mut Vec<(usize, usize)>,
) {
    let text = line_bytes.strip_suffix(b"\r").unwrap_or(line_bytes);
    if text.is_empty() {
        return;
    }
    bounds.clear();
    let mut start = 0;
    for comma in memchr::memchr_iter(b',', text) {
        bounds.push((start, comma));
        start = comma + 1;
    }
    bounds.push((start, text.len()));
    let fields = Fields { text, bounds };
    match checker.columns {
        None => checker.header(fields),
        Some(expected) if fields.len() != expected => checker.ragged(line, fields.len(), expected),
        Some(_) if std::str::from_utf8(text).is_err() => checker.invalid_utf8(line),
        Some(_) => checker.row(fields, line),
    }
}

/// The csv crate's reading of the rest of the stream; `offset` lines were
/// consumed before it.
fn scan_csv(reader: &mut Rest<'_>, checker: &mut Checker<'_>, offset: u64) {
    let breaks = reader.breaks.clone();
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(1 << 20)
        .from_reader(reader);
    let mut record = csv::ByteRecord::new();
    let mut bounds: Vec<(usize, usize)> = Vec::new();
    let mut line = offset;
    loop {
        match csv.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                let at = offset
                    + e.position()
                        .map_or(line - offset + 1, |p| line_at(&breaks, p));
                if checker.columns.is_none() {
                    checker.malformed(1, format!("unreadable header: {e}"));
                } else {
                    checker.malformed(at, format!("line {at}: {e}; reading stopped"));
                }
                return;
            }
        }
        line = offset
            + record
                .position()
                .map_or(line - offset + 1, |p| line_at(&breaks, p));
        bounds.clear();
        bounds.extend((0..record.len()).filter_map(|i| record.range(i).map(|r| (r.start, r.end))));
        let fields = Fields {
            text: record.as_slice(),
            bounds: &bounds,
        };
        match checker.columns {
            None => checker.header(fields),
            Some(expected) if fields.len() != expected => {
                checker.ragged(line, fields.len(), expected);
                return;
            }
            Some(_) if std::str::from_utf8(record.as_slice()).is_err() => {
                checker.invalid_utf8(line)
            }
            Some(_) => checker.row(fields, line),
        }
    }
}

fn show(v: Option<f64>) -> String {
    v.map_or_else(|| "unbounded".into(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = r#"
columns: {date: date, factor: string, ret: float, n: int}
not_null: [date, factor]
unique_key: [date, factor]
date: {column: date, sorted: true, max_gap_days: 3}
ranges: {ret: {min: -1.0, max: 1.0}}
min_rows: 3
max_null_fraction: 0.34
staleness: {max_age_days: 2, as_of: 2026-01-07}
"#;
    const GOOD: &str = "date,factor,ret,n\n2026-01-01,mom,0.1,1\n2026-01-01,val,-0.2,2\n2026-01-02,mom,0.05,3\n2026-01-05,mom,,4\n";

    fn rules() -> DqSection {
        serde_yaml_ng::from_str(RULES).unwrap()
    }

    fn run(csv: &[u8]) -> Report {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.csv");
        std::fs::write(&path, csv).unwrap();
        check(&path, "in.csv", &rules(), None).unwrap()
    }

    fn failed(report: &Report) -> Vec<(String, Vec<u64>)> {
        report
            .rules
            .iter()
            .filter(|r| !r.passed)
            .map(|r| (r.rule.clone(), r.first_lines.clone()))
            .collect()
    }

    #[test]
    fn a_clean_file_passes_every_rule() {
        let r = run(GOOD.as_bytes());
        assert_eq!(failed(&r), vec![]);
        assert!(r.passed);
        assert_eq!(r.rows, 4);
        assert_eq!(r.input.bytes, GOOD.len() as u64);
        assert_eq!(
            r.input.sha256,
            crate::record::canon::sha256_hex(GOOD.as_bytes())
        );
        let names: Vec<&str> = r.rules.iter().map(|r| r.rule.as_str()).collect();
        assert_eq!(
            names,
            [
                "csv",
                "columns",
                "type:date",
                "type:factor",
                "type:n",
                "type:ret",
                "not_null:date",
                "not_null:factor",
                "unique_key",
                "range:ret",
                "null_fraction:date",
                "null_fraction:factor",
                "null_fraction:n",
                "null_fraction:ret",
                "date_parse",
                "date_sorted",
                "date_gap",
                "min_rows",
                "staleness"
            ]
        );
    }

    #[test]
    fn each_rule_fails_on_its_own_fixture() {
        type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a [u64])]);
        let cases: [Case; 11] = [
            (
                "missing column",
                "date,factor,ret\n2026-01-01,a,0\n2026-01-02,b,0\n2026-01-05,c,0\n",
                &[("columns", &[1])],
            ),
            (
                "bad int",
                &GOOD.replace(",0.1,1\n", ",0.1,x1\n"),
                &[("type:n", &[2])],
            ),
            (
                "bad float",
                &GOOD.replace("-0.2", "abc"),
                &[("type:ret", &[3]), ("range:ret", &[3])],
            ),
            (
                "null key",
                &GOOD.replace("2026-01-02,mom", "2026-01-02,"),
                &[("not_null:factor", &[4])],
            ),
            (
                "duplicate key",
                &GOOD.replace("2026-01-01,val", "2026-01-01,mom"),
                &[("unique_key", &[3])],
            ),
            (
                "out of range",
                &GOOD.replace("0.05", "1.5"),
                &[("range:ret", &[4])],
            ),
            (
                "unsorted",
                &GOOD.replace("2026-01-02", "2025-12-31"),
                &[("date_sorted", &[4]), ("date_gap", &[5])],
            ),
            (
                "gap",
                &GOOD.replace("2026-01-05", "2026-01-06"),
                &[("date_gap", &[5])],
            ),
            (
                "bad date",
                &GOOD.replace("2026-01-05", "05/01/2026"),
                &[
                    ("type:date", &[5]),
                    ("date_parse", &[5]),
                    ("staleness", &[]),
                ],
            ),
            (
                "too few rows",
                "date,factor,ret,n\n2026-01-05,a,0,1\n2026-01-06,b,0,1\n",
                &[("min_rows", &[])],
            ),
            (
                "nulls",
                &GOOD.replace("0.1,1", ",1").replace("0.05,3", ",3"),
                &[("null_fraction:ret", &[])],
            ),
        ];
        for (what, csv, expected) in cases {
            let got = failed(&run(csv.as_bytes()));
            let expected: Vec<(String, Vec<u64>)> = expected
                .iter()
                .map(|(r, l)| (r.to_string(), l.to_vec()))
                .collect();
            assert_eq!(got, expected, "{what}");
        }
        // Stale: the last date is 5 days before as_of.
        let stale = GOOD
            .replace("2026-01-05", "2026-01-02")
            .replace("2026-01-02,mom,0.05", "2026-01-02,val2,0.05");
        assert_eq!(
            failed(&run(stale.as_bytes())),
            [("staleness".to_string(), vec![])]
        );
    }

    #[test]
    fn malformed_csv_is_a_failure_with_a_line_never_a_crash() {
        for (what, bytes, line, detail) in [
            ("empty", &b""[..], 1, "empty file"),
            (
                "ragged",
                &b"date,factor,ret,n\n2026-01-01,a,0,1\n2026-01-02,b,0\n"[..],
                3,
                "ragged row",
            ),
            (
                "utf-8",
                &b"date,factor,ret,n\n2026-01-01,\xff\xfe,0,1\n"[..],
                2,
                "invalid UTF-8",
            ),
        ] {
            let r = run(bytes);
            let csv = &r.rules[0];
            assert_eq!(csv.rule, "csv");
            assert!(!csv.passed && !r.passed, "{what}");
            assert_eq!(csv.first_lines, [line], "{what}");
            assert!(csv.detail.contains(detail), "{what}: {}", csv.detail);
        }
        let header_only = run(b"date,factor,ret,n\n");
        assert_eq!(
            failed(&header_only),
            [
                ("min_rows".to_string(), vec![]),
                ("staleness".to_string(), vec![])
            ]
        );
    }

    #[test]
    fn the_fast_float_path_agrees_with_the_standard_parser() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..200_000 {
            let int_digits = (next() % 9) as usize;
            let frac_digits = (next() % 10) as usize;
            let mut text = String::new();
            match next() % 3 {
                0 => text.push('-'),
                1 => text.push('+'),
                _ => {}
            }
            for _ in 0..int_digits {
                text.push(char::from(b'0' + (next() % 10) as u8));
            }
            if frac_digits > 0 || next() % 4 == 0 {
                text.push('.');
            }
            for _ in 0..frac_digits {
                text.push(char::from(b'0' + (next() % 10) as u8));
            }
            let want = text.parse::<f64>().ok();
            let got = parse_f64(text.as_bytes());
            assert_eq!(got.map(f64::to_bits), want.map(f64::to_bits), "{text:?}");
        }
        for bad in ["", "-", ".", "+.", "1.2.3", "1,5", "0x10", " 1"] {
            assert_eq!(fast_f64(bad.as_bytes()), None, "{bad:?}");
        }
        // Outside the fast path, the standard parser decides.
        assert_eq!(parse_f64(b"1e3"), Some(1000.0));
        assert_eq!(
            parse_f64(b"0.1234567890123456789"),
            Some(0.123_456_789_012_345_68)
        );
        assert_eq!(parse_f64(b"inf"), None);
    }

    /// The fast path and the csv crate (taking over at the first quote or
    /// lone CR, even deep into the file) report the same rows and lines.
    #[test]
    fn plain_quoted_and_crlf_files_read_the_same() {
        let mut plain = String::from("date,factor,ret,n\n");
        let mut day = time::macros::date!(2026 - 01 - 01);
        let rows = 80_000;
        for i in 0..rows {
            if i % 4 == 0 {
                day = day.next_day().unwrap();
            }
            let ret = if i == 71_000 {
                "7.5".to_string()
            } else {
                format!("0.{:04}", i % 10_000)
            };
            let factor = if i == 75_000 {
                String::new()
            } else {
                format!("f{}", i % 4)
            };
            plain.push_str(&format!("{day},{factor},{ret},{i}\n"));
        }
        // The first quote sits in the second chunk: the switch happens mid-stream.
        let quoted = plain.replacen(",f0,0.0000,60000\n", ",\"f0\",0.0000,60000\n", 1);
        assert_ne!(quoted, plain);
        assert!(
            plain.find("60000\n").unwrap() > CHUNK,
            "the quote is past the first chunk"
        );
        let crlf = plain.replace('\n', "\r\n");
        let mut rules = rules();
        rules.unique_key.clear();
        rules.staleness = None;
        rules.date.as_mut().unwrap().max_gap_days = None;
        let read = |text: &str| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("in.csv");
            std::fs::write(&path, text).unwrap();
            check(&path, "in.csv", &rules, None).unwrap()
        };
        let a = read(&plain);
        assert_eq!(a.rows, rows);
        let failures = failed(&a);
        assert_eq!(
            failures,
            [
                ("not_null:factor".to_string(), vec![75_002]),
                ("range:ret".to_string(), vec![71_002]),
            ]
        );
        // CRLF with quotes goes through the csv crate, which dates a record
        // after \r\n a line early unless corrected (found by fuzzing).
        let quoted_crlf = quoted.replace('\n', "\r\n");
        for other in [read(&quoted), read(&crlf), read(&quoted_crlf)] {
            assert_eq!(other.rows, a.rows);
            assert_eq!(other.rules, a.rules);
        }
        // A quoted field hiding a comma and a newline: one field, the csv crate's way.
        let tricky = plain.replacen("f3,", "\"f,\n3\",", 1);
        let t = read(&tricky);
        assert_eq!(t.rows, rows);
        assert_eq!(
            failed(&t),
            [
                ("not_null:factor".to_string(), vec![75_003]),
                ("range:ret".to_string(), vec![71_003]),
            ]
        );
    }

    #[test]
    fn separators_are_found_exactly() {
        let mut seed = 7u64;
        for len in 0..200 {
            let block: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    [b',', b'\n', b'a', 0x2d, 0x0b, 0xac, 0x8a, 0x00][(seed >> 61) as usize]
                })
                .collect();
            let want: Vec<usize> = (0..len)
                .filter(|&i| matches!(block[i], b',' | b'\n'))
                .collect();
            assert_eq!(
                Separators::new(&block).collect::<Vec<_>>(),
                want,
                "{block:?}"
            );
        }
    }

    #[test]
    fn as_of_from_the_command_line_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.csv");
        std::fs::write(&path, GOOD).unwrap();
        let late = parse_date(b"2026-02-01");
        let r = check(&path, "in.csv", &rules(), late).unwrap();
        assert_eq!(r.as_of.as_deref(), Some("2026-02-01"));
        assert_eq!(failed(&r), [("staleness".to_string(), vec![])]);
    }

    /// The report never depends on how the input is split into reads (the
    /// fuzz target `dq_csv` checks this on random input; these are the
    /// inputs it found wrong, and their neighbours).
    #[test]
    fn reading_in_small_pieces_changes_nothing() {
        let rules = rules();
        for text in [
            "date,factor\r\n\"a\"\"b\",c\r\n\u{ff}\u{fe},1\n",
            "date,factor,ret,n\r\n2026-01-01,\"mom\",0.1,1\r\nbad,val,0.2,2\r\n\r\n2026-01-03,x,9,3\r\n",
            "date,factor,ret,n\r\n2026-01-01,mom,0.1,1\r2026-01-02,\"v\r\nal\",0.2,2\r\n",
            "date,factor,ret,n\n2026-01-01,mom,0.1\n",
            "",
            "\"",
            "date,fagto\u{ff}\rr\u{ff}\n\"\u{11}\0\n\u{fe},0\n",
            "date,factor\r\n\n\u{fe}or,ret,n\n2\"a\"\"b\",c\r\n\u{fe},0\n",
            "\n\r\n\ndate,factor\n\n\n\"x\",y,z\n",
            "date,factor\r\r\n\"x\",y,z\r\n",
        ] {
            let at = |chunk: usize| {
                check_reader(
                    std::io::Cursor::new(text.as_bytes().to_vec()),
                    chunk,
                    "in.csv",
                    &rules,
                    None,
                )
                .unwrap()
            };
            let whole = at(CHUNK);
            if text.contains("\"x\",y,z") {
                // The ragged row is on line 7 (after blank lines) or 2 (a
                // lone CR ends a record but not a line, as for `wc -l`).
                let csv = whole.rules.iter().find(|r| r.rule == "csv").unwrap();
                let want = if text.starts_with('\n') { 7 } else { 2 };
                assert_eq!(csv.first_lines, [want], "{text:?}");
            }
            for chunk in 1..=9 {
                assert_eq!(at(chunk), whole, "{text:?} read {chunk} bytes at a time");
            }
        }
    }
}
