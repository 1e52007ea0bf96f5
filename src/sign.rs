//! OpenSSH ed25519 keys: generation, loading, DSSE signatures and git commit
//! signatures (SSHSIG, namespace `git`), which plain `git verify-commit` accepts.
//! Records carry key fingerprints, never keys.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::Signer as _;
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, PublicKey};

use crate::record::{encode_b64, EnvelopeSignature};

/// Why a signing key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{}: key file not found", path.display())]
    NotFound { path: PathBuf },
    #[error("{}: cannot read key file: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not an OpenSSH private key ({message})", path.display())]
    Malformed { path: PathBuf, message: String },
    #[error("{}: key is passphrase-protected; ledger needs an unencrypted ed25519 key", path.display())]
    Encrypted { path: PathBuf },
    #[error("{}: key type is {algorithm}, ledger signs only with ssh-ed25519", path.display())]
    NotEd25519 { path: PathBuf, algorithm: String },
    #[error("{}: private key is readable by others (mode {mode:03o})", path.display())]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("{}: already exists; ledger never overwrites a key", path.display())]
    Exists { path: PathBuf },
    #[error("{}: cannot write key file: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no signing key: pass --key PATH, set LEDGER_KEY, set signing.key in ledger.yaml, or git's user.signingkey")]
    NoneConfigured,
}

impl KeyError {
    pub fn hint(&self) -> Option<String> {
        match self {
            KeyError::TooOpen { path, .. } => Some(format!("chmod 600 {}", path.display())),
            KeyError::Encrypted { .. } | KeyError::NoneConfigured | KeyError::NotEd25519 { .. } => {
                Some("make a dedicated key with `ledger keygen --out PATH`".into())
            }
            _ => None,
        }
    }
}

/// A loaded ed25519 signing key.
pub struct Signer {
    key: PrivateKey,
    dalek: ed25519_dalek::SigningKey,
    fingerprint: String,
    path: PathBuf,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("fingerprint", &self.fingerprint)
            .field("path", &self.path)
            .finish()
    }
}

impl Signer {
    /// Loads an OpenSSH private key file. A `.pub` path (as git's
    /// `user.signingkey` often names) loads the private key beside it.
    pub fn load(path: &Path) -> Result<Signer, KeyError> {
        let path = match path.to_str().and_then(|p| p.strip_suffix(".pub")) {
            Some(private) => PathBuf::from(private),
            None => path.to_path_buf(),
        };
        let meta = std::fs::metadata(&path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => KeyError::NotFound { path: path.clone() },
            _ => KeyError::Unreadable {
                path: path.clone(),
                source,
            },
        })?;
        let text = std::fs::read(&path).map_err(|source| KeyError::Unreadable {
            path: path.clone(),
            source,
        })?;
        if let Some(algorithm) = key_type(&text).filter(|t| t != "ssh-ed25519") {
            return Err(KeyError::NotEd25519 { path, algorithm });
        }
        let key = PrivateKey::from_openssh(&text).map_err(|e| KeyError::Malformed {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if key.is_encrypted() {
            return Err(KeyError::Encrypted { path });
        }
        if key.algorithm() != Algorithm::Ed25519 {
            return Err(KeyError::NotEd25519 {
                path,
                algorithm: key.algorithm().to_string(),
            });
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::TooOpen { path, mode });
        }
        let pair = key
            .key_data()
            .ed25519()
            .ok_or_else(|| KeyError::NotEd25519 {
                path: path.clone(),
                algorithm: key.algorithm().to_string(),
            })?;
        let dalek = ed25519_dalek::SigningKey::from_bytes(&pair.private.to_bytes());
        let fingerprint = key.public_key().fingerprint(HashAlg::Sha256).to_string();
        Ok(Signer {
            key,
            dalek,
            fingerprint,
            path,
        })
    }

    /// `SHA256:<base64>`, as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The public key in OpenSSH one-line form, without comment.
    pub fn public_openssh(&self) -> String {
        public_line(self.key.public_key())
    }

    /// Signs a DSSE pre-authentication encoding.
    pub fn sign_dsse(&self, pae: &[u8]) -> EnvelopeSignature {
        EnvelopeSignature {
            keyid: self.fingerprint.clone(),
            sig: encode_b64(&self.dalek.sign(pae).to_bytes()),
        }
    }

    /// An armored SSH signature (namespace `git`, SHA-512) over a commit's
    /// bytes, ready for the `gpgsig` header (no trailing newline).
    pub fn sign_commit(&self, commit_bytes: &[u8]) -> String {
        let sig = self
            .key
            .sign("git", HashAlg::Sha512, commit_bytes)
            .expect("ed25519 signing of in-memory bytes cannot fail");
        let pem = sig
            .to_pem(LineEnding::LF)
            .expect("an ed25519 SSHSIG always encodes");
        pem.trim_end_matches('\n').to_string()
    }
}

/// The key type named inside an OpenSSH private key file (`openssh-key-v1`:
/// magic, cipher, kdf, kdf options, key count, then the first public key,
/// which starts with its type), read without decrypting anything.
fn key_type(pem: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(pem).ok()?;
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    let bytes = crate::record::decode_b64(body.trim())?;
    let mut rest = bytes.strip_prefix(b"openssh-key-v1\0")?;
    let string = |rest: &mut &[u8]| -> Option<Vec<u8>> {
        let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let value = rest.get(4..4 + len)?.to_vec();
        *rest = &rest[4 + len..];
        Some(value)
    };
    for _ in 0..3 {
        string(&mut rest)?; // cipher, kdf, kdf options
    }
    rest = rest.get(4..)?; // number of keys
    let public = string(&mut rest)?;
    let mut public = public.as_slice();
    String::from_utf8(string(&mut public)?).ok()
}

fn public_line(key: &PublicKey) -> String {
    let mut key = key.clone();
    key.set_comment("");
    key.to_openssh()
        .expect("an ed25519 public key always encodes")
        .trim()
        .to_string()
}

/// A newly written key pair.
#[derive(Debug)]
pub struct Generated {
    pub private_path: PathBuf,
    pub public_path: PathBuf,
    pub fingerprint: String,
    /// `ssh-ed25519 AAAA…`
    pub public_openssh: String,
}

/// Writes a new ed25519 key pair: `out` (mode 0600) and `out.pub`. Never overwrites.
pub fn keygen(out: &Path, comment: &str) -> Result<Generated, KeyError> {
    let mut key = PrivateKey::random(&mut rand_core::OsRng, Algorithm::Ed25519)
        .expect("the OS random source is available");
    key.set_comment(comment);
    let private = key
        .to_openssh(LineEnding::LF)
        .expect("an ed25519 key always encodes");
    let public_path = PathBuf::from(format!("{}.pub", out.display()));
    for path in [out, public_path.as_path()] {
        if path.exists() {
            return Err(KeyError::Exists {
                path: path.to_path_buf(),
            });
        }
    }
    let write = |path: &Path, mode: u32, bytes: &[u8]| -> Result<(), KeyError> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .map_err(|source| KeyError::Write {
                path: path.to_path_buf(),
                source,
            })?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(|source| KeyError::Write {
                path: path.to_path_buf(),
                source,
            })
    };
    write(out, 0o600, private.as_bytes())?;
    let public = key
        .public_key()
        .to_openssh()
        .expect("an ed25519 public key always encodes");
    write(&public_path, 0o644, format!("{public}\n").as_bytes())?;
    Ok(Generated {
        private_path: out.to_path_buf(),
        public_path,
        fingerprint: key.public_key().fingerprint(HashAlg::Sha256).to_string(),
        public_openssh: public_line(key.public_key()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_then_load_signs_verifiably() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("k");
        let made = keygen(&out, "test@example").unwrap();
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let signer = Signer::load(&out).unwrap();
        assert_eq!(signer.fingerprint(), made.fingerprint);
        assert!(
            Signer::load(&made.public_path).is_ok(),
            ".pub names the pair"
        );
        assert!(matches!(keygen(&out, "x"), Err(KeyError::Exists { .. })));

        let sig = signer.sign_dsse(b"hello");
        let bytes: [u8; 64] = crate::record::decode_b64(&sig.sig)
            .unwrap()
            .try_into()
            .unwrap();
        let public = PublicKey::from_openssh(&made.public_openssh).unwrap();
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&public.key_data().ed25519().unwrap().0)
            .unwrap();
        vk.verify_strict(b"hello", &ed25519_dalek::Signature::from_bytes(&bytes))
            .unwrap();
    }

    #[test]
    fn group_readable_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("k");
        keygen(&out, "t").unwrap();
        std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            Signer::load(&out),
            Err(KeyError::TooOpen { mode: 0o640, .. })
        ));
    }
}
