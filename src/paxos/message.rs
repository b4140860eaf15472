//! Every protocol message, the notices the roles of one node exchange, the
//! records a role makes durable, and the outbox a handler fills.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::ballot::{Ballot, NodeId, Slot, MAX_SLOT, MAX_SNAPSHOT_BYTES, MAX_SPAN};
use super::config::{Config, Configs};
use crate::kv::{Op, OpResult};

/// A client command: `(client, seq)` identifies it across retries, so a replica
/// applies it once however often it is proposed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Command {
    /// The client's session, as the replicas numbered it when the client
    /// registered (see [`super::replica`]). A registering client, and a
    /// client that only reads, sends a random number of its own instead.
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
    /// A membership change: the configuration that governs the log from
    /// [`super::config::ALPHA`] slots after this one (issue 23; nothing
    /// proposes it yet). Boxed: a slot's value stays small on the hot path.
    Reconfig(Box<Config>),
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
            Value::Reconfig(c) => format!("reconfig #{} voters {:?}", c.number, c.voters),
        }
    }

    /// Bytes of payload, for batching limits.
    pub fn size(&self) -> usize {
        match self {
            Value::Noop => 0,
            Value::Text(t) => t.len(),
            Value::Batch(cmds) => cmds.iter().map(|c| 16 + c.op.size()).sum(),
            Value::Reconfig(c) => 16 + 8 * (c.voters.len() + c.learners.len()),
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

/// A digest of a [`Value`]: what an `Accepted` vote is for.
///
/// A vote counts for a `(slot, ballot, digest)`, never for a ballot alone, so
/// even if one ballot were ever used with two values (a proposer that forgot its
/// round), the votes for the two could not be added up. 128 bits of BLAKE3.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Digest(pub [u8; 16]);

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl Value {
    /// The value's [`Digest`], computed over a fixed encoding of its content.
    pub fn digest(&self) -> Digest {
        fn text(h: &mut blake3::Hasher, s: &str) {
            h.update(&(s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        }
        fn opt(h: &mut blake3::Hasher, s: &Option<String>) {
            match s {
                None => h.update(&[0]),
                Some(s) => {
                    h.update(&[1]);
                    text(h, s);
                    h
                }
            };
        }
        let mut h = blake3::Hasher::new();
        match self {
            Value::Noop => {
                h.update(&[0]);
            }
            Value::Text(t) => {
                h.update(&[1]);
                text(&mut h, t);
            }
            Value::Batch(cmds) => {
                h.update(&[2]);
                h.update(&(cmds.len() as u64).to_le_bytes());
                for c in cmds {
                    h.update(&c.client.to_le_bytes());
                    h.update(&c.seq.to_le_bytes());
                    match &c.op {
                        Op::Put { key, value } => {
                            h.update(&[0]);
                            text(&mut h, key);
                            text(&mut h, value);
                        }
                        Op::Get { key } => {
                            h.update(&[1]);
                            text(&mut h, key);
                        }
                        Op::Delete { key } => {
                            h.update(&[2]);
                            text(&mut h, key);
                        }
                        Op::Cas { key, expect, new } => {
                            h.update(&[3]);
                            text(&mut h, key);
                            opt(&mut h, expect);
                            text(&mut h, new);
                        }
                        Op::Register => {
                            h.update(&[4]);
                        }
                        Op::Reconfig {
                            voters,
                            learners,
                            contacts,
                            force,
                        } => {
                            h.update(&[5, u8::from(*force)]);
                            for set in [voters, learners] {
                                h.update(&(set.len() as u64).to_le_bytes());
                                for n in set {
                                    h.update(&n.to_le_bytes());
                                }
                            }
                            h.update(&(contacts.len() as u64).to_le_bytes());
                            for (n, c) in contacts {
                                h.update(&n.to_le_bytes());
                                text(&mut h, &c.addr);
                                text(&mut h, &c.key);
                            }
                        }
                    }
                }
            }
            Value::Reconfig(c) => {
                h.update(&[3]);
                h.update(&c.number.to_le_bytes());
                for set in [&c.voters, &c.learners] {
                    h.update(&(set.len() as u64).to_le_bytes());
                    for n in set {
                        h.update(&n.to_le_bytes());
                    }
                }
                let q = c.quorums.map_or((0, 0), |q| (q.phase1, q.phase2));
                h.update(&(q.0 as u64).to_le_bytes());
                h.update(&(q.1 as u64).to_le_bytes());
                h.update(&(c.contacts.len() as u64).to_le_bytes());
                for (n, k) in &c.contacts {
                    h.update(&n.to_le_bytes());
                    text(&mut h, &k.addr);
                    text(&mut h, &k.key);
                }
            }
        }
        let mut d = [0u8; 16];
        d.copy_from_slice(&h.finalize().as_bytes()[..16]);
        Digest(d)
    }
}

/// Which role inside a node a message is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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

/// The protocol's messages between nodes: the only ones that can cross the wire.
/// [`Message::role`] names the role that handles each. What the roles of one
/// node tell each other is a [`Notice`], a different type, so nothing a peer
/// sends can ever be taken for one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Phase 1a: "promise not to accept ballots below `ballot`, and tell me what you
    /// accepted in slots `from_slot` and up". Sent again with the same ballot and
    /// a later `from_slot` to fetch the rest of a promise that came in chunks.
    Prepare { ballot: Ballot, from_slot: Slot },
    /// Phase 1b: the promise, with what was accepted from `from_slot` on. A
    /// promise never exceeds the frame limit: if more was accepted than fits,
    /// `next` is the first slot left out, and the proposer asks again from there.
    /// `floor`: every slot below it is chosen and was compacted into a snapshot
    /// here, so nothing may be proposed there.
    Promise {
        ballot: Ballot,
        from_slot: Slot,
        accepted: Vec<PValue>,
        next: Option<Slot>,
        floor: Slot,
    },
    /// A refusal: `ballot` is below what this acceptor promised.
    Nack { ballot: Ballot, promised: Ballot },
    /// Phase 2a: "accept `value` for `slot` at `ballot`".
    Accept {
        ballot: Ballot,
        slot: Slot,
        value: Value,
    },
    /// Phase 2b, sent to the learner of the ballot's proposer: a vote for the
    /// value whose digest is `digest`, never for the ballot alone.
    Accepted {
        ballot: Ballot,
        slot: Slot,
        digest: Digest,
    },
    /// A leader's "I am still here" (and how far the log is chosen: every slot
    /// below `first_unchosen`), which an acceptor confirms only if it has not
    /// promised a higher ballot.
    Heartbeat {
        ballot: Ballot,
        first_unchosen: Slot,
        seq: u64,
    },
    /// The acceptor still has not promised anything above `ballot`.
    HeartbeatAck { ballot: Ballot, seq: u64 },
    /// Chosen values, spread between learners.
    Learn { entries: Vec<(Slot, Value)> },
    /// A learner that fell behind asks for chosen values from `from_slot` on.
    CatchUp { from_slot: Slot },
    /// The answer to a catch-up from below the learner's floor: "I no longer
    /// hold slots below `floor`; take my snapshot".
    Compacted { floor: Slot },
    /// "Send me `offset..` of your latest snapshot" (`slot`: the one being
    /// fetched, 0 for the latest).
    SnapshotRequest { slot: Slot, offset: u64 },
    /// A piece of a snapshot: `data` at `offset` of `total` bytes whose CRC32
    /// is `crc`; the snapshot covers every slot below `slot`.
    SnapshotChunk {
        slot: Slot,
        offset: u64,
        total: u64,
        crc: u32,
        data: Vec<u8>,
    },
    /// Pre-vote: "would you let me run phase 1 at `ballot`?" Asked before a
    /// node raises its round, so one that cannot win (cut off from the leader
    /// alone) does not depose a healthy leader.
    PreVote { ballot: Ballot },
    /// The answer to a pre-vote: granted only by a node that has not heard
    /// from a live leader for an election timeout.
    PreVoteReply { ballot: Ballot, granted: bool },
    /// "Stand now, without a pre-vote": a leader that a membership change
    /// removed, to a voter of the configuration that follows, as it steps
    /// down (Raft's TimeoutNow). `ballot` is the sender's, which the
    /// receiver follows.
    TakeOver { ballot: Ballot },
}

impl Message {
    /// True if every number in the message is one a real cluster can send:
    /// rounds up to [`MAX_ROUND`](super::ballot::MAX_ROUND), slots up to [`MAX_SLOT`], a promise's
    /// slots within [`MAX_SPAN`] of where it starts, a snapshot chunk inside
    /// a snapshot of at most [`MAX_SNAPSHOT_BYTES`]. Every role drops a
    /// message that is not ([`super::Machine::handle`]), so no arithmetic
    /// on a peer's numbers can wrap, and no loop or map they size can run
    /// away.
    pub fn in_range(&self) -> bool {
        let slot = |s: &Slot| *s <= MAX_SLOT;
        match self {
            Message::Prepare { ballot, from_slot } => ballot.in_range() && slot(from_slot),
            Message::Promise {
                ballot,
                from_slot,
                accepted,
                next,
                floor,
            } => {
                let reach = (*from_slot).max(*floor).saturating_add(MAX_SPAN);
                ballot.in_range()
                    && slot(from_slot)
                    && slot(floor)
                    && next.is_none_or(|n| n > *from_slot && n <= MAX_SLOT)
                    && accepted.iter().all(|p| {
                        p.ballot.in_range() && p.slot >= *from_slot && p.slot <= reach.min(MAX_SLOT)
                    })
            }
            Message::Nack { ballot, promised } => ballot.in_range() && promised.in_range(),
            Message::Accept {
                ballot, slot: s, ..
            }
            | Message::Accepted {
                ballot, slot: s, ..
            } => ballot.in_range() && slot(s),
            Message::Heartbeat {
                ballot,
                first_unchosen,
                ..
            } => ballot.in_range() && slot(first_unchosen),
            Message::HeartbeatAck { ballot, .. }
            | Message::PreVote { ballot }
            | Message::PreVoteReply { ballot, .. }
            | Message::TakeOver { ballot } => ballot.in_range(),
            Message::Learn { entries } => entries.iter().all(|(s, _)| slot(s)),
            Message::CatchUp { from_slot } => slot(from_slot),
            Message::Compacted { floor } => slot(floor),
            Message::SnapshotRequest { slot: s, .. } => slot(s),
            Message::SnapshotChunk {
                slot: s,
                offset,
                total,
                data,
                ..
            } => {
                slot(s)
                    && *total <= MAX_SNAPSHOT_BYTES
                    && offset
                        .checked_add(data.len() as u64)
                        .is_some_and(|end| end <= *total)
            }
        }
    }
}

/// What the roles of one node tell each other. Never serialised, never on the
/// wire: a peer cannot forge one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// The proposer tells its learner what it asked the acceptors to accept.
    Proposed {
        ballot: Ballot,
        slot: Slot,
        value: Value,
    },
    /// The acceptor heard from a live leader (to the proposer and the learner),
    /// whose log is chosen below `first_unchosen`.
    LeaderSeen {
        ballot: Ballot,
        first_unchosen: Slot,
    },
    /// The acceptor promised `ballot` to someone (maybe a rival).
    PromiseMade { ballot: Ballot },
    /// The learner tells its replica that `slot` holds `value`.
    Chosen { slot: Slot, value: Value },
    /// The learner tells its proposer that `slot` is chosen.
    SlotChosen { slot: Slot },
    /// The leader confirmed it still leads; the replica answers this read
    /// once it has applied every slot below `index`.
    Read { cmd: Command, index: Slot },
    /// A client command arrived at this node.
    Request(Command),
    /// Every slot below `slot` is chosen and applied in a durable snapshot
    /// (taken here or installed from a peer): roles may forget what lies below.
    Snapshotted { slot: Slot },
    /// The shell reached `node`'s process (its link is up).
    PeerUp { node: NodeId },
    /// `node`'s end of the link was closed: its process is gone (the kernel
    /// closes a dead process's sockets at once). Never sent for a silent peer
    /// (paused, or cut off by a partition): only a timeout finds those.
    PeerGone { node: NodeId },
    /// The configurations known from the chosen log grew: the learner tells
    /// its proposer before it tells it the slot of the change is chosen, and
    /// a replica that installed a snapshot tells both.
    Configured(Box<Configs>),
}

impl Notice {
    /// The roles that handle this notice.
    pub fn roles(&self) -> &'static [Role] {
        match self {
            Notice::Proposed { .. } => &[Role::Learner],
            Notice::LeaderSeen { .. } => &[Role::Proposer, Role::Learner],
            Notice::PromiseMade { .. }
            | Notice::SlotChosen { .. }
            | Notice::Request(_)
            | Notice::PeerUp { .. }
            | Notice::PeerGone { .. } => &[Role::Proposer],
            Notice::Configured(_) => &[Role::Proposer, Role::Learner],
            Notice::Chosen { .. } | Notice::Read { .. } => &[Role::Replica],
            Notice::Snapshotted { .. } => {
                &[Role::Acceptor, Role::Proposer, Role::Learner, Role::Replica]
            }
        }
    }

    /// The notice's name, for traces.
    pub fn kind(&self) -> &'static str {
        match self {
            Notice::Proposed { .. } => "Proposed",
            Notice::LeaderSeen { .. } => "LeaderSeen",
            Notice::PromiseMade { .. } => "PromiseMade",
            Notice::Chosen { .. } => "Chosen",
            Notice::SlotChosen { .. } => "SlotChosen",
            Notice::Read { .. } => "Read",
            Notice::Request(_) => "Request",
            Notice::Snapshotted { .. } => "Snapshotted",
            Notice::PeerUp { .. } => "PeerUp",
            Notice::PeerGone { .. } => "PeerGone",
            Notice::Configured(_) => "Configured",
        }
    }

    /// A one-line human form, for `--trace`.
    pub fn brief(&self) -> String {
        match self {
            Notice::Proposed {
                ballot,
                slot,
                value,
            } => format!("Proposed({ballot}, #{slot}, {})", value.brief()),
            Notice::LeaderSeen {
                ballot,
                first_unchosen,
            } => format!("LeaderSeen({ballot}, chosen below #{first_unchosen})"),
            Notice::PromiseMade { ballot } => format!("PromiseMade({ballot})"),
            Notice::Chosen { slot, value } => format!("Chosen(#{slot}, {})", value.brief()),
            Notice::SlotChosen { slot } => format!("SlotChosen(#{slot})"),
            Notice::Read { cmd, index } => {
                format!("Read({}:{} {}, at #{index})", cmd.client, cmd.seq, cmd.op)
            }
            Notice::Request(c) => format!("Request({}:{} {})", c.client, c.seq, c.op),
            Notice::Snapshotted { slot } => format!("Snapshotted(below #{slot})"),
            Notice::PeerUp { node } => format!("PeerUp({node})"),
            Notice::PeerGone { node } => format!("PeerGone({node})"),
            Notice::Configured(c) => {
                let latest = c.latest();
                format!("Configured(#{} voters {:?})", latest.number, latest.voters)
            }
        }
    }
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
            | Message::PreVote { .. }
            | Message::PreVoteReply { .. }
            | Message::TakeOver { .. } => Role::Proposer,
            Message::Accepted { .. } | Message::Learn { .. } | Message::CatchUp { .. } => {
                Role::Learner
            }
            Message::Compacted { .. }
            | Message::SnapshotRequest { .. }
            | Message::SnapshotChunk { .. } => Role::Replica,
        }
    }

    /// The message's name, for traces and counters.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Prepare { .. } => "Prepare",
            Message::Promise { .. } => "Promise",
            Message::Nack { .. } => "Nack",
            Message::Accept { .. } => "Accept",
            Message::Accepted { .. } => "Accepted",
            Message::Heartbeat { .. } => "Heartbeat",
            Message::HeartbeatAck { .. } => "HeartbeatAck",
            Message::Learn { .. } => "Learn",
            Message::CatchUp { .. } => "CatchUp",
            Message::PreVote { .. } => "PreVote",
            Message::PreVoteReply { .. } => "PreVoteReply",
            Message::TakeOver { .. } => "TakeOver",
            Message::Compacted { .. } => "Compacted",
            Message::SnapshotRequest { .. } => "SnapshotRequest",
            Message::SnapshotChunk { .. } => "SnapshotChunk",
        }
    }

    /// Bytes of values this message carries: a cheap bound on its size on the
    /// wire, short by a few bytes per value and entry.
    pub fn payload_size(&self) -> usize {
        match self {
            Message::Promise { accepted, .. } => accepted.iter().map(|p| 32 + p.value.size()).sum(),
            Message::Accept { value, .. } => value.size(),
            Message::Learn { entries } => entries.iter().map(|(_, v)| 16 + v.size()).sum(),
            Message::SnapshotChunk { data, .. } => data.len(),
            _ => 0,
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
            Message::Heartbeat {
                ballot,
                first_unchosen,
                ..
            } => format!("Heartbeat({ballot}, chosen below #{first_unchosen})"),
            Message::Promise {
                ballot,
                accepted,
                next,
                floor,
                ..
            } => {
                let acc: Vec<String> = accepted
                    .iter()
                    .take(3)
                    .map(|p| format!("#{}@{}={}", p.slot, p.ballot, p.value.brief()))
                    .collect();
                let more = match next {
                    Some(n) => format!(", more from #{n}"),
                    None if accepted.len() > 3 => format!(", {} in all", accepted.len()),
                    None => String::new(),
                };
                let below = if *floor > 0 {
                    format!(", compacted below #{floor}")
                } else {
                    String::new()
                };
                format!("Promise({ballot}, [{}]{more}{below})", acc.join(", "))
            }
            Message::Nack { ballot, promised } => format!("Nack({ballot}, promised {promised})"),
            Message::HeartbeatAck { ballot, .. } => format!("HeartbeatAck({ballot})"),
            Message::Accepted {
                ballot,
                slot,
                digest,
            } => format!("Accepted({ballot}, #{slot}, {digest})"),
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
            Message::PreVote { ballot } => format!("PreVote({ballot})"),
            Message::PreVoteReply { ballot, granted } => {
                format!(
                    "PreVoteReply({ballot}, {})",
                    if *granted { "yes" } else { "no" }
                )
            }
            Message::TakeOver { ballot } => format!("TakeOver({ballot})"),
            Message::Compacted { floor } => format!("Compacted(below #{floor})"),
            Message::SnapshotRequest { slot, offset } => {
                format!("SnapshotRequest(below #{slot}, from byte {offset})")
            }
            Message::SnapshotChunk {
                slot,
                offset,
                total,
                data,
                ..
            } => format!(
                "SnapshotChunk(below #{slot}, bytes {offset}..{} of {total})",
                offset + data.len() as u64
            ),
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
    /// The proposer is about to use round `round`: never again after a restart
    /// (Paxos Made Simple §2.5, "a proposer must remember the highest-numbered
    /// proposal it has tried to issue").
    Round { round: u64 },
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
    /// Every slot below `slot` is chosen and in a durable snapshot: the first
    /// record of a log compacted up to there.
    Floor { slot: Slot },
}

impl Record {
    /// True if the record must be on stable storage (synced) before the messages
    /// that depend on it leave.
    pub fn must_sync(&self) -> bool {
        !matches!(self, Record::Chosen { .. } | Record::Floor { .. })
    }
}

/// A snapshot as bytes: it covers every slot below `slot`; `crc` is the CRC32
/// of `bytes` (which hold a postcard-encoded [`super::replica::Snapshot`]).
/// Cheap to clone (shared bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotFile {
    /// Every slot below it is in the snapshot.
    pub slot: Slot,
    /// CRC32 of `bytes`.
    pub crc: u32,
    /// The encoded snapshot.
    pub bytes: std::sync::Arc<[u8]>,
}

/// What happened to a client command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// It was chosen and applied; this is its result.
    Done(OpResult),
    /// This node does not lead; try `leader` if known. Nothing was proposed.
    NotLeader { leader: Option<NodeId> },
    /// Too many commands wait already (at the leader, at the node's router
    /// for its connection, or, for a read, at a replica that lags); retry a
    /// little later. Nothing was proposed or read.
    Busy,
    /// The replicas do not know the client's session: it was forgotten (idle
    /// while the table was full), or never registered. The command was not
    /// applied now, but an earlier attempt of it may have been.
    Expired,
    /// The client registered (`Op::Register`): its commands carry `session`.
    Registered {
        /// The session's id.
        session: u64,
    },
    /// The client already had a later command (`last`) applied: this older
    /// one was not applied now, and its result is no longer kept.
    Stale {
        /// The client's last sequence number applied.
        last: u64,
    },
    /// A membership change was refused, and why. Nothing was proposed.
    Refused(String),
    /// A membership change was chosen: configuration `number` governs from
    /// slot `at`.
    Reconfigured {
        /// The new configuration's number.
        number: u64,
        /// The first slot it governs.
        at: Slot,
    },
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
/// may leave at once; so may notices to the node's other roles. Every shell
/// carries an outbox out through one [`super::Gate`], which keeps that order (and
/// lets it batch the records of many outboxes into one write and one sync).
#[derive(Debug, Default)]
pub struct Outbox {
    /// Records to append to this role's log, in order (or, with `rewrite`,
    /// the whole new content of the log).
    pub persist: Vec<Record>,
    /// `persist` replaces the log: a compaction, written whole or not at all.
    pub rewrite: bool,
    /// A snapshot of the state machine to make durable (the replica's).
    pub snapshot: Option<SnapshotFile>,
    /// Messages that may leave at once.
    pub send: Vec<Envelope>,
    /// Messages that may leave only once every record before them is durable.
    pub send_durable: Vec<Envelope>,
    /// Notices to this node's other roles, at once.
    pub notices: Vec<Notice>,
    /// Answers to clients.
    pub replies: Vec<Reply>,
    /// What a compaction dropped, for the shell to free off its event loop.
    pub forgotten: Forgotten,
}

/// State a role no longer needs: what a compaction dropped from its maps.
/// Freeing ten thousand slots' values takes milliseconds (tens of them on a
/// busy machine), and a node's event loop carries its heartbeats, so the shell
/// frees these on its log thread instead. Dropped in place, it frees at once.
#[derive(Default)]
pub struct Forgotten(Vec<Box<dyn std::any::Any + Send>>);

impl Forgotten {
    /// Hand `state` over to be freed later.
    pub fn keep<T: Send + 'static>(&mut self, state: T) {
        self.0.push(Box::new(state));
    }

    /// True when nothing was handed over.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Forgotten {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Forgotten({} parts)", self.0.len())
    }
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
            && self.notices.is_empty()
            && self.replies.is_empty()
            && self.snapshot.is_none()
    }

    /// Queue `msg` from `from` to `to`, to leave at once.
    pub fn send(&mut self, from: NodeId, to: NodeId, msg: Message) {
        self.send.push(Envelope { from, to, msg });
    }

    /// Queue `msg`, to leave only after every record so far is durable.
    pub fn send_durable(&mut self, from: NodeId, to: NodeId, msg: Message) {
        self.send_durable.push(Envelope { from, to, msg });
    }

    /// Tell this node's other roles.
    pub fn notify(&mut self, notice: Notice) {
        self.notices.push(notice);
    }
}
