//! The deterministic simulator.
//!
//! One seed drives everything: message delays, losses and duplicates, partitions,
//! crashes and restarts, election jitter, client choices. Time is virtual (ms), so
//! a run of many simulated seconds takes milliseconds, and a seed replays the same
//! history every time. After every step the invariants of [`invariants`] are
//! checked; a failing run prints the `synod sim` command that replays it.
//!
//! Two workloads:
//! - **decree**: single-decree Paxos, `proposers` nodes each proposing their own
//!   value for slot 0 ([`crate::paxos::DecreeProposer`]);
//! - **cluster**: Multi-Paxos replicas ([`crate::paxos::Proposer`]) with concurrent
//!   clients issuing key-value operations, checked for linearizability at the end.

pub mod invariants;
pub mod scenario;
mod world;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::check::history::History;
use crate::kv::Op;
use crate::paxos::{
    Ballot, Command, Envelope, NodeId, PromiseLimit, ProposerConfig, ReplicaConfig, Role, Rules,
    Slot, Value,
};
pub use invariants::Violation;
pub use world::run;

/// The network and node faults a run injects while faults are on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Faults {
    /// Probability that a message is lost.
    pub loss: f64,
    /// Probability that a message is delivered twice.
    pub dup: f64,
    /// Delivery delay range in virtual ms; a wide range reorders messages.
    pub delay_ms: (u64, u64),
    /// Crash nodes (losing everything not persisted) and restart them.
    pub crash: bool,
    /// Split the cluster into two sides and heal it again.
    pub partition: bool,
    /// Pause nodes (they keep their state but handle nothing, like SIGSTOP) and
    /// resume them with everything that queued up meanwhile.
    pub pause: bool,
    /// Bias the node faults toward the hardest case for a proposer's memory:
    /// crash the leader and restart it at once while other nodes are paused.
    pub swarm: bool,
    /// How long a log's sync takes, in virtual ms (a crash in between loses
    /// what it was writing, and the messages that waited for it never leave).
    pub disk_ms: (u64, u64),
    /// Ask the leader for membership changes at random: a random set of
    /// voters (1 to every node), the others learners or left out.
    #[serde(default)]
    pub membership: bool,
}

impl Faults {
    /// A perfect network and no crashes (delays still vary, so order does too).
    pub fn none() -> Self {
        Faults {
            loss: 0.0,
            dup: 0.0,
            delay_ms: (1, 5),
            crash: false,
            partition: false,
            pause: false,
            swarm: false,
            disk_ms: (0, 1),
            membership: false,
        }
    }

    /// Every fault kind at once: the default.
    pub fn all() -> Self {
        Faults {
            loss: 0.05,
            dup: 0.05,
            delay_ms: (1, 40),
            crash: true,
            partition: true,
            pause: true,
            swarm: false,
            disk_ms: (0, 5),
            membership: false,
        }
    }

    /// A description for the replay command line.
    pub fn flags(&self) -> String {
        let mut kinds = Vec::new();
        if self.crash {
            kinds.push("crash");
        }
        if self.partition {
            kinds.push("partition");
        }
        if self.pause {
            kinds.push("pause");
        }
        if self.swarm {
            kinds.push("swarm");
        }
        if self.membership {
            kinds.push("membership");
        }
        if self.loss > 0.0 {
            kinds.push("loss");
        }
        if self.dup > 0.0 {
            kinds.push("dup");
        }
        if self.delay_ms.1 > 5 {
            kinds.push("delay");
        }
        if kinds.is_empty() {
            "none".to_string()
        } else {
            kinds.join(",")
        }
    }

    /// The fault mix named by a comma-separated list of kinds
    /// (`crash,partition,pause,loss,dup,delay,swarm`, `all` or `none`). Any node
    /// fault makes syncs take up to 5 virtual ms. (By hand, not clap's
    /// `value_delimiter`: `all` and `none` expand into a mix.)
    // `sim --faults`'s clap value parser: `Result<_, String>` is clap's idiom.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut f = Faults::none();
        for kind in list.split(',').map(str::trim).filter(|k| !k.is_empty()) {
            match kind {
                "all" => f = Faults::all(),
                "none" => f = Faults::none(),
                "crash" | "kill" => f.crash = true,
                "partition" => f.partition = true,
                "pause" => f.pause = true,
                "membership" => f.membership = true,
                "swarm" => {
                    f.swarm = true;
                    f.crash = true;
                    f.pause = true;
                }
                "loss" => f.loss = Faults::all().loss,
                "dup" => f.dup = Faults::all().dup,
                "delay" => f.delay_ms = Faults::all().delay_ms,
                other => {
                    return Err(format!(
                        "unknown fault `{other}`; expected crash, partition, pause, loss, dup, delay, swarm, membership, all or none"
                    ))
                }
            }
        }
        if f.crash || f.pause || f.partition || f.membership {
            f.disk_ms = Faults::all().disk_ms;
        }
        if f.swarm {
            // Slow syncs widen the window in which a leader's own acceptor
            // has not made its promise and accepts durable.
            f.disk_ms = (0, 20);
        }
        Ok(f)
    }
}

/// What the simulated clients do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Workload {
    /// Single-decree Paxos: the first `proposers` nodes each propose a value.
    Decree { proposers: usize },
    /// Multi-Paxos replicas with `clients` clients doing `ops` operations each on
    /// `keys` keys.
    Cluster {
        clients: usize,
        ops: usize,
        keys: usize,
    },
    /// Multi-Paxos replicas and a probe write every `every_ms`, each by a client of
    /// its own that gives up after `client_deadline_ms` (the quorum experiment).
    Probe { every_ms: u64 },
    /// Multi-Paxos replicas and only the client operations the plan schedules
    /// (the named scenarios).
    Scripted,
}

/// A fault or an action scheduled at a fixed virtual time (the quorum
/// experiment's timelines, and the named scenarios' scripts).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlanAction {
    /// Crash this node.
    Crash(NodeId),
    /// Restart it from its durable state.
    Restart(NodeId),
    /// Split the cluster: `sides[i]` is node i+1's side.
    Split(Vec<u8>),
    /// Join the sides again (and mend every cut link).
    Heal,
    /// Cut the link between two nodes, both ways (an asymmetric partition).
    Cut(NodeId, NodeId),
    /// Pause this node (like SIGSTOP) until resumed.
    Pause(NodeId),
    /// Resume it.
    Resume(NodeId),
    /// This node starts phase 1 now, without waiting for its timeout or a
    /// pre-vote (as an operator's leadership transfer would).
    Campaign(NodeId),
    /// This role's log on this node takes `ms` for every sync from now on.
    SlowDisk { node: NodeId, role: Role, ms: u64 },
    /// A client sends `op` to this node alone (no redirects, no retries).
    Client { node: NodeId, op: Op },
    /// This command arrives at this node as a client would send it (a
    /// client's late retry, or a duplicate from the network); any reply
    /// goes to whichever client holds its session.
    Request { node: NodeId, cmd: Command },
    /// Put a message on the wire as if `from` had sent it (a stranger).
    Inject(Envelope),
    /// Ask this node's proposer for a membership change: the next
    /// configuration has these voters (majorities) and learners.
    Reconfig {
        node: NodeId,
        voters: Vec<NodeId>,
        learners: Vec<NodeId>,
    },
}

/// Everything one simulated run depends on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimConfig {
    /// The seed every random choice derives from.
    pub seed: u64,
    /// Number of nodes (each is an acceptor, a proposer and a learner).
    pub nodes: usize,
    /// What the clients do.
    pub workload: Workload,
    /// The faults injected until `fault_ms`.
    pub faults: Faults,
    /// Which Paxos rules hold.
    pub rules: Rules,
    /// Record a line for every message and state change.
    pub trace: bool,
    /// Virtual ms during which faults are injected; then all heal.
    pub fault_ms: u64,
    /// Virtual ms after faults stop within which progress must happen.
    pub settle_ms: u64,
    /// Virtual ms per protocol tick.
    pub tick_ms: u64,
    /// The proposers' timing and batching (cluster workload).
    pub proposer: ProposerConfig,
    /// Faults at fixed virtual times, instead of random ones (quorum experiment).
    pub plan: Vec<(u64, PlanAction)>,
    /// Virtual ms a client waits for one node's answer.
    pub client_timeout_ms: u64,
    /// Virtual ms a client keeps retrying one operation.
    pub client_deadline_ms: u64,
    /// The largest message a node may send or receive, in bytes.
    pub max_frame: usize,
    /// How much one promise may carry.
    pub promise_limit: PromiseLimit,
    /// Snapshots (off when `snapshot_every` is 0) and the client table.
    pub replica: ReplicaConfig,
    /// The scenario this run plays, if any (for the replay command).
    pub scenario: Option<String>,
    /// Slots between a membership change being chosen and taking effect
    /// (small in scenarios, so a change takes effect within a short script).
    #[serde(default = "default_alpha")]
    pub alpha: u64,
}

fn default_alpha() -> u64 {
    crate::paxos::config::ALPHA
}

impl SimConfig {
    /// Single-decree Paxos with `acceptors` nodes and `proposers` proposers.
    pub fn decree(seed: u64, acceptors: usize, proposers: usize) -> Self {
        SimConfig {
            seed,
            nodes: acceptors,
            workload: Workload::Decree { proposers },
            faults: Faults::all(),
            rules: Rules::ALL,
            trace: false,
            fault_ms: 1_500,
            settle_ms: 10_000,
            tick_ms: 10,
            proposer: ProposerConfig::default(),
            plan: Vec::new(),
            client_timeout_ms: 300,
            client_deadline_ms: 2_500,
            max_frame: crate::paxos::MAX_FRAME,
            promise_limit: PromiseLimit::default(),
            replica: ReplicaConfig {
                snapshot_every: 0,
                ..ReplicaConfig::default()
            },
            scenario: None,
            alpha: default_alpha(),
        }
    }

    /// A Multi-Paxos cluster of `nodes` with `clients` clients doing `ops` each.
    pub fn cluster(seed: u64, nodes: usize, clients: usize, ops: usize) -> Self {
        SimConfig {
            seed,
            nodes,
            workload: Workload::Cluster {
                clients,
                ops,
                keys: 3,
            },
            faults: Faults::all(),
            rules: Rules::ALL,
            trace: false,
            fault_ms: 3_000,
            settle_ms: 10_000,
            tick_ms: 10,
            proposer: ProposerConfig::default(),
            plan: Vec::new(),
            client_timeout_ms: 300,
            client_deadline_ms: 2_500,
            max_frame: crate::paxos::MAX_FRAME,
            promise_limit: PromiseLimit::default(),
            replica: ReplicaConfig {
                snapshot_every: 0,
                ..ReplicaConfig::default()
            },
            scenario: None,
            alpha: default_alpha(),
        }
    }

    /// The `synod sim` command line that replays this run.
    pub fn replay_command(&self) -> String {
        if let Some(name) = &self.scenario {
            let mut cmd = format!("synod sim --scenario {name}");
            if let Some(rule) = self.rules.broken() {
                let _ = write!(cmd, " --break {rule}");
            }
            return cmd;
        }
        let mut cmd = format!("synod sim --seed {}", self.seed);
        match &self.workload {
            Workload::Decree { proposers } => {
                let _ = write!(cmd, " --acceptors {} --proposers {proposers}", self.nodes);
            }
            Workload::Cluster { clients, ops, keys } => {
                let _ = write!(
                    cmd,
                    " --nodes {} --clients {clients} --ops {ops} --keys {keys}",
                    self.nodes
                );
            }
            Workload::Probe { .. } | Workload::Scripted => {
                let _ = write!(cmd, " --nodes {} (a planned run)", self.nodes);
            }
        }
        let _ = write!(cmd, " --faults {}", self.faults.flags());
        if let Some(q) = self.proposer.quorums {
            let _ = write!(cmd, " --quorums {},{}", q.phase1, q.phase2);
        }
        let default_ms = match self.workload {
            Workload::Decree { .. } => SimConfig::decree(0, 1, 1).fault_ms,
            _ => SimConfig::cluster(0, 1, 1, 1).fault_ms,
        };
        if self.fault_ms != default_ms {
            let _ = write!(cmd, " --fault-ms {}", self.fault_ms);
        }
        if self.replica.snapshot_every > 0 {
            let _ = write!(cmd, " --snapshot-every {}", self.replica.snapshot_every);
        }
        if self.alpha != default_alpha() {
            let _ = write!(cmd, " --alpha {}", self.alpha);
        }
        if let Some(rule) = self.rules.broken() {
            let _ = write!(cmd, " --break {rule}");
        }
        cmd
    }
}

/// Counters of one run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Events handled.
    pub steps: u64,
    /// Messages put on the simulated network (not counting local ones).
    pub messages: u64,
    /// Of those, lost (loss or partition).
    pub dropped: u64,
    /// Crashes injected.
    pub crashes: u64,
    /// Partitions injected.
    pub partitions: u64,
    /// Pauses injected.
    pub pauses: u64,
    /// Virtual ms simulated.
    pub virtual_ms: u64,
    /// Slots chosen (ground truth).
    pub slots_chosen: u64,
    /// Client commands applied at the most advanced replica.
    pub commands_committed: u64,
    /// Times a node became leader.
    pub elections: u64,
    /// Snapshots made durable (taken or installed).
    pub snapshots: u64,
    /// Snapshot chunks sent (catch-up by snapshot).
    pub snapshot_chunks: u64,
    /// Membership changes proposed.
    pub changes: u64,
    /// Membership changes a proposer refused (not leading, one pending, ...).
    pub changes_refused: u64,
    /// The number of the last configuration chosen (ground truth): how many
    /// changes the log holds.
    pub configurations: u64,
}

/// The verdict of one simulated run.
#[derive(Clone, Debug)]
pub struct Report {
    /// The run's configuration.
    pub config: SimConfig,
    /// Every violation found, in the order found (empty: the run was clean).
    pub violations: Vec<Violation>,
    /// What was chosen, per slot (ground truth).
    pub chosen: BTreeMap<Slot, Value>,
    /// Counters.
    pub stats: Stats,
    /// The client history (cluster workload).
    pub history: Option<History>,
    /// One line per event, when tracing.
    pub trace: Vec<String>,
    /// Every time a node became leader: (virtual ms, node, ballot).
    pub leaders: Vec<(u64, NodeId, Ballot)>,
    /// What the checkers could not decide (a key whose linearizability
    /// search ran out of budget): such a run is not clean, nor violated.
    pub undecided: Vec<String>,
}

impl Report {
    /// True when no invariant was violated and every check was decided.
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty() && self.undecided.is_empty()
    }

    /// True when nothing was violated but some check was not decided.
    pub fn is_undecided(&self) -> bool {
        self.violations.is_empty() && !self.undecided.is_empty()
    }

    /// The first safety violation, if any.
    pub fn first_safety(&self) -> Option<&Violation> {
        self.violations.iter().find(|v| v.is_safety())
    }

    /// The verdict in a few lines.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let st = &self.stats;
        let _ = writeln!(
            s,
            "seed {}: {} steps, {} virtual ms, {} messages ({} lost), {} crashes, {} partitions, {} pauses",
            self.config.seed,
            st.steps,
            st.virtual_ms,
            st.messages,
            st.dropped,
            st.crashes,
            st.partitions,
            st.pauses
        );
        if st.snapshots > 0 {
            let _ = writeln!(
                s,
                "snapshots: {} made durable, {} chunks sent to nodes that fell behind",
                st.snapshots, st.snapshot_chunks
            );
        }
        if st.changes + st.changes_refused > 0 {
            let _ = writeln!(
                s,
                "membership: {} changes proposed, {} refused, {} chosen",
                st.changes, st.changes_refused, st.configurations
            );
        }
        match &self.config.workload {
            Workload::Decree { .. } => match self.chosen.get(&0) {
                Some(v) => {
                    let _ = writeln!(s, "chosen: {}", v.brief());
                }
                None => {
                    let _ = writeln!(s, "chosen: nothing");
                }
            },
            Workload::Cluster { .. } | Workload::Probe { .. } | Workload::Scripted => {
                let _ = writeln!(
                    s,
                    "chosen: {} slots, {} commands committed",
                    st.slots_chosen, st.commands_committed
                );
                if let Some(h) = &self.history {
                    let (ok, failed, unknown) = h.counts();
                    let _ = writeln!(
                        s,
                        "client operations: {ok} ok, {failed} failed, {unknown} unknown"
                    );
                }
            }
        }
        if self.is_clean() {
            let _ = writeln!(s, "verdict: ok (every invariant held after every step)");
        } else if self.is_undecided() {
            let _ = writeln!(
                s,
                "verdict: INCONCLUSIVE (no invariant was violated, but a check could not be decided)"
            );
            for u in self.undecided.iter().take(5) {
                let _ = writeln!(s, "  {u}");
            }
            let _ = writeln!(s, "replay: {}", self.config.replay_command());
        } else {
            let _ = writeln!(s, "verdict: {} violation(s)", self.violations.len());
            for v in self.violations.iter().take(5) {
                let _ = writeln!(s, "  {v}");
            }
            if let Some(rule) = self.config.rules.broken() {
                let _ = writeln!(s, "(rule `{rule}` was off: {})", rule.lesson());
            }
            let _ = writeln!(s, "replay: {}", self.config.replay_command());
        }
        s
    }
}

/// Snapshots every `every` slots, with the rest scaled down to a simulation:
/// a fifth of that kept below each, small chunks (so transfers take several),
/// and a small client table (so it overflows).
pub fn snapshotting(every: u64) -> ReplicaConfig {
    ReplicaConfig {
        snapshot_every: every,
        keep: (every / 5).max(1),
        max_sessions: 64,
        chunk: 256,
    }
}

/// What a run of many seeds found.
#[derive(Clone, Debug, Default)]
pub struct Sweep {
    /// The first seed.
    pub first: u64,
    /// How many seeds ran.
    pub seeds: u64,
    /// The seeds that violated an invariant.
    pub failing: Vec<u64>,
    /// The seeds where nothing was violated but a check was undecided.
    pub undecided: Vec<u64>,
    /// Client commands committed over all seeds.
    pub committed: u64,
    /// Wall time, seconds.
    pub wall_s: f64,
}

impl Sweep {
    /// One line: seeds, clean, failing, commands, wall time.
    pub fn summary(&self) -> String {
        format!(
            "{} seeds ({}..{}), {} clean, {} with violations, {} undecided; {} commands committed; wall time {:.2} s",
            self.seeds,
            self.first,
            self.first + self.seeds - 1,
            self.seeds as usize - self.failing.len() - self.undecided.len(),
            self.failing.len(),
            self.undecided.len(),
            self.committed,
            self.wall_s
        )
    }
}

/// Run seeds `first..first + count` of `make(seed)`, telling `each` about
/// every report.
pub fn sweep(
    first: u64,
    count: u64,
    make: impl Fn(u64) -> SimConfig,
    mut each: impl FnMut(u64, &Report),
) -> Sweep {
    let started = std::time::Instant::now();
    let mut s = Sweep {
        first,
        seeds: count,
        ..Sweep::default()
    };
    for seed in first..first.saturating_add(count) {
        let report = run(&make(seed));
        s.committed += report.stats.commands_committed;
        if report.is_undecided() {
            s.undecided.push(seed);
        } else if !report.is_clean() {
            s.failing.push(seed);
        }
        each(seed, &report);
    }
    s.wall_s = started.elapsed().as_secs_f64();
    s
}

/// Run seeds `first..first + count` of `make(seed)` and return the first whose
/// report has a safety violation, with how many seeds it took.
pub fn search(first: u64, count: u64, make: impl Fn(u64) -> SimConfig) -> Option<(u64, Report)> {
    (first..first + count).find_map(|seed| {
        let report = run(&make(seed));
        report
            .first_safety()
            .is_some()
            .then(|| (seed - first + 1, report))
    })
}
