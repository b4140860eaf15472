//! `chaos`: a workload plus a seeded fault schedule, then the checkers' verdict.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{base, ClusterArg, Exit};
use crate::chaos::schedule::{self, Kind};
use crate::chaos::Outcome;
use crate::cluster::rundir::RunDir;
use crate::cluster::Cluster;
use crate::paxos::Rule;

#[derive(Debug, Args)]
pub struct ChaosArgs {
    /// A cluster file; default: the running cluster, else the built-in five nodes
    file: Option<PathBuf>,
    #[command(flatten)]
    c: ClusterArg,
    /// How long the workload and faults run: 60s, 2m, 1h
    #[arg(long, default_value = "30s", value_name = "D", value_parser = super::duration)]
    duration: Duration,
    /// Seed of the fault schedule (same seed, same schedule)
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Fault kinds: kill, pause, partition, loss, dup, delay, or all
    #[arg(long, default_value = "all", value_name = "LIST", value_parser = Kind::parse_list)]
    faults: BTreeSet<Kind>,
    /// Concurrent clients
    #[arg(long, default_value_t = 4, value_name = "C", value_parser = clap::value_parser!(u64).range(1..=256))]
    clients: u64,
    /// Keys the clients work on at a time
    #[arg(long, default_value_t = 5, value_name = "K", value_parser = clap::value_parser!(u64).range(1..=10_000))]
    keys: u64,
    /// Operations a key lives for; then the clients move on to a fresh key,
    /// and the retired key's history is checked and dropped
    #[arg(long, default_value_t = crate::chaos::KEY_OPS, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    key_ops: u64,
    /// Run the nodes with one Paxos rule or guard off: persist, promise, p2c, round, members, confirm, fresh, chunks, prevote, intersection, sessions, reconfig, handover, strict
    #[arg(long = "break", value_name = "RULE")]
    broken: Option<Rule>,
    /// Write history.jsonl (as the run goes), faults.jsonl, verdict.json,
    /// involved.json and report.html here
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Let more than a minority of nodes be down or paused at once
    #[arg(long)]
    allow_majority_loss: bool,
    /// Print the fault schedule this seed gives and exit (nothing runs)
    #[arg(long)]
    plan: bool,
    /// How the clients talk to the cluster: native (synod's client) or redis
    /// (the nodes' RESP ports; a cluster this run brings up gets them)
    #[arg(long, default_value = "native", value_name = "KIND", value_parser = ["native", "redis"])]
    client: String,
    /// Record every observation the checkers get (JSON lines), to judge the
    /// run again; for synod's own tests
    #[arg(long, value_name = "FILE", hide = true)]
    evidence: Option<PathBuf>,
    /// Search steps the linearizability checker may spend per key
    #[arg(long, value_name = "N", default_value_t = crate::chaos::CHECK_BUDGET, hide = true)]
    check_budget: u64,
    /// Keep the clients going past --duration until some node's snapshot
    /// covers SLOT (at most two minutes more); for synod's own tests
    #[arg(long, value_name = "SLOT", hide = true)]
    until_snapshot: Option<u64>,
    /// Bring the cluster up with each node a host of its own (`up --netns`,
    /// root): partitions and loss are made by the kernel (nftables)
    #[arg(long)]
    netns: bool,
}

pub fn run(a: ChaosArgs) -> Result<(), Exit> {
    if a.plan {
        let cluster = match &a.file {
            Some(f) => Cluster::load(f)?,
            None => match RunDir::find(&base(), a.c.cluster.as_deref()) {
                Ok(dir) => dir.cluster()?,
                Err(_) => Cluster::builtin(),
            },
        };
        let plan = schedule::build(
            a.seed,
            &cluster.ids(),
            a.duration.as_millis() as u64,
            &a.faults,
            a.allow_majority_loss,
            a.broken,
        );
        for e in plan {
            println!(
                "{:>7.1}s .. {:>7.1}s  {}",
                e.start_ms as f64 / 1e3,
                e.end_ms as f64 / 1e3,
                e.fault
            );
        }
        return Ok(());
    }
    let opts = crate::chaos::ChaosOptions {
        file: a.file,
        cluster: a.c.cluster,
        duration: a.duration,
        seed: a.seed,
        kinds: a.faults,
        clients: a.clients as usize,
        keys: a.keys as usize,
        key_ops: a.key_ops,
        broken: a.broken,
        allow_majority_loss: a.allow_majority_loss,
        progress: std::io::stderr().is_terminal(),
        resp: a.client == "redis",
        out: a.out.clone(),
        evidence: a.evidence,
        budget: a.check_budget,
        until_snapshot: a.until_snapshot,
        netns: a.netns,
    };
    crate::signals::catch();
    let run = crate::chaos::run(&base(), &opts)?;
    print!("{}", crate::chaos::report::text(&run));
    if let Some(out) = &a.out {
        crate::chaos::report::write(&run, out)?;
        println!(
            "wrote {}/{{history.jsonl, faults.jsonl, verdict.json, involved.json, report.html}}; scrub it with `synod web --replay DIR`",
            out.display()
        );
    }
    let v = &run.verdict;
    match v.outcome {
        Outcome::Ok => Ok(()),
        Outcome::Violation => Err(Exit::failed(v.violations[0].clone())),
        Outcome::Inconclusive => Err(Exit::undecided(format!("inconclusive: {}", v.undecided[0]))),
    }
}
