//! The run directory of a cluster that is up: `.synod/<name>/`.
//!
//! ```text
//! .synod/<name>/cluster.ron     the cluster file the nodes run with
//! .synod/<name>/state.json      the process ids synod started, pauses, faults
//! .synod/<name>/secret          the master secret (mode 0600), kept across down/up
//! .synod/<name>/keys.ron        the public roster: every node's key, the client's, the administrator's
//! .synod/<name>/client.key      the client key the nodes' RESP fronts call with (0600)
//! .synod/<name>/resp-password   what RESP clients give AUTH (0600)
//! .synod/<name>/node-<id>/      a node's logs (acceptor.log, learner.log) and its identity (0600)
//! .synod/<name>/node-<id>.log   a node's own output
//! ```

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Cluster, ClusterError};
use crate::net::auth::SecretError;
use crate::net::{NetFaults, Secret};
use crate::paxos::{NodeId, Rule};

/// The folder under the current directory that holds run directories.
pub const BASE: &str = ".synod";

/// What synod remembers about one node it started.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    /// The process id it started, while it runs.
    pub pid: Option<u32>,
    /// Stopped with SIGSTOP.
    pub paused: bool,
    /// The message faults it was given (re-applied when it restarts).
    pub faults: NetFaults,
}

/// What synod remembers about a cluster it started.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Per node.
    pub nodes: BTreeMap<NodeId, NodeState>,
    /// A rule the nodes run without (teaching runs only).
    pub broken: Option<Rule>,
    /// The foreground `synod up` supervising the nodes, if any.
    pub launcher: Option<u32>,
    /// The network namespaces and bridge of `up --netns`, while they exist.
    #[serde(default)]
    pub netns: Option<NetNs>,
}

/// The hosts of a cluster brought up with `--netns` (`launcher::netns`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetNs {
    /// The subnet is 10.77.`subnet`.0/24.
    pub subnet: u8,
    /// The bridge in the host namespace.
    pub bridge: String,
    /// The namespaces made, by node.
    pub spaces: Vec<(NodeId, String)>,
}

/// A run directory that cannot be used: none by that name, none or several
/// here, or its cluster file or secret unreadable. The user's to fix.
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    /// No cluster by that name is up here.
    #[error("no cluster named {name:?} in {} (bring it up with `synod up`)", base.display())]
    NoSuchCluster {
        /// The name asked for.
        name: String,
        /// Where run directories are.
        base: PathBuf,
    },
    /// No cluster is up here.
    #[error("no cluster here ({} has none); bring one up with `synod up`", base.join("").display())]
    NoCluster {
        /// Where run directories are.
        base: PathBuf,
    },
    /// Several are, and none was named.
    #[error("several clusters here ({}); pick one with --cluster NAME", names.join(", "))]
    Several {
        /// Their names.
        names: Vec<String>,
    },
    /// Its cluster file does not read.
    #[error(transparent)]
    File(#[from] ClusterError),
    /// Its secret does not read.
    #[error(transparent)]
    Secret(#[from] SecretError),
}

/// The state file could not be locked or written: an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The lock file cannot be opened.
    #[error("cannot open {}: {source}", path.display())]
    Open {
        /// The lock file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The lock cannot be taken.
    #[error("cannot lock {}", path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The state cannot be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The state file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A cluster's run directory.
#[derive(Clone, Debug)]
pub struct RunDir {
    root: PathBuf,
}

/// An exclusive lock on a run directory's state; released when dropped.
pub struct Lock {
    _file: File,
}

impl RunDir {
    /// The run directory of cluster `name` under `base`.
    pub fn new(base: &Path, name: &str) -> Self {
        RunDir {
            root: base.join(name),
        }
    }

    /// The run directory to use: the one named, or the only one there is.
    pub fn find(base: &Path, name: Option<&str>) -> Result<RunDir, RunDirError> {
        if let Some(name) = name {
            let dir = RunDir::new(base, name);
            if !dir.cluster_file().exists() {
                return Err(RunDirError::NoSuchCluster {
                    name: name.to_string(),
                    base: base.to_path_buf(),
                });
            }
            return Ok(dir);
        }
        let mut names: Vec<String> = std::fs::read_dir(base)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter(|e| e.path().join("cluster.ron").exists())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        match names.len() {
            0 => Err(RunDirError::NoCluster {
                base: base.to_path_buf(),
            }),
            1 => Ok(RunDir::new(base, &names[0])),
            _ => Err(RunDirError::Several { names }),
        }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The cluster file the nodes run with.
    pub fn cluster_file(&self) -> PathBuf {
        self.root.join("cluster.ron")
    }

    /// The secret file.
    pub fn secret_file(&self) -> PathBuf {
        self.root.join("secret")
    }

    /// The public roster of keys (every node reads it).
    pub fn keys_file(&self) -> PathBuf {
        self.root.join("keys.ron")
    }

    /// The client key (every node's RESP front calls the cluster with it).
    pub fn client_key_file(&self) -> PathBuf {
        self.root.join("client.key")
    }

    /// The password RESP clients give AUTH.
    pub fn resp_password_file(&self) -> PathBuf {
        self.root.join("resp-password")
    }

    /// Node `id`'s own key, in its data directory.
    pub fn identity_file(&self, id: NodeId) -> PathBuf {
        self.node_dir(id).join("identity")
    }

    /// The state file.
    pub fn state_file(&self) -> PathBuf {
        self.root.join("state.json")
    }

    /// Node `id`'s data directory.
    pub fn node_dir(&self, id: NodeId) -> PathBuf {
        self.root.join(format!("node-{id}"))
    }

    /// Node `id`'s output.
    pub fn node_log(&self, id: NodeId) -> PathBuf {
        self.root.join(format!("node-{id}.log"))
    }

    /// The cluster this directory runs, with its secret.
    pub fn cluster(&self) -> Result<Cluster, RunDirError> {
        let cluster = Cluster::load(&self.cluster_file())?;
        let secret = Secret::load(&self.secret_file())?;
        Ok(cluster.with_secret(secret))
    }

    /// The remembered state (empty if none was saved).
    pub fn state(&self) -> State {
        std::fs::read(self.state_file())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Save the state, atomically (write a temporary file, then rename).
    pub fn save(&self, state: &State) -> Result<(), StateError> {
        let tmp = self.root.join("state.json.tmp");
        let text = serde_json::to_vec_pretty(state).expect("state serialises");
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, self.state_file()))
            .map_err(|source| StateError::Write {
                path: self.state_file(),
                source,
            })
    }

    /// Take the state lock (so two synod commands do not interleave their
    /// read-modify-write of the state).
    pub fn lock(&self) -> Result<Lock, StateError> {
        let path = self.root.join("lock");
        let file = match File::create(&path) {
            Ok(f) => f,
            Err(source) => return Err(StateError::Open { path, source }),
        };
        // SAFETY: flock on a descriptor we own; it is released when the file closes.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            let source = std::io::Error::last_os_error();
            return Err(StateError::Lock { path, source });
        }
        Ok(Lock { _file: file })
    }
}
