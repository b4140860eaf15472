//! The client: finds the leader itself (following redirects), retries with the
//! same request id (so a retried command is applied once), gives up after a
//! bounded time, and reports success only for a command that was chosen and
//! applied.
//!
//! It is blocking (one thread per client) and keeps one connection per node.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::cluster::Cluster;
use crate::kv::{Op, OpResult};
use crate::net::{self, Challenge, FrameStream, Hello, Request, Response, Welcome};
use crate::paxos::quorum::majority;
use crate::paxos::{NodeId, Outcome, Slot, Value};

/// Why an operation did not complete.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum ClientError {
    /// No leader could commit it in time.
    #[error("no quorum: {answered} of {total} nodes answered and none could commit within {secs:.1} s; a majority needs {majority}{}", if *.maybe_applied { " (the operation may still be applied)" } else { "" })]
    NoQuorum {
        /// Nodes that answered at all.
        answered: usize,
        /// Nodes in the cluster.
        total: usize,
        /// The majority.
        majority: usize,
        /// The time spent.
        secs: f64,
        /// True if a leader may have proposed it (its outcome is unknown).
        maybe_applied: bool,
    },
    /// The nodes kept refusing new commands: too many were waiting (at the
    /// leader, at the node asked, or for a lagging replica).
    #[error("busy: the nodes had too many commands waiting for {secs:.1} s; nothing was applied, retry later")]
    Busy {
        /// The time spent.
        secs: f64,
    },
    /// The replicas forgot this client (it was idle while many others came).
    #[error("this client's session expired (it was idle while the cluster saw many other clients); the command was not applied now, but an earlier attempt may have been")]
    Expired,
    /// The operation is above the size limit: refused before anything is sent.
    #[error("the operation's key and value are {size} bytes; the limit is {limit} bytes (1 MiB); nothing was sent")]
    TooLarge {
        /// Its key and value, in bytes.
        size: usize,
        /// [`crate::paxos::MAX_OP_BYTES`].
        limit: usize,
    },
    /// A node refused the request outright (nothing was proposed).
    #[error("node {node} refused it: {why}")]
    Refused {
        /// The node.
        node: NodeId,
        /// Its reason.
        why: String,
    },
    /// The node asked is not the leader and the client may not go elsewhere.
    #[error("node {node} is not the leader ({}){}", .leader.map_or("no leader known".to_string(), |l| format!("node {l} is")), if *.maybe_applied { "; an earlier attempt went unanswered, so the operation may still be applied" } else { "" })]
    NotLeader {
        /// The node asked.
        node: NodeId,
        /// Who it believes leads.
        leader: Option<NodeId>,
        /// True if an earlier attempt may have been proposed.
        maybe_applied: bool,
    },
}

impl ClientError {
    /// The same error for an operation never sent (its session could not be
    /// opened): whatever became of the registration, it was not applied.
    fn not_sent(self) -> Self {
        match self {
            ClientError::NoQuorum {
                answered,
                total,
                majority,
                secs,
                ..
            } => ClientError::NoQuorum {
                answered,
                total,
                majority,
                secs,
                maybe_applied: false,
            },
            ClientError::NotLeader { node, leader, .. } => ClientError::NotLeader {
                node,
                leader,
                maybe_applied: false,
            },
            other => other,
        }
    }

    /// True if the operation may have been applied (its outcome is unknown).
    pub fn maybe_applied(&self) -> bool {
        match self {
            ClientError::NoQuorum { maybe_applied, .. }
            | ClientError::NotLeader { maybe_applied, .. } => *maybe_applied,
            ClientError::Busy { .. }
            | ClientError::TooLarge { .. }
            | ClientError::Refused { .. } => false,
            ClientError::Expired => true,
        }
    }
}

/// One connection to one node.
struct Link {
    reader: Connection,
    /// The read timeout last set on the socket (set again only when it changes
    /// by more than 10 ms, to save a system call per operation).
    timeout: Option<Duration>,
}

/// A client of one cluster.
///
/// Before its first write it opens a session (`Op::Register`, chosen through
/// the log): the replicas number it, and its writes carry that number, so a
/// retried write is applied once however many times it is proposed. A
/// session the replicas forgot is opened again, and the write sent again if
/// no earlier attempt of it can have been applied; otherwise the write ends
/// as [`ClientError::Expired`], its outcome unknown.
pub struct Client {
    cluster: Cluster,
    /// The session the replicas gave this client, once it registered.
    session: Option<u64>,
    /// This client's own random number: what its reads carry before it
    /// has a session.
    nonce: u64,
    seq: u64,
    links: BTreeMap<NodeId, Link>,
    leader: Option<NodeId>,
    next: usize,
    /// Give up on an operation after this long.
    pub timeout: Duration,
    /// Wait this long for one node's answer before trying another.
    pub attempt_timeout: Duration,
    /// Only ever talk to this node (no redirects).
    pub pinned: Option<NodeId>,
    /// Start every operation at this node, and follow its redirect (as
    /// Jepsen binds each client to a node): a node that wrongly believes
    /// it leads is asked, not only the leader the client last found.
    pub home: Option<NodeId>,
}

/// How a command's attempts ended, short of an error.
struct Ended {
    outcome: Outcome,
    /// True if an attempt other than the one answered may have been proposed.
    maybe_applied: bool,
}

impl Client {
    /// A client of `cluster`; it opens its session at its first write.
    pub fn new(cluster: Cluster) -> Self {
        Client {
            cluster,
            session: None,
            nonce: fresh_nonce(),
            seq: 0,
            links: BTreeMap::new(),
            leader: None,
            next: 0,
            timeout: Duration::from_secs(5),
            attempt_timeout: Duration::from_millis(1000),
            pinned: None,
            home: None,
        }
    }

    /// The id this client's last command carried: its session, or before it
    /// opened one, its own random number.
    pub fn id(&self) -> u64 {
        self.session.unwrap_or(self.nonce)
    }

    /// The sequence number of the last operation.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The cluster it is a client of.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The node this client believes leads.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// This client's session, opened now if it has none.
    pub fn session(&mut self) -> Result<u64, ClientError> {
        match self.session {
            Some(s) => Ok(s),
            None => self.register(Instant::now() + self.timeout),
        }
    }

    /// Open a session (a retried registration may open two: the extra one
    /// is forgotten in time). A fresh random number each time, so that an
    /// answer to an earlier registration is never taken for this one's.
    fn register(&mut self, deadline: Instant) -> Result<u64, ClientError> {
        self.session = None;
        self.nonce = fresh_nonce();
        match self.run(self.nonce, 0, &Op::Register, deadline)?.outcome {
            Outcome::Registered { session } => {
                self.session = Some(session);
                Ok(session)
            }
            other => Err(ClientError::Refused {
                node: self.leader.unwrap_or(0),
                why: format!("a registration answered {other:?}"),
            }),
        }
    }

    /// Ask the leader for a membership change (`op` is an `Op::Reconfig`):
    /// its answer, `Reconfigured` or `Refused`. No session: a change is
    /// proposed by the leader as its own, never applied to the map.
    pub fn change(&mut self, op: Op) -> Result<Outcome, ClientError> {
        let deadline = Instant::now() + self.timeout;
        let id = fresh_nonce();
        Ok(self.run(id, 1, &op, deadline)?.outcome)
    }

    /// Run `op` through the replicated log.
    pub fn execute(&mut self, op: Op) -> Result<OpResult, ClientError> {
        if op.size() > net::MAX_OP_BYTES {
            return Err(ClientError::TooLarge {
                size: op.size(),
                limit: net::MAX_OP_BYTES,
            });
        }
        let deadline = Instant::now() + self.timeout;
        if !op.is_read() && self.session.is_none() {
            self.register(deadline).map_err(ClientError::not_sent)?;
        }
        self.seq += 1;
        loop {
            let ended = self.run(self.id(), self.seq, &op, deadline)?;
            match ended.outcome {
                Outcome::Done(result) => return Ok(result),
                // Forgotten, and no earlier attempt can have been applied:
                // open a new session and send it again.
                Outcome::Expired if !ended.maybe_applied => {
                    self.register(deadline).map_err(ClientError::not_sent)?;
                }
                Outcome::Expired | Outcome::Stale { .. } => return Err(ClientError::Expired),
                other => {
                    return Err(ClientError::Refused {
                        node: self.leader.unwrap_or(0),
                        why: format!("a command answered {other:?}"),
                    })
                }
            }
        }
    }

    /// Send command `(client, seq)` until a leader answers it for good or
    /// `deadline` passes.
    fn run(
        &mut self,
        client: u64,
        seq: u64,
        op: &Op,
        deadline: Instant,
    ) -> Result<Ended, ClientError> {
        let started = Instant::now();
        let mut answered: BTreeSet<NodeId> = BTreeSet::new();
        let mut maybe_applied = false;
        let mut busy = false;
        let ids = self.cluster.ids();
        let mut tried_without_leader = 0;
        // An election usually takes a few milliseconds (a leader's death is
        // seen at once): wait briefly first, longer if it goes on.
        let mut no_leader_wait = Duration::from_millis(2);
        if let Some(home) = self.home {
            self.leader = Some(home);
        }
        loop {
            let now = Instant::now();
            if now >= deadline && busy && !maybe_applied {
                return Err(ClientError::Busy {
                    secs: started.elapsed().as_secs_f64(),
                });
            }
            if now >= deadline {
                return Err(ClientError::NoQuorum {
                    answered: answered.len(),
                    total: ids.len(),
                    majority: majority(ids.len()),
                    secs: started.elapsed().as_secs_f64(),
                    maybe_applied,
                });
            }
            let target = match (self.pinned, self.leader) {
                (Some(p), _) => p,
                (None, Some(l)) => l,
                (None, None) => {
                    self.next += 1;
                    ids[self.next % ids.len()]
                }
            };
            let wait = self.attempt_timeout.min(deadline - now);
            let request = Request::Op {
                client,
                seq,
                op: op.clone(),
            };
            match self.ask(target, &request, wait, |r| {
                matches!(r, Response::Op { client: c, seq: s, .. } if *c == client && *s == seq)
                    || matches!(r, Response::Error(_))
            }) {
                Ok(Response::Error(why)) => return Err(ClientError::Refused { node: target, why }),
                Ok(Response::Op {
                    outcome: Outcome::Busy,
                    ..
                }) => {
                    // The leader has too much waiting; nothing was proposed.
                    answered.insert(target);
                    busy = true;
                    let left = deadline.saturating_duration_since(Instant::now());
                    std::thread::sleep(Duration::from_millis(10).min(left));
                }
                Ok(Response::Op {
                    outcome: Outcome::NotLeader { leader },
                    ..
                }) => {
                    answered.insert(target);
                    if let Some(p) = self.pinned {
                        return Err(ClientError::NotLeader {
                            node: p,
                            leader,
                            maybe_applied,
                        });
                    }
                    self.leader = leader.filter(|&l| l != target);
                    if self.leader.is_none() {
                        tried_without_leader += 1;
                        if tried_without_leader >= ids.len() {
                            // Nobody leads right now: give an election time.
                            tried_without_leader = 0;
                            std::thread::sleep(
                                no_leader_wait
                                    .min(deadline.saturating_duration_since(Instant::now())),
                            );
                            no_leader_wait = (no_leader_wait * 2).min(Duration::from_millis(50));
                        }
                    }
                }
                Ok(Response::Op { outcome, .. }) => {
                    self.leader = Some(target);
                    return Ok(Ended {
                        outcome,
                        maybe_applied,
                    });
                }
                Ok(_) => {
                    answered.insert(target);
                }
                Err(Silence::Lost { answered: a }) => {
                    // It may have taken the command and then gone silent or
                    // died: the command may be chosen yet.
                    if a {
                        answered.insert(target);
                    }
                    maybe_applied = true;
                    self.leader = None;
                }
                Err(Silence::Refused) => {
                    self.leader = None;
                    if self.pinned.is_some() {
                        std::thread::sleep(
                            Duration::from_millis(50)
                                .min(deadline.saturating_duration_since(Instant::now())),
                        );
                    }
                }
            }
        }
    }

    /// Send `req` to node `id` and wait up to `wait` for a response `wanted`
    /// accepts (others, stale answers to earlier attempts, are skipped).
    fn ask(
        &mut self,
        id: NodeId,
        req: &Request,
        wait: Duration,
        wanted: impl Fn(&Response) -> bool,
    ) -> Result<Response, Silence> {
        let deadline = Instant::now() + wait;
        if !self.links.contains_key(&id) {
            let addr = self.cluster.node(id).ok_or(Silence::Refused)?.addr;
            let reader = connect(addr, &self.cluster, wait).map_err(|_| Silence::Refused)?;
            self.links.insert(
                id,
                Link {
                    reader,
                    timeout: None,
                },
            );
        }
        let link = self.links.get_mut(&id).expect("inserted");
        if link.reader.send(&net::encode(req)).is_err() {
            // A frame cut short is dropped whole by the node: nothing was asked.
            self.links.remove(&id);
            return Err(Silence::Refused);
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.links.remove(&id);
                return Err(Silence::Lost { answered: true });
            }
            let slack = Duration::from_millis(10);
            if link
                .timeout
                .is_none_or(|t| t > left + slack || t + slack < left)
            {
                let _ = link.reader.get_ref().set_read_timeout(Some(left));
                link.timeout = Some(left);
            }
            match link.reader.recv() {
                Ok(frame) => match net::decode::<Response>(&frame) {
                    Ok(r) if wanted(&r) => return Ok(r),
                    Ok(_) => continue,
                    Err(_) => {
                        self.links.remove(&id);
                        return Err(Silence::Lost { answered: true });
                    }
                },
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    // The connection may now carry a late answer: start afresh next time.
                    self.links.remove(&id);
                    return Err(Silence::Lost { answered: true });
                }
                Err(_) => {
                    self.links.remove(&id);
                    return Err(Silence::Lost { answered: false });
                }
            }
        }
    }
}

enum Silence {
    /// Asked, and then no answer: in time (`answered`: the node was up) or at
    /// all (the connection broke). The node may have proposed the command.
    Lost { answered: bool },
    /// Could not connect or send: the node never saw the request.
    Refused,
}

/// A number unique with overwhelming probability (below 2^63).
pub fn fresh_id() -> u64 {
    crate::rng::os_u64() >> 1
}

/// A client's own random number (2^63 and above: never a session number,
/// which the log counts up from 1).
fn fresh_nonce() -> u64 {
    crate::rng::os_u64() | 1 << 63
}

/// A connection to a node, framed.
pub type Connection = FrameStream<TcpStream>;

/// Connect to a node and shake hands with the cluster's keys (the
/// administrator's or the client's): answer its challenge signed with ours,
/// and check its signature back. Returns once it welcomed us.
pub fn connect(
    addr: SocketAddr,
    cluster: &Cluster,
    timeout: Duration,
) -> std::io::Result<Connection> {
    let keys = cluster.keys()?;
    let timeout = timeout.max(Duration::from_millis(1));
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(timeout))?;
    let mut conn = FrameStream::new(stream);
    let challenge: Challenge = net::decode(&conn.recv()?).map_err(std::io::Error::other)?;
    if let Some(why) = challenge.refusal() {
        return Err(std::io::Error::other(why));
    }
    // The challenge must come from the node that listens there, or a stranger
    // could relay another node's challenge and use our answer there.
    let dialled = cluster.nodes.iter().find(|n| n.addr == addr).map(|n| n.id);
    if dialled != Some(challenge.node) {
        return Err(std::io::Error::other(format!(
            "{addr} answered as node {}, which does not listen there",
            challenge.node
        )));
    }
    let hello = Hello::new(&cluster.name, keys, &challenge);
    conn.send(&net::encode(&hello))?;
    let welcome: Welcome = net::decode(&conn.recv()?).map_err(std::io::Error::other)?;
    if !welcome.genuine(&cluster.name, &keys.roster, &challenge, &hello) {
        return Err(std::io::Error::other(format!(
            "{addr} did not prove it is node {} of cluster {:?}",
            challenge.node, cluster.name
        )));
    }
    Ok(conn)
}

/// Ask node `addr` one question (status, log, faults) on a fresh connection.
pub fn query(
    addr: SocketAddr,
    cluster: &Cluster,
    req: &Request,
    timeout: Duration,
) -> std::io::Result<Response> {
    let mut conn = connect(addr, cluster, timeout)?;
    conn.send(&net::encode(req))?;
    net::decode(&conn.recv()?).map_err(std::io::Error::other)
}

/// The lowest slot every answering node still holds in its log (0: nothing
/// compacted anywhere): history below it lives only in snapshots.
pub fn log_floor(cluster: &Cluster, timeout: Duration) -> Slot {
    log_floors(cluster, timeout)
        .into_values()
        .min()
        .unwrap_or(0)
}

/// Each answering node's floor: the first slot its log still holds.
pub fn log_floors(cluster: &Cluster, timeout: Duration) -> BTreeMap<NodeId, Slot> {
    cluster
        .nodes
        .iter()
        .filter_map(|n| {
            let req = Request::Log { from: 0, limit: 1 };
            match query(n.addr, cluster, &req, timeout) {
                Ok(Response::Log { floor, .. }) => Some((n.id, floor)),
                _ => None,
            }
        })
        .collect()
}

/// Every node's chosen log from slot `from` on, asked in parallel: one page of
/// at most `limit` entries per node, or with `all`, page after page to the
/// end. Nodes that do not answer are left out.
pub fn fetch_logs(
    cluster: &Cluster,
    from: Slot,
    limit: usize,
    all: bool,
    timeout: Duration,
) -> BTreeMap<NodeId, BTreeMap<Slot, Value>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = cluster
            .nodes
            .iter()
            .map(|n| {
                s.spawn(move || {
                    let mut log = BTreeMap::new();
                    let mut next = from;
                    loop {
                        let req = Request::Log { from: next, limit };
                        match query(n.addr, cluster, &req, timeout) {
                            Ok(Response::Log { entries, .. }) => {
                                let more = all && !entries.is_empty();
                                next = entries.last().map_or(next, |e| e.0 + 1);
                                log.extend(entries);
                                if !more {
                                    return Some((n.id, log));
                                }
                            }
                            _ if log.is_empty() => return None,
                            _ => return Some((n.id, log)),
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().ok().flatten())
            .collect()
    })
}
