//! The membership nemesis (`--faults ...,membership`), after Jepsen's etcd
//! test: **grow** adds a fresh, empty node on an address picked when the
//! run starts, waits until it caught up (by snapshot or by the log) and
//! promotes it; **shrink** removes a voter through the leader, and once the
//! configuration without it governs, stops it and wipes its data, so it
//! never comes back with what it knew.
//!
//! It keeps the voters it means the cluster to have. A change whose outcome
//! it could not learn (the leader died, the change timed out) leaves two
//! possibilities; the next look at the cluster settles which. At the end the
//! cluster's voters must be one the nemesis asked for: a change lost, or
//! one nobody asked for, is a violation.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::cluster::rundir::RunDir;
use crate::launcher::members::{self, Session};
use crate::paxos::NodeId;

/// How long one step of a change may take before the nemesis gives up on
/// it (and allows either outcome).
const STEP: Duration = Duration::from_secs(10);

/// Why configuration `number` with `voters` is none the nemesis asked for,
/// if it is not (`allowed` empty: nothing asked yet).
fn unasked(allowed: &[BTreeSet<NodeId>], number: u64, voters: &BTreeSet<NodeId>) -> Option<String> {
    if allowed.is_empty() || allowed.contains(voters) {
        return None;
    }
    let asked: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
    Some(format!(
        "membership: configuration {number} has voters {voters:?}; the nemesis asked for {}",
        asked.join(" or ")
    ))
}

/// The nemesis: one change at a time, each on a thread of its own, so the
/// schedule goes on (a partition heals on time) while a node catches up.
pub struct Nemesis {
    state: Arc<Mutex<Changes>>,
    running: Option<JoinHandle<()>>,
    /// Removed and wiped: no other fault touches them again.
    pub gone: Arc<Mutex<BTreeSet<NodeId>>>,
}

impl Nemesis {
    /// A nemesis for the cluster of `dir`, adding nodes on `addrs`.
    pub fn new(dir: &RunDir, addrs: BTreeMap<NodeId, SocketAddr>) -> Nemesis {
        let changes = Changes::new(dir, addrs);
        Nemesis {
            gone: changes.gone.clone(),
            state: Arc::new(Mutex::new(changes)),
            running: None,
        }
    }

    /// Start growing by node `id` (`grow`) or shrinking (`shrink`: the
    /// pick, and the nodes under other faults); false if a change is still
    /// under way (this one is skipped).
    pub fn begin(&mut self, grow: Option<NodeId>, shrink: Option<(u64, BTreeSet<NodeId>)>) -> bool {
        if self.running.as_ref().is_some_and(|h| !h.is_finished()) {
            return false;
        }
        self.wait();
        let state = self.state.clone();
        self.running = Some(std::thread::spawn(move || {
            let mut s = state.lock().expect("nemesis");
            if let Some(id) = grow {
                s.grow(id);
            }
            if let Some((pick, busy)) = shrink {
                s.shrink(pick, &busy);
            }
        }));
        true
    }

    /// Wait for the change under way, if any.
    pub fn wait(&mut self) {
        if let Some(h) = self.running.take() {
            let _ = h.join();
        }
    }

    /// The last look (after the change under way): the report's line, and
    /// the violations and what could not be checked.
    pub fn finish(&mut self) -> (String, Vec<String>, Vec<String>) {
        self.wait();
        let mut s = self.state.lock().expect("nemesis");
        let line = s.finish();
        (
            line,
            std::mem::take(&mut s.violations),
            std::mem::take(&mut s.undecided),
        )
    }
}

/// The nemesis's changes over one run.
struct Changes {
    dir: RunDir,
    /// The voters at the start: shrink never goes below their number, grow
    /// never above one more.
    size: Option<usize>,
    /// Where each node the schedule adds will listen.
    pub addrs: BTreeMap<NodeId, SocketAddr>,
    /// The voter sets the cluster may have now (one, unless the last change
    /// ended unknown).
    allowed: Vec<BTreeSet<NodeId>>,
    /// Removed and wiped: no other fault touches them again.
    pub gone: Arc<Mutex<BTreeSet<NodeId>>>,
    /// Changes chosen.
    pub changes: u64,
    /// The newest configuration number the nemesis knows chosen.
    known: u64,
    /// Grows and shrinks that did not finish (the cluster refused, or a
    /// step timed out): no violation by themselves.
    pub unfinished: Vec<String>,
    /// Configurations nobody asked for.
    pub violations: Vec<String>,
    /// What could not be checked.
    pub undecided: Vec<String>,
    /// Why the last look saw nothing settled, for the report.
    unsettled: String,
}

impl Changes {
    fn new(dir: &RunDir, addrs: BTreeMap<NodeId, SocketAddr>) -> Changes {
        Changes {
            dir: dir.clone(),
            size: None,
            addrs,
            allowed: Vec::new(),
            gone: Default::default(),
            changes: 0,
            known: 0,
            unfinished: Vec::new(),
            violations: Vec::new(),
            undecided: Vec::new(),
            unsettled: String::new(),
        }
    }

    fn session(&self) -> Option<Session> {
        let mut s = Session::open(&self.dir, false, STEP).ok()?;
        s.verbose = false;
        Some(s)
    }

    /// The cluster's voters once no change is pending, checked against
    /// what the nemesis allowed (`None`: no node answered in time).
    ///
    /// Only a view that knows a configuration at least as new as the last
    /// change the nemesis saw chosen is judged: the nodes that know it may
    /// not have answered this time (slow, paused, cut off), and the others'
    /// older configuration is no evidence of a lost change. Such a look is
    /// retried until the step's time is up, then given up (`None`).
    fn look(&mut self, s: &Session) -> Option<BTreeSet<NodeId>> {
        let deadline = std::time::Instant::now() + STEP;
        let v = loop {
            let v = match s.settled_view() {
                Ok(v) => v,
                Err(e) => {
                    self.unsettled = e.to_string();
                    return None;
                }
            };
            if v.best.config >= self.known {
                break v;
            }
            if std::time::Instant::now() >= deadline {
                self.unsettled = format!(
                    "the newest configuration seen is {} (node {}), the nemesis saw {} chosen",
                    v.best.config, v.best.id, self.known
                );
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let voters: BTreeSet<NodeId> = v.best.voters.iter().copied().collect();
        self.violations
            .extend(unasked(&self.allowed, v.best.config, &voters));
        self.allowed = vec![voters.clone()];
        self.known = v.best.config;
        self.size.get_or_insert(voters.len());
        Some(voters)
    }

    /// Grow: add node `id`, catch it up, promote it. The nodes it touched.
    fn grow(&mut self, id: NodeId) -> Vec<NodeId> {
        let Some(mut s) = self.session() else {
            return Vec::new();
        };
        let Some(voters) = self.look(&s) else {
            self.unfinished
                .push(format!("grow {id}: no settled configuration to grow"));
            return Vec::new();
        };
        let Some(addr) = self.addrs.get(&id) else {
            return Vec::new();
        };
        if self.size.is_some_and(|n| voters.len() > n) {
            return Vec::new(); // one more than at the start already
        }
        let mut with = voters.clone();
        with.insert(id);
        match members::add(&mut s, &addr.to_string(), Some(id), true) {
            Ok(_) => {
                self.known += 2;
                self.changes += 2;
                self.allowed = vec![with];
            }
            Err(e) => {
                self.unfinished.push(format!("grow {id}: {e}"));
                self.allowed = vec![voters, with];
            }
        }
        vec![id]
    }

    /// Shrink: remove the `pick`-th voter not in `busy`, stop it, wipe its
    /// data. The node it removed.
    fn shrink(&mut self, pick: u64, busy: &BTreeSet<NodeId>) -> Vec<NodeId> {
        let Some(s) = self.session() else {
            return Vec::new();
        };
        let Some(voters) = self.look(&s) else {
            self.unfinished
                .push("shrink: no settled configuration to shrink".into());
            return Vec::new();
        };
        let free: Vec<NodeId> = voters
            .iter()
            .copied()
            .filter(|v| !busy.contains(v))
            .collect();
        if voters.len() <= 1 || free.is_empty() || self.size.is_some_and(|n| voters.len() <= n) {
            return Vec::new();
        }
        let victim = free[(pick % free.len() as u64) as usize];
        let mut without = voters.clone();
        without.remove(&victim);
        // Claimed first, so no other fault restarts it while it goes.
        self.gone.lock().expect("gone").insert(victim);
        match s.remove(victim, false) {
            Ok(()) => {
                self.known += 1;
                self.changes += 1;
                self.allowed = vec![without];
                let data = self.dir.node_dir(victim);
                if let Err(e) = std::fs::remove_dir_all(&data) {
                    self.unfinished.push(format!(
                        "shrink {victim}: cannot wipe {}: {e}",
                        data.display()
                    ));
                }
            }
            Err(e) => {
                self.gone.lock().expect("gone").remove(&victim);
                self.unfinished.push(format!("shrink {victim}: {e}"));
                self.allowed = vec![voters, without];
            }
        }
        vec![victim]
    }

    /// The last look, once every fault is healed: one line for the report.
    fn finish(&mut self) -> String {
        let voters = self.session().and_then(|s| self.look(&s));
        match voters {
            Some(v) => {
                let first: Vec<&str> = self.unfinished.iter().take(3).map(String::as_str).collect();
                format!(
                    "membership: {} changes chosen, {} grows or shrinks unfinished{}; final voters {v:?}{}",
                    self.changes,
                    self.unfinished.len(),
                    if first.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", first.join("; "))
                    },
                    if self.violations.is_empty() {
                        ", as the nemesis intended"
                    } else {
                        ", NOT as the nemesis intended"
                    }
                )
            }
            None => {
                let why = format!(
                    "membership: no node showed a settled configuration at the end ({})",
                    self.unsettled
                );
                self.undecided.push(why.clone());
                why
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[NodeId]) -> BTreeSet<NodeId> {
        ids.iter().copied().collect()
    }

    #[test]
    fn a_configuration_nobody_asked_for_is_a_violation() {
        // Asked to grow to four: four is fine, three (the change lost) is not.
        let grown = [set(&[1, 2, 3, 4])];
        assert_eq!(unasked(&grown, 2, &set(&[1, 2, 3, 4])), None);
        let lost = unasked(&grown, 2, &set(&[1, 2, 3])).expect("a lost change is caught");
        assert!(
            lost.contains("the nemesis asked for {1, 2, 3, 4}"),
            "{lost}"
        );
        // A change whose outcome was unknown allows both, and nothing else.
        let either = [set(&[1, 2, 3]), set(&[1, 2])];
        assert_eq!(unasked(&either, 3, &set(&[1, 2])), None);
        assert_eq!(unasked(&either, 3, &set(&[1, 2, 3])), None);
        assert!(unasked(&either, 3, &set(&[2, 3])).is_some());
        assert_eq!(unasked(&[], 0, &set(&[7])), None, "nothing asked yet");
    }
}
