//! Trust: git's `allowed_signers` format (ssh-keygen(1), "ALLOWED SIGNERS"),
//! so one file serves both `ledger verify` and `git verify-commit`.
//!
//! `principals [options] keytype base64-key [comment]`, one per line; `#`
//! comments and blank lines are skipped. Options honoured: `namespaces="…"`
//! (the key counts only where `git` or `ledger` is listed), `valid-after` and
//! `valid-before` (`YYYYMMDD[HHMM[SS]][Z]`; ledger reads them as UTC so that a
//! verdict never depends on the verifier's time zone) and `cert-authority`
//! (certificates are not supported, so such lines vouch for nothing).

use std::path::{Path, PathBuf};

use ssh_key::{HashAlg, PublicKey};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// A malformed trust file: names the file and line.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{}: cannot read trust file: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: {message}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// One usable line of the trust file.
#[derive(Clone, Debug)]
pub struct Entry {
    pub line: usize,
    pub principals: Vec<String>,
    pub namespaces: Option<Vec<String>>,
    pub valid_after: Option<OffsetDateTime>,
    pub valid_before: Option<OffsetDateTime>,
    pub cert_authority: bool,
    pub key: PublicKey,
    /// `SHA256:<base64>`.
    pub fingerprint: String,
}

impl Entry {
    /// Whether this line vouches for signatures made at `at`.
    pub fn valid_at(&self, at: OffsetDateTime) -> bool {
        self.valid_after.is_none_or(|t| at >= t) && self.valid_before.is_none_or(|t| at < t)
    }

    fn for_ledger(&self) -> bool {
        !self.cert_authority
            && self
                .namespaces
                .as_ref()
                .is_none_or(|ns| ns.iter().any(|n| n == "git" || n == "ledger"))
    }

    /// The raw 32-byte ed25519 public key.
    pub fn ed25519(&self) -> Option<[u8; 32]> {
        self.key.key_data().ed25519().map(|k| k.0)
    }
}

/// A parsed `allowed_signers` file.
#[derive(Clone, Debug)]
pub struct TrustFile {
    pub path: PathBuf,
    pub entries: Vec<Entry>,
}

/// Who may sign what: writers sign run and finalize records and the ledger
/// commits; committee members sign decisions and the commits that add them.
/// Neither file vouches for the other's records.
#[derive(Clone, Debug)]
pub struct Trust {
    pub writers: TrustFile,
    /// ledger.yaml `committee.allowed_signers`; `None` when no committee is
    /// configured, and then no decision is trusted.
    pub committee: Option<TrustFile>,
}

impl Trust {
    /// Writers only: no decision is trusted.
    pub fn writers(writers: TrustFile) -> Trust {
        Trust {
            writers,
            committee: None,
        }
    }
}

/// The answer to "may this key sign at this time?".
#[derive(Debug)]
pub enum Vouch<'a> {
    Trusted(&'a Entry),
    /// Listed, but not for signatures made at that time.
    OutsideValidity,
    Unknown,
}

impl TrustFile {
    pub fn load(path: &Path) -> Result<TrustFile, TrustError> {
        let text = std::fs::read_to_string(path).map_err(|source| TrustError::Unreadable {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<TrustFile, TrustError> {
        let mut entries = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let err = |message: String| TrustError::Line {
                path: path.to_path_buf(),
                line,
                message,
            };
            if let Some(entry) = parse_line(line, trimmed).map_err(err)? {
                entries.push(entry);
            }
        }
        Ok(TrustFile {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// Looks up `fingerprint` for a signature made at `at`.
    pub fn vouch(&self, fingerprint: &str, at: OffsetDateTime) -> Vouch<'_> {
        let mut listed = false;
        for entry in self
            .entries
            .iter()
            .filter(|e| e.fingerprint == fingerprint && e.for_ledger())
        {
            if entry.valid_at(at) {
                return Vouch::Trusted(entry);
            }
            listed = true;
        }
        if listed {
            Vouch::OutsideValidity
        } else {
            Vouch::Unknown
        }
    }

    /// Whether any line lists this key, regardless of time.
    pub fn lists(&self, fingerprint: &str) -> bool {
        self.entries.iter().any(|e| e.fingerprint == fingerprint)
    }
}

/// Splits on white space outside double quotes.
fn tokens(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = None;
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => {
                quoted = !quoted;
                start.get_or_insert(i);
            }
            c if c.is_whitespace() && !quoted => {
                if let Some(s) = start.take() {
                    out.push(&line[s..i]);
                }
            }
            _ => {
                start.get_or_insert(i);
            }
        }
    }
    if let Some(s) = start {
        out.push(&line[s..]);
    }
    out
}

fn is_key_type(token: &str) -> bool {
    token.starts_with("ssh-") || token.starts_with("ecdsa-") || token.starts_with("sk-")
}

fn parse_line(line: usize, text: &str) -> Result<Option<Entry>, String> {
    let toks = tokens(text);
    let principals = toks.first().ok_or("empty line")?;
    let mut rest = &toks[1..];
    let mut options = None;
    if let Some(first) = rest.first() {
        if !is_key_type(first) {
            options = Some(*first);
            rest = &rest[1..];
        }
    }
    let (key_type, key_b64) = match rest {
        [t, k, ..] => (*t, *k),
        _ => return Err("expected `principals [options] keytype key`".into()),
    };
    if !is_key_type(key_type) {
        return Err(format!("unknown key type {key_type:?}"));
    }
    if key_type != "ssh-ed25519" {
        // Only ed25519 keys can sign ledger records; other lines serve git alone.
        return Ok(None);
    }
    let key = PublicKey::from_openssh(&format!("{key_type} {key_b64}"))
        .map_err(|e| format!("invalid {key_type} key: {e}"))?;
    let mut entry = Entry {
        line,
        principals: principals
            .trim_matches('"')
            .split(',')
            .map(str::to_string)
            .collect(),
        namespaces: None,
        valid_after: None,
        valid_before: None,
        cert_authority: false,
        fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
        key,
    };
    for option in split_options(options.unwrap_or("")) {
        let (name, value) = match option.split_once('=') {
            Some((n, v)) => (n.to_ascii_lowercase(), Some(v.trim_matches('"'))),
            None => (option.to_ascii_lowercase(), None),
        };
        match (name.as_str(), value) {
            ("cert-authority", None) => entry.cert_authority = true,
            ("namespaces", Some(v)) => {
                entry.namespaces = Some(v.split(',').map(str::to_string).collect())
            }
            ("valid-after", Some(v)) => entry.valid_after = Some(parse_validity(v)?),
            ("valid-before", Some(v)) => entry.valid_before = Some(parse_validity(v)?),
            _ => return Err(format!("unsupported option {option:?}")),
        }
    }
    Ok(Some(entry))
}

/// Splits `a,b="x,y",c` on commas outside quotes.
fn split_options(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out.retain(|o| !o.is_empty());
    out
}

/// `YYYYMMDD[HHMM[SS]][Z]`, read as UTC.
fn parse_validity(text: &str) -> Result<OffsetDateTime, String> {
    let digits = text.strip_suffix(['Z', 'z']).unwrap_or(text);
    let bad = || format!("invalid time {text:?}, expected YYYYMMDD[HHMM[SS]][Z]");
    if !digits.bytes().all(|b| b.is_ascii_digit()) || ![8, 12, 14].contains(&digits.len()) {
        return Err(bad());
    }
    let num = |range: std::ops::Range<usize>| -> u32 {
        digits.get(range).map_or(0, |s| s.parse().unwrap_or(0))
    };
    let month = Month::try_from(num(4..6) as u8).map_err(|_| bad())?;
    let date =
        Date::from_calendar_date(num(0..4) as i32, month, num(6..8) as u8).map_err(|_| bad())?;
    let time = Time::from_hms(num(8..10) as u8, num(10..12) as u8, num(12..14) as u8)
        .map_err(|_| bad())?;
    Ok(PrimitiveDateTime::new(date, time).assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBzjg1HREgcHbyJj4EPM7+EsMQ9XFS4R3sVYNJKgYmbd";

    #[test]
    fn parses_git_allowed_signers_lines() {
        let text = format!(
            "# team\n\nhui@example.com {KEY} laptop\n\
             \"a@x,b@y\" namespaces=\"git,file\",valid-after=\"20260101\",valid-before=\"202612312359Z\" {KEY}\n\
             rsa@example.com ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC\n"
        );
        let trust = TrustFile::parse(Path::new("signers"), &text).unwrap();
        assert_eq!(trust.entries.len(), 2, "the rsa line serves git only");
        let second = &trust.entries[1];
        assert_eq!(second.principals, ["a@x", "b@y"]);
        assert_eq!(second.line, 4);
        assert_eq!(second.namespaces.as_deref().unwrap(), ["git", "file"]);
        let t = |s| crate::clock::parse_rfc3339(s).unwrap();
        assert!(second.valid_at(t("2026-06-01T00:00:00Z")));
        assert!(!second.valid_at(t("2027-01-01T00:00:00Z")));
        assert!(!second.valid_at(t("2025-12-31T23:59:59Z")));
    }

    #[test]
    fn errors_name_file_and_line() {
        let err =
            TrustFile::parse(Path::new("signers"), "ok@x ssh-ed25519 notbase64!\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("signers:1: invalid ssh-ed25519 key"),
            "{err}"
        );
        let err = TrustFile::parse(Path::new("s"), &format!("\nx bogus=1 {KEY}\n")).unwrap_err();
        assert_eq!(err.to_string(), "s:2: unsupported option \"bogus=1\"");
        let err = TrustFile::parse(
            Path::new("s"),
            &format!("x valid-after=\"2026-01-01\" {KEY}\n"),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "s:1: invalid time \"2026-01-01\", expected YYYYMMDD[HHMM[SS]][Z]"
        );
    }
}
