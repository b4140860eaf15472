//! The fault layer in a node's outbound path: loss, duplication, delay and
//! blocked peers (partitions), changed at runtime and seeded so the sequence of
//! decisions replays.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::paxos::NodeId;
use crate::rng::Rng;

/// Message faults applied to what one node sends to its peers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetFaults {
    /// Loss probability in parts per million.
    pub loss_ppm: u32,
    /// Duplication probability in parts per million.
    pub dup_ppm: u32,
    /// Extra delay range, ms (both 0: none).
    pub delay_ms: (u64, u64),
    /// Peers this node cannot reach (nor hear from).
    pub blocked: BTreeSet<NodeId>,
    /// Seed of the decisions.
    pub seed: u64,
}

/// What to do with one outbound message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Drop it.
    Drop,
    /// Send it `copies` times, each after its delay in ms.
    Send { copies: u8, delay_ms: [u64; 2] },
}

impl NetFaults {
    /// No faults at all.
    pub fn none() -> Self {
        NetFaults::default()
    }

    /// True when nothing is injected.
    pub fn is_clear(&self) -> bool {
        self.loss_ppm == 0
            && self.dup_ppm == 0
            && self.delay_ms == (0, 0)
            && self.blocked.is_empty()
    }

    /// The longest extra delay a fault may add, in ms.
    pub const MAX_DELAY_MS: u64 = 60_000;

    /// Why these faults cannot be applied to a cluster whose nodes are
    /// `members`, if they cannot. Every number that comes from a command line
    /// or a socket is checked here before a node uses it.
    pub fn check(&self, members: &[NodeId]) -> Result<(), String> {
        const MILLION: u32 = 1_000_000;
        if self.loss_ppm > MILLION || self.dup_ppm > MILLION {
            return Err(format!(
                "loss and duplication are probabilities from 0 to 1 (got {} and {})",
                self.loss_ppm as f64 / 1e6,
                self.dup_ppm as f64 / 1e6
            ));
        }
        let (lo, hi) = self.delay_ms;
        if lo > hi || hi > Self::MAX_DELAY_MS {
            return Err(format!(
                "delay {lo}..{hi} ms: write MIN..MAX with MIN <= MAX <= {} ms",
                Self::MAX_DELAY_MS
            ));
        }
        if let Some(n) = self.blocked.iter().find(|n| !members.contains(n)) {
            return Err(format!("node {n} is not in the cluster"));
        }
        Ok(())
    }

    /// Set whichever of loss, duplication (probabilities) and delay (ms)
    /// are given, leaving the rest as they are.
    pub fn set_net(&mut self, loss: Option<f64>, dup: Option<f64>, delay: Option<(u64, u64)>) {
        if let Some(p) = loss {
            self.loss_ppm = Self::ppm(p);
        }
        if let Some(p) = dup {
            self.dup_ppm = Self::ppm(p);
        }
        if let Some(d) = delay {
            self.delay_ms = d;
        }
    }

    /// Probability from parts per million.
    pub fn ppm(p: f64) -> u32 {
        (p.clamp(0.0, 1.0) * 1e6).round() as u32
    }

    /// Decide the fate of one message to `to`.
    pub fn decide(&self, rng: &mut Rng, to: NodeId) -> Fate {
        if self.blocked.contains(&to) || rng.chance(self.loss_ppm as f64 / 1e6) {
            return Fate::Drop;
        }
        let copies = if rng.chance(self.dup_ppm as f64 / 1e6) {
            2
        } else {
            1
        };
        let (lo, hi) = self.delay_ms;
        Fate::Send {
            copies,
            delay_ms: [rng.range(lo, hi), rng.range(lo, hi)],
        }
    }
}

impl fmt::Display for NetFaults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_clear() {
            return write!(f, "none");
        }
        let mut parts = Vec::new();
        if self.loss_ppm > 0 {
            parts.push(format!("loss {}%", self.loss_ppm as f64 / 1e4));
        }
        if self.dup_ppm > 0 {
            parts.push(format!("dup {}%", self.dup_ppm as f64 / 1e4));
        }
        if self.delay_ms != (0, 0) {
            parts.push(format!("delay {}..{}ms", self.delay_ms.0, self.delay_ms.1));
        }
        if !self.blocked.is_empty() {
            let b: Vec<String> = self.blocked.iter().map(|n| n.to_string()).collect();
            parts.push(format!("cut off from {}", b.join(",")));
        }
        write!(f, "{}", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_peers_and_certain_loss_drop_everything() {
        let mut rng = Rng::new(1);
        let f = NetFaults {
            blocked: [2].into(),
            ..NetFaults::none()
        };
        assert_eq!(f.decide(&mut rng, 2), Fate::Drop);
        assert!(matches!(
            f.decide(&mut rng, 3),
            Fate::Send { copies: 1, .. }
        ));
        let f = NetFaults {
            loss_ppm: NetFaults::ppm(1.0),
            ..NetFaults::none()
        };
        assert_eq!(f.decide(&mut rng, 3), Fate::Drop);
    }

    #[test]
    fn absurd_faults_are_refused() {
        let ok = NetFaults {
            delay_ms: (1, 20),
            blocked: [2].into(),
            ..NetFaults::none()
        };
        assert!(ok.check(&[1, 2, 3]).is_ok());
        let huge = NetFaults {
            delay_ms: (0, u64::MAX),
            ..NetFaults::none()
        };
        assert!(huge.check(&[1, 2, 3]).is_err());
        let backwards = NetFaults {
            delay_ms: (9, 1),
            ..NetFaults::none()
        };
        assert!(backwards.check(&[1]).is_err());
        let stranger = NetFaults {
            blocked: [9].into(),
            ..NetFaults::none()
        };
        assert!(stranger.check(&[1, 2]).is_err());
        let certain = NetFaults {
            loss_ppm: 2_000_000,
            ..NetFaults::none()
        };
        assert!(certain.check(&[1]).is_err());
    }

    #[test]
    fn duplication_and_delay_follow_the_settings() {
        let mut rng = Rng::new(2);
        let f = NetFaults {
            dup_ppm: NetFaults::ppm(1.0),
            delay_ms: (5, 9),
            ..NetFaults::none()
        };
        match f.decide(&mut rng, 1) {
            Fate::Send { copies, delay_ms } => {
                assert_eq!(copies, 2);
                assert!(delay_ms.iter().all(|d| (5..=9).contains(d)));
            }
            Fate::Drop => panic!("nothing should drop"),
        }
        assert_eq!(f.to_string(), "dup 100%, delay 5..9ms");
    }
}
