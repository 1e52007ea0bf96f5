//! What `finalize` last wrote into the work tree, by file status, kept in
//! `<git dir>/ledger/written.jsonl`, so that a finalize after one new run
//! need not read back every document to learn that it is already right.
//!
//! A file counts as unchanged, without reading it, when its path, size,
//! modification and change times, device and inode are those recorded right
//! after ledger wrote (or read) it and the content ledger would write has the
//! recorded sha256. Any edit, `touch`, replace or rename changes the change
//! time, which no tool can set back. As in git's index, an entry whose
//! modification time is not older than the cache file itself is "racily
//! clean" (the file may have changed again within the same clock tick) and
//! is read. A cache from another version or another work tree, or one that
//! does not parse, is ignored; `finalize --no-cache` and `finalize --check`
//! never read it.

use std::collections::BTreeMap;
use std::fs::Metadata;
use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::files::FileDigest;

const FORMAT: u32 = 1;
const FILE_NAME: &str = "written.jsonl";
const DOCS_FILE_NAME: &str = "run-docs.jsonl";

/// One file as ledger left it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub path: String,
    pub sha256: String,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    dev: u64,
    ino: u64,
}

impl Entry {
    pub fn new(path: &str, sha256: &str, meta: &Metadata) -> Entry {
        Entry {
            path: path.to_string(),
            sha256: sha256.to_string(),
            size: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }

    fn matches(&self, meta: &Metadata) -> bool {
        meta.file_type().is_file()
            && self.size == meta.len()
            && self.mtime == (meta.mtime(), meta.mtime_nsec())
            && self.ctime == (meta.ctime(), meta.ctime_nsec())
            && self.dev == meta.dev()
            && self.ino == meta.ino()
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    format: u32,
    tool: String,
    root: String,
}

/// The entries of the last save, and the cache file's own modification time.
#[derive(Debug, Default)]
pub struct StatCache {
    entries: BTreeMap<String, Entry>,
    stamp: (i64, i64),
}

impl StatCache {
    fn path(git_dir: &Path) -> PathBuf {
        git_dir.join("ledger").join(FILE_NAME)
    }

    fn header(root: &Path) -> Header {
        Header {
            format: FORMAT,
            tool: env!("CARGO_PKG_VERSION").into(),
            root: root.display().to_string(),
        }
    }

    /// The cache for the work tree `root`, or an empty one.
    pub fn load(git_dir: &Path, root: &Path) -> StatCache {
        Self::read(&Self::path(git_dir), root).unwrap_or_default()
    }

    fn read(path: &Path, root: &Path) -> Option<StatCache> {
        let file = std::fs::File::open(path).ok()?;
        let meta = file.metadata().ok()?;
        let bytes = std::io::read_to_string(file).ok()?;
        let mut lines = bytes.lines();
        let header: Header = serde_json::from_str(lines.next()?).ok()?;
        let want = Self::header(root);
        if (header.format, header.tool, header.root) != (want.format, want.tool, want.root) {
            return None;
        }
        let entries = lines
            .map(|l| {
                serde_json::from_str::<Entry>(l)
                    .ok()
                    .map(|e| (e.path.clone(), e))
            })
            .collect::<Option<BTreeMap<_, _>>>()?;
        Some(StatCache {
            entries,
            stamp: (meta.mtime(), meta.mtime_nsec()),
        })
    }

    /// The entry for `rel` when the file (whose status is `meta`) provably
    /// still holds content with digest `sha256`.
    pub fn unchanged(&self, rel: &str, meta: &Metadata, sha256: &str) -> Option<&Entry> {
        self.entries
            .get(rel)
            .filter(|e| e.sha256 == sha256 && e.matches(meta) && e.mtime < self.stamp)
    }

    /// The entry of `rel`, whatever the file is now.
    pub fn entry(&self, rel: &str) -> Option<&Entry> {
        self.entries.get(rel)
    }

    /// Replaces the cache with `entries` (best effort: a cache that cannot
    /// be written only costs time later).
    pub fn save(git_dir: &Path, root: &Path, entries: &[Entry]) {
        let path = Self::path(git_dir);
        let mut bytes = serde_json::to_vec(&Self::header(root)).expect("a header serializes");
        bytes.push(b'\n');
        for e in entries {
            serde_json::to_writer(&mut bytes, e).expect("an entry serializes");
            bytes.push(b'\n');
        }
        write_atomic(&path, &bytes);
    }
}

/// Each run's documents by the run's document key
/// ([`crate::project::run_key`]), as finalize last wrote them, kept in
/// `<git dir>/ledger/run-docs.jsonl`. Finalize takes a run's documents from
/// here only when [`StatCache`] proves every one of them unchanged on disk.
#[derive(Debug, Default)]
pub struct RunDocs {
    by_key: BTreeMap<String, Vec<FileDigest>>,
}

#[derive(Serialize, Deserialize)]
struct RunDocsLine {
    key: String,
    files: Vec<FileDigest>,
}

impl RunDocs {
    fn path(git_dir: &Path) -> PathBuf {
        git_dir.join("ledger").join(DOCS_FILE_NAME)
    }

    /// The documents for the work tree `root`, or none.
    pub fn load(git_dir: &Path, root: &Path) -> RunDocs {
        Self::read(&Self::path(git_dir), root).unwrap_or_default()
    }

    fn read(path: &Path, root: &Path) -> Option<RunDocs> {
        let bytes = std::fs::read_to_string(path).ok()?;
        let mut lines = bytes.lines();
        let header: Header = serde_json::from_str(lines.next()?).ok()?;
        let want = StatCache::header(root);
        if (header.format, header.tool, header.root) != (want.format, want.tool, want.root) {
            return None;
        }
        let by_key = lines
            .map(|l| {
                serde_json::from_str::<RunDocsLine>(l)
                    .ok()
                    .map(|l| (l.key, l.files))
            })
            .collect::<Option<BTreeMap<_, _>>>()?;
        Some(RunDocs { by_key })
    }

    pub fn get(&self, key: &str) -> Option<&[FileDigest]> {
        self.by_key.get(key).map(Vec::as_slice)
    }

    /// Replaces the cache with the runs of `run_keys` (key, document paths)
    /// whose every document is among `written` (best effort).
    pub fn save(
        git_dir: &Path,
        root: &Path,
        run_keys: &[(String, Vec<String>)],
        written: &[Entry],
    ) {
        let by_path: BTreeMap<&str, &Entry> =
            written.iter().map(|e| (e.path.as_str(), e)).collect();
        let mut bytes = serde_json::to_vec(&StatCache::header(root)).expect("a header serializes");
        bytes.push(b'\n');
        for (key, paths) in run_keys {
            let files: Option<Vec<FileDigest>> = paths
                .iter()
                .map(|p| {
                    by_path.get(p.as_str()).map(|e| FileDigest {
                        path: p.clone(),
                        sha256: e.sha256.clone(),
                        bytes: e.size,
                    })
                })
                .collect();
            if let Some(files) = files {
                let line = RunDocsLine {
                    key: key.clone(),
                    files,
                };
                serde_json::to_writer(&mut bytes, &line).expect("a line serializes");
                bytes.push(b'\n');
            }
        }
        write_atomic(&Self::path(git_dir), &bytes);
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename; failures
/// are ignored (a cache that cannot be written only costs time later).
fn write_atomic(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let written = path
        .parent()
        .map(std::fs::create_dir_all)
        .transpose()
        .and_then(|_| std::fs::File::create(&tmp))
        .and_then(|mut f| f.write_all(bytes))
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}
