//! The git binary, for what the library does not do through gix: pushing,
//! committing on the user's branch (hooks, index), and local config.

use std::path::Path;

use crate::Error;

/// Runs `git -C root ARGS` and returns its standard output; a failure is an
/// input error naming the git command and git's own message.
pub fn git(root: &Path, args: &[&str]) -> Result<String, Error> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|source| Error::Io {
            path: "git".into(),
            source,
        })?;
    if !out.status.success() {
        return Err(Error::input(
            format!("git {}", args.first().copied().unwrap_or("")),
            String::from_utf8_lossy(&out.stderr)
                .trim()
                .replace('\n', "; "),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
