//! Proposal numbers.
//!
//! The explainer asks for "a number for every proposal, and a total order among
//! them" (P2). A [`Ballot`] is `(round, node)`: rounds are compared first, the node
//! id breaks ties, so two proposers can never pick the same ballot.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A node's identity inside one cluster (1-based in cluster files).
pub type NodeId = u64;

/// A position in the replicated log. Single-decree Paxos uses slot 0 only.
pub type Slot = u64;

/// The highest round a role takes from a message: far above any a real
/// cluster reaches (a round per election), far below where arithmetic on it
/// could overflow. Anything above is ignored as garbage.
pub const MAX_ROUND: u64 = 1 << 48;
/// The highest slot a role takes from a message, for the same reason.
pub const MAX_SLOT: Slot = 1 << 48;
/// How far past what it knows a message may reach, in slots: a promise's
/// accepted slots above its start (or floor), a learned value above the
/// learner's first unchosen slot. A real cluster stays within a snapshot
/// interval (at most 500,000 slots) and a window of the leader's; a
/// member that names a slot farther out would make a new leader fill every
/// slot in between, so the message is dropped instead.
pub const MAX_SPAN: Slot = 1 << 20;
/// The largest snapshot a replica takes in from a peer, in bytes.
pub const MAX_SNAPSHOT_BYTES: u64 = 1 << 32;

/// A proposal number: totally ordered, unique per proposer.
///
/// `Ballot::ZERO` is below every real ballot and stands for "nothing promised yet".
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Ballot {
    /// Compared first.
    pub round: u64,
    /// Breaks ties between proposers that picked the same round.
    pub node: NodeId,
}

impl Ballot {
    /// Below every ballot a proposer can pick.
    pub const ZERO: Ballot = Ballot { round: 0, node: 0 };

    /// The ballot `round` of proposer `node`.
    pub fn new(round: u64, node: NodeId) -> Self {
        Ballot { round, node }
    }

    /// True if this ballot's round is one a role may take from a message.
    pub fn in_range(&self) -> bool {
        self.round <= MAX_ROUND
    }

    /// True for [`Ballot::ZERO`].
    pub fn is_zero(&self) -> bool {
        *self == Ballot::ZERO
    }
}

impl fmt::Display for Ballot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            write!(f, "-")
        } else {
            write!(f, "{}.{}", self.round, self.node)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_compare_first_then_node() {
        // P2: a total order among proposals.
        assert!(Ballot::new(1, 9) < Ballot::new(2, 1));
        assert!(Ballot::new(2, 1) < Ballot::new(2, 2));
        assert!(Ballot::ZERO < Ballot::new(1, 1));
        assert_eq!(Ballot::new(3, 3).to_string(), "3.3");
        assert_eq!(Ballot::ZERO.to_string(), "-");
    }
}
