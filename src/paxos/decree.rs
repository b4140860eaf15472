//! Single-decree Paxos: one proposer, one value, slot 0 (the explainer's
//! examples and the simulator's decree runs). It runs one [`Campaign`] after
//! another, each at a higher round after a refusal or a timeout, until its
//! learner knows a value is chosen.

use super::ballot::{Ballot, NodeId};
use super::campaign::{Campaign, Chunk};
use super::message::{Message, Notice, Outbox, Value};
use crate::rng::Rng;

/// Where a single-decree proposer stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecreeState {
    /// Waiting `timeout` ticks (a random backoff) before the next prepare.
    Waiting { elapsed: u32, timeout: u32 },
    /// Phase 1 under way.
    Preparing { elapsed: u32 },
    /// Phase 2 under way.
    Accepting { elapsed: u32 },
    /// Its learner knows a value is chosen.
    Done,
}

/// Ticks a single-decree proposer waits for a phase to finish before retrying.
const DECREE_PHASE_TICKS: u32 = 20;

/// Single-decree Paxos: propose one value for slot 0 until something is chosen.
#[derive(Clone, Debug)]
pub struct DecreeProposer {
    campaign: Campaign,
    own: Value,
    state: DecreeState,
    backoff: u32,
    rng: Rng,
}

impl DecreeProposer {
    /// A proposer for `own` that waits a random number of ticks in `0..=backoff`
    /// (drawn from `seed`) before each attempt. Build `proposer` with
    /// [`Campaign::recover`] after a restart.
    pub fn new(campaign: Campaign, own: Value, backoff: u32, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let timeout = rng.range(0, backoff as u64) as u32;
        DecreeProposer {
            campaign,
            own,
            state: DecreeState::Waiting {
                elapsed: 0,
                timeout,
            },
            backoff,
            rng,
        }
    }

    /// The value this proposer would like chosen.
    pub fn own(&self) -> &Value {
        &self.own
    }

    /// Where it stands.
    pub fn state(&self) -> DecreeState {
        self.state
    }

    /// The ballot of its current attempt.
    pub fn ballot(&self) -> Ballot {
        self.campaign.ballot()
    }

    /// Handle a message for the proposer role.
    pub fn handle(&mut self, from: NodeId, msg: Message, out: &mut Outbox) {
        match msg {
            Message::Promise {
                ballot,
                from_slot,
                accepted,
                next,
                floor,
            } if matches!(self.state, DecreeState::Preparing { .. }) => {
                let chunk = Chunk {
                    from_slot,
                    accepted,
                    next,
                    floor,
                };
                if let Some(mut must) = self.campaign.on_promise(from, ballot, chunk, out) {
                    // P2c: a reported value wins over our own.
                    let value = must.remove(&0).unwrap_or_else(|| self.own.clone());
                    self.campaign.accept(0, value, out);
                    self.state = DecreeState::Accepting { elapsed: 0 };
                }
            }
            Message::Nack { ballot, promised } => {
                let preempted = self.campaign.on_nack(ballot, promised);
                if preempted && self.state != DecreeState::Done {
                    self.wait();
                }
            }
            // Stale promises, acks and anything else: nothing to do.
            _ => {}
        }
    }

    /// Handle a notice from this node's other roles.
    pub fn notice(&mut self, notice: Notice) {
        match notice {
            Notice::PromiseMade { ballot } => self.campaign.observe(ballot),
            Notice::SlotChosen { slot: 0 } => self.state = DecreeState::Done,
            _ => {}
        }
    }

    /// One tick of logical time: retry when a phase or a backoff ran out.
    pub fn tick(&mut self, out: &mut Outbox) {
        match &mut self.state {
            DecreeState::Waiting { elapsed, timeout } => {
                *elapsed += 1;
                if *elapsed > *timeout {
                    let round = self.campaign.next_round();
                    self.campaign.prepare(round, 0, out);
                    self.state = DecreeState::Preparing { elapsed: 0 };
                }
            }
            DecreeState::Preparing { elapsed } | DecreeState::Accepting { elapsed } => {
                *elapsed += 1;
                if *elapsed >= DECREE_PHASE_TICKS {
                    self.wait();
                }
            }
            DecreeState::Done => {}
        }
    }

    fn wait(&mut self) {
        let timeout = self.rng.range(1, self.backoff.max(1) as u64) as u32;
        self.state = DecreeState::Waiting {
            elapsed: 0,
            timeout,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paxos::Rules;

    fn b(round: u64, node: NodeId) -> Ballot {
        Ballot::new(round, node)
    }

    #[test]
    fn decree_proposer_retries_higher_after_a_nack_and_proposes_its_own_when_free() {
        let mut d = DecreeProposer::new(
            Campaign::new(1, vec![1, 2, 3], 2, Rules::ALL),
            Value::Text("mine".into()),
            0,
            1,
        );
        let mut out = Outbox::new();
        d.tick(&mut out);
        assert_eq!(d.state(), DecreeState::Preparing { elapsed: 0 });
        let first = d.ballot();
        d.handle(
            2,
            Message::Nack {
                ballot: first,
                promised: b(5, 2),
            },
            &mut out,
        );
        assert!(matches!(d.state(), DecreeState::Waiting { .. }));
        let mut out = Outbox::new();
        for _ in 0..3 {
            d.tick(&mut out);
        }
        assert_eq!(d.ballot(), b(6, 1));
        let mut out = Outbox::new();
        for from in [2, 3] {
            d.handle(
                from,
                Message::Promise {
                    ballot: b(6, 1),
                    from_slot: 0,
                    accepted: vec![],
                    next: None,
                    floor: 0,
                },
                &mut out,
            );
        }
        let accepts: Vec<&Message> = out
            .send
            .iter()
            .map(|e| &e.msg)
            .filter(|m| m.kind() == "Accept")
            .collect();
        assert_eq!(accepts.len(), 3);
        assert!(accepts
            .iter()
            .all(|m| matches!(m, Message::Accept { value: Value::Text(t), .. } if t == "mine")));
    }
}
