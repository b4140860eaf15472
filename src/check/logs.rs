//! Checks over the nodes' chosen logs: agreement slot by slot, and durability of
//! acknowledged writes.

use std::collections::{BTreeMap, HashSet};

use super::history::{History, Status};
use crate::kv::{Op, OpResult};
use crate::paxos::{NodeId, Slot, Value};

/// Two nodes learned different values for one slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disagreement {
    /// The slot.
    pub slot: Slot,
    /// Each value learned for it, with the nodes that learned it.
    pub variants: Vec<(Value, Vec<NodeId>)>,
}

impl std::fmt::Display for Disagreement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "slot {}: ", self.slot)?;
        let parts: Vec<String> = self
            .variants
            .iter()
            .map(|(v, nodes)| {
                let ns: Vec<String> = nodes.iter().map(|n| n.to_string()).collect();
                format!("node(s) {} learned {}", ns.join(","), v.brief())
            })
            .collect();
        write!(f, "{}", parts.join("; "))
    }
}

/// Every node's chosen log, by node.
pub type Logs = BTreeMap<NodeId, BTreeMap<Slot, Value>>;

/// Per slot, each value the nodes learned for it and the nodes that learned it.
pub type Slots = BTreeMap<Slot, Vec<(Value, Vec<NodeId>)>>;

/// The nodes' logs side by side, slot by slot.
pub fn by_slot(logs: &Logs) -> Slots {
    let mut by_slot: Slots = BTreeMap::new();
    for (&node, log) in logs {
        for (&slot, value) in log {
            let variants = by_slot.entry(slot).or_default();
            match variants.iter_mut().find(|(v, _)| v == value) {
                Some((_, nodes)) => nodes.push(node),
                None => variants.push((value.clone(), vec![node])),
            }
        }
    }
    by_slot
}

/// Every slot on which the nodes' logs disagree, in slot order.
pub fn agreement(logs: &Logs) -> Vec<Disagreement> {
    by_slot(logs)
        .into_iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(slot, variants)| Disagreement { slot, variants })
        .collect()
}

/// True for an operation that changed the map and was acknowledged.
pub fn acknowledged_write(status: &Status, op: &Op) -> bool {
    match (status, op) {
        (Status::Ok(OpResult::Swapped(swapped)), Op::Cas { .. }) => *swapped,
        (Status::Ok(_), op) => !op.is_read(),
        _ => false,
    }
}

/// Note the `(client, seq)` of every command in `values`.
pub fn note_commands<'a>(
    values: impl IntoIterator<Item = &'a Value>,
    present: &mut HashSet<(u64, u64)>,
) {
    for value in values {
        if let Value::Batch(cmds) = value {
            present.extend(cmds.iter().map(|c| (c.client, c.seq)));
        }
    }
}

/// The ids of acknowledged writes whose command is not in `present` (lost
/// writes), and how many acknowledged writes there were.
pub fn lost_writes(history: &History, present: &HashSet<(u64, u64)>) -> (Vec<usize>, usize) {
    let acked: Vec<&super::history::Operation> = history
        .ops
        .iter()
        .filter(|o| acknowledged_write(&o.status, &o.op))
        .collect();
    let lost = acked
        .iter()
        .filter(|o| !present.contains(&(o.client, o.seq)))
        .map(|o| o.id)
        .collect();
    (lost, acked.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paxos::Command;

    fn batch(client: u64, seq: u64) -> Value {
        Value::Batch(vec![Command {
            client,
            seq,
            op: Op::Put {
                key: "k".into(),
                value: format!("{client}-{seq}"),
            },
        }])
    }

    #[test]
    fn disagreement_is_found_and_named() {
        let mut logs = BTreeMap::new();
        logs.insert(1, BTreeMap::from([(0, batch(1, 1)), (1, batch(1, 2))]));
        logs.insert(2, BTreeMap::from([(0, batch(1, 1)), (1, Value::Noop)]));
        logs.insert(3, BTreeMap::from([(0, batch(1, 1))]));
        let d = agreement(&logs);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].slot, 1);
        assert!(
            d[0].to_string().contains("node(s) 2 learned no-op"),
            "{}",
            d[0]
        );
        logs.remove(&2);
        assert!(agreement(&logs).is_empty());
    }

    #[test]
    fn an_acknowledged_write_missing_from_the_log_is_lost() {
        let mut h = History::new();
        for seq in 1..=3 {
            let id = h.invoke(
                1,
                seq,
                Op::Put {
                    key: "k".into(),
                    value: format!("1-{seq}"),
                },
                seq,
            );
            h.complete(id, seq + 1, Status::Ok(OpResult::Done));
        }
        let id = h.invoke(
            2,
            1,
            Op::Put {
                key: "k".into(),
                value: "x".into(),
            },
            9,
        );
        h.complete(id, 10, Status::Unknown);
        let log = BTreeMap::from([(0, batch(1, 1)), (1, batch(1, 3))]);
        let mut present = HashSet::new();
        note_commands(log.values(), &mut present);
        let (lost, acked) = lost_writes(&h, &present);
        assert_eq!(acked, 3);
        assert_eq!(lost, vec![1]);
    }
}
