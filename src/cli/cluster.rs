//! `up`, `down`, `status`, `logs` and the internal `node`: a cluster's life.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use super::{base, find, ClusterArg, Exit};
use crate::cluster::Cluster;
use crate::launcher::{self, UpOptions};
use crate::node::{self, NodeConfig};
use crate::paxos::{NodeId, Rule, Rules};

#[derive(Debug, Args)]
pub struct UpArgs {
    /// The cluster file (RON); default: the built-in five-node cluster
    file: Option<PathBuf>,
    /// Return once a leader is elected, leaving the nodes running
    #[arg(long, short)]
    detach: bool,
    /// Run the nodes with one Paxos rule or guard off (teaching only): persist, promise, p2c, round, members, confirm, fresh, chunks, prevote, intersection, sessions, reconfig, handover, strict
    #[arg(long = "break", value_name = "RULE")]
    broken: Option<Rule>,
    /// How long to wait for a leader: 10s, 500ms
    #[arg(long, default_value = "10s", value_name = "D", value_parser = super::duration)]
    wait: Duration,
    /// Serve the Redis protocol on every node too, at its port + 1000 (unless
    /// the cluster file gives a node a redis_addr)
    #[arg(long)]
    redis: bool,
    /// RESP clients must AUTH with the cluster's RESP password (the text of
    /// .synod/<name>/resp-password), as the cluster file's `redis_auth: true`
    #[arg(long)]
    redis_auth: bool,
    /// Also serve the live page (as `synod web`) while the cluster runs in
    /// the foreground: at 127.0.0.1:7180, or at the ADDR given
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:7180")]
    web: Option<std::net::SocketAddr>,
    /// Run each node as a host of its own: a network namespace
    /// synod-<cluster>-<id> at 10.77.K.<id> (the file's ports) on a bridge;
    /// partitions and loss are then nftables rules (root only)
    #[arg(long)]
    netns: bool,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    #[command(flatten)]
    c: ClusterArg,
    /// Also delete the cluster's data, logs and secret
    #[arg(long)]
    wipe: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    c: ClusterArg,
    /// Print JSON: {"cluster": NAME, "nodes": [...]}
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The node
    id: NodeId,
    #[command(flatten)]
    c: ClusterArg,
    /// Keep printing what the node writes (Ctrl-C to stop)
    #[arg(long, short)]
    follow: bool,
}

#[derive(Debug, Args)]
pub struct NodeRunArgs {
    /// The cluster file
    #[arg(long)]
    cluster: PathBuf,
    /// This node's id
    #[arg(long)]
    id: NodeId,
    /// Its data directory (default: ./node-<id>)
    #[arg(long)]
    data: Option<PathBuf>,
    /// This node's own key (default: `identity` in its data directory)
    #[arg(long, value_name = "FILE")]
    identity: Option<PathBuf>,
    /// The client key its RESP front calls with (default: `client.key` beside the cluster file)
    #[arg(long, value_name = "FILE")]
    client_key: Option<PathBuf>,
    /// The public roster of keys (default: `keys.ron` beside the cluster file)
    #[arg(long, value_name = "FILE")]
    keys: Option<PathBuf>,
    /// Run with one Paxos rule or guard off (teaching only)
    #[arg(long = "break", value_name = "RULE")]
    broken: Option<Rule>,
}

pub fn up(a: UpArgs) -> Result<(), Exit> {
    let cluster = match &a.file {
        Some(f) => Cluster::load(f)?,
        None => Cluster::builtin(),
    };
    let mut cluster = if a.redis {
        cluster.with_redis()?
    } else {
        cluster
    };
    cluster.redis_auth |= a.redis_auth;
    if cluster.redis_auth && cluster.nodes.iter().all(|n| n.redis_addr.is_none()) {
        return Err(Exit::usage(
            "--redis-auth asks RESP clients for a password, but no node serves RESP: add --redis, or redis_addr in the cluster file",
        ));
    }
    if a.web.is_some() && a.detach {
        return Err(Exit::usage(
            "--web serves the page while `up` runs in the foreground; with --detach, run `synod web` beside it",
        ));
    }
    // Refuse a taken address before any node starts.
    if let Some(addr) = a.web {
        std::net::TcpListener::bind(addr)
            .map_err(|e| Exit::usage(format!("--web: cannot serve on {addr}: {e}")))?;
    }
    let opts = UpOptions {
        broken: a.broken,
        wait: a.wait,
        netns: a.netns,
    };
    let up = launcher::up(&base(), cluster, &opts)?;
    let (_, rows) = launcher::status(&up.dir)?;
    print!("{}", launcher::table(&rows));
    println!(
        "cluster {:?} up in {:.3} s: {} nodes, node {} leads{}",
        up.cluster.name,
        up.seconds,
        up.cluster.nodes.len(),
        up.leader,
        a.broken
            .map(|r| format!(" (rule `{r}` is OFF: teaching run)"))
            .unwrap_or_default()
    );
    if up.cluster.redis_auth {
        println!(
            "RESP clients AUTH with the password in {}",
            up.dir.resp_password_file().display()
        );
    }
    if a.detach {
        println!("(detached; `synod status`, `synod down` to stop)");
        // The children are left to run; init adopts them when we exit.
        std::mem::forget(up.children);
        return Ok(());
    }
    crate::signals::catch();
    let tty = std::io::stdout().is_terminal();
    if !tty {
        println!("(foreground; Ctrl-C stops every node)");
    }
    let dir = up.dir.clone();
    let mut notes = Vec::new();
    if let Some(addr) = a.web {
        let mut o = crate::web::WebOptions::new(dir.clone(), addr);
        o.own_signals = false;
        notes.extend(o.exposed());
        notes.push(format!("the live page: {}", o.url()));
        for n in &notes {
            println!("{n}");
        }
        // The page's server lives as long as this process does.
        std::thread::spawn(move || {
            if let Err(e) = crate::web::serve(o) {
                eprintln!("synod web: {e}");
            }
        });
    }
    launcher::supervise(up, tty, &notes)?;
    println!("\nstopping every node...");
    let stopped = launcher::down(&dir, false, Duration::from_secs(5))?;
    println!(
        "stopped {} node(s); data kept in {}",
        stopped.len(),
        dir.root().display()
    );
    Ok(())
}

pub fn down(a: DownArgs) -> Result<(), Exit> {
    let dir = find(&a.c)?;
    let stopped = launcher::down(&dir, a.wipe, Duration::from_secs(5))?;
    eprintln!(
        "stopped {} node(s){}",
        stopped.len(),
        if a.wipe {
            format!("; removed {}", dir.root().display())
        } else {
            format!("; data kept in {}", dir.root().display())
        }
    );
    Ok(())
}

pub fn status(a: StatusArgs) -> Result<(), Exit> {
    let dir = find(&a.c)?;
    if a.json {
        println!("{}", launcher::status_json(&dir)?);
        return Ok(());
    }
    let (cluster, rows) = launcher::status(&dir)?;
    print!("{}", launcher::table(&rows));
    if cluster.quorums.is_some() {
        let n = cluster.nodes.len();
        let q = cluster
            .proposer_config()
            .quorums(n, crate::paxos::Rules::ALL);
        println!(
            "flexible quorums: {} of {n} promises to lead (phase 1), {} of {n} accepts to choose (phase 2)",
            q.phase1, q.phase2
        );
    }
    Ok(())
}

pub fn logs(a: LogsArgs) -> Result<(), Exit> {
    let dir = find(&a.c)?;
    let cluster = dir.cluster()?;
    if cluster.node(a.id).is_none() {
        return Err(Exit::usage(format!(
            "no node {} in cluster {:?}",
            a.id, cluster.name
        )));
    }
    if let Some(host) = launcher::Host::of(&dir, a.id) {
        if a.follow {
            return Err(Exit::usage(format!(
                "node {} runs on {}: --follow reads local logs only; `ssh {} tail -f {}/{}/node-{}.log`",
                a.id, host.target, host.target, host.base, cluster.name, a.id
            )));
        }
        return Ok(launcher::remote_log(&dir, &host, a.id)?);
    }
    if a.follow {
        crate::signals::catch();
    }
    Ok(launcher::print_log(&dir.node_log(a.id), a.follow)?)
}

pub fn node(a: NodeRunArgs) -> Result<(), Exit> {
    let cluster = Cluster::load(&a.cluster)?;
    if cluster.node(a.id).is_none() {
        return Err(Exit::usage(format!(
            "node {} is not in {}",
            a.id,
            a.cluster.display()
        )));
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .with_max_level(super::log_level().unwrap_or(tracing::Level::INFO))
        .init();
    let data = a
        .data
        .unwrap_or_else(|| Path::new(".").join(format!("node-{}", a.id)));
    let beside = |name: &str| {
        a.cluster
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(name)
    };
    let keys = node::load_keys(
        &cluster,
        a.id,
        &a.identity.unwrap_or_else(|| data.join("identity")),
        &a.client_key.unwrap_or_else(|| beside("client.key")),
        &a.keys.unwrap_or_else(|| beside("keys.ron")),
    )
    .map_err(|e| {
        Exit::usage(format!(
            "{e}\n(`synod up` writes every node's keys; or pass --identity, --client-key, --keys)"
        ))
    })?;
    let cfg = NodeConfig {
        cluster,
        id: a.id,
        data_dir: data,
        rules: Rules::breaking(a.broken),
        tuning: node::Tuning::from_env(),
        keys,
    };
    node::run(cfg).map_err(|e| {
        tracing::error!("{e}");
        Exit::from(e)
    })
}
