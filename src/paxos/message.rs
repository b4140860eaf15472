//! Every protocol message, the records an acceptor or learner makes durable, and
//! the outbox a handler fills.

use serde::{Deserialize, Serialize};

use super::ballot::{Ballot, NodeId, Slot};
use crate::kv::{Op, OpResult};

/// A client command: `(client, seq)` identifies it across retries, so a replica
/// applies it once however often it is proposed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Command {
    /// The client's id, unique per client.
    pub client: u64,
    /// The client's sequence number, increasing per client.
    pub seq: u64,
    /// What to do.
    pub op: Op,
}

/// What a proposal proposes for one slot.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Value {
    /// Fills a hole in the log; applies nothing.
    Noop,
    /// A plain value, for the single-decree examples ("1+1=3", "Zhengzhou").
    Text(String),
    /// The client commands the leader packed into one slot.
    Batch(Vec<Command>),
}

impl Value {
    /// A short human form for traces and `synod log`.
    pub fn brief(&self) -> String {
        match self {
            Value::Noop => "no-op".to_string(),
            Value::Text(t) => format!("{t:?}"),
            Value::Batch(cmds) => {
                let shown: Vec<String> = cmds.iter().take(3).map(|c| c.op.to_string()).collect();
                let more = cmds.len().saturating_sub(3);
                if more > 0 {
                    format!("[{} +{more}]", shown.join(", "))
                } else {
                    format!("[{}]", shown.join(", "))
                }
            }
        }
    }

    /// Bytes of payload, for batching limits.
    pub fn size(&self) -> usize {
        match self {
            Value::Noop => 0,
            Value::Text(t) => t.len(),
            Value::Batch(cmds) => cmds.iter().map(|c| 16 + c.op.size()).sum(),
        }
    }
}

/// What an acceptor has accepted in one slot: the `pvalue` of the literature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PValue {
    /// The slot.
    pub slot: Slot,
    /// The ballot of the accepted proposal.
    pub ballot: Ballot,
    /// The accepted value.
    pub value: Value,
}

/// Which role inside a node a message is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Promises and accepts (phase 1b and 2b).
    Acceptor,
    /// Prepares and proposes (phase 1a and 2a); in Multi-Paxos, the leader.
    Proposer,
    /// Counts accepts to a majority and spreads what is chosen.
    Learner,
    /// Applies chosen commands to the key-value map.
    Replica,
}

/// The protocol's messages. [`Message::role`] names the role that handles each.
///
/// Some travel between nodes, some only between the roles of one node (marked
/// "local"); a shell never has to put a local message on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Phase 1a: "promise not to accept ballots below `ballot`, and tell me what you
    /// accepted in slots `from_slot` and up".
    Prepare { ballot: Ballot, from_slot: Slot },
    /// Phase 2a: "accept `value` for `slot` at `ballot`".
    Accept {
        ballot: Ballot,
        slot: Slot,
        value: Value,
    },
    /// A leader's "I am still here" (and how far the log is chosen), which an
    /// acceptor confirms only if it has not promised a higher ballot.
    Heartbeat {
        ballot: Ballot,
        commit: Slot,
        seq: u64,
    },
    /// Phase 1b: the promise, with everything accepted at or after the slot asked.
    Promise {
        ballot: Ballot,
        accepted: Vec<PValue>,
    },
    /// A refusal: `ballot` is below what this acceptor promised.
    Nack { ballot: Ballot, promised: Ballot },
    /// The acceptor still has not promised anything above `ballot`.
    HeartbeatAck { ballot: Ballot, seq: u64 },
    /// Phase 2b, sent to the learner of the ballot's proposer.
    Accepted { ballot: Ballot, slot: Slot },
    /// Chosen values, spread between learners.
    Learn { entries: Vec<(Slot, Value)> },
    /// A learner that fell behind asks for chosen values from `from_slot` on.
    CatchUp { from_slot: Slot },
    /// Local: the proposer tells its learner what it asked the acceptors to accept.
    Proposed {
        ballot: Ballot,
        slot: Slot,
        value: Value,
    },
    /// Local: the acceptor heard from a live leader.
    LeaderSeen { ballot: Ballot, commit: Slot },
    /// Local: the acceptor promised `ballot` to someone (maybe a rival).
    Promised { ballot: Ballot },
    /// Local: the learner tells its replica that `slot` holds `value`.
    Chosen { slot: Slot, value: Value },
    /// Local: the learner tells its proposer that `slot` is chosen.
    Committed { slot: Slot },
    /// Local: the leader confirmed it still leads; the replica answers this read
    /// once it has applied every slot below `index`.
    Read { cmd: Command, index: Slot },
    /// Local: a client command arrived at this node.
    Request(Command),
}

impl Message {
    /// The role that handles this message.
    pub fn role(&self) -> Role {
        match self {
            Message::Prepare { .. } | Message::Accept { .. } | Message::Heartbeat { .. } => {
                Role::Acceptor
            }
            Message::Promise { .. }
            | Message::Nack { .. }
            | Message::HeartbeatAck { .. }
            | Message::LeaderSeen { .. }
            | Message::Promised { .. }
            | Message::Committed { .. }
            | Message::Request(_) => Role::Proposer,
            Message::Accepted { .. }
            | Message::Learn { .. }
            | Message::CatchUp { .. }
            | Message::Proposed { .. } => Role::Learner,
            Message::Chosen { .. } | Message::Read { .. } => Role::Replica,
        }
    }

    /// The message's name, for traces and counters.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Prepare { .. } => "Prepare",
            Message::Accept { .. } => "Accept",
            Message::Heartbeat { .. } => "Heartbeat",
            Message::Promise { .. } => "Promise",
            Message::Nack { .. } => "Nack",
            Message::HeartbeatAck { .. } => "HeartbeatAck",
            Message::Accepted { .. } => "Accepted",
            Message::Learn { .. } => "Learn",
            Message::CatchUp { .. } => "CatchUp",
            Message::Proposed { .. } => "Proposed",
            Message::LeaderSeen { .. } => "LeaderSeen",
            Message::Promised { .. } => "Promised",
            Message::Chosen { .. } => "Chosen",
            Message::Committed { .. } => "Committed",
            Message::Read { .. } => "Read",
            Message::Request(_) => "Request",
        }
    }

    /// A one-line human form, for `--trace`.
    pub fn brief(&self) -> String {
        match self {
            Message::Prepare { ballot, from_slot } => {
                format!("Prepare({ballot}, from {from_slot})")
            }
            Message::Accept {
                ballot,
                slot,
                value,
            } => format!("Accept({ballot}, #{slot}, {})", value.brief()),
            Message::Heartbeat { ballot, commit, .. } => {
                format!("Heartbeat({ballot}, commit {commit})")
            }
            Message::Promise { ballot, accepted } => {
                let acc: Vec<String> = accepted
                    .iter()
                    .take(3)
                    .map(|p| format!("#{}@{}={}", p.slot, p.ballot, p.value.brief()))
                    .collect();
                format!("Promise({ballot}, [{}])", acc.join(", "))
            }
            Message::Nack { ballot, promised } => format!("Nack({ballot}, promised {promised})"),
            Message::HeartbeatAck { ballot, .. } => format!("HeartbeatAck({ballot})"),
            Message::Accepted { ballot, slot } => format!("Accepted({ballot}, #{slot})"),
            Message::Learn { entries } => {
                let e: Vec<String> = entries
                    .iter()
                    .take(3)
                    .map(|(s, _)| format!("#{s}"))
                    .collect();
                format!(
                    "Learn({}{})",
                    e.join(","),
                    if entries.len() > 3 { ",…" } else { "" }
                )
            }
            Message::CatchUp { from_slot } => format!("CatchUp(from {from_slot})"),
            Message::Proposed {
                ballot,
                slot,
                value,
            } => format!("Proposed({ballot}, #{slot}, {})", value.brief()),
            Message::LeaderSeen { ballot, commit } => {
                format!("LeaderSeen({ballot}, commit {commit})")
            }
            Message::Promised { ballot } => format!("Promised({ballot})"),
            Message::Chosen { slot, value } => format!("Chosen(#{slot}, {})", value.brief()),
            Message::Committed { slot } => format!("Committed(#{slot})"),
            Message::Read { cmd, index } => {
                format!("Read({}:{} {}, at #{index})", cmd.client, cmd.seq, cmd.op)
            }
            Message::Request(c) => format!("Request({}:{} {})", c.client, c.seq, c.op),
        }
    }
}

/// A message with its sender and receiver.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The sending node.
    pub from: NodeId,
    /// The receiving node ([`Message::role`] picks the role there).
    pub to: NodeId,
    /// The message.
    pub msg: Message,
}

/// What a role makes durable before it may speak of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// The acceptor promised `ballot`.
    Promise { ballot: Ballot },
    /// The acceptor accepted `value` for `slot` at `ballot` (which implies a
    /// promise of `ballot`).
    Accept {
        slot: Slot,
        ballot: Ballot,
        value: Value,
    },
    /// The learner knows `slot` is chosen with `value`. Re-derivable from the
    /// acceptors, so it need not be synced before anything is said.
    Chosen { slot: Slot, value: Value },
}

impl Record {
    /// True if the record must be on stable storage (synced) before the messages
    /// that depend on it leave.
    pub fn must_sync(&self) -> bool {
        !matches!(self, Record::Chosen { .. })
    }
}

/// What happened to a client command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// It was chosen and applied; this is its result.
    Done(OpResult),
    /// This node does not lead; try `leader` if known. Nothing was proposed.
    NotLeader { leader: Option<NodeId> },
}

/// The answer to one client command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// The client the command came from.
    pub client: u64,
    /// The command's sequence number.
    pub seq: u64,
    /// What happened.
    pub outcome: Outcome,
}

/// The effects of one handler call, for the shell to carry out.
///
/// Persist-before-send is in the type: a message that reveals acceptor state goes
/// into [`Outbox::send_durable`], and a shell may let it leave only once every
/// record this role emitted up to then (in this outbox and in earlier ones) is
/// durable. Messages in [`Outbox::send`] reveal nothing that needs to be durable and
/// may leave at once. A shell may batch the records of many outboxes into one
/// write and one sync (group commit) as long as it keeps that order.
#[derive(Debug, Default)]
pub struct Outbox {
    /// Records to append to this role's log, in order.
    pub persist: Vec<Record>,
    /// Messages that may leave at once.
    pub send: Vec<Envelope>,
    /// Messages that may leave only once every record before them is durable.
    pub send_durable: Vec<Envelope>,
    /// Answers to clients.
    pub replies: Vec<Reply>,
}

impl Outbox {
    /// An empty outbox.
    pub fn new() -> Self {
        Outbox::default()
    }

    /// True when the handler produced nothing.
    pub fn is_empty(&self) -> bool {
        self.persist.is_empty()
            && self.send.is_empty()
            && self.send_durable.is_empty()
            && self.replies.is_empty()
    }

    /// Queue `msg` from `from` to `to`, to leave at once.
    pub fn send(&mut self, from: NodeId, to: NodeId, msg: Message) {
        self.send.push(Envelope { from, to, msg });
    }

    /// Queue `msg`, to leave only after every record so far is durable.
    pub fn send_durable(&mut self, from: NodeId, to: NodeId, msg: Message) {
        self.send_durable.push(Envelope { from, to, msg });
    }
}
