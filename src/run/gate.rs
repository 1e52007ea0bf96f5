//! The data-quality gate as a run (and `ledger dq`) performs it: the built-in
//! rules over the CSV, then ledger.yaml `dq.command` if set.

use std::io::Write;
use std::path::Path;

use crate::config::Config;
use crate::dq;
use crate::record::kinds::{DataQualityPredicate, DqCommand};
use crate::Error;

/// Where the external command's output goes.
pub enum Output<'a> {
    /// Into this new file (a run's `data_quality.log`).
    Log(&'a Path),
    /// To ledger's stderr (standalone `ledger dq`).
    Stderr,
}

/// Runs the gate on `csv` (given as `rel` in records).
pub fn check(
    root: &Path,
    config: &Config,
    csv: &Path,
    rel: &str,
    as_of: Option<time::Date>,
    output: Output<'_>,
) -> Result<DataQualityPredicate, Error> {
    let report = dq::check(csv, rel, &config.dq, as_of)
        .map_err(|e| Error::input("--dq-input-csv", format!("{}: {e}", csv.display())))?;
    let command = match &config.dq.command {
        None => None,
        Some(template) => {
            let command =
                template.replace("{input}", &super::shell_quote(&csv.display().to_string()));
            let argv = vec!["sh".to_string(), "-c".to_string(), command.clone()];
            let (exit_code, signal, output_sha256, output_bytes) = match output {
                Output::Log(path) => {
                    let exec = super::child::execute(&argv, &[], root, path, false, 0)
                        .map_err(|e| Error::io(path, e))?;
                    (exec.exit_code, exec.signal, exec.sha256, exec.bytes)
                }
                Output::Stderr => {
                    let out = std::process::Command::new("sh")
                        .arg("-c")
                        .arg(&command)
                        .current_dir(root)
                        .stdin(std::process::Stdio::null())
                        .output()
                        .map_err(|e| Error::input("dq.command", format!("cannot start sh: {e}")))?;
                    let mut err = std::io::stderr();
                    err.write_all(&out.stdout)
                        .and_then(|()| err.write_all(&out.stderr))
                        .ok();
                    let mut all = out.stdout.clone();
                    all.extend_from_slice(&out.stderr);
                    use std::os::unix::process::ExitStatusExt;
                    (
                        out.status.code(),
                        out.status.signal(),
                        crate::record::canon::sha256_hex(&all),
                        all.len() as u64,
                    )
                }
            };
            Some(DqCommand {
                command,
                exit_code,
                signal,
                output_sha256,
                output_bytes,
            })
        }
    };
    let command_passed = command.as_ref().is_none_or(|c| c.exit_code == Some(0));
    Ok(DataQualityPredicate {
        passed: report.passed && command_passed,
        input: report.input,
        rows: report.rows,
        as_of: report.as_of,
        rules: report.rules,
        command,
    })
}

/// One line per rule, for people.
pub fn render(p: &DataQualityPredicate) -> String {
    let mut out = format!(
        "data quality of {} ({} rows, {} bytes, sha256 {}): {}\n",
        p.input.path,
        p.rows,
        p.input.bytes,
        p.input.sha256,
        if p.passed { "passed" } else { "FAILED" }
    );
    for r in &p.rules {
        let lines = if r.first_lines.is_empty() {
            String::new()
        } else {
            format!(
                " at line {}",
                r.first_lines
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let verdict = if r.passed {
            "ok  ".to_string()
        } else {
            format!("FAIL ({} failures{lines})", r.failures)
        };
        out.push_str(&format!("  {verdict} {}: {}\n", r.rule, r.detail));
    }
    if let Some(c) = &p.command {
        let ok = c.exit_code == Some(0);
        out.push_str(&format!(
            "  {} command: {} (exit {})\n",
            if ok { "ok  " } else { "FAIL" },
            c.command,
            c.exit_code.map_or_else(
                || format!("signal {}", c.signal.unwrap_or(0)),
                |c| c.to_string()
            )
        ));
    }
    out
}
