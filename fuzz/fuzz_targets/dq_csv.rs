//! The CSV data-quality gate: any bytes give a report (malformed CSV is a
//! failure with a line number, never a panic), and the report does not
//! depend on how the input was split into reads: the first byte picks a
//! read size of 1 to 64 bytes, compared with reading it whole, and with the
//! same bytes cut in place into pieces of that size (as a mapped file is).
//! All run inline (no threads): split reads make pieces that are checked
//! apart and merged, exactly as the workers' are; unit tests run the threads.
#![no_main]

use std::io::Cursor;
use std::path::Path;

use ledger::config::Config;
use libfuzzer_sys::fuzz_target;

const RULES: &str = "version: 1
dq:
  columns: {date: date, factor: string, ret: float, n: int}
  not_null: [date, factor]
  unique_key: [date, factor]
  date: {column: date, sorted: true, max_gap_days: 5}
  ranges: {ret: {min: -1.0, max: 1.0}, n: {min: 0}}
  min_rows: 2
  max_null_fraction: 0.5
  staleness: {max_age_days: 3, as_of: 2026-11-20}
";

fuzz_target!(|data: &[u8]| {
    let Some((&first, csv)) = data.split_first() else {
        return;
    };
    let config = Config::parse(Path::new("ledger.yaml"), RULES).expect("the rules load");
    let whole = ledger::dq::check_reader(
        Cursor::new(csv.to_vec()),
        1 << 20,
        ledger::dq::Threads::Inline,
        "input.csv",
        &config.dq,
        None,
    )
    .expect("reading memory cannot fail");
    let split = ledger::dq::check_reader(
        Cursor::new(csv.to_vec()),
        usize::from(first % 64) + 1,
        ledger::dq::Threads::Inline,
        "input.csv",
        &config.dq,
        None,
    )
    .expect("reading memory cannot fail");
    assert_eq!(whole, split, "the report depends on the read size");
    let cut = ledger::dq::check_bytes(
        csv.to_vec(),
        usize::from(first % 64) + 1,
        ledger::dq::Threads::Inline,
        "input.csv",
        &config.dq,
        None,
    )
    .expect("reading memory cannot fail");
    assert_eq!(whole, cut, "the report depends on cutting in place");
});
