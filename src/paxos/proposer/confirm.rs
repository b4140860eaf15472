//! Confirmation by a majority: heartbeats, check-quorum and read-index.
//!
//! Every heartbeat round has a sequence number. An acceptor confirms a round
//! (HeartbeatAck) only if it has promised no ballot above the leader's, and an
//! ack counts only for the leader's current ballot, so no ack from an earlier
//! term (or an earlier process of this node, whose ballots were all lower) can
//! confirm this one.
//!
//! Read-index, safe without clocks: a read waits for a round sent after it
//! arrived to be confirmed by a majority. Any later leader needs promises from a
//! majority, which intersects that one, so nothing can have been chosen by a
//! newer leader before the read arrived; the replica then answers once it has
//! applied every slot proposed before the read arrived.

use super::{Mode, Proposer};
use crate::paxos::ballot::{Ballot, NodeId, Slot};
use crate::paxos::message::{Command, Message, Notice, Outbox};
use crate::paxos::rules::Rule;

/// A read waiting for leadership to be confirmed.
#[derive(Clone, Debug)]
pub(super) struct PendingRead {
    pub(super) cmd: Command,
    /// Every slot below this was proposed (or known chosen) when it arrived.
    index: Slot,
    /// The heartbeat round that must be confirmed by a majority.
    round: u64,
}

impl Proposer {
    /// A read arrived at the leader.
    pub(super) fn read(&mut self, cmd: Command, out: &mut Outbox) {
        // Past every slot proposed, and every slot the election found
        // accepted but not yet proposed again (held back until its
        // configuration is known): any of those may hold a write chosen
        // before the read arrived.
        let index = self.next_slot.max(self.refill_to);
        if !self.rules.holds(Rule::Confirm) {
            // Broken: answer from the local state at once, as if still
            // leading: from what this node knows chosen, not waiting for
            // what it proposed (a local read, a lease without the lease).
            out.notify(Notice::Read {
                cmd,
                index: self.first_unchosen,
            });
            return;
        }
        // It may be served at `next_slot` once a round sent after now is
        // confirmed by a majority.
        let round = self.hb_seq + 1;
        self.reads.push(PendingRead { cmd, index, round });
        if self.confirmed() == self.hb_seq {
            // No round in flight: start one now rather than at the next tick.
            self.heartbeat(out);
        }
    }

    /// An acceptor confirmed heartbeat round `seq` of `ballot`.
    pub(super) fn on_ack(&mut self, from: NodeId, ballot: Ballot, seq: u64, out: &mut Outbox) {
        let current = ballot == self.campaign.ballot() || !self.rules.holds(Rule::Fresh);
        if self.mode != Mode::Leader || !current || !self.confirmer(from) {
            // An ack for an earlier term, a stranger's, or one we no longer need.
            return;
        }
        let a = self.acked.entry(from).or_insert(0);
        *a = (*a).max(seq);
        let confirmed = self.confirmed();
        while self.rounds.front().is_some_and(|&(r, _)| r <= confirmed) {
            let (_, sent) = self.rounds.pop_front().expect("checked");
            self.confirmed_at = sent;
        }
        self.serve_reads(out);
    }

    /// True if no round sent in a whole election timeout was confirmed by a
    /// majority (check-quorum).
    /// With `confirm` broken a leader never asks: it leads until it hears
    /// of a higher ballot, as it answers reads without asking.
    pub(super) fn cut_off(&self) -> bool {
        self.rules.holds(Rule::Confirm)
            && self.ticks - self.confirmed_at >= u64::from(self.cfg.election_ticks.1)
    }

    /// The highest heartbeat round a phase-2 quorum of acceptors confirmed
    /// (a majority, unless the cluster file chose flexible quorums): it meets
    /// every phase-1 quorum, so no newer leader was elected unseen.
    ///
    /// While configurations change, a round must be confirmed by a phase-2
    /// quorum of each that governs a slot not yet known chosen: a newer
    /// leader proposing in any of them had promises from its phase-1 quorum.
    pub(super) fn confirmed(&self) -> u64 {
        let mut least = u64::MAX;
        for (_, c) in self.configs.from(self.first_unchosen) {
            let mut seqs: Vec<u64> = c
                .voters
                .iter()
                .filter_map(|v| self.acked.get(v).copied())
                .collect();
            if !self.rules.holds(Rule::Members) {
                seqs = self.acked.values().copied().collect();
            }
            seqs.sort_unstable_by(|a, b| b.cmp(a));
            let q2 = c.quorums().phase2.max(1);
            least = least.min(seqs.get(q2 - 1).copied().unwrap_or(0));
        }
        least
    }

    /// Hand every read whose round a majority confirmed to the local replica,
    /// which answers it once it has applied everything below its index. Reads
    /// still waiting get a fresh round as soon as the current one is confirmed.
    pub(super) fn serve_reads(&mut self, out: &mut Outbox) {
        if self.reads.is_empty() {
            return;
        }
        if !self.settled() {
            return;
        }
        let confirmed = self.confirmed();
        let (ready, waiting): (Vec<PendingRead>, Vec<PendingRead>) =
            self.reads.drain(..).partition(|r| r.round <= confirmed);
        self.reads = waiting;
        for r in ready {
            out.notify(Notice::Read {
                cmd: r.cmd,
                // Slots found since it arrived (phase 1 among a later
                // configuration's voters) may hold writes chosen before it.
                index: r.index.max(self.refill_to),
            });
        }
        if !self.reads.is_empty() && confirmed == self.hb_seq {
            self.heartbeat(out);
        }
    }

    /// True once this leader knows every slot a write may have been chosen
    /// in before it: what its election found is proposed again and chosen,
    /// and it holds promises in every configuration it knows from there. A
    /// slot past those could only be chosen by a leader that knew its
    /// configuration, so every slot up to α before it was chosen, and phase
    /// 1 would have found them.
    pub(super) fn settled(&self) -> bool {
        if !self.rules.holds(Rule::Reconfig) {
            return true;
        }
        let known = self.configs.known_through(self.first_unchosen);
        self.first_unchosen >= self.refill_to
            && self.extending.is_none()
            && self
                .configs
                .from(self.first_unchosen)
                .take_while(|(start, _)| *start <= known)
                .all(|(_, c)| self.prepared.contains(&c.number))
    }

    pub(super) fn heartbeat(&mut self, out: &mut Outbox) {
        self.hb_seq += 1;
        self.rounds.push_back((self.hb_seq, self.ticks));
        // Every node a kept configuration names: a node removed keeps hearing
        // how far the log is, catches up to where it stops voting, and knows.
        for n in self.configs.all_nodes() {
            out.send(
                self.id,
                n,
                Message::Heartbeat {
                    ballot: self.campaign.ballot(),
                    first_unchosen: self.first_unchosen,
                    seq: self.hb_seq,
                },
            );
        }
    }
}
