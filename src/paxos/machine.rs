//! One trait over the role machines, and one recovery that builds them all.
//!
//! Every role is driven the same way (stateright's `Actor`, raft-rs's
//! `RawNode`): a message from a peer, a notice from a role of the same node,
//! or a tick goes in; effects come out in an [`Outbox`]. Each shell (the real
//! node's actors, the simulator's nodes) drives every role through
//! [`Machine`] and asks the role, not its own code, how its records must be
//! synced ([`Machine::sync`]). [`recover`] rebuilds every role of a node from
//! what its logs and snapshot held, for both shells.

use super::acceptor::{Acceptor, PromiseLimit};
use super::ballot::NodeId;
use super::config::{Config, Configs, ALPHA};
use super::decree::DecreeProposer;
use super::learner::{Learner, CATCHUP_BYTES};
use super::message::{Message, Notice, Outbox, Record, Role, SnapshotFile};
use super::proposer::{Proposer, ProposerConfig};
use super::replica::{Replica, ReplicaConfig, Snapshot};
use super::rules::Rules;

/// How a role's records reach the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sync {
    /// Synced before the messages that depend on them leave (the gate holds
    /// them): the acceptor's promises and accepts, the proposer's rounds.
    BeforeSend,
    /// Nothing waits for them (what they hold, peers teach again): written
    /// and synced once a tick; a crash loses at most a tick of them.
    Lazy,
    /// The role keeps no log (the replica: its snapshots have a writer of
    /// their own).
    None,
}

/// A role's state machine: inputs in, effects out, nothing else.
pub trait Machine {
    /// The role (messages are routed by [`Message::role`]).
    fn role(&self) -> Role;

    /// How its records must be synced.
    fn sync(&self) -> Sync;

    /// A message from node `from`. Every implementation drops a message
    /// whose numbers no real cluster sends ([`Message::in_range`]) first.
    fn handle(&mut self, from: NodeId, msg: Message, out: &mut Outbox);

    /// A notice from another role of this node.
    fn notice(&mut self, notice: Notice, out: &mut Outbox);

    /// Logical time passed: one tick. Most roles have nothing to do.
    fn tick(&mut self, _out: &mut Outbox) {}

    /// What a newly started role tells the others (the learner: every slot
    /// known chosen before the restart).
    fn started(&mut self, _out: &mut Outbox) {}
}

impl Machine for Acceptor {
    fn role(&self) -> Role {
        Role::Acceptor
    }

    fn sync(&self) -> Sync {
        Sync::BeforeSend
    }

    fn handle(&mut self, from: NodeId, msg: Message, out: &mut Outbox) {
        if msg.in_range() {
            Acceptor::handle(self, from, msg, out)
        }
    }

    fn notice(&mut self, notice: Notice, out: &mut Outbox) {
        Acceptor::notice(self, notice, out)
    }
}

impl Machine for Proposer {
    fn role(&self) -> Role {
        Role::Proposer
    }

    fn sync(&self) -> Sync {
        Sync::BeforeSend
    }

    fn handle(&mut self, from: NodeId, msg: Message, out: &mut Outbox) {
        if msg.in_range() {
            Proposer::handle(self, from, msg, out)
        }
    }

    fn notice(&mut self, notice: Notice, out: &mut Outbox) {
        Proposer::notice(self, notice, out)
    }

    fn tick(&mut self, out: &mut Outbox) {
        Proposer::tick(self, out)
    }
}

impl Machine for Learner {
    fn role(&self) -> Role {
        Role::Learner
    }

    fn sync(&self) -> Sync {
        Sync::Lazy
    }

    fn handle(&mut self, from: NodeId, msg: Message, out: &mut Outbox) {
        if msg.in_range() {
            Learner::handle(self, from, msg, out)
        }
    }

    fn notice(&mut self, notice: Notice, out: &mut Outbox) {
        Learner::notice(self, notice, out)
    }

    fn tick(&mut self, out: &mut Outbox) {
        Learner::tick(self, out)
    }

    fn started(&mut self, out: &mut Outbox) {
        self.replay(out)
    }
}

impl Machine for Replica {
    fn role(&self) -> Role {
        Role::Replica
    }

    fn sync(&self) -> Sync {
        Sync::None
    }

    fn handle(&mut self, from: NodeId, msg: Message, out: &mut Outbox) {
        if msg.in_range() {
            Replica::handle(self, from, msg, out)
        }
    }

    fn notice(&mut self, notice: Notice, out: &mut Outbox) {
        Replica::notice(self, notice, out)
    }
}

impl Machine for DecreeProposer {
    fn role(&self) -> Role {
        Role::Proposer
    }

    fn sync(&self) -> Sync {
        Sync::BeforeSend
    }

    fn handle(&mut self, from: NodeId, msg: Message, out: &mut Outbox) {
        if msg.in_range() {
            DecreeProposer::handle(self, from, msg, out)
        }
    }

    fn notice(&mut self, notice: Notice, _out: &mut Outbox) {
        DecreeProposer::notice(self, notice)
    }

    fn tick(&mut self, out: &mut Outbox) {
        DecreeProposer::tick(self, out)
    }
}

/// What one node is, whatever it recovers.
#[derive(Clone, Debug)]
pub struct NodeSetup {
    /// The node.
    pub id: NodeId,
    /// Every member.
    pub nodes: Vec<NodeId>,
    /// Which rules hold.
    pub rules: Rules,
    /// The proposer's settings (quorums among them).
    pub proposer: ProposerConfig,
    /// The replica's settings (snapshots, and slots kept below them).
    pub replica: ReplicaConfig,
    /// The proposer's seed (election timeouts).
    pub seed: u64,
    /// How much one promise carries at most.
    pub promise_limit: PromiseLimit,
    /// Bytes of values one `Learn` carries at most.
    pub learn_bytes: usize,
    /// Slots between a membership change being chosen and taking effect.
    pub alpha: u64,
}

impl NodeSetup {
    /// Node `id` of `nodes` with the limits of the wire's frames.
    pub fn new(
        id: NodeId,
        nodes: Vec<NodeId>,
        rules: Rules,
        proposer: ProposerConfig,
        replica: ReplicaConfig,
        seed: u64,
    ) -> Self {
        NodeSetup {
            id,
            nodes,
            rules,
            proposer,
            replica,
            seed,
            promise_limit: PromiseLimit::default(),
            learn_bytes: CATCHUP_BYTES,
            alpha: ALPHA,
        }
    }
}

/// What a node's disk held when it started.
#[derive(Default)]
pub struct Durable<'a> {
    /// The acceptor's log.
    pub acceptor: &'a [Record],
    /// The proposer's log.
    pub proposer: &'a [Record],
    /// The learner's log.
    pub learner: &'a [Record],
    /// The latest durable snapshot, and what it decoded to.
    pub snapshot: Option<(&'a SnapshotFile, Snapshot)>,
}

/// Every role of one node.
pub struct Roles {
    /// Promises and accepts.
    pub acceptor: Acceptor,
    /// Elections, phase 1 and 2, heartbeats, batching.
    pub proposer: Proposer,
    /// Counts votes, learns what is chosen.
    pub learner: Learner,
    /// Applies chosen slots, answers clients, takes snapshots.
    pub replica: Replica,
}

/// Every role of node `setup.id`, rebuilt from what its disk held: the
/// acceptor from its promises and accepts, the proposer above every round it
/// used and every ballot its acceptor promised (Paxos Made Simple §2.5), the
/// learner from what it learned (nothing, with `persist` broken), the replica
/// from its snapshot. The one recovery both shells use.
pub fn recover(setup: &NodeSetup, durable: Durable<'_>) -> Roles {
    let NodeSetup {
        id,
        nodes,
        rules,
        proposer,
        replica,
        seed,
        promise_limit,
        learn_bytes,
        alpha,
    } = setup;
    let (id, rules, replica) = (*id, *rules, *replica);
    let keep = replica.keep;
    let acceptor = Acceptor::recover(id, rules, durable.acceptor)
        .with_limit(*promise_limit)
        .with_keep(replica.keep);
    let quorums = proposer.quorums(nodes.len(), rules);
    let q2 = quorums.phase2;
    let proposer = Proposer::recover(
        id,
        nodes.clone(),
        rules,
        proposer.clone(),
        *seed,
        durable.proposer,
        acceptor.promised(),
    );
    let replica = match durable.snapshot {
        Some((file, s)) => Replica::restore(id, replica, file, s),
        None => Replica::new(id, replica),
    }
    .with_rules(rules)
    .with_configs(Configs::new(
        Config::first(nodes.iter().copied(), quorums),
        *alpha,
    ));
    // The configurations come from the node's own snapshot and log, never
    // from the cluster file past the first one.
    let configs = replica.configs().expect("set just above").clone();
    let learner = Learner::recover(id, nodes.clone(), q2, rules, durable.learner)
        .with_max_bytes(*learn_bytes)
        .with_keep(keep)
        .with_configs(configs);
    let proposer = proposer.with_configs(learner.configs().clone());
    Roles {
        acceptor,
        proposer,
        learner,
        replica,
    }
}

#[cfg(test)]
mod numbers_from_peers {
    //! Every message type, with every field drawn from the numbers a member
    //! could send (edges, the limits and one past them, random), to every
    //! role: no panic, nothing out of range has any effect, and what comes
    //! out stays bounded and unwrapped. (A member can still lie about
    //! *values*: Paxos tolerates crashes, not Byzantine members; what this
    //! shows is that no number it sends can break a node.)
    use rand_core::Rng;

    use super::*;
    use crate::kv::Op;
    use crate::paxos::ballot::{MAX_ROUND, MAX_SLOT, MAX_SNAPSHOT_BYTES, MAX_SPAN};
    use crate::paxos::message::{Command, Digest, PValue, Value};
    use crate::paxos::{Ballot, Slot};

    const NODES: [NodeId; 3] = [1, 2, 3];

    struct Gen(rand_pcg::Pcg64Mcg);

    impl Gen {
        fn below(&mut self, n: u64) -> u64 {
            self.0.next_u64() % n
        }

        fn number(&mut self) -> u64 {
            const EDGES: [u64; 12] = [
                0,
                1,
                2,
                7,
                MAX_SLOT - 1,
                MAX_SLOT,
                MAX_SLOT + 1,
                MAX_SNAPSHOT_BYTES,
                MAX_SNAPSHOT_BYTES + 1,
                u64::MAX - 1,
                u64::MAX,
                1 << 63,
            ];
            match self.below(4) {
                0 => EDGES[self.below(EDGES.len() as u64) as usize],
                1 => self.below(64),
                2 => self.0.next_u64(),
                _ => self.below(MAX_SLOT + 2),
            }
        }

        fn ballot(&mut self) -> Ballot {
            let round = match self.below(3) {
                0 => MAX_ROUND + self.below(2),
                _ => self.number(),
            };
            Ballot::new(round, 1 + self.below(4))
        }

        fn value(&mut self) -> Value {
            match self.below(3) {
                0 => Value::Noop,
                1 => Value::Text("x".into()),
                _ => Value::Batch(vec![Command {
                    client: self.number(),
                    seq: self.number(),
                    op: Op::Put {
                        key: "k".into(),
                        value: "v".into(),
                    },
                }]),
            }
        }

        fn message(&mut self) -> Message {
            match self.below(16) {
                0 => Message::Prepare {
                    ballot: self.ballot(),
                    from_slot: self.number(),
                },
                1 => {
                    let from_slot = self.number();
                    let n = self.below(4);
                    let accepted = (0..n)
                        .map(|_| PValue {
                            slot: if self.below(2) == 0 {
                                from_slot.saturating_add(self.below(8))
                            } else {
                                self.number()
                            },
                            ballot: self.ballot(),
                            value: self.value(),
                        })
                        .collect();
                    Message::Promise {
                        ballot: self.ballot(),
                        from_slot,
                        accepted,
                        next: (self.below(2) == 0).then(|| self.number()),
                        floor: self.number(),
                    }
                }
                2 => Message::Nack {
                    ballot: self.ballot(),
                    promised: self.ballot(),
                },
                3 => Message::Accept {
                    ballot: self.ballot(),
                    slot: self.number(),
                    value: self.value(),
                },
                4 => Message::Accepted {
                    ballot: self.ballot(),
                    slot: self.number(),
                    digest: Digest::default(),
                },
                5 => Message::Heartbeat {
                    ballot: self.ballot(),
                    first_unchosen: self.number(),
                    seq: self.number(),
                },
                6 => Message::HeartbeatAck {
                    ballot: self.ballot(),
                    seq: self.number(),
                },
                7 => Message::Learn {
                    entries: (0..self.below(4))
                        .map(|_| (self.number(), self.value()))
                        .collect(),
                },
                8 => Message::CatchUp {
                    from_slot: self.number(),
                },
                9 => Message::Compacted {
                    floor: self.number(),
                },
                10 => Message::SnapshotRequest {
                    slot: self.number(),
                    offset: self.number(),
                },
                11 => {
                    let total = self.number();
                    Message::SnapshotChunk {
                        slot: self.number(),
                        offset: if self.below(2) == 0 { 0 } else { self.number() },
                        total,
                        crc: self.0.next_u32(),
                        data: vec![7; self.below(64) as usize],
                    }
                }
                12 => Message::PreVote {
                    ballot: self.ballot(),
                },
                13 => Message::PreVoteReply {
                    ballot: self.ballot(),
                    granted: self.below(2) == 0,
                },
                14 => Message::TakeOver {
                    ballot: self.ballot(),
                },
                _ => Message::Learn {
                    entries: vec![(self.below(32), self.value())],
                },
            }
        }
    }

    fn machine(roles: &mut Roles, role: Role) -> &mut dyn Machine {
        match role {
            Role::Acceptor => &mut roles.acceptor,
            Role::Proposer => &mut roles.proposer,
            Role::Learner => &mut roles.learner,
            Role::Replica => &mut roles.replica,
        }
    }

    /// The largest slot anything in `out` names.
    fn slots_out(out: &Outbox) -> impl Iterator<Item = Slot> + '_ {
        out.send
            .iter()
            .chain(&out.send_durable)
            .filter_map(|e| match &e.msg {
                Message::Accept { slot, .. } | Message::Accepted { slot, .. } => Some(*slot),
                Message::Prepare { from_slot, .. } | Message::CatchUp { from_slot } => {
                    Some(*from_slot)
                }
                Message::Heartbeat { first_unchosen, .. } => Some(*first_unchosen),
                _ => None,
            })
    }

    #[test]
    fn no_number_a_member_sends_panics_wraps_or_runs_away() {
        let mut dropped = 0;
        for seed in 0..40u64 {
            let mut g = Gen(rand_pcg::Pcg64Mcg::new(u128::from(seed) * 2 + 1));
            let setup = NodeSetup::new(
                1,
                NODES.to_vec(),
                Rules::ALL,
                ProposerConfig::default(),
                ReplicaConfig::default(),
                seed,
            );
            let mut roles = recover(&setup, Durable::default());
            for step in 0..2_000 {
                let mut out = Outbox::default();
                if step % 50 == 0 {
                    // Time passes: the proposer campaigns, the learner asks.
                    roles.proposer.tick(&mut out);
                    roles.learner.tick(&mut out);
                }
                let msg = g.message();
                let from = NODES[g.below(3) as usize];
                let role = msg.role();
                let sane = msg.in_range();
                let mut effect = Outbox::default();
                machine(&mut roles, role).handle(from, msg.clone(), &mut effect);
                if !sane {
                    dropped += 1;
                    assert!(
                        effect.send.is_empty()
                            && effect.send_durable.is_empty()
                            && effect.persist.is_empty()
                            && effect.notices.is_empty()
                            && effect.replies.is_empty()
                            && effect.snapshot.is_none(),
                        "seed {seed}: {msg:?} is out of range yet had an effect"
                    );
                }
                // What the roles tell each other, for a few rounds.
                let mut notices = std::mem::take(&mut effect.notices);
                for _ in 0..4 {
                    let mut next = Vec::new();
                    for n in notices {
                        for &r in n.roles() {
                            let mut o = Outbox::default();
                            machine(&mut roles, r).notice(n.clone(), &mut o);
                            next.append(&mut o.notices);
                            assert!(slots_out(&o).all(|s| s <= MAX_SLOT + MAX_SPAN + 1));
                        }
                    }
                    notices = next;
                }
                let sent = effect.send.len() + effect.send_durable.len();
                assert!(
                    sent <= (MAX_SPAN as usize + 1_000) * NODES.len(),
                    "seed {seed}: {sent} messages for {msg:?}"
                );
                for s in slots_out(&effect).chain(slots_out(&out)) {
                    assert!(
                        s <= MAX_SLOT + MAX_SPAN + 1,
                        "seed {seed}: slot {s} after {msg:?}"
                    );
                }
                assert!(roles.proposer.next_slot() <= MAX_SLOT + MAX_SPAN + 1);
                assert!(roles.replica.next_slot() <= MAX_SLOT + 1);
            }
        }
        assert!(
            dropped > 10_000,
            "the generator reaches out-of-range numbers: {dropped}"
        );
    }
}
