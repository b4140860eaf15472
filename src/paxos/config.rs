//! Configurations by slot, for membership change (issue 23): the first
//! building block, not wired into the roles yet. The design and its safety
//! argument are in `docs/ARCHITECTURE.md`, "Membership change".
//!
//! Lamport's window α: a change chosen at slot `i` governs every slot from
//! `i + α` on, so the configuration of slot `s` is fixed by the log below
//! `s - α + 1`. A node that knows every slot below its first unchosen slot
//! `f` knows the configuration of every slot below `f + α`; a leader whose
//! window of slots in flight is at most α never proposes beyond that.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::ballot::{NodeId, Slot};
use super::quorum::Quorums;
use super::rules::Rules;

/// Slots between a change being chosen and taking effect.
pub const ALPHA: Slot = 64;

/// One configuration: who votes, who only learns, and the quorums.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Config {
    /// Its number: the initial configuration is 0, each change adds one.
    pub number: u64,
    /// The nodes whose votes count.
    pub voters: BTreeSet<NodeId>,
    /// The nodes that receive the log and count in no quorum.
    pub learners: BTreeSet<NodeId>,
    /// Phase-1 and phase-2 quorums among the voters (`None`: majorities).
    pub quorums: Option<Quorums>,
    /// How to reach the members configuration 0 did not name (nodes added
    /// at run time): carried, never read, by the protocol.
    pub contacts: BTreeMap<NodeId, Contact>,
}

/// Where a node added at run time listens and the public key it proves
/// itself with, as the shell wrote them (hex): what its peers need to open
/// a link to it and to admit its link. Public, so safe in the log.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Contact {
    /// Its address (`host:port`).
    pub addr: String,
    /// Its public key, hex.
    pub key: String,
}

impl Config {
    /// Configuration 0: `voters` (the cluster file's nodes) with `quorums`.
    pub fn first(voters: impl IntoIterator<Item = NodeId>, quorums: Quorums) -> Self {
        Config {
            number: 0,
            voters: voters.into_iter().collect(),
            learners: BTreeSet::new(),
            quorums: Some(quorums),
            contacts: BTreeMap::new(),
        }
    }

    /// The quorums in force: the configured ones, or majorities.
    pub fn quorums(&self) -> Quorums {
        self.quorums
            .unwrap_or_else(|| Quorums::majority(self.voters.len()))
    }

    /// Why `self` cannot follow `prev` (`None`: it can).
    pub fn problem_after(&self, prev: &Config) -> Option<String> {
        if self.number != prev.number + 1 {
            return Some(format!(
                "configuration {} cannot follow {} (numbers go up by one)",
                self.number, prev.number
            ));
        }
        if self.voters.is_empty() {
            return Some("a configuration needs at least one voter".into());
        }
        if let Some(both) = self.voters.intersection(&self.learners).next() {
            return Some(format!("node {both} cannot be a voter and a learner"));
        }
        if let Some(stray) = self
            .contacts
            .keys()
            .find(|n| !self.voters.contains(n) && !self.learners.contains(n))
        {
            return Some(format!("node {stray} has a contact but is not a member"));
        }
        self.quorums().problem(self.voters.len(), Rules::ALL)
    }
}

/// Why a change was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReconfigError {
    /// Another change is chosen and not yet in force.
    #[error("configuration {pending} takes effect at slot {at}; one change at a time")]
    Pending {
        /// The pending configuration's number.
        pending: u64,
        /// Where it takes effect.
        at: Slot,
    },
    /// The configuration itself is not valid after the one in force.
    #[error("{0}")]
    Invalid(String),
}

/// The configurations of one log, by the slot where each takes effect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Configs {
    alpha: Slot,
    /// Slot where each takes effect → the configuration (the first at 0).
    by_slot: BTreeMap<Slot, Config>,
}

impl Configs {
    /// A log whose first configuration is `initial`, changes taking effect
    /// `alpha` slots after they are chosen.
    pub fn new(initial: Config, alpha: Slot) -> Self {
        Configs {
            alpha: alpha.max(1),
            by_slot: BTreeMap::from([(0, initial)]),
        }
    }

    /// The configuration that governs `slot` (for a slot below what
    /// compaction kept, the oldest one kept).
    pub fn at(&self, slot: Slot) -> &Config {
        self.by_slot
            .range(..=slot)
            .next_back()
            .or_else(|| self.by_slot.iter().next())
            .map(|(_, c)| c)
            .expect("a log has a configuration")
    }

    /// The first slot whose configuration is still kept.
    fn kept_from(&self) -> Slot {
        self.by_slot.keys().next().copied().unwrap_or(0)
    }

    /// True if a kept configuration names `node`, voter or learner (no
    /// allocation: asked for every message a learner gets).
    pub fn names(&self, node: NodeId) -> bool {
        self.by_slot
            .values()
            .any(|c| c.voters.contains(&node) || c.learners.contains(&node))
    }

    /// The contact of every node added at run time that a kept
    /// configuration names (the latest one's, where they differ).
    pub fn contacts(&self) -> BTreeMap<NodeId, &Contact> {
        self.by_slot
            .values()
            .flat_map(|c| c.contacts.iter().map(|(&n, k)| (n, k)))
            .collect()
    }

    /// Every node any kept configuration names, voter or learner.
    pub fn all_nodes(&self) -> BTreeSet<NodeId> {
        self.by_slot
            .values()
            .flat_map(|c| c.voters.iter().chain(&c.learners).copied())
            .collect()
    }

    /// The change chosen and not yet in force at `slot`, with where it takes
    /// effect.
    pub fn pending(&self, slot: Slot) -> Option<(Slot, &Config)> {
        self.by_slot
            .range(slot + 1..)
            .next()
            .map(|(&at, c)| (at, c))
    }

    /// The last slot whose configuration a node knows when every slot below
    /// `first_unchosen` is known: a change not yet known can only have been
    /// chosen at `first_unchosen` or later.
    pub fn known_through(&self, first_unchosen: Slot) -> Slot {
        first_unchosen + self.alpha - 1
    }

    /// A change `next` was chosen at slot `slot`: it takes effect at
    /// `slot + α`, unless another is pending there or it is not valid after
    /// the configuration it would follow.
    pub fn chosen(&mut self, slot: Slot, next: Config) -> Result<Slot, ReconfigError> {
        if let Some((at, pending)) = self.pending(slot) {
            return Err(ReconfigError::Pending {
                pending: pending.number,
                at,
            });
        }
        if let Some(why) = next.problem_after(self.at(slot)) {
            return Err(ReconfigError::Invalid(why));
        }
        let at = slot + self.alpha;
        self.by_slot.insert(at, next);
        Ok(at)
    }

    /// The latest configuration known (in force, or pending).
    pub fn latest(&self) -> &Config {
        self.by_slot
            .values()
            .next_back()
            .expect("the first configuration governs slot 0")
    }

    /// The slots between a change being chosen and taking effect.
    pub fn alpha(&self) -> Slot {
        self.alpha
    }

    /// Every configuration that governs a slot at or above `slot`, with the
    /// first slot each governs (the first one: `slot` itself).
    pub fn from(&self, slot: Slot) -> impl Iterator<Item = (Slot, &Config)> {
        let first = std::iter::once((slot, self.at(slot)));
        first.chain(self.by_slot.range(slot + 1..).map(|(&at, c)| (at, c)))
    }

    /// Every node of a configuration that governs a slot at or above `slot`,
    /// voters and learners: who receives the log.
    pub fn nodes_from(&self, slot: Slot) -> BTreeSet<NodeId> {
        self.from(slot)
            .flat_map(|(_, c)| c.voters.iter().chain(&c.learners).copied())
            .collect()
    }

    /// Every voter of a configuration that governs a slot at or above `slot`.
    pub fn voters_from(&self, slot: Slot) -> BTreeSet<NodeId> {
        self.from(slot)
            .flat_map(|(_, c)| c.voters.iter().copied())
            .collect()
    }

    /// Value `value` was chosen at `slot`: if it is a change, record it
    /// (a change the log refuses is ignored by every node alike).
    pub fn learn(&mut self, slot: Slot, value: &super::message::Value) -> bool {
        match value {
            // Below what compaction kept, every change is accounted for.
            super::message::Value::Reconfig(next) if slot >= self.kept_from() => {
                self.chosen(slot, (**next).clone()).is_ok()
            }
            _ => false,
        }
    }

    /// Take in what `other` knows (both come from the same chosen log, so
    /// they agree where both know): every change this one lacks.
    pub fn merge(&mut self, other: &Configs) -> bool {
        let mut grew = false;
        for (&at, c) in &other.by_slot {
            if at > 0 && !self.by_slot.contains_key(&at) && c.number > self.latest().number {
                self.by_slot.insert(at, c.clone());
                grew = true;
            }
        }
        grew
    }

    /// Forget every configuration that governs no slot at or above `slot`
    /// (a snapshot covers the slots below it).
    pub fn forget_below(&mut self, slot: Slot) {
        let keep = *self
            .by_slot
            .range(..=slot)
            .next_back()
            .map(|(at, _)| at)
            .or_else(|| self.by_slot.keys().next())
            .expect("a log has a configuration");
        self.by_slot = self.by_slot.split_off(&keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(number: u64, voters: &[NodeId]) -> Config {
        Config {
            number,
            voters: voters.iter().copied().collect(),
            learners: BTreeSet::new(),
            quorums: None,
            contacts: BTreeMap::new(),
        }
    }

    #[test]
    fn a_change_chosen_at_i_governs_from_i_plus_alpha() {
        let mut c = Configs::new(config(0, &[1, 2, 3]), 4);
        assert_eq!(c.chosen(10, config(1, &[1, 2, 3, 4, 5])), Ok(14));
        assert_eq!(c.at(13).number, 0);
        assert_eq!(c.at(14).number, 1);
        assert_eq!(c.at(14).quorums().phase2, 3);
        assert_eq!(c.pending(11).map(|(at, _)| at), Some(14));
        assert_eq!(c.pending(14), None);
        // Knowing every slot below 11 tells the configuration through 14.
        assert_eq!(c.known_through(11), 14);
    }

    #[test]
    fn one_change_at_a_time_and_only_valid_ones() {
        let mut c = Configs::new(config(0, &[1, 2, 3]), 4);
        c.chosen(10, config(1, &[1, 2, 3, 4])).unwrap();
        assert_eq!(
            c.chosen(12, config(2, &[1, 2, 3])),
            Err(ReconfigError::Pending { pending: 1, at: 14 })
        );
        let skip = c.chosen(20, config(3, &[1, 2]));
        assert!(matches!(skip, Err(ReconfigError::Invalid(w)) if w.contains("go up by one")));
        let mut both = config(2, &[1, 2]);
        both.learners.insert(2);
        assert!(c.chosen(20, both).is_err());
        let mut apart = config(2, &[1, 2, 3, 4]);
        apart.quorums = Some(Quorums {
            phase1: 2,
            phase2: 2,
        });
        let why = c.chosen(20, apart);
        assert!(matches!(why, Err(ReconfigError::Invalid(_))), "{why:?}");
        assert_eq!(c.chosen(20, config(2, &[1, 2, 3])), Ok(24));
    }

    #[test]
    fn compaction_keeps_the_configuration_in_force() {
        let mut c = Configs::new(config(0, &[1, 2, 3]), 4);
        c.chosen(10, config(1, &[1, 2, 3, 4, 5])).unwrap();
        c.chosen(20, config(2, &[2, 3, 4])).unwrap();
        c.forget_below(16);
        assert_eq!(c.at(16).number, 1);
        assert_eq!(c.at(30).number, 2);
        assert_eq!(c.by_slot.len(), 2);
    }
}
