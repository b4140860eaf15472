//! Node faults: random crashes, restarts, pauses and partitions while faults
//! are on (with the swarm's bias toward the leader), and the fixed plans of
//! the quorum experiment and the named scenarios.

use super::node::{Driver, Logs};
use super::{Ev, World, PROBE_CLIENT, SCRIPT_CLIENT};
use crate::paxos::{Mode, NodeId, Notice, Outbox, Role};
use crate::rng::Rng;
use crate::sim::invariants as inv;
use crate::sim::{PlanAction, Workload};

/// Mean virtual ms between two injected node faults.
pub(super) const FAULT_GAP_MS: f64 = 250.0;
/// Virtual ms after a restart before frames queued for the dead process are
/// replayed (a link's reconnect backoff), with the `fresh` guard broken.
const REPLAY_AFTER_MS: u64 = 100;

/// The node faults the random schedule picks from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Crash,
    Partition,
    Pause,
    Membership,
}

impl World {
    pub(super) fn inject_fault(&mut self) {
        if !self.faults_on {
            return;
        }
        let f = self.cfg.faults.clone();
        if f.swarm && self.rng.chance(0.7) && self.swarm() {
            let next = self.now + 1 + self.rng.exp(FAULT_GAP_MS) as u64;
            self.push(next, Ev::Fault);
            return;
        }
        let mut kinds = Vec::new();
        if f.crash {
            kinds.push(Kind::Crash);
        }
        if f.partition {
            kinds.push(Kind::Partition);
        }
        if f.pause {
            kinds.push(Kind::Pause);
        }
        if f.membership {
            kinds.push(Kind::Membership);
        }
        if kinds.is_empty() {
            return;
        }
        match kinds[self.rng.below(kinds.len())] {
            Kind::Membership => {
                // Asked of whoever leads (or of any node, which refuses).
                let leader = self.nodes.iter().find(|n| {
                    n.up && matches!(&n.driver, Driver::Multi(p) if p.mode() == Mode::Leader)
                });
                let asked = match leader {
                    Some(n) => n.id,
                    None => 1 + self.rng.below(self.cfg.nodes) as NodeId,
                };
                let mut ids: Vec<NodeId> = (1..=self.cfg.nodes as NodeId).collect();
                self.rng.shuffle(&mut ids);
                let size = 1 + self.rng.below(ids.len());
                let voters = ids[..size].to_vec();
                let learners = ids[size..]
                    .iter()
                    .copied()
                    .filter(|_| self.rng.chance(0.5))
                    .collect();
                self.reconfig(asked, voters, learners);
            }
            Kind::Pause => {
                let up: Vec<NodeId> = self
                    .nodes
                    .iter()
                    .filter(|n| n.up && !n.paused)
                    .map(|n| n.id)
                    .collect();
                if !up.is_empty() {
                    let id = up[self.rng.below(up.len())];
                    let until = self.now + 50 + self.rng.exp(400.0) as u64;
                    self.pause(id, Some(until));
                }
            }
            Kind::Partition => {
                if self.sides.is_none() {
                    let sides: Vec<u8> = (0..self.cfg.nodes)
                        .map(|_| self.rng.below(2) as u8)
                        .collect();
                    let show = sides_text(&sides);
                    self.note(|| format!("partition: {show}"));
                    self.sides = Some(sides);
                    self.stats.partitions += 1;
                    let heal = self.now + 50 + self.rng.exp(400.0) as u64;
                    self.push(heal, Ev::Heal);
                }
            }
            Kind::Crash => {
                let up: Vec<NodeId> = self.nodes.iter().filter(|n| n.up).map(|n| n.id).collect();
                if !up.is_empty() {
                    let id = up[self.rng.below(up.len())];
                    self.crash(id);
                    let back = self.now + 20 + self.rng.exp(400.0) as u64;
                    self.push(back, Ev::Restart(id));
                }
            }
        }
        let next = self.now + 1 + self.rng.exp(FAULT_GAP_MS) as u64;
        self.push(next, Ev::Fault);
    }

    /// The swarm's fault: crash the leader (whatever its disk had not synced
    /// is lost) and restart it almost at once, while up to a minority less one
    /// of the others is paused, so the restarted proposer must find its way
    /// back to a ballot above everything it used. False if no node leads.
    fn swarm(&mut self) -> bool {
        let leader = self.nodes.iter().find(|n| {
            n.up && !n.paused && matches!(&n.driver, Driver::Multi(p) if p.mode() == Mode::Leader)
        });
        let Some(id) = leader.map(|n| n.id) else {
            return false;
        };
        self.crash(id);
        let back = self.now + 1 + self.rng.range(0, 30);
        self.push(back, Ev::Restart(id));
        let others: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|n| n.id != id && n.up && !n.paused)
            .map(|n| n.id)
            .collect();
        // Up to a minority of the others: with the leader back, a majority
        // can still be formed without them.
        let most = (self.cfg.nodes - 1) / 2;
        let pauses = self.rng.range(1, most as u64) as usize;
        let mut others = others;
        self.rng.shuffle(&mut others);
        for &p in others.iter().take(pauses) {
            let until = self.now + 20 + self.rng.exp(200.0) as u64;
            self.pause(p, Some(until));
        }
        true
    }

    fn pause(&mut self, id: NodeId, until: Option<u64>) {
        if !self.node(id).up || self.node(id).paused {
            return;
        }
        self.note(|| match until {
            Some(t) => format!("PAUSE node {id} until {t}ms"),
            None => format!("PAUSE node {id}"),
        });
        self.stats.pauses += 1;
        self.node(id).paused = true;
        if let Some(t) = until {
            self.push(t, Ev::Resume(id));
        }
    }

    pub(super) fn resume(&mut self, id: NodeId) {
        if !self.node(id).paused {
            return;
        }
        self.note(|| format!("RESUME node {id}"));
        let n = self.node(id);
        n.paused = false;
        let parked = std::mem::take(&mut n.parked);
        let now = self.now;
        for ev in parked {
            self.push(now, ev);
        }
    }

    pub(super) fn crash(&mut self, id: NodeId) {
        if !self.node(id).up {
            return;
        }
        self.note(|| format!("CRASH node {id}"));
        self.stats.crashes += 1;
        let n = self.node(id);
        n.up = false;
        n.paused = false;
        n.parked.clear();
        n.incarnation += 1;
        n.waiting.clear();
        // The kernel closes the dead process's sockets: every peer on its side
        // of any partition sees its link close a moment later.
        self.links(id, false);
    }

    /// Tell every live peer `id` can reach that `id`'s process was reached
    /// (`up`) or closed, and (when reached) tell `id` of each of them, as
    /// the shell's links do.
    pub(super) fn links(&mut self, id: NodeId, up: bool) {
        let peers: Vec<(NodeId, u64)> = self
            .nodes
            .iter()
            .filter(|n| n.id != id && n.up && self.connected(n.id, id))
            .map(|n| (n.id, n.incarnation))
            .collect();
        let inc = self.node(id).incarnation;
        for (peer, peer_inc) in peers {
            let at = self.now + 1 + self.rng.below(3) as u64;
            let notice = if up {
                Notice::PeerUp { node: id }
            } else {
                Notice::PeerGone { node: id }
            };
            self.push(
                at,
                Ev::Notice {
                    node: peer,
                    inc: peer_inc,
                    notice,
                },
            );
            if up {
                let at = self.now + 1 + self.rng.below(3) as u64;
                let notice = Notice::PeerUp { node: peer };
                self.push(
                    at,
                    Ev::Notice {
                        node: id,
                        inc,
                        notice,
                    },
                );
            }
        }
    }

    /// End every partition and cut link. Each node then learns, as the shell's
    /// router tells it, how the links it could not see stand now: a peer
    /// that died behind the partition is gone, one that came back is up.
    pub(super) fn heal(&mut self) {
        let ids: Vec<NodeId> = self.nodes.iter().map(|n| n.id).collect();
        let hidden: Vec<(NodeId, NodeId)> = ids
            .iter()
            .flat_map(|&a| ids.iter().map(move |&b| (a, b)))
            .filter(|&(a, b)| a != b && !self.connected(a, b))
            .collect();
        self.sides = None;
        self.cuts.clear();
        for (a, b) in hidden {
            let (up, inc) = {
                let n = self.node(a);
                (n.up, n.incarnation)
            };
            if !up {
                continue;
            }
            let notice = if self.node(b).up {
                Notice::PeerUp { node: b }
            } else {
                Notice::PeerGone { node: b }
            };
            let at = self.now + 1 + self.rng.below(3) as u64;
            self.push(
                at,
                Ev::Notice {
                    node: a,
                    inc,
                    notice,
                },
            );
        }
    }

    pub(super) fn restart(&mut self, id: NodeId) {
        if self.node(id).up {
            return;
        }
        let inc = self.node(id).incarnation;
        let replays = std::mem::take(&mut self.node(id).replays);
        // The logs survive the crash, less what was not synced; everything
        // else is rebuilt from them.
        let logs: Logs = self.crash_logs(id);
        let fresh = self.fresh_node(id, logs, inc);
        let promised = fresh.acceptor.promised();
        let round = match &fresh.driver {
            Driver::Multi(p) => p.next_round(),
            _ => 0,
        };
        self.note(|| {
            format!("RESTART node {id} (promised {promised} from its log; next round {round})")
        });
        *self.node(id) = fresh;
        // The new replica starts empty and applies the log again from slot 0.
        self.applied.remove(&id);
        let v = inv::promise_monotonic(&mut self.promised, id, promised);
        self.violation(v);
        let mut out = Outbox::new();
        self.node(id).learner.replay(&mut out);
        self.effects(id, Role::Learner, out);
        let first = self.now + 1;
        self.push(first, Ev::Tick { node: id, inc });
        // What its snapshot covers is chosen: the roles start above it.
        let base = self.node(id).replica.snapshot_slot();
        if base > 0 {
            self.local(id, Notice::Snapshotted { slot: base });
        }
        self.links(id, true);
        let at = self.now + REPLAY_AFTER_MS;
        for env in replays {
            self.push(at, Ev::Replay { inc, env });
        }
    }

    pub(super) fn end_faults(&mut self) {
        self.note(|| "faults stop: heal, resume and restart every node, perfect network".into());
        self.faults_on = false;
        self.heal();
        let paused: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|n| n.paused)
            .map(|n| n.id)
            .collect();
        for id in paused {
            self.resume(id);
        }
        let down: Vec<NodeId> = self.nodes.iter().filter(|n| !n.up).map(|n| n.id).collect();
        for id in down {
            self.restart(id);
        }
        if !matches!(self.cfg.workload, Workload::Decree { .. }) {
            // The liveness probe: one write that must commit within settle_ms.
            let probe = super::Client::new(PROBE_CLIENT, Rng::derive(self.cfg.seed, 7), 1, 1);
            self.clients.insert(PROBE_CLIENT, probe);
            self.client_next(PROBE_CLIENT);
        }
    }

    pub(super) fn plan(&mut self, action: PlanAction) {
        match action {
            PlanAction::Crash(id) => self.crash(id),
            PlanAction::Restart(id) => self.restart(id),
            PlanAction::Split(sides) => {
                let show = sides_text(&sides);
                self.note(|| format!("partition: {show}"));
                self.stats.partitions += 1;
                self.sides = Some(sides);
            }
            PlanAction::Heal => {
                self.note(|| "heal".into());
                self.heal();
            }
            PlanAction::Cut(a, b) => {
                self.note(|| format!("cut the link {a} — {b}"));
                self.cuts.insert((a.min(b), a.max(b)));
            }
            PlanAction::Pause(id) => self.pause(id, None),
            PlanAction::Resume(id) => self.resume(id),
            PlanAction::Campaign(id) => {
                if self.node(id).up {
                    self.note(|| format!("node {id} campaigns"));
                    self.campaign(id);
                }
            }
            PlanAction::SlowDisk { node, role, ms } => {
                self.note(|| format!("node {node}'s {role:?} log now takes {ms} ms a sync"));
                self.node(node).disk(role).set_slow(ms);
            }
            PlanAction::Client { node, op } => {
                self.scripted += 1;
                let id = SCRIPT_CLIENT + self.scripted;
                let c = super::Client::pinned(id, node, op);
                self.clients.insert(id, c);
                self.client_next(id);
            }
            PlanAction::Request { node, cmd } => {
                self.commands.insert(cmd.clone());
                self.client_request(node, cmd);
            }
            PlanAction::Reconfig {
                node,
                voters,
                learners,
            } => self.reconfig(node, voters, learners),
            PlanAction::Inject(env) => {
                self.note(|| format!("INJECT {} → {}  {}", env.from, env.to, env.msg.brief()));
                self.route(env);
            }
        }
    }
}

pub(super) fn sides_text(sides: &[u8]) -> String {
    let side = |s: u8| {
        sides
            .iter()
            .enumerate()
            .filter(|(_, &x)| x == s)
            .map(|(i, _)| (i + 1).to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    format!("{{{}}} | {{{}}}", side(0), side(1))
}
