//! Writing projection files into the work tree and nowhere else. A file's
//! path must be a plain relative path inside the root; every directory on its
//! way must be a real directory (no symbolic link, no other kind of file), and
//! a file already there must be a regular file. Directories are checked once
//! per writer and created only when a file is written into them, so a new
//! file in a new directory costs one `mkdir` and one exclusive `open`: a full
//! `finalize` of 10,000 runs writes 58,000 files.

use std::collections::BTreeMap;
use std::fs::Metadata;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::config::is_relative_inside;
use crate::Error;

/// The directories of one writer's files, checked as it goes.
#[derive(Debug)]
pub struct SafeDirs<'r> {
    root: &'r Path,
    /// Directories (relative, `/`-separated) found real, and whether this
    /// writer made them.
    real: BTreeMap<String, bool>,
}

/// What [`SafeDirs::path`] found of a file's own directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// It is not there yet: [`SafeDirs::create_parents`] makes it.
    Missing,
    /// This writer made it, so a file in it is almost surely new.
    Made,
    /// It was there.
    Found,
}

impl<'r> SafeDirs<'r> {
    pub fn new(root: &'r Path) -> SafeDirs<'r> {
        SafeDirs {
            root,
            real: BTreeMap::new(),
        }
    }

    /// `root/rel` once each directory on its way is found a real directory
    /// or missing (then so is everything below it), with what its own
    /// directory is. The file itself is not looked at: see
    /// [`SafeDirs::existing_file`].
    pub fn path(&mut self, rel: &str) -> Result<(PathBuf, Dir), Error> {
        if !is_relative_inside(rel) {
            return Err(refuse(
                rel,
                "not a plain relative path inside the work tree",
            ));
        }
        let mut made = false;
        for (end, _) in rel.match_indices('/') {
            let dir = &rel[..end];
            if let Some(&by_us) = self.real.get(dir) {
                made = by_us;
                continue;
            }
            let path = self.root.join(dir);
            match std::fs::symlink_metadata(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Ok((self.root.join(rel), Dir::Missing));
                }
                Err(source) => return Err(Error::Io { path, source }),
                Ok(meta) => self.found(rel, dir, &meta)?,
            }
            made = false;
        }
        let dir = if made { Dir::Made } else { Dir::Found };
        Ok((self.root.join(rel), dir))
    }

    /// Makes the missing directories on `rel`'s way, after
    /// [`SafeDirs::path`]. One made meanwhile by another writer is checked
    /// like any other.
    pub fn create_parents(&mut self, rel: &str) -> Result<(), Error> {
        for (end, _) in rel.match_indices('/') {
            let dir = &rel[..end];
            if self.real.contains_key(dir) {
                continue;
            }
            let path = self.root.join(dir);
            match std::fs::create_dir(&path) {
                Ok(()) => {
                    self.real.insert(dir.to_string(), true);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let meta = std::fs::symlink_metadata(&path)
                        .map_err(|source| Error::Io { path, source })?;
                    self.found(rel, dir, &meta)?;
                }
                Err(source) => return Err(Error::Io { path, source }),
            }
        }
        Ok(())
    }

    /// Creates `rel` (at `path`, in a directory [`SafeDirs::path`] found
    /// `dir`) holding `bytes`, making its missing directories, unless
    /// something is already there: the new file's status, or `None` when a
    /// regular file was there (anything else is refused).
    pub fn create(
        &mut self,
        rel: &str,
        path: &Path,
        dir: Dir,
        bytes: &[u8],
    ) -> Result<Option<Metadata>, Error> {
        if dir == Dir::Missing {
            self.create_parents(rel)?;
        }
        match create_new(path, bytes) {
            Ok(Some(meta)) => Ok(Some(meta)),
            Ok(None) => self.existing_file(path, rel).map(|_| None),
            Err(source) => Err(Error::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// What is at `path` (`root/rel`): nothing, or a regular file's status;
    /// anything else is refused.
    pub fn existing_file(&self, path: &Path, rel: &str) -> Result<Option<Metadata>, Error> {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.is_file() => Ok(Some(meta)),
            Ok(_) => Err(refuse(rel, "exists and is not a file")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Takes `dir` (on `rel`'s way) as real if `meta` says it is.
    fn found(&mut self, rel: &str, dir: &str, meta: &Metadata) -> Result<(), Error> {
        if meta.file_type().is_symlink() {
            return Err(refuse(rel, &format!("{dir} is a symlink")));
        }
        if !meta.is_dir() {
            return Err(refuse(rel, &format!("{dir} is not a directory")));
        }
        self.real.insert(dir.to_string(), false);
        Ok(())
    }
}

fn refuse(rel: &str, why: &str) -> Error {
    Error::input(
        format!("projection file {rel:?}"),
        format!("{why}; nothing is written there"),
    )
}

/// Creates `path` holding `bytes` if nothing is there (an exclusive create,
/// which never follows a symbolic link): the new file's status, or `None`
/// when something already was. A file left part-written by a failed write is
/// removed.
pub fn create_new(path: &Path, bytes: &[u8]) -> std::io::Result<Option<Metadata>> {
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(None),
        Err(e) => return Err(e),
    };
    match file.write_all(bytes).and_then(|()| file.metadata()) {
        Ok(meta) => Ok(Some(meta)),
        Err(e) => {
            drop(file);
            let _ = std::fs::remove_file(path);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(e: Error) -> String {
        e.to_string()
    }

    #[test]
    fn a_new_file_in_new_directories_is_made_there() {
        let dir = tempfile::tempdir().unwrap();
        let mut dirs = SafeDirs::new(dir.path());
        let (path, found) = dirs.path("a/b/c.md").unwrap();
        assert_eq!(found, Dir::Missing);
        assert_eq!(path, dir.path().join("a/b/c.md"));
        assert!(!dir.path().join("a").exists(), "checking creates nothing");
        dirs.create_parents("a/b/c.md").unwrap();
        let meta = create_new(&path, b"x").unwrap().unwrap();
        assert_eq!(meta.len(), 1);
        assert_eq!(std::fs::read(&path).unwrap(), b"x");
        assert!(create_new(&path, b"y").unwrap().is_none());
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"x",
            "an existing file is kept"
        );
        // Known now: a second file there needs no look at its directories.
        assert_eq!(dirs.path("a/b/d.md").unwrap().1, Dir::Made);
        assert_eq!(dirs.path("a/e.md").unwrap().1, Dir::Made);
        assert_eq!(dirs.path("top.md").unwrap().1, Dir::Found);
        // A directory found there, even under one made, is not new.
        std::fs::create_dir(dir.path().join("a/old")).unwrap();
        assert_eq!(dirs.path("a/old/x.md").unwrap().1, Dir::Found);
        assert!(dirs.existing_file(&path, "a/b/c.md").unwrap().is_some());
        assert!(dirs
            .existing_file(&dir.path().join("a/b/d.md"), "a/b/d.md")
            .unwrap()
            .is_none());
    }

    #[test]
    fn symlinks_files_and_paths_outside_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        std::fs::write(dir.path().join("file"), b"").unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        let mut dirs = SafeDirs::new(dir.path());
        let err = message(dirs.path("link/x.md").unwrap_err());
        assert!(
            err.contains("link is a symlink; nothing is written there"),
            "{err}"
        );
        let err = message(dirs.path("file/x.md").unwrap_err());
        assert!(err.contains("file is not a directory"), "{err}");
        for rel in ["../x.md", "/x.md", "a/../x.md", ".git/x", "a//x.md", ""] {
            let err = message(dirs.path(rel).unwrap_err());
            assert!(err.contains("not a plain relative path"), "{rel}: {err}");
        }
        let err = message(dirs.existing_file(&dir.path().join("d"), "d").unwrap_err());
        assert!(err.contains("exists and is not a file"), "{err}");
        let err = message(
            dirs.existing_file(&dir.path().join("link"), "link")
                .unwrap_err(),
        );
        assert!(err.contains("exists and is not a file"), "{err}");
        assert!(create_new(&dir.path().join("link"), b"x")
            .unwrap()
            .is_none());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_directory_replaced_by_a_symlink_before_it_is_made_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let mut dirs = SafeDirs::new(dir.path());
        assert_eq!(dirs.path("docs/x.md").unwrap().1, Dir::Missing);
        // Another process puts a symlink where the directory was missing.
        std::os::unix::fs::symlink(outside.path(), dir.path().join("docs")).unwrap();
        let err = message(dirs.create_parents("docs/x.md").unwrap_err());
        assert!(err.contains("docs is a symlink"), "{err}");
        // A directory another writer made meanwhile is fine.
        assert_eq!(dirs.path("made/x.md").unwrap().1, Dir::Missing);
        std::fs::create_dir(dir.path().join("made")).unwrap();
        dirs.create_parents("made/x.md").unwrap();
        assert_eq!(dirs.path("made/x.md").unwrap().1, Dir::Found);
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }
}
