//! The repository a command works in: its git store, its `ledger.yaml`, and
//! where the human copies go.

use std::path::{Path, PathBuf};

use crate::config::{self, Config};
use crate::store::{self, Store, StoreError};
use crate::Error;

/// An opened repository with its configuration.
pub struct Workspace {
    pub store: Store,
    pub config: Config,
    /// The work tree's top directory; the git dir for a bare repository.
    pub root: PathBuf,
    pub config_path: PathBuf,
    /// In a bare repository, HEAD's commit: the files a checkout would hold
    /// (ledger.yaml, the trust files, committed documents) are read from
    /// its tree. `None` in a work tree, or when HEAD has no commit.
    pub checked_in: Option<gix::ObjectId>,
}

impl Workspace {
    /// Opens the repository containing `cwd` and reads its `ledger.yaml`.
    /// A work tree must have one; a bare repository (a committee's copy) uses
    /// the defaults.
    pub fn open(cwd: &Path) -> Result<Workspace, Error> {
        let repo = store::discover(cwd)?;
        let (root, bare) = match repo.workdir() {
            Some(w) => (w.to_path_buf(), false),
            None => (repo.git_dir().to_path_buf(), true),
        };
        let config_path = root.join(config::FILE_NAME);
        let checked_in = if bare {
            repo.head_id().ok().map(|id| id.detach())
        } else {
            None
        };
        let config = if bare {
            // A committee's bare copy: the configuration committed on the
            // branch, as a checkout would have it; the defaults without one.
            let store = Store::new(repo.clone(), config::DEFAULT_REF);
            match checked_in
                .map(|head| read_committed(&store, head, config::FILE_NAME))
                .transpose()?
                .flatten()
            {
                Some(bytes) => {
                    let shown = PathBuf::from(format!("HEAD:{}", config::FILE_NAME));
                    let text =
                        String::from_utf8(bytes).map_err(|e| config::ConfigError::Unreadable {
                            path: shown.clone(),
                            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                        })?;
                    Config::parse(&shown, &text)?
                }
                None => Config::parse(&config_path, "version: 1\n")?,
            }
        } else {
            Config::load(&config_path)?
        };
        let store = Store::new(repo, &config.ledger.ref_name);
        Ok(Workspace {
            store,
            config,
            root,
            config_path,
            checked_in,
        })
    }

    /// Whether this is a bare repository (no work tree).
    pub fn is_bare(&self) -> bool {
        self.store.workdir().is_none()
    }

    /// The bytes of `rel` as the user's checkout has it: the file in the work
    /// tree, or in a bare repository the blob in HEAD's commit. `None` when
    /// there is none.
    pub fn read_checked_in(&self, rel: &str) -> Result<Option<Vec<u8>>, Error> {
        if self.is_bare() {
            return match self.checked_in {
                Some(head) => read_committed(&self.store, head, rel),
                None => Ok(None),
            };
        }
        let path = self.root.join(rel);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// The bytes of ledger.yaml as loaded (empty when the defaults are used).
    pub fn config_bytes(&self) -> Vec<u8> {
        self.read_checked_in(config::FILE_NAME)
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// Like [`Workspace::open`], but refuses a bare repository.
    pub fn open_worktree(cwd: &Path) -> Result<Workspace, Error> {
        let repo = store::discover(cwd)?;
        if repo.workdir().is_none() {
            return Err(StoreError::Bare {
                path: repo.git_dir().to_path_buf(),
            }
            .into());
        }
        drop(repo);
        Self::open(cwd)
    }

    /// Where a file of the checkout is read from, for messages: its path in
    /// the work tree, or `HEAD:<rel>` in a bare repository.
    pub fn shown_path(&self, rel: &str) -> PathBuf {
        if self.is_bare() {
            PathBuf::from(format!("HEAD:{rel}"))
        } else {
            self.root.join(rel)
        }
    }

    /// The trust file named by the configuration, resolved against the root.
    pub fn trust_path(&self) -> PathBuf {
        self.root.join(&self.config.trust.allowed_signers)
    }

    /// The committee file named by the configuration, resolved against the
    /// root; `None` when no committee is configured.
    pub fn committee_path(&self) -> Option<PathBuf> {
        self.config
            .committee
            .allowed_signers
            .as_ref()
            .map(|p| self.root.join(p))
    }

    /// `audit/workstation_runs` (configurable), relative to the root.
    pub fn audit_rel(&self, run_id: &str) -> String {
        format!("{}/{}", self.config.audit.dir, run_id)
    }

    pub fn audit_dir(&self, run_id: &str) -> PathBuf {
        self.root.join(self.audit_rel(run_id))
    }
}

/// The blob at `rel` in `commit`'s tree, or `None`.
fn read_committed(
    store: &Store,
    commit: gix::ObjectId,
    rel: &str,
) -> Result<Option<Vec<u8>>, Error> {
    Ok(store.snapshot(commit)?.read(rel)?)
}
