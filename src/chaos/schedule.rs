//! Fault schedules: what goes wrong, when, drawn from one seed.
//!
//! A schedule is a list of episodes, each with a start, an end and a fault. Two
//! tracks run side by side: a node track (SIGKILL then restart, SIGSTOP then
//! SIGCONT) and a network track (partitions of named shapes, message loss,
//! duplication and delay). Unless majority loss is allowed, the node track never
//! has more than a minority of nodes down or paused at once. The same seed, size
//! and duration always give the same schedule; only "the leader" is resolved
//! when the episode starts.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::paxos::quorum::tolerates;
use crate::paxos::{NodeId, Rule};
use crate::rng::Rng;

/// A fault kind `--faults` can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// SIGKILL a node, restart it later from its logs.
    Kill,
    /// SIGSTOP a node, SIGCONT it later.
    Pause,
    /// Cut the cluster in a named shape, heal later.
    Partition,
    /// Lose messages.
    Loss,
    /// Duplicate messages.
    Dup,
    /// Delay (and so reorder) messages.
    Delay,
    /// Change the members (not in `all`: name it, `all,membership`): grow
    /// adds a fresh, empty node that catches up and is promoted; shrink
    /// removes a voter through the leader, stops it and wipes its data.
    Membership,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 6] = [
        Kind::Kill,
        Kind::Pause,
        Kind::Partition,
        Kind::Loss,
        Kind::Dup,
        Kind::Delay,
    ];

    /// Parse a list like "kill,pause,partition" ("all" for every kind). (By
    /// hand, not clap's `value_delimiter`: `all` and aliases expand into a set.)
    // `chaos --faults`'s clap value parser: `Result<_, String>` is clap's idiom.
    pub fn parse_list(s: &str) -> Result<BTreeSet<Kind>, String> {
        let mut set = BTreeSet::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "all" => set.extend(Kind::ALL),
                "kill" | "crash" => {
                    set.insert(Kind::Kill);
                }
                "pause" => {
                    set.insert(Kind::Pause);
                }
                "partition" => {
                    set.insert(Kind::Partition);
                }
                "loss" => {
                    set.insert(Kind::Loss);
                }
                "dup" => {
                    set.insert(Kind::Dup);
                }
                "delay" => {
                    set.insert(Kind::Delay);
                }
                "membership" | "members" => {
                    set.insert(Kind::Membership);
                }
                other => {
                    return Err(format!(
                        "unknown fault `{other}`; expected kill, pause, partition, loss, dup, delay, membership or all"
                    ))
                }
            }
        }
        Ok(set)
    }
}

/// Which node a node fault hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// This node.
    Node(NodeId),
    /// Whoever leads when the episode starts.
    Leader,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Node(n) => write!(f, "node {n}"),
            Target::Leader => write!(f, "the leader"),
        }
    }
}

/// The shape of a partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// Cut the leader off from everyone.
    IsolateLeader,
    /// A minority side and a majority side.
    MajorityMinority { minority: Vec<NodeId> },
    /// Two halves as equal as possible (no majority side when the size is even).
    EvenHalves { half: Vec<NodeId> },
    /// Two sides that cannot talk, and one node that talks to both.
    Bridge {
        left: Vec<NodeId>,
        bridge: NodeId,
        right: Vec<NodeId>,
    },
    /// Each node talks only to its two neighbours in this ring order.
    Ring { order: Vec<NodeId> },
}

impl Shape {
    /// The peers each node is cut off from, given every node id and the leader.
    pub fn blocked(
        &self,
        ids: &[NodeId],
        leader: Option<NodeId>,
    ) -> Vec<(NodeId, BTreeSet<NodeId>)> {
        let others = |n: NodeId, set: &[NodeId]| -> BTreeSet<NodeId> {
            set.iter().copied().filter(|&m| m != n).collect()
        };
        let split = |side: &[NodeId]| -> Vec<(NodeId, BTreeSet<NodeId>)> {
            ids.iter()
                .map(|&n| {
                    let mine = side.contains(&n);
                    let cut = ids
                        .iter()
                        .copied()
                        .filter(|m| side.contains(m) != mine)
                        .collect();
                    (n, cut)
                })
                .collect()
        };
        match self {
            Shape::IsolateLeader => match leader {
                Some(l) => split(&[l]),
                None => Vec::new(),
            },
            Shape::MajorityMinority { minority } => split(minority),
            Shape::EvenHalves { half } => split(half),
            Shape::Bridge {
                left,
                bridge,
                right,
            } => ids
                .iter()
                .map(|&n| {
                    let cut = if left.contains(&n) {
                        right.iter().copied().collect()
                    } else if right.contains(&n) {
                        left.iter().copied().collect()
                    } else {
                        debug_assert_eq!(n, *bridge);
                        BTreeSet::new()
                    };
                    (n, cut)
                })
                .collect(),
            Shape::Ring { order } => {
                let k = order.len();
                order
                    .iter()
                    .enumerate()
                    .map(|(i, &n)| {
                        let near = [order[(i + 1) % k], order[(i + k - 1) % k]];
                        let cut = others(n, order)
                            .into_iter()
                            .filter(|m| !near.contains(m))
                            .collect();
                        (n, cut)
                    })
                    .collect()
            }
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &[NodeId]| {
            v.iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            Shape::IsolateLeader => write!(f, "isolate the leader"),
            Shape::MajorityMinority { minority } => {
                write!(f, "minority {{{}}} cut off", list(minority))
            }
            Shape::EvenHalves { half } => write!(f, "even halves, {{{}}} apart", list(half)),
            Shape::Bridge {
                left,
                bridge,
                right,
            } => {
                write!(
                    f,
                    "bridge: {{{}}} - {bridge} - {{{}}}",
                    list(left),
                    list(right)
                )
            }
            Shape::Ring { order } => write!(f, "ring {}", list(order)),
        }
    }
}

/// One fault.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Fault {
    /// SIGKILL, then restart at the end.
    Kill { target: Target },
    /// SIGSTOP, then SIGCONT at the end.
    Pause { target: Target },
    /// A partition, healed at the end.
    Partition { shape: Shape },
    /// Message faults on every node, cleared at the end.
    Net {
        loss_ppm: u32,
        dup_ppm: u32,
        delay_ms: (u64, u64),
    },
    /// Hold back everything the leader sends by `delay_ms`, then SIGSTOP it
    /// with its Accepts still held back, past an election; at the end,
    /// SIGCONT it, so the Accepts of its old ballot land after a newer
    /// leader chose other values in their slots (what `--break promise`
    /// needs to show itself).
    StaleLeader { delay_ms: u64 },
    /// Add node `id`, fresh and empty, on an address picked when the run
    /// starts; wait until it caught up and promote it.
    Grow { id: NodeId },
    /// Remove a voter (the `pick`-th of those not under another fault, in
    /// id order, modulo their number) through the leader; once the new
    /// configuration governs, stop it and wipe its data.
    Shrink { pick: u64 },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Kill { target } => write!(f, "kill {target}"),
            Fault::Pause { target } => write!(f, "pause {target}"),
            Fault::Partition { shape } => write!(f, "partition: {shape}"),
            Fault::Net {
                loss_ppm,
                dup_ppm,
                delay_ms,
            } => {
                let mut parts = Vec::new();
                if *loss_ppm > 0 {
                    parts.push(format!("loss {:.0}%", *loss_ppm as f64 / 1e4));
                }
                if *dup_ppm > 0 {
                    parts.push(format!("dup {:.0}%", *dup_ppm as f64 / 1e4));
                }
                if delay_ms.1 > 0 {
                    parts.push(format!("delay {}..{}ms", delay_ms.0, delay_ms.1));
                }
                write!(f, "messages: {}", parts.join(", "))
            }
            Fault::StaleLeader { delay_ms } => write!(
                f,
                "stale leader: hold back the leader's messages {delay_ms} ms, pause it past an election, resume it"
            ),
            Fault::Grow { id } => write!(f, "grow: add node {id} (empty), catch it up, promote it"),
            Fault::Shrink { .. } => write!(f, "shrink: remove a voter, stop it, wipe its data"),
        }
    }
}

/// A fault held from `start_ms` to `end_ms` (ms since the run began).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Episode {
    /// When it starts.
    pub start_ms: u64,
    /// When it is undone.
    pub end_ms: u64,
    /// What it is.
    pub fault: Fault,
}

/// The schedule that exposes `rule` broken on real processes, where the
/// random one rarely does: it replaces the node track. `None`: the random
/// schedule exposes it, or nothing on real processes can (docs/chaos.md,
/// "Breaking the rules on real processes").
fn exposing(rule: Option<Rule>, seed: u64, start: u64, end: u64) -> Option<Vec<Episode>> {
    let mut rng = Rng::derive(seed, 3);
    let mut episodes = Vec::new();
    let mut t = start;
    match rule? {
        // Two leaders' proposals in the same slots: the old one's Accepts,
        // held back across a pause, land after the new one chose.
        Rule::Promise => {
            while t < end {
                let stop = (t + rng.range(1_200, 2_000)).min(end);
                episodes.push(Episode {
                    start_ms: t,
                    end_ms: stop,
                    fault: Fault::StaleLeader { delay_ms: 300 },
                });
                t = stop + rng.range(1_000, 2_000);
            }
        }
        _ => return None,
    }
    Some(episodes)
}

/// Build the schedule for a run of `duration_ms` on nodes `ids`; with a rule
/// broken, the node track is the one that exposes it, if it has one.
pub fn build(
    seed: u64,
    ids: &[NodeId],
    duration_ms: u64,
    kinds: &BTreeSet<Kind>,
    allow_majority_loss: bool,
    broken: Option<Rule>,
) -> Vec<Episode> {
    let mut episodes = Vec::new();
    let n = ids.len();
    let budget = if allow_majority_loss { n } else { tolerates(n) };
    let end = duration_ms.saturating_sub(1_000);
    let start = 1_000.min(end);

    // Node track.
    let node_kinds: Vec<Kind> = [Kind::Kill, Kind::Pause]
        .into_iter()
        .filter(|k| kinds.contains(k))
        .collect();
    let targeted = exposing(broken, seed, start, end);
    let node_track = targeted.is_none();
    episodes.extend(targeted.unwrap_or_default());
    if node_track && !node_kinds.is_empty() && budget > 0 {
        let mut rng = Rng::derive(seed, 1);
        let mut t = start;
        let mut busy: Vec<(u64, Option<NodeId>)> = Vec::new(); // (until, node; None = the leader)
        while t < end {
            busy.retain(|(until, _)| *until > t);
            if busy.len() < budget {
                let kind = node_kinds[rng.below(node_kinds.len())];
                let hold = rng.range(800, 3_500);
                let leader_busy = busy.iter().any(|(_, n)| n.is_none());
                let target = if !leader_busy && rng.chance(0.4) {
                    Target::Leader
                } else {
                    let free: Vec<NodeId> = ids
                        .iter()
                        .copied()
                        .filter(|i| !busy.iter().any(|(_, n)| *n == Some(*i)))
                        .collect();
                    Target::Node(free[rng.below(free.len())])
                };
                let stop = (t + hold).min(end);
                busy.push((
                    stop,
                    match target {
                        Target::Node(i) => Some(i),
                        Target::Leader => None,
                    },
                ));
                let fault = match kind {
                    Kind::Kill => Fault::Kill { target },
                    _ => Fault::Pause { target },
                };
                episodes.push(Episode {
                    start_ms: t,
                    end_ms: stop,
                    fault,
                });
            }
            t += rng.range(400, 2_000);
        }
    }

    // Network track: one episode at a time.
    let mut net_kinds: Vec<Kind> = Vec::new();
    if kinds.contains(&Kind::Partition) {
        net_kinds.push(Kind::Partition);
    }
    if kinds
        .iter()
        .any(|k| matches!(k, Kind::Loss | Kind::Dup | Kind::Delay))
    {
        net_kinds.push(Kind::Loss); // stands for "message faults"
    }
    if !net_kinds.is_empty() {
        let mut rng = Rng::derive(seed, 2);
        let mut t = start + rng.range(0, 700);
        while t < end {
            let hold = rng.range(800, 3_000);
            let stop = (t + hold).min(end);
            let fault = match net_kinds[rng.below(net_kinds.len())] {
                Kind::Partition => Fault::Partition {
                    shape: shape(&mut rng, ids),
                },
                _ => {
                    let pick = |rng: &mut Rng, k: Kind, lo: u64, hi: u64| {
                        if kinds.contains(&k) {
                            rng.range(lo, hi) as u32 * 10_000
                        } else {
                            0
                        }
                    };
                    let loss_ppm = pick(&mut rng, Kind::Loss, 5, 25);
                    let dup_ppm = pick(&mut rng, Kind::Dup, 5, 25);
                    let delay_ms = if kinds.contains(&Kind::Delay) {
                        (0, rng.range(5, 40))
                    } else {
                        (0, 0)
                    };
                    Fault::Net {
                        loss_ppm,
                        dup_ppm,
                        delay_ms,
                    }
                }
            };
            episodes.push(Episode {
                start_ms: t,
                end_ms: stop,
                fault,
            });
            t = stop + rng.range(300, 1_500);
        }
    }
    // Membership track: grow and shrink in turn, one change at a time, so
    // the cluster goes between its size and one more.
    if kinds.contains(&Kind::Membership) {
        let mut rng = Rng::derive(seed, 4);
        let mut next_id = ids.iter().copied().max().unwrap_or(0) + 1;
        let mut t = start + rng.range(300, 1_000);
        let mut grow = true;
        while t + 500 < end {
            let fault = if grow {
                next_id += 1;
                Fault::Grow { id: next_id - 1 }
            } else {
                Fault::Shrink {
                    pick: rng.range(0, 1_000),
                }
            };
            episodes.push(Episode {
                start_ms: t,
                end_ms: t + 1,
                fault,
            });
            grow = !grow;
            t += rng.range(2_000, 4_000);
        }
    }
    episodes.sort_by_key(|e| e.start_ms);
    episodes
}

/// The nodes the membership track adds, in order.
pub fn grown(schedule: &[Episode]) -> Vec<NodeId> {
    schedule
        .iter()
        .filter_map(|e| match e.fault {
            Fault::Grow { id } => Some(id),
            _ => None,
        })
        .collect()
}

fn shape(rng: &mut Rng, ids: &[NodeId]) -> Shape {
    let mut order = ids.to_vec();
    rng.shuffle(&mut order);
    let n = ids.len();
    match rng.below(if n >= 3 { 5 } else { 3 }) {
        0 => Shape::IsolateLeader,
        1 => Shape::MajorityMinority {
            minority: order[..tolerates(n).max(1)].to_vec(),
        },
        2 => Shape::EvenHalves {
            half: order[..n / 2].to_vec(),
        },
        3 => {
            let side = (n - 1) / 2;
            Shape::Bridge {
                left: order[..side].to_vec(),
                bridge: order[side],
                right: order[side + 1..].to_vec(),
            }
        }
        _ => Shape::Ring { order },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> BTreeSet<Kind> {
        Kind::ALL.into()
    }

    #[test]
    fn same_seed_same_schedule() {
        let ids = [1, 2, 3, 4, 5];
        assert_eq!(
            build(7, &ids, 60_000, &all(), false, None),
            build(7, &ids, 60_000, &all(), false, None)
        );
        assert_ne!(
            build(7, &ids, 60_000, &all(), false, None),
            build(8, &ids, 60_000, &all(), false, None)
        );
    }

    #[test]
    fn a_majority_stays_up_unless_allowed() {
        let ids = [1, 2, 3, 4, 5];
        for seed in 0..50 {
            let s = build(seed, &ids, 60_000, &all(), false, None);
            for t in (0..60_000).step_by(50) {
                let down = s
                    .iter()
                    .filter(|e| matches!(e.fault, Fault::Kill { .. } | Fault::Pause { .. }))
                    .filter(|e| e.start_ms <= t && t < e.end_ms)
                    .count();
                assert!(down <= 2, "seed {seed}: {down} nodes down at {t} ms");
            }
        }
        let many = (0..50).any(|seed| {
            let s = build(seed, &ids, 60_000, &[Kind::Kill].into(), true, None);
            (0..60_000)
                .step_by(50)
                .any(|t| s.iter().filter(|e| e.start_ms <= t && t < e.end_ms).count() > 2)
        });
        assert!(
            many,
            "with majority loss allowed, some schedule takes a majority down"
        );
    }

    #[test]
    fn only_the_kinds_asked_for() {
        let s = build(3, &[1, 2, 3], 30_000, &[Kind::Pause].into(), false, None);
        assert!(!s.is_empty());
        assert!(s.iter().all(|e| matches!(e.fault, Fault::Pause { .. })));
        let s = build(3, &[1, 2, 3], 30_000, &[Kind::Dup].into(), false, None);
        assert!(s.iter().all(|e| matches!(
            e.fault,
            Fault::Net {
                loss_ppm: 0,
                delay_ms: (0, 0),
                ..
            }
        )));
    }

    #[test]
    fn a_broken_promise_gets_stale_leaders_instead_of_the_node_track() {
        let s = build(4, &[1, 2, 3], 30_000, &all(), false, Some(Rule::Promise));
        let stale = s
            .iter()
            .filter(|e| matches!(e.fault, Fault::StaleLeader { .. }))
            .count();
        assert!(stale >= 6, "{s:?}");
        assert!(!s
            .iter()
            .any(|e| matches!(e.fault, Fault::Kill { .. } | Fault::Pause { .. })));
        // Rules the random schedule exposes keep it.
        assert_eq!(
            build(4, &[1, 2, 3], 30_000, &all(), false, Some(Rule::Persist)),
            build(4, &[1, 2, 3], 30_000, &all(), false, None)
        );
    }

    #[test]
    fn shapes_cut_the_right_links() {
        let ids = [1, 2, 3, 4, 5];
        let bridge = Shape::Bridge {
            left: vec![1, 2],
            bridge: 3,
            right: vec![4, 5],
        };
        let b = bridge.blocked(&ids, None);
        assert_eq!(b[0], (1, BTreeSet::from([4, 5])));
        assert_eq!(b[2], (3, BTreeSet::new()));
        let ring = Shape::Ring {
            order: vec![1, 2, 3, 4, 5],
        };
        let r = ring.blocked(&ids, None);
        assert_eq!(r[0], (1, BTreeSet::from([3, 4])));
        let iso = Shape::IsolateLeader.blocked(&ids, Some(4));
        assert_eq!(iso[3], (4, BTreeSet::from([1, 2, 3, 5])));
        assert_eq!(iso[0], (1, BTreeSet::from([4])));
    }
}
