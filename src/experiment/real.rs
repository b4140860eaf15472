//! The experiment on real processes: one fresh cluster per size on free
//! loopback ports, a probe stream, the crash model, then the partition model.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::plan::{has_majority_side, majority_up, node_downs, split_strata};
use super::{latency, split_available, ExperimentError, Options, SizeResult, SplitResult, Timing};
use crate::client::{self, Client};
use crate::cluster::rundir::RunDir;
use crate::cluster::Cluster;
use crate::harness::{self, Running, Workers};
use crate::kv::Op;
use crate::launcher::{self, LaunchError};
use crate::net::{NetFaults, Request, Response};
use crate::paxos::quorum::majority;
use crate::paxos::{NodeId, Quorums};

/// Probe workers: enough that probes keep their schedule through an outage.
const PROBE_WORKERS: usize = 8;

/// One probe: issued `at` seconds into its phase, committed or not, done `done`.
#[derive(Clone, Copy, Debug)]
struct Probe {
    at: f64,
    ok: bool,
    done: f64,
}

struct Prober {
    /// The clock: one probe due every `probe_every_ms`.
    clock: Workers<()>,
    /// The workers that carry the probes out.
    workers: Workers<Vec<Probe>>,
}

impl Prober {
    /// Issue a probe write every `every_ms` from `t0` on.
    fn start(cluster: &Cluster, t: &Timing, t0: Instant) -> Prober {
        let (tx, rx) = crossbeam_channel::unbounded::<(u64, f64)>();
        let every = t.probe_every_ms;
        let clock = Workers::spawn(1, move |_, stop| {
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let due = t0 + Duration::from_millis(i * every);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                if tx.send((i, due.duration_since(t0).as_secs_f64())).is_err() {
                    break;
                }
                i += 1;
            }
        });
        let timeout = Duration::from_millis(t.probe_timeout_ms);
        let cluster = cluster.clone();
        let workers = Workers::spawn(PROBE_WORKERS, move |w, _| {
            let mut c = Client::new(cluster.clone());
            c.timeout = timeout;
            c.attempt_timeout = timeout / 3;
            let mut done = Vec::new();
            // Until the clock stops and its queue is drained.
            while let Ok((i, at)) = rx.recv() {
                let op = Op::Put {
                    key: format!("probe{w}"),
                    value: i.to_string(),
                };
                let ok = c.execute(op).is_ok();
                let finished = t0.elapsed().as_secs_f64();
                done.push(Probe {
                    at,
                    ok,
                    done: finished,
                });
            }
            done
        });
        Prober { clock, workers }
    }

    fn finish(self) -> Vec<Probe> {
        self.clock.finish();
        let mut probes: Vec<Probe> = self.workers.finish().into_iter().flatten().collect();
        probes.sort_by(|a, b| a.at.total_cmp(&b.at));
        probes
    }
}

/// What one row measured: the crash model, the partition model, and each
/// node's down intervals as applied.
pub type Row = (SizeResult, SplitResult, Vec<Vec<(f64, f64)>>);

/// Run one size on real processes under `base`, with majorities or `quorums`.
pub fn run_size(
    n: usize,
    o: &Options,
    t: &Timing,
    base: &Path,
    bar: &indicatif::ProgressBar,
    quorums: Option<Quorums>,
) -> Result<Row, ExperimentError> {
    // Fast failure detection, so failover is short next to the holding times.
    let mut cluster = harness::loopback_cluster(&format!("quorum{n}"), n, 10, (40, 80));
    cluster.quorums = quorums;
    let running = Running::up_with(base, cluster, &harness::up_options(o.netns))?.wiped();
    let result = measure(n, o, t, &running.dir, &running.cluster, bar);
    drop(running);
    if crate::signals::stopped() {
        return Err(ExperimentError::Interrupted);
    }
    Ok(result?)
}

fn measure(
    n: usize,
    o: &Options,
    t: &Timing,
    dir: &RunDir,
    cluster: &Cluster,
    bar: &indicatif::ProgressBar,
) -> Result<Row, LaunchError> {
    let ids = cluster.ids();
    // A leader can be elected while this many nodes are up.
    let electable = cluster.quorums.map_or(majority(n), |q| q.phase1);
    bar.set_message(format!("N={n}: all up, measuring messages and latency"));
    let (msgs_per_commit, p50_ms, p99_ms) = steady(cluster, t.steady_s);

    // Crash model, on the timelines every size shares.
    bar.set_message(format!("N={n}: crash model, p = {}", o.p));
    let timelines = super::Timelines::of(o, t).seed;
    let downs: Vec<Vec<(f64, f64)>> = ids
        .iter()
        .map(|&k| node_downs(timelines, k, o.p, t.cycle_s, t.crash_s))
        .collect();
    let mut events: Vec<(f64, bool, NodeId)> = Vec::new();
    for (k, ds) in ids.iter().zip(&downs) {
        for &(a, b) in ds {
            events.push((a, true, *k));
            if b < t.crash_s {
                events.push((b, false, *k));
            }
        }
    }
    events.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
    let t0 = Instant::now();
    let prober = Prober::start(cluster, t, t0);
    let mut applied: Vec<Vec<(f64, f64)>> = vec![Vec::new(); n];
    let mut down_since: Vec<Option<f64>> = vec![None; n];
    let mut leader_kills: Vec<f64> = Vec::new();
    for (at, kill, k) in events {
        sleep_until(t0, at, bar);
        let i = k as usize - 1;
        if kill {
            let was_leader = matches!(
                client::query(cluster.node(k).expect("known").addr, cluster, &Request::Status, Duration::from_millis(30)),
                Ok(Response::Status(s)) if s.role == "leader"
            );
            let now = t0.elapsed().as_secs_f64();
            if launcher::kill(dir, k).is_ok() {
                down_since[i] = Some(now);
                // Failover is timed only when a majority is still up to elect.
                let up = down_since.iter().filter(|d| d.is_none()).count();
                if was_leader && up >= electable {
                    leader_kills.push(now);
                }
            }
        } else if let Some(since) = down_since[i].take() {
            launcher::restart(dir, k, Duration::from_secs(10))?;
            applied[i].push((since, t0.elapsed().as_secs_f64()));
        }
    }
    sleep_until(t0, t.crash_s, bar);
    let probes = prober.finish();
    for (i, since) in down_since.iter_mut().enumerate() {
        if let Some(s) = since.take() {
            applied[i].push((s, t.crash_s));
            launcher::restart(dir, ids[i], Duration::from_secs(10))?;
        }
    }
    let in_phase: Vec<&Probe> = probes.iter().filter(|p| p.at < t.crash_s).collect();
    let oks: Vec<bool> = in_phase.iter().map(|p| p.ok).collect();
    let failover_ms = leader_kills
        .iter()
        .filter_map(|&k| {
            probes
                .iter()
                .filter(|p| p.ok && p.done > k)
                .map(|p| p.done)
                .min_by(f64::total_cmp)
                .map(|d| (d - k) * 1e3)
        })
        .collect();
    let size = SizeResult::new(
        n,
        o.p,
        &oks,
        majority_up(&applied, t.crash_s),
        msgs_per_commit,
        p50_ms,
        p99_ms,
        failover_ms,
    );
    launcher::wait_for_leader(cluster, Duration::from_secs(10))?;

    // Partition model.
    bar.set_message(format!("N={n}: partition model"));
    let t0 = Instant::now();
    let prober = Prober::start(cluster, t, t0);
    let strata = split_strata(o.seed, n, t.split_reps);
    let mut starts: Vec<f64> = Vec::new();
    let mut at = 0.0;
    for split in &strata {
        let sides = &split.sides;
        let blocked: Vec<BTreeSet<NodeId>> = (0..n)
            .map(|a| {
                (0..n)
                    .filter(|&b| sides[b] != sides[a])
                    .map(|b| ids[b])
                    .collect()
            })
            .collect();
        sleep_until(t0, at, bar);
        launcher::change_faults(dir, &ids, |id, f| {
            f.blocked = blocked[id as usize - 1].clone()
        })?;
        starts.push(t0.elapsed().as_secs_f64());
        at += t.split_hold_s;
        sleep_until(t0, at, bar);
        launcher::change_faults(dir, &ids, |_, f| *f = NetFaults::none())?;
        at += t.split_gap_s;
    }
    sleep_until(t0, at, bar);
    let probes = prober.finish();
    let held: Vec<(f64, bool, bool)> = strata
        .iter()
        .zip(&starts)
        .map(|(split, &start)| {
            let ok = probes.iter().map(|p| (p.at, p.ok));
            (
                split.weight,
                has_majority_side(&split.sides),
                split_available(ok, start, t.split_hold_s),
            )
        })
        .collect();
    let split = SplitResult::new(n, &held);
    Ok((size, split, applied))
}

/// Wait until `at` seconds after `t0`, keeping the bar alive.
fn sleep_until(t0: Instant, at: f64, bar: &indicatif::ProgressBar) {
    harness::sleep_until(t0 + Duration::from_secs_f64(at.max(0.0)), || bar.tick());
}

/// All nodes up: closed-loop writers for `secs`; peer messages per commit and
/// commit latency p50/p99 in ms.
fn steady(cluster: &Cluster, secs: f64) -> (f64, f64, f64) {
    let sent = |c: &Cluster| -> u64 {
        launcher::query_all(c, Duration::from_millis(300))
            .values()
            .map(|s| s.sent)
            .sum()
    };
    // The router publishes its counter every 200 ms: wait for a fresh value.
    let pause = || harness::sleep_until(Instant::now() + Duration::from_millis(250), || {});
    pause();
    let before = sent(cluster);
    let cluster_c = cluster.clone();
    let workers = Workers::spawn(4, move |w, stop| {
        let mut c = Client::new(cluster_c.clone());
        let mut lat = Vec::new();
        let mut i = 0;
        while !stop.load(Ordering::SeqCst) {
            let started = Instant::now();
            let op = Op::Put {
                key: format!("steady{w}"),
                value: i.to_string(),
            };
            if c.execute(op).is_ok() {
                lat.push(started.elapsed().as_secs_f64() * 1e3);
            }
            i += 1;
        }
        lat
    });
    harness::sleep_until(Instant::now() + Duration::from_secs_f64(secs), || {});
    let lat: Vec<f64> = workers.finish().into_iter().flatten().collect();
    pause();
    let after = sent(cluster);
    let commits = lat.len().max(1) as f64;
    let msgs = after.saturating_sub(before) as f64 / commits;
    (msgs, latency(&lat, 0.5), latency(&lat, 0.99))
}
