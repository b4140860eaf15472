//! `put`, `get`, `delete`, `cas` and `log`: the replicated key-value map.

use std::time::Duration;

use clap::Args;

use super::{find, ClusterArg, Exit};
use crate::check::logs::{self, Slots};
use crate::client;
use crate::client::Client;
use crate::kv::{Op, OpResult};
use crate::paxos::{NodeId, Slot};

#[derive(Debug, Args)]
pub struct ClientOpts {
    #[command(flatten)]
    c: ClusterArg,
    /// Give up after this long (exit 1): 5s, 500ms
    #[arg(long, default_value = "5s", value_name = "D", value_parser = super::duration)]
    timeout: Duration,
    /// Ask only this node (no redirects to the leader)
    #[arg(long, value_name = "N")]
    node: Option<NodeId>,
}

#[derive(Debug, Args)]
pub struct PutArgs {
    key: String,
    /// The value; read from standard input if omitted (as etcdctl put does)
    value: Option<String>,
    #[command(flatten)]
    o: ClientOpts,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    key: String,
    #[command(flatten)]
    o: ClientOpts,
}

#[derive(Debug, Args)]
pub struct CasArgs {
    key: String,
    old: String,
    new: String,
    #[command(flatten)]
    o: ClientOpts,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    #[command(flatten)]
    c: ClusterArg,
    /// First slot to show
    #[arg(long, default_value_t = 0, value_name = "SLOT")]
    from: Slot,
    /// At most this many slots
    #[arg(long, default_value_t = 1000, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=crate::net::MAX_LOG_ENTRIES as u64))]
    limit: u64,
    /// Print JSON: {"slots": [{"slot", "value", "nodes"}], "agree": bool}
    #[arg(long)]
    json: bool,
}

fn execute(o: &ClientOpts, op: Op) -> Result<OpResult, Exit> {
    let dir = find(&o.c)?;
    let cluster = dir.cluster()?;
    if let Some(n) = o.node {
        if cluster.node(n).is_none() {
            return Err(Exit::usage(format!(
                "no node {n} in cluster {:?}",
                cluster.name
            )));
        }
    }
    let mut c = Client::new(cluster);
    c.timeout = o.timeout;
    c.pinned = o.node;
    Ok(c.execute(op)?)
}

pub fn put(a: PutArgs) -> Result<(), Exit> {
    let value = match a.value {
        Some(v) => v,
        None => {
            use std::io::Read as _;
            // One byte past the limit is enough to refuse it.
            let mut v = String::new();
            std::io::stdin()
                .take(crate::net::MAX_OP_BYTES as u64 + 1)
                .read_to_string(&mut v)
                .map_err(|e| {
                    Exit::usage(format!("cannot read the value from standard input: {e}"))
                })?;
            v
        }
    };
    let op = Op::Put { key: a.key, value };
    execute(&a.o, op).map(|_| ())
}

pub fn get(a: GetArgs) -> Result<(), Exit> {
    if let OpResult::Value(Some(v)) = execute(&a.o, Op::Get { key: a.key })? {
        println!("{v}");
    }
    Ok(())
}

pub fn delete(a: GetArgs) -> Result<(), Exit> {
    execute(&a.o, Op::Delete { key: a.key }).map(|_| ())
}

pub fn cas(a: CasArgs) -> Result<(), Exit> {
    let op = Op::Cas {
        key: a.key.clone(),
        expect: Some(a.old.clone()),
        new: a.new,
    };
    match execute(&a.o, op)? {
        OpResult::Swapped(false) => Err(Exit::failed(format!(
            "cas: {:?} is not {:?}; nothing changed",
            a.key, a.old
        ))),
        _ => Ok(()),
    }
}

pub fn log(a: LogArgs) -> Result<(), Exit> {
    let dir = find(&a.c)?;
    let cluster = dir.cluster()?;
    let limit = a.limit as usize;
    let fetched = client::fetch_logs(&cluster, a.from, limit, false, Duration::from_secs(2));
    let floor = client::log_floor(&cluster, Duration::from_secs(2));
    let slots = logs::by_slot(&fetched);
    let answered: Vec<NodeId> = fetched.keys().copied().collect();
    let agree = slots.values().all(|v| v.len() == 1);
    if a.json {
        let rows: Vec<serde_json::Value> = slots
            .iter()
            .flat_map(|(s, vs)| {
                vs.iter().map(move |(v, nodes)| {
                    serde_json::json!({"slot": s, "value": v.brief(), "nodes": nodes})
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({"slots": rows, "agree": agree, "answered": answered, "floor": floor})
        );
    } else {
        if floor > a.from {
            println!(
                "(history before slot {floor} was compacted into a snapshot; every slot below it is chosen)"
            );
        }
        print!("{}", table(&slots, &cluster.ids(), &answered));
    }
    if answered.is_empty() {
        Err(Exit::failed(format!(
            "no node of cluster {:?} answered; is it up? (`synod status`)",
            cluster.name
        )))
    } else if agree {
        Ok(())
    } else {
        Err(Exit::failed("nodes disagree on what was chosen"))
    }
}

/// The log as a table: a row per slot (more if nodes disagree), the nodes
/// that learned each value.
fn table(slots: &Slots, ids: &[NodeId], answered: &[NodeId]) -> String {
    let mut out = format!("{:>6}  {:<50} nodes\n", "slot", "value");
    for (s, vs) in slots {
        for (v, nodes) in vs {
            let who: Vec<String> = ids
                .iter()
                .map(|i| {
                    if nodes.contains(i) {
                        i.to_string()
                    } else {
                        "-".into()
                    }
                })
                .collect();
            let mark = if vs.len() > 1 {
                "   !! nodes disagree on this slot"
            } else {
                ""
            };
            out.push_str(&format!(
                "{s:>6}  {:<50} {}{mark}\n",
                truncate(&v.brief(), 50),
                who.join(" ")
            ));
        }
    }
    let missing: Vec<String> = ids
        .iter()
        .filter(|i| !answered.contains(i))
        .map(|i| i.to_string())
        .collect();
    if !missing.is_empty() {
        out.push_str(&format!("(no answer from node {})\n", missing.join(", ")));
    }
    out
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let t: String = s.chars().take(n - 1).collect();
        format!("{t}…")
    }
}
