//! Quorum arithmetic, shared by the protocol and by the quorum experiment:
//! majorities, and the flexible quorums of Flexible Paxos (Howard, Malkhi and
//! Spiegelman, 2016), where only a phase-1 and a phase-2 quorum must intersect.

use serde::{Deserialize, Serialize};

use super::rules::{Rule, Rules};

/// How many acceptors each phase needs. Phase 1 (prepare/promise, to lead) and
/// phase 2 (accept/accepted, to choose) need only intersect each other:
/// `phase1 + phase2 > n`. Majorities for both are the classic case.
///
/// A leader confirms a read (read-index) and that it still leads
/// (check-quorum) with `phase2` acknowledgements: any set of `phase2` nodes
/// meets every phase-1 quorum by the very rule above, so no newer leader can
/// have finished phase 1 unseen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Quorums {
    /// Promises a candidate needs to lead.
    pub phase1: usize,
    /// Accepts that choose a value.
    pub phase2: usize,
}

impl Quorums {
    /// Majorities for both phases.
    pub fn majority(n: usize) -> Quorums {
        Quorums {
            phase1: majority(n),
            phase2: majority(n),
        }
    }

    /// Phase-2 quorums of `phase2` among `n` nodes, with the smallest phase-1
    /// quorum that meets every one of them (at least 1).
    pub fn from_phase2(n: usize, phase2: usize) -> Quorums {
        Quorums {
            phase1: (n + 1).saturating_sub(phase2).max(1),
            phase2,
        }
    }

    /// The quorums a node of an `n`-node cluster uses: `chosen` if given,
    /// else majorities; with the `intersection` rule broken and nothing
    /// chosen, the largest pair that does not intersect (`n/2` and the rest,
    /// so two leaders can each choose a value).
    pub fn resolve(n: usize, chosen: Option<Quorums>, rules: Rules) -> Quorums {
        match chosen {
            Some(q) => q,
            None if !rules.holds(Rule::Intersection) => Quorums {
                phase1: (n / 2).max(1),
                phase2: (n - (n / 2).max(1)).max(1),
            },
            None => Quorums::majority(n),
        }
    }

    /// True if every phase-1 quorum meets every phase-2 quorum of `n` nodes.
    pub fn intersect(&self, n: usize) -> bool {
        self.phase1 + self.phase2 > n
    }

    /// Why these quorums cannot serve `n` nodes (`None`: they can). With the
    /// `intersection` rule broken, only the ranges are checked.
    pub fn problem(&self, n: usize, rules: Rules) -> Option<String> {
        for (name, q) in [("phase1", self.phase1), ("phase2", self.phase2)] {
            if q == 0 || q > n {
                return Some(format!(
                    "quorums: {name} is {q}; it must be between 1 and the {n} nodes"
                ));
            }
        }
        if rules.holds(Rule::Intersection) && !self.intersect(n) {
            return Some(format!(
                "quorums: phase1 + phase2 = {} must exceed the {n} nodes, so that every phase-1 quorum meets every phase-2 quorum (Flexible Paxos); `synod sim --break intersection` shows what goes wrong",
                self.phase1 + self.phase2
            ));
        }
        None
    }
}

/// The smallest number of acceptors that is a majority of `n`.
///
/// Any two majorities of the same `n` intersect, which is what makes a value chosen
/// by one of them visible to every later proposer (Paxos Made Simple §2.2).
pub fn majority(n: usize) -> usize {
    n / 2 + 1
}

/// How many of `n` nodes may fail while a majority is still up.
pub fn tolerates(n: usize) -> usize {
    n.saturating_sub(1) / 2
}

/// The binomial coefficient C(n, k) as a float (exact for the sizes used here).
pub fn binomial(n: usize, k: usize) -> f64 {
    if k > n {
        return 0.0;
    }
    let k = k.min(n - k);
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

/// A(N, p): the probability that a majority of `n` nodes is up when each node is
/// down independently with probability `p` (DESIGN.md §5):
/// Σ_{k=0}^{⌊(N−1)/2⌋} C(N, k) p^k (1−p)^(N−k).
pub fn availability(n: usize, p: f64) -> f64 {
    (0..=tolerates(n))
        .map(|k| binomial(n, k) * p.powi(k as i32) * (1.0 - p).powi((n - k) as i32))
        .sum()
}

/// The probability that at least `q` of `n` nodes are up when each is down
/// independently with probability `p`. With flexible quorums `(Q1, Q2)`, writes
/// go on whenever Q1 nodes are up (a leader can always be elected) and never
/// with fewer than Q2, so `at_least_up(n, Q1, p)` ≤ availability ≤
/// `at_least_up(n, Q2, p)`; between the two it depends on whether the leader
/// is among the nodes up.
pub fn at_least_up(n: usize, q: usize, p: f64) -> f64 {
    (q..=n)
        .map(|k| binomial(n, k) * (1.0 - p).powi(k as i32) * p.powi((n - k) as i32))
        .sum()
}

/// The probability that writes go on after a random split of `n` nodes (each
/// on either side with equal chance; the leader any node with equal chance)
/// under quorums `q`: the leader's side holds a phase-2 quorum, or either side
/// a phase-1 quorum (it elects a leader of its own). With majorities this is
/// [`split_availability`]; when Q1 + Q2 = N + 1 it is 1, as one side always
/// holds N − L ≥ Q1 or L ≥ Q2.
pub fn split_availability_with(n: usize, q: Quorums) -> f64 {
    if n == 0 || n > 20 {
        return 0.0;
    }
    let mut good = 0u64;
    for bits in 0u32..1 << n {
        let ones = bits.count_ones() as usize;
        for leader in 0..n {
            let mine = if bits >> leader & 1 == 1 {
                ones
            } else {
                n - ones
            };
            let other = n - mine;
            if mine >= q.phase2 || mine >= q.phase1 || other >= q.phase1 {
                good += 1;
            }
        }
    }
    good as f64 / (n as f64 * f64::from(1u32 << n))
}

/// The probability that a random split of `n` nodes into two sides (each node on
/// either side with equal chance) leaves one side with a majority: 1 for odd `n`,
/// 1 − C(N, N/2)/2^N for even `n`.
pub fn split_availability(n: usize) -> f64 {
    if n % 2 == 1 {
        1.0
    } else {
        1.0 - binomial(n, n / 2) / 2f64.powi(n as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flexible_quorums_resolve_and_are_checked() {
        let q = |phase1, phase2| Quorums { phase1, phase2 };
        assert_eq!(Quorums::resolve(4, None, Rules::ALL), q(3, 3));
        assert_eq!(Quorums::resolve(4, Some(q(3, 2)), Rules::ALL), q(3, 2));
        let broken = Rules::breaking(Some(Rule::Intersection));
        assert_eq!(Quorums::resolve(5, None, broken), q(2, 3));
        assert_eq!(Quorums::resolve(1, None, broken), q(1, 1));
        assert!(q(3, 2).intersect(4) && !q(2, 2).intersect(4));
        assert_eq!(q(3, 2).problem(4, Rules::ALL), None);
        assert!(q(2, 2)
            .problem(4, Rules::ALL)
            .unwrap()
            .contains("must exceed"));
        assert_eq!(q(2, 2).problem(4, broken), None);
        assert!(q(0, 4).problem(4, broken).unwrap().contains("phase1 is 0"));
        assert!(q(3, 5)
            .problem(4, Rules::ALL)
            .unwrap()
            .contains("phase2 is 5"));
    }

    #[test]
    fn majorities() {
        assert_eq!(
            (1..=7).map(majority).collect::<Vec<_>>(),
            [1, 2, 2, 3, 3, 4, 4]
        );
        assert_eq!(
            (1..=7).map(tolerates).collect::<Vec<_>>(),
            [0, 0, 1, 1, 2, 2, 3]
        );
    }

    #[test]
    fn theory_matches_hand_computed_values() {
        // p = 0.2, computed by hand:
        // N=3: 0.8^3 + 3·0.2·0.8^2 = 0.512 + 0.384 = 0.896
        // N=4: 0.8^4 + 4·0.2·0.8^3 = 0.4096 + 0.4096 = 0.8192
        // N=5: 0.8^5 + 5·0.2·0.8^4 + 10·0.04·0.8^3 = 0.32768 + 0.4096 + 0.2048 = 0.94208
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(availability(3, 0.2), 0.896));
        assert!(close(availability(4, 0.2), 0.8192));
        assert!(close(availability(5, 0.2), 0.94208));
        // An even size is never better than the odd size below it.
        for n in [4, 6] {
            assert!(availability(n, 0.2) < availability(n - 1, 0.2));
        }
    }

    #[test]
    fn splits() {
        assert_eq!(split_availability(3), 1.0);
        for n in 1..=7 {
            let maj = Quorums::majority(n);
            let with = split_availability_with(n, maj);
            assert!((with - split_availability(n)).abs() < 1e-12, "n={n}");
            assert!((at_least_up(n, maj.phase1, 0.2) - availability(n, 0.2)).abs() < 1e-12);
        }
        let flex = |p1, p2| Quorums {
            phase1: p1,
            phase2: p2,
        };
        assert_eq!(split_availability_with(4, flex(3, 2)), 1.0);
        assert_eq!(split_availability_with(6, flex(4, 3)), 1.0);
        // By hand, N=4 with (4, 2): a 2–2 split works with the leader's side
        // (Q2), a 3–1 split only when the leader is among the 3, and no side
        // of any split ever holds 4 nodes to elect; so 1 − P(3–1 with the
        // leader alone) = 1 − (8/16)·(1/4).
        assert!((split_availability_with(4, flex(4, 2)) - (1.0 - 0.5 * 0.25)).abs() < 1e-12);
        // P(at least 2 of 4 up), p = 0.2, by hand: 1 − 0.2^4 − 4·0.8·0.2^3.
        let by_hand = 1.0 - 0.2f64.powi(4) - 4.0 * 0.8 * 0.2f64.powi(3);
        assert!((at_least_up(4, 2, 0.2) - by_hand).abs() < 1e-12);
        assert!((split_availability(4) - (1.0 - 6.0 / 16.0)).abs() < 1e-12);
        assert!((split_availability(6) - (1.0 - 20.0 / 64.0)).abs() < 1e-12);
    }
}
