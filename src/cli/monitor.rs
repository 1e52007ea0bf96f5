use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{CliError, Env};
use crate::history::Status;
use crate::index::Index;
use crate::proc::Here;
use crate::status::{human_duration, RunState};
use crate::workspace::Workspace;

/// Watch a run live until it ends; optionally pull and finalize then.
///
/// Polls `ledger status` for the newest run tagged TAG: here, or on the
/// workstation through `ssh HOST ledger status --json --tag TAG` (the ssh
/// program from $LEDGER_SSH, else git's core.sshCommand, else ssh). Prints
/// state changes, the elapsed time and new log lines. Read-only: Ctrl-C stops
/// watching and never touches the run. Exits 0 when the run passed, 1 when it
/// failed, was blocked or aborted.
///
/// Examples:
///   ledger monitor --tag committee_2026-11-22_run1
///   ledger monitor --tag committee_2026-11-22_run1 --host hui@ws1 --remote-dir research \\
///       --interval 30 --then-finalize
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The run's tag.
    #[arg(long, value_name = "TAG")]
    tag: String,
    /// The workstation, as ssh reaches it (USER@HOST).
    #[arg(long, value_name = "USER@HOST")]
    host: Option<String>,
    /// The repository on the workstation (the remote command runs there);
    /// default: the ssh login directory.
    #[arg(long, value_name = "DIR", requires = "host")]
    remote_dir: Option<String>,
    /// Seconds between polls.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    interval: f64,
    /// When the run has ended: `ledger pull` (with --host, until the run's
    /// result has arrived from the workstation's push) and `ledger finalize`.
    #[arg(long)]
    then_finalize: bool,
}

fn poll(args: &Args, ws: &Workspace, env: &Env) -> Result<Vec<RunState>, CliError> {
    match &args.host {
        None => {
            let index = Index::load(&ws.store)?;
            Ok(crate::status::status(
                &ws.root,
                &ws.store,
                &index,
                &Here::read(),
                crate::clock::now()?,
                Some(&args.tag),
                20,
            )?)
        }
        Some(host) => {
            let ssh = env
                .vars
                .get("LEDGER_SSH")
                .filter(|s| !s.is_empty())
                .cloned()
                .or_else(|| ws.store.config_string("core.sshCommand"))
                .unwrap_or_else(|| "ssh".into());
            // ssh joins its arguments into one command for the remote shell.
            let mut remote = format!(
                "ledger status --json --lines 20 --tag {}",
                crate::run::shell_quote(&args.tag)
            );
            if let Some(dir) = &args.remote_dir {
                remote = format!("cd {} && {remote}", crate::run::shell_quote(dir));
            }
            let out = Command::new("sh")
                .arg("-c")
                .arg(format!("{ssh} \"$@\""))
                .arg("ledger-ssh")
                .arg(host)
                .arg(remote)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| CliError::usage(format!("--host: cannot run {ssh}: {e}")))?;
            if !out.status.success() {
                let stderr = String::from_utf8_lossy(&out.stderr);
                if stderr.contains("no run with tag") {
                    return Ok(Vec::new());
                }
                return Err(CliError::usage(format!(
                    "--host {host}: `ledger status` failed: {}",
                    stderr.lines().next().unwrap_or("no output").trim()
                )));
            }
            serde_json::from_slice(&out.stdout).map_err(|e| {
                CliError::usage(format!("--host {host}: unreadable status output: {e}"))
            })
        }
    }
}

pub fn exec(args: Args, env: &Env, out: &mut Vec<u8>) -> Result<i32, CliError> {
    crate::run::check_name("--tag", &args.tag)?;
    if !(args.interval.is_finite() && args.interval > 0.0) {
        return Err(CliError::usage(
            "--interval: must be a positive number of seconds",
        ));
    }
    let ws = Workspace::open(&env.cwd)?;
    let mut stdout = std::io::stdout().lock();
    let mut last_status: Option<(String, Status)> = None;
    let mut shown: Vec<String> = Vec::new();
    let mut waiting_said = false;
    let ended = loop {
        let states = poll(&args, &ws, env)?;
        match states.last() {
            None => {
                if !waiting_said {
                    writeln!(stdout, "monitor: waiting for a run tagged {}", args.tag).ok();
                    waiting_said = true;
                }
            }
            Some(s) => {
                let key = (s.run_id.clone(), s.status);
                if last_status.as_ref() != Some(&key) {
                    if last_status.as_ref().map(|(r, _)| r) != Some(&s.run_id) {
                        shown.clear();
                    }
                    let elapsed = s.elapsed_seconds.map(human_duration).unwrap_or_default();
                    writeln!(stdout, "{:<10} {}  {elapsed}", s.status.as_str(), s.run_id).ok();
                    last_status = Some(key);
                }
                // New log lines: those after the longest overlap with what was shown.
                let overlap = (0..=s.log_tail.len().min(shown.len()))
                    .rev()
                    .find(|&k| shown.ends_with(&s.log_tail[..k]))
                    .unwrap_or(0);
                for line in &s.log_tail[overlap..] {
                    writeln!(stdout, "  | {line}").ok();
                    shown.push(line.clone());
                }
                if s.status != Status::Running {
                    break s.clone();
                }
            }
        }
        stdout.flush().ok();
        std::thread::sleep(Duration::from_secs_f64(args.interval));
    };
    let elapsed = ended
        .elapsed_seconds
        .map(human_duration)
        .unwrap_or_default();
    writeln!(
        stdout,
        "monitor: run {} ended: {}{}",
        ended.run_id,
        ended.status.as_str(),
        ended
            .code
            .map(|c| format!(", exit {c} after {elapsed}"))
            .unwrap_or_default()
    )
    .ok();
    for p in &ended.leftover_processes {
        writeln!(
            stdout,
            "monitor: leftover process (terminated by ledger): {p}"
        )
        .ok();
    }
    stdout.flush().ok();
    drop(stdout);
    let code = if ended.status == Status::Passed { 0 } else { 1 };
    if args.then_finalize {
        if ended.leftover_processes.is_empty() {
            writeln!(std::io::stdout(), "monitor: no leftover process remains").ok();
        }
        if args.host.is_some() {
            // The workstation pushes after its run; pull until the result is here.
            loop {
                let mut pulled = Vec::new();
                let code = super::sync::exec_pull(
                    super::sync::PullArgs::default_for(None),
                    env,
                    &mut pulled,
                )?;
                out.extend_from_slice(&pulled);
                if code != 0 {
                    return Ok(code);
                }
                let index = Index::load(&Workspace::open(&env.cwd)?.store)?;
                // A run has ended_at once its result is recorded.
                let arrived = index
                    .rows
                    .iter()
                    .any(|r| r.run_id() == ended.run_id && r.state.ended_at.is_some());
                if arrived {
                    break;
                }
                writeln!(
                    std::io::stdout(),
                    "monitor: waiting for the workstation to push run {}",
                    ended.run_id
                )
                .ok();
                std::thread::sleep(Duration::from_secs_f64(args.interval));
            }
        }
        super::finalize::exec(super::finalize::Args::default_run(), env, out)?;
    }
    Ok(code)
}
