use std::path::PathBuf;

use super::{CliError, Env};
use crate::config::{self, Config};
use crate::store::{self, Store, StoreError};
use crate::trust::TrustFile;

/// Set up the ledger in this git repository.
///
/// Writes ledger.yaml from the built-in template (unless one exists), adds the
/// signing key to the trust file (trust.allowed_signers), and creates the ledger
/// ref with a signed genesis commit. Safe to run again: what exists is kept.
/// With a remote configured, prints the refspec that lets plain git fetch the
/// ledger too.
///
/// Examples:
///   ledger init --key ~/.ssh/ledger_ed25519 --principal hui@example.com
///   ledger init --git-config     # then: git log --show-signature ledger
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Signing key (default: $LEDGER_KEY, ledger.yaml signing.key, git's user.signingkey).
    #[arg(long, value_name = "PATH")]
    key: Option<PathBuf>,
    /// Principal for the trust file line (default: git's user.email, else "ledger").
    #[arg(long)]
    principal: Option<String>,
    /// Also set this repository's gpg.ssh.allowedSignersFile to the trust
    /// file, so `git log --show-signature` and `git verify-commit` check
    /// ledger commits with no extra flags.
    #[arg(long)]
    git_config: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub fn exec(args: Args, env: &Env, out: &mut Vec<u8>) -> Result<i32, CliError> {
    let repo = store::discover(&env.cwd)?;
    let Some(root) = repo.workdir().map(|p| p.to_path_buf()) else {
        return Err(StoreError::Bare {
            path: repo.git_dir().to_path_buf(),
        }
        .into());
    };
    let config_path = root.join(config::FILE_NAME);
    let (config, write_config) = if config_path.exists() {
        (
            Config::load(&config_path).map_err(crate::Error::from)?,
            false,
        )
    } else {
        (
            Config::parse(&config_path, config::TEMPLATE).map_err(crate::Error::from)?,
            true,
        )
    };
    let store = Store::new(repo, &config.ledger.ref_name);
    let signer = super::resolve_key(args.key, Some(&config), &store, &root, env)?;
    let trust_path = root.join(&config.trust.allowed_signers);
    let trust = if trust_path.exists() {
        Some(TrustFile::load(&trust_path).map_err(crate::Error::from)?)
    } else {
        None
    };
    let principal = args
        .principal
        .or_else(|| store.config_string("user.email"))
        .unwrap_or_else(|| "ledger".into());
    let trust_line = format!("{principal} {}", signer.public_openssh());
    let tip = store.tip()?;

    // Checks are done; now write.
    let mut did = Vec::new();
    if write_config {
        std::fs::write(&config_path, config::TEMPLATE)
            .map_err(|e| crate::Error::io(&config_path, e))?;
        did.push(format!("wrote {}", config::FILE_NAME));
    }
    if !trust
        .as_ref()
        .is_some_and(|t| t.lists(signer.fingerprint()))
    {
        if let Some(dir) = trust_path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| crate::Error::io(dir, e))?;
        }
        let mut text = std::fs::read_to_string(&trust_path).unwrap_or_default();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&trust_line);
        text.push('\n');
        std::fs::write(&trust_path, text).map_err(|e| crate::Error::io(&trust_path, e))?;
        did.push(format!(
            "trusted {} in {}",
            signer.fingerprint(),
            config.trust.allowed_signers
        ));
    }
    if args.git_config {
        let path = trust_path.display().to_string();
        let current = crate::gitcli::git(
            &root,
            &["config", "--local", "--get", "gpg.ssh.allowedSignersFile"],
        )
        .unwrap_or_default();
        if current.trim() != path {
            crate::gitcli::git(
                &root,
                &["config", "--local", "gpg.ssh.allowedSignersFile", &path],
            )?;
            did.push(format!("set git config gpg.ssh.allowedSignersFile {path}"));
        }
    }
    let remotes: Vec<String> = crate::gitcli::git(&root, &["remote"])
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    let short = config
        .ledger
        .ref_name
        .strip_prefix("refs/heads/")
        .unwrap_or(&config.ledger.ref_name)
        .to_string();
    let refspecs: Vec<(String, String)> = remotes
        .iter()
        .map(|r| {
            (
                r.clone(),
                format!("+{}:refs/remotes/{r}/{short}", config.ledger.ref_name),
            )
        })
        .collect();
    // Editors validate ledger.yaml against this copy (the template's
    // yaml-language-server line names it); kept current with the binary.
    let schema_path = root.join(config::SCHEMA_COPY);
    if std::fs::read_to_string(&schema_path).ok().as_deref() != Some(config::SCHEMA) {
        if let Some(dir) = schema_path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| crate::Error::io(dir, e))?;
        }
        std::fs::write(&schema_path, config::SCHEMA)
            .map_err(|e| crate::Error::io(&schema_path, e))?;
        did.push(format!("wrote {} (for editors)", config::SCHEMA_COPY));
    }
    let genesis = match tip {
        Some(tip) => tip,
        None => {
            let identity = super::identity(&store, &signer);
            let sign = |bytes: &[u8]| signer.sign_commit(bytes);
            let id = store.init(&identity, crate::clock::now()?, &sign)?;
            did.push(format!(
                "created {} at {id} (signed genesis)",
                config.ledger.ref_name
            ));
            id
        }
    };
    if args.json {
        super::json(
            &serde_json::json!({
                "ref": config.ledger.ref_name,
                "head": genesis.to_string(),
                "signer": signer.fingerprint(),
                "trust_file": config.trust.allowed_signers,
                "changes": did,
                "remote_refspecs": refspecs
                    .iter()
                    .map(|(r, spec)| serde_json::json!({"remote": r, "refspec": spec}))
                    .collect::<Vec<_>>(),
            }),
            out,
        );
    } else {
        if did.is_empty() {
            did.push(format!(
                "already initialised: {} at {genesis}",
                config.ledger.ref_name
            ));
        }
        for line in &did {
            out.extend_from_slice(format!("{line}\n").as_bytes());
        }
        out.extend_from_slice(b"next: ledger run --workflow W --tag T --owner NAME -- COMMAND\n");
        if !args.git_config {
            out.extend_from_slice(
                format!(
                    "git can check ledger commits too: git -c gpg.ssh.allowedSignersFile={} log --show-signature {} (or ledger init --git-config)\n",
                    config.trust.allowed_signers, config.ledger.ref_name
                )
                .as_bytes(),
            );
        }
        for (remote, spec) in &refspecs {
            out.extend_from_slice(
                format!(
                    "remote {remote}: ledger push/pull {remote} sync the ledger; for plain git fetch too: git config --add remote.{remote}.fetch {spec}\n"
                )
                .as_bytes(),
            );
        }
    }
    Ok(0)
}
