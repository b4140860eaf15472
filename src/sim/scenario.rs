//! Named adversarial scenarios: scripted, deterministic schedules that drive
//! the protocol to the edge one of its rules or guards protects.
//!
//! Random seeds rarely line up the several coincidences a subtle bug needs
//! (a crash between two particular writes, a pause of exactly the right
//! nodes, a read at the wrong moment). Each scenario lines them up on
//! purpose, on a perfect network, and is run twice by the tests: with every
//! rule on it must be clean, and with its guard switched off
//! (`synod sim --scenario NAME --break RULE`) the simulator's invariants must
//! catch the violation.

use super::invariants::Violation;
use super::world::{nonce, SCRIPT_CLIENT};
use super::{run as simulate, Faults, PlanAction, Report, SimConfig, Workload};
use crate::check::history::Status;
use crate::kv::Op;
use crate::paxos::{Ballot, Command, Envelope, Message, PromiseLimit, Role, Rule, Rules, Value};

/// One named scenario.
pub struct Scenario {
    /// Its name on the command line.
    pub name: &'static str,
    /// What it does, in one line.
    pub about: &'static str,
    /// The rule or guard it shows the need for.
    pub guard: Rule,
    build: fn(&mut SimConfig),
    expect: Option<fn(&Report) -> Option<String>>,
}

/// Every scenario, in the order `synod sim --scenarios` lists them.
pub const ALL: [Scenario; 10] = [
    Scenario {
        name: "ballot-reuse",
        about: "a leader dies before its own acceptor syncs, restarts cut off from the two acceptors that accepted its value, and campaigns again",
        guard: Rule::Round,
        build: ballot_reuse,
        expect: None,
    },
    Scenario {
        name: "stale-read",
        about: "a leader is cut off in a minority, a new leader commits a write, and a client reads at the old leader",
        guard: Rule::Confirm,
        build: stale_read,
        expect: None,
    },
    Scenario {
        name: "lagging-promise",
        about: "a node that missed 200 writes of 1 KB campaigns; the promises it needs are larger than a frame",
        guard: Rule::Chunks,
        build: lagging_promise,
        expect: None,
    },
    Scenario {
        name: "non-member",
        about: "nodes 9 and 10, not in the cluster, vote for a value only the isolated leader accepted",
        guard: Rule::Members,
        build: non_member,
        expect: None,
    },
    Scenario {
        name: "dead-incarnation",
        about: "heartbeat acks queued for a leader that died are replayed to its next process, which leads again and is then cut off",
        guard: Rule::Fresh,
        build: dead_incarnation,
        expect: None,
    },
    Scenario {
        name: "disruptive-node",
        about: "a node cut off from the leader alone, but not from the followers, keeps timing out",
        guard: Rule::Prevote,
        build: disruptive_node,
        expect: Some(leader_kept),
    },
    Scenario {
        name: "forgotten-client",
        about: "a client's write is applied, the client table (of one) forgets it for another, and the write arrives again",
        guard: Rule::Sessions,
        build: forgotten_client,
        expect: None,
    },
    Scenario {
        name: "new-members",
        about: "five nodes shrink to three; a leader of the three chooses a slot of the new configuration with two of them, and a leader elected by the old one proposes there",
        guard: Rule::Reconfig,
        build: new_members,
        expect: None,
    },
    Scenario {
        name: "remove-leader",
        about: "the leader of three removes itself; the two left must have a leader again at once, not an election timeout later",
        guard: Rule::Handover,
        build: remove_leader,
        expect: Some(successor_soon),
    },
    Scenario {
        name: "degraded-add",
        about: "a cluster of three has lost a member and is asked to add a fourth voter that has not started; writes must go on",
        guard: Rule::Strict,
        build: degraded_add,
        expect: Some(writes_go_on),
    },
];

/// The scenario called `name`.
pub fn find(name: &str) -> Option<&'static Scenario> {
    ALL.iter().find(|s| s.name == name)
}

impl Scenario {
    /// The scenario's configuration with `rules`.
    pub fn config(&self, rules: Rules) -> SimConfig {
        let mut c = SimConfig::cluster(1, 5, 0, 0);
        c.workload = Workload::Scripted;
        c.faults = Faults::none();
        c.rules = rules;
        c.scenario = Some(self.name.to_string());
        (self.build)(&mut c);
        c
    }

    /// Play it with `rules`; its own expectation is checked beside the
    /// invariants.
    pub fn run(&self, rules: Rules) -> Report {
        run_config(self, &self.config(rules))
    }
}

/// Play scenario `s` with a configuration made by [`Scenario::config`] (and
/// perhaps changed, say to trace).
pub fn run_config(s: &Scenario, cfg: &SimConfig) -> Report {
    let mut report = simulate(cfg);
    if let Some(what) = s.expect.and_then(|f| f(&report)) {
        report.violations.push(Violation::Expectation { what });
    }
    report
}

fn put(key: &str, value: &str) -> Op {
    Op::Put {
        key: key.into(),
        value: value.into(),
    }
}

fn get(key: &str) -> Op {
    Op::Get { key: key.into() }
}

/// Five nodes. Node 1 leads at ballot 1.1 with a disk too slow to sync, so
/// its own acceptor's promise and accepts never become durable. It proposes v
/// for slot 0; only acceptors 2 and 3 (durably) accept it. Node 1 dies and
/// comes back cut off from 2 and 3, and campaigns: without a durable round it
/// picks 1.1 again, 4 and 5 promise it again, and it proposes v' for slot 0
/// under the same ballot, chosen by 1, 4 and 5. Then node 2 leads: the
/// promises report ballot 1.1 with v (from 2 and 3) and with v' (from 4), and
/// nothing says which was chosen.
fn ballot_reuse(c: &mut SimConfig) {
    c.nodes = 5;
    c.plan = vec![
        (
            0,
            PlanAction::SlowDisk {
                node: 1,
                role: Role::Acceptor,
                ms: 1_000_000,
            },
        ),
        (1, PlanAction::Campaign(1)),
        (100, PlanAction::Split(vec![0, 0, 0, 1, 1])),
        (
            110,
            PlanAction::Client {
                node: 1,
                op: put("k", "v"),
            },
        ),
        (150, PlanAction::Crash(1)),
        (152, PlanAction::Split(vec![0, 1, 1, 0, 0])),
        (160, PlanAction::Restart(1)),
        (170, PlanAction::Campaign(1)),
        (
            190,
            PlanAction::Client {
                node: 1,
                op: put("k", "v-prime"),
            },
        ),
        (300, PlanAction::Crash(1)),
        (301, PlanAction::Heal),
        (310, PlanAction::Campaign(2)),
        (400, PlanAction::Restart(1)),
        (
            500,
            PlanAction::Client {
                node: 2,
                op: get("k"),
            },
        ),
    ];
    c.fault_ms = 800;
}

/// Five nodes, check-quorum after 600 ms. Node 1 leads and writes k = a; the
/// cluster splits {1,2} | {3,4,5}; node 3 leads the majority and writes
/// k = b; then a client asks node 1, still leading in its own eyes, for k.
fn stale_read(c: &mut SimConfig) {
    c.nodes = 5;
    c.proposer.election_ticks = (15, 60);
    c.plan = vec![
        (1, PlanAction::Campaign(1)),
        (
            50,
            PlanAction::Client {
                node: 1,
                op: put("k", "a"),
            },
        ),
        (100, PlanAction::Split(vec![0, 0, 1, 1, 1])),
        (300, PlanAction::Campaign(3)),
        (
            350,
            PlanAction::Client {
                node: 3,
                op: put("k", "b"),
            },
        ),
        (
            400,
            PlanAction::Client {
                node: 1,
                op: get("k"),
            },
        ),
    ];
    c.fault_ms = 1_200;
}

/// Three nodes, frames of at most 64 KiB. Node 3 is cut off while node 1
/// writes 200 values of 1 KB; then node 1 dies and node 3 campaigns from
/// slot 0: acceptor 2's promise would carry all 200 KB at once.
fn lagging_promise(c: &mut SimConfig) {
    c.nodes = 3;
    c.max_frame = 64 << 10;
    c.promise_limit = PromiseLimit {
        entries: 64,
        bytes: 16 << 10,
    };
    c.proposer.fast.max_batch = 4;
    let big = "x".repeat(1000);
    let mut plan = vec![
        (1, PlanAction::Campaign(1)),
        (50, PlanAction::Split(vec![0, 0, 1])),
    ];
    for i in 0..200u64 {
        plan.push((
            60 + 2 * i,
            PlanAction::Client {
                node: 1,
                op: put(&format!("k{i}"), &big),
            },
        ));
    }
    plan.extend([
        (600, PlanAction::Crash(1)),
        (600, PlanAction::Heal),
        (601, PlanAction::Campaign(3)),
        (900, PlanAction::Restart(1)),
        (
            1_000,
            PlanAction::Client {
                node: 3,
                op: get("k7"),
            },
        ),
    ]);
    c.plan = plan;
    c.fault_ms = 1_500;
}

/// Five nodes. Node 1 leads, is cut off alone, and proposes v for slot 0;
/// only its own acceptor accepts. Strangers 9 and 10 send it votes for v and
/// heartbeat acks.
fn non_member(c: &mut SimConfig) {
    c.nodes = 5;
    let op = put("k", "v");
    // The first scripted client's registration (before its write), alone in
    // the first slot of node 1's first ballot: the value the strangers vote
    // for.
    let value = Value::Batch(vec![Command {
        client: nonce(SCRIPT_CLIENT + 1),
        seq: 0,
        op: Op::Register,
    }]);
    let ballot = Ballot::new(1, 1);
    let mut plan = vec![
        (1, PlanAction::Campaign(1)),
        (50, PlanAction::Split(vec![0, 1, 1, 1, 1])),
        (60, PlanAction::Client { node: 1, op }),
    ];
    for stranger in [9, 10] {
        plan.push((
            80,
            PlanAction::Inject(Envelope {
                from: stranger,
                to: 1,
                msg: Message::Accepted {
                    ballot,
                    slot: 0,
                    digest: value.digest(),
                },
            }),
        ));
        plan.push((
            95,
            PlanAction::Inject(Envelope {
                from: stranger,
                to: 1,
                msg: Message::HeartbeatAck {
                    ballot,
                    seq: 1 << 40,
                },
            }),
        ));
    }
    plan.push((
        90,
        PlanAction::Client {
            node: 1,
            op: get("k"),
        },
    ));
    c.plan = plan;
    c.fault_ms = 1_000;
}

/// Three nodes. Node 1 leads and serves 60 reads (each starts a heartbeat
/// round), then dies with acks of its last rounds in flight; 2 and 3 queue
/// them. Node 1 restarts and leads again at a new ballot, is cut off, node 2
/// leads and writes k = b, and then the old acks reach node 1.
fn dead_incarnation(c: &mut SimConfig) {
    c.nodes = 3;
    // The script elects node 1 again after its restart; with fast elections
    // node 2 would take over the moment node 1's links closed (as it would
    // have to wait for a timeout had node 1 been paused instead), and the
    // stale acknowledgements would never meet the leader they could fool.
    c.proposer.fast.fast_election = false;
    let mut plan = vec![
        (1, PlanAction::Campaign(1)),
        (
            10,
            PlanAction::Client {
                node: 1,
                op: put("k", "a"),
            },
        ),
    ];
    for i in 0..60 {
        plan.push((
            20 + 3 * i,
            PlanAction::Client {
                node: 1,
                op: get("k"),
            },
        ));
    }
    plan.extend([
        (201, PlanAction::Crash(1)),
        (210, PlanAction::Restart(1)),
        (212, PlanAction::Campaign(1)),
        (240, PlanAction::Split(vec![0, 1, 1])),
        (250, PlanAction::Campaign(2)),
        (
            270,
            PlanAction::Client {
                node: 2,
                op: put("k", "b"),
            },
        ),
        (
            320,
            PlanAction::Client {
                node: 1,
                op: get("k"),
            },
        ),
    ]);
    c.plan = plan;
    c.fault_ms = 1_000;
}

/// Five nodes. Node 1 leads and keeps writing; from 100 ms on node 5 cannot
/// reach node 1, but still reaches 2, 3 and 4, which hear node 1 fine.
fn disruptive_node(c: &mut SimConfig) {
    c.nodes = 5;
    let mut plan = vec![(1, PlanAction::Campaign(1)), (100, PlanAction::Cut(1, 5))];
    for i in 0..40 {
        plan.push((
            50 + 50 * i,
            PlanAction::Client {
                node: 1,
                op: put("k", &format!("v{i}")),
            },
        ));
    }
    c.plan = plan;
    c.fault_ms = 2_500;
}

/// Node 1 stays the only leader from its first election to the end of the
/// faults: node 5's timeouts must not depose it.
/// Three nodes, a client table of one. A client opens session 1 and writes
/// k = a; another opens session 2 (the first is forgotten) and writes k = b;
/// then the first write arrives again (a retry that was on its way, or a
/// duplicate), and a client reads k. Applied again, it would set k back to a.
fn forgotten_client(c: &mut SimConfig) {
    c.nodes = 3;
    c.replica.max_sessions = 1;
    let first = Command {
        client: 1,
        seq: 1,
        op: put("k", "a"),
    };
    c.plan = vec![
        (1, PlanAction::Campaign(1)),
        (
            50,
            PlanAction::Client {
                node: 1,
                op: put("k", "a"),
            },
        ),
        (
            150,
            PlanAction::Client {
                node: 1,
                op: put("k", "b"),
            },
        ),
        (
            250,
            PlanAction::Request {
                node: 1,
                cmd: first,
            },
        ),
        (
            350,
            PlanAction::Client {
                node: 1,
                op: get("k"),
            },
        ),
    ];
    c.fault_ms = 500;
}

/// Five nodes shrink to {1, 2, 3}, α = 4. The change is chosen at slot 1
/// (after node 1's no-op at 0), so it governs from slot 5. Slots 2 and 3 are
/// a client's session and write. Node 2 then leads, with the new voters'
/// promises too, and is cut off with node 3: it proposes two sessions, at
/// slot 4 (old configuration: {2, 3} is no quorum) and slot 5 (new: {2, 3}
/// is a quorum, chosen). Node 1, with 4 and 5, is elected by the old
/// configuration from slot 4 and proposes two sessions of its own. With the
/// guard it first asks the new voters for promises from slot 5, hears of
/// node 2's value after the heal, and proposes it again; without it, it
/// proposes its own at slot 5, and after the heal 2 and 3 accept it.
fn new_members(c: &mut SimConfig) {
    c.nodes = 5;
    c.alpha = 4;
    let shrink = || PlanAction::Reconfig {
        node: 1,
        voters: vec![1, 2, 3],
        learners: vec![],
    };
    let client = |node, v: &str| PlanAction::Client {
        node,
        op: put("k", v),
    };
    c.plan = vec![
        (1, PlanAction::Campaign(1)),
        // The first is refused (no entry of node 1's ballot is chosen yet)
        // and proposes a no-op; the second goes in.
        (20, shrink()),
        (40, shrink()),
        (60, client(1, "a")),
        (150, PlanAction::Campaign(2)),
        (200, PlanAction::Split(vec![0, 1, 1, 0, 0])),
        (210, client(2, "b")),
        (212, client(2, "c")),
        (300, PlanAction::Campaign(1)),
        (350, client(1, "d")),
        (352, client(1, "e")),
        (500, PlanAction::Heal),
    ];
    c.fault_ms = 900;
}

/// When `remove-leader` asks for the change (its second try: the first is
/// refused until a slot of node 1's ballot is chosen).
const REMOVE_AT: u64 = 40;
/// How soon after it a voter of the new configuration must lead.
const SUCCESSOR_WITHIN: u64 = 60;

fn remove_leader(c: &mut SimConfig) {
    c.nodes = 3;
    c.alpha = 4;
    let remove = || PlanAction::Reconfig {
        node: 1,
        voters: vec![2, 3],
        learners: vec![],
    };
    c.plan = vec![
        (1, PlanAction::Campaign(1)),
        (20, remove()),
        (REMOVE_AT, remove()),
        (
            300,
            PlanAction::Client {
                node: 2,
                op: put("k", "after"),
            },
        ),
    ];
    c.fault_ms = 600;
}

/// When `degraded-add` asks for the fourth voter, and writes after it.
const ADD_AT: u64 = 150;
/// The write `degraded-add` expects chosen, and how soon.
const WRITE_AT: u64 = 250;
const WRITE_WITHIN: u64 = 200;

/// Four nodes shrink to {1, 2, 3} (α = 4; the idle leader fills no-ops up
/// to where the change governs). Node 3 dies, and node 4 (no longer a
/// member, as if its process were not started yet) is down too. The
/// operator asks for voters {1, 2, 3, 4}: a quorum of four is three, and
/// only nodes 1 and 2 are up. With the strict check the change is refused
/// ("only 2 of the new configuration's 4 voters are reachable") and the
/// write at 250 ms is chosen by the two; without it the change is chosen by
/// {1, 2} of the old configuration, governs four slots later, and from
/// there nothing can be chosen until a third voter comes back.
fn degraded_add(c: &mut SimConfig) {
    c.nodes = 4;
    c.alpha = 4;
    let reconfig = |voters: Vec<u64>| PlanAction::Reconfig {
        node: 1,
        voters,
        learners: vec![],
    };
    c.plan = vec![
        (1, PlanAction::Campaign(1)),
        // Refused until an entry of node 1's ballot is chosen; then in.
        (20, reconfig(vec![1, 2, 3])),
        (40, reconfig(vec![1, 2, 3])),
        (100, PlanAction::Crash(3)),
        (100, PlanAction::Crash(4)),
        (ADD_AT, reconfig(vec![1, 2, 3, 4])),
        (
            WRITE_AT,
            PlanAction::Client {
                node: 1,
                op: put("k", "after"),
            },
        ),
    ];
    c.fault_ms = 700;
}

fn writes_go_on(r: &Report) -> Option<String> {
    let done = r.history.as_ref().and_then(|h| {
        h.ops
            .iter()
            .find(|o| o.invoke >= WRITE_AT && o.is_write())
            .and_then(|o| o.complete.filter(|_| matches!(o.status, Status::Ok(_))))
    });
    match done {
        Some(at) if at <= WRITE_AT + WRITE_WITHIN => None,
        Some(at) => Some(format!(
            "the write sent at {WRITE_AT} ms succeeded only at {at} ms (more than {WRITE_WITHIN} ms later): the change at {ADD_AT} ms left too few reachable voters"
        )),
        None => Some(format!(
            "the write sent at {WRITE_AT} ms never succeeded: the change at {ADD_AT} ms left too few reachable voters to choose"
        )),
    }
}

fn successor_soon(r: &Report) -> Option<String> {
    let next = r
        .leaders
        .iter()
        .find(|(at, node, _)| *at > REMOVE_AT && *node != 1)
        .map(|(at, node, _)| (*at, *node));
    match next {
        Some((at, _)) if at <= REMOVE_AT + SUCCESSOR_WITHIN => None,
        Some((at, node)) => Some(format!(
            "node 1 removed itself at {REMOVE_AT} ms; node {node} led only at {at} ms (more than {SUCCESSOR_WITHIN} ms later)"
        )),
        None => Some(format!(
            "node 1 removed itself at {REMOVE_AT} ms; no other node led before {} ms",
            r.config.fault_ms
        )),
    }
}

fn leader_kept(r: &Report) -> Option<String> {
    let deposing: Vec<String> = r
        .leaders
        .iter()
        .filter(|(at, node, _)| *at < r.config.fault_ms && (*node != 1 || *at > 50))
        .map(|(at, node, b)| format!("node {node} at {at} ms (ballot {b})"))
        .collect();
    (!deposing.is_empty()).then(|| {
        format!(
            "the healthy leader (node 1) was deposed: new leaders {}",
            deposing.join(", ")
        )
    })
}
