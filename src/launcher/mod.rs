//! Spawn, supervise and stop node processes; answer `status`.
//!
//! synod signals only the process ids it recorded in the run directory's state
//! file, and before it signals one it checks that the process is still the
//! `synod node` it started (a recycled pid is left alone).

pub mod process;
mod supervise;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::client;
use crate::cluster::rundir::{NodeState, RunDir, State};
use crate::cluster::Cluster;
use crate::net::{NetFaults, NodeStatus, Request, Response, Secret};
use crate::paxos::{NodeId, Rule};
use process::{alive_node, signal};
pub use supervise::{print_log, supervise};

/// How long a status query may take per node.
pub const STATUS_TIMEOUT: Duration = Duration::from_millis(300);

/// A launcher error: the message, and whether it is the user's input (exit 2)
/// or a failed operation (exit 1).
#[derive(Debug)]
pub struct LaunchError {
    /// 1 or 2.
    pub code: u8,
    /// One or two lines.
    pub message: String,
}

impl LaunchError {
    fn failed(m: impl Into<String>) -> Self {
        LaunchError {
            code: 1,
            message: m.into(),
        }
    }
    fn usage(m: impl Into<String>) -> Self {
        LaunchError {
            code: 2,
            message: m.into(),
        }
    }
}

impl From<String> for LaunchError {
    fn from(m: String) -> Self {
        LaunchError::usage(m)
    }
}

/// One row of `synod status`.
#[derive(Clone, Debug, Serialize)]
pub struct NodeRow {
    /// Node id.
    pub id: NodeId,
    /// Its address.
    pub addr: String,
    /// Where it serves RESP, if it does.
    pub redis_addr: Option<String>,
    /// Its process id, if running.
    pub pid: Option<u32>,
    /// "up", "down" or "paused".
    pub state: &'static str,
    /// "leader", "follower", "pre-candidate", "candidate", or null if it did
    /// not answer.
    pub role: Option<String>,
    /// The highest ballot its acceptor promised (durably), as "round.node".
    pub promised: Option<String>,
    /// The ballot of its own latest attempt to lead, as "round.node".
    pub ballot: Option<String>,
    /// First slot not known chosen.
    pub chosen: Option<u64>,
    /// Next slot to apply.
    pub applied: Option<u64>,
    /// Every slot below this is in its latest durable snapshot (0: none yet).
    pub snapshot: Option<u64>,
    /// Bytes of its data directory.
    pub disk_bytes: Option<u64>,
    /// Clients its replica remembers (the de-duplication table).
    pub sessions: Option<u64>,
    /// A digest of what it applied, as 16 hex digits (equal at equal
    /// `applied`: the same state).
    pub digest: Option<String>,
    /// Client operations it answered per second, over the last 10 s.
    pub client_ops_per_s: Option<f64>,
    /// Their median time from request to answer, ms.
    pub client_p50_ms: Option<f64>,
    /// Their 99th percentile, ms.
    pub client_p99_ms: Option<f64>,
    /// Slots its learner saw chosen with two different values (only with a
    /// rule broken), and the first few as (slot, kept, other).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflicts: Option<u64>,
    /// The first conflicts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub first_conflicts: Vec<(u64, String, String)>,
    /// Message faults in force.
    #[serde(skip)]
    pub faults: String,
}

/// Options of `up`.
#[derive(Clone, Debug, Default)]
pub struct UpOptions {
    /// A rule to run the nodes without (teaching runs).
    pub broken: Option<Rule>,
    /// How long to wait for a leader.
    pub wait: Duration,
}

/// A cluster brought up.
pub struct Up {
    /// Its run directory.
    pub dir: RunDir,
    /// The cluster.
    pub cluster: Cluster,
    /// Seconds from the first spawn to an elected leader serving.
    pub seconds: f64,
    /// The leader.
    pub leader: NodeId,
    /// The children, for a foreground launcher to supervise.
    pub children: Vec<(NodeId, Child)>,
}

/// The path of the running `synod` binary.
fn exe() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("synod"))
}

/// Bring `cluster` up under `base`: refuse if it is up already or a port is
/// taken, spawn every node, and return once a leader serves.
pub fn up(base: &Path, cluster: Cluster, opts: &UpOptions) -> Result<Up, LaunchError> {
    let dir = RunDir::new(base, &cluster.name);
    if dir.cluster_file().exists() {
        let _lock = dir.lock()?;
        let state = dir.state();
        let running: Vec<NodeId> = state
            .nodes
            .iter()
            .filter(|(id, n)| n.pid.is_some_and(|p| alive_node(p, &dir, **id)))
            .map(|(id, _)| *id)
            .collect();
        if !running.is_empty() {
            return Err(LaunchError::failed(format!(
                "cluster {:?} is already up ({} node(s) running); `synod down` first, or `synod status`",
                cluster.name,
                running.len()
            )));
        }
    }
    for n in &cluster.nodes {
        for (what, addr) in
            std::iter::once(("port", n.addr)).chain(n.redis_addr.map(|r| ("RESP port", r)))
        {
            if let Err(e) = TcpListener::bind(addr) {
                return Err(LaunchError::usage(format!(
                    "node {}: {what} {} ({addr}) cannot be used: {e}",
                    n.id,
                    addr.port(),
                )));
            }
        }
    }
    std::fs::create_dir_all(dir.root())
        .map_err(|e| LaunchError::failed(format!("cannot create {}: {e}", dir.root().display())))?;
    let _lock = dir.lock()?;
    // The secret stays across down and up (the nodes' data does too); a new
    // cluster gets a new one.
    let secret = Secret::load_or_create(&dir.secret_file())
        .map_err(|e| LaunchError::failed(e.to_string()))?;
    let cluster = cluster.with_secret(secret);
    std::fs::write(dir.cluster_file(), cluster.to_ron()).map_err(|e| {
        LaunchError::failed(format!(
            "cannot write {}: {e}",
            dir.cluster_file().display()
        ))
    })?;
    let started = Instant::now();
    let mut state = State {
        broken: opts.broken,
        ..State::default()
    };
    let mut children = Vec::new();
    for n in &cluster.nodes {
        let child = spawn(&dir, n.id, opts.broken)?;
        state.nodes.insert(
            n.id,
            NodeState {
                pid: Some(child.id()),
                ..NodeState::default()
            },
        );
        children.push((n.id, child));
    }
    dir.save(&state)?;
    drop(_lock);
    let leader = wait_for_leader(&cluster, opts.wait).map_err(|e| {
        LaunchError::failed(format!(
            "{e}; the nodes are still running: see `synod logs N`, or `synod down`"
        ))
    })?;
    Ok(Up {
        dir,
        cluster,
        seconds: started.elapsed().as_secs_f64(),
        leader,
        children,
    })
}

/// Start node `id` of `dir` as a process of its own session (Ctrl-C in a
/// terminal does not reach it; synod stops it by pid).
pub fn spawn(dir: &RunDir, id: NodeId, broken: Option<Rule>) -> Result<Child, LaunchError> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.node_log(id))
        .map_err(|e| {
            LaunchError::failed(format!("cannot open {}: {e}", dir.node_log(id).display()))
        })?;
    let err = log
        .try_clone()
        .map_err(|e| LaunchError::failed(e.to_string()))?;
    let mut cmd = Command::new(exe());
    cmd.arg("node")
        .arg("--cluster")
        .arg(dir.cluster_file())
        .arg("--id")
        .arg(id.to_string())
        .arg("--data")
        .arg(dir.node_dir(id))
        .arg("--secret")
        .arg(dir.secret_file())
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err);
    if let Some(rule) = broken {
        cmd.arg("--break").arg(rule.name());
    }
    process::detach(&mut cmd);
    cmd.spawn()
        .map_err(|e| LaunchError::failed(format!("cannot start node {id}: {e}")))
}

/// Poll every node until one leads and a majority names it; return its id.
pub fn wait_for_leader(cluster: &Cluster, wait: Duration) -> Result<NodeId, String> {
    let deadline = Instant::now() + wait;
    let need = crate::paxos::quorum::majority(cluster.nodes.len());
    loop {
        let statuses = query_all(cluster, Duration::from_millis(100));
        let leaders: Vec<NodeId> = statuses
            .values()
            .filter(|s| s.role == "leader")
            .map(|s| s.id)
            .collect();
        for l in leaders {
            let named = statuses.values().filter(|s| s.leader == Some(l)).count();
            if named >= need {
                return Ok(l);
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "no leader elected within {:.1} s ({} of {} nodes answered)",
                wait.as_secs_f64(),
                statuses.len(),
                cluster.nodes.len()
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Ask every node for its status, in parallel; those that answer.
pub fn query_all(cluster: &Cluster, timeout: Duration) -> BTreeMap<NodeId, NodeStatus> {
    std::thread::scope(|s| {
        let handles: Vec<_> = cluster
            .nodes
            .iter()
            .map(|n| {
                s.spawn(
                    move || match client::query(n.addr, cluster, &Request::Status, timeout) {
                        Ok(Response::Status(st)) => Some((n.id, *st)),
                        _ => None,
                    },
                )
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().ok().flatten())
            .collect()
    })
}

/// The rows of `synod status`.
pub fn status(dir: &RunDir) -> Result<(Cluster, Vec<NodeRow>), LaunchError> {
    let cluster = dir.cluster()?;
    let state = dir.state();
    let answers = query_all(&cluster, STATUS_TIMEOUT);
    let rows = cluster
        .nodes
        .iter()
        .map(|n| {
            let ns = state.nodes.get(&n.id).cloned().unwrap_or_default();
            let pid = ns.pid.filter(|&p| alive_node(p, dir, n.id));
            let st = answers.get(&n.id);
            let state = match (pid, ns.paused) {
                (Some(_), true) => "paused",
                (Some(_), false) => "up",
                (None, _) if st.is_some() => "up",
                (None, _) => "down",
            };
            NodeRow {
                id: n.id,
                addr: n.addr.to_string(),
                redis_addr: n.redis_addr.map(|a| a.to_string()),
                pid,
                state,
                role: st.map(|s| s.role.clone()),
                promised: st.map(|s| s.promised.to_string()),
                ballot: st.map(|s| s.ballot.to_string()),
                chosen: st.map(|s| s.chosen),
                applied: st.map(|s| s.applied),
                snapshot: st.map(|s| s.snapshot),
                disk_bytes: st.map(|s| s.disk_bytes),
                sessions: st.map(|s| s.sessions),
                digest: st.map(|s| format!("{:016x}", s.digest)),
                client_ops_per_s: st
                    .map(|s| s.client_ops as f64 / crate::net::CLIENT_WINDOW.as_secs_f64()),
                client_p50_ms: st.map(|s| s.client_p50_us as f64 / 1000.0),
                client_p99_ms: st.map(|s| s.client_p99_us as f64 / 1000.0),
                conflicts: st.map(|s| s.conflicts).filter(|&c| c > 0),
                first_conflicts: st.map(|s| s.first_conflicts.clone()).unwrap_or_default(),
                faults: st.map_or(String::new(), |s| s.faults.to_string()),
            }
        })
        .collect();
    Ok((cluster, rows))
}

/// The status table as text.
pub fn table(rows: &[NodeRow]) -> String {
    // A RESP column only when some node serves RESP: its port, or its whole
    // address when that is on another IP than the node's.
    let resp = rows.iter().any(|r| r.redis_addr.is_some());
    let resp_of = |r: &NodeRow| match &r.redis_addr {
        None => "-".to_string(),
        Some(a) => {
            let (ip, port) = a.rsplit_once(':').unwrap_or((a, ""));
            if r.addr.rsplit_once(':').map(|(i, _)| i) == Some(ip) {
                format!(":{port}")
            } else {
                a.clone()
            }
        }
    };
    let col = |text: String| {
        if resp {
            format!(" {text:<6}")
        } else {
            String::new()
        }
    };
    let mut s = format!(
        "{:>3}  {:<21}{} {:>8}  {:<7} {:<13} {:>8} {:>8} {:>8} {:>8} {:>9}  {}\n",
        "id",
        "addr",
        col("resp".into()),
        "pid",
        "state",
        "role",
        "promised",
        "chosen",
        "applied",
        "snapshot",
        "disk",
        "faults"
    );
    for r in rows {
        let dash = || "-".to_string();
        s.push_str(&format!(
            "{:>3}  {:<21}{} {:>8}  {:<7} {:<13} {:>8} {:>8} {:>8} {:>8} {:>9}  {}\n",
            r.id,
            r.addr,
            col(resp_of(r)),
            r.pid.map_or_else(dash, |p| p.to_string()),
            r.state,
            r.role.clone().unwrap_or_else(dash),
            r.promised.clone().unwrap_or_else(dash),
            r.chosen.map_or_else(dash, |c| c.to_string()),
            r.applied.map_or_else(dash, |c| c.to_string()),
            r.snapshot.map_or_else(dash, |c| c.to_string()),
            r.disk_bytes.map_or_else(dash, bytes),
            if r.faults == "none" { "" } else { &r.faults },
        ));
    }
    for r in rows {
        for (slot, kept, other) in &r.first_conflicts {
            s.push_str(&format!(
                "! node {}'s learner saw slot {slot} chosen twice: {kept}, then {other} (only a broken rule allows it)\n",
                r.id
            ));
        }
    }
    s
}

/// Bytes for people: 812 B, 12.3 KiB, 45.6 MiB.
fn bytes(n: u64) -> String {
    match n {
        n if n < 1 << 10 => format!("{n} B"),
        n if n < 1 << 20 => format!("{:.1} KiB", n as f64 / 1024.0),
        n if n < 1 << 30 => format!("{:.1} MiB", n as f64 / (1 << 20) as f64),
        n => format!("{:.2} GiB", n as f64 / (1 << 30) as f64),
    }
}

/// Stop every node synod started (SIGTERM, then SIGKILL after `grace`), and
/// forget their pids. With `wipe`, delete the run directory.
pub fn down(dir: &RunDir, wipe: bool, grace: Duration) -> Result<Vec<NodeId>, LaunchError> {
    let _lock = dir.lock()?;
    let mut state = dir.state();
    let mut stopped = Vec::new();
    let mut pids: Vec<(NodeId, u32)> = Vec::new();
    for (&id, n) in &state.nodes {
        if let Some(pid) = n.pid.filter(|&p| alive_node(p, dir, id)) {
            if n.paused {
                signal(pid, libc::SIGCONT);
            }
            signal(pid, libc::SIGTERM);
            pids.push((id, pid));
        }
    }
    let deadline = Instant::now() + grace;
    for (id, pid) in pids {
        while alive_node(pid, dir, id) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if alive_node(pid, dir, id) {
            signal(pid, libc::SIGKILL);
        }
        stopped.push(id);
    }
    for n in state.nodes.values_mut() {
        n.pid = None;
        n.paused = false;
    }
    state.launcher = None;
    dir.save(&state)?;
    drop(_lock);
    if wipe {
        std::fs::remove_dir_all(dir.root()).map_err(|e| {
            LaunchError::failed(format!("cannot remove {}: {e}", dir.root().display()))
        })?;
    }
    Ok(stopped)
}

fn known(cluster: &Cluster, id: NodeId) -> Result<(), LaunchError> {
    if cluster.node(id).is_none() {
        let ids: Vec<String> = cluster.ids().iter().map(|i| i.to_string()).collect();
        return Err(LaunchError::usage(format!(
            "no node {id} in cluster {:?} (its nodes: {})",
            cluster.name,
            ids.join(", ")
        )));
    }
    Ok(())
}

/// Run `act` on node `id`'s running process (under the state lock) and save
/// the state; errors if it does not run.
fn with_running(
    dir: &RunDir,
    id: NodeId,
    act: impl FnOnce(u32, &mut NodeState),
) -> Result<u32, LaunchError> {
    let cluster = dir.cluster()?;
    known(&cluster, id)?;
    let _lock = dir.lock()?;
    let mut state = dir.state();
    let ns = state.nodes.entry(id).or_default();
    let Some(pid) = ns.pid.filter(|&p| alive_node(p, dir, id)) else {
        ns.pid = None;
        return Err(LaunchError::failed(format!("node {id} is not running")));
    };
    act(pid, ns);
    dir.save(&state)?;
    Ok(pid)
}

/// SIGKILL node `id`. Returns its pid.
pub fn kill(dir: &RunDir, id: NodeId) -> Result<u32, LaunchError> {
    with_running(dir, id, |pid, ns| {
        signal(pid, libc::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(2);
        while alive_node(pid, dir, id) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        ns.pid = None;
        ns.paused = false;
    })
}

/// Start node `id` again from its own logs (stopping it first if it runs), and
/// return once it serves. Its message faults are applied again.
pub fn restart(dir: &RunDir, id: NodeId, wait: Duration) -> Result<u32, LaunchError> {
    let cluster = dir.cluster()?;
    known(&cluster, id)?;
    let lock = dir.lock()?;
    let mut state = dir.state();
    if let Some(pid) = state.nodes.get(&id).and_then(|n| n.pid) {
        if alive_node(pid, dir, id) {
            signal(pid, libc::SIGCONT);
            signal(pid, libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while alive_node(pid, dir, id) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if alive_node(pid, dir, id) {
                signal(pid, libc::SIGKILL);
            }
        }
    }
    let addr = cluster.node(id).expect("known").addr;
    // The old process may hold the port for a moment after it exits.
    let deadline = Instant::now() + Duration::from_secs(2);
    while TcpListener::bind(addr).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let child = spawn(dir, id, state.broken)?;
    let pid = child.id();
    let ns = state.nodes.entry(id).or_default();
    ns.pid = Some(pid);
    ns.paused = false;
    let faults = ns.faults.clone();
    dir.save(&state)?;
    drop(lock);
    reap(vec![(id, child)]);
    let deadline = Instant::now() + wait;
    loop {
        if let Ok(Response::Status(_)) =
            client::query(addr, &cluster, &Request::Status, Duration::from_millis(100))
        {
            break;
        }
        if Instant::now() >= deadline {
            return Err(LaunchError::failed(format!(
                "node {id} (pid {pid}) did not serve within {:.1} s; see `synod logs {id}`",
                wait.as_secs_f64()
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    if !faults.is_clear() {
        set_faults(&cluster, id, &faults)?;
    }
    Ok(pid)
}

/// SIGSTOP (`pause = true`) or SIGCONT node `id`.
pub fn pause(dir: &RunDir, id: NodeId, pause: bool) -> Result<u32, LaunchError> {
    with_running(dir, id, |pid, ns| {
        signal(pid, if pause { libc::SIGSTOP } else { libc::SIGCONT });
        ns.paused = pause;
    })
}

/// Reap `children` in the background as they exit, so none lingers as a
/// zombie (synod stops them by pid, not through these handles).
pub fn reap(children: Vec<(NodeId, Child)>) {
    for (_, mut child) in children {
        std::thread::spawn(move || {
            let _ = child.wait();
        });
    }
}

fn set_faults(cluster: &Cluster, id: NodeId, f: &NetFaults) -> Result<(), LaunchError> {
    let addr = cluster.node(id).expect("known").addr;
    match client::query(
        addr,
        cluster,
        &Request::SetFaults(f.clone()),
        Duration::from_secs(1),
    ) {
        Ok(Response::Ok) => Ok(()),
        Ok(other) => Err(LaunchError::failed(format!("node {id} refused: {other:?}"))),
        Err(e) => Err(LaunchError::failed(format!(
            "node {id} did not answer: {e}"
        ))),
    }
}

/// Change the message faults of the nodes in `ids` with `change`; remember them
/// for restarts. Nodes that are down keep the change for when they return.
pub fn change_faults(
    dir: &RunDir,
    ids: &[NodeId],
    change: impl Fn(NodeId, &mut NetFaults),
) -> Result<Vec<String>, LaunchError> {
    let cluster = dir.cluster()?;
    for &id in ids {
        known(&cluster, id)?;
    }
    let _lock = dir.lock()?;
    let mut state = dir.state();
    let mut skipped = Vec::new();
    for &id in ids {
        let ns = state.nodes.entry(id).or_default();
        change(id, &mut ns.faults);
        let running = ns.pid.is_some_and(|p| alive_node(p, dir, id)) && !ns.paused;
        if running {
            if let Err(e) = set_faults(&cluster, id, &ns.faults) {
                skipped.push(e.message);
            }
        } else {
            skipped.push(format!(
                "node {id} is not running; it gets the change when it restarts"
            ));
        }
    }
    dir.save(&state)?;
    Ok(skipped)
}

/// Parse a partition like "1,2|3,4,5" into sides; every node listed at most once.
/// `synod status --json`: the cluster's name, its quorums and every node's row.
pub fn status_json(dir: &RunDir) -> Result<serde_json::Value, LaunchError> {
    let (cluster, rows) = status(dir)?;
    let n = cluster.nodes.len();
    let q = cluster
        .proposer_config()
        .quorums(n, crate::paxos::Rules::ALL);
    Ok(serde_json::json!({
        "cluster": cluster.name,
        "quorums": {"phase1": q.phase1, "phase2": q.phase2, "flexible": cluster.quorums.is_some()},
        "nodes": rows,
    }))
}

/// Split the cluster into `sides`: each node drops what it sends to, and what
/// it hears from, the other sides; a node on no side is cut off alone. A line
/// that says what was done.
pub fn partition(dir: &RunDir, sides: &[Vec<NodeId>]) -> Result<String, LaunchError> {
    let cluster = dir.cluster().map_err(LaunchError::usage)?;
    let ids = cluster.ids();
    let mut sides: Vec<Vec<NodeId>> = sides.iter().filter(|s| !s.is_empty()).cloned().collect();
    let mut seen = Vec::new();
    for &id in sides.iter().flatten() {
        if !ids.contains(&id) {
            return Err(LaunchError::usage(format!(
                "no node {id} in cluster {:?}",
                cluster.name
            )));
        }
        if seen.contains(&id) {
            return Err(LaunchError::usage(format!("node {id} is on two sides")));
        }
        seen.push(id);
    }
    for &id in &ids {
        if !seen.contains(&id) {
            sides.push(vec![id]);
        }
    }
    if sides.len() < 2 {
        return Err(LaunchError::usage(
            "give at least two sides, like [[1,2],[3,4,5]]".to_string(),
        ));
    }
    let side_of = |id: NodeId| sides.iter().position(|s| s.contains(&id));
    let notes = change_faults(dir, &ids, |id, f| {
        f.blocked = ids
            .iter()
            .copied()
            .filter(|&o| side_of(o) != side_of(id))
            .collect();
    })?;
    let shown: Vec<String> = sides
        .iter()
        .map(|s| {
            s.iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    let mut text = format!("partitioned: {}", shown.join(" | "));
    for n in notes {
        text.push_str(&format!("; note: {n}"));
    }
    Ok(text)
}

pub fn parse_sides(spec: &str, cluster: &Cluster) -> Result<Vec<Vec<NodeId>>, LaunchError> {
    let mut seen = Vec::new();
    let mut sides = Vec::new();
    for part in spec.split('|') {
        let mut side = Vec::new();
        for tok in part.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let id: NodeId = tok.parse().map_err(|_| {
                LaunchError::usage(format!("bad partition {spec:?}: {tok:?} is not a node id; write sides like \"1,2|3,4,5\""))
            })?;
            known(cluster, id)?;
            if seen.contains(&id) {
                return Err(LaunchError::usage(format!(
                    "bad partition {spec:?}: node {id} is on two sides"
                )));
            }
            seen.push(id);
            side.push(id);
        }
        if !side.is_empty() {
            sides.push(side);
        }
    }
    if sides.len() < 2 && seen.len() == cluster.nodes.len() {
        return Err(LaunchError::usage(format!(
            "bad partition {spec:?}: give at least two sides, like \"1,2|3,4,5\""
        )));
    }
    // Nodes not listed are on a side of their own each.
    for id in cluster.ids() {
        if !seen.contains(&id) {
            sides.push(vec![id]);
        }
    }
    Ok(sides)
}
