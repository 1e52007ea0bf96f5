//! Files of the work tree that runs record by digest: inputs, the freeze file,
//! products. Globs are relative to the repository's top directory and never
//! leave it; only regular files count (no symbolic link to a file, nothing
//! under `.git`; files in a linked directory do count); the result is
//! sorted, so records never depend on directory order.

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

const MATCH: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

/// Whether a glob can never name a file: it names nothing, or ends in
/// `**`, which matches directories alone.
pub fn matches_no_file(pattern: &str) -> bool {
    pattern
        .split('/')
        .rfind(|c| !c.is_empty() && *c != ".")
        .is_none_or(|last| last == "**")
}

/// Regular files under `root` matching any of `patterns`, as sorted relative
/// paths. Each pattern is walked from its literal leading directories, only
/// as deep as it reaches (without `**`), reading each directory's entries
/// without a `stat` per entry; a large directory's subdirectories are walked
/// on every core. Directories reached through a symbolic link are walked
/// too, except a link back to a directory above it.
pub fn expand(root: &Path, patterns: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for pattern in patterns
        .iter()
        .filter(|p| pattern_is_inside(p) && !matches_no_file(p))
    {
        // `a//b` and `./a` name what `a/b` and `a` name.
        let parts: Vec<&str> = pattern
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        let Ok(matcher) = glob::Pattern::new(&parts.join("/")) else {
            continue;
        };
        let literal = parts
            .iter()
            .take_while(|c| !c.contains(['*', '?', '[']))
            .count()
            .min(parts.len().saturating_sub(1));
        let walk = Walk {
            matcher: &matcher,
            depth: if parts[literal..].contains(&"**") {
                usize::MAX
            } else {
                parts.len() - literal
            },
        };
        // No part is `.git` ([`pattern_is_inside`]); the walk skips the top one.
        walk.top(root, &parts[..literal].join("/"), &mut out);
    }
    out.sort();
    out.dedup();
    out
}

/// One pattern's walk.
struct Walk<'p> {
    matcher: &'p glob::Pattern,
    /// How many levels below the start a match can lie.
    depth: usize,
}

impl Walk<'_> {
    /// Walks `rel` (the start, `""` for the root), its subdirectories on
    /// every core when there are many.
    fn top(&self, root: &Path, rel: &str, out: &mut Vec<String>) {
        use std::os::unix::fs::MetadataExt as _;
        let dir = root.join(rel);
        let Some(meta) = std::fs::metadata(&dir).ok().filter(|m| m.is_dir()) else {
            return;
        };
        let ancestors = vec![(meta.dev(), meta.ino())];
        let subdirs = self.entries(&dir, rel, 1, &ancestors, out);
        let found = crate::par::chunks(&subdirs, 64, |part| {
            let mut found = Vec::new();
            let mut ancestors = ancestors.clone();
            for (sub, id) in part {
                ancestors.push(*id);
                self.dir(root, sub, 2, &mut ancestors, &mut found);
                ancestors.pop();
            }
            found
        });
        out.extend(found.into_iter().flatten());
    }

    /// Walks the directory `rel`, `level` levels below the start; the
    /// last of `ancestors` is its own (device, inode).
    fn dir(
        &self,
        root: &Path,
        rel: &str,
        level: usize,
        ancestors: &mut Vec<(u64, u64)>,
        out: &mut Vec<String>,
    ) {
        for (sub, id) in self.entries(&root.join(rel), rel, level, ancestors, out) {
            ancestors.push(id);
            self.dir(root, &sub, level + 1, ancestors, out);
            ancestors.pop();
        }
    }

    /// Reads one directory: its matching regular files go to `out`; its
    /// subdirectories that a match can lie under come back with their
    /// (device, inode), except links back to one of `ancestors`. A plain
    /// subdirectory's comes from the entry itself, with no `stat`.
    fn entries(
        &self,
        dir: &Path,
        rel: &str,
        level: usize,
        ancestors: &[(u64, u64)],
        out: &mut Vec<String>,
    ) -> Vec<(String, (u64, u64))> {
        use std::os::unix::fs::{DirEntryExt as _, MetadataExt as _};
        let mut subdirs = Vec::new();
        let Ok(read) = std::fs::read_dir(dir) else {
            return subdirs;
        };
        let device = ancestors.last().map_or(0, |a| a.0);
        for entry in read.flatten() {
            let (Ok(kind), Ok(name)) = (entry.file_type(), entry.file_name().into_string()) else {
                continue;
            };
            let path = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            if path == ".git" {
                continue;
            }
            if kind.is_file() {
                if self.matcher.matches_with(&path, MATCH) {
                    out.push(path);
                }
            } else if level >= self.depth {
                continue;
            } else if kind.is_dir() {
                subdirs.push((path, (device, entry.ino())));
            } else if kind.is_symlink() {
                let target = std::fs::metadata(entry.path()).ok().filter(|m| m.is_dir());
                if let Some(id) = target.map(|m| (m.dev(), m.ino())) {
                    if !ancestors.contains(&id) {
                        subdirs.push((path, id));
                    }
                }
            }
        }
        subdirs
    }
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

    /// What the glob crate's own walk finds: the oracle of [`expand`].
    fn expand_by_glob(root: &Path, patterns: &[String]) -> Vec<String> {
        let base = glob::Pattern::escape(&root.display().to_string());
        let mut out = Vec::new();
        for pattern in patterns.iter().filter(|p| pattern_is_inside(p)) {
            for path in glob::glob_with(&format!("{base}/{pattern}"), MATCH)
                .unwrap()
                .flatten()
            {
                let is_file =
                    std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_file());
                if let (true, Some(rel)) = (is_file, relative(root, &path)) {
                    out.push(rel);
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    #[test]
    fn the_walk_finds_what_the_glob_crate_finds() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let files = [
            "strategy.yaml",
            ".hidden.yaml",
            "config/t.yaml",
            "config/.dot/u.yaml",
            "config/a/s.yaml",
            "config/a/b/c/deep.yaml",
            "config/a/b/c/deep.json",
            "data/2026/prices.csv",
            "data/2026/volumes.csv",
            "data/prices.csv",
            "data/x[1].csv",
            "gate_results/r1/production_gates_report.json",
            "gate_results/r2/sub/production_gates_report.json",
            "gate_results/production_gates_report.json",
            "gate_results/r3/other.json",
            "outside/far.csv",
            "sub/.git/inner.yaml",
            ".git/config.yaml",
        ];
        for f in files {
            let path = root.join(f);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, f).unwrap();
        }
        for i in 0..100 {
            let path = root.join(format!(
                "gate_results/many{i:03}/production_gates_report.json"
            ));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "{}").unwrap();
        }
        let link = |target: &str, at: &str| {
            std::os::unix::fs::symlink(root.join(target), root.join(at)).unwrap();
        };
        link("config/t.yaml", "config/link.yaml");
        link("outside", "data/linked");
        link("missing", "data/dangling");
        std::fs::create_dir_all(root.join("empty")).unwrap();
        let patterns = [
            "config/**/*.yaml",
            "config/*.yaml",
            "config/*/*.yaml",
            "*.yaml",
            "**/*.yaml",
            "**/*.csv",
            "data/**",
            "data/**/",
            "data/**/*.csv",
            "data/*/prices.csv",
            "data/prices.csv",
            "./data//prices.csv",
            "data/x[[]1].csv",
            "data/?rices.csv",
            "data/[pv]*.csv",
            "gate_results/**/production_gates_report.json",
            "gate_results/*/production_gates_report.json",
            "**",
            "empty/**",
            "nothing/**/*.csv",
            "strategy.yaml",
            "*",
        ];
        let mut mismatches = Vec::new();
        for pattern in patterns {
            let one = [pattern.to_string()];
            let (ours, oracle) = (expand(root, &one), expand_by_glob(root, &one));
            if ours != oracle {
                mismatches.push(format!("{pattern}: {ours:?} vs {oracle:?}"));
            }
        }
        assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
        let all: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        let got = expand(root, &all);
        assert_eq!(got, expand_by_glob(root, &all));
        assert!(got.contains(&"data/linked/far.csv".to_string()), "{got:?}");
        assert!(!got.iter().any(|p| p.starts_with(".git/")), "{got:?}");
    }

    #[test]
    fn a_link_back_up_the_tree_is_walked_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/x.csv"), "x").unwrap();
        std::os::unix::fs::symlink(root.join("a"), root.join("a/b/up")).unwrap();
        assert_eq!(expand(root, &["**/*.csv".into()]), ["a/b/x.csv"]);
        assert_eq!(expand(root, &["a/**/*.csv".into()]), ["a/b/x.csv"]);
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
