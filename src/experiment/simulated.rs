//! The experiment on the simulator: the same timelines and splits in virtual
//! time, long enough for tight intervals, in seconds of wall time.

use super::plan::{has_majority_side, majority_up, node_downs, split_strata};
use super::{latency, split_available, Options, SizeResult, SplitResult, Timing};
use crate::check::history::Status;
use crate::paxos::{NodeId, ProposerConfig, Quorums};
use crate::sim::{self, Faults, PlanAction, SimConfig, Workload};

fn config(
    seed: u64,
    n: usize,
    t: &Timing,
    quorums: Option<Quorums>,
    plan: Vec<(u64, PlanAction)>,
    horizon_ms: u64,
) -> SimConfig {
    let mut c = SimConfig::cluster(seed, n, 0, 0);
    c.workload = Workload::Probe {
        every_ms: t.probe_every_ms,
    };
    c.faults = Faults::none();
    c.fault_ms = horizon_ms;
    c.settle_ms = 10_000;
    // Failure detection a few ticks long, so failover is short next to the
    // holding times (as the real run's 10 ms heartbeats do).
    c.proposer = ProposerConfig {
        heartbeat_ticks: 2,
        election_ticks: (5, 10),
        quorums,
        ..ProposerConfig::default()
    };
    c.client_timeout_ms = t.probe_timeout_ms / 3;
    c.client_deadline_ms = t.probe_timeout_ms;
    c.plan = plan;
    c
}

/// Probe outcomes `(issued at ms, committed)` of a simulated run, in order.
fn probes(report: &sim::Report) -> Vec<(u64, bool)> {
    let mut v: Vec<(u64, bool)> = report
        .history
        .as_ref()
        .map(|h| {
            h.ops
                .iter()
                .filter(|o| o.op.key().starts_with('p') && o.op.key() != "probe")
                .map(|o| (o.invoke, matches!(o.status, Status::Ok(_))))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Run one size on the simulator, with majorities or `quorums`; returns the
/// crash model's and the partition model's results and the down intervals.
pub fn run_size(n: usize, o: &Options, t: &Timing, quorums: Option<Quorums>) -> super::real::Row {
    let ids: Vec<NodeId> = (1..=n as NodeId).collect();
    let horizon_ms = (t.crash_s * 1e3) as u64;

    // All up: messages per commit and latency.
    // Probes every 2 ms, so heartbeats weigh little next to commits.
    let steady_ms = (t.steady_s * 1e3) as u64;
    let mut quiet_cfg = config(o.seed, n, t, quorums, Vec::new(), steady_ms);
    quiet_cfg.workload = Workload::Probe { every_ms: 2 };
    let quiet = sim::run(&quiet_cfg);
    let ok_ops: Vec<f64> = quiet
        .history
        .as_ref()
        .map(|h| {
            h.ops
                .iter()
                .filter(|o| matches!(o.status, Status::Ok(_)))
                .filter_map(|o| o.complete.map(|c| (c - o.invoke) as f64))
                .collect()
        })
        .unwrap_or_default();
    let lat = ok_ops.clone();
    let msgs_per_commit = quiet.stats.messages as f64 / ok_ops.len().max(1) as f64;

    // Crash model, on the timelines every size shares.
    let timelines = super::Timelines::of(o, t).seed;
    let downs: Vec<Vec<(f64, f64)>> = ids
        .iter()
        .map(|&k| node_downs(timelines, k, o.p, t.cycle_s, t.crash_s))
        .collect();
    let mut plan = Vec::new();
    for (k, ds) in ids.iter().zip(&downs) {
        for &(a, b) in ds {
            plan.push(((a * 1e3) as u64, PlanAction::Crash(*k)));
            if b < t.crash_s {
                plan.push(((b * 1e3) as u64, PlanAction::Restart(*k)));
            }
        }
    }
    let report = sim::run(&config(o.seed, n, t, quorums, plan, horizon_ms));
    let oks: Vec<bool> = probes(&report)
        .into_iter()
        .filter(|(at, _)| *at < horizon_ms)
        .map(|(_, ok)| ok)
        .collect();
    let size = SizeResult::new(
        n,
        o.p,
        &oks,
        majority_up(&downs, t.crash_s),
        msgs_per_commit,
        latency(&lat, 0.5),
        latency(&lat, 0.99),
        Vec::new(),
    );

    // Partition model.
    let (hold, gap) = ((t.split_hold_s * 1e3) as u64, (t.split_gap_s * 1e3) as u64);
    let strata = split_strata(o.seed, n, t.split_reps);
    let mut plan = Vec::new();
    let mut starts = Vec::new();
    let mut at = 0;
    for split in &strata {
        starts.push(at);
        plan.push((at, PlanAction::Split(split.sides.clone())));
        plan.push((at + hold, PlanAction::Heal));
        at += hold + gap;
    }
    let report = sim::run(&config(o.seed, n, t, quorums, plan, at));
    let ps = probes(&report);
    let ms = |x: u64| x as f64 / 1e3;
    let held: Vec<(f64, bool, bool)> = strata
        .iter()
        .zip(&starts)
        .map(|(split, &s)| {
            let ok = ps.iter().map(|&(at, ok)| (ms(at), ok));
            (
                split.weight,
                has_majority_side(&split.sides),
                split_available(ok, ms(s), ms(hold)),
            )
        })
        .collect();
    let split = SplitResult::new(n, &held);
    (size, split, downs)
}
