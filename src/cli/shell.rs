//! `ledger completions` and `ledger man`: the CLI describes itself.

use std::path::PathBuf;

use clap::CommandFactory;

use super::{Cli, CliError, Env};

/// Print a shell completion script.
///
/// Examples:
///   ledger completions bash > ~/.local/share/bash-completion/completions/ledger
///   ledger completions zsh > "${fpath[1]}/_ledger"
///   ledger completions fish > ~/.config/fish/completions/ledger.fish
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    shell: Shell,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Shell {
    Bash,
    Zsh,
    Fish,
}

pub fn exec_completions(
    args: CompletionsArgs,
    _env: &Env,
    out: &mut Vec<u8>,
) -> Result<i32, CliError> {
    let mut command = Cli::command();
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut command, "ledger", out);
    Ok(0)
}

/// Print the manual page (roff), or write one page per command.
///
/// Examples:
///   ledger man | man -l -
///   ledger man --dir ~/.local/share/man/man1     # ledger.1, ledger-run.1, ...
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct ManArgs {
    /// Write ledger.1 and ledger-<command>.1 for every command into DIR
    /// (created if missing) instead of printing ledger.1.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

pub fn exec_man(args: ManArgs, env: &Env, out: &mut Vec<u8>) -> Result<i32, CliError> {
    let command = Cli::command();
    let Some(dir) = args.dir else {
        render(&command, "ledger", out)?;
        return Ok(0);
    };
    let dir = crate::files::from_cwd(&env.cwd, &dir);
    let io = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| crate::Error::Io { path, source }
    };
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let mut pages = vec![("ledger".to_string(), command.clone())];
    for sub in command.get_subcommands() {
        let name = format!("ledger-{}", sub.get_name());
        let bin = format!("ledger {}", sub.get_name());
        pages.push((name.clone(), sub.clone().name(name).bin_name(bin)));
    }
    for (title, page) in pages {
        let mut bytes = Vec::new();
        render(&page, &title, &mut bytes)?;
        let file = format!("{title}.1");
        let path = dir.join(&file);
        std::fs::write(&path, bytes).map_err(io(&path))?;
        out.extend_from_slice(format!("wrote {}\n", path.display()).as_bytes());
    }
    Ok(0)
}

fn render(command: &clap::Command, title: &str, out: &mut Vec<u8>) -> Result<(), CliError> {
    clap_mangen::Man::new(command.clone())
        .title(title.to_string())
        .render(out)
        .map_err(|source| {
            CliError::from(crate::Error::Io {
                path: "man page".into(),
                source,
            })
        })
}
