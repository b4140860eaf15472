//! Batching and the window: commands that wait share a slot, a bounded number
//! of slots is in flight, and unanswered accepts are sent again.

use super::{Mode, Proposer};
use crate::paxos::ballot::{NodeId, Slot};
use crate::paxos::campaign::Must;
use crate::paxos::message::{Message, Outbox, Value};
use crate::paxos::rules::Rule;

/// A slot proposed and not yet known chosen.
#[derive(Clone, Debug)]
pub(super) struct Flight {
    value: Value,
    /// Ticks since its accepts were last sent.
    pub(super) age: u32,
}

impl Proposer {
    pub(super) fn propose(&mut self, slot: Slot, value: Value, out: &mut Outbox) {
        let voters = self.voters_at(slot);
        self.campaign
            .accept_among(&voters, slot, value.clone(), out);
        self.in_flight.insert(slot, Flight { value, age: 0 });
    }

    /// Who is asked to accept in `slot`: the voters of its configuration
    /// (with `reconfig` broken: of the newest configuration known).
    fn voters_at(&self, slot: Slot) -> Vec<NodeId> {
        let c = if self.rules.holds(Rule::Reconfig) {
            self.configs.at(slot)
        } else {
            self.configs.latest()
        };
        c.voters.iter().copied().collect()
    }

    /// The first slot this leader may not propose in yet: past the last slot
    /// whose configuration it knows (a window of at most α), at the first
    /// configuration it has no promises from, or at the first it is not a
    /// voter of (it hands over there).
    pub(super) fn limit(&self) -> Slot {
        let known = self.configs.known_through(self.first_unchosen) + 1;
        if !self.rules.holds(Rule::Reconfig) {
            return Slot::MAX;
        }
        for (start, c) in self.configs.from(self.first_unchosen) {
            if start >= known {
                break;
            }
            if !c.voters.contains(&self.id) || !self.prepared.contains(&c.number) {
                return start;
            }
        }
        known
    }

    /// Propose again, in order and up to the limit, what P2c forces or a
    /// no-op in every slot below `refill_to`.
    pub(super) fn refill(&mut self, out: &mut Outbox) {
        let limit = self.limit();
        while self.next_slot < self.refill_to && self.next_slot < limit {
            let slot = self.next_slot;
            self.next_slot += 1;
            let forced = self.must.remove(&slot).map(|(_, v)| v);
            if slot < self.first_unchosen || self.chosen_ahead.contains(&slot) {
                continue;
            }
            self.propose(slot, forced.unwrap_or(Value::Noop), out);
        }
    }

    /// A chosen change waits for the log to reach the slot where it takes
    /// effect. With no command waiting, the leader fills the gap with no-ops
    /// (within its window, as slots are chosen, and at each heartbeat), so a
    /// change takes effect on an idle cluster too.
    pub(super) fn fill_to_change(&mut self, out: &mut Outbox) {
        let Some((at, _)) = self.configs.pending(self.first_unchosen) else {
            return;
        };
        if !self.queue.is_empty() || self.next_slot < self.refill_to {
            return;
        }
        let end = at.min(self.limit());
        while self.next_slot < end && self.in_flight.len() < self.cfg.fast.window {
            let slot = self.next_slot;
            self.next_slot += 1;
            if !self.chosen_ahead.contains(&slot) {
                self.propose(slot, Value::Noop, out);
            }
        }
    }

    /// Fill the window with batches of the commands waiting.
    pub(super) fn propose_waiting(&mut self, out: &mut Outbox) {
        self.refill(out);
        let limit = self.limit();
        while self.in_flight.len() < self.cfg.fast.window
            && !self.queue.is_empty()
            && self.next_slot >= self.refill_to
            && self.next_slot < limit
            && (self.in_flight.is_empty() || !self.cfg.fast.full_batches || self.full_batch())
        {
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
        self.fill_to_change(out);
    }

    /// The commands waiting fill a slot.
    fn full_batch(&self) -> bool {
        if self.queue.len() >= self.cfg.fast.max_batch {
            return true;
        }
        let mut bytes = 0;
        self.queue.iter().any(|cmd| {
            bytes += cmd.op.size() + 16;
            bytes >= self.cfg.max_batch_bytes
        })
    }

    /// Send again the accepts of slots unanswered for two heartbeats.
    pub(super) fn resend(&mut self, out: &mut Outbox) {
        let stale = 2 * self.cfg.heartbeat_ticks;
        let mut stale_slots = Vec::new();
        for (&slot, f) in self.in_flight.iter_mut() {
            if f.age >= stale {
                f.age = 0;
                stale_slots.push((slot, f.value.clone()));
            }
        }
        for (slot, value) in stale_slots {
            let voters = self.voters_at(slot);
            self.campaign.accept_among(&voters, slot, value, out);
        }
    }

    /// The leader's phase 1 among a later configuration's voters is done:
    /// what P2c forces there joins what the election found (the value of
    /// the highest ballot wins), and proposing goes on.
    pub(super) fn extended(&mut self, must: Must, out: &mut Outbox) {
        if let Some(number) = self.extending.take() {
            self.prepared.insert(number);
        }
        for (slot, (ballot, value)) in must {
            if slot < self.next_slot {
                continue; // proposed already (only below the configuration's start)
            }
            self.refill_to = self.refill_to.max(slot + 1);
            match self.must.get(&slot) {
                Some((b, _)) if *b >= ballot => {}
                _ => {
                    self.must.insert(slot, (ballot, value));
                }
            }
        }
        self.moved_on(out);
    }

    /// The first unchosen slot or the configurations moved: a leader that is
    /// no voter where the log now stands hands over; one that reached a
    /// configuration it has no promises from runs phase 1 there; and the
    /// window takes what the new limit allows.
    pub(super) fn moved_on(&mut self, out: &mut Outbox) {
        if self.mode != Mode::Leader {
            return;
        }
        if !self.is_voter() {
            if !self.rules.holds(Rule::Handover) {
                return; // stays leader, proposing nothing past its last slot
            }
            // Removed: hand over to a voter of the new configuration (one
            // this node reaches, if any), which stands at once.
            let voters = &self.electorate().voters;
            let next = voters
                .iter()
                .copied()
                .find(|v| self.reachable.contains(v))
                .or_else(|| voters.iter().next().copied());
            let ballot = self.campaign.ballot();
            self.step_down(next, out);
            if let Some(n) = next {
                out.send(self.id, n, Message::TakeOver { ballot });
            }
            return;
        }
        if self.rules.holds(Rule::Reconfig) && self.extending.is_none() {
            let known = self.configs.known_through(self.first_unchosen);
            let unprepared = self
                .configs
                .from(self.first_unchosen)
                .find(|(start, c)| *start <= known && !self.prepared.contains(&c.number))
                .map(|(start, c)| {
                    (
                        start,
                        c.number,
                        c.voters.iter().copied().collect::<Vec<_>>(),
                        c.quorums().phase1,
                    )
                });
            // Even where this node will not vote: what those voters
            // accepted bounds what a read must wait for.
            if let Some((start, number, voters, q1)) = unprepared {
                self.extending = Some(number);
                self.campaign.extend(start, voters, q1, out);
            }
        }
        self.propose_waiting(out);
        self.serve_reads(out);
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
        if let Some((client, seq, asked)) = self.change_asked {
            if asked == slot {
                self.change_asked = None;
                let at = slot + self.configs.alpha();
                let number = self.configs.at(at).number;
                out.replies.push(crate::paxos::message::Reply {
                    client,
                    seq,
                    outcome: crate::paxos::message::Outcome::Reconfigured { number, at },
                });
            }
        }
        if self.mode == Mode::Leader {
            // A slot chosen past what this leader proposed: the slots
            // between get what P2c forces, or no-ops, in order.
            if slot >= self.next_slot {
                self.refill_to = self.refill_to.max(slot.saturating_add(1));
            }
            self.next_slot = self.next_slot.max(self.first_unchosen);
            self.moved_on(out);
        } else {
            self.next_slot = self.next_slot.max(slot.saturating_add(1));
        }
    }
}

/// A membership change asked of a leader: the configuration wanted next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The voters of the next configuration.
    pub voters: std::collections::BTreeSet<NodeId>,
    /// The nodes that receive the log and vote in nothing.
    pub learners: std::collections::BTreeSet<NodeId>,
    /// Its quorums (`None`: majorities).
    pub quorums: Option<crate::paxos::quorum::Quorums>,
    /// How to reach the members added at run time.
    pub contacts: std::collections::BTreeMap<NodeId, crate::paxos::config::Contact>,
    /// Change even if fewer of its voters are reachable than it needs to
    /// choose (the strict check off).
    pub force: bool,
}

impl Proposer {
    /// Propose the change `change` (the operator's `synod member`, or a
    /// scripted scenario). Refused, with the reason, unless this node leads,
    /// an entry of its own ballot is chosen (the trap Ongaro posted in
    /// 2015), no other change is pending, the next configuration is valid
    /// after the newest, and (unless forced) enough of its voters are
    /// reachable to choose. Returns the slot it was proposed in: it governs
    /// from α slots after it is chosen.
    pub fn reconfigure(&mut self, change: Change, out: &mut Outbox) -> Result<Slot, String> {
        if self.mode != Mode::Leader {
            let hint = self.leader_hint.filter(|&l| l != self.id);
            return Err(match hint {
                Some(l) => format!("node {} does not lead; node {l} does", self.id),
                None => format!("node {} does not lead, and knows no leader", self.id),
            });
        }
        if self.first_unchosen <= self.reign_from {
            if self.next_slot == self.reign_from && self.next_slot < self.limit() {
                // Nothing of this ballot is even proposed: a no-op will do.
                let slot = self.next_slot;
                self.next_slot += 1;
                self.propose(slot, Value::Noop, out);
            }
            return Err(format!(
                "the leader has not yet chosen an entry of its own ballot (slot {} is not chosen); retry",
                self.reign_from
            ));
        }
        if let Some((at, c)) = self.configs.pending(self.first_unchosen) {
            return Err(format!(
                "configuration {} takes effect at slot {at}; one change at a time",
                c.number
            ));
        }
        let proposed = self
            .in_flight
            .values()
            .map(|f| &f.value)
            .chain(self.must.values().map(|(_, v)| v))
            .any(|v| matches!(v, Value::Reconfig(_)));
        if proposed {
            return Err(
                "another change is proposed and not yet chosen; one change at a time".into(),
            );
        }
        let latest = self.configs.latest();
        let next = crate::paxos::config::Config {
            number: latest.number + 1,
            voters: change.voters,
            learners: change.learners,
            quorums: change.quorums,
            contacts: change.contacts,
        };
        if let Some(why) = next.problem_after(latest) {
            return Err(why);
        }
        let reachable = next
            .voters
            .iter()
            .filter(|&&v| v == self.id || self.reachable.contains(&v))
            .count();
        let needed = next.quorums().phase2.max(next.quorums().phase1);
        if reachable < needed && !change.force && self.rules.holds(Rule::Strict) {
            return Err(format!(
                "only {reachable} of the new configuration's {} voters are reachable, and it needs {needed} to choose (--force to change anyway)",
                next.voters.len()
            ));
        }
        if self.next_slot < self.refill_to || self.next_slot >= self.limit() {
            return Err(
                "the leader is still proposing again what its election found; retry".into(),
            );
        }
        let slot = self.next_slot;
        self.next_slot += 1;
        self.propose(slot, Value::Reconfig(Box::new(next)), out);
        Ok(slot)
    }
}
