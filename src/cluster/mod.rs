//! Cluster files: parse, validate, defaults; and the run directory.
//!
//! A cluster file is RON (DESIGN.md §2). Every field but `name` and `nodes` is
//! optional. A bad file is refused before anything starts, with `file:line:col`.

pub mod rundir;

use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::net::{Keys, Secret};
use crate::paxos::{NodeId, ProposerConfig, Quorums, ReplicaConfig};

/// The built-in default cluster (`synod up` with no file): five nodes.
pub const DEFAULT_CLUSTER: &str = include_str!("../../clusters/five.ron");
/// How the built-in cluster is named in errors.
pub const DEFAULT_NAME: &str = "<built-in five-node cluster>";

fn default_heartbeat() -> u64 {
    50
}
fn default_election() -> (u64, u64) {
    (150, 300)
}
fn default_true() -> bool {
    true
}
fn default_snapshot_every() -> u64 {
    crate::paxos::replica::SNAPSHOT_EVERY
}

/// The range `snapshot_every` may take.
pub const SNAPSHOT_EVERY_RANGE: std::ops::RangeInclusive<u64> = 10..=500_000;

/// The file as written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename = "Cluster", deny_unknown_fields)]
struct ClusterFile {
    name: String,
    nodes: Vec<NodeEntry>,
    #[serde(default = "default_heartbeat")]
    heartbeat_ms: u64,
    #[serde(default = "default_election")]
    election_timeout_ms: (u64, u64),
    #[serde(default = "default_true")]
    fsync: bool,
    #[serde(default = "default_snapshot_every")]
    snapshot_every: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    redis_auth: bool,
    #[serde(default, with = "bare", skip_serializing_if = "Option::is_none")]
    quorums: Option<Quorums>,
}

/// `quorums: (phase1: 3, phase2: 2)` in the file, not `Some((...))`.
mod bare {
    use super::Quorums;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(q: &Option<Quorums>, s: S) -> Result<S::Ok, S::Error> {
        match q {
            Some(q) => q.serialize(s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Quorums>, D::Error> {
        Quorums::deserialize(d).map(Some)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeEntry {
    id: NodeId,
    addr: String,
    /// Empty: no RESP port (a plain string, so the file says
    /// `redis_addr: "127.0.0.1:8101"` rather than `Some(...)`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    redis_addr: String,
    /// Added at run time (`synod member add`): not in configuration 0.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    joined: bool,
    /// Empty: started here. Otherwise `[user@]host`: started over SSH there.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    ssh: String,
    /// With `ssh`: the folder on that host for the binary and the node's
    /// files (relative to the login's home, or absolute); empty:
    /// `.synod-remote`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    ssh_dir: String,
}

/// One node of a validated cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSpec {
    /// Its id (1-based, unique).
    pub id: NodeId,
    /// Where it listens, for peers and clients alike.
    pub addr: SocketAddr,
    /// Where it serves the Redis protocol (RESP2), if it does.
    pub redis_addr: Option<SocketAddr>,
    /// Added at run time (`synod member add`, or `joined: true` in the
    /// file: a spare): not a member of configuration 0.
    pub joined: bool,
    /// The host it is started on over SSH (`[user@]host`), or `None`: here.
    #[serde(default)]
    pub ssh: Option<String>,
    /// With `ssh`: the folder there for the binary and the node's files.
    #[serde(default)]
    pub ssh_dir: Option<String>,
}

/// Nodes a run directory's cluster file may record, those added at run
/// time included.
pub const MAX_RECORDED: usize = 4096;

/// A validated cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    /// Its name, also the run directory's name.
    pub name: String,
    /// Its nodes, in file order.
    pub nodes: Vec<NodeSpec>,
    /// Milliseconds between a leader's heartbeats.
    pub heartbeat_ms: u64,
    /// Election timeout range in milliseconds.
    pub election_timeout_ms: (u64, u64),
    /// Sync the acceptor's log before answering.
    pub fsync: bool,
    /// Take a snapshot every this many applied slots, and compact the logs.
    pub snapshot_every: u64,
    /// RESP clients must AUTH with the cluster's RESP password (then a RESP port may
    /// listen beyond loopback).
    pub redis_auth: bool,
    /// Flexible quorums (phase 1 to lead, phase 2 to choose); `None`: majorities.
    pub quorums: Option<Quorums>,
    /// The keys this process calls nodes with, when known: never in the
    /// cluster file; the administrator's come from the run directory's
    /// secret (`.synod/<name>/secret`), a node's RESP front has the client
    /// key. Every connection to a node must prove one.
    #[serde(skip)]
    pub keys: Option<Keys>,
}

/// A cluster file that cannot be used: where and why (`file:line:col: why`,
/// or `file: why` when the place is unknown).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{place} {message}", place = place(*.line, *.col))]
pub struct ClusterError {
    /// The file (or the built-in cluster's name).
    pub file: String,
    /// 1-based line, 0 if unknown.
    pub line: usize,
    /// 1-based column, 0 if unknown.
    pub col: usize,
    /// What is wrong.
    pub message: String,
}

/// `line:col:` of a place in a file, or nothing if it is unknown.
fn place(line: usize, col: usize) -> String {
    if line > 0 {
        format!("{line}:{col}:")
    } else {
        String::new()
    }
}

/// Why a node cannot be given a RESP port at its own port plus 1000
/// ([`Cluster::with_redis`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RespPortError {
    /// The port would be past the last one.
    #[error(
        "node {node}: port {port} + 1000 is past 65535; give it a redis_addr in the cluster file"
    )]
    PastTheEnd {
        /// The node.
        node: NodeId,
        /// Its port.
        port: u16,
    },
    /// Another node has that address already.
    #[error("node {node}: {addr} (its port + 1000) is taken by another node; give it a redis_addr in the cluster file")]
    Taken {
        /// The node.
        node: NodeId,
        /// The address it would get.
        addr: SocketAddr,
    },
}

impl Cluster {
    /// The built-in five-node cluster.
    pub fn builtin() -> Cluster {
        Cluster::parse(DEFAULT_CLUSTER, DEFAULT_NAME).expect("the built-in cluster is valid")
    }

    /// Read and validate the cluster file at `path`.
    pub fn load(path: &Path) -> Result<Cluster, ClusterError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ClusterError {
            file: file.clone(),
            line: 0,
            col: 0,
            message: format!("cannot read the cluster file: {e}"),
        })?;
        Cluster::parse(&text, &file)
    }

    /// Parse and validate cluster file text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Cluster, ClusterError> {
        let at = |offset: Option<usize>, message: String| {
            let (line, col) = offset.map_or((0, 0), |o| line_col(text, o));
            ClusterError {
                file: file.to_string(),
                line,
                col,
                message,
            }
        };
        let raw: ClusterFile = ron::from_str(text).map_err(|e| ClusterError {
            file: file.to_string(),
            line: e.span.start.line,
            col: e.span.start.col,
            message: ron_message(&e.code),
        })?;
        if raw.name.is_empty()
            || !raw
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(at(
                find(text, "name", 0),
                format!(
                    "cluster name {:?} must be non-empty letters, digits, '-' or '_' (it names a directory)",
                    raw.name
                ),
            ));
        }
        if raw.nodes.is_empty() {
            return Err(at(
                find(text, "nodes", 0),
                "the node list is empty; a cluster needs at least one node".into(),
            ));
        }
        // 64 nodes a user writes; those added at run time (`joined`) are
        // bounded apart: a run that replaces nodes for an hour (the chaos
        // membership nemesis) records one per replacement.
        let declared = raw.nodes.iter().filter(|n| !n.joined).count();
        if declared > 64 || raw.nodes.len() > MAX_RECORDED {
            return Err(at(
                find(text, "nodes", 0),
                if declared > 64 {
                    format!("{declared} nodes; synod supports at most 64")
                } else {
                    format!(
                        "{} nodes recorded; at most {MAX_RECORDED} with those added at run time",
                        raw.nodes.len()
                    )
                },
            ));
        }
        let mut nodes: Vec<NodeSpec> = Vec::new();
        for (i, n) in raw.nodes.iter().enumerate() {
            if n.id == 0 {
                return Err(at(
                    find_id(text, 0, 0),
                    "node ids start at 1; 0 is not a valid id".into(),
                ));
            }
            if nodes.iter().any(|m| m.id == n.id) {
                let nth = raw.nodes[..i].iter().filter(|m| m.id == n.id).count();
                return Err(at(
                    find_id(text, n.id, nth),
                    format!("duplicate node id {}", n.id),
                ));
            }
            let addr: SocketAddr = n.addr.parse().map_err(|_| {
                at(
                    find(text, &format!("{:?}", n.addr), 0),
                    format!(
                        "node {}: bad address {:?}; expected IP:PORT such as \"127.0.0.1:7101\"",
                        n.id, n.addr
                    ),
                )
            })?;
            if addr.port() == 0 {
                return Err(at(
                    find(text, &format!("{:?}", n.addr), 0),
                    format!("node {}: port 0 is not a fixed port", n.id),
                ));
            }
            if let Some(m) = nodes.iter().find(|m| m.addr == addr) {
                return Err(at(
                    find(text, &format!("{:?}", n.addr), 1)
                        .or_else(|| find(text, &format!("{:?}", n.addr), 0)),
                    format!(
                        "duplicate address {addr}: nodes {} and {} both use it",
                        m.id, n.id
                    ),
                ));
            }
            let redis_addr = match n.redis_addr.as_str() {
                "" => None,
                ra => {
                    let pos = || find(text, &format!("{ra:?}"), 0);
                    let r: SocketAddr = ra.parse().map_err(|_| {
                        at(
                            pos(),
                            format!("node {}: bad redis_addr {ra:?}; expected IP:PORT such as \"127.0.0.1:8101\"", n.id),
                        )
                    })?;
                    if r.port() == 0 {
                        return Err(at(
                            pos(),
                            format!("node {}: redis_addr port 0 is not a fixed port", n.id),
                        ));
                    }
                    if !r.ip().is_loopback() && !raw.redis_auth {
                        return Err(at(
                            pos(),
                            format!(
                                "node {}: redis_addr {r} is not a loopback address; add `redis_auth: true` so RESP clients must AUTH with the cluster's RESP password (as Redis's protected mode asks)",
                                n.id
                            ),
                        ));
                    }
                    Some(r)
                }
            };
            let ssh = match n.ssh.as_str() {
                "" => None,
                t if t.starts_with('-')
                    || t.chars()
                        .any(|c| c.is_whitespace() || c == '\'' || c == '"') =>
                {
                    return Err(at(
                        find(text, &format!("{t:?}"), 0),
                        format!(
                            "node {}: bad ssh target {t:?}; expected user@host or host",
                            n.id
                        ),
                    ))
                }
                t => Some(t.to_string()),
            };
            let ssh_dir = match n.ssh_dir.as_str() {
                "" => None,
                d if d.chars().any(|c| c.is_whitespace() || "'\"$`\\;&|".contains(c)) => {
                    return Err(at(
                        find(text, &format!("{d:?}"), 0),
                        format!("node {}: ssh_dir {d:?} may not hold spaces, quotes or shell characters", n.id),
                    ))
                }
                d => Some(d.to_string()),
            };
            nodes.push(NodeSpec {
                id: n.id,
                addr,
                redis_addr,
                joined: n.joined,
                ssh,
                ssh_dir,
            });
        }
        let mut ports: Vec<(SocketAddr, NodeId)> = Vec::new();
        for n in &nodes {
            for a in std::iter::once(n.addr).chain(n.redis_addr) {
                if let Some((_, other)) = ports.iter().find(|(p, _)| *p == a) {
                    return Err(at(
                        find(text, &format!("{:?}", a.to_string()), 1)
                            .or_else(|| find(text, &format!("{:?}", a.to_string()), 0)),
                        format!(
                            "duplicate address {a}: nodes {other} and {} both use it",
                            n.id
                        ),
                    ));
                }
                ports.push((a, n.id));
            }
        }
        let (lo, hi) = raw.election_timeout_ms;
        if lo == 0 || lo > hi {
            return Err(at(
                find(text, "election_timeout_ms", 0),
                format!("election_timeout_ms ({lo}, {hi}) is an empty range; use (min, max) with 0 < min <= max, e.g. (150, 300)"),
            ));
        }
        if raw.heartbeat_ms == 0 || raw.heartbeat_ms >= lo {
            return Err(at(
                find(text, "heartbeat_ms", 0),
                format!(
                    "heartbeat_ms {} must be above 0 and below the election timeout's minimum ({lo}), or followers would start elections against a live leader",
                    raw.heartbeat_ms
                ),
            ));
        }
        let initial = nodes.iter().filter(|n| !n.joined).count();
        if initial == 0 {
            return Err(at(
                find(text, "joined", 0),
                "every node is marked joined; configuration 0 needs at least one node that is not"
                    .into(),
            ));
        }
        if let Some(why) = raw
            .quorums
            .and_then(|q| q.problem(initial, crate::paxos::Rules::ALL))
        {
            return Err(at(find(text, "quorums", 0), why));
        }
        if !SNAPSHOT_EVERY_RANGE.contains(&raw.snapshot_every) {
            return Err(at(
                find(text, "snapshot_every", 0),
                format!(
                    "snapshot_every {} is out of range: take a snapshot every {} to {} slots (default {})",
                    raw.snapshot_every,
                    SNAPSHOT_EVERY_RANGE.start(),
                    SNAPSHOT_EVERY_RANGE.end(),
                    crate::paxos::replica::SNAPSHOT_EVERY
                ),
            ));
        }
        Ok(Cluster {
            name: raw.name,
            nodes,
            heartbeat_ms: raw.heartbeat_ms,
            election_timeout_ms: raw.election_timeout_ms,
            fsync: raw.fsync,
            snapshot_every: raw.snapshot_every,
            redis_auth: raw.redis_auth,
            quorums: raw.quorums,
            keys: None,
        })
    }

    /// This cluster as RON text, in the shape of the shipped files (a node a
    /// line): what `up` writes into the run directory, and what tests write.
    pub fn to_ron(&self) -> String {
        let file = ClusterFile {
            name: self.name.clone(),
            nodes: self
                .nodes
                .iter()
                .map(|n| NodeEntry {
                    id: n.id,
                    addr: n.addr.to_string(),
                    redis_addr: n.redis_addr.map_or_else(String::new, |a| a.to_string()),
                    joined: n.joined,
                    ssh: n.ssh.clone().unwrap_or_default(),
                    ssh_dir: n.ssh_dir.clone().unwrap_or_default(),
                })
                .collect(),
            heartbeat_ms: self.heartbeat_ms,
            election_timeout_ms: self.election_timeout_ms,
            fsync: self.fsync,
            snapshot_every: self.snapshot_every,
            redis_auth: self.redis_auth,
            quorums: self.quorums,
        };
        // Pretty down to the list of nodes; each node's fields on one line.
        let pretty = ron::ser::PrettyConfig::default().depth_limit(2);
        let text = ron::ser::to_string_pretty(&file, pretty).expect("a cluster always serialises");
        format!("Cluster{text}\n")
    }

    /// Give every node without one a RESP port: its own port plus 1000, on
    /// the same address.
    pub fn with_redis(mut self) -> Result<Cluster, RespPortError> {
        let taken: Vec<SocketAddr> = self
            .nodes
            .iter()
            .flat_map(|n| std::iter::once(n.addr).chain(n.redis_addr))
            .collect();
        for n in &mut self.nodes {
            if n.redis_addr.is_some() {
                continue;
            }
            let port = n.addr.port();
            let port = port
                .checked_add(1000)
                .ok_or(RespPortError::PastTheEnd { node: n.id, port })?;
            let mut r = n.addr;
            r.set_port(port);
            if taken.contains(&r) {
                return Err(RespPortError::Taken {
                    node: n.id,
                    addr: r,
                });
            }
            n.redis_addr = Some(r);
        }
        Ok(self)
    }

    /// The same cluster, called by its administrator: keys derived from
    /// the master secret.
    pub fn with_secret(self, secret: Secret) -> Cluster {
        let keys = secret.admin_keys(&self.name, &self.ids());
        self.with_keys(keys)
    }

    /// The same cluster, called with `keys`.
    pub fn with_keys(mut self, keys: Keys) -> Cluster {
        self.keys = Some(keys);
        self
    }

    /// The keys this process calls nodes with, or why there are none.
    pub fn keys(&self) -> std::io::Result<&Keys> {
        self.keys.as_ref().ok_or_else(|| {
            std::io::Error::other(format!(
                "no secret known for cluster {:?} (it lives in .synod/{}/secret, made by `synod up`)",
                self.name, self.name
            ))
        })
    }

    /// The node with id `id`.
    pub fn node(&self, id: NodeId) -> Option<&NodeSpec> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// Every node id, in file order (those that joined at run time too).
    pub fn ids(&self) -> Vec<NodeId> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// The voters of configuration 0: the nodes not marked `joined`.
    pub fn initial_ids(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|n| !n.joined)
            .map(|n| n.id)
            .collect()
    }

    /// The length of one protocol tick in ms: a fifth of a heartbeat, at least 1.
    pub fn tick_ms(&self) -> u64 {
        (self.heartbeat_ms / 5).clamp(1, 10)
    }

    /// When replicas snapshot and how much the logs keep below a snapshot.
    pub fn replica_config(&self) -> ReplicaConfig {
        ReplicaConfig::every(self.snapshot_every)
    }

    /// The proposer's timing in ticks, from the file's milliseconds.
    pub fn proposer_config(&self) -> ProposerConfig {
        let t = self.tick_ms();
        let ticks = |ms: u64| ((ms / t).max(1)).min(u32::MAX as u64) as u32;
        ProposerConfig {
            heartbeat_ticks: ticks(self.heartbeat_ms),
            election_ticks: (
                ticks(self.election_timeout_ms.0),
                ticks(self.election_timeout_ms.1),
            ),
            quorums: self.quorums,
            ..ProposerConfig::default()
        }
    }
}

fn ron_message(e: &ron::Error) -> String {
    match e {
        ron::Error::NoSuchStructField {
            expected, found, ..
        } => format!(
            "unknown field `{found}`; expected one of: {}",
            expected.join(", ")
        ),
        ron::Error::MissingStructField { field, .. } => {
            format!("missing field `{field}` (name and nodes are required)")
        }
        other => other.to_string(),
    }
}

/// 1-based (line, col) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, col)
}

/// Byte offset of the `nth` (0-based) occurrence of `needle`.
fn find(text: &str, needle: &str, nth: usize) -> Option<usize> {
    text.match_indices(needle).nth(nth).map(|(i, _)| i)
}

/// Byte offset of the `nth` occurrence of `id: <id>` (any spacing).
fn find_id(text: &str, id: NodeId, nth: usize) -> Option<usize> {
    text.match_indices("id")
        .filter(|(i, _)| {
            let rest = text[i + 2..].trim_start();
            let Some(rest) = rest.strip_prefix(':') else {
                return false;
            };
            let digits: String = rest
                .trim_start()
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse::<NodeId>().ok() == Some(id)
                && !text[..*i].ends_with(|c: char| c.is_alphanumeric() || c == '_')
        })
        .nth(nth)
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"Cluster(
    name: "t",
    nodes: [
        (id: 1, addr: "127.0.0.1:7101"),
        (id: 2, addr: "127.0.0.1:7102"),
    ],
)
"#;

    fn err(text: &str) -> String {
        Cluster::parse(text, "c.ron").unwrap_err().to_string()
    }

    #[test]
    fn at_most_64_declared_nodes_but_more_added_at_run_time() {
        let file = |declared: u64, joined: u64| {
            let nodes: String = (1..=declared + joined)
                .map(|id| {
                    let j = if id > declared { ", joined: true" } else { "" };
                    format!("(id: {id}, addr: \"127.0.0.1:{}\"{j}),", 10000 + id)
                })
                .collect();
            format!("Cluster(name: \"t\", nodes: [{nodes}])")
        };
        // A long membership run records every node it added.
        let c = Cluster::parse(&file(5, 70), "c.ron").unwrap();
        assert_eq!(c.nodes.len(), 75);
        assert!(err(&file(65, 0)).contains("65 nodes; synod supports at most 64"));
        assert!(err(&file(3, MAX_RECORDED as u64)).contains("at most 4096"));
    }

    #[test]
    fn defaults_fill_the_optional_fields() {
        let c = Cluster::parse(GOOD, "c.ron").unwrap();
        assert_eq!(c.heartbeat_ms, 50);
        assert_eq!(c.election_timeout_ms, (150, 300));
        assert!(c.fsync);
        assert_eq!(c.proposer_config().heartbeat_ticks, 5);
        assert_eq!(c.proposer_config().election_ticks, (15, 30));
        let again = Cluster::parse(&c.to_ron(), "x").unwrap();
        assert_eq!(again, c);
        // The shape of the shipped files: a node a line.
        let shape = concat!(
            "Cluster(\n",
            "    name: \"t\",\n",
            "    nodes: [\n",
            "        (id: 1, addr: \"127.0.0.1:7101\"),\n",
        );
        assert!(c.to_ron().starts_with(shape), "{}", c.to_ron());
    }

    #[test]
    fn every_shipped_file_is_valid() {
        for (name, n) in [
            ("three", 3),
            ("four", 4),
            ("five", 5),
            ("six", 6),
            ("seven", 7),
        ] {
            let path = format!("{}/clusters/{name}.ron", env!("CARGO_MANIFEST_DIR"));
            let c = Cluster::load(Path::new(&path)).unwrap();
            assert_eq!((c.name.as_str(), c.nodes.len()), (name, n));
        }
        assert_eq!(Cluster::builtin().nodes.len(), 5);
    }

    #[test]
    fn bad_files_name_the_line_and_column() {
        assert!(
            err("Cluster(name: \"t\", nodes: [(id: 1, addr: \"127.0.0.1:1\")]")
                .starts_with("c.ron:1:")
        );
        let e = err(&GOOD.replace("name: \"t\",", "name: \"t\",\n    colour: 3,"));
        assert!(
            e.starts_with("c.ron:3:") && e.contains("unknown field `colour`"),
            "{e}"
        );
        let e = err(&GOOD.replace("(id: 2,", "(id: 1,"));
        assert!(
            e.starts_with("c.ron:5:10:") && e.contains("duplicate node id 1"),
            "{e}"
        );
        let e = err(&GOOD.replace("7102", "7101"));
        assert!(
            e.starts_with("c.ron:5:") && e.contains("duplicate address"),
            "{e}"
        );
        let e = err(&GOOD.replace("127.0.0.1:7102", "localhost"));
        assert!(
            e.starts_with("c.ron:5:") && e.contains("bad address"),
            "{e}"
        );
        let e = err("Cluster(name: \"t\", nodes: [])");
        assert!(e.starts_with("c.ron:1:") && e.contains("empty"), "{e}");
        let e = err(&GOOD.replace("],\n)", "],\n    election_timeout_ms: (300, 150),\n)"));
        assert!(
            e.starts_with("c.ron:7:5:") && e.contains("empty range"),
            "{e}"
        );
        let e = err("Cluster(nodes: [])");
        assert!(e.contains("missing field `name`"), "{e}");
    }
}
