//! Membership changes as the launcher makes them (`synod member`, the chaos
//! `membership` nemesis, the web page): propose a configuration to the
//! leader as an `Op::Reconfig`, start a node added at run time, stop one
//! removed. The protocol side is `paxos::config` and
//! `Proposer::reconfigure`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::LaunchError;
use crate::client::Client;
use crate::cluster::rundir::RunDir;
use crate::cluster::{Cluster, NodeSpec};
use crate::kv::Op;
use crate::net::{Caller, NodeStatus, Secret};
use crate::paxos::{Contact, NodeId, Outcome};

/// A learner may be promoted once its applied slot is at most this far
/// behind the leader's first unchosen slot.
pub const PROMOTE_DISTANCE: u64 = 64;

/// What a promotion refused for the distance says.
const BEHIND: &str = "slots behind the leader";

type Result<T> = std::result::Result<T, LaunchError>;

fn failed(m: impl Into<String>) -> LaunchError {
    LaunchError::Failed(m.into())
}

/// The configuration as the most advanced answering node knows it.
pub struct View {
    /// Every node that answered.
    pub answers: BTreeMap<NodeId, NodeStatus>,
    /// The answer of the leader, or of the node furthest along.
    pub best: NodeStatus,
}

pub fn view(cluster: &Cluster) -> Result<View> {
    let answers = super::query_all(cluster, super::STATUS_TIMEOUT);
    let best = newest(&answers)
        .cloned()
        .ok_or_else(|| failed("no node of the cluster answered"))?;
    Ok(View { answers, best })
}

/// The answer to believe about the configuration: configurations only move
/// forward, so the node that knows the newest (in force or pending), even
/// over a node that still thinks it leads (cut off, it may know an older
/// one); then the furthest along.
pub fn newest(answers: &BTreeMap<NodeId, NodeStatus>) -> Option<&NodeStatus> {
    answers.values().max_by_key(|s| {
        let newest = s.next_config.as_ref().map_or(s.config, |(n, _, _)| *n);
        (newest, s.chosen, s.role == "leader")
    })
}

/// Node `id` in the configuration `best` shows: voter, learner or removed.
pub fn membership(best: &NodeStatus, id: NodeId) -> &'static str {
    if best.voters.contains(&id) {
        "voter"
    } else if best.learners.contains(&id) {
        "learner"
    } else {
        "removed"
    }
}

/// One `member` command's cluster and settings.
pub struct Session {
    dir: RunDir,
    /// The cluster, with the nodes added at run time.
    pub cluster: Cluster,
    /// Change even if too few of the new voters are reachable.
    pub force: bool,
    /// How long each step may take.
    pub timeout: Duration,
    /// Say each step on standard error (the CLI does; chaos does not).
    pub verbose: bool,
}

impl Session {
    /// A session on the cluster of `dir`.
    pub fn open(dir: &RunDir, force: bool, timeout: Duration) -> Result<Session> {
        Ok(Session {
            cluster: dir.cluster()?,
            dir: dir.clone(),
            force,
            timeout,
            verbose: true,
        })
    }

    fn say(&self, what: String) {
        if self.verbose {
            eprintln!("{what}");
        }
    }

    /// The configuration once no change is pending (one change at a time:
    /// a change chosen takes effect within a few heartbeats), refused if one
    /// still is after the timeout.
    pub fn settled_view(&self) -> Result<View> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let v = view(&self.cluster)?;
            match &v.best.next_config {
                None => return Ok(v),
                Some((number, at, _)) if Instant::now() >= deadline => {
                    return Err(failed(format!(
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
    pub fn change(&self, voters: Vec<NodeId>, learners: Vec<NodeId>) -> Result<(u64, u64)> {
        let secret = Secret::load(&self.dir.secret_file()).map_err(|e| failed(e.to_string()))?;
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
            match c.change(op.clone()).map_err(|e| failed(e.to_string()))? {
                Outcome::Refused(why) if why.ends_with("; retry") && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => break other,
            }
        };
        match outcome {
            Outcome::Reconfigured { number, at } => {
                self.say(format!(
                    "configuration {number}: voters {voters:?}, learners {learners:?}; chosen in {:.1} ms, governs from slot {at}",
                    ms(started)
                ));
                Ok((number, at))
            }
            Outcome::Refused(why) => Err(failed(format!("refused: {why}"))),
            other => Err(failed(format!("the leader answered {other:?}"))),
        }
    }

    /// Add node `id` (known to the run directory) as a learner, and start
    /// its process if it does not run.
    pub fn add_learner(&self, id: NodeId) -> Result<()> {
        let v = self.settled_view()?;
        match membership(&v.best, id) {
            "removed" => {}
            m => return Err(failed(format!("node {id} is already a {m}"))),
        }
        let mut learners = v.best.learners.clone();
        learners.push(id);
        self.change(v.best.voters.clone(), learners)?;
        if !v.answers.contains_key(&id) {
            let pid = super::restart(&self.dir, id, self.timeout)?;
            self.say(format!("node {id} started (pid {pid})"));
        }
        Ok(())
    }

    /// Wait until learner `id` is within [`PROMOTE_DISTANCE`] of the leader.
    pub fn wait_in_sync(&self, id: NodeId) -> Result<()> {
        let started = Instant::now();
        loop {
            let v = view(&self.cluster)?;
            if let Some(s) = v.answers.get(&id) {
                let behind = v.best.chosen.saturating_sub(s.applied);
                if behind <= PROMOTE_DISTANCE {
                    self.say(format!(
                        "node {id} is in sync ({behind} slots behind) after {:.1} ms",
                        ms(started)
                    ));
                    return Ok(());
                }
            }
            if started.elapsed() >= self.timeout {
                return Err(failed(format!(
                    "node {id} did not catch up within {:.1} s",
                    self.timeout.as_secs_f64()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait until learner `id` is in sync, then promote it. The leader may
    /// move on between the two looks (an idle leader fills 64 no-ops up to
    /// the learner's own change), so a promotion refused for the distance
    /// waits and tries again, within the session's timeout.
    pub fn catch_up_and_promote(&self, id: NodeId) -> Result<()> {
        let started = Instant::now();
        loop {
            self.wait_in_sync(id)?;
            match self.promote(id) {
                Err(LaunchError::Failed(why))
                    if why.contains(BEHIND) && started.elapsed() < self.timeout =>
                {
                    self.say(format!("{why}; waiting again"));
                }
                other => return other,
            }
        }
    }

    pub fn promote(&self, id: NodeId) -> Result<()> {
        self.known(id)?;
        let v = self.settled_view()?;
        match membership(&v.best, id) {
            "learner" => {}
            "removed" => {
                return Err(failed(format!(
                    "node {id} is not a member; only a learner is promoted"
                )))
            }
            _ => {
                return Err(failed(format!(
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
                return Err(failed(format!(
                    "node {id} is {d} {BEHIND}; it can be promoted within {PROMOTE_DISTANCE}"
                )))
            }
            None => {
                return Err(failed(format!(
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
    pub fn remove(&self, id: NodeId, keep_running: bool) -> Result<()> {
        self.known(id)?;
        let v = self.settled_view()?;
        if membership(&v.best, id) == "removed" {
            return Err(failed(format!("node {id} is not a member")));
        }
        let keep = |set: &Vec<NodeId>| set.iter().copied().filter(|&n| n != id).collect();
        let (number, at) = self.change(keep(&v.best.voters), keep(&v.best.learners))?;
        if keep_running {
            self.say(format!("node {id} keeps running (--keep-running): the others refuse it once configuration {number} governs"));
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
        if let Some(pid) = super::stop(&self.dir, id)? {
            self.say(format!("node {id} stopped (pid {pid})"));
        }
        Ok(())
    }

    pub fn known(&self, id: NodeId) -> Result<()> {
        if self.cluster.node(id).is_none() {
            return Err(LaunchError::Usage(format!(
                "no node {id} in cluster {:?}; a new node is added by its address: synod member add HOST:PORT",
                self.cluster.name
            )));
        }
        Ok(())
    }

    /// Record a new node on `addr` in the run directory: its id is `id`, or
    /// one above the highest.
    pub fn join(&mut self, addr: SocketAddr, id: Option<NodeId>) -> Result<NodeId> {
        let id = id.unwrap_or_else(|| self.cluster.ids().into_iter().max().unwrap_or(0) + 1);
        if id == 0 {
            return Err(LaunchError::Usage("node ids start at 1".into()));
        }
        super::join(
            &self.dir,
            NodeSpec {
                id,
                addr,
                redis_addr: None,
                joined: true,
                ssh: None,
                ssh_dir: None,
            },
        )?;
        self.cluster = self.dir.cluster()?;
        Ok(id)
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

/// `member add`: a new node on `target` (an address: its id `id`, or one
/// above the highest), or node `target` of the run directory again; with
/// `promote`, wait until it is in sync and make it a voter.
pub fn add(s: &mut Session, target: &str, id: Option<NodeId>, promote: bool) -> Result<NodeId> {
    let started = Instant::now();
    let (id, joined) = match (target.parse::<NodeId>(), target.parse::<SocketAddr>()) {
        (Ok(known), _) => {
            if id.is_some() {
                return Err(LaunchError::Usage(
                    "--id names a new node; node N of the run directory keeps its id".into(),
                ));
            }
            s.known(known)?;
            (known, false)
        }
        (_, Ok(addr)) => {
            s.settled_view()?;
            (s.join(addr, id)?, true)
        }
        _ => {
            return Err(LaunchError::Usage(format!(
                "{target:?} is neither a node id nor an address (host:port, e.g. 127.0.0.1:7106)"
            )))
        }
    };
    if let Err(e) = s.add_learner(id) {
        // Refused: the run directory forgets the node it just recorded.
        if joined && matches!(&e, LaunchError::Failed(why) if why.starts_with("refused")) {
            let _ = super::unjoin(&s.dir, id);
        }
        return Err(e);
    }
    if promote {
        s.catch_up_and_promote(id)?;
        s.say(format!(
            "node {id} added and promoted in {:.1} ms",
            ms(started)
        ));
    }
    Ok(id)
}

/// `member replace`: add a node on `addr`, catch it up, promote it, then
/// remove voter `old`. Returns the new node's id.
pub fn replace(
    s: &mut Session,
    old: NodeId,
    addr: SocketAddr,
    new_id: Option<NodeId>,
    keep_running: bool,
) -> Result<NodeId> {
    s.known(old)?;
    let started = Instant::now();
    let v = s.settled_view()?;
    if membership(&v.best, old) != "voter" {
        return Err(failed(format!(
            "node {old} is not a voter; replace takes a voter's place"
        )));
    }
    let id = s.join(addr, new_id)?;
    s.add_learner(id)?;
    s.catch_up_and_promote(id)?;
    s.remove(old, keep_running)?;
    s.say(format!(
        "node {old} replaced by node {id} on {addr} in {:.1} ms",
        ms(started)
    ));
    Ok(id)
}
