//! `sim`: seeded histories in virtual time, and the named scenarios.

use std::io::Write as _;
use std::time::Instant;

use clap::Args;

use super::Exit;
use crate::paxos::{Quorums, Rule, Rules};
use crate::sim::{self, Faults, SimConfig, Workload};

#[derive(Debug, Args)]
pub struct SimArgs {
    /// The seed every random choice derives from
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Run this many consecutive seeds from --seed and summarise
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    seeds: u64,
    /// Single-decree Paxos with this many acceptors (with --proposers)
    #[arg(long, value_name = "N", conflicts_with_all = ["nodes", "clients", "ops", "keys"],
          value_parser = clap::value_parser!(u64).range(1..=64))]
    acceptors: Option<u64>,
    /// Single-decree Paxos: how many of the nodes propose a value of their own
    #[arg(long, value_name = "K", requires = "acceptors", value_parser = clap::value_parser!(u64).range(1..=64))]
    proposers: Option<u64>,
    /// A Multi-Paxos cluster of this many replicas (the default mode)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=64))]
    nodes: Option<u64>,
    /// Concurrent clients in cluster mode
    #[arg(long, value_name = "C", value_parser = clap::value_parser!(u64).range(0..=1000))]
    clients: Option<u64>,
    /// Operations per client in cluster mode
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(0..=100_000))]
    ops: Option<u64>,
    /// Keys the clients use in cluster mode
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..=100_000))]
    keys: Option<u64>,
    /// Fault kinds while faults are on: crash, partition, pause, loss, dup, delay, swarm, membership, all, none (`all` leaves membership out)
    #[arg(long, default_value = "all", value_name = "LIST", value_parser = Faults::parse)]
    faults: Faults,
    /// Virtual milliseconds of faults before everything heals
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(0..=86_400_000))]
    fault_ms: Option<u64>,
    /// Take a snapshot every N applied slots and compact the logs (0: never)
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
    snapshot_every: u64,
    /// Flexible quorums in cluster mode: phase-1 and phase-2 sizes, e.g. 3,2 for four nodes (default: majorities)
    #[arg(long, value_name = "Q1,Q2", value_parser = parse_quorums, conflicts_with = "acceptors")]
    quorums: Option<Quorums>,
    /// Slots between a membership change being chosen and taking effect (Lamport's α; small values make changes take effect within a short run)
    #[arg(long, value_name = "SLOTS", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    alpha: Option<u64>,
    /// Switch one Paxos rule or guard off (see `synod sim --scenarios`)
    #[arg(long = "break", value_name = "RULE")]
    broken: Option<Rule>,
    /// Print every message and state change
    #[arg(long)]
    trace: bool,
    /// Play one named adversarial scenario (exit 0 if every invariant holds)
    #[arg(long, value_name = "NAME", conflicts_with_all = ["seeds", "acceptors", "nodes", "clients", "ops", "keys", "faults", "fault_ms"])]
    scenario: Option<String>,
    /// List the named scenarios, a line each
    #[arg(long, conflicts_with = "scenario")]
    scenarios: bool,
}

pub fn run(a: SimArgs) -> Result<(), Exit> {
    if a.scenarios {
        for s in &sim::scenario::ALL {
            println!("{:<18} (--break {:<8}) {}", s.name, s.guard.name(), s.about);
        }
        return Ok(());
    }
    if let Some(name) = &a.scenario {
        return scenario(name, a.broken, a.trace);
    }
    let make = |seed: u64| -> SimConfig {
        let mut cfg = match a.acceptors {
            Some(n) => SimConfig::decree(seed, n as usize, a.proposers.unwrap_or(2) as usize),
            None => {
                let mut c = SimConfig::cluster(
                    seed,
                    a.nodes.unwrap_or(5) as usize,
                    a.clients.unwrap_or(3) as usize,
                    a.ops.unwrap_or(30) as usize,
                );
                if let (Some(k), Workload::Cluster { keys, .. }) = (a.keys, &mut c.workload) {
                    *keys = k as usize;
                }
                c
            }
        };
        cfg.faults = a.faults.clone();
        if a.snapshot_every > 0 {
            cfg.replica = sim::snapshotting(a.snapshot_every);
        }
        cfg.rules = Rules::breaking(a.broken);
        cfg.proposer.quorums = a.quorums;
        cfg.trace = a.trace;
        if let Some(ms) = a.fault_ms {
            cfg.fault_ms = ms;
        }
        if let Some(alpha) = a.alpha {
            cfg.alpha = alpha;
        }
        cfg
    };
    let probe = make(a.seed);
    if let Workload::Decree { proposers } = probe.workload {
        if proposers > probe.nodes {
            return Err(Exit::usage(format!(
                "--proposers must be between 1 and the number of acceptors ({})",
                probe.nodes
            )));
        }
    }
    if let Some(why) = a.quorums.and_then(|q| q.problem(probe.nodes, probe.rules)) {
        return Err(Exit::usage(why));
    }
    let started = Instant::now();
    if a.seeds == 1 {
        let report = sim::run(&probe);
        let mut stdout = std::io::stdout().lock();
        for line in &report.trace {
            let _ = writeln!(stdout, "{line}");
        }
        let _ = write!(stdout, "{}", report.summary());
        let _ = writeln!(
            stdout,
            "wall time: {:.3} s",
            started.elapsed().as_secs_f64()
        );
        return if report.is_clean() {
            Ok(())
        } else if report.is_undecided() {
            Err(Exit::undecided(
                "inconclusive: a check could not be decided within its budget",
            ))
        } else {
            Err(Exit::failed("the simulated history violated an invariant"))
        };
    }
    let sweep = sim::sweep(a.seed, a.seeds, make, |seed, report| {
        if let Some(v) = report
            .violations
            .first()
            .map(|v| v.to_string())
            .or_else(|| {
                report
                    .undecided
                    .first()
                    .map(|u| format!("INCONCLUSIVE: {u}"))
            })
        {
            println!("seed {seed}: {v}");
            println!("  replay: {}", report.config.replay_command());
        }
    });
    println!("{}", sweep.summary());
    if sweep.failing.is_empty() && sweep.undecided.is_empty() {
        Ok(())
    } else if sweep.failing.is_empty() {
        Err(Exit::undecided(format!(
            "{} seed(s) undecided: a check ran out of its budget",
            sweep.undecided.len()
        )))
    } else {
        Err(Exit::failed(format!(
            "{} seed(s) violated an invariant",
            sweep.failing.len()
        )))
    }
}

fn scenario(name: &str, broken: Option<Rule>, trace: bool) -> Result<(), Exit> {
    let s = sim::scenario::find(name).ok_or_else(|| {
        let names: Vec<&str> = sim::scenario::ALL.iter().map(|s| s.name).collect();
        Exit::usage(format!(
            "no scenario named `{name}`; the scenarios are: {} (`synod sim --scenarios` says what each does)",
            names.join(", ")
        ))
    })?;
    let mut cfg = s.config(Rules::breaking(broken));
    cfg.trace = trace;
    let report = sim::scenario::run_config(s, &cfg);
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "scenario {}: {}", s.name, s.about);
    for line in &report.trace {
        let _ = writeln!(stdout, "{line}");
    }
    let _ = write!(stdout, "{}", report.summary());
    if report.is_clean() {
        if broken.is_none() {
            let _ = writeln!(
                stdout,
                "(try `synod sim --scenario {} --break {}` to see the guard it needs)",
                s.name, s.guard
            );
        }
        Ok(())
    } else {
        Err(Exit::failed("the scenario violated an invariant"))
    }
}

/// `Q1,Q2`: the phase-1 and phase-2 quorum sizes. (One typed value, not
/// clap's `value_delimiter`: exactly two parts, and an error that says so.)
// A clap value parser: `Result<_, String>` is clap's idiom.
fn parse_quorums(s: &str) -> Result<Quorums, String> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let num = |p: &str| {
        p.parse::<usize>()
            .map_err(|_| format!("`{p}` is not a quorum size; expected Q1,Q2 such as 3,2"))
    };
    match parts.as_slice() {
        [a, b] => Ok(Quorums {
            phase1: num(a)?,
            phase2: num(b)?,
        }),
        _ => Err(format!("`{s}`: expected Q1,Q2 such as 3,2")),
    }
}
