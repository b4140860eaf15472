//! The smallest window of a key's history that cannot be linearized: what
//! `synod check` prints for a violation instead of the whole history.
//!
//! The window `[t0, t1]` of one key is checked as a history of its own:
//!
//! - an operation invoked at or after `t0` that completed by `t1` keeps its
//!   outcome;
//! - one invoked before `t0` that completed in the window took effect either
//!   before the window (then its effect is in the starting value) or in it by
//!   its completion: it becomes optional, with its completion as a deadline,
//!   and its result is not checked;
//! - one still running at `t1` (completed after it, or of unknown outcome and
//!   invoked by then) may take effect in the window or not: unknown, invoked
//!   at `t0` at the earliest;
//! - one completed before `t0` or invoked after `t1` is left out;
//! - the value at `t0` is absent if the window starts with the key's first
//!   operation, else one a write invoked by `t0` may have left (a put's value,
//!   a cas's new value), or absent if no write was certainly done before `t0`
//!   or a delete was invoked by then.
//!
//! Soundness: if the window cannot be linearized, neither can the history.
//! Take a linearization of the history and keep the operations whose instants
//! fall in `[t0, t1]`, in the same order, from the value the earlier ones left
//! (one of the starting values tried): every operation the window keeps whole
//! completed in the window, so its instant is there; every one it leaves out
//! has its instant outside; an optional one, if there, is there by its
//! completion, so before any call invoked after that; the unknown ones may or
//! may not be there, which an unknown outcome allows. So the window has a
//! linearization too.
//!
//! Widening a window weakens it, so the ends are found by binary search: first
//! the earliest `t1` with `[start, t1]` failing, then the latest `t0` with
//! `[t0, t1]` failing. (The check is a little looser than the exact cut: the
//! starting value may be one an optional write in the window also writes, and
//! optional writes are ordered against known calls only. That can only make a
//! window pass, never fail wrongly; at worst the window found is wider than the
//! smallest.) A window the search cannot decide within its budget counts as
//! passing, so the window printed has always been shown to fail.

use std::collections::{BTreeMap, BTreeSet};

use super::history::{History, Operation, Status};
use super::linear::{check_part, KeyResult, KeyVerdict, Start};
use crate::kv::{Op, OpResult};

/// The smallest failing window of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// The key.
    pub key: String,
    /// Its first instant (the history's time unit).
    pub from: u64,
    /// Its last instant.
    pub to: u64,
    /// The values the key may hold at `from`.
    pub start: Start,
    /// The window's operations as checked, in invocation order (ids are the
    /// history's; weakened ones are `Status::Unknown`).
    pub ops: Vec<Operation>,
    /// The acknowledged operations the window weakened because they overlap
    /// an edge (ids).
    pub cut: Vec<usize>,
    /// The check of the window: why it fails (the longest prefix that can be
    /// ordered, and the operations none of which can come next).
    pub verdict: KeyVerdict,
    /// Windows checked to find it.
    pub checks: usize,
}

/// The operations of one key in the window `[t0, t1]`, as the window checks
/// them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cut {
    /// The operations (ids are the history's; weakened ones are
    /// `Status::Unknown`, invoked at `t0` at the earliest).
    pub ops: Vec<Operation>,
    /// The weakened ones that must take effect, if in the window, by their
    /// completion: id and completion.
    pub deadlines: BTreeMap<usize, u64>,
    /// Acknowledged operations weakened because they overlap an edge.
    pub weakened: Vec<usize>,
}

/// The window `[t0, t1]` of `ops` (one key's).
pub fn cut(ops: &[&Operation], t0: u64, t1: u64) -> Cut {
    let mut c = Cut::default();
    for &o in ops {
        if o.status == Status::Failed || o.invoke > t1 {
            continue;
        }
        let end = match o.status {
            Status::Ok(_) => o.complete.unwrap_or(u64::MAX),
            _ => u64::MAX,
        };
        if end < t0 {
            continue;
        }
        let mut w = o.clone();
        let acked = matches!(o.status, Status::Ok(_));
        if !acked || o.invoke < t0 || end > t1 {
            if acked {
                c.weakened.push(o.id);
                if end <= t1 {
                    c.deadlines.insert(o.id, end);
                }
            }
            w.status = Status::Unknown;
            w.invoke = o.invoke.max(t0);
            w.complete = None;
        }
        c.ops.push(w);
    }
    c
}

/// The values `ops` may have left at `t0` (`first`: the key's first instant).
pub fn start(ops: &[&Operation], first: u64, t0: u64) -> Start {
    if t0 <= first {
        return Start::Absent;
    }
    let mut values = BTreeSet::new();
    let mut absent = true;
    for o in ops.iter().filter(|o| o.status != Status::Failed) {
        if o.invoke <= t0 {
            match &o.op {
                Op::Put { value, .. } | Op::Cas { new: value, .. } => {
                    values.insert(Some(value.clone()));
                }
                Op::Delete { .. } => {
                    values.insert(None);
                }
                Op::Get { .. } | Op::Register | Op::Reconfig { .. } => {}
            }
        }
        let sets = matches!(
            (&o.op, &o.status),
            (Op::Put { .. }, Status::Ok(_)) | (Op::Cas { .. }, Status::Ok(OpResult::Swapped(true)))
        );
        if sets && o.complete.is_some_and(|c| c < t0) {
            absent = false;
        }
    }
    if absent {
        values.insert(None);
    }
    Start::OneOf(values)
}

/// The smallest `i` in `0..=n` for which `holds(i)`, taken to be true at `n`
/// and to stay true once true; searched outwards from `guess` in doubling
/// steps, then by bisection, so a good guess costs a few calls.
fn first_true(n: usize, guess: usize, holds: &mut impl FnMut(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    if guess < n {
        let mut step = 1;
        if holds(guess) {
            hi = guess;
            while hi > 0 {
                let j = hi.saturating_sub(step);
                if !holds(j) {
                    lo = j + 1;
                    break;
                }
                hi = j;
                step *= 2;
            }
        } else {
            lo = guess + 1;
            loop {
                let j = guess + step;
                if j >= n {
                    break;
                }
                if holds(j) {
                    hi = j;
                    break;
                }
                lo = j + 1;
                step *= 2;
            }
        }
    }
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if holds(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    hi
}

/// The smallest window of `key`'s operations in `history` that cannot be
/// linearized, spending at most `budget` search steps on each window; `None`
/// if even the whole key's history is not shown to fail. `near` names
/// operations the violation is likely near (those the whole check could not
/// place): the search starts there.
pub fn smallest(history: &History, key: &str, near: &[usize], budget: u64) -> Option<Window> {
    let mut ops: Vec<&Operation> = history.ops.iter().filter(|o| o.op.key() == key).collect();
    ops.sort_by_key(|o| (o.invoke, o.id));
    let first = ops.first()?.invoke;
    let mut times: Vec<u64> = ops
        .iter()
        .filter(|o| o.status != Status::Failed)
        .flat_map(|o| [Some(o.invoke), o.complete])
        .flatten()
        .collect();
    times.sort_unstable();
    times.dedup();
    let last = times.len().checked_sub(1)?;
    let mut tried: BTreeMap<(u64, u64), Option<KeyVerdict>> = BTreeMap::new();
    let mut fails = |t0: u64, t1: u64| -> bool {
        tried
            .entry((t0, t1))
            .or_insert_with(|| {
                let w = cut(&ops, t0, t1);
                let refs: Vec<&Operation> = w.ops.iter().collect();
                let v = check_part(key, &refs, start(&ops, first, t0), &w.deadlines, budget);
                matches!(v.result, KeyResult::NotLinearizable { .. }).then_some(v)
            })
            .is_some()
    };
    // The earliest end, from where the operations the check could not place
    // completed: [first, times[i1]] fails.
    let hint = near
        .iter()
        .filter_map(|&id| history.ops.get(id))
        .filter(|o| o.op.key() == key)
        .map(|o| o.complete.unwrap_or(o.invoke))
        .max();
    let guess = hint.map_or(last, |t| times.partition_point(|&x| x < t));
    let i1 = first_true(last, guess, &mut |i| i == last || fails(first, times[i]));
    let t1 = times[i1];
    // The latest start, from t1 backwards (small windows first).
    let back = first_true(i1, 0, &mut |k| k == i1 || fails(times[i1 - k], t1));
    let t0 = times[i1 - back].max(first);
    fails(t0, t1);
    let verdict = tried.remove(&(t0, t1)).flatten()?;
    let window = cut(&ops, t0, t1);
    Some(Window {
        key: key.to_string(),
        from: t0,
        to: t1,
        start: start(&ops, first, t0),
        ops: window.ops,
        cut: window.weakened,
        verdict,
        checks: tried.len() + 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::linear;
    use crate::kv::{Op, OpResult};

    /// A history of one key "k" built call by call.
    struct H(History);

    fn put(v: &str) -> Op {
        Op::Put {
            key: "k".into(),
            value: v.into(),
        }
    }

    fn cas(from: &str, to: &str) -> Op {
        Op::Cas {
            key: "k".into(),
            expect: Some(from.into()),
            new: to.into(),
        }
    }

    fn get() -> Op {
        Op::Get { key: "k".into() }
    }

    fn read(v: Option<&str>) -> Status {
        Status::Ok(OpResult::Value(v.map(String::from)))
    }

    const DONE: Status = Status::Ok(OpResult::Done);

    impl H {
        fn new() -> H {
            H(History::new())
        }

        fn op(&mut self, client: u64, op: Op, a: u64, b: u64, s: Status) -> &mut H {
            let id = self.0.invoke(client, 1, op, a);
            self.0.complete(id, b, s);
            self
        }

        /// A run of sequential put/get pairs that is fine, to pad a history.
        fn noise(&mut self, from: u64, n: u64) -> &mut H {
            for i in 0..n {
                let t = from + 10 * i;
                let v = format!("n{i}");
                self.op(1, put(&v), t, t + 2, DONE)
                    .op(2, get(), t + 3, t + 5, read(Some(&v)));
            }
            self
        }

        fn window(&self) -> Window {
            let v = linear::check(&self.0, 1_000_000);
            assert!(!v.is_linearizable(), "the whole history must fail");
            let near = match &v.keys[0].result {
                KeyResult::NotLinearizable { stuck, .. } => stuck.clone(),
                _ => Vec::new(),
            };
            let w = smallest(&self.0, "k", &near, 1_000_000).expect("a window");
            // Without a hint, the same window.
            let far = smallest(&self.0, "k", &[], 1_000_000).expect("a window");
            assert_eq!((w.from, w.to), (far.from, far.to));
            w
        }
    }

    fn ids(w: &Window) -> Vec<usize> {
        w.ops.iter().map(|o| o.id).collect()
    }

    #[test]
    fn a_stale_read_is_cut_out_of_a_long_history() {
        let mut h = H::new();
        h.noise(0, 50);
        // #100 writes a, #101 writes b after it, #102 reads a after both.
        h.op(1, put("a"), 1000, 1002, DONE)
            .op(1, put("b"), 1003, 1005, DONE)
            .op(2, get(), 1006, 1008, read(Some("a")));
        h.noise(1100, 50);
        let w = h.window();
        // From any value, b then a read of a is the violation: #100 is not needed.
        assert_eq!(ids(&w), vec![101, 102]);
        assert_eq!((w.from, w.to), (1003, 1008));
        assert!(matches!(&w.start, Start::OneOf(v) if v.contains(&Some("a".into()))));
        let KeyResult::NotLinearizable { prefix, stuck, .. } = &w.verdict.result else {
            panic!("{:?}", w.verdict)
        };
        assert_eq!(prefix, &vec![101]);
        assert_eq!(stuck, &vec![102]);
    }

    #[test]
    fn a_read_of_a_value_never_written_is_one_operation() {
        let mut h = H::new();
        h.noise(0, 30)
            .op(3, get(), 500, 510, read(Some("zz")))
            .noise(600, 30);
        let w = h.window();
        assert_eq!(ids(&w), vec![60]);
        assert!(w.cut.is_empty());
    }

    #[test]
    fn the_first_operation_sees_the_key_absent() {
        // A read of a at the very start: only the absent value fits there.
        let mut h = H::new();
        h.op(1, get(), 0, 1, read(Some("a")))
            .op(2, put("a"), 5, 6, DONE)
            .noise(10, 20);
        let w = h.window();
        assert_eq!(w.start, Start::Absent);
        assert_eq!(ids(&w), vec![0]);
    }

    #[test]
    fn an_indeterminate_write_that_must_have_happened() {
        // Only the :info write of b explains the first read of b, so it took
        // effect before it, and c was written after: b cannot be read again.
        let mut h = H::new();
        h.noise(0, 20)
            .op(1, put("a"), 300, 301, DONE)
            .op(2, put("b"), 302, 303, Status::Unknown)
            .op(3, get(), 310, 311, read(Some("b")))
            .op(1, put("c"), 312, 313, DONE)
            .op(3, get(), 314, 315, read(Some("b")));
        let w = h.window();
        // From 302 on, b may already be there at the start (and the :info
        // write may take effect again inside): the window must start before
        // b was invoked. The write of a straddles that edge.
        assert_eq!((w.from, w.to), (301, 315));
        assert_eq!(ids(&w), vec![40, 41, 42, 43, 44]);
        assert_eq!(w.cut, vec![40]);
        // Without the second read it is linearizable.
        h.0.ops.pop();
        assert!(linear::check(&h.0, 1000).is_linearizable());
    }

    #[test]
    fn an_indeterminate_write_that_must_not_have_happened() {
        // Reads of a after the :info write of b: it never took effect (or
        // only after them).
        let mut h = H::new();
        h.op(1, put("a"), 300, 301, DONE)
            .op(2, put("b"), 302, 303, Status::Unknown)
            .op(3, get(), 310, 311, read(Some("a")))
            .op(3, get(), 400, 401, read(Some("a")));
        assert!(linear::check(&h.0, 1000).is_linearizable());
        // ... but then a read of b and a read of a again: b had to happen
        // between two reads of a, and a was never written again.
        h.op(3, get(), 410, 411, read(Some("b")))
            .op(3, get(), 420, 421, read(Some("a")));
        let w = h.window();
        assert_eq!((w.from, w.to), (410, 421));
        // The :info write is carried in (it may take effect inside).
        assert_eq!(ids(&w), vec![1, 4, 5]);
        assert_eq!(w.ops[0].status, Status::Unknown);
    }

    #[test]
    fn a_cas_that_answered_false_observed_another_value() {
        // a is written and nothing else: a cas a->b that did not swap is wrong.
        let mut h = H::new();
        h.noise(0, 10)
            .op(1, put("a"), 200, 201, DONE)
            .op(
                2,
                cas("a", "b"),
                202,
                203,
                Status::Ok(OpResult::Swapped(false)),
            )
            .noise(300, 10);
        let w = h.window();
        assert_eq!((w.from, w.to), (200, 203), "{w:#?}");
        assert_eq!(ids(&w), vec![20, 21]);
        // With an indeterminate write of something else in flight, it is fine.
        let mut ok = H::new();
        ok.op(1, put("a"), 200, 201, DONE)
            .op(3, put("x"), 200, 201, Status::Unknown)
            .op(
                2,
                cas("a", "b"),
                202,
                203,
                Status::Ok(OpResult::Swapped(false)),
            );
        assert!(linear::check(&ok.0, 1000).is_linearizable());
    }

    #[test]
    fn operations_across_an_edge_are_weakened() {
        let mut h = H::new();
        h.op(1, put("a"), 0, 1, DONE);
        let ops: Vec<&Operation> = h.0.ops.iter().collect();
        let w = cut(&ops, 1, 5);
        assert_eq!(w.ops[0].status, Status::Unknown);
        assert_eq!(w.ops[0].invoke, 1);
        assert_eq!(w.weakened, vec![0]);
        assert_eq!(w.deadlines, [(0, 1)].into(), "by its completion");
        assert!(
            cut(&ops, 2, 5).ops.is_empty(),
            "completed before the window"
        );
        assert_eq!(cut(&ops, 0, 1).ops[0].status, DONE, "whole inside");
        let w = cut(&ops, 0, 0);
        assert_eq!(w.ops[0].status, Status::Unknown, "still running at the end");
        assert!(w.deadlines.is_empty());
    }

    #[test]
    fn keys_have_their_own_windows() {
        let mut h = H::new();
        h.op(1, put("a"), 0, 1, DONE);
        let id = h.0.invoke(
            2,
            1,
            Op::Put {
                key: "other".into(),
                value: "z".into(),
            },
            2,
        );
        h.0.complete(id, 3, DONE);
        h.op(2, get(), 4, 5, read(Some("z")));
        let w = h.window();
        assert_eq!(w.key, "k");
        assert_eq!(ids(&w), vec![2], "the other key's write is not in it");
        assert!(smallest(&h.0, "other", &[], 1000).is_none());
    }
}
