//! Simulated nodes: the protocol's roles, each role's log behind a
//! [`Gate`] (the same ordering code the real node runs), syncs that take
//! virtual time, and the invariant checks on what the roles say.

use std::collections::{BTreeSet, VecDeque};

use super::{Ev, World};
use crate::paxos::quorum::majority;
use crate::paxos::{
    self, Acceptor, Ballot, Campaign, DecreeProposer, Digest, Durable, Envelope, Gate, Learner,
    Machine, Message, Mode, NodeId, NodeSetup, Notice, Outbox, Persist, Proposer, Record, Replica,
    Role, Rule, Slot, Snapshot, SnapshotFile, Sync, Value,
};
use crate::sim::invariants as inv;
use crate::sim::Workload;
use crate::storage::{MemLog, Storage};

/// What a proposer role is in this run.
pub(super) enum Driver {
    /// A node that only accepts and learns (single-decree runs).
    Idle,
    Decree(DecreeProposer),
    Multi(Box<Proposer>),
}

impl Driver {
    fn mode(&self) -> Option<(Mode, Ballot)> {
        match self {
            Driver::Multi(p) => Some((p.mode(), p.ballot())),
            _ => None,
        }
    }
}

/// One role's log: records written, a sync under way, the gate.
#[derive(Default)]
pub(super) struct Disk {
    pub(super) log: MemLog,
    gate: Gate,
    /// Batches written and not yet synced: (batch, records in it).
    unsynced: VecDeque<(u64, usize)>,
    /// When the last sync scheduled completes (syncs complete in order).
    last_sync_at: u64,
    /// Every sync takes this long (a scenario's slow disk), until a crash.
    slow_ms: Option<u64>,
}

impl Disk {
    /// Every sync takes `ms` from now on (until the process dies).
    pub(super) fn set_slow(&mut self, ms: u64) {
        self.slow_ms = Some(ms);
    }
}

/// The logs (and the snapshot) that survive a crash.
#[derive(Default)]
pub(super) struct Logs {
    pub(super) acceptor: MemLog,
    pub(super) proposer: MemLog,
    pub(super) learner: MemLog,
    pub(super) snapshot: Option<SnapshotFile>,
}

pub(super) struct Node {
    pub(super) id: NodeId,
    pub(super) up: bool,
    pub(super) incarnation: u64,
    pub(super) acceptor: Acceptor,
    pub(super) driver: Driver,
    pub(super) learner: Learner,
    pub(super) replica: Replica,
    /// One disk per role, in the order of [`Role`] (the replica never writes).
    disks: [Disk; 4],
    /// Client commands this node received and has not answered.
    pub(super) waiting: BTreeSet<(u64, u64)>,
    pub(super) audited: usize,
    /// Stopped (like SIGSTOP): its events wait here until it resumes.
    pub(super) paused: bool,
    pub(super) parked: Vec<Ev>,
    /// Frames queued for it while it was down (kept only with `fresh` broken).
    pub(super) replays: Vec<Envelope>,
    /// Its latest durable snapshot (survives crashes).
    pub(super) snapshot: Option<SnapshotFile>,
    was_leader: bool,
}

fn slot_of(role: Role) -> usize {
    match role {
        Role::Acceptor => 0,
        Role::Proposer => 1,
        Role::Learner => 2,
        Role::Replica => 3,
    }
}

impl Node {
    pub(super) fn disk(&mut self, role: Role) -> &mut Disk {
        &mut self.disks[slot_of(role)]
    }

    /// The machine that plays `role` here (none: a node with no proposer).
    pub(super) fn machine(&mut self, role: Role) -> Option<&mut dyn Machine> {
        match role {
            Role::Acceptor => Some(&mut self.acceptor),
            Role::Proposer => match &mut self.driver {
                Driver::Idle => None,
                Driver::Decree(d) => Some(d),
                Driver::Multi(p) => Some(p.as_mut()),
            },
            Role::Learner => Some(&mut self.learner),
            Role::Replica => Some(&mut self.replica),
        }
    }
}

/// What an acceptor's durable records back: the highest ballot among them,
/// and every (slot, ballot, value) accepted.
#[derive(Clone, Debug, Default)]
pub(super) struct Backing {
    pub(super) ballot: Ballot,
    pub(super) accepts: BTreeSet<(Slot, Ballot, Digest)>,
}

impl Backing {
    /// Count `records`, newly durable.
    fn add(&mut self, records: &[Record]) {
        for r in records {
            match r {
                Record::Promise { ballot } => self.ballot = self.ballot.max(*ballot),
                Record::Accept {
                    slot,
                    ballot,
                    value,
                } => {
                    self.ballot = self.ballot.max(*ballot);
                    self.accepts.insert((*slot, *ballot, value.digest()));
                }
                _ => {}
            }
        }
    }
}

/// The value single-decree proposer `id` would like chosen.
pub(super) fn own_value(id: NodeId) -> String {
    format!("value-of-{id}")
}

impl World {
    /// Node `id` rebuilt from `logs` (its incarnation `inc`).
    pub(super) fn fresh_node(&self, id: NodeId, logs: Logs, inc: u64) -> Node {
        let n = self.cfg.nodes;
        let ids: Vec<NodeId> = (1..=n as NodeId).collect();
        let rules = self.cfg.rules;
        let rcfg = self.cfg.replica;
        let seed = self.cfg.seed ^ (id << 32) ^ (inc << 48);
        let snapshot = logs.snapshot;
        let decoded = snapshot
            .as_ref()
            .map(|f| Snapshot::decode(f).expect("the simulator's snapshots check out"));
        let setup = NodeSetup {
            promise_limit: self.cfg.promise_limit,
            learn_bytes: self.cfg.max_frame / 4,
            alpha: self.cfg.alpha,
            ..NodeSetup::new(
                id,
                ids.clone(),
                rules,
                self.cfg.proposer.clone(),
                rcfg,
                seed,
            )
        };
        let roles = paxos::recover(
            &setup,
            Durable {
                acceptor: logs.acceptor.durable(),
                proposer: logs.proposer.durable(),
                learner: logs.learner.durable(),
                snapshot: snapshot.as_ref().zip(decoded),
            },
        );
        let driver = match self.cfg.workload {
            Workload::Decree { proposers } if id as usize > proposers => Driver::Idle,
            Workload::Decree { .. } => {
                let mut p = Campaign::recover(id, ids, majority(n), rules, logs.proposer.durable());
                if rules.holds(Rule::Round) {
                    p.observe(roles.acceptor.promised());
                }
                Driver::Decree(DecreeProposer::new(p, Value::Text(own_value(id)), 8, seed))
            }
            _ => Driver::Multi(Box::new(roles.proposer)),
        };
        let (acceptor, learner) = (roles.acceptor, roles.learner);
        let replica = roles.replica.with_audit();
        let disk = |log| Disk {
            log,
            ..Disk::default()
        };
        Node {
            id,
            up: true,
            incarnation: inc,
            acceptor,
            driver,
            learner,
            replica,
            disks: [
                disk(logs.acceptor),
                disk(logs.proposer),
                disk(logs.learner),
                Disk::default(),
            ],
            waiting: BTreeSet::new(),
            audited: 0,
            paused: false,
            parked: Vec::new(),
            replays: Vec::new(),
            snapshot,
            was_leader: false,
        }
    }

    /// The logs node `id` leaves behind when it crashes: what was synced,
    /// and of what was written but not synced a random oldest part (a write
    /// may reach the page cache before the process dies).
    pub(super) fn crash_logs(&mut self, id: NodeId) -> Logs {
        let take = |w: &mut World, role: Role| {
            let mut log = std::mem::take(&mut w.node(id).disk(role).log);
            let keep = w.rng.range(0, log.pending() as u64) as usize;
            let kept = log.crash_keeping(keep);
            if role == Role::Acceptor {
                w.backing.entry(id).or_default().add(&kept);
            }
            log
        };
        Logs {
            acceptor: take(self, Role::Acceptor),
            proposer: take(self, Role::Proposer),
            learner: take(self, Role::Learner),
            snapshot: self.node(id).snapshot.take(),
        }
    }

    /// A message from the wire reached its node.
    pub(super) fn deliver(&mut self, env: Envelope) {
        let role = env.msg.role();
        let id = env.to;
        let accept = match &env.msg {
            Message::Accept {
                ballot,
                slot,
                value,
            } => Some((*ballot, *slot, value.clone())),
            _ => None,
        };
        let mut out = Outbox::new();
        if let Some(m) = self.node(id).machine(role) {
            m.handle(env.from, env.msg, &mut out);
        }
        if let Some((ballot, slot, value)) = accept {
            // Ballot uniqueness, from the ground truth: what this acceptor now
            // holds for the slot, against what any acceptor ever held there.
            let holds = self.node(id).acceptor.accepted(slot) == Some(&(ballot, value.clone()));
            if holds {
                let bad = inv::ballot_unique(&mut self.ghost, id, slot, ballot, &value);
                self.violation(bad);
                self.values.entry(value.digest()).or_insert(value);
            }
        }
        self.effects(id, role, out);
    }

    /// A notice from one of a node's roles to the others.
    pub(super) fn local(&mut self, id: NodeId, notice: Notice) {
        for &role in notice.roles() {
            let mut out = Outbox::new();
            if let Some(m) = self.node(id).machine(role) {
                m.notice(notice.clone(), &mut out);
            }
            self.effects(id, role, out);
        }
    }

    pub(super) fn tick(&mut self, id: NodeId) {
        for role in [Role::Proposer, Role::Learner] {
            let n = self.node(id);
            let Some(m) = n.machine(role) else { continue };
            let lazy = m.sync() == Sync::Lazy;
            let mut out = Outbox::new();
            m.tick(&mut out);
            if lazy {
                // Nothing waits for these records: the log is synced once a tick.
                n.disk(role).log.sync().expect("in-memory logs do not fail");
            }
            self.effects(id, role, out);
        }
    }

    /// Start phase 1 on node `id` at once (a scenario's script).
    pub(super) fn campaign(&mut self, id: NodeId) {
        let mut out = Outbox::new();
        if let Driver::Multi(p) = &mut self.node(id).driver {
            p.campaign(&mut out);
        }
        self.effects(id, Role::Proposer, out);
    }

    /// Carry out a role's effects through its gate, as the real node does.
    pub(super) fn effects(&mut self, id: NodeId, role: Role, out: Outbox) {
        let lazy = self
            .node(id)
            .machine(role)
            .is_some_and(|m| m.sync() == Sync::Lazy);
        let mut ready = self.node(id).disk(role).gate.ready(out);
        // Saved after the notices are on their way: a replica that installed
        // a snapshot tells its learner and proposer the configurations it
        // holds before the snapshot's `Snapshotted` moves them past its slot.
        let snapshot = ready.snapshot.take();
        if let Some(Persist {
            batch,
            records,
            rewrite,
        }) = ready.persist
        {
            let disk = self.node(id).disk(role);
            let writes = if rewrite {
                disk.log.rewrite_later(records);
                1
            } else {
                for r in &records {
                    disk.log.append(r).expect("in-memory logs do not fail");
                }
                records.len()
            };
            disk.unsynced.push_back((batch, writes));
            if lazy {
                // Nothing waits for the learner's records.
                disk.gate.synced(batch);
            } else {
                let latency = match disk.slow_ms {
                    Some(ms) => ms,
                    None => {
                        let (lo, hi) = self.cfg.faults.disk_ms;
                        self.rng.range(lo, hi)
                    }
                };
                let now = self.now;
                let disk = self.node(id).disk(role);
                let at = disk.last_sync_at.max(now + latency);
                disk.last_sync_at = at;
                let inc = self.node(id).incarnation;
                self.push(
                    at,
                    Ev::Synced {
                        node: id,
                        inc,
                        role,
                        batch,
                    },
                );
            }
        }
        for env in ready.send {
            self.observe(id, role, &env);
            self.route(env);
        }
        for notice in ready.notices {
            if let (Role::Learner, Notice::Chosen { slot, value }) = (role, &notice) {
                self.learned(id, *slot, value);
            }
            let inc = self.node(id).incarnation;
            let now = self.now;
            self.note(|| format!("{id}: {}", notice.brief()));
            self.push(
                now,
                Ev::Notice {
                    node: id,
                    inc,
                    notice,
                },
            );
        }
        for r in ready.replies {
            self.node_reply(id, r);
        }
        if let Some(file) = snapshot {
            self.save_snapshot(id, file);
        }
        match role {
            Role::Proposer => self.watch_leader(id),
            Role::Replica => self.audit(id),
            _ => {}
        }
    }

    /// A sync of `role`'s log on node `id` completed through `batch`.
    pub(super) fn synced(&mut self, id: NodeId, role: Role, batch: u64) {
        let disk = self.node(id).disk(role);
        let mut records = 0;
        while disk.unsynced.front().is_some_and(|(b, _)| *b <= batch) {
            records += disk.unsynced.pop_front().expect("checked").1;
        }
        let fresh = disk.log.sync_first(records);
        let released = disk.gate.synced(batch);
        if role == Role::Acceptor {
            // What the acceptor's log now backs never goes down, across
            // restarts too.
            let backing = self.backing.entry(id).or_default();
            backing.add(&fresh);
            let ballot = backing.ballot;
            let v = inv::promise_monotonic(&mut self.promised, id, ballot);
            self.violation(v);
        }
        for env in released {
            self.observe(id, role, &env);
            self.route(env);
        }
    }

    /// The replica asked for a snapshot to be made durable: it takes a disk's
    /// time, and a crash before then loses it.
    fn save_snapshot(&mut self, id: NodeId, file: SnapshotFile) {
        let (lo, hi) = self.cfg.faults.disk_ms;
        let latency = self.rng.range(lo, hi);
        // One writer: snapshots become durable in the order they were taken.
        let now = self.now;
        let disk = self.node(id).disk(Role::Replica);
        let at = disk.last_sync_at.max(now + latency);
        disk.last_sync_at = at;
        let inc = self.node(id).incarnation;
        self.push(
            at,
            Ev::SnapshotSaved {
                node: id,
                inc,
                file,
            },
        );
    }

    /// Ask node `id`'s proposer for a change to `voters` and `learners`.
    pub(super) fn reconfig(&mut self, id: NodeId, voters: Vec<NodeId>, learners: Vec<NodeId>) {
        if !self.node(id).up {
            return;
        }
        let change = crate::paxos::Change {
            voters: voters.iter().copied().collect(),
            learners: learners.iter().copied().collect(),
            quorums: None,
            contacts: Default::default(),
            force: false,
        };
        let mut out = crate::paxos::Outbox::new();
        let result = match &mut self.node(id).driver {
            Driver::Multi(p) => p.reconfigure(change, &mut out),
            _ => Err("no multi-paxos proposer".into()),
        };
        match result {
            Ok(slot) => {
                self.stats.changes += 1;
                for env in &out.send {
                    if let Message::Accept {
                        value: Value::Reconfig(c),
                        ..
                    } = &env.msg
                    {
                        if !self.changes.contains(c) {
                            self.changes.push((**c).clone());
                        }
                    }
                }
                self.note(|| {
                    format!("node {id} proposes voters {voters:?} learners {learners:?} at #{slot}")
                });
            }
            Err(why) => {
                self.stats.changes_refused += 1;
                self.note(|| format!("node {id} refuses voters {voters:?}: {why}"));
            }
        }
        self.effects(id, Role::Proposer, out);
    }

    /// A snapshot is durable on node `id`: it survives crashes from now on,
    /// and every role hears that it may compact.
    pub(super) fn snapshot_saved(&mut self, id: NodeId, file: SnapshotFile) {
        let slot = file.slot;
        self.stats.snapshots += 1;
        self.note(|| format!("node {id}: snapshot below #{slot} durable"));
        self.node(id).snapshot = Some(file);
        self.local(id, Notice::Snapshotted { slot });
    }

    /// Record who became leader when (scenarios check that a healthy leader
    /// is not deposed).
    fn watch_leader(&mut self, id: NodeId) {
        let now = self.now;
        let n = self.node(id);
        let Some((mode, ballot)) = n.driver.mode() else {
            return;
        };
        let leads = mode == Mode::Leader;
        if leads && !n.was_leader {
            self.leaders.push((now, id, ballot));
            self.stats.elections += 1;
            self.note(|| format!("node {id} LEADS at {ballot}"));
        }
        self.node(id).was_leader = leads;
    }

    /// Watch what the roles say, for the ground truth and the invariants.
    fn observe(&mut self, id: NodeId, role: Role, env: &Envelope) {
        if role != Role::Acceptor {
            return;
        }
        let empty = Backing::default();
        let backing = self.backing.get(&id).unwrap_or(&empty);
        let said = match &env.msg {
            Message::Promise { ballot, .. } | Message::Accepted { ballot, .. } => Some(*ballot),
            Message::Nack { promised, .. } => Some(*promised),
            _ => None,
        };
        let mut bad = Vec::new();
        if let Some(said) = said {
            bad.push(inv::revealed_durable(
                id,
                said,
                || env.msg.brief(),
                backing.ballot,
            ));
        }
        if let Message::Accepted {
            ballot,
            slot,
            digest,
        } = &env.msg
        {
            // An Accepted is backed by that very accept, not just its ballot.
            let vote = (*slot, *ballot, *digest);
            let what = || env.msg.brief();
            bad.push(inv::accept_backed(
                id,
                vote,
                &backing.accepts,
                what,
                backing.ballot,
            ));
        }
        for v in bad {
            self.violation(v);
        }
        if let Message::Accepted {
            ballot,
            slot,
            digest,
        } = &env.msg
        {
            let Some(value) = self.values.get(digest).cloned() else {
                return;
            };
            let (slot, ballot) = (*slot, *ballot);
            self.note(|| format!("node {id} accepted #{slot} = {} at {ballot}", value.brief()));
            let mut chosen: Vec<(u64, crate::paxos::Ballot, Value)> = self
                .ghost
                .accepted(id, slot, ballot, &value)
                .map(|v| (slot, ballot, v))
                .into_iter()
                .collect();
            while let Some((slot, ballot, v)) = chosen.pop() {
                self.note(|| {
                    format!(
                        "CHOSEN #{slot} = {} (a quorum accepted {ballot})",
                        v.brief()
                    )
                });
                let bad = inv::validity(&self.texts, &self.commands, &self.changes, slot, &v);
                self.violation(bad);
                let bad = inv::agreement(&mut self.ghost, slot, ballot, v);
                self.violation(bad);
                // A change chosen may fix the configuration of slots whose
                // accepts were waiting for it.
                chosen.extend(self.ghost.settle());
            }
        }
    }

    /// Check what a node's learner tells its replica (learned values agree
    /// with the ground truth and never change), and what the replica applied.
    pub(super) fn audit(&mut self, id: NodeId) {
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

    /// A learner of node `id` learned `slot`: check it against the truth.
    pub(super) fn learned(&mut self, id: NodeId, slot: u64, value: &Value) {
        let bad = inv::learned_agrees(&self.ghost, id, slot, value);
        self.violation(bad);
        let bad = inv::stability(&mut self.learned, id, slot, value);
        self.violation(bad);
    }

    pub(super) fn route(&mut self, env: Envelope) {
        if env.from == env.to {
            // Between the roles of one node: no wire, no faults.
            self.push(self.now, Ev::Deliver(env));
            return;
        }
        self.stats.messages += 1;
        if let Message::SnapshotChunk { .. } = env.msg {
            self.stats.snapshot_chunks += 1;
        }
        // Sending enforces the frame limit as receiving does.
        let limit = self.cfg.max_frame;
        if env.msg.payload_size() > limit / 2 {
            let bytes = postcard::to_allocvec(&env).map_or(usize::MAX, |b| b.len());
            let bad = inv::frame_limit(env.from, env.to, env.msg.kind(), bytes, limit);
            if bad.is_some() {
                self.violation(bad);
                self.stats.dropped += 1;
                return;
            }
        }
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

    /// A message reached a node that is down. A real node's link to it queues
    /// the frame and sends it when the peer is back; with the `fresh` guard it
    /// drops frames meant for a process that has since died, so here the
    /// message is simply gone. With the guard broken, it is replayed to the
    /// next incarnation once the link reconnects (100 ms after the restart).
    pub(super) fn queued_for_the_dead(&mut self, env: Envelope) {
        if !self.cfg.rules.holds(Rule::Fresh) && self.is_member(env.from) {
            self.node(env.to).replays.push(env);
        }
    }
}
