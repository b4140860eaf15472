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

    /// A message from node `from`.
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
        Acceptor::handle(self, from, msg, out)
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
        Proposer::handle(self, from, msg, out)
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
        Learner::handle(self, from, msg, out)
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
        Replica::handle(self, from, msg, out)
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
        DecreeProposer::handle(self, from, msg, out)
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
    } = setup;
    let (id, rules, replica) = (*id, *rules, *replica);
    let acceptor = Acceptor::recover(id, rules, durable.acceptor)
        .with_limit(*promise_limit)
        .with_keep(replica.keep);
    let q2 = proposer.quorums(nodes.len(), rules).phase2;
    let proposer = Proposer::recover(
        id,
        nodes.clone(),
        rules,
        proposer.clone(),
        *seed,
        durable.proposer,
        acceptor.promised(),
    );
    let learner = Learner::recover(id, nodes.clone(), q2, rules, durable.learner)
        .with_max_bytes(*learn_bytes)
        .with_keep(replica.keep);
    let replica = match durable.snapshot {
        Some((file, s)) => Replica::restore(id, replica, file, s),
        None => Replica::new(id, replica),
    };
    Roles {
        acceptor,
        proposer,
        learner,
        replica,
    }
}
