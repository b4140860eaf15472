//! The simulation engine: an event queue in virtual time, nodes built from the
//! protocol's roles, a faulty network, clients, and the invariant checks.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use super::invariants::{self as inv, Ghost, Violation};
use super::{PlanAction, Report, SimConfig, Stats, Workload};
use crate::check::history::{History, Status};
use crate::check::linear;
use crate::kv::Op;
use crate::paxos::quorum::majority;
use crate::paxos::{
    Acceptor, Ballot, Command, DecreeProposer, Envelope, Leader, Learner, Message, NodeId, Outbox,
    Outcome, Proposer, Replica, Reply, Role, Rule, Value,
};
use crate::rng::Rng;
use crate::storage::{MemLog, Storage};

/// The probe client's id: it writes once after faults stop (the liveness check).
const PROBE_CLIENT: u64 = 1_000_000;
/// Mean virtual ms between two injected node faults.
const FAULT_GAP_MS: f64 = 250.0;
/// Budget of the linearizability search per key.
const LINEAR_BUDGET: u64 = 2_000_000;

/// Run one simulated history and judge it.
pub fn run(cfg: &SimConfig) -> Report {
    let mut w = World::new(cfg.clone());
    w.run();
    w.finish()
}

enum Driver {
    /// A node that only accepts and learns (single-decree runs).
    Idle,
    Decree(DecreeProposer),
    Leader(Box<Leader>),
}

struct Node {
    id: NodeId,
    up: bool,
    incarnation: u64,
    acceptor: Acceptor,
    driver: Driver,
    learner: Learner,
    replica: Replica,
    acceptor_log: MemLog,
    learner_log: MemLog,
    /// Client commands this node received and has not answered.
    waiting: BTreeSet<(u64, u64)>,
    audited: usize,
    /// While `now` is below this, the node is paused: its events wait.
    paused_until: u64,
}

#[derive(Debug)]
enum Ev {
    Deliver(Envelope),
    Local { inc: u64, env: Envelope },
    Tick { node: NodeId, inc: u64 },
    Fault,
    Restart(NodeId),
    Heal,
    FaultsEnd,
    ClientNext(u64),
    ClientRequest { node: NodeId, cmd: Command },
    ClientReply(Reply),
    ClientTimeout { client: u64, seq: u64, attempt: u32 },
    Plan(PlanAction),
    ProbeTick,
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

struct Pending {
    op: Op,
    hist: usize,
    attempt: u32,
    deadline: u64,
    maybe_proposed: bool,
}

struct Client {
    id: u64,
    rng: Rng,
    target: NodeId,
    seq: u64,
    left: usize,
    pending: Option<Pending>,
    /// Last value this client saw per key (for cas).
    seen: BTreeMap<String, Option<String>>,
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
    faults_on: bool,
    ghost: Ghost,
    texts: BTreeSet<String>,
    commands: BTreeSet<Command>,
    learned: BTreeMap<(NodeId, u64), Value>,
    promised: BTreeMap<NodeId, Ballot>,
    digests: BTreeMap<u64, (u64, NodeId)>,
    applied: BTreeMap<NodeId, BTreeSet<(u64, u64)>>,
    violations: Vec<Violation>,
    clients: BTreeMap<u64, Client>,
    next_probe: u64,
    history: History,
    probe_done: bool,
    stats: Stats,
    trace: Vec<String>,
}

impl World {
    fn new(cfg: SimConfig) -> Self {
        let n = cfg.nodes;
        let ids: Vec<NodeId> = (1..=n as NodeId).collect();
        let mut rng = Rng::new(cfg.seed);
        let mut w = World {
            rng: Rng::derive(cfg.seed, 0),
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes: Vec::new(),
            sides: None,
            faults_on: true,
            ghost: Ghost::new(majority(n)),
            texts: BTreeSet::new(),
            commands: BTreeSet::new(),
            learned: BTreeMap::new(),
            promised: BTreeMap::new(),
            digests: BTreeMap::new(),
            applied: BTreeMap::new(),
            violations: Vec::new(),
            clients: BTreeMap::new(),
            next_probe: 1,
            history: History::new(),
            probe_done: false,
            stats: Stats::default(),
            trace: Vec::new(),
            cfg,
        };
        for &id in &ids {
            let node = w.fresh_node(id, MemLog::new(), MemLog::new(), 0);
            w.nodes.push(node);
            let first = rng.range(0, w.cfg.tick_ms - 1);
            w.push(first, Ev::Tick { node: id, inc: 0 });
        }
        if let Workload::Decree { proposers } = w.cfg.workload {
            for id in 1..=proposers.min(n) as NodeId {
                w.texts.insert(own_value(id));
            }
        }
        if let Workload::Cluster { clients, ops, .. } = w.cfg.workload {
            for c in 1..=clients as u64 {
                w.clients.insert(
                    c,
                    Client {
                        id: c,
                        rng: Rng::derive(w.cfg.seed, 1_000 + c),
                        target: 1 + (c - 1) % n as u64,
                        seq: 0,
                        left: ops,
                        pending: None,
                        seen: BTreeMap::new(),
                    },
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
        if !planned && (w.cfg.faults.crash || w.cfg.faults.partition || w.cfg.faults.pause) {
            let first = w.rng.exp(FAULT_GAP_MS) as u64;
            w.push(first, Ev::Fault);
        }
        let end = w.cfg.fault_ms;
        w.push(end, Ev::FaultsEnd);
        w
    }

    fn fresh_node(&self, id: NodeId, acceptor_log: MemLog, learner_log: MemLog, inc: u64) -> Node {
        let n = self.cfg.nodes;
        let ids: Vec<NodeId> = (1..=n as NodeId).collect();
        let rules = self.cfg.rules;
        let seed = self.cfg.seed ^ (id << 32) ^ (inc << 48);
        let driver = match self.cfg.workload {
            Workload::Decree { proposers } if id as usize > proposers => Driver::Idle,
            Workload::Decree { .. } => Driver::Decree(DecreeProposer::new(
                Proposer::new(id, ids.clone(), majority(n), rules),
                Value::Text(own_value(id)),
                8,
                seed,
            )),
            Workload::Cluster { .. } | Workload::Probe { .. } => Driver::Leader(Box::new(
                Leader::new(id, ids.clone(), rules, self.cfg.leader.clone(), seed),
            )),
        };
        Node {
            id,
            up: true,
            incarnation: inc,
            acceptor: Acceptor::recover(id, rules, acceptor_log.durable()),
            driver,
            learner: Learner::recover(id, ids, majority(n), learner_log.durable()),
            replica: Replica::with_audit(),
            acceptor_log,
            learner_log,
            waiting: BTreeSet::new(),
            audited: 0,
            paused_until: 0,
        }
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
                Workload::Cluster { .. } | Workload::Probe { .. } => format!(
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
            Workload::Cluster { .. } | Workload::Probe { .. } => {
                let next = self.nodes.iter().map(|n| n.replica.next_slot()).max();
                self.probe_done
                    && self
                        .clients
                        .values()
                        .all(|c| c.left == 0 && c.pending.is_none())
                    && self
                        .nodes
                        .iter()
                        .all(|n| Some(n.replica.next_slot()) == next)
            }
        }
    }

    fn step(&mut self, ev: Ev) {
        // A paused node handles nothing: its events wait until it resumes, in
        // the order they arrived.
        let target = match &ev {
            Ev::Deliver(env) | Ev::Local { env, .. } => Some(env.to),
            Ev::Tick { node, .. } | Ev::ClientRequest { node, .. } => Some(*node),
            _ => None,
        };
        if let Some(id) = target {
            let until = self.node(id).paused_until;
            if self.now < until {
                self.push(until, ev);
                return;
            }
        }
        match ev {
            Ev::Deliver(env) => {
                let to = env.to;
                if !self.node(to).up || !self.connected(env.from, to) {
                    self.stats.dropped += 1;
                    return;
                }
                self.note(|| format!("{} → {}  {}", env.from, env.to, env.msg.brief()));
                self.dispatch(env);
            }
            Ev::Local { inc, env } => {
                if self.node(env.to).incarnation == inc && self.node(env.to).up {
                    self.dispatch(env);
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
            Ev::Fault => self.inject_fault(),
            Ev::Restart(id) => self.restart(id),
            Ev::Heal => {
                if self.sides.take().is_some() {
                    self.note(|| "heal: every node can reach every other".to_string());
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

    // ---------------------------------------------------------------- nodes

    fn dispatch(&mut self, env: Envelope) {
        let role = env.msg.role();
        let id = env.to;
        let mut out = Outbox::new();
        let n = self.node(id);
        match role {
            Role::Acceptor => n.acceptor.handle(env.from, env.msg, &mut out),
            Role::Proposer => match &mut n.driver {
                Driver::Idle => {}
                Driver::Decree(d) => d.handle(env.from, env.msg, &mut out),
                Driver::Leader(l) => l.handle(env.from, env.msg, &mut out),
            },
            Role::Learner => n.learner.handle(env.from, env.msg, &mut out),
            Role::Replica => n.replica.handle(env.msg, &mut out),
        }
        self.effects(id, role, out);
    }

    fn tick(&mut self, id: NodeId) {
        let mut out = Outbox::new();
        let n = self.node(id);
        n.learner_log.sync().expect("in-memory logs do not fail");
        match &mut n.driver {
            Driver::Idle => {}
            Driver::Decree(d) => d.tick(&mut out),
            Driver::Leader(l) => l.tick(&mut out),
        }
        self.effects(id, Role::Proposer, out);
        let mut out = Outbox::new();
        self.node(id).learner.tick(&mut out);
        self.effects(id, Role::Learner, out);
    }

    fn effects(&mut self, id: NodeId, role: Role, out: Outbox) {
        let Outbox {
            persist,
            send,
            send_durable,
            replies,
        } = out;
        // The acceptor's log syncs at once: every record is durable before the
        // messages that follow it leave (Outbox::send_durable's contract). The
        // learner's log syncs on the next tick: a crash may lose what it learned
        // last, which it then catches up on.
        let persist_rule = self.cfg.rules.holds(Rule::Persist);
        let n = self.node(id);
        let log = match role {
            Role::Acceptor => Some(&mut n.acceptor_log),
            // With `persist` broken, nothing is durable: the learner forgets too.
            Role::Learner if persist_rule => Some(&mut n.learner_log),
            _ => None,
        };
        if let Some(log) = log {
            for r in &persist {
                log.append(r).expect("in-memory logs do not fail");
            }
            if role == Role::Acceptor {
                log.sync().expect("in-memory logs do not fail");
            }
        }
        for env in send.into_iter().chain(send_durable) {
            self.observe(id, role, &env);
            self.route(env);
        }
        for r in replies {
            self.node_reply(id, r);
        }
        match role {
            Role::Acceptor => {
                let now = self.node(id).acceptor.promised();
                let v = inv::promise_monotonic(&mut self.promised, id, now);
                self.violation(v);
            }
            Role::Replica => self.audit(id),
            _ => {}
        }
    }

    /// Watch what the roles say, for the ground truth and the invariants.
    fn observe(&mut self, id: NodeId, role: Role, env: &Envelope) {
        match (&env.msg, role) {
            (Message::Accepted { ballot, slot }, Role::Acceptor) => {
                let Some((b, value)) = self.node(id).acceptor.accepted(*slot).cloned() else {
                    return;
                };
                if b != *ballot {
                    return;
                }
                self.note(|| format!("node {id} accepted #{slot} = {} at {b}", value.brief()));
                if let Some(v) = self.ghost.accepted(id, *slot, b, &value) {
                    self.note(|| {
                        format!("CHOSEN #{slot} = {} (a majority accepted {b})", v.brief())
                    });
                    let bad = inv::validity(&self.texts, &self.commands, *slot, &v);
                    self.violation(bad);
                    let bad = inv::agreement(&mut self.ghost, *slot, b, v);
                    self.violation(bad);
                }
            }
            (Message::Chosen { slot, value }, Role::Learner) => {
                let bad = inv::learned_agrees(&self.ghost, id, *slot, value);
                self.violation(bad);
                let bad = inv::stability(&mut self.learned, id, *slot, value);
                self.violation(bad);
            }
            _ => {}
        }
    }

    fn audit(&mut self, id: NodeId) {
        let n = &self.nodes[id as usize - 1];
        let (next, digest) = (n.replica.next_slot(), n.replica.digest());
        let fresh: Vec<(u64, u64, u64)> = n.replica.audit().unwrap_or(&[])[n.audited..].to_vec();
        self.node(id).audited += fresh.len();
        let v = inv::log_prefix(&mut self.digests, id, next, digest);
        self.violation(v);
        for (_, client, seq) in fresh {
            let v = inv::applied_once(&mut self.applied, id, client, seq);
            self.violation(v);
        }
    }

    fn route(&mut self, env: Envelope) {
        if env.from == env.to {
            let inc = self.node(env.to).incarnation;
            let now = self.now;
            self.push(now, Ev::Local { inc, env });
            return;
        }
        self.stats.messages += 1;
        let f = &self.cfg.faults;
        let (loss, dup, delay) = if self.faults_on {
            (f.loss, f.dup, f.delay_ms)
        } else {
            (0.0, 0.0, (1, 5))
        };
        if !self.connected(env.from, env.to) || self.rng.chance(loss) {
            self.stats.dropped += 1;
            self.note(|| format!("{} → {}  {} LOST", env.from, env.to, env.msg.brief()));
            return;
        }
        let copies = if self.rng.chance(dup) { 2 } else { 1 };
        for _ in 0..copies {
            let at = self.now + self.rng.range(delay.0, delay.1);
            self.push(at, Ev::Deliver(env.clone()));
        }
    }

    fn connected(&self, a: NodeId, b: NodeId) -> bool {
        match &self.sides {
            Some(sides) => sides[a as usize - 1] == sides[b as usize - 1],
            None => true,
        }
    }

    // ---------------------------------------------------------------- faults

    fn inject_fault(&mut self) {
        if !self.faults_on {
            return;
        }
        let f = self.cfg.faults.clone();
        let mut kinds = Vec::new();
        if f.crash {
            kinds.push("crash");
        }
        if f.partition {
            kinds.push("partition");
        }
        if f.pause {
            kinds.push("pause");
        }
        let kind = kinds[self.rng.below(kinds.len())];
        if kind == "pause" {
            let up: Vec<NodeId> = self
                .nodes
                .iter()
                .filter(|n| n.up && n.paused_until <= self.now)
                .map(|n| n.id)
                .collect();
            if !up.is_empty() {
                let id = up[self.rng.below(up.len())];
                let until = self.now + 50 + self.rng.exp(400.0) as u64;
                self.note(|| format!("PAUSE node {id} until {until}ms"));
                self.stats.pauses += 1;
                self.node(id).paused_until = until;
            }
        } else if kind == "partition" {
            if self.sides.is_none() {
                let sides: Vec<u8> = (0..self.cfg.nodes)
                    .map(|_| self.rng.below(2) as u8)
                    .collect();
                let show = sides_text(&sides);
                self.note(|| format!("partition: {show}"));
                self.sides = Some(sides);
                self.stats.partitions += 1;
                let heal = self.now + 50 + self.rng.exp(400.0) as u64;
                self.push(heal, Ev::Heal);
            }
        } else {
            let up: Vec<NodeId> = self.nodes.iter().filter(|n| n.up).map(|n| n.id).collect();
            if !up.is_empty() {
                let id = up[self.rng.below(up.len())];
                self.crash(id);
                let back = self.now + 20 + self.rng.exp(400.0) as u64;
                self.push(back, Ev::Restart(id));
            }
        }
        let next = self.now + 1 + self.rng.exp(FAULT_GAP_MS) as u64;
        self.push(next, Ev::Fault);
    }

    fn crash(&mut self, id: NodeId) {
        self.note(|| format!("CRASH node {id}"));
        self.stats.crashes += 1;
        let n = self.node(id);
        n.up = false;
        n.incarnation += 1;
        n.waiting.clear();
        n.acceptor_log.crash();
        n.learner_log.crash();
    }

    fn restart(&mut self, id: NodeId) {
        if self.node(id).up {
            return;
        }
        let old = self.node(id);
        let inc = old.incarnation;
        // The logs survive the crash; everything else is rebuilt from them.
        let alog = std::mem::take(&mut old.acceptor_log);
        let llog = std::mem::take(&mut old.learner_log);
        let fresh = self.fresh_node(id, alog, llog, inc);
        let promised = fresh.acceptor.promised();
        self.note(|| format!("RESTART node {id} (promised {promised} from its log)"));
        *self.node(id) = fresh;
        // The new replica starts empty and applies the log again from slot 0.
        self.applied.remove(&id);
        let v = inv::promise_monotonic(&mut self.promised, id, promised);
        self.violation(v);
        let mut out = Outbox::new();
        self.node(id).learner.replay(&mut out);
        self.effects(id, Role::Learner, out);
        let first = self.now + 1;
        self.push(first, Ev::Tick { node: id, inc });
    }

    fn end_faults(&mut self) {
        self.note(|| "faults stop: heal, restart every node, perfect network".to_string());
        self.faults_on = false;
        self.sides = None;
        let now = self.now;
        for n in &mut self.nodes {
            n.paused_until = n.paused_until.min(now);
        }
        let down: Vec<NodeId> = self.nodes.iter().filter(|n| !n.up).map(|n| n.id).collect();
        for id in down {
            self.restart(id);
        }
        if let Workload::Cluster { .. } | Workload::Probe { .. } = self.cfg.workload {
            // The liveness probe: one write that must commit within settle_ms.
            self.clients.insert(
                PROBE_CLIENT,
                Client {
                    id: PROBE_CLIENT,
                    rng: Rng::derive(self.cfg.seed, 7),
                    target: 1,
                    seq: 0,
                    left: 1,
                    pending: None,
                    seen: BTreeMap::new(),
                },
            );
            self.client_next(PROBE_CLIENT);
        }
    }

    // ---------------------------------------------------------------- clients

    fn client(&mut self, id: u64) -> Option<&mut Client> {
        self.clients.get_mut(&id)
    }

    /// A probe client did its one operation: forget it (there are many).
    fn retire_probe(&mut self, id: u64) {
        if matches!(self.cfg.workload, Workload::Probe { .. }) && id != PROBE_CLIENT {
            self.clients.remove(&id);
        }
    }

    fn probe_tick(&mut self) {
        let Workload::Probe { every_ms } = self.cfg.workload else {
            return;
        };
        if !self.faults_on {
            return;
        }
        let id = self.next_probe;
        self.next_probe += 1;
        let n = self.cfg.nodes as u64;
        self.clients.insert(
            id,
            Client {
                id,
                rng: Rng::derive(self.cfg.seed, 1_000 + id),
                target: 1 + id % n,
                seq: 0,
                left: 1,
                pending: None,
                seen: BTreeMap::new(),
            },
        );
        self.client_next(id);
        let next = self.now + every_ms;
        self.push(next, Ev::ProbeTick);
    }

    fn plan(&mut self, action: PlanAction) {
        match action {
            PlanAction::Crash(id) => {
                if self.node(id).up {
                    self.crash(id);
                }
            }
            PlanAction::Restart(id) => self.restart(id),
            PlanAction::Split(sides) => {
                let show = sides_text(&sides);
                self.note(|| format!("partition: {show}"));
                self.stats.partitions += 1;
                self.sides = Some(sides);
            }
            PlanAction::Heal => {
                self.sides = None;
            }
        }
    }

    fn client_next(&mut self, id: u64) {
        let keys = match self.cfg.workload {
            Workload::Cluster { keys, .. } => keys.max(1),
            Workload::Probe { .. } => 0,
            Workload::Decree { .. } => return,
        };
        let now = self.now;
        let Some(c) = self.client(id) else { return };
        if c.left == 0 || c.pending.is_some() {
            return;
        }
        c.left -= 1;
        c.seq += 1;
        let op = if c.id == PROBE_CLIENT {
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
        let faults_on = self.faults_on;
        let (loss, delay) = if faults_on {
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

    fn client_request(&mut self, node: NodeId, cmd: Command) {
        if !self.node(node).up {
            return;
        }
        self.note(|| format!("client {} → {node}  {}", cmd.client, cmd.op));
        self.node(node).waiting.insert((cmd.client, cmd.seq));
        let env = Envelope {
            from: node,
            to: node,
            msg: Message::Request(cmd),
        };
        self.dispatch(env);
    }

    fn node_reply(&mut self, node: NodeId, r: Reply) {
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

    fn client_reply(&mut self, r: Reply) {
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
                let hist = p.hist;
                if let (
                    Op::Put { key, value }
                    | Op::Cas {
                        key, new: value, ..
                    },
                    _,
                ) = (&p.op, &result)
                {
                    let swapped = !matches!(result, crate::kv::OpResult::Swapped(false));
                    if swapped {
                        c.seen.insert(key.clone(), Some(value.clone()));
                    }
                }
                if let (Op::Get { key }, crate::kv::OpResult::Value(v)) = (&p.op, &result) {
                    c.seen.insert(key.clone(), v.clone());
                }
                if let Op::Delete { key } = &p.op {
                    c.seen.insert(key.clone(), None);
                }
                c.pending = None;
                let id = c.id;
                if id == PROBE_CLIENT {
                    self.probe_done = true;
                }
                self.history.complete(hist, now, Status::Ok(result));
                self.retire_probe(id);
                let think = self.rng.range(0, 20);
                self.push(now + think, Ev::ClientNext(id));
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

    fn client_timeout(&mut self, client: u64, seq: u64, attempt: u32) {
        let now = self.now;
        let n = self.cfg.nodes as u64;
        let Some(c) = self.client(client) else { return };
        if c.seq != seq {
            return;
        }
        let Some(p) = &mut c.pending else { return };
        let redirected = attempt == u32::MAX;
        if !redirected {
            if p.attempt != attempt {
                return;
            }
            // No answer: the command may have been proposed.
            p.maybe_proposed = true;
            c.target = c.target % n + 1;
        }
        if now >= p.deadline {
            let status = if p.maybe_proposed {
                Status::Unknown
            } else {
                Status::Failed
            };
            let hist = p.hist;
            c.pending = None;
            let id = c.id;
            self.history.complete(hist, now, status);
            self.retire_probe(id);
            self.push(now + 1, Ev::ClientNext(id));
            return;
        }
        self.client_send(client);
    }

    // ---------------------------------------------------------------- verdict

    fn finish(mut self) -> Report {
        self.stats.slots_chosen = self.ghost.chosen().len() as u64;
        if let Workload::Cluster { .. } | Workload::Probe { .. } = self.cfg.workload {
            let best = self
                .nodes
                .iter()
                .max_by_key(|n| n.replica.next_slot())
                .expect("at least one node");
            self.stats.commands_committed = best.replica.applied_commands();
            // Durability: every acknowledged write is in the chosen log.
            let applied: BTreeSet<(u64, u64)> = best
                .replica
                .audit()
                .unwrap_or(&[])
                .iter()
                .map(|&(_, c, s)| (c, s))
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
        }
        Report {
            chosen: self.ghost.chosen().clone(),
            violations: self.violations,
            stats: self.stats,
            history: (!matches!(self.cfg.workload, Workload::Decree { .. }))
                .then_some(self.history),
            trace: self.trace,
            config: self.cfg,
        }
    }
}

fn own_value(id: NodeId) -> String {
    format!("value-of-{id}")
}

fn sides_text(sides: &[u8]) -> String {
    let side = |s: u8| {
        sides
            .iter()
            .enumerate()
            .filter(|(_, &x)| x == s)
            .map(|(i, _)| (i + 1).to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    format!("{{{}}} | {{{}}}", side(0), side(1))
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
