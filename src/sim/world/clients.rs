//! Simulated clients: each issues one operation at a time, follows redirects,
//! retries with the same sequence number on a timeout, gives up after a
//! deadline, and records every invocation and completion in the history the
//! linearizability checker reads.

use std::collections::BTreeMap;

use super::{Ev, World, PROBE_CLIENT};
use crate::check::history::Status;
use crate::kv::{Op, OpResult};
use crate::paxos::{Command, NodeId, Notice, Outcome, Reply};
use crate::rng::Rng;
use crate::sim::Workload;

pub(super) struct Pending {
    op: Op,
    hist: usize,
    attempt: u32,
    deadline: u64,
    maybe_proposed: bool,
}

pub(super) struct Client {
    id: u64,
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

    /// A probe client did its one operation: forget it (there are many).
    fn retire_probe(&mut self, id: u64) {
        if matches!(self.cfg.workload, Workload::Probe { .. }) && id != PROBE_CLIENT {
            self.clients.remove(&id);
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
        let now = self.now;
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
        let cmd = Command {
            client: c.id,
            seq: c.seq,
            op: op.clone(),
        };
        let hist = self.history.invoke(id, cmd.seq, op.clone(), now);
        self.commands.insert(cmd);
        let deadline = now + self.cfg.client_deadline_ms;
        let c = self.client(id).expect("client exists");
        c.pending = Some(Pending {
            op,
            hist,
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
        let seq = c.seq;
        let Some(p) = &mut c.pending else { return };
        p.attempt += 1;
        let attempt = p.attempt;
        let cmd = Command {
            client: id,
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
        let Some(c) = self.client(r.client) else {
            return;
        };
        if c.seq != r.seq {
            return;
        }
        let Some(p) = &mut c.pending else { return };
        match r.outcome {
            Outcome::Done(result) => {
                remember(&mut c.seen, &p.op, &result);
                let id = c.id;
                self.complete(id, Status::Ok(result));
            }
            Outcome::Expired => {
                // Maybe applied before the session was forgotten.
                let id = c.id;
                self.complete(id, Status::Unknown);
            }
            Outcome::NotLeader { .. } | Outcome::Busy if c.script.is_some() => {
                // A scripted client asks its node alone: a refusal is final.
                let status = if p.maybe_proposed {
                    Status::Unknown
                } else {
                    Status::Failed
                };
                let id = c.id;
                self.complete(id, status);
            }
            Outcome::Busy => {
                // Nothing was proposed: try again in a little while.
                let (id, seq) = (c.id, c.seq);
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
                let (id, seq) = (c.id, c.seq);
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
        if c.seq != seq {
            return;
        }
        let pinned = c.script.is_some();
        let Some(p) = &mut c.pending else { return };
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
