//! The replicated state machine: a key-value map.
//!
//! Every replica applies the same chosen commands in the same slot order to its own
//! [`Kv`], so every replica holds the same map. [`Kv::apply`] is deterministic and
//! is also the model the linearizability checker replays.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// One key-value operation.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Op {
    /// Set `key` to `value`.
    Put { key: String, value: String },
    /// Read `key`.
    Get { key: String },
    /// Remove `key` (absent keys are fine); the result is the value removed.
    Delete { key: String },
    /// Set `key` to `new` if its value is `expect` (`None`: if it is absent).
    Cas {
        key: String,
        expect: Option<String>,
        new: String,
    },
    /// Open a client session: the replicas give the client an id of its own
    /// (see `paxos::replica`). Changes nothing in the map.
    Register,
    /// Change the cluster's members (`synod member`): the leader proposes
    /// the configuration with these voters and learners as a change of its
    /// own (never in a batch, never applied to the map).
    Reconfig {
        voters: Vec<u64>,
        learners: Vec<u64>,
        /// How to reach the members added at run time.
        contacts: std::collections::BTreeMap<u64, crate::paxos::Contact>,
        /// Change even if too few of the new voters are reachable.
        force: bool,
    },
}

impl Op {
    /// The key the operation touches.
    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Get { key } | Op::Delete { key } | Op::Cas { key, .. } => key,
            Op::Register | Op::Reconfig { .. } => "",
        }
    }

    /// True for operations that never change the map.
    pub fn is_read(&self) -> bool {
        matches!(self, Op::Get { .. })
    }

    /// Bytes of keys and values, for batching limits.
    pub fn size(&self) -> usize {
        match self {
            Op::Put { key, value } => key.len() + value.len(),
            Op::Get { key } | Op::Delete { key } => key.len(),
            Op::Cas { key, expect, new } => {
                key.len() + expect.as_ref().map_or(0, String::len) + new.len()
            }
            Op::Register => 0,
            Op::Reconfig {
                voters,
                learners,
                contacts,
                ..
            } => {
                8 * (voters.len() + learners.len())
                    + contacts
                        .values()
                        .map(|c| 8 + c.addr.len() + c.key.len())
                        .sum::<usize>()
            }
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Put { key, value } => write!(f, "put {key}={value}"),
            Op::Get { key } => write!(f, "get {key}"),
            Op::Delete { key } => write!(f, "delete {key}"),
            Op::Cas { key, expect, new } => match expect {
                Some(old) => write!(f, "cas {key} {old}->{new}"),
                None => write!(f, "cas {key} (absent)->{new}"),
            },
            Op::Register => write!(f, "register"),
            Op::Reconfig {
                voters, learners, ..
            } => write!(f, "reconfig voters {voters:?} learners {learners:?}"),
        }
    }
}

/// What an applied operation returned.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OpResult {
    /// A put or delete took effect.
    Done,
    /// The value read (`None`: the key is absent).
    Value(Option<String>),
    /// Whether a compare-and-set swapped.
    Swapped(bool),
}

impl fmt::Display for OpResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpResult::Done => write!(f, "ok"),
            OpResult::Value(Some(v)) => write!(f, "{v}"),
            OpResult::Value(None) => write!(f, "(absent)"),
            OpResult::Swapped(b) => write!(f, "{}", if *b { "swapped" } else { "unchanged" }),
        }
    }
}

/// The key-value map every replica holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kv {
    map: BTreeMap<String, String>,
}

impl Kv {
    /// An empty map.
    pub fn new() -> Self {
        Kv::default()
    }

    /// Apply `op` and return its result.
    pub fn apply(&mut self, op: &Op) -> OpResult {
        match op {
            Op::Put { key, value } => {
                self.map.insert(key.clone(), value.clone());
                OpResult::Done
            }
            Op::Get { key } => OpResult::Value(self.map.get(key).cloned()),
            Op::Delete { key } => OpResult::Value(self.map.remove(key)),
            Op::Cas { key, expect, new } => {
                if self.map.get(key) == expect.as_ref() {
                    self.map.insert(key.clone(), new.clone());
                    OpResult::Swapped(true)
                } else {
                    OpResult::Swapped(false)
                }
            }
            Op::Register | Op::Reconfig { .. } => OpResult::Done,
        }
    }

    /// Read without going through the log (used by the read-index path and tests).
    pub fn get(&self, key: &str) -> Option<&String> {
        self.map.get(key)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no key is set.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str, v: &str) -> Op {
        Op::Put {
            key: k.into(),
            value: v.into(),
        }
    }

    #[test]
    fn put_get_delete_cas() {
        let mut kv = Kv::new();
        let get = Op::Get { key: "a".into() };
        assert_eq!(kv.apply(&get), OpResult::Value(None));
        assert_eq!(kv.apply(&put("a", "1")), OpResult::Done);
        assert_eq!(kv.apply(&get), OpResult::Value(Some("1".into())));
        let cas = |e: Option<&str>, n: &str| Op::Cas {
            key: "a".into(),
            expect: e.map(String::from),
            new: n.into(),
        };
        assert_eq!(kv.apply(&cas(Some("2"), "3")), OpResult::Swapped(false));
        assert_eq!(kv.apply(&cas(Some("1"), "3")), OpResult::Swapped(true));
        assert_eq!(kv.apply(&get), OpResult::Value(Some("3".into())));
        let del = Op::Delete { key: "a".into() };
        assert_eq!(kv.apply(&del), OpResult::Value(Some("3".into())));
        assert_eq!(kv.apply(&del), OpResult::Value(None));
        assert_eq!(kv.apply(&cas(None, "4")), OpResult::Swapped(true));
        assert_eq!(kv.get("a").map(String::as_str), Some("4"));
    }
}
