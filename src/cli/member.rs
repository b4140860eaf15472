//! `member`: the cluster's configuration, and changes to it (etcdctl's
//! `member list/add/promote/remove`). A change goes to the leader as an
//! `Op::Reconfig`, which it proposes behind its guards (`Proposer::reconfigure`);
//! it governs the log from α slots after it is chosen.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};

use std::net::SocketAddr;

use super::{find, ClusterArg, Exit};
use crate::client::Client;
use crate::cluster::rundir::RunDir;
use crate::cluster::{Cluster, NodeSpec};
use crate::kv::Op;
use crate::launcher;
use crate::net::{Caller, NodeStatus, Secret};
use crate::paxos::{Contact, NodeId, Outcome};

/// A learner may be promoted once its applied slot is at most this far
/// behind the leader's first unchosen slot.
pub const PROMOTE_DISTANCE: u64 = 64;

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
        MemberCmd::Add(a) => add(a).map(drop),
        MemberCmd::Promote(a) => {
            let s = Session::open(&a.common)?;
            s.promote(a.id)
        }
        MemberCmd::Remove(a) => {
            let s = Session::open(&a.common)?;
            s.remove(a.id, a.keep_running)
        }
        MemberCmd::Replace(a) => replace(a),
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

/// One `member` command's cluster and settings.
struct Session {
    dir: RunDir,
    cluster: Cluster,
    force: bool,
    timeout: Duration,
}

impl Session {
    fn open(common: &Common) -> Result<Session, Exit> {
        let dir = find(&common.c)?;
        let cluster = dir.cluster()?;
        Ok(Session {
            dir,
            cluster,
            force: common.force,
            timeout: common.timeout,
        })
    }

    /// The configuration once no change is pending (one change at a time:
    /// a change chosen takes effect within a few heartbeats), refused if one
    /// still is after the timeout.
    fn settled_view(&self) -> Result<View, Exit> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let v = view(&self.cluster)?;
            match &v.best.next_config {
                None => return Ok(v),
                Some((number, at, _)) if Instant::now() >= deadline => {
                    return Err(Exit::failed(format!(
                        "configuration {number} takes effect at slot {at}; one change at a time"
                    )))
                }
                Some(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    /// Propose the configuration with `voters` and `learners` (the nodes
    /// added at run time reached by the addresses the run directory has, and
    /// the keys the secret gives them), asking again while a new leader
    /// settles; return its number and where it takes effect.
    fn change(&self, voters: Vec<NodeId>, learners: Vec<NodeId>) -> Result<(u64, u64), Exit> {
        let secret =
            Secret::load(&self.dir.secret_file()).map_err(|e| Exit::failed(e.to_string()))?;
        let contacts = voters
            .iter()
            .chain(&learners)
            .filter_map(|&id| self.cluster.node(id).filter(|n| n.joined))
            .map(|n| {
                let key = secret
                    .identity(&self.cluster.name, &Caller::Node(n.id))
                    .public();
                (
                    n.id,
                    Contact {
                        addr: n.addr.to_string(),
                        key: key.to_hex(),
                    },
                )
            })
            .collect();
        let op = Op::Reconfig {
            voters: voters.clone(),
            learners: learners.clone(),
            contacts,
            force: self.force,
        };
        let mut c = Client::new(self.cluster.clone());
        c.timeout = self.timeout;
        let started = Instant::now();
        let deadline = started + self.timeout;
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
                    ms(started)
                );
                Ok((number, at))
            }
            Outcome::Refused(why) => Err(Exit::failed(format!("refused: {why}"))),
            other => Err(Exit::failed(format!("the leader answered {other:?}"))),
        }
    }

    /// Add node `id` (known to the run directory) as a learner, and start
    /// its process if it does not run.
    fn add_learner(&self, id: NodeId) -> Result<(), Exit> {
        let v = self.settled_view()?;
        match membership(&v.best, id) {
            "removed" => {}
            m => return Err(Exit::failed(format!("node {id} is already a {m}"))),
        }
        let mut learners = v.best.learners.clone();
        learners.push(id);
        self.change(v.best.voters.clone(), learners)?;
        if !v.answers.contains_key(&id) {
            let pid = launcher::restart(&self.dir, id, self.timeout)?;
            eprintln!("node {id} started (pid {pid})");
        }
        Ok(())
    }

    /// Wait until learner `id` is within [`PROMOTE_DISTANCE`] of the leader.
    fn wait_in_sync(&self, id: NodeId) -> Result<(), Exit> {
        let started = Instant::now();
        loop {
            let v = view(&self.cluster)?;
            if let Some(s) = v.answers.get(&id) {
                let behind = v.best.chosen.saturating_sub(s.applied);
                if behind <= PROMOTE_DISTANCE {
                    eprintln!(
                        "node {id} is in sync ({behind} slots behind) after {:.1} ms",
                        ms(started)
                    );
                    return Ok(());
                }
            }
            if started.elapsed() >= self.timeout {
                return Err(Exit::failed(format!(
                    "node {id} did not catch up within {:.1} s",
                    self.timeout.as_secs_f64()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn promote(&self, id: NodeId) -> Result<(), Exit> {
        self.known(id)?;
        let v = self.settled_view()?;
        match membership(&v.best, id) {
            "learner" => {}
            "removed" => {
                return Err(Exit::failed(format!(
                    "node {id} is not a member; only a learner is promoted"
                )))
            }
            _ => {
                return Err(Exit::failed(format!(
                    "node {id} is a voter; only a learner is promoted"
                )))
            }
        }
        let behind = v
            .answers
            .get(&id)
            .map(|s| v.best.chosen.saturating_sub(s.applied));
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
        let learners = v
            .best
            .learners
            .iter()
            .copied()
            .filter(|&l| l != id)
            .collect();
        let mut voters = v.best.voters.clone();
        voters.push(id);
        self.change(voters, learners).map(drop)
    }

    /// Remove node `id`; once the configuration without it governs, stop
    /// its process unless `keep_running`.
    fn remove(&self, id: NodeId, keep_running: bool) -> Result<(), Exit> {
        self.known(id)?;
        let v = self.settled_view()?;
        if membership(&v.best, id) == "removed" {
            return Err(Exit::failed(format!("node {id} is not a member")));
        }
        let keep = |set: &Vec<NodeId>| set.iter().copied().filter(|&n| n != id).collect();
        let (number, at) = self.change(keep(&v.best.voters), keep(&v.best.learners))?;
        if keep_running {
            eprintln!("node {id} keeps running (--keep-running): the others refuse it once configuration {number} governs");
            return Ok(());
        }
        // Stop it once the new configuration governs: a removed leader hands
        // over there (the leader fills the gap with no-ops when idle).
        let deadline = Instant::now() + self.timeout;
        while Instant::now() < deadline {
            let v = view(&self.cluster)?;
            if v.best.config >= number && v.best.chosen >= at {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(pid) = launcher::stop(&self.dir, id)? {
            eprintln!("node {id} stopped (pid {pid})");
        }
        Ok(())
    }

    fn known(&self, id: NodeId) -> Result<(), Exit> {
        if self.cluster.node(id).is_none() {
            return Err(Exit::usage(format!(
                "no node {id} in cluster {:?}; a new node is added by its address: synod member add HOST:PORT",
                self.cluster.name
            )));
        }
        Ok(())
    }

    /// Record a new node on `addr` in the run directory: its id is `id`, or
    /// one above the highest.
    fn join(&mut self, addr: SocketAddr, id: Option<NodeId>) -> Result<NodeId, Exit> {
        let id = id.unwrap_or_else(|| self.cluster.ids().into_iter().max().unwrap_or(0) + 1);
        if id == 0 {
            return Err(Exit::usage("node ids start at 1"));
        }
        launcher::join(
            &self.dir,
            NodeSpec {
                id,
                addr,
                redis_addr: None,
                joined: true,
            },
        )?;
        self.cluster = self.dir.cluster()?;
        Ok(id)
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

/// `member add`: a new node on ADDR, or node N of the run directory again.
fn add(a: AddArgs) -> Result<NodeId, Exit> {
    let mut s = Session::open(&a.common)?;
    let started = Instant::now();
    let id = match (a.target.parse::<NodeId>(), a.target.parse::<SocketAddr>()) {
        (Ok(id), _) => {
            if a.id.is_some() {
                return Err(Exit::usage(
                    "--id names a new node; node N of the run directory keeps its id",
                ));
            }
            s.known(id)?;
            id
        }
        (_, Ok(addr)) => {
            s.settled_view()?;
            s.join(addr, a.id)?
        }
        _ => {
            return Err(Exit::usage(format!(
                "{:?} is neither a node id nor an address (host:port, e.g. 127.0.0.1:7106)",
                a.target
            )))
        }
    };
    s.add_learner(id)?;
    if a.promote {
        s.wait_in_sync(id)?;
        s.promote(id)?;
        eprintln!("node {id} added and promoted in {:.1} ms", ms(started));
    }
    Ok(id)
}

/// `member replace N ADDR`: add a node on ADDR, catch it up, promote it,
/// then remove N.
fn replace(a: ReplaceArgs) -> Result<(), Exit> {
    let mut s = Session::open(&a.common)?;
    s.known(a.id)?;
    let started = Instant::now();
    let v = s.settled_view()?;
    if membership(&v.best, a.id) != "voter" {
        return Err(Exit::failed(format!(
            "node {} is not a voter; replace takes a voter's place",
            a.id
        )));
    }
    let id = s.join(a.addr, a.new_id)?;
    s.add_learner(id)?;
    s.wait_in_sync(id)?;
    s.promote(id)?;
    s.remove(a.id, a.keep_running)?;
    eprintln!(
        "node {} replaced by node {id} on {} in {:.1} ms",
        a.id,
        a.addr,
        ms(started)
    );
    Ok(())
}
