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
        let config = if bare && !config_path.exists() {
            Config::parse(&config_path, "version: 1\n")?
        } else {
            Config::load(&config_path)?
        };
        let store = Store::new(repo, &config.ledger.ref_name);
        Ok(Workspace {
            store,
            config,
            root,
            config_path,
        })
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
