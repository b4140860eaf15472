//! `synod chaos`: a workload and a seeded fault schedule against real nodes, then
//! the verdict of the checkers.
//!
//! Clients issue put, get and cas with unique values and record every invocation
//! and completion (ok, failed, or unknown). Meanwhile the schedule kills and
//! restarts, pauses and resumes, partitions and heals, and loses, duplicates and
//! delays messages. At the end everything heals, every node is SIGKILLed and
//! restarted from its logs, and every key is read. The verdict:
//! - the history is linearizable, key by key ([`crate::check::linear`]);
//! - every node's chosen log agrees slot by slot ([`crate::check::logs`]);
//! - every acknowledged write is in the log after the full restart;
//! - no acceptor's promise ever went down (polled from `status` throughout).

pub mod report;
pub mod schedule;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::check::history::{History, Operation, Status};
use crate::check::{linear, logs};
use crate::client::{self, Client};
use crate::cluster::rundir::RunDir;
use crate::cluster::Cluster;
use crate::harness::{self, Poller, Running, Workers};
use crate::kv::{Op, OpResult};
use crate::launcher::{self, LaunchError};
use crate::net::{NetFaults, Request, Response};
use crate::paxos::{Ballot, NodeId, Rule, Slot, Value};
use crate::resp::client::RespKv;
use crate::rng::Rng;
use schedule::{Episode, Fault, Kind, Target};

/// Search steps the linearizability checker may spend per key.
pub const CHECK_BUDGET: u64 = 5_000_000;

/// What `synod chaos` was asked.
#[derive(Clone, Debug)]
pub struct ChaosOptions {
    /// A cluster file; else the running cluster, else the built-in five nodes.
    pub file: Option<PathBuf>,
    /// A running cluster to use, by name.
    pub cluster: Option<String>,
    /// How long the workload and the faults run.
    pub duration: Duration,
    /// The seed of the fault schedule (and of the clients' choices).
    pub seed: u64,
    /// Which faults.
    pub kinds: BTreeSet<Kind>,
    /// Concurrent clients.
    pub clients: usize,
    /// Keys the clients use.
    pub keys: usize,
    /// Run the nodes with this rule off.
    pub broken: Option<Rule>,
    /// Let more than a minority be down at once.
    pub allow_majority_loss: bool,
    /// Draw a progress bar.
    pub progress: bool,
    /// The clients talk RESP to the nodes' Redis ports, not synod's protocol.
    pub resp: bool,
}

/// A fault as it was applied.
#[derive(Clone, Debug, Serialize)]
pub struct FaultEvent {
    /// When, in ms since the run began.
    pub at_ms: u64,
    /// "start" or "end".
    pub phase: &'static str,
    /// The fault.
    pub fault: String,
    /// The nodes it touched.
    pub nodes: Vec<NodeId>,
    /// Index of its episode in the schedule.
    pub episode: usize,
    /// For the end of a kill: ms until the restarted node served again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_ms: Option<f64>,
}

/// Counts of operations by outcome.
#[derive(Clone, Debug, Default, Serialize)]
pub struct OpCounts {
    /// Acknowledged.
    pub ok: usize,
    /// Certainly not applied.
    pub failed: usize,
    /// Maybe applied.
    pub unknown: usize,
    /// All of them.
    pub total: usize,
}

/// The verdict, as `verdict.json` holds it.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    /// The history is linearizable (false if not, or if the checker could not decide).
    pub linearizable: bool,
    /// The checker ran out of budget on some key.
    pub inconclusive: bool,
    /// Every node's chosen log agrees slot by slot.
    pub agreement: bool,
    /// Acknowledged writes missing from the log after the full restart.
    pub lost_writes: usize,
    /// Acknowledged writes in all.
    pub acknowledged_writes: usize,
    /// Slots every node compacted before the collector read them: writes
    /// chosen there are reported lost, since nothing can show them chosen.
    pub unread_slots: u64,
    /// Acknowledged writes in no log when some slots went unread: they may
    /// lie there (then they are not counted as lost).
    pub unverified_writes: usize,
    /// No acceptor's promise went down.
    pub promises_monotonic: bool,
    /// The faults applied.
    pub faults: Vec<FaultEvent>,
    /// Operations by outcome.
    pub ops: OpCounts,
    /// The seed.
    pub seed: u64,
    /// The rule switched off, if any.
    pub broken: Option<String>,
    /// Slots chosen (the longest node log).
    pub slots: u64,
    /// Wall time of the checkers, ms.
    pub checker_ms: f64,
    /// Every violation found, explained.
    pub violations: Vec<String>,
    /// The cluster's name and size.
    pub cluster: String,
    /// Its number of nodes.
    pub nodes: usize,
    /// Seconds of workload.
    pub duration_s: f64,
    /// Concurrent clients.
    pub clients: usize,
}

impl Verdict {
    /// True if nothing went wrong.
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Everything a chaos run produced.
pub struct ChaosRun {
    /// The verdict.
    pub verdict: Verdict,
    /// Every operation.
    pub history: History,
    /// The schedule it followed.
    pub schedule: Vec<Episode>,
    /// Ids of the operations involved in the first violation, if any.
    pub involved: Vec<usize>,
    /// The run directory used.
    pub dir: RunDir,
}

/// A chaos error: bad input (2) or a failed setup (1).
pub type ChaosError = LaunchError;

fn fail(m: impl Into<String>) -> ChaosError {
    LaunchError {
        code: 1,
        message: m.into(),
    }
}

/// Pick or bring up the cluster: a running one is used and left running; one
/// this run brings up is stopped when the run ends.
fn cluster_for(base: &Path, o: &ChaosOptions) -> Result<Running, ChaosError> {
    let wanted = match &o.file {
        Some(f) => Some(Cluster::load(f).map_err(|e| LaunchError {
            code: 2,
            message: e.to_string(),
        })?),
        None => None,
    };
    let name = wanted
        .as_ref()
        .map(|c| c.name.clone())
        .or_else(|| o.cluster.clone());
    if let Ok(dir) = RunDir::find(base, name.as_deref()) {
        let (cluster, rows) = launcher::status(&dir)?;
        let running = rows.iter().filter(|r| r.state == "up").count();
        if running > 0 {
            let state = dir.state();
            if state.broken != o.broken {
                return Err(LaunchError {
                    code: 2,
                    message: format!(
                        "cluster {:?} is up with {}; chaos {} needs its own: `synod down` first",
                        cluster.name,
                        state
                            .broken
                            .map_or("every rule on".to_string(), |r| format!("rule `{r}` off")),
                        o.broken
                            .map_or("with every rule on".to_string(), |r| format!("--break {r}")),
                    ),
                });
            }
            if o.resp && cluster.nodes.iter().any(|n| n.redis_addr.is_none()) {
                return Err(LaunchError {
                    code: 2,
                    message: format!(
                        "cluster {:?} is up without a RESP port on every node; `synod down`, then `synod up --redis` (or let chaos bring it up)",
                        cluster.name
                    ),
                });
            }
            return Ok(Running::adopt(dir, cluster));
        }
    }
    let cluster = wanted.unwrap_or_else(Cluster::builtin);
    let cluster = if o.resp {
        cluster
            .with_redis()
            .map_err(|message| LaunchError { code: 2, message })?
    } else {
        cluster
    };
    Running::up(base, cluster, o.broken)
}

/// Run chaos against a cluster under `base` (the `.synod` folder).
pub fn run(base: &Path, o: &ChaosOptions) -> Result<ChaosRun, ChaosError> {
    let running = cluster_for(base, o)?;
    run_on(&running.dir, &running.cluster, o)
}

struct Shared {
    started: Instant,
    ops: AtomicU64,
    promise_violations: Mutex<Vec<String>>,
    last_promised: Mutex<BTreeMap<NodeId, Ballot>>,
    /// Every `(client, seq)` seen chosen while the run went on, and the first
    /// slot not yet collected: snapshots compact the logs, so what was
    /// chosen early may be in no log by the end.
    chosen: Mutex<(HashSet<(u64, u64)>, Slot)>,
    /// Slots the collector could not read: every node had compacted them.
    skipped: std::sync::atomic::AtomicU64,
    /// What the collector's readers gathered (locked after `chosen`).
    gathered: Mutex<Gathered>,
}

impl Shared {
    fn micros(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }
}

fn run_on(dir: &RunDir, cluster: &Cluster, o: &ChaosOptions) -> Result<ChaosRun, ChaosError> {
    let ids = cluster.ids();
    let duration_ms = o.duration.as_millis() as u64;
    let schedule = schedule::build(o.seed, &ids, duration_ms, &o.kinds, o.allow_majority_loss);
    // Start from a clean network.
    launcher::change_faults(dir, &ids, |_, f| *f = NetFaults::none())?;
    let shared = Arc::new(Shared {
        started: Instant::now(),
        ops: AtomicU64::new(0),
        promise_violations: Mutex::new(Vec::new()),
        last_promised: Mutex::new(BTreeMap::new()),
        chosen: Mutex::new((HashSet::new(), 0)),
        skipped: std::sync::atomic::AtomicU64::new(0),
        gathered: Mutex::new(Gathered::default()),
    });

    // The clients.
    // Keys of this run's own: a cluster that kept data from an earlier run
    // (or any other writes) would otherwise start from values the checker's
    // model, which starts every key absent, cannot explain.
    let run = client::fresh_id() % 100_000;
    let keys: Vec<String> = (0..o.keys.max(1)).map(|k| format!("r{run}.k{k}")).collect();
    let resp: Option<Vec<SocketAddr>> = o
        .resp
        .then(|| cluster.nodes.iter().filter_map(|n| n.redis_addr).collect());
    let workers = {
        let (cluster, keys, shared, seed) = (cluster.clone(), keys.clone(), shared.clone(), o.seed);
        Workers::spawn(o.clients.max(1), move |i, stop| {
            let kv = match &resp {
                Some(addrs) => Kv::Resp(RespKv::new(addrs.clone(), i, RESP_TIMEOUT)),
                None => {
                    let mut c = Client::new(cluster.clone());
                    c.timeout = Duration::from_millis(1_000);
                    c.attempt_timeout = Duration::from_millis(250);
                    Kv::Native(c)
                }
            };
            client_loop(i, kv, &keys, &shared, seed, stop)
        })
    };

    // The status poller: promises must never go down.
    let poller = {
        let (cluster, shared) = (cluster.clone(), shared.clone());
        Poller::every(Duration::from_millis(100), move || {
            poll_promises(&cluster, &shared)
        })
    };
    // The log collector: what is chosen, before compaction drops it; a
    // reader per node.
    let collector = {
        let (cluster, shared) = (cluster.clone(), shared.clone());
        let ids = ids.clone();
        Workers::spawn(ids.len(), move |i, stop| {
            while !stop.load(Ordering::SeqCst) {
                read_log(&cluster, &shared, ids[i]);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };

    // The controller: apply the schedule.
    let bar = harness::bar(
        o.progress,
        o.duration.as_secs().max(1),
        "chaos [{bar:40}] {pos}/{len} s  {msg}",
    );
    let mut events: Vec<(u64, bool, usize)> = Vec::new();
    for (i, e) in schedule.iter().enumerate() {
        events.push((e.start_ms, true, i));
        events.push((e.end_ms, false, i));
    }
    events.sort();
    let mut applied: Vec<FaultEvent> = Vec::new();
    let mut resolved: BTreeMap<usize, Vec<NodeId>> = BTreeMap::new();
    let mut busy: BTreeSet<NodeId> = BTreeSet::new();
    for (at, start, i) in events {
        let due = shared.started + Duration::from_millis(at);
        if !harness::sleep_until(due, || tick(&bar, &shared, applied.len())) {
            break;
        }
        let ep = &schedule[i];
        let mut restart_ms = None;
        let nodes = if start {
            let nodes = apply_start(dir, cluster, &ep.fault, &mut busy);
            resolved.insert(i, nodes.clone());
            nodes
        } else {
            let nodes = resolved.remove(&i).unwrap_or_default();
            restart_ms = apply_end(dir, cluster, &ep.fault, &nodes, &mut busy);
            nodes
        };
        if start && nodes.is_empty() && matches!(ep.fault, Fault::Kill { .. } | Fault::Pause { .. })
        {
            continue; // its target was already down: skipped
        }
        applied.push(FaultEvent {
            at_ms: shared.started.elapsed().as_millis() as u64,
            phase: if start { "start" } else { "end" },
            fault: ep.fault.to_string(),
            nodes,
            episode: i,
            restart_ms,
        });
    }
    harness::sleep_until(shared.started + o.duration, || {
        tick(&bar, &shared, applied.len())
    });
    let mut ops: Vec<Operation> = workers.finish().into_iter().flatten().collect();
    poller.finish();
    collector.finish();
    bar.finish_and_clear();
    if crate::signals::stopped() {
        let _ = launcher::change_faults(dir, &ids, |_, f| *f = NetFaults::none());
        for &id in &ids {
            let _ = launcher::pause(dir, id, false);
        }
        return Err(fail("interrupted: the faults were healed; no verdict"));
    }

    // Heal everything, then SIGKILL and restart every node from its logs.
    let at = shared.started.elapsed().as_millis() as u64;
    launcher::change_faults(dir, &ids, |_, f| *f = NetFaults::none())?;
    for &id in &ids {
        let _ = launcher::pause(dir, id, false);
        let _ = launcher::kill(dir, id);
    }
    for &id in &ids {
        launcher::restart(dir, id, Duration::from_secs(10))
            .map_err(|e| fail(format!("full restart: {}", e.message)))?;
    }
    applied.push(FaultEvent {
        at_ms: at,
        phase: "end",
        fault: "heal, SIGKILL and restart every node".into(),
        nodes: ids.clone(),
        episode: usize::MAX,
        restart_ms: None,
    });
    poll_promises(cluster, &shared);
    launcher::wait_for_leader(cluster, Duration::from_secs(10)).map_err(fail)?;

    // Read every key.
    let mut reader = Client::new(cluster.clone());
    reader.timeout = Duration::from_secs(5);
    for k in &keys {
        let op = Op::Get { key: k.clone() };
        let invoke = shared.micros();
        let status = match reader.execute(op.clone()) {
            Ok(r) => Status::Ok(r),
            Err(e) if e.maybe_applied() => Status::Unknown,
            Err(_) => Status::Failed,
        };
        ops.push(Operation {
            id: 0,
            client: reader.id(),
            seq: reader.seq(),
            op,
            invoke,
            complete: Some(shared.micros()),
            status,
        });
    }
    ops.sort_by_key(|op| (op.invoke, op.client, op.seq));
    let mut history = History::new();
    for (i, mut op) in ops.into_iter().enumerate() {
        op.id = i;
        history.ops.push(op);
    }

    // The verdict.
    let logs = fetch_logs(cluster);
    let check_started = Instant::now();
    let lin = linear::check(&history, CHECK_BUDGET);
    let disagreements = logs::agreement(&logs);
    let longest = logs
        .values()
        .max_by_key(|l| l.len())
        .cloned()
        .unwrap_or_default();
    // An acknowledged write must be in some node's log after the full
    // restart, or (below a compaction point) have been seen chosen during
    // the run.
    let mut present = std::mem::take(&mut shared.chosen.lock().expect("not poisoned").0);
    logs::note_commands(logs.values().flat_map(|l| l.values()), &mut present);
    let (lost, acked) = logs::lost_writes(&history, &present);
    let checker_ms = check_started.elapsed().as_secs_f64() * 1e3;

    let mut violations = Vec::new();
    let mut involved = Vec::new();
    for bad in lin.violations() {
        violations.push(format!(
            "not linearizable: key {:?}: {}",
            bad.key,
            bad.explain(&history)
        ));
        if let linear::KeyResult::NotLinearizable { prefix, stuck, .. } = &bad.result {
            if involved.is_empty() {
                involved.extend(prefix.iter().rev().take(6).rev());
                involved.extend(stuck);
            }
        }
    }
    let inconclusive: Vec<&linear::KeyVerdict> = lin
        .keys
        .iter()
        .filter(|k| k.result == linear::KeyResult::Inconclusive)
        .collect();
    for k in &inconclusive {
        violations.push(format!(
            "could not decide linearizability of key {:?} ({} operations) within {} search steps",
            k.key, k.ops, k.steps
        ));
    }
    for d in &disagreements {
        violations.push(format!("agreement: nodes disagree on {d}"));
    }
    // Slots compacted everywhere before the collector read them leave the
    // writes chosen there with no witness: then a missing write is
    // unverified, said so loudly, not called lost (a known gap, README).
    let unread = shared.skipped.load(std::sync::atomic::Ordering::Relaxed);
    let (lost, unverified) = if unread > 0 {
        (Vec::new(), lost)
    } else {
        (lost, Vec::new())
    };
    for &id in lost.iter().take(5) {
        violations.push(format!(
            "lost write: {} was acknowledged but is in no node's log after the full restart",
            linear::describe(&history.ops[id])
        ));
        if involved.is_empty() {
            involved.push(id);
        }
    }
    if lost.len() > 5 {
        violations.push(format!("... and {} more lost writes", lost.len() - 5));
    }
    let promise = shared
        .promise_violations
        .lock()
        .expect("not poisoned")
        .clone();
    violations.extend(promise.iter().cloned());
    let (ok, failed, unknown) = history.counts();
    let verdict = Verdict {
        linearizable: lin.is_linearizable(),
        inconclusive: !inconclusive.is_empty(),
        agreement: disagreements.is_empty(),
        lost_writes: lost.len(),
        acknowledged_writes: acked,
        unread_slots: unread,
        unverified_writes: unverified.len(),
        promises_monotonic: promise.is_empty(),
        faults: applied,
        ops: OpCounts {
            ok,
            failed,
            unknown,
            total: history.ops.len(),
        },
        seed: o.seed,
        broken: o.broken.map(|r| r.name().to_string()),
        slots: longest.len() as u64,
        checker_ms,
        violations,
        cluster: cluster.name.clone(),
        nodes: ids.len(),
        duration_s: o.duration.as_secs_f64(),
        clients: o.clients,
    };
    Ok(ChaosRun {
        verdict,
        history,
        schedule,
        involved,
        dir: dir.clone(),
    })
}

fn tick(bar: &indicatif::ProgressBar, shared: &Shared, faults: usize) {
    bar.set_position(shared.started.elapsed().as_secs());
    bar.set_message(format!(
        "{} ops, {faults} fault events",
        shared.ops.load(Ordering::Relaxed)
    ));
}

/// How long a RESP client waits for a reply: past the node's own client
/// timeout (5 s), so a reply that is coming is not given up on.
const RESP_TIMEOUT: Duration = Duration::from_secs(6);

/// A chaos client's way to the cluster.
enum Kv {
    /// synod's own client.
    Native(Client),
    /// RESP, to one node's Redis port at a time.
    Resp(RespKv),
}

impl Kv {
    /// Run `op`: its result, or whether it may have been applied.
    fn execute(&mut self, op: &Op) -> Result<OpResult, bool> {
        match self {
            Kv::Native(c) => c.execute(op.clone()).map_err(|e| e.maybe_applied()),
            Kv::Resp(r) => r.execute(op).map_err(|e| e.maybe_applied),
        }
    }

    /// The (client, seq) the log holds for the last operation.
    fn ids(&self) -> (u64, u64) {
        match self {
            Kv::Native(c) => (c.id(), c.seq()),
            Kv::Resp(r) => (r.id(), r.seq()),
        }
    }
}

/// One client: operations until told to stop; returns what it did.
fn client_loop(
    i: usize,
    mut c: Kv,
    keys: &[String],
    shared: &Shared,
    seed: u64,
    stop: &AtomicBool,
) -> Vec<Operation> {
    let mut rng = Rng::derive(seed, 10_000 + i as u64);
    let mut seen: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut ops = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let key = keys[rng.below(keys.len())].clone();
        let unique = format!("c{i}.{}", ops.len() + 1);
        let op = match rng.below(10) {
            0..=3 => Op::Put { key, value: unique },
            4..=6 => Op::Get { key },
            _ => {
                let expect = seen.get(&key).cloned().flatten();
                Op::Cas {
                    key,
                    expect,
                    new: unique,
                }
            }
        };
        let invoke = shared.micros();
        let result = c.execute(&op);
        let complete = shared.micros();
        let (client, seq) = c.ids();
        let status = match result {
            Ok(r) => {
                match (&op, &r) {
                    (Op::Put { key, value }, _)
                    | (
                        Op::Cas {
                            key, new: value, ..
                        },
                        OpResult::Swapped(true),
                    ) => {
                        seen.insert(key.clone(), Some(value.clone()));
                    }
                    (Op::Get { key }, OpResult::Value(v)) => {
                        seen.insert(key.clone(), v.clone());
                    }
                    _ => {}
                }
                Status::Ok(r)
            }
            Err(true) => Status::Unknown,
            Err(false) => Status::Failed,
        };
        let failed = !matches!(status, Status::Ok(_));
        ops.push(Operation {
            id: 0,
            client,
            seq,
            op,
            invoke,
            complete: Some(complete),
            status,
        });
        shared.ops.fetch_add(1, Ordering::Relaxed);
        if failed {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    ops
}

fn poll_promises(cluster: &Cluster, shared: &Shared) {
    let now = launcher::query_all(cluster, Duration::from_millis(150));
    let mut last = shared.last_promised.lock().expect("not poisoned");
    for (id, st) in now {
        let before = last.get(&id).copied().unwrap_or(Ballot::ZERO);
        if st.promised < before {
            shared.promise_violations.lock().expect("not poisoned").push(format!(
                "promise went down: node {id}'s acceptor had promised {before}, and after a restart only {} (at {:.1} s)",
                st.promised,
                shared.started.elapsed().as_secs_f64()
            ));
        }
        last.insert(id, st.promised);
    }
}

fn leader_now(cluster: &Cluster) -> Option<NodeId> {
    launcher::query_all(cluster, Duration::from_millis(150))
        .values()
        .find(|s| s.role == "leader")
        .map(|s| s.id)
}

fn resolve(cluster: &Cluster, target: Target, busy: &BTreeSet<NodeId>) -> Option<NodeId> {
    let id = match target {
        Target::Node(n) => n,
        Target::Leader => leader_now(cluster)?,
    };
    (!busy.contains(&id)).then_some(id)
}

fn apply_start(
    dir: &RunDir,
    cluster: &Cluster,
    fault: &Fault,
    busy: &mut BTreeSet<NodeId>,
) -> Vec<NodeId> {
    let ids = cluster.ids();
    match fault {
        Fault::Kill { target } => {
            let Some(id) = resolve(cluster, *target, busy) else {
                return Vec::new();
            };
            busy.insert(id);
            let _ = launcher::kill(dir, id);
            vec![id]
        }
        Fault::Pause { target } => {
            let Some(id) = resolve(cluster, *target, busy) else {
                return Vec::new();
            };
            busy.insert(id);
            let _ = launcher::pause(dir, id, true);
            vec![id]
        }
        Fault::Partition { shape } => {
            let blocked = shape.blocked(&ids, leader_now(cluster));
            let map: BTreeMap<NodeId, BTreeSet<NodeId>> = blocked.into_iter().collect();
            let _ = launcher::change_faults(dir, &ids, |id, f| {
                f.blocked = map.get(&id).cloned().unwrap_or_default();
            });
            map.iter()
                .filter(|(_, b)| !b.is_empty())
                .map(|(n, _)| *n)
                .collect()
        }
        Fault::Net {
            loss_ppm,
            dup_ppm,
            delay_ms,
        } => {
            let _ = launcher::change_faults(dir, &ids, |id, f| {
                f.loss_ppm = *loss_ppm;
                f.dup_ppm = *dup_ppm;
                f.delay_ms = *delay_ms;
                f.seed = id;
            });
            ids
        }
    }
}

fn apply_end(
    dir: &RunDir,
    cluster: &Cluster,
    fault: &Fault,
    nodes: &[NodeId],
    busy: &mut BTreeSet<NodeId>,
) -> Option<f64> {
    let ids = cluster.ids();
    match fault {
        Fault::Kill { .. } => {
            // The longest of the restarts, each until the node serves.
            let mut took: Option<f64> = None;
            for &id in nodes {
                let t = Instant::now();
                if launcher::restart(dir, id, Duration::from_secs(10)).is_ok() {
                    let ms = t.elapsed().as_secs_f64() * 1e3;
                    took = Some(took.map_or(ms, |m| m.max(ms)));
                }
                busy.remove(&id);
            }
            return took;
        }
        Fault::Pause { .. } => {
            for &id in nodes {
                let _ = launcher::pause(dir, id, false);
                busy.remove(&id);
            }
        }
        Fault::Partition { .. } => {
            let _ = launcher::change_faults(dir, &ids, |_, f| f.blocked.clear());
        }
        Fault::Net { .. } => {
            let _ = launcher::change_faults(dir, &ids, |_, f| {
                f.loss_ppm = 0;
                f.dup_ppm = 0;
                f.delay_ms = (0, 0);
            });
        }
    }
    None
}

/// What the log readers gathered above the collector's cursor, and the
/// compaction point each node last reported.
#[derive(Default)]
struct Gathered {
    pending: BTreeMap<Slot, Value>,
    floors: BTreeMap<NodeId, Slot>,
}

/// One node's log reader: read node `id`'s chosen log from the collector's
/// cursor on (every page), add it to what was gathered, and move the cursor.
/// Each node has a reader of its own, so a paused node (whose answer never
/// comes) slows no other: with one reader for all, every round waited out
/// the paused node's timeout, and under load the others compacted past the
/// cursor meanwhile (a 60-second run with `snapshot_every: 200` lost 15,708
/// slots that way).
fn read_log(cluster: &Cluster, shared: &Shared, id: NodeId) {
    let Some(addr) = cluster.node(id).map(|n| n.addr) else {
        return;
    };
    let from = shared.chosen.lock().expect("not poisoned").1;
    let mut next = from;
    let mut read = Vec::new();
    let mut floor = None;
    loop {
        let req = Request::Log {
            from: next,
            limit: 4096,
        };
        match client::query(addr, cluster, &req, Duration::from_millis(500)) {
            Ok(Response::Log {
                entries, floor: f, ..
            }) => {
                floor = Some(f);
                let Some(&(last, _)) = entries.last() else {
                    break;
                };
                next = last + 1;
                read.extend(entries);
            }
            _ => break,
        }
    }
    {
        let mut g = shared.gathered.lock().expect("not poisoned");
        g.pending.extend(read);
        if let Some(f) = floor {
            g.floors.insert(id, f);
        }
    }
    advance_cursor(cluster, shared);
}

/// Note the commands of every slot gathered from the cursor on, up to the
/// first slot no reader has. A slot no node holds any more (every node has
/// reported a compaction point above it, and compaction points never move
/// back) is skipped and counted: acknowledged writes that may lie there are
/// then reported as unverified, not lost. A slot below every answering
/// node's floor while some node has not answered yet is waited for: a node
/// that is down or paused may still hold it.
fn advance_cursor(cluster: &Cluster, shared: &Shared) {
    let mut chosen = shared.chosen.lock().expect("not poisoned");
    let mut g = shared.gathered.lock().expect("not poisoned");
    let mut next = chosen.1;
    if !g.pending.contains_key(&next) && g.floors.len() == cluster.nodes.len() {
        let floor = g.floors.values().min().copied().unwrap_or(0);
        if floor > next {
            tracing::debug!("collector: slots {next}..{floor} were compacted on every node");
            shared
                .skipped
                .fetch_add(floor - next, std::sync::atomic::Ordering::Relaxed);
            next = floor;
        }
    }
    let mut values = Vec::new();
    while let Some(v) = g.pending.remove(&next) {
        values.push(v);
        next += 1;
    }
    g.pending = g.pending.split_off(&next);
    logs::note_commands(values.iter(), &mut chosen.0);
    chosen.1 = next;
}

/// Every node's chosen log, once they have converged (or after 10 s).
fn fetch_logs(cluster: &Cluster) -> BTreeMap<NodeId, BTreeMap<Slot, Value>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let st = launcher::query_all(cluster, Duration::from_millis(300));
        let chosen: BTreeSet<Slot> = st.values().map(|s| s.chosen).collect();
        if (st.len() == cluster.nodes.len() && chosen.len() == 1) || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    client::fetch_logs(cluster, 0, 4096, true, Duration::from_secs(5))
}
