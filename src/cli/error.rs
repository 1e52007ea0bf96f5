//! One error type for users: a one-line message, an optional hint, an exit code.

use crate::Error;

#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub hint: Option<String>,
    pub code: i32,
}

impl CliError {
    pub fn usage(message: impl Into<String>) -> CliError {
        CliError {
            message: message.into(),
            hint: None,
            code: 2,
        }
    }

    pub fn print(&self) {
        eprintln!("error: {}", self.message);
        if let Some(hint) = &self.hint {
            eprintln!("hint: {hint}");
        }
    }
}

impl From<Error> for CliError {
    fn from(e: Error) -> CliError {
        CliError {
            message: e.to_string(),
            hint: e.hint(),
            code: 2,
        }
    }
}

impl From<crate::store::StoreError> for CliError {
    fn from(e: crate::store::StoreError) -> CliError {
        Error::from(e).into()
    }
}
