//! Elections: pre-vote, phase 1 for the whole log, taking over, stepping down.
//!
//! A node whose election timeout ran out first asks every node for a pre-vote
//! at the ballot it would use. A node grants it only if it has not heard a live
//! leader's heartbeat for the shortest election timeout itself; the candidate
//! raises its round (durably, see `Campaign::prepare`) only with a majority's
//! grant. So a node that cannot reach the leader, but can reach followers who
//! still hear it, never deposes a healthy leader: its round stays where it was.
//!
//! Two facts let an election start before any timeout runs out, each without
//! deposing anyone (the pre-vote still decides):
//! - A leader's process died: the shell saw its end of the link closed
//!   (`PeerGone`; the kernel closes a dead process's sockets at once). Every
//!   follower stops counting it as heard, so each grants a pre-vote, and the
//!   one member next after it in id order (skipping peers known gone) asks at
//!   once; the others keep their timeouts in case that one is gone too.
//! - Nothing has happened yet: a process that has neither heard a leader nor
//!   tried an election, and is the lowest id, asks as soon as a majority is
//!   reachable (`PeerUp`), so a cluster started together elects without
//!   waiting out a timeout. Restarted into a cluster that has a leader, it is
//!   refused by nodes that hear that leader, and follows it.

use std::collections::BTreeSet;

use super::{draw, Mode, Proposer};
use crate::paxos::ballot::{Ballot, NodeId, Slot};
use crate::paxos::campaign::Must;
use crate::paxos::message::{Message, Notice, Outbox, Outcome, Reply};
use crate::paxos::rules::Rule;

impl Proposer {
    /// The election timeout ran out.
    pub(super) fn timed_out(&mut self, out: &mut Outbox) {
        self.first = false;
        self.elapsed = 0;
        self.timeout = self.next_timeout();
        self.leader_hint = None;
        if !self.is_voter() {
            // A learner, or a node removed: it never stands.
            return;
        }
        if !self.rules.holds(Rule::Prevote) {
            self.start_election(out);
            return;
        }
        self.mode = Mode::PreCandidate;
        let ballot = Ballot::new(self.campaign.next_round(), self.id);
        self.prevote = Some((ballot, BTreeSet::from([self.id])));
        for &n in &self.electorate().voters {
            if n != self.id {
                out.send(self.id, n, Message::PreVote { ballot });
            }
        }
        self.count_prevotes(out);
    }

    /// The shell reached `node`'s process.
    pub(super) fn peer_up(&mut self, node: NodeId, out: &mut Outbox) {
        // Any node: a change checks how many of its voters are reachable.
        self.reachable.insert(node);
        self.gone.remove(&node);
        if !self.member(node) {
            return;
        }
        let voters = &self.electorate().voters;
        let lowest = voters.iter().next() == Some(&self.id);
        let reachable = self.reachable.intersection(voters).count();
        if self.first
            && lowest
            && self.mode == Mode::Follower
            && reachable + 1 >= self.electorate().quorums().phase1
            && self.cfg.fast.fast_election
            && self.rules.holds(Rule::Prevote)
        {
            self.timed_out(out);
        }
    }

    /// `node`'s process is gone: if it led, its successor asks for a pre-vote now.
    pub(super) fn peer_gone(&mut self, node: NodeId, out: &mut Outbox) {
        self.reachable.remove(&node);
        self.gone.insert(node);
        if self.mode != Mode::Follower || self.leader_hint != Some(node) {
            return;
        }
        // It cannot lead any more: this node grants pre-votes from now on.
        self.heard_leader = None;
        self.leader_hint = None;
        let fast = self.cfg.fast.fast_election && self.rules.holds(Rule::Prevote);
        if fast && self.successor(node) == Some(self.id) {
            // A peer may see our request before it sees the leader's link
            // close, and refuse: ask again soon (2, 4, 8, ... ticks, up to the
            // shortest timeout) rather than a whole timeout later.
            self.hurry = 2;
            self.timed_out(out);
        }
    }

    /// A fresh election timeout: drawn at random, shortened while hurrying.
    fn next_timeout(&mut self) -> u32 {
        let drawn = draw(&mut self.rng, self.cfg.election_ticks);
        if self.hurry == 0 {
            return drawn;
        }
        let now = self.hurry.min(drawn);
        self.hurry = if now >= self.cfg.election_ticks.0 {
            0
        } else {
            now.saturating_mul(2)
        };
        now
    }

    /// The member after `gone` in id order (wrapping), skipping peers this
    /// node cannot reach.
    fn successor(&self, gone: NodeId) -> Option<NodeId> {
        let ids: Vec<NodeId> = self.electorate().voters.iter().copied().collect();
        let after = ids.iter().filter(|&&n| n > gone);
        let before = ids.iter().filter(|&&n| n < gone);
        after
            .chain(before)
            .copied()
            .find(|&n| n == self.id || self.reachable.contains(&n))
    }

    /// Start phase 1 now, without a pre-vote: an operator's explicit request
    /// (raft-rs calls it `campaign`), used by scripted scenarios.
    pub fn campaign(&mut self, out: &mut Outbox) {
        self.elapsed = 0;
        self.timeout = self.next_timeout();
        self.leader_hint = None;
        self.start_election(out);
    }

    /// Someone asks for a pre-vote at `ballot`.
    pub(super) fn on_prevote(&mut self, from: NodeId, ballot: Ballot, out: &mut Outbox) {
        // A live leader never grants; a follower grants only once it has not
        // heard a leader for the shortest election timeout. A pre-vote changes
        // nothing here: no promise, no round.
        let quiet = self
            .heard_leader
            .is_none_or(|t| self.ticks.saturating_sub(t) >= u64::from(self.cfg.election_ticks.0));
        // Nor for a node that does not vote where this node's log stands
        // (removed by a change it has not learned yet).
        let granted = self.mode != Mode::Leader && quiet && self.member(from);
        out.send(self.id, from, Message::PreVoteReply { ballot, granted });
    }

    pub(super) fn on_prevote_reply(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        granted: bool,
        out: &mut Outbox,
    ) {
        if !granted || self.mode != Mode::PreCandidate || !self.member(from) {
            return;
        }
        if let Some((asked, grants)) = &mut self.prevote {
            if *asked == ballot {
                grants.insert(from);
            }
        }
        self.count_prevotes(out);
    }

    fn count_prevotes(&mut self, out: &mut Outbox) {
        let q1 = self.electorate().quorums().phase1;
        let enough = self.prevote.as_ref().is_some_and(|(_, g)| g.len() >= q1);
        if enough {
            self.start_election(out);
        }
    }

    fn start_election(&mut self, out: &mut Outbox) {
        if !self.is_voter() {
            return;
        }
        self.mode = Mode::Candidate;
        self.prevote = None;
        let round = self.campaign.next_round();
        // Phase 1 among the voters of the first unchosen slot's
        // configuration; a later one gets its own once known (`moved_on`).
        let c = self.electorate();
        let (voters, q1) = (c.voters.iter().copied().collect(), c.quorums().phase1);
        self.campaign.set_acceptors(voters, q1);
        self.campaign.prepare(round, self.first_unchosen, out);
    }

    /// Phase 1 is done: `must` holds what P2c forces per slot, and every slot
    /// below `floor` is chosen (compacted into a peer's snapshot): nothing is
    /// proposed there, whatever this node knows of it.
    pub(super) fn become_leader(&mut self, must: Must, floor: Slot, out: &mut Outbox) {
        self.mode = Mode::Leader;
        self.hurry = 0;
        self.leader_hint = Some(self.id);
        self.in_flight.clear();
        let reported = must.keys().next_back().map_or(0, |s| s.saturating_add(1));
        let known = self
            .chosen_ahead
            .iter()
            .next_back()
            .map_or(0, |s| s.saturating_add(1));
        let first = self.first_unchosen.max(floor);
        if floor > self.first_unchosen {
            // A peer compacted slots this node never learned: its learner
            // must fetch them (a snapshot) before this leader knows the
            // configurations from there on, so tell it how far the log is.
            out.notify(Notice::LeaderSeen {
                ballot: self.campaign.ballot(),
                first_unchosen: floor,
            });
        }
        // P2c per slot: the highest-ballot value reported, or a no-op for a
        // hole, proposed in order as far as the configurations are known.
        self.next_slot = first;
        self.reign_from = first;
        self.refill_to = first.max(reported).max(known);
        self.must = must;
        self.prepared.clear();
        self.prepared
            .insert(self.configs.at(self.first_unchosen).number);
        self.extending = None;
        self.hb_elapsed = 0;
        self.acked.clear();
        self.rounds.clear();
        self.confirmed_at = self.ticks;
        self.heartbeat(out);
        self.moved_on(out);
    }

    pub(super) fn step_down(&mut self, hint: Option<NodeId>, out: &mut Outbox) {
        self.mode = Mode::Follower;
        self.prevote = None;
        self.elapsed = 0;
        self.timeout = self.next_timeout();
        self.leader_hint = hint;
        self.in_flight.clear();
        self.must.clear();
        self.prepared.clear();
        self.extending = None;
        // Commands never proposed can safely be sent elsewhere. Those in flight
        // may still be chosen: their clients will retry with the same seq.
        let reads = self.reads.drain(..).map(|r| r.cmd);
        for cmd in self.queue.drain(..).chain(reads) {
            out.replies.push(Reply {
                client: cmd.client,
                seq: cmd.seq,
                outcome: Outcome::NotLeader { leader: hint },
            });
        }
    }
}
