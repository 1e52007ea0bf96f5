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
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::files::FileDigest;

const FORMAT: u32 = 1;
const FILE_NAME: &str = "written.jsonl";
const DOCS_FILE_NAME: &str = "run-docs.jsonl";
const ENTRIES_FILE_NAME: &str = "entries.jsonl";

/// A SHA-256 as its 32 bytes, written as lowercase hex: a cache of
/// 600,000 files holds it in a third of the room of its text.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Sha256([u8; 32]);

impl Sha256 {
    /// The digest named by 64 lowercase hex digits, else `None`.
    pub fn from_hex(hex: &str) -> Option<Sha256> {
        let mut out = [0u8; 32];
        let lower = hex.len() == 64 && !hex.bytes().any(|b| b.is_ascii_uppercase());
        lower.then_some(())?;
        faster_hex::hex_decode(hex.as_bytes(), &mut out).ok()?;
        Some(Sha256(out))
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Sha256 {
        use sha2::Digest as _;
        Sha256(sha2::Sha256::digest(bytes).into())
    }

    pub fn to_hex(self) -> String {
        faster_hex::hex_string(&self.0)
    }
}

impl std::fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Sha256 {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut text = [0u8; 64];
        let hex = faster_hex::hex_encode(&self.0, &mut text).expect("64 bytes hold 32 in hex");
        serializer.serialize_str(hex)
    }
}

impl<'de> Deserialize<'de> for Sha256 {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Sha256, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Sha256::from_hex(&text)
            .ok_or_else(|| serde::de::Error::custom("a SHA-256 is 64 lowercase hex digits"))
    }
}

/// One file as ledger left it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub path: String,
    pub sha256: Sha256,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    dev: u64,
    ino: u64,
}

/// An [`Entry`] without its path and digest, for holders that keep those
/// already (finalize's list of the files it wrote).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    dev: u64,
    ino: u64,
}

impl Entry {
    pub fn new(path: &str, sha256: Sha256, meta: &Metadata) -> Entry {
        Entry {
            path: path.to_string(),
            sha256,
            size: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }

    pub fn with(path: String, sha256: Sha256, stat: Stat) -> Entry {
        let Stat {
            size,
            mtime,
            ctime,
            dev,
            ino,
        } = stat;
        Entry {
            path,
            sha256,
            size,
            mtime,
            ctime,
            dev,
            ino,
        }
    }

    pub fn stat(&self) -> Stat {
        Stat {
            size: self.size,
            mtime: self.mtime,
            ctime: self.ctime,
            dev: self.dev,
            ino: self.ino,
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
    /// Sorted by path.
    entries: Vec<Entry>,
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
        let (meta, mut entries) = read_for::<Entry>(path, root)?;
        entries.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        Some(StatCache {
            entries,
            stamp: (meta.mtime(), meta.mtime_nsec()),
        })
    }

    /// The entry for `rel` when the file (whose status is `meta`) provably
    /// still holds content with digest `sha256`.
    pub fn unchanged(&self, rel: &str, meta: &Metadata, sha256: Sha256) -> Option<&Entry> {
        self.entry(rel)
            .filter(|e| e.sha256 == sha256 && e.matches(meta) && e.mtime < self.stamp)
    }

    /// The entry of `rel`, whatever the file is now.
    pub fn entry(&self, rel: &str) -> Option<&Entry> {
        let at = self
            .entries
            .binary_search_by(|e| e.path.as_str().cmp(rel))
            .ok()?;
        Some(&self.entries[at])
    }

    /// Replaces the cache with `entries` (best effort: a cache that cannot
    /// be written only costs time later).
    pub fn save(git_dir: &Path, root: &Path, entries: &[Entry]) {
        crate::cache_file::write(&Self::path(git_dir), &Self::header(root), entries);
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
        let (_, lines) = read_for::<RunDocsLine>(path, root)?;
        Some(RunDocs {
            by_key: lines.into_iter().map(|l| (l.key, l.files)).collect(),
        })
    }

    /// The documents of `key`, taken out of the cache (a large ledger's
    /// documents are then held once, by whoever took them).
    pub fn take(&mut self, key: &str) -> Option<Vec<FileDigest>> {
        self.by_key.remove(key)
    }

    /// Replaces the cache with the runs of `runs` (key, document paths)
    /// whose every document is among `written` (best effort).
    pub fn save<'r>(
        git_dir: &Path,
        root: &Path,
        runs: impl Iterator<Item = (&'r str, &'r crate::project::Paths)>,
        written: &[Entry],
    ) {
        let by_path: BTreeMap<&str, &Entry> =
            written.iter().map(|e| (e.path.as_str(), e)).collect();
        let lines = runs.filter_map(|(key, paths)| {
            let files = paths
                .all()
                .map(|p| {
                    by_path.get(p.as_str()).map(|e| FileDigest {
                        path: p.clone(),
                        sha256: e.sha256.to_hex(),
                        bytes: e.size,
                    })
                })
                .collect::<Option<Vec<FileDigest>>>()?;
            Some(RunDocsLine {
                key: key.to_string(),
                files,
            })
        });
        crate::cache_file::write(&Self::path(git_dir), &StatCache::header(root), lines);
    }
}

/// Each run's [`crate::project::Entry`] by its key, as finalize last made
/// them, kept in `<git dir>/ledger/entries.jsonl` (one line each, with the
/// SHA-256 of the entry's text, so that a line damaged on disk is
/// refused). With it, finalize after one new run reads that run alone in
/// its first pass. The key covers everything an entry is made from
/// ([`crate::project::KnownEntries`]); a file from another version, another
/// work tree or with any line that fails is ignored as a whole.
#[derive(Debug, Default)]
pub struct Entries {
    /// Sorted by key; an entry taken leaves `None`.
    by_key: Vec<(String, Option<crate::project::Entry>)>,
}

#[derive(Serialize)]
struct EntryLine<'e> {
    key: &'e str,
    sha256: String,
    /// The entry's text as hashed, written as it is.
    entry: Box<serde_json::value::RawValue>,
}

#[derive(Deserialize)]
struct EntryLineRead<'e> {
    key: String,
    sha256: &'e str,
    #[serde(borrow)]
    entry: &'e serde_json::value::RawValue,
}

impl Entries {
    fn path(git_dir: &Path) -> PathBuf {
        git_dir.join("ledger").join(ENTRIES_FILE_NAME)
    }

    /// The entries kept for the work tree `root`, or none.
    pub fn load(git_dir: &Path, root: &Path) -> Entries {
        let parse = |line: &str| {
            let read: EntryLineRead<'_> = serde_json::from_str(line).ok()?;
            let text = read.entry.get();
            if crate::record::canon::sha256_hex(text.as_bytes()) != read.sha256 {
                return None;
            }
            Some((read.key, Some(serde_json::from_str(text).ok()?)))
        };
        let Some((_, mut by_key)) = read_for_with(&Self::path(git_dir), root, parse) else {
            return Entries::default();
        };
        by_key.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Entries { by_key }
    }

    /// The entry of `key`, taken out of the cache.
    pub fn take(&mut self, key: &str) -> Option<crate::project::Entry> {
        let at = self
            .by_key
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()?;
        self.by_key[at].1.take()
    }

    /// Replaces the cache with the entries of `entries` that have a key
    /// (best effort).
    pub fn save(git_dir: &Path, root: &Path, entries: &[crate::project::Entry]) {
        let rows = entries.iter().filter_map(|e| {
            let key = e.key.as_deref()?;
            let text = serde_json::to_string(e).ok()?;
            let sha256 = crate::record::canon::sha256_hex(text.as_bytes());
            let entry = serde_json::value::RawValue::from_string(text).ok()?;
            Some(EntryLine { key, sha256, entry })
        });
        crate::cache_file::write(&Self::path(git_dir), &StatCache::header(root), rows);
    }
}

/// The rows of a cache file written for the work tree `root` by this ledger.
fn read_for<R: serde::de::DeserializeOwned>(
    path: &Path,
    root: &Path,
) -> Option<(Metadata, Vec<R>)> {
    read_for_with(path, root, |line| serde_json::from_str(line).ok())
}

/// [`read_for`] with each row made by `row` ([`crate::cache_file::read_with`]).
fn read_for_with<R>(
    path: &Path,
    root: &Path,
    row: impl FnMut(&str) -> Option<R>,
) -> Option<(Metadata, Vec<R>)> {
    let (meta, header, rows) = crate::cache_file::read_with::<Header, R>(path, row)?;
    let want = StatCache::header(root);
    ((header.format, header.tool, header.root) == (want.format, want.tool, want.root))
        .then_some((meta, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_reads_back_as_the_hex_it_was_written_as() {
        let hex = crate::record::canon::sha256_hex(b"ledger");
        let digest = Sha256::from_hex(&hex).expect("lowercase hex of 32 bytes");
        assert_eq!(digest, Sha256::of(b"ledger"));
        assert_eq!(digest.to_hex(), hex);
        let json = serde_json::to_string(&digest).unwrap();
        assert_eq!(json, format!("\"{hex}\""));
        assert_eq!(serde_json::from_str::<Sha256>(&json).unwrap(), digest);
    }

    #[test]
    fn only_64_lowercase_hex_digits_name_a_digest() {
        let hex = crate::record::canon::sha256_hex(b"ledger");
        assert!(Sha256::from_hex(&hex.to_uppercase()).is_none());
        assert!(Sha256::from_hex(&hex[..62]).is_none());
        assert!(Sha256::from_hex(&format!("{hex}00")).is_none());
        assert!(Sha256::from_hex(&format!("{}g", &hex[..63])).is_none());
        assert!(serde_json::from_str::<Sha256>("\"abc\"").is_err());
    }
}
