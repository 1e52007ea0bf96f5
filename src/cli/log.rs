use serde::Serialize;

use super::{CliError, Env};
use crate::history::Status;
use crate::index::{Index, LogRow};
use crate::proc::Here;
use crate::store::StoreError;
use crate::workspace::Workspace;

/// List runs, newest first, with their status.
///
/// Examples:
///   ledger log -n 20
///   ledger log --json
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct LogArgs {
    /// Print the runs as JSON.
    #[arg(long)]
    json: bool,
    /// Only the newest N runs.
    #[arg(short = 'n', long, value_name = "N")]
    max_count: Option<usize>,
}

/// Show one run's records, readable.
///
/// RUN is a run id or a tag (the newest run with that tag).
///
/// Example: ledger show committee_2026-11-22_run1 --json
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// Run id or tag.
    run: String,
    /// Print the record payloads as a JSON array.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Line<'r> {
    run_id: &'r str,
    status: Status,
    at: &'r str,
    workflow: &'r str,
    tag: &'r str,
    owner: &'r str,
    code: Option<i32>,
}

fn line(row: &LogRow, status: Status) -> Line<'_> {
    Line {
        run_id: &row.run_id,
        status,
        at: &row.at,
        workflow: &row.workflow,
        tag: &row.tag,
        owner: &row.owner,
        code: row.code,
    }
}

pub fn exec_log(args: LogArgs, env: &Env, out: &mut Vec<u8>) -> Result<i32, CliError> {
    let ws = Workspace::open(&env.cwd)?;
    ws.store.require_tip()?;
    let here = Here::read();
    if args.json {
        let (tip, rows) = crate::index::log_rows(&ws.store)?;
        let lines = rows
            .iter()
            .rev()
            .take(args.max_count.unwrap_or(usize::MAX))
            .map(|r| Ok(line(r, r.status_here(&ws.store, tip, &here)?)))
            .collect::<Result<Vec<Line>, StoreError>>()?;
        super::json(&lines, out);
        return Ok(0);
    }
    let mut text = Vec::new();
    crate::listing::log(&ws.store, &here, &mut text)?;
    let runs = !text.is_empty();
    // One line a run.
    let end = match args.max_count {
        None => text.len(),
        Some(0) => 0,
        Some(n) => memchr::memchr_iter(b'\n', &text)
            .nth(n - 1)
            .map_or(text.len(), |at| at + 1),
    };
    text.truncate(end);
    if !runs {
        out.extend_from_slice(b"no runs yet\n");
    } else if env.color {
        paint_statuses(env, &text, out);
    } else {
        out.append(&mut text);
    }
    Ok(0)
}

/// `text` with each line's status (its first ten bytes) in the status's
/// colour.
fn paint_statuses(env: &Env, text: &[u8], out: &mut Vec<u8>) {
    for line in text.split_inclusive(|&b| b == b'\n') {
        let (status, rest) = line.split_at(line.len().min(10));
        let tone = match std::str::from_utf8(status).map(str::trim_end) {
            Ok("passed") => super::Tone::Good,
            Ok("running") => super::Tone::Pending,
            _ => super::Tone::Bad,
        };
        out.extend_from_slice(env.paint(tone, &String::from_utf8_lossy(status)).as_bytes());
        out.extend_from_slice(rest);
    }
}

pub fn exec_show(args: ShowArgs, env: &Env, out: &mut Vec<u8>) -> Result<i32, CliError> {
    let ws = Workspace::open(&env.cwd)?;
    ws.store.require_tip()?;
    let index = Index::load(&ws.store)?;
    let row = index.find(&args.run).ok_or_else(|| {
        CliError::usage(format!(
            "RUN: no run or tag {:?} in {}",
            args.run, ws.config.ledger.ref_name
        ))
    })?;
    let run = &index.run(&ws.store, row)?;
    if args.json {
        let payloads: Vec<_> = run.records.values().map(|r| &r.payload).collect();
        super::json(&payloads, out);
        return Ok(0);
    }
    let mut text = format!(
        "run {}\nstatus {}\n",
        run.run_id,
        run.status_here(&Here::read()).as_str()
    );
    for r in run.records.values() {
        let p = &r.payload;
        text.push_str(&format!(
            "\n{} {}\n  writer {} seq {} at {}\n",
            p.kind, r.id, p.writer, p.seq, p.at
        ));
        let body =
            serde_json::to_string_pretty(&p.predicate.value()).expect("JSON values serialize");
        for l in body.lines() {
            text.push_str(&format!("  {l}\n"));
        }
    }
    for (file, why) in &run.unreadable {
        text.push_str(&format!("\nunreadable {file}: {why}\n"));
    }
    out.extend_from_slice(text.as_bytes());
    Ok(0)
}
