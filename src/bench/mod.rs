//! `synod bench`: closed-loop clients over persistent connections, a warm-up,
//! then throughput and latency (p50/p95/p99/p99.9 from an HDR histogram),
//! errors, and the CPU seconds the cluster spent; side by side with etcd when
//! asked (`--against etcd`), and leader failover timing (`--failover`).

pub mod crossings;
pub mod etcd;
pub mod redis;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::client::Client;
use crate::cluster::rundir::RunDirError;
use crate::cluster::Cluster;
use crate::harness::{self, Running, Workers};
use crate::kv::Op;
use crate::launcher::LaunchError;
use crate::rng::Rng;
use crate::stats::Latencies;

/// Why a benchmark did not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A program to race is not installed.
    #[error("{program} is not installed; on Debian or Ubuntu: `apt-get install {package}` (synod installs nothing by itself)")]
    Missing {
        /// The program.
        program: &'static str,
        /// The Debian package that has it.
        package: &'static str,
    },
    /// It cannot be started.
    #[error("cannot start {}: {source}", program.display())]
    Start {
        /// The program.
        program: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It started, but did not serve in time.
    #[error("{program} did not serve within {} s; see {}", waited.as_secs(), see.display())]
    NotServing {
        /// The program.
        program: &'static str,
        /// How long it was given.
        waited: Duration,
        /// Where its output is.
        see: std::path::PathBuf,
    },
    /// The running cluster has no RESP port on some node (`--redis`).
    #[error(
        "cluster {0:?} does not serve RESP on every node; bring it up with `synod up --redis`"
    )]
    NoResp(String),
    /// After the leader's SIGKILL, no write was acknowledged in time.
    #[error("no write was acknowledged within {} s of the leader's death", .0.as_secs())]
    NoFailover(Duration),
    /// The running cluster's run directory cannot be used.
    #[error(transparent)]
    RunDir(#[from] RunDirError),
    /// A cluster could not be brought up, stopped or restarted.
    #[error(transparent)]
    Launch(#[from] LaunchError),
    /// A scratch directory or a log file cannot be made.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// `--crossings`, and perf cannot count here.
    #[error(transparent)]
    Count(#[from] crossings::CountError),
}

/// A key-value client the benchmark can drive.
pub trait KvClient: Send {
    /// Write `value` at `key`; true on success.
    fn put(&mut self, key: &str, value: &str) -> bool;
    /// Read `key` linearizably; true on success.
    fn get(&mut self, key: &str) -> bool;
}

impl KvClient for Client {
    fn put(&mut self, key: &str, value: &str) -> bool {
        self.execute(Op::Put {
            key: key.to_string(),
            value: value.to_string(),
        })
        .is_ok()
    }

    fn get(&mut self, key: &str) -> bool {
        self.execute(Op::Get {
            key: key.to_string(),
        })
        .is_ok()
    }
}

impl KvClient for crate::resp::client::RespKv {
    fn put(&mut self, key: &str, value: &str) -> bool {
        let op = Op::Put {
            key: key.to_string(),
            value: value.to_string(),
        };
        self.execute(&op).is_ok()
    }

    fn get(&mut self, key: &str) -> bool {
        let op = Op::Get {
            key: key.to_string(),
        };
        self.execute(&op).is_ok()
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Load {
    /// Concurrent closed-loop clients.
    pub clients: usize,
    /// Measured time.
    pub duration: Duration,
    /// Warm-up before measuring.
    pub warmup: Duration,
    /// Bytes per value.
    pub value_size: usize,
    /// Keys written and read.
    pub keys: usize,
    /// Fraction of operations that are reads.
    pub reads: f64,
    /// Count each process's crossings per operation with perf
    /// ([`crossings`]).
    pub crossings: bool,
}

/// One measured row.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// "synod" or "etcd".
    pub system: String,
    /// Clients.
    pub clients: usize,
    /// Bytes per value.
    pub value_size: usize,
    /// Operations completed in the measured window.
    pub ops: u64,
    /// Operations per second.
    pub ops_per_s: f64,
    /// Latency percentiles, ms.
    pub p50_ms: f64,
    /// 95th percentile, ms.
    pub p95_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// 99.9th percentile, ms.
    pub p999_ms: f64,
    /// Failed operations.
    pub errors: u64,
    /// CPU seconds the cluster's processes used during the window.
    pub cpu_s: f64,
    /// Those CPU seconds per 1,000 completed operations.
    pub cpu_s_per_kop: f64,
    /// Fraction of operations that were reads.
    pub reads: f64,
    /// Each process's crossings per operation (`--crossings`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub crossings: Vec<crossings::Crossing>,
}

/// CPU seconds (user + system) of `pids` so far.
pub fn cpu_seconds(pids: &[u32]) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .filter_map(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / hz)
        })
        .sum()
}

/// Run `w` with clients made by `make` (one per thread); `pids` are the
/// server processes whose CPU time is counted; `tick` is called about every
/// 100 ms with the fraction done.
pub fn run(
    system: &str,
    w: &Load,
    pids: &[u32],
    make: impl Fn(usize) -> Box<dyn KvClient>,
    tick: impl Fn(f64),
) -> Row {
    let measuring = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let value: String = "v".repeat(w.value_size.max(1));
    let clients: Vec<std::sync::Mutex<Option<Box<dyn KvClient>>>> = (0..w.clients.max(1))
        .map(|i| std::sync::Mutex::new(Some(make(i))))
        .collect();
    let clients = Arc::new(clients);
    let threads = {
        let (measuring, errors, done) = (measuring.clone(), errors.clone(), done.clone());
        let (keys, reads) = (w.keys.max(1), w.reads);
        Workers::spawn(w.clients.max(1), move |i, stop| {
            let mut c = clients[i]
                .lock()
                .expect("not poisoned")
                .take()
                .expect("one client per thread");
            let mut h = Latencies::new();
            let mut rng = Rng::derive(0xBE7C, i as u64);
            while !stop.load(Ordering::Relaxed) {
                let key = format!("bench{}", rng.below(keys));
                let started = Instant::now();
                let ok = if rng.chance(reads) {
                    c.get(&key)
                } else {
                    c.put(&key, &value)
                };
                if ok {
                    done.fetch_add(1, Ordering::Relaxed);
                }
                if measuring.load(Ordering::Relaxed) {
                    if ok {
                        h.record_us(started.elapsed().as_micros() as u64);
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            h
        })
    };
    let total = w.warmup + w.duration;
    let t0 = Instant::now();
    while t0.elapsed() < w.warmup && !crate::signals::stopped() {
        tick(t0.elapsed().as_secs_f64() / total.as_secs_f64());
        std::thread::sleep(Duration::from_millis(100));
    }
    let counting = w.crossings.then(|| {
        let mut procs: Vec<(String, u32)> = pids
            .iter()
            .enumerate()
            .map(|(i, &p)| (format!("{system} {}", i + 1), p))
            .collect();
        procs.push(("clients".to_string(), std::process::id()));
        let c = crossings::Counting::start(&std::env::temp_dir(), &procs);
        (c, done.load(Ordering::SeqCst))
    });
    let cpu0 = cpu_seconds(pids);
    measuring.store(true, Ordering::SeqCst);
    let m0 = Instant::now();
    while m0.elapsed() < w.duration && !crate::signals::stopped() {
        tick(t0.elapsed().as_secs_f64() / total.as_secs_f64());
        std::thread::sleep(Duration::from_millis(100).min(w.duration.saturating_sub(m0.elapsed())));
    }
    measuring.store(false, Ordering::SeqCst);
    let elapsed = m0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pids) - cpu0;
    let crossings = counting
        .map(|(c, from)| c.finish(done.load(Ordering::SeqCst) - from))
        .unwrap_or_default();
    let mut all = Latencies::new();
    for h in threads.finish() {
        all.add(&h);
    }
    let ms = |q: f64| all.ms(q);
    Row {
        system: system.to_string(),
        clients: w.clients,
        value_size: w.value_size,
        ops: all.len(),
        ops_per_s: all.len() as f64 / elapsed,
        p50_ms: ms(0.5),
        p95_ms: ms(0.95),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        errors: errors.load(Ordering::Relaxed),
        cpu_s: cpu,
        cpu_s_per_kop: cpu * 1000.0 / all.len().max(1) as f64,
        reads: w.reads,
        crossings,
    }
}

/// Clients of a synod cluster (ids unique per thread).
pub fn synod_clients(cluster: &Cluster) -> impl Fn(usize) -> Box<dyn KvClient> + '_ {
    move |_| {
        let mut c = Client::new(cluster.clone());
        c.timeout = Duration::from_secs(5);
        Box::new(c)
    }
}

/// Rows as a table, with ratios against the first system when there are two.
pub fn table(rows: &[Row]) -> String {
    let mut s = format!(
        "{:<7} {:>7} {:>5} {:>6} {:>9} {:>7} {:>7} {:>7} {:>8} {:>6} {:>6} {:>9}\n",
        "system",
        "clients",
        "reads",
        "value",
        "ops/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "p99.9 ms",
        "errors",
        "cpu s",
        "cpu s/kop"
    );
    for r in rows {
        s.push_str(&format!(
            "{:<7} {:>7} {:>4.0}% {:>6} {:>9.0} {:>7.2} {:>7.2} {:>7.2} {:>8.2} {:>6} {:>6.2} {:>9.3}\n",
            r.system,
            r.clients,
            r.reads * 100.0,
            r.value_size,
            r.ops_per_s,
            r.p50_ms,
            r.p95_ms,
            r.p99_ms,
            r.p999_ms,
            r.errors,
            r.cpu_s,
            r.cpu_s_per_kop
        ));
    }
    let systems: Vec<&str> = {
        let mut v: Vec<&str> = rows.iter().map(|r| r.system.as_str()).collect();
        v.dedup();
        v
    };
    if systems.len() >= 2 {
        let (a, b) = (systems[0], systems[1]);
        let mut clients: Vec<usize> = rows.iter().map(|r| r.clients).collect();
        clients.sort_unstable();
        clients.dedup();
        for c in clients {
            let find = |sys: &str| rows.iter().find(|r| r.system == sys && r.clients == c);
            if let (Some(x), Some(y)) = (find(a), find(b)) {
                s.push_str(&format!(
                    "{c:>2} client(s): {a} / {b} = {:.2}x throughput, p50 {:.2}x, p99 {:.2}x, cpu per op {:.2}x\n",
                    x.ops_per_s / y.ops_per_s.max(1e-9),
                    x.p50_ms / y.p50_ms.max(1e-9),
                    x.p99_ms / y.p99_ms.max(1e-9),
                    x.cpu_s_per_kop / y.cpu_s_per_kop.max(1e-9)
                ));
            }
        }
    }
    let counted: Vec<(String, usize, &[crossings::Crossing])> = rows
        .iter()
        .filter(|r| !r.crossings.is_empty())
        .map(|r| (r.system.clone(), r.clients, r.crossings.as_slice()))
        .collect();
    if !counted.is_empty() {
        s.push('\n');
        s.push_str(&crossings::table(&counted));
    }
    s
}

fn bar(progress: bool, label: String) -> indicatif::ProgressBar {
    let b = harness::bar(progress, 1000, "{msg:<28} [{bar:30}] {percent}%");
    b.set_message(label);
    b
}

fn one_row(
    system: &str,
    w: &Load,
    pids: &[u32],
    make: impl Fn(usize) -> Box<dyn KvClient>,
    progress: bool,
) -> Row {
    let b = bar(progress, format!("{system}, {} client(s)", w.clients));
    let row = run(system, w, pids, make, |f| {
        b.set_position((f * 1000.0) as u64)
    });
    b.finish_and_clear();
    row
}

/// Clients of a synod cluster over its RESP ports, spread over the nodes.
pub fn resp_clients(cluster: &Cluster) -> Result<impl Fn(usize) -> Box<dyn KvClient>, BenchError> {
    let addrs: Vec<std::net::SocketAddr> =
        cluster.nodes.iter().filter_map(|n| n.redis_addr).collect();
    if addrs.len() != cluster.nodes.len() {
        return Err(BenchError::NoResp(cluster.name.clone()));
    }
    Ok(move |i: usize| {
        Box::new(crate::resp::client::RespKv::new(
            addrs.clone(),
            i,
            Duration::from_secs(6),
        )) as Box<dyn KvClient>
    })
}

/// Bench the running cluster of `dir`, one row per client count; with
/// `resp`, a second row per count drives it over RESP.
pub fn against_running(
    dir: &crate::cluster::rundir::RunDir,
    w: &Load,
    clients: &[usize],
    resp: bool,
    progress: bool,
) -> Result<Vec<Row>, BenchError> {
    let cluster = dir.cluster()?;
    let pids: Vec<u32> = dir.state().nodes.values().filter_map(|n| n.pid).collect();
    let over_resp = if resp {
        Some(resp_clients(&cluster)?)
    } else {
        None
    };
    let mut rows = Vec::new();
    for &c in clients {
        let w = Load {
            clients: c,
            ..w.clone()
        };
        rows.push(one_row(
            "synod",
            &w,
            &pids,
            synod_clients(&cluster),
            progress,
        ));
        if let Some(make) = &over_resp {
            rows.push(one_row("resp", &w, &pids, make, progress));
        }
    }
    Ok(rows)
}

fn median_row(rows: &[Row]) -> Row {
    let by = |f: fn(&Row) -> f64| crate::stats::median(&rows.iter().map(f).collect::<Vec<_>>());
    Row {
        ops_per_s: by(|r| r.ops_per_s),
        p50_ms: by(|r| r.p50_ms),
        p95_ms: by(|r| r.p95_ms),
        p99_ms: by(|r| r.p99_ms),
        p999_ms: by(|r| r.p999_ms),
        cpu_s: by(|r| r.cpu_s),
        cpu_s_per_kop: by(|r| r.cpu_s_per_kop),
        ops: rows.iter().map(|r| r.ops).sum::<u64>() / rows.len() as u64,
        errors: rows.iter().map(|r| r.errors).sum(),
        crossings: crossings::median(rows.iter().map(|r| r.crossings.as_slice())),
        ..rows[0].clone()
    }
}

/// The system `--against` races synod with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rival {
    /// A 3-node etcd, over its gRPC API.
    Etcd,
    /// One redis-server with `appendfsync always`, over RESP.
    Redis,
}

impl Rival {
    /// Its name in rows and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Rival::Etcd => "etcd",
            Rival::Redis => "redis",
        }
    }
}

/// The same workload against a fresh 3-node synod and `rival`, alternating
/// row by row `reps` times; the median row of each system and client count.
pub fn against(
    rival: Rival,
    w: &Load,
    clients: &[usize],
    reps: usize,
    progress: bool,
) -> Result<Vec<Row>, BenchError> {
    match rival {
        Rival::Etcd => etcd::find()?,
        Rival::Redis => redis::find()?,
    };
    let tmp = std::env::temp_dir().join(format!("synod-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    let result = (|| {
        let (etcd, redis) = match rival {
            Rival::Etcd => (Some(etcd::start(&tmp)?), None),
            Rival::Redis => (None, Some(redis::start(&tmp)?)),
        };
        let synod = fresh_cluster(&tmp, 3, "bench3")?;
        let (pids, cluster) = (synod.pids(), &synod.cluster);
        let mut raw: Vec<Row> = Vec::new();
        for _ in 0..reps {
            for &c in clients {
                let wc = Load {
                    clients: c,
                    ..w.clone()
                };
                raw.push(one_row(
                    "synod",
                    &wc,
                    &pids,
                    synod_clients(cluster),
                    progress,
                ));
                if let Some(etcd) = &etcd {
                    let addrs = etcd.clients.clone();
                    let make = move |i: usize| -> Box<dyn KvClient> {
                        Box::new(etcd::EtcdClient::new(addrs[i % addrs.len()]))
                    };
                    raw.push(one_row("etcd", &wc, &etcd.pids(), make, progress));
                }
                if let Some(redis) = &redis {
                    let addr = redis.addr;
                    let make = move |_| redis::Redis::client(addr);
                    raw.push(one_row("redis", &wc, &redis.pids(), make, progress));
                }
            }
        }
        drop(synod);
        if let Some(etcd) = etcd {
            etcd.stop();
        }
        drop(redis);
        let mut rows = Vec::new();
        for &c in clients {
            for sys in ["synod", rival.name()] {
                let same: Vec<Row> = raw
                    .iter()
                    .filter(|r| r.system == sys && r.clients == c)
                    .cloned()
                    .collect();
                rows.push(median_row(&same));
            }
        }
        Ok(rows)
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// Where program `name` is, or how to install it (`package` on Debian):
/// searched on `PATH`, then in the system's program directories (a minimal
/// `PATH` misses them). `SYNOD_SEARCH_PATH`, when set, is the whole search
/// path instead (the tests use it to see the message where the program is
/// installed).
fn find_program(
    name: &'static str,
    package: &'static str,
) -> Result<std::path::PathBuf, BenchError> {
    let dirs: Vec<String> = match std::env::var("SYNOD_SEARCH_PATH") {
        Ok(only) => only.split(':').map(String::from).collect(),
        Err(_) => std::env::var("PATH")
            .unwrap_or_default()
            .split(':')
            .chain(["/usr/bin", "/usr/sbin", "/usr/local/bin"])
            .map(String::from)
            .collect(),
    };
    let found = dirs
        .iter()
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| p.is_file());
    found.ok_or(BenchError::Missing {
        program: name,
        package,
    })
}

/// Bring up an `n`-node cluster with the default timings on free ports under
/// `tmp`; returns once a leader serves. It is stopped (and wiped) when dropped.
fn fresh_cluster(tmp: &std::path::Path, n: usize, name: &str) -> Result<Running, LaunchError> {
    let cluster = harness::loopback_cluster(name, n, 50, (150, 300));
    Running::up(&tmp.join(".synod"), cluster, None).map(Running::wiped)
}

/// Failover and bring-up times, seconds.
#[derive(Clone, Debug, Serialize)]
pub struct Failover {
    /// Each node a host of its own (`up --netns`; partitions in the kernel).
    pub netns: bool,
    /// `up` until a leader named by a majority serves, fresh five-node clusters.
    pub bringup_s: Vec<f64>,
    /// Leader SIGKILL → next acknowledged write.
    pub failover_s: Vec<f64>,
    /// Leader SIGSTOP → next acknowledged write.
    pub pause_s: Vec<f64>,
    /// Leader partitioned alone → next acknowledged write.
    pub partition_s: Vec<f64>,
}

impl Failover {
    /// The figures in a few lines, medians first.
    pub fn text(&self) -> String {
        let med = crate::stats::median;
        let list = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.3}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut t = format!(
            "{}\nbring-up of a five-node cluster to a serving leader: median {:.3} s ({})\n",
            if self.netns {
                "each node in a network namespace of its own (--netns); partitions are nftables rules"
            } else {
                "nodes on loopback; partitions in the nodes' own fault layer"
            },
            med(&self.bringup_s),
            list(&self.bringup_s)
        );
        for (what, v) in [
            ("SIGKILL", &self.failover_s),
            ("SIGSTOP", &self.pause_s),
            ("partitioned alone", &self.partition_s),
        ] {
            t.push_str(&format!(
                "leader {what} to the next acknowledged write: median {:.3} s ({})\n",
                med(v),
                list(v)
            ));
        }
        t
    }
}

/// How the leader is taken away in a failover measurement.
#[derive(Clone, Copy, Debug)]
enum Away {
    Kill,
    Pause,
    Partition,
}

/// Measure bring-up `kills` times, and leader failover `kills` times each
/// by SIGKILL, SIGSTOP and a partition, on fresh five-node clusters with the
/// default timings (heartbeat 50 ms, election timeout 150..300 ms); with
/// `netns`, each node a host of its own.
pub fn failover(kills: usize, netns: bool, progress: bool) -> Result<Failover, BenchError> {
    let tmp = std::env::temp_dir().join(format!("synod-failover-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let fresh = |name: &str| {
        let cluster = harness::loopback_cluster(name, 5, 50, (150, 300));
        let opts = crate::launcher::UpOptions {
            broken: None,
            wait: Duration::from_secs(10),
            netns,
        };
        Running::up_with(&tmp.join(".synod"), cluster, &opts).map(Running::wiped)
    };
    let result = (|| {
        let b = bar(progress, "bring-up and failover".into());
        let steps = kills as u64 * 4;
        let mut bringup_s = Vec::new();
        for i in 0..kills {
            let started = Instant::now();
            let up = fresh(&format!("up{i}"))?;
            bringup_s.push(started.elapsed().as_secs_f64());
            drop(up);
            b.set_position((i as u64 + 1) * 1000 / steps);
        }
        let running = fresh("failover")?;
        let mut times = [Vec::new(), Vec::new(), Vec::new()];
        for (k, away) in [Away::Kill, Away::Pause, Away::Partition]
            .into_iter()
            .enumerate()
        {
            for i in 0..kills {
                times[k].push(take_leader_away(&running, away)?);
                let done = (k as u64 + 1) * kills as u64 + i as u64 + 1;
                b.set_position(done * 1000 / steps);
            }
        }
        b.finish_and_clear();
        drop(running);
        let [failover_s, pause_s, partition_s] = times;
        Ok(Failover {
            netns,
            bringup_s,
            failover_s,
            pause_s,
            partition_s,
        })
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// Take the leader away as `away` says while a writer writes; seconds from
/// then to the first write invoked after it and acknowledged. The leader
/// comes back (restarted, resumed, healed) before this returns.
fn take_leader_away(running: &Running, away: Away) -> Result<f64, BenchError> {
    let (dir, cluster) = (&running.dir, &running.cluster);
    let leader = crate::launcher::wait_for_leader(cluster, Duration::from_secs(10))?;
    // A writer that never stops; the first write invoked after the fault and
    // acknowledged counts (not one the old leader answered as it went).
    let stop = Arc::new(AtomicBool::new(false));
    let acks: Arc<std::sync::Mutex<Vec<(Instant, Instant)>>> = Arc::default();
    let writer = {
        let (stop, acks, cluster) = (stop.clone(), acks.clone(), cluster.clone());
        std::thread::spawn(move || {
            let mut c = Client::new(cluster);
            c.attempt_timeout = Duration::from_millis(100);
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let invoked = Instant::now();
                if c.put("failover", &n.to_string()) {
                    acks.lock()
                        .expect("not poisoned")
                        .push((invoked, Instant::now()));
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let mut at = Instant::now();
    match away {
        Away::Kill => drop(crate::launcher::kill(dir, leader)?),
        Away::Pause => drop(crate::launcher::pause(dir, leader, true)?),
        Away::Partition => {
            let others: Vec<crate::paxos::NodeId> =
                cluster.ids().into_iter().filter(|&n| n != leader).collect();
            crate::launcher::partition(dir, &[vec![leader], others])?;
            // Counted from when every side's rules are in (each node's, one
            // after another: under --netns about 5 ms a node).
            at = Instant::now();
        }
    }
    let bound = Duration::from_secs(10);
    let deadline = Instant::now() + bound;
    let next = loop {
        let acked = acks.lock().expect("not poisoned");
        if let Some(&(_, t)) = acked.iter().find(|&&(invoked, _)| invoked > at) {
            break Some(t);
        }
        drop(acked);
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    stop.store(true, Ordering::SeqCst);
    let _ = writer.join();
    match away {
        Away::Kill => drop(crate::launcher::restart(
            dir,
            leader,
            Duration::from_secs(10),
        )?),
        Away::Pause => drop(crate::launcher::pause(dir, leader, false)?),
        Away::Partition => {
            let ids = cluster.ids();
            crate::launcher::change_faults(dir, &ids, |_, f| f.blocked.clear())?;
        }
    }
    let next = next.ok_or(BenchError::NoFailover(bound))?;
    std::thread::sleep(Duration::from_millis(500));
    Ok(next.duration_since(at).as_secs_f64())
}
