//! `kill`, `restart`, `pause`, `resume`, `partition`, `heal` and `net`: faults
//! by hand, each a real OS action or a change to the nodes' fault layer.

use std::time::{Duration, Instant};

use clap::Args;

use super::{find, ClusterArg, Exit};
use crate::launcher;
use crate::net::NetFaults;
use crate::paxos::NodeId;

#[derive(Debug, Args)]
pub struct NodeArgs {
    /// The node
    id: NodeId,
    #[command(flatten)]
    c: ClusterArg,
}

#[derive(Debug, Args)]
pub struct PartitionArgs {
    /// Sides separated by '|', node ids by ',': "1,2|3,4,5"
    sides: String,
    #[command(flatten)]
    c: ClusterArg,
}

#[derive(Debug, Args)]
pub struct NetArgs {
    #[command(flatten)]
    c: ClusterArg,
    /// Probability (0..1) that a message is lost
    #[arg(long, value_name = "P", value_parser = super::probability)]
    loss: Option<f64>,
    /// Probability (0..1) that a message is delivered twice
    #[arg(long, value_name = "P", value_parser = super::probability)]
    dup: Option<f64>,
    /// Extra delay per message, uniform in MIN..MAX milliseconds (at most 60000)
    #[arg(long, value_name = "MIN..MAX", value_parser = delay)]
    delay: Option<(u64, u64)>,
    /// Only this node's outbound messages
    #[arg(long, value_name = "N")]
    node: Option<NodeId>,
    /// Seed of the fault decisions (same seed, same decisions)
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub fn kill(a: NodeArgs) -> Result<(), Exit> {
    let dir = find(&a.c)?;
    let pid = launcher::kill(&dir, a.id)?;
    eprintln!("killed node {} (pid {pid})", a.id);
    Ok(())
}

pub fn restart(a: NodeArgs) -> Result<(), Exit> {
    let dir = find(&a.c)?;
    let started = Instant::now();
    let pid = launcher::restart(&dir, a.id, Duration::from_secs(10))?;
    eprintln!(
        "node {} serves again (pid {pid}, {:.2} s)",
        a.id,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

pub fn pause(a: NodeArgs, stop: bool) -> Result<(), Exit> {
    let dir = find(&a.c)?;
    let pid = launcher::pause(&dir, a.id, stop)?;
    let what = if stop { "paused" } else { "resumed" };
    eprintln!("{what} node {} (pid {pid})", a.id);
    Ok(())
}

pub fn heal(c: ClusterArg) -> Result<(), Exit> {
    let dir = find(&c)?;
    let ids = dir.cluster()?.ids();
    let notes = launcher::change_faults(&dir, &ids, |_, f| *f = NetFaults::none())?;
    for n in notes {
        eprintln!("note: {n}");
    }
    Ok(())
}

pub fn partition(a: PartitionArgs) -> Result<(), Exit> {
    let dir = find(&a.c)?;
    let cluster = dir.cluster()?;
    let sides = launcher::parse_sides(&a.sides, &cluster)?;
    eprintln!("{}", launcher::partition(&dir, &sides)?);
    Ok(())
}

/// A delay range MIN..MAX in ms, MIN <= MAX <= 60000. (A range, which clap
/// has no parser for.)
// A clap value parser: `Result<_, String>` is clap's idiom.
fn delay(s: &str) -> Result<(u64, u64), String> {
    let bad = || format!("{s:?}: write MIN..MAX in milliseconds, e.g. 5..50");
    let (lo, hi) = s.split_once("..").ok_or_else(bad)?;
    let lo: u64 = lo.trim().parse().map_err(|_| bad())?;
    let hi: u64 = hi.trim().parse().map_err(|_| bad())?;
    if lo > hi {
        return Err(format!("{s:?}: MIN is above MAX"));
    }
    if hi > NetFaults::MAX_DELAY_MS {
        return Err(format!("{s:?}: at most {} ms", NetFaults::MAX_DELAY_MS));
    }
    Ok((lo, hi))
}

pub fn net(a: NetArgs) -> Result<(), Exit> {
    if a.loss.is_none() && a.dup.is_none() && a.delay.is_none() {
        return Err(Exit::usage("say what to change: --loss P, --dup P and/or --delay MIN..MAX (`synod heal` clears all)"));
    }
    let dir = find(&a.c)?;
    let cluster = dir.cluster()?;
    let ids = match a.node {
        Some(n) => vec![n],
        None => cluster.ids(),
    };
    let notes = launcher::change_faults(&dir, &ids, |_, f| {
        f.set_net(a.loss, a.dup, a.delay);
        f.seed = a.seed;
    })?;
    for n in notes {
        eprintln!("note: {n}");
    }
    Ok(())
}
