use std::path::PathBuf;

use super::{CliError, Env};

/// Make a new OpenSSH ed25519 key pair for signing ledger records.
///
/// Writes PATH (private, mode 0600) and PATH.pub, never overwriting, and prints
/// the allowed_signers line that trusts the new key.
///
/// Example: ledger keygen --out ~/.ssh/ledger_ed25519 --principal hui@example.com
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write the private key (the public key goes to PATH.pub).
    #[arg(long, value_name = "PATH")]
    out: PathBuf,
    /// Principal for the allowed_signers line (default: the comment).
    #[arg(long)]
    principal: Option<String>,
    /// Key comment (default: USER@ledger).
    #[arg(long)]
    comment: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub fn exec(args: Args, env: &Env, out: &mut Vec<u8>) -> Result<i32, CliError> {
    let comment = args
        .comment
        .unwrap_or_else(|| format!("{}@ledger", env.user));
    let principal = args.principal.unwrap_or_else(|| comment.clone());
    let path = if args.out.is_absolute() {
        args.out
    } else {
        env.cwd.join(args.out)
    };
    let made = crate::sign::keygen(&path, &comment).map_err(crate::Error::from)?;
    let line = format!("{principal} {}", made.public_openssh);
    if args.json {
        super::json(
            &serde_json::json!({
                "private_key": made.private_path,
                "public_key": made.public_path,
                "fingerprint": made.fingerprint,
                "allowed_signers": line,
            }),
            out,
        );
    } else {
        out.extend_from_slice(
            format!(
                "wrote {} (private, 0600) and {}\nfingerprint {}\nallowed_signers line:\n{line}\n",
                made.private_path.display(),
                made.public_path.display(),
                made.fingerprint
            )
            .as_bytes(),
        );
    }
    Ok(0)
}
