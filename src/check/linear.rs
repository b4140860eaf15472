//! Linearizability of a key-value history, key by key.
//!
//! Every operation touches one key, so the history is linearizable if and only if
//! each key's sub-history is (Herlihy and Wing's locality). Each key is checked by
//! the Wing–Gong search with Lowe's memoisation: walk the operations in time
//! order, try to linearize a pending call against the model, backtrack at a return
//! whose call could not be placed, and never revisit a (set of linearized
//! operations, model state) pair. A step budget turns a search that would run too
//! long into "inconclusive" rather than a hang.
//!
//! Outcomes: an acknowledged operation must take effect between its invocation and
//! its completion with the result it returned. A failed one never took effect and
//! is left out. One whose outcome is unknown may take effect at any time after its
//! invocation, or never, and its result is not checked; an unknown read is left
//! out, and so is an unknown write whose value nobody ever observed, unless some
//! cas on the key failed to swap (leaving it out is then equivalent to placing it
//! after everything else).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;

use super::history::{History, Operation, Status};
use crate::kv::{Op, OpResult};

/// What the search found for one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyResult {
    /// Some total order explains every result.
    Linearizable,
    /// No order does. `stuck` holds the operations that could not be placed after
    /// the longest linearizable prefix, and `prefix` that prefix.
    NotLinearizable {
        prefix: Vec<usize>,
        stuck: Vec<usize>,
        value: Option<String>,
    },
    /// The search ran out of budget.
    Inconclusive,
}

/// One key's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyVerdict {
    /// The key.
    pub key: String,
    /// Operations checked (after leaving out those that cannot matter).
    pub ops: usize,
    /// The finding.
    pub result: KeyResult,
    /// Search steps spent.
    pub steps: u64,
}

impl KeyVerdict {
    /// The violation in words: the longest explainable prefix, the value it leaves,
    /// and the operations that cannot follow it.
    pub fn explain(&self, history: &History) -> String {
        match &self.result {
            KeyResult::Linearizable => "linearizable".to_string(),
            KeyResult::Inconclusive => format!("inconclusive after {} search steps", self.steps),
            KeyResult::NotLinearizable {
                prefix,
                stuck,
                value,
            } => {
                let mut s = format!(
                    "{} of {} operations linearize, leaving the value {}; none of these can come next:",
                    prefix.len(),
                    self.ops,
                    value.as_deref().map_or("(absent)".to_string(), |v| format!("{v:?}"))
                );
                for &id in stuck.iter().take(4) {
                    let _ = write!(s, " [{}]", describe(&history.ops[id]));
                }
                if let Some(&last) = prefix.last() {
                    let _ = write!(s, "; last placed: [{}]", describe(&history.ops[last]));
                }
                s
            }
        }
    }
}

/// An operation in one line: client, what, result, interval.
pub fn describe(op: &Operation) -> String {
    let result = match &op.status {
        Status::Ok(r) => format!("→ {r}"),
        Status::Failed => "→ failed".to_string(),
        Status::Unknown => "→ ?".to_string(),
    };
    let end = op.complete.map_or("…".to_string(), |c| c.to_string());
    format!(
        "#{} client {} {} {result} @{}..{end}",
        op.id, op.client, op.op, op.invoke
    )
}

/// The verdict for a whole history.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// One entry per key, in key order.
    pub keys: Vec<KeyVerdict>,
}

impl Verdict {
    /// True if every key is linearizable.
    pub fn is_linearizable(&self) -> bool {
        self.keys
            .iter()
            .all(|k| k.result == KeyResult::Linearizable)
    }

    /// True if a key ran out of budget (and none was found not linearizable).
    pub fn is_inconclusive(&self) -> bool {
        self.keys
            .iter()
            .any(|k| k.result == KeyResult::Inconclusive)
            && self.violations().next().is_none()
    }

    /// The keys found not linearizable.
    pub fn violations(&self) -> impl Iterator<Item = &KeyVerdict> {
        self.keys
            .iter()
            .filter(|k| matches!(k.result, KeyResult::NotLinearizable { .. }))
    }

    /// Search steps over all keys.
    pub fn steps(&self) -> u64 {
        self.keys.iter().map(|k| k.steps).sum()
    }
}

/// Check `history` for linearizability, spending at most `budget` search steps per
/// key.
pub fn check(history: &History, budget: u64) -> Verdict {
    let mut by_key: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for op in &history.ops {
        by_key.entry(op.op.key()).or_default().push(op);
    }
    let keys = by_key
        .into_iter()
        .map(|(key, ops)| check_key(key, &ops, budget))
        .collect();
    Verdict { keys }
}

/// One operation as the search sees it.
struct Call {
    id: usize,
    op: Op,
    /// `None`: unknown outcome, any result fits.
    result: Option<OpResult>,
}

#[derive(Clone, Copy)]
struct Entry {
    call: usize,
    is_return: bool,
    /// Index of the matching entry (the return of a call, the call of a return).
    mate: usize,
    prev: usize,
    next: usize,
}

const NIL: usize = usize::MAX;

fn relevant<'a>(ops: &[&'a Operation]) -> Vec<&'a Operation> {
    // Values someone observed: read, or expected by a cas that swapped.
    let mut observed: BTreeSet<&str> = BTreeSet::new();
    for op in ops {
        match (&op.op, &op.status) {
            (Op::Get { .. } | Op::Delete { .. }, Status::Ok(OpResult::Value(Some(v)))) => {
                observed.insert(v);
            }
            (
                Op::Cas {
                    expect: Some(v), ..
                },
                Status::Ok(OpResult::Swapped(true)) | Status::Unknown,
            ) => {
                observed.insert(v);
            }
            _ => {}
        }
    }
    // A cas that did not swap observed only that the value was something else,
    // which any write could explain: then every unknown write must stay.
    let unswapped = ops
        .iter()
        .any(|op| matches!(op.status, Status::Ok(OpResult::Swapped(false))));
    ops.iter()
        .copied()
        .filter(|op| match (&op.op, &op.status) {
            (_, Status::Failed) => false,
            (Op::Get { .. }, Status::Unknown) => false,
            (Op::Put { value, .. }, Status::Unknown) => {
                unswapped || observed.contains(value.as_str())
            }
            (Op::Cas { new, .. }, Status::Unknown) => unswapped || observed.contains(new.as_str()),
            _ => true,
        })
        .collect()
}

fn check_key(key: &str, ops: &[&Operation], budget: u64) -> KeyVerdict {
    let ops = relevant(ops);
    let calls: Vec<Call> = ops
        .iter()
        .map(|o| Call {
            id: o.id,
            op: o.op.clone(),
            result: match &o.status {
                Status::Ok(r) => Some(r.clone()),
                _ => None,
            },
        })
        .collect();
    // Events in time order; at equal times calls come before returns, so
    // operations that touch in time count as concurrent (never a false alarm).
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * ops.len());
    for (i, o) in ops.iter().enumerate() {
        events.push((o.invoke, false, i));
        let end = match o.status {
            Status::Ok(_) => o.complete.unwrap_or(u64::MAX),
            _ => u64::MAX,
        };
        events.push((end, true, i));
    }
    events.sort();
    let mut entries: Vec<Entry> = Vec::with_capacity(events.len() + 1);
    let mut call_entry = vec![NIL; ops.len()];
    // entries[0] is the list head sentinel.
    entries.push(Entry {
        call: NIL,
        is_return: false,
        mate: NIL,
        prev: NIL,
        next: NIL,
    });
    for &(_, is_return, call) in &events {
        let idx = entries.len();
        let prev = idx - 1;
        entries[prev].next = idx;
        let mate = if is_return { call_entry[call] } else { NIL };
        if !is_return {
            call_entry[call] = idx;
        } else {
            entries[mate].mate = idx;
        }
        entries.push(Entry {
            call,
            is_return,
            mate,
            prev,
            next: NIL,
        });
    }

    let mut values: HashMap<String, u32> = HashMap::new();
    let mut names: Vec<String> = Vec::new();
    let mut intern = |v: &str| -> u32 {
        if let Some(&i) = values.get(v) {
            return i;
        }
        names.push(v.to_string());
        let i = names.len() as u32;
        values.insert(v.to_string(), i);
        i
    };
    // Pre-intern every value so the step function needs no mutation.
    let mut step_table: Vec<(Option<u32>, Option<u32>)> = Vec::with_capacity(calls.len());
    for c in &calls {
        let entry = match &c.op {
            Op::Put { value, .. } => (None, Some(intern(value))),
            Op::Cas { expect, new, .. } => (expect.as_deref().map(&mut intern), Some(intern(new))),
            Op::Get { .. } | Op::Delete { .. } => match &c.result {
                Some(OpResult::Value(Some(v))) => (Some(intern(v)), None),
                _ => (None, None),
            },
        };
        step_table.push(entry);
    }

    // The model: the key's value, 0 for absent. Returns the state after `call`,
    // or None if `call`'s recorded result is impossible in `state`.
    let step = |call: usize, state: u32| -> Option<u32> {
        let c = &calls[call];
        let (a, b) = step_table[call];
        match &c.op {
            Op::Put { .. } => match &c.result {
                None | Some(OpResult::Done) => b,
                _ => None,
            },
            // A delete saw the value it removed (absent: 0).
            Op::Delete { .. } => match &c.result {
                Some(OpResult::Value(_)) => (a.unwrap_or(0) == state).then_some(0),
                None => Some(0),
                _ => None,
            },
            Op::Get { .. } => match &c.result {
                Some(OpResult::Value(_)) => (a.unwrap_or(0) == state).then_some(state),
                None => Some(state),
                _ => None,
            },
            Op::Cas { .. } => {
                let swaps = a.unwrap_or(0) == state;
                match (&c.result, swaps) {
                    (None, true) | (Some(OpResult::Swapped(true)), true) => b,
                    (None, false) | (Some(OpResult::Swapped(false)), false) => Some(state),
                    _ => None,
                }
            }
        }
    };

    let n = calls.len();
    // The set of linearized calls is remembered by a Zobrist hash (the XOR of a
    // random 128-bit word per call): constant time per step and 16 bytes per
    // cache entry, where a bitset would cost n/8 bytes to copy and keep.
    let mut rng = crate::rng::Rng::new(0x5A0B_0157);
    let zobrist: Vec<u128> = (0..n)
        .map(|_| ((rng.next_u64() as u128) << 64) | rng.next_u64() as u128)
        .collect();
    let mut linearized: u128 = 0;
    let mut cache: HashSet<(u128, u32)> = HashSet::new();
    let mut stack: Vec<(usize, u32)> = Vec::new();
    let mut state = 0u32;
    let mut steps = 0u64;
    let mut best: (Vec<usize>, u32, Vec<usize>) = (Vec::new(), 0, Vec::new());
    let mut cursor = entries[0].next;

    let lift = |entries: &mut Vec<Entry>, e: usize| {
        let Entry {
            prev, next, mate, ..
        } = entries[e];
        entries[prev].next = next;
        if next != NIL {
            entries[next].prev = prev;
        }
        let Entry { prev, next, .. } = entries[mate];
        entries[prev].next = next;
        if next != NIL {
            entries[next].prev = prev;
        }
    };
    let unlift = |entries: &mut Vec<Entry>, e: usize| {
        let mate = entries[e].mate;
        let Entry { prev, next, .. } = entries[mate];
        entries[prev].next = mate;
        if next != NIL {
            entries[next].prev = mate;
        }
        let Entry { prev, next, .. } = entries[e];
        entries[prev].next = e;
        if next != NIL {
            entries[next].prev = e;
        }
    };

    let result = loop {
        if entries[0].next == NIL {
            break KeyResult::Linearizable;
        }
        steps += 1;
        if steps > budget {
            break KeyResult::Inconclusive;
        }
        let e = cursor;
        if e != NIL && !entries[e].is_return {
            let call = entries[e].call;
            if let Some(next_state) = step(call, state) {
                let lin = linearized ^ zobrist[call];
                if cache.insert((lin, next_state)) {
                    stack.push((e, state));
                    state = next_state;
                    linearized = lin;
                    lift(&mut entries, e);
                    cursor = entries[0].next;
                    continue;
                }
            }
            cursor = entries[e].next;
            continue;
        }
        // A return (or the end of the list): the calls before it could not all
        // be placed. Remember how far we got, then backtrack.
        if stack.len() > best.0.len() || best.2.is_empty() {
            let placed: Vec<usize> = stack
                .iter()
                .map(|&(e, _)| calls[entries[e].call].id)
                .collect();
            let mut pending = Vec::new();
            let mut p = entries[0].next;
            while p != NIL && p != e {
                if !entries[p].is_return {
                    pending.push(calls[entries[p].call].id);
                }
                p = entries[p].next;
            }
            best = (placed, state, pending);
        }
        let Some((top, prev_state)) = stack.pop() else {
            break KeyResult::NotLinearizable {
                prefix: best.0.clone(),
                stuck: best.2.clone(),
                value: (best.1 > 0).then(|| names[best.1 as usize - 1].clone()),
            };
        };
        state = prev_state;
        let call = entries[top].call;
        linearized ^= zobrist[call];
        unlift(&mut entries, top);
        cursor = entries[top].next;
    };
    KeyVerdict {
        key: key.to_string(),
        ops: n,
        result,
        steps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct H(History);

    impl H {
        fn new() -> Self {
            H(History::new())
        }
        fn op(
            &mut self,
            client: u64,
            op: Op,
            invoke: u64,
            complete: u64,
            status: Status,
        ) -> &mut Self {
            let id = self.0.invoke(client, self.0.ops.len() as u64, op, invoke);
            self.0.complete(id, complete, status);
            self
        }
        fn put(&mut self, c: u64, v: &str, a: u64, b: u64) -> &mut Self {
            self.op(
                c,
                Op::Put {
                    key: "k".into(),
                    value: v.into(),
                },
                a,
                b,
                Status::Ok(OpResult::Done),
            )
        }
        fn get(&mut self, c: u64, v: Option<&str>, a: u64, b: u64) -> &mut Self {
            self.op(
                c,
                Op::Get { key: "k".into() },
                a,
                b,
                Status::Ok(OpResult::Value(v.map(String::from))),
            )
        }
        fn verdict(&self) -> Verdict {
            check(&self.0, 100_000)
        }
    }

    #[test]
    fn sequential_history_is_linearizable() {
        let mut h = H::new();
        h.put(1, "a", 0, 1)
            .get(2, Some("a"), 2, 3)
            .put(1, "b", 4, 5)
            .get(2, Some("b"), 6, 7);
        assert!(h.verdict().is_linearizable());
    }

    #[test]
    fn stale_read_is_not() {
        // b was acknowledged before the read began, yet the read saw a.
        let mut h = H::new();
        h.put(1, "a", 0, 1)
            .put(1, "b", 2, 3)
            .get(2, Some("a"), 4, 5);
        let v = h.verdict();
        assert!(!v.is_linearizable());
        let bad = v.violations().next().unwrap();
        assert!(
            bad.explain(&h.0).contains("none of these can come next"),
            "{}",
            bad.explain(&h.0)
        );
    }

    #[test]
    fn concurrent_operations_may_take_either_order() {
        let mut h = H::new();
        h.put(1, "a", 0, 10)
            .put(2, "b", 1, 9)
            .get(3, Some("a"), 11, 12);
        assert!(h.verdict().is_linearizable());
        let mut h = H::new();
        h.put(1, "a", 0, 10)
            .put(2, "b", 1, 9)
            .get(3, Some("b"), 11, 12);
        assert!(h.verdict().is_linearizable());
    }

    #[test]
    fn read_of_a_value_never_written_is_not() {
        let mut h = H::new();
        h.put(1, "a", 0, 1).get(2, Some("zz"), 2, 3);
        assert!(!h.verdict().is_linearizable());
        let mut h = H::new();
        h.get(2, Some("a"), 0, 1).put(1, "a", 2, 3);
        assert!(
            !h.verdict().is_linearizable(),
            "a read cannot see a later write"
        );
    }

    #[test]
    fn unknown_writes_may_or_may_not_have_happened() {
        // An unknown put whose value is later read: it happened.
        let mut h = H::new();
        h.put(1, "a", 0, 1)
            .op(
                2,
                Op::Put {
                    key: "k".into(),
                    value: "b".into(),
                },
                2,
                3,
                Status::Unknown,
            )
            .get(3, Some("b"), 10, 11)
            .get(3, Some("b"), 12, 13);
        assert!(h.verdict().is_linearizable());
        // ... or not: a later read still sees a.
        let mut h = H::new();
        h.put(1, "a", 0, 1)
            .op(
                2,
                Op::Put {
                    key: "k".into(),
                    value: "b".into(),
                },
                2,
                3,
                Status::Unknown,
            )
            .get(3, Some("a"), 10, 11);
        assert!(h.verdict().is_linearizable());
        // But it cannot flicker: b, then a, then b again.
        let mut h = H::new();
        h.put(1, "a", 0, 1)
            .op(
                2,
                Op::Put {
                    key: "k".into(),
                    value: "b".into(),
                },
                2,
                3,
                Status::Unknown,
            )
            .get(3, Some("b"), 10, 11)
            .get(3, Some("a"), 12, 13);
        assert!(!h.verdict().is_linearizable());
        // A cas that failed to swap may be explained by an unknown write alone.
        let mut h = H::new();
        h.op(
            2,
            Op::Put {
                key: "k".into(),
                value: "b".into(),
            },
            0,
            1,
            Status::Unknown,
        )
        .op(
            1,
            Op::Cas {
                key: "k".into(),
                expect: None,
                new: "c".into(),
            },
            2,
            3,
            Status::Ok(OpResult::Swapped(false)),
        );
        assert!(h.verdict().is_linearizable());
        // Nor can it take effect before it was invoked.
        let mut h = H::new();
        h.get(3, Some("b"), 0, 1).op(
            2,
            Op::Put {
                key: "k".into(),
                value: "b".into(),
            },
            2,
            3,
            Status::Unknown,
        );
        assert!(!h.verdict().is_linearizable());
    }

    #[test]
    fn failed_writes_never_happened() {
        let mut h = H::new();
        h.put(1, "a", 0, 1)
            .op(
                2,
                Op::Put {
                    key: "k".into(),
                    value: "b".into(),
                },
                2,
                3,
                Status::Failed,
            )
            .get(3, Some("b"), 10, 11);
        assert!(!h.verdict().is_linearizable());
    }

    #[test]
    fn cas_and_delete_follow_the_model() {
        let cas = |e: &str, n: &str| Op::Cas {
            key: "k".into(),
            expect: Some(e.into()),
            new: n.into(),
        };
        let mut h = H::new();
        h.put(1, "a", 0, 1)
            .op(1, cas("a", "b"), 2, 3, Status::Ok(OpResult::Swapped(true)))
            .op(2, cas("a", "c"), 4, 5, Status::Ok(OpResult::Swapped(false)))
            .op(
                2,
                Op::Delete { key: "k".into() },
                6,
                7,
                Status::Ok(OpResult::Value(Some("b".into()))),
            )
            .get(1, None, 8, 9);
        assert!(h.verdict().is_linearizable());
        let mut h = H::new();
        h.put(1, "a", 0, 1).op(
            2,
            Op::Delete { key: "k".into() },
            2,
            3,
            Status::Ok(OpResult::Value(None)),
        );
        assert!(
            !h.verdict().is_linearizable(),
            "a delete that removed nothing after a put"
        );
        let mut h = H::new();
        h.put(1, "a", 0, 1)
            .op(1, cas("a", "b"), 2, 3, Status::Ok(OpResult::Swapped(false)));
        assert!(
            !h.verdict().is_linearizable(),
            "a cas that should have swapped did not"
        );
    }

    #[test]
    fn keys_are_checked_apart() {
        let mut h = History::new();
        let id = h.invoke(
            1,
            1,
            Op::Put {
                key: "x".into(),
                value: "1".into(),
            },
            0,
        );
        h.complete(id, 1, Status::Ok(OpResult::Done));
        let id = h.invoke(2, 1, Op::Get { key: "y".into() }, 2);
        h.complete(id, 3, Status::Ok(OpResult::Value(Some("1".into()))));
        let v = check(&h, 1000);
        assert_eq!(v.keys.len(), 2);
        assert_eq!(
            v.violations().map(|k| k.key.as_str()).collect::<Vec<_>>(),
            vec!["y"]
        );
    }

    #[test]
    fn the_budget_makes_a_long_search_inconclusive() {
        let mut h = H::new();
        for i in 0..12 {
            h.put(i, &format!("v{i}"), 0, 100);
        }
        h.get(99, Some("nope"), 101, 102);
        let v = check(&h.0, 50);
        assert!(v.is_inconclusive());
    }
}
