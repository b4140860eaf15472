//! Simulated histories: many seeds under every fault, every invariant checked after
//! every step. A failure prints the `synod sim` command that replays it.

use synod::paxos::{Quorums, Rule, Rules};
use synod::sim::{self, scenario, Faults, SimConfig};

fn assert_clean(cfg: &SimConfig) -> sim::Report {
    let report = sim::run(cfg);
    assert!(report.is_clean(), "{}", report.summary());
    report
}

#[test]
fn single_decree_seeds_are_clean() {
    // Paxos Made Simple §2: agreement, validity and stability under loss,
    // duplication, reordering, partitions, pauses, crashes and restarts.
    // 3 and 5 acceptors, 1 to 3 competing proposers.
    for seed in 0..2_400 {
        let (acceptors, proposers) =
            [(3, 1), (3, 2), (3, 3), (5, 1), (5, 2), (5, 3)][seed as usize % 6];
        let report = assert_clean(&SimConfig::decree(seed, acceptors, proposers));
        assert!(
            report.chosen.contains_key(&0),
            "seed {seed}: nothing chosen"
        );
    }
}

#[test]
fn cluster_seeds_are_clean() {
    // Multi-Paxos with 3 to 7 replicas and concurrent clients: one value per
    // slot, replicas agree on a prefix, each command applied once, nothing
    // acknowledged lost, the history linearizable, and after faults stop a new
    // command commits within the bound.
    let mut committed = 0;
    for seed in 0..500 {
        let nodes = 3 + (seed as usize % 5);
        let report = assert_clean(&SimConfig::cluster(seed, nodes, 3, 20));
        committed += report.stats.commands_committed;
    }
    assert!(
        committed > 10_000,
        "only {committed} commands committed over 500 seeds"
    );
}

#[test]
fn same_seed_same_history() {
    let mut cfg = SimConfig::cluster(42, 5, 3, 10);
    cfg.trace = true;
    let a = sim::run(&cfg);
    let b = sim::run(&cfg);
    assert_eq!(a.trace, b.trace);
    assert!(a.trace.len() > 100);
    assert_eq!(a.history, b.history);
}

fn caught_within(limit: u64, make: impl Fn(u64) -> SimConfig) -> (u64, sim::Report) {
    let found = sim::search(0, limit, make);
    found.unwrap_or_else(|| panic!("no violation within {limit} seeds"))
}

#[test]
fn swarm_seeds_are_clean() {
    // The swarm: leader crashes with immediate restarts while other nodes are
    // paused, and slow syncs, so a restarted proposer must find a ballot above
    // everything it used (Paxos Made Simple §2.5).
    let swarm = Faults::parse("swarm,loss,dup,delay,partition").unwrap();
    for seed in 0..500 {
        let mut c = SimConfig::cluster(1_000_000 + seed, 3 + (seed as usize % 3), 3, 20);
        c.faults = swarm.clone();
        assert_clean(&c);
    }
}

#[test]
fn seeds_with_snapshots_every_ten_slots_are_clean() {
    // Snapshots, log compaction, catch-up by snapshot and a client table that
    // overflows, under every fault: a crash may fall while a snapshot is being
    // written, installed, or the logs rewritten. Every invariant holds.
    let (mut snapshots, mut chunks) = (0, 0);
    for seed in 0..500 {
        let mut c = SimConfig::cluster(2_000_000 + seed, 3 + (seed as usize % 3), 4, 40);
        c.replica = sim::snapshotting(10);
        let r = assert_clean(&c);
        snapshots += r.stats.snapshots;
        chunks += r.stats.snapshot_chunks;
    }
    eprintln!("{snapshots} snapshots, {chunks} chunks sent");
    assert!(
        snapshots > 10_000 && chunks > 100,
        "{snapshots} snapshots, {chunks} chunks"
    );
}

#[test]
fn the_swarm_finds_a_ballot_used_twice() {
    // Without a durable round, random schedules rarely line a reuse up; the
    // swarm's bias does, within a few hundred seeds on three nodes.
    let (seeds, report) = caught_within(400, |seed| {
        let mut c = SimConfig::cluster(seed, 3, 3, 30);
        c.faults = Faults::parse("swarm").unwrap();
        c.rules = Rules::breaking(Some(Rule::Round));
        c
    });
    let v = report.first_safety().unwrap();
    eprintln!("swarm, round off: caught after {seeds} seed(s): {v}");
    assert_eq!(v.name(), "ballot-reuse", "{v}");
}

#[test]
fn every_scenario_holds_with_its_guard_and_breaks_without_it() {
    // Each scenario drives the protocol to the edge its guard protects: clean
    // with every rule on, and caught by the named check with the guard off.
    let caught_by = |name: &str| match name {
        "ballot-reuse" => ["ballot-reuse", "agreement"].as_slice(),
        "stale-read" | "dead-incarnation" => &["not-linearizable"],
        "lagging-promise" => &["frame-limit"],
        "non-member" => &["agreement"],
        "disruptive-node" => &["expectation"],
        "forgotten-client" => &["applied-twice", "not-linearizable"],
        "new-members" => &["agreement"],
        "remove-leader" | "degraded-add" => &["expectation"],
        other => panic!("no expectation for scenario {other}"),
    };
    for s in &scenario::ALL {
        let clean = s.run(Rules::ALL);
        assert!(clean.is_clean(), "{}: {}", s.name, clean.summary());
        let broken = s.run(Rules::breaking(Some(s.guard)));
        let names: Vec<&str> = broken.violations.iter().map(|v| v.name()).collect();
        for want in caught_by(s.name) {
            assert!(
                names.contains(want),
                "{} with {} off: expected {want}, got {names:?}",
                s.name,
                s.guard
            );
        }
    }
}

#[test]
fn membership_changes_in_the_fault_mix_keep_every_invariant() {
    // Issue 23: the leader is asked for random changes (1 to every node as
    // voters, the rest learners or left out) among crashes, partitions,
    // pauses and message faults, at every size from 1 to 7, with α small
    // enough that changes take effect within a run, and with snapshots.
    let faults = Faults::parse("all,membership").unwrap();
    let (mut proposed, mut chosen) = (0, 0);
    for seed in 0..420u64 {
        let mut c = SimConfig::cluster(3_000_000 + seed, 1 + (seed as usize % 7), 3, 30);
        c.faults = faults.clone();
        c.alpha = [2, 4, 16][seed as usize / 7 % 3];
        if seed % 2 == 0 {
            c.replica = sim::snapshotting(7);
        }
        let r = assert_clean(&c);
        proposed += r.stats.changes;
        chosen += r.stats.configurations;
    }
    eprintln!("{proposed} changes proposed, {chosen} chosen");
    assert!(chosen > 300, "{proposed} proposed, {chosen} chosen");
}

#[test]
fn a_snapshot_installed_brings_its_configurations_before_its_slot() {
    // Seed 7234 broke agreement while shells made an installed snapshot
    // durable before the replica's `Configured` notice was delivered: the
    // learner jumped over a change it never saw and counted a vote from a
    // node that no longer voted. Both shells now save it after the notices.
    let mut c = SimConfig::cluster(7234, 5, 3, 30);
    c.faults = Faults::parse("all,membership").unwrap();
    c.alpha = 4;
    c.replica = sim::snapshotting(7);
    let r = assert_clean(&c);
    assert!(r.stats.configurations >= 1, "{}", r.summary());
}

#[test]
fn random_changes_without_the_reconfig_rule_are_caught() {
    let (seeds, report) = caught_within(40, |seed| {
        let mut c = SimConfig::cluster(seed, 5, 3, 30);
        c.faults = Faults::parse("all,membership").unwrap();
        c.alpha = 4;
        c.rules = Rules::breaking(Some(Rule::Reconfig));
        c
    });
    let v = report.first_safety().expect("a safety violation");
    eprintln!("membership, reconfig off: caught after {seeds} seed(s): {v}");
}

#[test]
fn an_acceptor_that_answers_before_its_sync_is_caught_at_once() {
    // Persist before send, checked on every message an acceptor releases.
    let mut c = SimConfig::cluster(1, 3, 1, 1);
    c.rules = Rules::breaking(Some(Rule::Persist));
    let r = sim::run(&c);
    assert_eq!(r.first_safety().map(|v| v.name()), Some("unpersisted"));
}

#[test]
fn every_broken_rule_is_caught_in_single_decree() {
    for rule in [Rule::Persist, Rule::Promise, Rule::P2c] {
        let (seeds, report) = caught_within(60, |seed| {
            let mut c = SimConfig::decree(seed, 3, 3);
            c.rules = Rules::breaking(Some(rule));
            c
        });
        let v = report.first_safety().unwrap();
        eprintln!("decree, {rule} off: caught after {seeds} seed(s): {v}");
        if rule == Rule::Persist {
            assert_eq!(v.name(), "unpersisted", "{rule}: {v}");
        } else {
            assert_eq!(v.name(), "agreement", "{rule}: {v}");
        }
    }
}

#[test]
fn every_broken_rule_is_caught_in_a_cluster() {
    for rule in [Rule::Persist, Rule::Promise, Rule::P2c] {
        let (seeds, report) = caught_within(80, |seed| {
            let mut c = SimConfig::cluster(seed, 5, 3, 20);
            c.rules = Rules::breaking(Some(rule));
            c
        });
        eprintln!(
            "cluster, {rule} off: caught after {seeds} seed(s): {}",
            report.first_safety().unwrap()
        );
    }
}

#[test]
fn the_replay_command_names_the_run() {
    let mut c = SimConfig::cluster(7, 4, 2, 5);
    c.rules = Rules::breaking(Some(Rule::P2c));
    assert_eq!(
        c.replay_command(),
        "synod sim --seed 7 --nodes 4 --clients 2 --ops 5 --keys 3 --faults crash,partition,pause,loss,dup,delay --break p2c"
    );
}

#[test]
fn flexible_quorums_keep_every_invariant() {
    // Flexible Paxos: only a phase-1 and a phase-2 quorum must intersect.
    // N=4 with (3, 2), N=6 with (4, 3), N=5 with (4, 2), every fault kind.
    let all = Faults::parse("swarm,crash,pause,partition,loss,dup,delay").unwrap();
    let shapes = [(4, 3, 2), (6, 4, 3), (5, 4, 2)];
    let mut committed = 0;
    for seed in 0..510u64 {
        let (n, q1, q2) = shapes[seed as usize % shapes.len()];
        let mut c = SimConfig::cluster(4_000_000 + seed, n, 3, 20);
        c.faults = all.clone();
        c.proposer.quorums = Some(Quorums {
            phase1: q1,
            phase2: q2,
        });
        committed += assert_clean(&c).stats.commands_committed;
    }
    assert!(
        committed > 510 * 20,
        "the clients got work done: {committed}"
    );
}

#[test]
fn quorums_that_do_not_intersect_are_caught() {
    // |Q1| + |Q2| <= N: two leaders can each choose a value in one slot.
    let all = Faults::parse("swarm,crash,pause,partition,loss,dup,delay").unwrap();
    for (n, q) in [(4, Some((2, 2))), (5, None), (6, Some((3, 3)))] {
        let (seeds, report) = caught_within(400, |seed| {
            let mut c = SimConfig::cluster(seed, n, 4, 40);
            c.faults = all.clone();
            c.rules = Rules::breaking(Some(Rule::Intersection));
            c.proposer.quorums = q.map(|(phase1, phase2)| Quorums { phase1, phase2 });
            c
        });
        let v = report.first_safety().unwrap();
        eprintln!("N={n}, quorums {q:?}, intersection off: caught after {seeds} seed(s): {v}");
        assert!(
            matches!(
                v.name(),
                "agreement" | "validity" | "divergence" | "not-linearizable" | "lost-write"
            ),
            "{v}"
        );
    }
}
