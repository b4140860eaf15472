//! The simulation engine: an event queue in virtual time, and the rest in one
//! file each:
//! - [`node`]: nodes built from the protocol's roles, each role's log behind
//!   the same [`crate::paxos::Gate`] the real node uses, syncs that take time,
//!   and the invariant checks on what the roles say;
//! - [`faults`]: crashes, restarts, pauses, partitions, the swarm bias, and the
//!   scheduled plans of the experiment and the scenarios;
//! - [`clients`]: clients that retry, time out and record a history.

mod clients;
mod faults;
mod node;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use super::invariants::{Ghost, Violation};
use super::{PlanAction, Report, SimConfig, Stats, Workload};
use crate::check::history::{History, Status};
use crate::check::linear;
use crate::paxos::config::{Config, Configs};
use crate::paxos::{
    Ballot, Command, Digest, Envelope, NodeId, Notice, Reply, Role, SnapshotFile, Value,
};
use crate::rng::Rng;
pub(crate) use clients::nonce;
use clients::Client;
use node::Node;

/// The probe client's id: it writes once after faults stop (the liveness check).
const PROBE_CLIENT: u64 = 1_000_000;
/// The first id of the clients a plan scripts (the k-th is `SCRIPT_CLIENT + k`).
pub const SCRIPT_CLIENT: u64 = 10_000;
/// Budget of the linearizability search per key.
const LINEAR_BUDGET: u64 = 2_000_000;

/// Run one simulated history and judge it.
pub fn run(cfg: &SimConfig) -> Report {
    let mut w = World::new(cfg.clone());
    w.run();
    w.finish()
}

#[derive(Debug)]
enum Ev {
    Deliver(Envelope),
    Notice {
        node: NodeId,
        inc: u64,
        notice: Notice,
    },
    Tick {
        node: NodeId,
        inc: u64,
    },
    Synced {
        node: NodeId,
        inc: u64,
        role: Role,
        batch: u64,
    },
    SnapshotSaved {
        node: NodeId,
        inc: u64,
        file: SnapshotFile,
    },
    /// A frame queued for a dead process, handed to its next one (only with
    /// the `fresh` rule broken).
    Replay {
        inc: u64,
        env: Envelope,
    },
    Fault,
    Restart(NodeId),
    Resume(NodeId),
    Heal,
    FaultsEnd,
    ClientNext(u64),
    ClientRequest {
        node: NodeId,
        cmd: Command,
    },
    ClientReply(Reply),
    ClientTimeout {
        client: u64,
        seq: u64,
        attempt: u32,
    },
    Plan(PlanAction),
    ProbeTick,
}

impl Ev {
    /// The node whose process handles this event (it waits while paused).
    fn node(&self) -> Option<NodeId> {
        match self {
            Ev::Deliver(env) | Ev::Replay { env, .. } => Some(env.to),
            Ev::Notice { node, .. }
            | Ev::Tick { node, .. }
            | Ev::Synced { node, .. }
            | Ev::SnapshotSaved { node, .. }
            | Ev::ClientRequest { node, .. } => Some(*node),
            _ => None,
        }
    }
}

struct Queued {
    at: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

struct World {
    cfg: SimConfig,
    rng: Rng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<Queued>>,
    nodes: Vec<Node>,
    /// Side of each node while partitioned.
    sides: Option<Vec<u8>>,
    /// Links cut both ways, as (lower id, higher id).
    cuts: BTreeSet<(NodeId, NodeId)>,
    faults_on: bool,
    ghost: Ghost,
    /// Every value an acceptor accepted, by digest (votes carry only digests).
    values: BTreeMap<Digest, Value>,
    texts: BTreeSet<String>,
    commands: BTreeSet<Command>,
    /// Every membership change a proposer was asked for (validity).
    changes: Vec<Config>,
    learned: BTreeMap<(NodeId, u64), Value>,
    /// The highest promise each acceptor's durable log backed, across restarts.
    promised: BTreeMap<NodeId, Ballot>,
    /// What each acceptor's durable log backs.
    backing: BTreeMap<NodeId, node::Backing>,
    digests: BTreeMap<u64, (u64, NodeId)>,
    applied: BTreeMap<NodeId, BTreeSet<(u64, u64)>>,
    violations: Vec<Violation>,
    undecided: Vec<String>,
    clients: BTreeMap<u64, Client>,
    /// Which client each session the replicas opened belongs to.
    sessions: BTreeMap<u64, u64>,
    next_probe: u64,
    scripted: u64,
    history: History,
    probe_done: bool,
    stats: Stats,
    leaders: Vec<(u64, NodeId, Ballot)>,
    trace: Vec<String>,
}

impl World {
    fn new(cfg: SimConfig) -> Self {
        let n = cfg.nodes;
        let mut rng = Rng::new(cfg.seed);
        let mut w = World {
            rng: Rng::derive(cfg.seed, 0),
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes: Vec::new(),
            sides: None,
            cuts: BTreeSet::new(),
            faults_on: true,
            // Chosen means accepted by a phase-2 quorum of the slot's
            // configuration (a majority unless flexible quorums are set).
            ghost: Ghost::new(Configs::new(
                Config::first(1..=n as NodeId, cfg.proposer.quorums(n, cfg.rules)),
                cfg.alpha,
            )),
            changes: Vec::new(),
            values: BTreeMap::new(),
            texts: BTreeSet::new(),
            commands: BTreeSet::new(),
            learned: BTreeMap::new(),
            promised: BTreeMap::new(),
            backing: BTreeMap::new(),
            digests: BTreeMap::new(),
            applied: BTreeMap::new(),
            violations: Vec::new(),
            undecided: Vec::new(),
            clients: BTreeMap::new(),
            sessions: BTreeMap::new(),
            next_probe: 1,
            scripted: 0,
            history: History::new(),
            probe_done: false,
            stats: Stats::default(),
            leaders: Vec::new(),
            trace: Vec::new(),
            cfg,
        };
        for id in 1..=n as NodeId {
            let node = w.fresh_node(id, node::Logs::default(), 0);
            w.nodes.push(node);
            let first = rng.range(0, w.cfg.tick_ms - 1);
            w.push(first, Ev::Tick { node: id, inc: 0 });
        }
        // The links come up as the processes start: the lowest id may elect
        // at once (see the proposer's `election`).
        for id in 1..=n as NodeId {
            w.links(id, true);
        }
        if let Workload::Decree { proposers } = w.cfg.workload {
            for id in 1..=proposers.min(n) as NodeId {
                w.texts.insert(node::own_value(id));
            }
        }
        if let Workload::Cluster { clients, ops, .. } = w.cfg.workload {
            for c in 1..=clients as u64 {
                let target = 1 + (c - 1) % n as u64;
                w.clients.insert(
                    c,
                    Client::new(c, Rng::derive(w.cfg.seed, 1_000 + c), target, ops),
                );
                let start = rng.range(0, 50);
                w.push(start, Ev::ClientNext(c));
            }
        }
        for (at, action) in w.cfg.plan.clone() {
            w.push(at, Ev::Plan(action));
        }
        if let Workload::Probe { .. } = w.cfg.workload {
            w.push(0, Ev::ProbeTick);
        }
        let planned = !w.cfg.plan.is_empty();
        let f = &w.cfg.faults;
        if !planned && (f.crash || f.partition || f.pause) {
            let first = w.rng.exp(faults::FAULT_GAP_MS) as u64;
            w.push(first, Ev::Fault);
        }
        let end = w.cfg.fault_ms;
        w.push(end, Ev::FaultsEnd);
        w
    }

    fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse(Queued {
            at,
            seq: self.seq,
            ev,
        }));
    }

    fn note(&mut self, line: impl FnOnce() -> String) {
        if self.cfg.trace {
            let l = line();
            self.trace.push(format!("[{:>6}ms] {l}", self.now));
        }
    }

    fn violation(&mut self, v: Option<Violation>) {
        if let Some(v) = v {
            let text = v.to_string();
            self.note(|| format!("VIOLATION {text}"));
            self.violations.push(v);
        }
    }

    fn node(&mut self, id: NodeId) -> &mut Node {
        &mut self.nodes[id as usize - 1]
    }

    fn is_member(&self, id: NodeId) -> bool {
        (1..=self.nodes.len() as NodeId).contains(&id)
    }

    fn run(&mut self) {
        let hard_end = self.cfg.fault_ms + self.cfg.settle_ms;
        while let Some(Reverse(q)) = self.queue.pop() {
            if q.at > hard_end {
                break;
            }
            self.now = q.at;
            self.stats.steps += 1;
            self.step(q.ev);
            if !self.faults_on && self.settled() {
                break;
            }
            if self.violations.len() > 50 {
                break;
            }
        }
        self.stats.virtual_ms = self.now;
        if !self.settled() {
            let what = match self.cfg.workload {
                Workload::Decree { .. } => format!(
                    "no value chosen and learned by every proposer within {} ms after faults stopped",
                    self.cfg.settle_ms
                ),
                _ => format!(
                    "the cluster did not commit a new command and converge within {} ms after faults stopped",
                    self.cfg.settle_ms
                ),
            };
            self.violations.push(Violation::Liveness { what });
        }
    }

    /// True once, after faults stopped, the run made the progress it must.
    fn settled(&self) -> bool {
        if self.faults_on {
            return false;
        }
        match self.cfg.workload {
            // Every proposer learns the outcome (it stops once it knows).
            Workload::Decree { proposers } => self.nodes[..proposers.min(self.nodes.len())]
                .iter()
                .all(|n| n.learner.chosen().contains_key(&0)),
            _ => {
                // Every node of the final configuration converges; a node
                // removed stops hearing the log where it was removed.
                let last = self.ghost.configs().latest();
                let members: Vec<&Node> = self
                    .nodes
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| {
                        let id = *i as NodeId + 1;
                        last.voters.contains(&id) || last.learners.contains(&id)
                    })
                    .map(|(_, n)| n)
                    .collect();
                let next = members.iter().map(|n| n.replica.next_slot()).max();
                self.probe_done
                    && self
                        .clients
                        .values()
                        .all(|c| c.left == 0 && c.pending.is_none())
                    && members.iter().all(|n| Some(n.replica.next_slot()) == next)
            }
        }
    }

    fn step(&mut self, ev: Ev) {
        // A paused node handles nothing: its events wait until it resumes, in
        // the order they arrived.
        if let Some(id) = ev.node() {
            if self.is_member(id) && self.node(id).paused {
                self.node(id).parked.push(ev);
                return;
            }
        }
        match ev {
            Ev::Deliver(env) => {
                let to = env.to;
                if !self.connected(env.from, to) {
                    self.stats.dropped += 1;
                    return;
                }
                if !self.node(to).up {
                    self.stats.dropped += 1;
                    self.queued_for_the_dead(env);
                    return;
                }
                self.note(|| format!("{} → {}  {}", env.from, env.to, env.msg.brief()));
                self.deliver(env);
            }
            Ev::Replay { inc, env } => {
                if self.node(env.to).incarnation == inc && self.node(env.to).up {
                    self.note(|| {
                        format!("{} → {}  {} (REPLAYED)", env.from, env.to, env.msg.brief())
                    });
                    self.deliver(env);
                }
            }
            Ev::Notice { node, inc, notice } => {
                if self.node(node).incarnation == inc && self.node(node).up {
                    self.local(node, notice);
                }
            }
            Ev::Tick { node, inc } => {
                if self.node(node).incarnation != inc || !self.node(node).up {
                    return;
                }
                self.tick(node);
                let next = self.now + self.cfg.tick_ms;
                self.push(next, Ev::Tick { node, inc });
            }
            Ev::Synced {
                node,
                inc,
                role,
                batch,
            } => {
                if self.node(node).incarnation == inc && self.node(node).up {
                    self.synced(node, role, batch);
                }
            }
            Ev::SnapshotSaved { node, inc, file } => {
                if self.node(node).incarnation == inc && self.node(node).up {
                    self.snapshot_saved(node, file);
                }
            }
            Ev::Fault => self.inject_fault(),
            Ev::Restart(id) => self.restart(id),
            Ev::Resume(id) => self.resume(id),
            Ev::Heal => {
                if self.sides.is_some() {
                    self.note(|| "heal: every node can reach every other".to_string());
                    self.heal();
                }
            }
            Ev::FaultsEnd => self.end_faults(),
            Ev::ClientNext(c) => self.client_next(c),
            Ev::ClientRequest { node, cmd } => self.client_request(node, cmd),
            Ev::ClientReply(r) => self.client_reply(r),
            Ev::ClientTimeout {
                client,
                seq,
                attempt,
            } => self.client_timeout(client, seq, attempt),
            Ev::Plan(action) => self.plan(action),
            Ev::ProbeTick => self.probe_tick(),
        }
    }

    fn connected(&self, a: NodeId, b: NodeId) -> bool {
        if !self.is_member(a) || !self.is_member(b) {
            return true;
        }
        if self.cuts.contains(&(a.min(b), a.max(b))) {
            return false;
        }
        match &self.sides {
            Some(sides) => sides[a as usize - 1] == sides[b as usize - 1],
            None => true,
        }
    }

    // ---------------------------------------------------------------- verdict

    fn finish(mut self) -> Report {
        self.stats.slots_chosen = self.ghost.chosen().len() as u64;
        self.stats.configurations = self.ghost.configs().latest().number;
        if !matches!(self.cfg.workload, Workload::Decree { .. }) {
            let best = self
                .nodes
                .iter()
                .max_by_key(|n| n.replica.next_slot())
                .expect("at least one node");
            self.stats.commands_committed = best.replica.applied_commands();
            // Durability: every acknowledged write is in a chosen slot (from
            // the ground truth, which no compaction touches).
            let applied: BTreeSet<(u64, u64)> = self
                .ghost
                .chosen()
                .values()
                .filter_map(|v| match v {
                    Value::Batch(cmds) => Some(cmds.iter().map(|c| (c.client, c.seq))),
                    _ => None,
                })
                .flatten()
                .collect();
            let lost: Vec<Violation> = self
                .history
                .ops
                .iter()
                .filter(|o| o.is_write() && matches!(o.status, Status::Ok(_)))
                .filter(|o| !applied.contains(&(o.client, o.seq)))
                .map(|o| Violation::LostWrite {
                    client: o.client,
                    seq: o.seq,
                })
                .collect();
            self.violations.extend(lost);
            let verdict = linear::check(&self.history, LINEAR_BUDGET);
            for bad in verdict.violations() {
                self.violations.push(Violation::NotLinearizable {
                    key: bad.key.clone(),
                    detail: bad.explain(&self.history),
                });
            }
            for k in verdict
                .keys
                .iter()
                .filter(|k| k.result == linear::KeyResult::Inconclusive)
            {
                self.undecided.push(format!(
                    "could not decide linearizability of key {:?} ({} operations) within {} search steps",
                    k.key, k.ops, k.steps
                ));
            }
        }
        Report {
            chosen: self.ghost.chosen().clone(),
            violations: self.violations,
            stats: self.stats,
            history: (!matches!(self.cfg.workload, Workload::Decree { .. }))
                .then_some(self.history),
            trace: self.trace,
            leaders: self.leaders,
            undecided: self.undecided,
            config: self.cfg,
        }
    }
}
