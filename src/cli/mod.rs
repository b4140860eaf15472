//! The command line: one file per command family, each holding its arguments
//! and a `run` that calls the library (the shape of cargo's `commands/`).
//!
//! Exit codes everywhere: 0 done; 1 the operation failed (no quorum, timed out, a
//! checker found a violation); 2 bad usage or bad input; 3 a checker could not
//! decide (`chaos`, `check`, `sim`: inconclusive, never called OK).

mod bench;
mod chaos;
mod check;
mod cluster;
mod data;
mod demo;
mod experiment;
mod faults;
mod member;
mod sim;
mod web;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::bench::BenchError;
use crate::chaos::ChaosError;
use crate::check::input::InputError;
use crate::client::ClientError;
use crate::cluster::rundir::{RunDir, RunDirError, StateError, BASE};
use crate::cluster::{ClusterError, RespPortError};
use crate::experiment::ExperimentError;
use crate::launcher::LaunchError;
use crate::node::NodeError;
use crate::web::WebError;

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
    Up(cluster::UpArgs),
    /// Stop the cluster's nodes; keep their data unless --wipe
    Down(cluster::DownArgs),
    /// One row a node: id, addr, pid, up/down/paused, role, promised ballot, chosen, applied
    Status(cluster::StatusArgs),
    /// Set KEY to VALUE through the replicated log (prints nothing on success)
    Put(data::PutArgs),
    /// Print KEY's value (nothing if absent), linearizably (read-index at the leader)
    Get(data::GetArgs),
    /// Remove KEY
    Delete(data::GetArgs),
    /// Set KEY to NEW if its value is OLD (exit 1 if it is not)
    Cas(data::CasArgs),
    /// The configuration (voters, learners) and changes to it: list, add, promote, remove
    #[command(subcommand)]
    Member(member::MemberCmd),
    /// The chosen values, slot by slot, as every node learned them
    Log(data::LogArgs),
    /// Node N's own output (its log file)
    Logs(cluster::LogsArgs),
    /// SIGKILL node N
    Kill(faults::NodeArgs),
    /// Start node N again from its own durable state; returns once it serves
    Restart(faults::NodeArgs),
    /// SIGSTOP node N (slow, not dead)
    Pause(faults::NodeArgs),
    /// SIGCONT node N
    Resume(faults::NodeArgs),
    /// Cut the cluster into sides, e.g. "1,2|3,4,5" (unlisted nodes are cut off alone)
    Partition(faults::PartitionArgs),
    /// Join every side again and clear all message faults
    Heal(ClusterArg),
    /// Message faults: loss, duplication, delay (on every node, or --node N)
    Net(faults::NetArgs),
    /// A workload plus a seeded fault schedule, then the verdict of the checkers
    Chaos(chaos::ChaosArgs),
    /// Is a history linearizable? synod's history.jsonl or Jepsen's EDN (exit 0 yes, 1 no, 3 undecided)
    Check(check::CheckArgs),
    /// Throughput and latency; side by side with etcd (--against etcd); failover (--failover)
    Bench(bench::BenchArgs),
    /// Experiments: `quorum` answers why node counts are odd, with a table and a plot
    #[command(subcommand)]
    Experiment(experiment::ExperimentCmd),
    /// The explainer's worked examples, message by message: three-users, late-joiner
    Demo(demo::DemoArgs),
    /// Run simulated histories (virtual time, seeded faults) and check every invariant
    Sim(sim::SimArgs),
    /// A live page of the running cluster: nodes, majority, messages, fault buttons
    Web(web::WebArgs),
    /// (internal) Run one node; the launcher starts these
    Node(cluster::NodeRunArgs),
}

/// `--cluster NAME`, for commands that act on a running cluster.
#[derive(Debug, Args)]
pub struct ClusterArg {
    /// Which cluster, when several are up in this directory
    #[arg(long, value_name = "NAME")]
    cluster: Option<String>,
}

/// An error for the user: what went wrong, its kind deciding the exit code.
/// Every layer's error becomes one through the `From` impls below: the one
/// place that says which kind of error exits with which code.
#[derive(Debug)]
pub enum Exit {
    /// Exit code 1: the operation failed (no quorum, timed out, a checker
    /// found a violation).
    Failed(String),
    /// Exit code 2: bad usage or bad input.
    Usage(String),
    /// Exit code 3: a checker ran out of budget before deciding.
    Undecided(String),
}

impl Exit {
    /// The operation failed.
    pub fn failed(message: impl Into<String>) -> Self {
        Exit::Failed(message.into())
    }

    /// Bad usage or bad input.
    pub fn usage(message: impl Into<String>) -> Self {
        Exit::Usage(message.into())
    }

    /// A checker could not decide.
    pub fn undecided(message: impl Into<String>) -> Self {
        Exit::Undecided(message.into())
    }

    /// The process's exit code.
    pub fn code(&self) -> u8 {
        match self {
            Exit::Failed(_) => 1,
            Exit::Usage(_) => 2,
            Exit::Undecided(_) => 3,
        }
    }

    /// One or two lines for the user.
    pub fn message(&self) -> &str {
        match self {
            Exit::Failed(m) | Exit::Usage(m) | Exit::Undecided(m) => m,
        }
    }
}

/// `From` for errors whose every variant is of one kind.
macro_rules! exit_as {
    ($kind:ident: $($error:ty),+) => {$(
        impl From<$error> for Exit {
            fn from(e: $error) -> Self {
                Exit::$kind(e.to_string())
            }
        }
    )+};
}

// A cluster file, a RESP port, a run directory or a history that cannot be used.
exit_as!(Usage: ClusterError, RespPortError, RunDirError, InputError);
// The state file could not be locked or written.
exit_as!(Failed: StateError);

impl From<LaunchError> for Exit {
    fn from(e: LaunchError) -> Self {
        match e {
            LaunchError::Usage(m) => Exit::Usage(m),
            LaunchError::RunDir(e) => e.into(),
            e @ (LaunchError::Failed(_)
            | LaunchError::NoLeader { .. }
            | LaunchError::State(_)
            | LaunchError::Credentials(_)) => Exit::failed(e.to_string()),
        }
    }
}

impl From<BenchError> for Exit {
    fn from(e: BenchError) -> Self {
        match e {
            BenchError::RunDir(e) => e.into(),
            BenchError::Launch(e) => e.into(),
            e @ (BenchError::Missing { .. }
            | BenchError::Start { .. }
            | BenchError::NotServing { .. }
            | BenchError::NoResp(_)
            | BenchError::NoFailover(_)
            | BenchError::Count(_)
            | BenchError::Io(_)) => Exit::failed(e.to_string()),
        }
    }
}

impl From<ChaosError> for Exit {
    fn from(e: ChaosError) -> Self {
        match e {
            ChaosError::Launch(e) => e.into(),
            e @ (ChaosError::File(_)
            | ChaosError::RespPort(_)
            | ChaosError::Unsuitable(_)
            | ChaosError::Output { .. }) => Exit::usage(e.to_string()),
            e @ (ChaosError::Restart(_) | ChaosError::Interrupted | ChaosError::Report { .. }) => {
                Exit::failed(e.to_string())
            }
        }
    }
}

impl From<ExperimentError> for Exit {
    fn from(e: ExperimentError) -> Self {
        match e {
            ExperimentError::Launch(e) => e.into(),
            e @ (ExperimentError::Interrupted
            | ExperimentError::Create { .. }
            | ExperimentError::Write { .. }
            | ExperimentError::Draw { .. }) => Exit::failed(e.to_string()),
            e @ (ExperimentError::Read { .. } | ExperimentError::NotARun { .. }) => {
                Exit::usage(e.to_string())
            }
        }
    }
}

impl From<WebError> for Exit {
    fn from(e: WebError) -> Self {
        match e {
            WebError::Serve { .. } => Exit::failed(e.to_string()),
            WebError::NotARun { .. } | WebError::Run(_) => Exit::usage(e.to_string()),
        }
    }
}

impl From<ClientError> for Exit {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::TooLarge { .. } => Exit::usage(e.to_string()),
            _ => Exit::failed(e.to_string()),
        }
    }
}

impl From<NodeError> for Exit {
    fn from(e: NodeError) -> Self {
        match e {
            NodeError::Listen { .. } | NodeError::UnknownNode(_) => Exit::usage(e.to_string()),
            _ => Exit::failed(e.to_string()),
        }
    }
}

/// Parse the process's arguments, run the command, and map errors to exit codes.
pub fn main() -> ExitCode {
    // Die quietly on a closed pipe (`synod sim --seeds 100 | head`), as Unix tools do.
    crate::signals::default_sigpipe();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    if !matches!(cli.command, Command::Node(_)) {
        if let Some(level) = log_level() {
            // Off unless asked: the controller's own diagnostics (`chaos`'s
            // log collector, say) go to stderr beside its progress bars.
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_ansi(false)
                .with_target(false)
                .with_max_level(level)
                .init();
        }
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.message());
            ExitCode::from(e.code())
        }
    }
}

/// The log level `SYNOD_LOG` asks for (error, warn, info, debug or trace);
/// nodes start processes with the variable they inherit, so
/// `SYNOD_LOG=debug synod up` shows every node's debug lines in its log.
pub fn log_level() -> Option<tracing::Level> {
    std::env::var("SYNOD_LOG").ok()?.trim().parse().ok()
}

fn run(cli: Cli) -> Result<(), Exit> {
    match cli.command {
        Command::Up(a) => cluster::up(a),
        Command::Down(a) => cluster::down(a),
        Command::Status(a) => cluster::status(a),
        Command::Member(c) => member::run(c),
        Command::Logs(a) => cluster::logs(a),
        Command::Node(a) => cluster::node(a),
        Command::Web(a) => web::run(a),
        Command::Put(a) => data::put(a),
        Command::Get(a) => data::get(a),
        Command::Delete(a) => data::delete(a),
        Command::Cas(a) => data::cas(a),
        Command::Log(a) => data::log(a),
        Command::Kill(a) => faults::kill(a),
        Command::Restart(a) => faults::restart(a),
        Command::Pause(a) => faults::pause(a, true),
        Command::Resume(a) => faults::pause(a, false),
        Command::Partition(a) => faults::partition(a),
        Command::Heal(c) => faults::heal(c),
        Command::Net(a) => faults::net(a),
        Command::Chaos(a) => chaos::run(a),
        Command::Check(a) => check::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Experiment(e) => experiment::run(e),
        Command::Demo(a) => demo::run(a),
        Command::Sim(a) => sim::run(a),
    }
}

/// The folder of run directories: `.synod` in the current directory.
fn base() -> PathBuf {
    std::env::current_dir()
        .unwrap_or_else(|_| PathBuf::from("."))
        .join(BASE)
}

/// The run directory `c` names (or the only one there is).
fn find(c: &ClusterArg) -> Result<RunDir, Exit> {
    Ok(RunDir::find(&base(), c.cluster.as_deref())?)
}

// The clap value parsers below return `Result<_, String>`: clap's idiom.

/// A duration like 60s, 2m, 1500ms, 1h 30m (humantime), or a plain number of
/// seconds; above zero.
pub fn duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let d = match t.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs > 0.0 && secs < 1e9 => Duration::from_secs_f64(secs),
        Ok(_) => return Err(format!("{s:?} is not a duration above zero")),
        Err(_) => humantime::parse_duration(t)
            .map_err(|e| format!("{s:?}: {e}; write 60s, 2m, 1500ms or 1h 30m"))?,
    };
    if d.is_zero() {
        return Err(format!("{s:?} is not a duration above zero"));
    }
    Ok(d)
}

/// A duration that may be zero (a warm-up).
fn duration_or_zero(s: &str) -> Result<Duration, String> {
    match s.trim() {
        "0" | "0s" | "0ms" => Ok(Duration::ZERO),
        other => duration(other),
    }
}

/// A probability, from 0 to 1.
fn probability(s: &str) -> Result<f64, String> {
    let p: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if !(0.0..=1.0).contains(&p) {
        return Err(format!("{p} is not a probability between 0 and 1"));
    }
    Ok(p)
}

/// A probability strictly between 0 and 1.
fn open_probability(s: &str) -> Result<f64, String> {
    let p = probability(s)?;
    if p == 0.0 || p == 1.0 {
        return Err(format!("{p} must be strictly between 0 and 1"));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(duration("2.5"), Ok(Duration::from_millis(2500)));
        for bad in ["0", "-1", "soon", "0s", "1e99", "NaN"] {
            assert!(duration(bad).is_err(), "{bad}");
        }
        assert_eq!(duration_or_zero("0"), Ok(Duration::ZERO));
        assert!(probability("1.5").is_err());
        assert!(open_probability("1").is_err());
        assert_eq!(open_probability("0.2"), Ok(0.2));
    }

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
