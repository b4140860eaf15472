//! The command line: clap definitions and the dispatch to the library.
//!
//! Exit codes everywhere: 0 done; 1 the operation failed (no quorum, timed out, a
//! checker found a violation); 2 bad usage or bad input.

use std::io::{IsTerminal, Read, Seek, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};

use crate::client::{Client, ClientError};
use crate::cluster::rundir::{RunDir, BASE};
use crate::cluster::Cluster;
use crate::demo::Lang;
use crate::kv::{Op, OpResult};
use crate::launcher::{self, LaunchError, UpOptions};
use crate::net::{NetFaults, Request, Response, Secret};
use crate::node::{self, NodeConfig};
use crate::paxos::{NodeId, Rule, Rules, Slot, Value};
use crate::sim::{self, Faults, SimConfig, Workload};

/// Paxos you can run, break and measure on one laptop.
#[derive(Debug, Parser)]
#[command(name = "synod", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Bring a cluster up (default: the built-in five-node cluster) and wait for a leader
    Up(UpArgs),
    /// Stop the cluster's nodes; keep their data unless --wipe
    Down(DownArgs),
    /// One row a node: id, addr, pid, up/down/paused, role, ballot, chosen, applied
    Status(StatusArgs),
    /// Set KEY to VALUE through the replicated log (prints nothing on success)
    Put(PutArgs),
    /// Print KEY's value (nothing if absent), linearizably (read-index at the leader)
    Get(GetArgs),
    /// Remove KEY
    Delete(GetArgs),
    /// Set KEY to NEW if its value is OLD (exit 1 if it is not)
    Cas(CasArgs),
    /// The chosen values, slot by slot, as every node learned them
    Log(LogArgs),
    /// Node N's own log file (its output)
    Logs(LogsArgs),
    /// SIGKILL node N
    Kill(NodeArgs),
    /// Start node N again from its own durable state; returns once it serves
    Restart(NodeArgs),
    /// SIGSTOP node N (slow, not dead)
    Pause(NodeArgs),
    /// SIGCONT node N
    Resume(NodeArgs),
    /// Cut the cluster into sides, e.g. "1,2|3,4,5" (unlisted nodes are cut off alone)
    Partition(PartitionArgs),
    /// Join every side again and clear all message faults
    Heal(ClusterArg),
    /// Message faults: loss, duplication, delay (on every node, or --node N)
    Net(NetArgs),
    /// A workload plus a seeded fault schedule, then the verdict of the checkers
    Chaos(ChaosArgs),
    /// Throughput and latency; side by side with etcd (--against etcd); failover (--failover)
    Bench(BenchArgs),
    /// Experiments: `quorum` answers why node counts are odd, with a table and a plot
    #[command(subcommand)]
    Experiment(ExperimentCmd),
    /// The explainer's worked examples, message by message: three-users, late-joiner
    Demo(DemoArgs),
    /// Run simulated histories (virtual time, seeded faults) and check every invariant
    Sim(SimArgs),
    /// (internal) Run one node; the launcher starts these
    Node(NodeRunArgs),
}

#[derive(Debug, Args)]
struct ClusterArg {
    /// Which cluster, when several are up in this directory
    #[arg(long, value_name = "NAME")]
    cluster: Option<String>,
}

#[derive(Debug, Args)]
struct UpArgs {
    /// The cluster file (RON); default: the built-in five-node cluster
    file: Option<PathBuf>,
    /// Return once a leader is elected, leaving the nodes running
    #[arg(long, short)]
    detach: bool,
    /// Run the nodes with one Paxos rule or guard off (teaching only): persist, promise, p2c, round, members, confirm, fresh, chunks, prevote
    #[arg(long = "break", value_name = "RULE")]
    broken: Option<Rule>,
    /// Seconds to wait for a leader
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    wait: f64,
}

#[derive(Debug, Args)]
struct DownArgs {
    #[command(flatten)]
    c: ClusterArg,
    /// Also delete the cluster's data and logs
    #[arg(long)]
    wipe: bool,
}

#[derive(Debug, Args)]
struct StatusArgs {
    #[command(flatten)]
    c: ClusterArg,
    /// Print JSON: {"cluster": NAME, "nodes": [...]}
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct ClientOpts {
    #[command(flatten)]
    c: ClusterArg,
    /// Give up after this many seconds (exit 1)
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    timeout: f64,
    /// Ask only this node (no redirects to the leader)
    #[arg(long, value_name = "N")]
    node: Option<NodeId>,
}

#[derive(Debug, Args)]
struct PutArgs {
    key: String,
    value: String,
    #[command(flatten)]
    o: ClientOpts,
}

#[derive(Debug, Args)]
struct GetArgs {
    key: String,
    #[command(flatten)]
    o: ClientOpts,
}

#[derive(Debug, Args)]
struct CasArgs {
    key: String,
    old: String,
    new: String,
    #[command(flatten)]
    o: ClientOpts,
}

#[derive(Debug, Args)]
struct LogArgs {
    #[command(flatten)]
    c: ClusterArg,
    /// First slot to show
    #[arg(long, default_value_t = 0, value_name = "SLOT")]
    from: Slot,
    /// At most this many slots
    #[arg(long, default_value_t = 1000, value_name = "N")]
    limit: usize,
    /// Print JSON: {"slots": [{"slot", "value", "nodes"}], "agree": bool}
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct LogsArgs {
    /// The node
    id: NodeId,
    #[command(flatten)]
    c: ClusterArg,
    /// Keep printing what the node writes (Ctrl-C to stop)
    #[arg(long, short)]
    follow: bool,
}

#[derive(Debug, Args)]
struct NodeArgs {
    /// The node
    id: NodeId,
    #[command(flatten)]
    c: ClusterArg,
}

#[derive(Debug, Args)]
struct PartitionArgs {
    /// Sides separated by '|', node ids by ',': "1,2|3,4,5"
    sides: String,
    #[command(flatten)]
    c: ClusterArg,
}

#[derive(Debug, Args)]
struct NetArgs {
    #[command(flatten)]
    c: ClusterArg,
    /// Probability (0..1) that a message is lost
    #[arg(long, value_name = "P")]
    loss: Option<f64>,
    /// Probability (0..1) that a message is delivered twice
    #[arg(long, value_name = "P")]
    dup: Option<f64>,
    /// Extra delay per message, uniform in MIN..MAX milliseconds
    #[arg(long, value_name = "MIN..MAX")]
    delay: Option<String>,
    /// Only this node's outbound messages
    #[arg(long, value_name = "N")]
    node: Option<NodeId>,
    /// Seed of the fault decisions (same seed, same decisions)
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Debug, Args)]
struct ChaosArgs {
    /// A cluster file; default: the running cluster, else the built-in five nodes
    file: Option<PathBuf>,
    #[command(flatten)]
    c: ClusterArg,
    /// How long the workload and faults run: 60s, 2m, 1500ms
    #[arg(long, default_value = "30s", value_name = "D")]
    duration: String,
    /// Seed of the fault schedule (same seed, same schedule)
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Fault kinds: kill, pause, partition, loss, dup, delay, or all
    #[arg(long, default_value = "all", value_name = "LIST")]
    faults: String,
    /// Concurrent clients
    #[arg(long, default_value_t = 4, value_name = "C")]
    clients: usize,
    /// Keys the clients work on
    #[arg(long, default_value_t = 5, value_name = "K")]
    keys: usize,
    /// Run the nodes with one Paxos rule or guard off: persist, promise, p2c, round, members, confirm, fresh, chunks, prevote
    #[arg(long = "break", value_name = "RULE")]
    broken: Option<Rule>,
    /// Write history.jsonl, faults.jsonl, verdict.json and report.html here
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Let more than a minority of nodes be down or paused at once
    #[arg(long)]
    allow_majority_loss: bool,
    /// Print the fault schedule this seed gives and exit (nothing runs)
    #[arg(long)]
    plan: bool,
}

#[derive(Debug, Args)]
struct BenchArgs {
    #[command(flatten)]
    c: ClusterArg,
    /// Closed-loop clients; a list runs each in turn
    #[arg(long, default_value = "1,16", value_name = "LIST")]
    clients: String,
    /// Measured time per row
    #[arg(long, default_value = "10s", value_name = "D")]
    duration: String,
    /// Warm-up before each row
    #[arg(long, default_value = "2s", value_name = "D")]
    warmup: String,
    /// Bytes per value
    #[arg(long, default_value_t = 100, value_name = "B")]
    value_size: usize,
    /// Keys written and read
    #[arg(long, default_value_t = 1000, value_name = "K")]
    keys: usize,
    /// Fraction of operations that are reads (0..1)
    #[arg(long, default_value_t = 0.0, value_name = "R")]
    reads: f64,
    /// Print JSON: {"rows": [...]}
    #[arg(long)]
    json: bool,
    /// Also run the same workload against a 3-node etcd and a fresh 3-node synod, alternating
    #[arg(long, value_name = "SYSTEM", value_parser = ["etcd"])]
    against: Option<String>,
    /// Repetitions of each row (--against): medians are reported
    #[arg(long, default_value_t = 1, value_name = "N")]
    reps: usize,
    /// Measure failover (leader SIGKILL to the next acknowledged write) and bring-up on a fresh five-node cluster
    #[arg(long)]
    failover: bool,
    /// Leader kills (and bring-ups) for --failover
    #[arg(long, default_value_t = 5, value_name = "N")]
    kills: usize,
}

#[derive(Debug, Subcommand)]
enum ExperimentCmd {
    /// Availability against cluster size under crashes and partitions: why 3, 5 or 7?
    Quorum(QuorumArgs),
}

#[derive(Debug, Args)]
struct QuorumArgs {
    /// Cluster sizes to compare
    #[arg(long, default_value = "3,4,5,6,7", value_name = "LIST")]
    sizes: String,
    /// Fraction of time each node is down in the crash model
    #[arg(long, default_value_t = 0.2, value_name = "P")]
    p: f64,
    /// Seed of every node timeline and split
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The short version (at most 90 s for five sizes)
    #[arg(long)]
    quick: bool,
    /// Where results.json, availability.svg and report.md go
    #[arg(long, default_value = "experiment-quorum", value_name = "DIR")]
    out: PathBuf,
    /// Run on the simulator instead, in virtual time (seconds of wall time)
    #[arg(long, conflicts_with = "with_sim")]
    sim: bool,
    /// Run on real processes and on the simulator, tables side by side
    #[arg(long)]
    with_sim: bool,
}

#[derive(Debug, Args)]
struct NodeRunArgs {
    /// The cluster file
    #[arg(long)]
    cluster: PathBuf,
    /// This node's id
    #[arg(long)]
    id: NodeId,
    /// Its data directory (default: ./node-<id>)
    #[arg(long)]
    data: Option<PathBuf>,
    /// The cluster's secret file (default: `secret` beside the cluster file)
    #[arg(long, value_name = "FILE")]
    secret: Option<PathBuf>,
    /// Run with one Paxos rule off (teaching only)
    #[arg(long = "break", value_name = "RULE")]
    broken: Option<Rule>,
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Which example: three-users (ballots 1, 2, 3 and "1+1=3") or late-joiner ("Zhengzhou")
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(crate::demo::NAMES))]
    name: String,
    /// Switch one Paxos rule off and watch the story break: persist, promise or p2c
    #[arg(long = "break", value_name = "RULE")]
    broken: Option<Rule>,
    /// Tell the story in English (en) or in the explainer's Chinese (zh)
    #[arg(long, default_value = "en", value_name = "LANG")]
    lang: Lang,
}

#[derive(Debug, Args)]
struct SimArgs {
    /// The seed every random choice derives from
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Run this many consecutive seeds from --seed and summarise
    #[arg(long, default_value_t = 1, value_name = "N")]
    seeds: u64,
    /// Single-decree Paxos with this many acceptors (with --proposers)
    #[arg(long, value_name = "N", conflicts_with_all = ["nodes", "clients", "ops", "keys"])]
    acceptors: Option<usize>,
    /// Single-decree Paxos: how many of the nodes propose a value of their own
    #[arg(long, value_name = "K", requires = "acceptors")]
    proposers: Option<usize>,
    /// A Multi-Paxos cluster of this many replicas (the default mode)
    #[arg(long, value_name = "N")]
    nodes: Option<usize>,
    /// Concurrent clients in cluster mode
    #[arg(long, value_name = "C")]
    clients: Option<usize>,
    /// Operations per client in cluster mode
    #[arg(long, value_name = "K")]
    ops: Option<usize>,
    /// Keys the clients use in cluster mode
    #[arg(long, value_name = "K")]
    keys: Option<usize>,
    /// Fault kinds while faults are on: crash, partition, pause, loss, dup, delay, swarm, all, none
    #[arg(long, default_value = "all", value_name = "LIST")]
    faults: String,
    /// Virtual milliseconds of faults before everything heals
    #[arg(long, value_name = "MS")]
    fault_ms: Option<u64>,
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

/// An error for the user: what went wrong, and the exit code it maps to.
#[derive(Debug)]
pub struct Exit {
    /// 1: the operation failed; 2: bad usage or input.
    pub code: u8,
    /// One or two lines.
    pub message: String,
}

impl Exit {
    /// Exit code 1: the operation failed.
    pub fn failed(message: impl Into<String>) -> Self {
        Exit {
            code: 1,
            message: message.into(),
        }
    }

    /// Exit code 2: bad usage or bad input.
    pub fn usage(message: impl Into<String>) -> Self {
        Exit {
            code: 2,
            message: message.into(),
        }
    }
}

impl From<LaunchError> for Exit {
    fn from(e: LaunchError) -> Self {
        Exit {
            code: e.code,
            message: e.message,
        }
    }
}

impl From<ClientError> for Exit {
    fn from(e: ClientError) -> Self {
        Exit::failed(e.to_string())
    }
}

/// Parse the process's arguments, run the command, and map errors to exit codes.
pub fn main() -> ExitCode {
    // Die quietly on a closed pipe (`synod sim --seeds 100 | head`), as Unix tools do.
    // SAFETY: setting a signal disposition to its default before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.message);
            ExitCode::from(e.code)
        }
    }
}

fn run(cli: Cli) -> Result<(), Exit> {
    match cli.command {
        Command::Up(a) => up(a),
        Command::Down(a) => down(a),
        Command::Status(a) => status(a),
        Command::Put(a) => {
            let op = Op::Put {
                key: a.key,
                value: a.value,
            };
            execute(&a.o, op).map(|_| ())
        }
        Command::Get(a) => {
            if let OpResult::Value(Some(v)) = execute(&a.o, Op::Get { key: a.key })? {
                println!("{v}");
            }
            Ok(())
        }
        Command::Delete(a) => execute(&a.o, Op::Delete { key: a.key }).map(|_| ()),
        Command::Cas(a) => {
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
        Command::Log(a) => log(a),
        Command::Logs(a) => logs(a),
        Command::Kill(a) => {
            let dir = find(&a.c)?;
            let pid = launcher::kill(&dir, a.id)?;
            eprintln!("killed node {} (pid {pid})", a.id);
            Ok(())
        }
        Command::Restart(a) => {
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
        Command::Pause(a) => {
            let dir = find(&a.c)?;
            let pid = launcher::pause(&dir, a.id, true)?;
            eprintln!("paused node {} (pid {pid})", a.id);
            Ok(())
        }
        Command::Resume(a) => {
            let dir = find(&a.c)?;
            let pid = launcher::pause(&dir, a.id, false)?;
            eprintln!("resumed node {} (pid {pid})", a.id);
            Ok(())
        }
        Command::Partition(a) => partition(a),
        Command::Heal(c) => {
            let dir = find(&c)?;
            let ids = dir.cluster().map_err(Exit::usage)?.ids();
            let notes = launcher::change_faults(&dir, &ids, |_, f| *f = NetFaults::none())?;
            for n in notes {
                eprintln!("note: {n}");
            }
            Ok(())
        }
        Command::Net(a) => net(a),
        Command::Chaos(a) => chaos(a),
        Command::Bench(a) => bench(a),
        Command::Experiment(ExperimentCmd::Quorum(a)) => quorum(a),
        Command::Demo(a) => demo(a),
        Command::Sim(a) => simulate(a),
        Command::Node(a) => run_node(a),
    }
}

/// The folder of run directories: `.synod` in the current directory.
fn base() -> PathBuf {
    std::env::current_dir()
        .unwrap_or_else(|_| PathBuf::from("."))
        .join(BASE)
}

fn find(c: &ClusterArg) -> Result<RunDir, Exit> {
    RunDir::find(&base(), c.cluster.as_deref()).map_err(Exit::usage)
}

fn up(a: UpArgs) -> Result<(), Exit> {
    let cluster = match &a.file {
        Some(f) => Cluster::load(f).map_err(|e| Exit::usage(e.to_string()))?,
        None => Cluster::builtin(),
    };
    let opts = UpOptions {
        broken: a.broken,
        wait: Duration::from_secs_f64(a.wait.max(0.1)),
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
    if a.detach {
        println!("(detached; `synod status`, `synod down` to stop)");
        // The children are left to run; init adopts them when we exit.
        std::mem::forget(up.children);
        return Ok(());
    }
    foreground(up)
}

/// Supervise the nodes until Ctrl-C (or SIGTERM), refreshing the status table
/// every second, then stop every node cleanly.
fn foreground(up: launcher::Up) -> Result<(), Exit> {
    crate::signals::catch();
    let dir = up.dir.clone();
    {
        let _lock = dir.lock().map_err(Exit::failed)?;
        let mut state = dir.state();
        state.launcher = Some(std::process::id());
        dir.save(&state).map_err(Exit::failed)?;
    }
    let (tx, rx) = crossbeam_channel::unbounded::<(NodeId, String)>();
    for (id, mut child) in up.children {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let status = child.wait();
            let how = match status {
                Ok(s) => s.to_string(),
                Err(e) => e.to_string(),
            };
            let _ = tx.send((id, how));
        });
    }
    let tty = std::io::stdout().is_terminal();
    if !tty {
        println!("(foreground; Ctrl-C stops every node)");
    }
    let mut events: Vec<String> = Vec::new();
    let mut last = Instant::now();
    while !crate::signals::stopped() {
        while let Ok((id, how)) = rx.try_recv() {
            let line = format!("node {id} exited ({how})");
            if !tty {
                println!("{line}");
            }
            events.push(line);
        }
        if tty && last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            if let Ok((_, rows)) = launcher::status(&dir) {
                let mut out = std::io::stdout().lock();
                let _ = write!(out, "\x1b[H\x1b[2J");
                let _ = writeln!(
                    out,
                    "synod: cluster {:?} (Ctrl-C stops every node)\n",
                    up.cluster.name
                );
                let _ = write!(out, "{}", launcher::table(&rows));
                for e in events.iter().rev().take(5) {
                    let _ = writeln!(out, "{e}");
                }
                let _ = out.flush();
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("\nstopping every node...");
    let stopped = launcher::down(&dir, false, Duration::from_secs(5))?;
    println!(
        "stopped {} node(s); data kept in {}",
        stopped.len(),
        dir.root().display()
    );
    Ok(())
}

fn down(a: DownArgs) -> Result<(), Exit> {
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

fn status(a: StatusArgs) -> Result<(), Exit> {
    let dir = find(&a.c)?;
    let (cluster, rows) = launcher::status(&dir)?;
    if a.json {
        let v = serde_json::json!({ "cluster": cluster.name, "nodes": rows });
        println!("{v}");
    } else {
        print!("{}", launcher::table(&rows));
    }
    Ok(())
}

fn execute(o: &ClientOpts, op: Op) -> Result<OpResult, Exit> {
    let dir = find(&o.c)?;
    let cluster = dir.cluster().map_err(Exit::usage)?;
    if let Some(n) = o.node {
        if cluster.node(n).is_none() {
            return Err(Exit::usage(format!(
                "no node {n} in cluster {:?}",
                cluster.name
            )));
        }
    }
    if o.timeout.is_nan() || o.timeout <= 0.0 {
        return Err(Exit::usage("--timeout must be above 0"));
    }
    let mut c = Client::new(cluster);
    c.timeout = Duration::from_secs_f64(o.timeout);
    c.pinned = o.node;
    Ok(c.execute(op)?)
}

fn log(a: LogArgs) -> Result<(), Exit> {
    let dir = find(&a.c)?;
    let cluster = dir.cluster().map_err(Exit::usage)?;
    // slot -> value -> nodes that learned it
    let mut slots: std::collections::BTreeMap<Slot, Vec<(Value, Vec<NodeId>)>> = Default::default();
    let mut answered = Vec::new();
    for n in &cluster.nodes {
        let req = Request::Log {
            from: a.from,
            limit: a.limit,
        };
        if let Ok(Response::Log { entries, .. }) =
            crate::client::query(n.addr, &cluster, &req, Duration::from_secs(2))
        {
            answered.push(n.id);
            for (slot, value) in entries {
                let variants = slots.entry(slot).or_default();
                match variants.iter_mut().find(|(v, _)| *v == value) {
                    Some((_, nodes)) => nodes.push(n.id),
                    None => variants.push((value, vec![n.id])),
                }
            }
        }
    }
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
            serde_json::json!({"slots": rows, "agree": agree, "answered": answered})
        );
    } else {
        let ids = cluster.ids();
        println!("{:>6}  {:<50} nodes", "slot", "value");
        for (s, vs) in &slots {
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
                println!(
                    "{s:>6}  {:<50} {}{mark}",
                    truncate(&v.brief(), 50),
                    who.join(" ")
                );
            }
        }
        let missing: Vec<String> = ids
            .iter()
            .filter(|i| !answered.contains(i))
            .map(|i| i.to_string())
            .collect();
        if !missing.is_empty() {
            println!("(no answer from node {})", missing.join(", "));
        }
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

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let t: String = s.chars().take(n - 1).collect();
        format!("{t}…")
    }
}

fn logs(a: LogsArgs) -> Result<(), Exit> {
    let dir = find(&a.c)?;
    let cluster = dir.cluster().map_err(Exit::usage)?;
    if cluster.node(a.id).is_none() {
        return Err(Exit::usage(format!(
            "no node {} in cluster {:?}",
            a.id, cluster.name
        )));
    }
    let path = dir.node_log(a.id);
    let mut f = std::fs::File::open(&path)
        .map_err(|e| Exit::failed(format!("cannot open {}: {e}", path.display())))?;
    let mut out = std::io::stdout().lock();
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)
        .map_err(|e| Exit::failed(e.to_string()))?;
    let _ = out.write_all(&buf);
    if !a.follow {
        return Ok(());
    }
    let _ = out.flush();
    crate::signals::catch();
    let mut pos = buf.len() as u64;
    while !crate::signals::stopped() {
        std::thread::sleep(Duration::from_millis(200));
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(pos);
        if len < pos {
            pos = 0; // truncated or replaced
        }
        if len > pos {
            let _ = f.seek(SeekFrom::Start(pos));
            buf.clear();
            let _ = f.read_to_end(&mut buf);
            pos += buf.len() as u64;
            let _ = out.write_all(&buf);
            let _ = out.flush();
        }
    }
    Ok(())
}

fn partition(a: PartitionArgs) -> Result<(), Exit> {
    let dir = find(&a.c)?;
    let cluster = dir.cluster().map_err(Exit::usage)?;
    let sides = launcher::parse_sides(&a.sides, &cluster)?;
    let side_of = |id: NodeId| sides.iter().position(|s| s.contains(&id));
    let ids = cluster.ids();
    let notes = launcher::change_faults(&dir, &ids, |id, f| {
        f.blocked = ids
            .iter()
            .copied()
            .filter(|&o| side_of(o) != side_of(id))
            .collect();
    })?;
    for n in notes {
        eprintln!("note: {n}");
    }
    let shown: Vec<String> = sides
        .iter()
        .map(|s| {
            s.iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    eprintln!("partitioned: {}", shown.join(" | "));
    Ok(())
}

fn parse_delay(s: &str) -> Result<(u64, u64), Exit> {
    let bad = || {
        Exit::usage(format!(
            "bad --delay {s:?}: write MIN..MAX in milliseconds, e.g. 5..50"
        ))
    };
    let (lo, hi) = s.split_once("..").ok_or_else(bad)?;
    let lo: u64 = lo.trim().parse().map_err(|_| bad())?;
    let hi: u64 = hi.trim().parse().map_err(|_| bad())?;
    if lo > hi {
        return Err(Exit::usage(format!("bad --delay {s:?}: MIN is above MAX")));
    }
    if hi > NetFaults::MAX_DELAY_MS {
        return Err(Exit::usage(format!(
            "bad --delay {s:?}: at most {} ms",
            NetFaults::MAX_DELAY_MS
        )));
    }
    Ok((lo, hi))
}

fn net(a: NetArgs) -> Result<(), Exit> {
    for (name, p) in [("--loss", a.loss), ("--dup", a.dup)] {
        if let Some(p) = p {
            if !(0.0..=1.0).contains(&p) {
                return Err(Exit::usage(format!(
                    "{name} {p} is not a probability between 0 and 1"
                )));
            }
        }
    }
    let delay = a.delay.as_deref().map(parse_delay).transpose()?;
    if a.loss.is_none() && a.dup.is_none() && delay.is_none() {
        return Err(Exit::usage("say what to change: --loss P, --dup P and/or --delay MIN..MAX (`synod heal` clears all)"));
    }
    let dir = find(&a.c)?;
    let cluster = dir.cluster().map_err(Exit::usage)?;
    let ids = match a.node {
        Some(n) => vec![n],
        None => cluster.ids(),
    };
    let notes = launcher::change_faults(&dir, &ids, |_, f| {
        if let Some(p) = a.loss {
            f.loss_ppm = NetFaults::ppm(p);
        }
        if let Some(p) = a.dup {
            f.dup_ppm = NetFaults::ppm(p);
        }
        if let Some(d) = delay {
            f.delay_ms = d;
        }
        f.seed = a.seed;
    })?;
    for n in notes {
        eprintln!("note: {n}");
    }
    Ok(())
}

fn run_node(a: NodeRunArgs) -> Result<(), Exit> {
    let cluster = Cluster::load(&a.cluster).map_err(|e| Exit::usage(e.to_string()))?;
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
        .init();
    let data = a
        .data
        .unwrap_or_else(|| Path::new(".").join(format!("node-{}", a.id)));
    let secret_file = a.secret.unwrap_or_else(|| {
        a.cluster
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join("secret")
    });
    let secret = Secret::load(&secret_file).map_err(|e| {
        Exit::usage(format!(
            "{e}\n(every node proves the cluster's secret; `synod up` makes one, or pass --secret FILE)"
        ))
    })?;
    let cfg = NodeConfig {
        cluster,
        id: a.id,
        data_dir: data,
        rules: Rules::breaking(a.broken),
        tuning: node::Tuning::from_env(),
        secret,
    };
    node::run(cfg).map_err(|e| {
        tracing::error!("{e}");
        match e {
            node::NodeError::Listen { .. } | node::NodeError::UnknownNode(_) => {
                Exit::usage(e.to_string())
            }
            _ => Exit::failed(e.to_string()),
        }
    })
}

/// A duration like 60s, 2m, 1500ms or 30 (seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("bad duration {s:?}: write 60s, 2m or 1500ms"))?;
    let secs = match unit {
        "ms" => n / 1e3,
        "s" => n,
        "m" | "min" => n * 60.0,
        _ => return Err(format!("bad duration {s:?}: write 60s, 2m or 1500ms")),
    };
    if secs <= 0.0 || !secs.is_finite() {
        return Err(format!("bad duration {s:?}: it must be above zero"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn chaos(a: ChaosArgs) -> Result<(), Exit> {
    let duration = parse_duration(&a.duration).map_err(Exit::usage)?;
    let kinds = crate::chaos::schedule::Kind::parse_list(&a.faults).map_err(Exit::usage)?;
    if a.clients == 0 || a.keys == 0 {
        return Err(Exit::usage("--clients and --keys must be at least 1"));
    }
    if a.plan {
        let cluster = match &a.file {
            Some(f) => Cluster::load(f).map_err(|e| Exit::usage(e.to_string()))?,
            None => match RunDir::find(&base(), a.c.cluster.as_deref()) {
                Ok(dir) => dir.cluster().map_err(Exit::usage)?,
                Err(_) => Cluster::builtin(),
            },
        };
        let plan = crate::chaos::schedule::build(
            a.seed,
            &cluster.ids(),
            duration.as_millis() as u64,
            &kinds,
            a.allow_majority_loss,
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
        duration,
        seed: a.seed,
        kinds,
        clients: a.clients,
        keys: a.keys,
        broken: a.broken,
        allow_majority_loss: a.allow_majority_loss,
        progress: std::io::stderr().is_terminal(),
    };
    crate::signals::catch();
    let run = crate::chaos::run(&base(), &opts)?;
    print!("{}", crate::chaos::report::text(&run));
    if let Some(out) = &a.out {
        crate::chaos::report::write(&run, out)
            .map_err(|e| Exit::failed(format!("cannot write {}: {e}", out.display())))?;
        println!(
            "wrote {}/{{history.jsonl, faults.jsonl, verdict.json, report.html}}",
            out.display()
        );
    }
    match run.verdict.violations.first() {
        None => Ok(()),
        Some(first) => Err(Exit::failed(first.clone())),
    }
}

fn bench(a: BenchArgs) -> Result<(), Exit> {
    let progress = std::io::stderr().is_terminal() && !a.json;
    crate::signals::catch();
    if a.failover {
        let f = crate::bench::failover(a.kills.max(1), progress).map_err(Exit::failed)?;
        if a.json {
            println!("{}", serde_json::to_string(&f).expect("serialises"));
        } else {
            print!("{}", f.text());
        }
        return Ok(());
    }
    let mut clients = Vec::new();
    for part in a
        .clients
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let c: usize = part
            .parse()
            .map_err(|_| Exit::usage(format!("bad --clients {:?}: write 16 or 1,16", a.clients)))?;
        if c == 0 || c > 1024 {
            return Err(Exit::usage("--clients must be between 1 and 1024"));
        }
        clients.push(c);
    }
    if !(0.0..=1.0).contains(&a.reads) {
        return Err(Exit::usage("--reads is a fraction between 0 and 1"));
    }
    let w = crate::bench::Workload {
        clients: 1,
        duration: parse_duration(&a.duration).map_err(Exit::usage)?,
        warmup: match a.warmup.trim() {
            "0" | "0s" => Duration::ZERO,
            other => parse_duration(other).map_err(Exit::usage)?,
        },
        value_size: a.value_size,
        keys: a.keys.max(1),
        reads: a.reads,
    };
    let rows = match a.against.as_deref() {
        Some(_) => crate::bench::against_etcd(&w, &clients, a.reps.max(1), progress)
            .map_err(Exit::failed)?,
        None => {
            let dir = find(&a.c)?;
            crate::bench::against_running(&dir, &w, &clients, progress).map_err(Exit::failed)?
        }
    };
    if a.json {
        println!("{}", serde_json::json!({ "rows": rows }));
    } else {
        print!("{}", crate::bench::table(&rows));
    }
    Ok(())
}

fn quorum(a: QuorumArgs) -> Result<(), Exit> {
    let mut sizes = Vec::new();
    for part in a.sizes.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let n: usize = part.parse().map_err(|_| {
            Exit::usage(format!("bad --sizes {:?}: write sizes like 3,4,5", a.sizes))
        })?;
        if !(1..=15).contains(&n) {
            return Err(Exit::usage(format!("bad --sizes: {n} nodes; use 1 to 15")));
        }
        sizes.push(n);
    }
    sizes.sort_unstable();
    sizes.dedup();
    if sizes.is_empty() {
        return Err(Exit::usage("--sizes is empty"));
    }
    if !(a.p > 0.0 && a.p < 1.0) {
        return Err(Exit::usage(format!(
            "--p {} must be strictly between 0 and 1",
            a.p
        )));
    }
    let opts = crate::experiment::Options {
        sizes,
        p: a.p,
        seed: a.seed,
        quick: a.quick,
        out: a.out.clone(),
        mode: if a.sim {
            crate::experiment::Mode::Sim
        } else if a.with_sim {
            crate::experiment::Mode::Both
        } else {
            crate::experiment::Mode::Real
        },
        progress: std::io::stderr().is_terminal(),
    };
    crate::signals::catch();
    let runs = crate::experiment::run(&opts)?;
    for r in &runs {
        println!(
            "\n{} ({:.0} s):\n",
            if r.mode == "sim" {
                "simulator, virtual time"
            } else {
                "real processes"
            },
            r.wall_s
        );
        print!("{}", crate::experiment::report::table(r));
    }
    if let Some(main) = runs.first() {
        println!("\n{}", crate::experiment::report::answer(main));
    }
    println!(
        "\nwrote {}/{{results.json, availability.svg, report.md}}",
        a.out.display()
    );
    Ok(())
}

fn demo(a: DemoArgs) -> Result<(), Exit> {
    if let Some(rule) = a.broken {
        if !matches!(rule, Rule::Persist | Rule::Promise | Rule::P2c) {
            let scenario = sim::scenario::ALL.iter().find(|s| s.guard == rule);
            return Err(Exit::usage(format!(
                "the worked examples break the explainer's rules (persist, promise, p2c); `{rule}` is shown by {}",
                scenario.map_or("`synod sim --break`".to_string(), |s| format!(
                    "`synod sim --scenario {} --break {rule}`",
                    s.name
                ))
            )));
        }
    }
    let story = crate::demo::run(&a.name, Rules::breaking(a.broken), a.lang)
        .ok_or_else(|| Exit::usage(format!("no demo named `{}`", a.name)))?;
    print!("{}", story.text);
    if a.broken.is_none() {
        if let Some(hint) = crate::demo::hint(&a.name, a.lang) {
            println!("\n{hint}");
        }
    }
    Ok(())
}

fn scenarios() -> Result<(), Exit> {
    for s in &sim::scenario::ALL {
        println!("{:<18} (--break {:<8}) {}", s.name, s.guard.name(), s.about);
    }
    Ok(())
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

fn simulate(a: SimArgs) -> Result<(), Exit> {
    if a.scenarios {
        return scenarios();
    }
    if let Some(name) = &a.scenario {
        return scenario(name, a.broken, a.trace);
    }
    let faults = Faults::parse(&a.faults).map_err(Exit::usage)?;
    let make = |seed: u64| -> SimConfig {
        let mut cfg = match a.acceptors {
            Some(n) => SimConfig::decree(seed, n, a.proposers.unwrap_or(2)),
            None => {
                let mut c = SimConfig::cluster(
                    seed,
                    a.nodes.unwrap_or(5),
                    a.clients.unwrap_or(3),
                    a.ops.unwrap_or(30),
                );
                if let (Some(k), Workload::Cluster { keys, .. }) = (a.keys, &mut c.workload) {
                    *keys = k;
                }
                c
            }
        };
        cfg.faults = faults.clone();
        cfg.rules = Rules::breaking(a.broken);
        cfg.trace = a.trace;
        if let Some(ms) = a.fault_ms {
            cfg.fault_ms = ms;
        }
        cfg
    };
    let probe = make(a.seed);
    if probe.nodes == 0 || probe.nodes > 64 {
        return Err(Exit::usage("the number of nodes must be between 1 and 64"));
    }
    if let Workload::Decree { proposers } = probe.workload {
        if proposers == 0 || proposers > probe.nodes {
            return Err(Exit::usage(format!(
                "--proposers must be between 1 and the number of acceptors ({})",
                probe.nodes
            )));
        }
    }
    let started = Instant::now();
    if a.seeds <= 1 {
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
        } else {
            Err(Exit::failed("the simulated history violated an invariant"))
        };
    }
    let mut failing = Vec::new();
    let mut committed = 0;
    for seed in a.seed..a.seed + a.seeds {
        let report = sim::run(&make(seed));
        committed += report.stats.commands_committed;
        if !report.is_clean() {
            println!("seed {seed}: {}", report.violations[0]);
            println!("  replay: {}", report.config.replay_command());
            failing.push(seed);
        }
    }
    let wall = started.elapsed().as_secs_f64();
    println!(
        "{} seeds ({}..{}), {} clean, {} with violations; {} commands committed; wall time {:.2} s",
        a.seeds,
        a.seed,
        a.seed + a.seeds - 1,
        a.seeds as usize - failing.len(),
        failing.len(),
        committed,
        wall
    );
    if failing.is_empty() {
        Ok(())
    } else {
        Err(Exit::failed(format!(
            "{} seed(s) violated an invariant",
            failing.len()
        )))
    }
}
