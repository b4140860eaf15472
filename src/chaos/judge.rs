//! The chaos verdict, reached while the run goes on.
//!
//! Everything the run observes reaches the judge as an [`Event`]: each
//! client operation once it completed, each key the clients retired, each
//! page of chosen slots a log reader read from a node, each status answer.
//! The judge keeps only what it has not yet compared, so its memory stays
//! flat however long the run:
//!
//! - **linearizability**, key by key ([`crate::check::linear`]): a key lives
//!   for a bounded number of operations, then the clients move to a fresh
//!   one; once every operation of a retired key has completed, its history
//!   is checked on a thread of the pool and dropped. A key the search cannot
//!   decide within its budget makes the run INCONCLUSIVE, never OK.
//! - **agreement** on everything read: every node's log is read from a
//!   cursor of its own; the first value read for a slot is kept until every
//!   node's cursor has passed that slot, and every other node's value for it
//!   is compared with it. A slot every node compacted before any reader got
//!   to it is *unread*: writes that may lie there are unverified.
//! - **no acknowledged write lost**: each acknowledged write is matched with
//!   its command in a chosen slot; one never found is lost, or unverified
//!   (with the reason) when unread slots chosen before it was invoked could
//!   hold it.
//! - **equal states**: two nodes that report the same `applied` slot must
//!   report the same state digest.
//! - **promises never go down**, across restarts.
//!
//! The judge is a plain state machine over events, so a recorded run (the
//! `--evidence` file) can be judged again with a fault planted in it: the
//! mutation tests do exactly that.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use serde::{Deserialize, Serialize};

use super::report::SeriesBuilder;
use crate::check::history::{History, Operation, Status};
use crate::check::input::InputError;
use crate::check::linear::{self, describe, KeyResult};
use crate::check::logs::acknowledged_write;
use crate::check::window;
use crate::paxos::{Ballot, NodeId, Slot, Value};

/// One observation of a chaos run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A client operation, completed (acknowledged, failed or unknown). The
    /// judge numbers operations in the order they reach it.
    Op(Operation),
    /// The clients issued `ops` operations on `key` and will issue no more.
    Retire {
        /// The key.
        key: String,
        /// Operations issued on it in all.
        ops: u64,
    },
    /// What one node's log reader read. It asked from `from` (its cursor);
    /// the node had compacted every slot below `floor`; `entries` are chosen
    /// slots at or above both; the cursor is now `next` (slots below it that
    /// are not in `entries` were compacted or never read from this node).
    Log {
        /// The node read.
        node: NodeId,
        /// When, µs since the run began.
        at: u64,
        /// The reader's cursor before.
        from: Slot,
        /// The node's compaction point.
        floor: Slot,
        /// Chosen slots, in order.
        entries: Vec<(Slot, Value)>,
        /// The reader's cursor after.
        next: Slot,
    },
    /// A node's status answer.
    Status {
        /// The node.
        node: NodeId,
        /// When, µs since the run began.
        at: u64,
        /// Its acceptor's durable promise.
        promised: Ballot,
        /// The next slot its replica applies.
        applied: Slot,
        /// The digest of what it applied below `applied`.
        digest: u64,
        /// Slots its learner saw chosen with two values: how many.
        #[serde(default)]
        conflicts: u64,
        /// The first of them: (slot, the value kept, the other).
        #[serde(default)]
        first_conflicts: Vec<(Slot, String, String)>,
    },
}

/// What the judge is told before the run (the first line of an evidence
/// file).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JudgeConfig {
    /// Every node of the cluster.
    pub nodes: Vec<NodeId>,
    /// Search steps the linearizability checker may spend per key.
    pub budget: u64,
    /// Threads that check retired keys (0: check on the judge's own thread,
    /// which is what replays of recorded evidence do).
    pub threads: usize,
    /// The first slot of the run: every node knew the slots below chosen
    /// before its first operation (an earlier run's, not this one's).
    pub start: Slot,
}

/// How many lines of one kind a verdict lists (the rest are counted).
const LISTED: usize = 100;

/// An acknowledged write that was not found in any chosen slot.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MissingWrite {
    /// The operation, in one line.
    pub op: String,
    /// Its id in the history.
    pub id: usize,
    /// Why it is lost, or why it cannot be told.
    pub reason: String,
}

/// Acknowledged writes and what became of each.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Writes {
    /// Acknowledged writes in all.
    pub acknowledged: u64,
    /// Found in a chosen slot.
    pub found: u64,
    /// In no chosen slot, and none could hold them unread.
    pub lost: u64,
    /// In no slot read, but slots chosen before them went unread.
    pub unverified: u64,
    /// The lost ones (at most 100).
    pub lost_list: Vec<MissingWrite>,
    /// The unverified ones (at most 100).
    pub unverified_list: Vec<MissingWrite>,
}

/// What the judge found.
#[derive(Clone, Debug, Default)]
pub struct Findings {
    /// Every violation, explained (the run failed).
    pub violations: Vec<String>,
    /// What could not be decided (the run is inconclusive, unless violated).
    pub undecided: Vec<String>,
    /// The operations involved in the first violation, oldest first.
    pub involved: Vec<Operation>,
    /// Keys checked for linearizability.
    pub keys: u64,
    /// Of those, found not linearizable.
    pub keys_violated: u64,
    /// Of those, undecided within the budget.
    pub keys_undecided: u64,
    /// Acknowledged writes and their outcomes.
    pub writes: Writes,
    /// Slots read from two nodes or more and compared.
    pub slots_compared: u64,
    /// Slots no node could be read for.
    pub unread_slots: u64,
    /// Slots on which two nodes disagreed.
    pub disagreements: u64,
    /// The highest slot read, plus one.
    pub slots: Slot,
    /// Pairs of status answers with the same `applied` compared.
    pub digests_compared: u64,
    /// Status answers with a digest that differed.
    pub digest_mismatches: u64,
    /// Promises that went down.
    pub promise_drops: u64,
    /// Operations by outcome: ok, failed, unknown.
    pub counts: (usize, usize, usize),
    /// The per-second series of the run.
    pub series: SeriesBuilder,
    /// Most values the judge held at once for comparison (slots).
    pub peak_pending_slots: usize,
}

/// A retired key's check, as a pool thread returns it.
struct KeyCheck {
    key: String,
    ops: Vec<Operation>,
    verdict: linear::KeyVerdict,
    /// For a key found not linearizable: the smallest window of it that
    /// cannot be ordered on its own (ids are indexes into `ops`).
    window: Option<window::Window>,
}

/// The threads that check retired keys.
struct Pool {
    jobs: Option<crossbeam_channel::Sender<(String, Vec<Operation>)>>,
    results: crossbeam_channel::Receiver<KeyCheck>,
    threads: Vec<std::thread::JoinHandle<()>>,
    sent: usize,
}

impl Pool {
    fn new(threads: usize, budget: u64) -> Pool {
        let (jobs, rx) = crossbeam_channel::unbounded::<(String, Vec<Operation>)>();
        let (tx, results) = crossbeam_channel::unbounded();
        let threads = (0..threads)
            .map(|_| {
                let (rx, tx) = (rx.clone(), tx.clone());
                std::thread::spawn(move || {
                    for (key, ops) in rx {
                        let _ = tx.send(check_key(key, ops, budget));
                    }
                })
            })
            .collect();
        Pool {
            jobs: Some(jobs),
            results,
            threads,
            sent: 0,
        }
    }
}

/// Check one key's operations (ids are the run's; the checker sees them
/// renumbered from 0).
fn check_key(key: String, mut ops: Vec<Operation>, budget: u64) -> KeyCheck {
    ops.sort_by_key(|o| (o.invoke, o.id));
    let history = History {
        ops: ops
            .iter()
            .enumerate()
            .map(|(i, o)| Operation { id: i, ..o.clone() })
            .collect(),
    };
    let verdict = linear::check(&history, budget)
        .keys
        .into_iter()
        .next()
        .unwrap_or(linear::KeyVerdict {
            key: key.clone(),
            ops: 0,
            result: KeyResult::Linearizable,
            steps: 0,
        });
    let window = match &verdict.result {
        KeyResult::NotLinearizable { stuck, .. } => {
            window::smallest(&history, &verdict.key, stuck, budget)
        }
        _ => None,
    };
    KeyCheck {
        key,
        ops,
        verdict,
        window,
    }
}

/// One key's operations so far.
#[derive(Default)]
struct KeyLog {
    ops: Vec<Operation>,
    /// Set once the key is retired: operations issued on it in all.
    issued: Option<u64>,
}

/// A slot read from one node, waiting for the others.
struct Seen {
    value: Value,
    node: NodeId,
    /// Read from another node too.
    compared: bool,
}

/// The judge: feed it every [`Event`], then [`Judge::finish`].
pub struct Judge {
    cfg: JudgeConfig,
    next_id: usize,
    history: Option<Box<dyn Write + Send>>,
    keys: HashMap<String, KeyLog>,
    pool: Option<Pool>,
    checked: Vec<KeyCheck>,
    // Writes: acknowledged ones not yet seen chosen, commands seen chosen
    // before their operation reached the judge, and per client the highest
    // sequence number that did.
    awaiting: HashMap<(u64, u64), Operation>,
    early: HashMap<(u64, u64), u64>,
    // When each node's reader last answered, µs.
    heard: BTreeMap<NodeId, u64>,
    done_seq: HashMap<u64, u64>,
    writes: Writes,
    // Agreement: each node's cursor, the slot below which every cursor is,
    // the slots read above it, and the slots no one read (first, end, when).
    cursors: BTreeMap<NodeId, Slot>,
    settled: Slot,
    pending: BTreeMap<Slot, Seen>,
    unread: Vec<(Slot, Slot, u64)>,
    slots: Slot,
    compared: u64,
    peak_pending: usize,
    // State digests by applied slot, and promises by node.
    digests: BTreeMap<Slot, (u64, NodeId)>,
    digests_compared: u64,
    promised: BTreeMap<NodeId, (Ballot, u64)>,
    conflicts_seen: BTreeMap<NodeId, u64>,
    series: SeriesBuilder,
    counts: (usize, usize, usize),
    violations: Vec<String>,
    disagreements: u64,
    digest_mismatches: u64,
    promise_drops: u64,
    involved: Vec<Operation>,
}

/// A node whose reader has not answered for this long (µs) no longer holds
/// back the slots the others read.
const SILENT_US: u64 = 30_000_000;
/// Commands read before their operation came, kept at most before the old
/// ones are forgotten.
const EARLY_KEPT: usize = 100_000;

/// Digests kept for comparison at most (the oldest go first).
const DIGESTS_KEPT: usize = 100_000;

impl Judge {
    /// A judge for a run on `cfg.nodes`; `history`, if given, receives every
    /// operation as a line of JSON as it comes (`history.jsonl`).
    pub fn new(cfg: JudgeConfig, history: Option<Box<dyn Write + Send>>) -> Judge {
        let pool = (cfg.threads > 0).then(|| Pool::new(cfg.threads, cfg.budget));
        let cursors = cfg.nodes.iter().map(|&n| (n, cfg.start)).collect();
        Judge {
            next_id: 0,
            history,
            keys: HashMap::new(),
            pool,
            checked: Vec::new(),
            awaiting: HashMap::new(),
            early: HashMap::new(),
            heard: BTreeMap::new(),
            done_seq: HashMap::new(),
            writes: Writes::default(),
            cursors,
            settled: cfg.start,
            pending: BTreeMap::new(),
            unread: Vec::new(),
            slots: 0,
            compared: 0,
            peak_pending: 0,
            digests: BTreeMap::new(),
            digests_compared: 0,
            promised: BTreeMap::new(),
            conflicts_seen: BTreeMap::new(),
            series: SeriesBuilder::default(),
            counts: (0, 0, 0),
            violations: Vec::new(),
            disagreements: 0,
            digest_mismatches: 0,
            promise_drops: 0,
            involved: Vec::new(),
            cfg,
        }
    }

    /// Take one event into account.
    pub fn event(&mut self, e: Event) {
        match e {
            Event::Op(op) => self.op(op),
            Event::Retire { key, ops } => {
                self.keys.entry(key.clone()).or_default().issued = Some(ops);
                self.maybe_check(&key);
            }
            Event::Log {
                node,
                at,
                entries,
                next,
                ..
            } => self.log(node, at, entries, next),
            Event::Status {
                node,
                at,
                promised,
                applied,
                digest,
                conflicts,
                first_conflicts,
            } => {
                self.learner_conflicts(node, at, conflicts, &first_conflicts);
                self.status(node, at, promised, applied, digest)
            }
        }
        self.collect_checks(false);
    }

    /// Operations the judge has numbered so far.
    pub fn ops(&self) -> usize {
        self.next_id
    }

    fn op(&mut self, mut op: Operation) {
        op.id = self.next_id;
        self.next_id += 1;
        if let Some(out) = self.history.as_mut() {
            let line = serde_json::to_string(&op).expect("operations serialise");
            if writeln!(out, "{line}").is_err() {
                self.history = None; // a full disk costs the file, not the verdict
            }
        }
        self.series.add(&op);
        match op.status {
            Status::Ok(_) => self.counts.0 += 1,
            Status::Failed => self.counts.1 += 1,
            Status::Unknown => self.counts.2 += 1,
        }
        // Match an acknowledged write with its command, whichever came first.
        let ids = (op.client, op.seq);
        let done = self.done_seq.entry(op.client).or_insert(0);
        *done = (*done).max(op.seq);
        let seen = self.early.remove(&ids).is_some();
        if acknowledged_write(&op.status, &op.op) {
            self.writes.acknowledged += 1;
            if seen {
                self.writes.found += 1;
            } else {
                self.awaiting.insert(ids, op.clone());
            }
        }
        let key = op.op.key().to_string();
        self.keys.entry(key.clone()).or_default().ops.push(op);
        self.maybe_check(&key);
    }

    /// Check `key` if it is retired and every operation issued on it is in.
    fn maybe_check(&mut self, key: &str) {
        let ready = self
            .keys
            .get(key)
            .is_some_and(|k| k.issued.is_some_and(|n| k.ops.len() as u64 >= n));
        if !ready {
            return;
        }
        let k = self.keys.remove(key).expect("present");
        self.check(key.to_string(), k.ops);
    }

    fn check(&mut self, key: String, ops: Vec<Operation>) {
        match self.pool.as_mut() {
            Some(pool) => {
                pool.sent += 1;
                let _ = pool.jobs.as_ref().expect("open").send((key, ops));
            }
            None => {
                let c = check_key(key, ops, self.cfg.budget);
                self.checked_one(c);
            }
        }
    }

    /// Take in the checks the pool finished (all of them, if `wait`).
    fn collect_checks(&mut self, wait: bool) {
        let mut done = Vec::new();
        if let Some(pool) = self.pool.as_mut() {
            if wait {
                pool.jobs = None;
                while pool.sent > 0 {
                    match pool.results.recv() {
                        Ok(c) => {
                            pool.sent -= 1;
                            done.push(c);
                        }
                        Err(_) => break,
                    }
                }
                for t in pool.threads.drain(..) {
                    let _ = t.join();
                }
            } else {
                while let Ok(c) = pool.results.try_recv() {
                    pool.sent -= 1;
                    done.push(c);
                }
            }
        }
        for c in done {
            self.checked_one(c);
        }
    }

    /// Keep what a key's check found: its verdict, and its operations only if
    /// it found something.
    fn checked_one(&mut self, mut c: KeyCheck) {
        if c.verdict.result == KeyResult::Linearizable {
            c.ops = Vec::new();
        }
        self.checked.push(c);
    }

    /// A page read from `node`: compare each slot with what others gave, and
    /// move its cursor to `next`.
    fn log(&mut self, node: NodeId, at: u64, entries: Vec<(Slot, Value)>, next: Slot) {
        let Some(&cursor) = self.cursors.get(&node) else {
            return; // not a member: nothing to compare with
        };
        for (slot, value) in entries {
            // Below the settled point every node was passed already: what a
            // node says there now (after its own restart) was read before.
            if slot < self.settled || slot < cursor {
                continue;
            }
            self.slots = self.slots.max(slot + 1);
            match self.pending.get_mut(&slot) {
                Some(seen) => {
                    if seen.node == node {
                        continue;
                    }
                    if !seen.compared {
                        seen.compared = true;
                        self.compared += 1;
                    }
                    if seen.value != value {
                        self.disagreements += 1;
                        if self.disagreements <= LISTED as u64 {
                            self.violations.push(format!(
                                "agreement: slot {slot}: node {} learned {}, node {node} learned {} ({:.1} s)",
                                seen.node,
                                seen.value.brief(),
                                value.brief(),
                                at as f64 / 1e6
                            ));
                        }
                    }
                }
                None => {
                    self.chosen_commands(&value, at);
                    self.pending.insert(
                        slot,
                        Seen {
                            value,
                            node,
                            compared: false,
                        },
                    );
                }
            }
        }
        self.peak_pending = self.peak_pending.max(self.pending.len());
        if let Some(c) = self.cursors.get_mut(&node) {
            *c = (*c).max(next);
        }
        self.heard.insert(node, at);
        self.settle(at);
    }

    /// Note the commands of a slot read for the first time (at `at`).
    fn chosen_commands(&mut self, value: &Value, at: u64) {
        let Value::Batch(cmds) = value else { return };
        for c in cmds {
            let ids = (c.client, c.seq);
            if self.awaiting.remove(&ids).is_some() {
                self.writes.found += 1;
            } else if c.seq > self.done_seq.get(&c.client).copied().unwrap_or(0) {
                // Its operation has not reached the judge yet.
                self.early.insert(ids, at);
            }
        }
    }

    /// Every cursor passed the slots below the lowest: drop them, and count
    /// those no reader read.
    fn settle(&mut self, at: u64) {
        // A node silent for long (down, or cut off) holds nothing back: what
        // the others read is compared among them, and with it only from
        // where they are when it answers again.
        let fresh =
            |n: &NodeId| at.saturating_sub(self.heard.get(n).copied().unwrap_or(0)) <= SILENT_US;
        let Some(low) = self
            .cursors
            .iter()
            .filter(|(n, _)| fresh(n))
            .map(|(_, &c)| c)
            .min()
        else {
            return;
        };
        // Commands chosen long ago whose operation never came (another
        // program's clients): forgotten.
        if self.early.len() > EARLY_KEPT {
            self.early.retain(|_, t| at.saturating_sub(*t) <= SILENT_US);
        }
        if low <= self.settled {
            return;
        }
        let rest = self.pending.split_off(&low);
        let read = std::mem::replace(&mut self.pending, rest);
        let mut gap_from = self.settled;
        for &slot in read.keys() {
            if slot > gap_from {
                self.unread.push((gap_from, slot, at));
            }
            gap_from = slot + 1;
        }
        if low > gap_from {
            self.unread.push((gap_from, low, at));
        }
        self.settled = low;
    }

    /// A learner that saw one slot chosen with two values: agreement is
    /// broken, whatever the logs say (a learner keeps the first value).
    fn learner_conflicts(
        &mut self,
        node: NodeId,
        at: u64,
        count: u64,
        first: &[(Slot, String, String)],
    ) {
        let before = self.conflicts_seen.get(&node).copied().unwrap_or(0);
        if count <= before {
            return;
        }
        self.conflicts_seen.insert(node, count);
        self.disagreements += count - before;
        let shown = first.iter().skip(before as usize).take(LISTED);
        let mut any = false;
        for (slot, kept, other) in shown {
            any = true;
            self.violations.push(format!(
                "agreement: node {node}'s learner saw slot {slot} chosen twice: {kept}, then {other} ({:.1} s)",
                at as f64 / 1e6
            ));
        }
        if !any {
            self.violations.push(format!(
                "agreement: node {node}'s learner saw {} more slots chosen twice ({:.1} s)",
                count - before,
                at as f64 / 1e6
            ));
        }
    }

    fn status(&mut self, node: NodeId, at: u64, promised: Ballot, applied: Slot, digest: u64) {
        let (before, when) = self
            .promised
            .get(&node)
            .copied()
            .unwrap_or((Ballot::ZERO, 0));
        if promised < before {
            self.promise_drops += 1;
            if self.promise_drops <= LISTED as u64 {
                self.violations.push(format!(
                    "promise went down: node {node}'s acceptor had promised {before} (at {:.1} s), and at {:.1} s only {promised}",
                    when as f64 / 1e6,
                    at as f64 / 1e6
                ));
            }
        } else {
            self.promised.insert(node, (promised, at));
        }
        if applied == 0 {
            return;
        }
        match self.digests.get(&applied) {
            Some(&(d, other)) if other != node => {
                self.digests_compared += 1;
                if d != digest {
                    self.digest_mismatches += 1;
                    if self.digest_mismatches <= LISTED as u64 {
                        self.violations.push(format!(
                            "state: nodes {other} and {node} applied the slots below {applied} to different states (digests {d:016x} and {digest:016x}, at {:.1} s)",
                            at as f64 / 1e6
                        ));
                    }
                }
            }
            Some(_) => {}
            None => {
                self.digests.insert(applied, (digest, node));
                if self.digests.len() > DIGESTS_KEPT {
                    self.digests.pop_first();
                }
            }
        }
    }

    /// No more events: check the keys still open, decide every awaited
    /// write, and say what was found.
    pub fn finish(mut self) -> Findings {
        let open: Vec<String> = self.keys.keys().cloned().collect();
        for key in open {
            let k = self.keys.remove(&key).expect("present");
            self.check(key, k.ops);
        }
        self.collect_checks(true);
        if let Some(mut h) = self.history.take() {
            let _ = h.flush();
        }
        let mut f = Findings {
            counts: self.counts,
            slots_compared: self.compared,
            slots: self.slots,
            disagreements: self.disagreements,
            digests_compared: self.digests_compared,
            digest_mismatches: self.digest_mismatches,
            promise_drops: self.promise_drops,
            peak_pending_slots: self.peak_pending,
            ..Findings::default()
        };
        // Linearizability: violations first by where they start.
        self.checked.sort_by_key(|c| {
            (
                !matches!(c.verdict.result, KeyResult::NotLinearizable { .. }),
                c.ops.first().map_or(usize::MAX, |o| o.id),
                c.key.clone(),
            )
        });
        f.keys = self.checked.len() as u64;
        let mut lin = Vec::new();
        for c in &self.checked {
            match &c.verdict.result {
                KeyResult::Linearizable => {}
                KeyResult::NotLinearizable { prefix, stuck, .. } => {
                    f.keys_violated += 1;
                    lin.push(format!("not linearizable: key {:?}: {}", c.key, explain(c)));
                    if let (true, Some(w)) = (self.involved.is_empty(), &c.window) {
                        self.involved = w.ops.iter().map(|o| c.ops[o.id].clone()).collect();
                    }
                    if self.involved.is_empty() {
                        let local: Vec<usize> = prefix
                            .iter()
                            .rev()
                            .take(6)
                            .rev()
                            .chain(stuck.iter())
                            .copied()
                            .collect();
                        self.involved = local.iter().map(|&i| c.ops[i].clone()).collect();
                    }
                }
                KeyResult::Inconclusive => {
                    f.keys_undecided += 1;
                    f.undecided.push(format!(
                        "could not decide linearizability of key {:?} ({} operations) within {} search steps",
                        c.key, c.verdict.ops, c.verdict.steps
                    ));
                }
            }
        }
        // Writes never seen chosen: lost, unless unread slots chosen before
        // they were invoked could hold them.
        let mut missing: Vec<Operation> = self.awaiting.into_values().collect();
        missing.sort_by_key(|o| o.id);
        let mut writes = self.writes;
        for op in missing {
            let could = self
                .unread
                .iter()
                .filter(|(_, _, at)| *at > op.invoke)
                .map(|&(a, b, at)| format!("{a}..{} (passed at {:.1} s)", b - 1, at as f64 / 1e6))
                .take(3)
                .collect::<Vec<_>>();
            let m = MissingWrite {
                op: describe(&op),
                id: op.id,
                reason: String::new(),
            };
            if could.is_empty() {
                writes.lost += 1;
                if writes.lost_list.len() < LISTED {
                    writes.lost_list.push(MissingWrite {
                        reason: "acknowledged, yet in no chosen slot any node held".into(),
                        ..m
                    });
                }
                if self.involved.is_empty() && lin.is_empty() {
                    self.involved.push(op);
                }
            } else {
                writes.unverified += 1;
                if writes.unverified_list.len() < LISTED {
                    writes.unverified_list.push(MissingWrite {
                        reason: format!(
                            "in no slot read; slots {} were compacted on every node before any reader read them, after it was invoked",
                            could.join(", ")
                        ),
                        ..m
                    });
                }
            }
        }
        f.unread_slots = self.unread.iter().map(|(a, b, _)| b - a).sum();
        f.violations = lin;
        f.violations.extend(self.violations);
        for w in writes.lost_list.iter().take(5) {
            f.violations.push(format!(
                "lost write: {} was acknowledged but is in no chosen slot of any node",
                w.op
            ));
        }
        if writes.lost > 5 {
            f.violations
                .push(format!("... and {} more lost writes", writes.lost - 5));
        }
        if writes.unverified > 0 {
            f.undecided.push(format!(
                "{} acknowledged writes unverified: in no slot read, and {} slots were compacted on every node before a reader read them (first: {})",
                writes.unverified,
                f.unread_slots,
                writes.unverified_list[0].op
            ));
        }
        f.writes = writes;
        f.involved = self.involved;
        f.series = self.series;
        f
    }
}

/// A non-linearizable key in words, with the run's operation ids.
fn explain(c: &KeyCheck) -> String {
    let KeyResult::NotLinearizable {
        prefix,
        stuck,
        value,
    } = &c.verdict.result
    else {
        return String::new();
    };
    let mut s = format!(
        "{} of {} operations linearize, leaving the value {}; none of these can come next:",
        prefix.len(),
        c.verdict.ops,
        value
            .as_deref()
            .map_or("(absent)".to_string(), |v| format!("{v:?}"))
    );
    for &i in stuck.iter().take(4) {
        s.push_str(&format!(" [{}]", describe(&c.ops[i])));
    }
    if let Some(&last) = prefix.last() {
        s.push_str(&format!("; last placed: [{}]", describe(&c.ops[last])));
    }
    if let Some(w) = &c.window {
        s.push_str(&format!(
            "; the smallest window that cannot be ordered on its own: {} operations from {:.3} s to {:.3} s",
            w.ops.len(),
            w.from as f64 / 1e6,
            w.to as f64 / 1e6
        ));
    }
    s
}

/// Read an evidence file (`chaos --evidence`): its configuration, then its
/// events. Errors name the file and line.
pub fn load(path: &std::path::Path) -> Result<(JudgeConfig, Vec<Event>), InputError> {
    let text = crate::check::input::read(path)?;
    let mut lines = text.lines().enumerate();
    let at = |i: usize, e: serde_json::Error| InputError::json(path, i + 1, &e);
    let (_, first) = lines.next().ok_or_else(|| InputError::Invalid {
        path: path.into(),
        message: "empty".into(),
    })?;
    let cfg = serde_json::from_str(first).map_err(|e| at(0, e))?;
    let events = lines
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| at(i, e)))
        .collect::<Result<_, _>>()?;
    Ok((cfg, events))
}

/// Judge recorded events again (a replay of `--evidence`), on this thread.
pub fn replay(cfg: JudgeConfig, events: impl IntoIterator<Item = Event>) -> Findings {
    let mut j = Judge::new(JudgeConfig { threads: 0, ..cfg }, None);
    for e in events {
        j.event(e);
    }
    j.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::{Op, OpResult};
    use crate::paxos::Command;

    fn cfg() -> JudgeConfig {
        JudgeConfig {
            nodes: vec![1, 2, 3],
            budget: 100_000,
            threads: 0,
            start: 0,
        }
    }

    fn put(client: u64, seq: u64, key: &str, value: &str, at: u64, status: Status) -> Event {
        Event::Op(Operation {
            id: 0,
            client,
            seq,
            op: Op::Put {
                key: key.into(),
                value: value.into(),
            },
            invoke: at,
            complete: Some(at + 10),
            status,
        })
    }

    fn get(client: u64, seq: u64, key: &str, value: Option<&str>, at: u64) -> Event {
        Event::Op(Operation {
            id: 0,
            client,
            seq,
            op: Op::Get { key: key.into() },
            invoke: at,
            complete: Some(at + 10),
            status: Status::Ok(OpResult::Value(value.map(String::from))),
        })
    }

    fn batch(client: u64, seq: u64, value: &str) -> Value {
        Value::Batch(vec![Command {
            client,
            seq,
            op: Op::Put {
                key: "k".into(),
                value: value.into(),
            },
        }])
    }

    fn log(node: NodeId, at: u64, entries: Vec<(Slot, Value)>, next: Slot) -> Event {
        Event::Log {
            node,
            at,
            from: 0,
            floor: 0,
            entries,
            next,
        }
    }

    fn ok() -> Status {
        Status::Ok(OpResult::Done)
    }

    /// Two puts, each chosen and read from every node; a read of the last.
    fn clean() -> Vec<Event> {
        let mut e = vec![
            put(1, 1, "k", "a", 0, ok()),
            put(1, 2, "k", "b", 100, ok()),
            get(2, 1, "k", Some("b"), 200),
        ];
        for node in 1..=3 {
            e.push(log(
                node,
                300,
                vec![(0, batch(1, 1, "a")), (1, batch(1, 2, "b"))],
                2,
            ));
        }
        e.push(Event::Retire {
            key: "k".into(),
            ops: 3,
        });
        e
    }

    #[test]
    fn a_clean_run_is_ok_and_counts_what_it_compared() {
        let f = replay(cfg(), clean());
        assert!(f.violations.is_empty() && f.undecided.is_empty(), "{f:?}");
        assert_eq!((f.keys, f.slots_compared, f.slots), (1, 2, 2));
        assert_eq!((f.writes.acknowledged, f.writes.found), (2, 2));
    }

    #[test]
    fn a_different_value_from_any_node_at_any_time_is_a_disagreement() {
        let mut e = clean();
        // Node 3 read slot 1 in a pass of its own, later, with another value.
        e[5] = log(3, 300, vec![(0, batch(1, 1, "a"))], 1);
        e.insert(6, log(3, 900, vec![(1, batch(9, 9, "z"))], 2));
        let f = replay(cfg(), e);
        assert_eq!(f.disagreements, 1, "{f:?}");
        assert!(
            f.violations[0].contains("slot 1: node 1 learned")
                && f.violations[0].contains("node 3 learned"),
            "{:?}",
            f.violations
        );
    }

    #[test]
    fn a_write_in_no_slot_is_lost_and_a_command_read_before_its_ack_is_found() {
        let mut e = clean();
        // The log was read before the second put's ack reached the judge.
        let second = e.remove(1);
        e.insert(5, second);
        let f = replay(cfg(), e);
        assert!(f.violations.is_empty(), "{:?}", f.violations);
        assert_eq!(f.writes.found, 2);

        let mut e = clean();
        e.insert(3, put(3, 1, "k", "c", 150, ok()));
        let f = replay(cfg(), e);
        assert_eq!(f.writes.lost, 1);
        assert!(
            f.violations
                .iter()
                .any(|v| v.starts_with("lost write") && v.contains("client 3 put k=c")),
            "{:?}",
            f.violations
        );
    }

    #[test]
    fn unread_slots_leave_writes_unverified_not_ok() {
        // Every node read slot 0, then compacted slot 1 before a reader got
        // there: the second put may lie in it.
        let mut e: Vec<Event> = clean()
            .into_iter()
            .filter(|e| !matches!(e, Event::Log { .. }))
            .collect();
        for node in 1..=3 {
            e.push(log(node, 250, vec![(0, batch(1, 1, "a"))], 1));
            e.push(Event::Log {
                node,
                at: 400,
                from: 1,
                floor: 2,
                entries: vec![],
                next: 2,
            });
        }
        let f = replay(cfg(), e.clone());
        assert!(f.violations.is_empty(), "{:?}", f.violations);
        assert_eq!((f.unread_slots, f.writes.unverified), (1, 1));
        assert!(f.undecided[0].contains("unverified"), "{:?}", f.undecided);
        assert!(
            f.writes.unverified_list[0].reason.contains("slots 1..1"),
            "{:?}",
            f.writes.unverified_list
        );
        // A write invoked after the slots went unread cannot lie there: lost.
        e.push(put(4, 1, "q", "late", 500, ok()));
        let f = replay(cfg(), e);
        assert_eq!(
            (f.writes.unverified, f.writes.lost),
            (1, 1),
            "{:?}",
            f.writes
        );
    }

    #[test]
    fn a_stale_read_is_not_linearizable_and_names_its_operations() {
        let mut e = clean();
        e[2] = get(2, 1, "k", Some("a"), 200);
        let f = replay(cfg(), e);
        assert_eq!(f.keys_violated, 1);
        assert!(f.violations[0].starts_with("not linearizable: key \"k\""));
        assert!(f.involved.iter().any(|o| o.id == 2), "{:?}", f.involved);
    }

    #[test]
    fn a_key_the_budget_cannot_decide_is_inconclusive() {
        let f = replay(JudgeConfig { budget: 1, ..cfg() }, clean());
        assert!(f.violations.is_empty());
        assert_eq!(f.keys_undecided, 1);
        assert!(
            f.undecided[0].contains("could not decide"),
            "{:?}",
            f.undecided
        );
    }

    #[test]
    fn promises_going_down_and_differing_digests_are_violations() {
        let b = |round| Ballot { round, node: 1 };
        let status = |node, promised, applied, digest| Event::Status {
            node,
            at: 0,
            promised,
            applied,
            digest,
            conflicts: 0,
            first_conflicts: vec![],
        };
        let mut e = clean();
        e.push(status(1, b(5), 2, 77));
        e.push(status(2, b(5), 2, 77));
        let f = replay(cfg(), e.clone());
        assert!(f.violations.is_empty(), "{:?}", f.violations);
        assert_eq!(f.digests_compared, 1);
        e.push(status(1, b(4), 2, 77));
        e.push(status(3, b(5), 2, 78));
        let f = replay(cfg(), e);
        assert_eq!((f.promise_drops, f.digest_mismatches), (1, 1));
        assert!(f
            .violations
            .iter()
            .any(|v| v.starts_with("promise went down: node 1")));
        assert!(f
            .violations
            .iter()
            .any(|v| v.starts_with("state: nodes 1 and 3")));
    }

    #[test]
    fn a_learner_that_saw_two_values_chosen_is_a_disagreement() {
        let mut e = clean();
        e.push(Event::Status {
            node: 2,
            at: 5_000_000,
            promised: Ballot::ZERO,
            applied: 0,
            digest: 0,
            conflicts: 1,
            first_conflicts: vec![(7, "a".into(), "b".into())],
        });
        let f = replay(cfg(), e);
        assert_eq!(f.disagreements, 1);
        assert!(
            f.violations[0]
                .starts_with("agreement: node 2's learner saw slot 7 chosen twice: a, then b"),
            "{:?}",
            f.violations
        );
    }

    #[test]
    fn only_what_is_not_yet_compared_is_kept() {
        let mut j = Judge::new(cfg(), None);
        for s in 0..1000u64 {
            for node in 1..=3 {
                j.event(log(node, s, vec![(s, batch(1, s + 1, "v"))], s + 1));
            }
        }
        assert_eq!(j.pending.len(), 0);
        assert_eq!(j.early.len(), 1000, "commands of operations not yet in");
        // Node 3 stops answering: what it has not read waits for it...
        for s in 1000..1100u64 {
            for node in 1..=2 {
                j.event(log(node, s, vec![(s, batch(1, s + 1, "v"))], s + 1));
            }
        }
        assert_eq!(j.pending.len(), 100);
        // ... for 30 s, then no longer.
        j.event(log(1, 31_000_000, vec![], 1100));
        assert_eq!(j.pending.len(), 0);
    }
}
