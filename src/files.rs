//! Files of the work tree that runs record by digest: inputs, the freeze file,
//! products. Globs are relative to the repository's top directory and never
//! leave it; only regular files count (no symlinks, nothing under `.git`);
//! the result is sorted, so records never depend on directory order.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::record::canon::hex;

/// A file by path (relative to the repository top, `/`-separated) and content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDigest {
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
}

/// Whether a glob pattern stays inside the tree: relative, no `..`.
pub fn pattern_is_inside(pattern: &str) -> bool {
    !pattern.is_empty()
        && !pattern.starts_with('/')
        && pattern.split('/').all(|c| c != ".." && c != ".git")
}

/// Regular files under `root` matching any of `patterns`, as sorted relative paths.
pub fn expand(root: &Path, patterns: &[String]) -> Vec<String> {
    let base = glob::Pattern::escape(&root.display().to_string());
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    let mut out = Vec::new();
    for pattern in patterns.iter().filter(|p| pattern_is_inside(p)) {
        let Ok(paths) = glob::glob_with(&format!("{base}/{pattern}"), options) else {
            continue;
        };
        for path in paths.flatten() {
            let is_file = std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_file());
            if let (true, Some(rel)) = (is_file, relative(root, &path)) {
                out.push(rel);
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// `path` relative to `root` with `/` separators, if it is inside and not in `.git`.
pub fn relative(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let parts: Vec<String> = rel
        .components()
        .map(|c| match c {
            std::path::Component::Normal(s) => s.to_str().map(str::to_string),
            _ => None,
        })
        .collect::<Option<_>>()?;
    (!parts.is_empty() && parts[0] != ".git").then(|| parts.join("/"))
}

/// Streams a file through SHA-256.
pub fn digest(root: &Path, rel: &str) -> std::io::Result<FileDigest> {
    let (sha256, bytes) = sha256_file(&root.join(rel))?;
    Ok(FileDigest {
        path: rel.to_string(),
        sha256,
        bytes,
    })
}

/// Like [`digest`], but also returns the content when the file is at most
/// `keep_up_to` bytes; the digest is then of exactly those bytes.
pub fn digest_keeping(
    root: &Path,
    rel: &str,
    keep_up_to: u64,
) -> std::io::Result<(FileDigest, Option<Vec<u8>>)> {
    let path = root.join(rel);
    if std::fs::metadata(&path)?.len() <= keep_up_to {
        let bytes = std::fs::read(&path)?;
        if bytes.len() as u64 <= keep_up_to {
            let digest = FileDigest {
                path: rel.to_string(),
                sha256: hex(&Sha256::digest(&bytes)),
                bytes: bytes.len() as u64,
            };
            return Ok((digest, Some(bytes)));
        }
    }
    digest(root, rel).map(|d| (d, None))
}

pub fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok((hex(&hasher.finalize()), bytes))
}

/// The commit a freeze file's name pins: the hex after `_g` in
/// `…_g<7-40 hex>[.ext]`, e.g. `freeze_2026-11-22_g1a2b3c4.json`.
pub fn pinned_commit(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let stem = name.split('.').next().unwrap_or(name);
    stem.rsplit("_g")
        .next()
        .filter(|h| {
            stem.contains("_g")
                && (7..=40).contains(&h.len())
                && h.bytes().all(|b| b.is_ascii_hexdigit())
        })
        .map(str::to_ascii_lowercase)
}

/// Absolute form of `path` given on the command line in `cwd`.
pub fn from_cwd(cwd: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        cwd.join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_stay_inside_and_skip_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("config/a")).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::write(root.join("config/a/s.yaml"), "x").unwrap();
        std::fs::write(root.join("config/t.yaml"), "y").unwrap();
        std::fs::write(root.join(".git/config.yaml"), "z").unwrap();
        std::os::unix::fs::symlink(root.join("config/t.yaml"), root.join("config/link.yaml"))
            .unwrap();
        let got = expand(
            root,
            &[
                "config/**/*.yaml".into(),
                "../*".into(),
                "**/config.yaml".into(),
            ],
        );
        assert_eq!(got, ["config/a/s.yaml", "config/t.yaml"]);
        assert_eq!(digest(root, "config/t.yaml").unwrap().bytes, 1);
    }

    #[test]
    fn freeze_names_pin_commits() {
        assert_eq!(
            pinned_commit(Path::new("freeze_2026-11-22_g1a2b3c4.json")).as_deref(),
            Some("1a2b3c4")
        );
        assert_eq!(
            pinned_commit(Path::new("x/freeze_gABCDEF0123.yaml")).as_deref(),
            Some("abcdef0123")
        );
        assert_eq!(pinned_commit(Path::new("freeze.json")), None);
        assert_eq!(
            pinned_commit(Path::new("freeze_g12.json")),
            None,
            "too short"
        );
        assert_eq!(pinned_commit(Path::new("freeze_gxyz1234.json")), None);
    }
}
