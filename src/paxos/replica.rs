//! The replica: applies chosen commands in slot order to the key-value map.
//!
//! Slots may be learned out of order; the replica waits for the hole before it.
//! Every command carries `(client, seq)`; the replica remembers the last one per
//! client and its result, so a command proposed twice (a client retried after a
//! leader change) is applied once and answered again with the same result.

use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use super::ballot::Slot;
use super::message::{Command, Notice, Outbox, Outcome, Reply, Value};
use crate::kv::{Kv, OpResult};

/// One replica's state.
#[derive(Clone, Debug)]
pub struct Replica {
    next: Slot,
    pending: BTreeMap<Slot, Value>,
    kv: Kv,
    sessions: BTreeMap<u64, (u64, OpResult)>,
    digest: u64,
    applied: u64,
    audit: Option<Vec<(Slot, u64, u64)>>,
    /// Confirmed reads waiting for the slots below their index.
    reads: BTreeMap<Slot, Vec<Command>>,
}

impl Default for Replica {
    fn default() -> Self {
        Replica::new()
    }
}

impl Replica {
    /// An empty replica, about to apply slot 0.
    pub fn new() -> Self {
        Replica {
            next: 0,
            pending: BTreeMap::new(),
            kv: Kv::new(),
            sessions: BTreeMap::new(),
            digest: 0,
            applied: 0,
            audit: None,
            reads: BTreeMap::new(),
        }
    }

    /// A replica that also records every command it applies, `(slot, client, seq)`,
    /// for the simulator's checks.
    pub fn with_audit() -> Self {
        Replica {
            audit: Some(Vec::new()),
            ..Replica::new()
        }
    }

    /// The next slot to apply: every slot below it is applied.
    pub fn next_slot(&self) -> Slot {
        self.next
    }

    /// A digest of the whole applied sequence (equal digests: equal sequences).
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// How many commands took effect (duplicates not counted).
    pub fn applied_commands(&self) -> u64 {
        self.applied
    }

    /// The map as applied so far.
    pub fn kv(&self) -> &Kv {
        &self.kv
    }

    /// `(slot, client, seq)` of every command applied, if recorded.
    pub fn audit(&self) -> Option<&[(Slot, u64, u64)]> {
        self.audit.as_deref()
    }

    /// Handle a notice for the replica role.
    pub fn notice(&mut self, notice: Notice, out: &mut Outbox) {
        match notice {
            Notice::Chosen { slot, value } => {
                if slot >= self.next {
                    self.pending.insert(slot, value);
                }
                while let Some(value) = self.pending.remove(&self.next) {
                    self.apply(self.next, value, out);
                    self.next += 1;
                }
            }
            Notice::Read { cmd, index } => self.reads.entry(index).or_default().push(cmd),
            _ => {}
        }
        // Reads whose index is applied: answer from the map as it stands.
        while let Some(entry) = self.reads.first_entry() {
            if *entry.key() > self.next {
                break;
            }
            for cmd in entry.remove() {
                let result = self.kv.apply(&cmd.op);
                out.replies.push(Reply {
                    client: cmd.client,
                    seq: cmd.seq,
                    outcome: Outcome::Done(result),
                });
            }
        }
    }

    fn apply(&mut self, slot: Slot, value: Value, out: &mut Outbox) {
        let mut h = DefaultHasher::new();
        self.digest.hash(&mut h);
        slot.hash(&mut h);
        value.hash(&mut h);
        self.digest = h.finish();
        let Value::Batch(cmds) = value else {
            return;
        };
        for cmd in cmds {
            let result = match self.sessions.get(&cmd.client) {
                // The same command again: answer as before, apply nothing.
                Some((seq, result)) if *seq == cmd.seq => result.clone(),
                // Older than what this client has already seen done: it moved on.
                Some((seq, _)) if *seq > cmd.seq => continue,
                _ => {
                    let result = self.kv.apply(&cmd.op);
                    self.sessions.insert(cmd.client, (cmd.seq, result.clone()));
                    self.applied += 1;
                    if let Some(audit) = &mut self.audit {
                        audit.push((slot, cmd.client, cmd.seq));
                    }
                    result
                }
            };
            out.replies.push(Reply {
                client: cmd.client,
                seq: cmd.seq,
                outcome: Outcome::Done(result),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::Op;

    fn put(client: u64, seq: u64, v: &str) -> Command {
        Command {
            client,
            seq,
            op: Op::Put {
                key: "k".into(),
                value: v.into(),
            },
        }
    }

    #[test]
    fn applies_in_slot_order_once_per_command() {
        let mut r = Replica::with_audit();
        let mut out = Outbox::new();
        r.notice(
            Notice::Chosen {
                slot: 1,
                value: Value::Batch(vec![put(1, 2, "b")]),
            },
            &mut out,
        );
        assert!(out.replies.is_empty(), "slot 0 is still a hole");
        r.notice(
            Notice::Chosen {
                slot: 0,
                value: Value::Batch(vec![put(1, 1, "a")]),
            },
            &mut out,
        );
        r.notice(
            Notice::Chosen {
                slot: 2,
                value: Value::Batch(vec![put(1, 2, "b"), put(1, 1, "a")]),
            },
            &mut out,
        );
        assert_eq!(r.kv().get("k").map(String::as_str), Some("b"));
        assert_eq!(r.applied_commands(), 2);
        assert_eq!(r.audit().unwrap(), &[(0, 1, 1), (1, 1, 2)]);
        // The duplicate of seq 2 is answered again; the older seq 1 is not.
        let answered: Vec<u64> = out.replies.iter().map(|r| r.seq).collect();
        assert_eq!(answered, vec![1, 2, 2]);
        assert_eq!(r.next_slot(), 3);
    }

    #[test]
    fn equal_sequences_equal_digests() {
        let mut a = Replica::new();
        let mut b = Replica::new();
        for r in [&mut a, &mut b] {
            r.notice(
                Notice::Chosen {
                    slot: 0,
                    value: Value::Noop,
                },
                &mut Outbox::new(),
            );
        }
        assert_eq!(a.digest(), b.digest());
        a.notice(
            Notice::Chosen {
                slot: 1,
                value: Value::Noop,
            },
            &mut Outbox::new(),
        );
        b.notice(
            Notice::Chosen {
                slot: 1,
                value: Value::Text("x".into()),
            },
            &mut Outbox::new(),
        );
        assert_ne!(a.digest(), b.digest());
    }
}
