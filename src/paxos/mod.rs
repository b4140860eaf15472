//! Paxos as pure state machines.
//!
//! # The algorithm, from its rules
//!
//! Some people must agree on one value while messages may be delayed, lost or
//! duplicated and people may fall silent. The explainer this project grew from
//! derives Paxos from a few rules:
//!
//! - **P1**: an acceptor accepts the first proposal it receives. Alone this lets
//!   three acceptors accept three different values, so a value counts as *chosen*
//!   only when a **majority** accepted it, and an acceptor may accept more than one
//!   proposal. Any two majorities intersect.
//! - **P2**: once a value is chosen, every proposal accepted later (with a higher
//!   number) carries that value. "Later" needs proposals to be totally ordered:
//!   [`Ballot`] is `(round, node)`.
//! - **P2a/P2b**: every higher-numbered proposal that is accepted, or even issued,
//!   carries the chosen value — think of the late joiner, switched on after
//!   "Zhengzhou" was chosen, who must not propose "Hainan".
//! - **P2c**: a proposal numbered `n` with value `v` may be issued only if some
//!   majority either accepted nothing below `n`, or the highest-numbered proposal
//!   below `n` they accepted has value `v`.
//!
//! P2c gives the two phases:
//!
//! 1. **prepare/promise**: a proposer picks ballot `n` and sends `Prepare(n)`; an
//!    acceptor that has promised nothing higher promises to refuse anything below
//!    `n` and reports the highest proposal it accepted ([`acceptor`]).
//! 2. **accept/accepted**: with promises from a majority, the proposer sends
//!    `Accept(n, v)` where `v` is the value of the highest-ballot proposal reported,
//!    or its own if none was ([`campaign`]). An acceptor accepts unless it promised
//!    a higher ballot. A value is chosen when a majority accepted the same ballot
//!    ([`learner`]).
//!
//! Multi-Paxos runs one instance per log slot and lets a leader that completed
//! phase 1 for every slot at once propose with phase 2 alone ([`proposer`]; the
//! single-decree proposer of the explainer's examples is [`decree`]);
//! replicas apply the chosen slots in order to a key-value map ([`replica`]).
//!
//! # How the code is shaped
//!
//! Each role is a plain struct. A handler takes one input (a message or a tick) and
//! appends its effects to an [`Outbox`]: messages, records to persist, client
//! replies. Nothing here touches a socket, file, clock, thread or the OS's
//! randomness; the simulator (`crate::sim`) and the real node (`crate::node`) are
//! two shells that carry the effects out. Persist-before-send is in the effect type
//! ([`Outbox::send_durable`]) and every shell carries an outbox out through one
//! [`Gate`], so the simulator runs the ordering the real node runs. Messages
//! between nodes ([`Message`]) and notices between the roles of one node
//! ([`Notice`]) are different types: nothing from the wire can pose as a local
//! notice. A [`Rules`] switch turns one rule (or one of synod's guards) off to
//! show that the checks catch what goes wrong without it.

pub mod acceptor;
pub mod ballot;
pub mod campaign;
pub mod config;
pub mod decree;
pub mod gate;
pub mod learner;
pub mod machine;
pub mod message;
pub mod proposer;
pub mod quorum;
pub mod replica;
pub mod rules;

/// The largest frame a node reads or writes: messages and snapshot chunks
/// are cut to fit it. A protocol limit, so the core owns it; the wire
/// (`net`) and the simulator both take it from here.
pub const MAX_FRAME: usize = 32 << 20;
/// The largest key and value of one operation, together, in bytes.
pub const MAX_OP_BYTES: usize = 1 << 20;

pub use acceptor::{Acceptor, PromiseLimit};
pub use ballot::{Ballot, NodeId, Slot};
pub use campaign::Campaign;
pub use config::{Config, Configs, Contact};
pub use decree::{DecreeProposer, DecreeState};
pub use gate::{Gate, Persist, Ready};
pub use learner::Learner;
pub use machine::{recover, Durable, Machine, NodeSetup, Roles, Sync};
pub use message::{
    Command, Digest, Envelope, Forgotten, Message, Notice, Outbox, Outcome, PValue, Record, Reply,
    Role, SnapshotFile, Value,
};
pub use proposer::{Change, FastPaths, Mode, Proposer, ProposerConfig};
pub use quorum::Quorums;
pub use replica::{Replica, ReplicaConfig, Snapshot};
pub use rules::{Rule, Rules};
