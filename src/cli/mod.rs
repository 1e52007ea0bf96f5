//! The command line: parses, gathers the environment, calls the library and
//! renders. The only code that prints, reads the environment or picks exit codes.

mod config_cmd;
mod decide;
mod demo;
mod dq;
mod error;
mod export;
mod finalize;
mod generate;
mod init;
mod keygen;
mod log;
mod monitor;
mod preflight;
mod recover;
mod report;
mod run;
mod shell;
mod status;
mod sync;
mod verify;

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use error::CliError;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  a check failed (verify found a problem, preflight or DQ blocked a run,
     finalize --check found a difference)
  2  usage or input error (bad flag, file or field; the ledger is left unchanged)
  N  `ledger run` exits with its command's code, or 128+signal when it was killed";

/// A git-native, signed, append-only audit ledger for heavy research runs.
///
/// `ledger run` records preflight, context, command, log digest and result as
/// ed25519-signed, content-addressed records on a dedicated git ref
/// (refs/heads/ledger); `ledger verify` checks every signature and hash offline
/// against an allowed_signers file. Your branch, index and working tree are
/// never written, except the human copies under audit/.
#[derive(Debug, Parser)]
#[command(name = "ledger", version, after_help = EXIT_CODES, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Demo(demo::Args),
    Init(init::Args),
    Keygen(keygen::Args),
    Preflight(preflight::Args),
    Dq(dq::Args),
    Run(run::Args),
    Verify(verify::Args),
    Log(log::LogArgs),
    Show(log::ShowArgs),
    Status(status::Args),
    Monitor(monitor::Args),
    Pull(sync::PullArgs),
    Push(sync::PushArgs),
    Recover(recover::Args),
    Finalize(finalize::Args),
    Decide(decide::Args),
    Export(export::Args),
    Report(report::Args),
    Config(config_cmd::Args),
    Generate(generate::Args),
    Completions(shell::CompletionsArgs),
    Man(shell::ManArgs),
}

/// What the commands read from the process environment.
pub(crate) struct Env {
    pub cwd: PathBuf,
    pub home: Option<PathBuf>,
    pub ledger_key: Option<PathBuf>,
    pub user: String,
    /// The whole environment; commands record only allow-listed parts of it.
    pub vars: std::collections::BTreeMap<String, String>,
    /// Colour on standard output: a terminal, `NO_COLOR` unset and `TERM`
    /// not `dumb`.
    pub color: bool,
}

/// What an output word means, for its colour.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Tone {
    Good,
    Bad,
    Pending,
}

impl Env {
    /// `text` in the tone's colour when colour is on, else as it is.
    pub fn paint(&self, tone: Tone, text: &str) -> String {
        if !self.color {
            return text.to_string();
        }
        let code = match tone {
            Tone::Good => "32",
            Tone::Bad => "31",
            Tone::Pending => "33",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }
}

impl Env {
    #[allow(clippy::disallowed_methods)] // the CLI is where the environment is read
    fn read() -> Result<Env, CliError> {
        use std::io::IsTerminal;
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        if std::io::stderr().is_terminal() {
            crate::progress::enable();
        }
        let color = std::io::stdout().is_terminal()
            && var("NO_COLOR").is_none()
            && var("TERM").is_none_or(|t| t != "dumb");
        Ok(Env {
            color,
            cwd: std::env::current_dir()
                .map_err(|e| CliError::usage(format!("cannot read the current directory: {e}")))?,
            home: var("HOME").map(PathBuf::from),
            ledger_key: var("LEDGER_KEY").map(PathBuf::from),
            user: var("USER")
                .or_else(|| var("LOGNAME"))
                .map_or_else(|| "unknown".into(), |v| v.to_string_lossy().into_owned()),
            vars: std::env::vars_os()
                .map(|(k, v)| {
                    (
                        k.to_string_lossy().into_owned(),
                        v.to_string_lossy().into_owned(),
                    )
                })
                .collect(),
        })
    }
}

/// Runs the CLI and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            e.print().ok();
            return code;
        }
    };
    let mut out = Vec::new();
    let result = Env::read().and_then(|env| dispatch(cli.command, &env, &mut out));
    // Output is written once; a closed pipe (`ledger log | head`) is not an error.
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&out).and_then(|()| stdout.flush()).ok();
    match result {
        Ok(code) => code,
        Err(e) => {
            e.print();
            e.code
        }
    }
}

fn dispatch(command: Command, env: &Env, out: &mut Vec<u8>) -> Result<i32, CliError> {
    match command {
        Command::Demo(a) => demo::exec(a, env, out),
        Command::Init(a) => init::exec(a, env, out),
        Command::Keygen(a) => keygen::exec(a, env, out),
        Command::Preflight(a) => preflight::exec(a, env, out),
        Command::Dq(a) => dq::exec(a, env, out),
        Command::Run(a) => run::exec(a, env, out),
        Command::Verify(a) => verify::exec(a, env, out),
        Command::Log(a) => log::exec_log(a, env, out),
        Command::Show(a) => log::exec_show(a, env, out),
        Command::Status(a) => status::exec(a, env, out),
        Command::Monitor(a) => monitor::exec(a, env, out),
        Command::Pull(a) => sync::exec_pull(a, env, out),
        Command::Push(a) => sync::exec_push(a, env, out),
        Command::Recover(a) => recover::exec(a, env, out),
        Command::Finalize(a) => finalize::exec(a, env, out),
        Command::Decide(a) => decide::exec(a, env, out),
        Command::Export(a) => export::exec(a, env, out),
        Command::Report(a) => report::exec(a, env, out),
        Command::Config(a) => config_cmd::exec(a, env, out),
        Command::Generate(a) => generate::exec(a, env, out),
        Command::Completions(a) => shell::exec_completions(a, env, out),
        Command::Man(a) => shell::exec_man(a, env, out),
    }
}

/// `--trust` and `--key`, for commands that verify and sign.
#[derive(Debug, clap::Args)]
pub(crate) struct TrustKey {
    /// allowed_signers file to trust (default: ledger.yaml trust.allowed_signers).
    #[arg(long, value_name = "FILE")]
    pub trust: Option<PathBuf>,
    /// Signing key (default: $LEDGER_KEY, ledger.yaml signing.key, git's user.signingkey).
    #[arg(long, value_name = "PATH")]
    pub key: Option<PathBuf>,
}

impl TrustKey {
    /// The signing key (as [`resolve_key`] finds it) and the identity its
    /// commits carry.
    pub fn signer(
        &self,
        ws: &crate::workspace::Workspace,
        env: &Env,
    ) -> Result<(crate::sign::Signer, crate::store::Identity), crate::Error> {
        let signer = resolve_key(self.key.clone(), Some(&ws.config), &ws.store, &ws.root, env)?;
        let identity = identity(&ws.store, &signer);
        Ok((signer, identity))
    }
}

/// The writers' trust file (`--trust`, relative to the working directory,
/// else ledger.yaml `trust.allowed_signers`) and the committee file
/// (ledger.yaml `committee.allowed_signers`, when set).
pub(crate) fn load_trust(
    flag: Option<PathBuf>,
    ws: &crate::workspace::Workspace,
    env: &Env,
) -> Result<crate::trust::Trust, CliError> {
    let load =
        |path: &std::path::Path| crate::trust::TrustFile::load(path).map_err(crate::Error::from);
    let writers = match flag {
        Some(p) if p.is_absolute() => load(&p)?,
        Some(p) => load(&env.cwd.join(p))?,
        None if ws.is_bare() => committed_trust(ws, &ws.config.trust.allowed_signers)?,
        None => load(&ws.trust_path())?,
    };
    let committee = match &ws.config.committee.allowed_signers {
        None => None,
        Some(rel) if ws.is_bare() => Some(committed_trust(ws, rel)?),
        Some(_) => ws.committee_path().as_deref().map(load).transpose()?,
    };
    Ok(crate::trust::Trust { writers, committee })
}

/// A trust file of a bare repository, from HEAD's commit as a checkout
/// would have it; named in documents by its path in the checkout.
fn committed_trust(
    ws: &crate::workspace::Workspace,
    rel: &str,
) -> Result<crate::trust::TrustFile, crate::Error> {
    let shown = ws.shown_path(rel);
    let unreadable = |source: std::io::Error| crate::trust::TrustError::Unreadable {
        path: shown.clone(),
        source,
    };
    let bytes = ws.read_checked_in(rel)?.ok_or_else(|| {
        unreadable(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "not committed on HEAD; pass --trust FILE",
        ))
    })?;
    let text = String::from_utf8(bytes)
        .map_err(|e| unreadable(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
    let mut file = crate::trust::TrustFile::parse(&shown, &text)?;
    file.path = ws.root.join(rel);
    Ok(file)
}

/// Expands a leading `~/` with the home directory.
pub(crate) fn expand_home(path: &str, env: &Env) -> PathBuf {
    match (path.strip_prefix("~/"), &env.home) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => PathBuf::from(path),
    }
}

/// The signing key: `--key`, else `LEDGER_KEY`, else ledger.yaml
/// `signing.key`, else git's `user.signingkey` when it names a key file.
pub(crate) fn resolve_key(
    flag: Option<PathBuf>,
    config: Option<&crate::config::Config>,
    store: &crate::store::Store,
    root: &std::path::Path,
    env: &Env,
) -> Result<crate::sign::Signer, crate::Error> {
    let from_config = config
        .and_then(|c| c.signing.key.as_deref())
        .map(|k| root.join(expand_home(k, env)));
    let from_git = store
        .config_string("user.signingkey")
        .filter(|k| !k.starts_with("key::"))
        .map(|k| expand_home(&k, env))
        .filter(|p| p.exists());
    let path = flag
        .or_else(|| env.ledger_key.clone())
        .or(from_config)
        .or(from_git)
        .ok_or(crate::sign::KeyError::NoneConfigured)?;
    Ok(crate::sign::Signer::load(&path)?)
}

/// Who ledger commits are by: git's user.name / user.email, else `ledger`.
pub(crate) fn identity(
    store: &crate::store::Store,
    signer: &crate::sign::Signer,
) -> crate::store::Identity {
    crate::store::Identity {
        name: store
            .config_string("user.name")
            .unwrap_or_else(|| "ledger".into()),
        email: store.config_string("user.email").unwrap_or_else(|| {
            format!(
                "{}@ledger.invalid",
                signer
                    .fingerprint()
                    .trim_start_matches("SHA256:")
                    .replace(['/', '+'], "_")
            )
        }),
    }
}

/// Parses a `YYYY-MM-DD` flag value.
pub(crate) fn parse_date(text: &str) -> Result<time::Date, String> {
    crate::dq::parse_date(text.as_bytes())
        .ok_or_else(|| format!("{text:?} is not a date YYYY-MM-DD"))
}

/// Pretty JSON for `--json` outputs, with a final newline.
pub(crate) fn json<T: serde::Serialize>(value: &T, out: &mut Vec<u8>) {
    serde_json::to_writer_pretty(&mut *out, value).expect("outputs serialize");
    out.push(b'\n');
}
