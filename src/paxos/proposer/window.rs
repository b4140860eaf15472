//! Batching and the window: commands that wait share a slot, a bounded number
//! of slots is in flight, and unanswered accepts are sent again.

use super::{Mode, Proposer};
use crate::paxos::ballot::Slot;
use crate::paxos::message::{Outbox, Value};

/// A slot proposed and not yet known chosen.
#[derive(Clone, Debug)]
pub(super) struct Flight {
    value: Value,
    /// Ticks since its accepts were last sent.
    pub(super) age: u32,
}

impl Proposer {
    pub(super) fn propose(&mut self, slot: Slot, value: Value, out: &mut Outbox) {
        self.campaign.accept(slot, value.clone(), out);
        self.in_flight.insert(slot, Flight { value, age: 0 });
    }

    /// Fill the window with batches of the commands waiting.
    pub(super) fn propose_waiting(&mut self, out: &mut Outbox) {
        while self.in_flight.len() < self.cfg.fast.window && !self.queue.is_empty() {
            let mut batch = Vec::new();
            let mut bytes = 0;
            while let Some(cmd) = self.queue.front() {
                let size = cmd.op.size() + 16;
                if batch.len() >= self.cfg.fast.max_batch
                    || (!batch.is_empty() && bytes + size > self.cfg.max_batch_bytes)
                {
                    break;
                }
                bytes += size;
                batch.extend(self.queue.pop_front());
            }
            let slot = self.next_slot;
            self.next_slot += 1;
            self.propose(slot, Value::Batch(batch), out);
        }
    }

    /// Send again the accepts of slots unanswered for two heartbeats.
    pub(super) fn resend(&mut self, out: &mut Outbox) {
        let stale = 2 * self.cfg.heartbeat_ticks;
        for (&slot, f) in self.in_flight.iter_mut() {
            if f.age >= stale {
                f.age = 0;
                self.campaign.accept(slot, f.value.clone(), out);
            }
        }
    }

    /// Every slot below `slot` is chosen (a snapshot covers them).
    pub(super) fn chosen_below(&mut self, slot: Slot) {
        if slot <= self.first_unchosen {
            return;
        }
        self.first_unchosen = slot;
        self.chosen_ahead = self.chosen_ahead.split_off(&slot);
        self.in_flight = self.in_flight.split_off(&slot);
        while self.chosen_ahead.remove(&self.first_unchosen) {
            self.first_unchosen += 1;
        }
        self.next_slot = self.next_slot.max(self.first_unchosen);
    }

    /// The learner knows `slot` chosen: free its place in the window.
    pub(super) fn committed(&mut self, slot: Slot, out: &mut Outbox) {
        self.in_flight.remove(&slot);
        if slot >= self.first_unchosen {
            self.chosen_ahead.insert(slot);
        }
        while self.chosen_ahead.remove(&self.first_unchosen) {
            self.first_unchosen += 1;
        }
        self.next_slot = self.next_slot.max(slot.saturating_add(1));
        if self.mode == Mode::Leader {
            self.propose_waiting(out);
        }
    }
}
