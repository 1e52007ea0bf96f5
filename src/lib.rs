//! `ledger`: a git-native, signed, append-only audit ledger for heavy research runs.
//!
//! Every run is recorded as a chain of ed25519-signed, content-addressed records
//! (RFC 8785 canonical JSON inside DSSE envelopes) committed to a dedicated git
//! ref. Nothing here touches the user's branch, index or working tree, except the
//! documented human copies under `audit/`.
//!
//! Module map (dependency directions: `cli` → everything; `run` → `preflight`,
//! `record`, `store`; `verify` → `record`, `sign`, `store`; `store` → `record`):
//! - [`record`]: payload types, DSSE envelopes, canonical bytes and ids.
//! - [`sign`]: OpenSSH ed25519 keys, DSSE and git commit (SSHSIG) signatures.
//! - [`trust`]: git's `allowed_signers` format.
//! - [`store`]: the only gix user: reading and compare-and-swap appends.
//! - [`config`]: the typed `ledger.yaml`.
//! - [`preflight`], [`run`], [`verify`], [`history`]: the commands' logic.
//! - [`clock`]: the only reader of wall time.

pub mod cache_file;
pub mod cli;
pub mod clock;
pub mod committee;
pub mod config;
pub mod config_check;
pub mod decide;
pub mod demo;
pub mod dq;
pub mod error;
pub mod files;
pub mod finalize;
pub mod generate;
pub mod gitcli;
pub mod history;
pub mod index;
pub mod journal;
pub mod listing;
pub mod par;
pub mod preflight;
pub mod proc;
pub mod progress;
pub mod project;
pub mod record;
pub mod recover;
pub mod run;
pub mod safe_write;
pub mod secrets;
pub mod sign;
pub mod stat_cache;
pub mod status;
pub mod store;
pub mod sync;
pub mod trust;
pub mod verify;
pub mod workspace;

pub use error::Error;
