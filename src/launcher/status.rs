//! `synod status`: ask every node, render the table or the JSON.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::*;

/// How long a status query may take per node.
pub const STATUS_TIMEOUT: Duration = Duration::from_millis(300);

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
    /// Message faults in force (and under `--netns` the kernel's); absent
    /// when none.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub faults: String,
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
    status_answers(dir).map(|(cluster, rows, _)| (cluster, rows))
}

/// Each node's answer to a status request.
type Answers = BTreeMap<NodeId, NodeStatus>;

/// The rows, and the answers they were made from.
fn status_answers(dir: &RunDir) -> Result<(Cluster, Vec<NodeRow>, Answers), LaunchError> {
    let cluster = dir.cluster()?;
    let state = dir.state();
    let answers = query_all(&cluster, STATUS_TIMEOUT);
    let hosts = state.netns.is_some();
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
                role: st.map(shown_role),
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
                faults: shown_faults(st.map(|s| &s.faults), &ns.faults, hosts),
            }
        })
        .collect();
    Ok((cluster, rows, answers))
}

/// The faults column: what the node says it injects, and under `--netns`
/// the partitions and loss the kernel does for it (from the state file:
/// the node does not know of them).
fn shown_faults(said: Option<&NetFaults>, asked: &NetFaults, hosts: bool) -> String {
    let mut parts = Vec::new();
    if hosts {
        let kernel = NetFaults {
            blocked: asked.blocked.clone(),
            loss_ppm: asked.loss_ppm,
            ..NetFaults::none()
        };
        if !kernel.is_clear() {
            parts.push(format!("{kernel} (kernel)"));
        }
    }
    if let Some(f) = said.filter(|f| !f.is_clear()) {
        parts.push(f.to_string());
    }
    parts.join("; ")
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

/// Parse a partition like "1,2|3,4,5" into sides; every node listed at most once.
/// `synod status --json`: the cluster's name, its quorums and every node's row.
pub fn status_json(dir: &RunDir) -> Result<serde_json::Value, LaunchError> {
    let (cluster, rows, answers) = status_answers(dir)?;
    // The configuration as the node that knows the newest one says; its
    // voters decide the quorums (the cluster file's nodes, before a change).
    let best = super::members::newest(&answers).cloned();
    let voters = best
        .as_ref()
        .map_or_else(|| cluster.initial_ids(), |b| b.voters.clone());
    let q = match (best.as_ref().map(|b| b.config), cluster.quorums) {
        (Some(0) | None, Some(q)) => q,
        _ => crate::paxos::Quorums::majority(voters.len().max(1)),
    };
    let config = best.map(|b| {
        serde_json::json!({
            "number": b.config,
            "voters": b.voters,
            "learners": b.learners,
            "next": b.next_config.map(|(number, at, voters)| serde_json::json!({"number": number, "at": at, "voters": voters})),
        })
    });
    Ok(serde_json::json!({
        "cluster": cluster.name,
        "quorums": {"phase1": q.phase1, "phase2": q.phase2, "flexible": cluster.quorums.is_some()},
        "config": config,
        "nodes": rows,
    }))
}

/// A node's role as `status` shows it: a follower that is a learner of the
/// configuration in force says `learner`, one it does not name `removed`.
fn shown_role(s: &NodeStatus) -> String {
    if s.role == "follower" && !s.voters.is_empty() && !s.voters.contains(&s.id) {
        if s.learners.contains(&s.id) {
            return "learner".into();
        }
        return "removed".into();
    }
    s.role.clone()
}
