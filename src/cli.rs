//! The command line: clap definitions and the dispatch to the library.
//!
//! Exit codes everywhere: 0 done; 1 the operation failed (no quorum, timed out, a
//! checker found a violation); 2 bad usage or bad input.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};

use crate::demo::Lang;
use crate::paxos::{Rule, Rules};
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
    /// The explainer's worked examples, message by message: three-users, late-joiner
    Demo(DemoArgs),
    /// Run simulated histories (virtual time, seeded faults) and check every invariant
    Sim(SimArgs),
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Which example: three-users (ballots 1, 2, 3 and "1+1=3") or late-joiner ("Zhengzhou")
    #[arg(value_parser = ["three-users", "late-joiner"])]
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
    /// Fault kinds while faults are on: crash, partition, loss, dup, delay, all, none
    #[arg(long, default_value = "all", value_name = "LIST")]
    faults: String,
    /// Virtual milliseconds of faults before everything heals
    #[arg(long, value_name = "MS")]
    fault_ms: Option<u64>,
    /// Switch one Paxos rule off: persist, promise or p2c
    #[arg(long = "break", value_name = "RULE")]
    broken: Option<Rule>,
    /// Print every message and state change
    #[arg(long)]
    trace: bool,
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
        Command::Demo(a) => demo(a),
        Command::Sim(a) => simulate(a),
    }
}

fn demo(a: DemoArgs) -> Result<(), Exit> {
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

fn simulate(a: SimArgs) -> Result<(), Exit> {
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
