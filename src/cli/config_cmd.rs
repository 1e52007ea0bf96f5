use std::path::PathBuf;

use super::{CliError, Env};

/// Work with ledger.yaml.
///
/// Example: ledger config check     # every problem, with line and column
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    Check(CheckArgs),
}

/// Report every problem of ledger.yaml, each with its line and column.
///
/// Checks YAML syntax, the JSON Schema of ledger.yaml (unknown keys, wrong
/// types; the same schema editors use through the yaml-language-server line
/// at the top of the template) and what only ledger can check (git ref
/// names, paths inside the repository, JSON pointers). Exits 0 when there
/// is nothing to report, 1 otherwise.
///
/// Examples:
///   ledger config check
///   ledger config check --file other/ledger.yaml --json
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
struct CheckArgs {
    /// The file (default: ledger.yaml at the top of this repository).
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// Print the problems as JSON.
    #[arg(long)]
    json: bool,
}

pub fn exec(args: Args, env: &Env, out: &mut Vec<u8>) -> Result<i32, CliError> {
    let Sub::Check(args) = args.command;
    let path = match args.file {
        Some(f) => crate::files::from_cwd(&env.cwd, &f),
        None => {
            let repo = crate::store::discover(&env.cwd)?;
            let root = repo
                .workdir()
                .map(std::path::Path::to_path_buf)
                .ok_or_else(|| CliError::usage("config check: no work tree here; pass --file"))?;
            root.join(crate::config::FILE_NAME)
        }
    };
    let problems = crate::config_check::check(&path)?;
    let shown = path.display().to_string();
    if args.json {
        super::json(
            &serde_json::json!({ "file": shown, "ok": problems.is_empty(), "problems": problems }),
            out,
        );
    } else {
        for p in &problems {
            let field = if p.field.is_empty() {
                String::new()
            } else {
                format!(" {}:", p.field)
            };
            out.extend_from_slice(
                format!("{shown}:{}:{}:{field} {}\n", p.line, p.column, p.message).as_bytes(),
            );
        }
        out.extend_from_slice(
            match problems.len() {
                0 => format!("{shown}: ok\n"),
                1 => format!("{shown}: 1 problem\n"),
                n => format!("{shown}: {n} problems\n"),
            }
            .as_bytes(),
        );
    }
    Ok(if problems.is_empty() { 0 } else { 1 })
}
