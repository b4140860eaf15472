//! The proposer of Multi-Paxos: a follower most of the time, a candidate
//! during an election, and the leader, who alone proposes for a whole log.
//!
//! A node becomes leader by running phase 1 once, for every slot from its first
//! unchosen slot on (Paxos Made Simple §3). The promises report what a majority
//! accepted in those slots; the new leader re-proposes, slot by slot, the value of
//! the highest ballot reported (P2c per slot) and fills holes with no-ops. While it
//! leads, a command needs phase 2 only.
//!
//! Time is counted in ticks; the shell decides how long a tick is. The jobs of
//! the proposer role, one file each:
//! - [`election`]: a follower that hears no leader for a randomized election
//!   timeout asks for a pre-vote, and only with a majority's grant raises its
//!   round and runs phase 1; a leader or candidate that sees a higher ballot
//!   steps down.
//! - [`confirm`]: heartbeats, which acceptors confirm only if they promised
//!   nothing higher. A leader that goes a full election timeout without a
//!   majority's confirmation steps down (check-quorum), and a read is answered
//!   only after a majority confirmed a round sent after it arrived (read-index).
//! - [`window`]: commands that wait are packed into one slot (bounded by count
//!   and bytes), up to `window` slots are in flight at once, and accepts that
//!   stay unanswered are sent again, so lost messages delay a slot but never
//!   stall it.

mod confirm;
mod election;
mod window;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use super::ballot::{Ballot, NodeId, Slot};
use super::campaign::{Campaign, Chunk, Must};
use super::config::{Config, Configs, ALPHA};
use super::message::{Command, Message, Notice, Outbox, Outcome, Record, Reply};
use super::quorum::Quorums;
use super::rules::{Rule, Rules};
use crate::kv::Op;
use crate::rng::Rng;
use confirm::PendingRead;
pub use window::Change;
use window::Flight;

/// Timing and batching of a leader, in ticks and counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposerConfig {
    /// Ticks between heartbeats.
    pub heartbeat_ticks: u32,
    /// Election timeout, drawn uniformly from this range (ticks) each time.
    pub election_ticks: (u32, u32),
    /// The fast paths (each can be switched off to measure what it buys).
    #[serde(flatten)]
    pub fast: FastPaths,
    /// Bytes of commands in one slot at most.
    pub max_batch_bytes: usize,
    /// Commands (and reads) waiting at the leader at most; past it, `Busy`.
    pub max_waiting: usize,
    /// Phase-1 and phase-2 quorums; `None`: majorities (see [`Quorums::resolve`]).
    pub quorums: Option<Quorums>,
}

/// What the leader may do to go faster; none changes what is chosen. The
/// node's tuning (`SYNOD_WINDOW`, `SYNOD_READ_INDEX`, ...) sets this struct.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FastPaths {
    /// Slots in flight at once.
    pub window: usize,
    /// Commands in one slot at most.
    pub max_batch: usize,
    /// Batching that adapts to the load: a slot is proposed at once when
    /// none is in flight, but beyond the first only for a full batch
    /// (`max_batch` commands or `max_batch_bytes`), as Nagle's algorithm
    /// holds a small segment while one is unacknowledged. Under light load
    /// a command goes out at once; under heavy load slots fill up, and each
    /// slot's round (an accept to every acceptor, a sync at each) carries
    /// more commands. Off: any free place in the window takes what waits.
    pub full_batches: bool,
    /// Serve reads without a log write (read-index): confirm leadership with one
    /// heartbeat round to a majority, then read once every slot below the
    /// leader's `first_unchosen` is applied.
    pub read_index: bool,
    /// Elect without waiting out a timeout where the facts allow it: when a
    /// leader's process is known gone (`PeerGone`) and at a cluster's first
    /// start (`PeerUp`). See [`election`].
    pub fast_election: bool,
}

impl Default for FastPaths {
    fn default() -> Self {
        FastPaths {
            window: 2,
            max_batch: 512,
            full_batches: true,
            read_index: true,
            fast_election: true,
        }
    }
}

impl ProposerConfig {
    /// The quorums of an `n`-node cluster under `rules`.
    pub fn quorums(&self, n: usize, rules: Rules) -> Quorums {
        Quorums::resolve(n, self.quorums, rules)
    }
}

impl Default for ProposerConfig {
    fn default() -> Self {
        ProposerConfig {
            heartbeat_ticks: 5,
            election_ticks: (15, 30),
            fast: FastPaths::default(),
            max_batch_bytes: 256 * 1024,
            max_waiting: 10_000,
            quorums: None,
        }
    }
}

/// What a node's proposer is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Following whoever leads; counting ticks towards an election.
    Follower,
    /// Asking for pre-votes: may it run phase 1 without deposing a live leader?
    PreCandidate,
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
            Mode::PreCandidate => "pre-candidate",
            Mode::Candidate => "candidate",
            Mode::Leader => "leader",
        }
    }
}

/// The proposer role of a Multi-Paxos node.
#[derive(Clone, Debug)]
pub struct Proposer {
    id: NodeId,
    /// The configuration of every slot (issue 23): who is asked, and how
    /// many must answer, in phase 1, phase 2 and confirmation.
    configs: Configs,
    /// The numbers of the configurations phase 1 is done in at the current
    /// ballot: the leader proposes in no slot governed by another.
    prepared: BTreeSet<u64>,
    /// What P2c forces in slots not yet proposed again (beyond the window
    /// of known configurations when the election ended).
    must: Must,
    /// The leader proposes again (`must`, or no-ops) every slot below this
    /// before it proposes new commands.
    refill_to: Slot,
    /// The first slot proposed at the current ballot: a change waits until
    /// it is chosen (an entry of the leader's own ballot).
    reign_from: Slot,
    /// The configuration whose voters phase 1 is extended to, while it runs.
    extending: Option<u64>,
    /// The client command `(client, seq)` that asked for the change proposed
    /// in this slot: answered once the slot is chosen.
    change_asked: Option<(u64, u64, Slot)>,
    rules: Rules,
    cfg: ProposerConfig,
    rng: Rng,
    campaign: Campaign,
    mode: Mode,
    /// Ticks counted since this proposer was made.
    ticks: u64,
    /// Ticks since the last sign of a leader (or a rival's promise).
    elapsed: u32,
    timeout: u32,
    /// When this node last heard a live leader's heartbeat (through its acceptor).
    heard_leader: Option<u64>,
    leader_hint: Option<NodeId>,
    /// The ballot a pre-vote is asked for, and who granted it.
    prevote: Option<(Ballot, BTreeSet<NodeId>)>,
    first_unchosen: Slot,
    chosen_ahead: BTreeSet<Slot>,
    next_slot: Slot,
    in_flight: BTreeMap<Slot, Flight>,
    queue: VecDeque<Command>,
    hb_elapsed: u32,
    hb_seq: u64,
    /// The highest heartbeat round each acceptor confirmed at our ballot.
    acked: BTreeMap<NodeId, u64>,
    /// Heartbeat rounds sent and not yet confirmed: (round, tick sent).
    rounds: VecDeque<(u64, u64)>,
    /// When the latest round a majority confirmed was sent.
    confirmed_at: u64,
    /// Reads waiting for a heartbeat round sent after they arrived.
    reads: Vec<PendingRead>,
    /// Peers whose process the shell reports reachable (`PeerUp`, `PeerGone`).
    reachable: BTreeSet<NodeId>,
    /// Peers whose link closed (`PeerGone`) and has not reopened: a heartbeat
    /// of theirs still in flight when the link closed is not a live leader.
    gone: BTreeSet<NodeId>,
    /// While taking over from a dead leader: the next retry's timeout in ticks
    /// (doubling), so a pre-vote refused in a race is asked again soon.
    /// Zero otherwise.
    hurry: u32,
    /// Neither an election tried nor a leader heard since this process began:
    /// the lowest id may start the first one as soon as a majority is reachable.
    first: bool,
}

impl Proposer {
    /// The proposer of node `id` in the cluster `nodes`; `seed` drives its election
    /// jitter (the shell picks it; the same seed gives the same timeouts).
    pub fn new(
        id: NodeId,
        nodes: Vec<NodeId>,
        rules: Rules,
        cfg: ProposerConfig,
        seed: u64,
    ) -> Self {
        let quorum = cfg.quorums(nodes.len(), rules).phase1;
        let proposer = Campaign::new(id, nodes.clone(), quorum, rules);
        Proposer::with_proposer(id, nodes, rules, cfg, seed, proposer)
    }

    /// The proposer of a restarted node: above every round it recorded
    /// (`records`, its own log) and every ballot its acceptor recovered
    /// (`acceptor`, the acceptor's promise, which is at least every ballot it
    /// accepted), so it never uses a ballot twice. With the `round` rule
    /// broken, it starts from zero as [`Proposer::new`] does.
    pub fn recover<'a>(
        id: NodeId,
        nodes: Vec<NodeId>,
        rules: Rules,
        cfg: ProposerConfig,
        seed: u64,
        records: impl IntoIterator<Item = &'a Record>,
        acceptor: Ballot,
    ) -> Self {
        let quorum = cfg.quorums(nodes.len(), rules).phase1;
        let mut proposer = Campaign::recover(id, nodes.clone(), quorum, rules, records);
        if rules.holds(Rule::Round) {
            proposer.observe(acceptor);
        }
        Proposer::with_proposer(id, nodes, rules, cfg, seed, proposer)
    }

    fn with_proposer(
        id: NodeId,
        nodes: Vec<NodeId>,
        rules: Rules,
        cfg: ProposerConfig,
        seed: u64,
        campaign: Campaign,
    ) -> Self {
        let mut rng = Rng::new(seed);
        let timeout = draw(&mut rng, cfg.election_ticks);
        let initial = Config::first(nodes.iter().copied(), cfg.quorums(nodes.len(), rules));
        Proposer {
            id,
            configs: Configs::new(initial, ALPHA),
            prepared: BTreeSet::new(),
            must: Must::new(),
            refill_to: 0,
            reign_from: 0,
            extending: None,
            change_asked: None,
            rules,
            cfg,
            rng,
            campaign,
            mode: Mode::Follower,
            ticks: 0,
            elapsed: 0,
            timeout,
            heard_leader: None,
            leader_hint: None,
            prevote: None,
            first_unchosen: 0,
            chosen_ahead: BTreeSet::new(),
            next_slot: 0,
            in_flight: BTreeMap::new(),
            queue: VecDeque::new(),
            hb_elapsed: 0,
            hb_seq: 0,
            acked: BTreeMap::new(),
            rounds: VecDeque::new(),
            confirmed_at: 0,
            reads: Vec::new(),
            reachable: BTreeSet::new(),
            gone: BTreeSet::new(),
            hurry: 0,
            first: true,
        }
    }

    /// The same proposer with the configurations `configs` (what the node's
    /// log and snapshot hold).
    pub fn with_configs(mut self, configs: Configs) -> Self {
        self.configs = configs;
        self
    }

    /// The configurations this proposer knows.
    pub fn configs(&self) -> &Configs {
        &self.configs
    }

    /// The configuration that elects: the one of the first unchosen slot.
    pub(super) fn electorate(&self) -> &Config {
        self.configs.at(self.first_unchosen)
    }

    /// True if this node votes in the configuration that elects.
    pub fn is_voter(&self) -> bool {
        self.electorate().voters.contains(&self.id)
    }

    /// Follower, pre-candidate, candidate or leader.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The ballot of this node's latest attempt to lead.
    pub fn ballot(&self) -> Ballot {
        self.campaign.ballot()
    }

    /// The round this node would use next (above every ballot it saw).
    pub fn next_round(&self) -> u64 {
        self.campaign.next_round()
    }

    /// Who this node believes leads (itself included).
    pub fn leader_hint(&self) -> Option<NodeId> {
        self.leader_hint
    }

    /// The next slot it would propose in, as leader.
    pub fn next_slot(&self) -> Slot {
        self.next_slot
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

    /// True if `node` votes in the configuration that elects.
    fn member(&self, node: NodeId) -> bool {
        self.electorate().voters.contains(&node) || !self.rules.holds(Rule::Members)
    }

    /// True if `node` votes in a configuration of a slot not yet known
    /// chosen (whose acknowledgements confirm the leader).
    fn confirmer(&self, node: NodeId) -> bool {
        self.configs
            .from(self.first_unchosen)
            .any(|(_, c)| c.voters.contains(&node))
            || !self.rules.holds(Rule::Members)
    }

    /// Handle one message from node `from` for the proposer role.
    pub fn handle(&mut self, from: NodeId, msg: Message, out: &mut Outbox) {
        match msg {
            Message::Promise {
                ballot,
                from_slot,
                accepted,
                next,
                floor,
            } if matches!(self.mode, Mode::Candidate | Mode::Leader) => {
                let chunk = Chunk {
                    from_slot,
                    accepted,
                    next,
                    floor,
                };
                let leading = self.mode == Mode::Leader;
                if let Some(must) = self.campaign.on_promise_ballots(from, ballot, chunk, out) {
                    if leading {
                        self.extended(must, out);
                    } else {
                        let floor = self.campaign.floor();
                        self.become_leader(must, floor, out);
                    }
                }
            }
            Message::Nack { ballot, promised } => {
                // Someone promised a higher ballot: this attempt (or reign) is over.
                let preempted = self.campaign.on_nack(ballot, promised);
                if preempted && self.mode != Mode::Follower {
                    self.step_down(None, out);
                }
            }
            Message::HeartbeatAck { ballot, seq } => self.on_ack(from, ballot, seq, out),
            Message::PreVote { ballot } => self.on_prevote(from, ballot, out),
            Message::TakeOver { ballot }
                if self.mode == Mode::Follower && ballot.node == from && self.is_voter() =>
            {
                // A leader a change removed hands over. (An election is
                // always safe; at worst this one is needless.)
                self.campaign.observe(ballot);
                self.campaign(out);
            }
            Message::PreVoteReply { ballot, granted } => {
                self.on_prevote_reply(from, ballot, granted, out)
            }
            // Stale promises, or not for a proposer: nothing to do.
            _ => {}
        }
    }

    /// Handle a notice from this node's other roles (or a client's command).
    pub fn notice(&mut self, notice: Notice, out: &mut Outbox) {
        match notice {
            Notice::Request(cmd) => self.request(cmd, out),
            Notice::LeaderSeen { ballot, .. } if ballot.node != self.id => {
                // Our acceptor confirmed another leader's heartbeat.
                self.campaign.observe(ballot);
                if !self.member(ballot.node) {
                    // A node that votes nowhere here (removed, and behind
                    // enough not to know it) leads no one: its heartbeats
                    // keep no election from running.
                    return;
                }
                if self.gone.contains(&ballot.node) {
                    // Sent before its process died, read after its link closed.
                    return;
                }
                self.hurry = 0;
                self.heard_leader = Some(self.ticks);
                self.first = false;
                if self.mode != Mode::Follower && ballot > self.campaign.ballot() {
                    self.step_down(Some(ballot.node), out);
                }
                if self.mode == Mode::Follower {
                    self.leader_hint = Some(ballot.node);
                    self.elapsed = 0;
                }
            }
            Notice::PromiseMade { ballot } if ballot.node != self.id => {
                // Our acceptor promised a rival: give the rival time to win.
                self.campaign.observe(ballot);
                if self.mode != Mode::Follower && ballot > self.campaign.ballot() {
                    self.step_down(None, out);
                }
                self.elapsed = 0;
            }
            Notice::SlotChosen { slot } => self.committed(slot, out),
            Notice::Snapshotted { slot } => {
                self.chosen_below(slot);
                // The configurations that govern nothing from here on are
                // the snapshot's: forgotten, as the learner forgets them.
                self.configs.forget_below(slot.min(self.first_unchosen));
                self.moved_on(out);
            }
            Notice::Configured(configs) if self.configs.merge(&configs) => self.moved_on(out),
            Notice::PeerUp { node } if node != self.id => self.peer_up(node, out),
            Notice::PeerGone { node } if node != self.id => self.peer_gone(node, out),
            // Our own notices: nothing to do.
            _ => {}
        }
    }

    fn request(&mut self, cmd: Command, out: &mut Outbox) {
        if self.mode != Mode::Leader {
            out.replies.push(Reply {
                client: cmd.client,
                seq: cmd.seq,
                outcome: Outcome::NotLeader {
                    leader: self.leader_hint.filter(|&l| l != self.id),
                },
            });
        } else if self.queue.len() + self.reads.len() >= self.cfg.max_waiting {
            // Admission control: past the bound, clients hear "busy, retry"
            // rather than the queue growing without end.
            out.replies.push(Reply {
                client: cmd.client,
                seq: cmd.seq,
                outcome: Outcome::Busy,
            });
        } else if let Op::Reconfig {
            voters,
            learners,
            contacts,
            force,
        } = &cmd.op
        {
            let change = Change {
                voters: voters.iter().copied().collect(),
                learners: learners.iter().copied().collect(),
                quorums: None,
                contacts: contacts.clone(),
                force: *force,
            };
            match self.reconfigure(change, out) {
                Ok(slot) => self.change_asked = Some((cmd.client, cmd.seq, slot)),
                Err(why) => out.replies.push(Reply {
                    client: cmd.client,
                    seq: cmd.seq,
                    outcome: Outcome::Refused(why),
                }),
            }
        } else if self.cfg.fast.read_index && cmd.op.is_read() {
            self.read(cmd, out);
        } else {
            self.queue.push_back(cmd);
            self.propose_waiting(out);
        }
    }

    /// One tick of logical time.
    pub fn tick(&mut self, out: &mut Outbox) {
        self.ticks += 1;
        match self.mode {
            Mode::Follower | Mode::PreCandidate | Mode::Candidate => {
                self.elapsed += 1;
                if self.elapsed >= self.timeout {
                    self.timed_out(out);
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
                if self.cut_off() {
                    // No round sent in a whole election timeout was confirmed
                    // by a majority: we may be cut off, so stop taking commands.
                    self.step_down(None, out);
                    return;
                }
                self.heartbeat(out);
                self.resend(out);
                self.campaign.resend_extension(out);
                self.fill_to_change(out);
            }
        }
    }
}

fn draw(rng: &mut Rng, (lo, hi): (u32, u32)) -> u32 {
    rng.range(lo as u64, hi as u64) as u32
}

#[cfg(test)]
mod tests;
