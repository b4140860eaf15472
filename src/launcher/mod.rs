//! Spawn, supervise and stop node processes. `status` (the table and the
//! JSON) and the faults applied through the nodes are rooms of their own.
//!
//! synod signals only the process ids it recorded in the run directory's state
//! file, and before it signals one it checks that the process is still the
//! `synod node` it started (a recycled pid is left alone).

mod faults;
pub mod members;
pub mod netns;
pub mod process;
mod remote;
mod status;
mod supervise;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::client;
use crate::cluster::rundir::{NodeState, RunDir, RunDirError, State, StateError};
use crate::cluster::{Cluster, NodeSpec};
use crate::net::auth::SecretError;
use crate::net::{NetFaults, NodeStatus, Request, Response, Secret};
use crate::paxos::{NodeId, Rule};
use faults::set_faults;
pub use faults::{change_faults, parse_sides, partition};
use process::{alive_node, signal_node};
pub use remote::{log as remote_log, Host};
pub use status::{query_all, status, status_json, table, NodeRow, STATUS_TIMEOUT};
pub use supervise::{print_log, supervise};

/// Why a launcher operation did not happen. The kind decides the exit code
/// (`cli::Exit`) and the web page's HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The user's input cannot be used: a node not in the cluster, a port
    /// taken, a partition that does not split.
    #[error("{0}")]
    Usage(String),
    /// The operation failed: a node that does not run, start or answer.
    #[error("{0}")]
    Failed(String),
    /// No leader was elected in time.
    #[error("no leader elected within {:.1} s ({answered} of {nodes} nodes answered)", waited.as_secs_f64())]
    NoLeader {
        /// How long it waited.
        waited: Duration,
        /// Nodes that answered the last poll.
        answered: usize,
        /// Nodes in the cluster.
        nodes: usize,
    },
    /// The run directory cannot be found or read.
    #[error(transparent)]
    RunDir(#[from] RunDirError),
    /// The state file cannot be locked or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// A credential file cannot be read or written.
    #[error(transparent)]
    Credentials(#[from] SecretError),
}

/// Options of `up`.
#[derive(Clone, Debug, Default)]
pub struct UpOptions {
    /// A rule to run the nodes without (teaching runs).
    pub broken: Option<Rule>,
    /// How long to wait for a leader.
    pub wait: Duration,
    /// Every node in a network namespace of its own (`netns`).
    pub netns: bool,
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
pub fn up(base: &Path, mut cluster: Cluster, opts: &UpOptions) -> Result<Up, LaunchError> {
    let dir = RunDir::new(base, &cluster.name);
    if dir.cluster_file().exists() {
        // Nodes added at run time stay members across down and up: their
        // configuration is in the nodes' logs, their addresses here.
        if let Ok(before) = Cluster::load(&dir.cluster_file()) {
            for n in before.nodes.into_iter().filter(|n| n.joined) {
                if cluster.node(n.id).is_none() {
                    cluster.nodes.push(n);
                }
            }
        }
        let _lock = dir.lock()?;
        let state = dir.state();
        let running: Vec<NodeId> = state
            .nodes
            .iter()
            .filter(|(id, n)| n.pid.is_some_and(|p| alive_node(p, &dir, **id)))
            .map(|(id, _)| *id)
            .collect();
        if !running.is_empty() {
            return Err(LaunchError::Failed(format!(
                "cluster {:?} is already up ({} node(s) running); `synod down` first, or `synod status`",
                cluster.name,
                running.len()
            )));
        }
    }
    if opts.netns {
        if let Some(why) = netns::unsupported() {
            return Err(LaunchError::Usage(why));
        }
    }
    // A port on another host (ssh) or in a namespace of its own is not ours
    // to try.
    for n in cluster
        .nodes
        .iter()
        .filter(|n| !opts.netns && n.ssh.is_none())
    {
        for (what, addr) in
            std::iter::once(("port", n.addr)).chain(n.redis_addr.map(|r| ("RESP port", r)))
        {
            if let Err(e) = TcpListener::bind(addr) {
                return Err(LaunchError::Usage(format!(
                    "node {}: {what} {} ({addr}) cannot be used: {e}",
                    n.id,
                    addr.port(),
                )));
            }
        }
    }
    std::fs::create_dir_all(dir.root())
        .map_err(|e| LaunchError::Failed(format!("cannot create {}: {e}", dir.root().display())))?;
    let _lock = dir.lock()?;
    // Hosts left by an earlier run whose nodes all died are removed first.
    if let Some(old) = dir.state().netns {
        netns::remove(&old);
    }
    let hosts = if opts.netns {
        let made = netns::create(&cluster)?;
        cluster = netns::mapped(&cluster, made.subnet);
        Some(made)
    } else {
        None
    };
    let mut state = State {
        broken: opts.broken,
        netns: hosts.clone(),
        ..State::default()
    };
    let started = Instant::now();
    let children = start_all(&dir, cluster, &mut state).inspect_err(|_| {
        if let Some(h) = &hosts {
            netns::remove(h);
        }
    });
    let (cluster, children) = children?;
    dir.save(&state)?;
    drop(_lock);
    let leader = wait_for_leader(&cluster, opts.wait).map_err(|e| {
        LaunchError::Failed(format!(
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

/// Write the cluster's credentials and file and spawn every node, recording
/// them in `state` (not yet saved). On failure the nodes spawned are killed.
type Started = (Cluster, Vec<(NodeId, Child)>);
fn start_all(dir: &RunDir, cluster: Cluster, state: &mut State) -> Result<Started, LaunchError> {
    // The secret stays across down and up (the nodes' data does too); a new
    // cluster gets a new one.
    let secret = Secret::load_or_create(&dir.secret_file())?;
    issue_shared(dir, &secret, &cluster)?;
    let cluster = cluster.with_secret(secret);
    write_cluster(dir, &cluster)?;
    let mut children: Vec<(NodeId, Child)> = Vec::new();
    for n in &cluster.nodes {
        let (pid, child) = match spawn_in(dir, n.id, state.broken, state.netns.as_ref()) {
            Ok(c) => c,
            Err(e) => {
                for (_, mut c) in children {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                for (&id, n) in &state.nodes {
                    if let Some(pid) = n.pid {
                        signal_node(dir, id, pid, libc::SIGKILL);
                    }
                }
                return Err(e);
            }
        };
        state.nodes.insert(
            n.id,
            NodeState {
                pid: Some(pid),
                ..NodeState::default()
            },
        );
        children.extend(child.map(|c| (n.id, c)));
    }
    Ok((cluster, children))
}

/// Write the credentials every node and RESP user reads, derived from the
/// master secret: the public roster (`keys.ron`), the client key and the RESP
/// password (both 0600).
fn issue_shared(dir: &RunDir, secret: &Secret, cluster: &Cluster) -> Result<(), LaunchError> {
    secret
        .roster(&cluster.name, &cluster.ids())
        .save(&dir.keys_file())?;
    secret
        .identity(&cluster.name, &crate::net::Caller::Client)
        .save(&dir.client_key_file())?;
    crate::net::auth::write_private(
        &dir.resp_password_file(),
        &format!("{}\n", secret.resp_password(&cluster.name)),
    )?;
    Ok(())
}

/// Write node `id`'s own key into its data directory (0600): only it reads
/// it; it is derived again from the master secret each time the node starts.
fn issue_identity(dir: &RunDir, id: NodeId) -> Result<(), LaunchError> {
    let secret = Secret::load(&dir.secret_file())?;
    let name = dir
        .root()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    std::fs::create_dir_all(dir.node_dir(id)).map_err(|e| {
        LaunchError::Failed(format!("cannot create {}: {e}", dir.node_dir(id).display()))
    })?;
    secret
        .identity(&name, &crate::net::Caller::Node(id))
        .save(&dir.identity_file(id))?;
    Ok(())
}

/// Start node `id` of `dir` as a process of its own session (Ctrl-C in a
/// terminal does not reach it; synod stops it by pid).
pub fn spawn(
    dir: &RunDir,
    id: NodeId,
    broken: Option<Rule>,
) -> Result<(u32, Option<Child>), LaunchError> {
    spawn_in(dir, id, broken, dir.state().netns.as_ref())
}

/// [`spawn`], in node `id`'s namespace of `hosts` if there is one.
fn spawn_in(
    dir: &RunDir,
    id: NodeId,
    broken: Option<Rule>,
    hosts: Option<&netns::NetNs>,
) -> Result<(u32, Option<Child>), LaunchError> {
    issue_identity(dir, id)?;
    if let Some(host) = remote::Host::of(dir, id) {
        // On another host: started there over SSH, known here by its pid.
        let pid = remote::start(dir, &host, id, broken, &exe())?;
        return Ok((pid, None));
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.node_log(id))
        .map_err(|e| {
            LaunchError::Failed(format!("cannot open {}: {e}", dir.node_log(id).display()))
        })?;
    let err = log
        .try_clone()
        .map_err(|e| LaunchError::Failed(e.to_string()))?;
    let mut cmd = match hosts.and_then(|h| netns::command(h, id, &exe())) {
        Some(cmd) => cmd,
        None => Command::new(exe()),
    };
    cmd.arg("node")
        .arg("--cluster")
        .arg(dir.cluster_file())
        .arg("--id")
        .arg(id.to_string())
        .arg("--data")
        .arg(dir.node_dir(id))
        .arg("--identity")
        .arg(dir.identity_file(id))
        .arg("--client-key")
        .arg(dir.client_key_file())
        .arg("--keys")
        .arg(dir.keys_file())
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err);
    if let Some(rule) = broken {
        cmd.arg("--break").arg(rule.name());
    }
    process::detach(&mut cmd);
    let child = cmd
        .spawn()
        .map_err(|e| LaunchError::Failed(format!("cannot start node {id}: {e}")))?;
    Ok((child.id(), Some(child)))
}

/// Poll every node until one leads and a majority names it; return its id.
pub fn wait_for_leader(cluster: &Cluster, wait: Duration) -> Result<NodeId, LaunchError> {
    let deadline = Instant::now() + wait;
    let need = crate::paxos::quorum::majority(cluster.initial_ids().len());
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
            return Err(LaunchError::NoLeader {
                waited: wait,
                answered: statuses.len(),
                nodes: cluster.nodes.len(),
            });
        }
        std::thread::sleep(Duration::from_millis(5));
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
                signal_node(dir, id, pid, libc::SIGCONT);
            }
            signal_node(dir, id, pid, libc::SIGTERM);
            pids.push((id, pid));
        }
    }
    let deadline = Instant::now() + grace;
    for (id, pid) in pids {
        while alive_node(pid, dir, id) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if alive_node(pid, dir, id) {
            signal_node(dir, id, pid, libc::SIGKILL);
        }
        stopped.push(id);
    }
    for n in state.nodes.values_mut() {
        n.pid = None;
        n.paused = false;
    }
    state.launcher = None;
    if let Some(hosts) = state.netns.take() {
        netns::remove(&hosts);
    }
    dir.save(&state)?;
    drop(_lock);
    if wipe {
        std::fs::remove_dir_all(dir.root()).map_err(|e| {
            LaunchError::Failed(format!("cannot remove {}: {e}", dir.root().display()))
        })?;
    }
    Ok(stopped)
}

fn known(cluster: &Cluster, id: NodeId) -> Result<(), LaunchError> {
    if cluster.node(id).is_none() {
        let ids: Vec<String> = cluster.ids().iter().map(|i| i.to_string()).collect();
        return Err(LaunchError::Usage(format!(
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
        return Err(LaunchError::Failed(format!("node {id} is not running")));
    };
    act(pid, ns);
    dir.save(&state)?;
    Ok(pid)
}

/// SIGKILL node `id`. Returns its pid.
pub fn kill(dir: &RunDir, id: NodeId) -> Result<u32, LaunchError> {
    with_running(dir, id, |pid, ns| {
        signal_node(dir, id, pid, libc::SIGKILL);
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
        terminate(dir, id, pid);
    }
    let node = cluster.node(id).expect("known");
    let addr = node.addr;
    // The old process may hold the port for a moment after it exits (in its
    // own namespace or on another host, the port is not ours to try).
    let here = state.netns.is_none() && node.ssh.is_none();
    let deadline = Instant::now() + Duration::from_secs(2);
    while here && TcpListener::bind(addr).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let (pid, child) = spawn(dir, id, state.broken)?;
    let ns = state.nodes.entry(id).or_default();
    ns.pid = Some(pid);
    ns.paused = false;
    let mut faults = ns.faults.clone();
    if state.netns.is_some() {
        faults = netns::node_share(&faults);
    }
    dir.save(&state)?;
    drop(lock);
    reap(child.map(|c| (id, c)).into_iter().collect());
    let deadline = Instant::now() + wait;
    loop {
        if let Ok(Response::Status(_)) =
            client::query(addr, &cluster, &Request::Status, Duration::from_millis(100))
        {
            break;
        }
        if Instant::now() >= deadline {
            return Err(LaunchError::Failed(format!(
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

/// SIGTERM node `id`'s process `pid` (woken first if paused), and SIGKILL
/// it if it still runs after 5 s.
fn terminate(dir: &RunDir, id: NodeId, pid: u32) {
    if alive_node(pid, dir, id) {
        signal_node(dir, id, pid, libc::SIGCONT);
        signal_node(dir, id, pid, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive_node(pid, dir, id) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if alive_node(pid, dir, id) {
            signal_node(dir, id, pid, libc::SIGKILL);
        }
    }
}

/// Stop node `id` cleanly (SIGTERM; SIGKILL after 5 s): what `member remove`
/// does to the node it removed. Returns its pid, if it ran.
pub fn stop(dir: &RunDir, id: NodeId) -> Result<Option<u32>, LaunchError> {
    known(&dir.cluster()?, id)?;
    let _lock = dir.lock()?;
    let mut state = dir.state();
    let ns = state.nodes.entry(id).or_default();
    let pid = ns.pid.take().filter(|&p| alive_node(p, dir, id));
    if let Some(pid) = pid {
        terminate(dir, id, pid);
    }
    ns.paused = false;
    dir.save(&state)?;
    Ok(pid)
}

/// Record `node`, a node the cluster file did not name, in the run
/// directory (`joined`: not in configuration 0) and give it credentials;
/// `restart` then starts it. Refused if its id or an address is taken.
pub fn join(dir: &RunDir, mut node: NodeSpec) -> Result<(), LaunchError> {
    let _lock = dir.lock()?;
    let mut cluster = dir.cluster()?;
    let mut state = dir.state();
    if let Some(hosts) = &mut state.netns {
        // A host of its own, at the port asked for.
        let ip = netns::node_ip(hosts.subnet, node.id);
        node.addr = std::net::SocketAddr::new(ip.into(), node.addr.port());
        if cluster.node(node.id).is_none() {
            netns::add_node(&cluster, hosts, node.id)?;
            dir.save(&state)?;
        }
    }
    if cluster.node(node.id).is_some() {
        return Err(LaunchError::Usage(format!(
            "node {} is already in cluster {:?}; pick another id with --id",
            node.id, cluster.name
        )));
    }
    for n in &cluster.nodes {
        if n.addr == node.addr || n.redis_addr == Some(node.addr) {
            return Err(LaunchError::Usage(format!(
                "{} is node {}'s address already",
                node.addr, n.id
            )));
        }
    }
    if let Err(e) = TcpListener::bind(node.addr).map(drop).or_else(|e| {
        // In a namespace of its own, the address is free by construction.
        if state.netns.is_some() {
            Ok(())
        } else {
            Err(e)
        }
    }) {
        return Err(LaunchError::Usage(format!(
            "{} cannot be used for node {}: {e}",
            node.addr, node.id
        )));
    }
    cluster.nodes.push(NodeSpec {
        joined: true,
        ..node
    });
    let secret = Secret::load(&dir.secret_file())?;
    issue_shared(dir, &secret, &cluster)?;
    write_cluster(dir, &cluster)
}

/// Forget node `id`, recorded by [`join`] and never made a member (its
/// change was refused): the run directory no longer lists it.
pub fn unjoin(dir: &RunDir, id: NodeId) -> Result<(), LaunchError> {
    let _lock = dir.lock()?;
    let mut cluster = dir.cluster()?;
    cluster.nodes.retain(|n| !(n.joined && n.id == id));
    write_cluster(dir, &cluster)
}

fn write_cluster(dir: &RunDir, cluster: &Cluster) -> Result<(), LaunchError> {
    let tmp = dir.root().join("cluster.ron.tmp");
    std::fs::write(&tmp, cluster.to_ron())
        .and_then(|()| std::fs::rename(&tmp, dir.cluster_file()))
        .map_err(|e| {
            LaunchError::Failed(format!(
                "cannot write {}: {e}",
                dir.cluster_file().display()
            ))
        })
}

/// SIGSTOP (`pause = true`) or SIGCONT node `id`.
pub fn pause(dir: &RunDir, id: NodeId, pause: bool) -> Result<u32, LaunchError> {
    with_running(dir, id, |pid, ns| {
        signal_node(
            dir,
            id,
            pid,
            if pause { libc::SIGSTOP } else { libc::SIGCONT },
        );
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
