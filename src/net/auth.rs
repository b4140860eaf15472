//! Credentials: the cluster's master secret, and the keys derived from it
//! that each process holds and proves.
//!
//! `synod up` creates 32 random bytes per cluster (`.synod/<name>/secret`,
//! mode 0600, hex): the **master secret**, the administrator's credential. It
//! never leaves the controlling machine's run directory and no node reads it.
//! From it, one way (keyed BLAKE3 with a label), come:
//!
//! | credential | file | held by | opens |
//! |---|---|---|---|
//! | node N's ed25519 key | `node-N/identity` | node N alone | node ports, as node N (protocol messages only) |
//! | the client key | `client.key` | every node (its RESP front) | node ports, as a client (operations, status, log) |
//! | the administrator key | derived from `secret` | the CLI, launcher, chaos, bench, web | node ports, as the administrator (also message faults) |
//! | the RESP password | `resp-password` | RESP users | RESP ports only |
//!
//! and the public **roster** (`keys.ron`): every member's public key, the
//! client's, the administrator's and a hash of the RESP password, which is
//! all a node needs to check anyone. Holding what node 1 holds, one can pose
//! neither as node 2 nor as the administrator; holding the RESP password, one
//! can open no node port at all.
//!
//! Every connection opens with a challenge and a response, signed over both
//! sides' fresh nonces, so a recorded handshake cannot be replayed:
//!
//! ```text
//! node   → caller   Challenge { node, nonce_n }
//! caller → node     Hello { cluster, caller, nonce_c, proof = sign_caller("hello" | cluster | caller | node | nonce_n | nonce_c) }
//! node   → caller   Welcome { node, incarnation, proof = sign_node("welcome" | cluster | node | incarnation | nonce_c | nonce_n) }
//! ```
//!
//! The node answers only a caller whose signature checks against the key the
//! roster holds for who it says it is; the caller believes only a node that
//! signs back with that node's key. What it does not do: encrypt. Traffic on
//! loopback is readable by anyone who can read loopback; TLS is out of scope.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::Caller;
use crate::paxos::NodeId;

/// Bytes of a secret.
pub const SECRET_BYTES: usize = 32;
/// Bytes of a handshake nonce.
pub const NONCE_BYTES: usize = 16;

/// A handshake nonce: fresh random bytes per connection.
pub type Nonce = [u8; NONCE_BYTES];

/// An ed25519 signature: proof that the holder of a key signed a handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof([u8; 32], [u8; 32]);

impl Proof {
    fn signature(&self) -> ed25519_dalek::Signature {
        let mut b = [0u8; 64];
        b[..32].copy_from_slice(&self.0);
        b[32..].copy_from_slice(&self.1);
        ed25519_dalek::Signature::from_bytes(&b)
    }
}

impl From<ed25519_dalek::Signature> for Proof {
    fn from(s: ed25519_dalek::Signature) -> Self {
        let b = s.to_bytes();
        let (mut r, mut s) = ([0u8; 32], [0u8; 32]);
        r.copy_from_slice(&b[..32]);
        s.copy_from_slice(&b[32..]);
        Proof(r, s)
    }
}

/// The bytes a proof signs: `parts`, each length-prefixed, so no two
/// different lists of parts sign alike.
fn message(parts: &[&[u8]]) -> Vec<u8> {
    let mut m = Vec::with_capacity(parts.iter().map(|p| p.len() + 8).sum());
    for p in parts {
        m.extend_from_slice(&(p.len() as u64).to_le_bytes());
        m.extend_from_slice(p);
    }
    m
}

/// Why a credential file cannot be used.
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
    /// It does not hold what it should.
    #[error("{path}: not a synod {what}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What it should hold.
        what: &'static str,
    },
    /// Others than its owner may read it (ssh refuses such keys too).
    #[error("{path}: readable by others (mode {mode:04o}); a credential must be its owner's alone: chmod 600 {path}")]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

/// Read a credential file: its owner's alone, or refused.
fn read_private(path: &Path) -> Result<String, SecretError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |source| SecretError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretError::Exposed {
            path: path.to_path_buf(),
            mode,
        });
    }
    std::fs::read_to_string(path).map_err(io)
}

/// Write `text` to `path`, readable by its owner only (0600).
pub fn write_private(path: &Path, text: &str) -> Result<(), SecretError> {
    write_file(path, text, true, false)
}

/// Write `text` to `path`, readable by its owner only (0600) or by all
/// (0644), created whole or not at all (a temporary file, then a rename),
/// and synced if `durable`. Only the master secret needs that: every other
/// credential is derived from it again at every `up` and every node start,
/// so one lost in a crash is written again (an fsync each cost a 5-node
/// bring-up 20 ms).
fn write_file(path: &Path, text: &str, private: bool, durable: bool) -> Result<(), SecretError> {
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
        .mode(if private { 0o600 } else { 0o644 })
        .open(&tmp)
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    if durable {
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let t = text.trim();
    if t.len() != 2 * N || !t.is_ascii() {
        return None;
    }
    let mut b = [0u8; N];
    for (i, byte) in b.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&t[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(b)
}

/// A cluster's master secret: the administrator's credential, and the root
/// every other credential is derived from.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret([u8; SECRET_BYTES]);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret itself.
        write!(f, "Secret(..)")
    }
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

    /// Read the secret file at `path` (refused if others may read it).
    pub fn load(path: &Path) -> Result<Secret, SecretError> {
        unhex(&read_private(path)?)
            .map(Secret)
            .ok_or_else(|| SecretError::Malformed {
                path: path.to_path_buf(),
                what: "secret (32 bytes as 64 hex digits)",
            })
    }

    /// Write the secret to `path`, readable by its owner only.
    pub fn save(&self, path: &Path) -> Result<(), SecretError> {
        write_file(path, &format!("{}\n", hex(&self.0)), true, true)
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

    /// The keyed hash of `parts` under this secret (each length-prefixed).
    fn derive(&self, parts: &[&[u8]]) -> [u8; 32] {
        *blake3::keyed_hash(&self.0, &message(parts)).as_bytes()
    }

    /// The signing key of `who` in cluster `cluster`.
    pub fn identity(&self, cluster: &str, who: &Caller) -> Identity {
        Identity::from_seed(self.derive(&[b"synod identity", cluster.as_bytes(), &who.tag()]))
    }

    /// The password RESP clients give AUTH: 64 hex digits, derived one way,
    /// so it opens RESP ports and nothing else.
    pub fn resp_password(&self, cluster: &str) -> String {
        hex(&self.derive(&[b"synod resp password", cluster.as_bytes()]))
    }

    /// The public roster of cluster `cluster` with these members.
    pub fn roster(&self, cluster: &str, members: &[NodeId]) -> Roster {
        Roster {
            cluster: cluster.to_string(),
            nodes: members
                .iter()
                .map(|&id| (id, self.identity(cluster, &Caller::Node(id)).public()))
                .collect(),
            client: self.identity(cluster, &Caller::Client).public(),
            admin: self.identity(cluster, &Caller::Admin).public(),
            resp: *blake3::hash(self.resp_password(cluster).as_bytes()).as_bytes(),
        }
    }

    /// The administrator's keys for cluster `cluster` with these members.
    pub fn admin_keys(&self, cluster: &str, members: &[NodeId]) -> Keys {
        Keys {
            caller: Caller::Admin,
            identity: Arc::new(self.identity(cluster, &Caller::Admin)),
            roster: Arc::new(self.roster(cluster, members)),
        }
    }

    /// Node `id`'s keys: its own identity and the client key (for its RESP
    /// front), each with the roster.
    pub fn node_keys(&self, cluster: &str, members: &[NodeId], id: NodeId) -> NodeKeys {
        let roster = Arc::new(self.roster(cluster, members));
        NodeKeys {
            node: Keys {
                caller: Caller::Node(id),
                identity: Arc::new(self.identity(cluster, &Caller::Node(id))),
                roster: roster.clone(),
            },
            client: Keys {
                caller: Caller::Client,
                identity: Arc::new(self.identity(cluster, &Caller::Client)),
                roster,
            },
        }
    }
}

/// A private signing key (ed25519): what one holder proves itself with.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity(SigningKey);

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({})", hex(&self.public().0.to_bytes()[..4]))
    }
}

impl Identity {
    /// The key whose seed is `seed`.
    pub fn from_seed(seed: [u8; 32]) -> Identity {
        Identity(SigningKey::from_bytes(&seed))
    }

    /// Its public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Sign `parts`.
    pub fn prove(&self, parts: &[&[u8]]) -> Proof {
        self.0.sign(&message(parts)).into()
    }

    /// Read a key file (refused if others may read it).
    pub fn load(path: &Path) -> Result<Identity, SecretError> {
        unhex(&read_private(path)?)
            .map(Identity::from_seed)
            .ok_or_else(|| SecretError::Malformed {
                path: path.to_path_buf(),
                what: "key (a 32-byte seed as 64 hex digits)",
            })
    }

    /// Write the key to `path`, readable by its owner only.
    pub fn save(&self, path: &Path) -> Result<(), SecretError> {
        write_file(path, &format!("{}\n", hex(&self.0.to_bytes())), true, false)
    }
}

/// A public key: checks the proofs of one holder.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", hex(&self.0.to_bytes()))
    }
}

impl PublicKey {
    /// True if `proof` is this key's signature of `parts`.
    pub fn verify(&self, parts: &[&[u8]], proof: &Proof) -> bool {
        self.0
            .verify_strict(&message(parts), &proof.signature())
            .is_ok()
    }

    /// The key written as 64 hex digits (`None`: not a key).
    pub fn from_hex(text: &str) -> Option<PublicKey> {
        VerifyingKey::from_bytes(&unhex(text)?).ok().map(PublicKey)
    }

    /// The key as 64 hex digits (what a configuration's contact carries).
    pub fn to_hex(&self) -> String {
        hex(&self.0.to_bytes())
    }
}

/// What everyone may know: the public keys of a cluster's members, of its
/// client and administrator, and a hash of its RESP password. A node checks
/// every caller against it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Roster {
    /// The cluster's name.
    pub cluster: String,
    /// Each member's public key.
    pub nodes: BTreeMap<NodeId, PublicKey>,
    /// The client key's public half.
    pub client: PublicKey,
    /// The administrator's.
    pub admin: PublicKey,
    /// BLAKE3 of the RESP password.
    resp: [u8; 32],
}

/// The roster as `keys.ron` holds it: hex strings.
#[derive(Serialize, Deserialize)]
struct RosterFile {
    cluster: String,
    nodes: BTreeMap<NodeId, String>,
    client: String,
    admin: String,
    resp_password_blake3: String,
}

impl Roster {
    /// The same roster, with node `id`'s key `key` (a node added at run
    /// time, from the configuration that added it).
    pub fn with_node(&self, id: NodeId, key: PublicKey) -> Roster {
        let mut r = self.clone();
        r.nodes.insert(id, key);
        r
    }

    /// The public key of `who`, if it has one in this cluster.
    pub fn key(&self, who: &Caller) -> Option<&PublicKey> {
        match who {
            Caller::Node(id) => self.nodes.get(id),
            Caller::Client => Some(&self.client),
            Caller::Admin => Some(&self.admin),
        }
    }

    /// True if `password` is the RESP password (surrounding whitespace
    /// aside). Compared as hashes, in constant time.
    pub fn is_resp_password(&self, password: &[u8]) -> bool {
        blake3::hash(password.trim_ascii()) == blake3::Hash::from_bytes(self.resp)
    }

    /// Read `keys.ron`.
    pub fn load(path: &Path) -> Result<Roster, SecretError> {
        let malformed = || SecretError::Malformed {
            path: path.to_path_buf(),
            what: "roster of public keys",
        };
        let text = std::fs::read_to_string(path).map_err(|source| SecretError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let f: RosterFile = ron::from_str(&text).map_err(|_| malformed())?;
        let nodes = f
            .nodes
            .iter()
            .map(|(&id, k)| PublicKey::from_hex(k).map(|k| (id, k)))
            .collect::<Option<_>>()
            .ok_or_else(malformed)?;
        Ok(Roster {
            cluster: f.cluster,
            nodes,
            client: PublicKey::from_hex(&f.client).ok_or_else(malformed)?,
            admin: PublicKey::from_hex(&f.admin).ok_or_else(malformed)?,
            resp: unhex(&f.resp_password_blake3).ok_or_else(malformed)?,
        })
    }

    /// Write `keys.ron` (readable by all: it holds nothing secret).
    pub fn save(&self, path: &Path) -> Result<(), SecretError> {
        let f = RosterFile {
            cluster: self.cluster.clone(),
            nodes: self
                .nodes
                .iter()
                .map(|(&id, k)| (id, hex(&k.0.to_bytes())))
                .collect(),
            client: hex(&self.client.0.to_bytes()),
            admin: hex(&self.admin.0.to_bytes()),
            resp_password_blake3: hex(&self.resp),
        };
        let text = ron::ser::to_string_pretty(&f, ron::ser::PrettyConfig::default())
            .expect("a roster always serialises");
        write_file(path, &(text + "\n"), false, false)
    }
}

/// What one process proves itself with, and checks nodes by: who it is,
/// its private key, and the roster.
#[derive(Clone, PartialEq, Eq)]
pub struct Keys {
    /// Who the key makes it.
    pub caller: Caller,
    identity: Arc<Identity>,
    /// Everyone's public keys.
    pub roster: Arc<Roster>,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keys({:?})", self.caller)
    }
}

impl Keys {
    /// Keys from their parts (a node's, read from its files).
    pub fn new(caller: Caller, identity: Identity, roster: Arc<Roster>) -> Keys {
        Keys {
            caller,
            identity: Arc::new(identity),
            roster,
        }
    }

    /// The same key, checking others by `roster`.
    pub fn with_roster(&self, roster: Arc<Roster>) -> Keys {
        Keys {
            roster,
            ..self.clone()
        }
    }

    /// The same key, claiming to be `who` (tests: a key posing as another).
    pub fn as_caller(mut self, who: Caller) -> Keys {
        self.caller = who;
        self
    }

    /// Sign `parts` as `self.caller`.
    pub fn prove(&self, parts: &[&[u8]]) -> Proof {
        self.identity.prove(parts)
    }
}

/// What a node process holds: its own keys, and the client key its RESP
/// front calls the cluster with.
#[derive(Clone, Debug)]
pub struct NodeKeys {
    /// Its own identity.
    pub node: Keys,
    /// The client key.
    pub client: Keys,
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

    fn master() -> Secret {
        Secret::from_bytes([7; 32])
    }

    #[test]
    fn one_nodes_key_signs_as_that_node_and_no_other() {
        let s = master();
        let roster = s.roster("c", &[1, 2, 3]);
        let one = s.node_keys("c", &[1, 2, 3], 1);
        let p = one.node.prove(&[b"hello", b"x"]);
        assert!(roster.nodes[&1].verify(&[b"hello", b"x"], &p));
        assert!(!roster.nodes[&2].verify(&[b"hello", b"x"], &p));
        assert!(!roster.admin.verify(&[b"hello", b"x"], &p));
        // The client key every node holds is not the administrator's either.
        let c = one.client.prove(&[b"hello", b"x"]);
        assert!(roster.client.verify(&[b"hello", b"x"], &c));
        assert!(!roster.admin.verify(&[b"hello", b"x"], &c));
        assert!(
            !roster.nodes[&1].verify(&[b"hellox"], &p),
            "parts are length-prefixed"
        );
    }

    #[test]
    fn the_resp_password_opens_resp_and_derives_nothing() {
        let s = master();
        let roster = s.roster("c", &[1, 2, 3]);
        let pw = s.resp_password("c");
        assert!(roster.is_resp_password(pw.as_bytes()));
        assert!(roster.is_resp_password(format!("{pw}\n").as_bytes()));
        assert!(!roster.is_resp_password(&pw.as_bytes()[..63]));
        assert!(!roster.is_resp_password(b""));
        // Whoever sniffs it and takes it for a master secret gets keys the
        // roster does not know.
        let posing = Secret::from_bytes(unhex(&pw).unwrap());
        let p = posing.identity("c", &Caller::Node(1)).prove(&[b"hello"]);
        assert!(!roster.nodes[&1].verify(&[b"hello"], &p));
        let p = posing.identity("c", &Caller::Admin).prove(&[b"hello"]);
        assert!(!roster.admin.verify(&[b"hello"], &p));
        // Another cluster with the same secret has other keys.
        assert_ne!(s.roster("d", &[1]).nodes[&1], roster.nodes[&1]);
    }

    #[test]
    fn credentials_round_trip_through_private_files_and_exposed_ones_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        let s = Secret::load_or_create(&path).unwrap();
        assert_eq!(Secret::load(&path).unwrap(), s);
        assert_eq!(Secret::load_or_create(&path).unwrap(), s);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = Secret::load(&path).unwrap_err();
        assert!(matches!(e, SecretError::Exposed { mode: 0o640, .. }), "{e}");
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, "not hex").unwrap();
        assert!(matches!(
            Secret::load(&path),
            Err(SecretError::Malformed { .. })
        ));

        let key = dir.path().join("identity");
        let id = s.identity("c", &Caller::Node(2));
        id.save(&key).unwrap();
        assert_eq!(Identity::load(&key).unwrap().public(), id.public());
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o604)).unwrap();
        assert!(matches!(
            Identity::load(&key),
            Err(SecretError::Exposed { .. })
        ));

        let keys = dir.path().join("keys.ron");
        let roster = s.roster("c", &[1, 2, 3]);
        roster.save(&keys).unwrap();
        assert_eq!(Roster::load(&keys).unwrap(), roster);
    }
}
