//! The acceptor: the memory of Paxos.
//!
//! It keeps one promised ballot (for every slot at once, as Multi-Paxos does) and,
//! per slot, the last proposal it accepted. Two rules (Paxos Made Simple §2.2):
//! - phase 1b: on `Prepare(b)` with `b` at least its promise, promise `b` and report
//!   what it accepted;
//! - phase 2b: on `Accept(b, v)`, accept unless it promised a ballot above `b`.
//!
//! Every promise and accept is persisted before it is answered
//! ([`Outbox::send_durable`]), so a restarted acceptor never contradicts itself.
//! A promise reports at most a [`PromiseLimit`] of accepted values; the proposer
//! asks again (the same ballot, a later slot) for the rest, so no promise ever
//! outgrows a frame however far behind the proposer is.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ballot::{Ballot, NodeId, Slot};
use super::message::{Message, Notice, Outbox, PValue, Record, Value};
use super::rules::{Rule, Rules};

/// How much one promise may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromiseLimit {
    /// Accepted values at most.
    pub entries: usize,
    /// Bytes of values at most (one value always fits, whatever its size, as
    /// does one entry whatever `entries` says).
    pub bytes: usize,
}

impl Default for PromiseLimit {
    /// 4,096 values or 4 MiB, far below the wire's 32 MiB frame limit.
    fn default() -> Self {
        PromiseLimit {
            entries: 4096,
            bytes: 4 << 20,
        }
    }
}

/// One acceptor's state.
#[derive(Clone, Debug)]
pub struct Acceptor {
    id: NodeId,
    rules: Rules,
    limit: PromiseLimit,
    promised: Ballot,
    accepted: BTreeMap<Slot, (Ballot, Value)>,
    /// Every slot below is chosen and was compacted into a snapshot here.
    floor: Slot,
    /// Slots kept below a snapshot, for peers a little behind.
    keep: u64,
}

impl Acceptor {
    /// A fresh acceptor that has promised and accepted nothing.
    pub fn new(id: NodeId, rules: Rules) -> Self {
        Acceptor {
            id,
            rules,
            limit: PromiseLimit::default(),
            promised: Ballot::ZERO,
            accepted: BTreeMap::new(),
            floor: 0,
            keep: 1_000,
        }
    }

    /// The same acceptor, keeping `keep` slots below each snapshot.
    pub fn with_keep(mut self, keep: u64) -> Self {
        self.keep = keep;
        self
    }

    /// The same acceptor with another promise limit.
    pub fn with_limit(mut self, limit: PromiseLimit) -> Self {
        self.limit = limit;
        self
    }

    /// An acceptor rebuilt from the records it made durable, oldest first (a
    /// compacted log starts with its floor).
    pub fn recover<'a>(
        id: NodeId,
        rules: Rules,
        records: impl IntoIterator<Item = &'a Record>,
    ) -> Self {
        let mut a = Acceptor::new(id, rules);
        for record in records {
            match record {
                Record::Promise { ballot } => a.promised = a.promised.max(*ballot),
                Record::Accept {
                    slot,
                    ballot,
                    value,
                } => {
                    a.promised = a.promised.max(*ballot);
                    if *slot >= a.floor {
                        a.accepted.insert(*slot, (*ballot, value.clone()));
                    }
                }
                Record::Floor { slot } => {
                    a.floor = a.floor.max(*slot);
                    a.accepted = a.accepted.split_off(&a.floor);
                }
                Record::Chosen { .. } | Record::Round { .. } => {}
            }
        }
        a
    }

    /// This acceptor's node.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The highest ballot promised.
    pub fn promised(&self) -> Ballot {
        self.promised
    }

    /// The compaction point: every slot below it is chosen and in a snapshot.
    pub fn floor(&self) -> Slot {
        self.floor
    }

    /// Slots with an accepted value held.
    pub fn held(&self) -> usize {
        self.accepted.len()
    }

    /// Handle a notice from this node's other roles: a durable snapshot lets
    /// it compact.
    pub fn notice(&mut self, notice: Notice, out: &mut Outbox) {
        if let Notice::Snapshotted { slot } = notice {
            self.compact(slot.saturating_sub(self.keep), out);
        }
    }

    /// Forget what was accepted below `floor` (the node's snapshot covers
    /// every slot below `floor` and is durable), and rewrite the log as what
    /// remains: the floor, the promise, the accepts above.
    pub fn compact(&mut self, floor: Slot, out: &mut Outbox) {
        if floor <= self.floor || !self.rules.holds(Rule::Persist) {
            return;
        }
        self.floor = floor;
        let above = self.accepted.split_off(&floor);
        out.forgotten
            .keep(std::mem::replace(&mut self.accepted, above));
        out.rewrite = true;
        out.persist = std::iter::once(Record::Floor { slot: floor })
            .chain((!self.promised.is_zero()).then_some(Record::Promise {
                ballot: self.promised,
            }))
            .chain(
                self.accepted
                    .iter()
                    .map(|(&slot, (ballot, value))| Record::Accept {
                        slot,
                        ballot: *ballot,
                        value: value.clone(),
                    }),
            )
            .collect();
    }

    /// What was accepted in `slot`, if anything.
    pub fn accepted(&self, slot: Slot) -> Option<&(Ballot, Value)> {
        self.accepted.get(&slot)
    }

    /// Handle one message from node `from`.
    pub fn handle(&mut self, from: NodeId, msg: Message, out: &mut Outbox) {
        // Numbers no real cluster sends are checked once, for every role
        // (`Message::in_range`); below the floor, a slot is chosen and in the
        // snapshot: a stale proposal, ignored.
        let sane =
            msg.in_range() && !matches!(&msg, Message::Accept { slot, .. } if *slot < self.floor);
        if !sane {
            // Rounds and slots no real cluster reaches: garbage, ignored.
            return;
        }
        match msg {
            // Phase 1b. Equal ballots are answered again: a retransmitted Prepare
            // from the same proposer must get the same promise, and a proposer
            // fetching the rest of a chunked promise asks with the same ballot.
            // With the `promise` rule broken, a lower ballot gets a promise too.
            Message::Prepare { ballot, from_slot }
                if ballot >= self.promised || !self.rules.holds(Rule::Promise) =>
            {
                if ballot > self.promised {
                    self.promised = ballot;
                    self.persist(out, Record::Promise { ballot });
                }
                let (accepted, next) = self.report(from_slot);
                let floor = self.floor;
                self.reply(
                    out,
                    from,
                    Message::Promise {
                        ballot,
                        from_slot,
                        accepted,
                        next,
                        floor,
                    },
                );
                out.notify(Notice::PromiseMade { ballot });
            }
            Message::Prepare { ballot, .. } => self.nack(out, from, ballot),

            // Phase 2b: accept unless a higher ballot was promised. With the
            // `promise` rule broken, accept anyway.
            Message::Accept {
                ballot,
                slot,
                value,
            } if ballot >= self.promised || !self.rules.holds(Rule::Promise) => {
                let digest = value.digest();
                let again = self
                    .accepted
                    .get(&slot)
                    .is_some_and(|(b, v)| *b == ballot && *v == value);
                if !again {
                    // The promise itself never goes down, even when broken.
                    self.promised = self.promised.max(ballot);
                    self.accepted.insert(slot, (ballot, value.clone()));
                    self.persist(
                        out,
                        Record::Accept {
                            slot,
                            ballot,
                            value,
                        },
                    );
                }
                // To the proposer's learner: a vote for this value at this ballot.
                self.reply(
                    out,
                    ballot.node,
                    Message::Accepted {
                        ballot,
                        slot,
                        digest,
                    },
                );
            }
            Message::Accept { ballot, .. } => self.nack(out, from, ballot),

            // A leader's heartbeat is confirmed only at or above the promise
            // (with the `promise` rule broken, always).
            Message::Heartbeat {
                ballot,
                first_unchosen,
                seq,
            } if ballot >= self.promised || !self.rules.holds(Rule::Promise) => {
                self.reply(out, from, Message::HeartbeatAck { ballot, seq });
                out.notify(Notice::LeaderSeen {
                    ballot,
                    first_unchosen,
                });
            }
            Message::Heartbeat { ballot, .. } => self.nack(out, from, ballot),

            // Not for an acceptor.
            _ => {}
        }
    }

    /// What a promise reports from `from_slot` on, within the limit, and the
    /// first slot left out if not everything fit.
    fn report(&self, from_slot: Slot) -> (Vec<PValue>, Option<Slot>) {
        let bounded = self.rules.holds(Rule::Chunks);
        let mut accepted = Vec::new();
        let mut bytes = 0;
        for (&slot, (b, v)) in self.accepted.range(from_slot..) {
            let full = !accepted.is_empty()
                && (accepted.len() >= self.limit.entries || bytes + v.size() > self.limit.bytes);
            if bounded && full {
                return (accepted, Some(slot));
            }
            bytes += v.size();
            accepted.push(PValue {
                slot,
                ballot: *b,
                value: v.clone(),
            });
        }
        (accepted, None)
    }

    fn nack(&self, out: &mut Outbox, to: NodeId, ballot: Ballot) {
        let promised = self.promised;
        self.reply(out, to, Message::Nack { ballot, promised });
    }

    fn persist(&self, out: &mut Outbox, record: Record) {
        if self.rules.holds(Rule::Persist) {
            out.persist.push(record);
        }
    }

    fn reply(&self, out: &mut Outbox, to: NodeId, msg: Message) {
        if self.rules.holds(Rule::Persist) {
            out.send_durable(self.id, to, msg);
        } else {
            out.send(self.id, to, msg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paxos::Notice;

    fn b(round: u64, node: NodeId) -> Ballot {
        Ballot::new(round, node)
    }

    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    #[test]
    fn promise_is_persisted_before_it_is_sent() {
        // Paxos Made Simple §2.3: an acceptor must remember its promise across failures.
        let mut a = Acceptor::new(1, Rules::ALL);
        let mut out = Outbox::new();
        a.handle(
            2,
            Message::Prepare {
                ballot: b(1, 2),
                from_slot: 0,
            },
            &mut out,
        );
        assert_eq!(out.persist, vec![Record::Promise { ballot: b(1, 2) }]);
        assert_eq!(out.send_durable.len(), 1);
        assert_eq!(
            out.send_durable[0].msg,
            Message::Promise {
                ballot: b(1, 2),
                from_slot: 0,
                accepted: vec![],
                next: None,
                floor: 0,
            }
        );
        assert_eq!(out.send_durable[0].to, 2);
        // Only the local notice may go at once.
        assert!(out.send.is_empty());
        assert_eq!(out.notices, vec![Notice::PromiseMade { ballot: b(1, 2) }]);
    }

    #[test]
    fn lower_prepare_and_accept_are_refused() {
        let mut a = Acceptor::new(1, Rules::ALL);
        a.handle(
            3,
            Message::Prepare {
                ballot: b(3, 3),
                from_slot: 0,
            },
            &mut Outbox::new(),
        );
        let mut out = Outbox::new();
        a.handle(
            2,
            Message::Prepare {
                ballot: b(2, 2),
                from_slot: 0,
            },
            &mut out,
        );
        a.handle(
            2,
            Message::Accept {
                ballot: b(2, 2),
                slot: 0,
                value: text("x"),
            },
            &mut out,
        );
        let nack = Message::Nack {
            ballot: b(2, 2),
            promised: b(3, 3),
        };
        assert_eq!(
            out.send_durable.iter().map(|e| &e.msg).collect::<Vec<_>>(),
            vec![&nack, &nack]
        );
        assert!(out.persist.is_empty());
        assert_eq!(a.accepted(0), None);
    }

    #[test]
    fn promise_reports_accepted_values_from_the_slot_asked() {
        // Phase 1b reports the highest-numbered proposal accepted (P2c needs it).
        let mut a = Acceptor::new(1, Rules::ALL);
        for slot in 0..3 {
            a.handle(
                2,
                Message::Accept {
                    ballot: b(1, 2),
                    slot,
                    value: text("v"),
                },
                &mut Outbox::new(),
            );
        }
        let mut out = Outbox::new();
        a.handle(
            3,
            Message::Prepare {
                ballot: b(2, 3),
                from_slot: 1,
            },
            &mut out,
        );
        match &out.send_durable[0].msg {
            Message::Promise { accepted, .. } => {
                assert_eq!(
                    accepted.iter().map(|p| p.slot).collect::<Vec<_>>(),
                    vec![1, 2]
                );
                assert!(accepted.iter().all(|p| p.ballot == b(1, 2)));
            }
            other => panic!("expected a promise, got {other:?}"),
        }
    }

    #[test]
    fn accepted_goes_to_the_proposers_learner_after_the_record() {
        let mut a = Acceptor::new(1, Rules::ALL);
        let mut out = Outbox::new();
        a.handle(
            4,
            Message::Accept {
                ballot: b(1, 2),
                slot: 5,
                value: text("v"),
            },
            &mut out,
        );
        assert_eq!(
            out.persist,
            vec![Record::Accept {
                slot: 5,
                ballot: b(1, 2),
                value: text("v")
            }]
        );
        assert_eq!(out.send_durable[0].to, 2);
        assert_eq!(
            out.send_durable[0].msg,
            Message::Accepted {
                ballot: b(1, 2),
                slot: 5,
                digest: text("v").digest(),
            }
        );
        // A duplicate is answered again without a second record.
        let mut again = Outbox::new();
        a.handle(
            4,
            Message::Accept {
                ballot: b(1, 2),
                slot: 5,
                value: text("v"),
            },
            &mut again,
        );
        assert!(again.persist.is_empty());
        assert_eq!(again.send_durable.len(), 1);
    }

    #[test]
    fn recovery_restores_promise_and_accepts() {
        let mut a = Acceptor::new(1, Rules::ALL);
        let mut records = Vec::new();
        for msg in [
            Message::Prepare {
                ballot: b(1, 2),
                from_slot: 0,
            },
            Message::Accept {
                ballot: b(1, 2),
                slot: 0,
                value: text("x"),
            },
            Message::Prepare {
                ballot: b(4, 3),
                from_slot: 0,
            },
        ] {
            let mut out = Outbox::new();
            a.handle(2, msg, &mut out);
            records.extend(out.persist);
        }
        let r = Acceptor::recover(1, Rules::ALL, &records);
        assert_eq!(r.promised(), b(4, 3));
        assert_eq!(r.accepted(0), Some(&(b(1, 2), text("x"))));
    }

    #[test]
    fn broken_persist_answers_at_once_and_records_nothing() {
        let mut a = Acceptor::new(1, Rules::breaking(Some(Rule::Persist)));
        let mut out = Outbox::new();
        a.handle(
            2,
            Message::Prepare {
                ballot: b(1, 2),
                from_slot: 0,
            },
            &mut out,
        );
        assert!(out.persist.is_empty() && out.send_durable.is_empty());
        assert_eq!(out.send.len(), 1);
    }

    #[test]
    fn broken_promise_accepts_below_the_promise() {
        let mut a = Acceptor::new(1, Rules::breaking(Some(Rule::Promise)));
        a.handle(
            3,
            Message::Prepare {
                ballot: b(3, 3),
                from_slot: 0,
            },
            &mut Outbox::new(),
        );
        a.handle(
            2,
            Message::Accept {
                ballot: b(2, 2),
                slot: 0,
                value: text("x"),
            },
            &mut Outbox::new(),
        );
        assert_eq!(a.accepted(0), Some(&(b(2, 2), text("x"))));
        assert_eq!(a.promised(), b(3, 3));
    }

    #[test]
    fn heartbeat_is_acked_only_at_or_above_the_promise() {
        let mut a = Acceptor::new(1, Rules::ALL);
        a.handle(
            3,
            Message::Prepare {
                ballot: b(3, 3),
                from_slot: 0,
            },
            &mut Outbox::new(),
        );
        let mut out = Outbox::new();
        a.handle(
            3,
            Message::Heartbeat {
                ballot: b(3, 3),
                first_unchosen: 7,
                seq: 1,
            },
            &mut out,
        );
        a.handle(
            2,
            Message::Heartbeat {
                ballot: b(2, 2),
                first_unchosen: 9,
                seq: 1,
            },
            &mut out,
        );
        assert_eq!(
            out.send_durable[0].msg,
            Message::HeartbeatAck {
                ballot: b(3, 3),
                seq: 1
            }
        );
        assert_eq!(
            out.send_durable[1].msg,
            Message::Nack {
                ballot: b(2, 2),
                promised: b(3, 3)
            }
        );
        assert_eq!(
            out.notices,
            vec![Notice::LeaderSeen {
                ballot: b(3, 3),
                first_unchosen: 7
            }]
        );
    }

    #[test]
    fn compaction_keeps_the_promise_and_what_lies_above_and_reports_the_floor() {
        let mut a = Acceptor::new(1, Rules::ALL);
        for slot in 0..5 {
            let accept = Message::Accept {
                ballot: b(1, 2),
                slot,
                value: text("v"),
            };
            a.handle(2, accept, &mut Outbox::new());
        }
        let mut out = Outbox::new();
        a.compact(3, &mut out);
        assert!(out.rewrite);
        assert_eq!(out.persist[0], Record::Floor { slot: 3 });
        assert_eq!(out.persist[1], Record::Promise { ballot: b(1, 2) });
        assert_eq!(
            out.persist.len(),
            4,
            "the floor, the promise, slots 3 and 4"
        );
        // The rewritten log recovers the same acceptor.
        let r = Acceptor::recover(1, Rules::ALL, &out.persist);
        assert_eq!((r.floor(), r.promised(), r.held()), (3, b(1, 2), 2));
        // A promise says where the history starts; a stale accept below is ignored.
        let mut out = Outbox::new();
        let prepare = Message::Prepare {
            ballot: b(2, 3),
            from_slot: 0,
        };
        a.handle(3, prepare, &mut out);
        assert!(matches!(
            &out.send_durable[0].msg,
            Message::Promise { floor: 3, accepted, .. } if accepted.len() == 2
        ));
        let mut out = Outbox::new();
        let stale = Message::Accept {
            ballot: b(2, 3),
            slot: 1,
            value: text("x"),
        };
        a.handle(3, stale, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn a_promise_comes_in_chunks_that_fit_the_limit() {
        let limit = PromiseLimit {
            entries: 3,
            bytes: 1 << 20,
        };
        let filled = |rules, limit, slots, value: &str| {
            let mut a = Acceptor::new(1, rules).with_limit(limit);
            for slot in 0..slots {
                let accept = Message::Accept {
                    ballot: b(1, 2),
                    slot,
                    value: text(value),
                };
                a.handle(2, accept, &mut Outbox::new());
            }
            a
        };
        let mut a = filled(Rules::ALL, limit, 7, "v");
        let chunk = |a: &mut Acceptor, from_slot| {
            let mut out = Outbox::new();
            a.handle(
                3,
                Message::Prepare {
                    ballot: b(2, 3),
                    from_slot,
                },
                &mut out,
            );
            match out.send_durable.remove(0).msg {
                Message::Promise { accepted, next, .. } => {
                    (accepted.iter().map(|p| p.slot).collect::<Vec<_>>(), next)
                }
                other => panic!("expected a promise, got {other:?}"),
            }
        };
        assert_eq!(chunk(&mut a, 0), (vec![0, 1, 2], Some(3)));
        // The same ballot asked again from the next slot: the next chunk.
        assert_eq!(chunk(&mut a, 3), (vec![3, 4, 5], Some(6)));
        assert_eq!(chunk(&mut a, 6), (vec![6], None));
        // A byte limit: one value always fits, however large.
        let limit = PromiseLimit {
            entries: 100,
            bytes: 2,
        };
        let mut a = filled(Rules::ALL, limit, 2, "long value");
        assert_eq!(chunk(&mut a, 0), (vec![0], Some(1)));
        // With the `chunks` guard broken, everything at once.
        let mut a = filled(Rules::breaking(Some(Rule::Chunks)), limit, 2, "long value");
        assert_eq!(chunk(&mut a, 0), (vec![0, 1], None));
    }
}
