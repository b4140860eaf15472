//! Safety invariants, one function each, checked by the simulator after every
//! step. Each returns the violation it found, typed, or `None`.
//!
//! "Chosen" is judged from the ground truth, not from any learner: the simulator
//! sees every `Accepted` an acceptor sends, and a value is chosen the moment a
//! majority of acceptors has accepted the same ballot (Paxos Made Simple §2.3),
//! whether or not anyone has noticed yet.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::paxos::config::{Config, Configs, ALPHA};
use crate::paxos::{Ballot, Command, Digest, NodeId, Slot, Value};

/// A broken safety property, with what is needed to explain it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// Two values chosen for one slot (P2).
    Agreement {
        slot: Slot,
        first: Value,
        second: Value,
        how: String,
    },
    /// A chosen value nobody proposed.
    Validity { slot: Slot, value: Value },
    /// Two different values accepted in one slot under one ballot (a ballot
    /// used twice).
    BallotReuse {
        slot: Slot,
        ballot: Ballot,
        first: Value,
        second: Value,
        node: NodeId,
    },
    /// An acceptor said something (a promise, an accept, a refusal) about a
    /// ballot its durable log does not back yet: persist-before-send broken.
    Unpersisted {
        node: NodeId,
        said: String,
        durable: Ballot,
    },
    /// A message larger than the frame limit was sent.
    FrameLimit {
        from: NodeId,
        to: NodeId,
        kind: &'static str,
        bytes: usize,
        limit: usize,
    },
    /// A learner changed its mind about a slot.
    Stability {
        node: NodeId,
        slot: Slot,
        before: Value,
        after: Value,
    },
    /// An acceptor's promise went down (a restart forgot it).
    PromiseWentDown {
        node: NodeId,
        before: Ballot,
        after: Ballot,
    },
    /// Two replicas applied different sequences.
    Divergence {
        node: NodeId,
        slot: Slot,
        other: NodeId,
    },
    /// A command took effect twice at one replica.
    AppliedTwice { node: NodeId, client: u64, seq: u64 },
    /// An acknowledged command is missing from the log.
    LostWrite { client: u64, seq: u64 },
    /// The client history is not linearizable.
    NotLinearizable { key: String, detail: String },
    /// Nothing was chosen within the bound after faults stopped.
    Liveness { what: String },
    /// A scenario's own expectation did not hold (for example: a healthy
    /// leader was deposed).
    Expectation { what: String },
}

impl Violation {
    /// A short name for counting.
    pub fn name(&self) -> &'static str {
        match self {
            Violation::Agreement { .. } => "agreement",
            Violation::Validity { .. } => "validity",
            Violation::BallotReuse { .. } => "ballot-reuse",
            Violation::Unpersisted { .. } => "unpersisted",
            Violation::FrameLimit { .. } => "frame-limit",
            Violation::Expectation { .. } => "expectation",
            Violation::Stability { .. } => "stability",
            Violation::PromiseWentDown { .. } => "promise-went-down",
            Violation::Divergence { .. } => "divergence",
            Violation::AppliedTwice { .. } => "applied-twice",
            Violation::LostWrite { .. } => "lost-write",
            Violation::NotLinearizable { .. } => "not-linearizable",
            Violation::Liveness { .. } => "liveness",
        }
    }

    /// True for safety violations (everything but liveness).
    pub fn is_safety(&self) -> bool {
        !matches!(self, Violation::Liveness { .. })
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Agreement {
                slot,
                first,
                second,
                how,
            } => write!(
                f,
                "agreement: slot {slot} chosen twice, {} and {} ({how})",
                first.brief(),
                second.brief()
            ),
            Violation::Validity { slot, value } => {
                write!(
                    f,
                    "validity: slot {slot} chose {}, which nobody proposed",
                    value.brief()
                )
            }
            Violation::Stability {
                node,
                slot,
                before,
                after,
            } => write!(
                f,
                "stability: node {node} learned slot {slot} as {} and later as {}",
                before.brief(),
                after.brief()
            ),
            Violation::PromiseWentDown {
                node,
                before,
                after,
            } => write!(
                f,
                "promise: node {node}'s acceptor had promised {before}, now only {after}"
            ),
            Violation::Divergence { node, slot, other } => write!(
                f,
                "divergence: node {node} and node {other} applied different logs up to slot {slot}"
            ),
            Violation::AppliedTwice { node, client, seq } => {
                write!(
                    f,
                    "exactly-once: node {node} applied command {client}:{seq} twice"
                )
            }
            Violation::LostWrite { client, seq } => write!(
                f,
                "durability: acknowledged command {client}:{seq} is not in the chosen log"
            ),
            Violation::NotLinearizable { key, detail } => {
                write!(f, "linearizability: key {key:?}: {detail}")
            }
            Violation::Liveness { what } => write!(f, "liveness: {what}"),
            Violation::Expectation { what } => write!(f, "expectation: {what}"),
            Violation::BallotReuse {
                slot,
                ballot,
                first,
                second,
                node,
            } => write!(
                f,
                "ballot reuse: slot {slot} at ballot {ballot} was accepted with {} and, by node {node}, with {}",
                first.brief(),
                second.brief()
            ),
            Violation::Unpersisted {
                node,
                said,
                durable,
            } => write!(
                f,
                "persist-before-send: node {node}'s acceptor sent {said} while its log backs only {durable}"
            ),
            Violation::FrameLimit {
                from,
                to,
                kind,
                bytes,
                limit,
            } => write!(
                f,
                "frame limit: node {from} sent node {to} a {kind} of {bytes} bytes (the limit is {limit})"
            ),
        }
    }
}

/// The ground truth of what acceptors accepted and what is therefore chosen.
#[derive(Debug, Default)]
pub struct Ghost {
    /// The configuration of each slot, from what was truly chosen.
    configs: Option<Configs>,
    /// Every slot below it is chosen (the configurations are known through
    /// α - 1 slots past it).
    first_unchosen: Slot,
    /// Slots with accepts whose configuration was not known yet.
    deferred: BTreeSet<Slot>,
    /// Who accepted which value at which ballot, per slot.
    accepts: BTreeMap<(Slot, Ballot, Digest), (Value, BTreeSet<NodeId>)>,
    /// The value each (slot, ballot) was first accepted with.
    ballots: BTreeMap<(Slot, Ballot), Value>,
    chosen: BTreeMap<Slot, Value>,
}

impl Ghost {
    /// Ground truth for a log whose first configuration is `configs`'.
    pub fn new(configs: Configs) -> Self {
        Ghost {
            configs: Some(configs),
            ..Ghost::default()
        }
    }

    /// Ground truth for the nodes `ids`, where `quorum` accepts choose (one
    /// configuration, as long as nothing changes it).
    pub fn of(ids: &[NodeId], quorum: usize) -> Self {
        let quorums = crate::paxos::Quorums::from_phase2(ids.len(), quorum);
        Ghost::new(Configs::new(
            Config::first(ids.iter().copied(), quorums),
            ALPHA,
        ))
    }

    /// Values chosen so far.
    pub fn chosen(&self) -> &BTreeMap<Slot, Value> {
        &self.chosen
    }

    /// The configurations the truly chosen log holds.
    pub fn configs(&self) -> &Configs {
        self.configs.as_ref().expect("made by Ghost::new")
    }

    /// Acceptor `node` accepted (durably, and said so) `value` in `slot` at
    /// `ballot`. Returns the value if this accept made a phase-2 quorum of
    /// the slot's configuration for the same value at the same ballot (the
    /// moment it became chosen). Accepts in a slot whose configuration the
    /// truly chosen log does not fix yet wait ([`Ghost::settle`]).
    pub fn accepted(
        &mut self,
        node: NodeId,
        slot: Slot,
        ballot: Ballot,
        value: &Value,
    ) -> Option<Value> {
        let entry = self
            .accepts
            .entry((slot, ballot, value.digest()))
            .or_insert_with(|| (value.clone(), BTreeSet::new()));
        if !entry.1.insert(node) {
            return None;
        }
        let configs = self.configs.as_ref().expect("made by Ghost::new");
        if slot > configs.known_through(self.first_unchosen) {
            self.deferred.insert(slot);
            return None;
        }
        let c = configs.at(slot);
        let count = entry.1.iter().filter(|v| c.voters.contains(v)).count();
        (c.voters.contains(&node) && count == c.quorums().phase2).then(|| entry.0.clone())
    }

    /// Slots whose configuration became known since their accepts came:
    /// each that a phase-2 quorum of it accepted, with the ballot and value.
    pub fn settle(&mut self) -> Vec<(Slot, Ballot, Value)> {
        let configs = self.configs.as_ref().expect("made by Ghost::new");
        let known = configs.known_through(self.first_unchosen);
        let ready: Vec<Slot> = self.deferred.range(..=known).copied().collect();
        let mut found = Vec::new();
        for slot in ready {
            self.deferred.remove(&slot);
            let c = configs.at(slot);
            for ((_, ballot, _), (value, who)) in self
                .accepts
                .range((slot, Ballot::ZERO, Digest::default())..)
                .take_while(|((s, _, _), _)| *s == slot)
            {
                let count = who.iter().filter(|v| c.voters.contains(v)).count();
                if count >= c.quorums().phase2 {
                    found.push((slot, *ballot, value.clone()));
                }
            }
        }
        found
    }

    /// `slot` became chosen with `value`: move the chosen prefix on,
    /// taking in the changes it holds.
    fn advance(&mut self) {
        let configs = self.configs.as_mut().expect("made by Ghost::new");
        while let Some(v) = self.chosen.get(&self.first_unchosen) {
            configs.learn(self.first_unchosen, v);
            self.first_unchosen += 1;
        }
    }
}

/// Ballot uniqueness: no two different values are ever accepted in one slot
/// under one ballot, by any acceptors, across restarts (a ballot is issued once,
/// with one value: Paxos Made Simple §2.2, "different proposals have different
/// numbers").
pub fn ballot_unique(
    ghost: &mut Ghost,
    node: NodeId,
    slot: Slot,
    ballot: Ballot,
    value: &Value,
) -> Option<Violation> {
    match ghost.ballots.get(&(slot, ballot)) {
        Some(first) if first != value => Some(Violation::BallotReuse {
            slot,
            ballot,
            first: first.clone(),
            second: value.clone(),
            node,
        }),
        Some(_) => None,
        None => {
            ghost.ballots.insert((slot, ballot), value.clone());
            None
        }
    }
}

/// Persist-before-send: whatever an acceptor's message reveals (`said`, the
/// ballot it promised, accepted at, or refused with) is backed by its durable
/// log (`durable`, the highest ballot its synced records hold).
pub fn revealed_durable(
    node: NodeId,
    said: Ballot,
    what: impl FnOnce() -> String,
    durable: Ballot,
) -> Option<Violation> {
    (said > durable).then(|| Violation::Unpersisted {
        node,
        said: what(),
        durable,
    })
}

/// Persist before send, for a vote: an `Accepted` for `(slot, ballot,
/// digest)` is backed by that very accept in the acceptor's synced log
/// (`accepts`), not merely by a durable promise of the ballot.
pub fn accept_backed(
    node: NodeId,
    vote: (Slot, Ballot, Digest),
    accepts: &BTreeSet<(Slot, Ballot, Digest)>,
    what: impl FnOnce() -> String,
    durable: Ballot,
) -> Option<Violation> {
    (!accepts.contains(&vote)).then(|| Violation::Unpersisted {
        node,
        said: what(),
        durable,
    })
}

/// Every message fits in one frame (`bytes`, its size on the wire).
pub fn frame_limit(
    from: NodeId,
    to: NodeId,
    kind: &'static str,
    bytes: usize,
    limit: usize,
) -> Option<Violation> {
    (bytes > limit).then_some(Violation::FrameLimit {
        from,
        to,
        kind,
        bytes,
        limit,
    })
}

/// Agreement (P2): a slot that becomes chosen again must be chosen with the value
/// it already has. Records the first value chosen per slot.
pub fn agreement(ghost: &mut Ghost, slot: Slot, ballot: Ballot, value: Value) -> Option<Violation> {
    match ghost.chosen.get(&slot) {
        Some(first) if *first != value => Some(Violation::Agreement {
            slot,
            first: first.clone(),
            second: value,
            how: format!("a quorum accepted ballot {ballot} with the second"),
        }),
        Some(_) => None,
        None => {
            ghost.chosen.insert(slot, value);
            ghost.advance();
            None
        }
    }
}

/// Agreement as the learners see it: what a learner learned must be what was
/// chosen.
pub fn learned_agrees(ghost: &Ghost, node: NodeId, slot: Slot, value: &Value) -> Option<Violation> {
    match ghost.chosen.get(&slot) {
        Some(chosen) if chosen != value => Some(Violation::Agreement {
            slot,
            first: chosen.clone(),
            second: value.clone(),
            how: format!("node {node}'s learner learned the second"),
        }),
        // A learner ahead of the ground truth would itself be a bug.
        None => Some(Violation::Agreement {
            slot,
            first: Value::Noop,
            second: value.clone(),
            how: format!("node {node} learned a value no quorum accepted"),
        }),
        _ => None,
    }
}

/// Validity: a chosen value is a no-op, a proposer's own value, or a batch of
/// commands clients really issued.
pub fn validity(
    texts: &BTreeSet<String>,
    commands: &BTreeSet<Command>,
    changes: &[Config],
    slot: Slot,
    value: &Value,
) -> Option<Violation> {
    let ok = match value {
        Value::Noop => true,
        Value::Text(t) => texts.contains(t),
        Value::Batch(cmds) => cmds.iter().all(|c| commands.contains(c)),
        // A change some node's proposer was asked for.
        Value::Reconfig(c) => changes.contains(c),
    };
    (!ok).then(|| Violation::Validity {
        slot,
        value: value.clone(),
    })
}

/// Stability: a learner never changes its mind, across restarts too. `learned`
/// holds what each node learned first, per slot.
pub fn stability(
    learned: &mut BTreeMap<(NodeId, Slot), Value>,
    node: NodeId,
    slot: Slot,
    value: &Value,
) -> Option<Violation> {
    match learned.get(&(node, slot)) {
        Some(before) if before != value => Some(Violation::Stability {
            node,
            slot,
            before: before.clone(),
            after: value.clone(),
        }),
        Some(_) => None,
        None => {
            learned.insert((node, slot), value.clone());
            None
        }
    }
}

/// An acceptor's promise never goes down, across restarts too.
pub fn promise_monotonic(
    last: &mut BTreeMap<NodeId, Ballot>,
    node: NodeId,
    now: Ballot,
) -> Option<Violation> {
    let before = last.entry(node).or_insert(now);
    if now < *before {
        let v = Violation::PromiseWentDown {
            node,
            before: *before,
            after: now,
        };
        *before = now;
        return Some(v);
    }
    *before = now;
    None
}

/// Every replica's applied sequence is a prefix of every other's: the digest of
/// the first `next` slots must be the same at every replica. `digests` holds the
/// first digest seen per length, and who produced it.
pub fn log_prefix(
    digests: &mut BTreeMap<Slot, (u64, NodeId)>,
    node: NodeId,
    next: Slot,
    digest: u64,
) -> Option<Violation> {
    if next == 0 {
        return None;
    }
    match digests.get(&next) {
        Some(&(d, other)) if d != digest => Some(Violation::Divergence {
            node,
            slot: next - 1,
            other,
        }),
        Some(_) => None,
        None => {
            digests.insert(next, (digest, node));
            None
        }
    }
}

/// A command takes effect at most once per replica. `seen` holds, per node, the
/// commands its replica applied.
pub fn applied_once(
    seen: &mut BTreeMap<NodeId, BTreeSet<(u64, u64)>>,
    node: NodeId,
    client: u64,
    seq: u64,
) -> Option<Violation> {
    (!seen.entry(node).or_default().insert((client, seq))).then_some(Violation::AppliedTwice {
        node,
        client,
        seq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ground truth of a three-node cluster, majorities.
    fn three() -> Ghost {
        Ghost::of(&[1, 2, 3], 2)
    }

    fn t(s: &str) -> Value {
        Value::Text(s.into())
    }

    #[test]
    fn agreement_catches_a_second_value() {
        let mut g = three();
        let b1 = Ballot::new(1, 1);
        let b2 = Ballot::new(2, 2);
        assert_eq!(g.accepted(1, 0, b1, &t("a")), None);
        let v = g.accepted(2, 0, b1, &t("a")).unwrap();
        assert_eq!(agreement(&mut g, 0, b1, v), None);
        g.accepted(2, 0, b2, &t("b"));
        let v = g.accepted(3, 0, b2, &t("b")).unwrap();
        assert_eq!(
            agreement(&mut g, 0, b2, v).map(|v| v.name()),
            Some("agreement")
        );
        assert!(learned_agrees(&g, 3, 0, &t("b")).is_some());
        assert!(learned_agrees(&g, 3, 0, &t("a")).is_none());
    }

    #[test]
    fn a_ballot_with_two_values_is_caught_and_votes_for_them_never_add_up() {
        let mut g = three();
        let b = Ballot::new(1, 1);
        assert_eq!(ballot_unique(&mut g, 1, 0, b, &t("a")), None);
        assert_eq!(ballot_unique(&mut g, 2, 0, b, &t("a")), None);
        assert_eq!(
            ballot_unique(&mut g, 3, 0, b, &t("b")).map(|v| v.name()),
            Some("ballot-reuse")
        );
        // Two acceptors at one ballot, but for different values: not chosen.
        assert_eq!(g.accepted(1, 0, b, &t("a")), None);
        assert_eq!(g.accepted(3, 0, b, &t("b")), None);
        assert!(g.chosen().is_empty());
    }

    #[test]
    fn unpersisted_words_and_oversized_frames_are_caught() {
        let b = |r| Ballot::new(r, 1);
        assert!(revealed_durable(1, b(2), || "Promise".into(), b(2)).is_none());
        assert!(revealed_durable(1, b(3), || "Promise".into(), b(2)).is_some());
        // A durable promise of the ballot does not back a vote for a value.
        let d = t("v").digest();
        let accepts = BTreeSet::from([(0, b(2), d)]);
        assert!(accept_backed(1, (0, b(2), d), &accepts, || "Accepted".into(), b(2)).is_none());
        assert!(accept_backed(1, (1, b(2), d), &accepts, || "Accepted".into(), b(2)).is_some());
        assert!(frame_limit(1, 2, "Promise", 10, 10).is_none());
        assert!(frame_limit(1, 2, "Promise", 11, 10).is_some());
    }

    #[test]
    fn the_other_checks_can_fail() {
        let texts = BTreeSet::from(["a".to_string()]);
        assert!(validity(&texts, &BTreeSet::new(), &[], 0, &t("z")).is_some());
        assert!(validity(&texts, &BTreeSet::new(), &[], 0, &t("a")).is_none());
        let mut learned = BTreeMap::new();
        assert!(stability(&mut learned, 1, 0, &t("a")).is_none());
        assert!(stability(&mut learned, 1, 0, &t("b")).is_some());
        let mut last = BTreeMap::new();
        assert!(promise_monotonic(&mut last, 1, Ballot::new(3, 1)).is_none());
        assert!(promise_monotonic(&mut last, 1, Ballot::ZERO).is_some());
        let mut digests = BTreeMap::new();
        assert!(log_prefix(&mut digests, 1, 4, 99).is_none());
        assert!(log_prefix(&mut digests, 2, 4, 98).is_some());
        let mut seen = BTreeMap::new();
        assert!(applied_once(&mut seen, 1, 7, 1).is_none());
        assert!(applied_once(&mut seen, 1, 7, 1).is_some());
    }
}
