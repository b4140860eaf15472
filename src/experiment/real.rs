//! The experiment on real processes: one fresh cluster per size on free
//! loopback ports, a probe stream, the crash model, then the partition model.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::plan::{has_majority_side, majority_up, node_downs, split_sides};
use super::{quantile, split_available, Options, SizeResult, SplitResult, Timing};
use crate::client::{self, Client};
use crate::cluster::rundir::RunDir;
use crate::cluster::{Cluster, NodeSpec};
use crate::kv::Op;
use crate::launcher::{self, LaunchError, UpOptions};
use crate::net::{NetFaults, Request, Response};
use crate::paxos::quorum::majority;
use crate::paxos::NodeId;

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
    stop: Arc<AtomicBool>,
    results: Arc<Mutex<Vec<Probe>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Prober {
    /// Issue a probe write every `every_ms` from `t0` on.
    fn start(cluster: &Cluster, t: &Timing, t0: Instant) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let results = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = crossbeam_channel::unbounded::<(u64, f64)>();
        let mut threads = Vec::new();
        {
            let (stop, every) = (stop.clone(), t.probe_every_ms);
            threads.push(std::thread::spawn(move || {
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
            }));
        }
        for w in 0..PROBE_WORKERS {
            let (rx, results, cluster) = (rx.clone(), results.clone(), cluster.clone());
            let timeout = Duration::from_millis(t.probe_timeout_ms);
            threads.push(std::thread::spawn(move || {
                let mut c = Client::new(cluster);
                c.timeout = timeout;
                c.attempt_timeout = timeout / 3;
                while let Ok((i, at)) = rx.recv() {
                    let op = Op::Put {
                        key: format!("probe{w}"),
                        value: i.to_string(),
                    };
                    let ok = c.execute(op).is_ok();
                    let done = t0.elapsed().as_secs_f64();
                    results
                        .lock()
                        .expect("not poisoned")
                        .push(Probe { at, ok, done });
                }
            }));
        }
        Prober {
            stop,
            results,
            threads,
        }
    }

    fn finish(self) -> Vec<Probe> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            let _ = t.join();
        }
        let mut probes = self.results.lock().expect("not poisoned").clone();
        probes.sort_by(|a, b| a.at.total_cmp(&b.at));
        probes
    }
}

/// `n` free loopback ports.
fn free_ports(n: usize) -> Vec<u16> {
    let ls: Vec<TcpListener> = (0..n)
        .filter_map(|_| TcpListener::bind("127.0.0.1:0").ok())
        .collect();
    ls.iter()
        .filter_map(|l| l.local_addr().ok())
        .map(|a| a.port())
        .collect()
}

/// Run one size on real processes under `base`.
pub fn run_size(
    n: usize,
    o: &Options,
    t: &Timing,
    base: &Path,
    bar: &indicatif::ProgressBar,
) -> Result<(SizeResult, SplitResult), LaunchError> {
    let ports = free_ports(n);
    let cluster = Cluster {
        name: format!("quorum{n}"),
        nodes: ports
            .iter()
            .enumerate()
            .map(|(i, &p)| NodeSpec {
                id: i as NodeId + 1,
                addr: ([127, 0, 0, 1], p).into(),
            })
            .collect(),
        // Fast failure detection, so failover is short next to the holding times.
        heartbeat_ms: 10,
        election_timeout_ms: (40, 80),
        fsync: true,
        secret: None,
    };
    let up = launcher::up(
        base,
        cluster,
        &UpOptions {
            broken: None,
            wait: Duration::from_secs(10),
        },
    )?;
    launcher::reap(up.children);
    let (dir, cluster) = (up.dir, up.cluster);
    let result = measure(n, o, t, &dir, &cluster, bar);
    let _ = launcher::down(&dir, true, Duration::from_secs(5));
    if crate::signals::stopped() {
        return Err(LaunchError {
            code: 1,
            message: "interrupted: every node this experiment started is stopped".into(),
        });
    }
    result
}

fn measure(
    n: usize,
    o: &Options,
    t: &Timing,
    dir: &RunDir,
    cluster: &Cluster,
    bar: &indicatif::ProgressBar,
) -> Result<(SizeResult, SplitResult), LaunchError> {
    let ids = cluster.ids();
    bar.set_message(format!("N={n}: all up, measuring messages and latency"));
    let (msgs_per_commit, p50_ms, p99_ms) = steady(cluster, t.steady_s);

    // Crash model.
    bar.set_message(format!("N={n}: crash model, p = {}", o.p));
    let downs: Vec<Vec<(f64, f64)>> = ids
        .iter()
        .map(|&k| node_downs(o.seed, k, o.p, t.cycle_s, t.crash_s))
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
        sleep_until(t0, at, bar, t.crash_s);
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
                if was_leader && up >= majority(n) {
                    leader_kills.push(now);
                }
            }
        } else if let Some(since) = down_since[i].take() {
            launcher::restart(dir, k, Duration::from_secs(10))?;
            applied[i].push((since, t0.elapsed().as_secs_f64()));
        }
    }
    sleep_until(t0, t.crash_s, bar, t.crash_s);
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
    launcher::wait_for_leader(cluster, Duration::from_secs(10)).map_err(|e| LaunchError {
        code: 1,
        message: e,
    })?;

    // Partition model.
    bar.set_message(format!("N={n}: partition model"));
    let t0 = Instant::now();
    let prober = Prober::start(cluster, t, t0);
    let mut splits: Vec<(f64, bool)> = Vec::new();
    let mut at = 0.0;
    let total = t.splits as f64 * (t.split_hold_s + t.split_gap_s);
    for i in 0..t.splits {
        let sides = split_sides(o.seed, i, n);
        let blocked: Vec<BTreeSet<NodeId>> = (0..n)
            .map(|a| {
                (0..n)
                    .filter(|&b| sides[b] != sides[a])
                    .map(|b| ids[b])
                    .collect()
            })
            .collect();
        sleep_until(t0, at, bar, total);
        launcher::change_faults(dir, &ids, |id, f| {
            f.blocked = blocked[id as usize - 1].clone()
        })?;
        splits.push((t0.elapsed().as_secs_f64(), has_majority_side(&sides)));
        at += t.split_hold_s;
        sleep_until(t0, at, bar, total);
        launcher::change_faults(dir, &ids, |_, f| *f = NetFaults::none())?;
        at += t.split_gap_s;
    }
    sleep_until(t0, at, bar, total);
    let probes = prober.finish();
    let available = splits
        .iter()
        .filter(|(start, _)| {
            split_available(probes.iter().map(|p| (p.at, p.ok)), *start, t.split_hold_s)
        })
        .count();
    let split = SplitResult::new(
        n,
        available,
        t.splits,
        splits.iter().filter(|s| s.1).count() as u64,
    );
    Ok((size, split))
}

fn sleep_until(t0: Instant, at: f64, bar: &indicatif::ProgressBar, _total: f64) {
    loop {
        let now = t0.elapsed().as_secs_f64();
        if now >= at || crate::signals::stopped() {
            return;
        }
        bar.tick();
        std::thread::sleep(Duration::from_secs_f64((at - now).min(0.05)));
    }
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
    std::thread::sleep(Duration::from_millis(250));
    let before = sent(cluster);
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (cluster, stop) = (cluster.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut c = Client::new(cluster);
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
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::SeqCst);
    let mut lat: Vec<f64> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap_or_default())
        .collect();
    std::thread::sleep(Duration::from_millis(250));
    let after = sent(cluster);
    let commits = lat.len().max(1) as f64;
    let msgs = after.saturating_sub(before) as f64 / commits;
    (msgs, quantile(&mut lat, 0.5), quantile(&mut lat, 0.99))
}
