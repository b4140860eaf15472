//! `member`: the cluster's configuration, and changes to it (etcdctl's
//! `member list/add/promote/remove`). A change goes to the leader as an
//! `Op::Reconfig`, which it proposes behind its guards (`Proposer::reconfigure`);
//! it governs the log from α slots after it is chosen.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};

use super::{find, ClusterArg, Exit};
use crate::client::Client;
use crate::cluster::Cluster;
use crate::kv::Op;
use crate::launcher;
use crate::net::NodeStatus;
use crate::paxos::{NodeId, Outcome};

/// A learner may be promoted once its applied slot is at most this far
/// behind the leader's first unchosen slot.
pub const PROMOTE_DISTANCE: u64 = 64;

#[derive(Debug, Subcommand)]
pub enum MemberCmd {
    /// One row a node: voter, learner or removed; up or down; how far behind the leader
    List(ListArgs),
    /// Add node N of the cluster file as a learner (it receives the log and votes in nothing)
    Add(ChangeArgs),
    /// Make learner N a voter (refused until it is within 64 slots of the leader)
    Promote(ChangeArgs),
    /// Take node N out of the configuration (voter or learner)
    Remove(ChangeArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    c: ClusterArg,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ChangeArgs {
    /// The node
    id: NodeId,
    #[command(flatten)]
    c: ClusterArg,
    /// Change even if fewer of the new voters are reachable than it needs to choose
    #[arg(long)]
    force: bool,
    /// Give up after this long (exit 1)
    #[arg(long, default_value = "10s", value_name = "D", value_parser = super::duration)]
    timeout: Duration,
}

pub fn run(cmd: MemberCmd) -> Result<(), Exit> {
    match cmd {
        MemberCmd::List(a) => list(a),
        MemberCmd::Add(a) => change(a, Kind::Add),
        MemberCmd::Promote(a) => change(a, Kind::Promote),
        MemberCmd::Remove(a) => change(a, Kind::Remove),
    }
}

/// The configuration as the most advanced answering node knows it.
struct View {
    answers: BTreeMap<NodeId, NodeStatus>,
    /// The answer of the leader, or of the node furthest along.
    best: NodeStatus,
}

fn view(cluster: &Cluster) -> Result<View, Exit> {
    let answers = launcher::query_all(cluster, launcher::STATUS_TIMEOUT);
    let best = answers
        .values()
        .max_by_key(|s| (s.role == "leader", s.chosen, s.config))
        .cloned()
        .ok_or_else(|| Exit::failed("no node of the cluster answered"))?;
    Ok(View { answers, best })
}

fn membership(best: &NodeStatus, id: NodeId) -> &'static str {
    if best.voters.contains(&id) {
        "voter"
    } else if best.learners.contains(&id) {
        "learner"
    } else {
        "removed"
    }
}

fn list(a: ListArgs) -> Result<(), Exit> {
    let dir = find(&a.c)?;
    let cluster = dir.cluster()?;
    let v = view(&cluster)?;
    let rows: Vec<(NodeId, String, &str, bool, Option<u64>)> = cluster
        .nodes
        .iter()
        .map(|n| {
            let st = v.answers.get(&n.id);
            let behind = st.map(|s| v.best.chosen.saturating_sub(s.applied));
            (
                n.id,
                n.addr.to_string(),
                membership(&v.best, n.id),
                st.is_some(),
                behind,
            )
        })
        .collect();
    if a.json {
        let nodes: Vec<serde_json::Value> = rows
            .iter()
            .map(|(id, addr, m, up, behind)| {
                serde_json::json!({"id": id, "addr": addr, "member": m, "up": up, "behind": behind})
            })
            .collect();
        let next = v.best.next_config.as_ref().map(
            |(number, at, voters)| serde_json::json!({"number": number, "at": at, "voters": voters}),
        );
        let out = serde_json::json!({
            "config": v.best.config,
            "voters": v.best.voters,
            "learners": v.best.learners,
            "next": next,
            "nodes": nodes,
        });
        println!("{out}");
        return Ok(());
    }
    println!(
        "configuration {}: voters {:?}, learners {:?}",
        v.best.config, v.best.voters, v.best.learners
    );
    if let Some((number, at, voters)) = &v.best.next_config {
        println!("configuration {number} (voters {voters:?}) governs from slot {at}");
    }
    println!(
        "{:>4}  {:<22} {:<8} {:<5} {:>7}",
        "id", "addr", "member", "state", "behind"
    );
    for (id, addr, m, up, behind) in rows {
        let behind = behind.map_or("-".to_string(), |b| b.to_string());
        let state = if up { "up" } else { "down" };
        println!("{id:>4}  {addr:<22} {m:<8} {state:<5} {behind:>7}");
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Add,
    Promote,
    Remove,
}

fn change(a: ChangeArgs, kind: Kind) -> Result<(), Exit> {
    let dir = find(&a.c)?;
    let cluster = dir.cluster()?;
    if cluster.node(a.id).is_none() {
        return Err(Exit::usage(format!(
            "no node {} in cluster {:?} (nodes are added from the cluster file)",
            a.id, cluster.name
        )));
    }
    let v = view(&cluster)?;
    if let Some((number, at, _)) = &v.best.next_config {
        return Err(Exit::failed(format!(
            "configuration {number} takes effect at slot {at}; one change at a time"
        )));
    }
    let mut voters = v.best.voters.clone();
    let mut learners = v.best.learners.clone();
    let id = a.id;
    match (kind, membership(&v.best, id)) {
        (Kind::Add, "removed") => learners.push(id),
        (Kind::Add, m) => {
            return Err(Exit::failed(format!("node {id} is already a {m}")));
        }
        (Kind::Promote, "learner") => {
            let applied = v.answers.get(&id).map(|s| s.applied);
            let behind = applied.map(|ap| v.best.chosen.saturating_sub(ap));
            match behind {
                Some(d) if d <= PROMOTE_DISTANCE => {}
                Some(d) => {
                    return Err(Exit::failed(format!(
                        "node {id} is {d} slots behind the leader; it can be promoted within {PROMOTE_DISTANCE}"
                    )))
                }
                None => {
                    return Err(Exit::failed(format!(
                        "node {id} does not answer; a learner is promoted once it is in sync"
                    )))
                }
            }
            learners.retain(|&l| l != id);
            voters.push(id);
        }
        (Kind::Promote, m) => {
            let what = if m == "removed" {
                "not a member"
            } else {
                "a voter"
            };
            return Err(Exit::failed(format!(
                "node {id} is {what}; only a learner is promoted"
            )));
        }
        (Kind::Remove, "removed") => {
            return Err(Exit::failed(format!("node {id} is not a member")));
        }
        (Kind::Remove, _) => {
            voters.retain(|&n| n != id);
            learners.retain(|&n| n != id);
        }
    }
    let op = Op::Reconfig {
        voters: voters.clone(),
        learners: learners.clone(),
        force: a.force,
    };
    let mut c = Client::new(cluster.clone());
    c.timeout = a.timeout;
    let started = Instant::now();
    let deadline = started + a.timeout;
    // A new leader refuses until an entry of its own ballot is chosen (it
    // proposes a no-op at once): ask again for a while.
    let outcome = loop {
        match c.change(op.clone())? {
            Outcome::Refused(why) if why.ends_with("; retry") && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => break other,
        }
    };
    match outcome {
        Outcome::Reconfigured { number, at } => {
            eprintln!(
                "configuration {number}: voters {voters:?}, learners {learners:?}; chosen in {:.1} ms, governs from slot {at}",
                started.elapsed().as_secs_f64() * 1e3
            );
            Ok(())
        }
        Outcome::Refused(why) => Err(Exit::failed(format!("refused: {why}"))),
        other => Err(Exit::failed(format!("the leader answered {other:?}"))),
    }
}
