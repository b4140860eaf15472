//! Multi-Paxos: one leader proposes for a whole log.
//!
//! A node becomes leader by running phase 1 once, for every slot from its first
//! unchosen slot on (Paxos Made Simple §3). The promises report what a majority
//! accepted in those slots; the new leader re-proposes, slot by slot, the value of
//! the highest ballot reported (P2c per slot) and fills holes with no-ops. While it
//! leads, a command needs phase 2 only.
//!
//! Time is counted in ticks; the shell decides how long a tick is.
//! - A leader sends a heartbeat every `heartbeat_ticks`. Acceptors confirm it only
//!   if they promised nothing higher; a leader that goes a full election timeout
//!   without confirmations from a majority steps down, so a leader cut off in a
//!   minority stops accepting commands.
//! - A follower that hears no leader for a randomized election timeout prepares a
//!   higher ballot; a leader or candidate that sees a higher ballot steps down.
//!
//! Commands that wait are packed into one slot (bounded by count and bytes), and
//! up to `window` slots are in flight at once. Accepts that stay unanswered are
//! sent again, so lost messages delay a slot but never stall it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use super::ballot::{Ballot, NodeId, Slot};
use super::message::{Command, Message, Outbox, Outcome, Reply, Value};
use super::proposer::Proposer;
use super::quorum::majority;
use super::rules::Rules;
use crate::rng::Rng;

/// Timing and batching of a leader, in ticks and counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderConfig {
    /// Ticks between heartbeats.
    pub heartbeat_ticks: u32,
    /// Election timeout, drawn uniformly from this range (ticks) each time.
    pub election_ticks: (u32, u32),
    /// Slots in flight at once.
    pub window: usize,
    /// Commands in one slot at most.
    pub max_batch: usize,
    /// Bytes of commands in one slot at most.
    pub max_batch_bytes: usize,
    /// Serve reads without a log write (read-index): confirm leadership with one
    /// heartbeat round to a majority, then read at the commit point.
    pub read_index: bool,
}

impl Default for LeaderConfig {
    fn default() -> Self {
        LeaderConfig {
            heartbeat_ticks: 5,
            election_ticks: (15, 30),
            window: 2,
            max_batch: 512,
            max_batch_bytes: 256 * 1024,
            read_index: true,
        }
    }
}

/// What a node's proposer is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Following whoever leads; counting ticks towards an election.
    Follower,
    /// Phase 1 under way for its own ballot.
    Candidate,
    /// Phase 1 done for every slot: proposing with phase 2 alone.
    Leader,
}

impl Mode {
    /// The word `synod status` prints.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Follower => "follower",
            Mode::Candidate => "candidate",
            Mode::Leader => "leader",
        }
    }
}

#[derive(Clone, Debug)]
struct Flight {
    value: Value,
    age: u32,
}

/// The proposer role of a Multi-Paxos node.
#[derive(Clone, Debug)]
pub struct Leader {
    id: NodeId,
    nodes: Vec<NodeId>,
    quorum: usize,
    cfg: LeaderConfig,
    rng: Rng,
    proposer: Proposer,
    mode: Mode,
    elapsed: u32,
    timeout: u32,
    leader_hint: Option<NodeId>,
    first_unchosen: Slot,
    chosen_ahead: BTreeSet<Slot>,
    next_slot: Slot,
    in_flight: BTreeMap<Slot, Flight>,
    queue: VecDeque<Command>,
    hb_elapsed: u32,
    hb_seq: u64,
    /// The highest heartbeat round each acceptor confirmed at our ballot.
    acked: BTreeMap<NodeId, u64>,
    /// Ticks counted since this proposer was made.
    ticks: u64,
    /// Heartbeat rounds sent and not yet confirmed: (round, tick sent).
    rounds: VecDeque<(u64, u64)>,
    /// When the latest round a majority confirmed was sent.
    confirmed_at: u64,
    /// Reads waiting for a heartbeat round sent after they arrived.
    reads: Vec<PendingRead>,
}

/// A read waiting for leadership to be confirmed.
#[derive(Clone, Debug)]
struct PendingRead {
    cmd: Command,
    /// Every slot below this was proposed (or known chosen) when it arrived.
    index: Slot,
    /// The heartbeat round that must be confirmed by a majority.
    round: u64,
}

impl Leader {
    /// The proposer of node `id` in the cluster `nodes`; `seed` drives its election
    /// jitter (the shell picks it; the same seed gives the same timeouts).
    pub fn new(id: NodeId, nodes: Vec<NodeId>, rules: Rules, cfg: LeaderConfig, seed: u64) -> Self {
        let quorum = majority(nodes.len());
        let mut rng = Rng::new(seed);
        let timeout = draw(&mut rng, cfg.election_ticks);
        Leader {
            id,
            proposer: Proposer::new(id, nodes.clone(), quorum, rules),
            nodes,
            quorum,
            cfg,
            rng,
            mode: Mode::Follower,
            elapsed: 0,
            timeout,
            leader_hint: None,
            first_unchosen: 0,
            chosen_ahead: BTreeSet::new(),
            next_slot: 0,
            in_flight: BTreeMap::new(),
            queue: VecDeque::new(),
            hb_elapsed: 0,
            hb_seq: 0,
            acked: BTreeMap::new(),
            ticks: 0,
            rounds: VecDeque::new(),
            confirmed_at: 0,
            reads: Vec::new(),
        }
    }

    /// Follower, candidate or leader.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The ballot of this node's latest attempt to lead.
    pub fn ballot(&self) -> Ballot {
        self.proposer.ballot()
    }

    /// Who this node believes leads (itself included).
    pub fn leader_hint(&self) -> Option<NodeId> {
        self.leader_hint
    }

    /// The first slot this node does not know chosen.
    pub fn first_unchosen(&self) -> Slot {
        self.first_unchosen
    }

    /// Slots proposed and not yet known chosen.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Commands waiting for room in the window.
    pub fn waiting(&self) -> usize {
        self.queue.len()
    }

    /// Handle one message for the proposer role.
    pub fn handle(&mut self, from: NodeId, msg: Message, out: &mut Outbox) {
        match msg {
            Message::Request(cmd)
                if self.mode == Mode::Leader && self.cfg.read_index && cmd.op.is_read() =>
            {
                // Read-index: it may be served at `next_slot` once a heartbeat
                // round sent after now is confirmed by a majority.
                let round = self.hb_seq + 1;
                self.reads.push(PendingRead {
                    cmd,
                    index: self.next_slot,
                    round,
                });
                if self.confirmed() == self.hb_seq {
                    // No round in flight: start one now rather than at the next tick.
                    self.heartbeat(out);
                }
            }
            Message::Request(cmd) if self.mode == Mode::Leader => {
                self.queue.push_back(cmd);
                self.propose_waiting(out);
            }
            Message::Request(cmd) => out.replies.push(Reply {
                client: cmd.client,
                seq: cmd.seq,
                outcome: Outcome::NotLeader {
                    leader: self.leader_hint.filter(|&l| l != self.id),
                },
            }),
            Message::Promise { ballot, accepted } if self.mode == Mode::Candidate => {
                if let Some(must) = self.proposer.on_promise(from, ballot, accepted) {
                    self.become_leader(must, out);
                }
            }
            Message::Nack { ballot, promised } => {
                // Someone promised a higher ballot: this attempt (or reign) is over.
                let preempted = self.proposer.on_nack(ballot, promised);
                if preempted && self.mode != Mode::Follower {
                    self.step_down(None, out);
                }
            }
            Message::HeartbeatAck { ballot, seq }
                if self.mode == Mode::Leader && ballot == self.proposer.ballot() =>
            {
                let a = self.acked.entry(from).or_insert(0);
                *a = (*a).max(seq);
                let confirmed = self.confirmed();
                while self.rounds.front().is_some_and(|&(r, _)| r <= confirmed) {
                    let (_, sent) = self.rounds.pop_front().expect("checked");
                    self.confirmed_at = sent;
                }
                self.serve_reads(out);
            }
            Message::LeaderSeen { ballot, .. } if ballot.node != self.id => {
                // Our acceptor confirmed another leader's heartbeat.
                self.proposer.observe(ballot);
                if self.mode != Mode::Follower && ballot > self.proposer.ballot() {
                    self.step_down(Some(ballot.node), out);
                }
                if self.mode == Mode::Follower {
                    self.leader_hint = Some(ballot.node);
                    self.elapsed = 0;
                }
            }
            Message::Promised { ballot } if ballot.node != self.id => {
                // Our acceptor promised a rival: give the rival time to win.
                self.proposer.observe(ballot);
                if self.mode != Mode::Follower && ballot > self.proposer.ballot() {
                    self.step_down(None, out);
                }
                self.elapsed = 0;
            }
            Message::Committed { slot } => self.committed(slot, out),
            // Stale promises and acks, our own notices: nothing to do.
            _ => {}
        }
    }

    /// One tick of logical time.
    pub fn tick(&mut self, out: &mut Outbox) {
        self.ticks += 1;
        match self.mode {
            Mode::Follower | Mode::Candidate => {
                self.elapsed += 1;
                if self.elapsed >= self.timeout {
                    self.start_election(out);
                }
            }
            Mode::Leader => {
                self.hb_elapsed += 1;
                for f in self.in_flight.values_mut() {
                    f.age += 1;
                }
                if self.hb_elapsed < self.cfg.heartbeat_ticks {
                    return;
                }
                self.hb_elapsed = 0;
                if self.ticks - self.confirmed_at >= self.cfg.election_ticks.1 as u64 {
                    // No round sent in a whole election timeout was confirmed
                    // by a majority: we may be cut off, so stop taking commands.
                    self.step_down(None, out);
                    return;
                }
                self.heartbeat(out);
                self.resend(out);
            }
        }
    }

    fn start_election(&mut self, out: &mut Outbox) {
        self.mode = Mode::Candidate;
        self.elapsed = 0;
        self.timeout = draw(&mut self.rng, self.cfg.election_ticks);
        self.leader_hint = None;
        let round = self.proposer.next_round();
        self.proposer.prepare(round, self.first_unchosen, out);
    }

    fn become_leader(&mut self, mut must: BTreeMap<Slot, Value>, out: &mut Outbox) {
        self.mode = Mode::Leader;
        self.leader_hint = Some(self.id);
        self.in_flight.clear();
        let reported = must.keys().next_back().map_or(0, |s| s + 1);
        let known = self.chosen_ahead.iter().next_back().map_or(0, |s| s + 1);
        self.next_slot = self.first_unchosen.max(reported).max(known);
        // P2c per slot: the highest-ballot value reported, or a no-op for a hole.
        for slot in self.first_unchosen..self.next_slot {
            if !self.chosen_ahead.contains(&slot) {
                let value = must.remove(&slot).unwrap_or(Value::Noop);
                self.propose(slot, value, out);
            }
        }
        self.hb_elapsed = 0;
        self.acked.clear();
        self.rounds.clear();
        self.confirmed_at = self.ticks;
        self.heartbeat(out);
        self.propose_waiting(out);
    }

    fn step_down(&mut self, hint: Option<NodeId>, out: &mut Outbox) {
        self.mode = Mode::Follower;
        self.elapsed = 0;
        self.timeout = draw(&mut self.rng, self.cfg.election_ticks);
        self.leader_hint = hint;
        self.in_flight.clear();
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

    /// The highest heartbeat round a majority of acceptors confirmed.
    fn confirmed(&self) -> u64 {
        let mut seqs: Vec<u64> = self.acked.values().copied().collect();
        seqs.sort_unstable_by(|a, b| b.cmp(a));
        seqs.get(self.quorum - 1).copied().unwrap_or(0)
    }

    /// Hand every read whose round a majority confirmed to the local replica,
    /// which answers it once it has applied everything below its index. Reads
    /// still waiting get a fresh round as soon as the current one is confirmed.
    fn serve_reads(&mut self, out: &mut Outbox) {
        if self.reads.is_empty() {
            return;
        }
        let confirmed = self.confirmed();
        let (ready, waiting): (Vec<PendingRead>, Vec<PendingRead>) =
            self.reads.drain(..).partition(|r| r.round <= confirmed);
        self.reads = waiting;
        for r in ready {
            out.send(
                self.id,
                self.id,
                Message::Read {
                    cmd: r.cmd,
                    index: r.index,
                },
            );
        }
        if !self.reads.is_empty() && confirmed == self.hb_seq {
            self.heartbeat(out);
        }
    }

    fn heartbeat(&mut self, out: &mut Outbox) {
        self.hb_seq += 1;
        self.rounds.push_back((self.hb_seq, self.ticks));
        for &n in &self.nodes {
            out.send(
                self.id,
                n,
                Message::Heartbeat {
                    ballot: self.proposer.ballot(),
                    commit: self.first_unchosen,
                    seq: self.hb_seq,
                },
            );
        }
    }

    fn resend(&mut self, out: &mut Outbox) {
        let stale = 2 * self.cfg.heartbeat_ticks;
        for (&slot, f) in self.in_flight.iter_mut() {
            if f.age >= stale {
                f.age = 0;
                self.proposer.accept(slot, f.value.clone(), out);
            }
        }
    }

    fn propose(&mut self, slot: Slot, value: Value, out: &mut Outbox) {
        self.proposer.accept(slot, value.clone(), out);
        self.in_flight.insert(slot, Flight { value, age: 0 });
    }

    fn propose_waiting(&mut self, out: &mut Outbox) {
        while self.in_flight.len() < self.cfg.window && !self.queue.is_empty() {
            let mut batch = Vec::new();
            let mut bytes = 0;
            while let Some(cmd) = self.queue.front() {
                let size = cmd.op.size() + 16;
                if batch.len() >= self.cfg.max_batch
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

    fn committed(&mut self, slot: Slot, out: &mut Outbox) {
        self.in_flight.remove(&slot);
        if slot >= self.first_unchosen {
            self.chosen_ahead.insert(slot);
        }
        while self.chosen_ahead.remove(&self.first_unchosen) {
            self.first_unchosen += 1;
        }
        self.next_slot = self.next_slot.max(slot + 1);
        if self.mode == Mode::Leader {
            self.propose_waiting(out);
        }
    }
}

fn draw(rng: &mut Rng, (lo, hi): (u32, u32)) -> u32 {
    rng.range(lo as u64, hi as u64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::Op;
    use crate::paxos::message::PValue;

    fn cfg() -> LeaderConfig {
        LeaderConfig {
            heartbeat_ticks: 2,
            election_ticks: (4, 4),
            window: 2,
            max_batch: 2,
            max_batch_bytes: 1 << 20,
            read_index: true,
        }
    }

    fn cmd(seq: u64) -> Command {
        Command {
            client: 7,
            seq,
            op: Op::Put {
                key: "k".into(),
                value: seq.to_string(),
            },
        }
    }

    fn read(seq: u64) -> Command {
        Command {
            client: 8,
            seq,
            op: Op::Get { key: "k".into() },
        }
    }

    #[test]
    fn a_read_waits_for_a_majority_to_confirm_a_round_sent_after_it() {
        let mut l = Leader::new(1, vec![1, 2, 3], Rules::ALL, cfg(), 1);
        elect(&mut l, vec![]);
        let mut out = Outbox::new();
        l.handle(1, Message::Request(cmd(1)), &mut out);
        // The election's round is confirmed: no round is in flight.
        let sent = l.hb_seq;
        for n in [2, 3] {
            ack(&mut l, n, sent, &mut out);
        }
        let mut out = Outbox::new();
        l.handle(9, Message::Request(read(1)), &mut out);
        assert!(
            out.send
                .iter()
                .any(|e| matches!(e.msg, Message::Heartbeat { seq, .. } if seq == sent + 1)),
            "a round starts at once"
        );
        assert!(
            !out.send.iter().any(|e| e.msg.kind() == "Read"),
            "the older round does not count"
        );
        let mut out = Outbox::new();
        ack(&mut l, 1, sent + 1, &mut out);
        assert!(
            !out.send.iter().any(|e| e.msg.kind() == "Read"),
            "one ack is not a majority"
        );
        ack(&mut l, 3, sent + 1, &mut out);
        // Served at the slot after everything proposed so far (the write in slot 0).
        assert!(
            out.send.iter().any(|e| e.msg
                == Message::Read {
                    cmd: read(1),
                    index: 1
                }),
            "{:?}",
            out.send
        );
        // The read never enters the log.
        assert_eq!(l.in_flight(), 1);
    }

    #[test]
    fn a_leader_serving_many_reads_does_not_think_itself_cut_off() {
        // Rounds started on demand for reads, each confirmed at once, must count
        // as contact with a majority (check-quorum), however many there are.
        let mut l = Leader::new(1, vec![1, 2, 3], Rules::ALL, cfg(), 1);
        elect(&mut l, vec![]);
        for i in 0..100 {
            let mut out = Outbox::new();
            l.handle(9, Message::Request(read(i)), &mut out);
            l.tick(&mut out);
            let seq = l.hb_seq;
            for n in [2, 3] {
                ack(&mut l, n, seq, &mut out);
            }
            assert_eq!(l.mode(), Mode::Leader, "stepped down after {i} ticks");
        }
    }

    #[test]
    fn pending_reads_are_refused_when_the_leader_steps_down() {
        let mut l = Leader::new(1, vec![1, 2, 3], Rules::ALL, cfg(), 1);
        elect(&mut l, vec![]);
        let mut out = Outbox::new();
        l.handle(9, Message::Request(read(1)), &mut out);
        let mut out = Outbox::new();
        l.handle(
            1,
            Message::Promised {
                ballot: Ballot::new(9, 2),
            },
            &mut out,
        );
        assert_eq!(out.replies.len(), 1);
        assert!(matches!(out.replies[0].outcome, Outcome::NotLeader { .. }));
    }

    /// Acceptor `from` confirms heartbeat round `seq` of `l`'s ballot.
    fn ack(l: &mut Leader, from: NodeId, seq: u64, out: &mut Outbox) {
        let ballot = l.ballot();
        l.handle(from, Message::HeartbeatAck { ballot, seq }, out);
    }

    fn elect(l: &mut Leader, accepted: Vec<PValue>) -> Outbox {
        let mut out = Outbox::new();
        for _ in 0..4 {
            l.tick(&mut out);
        }
        assert_eq!(l.mode(), Mode::Candidate);
        let ballot = l.ballot();
        let mut out = Outbox::new();
        l.handle(2, Message::Promise { ballot, accepted }, &mut out);
        l.handle(
            3,
            Message::Promise {
                ballot,
                accepted: vec![],
            },
            &mut out,
        );
        assert_eq!(l.mode(), Mode::Leader);
        out
    }

    fn accepts(out: &Outbox) -> Vec<(Slot, Value)> {
        let mut v: Vec<(Slot, Value)> = out
            .send
            .iter()
            .filter(|e| e.to == 2)
            .filter_map(|e| match &e.msg {
                Message::Accept { slot, value, .. } => Some((*slot, value.clone())),
                _ => None,
            })
            .collect();
        v.dedup();
        v
    }

    #[test]
    fn a_new_leader_reproposes_reported_values_and_fills_holes() {
        // Paxos Made Simple §3: the new leader runs phase 2 for reported slots and
        // proposes no-ops for the gaps.
        let mut l = Leader::new(1, vec![1, 2, 3], Rules::ALL, cfg(), 1);
        let reported = vec![PValue {
            slot: 2,
            ballot: Ballot::new(1, 2),
            value: Value::Text("x".into()),
        }];
        let out = elect(&mut l, reported);
        assert_eq!(
            accepts(&out),
            vec![
                (0, Value::Noop),
                (1, Value::Noop),
                (2, Value::Text("x".into()))
            ]
        );
    }

    #[test]
    fn commands_are_batched_within_the_window() {
        let mut l = Leader::new(1, vec![1, 2, 3], Rules::ALL, cfg(), 1);
        elect(&mut l, vec![]);
        let mut out = Outbox::new();
        for seq in 1..=7 {
            l.handle(1, Message::Request(cmd(seq)), &mut out);
        }
        // Window 2: slots 0 and 1 each take one command at once; the rest wait.
        assert_eq!(l.in_flight(), 2);
        assert_eq!(l.waiting(), 5);
        let mut out = Outbox::new();
        l.handle(1, Message::Committed { slot: 0 }, &mut out);
        // One slot freed: the next batch carries max_batch = 2 commands.
        assert_eq!(accepts(&out), vec![(2, Value::Batch(vec![cmd(3), cmd(4)]))]);
    }

    #[test]
    fn a_follower_redirects_clients_to_the_leader_it_heard() {
        let mut l = Leader::new(3, vec![1, 2, 3], Rules::ALL, cfg(), 1);
        let mut out = Outbox::new();
        l.handle(
            3,
            Message::LeaderSeen {
                ballot: Ballot::new(4, 2),
                commit: 0,
            },
            &mut out,
        );
        l.handle(9, Message::Request(cmd(1)), &mut out);
        assert_eq!(
            out.replies[0].outcome,
            Outcome::NotLeader { leader: Some(2) }
        );
    }

    #[test]
    fn a_leader_steps_down_on_a_higher_ballot_and_without_a_majority() {
        let mut l = Leader::new(1, vec![1, 2, 3], Rules::ALL, cfg(), 1);
        elect(&mut l, vec![]);
        let mut out = Outbox::new();
        l.handle(
            1,
            Message::Promised {
                ballot: Ballot::new(9, 2),
            },
            &mut out,
        );
        assert_eq!(l.mode(), Mode::Follower);

        let mut l = Leader::new(1, vec![1, 2, 3], Rules::ALL, cfg(), 1);
        elect(&mut l, vec![]);
        // No acks ever arrive: after the election timeout (4 ticks) it gives up.
        let mut out = Outbox::new();
        for _ in 0..6 {
            l.tick(&mut out);
        }
        assert_eq!(l.mode(), Mode::Follower);
    }

    #[test]
    fn unanswered_accepts_are_sent_again() {
        let mut l = Leader::new(1, vec![1, 2, 3], Rules::ALL, cfg(), 1);
        elect(&mut l, vec![]);
        let mut out = Outbox::new();
        l.handle(1, Message::Request(cmd(1)), &mut out);
        let mut later = Outbox::new();
        for _ in 0..4 {
            let seq = l.hb_seq;
            ack(&mut l, 2, seq, &mut later);
            ack(&mut l, 3, seq, &mut later);
            l.tick(&mut later);
        }
        assert!(accepts(&later).contains(&(0, Value::Batch(vec![cmd(1)]))));
    }
}
