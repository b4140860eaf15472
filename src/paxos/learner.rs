//! The learner: a value is chosen when a majority of acceptors accepted it at
//! the same ballot (Paxos Made Simple §2.3).
//!
//! Acceptors send `Accepted` to the learner of the ballot's proposer, which knows
//! the value from its proposer's `Proposed` notice. Votes are counted per
//! `(slot, ballot, value digest)` and only from the cluster's members, so
//! neither a stranger nor a ballot used twice can make a value look chosen.
//! Once a majority has accepted, that learner tells the rest with `Learn` (at
//! its next tick, every slot chosen since the last one in one message); a
//! learner that falls behind (it sees a leader's `first_unchosen` above its
//! own, or a hole) asks for what it missed with `CatchUp`. Each learner tells
//! its node's replica (`Chosen`) and proposer (`SlotChosen`) about every newly
//! chosen slot.
//!
//! # Bounded state
//!
//! Every map here is held to a window of slots, so nothing a member sends can
//! grow it for ever. Votes are counted only for slots in
//! `[first_unchosen, first_unchosen + MAX_SPAN]`: a vote below is for a slot
//! already chosen (held in `chosen`, or compacted into a snapshot), a vote
//! above is farther out than a real cluster reaches, and neither creates a
//! tally. A tally goes when its slot is chosen, and every tally below a
//! snapshot's slot goes when the floor moves. In one tally, votes for values
//! this node's proposer did not propose count for at most as many digests as
//! the cluster has members (an acceptor votes once a ballot). `chosen` holds
//! the slots from the floor up to at most `MAX_SPAN` past the first unchosen
//! one; at most 4,096 contested slots and [`MAX_CONFLICTS`] conflicts are
//! kept.

use std::collections::{BTreeMap, BTreeSet};

use super::ballot::{Ballot, NodeId, Slot, MAX_SLOT, MAX_SPAN};
use super::config::{Config, Configs, ALPHA};
use super::message::{Digest, Message, Notice, Outbox, Record, Value};
use super::quorum::Quorums;
use super::rules::{Rule, Rules};

/// How many chosen entries one `Learn` answer to a `CatchUp` carries at most.
pub const CATCHUP_ENTRIES: usize = 256;
/// How many bytes of values one `Learn` carries at most by default (frames
/// stay small).
pub const CATCHUP_BYTES: usize = 1 << 20;
/// Slots a learner keeps counting votes in after it learned them chosen
/// with another value than its own proposer's (the oldest go first).
const CONTESTED: usize = 4_096;
/// Conflicts (two values chosen in one slot, only with a rule broken) kept at
/// most: the first ones, which are what the checkers report.
pub const MAX_CONFLICTS: usize = 1_024;
/// Ticks a learner stays behind before it asks for a catch-up.
const CATCHUP_TICKS: u32 = 3;
/// Ticks without word of a leader after which a learner asks a peer what it
/// missed anyway: a leader removed by a change steps down where it stops
/// voting, and a new voter that missed the last slots before that point
/// would otherwise never learn that it votes.
const QUIET_TICKS: u32 = 40;

/// Votes counted for one slot at the highest ballot seen there.
#[derive(Clone, Debug)]
struct Tally {
    ballot: Ballot,
    /// The values proposed at this ballot, by digest (one, unless a ballot
    /// was reused).
    values: BTreeMap<Digest, Value>,
    /// Who voted for which value.
    voters: BTreeMap<Digest, BTreeSet<NodeId>>,
}

impl Tally {
    /// True if a vote for `digest` may be counted here: for a value this
    /// node's proposer proposed, one already voted for, or one of at most
    /// `limit` others (the cluster's size: an acceptor votes once a ballot,
    /// so honest members name no more, and a member that names a new digest
    /// with every vote cannot grow the tally).
    fn admits(&self, digest: &Digest, limit: usize) -> bool {
        self.values.contains_key(digest)
            || self.voters.contains_key(digest)
            || self
                .voters
                .keys()
                .filter(|d| !self.values.contains_key(*d))
                .count()
                < limit
    }
}

/// One learner's state.
#[derive(Clone, Debug)]
pub struct Learner {
    id: NodeId,
    /// The configuration of every slot: who votes there, and how many
    /// votes choose (issue 23).
    configs: Configs,
    rules: Rules,
    /// Bytes of values one `Learn` carries at most.
    max_bytes: usize,
    /// Slots kept below a snapshot, for peers a little behind.
    keep: u64,
    /// Slots below it are chosen and no longer held here (a snapshot has them).
    floor: Slot,
    chosen: BTreeMap<Slot, Value>,
    first_unchosen: Slot,
    tallies: BTreeMap<Slot, Tally>,
    leader: Option<NodeId>,
    leader_chosen: Slot,
    behind: u32,
    /// Ticks since the last word of a leader.
    quiet: u32,
    ask_next: usize,
    conflicts: Vec<(Slot, Value, Value)>,
    /// Votes for values other than the one chosen, in slots learned chosen
    /// while this node's own proposal there was still being counted: a
    /// majority for one of them means two values were chosen (P2 broken),
    /// which only a broken rule allows. At most [`CONTESTED`] slots.
    contested: BTreeMap<Slot, (Digest, Tally)>,
    /// Chosen by this learner's own count, to tell the others at the next tick.
    spread: Vec<(Slot, Value)>,
}

impl Learner {
    /// A learner at node `id` of the cluster `nodes`, with majority `quorum`.
    pub fn new(id: NodeId, nodes: Vec<NodeId>, quorum: usize, rules: Rules) -> Self {
        let quorums = Quorums::from_phase2(nodes.len(), quorum);
        let initial = Config::first(nodes, quorums);
        Learner {
            id,
            configs: Configs::new(initial, ALPHA),
            rules,
            max_bytes: CATCHUP_BYTES,
            keep: 1_000,
            floor: 0,
            chosen: BTreeMap::new(),
            first_unchosen: 0,
            tallies: BTreeMap::new(),
            leader: None,
            leader_chosen: 0,
            behind: 0,
            quiet: 0,
            ask_next: 0,
            conflicts: Vec::new(),
            contested: BTreeMap::new(),
            spread: Vec::new(),
        }
    }

    /// The same learner, sending `Learn` messages of at most `bytes` of
    /// values (one value always fits).
    pub fn with_max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// The same learner with the configurations `configs` (the snapshot's, or
    /// the cluster file's), and every change in what it recovered.
    pub fn with_configs(mut self, configs: Configs) -> Self {
        self.configs = configs;
        for (&slot, value) in self.chosen.range(..self.first_unchosen) {
            self.configs.learn(slot, value);
        }
        self
    }

    /// The configurations this learner knows.
    pub fn configs(&self) -> &Configs {
        &self.configs
    }

    /// The same learner, keeping `keep` slots below each snapshot.
    pub fn with_keep(mut self, keep: u64) -> Self {
        self.keep = keep;
        self
    }

    /// A learner rebuilt from its records. Call [`Learner::replay`] to tell the
    /// replica and proposer again.
    pub fn recover<'a>(
        id: NodeId,
        nodes: Vec<NodeId>,
        quorum: usize,
        rules: Rules,
        records: impl IntoIterator<Item = &'a Record>,
    ) -> Self {
        let mut l = Learner::new(id, nodes, quorum, rules);
        // With `persist` broken (teaching runs), nothing survives a restart.
        let records = records.into_iter().filter(|_| rules.holds(Rule::Persist));
        for r in records {
            match r {
                Record::Chosen { slot, value } if *slot >= l.floor => {
                    l.chosen.entry(*slot).or_insert_with(|| value.clone());
                }
                Record::Floor { slot } => {
                    l.floor = l.floor.max(*slot);
                    l.first_unchosen = l.first_unchosen.max(*slot);
                    l.chosen = l.chosen.split_off(&l.floor);
                }
                _ => {}
            }
        }
        l.advance(&mut Outbox::new());
        l
    }

    /// Tell this node's replica and proposer about every slot known chosen.
    pub fn replay(&self, out: &mut Outbox) {
        for (&slot, value) in &self.chosen {
            notify(slot, value.clone(), out);
        }
    }

    /// Every slot known chosen.
    pub fn chosen(&self) -> &BTreeMap<Slot, Value> {
        &self.chosen
    }

    /// The first slot not known chosen: every slot below it is.
    pub fn first_unchosen(&self) -> Slot {
        self.first_unchosen
    }

    /// The farthest slot a message may name here: [`MAX_SPAN`] past the
    /// first unchosen slot, never past [`MAX_SLOT`].
    fn reach(&self) -> Slot {
        self.first_unchosen.saturating_add(MAX_SPAN).min(MAX_SLOT)
    }

    /// Slots below it are no longer held here (a snapshot has them).
    pub fn floor(&self) -> Slot {
        self.floor
    }

    /// Values this learner was told were chosen for a slot it already knew chosen
    /// with another value: `(slot, kept, offered)`. Empty unless a rule is broken;
    /// the first [`MAX_CONFLICTS`] only.
    pub fn conflicts(&self) -> &[(Slot, Value, Value)] {
        &self.conflicts
    }

    /// True if `node` is named by a configuration this learner keeps.
    fn member(&self, node: NodeId) -> bool {
        self.configs.names(node) || !self.rules.holds(Rule::Members)
    }

    /// True if `node`'s vote counts in `slot`: it votes in the slot's
    /// configuration.
    fn voter(&self, node: NodeId, slot: Slot) -> bool {
        self.config(slot).voters.contains(&node) || !self.rules.holds(Rule::Members)
    }

    /// The configuration that decides `slot` (with `reconfig` broken: the
    /// newest known, whatever the slot).
    fn config(&self, slot: Slot) -> &Config {
        if self.rules.holds(Rule::Reconfig) {
            self.configs.at(slot)
        } else {
            self.configs.latest()
        }
    }

    /// The votes that choose a value in `slot`, and how many digests one
    /// tally admits (an acceptor votes once a ballot).
    fn quorum(&self, slot: Slot) -> (usize, usize) {
        let c = self.config(slot);
        (c.quorums().phase2, c.voters.len())
    }

    /// The last slot whose configuration this learner knows.
    fn known_through(&self) -> Slot {
        if self.rules.holds(Rule::Reconfig) {
            self.configs.known_through(self.first_unchosen)
        } else {
            Slot::MAX
        }
    }

    /// Handle one message from node `from` for the learner role.
    pub fn handle(&mut self, from: NodeId, msg: Message, out: &mut Outbox) {
        if !self.member(from) && !matches!(msg, Message::CatchUp { .. }) {
            // Neither a vote nor a report of what was chosen counts from a
            // node outside the cluster. (What was chosen is no secret: a
            // node removed, or one too far behind to know it was added,
            // may ask.)
            return;
        }
        match msg {
            // Votes and values farther out than a real cluster reaches are
            // dropped: a lagging learner fetches them again by catch-up.
            Message::Accepted { slot, .. } if slot > self.reach() => {}
            // A vote in a slot whose configuration is not known yet cannot
            // be counted (a leader never proposes there; the vote comes again
            // with the next resend), nor one from a node that does not vote
            // in the slot's configuration.
            Message::Accepted { slot, .. }
                if slot > self.known_through() || !self.voter(from, slot) => {}
            // Votes are counted only in the window: every slot below the
            // first unchosen one is chosen (held, or below the floor).
            Message::Accepted {
                ballot,
                slot,
                digest,
            } if slot >= self.first_unchosen && !self.chosen.contains_key(&slot) => {
                let (_, limit) = self.quorum(slot);
                let t = self.tally(slot, ballot);
                if t.ballot == ballot && t.admits(&digest, limit) {
                    t.voters.entry(digest).or_default().insert(from);
                    self.check(slot, out);
                }
            }
            // A vote in a slot already chosen only matters if it was
            // contested (and below the floor nothing is).
            Message::Accepted {
                ballot,
                slot,
                digest,
            } => self.contest(from, slot, ballot, digest),
            Message::Learn { entries } => {
                // A full page answers a catch-up of a learner far behind:
                // ask for the next at the next tick, not CATCHUP_TICKS later.
                if entries.len() >= CATCHUP_ENTRIES {
                    self.behind = self.behind.max(CATCHUP_TICKS - 1);
                }
                let reach = self.reach();
                for (slot, value) in entries.into_iter().filter(|(s, _)| *s <= reach) {
                    self.learn(slot, value, false, out);
                }
            }
            Message::CatchUp { from_slot } if from != self.id && from_slot < self.floor => {
                // What it asks for was compacted here: it needs the snapshot.
                let floor = self.floor;
                out.send(self.id, from, Message::Compacted { floor });
            }
            Message::CatchUp { from_slot } if from != self.id => {
                let mut entries = Vec::new();
                let mut bytes = 0;
                for (&slot, value) in self.chosen.range(from_slot..) {
                    if entries.len() >= CATCHUP_ENTRIES
                        || (!entries.is_empty() && bytes + value.size() > self.max_bytes)
                    {
                        break;
                    }
                    bytes += value.size();
                    entries.push((slot, value.clone()));
                }
                if !entries.is_empty() {
                    out.send(self.id, from, Message::Learn { entries });
                }
            }
            // Already chosen, or not for a learner: nothing to do.
            _ => {}
        }
    }

    /// Handle a notice from this node's other roles.
    pub fn notice(&mut self, notice: Notice, out: &mut Outbox) {
        match notice {
            // Only in the window where votes are counted (see `handle`).
            Notice::Proposed {
                ballot,
                slot,
                value,
            } if slot >= self.first_unchosen
                && slot <= self.reach()
                && !self.chosen.contains_key(&slot) =>
            {
                let t = self.tally(slot, ballot);
                if t.ballot == ballot {
                    t.values.insert(value.digest(), value);
                    self.check(slot, out);
                }
            }
            Notice::Snapshotted { slot } => self.compact(slot, out),
            Notice::Configured(configs) => {
                self.configs.merge(&configs);
            }
            Notice::LeaderSeen {
                ballot,
                first_unchosen,
            } => {
                self.leader = Some(ballot.node);
                self.leader_chosen = self.leader_chosen.max(first_unchosen);
                self.quiet = 0;
            }
            _ => {}
        }
    }

    /// One tick: ask for a catch-up if this learner has been behind for a while.
    pub fn tick(&mut self, out: &mut Outbox) {
        // What this learner counted to a majority since the last tick goes to
        // the others in one message each (a message per slot cost a fifth of
        // the throughput, measured).
        // A burst (a new leader re-proposing a long tail) goes in several
        // messages, each within the size of a catch-up answer.
        let mut spread = std::mem::take(&mut self.spread).into_iter().peekable();
        while spread.peek().is_some() {
            let mut entries = Vec::new();
            let mut bytes = 0;
            while let Some((_, v)) = spread.peek() {
                if entries.len() >= CATCHUP_ENTRIES
                    || (!entries.is_empty() && bytes + v.size() > self.max_bytes)
                {
                    break;
                }
                bytes += v.size();
                entries.extend(spread.next());
            }
            for n in self.configs.all_nodes() {
                if n != self.id {
                    out.send(
                        self.id,
                        n,
                        Message::Learn {
                            entries: entries.clone(),
                        },
                    );
                }
            }
        }
        let hole = self
            .chosen
            .keys()
            .next_back()
            .is_some_and(|&s| s >= self.first_unchosen);
        self.quiet = self.quiet.saturating_add(1);
        if self.quiet >= QUIET_TICKS {
            // No leader heard for a while: ask anyway (the answer is empty
            // if there is nothing to learn).
            self.quiet = 0;
            self.behind = CATCHUP_TICKS;
            self.leader = None;
        } else if self.leader_chosen <= self.first_unchosen && !hole {
            self.behind = 0;
            return;
        }
        self.behind += 1;
        if self.behind < CATCHUP_TICKS {
            return;
        }
        self.behind = 0;
        // Ask the leader first, then the others in turn, so one dead peer cannot
        // keep this learner behind for ever.
        let others: Vec<NodeId> = self
            .configs
            .all_nodes()
            .into_iter()
            .filter(|&n| n != self.id)
            .collect();
        if others.is_empty() {
            return;
        }
        let to = match self
            .leader
            .filter(|&l| l != self.id && self.ask_next % 2 == 0)
        {
            Some(l) => l,
            None => others[self.ask_next % others.len()],
        };
        self.ask_next += 1;
        out.send(
            self.id,
            to,
            Message::CatchUp {
                from_slot: self.first_unchosen,
            },
        );
    }

    /// Every slot below `slot` is chosen and in a durable snapshot: forget
    /// what lies more than `keep` slots below it, and rewrite the log as what
    /// remains.
    fn compact(&mut self, slot: Slot, out: &mut Outbox) {
        self.first_unchosen = self.first_unchosen.max(slot);
        let above = self.tallies.split_off(&slot);
        out.forgotten
            .keep(std::mem::replace(&mut self.tallies, above));
        let above = self.contested.split_off(&slot.saturating_sub(self.keep));
        out.forgotten
            .keep(std::mem::replace(&mut self.contested, above));
        self.advance(out);
        let floor = slot.saturating_sub(self.keep);
        if floor <= self.floor {
            return;
        }
        self.floor = floor;
        self.configs.forget_below(floor);
        let above = self.chosen.split_off(&floor);
        out.forgotten
            .keep(std::mem::replace(&mut self.chosen, above));
        if !self.rules.holds(Rule::Persist) {
            return;
        }
        out.rewrite = true;
        out.persist = std::iter::once(Record::Floor { slot: floor })
            .chain(self.chosen.iter().map(|(&slot, value)| Record::Chosen {
                slot,
                value: value.clone(),
            }))
            .collect();
    }

    /// A vote in a slot already chosen: if it completes a majority for
    /// another value than the chosen one, two values were chosen.
    fn contest(&mut self, from: NodeId, slot: Slot, ballot: Ballot, digest: Digest) {
        let (quorum, limit) = self.quorum(slot);
        if !self.voter(from, slot) {
            return;
        }
        let Some((chosen, t)) = self.contested.get_mut(&slot) else {
            return;
        };
        if digest == *chosen || ballot != t.ballot || !t.admits(&digest, limit) {
            return;
        }
        let voters = t.voters.entry(digest).or_default();
        voters.insert(from);
        if voters.len() < quorum {
            return;
        }
        let (Some(offered), Some(known)) = (t.values.get(&digest).cloned(), self.chosen.get(&slot))
        else {
            return;
        };
        let known = known.clone();
        self.conflict(slot, known, offered);
        self.contested.remove(&slot);
    }

    /// Two values chosen in `slot`: remember it (the first
    /// [`MAX_CONFLICTS`] only).
    fn conflict(&mut self, slot: Slot, kept: Value, offered: Value) {
        if self.conflicts.len() < MAX_CONFLICTS {
            self.conflicts.push((slot, kept, offered));
        }
    }

    fn tally(&mut self, slot: Slot, ballot: Ballot) -> &mut Tally {
        let fresh = || Tally {
            ballot,
            values: BTreeMap::new(),
            voters: BTreeMap::new(),
        };
        let t = self.tallies.entry(slot).or_insert_with(fresh);
        if ballot > t.ballot {
            // A newer proposal for this slot supersedes the count of the older one.
            *t = fresh();
        }
        t
    }

    fn check(&mut self, slot: Slot, out: &mut Outbox) {
        let (quorum, _) = self.quorum(slot);
        let ready = self.tallies.get(&slot).and_then(|t| {
            t.voters
                .iter()
                .find(|(_, voters)| voters.len() >= quorum)
                .and_then(|(d, _)| t.values.get(d).cloned())
        });
        if let Some(value) = ready {
            self.learn(slot, value, true, out);
        }
    }

    fn learn(&mut self, slot: Slot, value: Value, spread: bool, out: &mut Outbox) {
        if slot < self.floor {
            return; // long known, and compacted
        }
        if let Some(known) = self.chosen.get(&slot) {
            if *known != value {
                // Only possible with a rule broken: keep the first (stability),
                // and remember the contradiction for the checkers.
                let known = known.clone();
                self.conflict(slot, known, value);
            }
            return;
        }
        if let Some(t) = self.tallies.remove(&slot) {
            // Our own proposal here lost: keep counting its votes, in case a
            // majority accepts it after all (only with a rule broken).
            let d = value.digest();
            if t.values.keys().any(|v| *v != d) {
                self.contested.insert(slot, (d, t));
                if self.contested.len() > CONTESTED {
                    self.contested.pop_first();
                }
            }
        }
        self.chosen.insert(slot, value.clone());
        // With `persist` broken nothing survives a restart: the learner
        // forgets too.
        if self.rules.holds(Rule::Persist) {
            out.persist.push(Record::Chosen {
                slot,
                value: value.clone(),
            });
        }
        if spread {
            self.spread.push((slot, value.clone()));
        }
        // A change among the slots this one completes is told to the
        // proposer before the slot is: it never counts a slot chosen whose
        // configuration it does not know.
        self.advance(out);
        notify(slot, value, out);
    }

    /// Move the first unchosen slot over every slot known chosen, taking in
    /// the changes they hold.
    fn advance(&mut self, out: &mut Outbox) {
        let mut grew = false;
        while let Some(value) = self.chosen.get(&self.first_unchosen) {
            grew |= self.configs.learn(self.first_unchosen, value);
            self.first_unchosen += 1;
        }
        if grew {
            out.notify(Notice::Configured(Box::new(self.configs.clone())));
        }
    }
}

fn notify(slot: Slot, value: Value, out: &mut Outbox) {
    out.notify(Notice::SlotChosen { slot });
    out.notify(Notice::Chosen { slot, value });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Value {
        Value::Text(s.into())
    }

    fn learner(id: NodeId) -> Learner {
        Learner::new(id, vec![1, 2, 3], 2, Rules::ALL)
    }

    /// The learner's proposer proposed `value` for `slot` at `ballot`.
    fn proposed(l: &mut Learner, ballot: Ballot, slot: Slot, value: &Value, out: &mut Outbox) {
        let value = value.clone();
        l.notice(
            Notice::Proposed {
                ballot,
                slot,
                value,
            },
            out,
        );
    }

    /// Acceptor `from` voted for `value` in `slot` at `ballot`.
    fn vote(
        l: &mut Learner,
        from: NodeId,
        ballot: Ballot,
        slot: Slot,
        value: &Value,
        out: &mut Outbox,
    ) {
        let digest = value.digest();
        l.handle(
            from,
            Message::Accepted {
                ballot,
                slot,
                digest,
            },
            out,
        );
    }

    #[test]
    fn chosen_at_a_majority_of_the_same_ballot() {
        // Paxos Made Simple §2.3: chosen once a majority accepted the proposal.
        let b1 = Ballot::new(1, 1);
        let mut l = learner(1);
        let mut out = Outbox::new();
        proposed(&mut l, b1, 0, &v("x"), &mut out);
        vote(&mut l, 2, b1, 0, &v("x"), &mut out);
        vote(&mut l, 2, b1, 0, &v("x"), &mut out);
        assert!(
            l.chosen().is_empty(),
            "one acceptor twice is not a majority"
        );
        vote(&mut l, 3, b1, 0, &v("x"), &mut out);
        assert_eq!(l.chosen().get(&0), Some(&v("x")));
        assert_eq!(
            out.persist,
            vec![Record::Chosen {
                slot: 0,
                value: v("x")
            }]
        );
        assert_eq!(
            out.notices,
            vec![
                Notice::SlotChosen { slot: 0 },
                Notice::Chosen {
                    slot: 0,
                    value: v("x")
                }
            ]
        );
        assert_eq!(l.first_unchosen(), 1);
        // The others hear of it at the next tick, with everything else chosen since.
        proposed(&mut l, b1, 1, &v("y"), &mut out);
        vote(&mut l, 2, b1, 1, &v("y"), &mut out);
        vote(&mut l, 3, b1, 1, &v("y"), &mut out);
        let mut out = Outbox::new();
        l.tick(&mut out);
        let learn = Message::Learn {
            entries: vec![(0, v("x")), (1, v("y"))],
        };
        let to: Vec<NodeId> = out
            .send
            .iter()
            .filter(|e| e.msg == learn)
            .map(|e| e.to)
            .collect();
        assert_eq!(to, vec![2, 3]);
    }

    #[test]
    fn a_majority_for_a_second_value_in_a_chosen_slot_is_a_conflict() {
        // P2: only one value is ever chosen. This node proposed x at 1.1; a
        // newer leader's y was chosen there and learned first; then (the
        // promise rule broken) a majority accepts x at 1.1 after all: two
        // values chosen, which the learner must report, not swallow.
        let b1 = Ballot::new(1, 1);
        let mut l = learner(1);
        let mut out = Outbox::new();
        proposed(&mut l, b1, 0, &v("x"), &mut out);
        l.handle(
            2,
            Message::Learn {
                entries: vec![(0, v("y"))],
            },
            &mut out,
        );
        vote(&mut l, 2, b1, 0, &v("x"), &mut out);
        assert!(l.conflicts().is_empty(), "one vote is not a majority");
        vote(&mut l, 3, b1, 0, &v("x"), &mut out);
        assert_eq!(l.conflicts(), &[(0, v("y"), v("x"))]);
        assert_eq!(l.chosen().get(&0), Some(&v("y")), "it keeps the first");
        // Votes for the chosen value itself are no conflict.
        let mut l = learner(1);
        proposed(&mut l, b1, 0, &v("x"), &mut out);
        l.handle(
            2,
            Message::Learn {
                entries: vec![(0, v("x"))],
            },
            &mut out,
        );
        vote(&mut l, 2, b1, 0, &v("x"), &mut out);
        vote(&mut l, 3, b1, 0, &v("x"), &mut out);
        assert!(l.conflicts().is_empty());
    }

    #[test]
    fn accepts_of_different_ballots_do_not_add_up() {
        let mut l = learner(1);
        let mut out = Outbox::new();
        proposed(&mut l, Ballot::new(2, 1), 0, &v("x"), &mut out);
        vote(&mut l, 2, Ballot::new(1, 1), 0, &v("x"), &mut out);
        vote(&mut l, 3, Ballot::new(2, 1), 0, &v("x"), &mut out);
        assert!(l.chosen().is_empty());
    }

    #[test]
    fn votes_for_two_values_under_one_ballot_do_not_add_up() {
        // A ballot used twice (a proposer that forgot its round): acceptor 2
        // accepted x, acceptor 3 accepted y, both at 1.1. Neither is chosen.
        let b = Ballot::new(1, 1);
        let mut l = learner(1);
        let mut out = Outbox::new();
        proposed(&mut l, b, 0, &v("x"), &mut out);
        proposed(&mut l, b, 0, &v("y"), &mut out);
        vote(&mut l, 2, b, 0, &v("x"), &mut out);
        vote(&mut l, 3, b, 0, &v("y"), &mut out);
        assert!(l.chosen().is_empty());
        vote(&mut l, 1, b, 0, &v("y"), &mut out);
        assert_eq!(l.chosen().get(&0), Some(&v("y")));
    }

    #[test]
    fn strangers_neither_vote_nor_report_what_was_chosen() {
        let b = Ballot::new(1, 1);
        let mut l = learner(1);
        let mut out = Outbox::new();
        proposed(&mut l, b, 0, &v("x"), &mut out);
        vote(&mut l, 1, b, 0, &v("x"), &mut out);
        vote(&mut l, 9, b, 0, &v("x"), &mut out);
        l.handle(
            9,
            Message::Learn {
                entries: vec![(1, v("forged"))],
            },
            &mut out,
        );
        assert!(l.chosen().is_empty());
        // With the `members` guard broken, the stranger's vote makes a majority.
        let mut l = Learner::new(1, vec![1, 2, 3], 2, Rules::breaking(Some(Rule::Members)));
        proposed(&mut l, b, 0, &v("x"), &mut out);
        vote(&mut l, 1, b, 0, &v("x"), &mut out);
        vote(&mut l, 9, b, 0, &v("x"), &mut out);
        assert_eq!(l.chosen().get(&0), Some(&v("x")));
    }

    #[test]
    fn a_learner_behind_asks_for_a_catch_up() {
        let mut l = learner(3);
        let mut out = Outbox::new();
        l.notice(
            Notice::LeaderSeen {
                ballot: Ballot::new(1, 1),
                first_unchosen: 5,
            },
            &mut out,
        );
        for _ in 0..CATCHUP_TICKS {
            l.tick(&mut out);
        }
        assert_eq!(
            out.send.last().map(|e| (e.to, e.msg.clone())),
            Some((1, Message::CatchUp { from_slot: 0 }))
        );
        // The leader answers with what it knows.
        let mut leader = learner(1);
        leader.handle(
            2,
            Message::Learn {
                entries: (0..5).map(|s| (s, v("x"))).collect(),
            },
            &mut Outbox::new(),
        );
        let mut answer = Outbox::new();
        leader.handle(3, Message::CatchUp { from_slot: 2 }, &mut answer);
        match &answer.send[0].msg {
            Message::Learn { entries } => assert_eq!(
                entries.iter().map(|e| e.0).collect::<Vec<_>>(),
                vec![2, 3, 4]
            ),
            other => panic!("expected Learn, got {other:?}"),
        }
    }

    #[test]
    fn a_snapshot_compacts_the_learner_and_a_catch_up_below_gets_the_floor() {
        let mut l = learner(1).with_keep(2);
        for s in 0..10 {
            l.handle(
                2,
                Message::Learn {
                    entries: vec![(s, v("x"))],
                },
                &mut Outbox::new(),
            );
        }
        let mut out = Outbox::new();
        l.notice(Notice::Snapshotted { slot: 8 }, &mut out);
        assert_eq!(l.floor(), 6);
        assert!(out.rewrite);
        assert_eq!(out.persist[0], Record::Floor { slot: 6 });
        assert_eq!(out.persist.len(), 1 + 4, "the floor and slots 6..10");
        // Recovered from the rewritten log: the same learner.
        let r = Learner::recover(1, vec![1, 2, 3], 2, Rules::ALL, &out.persist);
        assert_eq!(
            (r.floor(), r.first_unchosen(), r.chosen().len()),
            (6, 10, 4)
        );
        // A peer behind the floor hears where to get the snapshot.
        let mut out = Outbox::new();
        l.handle(3, Message::CatchUp { from_slot: 2 }, &mut out);
        assert_eq!(out.send[0].msg, Message::Compacted { floor: 6 });
        // One within the margin gets the entries.
        let mut out = Outbox::new();
        l.handle(3, Message::CatchUp { from_slot: 7 }, &mut out);
        assert!(matches!(&out.send[0].msg, Message::Learn { entries } if entries.len() == 3));
    }

    #[test]
    fn votes_outside_the_window_make_no_tally_and_a_moving_floor_frees_those_below() {
        // Tallies are kept only for slots in [first_unchosen, first_unchosen +
        // MAX_SPAN]: a member voting in every slot below (chosen, compacted,
        // or under an installed snapshot) or far ahead grows nothing.
        let b = Ballot::new(1, 1);
        let mut l = learner(1).with_keep(2);
        let mut out = Outbox::new();
        l.handle(
            2,
            Message::Learn {
                entries: (0..10).map(|s| (s, v("x"))).collect(),
            },
            &mut out,
        );
        l.notice(Notice::Snapshotted { slot: 8 }, &mut out);
        assert_eq!((l.floor(), l.first_unchosen()), (6, 10));
        // A snapshot installed from a peer: slots 10..100 chosen, none held.
        l.notice(Notice::Snapshotted { slot: 100 }, &mut out);
        assert_eq!((l.floor(), l.first_unchosen()), (98, 100));
        let below = 0..100;
        let far = [l.reach() + 1, l.reach() + 1_000, MAX_SLOT];
        for slot in below.clone().chain(far) {
            vote(&mut l, 2, b, slot, &v("y"), &mut out);
            vote(&mut l, 3, b, slot, &v("y"), &mut out);
            proposed(&mut l, b, slot, &v("y"), &mut out);
        }
        assert!(l.tallies.is_empty(), "{:?}", l.tallies.keys());
        assert!(l.conflicts().is_empty());
        assert_eq!(l.first_unchosen(), 100, "nothing learned from them");

        // In the window, one vote each (no majority): a tally each, until
        // the floor moves past them.
        for slot in 100..110 {
            vote(&mut l, 2, b, slot, &v("y"), &mut out);
        }
        assert_eq!(l.tallies.len(), 10);
        l.notice(Notice::Snapshotted { slot: 105 }, &mut out);
        assert_eq!(
            l.tallies.keys().copied().collect::<Vec<_>>(),
            (105..110).collect::<Vec<_>>()
        );

        // One member naming a new digest with every vote in one slot: at most
        // as many unknown digests as members are kept.
        proposed(&mut l, b, 105, &v("p"), &mut out);
        for i in 0..1_000 {
            vote(&mut l, 2, b, 105, &v(&format!("forged {i}")), &mut out);
        }
        let t = &l.tallies[&105];
        assert!(t.voters.len() <= 1 + 3, "{} digests", t.voters.len());
        // The value proposed here still gets counted, and is chosen.
        vote(&mut l, 2, b, 105, &v("p"), &mut out);
        vote(&mut l, 3, b, 105, &v("p"), &mut out);
        assert_eq!(l.chosen().get(&105), Some(&v("p")));
        assert!(!l.tallies.contains_key(&105));
    }

    #[test]
    fn conflicts_kept_are_bounded() {
        // A member reporting another value for a chosen slot again and again
        // (only a broken rule makes it honest) grows the list only so far.
        let mut l = learner(1);
        let mut out = Outbox::new();
        l.handle(
            2,
            Message::Learn {
                entries: vec![(0, v("x"))],
            },
            &mut out,
        );
        for i in 0..(MAX_CONFLICTS + 100) {
            l.handle(
                2,
                Message::Learn {
                    entries: vec![(0, v(&format!("y{i}")))],
                },
                &mut out,
            );
        }
        assert_eq!(l.conflicts().len(), MAX_CONFLICTS);
        assert_eq!(l.conflicts()[0], (0, v("x"), v("y0")), "the first are kept");
    }

    #[test]
    fn recovery_keeps_what_was_chosen() {
        let records = vec![
            Record::Chosen {
                slot: 0,
                value: v("a"),
            },
            Record::Chosen {
                slot: 2,
                value: v("c"),
            },
        ];
        let l = Learner::recover(1, vec![1, 2, 3], 2, Rules::ALL, &records);
        assert_eq!(l.first_unchosen(), 1);
        let mut out = Outbox::new();
        l.replay(&mut out);
        assert_eq!(out.notices.len(), 4);
    }
}
