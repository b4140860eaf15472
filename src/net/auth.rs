//! The cluster secret and the handshake that proves knowledge of it.
//!
//! `synod up` creates 32 random bytes per cluster (`.synod/<name>/secret`, mode
//! 0600, hex). Every connection opens with a challenge and response, keyed
//! BLAKE3 over both sides' fresh nonces, so the secret never crosses the wire
//! and a recorded handshake cannot be replayed:
//!
//! ```text
//! node   → caller   Challenge { node, incarnation, nonce_n }
//! caller → node     Hello { cluster, caller, nonce_c, proof = MAC("hello" | cluster | caller | node | nonce_n | nonce_c) }
//! node   → caller   Welcome { node, incarnation, proof = MAC("welcome" | cluster | node | incarnation | nonce_c | nonce_n) }
//! ```
//!
//! The node answers only a caller that proved the secret; the caller believes
//! only a node that proved it back (so a stranger on a node's port cannot pose
//! as the node either). The caller's proof names the node it answers, and the
//! caller checks that the challenge comes from the node it dialled, so a
//! stranger who sits on a stopped node's port cannot relay one node's
//! challenge to another and use the answer there. What it does not do: encrypt. Traffic on loopback is
//! readable by anyone who can read loopback; TLS is out of scope.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Bytes of a secret.
pub const SECRET_BYTES: usize = 32;
/// Bytes of a handshake nonce.
pub const NONCE_BYTES: usize = 16;

/// A handshake nonce: fresh random bytes per connection.
pub type Nonce = [u8; NONCE_BYTES];
/// A proof of knowledge of the secret.
pub type Proof = [u8; 32];

/// A cluster's shared secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret([u8; SECRET_BYTES]);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret itself.
        write!(f, "Secret(..)")
    }
}

/// Why a secret file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// It cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It does not hold 64 hex digits.
    #[error("{path}: not a synod secret ({SECRET_BYTES} bytes as {} hex digits)", 2 * SECRET_BYTES)]
    Malformed {
        /// The file.
        path: PathBuf,
    },
}

impl Secret {
    /// 32 fresh random bytes from the operating system.
    pub fn generate() -> Secret {
        let mut b = [0u8; SECRET_BYTES];
        crate::rng::os_fill(&mut b);
        Secret(b)
    }

    /// A secret from its bytes (tests, in-process clusters).
    pub fn from_bytes(b: [u8; SECRET_BYTES]) -> Secret {
        Secret(b)
    }

    /// Read the secret file at `path`.
    pub fn load(path: &Path) -> Result<Secret, SecretError> {
        let text = std::fs::read_to_string(path).map_err(|source| SecretError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let bad = || SecretError::Malformed {
            path: path.to_path_buf(),
        };
        let hex = text.trim();
        if hex.len() != 2 * SECRET_BYTES || !hex.is_ascii() {
            return Err(bad());
        }
        let mut b = [0u8; SECRET_BYTES];
        for (i, byte) in b.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Secret(b))
    }

    /// Write the secret to `path`, readable by its owner only (0600), created
    /// whole or not at all (a temporary file, then a rename).
    pub fn save(&self, path: &Path) -> Result<(), SecretError> {
        use std::os::unix::fs::OpenOptionsExt;
        let io = |source| SecretError::Io {
            path: path.to_path_buf(),
            source,
        };
        let tmp = path.with_extension("tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        writeln!(f, "{}", self.hex()).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// The secret as the secret file holds it: 64 hex digits.
    fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// True if `password` is this secret as the secret file holds it (what a
    /// RESP client gives AUTH). Compared as keyed MACs, so the time taken
    /// says nothing about how much of it matched.
    pub fn is_password(&self, password: &[u8]) -> bool {
        let given = password.trim_ascii();
        self.mac(&[b"resp-auth", given]) == self.mac(&[b"resp-auth", self.hex().as_bytes()])
    }

    /// The secret at `path`, created if the file does not exist yet.
    pub fn load_or_create(path: &Path) -> Result<Secret, SecretError> {
        if path.exists() {
            return Secret::load(path);
        }
        let s = Secret::generate();
        s.save(path)?;
        Ok(s)
    }

    /// The keyed MAC of `parts` (each length-prefixed, so no two different
    /// lists of parts hash alike).
    pub fn mac(&self, parts: &[&[u8]]) -> Proof {
        let mut h = blake3::Hasher::new_keyed(&self.0);
        for p in parts {
            h.update(&(p.len() as u64).to_le_bytes());
            h.update(p);
        }
        *h.finalize().as_bytes()
    }

    /// True if `proof` is the MAC of `parts` (compared in constant time).
    pub fn verify(&self, parts: &[&[u8]], proof: &Proof) -> bool {
        let mut h = blake3::Hasher::new_keyed(&self.0);
        for p in parts {
            h.update(&(p.len() as u64).to_le_bytes());
            h.update(p);
        }
        h.finalize() == blake3::Hash::from_bytes(*proof)
    }
}

/// True if `a` and `b` are equal, in time that does not depend on where they
/// differ (their hashes are compared, in constant time).
pub fn same(a: &[u8], b: &[u8]) -> bool {
    blake3::hash(a) == blake3::hash(b)
}

/// A fresh nonce.
pub fn nonce() -> Nonce {
    let mut n = [0u8; NONCE_BYTES];
    crate::rng::os_fill(&mut n);
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_the_secret_files_text() {
        let s = Secret::from_bytes([0xab; 32]);
        let hex = "ab".repeat(32);
        assert!(s.is_password(hex.as_bytes()));
        assert!(s.is_password(format!("{hex}\n").as_bytes()));
        assert!(!s.is_password(&hex.as_bytes()[..63]));
        assert!(!s.is_password(b""));
        assert!(!Secret::from_bytes([0xac; 32]).is_password(hex.as_bytes()));
    }

    #[test]
    fn a_proof_checks_only_with_the_same_secret_and_parts() {
        let s = Secret::from_bytes([7; 32]);
        let other = Secret::from_bytes([8; 32]);
        let p = s.mac(&[b"hello", b"five"]);
        assert!(s.verify(&[b"hello", b"five"], &p));
        assert!(!other.verify(&[b"hello", b"five"], &p));
        assert!(
            !s.verify(&[b"hellof", b"ive"], &p),
            "parts are length-prefixed"
        );
    }

    #[test]
    fn secrets_round_trip_through_a_private_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        let s = Secret::load_or_create(&path).unwrap();
        assert_eq!(Secret::load(&path).unwrap(), s);
        assert_eq!(Secret::load_or_create(&path).unwrap(), s);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(&path, "not hex").unwrap();
        assert!(matches!(
            Secret::load(&path),
            Err(SecretError::Malformed { .. })
        ));
    }
}
