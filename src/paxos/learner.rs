//! The learner: a value is chosen when a majority of acceptors accepted the same
//! ballot (Paxos Made Simple §2.3).
//!
//! Acceptors send `Accepted` to the learner of the ballot's proposer, which knows
//! the value from its proposer's `Proposed` notice. Once a majority has accepted,
//! that learner tells the rest with `Learn` (at its next tick, every slot chosen
//! since the last one in one message); a learner that falls behind (it sees a
//! leader's commit point above its own, or a hole) asks for what it missed with
//! `CatchUp`. Each learner tells its node's replica (`Chosen`) and proposer
//! (`Committed`) about every newly chosen slot.

use std::collections::{BTreeMap, BTreeSet};

use super::ballot::{Ballot, NodeId, Slot};
use super::message::{Message, Outbox, Record, Value};

/// How many chosen entries one `Learn` answer to a `CatchUp` carries at most.
pub const CATCHUP_ENTRIES: usize = 256;
/// How many bytes of values one such answer carries at most (frames stay small).
pub const CATCHUP_BYTES: usize = 1 << 20;
/// Ticks a learner stays behind before it asks for a catch-up.
const CATCHUP_TICKS: u32 = 3;

/// Accepts counted for one slot at its highest ballot seen.
#[derive(Clone, Debug)]
struct Tally {
    ballot: Ballot,
    value: Option<Value>,
    voters: BTreeSet<NodeId>,
}

/// One learner's state.
#[derive(Clone, Debug)]
pub struct Learner {
    id: NodeId,
    nodes: Vec<NodeId>,
    quorum: usize,
    chosen: BTreeMap<Slot, Value>,
    first_unchosen: Slot,
    tallies: BTreeMap<Slot, Tally>,
    leader: Option<NodeId>,
    leader_commit: Slot,
    behind: u32,
    ask_next: usize,
    conflicts: Vec<(Slot, Value, Value)>,
    /// Chosen by this learner's own count, to tell the others at the next tick.
    spread: Vec<(Slot, Value)>,
}

impl Learner {
    /// A learner at node `id` of the cluster `nodes`, with majority `quorum`.
    pub fn new(id: NodeId, nodes: Vec<NodeId>, quorum: usize) -> Self {
        Learner {
            id,
            nodes,
            quorum,
            chosen: BTreeMap::new(),
            first_unchosen: 0,
            tallies: BTreeMap::new(),
            leader: None,
            leader_commit: 0,
            behind: 0,
            ask_next: 0,
            conflicts: Vec::new(),
            spread: Vec::new(),
        }
    }

    /// A learner rebuilt from its records. Call [`Learner::replay`] to tell the
    /// replica and proposer again.
    pub fn recover<'a>(
        id: NodeId,
        nodes: Vec<NodeId>,
        quorum: usize,
        records: impl IntoIterator<Item = &'a Record>,
    ) -> Self {
        let mut l = Learner::new(id, nodes, quorum);
        for r in records {
            if let Record::Chosen { slot, value } = r {
                l.chosen.entry(*slot).or_insert_with(|| value.clone());
            }
        }
        l.advance();
        l
    }

    /// Tell this node's replica and proposer about every slot known chosen.
    pub fn replay(&self, out: &mut Outbox) {
        for (&slot, value) in &self.chosen {
            self.notify(slot, value.clone(), out);
        }
    }

    /// Every slot known chosen.
    pub fn chosen(&self) -> &BTreeMap<Slot, Value> {
        &self.chosen
    }

    /// The first slot not known chosen: every slot below it is.
    pub fn first_unchosen(&self) -> Slot {
        self.first_unchosen
    }

    /// Values this learner was told were chosen for a slot it already knew chosen
    /// with another value: `(slot, kept, offered)`. Empty unless a rule is broken.
    pub fn conflicts(&self) -> &[(Slot, Value, Value)] {
        &self.conflicts
    }

    /// Handle one message for the learner role.
    pub fn handle(&mut self, from: NodeId, msg: Message, out: &mut Outbox) {
        match msg {
            Message::Proposed {
                ballot,
                slot,
                value,
            } if !self.chosen.contains_key(&slot) => {
                let t = self.tally(slot, ballot);
                if t.ballot == ballot {
                    t.value = Some(value);
                    self.check(slot, out);
                }
            }
            Message::Accepted { ballot, slot } if !self.chosen.contains_key(&slot) => {
                let t = self.tally(slot, ballot);
                if t.ballot == ballot {
                    t.voters.insert(from);
                    self.check(slot, out);
                }
            }
            Message::Learn { entries } => {
                for (slot, value) in entries {
                    self.learn(slot, value, false, out);
                }
            }
            Message::CatchUp { from_slot } if from != self.id => {
                let mut entries = Vec::new();
                let mut bytes = 0;
                for (&slot, value) in self.chosen.range(from_slot..) {
                    if entries.len() >= CATCHUP_ENTRIES || bytes > CATCHUP_BYTES {
                        break;
                    }
                    bytes += value.size();
                    entries.push((slot, value.clone()));
                }
                if !entries.is_empty() {
                    out.send(self.id, from, Message::Learn { entries });
                }
            }
            Message::LeaderSeen { ballot, commit } => {
                self.leader = Some(ballot.node);
                self.leader_commit = self.leader_commit.max(commit);
            }
            // Already chosen, or not for a learner: nothing to do.
            _ => {}
        }
    }

    /// One tick: ask for a catch-up if this learner has been behind for a while.
    pub fn tick(&mut self, out: &mut Outbox) {
        // What this learner counted to a majority since the last tick goes to
        // the others in one message each (a message per slot cost a fifth of
        // the throughput, measured).
        if !self.spread.is_empty() {
            let entries = std::mem::take(&mut self.spread);
            for &n in &self.nodes {
                if n != self.id {
                    out.send(
                        self.id,
                        n,
                        Message::Learn {
                            entries: entries.clone(),
                        },
                    );
                }
            }
        }
        let hole = self
            .chosen
            .keys()
            .next_back()
            .is_some_and(|&s| s >= self.first_unchosen);
        if self.leader_commit <= self.first_unchosen && !hole {
            self.behind = 0;
            return;
        }
        self.behind += 1;
        if self.behind < CATCHUP_TICKS {
            return;
        }
        self.behind = 0;
        // Ask the leader first, then the others in turn, so one dead peer cannot
        // keep this learner behind for ever.
        let others: Vec<NodeId> = self
            .nodes
            .iter()
            .copied()
            .filter(|&n| n != self.id)
            .collect();
        if others.is_empty() {
            return;
        }
        let to = match self
            .leader
            .filter(|&l| l != self.id && self.ask_next % 2 == 0)
        {
            Some(l) => l,
            None => others[self.ask_next % others.len()],
        };
        self.ask_next += 1;
        out.send(
            self.id,
            to,
            Message::CatchUp {
                from_slot: self.first_unchosen,
            },
        );
    }

    fn tally(&mut self, slot: Slot, ballot: Ballot) -> &mut Tally {
        let t = self.tallies.entry(slot).or_insert_with(|| Tally {
            ballot,
            value: None,
            voters: BTreeSet::new(),
        });
        if ballot > t.ballot {
            // A newer proposal for this slot supersedes the count of the older one.
            *t = Tally {
                ballot,
                value: None,
                voters: BTreeSet::new(),
            };
        }
        t
    }

    fn check(&mut self, slot: Slot, out: &mut Outbox) {
        let ready = self
            .tallies
            .get(&slot)
            .filter(|t| t.voters.len() >= self.quorum)
            .and_then(|t| t.value.clone());
        if let Some(value) = ready {
            self.learn(slot, value, true, out);
        }
    }

    fn learn(&mut self, slot: Slot, value: Value, spread: bool, out: &mut Outbox) {
        if let Some(known) = self.chosen.get(&slot) {
            if *known != value {
                // Only possible with a rule broken: keep the first (stability),
                // and remember the contradiction for the checkers.
                self.conflicts.push((slot, known.clone(), value));
            }
            return;
        }
        self.tallies.remove(&slot);
        self.chosen.insert(slot, value.clone());
        out.persist.push(Record::Chosen {
            slot,
            value: value.clone(),
        });
        if spread {
            self.spread.push((slot, value.clone()));
        }
        self.notify(slot, value, out);
        self.advance();
    }

    fn notify(&self, slot: Slot, value: Value, out: &mut Outbox) {
        out.send(self.id, self.id, Message::Committed { slot });
        out.send(self.id, self.id, Message::Chosen { slot, value });
    }

    fn advance(&mut self) {
        while self.chosen.contains_key(&self.first_unchosen) {
            self.first_unchosen += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Value {
        Value::Text(s.into())
    }

    #[test]
    fn chosen_at_a_majority_of_the_same_ballot() {
        // Paxos Made Simple §2.3: chosen once a majority accepted the proposal.
        let b1 = Ballot::new(1, 1);
        let mut l = Learner::new(1, vec![1, 2, 3], 2);
        let mut out = Outbox::new();
        l.handle(
            1,
            Message::Proposed {
                ballot: b1,
                slot: 0,
                value: v("x"),
            },
            &mut out,
        );
        l.handle(
            2,
            Message::Accepted {
                ballot: b1,
                slot: 0,
            },
            &mut out,
        );
        l.handle(
            2,
            Message::Accepted {
                ballot: b1,
                slot: 0,
            },
            &mut out,
        );
        assert!(
            l.chosen().is_empty(),
            "one acceptor twice is not a majority"
        );
        l.handle(
            3,
            Message::Accepted {
                ballot: b1,
                slot: 0,
            },
            &mut out,
        );
        assert_eq!(l.chosen().get(&0), Some(&v("x")));
        assert_eq!(
            out.persist,
            vec![Record::Chosen {
                slot: 0,
                value: v("x")
            }]
        );
        let to: Vec<(NodeId, &str)> = out.send.iter().map(|e| (e.to, e.msg.kind())).collect();
        assert_eq!(to, vec![(1, "Committed"), (1, "Chosen")]);
        assert_eq!(l.first_unchosen(), 1);
        // The others hear of it at the next tick, with everything else chosen since.
        l.handle(
            1,
            Message::Proposed {
                ballot: b1,
                slot: 1,
                value: v("y"),
            },
            &mut out,
        );
        l.handle(
            2,
            Message::Accepted {
                ballot: b1,
                slot: 1,
            },
            &mut out,
        );
        l.handle(
            3,
            Message::Accepted {
                ballot: b1,
                slot: 1,
            },
            &mut out,
        );
        let mut out = Outbox::new();
        l.tick(&mut out);
        let learn = Message::Learn {
            entries: vec![(0, v("x")), (1, v("y"))],
        };
        let to: Vec<NodeId> = out
            .send
            .iter()
            .filter(|e| e.msg == learn)
            .map(|e| e.to)
            .collect();
        assert_eq!(to, vec![2, 3]);
    }

    #[test]
    fn accepts_of_different_ballots_do_not_add_up() {
        let mut l = Learner::new(1, vec![1, 2, 3], 2);
        let mut out = Outbox::new();
        l.handle(
            1,
            Message::Proposed {
                ballot: Ballot::new(2, 1),
                slot: 0,
                value: v("x"),
            },
            &mut out,
        );
        l.handle(
            2,
            Message::Accepted {
                ballot: Ballot::new(1, 1),
                slot: 0,
            },
            &mut out,
        );
        l.handle(
            3,
            Message::Accepted {
                ballot: Ballot::new(2, 1),
                slot: 0,
            },
            &mut out,
        );
        assert!(l.chosen().is_empty());
    }

    #[test]
    fn a_learner_behind_asks_for_a_catch_up() {
        let mut l = Learner::new(3, vec![1, 2, 3], 2);
        let mut out = Outbox::new();
        l.handle(
            3,
            Message::LeaderSeen {
                ballot: Ballot::new(1, 1),
                commit: 5,
            },
            &mut out,
        );
        for _ in 0..CATCHUP_TICKS {
            l.tick(&mut out);
        }
        assert_eq!(
            out.send.last().map(|e| (e.to, e.msg.clone())),
            Some((1, Message::CatchUp { from_slot: 0 }))
        );
        // The leader answers with what it knows.
        let mut leader = Learner::new(1, vec![1, 2, 3], 2);
        leader.handle(
            2,
            Message::Learn {
                entries: (0..5).map(|s| (s, v("x"))).collect(),
            },
            &mut Outbox::new(),
        );
        let mut answer = Outbox::new();
        leader.handle(3, Message::CatchUp { from_slot: 2 }, &mut answer);
        match &answer.send[0].msg {
            Message::Learn { entries } => assert_eq!(
                entries.iter().map(|e| e.0).collect::<Vec<_>>(),
                vec![2, 3, 4]
            ),
            other => panic!("expected Learn, got {other:?}"),
        }
    }

    #[test]
    fn recovery_keeps_what_was_chosen() {
        let records = vec![
            Record::Chosen {
                slot: 0,
                value: v("a"),
            },
            Record::Chosen {
                slot: 2,
                value: v("c"),
            },
        ];
        let l = Learner::recover(1, vec![1, 2, 3], 2, &records);
        assert_eq!(l.first_unchosen(), 1);
        let mut out = Outbox::new();
        l.replay(&mut out);
        assert_eq!(out.send.len(), 4);
    }
}
