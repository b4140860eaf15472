//! The node's own fault layer: what `synod net` and chaos ask of the
//! messages this node sends (lose, duplicate, delay, block a peer), decided
//! message by message from a seeded stream.

use crate::net::faults::Fate;
use crate::net::NetFaults;
use crate::paxos::NodeId;
use crate::rng::Rng;

/// The faults in force on one node's outgoing messages.
pub struct Injector {
    me: NodeId,
    faults: NetFaults,
    rng: Rng,
}

impl Injector {
    /// No faults, on node `me`.
    pub fn new(me: NodeId) -> Self {
        Injector {
            me,
            faults: NetFaults::none(),
            rng: Rng::new(me),
        }
    }

    /// The faults in force.
    pub fn faults(&self) -> &NetFaults {
        &self.faults
    }

    /// Put `f` in force (its seed restarts the stream); the old faults.
    pub fn set(&mut self, f: NetFaults) -> NetFaults {
        self.rng = Rng::derive(f.seed, self.me);
        std::mem::replace(&mut self.faults, f)
    }

    /// What becomes of one message to `to` (`None`: no faults, sent as is).
    pub fn fate(&mut self, to: NodeId) -> Option<Fate> {
        if self.faults.is_clear() {
            None
        } else {
            Some(self.faults.decide(&mut self.rng, to))
        }
    }
}
