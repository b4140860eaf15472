//! `synod chaos`: a workload and a seeded fault schedule against real nodes, then
//! the verdict of the checkers.
//!
//! Clients issue put, get and cas with unique values on keys that each live
//! for a bounded number of operations ([`workload`]). Meanwhile the schedule
//! kills and restarts, pauses and resumes, partitions and heals, and loses,
//! duplicates and delays messages ([`schedule`]). A reader per node follows
//! its chosen log, and a poller its status. Everything observed goes to the
//! [`judge`] as it happens, which checks retired keys on threads of their own
//! and keeps only what it has not yet compared. At the end everything heals,
//! every node is SIGKILLed and restarted from its logs, every key in use is
//! read, and the judge gives the verdict: OK, VIOLATION (exit 1) or
//! INCONCLUSIVE (exit 3: something could not be checked, never called OK).

pub mod judge;
pub mod nemesis;
pub mod report;
pub mod schedule;
pub mod workload;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::check::history::Operation;
use crate::cluster::rundir::RunDir;
use crate::cluster::{Cluster, ClusterError, RespPortError};
use crate::harness::{self, Poller, Running, Workers};
use crate::kv::Op;
use crate::launcher::{self, LaunchError};
use crate::net::NetFaults;
use crate::paxos::{NodeId, Rule, Slot};
use judge::{Findings, Judge, JudgeConfig, Writes};
use report::SeriesBuilder;
use schedule::{Episode, Fault, Kind, Target};
use workload::{ChaosClient, KeyRing, Msg, Tap};

/// Search steps the linearizability checker may spend per key.
pub const CHECK_BUDGET: u64 = 5_000_000;

/// Operations a key lives for, by default, before the clients move on to a
/// fresh one.
pub const KEY_OPS: u64 = 1_000;

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
    /// Keys in use at a time.
    pub keys: usize,
    /// Operations a key lives for.
    pub key_ops: u64,
    /// Run the nodes with this rule off.
    pub broken: Option<Rule>,
    /// Let more than a minority be down at once.
    pub allow_majority_loss: bool,
    /// Draw a progress bar.
    pub progress: bool,
    /// The clients talk RESP to the nodes' Redis ports, not synod's protocol.
    pub resp: bool,
    /// Write the report files here; `history.jsonl` as the run goes.
    pub out: Option<PathBuf>,
    /// Record every observation the judge gets here (JSON lines), so the
    /// run can be judged again ([`judge::replay`]).
    pub evidence: Option<PathBuf>,
    /// Search steps the linearizability checker may spend per key.
    pub budget: u64,
    /// Keep the clients going after `duration` (the faults over) until some
    /// node's snapshot covers this slot, at most [`UNTIL_SNAPSHOT_BOUND`]
    /// more: for tests that need compaction during the run whatever the
    /// machine's speed. The extra time is not in the report's charts.
    pub until_snapshot: Option<Slot>,
    /// Bring the cluster up with every node in a network namespace of its
    /// own, so partitions and loss are nftables rules (`up --netns`).
    pub netns: bool,
}

/// How long `until_snapshot` waits at most.
pub const UNTIL_SNAPSHOT_BOUND: Duration = Duration::from_secs(120);

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

/// What a run comes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Outcome {
    /// Every check ran and passed.
    #[serde(rename = "OK")]
    Ok,
    /// Some check found a violation (exit 1).
    #[serde(rename = "VIOLATION")]
    Violation,
    /// Nothing was found, but something could not be checked (exit 3).
    #[serde(rename = "INCONCLUSIVE")]
    Inconclusive,
}

/// The verdict, as `verdict.json` holds it.
#[derive(Clone, Debug, Serialize)]
pub struct RunVerdict {
    /// OK, VIOLATION or INCONCLUSIVE.
    pub outcome: Outcome,
    /// Every key's history is linearizable (false if one is not, or could
    /// not be decided).
    pub linearizable: bool,
    /// The checker ran out of budget on some key.
    pub inconclusive: bool,
    /// Keys checked for linearizability (each lived for `key_ops` operations
    /// at most).
    pub keys_checked: u64,
    /// Operations a key lived for at most.
    pub key_ops: u64,
    /// Every value read for a slot, from any node at any time, was the same.
    pub agreement: bool,
    /// Slots read from two nodes or more and compared.
    pub slots_compared: u64,
    /// Pairs of nodes' status answers at the same applied slot whose state
    /// digests were compared.
    pub digests_compared: u64,
    /// Acknowledged writes missing from every chosen slot read.
    pub lost_writes: u64,
    /// Acknowledged writes in all.
    pub acknowledged_writes: u64,
    /// Slots every node compacted before a reader read them.
    pub unread_slots: u64,
    /// Acknowledged writes in no slot read, that unread slots could hold.
    pub unverified_writes: u64,
    /// Each acknowledged write's outcome: counts, and the lost and
    /// unverified ones listed with the reason.
    pub writes: Writes,
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
    /// The highest slot read, plus one.
    pub slots: u64,
    /// Wall time of the checks left at the end (the keys still in use), ms.
    pub checker_ms: f64,
    /// From the end of the workload to the verdict (the full restart, the
    /// final reads and the last checks), ms.
    pub verdict_after_ms: f64,
    /// The controller's peak resident memory, MB.
    pub controller_peak_mb: f64,
    /// Most slots the judge held at once, waiting to compare them.
    pub peak_pending_slots: usize,
    /// Every violation found, explained.
    pub violations: Vec<String>,
    /// What could not be checked, explained.
    pub undecided: Vec<String>,
    /// The cluster's name.
    pub cluster: String,
    /// Its number of nodes.
    pub nodes: usize,
    /// Seconds of workload.
    pub duration_s: f64,
    /// Concurrent clients.
    pub clients: usize,
    /// What the membership nemesis did and whether the final configuration
    /// is the one it intended (runs with `membership` faults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership: Option<String>,
}

impl RunVerdict {
    /// True if every check ran and passed.
    pub fn is_clean(&self) -> bool {
        self.outcome == Outcome::Ok
    }
}

/// Everything a chaos run produced.
pub struct ChaosRun {
    /// The verdict.
    pub verdict: RunVerdict,
    /// The per-second series and latencies.
    pub series: SeriesBuilder,
    /// The schedule it followed.
    pub schedule: Vec<Episode>,
    /// The operations involved in the first violation, if any.
    pub involved: Vec<Operation>,
    /// The run directory used.
    pub dir: RunDir,
}

/// Why a chaos run gave no verdict. (A verdict that is not OK is not an
/// error: it is the run's answer, in [`RunVerdict`].)
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    /// The cluster file given does not read.
    #[error(transparent)]
    File(#[from] ClusterError),
    /// Its nodes cannot get RESP ports (`--client redis`).
    #[error(transparent)]
    RespPort(#[from] RespPortError),
    /// The running cluster is not one this run can use.
    #[error("{0}")]
    Unsuitable(String),
    /// The `--out` directory or a file the run writes as it goes (its
    /// history, `--evidence`) cannot be made: found before the run starts.
    #[error("cannot {action} {}: {source}", path.display())]
    Output {
        /// "create" (the directory) or "write" (a file).
        action: &'static str,
        /// The directory or file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The cluster could not be brought up, faulted, or found a leader.
    #[error(transparent)]
    Launch(#[from] LaunchError),
    /// The final restart of every node failed.
    #[error("full restart: {0}")]
    Restart(LaunchError),
    /// Ctrl-C.
    #[error("interrupted: the faults were healed; no verdict")]
    Interrupted,
    /// The report could not be written after the run.
    #[error("cannot write {}: {source}", dir.display())]
    Report {
        /// The `--out` directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Pick or bring up the cluster: a running one is used and left running; one
/// this run brings up is stopped when the run ends.
fn cluster_for(base: &Path, o: &ChaosOptions) -> Result<Running, ChaosError> {
    let wanted = match &o.file {
        Some(f) => Some(Cluster::load(f)?),
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
                return Err(ChaosError::Unsuitable(format!(
                    "cluster {:?} is up with {}; chaos {} needs its own: `synod down` first",
                    cluster.name,
                    state
                        .broken
                        .map_or("every rule on".to_string(), |r| format!("rule `{r}` off")),
                    o.broken
                        .map_or("with every rule on".to_string(), |r| format!("--break {r}")),
                )));
            }
            if o.resp && cluster.nodes.iter().any(|n| n.redis_addr.is_none()) {
                return Err(ChaosError::Unsuitable(format!(
                        "cluster {:?} is up without a RESP port on every node; `synod down`, then `synod up --redis` (or let chaos bring it up)",
                        cluster.name
                    )));
            }
            return Ok(Running::adopt(dir, cluster));
        }
    }
    let cluster = wanted.unwrap_or_else(Cluster::builtin);
    let cluster = if o.resp {
        cluster.with_redis()?
    } else {
        cluster
    };
    let opts = launcher::UpOptions {
        broken: o.broken,
        wait: Duration::from_secs(10),
        netns: o.netns,
    };
    Ok(Running::up_with(base, cluster, &opts)?)
}

/// Run chaos against a cluster under `base` (the `.synod` folder).
pub fn run(base: &Path, o: &ChaosOptions) -> Result<ChaosRun, ChaosError> {
    let running = cluster_for(base, o)?;
    run_on(&running.dir, &running.cluster, o)
}

/// The judge on a thread of its own, fed through a channel.
struct JudgeThread {
    handle: std::thread::JoinHandle<Findings>,
    tap: Arc<Tap>,
}

impl JudgeThread {
    /// Start judging a run of `cluster` from slot `start`; `history.jsonl`
    /// goes to `out`, every event to `evidence`, if given.
    fn start(cluster: &Cluster, start: Slot, o: &ChaosOptions) -> Result<JudgeThread, ChaosError> {
        let (out, evidence) = (o.out.as_deref(), o.evidence.as_deref());
        let cfg = JudgeConfig {
            nodes: cluster.ids(),
            budget: o.budget,
            threads: 1,
            start,
        };
        let create = |p: &Path| {
            std::fs::File::create(p)
                .map(std::io::BufWriter::new)
                .map_err(|source| ChaosError::Output {
                    action: "write",
                    path: p.to_path_buf(),
                    source,
                })
        };
        let history: Option<Box<dyn std::io::Write + Send>> = match out {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|source| ChaosError::Output {
                    action: "create",
                    path: dir.to_path_buf(),
                    source,
                })?;
                Some(Box::new(create(&dir.join("history.jsonl"))?))
            }
            None => None,
        };
        let mut evidence = match evidence {
            Some(p) => {
                let mut w = create(p)?;
                let _ = writeln!(
                    w,
                    "{}",
                    serde_json::to_string(&cfg).expect("config serialises")
                );
                Some(w)
            }
            None => None,
        };
        let (tx, rx) = crossbeam_channel::bounded::<Msg>(1 << 16);
        let handle = std::thread::spawn(move || {
            let mut judge = Judge::new(cfg, history);
            for msg in rx {
                match msg {
                    Msg::Event(e) => {
                        if let Some(w) = evidence.as_mut() {
                            let _ = writeln!(
                                w,
                                "{}",
                                serde_json::to_string(&e).expect("events serialise")
                            );
                        }
                        judge.event(e);
                    }
                    Msg::Finish => break,
                }
            }
            if let Some(mut w) = evidence {
                let _ = w.flush();
            }
            judge.finish()
        });
        let tap = Arc::new(Tap {
            started: Instant::now(),
            tx,
            ops: AtomicU64::new(0),
        });
        Ok(JudgeThread { handle, tap })
    }

    /// No more events: the findings.
    fn finish(self) -> Findings {
        let _ = self.tap.tx.send(Msg::Finish);
        self.handle.join().unwrap_or_default()
    }
}

/// The observers of a run: its clients, a log reader per node and the
/// status poller.
struct Observers {
    clients: Workers<()>,
    readers: Workers<(NodeId, Slot)>,
    poller: Poller,
}

impl Observers {
    fn start(
        cluster: &Cluster,
        o: &ChaosOptions,
        ring: &Arc<KeyRing>,
        tap: &Arc<Tap>,
        start: Slot,
    ) -> Observers {
        let resp: Option<Vec<SocketAddr>> = o
            .resp
            .then(|| cluster.nodes.iter().filter_map(|n| n.redis_addr).collect());
        let clients = {
            let (cluster, ring, tap, seed) = (cluster.clone(), ring.clone(), tap.clone(), o.seed);
            // Each client starts every operation at a node of its own, as
            // Jepsen binds clients to nodes: a deposed leader that still
            // believes it leads keeps being asked, and what it answers is
            // judged.
            Workers::spawn(o.clients.max(1), move |i, stop| {
                let kv = ChaosClient::new(&cluster, resp.as_deref(), i).homed(Some(i));
                workload::client_loop(i, kv, &ring, &tap, seed, stop)
            })
        };
        // A reader per node, each with a cursor of its own: a paused node
        // (whose answer never comes) slows no other.
        let readers = {
            let (cluster, tap) = (cluster.clone(), tap.clone());
            let ids = cluster.ids();
            Workers::spawn(ids.len(), move |i, stop| {
                let mut cursor = start;
                while !stop.load(Ordering::SeqCst) {
                    workload::read_log(&cluster, ids[i], &mut cursor, &tap);
                    std::thread::sleep(Duration::from_millis(50));
                }
                (ids[i], cursor)
            })
        };
        let poller = {
            let (cluster, tap) = (cluster.clone(), tap.clone());
            Poller::every(Duration::from_millis(100), move || {
                workload::poll_status(&cluster, &tap)
            })
        };
        Observers {
            clients,
            readers,
            poller,
        }
    }
}

/// The first slot no node knew chosen before the run: what lies below is
/// an earlier run's.
fn first_slot(cluster: &Cluster) -> Slot {
    launcher::query_all(cluster, Duration::from_millis(500))
        .values()
        .map(|s| s.chosen)
        .max()
        .unwrap_or(0)
}

fn run_on(dir: &RunDir, cluster: &Cluster, o: &ChaosOptions) -> Result<ChaosRun, ChaosError> {
    let ids = cluster.ids();
    let duration_ms = o.duration.as_millis() as u64;
    let schedule = schedule::build(
        o.seed,
        &ids,
        duration_ms,
        &o.kinds,
        o.allow_majority_loss,
        o.broken,
    );
    // The nodes the membership track adds get their addresses now, and
    // the clients, log readers and the judge know them from the start.
    let grown = schedule::grown(&schedule);
    let addrs: BTreeMap<NodeId, SocketAddr> = grown
        .iter()
        .zip(harness::free_ports(grown.len()))
        .map(|(&id, port)| (id, SocketAddr::from(([127, 0, 0, 1], port))))
        .collect();
    let mut wide = cluster.clone();
    for (&id, &addr) in &addrs {
        if wide.node(id).is_none() {
            wide.nodes.push(crate::cluster::NodeSpec {
                id,
                addr,
                redis_addr: None,
                joined: true,
                ssh: None,
                ssh_dir: None,
            });
        }
    }
    // Keys for every node, those to come included (derived from the
    // secret, as the nodes' own are).
    if !addrs.is_empty() {
        let secret = crate::net::Secret::load(&dir.secret_file()).map_err(LaunchError::from)?;
        wide = wide.with_secret(secret);
    }
    let cluster = &wide;
    let mut nemesis = nemesis::Nemesis::new(dir, addrs);
    // Start from a clean network.
    launcher::change_faults(dir, &ids, |_, f| *f = NetFaults::none())?;
    let start = first_slot(cluster);
    let judge = JudgeThread::start(cluster, start, o)?;
    let tap = judge.tap.clone();
    let ring = Arc::new(KeyRing::new(
        crate::client::fresh_id() % 100_000,
        o.keys,
        o.key_ops,
    ));
    let observers = Observers::start(cluster, o, &ring, &tap, start);

    let applied = apply_schedule(dir, cluster, &schedule, o, &tap, &mut nemesis);
    nemesis.wait();
    if let Some(slot) = o.until_snapshot {
        until_snapshot(cluster, slot);
    }
    observers.clients.finish();
    let ended = Instant::now();
    if crate::signals::stopped() {
        let _ = launcher::change_faults(dir, &ids, |_, f| *f = NetFaults::none());
        for &id in &ids {
            let _ = launcher::pause(dir, id, false);
        }
        observers.readers.finish();
        observers.poller.finish();
        judge.finish();
        return Err(ChaosError::Interrupted);
    }
    let mut applied = applied;
    // The members at the end: every node of the run directory the nemesis
    // did not remove and wipe, and, if it changed the members, that the
    // configuration names (a node whose adding was refused is not one).
    let mut live = dir.cluster().map_err(LaunchError::from)?;
    let gone = nemesis.gone.lock().expect("gone").clone();
    live.nodes.retain(|n| !gone.contains(&n.id));
    if o.kinds.contains(&Kind::Membership) {
        if let Ok(v) = launcher::members::view(&live) {
            let named = |id: &NodeId| v.best.voters.contains(id) || v.best.learners.contains(id);
            live.nodes.retain(|n| named(&n.id));
        }
    }
    let cluster = &live;
    applied.push(full_restart(dir, cluster, &tap)?);
    launcher::wait_for_leader(cluster, Duration::from_secs(10))?;
    let (membership, mut unasked, mut unchecked) = match o.kinds.contains(&Kind::Membership) {
        true => {
            let (line, v, u) = nemesis.finish();
            (Some(line), v, u)
        }
        false => (None, Vec::new(), Vec::new()),
    };

    // Read every key in use, then follow every log to its end.
    let mut reader = ChaosClient::new(cluster, None, usize::MAX);
    if let ChaosClient::Native(c) = &mut reader {
        c.timeout = Duration::from_secs(5);
    }
    for key in ring.take_all() {
        reader.run(Op::Get { key }, &tap);
    }
    ring.retire_all(&tap);
    converge(cluster);
    let cursors = observers.readers.finish();
    observers.poller.finish();
    for (id, mut cursor) in cursors {
        workload::read_log(cluster, id, &mut cursor, &tap);
    }
    workload::poll_status(cluster, &tap);
    let check_started = Instant::now();
    let mut findings = judge.finish();
    findings.violations.append(&mut unasked);
    findings.undecided.append(&mut unchecked);
    let checker_ms = check_started.elapsed().as_secs_f64() * 1e3;
    let verdict_after_ms = ended.elapsed().as_secs_f64() * 1e3;
    Ok(ChaosRun {
        verdict: RunVerdict {
            membership,
            ..verdict(o, cluster, &findings, applied, checker_ms, verdict_after_ms)
        },
        series: findings.series,
        schedule,
        involved: findings.involved,
        dir: dir.clone(),
    })
}

/// The verdict from what the judge found.
fn verdict(
    o: &ChaosOptions,
    cluster: &Cluster,
    f: &Findings,
    faults: Vec<FaultEvent>,
    checker_ms: f64,
    verdict_after_ms: f64,
) -> RunVerdict {
    let outcome = if !f.violations.is_empty() {
        Outcome::Violation
    } else if !f.undecided.is_empty() {
        Outcome::Inconclusive
    } else {
        Outcome::Ok
    };
    let (ok, failed, unknown) = f.counts;
    RunVerdict {
        outcome,
        linearizable: f.keys_violated == 0 && f.keys_undecided == 0,
        inconclusive: f.keys_undecided > 0,
        keys_checked: f.keys,
        key_ops: o.key_ops,
        agreement: f.disagreements == 0,
        slots_compared: f.slots_compared,
        digests_compared: f.digests_compared,
        lost_writes: f.writes.lost,
        acknowledged_writes: f.writes.acknowledged,
        unread_slots: f.unread_slots,
        unverified_writes: f.writes.unverified,
        writes: f.writes.clone(),
        promises_monotonic: f.promise_drops == 0,
        faults,
        ops: OpCounts {
            ok,
            failed,
            unknown,
            total: ok + failed + unknown,
        },
        seed: o.seed,
        broken: o.broken.map(|r| r.name().to_string()),
        slots: f.slots,
        checker_ms,
        verdict_after_ms,
        controller_peak_mb: peak_rss_mb(),
        peak_pending_slots: f.peak_pending_slots,
        violations: f.violations.clone(),
        undecided: f.undecided.clone(),
        cluster: cluster.name.clone(),
        nodes: cluster.nodes.len(),
        duration_s: o.duration.as_secs_f64(),
        clients: o.clients,
        membership: None,
    }
}

/// This process's peak resident memory (VmHWM), MB; 0 where /proc lacks it.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Apply the schedule until the run's end (or Ctrl-C); the faults as applied.
fn apply_schedule(
    dir: &RunDir,
    cluster: &Cluster,
    schedule: &[Episode],
    o: &ChaosOptions,
    tap: &Tap,
    nemesis: &mut nemesis::Nemesis,
) -> Vec<FaultEvent> {
    let bar = harness::bar(
        o.progress,
        o.duration.as_secs().max(1),
        "chaos [{bar:40}] {pos}/{len} s  {msg}",
    );
    let tick = |faults: usize| {
        bar.set_position(tap.started.elapsed().as_secs());
        bar.set_message(format!(
            "{} ops, {faults} fault events",
            tap.ops.load(Ordering::Relaxed)
        ));
    };
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
        let due = tap.started + Duration::from_millis(at);
        if !harness::sleep_until(due, || tick(applied.len())) {
            break;
        }
        let ep = &schedule[i];
        let mut restart_ms = None;
        let nodes = if start {
            // Removed and wiped: no other fault touches it again.
            if let Ok(gone) = nemesis.gone.try_lock() {
                busy.extend(gone.iter().copied());
            }
            let nodes = match ep.fault {
                Fault::Grow { id } if nemesis.begin(Some(id), None) => vec![id],
                Fault::Shrink { pick } if nemesis.begin(None, Some((pick, busy.clone()))) => {
                    Vec::new()
                }
                Fault::Grow { .. } | Fault::Shrink { .. } => continue, // one at a time
                _ => apply_start(dir, cluster, &ep.fault, &mut busy),
            };
            resolved.insert(i, nodes.clone());
            nodes
        } else if matches!(ep.fault, Fault::Grow { .. } | Fault::Shrink { .. }) {
            continue; // the nemesis's thread does it whole
        } else {
            let nodes = resolved.remove(&i).unwrap_or_default();
            // A node the nemesis removed and wiped is not started again.
            restart_ms = apply_end(dir, cluster, &ep.fault, &nodes, &mut busy, &nemesis.gone);
            nodes
        };
        if start
            && nodes.is_empty()
            && matches!(
                ep.fault,
                Fault::Kill { .. } | Fault::Pause { .. } | Fault::StaleLeader { .. }
            )
        {
            continue; // its target was already down: skipped
        }
        applied.push(FaultEvent {
            at_ms: tap.started.elapsed().as_millis() as u64,
            phase: if start { "start" } else { "end" },
            fault: ep.fault.to_string(),
            nodes,
            episode: i,
            restart_ms,
        });
    }
    harness::sleep_until(tap.started + o.duration, || tick(applied.len()));
    bar.finish_and_clear();
    applied
}

/// Wait until some node's snapshot covers `slot`, at most
/// [`UNTIL_SNAPSHOT_BOUND`], or until Ctrl-C.
fn until_snapshot(cluster: &Cluster, slot: Slot) {
    let deadline = Instant::now() + UNTIL_SNAPSHOT_BOUND;
    while Instant::now() < deadline && !crate::signals::stopped() {
        let statuses = launcher::query_all(cluster, Duration::from_millis(200));
        if statuses.values().any(|s| s.snapshot >= slot) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Heal everything, then SIGKILL and restart every node from its logs.
fn full_restart(dir: &RunDir, cluster: &Cluster, tap: &Tap) -> Result<FaultEvent, ChaosError> {
    let ids = cluster.ids();
    let at = tap.started.elapsed().as_millis() as u64;
    launcher::change_faults(dir, &ids, |_, f| *f = NetFaults::none())?;
    for &id in &ids {
        let _ = launcher::pause(dir, id, false);
        let _ = launcher::kill(dir, id);
    }
    for &id in &ids {
        launcher::restart(dir, id, Duration::from_secs(10)).map_err(ChaosError::Restart)?;
    }
    workload::poll_status(cluster, tap);
    Ok(FaultEvent {
        at_ms: at,
        phase: "end",
        fault: "heal, SIGKILL and restart every node".into(),
        nodes: ids,
        episode: usize::MAX,
        restart_ms: None,
    })
}

/// Wait (at most 10 s) until every node knows the same slots chosen.
fn converge(cluster: &Cluster) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let st = launcher::query_all(cluster, Duration::from_millis(300));
        let chosen: BTreeSet<Slot> = st.values().map(|s| s.chosen).collect();
        if (st.len() == cluster.nodes.len() && chosen.len() == 1) || Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The nodes of the run directory now (the membership nemesis adds some
/// as it goes): what network faults apply to.
fn present(dir: &RunDir, cluster: &Cluster) -> Vec<NodeId> {
    dir.cluster().map_or_else(|_| cluster.ids(), |c| c.ids())
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
    let ids = present(dir, cluster);
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
        Fault::StaleLeader { delay_ms } => {
            let Some(id) = resolve(cluster, Target::Leader, busy) else {
                return Vec::new();
            };
            busy.insert(id);
            let _ = launcher::change_faults(dir, &[id], |_, f| f.delay_ms = (*delay_ms, *delay_ms));
            // Long enough for Accepts of fresh commands to be held back.
            std::thread::sleep(Duration::from_millis(50));
            let _ = launcher::pause(dir, id, true);
            vec![id]
        }
        // The nemesis makes membership changes (`apply_schedule`).
        Fault::Grow { .. } | Fault::Shrink { .. } => Vec::new(),
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
    gone: &std::sync::Mutex<BTreeSet<NodeId>>,
) -> Option<f64> {
    let ids = present(dir, cluster);
    match fault {
        Fault::Kill { .. } => {
            // The longest of the restarts, each until the node serves.
            let mut took: Option<f64> = None;
            let gone = gone.lock().expect("gone").clone();
            for &id in nodes.iter().filter(|id| !gone.contains(id)) {
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
        Fault::StaleLeader { delay_ms } => {
            for &id in nodes {
                let _ = launcher::pause(dir, id, false);
            }
            // Let what it held back go out, then let its messages flow.
            std::thread::sleep(Duration::from_millis(delay_ms + 100));
            let _ = launcher::change_faults(dir, nodes, |_, f| f.delay_ms = (0, 0));
            for &id in nodes {
                busy.remove(&id);
            }
        }
        Fault::Grow { .. } | Fault::Shrink { .. } => {}
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
