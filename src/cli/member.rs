//! `member`: the cluster's configuration, and changes to it (etcdctl's
//! `member list/add/promote/remove`). A change goes to the leader as an
//! `Op::Reconfig`, which it proposes behind its guards (`Proposer::reconfigure`);
//! it governs the log from α slots after it is chosen.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::{find, ClusterArg, Exit};
use crate::launcher::members::{self, membership, view, Session};
use crate::paxos::NodeId;

#[derive(Debug, Subcommand)]
pub enum MemberCmd {
    /// One row a node: voter, learner or removed; up or down; how far behind the leader
    List(ListArgs),
    /// Add a node as a learner: ADDR starts a new node there; N adds node N of the run directory again
    Add(AddArgs),
    /// Make learner N a voter (refused until it is within 64 slots of the leader)
    Promote(ChangeArgs),
    /// Take node N out of the configuration and stop its process
    Remove(RemoveArgs),
    /// Replace node N by a new node on ADDR: add, catch up, promote, then remove N
    Replace(ReplaceArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    c: ClusterArg,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

/// What every change takes.
#[derive(Debug, Args)]
pub struct Common {
    #[command(flatten)]
    c: ClusterArg,
    /// Change even if fewer of the new voters are reachable than it needs to choose
    #[arg(long)]
    force: bool,
    /// Give up after this long (exit 1)
    #[arg(long, default_value = "10s", value_name = "D", value_parser = super::duration)]
    timeout: Duration,
}

#[derive(Debug, Args)]
pub struct ChangeArgs {
    /// The node
    id: NodeId,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Where a new node listens (host:port), or the id of a node the run directory knows
    #[arg(value_name = "ADDR|N")]
    target: String,
    /// The new node's id (default: one above the highest)
    #[arg(long, value_name = "N")]
    id: Option<NodeId>,
    /// Wait until it is in sync, then promote it to voter
    #[arg(long)]
    promote: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The node
    id: NodeId,
    /// Leave its process running (it is refused by the others, and says so)
    #[arg(long)]
    keep_running: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
pub struct ReplaceArgs {
    /// The node to replace
    id: NodeId,
    /// Where the new node listens (host:port)
    addr: SocketAddr,
    /// The new node's id (default: one above the highest)
    #[arg(long = "new-id", value_name = "N")]
    new_id: Option<NodeId>,
    /// Leave the replaced node's process running
    #[arg(long)]
    keep_running: bool,
    #[command(flatten)]
    common: Common,
}

pub fn run(cmd: MemberCmd) -> Result<(), Exit> {
    match cmd {
        MemberCmd::List(a) => list(a),
        MemberCmd::Add(a) => {
            let mut s = session(&a.common)?;
            members::add(&mut s, &a.target, a.id, a.promote)?;
            Ok(())
        }
        MemberCmd::Promote(a) => Ok(session(&a.common)?.promote(a.id)?),
        MemberCmd::Remove(a) => Ok(session(&a.common)?.remove(a.id, a.keep_running)?),
        MemberCmd::Replace(a) => {
            let mut s = session(&a.common)?;
            members::replace(&mut s, a.id, a.addr, a.new_id, a.keep_running)?;
            Ok(())
        }
    }
}

fn session(common: &Common) -> Result<Session, Exit> {
    let dir = find(&common.c)?;
    Ok(Session::open(&dir, common.force, common.timeout)?)
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
