//! A campaign: phase 1 (prepare/promise) and phase 2 (accept/accepted) under
//! one ballot.
//!
//! [`Campaign`] does the bookkeeping of one ballot across any number of slots and
//! applies P2c: after promises from a majority, each slot must carry the value of
//! the highest-ballot proposal reported for it, and only a slot with no reported
//! value is free. The single-decree proposer (`decree.rs`) runs one campaign
//! after another for slot 0; the Multi-Paxos proposer (`proposer/`) runs one
//! for a whole log.
//!
//! A ballot is used once, ever: the round is persisted ([`Record::Round`])
//! before the Prepare that carries it may leave, and a restarted proposer
//! starts above every round it recorded and every ballot its acceptor
//! recovered (Paxos Made Simple §2.5).

use std::collections::BTreeMap;

use super::ballot::{Ballot, NodeId, Slot};
use super::message::{Message, Notice, Outbox, PValue, Record, Value};
use super::rules::{Rule, Rules};

/// One proposer's phase 1 and phase 2 bookkeeping.
#[derive(Clone, Debug)]
pub struct Campaign {
    id: NodeId,
    rules: Rules,
    ballot: Ballot,
    max_round: u64,
    /// Phase 1 for every slot from the first unchosen one, among the voters
    /// of that slot's configuration.
    main: Phase1,
    /// Phase 1 again under the same ballot, among the voters of a
    /// configuration that takes effect later (issue 23), while one runs.
    extension: Option<Box<Phase1>>,
    prepared: bool,
}

/// Phase 1 among one set of acceptors from one slot on.
#[derive(Clone, Debug, Default)]
struct Phase1 {
    acceptors: Vec<NodeId>,
    quorum: usize,
    from_slot: Slot,
    /// Per acceptor heard from: the slot its next chunk starts at, or `None`
    /// once its promise is complete.
    promises: BTreeMap<NodeId, Option<Slot>>,
    /// The highest-ballot proposal reported so far, per slot (P2c).
    highest: BTreeMap<Slot, (Ballot, Value)>,
    /// The highest compaction point reported: every slot below is chosen.
    floor: Slot,
}

/// What P2c forces per slot after phase 1: the highest-ballot value
/// reported, with its ballot.
pub type Must = BTreeMap<Slot, (Ballot, Value)>;

/// One promise, or one chunk of it (the fields of `Message::Promise`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chunk {
    /// Where this chunk starts.
    pub from_slot: Slot,
    /// What the acceptor accepted from there on (within a frame).
    pub accepted: Vec<PValue>,
    /// The first slot left out, if the rest comes in another chunk.
    pub next: Option<Slot>,
    /// The acceptor's compaction point.
    pub floor: Slot,
}

impl Phase1 {
    /// One chunk from `from`: complete promises from a quorum give what P2c
    /// forces, once.
    fn on_chunk(
        &mut self,
        me: NodeId,
        rules: Rules,
        from: NodeId,
        ballot: Ballot,
        chunk: Chunk,
        out: &mut Outbox,
    ) -> Option<Must> {
        let Chunk {
            from_slot,
            accepted,
            next,
            floor,
        } = chunk;
        let member = self.acceptors.contains(&from) || !rules.holds(Rule::Members);
        if !member {
            return None; // a stranger's promise
        }
        let expected = self.promises.entry(from).or_insert(Some(self.from_slot));
        if *expected != Some(from_slot) {
            // A duplicate chunk, or one out of order: it was (or will be) asked again.
            return None;
        }
        self.floor = self.floor.max(floor);
        if rules.holds(Rule::P2c) {
            for p in accepted {
                if p.slot < self.from_slot {
                    continue;
                }
                match self.highest.get(&p.slot) {
                    Some((b, _)) if *b >= p.ballot => {}
                    _ => {
                        self.highest.insert(p.slot, (p.ballot, p.value));
                    }
                }
            }
        }
        match next {
            Some(n) if n <= from_slot => {
                // A chunk that does not move on cannot complete a promise.
                return None;
            }
            Some(n) => {
                // More was accepted than one message may carry: fetch the rest
                // under the same ballot (its round is durable already).
                *expected = Some(n);
                out.send(
                    me,
                    from,
                    Message::Prepare {
                        ballot,
                        from_slot: n,
                    },
                );
                return None;
            }
            _ => *expected = None,
        }
        let complete = self.promises.values().filter(|p| p.is_none()).count();
        if complete < self.quorum {
            return None;
        }
        let floor = self.floor;
        Some(
            std::mem::take(&mut self.highest)
                .into_iter()
                .filter(|(s, _)| *s >= floor)
                .collect(),
        )
    }
}

impl Campaign {
    /// A proposer at node `id` that prepares to `acceptors` and needs `quorum`
    /// complete promises.
    pub fn new(id: NodeId, acceptors: Vec<NodeId>, quorum: usize, rules: Rules) -> Self {
        Campaign {
            id,
            rules,
            ballot: Ballot::ZERO,
            max_round: 0,
            main: Phase1 {
                acceptors,
                quorum,
                ..Phase1::default()
            },
            extension: None,
            prepared: false,
        }
    }

    /// A proposer rebuilt after a restart from the rounds it recorded: its next
    /// round is above all of them. (With the `round` rule broken it forgets.)
    pub fn recover<'a>(
        id: NodeId,
        acceptors: Vec<NodeId>,
        quorum: usize,
        rules: Rules,
        records: impl IntoIterator<Item = &'a Record>,
    ) -> Self {
        let mut p = Campaign::new(id, acceptors, quorum, rules);
        if rules.holds(Rule::Round) {
            for r in records {
                if let Record::Round { round } = r {
                    p.max_round = p.max_round.max(*round);
                }
            }
        }
        p
    }

    /// The acceptors the next [`Campaign::prepare`] asks, and the complete
    /// promises it needs (the configuration of the slot it starts at).
    pub fn set_acceptors(&mut self, acceptors: Vec<NodeId>, quorum: usize) {
        self.main.acceptors = acceptors;
        self.main.quorum = quorum;
    }

    /// The acceptors phase 1 asked.
    pub fn acceptors(&self) -> &[NodeId] {
        &self.main.acceptors
    }

    /// The ballot of the current (or last) attempt.
    pub fn ballot(&self) -> Ballot {
        self.ballot
    }

    /// True once a majority promised the current ballot.
    pub fn is_prepared(&self) -> bool {
        self.prepared
    }

    /// Note a ballot seen elsewhere, so that the next round is above it.
    pub fn observe(&mut self, ballot: Ballot) {
        self.max_round = self.max_round.max(ballot.round);
    }

    /// The smallest round above every ballot seen.
    pub fn next_round(&self) -> u64 {
        self.max_round.saturating_add(1)
    }

    /// Phase 1a: pick ballot `(round, id)`, record the round, and send
    /// `Prepare` to every acceptor once the record is durable.
    pub fn prepare(&mut self, round: u64, from_slot: Slot, out: &mut Outbox) {
        self.ballot = Ballot::new(round, self.id);
        self.observe(self.ballot);
        self.main = Phase1 {
            acceptors: std::mem::take(&mut self.main.acceptors),
            quorum: self.main.quorum,
            from_slot,
            ..Phase1::default()
        };
        self.extension = None;
        self.prepared = false;
        let durable = self.rules.holds(Rule::Round);
        if durable {
            out.persist.push(Record::Round { round });
        }
        for &a in &self.main.acceptors {
            let msg = Message::Prepare {
                ballot: self.ballot,
                from_slot,
            };
            if durable {
                out.send_durable(self.id, a, msg);
            } else {
                out.send(self.id, a, msg);
            }
        }
    }

    /// Phase 1 again, under the prepared ballot (its round is durable), among
    /// `acceptors` from `from_slot` on: the voters of a configuration that
    /// governs the slots from there (issue 23). Its promises are in once
    /// [`Campaign::on_promise`] returns them.
    pub fn extend(
        &mut self,
        from_slot: Slot,
        acceptors: Vec<NodeId>,
        quorum: usize,
        out: &mut Outbox,
    ) {
        for &a in &acceptors {
            out.send(
                self.id,
                a,
                Message::Prepare {
                    ballot: self.ballot,
                    from_slot,
                },
            );
        }
        self.extension = Some(Box::new(Phase1 {
            acceptors,
            quorum,
            from_slot,
            ..Phase1::default()
        }));
    }

    /// Ask again every acceptor of the extension whose promise is not in
    /// (a Prepare or a promise lost, or a partition that healed).
    pub fn resend_extension(&self, out: &mut Outbox) {
        let Some(ext) = &self.extension else {
            return;
        };
        for &a in &ext.acceptors {
            let from_slot = match ext.promises.get(&a) {
                Some(None) => continue,
                Some(Some(next)) => *next,
                None => ext.from_slot,
            };
            out.send(
                self.id,
                a,
                Message::Prepare {
                    ballot: self.ballot,
                    from_slot,
                },
            );
        }
    }

    /// True while an extension's promises are awaited.
    pub fn extending(&self) -> bool {
        self.extension.is_some()
    }

    /// The highest compaction point the promises reported: every slot below
    /// it is chosen, and nothing may be proposed there.
    pub fn floor(&self) -> Slot {
        self.main.floor
    }

    /// A promise (or one chunk of it) arrived. Asks the acceptor for the next
    /// chunk if there is one. Returns, once, when complete promises from a
    /// majority are in: the value each slot must carry by P2c (the value of the
    /// highest-ballot proposal any promise reported for it). Slots absent from
    /// the map are free, from [`Campaign::floor`] on.
    pub fn on_promise(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        chunk: Chunk,
        out: &mut Outbox,
    ) -> Option<BTreeMap<Slot, Value>> {
        self.on_promise_ballots(from, ballot, chunk, out)
            .map(|must| must.into_iter().map(|(s, (_, v))| (s, v)).collect())
    }

    /// [`Campaign::on_promise`], with the ballot of each value; once the
    /// main phase 1 is done, promises count for the extension, if one runs.
    pub fn on_promise_ballots(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        chunk: Chunk,
        out: &mut Outbox,
    ) -> Option<Must> {
        if ballot != self.ballot {
            return None; // a stale promise
        }
        let (id, rules) = (self.id, self.rules);
        if !self.prepared {
            let must = self.main.on_chunk(id, rules, from, ballot, chunk, out)?;
            self.prepared = true;
            return Some(must);
        }
        let ext = self.extension.as_mut()?;
        let must = ext.on_chunk(id, rules, from, ballot, chunk, out)?;
        self.extension = None;
        Some(must)
    }

    /// A refusal arrived. Returns true if it preempts the current ballot.
    pub fn on_nack(&mut self, ballot: Ballot, promised: Ballot) -> bool {
        self.observe(promised);
        ballot == self.ballot && promised > ballot
    }

    /// Phase 2a: ask every acceptor to accept `value` for `slot` at the current
    /// ballot, and tell this node's learner what was proposed.
    pub fn accept(&self, slot: Slot, value: Value, out: &mut Outbox) {
        self.accept_among(&self.main.acceptors, slot, value, out)
    }

    /// Phase 2a among `acceptors` (the voters of the slot's configuration).
    pub fn accept_among(&self, acceptors: &[NodeId], slot: Slot, value: Value, out: &mut Outbox) {
        for &a in acceptors {
            out.send(
                self.id,
                a,
                Message::Accept {
                    ballot: self.ballot,
                    slot,
                    value: value.clone(),
                },
            );
        }
        out.notify(Notice::Proposed {
            ballot: self.ballot,
            slot,
            value,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(round: u64, node: NodeId) -> Ballot {
        Ballot::new(round, node)
    }

    fn pv(slot: Slot, ballot: Ballot, v: &str) -> PValue {
        PValue {
            slot,
            ballot,
            value: Value::Text(v.into()),
        }
    }

    /// A whole promise, in one chunk from slot 0.
    fn whole(accepted: Vec<PValue>) -> Chunk {
        Chunk {
            accepted,
            ..Chunk::default()
        }
    }

    /// A chunk from `from_slot` with `next`.
    fn part(from_slot: Slot, accepted: Vec<PValue>, next: Option<Slot>) -> Chunk {
        Chunk {
            from_slot,
            accepted,
            next,
            floor: 0,
        }
    }

    #[test]
    fn prepare_records_its_round_before_it_goes_to_every_acceptor() {
        // Paxos Made Simple §2.5: the round is on stable storage before the
        // Prepare that carries it may leave.
        let mut p = Campaign::new(2, vec![1, 2, 3], 2, Rules::ALL);
        p.observe(b(4, 3));
        let mut out = Outbox::new();
        p.prepare(p.next_round(), 0, &mut out);
        assert_eq!(p.ballot(), b(5, 2));
        assert_eq!(out.persist, vec![Record::Round { round: 5 }]);
        assert!(out.send.is_empty());
        let to: Vec<NodeId> = out.send_durable.iter().map(|e| e.to).collect();
        assert_eq!(to, vec![1, 2, 3]);
        assert!(out.send_durable.iter().all(|e| e.msg
            == Message::Prepare {
                ballot: b(5, 2),
                from_slot: 0
            }));
    }

    #[test]
    fn a_recovered_proposer_starts_above_every_round_it_recorded() {
        let records = [Record::Round { round: 3 }, Record::Round { round: 7 }];
        let p = Campaign::recover(2, vec![1, 2, 3], 2, Rules::ALL, &records);
        assert_eq!(p.next_round(), 8);
        // With the `round` rule broken, it forgets.
        let p = Campaign::recover(
            2,
            vec![1, 2, 3],
            2,
            Rules::breaking(Some(Rule::Round)),
            &records,
        );
        assert_eq!(p.next_round(), 1);
    }

    #[test]
    fn p2c_adopts_the_highest_ballot_value_per_slot() {
        // P2c: "the value of the highest-numbered proposal among those accepted by the majority".
        let mut p = Campaign::new(9, vec![1, 2, 3, 4, 5], 3, Rules::ALL);
        let out = &mut Outbox::new();
        p.prepare(7, 0, out);
        let bal = p.ballot();
        let first = whole(vec![pv(0, b(1, 1), "old"), pv(1, b(2, 2), "x")]);
        assert_eq!(p.on_promise(1, bal, first, out), None);
        assert_eq!(
            p.on_promise(1, bal, whole(vec![]), out),
            None,
            "a duplicate promise is not a second vote"
        );
        assert_eq!(
            p.on_promise(2, bal, whole(vec![pv(0, b(3, 3), "new")]), out),
            None
        );
        let must = p.on_promise(3, bal, whole(vec![]), out).expect("majority");
        assert_eq!(must.get(&0), Some(&Value::Text("new".into())));
        assert_eq!(must.get(&1), Some(&Value::Text("x".into())));
        assert_eq!(
            p.on_promise(4, bal, whole(vec![]), out),
            None,
            "reported only once"
        );
    }

    #[test]
    fn a_promise_in_chunks_counts_once_complete_and_strangers_never() {
        let mut p = Campaign::new(9, vec![1, 2, 3], 2, Rules::ALL);
        p.prepare(1, 0, &mut Outbox::new());
        let bal = p.ballot();
        let mut out = Outbox::new();
        // Acceptor 1 sends its first chunk: the proposer asks for the rest.
        assert_eq!(
            p.on_promise(
                1,
                bal,
                part(0, vec![pv(0, b(1, 5), "a")], Some(4)),
                &mut out
            ),
            None
        );
        assert_eq!(
            out.send
                .iter()
                .map(|e| (e.to, e.msg.clone()))
                .collect::<Vec<_>>(),
            vec![(
                1,
                Message::Prepare {
                    ballot: bal,
                    from_slot: 4
                }
            )]
        );
        // A stranger's complete promise does not count.
        assert_eq!(p.on_promise(7, bal, whole(vec![]), &mut out), None);
        // A chunk out of order is ignored, and one that does not move on
        // never completes a promise.
        assert_eq!(p.on_promise(1, bal, part(9, vec![], None), &mut out), None);
        assert_eq!(
            p.on_promise(3, bal, part(0, vec![], Some(0)), &mut out),
            None
        );
        assert_eq!(
            p.on_promise(2, bal, whole(vec![]), &mut out),
            None,
            "1 is not complete yet"
        );
        let must = p
            .on_promise(1, bal, part(4, vec![pv(5, b(1, 5), "b")], None), &mut out)
            .expect("two complete promises");
        assert_eq!(must.len(), 2);
        // With the `members` guard broken, a stranger's promise counts.
        let mut p = Campaign::new(9, vec![1, 2, 3], 2, Rules::breaking(Some(Rule::Members)));
        p.prepare(1, 0, &mut out);
        let bal = p.ballot();
        p.on_promise(7, bal, whole(vec![]), &mut out);
        assert!(p.on_promise(8, bal, whole(vec![]), &mut out).is_some());
    }

    #[test]
    fn nothing_is_proposed_below_a_reported_floor() {
        // An acceptor that compacted below 10 reports it; a slot below it
        // reported by another (a stale accept) is not re-proposed: it is chosen.
        let mut p = Campaign::new(9, vec![1, 2, 3], 2, Rules::ALL);
        let out = &mut Outbox::new();
        p.prepare(1, 0, out);
        let bal = p.ballot();
        p.on_promise(
            1,
            bal,
            whole(vec![pv(4, b(1, 1), "old"), pv(12, b(1, 1), "x")]),
            out,
        );
        let compacted = Chunk {
            floor: 10,
            ..Chunk::default()
        };
        let must = p.on_promise(2, bal, compacted, out).expect("majority");
        assert_eq!(p.floor(), 10);
        assert_eq!(must.keys().copied().collect::<Vec<_>>(), vec![12]);
    }

    #[test]
    fn broken_p2c_ignores_reported_values() {
        let mut p = Campaign::new(9, vec![1, 2, 3], 2, Rules::breaking(Some(Rule::P2c)));
        let out = &mut Outbox::new();
        p.prepare(1, 0, out);
        let bal = p.ballot();
        p.on_promise(1, bal, whole(vec![pv(0, b(1, 1), "chosen")]), out);
        assert_eq!(
            p.on_promise(2, bal, whole(vec![]), out),
            Some(BTreeMap::new())
        );
    }

    #[test]
    fn a_nack_preempts_only_the_current_ballot() {
        let mut p = Campaign::new(1, vec![1, 2, 3], 2, Rules::ALL);
        p.prepare(1, 0, &mut Outbox::new());
        assert!(!p.on_nack(b(0, 1), b(3, 3)), "stale");
        assert!(p.on_nack(b(1, 1), b(3, 3)));
        assert_eq!(p.next_round(), 4);
    }
}
