//! `bench`: throughput and latency, beside etcd on request, and failover.

use std::io::IsTerminal;
use std::time::Duration;

use clap::Args;

use super::{find, ClusterArg, Exit};

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    c: ClusterArg,
    /// Closed-loop clients; a list runs each in turn: 1,16
    #[arg(long, default_value = "1,16", value_name = "LIST", value_delimiter = ',',
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    clients: Vec<u64>,
    /// Measured time per row: 10s, 1m
    #[arg(long, default_value = "10s", value_name = "D", value_parser = super::duration)]
    duration: Duration,
    /// Warm-up before each row (0 for none)
    #[arg(long, default_value = "2s", value_name = "D", value_parser = super::duration_or_zero)]
    warmup: Duration,
    /// Bytes per value
    #[arg(long, default_value_t = 100, value_name = "B",
          value_parser = clap::value_parser!(u64).range(1..=crate::net::MAX_OP_BYTES as u64 / 2))]
    value_size: u64,
    /// Keys written and read
    #[arg(long, default_value_t = 1000, value_name = "K", value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    keys: u64,
    /// Fraction of operations that are reads (0..1)
    #[arg(long, default_value_t = 0.0, value_name = "R", value_parser = super::probability)]
    reads: f64,
    /// Print JSON: {"rows": [...]}
    #[arg(long)]
    json: bool,
    /// Race a fresh 3-node synod with the same workload, alternating: a 3-node etcd over gRPC, or one redis-server with appendfsync always
    #[arg(long, value_name = "SYSTEM", value_parser = ["etcd", "redis"])]
    against: Option<String>,
    /// Repetitions of each row (--against): medians are reported
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100))]
    reps: u64,
    /// Also drive the running cluster over its RESP ports (`synod up --redis`), a row beside each native one
    #[arg(long)]
    redis: bool,
    /// Count each process's system calls, context switches, syncs, socket
    /// reads and writes and futex calls per operation with `perf stat` (root)
    #[arg(long, conflicts_with = "failover")]
    crossings: bool,
    /// Measure failover (leader SIGKILL, SIGSTOP and partition to the next acknowledged write) and bring-up on a fresh five-node cluster
    #[arg(long)]
    failover: bool,
    /// With --failover: each node a host of its own (`up --netns`, root),
    /// partitions made by the kernel
    #[arg(long, requires = "failover")]
    netns: bool,
    /// Leader kills (and bring-ups) for --failover
    #[arg(long, default_value_t = 5, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1000))]
    kills: u64,
}

pub fn run(a: BenchArgs) -> Result<(), Exit> {
    let progress = std::io::stderr().is_terminal() && !a.json;
    crate::signals::catch();
    if a.failover {
        let f = crate::bench::failover(a.kills as usize, a.netns, progress)?;
        if a.json {
            println!("{}", serde_json::to_string(&f).expect("serialises"));
        } else {
            print!("{}", f.text());
        }
        return Ok(());
    }
    let clients: Vec<usize> = a.clients.iter().map(|&c| c as usize).collect();
    let w = crate::bench::Load {
        clients: 1,
        duration: a.duration,
        warmup: a.warmup,
        value_size: a.value_size as usize,
        keys: a.keys as usize,
        reads: a.reads,
        crossings: a.crossings,
    };
    if a.crossings {
        crate::bench::crossings::check().map_err(crate::bench::BenchError::from)?;
    }
    let rows = match a.against.as_deref() {
        Some(rival) => {
            let rival = match rival {
                "redis" => crate::bench::Rival::Redis,
                _ => crate::bench::Rival::Etcd,
            };
            crate::bench::against(rival, &w, &clients, a.reps as usize, progress)?
        }
        None => {
            let dir = find(&a.c)?;
            crate::bench::against_running(&dir, &w, &clients, a.redis, progress)?
        }
    };
    if a.json {
        println!("{}", serde_json::json!({ "rows": rows }));
    } else {
        print!("{}", crate::bench::table(&rows));
    }
    Ok(())
}
