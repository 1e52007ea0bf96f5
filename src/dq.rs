//! The data-quality gate: built-in rules from ledger.yaml `dq`, checked in
//! one streaming pass over a CSV file (the file is hashed in the same pass),
//! plus an optional external command. Pure: returns the outcome, writes nothing.
//!
//! Malformed input (no header, ragged rows, invalid UTF-8, an empty file) is a
//! failed `csv` rule with the line number, never a crash. Dates are ISO
//! `YYYY-MM-DD`; staleness is measured against a date from the config or the
//! command line, never the wall clock, so a verdict is reproducible.

use std::collections::BTreeMap;
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

/// The parser's side of the reading thread: chunks in, bytes out.
struct Chunks {
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    current: Vec<u8>,
    at: usize,
}

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.current.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.current = chunk;
                    self.at = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Reads and hashes the whole file on its own thread, handing chunks to the
/// parser while it listens; the digest always covers every byte.
fn read_and_hash(
    mut file: std::fs::File,
) -> (
    Chunks,
    std::thread::JoinHandle<std::io::Result<(String, u64)>>,
) {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
    let reader = std::thread::spawn(move || {
        let mut hasher = Sha256::new();
        let mut bytes = 0u64;
        let mut listening = true;
        loop {
            let mut chunk = vec![0u8; 1 << 20];
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
    (
        Chunks {
            rx,
            current: Vec::new(),
            at: 0,
        },
        reader,
    )
}

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

fn type_ok(kind: ColumnType, field: &[u8]) -> bool {
    match kind {
        ColumnType::String => true,
        ColumnType::Int => is_int(field),
        ColumnType::Float => parse_f64(field).is_some(),
        ColumnType::Date => parse_date(field).is_some(),
    }
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

/// A finite float.
fn parse_f64(field: &[u8]) -> Option<f64> {
    std::str::from_utf8(field)
        .ok()?
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
}

fn is_null(field: &[u8]) -> bool {
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
    let (mut chunks, reader) = read_and_hash(file);
    let as_of = as_of.or(rules.staleness.as_ref().and_then(|s| s.as_of));
    let (rows, outcomes) = scan(&mut chunks, rules, as_of);
    drop(chunks);
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

#[allow(clippy::disallowed_types)] // membership only: the outcome never depends on its order
type KeySet = std::collections::HashSet<Box<[u8]>>;

fn scan(reader: &mut impl Read, rules: &DqSection, as_of: Option<Date>) -> (u64, Vec<RuleOutcome>) {
    let mut csv_rule = Rule::new("csv", "well-formed UTF-8 CSV with a header");
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(false)
        .buffer_capacity(1 << 20)
        .from_reader(reader);
    let mut record = csv::ByteRecord::new();
    let header = match csv.read_byte_record(&mut record) {
        Ok(true) => record
            .iter()
            .map(|f| String::from_utf8_lossy(f).trim().to_string())
            .collect::<Vec<_>>(),
        Ok(false) => {
            csv_rule.fail(1);
            csv_rule.detail = "empty file: no header".into();
            return (0, vec![csv_rule.done()]);
        }
        Err(e) => {
            csv_rule.fail(1);
            csv_rule.detail = format!("unreadable header: {e}");
            return (0, vec![csv_rule.done()]);
        }
    };
    let index = |name: &str| header.iter().position(|h| h == name);

    let mut columns_rule = Rule::new(
        "columns",
        format!(
            "required columns: {}",
            rules.columns.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
    );
    let mut typed: Vec<(usize, ColumnType, Rule)> = Vec::new();
    for (name, kind) in &rules.columns {
        match index(name) {
            Some(i) => typed.push((
                i,
                *kind,
                Rule::new(
                    format!("type:{name}"),
                    format!("{name} is {}", kind.as_str()),
                ),
            )),
            None => {
                columns_rule.fail(1);
                columns_rule.detail.push_str(&format!("; missing {name}"));
            }
        }
    }
    let mut not_null: Vec<(usize, Rule)> = Vec::new();
    let mut unknown = Vec::new();
    for name in &rules.not_null {
        match index(name) {
            Some(i) => not_null.push((
                i,
                Rule::new(
                    format!("not_null:{name}"),
                    format!("{name} has no empty or null values"),
                ),
            )),
            None => unknown.push(name.clone()),
        }
    }
    let key_columns: Vec<usize> = rules.unique_key.iter().filter_map(|n| index(n)).collect();
    unknown.extend(
        rules
            .unique_key
            .iter()
            .filter(|n| index(n).is_none())
            .cloned(),
    );
    let mut unique_rule = (!rules.unique_key.is_empty()).then(|| {
        Rule::new(
            "unique_key",
            format!("({}) is unique", rules.unique_key.join(", ")),
        )
    });
    let mut keys = KeySet::default();
    let mut ranges: Vec<(usize, f64, f64, Rule)> = Vec::new();
    for (name, range) in &rules.ranges {
        match index(name) {
            Some(i) => {
                let (lo, hi) = (
                    range.min.unwrap_or(f64::NEG_INFINITY),
                    range.max.unwrap_or(f64::INFINITY),
                );
                ranges.push((
                    i,
                    lo,
                    hi,
                    Rule::new(
                        format!("range:{name}"),
                        format!("{name} within [{}, {}]", show(range.min), show(range.max)),
                    ),
                ));
            }
            None => unknown.push(name.clone()),
        }
    }
    let mut nulls: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    if rules.max_null_fraction.is_some() {
        for name in rules.columns.keys() {
            if let Some(i) = index(name) {
                nulls.insert(name.clone(), (i, 0));
            }
        }
    }
    let date_col = rules.date.as_ref().and_then(|d| {
        let i = index(&d.column);
        if i.is_none() {
            unknown.push(d.column.clone());
        }
        i
    });
    let mut date_parse = Rule::new("date_parse", "dates are YYYY-MM-DD");
    let mut sorted_rule = Rule::new("date_sorted", "dates never go back");
    let gap_days = rules.date.as_ref().and_then(|d| d.max_gap_days);
    let mut gap_rule = Rule::new(
        "date_gap",
        format!(
            "no gap over {} days between consecutive dates",
            gap_days.unwrap_or(0)
        ),
    );
    let (mut last_date, mut max_date): (Option<Date>, Option<Date>) = (None, None);

    let mut rows = 0u64;
    let mut line = 1u64;
    let mut row_null: Vec<bool> = Vec::new();
    let mut row_num: Vec<Option<f64>> = Vec::new();
    loop {
        match csv.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let at = e.position().map_or(line + 1, |p| p.line());
                csv_rule.fail(at);
                csv_rule.detail = match e.kind() {
                    csv::ErrorKind::UnequalLengths {
                        expected_len, len, ..
                    } => {
                        format!("line {at}: {len} fields where the header has {expected_len} (ragged row); reading stopped")
                    }
                    _ => format!("line {at}: {e}; reading stopped"),
                };
                break;
            }
        }
        line = record.position().map_or(line + 1, |p| p.line());
        rows += 1;
        if std::str::from_utf8(record.as_slice()).is_err() {
            csv_rule.fail(line);
            csv_rule.detail = format!("line {line}: invalid UTF-8");
            continue;
        }
        // Each field is classified once per row: null or not, and its number.
        row_null.clear();
        row_null.extend(record.iter().map(is_null));
        row_num.clear();
        row_num.resize(record.len(), None);
        for (i, kind, rule) in &mut typed {
            if row_null[*i] {
                continue;
            }
            let f = record[*i].trim_ascii();
            let ok = match kind {
                ColumnType::Float => {
                    row_num[*i] = parse_f64(f);
                    row_num[*i].is_some()
                }
                _ => type_ok(*kind, f),
            };
            if !ok {
                rule.fail(line);
            }
        }
        for (i, rule) in &mut not_null {
            if row_null[*i] {
                rule.fail(line);
            }
        }
        if let Some(rule) = &mut unique_rule {
            if key_columns.len() == rules.unique_key.len() {
                let mut key = Vec::new();
                for &i in &key_columns {
                    key.extend_from_slice(&record[i]);
                    key.push(0x1f);
                }
                if !keys.insert(key.into_boxed_slice()) {
                    rule.fail(line);
                }
            }
        }
        for (i, lo, hi, rule) in &mut ranges {
            if row_null[*i] {
                continue;
            }
            let v = row_num[*i].or_else(|| parse_f64(record[*i].trim_ascii()));
            if !v.is_some_and(|v| v >= *lo && v <= *hi) {
                rule.fail(line);
            }
        }
        for (i, count) in nulls.values_mut() {
            if row_null[*i] {
                *count += 1;
            }
        }
        if let Some(i) = date_col {
            match parse_date(record[i].trim_ascii()) {
                None => date_parse.fail(line),
                Some(d) => {
                    if let Some(prev) = last_date {
                        if d < prev {
                            sorted_rule.fail(line);
                        } else if gap_days.is_some_and(|g| (d - prev).whole_days() > i64::from(g)) {
                            gap_rule.fail(line);
                        }
                    }
                    last_date = Some(d);
                    max_date = max_date.max(Some(d));
                }
            }
        }
    }

    let mut out = vec![csv_rule.done()];
    if !rules.columns.is_empty() {
        out.push(columns_rule.done());
        out.extend(typed.into_iter().map(|(_, _, r)| r.done()));
    }
    if !unknown.is_empty() {
        let mut r = Rule::new(
            "config_columns",
            format!(
                "columns named by the rules but not in the header: {}",
                unknown.join(", ")
            ),
        );
        r.fail(1);
        out.push(r.done());
    }
    out.extend(not_null.into_iter().map(|(_, r)| r.done()));
    out.extend(unique_rule.map(Rule::done));
    out.extend(ranges.into_iter().map(|(_, _, _, r)| r.done()));
    if let Some(max) = rules.max_null_fraction {
        for (name, (_, count)) in nulls {
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
        out.push(date_parse.done());
        if d.sorted {
            out.push(sorted_rule.done());
        }
        if gap_days.is_some() {
            out.push(gap_rule.done());
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
        match (as_of, max_date) {
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
    fn as_of_from_the_command_line_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.csv");
        std::fs::write(&path, GOOD).unwrap();
        let late = parse_date(b"2026-02-01");
        let r = check(&path, "in.csv", &rules(), late).unwrap();
        assert_eq!(r.as_of.as_deref(), Some("2026-02-01"));
        assert_eq!(failed(&r), [("staleness".to_string(), vec![])]);
    }
}
