//! Persist-before-send, once for every shell.
//!
//! A role's handler fills an [`Outbox`]; the shell hands it to the role's
//! [`Gate`], which numbers the records as one batch for the log and holds back
//! every message that may leave only once those records (and all before them)
//! are durable. The shell writes and syncs the batch however it likes (a thread
//! of its own, group commit, a simulated disk with a random latency) and calls
//! [`Gate::synced`] when it is durable; that releases what was held. The real
//! node and the simulator both go through this type, so the order that keeps a
//! restarted acceptor from contradicting itself is simulated exactly as it
//! runs (the shape of raft-rs's `Ready` and `advance`).

use std::collections::VecDeque;

use super::message::{Envelope, Forgotten, Notice, Outbox, Record, Reply, SnapshotFile};

/// Records for a role's log, as one batch.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Persist {
    /// The batch's number: report its durability with [`Gate::synced`].
    pub batch: u64,
    /// The records, in order.
    pub records: Vec<Record>,
    /// The records replace the whole log (a compaction), written whole or not
    /// at all; otherwise they are appended.
    pub rewrite: bool,
}

/// What a shell must do now with one outbox.
#[derive(Debug, Default)]
pub struct Ready {
    /// Records for the role's log.
    pub persist: Option<Persist>,
    /// A snapshot to make durable (then tell every role `Snapshotted`).
    pub snapshot: Option<SnapshotFile>,
    /// Messages that may leave now (including any held ones this outbox did
    /// not wait for).
    pub send: Vec<Envelope>,
    /// Notices to the node's other roles.
    pub notices: Vec<Notice>,
    /// Answers to clients.
    pub replies: Vec<Reply>,
    /// State to free off the event loop.
    pub forgotten: Forgotten,
}

/// One role's order of records and the messages that depend on them.
#[derive(Debug, Default)]
pub struct Gate {
    written: u64,
    synced: u64,
    held: VecDeque<(u64, Vec<Envelope>)>,
}

impl Gate {
    /// A gate with nothing written.
    pub fn new() -> Self {
        Gate::default()
    }

    /// Take one outbox: number its records, hold what must wait for them.
    pub fn ready(&mut self, out: Outbox) -> Ready {
        let Outbox {
            persist,
            rewrite,
            snapshot,
            mut send,
            send_durable,
            notices,
            replies,
            forgotten,
        } = out;
        let persist = (!persist.is_empty() || rewrite).then(|| {
            self.written += 1;
            Persist {
                batch: self.written,
                records: persist,
                rewrite,
            }
        });
        if !send_durable.is_empty() {
            if self.synced >= self.written {
                // Everything emitted so far is durable already.
                send.extend(send_durable);
            } else {
                self.held.push_back((self.written, send_durable));
            }
        }
        Ready {
            persist,
            snapshot,
            send,
            notices,
            replies,
            forgotten,
        }
    }

    /// Every batch up to `batch` is durable: the messages that waited for it.
    pub fn synced(&mut self, batch: u64) -> Vec<Envelope> {
        self.synced = self.synced.max(batch);
        let mut released = Vec::new();
        while self.held.front().is_some_and(|(b, _)| *b <= self.synced) {
            released.extend(self.held.pop_front().expect("checked").1);
        }
        released
    }

    /// The last batch handed out.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The last batch known durable.
    pub fn durable(&self) -> u64 {
        self.synced
    }

    /// Messages waiting for a sync.
    pub fn held(&self) -> usize {
        self.held.iter().map(|(_, m)| m.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paxos::{Ballot, Message};

    fn env(to: u64) -> Envelope {
        Envelope {
            from: 1,
            to,
            msg: Message::Nack {
                ballot: Ballot::ZERO,
                promised: Ballot::ZERO,
            },
        }
    }

    #[test]
    fn durable_messages_wait_for_every_record_before_them() {
        let mut g = Gate::new();
        let mut out = Outbox::new();
        out.persist.push(Record::Round { round: 1 });
        out.send_durable.push(env(2));
        out.send.push(env(3));
        let r = g.ready(out);
        assert_eq!(r.persist.as_ref().map(|p| p.batch), Some(1));
        assert_eq!(
            r.send.len(),
            1,
            "only the message that needs nothing leaves"
        );
        // A later outbox without records still waits for batch 1.
        let mut out = Outbox::new();
        out.send_durable.push(env(4));
        let r = g.ready(out);
        assert!(r.persist.is_none() && r.send.is_empty());
        assert_eq!(g.held(), 2);
        assert_eq!(
            g.synced(1).iter().map(|e| e.to).collect::<Vec<_>>(),
            vec![2, 4]
        );
        // With everything durable, a durable message leaves at once.
        let mut out = Outbox::new();
        out.send_durable.push(env(5));
        assert_eq!(g.ready(out).send.len(), 1);
    }

    #[test]
    fn syncs_release_in_order_and_never_early() {
        let mut g = Gate::new();
        for to in [2, 3] {
            let mut out = Outbox::new();
            out.persist.push(Record::Round { round: to });
            out.send_durable.push(env(to));
            assert!(g.ready(out).send.is_empty());
        }
        assert!(g.synced(0).is_empty());
        assert_eq!(g.synced(1).len(), 1);
        assert_eq!(g.synced(2).len(), 1);
        assert_eq!(g.durable(), 2);
    }
}
