//! Simulated clients: each issues one operation at a time, follows redirects,
//! retries with the same sequence number on a timeout, gives up after a
//! deadline, and records every invocation and completion in the history the
//! linearizability checker reads. Like the real client, one opens a session
//! (`Op::Register`) before its first write, and opens another when the
//! replicas forgot it.

use std::collections::BTreeMap;

use super::{Ev, World, PROBE_CLIENT};
use crate::check::history::Status;
use crate::kv::{Op, OpResult};
use crate::paxos::{Command, NodeId, Notice, Outcome, Reply};
use crate::rng::Rng;
use crate::sim::Workload;

pub(super) struct Pending {
    op: Op,
    /// The id the command carries: the session, or to register (and for
    /// reads before one is open) the client's own number.
    carries: u64,
    /// Its sequence number (0 for a registration).
    seq: u64,
    /// Its entry in the history (for a registration, the write's).
    hist: usize,
    /// For a registration: the write it opens the session for.
    then: Option<Op>,
    attempt: u32,
    deadline: u64,
    maybe_proposed: bool,
}

/// The number a client registers with: above every session number.
pub(crate) fn nonce(id: u64) -> u64 {
    id | 1 << 63
}

pub(super) struct Client {
    id: u64,
    /// The session the replicas gave it.
    session: Option<u64>,
    rng: Rng,
    target: NodeId,
    seq: u64,
    pub(super) left: usize,
    pub(super) pending: Option<Pending>,
    /// Last value this client saw per key (for cas).
    seen: BTreeMap<String, Option<String>>,
    /// A scripted client: this one operation, to this node alone.
    script: Option<Op>,
}

impl Client {
    /// A client that will do `ops` operations, starting at node `target`.
    pub(super) fn new(id: u64, rng: Rng, target: NodeId, ops: usize) -> Self {
        Client {
            id,
            rng,
            target,
            session: None,
            seq: 0,
            left: ops,
            pending: None,
            seen: BTreeMap::new(),
            script: None,
        }
    }

    /// A scripted client: `op` at node `node`, no redirects.
    pub(super) fn pinned(id: u64, node: NodeId, op: Op) -> Self {
        Client {
            script: Some(op),
            ..Client::new(id, Rng::new(id), node, 1)
        }
    }
}

impl World {
    fn client(&mut self, id: u64) -> Option<&mut Client> {
        self.clients.get_mut(&id)
    }

    /// The client a reply is for: by its own number or its session's.
    fn replied(&self, carried: u64) -> Option<u64> {
        if carried >= nonce(0) {
            Some(carried - nonce(0))
        } else {
            self.sessions.get(&carried).copied()
        }
    }

    /// A probe client did its one operation: forget it (there are many).
    fn retire_probe(&mut self, id: u64) {
        if matches!(self.cfg.workload, Workload::Probe { .. }) && id != PROBE_CLIENT {
            if let Some(s) = self.clients.remove(&id).and_then(|c| c.session) {
                self.sessions.remove(&s);
            }
        }
    }

    pub(super) fn probe_tick(&mut self) {
        let Workload::Probe { every_ms } = self.cfg.workload else {
            return;
        };
        if !self.faults_on {
            return;
        }
        let id = self.next_probe;
        self.next_probe += 1;
        let n = self.cfg.nodes as u64;
        let c = Client::new(id, Rng::derive(self.cfg.seed, 1_000 + id), 1 + id % n, 1);
        self.clients.insert(id, c);
        self.client_next(id);
        let next = self.now + every_ms;
        self.push(next, Ev::ProbeTick);
    }

    pub(super) fn client_next(&mut self, id: u64) {
        let keys = match self.cfg.workload {
            Workload::Cluster { keys, .. } => keys.max(1),
            Workload::Probe { .. } | Workload::Scripted => 0,
            Workload::Decree { .. } => return,
        };
        let Some(c) = self.client(id) else { return };
        if c.left == 0 || c.pending.is_some() {
            return;
        }
        c.left -= 1;
        c.seq += 1;
        let op = if let Some(op) = &c.script {
            op.clone()
        } else if c.id == PROBE_CLIENT {
            Op::Put {
                key: "probe".into(),
                value: "after-faults".into(),
            }
        } else if keys == 0 {
            Op::Put {
                key: format!("p{}", c.id % 64),
                value: format!("probe-{}", c.id),
            }
        } else {
            next_op(c, keys)
        };
        if c.session.is_none() && !op.is_read() {
            self.start(id, Op::Register, Some(op), None);
        } else {
            self.start(id, op, None, None);
        }
    }

    /// Send `op` (or register, with `then` the write to send once
    /// registered) until it is answered or the deadline passes. `going`: the
    /// history entry and deadline of the operation this goes on with (a
    /// write after its registration); the registration is part of it.
    fn start(&mut self, id: u64, op: Op, then: Option<Op>, going: Option<(usize, u64)>) {
        let now = self.now;
        let c = self.client(id).expect("client exists");
        let (carries, seq) = match (&op, c.session) {
            (Op::Register, _) => (nonce(id), 0),
            (_, Some(s)) => (s, c.seq),
            (_, None) => (nonce(id), c.seq),
        };
        let client_seq = c.seq;
        let cmd = Command {
            client: carries,
            seq,
            op: op.clone(),
        };
        let (hist, deadline) = match going {
            Some(g) => g,
            None => {
                let what = then.clone().unwrap_or_else(|| op.clone());
                let hist = self.history.invoke(carries, client_seq, what, now);
                (hist, now + self.cfg.client_deadline_ms)
            }
        };
        self.commands.insert(cmd);
        let c = self.client(id).expect("client exists");
        c.pending = Some(Pending {
            op,
            carries,
            seq,
            hist,
            then,
            attempt: 0,
            deadline,
            maybe_proposed: false,
        });
        self.client_send(id);
    }

    fn client_send(&mut self, id: u64) {
        let now = self.now;
        let (loss, delay) = if self.faults_on {
            (self.cfg.faults.loss, self.cfg.faults.delay_ms)
        } else {
            (0.0, (1, 5))
        };
        let c = self.client(id).expect("client exists");
        let target = c.target;
        let Some(p) = &mut c.pending else { return };
        p.attempt += 1;
        let attempt = p.attempt;
        let seq = p.seq;
        let cmd = Command {
            client: p.carries,
            seq,
            op: p.op.clone(),
        };
        let lost = self.rng.chance(loss);
        let at = now + self.rng.range(delay.0, delay.1);
        if !lost {
            self.push(at, Ev::ClientRequest { node: target, cmd });
        }
        self.push(
            now + self.cfg.client_timeout_ms,
            Ev::ClientTimeout {
                client: id,
                seq,
                attempt,
            },
        );
    }

    pub(super) fn client_request(&mut self, node: NodeId, cmd: Command) {
        if !self.node(node).up {
            return;
        }
        self.note(|| format!("client {} → {node}  {}", cmd.client, cmd.op));
        self.node(node).waiting.insert((cmd.client, cmd.seq));
        self.local(node, Notice::Request(cmd));
    }

    pub(super) fn node_reply(&mut self, node: NodeId, r: Reply) {
        if !self.node(node).waiting.remove(&(r.client, r.seq)) {
            return;
        }
        let (loss, delay) = if self.faults_on {
            (self.cfg.faults.loss, self.cfg.faults.delay_ms)
        } else {
            (0.0, (1, 5))
        };
        if self.rng.chance(loss) {
            return;
        }
        let at = self.now + self.rng.range(delay.0, delay.1);
        self.push(at, Ev::ClientReply(r));
    }

    fn complete(&mut self, id: u64, status: Status) {
        let now = self.now;
        let Some(c) = self.client(id) else { return };
        let Some(p) = c.pending.take() else { return };
        if id == PROBE_CLIENT && matches!(status, Status::Ok(_)) {
            self.probe_done = true;
        }
        self.history.complete(p.hist, now, status);
        self.retire_probe(id);
        let think = self.rng.range(0, 20);
        self.push(now + think, Ev::ClientNext(id));
    }

    pub(super) fn client_reply(&mut self, r: Reply) {
        let now = self.now;
        let n = self.cfg.nodes as u64;
        let Some(id) = self.replied(r.client) else {
            return;
        };
        let Some(c) = self.client(id) else {
            return;
        };
        let Some(p) = &mut c.pending else { return };
        if p.carries != r.client || p.seq != r.seq {
            return;
        }
        match r.outcome {
            Outcome::Registered { session } => {
                let Some(then) = p.then.take() else { return };
                let going = (p.hist, p.deadline);
                c.session = Some(session);
                c.pending = None;
                self.sessions.insert(session, id);
                // The write carries the session: so must its history entry.
                self.history.ops[going.0].client = session;
                self.start(id, then, None, Some(going));
            }
            Outcome::Done(result) => {
                remember(&mut c.seen, &p.op, &result);
                self.complete(id, Status::Ok(result));
            }
            // Forgotten before any attempt can have been applied: open a
            // new session and send it again.
            Outcome::Expired if !p.maybe_proposed && c.script.is_none() => {
                let op = p.op.clone();
                let going = (p.hist, p.deadline);
                c.pending = None;
                c.session = None;
                self.start(id, Op::Register, Some(op), Some(going));
            }
            Outcome::Expired | Outcome::Stale { .. } => {
                // Maybe applied before the session was forgotten.
                self.complete(id, Status::Unknown);
            }
            // The simulated clients never ask for a membership change.
            Outcome::Refused(_) | Outcome::Reconfigured { .. } => {
                self.complete(id, Status::Failed);
            }
            Outcome::NotLeader { .. } | Outcome::Busy if c.script.is_some() => {
                // A scripted client asks its node alone: a refusal is final.
                let status = if p.maybe_proposed {
                    Status::Unknown
                } else {
                    Status::Failed
                };
                self.complete(id, status);
            }
            Outcome::Busy => {
                // Nothing was proposed: try again in a little while.
                let seq = p.seq;
                self.push(
                    now + 20,
                    Ev::ClientTimeout {
                        client: id,
                        seq,
                        attempt: u32::MAX,
                    },
                );
            }
            Outcome::NotLeader { leader } => {
                c.target = match leader {
                    Some(l) => l,
                    None => c.target % n + 1,
                };
                let seq = p.seq;
                let backoff = if leader.is_some() { 1 } else { 20 };
                // Resend after a short pause; the pending timeout is superseded by
                // the attempt counter.
                self.push(
                    now + backoff,
                    Ev::ClientTimeout {
                        client: id,
                        seq,
                        attempt: u32::MAX,
                    },
                );
            }
        }
    }

    pub(super) fn client_timeout(&mut self, client: u64, seq: u64, attempt: u32) {
        let now = self.now;
        let n = self.cfg.nodes as u64;
        let Some(c) = self.client(client) else { return };
        let pinned = c.script.is_some();
        let Some(p) = &mut c.pending else { return };
        if p.seq != seq {
            return;
        }
        let redirected = attempt == u32::MAX;
        if !redirected {
            if p.attempt != attempt {
                return;
            }
            // No answer: the command may have been proposed.
            p.maybe_proposed = true;
            if !pinned {
                c.target = c.target % n + 1;
            }
        }
        if now >= p.deadline {
            let status = if p.maybe_proposed {
                Status::Unknown
            } else {
                Status::Failed
            };
            self.complete(client, status);
            return;
        }
        self.client_send(client);
    }
}

/// Note what a completed operation showed the client about its key.
fn remember(seen: &mut BTreeMap<String, Option<String>>, op: &Op, result: &OpResult) {
    match (op, result) {
        (Op::Put { key, value }, _) => {
            seen.insert(key.clone(), Some(value.clone()));
        }
        (Op::Cas { key, new, .. }, r) if !matches!(r, OpResult::Swapped(false)) => {
            seen.insert(key.clone(), Some(new.clone()));
        }
        (Op::Get { key }, OpResult::Value(v)) => {
            seen.insert(key.clone(), v.clone());
        }
        (Op::Delete { key }, _) => {
            seen.insert(key.clone(), None);
        }
        _ => {}
    }
}

/// A client's next operation: puts and cas with values unique to the client and
/// sequence, so the checker can tell every write apart.
fn next_op(c: &mut Client, keys: usize) -> Op {
    let key = format!("k{}", c.rng.below(keys));
    let unique = format!("c{}-{}", c.id, c.seq);
    match c.rng.below(20) {
        0..=7 => Op::Put { key, value: unique },
        8..=13 => Op::Get { key },
        14..=18 => {
            let expect = c.seen.get(&key).cloned().flatten();
            Op::Cas {
                key,
                expect,
                new: unique,
            }
        }
        _ => Op::Delete { key },
    }
}
