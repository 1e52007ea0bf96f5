//! The library's error type. Every variant names the file, field or ref at
//! fault; the CLI prints it on one line and exits 2 (usage or input error).

use std::path::PathBuf;

/// An error that stops a command before it changes the ledger.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input that is not a file: a flag, an environment variable, a name.
    #[error("{what}: {message}")]
    Input { what: String, message: String },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Key(#[from] crate::sign::KeyError),
    #[error(transparent)]
    Trust(#[from] crate::trust::TrustError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Record(#[from] crate::record::RecordError),
}

impl Error {
    /// A short next step for the user, when there is an obvious one.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Store(e) => e.hint(),
            Error::Key(e) => e.hint(),
            Error::Config(crate::config::ConfigError::Missing { .. }) => {
                Some("run `ledger init` in the repository first".into())
            }
            _ => None,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn input(what: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Input {
            what: what.into(),
            message: message.into(),
        }
    }
}
