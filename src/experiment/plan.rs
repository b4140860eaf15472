//! The experiment's fault plans, from the seed alone.
//!
//! Node k's up/down timeline depends only on (seed, k, p, cycle): every cluster
//! size replays the same timelines for the nodes it shares with the others
//! (common random numbers), so two sizes differ only by the nodes added and the
//! comparison between them is paired rather than left to noise. The partition
//! model's splits are stratified by the size of the smaller side (see
//! [`split_strata`]), so every size meets each kind of split in proportion.

use crate::paxos::quorum::majority;
use crate::rng::Rng;

/// Node `k`'s down intervals `(start, end)` in seconds within `[0, horizon)`:
/// alternating exponential up and down times with means `(1−p)·cycle` and
/// `p·cycle`, starting in the stationary distribution (down with probability p).
pub fn node_downs(seed: u64, k: u64, p: f64, cycle: f64, horizon: f64) -> Vec<(f64, f64)> {
    let mut rng = Rng::derive(seed ^ 0x5155_4F52_554D, k);
    let (mean_down, mean_up) = (p * cycle, (1.0 - p) * cycle);
    let mut downs = Vec::new();
    if p <= 0.0 {
        return downs;
    }
    let mut t = 0.0;
    let mut down = rng.chance(p);
    while t < horizon {
        let hold = rng.exp(if down { mean_down } else { mean_up });
        if down {
            downs.push((t, (t + hold).min(horizon)));
        }
        t += hold;
        down = !down;
    }
    downs
}

/// The fraction of `[0, horizon)` during which at least a majority of the nodes
/// (`downs[k]` for each) was up.
pub fn majority_up(downs: &[Vec<(f64, f64)>], horizon: f64) -> f64 {
    up_at_least(downs, horizon, majority(downs.len()))
}

/// The fraction of `[0, horizon)` during which at least `need` of the nodes
/// (`downs[k]` for each) were up.
pub fn up_at_least(downs: &[Vec<(f64, f64)>], horizon: f64, need: usize) -> f64 {
    let n = downs.len();
    if n == 0 || horizon <= 0.0 {
        return 0.0;
    }
    let mut edges: Vec<(f64, i32)> = downs
        .iter()
        .flatten()
        .flat_map(|&(a, b)| [(a, 1), (b, -1)])
        .collect();
    edges.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
    let (mut down, mut last, mut good) = (0i32, 0.0, 0.0);
    for (t, d) in edges {
        let t = t.clamp(0.0, horizon);
        if n as i32 - down >= need as i32 {
            good += t - last;
        }
        last = t;
        down += d;
    }
    if n as i32 - down >= need as i32 {
        good += horizon - last;
    }
    good / horizon
}

/// Candidate timeline seeds [`timeline_seed`] tries.
pub const CANDIDATES: u64 = 256;

/// The seed of the crash-model timelines: among [`CANDIDATES`] seeds derived
/// from `seed`, the one whose planned timelines come closest to the model for
/// every size at once (the smallest largest gap between the planned fraction
/// of time a majority is up and A(N, p)). A short run holds only a few up/down
/// cycles per node, so one seed alone can stray far from the model; choosing
/// among seeded candidates keeps common random numbers across sizes (all
/// sizes share the chosen timelines) and still follows the model's law for
/// each node. Returns the seed and the planned fraction per size.
pub fn timeline_seed(
    seed: u64,
    sizes: &[usize],
    p: f64,
    cycle: f64,
    horizon: f64,
) -> (u64, Vec<f64>) {
    let planned = |cand: u64| -> Vec<f64> {
        sizes
            .iter()
            .map(|&n| {
                let downs: Vec<_> = (1..=n as u64)
                    .map(|k| node_downs(cand, k, p, cycle, horizon))
                    .collect();
                majority_up(&downs, horizon)
            })
            .collect()
    };
    let gap = |fr: &[f64]| {
        sizes
            .iter()
            .zip(fr)
            .map(|(&n, f)| (f - crate::paxos::quorum::availability(n, p)).abs())
            .fold(0.0, f64::max)
    };
    (0..CANDIDATES)
        .map(|i| Rng::derive(seed ^ 0x5354_5241_5441, i).next_u64())
        .map(|cand| {
            let fr = planned(cand);
            (gap(&fr), cand, fr)
        })
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, cand, fr)| (cand, fr))
        .expect("at least one candidate")
}

/// One split of the partition model: each node's side (0 or 1), and the
/// weight of its class.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    /// Side of node k+1.
    pub sides: Vec<u8>,
    /// The probability of its class under random sides, shared by the
    /// class's `reps` splits.
    pub weight: f64,
}

/// The partition model's splits of `n` nodes, stratified. Random sides (each
/// node on either side with chance 1/2) make the smaller side hold k nodes,
/// for k = 0..=n/2, with probability 2·C(n,k)/2^n (C(n,n/2)/2^n for the even
/// half): each class is held `reps` times, the k nodes on the smaller side a
/// seeded choice, and each split weighs its class's probability over `reps`.
/// The weighted fraction of available splits then estimates the same
/// quantity as random splits do, without the noise of drawing the classes
/// (ten random splits of 6 nodes met the no-majority class 1 time in 10
/// where theory says 3.1).
pub fn split_strata(seed: u64, n: usize, reps: u64) -> Vec<Split> {
    let reps = reps.max(1);
    let total = 2f64.powi(n as i32);
    let mut out = Vec::new();
    for k in 0..=n / 2 {
        let ways = crate::paxos::quorum::binomial(n, k);
        let class = if 2 * k == n { ways } else { 2.0 * ways } / total;
        for r in 0..reps {
            // A seeded shuffle of the nodes; the first k form the smaller side.
            let mut rng = Rng::derive(seed ^ 0x0053_504C_4954, ((k as u64) << 32) | r);
            let mut order: Vec<usize> = (0..n).collect();
            for i in (1..n).rev() {
                order.swap(i, rng.below(i + 1));
            }
            let mut sides = vec![0u8; n];
            for &i in &order[..k] {
                sides[i] = 1;
            }
            out.push(Split {
                sides,
                weight: class / reps as f64,
            });
        }
    }
    out
}

/// True if one side of `sides` holds a majority.
pub fn has_majority_side(sides: &[u8]) -> bool {
    let ones = sides.iter().filter(|&&s| s == 1).count();
    let need = majority(sides.len());
    ones >= need || sides.len() - ones >= need
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timelines_are_shared_across_sizes_and_down_a_fraction_p() {
        let a = node_downs(7, 2, 0.2, 6.0, 10_000.0);
        assert_eq!(a, node_downs(7, 2, 0.2, 6.0, 10_000.0));
        assert_ne!(a, node_downs(7, 3, 0.2, 6.0, 10_000.0));
        let down: f64 = a.iter().map(|(s, e)| e - s).sum();
        assert!(
            (down / 10_000.0 - 0.2).abs() < 0.02,
            "down {:.3}",
            down / 10_000.0
        );
    }

    #[test]
    fn the_chosen_timelines_match_the_model_for_every_size_at_once() {
        // The real run's default timing: six up/down cycles per node. One seed
        // alone can stray by tens of points; the chosen candidate lies within
        // 0.03 of A(N, p) (computed independently, by the binomial sum) for
        // every size, and every size shares its timelines.
        let sizes = [3, 4, 5, 6, 7];
        for seed in [1, 2, 3] {
            let (chosen, planned) = timeline_seed(seed, &sizes, 0.2, 6.0, 36.0);
            for (&n, &f) in sizes.iter().zip(&planned) {
                let theory = crate::paxos::quorum::availability(n, 0.2);
                assert!(
                    (f - theory).abs() <= 0.03,
                    "seed {seed}, N={n}: planned {f:.3} against {theory:.3}"
                );
                let downs: Vec<_> = (1..=n as u64)
                    .map(|k| node_downs(chosen, k, 0.2, 6.0, 36.0))
                    .collect();
                assert_eq!(majority_up(&downs, 36.0), f);
            }
        }
    }

    #[test]
    fn majority_up_by_hand() {
        // Three nodes over 10 s: node 1 down 0..4, node 2 down 2..6: two down
        // during 2..4, so a majority is up 8 of 10 s.
        let downs = vec![vec![(0.0, 4.0)], vec![(2.0, 6.0)], vec![]];
        assert!((majority_up(&downs, 10.0) - 0.8).abs() < 1e-12);
        // All three up only during 6..10; at least one always.
        assert!((up_at_least(&downs, 10.0, 3) - 0.4).abs() < 1e-12);
        assert!((up_at_least(&downs, 10.0, 1) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn the_long_run_fraction_matches_the_theory() {
        for n in [3, 4, 5] {
            let downs: Vec<_> = (1..=n as u64)
                .map(|k| node_downs(1, k, 0.2, 5.0, 200_000.0))
                .collect();
            let got = majority_up(&downs, 200_000.0);
            let want = crate::paxos::quorum::availability(n, 0.2);
            assert!((got - want).abs() < 0.01, "n={n}: {got:.4} vs {want:.4}");
        }
    }

    #[test]
    fn the_strata_weigh_what_random_sides_give_counted_one_by_one() {
        for n in 1..=7usize {
            let strata = split_strata(9, n, 3);
            assert_eq!(strata.len(), (n / 2 + 1) * 3);
            let total: f64 = strata.iter().map(|s| s.weight).sum();
            assert!((total - 1.0).abs() < 1e-12, "n={n}: {total}");
            // Independently: every one of the 2^n side assignments, counted.
            let with_majority = (0..1u32 << n)
                .filter(|bits| {
                    let sides: Vec<u8> = (0..n).map(|i| (bits >> i & 1) as u8).collect();
                    has_majority_side(&sides)
                })
                .count() as f64
                / f64::from(1u32 << n);
            let weighted: f64 = strata
                .iter()
                .filter(|s| has_majority_side(&s.sides))
                .map(|s| s.weight)
                .sum();
            assert!((weighted - with_majority).abs() < 1e-12, "n={n}");
            // The smaller side holds k nodes as its class says.
            for (i, s) in strata.iter().enumerate() {
                let ones = s.sides.iter().filter(|&&x| x == 1).count();
                assert_eq!(ones, i / 3, "n={n}");
            }
        }
        // Shared across sizes only through the seed: the same seed, the same splits.
        assert_eq!(split_strata(9, 5, 2), split_strata(9, 5, 2));
        assert_ne!(split_strata(9, 5, 2), split_strata(10, 5, 2));
    }

    #[test]
    fn splits_without_a_majority_side_only_for_even_sizes() {
        for n in [3, 5, 7] {
            assert!(split_strata(3, n, 4)
                .iter()
                .all(|s| has_majority_side(&s.sides)));
        }
        // Only the even half lacks one: C(4,2)/16 of the weight.
        let halves: f64 = split_strata(3, 4, 4)
            .iter()
            .filter(|s| !has_majority_side(&s.sides))
            .map(|s| s.weight)
            .sum();
        assert!((halves - 6.0 / 16.0).abs() < 1e-12, "{halves}");
    }
}
