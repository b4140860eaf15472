//! Linearizability of a key-value history, key by key.
//!
//! Every operation touches one key, so the history is linearizable if and only if
//! each key's sub-history is (Herlihy and Wing's locality). Each key is checked by
//! the Wing–Gong search with Lowe's memoisation (never expand the same set of
//! linearized operations with the same value twice), run breadth-first: level k
//! holds every configuration with k acknowledged operations placed. Operations of
//! unknown outcome are counted by kind rather than told apart, placed only where
//! they change the value just before an operation that observes it, and a
//! configuration that used more of them than another with the same set and value
//! is dropped (the doc of `Search` says why each rule keeps the search complete). A
//! step budget turns a search that would run too long into "inconclusive" rather
//! than a hang.
//!
//! Outcomes: an acknowledged operation must take effect between its invocation and
//! its completion with the result it returned. A failed one never took effect and
//! is left out. One whose outcome is unknown may take effect at any time after its
//! invocation, or never, and its result is not checked; an unknown read is left
//! out, and so is an unknown write whose value nobody ever observed, unless some
//! cas on the key failed to swap (leaving it out is then equivalent to placing it
//! after everything else).

use std::collections::{BTreeMap, BTreeSet, HashMap};
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

/// Where the key's value starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Start {
    /// Absent: the history begins with the key.
    Absent,
    /// Any one of these (`None`: absent): a window cut out of a longer history
    /// starts with whatever the writes before it left. An empty set is absent.
    OneOf(BTreeSet<Option<String>>),
}

/// Check one key's operations alone, from `start`, spending at most `budget`
/// search steps. The operations need not be in any order.
pub fn check_ops(key: &str, ops: &[&Operation], start: Start, budget: u64) -> KeyVerdict {
    check_part(key, ops, start, &BTreeMap::new(), budget)
}

/// [`check_ops`] for a part cut out of a longer history: the operations of
/// unknown outcome named in `deadlines` took effect either before the part
/// (their effect is in `start`) or in it by their deadline, before any known
/// call invoked after it.
pub fn check_part(
    key: &str,
    ops: &[&Operation],
    start: Start,
    deadlines: &BTreeMap<usize, u64>,
    budget: u64,
) -> KeyVerdict {
    let ops = relevant(ops);
    let mut search = Search::new(&ops, deadlines);
    let starts = match start {
        Start::Absent => vec![0],
        Start::OneOf(values) if !values.is_empty() => search.starts(&values),
        Start::OneOf(_) => vec![0],
    };
    let mut steps = 0;
    let mut found: Option<KeyResult> = None;
    let mut undecided = false;
    for s in starts {
        let (result, spent) = search.run(s, budget.saturating_sub(steps));
        steps += spent;
        match result {
            KeyResult::Linearizable => {
                found = Some(result);
                undecided = false;
                break;
            }
            KeyResult::Inconclusive => undecided = true,
            KeyResult::NotLinearizable { .. } => {
                if found.as_ref().is_none_or(|f| longer(&result, f)) {
                    found = Some(result);
                }
            }
        }
    }
    KeyVerdict {
        key: key.to_string(),
        ops: search.known_ops() + search.unknown_ops,
        result: match found {
            Some(r) if !undecided => r,
            _ => KeyResult::Inconclusive,
        },
        steps,
    }
}

/// True if `a` explains a longer prefix than `b`.
fn longer(a: &KeyResult, b: &KeyResult) -> bool {
    match (a, b) {
        (
            KeyResult::NotLinearizable { prefix: p, .. },
            KeyResult::NotLinearizable { prefix: q, .. },
        ) => p.len() > q.len(),
        _ => false,
    }
}

fn check_key(key: &str, ops: &[&Operation], budget: u64) -> KeyVerdict {
    check_ops(key, ops, Start::Absent, budget)
}

/// What linearizing one operation does to the value (interned: 0 is absent),
/// given the result it recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Effect {
    /// Sets the value, observing nothing (a put).
    Set(u32),
    /// Observes the value, leaves it (a get).
    Read(u32),
    /// Observes the value, then removes it (a delete that returned what it removed).
    Take(u32),
    /// From the first value to the second (a cas that swapped).
    Swap(u32, u32),
    /// Observes a value other than this one (a cas that did not swap).
    Differs(u32),
    /// A result the operation cannot return (a get that answered "swapped").
    Impossible,
}

impl Effect {
    /// The value after, or `None` if the recorded result is impossible from `state`.
    fn apply(self, state: u32) -> Option<u32> {
        match self {
            Effect::Set(v) => Some(v),
            Effect::Read(v) => (v == state).then_some(state),
            Effect::Take(v) => (v == state).then_some(0),
            Effect::Swap(from, to) => (from == state).then_some(to),
            Effect::Differs(v) => (v != state).then_some(state),
            Effect::Impossible => None,
        }
    }

    /// True if the result depends on the value before.
    fn observes(self) -> bool {
        !matches!(self, Effect::Set(_))
    }
}

/// Operations of unknown outcome that do the same thing (a put of one value, a
/// cas from one value to another): once invoked, any of them may stand for
/// another, so the search counts how many it used, not which.
struct Class {
    effect: Effect,
    /// Unusable once a known call invoked after this is linearized
    /// (`u64::MAX`: never).
    deadline: u64,
    /// Invocation times, ascending.
    invokes: Vec<u64>,
    /// The operations, in the same order.
    ids: Vec<usize>,
}

/// Counts of unknown operations used, (class, count) ascending by class, with
/// `AFTER_UNKNOWN` last while the last step placed an unknown one.
type Counts = Vec<(u32, u32)>;

/// The pseudo-class that marks "the last step placed an operation of unknown
/// outcome": such a configuration may only go on with a call that observes the
/// value, so it can do less than the same one unmarked (a count of 1 against 0).
const AFTER_UNKNOWN: u32 = u32::MAX;

/// True if every count of `a` is at most the same class's count in `b`: a
/// configuration with `a` can do whatever one with `b` can.
fn covers(a: &[(u32, u32)], b: &[(u32, u32)]) -> bool {
    let mut j = 0;
    for &(class, count) in a {
        while j < b.len() && b[j].0 < class {
            j += 1;
        }
        if j == b.len() || b[j].0 != class || b[j].1 < count {
            return false;
        }
    }
    true
}

/// `counts` with one more of `class`, marked as after an unknown step.
fn bump(counts: &[(u32, u32)], class: u32) -> Counts {
    let mut out: Counts = counts
        .iter()
        .copied()
        .filter(|&(k, _)| k != AFTER_UNKNOWN)
        .collect();
    match out.binary_search_by_key(&class, |&(k, _)| k) {
        Ok(i) => out[i].1 += 1,
        Err(i) => out.insert(i, (class, 1)),
    }
    out.push((AFTER_UNKNOWN, 1));
    out
}

fn used(counts: &[(u32, u32)], class: u32) -> u32 {
    counts
        .binary_search_by_key(&class, |&(k, _)| k)
        .map_or(0, |i| counts[i].1)
}

/// One configuration of the search: which known calls are linearized (all
/// those before `p` in invocation order, and `extra`), the value, and the
/// unknown operations used.
struct Config {
    /// Zobrist hash of the linearized known calls.
    hash: u128,
    p: u32,
    extra: Box<[u32]>,
    state: u32,
    counts: Counts,
    /// The last step that led here, in `Search::trail`.
    trail: u32,
}

/// The configurations of the next level kept for each (linearized set,
/// value), as indices into it: their counts, none of which covers another.
/// Mostly one, kept inline.
enum Slots {
    One(usize),
    Many(Vec<usize>),
}

/// Hashes a key whose first part is already a random (Zobrist) word.
#[derive(Default)]
struct ZobristHasher(u64);

impl std::hash::Hasher for ZobristHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ b as u64).wrapping_mul(0x517C_C1B7_2722_0A95);
        }
    }

    fn write_u128(&mut self, n: u128) {
        self.0 ^= n as u64;
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = (self.0 ^ n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type Seen = HashMap<(u128, u32), Slots, std::hash::BuildHasherDefault<ZobristHasher>>;

impl Slots {
    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        let (one, many) = match self {
            Slots::One(i) => (Some(*i), &[][..]),
            Slots::Many(v) => (None, v.as_slice()),
        };
        one.into_iter().chain(many.iter().copied())
    }
}

/// Admit a configuration with `counts` for `key` as `next`'s next entry,
/// unless one kept covers it; drop (set to `None`) those it covers.
fn admit(
    seen: &mut Seen,
    next: &mut [Option<Config>],
    key: (u128, u32),
    counts: &[(u32, u32)],
) -> bool {
    let at = next.len();
    let slots = match seen.entry(key) {
        std::collections::hash_map::Entry::Vacant(v) => {
            v.insert(Slots::One(at));
            return true;
        }
        std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
    };
    let counts_at = |i: usize| next[i].as_ref().map(|c| &c.counts);
    if slots
        .iter()
        .any(|i| counts_at(i).is_some_and(|old| covers(old, counts)))
    {
        return false;
    }
    let mut kept = Vec::new();
    let mut covered = Vec::new();
    for i in slots.iter() {
        match counts_at(i) {
            Some(old) if covers(counts, old) => covered.push(i),
            Some(_) => kept.push(i),
            None => {}
        }
    }
    for i in covered {
        next[i] = None;
    }
    kept.push(at);
    *slots = match kept.as_slice() {
        [one] => Slots::One(*one),
        _ => Slots::Many(kept),
    };
    true
}

/// A step of a linearization, as a tree of parent links.
#[derive(Clone, Copy)]
struct Trail {
    parent: u32,
    op: u32,
}

const ROOT: u32 = u32::MAX;

/// The Wing–Gong linearizability search with Lowe's memoisation, run level by
/// level: level k holds every configuration with k known calls linearized, and
/// level k + 1 is built from it.
///
/// A known call may be linearized next if it was invoked before the earliest
/// completion of the known calls not yet linearized. Calls of unknown outcome
/// are grouped into classes and are placed only where they matter: one is
/// linearized only if it changes the value, and only directly before a call
/// whose result depends on the value (in a linearization where one is followed
/// by a blind write, or by nothing, it can be dropped, so these orders are all
/// worth trying). A configuration is skipped when another of the same level
/// has the same known set and value and used no more of any class: whatever the
/// new one can still do, that one can too. Level by level, each (known set,
/// value) is expanded only with its fewest unknown operations used, where a
/// depth-first search would first reach it with more, and come back.
///
/// Two more cuts: an unknown operation is tried only if its value is one a
/// call that may come next observes (directly, or through unknown cas
/// operations), since only such a call may follow it; and a call that succeeds
/// without changing the value (a read of it, a cas that saw another) is placed
/// at once and alone, since any linearization can be reordered to place it
/// first (unless that would pass the deadline of an optional operation, see
/// [`check_part`]).
struct Search {
    /// Known calls, by invocation (then completion) time.
    invoke: Vec<u64>,
    complete: Vec<u64>,
    effect: Vec<Effect>,
    id: Vec<usize>,
    /// `suffix_min[i]`: the earliest completion of calls `i..`.
    suffix_min: Vec<u64>,
    zobrist: Vec<u128>,
    classes: Vec<Class>,
    unknown_ops: usize,
    /// Value names; value `v` is `names[v - 1]`.
    names: Vec<String>,
    trail: Vec<Trail>,
    /// By value, the classes that set it (ascending).
    producers: HashMap<u32, Vec<usize>>,
    /// The classes of unknown cas operations (ascending).
    cas_classes: Vec<usize>,
    /// Buffers kept between expansions: the calls to try, the values and
    /// counts reached with unknown operations, the chains still to extend.
    scratch: Vec<u32>,
    here: Vec<(u32, Counts)>,
    work: Vec<(u32, Counts, u32)>,
}

/// Interns values: 0 is absent, names from 1.
struct Interner {
    ids: HashMap<String, u32>,
    names: Vec<String>,
}

impl Interner {
    fn id(&mut self, v: Option<&str>) -> u32 {
        let Some(v) = v else { return 0 };
        if let Some(&i) = self.ids.get(v) {
            return i;
        }
        self.names.push(v.to_string());
        let i = self.names.len() as u32;
        self.ids.insert(v.to_string(), i);
        i
    }
}

fn effect(op: &Op, result: Option<&OpResult>, values: &mut Interner) -> Option<Effect> {
    Some(match (op, result) {
        (Op::Put { value, .. }, None | Some(OpResult::Done)) => Effect::Set(values.id(Some(value))),
        (Op::Delete { .. }, None | Some(OpResult::Done)) => Effect::Set(0),
        (Op::Delete { .. }, Some(OpResult::Value(v))) => Effect::Take(values.id(v.as_deref())),
        (Op::Get { .. }, Some(OpResult::Value(v))) => Effect::Read(values.id(v.as_deref())),
        // An unknown get constrains nothing (`relevant` leaves it out).
        (Op::Get { .. }, None) => return None,
        (Op::Cas { expect, new, .. }, None | Some(OpResult::Swapped(true))) => {
            Effect::Swap(values.id(expect.as_deref()), values.id(Some(new)))
        }
        (Op::Cas { expect, .. }, Some(OpResult::Swapped(false))) => {
            Effect::Differs(values.id(expect.as_deref()))
        }
        _ => Effect::Impossible,
    })
}

impl Search {
    fn new(ops: &[&Operation], deadlines: &BTreeMap<usize, u64>) -> Search {
        let mut values = Interner {
            ids: HashMap::new(),
            names: Vec::new(),
        };
        let mut known: Vec<(u64, u64, usize, Effect)> = Vec::new();
        let mut unknown: Vec<&Operation> = Vec::new();
        for o in ops {
            match &o.status {
                Status::Ok(r) => {
                    if let Some(e) = effect(&o.op, Some(r), &mut values) {
                        known.push((o.invoke, o.complete.unwrap_or(u64::MAX), o.id, e));
                    }
                }
                _ => unknown.push(o),
            }
        }
        known.sort_by_key(|&(i, c, id, _)| (i, c, id));
        // In invocation order, so classes are numbered by first invocation.
        unknown.sort_by_key(|o| (o.invoke, o.id));
        let mut class_of: HashMap<(Effect, u64), usize> = HashMap::new();
        let mut classes: Vec<Class> = Vec::new();
        let mut unknown_ops = 0;
        for o in unknown {
            let Some(e) = effect(&o.op, None, &mut values) else {
                continue;
            };
            unknown_ops += 1;
            let deadline = deadlines.get(&o.id).copied().unwrap_or(u64::MAX);
            let c = *class_of.entry((e, deadline)).or_insert_with(|| {
                classes.push(Class {
                    effect: e,
                    deadline,
                    invokes: Vec::new(),
                    ids: Vec::new(),
                });
                classes.len() - 1
            });
            classes[c].invokes.push(o.invoke);
            classes[c].ids.push(o.id);
        }
        let mut producers: HashMap<u32, Vec<usize>> = HashMap::new();
        let mut cas_classes = Vec::new();
        for (k, c) in classes.iter().enumerate() {
            match c.effect {
                Effect::Set(v) => producers.entry(v).or_default().push(k),
                Effect::Swap(_, to) => {
                    producers.entry(to).or_default().push(k);
                    cas_classes.push(k);
                }
                _ => {}
            }
        }
        let n = known.len();
        let mut suffix_min = vec![u64::MAX; n + 1];
        for i in (0..n).rev() {
            suffix_min[i] = suffix_min[i + 1].min(known[i].1);
        }
        // The set of linearized calls is remembered by a Zobrist hash (the XOR
        // of a random 128-bit word per call): 16 bytes per configuration.
        let mut rng = crate::rng::Rng::new(0x5A0B_0157);
        let zobrist = (0..n)
            .map(|_| ((rng.next_u64() as u128) << 64) | rng.next_u64() as u128)
            .collect();
        Search {
            invoke: known.iter().map(|k| k.0).collect(),
            complete: known.iter().map(|k| k.1).collect(),
            id: known.iter().map(|k| k.2).collect(),
            effect: known.iter().map(|k| k.3).collect(),
            suffix_min,
            zobrist,
            classes,
            unknown_ops,
            names: values.names,
            trail: Vec::new(),
            producers,
            cas_classes,
            scratch: Vec::new(),
            here: Vec::new(),
            work: Vec::new(),
        }
    }

    fn known_ops(&self) -> usize {
        self.invoke.len()
    }

    /// The starting values to try for `values`: each one the operations name,
    /// and one for all those they do not (no operation can tell them apart).
    fn starts(&self, values: &BTreeSet<Option<String>>) -> Vec<u32> {
        let fresh = self.names.len() as u32 + 1;
        let starts: BTreeSet<u32> = values
            .iter()
            .map(|v| match v {
                None => 0,
                Some(v) => self
                    .names
                    .iter()
                    .position(|n| n == v)
                    .map_or(fresh, |i| i as u32 + 1),
            })
            .collect();
        starts.into_iter().collect()
    }

    /// The name of value `v` (`None`: absent).
    fn name(&self, v: u32) -> Option<String> {
        match v {
            0 => None,
            v => Some(
                self.names
                    .get(v as usize - 1)
                    .cloned()
                    .unwrap_or_else(|| "(a value no operation names)".to_string()),
            ),
        }
    }

    /// The latest invocation among the known calls `c` has linearized: no
    /// operation can take effect before it any more.
    fn clock(&self, c: &Config) -> u64 {
        let last = c.extra.last().map_or(c.p, |&x| x + 1);
        match last {
            0 => 0,
            n => self.invoke[n as usize - 1],
        }
    }

    /// True if moving the clock from `clock` to `to` would pass the deadline
    /// of an unknown operation `c` could still use.
    fn expires(&self, c: &Config, clock: u64, to: u64) -> bool {
        self.classes.iter().enumerate().any(|(k, class)| {
            (clock..to).contains(&class.deadline)
                && (used(&c.counts, k as u32) as usize) < class.invokes.len()
        })
    }

    /// The earliest completion among the known calls `c` has not linearized.
    fn first_return(&self, c: &Config) -> u64 {
        let mut t = u64::MAX;
        let mut e = c.extra.iter().peekable();
        let end = c.extra.last().map_or(c.p, |&x| x + 1) as usize;
        for i in c.p as usize..end {
            if e.peek() == Some(&&(i as u32)) {
                e.next();
                continue;
            }
            t = t.min(self.complete[i]);
        }
        t.min(self.suffix_min[end.min(self.known_ops())])
    }

    /// The known calls that may be linearized next from `c`, given its first
    /// return time.
    fn candidates(&self, c: &Config, first: u64) -> Vec<u32> {
        let mut out = Vec::new();
        self.fill_candidates(c, first, &mut out);
        out
    }

    /// [`Search::candidates`] into `out`.
    fn fill_candidates(&self, c: &Config, first: u64, out: &mut Vec<u32>) {
        out.clear();
        let mut e = c.extra.iter().peekable();
        let mut i = c.p as usize;
        while i < self.known_ops() && self.invoke[i] <= first {
            if e.peek() == Some(&&(i as u32)) {
                e.next();
            } else {
                out.push(i as u32);
            }
            i += 1;
        }
    }

    /// The classes among the first `invoked` that could set a value one of
    /// `candidates` observes, directly or through unknown cas operations, in
    /// class order. (A cas that did not swap observes any other value: then all.)
    fn useful(&self, candidates: &[u32], invoked: usize) -> Vec<usize> {
        let mut need: Vec<u32> = Vec::new();
        for &i in candidates {
            match self.effect[i as usize] {
                Effect::Read(v) | Effect::Take(v) | Effect::Swap(v, _) => need.push(v),
                Effect::Differs(_) => return (0..invoked).collect(),
                Effect::Set(_) | Effect::Impossible => {}
            }
        }
        loop {
            let before = need.len();
            for &k in self.cas_classes.iter().take_while(|&&k| k < invoked) {
                if let Effect::Swap(from, to) = self.classes[k].effect {
                    if need.contains(&to) && !need.contains(&from) {
                        need.push(from);
                    }
                }
            }
            if need.len() == before {
                break;
            }
        }
        let mut out: Vec<usize> = need
            .iter()
            .filter_map(|v| self.producers.get(v))
            .flat_map(|ks| ks.iter().copied().take_while(|&k| k < invoked))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// `c`'s linearized set with call `i` added.
    fn with(&self, c: &Config, i: u32) -> (u32, Box<[u32]>) {
        if i != c.p {
            let mut extra = c.extra.to_vec();
            let at = extra.partition_point(|&x| x < i);
            extra.insert(at, i);
            return (c.p, extra.into());
        }
        let mut p = c.p + 1;
        let mut skip = 0;
        while skip < c.extra.len() && c.extra[skip] == p {
            p += 1;
            skip += 1;
        }
        (p, c.extra[skip..].into())
    }

    fn step(&mut self, parent: u32, op: usize) -> u32 {
        self.trail.push(Trail {
            parent,
            op: op as u32,
        });
        (self.trail.len() - 1) as u32
    }

    /// The operations linearized up to trail step `t`, in order.
    fn path(&self, mut t: u32) -> Vec<usize> {
        let mut out = Vec::new();
        while t != ROOT {
            out.push(self.trail[t as usize].op as usize);
            t = self.trail[t as usize].parent;
        }
        out.reverse();
        out
    }

    /// Search from value `start`; the result and the steps spent.
    fn run(&mut self, start: u32, budget: u64) -> (KeyResult, u64) {
        self.trail.clear();
        let mut steps = 0u64;
        let mut level = vec![Config {
            hash: 0,
            p: 0,
            extra: Box::new([]),
            state: start,
            counts: Vec::new(),
            trail: ROOT,
        }];
        let mut next: Vec<Option<Config>> = Vec::new();
        let mut seen = Seen::default();
        for _ in 0..self.known_ops() {
            next.clear();
            seen.clear();
            for c in &level {
                self.expand(c, &mut next, &mut seen, &mut steps);
                if steps > budget {
                    return (KeyResult::Inconclusive, steps);
                }
            }
            if next.iter().all(Option::is_none) {
                let c = &level[0];
                let first = self.first_return(c);
                let stuck = self
                    .candidates(c, first)
                    .iter()
                    .map(|&i| self.id[i as usize])
                    .collect();
                return (
                    KeyResult::NotLinearizable {
                        prefix: self.path(c.trail),
                        stuck,
                        value: self.name(c.state),
                    },
                    steps,
                );
            }
            level.clear();
            level.extend(next.drain(..).flatten());
        }
        (KeyResult::Linearizable, steps)
    }

    /// Put into `next` every configuration one known call past `from`, with
    /// the unknown operations that may come just before that call; count the
    /// calls tried in `steps`.
    fn expand(
        &mut self,
        from: &Config,
        next: &mut Vec<Option<Config>>,
        seen: &mut Seen,
        steps: &mut u64,
    ) {
        let first = self.first_return(from);
        let clock = self.clock(from);
        let mut candidates = std::mem::take(&mut self.scratch);
        self.fill_candidates(from, first, &mut candidates);
        // A call that succeeds without changing the value (a read of it, a cas
        // that saw another) can go first: any linearization from here can be
        // reordered to place it now (unless that would pass the deadline of an
        // unknown operation still usable). Then it is the only way on.
        let greedy = candidates.iter().copied().find(|&i| {
            let e = self.effect[i as usize];
            e.observes()
                && e.apply(from.state) == Some(from.state)
                && !self.expires(from, clock, self.invoke[i as usize])
        });
        if let Some(i) = greedy {
            candidates.clear();
            candidates.push(i);
        }
        // Unknown operations placed before the known call: (value, counts,
        // trail), explored depth-first, each chain kept only if no other
        // reached the same value with fewer used.
        // Unknown operations worth trying: those invoked by now (classes are
        // numbered by first invocation) whose value a call that may come next
        // observes.
        let tried = if greedy.is_some() {
            Vec::new()
        } else {
            let invoked = self.classes.partition_point(|c| c.invokes[0] <= first);
            self.useful(&candidates, invoked)
        };
        let mut here = std::mem::take(&mut self.here);
        here.clear();
        let mut work = std::mem::take(&mut self.work);
        work.push((from.state, from.counts.clone(), from.trail));
        while let Some((state, counts, trail)) = work.pop() {
            let after_unknown = counts.last().is_some_and(|c| c.0 == AFTER_UNKNOWN);
            let settled: Counts = if after_unknown {
                counts[..counts.len() - 1].to_vec()
            } else {
                counts.clone()
            };
            for &i in &candidates {
                *steps += 1;
                let effect = self.effect[i as usize];
                if after_unknown && !effect.observes() {
                    continue;
                }
                let Some(to) = effect.apply(state) else {
                    continue;
                };
                let hash = from.hash ^ self.zobrist[i as usize];
                if !admit(seen, next, (hash, to), &settled) {
                    continue;
                }
                let (p, extra) = self.with(from, i);
                let t = self.step(trail, self.id[i as usize]);
                next.push(Some(Config {
                    hash,
                    p,
                    extra,
                    state: to,
                    counts: settled.clone(),
                    trail: t,
                }));
            }
            for &k in &tried {
                *steps += 1;
                let class = &self.classes[k];
                if after_unknown && !class.effect.observes() {
                    continue;
                }
                let invoked = class.invokes.partition_point(|&t| t <= first) as u32;
                let n = used(&counts, k as u32);
                if invoked <= n || class.deadline < clock {
                    continue;
                }
                let Some(to) = class.effect.apply(state).filter(|&to| to != state) else {
                    continue;
                };
                let op = class.ids[n as usize];
                let after = bump(&counts, k as u32);
                if here.is_empty() {
                    here.push((from.state, from.counts.clone()));
                }
                if here.iter().any(|(v, old)| *v == to && covers(old, &after)) {
                    continue;
                }
                here.retain(|(v, old)| *v != to || !covers(&after, old));
                here.push((to, after.clone()));
                let t = self.step(trail, op);
                work.push((to, after, t));
            }
        }
        self.scratch = candidates;
        self.here = here;
        self.work = work;
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::Kv;

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

    /// Every order of `ops` by brute force: is some order (known operations
    /// all in it, unknown ones optionally, failed ones never, real time kept)
    /// consistent with the key-value model from `start`?
    fn brute(ops: &[&Operation], start: Option<&str>) -> bool {
        brute_part(ops, start, &BTreeMap::new())
    }

    /// [`brute`] where the unknown operations in `deadlines` may also be
    /// dropped, and if placed, are placed by their deadline.
    fn brute_part(
        ops: &[&Operation],
        start: Option<&str>,
        deadlines: &BTreeMap<usize, u64>,
    ) -> bool {
        let end = |o: &Operation| match o.status {
            Status::Ok(_) => o.complete.unwrap_or(u64::MAX),
            _ => deadlines.get(&o.id).copied().unwrap_or(u64::MAX),
        };
        fn go(
            ops: &[&Operation],
            end: &dyn Fn(&Operation) -> u64,
            done: &mut Vec<bool>,
            kv: &Kv,
        ) -> bool {
            let left: Vec<usize> = (0..ops.len())
                .filter(|&i| !done[i] && ops[i].status != Status::Failed)
                .collect();
            if left
                .iter()
                .all(|&i| !matches!(ops[i].status, Status::Ok(_)))
            {
                return true;
            }
            for &i in &left {
                // An optional operation may also never happen.
                if end(ops[i]) != u64::MAX && !matches!(ops[i].status, Status::Ok(_)) {
                    done[i] = true;
                    let ok = go(ops, end, done, kv);
                    done[i] = false;
                    if ok {
                        return true;
                    }
                }
                // Minimal: nothing left completed before it was invoked.
                if left.iter().any(|&j| end(ops[j]) < ops[i].invoke) {
                    continue;
                }
                let mut next = kv.clone();
                let got = next.apply(&ops[i].op);
                let fits = match (&ops[i].status, &ops[i].op) {
                    (Status::Ok(OpResult::Done), Op::Delete { .. }) => true,
                    (Status::Ok(r), _) => *r == got,
                    _ => true,
                };
                if fits {
                    done[i] = true;
                    let ok = go(ops, end, done, &next);
                    done[i] = false;
                    if ok {
                        return true;
                    }
                }
            }
            false
        }
        let mut kv = Kv::new();
        if let Some(v) = start {
            kv.apply(&Op::Put {
                key: "k".into(),
                value: v.into(),
            });
        }
        go(ops, &end, &mut vec![false; ops.len()], &kv)
    }

    /// A random small history over values a, b, c: random intervals, random
    /// operations, random outcomes and results (so both verdicts are common).
    fn random_history(rng: &mut crate::rng::Rng) -> History {
        let value = |rng: &mut crate::rng::Rng| ["a", "b", "c"][rng.below(3)].to_string();
        let mut h = History::new();
        let n = 1 + rng.below(7);
        for i in 0..n {
            let op = match rng.below(5) {
                0 | 1 => Op::Put {
                    key: "k".into(),
                    value: value(rng),
                },
                2 => Op::Get { key: "k".into() },
                3 => Op::Cas {
                    key: "k".into(),
                    expect: rng.chance(0.8).then(|| value(rng)),
                    new: value(rng),
                },
                _ => Op::Delete { key: "k".into() },
            };
            let invoke = rng.range(0, 12);
            let complete = invoke + rng.range(0, 6);
            let result = match &op {
                Op::Put { .. } | Op::Register | Op::Reconfig { .. } => OpResult::Done,
                Op::Get { .. } | Op::Delete { .. } => {
                    OpResult::Value(rng.chance(0.75).then(|| value(rng)))
                }
                Op::Cas { .. } => OpResult::Swapped(rng.chance(0.6)),
            };
            let status = match rng.below(10) {
                0 | 1 => Status::Unknown,
                2 => Status::Failed,
                _ => Status::Ok(result),
            };
            let id = h.invoke(i as u64, 1, op, invoke);
            h.complete(id, complete, status);
        }
        h.ops.sort_by_key(|o| o.invoke);
        for (i, o) in h.ops.iter_mut().enumerate() {
            o.id = i;
        }
        h
    }

    #[test]
    fn agrees_with_brute_force_on_random_histories() {
        let mut rng = crate::rng::Rng::new(99);
        let (mut yes, mut no) = (0, 0);
        for round in 0..6000 {
            let h = random_history(&mut rng);
            let ops: Vec<&Operation> = h.ops.iter().collect();
            let expected = brute(&ops, None);
            let got = check(&h, 1_000_000);
            assert_eq!(
                got.is_linearizable(),
                expected,
                "round {round}: {:#?}",
                h.ops
            );
            if expected {
                yes += 1;
            } else {
                no += 1;
            }
            // From one of several values: some start works.
            let values: BTreeSet<Option<String>> = [None, Some("a"), Some("b"), Some("zz")]
                .into_iter()
                .filter(|_| rng.chance(0.5))
                .map(|v| v.map(String::from))
                .collect();
            let values = if values.is_empty() {
                [None].into()
            } else {
                values
            };
            let any = values.iter().any(|v| brute(&ops, v.as_deref()));
            let got = check_ops("k", &ops, Start::OneOf(values), 1_000_000);
            assert_eq!(
                got.result == KeyResult::Linearizable,
                any,
                "round {round} from several values: {:#?}",
                h.ops
            );
        }
        assert!(yes > 1000 && no > 1000, "{yes} linearizable, {no} not");
    }

    #[test]
    fn parts_with_deadlines_never_fail_wrongly() {
        // Optional operations with deadlines (a window's left edge): the
        // search may be looser than the exact semantics, never stricter.
        let mut rng = crate::rng::Rng::new(7);
        let (mut same, mut looser) = (0, 0);
        for round in 0..4000 {
            let h = random_history(&mut rng);
            let ops: Vec<&Operation> = h.ops.iter().collect();
            let mut deadlines: BTreeMap<usize, u64> = BTreeMap::new();
            for o in &h.ops {
                if o.status == Status::Unknown && rng.chance(0.7) {
                    deadlines.insert(o.id, o.invoke + rng.range(0, 6));
                }
            }
            let exact = brute_part(&ops, None, &deadlines);
            let got = check_part("k", &ops, Start::Absent, &deadlines, 1_000_000);
            let lin = got.result == KeyResult::Linearizable;
            assert!(
                lin || !exact,
                "round {round}: found a violation where there is none: {deadlines:?} {:#?}",
                h.ops
            );
            if lin == exact {
                same += 1;
            } else {
                looser += 1;
            }
        }
        assert!(looser * 50 < same, "{looser} looser of {}", same + looser);
    }
}
